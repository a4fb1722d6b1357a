"""
A private Postfix instance for tests and benchmarks: its own main.cf,
master.cf, queue and data directories under a temporary directory, started
with `postfix -c DIR start` and stopped by its master's PID (never by name,
never the system instance).

Nothing in it looks up DNS: smtpd_peername_lookup = no, DNS disabled for
the smtp client, a literal [IP]:port relayhost, and myhostname set.
Needs root (Postfix's master drops to mail_owner = postfix itself).
"""
import os
import pwd
import signal
import socket
import subprocess
import time

POSTFIX = "/usr/sbin/postfix"

MASTER_CF = """\
# written by privpostfix.py: no chroot, only the services used here
{smtpd_listen} inet n - n - {smtpd_procs} smtpd
pickup    unix  n - n 60  1 pickup
cleanup   unix  n - n -   0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -   - trivial-rewrite
bounce    unix  - - n -   0 bounce
defer     unix  - - n -   0 bounce
trace     unix  - - n -   0 bounce
verify    unix  - - n -   1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -   - proxymap
smtp      unix  - - n -   - smtp
relay     unix  - - n -   - smtp
showq     unix  n - n -   - showq
error     unix  - - n -   - error
retry     unix  - - n -   - error
discard   unix  - - n -   - discard
virtual   unix  - n n -   - virtual
local     unix  - n n -   - local
anvil     unix  - - n -   1 anvil
scache    unix  - - n -   1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def _free_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class PrivatePostfix:
    """settings: extra main.cf lines (name -> value). smtpd_procs: process
    limit of the smtpd service ("-" for default_process_limit)."""

    def __init__(self, directory, settings=None, smtpd_procs="-"):
        self.dir = directory
        self.port = _free_port()
        self.queue = os.path.join(directory, "queue")
        self.data = os.path.join(directory, "data")
        self.logfile = os.path.join(directory, "postfix.log")
        self.pid = None
        for d in (self.queue, self.data):
            os.makedirs(d, exist_ok=True)
        # master.lock and the TLS caches live in data_directory, which
        # Postfix wants owned by mail_owner; the queue stays root's (postfix
        # start creates its subdirectories with their owners).
        pw = pwd.getpwnam("postfix")
        os.chown(self.data, pw.pw_uid, pw.pw_gid)
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "command_directory": "/usr/sbin",
            "daemon_directory": "/usr/lib/postfix/sbin",
            "meta_directory": "/etc/postfix",
            "shlib_directory": "/usr/lib/postfix",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "relay.example.test",
            "mydomain": "example.test",
            "myorigin": "relay.example.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "maillog_file": self.logfile,
            "maillog_file_prefixes": directory,
            "smtputf8_enable": "no",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "anvil_rate_time_unit": "60s",
            "default_process_limit": "100",
            "smtpd_banner": "$myhostname ESMTP",
        }
        main.update(settings or {})
        with open(os.path.join(directory, "main.cf"), "w") as f:
            f.write("# written by privpostfix.py\n")
            for k, v in main.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(directory, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(smtpd_listen="127.0.0.1:%d" % self.port,
                                     smtpd_procs=smtpd_procs))

    def start(self, timeout=30):
        # postfix(1) writes its fatal errors to stderr only when that is a
        # terminal (and otherwise to syslog, absent here): run it under
        # script(1) so a configuration error shows up in the failure.
        p = subprocess.run(["/usr/bin/script", "-qec", "%s -c %s start" % (POSTFIX, self.dir),
                            "/dev/null"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if p.returncode != 0:
            raise AssertionError("postfix -c %s start exited %d: %s\n%s" % (
                self.dir, p.returncode, p.stdout.decode("utf-8", "replace"), self.log()[-3000:]))
        pidfile = os.path.join(self.queue, "pid", "master.pid")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(pidfile) as f:
                    self.pid = int(f.read().strip())
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.settimeout(5)
                    if s.recv(100).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError("private postfix not ready after %ss:\n%s" % (timeout, self.log()[-3000:]))

    def stop(self, timeout=20):
        """SIGTERM to the master (which stops its children), wait for it."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def flush(self):
        """Ask the queue manager to try deferred mail now (postqueue -f)."""
        subprocess.run(["/usr/sbin/postqueue", "-c", self.dir, "-f"], timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
