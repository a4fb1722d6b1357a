#!/usr/bin/python3
"""
The greeting: smtpd_greet_pause and the pre-greeting talker (a client that
sends before the 220 is not an SMTP client: RFC 5321 §3.1, §4.3.1), and
the recipient limit (RFC 5321 §4.5.3.1.8: 452 4.5.3, never below 100 by
default).
"""
import socket
import time

from ehlotest import Server, Client, check, eq, main, DOMAIN


def raw(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(10)
    return s


def read_all(s, until=b"\n", limit=5.0):
    data, deadline = b"", time.monotonic() + limit
    while until not in data and time.monotonic() < deadline:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_greet_pause_delays_greeting():
    srv = Server({"smtpd_greet_pause": "700ms"})
    t0 = time.monotonic()
    c = Client(srv.port)
    waited = time.monotonic() - t0
    check(waited >= 0.6, "greeting came after %.3f s, before the 700 ms pause" % waited)
    c.ehlo()
    c.cmd("QUIT", 221)


def test_pregreet_logged_then_served():
    """Default action log: the early bytes are logged, then served after
    the greeting (a well-behaved pipelining client is not punished)."""
    srv = Server({"smtpd_greet_pause": "500ms"})
    s = raw(srv.port)
    s.sendall(b"EHLO early.example.test\r\n")
    data = read_all(s, b"250 CHUNKING\r\n")
    check(data.startswith(b"220 "), "no greeting first: %r" % data[:80])
    check(b"250 CHUNKING\r\n" in data, "early EHLO not answered after the greeting: %r" % data)
    s.close()
    line = srv.wait_log("PREGREET")
    check("EHLO early.example.test" in line, "pregreet log line lacks the data: %r" % line)


def test_pregreet_rejected():
    srv = Server({"smtpd_greet_pause": "500ms", "smtpd_pregreet_action": "reject"})
    s = raw(srv.port)
    s.sendall(b"EHLO early.example.test\r\nMAIL FROM:<a@x.test>\r\n")
    data = read_all(s, b"\n")
    check(data.startswith(b"554 5.5.1 "), "pre-greeting talker not refused with 554: %r" % data)
    check(b"220" not in data, "a 220 greeting was sent to a pre-greeting talker: %r" % data)
    rest = read_all(s, b"never", 3.0)
    eq(rest, b"", "data after the 554 (the connection should close)")
    s.close()
    srv.wait_log("PREGREET")


def test_no_pause_no_pregreet():
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    c.cmd("QUIT", 221)
    check("PREGREET" not in srv.maillog(), "PREGREET logged for a client that waited")


def test_pregreet_without_pause_burst():
    """No greet pause: clients that send EHLO the moment they connect. Their
    bytes are often in the socket before ehlod has even set the session up,
    where the pre-greeting check must find them (it used to look for them
    in the still empty input buffer, got NULL, and crashed ehlod with
    SIGSEGV). Each is logged, gets its greeting and then its EHLO reply."""
    srv = Server({"smtpd_client_connection_count_limit": "0"})
    socks = []
    for _ in range(60):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(b"EHLO early.example.test\r\n")
        socks.append(s)
    for i, s in enumerate(socks):
        s.settimeout(10)
        data = read_all(s, b"250 CHUNKING\r\n")
        check(data.startswith(b"220 ") and b"250 CHUNKING\r\n" in data,
              "client %d: greeting and EHLO reply expected, got %r" % (i, data[:120]))
        s.close()
    check(srv.running(), "ehlod died: %s" % srv.read_err()[-500:])
    early = srv.maillog().count("PREGREET")
    print("# %d of %d burst clients were seen talking before the greeting" % (early, len(socks)))
    check(early > 0, "no client of the burst was caught before the greeting")

    # smtpd_pregreet_action = reject, no pause: those caught get 554, not 220.
    srv = Server({"smtpd_client_connection_count_limit": "0",
                  "smtpd_pregreet_action": "reject"})
    socks = []
    for _ in range(30):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(b"EHLO early.example.test\r\n")
        socks.append(s)
    refused = 0
    for s in socks:
        s.settimeout(10)
        data = read_all(s, b"\n")
        check(data.startswith(b"554 5.5.1 ") or data.startswith(b"220 "),
              "neither 554 nor the greeting: %r" % data[:120])
        refused += data.startswith(b"554 5.5.1 ")
        s.close()
    check(srv.running(), "ehlod died: %s" % srv.read_err()[-500:])
    print("# %d of %d burst clients refused with 554" % (refused, len(socks)))
    check(refused > 0, "no client of the burst was refused before the greeting")


def test_recipient_limit():
    srv = Server({"smtpd_recipient_limit": "100"})
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    # All 101 in one pipelined group: 100 accepted, the 101st gets 452.
    c.send(b"".join(b"RCPT TO:<r%d@%s>\r\n" % (i, DOMAIN.encode()) for i in range(101)))
    codes = [c.reply()[0] for _ in range(101)]
    eq(codes[:100], [250] * 100, "the first 100 recipients")
    eq(codes[100], 452, "the 101st recipient")
    c.cmd("DATA", 354)
    c.send(b"Subject: many\r\n\r\nhi\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    eq(len(srv.messages("r99@" + DOMAIN)), 1, "messages for the 100th recipient")
    eq(len(srv.messages("r100@" + DOMAIN)), 0, "messages for the refused 101st recipient")


def test_recipient_overshoot_is_not_an_error():
    """150 recipients pipelined with DATA under a limit of 100: 50 x 452
    (RFC 5321 §4.5.3.1.10: the client sends them later), then 354 and the
    message for the 100. The 452s counted as errors: the 20th reached
    smtpd_hard_error_limit, and the 421 lost the accepted recipients.
    smtpd_recipient_overshoot_limit (Postfix's, 1000) bounds them."""
    srv = Server({"smtpd_recipient_limit": "100"})
    c = Client(srv.port)
    c.ehlo()
    c.send(b"MAIL FROM:<a@sender.test>\r\n" +
           b"".join(b"RCPT TO:<o%d@%s>\r\n" % (i, DOMAIN.encode()) for i in range(150)) +
           b"DATA\r\n")
    codes = [c.reply()[0] for _ in range(152)]
    eq((codes[0], codes[1:101].count(250), codes[101:151].count(452), codes[151]),
       (250, 100, 50, 354), "MAIL, 100 x 250, 50 x 452, DATA")
    c.send(b"Subject: overshoot\r\n\r\nhi\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    eq(len(srv.messages("o99@" + DOMAIN)), 1, "messages for the 100th recipient")


if __name__ == "__main__":
    main(globals())
