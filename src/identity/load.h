/*
 * Loading the identity module's data files at start-up. This is the only
 * part of src/identity/ that does I/O, and it is kept apart from the pure
 * checks: it reads a file into memory and hands the text to psl_parse()
 * or generic_parse().
 */
#ifndef EHLO_IDENTITY_LOAD_H
#define EHLO_IDENTITY_LOAD_H

#include "identity/generic.h"
#include "identity/psl.h"
#include "lib/buf.h"

/* Debian's package "publicsuffix" installs the list here. */
#define ID_PSL_DEFAULT_PATH "/usr/share/publicsuffix/public_suffix_list.dat"
/* Files larger than this are refused (the list is about 250 KB). */
#define ID_DATA_FILE_MAX    (16u * 1024 * 1024)

/*
 * Reads and parses the public suffix list at path. Returns NULL and
 * appends "path: why" to err when the file cannot be read, is too large,
 * or holds no rule at all. The caller owns the result (psl_free()).
 */
struct psl *psl_load_file(const char *path, struct buf *err);

/*
 * Reads and parses a generic-patterns file (format: data/generic-patterns).
 * Returns NULL and appends "path: why" or "path: line N: why" to err on
 * failure. The caller owns the result (generic_free()).
 */
struct generic_patterns *generic_load_file(const char *path, struct buf *err);

#endif
