#!/usr/bin/python3
"""
PROXY protocol v1/v2 (HAProxy's proxy-protocol.txt) in front of the
identity checks (issue 4): swaks --proxy-version 1|2 from the trusted proxy
127.0.0.1 (smtpd_upstream_proxy_hosts) must make ehlod check, log and
record the proxied source address, not the proxy's; direct clients share
the listener; bad headers from a trusted host drop the connection; an
untrusted host's PROXY line is just an unknown command.
"""
import re
import time

from ehlotest import Server, check, eq, main, wait_until
from identhelp import (connect, identity_line, identity_settings, log_lines, only_message,
                       received, swaks)

PROXY_SETTINGS = dict(smtpd_upstream_proxy_hosts="127.0.0.1")
CHECKS = {"fcrdns": "reject", "ptr": "tag", "generic": "tag"}


def swaks_proxy(srv, version, family, src, ehlo, rcpt="bob@example.test", sport=40001):
    dst = "fd00::1" if ":" in src else "127.0.0.1"
    args = ["--server", "127.0.0.1", "--port", str(srv.port), "--local-interface", "127.0.0.1",
            "--proxy-version", str(version), "--proxy-family", family,
            "--proxy-source", src, "--proxy-source-port", str(sport),
            "--proxy-dest", dst, "--proxy-dest-port", "25",
            "--ehlo", ehlo, "--from", "sender@sender.test", "--to", rcpt,
            "--header", "Subject: proxied", "--body", "hello", "--timeout", "20"]
    return swaks(args)


def expect_proxied(srv, version, src, name, rcpt, sport):
    msg = only_message(srv, rcpt)
    rec = received(msg)
    check(re.search(r"\(%s \[(IPv6:)?%s\]\)" % (re.escape(name), re.escape(src)), rec),
          "Received does not show %s [%s]: %r" % (name, src, rec))
    d = identity_line(srv, src)
    eq(d["fcrdns"], "pass", "fcrdns of the proxied client %s" % src)
    check(log_lines(srv, "PROXY v%d from 127.0.0.1: client=unknown[%s]:%d" % (version, src, sport)),
          "no PROXY v%d log line for %s:\n%s" % (version, src, srv.maillog()[-2000:]))
    check(re.search(r"iprev=pass policy\.iprev=\"?%s\"?" % re.escape(src), msg.decode()),
          "A-R of the proxied message: %r" % msg[:600])
    check(not [d for d in log_lines(srv, " identity ") if "[127.0.0.1]" in d],
          "identity evaluated for the proxy's own address")


def test_swaks_proxy_v1():
    """PROXY v1 (TCP4 127.0.0.2): the good FCrDNS of 127.0.0.2 passes
    helo_check_fcrdns = reject (127.0.0.1 itself has no PTR and would be
    refused), Received: and the logs show 127.0.0.2."""
    srv = Server(identity_settings(CHECKS, **PROXY_SETTINGS))
    rc, out = swaks_proxy(srv, 1, "TCP4", "127.0.0.2", "mx.good.test", sport=40001)
    eq(rc, 0, "swaks --proxy-version 1 exit status:\n%s" % out)
    expect_proxied(srv, 1, "127.0.0.2", "mx.good.test", "bob@example.test", 40001)


def test_swaks_proxy_v2():
    """PROXY v2 (AF_INET 127.0.0.10, then AF_INET6 fd00::2 whose PTR
    mx.good.test has AAAA fd00::2)."""
    srv = Server(identity_settings(CHECKS, **PROXY_SETTINGS))
    rc, out = swaks_proxy(srv, 2, "AF_INET", "127.0.0.10", "helo.good.test",
                          rcpt="v4@example.test", sport=40002)
    eq(rc, 0, "swaks --proxy-version 2 AF_INET exit status:\n%s" % out)
    expect_proxied(srv, 2, "127.0.0.10", "helo.good.test", "v4@example.test", 40002)
    rc, out = swaks_proxy(srv, 2, "AF_INET6", "fd00::2", "mx.good.test",
                          rcpt="v6@example.test", sport=40003)
    eq(rc, 0, "swaks --proxy-version 2 AF_INET6 exit status:\n%s" % out)
    expect_proxied(srv, 2, "fd00::2", "mx.good.test", "v6@example.test", 40003)


def test_swaks_proxy_checks_proxied_address():
    """The lying PTR of a proxied 127.0.0.3 is refused (550 5.7.25 at
    RCPT) even though the proxy 127.0.0.1 could not be confirmed either:
    the log names 127.0.0.3."""
    srv = Server(identity_settings(CHECKS, **PROXY_SETTINGS))
    for version, fam in ((1, "TCP4"), (2, "AF_INET")):
        rc, out = swaks_proxy(srv, version, fam, "127.0.0.3", "liar.bad.test", sport=40004)
        check(rc != 0 and "<** 550 5.7.25" in out,
              "swaks v%d through the proxy for 127.0.0.3: rc %d\n%s" % (version, rc, out))
    ls = log_lines(srv, "NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 550 5.7.25 ")
    eq(len(ls), 2, "reject lines for the proxied 127.0.0.3")
    eq(srv.all_files(), [], "delivered files")


def test_direct_clients_same_listener():
    """Direct clients on the proxy listener: an untrusted host is served at
    once and its "PROXY ..." line is an unknown command (500), which
    changes nothing; the trusted host without a header is served as
    itself after the short sniffing pause."""
    srv = Server(identity_settings(CHECKS, **PROXY_SETTINGS))
    c = connect(srv, "127.0.0.2")
    check(c.greeting_time < 0.5, "greeting to an untrusted direct client took %.2fs"
          % c.greeting_time)
    code, lines = c.cmd("PROXY TCP4 127.0.0.3 127.0.0.1 40000 25")
    eq(code, 500, "PROXY line from an untrusted host (%r)" % lines)
    c.ehlo("mx.good.test")
    eq(c.transaction()[0], 250, "RCPT from the direct good client")
    c.cmd("QUIT", 221)
    eq(identity_line(srv, "127.0.0.2")["fcrdns"], "pass", "fcrdns of the direct client")
    check(not log_lines(srv, "PROXY v"), "a PROXY header was accepted from an untrusted host")
    rec = received(only_message(srv))
    check("(mx.good.test [127.0.0.2])" in rec, "Received: %r" % rec)

    # The trusted proxy host itself, no header: a direct client 127.0.0.1
    # (no PTR in the test zones, so fcrdns = reject refuses it).
    c = connect(srv, "127.0.0.1")
    check(c.greeting_time < 2.0, "greeting to the trusted host took %.2fs" % c.greeting_time)
    c.ehlo("mx.good.test")
    c.cmd("MAIL FROM:<sender@sender.test>", 250)
    c.cmd("RCPT TO:<bob@example.test>", 550, "5.7.25")
    c.cmd("QUIT", 221)
    eq(identity_line(srv, "127.0.0.1")["ptr"], "fail", "ptr of the trusted host itself")


BAD_HEADERS = [
    b"PROXY TCP4 999.1.1.1 127.0.0.1 40000 25\r\n",
    b"PROXY TCP4 127.0.0.2 127.0.0.1 99999 25\r\n",
    b"PROXY TCP9 127.0.0.2 127.0.0.1 40000 25\r\n",
    b"PROXY TCP4 127.0.0.2 127.0.0.1 40000\r\n",
    b"PROXY TCP4 127.0.0.2  127.0.0.1 40000 25\r\n",
    b"PROXY TCP6 127.0.0.2 127.0.0.1 40000 25\r\n",
    b"PROXY " + b"A" * 120 + b"\r\n",
    # v2 signature, version 3
    b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x7f\x00\x00\x02\x7f\x00\x00\x01\x9c\x40\x00\x19",
    # v2, AF_INET with a length too short for its addresses
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04" + b"\x7f\x00\x00\x02",
]


def test_bad_header_from_trusted_host():
    """A malformed PROXY header from a trusted host: the connection is
    dropped (no greeting), the error is logged, ehlod keeps serving."""
    srv = Server(identity_settings(CHECKS, **PROXY_SETTINGS))
    for i, hdr in enumerate(BAD_HEADERS):
        c = connect(srv, "127.0.0.1", greeting=False)
        c.send(hdr)
        check(c.closed(5.0), "connection not closed after bad header %d %r" % (i, hdr))
        check(not c.buf.startswith(b"220"), "greeting sent after bad header %r: %r" % (hdr, c.buf))
        c.close()
    # The client sees the close before ehlod's batched log write of that
    # loop pass reaches the file: wait for the last line.
    wait_until(lambda: len(log_lines(srv, "PROXY header error from")) >= len(BAD_HEADERS), 5,
               what="%d PROXY error lines" % len(BAD_HEADERS))
    eq(len(log_lines(srv, "PROXY header error from")), len(BAD_HEADERS), "PROXY error lines")
    eq(log_lines(srv, " identity "), [], "identity evaluated for a dropped connection")
    rc, out = swaks_proxy(srv, 1, "TCP4", "127.0.0.2", "mx.good.test", sport=40005)
    eq(rc, 0, "swaks after the bad headers:\n%s" % out)


def test_header_timeout():
    """A trusted host that starts a header and stalls is dropped after
    smtpd_upstream_proxy_timeout."""
    srv = Server(identity_settings(CHECKS, smtpd_upstream_proxy_timeout="1s", **PROXY_SETTINGS))
    c = connect(srv, "127.0.0.1", greeting=False)
    t0 = time.monotonic()
    c.send(b"PROXY TCP4 127.0.0.2 ")
    check(c.closed(5.0), "connection still open 5s after a partial header")
    dt = time.monotonic() - t0
    check(0.8 < dt < 2.5, "partial header dropped after %.2fs (timeout 1s)" % dt)
    wait_until(lambda: log_lines(srv, "PROXY header timeout from"), 5, what="the timeout line")


if __name__ == "__main__":
    main(globals())
