// redis_lib.js - what the Redis scenarios (redis.js, redis_api.js) share:
// their arguments (PORT_A PORT_B NODE_PORT REDIS_PORT PREFIX LOGDIR), the
// real socket.io-client's sockets on any host with a record of what each
// received (`all`) and `exactly` (an event reaches exactly these sockets,
// each once), HTTP to any host (the backend endpoints, /healthz/ready,
// /metrics of host A), and the Node host (redis_server.js, forked, with
// commands over IPC).  Every wait is bounded; children are SIGKILLed when
// node exits.
"use strict";
const http = require("http");
const net = require("net");
const path = require("path");
const fs = require("fs");
const { fork } = require("child_process");
const t = require("./lib");

const [portA, portB, nodePort, redisPort] = process.argv.slice(2, 6).map(Number);
const prefix = process.argv[6] || "socket.io";
const logdir = process.argv[7] || ".";
const redisUrl = `redis://127.0.0.1:${redisPort}`;
const children = [];

function quit() {
  for (const c of children) c.kill("SIGKILL");
}
process.on("exit", quit);

// ---- hosts and sockets ----

function connect(port, label, nsp = "", transports = ["websocket"]) {
  const s = t.io(`http://127.0.0.1:${port}${nsp}`, { transports, reconnection: false, timeout: 5000,
    forceNew: true });
  t.sockets.push(s);
  return new Promise((res, rej) => {
    const tm = setTimeout(() => rej(new Error(`${label}: connect timeout`)), 5000);
    s.once("connect", () => { clearTimeout(tm); res(s); });
    s.once("connect_error", (e) => { clearTimeout(tm); rej(new Error(`${label}: connect_error ${e.message}`)); });
  });
}

const all = []; // every socket whose receptions are checked

// A socket on the host at port with its worker (whoami) and a record of what it gets.
async function client(port, label, nsp = "", transports = undefined) {
  const s = await connect(port, label, nsp, transports);
  const w = await t.ack(s, 3000, "whoami");
  s.sid = w.sid;
  s.worker = w.worker;
  s.label = label;
  s.rec = t.record(s);
  s.drops = [];
  s.on("disconnect", (why) => s.drops.push(why));
  all.push(s);
  return s;
}

// One client on each worker of a clusterd host (-w 2), labelled name1, name2
// (the kernel spreads connections over the workers' listeners).
async function spreadOn(port, name) {
  const out = [];
  for (let i = 0; out.length < 2 && i < 40; i++) {
    const s = await client(port, `${name}${out.length + 1}`);
    if (out.length && s.worker === out[0].worker) {
      all.pop();
      s.disconnect();
      continue;
    }
    out.push(s);
  }
  t.check(out.length === 2, `${name}: 40 clients did not cover its 2 workers`);
  return out;
}

async function join(s, room) {
  const r = await t.ack(s, 3000, "join", room);
  t.check(r.ok === true, `${s.label} join ${room}: ${JSON.stringify(r)}`);
}

async function rooms(s) {
  return (await t.ack(s, 3000, "whoami")).rooms;
}

// Polls whoami until s is in n rooms (server-side joins act asynchronously).
async function roomsBecome(s, n, what) {
  const end = Date.now() + 8000;
  let got;
  while ((got = await rooms(s)) !== n) {
    t.check(Date.now() < end, `${what}: ${s.label} is in ${got} rooms, not ${n}`);
    await t.sleep(50);
  }
}

const names = (list) => list.map((s) => s.label).join(",") || "nobody";
const counts = (ev) => all.map((s) => `${s.label}=${s.rec.count(ev)}`).join(" ");

// ev reaches exactly the sockets of `to`, each once, and no other socket.
async function exactly(ev, to, ms = 8000) {
  const end = Date.now() + ms;
  while (!to.every((s) => s.rec.count(ev) >= 1)) {
    t.check(Date.now() < end, `${ev} should reach ${names(to)} within ${ms} ms: ${counts(ev)}`);
    await t.sleep(20);
  }
  await t.sleep(400); // time for a duplicate or a stray copy to arrive
  for (const s of all)
    t.check(s.rec.count(ev) === (to.includes(s) ? 1 : 0), `${ev} should reach ${names(to)} once each: ${counts(ev)}`);
  t.log(`${ev}: ${names(to)} once each`);
}

// The args of the first ev that s received.
const argsOf = (s, ev) => s.rec.list.find((e) => e[0] === ev)[1];

// ---- HTTP to any host ----

function request(port, method, p, body, ms = 3000) {
  const data = body === undefined ? "" : JSON.stringify(body);
  return new Promise((res, rej) => {
    const tm = setTimeout(() => rej(new Error(`${method} :${port}${p}: timeout`)), ms);
    const req = http.request({ host: "127.0.0.1", port, path: p, method,
      headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) } }, (r) => {
      let b = "";
      r.on("data", (c) => (b += c));
      r.on("end", () => { clearTimeout(tm); res({ status: r.statusCode, body: b }); });
    });
    req.on("error", (e) => { clearTimeout(tm); rej(e); });
    req.end(data);
  });
}

async function backend(what, body) {
  const r = await request(portA, "POST", `/socket.io/${what}`, body);
  t.check(r.status === 202, `A /${what} ${JSON.stringify(body)}: ${r.status} ${r.body}`);
}

async function ready(port) {
  return request(port, "GET", "/healthz/ready");
}

// Waits until GET /healthz/ready on port answers status (and body matches re).
async function readyBecomes(port, status, re, ms, what) {
  const end = Date.now() + ms;
  let r;
  while ((r = await ready(port)).status !== status || (re && !re.test(r.body))) {
    t.check(Date.now() < end, `${what}: /healthz/ready on ${port} answers ${r.status} ${r.body}`);
    await t.sleep(100);
  }
  return r;
}

// The sum of a /metrics family's samples on host A (NaN when absent: the
// services' families appear with each worker's first heartbeat; 5 s at most).
async function metricSum(name) {
  for (const end = Date.now() + 5000; ; await t.sleep(100)) {
    const v = Object.values(await t.metrics(name));
    if (v.length) return v.reduce((a, b) => a + b, 0);
    if (Date.now() > end) return NaN;
  }
}

// Waits until the /metrics family's sum on A is v: the figures reach the
// master with the workers' stats tick and heartbeat, a second or so late.
async function metricBecomes(name, v, ms, what) {
  const end = Date.now() + ms;
  let got;
  while ((got = await metricSum(name)) !== v) {
    t.check(Date.now() < end, `${name} on A ${what}: ${got}, not ${v} within ${ms} ms`);
    await t.sleep(200);
  }
}

// ---- the Node host, the emitter, Redis ----

let nodeHost;
let cmdId = 0;
const pending = new Map();

// Forks the Node host (its output in LOGDIR/logname); resolves once it
// listens and is connected to Redis.
function startNodeHost(logname = "node-host.log") {
  const out = fs.openSync(path.join(logdir, logname), "w");
  nodeHost = fork(path.join(__dirname, "redis_server.js"), [String(nodePort), String(redisPort), prefix],
    { stdio: ["ignore", out, out, "ipc"] });
  children.push(nodeHost);
  nodeHost.on("exit", (code) => {
    let out = "";
    try { out = fs.readFileSync(path.join(logdir, logname), "utf8"); } catch (e) { out = String(e); }
    t.fail(`the Node host exited (${code}); its output:\n${out}`);
  });
  nodeHost.on("message", (m) => {
    const p = pending.get(m.id);
    if (p) { pending.delete(m.id); p(m); }
  });
  return new Promise((res, rej) => {
    const tm = setTimeout(() => rej(new Error("the Node host did not start in 10 s")), 10000);
    nodeHost.once("message", (m) => { if (m.ready) { clearTimeout(tm); res(); } });
  });
}

// Sends a command to the Node host and waits for its answer.
function nodeCmd(cmd) {
  const id = ++cmdId;
  return new Promise((res, rej) => {
    const tm = setTimeout(() => rej(new Error(`Node host command ${cmd.op}: no answer`)), 5000);
    pending.set(id, (m) => {
      clearTimeout(tm);
      if (!m.ok) rej(new Error(`Node host command ${cmd.op}: ${m.error}`));
      else res(m.result);
    });
    nodeHost.send({ id, ...cmd });
  });
}

function tcpOpen(port) {
  return new Promise((res) => {
    const c = net.connect(port, "127.0.0.1");
    c.once("connect", () => { c.destroy(); res(true); });
    c.once("error", () => res(false));
  });
}

module.exports = { portA, portB, nodePort, redisPort, prefix, logdir, redisUrl, children, connect, all, client,
  spreadOn, join, rooms, roomsBecome, names, counts, exactly, argsOf, request, backend, ready, readyBecomes,
  metricSum, metricBecomes, startNodeHost, nodeCmd, tcpOpen };
