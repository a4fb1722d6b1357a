#!/usr/bin/python3
"""
SMTP smuggling (CVE-2023-51764): a message whose content holds "\\n.\\n",
"\\n.\\r\\n" or "\\r.\\r\\n" followed by a second transaction must never turn
into two messages.  The data ends only at CRLF "." CRLF.

Default policy (smtpd_forbid_bare_newline = reject): the whole message is
refused with 554 5.5.2 after the real end of data, nothing is delivered, and
the session stays in sync.  With normalize: exactly one message, holding the
would-be commands as text (decoded per src/proto/data.h: a bare LF ends a
line, a bare CR is dropped, a dot that starts a line is removed).
"""
from ehlotest import Server, Client, check, eq, main, strip_received, DOMAIN

SEQUENCES = [b"\n.\n", b"\n.\r\n", b"\r.\r\n"]

SMUGGLED = (b"MAIL FROM:<admin@sender.test>\r\n"
            b"RCPT TO:<victim@example.test>\r\n"
            b"DATA\r\n"
            b"Subject: smuggled\r\n"
            b"\r\n"
            b"smuggled body\r\n")

# What normalize delivers for "first line" + SEQ + SMUGGLED + ".\r\n".
NORMALIZED = {
    # bare LF ends "first line"; the soft line "." loses its dot (empty line)
    b"\n.\n": b"first line\n\n",
    # bare LF ends "first line"; the hard line "." CRLF after a soft line
    # start is not the end (the CRLF before it was not a CRLF): dot removed
    b"\n.\r\n": b"first line\n\n",
    # the bare CR is dropped and the line goes on: "first line." is text
    b"\r.\r\n": b"first line.\n",
}


def smuggle(c, seq, head=b"Subject: carrier\r\n\r\nfirst line"):
    """One transaction carrying seq + a smuggled transaction, sent in one
    write with the real end of data and QUIT.  Returns the replies."""
    c.ehlo()
    c.cmd("MAIL FROM:<alice@sender.test>", 250)
    c.cmd("RCPT TO:<carrier@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(head + seq + SMUGGLED + b".\r\nQUIT\r\n")
    replies = []
    while True:
        code, lines = c.reply()
        replies.append(lines[-1])
        if code == 221 or len(replies) > 10:
            break
    check(c.closed(), "connection not closed after QUIT")
    return replies


def test_smuggling_rejected_by_default():
    srv = Server()
    for seq in SEQUENCES:
        c = Client(srv.port)
        replies = smuggle(c, seq)
        eq(len(replies), 2, "replies after DATA for %r (one for the message, one for QUIT): %r"
           % (seq, replies))
        check(replies[0].startswith("554 5.5.2 "), "reply to the message with %r: %r" % (seq, replies))
        check(replies[1].startswith("221 "), "reply to QUIT: %r" % replies)
    eq(srv.all_files("new"), [], "messages delivered despite bare line ends")
    eq(srv.all_files("tmp"), [], "files left in tmp/")


def test_smuggling_normalized():
    srv = Server({"smtpd_forbid_bare_newline": "normalize"})
    for i, seq in enumerate(SEQUENCES):
        c = Client(srv.port)
        replies = smuggle(c, seq)
        eq(len(replies), 2, "replies for %r: %r" % (seq, replies))
        check(replies[0].startswith("250 "), "reply to the message with %r: %r" % (seq, replies))
        msgs = srv.messages("carrier@" + DOMAIN)
        eq(len(msgs), i + 1, "carrier messages after %r" % seq)
        expected = b"Subject: carrier\n\n" + NORMALIZED[seq] + SMUGGLED.replace(b"\r\n", b"\n")
        eq(strip_received(msgs[i]), expected, "normalized message for %r" % seq)
    eq(srv.messages("victim@" + DOMAIN), [], "smuggled second message")


def test_crlf_dot_lf_is_not_an_end():
    """The fourth variant, CRLF "." LF: never an end either."""
    srv = Server({"smtpd_forbid_bare_newline": "normalize"})
    c = Client(srv.port)
    replies = smuggle(c, b"\r\n.\n")
    eq(len(replies), 2, "replies: %r" % replies)
    check(replies[0].startswith("250 "), "reply to the message: %r" % replies)
    eq(srv.messages("victim@" + DOMAIN), [], "smuggled second message")
    msgs = srv.messages("carrier@" + DOMAIN)
    eq(len(msgs), 1, "carrier messages")
    eq(strip_received(msgs[0]), b"Subject: carrier\n\nfirst line\n\n" +
       SMUGGLED.replace(b"\r\n", b"\n"), "normalized message")


def test_bare_lf_in_data_then_good_message():
    """After a refused message the same session delivers a good one."""
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<alice@sender.test>", 250)
    c.cmd("RCPT TO:<bob@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: bad\r\n\r\nbare\nlf\r\n.\r\n")
    c.expect(554, "5.5.2")
    c.send_message("alice@sender.test", ["bob@" + DOMAIN], b"Subject: good\r\n\r\nfine")
    c.cmd("QUIT", 221)
    msgs = srv.messages("bob@" + DOMAIN)
    eq([strip_received(m) for m in msgs], [b"Subject: good\n\nfine\n"], "delivered messages")


def test_bdat_content_held_to_the_same_rules():
    """BDAT (without BINARYMIME) carries the same text as DATA: a bare CR
    or LF in it gets 554 5.5.2 and nothing is delivered, where before it
    went into the Maildir raw; under normalize the message is delivered
    with the bare LF as a line end and the bare CR dropped, as DATA's."""
    body = b"Subject: chunks\r\n\r\na\rb\nc\r\n"
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<alice@sender.test>", 250)
    c.cmd("RCPT TO:<bdat@%s>" % DOMAIN, 250)
    c.send(b"BDAT %d LAST\r\n" % len(body) + body)
    c.expect(554, "5.5.2")
    c.cmd("MAIL FROM:<alice@sender.test>", 250)
    c.cmd("RCPT TO:<bdat@%s>" % DOMAIN, 250)
    good = b"Subject: good\r\n\r\nfine\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(good) + good)
    c.expect(250)
    c.cmd("QUIT", 221)
    eq([strip_received(m) for m in srv.messages("bdat@" + DOMAIN)],
       [b"Subject: good\n\nfine\n"], "messages after a BDAT with bare line ends")

    srv = Server({"smtpd_forbid_bare_newline": "normalize"})
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<alice@sender.test>", 250)
    c.cmd("RCPT TO:<bdat@%s>" % DOMAIN, 250)
    c.send(b"BDAT %d LAST\r\n" % len(body) + body)
    c.expect(250)
    c.cmd("QUIT", 221)
    eq([strip_received(m) for m in srv.messages("bdat@" + DOMAIN)],
       [b"Subject: chunks\n\nab\nc\n"], "BDAT content under normalize")


if __name__ == "__main__":
    main(globals())
