#!/usr/bin/python3
"""
ehlo benchmark driver (run it through bench/run.sh).

Starts ehlod, a private Postfix instance with the same durability and
Postfix's smtp-sink on loopback, drives each with Postfix's smtp-source in
the same run, and prints messages/s, CPU seconds per 1,000 messages and
peak RSS per server, the ratios, and the issue #2 target check.  Two
further measurements use bench/smtp-probe: RSS of ehlod holding N idle
sessions after EHLO, and EHLO latency percentiles.

How the figures are taken (docs/benchmarks.md says the same):
  * rate    = messages / wall time of smtp-source (every reply 2xx).  For
              the two servers that write Maildirs, "deliv/s" is messages /
              time until all of them are files in new/.
  * CPU     = utime+stime+cutime+cstime summed over the server's process
              tree (root PID and every descendant), read from
              /proc/<pid>/stat before and after the run.  A child that
              exits and is reaped moves its time into its parent's cutime,
              so Postfix's short-lived smtpd/cleanup/virtual processes are
              counted; /proc/<pid>/stat of a multi-threaded process (ehlod)
              already sums its threads.  The "after" sample is taken once
              every message is delivered, so Postfix's queue manager and
              virtual(8) work is included.
  * peak RSS = sum of VmHWM over the server's live processes; for Postfix
              the maximum of that sum over samples every 250 ms.

Every process started here is stopped by its PID (Postfix with
`postfix -c DIR stop`, then its master PID if needed); every load run has
a message count and a timeout.

File systems (--fs): with "fresh" every server instance gets a new ext4
file system of its own, made on a sparse image under the temp dir and
loop-mounted, which holds that server's whole directory.  On ext4 the cost
of creating a file depends on how many inodes were deleted nearby in the
last minutes; a server sharing a file system with the previous runs pays
for their deletions.  The mounts are undone after each server stops, and
any left (a failed run, Ctrl-C, SIGTERM) are undone on exit: only the
mount points this driver made, by their paths.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from identity_bench import Unbound  # the test resolver, started and stopped by PID

CLK_TCK = os.sysconf('SC_CLK_TCK')
SIZES = {'1k': 1024, '64k': 65536}
MODES = {'persist': True, 'single': False}
SERVERS = ('ehlod', 'ehlod-journal', 'postfix', 'smtp-sink')
# ehlod-journal: ehlod with spool_journal_directory (250 after the journal's
# fdatasync, Maildir delivery right after it), the durability Postfix has.
RCPT_LOCAL = 'rcpt'
DOMAIN = 'example.test'

# Messages per run.  Postfix gets fewer: it is an order of magnitude slower
# and the run must stay bounded.  Rates are per second, so they compare.
COUNTS = {
    'quick': {'1k': {'fast': 4000, 'postfix': 1500},
              '64k': {'fast': 2000, 'postfix': 1000}},
    'full': {'1k': {'fast': 20000, 'postfix': 6000},
             '64k': {'fast': 8000, 'postfix': 3000}},
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_greeting(port, deadline_s=20.0, alive=None):
    """Returns True once 127.0.0.1:port answers with a 220 greeting."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=2) as s:
                data = s.recv(512)
                if data.startswith(b'220'):
                    s.sendall(b'QUIT\r\n')
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- /proc

def proc_stat(pid):
    """(ppid, ticks incl. reaped children) or None if the process is gone."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rindex(')') + 2:].split()
    # rest[0] is field 3 (state); utime..cstime are fields 14..17.
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def proc_status(pid, key):
    """Value in kB of a Vm* line of /proc/<pid>/status, 0 if gone."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_pss(pid):
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(root):
    """root and all its live descendants."""
    children = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        st = proc_stat(int(d))
        if st is not None:
            children.setdefault(st[0], []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def alive(pid):
    st = proc_stat(pid)
    if st is None:
        return False
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


# ---------------------------------------------------------------- file systems

def unescape_mountinfo(s):
    """/proc/self/mountinfo writes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(s):
        if s[i] == '\\' and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return ''.join(out)


def mountinfo():
    """[(mount point, major:minor, fs type, source)] from /proc/self/mountinfo."""
    out = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            sep = fields.index('-')
            out.append((unescape_mountinfo(fields[4]), fields[2], fields[sep + 1],
                        unescape_mountinfo(fields[sep + 2])))
    return out


def is_mounted(path):
    return any(m[0] == path for m in mountinfo())


def detect_journal(path):
    """
    (True/False/None, how it was found): does the ext2/3/4 file system
    holding path have a journal?  None when it could not be told.
    """
    st = os.stat(path)
    majmin = f'{os.major(st.st_dev)}:{os.minor(st.st_dev)}'
    found = [m for m in mountinfo() if m[1] == majmin]
    if not found:
        return None, f'no mount of device {majmin} in /proc/self/mountinfo'
    _, _, fstype, source = found[-1]
    if fstype not in ('ext2', 'ext3', 'ext4'):
        return None, f'{source} is {fstype}, not ext2/3/4'
    try:
        r = subprocess.run(['tune2fs', '-l', source], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        for line in r.stdout.splitlines():
            if r.returncode == 0 and line.startswith('Filesystem features:'):
                return 'has_journal' in line.split(':', 1)[1].split(), f'tune2fs -l {source}'
        why = f'tune2fs -l {source} failed'
    except (OSError, subprocess.TimeoutExpired):
        why = f'tune2fs -l {source} failed'
    # tune2fs may be refused the device even as root (a VM's device cgroup).
    # jbd2 lists every journal it runs as /proc/fs/jbd2/<block device>-<inode>.
    name = os.path.basename(os.path.realpath(f'/sys/dev/block/{majmin}'))
    if os.path.isdir('/proc/fs/jbd2') and os.path.exists(f'/proc/fs/ext4/{name}'):
        return (any(e.startswith(name + '-') for e in os.listdir('/proc/fs/jbd2')),
                f'/proc/fs/jbd2 ({why})')
    return None, why


def parse_size(s):
    """'4G', '512M', '1T', or bytes -> bytes (binary units)."""
    units = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
    t = s.strip().upper().removesuffix('IB').removesuffix('B')
    try:
        n = int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f'{s!r} is not a size like 4G or 512M') from None
    if n < 64 << 20:
        raise argparse.ArgumentTypeError(f'{s!r}: at least 64M')
    return n


class FileSystems:
    """
    Where each server's directory is made.  'tmp': a subdirectory of the
    bench temp dir, as before.  'spread': the same, but the temp dir carries
    ext4's TOPDIR flag (chattr +T), so the Orlov allocator places each
    server's directory tree in a block group of its own, with free inodes
    and none of the other servers' deleted ones (docs/benchmarks.md).  'fresh': the root of a new ext4 file system
    on a sparse image of its own (IMAGE = DIR.img next to it), mounted with
    `mount -o loop`; release() unmounts it and deletes the image.
    """

    def __init__(self, base, mode, size, journal, keep):
        self.base, self.mode, self.size, self.keep = base, mode, size, keep
        self.mkfs = ['mkfs.ext4', '-q', '-F'] + ([] if journal else ['-O', '^has_journal'])
        self.mounted = {}   # mount point -> image, for every mount not yet undone
        self.made = []      # every mount point made, for the check at exit

    def make(self, name):
        path = os.path.join(self.base, f'{name}-{time.monotonic_ns()}')
        os.makedirs(path)
        if self.mode == 'fresh':
            image = path + '.img'
            # Recorded before mount runs, so an interrupted mount is undone too.
            self.mounted[path] = image
            self.made.append(path)
            try:
                with open(image, 'xb') as f:
                    f.truncate(self.size)
                run_checked(self.mkfs + [image])
                run_checked(['mount', '-o', 'loop', image, path])
            except BaseException:
                self.release(path)
                raise
        # Servers run as nobody/postfix: they must be able to traverse it.
        os.chmod(path, 0o755)
        return path

    def release(self, path):
        """Unmounts path and deletes its image, if it is one of ours."""
        image = self.mounted.get(path)
        if image is None:
            return
        try:
            gone = self._umount(path)
            self._detach(image)
        finally:
            del self.mounted[path]
            if not self.keep:
                try:
                    os.unlink(image)
                except FileNotFoundError:
                    pass
        if gone:
            try:
                os.rmdir(path)
            except OSError:
                pass

    @staticmethod
    def _umount(path):
        """True once path is no longer a mount point; EBUSY is retried."""
        for attempt in range(10):
            if not is_mounted(path):
                return True
            r = subprocess.run(['umount', path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=120)
            if r.returncode == 0:
                return True
            time.sleep(0.2 * (attempt + 1))
        # Still busy after 9 s: detach it now, the kernel finishes when the
        # last user lets go.  The mount point is no longer visible either way.
        log(f'bench: umount {path}: {r.stdout.strip()}; detaching it lazily (umount -l)')
        subprocess.run(['umount', '-l', path], stdin=subprocess.DEVNULL, timeout=120)
        return False

    @staticmethod
    def _detach(image):
        """Loop devices still backed by image (mount -o loop sets autoclear)."""
        if not os.path.exists(image):
            return
        for _ in range(20):
            r = subprocess.run(['losetup', '-n', '-O', 'NAME', '-j', image], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30)
            devs = r.stdout.split()
            if not devs:
                return
            time.sleep(0.1)
        for dev in devs:
            subprocess.run(['losetup', '-d', dev], stdin=subprocess.DEVNULL, timeout=30)

    def cleanup(self):
        """Undoes every mount of ours still there; True if none is left."""
        for path in list(self.mounted):
            try:
                self.release(path)
            except Exception as e:  # noqa: BLE001 -- try the others
                log(f'bench: releasing {path}: {e}')
        return not any(is_mounted(p) for p in self.made)


def run_checked(cmd):
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)}: {r.stdout.strip()}')


# ---------------------------------------------------------------- servers

OPEN = []   # servers made and not yet closed, for the clean-up on exit


class Server:
    """One server under test; subclasses know how to start and stop it."""
    maildir = None          # new/ directory messages land in, if any
    multi_process = False

    def __init__(self, fs, name):
        self.name = name
        self.fs = fs
        self.closed = False
        self.dir = fs.make(name)
        OPEN.append(self)
        self.port = free_port()
        self.root = None

    def close(self):
        """Stops the server and gives back its file system, also after a failure."""
        if self in OPEN:
            OPEN.remove(self)
        try:
            if not self.closed:
                self.closed = True
                self.stop()
        finally:
            self.fs.release(self.dir)

    def pids(self):
        return tree(self.root) if self.multi_process else [self.root]

    def cpu_ticks(self, pids=None):
        return sum((proc_stat(p) or (0, 0))[1] for p in (pids or self.pids()))

    def rss_kib(self, pids=None):
        return sum(proc_status(p, 'VmHWM') for p in (pids or self.pids()))

    def delivered(self):
        if self.maildir is None:
            return None
        try:
            return sum(1 for _ in os.scandir(self.maildir))
        except FileNotFoundError:
            return 0

    def evidence(self):
        return ''


def stop_pid(pid, proc=None, grace=10.0):
    """SIGTERM one PID, wait, SIGKILL if it lingers."""
    if pid is None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if proc is not None and proc.poll() is not None:
                return
            if proc is None and not alive(pid):
                return
            time.sleep(0.05)
    if proc is not None:
        proc.wait(timeout=5)


class Ehlod(Server):
    def __init__(self, fs, binary, logfile=True, journal=False, settings=(), tls=False):
        super().__init__(fs, 'ehlod-journal' if journal else 'ehlod')
        self.binary = binary
        mail = os.path.join(self.dir, 'mail')
        os.makedirs(mail)
        owner = 'nobody' if os.geteuid() == 0 else ''
        if owner:
            shutil.chown(mail, 'nobody')
        self.log = os.path.join(self.dir, 'maillog') if logfile else '/dev/null'
        self.conf = os.path.join(self.dir, 'ehlod.conf')
        journal_line = ''
        if journal:
            jdir = os.path.join(self.dir, 'journal')
            os.makedirs(jdir)
            if owner:
                shutil.chown(jdir, 'nobody')
            journal_line = f'spool_journal_directory = {jdir}'
        # STARTTLS: off for the throughput runs (Postfix has none either);
        # tls=True: ehlod's default (may, with a certificate made at start).
        tls_lines = ('smtpd_tls_security_level = none\nsmtpd_tls_auto_cert = no' if not tls else
                     'smtpd_tls_security_level = may\nsmtpd_tls_auto_cert = yes\n'
                     f'smtpd_tls_auto_cert_dir = {os.path.join(self.dir, "tls")}')
        with open(self.conf, 'w') as f:
            f.write(f"""\
listen = smtp:127.0.0.1:{self.port}
myhostname = bench.test
mydomain = bench.test
mail_owner = {owner}
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {mail}
maillog_file = {self.log}
smtpd_client_connection_count_limit = 0
smtpd_max_connections = 20000
# No DNS in a benchmark: loopback clients skip the EHLO-name checks.
helo_checks_exempt = 127.0.0.0/8
{journal_line}
{tls_lines}
""")
            # --set: later lines win (ehlod.conf(5)).
            f.writelines(f'{s}\n' for s in settings)
        self.maildir = os.path.join(mail, DOMAIN, RCPT_LOCAL, 'new')
        self.proc = None

    def start(self):
        self.out = open(os.path.join(self.dir, 'stdout'), 'w')
        self.proc = subprocess.Popen([self.binary, '-c', self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.root = self.proc.pid
        if not wait_greeting(self.port, alive=lambda: self.proc.poll() is None):
            raise RuntimeError('ehlod did not greet')

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            stop_pid(self.proc.pid, self.proc)
            self.out.close()

    def evidence(self):
        parts = []
        if self.proc is not None and self.proc.poll() is not None:
            rc = self.proc.returncode
            parts.append(f'ehlod exited with {"signal " + str(-rc) if rc < 0 else "status " + str(rc)}')
        for path in (os.path.join(self.dir, 'stdout'), self.log):
            if path != '/dev/null' and os.path.exists(path):
                with open(path, errors='replace') as f:
                    lines = f.readlines()
                bad = [l for l in lines if any(w in l for w in
                       ('warning', 'error', 'fatal', 'panic', 'lost connection', 'timeout'))
                       and 'running as root' not in l]
                parts.append(f'{path}: {len(lines)} lines, {len(bad)} warning/error lines')
                parts.extend('  ' + l.rstrip() for l in bad[:8])
        return '\n'.join(parts)


POSTFIX_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix(Server):
    """
    A private instance: its own config, queue, data and mailbox directories
    under the bench temp dir; nothing under /etc/postfix or /var/spool is
    read or written.  cleanup(8) fsyncs the queue file before smtpd answers
    250 and virtual(8) fsyncs the Maildir file before linking it into new/
    (checked with strace; see docs/benchmarks.md).
    """
    multi_process = True

    def __init__(self, fs, logfile=True):
        super().__init__(fs, 'postfix')
        self.etc = os.path.join(self.dir, 'etc')
        spool, data, mail = (os.path.join(self.dir, d) for d in ('spool', 'data', 'mail'))
        for d in (self.etc, spool, data, mail):
            os.makedirs(d)
        shutil.chown(data, 'postfix')
        shutil.chown(mail, 'nobody', 'nogroup')
        self.log = os.path.join(self.dir, 'maillog')
        nobody_uid = int(subprocess.check_output(['id', '-u', 'nobody']))
        nogroup_gid = int(subprocess.check_output(['id', '-g', 'nobody']))
        with open(os.path.join(self.etc, 'main.cf'), 'w') as f:
            f.write(f"""\
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
disable_dns_lookups = yes
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
maillog_file = {self.log if logfile else '/dev/null'}
maillog_file_prefixes = {self.dir}, /dev/null
alias_maps =
alias_database =
biff = no
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {mail}
# Every local part goes to one Maildir, like smtp-source's single recipient at ehlod.
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:{nobody_uid}
virtual_gid_maps = static:{nogroup_gid}
virtual_minimum_uid = 100
default_process_limit = 300
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
""")
        with open(os.path.join(self.etc, 'master.cf'), 'w') as f:
            f.write(POSTFIX_MASTER_CF.format(port=self.port))
        self.maildir = os.path.join(mail, 'box', 'new')
        self.pidfile = os.path.join(spool, 'pid', 'master.pid')

    def _postfix(self, verb):
        return subprocess.run(['postfix', '-c', self.etc, verb], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=60)

    def start(self):
        # "postfix check" creates the queue directories with their owners.
        self._postfix('check')
        r = self._postfix('start')
        if r.returncode != 0:
            raise RuntimeError(f'postfix start: {r.stdout}')
        end = time.monotonic() + 20
        while time.monotonic() < end and self.root is None:
            try:
                with open(self.pidfile) as f:
                    self.root = int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.05)
        if self.root is None or not wait_greeting(self.port):
            raise RuntimeError('postfix did not start')

    def running(self):
        return self.root is not None and alive(self.root)

    def stop(self):
        if self.root is None:
            try:
                with open(self.pidfile) as f:
                    self.root = int(f.read().strip())
            except (OSError, ValueError):
                # Never got as far as a master: nothing of ours to stop.
                return
        before = self.pids()
        self._postfix('stop')
        end = time.monotonic() + 15
        while time.monotonic() < end and alive(self.root):
            time.sleep(0.05)
        # Anything of this instance still alive is stopped by its own PID.
        for p in [self.root] + before:
            if alive(p):
                stop_pid(p, grace=2.0)

    def evidence(self):
        if not os.path.exists(self.log):
            return ''
        with open(self.log, errors='replace') as f:
            bad = [l.rstrip() for l in f if 'warning' in l or 'fatal' in l or 'panic' in l]
        return '\n'.join([f'{self.log}: {len(bad)} warning/fatal lines'] + bad[:8])


class Sink(Server):
    def __init__(self, fs):
        super().__init__(fs, 'smtp-sink')
        self.proc = None

    def start(self):
        cmd = ['smtp-sink']
        if os.geteuid() == 0:
            cmd += ['-u', 'nobody']
        cmd += [f'127.0.0.1:{self.port}', '1000']
        self.err = open(os.path.join(self.dir, 'stderr'), 'w')
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.err,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.root = self.proc.pid
        if not wait_greeting(self.port, alive=lambda: self.proc.poll() is None):
            raise RuntimeError('smtp-sink did not greet')

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            stop_pid(self.proc.pid, self.proc)
            self.err.close()


# ---------------------------------------------------------------- throughput

class PeakSampler(threading.Thread):
    """Max over time of the summed VmHWM of a multi-process server."""

    def __init__(self, server, period=0.25):
        super().__init__(daemon=True)
        self.server, self.period = server, period
        self.peak = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.peak = max(self.peak, self.server.rss_kib())
            self.halt.wait(self.period)

    def finish(self):
        self.halt.set()
        self.join()
        self.peak = max(self.peak, self.server.rss_kib())
        return self.peak


def smtp_source(port, sessions, count, size, persist, timeout):
    cmd = ['smtp-source', '-s', str(sessions), '-m', str(count), '-l', str(size),
           '-f', 'bench@client.test', '-t', f'{RCPT_LOCAL}@{DOMAIN}', '-M', 'client.test']
    if persist:
        cmd.append('-d')
    cmd.append(f'127.0.0.1:{port}')
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        stalled = False
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        stalled = True
    except BaseException:
        # SIGTERM or Ctrl-C: not left running against a server being stopped.
        p.kill()
        p.wait()
        raise
    t = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {'cmd': ' '.join(cmd), 'rc': p.returncode, 'stalled': stalled,
            'output': out.strip()[-2000:], 'seconds': t, 'client_cpu_s': client_cpu}


def context_switches():
    """The system's context switches since boot (/proc/stat ctxt)."""
    with open('/proc/stat') as f:
        for line in f:
            if line.startswith('ctxt '):
                return int(line.split()[1])
    return 0


def block_stat_path(path):
    """/sys/block statistics file of the device holding path, or None."""
    st = os.stat(path)
    p = f'/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/stat'
    return p if os.path.exists(p) else None


def block_io(stat_path):
    """(write requests, flush requests) completed by the device so far
    (Documentation/admin-guide/iostats.rst: fields 5 and 16), or None."""
    if stat_path is None:
        return None
    try:
        with open(stat_path) as f:
            v = f.read().split()
        return int(v[4]), int(v[15]) if len(v) > 15 else 0
    except (OSError, ValueError, IndexError):
        return None


def wait_delivered(server, target, t0, timeout):
    """Seconds from t0 until server.delivered() >= target, or None."""
    end = time.monotonic() + timeout
    while True:
        n = server.delivered()
        if n >= target:
            return time.monotonic() - t0
        if time.monotonic() > end:
            return None
        time.sleep(0.02)


def drop_caches():
    """Writes dirty data back, then drops the clean page cache and the dentry
    and inode caches, so that every server's run starts from the same kernel
    state (docs/benchmarks.md, "Cache state").  False where not allowed."""
    try:
        os.sync()
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('3\n')
    except OSError:
        return False
    return True


def throughput_one(server, size_name, sessions, mode, count, timeout, drop):
    try:
        if drop and not drop_caches():
            raise RuntimeError('cannot drop caches (/proc/sys/vm/drop_caches); use --caches keep')
        return measure_throughput(server, size_name, sessions, mode, count, timeout)
    finally:
        server.close()


def measure_throughput(server, size_name, sessions, mode, count, timeout):
    size, persist = SIZES[size_name], MODES[mode]
    res = {'server': server.name, 'messages': count}
    try:
        server.start()
        # Warm-up: start the server's processes, create the Maildir.
        warm = smtp_source(server.port, sessions, sessions * 2, size, persist, 60)
        base = 0
        if server.maildir is not None:
            base = sessions * 2
            if wait_delivered(server, base, time.monotonic(), 60) is None:
                raise RuntimeError(f'warm-up not delivered ({server.delivered()}/{base})')
        if warm['rc'] != 0:
            raise RuntimeError(f'warm-up failed: {warm["output"]}')
        sampler = PeakSampler(server) if server.multi_process else None
        if sampler:
            sampler.start()
        pids0 = server.pids()
        cpu0 = server.cpu_ticks(pids0)
        ctx0 = context_switches()
        bstat = block_stat_path(server.dir)
        io0 = block_io(bstat)
        t0 = time.monotonic()
        run = smtp_source(server.port, sessions, count, size, persist, timeout)
        res.update(run)
        if server.maildir is not None and not run['stalled']:
            td = wait_delivered(server, base + count, t0, timeout)
            res['deliver_seconds'] = td
            res['delivered'] = server.delivered() - base
        # Children that exited during the run are in the root's cutime.
        cpu1 = server.cpu_ticks()
        res['cpu_s'] = (cpu1 - cpu0) / CLK_TCK
        res['ctxsw_per_msg'] = (context_switches() - ctx0) / count
        # Device requests per message, whole device: the other servers are
        # idle meanwhile; background write-back that falls in the run
        # counts too, and journal mode's deliveries finish in it.
        io1 = block_io(bstat)
        if io0 is not None and io1 is not None:
            res['writes_per_msg'] = (io1[0] - io0[0]) / count
            res['flushes_per_msg'] = (io1[1] - io0[1]) / count
        res['peak_rss_kib'] = sampler.finish() if sampler else server.rss_kib()
        pids = server.pids()
        res['processes'] = len(pids)
        # RSS sums count shared library pages once per process; PSS does not.
        res['pss_end_kib'] = sum(proc_pss(p) for p in pids)
        res['loadavg'] = os.getloadavg()[0]
        res['alive'] = server.running()
        res['ok'] = (run['rc'] == 0 and not run['stalled'] and res['alive'] and
                     (server.maildir is None or res.get('delivered') == count))
        res['rate'] = count / run['seconds']
        if res.get('deliver_seconds'):
            res['deliver_rate'] = count / res['deliver_seconds']
        res['cpu_s_per_1k'] = res['cpu_s'] * 1000 / count
    except Exception as e:  # noqa: BLE001 -- reported with the evidence below
        res['ok'] = False
        res['error'] = str(e)
    if not res.get('ok'):
        res['evidence'] = server.evidence()
    return res


def fmt(v, spec):
    return format(v, spec) if v is not None else '-'


def fmt_io(r):
    w, f = r.get('writes_per_msg'), r.get('flushes_per_msg')
    return f'{w:.1f}+{f:.1f}' if w is not None and f is not None else '-'


def print_config(title, rows):
    print(f'\n== {title} ==  (load average {os.getloadavg()[0]:.1f})')
    print(f'{"server":13} {"msgs":>6} {"msg/s":>8} {"deliv/s":>8} {"CPU s/1k":>9} '
          f'{"peak RSS MiB":>12} {"PSS MiB":>7} {"procs":>5} {"cs/msg":>6} {"wr+fl/msg":>9}  '
          'status / rates of the runs')
    for r in rows:
        nbad = len(r.get('failed_runs', []))
        status = 'ok' if r.get('ok') else f'FAILED {nbad or 1}/{r.get("runs", 1)}'
        print(f'{r["server"]:13} {r["messages"]:>6} {fmt(r.get("rate"), ".0f"):>8} '
              f'{fmt(r.get("deliver_rate"), ".0f"):>8} {fmt(r.get("cpu_s_per_1k"), ".3f"):>9} '
              f'{fmt(r.get("peak_rss_kib", 0) / 1024, ".1f"):>12} '
              f'{fmt(r.get("pss_end_kib", 0) / 1024, ".1f"):>7} {r.get("processes", 0):>5} '
              f'{fmt(r.get("ctxsw_per_msg"), ".1f"):>6} '
              f'{fmt_io(r):>9}  {status}'
              + (f' {r["rates"]}' if r.get('runs', 1) > 1 else ''))
        for f in r.get('failed_runs') or ([r] if not r.get('ok') else []):
            for line in (f.get('error'), f.get('output'), f.get('evidence')):
                if line:
                    print('    ' + str(line).replace('\n', '\n    '))


def verdict_one(e, p, s):
    out = {}
    if e and p:
        out['ehlod_over_postfix'] = e['rate'] / p['rate']
        out['ehlod_over_postfix_delivered'] = e['rate'] / p['deliver_rate']
        out['cpu_postfix_over_ehlod'] = p['cpu_s_per_1k'] / e['cpu_s_per_1k'] if e['cpu_s_per_1k'] else None
    if e and s:
        out['ehlod_over_sink'] = e['rate'] / s['rate']
    if e and p and s:
        need = min(5 * p['rate'], 0.8 * s['rate'])
        out['target_rate'] = need
        out['target_met'] = e['rate'] >= need
    return out


def verdict(rows):
    """Ratios and the target for each ehlod variant that ran."""
    by = {r['server']: r for r in rows if r.get('rate')}
    p, s = by.get('postfix'), by.get('smtp-sink')
    return {name: verdict_one(by.get(name), p, s)
            for name in ('ehlod', 'ehlod-journal') if name in by}


def print_verdict(vs):
    for name, v in vs.items():
        parts = []
        if 'ehlod_over_postfix' in v:
            parts.append(f'{name}/postfix = {v["ehlod_over_postfix"]:.2f}x '
                         f'({v["ehlod_over_postfix_delivered"]:.2f}x of its delivered rate)')
        if 'ehlod_over_sink' in v:
            parts.append(f'{name}/smtp-sink = {v["ehlod_over_sink"]:.2f}')
        if parts:
            print('  ' + '; '.join(parts))
        if 'target_met' in v:
            print(f'  target {name} >= min(5 x postfix, 0.8 x smtp-sink) = '
                  f'{v["target_rate"]:.0f} msg/s: {"MET" if v["target_met"] else "NOT MET"}')


def new_server(args, name):
    if name in ('ehlod', 'ehlod-journal'):
        return Ehlod(args.fs, args.ehlod, args.ehlod_log, journal=name == 'ehlod-journal',
                     settings=args.set)
    if name == 'postfix':
        return Postfix(args.fs, args.ehlod_log)
    return Sink(args.fs)


def median_row(runs):
    """
    The successful run with the median rate.  Failed runs are kept whole
    (error and evidence) under 'failed_runs', and make the row not ok.
    """
    good = sorted((r for r in runs if r.get('ok')), key=lambda r: r['rate'])
    bad = [r for r in runs if not r.get('ok')]
    row = dict(good[(len(good) - 1) // 2] if good else bad[0])
    row['runs'] = len(runs)
    row['rates'] = [round(r['rate']) if r.get('ok') else 'FAILED' for r in runs]
    row['failed_runs'] = bad
    row['ok'] = not bad
    if not good:
        row.pop('rate', None)
        row.pop('deliver_rate', None)
    return row


def run_throughput(args, results):
    counts = COUNTS['quick' if args.quick else 'full']
    for size_name in args.sizes:
        for sessions in args.sessions:
            for mode in args.modes:
                title = (f'{size_name.upper()}iB messages, {sessions} concurrent sessions, '
                         f'{"many messages per session (-d)" if MODES[mode] else "one message per session"}')
                runs = {name: [] for name in args.servers}
                # Servers take turns within each repetition, so a busy
                # neighbour on the machine slows all three alike.
                for rep in range(args.repeat):
                    for name in args.servers:
                        count = args.messages or counts[size_name]['postfix' if name == 'postfix' else 'fast']
                        timeout = max(60, count / 20)
                        log(f'  {title}: {name}, {count} messages, run {rep + 1}/{args.repeat} ...')
                        runs[name].append(throughput_one(new_server(args, name), size_name,
                                                         sessions, mode, count, timeout,
                                                         args.caches == 'drop'))
                rows = [median_row(runs[name]) for name in args.servers]
                v = verdict(rows)
                print_config(title, rows)
                print_verdict(v)
                sys.stdout.flush()
                results['throughput'].append({'size': size_name, 'sessions': sessions,
                                              'mode': mode, 'rows': rows, 'verdict': v})


# ---------------------------------------------------------------- idle, latency

def run_idle(args, results):
    """10,000 idle sessions, twice: STARTTLS off (as in the throughput runs),
    then STARTTLS offered as ehlod's default has it (smtpd_tls_security_level
    = may with an automatic certificate), which loads OpenSSL and puts
    STARTTLS in every EHLO reply.  The target must hold for both."""
    results['idle'] = idle_one(args, 'STARTTLS off')
    results['idle_tls'] = idle_one(args, 'STARTTLS offered, the default', tls=True)
    results['idle_identity'] = idle_identity(args)
    if 'postfix' in args.servers and args.postfix_idle:
        results['postfix_idle'] = postfix_idle(args)


def idle_identity(args):
    """The same 10,000 sessions, STARTTLS off, but not exempt from the
    EHLO-name checks, so each session holds its DNS answers: ehlod's
    defaults for the checks, with the test resolver of tests/dns (unbound on
    loopback, never the system's).  The probe's sources 127.0.0.2-9 meet
    that zone's cases: a confirmed PTR, a PTR that does not confirm, a
    generic name, NXDOMAIN, SERVFAIL, a dropped query (a timeout), twelve
    PTR names; its EHLO name is refused by that resolver (SERVFAIL).  The
    sessions are measured after dns_timeout (2 s) has passed, when every
    lookup is over.  Reported for information: Postfix answers the issue #2
    comparison without DNS lookups, as the other rows do."""
    if not os.path.exists('/usr/sbin/unbound'):
        print('\n== idle sessions with the identity checks: skipped (no /usr/sbin/unbound) ==')
        return {'skipped': 'no unbound'}
    try:
        dns = Unbound(args.tmp, 'dns-idle')
    except (subprocess.SubprocessError, IndexError, ValueError) as e:
        print(f'\n== idle sessions with the identity checks: unbound did not start: {e} ==')
        return {'ok': False, 'error': f'unbound: {e}'}
    try:
        return idle_one(args, 'STARTTLS off, identity checks on, not exempt', settle_s=3.0,
                        settings=('helo_checks_exempt =', f'dns_forwarders = 127.0.0.1@{dns.port}'),
                        informational=True)
    finally:
        dns.stop()


def idle_one(args, label, tls=False, settings=(), settle_s=1.0, informational=False):
    srv = Ehlod(args.fs, args.ehlod, args.ehlod_log, tls=tls, settings=settings)
    res = {'sessions': args.idle_sessions, 'informational': informational}
    try:
        srv.start()
        res['rss_before_kib'] = proc_status(srv.root, 'VmRSS')
        p = subprocess.Popen([args.probe, 'idle', '-n', str(args.idle_sessions), '-S', '8',
                              '-t', '120', '127.0.0.1', str(srv.port)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        try:
            line = p.stdout.readline().strip()
            res['probe'] = line
            time.sleep(settle_s)
            res['rss_kib'] = proc_status(srv.root, 'VmRSS')
            res['hwm_kib'] = proc_status(srv.root, 'VmHWM')
            res['pss_kib'] = proc_pss(srv.root)
            res['alive'] = srv.running()
            p.stdin.close()
            res['probe'] += ' ' + p.stdout.read().strip()
            p.wait(timeout=30)
        finally:
            if p.poll() is None:
                stop_pid(p.pid, p)
        # ehlod sees the 10,000 EOFs only now: sampled at once, the RSS
        # would catch the close storm's transient peak (30-42 MiB, gone
        # 0.2 s later), not what stays.
        time.sleep(1.0)
        res['rss_after_close_kib'] = proc_status(srv.root, 'VmRSS')
        fields = dict(kv.split('=') for kv in res['probe'].split() if '=' in kv)
        res['ready'] = int(fields.get('ready', 0))
        res['ok'] = (res['ready'] == args.idle_sessions and fields.get('dropped') == '0'
                     and res['alive'])
        res['target_met'] = res['ok'] and res['rss_kib'] < 32 * 1024
    except Exception as e:  # noqa: BLE001
        res['ok'] = False
        res['error'] = str(e)
    if not res.get('ok'):
        res['evidence'] = srv.evidence()
    srv.close()
    print(f'\n== {args.idle_sessions} concurrent idle sessions after EHLO (ehlod, {label}) ==')
    print(f'  probe: {res.get("probe", "-")}')
    if 'rss_kib' in res:
        per = (res['rss_kib'] - res['rss_before_kib']) / max(1, res['ready'])
        print(f'  ehlod RSS: {res["rss_before_kib"] / 1024:.1f} MiB before, '
              f'{res["rss_kib"] / 1024:.1f} MiB with the sessions open '
              f'(PSS {res["pss_kib"] / 1024:.1f} MiB, {per:.1f} KiB/session), '
              f'{res["rss_after_close_kib"] / 1024:.1f} MiB after they closed')
        print(f'  target total RSS < 32 MiB: {"MET" if res["target_met"] else "NOT MET"}'
              + (' (for information: not part of the issue #2 verdict)' if informational else ''))
    for k in ('error', 'evidence'):
        if res.get(k):
            print('    ' + res[k].replace('\n', '\n    '))
    return res


def postfix_idle(args):
    """Postfix's per-session memory, from a smaller count (one smtpd each)."""
    n = args.postfix_idle
    srv = Postfix(args.fs)
    res = {'sessions': n}
    try:
        srv.start()
        pids0 = srv.pids()
        rss0 = sum(proc_status(x, 'VmRSS') for x in pids0)
        pss0 = sum(proc_pss(x) for x in pids0)
        p = subprocess.Popen([args.probe, 'idle', '-n', str(n), '-S', '2', '-w', '32',
                              '-t', '60', '127.0.0.1', str(srv.port)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        try:
            res['probe'] = p.stdout.readline().strip()
            time.sleep(1.0)
            pids = srv.pids()
            res['processes'] = len(pids)
            res['rss_kib'] = sum(proc_status(x, 'VmRSS') for x in pids)
            res['pss_kib'] = sum(proc_pss(x) for x in pids)
            res['rss_per_session_kib'] = (res['rss_kib'] - rss0) / n
            res['pss_per_session_kib'] = (res['pss_kib'] - pss0) / n
            p.stdin.close()
            res['probe'] += ' ' + p.stdout.read().strip()
            p.wait(timeout=30)
        finally:
            if p.poll() is None:
                stop_pid(p.pid, p)
    except Exception as e:  # noqa: BLE001
        res['error'] = str(e)
    srv.close()
    print(f'\n== Postfix, {n} concurrent idle sessions after EHLO (for scale) ==')
    print(f'  probe: {res.get("probe", "-")}')
    if 'rss_kib' in res:
        print(f'  {res["processes"]} processes, summed RSS {res["rss_kib"] / 1024:.1f} MiB, '
              f'summed PSS {res["pss_kib"] / 1024:.1f} MiB; per session '
              f'{res["rss_per_session_kib"]:.0f} KiB RSS / {res["pss_per_session_kib"]:.0f} KiB PSS')
    if res.get('error'):
        print('    ' + res['error'])
    return res


def run_latency(args, results):
    print(f'\n== EHLO latency, {args.latency_sessions} sequential sessions '
          f'(connect, greeting, EHLO, QUIT), microseconds ==')
    print(f'{"server":10} {"greet p50":>9} {"greet p99":>9} {"EHLO p50":>9} {"EHLO p99":>9} '
          f'{"sess p50":>9} {"sess p99":>9}  status')
    out = []
    for name in args.servers:
        srv = new_server(args, name)
        res = {'server': name}
        try:
            srv.start()
            # Warm-up, so one-time costs (Postfix spawning smtpd) are not timed.
            subprocess.run([args.probe, 'latency', '-n', '50', '127.0.0.1', str(srv.port)],
                           stdout=subprocess.DEVNULL, timeout=60)
            r = subprocess.run([args.probe, 'latency', '-n', str(args.latency_sessions),
                                '127.0.0.1', str(srv.port)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=300)
            fields = dict(kv.split('=') for kv in r.stdout.split() if '=' in kv)
            res.update({k: int(v) for k, v in fields.items()})
            res['ok'] = r.returncode == 0 and srv.running()
        except Exception as e:  # noqa: BLE001
            res['ok'] = False
            res['error'] = str(e)
        if not res['ok']:
            res['evidence'] = srv.evidence()
        srv.close()
        out.append(res)
        print(f'{name:10} ' + ' '.join(f'{res.get(k, "-"):>9}' for k in (
            'greeting_p50_us', 'greeting_p99_us', 'ehlo_p50_us', 'ehlo_p99_us',
            'session_p50_us', 'session_p99_us')) + ('  ok' if res['ok'] else '  FAILED'))
        for k in ('error', 'evidence'):
            if res.get(k):
                print('    ' + res[k].replace('\n', '\n    '))
    results['latency'] = out


# ---------------------------------------------------------------- main

def csv(choices):
    def parse(s):
        vals = [x.strip() for x in s.split(',') if x.strip()]
        for v in vals:
            if v not in choices:
                raise argparse.ArgumentTypeError(f'{v!r} is not one of {", ".join(choices)}')
        return vals
    return parse


def main():
    ap = argparse.ArgumentParser(description='ehlod vs Postfix vs smtp-sink on loopback')
    ap.add_argument('--quick', action='store_true', help='fewer messages per run')
    ap.add_argument('--tests', type=csv(('throughput', 'idle', 'latency')),
                    default=['throughput', 'idle', 'latency'])
    ap.add_argument('--sizes', type=csv(tuple(SIZES)), default=list(SIZES))
    ap.add_argument('--sessions', type=lambda s: [int(x) for x in s.split(',')], default=[10, 100])
    ap.add_argument('--modes', type=csv(tuple(MODES)), default=list(MODES))
    ap.add_argument('--servers', type=csv(SERVERS), default=list(SERVERS))
    ap.add_argument('--messages', type=int, default=0, help='messages per run for every server')
    ap.add_argument('--repeat', type=int, default=0,
                    help='runs per server and configuration, median reported (default 1, 3 without --quick)')
    ap.add_argument('--idle-sessions', type=int, default=10000)
    ap.add_argument('--postfix-idle', type=int, default=200,
                    help='idle sessions for the Postfix comparison (0: skip)')
    ap.add_argument('--latency-sessions', type=int, default=2000)
    ap.add_argument('--no-log', dest='ehlod_log', action='store_false',
                    help='servers log to /dev/null instead of a file')
    ap.add_argument('--ehlod', required=True)
    ap.add_argument('--probe', required=True)
    ap.add_argument('--json', help='write all results here')
    ap.add_argument('--keep', action='store_true', help='keep the temp dir (logs, Maildirs)')
    ap.add_argument('--fs', choices=('spread', 'fresh', 'tmp'),
                    help="spread (default): every server in the temp dir, marked chattr +T so each "
                         "server's files go to block groups of their own; "
                         "fresh: a new loop-mounted ext4 file system per server; "
                         "tmp: every server in the temp dir, unmarked")
    ap.add_argument('--set', action='append', default=[], metavar='NAME=VALUE',
                    help='an ehlod.conf line added to both ehlod configurations (repeatable)')
    ap.add_argument('--caches', choices=('drop', 'keep'),
                    help="drop (default as root): sync and drop the page, dentry and inode caches "
                         "before each throughput run of each server; keep: leave them as they are")
    ap.add_argument('--fs-size', type=parse_size, default=parse_size('4G'), metavar='SIZE',
                    help='size of each sparse image for --fs fresh (default 4G)')
    ap.add_argument('--fs-journal', choices=('yes', 'no'),
                    help='ext4 journal for --fs fresh (default: as the temp dir\'s file system)')
    args = ap.parse_args()
    args.repeat = args.repeat or (1 if args.quick else 3)

    if os.geteuid() != 0 and 'postfix' in args.servers:
        log('bench: Postfix needs root (its master runs as root); leaving it out')
        args.servers = [s for s in args.servers if s != 'postfix']
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle_sessions + 100 and 'idle' in args.tests:
        log(f'bench: RLIMIT_NOFILE hard limit {hard} is too low for {args.idle_sessions} sessions')
        return 2

    missing = [t for t in ('mkfs.ext4', 'mount', 'umount', 'losetup') if shutil.which(t) is None]
    why_not = 'not root' if os.geteuid() != 0 else ', '.join(missing) + ' not found' if missing else ''
    if args.fs == 'fresh' and why_not:
        log(f'bench: --fs fresh needs root and mkfs.ext4, mount, umount, losetup ({why_not})')
        return 2
    if args.fs is None:
        args.fs = 'spread'
    if args.caches is None:
        args.caches = 'drop' if os.geteuid() == 0 else 'keep'
    if args.caches == 'drop' and not os.access('/proc/sys/vm/drop_caches', os.W_OK):
        log('bench: --caches drop needs to write /proc/sys/vm/drop_caches (root); '
            'use --caches keep')
        return 2

    args.tmp = os.path.realpath(tempfile.mkdtemp(prefix='ehlo-bench.'))
    os.chmod(args.tmp, 0o755)
    if args.fs == 'spread':
        r = subprocess.run(['chattr', '+T', args.tmp], capture_output=True, text=True)
        if r.returncode != 0:
            log(f'bench: note: chattr +T {args.tmp} failed ({(r.stderr or "").strip()}); using '
                f'--fs tmp, so file creation costs may depend on run order (docs/benchmarks.md)')
            args.fs = 'tmp'
    tmp_journal, how = detect_journal(args.tmp)
    if args.fs in ('tmp', 'spread'):
        journal, source = tmp_journal, f'the temp dir\'s, {how}'
        if args.fs_journal:
            log(f'bench: --fs-journal has no effect with --fs {args.fs}')
    elif args.fs_journal:
        journal, source = args.fs_journal == 'yes', '--fs-journal'
    elif tmp_journal is None:
        journal, source = True, f'default, not known for the temp dir ({how})'
    else:
        journal, source = tmp_journal, f'as the temp dir, {how}'
    args.fs = FileSystems(args.tmp, args.fs, args.fs_size, journal is not False, args.keep)
    size = (f'{args.fs_size >> 30}G' if args.fs_size % (1 << 30) == 0
            else f'{args.fs_size >> 20}M' if args.fs_size % (1 << 20) == 0 else str(args.fs_size))
    fs = {'mode': args.fs.mode, 'journal': journal, 'journal_source': source,
          'temp_dir_journal': tmp_journal,
          'mkfs': ' '.join(args.fs.mkfs) if args.fs.mode == 'fresh' else None,
          'image_size': size if args.fs.mode == 'fresh' else None}
    results = {'started': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'argv': sys.argv[1:],
               'machine': {'cpus': os.cpu_count(), 'kernel': os.uname().release},
               'fs': fs, 'caches': args.caches, 'ehlod_settings': args.set, 'throughput': []}
    yn = {True: 'yes', False: 'no', None: 'unknown'}[journal]
    if args.fs.mode == 'fresh':
        fs_text = f'fs fresh ({size} image per server, {fs["mkfs"]}, journal {yn}: {source})'
    elif args.fs.mode == 'spread':
        fs_text = (f'fs spread (servers share the temp dir, chattr +T: a block group each, '
                   f'journal {yn}: {source})')
    else:
        fs_text = f'fs tmp (servers share the temp dir, journal {yn}: {source})'
    print(f'ehlo bench: {os.cpu_count()} CPUs, kernel {os.uname().release}, '
          f'ehlod {args.ehlod}, temp {args.tmp}, {fs_text}, caches {args.caches}'
          + (f', ehlod settings: {"; ".join(args.set)}' if args.set else ''))

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    t0 = time.monotonic()
    try:
        if 'throughput' in args.tests:
            run_throughput(args, results)
        if 'idle' in args.tests and 'ehlod' in args.servers:
            run_idle(args, results)
        if 'latency' in args.tests:
            run_latency(args, results)
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave mounts.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for srv in list(OPEN):
            try:
                srv.close()
            except Exception as e:  # noqa: BLE001 -- the mounts still go
                log(f'bench: stopping {srv.name}: {e}')
        unmounted = args.fs.cleanup()
        results['seconds'] = time.monotonic() - t0
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(results, f, indent=1)
        if args.keep:
            print(f'kept {args.tmp}' + (' (each server\'s file system is its DIR.img: '
                                        'mount -o loop to read it)' if args.fs.mode == 'fresh' else ''))
        elif unmounted:
            shutil.rmtree(args.tmp, ignore_errors=True)
        else:
            log(f'bench: a mount under {args.tmp} is still there; not deleting the temp dir')
    print(f'\nbench: {results["seconds"]:.0f} s')
    ok = all(r.get('ok') for c in results['throughput'] for r in c['rows'])
    ok = ok and results.get('idle', {}).get('ok', True)
    ok = ok and results.get('idle_tls', {}).get('ok', True)
    ok = ok and all(r.get('ok') for r in results.get('latency', []))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
