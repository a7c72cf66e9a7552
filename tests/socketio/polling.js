// polling.js PORT [N] - N clients (default 40) with `transports: ["polling"]`
// for their whole life on -w 4: every request is a plain HTTP GET or POST
// that the kernel gives to any worker, so most of them reach a session that
// lives on another worker and must be steered to its owner.  Checks:
// sessions live on all four workers (whoami), the requests were accepted by
// all four (clusterd_worker_accepted_total in /metrics), /metrics counts
// them (clusterd_events_clients by transport, clusterd_events_rooms),
// events flow both ways (client to room, POST /publish to room), rooms keep
// their members apart, every member gets exactly one copy, and the server's
// pings over polling keep every session alive for several intervals (same
// sid, no disconnect, the client still on polling).
"use strict";
const t = require("./lib");

const n = Number(process.argv[3] || 40);

async function accepted() {
  const m = await t.metrics("clusterd_worker_accepted_total");
  const by = {};
  for (const [labels, v] of Object.entries(m)) by[/slot="(\d+)"/.exec(labels)[1]] = v;
  return by;
}

t.run(async () => {
  const before = await accepted();
  const cs = [];
  // n clients, more (up to 2n) until sessions live on all four workers.
  for (let i = 0; i < n || (new Set(cs.map((c) => c.worker)).size < 4 && i < 2 * n); i++) {
    const s = await t.connect({ transports: ["polling"] }, 8000);
    const w = await t.ack(s, 3000, "whoami");
    s.sid = w.sid;
    s.worker = w.worker;
    s.pings = 0;
    s.io.engine.on("ping", () => s.pings++);
    s.drops = [];
    s.on("disconnect", (why) => s.drops.push(why));
    cs.push(s);
  }
  const owners = new Set(cs.map((s) => s.worker));
  t.log(`${cs.length} polling clients, sessions on workers ${[...owners].sort()}`);
  t.check(owners.size === 4, `sessions on workers ${[...owners]} only`);

  // Two rooms: even and odd clients.
  for (let i = 0; i < cs.length; i++) {
    const r = await t.ack(cs[i], 3000, "join", i % 2 ? "odd" : "even");
    t.check(r.ok === true, `join of client ${i}: ${JSON.stringify(r)}`);
  }
  const recs = cs.map((s) => t.record(s));
  // Client to room: client 0 (even) and client 1 (odd) speak.
  let r = await t.ack(cs[0], 3000, "say", "to evens", Array.from({ length: 50 }, (_, k) => k));
  t.check(r.ok === true && r.rooms === 1, `ack: ${JSON.stringify(r)}`);
  r = await t.ack(cs[1], 3000, "say", "to odds");
  t.check(r.ok === true, `ack: ${JSON.stringify(r)}`);
  // Server to room.
  for (const room of ["even", "odd"]) {
    const res = await t.post("/socket.io/publish", { room, event: "news", args: [room] });
    t.check(res.status === 202, `publish: ${res.status} ${res.body}`);
  }
  await t.until(() => recs.every((rec, i) => rec.count("news") === 1 && rec.count("say") === (i < 2 ? 0 : 1)),
    15000, "every client got its room's say and news once");
  await t.sleep(300);
  for (let i = 0; i < cs.length; i++) {
    const want = i % 2 ? "odd" : "even";
    const say = recs[i].list.find((e) => e[0] === "say");
    t.check(i < 2 || say[1][0] === `to ${want}s`, `client ${i} (${want}) got ${JSON.stringify(say)}`);
    t.check(recs[i].list.find((e) => e[0] === "news")[1][0] === want, `client ${i} got another room's news`);
    t.check(recs[i].list.length === (i < 2 ? 1 : 2), `client ${i} got ${JSON.stringify(recs[i].list)}`);
  }
  t.check(recs[0].list.length === 1 && JSON.stringify(recs[2].list[0][1][1]).length > 100, "the array argument");

  // Pings over polling: several intervals go by, every session lives on.
  const p0 = cs.map((s) => s.pings);
  await t.until(() => cs.every((s, i) => s.pings >= p0[i] + 3), 20000, "three more pings for every client");
  for (const s of cs) {
    t.check(s.connected && s.drops.length === 0, `client ${s.sid} dropped: ${s.drops}`);
    t.check(s.io.engine.transport.name === "polling", `client on ${s.io.engine.transport.name}`);
    const w = await t.ack(s, 3000, "whoami");
    t.check(w.sid === s.sid && w.worker === s.worker, `whoami changed: ${JSON.stringify(w)}`);
  }

  // /metrics counts them: polling clients of /, none on websocket; the rooms
  // gauge is each worker's rooms summed (a room with members on k workers
  // counts k times), so even and odd count between 2 and 8.
  const sum = (m, re) => Object.entries(m).filter(([k]) => re.test(k)).reduce((acc, [, v]) => acc + v, 0);
  const good = (v) => v[0] === cs.length && v[1] === 0 && v[2] >= 2 && v[2] <= 8;
  let seen;
  for (const end = Date.now() + 5000; ; await t.sleep(100)) {
    const c = await t.metrics("clusterd_events_clients"), rm = await t.metrics("clusterd_events_rooms");
    seen = [sum(c, /namespace="\/",transport="polling"/), sum(c, /transport="websocket"/), sum(rm, /namespace="\/"/)];
    if (good(seen) || Date.now() > end) break;
  }
  t.check(good(seen), `/metrics: clients on polling, on websocket, rooms: ${seen}; expected ${cs.length}, 0, 2..8`);

  // The kernel spread the requests: every worker accepted connections.
  await t.sleep(500); // a heartbeat or two: the snapshot catches up
  const after = await accepted();
  const delta = Object.keys(after).map((k) => after[k] - (before[k] || 0));
  t.log(`connections accepted by slot during the run: ${delta}`);
  t.check(delta.length === 4 && delta.every((d) => d > 0), `not every worker accepted a request: ${delta}`);
  t.pass(`${cs.length} polling clients: rooms, events both ways, pings, requests on every worker`);
}, 110000);
