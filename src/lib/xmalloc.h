/*
 * Allocation that never returns NULL: an allocation failure aborts
 * (STYLE.md lesson 10: allocation failure is not a peer error).
 * x_free(&p) frees and clears the caller's pointer (lesson 9).
 */
#ifndef EHLO_XMALLOC_H
#define EHLO_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);   /* checks nmemb*size overflow */
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define x_free(pp) do { free(*(pp)); *(pp) = NULL; } while (0)

#endif
