/* dkim_verify: DKIM signature verification (RFC 6376 6, RFC 8463):
   rsa-sha256 (keys under 1024 bits fail) and ed25519-sha256, simple and
   relaxed canonicalisation, l= honoured (and reported), t=/x= checked.
   The tag-list parser, the signature and key-record parsers are pure
   (fuzzed: tests/fuzz/fuzz_dkim_tags.c); verification is pure over a
   message in memory and the key record's text (the caller looks the key
   up: TXT at SELECTOR._domainkey.DOMAIN). */
#ifndef POSTROOM_DKIM_VERIFY_H
#define POSTROOM_DKIM_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkim.h"

#define DKIM_TAGS_MAX 32
#define DKIM_H_MAX    64        /* fields named in h= */
#define DKIM_DOMAIN_MAX 253

enum dkim_result {
	DKIM_R_NONE,
	DKIM_R_PASS,
	DKIM_R_FAIL,
	DKIM_R_NEUTRAL,     /* a signature that cannot be checked (syntax,
	                       unsupported algorithm, expired) */
	DKIM_R_POLICY,
	DKIM_R_TEMPERROR,
	DKIM_R_PERMERROR,
};
const char *dkim_result_str(enum dkim_result r);

struct dkim_tag {
	char name[16];
	const char *v;              /* into the parsed text, FWS trimmed at
	                               both ends */
	size_t vlen;
};
/* Pure. tag-list (RFC 6376 3.2): n_r tags; -1 on a syntax error, a
   duplicate tag or more than max tags. */
int dkim_tags_parse(const char *s, size_t len, struct dkim_tag *tags,
    size_t max, size_t *n_r);

struct dkim_sig {
	enum dkim_alg alg;
	bool hdr_relaxed, body_relaxed;
	char d[DKIM_DOMAIN_MAX + 1];
	char s[DKIM_SELECTOR_MAX + 1];
	char i[DKIM_DOMAIN_MAX + 65];
	char h[DKIM_H_MAX][64];
	size_t nh;
	unsigned char b[1024];
	size_t blen;
	unsigned char bh[64];
	size_t bhlen;
	bool has_l, has_t, has_x;
	uint64_t l;
	int64_t t, x;
};
/* Pure. Parses a DKIM-Signature field's value (after the colon): 0, or
   -1 with a reason (the signature is then neutral/permerror). */
int dkim_sig_parse(const char *v, size_t len, struct dkim_sig *sig,
    char *err, size_t errlen);

/* Pure. Checks a key record for sig's algorithm: 0, or -1 with a reason
   (revoked, wrong k=, bad key, RSA under 1024 bits). */
int dkim_key_record_check(const char *txt, size_t len, enum dkim_alg alg,
    char *err, size_t errlen);

/* The body hash, computed as the body arrives, in pieces of any size
   (a line end may be split between two): the signature's canonicalisation
   (simple or relaxed), SHA-256 of at most l bytes of it when has_l. Keeps
   only a few bytes of state and a 4 KiB output buffer, never the body. */
struct dkim_bh;
struct dkim_bh *dkim_bh_new(bool relaxed, bool has_l, uint64_t l);
void dkim_bh_update(struct dkim_bh *h, const char *p, size_t n);
/* 0 with the hash in out (32 bytes), or -1 when l= is beyond the
   canonical body or the digest failed. Once only. */
int dkim_bh_final(struct dkim_bh *h, unsigned char out[32]);
void dkim_bh_free(struct dkim_bh **h);

/* Pure. Verifies signature field field[0..flen) (the whole
   "DKIM-Signature: ..." field as in the message) of msg[0..len) (header,
   empty line, body; CRLF line ends) with key record txt at time now.
   Returns PASS, FAIL (body hash or signature mismatch), NEUTRAL (expired,
   unparseable) or PERMERROR (key record unusable); reason in err. *sig_r
   (may be NULL) gets the parsed signature. */
enum dkim_result dkim_verify(const char *field, size_t flen,
    const char *msg, size_t len, const char *txt, size_t tlen, int64_t now,
    struct dkim_sig *sig_r, char *err, size_t errlen);

#endif
