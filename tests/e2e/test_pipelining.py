#!/usr/bin/python3
"""
PIPELINING (RFC 2920) and CHUNKING/BDAT (RFC 3030) over a raw socket: replies
come back in the order of the commands, one per command, and every accepted
message lands in the Maildir exactly as sent.
"""
import os

from ehlotest import (Server, Client, asan_build, check, eq, free_port, main, received_header,
                      strip_received, to_lf, stuff, DOMAIN)


def codes(c, n):
    return [c.reply()[0] for _ in range(n)]


def body(tag):
    return (b"Subject: %s\r\n\r\n.starts with a dot\r\nline two of %s\r\n" % (tag, tag))


def test_pipelined_groups():
    """Command groups as RFC 2920 allows them: MAIL, RCPTs and DATA in one
    write; the content, the end of data and the next group in one write."""
    srv = Server()
    c = Client(srv.port)
    lines = c.ehlo()
    check("250-PIPELINING" in lines, "PIPELINING not announced: %r" % lines)
    c.send(b"MAIL FROM:<a@sender.test>\r\n"
           b"RCPT TO:<p1@example.test>\r\n"
           b"RCPT TO:<someone@elsewhere.test>\r\n"
           b"RCPT TO:<p2@example.test>\r\n"
           b"DATA\r\n")
    eq(codes(c, 5), [250, 250, 554, 250, 354], "replies to the first group")
    c.send(stuff(body(b"one")) + b".\r\n"
           b"MAIL FROM:<a@sender.test>\r\n"
           b"RCPT TO:<p3@example.test>\r\n"
           b"DATA\r\n")
    eq(codes(c, 4), [250, 250, 250, 354], "replies to the second group")
    c.send(stuff(body(b"two")) + b".\r\nQUIT\r\n")
    eq(codes(c, 2), [250, 221], "replies to the last group")
    check(c.closed(), "connection not closed after QUIT")
    for rcpt, tag in (("p1", b"one"), ("p2", b"one"), ("p3", b"two")):
        msgs = srv.messages("%s@%s" % (rcpt, DOMAIN))
        eq(len(msgs), 1, "messages for %s" % rcpt)
        eq(strip_received(msgs[0]), to_lf(body(tag)), "message for %s" % rcpt)


def test_improper_pipelining_logged():
    """RFC 2920 §3.1: EHLO ends a command group, so a client that writes
    EHLO and MAIL together has not waited for the EHLO reply. Like Postfix,
    ehlod serves it normally but logs it, once per session, with the
    command after which it happened and what followed (escaped). Proper
    groups (MAIL, RCPT, DATA together; the content with the end of data)
    log nothing."""
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<p@example.test>\r\nDATA\r\n")
    eq(codes(c, 3), [250, 250, 354], "replies to a proper group")
    c.send(b"Subject: proper\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    eq(codes(c, 2), [250, 221], "replies to the content and QUIT")
    check(c.closed(), "QUIT did not close")
    srv.wait_log("disconnect from")
    check("improper command pipelining" not in srv.maillog(),
          "proper pipelining logged as improper:\n%s" % srv.maillog())

    c = Client(srv.port)
    c.send(b"EHLO client.example.test\r\nMAIL FROM:<a@sender.test>\r\nNOOP\r\nNOOP\r\n")
    eq(codes(c, 4), [250, 250, 250, 250], "replies to EHLO, MAIL and two NOOPs sent together")
    c.cmd("QUIT", 221)
    line = srv.wait_log("improper command pipelining")
    check(line.endswith("improper command pipelining after EHLO from unknown[127.0.0.1]: "
                        "MAIL FROM:<a@sender.test>\\x0d\\x0aNOOP\\x0d\\x0aNOOP\\x0d\\x0a"),
          "improper pipelining line: %r" % line)
    srv.wait_log("disconnect from", since=srv.maillog().index(line))
    eq(srv.maillog().count("improper command pipelining"), 1,
       "improper pipelining lines for one session (NOOP, NOOP was improper too)")

    # Commands that need no decision are consumed with the whole read:
    # what followed must still be in the line (it was empty).
    mark = len(srv.maillog())
    c = Client(srv.port)
    c.ehlo()
    c.send(b"NOOP\r\nRSET\r\nRSET\r\n")
    eq(codes(c, 3), [250, 250, 250], "replies to NOOP, RSET, RSET sent together")
    c.cmd("QUIT", 221)
    line = srv.wait_log("improper command pipelining", since=mark)
    check(line.endswith("after NOOP from unknown[127.0.0.1]: RSET\\x0d\\x0aRSET\\x0d\\x0a"),
          "improper pipelining line: %r" % line)


def test_pipelined_whole_transactions():
    """An aggressive client: three complete transactions (content included)
    and QUIT in a single write.  Every reply comes, in order."""
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    blob = b""
    n = 3
    for i in range(n):
        blob += (b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<w%d@example.test>\r\nDATA\r\n" % i +
                 stuff(body(b"w%d" % i)) + b".\r\n")
    blob += b"RSET\r\nNOOP\r\nQUIT\r\n"
    c.send(blob)
    got = codes(c, 4 * n + 3)
    eq(got, [250, 250, 354, 250] * n + [250, 250, 221], "replies in order")
    check(c.closed(), "connection not closed after QUIT")
    for i in range(n):
        msgs = srv.messages("w%d@%s" % (i, DOMAIN))
        eq(len(msgs), 1, "messages for w%d" % i)
        eq(strip_received(msgs[0]), to_lf(body(b"w%d" % i)), "message w%d" % i)
    # The disconnect line counts every command (asserted here once).
    line = srv.wait_log(" disconnect from unknown[127.0.0.1] ehlo=")
    check(line.endswith("ehlo=1 mail=3 rcpt=3 data=3 rset=1 noop=1 quit=1 commands=13"),
          "disconnect line: %r" % line)


def test_bdat():
    srv = Server()
    c = Client(srv.port)
    lines = c.ehlo()
    check("250-CHUNKING" in lines or "250 CHUNKING" in lines, "CHUNKING not announced: %r" % lines)

    # BDAT n, then BDAT n LAST.  No dot-unstuffing in BDAT content, and
    # bytes that look like commands are content.
    part1 = b"Subject: bdat\r\n\r\n..two dots stay\r\n"
    part2 = b"QUIT\r\n.\r\nlast\r\n"
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<b1@example.test>", 250)
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    c.expect(250)
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    c.expect(250, "queued")

    # A chunk, then BDAT 0 LAST; all pipelined in one write.
    part = b"Subject: zero\r\n\r\nbody\r\n"
    c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b2@example.test>\r\n" +
           b"BDAT %d\r\n" % len(part) + part + b"BDAT 0 LAST\r\n")
    eq(codes(c, 4), [250, 250, 250, 250], "replies to BDAT n, BDAT 0 LAST")

    # DATA after BDAT in the same transaction: 503; the transaction goes on.
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<b3@example.test>", 250)
    c.send(b"BDAT 4\r\nab\r\n")
    c.expect(250)
    c.cmd("DATA", 503)
    c.send(b"BDAT 4 LAST\r\ncd\r\n")
    c.expect(250, "queued")

    # BDAT without a transaction: 503, and its octets are still consumed
    # (the QUIT inside is not a command).
    c.send(b"BDAT 6\r\nQUIT\r\n")
    c.expect(503)
    c.cmd("NOOP", 250)
    c.cmd("QUIT", 221)

    eq([strip_received(m) for m in srv.messages("b1@" + DOMAIN)], [to_lf(part1 + part2)], "b1")
    eq([strip_received(m) for m in srv.messages("b2@" + DOMAIN)], [to_lf(part)], "b2")
    eq([strip_received(m) for m in srv.messages("b3@" + DOMAIN)], [b"ab\ncd\n"], "b3")
    rec = received_header(srv.messages("b1@" + DOMAIN)[0])
    check(b" with ESMTP id " in rec, "Received: %r" % rec)


def test_bdat_oversize():
    """BDAT beyond message_size_limit: 552, the octets are read anyway
    (RFC 3030 §4), nothing is delivered and the session continues."""
    srv = Server({"message_size_limit": "1000"})
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<big@example.test>", 250)
    chunk = b"x" * 78 + b"\r\n"
    c.send(b"BDAT 800\r\n" + chunk * 10)
    c.expect(250)
    c.send(b"BDAT 800 LAST\r\n" + chunk * 10)
    c.expect(552, "5.3.4")
    c.cmd("NOOP", 250)
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<small@example.test>", 250)
    c.send(b"BDAT 5 LAST\r\nsmall")
    c.expect(250)
    c.cmd("QUIT", 221)
    eq(srv.new_files("big@" + DOMAIN), [], "oversize BDAT message delivered")
    eq(len(srv.messages("small@" + DOMAIN)), 1, "small message after oversize")


def test_slow_reader_gets_every_reply():
    """A client that pipelines 20,000 NOOPs and reads nothing until it has
    sent them all: the replies (about 300 KiB) overflow the socket buffers,
    so most go out through the bufferevent after a partial send(2); they
    must all arrive, whole and in order, then QUIT's. A client that never
    reads is dropped by the write timeout (smtpd_timeout) and counted.
    (The junk command limit is lifted: here the NOOPs stand for any
    pipelined commands.)"""
    import time as _time
    import urllib.request
    mport = free_port()
    srv = Server({"smtpd_timeout": "2s", "metrics_listen": "127.0.0.1:%d" % mport,
                  "smtpd_junk_command_limit": "1000000"})
    c = Client(srv.port)
    c.ehlo()
    n = 20000
    c.sock.settimeout(30)
    c.send(b"NOOP\r\n" * n + b"QUIT\r\n")
    for i in range(n):
        code, lines = c.reply()
        if code != 250:
            eq(code, 250, "reply %d of %d" % (i + 1, n))
    c.expect(221)
    check(c.closed(), "not closed after QUIT")

    # Never reads: ehlod must stop taking commands (output backpressure),
    # so the client can push only a bounded amount, and ehlod's memory
    # stays bounded; the write timeout then drops it.
    rss0 = srv_rss_kib(srv)
    d = Client(srv.port)
    d.ehlo()
    d.sock.setblocking(False)
    sent, chunk = 0, b"NOOP\r\n" * 10000
    t0 = _time.monotonic()
    while _time.monotonic() - t0 < 1.5:
        try:
            sent += d.sock.send(chunk)
        except BlockingIOError:
            _time.sleep(0.01)
    rss1 = srv_rss_kib(srv)
    print("# non-reading client pushed %d bytes in 1.5 s; ehlod RSS %d -> %d KiB"
          % (sent, rss0, rss1))
    check(sent < 64 * 1024 * 1024, "ehlod kept taking input from a client that "
          "does not read: %d bytes" % sent)
    check(rss1 - rss0 < 32 * 1024, "ehlod grew by %d KiB for one non-reading client"
          % (rss1 - rss0))
    d.sock.setblocking(True)
    srv.wait_log("timeout after", timeout=15)
    check("(not reading replies)" in srv.maillog(), "the timeout line does not say why")
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
        metrics = r.read().decode()
    check("\nehlo_smtpd_output_blocked_total 1\n" in metrics,
          "output_blocked counter is not 1: %r" % [l for l in metrics.splitlines()
                                                   if "output_blocked" in l])
    # Dropped, not left waiting to flush a 421 it will never read: the
    # session is gone while the client still holds its socket open.
    check("\nehlo_smtpd_sessions_active 0\n" in metrics,
          "the non-reading client's session is still open: %r" % [
              l for l in metrics.splitlines() if l.startswith("ehlo_smtpd_sessions_active")])
    check(_time.monotonic() - t0 < 12, "the non-reading client was not dropped in time")
    d.close()


def test_many_flooding_clients_stay_small():
    """100 clients that pipeline NOOPs without ever reading a reply: each
    session holds at most the read watermark of input and the output bound
    of replies, about 115-130 KiB in all (it was about 350 KiB with a
    256 KiB watermark: 3.3 GiB for smtpd_max_connections = 10000)."""
    import socket as _socket
    import time as _time
    n = 100
    srv = Server({"smtpd_timeout": "60s", "smtpd_client_connection_count_limit": "0",
                  "smtpd_junk_command_limit": "100000000"})
    rss0 = srv_rss_kib(srv)
    socks = []
    for _ in range(n):
        s = _socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        socks.append(s)
    _time.sleep(0.3)
    for s in socks:
        try:
            s.send(b"EHLO c\r\n" + b"NOOP\r\n" * 200000)
        except (BlockingIOError, OSError):
            pass
    chunk = b"NOOP\r\n" * 20000
    t0 = _time.monotonic()
    while _time.monotonic() - t0 < 6:
        for s in socks:
            try:
                s.send(chunk)
            except (BlockingIOError, OSError):
                pass
        _time.sleep(0.2)
    check(srv.running(), "ehlod died under the flood: %s" % srv.read_err()[-500:])
    per = (srv_rss_kib(srv) - rss0) / n
    print("# %d non-reading flooding clients: ehlod grew by %.0f KiB per session" % (n, per))
    if asan_build():
        # ASan's allocator (redzones, quarantine, shadow) makes RSS
        # measure itself, not ehlod's buffers: about 3 MiB per session.
        print("# ASan build: the per-session bound is checked in the plain build")
    else:
        check(per < 200, "ehlod grew by %.0f KiB per non-reading session" % per)
    for s in socks:
        s.close()


def _tls_flooders(srv, n, implicit):
    """n clients with small receive buffers, each through a TLS handshake
    (on the submissions listener, or STARTTLS on the smtp one), then
    non-blocking. Returns the TLS sockets."""
    import socket as _socket
    from tlscommon import client_context
    from ehlotest import HOSTNAME
    ctx = client_context(verify=False)
    socks = []
    for _ in range(n):
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        s.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", srv.sub_port if implicit else srv.port))
        if not implicit:
            c = Client.__new__(Client)
            c.sock, c.buf = s, b""
            c.expect(220)
            c.ehlo()
            c.cmd("STARTTLS", 220)
        t = ctx.wrap_socket(s, server_hostname=HOSTNAME)
        t.setblocking(False)
        socks.append(t)
    return socks


def _tls_send(socks, chunk, seconds):
    """Send chunk on every socket for that long without ever reading.
    A TLS write that would block must be retried with the same bytes,
    which every retry here is. Returns the octets sent."""
    import ssl as _ssl
    import time as _time
    sent = 0
    t0 = _time.monotonic()
    while _time.monotonic() - t0 < seconds:
        progress = False
        for s in socks:
            try:
                sent += s.send(chunk)
                progress = True
            except (_ssl.SSLWantWriteError, _ssl.SSLWantReadError, BlockingIOError):
                pass
            except OSError:
                pass
        if not progress:
            _time.sleep(0.01)
    return sent


def _tls_flooding_clients_stay_small(implicit):
    from tlscommon import TlsServer
    n = 20
    srv = TlsServer({"smtpd_timeout": "60s", "smtpd_client_connection_count_limit": "0",
                     "smtpd_junk_command_limit": "100000000"}, submissions=implicit)
    socks = _tls_flooders(srv, n, implicit)
    rss0 = srv_rss_kib(srv)
    sent = _tls_send(socks, b"EHLO x\r\n" * 1024, 6)
    check(srv.running(), "ehlod died under the flood: %s" % srv.read_err()[-500:])
    per = (srv_rss_kib(srv) - rss0) / n
    print("# %d non-reading TLS (%s) flooding clients pushed %.1f MB: ehlod grew by "
          "%.0f KiB per session" % (n, "implicit" if implicit else "STARTTLS",
                                    sent / 1e6, per))
    if asan_build():
        print("# ASan build: the per-session bound is checked in the plain build")
    else:
        # The same 32 KiB in and 64 KiB out, with ciphertext beside the
        # plaintext and OpenSSL's record buffers: about 220 KiB measured.
        check(per < 320, "ehlod grew by %.0f KiB per non-reading TLS session" % per)
    for s in socks:
        s.close()


def test_tls_flooding_clients_stay_small_implicit():
    """test_many_flooding_clients_stay_small over implicit TLS: the bounds
    (32 KiB of input, 64 KiB of output) hold on the whole bufferevent
    chain. They held only on the plain socket: a TLS session took all the
    input and queued every reply under the filter (5 MB per session here,
    350 MB for one faster client), and the filter's read callback, with a
    full input, must not spin either."""
    _tls_flooding_clients_stay_small(True)


def test_tls_flooding_clients_stay_small_starttls():
    """The same after STARTTLS."""
    _tls_flooding_clients_stay_small(False)


def test_tls_busy_session_input_bounded():
    """While a RCPT decision waits for DNS that never answers, a TLS client
    floods NOOPs: the filter's input stops at the read watermark as a
    plain session's does (it took 100 MB)."""
    import socket as _socket
    from tlscommon import TlsServer
    sink = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)   # swallows queries
    sink.bind(("127.0.0.1", 0))
    srv = TlsServer({"dns_forwarders": "127.0.0.1@%d" % sink.getsockname()[1],
                     "dns_timeout": "10s", "helo_check_resolves": "reject",
                     "smtpd_timeout": "60s", "smtpd_junk_command_limit": "100000000"},
                    submissions=True)
    socks = _tls_flooders(srv, 1, True)
    t = socks[0]
    t.setblocking(True)
    t.settimeout(10)
    t.sendall(b"EHLO nonexistent.example.org\r\nMAIL FROM:<a@b.example>\r\n"
              b"RCPT TO:<u@%s>\r\n" % DOMAIN.encode())
    t.setblocking(False)
    rss0 = srv_rss_kib(srv)
    sent = _tls_send(socks, b"NOOP\r\n" * 10000, 4)
    grew = srv_rss_kib(srv) - rss0
    print("# a busy TLS session's client pushed %.1f MB; ehlod grew by %d KiB"
          % (sent / 1e6, grew))
    check(sent < 32 * 1024 * 1024, "ehlod kept reading a busy TLS session: %d bytes" % sent)
    if not asan_build():
        check(grew < 4 * 1024, "ehlod grew by %d KiB for one busy TLS session" % grew)
    t.close()
    sink.close()


def test_tls_client_not_reading_is_dropped():
    """A TLS client that never reads is cut by the write timeout as in
    plaintext (test_slow_reader_gets_every_reply), once the replies wait
    in the socket bufferevent under the filter."""
    import time as _time
    from tlscommon import TlsServer
    srv = TlsServer({"smtpd_timeout": "2s", "smtpd_junk_command_limit": "100000000"},
                    submissions=True)
    socks = _tls_flooders(srv, 1, True)
    t0 = _time.monotonic()
    sent = _tls_send(socks, b"NOOP\r\n" * 10000, 1.5)
    check(sent < 64 * 1024 * 1024, "ehlod kept taking input from a TLS client that "
          "does not read: %d bytes" % sent)
    srv.wait_log("timeout after", timeout=15)
    check("(not reading replies)" in srv.maillog(), "the timeout line does not say why")
    srv.wait_log(" disconnect from ", timeout=5)
    check(_time.monotonic() - t0 < 12, "the non-reading TLS client was not dropped in time")
    socks[0].close()


def srv_rss_kib(srv):
    with open("/proc/%d/status" % srv.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main(globals())
