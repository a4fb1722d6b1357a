#!/usr/bin/python3
"""
Privilege drop (mail_owner): ehlod binds as root, then runs as the mail
owner; Maildirs and messages belong to that user; a SIGHUP reload still
works (it reads the certificate and maps as the mail owner). A file that
only root can read is reported at start, since every reload would fail on
it; one the mail owner can read through its group is re-read, so that a
renewed certificate takes effect.
"""
import glob
import os
import pwd
import shutil
import signal
import subprocess

import tlspki
from ehlotest import EHLOD, Server, Client, Skip, check, eq, main, DOMAIN
from tlscommon import client_context, peer_der, pki, starttls

WOULD_FAIL = "a reload (SIGHUP) would fail and keep the running configuration"


def status_ids(pid, field):
    """The numbers of /proc/PID/status's Uid:, Gid: or Groups: line."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return [int(x) for x in line.split()[1:]]
    return []


def status_uids(pid):
    return status_ids(pid, "Uid")


def owner_server(settings=None):
    """A Server (not started) that drops to nobody, in a directory nobody
    can reach."""
    if os.geteuid() != 0:
        raise Skip("needs root to drop privileges")
    srv = Server(dict({"mail_owner": "nobody"}, **(settings or {})), start=False)
    os.chmod(srv.dir, 0o755)      # the mail owner must reach its Maildir base
    # A reload reads every file again as the mail owner. The shipped
    # generic-patterns file defaults to the source tree's copy, which the
    # mail owner cannot read when the checkout sits under /root (mode
    # 0700): use a copy it can read, wherever the tree is.
    patterns = os.path.join(srv.dir, "generic-patterns")
    shutil.copyfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                 "data", "generic-patterns"), patterns)
    os.chmod(patterns, 0o644)
    srv.settings["helo_generic_patterns_file"] = patterns
    return srv


def install_pair(srv, cert_src, key_src, key_mode, key_gid):
    """Puts a certificate and key where srv's settings name them, each
    replaced by a rename as certificate renewal tools do."""
    cert = os.path.join(srv.dir, "live.pem")
    key = os.path.join(srv.dir, "live.key")
    for src, dst, mode, gid in ((cert_src, cert, 0o644, 0), (key_src, key, key_mode, key_gid)):
        shutil.copyfile(src, dst + ".new")
        os.chown(dst + ".new", 0, gid)
        os.chmod(dst + ".new", mode)
        os.rename(dst + ".new", dst)
    srv.settings.update({"smtpd_tls_security_level": "may",
                         "smtpd_tls_cert_file": cert, "smtpd_tls_key_file": key})
    return cert, key


def presented(srv):
    """The DER certificate a new STARTTLS session is given."""
    c = Client(srv.port)
    c.ehlo()
    starttls(c, client_context(verify=False))
    der = peer_der(c.sock)
    c.ehlo()
    c.cmd("QUIT", 221)
    c.close()
    return der


def test_runs_as_mail_owner():
    srv = owner_server()
    nobody = pwd.getpwnam("nobody")
    srv.start()
    uids = status_uids(srv.pid)
    eq(uids, [nobody.pw_uid] * 4, "real/effective/saved/fs uid of ehlod")
    # The groups go too: root's gid 0 or its supplementary groups left
    # behind would keep group access to root's files after the drop.
    eq(status_ids(srv.pid, "Gid"), [nobody.pw_gid] * 4, "real/effective/saved/fs gid of ehlod")
    eq(sorted(status_ids(srv.pid, "Groups")),
       sorted(set(os.getgrouplist("nobody", nobody.pw_gid))),
       "supplementary groups of ehlod (the mail owner's own)")
    c = Client(srv.port)
    c.ehlo()
    c.send_message("a@sender.test", ["owner@" + DOMAIN], b"Subject: x\r\n\r\nhi\r\n")
    files = srv.new_files("owner@" + DOMAIN)
    eq(len(files), 1, "delivered files")
    st = os.stat(files[0])
    eq(st.st_uid, nobody.pw_uid, "owner of the delivered file")
    eq(st.st_mode & 0o777, 0o600, "mode of the delivered file")
    eq(os.stat(srv.mailbase).st_uid, nobody.pw_uid, "owner of virtual_mailbox_base")
    # Reload as the mail owner: STARTTLS must still be offered afterwards.
    mark = srv.log_size()
    srv.signal(signal.SIGHUP)
    srv.wait_log("reloaded configuration", since=mark)
    check("TLS disabled" not in srv.maillog()[mark:], "reload as mail_owner lost TLS:\n%s"
          % srv.maillog()[mark:])
    c2 = Client(srv.port)
    lines = c2.ehlo()
    check("250-STARTTLS" in lines, "STARTTLS not offered after reload: %r" % lines)
    c2.cmd("QUIT", 221)
    c.cmd("QUIT", 221)

    check(WOULD_FAIL not in srv.maillog(), "start warned of a failing reload:\n%s"
          % srv.maillog())


def test_root_only_key_reported_at_start():
    """A key that only root can read: ehlod starts (it reads it as root)
    but says at once that a reload would fail; the reload then fails with
    the reason, and the running certificate stays in use."""
    p = pki()
    srv = owner_server()
    cert, key = install_pair(srv, p.ec, p.ec_key, 0o600, 0)
    srv.start()
    line = srv.wait_log(WOULD_FAIL)
    check("as nobody: %s: " % key in line and "Permission denied" in line,
          "the warning names the key and the cause: %r" % line)
    eq(presented(srv), tlspki.der(p.ec), "certificate at start")
    line = srv.reload("reload failed, keeping the running configuration")
    check(key in line and "(a reload reads the files as nobody)" in line,
          "the reload error names the key and the user: %r" % line)
    eq(presented(srv), tlspki.der(p.ec), "certificate after the failed reload")


def test_group_readable_key_renewed_by_reload():
    """The Debian way (a key group such as ssl-cert that the mail owner is
    in; here nobody's own group): no warning at start, and a renewed pair
    takes effect at the next SIGHUP."""
    p = pki()
    gid = pwd.getpwnam("nobody").pw_gid
    srv = owner_server()
    install_pair(srv, p.ec, p.ec_key, 0o640, gid)
    srv.start()
    eq(presented(srv), tlspki.der(p.ec), "certificate at start")
    check(WOULD_FAIL not in srv.maillog(), "warned of a reload that works:\n%s"
          % srv.maillog())
    install_pair(srv, p.ec2, p.ec2_key, 0o640, gid)
    srv.reload()
    eq(presented(srv), tlspki.der(p.ec2), "certificate after the renewal and SIGHUP")


def test_reload_never_drops_starttls_by_accident():
    """The self-signed pair sits in a directory below one that only root
    can enter. It loads at start (as root) and ehlod offers STARTTLS; as
    the mail owner it cannot be read, and with "may" that would mean a
    reload without STARTTLS, every client falling back to plaintext. So
    the start warns, the reload fails and STARTTLS stays; turning TLS off
    on purpose (smtpd_tls_security_level = none) still reloads."""
    srv = owner_server()
    private = os.path.join(srv.dir, "private")
    os.mkdir(private, 0o700)
    srv.settings.update({"smtpd_tls_security_level": "may", "smtpd_tls_auto_cert": "yes",
                         "smtpd_tls_auto_cert_dir": os.path.join(private, "tls")})
    srv.start()
    line = srv.wait_log(WOULD_FAIL)
    check("STARTTLS would no longer be offered" in line and "Permission denied" in line,
          "the warning says STARTTLS would be lost, and why: %r" % line)
    c = Client(srv.port)
    check("250-STARTTLS" in c.ehlo(), "STARTTLS offered at start")
    c.cmd("QUIT", 221)
    line = srv.reload("reload failed, keeping the running configuration")
    check("STARTTLS would no longer be offered" in line, "reload error: %r" % line)
    c = Client(srv.port)
    check("250-STARTTLS" in c.ehlo(), "STARTTLS still offered after the failed reload")
    c.cmd("QUIT", 221)
    # Off on purpose: the reload goes through and STARTTLS goes away.
    srv.settings["smtpd_tls_security_level"] = "none"
    srv.reload()
    c = Client(srv.port)
    check("250-STARTTLS" not in c.ehlo(), "STARTTLS offered with security level none")
    c.cmd("QUIT", 221)


def check_config(srv):
    """ehlod -t on srv's configuration file: (exit status, stderr)."""
    srv.write_config(port=srv.port or 2525)
    p = subprocess.run([EHLOD, "-t", "-c", srv.conf], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stderr.decode()


def test_check_config_as_mail_owner():
    """ehlod -t, run as root, also tries the load as the mail owner: a
    root-only key passes the check (a start works) with the warning that a
    reload would fail; a group-readable one passes without it."""
    p = pki()
    srv = owner_server()
    install_pair(srv, p.ec, p.ec_key, 0o600, 0)
    rc, err = check_config(srv)
    eq(rc, 0, "ehlod -t exit status with a root-only key")
    check("ehlod: warning: " + WOULD_FAIL in err and "live.key" in err,
          "ehlod -t does not warn of the reload: %r" % err)
    install_pair(srv, p.ec, p.ec_key, 0o640, pwd.getpwnam("nobody").pw_gid)
    eq(check_config(srv), (0, ""), "ehlod -t with a key the mail owner can read")


def victim_file(srv):
    """A file only root may write, for the tests below to protect."""
    v = os.path.join(srv.dir, "victim")
    with open(v, "w") as f:
        f.write("root's own\n")
    os.chmod(v, 0o600)
    return v


def test_autocert_dir_stays_roots():
    """Root writes the self-signed pair, and chowns it for the mail owner,
    before the drop: its directory is root's, not writable by others, so
    the mail owner cannot put a symbolic link there for root to follow.
    One that earlier versions gave to the mail owner is taken back, and a
    link planted in it meanwhile (the lock file, made with O_CREAT, and
    chowned) hands nothing over: the file it names stays root's."""
    srv = owner_server({"smtpd_tls_security_level": "may", "smtpd_tls_auto_cert": "yes"})
    nobody = pwd.getpwnam("nobody")
    srv.start()
    tls = os.path.join(srv.dir, "tls")
    st = os.stat(tls)
    eq(st.st_uid, 0, "owner of smtpd_tls_auto_cert_dir")
    eq(st.st_mode & 0o022, 0, "group/other write bits of smtpd_tls_auto_cert_dir")
    keys = glob.glob(os.path.join(tls, "*.key"))
    eq(len(keys), 1, "keys made")
    eq(os.stat(keys[0]).st_uid, nobody.pw_uid, "owner of the key (a reload reads it)")
    srv.stop()

    os.chown(tls, nobody.pw_uid, nobody.pw_gid)
    victim = victim_file(srv)
    locks = glob.glob(os.path.join(tls, ".*.lock"))
    eq(len(locks), 1, "lock files")
    os.unlink(locks[0])
    os.symlink(victim, locks[0])
    srv.start()
    st = os.stat(victim)
    eq((st.st_uid, st.st_gid), (0, 0), "owner of the file the planted link names")
    with open(victim) as f:
        eq(f.read(), "root's own\n", "content of the file the planted link names")
    eq(os.stat(tls).st_uid, 0, "smtpd_tls_auto_cert_dir taken back from the mail owner")
    srv.wait_log("now owned by root")


def test_maillog_link_refused():
    """ehlod opens maillog_file as root: never through a symbolic link,
    which whoever can write the log's directory could point at any file
    (root would append to it, and hand it to the mail owner)."""
    srv = owner_server()
    victim = victim_file(srv)
    link = os.path.join(srv.dir, "linked.log")
    os.symlink(victim, link)
    srv.logfile = link
    srv.write_config(port=2525)
    p = subprocess.run([EHLOD, "-c", srv.conf], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    eq(p.returncode, 75, "exit status with a linked maillog_file: %r" % p.stderr)
    check(b"cannot open maillog_file" in p.stderr, "no reason given: %r" % p.stderr)
    st = os.stat(victim)
    eq((st.st_uid, os.path.getsize(victim)), (0, len("root's own\n")),
       "owner and size of the file the link names")


def test_existing_maillog_not_given_away():
    """A log file that exists (a shared one, or any the mail owner does
    not own) keeps its owner; the start says that a reload after its
    rotation could not reopen it. One that ehlod creates is the mail
    owner's (test_runs_as_mail_owner's reloads reopen it)."""
    srv = owner_server()
    with open(srv.logfile, "w"):
        pass
    os.chmod(srv.logfile, 0o600)
    srv.start()
    srv.wait_log("is not writable by mail_owner nobody")
    eq(os.stat(srv.logfile).st_uid, 0, "owner of the existing maillog_file")
    srv.stop()
    os.unlink(srv.logfile)
    srv.start()
    eq(os.stat(srv.logfile).st_uid, pwd.getpwnam("nobody").pw_uid,
       "owner of the maillog_file ehlod created")


def test_failed_reload_after_a_good_one():
    """The mail owner's name in a failed reload's line outlives the
    configuration it came from: after a successful reload (which frees
    the start's configuration) a failed one read freed memory (ASan:
    heap-use-after-free) and logged an empty name."""
    srv = owner_server()
    srv.start()
    srv.reload()
    srv.settings["smtpd_timeout"] = "bogus"
    line = srv.reload("reload failed, keeping the running configuration")
    check("(a reload reads the files as nobody)" in line, "reload failure line: %r" % line)
    check(srv.running(), "ehlod stopped after the failed reload")


def test_no_chown_through_links_in_the_mail_owners_tree():
    """Root makes and chowns the spool's directories by name only where no
    one else can change the way to them. The journal directory inside the
    Maildir base (the mail owner's) replaced by a link to a directory of
    root's: the start must not hand that directory over (it did: chown by
    name at every start). It fails instead, the mail owner being unable to
    use root's directory."""
    srv = owner_server()
    srv.settings["spool_journal_directory"] = os.path.join(srv.mailbase, "journal")
    srv.start()
    srv.stop()
    victim = os.path.join(srv.dir, "victim-dir")
    os.mkdir(victim, 0o700)
    jd = os.path.join(srv.mailbase, "journal")
    shutil.rmtree(jd)
    os.symlink(victim, jd)
    srv.write_config(port=2525)
    p = subprocess.run([EHLOD, "-c", srv.conf], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    st = os.stat(victim)
    eq((st.st_uid, st.st_gid), (0, 0), "owner of the directory the planted link names")
    check(p.returncode != 0, "ehlod started on a journal directory it cannot use")


if __name__ == "__main__":
    main(globals())
