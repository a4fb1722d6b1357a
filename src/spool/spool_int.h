/*
 * Internals shared by the spool's files (not part of the public API):
 * the Maildir writer (maildir.c) and the thread/completion machinery
 * (spool.c) meet here.
 */
#ifndef EHLO_SPOOL_INT_H
#define EHLO_SPOOL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/buf.h"

/* A known Maildir and when its tmp/ was last swept (dircache.c). */
struct dc_ent;

/* Set of Maildirs known to exist with tmp/, new/ and cur/ (dircache.c). */
struct dircache {
	pthread_mutex_t  mu;        /* guards the table */
	pthread_mutex_t  create_mu; /* serialises creation and sweeps (rare) */
	struct dc_ent  **slot;      /* open addressing, NULL = empty */
	size_t           cap;       /* power of two */
	size_t           used;
	time_t         (*clock)(void);  /* judges tmp/ leftovers; NULL = time() */
	atomic_uint_fast64_t tmp_removed; /* leftovers removed from tmp/ */
};

void dircache_init(struct dircache *c);
void dircache_destroy(struct dircache *c);

/*
 * Makes sure dir is a Maildir (dir, dir/tmp, dir/new, dir/cur, mode 0700,
 * parents created as needed and each creation made durable by fsyncing the
 * parent directory). Cached: the file system is only consulted the first
 * time. Returns 0 or an errno value (ENOTDIR when a file is in the way).
 */
int  dircache_ensure(struct dircache *c, const char *dir);
/* Forgets dir, e.g. after an ENOENT showed it was removed under us. */
void dircache_forget(struct dircache *c, const char *dir);

/*
 * Leftovers in a Maildir's tmp/. A delivery that dies between creating its
 * tmp/ file and unlinking it (kill -9, a crash, a power cut) leaves the file
 * behind for ever: readers never look at tmp/. maildir(5) says to delete a
 * file in tmp/ that has not been accessed for 36 hours; Dovecot uses the same
 * age. dircache_ensure() sweeps a Maildir's tmp/ the first time this process
 * uses the Maildir, and again when it is used MAILDIR_TMP_SWEEP_EVERY_SEC or
 * more after its last sweep: the leftovers of the crash before this start
 * are younger than 36 hours at the first sweep, and a daemon runs for weeks.
 * Each sweep costs one listing of a directory that is nearly always empty.
 */
#define MAILDIR_TMP_STALE_SEC       (36 * 60 * 60)
#define MAILDIR_TMP_SWEEP_EVERY_SEC (8 * 60 * 60)

/*
 * Whether st, found in a tmp/, is a leftover to remove at time now: a
 * regular file whose access, modification and change times are all at least
 * MAILDIR_TMP_STALE_SEC old. A writer still busy with a file keeps its
 * mtime fresh; a file a reader looks at keeps its atime fresh; ctime covers
 * a file just linked or renamed into place. Anything else (directories,
 * sockets, symbolic links) is not ours to delete. Pure.
 */
bool maildir_tmp_stale(const struct stat *st, time_t now);

/*
 * Removes every leftover (maildir_tmp_stale at now) from the directory
 * tmpdir and returns how many; entries that vanish meanwhile or cannot be
 * removed are skipped. Errors other than a missing directory are logged.
 * A tmp/ name whose file was already linked into new/ (a crash between the
 * link and the unlink) only loses that name: the message in new/ stays.
 */
size_t maildir_sweep_tmp(const char *tmpdir, time_t now);

/* What the Maildir writer needs to know about one job. */
struct delivery {
	const char  *content;
	size_t       len;
	char *const *mailboxes;     /* n paths without trailing '/' */
	char *const *names;         /* n file names under new/, or NULL: made
	                               up at delivery (maildir_new_name) */
	size_t       n;
	const char  *qid;           /* for log lines; never NULL */
	int          status;        /* out: 0 or errno (the first failure) */
	/*
	 * NULL: all or nothing (the default mode, before its 250: a failed
	 * copy leaves no copy in any new/, and the client retries the whole
	 * message). Otherwise n entries, out: 0 or errno for each copy, each
	 * delivered on its own (journal mode, after the 250: one broken
	 * Maildir must not hold back the others).
	 */
	int         *copy_status;
};

struct deliverer {
	struct dircache  cache;
	char            *host;      /* hostname escaped for unique names */
	long             pid;
	atomic_uint_fast64_t seq;   /* Q<seq> in unique names */
	atomic_uint_fast64_t jobs_ok, jobs_failed, copies, batches, bytes;
	/* Attempts of jobs delivered copy by copy (journal mode, after the
	 * 250, and recovery) that failed for some copy; retried. Not in
	 * jobs_failed, which counts messages refused with 4xx. */
	atomic_uint_fast64_t bg_failed;
	bool             bulk;      /* background delivery (journal mode): one
	                               syncfs per batch instead of a flush per file */
};

/*
 * Delivers a batch of jobs with group commit; sets each job's status (and
 * each copy's, for a job with copy_status). Jobs are independent: one
 * failing never affects another.
 */
void deliver_batch(struct deliverer *d, struct delivery **jobs, size_t njobs);

/*
 * A fresh Maildir file name for new/: <sec>.M<usec>P<pid>Q<seq>.<host>,S=<len>.
 * Unique within the process (seq) and across processes (pid, time).
 */
char *maildir_new_name(struct deliverer *d, size_t len);

/* The write-ahead journal (journal.c). */
struct journal;
/*
 * A message that recovery could not deliver to every Maildir: its queue id,
 * the n copies still missing (dirs[i], names[i]; the arrays and strings
 * pass to the callee), and where its record is (segment segno, offset off,
 * content length len) for journal_read_content. True if the callee took it
 * (it then calls journal_release(segno) once they are delivered); false
 * leaves the segment for the next start, and the callee frees nothing.
 */
typedef bool journal_kept_fn(void *arg, const char *qid, char **dirs, char **names,
    size_t n, unsigned segno, uint64_t off, size_t len);
/*
 * segmax: a segment's length (0: JOURNAL_SEGMENT_MAX, 64 MiB). Recovers the
 * segments of an earlier run first, handing what it cannot deliver to
 * kept_fn (NULL: keep it for the next start). base (the Maildir tree's
 * root, or NULL) bounds the mailboxes of records found past damage.
 */
struct journal *journal_open(const char *dir, size_t segmax, const char *base,
    struct deliverer *dl, journal_kept_fn *kept_fn, void *kept_arg, struct buf *err);
uint64_t journal_next_seq(struct journal *j);
/* *segno and *at: the segment and offset the group's first record went to. */
int  journal_append(struct journal *j, const struct buf *records, size_t nmsg,
    unsigned *segno, uint64_t *at);
/*
 * Reads back the content of the message record at offset off of segment
 * segno, which journal_append wrote for queue id qid with len octets of
 * content: into a fresh *content (the caller frees it). 0, or an errno
 * value (EIO for a record that does not parse or does not match).
 */
int  journal_read_content(struct journal *j, unsigned segno, uint64_t off,
    const char *qid, size_t len, char **content);
void journal_release(struct journal *j, unsigned segno);
void journal_close(struct journal **j);

/* Escapes a host name for a Maildir unique name: '/' -> \057, ':' -> \072. */
void maildir_escape_host(const char *host, struct buf *out);

#endif
