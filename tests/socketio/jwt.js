// jwt.js PORT ALG KEYDIR - auth = jwt with jwt_alg = ALG (HS256, RS256 or
// ES256), the keys made by tokens.js in KEYDIR, on -w 4 with the real
// socket.io-client (auth: {token}).  A good token connects and whoami
// shows its sub as the user; expired, not yet valid, badly signed (another
// key), malformed, alg "none", another algorithm and a missing token get
// connect_error with the reason; rooms the token's rooms claim permits
// (a name and a pattern) can be joined, others get an error ack, and
// user:... rooms and other sockets' sids never.
"use strict";
const t = require("./lib");
const tok = require("./tokens");

const alg = process.argv[3];
const dir = process.argv[4];
const key = tok.key(dir, alg);
const now = tok.now();
const good = (claims = {}) => tok.sign(alg, key, { sub: "alice", rooms: ["lobby", "team:42:*"], exp: now + 600, ...claims });

async function reason(token, what) {
  const why = await t.refused(token === undefined ? {} : { auth: { token } });
  t.log(`${what}: ${why}`);
  return why;
}

t.run(async () => {
  // Accepted, on two workers; the user is the token's sub.
  const opts = { auth: { token: good() } };
  const by = await t.spread([0, 1], 40, opts);
  const a = by[0][0], b = by[1][0];
  let w = await t.ack(a, 2000, "whoami");
  t.check(w.user === "alice", `whoami: ${JSON.stringify(w)}`);
  const c = await t.connect({ auth: { token: good({ sub: "carol", rooms: ["lobby"] }) } });
  w = await t.ack(c, 2000, "whoami");
  t.check(w.user === "carol", `whoami of carol: ${JSON.stringify(w)}`);

  // Refused, each with its reason.
  t.check(await reason(undefined, "no auth") === "missing token", "no auth payload");
  const empty = await reason("", "empty token");
  t.check(empty === "missing token" || empty === "invalid token", `empty token: ${empty}`);
  t.check(await reason(good({ exp: now - 60 }), "expired") === "token expired", "expired");
  t.check(await reason(good({ nbf: now + 3600 }), "nbf") === "token not yet valid", "not yet valid");
  const other = alg === "HS256" ? "another secret" : alg === "RS256" ? tok.key(dir, "RS256", true) : tok.key(dir, "RS256");
  const otherAlg = alg === "ES256" ? "RS256" : alg;
  t.check(await reason(tok.sign(otherAlg, other, { sub: "mallory", exp: now + 600 }), "wrong key") === "invalid token",
    "signed with another key");
  t.check(await reason("not.a.jwt", "malformed") === "invalid token", "malformed");
  t.check(await reason("garbage", "one part") === "invalid token", "one part");
  t.check(await reason(tok.sign("none", null, { sub: "mallory", exp: now + 600 }), "alg none") === "invalid token",
    "alg none");
  // Another algorithm than the configured one, even with a signature that
  // would verify under it (an HS256 token keyed with the public key file).
  const wrongAlg = alg === "HS256" ? tok.sign("RS256", tok.key(dir, "RS256"), { sub: "m", exp: now + 600 })
    : tok.sign("HS256", require("fs").readFileSync(`${dir}/${alg.toLowerCase()}.pub.pem`), { sub: "m", exp: now + 600 });
  t.check(await reason(wrongAlg, "other alg") === "invalid token", "another algorithm");
  const [h, , s] = good().split(".");
  const tampered = `${h}.${Buffer.from(JSON.stringify({ sub: "admin", rooms: ["*"], exp: now + 600 })).toString("base64url")}.${s}`;
  t.check(await reason(tampered, "tampered") === "invalid token", "a changed payload");

  // Rooms: the claim's name and pattern, nothing else.
  let r = await t.ack(a, 2000, "join", "lobby");
  t.check(r.ok === true, `lobby: ${JSON.stringify(r)}`);
  r = await t.ack(b, 2000, "join", "team:42:chat");
  t.check(r.ok === true && r.room === "team:42:chat", `pattern room: ${JSON.stringify(r)}`);
  r = await t.ack(a, 2000, "join", "team:42:chat");
  t.check(r.ok === true, `pattern room: ${JSON.stringify(r)}`);
  for (const room of ["team:43:chat", "team:42", "lobby2", "user:carol", "user:alice", c.id]) {
    r = await t.ack(a, 2000, "join", room);
    t.check(r.ok === false && typeof r.error === "string", `join ${room}: ${JSON.stringify(r)}`);
  }
  r = await t.ack(c, 2000, "join", "team:42:chat");
  t.check(r.ok === false && r.error === "forbidden room", `carol and team:42:chat: ${JSON.stringify(r)}`);
  // The permitted pattern room works across workers; carol is not in it.
  const rc = t.record(c);
  const got = t.once(b, "hi", 3000);
  a.emit("hi", "team");
  t.check((await got)[0] === "team", "b did not get a's message in team:42:chat");
  await t.sleep(200);
  t.check(rc.count("hi") === 0, "carol got a message of a room she may not join");
  t.pass(`jwt ${alg}: accepted, refused with reasons, rooms by claim`);
}, 30000);
