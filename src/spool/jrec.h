/*
 * Spool journal records: encoding and parsing. Pure (no I/O).
 *
 * The journal (journal.c, docs/spool.md) is a sequence of records, each
 *
 *   offset  size  field
 *   0       4     magic "EHJ1"
 *   4       4     payload length L (little-endian), at most JREC_PAYLOAD_MAX
 *   8       4     CRC-32C of bytes 12 .. 24+L (type, seq and payload)
 *   12      4     type: 1 = message
 *   16      8     sequence number (strictly increasing within a journal)
 *   24      L     payload
 *
 * A message payload is
 *   u16 qid length, qid bytes;
 *   u32 n (mailboxes, >= 1); n times: u16 length, Maildir path bytes,
 *       u16 length, file name under new/ bytes;
 *   u64 content length, content bytes;
 * and nothing after the content. Every string is non-empty and has no NUL;
 * a file name has no '/'. All integers are little-endian.
 *
 * The CRC is what makes a torn tail safe: after a crash the last record may
 * be cut short or hold zeros or stale bytes (appended data that never
 * reached the disk). Such a record was never acknowledged (its fdatasync
 * did not return), so the parser reports it as corrupt and recovery stops
 * there rather than delivering damaged mail.
 */
#ifndef EHLO_SPOOL_JREC_H
#define EHLO_SPOOL_JREC_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define JREC_HEADER       24
#define JREC_TYPE_MESSAGE 1
#define JREC_PAYLOAD_MAX  (1u << 30)
#define JREC_BOXES_MAX    100000u

/* A parsed message record: views into the parsed bytes. */
struct jrec {
	uint32_t             type;
	uint64_t             seq;
	const char          *qid;
	size_t               qidlen;
	uint32_t             nbox;
	const unsigned char *boxes;     /* first mailbox entry (see jrec_box) */
	const char          *content;
	uint64_t             len;
};

/*
 * Appends one message record to out. dirs[i] is mailbox i's Maildir path,
 * names[i] its file name under new/. Returns 0, or -1 (out unchanged) if a
 * field breaks the limits above.
 */
int jrec_encode(struct buf *out, uint64_t seq, const char *qid, size_t nbox,
    const char *const *dirs, const char *const *names, const char *content,
    size_t len);

/*
 * Parses the record at p[0..n). Returns its total size (> 0) and fills *r;
 * 0 if p holds only the beginning of a record (or nothing); -1 if the bytes
 * are not a valid record (bad magic, length, CRC or payload structure).
 */
long long jrec_parse(const unsigned char *p, size_t n, struct jrec *r);

/*
 * Mailbox i (< r->nbox) of a record jrec_parse accepted: the Maildir path
 * and the file name, as pointer and length (not NUL-terminated).
 */
void jrec_box(const struct jrec *r, uint32_t i, const char **dir,
    size_t *dirlen, const char **name, size_t *namelen);

#endif
