/*
 * ehlod(8): the receiving server.
 *
 *   ehlod [-c FILE]   run in the foreground (embedded defaults without -c)
 *   ehlod -t [-c F]   check the configuration and exit (0 = valid)
 *   ehlod -n [-c F]   print the settings that differ from their defaults
 *   ehlod -a          print every setting with its default and meaning
 *
 * Exit codes follow <sysexits.h>: 64 usage, 78 configuration error.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/buf.h"
#include "session/session.h"

static void
usage(void)
{
	fprintf(stderr, "usage: ehlod [-c config_file] [-t | -n | -a] [-V]\n");
	exit(EX_USAGE);
}

static void
quickstart_hint(const struct ehlo_config *cfg)
{
	const char *l = cfg->listen.n ? cfg->listen.v[0] : "smtp:127.0.0.1:2525";
	const char *hp = strchr(l, ':');
	hp = hp ? hp + 1 : l;
	const char *dom = cfg->virtual_mailbox_domains.n ? cfg->virtual_mailbox_domains.v[0] :
	    "localhost";
	fprintf(stderr,
	    "ehlod: running on the embedded default configuration (no -c given).\n"
	    "ehlod: send a first message from another terminal with:\n"
	    "    swaks --server %s --from you@example.org --to postmaster@%s\n"
	    "ehlod: or with curl:\n"
	    "    printf 'Subject: hi\\r\\n\\r\\nhello\\r\\n' | curl -s smtp://%s/client.example "
	    "--mail-from you@example.org --mail-rcpt postmaster@%s --upload-file -\n"
	    "ehlod: it lands in %s/%s/postmaster/new/ ; stop with Ctrl-C.\n",
	    hp, dom, hp, dom, cfg->virtual_mailbox_base, dom);
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	bool check = false, nondefault = false, all = false;
	int ch;
	while ((ch = getopt(argc, argv, "c:tnaVh")) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 't': check = true; break;
		case 'n': nondefault = true; break;
		case 'a': all = true; break;
		case 'V': printf("ehlod %s\n", EHLO_VERSION); return 0;
		default: usage();
		}
	}
	/* One action per run: -t with -n used to check and print nothing. */
	if (optind != argc || check + nondefault + all > 1)
		usage();
	if (all) {
		config_print_all(stdout, false);
		return 0;
	}
	struct buf err = BUF_INIT;
	struct ehlo_config *cfg = config_load(path, &err);
	if (cfg == NULL) {
		fprintf(stderr, "ehlod: %s\n", buf_cstr(&err));
		buf_free(&err);
		return EX_CONFIG;
	}
	buf_free(&err);
	if (check) {
		const char *cw = config_warnings(cfg);
		if (*cw != '\0') {
			/* One "ehlod: warning:" prefix per line. */
			for (const char *p = cw; *p; ) {
				const char *nl = strchr(p, '\n');
				int n = nl != NULL ? (int)(nl - p) : (int)strlen(p);
				fprintf(stderr, "ehlod: warning: %.*s\n", n, p);
				p += n + (nl != NULL);
			}
		}
		struct buf werr = BUF_INIT, warn = BUF_INIT;
		int rc = ehlod_check(cfg, &werr, &warn);
		if (rc != 0)
			fprintf(stderr, "ehlod: %s\n", buf_cstr(&werr));
		if (warn.len > 0)
			fprintf(stderr, "ehlod: warning: %s\n", buf_cstr(&warn));
		buf_free(&werr);
		buf_free(&warn);
		return rc;
	}
	if (nondefault) {
		config_print_nondefault(cfg, stdout);
		config_free(&cfg);
		return 0;
	}
	if (path == NULL)
		quickstart_hint(cfg);
	return ehlod_run(cfg);
}
