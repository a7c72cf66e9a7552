// redis_server.js PORT REDIS_PORT PREFIX - "the Node host" of test_redis.c:
// a Node.js socket.io 4 server (the real one) with @socket.io/redis-adapter
// on Redis at 127.0.0.1:REDIS_PORT and key PREFIX, listening on
// 127.0.0.1:PORT.  It behaves as a clusterd events service without
// handlers does, so the scenario (redis.js) treats its clients as it treats
// clusterd's: the events `join` and `leave` (a room name; acked with
// {ok, room}), `whoami` (acked with {sid, worker: "node", rooms, namespace})
// and any other event relayed to the sender's rooms (not to the sender),
// through the adapter, hence to every host sharing the Redis.
//
// redis.js forks it: on the IPC channel it says {ready: true} once
// listening and connected to Redis, and takes commands
// {id, op, nsp, rooms, except, event, args, join, close} answered
// {id, ok, error, result}, on namespace nsp (default "/"):
//   emit         io.of(nsp).to(rooms).except(except).emit(event, ...args)
//   socketsJoin  io.of(nsp).in(rooms).except(except).socketsJoin(join)
//   socketsLeave, disconnectSockets (close) the same way
//   fetchSockets the same way; result: the sids found, sorted (the
//                adapter asks every server on the request channel and
//                waits for as many answers as it has subscribers)
// The namespaces "/" and "/chat" exist.
// An argument {"$bin": [bytes]} is sent as a Buffer (binary attachment).
// Redis errors are logged, not fatal: node-redis reconnects by itself
// (the scenario restarts Redis).  Without IPC it just serves until killed.
"use strict";
const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const port = Number(process.argv[2]);
const redisPort = Number(process.argv[3]);
const prefix = process.argv[4] || "socket.io";
if (!port || !redisPort) {
  console.error("usage: node redis_server.js PORT REDIS_PORT [PREFIX]");
  process.exit(2);
}

function log(...a) {
  console.log(`[${new Date().toISOString().slice(11, 23)}] node-host:`, ...a);
}

// {"$bin": [..]} -> Buffer, recursively in arrays and plain objects.
function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    if (Array.isArray(v.$bin)) return Buffer.from(v.$bin);
    const o = {};
    for (const k of Object.keys(v)) o[k] = revive(v[k]);
    return o;
  }
  return v;
}

function onConnection(socket) {
  socket.onAny((name, ...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (name === "join" || name === "leave") {
      const room = args[0];
      if (typeof room !== "string" || room === "") {
        if (ack) ack({ ok: false, error: "bad room" });
        return;
      }
      if (name === "join") socket.join(room);
      else socket.leave(room);
      if (ack) ack({ ok: true, room });
    } else if (name === "whoami") {
      if (ack) ack({ sid: socket.id, worker: "node", rooms: socket.rooms.size - 1, namespace: socket.nsp.name });
    } else {
      const rooms = [...socket.rooms].filter((r) => r !== socket.id);
      if (rooms.length) socket.to(rooms).emit(name, ...args);
      if (ack) ack({ ok: true });
    }
  });
}

// The operator a command targets: io.to(rooms).except(except).
function target(io, cmd) {
  let op = io.of(cmd.nsp || "/");
  if (cmd.rooms && cmd.rooms.length) op = op.to(cmd.rooms);
  if (cmd.except && cmd.except.length) op = op.except(cmd.except);
  return op;
}

async function command(io, cmd) {
  const op = target(io, cmd);
  switch (cmd.op) {
    case "fetchSockets": return (await op.fetchSockets()).map((s) => s.id).sort();
    case "emit": op.emit(cmd.event, ...revive(cmd.args || [])); break;
    case "socketsJoin": op.socketsJoin(cmd.join); break;
    case "socketsLeave": op.socketsLeave(cmd.join); break;
    case "disconnectSockets": op.disconnectSockets(!!cmd.close); break;
    case "quit": process.exit(0); break;
    default: throw new Error(`unknown op ${cmd.op}`);
  }
}

async function main() {
  const url = `redis://127.0.0.1:${redisPort}`;
  const pub = createClient({ url });
  const sub = pub.duplicate();
  for (const [name, c] of [["pub", pub], ["sub", sub]]) {
    let down = false;
    c.on("error", (e) => { if (!down) log(`redis ${name}: ${e.message}`); down = true; });
    c.on("ready", () => { if (down) log(`redis ${name}: ready again`); down = false; });
  }
  await Promise.all([pub.connect(), sub.connect()]);
  const server = http.createServer();
  const io = new Server(server, { adapter: createAdapter(pub, sub, { key: prefix }) });
  io.on("connection", onConnection);
  io.of("/chat").on("connection", onConnection);
  await new Promise((res) => server.listen(port, "127.0.0.1", res));
  log(`listening on ${port}, redis ${url}, key ${prefix}`);
  if (process.send) {
    process.on("message", (cmd) => {
      command(io, cmd).then((result) => process.send({ id: cmd.id, ok: true, result }),
        (e) => process.send({ id: cmd.id, ok: false, error: e.message }));
    });
    process.on("disconnect", () => process.exit(0)); // the scenario is gone
    process.send({ ready: true });
  }
}

main().catch((e) => {
  console.error(`node-host: ${e.stack || e}`);
  process.exit(1);
});
