// fanout.js PORT N - N clients (spread by the kernel over the workers) join
// one room; one POST /publish must reach every one of them exactly once,
// within a bounded time.
"use strict";
const t = require("./lib");
const n = Number(process.argv[3] || 1000);

t.run(async () => {
  const got = new Array(n).fill(0);
  const perWorker = {};
  const t0 = Date.now();
  for (let base = 0; base < n; base += 50) {
    const batch = [];
    for (let i = base; i < Math.min(n, base + 50); i++) {
      batch.push((async () => {
        const s = await t.connect({}, 10000);
        s.on("bcast", (x) => { if (x === "one") got[i]++; });
        const w = await t.ack(s, 5000, "whoami");
        perWorker[w.worker] = (perWorker[w.worker] || 0) + 1;
        const r = await t.ack(s, 5000, "join", "all");
        if (!r.ok) throw new Error(`join: ${JSON.stringify(r)}`);
      })());
    }
    await Promise.all(batch);
  }
  t.log(`${n} clients connected and joined in ${Date.now() - t0} ms; per worker ${JSON.stringify(perWorker)}`);
  t.check(Object.keys(perWorker).length >= 2, "all clients on one worker");
  const t1 = Date.now();
  const res = await t.post("/socket.io/publish", { room: "all", event: "bcast", args: ["one"] });
  t.check(res.status === 202, `publish: ${res.status} ${res.body}`);
  try {
    await t.until(() => got.every((c) => c >= 1), 15000, "every client gets the broadcast");
  } catch (e) {
    t.fail(`${got.filter((c) => c === 0).length} of ${n} clients missed the broadcast`);
  }
  const ms = Date.now() - t1;
  await t.sleep(300);
  t.check(got.every((c) => c === 1), "a client got the broadcast twice");
  t.pass(`${n} clients received one broadcast each in ${ms} ms`);
}, 90000);
