/* dkim_verify: DKIM verification (RFC 6376 6) over OpenSSL. */
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "dkim_verify.h"
#include "util.h"

const char *
dkim_result_str(enum dkim_result r)
{
	switch (r) {
	case DKIM_R_NONE: return "none";
	case DKIM_R_PASS: return "pass";
	case DKIM_R_FAIL: return "fail";
	case DKIM_R_NEUTRAL: return "neutral";
	case DKIM_R_POLICY: return "policy";
	case DKIM_R_TEMPERROR: return "temperror";
	case DKIM_R_PERMERROR: return "permerror";
	}
	return "permerror";
}

static bool
fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
dkim_tags_parse(const char *s, size_t len, struct dkim_tag *tags, size_t max,
    size_t *n_r)
{
	size_t i = 0, n = 0;

	*n_r = 0;
	while (i < len) {
		size_t ns, ne, vs, ve;
		while (i < len && fws(s[i]))
			i++;
		if (i >= len)
			break;
		ns = i;
		while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '_'))
			i++;
		ne = i;
		if (ne == ns || !isalpha((unsigned char)s[ns]) ||
		    ne - ns >= sizeof(tags[0].name))
			return -1;
		while (i < len && fws(s[i]))
			i++;
		if (i >= len || s[i] != '=')
			return -1;
		i++;
		while (i < len && fws(s[i]))
			i++;
		vs = i;
		while (i < len && s[i] != ';') {
			unsigned char c = (unsigned char)s[i];
			if (!(fws((char)c) || (c >= 0x21 && c <= 0x7e && c != ';')))
				return -1;
			i++;
		}
		ve = i;
		while (ve > vs && fws(s[ve - 1]))
			ve--;
		if (n >= max)
			return -1;
		for (size_t k = 0; k < n; k++)
			if (strlen(tags[k].name) == ne - ns &&
			    memcmp(tags[k].name, s + ns, ne - ns) == 0)
				return -1;
		memcpy(tags[n].name, s + ns, ne - ns);
		tags[n].name[ne - ns] = '\0';
		tags[n].v = s + vs;
		tags[n].vlen = ve - vs;
		n++;
		if (i < len)
			i++;   /* the ';' */
	}
	*n_r = n;
	return 0;
}

static const struct dkim_tag *
tag(const struct dkim_tag *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

/* Base64 with FWS inside; -1 if bad or longer than max. */
static int
b64_fws(const char *v, size_t len, unsigned char *out, size_t max,
    size_t *n_r)
{
	struct buf a, b;
	int ret = -1;

	buf_init(&a);
	buf_init(&b);
	for (size_t i = 0; i < len; i++)
		if (!fws(v[i]))
			buf_putc(&a, v[i]);
	if (a.len > 0 && base64_decode(a.data, a.len, &b) == 0 &&
	    b.len <= max) {
		if (out != NULL)
			memcpy(out, b.data, b.len);
		*n_r = b.len;
		ret = 0;
	}
	buf_free(&a);
	buf_free(&b);
	return ret;
}

static int
num(const char *v, size_t len, uint64_t *out)
{
	uint64_t x = 0;

	if (len == 0 || len > 18)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)v[i]))
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return 0;
}

static int
copy_tag(const struct dkim_tag *t, char *out, size_t size)
{
	if (t == NULL || t->vlen == 0 || t->vlen >= size)
		return -1;
	for (size_t i = 0; i < t->vlen; i++)
		out[i] = (char)tolower((unsigned char)t->v[i]);
	out[t->vlen] = '\0';
	return 0;
}

/* v= must be 1; a= one of the two algorithms we verify. */
static int
sig_parse_alg(const struct dkim_tag *t, size_t n, struct dkim_sig *sig,
    char *err, size_t errlen)
{
	const struct dkim_tag *x;

	if ((x = tag(t, n, "v")) == NULL || x->vlen != 1 || x->v[0] != '1') {
		snprintf(err, errlen, "v= missing or not 1");
		return -1;
	}
	if ((x = tag(t, n, "a")) == NULL) {
		snprintf(err, errlen, "a= missing");
		return -1;
	}
	if (x->vlen == 10 && strncasecmp(x->v, "rsa-sha256", 10) == 0)
		sig->alg = DKIM_RSA;
	else if (x->vlen == 14 && strncasecmp(x->v, "ed25519-sha256", 14) == 0)
		sig->alg = DKIM_ED25519;
	else {
		snprintf(err, errlen, "unsupported algorithm");
		return -1;
	}
	return 0;
}

/* c=header[/body]; an absent half stays simple. */
static int
sig_parse_c(const struct dkim_tag *x, struct dkim_sig *sig)
{
	const char *sl = memchr(x->v, '/', x->vlen);
	size_t hl = sl != NULL ? (size_t)(sl - x->v) : x->vlen;
	size_t bl = sl != NULL ? x->vlen - hl - 1 : 0;

	if (hl == 7 && strncasecmp(x->v, "relaxed", 7) == 0)
		sig->hdr_relaxed = true;
	else if (!(hl == 6 && strncasecmp(x->v, "simple", 6) == 0))
		return -1;
	if (sl != NULL) {
		if (bl == 7 && strncasecmp(sl + 1, "relaxed", 7) == 0)
			sig->body_relaxed = true;
		else if (!(bl == 6 && strncasecmp(sl + 1, "simple", 6) == 0))
			return -1;
	}
	return 0;
}

/* i=, after d= is known. */
static int
sig_parse_i(const struct dkim_tag *x, struct dkim_sig *sig, char *err,
    size_t errlen)
{
	const char *at = memchr(x->v, '@', x->vlen);
	size_t dl, ddl;

	if (at == NULL || x->vlen >= sizeof(sig->i)) {
		snprintf(err, errlen, "bad i=");
		return -1;
	}
	memcpy(sig->i, x->v, x->vlen);
	sig->i[x->vlen] = '\0';
	/* i='s domain must be d= or a subdomain of it. */
	at++;
	dl = x->vlen - (size_t)(at - x->v);
	ddl = strlen(sig->d);
	if (!(dl == ddl && strncasecmp(at, sig->d, dl) == 0) &&
	    !(dl > ddl && at[dl - ddl - 1] == '.' &&
	    strncasecmp(at + dl - ddl, sig->d, ddl) == 0)) {
		snprintf(err, errlen, "i= not within d=");
		return -1;
	}
	return 0;
}

/* h=: the colon-separated signed field names, From among them. */
static int
sig_parse_h(const struct dkim_tag *x, struct dkim_sig *sig, char *err,
    size_t errlen)
{
	bool from = false;

	for (size_t i = 0; i < x->vlen;) {
		size_t s = i, e;
		while (i < x->vlen && x->v[i] != ':')
			i++;
		e = i;
		while (s < e && fws(x->v[s]))
			s++;
		while (e > s && fws(x->v[e - 1]))
			e--;
		if (e == s || e - s >= sizeof(sig->h[0]) || sig->nh >= DKIM_H_MAX) {
			snprintf(err, errlen, "bad h=");
			return -1;
		}
		memcpy(sig->h[sig->nh], x->v + s, e - s);
		sig->h[sig->nh][e - s] = '\0';
		sig->nh++;
		if (i < x->vlen)
			i++;
	}
	for (size_t i = 0; i < sig->nh; i++)
		if (strcasecmp(sig->h[i], "from") == 0)
			from = true;
	if (!from) {
		snprintf(err, errlen, "From not signed");
		return -1;
	}
	return 0;
}

/* The optional numeric tags l=, t= and x=. */
static int
sig_parse_numbers(const struct dkim_tag *t, size_t n, struct dkim_sig *sig,
    char *err, size_t errlen)
{
	const struct dkim_tag *x;
	uint64_t u;

	if ((x = tag(t, n, "l")) != NULL) {
		if (num(x->v, x->vlen, &sig->l) < 0) {
			snprintf(err, errlen, "bad l=");
			return -1;
		}
		sig->has_l = true;
	}
	if ((x = tag(t, n, "t")) != NULL) {
		if (num(x->v, x->vlen, &u) < 0) {
			snprintf(err, errlen, "bad t=");
			return -1;
		}
		sig->t = (int64_t)u;
		sig->has_t = true;
	}
	if ((x = tag(t, n, "x")) != NULL) {
		if (num(x->v, x->vlen, &u) < 0 ||
		    (sig->has_t && (int64_t)u < sig->t)) {
			snprintf(err, errlen, "bad x=");
			return -1;
		}
		sig->x = (int64_t)u;
		sig->has_x = true;
	}
	return 0;
}

int
dkim_sig_parse(const char *v, size_t len, struct dkim_sig *sig, char *err,
    size_t errlen)
{
	struct dkim_tag t[DKIM_TAGS_MAX];
	const struct dkim_tag *x;
	size_t n;

	memset(sig, 0, sizeof(*sig));
	if (dkim_tags_parse(v, len, t, DKIM_TAGS_MAX, &n) < 0) {
		snprintf(err, errlen, "bad tag list");
		return -1;
	}
	if (sig_parse_alg(t, n, sig, err, errlen) < 0)
		return -1;
	if ((x = tag(t, n, "c")) != NULL && sig_parse_c(x, sig) < 0) {
		snprintf(err, errlen, "bad c=");
		return -1;
	}
	if (copy_tag(tag(t, n, "d"), sig->d, sizeof(sig->d)) < 0 ||
	    copy_tag(tag(t, n, "s"), sig->s, sizeof(sig->s)) < 0) {
		snprintf(err, errlen, "d= or s= missing or too long");
		return -1;
	}
	if ((x = tag(t, n, "i")) != NULL && sig_parse_i(x, sig, err,
	    errlen) < 0)
		return -1;
	if ((x = tag(t, n, "h")) == NULL) {
		snprintf(err, errlen, "h= missing");
		return -1;
	}
	if (sig_parse_h(x, sig, err, errlen) < 0)
		return -1;
	if ((x = tag(t, n, "bh")) == NULL || b64_fws(x->v, x->vlen, sig->bh,
	    sizeof(sig->bh), &sig->bhlen) < 0) {
		snprintf(err, errlen, "bad bh=");
		return -1;
	}
	if ((x = tag(t, n, "b")) == NULL || b64_fws(x->v, x->vlen, sig->b,
	    sizeof(sig->b), &sig->blen) < 0) {
		snprintf(err, errlen, "bad b=");
		return -1;
	}
	if (sig_parse_numbers(t, n, sig, err, errlen) < 0)
		return -1;
	if ((x = tag(t, n, "q")) != NULL && !(x->vlen >= 7 &&
	    strncasecmp(x->v, "dns/txt", 7) == 0)) {
		snprintf(err, errlen, "unsupported q=");
		return -1;
	}
	return 0;
}

/* The public key of a key record, NULL with err. */
static EVP_PKEY *
key_from_record(const char *txt, size_t len, enum dkim_alg alg, char *err,
    size_t errlen)
{
	struct dkim_tag t[DKIM_TAGS_MAX];
	const struct dkim_tag *x;
	unsigned char raw[4096];
	size_t n, rawlen;
	EVP_PKEY *pk = NULL;
	enum dkim_alg k = DKIM_RSA;

	if (dkim_tags_parse(txt, len, t, DKIM_TAGS_MAX, &n) < 0) {
		snprintf(err, errlen, "bad key record");
		return NULL;
	}
	if ((x = tag(t, n, "v")) != NULL && !(x->vlen == 5 &&
	    memcmp(x->v, "DKIM1", 5) == 0)) {
		snprintf(err, errlen, "key record v= is not DKIM1");
		return NULL;
	}
	if ((x = tag(t, n, "k")) != NULL) {
		if (x->vlen == 3 && strncasecmp(x->v, "rsa", 3) == 0)
			k = DKIM_RSA;
		else if (x->vlen == 7 && strncasecmp(x->v, "ed25519", 7) == 0)
			k = DKIM_ED25519;
		else {
			snprintf(err, errlen, "unknown key type");
			return NULL;
		}
	}
	if (k != alg) {
		snprintf(err, errlen, "key type does not match a=");
		return NULL;
	}
	if ((x = tag(t, n, "h")) != NULL) {
		bool ok = false;
		for (size_t i = 0; i + 6 <= x->vlen; i++)
			if (strncasecmp(x->v + i, "sha256", 6) == 0)
				ok = true;
		if (!ok) {
			snprintf(err, errlen, "key does not allow sha256");
			return NULL;
		}
	}
	if ((x = tag(t, n, "p")) == NULL) {
		snprintf(err, errlen, "key record without p=");
		return NULL;
	}
	if (x->vlen == 0) {
		snprintf(err, errlen, "key revoked");
		return NULL;
	}
	if (b64_fws(x->v, x->vlen, raw, sizeof(raw), &rawlen) < 0) {
		snprintf(err, errlen, "bad p=");
		return NULL;
	}
	if (alg == DKIM_ED25519) {
		if (rawlen != 32 || (pk = EVP_PKEY_new_raw_public_key(
		    EVP_PKEY_ED25519, NULL, raw, rawlen)) == NULL) {
			snprintf(err, errlen, "bad Ed25519 key");
			return NULL;
		}
		return pk;
	}
	{
		const unsigned char *p = raw;
		pk = d2i_PUBKEY(NULL, &p, (long)rawlen);
		if (pk == NULL) {
			p = raw;
			pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)rawlen);
		}
	}
	if (pk == NULL || EVP_PKEY_base_id(pk) != EVP_PKEY_RSA) {
		EVP_PKEY_free(pk);
		snprintf(err, errlen, "bad RSA key");
		return NULL;
	}
	if (EVP_PKEY_bits(pk) < 1024) {
		EVP_PKEY_free(pk);
		snprintf(err, errlen, "RSA key under 1024 bits");
		return NULL;
	}
	return pk;
}

/* Parsed public keys by the exact text of their record. Decoding an RSA key
   through OpenSSL's decoders costs more CPU than checking the signature, and a
   sender signs every message with the same few keys. An entry is found only
   by the whole record text, so a rotated or revoked key (new text from DNS)
   is never answered from here; old entries just age out. Failures are not
   kept (they are cheap to find again). */
#define KEY_CACHE_SLOTS 64
#define KEY_CACHE_MAX_TXT 4096

struct key_ent {
	char *txt;
	size_t len;
	enum dkim_alg alg;
	EVP_PKEY *pk;
	uint64_t used;
};

static struct key_ent key_cache[KEY_CACHE_SLOTS];
static uint64_t key_tick;
static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;

/* A reference to the cached key of that record, or NULL. */
static EVP_PKEY *
key_cache_find(const char *txt, size_t len, enum dkim_alg alg)
{
	EVP_PKEY *pk = NULL;

	pthread_mutex_lock(&key_lock);
	for (size_t i = 0; i < KEY_CACHE_SLOTS; i++) {
		struct key_ent *e = &key_cache[i];
		if (e->pk != NULL && e->alg == alg && e->len == len &&
		    memcmp(e->txt, txt, len) == 0) {
			if (EVP_PKEY_up_ref(e->pk) == 1) {
				pk = e->pk;
				e->used = ++key_tick;
			}
			break;
		}
	}
	pthread_mutex_unlock(&key_lock);
	return pk;
}

/* Keeps pk (the caller keeps its own reference) in the least recently used
   slot. Two threads decoding the same record at once may both store it: the
   second entry is never found and ages out. */
static void
key_cache_put(const char *txt, size_t len, enum dkim_alg alg, EVP_PKEY *pk)
{
	struct key_ent *victim = &key_cache[0];
	char *copy;

	if (len > KEY_CACHE_MAX_TXT || EVP_PKEY_up_ref(pk) != 1)
		return;
	copy = xmalloc(len);
	memcpy(copy, txt, len);
	pthread_mutex_lock(&key_lock);
	for (size_t i = 0; i < KEY_CACHE_SLOTS; i++) {
		if (key_cache[i].pk == NULL) {
			victim = &key_cache[i];
			break;
		}
		if (key_cache[i].used < victim->used)
			victim = &key_cache[i];
	}
	EVP_PKEY_free(victim->pk);
	free(victim->txt);
	*victim = (struct key_ent){ .txt = copy, .len = len, .alg = alg,
	    .pk = pk, .used = ++key_tick };
	pthread_mutex_unlock(&key_lock);
}

/* The key of a record for verifying: from the cache, else decoded (and
   kept). The caller frees its reference. */
static EVP_PKEY *
key_get(const char *txt, size_t len, enum dkim_alg alg, char *err,
    size_t errlen)
{
	EVP_PKEY *pk = key_cache_find(txt, len, alg);

	if (pk != NULL)
		return pk;
	if ((pk = key_from_record(txt, len, alg, err, errlen)) != NULL)
		key_cache_put(txt, len, alg, pk);
	return pk;
}

int
dkim_key_record_check(const char *txt, size_t len, enum dkim_alg alg,
    char *err, size_t errlen)
{
	EVP_PKEY *pk = key_from_record(txt, len, alg, err, errlen);

	if (pk == NULL)
		return -1;
	EVP_PKEY_free(pk);
	return 0;
}

struct hfield {
	const char *p;
	size_t len, nlen;
	bool used;
};

/* Splits the header; returns the body's offset. */
static size_t
fields_of(const char *m, size_t len, struct hfield **f_r, size_t *n_r)
{
	struct hfield *f = NULL;
	size_t n = 0, cap = 0, pos = 0;

	while (pos < len) {
		size_t start = pos, colon;
		const char *nl;
		if (m[pos] == '\r' && pos + 1 < len && m[pos + 1] == '\n') {
			pos += 2;
			break;
		}
		if (m[pos] == '\n') {
			pos++;
			break;
		}
		for (;;) {
			nl = memchr(m + pos, '\n', len - pos);
			pos = nl != NULL ? (size_t)(nl - m) + 1 : len;
			if (pos >= len || (m[pos] != ' ' && m[pos] != '\t'))
				break;
		}
		for (colon = start; colon < pos && m[colon] != ':'; colon++)
			;
		if (colon >= pos)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			f = xrealloc(f, cap * sizeof(*f));
		}
		size_t nl2 = colon - start;
		while (nl2 > 0 && (m[start + nl2 - 1] == ' ' ||
		    m[start + nl2 - 1] == '\t'))
			nl2--;
		f[n].p = m + start;
		f[n].len = pos - start;
		f[n].nlen = nl2;
		f[n].used = false;
		n++;
	}
	*f_r = f;
	*n_r = n;
	return pos;
}

static void
canon_field(bool relaxed, const char *p, size_t len, struct buf *out)
{
	if (relaxed) {
		dkim_canon_header(p, len, out);
		return;
	}
	buf_append(out, p, len);
	if (len < 2 || p[len - 2] != '\r' || p[len - 1] != '\n') {
		/* LF-only or unterminated: the stored form is CRLF. */
		if (len > 0 && p[len - 1] == '\n')
			out->len--;
		buf_append(out, "\r\n", 2);
	}
}

/* ---- the streaming body hash ---- */

struct dkim_bh {
	bool relaxed, has_l;
	uint64_t l;
	uint64_t total;         /* canonical bytes so far */
	EVP_MD_CTX *md;
	bool ok;
	/* Across pieces: a CR that may end the line, whitespace not yet
	   written (relaxed), whether the line has content, empty lines held
	   back (trailing empty lines are dropped), whether anything was
	   written at all. */
	bool cr, space, in_line, any;
	size_t held;
	size_t olen;
	char out[4096];
};

static void
bh_flush(struct dkim_bh *h)
{
	if (h->olen > 0 && EVP_DigestUpdate(h->md, h->out, h->olen) != 1)
		h->ok = false;
	h->olen = 0;
}

/* Canonical bytes p[0..n) in bulk: counted always, hashed up to l. */
static void
bh_write(struct dkim_bh *h, const char *p, size_t n)
{
	uint64_t take = n;

	h->any = true;
	if (h->has_l)
		take = h->total >= h->l ? 0 : h->l - h->total < n ?
		    h->l - h->total : n;
	h->total += n;
	while (take > 0) {
		size_t k = sizeof(h->out) - h->olen;

		if (k > take)
			k = (size_t)take;
		memcpy(h->out + h->olen, p, k);
		h->olen += k;
		p += k;
		take -= k;
		if (h->olen == sizeof(h->out))
			bh_flush(h);
	}
}

/* Content bytes of the line (the held empty lines come first). */
static void
bh_content(struct dkim_bh *h, const char *p, size_t n)
{
	if (!h->in_line) {
		for (; h->held > 0; h->held--)
			bh_write(h, "\r\n", 2);
		h->in_line = true;
	}
	/* Relaxed: a run of whitespace before content, leading ones too,
	   is one space (what dkim_canon_body, the signer's, writes). */
	if (h->space)
		bh_write(h, " ", 1);
	h->space = false;
	bh_write(h, p, n);
}

/* How many bytes from p are plain content (no line end, no whitespace
   that relaxed folds). */
static size_t
bh_span(const struct dkim_bh *h, const char *p, size_t n)
{
	size_t i = 0;

	if (h->relaxed)
		while (i < n && p[i] != '\r' && p[i] != '\n' && p[i] != ' ' &&
		    p[i] != '\t')
			i++;
	else
		while (i < n && p[i] != '\r' && p[i] != '\n')
			i++;
	return i;
}

static void
bh_end_line(struct dkim_bh *h)
{
	if (h->in_line) {
		bh_write(h, "\r\n", 2);
	} else {
		h->held++;
	}
	h->in_line = false;
	h->space = false;
}

struct dkim_bh *
dkim_bh_new(bool relaxed, bool has_l, uint64_t l)
{
	struct dkim_bh *h = xcalloc(1, sizeof(*h));

	h->relaxed = relaxed;
	h->has_l = has_l;
	h->l = l;
	h->ok = (h->md = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) == 1;
	return h;
}

void
dkim_bh_update(struct dkim_bh *h, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		size_t k;

		if (h->cr) {
			h->cr = false;
			if (c == '\n') {
				bh_end_line(h);
				continue;
			}
			bh_content(h, "\r", 1);
		}
		if (c == '\r')
			h->cr = true;
		else if (c == '\n')
			bh_end_line(h);
		else if (h->relaxed && (c == ' ' || c == '\t'))
			h->space = true;
		else {
			k = bh_span(h, p + i, n - i);
			bh_content(h, p + i, k);
			i += k - 1;
		}
	}
}

int
dkim_bh_final(struct dkim_bh *h, unsigned char out[32])
{
	unsigned int len = 0;

	/* A CR at the very end: relaxed drops it with the line's end,
	   simple keeps it as content. */
	if (h->cr && !h->relaxed)
		bh_content(h, "\r", 1);
	h->cr = false;
	if (h->in_line)
		bh_end_line(h);
	/* Simple: an empty body is one CRLF; relaxed: nothing. */
	if (!h->relaxed && !h->any) {
		bh_write(h, "\r\n", 2);
	}
	bh_flush(h);
	if (!h->ok || (h->has_l && h->total < h->l))
		return -1;
	if (EVP_DigestFinal_ex(h->md, out, &len) != 1 || len != 32)
		return -1;
	return 0;
}

void
dkim_bh_free(struct dkim_bh **hp)
{
	if (*hp == NULL)
		return;
	EVP_MD_CTX_free((*hp)->md);
	free(*hp);
	*hp = NULL;
}

/* The signature field with the value of b= removed. */
static void
strip_b(const char *f, size_t len, struct buf *out)
{
	const char *colon = memchr(f, ':', len);
	size_t i = colon != NULL ? (size_t)(colon - f) + 1 : len;

	buf_append(out, f, i);
	while (i < len) {
		size_t ts = i;
		/* A tag: FWS name FWS = value ; */
		while (i < len && fws(f[i]))
			i++;
		size_t ns = i;
		while (i < len && (isalnum((unsigned char)f[i]) || f[i] == '_'))
			i++;
		bool is_b = i - ns == 1 && f[ns] == 'b';
		while (i < len && fws(f[i]))
			i++;
		if (is_b && i < len && f[i] == '=') {
			i++;
			buf_append(out, f + ts, i - ts);
			while (i < len && f[i] != ';')
				i++;
			/* Keep the line end of a last tag. */
			if (i == len) {
				size_t e = len;
				while (e > ts && (f[e - 1] == '\r' ||
				    f[e - 1] == '\n'))
					e--;
				buf_append(out, f + e, len - e);
			}
			continue;
		}
		while (i < len && f[i] != ';')
			i++;
		if (i < len)
			i++;
		buf_append(out, f + ts, i - ts);
	}
}

enum dkim_result
dkim_verify(const char *field, size_t flen, const char *msg, size_t len,
    const char *txt, size_t tlen, int64_t now, struct dkim_sig *sig_r,
    char *err, size_t errlen)
{
	struct dkim_sig sigbuf, *sig = sig_r != NULL ? sig_r : &sigbuf;
	const char *colon = memchr(field, ':', flen);
	struct hfield *f = NULL;
	size_t nf = 0, boff;
	struct buf hdr, tmp;
	struct dkim_bh *bhash = NULL;
	unsigned char bh[32], hh[EVP_MAX_MD_SIZE];
	unsigned int hhl = 0;
	EVP_PKEY *pk = NULL;
	EVP_MD_CTX *ctx = NULL;
	enum dkim_result r = DKIM_R_FAIL;

	err[0] = '\0';
	if (colon == NULL || dkim_sig_parse(colon + 1,
	    flen - (size_t)(colon + 1 - field), sig, err, errlen) < 0)
		return DKIM_R_NEUTRAL;
	if (sig->has_x && now > sig->x) {
		snprintf(err, errlen, "signature expired");
		return DKIM_R_NEUTRAL;
	}
	if ((pk = key_get(txt, tlen, sig->alg, err, errlen)) == NULL)
		return DKIM_R_PERMERROR;
	buf_init(&hdr);
	buf_init(&tmp);
	boff = fields_of(msg, len, &f, &nf);

	/* Body hash, straight from the message: no canonical copy. */
	bhash = dkim_bh_new(sig->body_relaxed, sig->has_l, sig->l);
	dkim_bh_update(bhash, msg + boff, len - boff);
	if (dkim_bh_final(bhash, bh) < 0) {
		snprintf(err, errlen, "l= beyond the body");
		goto out;
	}
	if (sig->bhlen != 32 || memcmp(bh, sig->bh, 32) != 0) {
		snprintf(err, errlen, "body hash mismatch");
		goto out;
	}

	/* Header hash input: the h= fields bottom-up, then this field. */
	for (size_t i = 0; i < sig->nh; i++) {
		size_t hl = strlen(sig->h[i]);
		for (size_t k = nf; k-- > 0;) {
			if (f[k].used || f[k].nlen != hl ||
			    strncasecmp(f[k].p, sig->h[i], hl) != 0)
				continue;
			f[k].used = true;
			canon_field(sig->hdr_relaxed, f[k].p, f[k].len, &hdr);
			break;
		}
	}
	strip_b(field, flen, &tmp);
	canon_field(sig->hdr_relaxed, tmp.data, tmp.len, &hdr);
	hdr.len -= 2;   /* without its line end */

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto crypto;
	if (sig->alg == DKIM_RSA) {
		if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pk) != 1)
			goto crypto;
		if (EVP_DigestVerify(ctx, sig->b, sig->blen,
		    (const unsigned char *)hdr.data, hdr.len) == 1)
			r = DKIM_R_PASS;
		else
			snprintf(err, errlen, "signature mismatch");
	} else {
		if (EVP_Digest(hdr.data, hdr.len, hh, &hhl, EVP_sha256(),
		    NULL) != 1)
			goto crypto;
		if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) != 1)
			goto crypto;
		if (EVP_DigestVerify(ctx, sig->b, sig->blen, hh, hhl) == 1)
			r = DKIM_R_PASS;
		else
			snprintf(err, errlen, "signature mismatch");
	}
	goto out;
crypto:
	snprintf(err, errlen, "crypto failure");
	r = DKIM_R_TEMPERROR;
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	free(f);
	dkim_bh_free(&bhash);
	buf_free(&hdr);
	buf_free(&tmp);
	return r;
}
