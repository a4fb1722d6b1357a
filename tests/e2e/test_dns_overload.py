#!/usr/bin/python3
"""
A dead DNS resolver under a flood of short connections: ehlod's memory
stays bounded (dns_max_inflight).

The forwarder is a UDP socket on loopback that reads queries and never
answers.  Every connection from a new address starts a PTR lookup
(helo_check_ptr = tag, the default); the client closes at once, ehlod
drops the lookup, and dns_timeout passes.  libunbound keeps such a query
(and about 13 KB) until it gives up, which with a dead forwarder takes
minutes: before dns_max_inflight, 20,000 connections left ehlod at 267 MB
for good.  Now at most dns_max_inflight queries are outstanding per
worker and the lookups beyond fail at once as a temporary DNS failure,
the outcome of a timeout.
"""
import os
import re
import socket
import threading
import time
import urllib.request

from ehlotest import Server, asan_build, check, eq, free_port, main, wait_until
from identhelp import connect, expect_results, identity_line

WARMUP = 1500               # connections that fill the limit (one PTR query each)
FLOOD = 3000                # then as many again, each from its own 127.3.x.y
LIMIT = 1000                # dns_max_inflight's default, per worker
MAX_GROWTH_KB = 12 * 1024   # over the second flood; it was 40 MB without the limit


class BlackHole:
    """A DNS forwarder that reads every query and answers none."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.done = False
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        while not self.done:
            try:
                self.sock.recvfrom(4096)
                self.queries += 1
            except socket.timeout:
                pass

    def close(self):
        self.done = True
        self.thread.join(2)
        self.sock.close()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metrics(mport):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(ehlo_\w+) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_dead_resolver_flood_memory_bounded():
    """4,500 connect-and-close clients, each from a new address, against a
    black-hole forwarder: once the first 1,500 have filled the limit, the
    other 3,000 add less than 12 MB to the RSS (36 MB, for good, before
    the limit), the limit's counter moves, every
    session ends, and a real client afterwards gets the timeout's outcome
    (ptr=temperror) at once rather than after dns_timeout."""
    bh = BlackHole()
    mport = free_port()
    srv = Server({"dns_forwarders": "127.0.0.1@%d" % bh.port, "dns_timeout": "2s",
                  "helo_check_ptr": "tag", "smtpd_client_connection_count_limit": "0",
                  "smtpd_workers": "1", "metrics_listen": "127.0.0.1:%d" % mport})
    try:
        t0 = time.monotonic()

        def flood(first, count):
            for n in range(first, first + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(10)
                s.bind(("127.3.%d.%d" % (n // 250, n % 250 + 1), 0))
                s.connect(("127.0.0.1", srv.port))
                s.close()
                check(time.monotonic() - t0 < 25, "flood took over 25 s (%d connections)" % n)
            wait_until(lambda: metrics(mport).get("ehlo_smtpd_disconnects_total", 0) >=
                       first + count, 15, what="every flood session ended")

        # The first connections fill the limit, and bring the session
        # buffers and malloc's arenas to their size (MALLOC_PERTURB_, set
        # by meson, makes every allocation resident); what the second
        # flood adds is what the dropped lookups hold.
        start = rss_kb(srv.pid)
        flood(0, WARMUP)
        before = rss_kb(srv.pid)
        flood(WARMUP, FLOOD)
        m = metrics(mport)
        eq(m.get("ehlo_smtpd_sessions_active"), 0, "sessions active after the flood")
        growth = rss_kb(srv.pid) - before
        print("# RSS %d kB at start, %d kB after %d connections, then +%d kB after %d more "
              "(%.1f s in all); %d queries reached the black hole; %s" % (
                  start, before, WARMUP, growth, FLOOD, time.monotonic() - t0, bh.queries,
                  {k: v for k, v in m.items() if "dns" in k}))
        check(bh.queries > 0, "no query reached the black-hole forwarder")
        if asan_build():
            # ASan's allocator (quarantine, redzones) makes RSS measure
            # itself; the counters below still show the bound at work.
            print("# ASan build: the RSS bound is checked in the plain build")
        else:
            check(growth < MAX_GROWTH_KB, "RSS grew by %d kB (bound %d kB)"
                  % (growth, MAX_GROWTH_KB))
        check(m.get("ehlo_dns_inflight_limit_rejects_total", 0) > 0,
              "ehlo_dns_inflight_limit_rejects_total did not move: %r" % m)
        check(0 < m.get("ehlo_dns_queries_inflight", 0) <= LIMIT,
              "ehlo_dns_queries_inflight %r, limit %d" % (m.get("ehlo_dns_queries_inflight"),
                                                           LIMIT))

        # The limit is still reached (libunbound keeps the dropped queries
        # for minutes): a client's PTR lookup fails at once, with the same
        # outcome as a timeout, and its session goes on.
        rejects = m["ehlo_dns_inflight_limit_rejects_total"]
        t1 = time.monotonic()
        c = connect(srv, "127.0.0.2")
        c.ehlo("mx.good.test")
        c.cmd("MAIL FROM:<sender@sender.test>", 250)
        c.cmd("RCPT TO:<bob@example.test>", 250)
        expect_results(identity_line(srv, "127.0.0.2"), {"ptr": "temperror"})
        dt = time.monotonic() - t1
        check(dt < 1.0, "identity verdict %.2fs after connect: it waited for dns_timeout" % dt)
        c.cmd("QUIT", 221)
        c.close()
        check(metrics(mport)["ehlo_dns_inflight_limit_rejects_total"] > rejects,
              "the client's lookup was not refused by the limit")
    finally:
        srv.stop()
        bh.close()


if __name__ == "__main__":
    main(globals())
