/*
 * Fuzz the DNS answer parser (src/dns/wire.c): the packet is what a resolver
 * relays from any authority. The first byte picks the query type. On
 * success every kept name must be a valid, NUL-terminated host name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t types[] = { WIRE_T_A, WIRE_T_AAAA, WIRE_T_PTR,
	    WIRE_T_MX };
	static struct wire_answer wa;

	if (size < 1)
		return 0;
	uint16_t qtype = types[data[0] % 4];
	if (wire_parse_answer(data + 1, size - 1, qtype, &wa) != 0)
		return 0;
	if (wa.n > DNS_MAX_RECORDS)
		abort();
	for (size_t i = 0; i < wa.n; i++) {
		const char *nm = wa.rr[i].name;
		if (nm == NULL)
			continue;
		size_t n = strnlen(nm, DNS_NAME_MAX + 1);
		if (n > DNS_NAME_MAX)
			abort();
		if (n > 0 && !wire_query_name_ok(nm, n))
			abort();
		for (size_t j = 0; j < n; j++)
			if (nm[j] == '_' || (nm[j] >= 'A' && nm[j] <= 'Z'))
				abort();
	}
	return 0;
}
