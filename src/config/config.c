/*
 * ehlod.conf loader: the settings table, the main.cf-style parser and the
 * $name expander.
 *
 * Loading runs in passes so that expansion happens at use, as in Postfix
 * (a later definition counts for an earlier reference):
 *   1. split the text into logical lines and "name = value" entries
 *      (a later entry for the same name replaces the earlier one);
 *   2. expand every entry's value, recursively and memoised, with loop
 *      detection; references mark user-defined macros as used;
 *   3. reject names that are neither settings nor referenced macros;
 *   4. convert each setting (entry or table default) to its typed field;
 *   5. config_validate(): per-value syntax (listen, networks, ...) and the
 *      cross-setting rules.
 * The expander bounds recursion depth and total output, so a hostile or
 * broken file (a "billion laughs" chain of $a$a$a) fails cleanly.
 */
#include "config/config.h"
#include "net/cidr.h"
#include "tls/tls.h"
#include "lib/idna.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_MAX_FILE      (1024 * 1024)     /* bytes read by config_load */
#define CFG_MAX_VALUE     (256 * 1024)      /* one value after expansion */
#define CFG_MAX_EXPANDED  (8 * 1024 * 1024) /* all values after expansion */
#define CFG_MAX_DEPTH     64                /* nested references and braces */

enum cfg_type { T_STRING, T_PATH, T_BOOL, T_INT, T_SIZE, T_TIME, T_ENUM, T_LIST };

struct loader;

struct cfg_setting {
	const char *name;
	enum cfg_type type;
	const char *def;                        /* raw default, expanded like a value */
	char *(*def_fn)(struct loader *);       /* computed default instead of def */
	long long min, max;                     /* int, size, time (ms) */
	const char *const *words;               /* enum: words in C enum order */
	size_t off;                             /* offsetof(struct ehlo_config, field) */
	bool reloadable;
	bool (*check)(const void *field, struct buf *msg);
	const char *doc;
};

struct cfg_private {
	char     *file;                         /* name used in error messages */
	unsigned *line;                         /* per setting; 0 = default */
	char    **defcanon;                     /* per setting: canonical default, NULL if unparsable */
	struct buf warnings;                    /* config_warnings(): lines, '\n'-separated */
};

/* ---------------------------------------------------------------------- */
/* Value checks used by the table                                          */

static const char *const ehlo_keywords[] = {
	"pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8",
	"chunking", "dsn", "starttls", "auth", NULL
};

static bool
check_listen(const void *field, struct buf *msg)
{
	const struct cfg_list *l = field;
	if (l->n == 0) {
		/* A server with nothing to listen on started and said "ready". */
		buf_append_str(msg, "no listener: give at least one kind:address:port");
		return false;
	}
	struct cfg_listen a, b;
	for (size_t i = 0; i < l->n; i++) {
		if (!config_parse_listen(l->v[i], &a, msg))
			return false;
		/* The same address and port twice: SO_REUSEPORT let both bind,
		 * and the kernel then split the connections between them. */
		for (size_t j = 0; j < i; j++)
			if (config_parse_listen(l->v[j], &b, msg) && a.family == b.family &&
			    a.port == b.port && a.port != 0 && strcmp(a.addr, b.addr) == 0) {
				buf_appendf(msg, "\"%s\" and \"%s\" are the same address and port",
				    l->v[j], l->v[i]);
				return false;
			}
	}
	return true;
}

/* Letters, digits, '.', '-' and '_' only: the host names and domains of
 * the settings (no spaces, controls or '/' that would reach a greeting, a
 * reply or a Maildir path). */
static bool
host_chars(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!ascii_isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

/* Local domains: host names (a '/' or control byte would reach a Maildir
 * path; RCPT refused such domains later, but the list should not hold
 * them). */
static bool
check_domains(const void *field, struct buf *msg)
{
	const struct cfg_list *l = field;
	for (size_t i = 0; i < l->n; i++) {
		const char *d = l->v[i];
		if (d[0] == '\0' || d[0] == '.' || !host_chars(d, strlen(d))) {
			buf_append_str(msg, "bad domain \"");
			log_sanitize(msg, d, strlen(d), 80);
			buf_append_str(msg, "\" (letters, digits, '.', '-' and '_' only, or a UTF-8 domain name)");
			return false;
		}
	}
	return true;
}

static bool
check_keywords(const void *field, struct buf *msg)
{
	const struct cfg_list *l = field;
	for (size_t i = 0; i < l->n; i++) {
		bool ok = false;
		for (size_t k = 0; ehlo_keywords[k] != NULL && !ok; k++)
			ok = ascii_ieq(l->v[i], ehlo_keywords[k]);
		if (!ok) {
			buf_append_str(msg, "unknown EHLO keyword \"");
			log_sanitize(msg, l->v[i], strlen(l->v[i]), 64);
			buf_append_str(msg, "\" (known: pipelining size 8bitmime "
			    "enhancedstatuscodes smtputf8 chunking dsn starttls auth)");
			return false;
		}
	}
	return true;
}


static bool
check_cidrs(const void *field, struct buf *msg)
{
	const struct cfg_list *l = field;
	for (size_t i = 0; i < l->n; i++)
		if (!cidr_parse(l->v[i], strlen(l->v[i]), &(struct cidr){ 0 }, NULL)) {
			buf_append_str(msg, "bad address or network \"");
			log_sanitize(msg, l->v[i], strlen(l->v[i]), 80);
			buf_append_str(msg, "\" (expected e.g. 192.0.2.0/24, 2001:db8::/32, "
			    "[2001:db8::1] or 127.0.0.1, with no host bits after the prefix)");
			return false;
		}
	return true;
}

/* helo_checks_exempt: an address or network, or a host name; ".example.com"
 * covers the subdomains of example.com (Postfix's parent_domain_matches_subdomains
 * style). Names are matched against forward-confirmed PTR names only. */
static bool
check_exempt(const void *field, struct buf *msg)
{
	const struct cfg_list *l = field;
	for (size_t i = 0; i < l->n; i++) {
		const char *e = l->v[i];
		if (cidr_parse(e, strlen(e), &(struct cidr){ 0 }, NULL))
			continue;
		const char *n = e[0] == '.' ? e + 1 : e;
		bool ok = *n != '\0' && *n != '.' && strlen(n) <= 253 && host_chars(n, strlen(n));
		if (ok && (strstr(n, "..") != NULL || n[strlen(n) - 1] == '.'))
			ok = false;
		if (!ok) {
			buf_append_str(msg, "bad exemption \"");
			log_sanitize(msg, e, strlen(e), 80);
			buf_append_str(msg, "\" (expected an address, a network such as 192.0.2.0/24, "
			    "a host name, or .domain for its subdomains)");
			return false;
		}
	}
	return true;
}

/* A host name goes into the greeting and EHLO reply: no spaces or controls. */
static bool
check_hostname(const void *field, struct buf *msg)
{
	const char *s = *(char *const *)field;
	if (*s == '\0') {
		buf_append_str(msg, "must not be empty");
		return false;
	}
	if (!host_chars(s, strlen(s))) {
		buf_append_str(msg, "bad host name \"");
		log_sanitize(msg, s, strlen(s), 80);
		buf_append_str(msg, "\" (letters, digits, '.', '-' and '_' only)");
		return false;
	}
	return true;
}

/*
 * RFC 5321 §4.2, §4.3.1: the greeting is "220 " Domain or address-literal,
 * then optional text, so smtpd_banner must start with one; printable ASCII
 * only (it goes on the wire as is).
 */
static bool
check_banner(const void *field, struct buf *msg)
{
	const char *s = *(char *const *)field;
	size_t w = strcspn(s, " ");
	bool ok = w > 0;
	if (ok && s[0] == '[')
		ok = s[w - 1] == ']' && w > 2;
	else
		ok = ok && host_chars(s, w);
	for (const char *p = s; ok && *p; p++)
		ok = *p >= 0x20 && *p < 0x7f;
	if (!ok) {
		buf_append_str(msg, "must start with this host's name (RFC 5321 §4.3.1: "
		    "\"220 \" domain [text]), e.g. \"$myhostname ESMTP\", in printable ASCII; got \"");
		log_sanitize(msg, s, strlen(s), 80);
		buf_append_str(msg, "\"");
		return false;
	}
	/* RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with the
	 * CRLF, so the banner after "220 " at most 506 (it was cut silently,
	 * and the line still went over). */
	if (strlen(s) > 506) {
		buf_appendf(msg, "is %zu octets long; the greeting line allows 506 after \"220 \" "
		    "(RFC 5321 §4.5.3.1.5)", strlen(s));
		return false;
	}
	return ok;
}

static bool parse_port(const char *s, size_t n, uint16_t *port);
static bool parse_ip(const char *s, size_t n, int *family, uint8_t addr[16]);

/* unbound's forwarder syntax: ADDRESS[@PORT], numeric only. */
static bool
check_forwarders(const void *field, struct buf *msg)
{
	const struct cfg_list *l = field;
	for (size_t i = 0; i < l->n; i++) {
		const char *s = l->v[i], *at = strchr(s, '@');
		size_t alen = at ? (size_t)(at - s) : strlen(s);
		int fam;
		uint8_t a[16];
		uint16_t port;
		if (!parse_ip(s, alen, &fam, a) ||
		    (at != NULL && (!parse_port(at + 1, strlen(at + 1), &port) || port == 0))) {
			buf_append_str(msg, "bad DNS forwarder \"");
			log_sanitize(msg, s, strlen(s), 64);
			buf_append_str(msg, "\" (expected a numeric address with an optional @port)");
			return false;
		}
	}
	return true;
}

static bool
check_tls_protocols(const void *field, struct buf *msg)
{
	int lo, hi;
	return tls_parse_protocols(*(char *const *)field, &lo, &hi, msg);
}

static bool parse_hostport(const char *s, size_t n, struct cfg_listen *out, struct buf *msg);

static bool
check_metrics_listen(const void *field, struct buf *msg)
{
	const char *s = *(char *const *)field;
	struct cfg_listen tmp;
	if (*s == '\0')
		return true;
	return parse_hostport(s, strlen(s), &tmp, msg);
}

/* ---------------------------------------------------------------------- */
/* The settings table (STYLE.md lesson 12)                                  */

static char *default_myhostname(struct loader *L);
static char *default_mydomain(struct loader *L);

static const char *const w_action[] = { "off", "log", "tag", "tempfail", "reject", NULL };
static const char *const w_pregreet[] = { "log", "reject", NULL };
static const char *const w_bare_nl[] = { "reject", "normalize", NULL };
static const char *const w_tls_level[] = { "none", "may", "encrypt", NULL };

#define F(x)       offsetof(struct ehlo_config, x)
#define SEC        1000LL
#define DAY        (86400LL * SEC)
#define S(n, d, r, doc)          { #n, T_STRING, d, NULL, 0, 0, NULL, F(n), r, NULL, doc }
#define SC(n, d, r, chk, doc)    { #n, T_STRING, d, NULL, 0, 0, NULL, F(n), r, chk, doc }
#define P(n, d, r, doc)          { #n, T_PATH, d, NULL, 0, 0, NULL, F(n), r, NULL, doc }
#define B(n, d, r, doc)          { #n, T_BOOL, d, NULL, 0, 0, NULL, F(n), r, NULL, doc }
#define I(n, d, lo, hi, r, doc)  { #n, T_INT, d, NULL, lo, hi, NULL, F(n), r, NULL, doc }
#define Z(n, d, lo, hi, r, doc)  { #n, T_SIZE, d, NULL, lo, hi, NULL, F(n), r, NULL, doc }
#define TM(n, d, lo, hi, r, doc) { #n, T_TIME, d, NULL, lo, hi, NULL, F(n), r, NULL, doc }
#define E(n, d, w, r, doc)       { #n, T_ENUM, d, NULL, 0, 0, w, F(n), r, NULL, doc }
#define L(n, d, r, chk, doc)     { #n, T_LIST, d, NULL, 0, 0, NULL, F(n), r, chk, doc }
#define HELO(n, d, doc)          E(n, d, w_action, true, doc)

static const struct cfg_setting settings[] = {
	{ "myhostname", T_STRING, NULL, default_myhostname, 0, 0, NULL, F(myhostname), true, check_hostname,
	  "The fully-qualified name of this host, used in the greeting and to recognise "
	  "clients that claim our name. Default: gethostname(), with \".localdomain\" "
	  "appended if it has no dot; DNS is never consulted." },
	{ "mydomain", T_STRING, NULL, default_mydomain, 0, 0, NULL, F(mydomain), true, check_hostname,
	  "The domain of this host. Default: $myhostname without its first label, or "
	  "\"localdomain\" if that leaves nothing." },
	SC(smtpd_banner, "$myhostname ESMTP ehlo", true, check_banner,
	  "Text after the 220 code in the greeting. It must start with a host name or an address "
	  "literal, normally $myhostname (RFC 5321 §4.3.1: \"220 \" domain [text]); anything "
	  "else is refused at load."),
	L(listen, "smtp:127.0.0.1:2525", false, check_listen,
	  "Listening sockets, each kind:address:port with kind smtp, submission or submissions "
	  "(implicit TLS); IPv6 as smtp:[::1]:25; \"*\" as address means every address."),
	L(virtual_mailbox_domains, "$myhostname, localhost", true, check_domains,
	  "Domains whose mail is delivered to mailboxes under $virtual_mailbox_base. An "
	  "internationalised domain may be given in either form (U-labels in UTF-8, or A-labels "
	  "such as xn--bcher-kva.example): it is kept, matched and stored under its A-label form, "
	  "so RCPT in either form (UTF-8 only with SMTPUTF8) reaches the same Maildir."),
	P(virtual_mailbox_base, "var/mail", false,
	  "Directory holding one Maildir per recipient address."),
	P(spool_journal_directory, "", false,
	  "Write-ahead journal for accepted mail; empty: none. Without it the 250 is sent once "
	  "the message is durable in every recipient's new/. With it the 250 is sent once the "
	  "message is fdatasynced in the journal (one flush for all messages committed "
	  "together, like Postfix's queue file) and Maildir delivery follows in the "
	  "background, in batches (up to 64 messages or 20 ms); after a crash the journal is "
	  "replayed at start. Each journal segment is a 64 MiB file, written full of zeros "
	  "when it is created. See docs/spool.md."),
	P(virtual_mailbox_maps, "", true,
	  "File of valid recipient addresses, one per line (a second column is ignored, so a "
	  "Postfix virtual_mailbox_maps source file works; UTF-8 addresses may be listed, "
	  "ASCII is compared without case); empty: every local part is accepted."),
	Z(message_size_limit, "10240000", 0, LLONG_MAX, true,
	  "Largest message accepted, in bytes, announced with the SIZE extension (RFC 1870); 0 means no limit."),
	Z(smtpd_message_memory_limit, "536870912", 0, LLONG_MAX, true,
	  "Most bytes of message content held in memory by all sessions together: messages "
	  "being received and accepted messages not yet in their Maildirs (or, with "
	  "spool_journal_directory, not yet delivered from the journal, except those waiting "
	  "for a retry, which are read back from it). At the limit MAIL "
	  "gets 452 4.3.1, as does a MAIL whose SIZE= would not fit (RFC 1870 §6.1), and a "
	  "message whose content would go over it is read to its end, thrown away and "
	  "refused with 452 4.3.1: no number of clients can make ehlod run out of memory. "
	  "A message larger than the limit could ever hold (a message buffer grows by "
	  "doubling: over the largest power of two not above it, less 2) gets 552 5.3.4, "
	  "and with message_size_limit = 0 that size is announced as SIZE. "
	  "At least twice message_size_limit, and at least 65536 (DATA reserves a few KiB first); 0 means no limit."),
	I(smtpd_recipient_limit, "1000", 1, INT_MAX, true,
	  "Most recipients accepted per message (RFC 5321 §4.5.3.1.8 requires at least 100)."),
	I(smtpd_hard_error_limit, "20", 1, INT_MAX, true,
	  "Errors a client may make in one session before it is disconnected with 421."),
	I(smtpd_client_connection_count_limit, "50", 0, INT_MAX, true,
	  "Most concurrent sessions from one client address (one network, see "
	  "smtpd_client_ipv4_prefix_length and smtpd_client_ipv6_prefix_length); 0 means no limit."),
	I(smtpd_client_ipv4_prefix_length, "32", 0, 32, false,
	  "IPv4 clients whose addresses share this many leading bits count as one client "
	  "for smtpd_client_connection_count_limit (as in Postfix 3.8); 32: each address "
	  "on its own."),
	I(smtpd_client_ipv6_prefix_length, "84", 0, 128, false,
	  "IPv6 clients whose addresses share this many leading bits count as one client "
	  "for smtpd_client_connection_count_limit (Postfix's default, 84): one end site "
	  "gets a /64 or more, so counting each IPv6 address on its own would let one "
	  "client open the limit's worth of sessions from each of 2^64 addresses."),
	I(smtpd_max_connections, "10000", 1, INT_MAX, true,
	  "Most concurrent sessions in total; further connections get 421."),
	L(smtpd_discard_ehlo_keywords, "", true, check_keywords,
	  "EHLO keywords (case-insensitive) left out of the EHLO reply: pipelining, size, "
	  "8bitmime, enhancedstatuscodes, smtputf8, chunking, dsn, starttls, auth."),
	S(maillog_file, "/dev/stderr", false,
	  "Where log lines go: a file name, /dev/stderr, or \"syslog\" for syslog(3) facility mail. "
	  "A file must be a regular file (or a character device such as /dev/null), not a "
	  "symbolic link: ehlod opens it as root at start. Given to mail_owner only when "
	  "ehlod creates it; an existing file that mail_owner cannot write is reported at "
	  "start (a reload after rotation reopens it as mail_owner)."),
	TM(smtpd_timeout, "300s", 1, 7 * DAY, true,
	  "How long to wait for a client command (RFC 5321 §4.5.3.2.7 asks for at least 5 minutes)."),
	TM(smtpd_data_timeout, "180s", 1, 7 * DAY, true,
	  "How long to wait for the next block of message data. RFC 5321 gives the server "
	  "one timeout, §4.5.3.2.7 (at least 5 minutes awaiting the next command); its "
	  "data-block (§4.5.3.2.5, 3 minutes, the default here) and DATA-termination "
	  "(§4.5.3.2.6) timeouts are the client's."),
	B(smtpd_per_request_deadline, "yes", true,
	  "Turn smtpd_timeout and smtpd_data_timeout from limits on each read into deadlines "
	  "for a whole request, as Postfix 3.7's setting of this name does, but on by default: "
	  "a command line must arrive complete within smtpd_timeout of the reply before it, "
	  "and message content (DATA, or a BDAT command and its chunk) within "
	  "smtpd_data_timeout plus one second for every smtpd_min_data_rate octets received; "
	  "a TLS handshake must end within smtpd_tls_handshake_timeout. Without it a client "
	  "that sends one octet now and then holds its session for ever (slowloris)."),
	I(smtpd_min_data_rate, "500", 1, INT_MAX, true,
	  "Octets per second of message content that earn one more second of "
	  "smtpd_data_timeout under smtpd_per_request_deadline (Postfix's default, 500: "
	  "a 10 MB message may take 180 s plus 20,000 s)."),
	I(smtpd_recipient_overshoot_limit, "1000", 0, INT_MAX, true,
	  "Recipients past smtpd_recipient_limit (each refused with 452 4.5.3, to be sent "
	  "again in a later transaction, RFC 5321 §4.5.3.1.10) a client may give in a "
	  "transaction before each further one counts as an error towards smtpd_hard_error_limit, as in "
	  "Postfix: a client that pipelines its whole list keeps the recipients accepted."),
	I(smtpd_junk_command_limit, "100", 0, INT_MAX, true,
	  "NOOP, RSET, VRFY, EXPN and HELP commands a client may send before each further one "
	  "counts as an error towards smtpd_hard_error_limit, as in Postfix (which counts "
	  "NOOP, RSET, VRFY and ETRN); the count starts again after each accepted message."),
	TM(smtpd_shutdown_timeout, "30s", 0, 3600 * SEC, true,
	  "After SIGTERM, how long sessions in the middle of a transaction may take to finish "
	  "it; then each one still open gets 421 4.3.2 and is closed (RFC 5321 §3.8). Keep it "
	  "below the service manager's own stop timeout (systemd's TimeoutStopSec, 90 s)."),
	TM(smtpd_greet_pause, "0s", 0, 300 * SEC, true,
	  "Delay before the greeting, to catch clients that talk before it; 0 disables."),
	E(smtpd_pregreet_action, "log", w_pregreet, true,
	  "What to do with a client that sends before the greeting: log, or reject (554 and close)."),
	E(smtpd_forbid_bare_newline, "reject", w_bare_nl, true,
	  "A bare LF or CR in a command or message line (DATA or BDAT): reject the command or "
	  "message, or normalize: a bare LF ends the line as CRLF would and a bare CR in "
	  "message content is dropped, as in Postfix; a bare CR inside a command is refused "
	  "either way. The message ends only at CRLF.CRLF under both (SMTP smuggling, "
	  "CVE-2023-51764)."),
	B(smtpd_reject_long_lines, "no", true,
	  "Reject messages (DATA or BDAT) with a text line longer than RFC 5321 §4.5.3.1.6 "
	  "allows (1000 octets including CRLF), with 554 5.6.0; otherwise such lines are "
	  "stored unchanged. Command lines over their limit (§4.5.3.1.4: 512 octets, more "
	  "for MAIL and RCPT with extensions) get 500 5.5.2 either way."),
	S(mail_owner, "", false,
	  "User to switch to after the listening sockets are bound (its groups too); "
	  "empty: keep the current user. A reload (SIGHUP) reads the configuration file "
	  "and every file it names as this user; ehlod warns at start when that would "
	  "fail."),
	I(smtpd_workers, "0", 0, 64, false,
	  "Event-loop worker threads; 0 means one per CPU."),
	I(delivery_threads, "4", 1, 64, false,
	  "Threads that write messages to mailboxes. One commits at a time and takes every message "
	  "that arrived meanwhile as its next group commit; another steps in when 64 messages wait "
	  "or the oldest has waited 2 ms (a slow disk, a Maildir on a stuck file system)."),
	E(smtpd_tls_security_level, "may", w_tls_level, true,
	  "STARTTLS: none (not offered), may (offered), encrypt (required: before it every "
	  "command but NOOP, EHLO, HELO, STARTTLS and QUIT gets 530 5.7.0; RFC 3207 §4)."),
	L(smtpd_tls_cert_file, "", true, NULL,
	  "PEM certificate chain files, one per key in smtpd_tls_key_file (e.g. one RSA and one ECDSA)."),
	L(smtpd_tls_key_file, "", true, NULL,
	  "PEM private key files, in the same order as smtpd_tls_cert_file."),
	SC(smtpd_tls_protocols, ">=TLSv1.2", true, check_tls_protocols,
	  "TLS protocol versions allowed, in Postfix syntax: \">=TLSv1.2\", \"!SSLv3, !TLSv1\", "
	  "or a list of versions."),
	S(smtpd_tls_ciphers, "", true,
	  "OpenSSL cipher list for TLS 1.2 and below; empty: OpenSSL's default."),
	P(tls_server_sni_maps, "", true,
	  "File mapping SNI host names to certificate and key files; empty: no SNI selection."),
	B(smtpd_tls_ask_ccert, "no", true,
	  "Ask clients for a certificate (it is logged, not required)."),
	TM(smtpd_tls_handshake_timeout, "60s", 1, DAY, true,
	  "How long a TLS handshake may take."),
	B(smtpd_tls_session_tickets, "yes", true,
	  "Issue TLS session tickets for resumption."),
	B(smtpd_tls_auto_cert, "yes", true,
	  "When no certificate is configured, create a self-signed one for $myhostname on "
	  "first start, in $smtpd_tls_auto_cert_dir."),
	P(smtpd_tls_auto_cert_dir, "var/tls", false,
	  "Directory for the automatically created certificate and key. Run as root with "
	  "mail_owner, it must be root's and not writable by group or others (root creates "
	  "files there before dropping privileges); ehlod creates it so, and takes back one "
	  "that earlier versions gave to mail_owner."),
	HELO(helo_check_syntax, "reject",
	  "EHLO/HELO argument is not a syntactically valid domain or address literal (RFC 5321 §4.1.1.1). "
	  "Such a name is judged by this check alone: the other checks on the name are none for it, "
	  "so off, log and tag let it through."),
	HELO(helo_check_fqdn, "tag",
	  "EHLO name is not a fully-qualified domain name (RFC 5321 §2.3.5)."),
	HELO(helo_check_literal_match, "tag",
	  "Address literal in EHLO differs from the client address."),
	HELO(helo_check_resolves, "tag",
	  "EHLO name does not resolve to any address."),
	HELO(helo_check_forward_match, "log",
	  "EHLO name resolves, but not to the client address. A reject here needs "
	  "helo_allow_ip_mismatch_reject = yes (RFC 5321 §4.1.4)."),
	HELO(helo_check_ptr, "tag",
	  "Client address has no PTR record."),
	HELO(helo_check_fcrdns, "tag",
	  "PTR name of the client does not resolve back to the client address (FCrDNS)."),
	HELO(helo_check_ptr_match, "log",
	  "EHLO name differs from the client's PTR name (compared by registered domain unless "
	  "helo_ptr_match_exact). A reject needs helo_allow_ip_mismatch_reject = yes."),
	HELO(helo_check_generic, "tag",
	  "PTR name looks like a generic (dynamic, residential) name."),
	HELO(helo_check_self_claim, "reject",
	  "Client claims to be this host ($myhostname or one of our addresses) from elsewhere."),
	HELO(helo_check_consistency, "log",
	  "Client changes its EHLO name within one session."),
	B(smtpd_delay_reject, "yes", true,
	  "Apply connect and EHLO rejections at RCPT TO, like Postfix, so the reason can be logged "
	  "with the envelope."),
	L(helo_checks_exempt, "", true, check_exempt,
	  "Clients exempt from the helo_check_* checks: addresses or networks (192.0.2.0/24, "
	  "2001:db8::/32), host names matched against the client's forward-confirmed PTR names "
	  "(never the EHLO name, which the client chooses), and .domain for every name under domain. "
	  "Names cost the PTR lookup and the forward lookups of the PTR names even when no enabled "
	  "check needs them, and a refusal waits for them (at most dns_timeout)."),
	B(helo_checks_exempt_authenticated, "yes", true,
	  "Exempt authenticated clients from the helo_check_* checks."),
	B(helo_checks_shadow, "no", true,
	  "Evaluate and log every helo_check_* verdict, but never act on it (trial mode)."),
	B(helo_ptr_match_exact, "no", true,
	  "helo_check_ptr_match compares whole names instead of registered domains."),
	B(helo_allow_ip_mismatch_reject, "no", true,
	  "Allow reject for helo_check_forward_match, helo_check_ptr_match and "
	  "helo_check_literal_match, which RFC 5321 §4.1.4 forbids (an EHLO argument that does "
	  "not match the client's address is not a reason to refuse mail)."),
	P(helo_generic_patterns_file, "", true,
	  "File of patterns for generic PTR names, one per line; empty: the built-in patterns."),
	P(public_suffix_file, "/usr/share/publicsuffix/public_suffix_list.dat", true,
	  "Public Suffix List, used to find registered domains."),
	L(dns_forwarders, "", false, check_forwarders,
	  "Resolvers to forward DNS queries to, as address[@port]; empty: resolve iteratively."),
	TM(dns_timeout, "2s", 1, 300 * SEC, true,
	  "How long one DNS lookup may take before it counts as a temporary failure."),
	I(dns_cache_size, "10000", 0, 100000000, false,
	  "DNS answers kept in the resolver cache."),
	I(dns_max_inflight, "1000", 2, 1000000, false,
	  "DNS queries each worker may have outstanding in its resolver library (libunbound; "
	  "an address lookup is two, A and AAAA). A query that passed dns_timeout still counts "
	  "until the resolver answers or the library gives up, which with a dead resolver takes "
	  "minutes, and each holds about 13 KB. A lookup beyond the limit fails at once as a "
	  "temporary DNS failure, the same as a timeout, and is counted in "
	  "ehlo_dns_inflight_limit_rejects_total."),
	L(smtpd_upstream_proxy_hosts, "", true, check_cidrs,
	  "Addresses or networks allowed to send a PROXY protocol header (v1 or v2); empty: none."),
	TM(smtpd_upstream_proxy_timeout, "5s", 1, 300 * SEC, true,
	  "How long to wait for the PROXY protocol header."),
	SC(metrics_listen, "", false, check_metrics_listen,
	  "Address:port of the Prometheus /metrics endpoint, e.g. 127.0.0.1:9187 or [::1]:9187; "
	  "empty: off. It has no authentication: keep it on loopback or the monitoring network."),
};

#define NSET (sizeof(settings) / sizeof(settings[0]))

/* ---------------------------------------------------------------------- */
/* Loader state                                                            */

enum { M_NEW, M_BUSY, M_DONE };

struct memo {
	int   state;
	char *val;
	size_t len;
};

struct entry {
	char    *name;
	char    *raw;
	unsigned line;
	size_t   seq;                           /* position in the file */
	int      setting;                       /* index into settings[], or -1 */
	bool     referenced;
	struct memo m;
};

struct loader {
	const char    *file;
	struct buf    *err;
	bool           failed;
	struct entry  *ent;                     /* sorted by name after parsing */
	size_t         nent, cap;
	struct memo    defmemo[NSET];
	const char    *stack[CFG_MAX_DEPTH + 2];   /* names being expanded */
	size_t         nstack;
	unsigned       line;                    /* line of the innermost file entry */
	size_t         depth;
	size_t         total;                   /* bytes produced by expansion */
};

static bool
is_namechar(int c)
{
	return ascii_isalnum(c) || c == '_';
}

static bool
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void
fail(struct loader *L, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(struct loader *L, unsigned line, const char *fmt, ...)
{
	va_list ap;
	if (L->failed)
		return;
	L->failed = true;
	if (line)
		buf_appendf(L->err, "%s:%u: ", L->file, line);
	else
		buf_appendf(L->err, "%s: ", L->file);
	va_start(ap, fmt);
	buf_vappendf(L->err, fmt, ap);
	va_end(ap);
}

static int
find_setting(const char *name, size_t n)
{
	for (size_t i = 0; i < NSET; i++)
		if (strlen(settings[i].name) == n && memcmp(settings[i].name, name, n) == 0)
			return (int)i;
	return -1;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static struct entry *
find_entry(struct loader *L, const char *name, size_t n)
{
	size_t lo = 0, hi = L->nent;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *m = L->ent[mid].name;
		int c = strncmp(m, name, n);
		if (c == 0)
			c = m[n] == '\0' ? 0 : 1;
		if (c == 0)
			return &L->ent[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Pass 1: logical lines                                                   */

static void
add_entry(struct loader *L, const char *text, size_t n, unsigned line)
{
	size_t i = 0, ns, ne, ve;
	while (i < n && is_space((unsigned char)text[i]))
		i++;
	ns = i;
	while (i < n && text[i] != '=' && !is_space((unsigned char)text[i]))
		i++;
	ne = i;
	while (i < n && is_space((unsigned char)text[i]))
		i++;
	if (ne == ns) {
		fail(L, line, "missing setting name before '='");
		return;
	}
	if (i >= n || text[i] != '=') {
		struct buf s = BUF_INIT;
		log_sanitize(&s, text, n, 60);
		fail(L, line, "missing '=' after setting name: \"%s\"", buf_cstr(&s));
		buf_free(&s);
		return;
	}
	for (size_t k = ns; k < ne; k++)
		if (!is_namechar((unsigned char)text[k])) {
			struct buf s = BUF_INIT;
			log_sanitize(&s, text + ns, ne - ns, 60);
			fail(L, line, "bad setting name \"%s\" (letters, digits and '_' only)",
			    buf_cstr(&s));
			buf_free(&s);
			return;
		}
	i++;
	while (i < n && is_space((unsigned char)text[i]))
		i++;
	ve = n;
	while (ve > i && is_space((unsigned char)text[ve - 1]))
		ve--;
	if (L->nent == L->cap) {
		L->cap = L->cap ? L->cap * 2 : 32;
		L->ent = xrealloc(L->ent, L->cap * sizeof(*L->ent));
	}
	struct entry *e = &L->ent[L->nent];
	memset(e, 0, sizeof(*e));
	e->name = xstrndup(text + ns, ne - ns);
	e->raw = xstrndup(text + i, ve - i);
	e->line = line;
	e->seq = L->nent++;
	e->setting = find_setting(e->name, ne - ns);
}

/*
 * Split into logical lines. A physical line that starts with whitespace
 * continues the logical line; blank lines and lines whose first non-space
 * character is '#' are skipped, also in the middle of a continuation (as
 * Postfix's readllines() does). Pieces are joined with a single space.
 */
static void
parse_lines(struct loader *L, const char *text, size_t len)
{
	struct buf cur = BUF_INIT;
	unsigned lineno = 0, start = 0;
	bool have = false;
	size_t p = 0;

	while (p < len && !L->failed) {
		const char *nl = memchr(text + p, '\n', len - p);
		size_t e = nl ? (size_t)(nl - text) : len, s = p, t;
		p = nl ? e + 1 : len;
		lineno++;
		if (memchr(text + s, '\0', e - s) != NULL) {
			fail(L, lineno, "NUL byte in configuration text");
			break;
		}
		for (t = s; t < e && is_space((unsigned char)text[t]); t++)
			;
		if (t == e || text[t] == '#')
			continue;
		while (e > t && is_space((unsigned char)text[e - 1]))
			e--;
		if (t > s) {
			if (!have) {
				fail(L, lineno, "line starts with whitespace, but there is "
				    "no setting before it to continue");
				break;
			}
			buf_append_char(&cur, ' ');
			buf_append(&cur, text + t, e - t);
			continue;
		}
		if (have)
			add_entry(L, cur.data, cur.len, start);
		buf_reset(&cur);
		buf_append(&cur, text + t, e - t);
		have = true;
		start = lineno;
	}
	if (have && !L->failed)
		add_entry(L, cur.data, cur.len, start);
	buf_free(&cur);
}

/* ---------------------------------------------------------------------- */
/* Pass 2: expansion                                                       */

static bool walk(struct loader *L, const char *s, size_t n, struct buf *out);
static const char *resolve(struct loader *L, const char *name, size_t n, size_t *vlen);

static unsigned
cur_line(const struct loader *L)
{
	return L->line;
}

static const char *
cur_name(const struct loader *L)
{
	return L->nstack ? L->stack[L->nstack - 1] : "?";
}

static bool
emit(struct loader *L, struct buf *out, const char *p, size_t n)
{
	if (out == NULL)
		return true;
	if (n > CFG_MAX_VALUE || out->len > CFG_MAX_VALUE - n) {
		fail(L, cur_line(L), "%s: value longer than %d bytes after expansion",
		    cur_name(L), CFG_MAX_VALUE);
		return false;
	}
	buf_append(out, p, n);
	return true;
}

/* Scan mode (out == NULL) only checks syntax and that names exist. */
static bool
reference(struct loader *L, const char *name, size_t n, struct buf *out)
{
	if (out == NULL) {
		struct entry *e = find_entry(L, name, n);
		if (e != NULL)
			e->referenced = true;
		else if (find_setting(name, n) < 0) {
			fail(L, cur_line(L), "%s: undefined parameter $%.*s",
			    cur_name(L), (int)n, name);
			return false;
		}
		return true;
	}
	size_t vlen;
	const char *v = resolve(L, name, n, &vlen);
	return v != NULL && emit(L, out, v, vlen);
}

/*
 * Expand (out != NULL) or syntax-check (out == NULL) the raw text s[0..n),
 * following Postfix's mac_expand: $$, $name, ${name}, $(name),
 * ${name?value} (value when $name is non-empty), ${name:value} (value when
 * $name is empty). The branch not taken is still checked.
 */
static bool
walk(struct loader *L, const char *s, size_t n, struct buf *out)
{
	bool ok = true;
	if (++L->depth > CFG_MAX_DEPTH) {
		fail(L, cur_line(L), "%s: references nested more than %d deep",
		    cur_name(L), CFG_MAX_DEPTH);
		L->depth--;
		return false;
	}
	size_t i = 0;
	while (ok && i < n) {
		const char *d = memchr(s + i, '$', n - i);
		size_t lit = d ? (size_t)(d - (s + i)) : n - i;
		if (!emit(L, out, s + i, lit)) {
			ok = false;
			break;
		}
		i += lit;
		if (i >= n)
			break;
		/* s[i] == '$' */
		char c = i + 1 < n ? s[i + 1] : '\0';
		if (c == '$') {
			ok = emit(L, out, "$", 1);
			i += 2;
		} else if (c == '{' || c == '(') {
			char close = c == '{' ? '}' : ')';
			size_t j = i + 2, level = 1;
			for (; j < n; j++) {
				if (s[j] == c)
					level++;
				else if (s[j] == close && --level == 0)
					break;
			}
			if (j >= n) {
				fail(L, cur_line(L), "%s: missing '%c' after \"$%c\"",
				    cur_name(L), close, c);
				ok = false;
				break;
			}
			const char *body = s + i + 2;
			size_t blen = j - (i + 2), k = 0;
			while (k < blen && is_namechar((unsigned char)body[k]))
				k++;
			if (k == 0) {
				fail(L, cur_line(L), "%s: empty name in \"$%c...%c\"",
				    cur_name(L), c, close);
				ok = false;
			} else if (k == blen) {
				ok = reference(L, body, k, out);
			} else if (body[k] == '?' || body[k] == ':') {
				bool take = false;
				if (out != NULL) {
					size_t vlen;
					const char *v = resolve(L, body, k, &vlen);
					if (v == NULL)
						ok = false;
					else
						take = (body[k] == '?') == (vlen > 0);
				} else {
					ok = reference(L, body, k, NULL);
				}
				if (ok)
					ok = walk(L, body + k + 1, blen - k - 1, take ? out : NULL);
			} else {
				struct buf t = BUF_INIT;
				log_sanitize(&t, body, blen, 60);
				fail(L, cur_line(L), "%s: bad name in \"$%c%s%c\" (expected "
				    "$%cname%c, $%cname?value%c or $%cname:value%c)", cur_name(L),
				    c, buf_cstr(&t), close, c, close, c, close, c, close);
				buf_free(&t);
				ok = false;
			}
			i = j + 1;
		} else if (is_namechar((unsigned char)c)) {
			size_t j = i + 1;
			while (j < n && is_namechar((unsigned char)s[j]))
				j++;
			ok = reference(L, s + i + 1, j - i - 1, out);
			i = j;
		} else {
			fail(L, cur_line(L), "%s: '$' must be followed by a name, {name}, "
			    "(name) or '$' (write $$ for a literal '$')", cur_name(L));
			ok = false;
		}
	}
	L->depth--;
	return ok;
}

static bool
push(struct loader *L, const char *name)
{
	for (size_t i = 0; i < L->nstack; i++)
		if (strcmp(L->stack[i], name) == 0) {
			struct buf b = BUF_INIT;
			for (size_t k = i; k < L->nstack; k++)
				buf_appendf(&b, "$%s -> ", L->stack[k]);
			buf_appendf(&b, "$%s", name);
			fail(L, cur_line(L), "%s: expansion loop: %s", cur_name(L), buf_cstr(&b));
			buf_free(&b);
			return false;
		}
	if (L->nstack >= CFG_MAX_DEPTH) {
		fail(L, cur_line(L), "%s: references nested more than %d deep",
		    cur_name(L), CFG_MAX_DEPTH);
		return false;
	}
	L->depth++;
	L->stack[L->nstack++] = name;
	return true;
}

static void
pop(struct loader *L)
{
	L->nstack--;
	L->depth--;
}

/* Expand one memoised node: a file entry or a setting's default. */
static const char *
expand_node(struct loader *L, struct memo *m, const char *name, const char *raw,
    char *(*fn)(struct loader *), unsigned line, size_t *vlen)
{
	if (m->state == M_DONE) {
		*vlen = m->len;
		return m->val;
	}
	if (!push(L, name))
		return NULL;
	unsigned saved = L->line;
	if (line)
		L->line = line;
	m->state = M_BUSY;
	struct buf b = BUF_INIT;
	bool ok;
	if (fn != NULL) {
		char *v = fn(L);
		ok = v != NULL;
		if (ok) {
			buf_append_str(&b, v);
			free(v);
		}
	} else {
		ok = walk(L, raw, strlen(raw), &b);
	}
	L->line = saved;
	pop(L);
	if (!ok) {
		buf_free(&b);
		m->state = M_NEW;
		return NULL;
	}
	if (b.len > CFG_MAX_EXPANDED - L->total) {
		fail(L, cur_line(L), "%s: configuration expands to more than %d bytes",
		    name, CFG_MAX_EXPANDED);
		buf_free(&b);
		m->state = M_NEW;
		return NULL;
	}
	L->total += b.len;
	m->len = b.len;
	m->val = buf_steal(&b);
	m->state = M_DONE;
	*vlen = m->len;
	return m->val;
}

static const char *
setting_value(struct loader *L, int si, size_t *vlen)
{
	const struct cfg_setting *st = &settings[si];
	return expand_node(L, &L->defmemo[si], st->name, st->def ? st->def : "",
	    st->def_fn, 0, vlen);
}

/* The expanded value of $name: the file's entry if any, else the default. */
static const char *
resolve(struct loader *L, const char *name, size_t n, size_t *vlen)
{
	struct entry *e = find_entry(L, name, n);
	if (e != NULL) {
		e->referenced = true;
		return expand_node(L, &e->m, e->name, e->raw, NULL, e->line, vlen);
	}
	int si = find_setting(name, n);
	if (si >= 0)
		return setting_value(L, si, vlen);
	fail(L, cur_line(L), "%s: undefined parameter $%.*s", cur_name(L), (int)n, name);
	return NULL;
}

static char *
default_myhostname(struct loader *L)
{
	char h[256];
	if (gethostname(h, sizeof(h)) != 0 || h[0] == '\0')
		strcpy(h, "localhost");
	h[sizeof(h) - 1] = '\0';
	if (strchr(h, '.') == NULL)
		return xasprintf("%s.localdomain", h);
	return xstrdup(h);
}

static char *
default_mydomain(struct loader *L)
{
	size_t n;
	const char *h = resolve(L, "myhostname", strlen("myhostname"), &n);
	if (h == NULL)
		return NULL;
	const char *dot = strchr(h, '.');
	if (dot == NULL || dot[1] == '\0')
		return xstrdup("localdomain");
	return xstrdup(dot + 1);
}

/* ---------------------------------------------------------------------- */
/* Typed values                                                            */

static bool
parse_time_ms(const char *s, long long *ms)
{
	size_t i = 0;
	while (ascii_isdigit((unsigned char)s[i]))
		i++;
	unsigned long long v;
	if (!parse_u64(s, i, &v))
		return false;
	const char *u = s + i;
	unsigned long long mul;
	if (strcmp(u, "") == 0 || strcmp(u, "s") == 0)
		mul = 1000;
	else if (strcmp(u, "ms") == 0)
		mul = 1;
	else if (strcmp(u, "m") == 0)
		mul = 60ULL * 1000;
	else if (strcmp(u, "h") == 0)
		mul = 3600ULL * 1000;
	else if (strcmp(u, "d") == 0)
		mul = 86400ULL * 1000;
	else if (strcmp(u, "w") == 0)
		mul = 7 * 86400ULL * 1000;
	else
		return false;
	if (v > (unsigned long long)LLONG_MAX / mul)
		return false;
	*ms = (long long)(v * mul);
	return true;
}

static void
format_time(struct buf *b, long long ms)
{
	if (ms % 1000 == 0)
		buf_appendf(b, "%llds", ms / 1000);
	else
		buf_appendf(b, "%lldms", ms);
}

static bool
parse_bool(const char *s, bool *out)
{
	if (ascii_ieq(s, "yes") || ascii_ieq(s, "true") || strcmp(s, "1") == 0)
		*out = true;
	else if (ascii_ieq(s, "no") || ascii_ieq(s, "false") || strcmp(s, "0") == 0)
		*out = false;
	else
		return false;
	return true;
}

static bool
parse_ll(const char *s, long long *out)
{
	bool neg = *s == '-';
	unsigned long long v;
	if (!parse_u64(s + neg, strlen(s + neg), &v))
		return false;
	if (neg ? v > (unsigned long long)LLONG_MAX + 1 : v > (unsigned long long)LLONG_MAX)
		return false;
	*out = neg ? (long long)(0 - v) : (long long)v;
	return true;
}

static void
list_split(const char *s, struct cfg_list *l)
{
	size_t cap = 4;
	l->n = 0;
	l->v = xcalloc(cap, sizeof(*l->v));
	while (*s) {
		size_t skip = strspn(s, ", \t\r\n\v\f");
		s += skip;
		size_t w = strcspn(s, ", \t\r\n\v\f");
		if (w == 0)
			break;
		if (l->n + 1 >= cap) {
			cap *= 2;
			l->v = xrealloc(l->v, cap * sizeof(*l->v));
		}
		l->v[l->n++] = xstrndup(s, w);
		s += w;
	}
	l->v[l->n] = NULL;
}

static void
list_free(struct cfg_list *l)
{
	if (l->v != NULL)
		for (size_t i = 0; i < l->n; i++)
			free(l->v[i]);
	x_free(&l->v);
	l->n = 0;
}

static void
field_free(const struct cfg_setting *st, void *field)
{
	if (st->type == T_STRING || st->type == T_PATH)
		x_free((char **)field);
	else if (st->type == T_LIST)
		list_free(field);
}

static const char *
type_name(enum cfg_type t)
{
	static const char *const names[] = {
		"string", "path", "bool", "int", "size", "time", "enum", "list"
	};
	return names[t];
}

/*
 * Convert the expanded value v into the field. False with a message
 * (without prefix) in msg. The field is left empty-but-valid on failure.
 */
static bool
field_set(const struct cfg_setting *st, void *field, const char *v, struct buf *msg)
{
	long long ll;
	unsigned long long ull;
	bool b;

	switch (st->type) {
	case T_STRING:
	case T_PATH:
		*(char **)field = xstrdup(v);
		return true;
	case T_LIST:
		list_split(v, field);
		return true;
	case T_BOOL:
		if (!parse_bool(v, &b))
			goto bad;
		*(bool *)field = b;
		return true;
	case T_INT:
		if (!parse_ll(v, &ll))
			goto bad;
		if (ll < st->min || ll > st->max) {
			buf_appendf(msg, "%lld is out of range %lld..%lld", ll, st->min, st->max);
			return false;
		}
		*(long long *)field = ll;
		return true;
	case T_SIZE:
		if (!parse_u64(v, strlen(v), &ull))
			goto bad;
		if (ull < (unsigned long long)st->min || ull > (unsigned long long)st->max) {
			buf_appendf(msg, "%llu is out of range %lld..%lld", ull, st->min, st->max);
			return false;
		}
		*(unsigned long long *)field = ull;
		return true;
	case T_TIME:
		if (!parse_time_ms(v, &ll))
			goto bad;
		if (ll < st->min || ll > st->max) {
			buf_append_str(msg, "time ");
			format_time(msg, ll);
			buf_append_str(msg, " is out of range ");
			format_time(msg, st->min);
			buf_append_str(msg, "..");
			format_time(msg, st->max);
			return false;
		}
		*(long long *)field = ll;
		return true;
	case T_ENUM:
		for (int k = 0; st->words[k] != NULL; k++)
			if (ascii_ieq(v, st->words[k])) {
				*(int *)field = k;
				return true;
			}
		goto bad;
	}
bad:
	buf_appendf(msg, "bad %s value \"", type_name(st->type));
	log_sanitize(msg, v, strlen(v), 80);
	buf_append_str(msg, "\"");
	switch (st->type) {
	case T_BOOL:
		buf_append_str(msg, " (expected yes, no, true, false, 1 or 0)");
		break;
	case T_INT:
	case T_SIZE:
		buf_append_str(msg, " (expected a decimal number)");
		break;
	case T_TIME:
		buf_append_str(msg, " (expected a number with an optional unit: "
		    "ms, s, m, h, d or w; the default unit is s)");
		break;
	case T_ENUM:
		buf_append_str(msg, " (expected one of:");
		for (int k = 0; st->words[k] != NULL; k++)
			buf_appendf(msg, " %s", st->words[k]);
		buf_append_str(msg, ")");
		break;
	default:
		break;
	}
	return false;
}

/* Canonical text of a field: what config_print_nondefault prints. */
static void
field_format(const struct cfg_setting *st, const void *field, struct buf *b)
{
	switch (st->type) {
	case T_STRING:
	case T_PATH:
		buf_append_str(b, *(char *const *)field);
		break;
	case T_BOOL:
		buf_append_str(b, *(const bool *)field ? "yes" : "no");
		break;
	case T_INT:
		buf_appendf(b, "%lld", *(const long long *)field);
		break;
	case T_SIZE:
		buf_appendf(b, "%llu", *(const unsigned long long *)field);
		break;
	case T_TIME:
		format_time(b, *(const long long *)field);
		break;
	case T_ENUM: {
		int k = *(const int *)field, nw = 0;
		while (st->words[nw] != NULL)
			nw++;
		buf_append_str(b, k >= 0 && k < nw ? st->words[k] : "?");
		break;
	}
	case T_LIST: {
		const struct cfg_list *l = field;
		for (size_t i = 0; i < l->n; i++)
			buf_appendf(b, "%s%s", i ? ", " : "", l->v[i]);
		break;
	}
	}
}

/* ---------------------------------------------------------------------- */
/* Load                                                                    */

static void
loader_free(struct loader *L)
{
	for (size_t i = 0; i < L->nent; i++) {
		free(L->ent[i].name);
		free(L->ent[i].raw);
		free(L->ent[i].m.val);
	}
	free(L->ent);
	for (size_t i = 0; i < NSET; i++)
		free(L->defmemo[i].val);
}

/* Sort by name; of several entries for one name keep the last (Postfix),
 * with a warning for each one dropped, as Postfix's postconf gives ("a
 * typo fixed further down the file" and "two people edited it" look the
 * same otherwise). */
static void
dedupe(struct loader *L, struct buf *warn)
{
	size_t w = 0;
	if (L->nent == 0)
		return;
	qsort(L->ent, L->nent, sizeof(*L->ent), entry_cmp);
	for (size_t r = 0; r < L->nent; r++) {
		if (r + 1 < L->nent && strcmp(L->ent[r].name, L->ent[r + 1].name) == 0) {
			/* Equal names sort by seq (entry_cmp), so r+1 is later. */
			buf_appendf(warn, "%s%s:%u: %s overrides the entry on line %u", warn->len ?
			    "\n" : "", L->file, L->ent[r + 1].line, L->ent[r].name, L->ent[r].line);
			free(L->ent[r].name);
			free(L->ent[r].raw);
			continue;
		}
		L->ent[w++] = L->ent[r];
	}
	L->nent = w;
}

static int
seq_cmp(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void
build(struct loader *L, struct ehlo_config *cfg)
{
	struct entry **order;
	struct buf msg = BUF_INIT;
	size_t vlen;

	dedupe(L, &cfg->priv->warnings);
	order = xcalloc(L->nent + 1, sizeof(*order));
	for (size_t i = 0; i < L->nent; i++)
		order[i] = &L->ent[i];
	qsort(order, L->nent, sizeof(*order), seq_cmp);

	/* Pass 2: expand every entry, in file order, so the first error is reported. */
	for (size_t i = 0; i < L->nent && !L->failed; i++) {
		struct entry *e = order[i];
		L->line = e->line;
		if (expand_node(L, &e->m, e->name, e->raw, NULL, e->line, &vlen) == NULL)
			break;
	}
	/* Pass 3: unknown names. */
	for (size_t i = 0; i < L->nent && !L->failed; i++) {
		struct entry *e = order[i];
		if (e->setting < 0 && !e->referenced)
			fail(L, e->line, "unknown setting \"%s\" (a name that is not a setting "
			    "is allowed only as a macro referenced with $%s)", e->name, e->name);
	}
	/* Pass 4: typed fields, file entries first (file order), then defaults. */
	for (size_t i = 0; i <= L->nent && !L->failed; i++) {
		bool defaults = i == L->nent;
		for (size_t si = 0; si < NSET && !L->failed; si++) {
			const struct cfg_setting *st = &settings[si];
			struct entry *e = find_entry(L, st->name, strlen(st->name));
			const char *v;
			if (defaults ? e != NULL : e != order[i])
				continue;
			L->line = e ? e->line : 0;
			v = e ? e->m.val : setting_value(L, (int)si, &vlen);
			if (v == NULL)
				break;
			cfg->priv->line[si] = L->line;
			buf_reset(&msg);
			if (!field_set(st, (char *)cfg + st->off, v, &msg))
				fail(L, L->line, "%s: %s", st->name, buf_cstr(&msg));
		}
	}
	/* Local domains in UTF-8 (U-labels) are kept in their A-label form
	 * (RFC 5890 §2.3.2.1), the form RCPT domains are compared in; one
	 * that does not convert is left for check_domains to refuse. */
	for (size_t i = 0; i < cfg->virtual_mailbox_domains.n && !L->failed; i++) {
		char *d = cfg->virtual_mailbox_domains.v[i];
		struct buf a = BUF_INIT;
		if (idna_has_utf8(d, strlen(d)) && idna_to_ascii(d, strlen(d), &a)) {
			free(d);
			cfg->virtual_mailbox_domains.v[i] = buf_steal(&a);
		}
		buf_free(&a);
	}
	/* Canonical defaults for config_print_nondefault (expanded in this context). */
	for (size_t si = 0; si < NSET && !L->failed; si++) {
		const struct cfg_setting *st = &settings[si];
		union { char *s; bool b; long long ll; unsigned long long ull; int i;
		    struct cfg_list l; } tmp;
		const char *v = setting_value(L, (int)si, &vlen);
		if (v == NULL)
			break;
		memset(&tmp, 0, sizeof(tmp));
		buf_reset(&msg);
		if (field_set(st, &tmp, v, &msg)) {
			struct buf c = BUF_INIT;
			field_format(st, &tmp, &c);
			cfg->priv->defcanon[si] = buf_steal(&c);
			field_free(st, &tmp);
		}
	}
	buf_free(&msg);
	free(order);
}

static struct ehlo_config *
cfg_new(const char *file)
{
	struct ehlo_config *cfg = xcalloc(1, sizeof(*cfg));
	cfg->refs = 1;
	cfg->config_file = xstrdup(file);
	cfg->priv = xcalloc(1, sizeof(*cfg->priv));
	cfg->priv->file = xstrdup(file);
	cfg->priv->line = xcalloc(NSET, sizeof(*cfg->priv->line));
	cfg->priv->defcanon = xcalloc(NSET, sizeof(*cfg->priv->defcanon));
	return cfg;
}

struct ehlo_config *
config_load_buffer(const char *text, size_t len, const char *name_for_errors,
    struct buf *err)
{
	struct loader L;
	struct ehlo_config *cfg;

	memset(&L, 0, sizeof(L));
	L.file = name_for_errors ? name_for_errors : "(buffer)";
	L.err = err;
	cfg = cfg_new(L.file);
	parse_lines(&L, text, len);
	if (!L.failed)
		build(&L, cfg);
	loader_free(&L);
	if (L.failed || !config_validate(cfg, err)) {
		config_free(&cfg);
		return NULL;
	}
	return cfg;
}

struct ehlo_config *
config_load(const char *path, struct buf *err)
{
	struct ehlo_config *cfg;
	struct stat st;
	char *text;
	size_t len = 0;
	int fd;

	if (path == NULL) {
		cfg = config_load_buffer("", 0, "(defaults)", err);
		if (cfg != NULL) {
			free(cfg->config_file);
			cfg->config_file = xstrdup("");
		}
		return cfg;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		buf_appendf(err, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		buf_appendf(err, "%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	text = xmalloc(CFG_MAX_FILE + 1);
	for (;;) {
		ssize_t r = read(fd, text + len, CFG_MAX_FILE + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			buf_appendf(err, "%s: read error: %s", path, strerror(errno));
			close(fd);
			free(text);
			return NULL;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > CFG_MAX_FILE) {
			buf_appendf(err, "%s: larger than %d bytes", path, CFG_MAX_FILE);
			close(fd);
			free(text);
			return NULL;
		}
	}
	close(fd);
	cfg = config_load_buffer(text, len, path, err);
	free(text);
	return cfg;
}

void
config_free(struct ehlo_config **cfgp)
{
	struct ehlo_config *cfg = *cfgp;
	if (cfg == NULL)
		return;
	for (size_t si = 0; si < NSET; si++)
		field_free(&settings[si], (char *)cfg + settings[si].off);
	if (cfg->priv != NULL) {
		for (size_t si = 0; si < NSET; si++)
			free(cfg->priv->defcanon[si]);
		free(cfg->priv->defcanon);
		free(cfg->priv->line);
		free(cfg->priv->file);
		buf_free(&cfg->priv->warnings);
		free(cfg->priv);
	}
	free(cfg->config_file);
	free(cfg);
	*cfgp = NULL;
}

/* ---------------------------------------------------------------------- */
/* Validation                                                              */

static int
setting_index(const char *name)
{
	return find_setting(name, strlen(name));
}

static void
prefix(const struct ehlo_config *cfg, struct buf *err, int si)
{
	const char *file = cfg->priv ? cfg->priv->file : cfg->config_file;
	unsigned line = cfg->priv && si >= 0 ? cfg->priv->line[si] : 0;
	if (line)
		buf_appendf(err, "%s:%u: ", file, line);
	else
		buf_appendf(err, "%s: ", file);
}

static int
later(const struct ehlo_config *cfg, int a, int b)
{
	if (cfg->priv == NULL)
		return a;
	return cfg->priv->line[b] > cfg->priv->line[a] ? b : a;
}

/*
 * Settings that together leave a listener serving nobody, which started
 * and said "ready": a submissions listener (RFC 8314 §3: TLS from the first
 * octet) with TLS off closed every connection; "encrypt" with STARTTLS
 * discarded from EHLO answered every MAIL with 530 on the listeners that
 * need STARTTLS (RFC 3207 §4). A submissions listener without a usable
 * certificate under "may" is found when the certificates are loaded
 * (gen_build).
 */
static bool
tls_rules_ok(const struct ehlo_config *cfg, struct buf *err)
{
	bool starttls_discarded = false;
	for (size_t i = 0; i < cfg->smtpd_discard_ehlo_keywords.n; i++)
		if (ascii_ieq(cfg->smtpd_discard_ehlo_keywords.v[i], "starttls"))
			starttls_discarded = true;
	struct buf msg = BUF_INIT;
	for (size_t i = 0; i < cfg->listen.n; i++) {
		struct cfg_listen l;
		if (!config_parse_listen(cfg->listen.v[i], &l, &msg))
			continue;       /* reported by the listen check */
		if (l.kind == LISTEN_SUBMISSIONS &&
		    cfg->smtpd_tls_security_level == TLS_LEVEL_NONE) {
			prefix(cfg, err, later(cfg, setting_index("listen"),
			    setting_index("smtpd_tls_security_level")));
			buf_appendf(err, "listen: %s is implicit TLS (RFC 8314) but "
			    "smtpd_tls_security_level = none: every connection would be "
			    "closed", cfg->listen.v[i]);
			buf_free(&msg);
			return false;
		}
		if (l.kind != LISTEN_SUBMISSIONS && starttls_discarded &&
		    cfg->smtpd_tls_security_level == TLS_LEVEL_ENCRYPT) {
			prefix(cfg, err, later(cfg, setting_index("smtpd_discard_ehlo_keywords"),
			    setting_index("smtpd_tls_security_level")));
			buf_appendf(err, "smtpd_tls_security_level = encrypt with STARTTLS in "
			    "smtpd_discard_ehlo_keywords: %s would refuse all mail (RFC 3207 §4)",
			    cfg->listen.v[i]);
			buf_free(&msg);
			return false;
		}
	}
	buf_free(&msg);
	return true;
}

bool
config_validate(const struct ehlo_config *cfg, struct buf *err)
{
	struct buf msg = BUF_INIT;

	for (size_t si = 0; si < NSET; si++) {
		const struct cfg_setting *st = &settings[si];
		const void *f = (const char *)cfg + st->off;
		if (st->type == T_STRING || st->type == T_PATH) {
			if (*(char *const *)f == NULL) {
				prefix(cfg, err, (int)si);
				buf_appendf(err, "%s: no value", st->name);
				return false;
			}
		}
		if (st->check == NULL)
			continue;
		buf_reset(&msg);
		if (!st->check(f, &msg)) {
			prefix(cfg, err, (int)si);
			buf_appendf(err, "%s: %s", st->name, buf_cstr(&msg));
			buf_free(&msg);
			return false;
		}
	}
	buf_free(&msg);

	/* Nothing to deliver into: the start would stop (exit 73); say so
	 * with the line, and from ehlod -t too. */
	if (cfg->virtual_mailbox_base[0] == '\0') {
		prefix(cfg, err, setting_index("virtual_mailbox_base"));
		buf_append_str(err, "virtual_mailbox_base is empty: name the directory that "
		    "holds the Maildirs");
		return false;
	}
	if (cfg->smtpd_tls_cert_file.n != cfg->smtpd_tls_key_file.n) {
		prefix(cfg, err, later(cfg, setting_index("smtpd_tls_cert_file"),
		    setting_index("smtpd_tls_key_file")));
		buf_appendf(err, "smtpd_tls_cert_file lists %zu file(s) but smtpd_tls_key_file "
		    "lists %zu: give one key per certificate, in the same order",
		    cfg->smtpd_tls_cert_file.n, cfg->smtpd_tls_key_file.n);
		return false;
	}
	/* DATA reserves a few KiB before the first octet arrives: a budget
	 * below 64 KiB would refuse every message, 452, for ever. */
	if (cfg->smtpd_message_memory_limit != 0 && cfg->smtpd_message_memory_limit < 65536) {
		prefix(cfg, err, setting_index("smtpd_message_memory_limit"));
		buf_appendf(err, "smtpd_message_memory_limit (%llu) must be 0 (no limit) or at "
		    "least 65536: below that no message could be accepted",
		    cfg->smtpd_message_memory_limit);
		return false;
	}
	/*
	 * A message of message_size_limit octets is held in a buffer that grows
	 * by doubling, so it can take up to twice its size; a memory budget
	 * smaller than that would refuse such a message (452) every time.
	 */
	if (cfg->smtpd_message_memory_limit != 0 && cfg->message_size_limit != 0 &&
	    cfg->smtpd_message_memory_limit / 2 < cfg->message_size_limit) {
		prefix(cfg, err, later(cfg, setting_index("smtpd_message_memory_limit"),
		    setting_index("message_size_limit")));
		buf_appendf(err, "smtpd_message_memory_limit (%llu) must be at least twice "
		    "message_size_limit (%llu), or 0: a message of the largest size could never "
		    "be accepted", cfg->smtpd_message_memory_limit, cfg->message_size_limit);
		return false;
	}
	/*
	 * RFC 5321 §4.1.4: "a client SHOULD NOT ... the SMTP server MUST NOT
	 * refuse to accept a message" because the EHLO name fails to match the
	 * client address. Refusing on those checks takes an explicit override.
	 */
	if (!cfg->helo_allow_ip_mismatch_reject) {
		/* An address literal is the EHLO argument too (§4.1.4: "EHLO SP
		 * ( Domain / address-literal )"), so literal_match is guarded as
		 * well; docs/identity.md said not to reject on it, but the
		 * configuration allowed it. */
		static const char *const guarded[] = {
			"helo_check_forward_match", "helo_check_ptr_match", "helo_check_literal_match"
		};
		for (size_t k = 0; k < sizeof guarded / sizeof guarded[0]; k++) {
			int si = setting_index(guarded[k]);
			if (*(const int *)((const char *)cfg + settings[si].off) != ACT_REJECT)
				continue;
			prefix(cfg, err, si);
			buf_appendf(err, "%s = reject: RFC 5321 §4.1.4 forbids refusing mail "
			    "because the EHLO name does not match the client's IP address; use "
			    "tag, log or tempfail, or set helo_allow_ip_mismatch_reject = yes "
			    "to override", guarded[k]);
			return false;
		}
	}
	return tls_rules_ok(cfg, err);
}

bool
config_reload_compatible(const struct ehlo_config *old, const struct ehlo_config *nw,
    struct buf *err)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	bool ok = true;
	for (size_t si = 0; si < NSET; si++) {
		const struct cfg_setting *st = &settings[si];
		if (st->reloadable)
			continue;
		buf_reset(&a);
		buf_reset(&b);
		field_format(st, (const char *)old + st->off, &a);
		field_format(st, (const char *)nw + st->off, &b);
		if (a.len == b.len && memcmp(buf_cstr(&a), buf_cstr(&b), a.len) == 0)
			continue;
		if (ok)
			buf_append_str(err, "changes need a restart, not a reload:");
		buf_appendf(err, " %s", st->name);
		ok = false;
	}
	buf_free(&a);
	buf_free(&b);
	return ok;
}

/* Copies the value of field src (setting st) over dst, which is freed first. */
static void
field_copy(const struct cfg_setting *st, void *dst, const void *src)
{
	field_free(st, dst);
	switch (st->type) {
	case T_STRING:
	case T_PATH:
		*(char **)dst = xstrdup(*(char *const *)src);
		break;
	case T_LIST: {
		const struct cfg_list *from = src;
		struct cfg_list *to = dst;
		to->n = from->n;
		to->v = xcalloc(from->n + 1, sizeof *to->v);
		for (size_t i = 0; i < from->n; i++)
			to->v[i] = xstrdup(from->v[i]);
		break;
	}
	case T_BOOL:
		*(bool *)dst = *(const bool *)src;
		break;
	case T_INT:
	case T_TIME:
		*(long long *)dst = *(const long long *)src;
		break;
	case T_SIZE:
		*(unsigned long long *)dst = *(const unsigned long long *)src;
		break;
	case T_ENUM:
		*(int *)dst = *(const int *)src;
		break;
	}
}

void
config_keep_restart_only(struct ehlo_config *nw, const struct ehlo_config *old)
{
	for (size_t si = 0; si < NSET; si++) {
		const struct cfg_setting *st = &settings[si];
		if (!st->reloadable)
			field_copy(st, (char *)nw + st->off, (const char *)old + st->off);
	}
}

/* ---------------------------------------------------------------------- */
/* Printing                                                                */

static int
name_cmp(const void *a, const void *b)
{
	const struct cfg_setting *x = *(const struct cfg_setting *const *)a;
	const struct cfg_setting *y = *(const struct cfg_setting *const *)b;
	return strcmp(x->name, y->name);
}

static void
sorted(const struct cfg_setting *v[NSET])
{
	for (size_t i = 0; i < NSET; i++)
		v[i] = &settings[i];
	qsort(v, NSET, sizeof(v[0]), name_cmp);
}

void
config_print_nondefault(const struct ehlo_config *cfg, FILE *out)
{
	const struct cfg_setting *v[NSET];
	struct buf b = BUF_INIT;
	sorted(v);
	for (size_t i = 0; i < NSET; i++) {
		size_t si = (size_t)(v[i] - settings);
		buf_reset(&b);
		field_format(v[i], (const char *)cfg + v[i]->off, &b);
		const char *def = cfg->priv ? cfg->priv->defcanon[si] : NULL;
		if (def != NULL && strcmp(def, buf_cstr(&b)) == 0)
			continue;
		/* Values are printed expanded; a '$' left in one is a literal
		 * (written "$$") and is written so again, so that the output
		 * reads back as the same configuration. */
		fprintf(out, "%s = ", v[i]->name);
		for (const char *p = buf_cstr(&b); *p; p++) {
			if (*p == '$')
				fputc('$', out);
			fputc(*p, out);
		}
		fputc('\n', out);
	}
	buf_free(&b);
}

const char *
config_warnings(const struct ehlo_config *cfg)
{
	return cfg->priv != NULL && cfg->priv->warnings.len > 0 ?
	    buf_cstr(&cfg->priv->warnings) : "";
}

bool
config_get(const struct ehlo_config *cfg, const char *name, struct buf *out)
{
	int si = setting_index(name);
	if (si < 0)
		return false;
	field_format(&settings[si], (const char *)cfg + settings[si].off, out);
	return true;
}

/*
 * man(7) text: escape backslashes and hyphens, protect a leading '.' or
 * '\'', and write the section sign as a groff escape so the page is ASCII.
 */
static void
man_text(FILE *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else if ((unsigned char)s[0] == 0xc2 && (unsigned char)s[1] == 0xa7) {
			fputs("\\(sc", out);
			s++;
		}
		else
			fputc(*s, out);
	}
}

static void
describe_type(const struct cfg_setting *st, struct buf *b)
{
	buf_append_str(b, type_name(st->type));
	switch (st->type) {
	case T_INT:
		if (st->max == INT_MAX)
			buf_appendf(b, ", at least %lld", st->min);
		else
			buf_appendf(b, ", %lld..%lld", st->min, st->max);
		break;
	case T_SIZE:
		buf_appendf(b, " in bytes, at least %lld", st->min);
		break;
	case T_TIME:
		buf_append_str(b, ", ");
		format_time(b, st->min);
		buf_append_str(b, "..");
		format_time(b, st->max);
		break;
	case T_ENUM:
		buf_append_str(b, ": ");
		for (int k = 0; st->words[k] != NULL; k++)
			buf_appendf(b, "%s%s", k ? " | " : "", st->words[k]);
		break;
	default:
		break;
	}
	if (!st->reloadable)
		buf_append_str(b, "; needs a restart");
}

void
config_print_all(FILE *out, bool man_format)
{
	const struct cfg_setting *v[NSET];
	struct buf t = BUF_INIT;
	sorted(v);
	for (size_t i = 0; i < NSET; i++) {
		const struct cfg_setting *st = v[i];
		const char *def = st->def_fn ? "(computed, see below)" : st->def;
		buf_reset(&t);
		describe_type(st, &t);
		if (man_format) {
			fputs(".TP\n.B ", out);
			man_text(out, st->name);
			fputs("\n", out);
			man_text(out, st->doc);
			fputs("\n.br\nType: ", out);
			man_text(out, buf_cstr(&t));
			fputs(".\n.br\nDefault: ", out);
			if (st->def_fn != NULL)
				fputs("computed.\n", out);
			else if (*def == '\0')
				fputs("empty.\n", out);
			else {
				fputs("\\fB", out);
				man_text(out, def);
				fputs("\\fR\n", out);
			}
		} else {
			fprintf(out, "# %s\n# Type: %s.\n", st->doc, buf_cstr(&t));
			if (st->def_fn != NULL)
				fprintf(out, "#%s = (computed)\n\n", st->name);
			else
				fprintf(out, "#%s = %s\n\n", st->name, def);
		}
	}
	buf_free(&t);
}

/* ---------------------------------------------------------------------- */
/* Structured values                                                       */

static bool
parse_port(const char *s, size_t n, uint16_t *port)
{
	unsigned long long v;
	if (!parse_u64(s, n, &v) || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* Numeric IPv4 or IPv6 address (no brackets). */
static bool
parse_ip(const char *s, size_t n, int *family, uint8_t addr[16])
{
	char tmp[64];
	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, tmp, addr) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, tmp, addr) == 1) {
		*family = AF_INET6;
		return true;
	}
	return false;
}

/* "ADDR:PORT", "[IPV6]:PORT" or "*:PORT" into out (kind untouched). */
static bool
parse_hostport(const char *s, size_t n, struct cfg_listen *out, struct buf *msg)
{
	const char *colon = NULL, *a = s;
	size_t an;
	uint8_t bin[16];

	if (n > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', n);
		if (rb == NULL || (size_t)(rb - s) + 1 >= n || rb[1] != ':')
			goto bad;
		a = s + 1;
		an = (size_t)(rb - a);
		colon = rb + 1;
		if (!parse_ip(a, an, &out->family, bin) || out->family != AF_INET6)
			goto bad;
	} else {
		colon = memrchr(s, ':', n);
		if (colon == NULL)
			goto bad;
		an = (size_t)(colon - s);
		if (an == 1 && s[0] == '*') {
			out->family = AF_UNSPEC;
		} else if (!parse_ip(a, an, &out->family, bin) || out->family != AF_INET) {
			goto bad;
		}
	}
	if (!parse_port(colon + 1, n - (size_t)(colon + 1 - s), &out->port))
		goto bad;
	if (out->family == AF_UNSPEC)
		out->addr[0] = '\0';
	else
		inet_ntop(out->family, bin, out->addr, sizeof(out->addr));
	return true;
bad:
	buf_append_str(msg, "bad address:port \"");
	log_sanitize(msg, s, n, 80);
	buf_append_str(msg, "\" (expected 192.0.2.1:25, [2001:db8::1]:25 or *:25; "
	    "numeric addresses only)");
	return false;
}

bool
config_parse_listen(const char *s, struct cfg_listen *out, struct buf *err)
{
	static const char *const kinds[] = { "smtp", "submission", "submissions" };
	const char *c = strchr(s, ':');
	memset(out, 0, sizeof(*out));
	if (c != NULL) {
		for (int k = 0; k < 3; k++)
			if (ascii_ieqn(s, (size_t)(c - s), kinds[k])) {
				out->kind = (enum listen_kind)k;
				return parse_hostport(c + 1, strlen(c + 1), out, err);
			}
	}
	buf_append_str(err, "bad listen entry \"");
	log_sanitize(err, s, strlen(s), 80);
	buf_append_str(err, "\" (expected kind:address:port with kind smtp, submission "
	    "or submissions)");
	return false;
}

