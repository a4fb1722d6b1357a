/*
 * Maildir creation with a cache of the Maildirs known to exist.
 *
 * Delivery threads ask for a Maildir before every copy, so the common case
 * (it exists) is one hash lookup under a mutex. Creation is rare and slow
 * (several mkdir and fsync calls) and runs under a second mutex so that
 * lookups are not held up and two threads never create the same tree at
 * once: a thread that merely saw EEXIST must not deliver into a directory
 * whose creation another thread has not made durable yet.
 *
 * Durability: a new directory entry is only on stable storage once its
 * parent directory is fsynced, so every mkdir that succeeds is followed by
 * an fsync of the parent. Otherwise a crash could lose new/ itself, and
 * with it messages we already acknowledged. The new directory is fsynced
 * too: on a file system that does not order its metadata (ext4 without a
 * journal) nothing else writes its inode and its "." and ".." block before
 * write-back does, and a power cut in between leaves a corrupt directory
 * that stops the boot's e2fsck -p (tests/e2e/test_powerloss.py; cur/ is
 * never fsynced by delivery).
 *
 * The first time the process uses a Maildir, and every 8 hours of use after
 * that, it also removes the leftovers in its tmp/ (maildir_sweep_tmp;
 * spool_int.h says why and which).
 */
#include "spool/spool_int.h"
#include "spool/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

#define DIRCACHE_INIT_CAP 64

struct dc_ent {
	time_t swept;           /* when tmp/ was last swept */
	char   dir[];
};

/* What the cache knows of a Maildir at a given time. */
enum dc_state {
	DC_ABSENT,              /* not known to exist: create it, then sweep */
	DC_FRESH,               /* exists, swept less than 8 hours ago */
	DC_DUE,                 /* exists, its sweep is due */
};

void
dircache_init(struct dircache *c)
{
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->create_mu, NULL);
	c->cap = DIRCACHE_INIT_CAP;
	c->slot = xcalloc(c->cap, sizeof *c->slot);
	c->used = 0;
	c->clock = NULL;
	atomic_init(&c->tmp_removed, 0);
}

void
dircache_destroy(struct dircache *c)
{
	for (size_t i = 0; i < c->cap; i++)
		free(c->slot[i]);
	x_free(&c->slot);
	c->cap = c->used = 0;
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->create_mu);
}

/* FNV-1a: cheap and good enough for path strings we produced ourselves. */
static size_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* Slot holding s, or the empty slot where it would go. Under c->mu. */
static size_t
find_slot(const struct dircache *c, const char *s)
{
	size_t mask = c->cap - 1;
	size_t i = hash_str(s) & mask;

	while (c->slot[i] != NULL && strcmp(c->slot[i]->dir, s) != 0)
		i = (i + 1) & mask;
	return i;
}

static enum dc_state
cache_state(struct dircache *c, const char *dir, time_t now)
{
	pthread_mutex_lock(&c->mu);
	const struct dc_ent *e = c->slot[find_slot(c, dir)];
	/* A clock that went back makes the sweep due: it runs once more
	 * and records the new time. */
	enum dc_state st = e == NULL ? DC_ABSENT
	    : now >= e->swept && now - e->swept < MAILDIR_TMP_SWEEP_EVERY_SEC
	    ? DC_FRESH : DC_DUE;
	pthread_mutex_unlock(&c->mu);
	return st;
}

/* Records dir as existing, its tmp/ swept at swept. */
static void
cache_put(struct dircache *c, const char *dir, time_t swept)
{
	pthread_mutex_lock(&c->mu);
	struct dc_ent *e = c->slot[find_slot(c, dir)];
	if (e == NULL) {
		/* Keep the load below 1/2 so probes stay short. */
		if ((c->used + 1) * 2 > c->cap) {
			struct dc_ent **old = c->slot;
			size_t oldcap = c->cap;
			c->cap = oldcap * 2;
			c->slot = xcalloc(c->cap, sizeof *c->slot);
			for (size_t i = 0; i < oldcap; i++)
				if (old[i] != NULL)
					c->slot[find_slot(c, old[i]->dir)] =
					    old[i];
			free(old);
		}
		size_t len = strlen(dir) + 1;
		e = xmalloc(sizeof *e + len);
		memcpy(e->dir, dir, len);
		c->slot[find_slot(c, dir)] = e;
		c->used++;
	}
	e->swept = swept;
	pthread_mutex_unlock(&c->mu);
}

void
dircache_forget(struct dircache *c, const char *dir)
{
	pthread_mutex_lock(&c->mu);
	size_t i = find_slot(c, dir);
	if (c->slot[i] != NULL) {
		/* Backward-shift deletion keeps every probe chain intact. */
		x_free(&c->slot[i]);
		c->used--;
		size_t mask = c->cap - 1;
		size_t j = i;
		for (;;) {
			j = (j + 1) & mask;
			if (c->slot[j] == NULL)
				break;
			size_t home = hash_str(c->slot[j]->dir) & mask;
			/* Move j back into the hole unless its home lies
			 * cyclically in (i, j]. */
			bool stays = i <= j ? (home > i && home <= j)
			    : (home > i || home <= j);
			if (!stays) {
				c->slot[i] = c->slot[j];
				c->slot[j] = NULL;
				i = j;
			}
		}
	}
	pthread_mutex_unlock(&c->mu);
}

int
spool_dir_fsync(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int e = fsync(fd) == 0 ? 0 : errno;
	close(fd);
	return e;
}

static int
fsync_parent(char *path)
{
	char *slash = strrchr(path, '/');

	if (slash == NULL)
		return spool_dir_fsync(".");
	if (slash == path)
		return spool_dir_fsync("/");
	*slash = '\0';
	int e = spool_dir_fsync(path);
	*slash = '/';
	return e;
}

int
spool_dir_made_durable(char *path)
{
	int e = spool_dir_fsync(path);
	return e != 0 ? e : fsync_parent(path);
}

/*
 * mkdir -p for one path (modified in place and restored). Each directory
 * created is made durable in its parent before the next level is made.
 */
static int
ensure_dir(char *path)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return spool_dir_made_durable(path);
	int e = errno;
	if (e == EEXIST) {
		if (stat(path, &st) != 0)
			return errno;
		return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
	}
	if (e != ENOENT)
		return e;

	char *slash = strrchr(path, '/');
	if (slash == NULL || slash == path)
		return ENOENT;
	*slash = '\0';
	e = ensure_dir(path);
	*slash = '/';
	if (e != 0)
		return e;
	if (mkdir(path, 0700) == 0)
		return spool_dir_made_durable(path);
	e = errno;
	if (e == EEXIST && stat(path, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
	return e;
}

bool
maildir_tmp_stale(const struct stat *st, time_t now)
{
	if (!S_ISREG(st->st_mode))
		return false;
	/* A clock before 1970 plus 36 hours is broken: judge nothing stale
	 * (and keep now - age from overflowing). */
	if (now < (time_t)MAILDIR_TMP_STALE_SEC)
		return false;
	time_t cut = now - MAILDIR_TMP_STALE_SEC;
	return st->st_atime <= cut && st->st_mtime <= cut &&
	    st->st_ctime <= cut;
}

size_t
maildir_sweep_tmp(const char *tmpdir, time_t now)
{
	/*
	 * Never through a symbolic link: a tmp/ that names a directory
	 * elsewhere would have the sweep remove that directory's old files
	 * (ENOTDIR or ELOOP here, logged). A Maildir itself may be a link (operators
	 * alias domains and mailboxes so); its tmp/ is ours.
	 */
	int tfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *dp = tfd >= 0 ? fdopendir(tfd) : NULL;
	if (dp == NULL && tfd >= 0) {
		int e = errno;
		close(tfd);
		errno = e;
	}
	if (dp == NULL) {
		if (errno != ENOENT) {
			struct buf safe = BUF_INIT;
			char ebuf[128];
			log_warn("spool: cannot list %s: %s",
			    log_sanitize(&safe, tmpdir, strlen(tmpdir), 512),
			    strerror_r(errno, ebuf, sizeof ebuf));
			buf_free(&safe);
		}
		return 0;
	}
	int dfd = dirfd(dp);
	size_t removed = 0;
	struct dirent *de;
	while ((de = readdir(dp)) != NULL) {
		const char *n = de->d_name;
		if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')))
			continue;
		struct stat st;
		if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !maildir_tmp_stale(&st, now))
			continue;
		if (unlinkat(dfd, n, 0) == 0)
			removed++;
	}
	closedir(dp);
	if (removed > 0) {
		struct buf safe = BUF_INIT;
		log_info("spool: removed %zu leftover file%s older than %d "
		    "hours from %s", removed, removed == 1 ? "" : "s",
		    MAILDIR_TMP_STALE_SEC / 3600,
		    log_sanitize(&safe, tmpdir, strlen(tmpdir), 512));
		buf_free(&safe);
	}
	return removed;
}

int
dircache_ensure(struct dircache *c, const char *dir)
{
	time_t now = c->clock != NULL ? c->clock() : time(NULL);
	if (cache_state(c, dir, now) == DC_FRESH)
		return 0;

	pthread_mutex_lock(&c->create_mu);
	int e = 0;
	/* Again under create_mu: another thread may have just done it. */
	enum dc_state st = cache_state(c, dir, now);
	if (st != DC_FRESH) {
		static const char *const sub[] = { "tmp", "new", "cur" };
		struct buf p = BUF_INIT;

		if (st == DC_ABSENT) {
			buf_append_str(&p, dir);
			e = ensure_dir(p.data);
			for (size_t i = 0;
			    e == 0 && i < sizeof sub / sizeof sub[0]; i++) {
				buf_reset(&p);
				buf_appendf(&p, "%s/%s", dir, sub[i]);
				e = ensure_dir(p.data);
			}
		}
		if (e == 0) {
			buf_reset(&p);
			buf_appendf(&p, "%s/tmp", dir);
			size_t n = maildir_sweep_tmp(p.data, now);
			atomic_fetch_add_explicit(&c->tmp_removed, n,
			    memory_order_relaxed);
			cache_put(c, dir, now);
		}
		buf_free(&p);
	}
	pthread_mutex_unlock(&c->create_mu);
	return e;
}
