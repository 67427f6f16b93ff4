#!/usr/bin/env python3
"""A recording HTTP receiver for tests/e2e/notify.sh (and the commit-status tests), on 127.0.0.1.

  receiver.py DIR [PORT] [SECRET]
      Listens on PORT (0: any free one; the port is written to DIR/port once listening) and
      appends one JSON line per request to DIR/requests.jsonl: method, path, headers, body
      and, with SECRET, whether X-Gitopper-Signature-256 is the body's HMAC-SHA256.
      How it answers is read from DIR/mode at each request: "ok" (200, the default),
      "slow:SECONDS" (sleeps, then 200), "reject" (400), "fail" (503).
"""
import hashlib
import hmac
import http.server
import json
import os
import sys
import time

DIR = sys.argv[1]
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
SECRET = sys.argv[3].encode() if len(sys.argv) > 3 else None


def mode():
    try:
        with open(os.path.join(DIR, "mode")) as f:
            return f.read().strip() or "ok"
    except FileNotFoundError:
        return "ok"


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        if SECRET is not None:
            want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
            record["signed"] = hmac.compare_digest(
                want, self.headers.get("X-Gitopper-Signature-256", ""))
        how = mode()
        record["mode"] = how
        with open(os.path.join(DIR, "requests.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        if how.startswith("slow:"):
            time.sleep(float(how[5:]))
        code = {"reject": 400, "fail": 503}.get(how, 200)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = answer
    do_PUT = answer

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


server = Server(("127.0.0.1", PORT), Handler)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
server.serve_forever()
