// redis.js PORT_A PORT_B NODE_PORT REDIS_PORT PREFIX LOGDIR - rooms across
// hosts through Redis (issue 14), with the real socket.io-client: clusterd
// host A (PORT_A) and host B (PORT_B), both -w 2 with adapter = redis on
// 127.0.0.1:REDIS_PORT and the key PREFIX, the "Node host" (a socket.io
// server with @socket.io/redis-adapter, redis_server.js, forked here on
// NODE_PORT) and @socket.io/redis-emitter.  Two clients on each host (on
// both workers of A and B) join room "r"; one per host also joins "s".
// Every check counts what every socket received: the targets exactly
// once, everyone else never.
//
//   relays     a client's event to its rooms: A->B, B->A, A->Node,
//              Node->A and B; a burst of 300 (once each, in order);
//              binary attachments across
//   Node       io.to("r").emit and io.in(..).socketsJoin from the Node host
//   emitter    broadcast, to a room, with except, to a sid; socketsJoin,
//              socketsLeave, disconnectSockets reaching sockets on A and B
//   more       long-polling clients, several rooms at once, a room name with '#' and UTF-8, a
//              300 KB argument, namespace /chat, the Node host's
//              fetchSockets (answered on the response channel), junk on
//              namespace /junk's channels (counted in
//              clusterd_events_redis_errors_total, nothing else lost), a
//              serverSideEmit (ignored)
//   backend    POST /publish, /join, /leave, /disconnect on A reaching
//              sockets on B and on the Node host
//   restart    Redis killed (SIGKILL): A's local delivery goes on,
//              A's /healthz/ready answers 503 naming the adapter, its
//              /metrics say clusterd_events_redis_up 0, what A relays
//              meanwhile never reaches B; Redis started again on the same
//              port (here, in node's process group, so th_node kills it):
//              ready 200 and redis_up 2 again, delivery in every direction.
//   respawn    a worker of A SIGKILLed: the one the master starts in its
//              slot subscribes (ready 200, redis_up 2) and takes part both ways.
//
// Every wait is bounded.  The helpers shared with redis_api.js are in
// redis_lib.js.
"use strict";
const path = require("path");
const fs = require("fs");
const { spawn, spawnSync } = require("child_process");
const { createClient } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");
const t = require("./lib");
const { portA, portB, nodePort, redisPort, prefix, logdir, redisUrl, children, all, client, spreadOn, join, rooms,
  roomsBecome, counts, exactly, argsOf, backend, ready, readyBecomes, metricSum, metricBecomes, startNodeHost,
  nodeCmd, tcpOpen } = require("./redis_lib");

// Kills Redis (SIGKILL to the pid its INFO gives) and waits until its port refuses.
async function redisKill() {
  const r = spawnSync("redis-cli", ["-p", String(redisPort), "info", "server"], { timeout: 5000 });
  const m = /process_id:(\d+)/.exec(String(r.stdout || ""));
  t.check(m, `redis-cli info server: ${r.status} ${r.stdout} ${r.stderr}`);
  process.kill(Number(m[1]), "SIGKILL");
  t.log(`Redis (pid ${m[1]}) killed`);
  const end = Date.now() + 5000;
  while (await tcpOpen(redisPort)) {
    t.check(Date.now() < end, "Redis still accepts 5 s after SIGKILL");
    await t.sleep(50);
  }
}

async function redisStart() {
  const out = fs.openSync(path.join(logdir, "redis-restarted.log"), "w");
  const p = spawn("redis-server", ["--port", String(redisPort), "--save", "", "--appendonly", "no",
    "--bind", "127.0.0.1"], { stdio: ["ignore", out, out] });
  children.push(p);
  const end = Date.now() + 5000;
  while (!(await tcpOpen(redisPort))) {
    t.check(Date.now() < end, "the restarted Redis does not accept within 5 s (redis-restarted.log)");
    await t.sleep(50);
  }
}

// Until every host can reach every other (each socket of `senders` relays
// "probe" into room r, again every 500 ms, until every other host's
// sockets got one): Redis connections come up asynchronously.
async function crossHostsWork(senders, ms) {
  const end = Date.now() + ms;
  for (let i = 0; ; i++) {
    for (const s of senders) s.emit("probe", s.label, i);
    await t.sleep(500);
    const ok = senders.every((from) => all.filter((s) => s.host !== from.host && s.connected)
      .every((s) => s.rec.list.some((e) => e[0] === "probe" && e[1][0] === from.label)));
    if (ok) return i + 1;
    t.check(Date.now() < end, `hosts do not reach each other within ${ms} ms: ${JSON.stringify(all.map((s) =>
      [s.label, [...new Set(s.rec.list.filter((e) => e[0] === "probe").map((e) => e[1][0]))]]))}`);
  }
}

// ---- the scenario ----

// The sockets and clients every phase uses (set by the scenario).
const h = {};
const others = (s) => h.inR.filter((x) => x !== s);

async function relays() {
  const { a1, a2, b1, b2, n1, n2, inR, emitter, ec } = h;
  // Relays: a client's event to its rooms on every host.
  a1.emit("m_a", { from: "a1", n: [1, 2.5, null, true], s: "héllo \u{1F600}" });
  await exactly("m_a", others(a1));
  t.check(JSON.stringify(argsOf(b1, "m_a")) === JSON.stringify(argsOf(a2, "m_a")) &&
    JSON.stringify(argsOf(n1, "m_a")) === JSON.stringify(argsOf(a2, "m_a")) &&
    argsOf(n1, "m_a")[0].s === "héllo \u{1F600}", `m_a's arguments differ across hosts: ${JSON.stringify(argsOf(n1, "m_a"))}`);
  b2.emit("m_b", "from b2", 42); // b2 is in r and s: each member once
  await exactly("m_b", others(b2));
  t.check(argsOf(a1, "m_b")[1] === 42, `m_b on A: ${JSON.stringify(argsOf(a1, "m_b"))}`);
  n1.emit("m_n", { from: "n1" });
  await exactly("m_n", others(n1));

  // A burst: 300 events from a1, each once and in order on every other host.
  const burst = {};
  for (const s of [b1, b2, n1]) {
    burst[s.label] = [];
    s.on("burst", (i) => burst[s.label].push(i));
  }
  for (let i = 0; i < 300; i++) a1.emit("burst", i);
  const inOrder = (l) => l.length === 300 && l.every((v, i) => v === i);
  const endB = Date.now() + 15000;
  while (!Object.values(burst).every((l) => l.length >= 300)) {
    t.check(Date.now() < endB, `burst: ${Object.entries(burst).map(([k, l]) => `${k}=${l.length}`).join(" ")} of 300`);
    await t.sleep(50);
  }
  await t.sleep(300);
  for (const [k, l] of Object.entries(burst)) t.check(inOrder(l), `burst at ${k}: not 0..299 once in order`);
  t.log("burst: 300 events from a1 once each, in order, on b1, b2, n1");

}

async function binary() {
  const { a1, a2, b1, b2, n1, n2, inR, emitter, ec } = h;
  // Binary attachments across hosts, both ways.
  const bin = Buffer.from([0, 1, 2, 254, 255]);
  a2.emit("bin_a", bin, "with text", { nested: Buffer.from("xyz") });
  await exactly("bin_a", others(a2));
  for (const s of [a1, b1, n1]) {
    const [x, y, z] = argsOf(s, "bin_a");
    t.check(Buffer.isBuffer(x) && x.equals(bin) && y === "with text" && z && Buffer.isBuffer(z.nested) &&
      z.nested.toString() === "xyz", `bin_a at ${s.label}: ${JSON.stringify(argsOf(s, "bin_a"))}`);
  }
  n2.emit("bin_n", bin);
  await exactly("bin_n", others(n2));
  for (const s of [a1, b2]) {
    const [x] = argsOf(s, "bin_n");
    t.check(Buffer.isBuffer(x) && x.equals(bin), `bin_n at ${s.label}: ${JSON.stringify(x)}`);
  }

}

async function nodeHostOps() {
  const { a1, a2, b1, b2, n1, n2, inR, emitter, ec } = h;
  // The Node host's own broadcasts and joins.
  await nodeCmd({ op: "emit", rooms: ["r"], event: "node_r", args: [1] });
  await exactly("node_r", inR);
  await nodeCmd({ op: "emit", rooms: ["s"], except: [b2.sid], event: "node_s", args: [{ $bin: [7, 7] }] });
  await exactly("node_s", [a2, n2]);
  t.check(Buffer.isBuffer(argsOf(a2, "node_s")[0]), `node_s at a2: ${JSON.stringify(argsOf(a2, "node_s"))}`);
  await nodeCmd({ op: "socketsJoin", rooms: [a1.sid, b1.sid], join: "nj" });
  await roomsBecome(a1, 2, "Node socketsJoin");
  await roomsBecome(b1, 2, "Node socketsJoin");
  await nodeCmd({ op: "emit", rooms: ["nj"], event: "node_nj" });
  await exactly("node_nj", [a1, b1]);
  await nodeCmd({ op: "socketsLeave", rooms: ["nj"], join: "nj" });
  await roomsBecome(a1, 1, "Node socketsLeave");
  await roomsBecome(b1, 1, "Node socketsLeave");

}

async function emitterOps() {
  const { a1, a2, b1, b2, n1, n2, inR, emitter, ec } = h;
  // The emitter.
  emitter.emit("e_all", "everyone");
  await exactly("e_all", inR);
  emitter.to("s").emit("e_s", { x: 1 });
  await exactly("e_s", [a2, b2, n2]);
  emitter.to("r").except("s").emit("e_r_not_s");
  await exactly("e_r_not_s", [a1, b1, n1]);
  emitter.to(b1.sid).emit("e_sid", "b1 only");
  await exactly("e_sid", [b1]);
  emitter.to("r").emit("e_bin", Buffer.from([9, 8, 7]));
  await exactly("e_bin", inR);
  t.check(Buffer.isBuffer(argsOf(b2, "e_bin")[0]) && argsOf(b2, "e_bin")[0].equals(Buffer.from([9, 8, 7])),
    `e_bin at b2: ${JSON.stringify(argsOf(b2, "e_bin"))}`);
  emitter.in([a1.sid, b2.sid]).socketsJoin("k");
  await roomsBecome(a1, 2, "emitter socketsJoin");
  await roomsBecome(b2, 3, "emitter socketsJoin");
  emitter.to("k").emit("e_k");
  await exactly("e_k", [a1, b2]);
  emitter.in("k").socketsLeave("k");
  await roomsBecome(a1, 1, "emitter socketsLeave");
  await roomsBecome(b2, 2, "emitter socketsLeave");

}

async function roomsAndNames() {
  const { a1, a2, b1, b2, n1, n2, inR, emitter, ec } = h;
  // Long-polling clients on B and on the Node host get what comes from Redis.
  const polls = [await client(portB, "pb", "", ["polling"]), await client(nodePort, "pn", "", ["polling"])];
  for (const s of polls) await join(s, "poll");
  emitter.to("poll").emit("e_poll", "to pollers");
  await exactly("e_poll", polls);
  await backend("publish", { room: "poll", event: "p_poll", args: [{ x: "é" }] });
  await exactly("p_poll", polls);
  for (const s of polls) {
    s.disconnect();
    all.splice(all.indexOf(s), 1);
  }

  // Several rooms at once (the broadcast channel, not a room's): members once.
  emitter.to(["r", "s"]).emit("e_rs");
  await exactly("e_rs", inR);
  await nodeCmd({ op: "emit", rooms: ["s", "r"], event: "node_rs" });
  await exactly("node_rs", inR);
  await backend("publish", { rooms: ["r", "s"], event: "p_rs" });
  await exactly("p_rs", inR);

  // A room name with '#', a space and UTF-8 in its channel ("<prefix>#/#x#y é#").
  const odd = "x#y é";
  for (const s of [a1, b1, n1]) await join(s, odd);
  emitter.to(odd).emit("e_odd");
  await exactly("e_odd", [a1, b1, n1]);
  await backend("publish", { room: odd, event: "p_odd" });
  await exactly("p_odd", [a1, b1, n1]);
  await nodeCmd({ op: "emit", rooms: [odd], event: "node_odd" });
  await exactly("node_odd", [a1, b1, n1]);
  for (const s of [a1, b1, n1]) t.check((await t.ack(s, 3000, "leave", odd)).ok === true, `${s.label} leave`);

  // A large argument (300 KB) relayed from B.
  const big = "é".repeat(150000);
  b2.emit("m_big", big);
  await exactly("m_big", others(b2));
  t.check(argsOf(a1, "m_big")[0] === big && argsOf(n1, "m_big")[0] === big, "m_big arrived changed");

}

async function namespacesAndRequests() {
  const { a1, a2, b1, b2, n1, n2, inR, emitter, ec } = h;
  // Namespace /chat: its own channels; its room r is not "/"'s.
  const chat = [await client(portA, "ca", "/chat"), await client(portB, "cb", "/chat"),
    await client(nodePort, "cn", "/chat")];
  for (const s of chat) await join(s, "r");
  await t.sleep(200);
  chat[0].emit("m_chat", "in /chat");
  await exactly("m_chat", [chat[1], chat[2]]);
  emitter.of("/chat").to("r").emit("e_chat");
  await exactly("e_chat", chat);
  await backend("publish", { namespace: "/chat", room: "r", event: "p_chat" });
  await exactly("p_chat", chat);
  await nodeCmd({ op: "emit", nsp: "/chat", rooms: ["r"], event: "node_chat" });
  await exactly("node_chat", chat);
  for (const s of chat) {
    s.disconnect();
    all.splice(all.indexOf(s), 1);
  }

  // fetchSockets from the Node host: the request and response channels.
  const ids = await nodeCmd({ op: "fetchSockets", rooms: ["s"] });
  t.check(JSON.stringify(ids) === JSON.stringify([a2.sid, b2.sid, n2.sid].sort()),
    `fetchSockets in s from the Node host: ${JSON.stringify(ids)}`);

  // Junk on the channels of namespace /junk, which only the clusterd hosts
  // have (the Node adapter, which does not catch what its decoder throws,
  // would die of it): counted as errors, nothing else lost.
  const errors0 = await metricSum("clusterd_events_redis_errors_total");
  const junk = `${prefix}#/junk#`, junkReq = `${prefix}-request#/junk#`;
  await ec.publish(junk, Buffer.from([0xc1, 0x93, 0xff])); // not msgpack
  await ec.publish(`${junk}r#`, "[1,2"); // not msgpack either
  await ec.publish(`${junk}r#`, Buffer.from([0x93, 0x01, 0x02, 0x03])); // [1, 2, 3]
  await ec.publish(`${junk}r#`, Buffer.from([0x93, 0xa1, 0x78, 0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0x02, 0x80]));
  await ec.publish(junkReq, '{"type":2,"opts":'); // cut short
  await ec.publish(junkReq, '{"type":2,"opts":{"rooms":"r"},"rooms":[1]}'); // wrong types
  emitter.serverSideEmit("hello", 1); // a request clusterd has no use for
  const end0 = Date.now() + 5000;
  let errors;
  while ((errors = await metricSum("clusterd_events_redis_errors_total")) <= errors0) {
    t.check(Date.now() < end0, `clusterd_events_redis_errors_total on A stays ${errors} after junk messages`);
    await t.sleep(100);
  }
  t.log(`clusterd_events_redis_errors_total on A: ${errors0} -> ${errors}`);
  a1.emit("after_junk", 1);
  await exactly("after_junk", others(a1));
  t.check((await rooms(a1)) === 1 && (await rooms(b1)) === 1, "junk changed the rooms");

}

async function backendOps() {
  const { a1, a2, b1, b2, n1, n2, inR, emitter, ec } = h;
  // The backend endpoints of A, reaching B and the Node host.
  await backend("publish", { room: "r", event: "p_r", args: [{ via: "A" }] });
  await exactly("p_r", inR);
  await backend("publish", { room: "s", except: [b2.sid], event: "p_s" });
  await exactly("p_s", [a2, n2]);
  await backend("join", { rooms: [b1.sid, n1.sid], join: "j" });
  await roomsBecome(b1, 2, "A's /join");
  await roomsBecome(n1, 2, "A's /join");
  await backend("publish", { room: "j", event: "p_j" });
  await exactly("p_j", [b1, n1]);
  await backend("leave", { rooms: [b1.sid, n1.sid], leave: "j" });
  await roomsBecome(b1, 1, "A's /leave");
  await roomsBecome(n1, 1, "A's /leave");
  await backend("publish", { room: "j", event: "p_j2" });
  await exactly("p_j2", []);

}

async function disconnects() {
  const { a1, a2, b1, b2, n1, n2, inR, emitter, ec } = h;
  // Disconnects: A's /disconnect to sockets on B and the Node host, the
  // emitter's to sockets on A and B.
  const vb = await client(portB, "vb"), vn = await client(nodePort, "vn");
  const va = await client(portA, "va"), vb2 = await client(portB, "vb2");
  const victims = [vb, vn, va, vb2];
  await backend("disconnect", { rooms: [vb.sid, vn.sid] });
  emitter.in([va.sid, vb2.sid]).disconnectSockets();
  const end = Date.now() + 8000;
  while (!victims.every((s) => s.drops.length === 1)) {
    t.check(Date.now() < end, `disconnects: ${victims.map((s) => `${s.label}=${JSON.stringify(s.drops)}`).join(" ")}`);
    await t.sleep(20);
  }
  for (const s of victims) t.check(s.drops[0] === "io server disconnect", `${s.label}'s reason: ${s.drops[0]}`);
  await t.sleep(300);
  t.check(inR.every((s) => s.connected && s.drops.length === 0), "a socket that was not targeted was disconnected");
  for (const s of victims) all.splice(all.indexOf(s), 1);

}

async function outage() {
  const { a1, a2, b1, b2, n1, n2, inR, emitter, ec } = h;
  // Redis goes away: local delivery on A goes on, A says it is degraded.
  await metricBecomes("clusterd_events_redis_up", 2, 10000, "before the restart");
  await redisKill();
  const r503 = await readyBecomes(portA, 503, /redis adapter disconnected/, 10000, "A during the outage");
  t.log(`A during the outage: ${r503.status} ${r503.body}`);
  await readyBecomes(portB, 503, /redis adapter disconnected/, 10000, "B during the outage");
  await metricBecomes("clusterd_events_redis_up", 0, 10000, "during the outage");
  a1.emit("o_a", "local only"); // A's other worker gets it; nobody else ever
  await exactly("o_a", [a2]);

  // Redis is back on the same port: everything as before.
  await redisStart();
  await readyBecomes(portA, 200, null, 20000, "A after the restart");
  await readyBecomes(portB, 200, null, 20000, "B after the restart");
  t.log(`hosts reach each other again after ${await crossHostsWork([a1, b1, n1], 20000)} probe rounds`);
  await metricBecomes("clusterd_events_redis_up", 2, 10000, "after the restart");
  t.check(a1.rec.count("o_a") === 0 && b1.rec.count("o_a") === 0 && n1.rec.count("o_a") === 0,
    `what A relayed during the outage was replayed: ${counts("o_a")}`);
  a2.emit("after_a", 1);
  await exactly("after_a", others(a2));
  b1.emit("after_b", 2);
  await exactly("after_b", others(b1));
  n2.emit("after_n", 3);
  await exactly("after_n", others(n2));
  emitter.to("s").emit("after_e");
  await exactly("after_e", [a2, b2, n2]);
  await backend("publish", { room: "r", event: "after_p" });
  await exactly("after_p", inR);

}

async function respawn() {
  const { a1, a2, b1, b2, n1, n2, inR, emitter, ec } = h;
  // A worker of A killed: the master starts another in its slot, which
  // subscribes on its own (ready 200, redis_up 2 again) and gets B's relays.
  const m = await t.metrics("clusterd_worker_uptime_seconds");
  const key = Object.keys(m).find((k) => k.includes(`slot="${a1.worker}"`));
  const pid = Number(/pid="(\d+)"/.exec(key || "")?.[1]);
  t.check(pid > 0, `no pid for A's slot ${a1.worker} in ${JSON.stringify(Object.keys(m))}`);
  process.kill(pid, "SIGKILL");
  await t.until(() => !a1.connected, 5000, "a1 sees its worker die");
  all.splice(all.indexOf(a1), 1);
  const endR = Date.now() + 20000;
  for (;;) {
    const u = await t.metrics("clusterd_worker_uptime_seconds");
    const k = Object.keys(u).find((x) => x.includes(`slot="${a1.worker}"`) && !x.includes(`pid="${pid}"`));
    if (k && (await ready(portA)).status === 200 && (await metricSum("clusterd_events_redis_up")) === 2) break;
    t.check(Date.now() < endR, `A's slot ${a1.worker} not back, subscribed, within 20 s`);
    await t.sleep(200);
  }
  let a3 = null;
  for (let i = 0; i < 40 && !a3; i++) {
    const s = await client(portA, "a3");
    if (s.worker === a1.worker) a3 = s;
    else {
      all.pop();
      s.disconnect();
    }
  }
  t.check(a3, `40 clients on A, none on the new worker of slot ${a1.worker}`);
  a3.host = "A";
  await join(a3, "r");
  const inR2 = [a2, a3, b1, b2, n1, n2];
  b1.emit("respawn_b", 1);
  await exactly("respawn_b", inR2.filter((s) => s !== b1));
  a3.emit("respawn_a", 2);
  await exactly("respawn_a", inR2.filter((s) => s !== a3));
}

t.run(async () => {
  await startNodeHost();
  const ec = createClient({ url: redisUrl });
  ec.on("error", () => {});
  await ec.connect();
  const emitter = new Emitter(ec, { key: prefix });

  const [a1, a2] = await spreadOn(portA, "a");
  const [b1, b2] = await spreadOn(portB, "b");
  const n1 = await client(nodePort, "n1");
  const n2 = await client(nodePort, "n2");
  for (const s of [a1, a2]) s.host = "A";
  for (const s of [b1, b2]) s.host = "B";
  for (const s of [n1, n2]) s.host = "N";
  t.log(`a1 ${a1.sid}@${a1.worker} a2 ${a2.sid}@${a2.worker} b1 ${b1.sid}@${b1.worker} b2 ${b2.sid}@${b2.worker}` +
    ` n1 ${n1.sid} n2 ${n2.sid}`);
  for (const s of [a1, a2, b1, b2, n1, n2]) await join(s, "r");
  for (const s of [a2, b2, n2]) await join(s, "s");
  const inR = [a1, a2, b1, b2, n1, n2];
  t.log(`hosts reach each other after ${await crossHostsWork([a1, b1, n1], 10000)} probe rounds`);

  Object.assign(h, { a1, a2, b1, b2, n1, n2, inR, emitter, ec });
  for (const phase of [relays, binary, nodeHostOps, emitterOps, roomsAndNames, namespacesAndRequests,
    backendOps, disconnects, outage, respawn]) await phase();
  await ec.quit().catch(() => {});
  t.pass("rooms across clusterd A, clusterd B and Node through Redis, before and after a Redis restart");
}, 150000);
