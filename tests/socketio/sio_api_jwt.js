// sio_api_jwt.js PORT KEYDIR - handlers behind auth = jwt (HS256, the key
// tokens.js wrote in KEYDIR), with the real socket.io-client on -w 4,
// against tests/integration/sio_test_module.c: a bad token is refused by
// the service before any handler runs ("invalid token"); a good one reaches
// on_connect, whose socket's user is the token's sub (cd_sio_user) and
// which joined "user:<sub>" (a broadcast to that room reaches it); a good
// token the handler refuses gets the handler's message.
"use strict";
const t = require("./lib");
const tok = require("./tokens");

const key = tok.key(process.argv[3], "HS256");
const good = (sub) => tok.sign("HS256", key, { sub, exp: tok.now() + 600 });

t.run(async () => {
  t.check((await t.refused({ auth: { token: "not.a.jwt", mode: "later" } })) === "invalid token", "a bad token");
  t.check((await t.refused({ auth: { token: good("bob"), mode: "refuse" } })) === 'not welcome: "refuse" asked',
    "a good token the handler refuses");
  const s = t.io(t.url, { transports: ["websocket"], reconnection: false, forceNew: true,
    auth: { token: good("alice"), mode: "later" } });
  t.sockets.push(s);
  const rec = t.record(s);
  await t.until(() => rec.count("welcome") === 1, 5000, "the welcome after a later accept");
  const w = rec.list.find((e) => e[0] === "welcome")[1];
  t.check(w[0] === s.id && w[1] === "alice", `welcome ${JSON.stringify(w)}: the user is the token's sub`);
  // From another socket (maybe on another worker): a broadcast to user:alice.
  const o = await t.connect({ auth: { token: good("carol") } });
  const r = await t.ack(o, 3000, "to-room", "user:alice", "", "for-alice");
  t.check(r === 0, `to-room user:alice: ${r}`);
  await t.until(() => rec.count("room-msg") === 1, 5000, "the message to user:alice");
  t.check(rec.list.find((e) => e[0] === "room-msg")[1][1] === "for-alice", "what user:alice got");
  t.pass("handlers behind auth = jwt");
}, 30000);
