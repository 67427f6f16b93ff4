#!/usr/bin/env python3
"""The attacker of ssh_starve.sh: holds TCP connections to the SSH port open and records when
the server closes each one.

usage: ssh_hold.py HOST PORT OUT_DIR IDLE_SOURCE IDLE_COUNT TRICKLE_SOURCE TRICKLE_COUNT LIMIT

IDLE_COUNT sockets from IDLE_SOURCE (a comma-separated list: used in turn) never send a byte; TRICKLE_COUNT sockets from
TRICKLE_SOURCE send the start of an SSH banner one byte every half second and never finish it.
Writes OUT_DIR/ready once every connection is set up (or has failed), and OUT_DIR/result.json
when every socket is closed or LIMIT seconds have passed:
  {"idle": [seconds from connect to close, or null while still open], "trickle": [...]}
"""
import json
import os
import select
import socket
import sys
import time

host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
idle_source, idle_count = sys.argv[4], int(sys.argv[5])
trickle_source, trickle_count = sys.argv[6], int(sys.argv[7])
limit = float(sys.argv[8])
banner = b"SSH-2.0-trickle-trickle-trickle-trickle-trickle"


class Conn:
    def __init__(self, kind, source):
        self.kind = kind
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((source, 0))
        self.sock.setblocking(False)
        self.sock.connect_ex((host, port))
        self.opened = time.monotonic()
        self.closed = None
        self.sent = 0

    def close(self):
        self.closed = time.monotonic() - self.opened
        self.sock.close()


def write_atomic(name, text):
    with open(os.path.join(out, name + ".tmp"), "w") as f:
        f.write(text)
    os.rename(os.path.join(out, name + ".tmp"), os.path.join(out, name))


idle_sources = idle_source.split(",")
conns = [Conn("idle", idle_sources[i % len(idle_sources)]) for i in range(idle_count)]
conns += [Conn("trickle", trickle_source) for _ in range(trickle_count)]
start = time.monotonic()

# Connected (or failed) once each socket is writable; a full accept queue can delay that.
pending = {c.sock.fileno(): c for c in conns}
while pending and time.monotonic() - start < 5:
    _, writable, _ = select.select([], list(pending), [], 0.5)
    for fd in writable:
        del pending[fd]
write_atomic("ready", "%d %d\n" % (len(conns) - len(pending), len(pending)))

poller = select.poll()
by_fd = {}
for c in conns:
    poller.register(c.sock.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    by_fd[c.sock.fileno()] = c
next_trickle = time.monotonic()
while by_fd and time.monotonic() - start < limit:
    for fd, _ in poller.poll(100):
        c = by_fd[fd]
        try:
            data = c.sock.recv(4096)  # the server's banner, if it sends one, is not an end
        except OSError:
            data = b""
        if not data:
            poller.unregister(fd)
            del by_fd[fd]
            c.close()
    if time.monotonic() >= next_trickle:
        next_trickle += 0.5
        for c in by_fd.values():
            if c.kind == "trickle" and c.sent < len(banner):
                try:
                    c.sock.send(banner[c.sent:c.sent + 1])
                    c.sent += 1
                except OSError:
                    pass

# For a post-mortem: the TCP states (netinet/tcp.h numbering: 1 established, 2 syn-sent, ...)
# of the sockets still open at the end.
result = {"idle": [], "trickle": [], "open_states": []}
for c in conns:
    result[c.kind].append(None if c.closed is None else round(c.closed, 3))
    if c.closed is None:
        result["open_states"].append(c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0])
write_atomic("result.json", json.dumps(result) + "\n")
