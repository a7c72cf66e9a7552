// hooks.js PORT BACKEND_PORT MODE - the HTTP hooks of the events service
// (services/events/hooks.c) driven with the real socket.io-client against
// clusterd -w 4 and tests/hooks/backend.py on BACKEND_PORT (started by
// tests/integration/test_hooks.c, which writes the config).
//
// MODE chat: a chat whose server side is the backend, on /chat: connects
// accepted (welcome with the forwarded Cookie) and refused with the
// backend's message; an acked message emitted by the backend to the lobby
// except the sender, across workers and to a polling client; a join asked
// by the backend, then an emit to that room; the socket's data replaced by
// an answer; a binary argument and a binary ack; a disconnect asked by the
// backend (the client sees "io server disconnect", the backend's
// disconnect hook the reason).  "/" has no hooks and keeps the relay.
//
// MODE failures: /down's connect hook is a dead port, /slow's answers after
// hook_timeout, and /chat's "slow" event too: connect_error "hook
// unavailable", an error ack (also for an answer that is not JSON), and the
// failures counted in /metrics.
"use strict";
const http = require("http");
const t = require("./lib");

const backend = Number(process.argv[3]);
const mode = process.argv[4];

function backendSeen() {
  return new Promise((res, rej) => {
    http.get(`http://127.0.0.1:${backend}/seen`, (r) => {
      let b = "";
      r.on("data", (c) => (b += c));
      r.on("end", () => res(JSON.parse(b)));
    }).on("error", rej);
  });
}

// The /chat socket of a session whose "/" socket is root (same worker).
async function chat(root, name) {
  const s = root.io.socket("/chat", { auth: { name } });
  t.sockets.push(s);
  const welcome = t.once(s, "welcome", 8000);
  const connected = new Promise((res, rej) => {
    s.once("connect", res);
    s.once("connect_error", (e) => rej(new Error(`${name}: connect_error ${e.message}`)));
  });
  s.connect();
  await connected;
  s.rec = t.record(s);
  s.name = name;
  const [who, cookie] = await welcome;
  t.check(who === name && cookie === `session=${name}`, `${name}'s welcome: ${who}, ${cookie}`);
  return s;
}

async function chatMode() {
  // alice and bob on two workers (whoami on "/", which has no hooks).
  const by = await t.spread([0, 1], 40, { extraHeaders: { cookie: "session=alice" } });
  const a = await chat(by[0][0], "alice");
  // bob's session: its own cookie, on worker 1
  let broot;
  for (let i = 0; i < 40 && !broot; i++) {
    const r = await t.connect({ extraHeaders: { cookie: "session=bob" } });
    if ((await t.ack(r, 2000, "whoami")).worker === 1) broot = r;
  }
  t.check(broot, "no session of bob's on worker 1");
  const b = await chat(broot, "bob");
  // carol over long-polling only: the headers of a polling session too.
  const croot = await t.connect({ transports: ["polling"], extraHeaders: { cookie: "session=carol" } });
  const c = await chat(croot, "carol");
  t.log("alice, bob and carol connected through the connect hook");

  // Refused by the backend, with its message.
  t.check(await t.refused({ auth: { name: "mallory" } }, "/chat") === "banned", "mallory was not banned");
  t.check(await t.refused({}, "/chat") === "a name is required", "a connect without a name");

  // An acked message; the backend emits it to the lobby except the sender.
  const bgot = t.once(b, "said", 5000), cgot = t.once(c, "said", 5000);
  const r = await t.ack(a, 5000, "say", "hi all");
  t.check(r.ok === true && r.from === "alice", `say's ack: ${JSON.stringify(r)}`);
  for (const got of [await bgot, await cgot])
    t.check(got[0] === "alice" && got[1] === "hi all", `said: ${JSON.stringify(got)}`);
  await t.sleep(300);
  t.check(a.rec.count("said") === 0, "the sender got its own message");

  // A join asked by the backend, then an emit to that room only.
  const e = await t.ack(b, 5000, "enter", "room1");
  t.check(e.room === "room1", `enter's ack: ${JSON.stringify(e)}`);
  const shout = t.once(b, "shouted", 5000);
  t.check(await t.ack(a, 5000, "shout", "room1", "yo") === true, "shout's ack");
  const sh = await shout;
  t.check(sh[0] === "alice" && sh[1] === "yo", `shouted: ${JSON.stringify(sh)}`);
  await t.sleep(300);
  t.check(c.rec.count("shouted") === 0 && a.rec.count("shouted") === 0, "room1's emit reached a non-member");

  // The socket's data, replaced by an answer, goes with the next calls.
  t.check(await t.ack(c, 5000, "rename", "caroline") === "caroline", "rename's ack");
  t.check((await t.ack(c, 5000, "say", "x")).from === "caroline", "the data of an answer was not kept");

  // Binary both ways: attachments in base64 beside placeholders.
  const back = await t.ack(a, 5000, "bin", Buffer.from([1, 2, 3, 250]));
  t.check(Buffer.isBuffer(back) && back.equals(Buffer.from([250, 3, 2, 1])), `bin's ack: ${JSON.stringify(back)}`);
  const cback = await t.ack(c, 5000, "bin", Buffer.from("polling"));
  t.check(Buffer.isBuffer(cback) && cback.toString() === "gnillop", `bin's ack over polling: ${cback}`);

  // A disconnect asked by the backend, after the ack.
  const bid = b.id; // the client forgets it on disconnect
  const gone = t.once(b, "disconnect", 5000);
  t.check(await t.ack(b, 5000, "bye") === "bye", "bye's ack");
  const [reason] = await gone;
  t.check(reason === "io server disconnect", `bob's disconnect: ${reason}`);
  let seen = [];
  for (let end = Date.now() + 5000; Date.now() < end; await t.sleep(100)) {
    seen = await backendSeen();
    if (seen.some((x) => x.type === "disconnect" && x.sid === bid)) break;
  }
  const d = seen.find((x) => x.type === "disconnect" && x.sid === bid);
  t.check(d && d.reason === "server namespace disconnect" && d.namespace === "/chat",
    `the backend's disconnect hook for bob: ${JSON.stringify(d)}`);
  t.check(seen.every((x) => x.namespace === "/chat"), "a hook call for a namespace without hooks");
  t.pass("a chat through HTTP hooks");
}

async function failuresMode() {
  for (let i = 0; i < 10; i++) {
    const why = await t.refused({}, "/down", 10000);
    t.check(why === "hook unavailable", `a connect to /down: ${why}`);
  }
  t.check(await t.refused({}, "/slow", 10000) === "hook unavailable", "a connect to /slow");
  const root = await t.connect({ extraHeaders: { cookie: "session=dora" } });
  const s = await chat(root, "dora");
  const r = await t.ack(s, 8000, "slow");
  t.check(r && r.error === "hook unavailable", `slow's ack: ${JSON.stringify(r)}`);
  // An answer that is not JSON: the same error ack; then the hook answers again.
  const g = await t.ack(s, 8000, "garbage");
  t.check(g && g.error === "hook unavailable", `garbage's ack: ${JSON.stringify(g)}`);
  t.check((await t.ack(s, 8000, "say", "back")).from === "dora", "the event hook after its failures");
  // The failures are counted (the workers' counters are summed as they come).
  const sum = async (name, kind) => Object.entries(await t.metrics(name))
    .filter(([k]) => k.includes(`kind="${kind}"`)).reduce((n, [, v]) => n + v, 0);
  let fc = 0, fe = 0, cc = 0;
  for (let end = Date.now() + 10000; Date.now() < end; await t.sleep(200)) {
    fc = await sum("clusterd_events_hook_failures_total", "connect");
    fe = await sum("clusterd_events_hook_failures_total", "event");
    cc = await sum("clusterd_events_hook_calls_total", "connect");
    if (fc >= 11 && fe >= 2 && cc >= 12) break;
  }
  t.log(`failures: connect ${fc}, event ${fe}; connect calls ${cc}`);
  t.check(fc === 11 && fe === 2 && cc === 12, `metrics: connect failures ${fc}, event failures ${fe}, calls ${cc}`);
  t.pass("hooks down or slow: connect_error and error acks within hook_timeout, counted");
}

t.run(mode === "chat" ? chatMode : failuresMode, 90000);
