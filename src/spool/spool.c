/*
 * The spool's threads: a job queue feeding the delivery threads, and the
 * way results get back to the event loops.
 *
 * Submission: the session's thread appends the job to one queue (mutex +
 * condition variable). A delivery thread that wakes takes every queued job
 * up to BATCH_MAX (group commit) and hands them to deliver_batch(). While
 * it waits on the disk, newly submitted jobs gather in the queue, and it
 * takes them itself when its commit is done: a second thread steps in only
 * when a full batch waits or the oldest job has waited STALL_US. So batches
 * grow exactly when the disk is the bottleneck and stay at one job when it
 * is not (no added latency at low load), and the other threads are there
 * for a commit that hangs (a slow disk, or a Maildir on another file
 * system) rather than to split every burst into batches of one.
 *
 * Completion: each event_base that ever submitted has a sink: a mutex-
 * protected list of finished jobs and one event. A delivery thread appends
 * the job and calls event_active(), which (with evthread_use_pthreads())
 * wakes that base; the callback then runs done() on the base's own thread.
 * One event per base, however many jobs finish, so a burst costs one
 * wake-up.
 *
 * Abandon: a job's abandoned flag is guarded by its sink's mutex. If the
 * delivery thread finishes an abandoned job it frees it instead of posting
 * it; if the job was already posted, the loop callback frees it without
 * calling done. Abandon and that callback run on the same thread, so the
 * job cannot be freed under either of them.
 */
#include "spool/spool.h"
#include "spool/spool_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "spool/jrec.h"

/* Jobs per group commit: bounds one batch's latency and lets a second
 * idle thread start on the rest. */
#define BATCH_MAX 64

/*
 * Default mode: while one thread commits a batch, jobs queue up for its
 * next batch instead of waking another thread, so that a commit's fixed
 * cost (inode-table block, directory inode, device flushes) is shared by
 * every message that arrived during the previous one. Only when the oldest
 * queued job has waited this long (a commit stuck on a slow disk, or on a
 * Maildir on another file system) does a second thread take the queue.
 */
#define STALL_US        2000

/* Journal group commit: at most this many records or bytes per fdatasync. */
#define JBATCH_MAX      256
#define JBATCH_BYTES    (8u << 20)
/* A journaled message whose Maildir delivery failed is retried after this. */
#define RETRY_SECONDS   10

struct spool_sink {
	struct spool_sink *next;        /* sp->sinks, under sp->mu */
	struct event_base *base;
	struct event      *ev;
	pthread_mutex_t    mu;
	struct spool_job  *head, *tail; /* finished, waiting for the loop */
};

struct spool_job {
	struct spool_job  *next;        /* queue or sink list */
	struct spool_sink *sink;
	struct spool      *sp;          /* d.len is in sp->held until freed */
	struct delivery    d;
	char              *content;
	char             **boxes;
	char               qid[24];
	spool_done_fn     *done;
	void              *arg;
	bool               abandoned;   /* under sink->mu */
	struct timespec    queued;      /* CLOCK_MONOTONIC, entering sp->qhead */
	/* Journal mode only: */
	char             **names;       /* file names under new/, one per box */
	int               *cstat;       /* d.copy_status: each copy's outcome */
	bool               journaled;   /* acknowledged; the spool owns it now */
	bool               unloaded;    /* waits for a retry, content freed */
	bool               retrying;    /* its d.len counts in sp->retry_loaded */
	unsigned           segno;       /* journal segment holding it */
	uint64_t           joff;        /* and its record's offset there */
	time_t             retry_at;
};

struct spool {
	pthread_mutex_t    mu;
	pthread_cond_t     cv;
	struct spool_job  *qhead, *qtail;   /* submitted, not yet taken */
	size_t             qlen;
	/*
	 * Journal mode: how long an acknowledged message may wait for others
	 * before its Maildir delivery starts (0: never waits). Nobody waits on
	 * these deliveries, so the delivery threads take BATCH_MAX jobs, or
	 * whatever has gathered after this long: one syncfs and one directory
	 * fsync then serve up to 64 messages instead of one or two each. Mail
	 * shows up in new/ at most this much later.
	 */
	unsigned           linger_ms;
	bool               stopping;
	unsigned           busy;            /* threads inside deliver_batch */
	bool               watching;        /* an idle thread times the queue */
	struct spool_sink *sinks;
	pthread_t         *tids;
	unsigned           nthreads;
	struct deliverer   dl;
	void             (*batch_hook)(void *arg);  /* spool_opts: tests only */
	void              *batch_hook_arg;
	/* Journal mode (spool_opts.journal_dir): */
	struct journal    *jl;
	pthread_t          jtid;
	bool               jstarted;
	bool               jstopping;
	pthread_cond_t     jcv;
	struct spool_job  *jhead, *jtail;   /* submitted, not yet journaled */
	struct spool_job  *retry;           /* failed deliveries, by retry_at */
	size_t             retry_loaded;    /* content bytes of retries read back and
	                                       not yet finished (sp->mu) */
	size_t             retry_bytes_max; /* spool_opts.retry_bytes_max */
	atomic_uint_fast64_t jsyncs, jrecords;
	atomic_size_t      held;            /* content bytes of jobs not freed */
	atomic_size_t      pending;         /* jobs submitted and not yet freed */
};

static void
job_free(struct spool_job *job)
{
	if (!job->unloaded)
		atomic_fetch_sub_explicit(&job->sp->held, job->d.len, memory_order_relaxed);
	atomic_fetch_sub_explicit(&job->sp->pending, 1, memory_order_relaxed);
	free(job->content);
	for (size_t i = 0; i < job->d.n; i++) {
		free(job->boxes[i]);
		if (job->names)
			free(job->names[i]);
	}
	free(job->boxes);
	free(job->names);
	free(job->cstat);
	free(job);
}

/* Appends job to a head/tail list: the submit, journal, delivery and sink
 * queues. The caller holds the lock that guards the list. */
static void
fifo_push(struct spool_job **head, struct spool_job **tail, struct spool_job *job)
{
	job->next = NULL;
	if (*tail != NULL)
		(*tail)->next = job;
	else
		*head = job;
	*tail = job;
}

/*
 * Under sp->mu: appends a job to the delivery queue and wakes a thread
 * only when one is needed: a signal per message would cost a context
 * switch each. Lingering threads (journal mode) are woken by the first job,
 * which starts a timer, and by a full batch. In default mode a thread is
 * woken when none is committing, since the committing one takes the queue
 * next; otherwise one idle thread watches the queue for a stall (STALL_US)
 * and is woken only if none does yet.
 */
static void
queue_push(struct spool *sp, struct spool_job *job)
{
	clock_gettime(CLOCK_MONOTONIC, &job->queued);
	fifo_push(&sp->qhead, &sp->qtail, job);
	sp->qlen++;
	bool wake;
	if (sp->linger_ms > 0)
		wake = sp->qlen == 1 || sp->qlen == BATCH_MAX;
	else
		wake = sp->busy == 0 || !sp->watching;
	if (wake)
		pthread_cond_signal(&sp->cv);
}

/* Hands a journaled job to the delivery threads. */
static void
enqueue_delivery(struct spool *sp, struct spool_job *job)
{
	pthread_mutex_lock(&sp->mu);
	queue_push(sp, job);
	pthread_mutex_unlock(&sp->mu);
}

/* Runs on the sink's event base thread. */
static void
sink_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spool_sink *s = arg;

	pthread_mutex_lock(&s->mu);
	struct spool_job *list = s->head;
	s->head = s->tail = NULL;
	pthread_mutex_unlock(&s->mu);

	while (list != NULL) {
		struct spool_job *job = list;
		list = job->next;
		pthread_mutex_lock(&s->mu);
		bool abandoned = job->abandoned;
		pthread_mutex_unlock(&s->mu);
		if (!abandoned)
			job->done(job, job->d.status, job->arg);
		if (job->journaled)
			enqueue_delivery(job->sp, job);
		else
			job_free(job);
	}
}

/* Delivery or journal thread: hand a job's outcome back to its loop (for
 * a journaled job: its acknowledgement, the delivery still to come). */
static void
job_post(struct spool_job *job)
{
	struct spool_sink *s = job->sink;

	pthread_mutex_lock(&s->mu);
	if (job->abandoned) {
		pthread_mutex_unlock(&s->mu);
		if (job->journaled)
			enqueue_delivery(job->sp, job);   /* durable: still owed */
		else
			job_free(job);
		return;
	}
	fifo_push(&s->head, &s->tail, job);
	pthread_mutex_unlock(&s->mu);
	event_active(s->ev, EV_READ, 0);
}

/* Under sp->mu: a journaled job whose delivery failed waits RETRY_SECONDS. */
static void
schedule_retry(struct spool *sp, struct spool_job *job)
{
	job->retry_at = time(NULL) + RETRY_SECONDS;
	struct spool_job **pp = &sp->retry;
	while (*pp != NULL && (*pp)->retry_at <= job->retry_at)
		pp = &(*pp)->next;
	job->next = *pp;
	*pp = job;
}

/*
 * Recovery at start (journal_open, before any thread runs): a message it
 * could not deliver to every Maildir becomes a journaled job waiting for
 * its retry, as if its delivery had failed in this run: counted in the
 * pending gauge, its content read back from the journal when the retry is
 * due, and its segment live until it is delivered. Before, such a message
 * waited for the next start, however long the daemon ran, while the gauge
 * said nothing was owed.
 */
static bool
recovered_retry(void *arg, const char *qid, char **dirs, char **names, size_t n,
    unsigned segno, uint64_t off, size_t len)
{
	struct spool *sp = arg;
	struct spool_job *job;
	if (strlen(qid) >= sizeof job->qid)
		return false;   /* not one of ours: could not be read back */
	job = xcalloc(1, sizeof *job);
	job->sp = sp;
	snprintf(job->qid, sizeof job->qid, "%s", qid);
	job->boxes = dirs;
	job->names = names;
	job->cstat = xcalloc(n, sizeof *job->cstat);
	job->d.mailboxes = dirs;
	job->d.names = names;
	job->d.copy_status = job->cstat;
	job->d.n = n;
	job->d.len = len;
	job->d.qid = job->qid;
	job->journaled = true;
	job->unloaded = true;
	job->segno = segno;
	job->joff = off;
	atomic_fetch_add_explicit(&sp->pending, 1, memory_order_relaxed);
	pthread_mutex_lock(&sp->mu);
	schedule_retry(sp, job);
	pthread_mutex_unlock(&sp->mu);
	return true;
}

/*
 * Journal thread, without sp->mu: reads the content of each retry that is
 * due back from its journal record. A job whose read fails stays unloaded
 * and waits for the next retry (the record is still in the journal, and
 * the next start replays it in any case).
 */
static void
reload_due(struct spool *sp, struct spool_job **list)
{
	for (struct spool_job *job = *list; job != NULL; job = job->next) {
		if (!job->unloaded)
			continue;
		char *content = NULL;
		int e = journal_read_content(sp->jl, job->segno, job->joff, job->qid,
		    job->d.len, &content);
		if (e != 0) {
			/* A failed attempt after the 250, as a failed delivery. */
			atomic_fetch_add_explicit(&sp->dl.bg_failed, 1, memory_order_relaxed);
			log_warn("%s: cannot read the message back from the spool journal "
			    "(segment %u, offset %llu): %s; retrying in %d s", job->qid,
			    job->segno, (unsigned long long)job->joff, strerror(e),
			    RETRY_SECONDS);
			continue;
		}
		job->content = content;
		job->d.content = content;
		job->unloaded = false;
		atomic_fetch_add_explicit(&sp->held, job->d.len, memory_order_relaxed);
	}
}

/* Delivery thread, after deliver_batch. */
static void
job_finish(struct spool *sp, struct spool_job *job)
{
	if (job->retrying) {
		/* Its read-back content leaves the retry budget: the journal
		 * thread may read back the next due retries. */
		pthread_mutex_lock(&sp->mu);
		sp->retry_loaded -= job->d.len;
		job->retrying = false;
		pthread_cond_signal(&sp->jcv);
		pthread_mutex_unlock(&sp->mu);
	}
	if (job->journaled) {
		if (job->d.status == 0) {
			journal_release(sp->jl, job->segno);
			job_free(job);
			return;
		}
		/*
		 * Acknowledged already: the journal keeps it; try again later
		 * (and at the next start, if we stop first). Only the copies
		 * that failed: the others are durable in their new/ (the
		 * directory was fsynced, step 3 of STACK.md section 7's
		 * Maildir protocol), so they leave the job and are never
		 * written again. Nothing else needs to record that they are
		 * done: a restart replays the journal record with every copy,
		 * and recovery skips each copy whose journaled name is already
		 * in its new/ or cur/ (docs/spool.md, "Each copy on its own").
		 */
		size_t n = job->d.n, k = 0;
		for (size_t i = 0; i < n; i++) {
			if (job->cstat[i] == 0) {
				free(job->boxes[i]);
				free(job->names[i]);
				continue;
			}
			job->boxes[k] = job->boxes[i];
			job->names[k] = job->names[i];
			k++;
		}
		job->d.n = k;
		/*
		 * Until the retry the content lives only in the journal: one
		 * broken Maildir must not hold every message queued for it in
		 * memory, where it counts against smtpd_message_memory_limit
		 * and would push every client into 452 (journal_thread reads
		 * it back before the retry).
		 */
		x_free(&job->content);
		job->d.content = NULL;
		job->unloaded = true;
		atomic_fetch_sub_explicit(&sp->held, job->d.len, memory_order_relaxed);
		log_warn("%s: delivery from the spool journal failed for %zu of %zu "
		    "mailbox%s: %s; retrying %s in %d s", job->qid, k, n, n == 1 ? "" : "es",
		    strerror(job->d.status), k == 1 ? "it" : "them", RETRY_SECONDS);
		pthread_mutex_lock(&sp->mu);
		schedule_retry(sp, job);
		pthread_cond_signal(&sp->jcv);
		pthread_mutex_unlock(&sp->mu);
		return;
	}
	/* The message is on disk (or rolled back): release it before the
	 * job waits for its loop. */
	x_free(&job->content);
	job->d.content = NULL;
	job_post(job);
}

/* Adds us microseconds to a CLOCK_MONOTONIC time. */
static struct timespec
ts_add_us(struct timespec t, uint64_t us)
{
	t.tv_sec += (time_t)(us / 1000000);
	t.tv_nsec += (long)(us % 1000000) * 1000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static bool
ts_before(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

/*
 * Under sp->mu, with a job queued: waits until BATCH_MAX jobs are queued,
 * the oldest has waited sp->linger_ms, or the spool stops. False if the
 * queue emptied meanwhile.
 */
static bool
linger(struct spool *sp)
{
	while (sp->qhead != NULL && sp->qlen < BATCH_MAX && !sp->stopping) {
		struct timespec due = ts_add_us(sp->qhead->queued, (uint64_t)sp->linger_ms * 1000);
		if (pthread_cond_timedwait(&sp->cv, &sp->mu, &due) == ETIMEDOUT)
			break;
	}
	return sp->qhead != NULL;
}

/*
 * Default mode, under sp->mu, with a job queued: true if this thread
 * should take the queue now: no thread is committing, a full batch is
 * waiting, or the oldest job has waited STALL_US. Otherwise the thread
 * becomes the queue's watcher (if there is none) and sleeps until the
 * oldest job would stall, or until woken; false means look again.
 */
static bool
may_take(struct spool *sp)
{
	if (sp->busy == 0 || sp->qlen >= BATCH_MAX || sp->stopping)
		return true;
	struct timespec now, due = ts_add_us(sp->qhead->queued, STALL_US);
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!ts_before(now, due))
		return true;
	if (sp->watching) {
		pthread_cond_wait(&sp->cv, &sp->mu);
		return false;
	}
	sp->watching = true;
	(void)pthread_cond_timedwait(&sp->cv, &sp->mu, &due);
	sp->watching = false;
	return false;
}

static void *
delivery_thread(void *arg)
{
	struct spool *sp = arg;
	struct delivery *batch[BATCH_MAX];
	struct spool_job *jobs[BATCH_MAX];

	pthread_mutex_lock(&sp->mu);
	for (;;) {
		while (sp->qhead == NULL && !sp->stopping)
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (sp->qhead == NULL)
			break;          /* stopping and drained */
		if (sp->linger_ms > 0 && !linger(sp))
			continue;       /* another thread took the queue */
		if (sp->linger_ms == 0 && !may_take(sp))
			continue;
		size_t n = 0;
		while (sp->qhead != NULL && n < BATCH_MAX) {
			struct spool_job *job = sp->qhead;
			sp->qhead = job->next;
			jobs[n] = job;
			batch[n] = &job->d;
			n++;
		}
		sp->qlen -= n;
		if (sp->qhead == NULL)
			sp->qtail = NULL;
		else
			pthread_cond_signal(&sp->cv);   /* more for another */
		sp->busy++;
		pthread_mutex_unlock(&sp->mu);

		if (sp->batch_hook != NULL)
			sp->batch_hook(sp->batch_hook_arg);
		deliver_batch(&sp->dl, batch, n);
		for (size_t i = 0; i < n; i++)
			job_finish(sp, jobs[i]);

		pthread_mutex_lock(&sp->mu);
		sp->busy--;
	}
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

/*
 * Journal thread: group commit into the journal. Takes every submitted job
 * (up to JBATCH_MAX / JBATCH_BYTES), appends their records with one write
 * and one fdatasync, then acknowledges them; their Maildir delivery follows
 * on the delivery threads. Also moves due retries back to the delivery
 * queue. Drains its queue before it stops.
 */
static void *
journal_thread(void *arg)
{
	struct spool *sp = arg;
	struct buf rec = BUF_INIT;
	struct spool_job *group[JBATCH_MAX];
	bool encoded[JBATCH_MAX];
	size_t roff[JBATCH_MAX];        /* each record's offset in rec */

	pthread_mutex_lock(&sp->mu);
	for (;;) {
		time_t now = time(NULL);
		struct spool_job *due = NULL, *duetail = NULL;
		/*
		 * The retries that came due, as many as the budget takes: each
		 * is read back into memory, and a broken Maildir's whole
		 * backlog at once (every retry of a failed batch comes due in
		 * the same second) made RSS follow the backlog and pushed
		 * other clients into 452 (audit: 150 x 1 MB, 12 -> 111 MB).
		 * The rest wait until these finish (job_finish signals).
		 */
		bool budget_full = false;
		while (sp->retry != NULL && sp->retry->retry_at <= now) {
			struct spool_job *job = sp->retry;
			if (sp->retry_loaded > 0 &&
			    sp->retry_loaded + job->d.len > sp->retry_bytes_max) {
				budget_full = true;
				break;
			}
			sp->retry = job->next;
			sp->retry_loaded += job->d.len;
			job->retrying = true;
			fifo_push(&due, &duetail, job);
		}
		if (due != NULL) {
			pthread_mutex_unlock(&sp->mu);
			reload_due(sp, &due);
			pthread_mutex_lock(&sp->mu);
			bool moved = false;
			while (due != NULL) {
				struct spool_job *job = due;
				due = job->next;
				if (job->unloaded) {
					sp->retry_loaded -= job->d.len;
					job->retrying = false;
					schedule_retry(sp, job);
					continue;
				}
				queue_push(sp, job);
				moved = true;
			}
			if (moved)
				pthread_cond_broadcast(&sp->cv);
			continue;
		}
		if (sp->jhead == NULL) {
			if (sp->jstopping)
				break;
			if (sp->retry != NULL && !budget_full) {
				struct timespec ts = { .tv_sec = sp->retry->retry_at, .tv_nsec = 0 };
				pthread_cond_timedwait(&sp->jcv, &sp->mu, &ts);
			} else {
				pthread_cond_wait(&sp->jcv, &sp->mu);
			}
			continue;
		}
		size_t n = 0, bytes = 0;
		while (sp->jhead != NULL && n < JBATCH_MAX &&
		    (n == 0 || bytes + sp->jhead->d.len <= JBATCH_BYTES)) {
			struct spool_job *job = sp->jhead;
			sp->jhead = job->next;
			bytes += job->d.len;
			group[n++] = job;
		}
		if (sp->jhead == NULL)
			sp->jtail = NULL;
		pthread_mutex_unlock(&sp->mu);

		/* A group of large messages grew the buffer (up to 8 MiB, or
		 * one message): give that back rather than keep it for the
		 * life of the process, outside smtpd_message_memory_limit. */
		if (rec.cap > (1u << 20))
			buf_free(&rec);
		buf_reset(&rec);
		size_t nok = 0;
		for (size_t i = 0; i < n; i++) {
			struct spool_job *job = group[i];
			roff[i] = rec.len;
			encoded[i] = jrec_encode(&rec, journal_next_seq(sp->jl), job->qid,
			    job->d.n, (const char *const *)job->boxes,
			    (const char *const *)job->names, job->d.content, job->d.len) == 0;
			nok += encoded[i];
		}
		unsigned segno = 0;
		uint64_t at = 0;
		int e = nok > 0 ? journal_append(sp->jl, &rec, nok, &segno, &at) : 0;
		if (e != 0)
			log_warn("spool journal: append of %zu message%s failed: %s", nok,
			    nok == 1 ? "" : "s", strerror(e));
		else if (nok > 0) {
			atomic_fetch_add_explicit(&sp->jsyncs, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&sp->jrecords, nok, memory_order_relaxed);
		}
		for (size_t i = 0; i < n; i++) {
			struct spool_job *job = group[i];
			if (e == 0 && encoded[i]) {
				job->journaled = true;
				job->segno = segno;
				job->joff = at + roff[i];
				job->d.status = 0;
			} else {
				/* Its session answers 451/452: a refused message. */
				job->d.status = e != 0 ? e : EINVAL;
				atomic_fetch_add_explicit(&sp->dl.jobs_failed, 1,
				    memory_order_relaxed);
				x_free(&job->content);
				job->d.content = NULL;
			}
			job_post(job);
		}
		pthread_mutex_lock(&sp->mu);
	}
	pthread_mutex_unlock(&sp->mu);
	buf_free(&rec);
	return NULL;
}

static void
stop_threads(struct spool *sp, unsigned started)
{
	pthread_mutex_lock(&sp->mu);
	sp->stopping = true;
	pthread_cond_broadcast(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	for (unsigned i = 0; i < started; i++)
		pthread_join(sp->tids[i], NULL);
}

struct spool *
spool_new(const struct spool_opts *o, struct buf *err)
{
	struct stat st;
	char hostbuf[256];

	if (o == NULL || o->base == NULL || *o->base == '\0') {
		buf_append_str(err, "spool: no base directory");
		return NULL;
	}
	if (stat(o->base, &st) != 0) {
		buf_appendf(err, "spool: %s: %s", o->base, strerror(errno));
		return NULL;
	}
	if (!S_ISDIR(st.st_mode)) {
		buf_appendf(err, "spool: %s: not a directory", o->base);
		return NULL;
	}
	if (o->threads > SPOOL_THREADS_MAX) {
		buf_appendf(err, "spool: threads %u exceeds %u", o->threads,
		    SPOOL_THREADS_MAX);
		return NULL;
	}

	const char *host = o->hostname;
	if (host == NULL || *host == '\0') {
		if (gethostname(hostbuf, sizeof hostbuf) != 0)
			snprintf(hostbuf, sizeof hostbuf, "localhost");
		hostbuf[sizeof hostbuf - 1] = '\0';
		host = hostbuf;
	}

	struct spool *sp = xcalloc(1, sizeof *sp);
	pthread_mutex_init(&sp->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sp->cv, &ca);
	pthread_condattr_destroy(&ca);
	dircache_init(&sp->dl.cache);
	sp->dl.cache.clock = o->clock;
	struct buf h = BUF_INIT;
	maildir_escape_host(host, &h);
	sp->dl.host = buf_steal(&h);
	sp->dl.pid = (long)getpid();
	atomic_init(&sp->dl.seq, 0);
	atomic_init(&sp->dl.jobs_ok, 0);
	atomic_init(&sp->dl.jobs_failed, 0);
	atomic_init(&sp->dl.bg_failed, 0);
	atomic_init(&sp->dl.copies, 0);
	atomic_init(&sp->dl.batches, 0);
	atomic_init(&sp->held, 0);
	atomic_init(&sp->pending, 0);
	atomic_init(&sp->dl.bytes, 0);

	pthread_cond_init(&sp->jcv, NULL);
	atomic_init(&sp->jsyncs, 0);
	atomic_init(&sp->jrecords, 0);
	sp->batch_hook = o->batch_hook;
	sp->batch_hook_arg = o->batch_hook_arg;
	sp->nthreads = o->threads ? o->threads : SPOOL_THREADS_DEFAULT;
	sp->tids = xcalloc(sp->nthreads, sizeof *sp->tids);
	sp->retry_bytes_max = o->retry_bytes_max ? o->retry_bytes_max : (size_t)8 << 20;
	if (o->journal_dir != NULL && *o->journal_dir != '\0') {
		/* Recovery happens here, before any thread runs. */
		sp->dl.bulk = true;
		sp->linger_ms = o->linger_ms ? o->linger_ms : SPOOL_LINGER_MS_DEFAULT;
		sp->jl = journal_open(o->journal_dir, o->journal_segment_max, o->base, &sp->dl,
		    recovered_retry, sp, err);
		if (sp->jl == NULL) {
			sp->nthreads = 0;
			spool_free(&sp);
			return NULL;
		}
	}

	/* Delivery threads never handle signals: they belong to the main
	 * thread's event loop. The mask is inherited at creation. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	unsigned started = 0;
	int e = 0;
	for (; started < sp->nthreads; started++) {
		e = pthread_create(&sp->tids[started], NULL, delivery_thread,
		    sp);
		if (e != 0)
			break;
		/* Named for top -H and ps -L (15 characters at most). */
		(void)pthread_setname_np(sp->tids[started], "ehlod-deliver");
	}
	if (e == 0 && sp->jl != NULL) {
		e = pthread_create(&sp->jtid, NULL, journal_thread, sp);
		sp->jstarted = e == 0;
		if (sp->jstarted)
			(void)pthread_setname_np(sp->jtid, "ehlod-journal");
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		buf_appendf(err, "spool: cannot start thread: %s", strerror(e));
		sp->nthreads = started;
		spool_free(&sp);
		return NULL;
	}
	return sp;
}

void
spool_free(struct spool **spp)
{
	struct spool *sp = *spp;

	if (sp == NULL)
		return;
	if (sp->jstarted) {
		/* The journal thread drains what was submitted first. */
		pthread_mutex_lock(&sp->mu);
		sp->jstopping = true;
		pthread_cond_broadcast(&sp->jcv);
		pthread_mutex_unlock(&sp->mu);
		pthread_join(sp->jtid, NULL);
		sp->jstarted = false;
	}
	/* Acknowledgements posted but never dispatched: the messages are in
	 * the journal, so they are still delivered, now. */
	for (struct spool_sink *s = sp->sinks; s != NULL; s = s->next) {
		pthread_mutex_lock(&s->mu);
		struct spool_job **pp = &s->head, *last = NULL;
		while (*pp != NULL) {
			struct spool_job *job = *pp;
			if (job->journaled) {
				*pp = job->next;
				enqueue_delivery(sp, job);
			} else {
				last = job;
				pp = &job->next;
			}
		}
		s->tail = last;
		pthread_mutex_unlock(&s->mu);
	}
	stop_threads(sp, sp->nthreads);

	/* Posted but never dispatched: nobody is left to tell. */
	while (sp->sinks != NULL) {
		struct spool_sink *s = sp->sinks;
		sp->sinks = s->next;
		while (s->head != NULL) {
			struct spool_job *job = s->head;
			s->head = job->next;
			job_free(job);
		}
		event_free(s->ev);
		pthread_mutex_destroy(&s->mu);
		free(s);
	}
	/* Deliveries still failing: the journal keeps them for the next start. */
	while (sp->retry != NULL) {
		struct spool_job *job = sp->retry;
		sp->retry = job->next;
		job_free(job);
	}
	journal_close(&sp->jl);
	pthread_cond_destroy(&sp->jcv);
	dircache_destroy(&sp->dl.cache);
	free(sp->dl.host);
	free(sp->tids);
	pthread_cond_destroy(&sp->cv);
	pthread_mutex_destroy(&sp->mu);
	x_free(spp);
}

/* Under sp->mu. */
static struct spool_sink *
sink_for(struct spool *sp, struct event_base *base)
{
	struct spool_sink *s;

	for (s = sp->sinks; s != NULL; s = s->next)
		if (s->base == base)
			return s;
	s = xcalloc(1, sizeof *s);
	s->base = base;
	pthread_mutex_init(&s->mu, NULL);
	s->ev = event_new(base, -1, 0, sink_cb, s);
	if (s->ev == NULL)
		abort();        /* allocation failure, as in xmalloc */
	s->next = sp->sinks;
	sp->sinks = s;
	return s;
}

struct spool_job *
spool_submit(struct spool *sp, struct event_base *base, char *content,
    size_t len, const char *const *mailboxes, size_t n,
    const char *queue_id, spool_done_fn *done, void *arg)
{
	if (sp == NULL || base == NULL || done == NULL || n == 0 ||
	    mailboxes == NULL || (content == NULL && len > 0))
		abort();        /* caller bug, not a peer error */

	struct spool_job *job = xcalloc(1, sizeof *job);
	job->content = content;
	job->boxes = xcalloc(n, sizeof *job->boxes);
	for (size_t i = 0; i < n; i++) {
		/* Stored without trailing '/': names are built by appending
		 * "/tmp/..." and the dir cache keys must be canonical. */
		size_t l = strlen(mailboxes[i]);
		while (l > 1 && mailboxes[i][l - 1] == '/')
			l--;
		job->boxes[i] = xstrndup(mailboxes[i], l);
	}
	snprintf(job->qid, sizeof job->qid, "%s",
	    queue_id != NULL ? queue_id : "NOQUEUE");
	job->d.content = content != NULL ? content : "";
	job->d.len = len;
	job->sp = sp;
	atomic_fetch_add_explicit(&sp->held, len, memory_order_relaxed);
	atomic_fetch_add_explicit(&sp->pending, 1, memory_order_relaxed);
	job->d.mailboxes = job->boxes;
	job->d.n = n;
	job->d.qid = job->qid;
	job->done = done;
	job->arg = arg;

	if (sp->jl != NULL) {
		/* The names under new/ are fixed now and journaled, so that
		 * recovery can tell a delivered copy from a missing one. */
		job->names = xcalloc(n, sizeof *job->names);
		for (size_t i = 0; i < n; i++)
			job->names[i] = maildir_new_name(&sp->dl, len);
		job->d.names = job->names;
		/* Acknowledged before delivery: each copy goes on its own. */
		job->cstat = xcalloc(n, sizeof *job->cstat);
		job->d.copy_status = job->cstat;
	}

	pthread_mutex_lock(&sp->mu);
	if (sp->stopping || sp->jstopping)
		abort();        /* submit after spool_free began */
	job->sink = sink_for(sp, base);
	if (sp->jl != NULL) {
		fifo_push(&sp->jhead, &sp->jtail, job);
		pthread_cond_signal(&sp->jcv);
	} else {
		queue_push(sp, job);
	}
	pthread_mutex_unlock(&sp->mu);
	return job;
}

void
spool_job_abandon(struct spool_job *job)
{
	struct spool_sink *s = job->sink;

	pthread_mutex_lock(&s->mu);
	job->abandoned = true;
	pthread_mutex_unlock(&s->mu);
}

void
spool_queue_id(char out[24])
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static unsigned long long last_us;
	static unsigned counter;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned long long us = (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000;

	/* (time, counter) strictly increases: the clock stepping back or
	 * 65536 ids within one microsecond borrow from the future instead
	 * of repeating an id. The pid separates concurrent processes; the
	 * time separates this process from earlier ones with the same pid. */
	pthread_mutex_lock(&mu);
	if (us > last_us) {
		last_us = us;
		counter = 0;
	} else if (++counter > 0xffff) {
		last_us++;
		counter = 0;
	}
	us = last_us;
	unsigned c = counter;
	pthread_mutex_unlock(&mu);

	/* getpid() once per process, not per message (a fork would need a
	 * new value, but ehlod does not fork after start). */
	static long pid;
	if (pid == 0)
		pid = (long)getpid();
	snprintf(out, 24, "%013llX%06lX%04X", us & 0xfffffffffffffULL,
	    (unsigned long)pid & 0xffffffUL, c);
}

void
spool_get_stats(struct spool *sp, struct spool_stats *out)
{
	out->jobs_ok = atomic_load_explicit(&sp->dl.jobs_ok,
	    memory_order_relaxed);
	out->jobs_failed = atomic_load_explicit(&sp->dl.jobs_failed,
	    memory_order_relaxed);
	out->background_failures = atomic_load_explicit(&sp->dl.bg_failed,
	    memory_order_relaxed);
	out->copies = atomic_load_explicit(&sp->dl.copies,
	    memory_order_relaxed);
	out->batches = atomic_load_explicit(&sp->dl.batches,
	    memory_order_relaxed);
	out->bytes = atomic_load_explicit(&sp->dl.bytes,
	    memory_order_relaxed);
	out->journal_syncs = atomic_load_explicit(&sp->jsyncs, memory_order_relaxed);
	out->journal_records = atomic_load_explicit(&sp->jrecords, memory_order_relaxed);
	out->tmp_removed = atomic_load_explicit(&sp->dl.cache.tmp_removed,
	    memory_order_relaxed);
	out->pending = atomic_load_explicit(&sp->pending, memory_order_relaxed);
}

size_t
spool_held_bytes(struct spool *sp)
{
	return atomic_load_explicit(&sp->held, memory_order_relaxed);
}
