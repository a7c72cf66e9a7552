// binary.js PORT TRANSPORT - binary attachments with the real
// socket.io-client over one transport (websocket or polling) on -w 4: two
// clients on different workers in one room exchange a Buffer with every
// byte value, an object holding two Buffers (one nested, one empty) among
// plain values, and a 200 kB Buffer; the other client gets the same bytes
// in the same places (BINARY_EVENT relayed byte for byte across workers),
// both ways; a binary event with an ack gets its ack; the sockets stay
// connected after all of it.
"use strict";
const crypto = require("crypto");
const t = require("./lib");

const transport = process.argv[3] || "websocket";

function same(x, y) {
  return Buffer.isBuffer(x) && Buffer.isBuffer(y) && x.equals(y);
}

t.run(async () => {
  const by = await t.spread([0, 1], 40, { transports: [transport] });
  const a = by[0][0], b = by[1][0];
  t.log(`${transport}: a ${a.sid} on worker ${a.worker}, b ${b.sid} on worker ${b.worker}`);
  for (const s of [a, b]) {
    t.check(s.io.engine.transport.name === transport, `transport ${s.io.engine.transport.name}`);
    const r = await t.ack(s, 2000, "join", "bin");
    t.check(r.ok === true, `join: ${JSON.stringify(r)}`);
  }
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const one = crypto.randomBytes(1000), two = crypto.randomBytes(3);
  const big = crypto.randomBytes(200 * 1024);

  // One Buffer, a to b.
  let got = t.once(b, "blob", 5000);
  a.emit("blob", all);
  let [x] = await got;
  t.check(same(Buffer.from(x), all), `b got ${x && x.length} bytes, not the 256 sent`);

  // An object with two Buffers and plain values, b to a, with an ack.
  got = t.once(a, "pair", 5000);
  const r = await t.ack(b, 3000, "pair", { first: one, more: { second: two, empty: Buffer.alloc(0) }, n: 7, s: "x" },
    "tail", two);
  t.check(r.ok === true && r.rooms === 1, `ack of a binary event: ${JSON.stringify(r)}`);
  const [obj, tail, again] = await got;
  t.check(same(Buffer.from(obj.first), one) && same(Buffer.from(obj.more.second), two), "the two buffers differ");
  t.check(Buffer.from(obj.more.empty).length === 0 && obj.n === 7 && obj.s === "x" && tail === "tail",
    `the plain values: ${JSON.stringify({ n: obj.n, s: obj.s, tail })}`);
  t.check(same(Buffer.from(again), two), "the third argument's buffer");

  // A large one.
  got = t.once(b, "big", 10000);
  a.emit("big", big);
  [x] = await got;
  t.check(same(Buffer.from(x), big), `the 200 kB buffer arrived as ${x && x.length} different bytes`);

  // Text still works after binary, and nobody was dropped.
  got = t.once(a, "text", 3000);
  b.emit("text", "after");
  t.check((await got)[0] === "after", "a text event after the binary ones");
  t.check(a.connected && b.connected, "a socket was disconnected");
  t.pass(`binary over ${transport}: buffers, nested buffers, binary ack, 200 kB`);
}, 30000);
