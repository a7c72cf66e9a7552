// chat-handlers.js PORT - examples/chat (the chat handler module) with the
// real socket.io-client on default options (long-polling, then the upgrade,
// so every session is steered to its worker), run by
// tests/integration/test_chat.c on -w 4:
//   - alice and bob sit on different workers; carol, on a third worker
//     when there is one (else any other than alice's), is refused "Alice"
//     (nicks are unique on the host, case-insensitively, across workers);
//   - join notices reach the room's others; bob's typing notice reaches
//     alice and not bob; alice's message is acked with an id and the
//     server's time and reaches bob with the same id and time, not alice;
//   - carol, outside the room, gets none of it (her first chat event is
//     the one sent after she joined); bob's disconnect tells alice "left"
//     and frees his nick for the next client; bad arguments get an error ack.
// "Did not get X" is checked by what a client gets first after a later
// event that went through the same bus (the bus keeps one order for every
// worker), never by waiting for nothing.
"use strict";
const t = require("./lib");

// A client on default transports whose every event is recorded from the
// start ("welcome" may come in the same polling payload as the CONNECT).
async function client() {
  const s = t.io(t.url, { reconnection: false, forceNew: true, timeout: 5000 });
  t.sockets.push(s);
  s.rec = t.record(s);
  await t.until(() => s.rec.count("welcome") > 0, 5000, "welcome");
  const w = s.rec.list.find((e) => e[0] === "welcome")[1][0];
  s.worker = w.worker;
  s.cursor = s.rec.list.length;
  return s;
}

// A client on a worker not in `avoid` (others it made are closed).
async function clientAvoiding(avoid, max = 40) {
  for (let i = 0; i < max; i++) {
    const s = await client();
    if (!avoid.includes(s.worker)) return s;
    s.disconnect();
  }
  throw new Error(`${max} clients all landed on workers ${avoid}`);
}

// The next event s gets after its cursor (which moves past it).
async function next(s, what) {
  await t.until(() => s.rec.list.length > s.cursor, 5000, `${what}: an event`);
  const [name, args] = s.rec.list[s.cursor++];
  return { name, arg: args[0] };
}

async function expectNext(s, name, what) {
  const e = await next(s, what);
  t.check(e.name === name, `${what}: got ${e.name} ${JSON.stringify(e.arg)} first, expected ${name}`);
  return e.arg;
}

t.run(async () => {
  const a = await client();
  const b = await clientAvoiding([a.worker]);
  let c = await clientAvoiding([a.worker, b.worker], 12).catch(() => null);
  if (!c) c = await clientAvoiding([a.worker]);
  t.log(`alice on worker ${a.worker}, bob on ${b.worker}, carol on ${c.worker}`);

  let r = await t.ack(a, 3000, "nick", "alice");
  t.check(r.ok === true && r.nick === "alice", `alice's nick: ${JSON.stringify(r)}`);
  r = await t.ack(c, 3000, "nick", "Alice");
  t.check(r.ok === false && r.error === "nick taken", `"Alice" from another worker: ${JSON.stringify(r)}`);
  r = await t.ack(b, 3000, "join", "lobby");
  t.check(r.ok === false && r.error === "set a nick first", `join without a nick: ${JSON.stringify(r)}`);
  r = await t.ack(b, 3000, "nick", "bob");
  t.check(r.ok === true, `bob's nick: ${JSON.stringify(r)}`);

  r = await t.ack(a, 3000, "join", "lobby");
  t.check(r.ok === true && r.room === "lobby", `alice joins: ${JSON.stringify(r)}`);
  r = await t.ack(b, 3000, "join", "lobby");
  t.check(r.ok === true, `bob joins: ${JSON.stringify(r)}`);
  let m = await expectNext(a, "joined", "alice after bob joined");
  t.check(m.nick === "bob" && m.room === "lobby", `joined notice: ${JSON.stringify(m)}`);

  // Typing: to the others in the room, not the sender.
  r = await t.ack(b, 3000, "typing", "lobby", true);
  t.check(r.ok === true, `typing ack: ${JSON.stringify(r)}`);
  m = await expectNext(a, "typing", "alice after bob typed");
  t.check(m.nick === "bob" && m.typing === true && m.room === "lobby", `typing notice: ${JSON.stringify(m)}`);

  // A message, acked with the server's id and time; bob's first event since
  // his join is this message (not his own typing notice, nor his own join).
  const before = Date.now();
  const sent = await t.ack(a, 3000, "message", "lobby", "hi bob, ça va? \u{1F600}");
  const after = Date.now();
  t.check(sent.ok === true && /^\d+-\d+$/.test(sent.id) && sent.id.startsWith(`${a.worker}-`),
    `message ack id: ${JSON.stringify(sent)}`);
  t.check(sent.time >= before - 1000 && sent.time <= after + 1000, `ack time ${sent.time} not in [${before}, ${after}]`);
  // alice's "joined" notice went to the room over the bus while bob was
  // joining on another worker: it may reach him (the room's members are
  // those of the moment the notice arrives on each worker, as with
  // socket.io's adapters). Nothing else may come before the message.
  let e = await next(b, "bob after alice's message");
  if (e.name === "joined" && e.arg && e.arg.nick === "alice") e = await next(b, "bob after alice's message");
  t.check(e.name === "message", `bob after alice's message: got ${e.name} ${JSON.stringify(e.arg)} first, expected message`);
  m = e.arg;
  t.check(m.id === sent.id && m.time === sent.time && m.nick === "alice" && m.room === "lobby" &&
    m.text === "hi bob, ça va? \u{1F600}", `bob got ${JSON.stringify(m)} for ${JSON.stringify(sent)}`);

  // bob answers; alice's next event is his message, not her own.
  const sent2 = await t.ack(b, 3000, "message", "lobby", "hi alice");
  t.check(sent2.ok === true && sent2.id !== sent.id, `bob's ack: ${JSON.stringify(sent2)}`);
  m = await expectNext(a, "message", "alice after bob's message");
  t.check(m.nick === "bob" && m.id === sent2.id && m.text === "hi alice", `alice got ${JSON.stringify(m)}`);

  // carol, outside the room until now: her first event is the one after she joined.
  r = await t.ack(c, 3000, "nick", "carol");
  t.check(r.ok === true, `carol's nick: ${JSON.stringify(r)}`);
  r = await t.ack(c, 3000, "join", "lobby");
  t.check(r.ok === true, `carol joins: ${JSON.stringify(r)}`);
  await expectNext(a, "joined", "alice after carol joined");
  await expectNext(b, "joined", "bob after carol joined");
  await t.ack(a, 3000, "message", "lobby", "welcome carol");
  m = await expectNext(c, "message", "carol's first event");
  t.check(m.text === "welcome carol", `carol got ${JSON.stringify(m)} first`);
  await expectNext(b, "message", "bob: welcome carol");

  // Bad arguments and unknown events get error acks.
  r = await t.ack(a, 3000, "message", "lobby", 42);
  t.check(r.ok === false && /^bad arguments/.test(r.error), `a number as text: ${JSON.stringify(r)}`);
  r = await t.ack(a, 3000, "typing", "kitchen", true);
  t.check(r.ok === false && r.error === "not in that room", `typing elsewhere: ${JSON.stringify(r)}`);
  r = await t.ack(a, 3000, "dance");
  t.check(r.ok === false && r.error === "unknown event", `unknown event: ${JSON.stringify(r)}`);

  // bob leaves: alice and carol are told; his nick is free again.
  b.disconnect();
  m = await expectNext(a, "left", "alice after bob left");
  t.check(m.nick === "bob" && m.room === "lobby", `left notice: ${JSON.stringify(m)}`);
  await expectNext(c, "left", "carol after bob left");
  const d = await client();
  r = await t.ack(d, 3000, "nick", "bob");
  t.check(r.ok === true, `"bob" after bob left (worker ${d.worker}): ${JSON.stringify(r)}`);

  t.check(a.io.engine.transport.name === "websocket", `alice's transport: ${a.io.engine.transport.name}`);
  t.pass("nicks unique across workers, join/leave/typing notices to the others only, acked messages with id and time");
}, 60000);
