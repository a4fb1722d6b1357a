/*
 * DNS answer parsing (contract in wire.h). One reader, wire_read_name(),
 * measures and copies in the same pass, so the bounds used to check a name
 * are the bounds used to write it.
 */
#include "dns/wire.h"

#include <netinet/in.h>
#include <string.h>

#include "lib/util.h"

#define WIRE_C_IN 1
#define WIRE_NAME_WIRE_MAX 255      /* RFC 1035 §2.3.4, on the wire */

static uint16_t
be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | p[3];
}

static bool
ldh(uint8_t c)
{
	return ascii_isalnum(c) || c == '-';
}

int
wire_read_name(const uint8_t *pkt, size_t len, size_t *off, char *out,
    size_t outsz, bool *host)
{
	size_t pos = *off, after = 0, wirelen = 0, olen = 0;
	size_t limit = SIZE_MAX;    /* each pointer must go below the last */
	bool jumped = false, valid = true;

	for (;;) {
		if (pos >= len)
			return -1;
		uint8_t c = pkt[pos];
		if ((c & 0xc0) == 0xc0) {
			if (pos + 1 >= len)
				return -1;
			size_t ptr = ((size_t)(c & 0x3f) << 8) | pkt[pos + 1];
			if (!jumped) {
				after = pos + 2;
				jumped = true;
				limit = pos;
			}
			/* Strictly backwards, each jump lower than the last:
			 * the chain ends, whatever the packet says. */
			if (ptr >= limit)
				return -1;
			limit = ptr;
			pos = ptr;
			continue;
		}
		if (c & 0xc0)
			return -1;      /* obsolete extended label types */
		if (c == 0) {
			if (!jumped)
				after = pos + 1;
			break;
		}
		if (c > len - pos - 1)
			return -1;
		wirelen += 1 + (size_t)c;
		if (wirelen + 1 > WIRE_NAME_WIRE_MAX)
			return -1;
		const uint8_t *lab = pkt + pos + 1;
		if (!ldh(lab[0]) || !ldh(lab[c - 1]) || lab[0] == '-' ||
		    lab[c - 1] == '-')
			valid = false;
		for (size_t i = 0; valid && i < c; i++)
			if (!ldh(lab[i]))
				valid = false;
		if (c > 63)
			valid = false;
		if (out != NULL && valid) {
			/* label + a dot or the NUL; 253 is the presentation cap */
			size_t need = olen + (olen ? 1 : 0) + c;
			if (need > DNS_NAME_MAX || need + 1 > outsz)
				valid = false;
			else {
				if (olen)
					out[olen++] = '.';
				for (size_t i = 0; i < c; i++)
					out[olen++] = ascii_lower((char)lab[i]);
			}
		}
		pos += 1 + (size_t)c;
	}
	if (out != NULL) {
		if (!valid)
			olen = 0;
		out[olen] = '\0';
		*host = valid && olen > 0;
	}
	*off = after;
	return 0;
}

bool
wire_query_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > DNS_NAME_MAX)
		return false;
	size_t lab = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (lab == 0)
				return false;
			lab = 0;
			continue;
		}
		if (!(ascii_isalnum(c) || c == '-' || c == '_'))
			return false;
		if (++lab > 63)
			return false;
	}
	return lab > 0;
}

static uint32_t
rr_ttl(const uint8_t *p)
{
	uint32_t t = be32(p);
	/* RFC 2181 §8: a TTL with the top bit set is treated as zero. */
	return (t & 0x80000000u) ? 0 : t;
}

static int
keep_record(struct wire_answer *a, uint16_t type, const uint8_t *pkt,
    size_t len, size_t rd, size_t rdlen)
{
	struct dns_record *r;
	size_t off = rd;
	bool host;

	if (a->n == DNS_MAX_RECORDS) {
		a->truncated = true;
		r = NULL;
	} else
		r = &a->rr[a->n];
	switch (type) {
	case WIRE_T_A:
		if (rdlen != 4)
			return -1;
		if (r != NULL) {
			memset(r, 0, sizeof *r);
			struct sockaddr_in *in = (struct sockaddr_in *)&r->addr;
			in->sin_family = AF_INET;
			memcpy(&in->sin_addr, pkt + rd, 4);
			a->n++;
		}
		return 0;
	case WIRE_T_AAAA:
		if (rdlen != 16)
			return -1;
		if (r != NULL) {
			memset(r, 0, sizeof *r);
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&r->addr;
			in6->sin6_family = AF_INET6;
			memcpy(&in6->sin6_addr, pkt + rd, 16);
			a->n++;
		}
		return 0;
	case WIRE_T_MX:
		if (rdlen < 3)
			return -1;
		off += 2;
		/* FALLTHROUGH */
	case WIRE_T_PTR: {
		char tmp[DNS_NAME_MAX + 1];
		if (off >= rd + rdlen)
			return -1;
		bool root = pkt[off] == 0;
		if (wire_read_name(pkt, len, &off, tmp, sizeof tmp, &host) != 0)
			return -1;
		if (off != rd + rdlen)
			return -1;      /* RDATA length disagrees with the name */
		if (type == WIRE_T_MX && root)
			host = true;    /* null MX, RFC 7505 */
		if (!host) {
			a->ninvalid++;
			return 0;
		}
		if (r != NULL) {
			memset(r, 0, sizeof *r);
			memcpy(a->names[a->n], tmp, strlen(tmp) + 1);
			r->name = a->names[a->n];
			if (type == WIRE_T_MX)
				r->pref = be16(pkt + rd);
			a->n++;
		}
		return 0;
	}
	default:
		return -1;
	}
}

int
wire_parse_answer(const uint8_t *pkt, size_t len, uint16_t qtype,
    struct wire_answer *a)
{
	memset(a, 0, sizeof *a);
	if (len < 12)
		return -1;
	a->rcode = pkt[3] & 0x0f;
	unsigned qd = be16(pkt + 4), an = be16(pkt + 6), ns = be16(pkt + 8);
	size_t off = 12;

	for (unsigned i = 0; i < qd; i++) {
		if (wire_read_name(pkt, len, &off, NULL, 0, NULL) != 0)
			return -1;
		if (len - off < 4)
			return -1;
		off += 4;
	}
	for (unsigned sect = 0; sect < 2; sect++) {
		unsigned count = sect == 0 ? an : ns;
		for (unsigned i = 0; i < count; i++) {
			if (wire_read_name(pkt, len, &off, NULL, 0, NULL) != 0)
				return -1;
			if (len - off < 10)
				return -1;
			uint16_t type = be16(pkt + off);
			uint16_t class = be16(pkt + off + 2);
			uint32_t ttl = rr_ttl(pkt + off + 4);
			size_t rdlen = be16(pkt + off + 8);
			size_t rd = off + 10;
			if (rdlen > len - rd)
				return -1;
			off = rd + rdlen;
			if (class != WIRE_C_IN)
				continue;
			if (sect == 0 && (type == qtype || type == WIRE_T_CNAME)) {
				if (!a->have_ttl || ttl < a->min_ttl)
					a->min_ttl = ttl;
				a->have_ttl = true;
			}
			if (sect == 0 && type == qtype) {
				if (keep_record(a, type, pkt, len, rd, rdlen) != 0)
					return -1;
			} else if (sect == 1 && type == WIRE_T_SOA) {
				size_t p = rd;
				if (wire_read_name(pkt, len, &p, NULL, 0, NULL) != 0 ||
				    wire_read_name(pkt, len, &p, NULL, 0, NULL) != 0)
					return -1;
				if (p > rd + rdlen || rd + rdlen - p != 20)
					return -1;
				uint32_t min = be32(pkt + p + 16);
				a->soa_neg_ttl = ttl < min ? ttl : min;
				a->have_soa = true;
			}
		}
	}
	return 0;
}
