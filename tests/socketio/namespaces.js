// namespaces.js PORT - a config with `namespaces = /, /chat` on -w 4: the
// same room name in / and in /chat are two rooms (events and POST /publish
// with "namespace" reach only their own), whoami names the namespace, one
// Engine.IO session can carry both (the client's multiplexing), a
// namespace that is not configured gets connect_error "Invalid namespace",
// and publishing to one gets 404.
"use strict";
const t = require("./lib");

t.run(async () => {
  const by = await t.spread([0, 1], 40, {}, "/chat");
  const c1 = by[0][0], c2 = by[1][0];
  const m = await t.connect({}, 5000, "/");
  let w = await t.ack(c1, 2000, "whoami");
  t.check(w.namespace === "/chat", `whoami on /chat: ${JSON.stringify(w)}`);
  w = await t.ack(m, 2000, "whoami");
  t.check(w.namespace === "/", `whoami on /: ${JSON.stringify(w)}`);
  for (const s of [c1, c2, m]) t.check((await t.ack(s, 2000, "join", "room")).ok === true, "join");
  const r1 = t.record(c1), r2 = t.record(c2), rm = t.record(m);

  // /chat's room: c1 -> c2 across workers, not m.
  let got = t.once(c2, "msg", 3000);
  c1.emit("msg", "in chat");
  t.check((await got)[0] === "in chat", "c2 did not get c1's message");
  // /'s room: m alone there; nobody in /chat hears it.
  const r = await t.ack(m, 2000, "msg", "in main");
  t.check(r.ok === true && r.rooms === 1, `ack on /: ${JSON.stringify(r)}`);
  // The backend, by namespace.
  let res = await t.post("/socket.io/publish", { namespace: "/chat", room: "room", event: "news", args: ["chat"] });
  t.check(res.status === 202, `publish to /chat: ${res.status} ${res.body}`);
  res = await t.post("/socket.io/publish", { room: "room", event: "news", args: ["main"] });
  t.check(res.status === 202, `publish to /: ${res.status} ${res.body}`);
  await t.until(() => r1.count("news") === 1 && r2.count("news") === 1 && rm.count("news") === 1, 5000,
    "each namespace's members got its own publish");
  await t.sleep(200);
  t.check(r1.list.find((e) => e[0] === "news")[1][0] === "chat" && rm.list.find((e) => e[0] === "news")[1][0] === "main",
    `publishes crossed namespaces: ${JSON.stringify([r1.list, rm.list])}`);
  t.check(rm.count("msg") === 0 && r1.count("msg") === 0 && r2.count("msg") === 1,
    `messages crossed namespaces: ${JSON.stringify([r1.list, r2.list, rm.list])}`);
  res = await t.post("/socket.io/publish", { namespace: "/nope", room: "room", event: "x" });
  t.check(res.status === 404, `publish to an unknown namespace: ${res.status} ${res.body}`);

  // One Engine.IO session, two namespaces (the client multiplexes).
  const mgr = new t.io.Manager(t.url, { transports: ["websocket"], reconnection: false });
  const sm = mgr.socket("/"), sc = mgr.socket("/chat");
  t.sockets.push(sm, sc);
  await Promise.all([t.once(sm, "connect", 5000), t.once(sc, "connect", 5000)]);
  const [wm, wc] = [await t.ack(sm, 2000, "whoami"), await t.ack(sc, 2000, "whoami")];
  t.check(wm.namespace === "/" && wc.namespace === "/chat" && wm.sid !== wc.sid && wm.worker === wc.worker,
    `multiplexed: ${JSON.stringify([wm, wc])}`);
  await t.ack(sc, 2000, "join", "room");
  got = t.once(sc, "msg", 3000);
  c1.emit("msg", "to the multiplexed one");
  t.check((await got)[0] === "to the multiplexed one", "the multiplexed /chat socket");
  sc.disconnect(); // leaves / connected on the same session
  await t.sleep(200);
  t.check(sm.connected && (await t.ack(sm, 2000, "whoami")).sid === wm.sid, "/ went down with /chat");

  // A namespace that is not configured.
  const why = await t.refused({}, "/nope");
  t.check(/Invalid namespace/.test(why), `connect_error for /nope: ${why}`);
  t.pass("namespaces: rooms apart, publish by namespace, multiplexing, unknown refused");
}, 30000);
