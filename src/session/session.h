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

struct ehlo_config;

/*
 * Runs ehlod with the given configuration (ownership passes to the daemon)
 * until SIGTERM/SIGINT. SIGHUP reloads configuration from cfg->config_file.
 * Returns a process exit status.
 */
int ehlod_run(struct ehlo_config *cfg);

#endif
