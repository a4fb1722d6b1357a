/*
 * Fuzz the spool journal record parser (src/spool/jrec.c) the way recovery
 * uses it: the input is a segment file, parsed record after record until
 * the end or the first invalid or incomplete one. Invariants: a record's
 * size never exceeds what is left; every mailbox of an accepted record can
 * be walked inside the record; re-encoding an accepted record's fields
 * gives back exactly its bytes; the table and instruction CRC paths agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/crc32c.h"
#include "lib/xmalloc.h"
#include "spool/jrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_record(const uint8_t *p, size_t k, const struct jrec *r)
{
	char **dirs = xcalloc(r->nbox, sizeof *dirs);
	char **names = xcalloc(r->nbox, sizeof *names);
	for (uint32_t i = 0; i < r->nbox; i++) {
		const char *d, *n;
		size_t dl, nl;
		jrec_box(r, i, &d, &dl, &n, &nl);
		if ((const uint8_t *)d < p || (const uint8_t *)d + dl > p + k ||
		    (const uint8_t *)n < p || (const uint8_t *)n + nl > p + k)
			abort();
		dirs[i] = xstrndup(d, dl);
		names[i] = xstrndup(n, nl);
	}
	char *qid = xstrndup(r->qid, r->qidlen);
	struct buf b = BUF_INIT;
	if (jrec_encode(&b, r->seq, qid, r->nbox, (const char *const *)dirs,
	    (const char *const *)names, r->content, (size_t)r->len) != 0)
		abort();
	if (b.len != k || memcmp(b.data, p, k) != 0)
		abort();
	buf_free(&b);
	free(qid);
	for (uint32_t i = 0; i < r->nbox; i++) {
		free(dirs[i]);
		free(names[i]);
	}
	free(dirs);
	free(names);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (crc32c(0, data, size) != crc32c_sw(0, data, size))
		abort();
	size_t off = 0;
	while (off < size) {
		struct jrec r;
		long long k = jrec_parse(data + off, size - off, &r);
		if (k <= 0)
			break;
		if ((unsigned long long)k > size - off)
			abort();
		check_record(data + off, (size_t)k, &r);
		off += (size_t)k;
	}
	return 0;
}
