#!/usr/bin/python3
"""
The message phase: a connection dropped in the middle of DATA leaves no
message behind, message_size_limit is enforced with 552 5.3.4 while the
session stays usable, SIZE= at MAIL is checked, and the accepted-message
log line carries the queue id, sender, recipients and size.
"""
import re
import socket
import struct
import time

from ehlotest import Server, Client, check, eq, main, strip_received, wait_until, DOMAIN


def test_drop_mid_data():
    srv = Server()
    for how in ("close", "reset"):
        c = Client(srv.port)
        c.ehlo()
        c.cmd("MAIL FROM:<alice@sender.test>", 250)
        c.cmd("RCPT TO:<dropped@%s>" % DOMAIN, 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: never\r\n\r\n" + b"partial content line\r\n" * 2000 + b"no end")
        if how == "reset":
            # SO_LINGER 0: the close sends RST instead of FIN.
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    wait_until(lambda: srv.maillog().count("lost connection after DATA") >= 2, 10,
               what="two 'lost connection after DATA' log lines")
    time.sleep(0.5)
    eq(srv.all_files("new"), [], "messages in new/ after dropped DATA")
    eq(srv.all_files("tmp"), [], "files in tmp/ after dropped DATA")
    # The server is still fine.
    c = Client(srv.port)
    c.ehlo()
    c.send_message("alice@sender.test", ["after@" + DOMAIN], b"Subject: ok\r\n\r\nok")
    eq(len(srv.messages("after@" + DOMAIN)), 1, "message after the dropped ones")


def test_oversize_and_session_continues():
    limit = 4000
    srv = Server({"message_size_limit": str(limit)})
    c = Client(srv.port)
    lines = c.ehlo()
    check("250-SIZE %d" % limit in lines, "EHLO does not announce SIZE %d: %r" % (limit, lines))
    # SIZE= over the limit is refused at MAIL (RFC 1870 §6.1).
    c.cmd("MAIL FROM:<alice@sender.test> SIZE=%d" % (limit + 1), 552, "5.3.4")
    # A message that is bigger than announced is refused after its end.
    c.cmd("MAIL FROM:<alice@sender.test> SIZE=100", 250)
    c.cmd("RCPT TO:<big@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: big\r\n\r\n" + (b"y" * 98 + b"\r\n") * 100 + b".\r\n")
    c.expect(552, "5.3.4")
    # Same session, a good message.
    good = b"Subject: small\r\n\r\n" + b"z" * 98 + b"\r\n"
    c.cmd("MAIL FROM:<alice@sender.test> SIZE=%d" % len(good), 250)
    c.cmd("RCPT TO:<big@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(good + b".\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    msgs = srv.messages("big@" + DOMAIN)
    eq([strip_received(m) for m in msgs], [good.replace(b"\r\n", b"\n")], "delivered messages")
    eq(srv.all_files("tmp"), [], "files in tmp/")


def test_accepted_message_log_line():
    srv = Server()
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<alice@sender.test>", 250)
    c.cmd("RCPT TO:<one@%s>" % DOMAIN, 250)
    c.cmd("RCPT TO:<two@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: log\r\n\r\nlog me\r\n.\r\n")
    reply = c.expect(250)[-1]
    m = re.search(r"queued as ([0-9A-F]+)$", reply)
    check(m, "250 reply without a queue id: %r" % reply)
    qid = m.group(1)
    c.cmd("QUIT", 221)
    line = srv.wait_log(" %s: client=" % qid)
    size = len(srv.messages("one@" + DOMAIN)[0])
    want = ("%s: client=unknown[127.0.0.1], from=<alice@sender.test>, "
            "to=<one@example.test>,<two@example.test>, size=%d, nrcpt=2, proto=ESMTP" % (qid, size))
    check(want in line, "log line %r lacks %r" % (line, want))
    # The queue id is in the Received: header too.
    check(("id %s" % qid).encode() in srv.messages("two@" + DOMAIN)[0], "queue id not in Received:")


if __name__ == "__main__":
    main(globals())
