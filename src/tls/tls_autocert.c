/*
 * The out-of-the-box certificate: on first start ehlod creates a
 * self-signed ECDSA P-256 certificate for myhostname so that STARTTLS works
 * without configuration (opportunistic TLS, RFC 3207, does not need a
 * trusted certificate to defeat passive eavesdropping).
 *
 * Files are written as <name>.tmp.<pid> and renamed into place, key first,
 * so a crash never leaves a half-written key or certificate under the real
 * name. An flock on <dir>/.<name>.lock keeps two daemons starting at once
 * from pairing one's key with the other's certificate. The key is created
 * with mode 0600 from the start (O_CREAT with the mode, no chmod window).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/util.h"
#include "lib/xmalloc.h"
#include "tls/tls_int.h"

#define AUTOCERT_DAYS 3650      /* nobody validates it; do not let it expire */
#define AUTOCERT_CN_MAX 64      /* RFC 5280 Appendix A, ub-common-name */

void
tls_append_ssl_errors(struct buf *err)
{
	unsigned long e;
	char line[256];
	bool first = true;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, line, sizeof(line));
		buf_appendf(err, "%s%s", first ? ": " : "; ", line);
		first = false;
	}
}

/*
 * The name becomes part of a file name and of a DNS SAN, so only LDH
 * labels separated by dots are accepted (no '/', no leading '.').
 */
static bool
autocert_name_ok(const char *name)
{
	size_t i, n = strlen(name), label = 0;

	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!ascii_isalnum(c) && c != '-' && c != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

static bool
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	bool ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return false;
	ok = X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

static X509 *
make_cert(EVP_PKEY *key, const char *name)
{
	X509 *x = X509_new();
	X509_NAME *subj;
	ASN1_INTEGER *serial;
	unsigned char rnd[16];
	BIGNUM *bn;
	char *san;
	bool ok;

	if (x == NULL || X509_set_version(x, 2) != 1)
		goto fail;
	/* RFC 5280 4.1.2.2: positive, at most 20 octets; random avoids reuse. */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto fail;
	rnd[0] &= 0x7f;
	rnd[0] |= 0x01;
	bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
	serial = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	BN_free(bn);
	if (serial == NULL)
		goto fail;
	ok = X509_set_serialNumber(x, serial) == 1;
	ASN1_INTEGER_free(serial);
	if (!ok)
		goto fail;
	/* An hour of slack for peers whose clocks are a little behind. */
	if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), (long)AUTOCERT_DAYS * 86400) == NULL)
		goto fail;
	/*
	 * RFC 5280 (Appendix A, ub-common-name) caps a CN at 64 characters, and
	 * OpenSSL refuses a longer one ("string too long"): a myhostname of 65
	 * or more silently left ehlod without TLS. The name is in the
	 * subjectAltName, which is what clients check (RFC 6125 §6.4.4); a
	 * longer name gets its first label (at most 63) as CN, since a
	 * self-signed certificate's issuer, its subject, must not be empty
	 * (RFC 5280 §4.1.2.4).
	 */
	size_t cnlen = strlen(name);
	if (cnlen > AUTOCERT_CN_MAX)
		cnlen = strcspn(name, ".");
	subj = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
	    (const unsigned char *)name, (int)cnlen, -1, 0) != 1 ||
	    X509_set_issuer_name(x, subj) != 1 || X509_set_pubkey(x, key) != 1)
		goto fail;
	if (ascii_ieq(name, "localhost"))
		san = xasprintf("DNS:%s, IP:127.0.0.1", name);
	else
		san = xasprintf("DNS:%s, DNS:localhost, IP:127.0.0.1", name);
	ok = add_ext(x, NID_subject_alt_name, san);
	free(san);
	if (!ok ||
	    !add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(x, NID_ext_key_usage, "serverAuth") ||
	    !add_ext(x, NID_subject_key_identifier, "hash"))
		goto fail;
	if (X509_sign(x, key, EVP_sha256()) == 0)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

/* Writes via a temporary file and rename(2); mode applies from creation. */
static bool
write_atomic(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert, struct buf *err)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd;
	FILE *f;
	bool ok;

	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		buf_appendf(err, "%s: %s", tmp, strerror(errno));
		free(tmp);
		return false;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		buf_appendf(err, "%s: %s", tmp, strerror(errno));
		close(fd);
		goto fail;
	}
	if (key != NULL)
		ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
	else
		ok = PEM_write_X509(f, cert) == 1;
	if (!ok) {
		buf_appendf(err, "%s: cannot write PEM", tmp);
		tls_append_ssl_errors(err);
		fclose(f);
		goto fail;
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		buf_appendf(err, "%s: %s", tmp, strerror(errno));
		fclose(f);
		goto fail;
	}
	if (fclose(f) != 0) {
		buf_appendf(err, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (rename(tmp, path) != 0) {
		buf_appendf(err, "rename %s: %s", path, strerror(errno));
		goto fail;
	}
	free(tmp);
	return true;
fail:
	(void)unlink(tmp);
	free(tmp);
	return false;
}

static bool
generate(const char *certpath, const char *keypath, const char *name, struct buf *err)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert;
	bool ok;

	if (key == NULL) {
		buf_append_str(err, "auto certificate: cannot generate a P-256 key");
		tls_append_ssl_errors(err);
		return false;
	}
	cert = make_cert(key, name);
	if (cert == NULL) {
		buf_appendf(err, "auto certificate: cannot build a certificate for %s", name);
		tls_append_ssl_errors(err);
		EVP_PKEY_free(key);
		return false;
	}
	ok = write_atomic(keypath, 0600, key, NULL, err) &&
	    write_atomic(certpath, 0644, NULL, cert, err);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ok;
}

bool
tls_autocert_ensure(const char *dir, const char *name, char **certpath,
    char **keypath, struct buf *err)
{
	char *crt, *key, *lock;
	int lockfd;
	bool ok = true;

	if (name == NULL || !autocert_name_ok(name)) {
		buf_appendf(err, "auto certificate: invalid host name \"%s\"", name ? name : "");
		return false;
	}
	crt = xasprintf("%s/%s.crt", dir, name);
	key = xasprintf("%s/%s.key", dir, name);
	lock = xasprintf("%s/.%s.lock", dir, name);
	/* O_NOFOLLOW: never create or lock a file a symbolic link names
	 * (ehlod keeps this directory root's; see autocert_dir_safe). */
	lockfd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX) != 0) {
		buf_appendf(err, "auto certificate: %s: %s", lock, strerror(errno));
		ok = false;
	} else {
		/* Made when either is missing; kept when both are regular files;
		 * anything else there (a FIFO would hang the loaders, a link
		 * or a directory is not ours) is an error. */
		struct stat cs, ks;
		bool hc = lstat(crt, &cs) == 0, hk = lstat(key, &ks) == 0;
		if (!hc || !hk)
			ok = generate(crt, key, name, err);
		else if (!S_ISREG(cs.st_mode) || !S_ISREG(ks.st_mode)) {
			buf_appendf(err, "auto certificate: %s or %s is not a regular file", crt, key);
			ok = false;
		}
	}
	if (lockfd >= 0)
		close(lockfd);
	free(lock);
	if (!ok) {
		free(crt);
		free(key);
		return false;
	}
	*certpath = crt;
	*keypath = key;
	return true;
}
