/* srs: Sender Rewriting Scheme encode/decode (see srs.h for the format). */
#include "srs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util.h"

#define HASH_CHARS 6

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static int
b32_val(char c)
{
	if (c >= 'a' && c <= 'z')
		c = (char)(c - 'a' + 'A');
	const char *p = c != '\0' ? strchr(b32, c) : NULL;
	return p != NULL ? (int)(p - b32) : -1;
}

int
srs_key_load(const char *data_dir, unsigned char key[SRS_KEY_LEN],
    char *err, size_t errlen)
{
	char path[4096], tmp[4200];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/srs.key", data_dir);
	for (int tries = 0; tries < 2; tries++) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			n = read(fd, key, SRS_KEY_LEN);
			close(fd);
			if (n != SRS_KEY_LEN) {
				snprintf(err, errlen, "%s: not a %d-byte key",
				    path, SRS_KEY_LEN);
				return -1;
			}
			return 0;
		}
		if (errno != ENOENT) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
		/* Make one; link() lets exactly one concurrent maker win. */
		unsigned char fresh[SRS_KEY_LEN];
		randombytes_buf(fresh, sizeof(fresh));
		snprintf(tmp, sizeof(tmp), "%s/.srs.key.%d", data_dir,
		    (int)getpid());
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
			return -1;
		}
		if (write(fd, fresh, sizeof(fresh)) != (ssize_t)sizeof(fresh) ||
		    fsync(fd) != 0) {
			snprintf(err, errlen, "%s: write failed", tmp);
			close(fd);
			unlink(tmp);
			return -1;
		}
		close(fd);
		if (link(tmp, path) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			unlink(tmp);
			return -1;
		}
		unlink(tmp);
		sodium_memzero(fresh, sizeof(fresh));
		fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	snprintf(err, errlen, "%s: cannot create", path);
	return -1;
}

bool
srs_is_srs(const char *address)
{
	return strncasecmp(address, "SRS0=", 5) == 0 ||
	    strncasecmp(address, "SRS1=", 5) == 0;
}

/* HASH_CHARS base32 characters of HMAC-SHA256(key, lowercase(data)). */
static void
srs_hash(const unsigned char key[SRS_KEY_LEN], const char *data, size_t len,
    char out[HASH_CHARS + 1])
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	uint64_t bits = 0;

	crypto_auth_hmacsha256_init(&st, key, SRS_KEY_LEN);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		crypto_auth_hmacsha256_update(&st, &c, 1);
	}
	crypto_auth_hmacsha256_final(&st, mac);
	for (int i = 0; i < 5; i++)
		bits = bits << 8 | mac[i];
	for (int i = 0; i < HASH_CHARS; i++)
		out[i] = b32[(bits >> (35 - 5 * i)) & 31];
	out[HASH_CHARS] = '\0';
}

static bool
hash_ok(const unsigned char key[SRS_KEY_LEN], const char *given, size_t glen,
    const char *data, size_t len)
{
	char want[HASH_CHARS + 1];
	unsigned diff = 0;

	if (glen != HASH_CHARS)
		return false;
	srs_hash(key, data, len, want);
	for (size_t i = 0; i < HASH_CHARS; i++) {
		char c = given[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		diff |= (unsigned)(c ^ want[i]);
	}
	return diff == 0;
}

static unsigned
day_of(int64_t now)
{
	return (unsigned)((now / 86400) % 1024);
}

int
srs_forward(const unsigned char key[SRS_KEY_LEN], const char *sender,
    const char *our_domain, int64_t now, char *out, size_t outlen)
{
	const char *at = strrchr(sender, '@');
	char hash[HASH_CHARS + 1], data[600];
	size_t llen;
	int n;

	if (at == NULL || at == sender || at[1] == '\0' ||
	    our_domain[0] == '\0' || strlen(sender) > SRS_ADDRESS_MAX)
		return -1;
	llen = (size_t)(at - sender);
	if (strncasecmp(sender, "SRS1=", 5) == 0) {
		/* SRS1=h=first==rest@x -> SRS1=H=first==rest@ours */
		const char *p = sender + 5, *eq = memchr(p, '=', llen - 5);
		if (eq == NULL)
			return -1;
		const char *tail = eq + 1;   /* "first==rest" */
		size_t tlen = (size_t)(at - tail);
		n = snprintf(data, sizeof(data), "%.*s", (int)tlen, tail);
		if (n < 0 || (size_t)n >= sizeof(data))
			return -1;
		srs_hash(key, data, (size_t)n, hash);
		n = snprintf(out, outlen, "SRS1=%s=%.*s@%s", hash, (int)tlen,
		    tail, our_domain);
	} else if (strncasecmp(sender, "SRS0=", 5) == 0) {
		/* SRS0 rest@fwd -> SRS1=H=fwd==rest@ours ("=rest" kept
		   after the double '=', as libsrs2 does). */
		const char *rest = sender + 4;   /* "=h=TT=d=l" */
		size_t rlen = llen - 4;
		n = snprintf(data, sizeof(data), "%s=%.*s", at + 1, (int)rlen,
		    rest);
		if (n < 0 || (size_t)n >= sizeof(data))
			return -1;
		srs_hash(key, data, (size_t)n, hash);
		n = snprintf(out, outlen, "SRS1=%s=%s=%.*s@%s", hash, at + 1,
		    (int)rlen, rest, our_domain);
	} else {
		char tt[3] = { b32[day_of(now) >> 5], b32[day_of(now) & 31],
		    '\0' };
		n = snprintf(data, sizeof(data), "%s%s%.*s", tt, at + 1,
		    (int)llen, sender);
		if (n < 0 || (size_t)n >= sizeof(data))
			return -1;
		srs_hash(key, data, (size_t)n, hash);
		n = snprintf(out, outlen, "SRS0=%s=%s=%s=%.*s@%s", hash, tt,
		    at + 1, (int)llen, sender, our_domain);
	}
	if (n < 0 || (size_t)n >= outlen || (size_t)n > SRS_ADDRESS_MAX)
		return -1;
	return 0;
}

int
srs_reverse(const unsigned char key[SRS_KEY_LEN], const char *address,
    int64_t now, char *out, size_t outlen)
{
	const char *at = strrchr(address, '@');
	char data[600];
	int n;

	if (!srs_is_srs(address))
		return 1;
	if (at == NULL || strlen(address) > SRS_ADDRESS_MAX)
		return -1;
	if (address[3] == '1') {
		/* SRS1=H=first==rest@ours -> SRS0=rest@first */
		const char *h = address + 5;
		const char *eq = memchr(h, '=', (size_t)(at - h));
		if (eq == NULL)
			return -1;
		const char *first = eq + 1;
		const char *dbl = NULL;
		for (const char *p = first; p + 1 < at; p++)
			if (p[0] == '=' && p[1] == '=') {
				dbl = p;
				break;
			}
		if (dbl == NULL || dbl == first)
			return -1;
		n = snprintf(data, sizeof(data), "%.*s", (int)(at - first),
		    first);
		if (n < 0 || (size_t)n >= sizeof(data) ||
		    !hash_ok(key, h, (size_t)(eq - h), data, (size_t)n))
			return -1;
		/* dbl + 1 is "=rest": SRS0 + "=rest". */
		n = snprintf(out, outlen, "SRS0%.*s@%.*s", (int)(at - dbl - 1),
		    dbl + 1, (int)(dbl - first), first);
		if (n < 0 || (size_t)n >= outlen)
			return -1;
		return 0;
	}
	/* SRS0=H=TT=domain=local@ours -> local@domain */
	const char *h = address + 5, *f[3];
	const char *p = h;
	for (int i = 0; i < 3; i++) {
		const char *eq = memchr(p, '=', (size_t)(at - p));
		if (eq == NULL)
			return -1;
		f[i] = eq;
		p = eq + 1;
	}
	const char *tt = f[0] + 1, *dom = f[1] + 1, *local = f[2] + 1;
	if (f[1] - tt != 2 || f[2] == dom || local == at)
		return -1;
	int t0 = b32_val(tt[0]), t1 = b32_val(tt[1]);
	if (t0 < 0 || t1 < 0)
		return -1;
	unsigned stamp = (unsigned)(t0 << 5 | t1);
	unsigned age = (day_of(now) + 1024 - stamp) % 1024;
	if (age > SRS_MAX_AGE_DAYS)
		return -1;
	n = snprintf(data, sizeof(data), "%.2s%.*s%.*s", tt,
	    (int)(f[2] - dom), dom, (int)(at - local), local);
	if (n < 0 || (size_t)n >= sizeof(data) ||
	    !hash_ok(key, h, (size_t)(f[0] - h), data, (size_t)n))
		return -1;
	n = snprintf(out, outlen, "%.*s@%.*s", (int)(at - local), local,
	    (int)(f[2] - dom), dom);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return 0;
}
