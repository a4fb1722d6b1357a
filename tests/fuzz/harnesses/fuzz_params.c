/*
 * Fuzz the ESMTP parameter parser. Bytes 0-1 are the extension mask, byte 2
 * picks MAIL or RCPT (bit 0) and an SMTPUTF8 transaction (bit 1); the rest is what follows the path. Invariants: a
 * success stores only values its extension allows and that respect their
 * limits and grammar; an error points inside the input; *out is not
 * touched on error; parsing is deterministic.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_mail(const char *in, size_t n, unsigned ext)
{
	struct mail_params mp, mp2, canary;
	size_t off = SIZE_MAX, len = SIZE_MAX;
	enum param_err e;

	memset(&mp, 0xa5, sizeof mp);
	memset(&mp2, 0, sizeof mp2);
	memcpy(&canary, &mp, sizeof mp);
	e = params_parse_mail(in, n, ext, &mp, &off, &len);
	if (e != params_parse_mail(in, n, ext, &mp2, NULL, NULL))
		abort();
	if (e != PARAM_OK) {
		if (off > n || len > n - off || memcmp(&mp, &canary, sizeof mp) != 0)
			abort();
		return;
	}
	if (mp.has_size != mp2.has_size || mp.size != mp2.size || mp.body != mp2.body ||
	    mp.smtputf8 != mp2.smtputf8 || mp.ret != mp2.ret ||
	    mp.has_envid != mp2.has_envid || strcmp(mp.envid, mp2.envid) != 0 ||
	    mp.has_auth != mp2.has_auth || strcmp(mp.auth, mp2.auth) != 0)
		abort();
	if (mp.has_size && !(ext & EXT_SIZE))
		abort();
	if (mp.body != BODY_UNSPEC && !(ext & EXT_8BITMIME))
		abort();
	if (mp.smtputf8 && !(ext & EXT_SMTPUTF8))
		abort();
	if ((mp.ret != RET_UNSPEC || mp.has_envid) && !(ext & EXT_DSN))
		abort();
	if (mp.has_auth && !(ext & EXT_AUTH))
		abort();
	if (mp.has_envid && (strlen(mp.envid) == 0 || strlen(mp.envid) > ENVID_MAX ||
	    !xtext_valid(mp.envid, strlen(mp.envid))))
		abort();
	if (mp.has_auth && strcmp(mp.auth, "<>") != 0 && !xtext_valid(mp.auth, strlen(mp.auth)))
		abort();
	if (n > 0 && in[0] != ' ')
		abort();
}

static void
check_rcpt(const char *in, size_t n, unsigned ext, bool utf8_tx)
{
	struct rcpt_params rp, rp2;
	size_t off = SIZE_MAX, len = SIZE_MAX;
	enum param_err e;

	memset(&rp, 0, sizeof rp);
	memset(&rp2, 0, sizeof rp2);
	e = params_parse_rcpt(in, n, ext, utf8_tx, &rp, &off, &len);
	if (e != params_parse_rcpt(in, n, ext, utf8_tx, &rp2, NULL, NULL))
		abort();
	if (e != PARAM_OK) {
		if (off > n || len > n - off)
			abort();
		return;
	}
	if (rp.notify != rp2.notify || rp.has_orcpt != rp2.has_orcpt ||
	    strcmp(rp.orcpt, rp2.orcpt) != 0)
		abort();
	if ((rp.notify != 0 || rp.has_orcpt) && !(ext & EXT_DSN))
		abort();
	if ((rp.notify & NOTIFY_NEVER) && rp.notify != NOTIFY_NEVER)
		abort();
	if (rp.notify & ~(unsigned)(NOTIFY_NEVER | NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY))
		abort();
	if (rp.has_orcpt) {
		const char *semi = strchr(rp.orcpt, ';');
		if (semi == NULL || semi == rp.orcpt || strlen(rp.orcpt) > ORCPT_MAX ||
		    semi[1] == '\0')
			abort();
		/* Only an SMTPUTF8 transaction's "utf-8" address may be other
		 * than xtext (RFC 6533 §3 utf-8-addr-unitext). */
		if (!xtext_valid(semi + 1, strlen(semi + 1)) &&
		    (!utf8_tx || strncasecmp(rp.orcpt, "utf-8;", 6) != 0))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned ext;
	char *in;
	size_t n;

	if (size < 3)
		return 0;
	ext = (unsigned)data[0] | (unsigned)data[1] << 8;
	n = size - 3;
	in = malloc(n ? n : 1);
	if (in == NULL)
		return 0;
	memcpy(in, data + 3, n);
	if (data[2] & 1)
		check_rcpt(in, n, ext, (data[2] & 2) != 0);
	else
		check_mail(in, n, ext);
	free(in);
	return 0;
}
