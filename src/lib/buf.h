/*
 * struct buf: the one length-carrying byte buffer (STYLE.md lesson 7).
 * data is always NUL-terminated after len bytes (so it can be used as a C
 * string when it holds text), but may contain NULs itself. Offsets into a
 * buf stay valid across appends; pointers do not.
 */
#ifndef EHLO_BUF_H
#define EHLO_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char   *data;   /* NULL until the first append; buf_cstr() never NULL */
	size_t  len;
	size_t  cap;
};

#define BUF_INIT { NULL, 0, 0 }

void  buf_init(struct buf *b);
void  buf_free(struct buf *b);                 /* releases memory, len=0 */
void  buf_reset(struct buf *b);                /* len=0, keeps memory */
void  buf_reserve(struct buf *b, size_t extra);
void  buf_append(struct buf *b, const void *p, size_t n);
void  buf_append_str(struct buf *b, const char *s);
void  buf_append_char(struct buf *b, char c);
void  buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void  buf_vappendf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void  buf_consume(struct buf *b, size_t n);    /* drop n bytes from the front */
void  buf_truncate(struct buf *b, size_t len); /* keep the first len bytes (if shorter) */
const char *buf_cstr(const struct buf *b);     /* "" when empty */
char *buf_steal(struct buf *b);                /* caller owns; b is reset to empty */

#endif
