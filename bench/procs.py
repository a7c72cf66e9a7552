"""procs.py - the processes bench.py starts and what it reads about them.

Imported by bench/bench.py, targets.py and lifecycle.py (all in one process,
the benchmark's driver).  Proc starts a process in its own process group and
records the group in WORK/pgids, so bench/run.sh's exit trap can kill what
is left whatever happened; stop_all() stops every one in reverse order.  The
readers take their figures from /proc: CPU seconds (utime + stime), context
switches of every task, RSS and smaps_rollup, the whole machine's busy time
and every process's CPU (OtherCpu: the load that is neither the target nor
the benchmark's own); set_affinity pins every task of a target and
count_syscalls runs perf stat on its pids.  WORK and PGIDS_FILE are set by
bench.py's main before anything starts.
"""
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
WORK = None
BENCH_PIDS = []  # long-lived helpers of the bench (the database): never "other load"
DEADLINE = [float("inf")]
PGIDS_FILE = None
ALL_PROCS = []


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


def count_syscalls(pids):
    """Starts `perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_... -p
    PIDS` (it counts until SIGINT; half a second is left for it to attach
    before this returns); returns a function that stops it and gives
    {"total": n, group: n, ...} (or None)."""
    perf = shutil.which("perf")
    if not perf or not pids:
        return lambda: None
    events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{n}" for g in SYSCALL_GROUPS.values() for n in g]
    try:
        p = subprocess.Popen([perf, "stat", "-x,", "-e", ",".join(events), "-p", ",".join(str(x) for x in pids)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError:
        return lambda: None
    with open(PGIDS_FILE, "a") as f:
        f.write(f"{p.pid}\n")
    time.sleep(0.5)

    def result():
        try:
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            p.kill()
            p.wait()
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


def cpu_list(spec):
    """'0-1,3' -> {0, 1, 3}"""
    out = set()
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out
