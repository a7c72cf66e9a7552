// probe.js - latency of single broadcasts (not load): a publisher and one
// receiver on each worker of a Socket.IO server that implements the events
// semantics (clusterd's events service, or server.js), all in the room "p".
//
//   node probe.js PORT [mode] [count] [transport]
//
//   transport  websocket (the default) or polling (every client stays on
//              HTTP long-polling: the polling row)
//
//   steady     the publisher emits an event every 20 ms; each receiver
//              reports its latency (emit -> receipt)
//   after-ack  each round, every receiver first asks for an ack (whoami)
//              and, once the acks are in, the publisher emits one event:
//              the pattern of a chat client that sends with an ack and then
//              receives the others' messages.  A server that writes without
//              TCP_NODELAY holds that event until the client's delayed ACK
//              of the ack frame comes (Nagle's algorithm): tens of ms.
//
// Prints p50 / p99 / max, then one line "RESULT {json}" (for bench.js);
// every wait is bounded.
"use strict";
const { io } = require("socket.io-client");
const { performance } = require("perf_hooks");

const port = Number(process.argv[2]);
const mode = process.argv[3] || "steady";
const count = Number(process.argv[4] || 100);
const transport = process.argv[5] || "websocket";
if (!port || !["steady", "after-ack"].includes(mode) || !["websocket", "polling"].includes(transport)) {
  console.error("usage: node probe.js PORT [steady|after-ack] [count] [websocket|polling]");
  process.exit(2);
}
const url = `http://127.0.0.1:${port}`;
const sockets = [];
const bye = (rc) => {
  for (const s of sockets) s.disconnect();
  process.exit(rc);
};
setTimeout(() => {
  console.error("probe: deadline reached");
  bye(3);
}, 60000).unref();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const timed = (p, ms, what) => Promise.race([p, sleep(ms).then(() => { throw new Error(`timeout: ${what}`); })]);

// Over polling a connect may lose a race in Node's @socket.io/sticky (see
// driver.js): a few more tries there.
async function client() {
  for (let i = 0; transport === "polling" && i < 4; i++) {
    try {
      return await clientOnce();
    } catch (e) {
      console.error(`probe: polling connect failed (${e.message}); retrying`);
    }
  }
  return clientOnce();
}

async function clientOnce() {
  const s = io(url, { transports: [transport], reconnection: false, forceNew: true });
  sockets.push(s);
  await timed(new Promise((res, rej) => { s.once("connect", res); s.once("connect_error", rej); }), 5000, "connect")
    .catch((e) => {
      s.disconnect();
      throw e;
    });
  s.worker = (await s.timeout(3000).emitWithAck("whoami")).worker;
  await s.timeout(3000).emitWithAck("join", "p");
  return s;
}

function stats(l) {
  const v = [...l].sort((a, b) => a - b);
  const q = (x) => (v.length ? v[Math.min(v.length - 1, Math.floor(x * v.length))] : null);
  return { n: v.length, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: q(1) };
}
const f2 = (x) => (x === null ? "-" : x.toFixed(2));

(async () => {
  const pub = await client();
  const recv = {};
  for (let i = 0; i < 30 && Object.keys(recv).length < 2; i++) {
    const s = await client();
    if (!recv[s.worker]) recv[s.worker] = s;
    else s.disconnect();
  }
  const rs = Object.values(recv);
  console.log(`publisher on worker ${pub.worker}, receivers on workers ${rs.map((s) => s.worker).join(", ")}`);
  const lat = [];
  let pending = 0;
  for (const s of rs) {
    s.on("tick", (m) => {
      lat.push(performance.now() - m.t);
      pending--;
    });
  }
  await sleep(300);
  for (let n = 0; n < count; n++) {
    if (mode === "after-ack") await Promise.all(rs.map((s) => s.timeout(3000).emitWithAck("whoami")));
    pending += rs.length;
    pub.emit("tick", { s: n, t: performance.now() });
    if (mode === "after-ack") {
      const end = performance.now() + 2000;
      while (pending > 0 && performance.now() < end) await sleep(1);
      await sleep(5);
    } else {
      await sleep(20);
    }
  }
  const end = performance.now() + 2000;
  while (pending > 0 && performance.now() < end) await sleep(5);
  const r = { mode, ...stats(lat), missed: count * rs.length - lat.length };
  console.log(`${mode}: n ${r.n}, p50 ${f2(r.p50_ms)} ms, p99 ${f2(r.p99_ms)} ms, max ${f2(r.max_ms)} ms, ` +
    `missed ${r.missed}`);
  console.log(`RESULT ${JSON.stringify(r)}`);
  bye(0);
})().catch((e) => {
  console.error(`probe: ${e.message || e}`);
  bye(1);
});
