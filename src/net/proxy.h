/*
 * PROXY protocol v1 and v2 header parser (HAProxy's proxy-protocol.txt).
 *
 * PURE and resumable (STYLE.md lesson 1): the caller feeds whatever bytes it
 * has read, in any fragmentation; the parser keeps its state in struct
 * proxy_parser and never touches a socket, the clock or the event loop.
 *
 * Outcomes of proxy_feed():
 *   PROXY_NEED_MORE  every byte of this call was absorbed; feed more.
 *   PROXY_DONE       a complete, valid header; *consumed of this call's bytes
 *                    belong to it and the rest is application (SMTP) data.
 *   PROXY_NOT_PROXY  the bytes seen cannot start a PROXY header (they diverge
 *                    from both "PROXY " and the 12-byte v2 signature, which
 *                    are checked byte by byte, so this is decided as early as
 *                    possible). Nothing of this call was consumed; the bytes
 *                    absorbed by EARLIER calls (at most 11) are returned by
 *                    proxy_replay() and come before this call's input.
 *   PROXY_ERROR      a header that started correctly is malformed; the
 *                    connection must be dropped (spec §2.1: "abort the
 *                    connection as soon as possible"). proxy_error() says why.
 * After a terminal outcome every further call returns the same outcome and
 * consumes nothing.
 *
 * Detection rule recommended for sharing one listener between proxied and
 * direct clients (the spec says a receiver "MUST not try to guess"; that rule
 * exists so that untrusted parties cannot spoof addresses, which this rule
 * keeps by only ever parsing headers from trusted proxies):
 *   1. Peer not in smtpd_upstream_proxy_hosts (cidr.h): never parse; a
 *      "PROXY ..." line from it is just an SMTP client talking first.
 *   2. Trusted peer: do not greet yet. Wait a short detection window
 *      (suggested 250 ms; a proxy writes the header at once upon connect,
 *      while an SMTP client must wait for the greeting, RFC 5321 §3.1) for
 *      the first byte.
 *        - nothing arrives: a direct client from the proxy host; greet.
 *        - bytes arrive: feed them. NOT_PROXY: a direct client that talked
 *          before the greeting (a pregreet violation; treat as such with the
 *          replayed bytes as its input). NEED_MORE: keep reading under the
 *          header timeout (suggested 3 s, the spec's "at least 3 seconds to
 *          cover a TCP retransmit"); timeout or ERROR: count, drop.
 *          DONE: use the header's addresses (or the real ones if .local).
 * A PROXY header from a trusted host can never be mistaken for SMTP: no SMTP
 * command starts with "PROXY " or with the v2 signature (CR LF CR LF NUL).
 *
 * v2 TLVs are framed and bounds-checked (a TLV may not run past the length
 * announced in the fixed header) and then skipped; the CRC32C TLV is not
 * verified (allowed: the spec requires it only of receivers that implement
 * it). The whole v2 header may be up to 16 + 65535 bytes; only the 16-byte
 * fixed part and the address block (at most 216 bytes) are buffered.
 */
#ifndef EHLO_NET_PROXY_H
#define EHLO_NET_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107        /* longest v1 line including CRLF (spec §2.1) */
#define PROXY_V2_FIXED 16       /* signature, ver/cmd, fam, len */
#define PROXY_V2_UNIX_ADDRS 216 /* largest address block: 2 * 108 */

enum proxy_status {
	PROXY_NEED_MORE,
	PROXY_DONE,
	PROXY_NOT_PROXY,
	PROXY_ERROR,
};

struct proxy_header {
	int     version;        /* 1 or 2 */
	/*
	 * true when the header carries no usable addresses and the real
	 * connection endpoints must be used: v1 UNKNOWN, v2 LOCAL, v2 PROXY
	 * with an UNSPEC family or transport. src/dst are then zeroed.
	 */
	bool    local;
	/*
	 * The original endpoints: AF_INET or AF_INET6 with ports, or AF_UNIX
	 * (v2 only; sun_path NUL-terminated, at most 107 bytes kept).
	 */
	struct sockaddr_storage src;
	struct sockaddr_storage dst;
	size_t  length;         /* total header length in bytes, all calls */
};

enum proxy_state {
	PS_PREFIX,      /* matching "PROXY " or the v2 signature */
	PS_V1_LINE,     /* collecting the v1 line up to CRLF */
	PS_V2_FIXED,    /* collecting the 16-byte fixed part */
	PS_V2_ADDR,     /* collecting the address block */
	PS_V2_TLV_HDR,  /* collecting a 3-byte TLV header */
	PS_V2_TLV_VAL,  /* skipping a TLV value */
	PS_DONE,
	PS_NOT_PROXY,
	PS_ERROR,
};

struct proxy_parser {
	enum proxy_state state;
	int      version;
	uint8_t  buf[PROXY_V2_FIXED + PROXY_V2_UNIX_ADDRS]; /* >= PROXY_V1_MAX */
	size_t   blen;          /* bytes in buf */
	size_t   replay;        /* NOT_PROXY: bytes of buf from earlier calls */
	size_t   total;         /* header bytes absorbed so far */
	size_t   left;          /* v2: header bytes still to come after buf */
	size_t   addrlen;       /* v2: bytes of the address block to buffer */
	uint8_t  tlv[3];
	size_t   tlvlen;        /* bytes of tlv[] collected */
	size_t   skip;          /* TLV value bytes still to skip */
	const char *error;      /* static string; NULL unless PS_ERROR */
	struct proxy_header hdr;
};

/* Prepare p for a new connection. */
void proxy_init(struct proxy_parser *p);

/*
 * Feed len bytes. *consumed is set for every outcome (see the top of this
 * file). On PROXY_DONE *out receives the header; out is untouched otherwise.
 */
enum proxy_status proxy_feed(struct proxy_parser *p, const void *data,
    size_t len, size_t *consumed, struct proxy_header *out);

/* After PROXY_NOT_PROXY: bytes absorbed by earlier calls (*n may be 0). */
const uint8_t *proxy_replay(const struct proxy_parser *p, size_t *n);

/* After PROXY_ERROR: a static, human-readable reason; NULL otherwise. */
const char *proxy_error(const struct proxy_parser *p);

#endif
