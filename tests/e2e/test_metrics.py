#!/usr/bin/python3
"""
The Prometheus endpoint (metrics_listen): served over HTTP on loopback,
parsed with Debian's python3-prometheus-client, and the counters follow
what the sessions did (connects, messages, rejected connections, identity
refusals, sessions_active back to 0) and what SIGHUP did (a failed reload
shows, so that it can be alerted on).
"""
import os
import re
import socket
import ssl
import subprocess
import time
import urllib.request

from ehlotest import Server, Client, check, eq, main, free_port, tempdir, wait_until, DOMAIN
from tlscommon import pki

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:                         # pragma: no cover
    text_string_to_metric_families = None


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        eq(r.status, 200, "HTTP status")
        ctype = r.headers.get("Content-Type", "")
        check(ctype.startswith("text/plain; version=0.0.4"), "Content-Type %r" % ctype)
        text = r.read().decode()
    values = {}
    check(text_string_to_metric_families is not None, "python3-prometheus-client is missing")
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + ("{%s}" % ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
                            if s.labels else "")
            values[key] = s.value
    return values


def test_metrics_follow_sessions():
    mport = free_port()
    srv = Server({"metrics_listen": "127.0.0.1:%d" % mport,
                  "smtpd_client_connection_count_limit": "2",
                  "helo_check_fqdn": "reject"})
    m0 = scrape(mport)
    eq(m0["ehlo_up"], 1, "ehlo_up")
    eq(m0["ehlo_smtpd_connects_total"], 0, "connects before any client")
    c = Client(srv.port)
    c.ehlo("mail.example.com")     # .test is no public suffix: fqdn would refuse it
    for i in range(3):
        c.send_message("a@sender.test", ["m%d@%s" % (i, DOMAIN)], b"Subject: %d\r\n\r\nhi\r\n" % i)
    c2 = Client(srv.port)
    # A third connection from the same address is over the per-client limit.
    c3 = Client(srv.port, greeting=False)
    code, _ = c3.reply()
    eq(code, 421, "reply to the connection over the per-client limit")
    m1 = scrape(mport)
    eq(m1["ehlo_smtpd_sessions_active"], 2, "sessions_active with two clients")
    eq(m1["ehlo_smtpd_messages_processed_total"], 3, "messages_processed_total")
    eq(m1["ehlo_spool_deliveries_total"], 3, "spool deliveries")
    eq(m1["ehlo_spool_tmp_removed_total"], 0, "leftovers removed from tmp/")
    eq(m1["ehlo_smtpd_connections_rejected_total"], 1, "connections_rejected_total")
    # An identity refusal (fqdn = reject, applied at RCPT).
    c2.cmd("EHLO localhost", 250)
    # NOOP ends a group: a second command in the same write is improper
    # pipelining (RFC 2920 §3.1), counted once per session.
    c2.send(b"NOOP\r\nNOOP\r\nNOOP\r\n")
    for _ in range(3):
        c2.expect(250)
    c2.cmd("MAIL FROM:<a@sender.test>", 250)
    c2.cmd("RCPT TO:<x@%s>" % DOMAIN, 504)
    c.cmd("QUIT", 221)
    c2.cmd("QUIT", 221)
    wait_until(lambda: scrape(mport)["ehlo_smtpd_sessions_active"] == 0, 10,
               what="sessions_active back to 0")
    m2 = scrape(mport)
    eq(m2["ehlo_smtpd_connects_total"], 2, "connects_total")
    eq(m2["ehlo_smtpd_disconnects_total"], 2, "disconnects_total")
    eq(m2['ehlo_smtpd_helo_checks_total{outcome=reject}'], 1, "identity rejects")
    eq(m2["ehlo_smtpd_improper_pipelining_total"], 1, "sessions with improper pipelining")


def test_metrics_follow_reloads():
    mport = free_port()
    t0 = int(time.time())
    srv = Server({"metrics_listen": "127.0.0.1:%d" % mport})
    m0 = scrape(mport)
    eq(m0["ehlo_config_last_reload_successful"], 1, "last_reload_successful at start")
    eq(m0["ehlo_config_reloads_total{result=success}"], 0, "reloads before any SIGHUP")
    eq(m0["ehlo_config_reloads_total{result=failure}"], 0, "failed reloads before any SIGHUP")
    started = m0["ehlo_config_last_reload_success_timestamp_seconds"]
    check(t0 <= started <= time.time(), "load time %r not the start's (%d)" % (started, t0))

    # A broken file: the reload fails, the gauge drops, the time stays.
    srv.settings["message_size_limit"] = "lots"
    srv.reload("reload failed, keeping the running configuration")
    m1 = scrape(mport)
    eq(m1["ehlo_config_last_reload_successful"], 0, "last_reload_successful after a failure")
    eq(m1["ehlo_config_reloads_total{result=failure}"], 1, "failed reloads")
    eq(m1["ehlo_config_reloads_total{result=success}"], 0, "reloads that took")
    eq(m1["ehlo_config_last_reload_success_timestamp_seconds"], started,
       "load time after a failed reload")

    # Mended: the next reload takes, and the gauge is back to 1.
    time.sleep(1.1)         # so that the load time must move
    srv.settings["message_size_limit"] = "20000"
    srv.reload()
    m2 = scrape(mport)
    eq(m2["ehlo_config_last_reload_successful"], 1, "last_reload_successful after a reload")
    eq(m2["ehlo_config_reloads_total{result=success}"], 1, "reloads that took")
    eq(m2["ehlo_config_reloads_total{result=failure}"], 1, "failed reloads")
    check(m2["ehlo_config_last_reload_success_timestamp_seconds"] > started,
          "load time did not move on a reload that took")


def test_every_metric_documented():
    """Each metric the endpoint exports is listed in ehlod(8), METRICS."""
    mport = free_port()
    Server({"metrics_listen": "127.0.0.1:%d" % mport})
    names = {k.split("{")[0] for k in scrape(mport)}
    man = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "man", "ehlod.8")
    with open(man) as f:
        text = f.read()
    section = text.split(".SH METRICS", 1)[-1].split(".SH ", 1)[0]
    listed = set(re.findall(r"ehlo_[a-z0-9_]+", section))
    missing = sorted(names - listed)
    eq(missing, [], "metrics missing from ehlod(8) METRICS")


def not_after(pem):
    """A certificate file's notAfter, in seconds since the epoch."""
    out = subprocess.run(["/usr/bin/openssl", "x509", "-enddate", "-noout", "-in", pem],
                         stdout=subprocess.PIPE, check=True, timeout=30).stdout.decode()
    return ssl.cert_time_to_seconds(out.strip().split("=", 1)[1])


def test_certificate_expiry():
    """The earliest notAfter of the served certificates: a short-lived RSA
    pair loaded before a 30-day ECDSA one sets it (not only the last one
    loaded), a reload with other certificates moves it, and a server
    without TLS does not export it."""
    p = pki()
    d = tempdir()
    short_crt, short_key = os.path.join(d, "short.pem"), os.path.join(d, "short.key")
    subprocess.run(["/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", short_key, "-out", short_crt, "-days", "2",
                    "-subj", "/CN=mx.example.test"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True, timeout=60)
    mport = free_port()
    srv = Server({"metrics_listen": "127.0.0.1:%d" % mport,
                  "smtpd_tls_security_level": "may",
                  "smtpd_tls_cert_file": "%s, %s" % (short_crt, p.ec),
                  "smtpd_tls_key_file": "%s, %s" % (short_key, p.ec_key)})
    check(not_after(short_crt) < not_after(p.ec), "the short pair expires first")
    eq(scrape(mport)["ehlo_tls_certificate_expiry_timestamp_seconds"], not_after(short_crt),
       "expiry with a 2-day RSA and a 30-day ECDSA certificate")
    srv.settings.update({"smtpd_tls_cert_file": p.ec2, "smtpd_tls_key_file": p.ec2_key})
    srv.reload()
    eq(scrape(mport)["ehlo_tls_certificate_expiry_timestamp_seconds"], not_after(p.ec2),
       "expiry after a reload with another certificate")
    mport2 = free_port()
    Server({"metrics_listen": "127.0.0.1:%d" % mport2, "smtpd_tls_security_level": "none"})
    check("ehlo_tls_certificate_expiry_timestamp_seconds" not in scrape(mport2),
          "expiry exported without TLS")


def test_pending_with_the_journal():
    """With the journal a 250 comes before the Maildir copy; a Maildir that
    cannot be made keeps the message pending (retried every 10 s), and the
    gauge shows it until the mailbox works again."""
    mport = free_port()
    d = tempdir()
    srv = Server({"metrics_listen": "127.0.0.1:%d" % mport,
                  "spool_journal_directory": os.path.join(d, "journal")}, directory=d)
    blocker = os.path.join(srv.mailbase, DOMAIN)
    with open(blocker, "w") as f:       # a file where the domain's directory goes
        f.write("not a directory\n")
    c = Client(srv.port)
    c.ehlo()
    c.send_message("a@sender.test", ["stuck@" + DOMAIN], b"Subject: stuck\r\n\r\nhi\r\n")
    c.cmd("QUIT", 221)
    wait_until(lambda: "delivery from the spool journal failed" in srv.maillog(), 10,
               what="the failed Maildir delivery in the log")
    m = scrape(mport)
    eq(m["ehlo_spool_journal_records_total"], 1, "messages journaled")
    eq(m["ehlo_spool_messages_pending"], 1, "messages pending behind a broken Maildir")
    os.unlink(blocker)
    wait_until(lambda: scrape(mport)["ehlo_spool_messages_pending"] == 0, 30,
               what="the retry to deliver the pending message")
    eq(len(srv.new_files("stuck@" + DOMAIN)), 1, "delivered after the retry")


def test_journal_broken_maildir_holds_back_no_one():
    """Journal mode: a message to ok@ and to blocked@, whose Maildir sits
    under a regular file, reaches ok@ at once; only blocked@'s copy stays
    pending and is retried, and once repaired each has the message once."""
    mport = free_port()
    d = tempdir()
    srv = Server({"metrics_listen": "127.0.0.1:%d" % mport,
                  "spool_journal_directory": os.path.join(d, "journal")}, directory=d)
    os.makedirs(os.path.join(srv.mailbase, DOMAIN), exist_ok=True)
    blocker = os.path.join(srv.mailbase, DOMAIN, "blocked")
    with open(blocker, "w") as f:       # a file where blocked@'s Maildir goes
        f.write("not a directory\n")
    c = Client(srv.port)
    c.ehlo()
    c.send_message("a@sender.test", ["ok@" + DOMAIN, "blocked@" + DOMAIN],
                   b"Subject: two\r\n\r\nhi\r\n")
    c.cmd("QUIT", 221)
    wait_until(lambda: len(srv.new_files("ok@" + DOMAIN)) == 1, 5,
               what="ok@'s copy, with blocked@'s Maildir broken")
    wait_until(lambda: "delivery from the spool journal failed for 1 of 2" in srv.maillog(),
               10, what="the failed copy in the log")
    eq(scrape(mport)["ehlo_spool_messages_pending"], 1, "pending behind the broken Maildir")
    # Acknowledged, so not a message refused with 4xx; each failed attempt
    # counts as a background failure.
    m = scrape(mport)
    eq(m["ehlo_spool_delivery_failures_total"], 0, "messages refused with 4xx")
    check(m["ehlo_spool_background_delivery_failures_total"] >= 1,
          "background delivery failures: %r" % m["ehlo_spool_background_delivery_failures_total"])
    os.unlink(blocker)
    wait_until(lambda: scrape(mport)["ehlo_spool_messages_pending"] == 0, 30,
               what="the retry of blocked@'s copy")
    eq(len(srv.new_files("blocked@" + DOMAIN)), 1, "blocked@'s copies after the retry")
    eq(len(srv.new_files("ok@" + DOMAIN)), 1, "ok@'s copies after the retry")


def test_journal_recovery_failure_retried_while_running():
    """Journal mode: a message that recovery at start cannot deliver (its
    Maildir still broken) is retried while ehlod runs, every 10 s, and
    counted as pending meanwhile. Before, recovery kept it for the next
    start: the gauge said 0, and the repaired Maildir got nothing until a
    restart."""
    mport = free_port()
    d = tempdir()
    srv = Server({"metrics_listen": "127.0.0.1:%d" % mport,
                  "spool_journal_directory": os.path.join(d, "journal")}, directory=d)
    os.makedirs(os.path.join(srv.mailbase, DOMAIN), exist_ok=True)
    blocker = os.path.join(srv.mailbase, DOMAIN, "blocked")
    with open(blocker, "w") as f:       # a file where blocked@'s Maildir goes
        f.write("not a directory\n")
    c = Client(srv.port)
    c.ehlo()
    c.send_message("a@sender.test", ["blocked@" + DOMAIN], b"Subject: kept\r\n\r\nhi\r\n")
    c.cmd("QUIT", 221)
    wait_until(lambda: "delivery from the spool journal failed" in srv.maillog(), 10,
               what="the failed delivery in the log")
    srv.kill9()
    srv.start()                         # recovery fails for blocked@ again
    check("could not be delivered; retrying them every 10 s" in srv.maillog(since_start=True),
          "recovery did not hand the message to the retry queue:\n%s"
          % srv.maillog(since_start=True)[-2000:])
    eq(scrape(mport)["ehlo_spool_messages_pending"], 1, "pending after the failed recovery")
    os.unlink(blocker)
    wait_until(lambda: len(srv.new_files("blocked@" + DOMAIN)) == 1, 15,
               what="the recovered message's retry, without a restart")
    wait_until(lambda: scrape(mport)["ehlo_spool_messages_pending"] == 0, 5,
               what="pending back to 0")
    srv.stop()
    eq(os.listdir(os.path.join(d, "journal")), [], "journal segments after a clean stop")


def test_oversized_request_refused():
    """A request whose headers never end (one line trickling on) is cut off
    at 8 KiB of headers, not buffered without bound; scrapes go on."""
    mport = free_port()
    Server({"metrics_listen": "127.0.0.1:%d" % mport})
    s = socket.create_connection(("127.0.0.1", mport), timeout=10)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Long: ")
    closed, sent = False, 0
    chunk = b"a" * 4096
    try:
        while sent < 1 << 20 and not closed:        # at most 1 MiB
            s.sendall(chunk)
            sent += len(chunk)
            s.setblocking(False)
            try:
                data = s.recv(4096)
                closed = True                        # a reply or EOF: refused
                check(data == b"" or data.startswith(b"HTTP/1.1 4"),
                      "reply to an oversized request: %r" % data[:80])
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        # The MiB can sit in the sockets' buffers before ehlod's loop has
        # run at all (a loaded machine): give it 5 s to refuse.
        s.settimeout(5)
        try:
            data = s.recv(4096)
            closed = True
            check(data == b"" or data.startswith(b"HTTP/1.1 4"),
                  "reply to an oversized request: %r" % data[:80])
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
    s.close()
    # Without the bound the server reads the whole MiB and waits for more
    # (what the client sent includes what the sockets' buffers took).
    check(closed, "headers of %d bytes were still being read" % sent)
    eq(scrape(mport)["ehlo_up"], 1, "a scrape after the oversized request")


def test_head_has_no_body():
    """HEAD gets GET's headers and no content (RFC 9110 §9.3.2): on a
    keep-alive connection the next response must start right after the
    HEAD's headers. libevent sent the whole body after them, which the
    client then read as the next response."""
    mport = free_port()
    Server({"metrics_listen": "127.0.0.1:%d" % mport})
    s = socket.create_connection(("127.0.0.1", mport), timeout=10)
    s.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        check(chunk, "connection closed before the HEAD response's headers")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200"), "HEAD status: %r" % head[:40])
    length = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    check(length and int(length[0].split(b":")[1]) > 1000,
          "HEAD without GET's Content-Length: %r" % head)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    while len(rest) < 12:
        chunk = s.recv(65536)
        check(chunk, "connection closed before the GET response")
        rest += chunk
    check(rest.startswith(b"HTTP/1.1 200"), "after HEAD's headers came %r" % rest[:40])
    s.close()


def test_metrics_off_by_default():
    srv = Server()
    check("metrics on" not in srv.maillog(), "metrics endpoint started without metrics_listen")


if __name__ == "__main__":
    main(globals())
