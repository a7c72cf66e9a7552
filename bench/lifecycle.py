"""lifecycle.py - startup and worker-replacement times (bench.py's first part).

Imported by bench/bench.py.  Which worker answered a probe is found from
the server-side socket: its inode from NETLINK_SOCK_DIAG (or
/proc/net/tcp), its owner from /proc/PID/fd.  measure_startup times exec
to every worker having answered; measure_replace SIGKILLs a worker of a
fresh instance and times its replacement's first answer.  Run first, while
the TCP table is small.
"""
import os
import re
import selectors
import signal
import socket
import struct
import time

from procs import alloc_port, children, smaps_kb, status_kb, tree


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
