// bench.js - the Socket.IO fan-out benchmark: clusterd's events service
// against Node.js cluster + socket.io + @socket.io/cluster-adapter, both with
// the same number of worker processes on 127.0.0.1, driven in alternation
// (A B A B ...) by a load driver; writes results/latest.md and latest.json.
// bench/events/run.sh builds and installs what it needs, then runs this.
//
//   node bench.js --clusterd BIN --work DIR [--quick] [--rounds R] [--clients N]
//                 [--workers W] [--rate R] [--rate-secs S] [--sat-secs S]
//                 [--window W] [--payload B] [--only clusterd|node] [--budget S]
//                 [--transport websocket|polling] [--driver c|node|both]
//                 [--cdriver BIN] [--pin]
//
// --driver picks the load driver: c (the default) is bench/events/driver.c,
// one epoll loop speaking Engine.IO v4 over WebSocket itself, far cheaper
// than the servers it drives; node is driver.js on socket.io-client (a
// whole core at saturation, part of the limit); both runs every round with
// each and reports both side by side, with the clusterd / Node ratios per
// driver.  --cdriver is the C driver's binary (built here with cc into the
// work directory when not given).  --pin runs the driver (and probe.js) on
// CPU 0 and the servers on the other CPUs (taskset).
//
// --transport polling is the polling row (issue 12): the same load with
// every client on HTTP long-polling for its whole life, Node with
// @socket.io/sticky in its primary (server.js), clusterd with both
// transports (its default); it writes results/latest-polling.md and .json.
// The default, websocket, measures exactly what it always did.  Polling is
// driven by driver.js whatever --driver says (the C driver speaks WebSocket
// only).
//
// Every process it starts gets its own process group, recorded in
// DIR/pgids (run.sh kills those on exit whatever happens), and is stopped
// here after each run.
"use strict";
const fs = require("fs");
const os = require("os");
const net = require("net");
const path = require("path");
const { spawn, execFileSync } = require("child_process");

const here = __dirname;
const repo = path.resolve(here, "../../..");
const T0 = Date.now();

// ---- options -----------------------------------------------------------------
const quick = process.argv.includes("--quick");
const pin = process.argv.includes("--pin");
const opt = {
  clusterd: path.join(repo, "build-release/clusterd"), work: "", command: "bench/events/run.sh",
  rounds: 3, clients: quick ? 50 : 200, workers: 2, rate: 100, "rate-secs": quick ? 3 : 8,
  "sat-secs": quick ? 3 : 8, window: 8, probe: quick ? 20 : 50, payload: 64, "warmup-secs": 1, only: "",
  budget: quick ? 75 : 290, disturbed: 0.3, "quiet-wait": quick ? 4 : 20, "max-extra-rounds": quick ? 0 : 2,
  out: path.resolve(here, "../results"), transport: "websocket", driver: "c", cdriver: "",
};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === "--quick" || a === "--pin") continue;
  if (a === "-h" || a === "--help") {
    console.log(fs.readFileSync(__filename, "utf8").split("\n").filter((l) => l.startsWith("//")).join("\n"));
    process.exit(0);
  }
  const k = a.replace(/^--/, "");
  if (!(k in opt) || i + 1 >= process.argv.length) {
    console.error(`bench.js: unknown or incomplete option ${a} (--help)`);
    process.exit(2);
  }
  const v = process.argv[++i];
  opt[k] = typeof opt[k] === "number" ? Number(v) : v;
}
if (!["websocket", "polling"].includes(opt.transport)) {
  console.error(`bench.js: --transport is websocket or polling, not ${opt.transport}`);
  process.exit(2);
}
const polling = opt.transport === "polling";
if (!["c", "node", "both"].includes(opt.driver)) {
  console.error(`bench.js: --driver is c, node or both, not ${opt.driver}`);
  process.exit(2);
}
const drivers = polling ? ["node"] : opt.driver === "both" ? ["c", "node"] : [opt.driver];
// A budget not given grows with the drivers: each round runs every server once per driver.
if (!process.argv.includes("--budget")) opt.budget *= drivers.length;
const NCPU = os.cpus().length;
const DRIVER_CPU = "0";
const SERVER_CPUS = NCPU > 2 ? `1-${NCPU - 1}` : "1";
// taskset in front of a command when --pin (it execs: the pid stays the command's).
const pinned = (cpus, cmd, args) => (pin && NCPU >= 2 ? ["taskset", ["-c", cpus, cmd, ...args]] : [cmd, args]);
if (!opt.work) opt.work = fs.mkdtempSync(path.join(os.tmpdir(), "clusterd-bench-events."));
const log = (m) => console.error(`[bench.js ${((Date.now() - T0) / 1000).toFixed(0).padStart(3)} s] ${m}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const deadline = T0 + opt.budget * 1000;

// ---- processes -------------------------------------------------------------------
const groups = new Set();
function track(child) {
  groups.add(child.pid);
  fs.appendFileSync(path.join(opt.work, "pgids"), `${child.pid}\n`);
  child.on("exit", () => groups.delete(child.pid));
}
function killGroup(pid, sig) {
  try {
    process.kill(-pid, sig);
  } catch (e) { /* gone */ }
}
function killAll() {
  for (const pg of groups) killGroup(pg, "SIGKILL");
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => process.exit(130));

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

// Starts a server; resolves with {child, stop()} once `ready` matches its output.
function startServer(name, cmd, args, ready, logFile) {
  return new Promise((resolve, reject) => {
    const out = fs.openSync(logFile, "w");
    const [c, a] = pinned(SERVER_CPUS, cmd, args);
    const child = spawn(c, a, { detached: true, stdio: ["ignore", "pipe", "pipe"], cwd: opt.work });
    track(child);
    let buf = "";
    let done = false;
    const timer = setTimeout(() => finish(new Error(`${name} not ready within 15 s (see ${logFile})`)), 15000);
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        killGroup(child.pid, "SIGKILL");
        reject(err);
      } else {
        resolve({ child, stop: () => stopServer(child) });
      }
    };
    const onData = (d) => {
      fs.writeSync(out, d);
      if (!done) {
        buf += d.toString();
        if (ready.test(buf)) finish();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code, sig) => finish(new Error(`${name} exited (${sig || code}) before it was ready; ` +
      `see ${logFile}`)));
    child.on("error", (e) => finish(e));
  });
}

async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return `exited early (${child.exitCode ?? child.signalCode})`;
  const exited = new Promise((r) => child.once("exit", (code, sig) => r(sig || code)));
  killGroup(child.pid, "SIGTERM");
  const t = setTimeout(() => killGroup(child.pid, "SIGKILL"), 5000);
  const how = await exited;
  clearTimeout(t);
  killGroup(child.pid, "SIGKILL"); // anything left in its group
  return how;
}

// The C driver, built from driver.c and driver_run.c into the work directory (run.sh passes --cdriver).
function cDriver() {
  if (opt.cdriver) return opt.cdriver;
  opt.cdriver = path.join(opt.work, "cdriver");
  const src = path.resolve(here, "..");
  execFileSync("cc", ["-O2", "-Wall", "-Wextra", "-o", opt.cdriver, path.join(src, "driver.c"),
    path.join(src, "driver_run.c"), "-lm"], { timeout: 120000, stdio: ["ignore", "inherit", "inherit"] });
  return opt.cdriver;
}

function runDriver(kind, port, pid, logFile) {
  return new Promise((resolve) => {
    const args = ["--port", port, "--pid", pid, "--clients", opt.clients,
      "--rate", opt.rate, "--rate-secs", opt["rate-secs"], "--sat-secs", opt["sat-secs"], "--window", opt.window,
      "--payload", opt.payload, "--warmup-secs", opt["warmup-secs"], "--deadline", 60 + opt["rate-secs"] +
      opt["sat-secs"], "--polling", polling ? 1 : 0].map(String);
    const [cmd, a] = kind === "c" ? pinned(DRIVER_CPU, cDriver(), args) :
      pinned(DRIVER_CPU, process.execPath, [path.join(here, "driver.js"), ...args]);
    const child = spawn(cmd, a, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    track(child);
    let out = "";
    const err = fs.openSync(logFile, "w");
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => {
      fs.writeSync(err, d);
      process.stderr.write(String(d).replace(/^/gm, "    "));
    });
    const t = setTimeout(() => killGroup(child.pid, "SIGKILL"), (90 + opt["rate-secs"] + opt["sat-secs"]) * 1000);
    child.on("exit", (code) => {
      clearTimeout(t);
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()));
      } catch (e) {
        resolve({ failed: `driver exited ${code} without a result` });
      }
    });
  });
}

// probe.js after-ack: latency of a broadcast that follows an ack to the same
// client (the chat pattern), on an idle server.
function runProbe(port) {
  return new Promise((resolve) => {
    const [cmd, a] = pinned(DRIVER_CPU, process.execPath, [path.join(here, "probe.js"), String(port), "after-ack",
      String(opt.probe), opt.transport]);
    const child = spawn(cmd, a, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    track(child);
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => process.stderr.write(String(d).replace(/^/gm, "    ")));
    const t = setTimeout(() => killGroup(child.pid, "SIGKILL"), 70000);
    child.on("exit", () => {
      clearTimeout(t);
      const m = /^RESULT (.*)$/m.exec(out);
      let r = null;
      try {
        r = m && JSON.parse(m[1]);
      } catch (e) { /* */ }
      if (r) log(`    after-ack probe: p50 ${r.p50_ms?.toFixed(2)} ms, p99 ${r.p99_ms?.toFixed(2)} ms`);
      resolve(r || { failed: "probe gave no result" });
    });
  });
}

// ---- the two targets -----------------------------------------------------------------
const targets = {
  clusterd: async (port, tag) => {
    const rt = path.join(opt.work, `rt-${tag}`);
    fs.mkdirSync(rt, { recursive: true });
    const conf = path.join(opt.work, `clusterd-${tag}.ini`);
    fs.writeFileSync(conf, [
      "; written by bench/events/node/bench.js", "[cluster]", `listen = 127.0.0.1:${port}`,
      `workers = ${opt.workers}`, `runtime_dir = ${rt}`, "graceful_timeout = 2s", "",
      "[events]", "type = events", "route = /socket.io", "", // every other key at its default (conf/services.ini)
    ].join("\n"));
    return startServer("clusterd", opt.clusterd, ["-w", String(opt.workers), "-c", conf],
      new RegExp(`all ${opt.workers} workers ready`), path.join(opt.work, `clusterd-${tag}.log`));
  },
  node: async (port, tag) => startServer("node", process.execPath,
    [path.join(here, "server.js"), String(port), String(opt.workers), ...(polling ? ["polling"] : [])], /READY \d+/,
    path.join(opt.work, `node-${tag}.log`)),
};

// ---- other load on the machine --------------------------------------------------------
function busyMs() {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * 10;
}
async function otherCores(ms) {
  const a = busyMs();
  const c = process.cpuUsage();
  await sleep(ms);
  const u = process.cpuUsage(c);
  return Math.max(0, busyMs() - a - (u.user + u.system) / 1000) / ms;
}
async function waitQuiet() {
  const t0 = Date.now();
  let load = 0;
  while (Date.now() - t0 < opt["quiet-wait"] * 1000 && Date.now() < deadline) {
    load = await otherCores(500);
    if (load < opt.disturbed) break;
  }
  return { waited_s: (Date.now() - t0) / 1000, load };
}

// ---- one run, the rounds ------------------------------------------------------------------
async function runOne(kind, name, tag, probe) {
  const port = await freePort();
  let srv;
  try {
    srv = await targets[name](port, tag);
  } catch (e) {
    return { failed: String(e.message || e) };
  }
  const r = await runDriver(kind, port, srv.child.pid, path.join(opt.work, `driver-${tag}.log`));
  if (!r.failed && probe && opt.probe > 0) r.after_ack = await runProbe(port);
  r.server_exit = await srv.stop();
  const other = Math.max(r.rate_phase?.other_cores ?? 0, r.sat_phase?.other_cores ?? 0);
  r.other_cores = other;
  if (other > opt.disturbed) r.disturbed = true;
  return r;
}

const order = opt.only ? [opt.only] : ["clusterd", "node"];
// results[driver][server]: every run, in round order (r.round).
const results = Object.fromEntries(drivers.map((d) => [d, Object.fromEntries(order.map((k) => [k, []]))]));
const clean = (d, k) => results[d][k].filter((r) => !r.failed && !r.disturbed).length;
const perRun = (opt["rate-secs"] + opt["sat-secs"] + opt["warmup-secs"] + 12) * drivers.length; // generous, in s

function versions() {
  const v = { node: process.version, kernel: os.release(), cpus: `${os.cpus().length} x ${os.cpus()[0]?.model}` };
  const pkg = (p) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(here, "node_modules", p, "package.json"), "utf8")).version;
    } catch (e) {
      return "?";
    }
  };
  for (const p of ["socket.io", "@socket.io/cluster-adapter", "@socket.io/sticky", "socket.io-client"]) v[p] = pkg(p);
  try {
    v.clusterd = execFileSync(opt.clusterd, ["-V"], { timeout: 5000 }).toString().trim().replace(/^clusterd /, "");
  } catch (e) {
    v.clusterd = "?";
  }
  try {
    const rev = execFileSync("git", ["-C", repo, "rev-parse", "--short", "HEAD"], { timeout: 5000 }).toString().trim();
    const dirty = execFileSync("git", ["-C", repo, "status", "--porcelain", "--untracked-files=no", "--", "services",
      "core", "worker", "master", "ipc"], { timeout: 5000 }).toString().trim();
    v.commit = rev + (dirty ? "+dirty" : "");
  } catch (e) {
    v.commit = "?";
  }
  try {
    v.os = /PRETTY_NAME="([^"]+)"/.exec(fs.readFileSync("/etc/os-release", "utf8"))[1];
  } catch (e) { /* */ }
  v.memory_gib = (os.totalmem() / 2 ** 30).toFixed(1);
  return v;
}

// ---- report ---------------------------------------------------------------------------------
function median(xs) {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}
function fmt(x, d = 1) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString("en-US");
  return x.toFixed(d);
}

const DRIVER_TEXT = {
  c: "bench/events/driver.c: one process, one epoll loop, every client speaking Engine.IO v4 over a hand-framed " +
    "WebSocket",
  node: "bench/events/node/driver.js: one Node.js process, every client a socket.io-client",
};
function minmax(xs) {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x));
  return v.length ? [Math.min(...v), Math.max(...v)] : null;
}
// "median (min–max)" of xs, d digits.
function spread(xs, d) {
  const m = median(xs);
  const mm = minmax(xs);
  if (m === null) return "–";
  return mm && xs.length > 1 ? `${fmt(m, d)} (${fmt(mm[0], d)}–${fmt(mm[1], d)})` : fmt(m, d);
}
// The runs of a driver and server that count: the calm ones when there are enough.
function use(d, k) {
  const ok = results[d][k].filter((r) => !r.failed);
  const calm = ok.filter((r) => !r.disturbed);
  return calm.length >= Math.min(opt.rounds, ok.length) ? calm : ok;
}

const ROWS = [
  // label, getter, digits, better ("higher"/"lower"/"")
  ["paced: deliveries/s (offered)", (r) => r.rate_phase?.deliveries_per_s, 0, ""],
  ["paced: latency p50 (ms)", (r) => r.rate_phase?.p50_ms, 2, "lower"],
  ["paced: latency p99 (ms)", (r) => r.rate_phase?.p99_ms, 2, "lower"],
  ["paced: latency max (ms)", (r) => r.rate_phase?.max_ms, 1, "lower"],
  ["paced: missed deliveries", (r) => r.rate_phase?.missed, 0, "lower"],
  ["paced: server CPU µs / delivery", (r) => r.rate_phase?.server_us_per_delivery, 2, "lower"],
  ["saturated: deliveries/s", (r) => r.sat_phase?.deliveries_per_s, 0, "higher"],
  ["saturated: events/s (each to all receivers)", (r) => r.sat_phase?.events_per_s, 0, "higher"],
  ["saturated: latency p50 (ms)", (r) => r.sat_phase?.p50_ms, 2, "lower"],
  ["saturated: latency p99 (ms)", (r) => r.sat_phase?.p99_ms, 2, "lower"],
  ["saturated: missed deliveries", (r) => r.sat_phase?.missed, 0, "lower"],
  ["saturated: server CPU µs / delivery", (r) => r.sat_phase?.server_us_per_delivery, 2, "lower"],
  ["saturated: driver CPU µs / delivery", (r) => r.sat_phase?.driver_us_per_delivery, 2, ""],
  ["saturated: server cores busy", (r) => r.sat_phase?.server_cores, 2, ""],
  ["saturated: driver cores busy", (r) => r.sat_phase?.driver_cores, 2, ""],
  ["after-ack: latency p50 (ms)", (r) => r.after_ack?.p50_ms, 2, "lower"],
  ["after-ack: latency p99 (ms)", (r) => r.after_ack?.p99_ms, 2, "lower"],
  ["server RSS, all processes, after connect (MiB)", (r) => r.rss_kb_connected / 1024, 1, "lower"],
  ["clients disconnected during the run", (r) => r.disconnected, 0, "lower"],
  ...(polling ? [["connects that failed and were retried", (r) => r.connect_retries, 0, "lower"]] : []),
  ["duplicated or reordered deliveries", (r) => r.dupes_or_reordered, 0, "lower"],
];

// One driver's full table (medians) and its every-run lines.
function driverTable(d) {
  const L = [];
  const both = order.length === 2;
  const head = ["metric", ...order];
  if (both) head.push("clusterd / node", "better");
  L.push(`| ${head.join(" | ")} |`, `|${head.map((h, i) => (i ? "---:" : "---")).join("|")}|`);
  for (const [label, get, dg, better] of ROWS) {
    const m = order.map((k) => median(use(d, k).map(get)));
    if (label.startsWith("after-ack") && m.every((x) => x === null)) continue; // probed with the first driver only
    const cells = [label, ...m.map((x) => fmt(x, dg))];
    if (both) {
      const ratio = m[0] !== null && m[1] ? m[0] / m[1] : null;
      cells.push(better && ratio !== null ? `${ratio.toFixed(2)}x` : "");
      let b = "";
      if (better && m[0] !== null && m[1] !== null && m[0] !== m[1])
        b = (better === "higher") === (m[0] > m[1]) ? "clusterd" : "node";
      cells.push(b);
    }
    L.push(`| ${cells.join(" | ")} |`);
  }
  L.push("", "Every run (deliveries/s saturated; p99 paced / saturated in ms; server / driver CPU µs per delivery " +
    "saturated; other load in cores):", "");
  for (const k of order) {
    L.push(`- ${k}: ` + results[d][k].map((r, i) => r.failed ? `#${i + 1} FAILED (${r.failed})` :
      `#${i + 1} ${fmt(r.sat_phase?.deliveries_per_s, 0)}/s, p99 ${fmt(r.rate_phase?.p99_ms, 2)} / ` +
      `${fmt(r.sat_phase?.p99_ms, 2)}, CPU ${fmt(r.sat_phase?.server_us_per_delivery, 2)} / ` +
      `${fmt(r.sat_phase?.driver_us_per_delivery, 2)}, missed ${r.rate_phase?.missed}+${r.sat_phase?.missed}, ` +
      `spread ${Object.values(r.per_worker || {}).join("/")}, other ${fmt(r.other_cores, 2)}` +
      `${r.disturbed ? " DISTURBED" : ""}`).join("; "));
  }
  return L;
}

// Per driver: each figure as median (min–max) over its runs, and clusterd / node as the median
// (min–max) of the per-round ratios (the two servers' runs of one round are paired).
function sideBySide() {
  const rows = [
    // label, getter, digits, ratio clusterd / node shown
    ["saturated: deliveries/s", (r) => r.sat_phase?.deliveries_per_s, 0, true],
    ["saturated: server CPU µs / delivery", (r) => r.sat_phase?.server_us_per_delivery, 2, true],
    ["saturated: latency p99 (ms)", (r) => r.sat_phase?.p99_ms, 2, true],
    ["paced: server CPU µs / delivery", (r) => r.rate_phase?.server_us_per_delivery, 2, true],
    ["paced: latency p99 (ms)", (r) => r.rate_phase?.p99_ms, 2, true],
    ["saturated: driver CPU µs / delivery", (r) => r.sat_phase?.driver_us_per_delivery, 2, false],
    ["saturated: driver CPU / server CPU", (r) => r.sat_phase && r.sat_phase.driver_cpu_ms /
      r.sat_phase.server_cpu_ms, 2, false],
  ];
  const both = order.length === 2;
  const head = ["driver", "metric", ...order.map((k) => `${k}: median (min–max)`)];
  if (both) head.push("clusterd / node: median (min–max) of rounds");
  const L = [`| ${head.join(" | ")} |`, `|${head.map((h, i) => (i > 1 ? "---:" : "---")).join("|")}|`];
  for (const d of drivers) {
    for (const [label, get, dg, ratio] of rows) {
      const cells = [d, label, ...order.map((k) => spread(use(d, k).map(get), dg))];
      if (both) {
        const node = new Map(use(d, "node").map((r) => [r.round, get(r)]));
        const ratios = use(d, "clusterd").map((r) => get(r) / node.get(r.round)).filter((x) => Number.isFinite(x));
        const mm = minmax(ratios);
        cells.push(!ratio || !ratios.length ? "" : `${median(ratios).toFixed(2)}x` +
          (ratios.length > 1 ? ` (${mm[0].toFixed(2)}x–${mm[1].toFixed(2)}x)` : ""));
      }
      L.push(`| ${cells.join(" | ")} |`);
    }
  }
  return L;
}

function report(meta) {
  const L = [];
  L.push(`# Socket.IO fan-out${polling ? " over long-polling" : ""}: clusterd events vs Node.js cluster + socket.io + ` +
    `@socket.io/cluster-adapter${polling ? " + @socket.io/sticky" : ""}`, "");
  L.push(`- date: ${meta.date}`);
  L.push(`- command: \`${opt.command}\`${quick ? " (quick: a smoke test, not numbers to quote)" : ""}`);
  L.push(`- machine: ${meta.v.os || "Linux"}, kernel ${meta.v.kernel}, ${meta.v.cpus}, ${meta.v.memory_gib} GiB`);
  L.push(`- versions: clusterd ${meta.v.clusterd} (commit ${meta.v.commit}); Node.js ${meta.v.node}, socket.io ` +
    `${meta.v["socket.io"]}, @socket.io/cluster-adapter ${meta.v["@socket.io/cluster-adapter"]}, ` +
    (polling ? `@socket.io/sticky ${meta.v["@socket.io/sticky"]}, ` : "") +
    `socket.io-client ${meta.v["socket.io-client"]} (driver.js)`);
  const how = polling ? "HTTP long-polling only (clients with transports: [\"polling\"]; Node routes each " +
    "connection to its session's worker with @socket.io/sticky in the primary, clusterd steers it between workers)"
    : "WebSocket transport only";
  L.push(`- setup: ${opt.workers} worker processes each, 127.0.0.1, ${how}; ${opt.clients} ` +
    `receivers + 1 publisher in one room, all in one driver process; events of ${opt.payload} bytes of padding ` +
    `plus a sequence number and a send timestamp, emitted by the publisher and relayed by the server to every ` +
    `other member of the room`);
  L.push(`- drivers: ${drivers.map((d) => `${d} (${DRIVER_TEXT[d]})`).join("; ")}; the same phases, messages ` +
    `and result for each`);
  L.push(`- CPUs: ${NCPU}; ` + (pin && NCPU >= 2 ? `pinned with taskset: driver and probe on CPU ${DRIVER_CPU}, ` +
    `the server's processes on CPU ${SERVER_CPUS} (--pin)` : "not pinned: driver and server share every CPU " +
    "(--pin puts the driver on CPU 0 and the servers on the others)"));
  L.push(`- paced: ${opt.rate} events/s for ${opt["rate-secs"]} s (${opt.rate * opt.clients} deliveries/s ` +
    `offered); saturated: ${opt.window} events in flight for ${opt["sat-secs"]} s (an event is done when all ` +
    `receivers have it; missing after 2 s = missed)`);
  L.push(`- rounds: ${meta.rounds} in alternation (${order.join(", ")}${drivers.length > 1 ? `, each with driver ` +
    `${drivers.join(" then ")}` : ""}); medians of ` + drivers.map((d) => order.map((k) =>
    `${use(d, k).length} ${k}`).join(" and ") + (drivers.length > 1 ? ` (${d})` : "")).join(", ") + ` runs; a run ` +
    `is "disturbed" when other processes used more than ${opt.disturbed} cores meanwhile (such runs are left out ` +
    `when enough calm ones exist)`);
  L.push(`- server CPU: utime+stime from /proc of the server's process tree (clusterd master + workers; Node ` +
    `primary + workers) over the phase, divided by the deliveries: fairer than deliveries/s, which also ` +
    `depends on how much CPU the driver takes; driver CPU likewise, of the driver process`);
  L.push(`- after-ack: probe.js on the idle server after each run with driver ${drivers[0]}, ${opt.probe} ` +
    `rounds: every receiver (one per worker) gets an ack, then the publisher emits one event; latency of that ` +
    `event (the chat pattern: send with an ack, then receive the others' messages)`);
  L.push("");
  if (drivers.length > 1 || order.length > 1) {
    L.push("## Per driver, side by side", "", ...sideBySide(), "");
  }
  for (const d of drivers) L.push(`## Driver: ${d}`, "", ...driverTable(d), "");
  return L.join("\n");
}

// ---- main -------------------------------------------------------------------------------------
(async () => {
  fs.mkdirSync(opt.out, { recursive: true });
  const v = versions();
  try {
    if (drivers.includes("c")) cDriver();
  } catch (e) {
    log(`the C driver did not build (cc): ${e.message}`);
    process.exit(1);
  }
  log(`work directory ${opt.work}; ${opt.clients} clients, ${opt.workers} workers, ${opt.rounds} rounds of ` +
    `${order.join(" + ")}, driver ${drivers.join(" + ")}${pin ? `, pinned (driver on CPU ${DRIVER_CPU}, servers ` +
    `on ${SERVER_CPUS})` : ""}`);
  if (polling && process.argv.includes("--driver") && opt.driver !== "node")
    log("the C driver speaks WebSocket only: the polling row is driven by driver.js");
  let rnd = 0;
  let extra = 0;
  for (;;) {
    if (rnd >= opt.rounds) {
      const short = order.filter((k) => drivers.some((d) => clean(d, k) < opt.rounds));
      const left = (deadline - Date.now()) / 1000;
      if (!short.length || extra >= opt["max-extra-rounds"] || left < perRun * order.length) break;
      extra++;
      log(`extra round (disturbed runs of ${short.join(", ")})`);
    }
    if (rnd > 0 && Date.now() + perRun * order.length * 1000 > deadline + 30000) {
      log(`budget of ${opt.budget} s reached after ${rnd} rounds`);
      break;
    }
    rnd++;
    const q = await waitQuiet();
    if (q.waited_s > 0.6)
      log(`waited ${q.waited_s.toFixed(1)} s for other work to calm down (other load ${q.load.toFixed(2)} cores)`);
    for (const d of drivers) {
      for (const k of order) {
        log(`round ${rnd}: ${k}, driver ${d}`);
        const r = await runOne(d, k, `${k}-${d}-${rnd}`, d === drivers[0]);
        r.round = rnd;
        results[d][k].push(r);
        if (r.failed) log(`round ${rnd} ${k} (driver ${d}): FAILED ${r.failed}`);
      }
    }
  }
  const meta = { date: new Date().toISOString().replace(/\.\d+Z$/, "Z"), v, rounds: rnd };
  const md = report(meta);
  const base = polling ? "latest-polling" : "latest";
  fs.writeFileSync(path.join(opt.out, `${base}.md`), md);
  fs.writeFileSync(path.join(opt.out, `${base}.json`), JSON.stringify({ meta, options: opt, results }, null, 1));
  process.stdout.write(md);
  const failed = drivers.some((d) => order.some((k) => results[d][k].every((r) => r.failed)));
  process.exit(failed ? 1 : 0);
})().catch((e) => {
  log(`FAILED: ${e.stack || e}`);
  process.exit(1);
});
