/*
 * The spool: durable local delivery into Maildirs, off the event loop.
 *
 * Sessions run on libevent worker threads (one event_base each). When a
 * message has been received they hand it to spool_submit(); a small pool of
 * delivery threads writes it into every recipient's Maildir and makes it
 * durable, and the result comes back as a callback on the submitting event
 * base's thread. The server sends its 250 only from that callback, so
 * "status 0" must mean every copy is on stable storage.
 *
 * Durability protocol per copy (STACK.md §7, the Maildir convention):
 * tmp/<u> is created O_EXCL, written and fdatasync()ed, link()ed to
 * new/<u>,S=<size>, the tmp name is unlinked, and new/ is fsync()ed. A
 * reader only ever sees complete files in new/.
 *
 * Throughput: each delivery thread takes every job queued at that moment
 * (group commit), writes all their tmp files, starts write-back for all of
 * them before waiting for any, then links them and fsyncs each distinct
 * new/ directory once per batch. docs/spool.md has the measurements.
 *
 * All-or-nothing per job: every copy of a job is written and synced before
 * any is linked; if one copy fails, none becomes visible.
 *
 * Journal mode (spool_opts.journal_dir set): "status 0" comes earlier, as
 * soon as the message is fdatasynced in an append-only journal shared by
 * all sessions (one flush per group of messages committed together, and
 * no file created per message before the reply). The Maildir delivery
 * above then runs in the background; the journal entry is dropped once
 * every copy is durable in new/. A delivery that fails is retried every
 * RETRY_SECONDS, and at the next start. spool_new() replays the journal
 * left by an earlier run before it returns: each journaled message is
 * delivered to the mailboxes that do not have it yet (its file names under
 * new/ are journaled too), so after a crash or kill -9 every acknowledged
 * message reaches its Maildirs exactly once, unless a mail reader moved it
 * out of new/ and cur/ first. The same durability as Postfix's queue file
 * fsync before its 250. Nobody waits on the background deliveries, so the
 * delivery threads let them gather (linger_ms, or 64 jobs) and commit each
 * group with one syncfs and one fsync per new/ directory.
 *
 * libevent must have been initialised with evthread_use_pthreads() before
 * the event bases were created: completions cross threads.
 */
#ifndef EHLO_SPOOL_H
#define EHLO_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"

struct event_base;

struct spool;                                   /* one per process */

struct spool_opts {
	const char *base;       /* root of the Maildir tree; must exist */
	unsigned    threads;    /* delivery threads; 0 = SPOOL_THREADS_DEFAULT */
	const char *hostname;   /* for unique names; NULL = gethostname() */
	const char *journal_dir;/* write-ahead journal directory (must exist);
	                           NULL or "": none (see "Journal mode" above) */
	unsigned    linger_ms;  /* journal mode: how long an acknowledged message
	                           may wait for others to share its Maildir group
	                           commit; 0 = SPOOL_LINGER_MS_DEFAULT */
	/* Tests only (NULL in ehlod): called by a delivery thread with
	 * batch_hook_arg just before it commits each batch, e.g. to hold one
	 * commit and see the queue handed to another thread. */
	void      (*batch_hook)(void *arg);
	void       *batch_hook_arg;
	/* Tests only (NULL in ehlod: time()): the clock that leftovers in a
	 * Maildir's tmp/ are judged by (older than 36 hours: removed the first
	 * time the spool uses that Maildir, and every 8 hours of use after). */
	time_t    (*clock)(void);
	/* Tests only (0 in ehlod: 64 MiB): the length at which a journal
	 * segment closes and the next one starts, so that a test can fill
	 * several segments with a few messages. */
	size_t      journal_segment_max;
	/* Journal mode: content bytes of retries read back from the journal
	 * and in delivery at once (at least one message always); 0 = 8 MiB.
	 * ehlod passes an eighth of smtpd_message_memory_limit. */
	size_t      retry_bytes_max;
};

#define SPOOL_LINGER_MS_DEFAULT 20

#define SPOOL_THREADS_DEFAULT 4
#define SPOOL_THREADS_MAX     64

/*
 * Creates the spool and starts its delivery threads (with all signals
 * blocked, so signals keep going to the main thread). Returns NULL and
 * appends a reason to err when base is not a usable directory or a thread
 * cannot be started. The caller frees the result with spool_free().
 */
struct spool *spool_new(const struct spool_opts *o, struct buf *err);

/*
 * Finishes every queued job, joins the threads and frees everything.
 * Completions that were posted to an event base but not yet dispatched are
 * dropped without calling done (their sessions are going away too). Call it
 * after the worker loops have stopped and before their event bases are
 * freed. *sp is set to NULL; NULL is accepted.
 */
void spool_free(struct spool **sp);

/*
 * Maps a validated recipient to its Maildir: <base>/<domain>/<local>/, with
 * the domain and the local part lower-cased (ASCII only). Returns false and
 * leaves out empty when a name could escape the base or is unsafe as a
 * single path component: empty, ".", "..", a leading '.', '/', control
 * characters (< 0x20, 0x7f), malformed UTF-8, or more than 255 bytes.
 * Pure: touches no file system. out is reset first.
 */
bool spool_mailbox_path(const char *base, const char *local,
    const char *domain, struct buf *out);

struct spool_job;                               /* opaque */

/*
 * status 0: delivered and durable in every mailbox. Otherwise an errno
 * value: ENOSPC or EDQUOT (reply 452 4.3.1), anything else (451 4.3.0).
 * Called on the thread of the event base given to spool_submit(); the job
 * is freed right after the callback returns.
 */
typedef void spool_done_fn(struct spool_job *job, int status, void *arg);

/*
 * Submits one message for n mailboxes (n >= 1). content/len is the whole
 * message with LF line ends; the spool takes ownership of content and
 * free()s it. mailboxes are Maildir directory paths (as made by
 * spool_mailbox_path); they are copied. queue_id (may be NULL) is only
 * used in log lines. done(job, status, arg) runs later on base's thread.
 * Returns the job, valid until done runs or spool_job_abandon() is called.
 */
struct spool_job *spool_submit(struct spool *sp, struct event_base *base,
    char *content, size_t len, const char *const *mailboxes, size_t n,
    const char *queue_id, spool_done_fn *done, void *arg);

/*
 * The session died before done ran: done will not be called and the job
 * pointer must not be used again. The delivery itself still completes (or
 * is rolled back) consistently. Call it on the submitting base's thread.
 */
void spool_job_abandon(struct spool_job *job);

/*
 * Writes a queue id into out: 23 upper-case hex digits and a NUL, matching
 * Postfix's showq pattern ^[0-9A-F]+. It is the time in microseconds, a
 * counter and the pid, kept strictly increasing within the process even
 * when the clock steps back, so ids are unique within the process and
 * across restarts. Thread-safe.
 */
void spool_queue_id(char out[24]);

/* fsync(2) of the directory at path: 0 or an errno value. */
int spool_dir_fsync(const char *path);

/*
 * For a directory that mkdir(2) just made: fsync it, then its entry in the
 * parent (path is modified and restored). Both, because a file system that
 * does not order its metadata (ext4 without a journal) writes neither the
 * new directory's inode and "."/".." block nor the parent's entry on its
 * own before write-back; a power cut in between leaves a corrupt directory
 * that stops the boot's e2fsck -p (tests/e2e/test_powerloss.py). 0 or the
 * first errno value.
 */
int spool_dir_made_durable(char *path);

/* Counters for the metrics endpoint; read with relaxed atomics. */
struct spool_stats {
	uint64_t jobs_ok;       /* jobs delivered to every mailbox */
	uint64_t jobs_failed;   /* messages refused with 4xx: a default-mode job
	                           rolled back, or a journal append that failed */
	uint64_t background_failures; /* journal mode: delivery attempts after
	                           the 250 (or at recovery) that failed for some
	                           copy, each then retried */
	uint64_t copies;        /* mailbox copies made durable */
	uint64_t batches;       /* group commits performed */
	uint64_t bytes;         /* bytes written into tmp files */
	uint64_t journal_syncs;   /* journal group commits (fdatasync) */
	uint64_t journal_records; /* messages journaled */
	uint64_t tmp_removed;   /* leftovers older than 36 h removed from tmp/ */
	uint64_t pending;       /* now: messages submitted and not finished, i.e.
	                           being committed, or (journal mode) acknowledged
	                           and not yet in every Maildir, retries included */
};

void spool_get_stats(struct spool *sp, struct spool_stats *out);

/*
 * Bytes of message content the spool holds in memory now: every submitted
 * job's content from spool_submit() until it is freed (delivered, failed,
 * or in journal mode delivered from the journal, retries included). Part
 * of the budget that smtpd_message_memory_limit puts on all sessions.
 */
size_t spool_held_bytes(struct spool *sp);

#endif
