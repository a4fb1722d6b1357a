#!/usr/bin/python3
"""
Privilege drop (mail_owner): ehlod binds as root, then runs as the mail
owner; Maildirs and messages belong to that user; a SIGHUP reload still
works (it reads the certificate and maps as the mail owner).
"""
import os
import pwd
import shutil
import signal

from ehlotest import Server, Client, Skip, check, eq, main, DOMAIN


def status_ids(pid, field):
    """The numbers of /proc/PID/status's Uid:, Gid: or Groups: line."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return [int(x) for x in line.split()[1:]]
    return []


def status_uids(pid):
    return status_ids(pid, "Uid")


def test_runs_as_mail_owner():
    if os.geteuid() != 0:
        raise Skip("needs root to drop privileges")
    nobody = pwd.getpwnam("nobody")
    srv = Server({"mail_owner": "nobody"}, start=False)
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


if __name__ == "__main__":
    main(globals())
