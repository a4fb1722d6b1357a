#!/usr/bin/python3
"""
Crash test: several concurrent clients keep sending messages, each carrying
a unique token, and record every message ehlod acknowledged with 250.  ehlod
is killed with SIGKILL several times under that load and restarted on the
same Maildirs.  After each kill:
  - every acknowledged message is in new/ of each of its recipients'
    Maildirs, complete and byte-exact, in exactly one file;
  - every file in new/ (acknowledged or not: the kill may fall between the
    link into new/ and the 250) is a complete message, never a partial one.
Leftovers in tmp/ are allowed (Maildir readers ignore tmp/).
"""
import os
import random
import socket
import threading
import time

from ehlotest import Server, check, eq, fail, main, strip_received, to_lf, stuff, tempdir, DOMAIN

ROUNDS = int(os.environ.get("EHLO_CRASH_ROUNDS", "5"))
LOAD_SECONDS = float(os.environ.get("EHLO_CRASH_LOAD", "1.0"))
CLIENTS = 4
BOXES = ["crash%d@%s" % (i, DOMAIN) for i in range(3)]


# Random octets mapped onto printable text (no CR or LF).
_ALPHABET = bytes.maketrans(bytes(range(256)),
                            (b"abcdefghijklmnopqrstuvwxyz0123456789 .,-" * 7)[:256])
_content_cache = {}


def content(token):
    """The message for token (CRLF line ends, not yet dot-stuffed):
    deterministic, so any file in new/ can be checked against it."""
    msg = _content_cache.get(token)
    if msg is None:
        rnd = random.Random(token)
        lines = [b"Subject: crash test " + token, b"X-Token: " + token, b""]
        for _ in range(rnd.randint(0, 300)):
            line = rnd.randbytes(rnd.randint(0, 150)).translate(_ALPHABET)
            if rnd.random() < 0.1:
                line = b"." + line          # dot-stuffing on the wire
            lines.append(line)
        lines.append(b"end of " + token)
        msg = _content_cache[token] = b"\r\n".join(lines) + b"\r\n"
    return msg


class Load:
    """CLIENTS threads sending until stopped; acked holds (token, rcpts)."""

    def __init__(self, srv):
        self.srv = srv
        self.acked = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                        for i in range(CLIENTS)]
        for t in self.threads:
            t.start()

    def snapshot(self):
        with self.lock:
            return list(self.acked)

    def client(self, n):
        rnd = random.Random(n)
        seq = 0
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=5)
            except OSError:
                time.sleep(0.02)       # ehlod is down: retry
                continue
            f = s.makefile("rb")
            try:
                self.session(n, rnd, s, f, lambda: seq)
            except (OSError, EOFError, ValueError):
                pass                   # killed mid-session: reconnect
            except Exception as e:     # a protocol surprise: report it
                self.errors.append("client %d: %r" % (n, e))
            finally:
                seq += 1000
                f.close()
                s.close()

    def session(self, n, rnd, s, f, seqbase):
        def reply():
            while True:
                line = f.readline()
                if not line.endswith(b"\r\n"):
                    raise EOFError("short reply %r" % line)
                if line[3:4] != b"-":
                    return int(line[:3]), line
        code, line = reply()
        if code != 220:
            raise RuntimeError("greeting %r" % line)
        s.sendall(b"EHLO crash.client.test\r\n")
        if reply()[0] != 250:
            raise RuntimeError("EHLO refused")
        for i in range(1000):
            if self.stop.is_set():
                return
            token = b"tok-%d-%d-%d" % (n, seqbase(), i)
            rcpts = rnd.sample(BOXES, rnd.choice((1, 1, 2)))
            # Pipelined envelope (RFC 2920): MAIL, RCPTs, DATA in one write.
            s.sendall(b"MAIL FROM:<load@sender.test>\r\n" +
                      b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts) + b"DATA\r\n")
            codes = [reply()[0] for _ in range(len(rcpts) + 2)]
            if codes != [250] * (len(rcpts) + 1) + [354]:
                raise RuntimeError("envelope replies %r" % codes)
            s.sendall(stuff(content(token)) + b".\r\n")
            code, line = reply()
            if code != 250:
                raise RuntimeError("message refused: %r" % line)
            with self.lock:
                self.acked.append((token, rcpts))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)
            check(not t.is_alive(), "a load client did not stop")


def verify(srv, acked, label):
    """Check every file in new/ and every acknowledged token; returns the
    number of files in new/."""
    found = {}       # (box, token) -> count
    nfiles = 0
    for box in BOXES:
        for path in srv.new_files(box):
            nfiles += 1
            with open(path, "rb") as fh:
                data = fh.read()
            if not data.startswith(b"Return-Path: <"):
                fail("%s: partial or foreign file in new/: %s (%d bytes)" % (label, path, len(data)))
            body = strip_received(data)
            tok_line = body.split(b"\n")[1]
            check(tok_line.startswith(b"X-Token: "), "%s: no token in %s" % (label, path))
            token = tok_line[len(b"X-Token: "):]
            if body != to_lf(content(token)):
                fail("%s: %s is not the complete message for %s (%d bytes, expected %d)"
                     % (label, path, token.decode(), len(body), len(to_lf(content(token)))))
            found[(box, token)] = found.get((box, token), 0) + 1
    dups = [k for k, v in found.items() if v != 1]
    check(not dups, "%s: messages in more than one file: %r" % (label, dups[:5]))
    missing = [(t.decode(), b) for t, rcpts in acked for b in rcpts if (b, t) not in found]
    check(not missing, "%s: %d acknowledged messages missing, e.g. %r"
          % (label, len(missing), missing[:5]))
    return nfiles


def test_kill9_under_load():
    kill9_rounds(Server(), journal=False)


def test_kill9_under_load_journal():
    """The same with spool_journal_directory: a 250 may come before the
    Maildir copy exists, so the check is made after the restart, which
    replays the journal before it greets."""
    d = tempdir()
    kill9_rounds(Server({"spool_journal_directory": os.path.join(d, "journal")}, directory=d),
                 journal=True)
    left = os.listdir(os.path.join(d, "journal"))
    eq(left, [], "journal segments left after a clean stop")


def kill9_rounds(srv, journal):
    load = Load(srv)
    try:
        before = 0
        for r in range(ROUNDS):
            if r > 0 and not journal:
                srv.start(keep_port=True)
            deadline = time.monotonic() + LOAD_SECONDS
            # At least some acknowledged messages per round, bounded in time.
            while time.monotonic() < deadline or (len(load.snapshot()) == before and
                                                  time.monotonic() < deadline + 10):
                time.sleep(0.05)
            srv.kill9()
            acked = load.snapshot()
            check(len(acked) > before, "round %d: no message acknowledged" % r)
            if journal:
                # The acknowledged messages may still be in the journal
                # only: every one must be in new/ once ehlod is back (the
                # load clients are still trying, so it is under load too).
                srv.start(keep_port=True)
                recovered = srv.maillog(since_start=True).count("recovered from the spool journal")
                print("# round %d: %d messages recovered from the journal" % (r + 1, recovered))
            nfiles = verify(srv, acked, "after kill %d" % (r + 1))
            print("# round %d: %d acknowledged in total, %d files in new/, %d in tmp/"
                  % (r + 1, len(acked), nfiles, sum(len(srv.tmp_files(b)) for b in BOXES)))
            before = len(acked)
        check(not load.errors, "load clients saw protocol errors: %r" % load.errors[:5])
    finally:
        load.finish()
    # A last start on the same Maildirs, a clean stop, and one more check.
    if not journal:
        srv.start(keep_port=True)
    eq(srv.stop(), 0, "exit status after SIGTERM")
    verify(srv, load.snapshot(), "after the final stop")


if __name__ == "__main__":
    main(globals())
