/* Logging backends: syslog, stderr or an append-only file (see log.h). */
#include "lib/log.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static int use_syslog;
static enum log_level min_level = LOG_LVL_INFO;
static char prog[32] = "ehlo";
static char host[64] = "localhost";
static long pid;             /* getpid() once per log_open, not per line */
static int created_fd = -1;  /* log_fd, if the last log_open created the file */

int
log_open(const char *dest, const char *progname)
{
	if (progname)
		snprintf(prog, sizeof prog, "%s", progname);
	pid = (long)getpid();
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	char *dot = strchr(host, '.');
	if (dot)
		*dot = '\0';
	int old = log_fd;
	if (dest == NULL || strcmp(dest, "/dev/stderr") == 0 || *dest == '\0') {
		log_fd = 2;
		use_syslog = 0;
	} else if (strcmp(dest, "syslog") == 0) {
		openlog(prog, LOG_PID | LOG_NDELAY, LOG_MAIL);
		use_syslog = 1;
		log_fd = -1;
	} else if (strcmp(dest, "/dev/stdout") == 0) {
		log_fd = 1;
		use_syslog = 0;
	} else {
		/*
		 * Never through a symbolic link (ELOOP), and only a regular
		 * file or a character device (/dev/null): ehlod opens this as
		 * root at start, and whoever can write the log's directory
		 * could otherwise have root append to, or create, any file;
		 * a FIFO would block the start (O_NONBLOCK, then cleared).
		 */
		int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW |
		    O_CLOEXEC, 0640);
		created_fd = fd;
		if (fd < 0 && errno == EEXIST) {
			struct stat st;
			fd = open(dest, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (fd >= 0 && (fstat(fd, &st) != 0 ||
			    !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) ||
			    fcntl(fd, F_SETFL, O_APPEND) != 0)) {
				close(fd);
				fd = -1;
				errno = EINVAL;
			}
		}
		if (fd < 0)
			return -1;
		/*
		 * A reopen (reload, after rotation) while other threads log:
		 * dup2 swaps the file under the descriptor number they use, in
		 * one step. Switching log_fd and closing the old one could let
		 * a thread write to that number after it was closed, and after
		 * it was reused for a client's socket or a Maildir file.
		 */
		if (old > 2 && !use_syslog && dup2(fd, old) == old) {
			if (created_fd == fd)
				created_fd = old;
			close(fd);
			fd = old;
		}
		log_fd = fd;
		use_syslog = 0;
	}
	if (log_fd != created_fd)
		created_fd = -1;
	if (old > 2 && old != log_fd)
		close(old);
	return 0;
}

int
log_check(const char *dest)
{
	if (dest == NULL || *dest == '\0' || strcmp(dest, "/dev/stderr") == 0 ||
	    strcmp(dest, "/dev/stdout") == 0 || strcmp(dest, "syslog") == 0)
		return 0;
	int fd = open(dest, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		struct stat st;
		bool ok = fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode));
		close(fd);
		if (!ok) {
			errno = EINVAL;
			return -1;
		}
		return 0;
	}
	if (errno != ENOENT)
		return -1;
	/* To be created: its directory must take it. */
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", dest);
	const char *d = path_parent(dir);
	struct stat st;
	if (stat(d, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return access(d, W_OK | X_OK);
}

int
log_created_fd(void)
{
	return created_fd;
}

void
log_set_level(enum log_level min)
{
	min_level = min;
}

void
log_close(void)
{
	if (log_fd > 2)
		close(log_fd);
	log_fd = 2;
	if (use_syslog)
		closelog();
	use_syslog = 0;
}

/* Whole lines, one write: O_APPEND keeps them whole with respect to other
 * writers (threads and processes). */
static void
write_lines(const char *p, size_t n)
{
	ssize_t w;
	do {
		w = write(log_fd, p, n);
	} while (w < 0 && errno == EINTR);
}

/* This thread's batch (log_batch_begin); no line is ever split between
 * two writes. */
static _Thread_local struct {
	bool   on;
	size_t len;
	char   data[16384];
} batch;

/* Appends s at off in a line buffer of at least STAMP_MAX bytes. */
#define STAMP_MAX 256
static size_t
put(char *line, size_t off, const char *s)
{
	size_t n = strlen(s);
	if (n > STAMP_MAX / 2 - 1)
		n = STAMP_MAX / 2 - 1;
	memcpy(line + off, s, n);
	return off + n;
}

/*
 * Writes "2026-11-28T15:17:58.123456Z host prog[pid]: " at line[0] and
 * returns its length (< STAMP_MAX). The date and time part is formatted
 * once per second per thread: gmtime_r and strftime for every line were a
 * visible part of the server's CPU under load.
 */
static size_t
stamp(char *line)
{
	static _Thread_local time_t cached_sec = -1;
	static _Thread_local char cached[32];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != cached_sec) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		if (strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
			cached[0] = '\0';
		cached_sec = ts.tv_sec;
	}
	size_t off = put(line, 0, cached);
	long us = ts.tv_nsec / 1000;
	line[off++] = '.';
	for (int i = 5; i >= 0; i--, us /= 10)
		line[off + (size_t)i] = (char)('0' + us % 10);
	off += 6;
	line[off++] = 'Z';
	line[off++] = ' ';
	off = put(line, off, host);
	line[off++] = ' ';
	static _Thread_local long cached_pid = -1;
	static _Thread_local char tail[32];
	long p = pid ? pid : (long)getpid();
	if (p != cached_pid) {
		snprintf(tail, sizeof tail, "[%ld]: ", p);
		cached_pid = p;
	}
	off = put(line, off, prog);
	return put(line, off, tail);
}

static void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t off = 0;
	if (!use_syslog)
		off = stamp(line);
	const char *tag = lvl == LOG_LVL_WARN ? "warning: " : lvl == LOG_LVL_ERR ? "error: " : "";
	off = put(line, off, tag);
	int n = vsnprintf(line + off, sizeof line - off, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof line - 2 - off) {
		/* Too long for one line (with its newline): cut, and say so. It
		 * was cut silently, possibly in the middle of an escape, so that
		 * the end of the line could not be told from the end of the data.
		 * A backslash in a line always begins an escape (log_sanitize
		 * escapes the backslash itself), so one in the last three octets
		 * before the cut begins an escape the cut would split. */
		static const char mark[] = LOG_CUT_MARK;
		size_t end = sizeof line - 2 - (sizeof mark - 1);
		for (size_t k = end - 3; k < end; k++)
			if (line[k] == '\\') {
				end = k;
				break;
			}
		memcpy(line + end, mark, sizeof mark - 1);
		off = end + sizeof mark - 1;
	} else {
		off += (size_t)n;
	}
	if (use_syslog) {
		line[off] = '\0';
		int pri = lvl == LOG_LVL_ERR ? LOG_ERR : lvl == LOG_LVL_WARN ? LOG_WARNING :
		    lvl == LOG_LVL_DEBUG ? LOG_DEBUG : LOG_INFO;
		syslog(pri, "%s", line);
		return;
	}
	line[off++] = '\n';
	if (batch.on) {
		if (batch.len + off > sizeof batch.data)
			log_batch_flush();
		memcpy(batch.data + batch.len, line, off);
		batch.len += off;
		return;
	}
	write_lines(line, off);
}

void
log_batch_begin(void)
{
	batch.on = true;
}

void
log_batch_flush(void)
{
	if (batch.len > 0)
		write_lines(batch.data, batch.len);
	batch.len = 0;
}

void
log_batch_end(void)
{
	log_batch_flush();
	batch.on = false;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	if (lvl < min_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void
log_fatal(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char msg[2048];
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_msg(LOG_LVL_ERR, "fatal: %s", msg);
	log_batch_flush();
	if (log_fd != 2)
		fprintf(stderr, "%s: fatal: %s\n", prog, msg);
	exit(code);
}

/* Octets in the character at s[0..n): a UTF-8 lead octet with all its
 * continuation octets, else 1. */
static size_t
char_len(const unsigned char *s, size_t n)
{
	size_t k = s[0] >= 0xf0 && s[0] <= 0xf7 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 1;
	if (k > n)
		return 1;
	for (size_t i = 1; i < k; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 1;
	return k;
}

/* What log_sanitize() appends for the octet c. */
static size_t
rendered_len(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '\\' ? 1 : 4;
}

const char *
sanitize_fit(struct buf *out, const void *p, size_t n, size_t width)
{
	const unsigned char *s = p;
	size_t total = 0, keep = 0;
	/* keep: the input octets whose rendering fits with room for "...". */
	for (size_t i = 0; i < n;) {
		size_t k = char_len(s + i, n - i), w = 0;
		for (size_t j = 0; j < k; j++)
			w += rendered_len(s[i + j]);
		total += w;
		if (total + 3 <= width)
			keep = i + k;
		i += k;
	}
	if (total <= width)
		return log_sanitize(out, s, n, n);
	log_sanitize(out, s, keep, keep);
	buf_append_str(out, "...");
	return buf_cstr(out);
}

const char *
log_sanitize(struct buf *out, const void *p, size_t n, size_t max)
{
	const unsigned char *s = p;
	size_t lim = n < max ? n : max;
	for (size_t i = 0; i < lim; i++) {
		unsigned char c = s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf_append_char(out, (char)c);
		else
			buf_appendf(out, "\\x%02x", c);
	}
	if (n > max)
		buf_append_str(out, "...");
	return buf_cstr(out);
}

const char *
log_sanitize_to(struct buf *out, const void *p, size_t n, size_t max_out)
{
	return sanitize_fit(out, p, n, max_out + 3);
}
