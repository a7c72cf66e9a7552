#!/usr/bin/env python3
"""bench.py - clusterd against nginx, Node.js cluster + Express and the
no-parse ceiling answerer (stdlib only).

Run through bench/run.sh, which installs the peers and builds what this
needs; bench/README.md says what every figure means.  It starts every
available target on its own loopback port with the same number of worker
processes, drives them with wrk in alternation (A B C D A B C D ...), and
measures per run: req/s and latency (wrk), server CPU per request (utime +
stime of every process of the target, /proc), context switches per request
(every task's voluntary + nonvoluntary switches, /proc/PID/task/*/status)
and, in the warm-up run only so its cost stays out of the measured rounds,
syscalls per request by kind (perf stat on the target's pids).  The dummy
scenarios can be pinned (--pin SERVER:CLIENT: the target's tasks bound with
sched_setaffinity, wrk under taskset).  Then the growth table: dummy with
-w 1 (the main run is -w 2), readmongo at several limits (bytes per
answer), and bench/idle.py's memory per idle connection, merged.  Startup
and worker-replacement times come first, while the TCP table is small.
report.py turns the collected dict into bench/results/latest.md and
latest.png; latest.json is the dict itself.

Every process it starts is in its own process group, recorded in
WORK/pgids (run.sh's EXIT trap kills what is left), and stopped at the end.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse

import procs
from lifecycle import measure_replace, measure_startup
from procs import (BENCH_PIDS, DEADLINE, OtherCpu, alloc_port, children, count_syscalls,
                   cpu_list, cpu_seconds, ctx_switches, http_get, log, set_affinity, status_kb, stop_all,
                   tree, _next_port)
from report import fmt, goals as report_goals, med_range, write_chart, write_report
from targets import BENCH, REPO, Ceiling, Clusterd, Nginx, Node, answer_bytes

# How the dummy scenarios are pinned by default, and why (from the pinned
# and unpinned runs compared in bench/README.md).
DEFAULT_PIN = "auto"
PIN_WHY = ("Why pinned by default: on 2 CPUs, 4 runs of the dummy scenarios (clusterd, nginx, ceiling, 5 rounds "
           "of 4 s, pinned 1:0 and unpinned, in both orders; a loaded machine, load average 12-18) gave CPU/req "
           "spreads (max-min over median) of 0.05-0.60 pinned (median 0.10) against 0.15-0.67 unpinned (median "
           "0.20), steadier pinned in 8 of 12 pairs: CPU per request, the figure these scenarios compare, is "
           "steadier pinned, if not by much. req/s "
           "was steadier unpinned there (other work lands on the server's one CPU), and pinned CPU/req is higher "
           "for every target alike (each request is a cross-CPU wakeup). Pinned, the server has exactly one CPU "
           "and wrk the other, so req/s ratios compare the servers, not how they share CPUs with wrk. "
           "bench/README.md has the table; `--pin none` runs unpinned.")



# --------------------------------------------------------------------------
# wrk


def run_wrk(url, duration, conns, threads, close, timeout_s, cpus=None):
    """One wrk run; cpus: a taskset CPU list to run it on (pinned layouts)."""
    env = dict(os.environ)
    env["WRK_CLOSE"] = "1" if close else "0"
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", f"--timeout={timeout_s}s",
            "-s", os.path.join(BENCH, "wrk_report.lua"), url]
    if cpus:
        argv = ["taskset", "-c", cpus] + argv
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=duration + 30)
    for line in r.stdout.splitlines():
        if line.startswith("WRKJSON "):
            d = json.loads(line[8:])
            d["rps"] = d["requests"] / (d["duration_us"] / 1e6) if d["duration_us"] else 0.0
            d["socket_errors"] = d["connect"] + d["read"] + d["write"] + d["timeout"]
            return d
    raise RuntimeError(f"wrk gave no result: {r.stdout[-500:]} {r.stderr[-500:]}")


def run_mongoc(binary, mongo, query, threads, duration):
    argv = [binary, mongo["uri"], query["collection"], query["filter"], str(query["limit"]),
            str(threads), str(duration), "--json"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            return d
    raise RuntimeError(f"mongoc_loop gave no result (rc {r.returncode}): {r.stderr[-500:]}")


# --------------------------------------------------------------------------
# MongoDB (FerretDB) for readmongo


def setup_mongo(args):
    """Start FerretDB and seed it; returns (mongo dict, None) or (None, reason)."""
    script = os.path.join(REPO, "scripts", "ferretdb.sh")
    if not os.access(script, os.X_OK):
        return None, "scripts/ferretdb.sh is missing (readmongo helper not landed yet)"
    seed = None
    for cand in (args.seed, os.path.join(REPO, "build-release", "cd-seed"), os.path.join(REPO, "build", "cd-seed")):
        if cand and os.access(cand, os.X_OK):
            seed = cand
            break
    if not seed:
        return None, "cd-seed is not built (build-release/cd-seed or build/cd-seed)"
    fdir = os.path.join(procs.WORK, "ferretdb")
    port = alloc_port()
    r = subprocess.run([script, "start", fdir, str(port)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        return None, f"ferretdb.sh start failed: {(r.stderr or r.stdout).strip()[-300:]}"
    STARTED_FERRET.append(fdir)
    pid = None
    try:
        with open(os.path.join(fdir, "ferretdb.pid")) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        pass
    uri = f"mongodb://127.0.0.1:{port}/{args.mongo_db}"
    r = subprocess.run([seed, uri, args.mongo_db, str(args.mongo_docs)], capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        return None, f"cd-seed failed (rc {r.returncode}): {(r.stderr or r.stdout).strip()[-300:]}"
    return {"uri": uri, "db": args.mongo_db, "port": port, "pid": pid, "dir": fdir,
            "threads_per_worker": max(1, args.mongo_conns // args.workers),
            "seed_out": r.stdout.strip()[-300:]}, None


STARTED_FERRET = []


def stop_ferret():
    script = os.path.join(REPO, "scripts", "ferretdb.sh")
    for d in STARTED_FERRET:
        subprocess.run([script, "stop", d], capture_output=True, timeout=30)


# --------------------------------------------------------------------------
# the throughput rounds


def process_memory(master):
    kids = children(master)
    return {
        "master_rss_kb": status_kb(master, "VmRSS"),
        "master_hwm_kb": status_kb(master, "VmHWM"),
        "worker_rss_kb": [status_kb(p, "VmRSS") for p in kids],
        "worker_hwm_kb": [status_kb(p, "VmHWM") for p in kids],
        "workers": kids,
    }


def wait_quiet(args):
    """Before a round: wait (bounded) until the machine is quiet, i.e. other
    processes use less than --disturbed cores (the targets are idle now)."""
    if args.quiet_wait <= 0:
        return 0.0
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.quiet_wait and time.monotonic() < DEADLINE[0]:
        with OtherCpu() as oc:
            time.sleep(0.5)
            load = oc.result(0.0)
        if load is not None and load < args.disturbed:
            break
    return time.monotonic() - t0


def run_scenario(sc, entries, args, mongo):
    """entries: list of (key, runner) where runner(duration) -> result dict."""
    results = {k: [] for k, _ in entries}
    warm = {}
    log(f"scenario {sc['name']}: warm-up")
    for key, runner in entries:
        try:
            warm[key] = runner(args.warmup, warm=True)
        except Exception as e:
            log(f"  warm-up of {key} failed: {e}")
    def clean_rounds(key):
        return sum(1 for r in results[key] if "rps" in r and not r.get("disturbed"))

    rnd = 0
    extra = 0
    while True:
        if rnd >= args.rounds:
            # Rounds disturbed by other work on the machine are repeated (all
            # targets, same alternation), bounded in count and by the budget.
            short = [k for k, _ in entries if clean_rounds(k) < args.rounds]
            if not short or extra >= args.max_extra_rounds or time.monotonic() > DEADLINE[0]:
                break
            extra += 1
            log(f"  extra round (disturbed rounds for {', '.join(short)})")
        rnd += 1
        waited = wait_quiet(args)
        if waited > 0.6:
            log(f"  waited {waited:.1f} s for other work on the machine to calm down")
        for key, runner in entries:
            try:
                r = runner(args.duration)
            except Exception as e:
                log(f"  round {rnd} {key}: FAILED {e}")
                r = {"failed": str(e)}
            if r.get("other_cores") is not None and r["other_cores"] > args.disturbed:
                r["disturbed"] = True
            results[key].append(r)
            if "rps" in r:
                cpu_us = r["cpu_s"] / r["requests"] * 1e6 if r.get("cpu_s") is not None and r["requests"] else None
                log(f"  round {rnd} {key:9s} {r['rps']:10.0f} req/s  {fmt(cpu_us, '{:.1f}')} us/req  p50 {r['p50_us'] / 1000:.2f} ms  "
                    f"p99 {r['p99_us'] / 1000:.2f} ms  errs {r.get('status', 0)}+{r.get('socket_errors', 0)}  "
                    f"other load {fmt(r.get('other_cores'), '{:.2f}')}{'  DISTURBED' if r.get('disturbed') else ''}"
                    f"{'  (' + ', '.join(f'{n} {c}' for c, n in r['other_top']) + ')' if r.get('other_top') else ''}")
    return results, warm



def http_runner(target, url, sc, args, ferret_pid):
    pin = args.pin_layout if sc.get("pin") else None

    def run(duration, warm=False):
        pids = tree(target.proc.pid)
        set_affinity(pids, cpu_list(pin["server"]) if pin else set(range(os.cpu_count())))
        c0 = cpu_seconds(pids)
        cs0 = ctx_switches(pids)
        f0 = cpu_seconds([ferret_pid]) if ferret_pid else 0
        # syscalls are counted in the warm-up run only, from before wrk starts to after it ends:
        # perf's cost stays out of the measured rounds
        sys_count = count_syscalls(pids) if warm and args.syscalls else (lambda: None)
        with OtherCpu(pids, accounted_pids=pids + ([ferret_pid] if ferret_pid else [])) as oc:
            # a limit=1000 answer takes FerretDB about 0.4 s of CPU: readmongo gets a longer timeout
            r = run_wrk(url, duration, sc["conns"], args.wrk_threads, sc["close"],
                        max(args.wrk_timeout, 30) if sc["mongo"] else args.wrk_timeout,
                        pin["client"] if pin else None)
            pids = tree(target.proc.pid)
            r["cpu_s"] = cpu_seconds(pids) - c0
            r["ctx_switches"] = ctx_switches(pids) - cs0
            r["db_cpu_s"] = (cpu_seconds([ferret_pid]) - f0) if ferret_pid else None
            r["other_cores"] = oc.result(r["cpu_s"] + (r["db_cpu_s"] or 0))
            r["other_top"] = oc.top
        n = sys_count()
        if n is not None and r["requests"]:
            r["syscalls_per_req"] = n["total"] / r["requests"]
            r["syscall_mix_per_req"] = {k: v / r["requests"] for k, v in n.items()}
        r["pinned"] = bool(pin)
        return r
    return run


def mongoc_runner(binary, mongo, query, threads):
    def run(duration, warm=False):
        f0 = cpu_seconds([mongo["pid"]]) if mongo["pid"] else 0
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with OtherCpu(accounted_pids=[mongo["pid"]] if mongo["pid"] else []) as oc:
            d = run_mongoc(binary, mongo, query, threads, duration)
            dbc = (cpu_seconds([mongo["pid"]]) - f0) if mongo["pid"] else None
            other = oc.result(dbc or 0)
            other_top = oc.top
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # the loop's own CPU: the driver and JSON rendering, no HTTP
        own = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        csw = (ru1.ru_nvcsw + ru1.ru_nivcsw) - (ru0.ru_nvcsw + ru0.ru_nivcsw)
        return {"other_cores": other, "other_top": other_top, "requests": d["ops"], "rps": d["ops_per_s"],
                "p50_us": d["p50_us"], "p99_us": d["p99_us"], "status": 0, "socket_errors": d["errors"],
                "cpu_s": own, "ctx_switches": csw, "db_cpu_s": dbc, "docs_per_op": d["docs_per_op"]}
    return run


def summarize(rounds, want, warm=None):
    """Medians over the undisturbed rounds when there are `want` of them,
    else over all rounds (and say so); per-round min-max next to them."""
    ok = [r for r in rounds if "rps" in r and r.get("requests")]  # a run with no answer is a failed round
    if not ok:
        return None
    clean = [r for r in ok if not r.get("disturbed")]
    all_ok = len(ok)
    if len(clean) >= min(want, 3):
        ok = clean
    reqs = sum(r["requests"] for r in ok)
    cpu = [r["cpu_s"] for r in ok if r.get("cpu_s") is not None]
    per_cpu = [r["cpu_s"] / r["requests"] * 1e6 for r in ok if r.get("cpu_s") is not None and r["requests"]]
    per_csw = [r["ctx_switches"] / r["requests"] for r in ok if r.get("ctx_switches") is not None and r["requests"]]
    dbc = [r["db_cpu_s"] for r in ok if r.get("db_cpu_s") is not None]
    oth = [r["other_cores"] for r in ok if r.get("other_cores") is not None]
    byt = [r["bytes"] / r["requests"] for r in ok if r.get("bytes") and r["requests"]]
    docs = [r["docs_per_op"] for r in ok if r.get("docs_per_op") is not None]
    return {
        "rounds": len(ok),
        "rounds_run": all_ok,
        "disturbed_used": sum(1 for r in ok if r.get("disturbed")),
        "failed_rounds": len(rounds) - len(ok),
        "rps": statistics.median(r["rps"] for r in ok),
        "rps_min": min(r["rps"] for r in ok),
        "rps_max": max(r["rps"] for r in ok),
        "p50_ms": statistics.median(r["p50_us"] for r in ok) / 1000,
        "p99_ms": statistics.median(r["p99_us"] for r in ok) / 1000,
        "p99_min": min(r["p99_us"] for r in ok) / 1000,
        "p99_max": max(r["p99_us"] for r in ok) / 1000,
        "non2xx": sum(r.get("status", 0) for r in ok),
        "socket_errors": sum(r.get("socket_errors", 0) for r in ok),
        "requests": reqs,
        "cpu_us_per_req": (sum(cpu) / reqs * 1e6) if cpu and reqs else None,
        "cpu_min": min(per_cpu) if per_cpu else None,
        "cpu_max": max(per_cpu) if per_cpu else None,
        "csw_per_req": statistics.median(per_csw) if per_csw else None,
        "csw_min": min(per_csw) if per_csw else None,
        "csw_max": max(per_csw) if per_csw else None,
        "sys_per_req": (warm or {}).get("syscalls_per_req"),
        "sys_mix": (warm or {}).get("syscall_mix_per_req"),
        "bytes_per_req": statistics.median(byt) if byt else None,
        "docs_per_op": statistics.median(docs) if docs else None,
        "db_cpu_us_per_req": (sum(dbc) / reqs * 1e6) if dbc and reqs else None,
        "other_cores": max(oth) if oth else None,
    }


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1048576:.1f} GiB"
    except (OSError, ValueError):
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "mem": mem, "load_start": loadavg()}


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def tool_version(argv, pick=lambda s: s.strip().splitlines()[0] if s.strip() else "?"):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=5)
        return pick(r.stdout + r.stderr)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


# --------------------------------------------------------------------------
# main


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke test of every part: short runs, fewer repetitions")
    ap.add_argument("--rounds", type=int, help="wrk runs per target per scenario (default 3)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 6, quick 1)")
    ap.add_argument("--warmup", type=int, help="seconds of warm-up per target per scenario (default 2, quick 1)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--pin", default=DEFAULT_PIN,
                    help="SERVER_CPUS:CLIENT_CPUS for the dummy scenarios (servers' tasks on the first set, wrk "
                         f"on the second), or 'none' (default {DEFAULT_PIN}; 'auto': upper half of the CPUs for "
                         "the servers, lower half for wrk)")
    ap.add_argument("--no-syscalls", dest="syscalls", action="store_false",
                    help="do not count syscalls (perf stat) in the warm-up runs")
    ap.add_argument("--ceiling", help="bench/ceiling binary (default: compiled into the scratch directory)")
    ap.add_argument("--ceiling-et", action="store_true", help="run the ceiling answerer edge-triggered")
    ap.add_argument("--no-growth", dest="growth", action="store_false",
                    help="skip the growth table's extra runs (-w 1, idle memory)")
    ap.add_argument("--idle-counts", help="bench/idle.py's connection counts (default 1000,10000; quick 200)")
    ap.add_argument("--disturbed", type=float, default=0.25,
                    help="a run during which other processes used more than this many cores is repeated")
    ap.add_argument("--max-extra-rounds", type=int, help="per scenario (default 2, quick 1)")
    ap.add_argument("--quiet-wait", type=float,
                    help="before each round wait up to this many seconds for the machine to be quiet (default 6, quick 1)")
    ap.add_argument("--budget", type=int,
                    help="seconds after which no extra rounds or quiet waits start (default 600, quick 60)")
    ap.add_argument("--wrk-timeout", type=int, default=5)
    ap.add_argument("--conns", type=int, default=64, help="wrk connections for /dummy")
    ap.add_argument("--mongo-conns", type=int, default=8,
                    help="readmongo concurrency: wrk connections, mongoc loop threads, and clusterd query "
                         "threads in all (threads per worker = this / workers)")
    ap.add_argument("--only", help="comma list of targets: clusterd,nginx,node,ceiling,mongoc")
    ap.add_argument("--skip-lifecycle", action="store_true")
    ap.add_argument("--skip-readmongo", action="store_true")
    ap.add_argument("--clusterd", help="clusterd binary (default build-release/clusterd)")
    ap.add_argument("--mongoc-loop", help="mongoc_loop binary")
    ap.add_argument("--clusterd-note", help="said next to clusterd's version (run.sh: a stale binary)")
    ap.add_argument("--seed", help="cd-seed binary")
    ap.add_argument("--mongo-db", default="bench")
    ap.add_argument("--mongo-docs", type=int, default=2000, help="cd-seed N (users; orders 3N/2)")
    ap.add_argument("--mongo-collection", default="users")
    ap.add_argument("--mongo-filter", default='{"active":true}')
    ap.add_argument("--mongo-limit", default="5,1,20,1000",
                    help="comma list; the first limit runs keep-alive and Connection: close, the others "
                         "keep-alive (the growth table: limit 1, 20, 1000)")
    ap.add_argument("--work", help="scratch directory (default: a new one under /tmp)")
    ap.add_argument("--out", default=os.path.join(BENCH, "results"),
                    help="directory for latest.md, latest.json, latest.png")
    ap.add_argument("--port-base", type=int, default=18080)
    ap.add_argument("--command", default="bench/run.sh")
    args = ap.parse_args()
    if args.rounds is None:
        args.rounds = 3
    if args.duration is None:
        args.duration = 1 if args.quick else 6
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    args.rounds = max(1, min(args.rounds, 20))
    # wrk takes whole seconds
    args.duration = int(max(1, min(round(args.duration), 60)))
    args.warmup = int(max(1, min(round(args.warmup), 30)))
    if args.max_extra_rounds is None:
        args.max_extra_rounds = 1 if args.quick else 2
    if args.budget is None:
        args.budget = 60 if args.quick else 600
    if args.quiet_wait is None:
        args.quiet_wait = 1.0 if args.quick else 6.0
    if args.idle_counts is None:
        args.idle_counts = "200" if args.quick else "1000,10000"
    args.pin_layout = pin_layout(args.pin)
    return args


def pin_layout(spec):
    """--pin: {'server': '1', 'client': '0'} or None."""
    n = os.cpu_count() or 1
    if spec in (None, "", "none", "off") or n < 2:
        return None
    if spec == "auto":
        half = n // 2
        return {"server": f"{half}-{n - 1}" if n - 1 > half else str(half),
                "client": f"0-{half - 1}" if half > 1 else "0"}
    server, _, client = spec.partition(":")
    try:
        if not cpu_list(server) or not cpu_list(client) or max(cpu_list(server) | cpu_list(client)) >= n:
            raise ValueError
    except ValueError:
        sys.exit(f"--pin {spec}: want SERVER_CPUS:CLIENT_CPUS with CPUs below {n}, 'auto' or 'none'")
    return {"server": server, "client": client}


def run_lifecycle(avail, args, data):
    """Startup (-w 2 and -w 8) and worker replacement, while the TCP table is small."""
    start_reps, kills = (2, 2) if args.quick else (5, 3)
    for t in avail:
        if t.key == "ceiling":
            continue
        for w in (2, 8):
            log(f"startup {t.key} -w {w} x{start_reps}")
            try:
                rs = measure_startup(t, w, start_reps)
            except Exception as e:
                log(f"  startup {t.key} -w {w} failed: {e}")
                continue
            served = [r["all_serving_ms"] for r in rs if r["all_serving_ms"] is not None]
            data["startup"].append({
                "target": t.key, "workers": w, "runs": len(rs), "raw": rs,
                "all_serving": med_range([r["all_serving_ms"] for r in rs]),
                "self_ready": med_range([r["self_ready_ms"] for r in rs]),
                "notify_ready": med_range([r.get("notify_ready_ms") for r in rs]),
                "all_serving_median": statistics.median(served or [float("nan")]),
            })
            log(f"  all serving {data['startup'][-1]['all_serving']} ms, self-reported {data['startup'][-1]['self_ready']} ms")
    for t in avail:
        if t.key == "ceiling":
            continue
        log(f"replace a SIGKILLed worker: {t.key} x{kills}")
        try:
            rs = measure_replace(t, kills, settle=0.5 if args.quick else 1.0)
        except Exception as e:
            log(f"  replace {t.key} failed: {e}")
            continue
        data["replace"].append({
            "target": t.key, "kills": len(rs), "raw": rs,
            "spawn": med_range([r["spawn_ms"] for r in rs]),
            "serving": med_range([r["serving_ms"] for r in rs]),
            "ready": med_range([r["ready_ms"] for r in rs]),
            "failed": sum(r["failed"] or 0 for r in rs),
        })
        log(f"  new process {data['replace'][-1]['spawn']} ms, reported ready {data['replace'][-1]['ready']} ms, "
            f"serving {data['replace'][-1]['serving']} ms")


def start_mongo(args, data, queries):
    log("starting FerretDB and seeding")
    mongo, why = setup_mongo(args)
    if not mongo:
        data["unavailable"]["readmongo (all targets)"] = why
        log(f"readmongo comparison SKIPPED: {why}")
        return None
    mongo["docs"] = args.mongo_docs
    if mongo["pid"]:
        BENCH_PIDS.append(mongo["pid"])
    mongo["version"] = tool_version([os.path.join(REPO, "scripts", "ferretdb.sh"), "bin"])
    try:
        fb = mongo["version"]
        mongo["version"] = tool_version([fb, "--version"],
                                        lambda s: (re.search(r"v\d+\.\d+\.\d+", s) or re.search("", "")).group(0))
    except Exception:
        pass
    data["mongo"] = {k: mongo[k] for k in ("docs", "version", "threads_per_worker", "seed_out")}
    data["mongo"]["queries"] = queries
    data["versions"]["FerretDB"] = mongo["version"]
    return mongo


def start_targets(avail, workers, mongo, data, tag):
    """Starts every available target with `workers` workers; the ceiling
    last, sized to clusterd's answer.  Returns those serving."""
    running = []
    for t in sorted(avail, key=lambda x: x.key == "ceiling"):
        port = alloc_port()
        t.start(workers, port, mongo=mongo if t.key in ("clusterd", "node") else None, name=f"{t.key}-{tag}")
        try:
            t.wait_serving(workers)
        except RuntimeError as e:
            log(f"target {t.key} failed to start: {e}")
            data["unavailable"][data["labels"][t.key] + f" ({tag})"] = "failed to start (see log in " + procs.WORK + ")"
            t.proc.stop()
            continue
        if t.key == "clusterd":
            Ceiling.answer_bytes = answer_bytes(port, "/dummy")
        running.append(t)
        BENCH_PIDS.extend(tree(t.proc.pid))  # idle targets are not "other load"
        time.sleep(0.3)
        log(f"target {t.key} on 127.0.0.1:{port}, pid {t.proc.pid}, workers {children(t.proc.pid)}")
    return running


def build_scenarios(args, mongo, queries):
    scenarios = []
    for close in (False, True):
        scenarios.append({"name": "dummy-" + ("close" if close else "keepalive"),
                          "title": "dummy " + ("Connection: close" if close else "keep-alive"),
                          "path": "/dummy", "conns": args.conns, "close": close, "mongo": False, "pin": True})
    if not mongo:
        return scenarios
    for qi, query in enumerate(queries):
        q = urllib.parse.urlencode({"filter": query["filter"], "limit": query["limit"]})
        rpath = f"/readmongo/{query['collection']}?{q}"
        for close in ((False, True) if qi == 0 and not args.quick else (False,)):
            scenarios.append({"name": f"readmongo-l{query['limit']}-" + ("close" if close else "keepalive"),
                              "title": f"readmongo limit={query['limit']} " + ("Connection: close" if close else "keep-alive"),
                              "path": rpath, "conns": args.mongo_conns, "close": close, "mongo": True,
                              "query": query, "limit": query["limit"], "pin": False})
    return scenarios


def run_scenarios(scenarios, running, args, mongo, data, only, extra=None):
    mongoc_bin = args.mongoc_loop or os.path.join(procs.WORK, "mongoc_loop")
    labels, unavailable = data["labels"], data["unavailable"]
    for sc in scenarios:
        entries = []
        for t in running:
            if sc["mongo"]:
                if not t.has_readmongo:
                    continue
                st, body = http_get(t.port, sc["path"], 5.0)
                if st != 200:
                    log(f"{t.key} {sc['path']} -> {st} {body[:200]}: left out of {sc['name']}")
                    unavailable[f"{labels[t.key]} readmongo"] = f"GET {sc['path']} gave {st}: {body[:120]}"
                    continue
            url = f"http://127.0.0.1:{t.port}{sc['path']}"
            entries.append((t.key, http_runner(t, url, sc, args, mongo["pid"] if (mongo and sc["mongo"]) else None)))
        if sc["mongo"] and not sc["close"]:
            if os.access(mongoc_bin, os.X_OK) and (not only or "mongoc" in only):
                entries.append(("mongoc", mongoc_runner(mongoc_bin, mongo, sc["query"], args.mongo_conns)))
            elif not os.access(mongoc_bin, os.X_OK):
                unavailable[labels["mongoc"]] = f"{mongoc_bin} not built"
        if not entries:
            log(f"scenario {sc['name']}: no target available")
            continue
        res, warm = run_scenario(sc, entries, args, mongo)
        row = {"name": sc["name"], "title": sc["title"], "path": sc["path"], "conns": sc["conns"],
               "close": sc["close"], "limit": sc.get("limit"), "pinned": bool(sc["pin"] and args.pin_layout),
               "rounds": res, "warmup": warm,
               "summary": {k: summarize(v, args.rounds, warm.get(k)) for k, v in res.items()}}
        row.update(extra or {})
        data["scenarios"].append(row)


def run_growth_workers(avail, args, data, only):
    """Dummy keep-alive with 1 worker per target (the main run gives -w 2)."""
    if args.workers == 1:
        return
    running = start_targets([t for t in avail if t.key != "mongoc"], 1, None, data, "w1")
    try:
        sc = {"name": "dummy-keepalive-w1", "title": "dummy keep-alive -w 1", "path": "/dummy",
              "conns": args.conns, "close": False, "mongo": False, "pin": True}
        run_scenarios([sc], running, args, None, data, only, {"group": "growth", "growth_workers": 1})
    finally:
        for t in running:
            t.proc.stop()


def run_idle(args, data):
    """bench/idle.py (memory per idle connection), merged into the growth section."""
    out_json = os.path.join(procs.WORK, "idle.json")
    argv = [sys.executable, os.path.join(BENCH, "idle.py"), "--counts", args.idle_counts,
            "--out", os.path.join(procs.WORK, "idle.md"), "--json", out_json,
            "--clusterd", args.clusterd or os.path.join(REPO, "build-release", "clusterd")]
    if args.quick:
        argv += ["--settle", "1", "--warmup", "20"]
    if args.only:
        argv += ["--targets", ",".join(t for t in args.only.split(",") if t in ("clusterd", "nginx", "node"))]
    log("idle memory: " + " ".join(argv[1:]))
    try:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, env={**os.environ, "BENCH_PGIDS": procs.PGIDS_FILE})
        with open(procs.PGIDS_FILE, "a") as f:
            f.write(f"{p.pid}\n")
        try:
            _, err = p.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)  # idle.py stops its servers
            _, err = p.communicate(timeout=30)
        with open(out_json) as f:
            data["idle"] = json.load(f)
        if p.returncode != 0:
            data["idle"]["error"] = f"exit {p.returncode}: {err.strip()[-300:]}"
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        data["idle"] = {"error": str(e)[-300:], "rows": []}


def new_data(args, targets, labels):
    data = {"command": args.command, "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": machine_info(), "labels": labels, "unavailable": {}, "scenarios": [],
            "memory": {}, "startup": [], "replace": [], "work": procs.WORK,
            "params": {"rounds": args.rounds, "duration": args.duration, "warmup": args.warmup,
                       "workers": args.workers, "wrk_threads": args.wrk_threads, "conns": args.conns,
                       "mongo_conns": args.mongo_conns, "pin": args.pin_layout, "pin_spec": args.pin,
                       "disturbed": args.disturbed, "max_extra_rounds": args.max_extra_rounds}}
    if args.pin_layout:
        args.pin_layout["why"] = PIN_WHY
    else:
        data["params"]["pin_why"] = PIN_WHY
    versions = {}
    for k, t in targets.items():
        if not t.unavailable:
            try:
                versions[k + (" (git rev)" if k == "clusterd" else "")] = t.version()
            except Exception:
                versions[k] = "?"
        elif k == "clusterd":
            versions["clusterd (git rev)"] = t.version() + " (not built)"
    if args.clusterd_note and "clusterd (git rev)" in versions:
        versions["clusterd (git rev)"] += f" ({args.clusterd_note})"
    versions["wrk"] = tool_version(["wrk", "-v"], lambda s: s.split()[1] if len(s.split()) > 1 else "?")
    versions["perf"] = tool_version(["perf", "--version"])
    data["versions"] = versions
    for k, t in targets.items():
        if t.unavailable:
            data["unavailable"][labels[k]] = t.unavailable
            log(f"target {k} UNAVAILABLE: {t.unavailable}")
    return data


def main():
    args = parse_args()
    DEADLINE[0] = time.monotonic() + args.budget
    _next_port[0] = args.port_base - 1
    procs.WORK = args.work or subprocess.run(["mktemp", "-d", "/tmp/clusterd-bench.XXXXXX"],
                                       capture_output=True, text=True).stdout.strip()
    os.makedirs(procs.WORK, exist_ok=True)
    procs.PGIDS_FILE = os.path.join(procs.WORK, "pgids")
    os.makedirs(args.out, exist_ok=True)

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    t_begin = time.monotonic()
    only = set(args.only.split(",")) if args.only else None
    targets = {}
    for cls in (Clusterd, Nginx, Node, Ceiling):
        t = cls(args)
        if only and t.key not in only:
            t.unavailable = "not selected (--only)"
        targets[t.key] = t
    labels = {k: t.label for k, t in targets.items()}
    labels["mongoc"] = "mongoc loop (raw)"
    data = new_data(args, targets, labels)
    avail = [t for t in targets.values() if not t.unavailable]
    queries = [{"collection": args.mongo_collection, "filter": args.mongo_filter, "limit": int(x)}
               for x in str(args.mongo_limit).split(",") if x.strip()]
    if args.quick:
        queries = queries[:1] + [q for q in queries[1:] if q["limit"] == 20][:1]
    mongo = None
    try:
        if not args.skip_lifecycle:
            run_lifecycle(avail, args, data)
        if args.skip_readmongo:
            data["unavailable"]["readmongo"] = "skipped (--skip-readmongo)"
        else:
            mongo = start_mongo(args, data, queries)
        running = start_targets(avail, args.workers, mongo, data, "main")
        for t in running:
            data["memory"][t.key] = {"idle": process_memory(t.proc.pid)}
        data["versions"]["node"] = targets["node"].version() if not targets["node"].unavailable else "not installed"
        run_scenarios(build_scenarios(args, mongo, queries), running, args, mongo, data, only)
        for sc in data["scenarios"]:
            if sc["name"] == "dummy-keepalive":
                sc["growth_workers"] = args.workers
        for t in running:
            data["memory"][t.key]["end"] = process_memory(t.proc.pid)
            t.proc.stop()
        if args.growth:
            run_growth_workers(avail, args, data, only)
    finally:
        stop_all()
        stop_ferret()
    if args.growth:
        run_idle(args, data)
    data["goals"] = report_goals(data)
    data["elapsed_s"] = round(time.monotonic() - t_begin, 1)
    data["machine"]["load_end"] = loadavg()
    md = os.path.join(args.out, "latest.md")
    png = os.path.join(args.out, "latest.png")
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump(data, f, indent=1, default=str)
    if data["scenarios"] and write_chart(data, png, procs.WORK, log):
        log(f"chart: {png}")
    write_report(data, md)
    log(f"report: {md} (elapsed {data['elapsed_s']} s)")
    print()
    with open(md) as f:
        print(f.read())


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()