/*
 * Data-file loading for the identity module (the only I/O in
 * src/identity/; see load.h).
 */
#include "identity/load.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool
read_file(const char *path, struct buf *text, struct buf *err)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		buf_appendf(err, "%s: %s", path, strerror(errno));
		return false;
	}
	char chunk[8192];
	size_t r;
	while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (text->len + r > ID_DATA_FILE_MAX) {
			buf_appendf(err, "%s: larger than %u bytes", path,
			    ID_DATA_FILE_MAX);
			fclose(f);
			return false;
		}
		buf_append(text, chunk, r);
	}
	if (ferror(f)) {
		buf_appendf(err, "%s: read error", path);
		fclose(f);
		return false;
	}
	fclose(f);
	return true;
}

struct psl *
psl_load_file(const char *path, struct buf *err)
{
	struct buf text = BUF_INIT;
	if (!read_file(path, &text, err)) {
		buf_free(&text);
		return NULL;
	}
	struct psl *psl = psl_parse(buf_cstr(&text), text.len);
	buf_free(&text);
	if (psl_rule_count(psl) == 0) {
		buf_appendf(err, "%s: no public suffix rules", path);
		psl_free(&psl);
	}
	return psl;
}

struct generic_patterns *
generic_load_file(const char *path, struct buf *err)
{
	struct buf text = BUF_INIT, why = BUF_INIT;
	if (!read_file(path, &text, err)) {
		buf_free(&text);
		return NULL;
	}
	struct generic_patterns *gp = generic_parse(buf_cstr(&text), text.len,
	    &why);
	if (gp == NULL)
		buf_appendf(err, "%s: %s", path, buf_cstr(&why));
	buf_free(&text);
	buf_free(&why);
	return gp;
}
