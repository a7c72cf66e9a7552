#!/usr/bin/env python3
"""
readmongo_ctx.py - what one readmongo request costs a clusterd worker, in
figures that hold on a loaded machine: context switches and CPU per request,
next to the raw mongoc loop (bench/mongoc_loop.c) on the same query.
Developer's tool (issue 13); bench/bench.py is the full benchmark.

    bench/readmongo_ctx.py --clusterd BUILD/clusterd --mongoc-loop BIN \
        --uri mongodb://127.0.0.1:PORT/bench [--threads 4] [--limit 5]

The database must be up and seeded (scripts/ferretdb.sh start, cd-seed), as
bench/bench.py does.  clusterd runs with 2 workers and one [readmongo]
section; wrk drives GET /readmongo/users?filter={"active":true}&limit=N with
--conns keep-alive connections (bench.py's defaults: 8), rounds alternate
with the mongoc loop (--conns threads).

Context switches per request: before and after a run, the sum of
voluntary_ctxt_switches + nonvoluntary_ctxt_switches over every task of
every worker (/proc/PID/task/*/status), difference over requests served
("vol": the voluntary ones alone, the handoff's own; the others are
preemptions, which grow with the machine's load).
For the mongoc loop: ru_nvcsw + ru_nivcsw of the process (wait4), over ops.
CPU per request: utime+stime (/proc/PID/stat of the workers; rusage of the
mongoc loop) over requests.  With --perf, system calls per request too
(perf stat -e raw_syscalls:sys_enter on the workers' threads, or on the
mongoc loop), which the machine's load barely moves (this VM has no
hardware counters, so no instructions).  Prints one line per run and the
min-max and median per target.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def children(ppid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == ppid:
            out.append(int(d))
    return out


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def ctx(pid):
    """(voluntary, nonvoluntary) switches summed over every task of pid."""
    v = nv = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        v += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        nv += int(line.split()[1])
        except OSError:
            pass
    return v, nv


def tasks(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def wrk(url, conns, seconds):
    r = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", url], capture_output=True,
                       text=True, timeout=seconds + 60)
    m = re.search(r"(\d+) requests in", r.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    if not m:
        raise RuntimeError("wrk: " + r.stdout + r.stderr)
    return int(m.group(1)), float(rps.group(1)), int(bad.group(1)) if bad else 0


def run_clusterd(a, url, workers):
    perf = None
    if a.perf:
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p",
                                 ",".join(map(str, workers))], stderr=subprocess.PIPE, text=True)
    c0 = {p: (cpu_s(p), ctx(p)) for p in workers}
    n, rps, bad = wrk(url, a.conns, a.seconds)
    cpu = sum(cpu_s(p) - c0[p][0] for p in workers)
    v = sum(ctx(p)[0] - c0[p][1][0] for p in workers)
    nv = sum(ctx(p)[1] - c0[p][1][1] for p in workers)
    r = {"req": n, "rps": rps, "non2xx": bad, "cpu_us": cpu * 1e6 / n, "ctx": (v + nv) / n,
         "vol": v / n}
    if perf:
        perf.send_signal(signal.SIGINT)
        err = perf.communicate(timeout=30)[1]
        m = re.search(r"^(\d+),,raw_syscalls:sys_enter", err, re.M)
        if m:
            r["sys"] = int(m.group(1)) / n
    return r


def run_mongoc(a):
    argv = ["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-o", "/dev/stderr"] if a.perf else []
    p = subprocess.Popen(argv + [a.mongoc_loop, a.uri, "users", '{"active":true}', str(a.limit), str(a.conns),
                          str(a.seconds), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE if a.perf else None, text=True)
    out = p.stdout.read()
    err = p.stderr.read() if a.perf else ""
    _, status, ru = os.wait4(p.pid, 0)
    d = json.loads(out.strip().splitlines()[-1])
    n = d["ops"]
    r = {"req": n, "rps": d["ops_per_s"], "non2xx": d["errors"],
         "cpu_us": (ru.ru_utime + ru.ru_stime) * 1e6 / n, "ctx": (ru.ru_nvcsw + ru.ru_nivcsw) / n, "vol": ru.ru_nvcsw / n}
    m = re.search(r"^(\d+),,raw_syscalls:sys_enter", err, re.M)
    if m:
        r["sys"] = int(m.group(1)) / n
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusterd", required=True)
    ap.add_argument("--mongoc-loop")
    ap.add_argument("--uri", required=True)
    ap.add_argument("--threads", type=int, default=4, help="readmongo concurrency (query fibers) per worker")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--perf", action="store_true", help="also system calls per request (perf stat)")
    ap.add_argument("--extra", default="", help="more lines for the [readmongo] section, ';'-separated")
    a = ap.parse_args()

    port = free_port()
    tmp = tempfile.mkdtemp(prefix="rmctx")
    conf = os.path.join(tmp, "c.ini")
    db = urllib.parse.urlparse(a.uri).path.lstrip("/") or "bench"
    with open(conf, "w") as f:
        f.write(f"[cluster]\nlisten = 127.0.0.1:{port}\nworkers = {a.workers}\nkeepalive_timeout = 75s\n"
                f"pidfile = {tmp}/pid\n\n"
                f"[readmongo]\ntype = readmongo\nroute = /readmongo\nuri = {a.uri}\ndatabase = {db}\n"
                f"collections = users, orders, products\nconcurrency = {a.threads}\n"
                + "".join(x.strip() + "\n" for x in a.extra.split(";") if x.strip()))
    master = subprocess.Popen([a.clusterd, "-c", conf], stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(tmp, "log"), "w"))
    try:
        q = urllib.parse.urlencode({"filter": '{"active":true}', "limit": a.limit})
        url = f"http://127.0.0.1:{port}/readmongo/users?{q}"
        workers = []
        for _ in range(100):
            time.sleep(0.1)
            workers = children(master.pid)
            if len(workers) >= a.workers:
                break
        time.sleep(0.5)
        wrk(url, a.conns, 1)  # warm-up: connections to the database made
        res = {"clusterd": [], "mongoc": []}
        for r in range(a.rounds):
            x = run_clusterd(a, url, workers)
            x["tasks"] = sum(tasks(p) for p in workers)
            res["clusterd"].append(x)
            print(f"round {r} clusterd {json.dumps(x)}", flush=True)
            if a.mongoc_loop:
                y = run_mongoc(a)
                res["mongoc"].append(y)
                print(f"round {r} mongoc   {json.dumps(y)}", flush=True)
        for k, v in res.items():
            if not v:
                continue
            parts = []
            for f in ("cpu_us", "ctx", "vol", "sys", "rps"):
                xs = [e[f] for e in v if f in e]
                if not xs:
                    continue
                parts.append(f"{f} {statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})")
            print(f"{k}: " + ", ".join(parts) + f", non2xx {sum(e['non2xx'] for e in v)}")
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(20)
        except subprocess.TimeoutExpired:
            master.kill()


if __name__ == "__main__":
    sys.exit(main())
