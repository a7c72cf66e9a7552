"""targets.py - the servers bench.py measures: clusterd, nginx, Node, the ceiling.

Imported by bench/bench.py.  Each Target writes its config into the
scratch directory (procs.WORK), starts its master in its own process group
(procs.Proc) with N workers on a loopback port, and says when it is
serving; clusterd and Node also say when they report themselves ready.
The Ceiling is bench/ceiling.c, sized to clusterd's actual dummy answer
(answer_bytes).
"""
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import procs
from procs import Proc, children, http_get, log

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
DUMMY_BODY = '{"service":"dummy","ok":true}'


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
                      f"concurrency = {mongo['threads_per_worker']}", ""]
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
        conf = os.path.join(procs.WORK, f"{name}.ini")
        self.write_conf(conf, port, workers, mongo)
        if mongo:
            ok, msg = self.check_conf(conf)
            if not ok:
                log(f"clusterd rejects a [readmongo] section, running without it: {msg}")
                self.write_conf(conf, port, workers, None)
                mongo = None
        self.has_readmongo = bool(mongo)
        npath = os.path.join(procs.WORK, f"{name}.notify")
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
        prefix = os.path.join(procs.WORK, name)
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
            self.bin = os.path.join(procs.WORK, "ceiling")
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
