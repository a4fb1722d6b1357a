/*
 * PROXY protocol v1/v2 parser: a byte-driven state machine (see proxy.h for
 * the contract and the detection rule). Every length the peer supplies is
 * checked against what is left of the header before it is used: the v2
 * length field against the address block it must contain, each TLV's length
 * against the bytes the fixed header still announces.
 */
#include "net/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "lib/util.h"

static const uint8_t v1_prefix[] = { 'P', 'R', 'O', 'X', 'Y', ' ' };
static const uint8_t v2_sig[] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_FAM_UNSPEC 0x0
#define V2_FAM_INET 0x1
#define V2_FAM_INET6 0x2
#define V2_FAM_UNIX 0x3
#define V2_TR_UNSPEC 0x0
#define V2_TR_STREAM 0x1
#define V2_TR_DGRAM 0x2

void
proxy_init(struct proxy_parser *p)
{
	memset(p, 0, sizeof *p);
	p->state = PS_PREFIX;
}

const uint8_t *
proxy_replay(const struct proxy_parser *p, size_t *n)
{
	*n = p->state == PS_NOT_PROXY ? p->replay : 0;
	return p->buf;
}

const char *
proxy_error(const struct proxy_parser *p)
{
	return p->state == PS_ERROR ? p->error : NULL;
}

static enum proxy_status
fail(struct proxy_parser *p, const char *why)
{
	p->state = PS_ERROR;
	p->error = why;
	return PROXY_ERROR;
}

/*
 * A decimal in [0, max] without leading zeros (spec §2.1 forbids them "to
 * avoid any possible confusion with octal numbers").
 */
static bool
parse_dec(const char *s, size_t n, unsigned max, unsigned *out)
{
	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!ascii_isdigit(s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* Exactly four dot-separated decimals 0..255, no leading zeros. */
static bool
parse_v1_ipv4(const char *s, size_t n, struct in_addr *out)
{
	uint8_t b[4];
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		size_t start = i;
		while (i < n && s[i] != '.')
			i++;
		unsigned v;
		if (!parse_dec(s + start, i - start, 255, &v))
			return false;
		b[part] = (uint8_t)v;
		if (part < 3) {
			if (i >= n)
				return false;
			i++;            /* the dot */
		}
	}
	if (i != n)
		return false;
	memcpy(&out->s_addr, b, 4);
	return true;
}

static bool
parse_v1_ipv6(const char *s, size_t n, struct in6_addr *out)
{
	char tmp[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof tmp)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(ascii_isdigit(s[i]) || (s[i] >= 'a' && s[i] <= 'f') ||
		    (s[i] >= 'A' && s[i] <= 'F') || s[i] == ':' || s[i] == '.'))
			return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET6, tmp, out) == 1;
}

/* Split off the next space-terminated token; false if empty. */
static bool
next_token(const char **s, const char *end, const char **tok, size_t *tn,
    bool last)
{
	const char *p = *s;
	while (p < end && *p != ' ')
		p++;
	*tok = *s;
	*tn = (size_t)(p - *s);
	if (*tn == 0)
		return false;
	if (last) {
		if (p != end)
			return false;
		*s = p;
	} else {
		if (p == end)
			return false;
		*s = p + 1;     /* exactly one space */
	}
	return true;
}

/* Parse the complete v1 line buf[0..blen), which ends in CRLF. */
static enum proxy_status
parse_v1(struct proxy_parser *p)
{
	const char *s = (const char *)p->buf + sizeof v1_prefix;
	const char *end = (const char *)p->buf + p->blen - 2;
	struct proxy_header *h = &p->hdr;

	/* "UNKNOWN": the receiver must ignore anything before the CRLF. */
	if ((size_t)(end - s) >= 7 && memcmp(s, "UNKNOWN", 7) == 0 &&
	    (end - s == 7 || s[7] == ' ')) {
		h->local = true;
		return PROXY_DONE;
	}
	int af;
	if ((size_t)(end - s) >= 5 && memcmp(s, "TCP4 ", 5) == 0)
		af = AF_INET;
	else if ((size_t)(end - s) >= 5 && memcmp(s, "TCP6 ", 5) == 0)
		af = AF_INET6;
	else
		return fail(p, "v1: unknown protocol family");
	s += 5;

	const char *tok[4];
	size_t tn[4];
	for (int i = 0; i < 4; i++)
		if (!next_token(&s, end, &tok[i], &tn[i], i == 3))
			return fail(p, "v1: malformed address fields");
	unsigned sport, dport;
	if (!parse_dec(tok[2], tn[2], 65535, &sport) ||
	    !parse_dec(tok[3], tn[3], 65535, &dport))
		return fail(p, "v1: bad port");
	if (af == AF_INET) {
		struct sockaddr_in *src = (struct sockaddr_in *)&h->src;
		struct sockaddr_in *dst = (struct sockaddr_in *)&h->dst;
		if (!parse_v1_ipv4(tok[0], tn[0], &src->sin_addr) ||
		    !parse_v1_ipv4(tok[1], tn[1], &dst->sin_addr))
			return fail(p, "v1: bad IPv4 address");
		src->sin_family = dst->sin_family = AF_INET;
		src->sin_port = htons((uint16_t)sport);
		dst->sin_port = htons((uint16_t)dport);
	} else {
		struct sockaddr_in6 *src = (struct sockaddr_in6 *)&h->src;
		struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&h->dst;
		if (!parse_v1_ipv6(tok[0], tn[0], &src->sin6_addr) ||
		    !parse_v1_ipv6(tok[1], tn[1], &dst->sin6_addr))
			return fail(p, "v1: bad IPv6 address");
		src->sin6_family = dst->sin6_family = AF_INET6;
		src->sin6_port = htons((uint16_t)sport);
		dst->sin6_port = htons((uint16_t)dport);
	}
	return PROXY_DONE;
}

/* Validate the 16-byte fixed part and decide what follows. */
static enum proxy_status
start_v2(struct proxy_parser *p)
{
	uint8_t ver = p->buf[12] >> 4, cmd = p->buf[12] & 0x0f;
	uint8_t fam = p->buf[13] >> 4, tr = p->buf[13] & 0x0f;
	size_t len = ((size_t)p->buf[14] << 8) | p->buf[15];

	if (ver != 2)
		return fail(p, "v2: unsupported version");
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return fail(p, "v2: unknown command");
	if (fam > V2_FAM_UNIX || tr > V2_TR_DGRAM)
		return fail(p, "v2: unknown family or transport");
	p->left = len;
	p->addrlen = 0;
	if (cmd == V2_CMD_LOCAL || fam == V2_FAM_UNSPEC || tr == V2_TR_UNSPEC) {
		/*
		 * LOCAL (health checks) and UNSPEC: use the real endpoints and
		 * skip the announced bytes, whatever they hold (the spec: "must
		 * not assume zero is presented for LOCAL connections").
		 */
		p->hdr.local = true;
		p->skip = len;
		p->state = PS_V2_TLV_VAL;
		return PROXY_NEED_MORE;
	}
	if (tr == V2_TR_DGRAM)
		return fail(p, "v2: datagram transport on a stream listener");
	switch (fam) {
	case V2_FAM_INET:  p->addrlen = 12; break;
	case V2_FAM_INET6: p->addrlen = 36; break;
	default:           p->addrlen = PROXY_V2_UNIX_ADDRS; break;
	}
	if (len < p->addrlen)
		return fail(p, "v2: length shorter than the address block");
	p->state = PS_V2_ADDR;
	return PROXY_NEED_MORE;
}

static void
decode_v2_addrs(struct proxy_parser *p)
{
	const uint8_t *a = p->buf + PROXY_V2_FIXED;
	struct proxy_header *h = &p->hdr;

	switch (p->addrlen) {
	case 12: {
		struct sockaddr_in *src = (struct sockaddr_in *)&h->src;
		struct sockaddr_in *dst = (struct sockaddr_in *)&h->dst;
		src->sin_family = dst->sin_family = AF_INET;
		memcpy(&src->sin_addr, a, 4);
		memcpy(&dst->sin_addr, a + 4, 4);
		memcpy(&src->sin_port, a + 8, 2);
		memcpy(&dst->sin_port, a + 10, 2);
		break;
	}
	case 36: {
		struct sockaddr_in6 *src = (struct sockaddr_in6 *)&h->src;
		struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&h->dst;
		src->sin6_family = dst->sin6_family = AF_INET6;
		memcpy(&src->sin6_addr, a, 16);
		memcpy(&dst->sin6_addr, a + 16, 16);
		memcpy(&src->sin6_port, a + 32, 2);
		memcpy(&dst->sin6_port, a + 34, 2);
		break;
	}
	default: {
		struct sockaddr_un *src = (struct sockaddr_un *)&h->src;
		struct sockaddr_un *dst = (struct sockaddr_un *)&h->dst;
		src->sun_family = dst->sun_family = AF_UNIX;
		/* 108 peer bytes, not necessarily terminated: keep 107 + NUL. */
		memcpy(src->sun_path, a, sizeof src->sun_path - 1);
		memcpy(dst->sun_path, a + 108, sizeof dst->sun_path - 1);
		break;
	}
	}
}

/* At a TLV boundary: finished, or start the next TLV header. */
static enum proxy_status
tlv_boundary(struct proxy_parser *p)
{
	if (p->left == 0) {
		p->state = PS_DONE;
		return PROXY_DONE;
	}
	if (p->left < sizeof p->tlv)
		return fail(p, "v2: truncated TLV header");
	p->tlvlen = 0;
	p->state = PS_V2_TLV_HDR;
	return PROXY_NEED_MORE;
}

/* One byte in a collecting state; returns NEED_MORE to continue. */
static enum proxy_status
step(struct proxy_parser *p, uint8_t c)
{
	switch (p->state) {
	case PS_PREFIX:
		if (p->blen == 0)
			p->version = c == v1_prefix[0] ? 1 : 2;
		if (p->version == 1 ? c != v1_prefix[p->blen] :
		    c != v2_sig[p->blen]) {
			p->state = PS_NOT_PROXY;
			return PROXY_NOT_PROXY;
		}
		p->buf[p->blen++] = c;
		if (p->version == 1 && p->blen == sizeof v1_prefix)
			p->state = PS_V1_LINE;
		else if (p->version == 2 && p->blen == sizeof v2_sig)
			p->state = PS_V2_FIXED;
		return PROXY_NEED_MORE;
	case PS_V1_LINE: {
		uint8_t prev = p->buf[p->blen - 1];
		p->buf[p->blen++] = c;
		if (prev == '\r' && c != '\n')
			return fail(p, "v1: CR not followed by LF");
		if (c == '\n') {
			if (prev != '\r')
				return fail(p, "v1: bare LF");
			enum proxy_status st = parse_v1(p);
			if (st == PROXY_DONE)
				p->state = PS_DONE;
			return st;
		}
		if (c != '\r' && (c < 0x20 || c > 0x7e))
			return fail(p, "v1: non-printable byte");
		if (p->blen >= PROXY_V1_MAX)
			return fail(p, "v1: no CRLF within 107 bytes");
		return PROXY_NEED_MORE;
	}
	case PS_V2_FIXED:
		p->buf[p->blen++] = c;
		if (p->blen < PROXY_V2_FIXED)
			return PROXY_NEED_MORE;
		enum proxy_status st = start_v2(p);
		if (st == PROXY_NEED_MORE && p->state == PS_V2_TLV_VAL &&
		    p->skip == 0)
			return tlv_boundary(p);
		return st;
	case PS_V2_ADDR:
		p->buf[p->blen++] = c;
		p->left--;
		if (p->blen < PROXY_V2_FIXED + p->addrlen)
			return PROXY_NEED_MORE;
		decode_v2_addrs(p);
		return tlv_boundary(p);
	case PS_V2_TLV_HDR:
		p->tlv[p->tlvlen++] = c;
		p->left--;
		if (p->tlvlen < sizeof p->tlv)
			return PROXY_NEED_MORE;
		p->skip = ((size_t)p->tlv[1] << 8) | p->tlv[2];
		if (p->skip > p->left)
			return fail(p, "v2: TLV runs past the header length");
		if (p->skip == 0)
			return tlv_boundary(p);
		p->state = PS_V2_TLV_VAL;
		return PROXY_NEED_MORE;
	default:
		/* PS_V2_TLV_VAL is handled in bulk by proxy_feed. */
		return fail(p, "internal: bad parser state");
	}
}

enum proxy_status
proxy_feed(struct proxy_parser *p, const void *data, size_t len,
    size_t *consumed, struct proxy_header *out)
{
	const uint8_t *d = data;
	size_t i = 0, before = p->blen;
	enum proxy_status st = PROXY_NEED_MORE;

	*consumed = 0;
	switch (p->state) {
	case PS_DONE:
		return PROXY_DONE;
	case PS_NOT_PROXY:
		return PROXY_NOT_PROXY;
	case PS_ERROR:
		return PROXY_ERROR;
	default:
		break;
	}
	while (i < len && st == PROXY_NEED_MORE) {
		if (p->state == PS_V2_TLV_VAL) {
			size_t n = len - i < p->skip ? len - i : p->skip;
			i += n;
			p->total += n;
			p->skip -= n;
			p->left -= n;
			if (p->skip == 0)
				st = tlv_boundary(p);
			continue;
		}
		st = step(p, d[i]);
		if (st == PROXY_NOT_PROXY) {
			p->replay = before;
			return st;
		}
		i++;
		p->total++;
	}
	*consumed = i;
	if (st == PROXY_DONE) {
		p->state = PS_DONE;
		p->hdr.version = p->version;
		p->hdr.length = p->total;
		if (out != NULL)
			*out = p->hdr;
	}
	return st;
}
