/*
 * Fuzz the PROXY header parser. The first input byte chooses a chunk size
 * so fragmentation is fuzzed too; the rest is the stream. Invariants: the
 * parser ends in one state whatever the fragmentation, consumes no more
 * than it was given, and on DONE the header length equals the bytes
 * consumed in total; the CIDR parser is run over the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/cidr.h"
#include "net/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum proxy_status
run(const uint8_t *d, size_t n, size_t chunk, size_t *total)
{
	struct proxy_parser p;
	struct proxy_header h;
	enum proxy_status st = PROXY_NEED_MORE;
	size_t off = 0, used;

	proxy_init(&p);
	*total = 0;
	while (off < n) {
		size_t len = n - off < chunk ? n - off : chunk;
		st = proxy_feed(&p, d + off, len, &used, &h);
		if (used > len)
			abort();
		off += used;
		if (st != PROXY_NEED_MORE)
			break;
	}
	if (st == PROXY_DONE && h.length != off)
		abort();
	if (st == PROXY_ERROR && proxy_error(&p) == NULL)
		abort();
	if (st == PROXY_NOT_PROXY) {
		size_t rn;
		const uint8_t *r = proxy_replay(&p, &rn);
		if (rn > off || memcmp(r, d, rn) != 0)
			abort();
	}
	*total = off;
	return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t chunk = (size_t)data[0] % 64 + 1;
	size_t t1, t2;
	enum proxy_status a = run(data + 1, size - 1, size, &t1);
	enum proxy_status b = run(data + 1, size - 1, chunk, &t2);
	if (a != b || (a == PROXY_DONE && t1 != t2))
		abort();

	struct cidr c;
	(void)cidr_parse((const char *)data + 1, size - 1 < 64 ? size - 1 : 64,
	    &c, NULL);
	return 0;
}
