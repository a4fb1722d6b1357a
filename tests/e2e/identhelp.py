"""
Helpers for the client-identity end-to-end tests (issue 4), on top of
ehlotest.py (stdlib only; run with /usr/bin/python3).

* One test resolver per test file: tests/dns/unbound-test.sh starts the
  unbound of tests/dns/unbound.conf.in on a free loopback port the first
  time resolver() is called, and stops it (by PID) when the file exits.
  Its table of client addresses 127.0.0.x and names is what the tests
  rely on.  Only names under .test and the reverse zones 0.0.127.in-addr.arpa
  and d.f.ip6.arpa are answered there from local data; a test must not
  make ehlod ask for anything else (the unbound would iterate).
* SrcClient: a raw SMTP client bound to a chosen source address 127.0.0.x
  (bind before connect), so that ehlod sees a distinct client per case.
* identity_settings(): BASE_SETTINGS with the test resolver as forwarder
  and every helo_check_* off unless given.
* identity_line(): the parsed "identity client=... decision=..." log line.
"""

import atexit
import os
import re
import socket
import subprocess
import tempfile
import time
import shutil

import ehlotest
from ehlotest import BASE_SETTINGS, IO_TIMEOUT, Client, Skip, check, fail

HERE = os.path.dirname(os.path.abspath(__file__))
UNBOUND_TEST = os.path.join(HERE, "..", "dns", "unbound-test.sh")

# Two workers, as in ehlotest.BASE_SETTINGS: each has its own DNS context
# and cache (test_identity_policy.py test_start_many_workers starts 16).
WORKERS = "2"

CHECKS = ("syntax", "fqdn", "literal_match", "resolves", "forward_match", "ptr", "fcrdns",
          "ptr_match", "generic", "self_claim", "consistency")


class Resolver:
    """The test unbound of tests/dns (one per process)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ehlo-e2e-unbound-")
        p = subprocess.run(["sh", UNBOUND_TEST, "start", self.dir], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = p.stdout.decode("utf-8", "replace")
        if p.returncode == 77:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise Skip("unbound is not installed")
        if p.returncode != 0:
            fail("tests/dns/unbound-test.sh start failed (%d):\n%s" % (p.returncode, out))
        m = re.search(r"^PORT=(\d+)$", out, re.M)
        check(m is not None, "unbound-test.sh printed no PORT=: %r" % out)
        self.port = int(m.group(1))
        self.logfile = os.path.join(self.dir, "unbound.log")
        atexit.register(self.stop)

    @property
    def forwarder(self):
        return "127.0.0.1@%d" % self.port

    def stop(self):
        if self.dir is None:
            return
        subprocess.run(["sh", UNBOUND_TEST, "stop", self.dir], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def replies(self, qname, qtype, since=0):
        """Sizes of the replies unbound logged for qname/qtype after offset
        since (log-replies lines end in 'RCODE time cached size')."""
        out = []
        pat = re.compile(r" %s %s IN (\S+) [\d.]+ \d+ (\d+)$" % (re.escape(qname), qtype))
        for line in self.log()[since:].splitlines():
            m = pat.search(line)
            if m:
                out.append((m.group(1), int(m.group(2))))
        return out


_resolver = None


def resolver():
    global _resolver
    if _resolver is None:
        _resolver = Resolver()
    return _resolver


def identity_settings(actions=None, **extra):
    """ehlod settings for an identity test: the test resolver, every check
    off except those in actions ({check: action}), then extra settings."""
    s = dict(BASE_SETTINGS)
    s["dns_forwarders"] = resolver().forwarder
    s["dns_timeout"] = "2s"
    s["smtpd_workers"] = WORKERS
    for c in CHECKS:
        s["helo_check_" + c] = "off"
    for c, a in (actions or {}).items():
        check(c in CHECKS, "unknown check %r" % c)
        s["helo_check_" + c] = a
    s.update(extra)
    return s


class SrcClient(Client):
    """Client bound to source address src (127.0.0.x) before connecting.
    connect_time: seconds from connect() returning to the greeting."""

    def __init__(self, port, src, greeting=True, timeout=IO_TIMEOUT, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.bind((src, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.greeting = None
        t0 = time.monotonic()
        if greeting:
            self.greeting = self.expect(220)
        self.greeting_time = time.monotonic() - t0

    def timed(self, line):
        """Send one command; returns (seconds until the reply, code, lines)."""
        t0 = time.monotonic()
        code, lines = self.cmd(line)
        return time.monotonic() - t0, code, lines

    def transaction(self, sender="sender@sender.test", rcpt="bob@example.test",
                    body=b"Subject: identity test\r\n\r\nhello\r\n"):
        """MAIL, RCPT and (if RCPT was accepted) DATA; returns the RCPT
        reply (code, lines)."""
        self.cmd("MAIL FROM:<%s>" % sender, 250)
        code, lines = self.cmd("RCPT TO:<%s>" % rcpt)
        if code == 250:
            self.cmd("DATA", 354)
            self.send(body + b".\r\n")
            self.expect(250)
        return code, lines


def connect(srv, src, **kw):
    return SrcClient(srv.port, src, **kw)


_IDENT_RE = re.compile(r" identity client=(\S+) helo=<(.*?)> (.*) decision=(\w+)( \(exempt\))?$")


def identity_lines(srv):
    """Every identity log line so far, parsed: dicts with client, ip, helo,
    decision, exempt and one entry per check."""
    out = []
    for line in srv.maillog().splitlines():
        m = _IDENT_RE.search(line)
        if not m:
            continue
        d = {"client": m.group(1), "helo": m.group(2), "decision": m.group(4),
             "exempt": m.group(5) is not None, "line": line}
        ipm = re.search(r"\[([^\]]*)\]$", m.group(1))
        d["ip"] = ipm.group(1) if ipm else None
        for word in m.group(3).split():
            k, _, v = word.partition("=")
            d[k] = v
        out.append(d)
    return out


def identity_line(srv, ip, timeout=10):
    """The first identity line for client address ip (waits for it)."""
    def find():
        for d in identity_lines(srv):
            if d["ip"] == ip:
                return d
        return None
    return ehlotest.wait_until(find, timeout, what="identity log line for %s" % ip)


def expect_results(d, expected, what=""):
    """Fail unless each check in expected has that result in line d."""
    for c, r in expected.items():
        if d.get(c) != r:
            fail("%s%s: expected %s=%s, got %s=%s in %r" % (
                what, d["ip"], c, r, c, d.get(c), d["line"]))


def log_lines(srv, needle):
    return [l for l in srv.maillog().splitlines() if needle in l]


def headers(msg):
    """Top-level header block of a delivered message, unfolded, as a list
    of (name, value) in order."""
    head = ehlotest.to_lf(msg).split(b"\n\n", 1)[0].decode("utf-8", "replace")
    out = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        else:
            name, _, value = line.partition(":")
            out.append((name, value.strip()))
    return out


def received(msg):
    """The first Received: field of msg, unfolded ("Received: from ...")."""
    for name, value in headers(msg):
        if name == "Received":
            return "Received: " + value
    fail("no Received: header in %r" % msg[:300])


def only_message(srv, addr="bob@example.test", timeout=5):
    """The one message delivered to addr (waits briefly for it)."""
    ehlotest.wait_until(lambda: len(srv.new_files(addr)) >= 1, timeout,
                        what="a message for %s" % addr)
    msgs = srv.messages(addr)
    check(len(msgs) == 1, "expected 1 message for %s, found %d" % (addr, len(msgs)))
    return msgs[0]


def swaks(args, timeout=60):
    """Run swaks (output and exit status returned; never fails itself)."""
    ehlotest.need_tool("/usr/bin/swaks")
    p = subprocess.run(["/usr/bin/swaks"] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")
