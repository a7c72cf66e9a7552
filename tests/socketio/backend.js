// backend.js PORT KEYDIR TOKEN - the backend endpoints on -w 4 with
// publish_token_file set and auth = jwt (HS256, the secret in KEYDIR):
// without the bearer token, or with a wrong one, every endpoint answers 401
// with WWW-Authenticate: Bearer and delivers nothing; with it, publish
// reaches exactly its target: one socket id, one user (two sockets of alice
// on different workers both, bob's not), several rooms with except; join
// and leave move sockets of a user in and out of a room on every worker;
// disconnect sends the Socket.IO DISCONNECT (the client's reason is
// "io server disconnect") to its target only.
"use strict";
const t = require("./lib");
const tok = require("./tokens");

const dir = process.argv[3];
const token = process.argv[4];
const key = tok.key(dir, "HS256");
const auth = (sub) => ({ auth: { token: tok.sign("HS256", key, { sub, rooms: ["*"], exp: tok.now() + 600 }) } });
const bearer = { Authorization: `Bearer ${token}` };
const call = (what, body, headers = bearer) => t.post(`/socket.io/${what}`, body, 3000, headers);

async function who(s) {
  const w = await t.ack(s, 2000, "whoami");
  s.sid = w.sid;
  s.worker = w.worker;
  s.rec = t.record(s);
  s.drops = [];
  s.on("disconnect", (why) => s.drops.push(why));
  return s;
}

t.run(async () => {
  // alice twice, on two workers; bob and carol anywhere.
  const a1 = await who(await t.connect(auth("alice")));
  let a2 = null;
  for (let i = 0; i < 40 && !a2; i++) {
    const s = await who(await t.connect(auth("alice")));
    if (s.worker !== a1.worker) a2 = s;
  }
  t.check(a2, "40 sockets of alice all landed on one worker");
  const bob = await who(await t.connect(auth("bob")));
  const carol = await who(await t.connect(auth("carol")));
  t.log(`alice on ${a1.worker} and ${a2.worker}, bob on ${bob.worker}, carol on ${carol.worker}`);
  const all = [a1, a2, bob, carol];
  const count = (ev) => all.map((s) => s.rec.count(ev));

  // No token, a wrong one, another scheme: 401 everywhere, nothing delivered.
  const body = { event: "leak", args: [1] };
  for (const headers of [{}, { Authorization: "Bearer wrong" }, { Authorization: `Basic ${token}` },
    { Authorization: `Bearer ${token}x` }]) {
    for (const what of ["publish", "join", "leave", "disconnect"]) {
      const r = await call(what, { ...body, join: "x", leave: "x" }, headers);
      t.check(r.status === 401, `${what} with ${JSON.stringify(headers)}: ${r.status} ${r.body}`);
      t.check(/^Bearer/.test(r.headers["www-authenticate"] || ""), `${what}: WWW-Authenticate ${r.headers["www-authenticate"]}`);
    }
  }
  let r = await call("publish", "{bad json");
  t.check(r.status === 400, `bad body with the token: ${r.status}`);

  // One socket id.
  r = await call("publish", { sid: bob.sid, event: "to_sid", args: ["bob only"] });
  t.check(r.status === 202 && JSON.parse(r.body).ok === true, `publish to a sid: ${r.status} ${r.body}`);
  // One user: both of alice's sockets, on their two workers.
  r = await call("publish", { user: "alice", event: "to_user", args: ["alice"] });
  t.check(r.status === 202, `publish to a user: ${r.status} ${r.body}`);
  await t.until(() => bob.rec.count("to_sid") === 1 && a1.rec.count("to_user") === 1 && a2.rec.count("to_user") === 1,
    5000, "the sid's and the user's events");
  // The whole namespace except alice (by user) and carol (by sid).
  r = await call("publish", { event: "to_all", except: ["user:alice", carol.sid] });
  t.check(r.status === 202, `publish to all except: ${r.status} ${r.body}`);
  await t.until(() => bob.rec.count("to_all") === 1, 5000, "bob gets the namespace-wide event");

  // Backend join: bob and alice (all her sockets) into "news", across workers.
  for (const b of [{ user: "bob", join: "news" }, { user: "alice", join: "news" }]) {
    r = await call("join", b);
    t.check(r.status === 202, `join ${JSON.stringify(b)}: ${r.status} ${r.body}`);
  }
  // Joins act on every worker over the bus and return before delivery: poll
  // with whoami until each member sees the room.
  for (const s of [a1, a2, bob]) {
    const end = Date.now() + 5000;
    for (;;) {
      const w = await t.ack(s, 2000, "whoami");
      if (w.rooms >= 1) break;
      t.check(Date.now() < end, `socket of ${s.sid} never joined news: ${JSON.stringify(w)}`);
      await t.sleep(50);
    }
  }
  // Several rooms with except: news and carol's own sid room, except alice's a1.
  r = await call("publish", { rooms: ["news", carol.sid], except: [a1.sid], event: "news1" });
  t.check(r.status === 202, `publish to rooms: ${r.status} ${r.body}`);
  await t.until(() => a2.rec.count("news1") === 1 && bob.rec.count("news1") === 1 && carol.rec.count("news1") === 1,
    5000, "news1 reached a2, bob and carol");
  // Backend leave: bob out of news.
  r = await call("leave", { sid: bob.sid, leave: "news" });
  t.check(r.status === 202, `leave: ${r.status} ${r.body}`);
  const end = Date.now() + 5000;
  while ((await t.ack(bob, 2000, "whoami")).rooms !== 0) {
    t.check(Date.now() < end, "bob never left news");
    await t.sleep(50);
  }
  r = await call("publish", { room: "news", event: "news2" });
  await t.until(() => a1.rec.count("news2") === 1 && a2.rec.count("news2") === 1, 5000, "news2 reached alice");

  await t.sleep(300);
  t.check(JSON.stringify(count("leak")) === "[0,0,0,0]", `an unauthorized call delivered: ${count("leak")}`);
  t.check(JSON.stringify(count("to_sid")) === "[0,0,1,0]", `to_sid: ${count("to_sid")}`);
  t.check(JSON.stringify(count("to_user")) === "[1,1,0,0]", `to_user: ${count("to_user")}`);
  t.check(JSON.stringify(count("to_all")) === "[0,0,1,0]", `to_all except: ${count("to_all")}`);
  t.check(JSON.stringify(count("news1")) === "[0,1,1,1]", `news1: ${count("news1")}`);
  t.check(JSON.stringify(count("news2")) === "[1,1,0,0]", `news2 after bob left: ${count("news2")}`);

  // Disconnect by socket id (a2, on the other worker): only a2 goes.
  r = await call("disconnect", { sid: a2.sid });
  t.check(r.status === 202, `disconnect: ${r.status} ${r.body}`);
  await t.until(() => a2.drops.length === 1, 5000, "a2 is disconnected");
  t.check(a2.drops[0] === "io server disconnect", `a2's reason: ${a2.drops[0]}`);
  // Disconnect a user with close: true: both transport and socket go.
  r = await call("disconnect", { user: "bob", close: true });
  t.check(r.status === 202, `disconnect close: ${r.status} ${r.body}`);
  await t.until(() => bob.drops.length === 1, 5000, "bob is disconnected");
  t.check(/^(io server disconnect|transport close)$/.test(bob.drops[0]), `bob's reason: ${bob.drops[0]}`);
  await t.sleep(200);
  t.check(a1.connected && carol.connected && a1.drops.length === 0 && carol.drops.length === 0,
    "a socket that was not targeted was disconnected");
  t.check((await t.ack(a1, 2000, "whoami")).sid === a1.sid, "a1 still answers");
  r = await call("publish", { namespace: "/nope", event: "x" });
  t.check(r.status === 404, `unknown namespace: ${r.status}`);
  t.pass("backend: bearer token, sid, user, rooms, except, join, leave, disconnect");
}, 50000);
