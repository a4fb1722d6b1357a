/*
 * DNS wire-format answer parsing (RFC 1035 §4), PURE: no I/O, no state.
 * The packet is peer input (a resolver relays what any authority said):
 * every read is bounds-checked, a name may not exceed 255 octets on the
 * wire, and compression pointers must point strictly backwards from the
 * label that holds them, which bounds the work and rules out loops
 * (the nginx resolver CVE-2021-23017 class: measure and copy with one set of
 * bounds).
 */
#ifndef EHLO_DNS_WIRE_H
#define EHLO_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

#define WIRE_T_A     1
#define WIRE_T_CNAME 5
#define WIRE_T_SOA   6
#define WIRE_T_PTR   12
#define WIRE_T_MX    15
#define WIRE_T_AAAA  28

struct wire_answer {
	int       rcode;            /* header RCODE */
	size_t    n;                /* records of qtype kept in rr */
	struct dns_record rr[DNS_MAX_RECORDS];
	char      names[DNS_MAX_RECORDS][DNS_NAME_MAX + 1];
	size_t    ninvalid;         /* PTR/MX names that failed validation */
	bool      truncated;        /* more than DNS_MAX_RECORDS */
	bool      have_ttl;
	uint32_t  min_ttl;          /* over answer RRs (qtype and CNAME) */
	bool      have_soa;
	uint32_t  soa_neg_ttl;      /* min(SOA TTL, SOA MINIMUM), RFC 2308 §5 */
};

/*
 * Parse an answer to a query of type qtype (A, AAAA, PTR or MX). Records of
 * qtype in the answer section are kept whatever their owner (libunbound has
 * already followed CNAME chains). Returns 0, or -1 if the packet is
 * malformed (out is then unspecified). rr[i].name points into out->names.
 */
int wire_parse_answer(const uint8_t *pkt, size_t len, uint16_t qtype,
    struct wire_answer *out);

/*
 * Read the (possibly compressed) name at *off in pkt[0..len) and advance
 * *off past it. If out is not NULL (size outsz >= DNS_NAME_MAX + 1), write
 * the lower-cased presentation form without the trailing dot ("" for the
 * root) and set *host to whether it is a valid host name (dns.h). Returns
 * 0, or -1 when malformed.
 */
int wire_read_name(const uint8_t *pkt, size_t len, size_t *off, char *out,
    size_t outsz, bool *host);

/*
 * Is s[0..n) (no trailing dot) usable as a query name: 1..253 characters,
 * labels of 1-63 letters, digits, hyphens or underscores?
 */
bool wire_query_name_ok(const char *s, size_t n);

#endif
