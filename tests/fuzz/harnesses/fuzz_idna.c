/*
 * Fuzz the U-label to A-label conversion. Invariants: a success is ASCII
 * LDH labels joined by single dots, each 1..63 octets, at most 253 in all,
 * and a fixed point (converting it again gives it back); a failure leaves
 * the buffer as it was.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/idna.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b = BUF_INIT;
	buf_append_str(&b, "x");
	if (!idna_to_ascii((const char *)data, size, &b)) {
		if (b.len != 1 || strcmp(buf_cstr(&b), "x") != 0)
			abort();
		buf_free(&b);
		return 0;
	}
	const char *s = buf_cstr(&b) + 1;
	size_t n = b.len - 1, label = 0;
	if (n == 0 || n > 253)
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				abort();
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			abort();
		if (++label > 63)
			abort();
	}
	if (label == 0)
		abort();
	struct buf again = BUF_INIT;
	if (!idna_to_ascii(s, n, &again) || again.len != n || memcmp(again.data, s, n) != 0)
		abort();
	buf_free(&again);
	buf_free(&b);
	return 0;
}
