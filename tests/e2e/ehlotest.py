"""
End-to-end test helpers for ehlod (stdlib only; run with /usr/bin/python3).

A test file defines functions named test_*; ehlotest.main() runs them in
source order, each under its own time limit, and prints TAP (meson runs the
file with protocol 'tap', so every function is a subtest).  A test creates
its servers with Server(...); every server started during a test is stopped
(SIGTERM, then SIGKILL) when the test ends, and when the test fails its
maillog and stderr are printed as TAP diagnostics.

Server writes a private ehlod.conf into a temporary directory (listener on a
free loopback port, Maildirs, maillog and TLS auto-cert directory all under
that directory), starts `ehlod -c FILE` (the binary comes from $EHLOD, which
meson sets), and waits for the "ehlod ready" log line (written once the listeners
are bound).  Nothing here touches DNS or a non-loopback address.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import shutil

EHLOD = os.environ.get("EHLOD", "")
DOMAIN = "example.test"
HOSTNAME = "mx.example.test"
IO_TIMEOUT = 15.0          # seconds any single socket read may take
READY_TIMEOUT = 30.0       # seconds ehlod may take to start (sanitizer builds are slow)
STOP_TIMEOUT = 15.0        # seconds between SIGTERM and SIGKILL
TEST_TIMEOUT = int(os.environ.get("EHLO_E2E_TEST_TIMEOUT", "120"))

# Checks that would need DNS (or that tag messages with extra headers) are
# off, so that delivered messages are exactly what the client sent plus the
# one Received: header, and no lookup leaves the machine.  The forwarder is
# a loopback port nothing answers on, should any lookup happen anyway.
BASE_SETTINGS = {
    "myhostname": HOSTNAME,
    "virtual_mailbox_domains": DOMAIN,
    "dns_forwarders": "127.0.0.1@9",
    "dns_timeout": "1s",
    "helo_check_consistency": "off",
    "helo_check_fcrdns": "off",
    "helo_check_forward_match": "off",
    "helo_check_fqdn": "off",
    "helo_check_generic": "off",
    "helo_check_literal_match": "off",
    "helo_check_ptr": "off",
    "helo_check_ptr_match": "off",
    "helo_check_resolves": "off",
    "helo_check_self_claim": "off",
    "smtpd_workers": "2",
}


class TestFailure(AssertionError):
    pass


class Skip(Exception):
    pass


class Timeout(Exception):
    pass


_servers = []        # servers started by the running test
_tmpdirs = []        # temporary directories made by the running test


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(actual, expected, what="value"):
    if actual != expected:
        raise TestFailure("%s: expected %r, got %r" % (what, expected, actual))


def tempdir(prefix="ehlo-e2e-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def free_port():
    """A loopback TCP port that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def asan_build():
    """True if $EHLOD was built with AddressSanitizer (its allocator makes
    RSS measure itself: redzones, quarantine, shadow)."""
    with open(EHLOD, "rb") as f:
        return b"__asan_init" in f.read()


def proc_status_kib(pid, field):
    """A /proc/PID/status field in KiB (VmRSS, VmHWM), 0 if absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def wait_until(pred, timeout, step=0.05, what="condition"):
    """Poll pred() until true; TestFailure after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(step)


def to_lf(b):
    return b.replace(b"\r\n", b"\n")


def return_path(msg):
    """The reverse-path of the Return-Path: line ehlod puts first (RFC 5321
    §4.4), as bytes between the angle brackets; the line must be there,
    first, one line, and the only Return-Path field of the header."""
    check(msg.startswith(b"Return-Path: <"), "message does not start with Return-Path: %r" % msg[:80])
    end = msg.index(b"\n") + 1
    line = msg[:end]
    check(line.endswith(b">\n"), "Return-Path: line not <path>: %r" % line)
    head = msg[end:].split(b"\n\n", 1)[0]
    check(not re.search(rb"(?im)^return-path[ \t]*:", head),
          "a second Return-Path field in the header: %r" % head[:300])
    return line[len(b"Return-Path: <"):-2]


def strip_received(msg):
    """The message without the trace fields ehlod prepends: its Return-Path:
    line (see return_path) and the Received: header right after it, which
    must end where the client's first header starts."""
    return_path(msg)
    msg = msg[msg.index(b"\n") + 1:]
    check(msg.startswith(b"Received: "), "Received: does not follow Return-Path: %r" % msg[:80])
    pos = msg.index(b"\n") + 1
    while pos < len(msg) and msg[pos:pos + 1] in (b" ", b"\t"):
        pos = msg.index(b"\n", pos) + 1
    return msg[pos:]


def received_header(msg):
    """The Received: header ehlod adds (after its Return-Path: line)."""
    rest = strip_received(msg)
    return msg[msg.index(b"\n") + 1:len(msg) - len(rest)]


class Server:
    """One ehlod instance with its own configuration and Maildirs.

    settings: extra or overriding ehlod.conf settings (name -> value).
    directory: reuse an existing directory (crash test restarts)."""

    def __init__(self, settings=None, directory=None, start=True):
        if not EHLOD or not os.access(EHLOD, os.X_OK):
            fail("EHLOD is not set to the ehlod executable (got %r)" % EHLOD)
        self.dir = directory or tempdir()
        self.settings = dict(BASE_SETTINGS)
        self.settings.update(settings or {})
        self.port = None
        self.proc = None
        self.conf = os.path.join(self.dir, "ehlod.conf")
        self.logfile = os.path.join(self.dir, "maillog")
        self.errfile = os.path.join(self.dir, "stderr")
        self.mailbase = os.path.join(self.dir, "mail")
        _servers.append(self)
        if start:
            self.start()

    def config_text(self, port):
        lines = [
            "# written by tests/e2e/ehlotest.py",
            "listen = smtp:127.0.0.1:%d" % port,
            "virtual_mailbox_base = %s" % self.mailbase,
            "maillog_file = %s" % self.logfile,
            "smtpd_tls_auto_cert_dir = %s" % os.path.join(self.dir, "tls"),
        ]
        for k, v in self.settings.items():
            lines.append("%s = %s" % (k, v))
        return "\n".join(lines) + "\n"

    def write_config(self, port=None):
        with open(self.conf, "w") as f:
            f.write(self.config_text(port if port is not None else self.port))

    def start(self, keep_port=False):
        """Start ehlod and wait until it accepts connections.  keep_port
        retries the current port first (restarts); a port taken meanwhile
        by someone else makes it pick another one."""
        check(self.proc is None, "server already running")
        last = ""
        for attempt in range(5):
            if not (keep_port and attempt == 0 and self.port):
                self.port = free_port()
            self.write_config()
            self.log_offset = self.log_size()
            err = open(self.errfile, "ab")
            nofile = getattr(self, "nofile", None)

            def limits():
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            self.proc = subprocess.Popen([EHLOD, "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err, cwd=self.dir,
                                         preexec_fn=limits if nofile else None)
            err.close()
            ok, last = self._wait_ready()
            if ok:
                return self
            self.proc = None
            if "in use" not in last and "bind" not in last:
                break
        fail("ehlod did not start: %s\n%s" % (last, self.diagnostics()))

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                return False, "ehlod exited with %d: %s" % (rc, self.read_err()[-2000:])
            # Logged once every listener is bound and listening; no probe
            # connection, so the logs and counters hold only the test's.
            if "ehlod ready" in self.maillog(since_start=True):
                return True, ""
            time.sleep(0.05)
        self.kill9()
        return False, "ehlod not ready after %.0fs" % READY_TIMEOUT

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after timeout; returns the exit status
        (negative: killed by that signal)."""
        if self.proc is None:
            return None
        p = self.proc
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self.proc = None
        return p.returncode

    def wait_exit(self, timeout):
        """Wait for ehlod to exit on its own; returns its exit status."""
        check(self.proc is not None, "ehlod was not started")
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            fail("ehlod still running after %ss" % timeout)
        self.proc = None
        return rc

    def kill9(self):
        if self.proc is None:
            return None
        p = self.proc
        if p.poll() is None:
            p.kill()
        p.wait(10)
        self.proc = None
        return p.returncode

    def signal(self, sig):
        check(self.running(), "ehlod is not running")
        self.proc.send_signal(sig)

    def reload(self, expect="reloaded configuration"):
        """Write self.settings, SIGHUP ehlod, and wait for the first log
        line after it that holds expect (a failed reload logs "reload
        failed, keeping the running configuration"); returns that line."""
        self.write_config()
        mark = len(self.maillog())
        self.signal(signal.SIGHUP)
        return self.wait_log(expect, since=mark)

    def log_size(self):
        try:
            return os.path.getsize(self.logfile)
        except OSError:
            return 0

    def maillog(self, since_start=False):
        try:
            with open(self.logfile, "rb") as f:
                if since_start:
                    f.seek(self.log_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, needle, timeout=10, since=0):
        """Wait until needle appears in the maillog after offset since;
        returns the first line holding it."""
        def find():
            text = self.maillog()[since:]
            for line in text.splitlines():
                if needle in line:
                    return line
            return None
        return wait_until(find, timeout, what="log line containing %r" % needle)

    def read_err(self):
        try:
            with open(self.errfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def diagnostics(self):
        return "--- maillog (%s) ---\n%s--- stderr ---\n%s" % (
            self.logfile, self.maillog()[-20000:], self.read_err()[-20000:])

    # Maildir access

    def maildir(self, addr):
        local, domain = addr.rsplit("@", 1)
        return os.path.join(self.mailbase, domain.lower(), local)

    @staticmethod
    def _order_key(name):
        # Maildir unique names are <sec>.M<usec>P<pid>Q<seq>.<host>: the
        # numbers are not zero-padded, so sort by their values (delivery
        # order), not by the text (M99999 would sort after M100000).
        m = re.match(r"(\d+)\.M(\d+)P(\d+)Q(\d+)\.", name)
        if not m:
            return (float("inf"), 0, 0, 0, name)
        return tuple(int(x) for x in m.groups()) + (name,)

    def _files(self, addr, sub):
        d = os.path.join(self.maildir(addr), sub)
        try:
            names = sorted(os.listdir(d), key=self._order_key)
        except FileNotFoundError:
            return []
        return [os.path.join(d, n) for n in names]

    def new_files(self, addr):
        return self._files(addr, "new")

    def tmp_files(self, addr):
        return self._files(addr, "tmp")

    def messages(self, addr):
        """Contents of addr's new/ files, oldest name first."""
        out = []
        for p in self.new_files(addr):
            with open(p, "rb") as f:
                out.append(f.read())
        return out

    def all_files(self, sub="new"):
        """Every file in every mailbox's sub/ directory."""
        res = []
        for root, dirs, files in os.walk(self.mailbase):
            if os.path.basename(root) == sub:
                res.extend(os.path.join(root, f) for f in files)
        return sorted(res)

    def connect(self, **kw):
        return Client(self.port, **kw)


class Client:
    """A raw SMTP client: send bytes, read replies (bounded by timeouts)."""

    def __init__(self, port, greeting=True, timeout=IO_TIMEOUT, host="127.0.0.1", source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=source)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.greeting = None
        if greeting:
            self.greeting = self.expect(220)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by ehlod; unread: %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def reply(self):
        """One reply: (code, [text lines]) — multiline replies joined."""
        lines = []
        while True:
            line = self._readline()
            check(line.endswith(b"\r"), "reply line not ended by CRLF: %r" % line)
            line = line[:-1].decode("utf-8", "replace")
            check(len(line) >= 3 and line[:3].isdigit() and (len(line) == 3 or line[3] in " -"),
                  "malformed reply line %r" % line)
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                codes = {l[:3] for l in lines}
                check(len(codes) == 1, "mixed codes in one reply: %r" % lines)
                return int(line[:3]), lines

    def expect(self, code, text=None):
        """Read one reply; fail unless its code is code and (if given) text
        occurs in it.  Returns the reply lines."""
        c, lines = self.reply()
        if c != code or (text is not None and text not in "\n".join(lines)):
            fail("expected %s%s, got %r" % (code, " ... %r" % text if text else "", lines))
        return lines

    def cmd(self, line, code=None, text=None):
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")
        if code is None:
            return self.reply()
        return self.expect(code, text)

    def ehlo(self, name="client.example.test"):
        return self.cmd("EHLO " + name, 250)

    def send_message(self, sender, rcpts, data_crlf, code=250):
        """MAIL/RCPT/DATA one message; data_crlf is the content as it goes
        on the wire (already dot-stuffed, without the final CRLF.CRLF)."""
        self.cmd("MAIL FROM:<%s>" % sender, 250)
        for r in rcpts:
            self.cmd("RCPT TO:<%s>" % r, 250)
        self.cmd("DATA", 354)
        self.send(data_crlf + b"\r\n.\r\n")
        return self.expect(code)

    def closed(self, timeout=5.0):
        """True if ehlod closes the connection within timeout (any bytes it
        still sends before the EOF are kept in self.buf)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(IO_TIMEOUT)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def stuff(text_crlf):
    """Dot-stuff content with CRLF line ends (RFC 5321 §4.5.2)."""
    lines = text_crlf.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)


def run_tool(argv, input=None, timeout=60, ok=(0,)):
    """Run a client tool; fail with its output unless it exits with a code
    in ok.  Returns the CompletedProcess."""
    try:
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        fail("%s timed out after %ss: %r" % (argv[0], timeout, (e.output or b"")[-4000:]))
    if p.returncode not in ok:
        fail("%s exited %d:\n%s" % (" ".join(argv), p.returncode,
                                     p.stdout.decode("utf-8", "replace")[-6000:]))
    return p


def need_tool(path):
    if not os.access(path, os.X_OK):
        fail("%s is not installed (scripts/install-deps.sh installs it)" % path)


def _alarm(signum, frame):
    raise Timeout("test exceeded %ds" % TEST_TIMEOUT)


def _diag(text):
    for line in text.splitlines():
        print("# " + line)


def main(namespace):
    """Run every test_* function of namespace (a module's globals()) in
    source order and print TAP.  Exit status 1 if any test failed."""
    tests = sorted(((n, f) for n, f in namespace.items()
                    if n.startswith("test_") and callable(f)),
                   key=lambda nf: nf[1].__code__.co_firstlineno)
    only = sys.argv[1:]
    if only:
        tests = [t for t in tests if t[0] in only]
    print("1..%d" % len(tests), flush=True)
    failed = 0
    signal.signal(signal.SIGALRM, _alarm)
    for i, (name, fn) in enumerate(tests, 1):
        del _servers[:]
        del _tmpdirs[:]
        status, diag = "ok", ""
        t0 = time.monotonic()
        signal.alarm(TEST_TIMEOUT)
        try:
            fn()
        except Skip as e:
            status = "ok %d - %s # SKIP %s" % (i, name, e)
        except BaseException as e:   # noqa: also KeyboardInterrupt/Timeout
            if isinstance(e, KeyboardInterrupt):
                raise
            diag = traceback.format_exc()
            status = "not ok"
        finally:
            signal.alarm(0)
        # Every server still running must stop cleanly on SIGTERM (exit 0):
        # a crash, a sanitizer report or a hang at shutdown fails the test.
        for s in _servers:
            try:
                was_running = s.proc is not None
                exited_early = was_running and s.proc.poll() is not None
                rc = s.stop()
            except Exception as e:
                rc, exited_early = "stop failed: %r" % e, False
            if was_running and status == "ok" and (rc != 0 or exited_early):
                status = "not ok"
                diag = "ehlod %s with status %r (expected to run until SIGTERM, then exit 0)" % (
                    "exited on its own" if exited_early else "stopped", rc)
        if status == "not ok":
            failed += 1
            print("not ok %d - %s" % (i, name))
            _diag(diag)
            for s in _servers:
                _diag(s.diagnostics())
        elif status == "ok":
            print("ok %d - %s (%.1fs)" % (i, name, time.monotonic() - t0))
        else:
            print(status)
        sys.stdout.flush()
        if status != "not ok":
            for d in _tmpdirs:
                shutil.rmtree(d, ignore_errors=True)
        else:
            _diag("kept for inspection: %s" % " ".join(_tmpdirs))
    sys.exit(1 if failed else 0)
