#!/usr/bin/python3
"""
Client identity (issue 4) against the real test unbound of tests/dns: each
client binds its own source address 127.0.0.x, whose PTR/A data in
tests/dns/unbound.conf.in give one DNS outcome (good FCrDNS, a lying PTR,
a generic name, a PTR to nothing, NXDOMAIN, SERVFAIL, a dropped query, a
truncated answer that forces TCP).  The tests read the replies, the
"identity" log line, and the Received:/Authentication-Results: headers of
the delivered message.
"""
import re
import signal
import time

from ehlotest import Server, check, eq, main
from identhelp import (connect, expect_results, headers, identity_line, identity_settings,
                       log_lines, only_message, received, resolver)

ALL_TAG = {c: "tag" for c in ("syntax", "fqdn", "literal_match", "resolves", "forward_match",
                             "ptr", "fcrdns", "ptr_match", "generic", "self_claim",
                             "consistency")}


def deliver(srv, src, helo, rcpt, settle=0.0):
    """One message from src; settle: seconds to wait after EHLO (a slow
    client: every lookup has been answered before RCPT)."""
    c = connect(srv, src)
    c.ehlo(helo)
    time.sleep(settle)
    code, lines = c.transaction(rcpt=rcpt)
    eq(code, 250, "RCPT reply for %s (all checks tag: nothing is refused)" % src)
    c.cmd("QUIT", 221)
    c.close()
    return only_message(srv, rcpt)


def auth_results(msg):
    h = headers(msg)
    check(h[0][0] == "Return-Path", "first header is %r, expected Return-Path" % h[0][0])
    check(h[1][0] == "Authentication-Results",
          "second header is %r, expected Authentication-Results above Received" % h[1][0])
    check(h[2][0] == "Received", "third header is %r, expected Received" % h[2][0])
    return h[1][1]


# (source, EHLO name, expected results in the identity line, iprev, name in Received)
TABLE = [
    ("127.0.0.2", "mx.good.test",
     dict(syntax="pass", resolves="pass", forward_match="pass", ptr="pass", fcrdns="pass",
          ptr_match="pass", generic="pass", literal_match="none", consistency="none"),
     "pass", "mx.good.test"),
    ("127.0.0.3", "liar.bad.test",
     dict(resolves="pass", forward_match="fail", ptr="pass", fcrdns="fail", ptr_match="fail",
          generic="pass"),
     "fail", "unknown"),
    ("127.0.0.4", "127-0-0-4.dyn.isp.test",
     dict(ptr="pass", fcrdns="pass", generic="fail", forward_match="pass"),
     "pass", "127-0-0-4.dyn.isp.test"),
    ("127.0.0.5", "ghost.bad.test",
     dict(ptr="pass", fcrdns="fail", resolves="fail", forward_match="fail"),
     "fail", "unknown"),
    ("127.0.0.6", "servfail.test",
     dict(ptr="temperror", fcrdns="temperror", resolves="temperror", generic="temperror"),
     "temperror", "unknown"),
    ("127.0.0.8", "nothing.test",
     dict(ptr="fail", fcrdns="permerror", resolves="fail"),
     "permerror", "unknown"),
    ("127.0.0.9", "[127.0.0.9]",
     dict(syntax="pass", fqdn="none", literal_match="pass", resolves="none", ptr="pass",
          fcrdns="fail", generic="pass"),
     "fail", "unknown"),
    ("127.0.0.10", "helo.good.test",
     dict(forward_match="pass", ptr="pass", fcrdns="pass", ptr_match="pass"),
     "pass", "helo.good.test"),
    ("127.0.0.11", "multi.good.test",
     dict(forward_match="pass", ptr="pass", fcrdns="pass", ptr_match="pass"),
     "pass", "multi.good.test"),
    ("127.0.0.13", "elsewhere.good.test",
     dict(ptr="fail", resolves="pass", forward_match="fail"),
     "permerror", "unknown"),
    ("127.0.0.15", "mx15.good.test",
     dict(ptr="pass", fcrdns="pass", ptr_match="pass"),
     "pass", "mx15.good.test"),
]


def test_tag_table():
    """Every DNS outcome with tag actions: the identity line, the
    Authentication-Results iprev result and the Received: name."""
    res = resolver()
    srv = Server(identity_settings(ALL_TAG))
    for i, (src, helo, expected, iprev, rname) in enumerate(TABLE):
        rcpt = "u%d@example.test" % i
        msg = deliver(srv, src, helo, rcpt)
        d = identity_line(srv, src)
        eq(d["helo"], helo, "helo in the identity line of %s" % src)
        eq(d["decision"], "accept", "decision for %s with tag actions" % src)
        expect_results(d, expected)
        ar = auth_results(msg)
        check(ar.startswith("mx.example.test;"), "A-R authserv-id: %r" % ar)
        m = re.search(r"\biprev=(\w+) policy\.iprev=(\S+)", ar)
        check(m is not None, "no iprev in A-R of %s: %r" % (src, ar))
        eq(m.group(1), iprev, "iprev result for %s" % src)
        eq(m.group(2), src, "policy.iprev for %s" % src)
        for c, r in expected.items():
            check(re.search(r"\b%s=%s\b" % (c, r), ar),
                  "A-R comment of %s lacks %s=%s: %r" % (src, c, r, ar))
        rec = received(msg)
        check(re.search(r"^Received: from %s \(%s \[%s\]\)" % (
            re.escape(helo), re.escape(rname), re.escape(src)), rec),
            "Received of %s does not show (%s [%s]): %r" % (src, rname, src, rec))
        if iprev == "pass":
            check("rdns=%s" % rname in ar, "A-R of %s lacks rdns=%s: %r" % (src, rname, ar))
    # The hostile PTR of 127.0.0.13 (a space and control bytes) reaches
    # neither the log nor any header.
    check("evil" not in srv.maillog(), "hostile PTR name in the log")
    for f in srv.all_files():
        check(b"evil" not in open(f, "rb").read(), "hostile PTR name in %s" % f)
    # 127.0.0.9's PTR set (~1.5 KB) came truncated over UDP, then whole
    # over TCP; ptr=pass above shows the names were evaluated.
    sizes = [n for rc, n in res.replies("9.0.0.127.in-addr.arpa.", "PTR")]
    check(any(n > 1232 for n in sizes) and any(n <= 512 for n in sizes),
          "expected a truncated UDP reply and a full TCP reply for 127.0.0.9, got %r" % sizes)


def test_good_fcrdns_reject_accepts():
    """fcrdns = reject: a forward-confirmed client is accepted, and its
    confirmed name is shown in Received:, A-R iprev=pass."""
    srv = Server(identity_settings({"fcrdns": "reject", "ptr": "tag"}))
    msg = deliver(srv, "127.0.0.2", "mx.good.test", "bob@example.test")
    rec = received(msg)
    check(rec.startswith("Received: from mx.good.test (mx.good.test [127.0.0.2])"),
          "Received: %r" % rec)
    ar = auth_results(msg)
    check(re.search(r"iprev=pass policy\.iprev=127\.0\.0\.2", ar), "A-R: %r" % ar)
    check("fcrdns=pass" in ar, "A-R: %r" % ar)
    d = identity_line(srv, "127.0.0.2")
    expect_results(d, {"fcrdns": "pass", "ptr": "pass"})
    eq(d["decision"], "accept", "decision")
    check(log_lines(srv, "client=mx.good.test[127.0.0.2], from=<sender@sender.test>"),
          "the queue line does not name the confirmed client")


# (source, EHLO, check to reject, expected RCPT reply code, enhanced code)
REJECTS = [
    ("127.0.0.3", "liar.bad.test", "fcrdns", 550, "5.7.25"),    # PTR does not confirm
    ("127.0.0.5", "ghost.bad.test", "fcrdns", 550, "5.7.25"),   # PTR to a missing name
    ("127.0.0.8", "nothing.test", "fcrdns", 550, "5.7.25"),     # no PTR: permerror fails too
    ("127.0.0.8", "nothing.test", "ptr", 550, "5.7.25"),
    ("127.0.0.4", "mx.good.test", "generic", 550, "5.7.25"),    # generic PTR name
    ("127.0.0.6", "servfail.test", "fcrdns", 450, "4.7.25"),    # SERVFAIL: temperror
    ("127.0.0.6", "servfail.test", "ptr", 450, "4.7.25"),
    ("127.0.0.6", "servfail.test", "generic", 450, "4.7.25"),
]


def test_rejects_at_rcpt():
    """reject actions with smtpd_delay_reject = yes (default): EHLO and MAIL
    are accepted, RCPT gets the check's code; DNS trouble only ever 4xx;
    nothing is delivered; a Postfix-style NOQUEUE line names the check."""
    for src, helo, chk, code, enh in REJECTS:
        srv = Server(identity_settings({chk: "reject"}))
        c = connect(srv, src)
        c.ehlo(helo)
        c.cmd("MAIL FROM:<sender@sender.test>", 250)
        rc, lines = c.cmd("RCPT TO:<bob@example.test>")
        eq((rc, lines[-1][4:4 + len(enh)]), (code, enh),
           "RCPT reply for %s with helo_check_%s = reject (%r)" % (src, chk, lines))
        # The refusal is not sticky beyond the RCPT: the session goes on.
        c.cmd("RSET", 250)
        c.cmd("QUIT", 221)
        c.close()
        # The reply exactly as sent, then Postfix's fields, then ehlod's check=.
        pat = re.compile(r"NOQUEUE: reject: RCPT from \S+\[%s\]: %s; "
                         r"from=<sender@sender\.test> to=<bob@example\.test> proto=ESMTP "
                         r"helo=<%s> check=%s$" % (
                             re.escape(src), re.escape(lines[-1]), re.escape(helo), chk))
        check(any(pat.search(l) for l in srv.maillog().splitlines()),
              "no NOQUEUE reject line for %s/%s:\n%s" % (src, chk, srv.maillog()[-3000:]))
        d = identity_line(srv, src)
        eq(d["decision"], "reject" if code >= 500 else "tempfail", "decision for %s" % src)
        eq(srv.all_files(), [], "delivered files after a refusal")
        srv.stop()


def test_servfail_never_5xx():
    """With every check that needs the client's reverse DNS on reject, a
    resolver that SERVFAILs gives 450 4.7.25, never a 5xx."""
    srv = Server(identity_settings({"ptr": "reject", "fcrdns": "reject", "generic": "reject",
                                    "ptr_match": "tempfail", "syntax": "reject"}))
    c = connect(srv, "127.0.0.6")
    c.ehlo("mx.good.test")
    c.cmd("MAIL FROM:<sender@sender.test>", 250)
    c.cmd("RCPT TO:<bob@example.test>", 450, "4.7.25")
    c.cmd("RCPT TO:<bob@example.test>", 450, "4.7.25")
    c.cmd("QUIT", 221)
    d = identity_line(srv, "127.0.0.6")
    expect_results(d, {"ptr": "temperror", "fcrdns": "temperror", "generic": "temperror"})
    check(not any(re.search(r"NOQUEUE: reject: .*: 5\d\d ", l)
                  for l in srv.maillog().splitlines()), "a 5xx was logged for SERVFAIL")


def test_dropped_query_deadline():
    """127.0.0.7's PTR query is dropped by the resolver.  With dns_timeout =
    1s the greeting is immediate, the RCPT verdict comes at the deadline
    (about 1 s after connect, never the 10-30 s of a resolver's own
    retries) and it is a 4xx."""
    srv = Server(identity_settings({"fcrdns": "reject", "ptr": "tag"}, dns_timeout="1s"))
    t0 = time.monotonic()
    c = connect(srv, "127.0.0.7")
    check(c.greeting_time < 0.5, "greeting took %.2fs: it waited for DNS" % c.greeting_time)
    c.ehlo("mx.good.test")
    c.cmd("MAIL FROM:<sender@sender.test>", 250)
    dt, code, lines = c.timed("RCPT TO:<bob@example.test>")
    total = time.monotonic() - t0
    eq((code, lines[-1][4:10]), (450, "4.7.25"), "RCPT reply after a dropped PTR query")
    check(total < 1.6, "RCPT reply %.2fs after connect (deadline 1s)" % total)
    check(dt < 1.5, "RCPT reply took %.2fs" % dt)
    c.cmd("QUIT", 221)
    d = identity_line(srv, "127.0.0.7")
    expect_results(d, {"ptr": "temperror", "fcrdns": "temperror"})

    # The EHLO name's lookups start at EHLO: a dropped one bounds the EHLO
    # reply by the same deadline when the verdict is applied at EHLO.
    srv2 = Server(identity_settings({"resolves": "reject"}, dns_timeout="1s",
                                    smtpd_delay_reject="no"))
    c = connect(srv2, "127.0.0.2")
    check(c.greeting_time < 0.5, "greeting took %.2fs" % c.greeting_time)
    dt, code, lines = c.timed("EHLO timeout.test")
    # No enhanced code: ENHANCEDSTATUSCODES is not negotiated before a
    # successful EHLO (RFC 2034 §3); the log line shows the reply as sent.
    eq(code, 450, "EHLO reply for a name whose lookup is dropped (%r)" % lines)
    check(dt < 1.5, "EHLO reply took %.2fs (deadline 1s)" % dt)
    c.cmd("QUIT", 221)
    check(log_lines(srv2, "NOQUEUE: reject: HELO from unknown[127.0.0.2]: %s; proto=ESMTP "
                          "helo=<timeout.test> check=" % lines[-1]),
          "no HELO reject line with the reply %r" % lines[-1])


def test_late_ptr_then_dropped_lookup():
    """127.0.0.16's PTR answer comes 0.8 s late (tests/dns/slow-auth.py),
    and the address lookup of the name it gives (under timeout.test) is then
    dropped.  Each query is inside the DNS layer's per-query deadline (1 s
    from its own start), so only the session's deadline (ident.c, armed when
    RCPT waits for the verdict) holds the RCPT reply to about 1 s after the
    RCPT; the per-query deadlines alone would let it come at 1.8 s."""
    srv = Server(identity_settings({"fcrdns": "reject", "ptr": "tag"}, dns_timeout="1s"))
    c = connect(srv, "127.0.0.16")
    check(c.greeting_time < 0.5, "greeting took %.2fs: it waited for DNS" % c.greeting_time)
    c.ehlo("mx.good.test")
    c.cmd("MAIL FROM:<sender@sender.test>", 250)
    dt, code, lines = c.timed("RCPT TO:<bob@example.test>")
    eq((code, lines[-1][4:10]), (450, "4.7.25"), "RCPT reply after a late PTR and a dropped lookup")
    check(dt > 0.8, "RCPT reply took %.2fs: it did not wait for the lookups" % dt)
    check(dt < 1.5, "RCPT reply took %.2fs (session deadline 1s)" % dt)
    c.cmd("QUIT", 221)
    d = identity_line(srv, "127.0.0.16")
    # The PTR did come: it is the address lookup that timed out.
    expect_results(d, {"ptr": "pass", "fcrdns": "temperror"})


def test_half_close_while_parked():
    """A client pipelines MAIL, RCPT and QUIT and half-closes its side
    (shutdown SHUT_WR) while the RCPT waits for a dropped PTR query: the
    EOF is noted, and at the DNS deadline the replies to all three still
    come, in order, before ehlod closes."""
    import socket as _socket
    srv = Server(identity_settings({"fcrdns": "reject"}, dns_timeout="1s"))
    c = connect(srv, "127.0.0.7")
    c.ehlo("mx.good.test")
    c.send(b"MAIL FROM:<sender@sender.test>\r\nRCPT TO:<bob@example.test>\r\nQUIT\r\n")
    c.sock.shutdown(_socket.SHUT_WR)
    t0 = time.monotonic()
    eq(c.reply()[0], 250, "MAIL reply after the half-close")
    code, lines = c.reply()
    eq((code, lines[-1][4:10]), (450, "4.7.25"), "RCPT reply at the DNS deadline")
    eq(c.reply()[0], 221, "QUIT reply")
    check(time.monotonic() - t0 < 3, "replies took %.2fs" % (time.monotonic() - t0))
    check(c.closed(), "ehlod did not close after QUIT")


def test_sigterm_while_parked():
    """SIGTERM while a RCPT waits for a dropped PTR query: the session is
    in a transaction (MAIL accepted), so it gets the RCPT's verdict at the
    DNS deadline and goes on; the reply that ends the transaction (RSET)
    is followed by 421 4.3.2 at once, not at smtpd_shutdown_timeout (30 s;
    before, a session busy at SIGTERM was never told afterwards), and an
    idle session is told at SIGTERM."""
    srv = Server(identity_settings({"fcrdns": "reject"}, dns_timeout="1s"))
    idle = connect(srv, "127.0.0.2")
    idle.ehlo("mx.good.test")
    c = connect(srv, "127.0.0.7")
    c.ehlo("mx.good.test")
    c.cmd("MAIL FROM:<sender@sender.test>", 250)
    c.send(b"RCPT TO:<bob@example.test>\r\n")
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    idle.expect(421, "4.3.2")
    code, lines = c.reply()
    eq((code, lines[-1][4:10]), (450, "4.7.25"), "RCPT reply at the DNS deadline")
    c.cmd("RSET", 250)
    c.expect(421, "4.3.2")
    check(time.monotonic() - t0 < 5, "421 after %.2fs" % (time.monotonic() - t0))
    check(c.closed(), "session not closed after its transaction at shutdown")
    eq(srv.wait_exit(10), 0, "ehlod exit status after SIGTERM")


def test_wait_for_dns_is_not_a_client_timeout():
    """smtpd_timeout (1 s) shorter than the DNS deadline (2 s): the client
    is waiting for us, not idle, so its RCPT gets the verdict at the
    deadline, not 421 "timeout exceeded"."""
    srv = Server(identity_settings({"fcrdns": "reject"}, dns_timeout="2s", smtpd_timeout="1s"))
    c = connect(srv, "127.0.0.7")
    c.ehlo("mx.good.test")
    c.cmd("MAIL FROM:<sender@sender.test>", 250)
    dt, code, lines = c.timed("RCPT TO:<bob@example.test>")
    eq((code, lines[-1][4:10]), (450, "4.7.25"), "RCPT reply after waiting %.2fs" % dt)
    check(dt > 1.5, "RCPT answered after %.2fs, before the 2 s DNS deadline" % dt)
    c.cmd("QUIT", 221)
    check(not log_lines(srv, "timeout after"), "a timeout was logged while we were waiting")


def test_tag_pipelined():
    """A PIPELINING client sends EHLO through the message in one go.  The
    tag results in Authentication-Results: and the identity line must be
    what the DNS answers (it answers in milliseconds, far inside
    dns_timeout), not temperror for lookups merely in flight: RFC 8601
    temperror means the records could not be retrieved."""
    srv = Server(identity_settings(ALL_TAG))
    cases = [("127.0.0.3", "liar.bad.test", "fail",
              dict(resolves="pass", forward_match="fail", fcrdns="fail")),
             ("127.0.0.2", "mx.good.test", "pass",
              dict(resolves="pass", forward_match="pass", fcrdns="pass", ptr_match="pass"))]
    for i, (src, helo, iprev, expected) in enumerate(cases):
        rcpt = "p%d@example.test" % i
        c = connect(srv, src)
        c.send("EHLO %s\r\nMAIL FROM:<s@sender.test>\r\nRCPT TO:<%s>\r\nDATA\r\n"
               "Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n" % (helo, rcpt))
        for code in (250, 250, 250, 354, 250, 221):
            c.expect(code)
        c.close()
        msg = only_message(srv, rcpt)
        ar = auth_results(msg)
        m = re.search(r"\biprev=(\w+)", ar)
        eq(m and m.group(1), iprev, "iprev for pipelining client %s (A-R %r)" % (src, ar))
        for k, v in expected.items():
            check(re.search(r"\b%s=%s\b" % (k, v), ar),
                  "A-R of pipelining client %s lacks %s=%s: %r" % (src, k, v, ar))
        expect_results(identity_line(srv, src), expected, "identity line, pipelining ")


def test_forged_auth_results_removed():
    """RFC 8601 §5: a tagged message loses any Authentication-Results field
    the client wrote with our authserv-id (any case, folded); fields of
    other authserv-ids stay, and the only one with ours is ehlod's."""
    srv = Server(identity_settings({"fcrdns": "tag", "ptr": "tag"}))
    c = connect(srv, "127.0.0.3")
    c.ehlo("liar.bad.test")
    body = (b"Authentication-Results: mx.example.test; iprev=pass policy.iprev=127.0.0.3\r\n"
            b"Authentication-Results: other.example.net; spf=pass\r\n"
            b"authentication-results:   MX.EXAMPLE.TEST;\r\n\tiprev=pass\r\n"
            b"Subject: forged\r\n\r\nAuthentication-Results: mx.example.test; in the body\r\n")
    eq(c.transaction(body=body)[0], 250, "RCPT")
    c.cmd("QUIT", 221)
    msg = only_message(srv)
    hs = headers(msg)
    ours = [v for n, v in hs if n.lower() == "authentication-results"
            and v.lower().startswith("mx.example.test")]
    eq(len(ours), 1, "A-R fields with our authserv-id (%r)" % hs)
    check(re.search(r"iprev=fail policy\.iprev=127\.0\.0\.3", ours[0]), "our A-R: %r" % ours[0])
    check(("Authentication-Results", "other.example.net; spf=pass") in hs,
          "another authserv-id's field was removed: %r" % hs)
    check(b"Authentication-Results: mx.example.test; in the body" in msg, "body line changed")
    check(log_lines(srv, "removed 2 forged Authentication-Results fields"), "no removal log line")


def test_dropped_query_greeting_many():
    """Several clients whose PTR query is dropped, connected at once: each
    greeting is immediate (no client waits for another's DNS)."""
    srv = Server(identity_settings({"fcrdns": "reject"}, dns_timeout="2s"))
    clients = []
    for i in range(5):
        c = connect(srv, "127.0.0.7")
        check(c.greeting_time < 0.5, "greeting %d took %.2fs" % (i, c.greeting_time))
        clients.append(c)
    for c in clients:
        c.cmd("QUIT", 221)
        c.close()


def test_address_literals():
    """[127.0.0.x] in EHLO: literal_match passes for the client's own
    address and fails for another one (550 5.7.1 under reject)."""
    srv = Server(identity_settings({"literal_match": "reject"},
                                   helo_allow_ip_mismatch_reject="yes"))
    msg = deliver(srv, "127.0.0.2", "[127.0.0.2]", "bob@example.test")
    rec = received(msg)
    check(rec.startswith("Received: from [127.0.0.2] ("), "Received: %r" % rec)
    expect_results(identity_line(srv, "127.0.0.2"), {"literal_match": "pass"})
    c = connect(srv, "127.0.0.3")
    c.ehlo("[127.0.0.2]")
    c.cmd("MAIL FROM:<sender@sender.test>", 250)
    c.cmd("RCPT TO:<bob@example.test>", 550, "5.7.1")
    c.cmd("QUIT", 221)
    expect_results(identity_line(srv, "127.0.0.3"), {"literal_match": "fail"})
    check(log_lines(srv, " check=literal_match"), "no reject line for literal_match")
    # A name is not a literal: literal_match does not apply.
    c = connect(srv, "127.0.0.10")
    c.ehlo("helo.good.test")
    eq(c.transaction(rcpt="carol@example.test")[0], 250, "RCPT after EHLO <name>")
    c.cmd("QUIT", 221)
    expect_results(identity_line(srv, "127.0.0.10"), {"literal_match": "none"})


def test_ipv6_literal_and_client_family():
    """An IPv6 literal from an IPv4 client does not match it."""
    srv = Server(identity_settings({"literal_match": "tag", "syntax": "reject"}))
    c = connect(srv, "127.0.0.2")
    c.ehlo("[IPv6:fd00::2]")
    eq(c.transaction()[0], 250, "RCPT (tag)")
    c.cmd("QUIT", 221)
    expect_results(identity_line(srv, "127.0.0.2"), {"syntax": "pass", "literal_match": "fail"})


if __name__ == "__main__":
    main(globals())
