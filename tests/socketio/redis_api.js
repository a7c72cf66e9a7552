// redis_api.js PORT_A PORT_B NODE_PORT REDIS_PORT PREFIX LOGDIR - the
// handler API across hosts through Redis: clusterd hosts A and B run the
// test handler module (tests/integration/sio_test_module.c, handlers =
// sio-test, on "/") with adapter = redis; the Node host is
// redis_server.js (forked here).  What the handlers do with
// cd_sio_broadcast, cd_sio_sockets_join, cd_sio_sockets_leave and
// cd_sio_sockets_disconnect reaches the sockets of the other clusterd host
// and of the Node host, each once:
//   to-room r "" n   "room-msg" [r, n] to room r: on A, B and Node
//   pull r t         every socket in r joins t (the Node host's fetchSockets
//                    in t finds them all, its io.to("t").emit reaches them)
//   push r t         they leave t (fetchSockets finds none, the emitter's
//                    event to t reaches nobody)
//   kick v           the sockets in v, on B and on Node, are disconnected
// Every wait is bounded.
"use strict";
const { createClient } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");
const t = require("./lib");
const { portA, portB, nodePort, prefix, redisUrl, client, counts, exactly, startNodeHost, nodeCmd } =
  require("./redis_lib");

// A clusterd socket's handler call: acked [rc], 0 for done.
async function call(s, ...args) {
  const rc = await t.ack(s, 3000, ...args);
  t.check(rc === 0, `${s.label} ${args.join(" ")}: ${JSON.stringify(rc)}`);
}

async function nodeJoin(s, room) {
  const r = await t.ack(s, 3000, "join", room);
  t.check(r.ok === true, `${s.label} join ${room}: ${JSON.stringify(r)}`);
}

// Polls the Node host's fetchSockets in room (every host answers on the
// request channel) until it finds exactly the sockets of `want`.
async function inRoom(room, want, what) {
  const ids = JSON.stringify(want.map((s) => s.sid).sort());
  const end = Date.now() + 10000;
  let got;
  while ((got = JSON.stringify(await nodeCmd({ op: "fetchSockets", rooms: [room] }))) !== ids) {
    t.check(Date.now() < end, `${what}: fetchSockets in ${room} finds ${got}, not ${ids}`);
    await t.sleep(100);
  }
}

t.run(async () => {
  await startNodeHost("node-host-api.log");
  const ec = createClient({ url: redisUrl });
  ec.on("error", () => {});
  await ec.connect();
  const emitter = new Emitter(ec, { key: prefix });

  const ha = await client(portA, "ha"), hb = await client(portB, "hb"), hn = await client(nodePort, "hn");
  const vb = await client(portB, "vb"), vn = await client(nodePort, "vn");
  await call(ha, "join", "r");
  await call(hb, "join", "r");
  await nodeJoin(hn, "r");
  await call(vb, "join", "v");
  await nodeJoin(vn, "v");
  // Until the emitter reaches every host (each is subscribed once ready).
  for (let i = 0; ![ha, hb, hn].every((s) => s.rec.count("probe") > 0); i++) {
    t.check(i < 50, `the emitter's probes: ${counts("probe")}`);
    emitter.to("r").emit("probe", i);
    await t.sleep(200);
  }

  await call(ha, "to-room", "r", "", "7");
  await exactly("room-msg", [ha, hb, hn]);
  t.check(JSON.stringify(hn.rec.list.find((e) => e[0] === "room-msg")[1]) === '["r","7"]',
    `room-msg at the Node host: ${JSON.stringify(hn.rec.list.find((e) => e[0] === "room-msg"))}`);

  await call(hb, "pull", "r", "t");
  await inRoom("t", [ha, hb, hn], "pull r t from B");
  await nodeCmd({ op: "emit", rooms: ["t"], event: "to_t" });
  await exactly("to_t", [ha, hb, hn]);
  await call(ha, "push", "r", "t");
  await inRoom("t", [], "push r t from A");
  emitter.to("t").emit("to_t_after");
  await exactly("to_t_after", []);

  await call(ha, "kick", "v");
  await t.until(() => vb.drops.length === 1 && vn.drops.length === 1, 8000,
    `kick: vb ${JSON.stringify(vb.drops)} vn ${JSON.stringify(vn.drops)}`);
  t.check(vb.drops[0] === "io server disconnect" && vn.drops[0] === "io server disconnect",
    `reasons: ${vb.drops[0]}, ${vn.drops[0]}`);
  await t.sleep(300);
  t.check(ha.connected && hb.connected && hn.connected, "kick v disconnected a socket outside v");
  await ec.quit().catch(() => {});
  t.pass("the handler API's broadcast, sockets_join, sockets_leave and sockets_disconnect across hosts");
}, 60000);
