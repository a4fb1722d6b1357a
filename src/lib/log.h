/*
 * Logging: one line per event (STYLE.md lesson 13).
 *
 * The destination is chosen once at start (and again on reload):
 *   log_open("syslog")       syslog(3), facility LOG_MAIL
 *   log_open("/dev/stderr")  standard error (the embedded default)
 *   log_open(PATH)           append to a file, like Postfix's maillog_file
 * Each line is written with a single write(2), so lines from the delivery
 * threads never interleave. Lines look like
 *   2026-11-28T11:23:00.123456Z myhost ehlod[123]: <text>
 * Callers put the session id first and key=value pairs after it, and pass
 * every peer-supplied string through log_sanitize() first.
 */
#ifndef EHLO_LOG_H
#define EHLO_LOG_H

#include <stddef.h>
#include "lib/buf.h"

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

int  log_open(const char *dest, const char *progname); /* 0 ok, -1 errno set */
/*
 * The descriptor of the log file opened by the last log_open(PATH), if
 * that call created the file (O_EXCL, never through a symbolic link);
 * -1 otherwise. ehlod hands only such a file to mail_owner: chown(2) by
 * name as root would follow a link that a less privileged user planted.
 */
int  log_created_fd(void);
/*
 * Whether log_open(dest) would succeed, without creating anything (for
 * ehlod -t): 0, or -1 with errno set, by the same rules: no symbolic link,
 * a regular file or a character device, opened for appending without
 * waiting (a FIFO without a reader fails), or a directory that can take
 * a new file.
 */
int  log_check(const char *dest);
void log_set_level(enum log_level min);
void log_close(void);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/*
 * Per-thread batching for an event-loop thread: after log_batch_begin(),
 * this thread's lines collect in a buffer and log_batch_flush() writes them
 * with one write(2) (also when 16 KiB are pending, and before a fatal
 * exit). The loop flushes after each iteration, so a line waits at most for
 * the callbacks of that iteration; with many sessions per iteration this
 * saves a system call per line. Lines are never split. No effect on syslog.
 */
void log_batch_begin(void);
void log_batch_flush(void);
void log_batch_end(void);

/* Fatal start-up error: log, also print to stderr, exit(code). */
void log_fatal(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/*
 * Append a printable rendering of peer data to out: bytes 0x21..0x7e except
 * '\\' pass through, space passes through, anything else becomes \xHH.
 * At most max input bytes are rendered; a longer input ends in "...".
 * Returns buf_cstr(out) for convenience.
 */
const char *log_sanitize(struct buf *out, const void *p, size_t n, size_t max);

/*
 * The same rendering, limited to what it appends rather than to what it
 * reads: at most width octets (width >= 3). If the whole rendering is
 * longer, the longest run of whole characters that leaves room for "..."
 * is kept and "..." follows; a character is one octet, or a UTF-8 sequence
 * (a lead octet and its continuation octets), whose escapes are kept or
 * dropped together, so no escape and no UTF-8 character is ever cut (for
 * text quoted in a reply, whose line has a fixed length, RFC 5321
 * §4.5.3.1.5). Returns buf_cstr(out).
 */
const char *sanitize_fit(struct buf *out, const void *p, size_t n, size_t width);

/*
 * sanitize_fit for a fixed buffer of max_out octets plus the "...": at most
 * max_out + 3 octets are appended.
 */
const char *log_sanitize_to(struct buf *out, const void *p, size_t n, size_t max_out);

/*
 * A line (prefix included) is at most LOG_LINE_MAX octets. A longer one is
 * cut, never inside a \xHH escape, and ends in LOG_CUT_MARK. Callers bound
 * peer data so that their lines fit; the cut is the last resort, and a
 * message with many recipients is logged one line per recipient.
 */
#define LOG_LINE_MAX 8192
#define LOG_CUT_MARK "...[line truncated]"

#endif
