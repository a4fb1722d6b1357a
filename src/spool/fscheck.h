/*
 * Is a spool directory on a file system that can keep acknowledged mail
 * through a power cut? The answer is a warning for the operator at start,
 * never a refusal: ehlod delivers durably on any POSIX file system, but
 * only one that journals its metadata makes directory changes atomic (see
 * ehlod(8) and docs/spool.md, "Power loss").
 *
 * fs_verdict() is pure: the facts come in as arguments. fs_check() gathers
 * them (statfs, the block device's name under /sys/dev/block, ext4's
 * journal_task in /sys/fs/ext4, else the journals listed in /proc/fs/jbd2)
 * and words the warning.
 */
#ifndef EHLO_SPOOL_FSCHECK_H
#define EHLO_SPOOL_FSCHECK_H

#include <stddef.h>

#include "lib/buf.h"

enum fs_verdict {
	FS_OK,                  /* journals its metadata, or not ours to judge */
	FS_EXT_NO_JOURNAL,      /* ext2/3/4 with no jbd2 journal for its device */
	FS_VOLATILE,            /* tmpfs/ramfs: nothing survives a reboot */
};

/*
 * f_type: statfs()'s magic number. devname: the kernel's name of the
 * file system's block device ("vda", "loop0", "dm-1"), or NULL if unknown.
 * journal_task: the text of /sys/fs/ext4/<devname>/journal_task, the
 * journal thread's pid or "<none>" (ext4 on Linux >= 5.x; right for
 * external journals too), or NULL where the file is missing. jbd2: the
 * names in /proc/fs/jbd2 ("vda-8": device "vda", journal inode 8), n of
 * them, asked only without journal_task. An ext file system whose device
 * is unknown is FS_OK: a warning must not be a guess.
 */
enum fs_verdict fs_verdict(unsigned long f_type, const char *devname,
    const char *journal_task, const char *const *jbd2, size_t n);

/* Checks path; on a verdict other than FS_OK appends the warning for
 * setting (its name, e.g. "virtual_mailbox_base") to msg and returns it. */
enum fs_verdict fs_check(const char *setting, const char *path, struct buf *msg);

#endif
