"""report.py - bench.py's results as Markdown (latest.md) and a chart (latest.png).

Imported by bench/bench.py, which measures and passes one dict (the same
that goes to latest.json).  This module only formats: every figure in the
Markdown is computed from the per-round numbers in that dict, so a reader
of latest.json can redo any of it.

Noise is shown next to every figure: a median comes with its min-max over
the rounds, and a ratio a/b with its range [a_min/b_max, a_max/b_min]
(the smallest and largest ratio any pairing of rounds could give).  The
ratios table shows CPU per request first: on a machine where the load
generator shares the CPUs, req/s of the fastest servers is bounded by the
client too, while CPU per request is the server's own cost.
"""
import os
import shutil
import statistics
import subprocess

TARGET_ORDER = ("clusterd", "nginx", "node", "ceiling", "mongoc")


def fmt(v, spec="{:.0f}", none="–"):
    return none if v is None else spec.format(v)


def med_range(vals):
    vals = [x for x in vals if x is not None]
    if not vals:
        return "–"
    return f"{statistics.median(vals):.1f} ({min(vals):.1f}–{max(vals):.1f})"


def rcell(a, b, field, lo, hi, spec="{:.2f}"):
    """a[field]/b[field] with its range [a[lo]/b[hi], a[hi]/b[lo]]."""
    if not a or not b or not a.get(field) or not b.get(field):
        return "–"
    mid = a[field] / b[field]
    if a.get(lo) and a.get(hi) and b.get(lo) and b.get(hi):
        return f"{spec.format(mid)} ({spec.format(a[lo] / b[hi])}–{spec.format(a[hi] / b[lo])})"
    return spec.format(mid)


def rng(s, field, lo, hi, spec):
    if not s or s.get(field) is None:
        return "–"
    if s.get(lo) is None or s.get(hi) is None:
        return spec.format(s[field])
    return f"{spec.format(s[field])} ({spec.format(s[lo])}–{spec.format(s[hi])})"


def method_lines(data):
    m, p = data["machine"], data["params"]
    pin = p.get("pin")
    if pin:
        pinned = (f"Pinning: in the dummy scenarios (and the growth table's -w 1/-w 2 rows) every task of the server's "
                  f"processes is bound to CPU {pin['server']} (sched_setaffinity on /proc/PID/task/*, before each run) and "
                  f"wrk runs under `taskset -c {pin['client']}`; the readmongo scenarios run unpinned (FerretDB, "
                  "the database, needs the CPUs, and wrk's share there is small). "
                  f"{pin.get('why', '')}")
    else:
        pinned = ("Pinning: none (`--pin none`): servers, wrk and the database share all CPUs. "
                  f"{p.get('pin_why', '')}")
    return [
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem']} RAM, Linux {m['kernel']}; load average "
        f"{m.get('load_start', '?')} at the start, {m.get('load_end', '?')} at the end (anything else running on "
        "the machine competes with the targets and wrk)  ",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in data["versions"].items()) + "\n",
        f"Method: every target runs on its own 127.0.0.1 port with {p['workers']} worker processes (the growth "
        f"table adds -w 1); wrk (`-t{p['wrk_threads']}`, {p['duration']} s per run, {p['warmup']} s warm-up) drives "
        f"them in alternation (A B C A B C ...), {p['rounds']} rounds per target. Medians over rounds with min–max "
        "next to them; errors are summed. **CPU µs/req** = utime+stime of all the target's processes (/proc/PID/stat) "
        "over the requests served, pooled over the rounds, with the per-round min–max (for the mongoc loop: its "
        "own CPU, the driver and JSON rendering without HTTP). **ctx sw/req** = voluntary + nonvoluntary context "
        "switches of every task of the target's processes (/proc/PID/task/*/status, before and after each run) "
        "over requests (mongoc loop: getrusage of the child). **syscalls/req** = `perf stat -e "
        "raw_syscalls:sys_enter -p PIDS` from before to after the warm-up run (so perf's overhead never touches "
        "the measured rounds) over that run's requests, also by kind (epoll_wait, epoll_ctl, read, write, ...). **bytes/answer** = wrk's bytes read over requests (head + body). "
        "DB CPU/req is FerretDB's. 'other load' = the most CPU (cores, worst round used) that processes outside "
        "the measurement used during a run; a run above "
        f"{p.get('disturbed', 0.25)} cores counts as disturbed and its round is repeated (at most "
        f"{p.get('max_extra_rounds', '?')} extra rounds per scenario, within the time budget).\n",
        pinned + "\n",
        "Ratios a/b: the figure is the ratio of the medians (CPU: of the pooled figures); in brackets the range "
        "[a_min/b_max – a_max/b_min] over the rounds, i.e. how far the noise alone could move it.\n",
    ]


def throughput_table(data):
    L = ["## Throughput, latency and cost per request\n",
         "| scenario | target | req/s median (min–max) | p50 ms | p99 ms | non-2xx | socket errors | CPU µs/req (min–max) "
         "| ctx sw/req | syscalls/req | bytes/answer | DB CPU µs/req | rounds used/run | other load |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sc in data["scenarios"]:
        if sc.get("group", "main") != "main":
            continue
        for key, s in sc["summary"].items():
            lab = data["labels"].get(key, key)
            if s is None:
                L.append(f"| {sc['title']} | {lab} | failed | | | | | | | | | | | |")
                continue
            L.append(f"| {sc['title']} | {lab} | {rng(s, 'rps', 'rps_min', 'rps_max', '{:,.0f}')} | "
                     f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['non2xx']} | {s['socket_errors']} | "
                     f"{rng(s, 'cpu_us_per_req', 'cpu_min', 'cpu_max', '{:.1f}')} | "
                     f"{fmt(s.get('csw_per_req'), '{:.2f}')} | {fmt(s.get('sys_per_req'), '{:.1f}')} | "
                     f"{fmt(s.get('bytes_per_req'), '{:,.0f}')} | {fmt(s.get('db_cpu_us_per_req'), '{:.1f}')} | "
                     f"{s['rounds']}/{s['rounds_run']}{' (disturbed)' if s['disturbed_used'] else ''} | "
                     f"{fmt(s.get('other_cores'), '{:.2f}')} |")
    L.append("")
    return L


SYSCALL_COLS = ("epoll_wait", "epoll_ctl", "read", "write", "accept4", "close", "futex", "timerfd_settime")


def syscall_table(data):
    rows = [(sc, k, s) for sc in data["scenarios"] if sc.get("group", "main") == "main"
            for k, s in sc["summary"].items() if s and s.get("sys_mix")]
    if not rows:
        return []
    L = ["### Syscalls per request, by kind (perf, warm-up run)\n",
         "read = read/recvfrom/recvmsg, write = write/writev/sendto/sendmsg, close = close/shutdown, "
         "epoll_wait = epoll_wait/epoll_pwait; other = all syscalls less these.\n",
         "| scenario | target | all | " + " | ".join(SYSCALL_COLS) + " | other |",
         "|---|---|" + "---:|" * (len(SYSCALL_COLS) + 2)]
    for sc, k, s in rows:
        m = s["sys_mix"]
        other = m["total"] - sum(m.get(c, 0) for c in SYSCALL_COLS)
        L.append(f"| {sc['title']} | {data['labels'].get(k, k)} | {m['total']:.2f} | " +
                 " | ".join(f"{m.get(c, 0):.2f}" for c in SYSCALL_COLS) + f" | {other:.2f} |")
    L.append("")
    return L


def ratios_table(data):
    L = ["## Ratios (same run)\n",
         "CPU/req and p99: lower is better for clusterd (node/clusterd: higher is better); req/s: higher is better.\n",
         "| scenario | CPU/req clusterd/nginx | CPU/req clusterd/ceiling | CPU/req clusterd/mongoc loop | "
         "CPU/req node/clusterd | req/s clusterd/nginx | req/s clusterd/ceiling | req/s clusterd/node | "
         "req/s clusterd/mongoc loop | p99 clusterd/nginx | p99 clusterd/node |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    cpu = ("cpu_us_per_req", "cpu_min", "cpu_max")
    rps = ("rps", "rps_min", "rps_max")
    p99 = ("p99_ms", "p99_min", "p99_max")
    for sc in data["scenarios"]:
        if sc.get("group", "main") != "main":
            continue
        s = sc["summary"]
        c = s.get("clusterd")
        L.append(f"| {sc['title']} | {rcell(c, s.get('nginx'), *cpu)} | {rcell(c, s.get('ceiling'), *cpu)} | "
                 f"{rcell(c, s.get('mongoc'), *cpu)} | {rcell(s.get('node'), c, *cpu)} | "
                 f"{rcell(c, s.get('nginx'), *rps)} | {rcell(c, s.get('ceiling'), *rps)} | "
                 f"{rcell(c, s.get('node'), *rps)} | {rcell(c, s.get('mongoc'), *rps)} | "
                 f"{rcell(c, s.get('nginx'), *p99)} | {rcell(c, s.get('node'), *p99)} |")
    L.append("")
    return L


def growth_section(data):
    L = ["## Growth: how cost grows with the work\n"]
    rows = [sc for sc in data["scenarios"] if sc.get("growth_workers")]
    if rows:
        L += ["### Dummy keep-alive by worker count\n",
              "| target | workers | req/s median (min–max) | CPU µs/req (min–max) | ctx sw/req | syscalls/req |",
              "|---|---:|---:|---:|---:|---:|"]
        for key in TARGET_ORDER:
            for sc in sorted(rows, key=lambda x: x["growth_workers"]):
                s = sc["summary"].get(key)
                if s:
                    L.append(f"| {data['labels'].get(key, key)} | {sc['growth_workers']} | "
                             f"{rng(s, 'rps', 'rps_min', 'rps_max', '{:,.0f}')} | "
                             f"{rng(s, 'cpu_us_per_req', 'cpu_min', 'cpu_max', '{:.1f}')} | "
                             f"{fmt(s.get('csw_per_req'), '{:.2f}')} | {fmt(s.get('sys_per_req'), '{:.1f}')} |")
        L.append("")
    rm = [sc for sc in data["scenarios"] if sc.get("limit") is not None and not sc.get("close")]
    if rm:
        L += ["### readmongo by documents per answer (keep-alive)\n",
              "| limit | target | req/s median (min–max) | CPU µs/req (min–max) | DB CPU µs/req | bytes/answer | "
              "docs/answer | ctx sw/req | CPU/req clusterd/mongoc loop | CPU/req node/clusterd |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        cpu = ("cpu_us_per_req", "cpu_min", "cpu_max")
        for sc in sorted(rm, key=lambda x: x["limit"]):
            s = sc["summary"]
            c = s.get("clusterd")
            for key in TARGET_ORDER:
                t = s.get(key)
                if not t:
                    continue
                rat = (f"{rcell(c, s.get('mongoc'), *cpu)} | {rcell(s.get('node'), c, *cpu)}"
                       if key == "clusterd" else " | ")
                L.append(f"| {sc['limit']} | {data['labels'].get(key, key)} | {rng(t, 'rps', 'rps_min', 'rps_max', '{:,.0f}')} | "
                         f"{rng(t, 'cpu_us_per_req', 'cpu_min', 'cpu_max', '{:.1f}')} | "
                         f"{fmt(t.get('db_cpu_us_per_req'), '{:.1f}')} | {fmt(t.get('bytes_per_req'), '{:,.0f}')} | "
                         f"{fmt(t.get('docs_per_op'), '{:.0f}')} | {fmt(t.get('csw_per_req'), '{:.2f}')} | {rat} |")
        L.append("\n(The mongoc loop has no HTTP: its bytes/answer is '–'; docs/answer is what the query "
                 "returned. The loop's CPU includes what is client work for the HTTP targets.)\n")
    idle = data.get("idle")
    if idle:
        L += ["### Memory per idle connection (bench/idle.py)\n"]
        if idle.get("error"):
            L.append(f"idle.py did not run to the end: {idle['error']}\n")
        L += [f"{idle.get('note', '')}\n",
              "| kind | server | idle connections | RSS before (KiB) | RSS after (KiB) | per connection |",
              "|---|---|---:|---:|---:|---:|"]
        for r in idle.get("rows", []):
            if r.get("error"):
                L.append(f"| {r['kind']} | {r['label']} | {r['n']} | - | - | unavailable: {r['error']} |")
            else:
                L.append(f"| {r['kind']} | {r['label']} | {r['n']} | {r['before']} | {r['after']} | "
                         f"{r['per'] / 1024:.2f} KB |")
        L.append("")
    return L


def memory_sections(data):
    L = []
    idle = [row for row in data["startup"] if row["workers"] == 2]
    if idle:
        L += ["## Idle memory, dummy-only config, 2 workers (KiB, after every worker answered a request)\n",
              "VmRSS counts every shared-library page a process maps; Pss divides shared pages among the "
              "processes sharing them; private = Private_Clean + Private_Dirty (smaps_rollup), what one more "
              "worker really costs. Worker columns: median over all workers of all runs (max).\n",
              "| target | master VmRSS | worker VmRSS | worker RssAnon | worker Pss | worker private |",
              "|---|---:|---:|---:|---:|---:|"]

        def mm(row, key):
            ws = [x for r in row["raw"] for x in r.get(key, []) if x]
            return f"{statistics.median(ws):.0f} ({max(ws)})" if ws else "–"
        for row in idle:
            ms = [r["master_rss_kb"] for r in row["raw"] if r.get("master_rss_kb")]
            L.append(f"| {data['labels'][row['target']]} | {fmt(statistics.median(ms) if ms else None)} | "
                     f"{mm(row, 'worker_rss_kb')} | {mm(row, 'worker_anon_kb')} | {mm(row, 'worker_pss_kb')} | "
                     f"{mm(row, 'worker_private_kb')} |")
        L.append("")
    if data["memory"]:
        L += ["## Memory of the benchmarked instances (KiB; clusterd and Node with readmongo configured)\n",
              "| target | master idle RSS | master peak (VmHWM) | worker idle RSS (each) | worker peak VmHWM (each) |",
              "|---|---:|---:|---|---|"]
        for key, mm in data["memory"].items():
            i, end = mm.get("idle", {}), mm.get("end", {})
            L.append(f"| {data['labels'][key]} | {fmt(i.get('master_rss_kb'))} | {fmt(end.get('master_hwm_kb'))} | "
                     f"{', '.join(fmt(x) for x in i.get('worker_rss_kb', []))} | "
                     f"{', '.join(fmt(x) for x in end.get('worker_hwm_kb', []))} |")
        L.append("")
    return L


def lifecycle_sections(data):
    L = []
    if data["startup"]:
        L += ["## Startup: exec to all workers ready (ms, median of runs, min–max)\n",
              "'all serving' = every worker process has answered a request (attributed via sock_diag and "
              "/proc/PID/fd; probes keep 2x workers fresh connections in flight); 'self-reported' = clusterd's "
              "'all N workers ready' log line / Node primary's line after every worker's 'listening' event "
              "(nginx has none).\n",
              "| target | workers | all serving | self-reported | sd_notify READY=1 | runs |",
              "|---|---:|---:|---:|---:|---:|"]
        for row in data["startup"]:
            L.append(f"| {data['labels'][row['target']]} | {row['workers']} | {row['all_serving']} | "
                     f"{row['self_ready']} | {row.get('notify_ready', '–')} | {row['runs']} |")
        L.append("")
    if data["replace"]:
        L += ["## A SIGKILLed worker: replaced and serving (ms after the kill, median, min–max)\n",
              "Each kill hits a fresh 2-worker instance (a first crash, not a crash loop). 'reported ready' = "
              "clusterd's 'worker pid N ... is ready' log line / Node's 'listening' event; 'answers' = the first "
              "probe request answered by the new process (8 fresh connections in flight, attributed via sock_diag).\n",
              "| target | new process | reported ready | new process answers | failed probe requests | kills |",
              "|---|---:|---:|---:|---:|---:|"]
        for row in data["replace"]:
            L.append(f"| {data['labels'][row['target']]} | {row['spawn']} | {row.get('ready', '–')} | "
                     f"{row['serving']} | {row['failed']} | {row['kills']} |")
        L.append("")
    return L


def write_report(data, path_md):
    m = data["machine"]
    L = ["# clusterd benchmark: latest run\n",
         f"Command: `{data['command']}`  ",
         f"Date: {data['date']}; took {fmt(data.get('elapsed_s'), '{:.0f}')} s  "]
    L += method_lines(data)
    if data["unavailable"]:
        L.append("**Unavailable in this run:**\n")
        L += [f"- {k}: {why}" for k, why in data["unavailable"].items()]
        L.append("")
    if data.get("goals"):
        L += ["## Goals (issue 13; the last rows from issue 4)\n", "| goal | measured (range over rounds) | met |",
              "|---|---|---|"]
        L += [f"| {g[0]} | {g[1]} | {g[2]} |" for g in data["goals"]]
        L.append("")
    L += ratios_table(data)
    L += throughput_table(data)
    L += syscall_table(data)
    agg = {}
    for sc in data["scenarios"]:
        for rounds in sc["rounds"].values():
            for r in rounds:
                for c, n in r.get("other_top") or []:
                    agg[n] = agg.get(n, 0.0) + c
    if agg:
        top = sorted(agg.items(), key=lambda kv: -kv[1])[:6]
        L.append("Other load during the runs came mostly from: " + ", ".join(n for n, _ in top) +
                 " (processes alive for a whole run; short-lived ones such as compiler jobs are counted in "
                 "'other load' but cannot be named).\n")
    L += growth_section(data)
    L += memory_sections(data)
    L += lifecycle_sections(data)
    if data.get("mongo"):
        mg, p = data["mongo"], data["params"]
        qs = "; ".join(f"`{q['collection']}` filter `{q['filter']}` limit {q['limit']}" for q in mg["queries"])
        L.append(f"readmongo: FerretDB {mg.get('version', '')} (SQLite backend) on loopback, seeded by cd-seed "
                 f"({mg['docs']} users); queries: {qs}. Concurrency {p['mongo_conns']}: wrk connections, "
                 f"mongoc loop threads, and clusterd query fibers in all ({mg['threads_per_worker']} per worker); "
                 "Node uses the driver's default pool.\n")
    L.append(f"![chart](latest.png)\n\nRaw per-round numbers: latest.json ({m['nproc']} CPUs). "
             "How to run and read it: bench/README.md.\n")
    with open(path_md, "w") as f:
        f.write("\n".join(L))


def write_chart(data, path_png, work, log):
    if not shutil.which("gnuplot"):
        log("gnuplot missing: no chart")
        return False
    main = [sc for sc in data["scenarios"] if sc.get("group", "main") == "main"]
    keys = [k for k in TARGET_ORDER if any(sc["summary"].get(k) for sc in main)]
    if not keys:
        return False
    dat = os.path.join(work, "chart.dat")
    with open(dat, "w") as f:
        f.write("# scenario " + " ".join(keys) + " " + " ".join(k + "_cpu" for k in keys) + "\n")
        for sc in main:
            s = sc["summary"]
            vals = [fmt(s[k]["rps"], "{:.1f}", "-") if s.get(k) else "-" for k in keys]
            cpu = [fmt(s[k].get("cpu_us_per_req"), "{:.3f}", "-") if s.get(k) else "-" for k in keys]
            short = (sc["title"].replace("Connection: close", "close").replace("readmongo limit=", "mongo l")
                     .replace("keep-alive", "ka"))
            f.write('"' + short + '" ' + " ".join(vals) + " " + " ".join(cpu) + "\n")
    gp = os.path.join(work, "chart.gp")
    n = len(keys)

    def plot(off):
        return ", ".join((f'"{dat}" using {off + i + 2}:xtic(1)' if i == 0 else f"'' using {off + i + 2}")
                         + f' title "{data["labels"].get(k, k)}"' for i, k in enumerate(keys))
    with open(gp, "w") as f:
        f.write(f"""set terminal pngcairo size 1400,600 font "sans,10"
set output "{path_png}"
set datafile missing "-"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top right
set grid ytics mytics
set logscale y
set xtics nomirror rotate by -20
set multiplot layout 1,2 title "clusterd vs peers ({data['date']}, {data['machine']['nproc']} CPUs, {data['params']['workers']} worker processes each; log scale; ka = keep-alive, close = Connection: close, mongo lN = readmongo limit=N)"
set title "server CPU per request, µs (lower is better)"
set ylabel "µs/req"
plot {plot(n)}
set title "throughput: median req/s (higher is better)"
set ylabel "req/s"
set yrange [100:*]
plot {plot(0)}
unset multiplot
""")
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        log(f"gnuplot failed: {r.stderr.strip()[-400:]}")
        return False
    return True


def goals(data):
    """Issue 13's goals (and issue 4's memory and startup ones), each with its range."""
    out = []

    def S(name, key):
        for sc in data["scenarios"]:
            if sc["name"] == name:
                return sc["summary"].get(key)
        return None

    def yn(ok):
        return "yes" if ok else "**no**"

    cpu = ("cpu_us_per_req", "cpu_min", "cpu_max")
    for name in ("dummy-keepalive", "dummy-close"):
        c, n, ce = S(name, "clusterd"), S(name, "nginx"), S(name, "ceiling")
        if c and n and c.get("cpu_us_per_req") and n.get("cpu_us_per_req"):
            out.append((f"{name}: CPU/req clusterd/nginx <= 0.87", rcell(c, n, *cpu),
                        yn(c["cpu_us_per_req"] / n["cpu_us_per_req"] <= 0.87)))
        if c and ce:
            out.append((f"{name}: req/s clusterd/ceiling >= 0.85", rcell(c, ce, "rps", "rps_min", "rps_max"),
                        yn(c["rps"] / ce["rps"] >= 0.85)))
    for sc in data["scenarios"]:
        if not sc["name"].startswith("readmongo-") or sc.get("close"):
            continue
        c, nd, mc = S(sc["name"], "clusterd"), S(sc["name"], "node"), S(sc["name"], "mongoc")
        if c and mc and c.get("cpu_us_per_req") and mc.get("cpu_us_per_req"):
            out.append((f"{sc['name']}: CPU/req clusterd/mongoc loop <= 1.5", rcell(c, mc, *cpu),
                        yn(c["cpu_us_per_req"] / mc["cpu_us_per_req"] <= 1.5)))
        if c and nd and c.get("cpu_us_per_req") and nd.get("cpu_us_per_req"):
            out.append((f"{sc['name']}: CPU/req clusterd/node <= 1/6 (0.167)", rcell(c, nd, *cpu),
                        yn(c["cpu_us_per_req"] / nd["cpu_us_per_req"] <= 1 / 6)))
    for row in data["startup"]:
        if row["target"] == "clusterd" and row["workers"] == 2:
            ps = [x for r in row["raw"] for x in r.get("worker_private_kb", []) if x]
            ws = [x for r in row["raw"] for x in r["worker_rss_kb"] if x]
            if ws:
                out.append(("idle dummy worker RSS < 3 MB (3072 KiB), dummy-only config (issue 4)",
                            f"VmRSS max {max(ws)} KiB, private max {max(ps) if ps else '–'} KiB", yn(max(ws) < 3072)))
        if row["target"] == "clusterd" and row["workers"] == 8:
            v = row["all_serving_median"]
            out.append(("clusterd -w 8 ready < 100 ms, all serving (issue 4)", f"{v:.1f} ms", yn(v < 100)))
    return out
