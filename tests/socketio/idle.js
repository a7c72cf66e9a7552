// idle.js PORT N SECONDS - N clients connect over WebSocket and join the
// room "idle", then all sit idle for SECONDS (pings only); after that one
// POST /publish to the room must reach every one of them exactly once and
// every client still answers an ack (tests/integration/test_idle.c: the
// idle-memory work must not lose a client that sat still).
"use strict";
const t = require("./lib");
const n = Number(process.argv[3] || 1000);
const secs = Number(process.argv[4] || 3);

t.run(async () => {
  const got = new Array(n).fill(0);
  const socks = new Array(n);
  const t0 = Date.now();
  for (let base = 0; base < n; base += 100) {
    const batch = [];
    for (let i = base; i < Math.min(n, base + 100); i++) {
      batch.push((async () => {
        const s = await t.connect({}, 20000);
        s.on("bcast", (x) => { if (x === "after-idle") got[i]++; });
        const r = await t.ack(s, 10000, "join", "idle");
        if (!r.ok) throw new Error(`join: ${JSON.stringify(r)}`);
        socks[i] = s;
      })());
    }
    await Promise.all(batch);
  }
  t.log(`${n} clients connected and joined in ${Date.now() - t0} ms; idle for ${secs} s`);
  await t.sleep(secs * 1000);
  t.check(socks.every((s) => s.connected), `${socks.filter((s) => !s.connected).length} clients lost while idle`);
  const res = await t.post("/socket.io/publish", { room: "idle", event: "bcast", args: ["after-idle"] });
  t.check(res.status === 202, `publish: ${res.status} ${res.body}`);
  try {
    await t.until(() => got.every((c) => c >= 1), 30000, "every idle client gets the broadcast");
  } catch (e) {
    t.fail(`${got.filter((c) => c === 0).length} of ${n} idle clients missed the broadcast`);
  }
  // Each one still talks: an ack round trip on every socket, in batches.
  for (let base = 0; base < n; base += 200) {
    await Promise.all(socks.slice(base, base + 200).map((s) => t.ack(s, 10000, "whoami")));
  }
  await t.sleep(200);
  t.check(got.every((c) => c === 1), "a client got the broadcast twice");
  t.pass(`${n} clients idle for ${secs} s each received the broadcast once and answered an ack`);
}, 240000);
