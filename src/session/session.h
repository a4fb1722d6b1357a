/*
 * Inbound SMTP sessions and the daemon around them (the I/O world).
 *
 * The daemon binds every listener once per worker thread (SO_REUSEPORT lets
 * the kernel spread connections), drops privileges, and runs one libevent
 * loop per worker. A session is: one connection + one pure smtp_server
 * machine + the decisions the machine asks for (mailbox lookup, delivery,
 * TLS, identity policy). Sessions never block: delivery runs on the spool's
 * threads, DNS on libunbound on the same loop.
 */
#ifndef EHLO_SESSION_H
#define EHLO_SESSION_H

#include <stdbool.h>

struct buf;
struct ehlo_config;

/*
 * Runs ehlod with the given configuration (ownership passes to the daemon)
 * until SIGTERM/SIGINT. SIGHUP reloads configuration from cfg->config_file.
 * Returns a process exit status.
 */
int ehlod_run(struct ehlo_config *cfg);

/*
 * ehlod -t: loads everything a start would load from cfg (certificates
 * and keys, maps, the public suffix list, the generic patterns; not the
 * self-signed certificate, which the start makes), without binding or
 * creating anything. Takes ownership of cfg. Returns 0, or 78 (EX_CONFIG)
 * with the reason in err. Run as root with mail_owner set, it also tries
 * that load as the mail owner, as a reload would, and appends a warning to
 * warn when the reload would fail.
 */
int ehlod_check(struct ehlo_config *cfg, struct buf *err, struct buf *warn);

#endif
