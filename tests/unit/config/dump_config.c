/*
 * ehlo-config-dump: prints the settings table (for man/ehlod.conf.5) or a
 * loaded file's non-default settings. Not installed; a build helper.
 *   ehlo-config-dump --man         settings as man(7) markup
 *   ehlo-config-dump --defaults    settings as a commented ehlod.conf
 *   ehlo-config-dump FILE          load FILE, print what differs from the defaults
 */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "lib/buf.h"

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--man") == 0) {
		config_print_all(stdout, true);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--defaults") == 0) {
		config_print_all(stdout, false);
		return 0;
	}
	if (argc == 2 && argv[1][0] != '-') {
		struct buf err = BUF_INIT;
		struct ehlo_config *cfg = config_load(argv[1], &err);
		if (cfg == NULL) {
			fprintf(stderr, "%s\n", buf_cstr(&err));
			buf_free(&err);
			return 1;
		}
		config_print_nondefault(cfg, stdout);
		config_free(&cfg);
		return 0;
	}
	fprintf(stderr, "usage: %s --man | --defaults | FILE\n", argv[0]);
	return 2;
}
