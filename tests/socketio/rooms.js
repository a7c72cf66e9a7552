// rooms.js PORT - rooms across workers with the real socket.io-client:
// two clients on different workers join a room and receive each other's
// events (with their JSON arguments intact), a client outside the room
// receives nothing, acks round-trip, a client in two shared rooms gets one
// copy, leave works, POST /publish reaches the room, unknown namespaces are
// refused, and a client that disconnects and reconnects gets a new session
// and can rejoin.
"use strict";
const t = require("./lib");

t.run(async () => {
  const by = await t.spread([0, 1]);
  const a = by[0][0], b = by[1][0];
  // The outsider: any other client, on either worker.
  const c = (by[0][1] || by[1][1]) || await t.connect();
  t.log(`a ${a.sid} on worker ${a.worker}, b ${b.sid} on worker ${b.worker}`);
  const ra = t.record(a), rb = t.record(b), rc = t.record(c);

  let r = await t.ack(a, 2000, "join", "room1");
  t.check(r.ok === true && r.room === "room1", `join ack: ${JSON.stringify(r)}`);
  r = await t.ack(b, 2000, "join", "room1");
  t.check(r.ok === true, `join ack: ${JSON.stringify(r)}`);

  // a -> b, across workers; arguments arrive exactly as sent.
  const payload = { text: "héllo \u{1F600}", n: [1, 2.5, -3e10, null, true], nested: { deep: ["x"] } };
  const got = t.once(b, "chat", 3000);
  a.emit("chat", payload, "second", 42);
  const [p1, p2, p3] = await got;
  t.check(JSON.stringify(p1) === JSON.stringify(payload) && p2 === "second" && p3 === 42,
    `b got ${JSON.stringify([p1, p2, p3])}`);

  // b -> a with an ack: the server acknowledges the broadcast.
  const got2 = t.once(a, "reply", 3000);
  r = await t.ack(b, 2000, "reply", "hi a");
  t.check(r.ok === true && r.rooms === 1, `event ack: ${JSON.stringify(r)}`);
  t.check((await got2)[0] === "hi a", "a did not get the reply");

  // Two shared rooms: one copy each.
  await t.ack(a, 2000, "join", "room2");
  await t.ack(b, 2000, "join", "room2");
  const got3 = t.once(b, "twice", 3000);
  a.emit("twice", 1);
  await got3;
  await t.sleep(300);
  t.check(rb.count("twice") === 1, `b got ${rb.count("twice")} copies of one event in two shared rooms`);

  // The sender never gets its own event, the outsider gets nothing.
  t.check(ra.count("chat") === 0 && ra.count("twice") === 0, "a received its own events");
  t.check(rc.list.length === 0, `the outsider received ${JSON.stringify(rc.list)}`);

  // POST /publish reaches both members (on both workers), not the outsider.
  const pa = t.once(a, "news", 3000), pb = t.once(b, "news", 3000);
  let res = await t.post("/socket.io/publish", { room: "room1", event: "news", args: [{ id: 7 }, "x"] });
  t.check(res.status === 202, `publish: ${res.status} ${res.body}`);
  const [na] = await pa, [nb, nb2] = await pb;
  t.check(na.id === 7 && nb.id === 7 && nb2 === "x", "publish arguments");
  res = await t.post("/socket.io/publish", { room: "room1" });
  t.check(res.status === 400, `publish without event: ${res.status}`);
  res = await t.post("/socket.io/publish", "{not json");
  t.check(res.status === 400, `publish of garbage: ${res.status}`);
  res = await t.post("/socket.io/publish", { room: "room1", event: "x", args: "notarray" });
  t.check(res.status === 400, `publish with args not an array: ${res.status}`);

  // Leave: b stops receiving from room1 but still gets room2.
  r = await t.ack(b, 2000, "leave", "room1");
  t.check(r.ok === true, `leave ack: ${JSON.stringify(r)}`);
  const p2b = t.once(b, "in_room2", 3000);
  await t.post("/socket.io/publish", { room: "room1", event: "after_leave" });
  await t.post("/socket.io/publish", { room: "room2", event: "in_room2" });
  await p2b;
  // a and b may sit on different workers: each delivers on its own time.
  await t.until(() => ra.count("after_leave") === 1, 3000, "a gets the room1 event");
  await t.sleep(200);
  t.check(rb.count("after_leave") === 0, "b received a room1 event after leaving it");

  // Bad room names are refused through the ack.
  r = await t.ack(a, 2000, "join", "");
  t.check(r.ok === false, `empty room: ${JSON.stringify(r)}`);
  r = await t.ack(a, 2000, "join", 12);
  t.check(r.ok === false, `numeric room: ${JSON.stringify(r)}`);

  // Unknown namespace: CONNECT_ERROR.
  try {
    await t.connect({}, 3000, "/admin");
    t.fail("connected to /admin");
  } catch (e) {
    t.check(/Invalid namespace/.test(e.message), `namespace error: ${e.message}`);
  }

  // Disconnect and reconnect: a new session, rooms start empty, rejoin works.
  const oldSid = b.sid;
  b.disconnect();
  await t.sleep(100);
  b.connect();
  await t.once(b, "connect", 3000);
  const w = await t.ack(b, 2000, "whoami");
  t.check(w.sid !== oldSid && w.rooms === 0, `after reconnect: ${JSON.stringify(w)} (old sid ${oldSid})`);
  await t.ack(b, 2000, "join", "room1");
  const back = t.once(b, "welcome_back", 3000);
  a.emit("welcome_back");
  await back;
  t.pass("rooms, acks, publish, leave, namespaces, reconnect");
}, 30000);
