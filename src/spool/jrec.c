/* Spool journal record codec; the format is in jrec.h. */
#include "spool/jrec.h"

#include <string.h>

#include "lib/crc32c.h"

static const unsigned char magic[4] = { 'E', 'H', 'J', '1' };

/* Appends the n low bytes of v, least significant first. */
static void
put_le(struct buf *b, uint64_t v, int n)
{
	unsigned char x[8];
	for (int i = 0; i < n; i++)
		x[i] = (unsigned char)(v >> (8 * i));
	buf_append(b, x, (size_t)n);
}

static void
put16(struct buf *b, uint32_t v)
{
	put_le(b, v, 2);
}

static void
put32(struct buf *b, uint32_t v)
{
	put_le(b, v, 4);
}

static void
put64(struct buf *b, uint64_t v)
{
	put_le(b, v, 8);
}

static uint32_t
get16(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void
set32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* A string field: 1..65535 bytes, no NUL; a file name also has no '/'. */
static int
field_ok(const char *s, size_t n, int name)
{
	if (n == 0 || n > 0xffff || memchr(s, '\0', n) != NULL)
		return 0;
	if (name && memchr(s, '/', n) != NULL)
		return 0;
	return 1;
}

int
jrec_encode(struct buf *out, uint64_t seq, const char *qid, size_t nbox,
    const char *const *dirs, const char *const *names, const char *content,
    size_t len)
{
	size_t ql = strlen(qid);
	if (!field_ok(qid, ql, 0) || nbox == 0 || nbox > JREC_BOXES_MAX)
		return -1;
	uint64_t payload = 2 + ql + 4 + 8 + (uint64_t)len;
	for (size_t i = 0; i < nbox; i++) {
		size_t dl = strlen(dirs[i]), nl = strlen(names[i]);
		if (!field_ok(dirs[i], dl, 0) || !field_ok(names[i], nl, 1))
			return -1;
		payload += 4 + dl + nl;
	}
	if (payload > JREC_PAYLOAD_MAX)
		return -1;

	size_t start = out->len;
	buf_append(out, magic, 4);
	put32(out, (uint32_t)payload);
	put32(out, 0);                  /* CRC, filled in below */
	put32(out, JREC_TYPE_MESSAGE);
	put64(out, seq);
	put16(out, (uint32_t)ql);
	buf_append(out, qid, ql);
	put32(out, (uint32_t)nbox);
	for (size_t i = 0; i < nbox; i++) {
		size_t dl = strlen(dirs[i]), nl = strlen(names[i]);
		put16(out, (uint32_t)dl);
		buf_append(out, dirs[i], dl);
		put16(out, (uint32_t)nl);
		buf_append(out, names[i], nl);
	}
	put64(out, len);
	buf_append(out, content, len);
	unsigned char *rec = (unsigned char *)out->data + start;
	set32(rec + 8, crc32c(0, rec + 12, (size_t)payload + 12));
	return 0;
}

long long
jrec_parse(const unsigned char *p, size_t n, struct jrec *r)
{
	if (n < JREC_HEADER)
		return n > 0 && memcmp(p, magic, n < 4 ? n : 4) != 0 ? -1 : 0;
	if (memcmp(p, magic, 4) != 0)
		return -1;
	uint32_t plen = get32(p + 4);
	if (plen > JREC_PAYLOAD_MAX)
		return -1;
	if (n - JREC_HEADER < plen)
		return 0;
	if (crc32c(0, p + 12, (size_t)plen + 12) != get32(p + 8))
		return -1;
	memset(r, 0, sizeof *r);
	r->type = get32(p + 12);
	r->seq = get64(p + 16);
	if (r->type != JREC_TYPE_MESSAGE)
		return -1;

	const unsigned char *q = p + JREC_HEADER, *end = q + plen;
	if (end - q < 2)
		return -1;
	r->qidlen = get16(q);
	q += 2;
	if ((size_t)(end - q) < r->qidlen || !field_ok((const char *)q, r->qidlen, 0))
		return -1;
	r->qid = (const char *)q;
	q += r->qidlen;
	if (end - q < 4)
		return -1;
	r->nbox = get32(q);
	q += 4;
	if (r->nbox == 0 || r->nbox > JREC_BOXES_MAX)
		return -1;
	r->boxes = q;
	for (uint32_t i = 0; i < r->nbox; i++) {
		for (int k = 0; k < 2; k++) {
			if (end - q < 2)
				return -1;
			size_t l = get16(q);
			q += 2;
			if ((size_t)(end - q) < l || !field_ok((const char *)q, l, k))
				return -1;
			q += l;
		}
	}
	if (end - q < 8)
		return -1;
	r->len = get64(q);
	q += 8;
	if ((uint64_t)(end - q) != r->len)
		return -1;
	r->content = (const char *)q;
	return (long long)JREC_HEADER + plen;
}

void
jrec_box(const struct jrec *r, uint32_t i, const char **dir, size_t *dirlen,
    const char **name, size_t *namelen)
{
	const unsigned char *q = r->boxes;
	for (uint32_t k = 0;; k++) {
		size_t dl = get16(q);
		size_t nl = get16(q + 2 + dl);
		if (k == i) {
			*dir = (const char *)q + 2;
			*dirlen = dl;
			*name = (const char *)q + 4 + dl;
			*namelen = nl;
			return;
		}
		q += 4 + dl + nl;
	}
}
