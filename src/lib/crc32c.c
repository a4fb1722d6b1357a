/* CRC-32C: a byte table in software, the SSE 4.2 instruction when present. */
#include "lib/crc32c.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

static uint32_t table[256];
static atomic_bool table_ready;

static void
make_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		table[i] = c;
	}
	atomic_store_explicit(&table_ready, true, memory_order_release);
}

static uint32_t
crc_soft(uint32_t c, const unsigned char *p, size_t n)
{
	if (!atomic_load_explicit(&table_ready, memory_order_acquire))
		make_table();   /* idempotent: a race writes the same values */
	while (n--)
		c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2")))
static uint32_t
crc_hw(uint32_t c, const unsigned char *p, size_t n)
{
	uint64_t c64 = c;
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c64 = __builtin_ia32_crc32di(c64, v);
		p += 8;
		n -= 8;
	}
	c = (uint32_t)c64;
	while (n--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}

static bool
have_hw(void)
{
	static int have = -1;
	if (have < 0) {
		__builtin_cpu_init();
		have = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	}
	return have == 1;
}
#endif

uint32_t
crc32c_sw(uint32_t crc, const void *p, size_t n)
{
	return ~crc_soft(~crc, p, n);
}

uint32_t
crc32c(uint32_t crc, const void *p, size_t n)
{
	uint32_t c = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	if (have_hw())
		return ~crc_hw(c, p, n);
#endif
	return ~crc_soft(c, p, n);
}
