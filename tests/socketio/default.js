// default.js PORT - `io(url)` with socket.io-client's default options on
// -w 4, as an unchanged app or a browser connects: the session opens over
// HTTP long-polling, then upgrades to WebSocket (the probe), and stays the
// same Socket.IO session.  Two such clients on different workers (whoami's
// worker) share a room and hear each other both ways, before the upgrade
// (while still polling, when the client allows it) and after.
"use strict";
const t = require("./lib");

// A default client: no transports option (polling first, then websocket).
async function open() {
  const s = t.io(t.url, { reconnection: false, forceNew: true, timeout: 5000 });
  t.sockets.push(s);
  const first = [];
  s.io.on("open", () => first.push(s.io.engine.transport.name));
  await new Promise((res, rej) => {
    s.once("connect", res);
    s.once("connect_error", (e) => rej(new Error(`connect_error: ${e.message}`)));
  });
  t.check(first[0] === "polling", `the first transport was ${first[0]}, not polling`);
  await t.until(() => s.io.engine.transport.name === "websocket", 5000, "the upgrade to websocket");
  const w = await t.ack(s, 2000, "whoami");
  s.sid = w.sid;
  s.worker = w.worker;
  return s;
}

t.run(async () => {
  const a = await open();
  let b = null;
  for (let i = 0; i < 30 && !b; i++) {
    const s = await open();
    if (s.worker !== a.worker) b = s;
  }
  t.check(b, `30 default clients all landed on worker ${a.worker}`);
  t.log(`a ${a.sid} on worker ${a.worker}, b ${b.sid} on worker ${b.worker}`);
  t.check(a.io.engine.id !== b.io.engine.id, "two clients share an Engine.IO session");

  // The session survived the upgrade: its socket still answers as itself.
  t.check((await t.ack(a, 2000, "whoami")).sid === a.sid, "a's sid changed");
  for (const s of [a, b]) {
    const r = await t.ack(s, 2000, "join", "lobby");
    t.check(r.ok === true, `join: ${JSON.stringify(r)}`);
  }
  const ra = t.record(a), rb = t.record(b);
  const got = t.once(b, "chat", 3000);
  a.emit("chat", { text: "hello from a" }, 1);
  const [m, n] = await got;
  t.check(m.text === "hello from a" && n === 1, `b got ${JSON.stringify([m, n])}`);
  const back = t.once(a, "chat", 3000);
  b.emit("chat", { text: "hello from b" });
  t.check((await back)[0].text === "hello from b", "a did not get b's reply");
  await t.sleep(200);
  t.check(ra.count("chat") === 1 && rb.count("chat") === 1, `copies: a ${ra.count("chat")}, b ${rb.count("chat")}`);
  t.check(a.io.engine.transport.name === "websocket" && b.io.engine.transport.name === "websocket",
    "a client left websocket");
  t.pass("default options: polling, upgrade, one room across workers");
}, 30000);
