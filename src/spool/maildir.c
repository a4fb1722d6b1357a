/*
 * The Maildir writer: one group commit for a batch of jobs.
 *
 * Phases, each over the whole batch:
 *   1. write   create tmp/<u> O_EXCL in each job's Maildirs, write the
 *              message, and start write-back (sync_file_range) at once so
 *              the disk works on every file while we open the next;
 *   2. sync    fdatasync every tmp file: its data and its inode, which
 *              already has its final link count of 1;
 *   3. link    link tmp/<u> -> new/<u>,S=<size> for jobs whose copies all
 *              synced; a job failing here has its links removed again;
 *   4. unlink  drop every tmp name;
 *   5. commit  fsync each distinct new/ directory once for the batch.
 * A job reports 0 only after phase 5 covered every one of its copies.
 *
 * Why a tmp/ name and not an unnamed O_TMPFILE inode linked into new/: on
 * a file system that does not order its metadata writes (ext4 without a
 * journal, ext2) the O_TMPFILE inode reaches the disk in phase 2 with a
 * link count of 0, and the link's update of that count is written by
 * neither the file's fdatasync (it came before) nor new/'s fsync (another
 * inode). After a power cut e2fsck takes such an inode for a deleted one
 * and clears its name from new/: acknowledged mail lost (reproduced by
 * tests/e2e/test_powerloss.py). A file created under tmp/ is written in
 * phase 2 with the count it keeps: link to new/ and unlink from tmp/ leave
 * it at 1. At worst a cut leaves both names, which e2fsck counts right.
 *
 * Why link() and not rename(): link refuses to overwrite an existing name,
 * so a unique-name collision fails loudly instead of replacing mail.
 * Why all copies are synced before any link: the all-or-nothing rule; a
 * failed copy must leave no message visible in any new/. That rule is for
 * the default mode, where the failure becomes a 451 and the client sends
 * the whole message again. A job with copy_status (journal mode, already
 * acknowledged) has no client to retry it: each copy is linked as soon as
 * it is durable in tmp/ and fails or succeeds alone, so one broken Maildir
 * does not hold back the others (docs/spool.md, "Each copy on its own").
 */
#include "spool/spool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

/*
 * Tmp files kept open between phase 1 and 2. A batch with more copies than
 * this syncs what it has early, trading a little speed for staying far from
 * RLIMIT_NOFILE however many recipients a message has.
 */
#define OPEN_FDS_MAX 256

struct copy {
	struct delivery *job;
	const char      *dir;       /* the Maildir, owned by the job */
	const char      *name;      /* preset name under new/, or NULL */
	char            *tmp;       /* <dir>/tmp/<u> */
	char            *new;       /* <dir>/new/<u>,S=<len> */
	int             *st;        /* what a failure of this copy fails: the
	                               job's status (all or nothing) or the
	                               copy's own (copy_status) */
	int              fd;        /* open until synced, else -1 */
	bool             made;      /* tmp exists and is ours */
	bool             linked;    /* new exists and is ours */
	bool             synced;    /* made durable by bulk_sync */
};

static void
log_fail(const struct delivery *job, const char *what, const char *path,
    int e)
{
	struct buf safe = BUF_INIT;
	char ebuf[128];

	log_warn("%s: spool: %s %s failed: %s", job->qid, what,
	    log_sanitize(&safe, path, strlen(path), 512),
	    strerror_r(e, ebuf, sizeof ebuf));
	buf_free(&safe);
}

static void
fail(int *st, int e)
{
	if (*st == 0)
		*st = e != 0 ? e : EIO;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (w == 0)
			return EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

char *
maildir_new_name(struct deliverer *d, size_t len)
{
	struct timespec ts;
	unsigned long long q = atomic_fetch_add(&d->seq, 1) + 1;

	clock_gettime(CLOCK_REALTIME, &ts);
	/* <sec>.M<usec>P<pid>Q<seq>.<host>: unique by pid + per-process
	 * sequence, so two copies of one job in one Maildir cannot collide. */
	return xasprintf("%lld.M%ldP%ldQ%llu.%s,S=%zu", (long long)ts.tv_sec,
	    ts.tv_nsec / 1000, d->pid, q, d->host, len);
}

static void
name_copy(struct deliverer *d, struct copy *c)
{
	char *made = NULL;
	const char *name = c->name;
	if (name == NULL)
		name = made = maildir_new_name(d, c->job->len);
	c->tmp = xasprintf("%s/tmp/%s", c->dir, name);
	c->new = xasprintf("%s/new/%s", c->dir, name);
	free(made);
}

static int
open_tmp(struct deliverer *d, struct copy *c, bool start_writeback)
{
	int e = dircache_ensure(&d->cache, c->dir);
	if (e != 0) {
		log_fail(c->job, "maildir", c->dir, e);
		return e;
	}
	name_copy(d, c);
	for (int attempt = 0;; attempt++) {
		c->fd = open(c->tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
		    0600);
		if (c->fd >= 0)
			break;
		e = errno;
		/* The Maildir vanished since we cached it: recreate once. */
		if (e == ENOENT && attempt == 0) {
			dircache_forget(&d->cache, c->dir);
			if (dircache_ensure(&d->cache, c->dir) == 0)
				continue;
		}
		/* A preset name (journal mode, and recovery) is this copy's own:
		 * a tmp/ file under it is what an earlier attempt left when the
		 * process died between create and unlink. Replace it once. A
		 * fresh name that exists is a collision: fail loudly. */
		if (e == EEXIST && c->name != NULL && attempt == 0 &&
		    unlink(c->tmp) == 0)
			continue;
		log_fail(c->job, "create", c->tmp, e);
		return e;
	}
	c->made = true;
	e = write_all(c->fd, c->job->content, c->job->len);
	if (e != 0) {
		log_fail(c->job, "write", c->tmp, e);
		return e;
	}
#ifdef SYNC_FILE_RANGE_WRITE
	/* Start write-back now, without waiting: the fdatasync in phase 2
	 * then finds the data of the whole batch already on its way. With a
	 * single file the fdatasync follows at once: nothing to overlap. */
	if (start_writeback)
		(void)sync_file_range(c->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
	atomic_fetch_add_explicit(&d->bytes, c->job->len, memory_order_relaxed);
	return 0;
}

/*
 * Phase 2 for copies [0, n): fdatasync every still-open tmp file and close
 * it. The links of phase 3 come after all of them: a link changes the
 * file's inode (link count, ctime), which shares an inode-table block with
 * its neighbours, so a link between two fdatasyncs would dirty that block
 * again and the next fdatasync would write it once more.
 */
static void
sync_open(struct copy *cp, size_t n, size_t *nopen)
{
	for (size_t i = 0; i < n; i++) {
		struct copy *c = &cp[i];
		if (c->fd < 0)
			continue;
		if (*c->st == 0 && !c->synced && fdatasync(c->fd) != 0) {
			int e = errno;
			log_fail(c->job, "fdatasync", c->tmp, e);
			fail(c->st, e);
		}
		if (close(c->fd) != 0 && *c->st == 0) {
			/* close may report a deferred write error (NFS). */
			int e = errno;
			if (e != EINTR) {
				log_fail(c->job, "close", c->tmp, e);
				fail(c->st, e);
			}
		}
		c->fd = -1;
		(*nopen)--;
	}
}

/*
 * Bulk mode, phase 2 for a whole batch at once: one syncfs() per file
 * system makes the data and inodes of every file on it durable with one
 * device flush, where an fdatasync per file costs a flush each. The copies
 * on a file system whose sync succeeded are then marked synced (sync_open
 * skips their fdatasync); every other copy keeps its own fdatasync. syncfs
 * reports write-back errors of the file system since this descriptor was
 * opened (Linux >= 5.8); on an error the copies there fall back to their
 * own fdatasync, which reports its own.
 *
 * Per file system, because syncfs writes back one file system only: the
 * Maildirs of one batch can sit on several (a mailbox or a domain mounted
 * or bound elsewhere). Marking every copy synced after a syncfs of the
 * first copy's file system left the copies on the others in the page cache
 * when their names were linked and the journal record released: a power
 * cut then kept their names over empty files, acknowledged mail lost.
 */
static void
bulk_sync(struct copy *cp, size_t n)
{
	dev_t *dev = xcalloc(n, sizeof *dev);
	bool *done = xcalloc(n, sizeof *done);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (cp[i].fd < 0 || *cp[i].st != 0 || fstat(cp[i].fd, &st) != 0)
			done[i] = true;         /* left to sync_open */
		else
			dev[i] = st.st_dev;
	}
	for (size_t i = 0; i < n; i++) {
		if (done[i])
			continue;
		/*
		 * syncfs alone does not order the batch's inodes before the
		 * links that follow. On ext4 without a journal,
		 * sync_filesystem() issues its one device flush (ext4_sync_fs)
		 * before its last sync_blockdev(), which writes the inode-table
		 * and bitmap blocks that the data write-back dirtied (block
		 * allocation, unwritten-extent conversion): those end the call
		 * in the device's volatile cache (seen with perf's
		 * block:block_rq_issue: WM writes after the FF, no flush after
		 * them). The links made next could then reach the disk before
		 * those blocks, and a crash keep a name in new/ for a file
		 * whose inode still says it is empty: a partial message. The
		 * fdatasync, on a file of the same file system, issues the
		 * missing flush (ext4 and XFS flush on every fdatasync; with
		 * nothing dirty left it costs only that flush, once per file
		 * system and batch).
		 */
		bool ok = syncfs(cp[i].fd) == 0 && fdatasync(cp[i].fd) == 0;
		for (size_t m = i; m < n; m++) {
			if (done[m] || dev[m] != dev[i])
				continue;
			done[m] = true;
			cp[m].synced = ok;
		}
	}
	free(dev);
	free(done);
}

static int
cmp_dir(const void *a, const void *b)
{
	const struct copy *const *x = a, *const *y = b;
	return strcmp((*x)->dir, (*y)->dir);
}

/* Rolls back the links of every copy that failed: in all-or-nothing
 * jobs, every copy of a job with a failure. */
static void
unlink_failed(struct copy *cp, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (*cp[i].st == 0 || !cp[i].linked)
			continue;
		if (unlink(cp[i].new) != 0)
			log_fail(cp[i].job, "rollback unlink", cp[i].new,
			    errno);
		cp[i].linked = false;
	}
}

/* Phase 5: one fsync per distinct new/ directory. */
static void
commit_dirs(struct copy *cp, size_t n)
{
	struct copy **v = xcalloc(n, sizeof *v);
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (cp[i].linked)
			v[k++] = &cp[i];
	qsort(v, k, sizeof *v, cmp_dir);

	struct buf p = BUF_INIT;
	for (size_t i = 0; i < k;) {
		size_t j = i + 1;
		while (j < k && strcmp(v[j]->dir, v[i]->dir) == 0)
			j++;
		buf_reset(&p);
		buf_appendf(&p, "%s/new", v[i]->dir);
		int e = 0;
		int fd = open(p.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			e = errno;
		else {
			if (fsync(fd) != 0)
				e = errno;
			close(fd);
		}
		if (e != 0) {
			/* Every job with a copy here is now uncertain: fail
			 * it; its links are removed below. */
			log_fail(v[i]->job, "fsync", p.data, e);
			for (size_t m = i; m < j; m++)
				fail(v[m]->st, e);
		}
		i = j;
	}
	buf_free(&p);
	free(v);
}

/*
 * Phase 3 for one copy. A new/ that went away since the Maildir was
 * cached (removed by hand, by a broken client) is made again, once: before,
 * every later delivery there failed with ENOENT until a restart, since
 * only a missing tmp/ (at create) dropped the cache entry. The file is
 * durable in tmp/ already; recreating the directories fsyncs them and their
 * parents, and phase 5 fsyncs new/ as for any link.
 */
static int
link_new(struct deliverer *d, struct copy *c)
{
	if (link(c->tmp, c->new) == 0)
		return 0;
	/*
	 * A preset name (journal mode, and recovery) is this copy's own: if
	 * it is in new/ already, an earlier attempt linked it, over data that
	 * attempt had synced first, and then failed later (the fsync of new/,
	 * say) without its rollback unlink succeeding. That file is the
	 * message: count it as linked, and phase 5's fsync of new/ makes the
	 * name durable, as recovery's in_new() would take it. Failing here
	 * instead retried the copy for ever, every attempt on EEXIST. A
	 * fresh name that exists is a collision, and fails.
	 */
	if (errno == EEXIST && c->name != NULL)
		return 0;
	if (errno != ENOENT)
		return -1;
	dircache_forget(&d->cache, c->dir);
	int e = dircache_ensure(&d->cache, c->dir);
	if (e != 0) {
		errno = e;
		return -1;
	}
	return link(c->tmp, c->new);
}

void
deliver_batch(struct deliverer *d, struct delivery **jobs, size_t njobs)
{
	size_t n = 0;

	for (size_t j = 0; j < njobs; j++) {
		jobs[j]->status = 0;
		if (jobs[j]->copy_status != NULL)
			for (size_t m = 0; m < jobs[j]->n; m++)
				jobs[j]->copy_status[m] = 0;
		if (jobs[j]->n > SIZE_MAX / sizeof(struct copy) - n)
			abort();
		n += jobs[j]->n;
	}
	struct copy *cp = xcalloc(n ? n : 1, sizeof *cp);
	size_t k = 0;
	for (size_t j = 0; j < njobs; j++)
		for (size_t m = 0; m < jobs[j]->n; m++, k++) {
			cp[k].job = jobs[j];
			cp[k].dir = jobs[j]->mailboxes[m];
			cp[k].name = jobs[j]->names ? jobs[j]->names[m] : NULL;
			cp[k].st = jobs[j]->copy_status ? &jobs[j]->copy_status[m]
			    : &jobs[j]->status;
			cp[k].fd = -1;
		}

	/* 1. write (and 2. sync early whenever too many files are open) */
	size_t nopen = 0;
	for (size_t i = 0; i < n; i++) {
		if (*cp[i].st != 0)
			continue;
		/* Bulk mode: syncfs writes the batch back in one go, with
		 * the block layer merging adjacent files; starting each file
		 * on its own would only split that into small requests. */
		int e = open_tmp(d, &cp[i], n > 1 && !d->bulk);
		if (cp[i].fd >= 0)
			nopen++;
		if (e != 0)
			fail(cp[i].st, e);
		if (nopen >= OPEN_FDS_MAX)
			sync_open(cp, i + 1, &nopen);
	}
	/* 2. sync */
	if (d->bulk && nopen > 1 && nopen == n)
		bulk_sync(cp, n);
	sync_open(cp, n, &nopen);

	/* 3. link, only jobs whose every copy is durable in tmp/ (only the
	 *    copies durable in tmp/, for copy_status jobs) */
	for (size_t i = 0; i < n; i++) {
		if (*cp[i].st != 0)
			continue;
		if (link_new(d, &cp[i]) != 0) {
			int e = errno;
			log_fail(cp[i].job, "link", cp[i].new, e);
			fail(cp[i].st, e);
			continue;
		}
		cp[i].linked = true;
	}
	unlink_failed(cp, n);

	/* 4. unlink tmp names (a leftover would only cost disk space: readers
	 *    ignore tmp/, and dircache.c's sweep removes it once 36 hours
	 *    old) */
	for (size_t i = 0; i < n; i++)
		if (cp[i].made && unlink(cp[i].tmp) != 0)
			log_fail(cp[i].job, "unlink", cp[i].tmp, errno);

	/* 5. commit */
	commit_dirs(cp, n);
	unlink_failed(cp, n);
	for (size_t j = 0; j < njobs; j++)
		if (jobs[j]->copy_status != NULL)
			for (size_t m = 0; m < jobs[j]->n && jobs[j]->status == 0; m++)
				jobs[j]->status = jobs[j]->copy_status[m];

	uint64_t ok_copies = 0;
	for (size_t i = 0; i < n; i++) {
		if (cp[i].linked)
			ok_copies++;
		free(cp[i].tmp);
		free(cp[i].new);
	}
	/* A failed all-or-nothing job becomes a 4xx; a failed copy_status
	 * job was acknowledged already and is retried, once per attempt. */
	for (size_t j = 0; j < njobs; j++)
		atomic_fetch_add_explicit(jobs[j]->status == 0 ? &d->jobs_ok :
		    jobs[j]->copy_status == NULL ? &d->jobs_failed : &d->bg_failed, 1,
		    memory_order_relaxed);
	atomic_fetch_add_explicit(&d->copies, ok_copies, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->batches, 1, memory_order_relaxed);
	free(cp);
}
