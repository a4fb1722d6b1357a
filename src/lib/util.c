#include "lib/util.h"

#include <limits.h>
#include <string.h>

bool
ascii_ieq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (ascii_lower(*a) != ascii_lower(*b))
			return false;
	return *a == *b;
}

bool
ascii_ieqn(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	return true;
}

bool
ascii_iprefix(const char *s, size_t n, const char *prefix)
{
	size_t pn = strlen(prefix);
	if (n < pn)
		return false;
	for (size_t i = 0; i < pn; i++)
		if (ascii_lower(s[i]) != ascii_lower(prefix[i]))
			return false;
	return true;
}

void
ascii_lower_str(char *s)
{
	for (; *s; s++)
		*s = ascii_lower(*s);
}

const char *
path_parent(char *path)
{
	char *slash = strrchr(path, '/');
	if (slash == NULL)
		return ".";
	slash[slash == path] = '\0';
	return path;
}

bool
parse_u64(const char *s, size_t n, unsigned long long *out)
{
	if (n == 0 || n > 20)
		return false;
	unsigned long long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!ascii_isdigit(s[i]))
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}
