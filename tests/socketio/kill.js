// kill.js PORT WORKER_PID WORKER_SLOT - SIGKILLs a worker under connected
// clients: its clients see the transport close, reconnect by themselves
// (socket.io-client's own reconnection, to whichever worker the kernel
// picks), rejoin their room, and receive again; the clients of the other
// worker never notice.
"use strict";
const t = require("./lib");
const pid = Number(process.argv[3]), slot = Number(process.argv[4]);

t.run(async () => {
  const opts = { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500, randomizationFactor: 0 };
  const clients = [];
  const perWorker = { 0: 0, 1: 0 };
  for (let i = 0; i < 40 && (perWorker[0] < 3 || perWorker[1] < 3); i++) {
    const s = await t.connect(opts);
    const st = { s, worker: -1, joined: false, drops: 0, got: [] };
    // Every (re)connection rejoins the room, as an application would.
    const rejoin = async () => {
      st.joined = false;
      const w = await t.ack(s, 2000, "whoami");
      st.worker = w.worker;
      const r = await t.ack(s, 2000, "join", "k");
      st.joined = r.ok === true;
    };
    s.on("connect", () => rejoin().catch((e) => t.log(`rejoin failed: ${e.message}`)));
    s.on("disconnect", () => { st.drops++; st.joined = false; });
    s.on("tick", (n) => st.got.push(n));
    await rejoin();
    perWorker[st.worker]++;
    clients.push(st);
  }
  t.check(perWorker[0] >= 3 && perWorker[1] >= 3, `clients per worker: ${JSON.stringify(perWorker)}`);
  const victims = clients.filter((c) => c.worker === slot);
  const others = clients.filter((c) => c.worker !== slot);
  t.log(`${clients.length} clients, ${victims.length} on worker ${slot} (pid ${pid})`);

  let res = await t.post("/socket.io/publish", { room: "k", event: "tick", args: [1] });
  t.check(res.status === 202, `publish: ${res.status}`);
  await t.until(() => clients.every((c) => c.got.includes(1)), 3000, "everyone gets tick 1");

  process.kill(pid, "SIGKILL");
  await t.until(() => victims.every((c) => c.drops === 1), 5000, "victims see the disconnect");
  await t.until(() => victims.every((c) => c.s.connected && c.joined), 15000, "victims reconnect and rejoin");
  t.log(`victims now on workers ${JSON.stringify(victims.map((c) => c.worker))}`);

  res = await t.post("/socket.io/publish", { room: "k", event: "tick", args: [2] });
  t.check(res.status === 202, `publish after the kill: ${res.status}`);
  await t.until(() => clients.every((c) => c.got.includes(2)), 5000, "everyone gets tick 2");
  t.check(others.every((c) => c.drops === 0), "a client of the surviving worker was disconnected");
  t.check(clients.every((c) => c.got.filter((n) => n === 2).length === 1), "duplicate delivery");

  // A reconnected victim's own events reach the others again.
  const v = victims[0];
  const heard = others.map((c) => t.once(c.s, "from_victim", 3000));
  v.s.emit("from_victim", "alive");
  await Promise.all(heard);
  t.pass(`${victims.length} clients of the killed worker reconnected and keep receiving`);
}, 40000);
