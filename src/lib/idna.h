/*
 * Domain names in U-label form to their A-label form (RFC 5890 §2.3.2.1,
 * RFC 3492 Punycode), so that a UTF-8 domain in an SMTPUTF8 transaction
 * (RFC 6531 §3.2: "bücher.example") and its ASCII-compatible form
 * ("xn--bcher-kva.example") name the same local domain, the same map key
 * and the same Maildir. Pure: no I/O (the case mapping uses the C.UTF-8
 * locale's tables, loaded once).
 *
 * What is done: each label is lower-cased (simple Unicode case mapping, as
 * UTS #46 maps upper-case input; U+0130 to "i" U+0307 as in full case
 * mapping) and, if it holds non-ASCII characters after that, Punycode-
 * encoded behind "xn--"; the ideographic and fullwidth full stops separate
 * labels and the soft hyphen is dropped (UTS #46); a U-label with a leading
 * or trailing hyphen, "--" in positions 3-4, or ZWJ/ZWNJ is refused (RFC
 * 5891 §4.2.3). What is not done, for lack of the tables (no libidn2/ICU
 * in this project's stack): NFC normalisation, UTS #46's compatibility
 * mappings (fullwidth letters, ligatures) and the IDNA2008 code point
 * rules (emoji pass). Such a name gets an A-label no other software
 * produces: it is an invalid U-label anyway, and simply matches nothing.
 */
#ifndef EHLO_LIB_IDNA_H
#define EHLO_LIB_IDNA_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

/*
 * Appends the A-label form of the domain name in[0..n) to out. False (out
 * unchanged) if in is not well-formed UTF-8, holds a control character,
 * a space, '@' or an empty label, or if a label's A-label would be longer
 * than 63 octets or the name longer than 253 octets.
 */
bool idna_to_ascii(const char *in, size_t n, struct buf *out);

/*
 * Encodes one label of UTF-8 into its A-label "xn--..." (RFC 3492, no
 * mapping or IDNA check: for input already lowercase NFC, such as the
 * public suffix list). Returns the length written to out (at most
 * outlen - 1, NUL-terminated), or 0 if the input is not well-formed UTF-8,
 * holds more than 63 code points, or the result does not fit. An all-ASCII
 * label is copied unchanged.
 */
size_t idna_punycode_label(const char *in, size_t n, char *out, size_t outlen);

/* True if s[0..n) holds an octet above 0x7f. */
bool idna_has_utf8(const char *s, size_t n);

#endif
