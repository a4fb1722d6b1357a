/*
 * Tests for the ehlod.conf loader: a table of parser cases (logical lines,
 * comments, $ expansion, loops, unknown names, every type, bounds, value
 * syntax, cross-setting rules), each run as written, with CRLF line ends,
 * and without its final newline; plus defaults, printing, reload checks,
 * file loading, and a differential test against Postfix's postconf.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "net/cidr.h"
#include "lib/buf.h"
#include "lib/xmalloc.h"

struct pcase {
	const char *text;
	const char *name;       /* setting to inspect when the load succeeds */
	const char *want;       /* its canonical value */
	const char *err;        /* NULL: must load; else substring of the error */
};

static const struct pcase cases[] = {
	/* logical lines */
	{ "smtpd_banner = a\n  b\n\tc\n", "smtpd_banner", "a b c", NULL },
	{ "smtpd_banner = a   \n   b  \n", "smtpd_banner", "a b", NULL },
	{ "smtpd_banner = a\n  # not part\n  b\n", "smtpd_banner", "a b", NULL },
	{ "smtpd_banner = a\n#comment at column 0\n  b\n", "smtpd_banner", "a b", NULL },
	{ "smtpd_banner = a\n\n   \n  b\n", "smtpd_banner", "a b", NULL },
	{ "# c\nsmtpd_banner = a # stays\n", "smtpd_banner", "a # stays", NULL },
	{ "smtpd_banner =\n  continued\n", "smtpd_banner", "continued", NULL },
	{ "smtpd_timeout=7\n", "smtpd_timeout", "7s", NULL },
	{ "mail_owner =\n", "mail_owner", "", NULL },
	{ "mail_owner = a\nmail_owner = b\n", "mail_owner", "b", NULL },
	{ "\n\n  # only comments\n#x\n", "mail_owner", "", NULL },
	{ "  mail_owner = a\n", NULL, NULL, "t.conf:1: line starts with whitespace" },
	{ "# c\n\n\tx\n", NULL, NULL, "t.conf:3: line starts with whitespace" },
	{ "mail_owner a\n", NULL, NULL, "t.conf:1: missing '=' after setting name" },
	{ "mail owner = a\n", NULL, NULL, "t.conf:1: missing '='" },
	{ "= a\n", NULL, NULL, "t.conf:1: missing setting name" },
	{ "mail-owner = a\n", NULL, NULL, "t.conf:1: bad setting name" },
	{ "mail_owner = a\nsmtpd_baner = x\n", NULL, NULL,
	  "t.conf:2: unknown setting \"smtpd_baner\"" },
	{ "smtpd_banner = a\n\nsmtpd_timeout = 5\n  x\n", NULL, NULL,
	  "t.conf:3: smtpd_timeout: bad time value \"5 x\"" },
	{ "smtpd_timeout = 10sx\n", NULL, NULL, "t.conf:1: smtpd_timeout: bad time value \"10sx\"" },
	{ "message_size_limit = 9223372036854775808\n", NULL, NULL,
	  "t.conf:1: message_size_limit: 9223372036854775808 is out of range" },
	{ "smtpd_hard_error_limit = -9223372036854775809\n", NULL, NULL,
	  "t.conf:1: smtpd_hard_error_limit: bad int value" },
	/* Lists split at commas, spaces and tabs alike (as Postfix's). */
	{ "smtpd_discard_ehlo_keywords = dsn\tchunking\n", "smtpd_discard_ehlo_keywords",
	  "dsn, chunking", NULL },

	/* expansion; later definitions count */
	{ "greeting = hi\nsmtpd_banner = $myhostname $greeting\nmyhostname = mx.a.test\n",
	  "smtpd_banner", "mx.a.test hi", NULL },
	{ "myhostname = h.test\nsmtpd_banner = ${myhostname} $(myhostname)|$$x|a$$\n",
	  "smtpd_banner", "h.test h.test|$x|a$", NULL },
	{ "myhostname = h.test\nmail_owner =\n"
	  "smtpd_banner = ${myhostname?set}${mail_owner?bad}${mail_owner:empty}${myhostname:bad}\n",
	  "smtpd_banner", "setempty", NULL },
	{ "myhostname = h.test\nsmtpd_banner = ${myhostname?${mail_owner:x$myhostname}}\n",
	  "smtpd_banner", "xh.test", NULL },
	{ "myhostname = h.test\nsmtpd_banner = h $(myhostname?(a))\n",
	  "smtpd_banner", "h (a)", NULL },
	{ "myhostname = h.test\nsmtpd_banner = h ${myhostname?{a}}\n",
	  "smtpd_banner", "h {a}", NULL },
	{ "myhostname = mx.example.org\n", "mydomain", "example.org", NULL },
	{ "myhostname = localhost\n", "mydomain", "localdomain", NULL },
	{ "myhostname = h.test\n", "smtpd_banner", "h.test ESMTP ehlo", NULL },
	{ "myhostname = h.test\n", "virtual_mailbox_domains", "h.test, localhost", NULL },
	{ "a = $b\nb = c\nmail_owner = $a\n", "mail_owner", "c", NULL },
	{ "x = 1\nmail_owner = ${mail_owner2:$x}\nmail_owner2 =\n", "mail_owner", "1", NULL },
	{ "x = 1\nmail_owner = ${maillog_file?ok:${x}}\n", "mail_owner", "ok:1", NULL },
	{ "mail_owner = ${myhostname:$unused_macro}\nunused_macro = z\n",
	  "mail_owner", "", NULL },
	{ "smtpd_banner = $mail_owner\nmail_owner = $smtpd_banner\n", NULL, NULL,
	  "t.conf:2: mail_owner: expansion loop: $smtpd_banner -> $mail_owner -> $smtpd_banner" },
	{ "mail_owner = a$mail_owner\n", NULL, NULL,
	  "t.conf:1: mail_owner: expansion loop: $mail_owner -> $mail_owner" },
	{ "myhostname = $smtpd_banner\n", NULL, NULL,
	  "t.conf:1: smtpd_banner: expansion loop: $myhostname -> $smtpd_banner -> $myhostname" },
	{ "mail_owner = ${mail_owner?x}\n", NULL, NULL, "expansion loop" },
	{ "smtpd_banner = $nosuch\n", NULL, NULL, "t.conf:1: smtpd_banner: undefined parameter $nosuch" },
	{ "smtpd_banner = ${nosuch?x}\n", NULL, NULL, "undefined parameter $nosuch" },
	{ "mail_owner =\nsmtpd_banner = ${mail_owner?$nosuch}\n", NULL, NULL,
	  "t.conf:2: smtpd_banner: undefined parameter $nosuch" },
	{ "smtpd_banner = a$\n", NULL, NULL, "t.conf:1: smtpd_banner: '$' must be followed" },
	/* RFC 5321 §4.3.1: "220 " domain-or-literal [text] */
	{ "smtpd_banner = hello there\n", "smtpd_banner", "hello there", NULL },
	{ "smtpd_banner = [192.0.2.1] ESMTP\n", "smtpd_banner", "[192.0.2.1] ESMTP", NULL },
	{ "smtpd_banner = (hello)\n", NULL, NULL, "t.conf:1: smtpd_banner: must start with" },
	{ "smtpd_banner = \"mx\" ESMTP\n", NULL, NULL, "smtpd_banner: must start with" },
	{ "smtpd_banner = mx.example ESMTP \x7f\n", NULL, NULL, "smtpd_banner: must start with" },
	{ "smtpd_banner = [] ESMTP\n", NULL, NULL, "smtpd_banner: must start with" },
	{ "smtpd_banner = a$-b\n", NULL, NULL, "'$' must be followed" },
	{ "smtpd_banner = ${myhostname\n", NULL, NULL, "t.conf:1: smtpd_banner: missing '}'" },
	{ "smtpd_banner = $(myhostname}\n", NULL, NULL, "missing ')'" },
	{ "smtpd_banner = a${my-hostname}b\n", NULL, NULL, "bad name in \"${my-hostname}\"" },
	{ "smtpd_banner = ${}\n", NULL, NULL, "empty name" },
	{ "smtpd_banner = ${?x}\n", NULL, NULL, "empty name" },
	{ "x = $x\n", NULL, NULL, "t.conf:1: x: expansion loop" },
	{ "x = 1\n", NULL, NULL, "t.conf:1: unknown setting \"x\"" },
	{ "x = $mail_owner\n", NULL, NULL, "t.conf:1: unknown setting \"x\"" },

	/* bool */
	{ "smtpd_reject_long_lines = yes\n", "smtpd_reject_long_lines", "yes", NULL },
	{ "smtpd_reject_long_lines = TRUE\n", "smtpd_reject_long_lines", "yes", NULL },
	{ "smtpd_reject_long_lines = 1\n", "smtpd_reject_long_lines", "yes", NULL },
	{ "smtpd_tls_session_tickets = No\n", "smtpd_tls_session_tickets", "no", NULL },
	{ "smtpd_tls_session_tickets = false\n", "smtpd_tls_session_tickets", "no", NULL },
	{ "smtpd_tls_session_tickets = 0\n", "smtpd_tls_session_tickets", "no", NULL },
	{ "smtpd_reject_long_lines = maybe\n", NULL, NULL,
	  "t.conf:1: smtpd_reject_long_lines: bad bool value \"maybe\"" },
	{ "smtpd_reject_long_lines =\n", NULL, NULL, "bad bool value \"\"" },

	/* int */
	{ "smtpd_recipient_limit = 5\n", "smtpd_recipient_limit", "5", NULL },
	{ "smtpd_recipient_limit = 0\n", NULL, NULL,
	  "t.conf:1: smtpd_recipient_limit: 0 is out of range 1..2147483647" },
	{ "smtpd_recipient_limit = -1\n", NULL, NULL, "-1 is out of range" },
	{ "smtpd_recipient_limit = 12abc\n", NULL, NULL, "bad int value \"12abc\"" },
	{ "smtpd_recipient_limit = 99999999999999999999999\n", NULL, NULL, "bad int value" },
	{ "smtpd_recipient_limit = 2147483648\n", NULL, NULL, "out of range" },
	{ "smtpd_client_connection_count_limit = 0\n",
	  "smtpd_client_connection_count_limit", "0", NULL },
	{ "smtpd_workers = 64\n", "smtpd_workers", "64", NULL },
	{ "smtpd_workers = 65\n", NULL, NULL, "smtpd_workers: 65 is out of range 0..64" },
	{ "delivery_threads = 0\n", NULL, NULL, "delivery_threads: 0 is out of range 1..64" },
	{ "dns_cache_size = 0\n", "dns_cache_size", "0", NULL },

	/* size */
	{ "message_size_limit = 0\n", "message_size_limit", "0", NULL },
	{ "message_size_limit = 52428800\n", "message_size_limit", "52428800", NULL },
	{ "message_size_limit = 10k\n", NULL, NULL, "message_size_limit: bad size value \"10k\"" },
	{ "message_size_limit = -5\n", NULL, NULL, "bad size value" },
	{ "message_size_limit = 18446744073709551615\n", NULL, NULL, "out of range" },

	/* time (stored in ms) */
	{ "smtpd_timeout = 500ms\n", "smtpd_timeout", "500ms", NULL },
	{ "smtpd_timeout = 5m\n", "smtpd_timeout", "300s", NULL },
	{ "smtpd_timeout = 1h\n", "smtpd_timeout", "3600s", NULL },
	{ "smtpd_timeout = 2d\n", "smtpd_timeout", "172800s", NULL },
	{ "smtpd_timeout = 1w\n", "smtpd_timeout", "604800s", NULL },
	{ "smtpd_timeout = 10\n", "smtpd_timeout", "10s", NULL },
	{ "smtpd_timeout = 1500ms\n", "smtpd_timeout", "1500ms", NULL },
	{ "smtpd_timeout = 0\n", NULL, NULL, "smtpd_timeout: time 0s is out of range 1ms..604800s" },
	{ "smtpd_timeout = 2w\n", NULL, NULL, "out of range" },
	{ "smtpd_timeout = 5x\n", NULL, NULL, "smtpd_timeout: bad time value \"5x\"" },
	{ "smtpd_timeout = 5 s\n", NULL, NULL, "bad time value" },
	{ "smtpd_timeout = s\n", NULL, NULL, "bad time value" },
	{ "smtpd_timeout = 5S\n", NULL, NULL, "bad time value" },
	{ "smtpd_timeout = 99999999999999999w\n", NULL, NULL, "bad time value" },
	{ "smtpd_greet_pause = 0\n", "smtpd_greet_pause", "0s", NULL },
	{ "smtpd_greet_pause = 6m\n", NULL, NULL, "out of range 0s..300s" },

	/* enum */
	{ "smtpd_tls_security_level = ENCRYPT\n", "smtpd_tls_security_level", "encrypt", NULL },
	{ "smtpd_tls_security_level = maybe\n", NULL, NULL,
	  "smtpd_tls_security_level: bad enum value \"maybe\" (expected one of: none may encrypt)" },
	{ "helo_check_fqdn = tempfail\n", "helo_check_fqdn", "tempfail", NULL },
	{ "helo_check_fqdn = off\n", "helo_check_fqdn", "off", NULL },
	{ "smtpd_forbid_bare_newline = normalize\n", "smtpd_forbid_bare_newline", "normalize", NULL },
	{ "smtpd_pregreet_action = reject\n", "smtpd_pregreet_action", "reject", NULL },

	/* list */
	{ "virtual_mailbox_domains = a.test,b.test  c.test ,, d.test\n",
	  "virtual_mailbox_domains", "a.test, b.test, c.test, d.test", NULL },
	{ "virtual_mailbox_domains = a.test,\n  b.test\n  # x\n  c.test\n",
	  "virtual_mailbox_domains", "a.test, b.test, c.test", NULL },
	{ "virtual_mailbox_domains = , ,\n", "virtual_mailbox_domains", "", NULL },
	/* U-labels are kept as A-labels (RFC 5890), the form RCPT is compared in. */
	{ "virtual_mailbox_domains = a.test, B\xc3\x9c" "cher.example\n",
	  "virtual_mailbox_domains", "a.test, xn--bcher-kva.example", NULL },

	/* structured values */
	{ "listen = smtp:[::1]:25, submission:127.0.0.1:587 submissions:*:465 smtp:0.0.0.0:0\n",
	  "listen", "smtp:[::1]:25, submission:127.0.0.1:587, submissions:*:465, smtp:0.0.0.0:0",
	  NULL },
	{ "listen = smtp:127.0.0.1\n", NULL, NULL, "t.conf:1: listen: bad address:port \"127.0.0.1\"" },
	{ "listen = pop:127.0.0.1:110\n", NULL, NULL, "listen: bad listen entry \"pop:127.0.0.1:110\"" },
	{ "listen = smtp:localhost:25\n", NULL, NULL, "bad address:port" },
	{ "listen =\n", NULL, NULL, "t.conf:1: listen: no listener" },
	{ "listen = smtp:127.0.0.1:25, submission:127.0.0.1:25\n", NULL, NULL,
	  "are the same address and port" },
	{ "listen = smtp:127.0.0.1:25, smtp:127.0.0.2:25, smtp:[::1]:25\n", "listen",
	  "smtp:127.0.0.1:25, smtp:127.0.0.2:25, smtp:[::1]:25", NULL },
	{ "virtual_mailbox_domains = a.test, b/c.test\n", NULL, NULL,
	  "virtual_mailbox_domains: bad domain \"b/c.test\"" },
	{ "virtual_mailbox_domains = .a.test\n", NULL, NULL, "bad domain" },
	/* The greeting line is at most 512 octets (RFC 5321 §4.5.3.1.5). */
	{ "smtpd_banner = mx.test ESMTP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
	  NULL, NULL, "the greeting line allows 506" },
	{ "virtual_mailbox_domains = b\xc2\x85.example\n", NULL, NULL, "bad domain" },
	{ "listen = smtp:[127.0.0.1]:25\n", NULL, NULL, "bad address:port" },
	{ "listen = smtp:::1:25\n", NULL, NULL, "bad address:port" },
	{ "listen = smtp:[::1]25\n", NULL, NULL, "bad address:port" },
	{ "listen = smtp:127.0.0.1:65536\n", NULL, NULL, "bad address:port" },
	{ "listen = smtp:127.0.0.1:\n", NULL, NULL, "bad address:port" },
	{ "listen = smtp\n", NULL, NULL, "bad listen entry" },
	{ "smtpd_discard_ehlo_keywords = PIPELINING, chunking 8bitmime\n",
	  "smtpd_discard_ehlo_keywords", "PIPELINING, chunking, 8bitmime", NULL },
	{ "smtpd_discard_ehlo_keywords = pipelining, etrn\n", NULL, NULL,
	  "t.conf:1: smtpd_discard_ehlo_keywords: unknown EHLO keyword \"etrn\"" },
	{ "helo_checks_exempt = 127.0.0.0/8, ::1 2001:db8::/32\n", "helo_checks_exempt",
	  "127.0.0.0/8, ::1, 2001:db8::/32", NULL },
	{ "helo_checks_exempt = [2001:db8::]/32 [::1]\n", "helo_checks_exempt",
	  "[2001:db8::]/32, [::1]", NULL },
	{ "helo_checks_exempt = 192.0.2.1/24\n", NULL, NULL, "bad exemption" },
	{ "helo_checks_exempt = 10.0.0.0/33\n", NULL, NULL,
	  "helo_checks_exempt: bad exemption \"10.0.0.0/33\"" },
	{ "helo_checks_exempt = mx.partner.example, .partner.example, 192.0.2.0/24\n",
	  "helo_checks_exempt", "mx.partner.example, .partner.example, 192.0.2.0/24", NULL },
	{ "helo_checks_exempt = bad..name\n", NULL, NULL, "bad exemption" },
	{ "helo_checks_exempt = x/y\n", NULL, NULL, "bad exemption" },
	{ "smtpd_upstream_proxy_hosts = proxy.example\n", NULL, NULL, "bad address or network" },
	{ "smtpd_upstream_proxy_hosts = proxy.test\n", NULL, NULL, "bad address or network" },
	{ "smtpd_upstream_proxy_hosts = 10.0.0.1/\n", NULL, NULL, "bad address or network" },
	{ "dns_forwarders = 127.0.0.1@5353, ::1\n", "dns_forwarders", "127.0.0.1@5353, ::1", NULL },
	{ "dns_forwarders = resolver.test\n", NULL, NULL, "dns_forwarders: bad DNS forwarder" },
	{ "dns_forwarders = 127.0.0.1@0\n", NULL, NULL, "bad DNS forwarder" },
	{ "smtpd_tls_protocols = >=TLSv1.3\n", "smtpd_tls_protocols", ">=TLSv1.3", NULL },
	{ "smtpd_tls_protocols = !SSLv2, !SSLv3, !TLSv1, !TLSv1.1\n", "smtpd_tls_protocols",
	  "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", NULL },
	{ "smtpd_tls_protocols = TLSv1.4\n", NULL, NULL,
	  "smtpd_tls_protocols: protocols: unknown protocol \"TLSv1.4\"" },
	/* Exclusions start from the TLS layer's default (TLSv1.2 and up). */
	{ "smtpd_tls_protocols = !TLSv1.2\n", "smtpd_tls_protocols", "!TLSv1.2", NULL },
	{ "smtpd_tls_protocols = TLSv1.1 TLSv1.3\n", NULL, NULL, "leaves a gap" },
	{ "smtpd_tls_protocols = >=TLSv1.3 <=TLSv1.2\n", NULL, NULL, "enables no protocol version" },
	{ "metrics_listen = [::1]:9187\n", "metrics_listen", "[::1]:9187", NULL },
	{ "metrics_listen = 9187\n", NULL, NULL, "metrics_listen: bad address:port" },
	{ "myhostname =\n", NULL, NULL, "t.conf:1: myhostname: must not be empty" },
	{ "myhostname = a b\n", NULL, NULL, "myhostname: bad host name" },

	/* cross-setting rules */
	{ "smtpd_tls_cert_file = a.pem b.pem\nsmtpd_tls_key_file = a.key\n", NULL, NULL,
	  "t.conf:2: smtpd_tls_cert_file lists 2 file(s) but smtpd_tls_key_file lists 1" },
	{ "smtpd_tls_cert_file = a.pem\n", NULL, NULL, "t.conf:1: smtpd_tls_cert_file lists 1" },
	{ "smtpd_tls_cert_file = rsa.pem, ec.pem\nsmtpd_tls_key_file = rsa.key ec.key\n",
	  "smtpd_tls_key_file", "rsa.key, ec.key", NULL },
	{ "message_size_limit = 300000000\n", NULL, NULL,
	  "t.conf:1: smtpd_message_memory_limit (536870912) must be at least twice "
	  "message_size_limit (300000000)" },
	{ "smtpd_message_memory_limit = 20000000\n\nmessage_size_limit = 10000001\n", NULL, NULL,
	  "t.conf:3: smtpd_message_memory_limit (20000000) must be at least twice" },
	{ "smtpd_message_memory_limit = 20000000\nmessage_size_limit = 10000000\n",
	  "smtpd_message_memory_limit", "20000000", NULL },
	{ "message_size_limit = 300000000\nsmtpd_message_memory_limit = 0\n",
	  "message_size_limit", "300000000", NULL },
	/* Too small for any message (DATA reserves a few KiB first). */
	{ "smtpd_message_memory_limit = 1000\nmessage_size_limit = 0\n", NULL, NULL,
	  "t.conf:1: smtpd_message_memory_limit (1000) must be 0 (no limit) or at least 65536" },
	{ "smtpd_message_memory_limit = 65536\nmessage_size_limit = 0\n",
	  "smtpd_message_memory_limit", "65536", NULL },
	/* A listener that would serve nobody. */
	{ "listen = smtp:127.0.0.1:25, submissions:127.0.0.1:465\n"
	  "smtpd_tls_security_level = none\n", NULL, NULL,
	  "t.conf:2: listen: submissions:127.0.0.1:465 is implicit TLS (RFC 8314) but "
	  "smtpd_tls_security_level = none" },
	{ "smtpd_tls_security_level = none\nlisten = submissions:127.0.0.1:465\n", NULL, NULL,
	  "t.conf:2: listen: submissions:127.0.0.1:465 is implicit TLS" },
	{ "listen = smtp:127.0.0.1:25\nsmtpd_tls_security_level = none\n",
	  "smtpd_tls_security_level", "none", NULL },
	{ "smtpd_tls_security_level = encrypt\nsmtpd_discard_ehlo_keywords = dsn, STARTTLS\n",
	  NULL, NULL, "t.conf:2: smtpd_tls_security_level = encrypt with STARTTLS in "
	  "smtpd_discard_ehlo_keywords" },
	{ "listen = submission:127.0.0.1:587\nsmtpd_tls_security_level = encrypt\n"
	  "smtpd_discard_ehlo_keywords = starttls\n", NULL, NULL, "would refuse all mail" },
	/* Implicit TLS needs no STARTTLS. */
	{ "listen = submissions:127.0.0.1:465\nsmtpd_tls_security_level = encrypt\n"
	  "smtpd_discard_ehlo_keywords = starttls\n", "smtpd_discard_ehlo_keywords", "starttls",
	  NULL },
	{ "smtpd_tls_security_level = may\nsmtpd_discard_ehlo_keywords = starttls\n",
	  "smtpd_discard_ehlo_keywords", "starttls", NULL },
	{ "\nhelo_check_forward_match = reject\n", NULL, NULL,
	  "t.conf:2: helo_check_forward_match = reject: RFC 5321 §4.1.4 forbids" },
	{ "helo_check_ptr_match = reject\n", NULL, NULL, "set helo_allow_ip_mismatch_reject = yes" },
	{ "helo_check_literal_match = reject\n", NULL, NULL,
	  "helo_check_literal_match = reject: RFC 5321 §4.1.4 forbids" },
	{ "helo_check_ptr_match = reject\nhelo_allow_ip_mismatch_reject = yes\n",
	  "helo_check_ptr_match", "reject", NULL },
	{ "helo_check_forward_match = tempfail\n", "helo_check_forward_match", "tempfail", NULL },
};

/* Variants of each case: as written, CRLF line ends, no final newline. */
enum variant { V_AS_IS, V_CRLF, V_NO_FINAL_NL, V_COUNT };

static size_t
make_variant(const struct pcase *c, size_t len, enum variant v, char **out)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < len; i++) {
		if (c->text[i] == '\n' && v == V_CRLF)
			buf_append_char(&b, '\r');
		if (c->text[i] == '\n' && v == V_NO_FINAL_NL && i + 1 == len)
			break;
		buf_append_char(&b, c->text[i]);
	}
	size_t n = b.len;
	*out = buf_steal(&b);
	return n;
}

static size_t
case_len(const struct pcase *c)
{
	return strlen(c->text);
}

static void
test_parser_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pcase *c = &cases[i];
		size_t len = case_len(c);
		for (int v = 0; v < V_COUNT; v++) {
			char *text;
			size_t n = make_variant(c, len, (enum variant)v, &text);
			struct buf err = BUF_INIT;
			struct ehlo_config *cfg = config_load_buffer(text, n, "t.conf", &err);
			if (c->err == NULL) {
				if (cfg == NULL)
					fail_msg("case %zu variant %d: unexpected error: %s", i, v,
					    buf_cstr(&err));
				struct buf got = BUF_INIT;
				assert_true(config_get(cfg, c->name, &got));
				if (strcmp(buf_cstr(&got), c->want) != 0)
					fail_msg("case %zu variant %d: %s = \"%s\", want \"%s\"", i, v,
					    c->name, buf_cstr(&got), c->want);
				assert_int_equal(err.len, 0);
				buf_free(&got);
				config_free(&cfg);
				assert_null(cfg);
			} else {
				if (cfg != NULL)
					fail_msg("case %zu variant %d: loaded, want error %s", i, v, c->err);
				if (strstr(buf_cstr(&err), c->err) == NULL)
					fail_msg("case %zu variant %d: error \"%s\", want \"%s\"", i, v,
					    buf_cstr(&err), c->err);
				/* Every error names the file first. */
				assert_true(strncmp(buf_cstr(&err), "t.conf:", 7) == 0);
			}
			buf_free(&err);
			free(text);
		}
	}
}

static void
test_nul_byte(void **state)
{
	(void)state;
	static const char text[] = "smtpd_timeout = 5\nmail_owner = a\0b\n";
	struct buf err = BUF_INIT;
	assert_null(config_load_buffer(text, sizeof(text) - 1, "t.conf", &err));
	assert_string_equal(buf_cstr(&err), "t.conf:2: NUL byte in configuration text");
	buf_free(&err);
}

/* "a0 = x", "a1 = $a0$a0...": exponential growth must stop with an error. */
static void
test_expansion_bomb(void **state)
{
	(void)state;
	struct buf t = BUF_INIT, err = BUF_INIT;
	buf_append_str(&t, "a0 = xxxxxxxxxx\n");
	for (int k = 1; k < 12; k++) {
		buf_appendf(&t, "a%d = ", k);
		for (int j = 0; j < 10; j++)
			buf_appendf(&t, "$a%d", k - 1);
		buf_append_str(&t, "\n");
	}
	buf_append_str(&t, "mail_owner = $a11\n");
	struct ehlo_config *cfg = config_load_buffer(t.data, t.len, "bomb.conf", &err);
	assert_null(cfg);
	assert_non_null(strstr(buf_cstr(&err), "longer than"));
	assert_non_null(strstr(buf_cstr(&err), "bomb.conf:"));
	buf_free(&t);
	buf_free(&err);

	/* Many names each just under the per-value limit: the total limit stops it. */
	buf_append_str(&t, "b0 = ");
	for (int j = 0; j < 1000; j++)
		buf_append_str(&t, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
	buf_append_str(&t, "\n");
	for (int k = 1; k < 200; k++)
		buf_appendf(&t, "b%d = $b0\n", k);
	buf_append_str(&t, "mail_owner =");
	for (int k = 1; k < 200; k++)
		buf_appendf(&t, "${b%d:}", k);
	buf_append_str(&t, "\n");
	cfg = config_load_buffer(t.data, t.len, "bomb.conf", &err);
	assert_null(cfg);
	assert_non_null(strstr(buf_cstr(&err), "expands to more than"));
	buf_free(&t);
	buf_free(&err);
}

static void
test_nesting_limits(void **state)
{
	(void)state;
	struct buf t = BUF_INIT, err = BUF_INIT;
	/* Deep braces. */
	buf_append_str(&t, "mail_owner = ");
	for (int i = 0; i < 5000; i++)
		buf_append_str(&t, "${maillog_file?");
	for (int i = 0; i < 5000; i++)
		buf_append_str(&t, "}");
	buf_append_str(&t, "\n");
	assert_null(config_load_buffer(t.data, t.len, "deep.conf", &err));
	assert_non_null(strstr(buf_cstr(&err), "deep.conf:1: mail_owner: references nested"));
	buf_free(&t);
	buf_free(&err);
	/* A long chain of macros. */
	for (int i = 0; i < 200; i++)
		buf_appendf(&t, "m%d = $m%d\n", i, i + 1);
	buf_append_str(&t, "m200 = end\nmail_owner = $m0\n");
	assert_null(config_load_buffer(t.data, t.len, "chain.conf", &err));
	assert_non_null(strstr(buf_cstr(&err), "nested more than"));
	buf_free(&t);
	buf_free(&err);
	/* A shorter chain is fine. */
	for (int i = 0; i < 20; i++)
		buf_appendf(&t, "m%d = $m%d\n", i, i + 1);
	buf_append_str(&t, "m20 = end\nmail_owner = $m0\n");
	struct ehlo_config *cfg = config_load_buffer(t.data, t.len, "chain.conf", &err);
	assert_non_null(cfg);
	assert_string_equal(cfg->mail_owner, "end");
	config_free(&cfg);
	buf_free(&t);
	buf_free(&err);
	/* Both sides of the bound: 62 nested braces are the most that load
	 * under CFG_MAX_DEPTH (64 levels); 63 are refused. */
	for (int depth = 62; depth <= 63; depth++) {
		buf_append_str(&t, "mail_owner = ");
		for (int i = 0; i < depth; i++)
			buf_append_str(&t, "${maillog_file?");
		buf_append_str(&t, "x");
		for (int i = 0; i < depth; i++)
			buf_append_str(&t, "}");
		buf_append_str(&t, "\n");
		cfg = config_load_buffer(t.data, t.len, "edge.conf", &err);
		if (depth == 62)
			assert_non_null(cfg);
		else
			assert_non_null(strstr(buf_cstr(&err), "nested more than"));
		config_free(&cfg);
		buf_free(&t);
		buf_free(&err);
	}
}

static void
test_defaults(void **state)
{
	(void)state;
	struct buf err = BUF_INIT;
	struct ehlo_config *cfg = config_load(NULL, &err);
	assert_non_null(cfg);
	assert_int_equal(cfg->refs, 1);
	assert_string_equal(cfg->config_file, "");

	char host[256];
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	char *want = strchr(host, '.') ? xstrdup(host) : xasprintf("%s.localdomain", host);
	assert_string_equal(cfg->myhostname, want);
	assert_string_equal(cfg->mydomain, strchr(want, '.') + 1);
	char *banner = xasprintf("%s ESMTP ehlo", want);
	assert_string_equal(cfg->smtpd_banner, banner);
	free(banner);
	assert_int_equal(cfg->virtual_mailbox_domains.n, 2);
	assert_string_equal(cfg->virtual_mailbox_domains.v[0], want);
	assert_string_equal(cfg->virtual_mailbox_domains.v[1], "localhost");
	assert_null(cfg->virtual_mailbox_domains.v[2]);
	free(want);

	assert_int_equal(cfg->listen.n, 1);
	assert_string_equal(cfg->listen.v[0], "smtp:127.0.0.1:2525");
	assert_string_equal(cfg->virtual_mailbox_base, "var/mail");
	assert_string_equal(cfg->virtual_mailbox_maps, "");
	assert_true(cfg->message_size_limit == 10240000ULL);
	assert_int_equal(cfg->smtpd_recipient_limit, 1000);
	assert_int_equal(cfg->smtpd_hard_error_limit, 20);
	assert_int_equal(cfg->smtpd_client_connection_count_limit, 50);
	assert_int_equal(cfg->smtpd_max_connections, 10000);
	assert_int_equal(cfg->smtpd_discard_ehlo_keywords.n, 0);
	assert_non_null(cfg->smtpd_discard_ehlo_keywords.v);
	assert_null(cfg->smtpd_discard_ehlo_keywords.v[0]);
	assert_string_equal(cfg->maillog_file, "/dev/stderr");
	assert_int_equal(cfg->smtpd_timeout, 300000);
	assert_int_equal(cfg->smtpd_data_timeout, 180000);
	assert_int_equal(cfg->smtpd_greet_pause, 0);
	assert_int_equal(cfg->smtpd_pregreet_action, PREGREET_LOG);
	assert_int_equal(cfg->smtpd_forbid_bare_newline, BARE_NL_REJECT);
	assert_false(cfg->smtpd_reject_long_lines);
	assert_string_equal(cfg->mail_owner, "");
	assert_int_equal(cfg->smtpd_workers, 0);
	assert_int_equal(cfg->delivery_threads, 4);
	assert_int_equal(cfg->smtpd_tls_security_level, TLS_LEVEL_MAY);
	assert_int_equal(cfg->smtpd_tls_cert_file.n, 0);
	assert_int_equal(cfg->smtpd_tls_key_file.n, 0);
	assert_string_equal(cfg->smtpd_tls_protocols, ">=TLSv1.2");
	assert_string_equal(cfg->smtpd_tls_ciphers, "");
	assert_string_equal(cfg->tls_server_sni_maps, "");
	assert_false(cfg->smtpd_tls_ask_ccert);
	assert_int_equal(cfg->smtpd_tls_handshake_timeout, 60000);
	assert_true(cfg->smtpd_tls_session_tickets);
	assert_true(cfg->smtpd_tls_auto_cert);
	assert_string_equal(cfg->smtpd_tls_auto_cert_dir, "var/tls");
	assert_int_equal(cfg->helo_check_syntax, ACT_REJECT);
	assert_int_equal(cfg->helo_check_fqdn, ACT_TAG);
	assert_int_equal(cfg->helo_check_literal_match, ACT_TAG);
	assert_int_equal(cfg->helo_check_resolves, ACT_TAG);
	assert_int_equal(cfg->helo_check_forward_match, ACT_LOG);
	assert_int_equal(cfg->helo_check_ptr, ACT_TAG);
	assert_int_equal(cfg->helo_check_fcrdns, ACT_TAG);
	assert_int_equal(cfg->helo_check_ptr_match, ACT_LOG);
	assert_int_equal(cfg->helo_check_generic, ACT_TAG);
	assert_int_equal(cfg->helo_check_self_claim, ACT_REJECT);
	assert_int_equal(cfg->helo_check_consistency, ACT_LOG);
	assert_true(cfg->smtpd_delay_reject);
	assert_int_equal(cfg->helo_checks_exempt.n, 0);
	assert_true(cfg->helo_checks_exempt_authenticated);
	assert_false(cfg->helo_checks_shadow);
	assert_false(cfg->helo_ptr_match_exact);
	assert_false(cfg->helo_allow_ip_mismatch_reject);
	assert_string_equal(cfg->helo_generic_patterns_file, "");
	assert_string_equal(cfg->public_suffix_file,
	    "/usr/share/publicsuffix/public_suffix_list.dat");
	assert_int_equal(cfg->dns_forwarders.n, 0);
	assert_int_equal(cfg->dns_timeout, 2000);
	assert_int_equal(cfg->dns_cache_size, 10000);
	assert_int_equal(cfg->smtpd_upstream_proxy_hosts.n, 0);
	assert_int_equal(cfg->smtpd_upstream_proxy_timeout, 5000);
	assert_string_equal(cfg->metrics_listen, "");

	/* Nothing differs from the defaults. */
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	config_print_nondefault(cfg, f);
	fclose(f);
	assert_int_equal(outlen, 0);
	free(out);
	assert_true(config_validate(cfg, &err));
	config_free(&cfg);
	buf_free(&err);
}

static void
test_typed_fields(void **state)
{
	(void)state;
	static const char text[] =
	    "myhostname = mx.example.org\n"
	    "smtpd_timeout = 1500ms\n"
	    "message_size_limit = 0\n"
	    "helo_check_generic = tempfail\n"
	    "smtpd_tls_security_level = none\n"
	    "smtpd_forbid_bare_newline = normalize\n"
	    "smtpd_pregreet_action = reject\n"
	    "helo_checks_shadow = yes\n"
	    "smtpd_workers = 3\n";
	struct buf err = BUF_INIT;
	struct ehlo_config *cfg = config_load_buffer(text, sizeof(text) - 1, "x.conf", &err);
	assert_non_null(cfg);
	assert_string_equal(cfg->config_file, "x.conf");
	assert_int_equal(cfg->smtpd_timeout, 1500);
	assert_true(cfg->message_size_limit == 0);
	assert_int_equal(cfg->helo_check_generic, ACT_TEMPFAIL);
	assert_int_equal(cfg->smtpd_tls_security_level, TLS_LEVEL_NONE);
	assert_int_equal(cfg->smtpd_forbid_bare_newline, BARE_NL_NORMALIZE);
	assert_int_equal(cfg->smtpd_pregreet_action, PREGREET_REJECT);
	assert_true(cfg->helo_checks_shadow);
	assert_int_equal(cfg->smtpd_workers, 3);
	assert_string_equal(cfg->mydomain, "example.org");

	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	config_print_nondefault(cfg, f);
	fclose(f);
	/* Sorted by name; derived settings (mydomain, smtpd_banner) are not listed. */
	assert_string_equal(out,
	    "helo_check_generic = tempfail\n"
	    "helo_checks_shadow = yes\n"
	    "message_size_limit = 0\n"
	    "myhostname = mx.example.org\n"
	    "smtpd_forbid_bare_newline = normalize\n"
	    "smtpd_pregreet_action = reject\n"
	    "smtpd_timeout = 1500ms\n"
	    "smtpd_tls_security_level = none\n"
	    "smtpd_workers = 3\n");
	free(out);

	/* Hand changes are caught by config_validate (the reload path). */
	cfg->helo_check_forward_match = ACT_REJECT;
	assert_false(config_validate(cfg, &err));
	assert_non_null(strstr(buf_cstr(&err), "x.conf: helo_check_forward_match = reject"));
	buf_reset(&err);
	cfg->helo_allow_ip_mismatch_reject = true;
	assert_true(config_validate(cfg, &err));
	config_free(&cfg);
	config_free(&cfg);      /* NULL-safe */
	buf_free(&err);
}

static void
test_reload_compatible(void **state)
{
	(void)state;
	struct buf err = BUF_INIT;
	static const char a[] = "listen = smtp:127.0.0.1:25\nsmtpd_timeout = 10s\n";
	static const char b[] = "listen = smtp:127.0.0.1:25\nsmtpd_timeout = 20s\n";
	static const char c[] = "listen = smtp:127.0.0.1:26\nmail_owner = nobody\nsmtpd_timeout = 20s\n";
	struct ehlo_config *ca = config_load_buffer(a, sizeof(a) - 1, "a", &err);
	struct ehlo_config *cb = config_load_buffer(b, sizeof(b) - 1, "b", &err);
	struct ehlo_config *cc = config_load_buffer(c, sizeof(c) - 1, "c", &err);
	assert_non_null(ca);
	assert_non_null(cb);
	assert_non_null(cc);
	assert_true(config_reload_compatible(ca, cb, &err));
	assert_int_equal(err.len, 0);
	assert_false(config_reload_compatible(ca, cc, &err));
	assert_string_equal(buf_cstr(&err), "changes need a restart, not a reload: listen mail_owner");

	/* What the warning names keeps its running value; the rest changes. */
	static const char d[] = "listen = smtp:127.0.0.1:26, smtp:[::1]:26\nmail_owner = nobody\n"
	    "virtual_mailbox_base = /elsewhere\nmaillog_file = /tmp/x.log\n"
	    "delivery_threads = 9\nsmtpd_timeout = 30s\n";
	struct ehlo_config *cd = config_load_buffer(d, sizeof(d) - 1, "d", &err);
	assert_non_null(cd);
	config_keep_restart_only(cd, ca);
	assert_int_equal(cd->listen.n, 1);
	assert_string_equal(cd->listen.v[0], "smtp:127.0.0.1:25");
	assert_null(cd->listen.v[1]);
	assert_string_equal(cd->mail_owner, "");
	assert_string_equal(cd->virtual_mailbox_base, ca->virtual_mailbox_base);
	assert_string_equal(cd->maillog_file, "/dev/stderr");
	assert_int_equal(cd->delivery_threads, 4);
	assert_int_equal(cd->smtpd_timeout, 30000);   /* reloadable */
	buf_reset(&err);
	assert_true(config_reload_compatible(ca, cd, &err));
	config_free(&cd);

	config_free(&ca);
	config_free(&cb);
	config_free(&cc);
	buf_free(&err);
}

static char *
write_temp(const char *dir, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	/*
	 * Postfix's dict_load_file() rereads a file whose mtime is not in the
	 * past (it may still be changing), for up to a few seconds; backdate it.
	 */
	struct timeval tv[2];
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= 60;
	tv[1] = tv[0];
	assert_int_equal(utimes(path, tv), 0);
	return path;
}

static void
test_load_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/ehlo-config-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct buf err = BUF_INIT;
	char *p = write_temp(dir, "ehlod.conf", "# test\nsmtpd_timeout = 42s\n");
	struct ehlo_config *cfg = config_load(p, &err);
	assert_non_null(cfg);
	assert_string_equal(cfg->config_file, p);
	assert_int_equal(cfg->smtpd_timeout, 42000);
	config_free(&cfg);

	char *bad = write_temp(dir, "bad.conf", "# test\n\nsmtpd_timeout = forever\n");
	assert_null(config_load(bad, &err));
	char *want = xasprintf("%s:3: smtpd_timeout: bad time value \"forever\"", bad);
	assert_true(strncmp(buf_cstr(&err), want, strlen(want)) == 0);
	free(want);
	buf_reset(&err);

	char *missing = xasprintf("%s/missing.conf", dir);
	assert_null(config_load(missing, &err));
	assert_non_null(strstr(buf_cstr(&err), "missing.conf: cannot open"));
	buf_reset(&err);
	assert_null(config_load(dir, &err));
	assert_non_null(strstr(buf_cstr(&err), "not a regular file"));
	buf_reset(&err);

	/* Larger than the 1 MiB limit. */
	char *big = xasprintf("%s/big.conf", dir);
	FILE *f = fopen(big, "w");
	assert_non_null(f);
	for (int i = 0; i < 40000; i++)
		fputs("# a comment line that is long enough to add up quickly\n", f);
	fclose(f);
	assert_null(config_load(big, &err));
	assert_non_null(strstr(buf_cstr(&err), "larger than"));

	unlink(p);
	unlink(bad);
	unlink(big);
	rmdir(dir);
	free(p);
	free(bad);
	free(big);
	free(missing);
	buf_free(&err);
}

static void
test_print_all(void **state)
{
	(void)state;
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	config_print_all(f, true);
	fclose(f);
	assert_non_null(strstr(out, ".TP\n.B smtpd_timeout\n"));
	assert_non_null(strstr(out, ".TP\n.B helo_check_forward_match\n"));
	assert_non_null(strstr(out, "Default: \\fB300s\\fR\n"));
	assert_non_null(strstr(out, "Default: \\fB$myhostname ESMTP ehlo\\fR\n"));
	assert_null(strstr(out, "\n."  "\n"));
	/* No text line may start with '.' or '\'' except our own requests. */
	for (char *l = out; l != NULL && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (*l == '.' )
			assert_true(strncmp(l, ".TP\n", 4) == 0 || strncmp(l, ".B ", 3) == 0 ||
			    strncmp(l, ".br\n", 4) == 0);
	free(out);

	/*
	 * The text form is a commented ehlod.conf. Uncommenting every default
	 * must load and reproduce the defaults exactly: the documented
	 * defaults are the real ones and they parse.
	 */
	out = NULL;
	f = open_memstream(&out, &outlen);
	config_print_all(f, false);
	fclose(f);
	struct buf t = BUF_INIT, err = BUF_INIT;
	size_t nset = 0;
	for (char *l = out; *l; ) {
		char *nl = strchr(l, '\n');
		size_t n = nl ? (size_t)(nl - l) : strlen(l);
		if (n > 1 && l[0] == '#' && l[1] != ' ' && memmem(l, n, " = (computed)", 13) == NULL) {
			buf_append(&t, l + 1, n - 1);
			buf_append_char(&t, '\n');
			nset++;
		}
		l += n + (nl != NULL);
	}
	assert_true(nset > 50);
	struct ehlo_config *cfg = config_load_buffer(t.data, t.len, "all.conf", &err);
	if (cfg == NULL)
		fail_msg("%s", buf_cstr(&err));
	char *nd = NULL;
	size_t ndlen = 0;
	f = open_memstream(&nd, &ndlen);
	config_print_nondefault(cfg, f);
	fclose(f);
	assert_int_equal(ndlen, 0);
	free(nd);
	config_free(&cfg);
	buf_free(&t);
	buf_free(&err);
	free(out);
}

static void
test_structured(void **state)
{
	(void)state;
	struct buf err = BUF_INIT;
	struct cfg_listen l;
	assert_true(config_parse_listen("submissions:[2001:db8::1]:465", &l, &err));
	assert_int_equal(l.kind, LISTEN_SUBMISSIONS);
	assert_int_equal(l.family, AF_INET6);
	assert_string_equal(l.addr, "2001:db8::1");
	assert_int_equal(l.port, 465);
	assert_true(config_parse_listen("SMTP:192.0.2.1:25", &l, &err));
	assert_int_equal(l.kind, LISTEN_SMTP);
	assert_int_equal(l.family, AF_INET);
	assert_string_equal(l.addr, "192.0.2.1");
	assert_true(config_parse_listen("submission:*:587", &l, &err));
	assert_int_equal(l.kind, LISTEN_SUBMISSION);
	assert_int_equal(l.family, AF_UNSPEC);
	assert_string_equal(l.addr, "");
	assert_int_equal(l.port, 587);
	assert_int_equal(err.len, 0);

	/* smtpd_tls_protocols is checked with the TLS layer's own parser
	 * (tests/unit/tls has its table); a bad value is a load error. */
	buf_reset(&err);
	static const char bad[] = "smtpd_tls_protocols = TLSv1.1 TLSv1.3\n";
	struct ehlo_config *c = config_load_buffer(bad, sizeof bad - 1, "p", &err);
	assert_null(c);
	assert_non_null(strstr(buf_cstr(&err), "p:1:"));
	buf_free(&err);
}

/*
 * helo_checks_exempt and smtpd_upstream_proxy_hosts are validated at load
 * with net/cidr.h's parser, which does the matching at run time: the
 * configuration must refuse exactly the entries the matcher cannot use.
 */
static void
test_cidr_agrees_with_net(void **state)
{
	(void)state;
	static const char *const entries[] = {
		"127.0.0.1", "127.0.0.0/8", "0.0.0.0/0", "192.0.2.1/24", "192.0.2.0/24",
		"192.0.2.0/32", "192.0.2.0/33", "192.0.2.0/", "192.0.2.0/024", "192.0.2.0/0024",
		"192.0.2", "192.0.2.256", "01.2.3.4", "::1", "::1/128", "::/0", "2001:db8::/32",
		"2001:db8::1/32", "[2001:db8::]/32", "[::1]", "[127.0.0.1]", "[::1", "::1]",
		"::ffff:192.0.2.1", "::ffff:192.0.2.0/120", "2001:db8::/129", "fe80::1%lo",
		"proxy.test", "1.2.3.4/x", "[]", "/8", "1.2.3.4/-1", "1.2.3.4/+8",
	};
	struct buf t = BUF_INIT, err = BUF_INIT;
	for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
		struct cidr c;
		bool net_ok = cidr_parse(entries[i], strlen(entries[i]), &c, NULL);
		buf_reset(&t);
		buf_reset(&err);
		buf_appendf(&t, "smtpd_upstream_proxy_hosts = %s\n", entries[i]);
		struct ehlo_config *cfg = config_load_buffer(t.data, t.len, "c", &err);
		if ((cfg != NULL) != net_ok)
			fail_msg("\"%s\": net says %d, config says %d (%s)", entries[i], net_ok,
			    cfg != NULL, buf_cstr(&err));
		config_free(&cfg);
	}
	buf_free(&t);
	buf_free(&err);
}

/* ---- differential test against Postfix's postconf ---- */

static const char *const diff_files[] = {
	"myhostname = mx.example.org\n"
	"mydomain = example.net\n"
	"smtpd_banner = $myhostname ESMTP\n"
	"   hello from ${mydomain}\n"
	"  # a comment inside the continuation\n"
	"\n"
	"\tand $(myhostname)\n",

	"myhostname = mx.example.org\n"
	"mydomain = example.net\n"
	"virtual_mailbox_domains = $mydomain,\n"
	"    example.com,\n"
	"# column-0 comment inside\n"
	"    ${mydomain?x.test}, ${mail_owner:owner.test}\n"
	"mail_owner =\n"
	"virtual_mailbox_base = /var/vmail\n"
	"message_size_limit = 52428800\n"
	"smtpd_recipient_limit = 200\n"
	"smtpd_timeout = 60s\n"
	"smtpd_data_timeout = 120s\n"
	"smtpd_tls_security_level = encrypt\n"
	"smtpd_tls_cert_file = /etc/ssl/a.pem\n"
	"smtpd_tls_key_file = /etc/ssl/a.key\n",

	"myhostname=mx.example.org\n"
	"mydomain = example.net\n"
	"smtpd_banner = $myhostname says $$hi${mail_owner?${mydomain}}\n"
	"mail_owner = postfix\n"
	"maillog_file = /var/log/ehlo.log\n"
	"smtpd_delay_reject = no\n"
	"smtpd_tls_ask_ccert = yes\n"
	"smtpd_hard_error_limit = 5\n"
	"smtpd_tls_protocols = >=TLSv1.3\n"
	"smtpd_discard_ehlo_keywords = chunking, dsn\n"
	"mail_owner = ehlo\n",
};

/* Join folded output lines and squeeze whitespace runs, as postconf prints. */
static char *
normalise(const char *s)
{
	struct buf b = BUF_INIT;
	bool sp = false;
	for (; *s; s++) {
		if (*s == '\n' && (s[1] == ' ' || s[1] == '\t')) {
			sp = true;
			continue;
		}
		if (*s == ' ' || *s == '\t') {
			sp = true;
			continue;
		}
		if (sp && b.len > 0 && b.data[b.len - 1] != '\n')
			buf_append_char(&b, ' ');
		sp = false;
		buf_append_char(&b, *s);
	}
	return buf_steal(&b);
}

static char *
run_postconf(const char *dir)
{
	char *cmd = xasprintf("postconf -c '%s' -n -x 2>/dev/null", dir);
	FILE *p = popen(cmd, "r");
	free(cmd);
	assert_non_null(p);
	struct buf b = BUF_INIT;
	char line[4096];
	while (fgets(line, sizeof(line), p) != NULL)
		if (strncmp(line, "config_directory = ", 19) != 0)
			buf_append_str(&b, line);
	assert_int_equal(pclose(p), 0);
	return buf_steal(&b);
}

static void
test_postconf_differential(void **state)
{
	(void)state;
	const char *pc = access("/usr/sbin/postconf", X_OK) == 0 ? "/usr/sbin/postconf" :
	    access("/usr/bin/postconf", X_OK) == 0 ? "/usr/bin/postconf" : NULL;
	if (pc == NULL) {
		skip();
		return;
	}
	if (getenv("PATH") == NULL || strstr(getenv("PATH"), "sbin") == NULL) {
		char *path = xasprintf("%s:/usr/sbin", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
		setenv("PATH", path, 1);
		free(path);
	}
	for (size_t i = 0; i < sizeof(diff_files) / sizeof(diff_files[0]); i++) {
		char dir[] = "/tmp/ehlo-postconf-XXXXXX";
		assert_non_null(mkdtemp(dir));
		char *maincf = write_temp(dir, "main.cf", diff_files[i]);
		char *mastercf = write_temp(dir, "master.cf", "");
		char *theirs = run_postconf(dir);

		struct buf err = BUF_INIT;
		struct ehlo_config *cfg = config_load_buffer(diff_files[i], strlen(diff_files[i]),
		    "main.cf", &err);
		if (cfg == NULL)
			fail_msg("file %zu: %s", i, buf_cstr(&err));
		/*
		 * Every setting postconf prints (the ones set in the file, with
		 * values expanded) must have the same value here. postconf knows
		 * nothing of ehlo-only settings and prints only Postfix's, which
		 * is why the comparison runs in this direction.
		 */
		char *a = normalise(theirs);
		size_t compared = 0;
		for (char *l = a; *l; ) {
			char *nl = strchr(l, '\n');
			if (nl != NULL)
				*nl = '\0';
			char *eq = strstr(l, " = ");
			if (eq == NULL && strlen(l) > 2 && strcmp(l + strlen(l) - 2, " =") == 0)
				eq = l + strlen(l) - 2;
			assert_non_null(eq);
			*eq = '\0';
			const char *val = eq[1] == '=' && eq[2] == ' ' ? eq + 3 : "";
			struct buf got = BUF_INIT;
			if (config_get(cfg, l, &got)) {
				if (strcmp(buf_cstr(&got), val) != 0)
					fail_msg("file %zu: %s: postconf \"%s\", ours \"%s\"", i, l,
					    val, buf_cstr(&got));
				compared++;
			}
			buf_free(&got);
			l = nl ? nl + 1 : l + strlen(l);
		}
		assert_true(compared >= 3);
		free(a);
		free(theirs);
		config_free(&cfg);
		buf_free(&err);
		unlink(maincf);
		unlink(mastercf);
		rmdir(dir);
		free(maincf);
		free(mastercf);
	}
}

/* Loads text; if fits, smtpd_tls_ciphers (a string no check bounds)
 * must be exactly len octets long, otherwise the load must fail with
 * err_line (file:line and message). */
static void
expect_long(const char *text, size_t n, bool fits, size_t len, const char *err_line)
{
	struct buf err = BUF_INIT;
	struct ehlo_config *cfg = config_load_buffer(text, n, "t.conf", &err);
	if (fits) {
		assert_non_null(cfg);
		assert_int_equal(strlen(cfg->smtpd_tls_ciphers), len);
	} else {
		assert_null(cfg);
		assert_non_null(strstr(buf_cstr(&err), err_line));
	}
	config_free(&cfg);
	buf_free(&err);
}

/* CFG_MAX_VALUE (256 KiB) bounds one value, literal or expanded: exactly
 * the limit loads, one octet more is refused with file:line. */
static void
test_value_length_limit(void **state)
{
	(void)state;
	const size_t lim = 256 * 1024;
	static const char pre[] = "smtpd_tls_ciphers = ";
	static const char host[] = "myhostname = mx.example.org\nsmtpd_tls_ciphers = ";
	char *text = xmalloc(lim + 128);
	for (size_t extra = 0; extra <= 1; extra++) {
		size_t n = sizeof pre - 1;
		memcpy(text, pre, n);
		memset(text + n, 'a', lim + extra);
		n += lim + extra;
		text[n++] = '\n';
		expect_long(text, n, extra == 0, lim,
		    "t.conf:1: smtpd_tls_ciphers: value longer than 262144 bytes");
		/* The same bound across an expansion: text, then $myhostname. */
		n = sizeof host - 1;
		size_t lit = lim - strlen("mx.example.org") + extra;
		memcpy(text, host, n);
		memset(text + n, 'a', lit);
		n += lit;
		memcpy(text + n, "$myhostname\n", 12);
		n += 12;
		expect_long(text, n, extra == 0, lim,
		    "t.conf:2: smtpd_tls_ciphers: value longer than 262144 bytes");
	}
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parser_table),
		cmocka_unit_test(test_value_length_limit),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_expansion_bomb),
		cmocka_unit_test(test_nesting_limits),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_typed_fields),
		cmocka_unit_test(test_reload_compatible),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_print_all),
		cmocka_unit_test(test_structured),
		cmocka_unit_test(test_cidr_agrees_with_net),
		cmocka_unit_test(test_postconf_differential),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
