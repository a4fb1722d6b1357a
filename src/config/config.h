/*
 * ehlod.conf: Postfix main.cf-style configuration (STACK.md §8).
 *
 * Syntax, as in Postfix's main.cf:
 *   name = value        one setting per logical line
 *   <whitespace>more    a line starting with whitespace continues the
 *                       previous logical line (joined with one space)
 *   # text              comment line (also allowed inside a continuation)
 *   $name ${name} $(name)            expansion, recursive, at use
 *   ${name?value} ${name:value}      value if $name is non-empty / empty
 *   $$                               a literal '$'
 * Unlike Postfix, an unknown name is an error (a typo in a mail server
 * configuration must not pass silently). A name that is not a setting is
 * accepted only when another value references it with $name: that is a
 * user-defined macro, as in Postfix. Every error reads "FILE:LINE: message".
 *
 * All settings are declared in one table in config.c (STYLE.md lesson 12):
 * name, type, default, bounds, target field, reloadable flag, doc string.
 * The fields of struct ehlo_config are named exactly like the settings.
 */
#ifndef EHLO_CONFIG_H
#define EHLO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/buf.h"

/* A Postfix list value: entries split at commas and/or whitespace. */
struct cfg_list {
	char   **v;     /* NULL-terminated; never NULL itself (v[0] == NULL if empty) */
	size_t   n;
};

/* Action of one HELO/EHLO identity check (issue 4), shared by all helo_check_*. */
enum check_action { ACT_OFF, ACT_LOG, ACT_TAG, ACT_TEMPFAIL, ACT_REJECT };

enum pregreet_action { PREGREET_LOG, PREGREET_REJECT };                 /* smtpd_pregreet_action */
enum bare_newline_action { BARE_NL_REJECT, BARE_NL_NORMALIZE };         /* smtpd_forbid_bare_newline */
enum tls_security_level { TLS_LEVEL_NONE, TLS_LEVEL_MAY, TLS_LEVEL_ENCRYPT }; /* smtpd_tls_security_level */

/*
 * The loaded configuration. Strings are never NULL ("" when empty). Time
 * settings hold MILLISECONDS (the field keeps the setting's name). The
 * struct owns everything it points to; free it with config_free().
 */
struct ehlo_config {
	int      refs;                  /* for the caller's reference counting; 1 after load */
	char    *config_file;           /* path (or buffer name) loaded, "" for embedded defaults */

	/* identity of this server */
	char    *myhostname;
	char    *mydomain;
	char    *smtpd_banner;

	/* listeners, limits, logging, privileges */
	struct cfg_list listen;
	unsigned long long message_size_limit;
	unsigned long long smtpd_message_memory_limit;
	long long smtpd_recipient_limit;
	long long smtpd_hard_error_limit;
	long long smtpd_client_connection_count_limit;
	long long smtpd_client_ipv4_prefix_length;
	long long smtpd_client_ipv6_prefix_length;
	long long smtpd_max_connections;
	struct cfg_list smtpd_discard_ehlo_keywords;
	char    *maillog_file;
	long long smtpd_timeout;                /* ms */
	long long smtpd_data_timeout;           /* ms */
	bool     smtpd_per_request_deadline;
	long long smtpd_min_data_rate;          /* octets per second */
	long long smtpd_junk_command_limit;
	long long smtpd_recipient_overshoot_limit;
	long long smtpd_shutdown_timeout;       /* ms */
	long long smtpd_greet_pause;            /* ms */
	int      smtpd_pregreet_action;         /* enum pregreet_action */
	int      smtpd_forbid_bare_newline;     /* enum bare_newline_action */
	bool     smtpd_reject_long_lines;
	char    *mail_owner;
	long long smtpd_workers;
	long long delivery_threads;

	/* local delivery */
	struct cfg_list virtual_mailbox_domains;
	char    *virtual_mailbox_base;
	char    *spool_journal_directory;
	char    *virtual_mailbox_maps;

	/* TLS (issue 3) */
	int      smtpd_tls_security_level;      /* enum tls_security_level */
	struct cfg_list smtpd_tls_cert_file;
	struct cfg_list smtpd_tls_key_file;
	char    *smtpd_tls_protocols;
	char    *smtpd_tls_ciphers;
	char    *tls_server_sni_maps;
	bool     smtpd_tls_ask_ccert;
	long long smtpd_tls_handshake_timeout;  /* ms */
	bool     smtpd_tls_session_tickets;
	bool     smtpd_tls_auto_cert;
	char    *smtpd_tls_auto_cert_dir;

	/* identity checks (issue 4): enum check_action each */
	int      helo_check_syntax;
	int      helo_check_fqdn;
	int      helo_check_literal_match;
	int      helo_check_resolves;
	int      helo_check_forward_match;
	int      helo_check_ptr;
	int      helo_check_fcrdns;
	int      helo_check_ptr_match;
	int      helo_check_generic;
	int      helo_check_self_claim;
	int      helo_check_consistency;
	bool     smtpd_delay_reject;
	struct cfg_list helo_checks_exempt;
	bool     helo_checks_exempt_authenticated;
	bool     helo_checks_shadow;
	bool     helo_ptr_match_exact;
	bool     helo_allow_ip_mismatch_reject;
	char    *helo_generic_patterns_file;
	char    *public_suffix_file;
	struct cfg_list dns_forwarders;
	long long dns_timeout;                  /* ms */
	long long dns_cache_size;
	long long dns_max_inflight;             /* per worker */
	struct cfg_list smtpd_upstream_proxy_hosts;
	long long smtpd_upstream_proxy_timeout; /* ms */
	char    *metrics_listen;

	struct cfg_private *priv;       /* loader bookkeeping; opaque */
};

/*
 * Load PATH (NULL: embedded defaults only). Returns a new config with
 * refs == 1, or NULL with "FILE:LINE: message" in err (err is appended to).
 */
struct ehlo_config *config_load(const char *path, struct buf *err);

/*
 * Same, from a buffer of len bytes (need not be NUL-terminated).
 * name_for_errors prefixes error messages and becomes cfg->config_file.
 */
struct ehlo_config *config_load_buffer(const char *text, size_t len,
    const char *name_for_errors, struct buf *err);

/* Free *cfg (ignores refs) and set *cfg to NULL. NULL-safe. */
void config_free(struct ehlo_config **cfg);

/*
 * Cross-setting checks (TLS cert/key counts, the RFC 5321 §4.1.4 guard).
 * config_load runs it; call it again after changing fields by hand or on
 * reload. Returns false with "FILE:LINE: message" appended to err.
 */
bool config_validate(const struct ehlo_config *cfg, struct buf *err);

/*
 * For reload: true if every setting whose reloadable flag is off has the
 * same value in old and nw. Otherwise false, and err names those settings.
 */
bool config_reload_compatible(const struct ehlo_config *old,
    const struct ehlo_config *nw, struct buf *err);

/*
 * For reload: gives every setting whose reloadable flag is off its value
 * in old (the running one), so that a reload never applies what it
 * reports as needing a restart. Call after config_reload_compatible().
 */
void config_keep_restart_only(struct ehlo_config *nw, const struct ehlo_config *old);

/*
 * Print "name = value" for every setting whose value differs from its
 * default (like postconf -n, but values expanded and in canonical form:
 * bools yes/no, times in s or ms, lists joined with ", "), sorted by name.
 */
void config_print_nondefault(const struct ehlo_config *cfg, FILE *out);

/* Warnings from the load that did not stop it ("file:line: NAME overrides
 * the entry on line N"), one per line; "" when there are none. */
const char *config_warnings(const struct ehlo_config *cfg);

/*
 * Append the canonical text of setting NAME's value to out (the form
 * config_print_nondefault prints). False if NAME is not a setting.
 */
bool config_get(const struct ehlo_config *cfg, const char *name, struct buf *out);

/*
 * Print every setting with its type, default and doc string, sorted by
 * name. man_format: as man(7) markup for the SETTINGS section of
 * ehlod.conf(5); otherwise as a commented "name = default" file.
 */
void config_print_all(FILE *out, bool man_format);

/* ---- parsed forms of structured values (also used to validate them) ---- */

enum listen_kind { LISTEN_SMTP, LISTEN_SUBMISSION, LISTEN_SUBMISSIONS };

/* One "kind:addr:port" entry of the listen setting. */
struct cfg_listen {
	enum listen_kind kind;
	int      family;          /* AF_INET, AF_INET6, or AF_UNSPEC for "*" (all addresses) */
	char     addr[46];        /* numeric address without brackets; "" for "*" */
	uint16_t port;            /* 0 lets the kernel choose (tests) */
};

/*
 * Parse a listen entry: smtp:127.0.0.1:2525, submission:[::1]:587,
 * submissions:*:465. Addresses are numeric (no DNS). False with a message
 * (no file:line) in err on error.
 */
bool config_parse_listen(const char *s, struct cfg_listen *out, struct buf *err);


#endif
