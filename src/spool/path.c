/*
 * Pure name handling for the spool: recipient -> Maildir path, and the
 * host part of Maildir unique names. No file system access here.
 *
 * The local part and domain come from a peer. Even after address
 * validation they are treated as hostile path components: anything that
 * could climb out of the base ("..", '/'), hide ('.' prefix, which Maildir++
 * also uses for sub-folders), or confuse logs and tools (control bytes,
 * malformed UTF-8) is refused rather than rewritten.
 */
#include "spool/spool.h"
#include "spool/spool_int.h"

#include <string.h>

#include "lib/util.h"

/* NAME_MAX on Linux file systems: a longer component cannot be created. */
#define COMPONENT_MAX 255

/* Length of the well-formed UTF-8 sequence at p (RFC 3629 §4), or 0. */
static size_t
utf8_seq(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;      /* overlong */
		else if (c == 0xed)
			hi = 0x9f;      /* UTF-16 surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;      /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;      /* beyond U+10FFFF */
	} else
		return 0;
	if (left < n)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

static bool
component_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > COMPONENT_MAX)
		return false;
	if (s[0] == '.')        /* ".", "..", hidden and Maildir++ folders */
		return false;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == '/')
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_seq((const unsigned char *)s + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

static void
append_lower(struct buf *out, const char *s)
{
	for (; *s; s++)
		buf_append_char(out, ascii_lower(*s));
}

bool
spool_mailbox_path(const char *base, const char *local, const char *domain,
    struct buf *out)
{
	buf_reset(out);
	if (base == NULL || local == NULL || domain == NULL || *base == '\0')
		return false;
	if (!component_ok(local) || !component_ok(domain))
		return false;

	size_t blen = strlen(base);
	while (blen > 1 && base[blen - 1] == '/')
		blen--;
	buf_append(out, base, blen);
	if (base[blen - 1] != '/')
		buf_append_char(out, '/');
	append_lower(out, domain);
	buf_append_char(out, '/');
	append_lower(out, local);
	buf_append_char(out, '/');
	return true;
}

void
maildir_escape_host(const char *host, struct buf *out)
{
	/* The Maildir convention: '/' and ':' cannot appear in the unique
	 * part (':' starts the info suffix), so they are written as octal. */
	for (; *host; host++) {
		if (*host == '/')
			buf_append_str(out, "\\057");
		else if (*host == ':')
			buf_append_str(out, "\\072");
		else
			buf_append_char(out, *host);
	}
}
