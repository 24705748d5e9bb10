/* Fuzz target for common/dkim_verify.c's pure parts: the tag-list parser,
   the DKIM-Signature parser, the key-record check, and dkim_verify with
   the input cut into a signature field, a message and a key record at its
   first two NUL bytes. Any bytes: a result, never a crash or a leak. The
   input is also a body for the streaming body hash: whole, or cut in two
   at its first byte's value, the hash is the same. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dkim_verify.h"

static void
body_hash(const char *p, size_t size)
{
	for (int relaxed = 0; relaxed < 2; relaxed++) {
		unsigned char a[32], b[32];
		size_t cut = size > 0 ? (unsigned char)p[0] % (size + 1) : 0;
		struct dkim_bh *h1 = dkim_bh_new(relaxed, false, 0);
		struct dkim_bh *h2 = dkim_bh_new(relaxed, false, 0);

		dkim_bh_update(h1, p, size);
		dkim_bh_update(h2, p, cut);
		dkim_bh_update(h2, p + cut, size - cut);
		if (dkim_bh_final(h1, a) != 0 || dkim_bh_final(h2, b) != 0 ||
		    memcmp(a, b, 32) != 0)
			__builtin_trap();
		dkim_bh_free(&h1);
		dkim_bh_free(&h2);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct dkim_tag tags[DKIM_TAGS_MAX];
	struct dkim_sig sig;
	char err[256];
	size_t n;

	dkim_tags_parse(p, size, tags, DKIM_TAGS_MAX, &n);
	dkim_sig_parse(p, size, &sig, err, sizeof(err));
	dkim_key_record_check(p, size, DKIM_RSA, err, sizeof(err));
	dkim_key_record_check(p, size, DKIM_ED25519, err, sizeof(err));
	body_hash(p, size);

	const char *z1 = memchr(p, '\0', size);
	if (z1 != NULL) {
		size_t flen = (size_t)(z1 - p), rest = size - flen - 1;
		const char *m = z1 + 1;
		const char *z2 = memchr(m, '\0', rest);
		if (z2 != NULL) {
			size_t mlen = (size_t)(z2 - m);
			const char *k = z2 + 1;
			size_t klen = rest - mlen - 1;
			enum dkim_result r = dkim_verify(p, flen, m, mlen, k,
			    klen, 1000, &sig, err, sizeof(err));
			if (r > DKIM_R_PERMERROR)
				__builtin_trap();
		}
	}
	return 0;
}
