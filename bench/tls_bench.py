#!/usr/bin/python3
"""
bench/tls_bench.py: full STARTTLS sessions per second, ehlod against a
private Postfix, with an ECDSA P-256 and an RSA-2048 certificate, in the
same run; and `openssl speed` signing rates as the physical ceiling.

  bench/tls_bench.py [--seconds 10] [--threads 16] [--keys ec,rsa]
                     [--servers ehlod,postfix] [--json FILE] [--keep]

One session (bench/tls-client.c): connect, EHLO, STARTTLS, full TLS
handshake (no resumption), EHLO, MAIL, RCPT, DATA with a 1 KiB message,
QUIT; no pipelining.  Both servers get the same certificate (one key pair
per run, issued by a CA made at run time) and both deliver every message
to a Maildir before the session ends from the client's point of view:

  ehlod    writes the Maildir file (fsync) before its 250 to the message.
  Postfix  smtpd_tls_security_level = may; cleanup(8) fsyncs the queue
           file before the 250, then virtual(8) delivers to a Maildir in
           the background.  The rate counts sessions acknowledged with 250;
           the run then waits until Postfix has delivered them all (the
           drain time is reported, not added).

Postfix runs with its defaults for process limits (100 smtpd), no TLS
session cache and no DNS.  ehlod runs with its default workers (one per
CPU).  The client runs on the same machine, so both servers share the
CPUs with it: compare the two rates with each other, and the signing
bound per core with the cores the server actually got (reported as the
server's CPU seconds).

ehlod is $EHLOD, else build/src/cli/ehlod (build it optimised).  Needs
root for the Postfix instance.  Stops every process it starts by PID.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "e2e"))
import tlspki                       # noqa: E402
from privpostfix import PrivatePostfix   # noqa: E402

HOST = "mx.example.test"
RCPT = "bench@example.test"


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pids):
    tck = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / tck


def children_tree(root):
    """root and all its descendants (Postfix's master and its daemons)."""
    kids = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def count_files(d):
    try:
        return sum(1 for _ in os.scandir(d))
    except FileNotFoundError:
        return 0


class EhlodServer:
    name = "ehlod"

    def __init__(self, base, binary, cert, key):
        self.dir = os.path.join(base, "ehlod")
        os.makedirs(self.dir)
        self.port = free_port()
        self.mail = os.path.join(self.dir, "mail")
        self.conf = os.path.join(self.dir, "ehlod.conf")
        self.log = os.path.join(self.dir, "maillog")
        with open(self.conf, "w") as f:
            f.write("listen = smtp:127.0.0.1:%d\n" % self.port +
                    "myhostname = %s\n" % HOST +
                    "virtual_mailbox_domains = example.test\n"
                    "virtual_mailbox_base = %s\n" % self.mail +
                    "maillog_file = %s\n" % self.log +
                    "smtpd_client_connection_count_limit = 0\n"
                    "helo_checks_exempt = 127.0.0.0/8\n"
                    "dns_forwarders = 127.0.0.1@9\n"
                    "smtpd_tls_security_level = may\n"
                    "smtpd_tls_cert_file = %s\n" % cert +
                    "smtpd_tls_key_file = %s\n" % key)
        self.binary = binary
        self.maildir = os.path.join(self.mail, "example.test", "bench", "new")

    def start(self):
        self.err = open(os.path.join(self.dir, "stderr"), "w")
        self.proc = subprocess.Popen([self.binary, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=subprocess.STDOUT)
        for _ in range(300):
            if os.path.exists(self.log) and "ehlod ready" in open(self.log).read():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("ehlod did not start: see %s" % self.dir)

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.err.close()


class PostfixServer:
    name = "postfix"

    def __init__(self, base, cert, key):
        self.dir = os.path.join(base, "postfix")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.mail = os.path.join(self.dir, "mail")
        os.makedirs(self.mail)
        shutil.chown(self.mail, "nobody", "nogroup")
        uid = int(subprocess.check_output(["id", "-u", "nobody"]))
        gid = int(subprocess.check_output(["id", "-g", "nobody"]))
        self.pf = PrivatePostfix(self.dir, {
            "myhostname": HOST,
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": cert,
            "smtpd_tls_key_file": key,
            "smtpd_tls_loglevel": "0",
            "virtual_mailbox_domains": "example.test",
            "virtual_mailbox_base": self.mail,
            "virtual_mailbox_maps": "static:example.test/bench/",
            "virtual_uid_maps": "static:%d" % uid,
            "virtual_gid_maps": "static:%d" % gid,
            "virtual_destination_concurrency_limit": "20",
            "relay_domains": "",
        })
        self.port = self.pf.port
        self.maildir = os.path.join(self.mail, "example.test", "bench", "new")

    def start(self):
        self.pf.start()

    def pids(self):
        return children_tree(self.pf.pid)

    def stop(self):
        self.pf.stop()


def openssl_speed(seconds=3):
    """Signatures per second on one core: {"ecdsap256": n, "rsa2048": n}."""
    out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "ecdsap256", "rsa2048"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120).stdout.decode()
    res = {}
    m = re.search(r"^rsa\s+2048 bits\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out, re.M)
    if m:
        res["rsa2048"] = float(m.group(1))
    m = re.search(r"^\s*256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out, re.M)
    if m:
        res["ecdsap256"] = float(m.group(1))
    if len(res) != 2:
        raise RuntimeError("cannot parse openssl speed output:\n" + out)
    return res


def run_one(server, client, threads, seconds):
    server.start()
    try:
        pids = server.pids()
        c0 = cpu_seconds(pids)
        p = subprocess.run([client, "-c", str(threads), "-t", str(seconds), "-s", "1024",
                            "-r", RCPT, "127.0.0.1", str(server.port)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=seconds + 120)
        line = p.stdout.decode().strip()
        c1 = cpu_seconds(server.pids())
        m = re.search(r"sessions=(\d+) failed=(\d+) seconds=([\d.]+) rate=([\d.]+)", line)
        if not m:
            raise RuntimeError("tls-client: %s" % line)
        n = int(m.group(1))
        t0 = time.monotonic()
        while count_files(server.maildir) < n and time.monotonic() - t0 < 120:
            time.sleep(0.1)
        drain = time.monotonic() - t0
        delivered = count_files(server.maildir)
        return {"sessions": n, "failed": int(m.group(2)), "seconds": float(m.group(3)),
                "rate": float(m.group(4)), "server_cpu_s": round(c1 - c0, 2),
                "delivered": delivered, "drain_s": round(drain, 2), "client": line}
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--keys", default="ec,rsa")
    ap.add_argument("--servers", default="ehlod,postfix")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0 and "postfix" in a.servers:
        sys.exit("tls_bench.py: the Postfix instance needs root")
    ehlod = os.environ.get("EHLOD", os.path.join(TOP, "build", "src", "cli", "ehlod"))
    if "ehlod" in a.servers and not os.access(ehlod, os.X_OK):
        sys.exit("tls_bench.py: no ehlod at %s (build it, or set EHLOD)" % ehlod)

    base = tempfile.mkdtemp(prefix="ehlo-tlsbench-")
    os.chmod(base, 0o755)
    try:
        client = os.path.join(base, "tls-client")
        subprocess.run(["cc", "-O2", "-o", client, os.path.join(HERE, "tls-client.c"),
                        "-lssl", "-lcrypto", "-lpthread"], check=True)
        os.makedirs(os.path.join(base, "pki"))
        pki = tlspki.make_pki(os.path.join(base, "pki"), HOST)
        results = {"cpus": os.cpu_count(), "threads": a.threads, "seconds": a.seconds, "runs": []}
        print("openssl speed -seconds 3 ecdsap256 rsa2048 ...", flush=True)
        results["sign_per_s_one_core"] = openssl_speed()
        for key in a.keys.split(","):
            cert, keyf = (pki.ec, pki.ec_key) if key == "ec" else (pki.rsa, pki.rsa_key)
            for sname in a.servers.split(","):
                d = os.path.join(base, "%s-%s" % (sname, key))
                os.makedirs(d)
                os.chmod(d, 0o755)
                srv = (EhlodServer(d, ehlod, cert, keyf) if sname == "ehlod"
                       else PostfixServer(d, cert, keyf))
                r = run_one(srv, client, a.threads, a.seconds)
                r.update({"server": sname, "key": key, "loadavg_1m": os.getloadavg()[0]})
                results["runs"].append(r)
                print("%-7s %-3s %8.1f sessions/s  (%d sessions, %d failed, server CPU %.1fs, "
                      "delivered %d, drain %.1fs, load %.1f)" % (
                          sname, key, r["rate"], r["sessions"], r["failed"], r["server_cpu_s"],
                          r["delivered"], r["drain_s"], r["loadavg_1m"]), flush=True)
        sp = results["sign_per_s_one_core"]
        print("\nsigning bound (openssl speed, one core): ECDSA P-256 %.0f/s, RSA-2048 %.0f/s; "
              "%d CPUs" % (sp["ecdsap256"], sp["rsa2048"], results["cpus"]))
        for key, sk in (("ec", "ecdsap256"), ("rsa", "rsa2048")):
            rr = {r["server"]: r for r in results["runs"] if r["key"] == key}
            if "ehlod" in rr:
                e = rr["ehlod"]
                per_cpu_s = e["sessions"] / e["server_cpu_s"] if e["server_cpu_s"] else 0
                line = ("%s: ehlod %.0f/s = %.1f%% of one core's signing rate; %.0f sessions per "
                        "server CPU-second (%.1f%% of the bound)" % (
                            key, e["rate"], 100 * e["rate"] / sp[sk], per_cpu_s,
                            100 * per_cpu_s / sp[sk]))
                if "postfix" in rr and rr["postfix"]["rate"] > 0:
                    line += "; %.2fx Postfix" % (e["rate"] / rr["postfix"]["rate"])
                print(line)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=2)
    finally:
        if a.keep:
            print("kept %s" % base)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
