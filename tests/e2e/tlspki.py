"""
Test PKI for the TLS end-to-end tests, made at test time with the openssl
CLI in a temporary directory (no private key is ever committed).

make_pki(dir) returns a Pki with paths to:
  ca            CA certificate (ECDSA P-256, self-signed)
  ec, ec_key    server cert for mx.example.test, ECDSA P-256
  rsa, rsa_key  server cert for mx.example.test, RSA-2048
  ec2, ec2_key  a second ECDSA server cert for mx.example.test (reload test)
  sni, sni_key  server cert for other.example.test (SNI map test)
  client, client_key  client certificate (clientAuth)
Every server certificate carries SAN DNS:<name>, DNS:localhost and
IP:127.0.0.1, so smtplib (which checks the host given to SMTP()) and
clients connecting to 127.0.0.1 both verify.

Also der(path) and sha256_hex(path) for comparing what a server presented
or logged with a certificate file.
"""
import hashlib
import os
import subprocess

OPENSSL = "/usr/bin/openssl"


def _run(argv, cwd):
    p = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv), p.returncode,
                                                     p.stdout.decode("utf-8", "replace")))
    return p.stdout


class Pki:
    pass


def _key(d, name, kind):
    path = os.path.join(d, name + ".key")
    if kind == "ec":
        _run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-out", path], d)
    else:
        _run([OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
              "-out", path], d)
    os.chmod(path, 0o600)
    return path


_serial = [1000]


def _issue(d, name, kind, cn, ext, ca, ca_key):
    key = _key(d, name, kind)
    csr = os.path.join(d, name + ".csr")
    crt = os.path.join(d, name + ".pem")
    extf = os.path.join(d, name + ".ext")
    with open(extf, "w") as f:
        f.write(ext)
    _run([OPENSSL, "req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr], d)
    _serial[0] += 1
    _run([OPENSSL, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial",
          str(_serial[0]), "-days", "30", "-sha256", "-extfile", extf, "-out", crt], d)
    return crt, key


def server_ext(name):
    return ("basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\n" % name)


def make_pki(d, hostname="mx.example.test", rsa=True):
    """Create the CA and certificates in directory d (see module doc)."""
    p = Pki()
    p.dir = d
    p.ca_key = _key(d, "ca", "ec")
    p.ca = os.path.join(d, "ca.pem")
    _run([OPENSSL, "req", "-x509", "-new", "-key", p.ca_key, "-subj", "/CN=ehlo e2e test CA",
          "-days", "30", "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", p.ca], d)
    p.ec, p.ec_key = _issue(d, "server-ec", "ec", hostname, server_ext(hostname), p.ca, p.ca_key)
    if rsa:
        p.rsa, p.rsa_key = _issue(d, "server-rsa", "rsa", hostname, server_ext(hostname),
                                  p.ca, p.ca_key)
    p.ec2, p.ec2_key = _issue(d, "server-ec2", "ec", hostname, server_ext(hostname), p.ca, p.ca_key)
    p.sni, p.sni_key = _issue(d, "server-sni", "ec", "other.example.test",
                              server_ext("other.example.test"), p.ca, p.ca_key)
    p.client, p.client_key = _issue(d, "client", "ec", "client.example.test",
                                    "basicConstraints=critical,CA:FALSE\n"
                                    "keyUsage=critical,digitalSignature\n"
                                    "extendedKeyUsage=clientAuth\n", p.ca, p.ca_key)
    return p


def der(pem_path):
    """DER bytes of the (first) certificate in a PEM file."""
    return subprocess.run([OPENSSL, "x509", "-in", pem_path, "-outform", "DER"],
                          stdout=subprocess.PIPE, check=True, timeout=30).stdout


def sha256_hex(pem_path):
    """Lower-case hex SHA-256 of the certificate's DER encoding."""
    return hashlib.sha256(der(pem_path)).hexdigest()
