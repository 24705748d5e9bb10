/* dkim: RFC 6376 signing, relaxed/relaxed, RSA-SHA256 and Ed25519-SHA256
   (RFC 8463: PureEdDSA over the SHA-256 of the canonical header data).
   The body is hashed line by line as it is canonicalised, so a large
   message costs no copy. */
#include "dkim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "util.h"

struct dkim_key {
	EVP_PKEY *pkey;
	enum dkim_alg alg;
	char domain[256];
	char selector[DKIM_SELECTOR_MAX + 1];
};

/* The fields signed when present (RFC 6376 5.4.1's recommendations). */
static const char *const signed_fields[] = {
	"from", "sender", "reply-to", "subject", "date", "message-id", "to",
	"cc", "mime-version", "content-type", "content-transfer-encoding",
	"content-id", "content-description", "in-reply-to", "references",
	"list-id", "list-help", "list-unsubscribe", "list-subscribe",
	"list-post", "list-owner", "list-archive",
};

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* ---- keys ---- */

static bool
name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || s[0] == '.' || s[0] == '-' ||
	    strstr(s, "..") != NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return false;
	}
	return true;
}

int
dkim_key_load(const char *path, const char *domain, const char *selector,
    struct dkim_key **key_r, char *err, size_t errlen)
{
	struct dkim_key *k;
	EVP_PKEY *pkey;
	FILE *f;

	*key_r = NULL;
	if (!name_ok(domain, 253) || !name_ok(selector, DKIM_SELECTOR_MAX)) {
		snprintf(err, errlen, "bad domain or selector");
		return -1;
	}
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pkey == NULL) {
		snprintf(err, errlen, "%s: not a PEM private key", path);
		return -1;
	}
	k = xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
		k->alg = DKIM_RSA;
		if (EVP_PKEY_get_bits(pkey) < 1024) {
			snprintf(err, errlen, "%s: RSA key too short", path);
			dkim_key_free(&k);
			return -1;
		}
	} else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519) {
		k->alg = DKIM_ED25519;
	} else {
		snprintf(err, errlen, "%s: neither RSA nor Ed25519", path);
		dkim_key_free(&k);
		return -1;
	}
	str_copy(k->domain, domain, sizeof(k->domain));
	for (char *p = k->domain; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	str_copy(k->selector, selector, sizeof(k->selector));
	*key_r = k;
	return 0;
}

void
dkim_key_free(struct dkim_key **key)
{
	if (*key == NULL)
		return;
	EVP_PKEY_free((*key)->pkey);
	free(*key);
	*key = NULL;
}

enum dkim_alg
dkim_key_alg(const struct dkim_key *key)
{
	return key->alg;
}

const char *
dkim_key_selector(const struct dkim_key *key)
{
	return key->selector;
}

const char *
dkim_key_domain(const struct dkim_key *key)
{
	return key->domain;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
dkim_keys_load(const char *data_dir, const char *domain,
    struct dkim_key ***keys_r, size_t *n_r, char *err, size_t errlen)
{
	char dir[4096], lower[256];
	char **names = NULL;
	size_t nn = 0;
	struct dkim_key **keys = NULL;
	size_t n = 0;
	DIR *d;
	struct dirent *de;

	*keys_r = NULL;
	*n_r = 0;
	if (!name_ok(domain, 253)) {
		snprintf(err, errlen, "bad domain");
		return -1;
	}
	str_copy(lower, domain, sizeof(lower));
	for (char *p = lower; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	snprintf(dir, sizeof(dir), "%s/dkim/%s", data_dir, lower);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l <= 8 || strcmp(de->d_name + l - 8, ".private") != 0)
			continue;
		names = xrealloc(names, (nn + 1) * sizeof(char *));
		names[nn++] = xstrndup(de->d_name, l - 8);   /* the selector */
	}
	closedir(d);
	qsort(names, nn, sizeof(char *), cmp_str);
	for (size_t i = 0; i < nn; i++) {
		char path[4400];
		struct dkim_key *k;

		if (strlen(names[i]) > DKIM_SELECTOR_MAX || names[i][0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s.private", dir, names[i]);
		if (dkim_key_load(path, lower, names[i], &k, err, errlen) < 0) {
			dkim_keys_free(keys, n);
			for (size_t j = 0; j < nn; j++)
				free(names[j]);
			free(names);
			return -1;
		}
		keys = xrealloc(keys, (n + 1) * sizeof(*keys));
		keys[n++] = k;
	}
	for (size_t j = 0; j < nn; j++)
		free(names[j]);
	free(names);
	*keys_r = keys;
	*n_r = n;
	return 0;
}

void
dkim_keys_free(struct dkim_key **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dkim_key_free(&keys[i]);
	free(keys);
}

static int
mkdir_one(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

int
dkim_generate(const char *data_dir, const char *domain, const char *selector,
    enum dkim_alg alg, struct dkim_key **key_r, char *err, size_t errlen)
{
	char dir[4096], path[4400], tmp[4500], lower[256];
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	FILE *f = NULL;
	int fd = -1, ret = -1;

	if (key_r != NULL)
		*key_r = NULL;
	if (!name_ok(domain, 253) || !name_ok(selector, DKIM_SELECTOR_MAX)) {
		snprintf(err, errlen, "bad domain or selector");
		return -1;
	}
	str_copy(lower, domain, sizeof(lower));
	for (char *p = lower; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	snprintf(dir, sizeof(dir), "%s/dkim", data_dir);
	if (mkdir_one(dir) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s/dkim/%s", data_dir, lower);
	if (mkdir_one(dir) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s.private", dir, selector);
	snprintf(tmp, sizeof(tmp), "%s/.%s.private.%d", dir, selector,
	    (int)getpid());
	if (access(path, F_OK) == 0) {
		snprintf(err, errlen, "%s exists already (delete it first "
		    "to make a new key)", path);
		return -1;
	}
	ctx = EVP_PKEY_CTX_new_id(alg == DKIM_RSA ? EVP_PKEY_RSA :
	    EVP_PKEY_ED25519, NULL);
	if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 ||
	    (alg == DKIM_RSA &&
	    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, DKIM_RSA_BITS) <= 0) ||
	    EVP_PKEY_keygen(ctx, &pkey) <= 0) {
		snprintf(err, errlen, "key generation failed");
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (!PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) ||
	    fflush(f) != 0 || fsync(fileno(f)) != 0) {
		snprintf(err, errlen, "%s: write failed", tmp);
		goto out;
	}
	fclose(f);
	f = NULL;
	/* link() refuses to replace a key made meanwhile. */
	if (link(tmp, path) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
		fd = -1;
	}
	ret = 0;
	if (key_r != NULL)
		ret = dkim_key_load(path, lower, selector, key_r, err, errlen);
out:
	if (f != NULL)
		fclose(f);
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	return ret;
}

void
dkim_dns_txt(const struct dkim_key *key, struct buf *out)
{
	buf_reset(out);
	if (key->alg == DKIM_RSA) {
		unsigned char *der = NULL;
		int n = i2d_PUBKEY(key->pkey, &der);

		buf_puts(out, "v=DKIM1; k=rsa; p=");
		if (n > 0)
			base64_encode(der, (size_t)n, out);
		OPENSSL_free(der);
	} else {
		unsigned char raw[64];
		size_t n = sizeof(raw);

		buf_puts(out, "v=DKIM1; k=ed25519; p=");
		if (EVP_PKEY_get_raw_public_key(key->pkey, raw, &n) == 1)
			base64_encode(raw, n, out);
	}
}

/* ---- canonicalisation ---- */

void
dkim_canon_header(const char *field, size_t len, struct buf *out)
{
	size_t i = 0, colon;
	bool space = false, any = false;

	/* The name: lower case, WSP before the colon dropped. */
	for (colon = 0; colon < len && field[colon] != ':'; colon++)
		;
	{
		size_t end = colon;
		while (end > 0 && (is_wsp(field[end - 1]) ||
		    field[end - 1] == '\r' || field[end - 1] == '\n'))
			end--;
		for (i = 0; i < end; i++) {
			char c = field[i];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			buf_putc(out, c);
		}
	}
	buf_putc(out, ':');
	/* The value: unfolded, WSP runs to one SP, none at either end. */
	for (i = colon + 1; i < len; i++) {
		char c = field[i];
		if (c == '\r' || c == '\n' || is_wsp(c)) {
			if (c != '\r' && c != '\n')
				space = true;
			continue;
		}
		if (space && any)
			buf_putc(out, ' ');
		space = false;
		any = true;
		buf_putc(out, c);
	}
	buf_append(out, "\r\n", 2);
}

/* Canonicalises body[0..len) and hands the output to emit in pieces;
   trailing empty lines are held back and dropped at the end. */
static void
canon_body(const char *body, size_t len,
    void (*emit)(void *arg, const char *p, size_t n), void *arg)
{
	size_t pos = 0, held = 0;
	struct buf line;

	buf_init(&line);
	while (pos < len) {
		const char *nl = memchr(body + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - body) : len;
		size_t stop = end;
		bool space = false;

		if (stop > pos && body[stop - 1] == '\r')
			stop--;
		buf_reset(&line);
		for (size_t i = pos; i < stop; i++) {
			char c = body[i];
			if (is_wsp(c)) {
				space = true;
				continue;
			}
			if (space)
				buf_putc(&line, ' ');
			space = false;
			buf_putc(&line, c);
		}
		/* Trailing WSP was dropped: space is left unused. */
		if (line.len == 0) {
			held++;
		} else {
			for (; held > 0; held--)
				emit(arg, "\r\n", 2);
			emit(arg, line.data, line.len);
			emit(arg, "\r\n", 2);
		}
		pos = nl != NULL ? end + 1 : len;
	}
	buf_free(&line);
}

static void
emit_buf(void *arg, const char *p, size_t n)
{
	buf_append(arg, p, n);
}

void
dkim_canon_body(const char *body, size_t len, struct buf *out)
{
	canon_body(body, len, emit_buf, out);
}

static void
emit_md(void *arg, const char *p, size_t n)
{
	EVP_DigestUpdate(arg, p, n);
}

/* ---- signing ---- */

struct field {
	const char *p;
	size_t len;         /* including its line end(s) */
	size_t name_len;
};

/* Splits the header into fields; returns the offset of the body. */
static size_t
split_header(const char *msg, size_t len, struct field **fields_r,
    size_t *n_r)
{
	struct field *v = NULL;
	size_t n = 0, pos = 0;

	while (pos < len) {
		const char *nl;
		size_t start = pos, end;

		/* An empty line ends the header. */
		if (msg[pos] == '\n') {
			pos += 1;
			break;
		}
		if (msg[pos] == '\r' && pos + 1 < len && msg[pos + 1] == '\n') {
			pos += 2;
			break;
		}
		/* One field: its line and every continuation line. */
		for (;;) {
			nl = memchr(msg + pos, '\n', len - pos);
			end = nl != NULL ? (size_t)(nl - msg) + 1 : len;
			pos = end;
			if (pos >= len || !is_wsp(msg[pos]))
				break;
		}
		const char *colon = memchr(msg + start, ':', end - start);
		if (colon == NULL)
			continue;   /* not a field: ignored */
		size_t nl_len = (size_t)(colon - (msg + start));
		while (nl_len > 0 && is_wsp(msg[start + nl_len - 1]))
			nl_len--;
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n].p = msg + start;
		v[n].len = end - start;
		v[n].name_len = nl_len;
		n++;
	}
	*fields_r = v;
	*n_r = n;
	return pos;
}

static bool
name_is(const struct field *f, const char *name)
{
	return f->name_len == strlen(name) &&
	    strncasecmp(f->p, name, f->name_len) == 0;
}

/* Appends s folded: a line break before s when the line would pass 76. */
static void
fold_put(struct buf *out, size_t *col, const char *s)
{
	size_t n = strlen(s);

	if (*col + n + 1 > 76 && *col > 1) {
		buf_append(out, "\r\n\t", 3);
		*col = 1;
	} else if (*col > 0) {
		buf_putc(out, ' ');
		(*col)++;
	}
	buf_puts(out, s);
	*col += n;
}

int
dkim_sign(const struct dkim_key *key, const char *msg, size_t len,
    int64_t t, struct buf *out, char *err, size_t errlen)
{
	struct field *fields = NULL;
	size_t nfields = 0, body_off;

	body_off = split_header(msg, len, &fields, &nfields);
	free(fields);
	return dkim_sign_parts(key, msg, body_off, msg + body_off,
	    len - body_off, t, out, err, errlen);
}

/* Hash the canonicalised body with md into bh. */
static int
sign_body_hash(EVP_MD_CTX *md, const char *body, size_t blen,
    unsigned char *bh, unsigned int *bhl)
{
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		return -1;
	canon_body(body, blen, emit_md, md);
	if (EVP_DigestFinal_ex(md, bh, bhl) != 1)
		return -1;
	return 0;
}

/*
 * The signed fields, each instance from the bottom up (RFC 6376
 * 5.4.2), canonicalised into canon, their names listed in h_tag.
 * Returns whether the message has a From field.
 */
static bool
sign_collect_fields(const struct field *fields, size_t nfields,
    struct buf *canon, struct buf *h_tag)
{
	bool has_from = false;

	for (size_t s = 0; s < ARRAY_SIZE(signed_fields); s++) {
		size_t used = 0;
		for (size_t i = nfields; i-- > 0;) {
			if (!name_is(&fields[i], signed_fields[s]))
				continue;
			dkim_canon_header(fields[i].p, fields[i].len, canon);
			if (h_tag->len > 0)
				buf_putc(h_tag, ':');
			buf_puts(h_tag, signed_fields[s]);
			used++;
		}
		if (s == 0) {
			has_from = used > 0;
			/* Once more than present: no From can be added. */
			buf_puts(h_tag, ":from");
		}
	}
	return has_from;
}

/* h= may be long: break it at colons. */
static void
fold_h_tag(struct buf *hdr, size_t *col, struct buf *h_tag)
{
	const char *p;
	bool first = true;

	buf_putc(h_tag, '\0');
	p = h_tag->data;
	while (*p != '\0') {
		const char *c = strchr(p, ':');
		size_t l = c != NULL ? (size_t)(c - p) + 1 : strlen(p);
		char part[64];
		snprintf(part, sizeof(part), "%s%.*s", first ? "h=" : "",
		    (int)l, p);
		if (c == NULL)
			str_copy(part + strlen(part), ";", 2);
		if (first) {
			fold_put(hdr, col, part);
		} else if (*col + strlen(part) > 76) {
			buf_append(hdr, "\r\n\t", 3);
			*col = 1;
			buf_puts(hdr, part);
			*col += strlen(part);
		} else {
			buf_puts(hdr, part);
			*col += strlen(part);
		}
		first = false;
		p += l;
	}
}

/* The DKIM-Signature field with an empty b=, into hdr. */
static void
sign_put_tags(struct buf *hdr, size_t *col, const struct dkim_key *key,
    int64_t t, struct buf *h_tag, const unsigned char *bh, unsigned int bhl)
{
	struct buf tmp;
	char *s;

	buf_init(&tmp);
	buf_puts(hdr, "DKIM-Signature:");
	*col = strlen("DKIM-Signature:");
	fold_put(hdr, col, "v=1;");
	fold_put(hdr, col, key->alg == DKIM_RSA ? "a=rsa-sha256;" :
	    "a=ed25519-sha256;");
	fold_put(hdr, col, "c=relaxed/relaxed;");
	s = xasprintf("d=%s;", key->domain);
	fold_put(hdr, col, s);
	free(s);
	s = xasprintf("s=%s;", key->selector);
	fold_put(hdr, col, s);
	free(s);
	s = xasprintf("t=%lld;", (long long)t);
	fold_put(hdr, col, s);
	free(s);
	fold_h_tag(hdr, col, h_tag);
	buf_puts(&tmp, "bh=");
	base64_encode(bh, bhl, &tmp);
	buf_putc(&tmp, ';');
	buf_putc(&tmp, '\0');
	fold_put(hdr, col, tmp.data);
	fold_put(hdr, col, "b=");
	buf_free(&tmp);
}

/*
 * Sign canon with key into a new *sig of *siglen bytes (the caller
 * frees *sig even on failure); md is reused for Ed25519's prehash.
 */
static int
sign_header_hash(const struct dkim_key *key, EVP_MD_CTX *md,
    const struct buf *canon, unsigned char **sig, size_t *siglen)
{
	unsigned char hh[EVP_MAX_MD_SIZE];
	unsigned int hhl = 0;
	EVP_MD_CTX *sctx;
	int ret = -1;

	if ((sctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (key->alg == DKIM_RSA) {
		if (EVP_DigestSignInit(sctx, NULL, EVP_sha256(), NULL,
		    key->pkey) != 1 ||
		    EVP_DigestSign(sctx, NULL, siglen,
		    (const unsigned char *)canon->data, canon->len) != 1)
			goto out;
		*sig = xmalloc(*siglen);
		if (EVP_DigestSign(sctx, *sig, siglen,
		    (const unsigned char *)canon->data, canon->len) != 1)
			goto out;
	} else {
		/* RFC 8463: Ed25519 signs the SHA-256 of the data. */
		if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(md, canon->data, canon->len) != 1 ||
		    EVP_DigestFinal_ex(md, hh, &hhl) != 1 ||
		    EVP_DigestSignInit(sctx, NULL, NULL, NULL, key->pkey) != 1)
			goto out;
		*siglen = 64;
		*sig = xmalloc(*siglen);
		if (EVP_DigestSign(sctx, *sig, siglen, hh, hhl) != 1)
			goto out;
	}
	ret = 0;
out:
	EVP_MD_CTX_free(sctx);
	return ret;
}

/* b= data folded in pieces (whitespace in b= is ignored). */
static void
fold_b_value(struct buf *hdr, size_t *col, const unsigned char *sig,
    size_t siglen)
{
	struct buf tmp;

	buf_init(&tmp);
	base64_encode(sig, siglen, &tmp);
	for (size_t off = 0; off < tmp.len;) {
		size_t room = *col < 76 ? 76 - *col : 0;
		size_t take = tmp.len - off < room ? tmp.len - off : room;
		if (take == 0) {
			buf_append(hdr, "\r\n\t", 3);
			*col = 1;
			continue;
		}
		buf_append(hdr, tmp.data + off, take);
		*col += take;
		off += take;
	}
	buf_free(&tmp);
}

int
dkim_sign_parts(const struct dkim_key *key, const char *head, size_t hlen,
    const char *body, size_t blen, int64_t t, struct buf *out, char *err,
    size_t errlen)
{
	struct field *fields = NULL;
	size_t nfields = 0, col = 0;
	unsigned char bh[EVP_MAX_MD_SIZE];
	unsigned int bhl = 0;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	EVP_MD_CTX *md = NULL;
	struct buf hdr, canon, h_tag;
	int ret = -1;

	buf_init(&hdr);
	buf_init(&canon);
	buf_init(&h_tag);
	split_header(head, hlen, &fields, &nfields);

	md = EVP_MD_CTX_new();
	if (md == NULL || sign_body_hash(md, body, blen, bh, &bhl) != 0)
		goto fail_crypto;
	if (!sign_collect_fields(fields, nfields, &canon, &h_tag)) {
		snprintf(err, errlen, "the message has no From field");
		goto out;
	}
	sign_put_tags(&hdr, &col, key, t, &h_tag, bh, bhl);
	dkim_canon_header(hdr.data, hdr.len, &canon);
	/* The signature field is hashed without its line end. */
	canon.len -= 2;

	if (sign_header_hash(key, md, &canon, &sig, &siglen) != 0)
		goto fail_crypto;
	fold_b_value(&hdr, &col, sig, siglen);
	buf_append(&hdr, "\r\n", 2);
	buf_append(out, hdr.data, hdr.len);
	ret = 0;
	goto out;
fail_crypto:
	snprintf(err, errlen, "signing failed (OpenSSL)");
out:
	free(sig);
	EVP_MD_CTX_free(md);
	free(fields);
	buf_free(&hdr);
	buf_free(&canon);
	buf_free(&h_tag);
	return ret;
}
