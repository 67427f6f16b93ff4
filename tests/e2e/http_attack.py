#!/usr/bin/env python3
"""Hostile HTTP clients for tests/e2e/http_starve.sh, loopback only and bounded in count and time.

  http_attack.py slow PORT OUT SECONDS KIND:COUNT@ADDR...
      Opens COUNT connections of each KIND from source address ADDR (any 127.x.y.z) and keeps
      them up for at most SECONDS. KIND is one of
        slowloris  a request line, then one header byte a second, never the blank line
        idle       connects and never sends a byte
        slowbody   complete headers of a small POST /webhook, then one body byte a second
      Writes OUT.ready once every connection is up, and on exit OUT.out with one line per
      connection: "KIND ADDR closed|open SECONDS" (when the server closed it, after connect).
  http_attack.py oversize PORT COUNT SIZE
      Sends COUNT POST /webhook requests declaring a SIZE-byte body, alternately by
      Content-Length and chunked, without waiting for 100-continue; stops sending each one
      as soon as the answer comes. Prints "STATUS COUNT" per status ("none" for no answer).
"""
import collections
import select
import socket
import sys
import time

TRICKLE_SECONDS = 1.0
HEADS = {
    "slowloris": b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
    "idle": b"",
    "slowbody": b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n",
}


class Slow:
    def __init__(self, kind, addr, port):
        self.kind, self.addr = kind, addr
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((addr, 0))
        self.sock.connect(("127.0.0.1", port))
        self.start = time.monotonic()
        self.closed_after = None
        if HEADS[kind]:
            self.sock.sendall(HEADS[kind])
        self.sock.setblocking(False)

    def close(self):
        if self.closed_after is None:
            self.closed_after = time.monotonic() - self.start
        self.sock.close()

    def trickle(self):
        try:
            self.sock.send(b"a" if self.kind == "slowloris" else b"x")
        except OSError:  # EPIPE, ECONNRESET: the server is gone
            self.close()

    def readable(self):
        try:
            if not self.sock.recv(4096):
                self.close()
        except BlockingIOError:
            pass
        except OSError:
            self.close()


def slow(port, out, seconds, groups):
    conns = []
    for group in groups:
        kind, rest = group.split(":")
        count, addr = rest.split("@")
        conns += [Slow(kind, addr, port) for _ in range(int(count))]
    open(out + ".ready", "w").close()
    end = time.monotonic() + seconds
    next_trickle = time.monotonic() + TRICKLE_SECONDS
    while time.monotonic() < end:
        live = [c for c in conns if c.closed_after is None]
        if not live:
            break
        timeout = max(0.0, min(next_trickle, end) - time.monotonic())
        readable, _, _ = select.select([c.sock for c in live], [], [], timeout)
        for c in live:
            if c.sock in readable:
                c.readable()
        if time.monotonic() >= next_trickle:
            for c in live:
                if c.closed_after is None and c.kind != "idle":
                    c.trickle()
            next_trickle += TRICKLE_SECONDS
    with open(out + ".out", "w") as f:
        for c in conns:
            state = "closed" if c.closed_after is not None else "open"
            seconds_up = c.closed_after if c.closed_after is not None else time.monotonic() - c.start
            f.write(f"{c.kind} {c.addr} {state} {seconds_up:.2f}\n")
            c.sock.close()


def oversized_request(port, size, chunked):
    head = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        piece = 65536
        chunk = b"%x\r\n" % piece + b"x" * piece + b"\r\n"
        body = [chunk] * (size // piece) + [b"0\r\n\r\n"]
    else:
        head += b"Content-Length: %d\r\n\r\n" % size
        body = [b"x" * 65536] * (size // 65536)
    data = memoryview(head + b"".join(body))
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(False)
    answer = b""
    deadline = time.monotonic() + 10
    try:
        while b"\r\n" not in answer and time.monotonic() < deadline:
            writers = [sock] if data else []
            r, w, _ = select.select([sock], writers, [], 0.5)
            if w and data:
                try:
                    data = data[sock.send(data[:262144]):]
                except (BlockingIOError, InterruptedError):
                    pass
            if r:
                got = sock.recv(4096)
                if not got:
                    break
                answer += got
    except OSError:
        pass
    finally:
        sock.close()
    parts = answer.split(b" ")
    return parts[1].decode() if len(parts) > 1 else "none"


def oversize(port, count, size):
    statuses = collections.Counter(
        oversized_request(port, size, chunked=(i % 2 == 1)) for i in range(count))
    for status, n in sorted(statuses.items()):
        print(status, n)


def main(argv):
    if argv[1] == "slow":
        slow(int(argv[2]), argv[3], float(argv[4]), argv[5:])
    elif argv[1] == "oversize":
        oversize(int(argv[2]), int(argv[3]), int(argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
