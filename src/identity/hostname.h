/*
 * Host names and addresses as the identity checks see them (pure).
 *
 * Everything here is validate-before-normalise (STYLE.md lesson 8,
 * OpenSMTPD CVE-2020-7247): a name from EHLO or from a DNS answer is
 * checked in full against the host-name grammar before a lowercase copy is
 * made, and only such copies reach comparisons, logs and headers (nginx
 * CVE-2026-28753: a PTR name is hostile input).
 *
 * struct id_addr is a plain IPv4 or IPv6 address. IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d, what a dual-stack socket reports for an IPv4
 * peer) are folded to IPv4 wherever an id_addr is made, so that a client
 * seen on a v6 socket still matches its A records and its address literal.
 */
#ifndef EHLO_IDENTITY_HOSTNAME_H
#define EHLO_IDENTITY_HOSTNAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest host name in text form: 255 octets on the wire (RFC 1035
 * §2.3.4) are 253 characters without the trailing dot. */
#define ID_NAME_MAX     253
#define ID_LABEL_MAX    63
/* Longest text form of an address (INET6_ADDRSTRLEN), with its NUL. */
#define ID_ADDR_STRLEN  46
/* Longest reverse-lookup name: 32 nibbles, 32 dots, "ip6.arpa", NUL. */
#define ID_REVNAME_MAX  73

struct id_addr {
	int     family;   /* AF_INET or AF_INET6; 0 = no address */
	uint8_t a[16];    /* network order; AF_INET uses a[0..3] */
};

enum {
	/* One trailing dot is accepted and dropped (DNS presentation form). */
	IDN_ALLOW_TRAILING_DOT = 1u << 0,
	/* The last label must not be all digits (RFC 1123 §2.1: a top-level
	 * label is alphabetic), so "192.0.2.1" is not a host name. */
	IDN_REQUIRE_ALPHA_TLD  = 1u << 1,
};

/*
 * Checks s[0..n) against the host-name grammar (RFC 1035 §2.3.1 as relaxed
 * by RFC 1123 §2.1; RFC 5321 §4.1.2 sub-domain = Let-dig [Ldh-str]):
 * labels of 1..63 letters, digits and inner hyphens, 253 characters in all,
 * no underscore, control character, space or non-ASCII octet, no empty
 * label. A trailing dot is an error unless IDN_ALLOW_TRAILING_DOT.
 * Returns NULL when valid, and then, if out is not NULL, writes the
 * lowercase form without a trailing dot to out (ID_NAME_MAX + 1 bytes).
 * Returns a static reason ("empty label", ...) when invalid; out is then
 * left untouched.
 */
const char *id_hostname_check(const char *s, size_t n, unsigned flags,
                              char *out);

/* Number of labels of a valid, normalised name. */
size_t id_label_count(const char *name);

/* True if every label of s[0..n) is all digits and there are four: a bare
 * dotted-quad IPv4 address, as clients send "EHLO 192.0.2.1". */
bool id_is_bare_ipv4(const char *s, size_t n);

enum id_literal {
	IDL_NOT_LITERAL,     /* does not start with '[' */
	IDL_VALID,           /* [a.b.c.d] or [IPv6:...]; *out is set */
	IDL_BAD,             /* bracketed but malformed */
	IDL_UNKNOWN_TAG,     /* [tag:content], a General-address-literal with
	                        a tag other than IPv6 (RFC 5321 §4.1.3) */
};

/*
 * Parses an RFC 5321 §4.1.3 address literal in s[0..n).
 * IPv4: four Snum of 1..3 digits each at most 255 (leading zeros are
 * allowed by the grammar). IPv6: "IPv6:" (any case) then an IPv6-addr of
 * §4.1.3 (smtp_ipv6_addr_valid(): stricter than inet_pton(3) about "::").
 * An IPv4-mapped IPv6 literal is folded to IPv4.
 */
enum id_literal id_literal_parse(const char *s, size_t n, struct id_addr *out);

/* Parses a bare address ("192.0.2.1", "2001:db8::1"); strict IPv4 without
 * leading zeros. False on anything else. */
bool id_addr_parse(const char *s, size_t n, struct id_addr *out);

/* Converts a socket address; false for families other than v4/v6. */
bool id_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                           struct id_addr *out);
/* Builds from raw bytes: 4 bytes -> AF_INET, 16 -> AF_INET6 (folded). */
bool id_addr_from_bytes(const void *p, size_t len, struct id_addr *out);

bool id_addr_eq(const struct id_addr *a, const struct id_addr *b);
/* 127.0.0.0/8 or ::1. */
bool id_addr_is_loopback(const struct id_addr *a);
/* Text form into out (ID_ADDR_STRLEN bytes); "" for no address. */
void id_addr_format(const struct id_addr *a, char *out);

/*
 * Writes the PTR query name for a ("4.3.2.1.in-addr.arpa",
 * "1.0....8.b.d.0.1.0.0.2.ip6.arpa"; RFC 1035 §3.5, RFC 3596 §2.5) into
 * out (ID_REVNAME_MAX bytes). Returns its length, or 0 if a has no family.
 */
size_t id_reverse_name(const struct id_addr *a, char *out);

#endif
