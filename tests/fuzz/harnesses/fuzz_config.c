/*
 * Fuzz the ehlod.conf loader: logical lines, $name expansion (loops,
 * nesting, expansion bombs), typed values and the cross-setting rules.
 * Invariants: config_load_buffer returns a config or NULL with a message
 * that starts with the file name; a loaded config prints and reloads
 * against itself without complaint; the address-map parser is run over the
 * same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/addrmap.h"
#include "config/config.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf err = BUF_INIT;
	struct ehlo_config *cfg = config_load_buffer((const char *)data, size, "fuzz.conf", &err);

	if (cfg == NULL) {
		if (strncmp(buf_cstr(&err), "fuzz.conf:", 10) != 0)
			abort();
	} else {
		if (err.len != 0 || !config_validate(cfg, &err))
			abort();
		if (!config_reload_compatible(cfg, cfg, &err))
			abort();
		FILE *devnull = fopen("/dev/null", "w");
		if (devnull != NULL) {
			config_print_nondefault(cfg, devnull);
			fclose(devnull);
		}
		config_free(&cfg);
	}
	buf_free(&err);

	struct addrmap *m = addrmap_load_buffer((const char *)data, size, "fuzz.map", &err);
	if (m != NULL) {
		(void)addrmap_contains(m, "postmaster@example.org");
		addrmap_free(&m);
	} else if (strncmp(buf_cstr(&err), "fuzz.map:", 9) != 0) {
		abort();
	}
	buf_free(&err);
	return 0;
}
