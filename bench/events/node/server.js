// server.js - the Node.js peer of clusterd's events service for the fan-out
// benchmark: Node.js cluster + socket.io + @socket.io/cluster-adapter, with
// the semantics of services/events/ (README, "events (Socket.IO)"):
//
//   join / leave (room)  -> socket.join/leave, ack {ok, room}
//   whoami               -> ack {sid, worker, rooms}
//   any other event      -> socket.to(its rooms).emit(event, ...args): every
//                           other member of its rooms, on every worker, once
//   POST /socket.io/publish {"room","event","args"} -> io.to(room).emit, 202
//
// Transport: WebSocket only by default (the fan-out rows), so plain
// Node.js cluster is enough: a WebSocket session is one TCP connection.
// Connections are spread by the primary (cluster's default round-robin
// scheduling on Linux).  With "polling" (the polling row, issue 12) the
// server takes both transports, and a session spans many HTTP requests, so
// the primary listens itself and routes each connection to the worker that
// owns its session with @socket.io/sticky (setupMaster/setupWorker, as
// socket.io's documentation does for cluster), the Node counterpart of
// clusterd's steering.  Cross-worker broadcasts go worker -> primary ->
// other workers over the cluster IPC channel (setupPrimary / createAdapter
// of @socket.io/cluster-adapter).
//
//   node server.js PORT [WORKERS [polling]]
//
// The primary prints "READY <port>" once every worker is listening, and
// stops the workers on SIGTERM/SIGINT.
"use strict";
const cluster = require("cluster");
const http = require("http");

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] || 2);
const polling = process.argv[4] === "polling";
if (!port || !(workers >= 1)) {
  console.error("usage: node server.js PORT [WORKERS]");
  process.exit(2);
}

// Socket.IO reserves these names (the same list as cd_events__reserved_event in services/events/events_proto.c).
const RESERVED = new Set(["connect", "connect_error", "disconnect", "disconnecting", "newListener",
  "removeListener"]);
const MAX_ROOMS = 64;

if (cluster.isPrimary) {
  const { setupPrimary } = require("@socket.io/cluster-adapter");
  setupPrimary();
  let listening = 0;
  let stopping = false;
  // @socket.io/sticky passes the first bytes of a connection as a Buffer.
  if (polling) cluster.setupPrimary({ serialization: "advanced" });
  for (let i = 0; i < workers; i++) cluster.fork({ BENCH_SLOT: String(i) });
  if (polling) {
    // The primary accepts and hands each connection to its session's worker.
    const { setupMaster } = require("@socket.io/sticky");
    const front = http.createServer();
    setupMaster(front, { loadBalancingMethod: "round-robin" }); // new sessions alternate, as the kernel spreads clusterd's
    let ready = 0;
    cluster.on("message", (w, m) => {
      if (m && m.benchReady && ++ready === workers) front.listen(port, "127.0.0.1", () => console.log(`READY ${port}`));
    });
  }
  cluster.on("listening", () => {
    if (++listening === workers) console.log(`READY ${port}`);
  });
  cluster.on("exit", (w, code, sig) => {
    if (!stopping) {
      // A benchmark peer must not heal silently: the run would be wrong.
      console.error(`worker ${w.process.pid} died (${sig || code}); stopping`);
      stop(1);
    } else if (Object.keys(cluster.workers).length === 0) {
      process.exit(0);
    }
  });
  const stop = (rc = 0) => {
    if (stopping) return;
    stopping = true;
    for (const id in cluster.workers) cluster.workers[id].process.kill("SIGTERM");
    setTimeout(() => {
      for (const id in cluster.workers) cluster.workers[id].process.kill("SIGKILL");
      process.exit(rc);
    }, 3000).unref();
    if (Object.keys(cluster.workers).length === 0) process.exit(rc);
  };
  process.on("SIGTERM", () => stop(0));
  process.on("SIGINT", () => stop(0));
} else {
  const { Server } = require("socket.io");
  const { createAdapter } = require("@socket.io/cluster-adapter");
  const slot = Number(process.env.BENCH_SLOT || 0);

  const httpServer = http.createServer((req, res) => {
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("not found\n");
  });
  const io = new Server(httpServer, {
    transports: polling ? ["polling", "websocket"] : ["websocket"],
    serveClient: false,
    pingInterval: 25000, // clusterd's ping_interval / ping_timeout defaults
    pingTimeout: 20000,
    maxHttpBufferSize: 1e6, // max_message_size
    adapter: createAdapter(),
  });

  // POST /socket.io/publish: engine.io claims every request under
  // /socket.io/, so answer this one before it does.
  const inner = httpServer.listeners("request").slice(0);
  httpServer.removeAllListeners("request");
  httpServer.on("request", (req, res) => {
    if (req.url !== "/socket.io/publish") {
      for (const l of inner) l.call(httpServer, req, res);
      return;
    }
    const fail = (status, msg) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ ok: false, error: msg }));
    };
    if (req.method !== "POST") return fail(405, "POST only");
    let body = "";
    let size = 0;
    req.setEncoding("utf8");
    req.on("data", (c) => {
      size += c.length;
      if (size <= 1 << 20) body += c;
    });
    req.on("end", () => {
      if (size > 1 << 20) return fail(413, "body too large");
      let m;
      try {
        m = JSON.parse(body);
      } catch (e) {
        return fail(400, "expected a JSON object");
      }
      if (!m || typeof m.room !== "string" || !m.room || m.room.length > 128)
        return fail(400, "\"room\" must be a non-empty string of at most 128 bytes");
      if (typeof m.event !== "string" || !m.event || RESERVED.has(m.event))
        return fail(400, "\"event\" must be a non-empty string, not a reserved name");
      if (m.args !== undefined && !Array.isArray(m.args)) return fail(400, "\"args\" must be an array");
      io.to(m.room).emit(m.event, ...(m.args || []));
      res.writeHead(202, { "Content-Type": "application/json" });
      res.end("{\"ok\":true}");
    });
  });

  io.on("connection", (socket) => {
    const rooms = () => [...socket.rooms].filter((r) => r !== socket.id);
    socket.onAny((event, ...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      if (event === "join" || event === "leave") {
        const room = args[0];
        if (typeof room !== "string" || !room || room.length > 128) {
          if (ack) ack({ ok: false, error: "the room must be a non-empty string of at most 128 bytes" });
          return;
        }
        if (event === "join") {
          if (!socket.rooms.has(room) && rooms().length >= MAX_ROOMS) {
            if (ack) ack({ ok: false, error: "too many rooms (max_rooms)" });
            return;
          }
          socket.join(room);
        } else {
          socket.leave(room);
        }
        if (ack) ack({ ok: true, room });
        return;
      }
      if (event === "whoami") {
        if (ack) ack({ sid: socket.id, worker: slot, rooms: rooms().length });
        return;
      }
      if (RESERVED.has(event)) {
        if (ack) ack({ ok: false, error: "reserved event name" });
        return;
      }
      const rs = rooms();
      if (rs.length) socket.to(rs).emit(event, ...args);
      if (ack) ack({ ok: true, rooms: rs.length });
    });
  });

  if (polling) {
    require("@socket.io/sticky").setupWorker(io);
    process.send({ benchReady: true });
  } else {
    httpServer.listen(port, "127.0.0.1");
  }
  process.on("SIGTERM", () => {
    io.close();
    setTimeout(() => process.exit(0), 500).unref();
    httpServer.close(() => process.exit(0));
  });
}
