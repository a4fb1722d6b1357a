/*
 * bench/commit-cost.c: what one durable message commit costs on this
 * machine's disk, without SMTP around it.
 *
 *   commit-cost DIR [N]
 *
 * In a new directory under DIR (removed again at the end), N times
 * (default 2000) and one at a time, for each way of committing a 1,306-byte
 * message (the size smtp-source's 1 KiB message has in a Maildir):
 *
 *   none     open(O_TMPFILE), write, linkat into the directory, close; no
 *            flush: the file-system work alone
 *   data     as none, plus sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER)
 *            before the link: one data write, no inode, no device flush
 *   maildir  ehlod's default commit (docs/spool.md, STACK.md §7): write,
 *            fdatasync, linkat, then fsync of the directory, i.e. the data
 *            and inode of the file, a device flush, the directory entry and
 *            another device flush before the 250 may go out
 *   journal  ehlod-journal's commit of one message: pwrite of the record
 *            into a segment written full of zeros beforehand, then
 *            fdatasync: the data and one device flush
 *
 * and prints the wall time and the CPU time (user + system, of this
 * process) per message.  On a virtual machine most of the CPU of an I/O is
 * the exit to the hypervisor for each request and the interrupt for each
 * completion, so the CPU per message counts the I/O requests.  Figures:
 * docs/benchmarks.md, "What one commit costs".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MSG_SIZE  1306
#define SEG_SIZE  (64L << 20)   /* ehlod's journal segment size */
#define DIR_MAX   1000          /* longest DIR argument */

enum way { NONE, DATA, MAILDIR, JOURNAL };
static const char *const way_name[] = { "none", "data", "maildir", "journal" };

static void
die(const char *what, const char *path)
{
	fprintf(stderr, "commit-cost: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static double
now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double
cpu(void)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
	    (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

/* Writes SEG_SIZE zero bytes at the start of fd and makes them durable,
 * as ehlod does when it creates a journal segment. */
static void
prefill(int fd, const char *path)
{
	static char zero[1 << 20];
	for (long off = 0; off < SEG_SIZE; off += (long)sizeof zero)
		if (pwrite(fd, zero, sizeof zero, off) != (ssize_t)sizeof zero)
			die("pwrite", path);
	if (fdatasync(fd) != 0)
		die("fdatasync", path);
}

static void
one_file(enum way w, const char *dir, long i, const char *msg)
{
	int fd = open(dir, O_WRONLY | O_TMPFILE | O_CLOEXEC, 0600);
	if (fd < 0)
		die("open O_TMPFILE in", dir);
	if (write(fd, msg, MSG_SIZE) != MSG_SIZE)
		die("write in", dir);
	if (w == DATA && sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE |
	    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0)
		die("sync_file_range in", dir);
	if (w == MAILDIR && fdatasync(fd) != 0)
		die("fdatasync in", dir);
	char name[1300];
	snprintf(name, sizeof name, "%s/%ld", dir, i);
	if (linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH) != 0) {
		/* Without CAP_DAC_READ_SEARCH before Linux 6.10: the path
		 * through /proc, as ehlod does. */
		char proc[64];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) != 0)
			die("linkat", name);
	}
	if (close(fd) != 0)
		die("close", name);
	if (w == MAILDIR) {
		int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (d < 0 || fsync(d) != 0)
			die("fsync", dir);
		close(d);
	}
}

static void
run(enum way w, const char *top, long n)
{
	char dir[1200];
	snprintf(dir, sizeof dir, "%s/%s", top, way_name[w]);
	if (mkdir(dir, 0700) != 0)
		die("mkdir", dir);
	char msg[MSG_SIZE];
	memset(msg, 'x', sizeof msg);

	int jfd = -1;
	char seg[1300];
	snprintf(seg, sizeof seg, "%s/segment", dir);
	if (w == JOURNAL) {
		jfd = open(seg, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (jfd < 0)
			die("open", seg);
		prefill(jfd, seg);
	}
	double t0 = now(), c0 = cpu();
	for (long i = 0; i < n; i++) {
		if (w != JOURNAL) {
			one_file(w, dir, i, msg);
			continue;
		}
		if (pwrite(jfd, msg, MSG_SIZE, i * MSG_SIZE) != MSG_SIZE)
			die("pwrite", seg);
		if (fdatasync(jfd) != 0)
			die("fdatasync", seg);
	}
	double t1 = now(), c1 = cpu();
	printf("%-8s %9.1f %9.1f\n", way_name[w], (t1 - t0) / (double)n * 1e6,
	    (c1 - c0) / (double)n * 1e6);
	fflush(stdout);

	if (jfd >= 0)
		close(jfd);
}

/* Removes what run(w) made.  Only after every way has run: ext4 without a
 * journal passes over inodes deleted in the last 60 s when it allocates
 * (docs/benchmarks.md, "Cache state"), so deleting between the ways would
 * make each one pay for the files of the one before. */
static void
clean(enum way w, const char *top, long n)
{
	char dir[1200], name[1300];
	snprintf(dir, sizeof dir, "%s/%s", top, way_name[w]);
	if (w == JOURNAL) {
		snprintf(name, sizeof name, "%s/segment", dir);
		if (unlink(name) != 0)
			die("unlink", name);
	}
	for (long i = 0; i < n && w != JOURNAL; i++) {
		snprintf(name, sizeof name, "%s/%ld", dir, i);
		if (unlink(name) != 0)
			die("unlink", name);
	}
	if (rmdir(dir) != 0)
		die("rmdir", dir);
}

int
main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: commit-cost DIR [N]\n");
		return 2;
	}
	long n = argc == 3 ? strtol(argv[2], NULL, 10) : 2000;
	if (n < 1 || n > 1000000) {
		fprintf(stderr, "commit-cost: N must be 1..1000000\n");
		return 2;
	}
	if (strlen(argv[1]) > DIR_MAX) {
		fprintf(stderr, "commit-cost: DIR longer than %d bytes\n", DIR_MAX);
		return 2;
	}
	char top[1100];
	snprintf(top, sizeof top, "%s/commit-cost.XXXXXX", argv[1]);
	if (mkdtemp(top) == NULL)
		die("mkdtemp", top);
	printf("commit-cost: %ld messages of %d bytes each, one at a time, in %s\n",
	    n, MSG_SIZE, top);
	printf("%-8s %9s %9s\n", "commit", "wall us", "CPU us");
	for (enum way w = NONE; w <= JOURNAL; w++)
		run(w, top, n);
	for (enum way w = NONE; w <= JOURNAL; w++)
		clean(w, top, n);
	if (rmdir(top) != 0)
		die("rmdir", top);
	return 0;
}
