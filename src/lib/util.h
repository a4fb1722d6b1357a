/* Small string helpers that are locale-independent (SMTP is ASCII). */
#ifndef EHLO_UTIL_H
#define EHLO_UTIL_H

#include <stdbool.h>
#include <stddef.h>

static inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }
static inline bool ascii_isalpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static inline bool ascii_isdigit(int c) { return c >= '0' && c <= '9'; }
static inline bool ascii_isalnum(int c) { return ascii_isalpha(c) || ascii_isdigit(c); }

bool   ascii_ieq(const char *a, const char *b);                     /* whole strings */
bool   ascii_ieqn(const char *a, size_t an, const char *b);         /* a[0..an) vs C string b */
bool   ascii_iprefix(const char *s, size_t n, const char *prefix);  /* s[0..n) starts with prefix */
void   ascii_lower_str(char *s);
/* Parses a decimal without sign into *out; false on empty, junk or overflow. */
bool   parse_u64(const char *s, size_t n, unsigned long long *out);
/* The directory a path names its last component in: path cut in place at
 * its last '/' ("/" for "/x"), or "." if it has none. */
const char *path_parent(char *path);

#endif
