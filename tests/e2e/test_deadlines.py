#!/usr/bin/python3
"""
Slow clients cannot hold a session (smtpd_per_request_deadline, on by
default): a command line must be complete within smtpd_timeout of the
reply before it, message content (DATA, or a BDAT chunk) within
smtpd_data_timeout plus a second per smtpd_min_data_rate octets, and a
TLS handshake within smtpd_tls_handshake_timeout, however the client
spreads its octets.  A read timeout alone restarts with every octet, so
a client sending one octet now and then (slowloris) kept its session,
its buffers and its connection slot for ever; the control case with the
setting off shows exactly that.  Chatter is bounded too:
smtpd_junk_command_limit turns NOOP/RSET/VRFY/EXPN/HELP beyond the limit
into errors.
"""
import select
import socket
import ssl
import time
import urllib.request

from ehlotest import Server, Client, check, eq, main, free_port, DOMAIN


def trickle(c, data, every, limit):
    """Sends data one octet at a time, `every` seconds apart, for at most
    `limit` seconds, stopping as soon as ehlod says something or closes.
    Returns the seconds from the start to that moment, or None if ehlod
    stayed silent until the octets or the time ran out."""
    t0 = time.monotonic()
    for i in range(len(data)):
        if time.monotonic() - t0 > limit:
            return None
        try:
            c.sock.sendall(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0
        r, _, _ = select.select([c.sock], [], [], every)
        if r:
            return time.monotonic() - t0
    return None


def expect_cut(srv, c, dt, what, after):
    """The trickle of `what` was cut at its 2 s deadline (dt from
    trickle()): 421 4.4.2, the connection closed, and the log line naming
    the command the session was cut after."""
    check(dt is not None, "a trickled %s held the session for 12 s" % what)
    check(1.5 <= dt <= 4.5, "%s cut after %.2f s, deadline 2 s" % (what, dt))
    c.expect(421, "4.4.2")
    check(c.closed(), "connection not closed after the %s deadline" % what)
    srv.wait_log("timeout after %s from unknown[127.0.0.1] (request deadline: " % after)


def test_trickled_command_line_cut_at_deadline():
    """A command line sent an octet every 0.25 s never lets the 2 s read
    timeout fire; the deadline ends it about 2 s after the EHLO reply."""
    srv = Server({"smtpd_timeout": "2s"})
    c = Client(srv.port)
    c.ehlo()
    line = b"MAIL FROM:<" + b"t" * 60 + b"@sender.test>\r\n"
    dt = trickle(c, line, 0.25, 12)
    expect_cut(srv, c, dt, "command line", "EHLO")

    # The control: with the deadline off, the same trickle outlives the
    # timeout several times over (the behaviour this setting fixes).
    off = Server({"smtpd_timeout": "2s", "smtpd_per_request_deadline": "no"})
    c = Client(off.port)
    c.ehlo()
    dt = trickle(c, line[:40], 0.25, 6)
    check(dt is None, "without the deadline the trickle was cut after %s s" % dt)
    c.send(line[40:])
    c.expect(250)
    c.cmd("QUIT", 221)


def test_time_runs_from_the_reply():
    """The client's time for a command starts at the reply before it: a
    client that waits most of smtpd_timeout and then sends its command in
    a few pieces is cut at the deadline, while one that sends each of
    several commands slowly but within the time gets through them all."""
    srv = Server({"smtpd_timeout": "2s"})
    c = Client(srv.port)
    c.ehlo()
    for _ in range(4):                 # 4 commands, 1.2 s each: 4.8 s in all
        c.send(b"NO")
        time.sleep(0.6)
        c.send(b"O")
        time.sleep(0.6)
        c.send(b"P\r\n")
        c.expect(250)
    time.sleep(1.6)
    c.send(b"NO")
    time.sleep(0.3)
    c.send(b"O")
    t0 = time.monotonic()
    c.expect(421, "4.4.2")
    check(time.monotonic() - t0 < 1.0, "the deadline did not count from the last reply")


def test_trickled_data_cut_but_steady_data_delivered():
    """Content earns a second per smtpd_min_data_rate octets on top of
    smtpd_data_timeout: 4 octets a second is cut after about 2 s, and
    nothing is delivered; 40 KB sent at about 10 KB/s for 4 s, twice the
    data timeout, is delivered."""
    srv = Server({"smtpd_data_timeout": "2s", "smtpd_min_data_rate": "500"})
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<slow@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    dt = trickle(c, b"Subject: slow\r\n\r\n" + b"x" * 100, 0.25, 12)
    expect_cut(srv, c, dt, "DATA", "DATA")
    eq(srv.messages("slow@" + DOMAIN), [], "messages from the trickled DATA")

    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<steady@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: steady\r\n\r\n")
    for _ in range(20):
        c.send((b"y" * 78 + b"\r\n") * 25)     # 2,000 octets every 0.2 s
        time.sleep(0.2)
    c.send(b".\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    eq(len(srv.messages("steady@" + DOMAIN)), 1, "messages from the steady slow DATA")


def test_trickled_bdat_chunk_cut():
    """A BDAT chunk is content too: its octets trickled in are cut at the
    deadline, and the chunk is not delivered."""
    srv = Server({"smtpd_data_timeout": "2s"})
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<chunk@%s>" % DOMAIN, 250)
    c.send(b"BDAT 200 LAST\r\n")
    dt = trickle(c, b"z" * 200, 0.25, 12)
    expect_cut(srv, c, dt, "BDAT chunk", "BDAT")
    eq(srv.messages("chunk@" + DOMAIN), [], "messages from the trickled chunk")


def client_hello():
    """The first flight of a TLS client, as bytes (nothing is sent)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="mx.example.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def test_trickled_tls_handshake_cut():
    """After STARTTLS, a ClientHello sent an octet every 0.25 s keeps the
    2 s handshake timeout fresh; the handshake's deadline closes the
    connection about 2 s after the 220."""
    mport = free_port()
    srv = Server({"smtpd_tls_handshake_timeout": "2s",
                  "metrics_listen": "127.0.0.1:%d" % mport})
    c = Client(srv.port)
    c.ehlo()
    c.cmd("STARTTLS", 220)
    hello = client_hello()
    check(len(hello) > 40, "no ClientHello made")
    dt = trickle(c, hello, 0.25, 12)
    check(dt is not None, "a trickled TLS handshake held the session for 12 s")
    check(1.5 <= dt <= 4.5, "handshake cut after %.2f s, smtpd_tls_handshake_timeout 2s" % dt)
    check(c.closed(), "connection not closed after the handshake deadline")
    srv.wait_log("TLS handshake timeout from unknown[127.0.0.1] (deadline)")
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10) as r:
        text = r.read().decode()
    check("\nehlo_smtpd_deadline_timeouts_total 1\n" in text,
          "ehlo_smtpd_deadline_timeouts_total is not 1")


def test_junk_commands_become_errors():
    """smtpd_junk_command_limit: 3 NOOP/RSET/VRFY are free, each further
    one is an error, and with smtpd_hard_error_limit 2 the second of
    those ends the session with 421; an accepted message starts the
    count again."""
    srv = Server({"smtpd_junk_command_limit": "3", "smtpd_hard_error_limit": "2"})
    c = Client(srv.port)
    c.ehlo()
    for verb in ("NOOP", "RSET", "NOOP"):
        c.cmd(verb, 250)
    c.send_message("a@sender.test", ["junk@" + DOMAIN], b"Subject: j\r\n\r\nj")
    for verb in ("NOOP", "RSET", "VRFY someone"):
        c.cmd(verb)
    c.cmd("NOOP", 250)                 # the first over the limit: error 1
    c.cmd("NOOP", 250)                 # error 2: the limit
    c.expect(421, "4.7.0")
    check(c.closed(), "connection not closed after the junk commands")
    srv.wait_log("too many errors after NOOP from")


def test_error_limit_logged_and_counted():
    """The 421 of smtpd_hard_error_limit has its own log line, as
    Postfix's "too many errors after ... from ...", and a counter; there
    was only the disconnect line."""
    mport = free_port()
    srv = Server({"smtpd_hard_error_limit": "5", "metrics_listen": "127.0.0.1:%d" % mport})
    c = Client(srv.port)
    c.ehlo()
    for _ in range(4):
        c.cmd("FOO", 500)
    c.cmd("FOO", 500)
    c.expect(421, "4.7.0")
    line = srv.wait_log("too many errors after")
    check(" too many errors after UNKNOWN from unknown[127.0.0.1]" in line, "line: %r" % line)
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10) as r:
        text = r.read().decode()
    check("\nehlo_smtpd_error_limit_disconnects_total 1\n" in text,
          "counter: %r" % [l for l in text.splitlines() if "error_limit" in l])


def test_error_limit_after_a_delivery_failure_logged():
    """The 421 can follow a reply that waited for the spool (a delivery
    that failed, 451): it is logged and counted there too (it was not)."""
    import os
    srv = Server({"smtpd_hard_error_limit": "1"})
    os.makedirs(os.path.join(srv.mailbase, DOMAIN), exist_ok=True)
    with open(os.path.join(srv.mailbase, DOMAIN, "bad"), "w"):
        pass                            # a file where the Maildir should be
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<bad@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    c.expect(451)
    c.expect(421, "4.7.0")
    srv.wait_log("too many errors after DATA from")


if __name__ == "__main__":
    main(globals())
