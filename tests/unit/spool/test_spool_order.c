/*
 * The order of the delivery's system calls (STACK.md §7, docs/spool.md
 * "The delivery protocol"). For every message file:
 *
 *   fdatasync(file) has returned  before  link(tmp/<u>, new/<u>,S=<n>) starts,
 *   link has returned             before  an fsync of that new/ returns,
 *   that fsync has returned       before  the job's completion runs
 *                                         (the session's 250).
 *
 * A wrong order loses acknowledged mail or shows a partial message only
 * when the power fails at the wrong moment, which the power-loss test
 * (tests/e2e/test_powerloss.py) hits only by luck of timing, and a link
 * before the fdatasync it never hit. Here the calls themselves are
 * recorded: the test binary is linked with -Wl,--wrap for fdatasync,
 * fsync and link, so the spool library's calls go through the wrappers
 * below, which record what was synced or linked (device and inode) and
 * then do the real call.
 *
 * Every message carries a token naming its job, so that after the run each
 * file in new/ (same inode as in tmp/: link keeps it) maps to its job.
 * A second test checks journal mode's one ordering of the same kind: the
 * journal directory is fsynced (the new segment's name) before the first
 * acknowledgement. A third makes the journal's fdatasync fail (the wrapper
 * can inject EIO) and checks what the 451 promises: the failed group is
 * cut off the segment, durably, so that a crash does not bring it back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "lib/buf.h"
#include "lib/xmalloc.h"
#include "spool/jrec.h"
#include "spool/spool.h"

#define JOBS       24
#define BOXES      4
#define MAX_EVENTS 4096

enum kind { EV_DATASYNC, EV_DIRSYNC, EV_LINK, EV_DONE, EV_TRUNCATE, EV_SYNCFS };

struct event_rec {
	enum kind k;
	dev_t     dev;
	ino_t     ino;       /* the file; EV_DIRSYNC: the directory */
	ino_t     dir;       /* EV_LINK: the directory linked into */
	int       job;       /* EV_DONE */
	int       status;    /* EV_DONE */
};

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static struct event_rec recs[MAX_EVENTS];
static int nrecs;
static int overflow;

static void
record(struct event_rec e)
{
	pthread_mutex_lock(&rec_mu);
	if (nrecs < MAX_EVENTS)
		recs[nrecs++] = e;
	else
		overflow = 1;
	pthread_mutex_unlock(&rec_mu);
}

/* ---- the wrapped calls (-Wl,--wrap=...) ---- */

int __real_fdatasync(int fd);
int __real_fsync(int fd);
int __real_link(const char *from, const char *to);
int __real_ftruncate64(int fd, off_t len);
int __real_syncfs(int fd);
int __wrap_fdatasync(int fd);
int __wrap_syncfs(int fd);
int __real_unlink(const char *path);
ssize_t __real_read(int fd, void *p, size_t n);
ssize_t __wrap_read(int fd, void *p, size_t n);
int __wrap_unlink(const char *path);
int __wrap_fsync(int fd);
int __wrap_link(const char *from, const char *to);
int __wrap_ftruncate64(int fd, off_t len);

/* While positive, fdatasync of a journal segment fails with EIO without
 * syncing anything, and the count goes down by one. */
static atomic_int fail_journal_syncs;

/* While positive, an fsync of a Maildir's new/ fails with EIO (after
 * the real fsync), and the count goes down by one; the same for an unlink
 * of a name in a new/, which then removes nothing. */
static atomic_int fail_newdir_fsyncs, fail_new_unlinks;

/* Whether fd's path ends in "/new" (a Maildir's new/). */
static bool
is_new_dir(int fd)
{
	char link[64], path[4096];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	if (n < 4)
		return false;
	path[n] = '\0';
	return strcmp(path + n - 4, "/new") == 0;
}

/* Whether fd is a journal segment ("<dir>/journal.<n>"). */
static bool
is_segment(int fd)
{
	char link[64], path[4096];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	const char *slash = strrchr(path, '/');
	return slash != NULL && strncmp(slash, "/journal.", 9) == 0;
}

/* A sync counts from the moment it returns with success. Returns r with
 * the call's errno kept. */
static int
synced(int fd, int r)
{
	int e = errno;
	struct stat st;
	if (r == 0 && fstat(fd, &st) == 0)
		record((struct event_rec){ .k = S_ISDIR(st.st_mode) ? EV_DIRSYNC : EV_DATASYNC,
		    .dev = st.st_dev, .ino = st.st_ino });
	errno = e;
	return r;
}

int
__wrap_fdatasync(int fd)
{
	if (atomic_load(&fail_journal_syncs) > 0 && is_segment(fd) &&
	    atomic_fetch_sub(&fail_journal_syncs, 1) > 0) {
		errno = EIO;
		return -1;
	}
	return synced(fd, __real_fdatasync(fd));
}

/* A truncation counts from the moment it returns with success. The build
 * has 64-bit file offsets (_FILE_OFFSET_BITS=64), under which glibc's
 * header names ftruncate ftruncate64. */
int
__wrap_ftruncate64(int fd, off_t len)
{
	int r = __real_ftruncate64(fd, len);
	int e = errno;
	struct stat st;
	if (r == 0 && fstat(fd, &st) == 0)
		record((struct event_rec){ .k = EV_TRUNCATE, .dev = st.st_dev,
		    .ino = st.st_ino });
	errno = e;
	return r;
}

int
__wrap_fsync(int fd)
{
	if (atomic_load(&fail_newdir_fsyncs) > 0 && is_new_dir(fd) &&
	    atomic_fetch_sub(&fail_newdir_fsyncs, 1) > 0) {
		(void)__real_fsync(fd);
		errno = EIO;
		return -1;
	}
	return synced(fd, __real_fsync(fd));
}

/* While positive, reading a journal segment fails with EIO from this
 * offset on (a bad sector); reads before it stop there. */
static atomic_long fail_segment_reads_at;

ssize_t
__wrap_read(int fd, void *p, size_t n)
{
	long at = atomic_load(&fail_segment_reads_at);
	if (at > 0 && is_segment(fd)) {
		off_t off = lseek(fd, 0, SEEK_CUR);
		if (off >= at) {
			errno = EIO;
			return -1;
		}
		if ((off_t)n > at - off)
			n = (size_t)(at - off);
	}
	return __real_read(fd, p, n);
}

int
__wrap_unlink(const char *path)
{
	if (atomic_load(&fail_new_unlinks) > 0 && strstr(path, "/new/") != NULL &&
	    atomic_fetch_sub(&fail_new_unlinks, 1) > 0) {
		errno = EIO;
		return -1;
	}
	return __real_unlink(path);
}

/* A syncfs counts from the moment it returns with success, for the file
 * system of fd (dev). */
int
__wrap_syncfs(int fd)
{
	int r = __real_syncfs(fd);
	int e = errno;
	struct stat st;
	if (r == 0 && fstat(fd, &st) == 0)
		record((struct event_rec){ .k = EV_SYNCFS, .dev = st.st_dev });
	errno = e;
	return r;
}

/* A link counts from the moment it starts: recorded before the call. */
int
__wrap_link(const char *from, const char *to)
{
	struct stat f, d;
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", to);
	if (stat(from, &f) == 0 && stat(dirname(dir), &d) == 0)
		record((struct event_rec){ .k = EV_LINK, .dev = f.st_dev, .ino = f.st_ino,
		    .dir = d.st_ino });
	return __real_link(from, to);
}

/* ---- driving the spool ---- */

struct run {
	struct event_base *base;
	int                got;
	bool               timed_out;
};

struct jobarg {
	struct run *run;
	int         job;
};

static void
job_done(struct spool_job *job, int status, void *arg)
{
	(void)job;
	struct jobarg *a = arg;
	record((struct event_rec){ .k = EV_DONE, .job = a->job, .status = status });
	if (++a->run->got >= JOBS)
		event_base_loopbreak(a->run->base);
}

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct run *r = arg;
	r->timed_out = true;
	event_base_loopbreak(r->base);
}

/* A spool on root (journal mode if jdir is not NULL), with the record of
 * calls emptied first: what spool_new itself does (a journal segment)
 * counts too. */
static struct spool *
open_lingering_spool(const char *root, const char *jdir, unsigned linger_ms)
{
	pthread_mutex_lock(&rec_mu);
	nrecs = 0;
	overflow = 0;
	pthread_mutex_unlock(&rec_mu);
	struct buf err = BUF_INIT;
	struct spool_opts o = { .base = root, .threads = 2, .hostname = "order.test",
	    .journal_dir = jdir, .linger_ms = linger_ms };
	struct spool *sp = spool_new(&o, &err);
	buf_free(&err);
	return sp;
}

static struct spool *
open_spool(const char *root, const char *jdir)
{
	struct spool *sp = open_lingering_spool(root, jdir, 0);
	assert_non_null(sp);
	return sp;
}

/*
 * Submits JOBS jobs at once, so that the delivery threads batch them, and
 * runs a loop until all have completed. Job j carries "X-Job: j" and goes
 * to min(1 + j % 3, nbox) mailboxes starting at boxes[j % nbox]. Returns
 * the number of copies.
 */
static int
run_jobs(struct spool *sp, char *const *boxes, int nbox)
{
	struct run run = { .base = event_base_new() };
	assert_non_null(run.base);
	struct event *guard = evtimer_new(run.base, guard_cb, &run);
	struct jobarg args[JOBS];
	int copies = 0;
	for (int j = 0; j < JOBS; j++) {
		const char *mine[3];
		int n = 1 + j % 3 < nbox ? 1 + j % 3 : nbox;
		for (int k = 0; k < n; k++)
			mine[k] = boxes[(j + k) % nbox];
		char *msg = xmalloc(128);
		int len = snprintf(msg, 128, "X-Job: %d\nSubject: order\n\nbody of job %d\n", j, j);
		args[j] = (struct jobarg){ .run = &run, .job = j };
		assert_non_null(spool_submit(sp, run.base, msg, (size_t)len, mine, (size_t)n, NULL,
		    job_done, &args[j]));
		copies += n;
	}
	struct timeval tv = { 30, 0 };
	evtimer_add(guard, &tv);
	event_base_loop(run.base, EVLOOP_NO_EXIT_ON_EMPTY);
	assert_false(run.timed_out);
	assert_int_equal(run.got, JOBS);
	event_free(guard);
	event_base_free(run.base);
	return copies;
}

static int
rm_tree(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return unlink(path);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char p[4096];
		snprintf(p, sizeof p, "%s/%s", path, e->d_name);
		rm_tree(p);
	}
	closedir(d);
	return rmdir(path);
}

/* Entries in dir other than "." and "..", or -1. */
static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* The job number in a stored message ("X-Job: N"), -1 if none. */
static int
job_of(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	int n = -1;
	if (fscanf(f, "X-Job: %d", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

static void
test_sync_link_fsync_done_order(void **state)
{
	(void)state;
	char root[] = "/tmp/ehlo-spool-order-XXXXXX";
	assert_non_null(mkdtemp(root));
	struct spool *sp = open_spool(root, NULL);

	char *boxes[BOXES];
	const char *names[BOXES] = { "ann", "ben", "cat", "dan" };
	for (int i = 0; i < BOXES; i++) {
		struct buf b = BUF_INIT;
		assert_true(spool_mailbox_path(root, names[i], "example.test", &b));
		boxes[i] = buf_steal(&b);
	}

	int copies = run_jobs(sp, boxes, BOXES);
	spool_free(&sp);

	/* spool_free joined the delivery threads: the record is complete.
	 * Read its length under the lock, then check it without holding the
	 * lock, so that a failing check (a longjmp) cannot leave it locked
	 * for the next test. */
	pthread_mutex_lock(&rec_mu);
	int nr = nrecs, ov = overflow;
	pthread_mutex_unlock(&rec_mu);
	assert_int_equal(ov, 0);
	int links = 0;
	for (int i = 0; i < nr; i++)
		if (recs[i].k == EV_LINK)
			links++;
	/* The wrappers were in the path (a build without them would pass
	 * every check below vacuously). */
	assert_int_equal(links, copies);

	int files = 0;
	for (int b = 0; b < BOXES; b++) {
		char newdir[4096];
		snprintf(newdir, sizeof newdir, "%snew", boxes[b]);
		DIR *d = opendir(newdir);
		assert_non_null(d);
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char p[8192];
			snprintf(p, sizeof p, "%s/%s", newdir, e->d_name);
			struct stat st;
			assert_int_equal(stat(p, &st), 0);
			int job = job_of(p);
			assert_in_range(job, 0, JOBS - 1);
			files++;

			/* Its link, and what came before and after it. */
			int l = -1;
			for (int i = 0; i < nr; i++)
				if (recs[i].k == EV_LINK && recs[i].ino == st.st_ino &&
				    recs[i].dev == st.st_dev)
					l = i;
			if (l < 0)
				fail_msg("%s: no link recorded", p);
			int s = -1;
			for (int i = 0; i < l; i++)
				if (recs[i].k == EV_DATASYNC && recs[i].ino == st.st_ino &&
				    recs[i].dev == st.st_dev)
					s = i;
			if (s < 0)
				fail_msg("%s (job %d): linked into new/ before its fdatasync returned",
				    p, job);
			int f = -1;
			for (int i = l + 1; i < nr && f < 0; i++)
				if (recs[i].k == EV_DIRSYNC && recs[i].ino == recs[l].dir)
					f = i;
			if (f < 0)
				fail_msg("%s (job %d): no fsync of new/ after its link", p, job);
			int done = -1;
			for (int i = 0; i < nr; i++)
				if (recs[i].k == EV_DONE && recs[i].job == job)
					done = i;
			assert_true(done >= 0);
			assert_int_equal(recs[done].status, 0);
			if (done < f)
				fail_msg("%s (job %d): completion reported before new/ was fsynced",
				    p, job);
		}
		closedir(d);
	}
	assert_int_equal(files, copies);

	for (int i = 0; i < BOXES; i++)
		free(boxes[i]);
	rm_tree(root);
}

/* Makes root (a mkdtemp template) and its empty journal directory jdir. */
static void
make_journal_root(char *root, char jdir[4096])
{
	assert_non_null(mkdtemp(root));
	snprintf(jdir, 4096, "%s/journal", root);
	assert_int_equal(mkdir(jdir, 0700), 0);
}

/*
 * Journal mode (spool_journal_directory): a new segment's name must be
 * durable before any record in it is acknowledged, or a crash right after
 * the 250 could lose the whole segment with the directory entry. So an
 * fsync of the journal directory must come before the first completion.
 */
static void
test_journal_segment_name_durable(void **state)
{
	(void)state;
	char root[] = "/tmp/ehlo-spool-order-XXXXXX";
	char jdir[4096];
	make_journal_root(root, jdir);
	struct stat jst;
	assert_int_equal(stat(jdir, &jst), 0);

	struct spool *sp = open_spool(root, jdir);
	struct buf b = BUF_INIT;
	assert_true(spool_mailbox_path(root, "ann", "example.test", &b));
	char *box = buf_steal(&b);
	run_jobs(sp, &box, 1);
	spool_free(&sp);

	pthread_mutex_lock(&rec_mu);
	int dirsync = -1, first_done = -1;
	for (int i = 0; i < nrecs; i++) {
		if (dirsync < 0 && recs[i].k == EV_DIRSYNC && recs[i].ino == jst.st_ino &&
		    recs[i].dev == jst.st_dev)
			dirsync = i;
		if (first_done < 0 && recs[i].k == EV_DONE)
			first_done = i;
	}
	pthread_mutex_unlock(&rec_mu);
	assert_true(first_done >= 0);
	if (dirsync < 0 || dirsync > first_done)
		fail_msg("no fsync of the journal directory before the first completion "
		    "(fsync at %d, completion at %d)", dirsync, first_done);

	free(box);
	rm_tree(root);
}

/* One job's completion, for one_job(). */
struct one {
	struct event_base *base;
	int                status;
	bool               done;
};

static void
one_done(struct spool_job *job, int status, void *arg)
{
	(void)job;
	struct one *o = arg;
	o->status = status;
	o->done = true;
	event_base_loopbreak(o->base);
}

/* Submits job number n ("X-Job: n") to box and waits for its completion,
 * recorded as EV_DONE. Returns its status, or -1 if none came within 30 s.
 * No cmocka assertion: the forked child below calls it. */
static int
one_job(struct spool *sp, char *box, int n)
{
	struct one o = { .base = event_base_new() };
	if (o.base == NULL)
		return -1;
	char *msg = xmalloc(128);
	int len = snprintf(msg, 128, "X-Job: %d\nSubject: fault\n\nbody of job %d\n", n, n);
	const char *boxes[1] = { box };
	if (spool_submit(sp, o.base, msg, (size_t)len, boxes, 1, NULL, one_done, &o) == NULL) {
		event_base_free(o.base);
		return -1;
	}
	struct timeval tv = { 30, 0 };
	event_base_loopexit(o.base, &tv);
	event_base_loop(o.base, EVLOOP_NO_EXIT_ON_EMPTY);
	event_base_free(o.base);
	if (!o.done)
		return -1;
	record((struct event_rec){ .k = EV_DONE, .job = n, .status = o.status });
	return o.status;
}

/*
 * Journal mode, a failed fdatasync of the journal. Job 1 is acknowledged;
 * then the journal's next fdatasync fails (EIO, injected), so job 2 gets
 * an error (its session answers 451 and the client will send it again).
 * Its record is complete in the page cache, with a valid CRC, and would be
 * recovered and delivered after a crash: a duplicate of the retried
 * message. So the segment must be cut back to job 1's end, and the cut
 * made durable (a sync of the segment after the truncation) before job 2's
 * completion. A child process does this and dies (no clean stop: the
 * linger holds every Maildir copy back); the next start must deliver job 1
 * and only job 1.
 */
static void
test_journal_failed_sync_cut_back(void **state)
{
	(void)state;
	char root[] = "/tmp/ehlo-spool-order-XXXXXX";
	char jdir[4096];
	make_journal_root(root, jdir);
	struct buf b = BUF_INIT;
	assert_true(spool_mailbox_path(root, "ann", "example.test", &b));
	char *box = buf_steal(&b);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct spool *sp = open_lingering_spool(root, jdir, 60000);
		if (sp == NULL)
			_exit(2);
		if (one_job(sp, box, 1) != 0)
			_exit(3);
		atomic_store(&fail_journal_syncs, 1);
		if (one_job(sp, box, 2) != EIO)
			_exit(4);
		if (atomic_load(&fail_journal_syncs) != 0)
			_exit(5);       /* the injection was not in the path */
		/* Job 2 was refused (451): ehlo_spool_delivery_failures_total. */
		struct spool_stats st;
		spool_get_stats(sp, &st);
		if (st.jobs_failed != 1)
			_exit(8);
		/* The truncation of the segment, then a sync of it, then the
		 * completion. */
		int trunc = -1, sync = -1, done = -1;
		/* The delivery threads still run: read the record under its lock
		 * (no cmocka assertion in here, so nothing can jump out of it). */
		pthread_mutex_lock(&rec_mu);
		for (int i = 0; i < nrecs; i++) {
			if (recs[i].k == EV_TRUNCATE && trunc < 0)
				trunc = i;
			else if (recs[i].k == EV_DATASYNC && trunc >= 0 && sync < 0 &&
			    recs[i].ino == recs[trunc].ino && recs[i].dev == recs[trunc].dev)
				sync = i;
			else if (recs[i].k == EV_DONE && recs[i].job == 2)
				done = i;
		}
		pthread_mutex_unlock(&rec_mu);
		if (trunc < 0)
			_exit(6);
		if (sync < 0 || done < sync)
			_exit(7);
		_exit(0);       /* a crash: no spool_free */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	switch (WEXITSTATUS(status)) {
	case 0:
		break;
	case 6:
		fail_msg("the segment was not cut back after the failed fdatasync");
		break;
	case 7:
		fail_msg("the cut was not synced before the failed job's completion");
		break;
	case 8:
		fail_msg("the refused message is not counted as a delivery failure");
		break;
	default:
		fail_msg("child exit %d", WEXITSTATUS(status));
	}

	struct spool *sp = open_spool(root, jdir);
	spool_free(&sp);
	char newdir[4096];
	snprintf(newdir, sizeof newdir, "%snew", box);
	DIR *d = opendir(newdir);
	assert_non_null(d);
	int files = 0, job = -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char p[8192];
		snprintf(p, sizeof p, "%s/%s", newdir, e->d_name);
		job = job_of(p);
		files++;
	}
	closedir(d);
	if (files != 1)
		fail_msg("%d messages recovered, expected job 1 alone", files);
	assert_int_equal(job, 1);

	free(box);
	rm_tree(root);
}

/*
 * Journal mode's background delivery syncs a batch with one syncfs per
 * file system, not per file. Its Maildirs can sit on several file systems
 * (a mailbox mounted or bound elsewhere; here a domain directory that is a
 * link to tmpfs): every file must be made durable, by its own fdatasync or
 * by a syncfs of its own file system, before its link. A syncfs of the
 * first copy's file system alone left the copies on the other in the page
 * cache while they were linked, reported delivered and their journal
 * record released: after a power cut, empty files in new/ for acknowledged
 * mail (reproduced with two ext4 images, tests/e2e/test_powerloss.py).
 */
static void
test_journal_sync_per_file_system(void **state)
{
	(void)state;
	char root[] = "/tmp/ehlo-spool-order-XXXXXX";
	char other[] = "/dev/shm/ehlo-spool-order-XXXXXX";
	char jdir[4096], link_path[4096];
	make_journal_root(root, jdir);
	if (mkdtemp(other) == NULL) {
		rm_tree(root);
		skip();
	}
	struct stat a, b;
	assert_int_equal(stat(root, &a), 0);
	assert_int_equal(stat(other, &b), 0);
	if (a.st_dev == b.st_dev) {
		rm_tree(other);
		rm_tree(root);
		skip();         /* /tmp and /dev/shm on one file system */
	}
	snprintf(link_path, sizeof link_path, "%s/other.test", root);
	assert_int_equal(symlink(other, link_path), 0);

	/* Lingering, so that the 24 jobs go in batches with copies on both. */
	struct spool *sp = open_lingering_spool(root, jdir, 200);
	assert_non_null(sp);
	char *boxes[2];
	struct buf bb = BUF_INIT;
	assert_true(spool_mailbox_path(root, "ann", "example.test", &bb));
	boxes[0] = buf_steal(&bb);
	assert_true(spool_mailbox_path(root, "ben", "other.test", &bb));
	boxes[1] = buf_steal(&bb);
	int copies = run_jobs(sp, boxes, 2);
	spool_free(&sp);

	pthread_mutex_lock(&rec_mu);
	int nr = nrecs, ov = overflow;
	pthread_mutex_unlock(&rec_mu);
	assert_int_equal(ov, 0);
	int files = 0, syncfs_calls = 0;
	for (int i = 0; i < nr; i++)
		syncfs_calls += recs[i].k == EV_SYNCFS;
	assert_true(syncfs_calls > 0);  /* batched: the bulk path ran */
	for (int bx = 0; bx < 2; bx++) {
		char newdir[4096];
		snprintf(newdir, sizeof newdir, "%snew", boxes[bx]);
		DIR *d = opendir(newdir);
		assert_non_null(d);
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char p[8192];
			snprintf(p, sizeof p, "%s/%s", newdir, e->d_name);
			struct stat st;
			assert_int_equal(stat(p, &st), 0);
			files++;
			int l = -1;
			for (int i = 0; i < nr; i++)
				if (recs[i].k == EV_LINK && recs[i].ino == st.st_ino &&
				    recs[i].dev == st.st_dev)
					l = i;
			if (l < 0)
				fail_msg("%s: no link recorded", p);
			int s = -1;
			for (int i = 0; i < l; i++)
				if (recs[i].dev == st.st_dev && (recs[i].k == EV_SYNCFS ||
				    (recs[i].k == EV_DATASYNC && recs[i].ino == st.st_ino)))
					s = i;
			if (s < 0)
				fail_msg("%s: linked into new/ before its file system was synced", p);
		}
		closedir(d);
	}
	assert_int_equal(files, copies);

	free(boxes[0]);
	free(boxes[1]);
	assert_int_equal(unlink(link_path), 0);   /* rm_tree would follow it */
	rm_tree(root);
	rm_tree(other);
}

/*
 * Journal mode, a copy whose fsync of new/ failed and whose rollback
 * unlink failed too: its name stays in new/, over data synced before the
 * link. The retry (10 s later) writes tmp/ again under the same preset
 * name and links it: EEXIST. That name is the copy's own, so the copy is
 * there: the retry must count it delivered (new/ fsynced again) rather
 * than fail on EEXIST every 10 s for ever.
 */
static void
test_journal_retry_after_failed_rollback(void **state)
{
	(void)state;
	char root[] = "/tmp/ehlo-spool-order-XXXXXX";
	char jdir[4096];
	make_journal_root(root, jdir);
	struct buf b = BUF_INIT;
	assert_true(spool_mailbox_path(root, "ann", "example.test", &b));
	char *box = buf_steal(&b);
	struct spool *sp = open_spool(root, jdir);
	struct spool_stats st;
	/* Job 0 makes the Maildir (whose creation fsyncs new/ too). */
	assert_int_equal(one_job(sp, box, 0), 0);
	for (int i = 0; i < 1000; i++) {
		spool_get_stats(sp, &st);
		if (st.pending == 0)
			break;
		usleep(10000);
	}
	assert_int_equal(st.pending, 0);
	atomic_store(&fail_newdir_fsyncs, 1);
	atomic_store(&fail_new_unlinks, 1);
	assert_int_equal(one_job(sp, box, 1), 0);       /* journaled: 250 */
	bool delivered = false;
	for (int i = 0; i < 1500 && !delivered; i++) {    /* 15 s: one retry */
		spool_get_stats(sp, &st);
		delivered = st.pending == 0;
		if (!delivered)
			usleep(10000);
	}
	int left_fsync = atomic_load(&fail_newdir_fsyncs);
	int left_unlink = atomic_load(&fail_new_unlinks);
	atomic_store(&fail_newdir_fsyncs, 0);
	atomic_store(&fail_new_unlinks, 0);
	spool_free(&sp);
	assert_int_equal(left_fsync, 0);        /* the injections were in the path */
	assert_int_equal(left_unlink, 0);
	if (!delivered)
		fail_msg("the retry did not deliver the copy whose name was left in new/");
	char newdir[4096];
	snprintf(newdir, sizeof newdir, "%snew", box);
	DIR *d = opendir(newdir);
	assert_non_null(d);
	int files = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char p[8192];
		snprintf(p, sizeof p, "%s/%s", newdir, e->d_name);
		int job = job_of(p);
		assert_in_range(job, 0, 1);
		files |= 1 << job;
	}
	closedir(d);
	assert_int_equal(files, 3);     /* each job once */
	assert_int_equal(count_entries(jdir), 0);     /* released, and a clean stop */
	free(box);
	rm_tree(root);
}

/*
 * Recovery that cannot read a segment to its end (EIO past the third of
 * five records, injected) delivers what it read and keeps the segment:
 * before, a read error was taken for the end of the file, and the segment
 * with the last three acknowledged messages was unlinked. Once the segment
 * reads again, the next start delivers them.
 */
static void
test_journal_recovery_read_error_keeps_segment(void **state)
{
	(void)state;
	char root[] = "/tmp/ehlo-spool-order-XXXXXX";
	char jdir[4096];
	make_journal_root(root, jdir);
	struct buf b = BUF_INIT;
	assert_true(spool_mailbox_path(root, "ann", "example.test", &b));
	char *box = buf_steal(&b);
	size_t bl = strlen(box);
	char *dir = xstrndup(box, bl - 1);
	struct buf seg = BUF_INIT;
	size_t third = 0;
	for (int i = 0; i < 5; i++) {
		char name[64], body[64];
		snprintf(name, sizeof name, "100.M1P1Q%d.h,S=9", i + 1);
		int len = snprintf(body, sizeof body, "X-Job: %d\n", i + 1);
		const char *d[] = { dir }, *n[] = { name };
		if (i == 2)
			third = seg.len;
		assert_int_equal(jrec_encode(&seg, (uint64_t)i + 1, "Q", 1, d, n, body,
		    (size_t)len), 0);
	}
	char p[4200];
	snprintf(p, sizeof p, "%s/journal.1", jdir);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(seg.data, 1, seg.len, f), seg.len);
	fclose(f);

	atomic_store(&fail_segment_reads_at, (long)third + 10);
	struct spool *sp = open_lingering_spool(root, jdir, 0);
	atomic_store(&fail_segment_reads_at, 0);
	assert_non_null(sp);
	spool_free(&sp);
	char newdir[4096];
	snprintf(newdir, sizeof newdir, "%snew", box);
	assert_int_equal(count_entries(newdir), 2);
	if (access(p, F_OK) != 0)
		fail_msg("the segment that could not be read to its end was removed");

	sp = open_spool(root, jdir);
	spool_free(&sp);
	assert_int_equal(count_entries(newdir), 5);
	assert_int_equal(count_entries(jdir), 0);

	buf_free(&seg);
	free(dir);
	free(box);
	rm_tree(root);
}

int
main(void)
{
	evthread_use_pthreads();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_link_fsync_done_order),
		cmocka_unit_test(test_journal_segment_name_durable),
		cmocka_unit_test(test_journal_failed_sync_cut_back),
		cmocka_unit_test(test_journal_sync_per_file_system),
		cmocka_unit_test(test_journal_retry_after_failed_rollback),
		cmocka_unit_test(test_journal_recovery_read_error_keeps_segment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
