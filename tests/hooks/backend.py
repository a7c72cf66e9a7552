#!/usr/bin/env python3
"""backend.py PORT - a chat's server side as HTTP hooks, for
tests/integration/test_hooks.c (python3's http.server, nothing else).

clusterd POSTs each Socket.IO connect, event and disconnect of the
namespaces it is configured for; this answers with the hook protocol of
docs/socketio-hooks.md:

  POST /connect     auth.name required ("mallory" is refused: "banned");
                    accepted sockets keep {"name"} as their data, join
                    "lobby" and get "welcome" [name, the Cookie header]
  POST /event       say TEXT        -> ack {"ok":true,"from":name}; "said"
                                       [name, TEXT] to lobby except the sender
                    enter ROOM      -> join ROOM, ack {"room":ROOM}
                    shout ROOM TEXT -> "shouted" [name, TEXT] to ROOM
                    rename NAME     -> data {"name":NAME}, ack
                    bin BUFFER      -> ack the bytes reversed (binary)
                    slow            -> answers after 4 s (beyond hook_timeout)
                    garbage         -> answers 200 with a body that is not JSON
                    bye             -> ack, then disconnect
  POST /slow        answers after 4 s (a connect hook beyond hook_timeout)
  POST /disconnect  recorded
  GET  /seen        every call so far, as a JSON array of
                    {"type","sid","namespace","user","reason","event"}

Prints "ready" on stdout once it listens.
"""
import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = []
lock = threading.Lock()


def on_connect(call):
    auth = call.get("auth") or {}
    name = auth.get("name")
    if not isinstance(name, str) or not name:
        return {"accept": False, "message": "a name is required"}
    if name == "mallory":
        return {"accept": False, "message": "banned"}
    cookie = call.get("headers", {}).get("cookie")
    return {"accept": True, "data": {"name": name}, "join": ["lobby"],
            "emit": [{"event": "welcome", "args": [name, cookie]}]}


def on_event(call):
    ev, args = call["event"], call["args"]
    name = (call.get("data") or {}).get("name")
    if ev == "say":
        return {"ack": [{"ok": True, "from": name}],
                "emit": [{"event": "said", "args": [name, args[0]],
                          "to": {"rooms": ["lobby"], "except": [call["sid"]]}}]}
    if ev == "enter":
        return {"join": [args[0]], "ack": [{"room": args[0]}]}
    if ev == "shout":
        return {"emit": [{"event": "shouted", "args": [name, args[1]], "to": {"rooms": [args[0]]}}],
                "ack": [True]}
    if ev == "rename":
        return {"data": {"name": args[0]}, "ack": [args[0]]}
    if ev == "bin":
        data = base64.b64decode(call["attachments"][0])
        return {"ack": [{"_placeholder": True, "num": 0}],
                "ack_attachments": [base64.b64encode(data[::-1]).decode()]}
    if ev == "slow":
        time.sleep(4)
        return {"ack": ["too late"]}
    if ev == "bye":
        return {"ack": ["bye"], "disconnect": True}
    return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("backend: " + (fmt % args) + "\n")

    def answer(self, status, obj):
        self.raw(status, json.dumps(obj).encode())

    def raw(self, status, body):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # clusterd gave up (hook_timeout)

    def do_GET(self):
        if self.path != "/seen":
            return self.answer(404, {"error": "no such path"})
        with lock:
            return self.answer(200, list(seen))

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        call = json.loads(self.rfile.read(n))
        if self.headers.get("Content-Type") != "application/json":
            return self.answer(415, {"error": "expected application/json"})
        with lock:
            seen.append({k: call.get(k) for k in ("type", "sid", "namespace", "user", "reason", "event")})
        if self.path == "/slow":
            time.sleep(4)
            return self.answer(200, {"accept": True})
        if self.path == "/connect":
            return self.answer(200, on_connect(call))
        if self.path == "/event" and call.get("event") == "garbage":
            return self.raw(200, b"{not json")
        if self.path == "/event":
            return self.answer(200, on_event(call))
        if self.path == "/disconnect":
            return self.answer(200 if call.get("type") == "disconnect" else 400, {})
        return self.answer(404, {"error": "no such hook"})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
