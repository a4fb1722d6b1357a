/*
 * Does a host name look generic or dynamic (an ISP's name for a pool
 * address rather than a mail server's own name)? Pure; the pattern file is
 * read by generic_load_file() in load.c. The file format is documented at
 * the top of data/generic-patterns and in docs/identity.md.
 *
 * Two independent tests, confined to the name left of its public suffix
 * (ICANN section of the PSL, so that an EC2 host name is seen whole), the
 * patterns further to the host part (the labels left of the registrable
 * domain), so that an organisation's own domain ("dsl7.com",
 * "liverpool.ac.uk") never matches:
 *  1. the client's address is embedded in the name, in any of the
 *     encodings ISPs use (built in, see id_name_embeds_addr());
 *  2. a pattern of the file matches (token, label, suffix rules), unless
 *     an exempt rule covers the name.
 */
#ifndef EHLO_IDENTITY_GENERIC_H
#define EHLO_IDENTITY_GENERIC_H

#include <stdbool.h>
#include <stddef.h>

#include "identity/hostname.h"
#include "lib/buf.h"

struct generic_patterns;
struct psl;

/*
 * Parses a pattern file. On success returns the patterns (caller owns;
 * free with generic_free()). On a malformed line returns NULL and appends
 * "line N: why" to err: a broken operator file is a start-up error.
 */
struct generic_patterns *generic_parse(const char *text, size_t len,
                                       struct buf *err);
void   generic_free(struct generic_patterns **pp);
size_t generic_rule_count(const struct generic_patterns *gp);

/*
 * Looks for the client's address a in the host part name[0..host_len) of
 * a valid, lowercase name. Encodings for IPv4 a.b.c.d: the four octets in
 * order or reversed, separated by '.' or '-', each optionally zero-padded
 * ("1-2-3-4", "001.002.003.004", "4.3.2.1"); twelve zero-padded digits
 * ("001002003004"); eight hex digits ("01020304", either order); the
 * 32-bit decimal value ("16909060"). For IPv6: hyphen-separated groups in
 * any RFC 4291 text form ("2001-db8--1", "2001-0db8-0000-...-0001"), the
 * 32 hex digits run together, and the 32 nibbles as dot-separated labels
 * in either order (the ip6.arpa form). A digit run must be whole: "11-2-3-4"
 * does not embed 1.2.3.4. Returns the encoding's name ("dashed",
 * "reversed", "hex", ...) or NULL.
 */
const char *id_name_embeds_addr(const char *name, size_t host_len,
                                const struct id_addr *a);

/*
 * Length of the host part of a valid, lowercase name: the labels before
 * its registrable domain by the ICANN section of the list, without the dot
 * (0 if the name is registrable itself or a public suffix). Without a PSL
 * the last two labels count as the registrable domain.
 */
size_t id_host_part_len(const struct psl *psl, const char *name);

/*
 * True if name (valid, lowercase) looks generic for client address a.
 * gp may be NULL (then only the address test runs). On true, writes a
 * short description ("embeds client IP (dashed)", "token \"dsl\"") to
 * why (whylen bytes).
 */
bool generic_match(const struct generic_patterns *gp, const struct psl *psl,
                   const char *name, const struct id_addr *a,
                   char *why, size_t whylen);

#endif
