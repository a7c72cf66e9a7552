// driver.js - one fan-out measurement against one Socket.IO server (clusterd's
// events service or bench/events/node/server.js), with the real
// socket.io-client over WebSocket, or with --polling 1 over HTTP
// long-polling for the clients' whole life (transports: ["polling"]).
//
//   node driver.js --port P --pid ROOT [--clients N] [--rate R] [--rate-secs S]
//                  [--sat-secs S] [--window W] [--payload BYTES] [--warmup-secs S]
//                  [--polling 0|1]
//
// N receivers connect (spread by the server over its workers), report their
// worker (whoami) and join the room "bench"; one more client, the publisher,
// joins it too.  Then:
//   check     one POST /socket.io/publish must reach all N+1 clients
//   rate      the publisher emits R events/s for S seconds: each event goes
//             to the N receivers (the server leaves out the sender)
//   saturate  the publisher keeps W events in flight (an event is done when
//             all N receivers have it, or 2 s after it was sent) for S
//             seconds: deliveries/s at the server's pace
// Every event carries its sequence number and performance.now() of its
// emit; receivers live in this same process, so latency needs no clock
// sync.  Latency includes this process's own queueing (it shares the CPUs
// with the server), the same for both servers.  CPU of the server (ROOT and
// all its descendants, from /proc utime+stime) and of this process is
// measured over each phase, as is other load on the machine.
//
// Prints one JSON object on stdout; progress goes to stderr.  Every wait is
// bounded; the whole run has a deadline.
"use strict";
const fs = require("fs");
const http = require("http");
const { performance } = require("perf_hooks");
const { io } = require("socket.io-client");

// ---- arguments -------------------------------------------------------------
const opt = { port: 0, pid: 0, clients: 200, rate: 100, "rate-secs": 8, "sat-secs": 8, window: 8, payload: 64,
  "warmup-secs": 1, deadline: 120, polling: 0 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, "");
  if (!(k in opt) || i + 1 >= process.argv.length) {
    console.error(`driver.js: unknown or incomplete option ${process.argv[i]}`);
    process.exit(2);
  }
  opt[k] = Number(process.argv[i + 1]);
}
if (!opt.port) {
  console.error("usage: node driver.js --port P --pid ROOT [--clients N] ...");
  process.exit(2);
}
const url = `http://127.0.0.1:${opt.port}`;
const N = opt.clients;
const ROOM = "bench";
const EXPIRE_MS = 2000; // an event not complete by then counts its missing deliveries as missed
const log = (...a) => console.error(`[driver ${new Date().toISOString().slice(11, 23)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sockets = [];

setTimeout(() => {
  log(`deadline of ${opt.deadline} s reached`);
  for (const s of sockets) s.disconnect();
  process.exit(3);
}, opt.deadline * 1000).unref();

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p.finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timeout (${ms} ms): ${what}`)), ms); })]);
}

async function until(cond, ms) {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) return false;
    await sleep(5);
  }
  return true;
}

// ---- /proc: CPU of a process tree, of this process, of the machine --------
const TICK_MS = 10; // USER_HZ is 100 on Linux
function procStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
    return { ppid: Number(f[1]), cpu: Number(f[11]) + Number(f[12]) };
  } catch (e) {
    return null;
  }
}
function tree(root) {
  const kids = new Map();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const st = procStat(d);
    if (!st) continue;
    if (!kids.has(st.ppid)) kids.set(st.ppid, []);
    kids.get(st.ppid).push(Number(d));
  }
  const out = [];
  const stack = [root];
  while (stack.length && out.length < 1000) {
    const p = stack.pop();
    out.push(p);
    for (const c of kids.get(p) || []) stack.push(c);
  }
  return out;
}
function treeCpuMs(pids) {
  let t = 0;
  for (const p of pids) {
    const st = procStat(p);
    if (st) t += st.cpu;
  }
  return t * TICK_MS;
}
function rssKb(pids) {
  let kb = 0;
  for (const p of pids) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${p}/status`, "utf8"));
      if (m) kb += Number(m[1]);
    } catch (e) { /* gone */ }
  }
  return kb;
}
function machineBusyMs() {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * TICK_MS;
}
let serverPids = [];
function cpuSnap() {
  const u = process.cpuUsage();
  return { t: performance.now(), server: treeCpuMs(serverPids), driver: (u.user + u.system) / 1000,
    busy: machineBusyMs() };
}
function cpuDelta(a, b) {
  const wall = b.t - a.t;
  const server = b.server - a.server;
  const driver = b.driver - a.driver;
  const other = Math.max(0, b.busy - a.busy - server - driver);
  return { wall_ms: wall, server_cpu_ms: server, driver_cpu_ms: driver, server_cores: server / wall,
    driver_cores: driver / wall, other_cores: other / wall };
}

// ---- bookkeeping -------------------------------------------------------------
const MAX_MSGS = 1 << 20;
const sentAt = new Float64Array(MAX_MSGS);
const got = new Uint32Array(MAX_MSGS);
const done = new Uint8Array(MAX_MSGS);
let seq = 0; // next sequence number
let lat = new Float64Array(1 << 20);
let nlat = 0;
let recording = false;
let lastRecv = 0;
let dupes = 0;
let echoes = 0;
let strays = 0;
let onDelivery = null; // saturate: called with the seq that got a delivery

function recordLatency(ms) {
  if (nlat === lat.length) {
    const bigger = new Float64Array(lat.length * 2);
    bigger.set(lat);
    lat = bigger;
  }
  lat[nlat++] = ms;
}

function onTick(client, m) {
  const now = performance.now();
  const s = m && m.s;
  if (!Number.isInteger(s) || s < 0 || s >= seq) {
    strays++;
    return;
  }
  if (s <= client.last) dupes++; // a repeat or a reordering
  client.last = Math.max(client.last, s);
  got[s]++;
  lastRecv = now;
  if (recording) recordLatency(now - sentAt[s]);
  if (onDelivery) onDelivery(s);
}

const pad = "x".repeat(Math.max(0, opt.payload));
let publisher = null;
function emitOne() {
  if (seq >= MAX_MSGS) throw new Error("too many events for one run");
  const s = seq++;
  sentAt[s] = performance.now();
  publisher.emit("tick", { s, t: sentAt[s], p: pad });
  return s;
}

function percentile(sorted, n, q) {
  if (!n) return null;
  return sorted[Math.min(n - 1, Math.floor(q * n))];
}

function summarize(name, first, last, cpu, tEnd) {
  let expected = 0;
  let delivered = 0;
  for (let s = first; s < last; s++) {
    expected += N;
    delivered += Math.min(got[s], N);
  }
  const sorted = lat.subarray(0, nlat).sort();
  const span = tEnd - sentAt[first];
  const r = {
    phase: name, events: last - first, expected, delivered, missed: expected - delivered,
    deliveries_per_s: delivered / (span / 1000), events_per_s: (last - first) / (span / 1000), span_ms: span,
    p50_ms: percentile(sorted, nlat, 0.5), p90_ms: percentile(sorted, nlat, 0.9),
    p99_ms: percentile(sorted, nlat, 0.99), max_ms: nlat ? sorted[nlat - 1] : null,
    ...cpu,
  };
  r.server_us_per_delivery = delivered ? (cpu.server_cpu_ms * 1000) / delivered : null;
  r.driver_us_per_delivery = delivered ? (cpu.driver_cpu_ms * 1000) / delivered : null;
  return r;
}

// ---- connecting --------------------------------------------------------------
// Over polling a connect can fail on a race of the server's (Node's
// @socket.io/sticky binds a new session in its primary over IPC, and the
// client's next request may get there first): up to 4 more tries, each
// failure counted (connect_retries in the result).  Over WebSocket a
// failure fails the run, as it always did.
let connectRetries = 0;
async function connect(ms = 10000) {
  for (let i = 0; opt.polling && i < 4; i++) {
    try {
      return await connectOnce(ms);
    } catch (e) {
      connectRetries++;
      log(`polling connect failed (${e.message}); retrying`);
    }
  }
  return connectOnce(ms);
}

function connectOnce(ms) {
  const s = io(url, { transports: [opt.polling ? "polling" : "websocket"], reconnection: false, timeout: ms,
    forceNew: true });
  sockets.push(s);
  return withTimeout(new Promise((res, rej) => {
    s.once("connect", () => res(s));
    s.once("connect_error", (e) => rej(new Error(`connect_error: ${e.message}`)));
  }), ms, "connect").catch((e) => {
    s.disconnect();
    throw e;
  });
}

async function client(perWorker, role) {
  const s = await connect();
  const c = { s, last: -1, hello: 0, role };
  const w = await withTimeout(s.timeout(5000).emitWithAck("whoami"), 6000, "whoami");
  perWorker[w.worker] = (perWorker[w.worker] || 0) + 1;
  c.worker = w.worker;
  const j = await withTimeout(s.timeout(5000).emitWithAck("join", ROOM), 6000, "join");
  if (!j || !j.ok) throw new Error(`join: ${JSON.stringify(j)}`);
  s.on("hello", () => c.hello++);
  if (role === "receiver") s.on("tick", (m) => onTick(c, m));
  else s.on("tick", () => echoes++);
  s.on("disconnect", (why) => { if (!closing) { c.lost = why; log(`client on worker ${c.worker} disconnected: ${why}`); } });
  return c;
}

function post(path, body, ms = 5000) {
  const data = JSON.stringify(body);
  return withTimeout(new Promise((res, rej) => {
    const req = http.request(`${url}${path}`, { method: "POST", headers: { "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(data) } }, (r) => {
      let b = "";
      r.on("data", (c) => (b += c));
      r.on("end", () => res({ status: r.statusCode, body: b }));
    });
    req.on("error", rej);
    req.end(data);
  }), ms, `POST ${path}`);
}

let closing = false;

// ---- phases -------------------------------------------------------------------
// Paced: R events/s for secs; the sends are spread over 1 ms timer ticks.
async function paced(rate, secs) {
  const first = seq;
  const t0 = performance.now();
  const total = Math.round(rate * secs);
  let sent = 0;
  await new Promise((resolve) => {
    const step = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      while (sent < due) {
        emitOne();
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(step, 1);
    };
    step();
  });
  return [first, seq];
}

async function drain(first, last, ms = EXPIRE_MS + 500) {
  const complete = () => {
    for (let s = first; s < last; s++) if (got[s] < N) return false;
    return true;
  };
  await until(complete, ms);
}

// Closed loop: W events in flight.
async function saturate(window, secs) {
  const first = seq;
  const t0 = performance.now();
  const tEnd = t0 + secs * 1000;
  let inflight = new Set();
  let stopped = false;
  const refill = () => {
    while (!stopped && inflight.size < window) {
      if (performance.now() >= tEnd) {
        stopped = true;
        break;
      }
      inflight.add(emitOne());
    }
  };
  onDelivery = (s) => {
    if (got[s] >= N && inflight.delete(s)) refill();
  };
  const expiry = setInterval(() => {
    const now = performance.now();
    let expired = false;
    for (const s of inflight) {
      if (now - sentAt[s] > EXPIRE_MS) {
        inflight.delete(s);
        expired = true;
      }
    }
    if (expired) refill();
    if (now >= tEnd) stopped = true;
  }, 20);
  refill();
  await until(() => stopped || performance.now() >= tEnd + 100, secs * 1000 + 1000);
  stopped = true;
  await until(() => inflight.size === 0, EXPIRE_MS + 500);
  clearInterval(expiry);
  onDelivery = null;
  return [first, seq];
}

// ---- main ---------------------------------------------------------------------
async function main() {
  const out = { clients: N, payload_bytes: opt.payload, window: opt.window, rate: opt.rate };
  const tc = performance.now();
  const perWorker = {};
  const receivers = [];
  for (let base = 0; base < N; base += 50) {
    const batch = [];
    for (let i = base; i < Math.min(N, base + 50); i++) batch.push(client(perWorker, "receiver"));
    receivers.push(...(await Promise.all(batch)));
  }
  const pubc = await client(perWorker, "publisher");
  publisher = pubc.s;
  out.connect_ms = performance.now() - tc;
  out.connect_retries = connectRetries;
  out.per_worker = perWorker;
  out.publisher_worker = pubc.worker;
  log(`${N} receivers + publisher connected and joined in ${out.connect_ms.toFixed(0)} ms; ` +
    `per worker ${JSON.stringify(perWorker)}`);
  serverPids = opt.pid ? tree(opt.pid) : [];
  out.server_processes = serverPids.length;

  // check: the HTTP publish path reaches everyone
  const r = await post("/socket.io/publish", { room: ROOM, event: "hello", args: ["check"] });
  const all = [...receivers, pubc];
  const ok = await until(() => all.every((c) => c.hello >= 1), 5000);
  out.check = { status: r.status, reached: all.filter((c) => c.hello >= 1).length, of: all.length };
  if (r.status !== 202 || !ok) log(`check: publish ${r.status} ${r.body}; reached ${out.check.reached}/${all.length}`);

  // warm-up at the paced rate, not recorded
  if (opt["warmup-secs"] > 0) {
    const [a, b] = await paced(opt.rate, opt["warmup-secs"]);
    await drain(a, b);
  }
  out.rss_kb_connected = rssKb(serverPids);

  // paced
  nlat = 0;
  recording = true;
  let c0 = cpuSnap();
  let [a, b] = await paced(opt.rate, opt["rate-secs"]);
  const tSent = performance.now();
  await drain(a, b);
  let c1 = cpuSnap();
  recording = false;
  // Deliveries per second at a fixed offered rate is just the rate: the
  // span is the sending time, and CPU is taken over sending plus draining.
  out.rate_phase = summarize("rate", a, b, cpuDelta(c0, c1), Math.max(tSent, Math.min(lastRecv, c1.t)));
  log(`rate ${opt.rate}/s: ${out.rate_phase.delivered}/${out.rate_phase.expected} delivered, ` +
    `p50 ${out.rate_phase.p50_ms?.toFixed(2)} p99 ${out.rate_phase.p99_ms?.toFixed(2)} ms, server ` +
    `${out.rate_phase.server_cores.toFixed(2)} cores, driver ${out.rate_phase.driver_cores.toFixed(2)}`);

  // saturate
  nlat = 0;
  recording = true;
  c0 = cpuSnap();
  [a, b] = await saturate(opt.window, opt["sat-secs"]);
  c1 = cpuSnap();
  recording = false;
  out.sat_phase = summarize("saturate", a, b, cpuDelta(c0, c1), lastRecv);
  log(`saturate W=${opt.window}: ${out.sat_phase.deliveries_per_s.toFixed(0)} deliveries/s ` +
    `(${out.sat_phase.events_per_s.toFixed(0)} events/s), missed ${out.sat_phase.missed}, ` +
    `p50 ${out.sat_phase.p50_ms?.toFixed(2)} p99 ${out.sat_phase.p99_ms?.toFixed(2)} ms, server ` +
    `${out.sat_phase.server_cores.toFixed(2)} cores, driver ${out.sat_phase.driver_cores.toFixed(2)}`);

  out.rss_kb_end = rssKb(serverPids);
  out.dupes_or_reordered = dupes;
  out.echoes_to_sender = echoes;
  out.strays = strays;
  out.disconnected = all.filter((c) => c.lost).length;
  out.pub_still_connected = publisher.connected;
  closing = true;
  for (const s of sockets) s.disconnect();
  process.stdout.write(JSON.stringify(out) + "\n");
  await sleep(100);
  process.exit(0);
}

main().catch((e) => {
  log(`FAILED: ${e.stack || e}`);
  closing = true;
  for (const s of sockets) s.disconnect();
  process.stdout.write(JSON.stringify({ failed: String(e.message || e) }) + "\n");
  process.exit(1);
});
