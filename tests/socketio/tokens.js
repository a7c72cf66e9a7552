// tokens.js - JSON Web Tokens for the auth = jwt tests, with nothing but
// node's crypto (HS256 = HMAC-SHA256, RS256 = RSASSA-PKCS1-v1_5 SHA-256,
// ES256 = ECDSA P-256 SHA-256 with the JOSE r||s signature).
//   require("./tokens").sign(alg, key, claims [, header])   a token
//   node tokens.js DIR    writes the keys the server and the scripts use:
//     hs256.key (the secret, with a trailing newline as an editor leaves it),
//     rs256.pem / rs256.pub.pem, es256.pem / es256.pub.pem (private/public),
//     and rs256-other.pem (a private key the server does not know)
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const b64u = (buf) => Buffer.from(buf).toString("base64url");

function sign(alg, key, claims, header = {}) {
  const head = b64u(JSON.stringify({ alg, typ: "JWT", ...header }));
  const body = b64u(JSON.stringify(claims));
  const input = `${head}.${body}`;
  let sig;
  if (alg === "HS256") sig = crypto.createHmac("sha256", key).update(input).digest();
  else if (alg === "RS256") sig = crypto.sign("sha256", Buffer.from(input), key);
  else if (alg === "ES256") sig = crypto.sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  else if (alg === "none") sig = Buffer.alloc(0);
  else throw new Error(`unknown alg ${alg}`);
  return `${input}.${b64u(sig)}`;
}

const now = () => Math.floor(Date.now() / 1000);

function writeKeys(dir) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "hs256.key"), crypto.randomBytes(32).toString("hex") + "\n");
  const pem = { format: "pem" };
  for (const [name, type, opts] of [["rs256", "rsa", { modulusLength: 2048 }],
    ["rs256-other", "rsa", { modulusLength: 2048 }], ["es256", "ec", { namedCurve: "P-256" }]]) {
    const { publicKey, privateKey } = crypto.generateKeyPairSync(type, opts);
    fs.writeFileSync(path.join(dir, `${name}.pem`), privateKey.export({ type: "pkcs8", ...pem }));
    fs.writeFileSync(path.join(dir, `${name}.pub.pem`), publicKey.export({ type: "spki", ...pem }));
  }
}

// The key a script signs with: the secret without its newline (as the
// server reads it), or a private key.
function key(dir, alg, other = false) {
  if (alg === "HS256") return fs.readFileSync(path.join(dir, "hs256.key"), "utf8").replace(/\n$/, "");
  const name = alg === "RS256" ? (other ? "rs256-other" : "rs256") : "es256";
  return crypto.createPrivateKey(fs.readFileSync(path.join(dir, `${name}.pem`)));
}

if (require.main === module) {
  if (!process.argv[2]) {
    console.error("usage: node tokens.js DIR");
    process.exit(2);
  }
  writeKeys(process.argv[2]);
}

module.exports = { sign, key, now, writeKeys };
