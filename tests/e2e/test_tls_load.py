#!/usr/bin/python3
"""
1,000 concurrent TLS sessions (asyncio + /usr/bin/python3's ssl): every
session does STARTTLS and EHLO, then waits until all 1,000 are inside TLS at
the same time, then delivers one message and QUITs.  Afterwards every
message is in the Maildir, ehlod logged exactly one "disconnect" per
connection (and no lost connection or TLS failure), its final count of
connections matches, and it exits 0 on SIGTERM.  Against the ASan build
(meson's build-asan, via $EHLOD) LeakSanitizer and UBSan must be silent.
"""
import asyncio
import re
import time

from ehlotest import check, eq, fail, main, wait_until, DOMAIN, HOSTNAME
from tlscommon import pki, cert_settings, TlsServer, client_context

SESSIONS = 1000
DEADLINE = 60.0          # seconds for the whole run, sanitizer builds included
RCPT = "load@" + DOMAIN


async def read_reply(r):
    lines = []
    while True:
        line = await r.readline()
        if not line:
            raise EOFError("connection closed; so far %r" % lines)
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), lines


async def cmd(r, w, line, want):
    w.write(line + b"\r\n")
    code, lines = await read_reply(r)
    if code != want:
        raise AssertionError("%r: expected %d, got %r" % (line, want, lines))
    return lines


async def session(i, port, ctx, all_in_tls, state):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        code, _ = await read_reply(r)
        eq(code, 220, "greeting")
        await cmd(r, w, b"EHLO load%d.client.test" % i, 250)
        await cmd(r, w, b"STARTTLS", 220)
        await w.start_tls(ctx, server_hostname=HOSTNAME)
        lines = await cmd(r, w, b"EHLO load%d.client.test" % i, 250)
        check(not any(b"STARTTLS" in l for l in lines), "STARTTLS offered inside TLS")
        state["in_tls"] += 1
        state["peak"] = max(state["peak"], state["in_tls"])
        if state["in_tls"] + state["failed"] == SESSIONS:
            all_in_tls.set()
        await all_in_tls.wait()
        await cmd(r, w, b"MAIL FROM:<s%d@sender.test>" % i, 250)
        await cmd(r, w, b"RCPT TO:<%s>" % RCPT.encode(), 250)
        await cmd(r, w, b"DATA", 354)
        w.write(b"Subject: load %d\r\nX-Session: %d\r\n\r\n" % (i, i) + b"x" * 1000 + b"\r\n.\r\n")
        code, lines = await read_reply(r)
        eq(code, 250, "reply to the message")
        await cmd(r, w, b"QUIT", 221)
        state["in_tls"] -= 1
        state["done"] += 1
    finally:
        w.close()
        try:
            await w.wait_closed()
        except (OSError, ConnectionError, AssertionError):
            pass
        except Exception:   # ssl errors at close (no close_notify) are not the test's subject
            pass


async def run(port, ctx):
    all_in_tls = asyncio.Event()
    state = {"in_tls": 0, "peak": 0, "done": 0, "failed": 0}

    async def guarded(i):
        try:
            await session(i, port, ctx, all_in_tls, state)
            return None
        except Exception as e:
            state["failed"] += 1
            if state["in_tls"] + state["failed"] == SESSIONS:
                all_in_tls.set()
            return "session %d: %r" % (i, e)

    tasks = []
    for i in range(SESSIONS):
        tasks.append(asyncio.ensure_future(guarded(i)))
        if i % 50 == 49:
            await asyncio.sleep(0.01)   # spread the SYNs over the listen backlogs
    errors = await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
    return [e for e in errors if e], state


def test_thousand_concurrent_tls_sessions():
    st = cert_settings(pki(), ("ec",))
    st.update({"smtpd_client_connection_count_limit": "0",
               "smtpd_tls_handshake_timeout": "60s", "smtpd_timeout": "120s"})
    srv = TlsServer(st)
    ctx = client_context()
    t0 = time.monotonic()
    try:
        errors, state = asyncio.run(run(srv.port, ctx))
    except asyncio.TimeoutError:
        fail("%d TLS sessions did not finish within %.0fs" % (SESSIONS, DEADLINE))
    elapsed = time.monotonic() - t0
    check(not errors, "%d sessions failed, e.g. %s" % (len(errors), errors[:5]))
    eq(state["done"], SESSIONS, "sessions that delivered")
    eq(state["peak"], SESSIONS, "sessions inside TLS at the same time")

    files = wait_until(lambda: len(srv.new_files(RCPT)) >= SESSIONS and srv.new_files(RCPT),
                       30, what="all messages in the Maildir")
    eq(len(files), SESSIONS, "messages in the Maildir")
    seen = set()
    for path in files:
        with open(path, "rb") as f:
            m = re.search(rb"\nX-Session: (\d+)\n", f.read())
        check(m, "message %s lacks X-Session" % path)
        seen.add(int(m.group(1)))
    eq(len(seen), SESSIONS, "distinct sessions in the Maildir")

    wait_until(lambda: srv.maillog().count(" disconnect from ") >= SESSIONS, 30,
               what="%d disconnect lines" % SESSIONS)
    log = srv.maillog()
    eq(log.count(" connect from "), SESSIONS, "connect lines")
    eq(log.count(" disconnect from "), SESSIONS, "disconnect lines")
    eq(log.count("TLS established from "), SESSIONS, "TLS established lines")
    check("lost connection" not in log and "TLS handshake failed" not in log,
          "lost or failed sessions in the log")

    mark = srv.log_size()
    rc = srv.stop(timeout=60)
    eq(rc, 0, "ehlod exit status after SIGTERM")
    stopped = re.search(r"ehlod stopped: (\d+) connections, (\d+) messages accepted",
                        srv.maillog()[mark:])
    check(stopped, "no 'ehlod stopped' line")
    eq((int(stopped.group(1)), int(stopped.group(2))), (SESSIONS, SESSIONS),
       "connections and messages at exit")
    err = srv.read_err()
    for bad in ("ERROR: LeakSanitizer", "ERROR: AddressSanitizer", "runtime error"):
        check(bad not in err, "sanitizer report in ehlod's stderr:\n%s" % err[-6000:])
    print("# %d TLS sessions in %.1fs" % (SESSIONS, elapsed))


if __name__ == "__main__":
    main(globals())
