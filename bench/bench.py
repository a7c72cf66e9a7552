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
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

from report import fmt, goals as report_goals, med_range, write_chart, write_report

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
CLK_TCK = os.sysconf("SC_CLK_TCK")
DUMMY_BODY = '{"service":"dummy","ok":true}'

WORK = None
BENCH_PIDS = []  # long-lived helpers of the bench (the database): never "other load"
DEADLINE = [float("inf")]
PGIDS_FILE = None
ALL_PROCS = []
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


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------
# processes


class Proc:
    """A started process in its own process group, stopped at exit."""

    def __init__(self, name, argv, env=None, cwd=None, capture=False):
        self.name = name
        self.lines = []  # (monotonic time, stream, text) when capture
        self.lock = threading.Lock()
        self.logpath = os.path.join(WORK, f"{name}.log")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.logf = open(self.logpath, "ab")
        self.t_start = time.monotonic()
        if capture:
            self.p = subprocess.Popen(argv, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      start_new_session=True)
            for stream, fobj in (("out", self.p.stdout), ("err", self.p.stderr)):
                threading.Thread(target=self._reader, args=(stream, fobj), daemon=True).start()
        else:
            self.p = subprocess.Popen(argv, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL,
                                      stdout=self.logf, stderr=self.logf, start_new_session=True)
        self.pid = self.p.pid
        with open(PGIDS_FILE, "a") as f:
            f.write(f"{self.pid}\n")
        ALL_PROCS.append(self)

    def _reader(self, stream, fobj):
        for raw in iter(fobj.readline, b""):
            t = time.monotonic()
            with self.lock:
                self.lines.append((t, stream, raw.decode("utf-8", "replace").rstrip("\n")))
            try:
                self.logf.write(raw)
                self.logf.flush()
            except ValueError:
                pass

    def find_line(self, regex, after=0.0):
        r = re.compile(regex)
        with self.lock:
            for t, _, line in self.lines:
                if t >= after and r.search(line):
                    return t, line
        return None

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=8.0):
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (workers of a dead master, ...).
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(2)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.logf.close()
        except Exception:
            pass

    def tail(self, n=15):
        try:
            with open(self.logpath, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""


def stop_all():
    for p in reversed(ALL_PROCS):
        try:
            p.stop()
        except Exception as e:  # keep stopping the others
            log(f"stopping {p.name}: {e}")


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out.extend(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return sorted(set(out))


def tree(pid):
    """pid and all its descendants."""
    seen, todo = [], [pid]
    while todo and len(seen) < 1000:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(children(p))
    return seen


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            pass
    return total / CLK_TCK


def ctx_switches(pids):
    """Voluntary + nonvoluntary context switches of every task (thread) of
    pids, from /proc/PID/task/*/status (threads that exited are lost)."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                            total += int(line.split()[1])
            except (OSError, ValueError):
                pass
    return total


def set_affinity(pids, cpus):
    """Binds every task of pids to cpus (a set of CPU numbers); threads made
    later inherit it from their creator.  Returns how many tasks took it."""
    n = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), cpus)
                n += 1
            except OSError:
                pass
    return n


# perf tracepoints counted in the warm-up runs: all syscalls, and the ones
# whose count per request tells where a server's cost goes.
SYSCALL_GROUPS = {
    "epoll_wait": ("epoll_wait", "epoll_pwait"),
    "epoll_ctl": ("epoll_ctl",),
    "read": ("read", "recvfrom", "recvmsg"),
    "write": ("write", "writev", "sendto", "sendmsg"),
    "accept4": ("accept4",),
    "close": ("close", "shutdown"),
    "futex": ("futex",),
    "timerfd_settime": ("timerfd_settime",),
}


def count_syscalls(pids, seconds):
    """Starts `perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_... -p
    PIDS` for `seconds`; returns a function that waits for it and gives
    {"total": n, group: n, ...} (or None)."""
    perf = shutil.which("perf")
    if not perf or not pids:
        return lambda: None
    events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{n}" for g in SYSCALL_GROUPS.values() for n in g]
    try:
        p = subprocess.Popen([perf, "stat", "-x,", "-e", ",".join(events), "-p",
                              ",".join(str(x) for x in pids), "--", "sleep", str(seconds)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError:
        return lambda: None

    def result():
        try:
            _, err = p.communicate(timeout=seconds + 15)
        except subprocess.TimeoutExpired:
            p.kill()
            return None
        counts = {}
        for line in err.splitlines():
            f = line.split(",")
            if len(f) > 2 and f[0].isdigit():
                counts[f[2]] = int(f[0])
        if "raw_syscalls:sys_enter" not in counts:
            return None
        out = {"total": counts["raw_syscalls:sys_enter"]}
        for g, names in SYSCALL_GROUPS.items():
            out[g] = sum(counts.get(f"syscalls:sys_enter_{n}", 0) for n in names)
        return out
    return result


def system_busy_s():
    """CPU seconds the whole machine spent busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK


def all_proc_cpu():
    """{pid: (comm, cpu seconds)} for every process on the machine."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            i = st.rindex(")")
            fields = st[i + 2:].split()
            out[int(d)] = (st[st.index("(") + 1:i], (int(fields[11]) + int(fields[12])) / CLK_TCK)
        except (OSError, ValueError, IndexError):
            pass
    return out


class OtherCpu:
    """CPU used during a run by processes that are neither the target, nor
    the database, nor the load generator, nor this script: other work on the
    machine competing with the measurement (in cores, averaged).  Kernel
    softirq threads are not counted (loopback traffic of the run itself is
    partly processed there).  Also names the biggest other consumers that
    were alive at both ends of the run."""

    def __init__(self, exclude_pids=(), accounted_pids=()):
        self.accounted_pids = set(accounted_pids)
        self.exclude = set(exclude_pids) | set(BENCH_PIDS)

    def __enter__(self):
        self.t0 = time.monotonic()
        self.b0 = system_busy_s()
        self.p0 = all_proc_cpu()
        c, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        self.c0 = c.ru_utime + c.ru_stime + me.ru_utime + me.ru_stime
        self.top = []
        return self

    def result(self, accounted_s):
        busy = system_busy_s() - self.b0
        c, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        mine = c.ru_utime + c.ru_stime + me.ru_utime + me.ru_stime - self.c0
        el = time.monotonic() - self.t0
        p1 = all_proc_cpu()
        softirq = 0.0
        ours = 0.0  # bench processes not in accounted_s (e.g. the idle database)
        per = {}
        me_pid = os.getpid()
        for pid, (comm, cpu) in p1.items():
            if pid == me_pid:
                continue
            d = cpu - self.p0.get(pid, (comm, 0.0))[1]
            if d <= 0:
                continue
            if pid in BENCH_PIDS and pid not in self.accounted_pids:
                ours += d
            if pid in self.exclude:
                continue
            if comm.startswith("ksoftirqd"):
                softirq += d
            elif comm != "wrk" and comm != "mongoc_loop":
                per[comm] = per.get(comm, 0.0) + d
        self.top = sorted(((round(v / el, 2), k) for k, v in per.items() if el > 0 and v / el >= 0.05),
                          reverse=True)[:3]
        return max(0.0, busy - mine - accounted_s - softirq - ours) / el if el > 0 else None

    def __exit__(self, *a):
        return False


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def smaps_kb(pid):
    """{'Pss': kB, 'Private': kB (clean + dirty)} from smaps_rollup."""
    out = {"Pss": None, "Private": None}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            priv = 0
            for line in f:
                k, _, rest = line.partition(":")
                if k == "Pss":
                    out["Pss"] = int(rest.split()[0])
                elif k in ("Private_Clean", "Private_Dirty"):
                    priv += int(rest.split()[0])
            out["Private"] = priv
    except (OSError, ValueError):
        pass
    return out


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


_next_port = [0]


def alloc_port():
    """The next free loopback port from the bench range."""
    for _ in range(2000):
        _next_port[0] += 1
        p = _next_port[0]
        if port_free(p):
            return p
    raise RuntimeError("no free port")


def http_get(port, path, timeout=1.0, close=True):
    """(status, body) or (None, error)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            hdr = "Connection: close\r\n" if close else ""
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{hdr}\r\n".encode())
            buf = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
                head, sep, body = buf.partition(b"\r\n\r\n")
                if sep:
                    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                    if m and len(body) >= int(m.group(1)):
                        break
            m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
            return (int(m.group(1)) if m else None), buf.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")
    except OSError as e:
        return None, str(e)


# --------------------------------------------------------------------------
# which worker answered: server-side socket inode from /proc/net/tcp, owner
# from /proc/<pid>/fd.


def _established_netlink(port):
    """{client port: server-side socket inode} for ESTABLISHED IPv4 TCP
    sockets whose local port is `port`, via NETLINK_SOCK_DIAG: the kernel
    filters by state, so tens of thousands of TIME_WAIT entries left by the
    Connection: close runs cost nothing (unlike reading /proc/net/tcp)."""
    NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20
    NLM_F_REQUEST, NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR = 1, 0x300, 3, 2
    TCP_ESTABLISHED = 1
    # inet_diag_req_v2: family, protocol, ext, pad, states, sockid (48 bytes)
    req = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 1 << TCP_ESTABLISHED)
    req += struct.pack("!HH", port, 0) + bytes(44)
    msg = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + req
    res = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.sendto(msg, (0, 0))
        for _ in range(100000):
            data = nl.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                mlen, mtype = struct.unpack_from("=IH", data, off)
                if mtype == NLMSG_DONE:
                    return res
                if mtype == NLMSG_ERROR:
                    raise OSError(f"sock_diag error {struct.unpack_from('=i', data, off + 16)[0]}")
                body = off + 16
                # inet_diag_msg: family, state, timer, retrans, then sockid:
                # sport, dport (big endian), src[16], dst[16], if, cookie[2];
                # then expires, rqueue, wqueue, uid, inode
                sport, dport = struct.unpack_from("!HH", data, body + 4)
                inode = struct.unpack_from("=I", data, body + 4 + 48 + 16)[0]
                if sport == port:
                    res[dport] = str(inode)
                off += (mlen + 3) & ~3
                if mlen == 0:
                    break
    return res


def server_inodes(port, client_ports):
    try:
        allc = _established_netlink(port)
        return {cp: allc[cp] for cp in client_ports if cp in allc}
    except OSError:
        pass
    res = {}
    lp_hex = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] != lp_hex:
                continue
            rport = int(parts[2].split(":")[1], 16)
            if rport in client_ports:
                res[rport] = parts[9]
    return res


def inode_owners(pids):
    owners = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    t = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if t.startswith("socket:["):
                    owners.setdefault(t[8:-1], []).append(pid)
        except OSError:
            pass
    return owners


class Prober:
    """Keeps `inflight` fresh connections each sending one GET; records, for
    every answer, when it came, its status, and which process answered."""

    def __init__(self, port, path, master_pid, inflight=8, timeout=2.0):
        self.port, self.path, self.master = port, path, master_pid
        self.inflight, self.timeout = inflight, timeout
        self.events = []  # (t, status or None, pid or None)
        self.failures = 0
        self.sel = selectors.DefaultSelector()
        self.conns = {}
        self.req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()

    def _open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        st = {"sock": s, "t0": time.monotonic(), "buf": b"", "sent": False}
        self.conns[s.fileno()] = st
        self.sel.register(s, selectors.EVENT_WRITE, st)

    def _drop(self, st, ok, status=None):
        try:
            self.sel.unregister(st["sock"])
        except (KeyError, ValueError):
            pass
        self.conns.pop(st["sock"].fileno(), None)
        if not ok:
            self.failures += 1
            st["sock"].close()

    def run(self, until, deadline, pause_on_refused=0.002):
        """Probe until until(events) is true or time.monotonic() > deadline."""
        try:
            while time.monotonic() < deadline:
                while len(self.conns) < self.inflight:
                    self._open()
                done = []
                refused = False
                for key, ev in self.sel.select(0.002):
                    st = key.data
                    s = st["sock"]
                    if not st["sent"]:
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            refused = True
                            self._drop(st, False)
                            continue
                        try:
                            s.send(self.req)
                        except OSError:
                            self._drop(st, False)
                            continue
                        st["sent"] = True
                        self.sel.modify(s, selectors.EVENT_READ, st)
                        continue
                    try:
                        d = s.recv(65536)
                    except OSError:
                        d = b""
                    if not d:
                        self._drop(st, False)
                        continue
                    st["buf"] += d
                    if b"\r\n\r\n" in st["buf"]:
                        st["t1"] = time.monotonic()
                        done.append(st)
                now = time.monotonic()
                for st in list(self.conns.values()):
                    if now - st["t0"] > self.timeout:
                        self._drop(st, False)
                if done:
                    self._attribute(done)
                    if until(self.events):
                        return True
                if refused:
                    time.sleep(pause_on_refused)
            return until(self.events)
        finally:
            for st in list(self.conns.values()):
                self._drop(st, True)
                st["sock"].close()
            self.sel.close()

    def _attribute(self, done):
        cports = {st["sock"].getsockname()[1]: st for st in done}
        try:
            inodes = server_inodes(self.port, set(cports))
        except OSError:
            inodes = {}
        pids = tree(self.master)
        owners = inode_owners(pids)
        for cp, st in cports.items():
            m = re.match(rb"HTTP/1\.[01] (\d{3})", st["buf"])
            status = int(m.group(1)) if m else None
            pid = None
            own = owners.get(inodes.get(cp, ""), [])
            non_master = [p for p in own if p != self.master]
            if non_master:
                pid = non_master[0]
            elif own:
                pid = own[0]
            self.events.append((st["t1"], status, pid))
            self._drop(st, True)
            st["sock"].close()


# --------------------------------------------------------------------------
# targets


class Target:
    """One HTTP server under test."""

    key = "?"
    label = "?"

    def __init__(self, args):
        self.args = args
        self.unavailable = None  # reason string when it cannot run
        self.has_readmongo = False
        self.proc = None
        self.port = None

    def start(self, workers, port, capture=False, mongo=None, name=None):
        raise NotImplementedError

    def ready_line(self):
        return None  # regex of the self-reported "all workers ready" line

    def wait_serving(self, workers, timeout=15.0, path="/dummy"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError(f"{self.label} exited during start:\n{self.proc.tail()}")
            if len(children(self.proc.pid)) >= workers:
                st, _ = http_get(self.port, path, 0.5)
                if st == 200:
                    return
            time.sleep(0.01)
        raise RuntimeError(f"{self.label} not serving {path} after {timeout}s:\n{self.proc.tail()}")

    def workers_of(self):
        return children(self.proc.pid)

    def self_ready_time(self):
        return None

    def worker_ready_time(self, pid, after=0.0):
        return None


class Clusterd(Target):
    key, label = "clusterd", "clusterd"

    def __init__(self, args):
        super().__init__(args)
        self.bin = args.clusterd or os.path.join(REPO, "build-release", "clusterd")
        if not (os.path.isfile(self.bin) and os.access(self.bin, os.X_OK)):
            self.unavailable = f"{self.bin} not built (no CMakeLists.txt yet, or the build failed)"
        self.notify_sock = None
        self.notify_msgs = []

    def version(self):
        try:
            rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True, timeout=5).stdout.strip()
            dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return (rev or "no commit") + ("+dirty" if dirty else "")
        except Exception:
            return "?"

    def write_conf(self, path, port, workers, mongo):
        lines = [
            "; written by bench/bench.py",
            "[cluster]",
            f"listen = 127.0.0.1:{port}",
            f"workers = {workers}",
            "keepalive_timeout = 75s",
            "",
            "[dummy]",
            "type = dummy",
            "route = /dummy",
            f"body = {DUMMY_BODY}",
            "",
        ]
        if mongo:
            lines += ["[readmongo]", "type = readmongo", "route = /readmongo", f"uri = {mongo['uri']}",
                      f"database = {mongo['db']}", "collections = users, orders, products",
                      f"threads = {mongo['threads_per_worker']}", ""]
        with open(path, "w") as f:
            f.write("\n".join(lines))

    def check_conf(self, path):
        try:
            r = subprocess.run([self.bin, "-t", "-c", path], capture_output=True, text=True, timeout=10)
            return r.returncode == 0, (r.stdout + r.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, str(e)

    def _notify_reader(self, sock):
        while True:
            try:
                d = sock.recv(4096)
            except OSError:
                return
            self.notify_msgs.append((time.monotonic(), d.decode("utf-8", "replace")))

    def start(self, workers, port, capture=False, mongo=None, name=None):
        self.port = port
        name = name or f"clusterd-w{workers}-{port}"
        conf = os.path.join(WORK, f"{name}.ini")
        self.write_conf(conf, port, workers, mongo)
        if mongo:
            ok, msg = self.check_conf(conf)
            if not ok:
                log(f"clusterd rejects a [readmongo] section, running without it: {msg}")
                self.write_conf(conf, port, workers, None)
                mongo = None
        self.has_readmongo = bool(mongo)
        npath = os.path.join(WORK, f"{name}.notify")
        if os.path.exists(npath):
            os.unlink(npath)
        self.notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_sock.bind(npath)
        self.notify_msgs = []
        threading.Thread(target=self._notify_reader, args=(self.notify_sock,), daemon=True).start()
        self.proc = Proc(name, [self.bin, "-w", str(workers), "-c", conf],
                         env={"NOTIFY_SOCKET": npath}, capture=capture)

    def self_ready_time(self):
        """clusterd's own 'all N workers ready' log line."""
        r = self.proc.find_line(r"all \d+ workers? (are )?ready")
        return r[0] if r else None

    def notify_ready_time(self):
        """When sd_notify READY=1 arrived on our NOTIFY_SOCKET."""
        for t, m in self.notify_msgs:
            if re.search(r"(^|\n)READY=1", m):
                return t
        return None

    def worker_ready_time(self, pid, after=0.0):
        r = self.proc.find_line(rf"worker pid {pid} for slot \d+ is ready", after)
        return r[0] if r else None


class Nginx(Target):
    key, label = "nginx", "nginx"

    def __init__(self, args):
        super().__init__(args)
        self.bin = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if not self.bin:
            self.unavailable = "nginx is not installed (apt-get install nginx-light)"

    def version(self):
        r = subprocess.run([self.bin, "-v"], capture_output=True, text=True, timeout=5)
        return (r.stderr or r.stdout).strip().split("/")[-1]

    def start(self, workers, port, capture=False, mongo=None, name=None):
        self.port = port
        name = name or f"nginx-w{workers}-{port}"
        prefix = os.path.join(WORK, name)
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""# written by bench/bench.py
worker_processes {workers};
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path {prefix}/client_body;
  server {{
    listen 127.0.0.1:{port} reuseport;
    default_type application/json;
    location = /dummy {{ return 200 '{DUMMY_BODY}'; }}
  }}
}}
""")
        self.proc = Proc(name, [self.bin, "-p", prefix + "/", "-c", conf, "-e", f"{prefix}/error.log"],
                         capture=capture)


class Node(Target):
    key, label = "node", "node cluster+express"

    def __init__(self, args):
        super().__init__(args)
        self.bin = shutil.which("node")
        self.dir = os.path.join(BENCH, "node")
        if not self.bin:
            self.unavailable = "node is not installed"
        elif not os.path.isdir(os.path.join(self.dir, "node_modules", "express")):
            self.unavailable = "bench/node/node_modules missing (run: npm ci --prefix bench/node)"

    def version(self):
        return subprocess.run([self.bin, "--version"], capture_output=True, text=True, timeout=5).stdout.strip()

    def start(self, workers, port, capture=False, mongo=None, name=None):
        self.port = port
        name = name or f"node-w{workers}-{port}"
        env = {"PORT": str(port), "WORKERS": str(workers), "HOST": "127.0.0.1"}
        if mongo:
            env["MONGO_URI"] = mongo["uri"]
        self.has_readmongo = bool(mongo)
        self.proc = Proc(name, [self.bin, os.path.join(self.dir, "server.js")], env=env, cwd=self.dir,
                         capture=capture)

    def self_ready_time(self):
        r = self.proc.find_line(r"^READY ")
        return r[0] if r else None

    def worker_ready_time(self, pid, after=0.0):
        r = self.proc.find_line(rf"^LISTENING {pid}$", after)
        return r[0] if r else None


class Ceiling(Target):
    """bench/ceiling.c: N processes that answer each request end with a
    fixed 200 of clusterd's dummy answer's size, no parsing (a reference)."""
    key, label = "ceiling", "ceiling (no-parse epoll)"
    answer_bytes = 0  # set from clusterd's actual answer when it runs

    def __init__(self, args):
        super().__init__(args)
        self.bin = args.ceiling
        if not self.bin:
            self.bin = os.path.join(WORK, "ceiling")
            src = os.path.join(BENCH, "ceiling.c")
            cc = shutil.which("cc") or shutil.which("gcc")
            if cc and not os.access(self.bin, os.X_OK):
                subprocess.run([cc, "-O2", "-o", self.bin, src], capture_output=True, timeout=120)
        if not os.access(self.bin, os.X_OK):
            self.unavailable = f"{self.bin} not built (cc -O2 -o ceiling bench/ceiling.c)"

    def version(self):
        return "bench/ceiling.c" + (" (edge-triggered)" if self.args.ceiling_et else " (level-triggered)")

    def start(self, workers, port, capture=False, mongo=None, name=None):
        self.port = port
        argv = [self.bin, "-w", str(workers), "-p", str(port)]
        if Ceiling.answer_bytes:
            argv += ["-s", str(Ceiling.answer_bytes)]
        if self.args.ceiling_et:
            argv.append("-e")
        self.proc = Proc(name or f"ceiling-w{workers}-{port}", argv, capture=capture)


def answer_bytes(port, path):
    """Length of one keep-alive answer (head and body) to GET path."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return 0
                buf += d
            head = buf[:buf.index(b"\r\n\r\n") + 4]
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            return len(head) + (int(m.group(1)) if m else 0)
    except OSError:
        return 0


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
    fdir = os.path.join(WORK, "ferretdb")
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
# lifecycle: startup and worker replacement


def measure_startup(target, workers, reps):
    """Time from exec to every worker having answered a request (attributed
    through /proc), and to the target's own 'ready' report."""
    res = []
    for i in range(reps):
        port = alloc_port()
        target.start(workers, port, capture=True, name=f"{target.key}-start-w{workers}-{i}")
        t0 = target.proc.t_start
        master = target.proc.pid
        try:
            pr = Prober(port, "/dummy", master, inflight=max(8, workers * 2))
            ok = pr.run(lambda ev: len({p for _, s, p in ev if s == 200 and p and p != master}) >= workers,
                        time.monotonic() + 15)
            seen = {}
            for t, s, p in pr.events:
                if s == 200 and p and p != master and p not in seen:
                    seen[p] = t
            t_all = max(seen.values()) - t0 if ok else None
            t_self = None
            if target.key != "nginx":
                # give the self-report a moment to arrive after the probes
                end = time.monotonic() + 1.0
                while time.monotonic() < end:
                    t_self = target.self_ready_time()
                    if t_self is not None:
                        break
                    time.sleep(0.005)
                if t_self is not None:
                    t_self -= t0
            t_notify = target.notify_ready_time() if hasattr(target, "notify_ready_time") else None
            if t_notify is not None:
                t_notify -= t0
            time.sleep(0.2)  # let the first answers settle before reading RSS
            kids = children(master)
            rss = [status_kb(p, "VmRSS") for p in kids]
            sm = [smaps_kb(p) for p in kids]
            res.append({"worker_pss_kb": [x["Pss"] for x in sm], "worker_private_kb": [x["Private"] for x in sm],
                        "worker_anon_kb": [status_kb(p, "RssAnon") for p in kids],"all_serving_ms": t_all * 1000 if t_all is not None else None,
                        "self_ready_ms": t_self * 1000 if t_self is not None else None,
                        "notify_ready_ms": t_notify * 1000 if t_notify is not None else None,
                        "workers_seen": len(seen), "worker_rss_kb": rss,
                        "master_rss_kb": status_kb(master, "VmRSS")})
        finally:
            target.proc.stop()
    return res


def measure_replace(target, kills, settle):
    """SIGKILL one worker of a fresh 2-worker instance (so it is the slot's
    first crash, not a crash loop under respawn backoff); time until a new
    worker process exists, until the target reports it ready (when it says
    so), and until that new process answers a request; failed probe
    requests meanwhile."""
    out = []
    for k in range(kills):
        port = alloc_port()
        target.start(2, port, capture=True, name=f"{target.key}-replace-{k}")
        try:
            target.wait_serving(2)
            master = target.proc.pid
            time.sleep(settle)
            before = set(children(master))
            if len(before) < 2:
                raise RuntimeError(f"{target.label}: expected 2 workers, have {sorted(before)}")
            victim = sorted(before)[k % len(before)]
            t0 = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            t_spawn = None
            new = set()
            # poll for the new process (fast), then probe for its first answer
            while time.monotonic() - t0 < 10:
                new = set(children(master)) - before
                if new:
                    t_spawn = time.monotonic()
                    break
                time.sleep(0.0005)
            if not new:
                out.append({"spawn_ms": None, "ready_ms": None, "serving_ms": None, "failed": None})
                continue
            pr = Prober(port, "/dummy", master, inflight=8)
            ok = pr.run(lambda ev: any(s == 200 and p in new for _, s, p in ev), t0 + 10)
            t_serve = next((t for t, s, p in pr.events if s == 200 and p in new), None)
            t_ready = None
            for p in new:
                t_ready = target.worker_ready_time(p, after=t0)
            out.append({"spawn_ms": (t_spawn - t0) * 1000,
                        "ready_ms": (t_ready - t0) * 1000 if t_ready else None,
                        "serving_ms": (t_serve - t0) * 1000 if ok and t_serve else None,
                        "failed": pr.failures + sum(1 for _, s, _ in pr.events if s != 200)})
        finally:
            target.proc.stop()
    return out


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


def cpu_list(spec):
    """'0-1,3' -> {0, 1, 3}"""
    out = set()
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def http_runner(target, url, sc, args, ferret_pid):
    pin = args.pin_layout if sc.get("pin") else None

    def run(duration, warm=False):
        pids = tree(target.proc.pid)
        set_affinity(pids, cpu_list(pin["server"]) if pin else set(range(os.cpu_count())))
        c0 = cpu_seconds(pids)
        cs0 = ctx_switches(pids)
        f0 = cpu_seconds([ferret_pid]) if ferret_pid else 0
        # syscalls are counted in the warm-up run only: perf's cost stays out of the measured rounds
        window = duration - 0.5
        sys_count = count_syscalls(pids, window) if warm and args.syscalls and window > 0.2 else (lambda: None)
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
        if n is not None and r["rps"]:
            r["syscalls_per_req"] = n["total"] / window / r["rps"]
            r["syscall_mix_per_req"] = {k: v / window / r["rps"] for k, v in n.items()}
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
            data["unavailable"][data["labels"][t.key] + f" ({tag})"] = "failed to start (see log in " + WORK + ")"
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
    mongoc_bin = args.mongoc_loop or os.path.join(WORK, "mongoc_loop")
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
    out_json = os.path.join(WORK, "idle.json")
    argv = [sys.executable, os.path.join(BENCH, "idle.py"), "--counts", args.idle_counts,
            "--out", os.path.join(WORK, "idle.md"), "--json", out_json,
            "--clusterd", args.clusterd or os.path.join(REPO, "build-release", "clusterd")]
    if args.quick:
        argv += ["--settle", "1", "--warmup", "20"]
    if args.only:
        argv += ["--targets", ",".join(t for t in args.only.split(",") if t in ("clusterd", "nginx", "node"))]
    log("idle memory: " + " ".join(argv[1:]))
    try:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, env={**os.environ, "BENCH_PGIDS": PGIDS_FILE})
        with open(PGIDS_FILE, "a") as f:
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
            "memory": {}, "startup": [], "replace": [], "work": WORK,
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
    global WORK, PGIDS_FILE
    args = parse_args()
    DEADLINE[0] = time.monotonic() + args.budget
    _next_port[0] = args.port_base - 1
    WORK = args.work or subprocess.run(["mktemp", "-d", "/tmp/clusterd-bench.XXXXXX"],
                                       capture_output=True, text=True).stdout.strip()
    os.makedirs(WORK, exist_ok=True)
    PGIDS_FILE = os.path.join(WORK, "pgids")
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
    if data["scenarios"] and write_chart(data, png, WORK, log):
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
