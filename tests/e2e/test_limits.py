#!/usr/bin/python3
"""
Command-level behaviour over a raw socket: line limits (RFC 5321
§4.5.3.1.4), NUL and bare line ends in commands, the error limit, the
per-client and total connection limits, the command and DATA timeouts,
HELO versus EHLO, the EHLO keyword list and smtpd_discard_ehlo_keywords,
503 sequencing, and which recipients are accepted (local domains,
virtual_mailbox_maps, postmaster).
"""
import os
import re
import select
import socket
import time

from ehlotest import (Server, Client, check, eq, fail, free_port, main, received_header, strip_received,
                      wait_until, DOMAIN)


def test_command_line_length():
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    # 512 octets including CRLF is the limit; NOOP takes an argument.
    c.send(b"NOOP " + b"x" * (512 - 5 - 2) + b"\r\n")
    c.expect(250)
    c.send(b"NOOP " + b"x" * (513 - 5 - 2) + b"\r\n")
    c.expect(500, "5.5.2")
    c.cmd("NOOP", 250)
    # A 100 KiB line: one 500, consumed to its CRLF, nothing of it executed.
    c.send(b"NOOP " + b"QUIT\r\n".replace(b"\r\n", b" ") * (100 * 1024 // 5) + b"\r\n")
    c.expect(500, "5.5.2")
    c.cmd("NOOP", 250)
    # A long MAIL line is refused and leaves no transaction behind (MAIL
    # may have 664 octets here: 512 and the room of SIZE, SMTPUTF8, DSN).
    c.send(b"MAIL FROM:<" + b"a" * 700 + b"@sender.test>\r\n")
    c.expect(500, "5.5.2")
    c.cmd("RCPT TO:<bob@%s>" % DOMAIN, 503)
    # RFC 3461 §4 lengthens RCPT for ORCPT (up to 500 octets): 522 octets
    # is a good line with DSN offered; it got 500 "line too long".
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    line = b"RCPT TO:<bob@%s> ORCPT=rfc822;" % DOMAIN.encode()
    line += b"a" * (522 - 2 - len(line)) + b"\r\n"
    eq(len(line), 522, "RCPT line length")
    c.send(line)
    c.expect(250)
    c.send(b"RCPT TO:<bob@%s> " % DOMAIN.encode() + b"x" * 1100 + b"\r\n")
    c.expect(500, "5.5.2")
    c.cmd("RSET", 250)
    c.cmd("QUIT", 221)


def test_nul_and_bare_line_ends_in_commands():
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    c.send(b"NOOP a\x00b\r\n")
    c.expect(500, "5.5.2")
    c.send(b"NOOP\n")
    c.expect(500, "5.5.2")
    # The line a bare LF ends is refused, not executed: the RCPT after it
    # finds no transaction.
    c.send(b"MAIL FROM:<a@sender.test>\nRCPT TO:<b@example.test>\r\n")
    c.expect(500, "5.5.2")
    c.expect(503, "5.5.1")
    c.cmd("NOOP", 250)
    c.cmd("QUIT", 221)

    # smtpd_forbid_bare_newline = normalize takes a command line ended by
    # a bare LF as Postfix does (it was refused whatever the setting); a
    # bare CR inside one and a NUL are still refused.
    srv = Server({"smtpd_forbid_bare_newline": "normalize"})
    c = Client(srv.port)
    c.send(b"EHLO client.example.test\n")
    c.expect(250)
    c.send(b"MAIL FROM:<a@sender.test>\nRCPT TO:<lf@%s>\nDATA\n" % DOMAIN.encode())
    c.expect(250)
    c.expect(250)
    c.expect(354)
    c.send(b"Subject: lf\r\n\r\nbody\r\n.\r\n")
    c.expect(250)
    c.send(b"NOOP a\rb\n")
    c.expect(500, "5.5.2")
    c.send(b"NOOP a\x00b\n")
    c.expect(500, "5.5.2")
    c.send(b"QUIT\n")
    c.expect(221)
    eq(len(srv.messages("lf@" + DOMAIN)), 1, "messages sent with bare-LF commands")


def test_error_limit():
    srv = Server({"smtpd_hard_error_limit": "3"})
    c = Client(srv.port)
    c.ehlo()
    for _ in range(2):
        c.cmd("BOGUS", 500)
    c.send(b"BOGUS\r\nNOOP\r\n")
    # The third error: its own 500 may or may not come first; then 421 and close.
    code, lines = c.reply()
    if code == 500:
        code, lines = c.reply()
    eq(code, 421, "reply after the error limit")
    check("4.7.0" in lines[0], "421 without 4.7.0: %r" % lines)
    check(c.closed(), "connection not closed after the error limit")
    check(b"250" not in c.buf, "NOOP after the error limit was answered: %r" % c.buf)


def wait_admitted(srv, source=None):
    """Wait until a new connection (from source) gets the 220 greeting:
    an ended session gives its place back asynchronously."""
    def admitted():
        e = Client(srv.port, greeting=False, source=source)
        code, _ = e.reply()
        e.close()
        return code == 220
    wait_until(admitted, 10, step=0.2, what="a new session once one of two ended")


def test_connection_limit_per_client():
    srv = Server({"smtpd_client_connection_count_limit": "2"})
    a = Client(srv.port)
    b = Client(srv.port)
    d = Client(srv.port, greeting=False)
    d.expect(421, "4.7.0")
    check(d.closed(), "over-limit connection not closed")
    # The two admitted sessions work; once one ends, a new one is admitted.
    a.ehlo()
    b.ehlo()
    a.cmd("QUIT", 221)
    check(a.closed(), "QUIT did not close")
    wait_admitted(srv)
    b.cmd("NOOP", 250)


def proxied(srv, src, sport):
    """A session from the trusted proxy 127.0.0.1 for the client src."""
    c = Client(srv.port, greeting=False)
    c.send(("PROXY TCP4 %s 127.0.0.1 %d 25\r\n" % (src, sport)).encode())
    return c


def test_connection_limit_behind_proxy():
    """Behind a trusted PROXY sender the limit counts the clients the
    headers name, not the proxy: sessions that ended give their count back
    (they used to stay counted under the proxy, which was then refused
    after smtpd_client_connection_count_limit sessions in all), and one
    client over the limit is refused while the others are not."""
    srv = Server({"smtpd_client_connection_count_limit": "2",
                  "smtpd_upstream_proxy_hosts": "127.0.0.1"})
    for i in range(6):
        c = proxied(srv, "192.0.2.%d" % (i + 1), 40000 + i)
        c.expect(220)
        c.cmd("QUIT", 221)
        check(c.closed(), "QUIT did not close")
    held = [proxied(srv, "192.0.2.50", 41000 + i) for i in range(2)]
    for c in held:
        c.expect(220)
    over = proxied(srv, "192.0.2.50", 41002)
    over.expect(421, "4.7.0")
    check(over.closed(), "over-limit proxied session not closed")
    other = proxied(srv, "192.0.2.51", 41003)
    other.expect(220)
    other.cmd("QUIT", 221)
    # A direct client of the proxy host (no header) counts as itself.
    direct = Client(srv.port)
    direct.cmd("QUIT", 221)
    check("reject: CONNECT from unknown[192.0.2.50]: 421 4.7.0" in srv.maillog(),
          "no reject line for the proxied client")


def test_connection_limit_per_network():
    """smtpd_client_ipv4_prefix_length = 24: 127.0.0.2 and 127.0.0.3 are
    one client; 127.0.1.2 is another."""
    srv = Server({"smtpd_client_connection_count_limit": "2",
                  "smtpd_client_ipv4_prefix_length": "24"})
    a = Client(srv.port, source=("127.0.0.2", 0))
    b = Client(srv.port, source=("127.0.0.3", 0))
    c = Client(srv.port, greeting=False, source=("127.0.0.4", 0))
    c.expect(421, "4.7.0")
    d = Client(srv.port, source=("127.0.1.2", 0))
    for x in (a, b, d):
        x.cmd("QUIT", 221)
    # With each address on its own (the default), all three are admitted.
    srv2 = Server({"smtpd_client_connection_count_limit": "2"})
    held = [Client(srv2.port, source=("127.0.0.%d" % i, 0)) for i in (2, 3, 4)]
    for x in held:
        x.cmd("QUIT", 221)


def test_command_timeout():
    srv = Server({"smtpd_timeout": "1s"})
    c = Client(srv.port)
    c.ehlo()
    t0 = time.monotonic()
    c.expect(421, "4.4.2")
    elapsed = time.monotonic() - t0
    check(0.8 <= elapsed <= 5, "timeout after %.2fs, configured 1s" % elapsed)
    check(c.closed(), "connection not closed after the timeout")
    srv.wait_log("timeout after EHLO from unknown[127.0.0.1]")


def test_data_timeout_apart_from_command_timeout():
    """smtpd_data_timeout, not smtpd_timeout, bounds a read inside DATA
    (3 minutes per data block, RFC 5321 §4.5.3.2.5's client value, against
    the 5 minutes §4.5.3.2.7 asks of a server awaiting a command): a transfer that pauses longer than the command timeout but
    less than the data timeout is delivered, and the other way round a
    stall is cut at the data timeout."""
    srv = Server({"smtpd_timeout": "1s", "smtpd_data_timeout": "4s"})
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<pause@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: pause\r\n\r\nfirst half, ")
    time.sleep(2.0)                            # over smtpd_timeout, under the data timeout
    c.send(b"second half\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    eq(len(srv.messages("pause@" + DOMAIN)), 1, "messages after a pause inside DATA")

    srv2 = Server({"smtpd_timeout": "5s", "smtpd_data_timeout": "1s"})
    c = Client(srv2.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<stall@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: stall\r\n\r\n")
    t0 = time.monotonic()
    c.expect(421, "4.4.2")
    dt = time.monotonic() - t0
    check(0.8 <= dt < 3.5, "DATA stall cut after %.2fs (smtpd_data_timeout 1s, smtpd_timeout 5s)" % dt)
    check(c.closed(), "connection not closed after the DATA timeout")


def test_connection_limit_total():
    """smtpd_max_connections bounds the sessions of all clients together:
    the one over it gets 421 4.7.0 and is closed, and an ended session
    frees its place. The per-client limit is off, so only the total
    counts."""
    srv = Server({"smtpd_max_connections": "2", "smtpd_client_connection_count_limit": "0"})
    a = Client(srv.port, source=("127.0.0.2", 0))
    b = Client(srv.port, source=("127.0.0.3", 0))
    over = Client(srv.port, greeting=False, source=("127.0.0.4", 0))
    over.expect(421, "4.7.0")
    check(over.closed(), "connection over smtpd_max_connections not closed")
    a.ehlo()
    b.ehlo()
    a.cmd("QUIT", 221)
    check(a.closed(), "QUIT did not close")
    wait_admitted(srv, source=("127.0.0.5", 0))
    b.cmd("NOOP", 250)
    b.cmd("QUIT", 221)


def test_out_of_descriptors():
    """With more clients than descriptors (a 64-descriptor limit, 100
    connections), accept(2) fails with EMFILE while the connection stays in
    the backlog: ehlod spun on it at full CPU writing 400,000 log lines a
    second. It must rest instead (little CPU, a few log lines), warn at
    start that the limit is below smtpd_max_connections, count the errors,
    and greet the waiting clients once descriptors are free again."""
    import urllib.request
    mport = free_port()
    srv = Server({"smtpd_client_connection_count_limit": "0", "smtpd_workers": "1",
                  "smtpd_tls_security_level": "none",
                  "metrics_listen": "127.0.0.1:%d" % mport}, start=False)
    srv.nofile = 64
    srv.start()
    srv.wait_log("the open-file limit (64) is below smtpd_max_connections (10000)")

    def cpu_s():
        with open("/proc/%d/stat" % srv.pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    cpu0, lines0 = cpu_s(), len(srv.maillog().splitlines())
    socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(100)]
    time.sleep(2)
    cpu = cpu_s() - cpu0
    lines = len(srv.maillog().splitlines()) - lines0
    print("# 100 clients, 64 descriptors: %.2f s of CPU and %d log lines in 2 s" % (cpu, lines))
    check(cpu < 0.5, "ehlod used %.2f s of CPU in 2 s out of descriptors" % cpu)
    check(lines < 200, "%d log lines in 2 s out of descriptors" % lines)
    for s in socks[:40]:
        s.close()
    # The waiting clients are greeted as descriptors come free (at most
    # as many as were freed; the rest still wait).
    waiting, greeted, t0 = set(socks[40:]), 0, time.monotonic()
    while waiting and greeted < 40 and time.monotonic() - t0 < 10:
        ready, _, _ = select.select(list(waiting), [], [], 0.5)
        for s in ready:
            waiting.discard(s)
            try:
                greeted += s.recv(100).startswith(b"220")
            except OSError:
                pass
    check(greeted >= 30, "only %d of the waiting clients were greeted" % greeted)
    for s in socks[40:]:
        s.close()
    time.sleep(0.5)
    # (the metrics listener was out of descriptors too until now)
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10) as r:
        m = re.search(r"^ehlo_smtpd_accept_errors_total (\d+)", r.read().decode(), re.M)
    check(m and int(m.group(1)) > 0, "accept errors not counted")


def test_peer_stops_mid_command_and_mid_data():
    """A half-sent command line, or a DATA transfer that stalls, cannot
    hold a session: 421 4.4.2 at the configured timeout, then close, and
    nothing of the unfinished message is delivered."""
    srv = Server({"smtpd_timeout": "1s", "smtpd_data_timeout": "1s"})
    c = Client(srv.port)
    c.ehlo()
    c.send(b"MAIL FROM:<half@sender")          # no CRLF, then silence
    t0 = time.monotonic()
    c.expect(421, "4.4.2")
    check(time.monotonic() - t0 <= 5, "no timeout for a half-sent command line")
    check(c.closed(), "connection not closed after the timeout")
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<stall@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: stalled\r\n\r\npart of a body")
    c.expect(421, "4.4.2")
    check(c.closed(), "connection not closed after the DATA timeout")
    srv.wait_log("timeout after DATA")
    eq(srv.messages("stall@" + DOMAIN), [], "messages from the stalled transfer")


def test_long_address_in_reply():
    """RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with its
    CRLF. An address quoted in a reply is escaped (each octet of "\u00fc"
    becomes \\xNN, four times its size), so a 251-octet one made a
    634-octet "554 5.7.1 <...>: Relay access denied" line, cut inside an
    escape. It is now shortened, between whole characters, with "..."."""
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test> SMTPUTF8", 250)
    label = "\u00fc" * 31                       # 62 octets
    addr = "\u00fc" * 32 + "@" + ".".join([label, label]) + "." + "\u00fc" * 27 + "a.test"
    eq(len(addr.encode()), 251, "address length")
    c.send(b"RCPT TO:<" + addr.encode() + b">\r\n")
    raw = c._readline() + b"\n"
    check(len(raw) <= 512, "reply line of %d octets: %r" % (len(raw), raw[:80]))
    check(raw.startswith(b"554 5.7.1 <") and raw.endswith(b"...>: Relay access denied\r\n"),
          "reply: %r" % raw)
    quoted = raw[len(b"554 5.7.1 <"):-len(b"...>: Relay access denied\r\n")]
    local, _, domain = quoted.partition(b"@")
    u = b"\\xc3\\xbc"
    check(local == u * 32 and len(domain) > 64 and domain == u * (len(domain) // 8),
          "quoted address not whole escaped characters: %r" % quoted[-20:])
    # The log line carries the reply as sent, then the address in to=
    # in the log's own rendering (not the reply's).
    line = srv.wait_log("NOQUEUE: reject: RCPT from")
    check("...>: Relay access denied; from=<a@sender.test> to=<" + (u * 32).decode() in line,
          "reject line: %r" % line[:300])
    c.cmd("QUIT", 221)


def test_idn_domain_in_either_form():
    """A local domain given as U-labels (bücher.example) is its A-label
    (xn--bcher-kva.example), RFC 5890 §2.3.2.1: RCPT in either form, and
    in upper case (mapped as UTS #46 does), reaches one Maildir under the
    A-label; virtual_mailbox_maps may list either form. The UTF-8 form
    was refused 554 (relay), a permanent failure, and could not be
    configured at all."""
    srv = Server({"virtual_mailbox_domains": "example.test, b\u00fccher.example"}, start=False)
    maps = os.path.join(srv.dir, "vmaps")
    with open(maps, "w", encoding="utf-8") as f:
        f.write("kim@b\u00fccher.example\nlee@xn--bcher-kva.example\n")
    srv.settings["virtual_mailbox_maps"] = maps
    srv.start()
    c = Client(srv.port)
    c.ehlo()
    for rcpt, utf8 in (("kim@b\u00fccher.example", True), ("kim@xn--bcher-kva.example", False),
                       ("kim@B\u00dcCHER.example", True), ("lee@b\u00fccher.example", True)):
        c.cmd(("MAIL FROM:<a@sender.test>" + (" SMTPUTF8" if utf8 else "")).encode(), 250)
        c.cmd(("RCPT TO:<%s>" % rcpt).encode(), 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: idn\r\n\r\nhi\r\n.\r\n")
        c.expect(250)
    c.cmd("MAIL FROM:<a@sender.test> SMTPUTF8".encode(), 250)
    c.cmd("RCPT TO:<nobody@b\u00fccher.example>".encode(), 550, "5.1.1")
    c.cmd("RSET", 250)
    c.cmd("QUIT", 221)
    eq(len(srv.messages("kim@xn--bcher-kva.example")), 3, "kim's messages under the A-label")
    eq(len(srv.messages("lee@xn--bcher-kva.example")), 1, "lee's messages under the A-label")
    eq(sorted(os.listdir(srv.mailbase)), ["xn--bcher-kva.example"], "domain directories")


def test_peer_text_escaped():
    """What the client chose never reaches a header or the log raw: in
    Received: the EHLO name's parentheses, backslash, semicolon and
    control bytes become \\xNN (they would change the header's structure,
    RFC 5322 §3.2.2), and in log lines control bytes and backslashes do
    (a terminal escape or a forged line end in an operator's log). The
    PREGREET line escapes early bytes the same way."""
    name = "a(b)\\c;d\x1bz\x07"
    # The syntax check refuses such a name (at RCPT: smtpd_delay_reject),
    # and the reject line names it.
    srv0 = Server()
    c = Client(srv0.port)
    c.cmd("EHLO " + name, 250)
    c.cmd("MAIL FROM:<x@sender.test>", 250)
    c.cmd("RCPT TO:<esc@%s>" % DOMAIN, 501, "5.5.2")
    c.cmd("QUIT", 221)
    line = srv0.wait_log("NOQUEUE: reject: RCPT from")
    check("helo=<a(b)\\x5cc;d\\x1bz\\x07>" in line, "reject line does not escape: %r" % line)
    # With it off, the name is accepted and goes into Received:.
    srv = Server({"helo_check_syntax": "off"})
    c = Client(srv.port)
    c.cmd("EHLO " + name, 250)
    c.send_message("x@sender.test", ["esc@" + DOMAIN], b"Subject: esc\r\n\r\nhi\r\n")
    msg = srv.messages("esc@" + DOMAIN)[0]
    check(received_header(msg).startswith(b"Received: from a\\x28b\\x29\\x5cc\\x3bd\\x1bz\\x07 ("),
          "Received: does not escape the EHLO name: %r" % msg[:120])
    c.cmd("QUIT", 221)

    srv2 = Server({"smtpd_greet_pause": "500ms"})
    s = socket.create_connection(("127.0.0.1", srv2.port), timeout=10)
    s.sendall(b"\x1b[31mEHLO\x07\r\n")
    line = srv2.wait_log("PREGREET")
    s.close()
    check(line.endswith("\\x1b[31mEHLO\\x07\\x0d\\x0a"), "PREGREET line does not escape: %r" % line)
    for server in (srv0, srv, srv2):
        with open(server.logfile, "rb") as f:
            raw = f.read()
        check(b"\x1b" not in raw and b"\x07" not in raw, "a raw control byte in the log")


def test_received_header_structure():
    """The Received: field keeps its RFC 5321 §4.4 / RFC 5322 shape
    whatever the client sent (the syntax check off, so that odd names are
    accepted): a double quote in the EHLO name is escaped like ( ) \\ ;
    (it opened a quoted-string that swallowed the field), a long escaped
    name is cut so that no line passes 998 octets (it made 1,062), the
    'for' path is written as sent, a quoted local part's space and UTF-8
    under SMTPUTF8 included (they came out as \\x20 and \\xc3...), and an
    IPv6 client is an IPv6: address literal (it was a bare address)."""
    srv = Server({"helo_check_syntax": "off",
                  "listen": "smtp:127.0.0.1:%d, smtp:[::1]:%d" % (free_port(), free_port())})
    ports = [int(l.rsplit(":", 1)[1]) for l in srv.settings["listen"].split(", ")]
    c = Client(ports[0])
    c.cmd('EHLO q"x.example.com', 250)
    c.send_message("x@sender.test", ['"a b"@' + DOMAIN], b"Subject: q\r\n\r\nhi")
    c.cmd("EHLO " + "\x7f" * 255, 250)
    c.send_message("x@sender.test", ["long@" + DOMAIN], b"Subject: l\r\n\r\nhi")
    c.cmd("EHLO client.example.test", 250)
    c.cmd("MAIL FROM:<x@sender.test> SMTPUTF8", 250)
    c.cmd("RCPT TO:<\u00e9t\u00e9@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: u\r\n\r\nhi\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    c6 = Client(ports[1], host="::1")
    c6.ehlo()
    c6.send_message("x@sender.test", ["six@" + DOMAIN], b"Subject: 6\r\n\r\nhi")
    c6.cmd("QUIT", 221)

    def received(addr):
        msgs = srv.messages(addr)
        eq(len(msgs), 1, "messages for %s" % addr)
        head = received_header(msgs[0])[:-1]
        for line in head.split(b"\n"):
            check(len(line) <= 998, "Received: line of %d octets" % len(line))
        return head.decode("utf-8")

    r = received("a b@" + DOMAIN)                  # its Maildir: the local part unquoted
    check(r.startswith('Received: from q\\x22x.example.com ('), "quote not escaped: %r" % r)
    check('\tfor <"a b"@%s>;' % DOMAIN in r, "for clause: %r" % r)
    r = received("long@" + DOMAIN)
    check(r.startswith("Received: from \\x7f") and "... (" in r, "long name not cut: %r" % r[:80])
    r = received("\u00e9t\u00e9@" + DOMAIN)
    check("\tfor <\u00e9t\u00e9@%s>;" % DOMAIN in r, "UTF-8 for clause: %r" % r)
    r = received("six@" + DOMAIN)
    check("[IPv6:::1])" in r, "IPv6 client literal: %r" % r)


def test_forged_auth_results_removed_without_tagging():
    """RFC 8601 §5: an Authentication-Results field with our authserv-id
    from outside is removed even when ehlod adds none (every identity
    check off here; before, only a tagging check removed them), and kept
    from a client that helo_checks_exempt trusts."""
    body = (b"Authentication-Results: mx.example.test; iprev=pass\r\n"
            b"Authentication-Results: other.example.net; spf=pass\r\nSubject: f\r\n\r\nhi")
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    c.send_message("x@sender.test", ["ar@" + DOMAIN], body)
    c.cmd("QUIT", 221)
    msg = strip_received(srv.messages("ar@" + DOMAIN)[0])
    eq(msg, b"Authentication-Results: other.example.net; spf=pass\nSubject: f\n\nhi\n",
       "message after a forged field")
    srv.wait_log("removed 1 forged Authentication-Results field from")

    trusted = Server({"helo_checks_exempt": "127.0.0.0/8"})
    c = Client(trusted.port)
    c.ehlo()
    c.send_message("x@sender.test", ["ar@" + DOMAIN], body)
    c.cmd("QUIT", 221)
    check(strip_received(trusted.messages("ar@" + DOMAIN)[0]).startswith(
        b"Authentication-Results: mx.example.test; iprev=pass\n"),
        "a trusted client's field was removed")


def test_helo_and_esmtp_parameters():
    srv = Server()
    c = Client(srv.port)
    lines = c.cmd("HELO client.example.test", 250)
    eq(lines, ["250 " + "mx.example.test"], "HELO reply (one line, no extensions)")
    c.cmd("MAIL FROM:<a@sender.test> BODY=8BITMIME", 555)
    c.cmd("MAIL FROM:<a@sender.test> SIZE=10", 555)
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<helo@%s> NOTIFY=NEVER" % DOMAIN, 555)
    c.cmd("RCPT TO:<helo@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: helo\r\n\r\nx\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    msg = srv.messages("helo@" + DOMAIN)
    eq(len(msg), 1, "messages after HELO")
    check(b" with SMTP id " in msg[0], "Received: not 'with SMTP' after HELO: %r" % msg[0][:300])
    # After EHLO an unknown parameter is 555 5.5.4 too.
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test> FOO=BAR", 555, "5.5.4")
    c.cmd("QUIT", 221)


EHLO_KEYWORDS = ["PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES",
                 "SMTPUTF8", "CHUNKING", "DSN"]


def test_ehlo_keywords_and_discard():
    srv = Server()
    c = Client(srv.port)
    lines = c.ehlo("kw.client.test")
    eq(lines[0], "250-mx.example.test", "first EHLO line")
    check(lines[-1].startswith("250 "), "last EHLO line: %r" % lines)
    kws = [l[4:] for l in lines[1:]]
    for k in EHLO_KEYWORDS:
        check(k in kws, "EHLO lacks %s: %r" % (k, kws))
    c.cmd("QUIT", 221)
    srv.stop()

    srv = Server({"smtpd_discard_ehlo_keywords": "pipelining, CHUNKING, dsn, size"})
    c = Client(srv.port)
    lines = c.ehlo("kw.client.test")
    kws = [l[4:].split(" ")[0].upper() for l in lines[1:]]
    for k in ("PIPELINING", "CHUNKING", "DSN", "SIZE"):
        check(k not in kws, "%s announced although discarded: %r" % (k, lines))
    for k in ("8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"):
        check(k in kws, "%s missing: %r" % (k, lines))
    # A discarded extension is not usable either.
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<kw@%s>" % DOMAIN, 250)
    c.send(b"BDAT 3 LAST\r\nabc")
    code, lines = c.reply()
    check(500 <= code < 600, "BDAT with CHUNKING discarded got %r" % lines)
    c.cmd("NOOP", 250)
    c.cmd("QUIT", 221)
    eq(srv.all_files("new"), [], "message delivered through a discarded CHUNKING")


def test_sequencing_503():
    srv = Server()
    c = Client(srv.port)
    c.cmd("MAIL FROM:<a@sender.test>", 503)          # before EHLO
    c.ehlo()
    c.cmd("RCPT TO:<bob@%s>" % DOMAIN, 503, "5.5.1")   # before MAIL
    c.cmd("DATA", 503, "5.5.1")                        # before MAIL
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("MAIL FROM:<a@sender.test>", 503, "5.5.1")   # nested MAIL
    # DATA in a transaction without recipients: RFC 5321 §3.3 allows 503 or
    # 554; like Postfix, 554 5.5.1 "no valid recipients".
    c.cmd("DATA", 554, "5.5.1")
    c.cmd("RCPT TO:<bob@%s>" % DOMAIN, 250)
    # A second EHLO resets the transaction (RFC 5321 §4.1.4).
    c.ehlo()
    c.cmd("DATA", 503, "5.5.1")
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<bob@%s>" % DOMAIN, 250)
    c.cmd("RSET", 250)
    c.cmd("DATA", 503, "5.5.1")
    c.cmd("VRFY bob", 252)
    c.cmd("QUIT", 221)
    eq(srv.all_files("new"), [], "messages delivered")


def test_recipients():
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<>", 250)
    relay = c.cmd("RCPT TO:<someone@elsewhere.test>", 554, "5.7.1")[-1]
    c.cmd("RCPT TO:<postmaster>", 250)
    c.cmd("RCPT TO:<anyone@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: to postmaster\r\n\r\nhi\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    eq(len(srv.messages("postmaster@" + DOMAIN)), 1, "messages for <postmaster>")
    eq(len(srv.messages("anyone@" + DOMAIN)), 1, "messages for anyone@")
    eq(os.listdir(os.path.join(srv.mailbase)), [DOMAIN], "domains in the Maildir base")
    # Postfix's form (fail2ban and log tools parse it): the reply exactly
    # as sent, then the sender (here the null one), recipient, protocol, HELO.
    line = srv.wait_log("NOQUEUE: reject: RCPT from")
    want = ("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: %s; from=<> "
            "to=<someone@elsewhere.test> proto=ESMTP helo=<client.example.test>" % relay)
    check(line.endswith(want), "reject line %r, expected it to end with %r" % (line, want))


def test_virtual_mailbox_maps():
    srv = Server(start=False)
    maps = os.path.join(srv.dir, "vmailbox")
    with open(maps, "w") as f:
        f.write("# a Postfix virtual_mailbox_maps source file\n"
                "known@example.test    example.test/known/\n"
                "other@example.test\n"
                "j\u00f6s\u00e9@example.test\n")         # UTF-8 (it was a load error)
    srv.settings["virtual_mailbox_maps"] = maps
    srv.start()
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    unknown = c.cmd("RCPT TO:<unknown@%s>" % DOMAIN, 550, "5.1.1")[-1]
    # The log line carries the reply as sent (it said "User unknown; to=<...>"
    # in place of the reply's "Recipient address rejected: ... table").
    eq(unknown, "550 5.1.1 <unknown@example.test>: Recipient address rejected: "
       "User unknown in virtual mailbox table", "reply to an unknown recipient")
    line = srv.wait_log("NOQUEUE: reject: RCPT from")
    want = ("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: %s; from=<a@sender.test> "
            "to=<unknown@example.test> proto=ESMTP helo=<client.example.test>" % unknown)
    check(line.endswith(want), "reject line %r, expected it to end with %r" % (line, want))
    c.cmd("RCPT TO:<known@%s>" % DOMAIN, 250)
    c.cmd("RCPT TO:<Other@Example.TEST>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: maps\r\n\r\nhi\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    eq(len(srv.messages("known@" + DOMAIN)), 1, "messages for known@")
    eq(srv.new_files("unknown@" + DOMAIN), [], "messages for unknown@")
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test> SMTPUTF8", 250)
    c.cmd("RCPT TO:<j\u00f6r\u00e9@%s>" % DOMAIN, 550, "5.1.1")
    c.cmd("RCPT TO:<j\u00f6s\u00e9@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: utf8\r\n\r\nhi\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    eq(len(srv.messages("j\u00f6s\u00e9@" + DOMAIN)), 1, "messages for the UTF-8 address")
    # RFC 5321 §4.5.1: postmaster@ a local domain, listed or not (it got
    # 550 5.1.1 when the map did not list it).
    c = Client(srv.port)
    c.ehlo()
    c.send_message("a@sender.test", ["PostMaster@" + DOMAIN], b"Subject: pm\r\n\r\nhi")
    c.cmd("QUIT", 221)
    eq(len(srv.messages("postmaster@" + DOMAIN)), 1, "messages for postmaster@")


if __name__ == "__main__":
    main(globals())
