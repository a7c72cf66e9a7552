// redis_one.js PORT REDIS PREFIX [PASSWORD] - one clusterd host with
// adapter = redis talks to Redis both ways, with the real socket.io-client,
// @socket.io/redis-emitter and node-redis, whatever the way to Redis:
// REDIS is a TCP port on 127.0.0.1 or the path of its unix socket, and
// PASSWORD (requirepass) is given to Redis by the Node clients too.
//   in   the emitter's event to room r reaches the client in r, once
//   out  the client's event, relayed to its room r, is published on
//        "<PREFIX>#/#r#" with its name and argument inside
// Every wait is bounded.
"use strict";
const { createClient } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");
const t = require("./lib");

const where = process.argv[3];
const prefix = process.argv[4] || "socket.io";
const password = process.argv[5];
const opts = /^\d+$/.test(where) ? { socket: { host: "127.0.0.1", port: Number(where) } } : { socket: { path: where } };
if (password) opts.password = password;

t.run(async () => {
  const ec = createClient(opts);
  ec.on("error", (e) => t.log(`emitter's redis: ${e.message}`));
  await ec.connect();
  const sub = ec.duplicate();
  sub.on("error", (e) => t.log(`subscriber's redis: ${e.message}`));
  await sub.connect();
  const seen = [];
  await sub.pSubscribe(`${prefix}#/#*`, (msg, channel) => seen.push([channel, msg]), true);
  const emitter = new Emitter(ec, { key: prefix });

  const c = await t.connect();
  const rec = t.record(c);
  const r = await t.ack(c, 3000, "join", "r");
  t.check(r.ok === true, `join: ${JSON.stringify(r)}`);

  // In: the emitter reaches the host's client (the host is subscribed
  // once ready: a few tries cover the join's own way to the worker).
  for (let i = 0; rec.count("probe") === 0; i++) {
    t.check(i < 30, "the emitter's events never reach the client");
    emitter.to("r").emit("probe", i);
    await t.sleep(200);
  }
  emitter.to("r").emit("in", "from the emitter");
  await t.until(() => rec.count("in") === 1, 5000, "the emitter's event");
  await t.sleep(300);
  t.check(rec.count("in") === 1, `the emitter's event arrived ${rec.count("in")} times`);

  // Out: what the client relays goes to Redis.
  c.emit("out", "héllo from the client");
  const has = (m, s) => m.includes(Buffer.from(s));
  await t.until(() => seen.some(([ch, m]) => ch.toString() === `${prefix}#/#r#` && has(m, "out") &&
    has(m, "héllo from the client")), 5000, `the client's event on ${prefix}#/#r#`);
  await sub.quit().catch(() => {});
  await ec.quit().catch(() => {});
  t.pass(`clusterd and Redis at ${where} both ways${password ? " with a password" : ""}`);
}, 40000);
