/*
 * addrmap: the set of valid recipient addresses for virtual_mailbox_maps.
 *
 * Source format (a Postfix virtual_mailbox_maps source file works as is):
 * one address per line in the first column; anything after whitespace
 * (Postfix's result column) is ignored, as are lines starting with
 * whitespace (continuations of that column), blank lines and lines whose
 * first non-space character is '#'. A key "@domain" accepts every local
 * part of that domain, as in Postfix. Keys are compared case-insensitively.
 * Errors read "FILE:LINE: message".
 */
#ifndef EHLO_ADDRMAP_H
#define EHLO_ADDRMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

struct addrmap;

/* Load PATH. Returns a new map, or NULL with a message appended to err. */
struct addrmap *addrmap_load(const char *path, struct buf *err);

/* Same from a buffer (need not be NUL-terminated); name is used in errors. */
struct addrmap *addrmap_load_buffer(const char *text, size_t len, const char *name,
    struct buf *err);

/*
 * True if "local@domain" is in the map, or "@domain" is. The comparison
 * ignores ASCII case. addr is not modified.
 */
bool addrmap_contains(const struct addrmap *map, const char *addr);

/* Number of keys (after removing duplicates). */
size_t addrmap_count(const struct addrmap *map);

/* Free *map and set it to NULL. NULL-safe. */
void addrmap_free(struct addrmap **map);

#endif
