// idle_clients.js PORT N - N Socket.IO clients for bench/idle.py: each
// connects over WebSocket with the real socket.io-client (bench/events/node's
// copy), joins the room "idle" (the join event both servers of the events
// bench understand) and then sits; pings are answered by the client
// library.  Prints "READY N" on stdout once all are in, then holds them
// until SIGTERM.  Errors go to stderr and exit 1.
"use strict";
const path = require("path");
const { io } = require(path.join(__dirname, "events", "node", "node_modules", "socket.io-client"));

const port = Number(process.argv[2]);
const n = Number(process.argv[3] || 1000);
const url = `http://127.0.0.1:${port}`;
const socks = [];

function one() {
  return new Promise((res, rej) => {
    const s = io(url, { transports: ["websocket"], reconnection: false, timeout: 30000, forceNew: true });
    socks.push(s);
    s.once("connect_error", (e) => rej(new Error(`connect_error: ${e.message}`)));
    s.once("connect", () => {
      s.timeout(30000).emit("join", "idle", (err, r) => {
        if (err || !r || !r.ok) rej(new Error(`join: ${err ? err.message : JSON.stringify(r)}`));
        else res();
      });
    });
  });
}

(async () => {
  for (let base = 0; base < n; base += 200) {
    const batch = [];
    for (let i = base; i < Math.min(n, base + 200); i++) batch.push(one());
    await Promise.all(batch);
  }
  process.stdout.write(`READY ${n}\n`);
})().catch((e) => {
  console.error(e.message);
  process.stdout.write(`FAIL ${e.message}\n`);
  process.exit(1);
});

process.on("SIGTERM", () => {
  for (const s of socks) s.disconnect();
  process.exit(0);
});
