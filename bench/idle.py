#!/usr/bin/env python3
"""idle.py - what an idle connection costs: clusterd, nginx and Node side by side (issue 16).

    bench/idle.py [--counts 1000,10000] [--workers 2] [--only http,sio] [--out FILE]

For each server and each count N, on a fresh start with 2 worker processes:

  http  N keep-alive connections each send one GET /dummy, read the answer,
        and then sit idle (clusterd dummy-only, nginx `return 200`, Node
        cluster + Express: bench/node/server.js);
  sio   N Socket.IO clients (the real socket.io-client over WebSocket,
        bench/idle_clients.js) connect, join one room and sit idle (clusterd
        events, Node cluster + socket.io + cluster-adapter:
        bench/events/node/server.js).

The summed RSS of the server's processes (master/primary and workers, read
from /proc) is taken before the clients connect and after they sat idle for
--settle seconds; the growth divided by N is the cost of one idle
connection.  Before the first reading, --warmup clients (100) connect, do
the same and leave, so the code and libraries a connection uses are paged
in and pools are made: what is left is what each connection holds.  Kernel socket memory is not in RSS, for any of them.  The
shell's fd limit is raised to the hard limit (the script needs one
descriptor per connection).  Writes a Markdown table to --out (default
bench/results/issue16-idle-memory.md) and prints it; with --json FILE also
the rows as JSON, which bench/bench.py merges into the growth table of
bench/results/latest.md (bench/run.sh runs it that way).

Needs: build-release/clusterd (cmake -B build-release -DCMAKE_BUILD_TYPE=Release),
nginx (apt-get install nginx-light), bench/node/node_modules (npm ci in
bench/node) and bench/events/node/node_modules (npm ci in bench/events/node),
as bench/run.sh and bench/events/run.sh install them.  A server that is
missing is reported unavailable, not fatal.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
GET = b"GET /dummy HTTP/1.1\r\nHost: bench\r\n\r\n"
CLUSTERD = {}  # target name -> (binary, label), from --clusterd


def log(*a):
    print("[idle.py]", *a, file=sys.stderr, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def tree(pid):
    """pid and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def rss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /dummy HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def wait_port(port, proc, secs=20):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("not listening")


def record_pgid(pgid):
    """Under bench.py (BENCH_PGIDS set), every process group started here is
    listed where bench/run.sh's exit trap kills what is left."""
    path = os.environ.get("BENCH_PGIDS")
    if path:
        with open(path, "a") as f:
            f.write(f"{pgid}\n")


class Server:
    def __init__(self, name, argv, port, work, env=None, cwd=None):
        self.name, self.port = name, port
        self.logf = open(os.path.join(work, f"{name}-{port}.log"), "w")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, cwd=cwd,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        record_pgid(self.proc.pid)
        wait_port(port, self.proc)
        time.sleep(1.5)  # every worker up and its start-up allocations done

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        self.logf.close()


def start(kind, target, port, workers, work):
    if target.startswith("clusterd"):
        binary = CLUSTERD[target][0]
        if not os.access(binary, os.X_OK):
            return None, f"{binary} is missing"
        conf = os.path.join(work, f"clusterd-{kind}-{port}.ini")
        with open(conf, "w") as f:
            f.write(f"[cluster]\nlisten = 127.0.0.1:{port}\nruntime_dir = {work}/rt-{port}\n"
                    "keepalive_timeout = 300s\nbacklog = 4096\n[dummy]\ntype = dummy\nroute = /dummy\n")
            if kind == "sio":
                f.write("[events]\ntype = events\nroute = /socket.io\n")
        os.makedirs(f"{work}/rt-{port}", exist_ok=True)
        return Server("clusterd", [binary, "-w", str(workers), "-c", conf], port, work), None
    if target == "nginx":
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if not binary:
            return None, "nginx is not installed (apt-get install nginx-light)"
        prefix = os.path.join(work, f"nginx-{port}")
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes {workers};
worker_rlimit_nofile 65536;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 65536; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path {prefix}/client_body;
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    default_type application/json;
    location = /dummy {{ return 200 '{{"service":"dummy","ok":true}}'; }}
  }}
}}
""")
        return Server("nginx", [binary, "-p", prefix + "/", "-c", conf, "-e", f"{prefix}/error.log"], port, work), None
    if target == "node" and kind == "http":
        d = os.path.join(BENCH, "node")
        if not os.path.isdir(os.path.join(d, "node_modules", "express")):
            return None, "bench/node/node_modules is missing (npm ci in bench/node)"
        return Server("node", ["node", "server.js"], port, work, cwd=d,
                      env={"PORT": str(port), "WORKERS": str(workers), "HOST": "127.0.0.1"}), None
    if target == "node" and kind == "sio":
        d = os.path.join(BENCH, "events", "node")
        if not os.path.isdir(os.path.join(d, "node_modules", "socket.io")):
            return None, "bench/events/node/node_modules is missing (npm ci in bench/events/node)"
        return Server("node", ["node", "server.js", str(port), str(workers)], port, work, cwd=d), None
    return None, "no such target"


def hold_http(port, n):
    """n keep-alive connections, each answered once; returns them open."""
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(GET)
        socks.append(s)
    for i, s in enumerate(socks):
        buf = b""
        while b"\r\n\r\n" not in buf or len(buf) < buf.index(b"\r\n\r\n") + 4 + body_len(buf):
            d = s.recv(4096)
            if not d:
                raise RuntimeError(f"connection {i} closed before its answer")
            buf += d
        if not buf.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"connection {i}: {buf[:40]!r}")
    return socks


def body_len(buf):
    for line in buf.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def hold_sio(port, n, work):
    """n Socket.IO clients (node) connected and in one room; returns the node process."""
    logf = open(os.path.join(work, f"clients-{port}.log"), "w")
    p = subprocess.Popen(["node", os.path.join(BENCH, "idle_clients.js"), str(port), str(n)],
                         stdout=subprocess.PIPE, stderr=logf, text=True, start_new_session=True)
    record_pgid(p.pid)
    line = p.stdout.readline()
    if not line.startswith("READY"):
        p.kill()
        raise RuntimeError(f"clients: {line.strip() or 'no READY'} (see {logf.name})")
    return p


def measure(kind, target, n, args, work):
    port = free_port()
    srv, why = start(kind, target, port, args.workers, work)
    if not srv:
        return {"error": why}
    held = None
    try:
        if args.warmup:
            warm = hold_http(port, args.warmup) if kind == "http" else hold_sio(port, args.warmup, work)
            release(kind, warm)
            time.sleep(1)
        before = rss_kib(srv.proc.pid)
        t0 = time.monotonic()
        held = hold_http(port, n) if kind == "http" else hold_sio(port, n, work)
        took = time.monotonic() - t0
        time.sleep(args.settle)
        after = rss_kib(srv.proc.pid)
        ok = kind == "sio" or http_ok(port)
        return {"before": before, "after": after, "per": (after - before) * 1024 / n, "connect_s": took,
                "still_serving": ok}
    except (OSError, RuntimeError) as e:
        return {"error": str(e)}
    finally:
        release(kind, held)
        srv.stop()


def release(kind, held):
    if kind == "http" and held:
        for s in held:
            s.close()
    elif held:
        held.terminate()
        try:
            held.wait(timeout=10)
        except subprocess.TimeoutExpired:
            held.kill()


def main():
    # SIGTERM/SIGINT unwind through the finally blocks, which stop the servers
    signal.signal(signal.SIGTERM, lambda n, f: sys.exit(128 + n))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="1000,10000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", default="http,sio")
    ap.add_argument("--targets", default="clusterd,nginx,node")
    ap.add_argument("--clusterd", action="append", metavar="BIN[=LABEL]",
                    help="a clusterd binary to measure (repeatable; default build-release/clusterd)")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds idle before the second RSS reading")
    ap.add_argument("--warmup", type=int, default=100, help="clients that connect and leave before the first reading")
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "issue16-idle-memory.md"))
    ap.add_argument("--json", help="also write the rows as JSON here (bench.py merges them into latest.md)")
    args = ap.parse_args()
    for i, spec in enumerate(args.clusterd or [os.path.join(REPO, "build-release", "clusterd")]):
        binary, _, lab = spec.partition("=")
        CLUSTERD["clusterd" if i == 0 else f"clusterd{i}"] = (binary, lab)
    targets = []
    for t in args.targets.split(","):
        targets += list(CLUSTERD) if t == "clusterd" else [t]
    nofile = raise_nofile()
    counts = [int(c) for c in args.counts.split(",")]
    if max(counts) + 100 > nofile:
        sys.exit(f"the fd limit ({nofile}) is too low for {max(counts)} connections")
    # under bench.py, inside its scratch directory (run.sh removes or keeps it)
    pg = os.environ.get("BENCH_PGIDS")
    work = tempfile.mkdtemp(prefix="clusterd-idle.", dir=os.path.dirname(pg) if pg else None)
    rows = []
    for kind in args.only.split(","):
        for target in targets:
            if kind == "sio" and target == "nginx":
                continue
            for n in counts:
                log(f"{kind} {target} {n} ...")
                r = measure(kind, target, n, args, work)
                log(f"  {r}")
                rows.append((kind, target, n, r))
    label = {("http", "clusterd"): "clusterd (dummy)", ("http", "nginx"): "nginx (`return 200`)",
             ("http", "node"): "Node cluster + Express", ("sio", "clusterd"): "clusterd events",
             ("sio", "node"): "Node cluster + socket.io + cluster-adapter"}
    note = (f"{args.workers} workers each; RSS summed over master/primary and workers, before the clients "
            f"connect (after {args.warmup} came and went) and after they sat idle {args.settle:g} s; "
            f"fd limit {nofile}.")
    lines = [f"Command: `bench/idle.py {' '.join(sys.argv[1:])}`".rstrip(), "", note, "",
             "| kind | server | idle connections | RSS before (KiB) | RSS after (KiB) | per connection |",
             "|---|---|---:|---:|---:|---:|"]
    for (name, (binary, lab)) in CLUSTERD.items():
        for kind in ("http", "sio"):
            base = "clusterd (dummy)" if kind == "http" else "clusterd events"
            label[(kind, name)] = f"{base} {lab}" if lab else base
    for kind, target, n, r in rows:
        what = "keep-alive HTTP" if kind == "http" else "Socket.IO (WebSocket, in a room)"
        if "error" in r:
            lines.append(f"| {what} | {label[(kind, target)]} | {n} | - | - | unavailable: {r['error']} |")
        else:
            lines.append(f"| {what} | {label[(kind, target)]} | {n} | {r['before']} | {r['after']} | "
                         f"{r['per'] / 1024:.2f} KB |")
    if args.json:
        out = [{"kind": "keep-alive HTTP" if kind == "http" else "Socket.IO (WebSocket, in a room)",
                "label": label[(kind, target)], "n": n, **r} for kind, target, n, r in rows]
        with open(args.json, "w") as f:
            json.dump({"note": "bench/idle.py: " + note, "rows": out}, f, indent=1)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        with open(args.out, "w") as f:
            f.write(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
