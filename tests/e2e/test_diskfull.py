#!/usr/bin/python3
"""
Local trouble never becomes a 250: with the Maildir file system full the
client gets 452 4.3.1 (RFC 3463 "mail system full"), nothing appears in
new/, and the same session delivers again once space is back. Uses a tiny
tmpfs mounted for the test (needs root; skipped where mount is refused).
Any other delivery error gives 451 4.3.0, for every recipient of the
message.
"""
import os
import re
import subprocess
import urllib.request

from ehlotest import (Server, Client, Skip, check, eq, main, tempdir, free_port, wait_until,
                      DOMAIN)


def mount_small_tmpfs(size):
    d = tempdir("ehlo-e2e-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", d],
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        raise Skip("cannot mount a tmpfs here: %s" % r.stderr.decode(errors="replace").strip())
    return d


def test_disk_full_gives_452():
    mnt = mount_small_tmpfs("512k")
    try:
        base = os.path.join(mnt, "mail")
        srv = Server(start=False)
        srv.mailbase = base       # the harness writes and reads this Maildir base
        srv.start()
        c = Client(srv.port)
        c.ehlo()
        c.send_message("a@sender.test", ["box@" + DOMAIN], b"Subject: first\r\n\r\nfits\r\n")
        eq(len(srv.messages("box@" + DOMAIN)), 1, "messages after the first delivery")
        # Fill the file system, leaving less than one message of room.
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb", buffering=0) as f:
            try:
                for _ in range(1 << 16):       # bounded: 256 MiB at most
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        body = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 200
        c.cmd("MAIL FROM:<a@sender.test>", 250)
        c.cmd("RCPT TO:<box@%s>" % DOMAIN, 250)
        c.cmd("DATA", 354)
        c.send(body + b".\r\n")
        lines = c.expect(452)
        check("4.3.1" in lines[0], "452 without 4.3.1: %r" % lines)
        eq(len(srv.messages("box@" + DOMAIN)), 1, "messages in new/ after the refused one")
        eq(srv.tmp_files("box@" + DOMAIN), [], "files left in tmp/")
        # Space is back: the same session delivers.
        os.unlink(filler)
        c.send_message("a@sender.test", ["box@" + DOMAIN], body)
        eq(len(srv.messages("box@" + DOMAIN)), 2, "messages after space came back")
        c.cmd("QUIT", 221)
        srv.wait_log("delivery failed")
        srv.stop()
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=30)


def test_full_journal_segment_is_emptied_once_drained():
    """Journal mode on a file system too small for the 64 MiB pre-fill: the
    segment grows by appends until the disk is full. Once every message in
    it is delivered, an append that fails for lack of space must empty the
    segment and go in, instead of refusing large mail with 452 until a
    restart (the segment only rolled at 64 MiB)."""
    mnt = mount_small_tmpfs("1m")
    try:
        mport = free_port()
        srv = Server({"metrics_listen": "127.0.0.1:%d" % mport,
                      "spool_journal_directory": mnt})
        srv.wait_log("appending instead")
        body = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 100    # 100 KB

        def send():
            c = Client(srv.port)
            c.ehlo()
            c.cmd("MAIL FROM:<a@sender.test>", 250)
            c.cmd("RCPT TO:<box@%s>" % DOMAIN, 250)
            c.cmd("DATA", 354)
            c.send(body + b".\r\n")
            code = c.reply()[0]
            c.cmd("QUIT", 221)
            return code

        def pending():
            m = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                       timeout=10).read().decode()
            return int(re.search(r"^ehlo_spool_messages_pending (\d+)", m, re.M).group(1))

        # 12 x 100 KB through a 1 MiB journal: more than fits at once.
        codes = []
        for _ in range(12):
            codes.append(send())
            wait_until(lambda: pending() == 0, 10, what="background delivery")
        check(set(codes) <= {250, 452}, "replies: %r" % codes)
        for i in range(3):
            eq(send(), 250, "reply %d with every journaled message delivered (%r before)"
               % (i, codes))
            wait_until(lambda: pending() == 0, 10, what="background delivery")
        eq(codes, [250] * 12, "replies while the journal filled")
        eq(len(srv.messages("box@" + DOMAIN)), 15, "messages delivered")
        srv.wait_log("emptied it")
        srv.stop()
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=30)


def test_io_error_gives_451():
    """Any other delivery error is 451 4.3.0, never 250, and all or
    nothing: bad@'s Maildir has a regular file where tmp/ should be (open
    fails with ENOTDIR), so a message to good@ and bad@ together is
    refused, and good@'s new/ stays empty too. Once the Maildir is
    repaired the same session delivers to both."""
    srv = Server()
    bad = srv.maildir("bad@" + DOMAIN)
    os.makedirs(os.path.join(bad, "new"))
    os.makedirs(os.path.join(bad, "cur"))
    with open(os.path.join(bad, "tmp"), "w") as f:
        f.write("not a directory\n")
    c = Client(srv.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@sender.test>", 250)
    c.cmd("RCPT TO:<good@%s>" % DOMAIN, 250)
    c.cmd("RCPT TO:<bad@%s>" % DOMAIN, 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: broken mailbox\r\n\r\nhello\r\n.\r\n")
    c.expect(451, "4.3.0")
    eq(srv.messages("good@" + DOMAIN), [], "good@'s new/ after the refused message")
    eq(srv.messages("bad@" + DOMAIN), [], "bad@'s new/ after the refused message")
    eq(srv.tmp_files("good@" + DOMAIN), [], "files left in good@'s tmp/")
    line = srv.wait_log("delivery failed")
    qid = line.split(": delivery failed")[0].rsplit(" ", 1)[1]
    # The accepted-message line is for the 250 only (it was written at
    # submission, so log tools counted the refused message as accepted).
    check(" %s: client=" % qid not in srv.maillog(),
          "an accepted-message line for the refused %s" % qid)
    os.unlink(os.path.join(bad, "tmp"))
    os.mkdir(os.path.join(bad, "tmp"))
    c.send_message("a@sender.test", ["good@" + DOMAIN, "bad@" + DOMAIN],
                   b"Subject: repaired\r\n\r\nhello\r\n")
    eq(len(srv.messages("good@" + DOMAIN)), 1, "good@'s messages after the repair")
    eq(len(srv.messages("bad@" + DOMAIN)), 1, "bad@'s messages after the repair")
    c.cmd("QUIT", 221)


if __name__ == "__main__":
    main(globals())
