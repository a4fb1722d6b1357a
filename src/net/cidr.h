/*
 * CIDR lists: "is this client address in the operator's list?" — for
 * smtpd_upstream_proxy_hosts (trusted PROXY senders) and the identity
 * exemption list. PURE: no DNS, no I/O; names are not handled here (a
 * caller that also accepts names tries cidr_parse() first and treats a
 * false return as "not an address").
 *
 * Accepted entry forms: 192.0.2.1, 192.0.2.0/24, 2001:db8::1,
 * 2001:db8::/32, and the bracketed forms [2001:db8::1] and
 * [2001:db8::]/32 used in Postfix tables. As in Postfix, an entry whose
 * host bits are not zero (192.0.2.1/24) is an error rather than silently
 * widened: it is almost always a typo for a narrower or wider network.
 *
 * Matching treats an IPv4-mapped IPv6 client address (::ffff:192.0.2.1, as
 * seen on a dual-stack socket) as the IPv4 address it carries, so IPv4
 * entries match it.
 */
#ifndef EHLO_NET_CIDR_H
#define EHLO_NET_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/buf.h"

struct cidr {
	int      family;        /* AF_INET or AF_INET6 */
	uint8_t  addr[16];      /* network bytes; IPv4 uses the first 4 */
	unsigned prefix;        /* 0..32 or 0..128 */
};

struct cidr_list {
	struct cidr *v;
	size_t       n, cap;
};

#define CIDR_LIST_INIT { NULL, 0, 0 }

/*
 * Parse one entry s[0..n). Returns false (and appends a reason to err when
 * err is not NULL) if it is not a valid address or network.
 */
bool cidr_parse(const char *s, size_t n, struct cidr *out, struct buf *err);

/*
 * Append every entry of a list separated by commas and/or whitespace.
 * Returns false at the first bad entry, with "bad entry 'x': reason" in err;
 * entries before it stay added. An empty text adds nothing and succeeds.
 */
bool cidr_list_add(struct cidr_list *l, const char *text, struct buf *err);

/* Does the address sa (AF_INET or AF_INET6) fall in any entry? */
bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);

/* Does one entry contain sa? */
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

/*
 * The network of the given prefix length that holds the client address sa:
 * v4_prefix for IPv4 (an IPv4-mapped IPv6 address counts as IPv4),
 * v6_prefix for IPv6; a length over the family's size means the whole
 * address. For counting the clients of one network as one client (Postfix's
 * smtpd_client_ipv4_prefix_length / smtpd_client_ipv6_prefix_length).
 * Returns false (out zeroed) for other families.
 */
bool cidr_of_client(const struct sockaddr *sa, unsigned v4_prefix, unsigned v6_prefix,
    struct cidr *out);

/* Release the entries; the list is empty and reusable afterwards. */
void cidr_list_clear(struct cidr_list *l);

#endif
