/*
 * addrmap: a hash set of lowercased addresses (open addressing, FNV-1a),
 * loaded once and read-only afterwards, so lookups from several threads
 * need no lock.
 */
#include "config/addrmap.h"
#include "lib/idna.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xmalloc.h"
#include "proto/path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ADDRMAP_MAX_FILE  (256u * 1024 * 1024)
#define ADDRMAP_MAX_KEY   320     /* 64 local part + '@' + 255 domain (RFC 5321 §4.5.3.1) */

struct addrmap {
	char   **keys;                /* owned, lowercase */
	size_t   nkeys;
	size_t  *slots;               /* index + 1 into keys; 0 = empty */
	size_t   nslots;              /* power of two, at least 2 * nkeys */
};

static uint64_t
hash_lower(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)ascii_lower(s[i]);
		h *= 1099511628211ULL;
	}
	return h;
}

/* Slot holding s[0..n) (case-insensitively), or the empty slot for it. */
static size_t
find_slot(const struct addrmap *m, const char *s, size_t n)
{
	size_t mask = m->nslots - 1, i = (size_t)hash_lower(s, n) & mask;
	while (m->slots[i] != 0 && !ascii_ieqn(s, n, m->keys[m->slots[i] - 1]))
		i = (i + 1) & mask;
	return i;
}

static void
grow(struct addrmap *m)
{
	size_t old = m->nslots;
	size_t *slots = m->slots;
	m->nslots = old ? old * 2 : 64;
	m->slots = xcalloc(m->nslots, sizeof(*m->slots));
	for (size_t i = 0; i < old; i++)
		if (slots[i] != 0) {
			const char *k = m->keys[slots[i] - 1];
			m->slots[find_slot(m, k, strlen(k))] = slots[i];
		}
	free(slots);
}

static void
add_key(struct addrmap *m, const char *s, size_t n)
{
	if (2 * (m->nkeys + 1) > m->nslots)
		grow(m);
	size_t i = find_slot(m, s, n);
	if (m->slots[i] != 0)
		return;                 /* duplicate */
	m->keys = xrealloc(m->keys, (m->nkeys + 1) * sizeof(*m->keys));
	char *k = xstrndup(s, n);
	ascii_lower_str(k);
	m->keys[m->nkeys++] = k;
	m->slots[i] = m->nkeys;
}

static bool
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* "local@domain" or "@domain": one '@', non-empty domain, printable ASCII. */
static bool
key_ok(const char *s, size_t n)
{
	const char *at = memchr(s, '@', n);
	if (n > ADDRMAP_MAX_KEY || at == NULL || at == s + n - 1)
		return false;
	if (memchr(at + 1, '@', n - (size_t)(at + 1 - s)) != NULL)
		return false;
	/* UTF-8 is allowed (RFC 6531 addresses: the server accepts them in an
	 * SMTPUTF8 transaction, so a map must be able to list them); control
	 * bytes, spaces and malformed UTF-8 are not. Only ASCII is folded. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] == 0x7f)
			return false;
	return utf8_valid(s, n);
}

static struct addrmap *
load_text(const char *text, size_t len, const char *name, bool quote, struct buf *err);

struct addrmap *
addrmap_load_buffer(const char *text, size_t len, const char *name, struct buf *err)
{
	return load_text(text, len, name, true, err);
}

/* Appends the bad key k[0..n) quoted, or a note if quote is false. */
static void
bad_key(struct buf *err, const char *k, size_t n, bool quote)
{
	if (!quote) {
		buf_append_str(err, "(not quoted: the file is not world-readable)");
		return;
	}
	buf_append_char(err, '"');
	log_sanitize(err, k, n, 80);
	buf_append_char(err, '"');
}

/*
 * quote: whether an error may show the offending text. A map is read as
 * root at start, and its errors are logged where the mail owner may read
 * them: a file only root may read (or one a link planted by the mail owner
 * names, /etc/shadow say) has its line number told, not its content.
 */
static struct addrmap *
load_text(const char *text, size_t len, const char *name, bool quote, struct buf *err)
{
	struct addrmap *m = xcalloc(1, sizeof(*m));
	unsigned line = 0;
	size_t p = 0;

	grow(m);
	while (p < len) {
		const char *nl = memchr(text + p, '\n', len - p);
		size_t e = nl ? (size_t)(nl - text) : len, s = p, t;
		p = nl ? e + 1 : len;
		line++;
		/* A line starting with whitespace continues the ignored value column. */
		if (e == s || is_space((unsigned char)text[s]))
			continue;
		if (text[s] == '#')
			continue;
		for (t = s; t < e && !is_space((unsigned char)text[t]); t++)
			;
		if (!key_ok(text + s, t - s)) {
			buf_appendf(err, "%s:%u: bad address ", name, line);
			bad_key(err, text + s, t - s, quote);
			buf_append_str(err, " (expected local@domain or @domain)");
			addrmap_free(&m);
			return NULL;
		}
		/* A UTF-8 domain is kept in its A-label form (RFC 5890), the
		 * form the server looks up, so that either form in the map
		 * matches either form in RCPT. */
		const char *at = memchr(text + s, '@', t - s);
		if (idna_has_utf8(at + 1, (size_t)(text + t - (at + 1)))) {
			struct buf k = BUF_INIT;
			buf_append(&k, text + s, (size_t)(at + 1 - (text + s)));
			if (!idna_to_ascii(at + 1, (size_t)(text + t - (at + 1)), &k)) {
				buf_appendf(err, "%s:%u: bad domain in ", name, line);
				bad_key(err, text + s, t - s, quote);
				buf_free(&k);
				addrmap_free(&m);
				return NULL;
			}
			add_key(m, k.data, k.len);
			buf_free(&k);
			continue;
		}
		add_key(m, text + s, t - s);
	}
	return m;
}

struct addrmap *
addrmap_load(const char *path, struct buf *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		buf_appendf(err, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (unsigned long long)st.st_size > ADDRMAP_MAX_FILE) {
		buf_appendf(err, "%s: not a regular file of at most %u bytes", path,
		    ADDRMAP_MAX_FILE);
		close(fd);
		return NULL;
	}
	size_t cap = (size_t)st.st_size + 1, len = 0;
	char *text = xmalloc(cap);
	for (;;) {
		if (len == cap) {
			if (cap > ADDRMAP_MAX_FILE) {
				buf_appendf(err, "%s: larger than %u bytes", path, ADDRMAP_MAX_FILE);
				goto fail;
			}
			cap *= 2;
			text = xrealloc(text, cap);
		}
		ssize_t r = read(fd, text + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			buf_appendf(err, "%s: read error: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	struct addrmap *m = load_text(text, len, path, (st.st_mode & S_IROTH) != 0, err);
	free(text);
	return m;
fail:
	close(fd);
	free(text);
	return NULL;
}

bool
addrmap_contains(const struct addrmap *m, const char *addr)
{
	size_t n = strlen(addr);
	if (m == NULL || n == 0)
		return false;
	if (m->slots[find_slot(m, addr, n)] != 0)
		return true;
	const char *at = strrchr(addr, '@');
	if (at == NULL || at == addr)
		return false;
	n -= (size_t)(at - addr);
	return m->slots[find_slot(m, at, n)] != 0;
}

size_t
addrmap_count(const struct addrmap *m)
{
	return m ? m->nkeys : 0;
}

void
addrmap_free(struct addrmap **mp)
{
	struct addrmap *m = *mp;
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nkeys; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->slots);
	free(m);
	*mp = NULL;
}
