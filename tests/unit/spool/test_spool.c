/*
 * Spool delivery: Maildir contents and names, all-or-nothing across the
 * mailboxes of a job, completions on the submitting base's thread from
 * several event bases at once, abandon, shutdown, queue ids.
 * Every test works in its own mkdtemp directory under /tmp.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "spool/jrec.h"
#include "spool/spool.h"
#include "spool/spool_int.h"

#define LOOP_LIMIT_SEC 30

/* ---- helpers ---- */

static char *
make_root(void)
{
	char tmpl[] = "/tmp/ehlo-spool-XXXXXX";
	if (mkdtemp(tmpl) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	return xstrdup(tmpl);
}

static int
rm_tree_fd(int dfd)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			continue;
		int sub = openat(dirfd(d), e->d_name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		if (sub >= 0) {
			rm_tree_fd(sub);
			unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
		}
	}
	closedir(d);
	return 0;
}

static void
rm_tree(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	if (fd >= 0)
		rm_tree_fd(fd);
	rmdir(path);
}

/* Number of entries in dir/sub, -1 when it cannot be read. If first is
 * given, the first entry's name is copied there. */
static int
count_dir(const char *dir, const char *sub, char *first, size_t firstsz)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n == 0 && first != NULL)
			snprintf(first, firstsz, "%s", e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static char *
read_file(const char *path, size_t *len)
{
	struct buf b = BUF_INIT;
	char tmp[4096];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	ssize_t r;
	while ((r = read(fd, tmp, sizeof tmp)) > 0)
		buf_append(&b, tmp, (size_t)r);
	close(fd);
	*len = b.len;
	if (b.data == NULL)
		buf_append(&b, "", 0);
	return buf_steal(&b);
}

static char *
mailbox(const char *root, const char *local)
{
	struct buf b = BUF_INIT;
	if (!spool_mailbox_path(root, local, "example.test", &b))
		fail_msg("mailbox path refused for %s", local);
	return buf_steal(&b);
}

static struct spool *
new_spool(const char *root, unsigned threads, const char *host)
{
	struct buf err = BUF_INIT;
	struct spool_opts o = { .base = root, .threads = threads,
	    .hostname = host };
	struct spool *sp = spool_new(&o, &err);
	if (sp == NULL)
		fail_msg("spool_new: %s", buf_cstr(&err));
	buf_free(&err);
	return sp;
}

/* One event loop plus the completions it has seen. */
struct loop {
	struct event_base *base;
	struct event      *guard;
	pthread_t          thread;
	int                want, got, failed, wrong_thread;
	int                last_status;
	bool               timed_out;
};

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;
	l->timed_out = true;
	event_base_loopbreak(l->base);
}

static void
loop_init(struct loop *l)
{
	memset(l, 0, sizeof *l);
	l->base = event_base_new();
	assert_non_null(l->base);
	l->guard = evtimer_new(l->base, guard_cb, l);
}

static void
loop_free(struct loop *l)
{
	event_free(l->guard);
	event_base_free(l->base);
}

/* Runs the loop until l->got reaches l->want (or the guard fires). */
static void
loop_run(struct loop *l)
{
	struct timeval tv = { LOOP_LIMIT_SEC, 0 };
	l->thread = pthread_self();
	evtimer_add(l->guard, &tv);
	if (l->got < l->want)
		event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
	evtimer_del(l->guard);
}

static void
done_cb(struct spool_job *job, int status, void *arg)
{
	struct loop *l = arg;
	if (!pthread_equal(pthread_self(), l->thread))
		l->wrong_thread++;
	l->last_status = status;
	if (status != 0)
		l->failed++;
	if (++l->got >= l->want)
		event_base_loopbreak(l->base);
}

static char *
make_msg(size_t len, unsigned seed)
{
	char *m = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++)
		m[i] = (i % 61 == 60) ? '\n' : (char)('!' + (i * 7 + seed) % 90);
	m[len] = '\0';
	return m;
}

/* ---- tests ---- */

static void
test_deliver_several(void **state)
{
	char *root = make_root();
	struct spool *sp = new_spool(root, 2, "mx/a:b");
	struct loop l;
	loop_init(&l);

	char *boxes[3] = { mailbox(root, "alice"), mailbox(root, "Bob"),
	    mailbox(root, "carol") };
	const size_t len = 5000;
	char *msg = make_msg(len, 3);
	char *expect = xstrndup(msg, len);
	char qid[24];
	spool_queue_id(qid);

	l.want = 1;
	assert_non_null(spool_submit(sp, l.base, msg, len,
	    (const char *const *)boxes, 3, qid, done_cb, &l));
	loop_run(&l);
	assert_false(l.timed_out);
	assert_int_equal(l.got, 1);
	assert_int_equal(l.last_status, 0);
	assert_int_equal(l.wrong_thread, 0);

	char want_suffix[64];
	snprintf(want_suffix, sizeof want_suffix, ".mx\\057a\\072b,S=%zu",
	    len);
	for (int i = 0; i < 3; i++) {
		char name[512], path[4096];
		struct stat st;
		assert_int_equal(count_dir(boxes[i], "new", name, sizeof name),
		    1);
		assert_int_equal(count_dir(boxes[i], "tmp", NULL, 0), 0);
		assert_int_equal(count_dir(boxes[i], "cur", NULL, 0), 0);
		/* <sec>.M<usec>P<pid>Q<seq>.<host>,S=<size> */
		size_t nl = strlen(name), sl = strlen(want_suffix);
		assert_true(nl > sl);
		assert_string_equal(name + nl - sl, want_suffix);
		char pidpart[32];
		snprintf(pidpart, sizeof pidpart, "P%ldQ", (long)getpid());
		assert_non_null(strstr(name, pidpart));
		assert_non_null(strstr(name, ".M"));

		snprintf(path, sizeof path, "%snew/%s", boxes[i], name);
		size_t got_len;
		char *got = read_file(path, &got_len);
		assert_int_equal(got_len, len);
		assert_memory_equal(got, expect, len);
		free(got);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		assert_int_equal(stat(boxes[i], &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);
		snprintf(path, sizeof path, "%snew", boxes[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	/* "Bob" was lower-cased on the way */
	char p[4096];
	snprintf(p, sizeof p, "%s/example.test/bob/new", root);
	assert_int_equal(count_dir(p, ".", NULL, 0), 1);

	struct spool_stats st;
	spool_get_stats(sp, &st);
	assert_int_equal(st.jobs_ok, 1);
	assert_int_equal(st.jobs_failed, 0);
	assert_int_equal(st.copies, 3);
	assert_int_equal(st.bytes, 3 * len);

	spool_free(&sp);
	assert_null(sp);
	loop_free(&l);
	for (int i = 0; i < 3; i++)
		free(boxes[i]);
	free(expect);
	rm_tree(root);
	free(root);
}

/*
 * A commit that hangs (a slow disk, a Maildir on a stuck file system) must
 * not hold up everyone else: the job queued behind it is taken by another
 * delivery thread once it has waited STALL_US (2 ms), and not before, since
 * a commit in progress normally takes the queue itself when it is done.
 */
struct hold {
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	int             calls;
	bool            holding, release;
};

static void
hold_first_batch(void *arg)
{
	struct hold *h = arg;
	pthread_mutex_lock(&h->mu);
	if (h->calls++ == 0) {
		h->holding = true;
		pthread_cond_broadcast(&h->cv);
		while (!h->release)
			pthread_cond_wait(&h->cv, &h->mu);
	}
	pthread_mutex_unlock(&h->mu);
}

static double
mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void
test_stalled_commit_gets_help(void **state)
{
	char *root = make_root();
	struct hold h = { .mu = PTHREAD_MUTEX_INITIALIZER,
	    .cv = PTHREAD_COND_INITIALIZER };
	struct buf err = BUF_INIT;
	struct spool_opts o = { .base = root, .threads = 2, .hostname = "h",
	    .batch_hook = hold_first_batch,
	    .batch_hook_arg = &h };
	struct spool *sp = spool_new(&o, &err);
	assert_non_null(sp);
	struct loop l;
	loop_init(&l);
	l.thread = pthread_self();

	char *a = mailbox(root, "stuck"), *b = mailbox(root, "waiting");
	char qa[24], qb[24];
	spool_queue_id(qa);
	spool_queue_id(qb);
	assert_non_null(spool_submit(sp, l.base, xstrdup("a\n"), 2,
	    (const char *const *)&a, 1, qa, done_cb, &l));
	pthread_mutex_lock(&h.mu);
	while (!h.holding)
		pthread_cond_wait(&h.cv, &h.mu);
	pthread_mutex_unlock(&h.mu);

	/* The first thread is stuck in its commit: b must get through. */
	double t0 = mono_ms();
	l.want = 1;
	assert_non_null(spool_submit(sp, l.base, xstrdup("b\n"), 2,
	    (const char *const *)&b, 1, qb, done_cb, &l));
	loop_run(&l);
	double waited = mono_ms() - t0;
	assert_false(l.timed_out);
	assert_int_equal(l.got, 1);
	assert_int_equal(l.failed, 0);
	assert_int_equal(count_dir(b, "new", NULL, 0), 1);
	assert_true(count_dir(a, "new", NULL, 0) <= 0);   /* not even created yet */
	assert_true(waited >= 2.0);     /* STALL_US: no thread per job */

	pthread_mutex_lock(&h.mu);
	h.release = true;
	pthread_cond_broadcast(&h.cv);
	pthread_mutex_unlock(&h.mu);
	l.want = 2;
	loop_run(&l);
	assert_false(l.timed_out);
	assert_int_equal(l.got, 2);
	assert_int_equal(count_dir(a, "new", NULL, 0), 1);
	assert_int_equal(l.wrong_thread, 0);

	spool_free(&sp);
	loop_free(&l);
	buf_free(&err);
	free(a);
	free(b);
	rm_tree(root);
	free(root);
}

static void
test_empty_message(void **state)
{
	char *root = make_root();
	struct spool *sp = new_spool(root, 1, "h");
	struct loop l;
	loop_init(&l);
	char *box = mailbox(root, "e");
	char name[512];

	l.want = 1;
	spool_submit(sp, l.base, NULL, 0, (const char *const *)&box, 1, NULL,
	    done_cb, &l);
	loop_run(&l);
	assert_int_equal(l.last_status, 0);
	assert_int_equal(count_dir(box, "new", name, sizeof name), 1);
	assert_non_null(strstr(name, ",S=0"));

	spool_free(&sp);
	loop_free(&l);
	free(box);
	rm_tree(root);
	free(root);
}

/* Writes a regular file at path: as root, permissions do not stop us, so a
 * file where a directory should be is the reliable way to make one copy
 * fail. */
static void
block_with_file(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static void
assert_nothing_delivered(char *const *boxes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int c = count_dir(boxes[i], "new", NULL, 0);
		assert_true(c <= 0);
		c = count_dir(boxes[i], "tmp", NULL, 0);
		assert_true(c <= 0);
	}
}

/* Which part of the Maildir is replaced by a file. */
enum blocker { BLOCK_MAILDIR, BLOCK_TMP, BLOCK_NEW };

static void
run_all_or_nothing(enum blocker how)
{
	char *root = make_root();
	struct spool *sp = new_spool(root, 2, "h");
	struct loop l;
	loop_init(&l);
	char *boxes[3] = { mailbox(root, "ok1"), mailbox(root, "blocked"),
	    mailbox(root, "ok2") };
	char path[4096];

	if (how == BLOCK_MAILDIR) {
		snprintf(path, sizeof path, "%s/example.test", root);
		assert_int_equal(mkdir(path, 0700), 0);
		snprintf(path, sizeof path, "%s/example.test/blocked", root);
		block_with_file(path);
	} else {
		/* Deliver once so the spool has cached the Maildirs, then
		 * break one behind its back: the failure then comes from
		 * open (tmp) or link (new), not from creation. */
		l.want = 1;
		spool_submit(sp, l.base, xstrdup("warm\n"), 5,
		    (const char *const *)boxes, 3, NULL, done_cb, &l);
		loop_run(&l);
		assert_int_equal(l.last_status, 0);
		for (int i = 0; i < 3; i++) {
			snprintf(path, sizeof path, "%snew", boxes[i]);
			rm_tree(path);
			assert_int_equal(mkdir(path, 0700), 0);
		}
		snprintf(path, sizeof path, "%s%s", boxes[1],
		    how == BLOCK_TMP ? "tmp" : "new");
		rm_tree(path);
		block_with_file(path);
	}

	l.want = l.got + 1;
	spool_submit(sp, l.base, make_msg(300, 1), 300,
	    (const char *const *)boxes, 3, NULL, done_cb, &l);
	loop_run(&l);
	assert_false(l.timed_out);
	assert_int_not_equal(l.last_status, 0);
	assert_int_not_equal(l.last_status, ENOSPC);
	assert_int_equal(l.last_status, ENOTDIR);
	assert_int_equal(l.wrong_thread, 0);
	assert_nothing_delivered(boxes, 3);

	struct spool_stats st;
	spool_get_stats(sp, &st);
	assert_int_equal(st.jobs_failed, 1);

	/* The same spool still delivers to the healthy mailboxes. */
	char *good[2] = { boxes[0], boxes[2] };
	l.want = l.got + 1;
	spool_submit(sp, l.base, make_msg(10, 2), 10,
	    (const char *const *)good, 2, NULL, done_cb, &l);
	loop_run(&l);
	assert_int_equal(l.last_status, 0);
	assert_int_equal(count_dir(boxes[0], "new", NULL, 0), 1);
	assert_int_equal(count_dir(boxes[2], "new", NULL, 0), 1);

	spool_free(&sp);
	loop_free(&l);
	for (int i = 0; i < 3; i++)
		free(boxes[i]);
	rm_tree(root);
	free(root);
}

static void
test_all_or_nothing_create(void **state)
{
	run_all_or_nothing(BLOCK_MAILDIR);
}

static void
test_all_or_nothing_tmp(void **state)
{
	run_all_or_nothing(BLOCK_TMP);
}

static void
test_all_or_nothing_link(void **state)
{
	run_all_or_nothing(BLOCK_NEW);
}

static void
test_maildir_recreated(void **state)
{
	char *root = make_root();
	struct spool *sp = new_spool(root, 1, "h");
	struct loop l;
	loop_init(&l);
	char *box = mailbox(root, "gone");
	char path[4096];

	l.want = 1;
	spool_submit(sp, l.base, xstrdup("a\n"), 2, (const char *const *)&box,
	    1, NULL, done_cb, &l);
	loop_run(&l);
	assert_int_equal(l.last_status, 0);

	/* Removed while cached: the next delivery recreates it. */
	snprintf(path, sizeof path, "%s/example.test", root);
	rm_tree(path);
	l.want = 2;
	spool_submit(sp, l.base, xstrdup("b\n"), 2, (const char *const *)&box,
	    1, NULL, done_cb, &l);
	loop_run(&l);
	assert_int_equal(l.last_status, 0);
	assert_int_equal(count_dir(box, "new", NULL, 0), 1);
	assert_int_equal(count_dir(box, "cur", NULL, 0), 0);

	/* Only new/ removed (tmp/ still there, so the create succeeds): the
	 * link recreates it; before, every later delivery got ENOENT until a
	 * restart. */
	snprintf(path, sizeof path, "%snew", box);
	rm_tree(path);
	l.want = 3;
	spool_submit(sp, l.base, xstrdup("c\n"), 2, (const char *const *)&box,
	    1, NULL, done_cb, &l);
	loop_run(&l);
	assert_int_equal(l.last_status, 0);
	assert_int_equal(count_dir(box, "new", NULL, 0), 1);
	assert_int_equal(count_dir(box, "tmp", NULL, 0), 0);

	spool_free(&sp);
	loop_free(&l);
	free(box);
	rm_tree(root);
	free(root);
}

static void write_file(const char *path, const void *p, size_t n);

/*
 * A tmp/ that is a symbolic link is not swept: the sweep would remove the
 * old files of the directory it names. The file there, stale by a clock 37
 * hours ahead, stays.
 */

static void
test_tmp_link_not_swept(void **state)
{
	char *root = make_root();
	char other[4096], victim[8192], path[8192];
	snprintf(other, sizeof other, "%s/elsewhere", root);
	assert_int_equal(mkdir(other, 0700), 0);
	snprintf(victim, sizeof victim, "%s/old-file", other);
	write_file(victim, "x", 1);
	char *box = mailbox(root, "linked");
	snprintf(path, sizeof path, "%s/example.test", root);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(mkdir(box, 0700), 0);
	snprintf(path, sizeof path, "%snew", box);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%scur", box);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%stmp", box);
	assert_int_equal(symlink(other, path), 0);
	assert_int_equal(maildir_sweep_tmp(path, time(NULL) + 37 * 3600), 0);
	assert_int_equal(access(victim, F_OK), 0);
	free(box);
	rm_tree(root);
	free(root);
}

/* ---- concurrency: two event bases on two threads ---- */

#define CONC_JOBS     400
#define CONC_INFLIGHT 5

struct submitter {
	struct loop    l;
	struct spool  *sp;
	char          *boxes[3];
	int            sent;
	int            bad_status;
};

static void submit_next(struct submitter *s);

static void
conc_done(struct spool_job *job, int status, void *arg)
{
	struct submitter *s = arg;
	if (status != 0)
		s->bad_status++;
	done_cb(job, status, &s->l);
	if (s->sent < CONC_JOBS)
		submit_next(s);
}

static void
submit_next(struct submitter *s)
{
	/* One, two or three mailboxes per job, shared by both threads. */
	size_t n = (size_t)(s->sent % 3) + 1;
	char qid[24];
	spool_queue_id(qid);
	s->sent++;
	spool_submit(s->sp, s->l.base, make_msg(100 + (size_t)s->sent, 0),
	    100 + (size_t)s->sent, (const char *const *)s->boxes, n, qid,
	    conc_done, s);
}

static void *
submitter_thread(void *arg)
{
	struct submitter *s = arg;
	s->l.want = CONC_JOBS;
	s->l.thread = pthread_self();
	/* Closed loop, like sessions waiting for their 250. */
	for (int i = 0; i < CONC_INFLIGHT; i++)
		submit_next(s);
	loop_run(&s->l);
	return NULL;
}

static void
test_two_bases(void **state)
{
	char *root = make_root();
	struct spool *sp = new_spool(root, 3, "h");
	struct submitter s[2];
	pthread_t t[2];
	char *boxes[3] = { mailbox(root, "x"), mailbox(root, "y"),
	    mailbox(root, "z") };

	for (int i = 0; i < 2; i++) {
		memset(&s[i], 0, sizeof s[i]);
		loop_init(&s[i].l);
		s[i].sp = sp;
		memcpy(s[i].boxes, boxes, sizeof boxes);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, submitter_thread,
		    &s[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);

	for (int i = 0; i < 2; i++) {
		assert_false(s[i].l.timed_out);
		assert_int_equal(s[i].l.got, CONC_JOBS);
		assert_int_equal(s[i].bad_status, 0);
		assert_int_equal(s[i].l.wrong_thread, 0);
	}
	/* Jobs k = 1..CONC_JOBS per thread went to boxes[0..(k-1)%3]. */
	int want[3] = { 0, 0, 0 };
	for (int k = 0; k < CONC_JOBS; k++)
		for (int m = 0; m <= k % 3; m++)
			want[m] += 2;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(count_dir(boxes[i], "new", NULL, 0), want[i]);
		assert_int_equal(count_dir(boxes[i], "tmp", NULL, 0), 0);
	}
	struct spool_stats st;
	spool_get_stats(sp, &st);
	assert_int_equal(st.jobs_ok, 2 * CONC_JOBS);
	assert_int_equal(st.copies, want[0] + want[1] + want[2]);
	assert_true(st.batches <= st.jobs_ok);

	spool_free(&sp);
	for (int i = 0; i < 2; i++)
		loop_free(&s[i].l);
	for (int i = 0; i < 3; i++)
		free(boxes[i]);
	rm_tree(root);
	free(root);
}

/* ---- abandon ---- */

static void
never_cb(struct spool_job *job, int status, void *arg)
{
	int *called = arg;
	(*called)++;
}

static void
wait_jobs_done(struct spool *sp, uint64_t n)
{
	struct spool_stats st;
	for (int i = 0; i < LOOP_LIMIT_SEC * 1000; i++) {
		spool_get_stats(sp, &st);
		if (st.jobs_ok + st.jobs_failed >= n)
			return;
		usleep(1000);
	}
	fail_msg("spool did not finish %llu jobs", (unsigned long long)n);
}

static void
test_abandon(void **state)
{
	char *root = make_root();
	struct spool *sp = new_spool(root, 1, "h");
	struct loop l;
	loop_init(&l);
	char *box = mailbox(root, "ab");
	int never = 0;

	/* Abandoned while queued or being written. */
	struct spool_job *j = spool_submit(sp, l.base, xstrdup("one\n"), 4,
	    (const char *const *)&box, 1, NULL, never_cb, &never);
	spool_job_abandon(j);

	/* Abandoned after it was posted to the loop, before dispatch. */
	j = spool_submit(sp, l.base, xstrdup("two\n"), 4,
	    (const char *const *)&box, 1, NULL, never_cb, &never);
	wait_jobs_done(sp, 2);
	spool_job_abandon(j);

	/* A later job on the same base still completes normally. */
	l.want = 1;
	spool_submit(sp, l.base, xstrdup("three\n"), 6,
	    (const char *const *)&box, 1, NULL, done_cb, &l);
	loop_run(&l);
	assert_false(l.timed_out);
	assert_int_equal(l.last_status, 0);
	assert_int_equal(never, 0);

	/* The abandoned deliveries still completed. */
	assert_int_equal(count_dir(box, "new", NULL, 0), 3);
	assert_int_equal(count_dir(box, "tmp", NULL, 0), 0);

	spool_free(&sp);
	assert_int_equal(never, 0);
	loop_free(&l);
	free(box);
	rm_tree(root);
	free(root);
}

static void
test_free_finishes_queue(void **state)
{
	char *root = make_root();
	struct spool *sp = new_spool(root, 2, "h");
	struct loop l;
	loop_init(&l);
	char *box = mailbox(root, "q");
	int never = 0;

	for (int i = 0; i < 50; i++)
		spool_submit(sp, l.base, make_msg(64, (unsigned)i), 64,
		    (const char *const *)&box, 1, NULL, never_cb, &never);
	/* The loop never runs: the jobs are written anyway, and the
	 * undispatched completions are dropped (ASan checks the frees). */
	spool_free(&sp);
	assert_int_equal(never, 0);
	assert_int_equal(count_dir(box, "new", NULL, 0), 50);
	assert_int_equal(count_dir(box, "tmp", NULL, 0), 0);

	loop_free(&l);
	free(box);
	rm_tree(root);
	free(root);
}

static void
test_new_errors(void **state)
{
	char *root = make_root();
	struct buf err = BUF_INIT;
	char path[4096];
	struct spool_opts o = { 0 };

	assert_null(spool_new(&o, &err));
	assert_true(err.len > 0);

	buf_reset(&err);
	snprintf(path, sizeof path, "%s/missing", root);
	o.base = path;
	assert_null(spool_new(&o, &err));
	assert_non_null(strstr(buf_cstr(&err), "missing"));

	buf_reset(&err);
	snprintf(path, sizeof path, "%s/file", root);
	block_with_file(path);
	assert_null(spool_new(&o, &err));
	assert_non_null(strstr(buf_cstr(&err), "not a directory"));

	buf_reset(&err);
	o.base = root;
	o.threads = SPOOL_THREADS_MAX + 1;
	assert_null(spool_new(&o, &err));

	buf_free(&err);
	rm_tree(root);
	free(root);
}

/* ---- queue ids ---- */

#define QID_THREADS 4
#define QID_PER     5000

static char qids[QID_THREADS * QID_PER][24];

static void *
qid_thread(void *arg)
{
	char (*mine)[24] = arg;
	for (int i = 0; i < QID_PER; i++)
		spool_queue_id(mine[i]);
	return NULL;
}

static int
cmp_qid(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
test_queue_ids(void **state)
{
	pthread_t t[QID_THREADS];

	for (int i = 0; i < QID_THREADS; i++)
		pthread_create(&t[i], NULL, qid_thread, qids[i * QID_PER]);
	for (int i = 0; i < QID_THREADS; i++)
		pthread_join(t[i], NULL);

	for (int i = 0; i < QID_THREADS * QID_PER; i++) {
		assert_int_equal(strlen(qids[i]), 23);
		for (const char *p = qids[i]; *p; p++)
			assert_true((*p >= '0' && *p <= '9') ||
			    (*p >= 'A' && *p <= 'F'));
		/* strictly increasing within one thread */
		if (i % QID_PER != 0)
			assert_true(strcmp(qids[i - 1], qids[i]) < 0);
	}
	qsort(qids, QID_THREADS * QID_PER, sizeof qids[0], cmp_qid);
	for (int i = 1; i < QID_THREADS * QID_PER; i++)
		assert_true(strcmp(qids[i - 1], qids[i]) != 0);

	/* the pid is embedded, so two processes cannot collide */
	char id[24], pid[8];
	spool_queue_id(id);
	snprintf(pid, sizeof pid, "%06lX", (unsigned long)getpid() & 0xffffff);
	assert_memory_equal(id + 13, pid, 6);
}

/* ---- journal mode ---- */

/* A fresh root with an empty journal directory, jdir = <root>/journal. */
static char *
make_journal_root(char jdir[4096])
{
	char *root = make_root();
	snprintf(jdir, 4096, "%s/journal", root);
	assert_int_equal(mkdir(jdir, 0700), 0);
	return root;
}

static struct spool *
new_lingering_spool(const char *root, const char *jdir, unsigned linger_ms,
    struct buf *err)
{
	struct spool_opts o = { .base = root, .threads = 2, .hostname = "h",
	    .journal_dir = jdir, .linger_ms = linger_ms };
	return spool_new(&o, err);
}

static struct spool *
new_journal_spool(const char *root, const char *jdir, struct buf *err)
{
	return new_lingering_spool(root, jdir, 0, err);
}

/* Size of jdir/name, or -1. */
static long long
file_size(const char *jdir, const char *name)
{
	char p[8192];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", jdir, name);
	return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

#define SEGMENT_BYTES (64LL << 20)    /* JOURNAL_SEGMENT_MAX */

static void
write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* Acknowledged from the journal; delivered to new/ by spool_free at the
 * latest; a clean stop leaves no segment. */
static void
test_journal_submit(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	struct buf err = BUF_INIT;
	struct spool *sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 1);   /* journal.1 */
	/* Written full of zeros up front: groups overwrite, never extend. */
	assert_int_equal(file_size(jdir, "journal.1"), SEGMENT_BYTES);

	struct loop l;
	loop_init(&l);
	char *boxes[2] = { mailbox(root, "a"), mailbox(root, "b") };
	l.want = 20;
	for (int i = 0; i < 20; i++) {
		char qid[24];
		spool_queue_id(qid);
		assert_non_null(spool_submit(sp, l.base, make_msg(300 + (size_t)i, (unsigned)i),
		    300 + (size_t)i, (const char *const *)boxes, 1 + (size_t)(i % 2), qid,
		    done_cb, &l));
	}
	loop_run(&l);
	assert_false(l.timed_out);
	assert_int_equal(l.got, 20);
	assert_int_equal(l.failed, 0);
	struct spool_stats st;
	spool_get_stats(sp, &st);
	assert_int_equal(st.journal_records, 20);
	assert_true(st.journal_syncs >= 1 && st.journal_syncs <= 20);
	assert_int_equal(file_size(jdir, "journal.1"), SEGMENT_BYTES);
	spool_free(&sp);
	assert_int_equal(count_dir(boxes[0], "new", NULL, 0), 20);
	assert_int_equal(count_dir(boxes[1], "new", NULL, 0), 10);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 0);
	loop_free(&l);
	free(boxes[0]);
	free(boxes[1]);
	buf_free(&err);
	rm_tree(root);
	free(root);
}

/*
 * Recovery of a busy mailbox: most journaled copies were read (moved to
 * cur/) before the crash, among thousands of other read messages. cur/ is
 * listed once for the whole segment, not once per copy (that made a
 * recovery quadratic in the size of cur/), and still only the copies found
 * nowhere are delivered again.
 */
static void
test_journal_recovery_busy_mailbox(void **state)
{
	enum { RECORDS = 300, UNREAD = 7, OTHERS = 3000 };
	char jdir[4096], p[8192];
	char *root = make_journal_root(jdir);
	char *a = mailbox(root, "a");
	char *ad = xstrndup(a, strlen(a) - 1);
	snprintf(p, sizeof p, "%s/example.test", root);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(mkdir(ad, 0700), 0);
	for (const char *sub = "tmp"; sub; sub = strcmp(sub, "tmp") == 0 ? "new" :
	    strcmp(sub, "new") == 0 ? "cur" : NULL) {
		snprintf(p, sizeof p, "%s/%s", ad, sub);
		assert_int_equal(mkdir(p, 0700), 0);
	}
	struct buf seg = BUF_INIT;
	for (int i = 0; i < RECORDS; i++) {
		char name[64], qid[16];
		snprintf(name, sizeof name, "100.M1P1Q%d.h,S=5", i);
		snprintf(qid, sizeof qid, "Q%d", i);
		const char *d[] = { ad }, *n[] = { name };
		assert_int_equal(jrec_encode(&seg, (uint64_t)i + 1, qid, 1, d, n, "read\n", 5), 0);
		if (i % (RECORDS / UNREAD) != 0) {
			snprintf(p, sizeof p, "%s/cur/%s:2,S", ad, name);
			write_file(p, "read\n", 5);
		}
	}
	for (int i = 0; i < OTHERS; i++) {
		snprintf(p, sizeof p, "%s/cur/99.M%dP2Q1.h,S=5:2,", ad, i);
		write_file(p, "other", 5);
	}
	snprintf(p, sizeof p, "%s/journal.3", jdir);
	write_file(p, seg.data, seg.len);
	char logpath[8192];
	snprintf(logpath, sizeof logpath, "%s/log", root);
	assert_int_equal(log_open(logpath, "test"), 0);

	struct buf err = BUF_INIT;
	struct spool *sp = new_journal_spool(root, jdir, &err);
	log_close();
	assert_non_null(sp);
	int unread = 0;
	for (int i = 0; i < RECORDS; i += RECORDS / UNREAD)
		unread++;
	assert_int_equal(count_dir(a, "new", NULL, 0), unread);
	assert_int_equal(count_dir(a, "cur", NULL, 0), RECORDS - unread + OTHERS);
	size_t len;
	char *log = read_file(logpath, &len);
	char want[256];
	snprintf(want, sizeof want, "%d messages checked, all delivered; of %d copies not in "
	    "new/, %d were in cur/ (1 cur/ listing)", RECORDS, RECORDS, RECORDS - unread);
	if (strstr(log, want) == NULL)
		fail_msg("log lacks \"%s\":\n%s", want, log);
	free(log);
	spool_free(&sp);
	buf_free(&seg);
	buf_free(&err);
	free(a);
	free(ad);
	rm_tree(root);
	free(root);
}

/*
 * A journal left by a crash: each message reaches the mailboxes that lack
 * it, a copy already in new/ or moved to cur/ is not made again, and the
 * torn last record (never acknowledged) is not delivered.
 */
static void
test_journal_recovery(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	char p[8192];
	char *a = mailbox(root, "a"), *b = mailbox(root, "b");
	/* Record paths are Maildirs without the trailing '/'. */
	char *ad = xstrndup(a, strlen(a) - 1), *bd = xstrndup(b, strlen(b) - 1);
	struct buf seg = BUF_INIT;
	const char *d1[] = { ad }, *n1[] = { "100.M1P1Q1.h,S=6" };
	const char *d2[] = { ad, bd }, *n2[] = { "100.M1P1Q2.h,S=6", "100.M1P1Q3.h,S=6" };
	const char *d3[] = { bd }, *n3[] = { "100.M1P1Q4.h,S=6" };
	const char *d4[] = { bd }, *n4[] = { "100.M1P1Q5.h,S=6" };
	assert_int_equal(jrec_encode(&seg, 1, "Q1", 1, d1, n1, "first\n", 6), 0);
	assert_int_equal(jrec_encode(&seg, 2, "Q2", 2, d2, n2, "twice\n", 6), 0);
	assert_int_equal(jrec_encode(&seg, 3, "Q3", 1, d3, n3, "moved\n", 6), 0);
	size_t whole = seg.len;
	assert_int_equal(jrec_encode(&seg, 4, "Q4", 1, d4, n4, "stray\n", 6), 0);
	/* Keep half of the last record and zeros after it. */
	seg.len = whole + (seg.len - whole) / 2;
	buf_append(&seg, "\0\0\0\0\0\0\0\0", 8);
	snprintf(p, sizeof p, "%s/journal.7", jdir);
	write_file(p, seg.data, seg.len);

	/* Q2's copy in a/ and Q3's (read: in cur/) made it before the crash. */
	const char *dirs[] = { ad, bd };
	snprintf(p, sizeof p, "%s/example.test", root);
	assert_int_equal(mkdir(p, 0700), 0);
	for (int i = 0; i < 2; i++) {
		for (const char *sub = "tmp"; sub; sub = strcmp(sub, "tmp") == 0 ? "new" :
		    strcmp(sub, "new") == 0 ? "cur" : NULL) {
			snprintf(p, sizeof p, "%s/%s", dirs[i], sub);
			mkdir(dirs[i], 0700);
			mkdir(p, 0700);
		}
	}
	snprintf(p, sizeof p, "%s/new/%s", ad, n2[0]);
	write_file(p, "older\n", 6);
	snprintf(p, sizeof p, "%s/cur/%s:2,S", bd, n3[0]);
	write_file(p, "moved\n", 6);

	struct buf err = BUF_INIT;
	struct spool *sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	/* Recovery ran inside spool_new. */
	assert_int_equal(count_dir(a, "new", NULL, 0), 2);
	assert_int_equal(count_dir(b, "new", NULL, 0), 1);
	assert_int_equal(count_dir(b, "cur", NULL, 0), 1);
	size_t len;
	snprintf(p, sizeof p, "%s/new/%s", ad, n1[0]);
	char *got = read_file(p, &len);
	assert_int_equal(len, 6);
	assert_memory_equal(got, "first\n", 6);
	free(got);
	snprintf(p, sizeof p, "%s/new/%s", ad, n2[0]);
	got = read_file(p, &len);
	assert_memory_equal(got, "older\n", 6);    /* untouched */
	free(got);
	snprintf(p, sizeof p, "%s/new/%s", bd, n2[1]);
	got = read_file(p, &len);
	assert_memory_equal(got, "twice\n", 6);
	free(got);
	snprintf(p, sizeof p, "%s/new/%s", bd, n4[0]);
	assert_int_equal(access(p, F_OK), -1);      /* torn: not delivered */
	/* journal.7 is gone; the new current segment is journal.8. */
	char first[256];
	assert_int_equal(count_dir(jdir, ".", first, sizeof first), 1);
	assert_string_equal(first, "journal.8");
	spool_free(&sp);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 0);

	/* A second start finds nothing to do and delivers nothing twice. */
	sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	spool_free(&sp);
	assert_int_equal(count_dir(a, "new", NULL, 0), 2);
	assert_int_equal(count_dir(b, "new", NULL, 0), 1);

	buf_free(&seg);
	buf_free(&err);
	free(a);
	free(b);
	free(ad);
	free(bd);
	rm_tree(root);
	free(root);
}

/*
 * A bad record in the middle of a segment is damage, not a torn tail: the
 * records after it were acknowledged too. Five records, the third with one
 * byte flipped: recovery delivers the other four and moves the segment
 * aside to damaged.journal.4, which no later start scans (before: it
 * stopped at the third, delivered two, and unlinked the segment,
 * destroying the fourth and fifth). A second segment ends with a
 * bad record followed by a valid record with a lower sequence number (what
 * a failed group's cut-back can leave): a torn tail, dropped as before.
 */
/* Entries of dir whose names start with prefix. */
static int
count_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

static void
test_journal_recovery_damage_in_the_middle(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	char *a = mailbox(root, "a");
	char *ad = xstrndup(a, strlen(a) - 1);
	char p[8192];
	struct buf seg = BUF_INIT;
	size_t third = 0, fourth = 0;
	char names[8][64];
	for (int i = 0; i < 5; i++) {
		const char *d[] = { ad }, *n[] = { names[i] };
		snprintf(names[i], sizeof names[i], "100.M1P1Q%d.h,S=6", i + 1);
		if (i == 2)
			third = seg.len;
		if (i == 3)
			fourth = seg.len;
		char body[8];
		snprintf(body, sizeof body, "msg %d\n", i + 1);
		assert_int_equal(jrec_encode(&seg, (uint64_t)i + 1, "Q", 1, d, n, body, 6), 0);
	}
	seg.data[third + (fourth - third) - 3] ^= 0x20;    /* in the content */
	buf_append(&seg, "\0\0\0\0\0\0\0\0", 8);
	snprintf(p, sizeof p, "%s/journal.4", jdir);
	write_file(p, seg.data, seg.len);

	/* journal.5: seq 10 and 11, damage, then a stale record (seq 6). */
	struct buf tail = BUF_INIT;
	const char *d[] = { ad };
	const char *n10[] = { "100.M1P1Q10.h,S=6" }, *n11[] = { "100.M1P1Q11.h,S=6" },
	    *n6[] = { "100.M1P1Q6.h,S=6" };
	assert_int_equal(jrec_encode(&tail, 10, "Q", 1, d, n10, "msg 10", 6), 0);
	assert_int_equal(jrec_encode(&tail, 11, "Q", 1, d, n11, "msg 11", 6), 0);
	buf_append(&tail, "EHJ1garbage-garbage-garbage-garbage", 35);
	assert_int_equal(jrec_encode(&tail, 6, "Q", 1, d, n6, "stale!", 6), 0);
	char p5[8192];
	snprintf(p5, sizeof p5, "%s/journal.5", jdir);
	write_file(p5, tail.data, tail.len);

	/* journal.6: a message whose content is a record of its own (seq 99,
	 * a Maildir outside the base), and the message's record damaged: the
	 * search after the damage finds the inner one, which must not be
	 * delivered (its sender chose the path). */
	struct buf inner = BUF_INIT, outer = BUF_INIT;
	char outside[8192];
	snprintf(outside, sizeof outside, "%s-outside/x", root);
	const char *od[] = { outside }, *on[] = { "100.M1P1Q99.h,S=6" };
	assert_int_equal(jrec_encode(&inner, 99, "Q", 1, od, on, "forged", 6), 0);
	const char *n20[] = { "100.M1P1Q20.h,S=1" };
	assert_int_equal(jrec_encode(&outer, 20, "Q", 1, d, n20, inner.data, inner.len), 0);
	outer.data[9] ^= 0x01;                          /* its CRC */
	char p6[8192];
	snprintf(p6, sizeof p6, "%s/journal.6", jdir);
	write_file(p6, outer.data, outer.len);

	struct buf err = BUF_INIT;
	struct spool *sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	spool_free(&sp);
	snprintf(p, sizeof p, "%s-outside", root);
	assert_int_equal(access(p, F_OK), -1);      /* the forged record: not delivered */
	buf_free(&inner);
	buf_free(&outer);
	for (int i = 0; i < 5; i++) {
		snprintf(p, sizeof p, "%snew/%s", a, names[i]);
		assert_int_equal(access(p, F_OK), i == 2 ? -1 : 0);
	}
	snprintf(p, sizeof p, "%s/journal.4", jdir);
	assert_int_equal(access(p, F_OK), -1);      /* damaged, all valid delivered: */
	assert_int_equal(count_prefix(jdir, "damaged.journal.4."), 1);     /* moved aside */
	assert_int_equal(access(p5, F_OK), -1);     /* a torn tail: dropped */
	snprintf(p, sizeof p, "%snew/%s", a, n6[0]);
	assert_int_equal(access(p, F_OK), -1);      /* stale: not delivered */
	assert_int_equal(count_dir(a, "new", NULL, 0), 6);

	/* Kept aside across starts, and nothing delivered twice. */
	sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	spool_free(&sp);
	assert_int_equal(count_prefix(jdir, "damaged.journal.4."), 1);
	assert_int_equal(count_dir(a, "new", NULL, 0), 6);
	/* A second damaged journal.4 (numbers start again once a journal
	 * empties) is moved aside beside the first, never over it. */
	snprintf(p, sizeof p, "%s/journal.4", jdir);
	write_file(p, seg.data, seg.len);
	sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	spool_free(&sp);
	assert_int_equal(count_prefix(jdir, "damaged.journal.4."), 2);

	buf_free(&seg);
	buf_free(&tail);
	buf_free(&err);
	free(a);
	free(ad);
	rm_tree(root);
	free(root);
}

/* A message whose mailbox cannot be made stays in the journal until it
 * can (here: a plain file where a directory of the path must be). */
static void
test_journal_keeps_undeliverable(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	char p[8192], blocker[8192];
	snprintf(blocker, sizeof blocker, "%s/blocked", root);
	write_file(blocker, "", 0);
	char box[8192];
	snprintf(box, sizeof box, "%s/blocked/x", root);
	struct buf seg = BUF_INIT;
	const char *d[] = { box }, *n[] = { "1.M1P1Q1.h,S=2" };
	assert_int_equal(jrec_encode(&seg, 1, "Q1", 1, d, n, "x\n", 2), 0);
	snprintf(p, sizeof p, "%s/journal.3", jdir);
	write_file(p, seg.data, seg.len);
	struct buf err = BUF_INIT;
	struct spool *sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	spool_free(&sp);
	assert_int_equal(access(p, F_OK), 0);       /* kept for the next start */
	assert_int_equal(unlink(blocker), 0);
	sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	spool_free(&sp);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(count_dir(box, "new", NULL, 0), 1);
	buf_free(&seg);
	buf_free(&err);
	rm_tree(root);
	free(root);
}

static void submit_acked(struct spool *sp, struct loop *l, char *box, int n);

/*
 * A message acknowledged in this run whose background delivery fails (its
 * Maildir sits under a regular file) is still live at a clean stop: the
 * current segment must be kept, not removed as an empty one would be, and
 * the next start delivers the message. Removing it would lose mail that
 * got its 250.
 */
static void
test_journal_current_segment_kept_on_stop(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	char blocker[8192], box[8192];
	snprintf(blocker, sizeof blocker, "%s/blocked", root);
	write_file(blocker, "", 0);
	snprintf(box, sizeof box, "%s/blocked/x/", root);
	struct buf err = BUF_INIT;
	struct spool *sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	struct loop l;
	loop_init(&l);
	submit_acked(sp, &l, box, 1);
	spool_free(&sp);
	loop_free(&l);
	/* Kept: journal.N is still there (the directory has one entry). */
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 1);
	assert_int_equal(unlink(blocker), 0);
	sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	spool_free(&sp);
	assert_int_equal(count_dir(box, "new", NULL, 0), 1);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 0);
	buf_free(&err);
	rm_tree(root);
	free(root);
}

static bool wait_count(const char *box, int n);

/* Polls until sp's pending gauge is n; false after 10 s. */
static bool
wait_pending(struct spool *sp, size_t n)
{
	struct spool_stats st;
	for (int i = 0; i < 1000; i++) {
		spool_get_stats(sp, &st);
		if (st.pending == n)
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * After the 250 (journal mode) each copy is delivered on its own: a message
 * to ok and to a mailbox under a regular file reaches ok at once, and only
 * the failed copy is retried. ok's copy is never written again: not by the
 * retry once the mailbox is repaired (10 s later), nor by the replay at the
 * next start, which finds it in new/. Before, the whole message waited for
 * the broken mailbox, in every retry and across restarts.
 */
static void
test_journal_copies_on_their_own(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	char blocker[8192], bad[8192];
	snprintf(blocker, sizeof blocker, "%s/blocked", root);
	snprintf(bad, sizeof bad, "%s/blocked/x/", root);
	char *ok = mailbox(root, "ok");
	char *boxes[2] = { ok, bad };
	struct buf err = BUF_INIT;
	struct loop l;
	loop_init(&l);

	/* 1. Running: ok gets its copy while bad's keeps failing. */
	write_file(blocker, "", 0);
	struct spool *sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	char qid[24];
	spool_queue_id(qid);
	l.want = 1;
	assert_non_null(spool_submit(sp, l.base, make_msg(100, 1), 100,
	    (const char *const *)boxes, 2, qid, done_cb, &l));
	loop_run(&l);
	assert_int_equal(l.failed, 0);
	assert_true(wait_count(ok, 1));
	assert_int_equal(count_dir(bad, "new", NULL, 0), -1);
	struct spool_stats st;
	spool_get_stats(sp, &st);
	assert_int_equal(st.pending, 1);        /* bad's copy is still owed */
	/* A failed attempt after the 250 is a background failure, not a
	 * message refused with 4xx (ehlo_spool_delivery_failures_total). */
	for (int i = 0; i < 500 && st.background_failures == 0; i++) {
		usleep(10000);
		spool_get_stats(sp, &st);
	}
	assert_int_equal(st.background_failures, 1);
	assert_int_equal(st.jobs_failed, 0);
	/* ... from the journal: the content waiting for the retry is not held
	 * in memory, where it would count against the message memory limit
	 * (polled: bad's failure may come after ok's copy shows up). */
	for (int i = 0; i < 500 && spool_held_bytes(sp) != 0; i++)
		usleep(10000);
	assert_int_equal(spool_held_bytes(sp), 0);

	/* 2. A stop with bad still broken keeps the segment; the replay at
	 *    the next start skips ok's copy (in new/) and fails bad's again. */
	spool_free(&sp);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 1);
	sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	spool_free(&sp);
	assert_int_equal(count_dir(ok, "new", NULL, 0), 1);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 1);     /* still kept */

	/* 3. Repaired while running: the retry (every 10 s) delivers the
	 *    failed copies alone: the second message's, and the first
	 *    message's, which the replay at this start handed to the retry
	 *    queue (counted as pending from the start, read back from the
	 *    kept segment) instead of leaving it for the next start. */
	spool_queue_id(qid);
	sp = new_journal_spool(root, jdir, &err);           /* replays: fails */
	assert_non_null(sp);
	spool_get_stats(sp, &st);
	assert_int_equal(st.pending, 1);
	l.want++;
	assert_non_null(spool_submit(sp, l.base, make_msg(100, 2), 100,
	    (const char *const *)boxes, 2, qid, done_cb, &l));
	loop_run(&l);
	assert_int_equal(l.failed, 0);
	assert_true(wait_count(ok, 2));
	assert_int_equal(unlink(blocker), 0);
	bool retried = false;
	for (int i = 0; i < 1500 && !retried; i++) {     /* 15 s at most */
		retried = count_dir(bad, "new", NULL, 0) >= 2;
		if (!retried)
			usleep(10000);
	}
	assert_true(retried);
	assert_true(wait_pending(sp, 0));
	assert_int_equal(count_dir(bad, "new", NULL, 0), 2);
	assert_int_equal(count_dir(ok, "new", NULL, 0), 2);
	assert_int_equal(spool_held_bytes(sp), 0);
	/* The retried copies, read back from the journal, are the messages. */
	char path[16384];
	snprintf(path, sizeof path, "%snew", bad);
	DIR *dd = opendir(path);
	assert_non_null(dd);
	unsigned seen = 0;
	struct dirent *de;
	while ((de = readdir(dd)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char file[16640];
		snprintf(file, sizeof file, "%s/%s", path, de->d_name);
		size_t got_len;
		char *got = read_file(file, &got_len);
		assert_int_equal(got_len, 100);
		for (unsigned m = 1; m <= 2; m++) {
			char *want = make_msg(100, m);
			if (memcmp(got, want, 100) == 0)
				seen |= 1u << m;
			free(want);
		}
		free(got);
	}
	closedir(dd);
	assert_int_equal(seen, 6u);
	/* Both segments drained while running: the recovered one dropped at
	 * its message's retry. */
	spool_free(&sp);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 0);

	/* 4. The next start finds nothing left; nothing twice. */
	sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	spool_free(&sp);
	assert_int_equal(count_dir(ok, "new", NULL, 0), 2);
	assert_int_equal(count_dir(bad, "new", NULL, 0), 2);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 0);

	loop_free(&l);
	free(ok);
	buf_free(&err);
	rm_tree(root);
	free(root);
}

/* Submits n messages of 100 bytes to box and runs l until all are acked. */
static void
submit_acked(struct spool *sp, struct loop *l, char *box, int n)
{
	l->want += n;
	for (int i = 0; i < n; i++) {
		char qid[24];
		spool_queue_id(qid);
		assert_non_null(spool_submit(sp, l->base, make_msg(100, (unsigned)i), 100,
		    (const char *const *)&box, 1, qid, done_cb, l));
	}
	loop_run(l);
	assert_false(l->timed_out);
	assert_int_equal(l->got, l->want);
	assert_int_equal(l->failed, 0);
}

/* Polls box's new/ until it holds n files; false after 10 s. */
static bool
wait_count(const char *box, int n)
{
	for (int i = 0; i < 1000; i++) {
		if (count_dir(box, "new", NULL, 0) >= n)
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * A journaled message waiting for its retry is read back from its journal
 * record (its content is not kept in memory meanwhile): six messages of
 * different sizes, submitted together so that groups hold several records,
 * fail for a mailbox under a regular file; once it is repaired, the retry
 * delivers each one byte-exact. A wrong record offset or a content kept in
 * memory fails here.
 */
static void
test_journal_retry_reads_back(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	char blocker[8192], bad[8192];
	snprintf(blocker, sizeof blocker, "%s/blocked", root);
	snprintf(bad, sizeof bad, "%s/blocked/x/", root);
	char *box = bad;
	struct buf err = BUF_INIT;
	struct loop l;
	loop_init(&l);
	write_file(blocker, "", 0);
	/* Retries read back at most 300 octets at a time (and one message
	 * always): the six (1,155 octets) never all sit in memory at once. */
	struct spool_opts o = { .base = root, .threads = 2, .hostname = "h",
	    .journal_dir = jdir, .retry_bytes_max = 300 };
	struct spool *sp = spool_new(&o, &err);
	assert_non_null(sp);
	enum { N = 6 };
	l.want = N;
	for (unsigned i = 0; i < N; i++) {
		char qid[24];
		spool_queue_id(qid);
		size_t len = 100 + 37 * i;
		assert_non_null(spool_submit(sp, l.base, make_msg(len, i), len,
		    (const char *const *)&box, 1, qid, done_cb, &l));
	}
	loop_run(&l);
	assert_false(l.timed_out);
	assert_int_equal(l.failed, 0);
	assert_true(wait_pending(sp, N));
	/* Every one has failed once (pending counts them until delivered);
	 * give the last failure a moment to release its content. */
	for (int i = 0; i < 500 && spool_held_bytes(sp) != 0; i++)
		usleep(10000);
	assert_int_equal(spool_held_bytes(sp), 0);
	assert_int_equal(unlink(blocker), 0);
	bool all = false;
	size_t most = 0;
	for (int i = 0; i < 15000 && !all; i++) {       /* 15 s at most */
		size_t held = spool_held_bytes(sp);
		if (held > most)
			most = held;
		all = count_dir(bad, "new", NULL, 0) >= N;
		if (!all)
			usleep(1000);
	}
	assert_true(all);
	assert_true(most > 0);                          /* seen at all */
	if (most > 300 + 285)
		fail_msg("%zu octets of retries held at once", most);
	assert_true(wait_pending(sp, 0));
	char path[8200];
	snprintf(path, sizeof path, "%snew", bad);
	DIR *d = opendir(path);
	assert_non_null(d);
	unsigned seen = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		const char *sz = strstr(e->d_name, ",S=");
		assert_non_null(sz);
		size_t len = strtoul(sz + 3, NULL, 10);
		assert_true(len >= 100 && (len - 100) % 37 == 0);
		unsigned i = (unsigned)((len - 100) / 37);
		assert_true(i < N);
		char file[16384];
		snprintf(file, sizeof file, "%s/%s", path, e->d_name);
		size_t got_len;
		char *got = read_file(file, &got_len);
		char *want = make_msg(len, i);
		assert_int_equal(got_len, len);
		assert_memory_equal(got, want, len);
		free(got);
		free(want);
		seen |= 1u << i;
	}
	closedir(d);
	assert_int_equal(seen, (1u << N) - 1);
	spool_free(&sp);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 0);
	loop_free(&l);
	buf_free(&err);
	rm_tree(root);
	free(root);
}

/*
 * Journal mode's background deliveries linger: acknowledged messages wait
 * (here up to a minute) until 64 have gathered, then go in one group
 * commit; spool_free delivers the rest at once instead of waiting.
 */
static void
test_journal_linger(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	struct buf err = BUF_INIT;
	struct spool *sp = new_lingering_spool(root, jdir, 60000, &err);
	assert_non_null(sp);
	struct loop l;
	loop_init(&l);
	char *box = mailbox(root, "a");

	submit_acked(sp, &l, box, 3);
	usleep(200000);
	assert_true(count_dir(box, "new", NULL, 0) <= 0);   /* lingering (no new/ yet) */
	struct spool_stats st;
	spool_get_stats(sp, &st);
	assert_int_equal(st.batches, 0);
	/* Acknowledged, not in new/ yet: what ehlo_spool_messages_pending shows. */
	assert_int_equal(st.pending, 3);

	submit_acked(sp, &l, box, 61);                            /* 64: a full batch */
	assert_true(wait_count(box, 64));
	/* The batch counts once its directory fsync is done, just after the
	 * files showed up; the jobs are freed right after. */
	for (int i = 0; i < 1000; i++) {
		spool_get_stats(sp, &st);
		if (st.batches > 0 && st.pending == 0)
			break;
		usleep(10000);
	}
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.pending, 0);

	submit_acked(sp, &l, box, 2);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	spool_free(&sp);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 10);
	assert_int_equal(count_dir(box, "new", NULL, 0), 66);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 0);
	loop_free(&l);
	free(box);
	buf_free(&err);
	rm_tree(root);
	free(root);
}

/*
 * A process that dies right after its acknowledgements (nothing in new/
 * yet: the deliveries were lingering) leaves a pre-filled segment: records,
 * then megabytes of zeros. The next start delivers every message once.
 */
/* A child acknowledges 5 messages to box in journal mode and exits
 * before any Maildir copy is made (the linger holds them): a crash. */
static void
crash_after_ack(const char *root, const char *jdir, char *box)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct buf err = BUF_INIT;
		struct spool *sp = new_lingering_spool(root, jdir, 60000, &err);
		if (sp == NULL)
			_exit(2);
		struct loop l;
		loop_init(&l);
		submit_acked(sp, &l, box, 5);
		_exit(count_dir(box, "new", NULL, 0) <= 0 ? 0 : 3);   /* no cleanup */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(file_size(jdir, "journal.1"), SEGMENT_BYTES);
}

/* Plants a partial tmp/ file under every name journal.1 records, as a
 * crash after the copies' create and before their unlink leaves them
 * (their Maildir exists by then). */
static void
plant_tmp_leftovers(const char *root, const char *jdir, const char *box)
{
	char path[8192];
	snprintf(path, sizeof path, "%s/example.test", root);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(mkdir(box, 0700), 0);
	snprintf(path, sizeof path, "%stmp", box);
	assert_int_equal(mkdir(path, 0700), 0);

	snprintf(path, sizeof path, "%s/journal.1", jdir);
	size_t len = 0;
	unsigned char *seg = (unsigned char *)read_file(path, &len);
	size_t off = 0;
	int planted = 0;
	for (;;) {
		struct jrec r;
		long long k = jrec_parse(seg + off, len - off, &r);
		if (k <= 0)
			break;
		off += (size_t)k;
		for (uint32_t i = 0; i < r.nbox; i++) {
			const char *dp, *np;
			size_t dlen, nlen;
			jrec_box(&r, i, &dp, &dlen, &np, &nlen);
			snprintf(path, sizeof path, "%.*s/tmp/%.*s", (int)dlen, dp,
			    (int)nlen, np);
			int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
			assert_true(fd >= 0);
			assert_int_equal(write(fd, "part", 4), 4);
			close(fd);
			planted++;
		}
	}
	free(seg);
	assert_int_equal(planted, 5);
}

/*
 * A child acknowledges 5 messages in journal mode and dies before any
 * Maildir copy is made; a new spool on the same journal must deliver all 5,
 * whole, and drop the segment. With leftovers: the crash came between the
 * copies' create in tmp/ and their unlink, and recovery, delivering under
 * the names the journal recorded, must replace those files, not fail on
 * EEXIST and keep the messages undelivered (seen in e2e_crash when the
 * tmp/ path came back).
 */
static void
journal_crash_and_recover(bool leftovers)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	char *box = mailbox(root, "a");
	crash_after_ack(root, jdir, box);
	if (leftovers)
		plant_tmp_leftovers(root, jdir, box);

	struct buf err = BUF_INIT;
	struct spool *sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	assert_int_equal(count_dir(box, "new", NULL, 0), 5);
	spool_free(&sp);
	assert_int_equal(count_dir(box, "new", NULL, 0), 5);
	assert_int_equal(count_dir(box, "tmp", NULL, 0), 0);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 0);
	/* Whole messages (make_msg(100, i)), not the leftovers. */
	char path[4096];
	snprintf(path, sizeof path, "%snew", box);
	DIR *dir = opendir(path);
	assert_non_null(dir);
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		struct stat st;
		assert_int_equal(fstatat(dirfd(dir), e->d_name, &st, 0), 0);
		assert_int_equal(st.st_size, 100);
	}
	closedir(dir);
	free(box);
	buf_free(&err);
	rm_tree(root);
	free(root);
}

static void
test_journal_crash(void **state)
{
	journal_crash_and_recover(false);
}

static void
test_journal_recovery_replaces_leftover_tmp(void **state)
{
	journal_crash_and_recover(true);
}

/* ---- journal segments ---- */

#define ROT_SEGMENT 8192     /* journal_segment_max for these tests */
#define ROT_MSGS    30
#define ROT_LEN     1000

static struct spool *
new_rotating_spool(const char *root, const char *jdir, unsigned linger_ms)
{
	struct buf err = BUF_INIT;
	struct spool_opts o = { .base = root, .threads = 2, .hostname = "h",
	    .journal_dir = jdir, .linger_ms = linger_ms,
	    .journal_segment_max = ROT_SEGMENT };
	struct spool *sp = spool_new(&o, &err);
	buf_free(&err);
	return sp;
}

/* Acknowledges ROT_MSGS messages (make_msg(ROT_LEN, i)) one at a time, so
 * that each is a group of its own. Returns how many got status 0. No
 * cmocka assertion: a forked child calls it too. */
static int
submit_one_by_one(struct spool *sp, struct loop *l, char *box)
{
	int ok = 0;
	for (int i = 0; i < ROT_MSGS; i++) {
		char qid[24];
		spool_queue_id(qid);
		l->want++;
		if (spool_submit(sp, l->base, make_msg(ROT_LEN, (unsigned)i), ROT_LEN,
		    (const char *const *)&box, 1, qid, done_cb, l) == NULL)
			return ok;
		int failed = l->failed;
		loop_run(l);
		if (l->got == l->want && l->failed == failed)
			ok++;
	}
	return ok;
}

/* Checks that box's new/ holds exactly the ROT_MSGS messages, each once
 * and whole. */
static void
assert_rotated_messages(const char *box)
{
	assert_int_equal(count_dir(box, "new", NULL, 0), ROT_MSGS);
	bool seen[ROT_MSGS] = { false };
	char path[4096];
	snprintf(path, sizeof path, "%snew", box);
	DIR *dir = opendir(path);
	assert_non_null(dir);
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char fp[8192];
		snprintf(fp, sizeof fp, "%s/%s", path, e->d_name);
		size_t len;
		char *got = read_file(fp, &len);
		int which = -1;
		for (int i = 0; i < ROT_MSGS && which < 0; i++) {
			char *m = make_msg(ROT_LEN, (unsigned)i);
			if (len == ROT_LEN && memcmp(got, m, len) == 0)
				which = i;
			free(m);
		}
		free(got);
		if (which < 0)
			fail_msg("%s: not one of the messages sent", fp);
		if (seen[which])
			fail_msg("message %d delivered twice", which);
		seen[which] = true;
	}
	closedir(dir);
}

/*
 * Segment rotation with live messages (8 KiB segments here, 64 MiB in
 * ehlod). A child acknowledges 30 messages of 1 KiB one at a time, each a
 * group of its own, while the linger holds back every Maildir copy: the
 * segments fill and close one after another, and each closed one must stay
 * while a message in it is undelivered. Then the child dies. The next
 * start must deliver all 30, each once and whole, from every segment, and
 * remove the segments; a clean stop then leaves the directory empty.
 */
static void
test_journal_rotation_crash(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	char *box = mailbox(root, "a");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct spool *sp = new_rotating_spool(root, jdir, 60000);
		if (sp == NULL)
			_exit(2);
		struct loop l;
		loop_init(&l);          /* as crash_after_ack's child does */
		if (submit_one_by_one(sp, &l, box) != ROT_MSGS)
			_exit(3);
		if (count_dir(box, "new", NULL, 0) > 0)
			_exit(4);       /* the linger did not hold them */
		/* Rotated at least twice, and no closed segment dropped. */
		_exit(count_dir(jdir, ".", NULL, 0) >= 3 ? 0 : 5);   /* no cleanup */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	struct spool *sp = new_rotating_spool(root, jdir, 0);
	assert_non_null(sp);
	assert_rotated_messages(box);
	/* Only the new current segment is left. */
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 1);
	spool_free(&sp);
	assert_rotated_messages(box);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 0);
	free(box);
	rm_tree(root);
	free(root);
}

/*
 * The same run without a crash: each closed segment is removed once its
 * last message is durable in new/, while the spool runs, and the current
 * one at a clean stop.
 */
static void
test_journal_rotation_drains(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	char *box = mailbox(root, "a");
	struct spool *sp = new_rotating_spool(root, jdir, 1);
	assert_non_null(sp);
	struct loop l;
	loop_init(&l);
	assert_int_equal(submit_one_by_one(sp, &l, box), ROT_MSGS);
	struct spool_stats st;
	spool_get_stats(sp, &st);
	assert_int_equal(st.journal_records, ROT_MSGS);
	assert_true(wait_count(box, ROT_MSGS));
	int segs = -1;
	for (int i = 0; i < 1000; i++) {
		segs = count_dir(jdir, ".", NULL, 0);
		if (segs == 1)
			break;
		usleep(10000);
	}
	assert_int_equal(segs, 1);
	char first[256];
	count_dir(jdir, ".", first, sizeof first);
	/* 30 records of about 1.1 KiB in 8 KiB segments: the fourth or later. */
	unsigned no = 0;
	assert_int_equal(sscanf(first, "journal.%u", &no), 1);
	assert_true(no >= 4);
	spool_free(&sp);
	assert_rotated_messages(box);
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 0);
	loop_free(&l);
	free(box);
	rm_tree(root);
	free(root);
}

/* ---- leftovers in tmp/ ---- */

/* maildir_tmp_stale: the age rule (all of atime, mtime and ctime at least
 * 36 hours old) and the file types it applies to. */
static void
test_tmp_stale_table(void **state)
{
	const time_t now = 2000000000;
	const time_t age = MAILDIR_TMP_STALE_SEC;
	static const struct {
		mode_t type;
		long long a, m, c;   /* seconds before now */
		bool stale;
	} t[] = {
		{ S_IFREG, 36 * 3600, 36 * 3600, 36 * 3600, true },   /* exactly */
		{ S_IFREG, 100 * 86400, 100 * 86400, 100 * 86400, true },
		{ S_IFREG, 36 * 3600 - 1, 36 * 3600, 36 * 3600, false },
		{ S_IFREG, 36 * 3600, 36 * 3600 - 1, 36 * 3600, false },
		{ S_IFREG, 36 * 3600, 36 * 3600, 36 * 3600 - 1, false },
		{ S_IFREG, 10, 99 * 3600, 99 * 3600, false },  /* read lately */
		{ S_IFREG, 99 * 3600, 10, 99 * 3600, false },  /* being written */
		{ S_IFREG, 99 * 3600, 99 * 3600, 10, false },  /* just linked */
		{ S_IFREG, -3600, -3600, -3600, false },       /* in the future */
		{ S_IFDIR, 99 * 3600, 99 * 3600, 99 * 3600, false },
		{ S_IFLNK, 99 * 3600, 99 * 3600, 99 * 3600, false },
		{ S_IFIFO, 99 * 3600, 99 * 3600, 99 * 3600, false },
		{ S_IFSOCK, 99 * 3600, 99 * 3600, 99 * 3600, false },
	};
	assert_int_equal(age, 36 * 3600);
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct stat st;
		memset(&st, 0, sizeof st);
		st.st_mode = t[i].type | 0600;
		st.st_atime = now - (time_t)t[i].a;
		st.st_mtime = now - (time_t)t[i].m;
		st.st_ctime = now - (time_t)t[i].c;
		if (maildir_tmp_stale(&st, now) != t[i].stale)
			fail_msg("row %zu: expected %s", i,
			    t[i].stale ? "stale" : "kept");
	}
	/* A clock before 1970 + 36 h judges nothing stale (no overflow). */
	struct stat st;
	memset(&st, 0, sizeof st);
	st.st_mode = S_IFREG | 0600;
	assert_false(maildir_tmp_stale(&st, 0));
	assert_false(maildir_tmp_stale(&st, (time_t)MAILDIR_TMP_STALE_SEC - 1));
	assert_true(maildir_tmp_stale(&st, (time_t)MAILDIR_TMP_STALE_SEC));
}

/* The spool's clock in test_tmp_leftovers_swept: real time plus this. */
static time_t clock_ahead;

static time_t
clock_ahead_fn(void)
{
	return time(NULL) + clock_ahead;
}

static bool
exists_in(const char *dir, const char *sub, const char *name)
{
	char path[4096];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
	return lstat(path, &st) == 0;
}

/* One message of text into box, waited for; it must succeed. */
static void
deliver_one(struct spool *sp, struct loop *l, char *box, const char *text)
{
	l->want = l->got + 1;
	spool_submit(sp, l->base, xstrdup(text), strlen(text),
	    (const char *const *)&box, 1, NULL, done_cb, l);
	loop_run(l);
	assert_int_equal(l->got, l->want);
	assert_int_equal(l->last_status, 0);
}

/* The first delivery into a Maildir removes the leftovers in its tmp/ and
 * keeps everything else; deliveries in the next 8 hours do not list tmp/
 * again, the first one after them does. */
static void
test_tmp_leftovers_swept(void **state)
{
	char *root = make_root();
	char *box = mailbox(root, "left");
	char path[4096];

	/* A Maildir that a crashed run left behind. */
	snprintf(path, sizeof path, "%s/example.test", root);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(mkdir(box, 0700), 0);
	static const char *const sub[] = { "tmp", "new", "cur" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", box, sub[i]);
		assert_int_equal(mkdir(path, 0700), 0);
	}
	/* old: a delivery killed before its link. */
	snprintf(path, sizeof path, "%s/tmp/old", box);
	write_file(path, "half a mess", 11);
	/* linked: killed between link and unlink; the message in new/ is the
	 * same file and must stay. */
	snprintf(path, sizeof path, "%s/tmp/linked", box);
	write_file(path, "whole\n", 6);
	char newpath[4096];
	snprintf(newpath, sizeof newpath, "%s/new/linked,S=6", box);
	assert_int_equal(link(path, newpath), 0);
	/* young: accessed and modified 20 h after "now": 17 h old at the
	 * spool's first sweep and 26 h at its second, so never a leftover. */
	snprintf(path, sizeof path, "%s/tmp/young", box);
	write_file(path, "y", 1);
	struct timespec ts[2] = { { time(NULL) + 20 * 3600, 0 },
	    { time(NULL) + 20 * 3600, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	/* sub: a directory is not ours to remove, however old. */
	snprintf(path, sizeof path, "%s/tmp/sub", box);
	assert_int_equal(mkdir(path, 0700), 0);
	/* link: a symbolic link that someone with access to the Maildir
	 * pointed at an old file elsewhere. It is judged as what it is (a
	 * link, not ours), never by its target, and the target is never
	 * touched. */
	char outside[4096];
	snprintf(outside, sizeof outside, "%s/outside", root);
	write_file(outside, "keep me", 7);
	snprintf(path, sizeof path, "%s/tmp/link", box);
	assert_int_equal(symlink(outside, path), 0);

	struct buf err = BUF_INIT;
	/* 37 hours ahead: every file made now without a time of its own is
	 * a leftover. */
	clock_ahead = 37 * 3600;
	struct spool_opts o = { .base = root, .threads = 1, .hostname = "h",
	    .clock = clock_ahead_fn };
	struct spool *sp = spool_new(&o, &err);
	if (sp == NULL)
		fail_msg("spool_new: %s", buf_cstr(&err));
	buf_free(&err);
	struct loop l;
	loop_init(&l);

	deliver_one(sp, &l, box, "a\n");

	assert_false(exists_in(box, "tmp", "old"));
	assert_false(exists_in(box, "tmp", "linked"));
	assert_true(exists_in(box, "tmp", "young"));
	assert_true(exists_in(box, "tmp", "sub"));
	assert_true(exists_in(box, "tmp", "link"));
	assert_int_equal(access(outside, F_OK), 0);
	assert_int_equal(count_dir(box, "tmp", NULL, 0), 3);
	assert_int_equal(count_dir(box, "new", NULL, 0), 2);
	size_t len;
	char *got = read_file(newpath, &len);
	assert_int_equal(len, 6);
	assert_memory_equal(got, "whole\n", 6);
	free(got);
	struct stat st;
	assert_int_equal(stat(newpath, &st), 0);
	assert_int_equal(st.st_nlink, 1);

	struct spool_stats ss;
	spool_get_stats(sp, &ss);
	assert_int_equal(ss.tmp_removed, 2);

	/* A leftover that turns up now stays while the last sweep is less
	 * than 8 hours old: no listing of tmp/ per delivery. */
	snprintf(path, sizeof path, "%s/tmp/old2", box);
	write_file(path, "z", 1);
	clock_ahead += MAILDIR_TMP_SWEEP_EVERY_SEC - 60;
	deliver_one(sp, &l, box, "b\n");
	assert_true(exists_in(box, "tmp", "old2"));
	spool_get_stats(sp, &ss);
	assert_int_equal(ss.tmp_removed, 2);

	/* 8 hours after the last sweep, the next delivery sweeps again. */
	clock_ahead += 60;
	deliver_one(sp, &l, box, "c\n");
	assert_false(exists_in(box, "tmp", "old2"));
	assert_true(exists_in(box, "tmp", "young"));
	assert_true(exists_in(box, "tmp", "sub"));
	spool_get_stats(sp, &ss);
	assert_int_equal(ss.tmp_removed, 3);
	spool_free(&sp);

	/* The next start (real clock): a leftover from just now is kept. */
	snprintf(path, sizeof path, "%s/tmp/new1", box);
	write_file(path, "n", 1);
	sp = new_spool(root, 1, "h");
	deliver_one(sp, &l, box, "d\n");
	assert_int_equal(count_dir(box, "tmp", NULL, 0), 4);
	assert_int_equal(count_dir(box, "new", NULL, 0), 5);
	assert_int_equal(access(outside, F_OK), 0);
	spool_get_stats(sp, &ss);
	assert_int_equal(ss.tmp_removed, 0);

	spool_free(&sp);
	loop_free(&l);
	free(box);
	rm_tree(root);
	free(root);
}

/*
 * The journal directory removed while the spool runs: the next message
 * gets a failure (451), not a 250 resting on a file no restart can find;
 * once the directory is back, a new segment starts there and messages
 * are acknowledged again. Before, 250s went on into the deleted segment.
 */
static void
test_journal_directory_removed(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	char *box = mailbox(root, "v");
	struct buf err = BUF_INIT;
	struct spool *sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	struct loop l;
	loop_init(&l);
	submit_acked(sp, &l, box, 1);
	assert_int_equal(l.failed, 0);
	assert_true(wait_count(box, 1));

	rm_tree(jdir);
	l.want++;
	char qid[24];
	spool_queue_id(qid);
	assert_non_null(spool_submit(sp, l.base, make_msg(100, 7), 100,
	    (const char *const *)&box, 1, qid, done_cb, &l));
	loop_run(&l);
	assert_int_equal(l.failed, 1);

	assert_int_equal(mkdir(jdir, 0700), 0);
	l.want++;
	spool_queue_id(qid);
	/* (This one also makes the spool start its new segment.) */
	assert_non_null(spool_submit(sp, l.base, make_msg(100, 8), 100,
	    (const char *const *)&box, 1, qid, done_cb, &l));
	loop_run(&l);
	assert_int_equal(l.failed, 1);                  /* no new failure */
	assert_int_equal(count_dir(jdir, ".", NULL, 0), 1);     /* a new segment */
	assert_true(wait_count(box, 2));
	spool_free(&sp);
	loop_free(&l);
	free(box);
	buf_free(&err);
	rm_tree(root);
	free(root);
}

/*
 * A message waiting for its retry in a segment that is then removed (the
 * journal directory removed and made again) is still delivered while the
 * process runs: the retry reads it back through the segment's descriptor.
 * It was read back by name, failed with ENOENT every 10 s, and was lost.
 */
static void
test_journal_retry_from_removed_segment(void **state)
{
	char jdir[4096];
	char *root = make_journal_root(jdir);
	char blocker[8192], bad[8192];
	snprintf(blocker, sizeof blocker, "%s/blocked", root);
	snprintf(bad, sizeof bad, "%s/blocked/x/", root);
	char *box = bad;
	write_file(blocker, "", 0);
	struct buf err = BUF_INIT;
	struct spool *sp = new_journal_spool(root, jdir, &err);
	assert_non_null(sp);
	struct loop l;
	loop_init(&l);
	submit_acked(sp, &l, box, 1);
	for (int i = 0; i < 500 && spool_held_bytes(sp) != 0; i++)
		usleep(10000);                  /* failed once, waiting */
	rm_tree(jdir);
	assert_int_equal(mkdir(jdir, 0700), 0);
	assert_int_equal(unlink(blocker), 0);
	bool done = false;
	for (int i = 0; i < 1500 && !done; i++) {       /* 15 s at most */
		done = count_dir(bad, "new", NULL, 0) == 1;
		if (!done)
			usleep(10000);
	}
	assert_true(done);
	assert_true(wait_pending(sp, 0));
	char name[512], path[16384];
	assert_int_equal(count_dir(bad, "new", name, sizeof name), 1);
	snprintf(path, sizeof path, "%snew/%s", bad, name);
	size_t got_len;
	char *got = read_file(path, &got_len);
	char *want = make_msg(100, 0);
	assert_int_equal(got_len, 100);
	assert_memory_equal(got, want, 100);
	free(got);
	free(want);
	spool_free(&sp);
	loop_free(&l);
	buf_free(&err);
	rm_tree(root);
	free(root);
}

int
main(void)
{
	evthread_use_pthreads();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deliver_several),
		cmocka_unit_test(test_empty_message),
		cmocka_unit_test(test_stalled_commit_gets_help),
		cmocka_unit_test(test_all_or_nothing_create),
		cmocka_unit_test(test_all_or_nothing_tmp),
		cmocka_unit_test(test_all_or_nothing_link),
		cmocka_unit_test(test_maildir_recreated),
		cmocka_unit_test(test_two_bases),
		cmocka_unit_test(test_abandon),
		cmocka_unit_test(test_free_finishes_queue),
		cmocka_unit_test(test_new_errors),
		cmocka_unit_test(test_queue_ids),
		cmocka_unit_test(test_journal_submit),
		cmocka_unit_test(test_journal_recovery),
		cmocka_unit_test(test_journal_recovery_damage_in_the_middle),
		cmocka_unit_test(test_journal_recovery_busy_mailbox),
		cmocka_unit_test(test_journal_keeps_undeliverable),
		cmocka_unit_test(test_journal_current_segment_kept_on_stop),
		cmocka_unit_test(test_journal_copies_on_their_own),
		cmocka_unit_test(test_journal_retry_reads_back),
		cmocka_unit_test(test_tmp_link_not_swept),
		cmocka_unit_test(test_journal_directory_removed),
		cmocka_unit_test(test_journal_retry_from_removed_segment),
		cmocka_unit_test(test_journal_linger),
		cmocka_unit_test(test_journal_crash),
		cmocka_unit_test(test_journal_recovery_replaces_leftover_tmp),
		cmocka_unit_test(test_journal_rotation_crash),
		cmocka_unit_test(test_journal_rotation_drains),
		cmocka_unit_test(test_tmp_stale_table),
		cmocka_unit_test(test_tmp_leftovers_swept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
