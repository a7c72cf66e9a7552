// sio_api.js PORT TRANSPORT - the Socket.IO handler API (clusterd/socketio.h)
// with the real socket.io-client over one transport (websocket or polling)
// on -w 4, against tests/integration/sio_test_module.c (read its essay for
// what each event does): a CONNECT refused with a message; one accepted
// later (from a timer) and its welcome (sid, forwarded header); events
// acked with their arguments, binary included; an emit to the socket;
// emitWithAck answered (binary both ways), timed out, and failed by the
// socket going first; per-socket data;
// joins, then broadcasts to a room reaching sockets on other workers, with
// except; sockets_join/leave on every worker; disconnects seen by the
// client ("io server disconnect") and by the handler with socket.io's
// reasons (ping timeout included); a client that leaves while its
// CONNECT is pending; a namespace without handlers keeping the service's
// own events.
"use strict";
const crypto = require("crypto");
const t = require("./lib");

const transport = process.argv[3] || "websocket";
const opts = { transports: [transport], extraHeaders: { "x-test": "hello" } };

function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timeout (${ms} ms): ${what}`)), ms); }),
  ]);
}

// A socket recording everything from its first packet on.
function open(extra = {}, path = "") {
  const s = t.io(t.url + path, { reconnection: false, forceNew: true, timeout: 5000, ...opts, ...extra });
  t.sockets.push(s);
  s.rec = t.record(s);
  return s;
}

function connected(s, ms = 5000) {
  if (s.connected) return Promise.resolve(s);
  return within(new Promise((res, rej) => {
    s.once("connect", () => res(s));
    s.once("connect_error", (e) => rej(new Error(`connect_error: ${e.message}`)));
  }), ms, "connect");
}

// An emit whose ack's arguments all come back.
function acked(s, ms, ...args) {
  return within(new Promise((res, rej) => s.timeout(ms).emit(...args, (err, ...reply) => (err ? rej(err) : res(reply)))),
    ms + 500, `ack of ${args[0]}`);
}

function same(x, y) {
  return x && Buffer.from(x).equals(y);
}

function events(s, name) {
  return s.rec.list.filter((e) => e[0] === name).map((e) => e[1]);
}

async function rc0(s, ...args) {
  const r = await t.ack(s, 3000, ...args);
  t.check(r === 0, `${args.join(" ")}: ${JSON.stringify(r)}`);
}

t.run(async () => {
  // An observer of what handlers see, on whichever worker.
  const obs = await connected(open());
  await t.until(() => events(obs, "welcome").length === 1, 3000, "the welcome");
  const [wsid, , hdr, , nsp] = events(obs, "welcome")[0];
  t.check(wsid === obs.id && hdr === "hello" && nsp === "/",
    `welcome ${JSON.stringify(events(obs, "welcome")[0])} (sid ${obs.id})`);
  await rc0(obs, "join", "observers");
  const seen = (what, a) => events(obs, what).find((e) => e[0] === a);

  // Refused, with the handler's message (escaped on the way).
  const why = await t.refused({ ...opts, auth: { mode: "refuse" } });
  t.check(why === 'not welcome: "refuse" asked', `refusal message: ${why}`);

  // Accepted later, from a timer.
  const s = await connected(open({ auth: { mode: "later" } }));
  await t.until(() => events(s, "welcome").length === 1, 3000, "the welcome of a later accept");
  t.check(events(s, "welcome")[0][0] === s.id, "the sid the handler saw is the client's");

  // Events acked with their arguments, text and binary.
  let reply = await acked(s, 3000, "echo", 1, "two", { three: 3 });
  t.check(JSON.stringify(reply) === '[1,"two",{"three":3}]', `echo: ${JSON.stringify(reply)}`);
  const buf = crypto.randomBytes(1000), small = Buffer.from([0, 255, 10]);
  reply = await acked(s, 3000, "echo", buf, { nested: small, n: 1 }, "x");
  t.check(same(reply[0], buf) && same(reply[1].nested, small) && reply[1].n === 1 && reply[2] === "x",
    "a binary ack differs from the event's arguments");

  // Emit to this socket.
  let got = t.once(s, "echoed", 3000);
  s.emit("emit-back", "a", buf);
  const [e1, e2] = await got;
  t.check(e1 === "a" && same(e2, buf), "emit-back");

  // emitWithAck: answered (binary both ways), then timed out.
  s.on("question", (...args) => {
    const cb = args.pop();
    if (args[0] !== "ignore") cb("re", Buffer.concat([Buffer.from(args[1]), Buffer.from("!")]));
  });
  got = t.once(s, "answered", 4000);
  await rc0(s, "ask", "please", buf);
  const [re, rb] = await got;
  t.check(re === "re" && same(rb, Buffer.concat([buf, Buffer.from("!")])), "emitWithAck's binary answer");
  got = t.once(s, "ask-failed", 5000);
  await rc0(s, "ask", "ignore");
  t.check((await got)[0] === "ETIMEDOUT", "emitWithAck timed out");
  // Per-socket data: echo, echo, emit-back, ask, ask, count.
  const n = await t.ack(s, 3000, "count");
  t.check(n === 6, `the socket's own count: ${n}`);

  // Rooms across workers.  c is also in "x", which the first message excepts.
  const by = await t.spread([0, 1, 2], 60, opts);
  const a = by[0][0], b = by[1][0], c = by[2][0];
  for (const k of [a, b, c]) k.rec = t.record(k);
  for (const k of [a, b, c]) await rc0(k, "join", "r");
  await rc0(c, "join", "x");
  t.check((await t.ack(c, 3000, "join", "user:x")) === -22, "a reserved room is refused (-EINVAL)");
  await rc0(a, "to-room", "r", "x", "m1");
  await rc0(a, "to-room", "r", "", "m2");
  const msgs = (k) => events(k, "room-msg").map((m) => m[1]).join(",");
  await t.until(() => msgs(a) === "m1,m2" && msgs(b) === "m1,m2" && msgs(c).endsWith("m2"), 5000,
    "room messages on three workers");
  t.check(msgs(c) === "m2", `c is in the excepted room x but got ${msgs(c)}`);

  // socketsJoin / socketsLeave on every worker.
  await rc0(a, "pull", "r", "pulled");
  await rc0(a, "to-room", "pulled", "", "m3");
  await t.until(() => msgs(b).endsWith("m3") && msgs(c).endsWith("m3"), 5000, "the pulled room");
  await rc0(a, "push", "r", "pulled");
  await rc0(a, "to-room", "pulled", "", "m4");
  await rc0(a, "to-room", "r", "", "m5");
  await t.until(() => msgs(b).endsWith("m5") && msgs(c).endsWith("m5"), 5000, "m5");
  t.check(!msgs(b).includes("m4") && !msgs(c).includes("m4"), "the room was left everywhere");
  await rc0(b, "leave", "r");
  await rc0(a, "to-room", "r", "", "m6");
  await t.until(() => msgs(c).endsWith("m6"), 5000, "m6");
  t.check(!msgs(b).includes("m6"), "b left r but got m6");

  // Disconnects: the client's reason, and the handler's.
  const reason = (k) => within(new Promise((res) => k.once("disconnect", (r) => res(r))), 5000, "disconnect");
  const k1 = await connected(open()), k1id = k1.id;
  await rc0(k1, "join", "kickme");
  let gone = reason(k1);
  await rc0(a, "kick", "kickme");
  t.check((await gone) === "io server disconnect", "a kicked client's reason");
  const k2 = await connected(open()), k2id = k2.id;
  gone = reason(k2);
  k2.emit("bye");
  t.check((await gone) === "io server disconnect", "bye: the client's reason");
  const k3 = await connected(open()), k3id = k3.id;
  k3.disconnect();
  const k4 = await connected(open()), k4id = k4.id;
  k4.io.engine.close();
  const r = (id) => (seen("seen-disconnect", id) || [])[1];
  await t.until(() => r(k1id) && r(k2id) && r(k3id) && r(k4id), 5000, "the handler's four disconnects");
  t.check(r(k1id) === "server namespace disconnect", `kick: ${r(k1id)}`);
  t.check(r(k2id) === "server namespace disconnect", `bye: ${r(k2id)}`);
  t.check(r(k3id) === "client namespace disconnect", `client disconnect: ${r(k3id)}`);
  t.check(r(k4id) === "transport close", `transport close: ${r(k4id)}`);
  // An emitWithAck whose socket goes first: its callback gets -ENOTCONN
  // (before on_disconnect).
  const k6 = await connected(open()), k6id = k6.id;
  k6.on("question", () => {}); /* never answers */
  await rc0(k6, "ask", "ignore");
  k6.disconnect();
  await t.until(() => seen("seen-ask-failed", k6id) && r(k6id), 5000, "the pending emitWithAck's -ENOTCONN");
  t.check(r(k6id) === "client namespace disconnect", `k6: ${r(k6id)}`);
  const ia = obs.rec.list.findIndex((e) => e[0] === "seen-ask-failed" && e[1][0] === k6id);
  const id = obs.rec.list.findIndex((e) => e[0] === "seen-disconnect" && e[1][0] === k6id);
  t.check(ia >= 0 && ia < id, "the ack's -ENOTCONN came before on_disconnect");
  // A client that stops answering pings (ping_interval 1s, ping_timeout 2s).
  const k5 = await connected(open()), k5id = k5.id;
  k5.io.engine._sendPacket = k5.io.engine.sendPacket = () => {};
  await t.until(() => r(k5id), 10000, "the ping timeout");
  t.check(r(k5id) === "ping timeout", `ping timeout: ${r(k5id)}`);

  // A client that leaves while its CONNECT is pending: the accept, later,
  // gets -ENOTCONN; no on_disconnect for it.
  const v = open({ auth: { mode: "vanish", tag: `v-${transport}` } });
  await t.until(() => seen("seen-pending", `v-${transport}`), 5000, "the pending connect");
  const vsid = seen("seen-pending", `v-${transport}`)[1];
  v.io.engine.close();
  await t.until(() => seen("seen-enotconn", `v-${transport}`), 5000, "the late accept's -ENOTCONN");
  t.check(seen("seen-enotconn", `v-${transport}`)[1] === vsid, "the same socket");
  t.check(!seen("seen-disconnect", vsid), "on_disconnect ran for a socket never accepted");

  // A namespace without handlers keeps the service's own events.
  const p = await t.connect(opts, 5000, "/plain");
  const w = await t.ack(p, 3000, "whoami");
  t.check(w.namespace === "/plain" && typeof w.rooms === "number", `whoami in /plain: ${JSON.stringify(w)}`);
  const j = await t.ack(p, 3000, "join", "room1");
  t.check(j.ok === true, `join in /plain: ${JSON.stringify(j)}`);
  t.pass(`handler API over ${transport}`);
}, 60000);
