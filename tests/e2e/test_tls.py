#!/usr/bin/python3
"""
STARTTLS (RFC 3207) and implicit TLS (RFC 8314) with real clients: openssl
s_client, swaks, curl, /usr/bin/python3 smtplib and msmtp each deliver over
STARTTLS with certificate verification against the test CA; swaks --tlsc
and curl smtps:// deliver on a submissions listener.  Every delivery checks
the Maildir file, the Received: header (with ESMTPS and the tls clause) and
the "TLS established" log line.  Postfix's smtp client is in
test_tls_postfix.py; policy and attacks in test_tls_policy.py.
"""
import re
import smtplib
import ssl

from ehlotest import (main, need_tool, run_tool, eq, check, strip_received, to_lf, DOMAIN,
                      HOSTNAME)
from tlscommon import (pki, cert_settings, TlsServer, client_context, check_tls_delivery, Proc,
                       s_client, write_file)

HEADERS = (b"From: <alice@sender.test>\r\n"
           b"To: <%s>\r\n"
           b"Subject: %s over TLS\r\n"
           b"Message-ID: <%s@sender.test>\r\n"
           b"\r\n")
BODY = b"first line\r\n.dotted line\r\nlast line\r\n"


def message(rcpt, tag):
    return HEADERS % (rcpt.encode(), tag.encode(), tag.encode()) + BODY


def server(**kw):
    return TlsServer(cert_settings(pki(), ("ec", "rsa")), **kw)


def test_openssl_s_client():
    srv = server()
    rcpt = "s_client@" + DOMAIN
    msg = message(rcpt, "s_client")
    mark = srv.log_size()
    # -crlf with bare-LF input (STACK.md §2.1: CRLF input plus -crlf gives
    # \r\r\n).  Commands in lower case as well: RFC 5321 §2.4.
    p = Proc(s_client(srv.port, "-crlf"))
    try:
        p.wait_for("Verify return code: 0 (ok)", timeout=30)
        p.write(b"EHLO sclient.test\n")
        at = p.wait_for("250 ")
        p.write(b"mail from:<alice@sender.test>\nrcpt to:<%s>\ndata\n" % rcpt.encode())
        at = p.wait_for("354 ", after=at)
        p.write(msg.replace(b"\r\n", b"\n").replace(b"\n.", b"\n..") + b".\n")
        at = p.wait_for("250 2.0.0", after=at)
        p.write(b"QUIT\n")
        p.wait_for("221 ", after=at)
        rc = p.finish()
    finally:
        p.kill()
    out = p.text()
    # s_client exits 1 ("unexpected eof while reading") when the server
    # closes after 221 without close_notify.
    eq(rc, 0, "s_client exit status")
    check("unexpected eof" not in out, "no close_notify after 221:\n%s" % out[-1500:])
    ehlo = out[out.index("250-" + HOSTNAME):]
    check("STARTTLS" not in ehlo.split("250 ")[0], "EHLO inside TLS lists STARTTLS:\n%s" % ehlo)
    check_tls_delivery(srv, rcpt, mark, msg)


def test_swaks_starttls():
    need_tool("/usr/bin/swaks")
    srv = server()
    rcpt = "swaks@" + DOMAIN
    msg = message(rcpt, "swaks")
    path = write_file(srv.dir, "swaks.eml", msg[:-2])
    mark = srv.log_size()
    p = run_tool(["/usr/bin/swaks", "--server", "127.0.0.1:%d" % srv.port, "--helo", "swaks.test",
                  "--from", "alice@sender.test", "--to", rcpt, "--data", path, "--tls",
                  "--tls-verify", "--tls-ca-path", pki().ca, "--tls-sni", HOSTNAME,
                  "--timeout", "30"])
    out = p.stdout.decode()
    check("=== TLS started with cipher" in out, "swaks did not start TLS:\n%s" % out)
    check_tls_delivery(srv, rcpt, mark, msg)


def test_swaks_wrong_ca_fails():
    """Control for the verification above: a CA that did not sign the
    server certificate makes swaks fail (exit 29), and nothing arrives."""
    need_tool("/usr/bin/swaks")
    srv = server()
    rcpt = "swaks-bad@" + DOMAIN
    # The client certificate is not a CA: verification must fail.
    p = run_tool(["/usr/bin/swaks", "--server", "127.0.0.1:%d" % srv.port, "--from",
                  "alice@sender.test", "--to", rcpt, "--tls", "--tls-verify", "--tls-ca-path",
                  pki().client, "--timeout", "30"], ok=(29,))
    check("certificate verify failed" in p.stdout.decode(), "swaks: %s" % p.stdout.decode())
    eq(srv.messages(rcpt), [], "messages after a failed verification")


def test_curl_ssl_reqd():
    need_tool("/usr/bin/curl")
    srv = server()
    rcpt = "curl@" + DOMAIN
    msg = message(rcpt, "curl")
    path = write_file(srv.dir, "curl.eml", msg)
    mark = srv.log_size()
    run_tool(["/usr/bin/curl", "-sS", "--max-time", "30",
              "--url", "smtp://%s:%d/curl.test" % (HOSTNAME, srv.port),
              "--resolve", "%s:%d:127.0.0.1" % (HOSTNAME, srv.port),
              "--ssl-reqd", "--cacert", pki().ca,
              "--mail-from", "alice@sender.test", "--mail-rcpt", rcpt, "--upload-file", path])
    check_tls_delivery(srv, rcpt, mark, msg)


def test_smtplib_starttls():
    srv = server()
    rcpt = "py@" + DOMAIN
    msg = message(rcpt, "smtplib")
    mark = srv.log_size()
    # starttls() checks the certificate against the host given to SMTP()
    # (STACK.md §4): "localhost" is in the certificate's SAN.
    with smtplib.SMTP("localhost", srv.port, local_hostname="py.test", timeout=30) as c:
        c.ehlo()
        check(c.has_extn("starttls"), "STARTTLS not advertised")
        code, _ = c.starttls(context=client_context())
        eq(code, 220, "STARTTLS reply")
        c.ehlo()
        check(not c.has_extn("starttls"), "EHLO after TLS still advertises STARTTLS")
        eq(c.sendmail("alice@sender.test", [rcpt], msg), {}, "refused recipients")
    check_tls_delivery(srv, rcpt, mark, msg)


def test_received_cipher_iana_name_tls12():
    """Over TLS 1.2 the Received: tls clause (and the log line) names the
    cipher suite as the IANA registry does (RFC 8314 §4.3), not OpenSSL's
    "ECDHE-ECDSA-AES256-GCM-SHA384"; TLS 1.3 names are the same in both."""
    srv = server()
    rcpt = "tls12@" + DOMAIN
    msg = message(rcpt, "tls12")
    mark = srv.log_size()
    ctx = client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with smtplib.SMTP("localhost", srv.port, local_hostname="py.test", timeout=30) as c:
        c.starttls(context=ctx)
        eq(c.sendmail("alice@sender.test", [rcpt], msg), {}, "refused recipients")
    cipher, version = check_tls_delivery(srv, rcpt, mark, msg)
    eq(version, "TLSv1.2", "protocol")
    check(re.fullmatch(r"TLS_ECDHE_(ECDSA|RSA)_WITH_[A-Z0-9_]+", cipher),
          "Received: tls clause does not use the IANA name: %r" % cipher)


def test_msmtp_starttls():
    need_tool("/usr/bin/msmtp")
    srv = server()
    rcpt = "msmtp@" + DOMAIN
    msg = message(rcpt, "msmtp")
    mark = srv.log_size()
    run_tool(["/usr/bin/msmtp", "--host=127.0.0.1", "--port=%d" % srv.port,
              "--domain=msmtp.test", "--tls=on", "--tls-starttls=on",
              "--tls-trust-file=%s" % pki().ca, "--tls-host-override=%s" % HOSTNAME,
              "--auth=off", "--timeout=30", "-f", "alice@sender.test", rcpt], input=msg)
    check_tls_delivery(srv, rcpt, mark)
    # msmtp adds a Date: header in front of the message; the rest is as sent.
    got = strip_received(srv.messages(rcpt)[0])
    check(got.startswith(b"Date: ") and got.endswith(to_lf(msg)), "msmtp message: %r" % got)


def test_swaks_implicit_tls():
    need_tool("/usr/bin/swaks")
    srv = server(submissions=True)
    rcpt = "swaks-tlsc@" + DOMAIN
    msg = message(rcpt, "swaks-tlsc")
    path = write_file(srv.dir, "tlsc.eml", msg[:-2])
    mark = srv.log_size()
    p = run_tool(["/usr/bin/swaks", "--server", "127.0.0.1:%d" % srv.sub_port, "--tlsc",
                  "--tls-verify", "--tls-ca-path", pki().ca, "--tls-sni", HOSTNAME,
                  "--helo", "tlsc.test", "--from", "alice@sender.test", "--to", rcpt,
                  "--data", path, "--timeout", "30"])
    out = p.stdout.decode()
    # Implicit TLS: the greeting comes inside TLS, and no STARTTLS is offered.
    check("<~  220 " in out, "greeting not read over TLS:\n%s" % out)
    check("STARTTLS" not in out, "STARTTLS offered on a submissions listener:\n%s" % out)
    check_tls_delivery(srv, rcpt, mark, msg)


def test_curl_smtps():
    need_tool("/usr/bin/curl")
    srv = server(submissions=True)
    rcpt = "curl-smtps@" + DOMAIN
    msg = message(rcpt, "curl-smtps")
    path = write_file(srv.dir, "smtps.eml", msg)
    mark = srv.log_size()
    run_tool(["/usr/bin/curl", "-sS", "--max-time", "30",
              "--url", "smtps://%s:%d/smtps.test" % (HOSTNAME, srv.sub_port),
              "--resolve", "%s:%d:127.0.0.1" % (HOSTNAME, srv.sub_port),
              "--cacert", pki().ca,
              "--mail-from", "alice@sender.test", "--mail-rcpt", rcpt, "--upload-file", path])
    check_tls_delivery(srv, rcpt, mark, msg)
    # The plain listener of the same daemon still offers STARTTLS.
    run_tool(["/usr/bin/curl", "-sS", "--max-time", "30",
              "--url", "smtp://%s:%d/plain.test" % (HOSTNAME, srv.port),
              "--resolve", "%s:%d:127.0.0.1" % (HOSTNAME, srv.port),
              "--ssl-reqd", "--cacert", pki().ca,
              "--mail-from", "alice@sender.test", "--mail-rcpt", rcpt, "--upload-file", path])
    check_tls_delivery(srv, rcpt, mark, msg, count=2)


if __name__ == "__main__":
    main(globals())
