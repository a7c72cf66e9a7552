// sio-reference.js PORT - examples/sio-reference (the socket.io-protocol
// suite's reference server as a handler module) with the real
// socket.io-client, run by tests/integration/test_sio_reference.c on -w 4
// (the suite itself speaks raw WebSocket and fetch; this is what an app
// sees). For each transport setting — default (polling, then the upgrade),
// polling only, websocket only — 8 clients on / and 8 on /custom, spread
// over the workers by the kernel, each:
//   - gets "auth" with the auth payload it connected with ({} without one);
//   - sends "message" with text, JSON and two binary arguments, and gets
//     "message-back" with the same arguments (Buffers byte for byte);
//   - sends "message-with-ack" with the same, and its ack carries them.
"use strict";
const t = require("./lib");

const same = (a, b) => {
  if (Buffer.isBuffer(a) || a instanceof ArrayBuffer) return Buffer.from(a).equals(Buffer.from(b));
  return JSON.stringify(a) === JSON.stringify(b);
};
const sameArgs = (got, want) => got.length === want.length && got.every((g, i) => same(g, want[i]));

async function one(transports, nsp, i) {
  const auth = i % 2 ? { token: `t${i}`, n: [i, true] } : undefined;
  const s = t.io(t.url + nsp, { reconnection: false, forceNew: true, timeout: 5000, transports, auth });
  t.sockets.push(s);
  const rec = t.record(s); // from the start: "auth" may share a polling payload with the CONNECT
  await t.until(() => rec.count("auth") > 0, 5000, `${nsp} auth (${transports})`);
  const got = rec.list.find((e) => e[0] === "auth")[1];
  t.check(got.length === 1 && same(got[0], auth || {}), `${nsp} auth: ${JSON.stringify(got)} for ${JSON.stringify(auth)}`);

  const args = [1, "2", { 3: [true], s: "é\u{1F600}" }, Buffer.from([1, 2, 3]), Buffer.from([0, 255, 4, 5, 6])];
  const back = t.once(s, "message-back", 5000);
  s.emit("message", ...args);
  const echoed = await back;
  t.check(sameArgs(echoed, args), `${nsp} message-back: ${JSON.stringify(echoed)}`);

  let acked = null;
  s.emit("message-with-ack", ...args, (...r) => { acked = r; });
  await t.until(() => acked, 5000, `${nsp} message-with-ack's ack`);
  t.check(sameArgs(acked, args), `${nsp} ack: ${JSON.stringify(acked)}`);
  s.disconnect();
}

t.run(async () => {
  for (const transports of [["polling", "websocket"], ["polling"], ["websocket"]]) {
    const runs = [];
    for (let i = 0; i < 8; i++) runs.push(one(transports, "/", i), one(transports, "/custom", i));
    await Promise.all(runs);
    t.log(`${transports}: 16 clients, auth, message-back and acks with binary arguments`);
  }
  t.pass("the reference server's behaviours over both transports, / and /custom");
}, 90000);
