#!/usr/bin/python3
"""
Hostile clients at random, in bulk: up to 40 connections at once, each
sent a random mix of valid and invalid commands, bare CR/LF, NUL bytes,
data terminators out of place, overlong lines, PROXY headers (127.0.0.1
is a trusted proxy here) and random bytes, some before the greeting, some
half-closed, some reset (SO_LINGER 0), with small limits so that every
error path is taken. Fixed seeds, so a failure can be replayed with the
same seed. Afterwards ehlod must still be running, have printed no
sanitizer report (the suite also runs against build-asan), still deliver
a well-behaved client's message, and stop cleanly on SIGTERM.

This found a real crash: a client whose bytes arrived before the greeting
was set up made pregreet() dereference NULL (4 of 5 seeds died with
SIGSEGV before the fix in session_start).
"""
import random
import socket
import struct
import time

from ehlotest import Server, Client, check, eq, main, strip_received, DOMAIN

SEEDS = range(1, 7)
OPS = 3000
DEADLINE = 60.0     # seconds for one seed, sanitizer builds included

CMDS = [b"EHLO x.test", b"HELO x", b"EHLO", b"EHLO [127.0.0.1]", b"EHLO [IPv6:::1]",
        b"MAIL FROM:<a@b.test>", b"MAIL FROM:<> SIZE=100 BODY=8BITMIME",
        b"MAIL FROM:<a@b.test> SMTPUTF8", b"MAIL FROM:<a@b.test> SIZE=999999999",
        b"MAIL FROM:<" + b"a" * 300 + b">", b"RCPT TO:<u@" + DOMAIN.encode() + b">",
        b"RCPT TO:<u@other.test>", b"RCPT TO:<postmaster>",
        b"RCPT TO:<u@" + DOMAIN.encode() + b"> NOTIFY=SUCCESS ORCPT=rfc822;x@y.test",
        b"RCPT TO:<\"q\\\"x\"@" + DOMAIN.encode() + b">", b"DATA", b"BDAT 10", b"BDAT 0 LAST",
        b"BDAT 5 LAST", b"BDAT x", b"RSET", b"NOOP x", b"QUIT", b"VRFY x", b"HELP",
        b"STARTTLS", b"AUTH PLAIN", b"\x00\xff\r", b"PROXY TCP4 192.0.2.1 127.0.0.1 1 25",
        b"X" * 600]


def piece(rng):
    r = rng.random()
    if r < 0.55:
        return rng.choice(CMDS) + rng.choice([b"\r\n", b"\r\n", b"\n", b"\r", b""])
    if r < 0.7:
        return b"line\r\n.\r\n" if rng.random() < .5 else b"x" * rng.randint(1, 5000) + b"\r\n"
    if r < 0.8:
        return b"\r\n.\r\n"
    if r < 0.9:
        return rng.randbytes(rng.randint(1, 300))
    if rng.random() < .5:
        return b"PROXY " + rng.randbytes(rng.randint(1, 40)) + b"\r\n"
    return b"\r\n\r\n\x00\r\nQUIT\n" + rng.randbytes(20)


def chaos(seed):
    rng = random.Random(seed)
    srv = Server({"smtpd_client_connection_count_limit": "0", "smtpd_timeout": "3s",
                  "smtpd_data_timeout": "3s", "message_size_limit": "200000",
                  "smtpd_message_memory_limit": "600000", "smtpd_hard_error_limit": "5",
                  "smtpd_upstream_proxy_hosts": "127.0.0.1",
                  "smtpd_upstream_proxy_timeout": "1s", "smtpd_recipient_limit": "5"})
    socks = []
    end = time.monotonic() + DEADLINE
    for op in range(OPS):
        if time.monotonic() > end:
            break
        if len(socks) < 40 and rng.random() < 0.5:
            try:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
                s.setblocking(False)
                if rng.random() < 0.2:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                socks.append(s)
            except OSError:
                pass
        if not socks:
            continue
        s = rng.choice(socks)
        a = rng.random()
        try:
            if a < 0.75:
                s.send(piece(rng))
            elif a < 0.85:
                try:
                    s.recv(65536)
                except BlockingIOError:
                    pass
            elif a < 0.92:
                s.shutdown(socket.SHUT_WR)
            else:
                s.close()
                socks.remove(s)
        except OSError:
            s.close()
            if s in socks:
                socks.remove(s)
        if op % 200 == 0:
            check(srv.running(), "seed %d: ehlod died after %d operations:\n%s"
                  % (seed, op, srv.read_err()[-3000:]))
    for s in socks:
        s.close()
    check(srv.running(), "seed %d: ehlod died:\n%s" % (seed, srv.read_err()[-3000:]))
    # Still serving.
    c = Client(srv.port)
    c.ehlo()
    body = b"Subject: after seed %d\r\n\r\nstill here" % seed
    c.send_message("a@sender.test", ["after@" + DOMAIN], body)
    c.cmd("QUIT", 221)
    msgs = [strip_received(m) for m in srv.messages("after@" + DOMAIN)]
    eq(msgs, [body.replace(b"\r\n", b"\n") + b"\n"],
       "seed %d: the well-behaved client's message" % seed)
    eq(srv.stop(), 0, "seed %d: exit status after SIGTERM" % seed)
    err = srv.read_err()
    for bad in ("runtime error", "AddressSanitizer", "LeakSanitizer"):
        check(bad not in err, "seed %d: sanitizer report:\n%s" % (seed, err[-4000:]))


def test_chaos():
    for seed in SEEDS:
        chaos(seed)


if __name__ == "__main__":
    main(globals())
