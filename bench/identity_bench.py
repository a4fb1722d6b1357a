#!/usr/bin/python3
"""
Identity-check benchmark (issue 4): SMTP sessions per second (connect,
EHLO, MAIL, RCPT, QUIT; bench/ident-sessions) from several 127.0.0.x
sources, against ehlod with the client-identity checks off and on, the
DNS answered by the test unbound of tests/dns.  Run it through
bench/identity_bench.sh.

Configurations (a fresh ehlod each, smtpd_workers = 2 unless --workers):

  off        every helo_check_* off: no DNS at all.
  tag        every check on with log/tag actions, resolver alive, cache
             warm (a warm-up pass from every source first).
  tag-dead   as tag, but the resolver is stopped after the warm-up: every
             answer the measured sessions need is in ehlod's cache.
  rej        fcrdns = reject and resolves = reject (the RCPT verdict
             waits for DNS), others tag; resolver alive, cache warm.
  rej-slow   as rej, with a background load of --bg-conc sessions at a
             time whose EHLO names (s<N>.timeout.test, a new name each)
             the resolver drops: each of those waits the whole dns_timeout
             and gets 450.  The figure is the rate of the cached sources'
             sessions meanwhile.
  rej-dead   as rej, the resolver stopped after the warm-up.

Each configuration is measured --rounds times (configurations
interleaved, so drift hits them alike); the median rate is reported with
the min-max range, and the overhead of each against "off".

Only loopback is used; every process started here (ehlod, unbound through
tests/dns/unbound-test.sh, the load drivers) is stopped by its PID.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
UNBOUND_TEST = os.path.join(TOP, "tests", "dns", "unbound-test.sh")

# Sources whose DNS data are all positive answers (TTL 300 s in the test
# zones), so a warm cache holds for the whole run.
CACHED = [("127.0.0.2", "mx.good.test"), ("127.0.0.3", "liar.bad.test"),
          ("127.0.0.4", "127-0-0-4.dyn.isp.test"), ("127.0.0.10", "helo.good.test"),
          ("127.0.0.11", "multi.good.test"), ("127.0.0.12", "multi.good.test"),
          ("127.0.0.15", "mx15.good.test")]
# A cached client address, and an EHLO name under the test resolver's
# dropped zone that is new for every session ('#' = the session number).
SLOW = [("127.0.0.2", "s#.timeout.test")]
CHECKS = ("syntax", "fqdn", "literal_match", "resolves", "forward_match", "ptr", "fcrdns",
          "ptr_match", "generic", "self_claim", "consistency")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Unbound:
    def __init__(self, work, name):
        self.dir = os.path.join(work, name)
        out = subprocess.run(["sh", UNBOUND_TEST, "start", self.dir], check=True,
                             stdout=subprocess.PIPE, timeout=60).stdout.decode()
        self.port = int([l for l in out.splitlines() if l.startswith("PORT=")][0][5:])
        self.running = True

    def stop(self):
        if self.running:
            subprocess.run(["sh", UNBOUND_TEST, "stop", self.dir], timeout=60)
            self.running = False


class StartError(Exception):
    pass


class Ehlod:
    def __init__(self, binary, work, name, settings):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.log = os.path.join(self.dir, "maillog")
        conf = os.path.join(self.dir, "ehlod.conf")
        lines = ["listen = smtp:127.0.0.1:%d" % self.port,
                 "myhostname = mx.example.test",
                 "virtual_mailbox_domains = example.test",
                 "virtual_mailbox_base = %s" % os.path.join(self.dir, "mail"),
                 "maillog_file = %s" % self.log,
                 "smtpd_tls_auto_cert_dir = %s" % os.path.join(self.dir, "tls"),
                 "smtpd_client_connection_count_limit = 0",
                 "smtpd_max_connections = 100000"]
        lines += ["%s = %s" % kv for kv in settings.items()]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.err = open(os.path.join(self.dir, "stderr"), "wb")
        self.proc = subprocess.Popen([binary, "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err, cwd=self.dir)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                self.err.close()
                raise StartError("ehlod exited %d at start (%s)" % (self.proc.returncode,
                                                                   self.dir))
            try:
                if b"ehlod ready" in open(self.log, "rb").read():
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("ehlod not ready after 30s (%s)" % self.dir)
            time.sleep(0.05)

    def cpu(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.err.close()


def driver_args(driver, port, n, conc, sources, secs=600):
    spec = ",".join("%s=%s" % s for s in sources)
    return [driver, "-n", str(n), "-c", str(conc), "-t", str(secs), "-s", spec, "127.0.0.1",
            str(port)]


def parse(out):
    d = {}
    for w in out.split():
        k, _, v = w.partition("=")
        try:
            d[k] = float(v)
        except ValueError:
            d[k] = v
    return d


def run_driver(driver, port, n, conc, sources):
    p = subprocess.run(driver_args(driver, port, n, conc, sources), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=900)
    d = parse(p.stdout.decode())
    if p.returncode != 0 or "rate" not in d:
        raise SystemExit("driver failed (%d): %s %s" % (p.returncode, p.stdout.decode(),
                                                        p.stderr.decode()))
    return d


def settings_for(config, forwarder, workers, timeout):
    s = {"smtpd_workers": str(workers), "dns_forwarders": forwarder, "dns_timeout": timeout}
    if config == "off":
        for c in CHECKS:
            s["helo_check_" + c] = "off"
        return s
    for c in CHECKS:
        s["helo_check_" + c] = "tag"
    s["helo_check_forward_match"] = "log"
    s["helo_check_ptr_match"] = "log"
    s["helo_check_consistency"] = "log"
    if config.startswith("rej"):
        s["helo_check_fcrdns"] = "reject"
        s["helo_check_resolves"] = "reject"
    return s


def one_run(args, work, config, rnd, shared_ub):
    dead = config.endswith("-dead")
    ub = Unbound(work, "ub-%s-%d" % (config, rnd)) if dead else shared_ub
    settings = settings_for(config, "127.0.0.1@%d" % ub.port, args.workers, args.dns_timeout)
    for attempt in range(10):
        try:
            srv = Ehlod(args.ehlod, work, "ehlod-%s-%d-%d" % (config, rnd, attempt), settings)
            break
        except StartError as e:
            # A start failure is a bug (before 39e638a, workers loading
            # their libunbound configs at once crashed); report it, retry.
            print("warning: %s; retrying" % e, flush=True)
    else:
        raise SystemExit("ehlod did not start in ten attempts")
    bg = None
    try:
        # Warm-up: every source several times, so each worker's cache has
        # its answers (a worker takes whichever connection it accepts).
        run_driver(args.driver, srv.port, 40 * len(CACHED), 10, CACHED)
        if dead:
            ub.stop()
        if config == "rej-slow":
            bg = subprocess.Popen(driver_args(args.driver, srv.port, 1000000, args.bg_conc,
                                              SLOW, secs=3600),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(0.5 + float(args.dns_timeout.rstrip("s")))
        c0 = srv.cpu()
        d = run_driver(args.driver, srv.port, args.sessions, args.conc, CACHED)
        d["cpu_ms_per_1k"] = (srv.cpu() - c0) * 1e6 / max(d["ok"], 1)
        if bg is not None:
            bg.send_signal(signal.SIGTERM)
            bg.wait(10)
            bg = None
            # The background sessions were answered 450 at the deadline.
            with open(srv.log, "rb") as f:
                d["bg_tempfails"] = f.read().count(b": 450 4.7.1 ")
        return d
    finally:
        if bg is not None:
            bg.kill()
            bg.wait(10)
        srv.stop()
        if dead:
            ub.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ehlod", required=True)
    ap.add_argument("--driver", required=True)
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--conc", type=int, default=50)
    ap.add_argument("--bg-conc", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dns-timeout", default="2s")
    ap.add_argument("--configs", default="off,tag,tag-dead,rej,rej-slow,rej-dead")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    configs = args.configs.split(",")
    work = tempfile.mkdtemp(prefix="ehlo-identbench-")
    ub = Unbound(work, "ub")
    results = {c: [] for c in configs}
    try:
        for rnd in range(args.rounds):
            for c in configs:
                d = one_run(args, work, c, rnd, ub)
                results[c].append(d)
                print("round %d %-9s rate=%6.0f/s p50=%.2fms p99=%.2fms cpu=%.0fms/1k "
                      "rcpt 2xx=%d 4xx=%d 5xx=%d%s" % (
                          rnd + 1, c, d["rate"], d["p50_ms"], d["p99_ms"], d["cpu_ms_per_1k"],
                          d["rcpt_2xx"], d["rcpt_4xx"], d["rcpt_5xx"],
                          " bg_tempfails=%d" % d["bg_tempfails"] if "bg_tempfails" in d
                          else ""), flush=True)
    finally:
        ub.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept %s" % work)
    print()
    print("%d sessions per run, %d concurrent, %d sources, %d workers, %d rounds (median, "
          "min-max)" % (args.sessions, args.conc, len(CACHED), args.workers, args.rounds))
    base = statistics.median(d["rate"] for d in results["off"]) if "off" in results else None
    for c in configs:
        rates = [d["rate"] for d in results[c]]
        med = statistics.median(rates)
        cpu = statistics.median(d["cpu_ms_per_1k"] for d in results[c])
        p99 = statistics.median(d["p99_ms"] for d in results[c])
        rel = " %+5.1f%% vs off" % ((med / base - 1) * 100) if base and c != "off" else ""
        print("  %-9s %6.0f sessions/s (%.0f-%.0f)  cpu %5.0f ms/1k sessions  p99 %.2f ms%s"
              % (c, med, min(rates), max(rates), cpu, p99, rel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
