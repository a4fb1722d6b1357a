#!/usr/bin/python3
"""
Power loss: what a 250 promises must already be on the disk, not only in
the page cache.  The crash test kills ehlod, which the kernel survives; this
one simulates losing the machine: ehlod is killed and the disk is cut off
at the same moment, with whatever the kernel still held in memory lost.

The Maildirs live on an ext4 file system without a journal in a loop-mounted
image file (the loop device writes into the image's page cache, so a copy of
the image taken at any moment holds exactly the writes the device has been
sent).  Right after the last 250 ehlod is killed and the image copied; the
copy is repaired with e2fsck -fp, as the boot after a crash does, and
mounted: every acknowledged message must be in every recipient's new/,
byte-exact, and every file in new/ must be a complete message.

ext4 without a journal is the hard case: nothing orders its metadata
writes, so ehlod's own fsync calls must cover every block that names a
message.  (An O_TMPFILE copy named by linkat() once failed this: its inode
reached the disk by fdatasync with a link count of 0, the link's update of
that count was never written, and e2fsck treated the inode as deleted and
cleared the name from new/.)

Needs root, a loop device and e2fsprogs; skipped where mounting is refused.
"""
import os
import shutil
import subprocess
import threading
import time

from ehlotest import (Server, Client, Skip, check, eq, fail, main, strip_received, stuff,
                      tempdir, to_lf, DOMAIN)

BOXES = ["pl%d@%s" % (i, DOMAIN) for i in range(3)]
CLIENTS = 3
PER_CLIENT = 40          # pl0 gets all 120: its new/ grows past one block (an htree)


def content(token):
    lines = [b"Subject: power loss " + token, b"X-Token: " + token, b""]
    lines += [b"line %d of %s" % (i, token) for i in range(40)]
    lines.append(b".a line that needs stuffing")
    return b"\r\n".join(lines)     # send_message adds CRLF.CRLF


def run(argv, ok=(0,), timeout=60):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    if r.returncode not in ok:
        fail("%s exited %d:\n%s" % (" ".join(argv), r.returncode,
                                     r.stdout.decode(errors="replace")[-4000:]))
    return r


def need_root_tools():
    if os.geteuid() != 0:
        raise Skip("needs root to mount a loop device")
    for tool in ("mkfs.ext4", "e2fsck"):
        if shutil.which(tool) is None:
            raise Skip("%s is not installed (e2fsprogs)" % tool)


def mount_loop(img, mnt, ro=False):
    opts = "loop,ro" if ro else "loop"
    r = subprocess.run(["mount", "-t", "ext4", "-o", opts, img, mnt],
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise Skip("cannot mount a loop device here: %s"
                   % r.stderr.decode(errors="replace").strip())


def umount(mnt):
    subprocess.run(["umount", mnt], capture_output=True, timeout=60)


def send_load(port, client_no, acked, errors, lock):
    """PER_CLIENT messages over one session each, to one, two or three of
    the BOXES; records (token, rcpts) for every 250."""
    try:
        for i in range(PER_CLIENT):
            token = b"c%dm%d" % (client_no, i)
            rcpts = BOXES[:1 + (i + client_no) % len(BOXES)]
            c = Client(port)
            c.ehlo()
            c.send_message("sender@client.test", rcpts, stuff(content(token)))
            with lock:
                acked.append((token, rcpts))
            c.cmd("QUIT", 221)
            c.close()
    except (OSError, AssertionError) as e:
        with lock:
            errors.append("client %d: %r" % (client_no, e))


def check_copy(mnt, acked):
    """The repaired copy, mounted at mnt: every acknowledged message in each
    of its recipients' new/, byte-exact; every file in new/ complete."""
    wanted = {}
    for token, rcpts in acked:
        for r in rcpts:
            wanted.setdefault(r, set()).add(token)
    for box in BOXES:
        local, domain = box.split("@")
        newdir = os.path.join(mnt, "mail", domain, local, "new")
        found = set()
        names = os.listdir(newdir) if os.path.isdir(newdir) else []
        for name in names:
            with open(os.path.join(newdir, name), "rb") as f:
                msg = f.read()
            body = strip_received(msg)
            check(body.startswith(b"Subject: power loss "), "%s/%s is not a test message: %r"
                  % (newdir, name, msg[:120]))
            token = body.split(b"\n", 1)[0][len(b"Subject: power loss "):]
            # Maildir files have LF line ends (ehlod stores them so).
            check(body == to_lf(content(token)) + b"\n", "%s/%s is not the message %r: %r"
                  % (newdir, name, token, body[-120:]))
            found.add(token)
        missing = sorted(wanted.get(box, set()) - found)
        check(not missing, "%s: %d acknowledged message(s) lost after the power cut: %r"
              % (box, len(missing), missing[:8]))


def fresh_image(mib, journal=False):
    """A new ext4 image of mib MiB (without a journal unless asked),
    loop-mounted. Returns (directory, image, copy path, mount point)."""
    need_root_tools()
    d = tempdir("ehlo-e2e-power-")
    img = os.path.join(d, "disk.img")
    mnt = os.path.join(d, "mnt")
    os.mkdir(mnt)
    with open(img, "wb") as f:
        f.truncate(mib << 20)
    run(["mkfs.ext4", "-q", "-F"] + ([] if journal else ["-O", "^has_journal"]) + [img])
    mount_loop(img, mnt)
    return d, img, os.path.join(d, "after-cut.img"), mnt


def cut_power(settings=None, subdirs=()):
    """Start ehlod on a fresh ext4 image without a journal, send the load,
    and copy the image right after the last 250: the disk as a power cut
    would leave it. Returns (directory, copy, acknowledged)."""
    d, img, snap, mnt = fresh_image(192)
    try:
        for sub in subdirs:
            os.mkdir(os.path.join(mnt, sub))
        run(["sync", "-f", mnt])   # the test's own setup is not under test
        srv = Server(start=False, settings={k: v.replace("@MNT@", mnt)
                                            for k, v in (settings or {}).items()})
        srv.mailbase = os.path.join(mnt, "mail")
        srv.start()
        # ehlod tells the operator at start (src/spool/fscheck.c).
        check("virtual_mailbox_base %s is on an ext file system without a journal"
              % srv.mailbase in srv.maillog(), "no file-system warning at start:\n%s"
              % srv.maillog()[-2000:])
        acked, errors, lock = [], [], threading.Lock()
        threads = [threading.Thread(target=send_load, args=(srv.port, n, acked, errors, lock))
                   for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        check(not errors, "client errors: %r" % errors)
        eq(len(acked), CLIENTS * PER_CLIENT, "acknowledged messages")
        # The cut. ehlod dies first (SIGKILL; in journal mode the Maildir
        # copies are still being made in the background), so that nothing
        # writes while the image is copied: a copy taken during writes
        # would mix blocks of different moments, a state no disk was ever
        # in. Its system calls have all returned once it is gone, and the
        # kernel writes dirty metadata back only after 30 s (dirty_expire):
        # the copy holds what ehlod forced out, and nothing more.
        srv.kill9()
        shutil.copyfile(img, snap)
    finally:
        umount(mnt)
    return d, snap, acked


def boot_fsck(snap, preen=True):
    """What the boot after the crash does: e2fsck -p (preen) repairs what
    is safe to repair unattended and exits 4 when a person must look, who
    then runs e2fsck -y. Exit 0: clean, 1: errors corrected, 2: corrected,
    reboot; 4 and above: errors left."""
    r = run(["e2fsck", "-fp" if preen else "-fy", snap], ok=(0, 1, 2, 4, 8, 12))
    out = r.stdout.decode(errors="replace").strip()
    print("# e2fsck %s on the copy:\n# " % ("-fp" if preen else "-fy")
          + out.replace("\n", "\n# "), flush=True)
    check(r.returncode < 4, "e2fsck could not repair the copy (exit %d)" % r.returncode)


def deliver_one(mnt, token):
    """ehlod on mnt/mail: one message to BOXES[0], then a clean stop.
    Returns the stopped Server (for its log)."""
    srv = Server(start=False)
    srv.mailbase = os.path.join(mnt, "mail")
    srv.start()
    c = Client(srv.port)
    c.ehlo()
    c.send_message("sender@client.test", [BOXES[0]], stuff(content(token)))
    c.cmd("QUIT", 221)
    srv.stop()
    return srv


def test_acknowledged_mail_survives_power_loss():
    """Without a journal a 250 means: in every recipient's new/, on the
    disk. The cut falls after the last 250, with nothing in flight, and
    what ehlod wrote must need no more than the boot's e2fsck -p."""
    d, snap, acked = cut_power()
    boot_fsck(snap)
    mnt2 = os.path.join(d, "mnt2")
    os.mkdir(mnt2)
    mount_loop(snap, mnt2, ro=True)
    try:
        check_copy(mnt2, acked)
    finally:
        umount(mnt2)


def test_journal_mode_recovers_after_power_loss():
    """With spool_journal_directory a 250 means: in the journal, on the
    disk. ehlod started on the repaired copy delivers what the Maildirs
    lack."""
    settings = {"spool_journal_directory": "@MNT@/journal"}
    d, snap, acked = cut_power(settings, subdirs=["journal"])
    # Here the cut falls while the Maildir copies are still being made,
    # possibly by two delivery threads at once, and ext4 without a journal
    # makes no directory change atomic: one thread's syncfs can write the
    # other's new/ half way through an htree split. Such a copy can need
    # e2fsck -y (seen: "block #5 not referenced"). The journal is what
    # keeps the mail: recovery delivers whatever new/ lacks.
    boot_fsck(snap, preen=False)
    # The same mount point: journal records name their Maildirs by path.
    mnt = os.path.join(d, "mnt")
    mount_loop(snap, mnt)
    try:
        srv = Server(start=False, settings={"spool_journal_directory":
                                            os.path.join(mnt, "journal")})
        srv.mailbase = os.path.join(mnt, "mail")
        srv.start()          # recovery runs before ehlod accepts connections
        srv.stop()
        check_copy(mnt, acked)
    finally:
        umount(mnt)


def test_fresh_start_survives_power_loss():
    """A cut right after ehlod's start, before any mail: the Maildir base
    it created must not be a corrupt directory that stops the boot."""
    d, img, snap, mnt = fresh_image(64)
    try:
        run(["sync", "-f", mnt])
        srv = Server(start=False)
        srv.mailbase = os.path.join(mnt, "var", "mail")
        srv.start()
        # Another program syncs a file of its own beside var/: the root
        # directory's block, with ehlod's "var" in it, reaches the disk.
        fd = os.open(os.path.join(mnt, "other"), os.O_CREAT | os.O_WRONLY, 0o600)
        os.write(fd, b"x")
        os.fsync(fd)
        os.close(fd)
        srv.kill9()
        shutil.copyfile(img, snap)
    finally:
        umount(mnt)
    boot_fsck(snap)


def test_no_warning_on_a_journaled_file_system():
    """The same image made with a journal (mkfs.ext4's default): ehlod has
    nothing to warn about."""
    d, img, snap, mnt = fresh_image(64, journal=True)
    try:
        log = deliver_one(mnt, b"j1").maillog()
        check("without a journal" not in log and "tmpfs" not in log,
              "file-system warning on a journaled ext4:\n%s" % log[-2000:])
    finally:
        umount(mnt)


def test_old_leftovers_in_tmp_removed_at_start():
    """What a cut (or kill -9) leaves in tmp/ is removed by a later start
    once it is 36 hours old (maildir(5)), on the real clock: the image is
    aged with debugfs, which can set an inode's ctime as no system call
    can. Younger files and anything that is not a regular file stay."""
    if shutil.which("debugfs") is None:
        raise Skip("debugfs is not installed (e2fsprogs)")
    d, img, snap, mnt = fresh_image(64)
    local, domain = BOXES[0].split("@")
    box = os.path.join("mail", domain, local)
    try:
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(mnt, box, sub))
        for name, data in (("old", b"half a mess"), ("young", b"y"), ("linked", b"whole\n")):
            with open(os.path.join(mnt, box, "tmp", name), "wb") as f:
                f.write(data)
        # Killed between link and unlink: the message in new/ is this file.
        os.link(os.path.join(mnt, box, "tmp", "linked"),
                os.path.join(mnt, box, "new", "linked,S=6"))
        os.mkdir(os.path.join(mnt, box, "tmp", "olddir"))
    finally:
        umount(mnt)
    # Three days old; "young" only 30 hours (all three times each).
    script = []
    for name, age in (("old", 3 * 86400), ("linked", 3 * 86400), ("olddir", 3 * 86400),
                      ("young", 30 * 3600)):
        when = "@%d" % (int(time.time()) - age)
        for field in ("atime", "mtime", "ctime"):
            script.append("sif /%s/tmp/%s %s %s" % (box, name, field, when))
    cmds = os.path.join(d, "debugfs.cmds")
    with open(cmds, "w") as f:
        f.write("\n".join(script) + "\n")
    run(["debugfs", "-w", "-f", cmds, img])
    mount_loop(img, mnt)
    try:
        st = os.stat(os.path.join(mnt, box, "tmp", "old"))
        check(time.time() - st.st_ctime > 2 * 86400, "debugfs did not age the ctime: %r" % (st,))
        srv = deliver_one(mnt, b"t1")
        left = sorted(os.listdir(os.path.join(mnt, box, "tmp")))
        eq(left, ["olddir", "young"], "tmp/ after the first delivery")
        new = os.listdir(os.path.join(mnt, box, "new"))
        eq(len(new), 2, "files in new/")
        with open(os.path.join(mnt, box, "new", "linked,S=6"), "rb") as f:
            eq(f.read(), b"whole\n", "the message whose tmp/ name was left")
        check("removed 2 leftover files older than 36 hours from %s/tmp"
              % os.path.join(mnt, box) in srv.maillog(),
              "no log line for the removal:\n%s" % srv.maillog()[-2000:])
    finally:
        umount(mnt)


def big_content(token):
    """About 30 KB: more than a page, written back only when forced."""
    lines = [b"Subject: two file systems " + token, b""]
    lines += [b"line %05d of %s: %s" % (i, token, b"y" * 40) for i in range(500)]
    return b"\r\n".join(lines)


def test_journal_mode_maildirs_on_two_file_systems():
    """Journal mode syncs a delivery batch with syncfs, which writes back
    one file system. Here u2's Maildir is another file system (bound under
    the base of the first, as a mailbox mounted elsewhere would be), both
    ext4 with a journal. Once the copies are in new/ the journal record is
    released, so whatever is in new/ then must be on the disk: the images
    are copied half a second after the last 250 (the background delivery
    lingers 20 ms; the kernel's write-back waits 5 to 30 s), repaired, and
    ehlod's recovery runs on them. Every copy must be complete. Before the
    fix, one syncfs of the first copy's file system marked every copy
    durable: u2's three files were empty on the copy, recovery found their
    names, took them for delivered and dropped the segment."""
    dA, imgA, snapA, mntA = fresh_image(160, journal=True)   # a whole segment fits
    mounts = [mntA]
    try:
        dB, imgB, snapB, mntB = fresh_image(64, journal=True)
        mounts.append(mntB)
        base = os.path.join(mntA, "mail")
        u2 = os.path.join(base, DOMAIN, "u2")
        os.makedirs(u2)
        jdir = os.path.join(mntA, "journal")
        os.mkdir(jdir)
        r = subprocess.run(["mount", "--bind", mntB, u2], capture_output=True, timeout=60)
        if r.returncode != 0:
            raise Skip("cannot bind-mount here: %s" % r.stderr.decode(errors="replace").strip())
        mounts.insert(0, u2)
        run(["sync"])      # the test's own setup is not under test
        srv = Server(start=False, settings={"spool_journal_directory": jdir})
        srv.mailbase = base
        srv.start()
        c = Client(srv.port)
        c.ehlo()
        tokens = [b"fs%d" % i for i in range(3)]
        for t in tokens:
            c.send_message("sender@client.test", ["u1@" + DOMAIN, "u2@" + DOMAIN],
                           stuff(big_content(t)))
        c.cmd("QUIT", 221)
        c.close()
        time.sleep(0.5)
        srv.kill9()
        shutil.copyfile(imgA, snapA)
        shutil.copyfile(imgB, snapB)
    finally:
        for m in mounts:
            umount(m)
    boot_fsck(snapA, preen=False)
    boot_fsck(snapB, preen=False)
    mounts = []
    try:
        mount_loop(snapA, mntA)
        mounts.append(mntA)
        mount_loop(snapB, mntB)
        mounts.append(mntB)
        run(["mount", "--bind", mntB, u2])
        mounts.insert(0, u2)
        srv = Server(start=False, settings={"spool_journal_directory": jdir})
        srv.mailbase = base
        srv.start()          # recovery: delivers what new/ lacks
        srv.stop()
        for local in ("u1", "u2"):
            newdir = os.path.join(base, DOMAIN, local, "new")
            found = set()
            for name in os.listdir(newdir):
                with open(os.path.join(newdir, name), "rb") as f:
                    msg = f.read()
                check(msg, "%s/%s is empty after the power cut" % (newdir, name))
                body = strip_received(msg)
                check(body.startswith(b"Subject: two file systems "),
                      "%s/%s is not a whole message after the power cut (%d bytes): %r"
                      % (newdir, name, len(body), body[:80]))
                token = body.split(b"\n", 1)[0][len(b"Subject: two file systems "):]
                check(body == to_lf(big_content(token)) + b"\n",
                      "%s/%s is not the message %r" % (newdir, name, token))
                found.add(token)
            eq(sorted(found), sorted(tokens), "acknowledged messages in %s's new/" % local)
    finally:
        for m in mounts:
            umount(m)


if __name__ == "__main__":
    main(globals())
