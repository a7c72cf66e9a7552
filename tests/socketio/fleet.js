// fleet.js LB_URL PUBLISH_URL CLIENTS FLAGDIR - Socket.IO clients of a
// fleet behind HAProxy (tests/fleet/fleet.sh runs it in the clients'
// network namespace).  CLIENTS sockets (the real socket.io-client; every
// third one long-polling only, keeping HAProxy's cookie with
// withCredentials, the others WebSocket) connect through the balancer at
// LB_URL with reconnection on, and join the room "fleet" on every
// (re)connect.  Meanwhile a backend POSTs /socket.io/publish {"room":
// "fleet","event":"tick","args":[seq]} every 200 ms to PUBLISH_URL, one
// host of the fleet: with adapter = redis, every host delivers it.
//
// The shell kills and drains hosts meanwhile.  It creates FLAGDIR/settled
// once they are back; then 12 more ticks are published and every client
// must get every one of them (it reconnected where its host went away and
// keeps receiving what another host publishes), and no client may get a
// tick twice (delivered once per socket).  Prints one line
// "FLEETSIO {json}" with the counts and exits 0 when the checks pass.
// Every wait is bounded (the whole script: 100 s).
"use strict";
const fs = require("fs");
const http = require("http");
const { io } = require("socket.io-client");

const [lb, pub, nclients, flagdir] = [process.argv[2], process.argv[3], Number(process.argv[4]), process.argv[5]];
if (!lb || !pub || !nclients || !flagdir) {
  console.error("usage: node fleet.js LB_URL PUBLISH_URL CLIENTS FLAGDIR");
  process.exit(2);
}
const log = (...a) => console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const deadline = setTimeout(() => { log("FAIL: script deadline (100 s)"); process.exit(1); }, 100000);

const clients = [];
for (let i = 0; i < nclients; i++) {
  const polling = i % 3 === 2;
  const s = io(lb, {
    transports: polling ? ["polling"] : ["websocket"], withCredentials: true, forceNew: true,
    reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 1000, timeout: 3000,
  });
  const c = { i, s, polling, got: new Map(), dups: 0, connects: 0, joins: 0, worker: null };
  s.on("connect", () => {
    c.connects++;
    s.timeout(3000).emit("join", "fleet", (err, r) => {
      if (err || !r || r.ok !== true) {
        log(`client ${i}: join failed: ${err ? err.message : JSON.stringify(r)}; reconnecting`);
        s.disconnect().connect();
        return;
      }
      c.joins++;
      s.timeout(2000).emit("whoami", (e2, w) => {
        c.worker = e2 ? null : w.worker;
        log(`client ${i} (${polling ? "polling" : "websocket"}) connected #${c.connects}, joined, worker ${c.worker}`);
      });
    });
  });
  s.on("disconnect", (why) => log(`client ${i} disconnected: ${why}`));
  s.on("connect_error", (e) => log(`client ${i} connect_error: ${e.message}`));
  s.on("tick", (n) => {
    if (c.got.has(n)) c.dups++;
    c.got.set(n, (c.got.get(n) || 0) + 1);
  });
  clients.push(c);
}

let seq = 0, published = 0, pubFailed = 0;
function publish(n) {
  const body = JSON.stringify({ room: "fleet", event: "tick", args: [n] });
  return new Promise((res) => {
    const req = http.request(`${pub}/socket.io/publish`, { method: "POST", timeout: 2000,
      headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } }, (r) => {
      r.resume();
      r.on("end", () => res(r.statusCode));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => res(0));
    req.end(body);
  });
}

(async () => {
  // Everyone connected and in the room first.
  for (let t = 0; t < 150 && clients.some((c) => c.joins === 0); t++) await sleep(100);
  const late = clients.filter((c) => c.joins === 0).map((c) => c.i);
  if (late.length) {
    log(`FAIL: clients ${late} never joined`);
    process.exit(1);
  }
  log(`FLEET connected: ${nclients} clients joined`);
  let settledAt = -1;
  for (let t = 0; t < 450; t++) { // 90 s at 200 ms
    const n = ++seq;
    const st = await publish(n);
    if (st >= 200 && st < 300) published++;
    else pubFailed++;
    if (settledAt < 0 && fs.existsSync(`${flagdir}/settled`)) {
      settledAt = n + 1;
      log(`settled: checking ticks from ${settledAt}`);
    }
    if (settledAt > 0 && n >= settledAt + 11) break;
    await sleep(200);
  }
  if (settledAt < 0) {
    log("FAIL: never settled");
    process.exit(1);
  }
  await sleep(1500); // the last ticks on their way
  const last = seq;
  const report = { clients: nclients, published, publish_failed: pubFailed, window: [settledAt, last], per: [] };
  let ok = true;
  for (const c of clients) {
    const missing = [];
    for (let n = settledAt; n <= last; n++) if (!c.got.has(n)) missing.push(n);
    report.per.push({ i: c.i, polling: c.polling, connects: c.connects, received: c.got.size, dups: c.dups,
      missing: missing.length, worker: c.worker });
    if (missing.length || c.dups) ok = false;
  }
  report.reconnects = clients.reduce((a, c) => a + c.connects - 1, 0);
  console.log(`FLEETSIO ${JSON.stringify(report)}`);
  for (const c of clients) c.s.disconnect();
  clearTimeout(deadline);
  if (published < last - 5) {
    log(`FAIL: the backend's publish on one host failed ${pubFailed} times of ${last}`);
    ok = false;
  }
  if (!ok) log("FAIL: a client missed ticks published after the fleet settled, or got one twice");
  process.exit(ok ? 0 : 1);
})();
