// lib.js - helpers shared by the node clients that tests/integration/test_events.c
// and test_socketio.c run against a real clusterd: connect with the real
// socket.io-client (WebSocket only unless opts.transports says otherwise),
// wait for events with deadlines, call the backend endpoints over HTTP (with
// a bearer token when given), read /metrics.  Every wait is bounded; a script
// that fails prints why and exits 1.
"use strict";
const http = require("http");
const { io } = require("socket.io-client");

const port = Number(process.argv[2]);
if (!port) {
  console.error(`usage: node ${process.argv[1]} PORT [args...]`);
  process.exit(2);
}
const url = `http://127.0.0.1:${port}`;
const sockets = [];

function log(...a) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...a);
}

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  for (const s of sockets) s.disconnect();
  process.exit(1);
}

function pass(msg) {
  log(`PASS: ${msg}`);
  for (const s of sockets) s.disconnect();
  process.exit(0);
}

// The whole script must finish within ms.
function deadline(ms) {
  setTimeout(() => fail(`script deadline of ${ms} ms reached`), ms).unref();
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timeout (${ms} ms): ${what}`)), ms); }),
  ]);
}

// A connected socket (rejects on connect_error or after ms).
function connect(opts = {}, ms = 5000, path = "") {
  const s = io(url + path, { transports: ["websocket"], reconnection: false, timeout: ms, forceNew: true, ...opts });
  sockets.push(s);
  return withTimeout(new Promise((res, rej) => {
    s.once("connect", () => res(s));
    s.once("connect_error", (e) => rej(new Error(`connect_error: ${e.message}`)));
  }), ms, "connect");
}

function once(s, ev, ms) {
  return withTimeout(new Promise((res) => s.once(ev, (...args) => res(args))), ms, `event ${ev}`);
}

function ack(s, ms, ...args) {
  return withTimeout(s.timeout(ms).emitWithAck(...args), ms + 500, `ack of ${args[0]}`);
}

// Records every event a socket receives: rec.list of [name, args].
function record(s) {
  const rec = { list: [] };
  s.onAny((name, ...args) => rec.list.push([name, args]));
  rec.count = (name) => rec.list.filter((e) => e[0] === name).length;
  return rec;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Waits until cond() is true, polling; rejects after ms.
async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timeout (${ms} ms): ${what}`);
    await sleep(10);
  }
}

// Sockets connected until at least one sits on each of `slots` workers
// (the kernel spreads connections over the reuseport listeners, so a few
// tries are enough); returns {slot: [socket...]} with all of them.
async function spread(slots, max = 40, opts = {}, path = "") {
  const by = {};
  for (let i = 0; i < max; i++) {
    const s = await connect(opts, 5000, path);
    const w = await ack(s, 2000, "whoami");
    (by[w.worker] = by[w.worker] || []).push(s);
    s.sid = w.sid;
    s.worker = w.worker;
    if (slots.every((k) => by[k])) return by;
  }
  throw new Error(`${max} clients did not cover workers ${slots}: ${JSON.stringify(Object.keys(by))}`);
}

// POST a JSON body; headers are added to the request's (e.g. Authorization).
// Resolves {status, body, headers}.
function post(path, body, ms = 3000, headers = {}) {
  const data = typeof body === "string" ? body : JSON.stringify(body);
  return withTimeout(new Promise((res, rej) => {
    const req = http.request(`${url}${path}`, { method: "POST", headers: { "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(data), ...headers } }, (r) => {
      let b = "";
      r.on("data", (c) => (b += c));
      r.on("end", () => res({ status: r.statusCode, body: b, headers: r.headers }));
    });
    req.on("error", rej);
    req.end(data);
  }), ms, `POST ${path}`);
}

function get(path, ms = 3000) {
  return withTimeout(new Promise((res, rej) => {
    http.get(`${url}${path}`, (r) => {
      let b = "";
      r.on("data", (c) => (b += c));
      r.on("end", () => res({ status: r.statusCode, body: b }));
    }).on("error", rej);
  }), ms, `GET ${path}`);
}

// The value of every sample of a /metrics family, keyed by its label text
// (e.g. {'slot="0",pid="12",...': 5}).
// Retries 503 (no cluster snapshot yet, just after the start) for 5 s.
async function metrics(name) {
  let r = await get("/metrics");
  for (const end = Date.now() + 5000; r.status === 503 && Date.now() < end; r = await get("/metrics")) await sleep(100);
  if (r.status !== 200) throw new Error(`GET /metrics: ${r.status}`);
  const out = {};
  for (const line of r.body.split("\n")) {
    const m = line.match(/^([a-z_]+)(?:\{(.*)\})? (\S+)$/);
    if (m && m[1] === name) out[m[2] || ""] = Number(m[3]);
  }
  return out;
}

// Rejects unless connecting with opts to path fails with connect_error;
// resolves its message.
async function refused(opts, path = "", ms = 5000) {
  try {
    await connect(opts, ms, path);
  } catch (e) {
    const m = /^connect_error: (.*)$/.exec(e.message);
    if (m) return m[1];
    throw e;
  }
  throw new Error(`connected to ${path || "/"} with ${JSON.stringify(opts)}: expected connect_error`);
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

// Runs main(), failing on any exception.
function run(main, ms) {
  deadline(ms);
  main().catch((e) => fail(e.stack || String(e)));
}

module.exports = { port, url, io, log, fail, pass, connect, once, ack, record, sleep, until, spread, post, get,
  metrics, refused, check, run, sockets };
