/*
 * The spool's file-system check (see fscheck.h).
 *
 * Why ext without a journal earns a warning: such a file system writes its
 * metadata blocks in no particular order and makes no directory change
 * atomic. ehlod's fsyncs still cover every block that names a message
 * before its 250 (tests/e2e/test_powerloss.py), but a power cut in the
 * middle of a later link into the same new/ (a directory block split) can
 * take earlier names with it, and e2fsck -y moves those files to
 * lost+found. How the journal is recognised: ext4 shows its journal
 * thread in /sys/fs/ext4/<device>/journal_task, "<none>" without one
 * (external journals included). Where that file is missing (older kernels,
 * ext2 on its own driver) jbd2's list is the fallback: it names every
 * journal it runs in /proc/fs/jbd2 as "<device>-<journal inode>", so an
 * ext file system whose device has no entry there runs without one.
 */
#include "spool/fscheck.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include "lib/xmalloc.h"

/* From <linux/magic.h>, kept here so the check builds on any libc. */
#define MAGIC_EXT   0xEF53UL        /* ext2, ext3 and ext4 alike */
#define MAGIC_TMPFS 0x01021994UL
#define MAGIC_RAMFS 0x858458f6UL

#define JBD2_DIR    "/proc/fs/jbd2"
#define JBD2_MAX    256             /* entries read; one per journaled mount */

enum fs_verdict
fs_verdict(unsigned long f_type, const char *devname, const char *journal_task,
    const char *const *jbd2, size_t n)
{
	if (f_type == MAGIC_TMPFS || f_type == MAGIC_RAMFS)
		return FS_VOLATILE;
	if (f_type != MAGIC_EXT || devname == NULL || devname[0] == '\0')
		return FS_OK;
	if (journal_task != NULL)
		return strcmp(journal_task, "<none>") == 0 ? FS_EXT_NO_JOURNAL : FS_OK;
	for (size_t i = 0; i < n; i++) {
		/* "<device>-<inode>"; device names may hold '-' ("dm-1"), so
		 * the inode is what follows the last one, digits only. */
		const char *e = jbd2[i], *dash = strrchr(e, '-');
		size_t dlen = strlen(e);
		if (dash != NULL && dash[1] != '\0' &&
		    strspn(dash + 1, "0123456789") == strlen(dash + 1))
			dlen = (size_t)(dash - e);
		if (dlen == strlen(devname) && strncmp(e, devname, dlen) == 0)
			return FS_OK;
	}
	return FS_EXT_NO_JOURNAL;
}

/* What follows prefix on the first line of path that starts with it,
 * without the newline, or NULL ("" as prefix: the first line). */
static char *
read_line(const char *path, const char *prefix)
{
	char line[256];
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return NULL;
	size_t plen = strlen(prefix);
	char *s = NULL;
	while (s == NULL && fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, prefix, plen) == 0) {
			line[strcspn(line, "\n")] = '\0';
			s = xstrdup(line + plen);
		}
	fclose(f);
	return s;
}

/* The kernel's name of block device dev ("DEVNAME=" in its uevent), or
 * NULL. */
static char *
block_devname(dev_t dev)
{
	char path[64];
	snprintf(path, sizeof path, "/sys/dev/block/%u:%u/uevent", major(dev), minor(dev));
	return read_line(path, "DEVNAME=");
}

enum fs_verdict
fs_check(const char *setting, const char *path, struct buf *msg)
{
	struct statfs sfs;
	struct stat st;
	if (statfs(path, &sfs) != 0 || stat(path, &st) != 0)
		return FS_OK;       /* not ours to report: the spool will */

	char *devname = NULL, *task = NULL;
	char *names[JBD2_MAX];
	size_t n = 0;
	if ((unsigned long)sfs.f_type == MAGIC_EXT)
		devname = block_devname(st.st_dev);
	if (devname != NULL) {
		char p[320];
		snprintf(p, sizeof p, "/sys/fs/ext4/%s/journal_task", devname);
		task = read_line(p, "");
	}
	if (devname != NULL && task == NULL) {
		DIR *d = opendir(JBD2_DIR);
		if (d != NULL) {
			struct dirent *e;
			while (n < JBD2_MAX && (e = readdir(d)) != NULL)
				if (e->d_name[0] != '.')
					names[n++] = xstrdup(e->d_name);
			closedir(d);
		} else if (errno != ENOENT) {
			/* Unreadable: do not guess. (Absent means no journal
			 * runs at all: jbd2 creates it with the first one.) */
			free(devname);
			devname = NULL;
		}
	}
	enum fs_verdict v = fs_verdict((unsigned long)sfs.f_type, devname, task,
	    (const char *const *)names, n);
	if (v == FS_EXT_NO_JOURNAL)
		buf_appendf(msg, "%s %s is on an ext file system without a journal "
		    "(device %s: %s): a power cut during a delivery can cost "
		    "earlier messages in the same new/ their names; keep mail on a "
		    "file system that journals its metadata (ehlod(8))", setting,
		    path, devname, task != NULL ? "journal_task <none>" :
		    "no journal for it in " JBD2_DIR);
	else if (v == FS_VOLATILE)
		buf_appendf(msg, "%s %s is on tmpfs or ramfs: every message there "
		    "is lost at the next reboot, whatever the 250 said", setting, path);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(task);
	free(devname);
	return v;
}
