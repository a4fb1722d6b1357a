#!/usr/bin/python3
"""
STARTTLS rules and attacks, driven over raw sockets and /usr/bin/python3's
ssl module: plaintext injection after STARTTLS (CVE-2011-0411), the
`encrypt` security level, the state reset and command rules of RFC 3207,
no certificate (454), closes without close_notify in both directions,
protocol versions, certificate selection (ECDSA/RSA by signature
algorithms, SNI map), resumption only for the same server name,
client-certificate fingerprints and a certificate
reload on SIGHUP under a live TLS session.
"""
import os
import re
import shutil
import signal
import ssl
import warnings

from ehlotest import (Client, check, eq, fail, main, received_header, strip_received, DOMAIN, HOSTNAME)
from tlscommon import (pki, cert_settings, TlsServer, client_context, starttls, check_tls_delivery,
                       s_client_cert, peer_der, write_file, dirty_close, tcp_connect)
import tlspki


def server(pairs=("ec", "rsa"), extra=None, **kw):
    st = cert_settings(pki(), pairs)
    st.update(extra or {})
    return TlsServer(st, **kw)


def ehlo_keywords(lines):
    return [l[4:].split(" ")[0].upper() for l in lines[1:]]


def test_injection_cve_2011_0411():
    srv = server()
    mark = srv.log_size()
    c = Client(srv.port)
    c.ehlo("x")
    # STARTTLS and a pipelined NOOP in one segment: the NOOP is plaintext an
    # attacker could have injected; it must never run inside TLS.
    c.send(b"STARTTLS\r\nNOOP\r\n")
    c.expect(220, "Ready to start TLS")
    check(c.buf == b"", "ehlod answered the pipelined NOOP in plaintext: %r" % c.buf)
    c.sock = client_context().wrap_socket(c.sock, server_hostname=HOSTNAME)
    c.send(b"EHLO x\r\n")
    code, lines = c.reply()
    eq(code, 250, "first reply inside TLS")
    check(lines[0].startswith("250-" + HOSTNAME),
          "first reply inside TLS is not the EHLO reply (a NOOP reply?): %r" % lines)
    check("STARTTLS" not in ehlo_keywords(lines), "EHLO inside TLS lists STARTTLS: %r" % lines)
    # Nothing else is queued: the next reply is the one to this NOOP.
    c.cmd("NOOP", 250)
    c.cmd("QUIT", 221)
    c.close()
    line = srv.wait_log("plaintext pipelined after STARTTLS", since=mark)
    check("6 bytes" in line, "log does not count the 6 discarded bytes: %r" % line)
    disc = srv.wait_log(" disconnect from ", since=mark)
    check("noop=1" in disc, "NOOP count in %r (the injected NOOP ran?)" % disc)


def test_encrypt_level():
    srv = server(extra={"smtpd_tls_security_level": "encrypt"})
    rcpt = "enc@" + DOMAIN
    mark = srv.log_size()
    c = Client(srv.port)
    lines = c.ehlo()
    check("STARTTLS" in ehlo_keywords(lines), "STARTTLS not advertised: %r" % lines)
    # RFC 3207 §4: "530 Must issue a STARTTLS command first".
    c.cmd("MAIL FROM:<alice@sender.test>", 530, "5.7.0")
    c.cmd("RCPT TO:<%s>" % rcpt, 530, "5.7.0")
    c.cmd("DATA", 530, "5.7.0")
    # Nor anything but NOOP, EHLO, STARTTLS and QUIT (RSET, VRFY and HELP
    # were answered).
    for cmd in ("RSET", "VRFY root", "EXPN staff", "HELP"):
        c.cmd(cmd, 530, "5.7.0")
    c.cmd("NOOP", 250)
    c.cmd("STARTTLS now", 501)
    starttls(c)
    # The handshake forgets the session: MAIL needs a new EHLO (RFC 3207 §4.2).
    c.cmd("MAIL FROM:<alice@sender.test>", 503)
    lines = c.ehlo("enc.client.test")
    check("STARTTLS" not in ehlo_keywords(lines), "EHLO after TLS lists STARTTLS: %r" % lines)
    c.cmd("STARTTLS", 503, "5.5.1")
    msg = b"Subject: encrypt\r\n\r\nbody\r\n"
    c.send_message("alice@sender.test", [rcpt], msg[:-2])
    c.cmd("QUIT", 221)
    c.close()
    check_tls_delivery(srv, rcpt, mark, msg)
    rec = received_header(srv.messages(rcpt)[0]).decode()
    check(rec.startswith("Received: from enc.client.test "),
          "Received: does not name the EHLO given inside TLS: %r" % rec[:100])


def test_no_certificate():
    srv = TlsServer({"smtpd_tls_auto_cert": "no", "smtpd_tls_security_level": "may"})
    c = Client(srv.port)
    lines = c.ehlo()
    check("STARTTLS" not in ehlo_keywords(lines), "STARTTLS advertised without a certificate")
    c.cmd("STARTTLS", 454, "4.7.0")
    # The session stays usable in plaintext.
    msg = b"Subject: plain\r\n\r\nbody\r\n"
    c.send_message("alice@sender.test", ["nocert@" + DOMAIN], msg)
    c.cmd("QUIT", 221)
    eq(len(srv.messages("nocert@" + DOMAIN)), 1, "plaintext delivery after 454")


def test_close_notify_after_quit():
    """After 221 the server ends TLS with close_notify (RFC 8446 §6.1)
    before closing TCP; without it the client cannot tell a truncation
    attack from the end of the session, and OpenSSL 3 clients report
    "unexpected eof while reading"."""
    srv = server()
    c = Client(srv.port)
    c.ehlo()
    # Python's contexts set OP_IGNORE_UNEXPECTED_EOF by default (so did
    # this test, vacuously, until it cleared it).
    ctx = client_context()
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    starttls(c, ctx, suppress_ragged_eofs=False)
    c.ehlo()
    c.cmd("QUIT", 221)
    try:
        data = c.sock.recv(100)
    except ssl.SSLError as e:   # SSLEOFError, or UNEXPECTED_EOF_WHILE_READING
        fail("ehlod closed TCP after 221 without a TLS close_notify: %s" % e)
    eq(data, b"", "data after 221")


def _dirty_close_and_serve(srv, port, implicit):
    mark = srv.log_size()
    s = tcp_connect(port)
    c = Client.__new__(Client)
    c.buf = b""
    if implicit:
        c.sock = client_context().wrap_socket(s, server_hostname=HOSTNAME)
        c.expect(220)
    else:
        c.sock = s
        c.expect(220)
        c.ehlo()
        starttls(c)
    c.ehlo()
    c.cmd("MAIL FROM:<alice@sender.test>", 250)
    dirty_close(c.sock)
    line = srv.wait_log(" disconnect from ", since=mark)
    log = srv.maillog()[mark:]
    check(re.search(r"lost connection after MAIL from ", log),
          "no 'lost connection after MAIL' line:\n%s" % log)
    check(not re.search(r"TLS handshake failed|(?i:unexpected eof|ssl routines|error:)", log),
          "dirty close logged as an error:\n%s" % log)
    check("mail=1" in line, "disconnect line: %r" % line)
    # The daemon keeps serving.
    mark = srv.log_size()
    c2 = Client(srv.port)
    c2.ehlo()
    starttls(c2)
    c2.ehlo()
    rcpt = "after-dirty@" + DOMAIN
    n = len(srv.messages(rcpt))
    c2.send_message("alice@sender.test", [rcpt], b"Subject: after\r\n\r\nx\r\n")
    c2.cmd("QUIT", 221)
    c2.close()
    check_tls_delivery(srv, rcpt, mark, count=n + 1)


def test_dirty_close_starttls():
    srv = server()
    _dirty_close_and_serve(srv, srv.port, implicit=False)


def test_dirty_close_implicit_tls():
    # The socket (not filter) TLS bufferevent: with OpenSSL 3 a missing
    # close_notify is an error unless SSL_OP_IGNORE_UNEXPECTED_EOF is set
    # (STACK.md §2.1, libevent #1288).
    srv = server(submissions=True)
    _dirty_close_and_serve(srv, srv.sub_port, implicit=True)


def test_protocol_versions():
    srv = server()
    for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        mark = srv.log_size()
        rc, out, _ = s_client_cert(srv.port, flag)
        check("Verify return code: 0 (ok)" in out, "%s handshake failed:\n%s" % (flag, out[-3000:]))
        check(re.search(r"(New, |Protocol *: *)%s\b" % re.escape(version), out),
              "%s: s_client did not negotiate %s:\n%s" % (flag, version, out[-2000:]))
        srv.wait_log("TLS established from unknown[127.0.0.1]: %s " % version, since=mark)
    # TLS 1.1 with a client that could do it (security level 0 allows the
    # MD5/SHA-1 handshake signatures TLS 1.1 needs): refused by default.
    mark = srv.log_size()
    rc, out, _ = s_client_cert(srv.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    check(rc != 0, "TLS 1.1 client exited 0:\n%s" % out[-2000:])
    check("Cipher is (NONE)" in out or "alert protocol version" in out or "no protocols" in out
          or "unsupported protocol" in out, "TLS 1.1 refusal not a protocol refusal:\n%s" % out[-2000:])
    line = srv.wait_log("TLS handshake failed", since=mark)
    check("TLS established" not in srv.maillog()[mark:], "TLS 1.1 session established")
    check("version" in line or "protocol" in line, "failure reason does not name the protocol: %r" % line)
    check("lib(0)" not in line, "failure reason carries libevent's own code: %r" % line)


def test_protocol_versions_control():
    """Control for the refusal above: with smtpd_tls_protocols allowing
    TLS 1.1 and a cipher list at security level 0, the same client gets
    in, so the refusal comes from the default minimum."""
    srv = server(extra={"smtpd_tls_protocols": ">=TLSv1.1",
                        "smtpd_tls_ciphers": "DEFAULT@SECLEVEL=0"})
    mark = srv.log_size()
    rc, out, _ = s_client_cert(srv.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    check("Protocol  : TLSv1.1" in out, "TLS 1.1 not negotiated when allowed:\n%s" % out[-3000:])
    srv.wait_log("TLS established from unknown[127.0.0.1]: TLSv1.1 ", since=mark)


def _handshake_error(port, ctx, starttls_first):
    """Handshake with ctx; the client's SSLError (None if it succeeded)."""
    s = tcp_connect(port)
    if starttls_first:
        c = Client.__new__(Client)
        c.sock, c.buf = s, b""
        c.expect(220)
        c.ehlo()
        c.cmd("STARTTLS", 220)
    try:
        t = ctx.wrap_socket(s, server_hostname=HOSTNAME)
        t.close()
        return None
    except ssl.SSLError as e:
        return e
    finally:
        s.close()


def test_failed_handshake_sends_alert():
    """A handshake ehlod refuses ends with its fatal alert (RFC 5246
    §7.2.2, RFC 8446 §6.2: sent before the connection closes), so the
    client learns why: handshake_failure for no shared cipher,
    protocol_version for TLS 1.1. The session used to be freed with the
    alert still in its output, and the client read a bare EOF."""
    srv = server(submissions=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-SHA@SECLEVEL=0")   # RSA key exchange: not in ehlod's list
    mark = srv.log_size()
    e = _handshake_error(srv.sub_port, ctx, False)
    check(e is not None and e.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE",
          "no handshake_failure alert for a client without a shared cipher: %r" % e)
    srv.wait_log("TLS handshake failed", since=mark)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():   # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    mark = srv.log_size()
    e = _handshake_error(srv.port, ctx, True)
    check(e is not None and e.reason == "TLSV1_ALERT_PROTOCOL_VERSION",
          "no protocol_version alert for a TLS 1.1 client after STARTTLS: %r" % e)
    srv.wait_log("TLS handshake failed", since=mark)
    srv.wait_log(" disconnect from ", since=mark)


def _idle_after_ehlo(srv, port, implicit):
    mark = srv.log_size()
    s = tcp_connect(port)
    c = Client.__new__(Client)
    c.buf = b""
    if implicit:
        c.sock = client_context().wrap_socket(s, server_hostname=HOSTNAME)
        c.expect(220)
    else:
        c.sock = s
        c.expect(220)
        c.ehlo()
        starttls(c)
    c.ehlo()
    c.sock.settimeout(15)
    c.expect(421, "4.4.2")
    line = srv.wait_log("timeout after ", since=mark)
    check("timeout after EHLO from " in line and "not reading" not in line,
          "timeout line of an idle client that read every reply: %r" % line)
    c.close()


def test_idle_timeout_over_tls():
    """An idle TLS client that has read every reply gets the same as in
    plaintext when smtpd_timeout passes: 421 4.4.2 (RFC 5321 §4.5.3.2) and
    "timeout after EHLO", on a submissions listener and after STARTTLS.
    The TLS filter's write timer, armed by the EHLO reply and not disarmed
    when it was sent, used to fire first: a bare EOF, logged as "(not
    reading replies)"."""
    srv = server(submissions=True, extra={"smtpd_timeout": "3s"})
    _idle_after_ehlo(srv, srv.sub_port, True)
    _idle_after_ehlo(srv, srv.port, False)


def test_ecdsa_and_rsa_pair():
    p = pki()
    srv = server(("ec", "rsa"))
    rc, out, der = s_client_cert(srv.port)
    check(der is not None, "no server certificate in s_client output:\n%s" % out[-2000:])
    eq(der, tlspki.der(p.ec), "certificate for a default client (ECDSA expected)")
    rc, out, der = s_client_cert(srv.port, "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256", "-tls1_2")
    check("Verify return code: 0 (ok)" in out, "RSA-only handshake failed:\n%s" % out[-3000:])
    eq(der, tlspki.der(p.rsa), "certificate for a client limited to RSA signatures")
    rc, out, der = s_client_cert(srv.port, "-sigalgs", "RSA-PSS+SHA256:RSA-PSS+SHA384", "-tls1_3")
    eq(der, tlspki.der(p.rsa), "certificate for a TLS 1.3 client limited to RSA-PSS")
    # The order of the pairs in the configuration does not matter.
    srv2 = server(("rsa", "ec"))
    rc, out, der = s_client_cert(srv2.port)
    eq(der, tlspki.der(p.ec), "certificate for a default client, RSA configured first")


def test_sni_logged_bounded():
    """A client's SNI is logged sanitised and bounded: one of 100 DEL
    octets (400 octets escaped) is cut before it fills the 256-octet
    field, after a whole escape, with "..." (it was cut silently in the
    middle of an escape: "\\x7f...\\x7")."""
    srv = server(("ec",))
    mark = srv.log_size()
    code, out, _ = s_client_cert(srv.port, servername=b"\x7f" * 100)
    line = srv.wait_log(" sni=", since=mark)
    m = re.search(r" sni=(\S*)", line)
    check(m and re.fullmatch(r"(\\x7f){1,63}\.\.\.", m.group(1)),
          "SNI not cut after a whole escape with a mark: %r" % line)


def test_sni_map():
    p = pki()
    d = os.path.join(pki().dir)
    smap = write_file(d, "sni.map", "# test map\nother.example.test %s %s\n" % (p.sni, p.sni_key))
    srv = server(("ec",), extra={"tls_server_sni_maps": smap})
    mark = srv.log_size()
    for name, want in (("other.example.test", p.sni), ("OTHER.example.test", p.sni),
                       (HOSTNAME, p.ec), ("unknown.example.test", p.ec)):
        c = Client(srv.port)
        c.ehlo()
        ctx = client_context(verify=False)
        starttls(c, ctx, server_hostname=name)
        eq(peer_der(c.sock), tlspki.der(want), "certificate for SNI %s" % name)
        c.ehlo()
        c.cmd("QUIT", 221)
        c.close()
    srv.wait_log("sni=other.example.test", since=mark)
    # Verified end to end for the mapped name.
    c = Client(srv.port)
    c.ehlo()
    starttls(c, client_context(), server_hostname="other.example.test")
    c.ehlo()
    c.close()


def _tls_session(srv, ctx, name, session=None):
    """One STARTTLS session with SNI name, offering session for resumption.
    Returns (resumed, server certificate DER, session to offer next)."""
    c = Client(srv.port)
    c.ehlo()
    c.cmd("STARTTLS", 220, "2.0.0")
    c.sock = ctx.wrap_socket(c.sock, server_hostname=name, session=session)
    c.ehlo()   # a TLS 1.3 ticket arrives after the handshake: read past it
    out = (c.sock.session_reused, peer_der(c.sock), c.sock.session)
    c.cmd("QUIT", 221)
    c.close()
    return out


def test_resumption_only_for_the_same_name():
    """RFC 6066 §3: the server "MUST NOT accept the request to resume the
    session if the server_name extension contains a different name"; a
    full handshake follows instead. Covers TLS 1.3 tickets and TLS 1.2
    tickets and session ids, for an SNI-map name and the default
    certificate's names; the same name (any case) still resumes."""
    p = pki()
    smap = write_file(p.dir, "sni-resume.map", "other.example.test %s %s\n" % (p.sni, p.sni_key))
    srv = server(("ec",), extra={"tls_server_sni_maps": smap})
    certs = {tlspki.der(p.sni): "sni-map cert", tlspki.der(p.ec): "default cert"}
    got, want = [], []
    for version, tickets in ((ssl.TLSVersion.TLSv1_3, True), (ssl.TLSVersion.TLSv1_2, True),
                             (ssl.TLSVersion.TLSv1_2, False)):
        what = "%s %s" % (version.name, "tickets" if tickets else "session ids")
        ctx = client_context(verify=False)
        ctx.maximum_version = version
        if not tickets:
            ctx.options |= ssl.OP_NO_TICKET
        sessions = {}
        # (name, name whose session is offered, resumed?, certificate expected)
        for name, offer, resumed, cert in (
                ("other.example.test", None, False, "sni-map cert"),
                # The control: the same name resumes (names compare without case).
                ("OTHER.example.test", "other.example.test", True, "sni-map cert"),
                # The defect: this resumed, and the client kept the SNI-map certificate.
                (HOSTNAME, "other.example.test", False, "default cert"),
                # Two names served by one certificate are still two names.
                ("unknown.example.test", HOSTNAME, False, "default cert"),
                (HOSTNAME, HOSTNAME, True, "default cert")):
            mark = srv.log_size()
            r, der, sess = _tls_session(srv, ctx, name, sessions.get(offer))
            sessions.setdefault(name, sess)
            line = srv.wait_log("TLS established", since=mark)
            case = "%s: SNI %s offering %s's session" % (what, name, offer)
            got.append((case, r, "resumed" in line, certs.get(der, "unknown cert")))
            want.append((case, resumed, resumed, cert))
    eq(got, want, "(case, client resumed, log says resumed, certificate)")


def test_client_certificate_fingerprint():
    p = pki()
    srv = server(extra={"smtpd_tls_ask_ccert": "yes"})
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        mark = srv.log_size()
        ctx = client_context()
        ctx.maximum_version = version
        ctx.load_cert_chain(p.client, p.client_key)
        c = Client(srv.port)
        c.ehlo()
        starttls(c, ctx)
        c.ehlo()
        c.cmd("QUIT", 221)
        c.close()
        line = srv.wait_log("TLS established", since=mark)
        want = "client_fingerprint=sha256:" + tlspki.sha256_hex(p.client)
        check(want in line, "%s: log lacks %s: %r" % (version, want, line))
    # Without a client certificate: no fingerprint, and the session works.
    mark = srv.log_size()
    c = Client(srv.port)
    c.ehlo()
    starttls(c)
    c.ehlo()
    c.cmd("QUIT", 221)
    c.close()
    line = srv.wait_log("TLS established", since=mark)
    check("fingerprint" not in line, "fingerprint without a client certificate: %r" % line)
    # smtpd_tls_ask_ccert = no (default): a client certificate is not asked for.
    srv2 = server()
    mark = srv2.log_size()
    ctx = client_context()
    ctx.load_cert_chain(p.client, p.client_key)
    c = Client(srv2.port)
    c.ehlo()
    starttls(c, ctx)
    c.ehlo()
    c.close()
    line = srv2.wait_log("TLS established", since=mark)
    check("fingerprint" not in line, "fingerprint logged with ask_ccert = no: %r" % line)


def test_sighup_new_certificate():
    p = pki()
    srv = TlsServer(start=False)
    cert = os.path.join(srv.dir, "live.pem")
    key = os.path.join(srv.dir, "live.key")
    shutil.copyfile(p.ec, cert)
    shutil.copyfile(p.ec_key, key)
    srv.settings.update({"smtpd_tls_cert_file": cert, "smtpd_tls_key_file": key})
    srv.start()
    rcpt = "reload@" + DOMAIN
    live = Client(srv.port)
    live.ehlo()
    starttls(live)
    eq(peer_der(live.sock), tlspki.der(p.ec), "certificate before the reload")
    live.ehlo()
    live.cmd("MAIL FROM:<alice@sender.test>", 250)
    live.cmd("RCPT TO:<%s>" % rcpt, 250)

    # Renewal in place (what certbot and friends do), then SIGHUP.
    for src, dst in ((p.ec2, cert), (p.ec2_key, key)):
        shutil.copyfile(src, dst + ".new")
        os.rename(dst + ".new", dst)
    mark = srv.log_size()
    srv.signal(signal.SIGHUP)
    srv.wait_log("reloaded configuration", since=mark)
    fresh = Client(srv.port)
    fresh.ehlo()
    starttls(fresh)
    eq(peer_der(fresh.sock), tlspki.der(p.ec2), "certificate for a session after the reload")
    fresh.ehlo()
    fresh.send_message("alice@sender.test", [rcpt], b"Subject: fresh\r\n\r\nfresh\r\n")
    fresh.cmd("QUIT", 221)
    fresh.close()

    # The live session, started before the reload, finishes its message.
    live.cmd("DATA", 354)
    live.send(b"Subject: live\r\n\r\nlive\r\n.\r\n")
    live.expect(250)
    live.cmd("NOOP", 250)
    live.cmd("QUIT", 221)
    live.close()
    msgs = srv.messages(rcpt)
    eq(len(msgs), 2, "messages after the reload")
    subjects = sorted(strip_received(m).split(b"\n")[0] for m in msgs)
    eq(subjects, [b"Subject: fresh", b"Subject: live"], "delivered messages")
    log = srv.maillog()[mark:]
    check("lost connection" not in log, "a session was lost over the reload:\n%s" % log)


if __name__ == "__main__":
    main(globals())
