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
 * acknowledgement.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "lib/buf.h"
#include "lib/xmalloc.h"
#include "spool/spool.h"

#define JOBS       24
#define BOXES      4
#define MAX_EVENTS 4096

enum kind { EV_DATASYNC, EV_DIRSYNC, EV_LINK, EV_DONE };

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
int __wrap_fdatasync(int fd);
int __wrap_fsync(int fd);
int __wrap_link(const char *from, const char *to);

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
	return synced(fd, __real_fdatasync(fd));
}

int
__wrap_fsync(int fd)
{
	return synced(fd, __real_fsync(fd));
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
open_spool(const char *root, const char *jdir)
{
	pthread_mutex_lock(&rec_mu);
	nrecs = 0;
	overflow = 0;
	pthread_mutex_unlock(&rec_mu);
	struct buf err = BUF_INIT;
	struct spool_opts o = { .base = root, .threads = 2, .hostname = "order.test",
	    .journal_dir = jdir };
	struct spool *sp = spool_new(&o, &err);
	assert_non_null(sp);
	buf_free(&err);
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
	assert_non_null(mkdtemp(root));
	char jdir[4096];
	snprintf(jdir, sizeof jdir, "%s/journal", root);
	assert_int_equal(mkdir(jdir, 0700), 0);
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

int
main(void)
{
	evthread_use_pthreads();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_link_fsync_done_order),
		cmocka_unit_test(test_journal_segment_name_durable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
