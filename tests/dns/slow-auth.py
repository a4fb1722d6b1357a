#!/usr/bin/python3
"""A slow authoritative DNS server behind the test unbound (stdlib only).

unbound cannot delay an answer of its own, and some defences can only be
seen with one: a PTR answer that arrives late, after which the next lookup
of the chain is dropped, tests the session's own DNS deadline apart from
the DNS layer's per-query deadline (docs/identity.md, "Deadlines" under
"How the session applies the verdict").
unbound.conf.in stub-delegates the zones of SLOW below to this server.

    slow-auth.py PORTFILE

binds UDP 127.0.0.1 on a port of the kernel's choice, writes that port to
PORTFILE (written whole, then renamed, so a reader never sees half of it),
and answers every query DELAY milliseconds after it arrived:

  * a (name, type) in SLOW: NOERROR, AA, the records, TTL 0 so that unbound
    does not cache them and every test sees the delay;
  * any other name or type: NOERROR with no records (NODATA), AA.

It exits by itself after LIFETIME seconds, or on SIGTERM (its starter
stops it by PID).  It only ever listens on loopback.
"""

import heapq
import os
import select
import signal
import socket
import struct
import sys
import time

LIFETIME = 1800.0
DELAY = 0.8
TYPE_PTR = 12

# (lower-case name, type) -> list of target names (PTR rdata).
SLOW = {
    ("16.0.0.127.in-addr.arpa.", TYPE_PTR): ["slow-ptr.timeout.test."],
}


def parse_question(pkt):
    """(id, flags, qname, qtype, end of the question) or None."""
    if len(pkt) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", pkt[:6])
    if qd != 1 or flags & 0x8000:          # one question, and a query
        return None
    labels = []
    i = 12
    while True:
        if i >= len(pkt):
            return None
        n = pkt[i]
        i += 1
        if n == 0:
            break
        if n > 63 or i + n > len(pkt):      # no compression in a question
            return None
        labels.append(pkt[i:i + n].decode("ascii", "replace").lower())
        i += n
    if i + 4 > len(pkt):
        return None
    qtype, _qclass = struct.unpack("!HH", pkt[i:i + 4])
    return qid, flags, ".".join(labels) + ".", qtype, i + 4


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        b = label.encode("ascii")
        out += bytes([len(b)]) + b
    return out + b"\0"


def answer(pkt):
    q = parse_question(pkt)
    if q is None:
        return None
    qid, flags, qname, qtype, end = q
    targets = SLOW.get((qname, qtype), [])
    # QR, AA, the query's RD bit; RCODE 0.
    hdr = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100), 1, len(targets), 0, 0)
    body = pkt[12:end]
    for t in targets:
        rdata = encode_name(t)
        body += struct.pack("!HHHIH", 0xC00C, qtype, 1, 0, len(rdata)) + rdata
    return hdr + body


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: slow-auth.py PORTFILE\n")
        return 2
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % sock.getsockname()[1])
    os.rename(tmp, sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    end = time.monotonic() + LIFETIME
    due = []                                # heap of (time, seq, reply, addr)
    seq = 0
    while True:
        now = time.monotonic()
        if now >= end:
            return 0
        while due and due[0][0] <= now:
            _, _, reply, addr = heapq.heappop(due)
            try:
                sock.sendto(reply, addr)
            except OSError:
                pass
        wait = end - now
        if due:
            wait = min(wait, max(0.0, due[0][0] - now))
        r, _, _ = select.select([sock], [], [], wait)
        if r:
            pkt, addr = sock.recvfrom(4096)
            reply = answer(pkt)
            if reply is not None:
                seq += 1
                heapq.heappush(due, (time.monotonic() + DELAY, seq, reply, addr))


if __name__ == "__main__":
    sys.exit(main())
