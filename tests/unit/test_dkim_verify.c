/* Unit tests of common/dkim_verify.c: the tag-list parser, signature
   parsing, and verification of signatures made by common/dkim.c with both
   algorithms (pass; a changed body, a changed signed field, an added From:
   fail; expired x=; key records that are revoked, of the wrong type, or RSA
   under 1024 bits); the parsed-key cache answering only for the exact
   record text, across rotation and eviction. Signatures made by dkimpy (simple canonicalisation,
   l=) are checked end to end in tests/proto/inbound/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "dkim.h"
#include "dkim_verify.h"
#include "util.h"

static void
test_tags(void **state)
{
	struct dkim_tag t[8];
	size_t n;
	const char *s = " v = 1 ;a=rsa-sha256;\r\n\tb= ab cd ; x=;";

	(void)state;
	assert_int_equal(dkim_tags_parse(s, strlen(s), t, 8, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(t[0].name, "v");
	assert_int_equal(t[0].vlen, 1);
	assert_memory_equal(t[2].v, "ab cd", 5);
	assert_int_equal(t[3].vlen, 0);
	assert_int_equal(dkim_tags_parse("a=1;a=2", 7, t, 8, &n), -1);
	assert_int_equal(dkim_tags_parse("a", 1, t, 8, &n), -1);
	assert_int_equal(dkim_tags_parse("=x", 2, t, 8, &n), -1);
	assert_int_equal(dkim_tags_parse("1a=x", 4, t, 8, &n), -1);
	assert_int_equal(dkim_tags_parse("a=1;b=2;c=3", 11, t, 2, &n), -1);
	assert_int_equal(dkim_tags_parse("", 0, t, 2, &n), 0);
	assert_int_equal(n, 0);
}

static const char msg[] =
    "From: Alice <alice@example.test>\r\n"
    "To: bob@example.org\r\n"
    "Subject: hello\r\n"
    "Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
    "\r\n"
    "Hello  Bob.\r\n"
    "\r\n";

/* Signs msg with key; returns the signed message (signature on top) and
   the signature field's length. */
static char *
signed_msg(struct dkim_key *key, const char *m, int64_t t, size_t *flen)
{
	struct buf sig;
	char err[256], *out;

	buf_init(&sig);
	assert_int_equal(dkim_sign(key, m, strlen(m), t, &sig, err,
	    sizeof(err)), 0);
	*flen = sig.len;
	out = xasprintf("%.*s%s", (int)sig.len, sig.data, m);
	buf_free(&sig);
	return out;
}

static enum dkim_result
verify(const char *sm, size_t flen, const char *txt, int64_t now, char *err)
{
	return dkim_verify(sm, flen, sm, strlen(sm), txt, strlen(txt), now,
	    NULL, err, 256);
}

static char *
replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	assert_non_null(p);
	return xasprintf("%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
}

static void
one_alg(const char *dir, enum dkim_alg alg, const char *sel)
{
	struct dkim_key *key;
	struct buf txt;
	char err[256], *sm, *bad;
	size_t flen;

	assert_int_equal(dkim_generate(dir, "example.test", sel, alg, &key,
	    err, sizeof(err)), 0);
	buf_init(&txt);
	dkim_dns_txt(key, &txt);
	buf_putc(&txt, '\0');
	sm = signed_msg(key, msg, 1000, &flen);

	assert_int_equal(verify(sm, flen, txt.data, 2000, err), DKIM_R_PASS);
	/* A changed body. */
	bad = replace(sm, "Hello  Bob.", "Hello  Eve.");
	assert_int_equal(verify(bad, flen, txt.data, 2000, err), DKIM_R_FAIL);
	assert_string_equal(err, "body hash mismatch");
	free(bad);
	/* Whitespace changes survive relaxed canonicalisation. */
	bad = replace(sm, "Hello  Bob.", "Hello Bob.  ");
	assert_int_equal(verify(bad, flen, txt.data, 2000, err), DKIM_R_PASS);
	free(bad);
	/* A changed signed field. */
	bad = replace(sm, "Subject: hello", "Subject: hellO");
	assert_int_equal(verify(bad, flen, txt.data, 2000, err), DKIM_R_FAIL);
	assert_string_equal(err, "signature mismatch");
	free(bad);
	/* A From: added below (h= names From once more than present). */
	bad = replace(sm, "Subject: hello\r\n",
	    "Subject: hello\r\nFrom: mallory@evil.test\r\n");
	assert_int_equal(verify(bad, flen, txt.data, 2000, err), DKIM_R_FAIL);
	free(bad);
	/* Revoked, and the other algorithm's record. */
	assert_int_equal(verify(sm, flen, "v=DKIM1; p=", 2000, err),
	    DKIM_R_PERMERROR);
	assert_int_equal(verify(sm, flen, alg == DKIM_RSA ?
	    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	    : "v=DKIM1; k=rsa; p=AAAA", 2000, err), DKIM_R_PERMERROR);
	free(sm);
	buf_free(&txt);
	dkim_key_free(&key);
}

static void
test_roundtrip(void **state)
{
	char dir[] = "/tmp/pr-dkimv-XXXXXX", *cmd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	one_alg(dir, DKIM_RSA, "rsa");
	one_alg(dir, DKIM_ED25519, "ed");
	cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* The key cache (keyed by record text) must never answer a record with a
   key decoded from another: rotate a selector's key, then push the first
   key's entry out with more records than the cache holds. */
#define ROT_KEYS 70
static void
test_key_cache(void **state)
{
	char dir[] = "/tmp/pr-dkimc-XXXXXX", err[256], sel[16], *cmd;
	struct dkim_key *key;
	struct buf txt[ROT_KEYS];
	char *sm[ROT_KEYS];
	size_t flen[ROT_KEYS];

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (int i = 0; i < ROT_KEYS; i++) {
		snprintf(sel, sizeof(sel), "s%d", i);
		assert_int_equal(dkim_generate(dir, "example.test", sel,
		    DKIM_ED25519, &key, err, sizeof(err)), 0);
		buf_init(&txt[i]);
		dkim_dns_txt(key, &txt[i]);
		buf_putc(&txt[i], '\0');
		sm[i] = signed_msg(key, msg, 1000, &flen[i]);
		dkim_key_free(&key);
	}
	/* Rotation: the same message checked against the next key's record
	   (same length, other key) fails, against its own it passes. */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < ROT_KEYS; i++) {
			assert_int_equal(verify(sm[i], flen[i], txt[i].data,
			    2000, err), DKIM_R_PASS);
			assert_int_equal(verify(sm[i], flen[i],
			    txt[(i + 1) % ROT_KEYS].data, 2000, err),
			    DKIM_R_FAIL);
			assert_string_equal(err, "signature mismatch");
		}
	}
	for (int i = 0; i < ROT_KEYS; i++) {
		free(sm[i]);
		buf_free(&txt[i]);
	}
	cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void
test_sig_tags(void **state)
{
	struct dkim_sig sig;
	char err[128];
	const char *good = " v=1; a=rsa-sha256; d=Example.TEST; s=sel;"
	    " c=simple/relaxed; h=From : To; bh=YWJj; b=YW Jj\r\n\tZA==;"
	    " l=10; t=5; x=100; i=u@sub.example.test";

	(void)state;
	assert_int_equal(dkim_sig_parse(good, strlen(good), &sig, err,
	    sizeof(err)), 0);
	assert_string_equal(sig.d, "example.test");
	assert_false(sig.hdr_relaxed);
	assert_true(sig.body_relaxed);
	assert_int_equal(sig.nh, 2);
	assert_string_equal(sig.h[1], "To");
	assert_int_equal(sig.blen, 4);
	assert_true(sig.has_l);
	assert_int_equal(sig.l, 10);
	static const char *bad[] = {
		"v=2; a=rsa-sha256; d=x; s=y; h=from; bh=YWJj; b=YWJj",
		"v=1; a=rsa-sha1; d=x; s=y; h=from; bh=YWJj; b=YWJj",
		"v=1; a=rsa-sha256; s=y; h=from; bh=YWJj; b=YWJj",
		"v=1; a=rsa-sha256; d=x; s=y; h=to; bh=YWJj; b=YWJj",
		"v=1; a=rsa-sha256; d=x; s=y; h=from; bh=Y; b=YWJj",
		"v=1; a=rsa-sha256; d=x; s=y; h=from; bh=YWJj; b=YWJj; t=9; x=8",
		"v=1; a=rsa-sha256; d=x.test; s=y; h=from; bh=YWJj; b=YWJj; "
		    "i=a@other.test",
		"v=1; a=rsa-sha256; d=x; s=y; h=from; bh=YWJj; b=YWJj; c=odd",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (dkim_sig_parse(bad[i], strlen(bad[i]), &sig, err,
		    sizeof(err)) == 0)
			fail_msg("accepted: %s", bad[i]);
}

static void
test_expired_and_short_rsa(void **state)
{
	char dir[] = "/tmp/pr-dkimv-XXXXXX", *cmd, err[256];
	struct dkim_key *key;
	struct buf txt;
	EVP_PKEY *small;
	unsigned char *der = NULL;
	int dlen;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(dkim_generate(dir, "example.test", "rsa", DKIM_RSA,
	    &key, err, sizeof(err)), 0);
	/* x= expiry: a signature with x= in the past is neutral. */
	{
		struct buf sig;
		buf_init(&sig);
		buf_init(&txt);
		dkim_dns_txt(key, &txt);
		buf_putc(&txt, '\0');
		assert_int_equal(dkim_sign(key, msg, strlen(msg), 1000, &sig,
		    err, sizeof(err)), 0);
		buf_putc(&sig, '\0');
		/* Insert x= right after v=1; (the b= then no longer matches,
		   but expiry is checked first). */
		char *f = replace(sig.data, "v=1;", "v=1; x=1500;");
		char *sm = xasprintf("%s%s", f, msg);
		assert_int_equal(verify(sm, strlen(f), txt.data, 2000, err),
		    DKIM_R_NEUTRAL);
		assert_string_equal(err, "signature expired");
		assert_int_equal(verify(sm, strlen(f), txt.data, 1200, err),
		    DKIM_R_FAIL);
		free(f);
		free(sm);
		buf_free(&sig);
		buf_free(&txt);
	}
	/* RSA under 1024 bits: the key record is refused. */
	small = EVP_RSA_gen(768);
	assert_non_null(small);
	dlen = i2d_PUBKEY(small, &der);
	assert_true(dlen > 0);
	buf_init(&txt);
	buf_puts(&txt, "v=DKIM1; k=rsa; p=");
	base64_encode(der, (size_t)dlen, &txt);
	assert_int_equal(dkim_key_record_check(txt.data, txt.len, DKIM_RSA,
	    err, sizeof(err)), -1);
	assert_string_equal(err, "RSA key under 1024 bits");
	buf_free(&txt);
	OPENSSL_free(der);
	EVP_PKEY_free(small);
	dkim_key_free(&key);
	cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}


/* ---- the streaming body hash ---- */

/* The simple canonicalisation written the obvious way, on the whole
   body: CRLF line ends, trailing empty lines dropped, empty body CRLF. */
static void
ref_simple(const char *b, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r'))
			buf_putc(out, '\r');
		buf_putc(out, b[i]);
	}
	if (out->len < 2 || out->data[out->len - 1] != '\n')
		buf_append(out, "\r\n", 2);
	while (out->len >= 4 &&
	    memcmp(out->data + out->len - 4, "\r\n\r\n", 4) == 0)
		out->len -= 2;
}

/* Hash of b[0..len) fed in pieces of the given size (0: at random). */
static int
stream_hash(bool relaxed, bool has_l, uint64_t l, const char *b, size_t len,
    size_t piece, unsigned char out[32])
{
	struct dkim_bh *h = dkim_bh_new(relaxed, has_l, l);
	size_t pos = 0;
	int r;

	while (pos < len) {
		size_t n = piece > 0 ? piece : 1 + (size_t)(rand() % 7);

		if (n > len - pos)
			n = len - pos;
		dkim_bh_update(h, b + pos, n);
		pos += n;
	}
	r = dkim_bh_final(h, out);
	dkim_bh_free(&h);
	assert_null(h);
	return r;
}

static void
check_body(const char *b, size_t len)
{
	for (int relaxed = 0; relaxed < 2; relaxed++) {
		struct buf ref;
		unsigned char want[32], got[32];
		unsigned int wl = 0;

		buf_init(&ref);
		if (relaxed)
			dkim_canon_body(b, len, &ref);
		else
			ref_simple(b, len, &ref);
		assert_int_equal(EVP_Digest(ref.data != NULL ? ref.data : "",
		    ref.len, want, &wl, EVP_sha256(), NULL), 1);
		for (size_t piece = 0; piece < 5; piece++) {
			assert_int_equal(stream_hash(relaxed, false, 0, b, len,
			    piece, got), 0);
			assert_memory_equal(got, want, 32);
		}
		/* l=: the first l canonical bytes; past the end fails. */
		if (ref.len > 3) {
			EVP_Digest(ref.data, ref.len - 3, want, &wl,
			    EVP_sha256(), NULL);
			assert_int_equal(stream_hash(relaxed, true,
			    ref.len - 3, b, len, 0, got), 0);
			assert_memory_equal(got, want, 32);
		}
		assert_int_equal(stream_hash(relaxed, true, ref.len + 1, b,
		    len, 0, got), -1);
		buf_free(&ref);
	}
}

static void
test_body_hash_streaming(void **state)
{
	static const char *const bodies[] = {
		"", "\r\n", "\r\n\r\n\r\n", "abc", "abc\r", "\r", "\r\r\n",
		"a \rb\n", "  lead  and  trail  \r\n\t\r\n", "x\n\ny\n\n\n",
		"line one\r\n \r\n\t \r\nline two \t \r\n\r\n  \r\n",
		"bare\rcr\r\nand\nlf\n\r\n\r", "only spaces   ", " \t \r\n",
	};
	char big[3000];

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		check_body(bodies[i], strlen(bodies[i]));
	/* Random bodies over the bytes that matter, with every split. */
	srand(13);
	for (int k = 0; k < 300; k++) {
		static const char set[] = "ab \t\r\n";
		size_t len = (size_t)(rand() % (int)sizeof(big));

		for (size_t i = 0; i < len; i++)
			big[i] = set[rand() % 6];
		check_body(big, len);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_sig_tags),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_key_cache),
		cmocka_unit_test(test_expired_and_short_rsa),
		cmocka_unit_test(test_body_hash_streaming),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
