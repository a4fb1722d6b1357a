#!/usr/bin/python3
"""
Postfix's own smtp client delivers to ehlod over STARTTLS: a private
Postfix instance (privpostfix.py) with relayhost = [127.0.0.1]:<ehlod port>,
smtp_tls_security_level = encrypt and smtp_tls_CAfile = the test CA relays
messages submitted to its smtpd by smtp-source and swaks.  ehlod must
receive them over TLS (Received: ESMTPS with the tls clause, the log line),
and Postfix must log a *Trusted* TLS connection (chain verified with the
CA) and status=sent.
"""
import os
import re

from ehlotest import check, eq, main, need_tool, run_tool, tempdir, wait_until, DOMAIN
from tlscommon import pki, cert_settings, TlsServer, check_tls_received, LOG_TLS
from privpostfix import PrivatePostfix

COUNT = 5


def test_postfix_relays_over_starttls():
    need_tool("/usr/sbin/postfix")
    need_tool("/usr/sbin/smtp-source")
    need_tool("/usr/bin/swaks")
    if os.geteuid() != 0:
        raise AssertionError("a private Postfix needs root (its master drops privileges)")
    srv = TlsServer(cert_settings(pki(), ("ec", "rsa")))
    pdir = tempdir("ehlo-e2e-postfix-")
    os.chmod(pdir, 0o755)
    pf = PrivatePostfix(pdir, {
        "relayhost": "[127.0.0.1]:%d" % srv.port,
        "smtp_tls_security_level": "encrypt",
        "smtp_tls_CAfile": pki().ca,
        "smtp_tls_loglevel": "1",
    })
    try:
        pf.start()
        rcpt = "postfix@" + DOMAIN
        run_tool(["/usr/sbin/smtp-source", "-m", str(COUNT), "-s", "2", "-l", "1024",
                  "-f", "alice@sender.test", "-t", rcpt, "-M", "source.test",
                  "127.0.0.1:%d" % pf.port])
        rcpt2 = "postfix-swaks@" + DOMAIN
        run_tool(["/usr/bin/swaks", "--server", "127.0.0.1:%d" % pf.port, "--helo", "swaks.test",
                  "--from", "alice@sender.test", "--to", rcpt2, "--header", "Subject: via postfix",
                  "--body", "relayed by a private postfix over STARTTLS", "--timeout", "30"])
        wait_until(lambda: len(srv.new_files(rcpt)) >= COUNT and srv.new_files(rcpt2), 60,
                   what="Postfix's relayed messages in ehlod's Maildir")
        plog = pf.log()
    finally:
        pf.stop()
    eq(len(srv.messages(rcpt)), COUNT, "messages relayed by Postfix")
    for m in srv.messages(rcpt) + srv.messages(rcpt2):
        check(re.search(rb"\tby relay\.example\.test \(Postfix\) with E?SMTP id ", m),
              "message did not pass the private Postfix: %r" % m[:400])
        check_tls_received(m)
    check(b"relayed by a private postfix" in srv.messages(rcpt2)[0], "swaks body lost")
    log = srv.maillog()
    tls_lines = LOG_TLS.findall(log)
    check(tls_lines, "no 'TLS established' in ehlod's log")
    check("STARTTLS" in log or "starttls=1" in log, "ehlod did not count STARTTLS")
    check(re.search(r"Trusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.[23]"
                    % srv.port, plog),
          "Postfix did not log a trusted TLS connection to ehlod:\n%s" % plog[-4000:])
    sent = re.findall(r"to=<%s>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent"
                      % (re.escape(rcpt), srv.port), plog)
    eq(len(sent), COUNT, "Postfix status=sent lines for %s" % rcpt)
    check("status=deferred" not in plog and "status=bounced" not in plog,
          "Postfix deferred or bounced mail:\n%s" % plog[-4000:])


def test_postfix_encrypt_refuses_plaintext_server():
    """Control: with smtpd_tls_security_level = none ehlod offers no
    STARTTLS, and Postfix at level encrypt must not deliver in plaintext."""
    need_tool("/usr/sbin/postfix")
    need_tool("/usr/bin/swaks")
    srv = TlsServer({"smtpd_tls_security_level": "none"})
    pdir = tempdir("ehlo-e2e-postfix-")
    os.chmod(pdir, 0o755)
    pf = PrivatePostfix(pdir, {
        "relayhost": "[127.0.0.1]:%d" % srv.port,
        "smtp_tls_security_level": "encrypt",
        "smtp_tls_CAfile": pki().ca,
    })
    try:
        pf.start()
        rcpt = "plain@" + DOMAIN
        run_tool(["/usr/bin/swaks", "--server", "127.0.0.1:%d" % pf.port, "--from",
                  "alice@sender.test", "--to", rcpt, "--timeout", "30"])
        wait_until(lambda: "status=deferred" in pf.log(), 30, what="Postfix deferring the message")
        plog = pf.log()
    finally:
        pf.stop()
    check("TLS is required, but was not offered" in plog,
          "Postfix's deferral reason:\n%s" % plog[-3000:])
    eq(srv.messages(rcpt), [], "messages delivered in plaintext")


if __name__ == "__main__":
    main(globals())
