#!/usr/bin/python3
"""
Real SMTP clients deliver to ehlod, and what lands in the Maildir is exactly
what they sent: after removing the Received: header ehlod prepends, the file
equals the message with dot-stuffing undone and CRLF turned into LF.

Clients: swaks, curl (smtp://), /usr/bin/python3 smtplib, msmtp and
Postfix's smtp-source.  Messages hold lines that start with dots (and a line
that is a lone dot), an empty body, and an 8-bit body sent with BODY=8BITMIME.
"""
import os
import smtplib

from ehlotest import (Server, Client, check, eq, fail, main, need_tool, run_tool, received_header, strip_received,
                      to_lf, stuff, DOMAIN)

HEADERS = (b"From: <alice@sender.test>\r\n"
           b"To: <%s>\r\n"
           b"Subject: %s\r\n"
           b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <%s@sender.test>\r\n")

DOTTY_BODY = (b"hello\r\n"
              b".leading dot\r\n"
              b"..two leading dots\r\n"
              b".\r\n"
              b"a line with a trailing dot.\r\n"
              b"   indented\r\n"
              b"\r\n"
              b"last line\r\n")

EIGHTBIT_BODY = ("Gr\u00fc\u00dfe aus K\u00f6ln \u2014 \u65e5\u672c\u8a9e\r\n".encode("utf-8") +
                 bytes(range(0x80, 0x100)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n")


def message(rcpt, tag, body):
    """A complete message (CRLF line ends, ends with CRLF)."""
    return HEADERS % (rcpt.encode(), tag.encode(), tag.encode()) + b"\r\n" + body


def headers_only(rcpt, tag):
    """A message with an empty body: headers, the empty line, nothing more."""
    return HEADERS % (rcpt.encode(), tag.encode(), tag.encode()) + b"\r\n"


def only_message(srv, rcpt):
    msgs = srv.messages(rcpt)
    eq(len(msgs), 1, "messages in %s/new" % srv.maildir(rcpt))
    return msgs[0]


def assert_delivered(srv, rcpt, expected_crlf, helo=None, proto=None, single=True):
    """The one message in rcpt's Maildir equals expected_crlf (unstuffed
    content) with LF line ends after the Received: header."""
    got = only_message(srv, rcpt)
    body = strip_received(got)
    if body != to_lf(expected_crlf):
        fail("delivered message differs:\n expected %r\n got      %r" % (to_lf(expected_crlf), body))
    rec = received_header(got).decode()
    if helo:
        check(rec.startswith("Received: from %s (" % helo), "Received: lacks EHLO name %s: %r" % (helo, rec))
    if proto:
        check(" with %s id " % proto in rec, "Received: lacks 'with %s': %r" % (proto, rec))
    # Like Postfix, "for <rcpt>" only when the transaction had one recipient.
    check(("for <%s>;" % rcpt in rec) == single, "Received: 'for <%s>' expected only for a single recipient: %r" % (rcpt, rec))
    check("\tby mx.example.test (" in rec, "Received: lacks 'by mx.example.test': %r" % rec)
    # Maildir ",S=" is the file size (what Dovecot and others read).
    name = srv.new_files(rcpt)[0]
    check(name.endswith(",S=%d" % len(got)), "Maildir name %s does not carry S=%d" % (name, len(got)))
    eq(srv.tmp_files(rcpt), [], "files left in tmp/")


def write(srv, name, data):
    p = os.path.join(srv.dir, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


# swaks and smtp-source end the data with CRLF "." CRLF after the content
# even when the content already ends with CRLF, so the message gets one more
# empty line than the file holds; the file is given without its last CRLF
# to swaks, and smtp-source's extra line is expected.

def test_swaks():
    need_tool("/usr/bin/swaks")
    srv = Server()
    for rcpt, msg in (("swaks@" + DOMAIN, message("swaks@" + DOMAIN, "swaks", DOTTY_BODY)),):
        path = write(srv, rcpt + ".eml", msg[:-2])
        run_tool(["/usr/bin/swaks", "--server", "127.0.0.1:%d" % srv.port, "--helo", "swaks.client.test",
                  "--from", "alice@sender.test", "--to", rcpt, "--data", path, "--pipeline",
                  "--timeout", "20"])
        assert_delivered(srv, rcpt, msg, helo="swaks.client.test", proto="ESMTP")


def test_curl():
    need_tool("/usr/bin/curl")
    srv = Server()
    for rcpt, msg in (("curl@" + DOMAIN, message("curl@" + DOMAIN, "curl", DOTTY_BODY)),
                      ("curl-empty@" + DOMAIN, headers_only("curl-empty@" + DOMAIN, "empty"))):
        path = write(srv, rcpt + ".eml", msg)
        # The EHLO name is the URL path (STACK.md §4).
        run_tool(["/usr/bin/curl", "-sS", "--max-time", "30",
                  "--url", "smtp://127.0.0.1:%d/curl.client.test" % srv.port,
                  "--mail-from", "alice@sender.test", "--mail-rcpt", rcpt, "--upload-file", path])
        assert_delivered(srv, rcpt, msg, helo="curl.client.test", proto="ESMTP")


def test_smtplib():
    srv = Server()
    rcpt = "py@" + DOMAIN
    rcpt2 = "py2@" + DOMAIN
    msg = message(rcpt, "smtplib", DOTTY_BODY)
    with smtplib.SMTP("127.0.0.1", srv.port, local_hostname="py.client.test", timeout=20) as c:
        refused = c.sendmail("alice@sender.test", [rcpt, rcpt2], msg)
        eq(refused, {}, "refused recipients")
        # 8-bit content announced with BODY=8BITMIME (RFC 6152).
        code, text = c.ehlo("py.client.test")
        check(c.has_extn("8bitmime"), "EHLO does not announce 8BITMIME: %r" % text)
        rcpt8 = "py8@" + DOMAIN
        msg8 = message(rcpt8, "8bit", EIGHTBIT_BODY)
        eq(c.sendmail("alice@sender.test", [rcpt8], msg8, mail_options=["BODY=8BITMIME"]), {},
           "refused recipients (8bit)")
    # One transaction, two mailboxes: each gets the message once.
    assert_delivered(srv, rcpt, msg, helo="py.client.test", proto="ESMTP", single=False)
    assert_delivered(srv, rcpt2, msg, helo="py.client.test", proto="ESMTP", single=False)
    assert_delivered(srv, rcpt8, msg8, helo="py.client.test", proto="ESMTP")


def test_msmtp():
    need_tool("/usr/bin/msmtp")
    srv = Server()
    for rcpt, msg in (("msmtp@" + DOMAIN, message("msmtp@" + DOMAIN, "msmtp", DOTTY_BODY)),
                      ("msmtp-8@" + DOMAIN, message("msmtp-8@" + DOMAIN, "msmtp8", EIGHTBIT_BODY)),
                      ("msmtp-empty@" + DOMAIN, headers_only("msmtp-empty@" + DOMAIN, "empty"))):
        run_tool(["/usr/bin/msmtp", "--host=127.0.0.1", "--port=%d" % srv.port,
                  "--domain=msmtp.client.test", "--tls=off", "--auth=off", "--timeout=20",
                  "-f", "alice@sender.test", rcpt], input=msg)
        assert_delivered(srv, rcpt, msg, helo="msmtp.client.test", proto="ESMTP")


def test_smtp_source():
    need_tool("/usr/sbin/smtp-source")
    srv = Server()
    rcpt = "source@" + DOMAIN
    msg = message(rcpt, "smtp-source", DOTTY_BODY)
    # smtp-source -F reads LF lines, stuffs dots and appends CRLF to each.
    path = write(srv, "source.eml", to_lf(msg))
    run_tool(["/usr/sbin/smtp-source", "-F", path, "-f", "alice@sender.test", "-t", rcpt,
              "-m", "5", "-s", "2", "-M", "source.client.test", "127.0.0.1:%d" % srv.port])
    msgs = srv.messages(rcpt)
    eq(len(msgs), 5, "messages from smtp-source -m 5")
    for m in msgs:
        eq(strip_received(m), to_lf(msg) + b"\n", "smtp-source message")
    check(b"from source.client.test (" in msgs[0], "Received: lacks the HELO name")


def test_raw_empty_and_8bit():
    """Byte-level edge cases no client library produces on its own."""
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    # A completely empty message: DATA's CRLF is the CRLF before the dot.
    c.cmd("MAIL FROM:<alice@sender.test>", 250)
    c.cmd("RCPT TO:<empty@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b".\r\n")
    c.expect(250)
    # 8BITMIME with bytes 0x80..0xff, NUL excluded, and stuffed dots.
    body8 = b"Subject: raw8\r\n\r\n" + EIGHTBIT_BODY + b".dot\r\n"
    c.cmd("MAIL FROM:<alice@sender.test> BODY=8BITMIME", 250)
    c.cmd("RCPT TO:<raw8@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(stuff(body8) + b".\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    check(c.closed(), "connection not closed after QUIT")
    assert_delivered(srv, "empty@" + DOMAIN, b"")
    assert_delivered(srv, "raw8@" + DOMAIN, body8)


if __name__ == "__main__":
    main(globals())
