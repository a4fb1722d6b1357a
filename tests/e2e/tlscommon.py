"""
Shared pieces of the TLS end-to-end tests (test_tls*.py): an ehlod Server
with an optional implicit-TLS (submissions) listener and certificates from
a test PKI (tlspki.py), and the checks every TLS delivery makes.
"""
import atexit
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import tlspki
from ehlotest import (Server, check, eq, fail, free_port, strip_received, tempdir, to_lf,
                      wait_until, HOSTNAME, IO_TIMEOUT)

OPENSSL = "/usr/bin/openssl"

# One PKI per test process: key generation (RSA especially) is slow under load.
_pki = []


def pki():
    """The file's PKI, made on first use.  Not in tempdir(): that one is
    removed when the test that made it ends; this one lives until exit."""
    if not _pki:
        d = tempfile.mkdtemp(prefix="ehlo-e2e-pki-")
        atexit.register(shutil.rmtree, d, True)
        _pki.append(tlspki.make_pki(d, HOSTNAME))
    return _pki[0]


def cert_settings(p, pairs=("ec",)):
    """ehlod.conf settings serving the given key pairs of PKI p."""
    certs = [getattr(p, k) for k in pairs]
    keys = [getattr(p, k + "_key") for k in pairs]
    return {"smtpd_tls_cert_file": ", ".join(certs), "smtpd_tls_key_file": ", ".join(keys)}


class TlsServer(Server):
    """Server with, when submissions=True, a second listener for implicit
    TLS (RFC 8314) on its own free port (self.sub_port)."""

    def __init__(self, settings=None, submissions=False, **kw):
        self.submissions = submissions
        self.sub_port = None
        super().__init__(settings, **kw)

    def config_text(self, port):
        text = super().config_text(port)
        if self.submissions:
            if self.sub_port is None:
                self.sub_port = free_port()
            # A later "listen" replaces the harness's line (last one wins).
            text += "listen = smtp:127.0.0.1:%d, submissions:127.0.0.1:%d\n" % (
                port, self.sub_port)
        return text


def client_context(cafile=None, verify=True):
    ctx = ssl.create_default_context(cafile=cafile or pki().ca)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def starttls(c, ctx=None, server_hostname=HOSTNAME, suppress_ragged_eofs=True):
    """STARTTLS on a harness Client, then the handshake on the same socket.
    suppress_ragged_eofs=False: a TCP close without close_notify raises
    ssl.SSLEOFError instead of reading as b"" (Python's default)."""
    c.cmd("STARTTLS", 220, "2.0.0")
    check(c.buf == b"", "bytes after the 220 to STARTTLS: %r" % c.buf)
    c.sock = (ctx or client_context()).wrap_socket(c.sock, server_hostname=server_hostname,
                                                   suppress_ragged_eofs=suppress_ragged_eofs)
    return c


RECEIVED_TLS = re.compile(r"\ttls (\S+) \((TLSv1\.[0-3]), (\d+)/(\d+) bits\);")
LOG_TLS = re.compile(r"TLS established from \S+: (TLSv1\.[0-3]) with cipher (\S+) "
                     r"\((\d+)/(\d+) bits\)")


def check_tls_received(msg):
    """The Received: header says ESMTPS (or ESMTPSA) and has a tls clause;
    returns (cipher, version)."""
    rec = msg[:len(msg) - len(strip_received(msg))].decode("utf-8", "replace")
    check(re.search(r" with ESMTPSA? id ", rec), "Received: lacks 'with ESMTPS': %r" % rec)
    m = RECEIVED_TLS.search(rec)
    check(m, "Received: lacks the tls clause: %r" % rec)
    check(int(m.group(3)) >= 128, "Received: tls clause with %s bits" % m.group(3))
    return m.group(1), m.group(2)


def check_tls_delivery(srv, rcpt, since, expected=None, count=1):
    """rcpt's Maildir holds count messages; the last one came over TLS
    (Received: ESMTPS with the tls clause), and the maillog after offset
    since has a "TLS established" line with the same version and cipher.
    expected: the message as sent (CRLF), compared after the Received:."""
    wait_until(lambda: len(srv.new_files(rcpt)) >= count, 10, what="delivery to %s" % rcpt)
    msgs = srv.messages(rcpt)
    eq(len(msgs), count, "messages in %s" % srv.maildir(rcpt))
    msg = msgs[-1]
    if expected is not None:
        eq(strip_received(msg), to_lf(expected), "delivered message")
    cipher, version = check_tls_received(msg)
    log = srv.maillog()[since:]
    hits = [m.groups() for m in LOG_TLS.finditer(log)]
    check(hits, "no 'TLS established' log line:\n%s" % log[-3000:])
    check(any(h[0] == version and h[1] == cipher for h in hits),
          "Received: says %s %s but the log says %r" % (version, cipher, hits))
    return cipher, version


class Proc:
    """A child process whose stdout+stderr is collected by a thread, for
    interactive tools (openssl s_client)."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self.out = b""
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        while True:
            b = self.p.stdout.read1(65536)
            if not b:
                return
            with self.lock:
                self.out += b

    def text(self):
        with self.lock:
            return self.out.decode("utf-8", "replace")

    def write(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def wait_for(self, needle, timeout=IO_TIMEOUT, after=0):
        def found():
            t = self.text()
            i = t.find(needle, after)
            return i + 1 if i >= 0 else None
        try:
            return wait_until(found, timeout, what="%r in the output" % needle) - 1
        except AssertionError:
            fail("%r not seen; output:\n%s" % (needle, self.text()[-4000:]))

    def finish(self, timeout=IO_TIMEOUT):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait(5)
        self.t.join(5)
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)


def s_client(port, *extra, starttls=True, servername=HOSTNAME):
    argv = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", pki().ca,
            "-verify_return_error", "-verify_hostname", HOSTNAME, "-nocommands"]
    if servername:
        argv += ["-servername", servername]
    if starttls:
        argv += ["-starttls", "smtp"]
    return argv + list(extra)


def s_client_cert(port, *extra, **kw):
    """Handshake with s_client and quit; returns (exit code, output, DER of
    the server certificate or None)."""
    argv = s_client(port, *extra, **kw)
    p = subprocess.run(argv, input=b"", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=IO_TIMEOUT * 2)
    out = p.stdout.decode("utf-8", "replace")
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", out, re.S)
    derb = None
    if m:
        derb = subprocess.run([OPENSSL, "x509", "-outform", "DER"], input=m.group(0).encode(),
                              stdout=subprocess.PIPE, check=True, timeout=30).stdout
    return p.returncode, out, derb


def peer_der(sock):
    return sock.getpeercert(binary_form=True)


def write_file(d, name, data):
    p = os.path.join(d, name)
    with open(p, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return p


def dirty_close(sslsock):
    """Close a TLS connection the rude way: no close_notify, no unwrap;
    just the file descriptor."""
    fd = sslsock.detach()
    os.close(fd)


def tcp_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.settimeout(IO_TIMEOUT)
    return s


__all__ = ["pki", "cert_settings", "TlsServer", "client_context", "starttls",
           "check_tls_received", "check_tls_delivery", "Proc", "s_client", "s_client_cert",
           "peer_der", "write_file", "dirty_close", "tcp_connect", "OPENSSL", "time", "tempdir"]
