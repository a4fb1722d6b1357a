/*
 * The spool's write-ahead journal: segment files <dir>/journal.<n>.
 *
 * Contract (see spool.h and docs/spool.md):
 *   - journal_append() writes a group of records at the end of the current
 *     segment and fdatasync()s it: when it returns 0 every record in the
 *     group is on stable storage and the messages may be acknowledged.
 *   - Every appended message counts as live in its segment until
 *     journal_release(), which the spool calls once all the message's
 *     Maildir copies are durable (new/ fsynced). A segment that is no longer
 *     written to and has no live message is unlinked.
 *   - journal_open() first recovers: every message found in a segment left
 *     by an earlier run is delivered (the copies whose new/ or cur/ file is
 *     missing), then the segment is removed. The messages that cannot all be
 *     delivered go to the running spool's retry queue (kept_fn), and their
 *     segment stays, live, until they are delivered. A segment that cannot
 *     be read to its end, or has a damaged record followed by valid ones,
 *     is never removed: what follows the damage may be acknowledged mail.
 *
 * Only one thread appends (the spool's journal thread); release may come
 * from any delivery thread, hence the mutex around the segment list.
 *
 * Why segments and not one file truncated when empty: under steady load
 * some message is always in flight, so a single file would never be empty;
 * a segment closes at JOURNAL_SEGMENT_MAX (64 MiB) and is dropped once
 * drained.
 *
 * Why segments are written full of zeros before the first record: a group
 * then overwrites allocated blocks inside the file's size, so its
 * fdatasync() writes only the data and one cache flush. Appending would
 * also change the size and the block map, and every fdatasync would write
 * the inode too: one more synchronous write per acknowledged group (about
 * a third of the append's latency and CPU on ext4, docs/spool.md). Zeros
 * are also what recovery finds after the last record, and they fail the
 * record check, so nothing changes for torn tails.
 */
#include "spool/spool_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "spool/jrec.h"

#define JOURNAL_SEGMENT_MAX ((size_t)64 << 20)
#define ZERO_CHUNK          (256u << 10)
#define RECOVER_BATCH 64

struct segment {
	struct segment *next;
	unsigned        no;
	size_t          live;       /* appended, not yet released */
	/* Open while the segment is kept (-1 if it could not be opened):
	 * retries read their messages back through it (journal_read_content),
	 * also after the file lost its name (removed by hand). The current
	 * segment's is j->fd. */
	int             fd;
};

struct journal {
	char            *dir;
	int              dirfd;
	int              fd;        /* current segment */
	unsigned         cur;       /* its number */
	uint64_t         size;      /* its length */
	size_t           segmax;    /* a segment closes at this length */
	uint64_t         seq;       /* last sequence number used */
	pthread_mutex_t  mu;        /* guards segs and live counts */
	struct segment  *segs;      /* current one included */
	const char      *base;      /* virtual_mailbox_base, during recovery */
};

static void
seg_path(const struct journal *j, unsigned no, char *out, size_t n)
{
	snprintf(out, n, "%s/journal.%u", j->dir, no);
}

/* "journal.<decimal>" -> number; false for anything else. */
static bool
seg_name(const char *s, unsigned *no)
{
	if (strncmp(s, "journal.", 8) != 0 || s[8] < '0' || s[8] > '9')
		return false;
	unsigned long long v = 0;
	for (const char *p = s + 8; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned)(*p - '0');
		if (v > 0xffffffffULL)
			return false;
	}
	*no = (unsigned)v;
	return true;
}

static int
cmp_uint(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

/*
 * Reads a whole file; NULL and errno if it cannot be opened. A read error
 * part way stops the reading: *len is what was read, and *rerr the errno
 * value (0 when the whole file was read). The caller must not take the
 * end of what was read for the end of the segment then.
 */
static unsigned char *
slurp(int dirfd, const char *name, size_t *len, int *rerr)
{
	*rerr = 0;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	size_t cap = (size_t)st.st_size, n = 0;
	unsigned char *p = xmalloc(cap ? cap : 1);
	while (n < cap) {
		ssize_t r = read(fd, p + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*rerr = errno;
			break;
		}
		if (r == 0)
			break;      /* shorter than fstat said: parse what there is */
		n += (size_t)r;
	}
	close(fd);
	*len = n;
	return p;
}

/* The array p of n elements (sz bytes each, *cap allocated) with room for
 * one more: p itself, or p grown by doubling (from 256). */
static void *
grow(void *p, size_t n, size_t *cap, size_t sz)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 256;
	return xrealloc(p, *cap * sz);
}

/* True if the copy named name is in dir's new/. */
static bool
in_new(const char *dir, const char *name)
{
	char p[8192];
	snprintf(p, sizeof p, "%s/new/%s", dir, name);
	return access(p, F_OK) == 0;
}

/* A journaled copy that was not in its new/ when recovery looked. */
struct rcopy {
	char   *dir, *name;     /* heap, until handed to an rjob */
	size_t  rec;            /* index of its record in the segment */
	size_t  order;          /* position in the segment, for sorting back */
	bool    moved;          /* found in cur/: a reader has it */
};

static int
rcopy_by_dir(const void *a, const void *b)
{
	const struct rcopy *x = a, *y = b;
	int c = strcmp(x->dir, y->dir);
	return c != 0 ? c : (x->order > y->order) - (x->order < y->order);
}

static int
rcopy_by_order(const void *a, const void *b)
{
	const struct rcopy *x = a, *y = b;
	return (x->order > y->order) - (x->order < y->order);
}

static int
cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Marks which of the copies c[0..n), all of one Maildir, a mail reader has
 * moved to cur/ (new/<name> becomes cur/<name>:2,<flags>). cur/ is listed
 * once for all of them: a busy mailbox's cur/ can hold 100,000 names, and
 * listing it once per copy made a recovery quadratic. It is listed after
 * every copy's new/ check, so a message moved between its check and the
 * listing is still found, in cur/.
 */
static void
mark_moved(struct rcopy *c, size_t n)
{
	char p[8192];
	snprintf(p, sizeof p, "%s/cur", c[0].dir);
	DIR *d = opendir(p);
	if (d == NULL)
		return;
	char **v = NULL;
	size_t k = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;       /* ".", "..", and never one of our names */
		v = grow(v, k, &cap, sizeof *v);
		v[k++] = xstrndup(de->d_name, strcspn(de->d_name, ":"));
	}
	closedir(d);
	if (k == 0)
		return;         /* (qsort and bsearch take no NULL array) */
	qsort(v, k, sizeof *v, cmp_cstr);
	for (size_t i = 0; i < n; i++)
		c[i].moved = bsearch(&c[i].name, v, k, sizeof *v, cmp_cstr) != NULL;
	for (size_t i = 0; i < k; i++)
		free(v[i]);
	free(v);
}

static bool
all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/*
 * The offset of the first valid record in p[from..n) whose sequence number
 * is above seq, or n if there is none. A bad record with such a record after
 * it is damage in the middle of the segment, not a torn tail: the records
 * of a segment are written in sequence order, each group after the last
 * acknowledged one, so nothing written after a crash's torn record can
 * carry a higher number. (Stale records that a failed group's cut-back left
 * behind carry lower numbers than what overwrote them.)
 */
/*
 * Whether every mailbox of r is a Maildir under base as spool_mailbox_path
 * makes them: base, then components that are not empty and do not start
 * with '.'. Applied to the records found after damage (next_record): those
 * are found by searching the bytes for a valid record, and a message's
 * content can hold one, made up by its sender to name any path; a torn or
 * damaged record around it would let recovery write there. Records read
 * in sequence are not checked: their bytes are ours from the first one.
 */
static bool
rec_under(const struct jrec *r, const char *base)
{
	if (base == NULL)
		return true;
	size_t bl = strlen(base);
	while (bl > 1 && base[bl - 1] == '/')
		bl--;
	for (uint32_t i = 0; i < r->nbox; i++) {
		const char *dp, *np;
		size_t dl, nl;
		jrec_box(r, i, &dp, &dl, &np, &nl);
		if (dl <= bl + 1 || memcmp(dp, base, bl) != 0 || dp[bl] != '/')
			return false;
		for (size_t k = bl; k < dl; k++)
			if (dp[k] == '/' && (k + 1 == dl || dp[k + 1] == '/' || dp[k + 1] == '.'))
				return false;
	}
	return true;
}

static size_t
next_record(const unsigned char *p, size_t n, size_t from, uint64_t seq, const char *base)
{
	while (from + JREC_HEADER <= n) {
		const unsigned char *m = memmem(p + from, n - from, "EHJ1", 4);
		if (m == NULL)
			break;
		size_t at = (size_t)(m - p);
		struct jrec r;
		if (jrec_parse(p + at, n - at, &r) > 0 && r.seq > seq && rec_under(&r, base))
			return at;
		from = at + 1;
	}
	return n;
}

struct rjob {
	struct delivery d;
	char          **dirs, **names;
	int            *cst;        /* d.copy_status */
	char           *content;
	char            qid[32];
	uint64_t        off;        /* the record's offset in its segment */
};

static void
rjob_free(struct rjob *r)
{
	for (size_t i = 0; i < r->d.n; i++) {
		free(r->dirs[i]);
		free(r->names[i]);
	}
	free(r->dirs);
	free(r->names);
	free(r->cst);
	free(r->content);
}

/* What recovery does with the records it could not deliver. */
struct kept {
	journal_kept_fn *fn;        /* NULL: keep them for the next start */
	void            *arg;
	unsigned         segno;
	size_t           handed;    /* taken by fn: live in the segment */
	size_t           refused;   /* not taken: the segment must stay */
};

/*
 * Delivers the pending copies of up to RECOVER_BATCH records; returns the
 * number of jobs that failed. The copies that failed of each such job go
 * to k->fn (the running spool's retry queue), each job with the record's
 * offset and length, so that its content is read back from the segment at
 * the retry.
 */
static size_t
recover_flush(struct deliverer *dl, struct rjob *rj, size_t n, struct kept *k)
{
	struct delivery *v[RECOVER_BATCH];
	size_t failed = 0;
	for (size_t i = 0; i < n; i++)
		v[i] = &rj[i].d;
	if (n > 0)
		deliver_batch(dl, v, n);
	for (size_t i = 0; i < n; i++) {
		size_t ok = 0;
		for (size_t m = 0; m < rj[i].d.n; m++)
			ok += rj[i].cst[m] == 0;
		if (rj[i].d.status == 0) {
			log_info("%s: recovered from the spool journal to %zu mailbox%s",
			    rj[i].qid, rj[i].d.n, rj[i].d.n == 1 ? "" : "es");
			rjob_free(&rj[i]);
			continue;
		}
		failed++;
		if (ok > 0)
			log_info("%s: recovered from the spool journal to %zu of %zu "
			    "mailboxes", rj[i].qid, ok, rj[i].d.n);
		size_t nf = rj[i].d.n - ok, f = 0;
		char **dirs = xcalloc(nf, sizeof *dirs), **names = xcalloc(nf, sizeof *names);
		for (size_t m = 0; m < rj[i].d.n; m++) {
			if (rj[i].cst[m] == 0)
				continue;
			dirs[f] = rj[i].dirs[m];
			names[f] = rj[i].names[m];
			rj[i].dirs[m] = rj[i].names[m] = NULL;
			f++;
		}
		if (k->fn != NULL && k->fn(k->arg, rj[i].qid, dirs, names, nf, k->segno,
		    rj[i].off, rj[i].d.len))
			k->handed++;
		else {
			for (size_t m = 0; m < nf; m++) {
				free(dirs[m]);
				free(names[m]);
			}
			free(dirs);
			free(names);
			k->refused++;
		}
		rjob_free(&rj[i]);
	}
	return failed;
}

/* What recovery leaves of a segment. */
enum seg_fate {
	SEG_DROP,       /* every message delivered: unlink it */
	SEG_LIVE,       /* its undelivered messages wait in the retry queue
	                   (kept.handed of them): drop it once they are done */
	SEG_ASIDE,      /* damaged, every valid message delivered: rename it
	                   damaged.journal.<n>, for a person to look at */
	SEG_KEEP,       /* damaged, unreadable, or messages left for the next
	                   start: keep it while this process runs */
};

/*
 * Recovers one segment. Every valid record is delivered (the copies not in
 * new/ or cur/); the copies that fail go to k->fn, for the running spool
 * to retry. A segment is unlinked only when it was read to its end, held
 * nothing but valid records up to its torn tail, and every message in it
 * is delivered: a read error or a bad record in the middle keeps it, or
 * acknowledged messages after the damage would be destroyed with it.
 */
static enum seg_fate
recover_segment(struct journal *j, struct deliverer *dl, unsigned no, struct kept *k)
{
	char name[32];
	snprintf(name, sizeof name, "journal.%u", no);
	size_t len = 0;
	int rerr = 0;
	unsigned char *p = slurp(j->dirfd, name, &len, &rerr);
	if (p == NULL) {
		log_warn("spool journal: cannot read %s/%s: %s; kept", j->dir, name,
		    strerror(errno));
		return SEG_KEEP;
	}
	if (rerr != 0)
		log_warn("spool journal: %s/%s: read error at offset %zu: %s; delivering the "
		    "records before it and keeping the segment", j->dir, name, len,
		    strerror(rerr));
	/* 1. Every whole record, and each of its copies not in new/. */
	struct jrec *recs = NULL;
	uint64_t *roff = NULL;
	struct rcopy *cp = NULL;
	size_t nrec = 0, reccap = 0, offcap = 0, ncp = 0, cpcap = 0, off = 0, damaged = 0;
	uint64_t last = 0;
	while (off < len) {
		struct jrec r;
		long long n = jrec_parse(p + off, len - off, &r);
		if (n <= 0) {
			size_t next = next_record(p, len, off + 1, last, j->base);
			if (next < len) {
				/* Valid records after a bad one: damage, not a
				 * torn tail. Deliver what is valid, keep the rest. */
				log_err("spool journal: %s/%s: %zu damaged bytes at offset %zu, "
				    "followed by valid records; delivering those and keeping the "
				    "segment", j->dir, name, next - off, off);
				damaged++;
				off = next;
				continue;
			}
			/* The torn tail of a crash: never acknowledged. Zeros
			 * to the end are the unused part of the segment. */
			if (rerr == 0 && !all_zero(p + off, len - off))
				log_info("spool journal: %s/%s: %zu bytes after the last whole "
				    "record ignored", j->dir, name, len - off);
			break;
		}
		if (damaged > 0 && !rec_under(&r, j->base)) {
			/* After damage every record was found by a search:
			 * one naming a path outside the base is not ours. */
			size_t next = next_record(p, len, off + 1, last, j->base);
			log_err("spool journal: %s/%s: a record at offset %zu names a mailbox "
			    "outside %s; skipped", j->dir, name, off, j->base);
			off = next;
			continue;
		}
		if (r.seq > last)
			last = r.seq;
		if (r.seq > j->seq)
			j->seq = r.seq;
		recs = grow(recs, nrec, &reccap, sizeof *recs);
		roff = grow(roff, nrec, &offcap, sizeof *roff);
		roff[nrec] = off;
		off += (size_t)n;
		for (uint32_t i = 0; i < r.nbox; i++) {
			const char *dp, *np;
			size_t dlen, nlen;
			jrec_box(&r, i, &dp, &dlen, &np, &nlen);
			char *dir = xstrndup(dp, dlen), *fn = xstrndup(np, nlen);
			if (in_new(dir, fn)) {
				free(dir);
				free(fn);
				continue;
			}
			cp = grow(cp, ncp, &cpcap, sizeof *cp);
			cp[ncp] = (struct rcopy){ dir, fn, nrec, ncp, false };
			ncp++;
		}
		recs[nrec++] = r;
	}

	/* 2. The others may have been read already: cur/ once per Maildir. */
	size_t listings = 0, moved = 0;
	if (ncp > 1)
		qsort(cp, ncp, sizeof *cp, rcopy_by_dir);
	for (size_t i = 0; i < ncp;) {
		size_t e = i + 1;
		while (e < ncp && strcmp(cp[e].dir, cp[i].dir) == 0)
			e++;
		mark_moved(cp + i, e - i);
		listings++;
		for (size_t m = i; m < e; m++)
			moved += cp[m].moved;
		i = e;
	}
	if (ncp > 1)
		qsort(cp, ncp, sizeof *cp, rcopy_by_order);
	size_t missing = ncp;

	/* 3. Deliver the copies still missing, a record at a time. */
	struct rjob *rj = xcalloc(RECOVER_BATCH, sizeof *rj);
	size_t nrj = 0, failed = 0, records = nrec;
	k->segno = no;
	k->handed = k->refused = 0;
	for (size_t i = 0; i < ncp;) {
		size_t e = i;
		while (e < ncp && cp[e].rec == cp[i].rec)
			e++;
		const struct jrec *r = &recs[cp[i].rec];
		struct rjob *x = &rj[nrj];
		x->dirs = xcalloc(e - i, sizeof *x->dirs);
		x->names = xcalloc(e - i, sizeof *x->names);
		x->off = roff[cp[i].rec];
		size_t n = 0;
		for (size_t m = i; m < e; m++) {
			if (cp[m].moved) {
				free(cp[m].dir);
				free(cp[m].name);
				continue;
			}
			x->dirs[n] = cp[m].dir;
			x->names[n] = cp[m].name;
			n++;
		}
		i = e;
		snprintf(x->qid, sizeof x->qid, "%.*s", (int)(r->qidlen < 31 ? r->qidlen : 31), r->qid);
		if (n == 0) {
			free(x->dirs);
			free(x->names);
			memset(x, 0, sizeof *x);
			continue;
		}
		x->content = xmalloc(r->len ? (size_t)r->len : 1);
		memcpy(x->content, r->content, (size_t)r->len);
		x->d.content = x->content;
		x->d.len = (size_t)r->len;
		x->d.mailboxes = x->dirs;
		x->d.names = x->names;
		x->d.n = n;
		x->d.qid = x->qid;
		/* Each copy on its own, as after a 250 (spool.c job_finish): a
		 * copy delivered now is in new/ at the next start, which then
		 * skips it, whatever became of the others. */
		x->cst = xcalloc(n, sizeof *x->cst);
		x->d.copy_status = x->cst;
		if (++nrj == RECOVER_BATCH) {
			failed += recover_flush(dl, rj, nrj, k);
			memset(rj, 0, RECOVER_BATCH * sizeof *rj);
			nrj = 0;
		}
	}
	free(cp);
	free(recs);
	free(roff);
	failed += recover_flush(dl, rj, nrj, k);
	free(rj);
	free(p);
	if (failed > 0)
		log_warn("spool journal: %s/%s: %zu of %zu messages could not be delivered; %s",
		    j->dir, name, failed, records, k->refused > 0 ? "kept for the next start" :
		    "retrying them every 10 s");
	else if (records > 0)
		log_info("spool journal: %s/%s: %zu messages checked, all delivered; of %zu "
		    "copies not in new/, %zu were in cur/ (%zu cur/ listing%s)", j->dir, name,
		    records, missing, moved, listings, listings == 1 ? "" : "s");
	if (rerr != 0 || damaged > 0) {
		/*
		 * Never removed: what cannot be read, or what the damage hides,
		 * may be acknowledged mail. A damaged segment whose valid
		 * messages are all delivered is moved aside, as Postfix moves
		 * a corrupt queue file to its "corrupt" queue: later starts do
		 * not scan and log it again (a power cut that tore a group
		 * that was never acknowledged looks the same, and is common
		 * enough not to want a person at every start), and it stays
		 * for someone to look at.
		 */
		if (damaged > 0 && rerr == 0 && failed == 0 && k->refused == 0)
			return SEG_ASIDE;
		if (damaged > 0)
			log_err("spool journal: %s/%s: kept (damaged records); remove it once "
			    "what it holds is checked", j->dir, name);
		else
			log_warn("spool journal: %s/%s: kept (a read error); the next start "
			    "reads it again", j->dir, name);
		return SEG_KEEP;
	}
	if (k->refused > 0)
		return SEG_KEEP;
	return failed > 0 ? SEG_LIVE : SEG_DROP;
}

/*
 * Fills a new segment with len zeros and makes them durable (see the top of
 * this file). On failure (a full disk, typically) the file is cut back to
 * empty and records are appended instead: slower, still correct. Returns
 * the errno value of the failure, or 0.
 */
static int
prezero(int fd, size_t len)
{
	unsigned char *zeros = xcalloc(1, ZERO_CHUNK);
	int e = 0;
	for (off_t off = 0; off < (off_t)len && e == 0;) {
		size_t chunk = len - (size_t)off < ZERO_CHUNK ? len - (size_t)off : ZERO_CHUNK;
		ssize_t w = pwrite(fd, zeros, chunk, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			e = w < 0 ? errno : EIO;
		else
			off += w;
	}
	free(zeros);
	if (e == 0 && fdatasync(fd) != 0)
		e = errno;
	if (e != 0 && ftruncate(fd, 0) != 0)
		log_warn("spool journal: truncate after a failed pre-fill: %s", strerror(errno));
	return e;
}

/* Opens segment no as the current one (creating and pre-filling it) and
 * makes its name durable before any record goes in. */
static int
start_segment(struct journal *j, unsigned no)
{
	char p[4096];
	seg_path(j, no, p, sizeof p);
	int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	int e = prezero(fd, j->segmax);
	if (e != 0)
		log_warn("spool journal: %s: cannot pre-fill %zu KiB (%s); appending instead",
		    p, j->segmax >> 10, strerror(e));
	if (fsync(j->dirfd) != 0) {
		e = errno;
		close(fd);
		unlink(p);
		return e;
	}
	struct segment *s = xcalloc(1, sizeof *s);
	s->no = no;
	s->fd = fd;
	pthread_mutex_lock(&j->mu);
	s->next = j->segs;
	j->segs = s;
	pthread_mutex_unlock(&j->mu);
	j->fd = fd;
	j->cur = no;
	j->size = 0;
	return 0;
}

/* Under j->mu: the segment numbered no, or NULL. */
static struct segment *
seg_find(struct journal *j, unsigned no)
{
	struct segment *s = j->segs;
	while (s != NULL && s->no != no)
		s = s->next;
	return s;
}

/* Under j->mu: unlinks and forgets segment s if it is drained and closed. */
static void
maybe_drop(struct journal *j, struct segment *s)
{
	if (s->live > 0 || s->no == j->cur)
		return;
	char p[4096];
	seg_path(j, s->no, p, sizeof p);
	if (unlink(p) != 0 && errno != ENOENT)
		log_warn("spool journal: unlink %s: %s", p, strerror(errno));
	for (struct segment **pp = &j->segs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			if (s->fd >= 0)
				close(s->fd);
			free(s);
			return;
		}
}

struct journal *
journal_open(const char *dir, size_t segmax, const char *base, struct deliverer *dl,
    journal_kept_fn *kept_fn, void *kept_arg, struct buf *err)
{
	struct journal *j = xcalloc(1, sizeof *j);
	j->base = base;
	j->dir = xstrdup(dir);
	j->segmax = segmax ? segmax : JOURNAL_SEGMENT_MAX;
	j->fd = -1;
	pthread_mutex_init(&j->mu, NULL);
	j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dirfd < 0) {
		buf_appendf(err, "spool journal: %s: %s", dir, strerror(errno));
		journal_close(&j);
		return NULL;
	}

	/* Recovery, oldest segment first. */
	DIR *d = fdopendir(dup(j->dirfd));
	if (d == NULL) {
		buf_appendf(err, "spool journal: %s: %s", dir, strerror(errno));
		journal_close(&j);
		return NULL;
	}
	unsigned *nos = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		unsigned no;
		if (!seg_name(de->d_name, &no))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			nos = xrealloc(nos, cap * sizeof *nos);
		}
		nos[n++] = no;
	}
	closedir(d);
	if (n > 1)
		qsort(nos, n, sizeof *nos, cmp_uint);
	unsigned next = 1;
	bool removed = false;
	struct kept k = { .fn = kept_fn, .arg = kept_arg };
	for (size_t i = 0; i < n; i++) {
		enum seg_fate f = recover_segment(j, dl, nos[i], &k);
		if (f == SEG_DROP) {
			char p[4096];
			seg_path(j, nos[i], p, sizeof p);
			if (unlink(p) == 0)
				removed = true;
		} else if (f == SEG_ASIDE) {
			/* A name of its own: segment numbers start again at 1
			 * once a journal empties, and an earlier damaged file
			 * (maybe holding the only copy of a message) must not
			 * be replaced. */
			char from[64], to[96];
			snprintf(from, sizeof from, "journal.%u", nos[i]);
			int r = -1;
			for (unsigned u = 0; u < 1000 && r != 0; u++) {
				snprintf(to, sizeof to, "damaged.journal.%u.%lld.%u", nos[i],
				    (long long)time(NULL), u);
				r = renameat2(j->dirfd, from, j->dirfd, to, RENAME_NOREPLACE);
				if (r != 0 && errno != EEXIST)
					break;
			}
			if (r == 0) {
				removed = true;
				log_err("spool journal: %s/%s: damaged records; every valid message "
				    "in it is delivered; moved aside to %s for a person to check, "
				    "then remove", dir, from, to);
			} else {
				log_err("spool journal: %s/%s: damaged records; cannot move it "
				    "aside to %s (%s): kept", dir, from, to, strerror(errno));
			}
		} else if (f == SEG_LIVE) {
			/* Live until its messages' retries deliver them. */
			struct segment *s = xcalloc(1, sizeof *s);
			char name[64];
			snprintf(name, sizeof name, "journal.%u", nos[i]);
			s->no = nos[i];
			s->live = k.handed;
			s->fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
			s->next = j->segs;
			j->segs = s;
		}
		if (nos[i] >= next)
			next = nos[i] + 1;
	}
	free(nos);
	j->base = NULL;         /* the caller's, valid during this call only */
	if (removed)
		(void)fsync(j->dirfd);
	if (next == 0)
		next = 1;       /* wrapped after 2^32 segments: start over */

	int e = start_segment(j, next);
	if (e != 0) {
		buf_appendf(err, "spool journal: cannot create %s/journal.%u: %s", dir, next,
		    strerror(e));
		journal_close(&j);
		return NULL;
	}
	return j;
}

uint64_t
journal_next_seq(struct journal *j)
{
	return ++j->seq;
}

/*
 * A group's write or fdatasync failed: cut the segment back to its last
 * whole, acknowledged record, so that nothing of the group (its sessions
 * get 451, and their clients will send the messages again) is recovered
 * after a crash as well: a duplicate delivery. After a failed fdatasync
 * the page state is unknown (the "fsyncgate" lesson: the kernel may have
 * marked pages clean that never reached the disk, and may even have
 * written the whole group), so the same bytes are not retried as if
 * written; the cut is fsynced before the 451, so that a record the disk
 * did get is not behind the durable end of the file. The rest of the
 * segment then grows by appends (slower, still correct). If the cut fails
 * too, the next group still overwrites from the same offset, and the CRC
 * stops recovery at whatever damage is left after it.
 */
static void
cut_back(struct journal *j, const char *what)
{
	if (ftruncate(j->fd, (off_t)j->size) != 0)
		log_warn("spool journal: truncate after a failed %s: %s", what,
		    strerror(errno));
	else if (fsync(j->fd) != 0)
		log_warn("spool journal: fsync of the truncation after a failed %s: %s",
		    what, strerror(errno));
}

/*
 * Writes a group after the last record and fdatasync()s it; 0, or the
 * errno value of the failure after cut_back().
 */
static int
write_group(struct journal *j, const struct buf *records)
{
	const char *p = records->data;
	size_t left = records->len;
	off_t at = (off_t)j->size;
	while (left > 0) {
		ssize_t w = pwrite(j->fd, p, left, at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;
			cut_back(j, "write");
			return e;
		}
		p += w;
		at += w;
		left -= (size_t)w;
	}
	if (fdatasync(j->fd) != 0) {
		int e = errno;
		cut_back(j, "fdatasync");
		return e;
	}
	return 0;
}

/*
 * A group did not fit (ENOSPC, EDQUOT): if every message in the current
 * segment is delivered, empty the segment so that the group can go in at
 * offset 0. Without this a segment whose pre-fill failed (a small or full
 * file system) only ever grew by appends, never reached the length that
 * rolls it, and kept its delivered records, and the space they take, until
 * a restart: every message larger than what was left got 452.
 *
 * Safe because live == 0 means every record's copies are durable in their
 * new/ (journal_release comes after new/'s fsync), and nothing but this
 * thread adds to the current segment's count. The cut to 0 is fsynced
 * before any new record is written (STACK.md section 7, "durability"):
 * otherwise a crash could keep the old length, and the old records after
 * the new ones would still pass the CRC and be replayed. The name does not
 * change, so the directory needs no fsync (a rotation's new name does).
 * Returns true if the segment is now empty.
 */
static bool
reset_if_drained(struct journal *j, int why)
{
	if (j->size == 0)
		return false;
	pthread_mutex_lock(&j->mu);
	struct segment *s = seg_find(j, j->cur);
	bool drained = s == NULL || s->live == 0;
	pthread_mutex_unlock(&j->mu);
	if (!drained)
		return false;
	if (ftruncate(j->fd, 0) != 0 || fsync(j->fd) != 0) {
		log_warn("spool journal: %s/journal.%u: cannot empty the drained segment: %s",
		    j->dir, j->cur, strerror(errno));
		return false;
	}
	log_info("spool journal: %s/journal.%u: %s with every message in it delivered; "
	    "emptied it (%llu bytes)", j->dir, j->cur, strerror(why),
	    (unsigned long long)j->size);
	j->size = 0;
	return true;
}

/* Starts the next segment and closes the current one, which goes once
 * its messages are delivered (maybe_drop). 0, or the errno value of
 * start_segment, the current segment staying current. */
static int
roll(struct journal *j)
{
	unsigned old = j->cur;
	int e = start_segment(j, j->cur + 1 ? j->cur + 1 : 1);
	if (e != 0)
		return e;
	/* The old descriptor stays with its segment (retries read through
	 * it) until maybe_drop closes it. */
	pthread_mutex_lock(&j->mu);
	struct segment *sg = seg_find(j, old);
	if (sg != NULL)
		maybe_drop(j, sg);
	pthread_mutex_unlock(&j->mu);
	return 0;
}

/*
 * The current segment lost its name: someone removed it, or the whole
 * journal directory, while ehlod runs. Records written to it could never
 * be found by a restart, so no 250 may rest on it (an audit saw 250s go on
 * into the deleted file). Reopen the directory by its name and start a new
 * segment there; if that fails, the append fails (451) until the
 * directory is back. Messages of the removed segment still waiting for
 * their Maildirs are delivered by this process, but a crash now loses them.
 */
static int
segment_vanished(struct journal *j)
{
	log_err("spool journal: %s/journal.%u was removed while in use: messages in it that "
	    "are not yet in their Maildirs are lost if ehlod stops before delivering them",
	    j->dir, j->cur);
	int dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int e = errno;
		log_err("spool journal: %s: %s; refusing mail (451) until it is back", j->dir,
		    strerror(e));
		return e;
	}
	close(j->dirfd);
	j->dirfd = dfd;
	int e = roll(j);
	if (e != 0)
		log_err("spool journal: cannot start segment %u in %s: %s", j->cur + 1, j->dir,
		    strerror(e));
	return e;
}

int
journal_append(struct journal *j, const struct buf *records, size_t nmsg, unsigned *segno,
    uint64_t *at)
{
	struct stat st;
	if (fstat(j->fd, &st) == 0 && st.st_nlink == 0) {
		int e = segment_vanished(j);
		if (e != 0)
			return e;
	}
	if (j->size >= j->segmax) {
		int e = roll(j);
		if (e != 0)
			log_warn("spool journal: cannot start segment %u, staying on %u: %s",
			    j->cur + 1, j->cur, strerror(e));
	}
	int e = write_group(j, records);
	/* Out of space: the delivered records may be what fills the disk.
	 * One more try in the emptied segment; the group was cut off above,
	 * and is written again from its first byte. */
	if ((e == ENOSPC || e == EDQUOT) && reset_if_drained(j, e))
		e = write_group(j, records);
	if (e != 0)
		return e;
	*at = j->size;
	j->size += records->len;
	pthread_mutex_lock(&j->mu);
	struct segment *s = seg_find(j, j->cur);
	if (s != NULL)
		s->live += nmsg;
	pthread_mutex_unlock(&j->mu);
	*segno = j->cur;
	return 0;
}

static int
pread_full(int fd, void *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno;
		if (r == 0)
			return EIO;
		p = (char *)p + r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/*
 * The segment cannot be dropped or emptied under us: the caller's message
 * is live in it (maybe_drop and reset_if_drained need live == 0), and the
 * bytes of a record whose fdatasync returned are never written again.
 */
int
journal_read_content(struct journal *j, unsigned segno, uint64_t off, const char *qid,
    size_t len, char **content)
{
	/* Through the segment's own descriptor (a copy, taken under the lock
	 * maybe_drop closes it under), so that a segment removed by hand can
	 * still be read; by name if it has none. */
	pthread_mutex_lock(&j->mu);
	struct segment *sg = seg_find(j, segno);
	int fd = sg != NULL && sg->fd >= 0 ? fcntl(sg->fd, F_DUPFD_CLOEXEC, 0) : -1;
	pthread_mutex_unlock(&j->mu);
	if (fd < 0) {
		char path[4096];
		seg_path(j, segno, path, sizeof path);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return errno;
	unsigned char hdr[JREC_HEADER];
	int e = pread_full(fd, hdr, sizeof hdr, off);
	unsigned char *rec = NULL;
	if (e == 0) {
		uint32_t plen = (uint32_t)hdr[4] | (uint32_t)hdr[5] << 8 |
		    (uint32_t)hdr[6] << 16 | (uint32_t)hdr[7] << 24;
		size_t total = JREC_HEADER + (size_t)plen;
		struct jrec r;
		if (plen > JREC_PAYLOAD_MAX || plen < len) {
			e = EIO;
		} else {
			rec = xmalloc(total);
			e = pread_full(fd, rec, total, off);
		}
		if (e == 0 && (jrec_parse(rec, total, &r) != (long long)total ||
		    r.type != JREC_TYPE_MESSAGE || r.len != len ||
		    r.qidlen != strlen(qid) || memcmp(r.qid, qid, r.qidlen) != 0))
			e = EIO;
		if (e == 0) {
			*content = xmalloc(len ? len : 1);
			memcpy(*content, r.content, len);
		}
	}
	free(rec);
	close(fd);
	return e;
}

void
journal_release(struct journal *j, unsigned segno)
{
	pthread_mutex_lock(&j->mu);
	struct segment *s = seg_find(j, segno);
	if (s != NULL) {
		if (s->live > 0)
			s->live--;
		maybe_drop(j, s);
	}
	pthread_mutex_unlock(&j->mu);
}

void
journal_close(struct journal **jp)
{
	struct journal *j = *jp;
	if (j == NULL)
		return;
	/* Drained segments other than the current one are already gone. The
	 * current one is removed too when nothing in it is live: a clean stop
	 * leaves an empty directory. */
	if (j->fd >= 0) {
		pthread_mutex_lock(&j->mu);
		struct segment *s = seg_find(j, j->cur);
		bool empty = s == NULL || s->live == 0;
		pthread_mutex_unlock(&j->mu);
		if (empty) {
			char p[4096];
			seg_path(j, j->cur, p, sizeof p);
			(void)unlink(p);
		}
	}
	while (j->segs != NULL) {
		struct segment *s = j->segs;
		j->segs = s->next;
		if (s->fd >= 0)
			close(s->fd);
		free(s);
	}
	if (j->dirfd >= 0)
		close(j->dirfd);
	pthread_mutex_destroy(&j->mu);
	free(j->dir);
	x_free(jp);
}
