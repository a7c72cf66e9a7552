// websocket.js PORT - `transports: ["websocket"]` on -w 4 with the real
// socket.io-client: clients on all four workers (whoami's worker) connect
// straight over WebSocket (no polling request at all), join one room, and
// each worker's client receives the events of the others and a POST
// /publish, exactly once, arguments intact.  The config says
// `transports = websocket`, so a long-polling request is refused (400).
"use strict";
const t = require("./lib");

t.run(async () => {
  const by = await t.spread([0, 1, 2, 3], 60);
  const four = [0, 1, 2, 3].map((k) => by[k][0]);
  for (const s of t.sockets)
    t.check(s.io.engine.transport.name === "websocket", `transport ${s.io.engine.transport.name}`);
  const recs = four.map((s) => t.record(s));
  for (const s of four) {
    const r = await t.ack(s, 2000, "join", "ws");
    t.check(r.ok === true, `join: ${JSON.stringify(r)}`);
  }
  // Each worker's client speaks once; the three others hear it.
  for (let i = 0; i < 4; i++) {
    const r = await t.ack(four[i], 2000, "say", { from: i, text: `from worker ${four[i].worker}` });
    t.check(r.ok === true && r.rooms === 1, `ack of say: ${JSON.stringify(r)}`);
  }
  const res = await t.post("/socket.io/publish", { room: "ws", event: "news", args: [1, "two"] });
  t.check(res.status === 202, `publish: ${res.status} ${res.body}`);
  for (let i = 0; i < 4; i++)
    await t.until(() => recs[i].count("say") === 3 && recs[i].count("news") === 1, 5000,
      `worker ${four[i].worker}'s client got the 3 others' events and the publish: ${JSON.stringify(recs[i].list)}`);
  await t.sleep(200);
  for (let i = 0; i < 4; i++) {
    const froms = recs[i].list.filter((e) => e[0] === "say").map((e) => e[1][0].from).sort();
    t.check(JSON.stringify(froms) === JSON.stringify([0, 1, 2, 3].filter((k) => k !== i)),
      `client ${i} got says from ${froms}`);
    t.check(recs[i].list.length === 4, `client ${i}: ${recs[i].list.length} events, expected 4`);
  }
  const poll = await t.get("/socket.io/?EIO=4&transport=polling");
  t.check(poll.status === 400, `a polling request with transports = websocket: ${poll.status} ${poll.body}`);
  t.pass("websocket only: four workers, one room, events and publish");
}, 30000);
