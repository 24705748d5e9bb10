/* dkim: DKIM signing (RFC 6376) with relaxed/relaxed canonicalisation,
   RSA-SHA256 and Ed25519-SHA256 (RFC 8463), over OpenSSL. Signing and
   canonicalisation are pure functions over a message in memory (CRLF or LF
   line ends) and a loaded key; only the key functions touch files.

   Keys live under DATA_DIR/dkim/DOMAIN/SELECTOR.private (PEM, PKCS#8, mode
   0600): the file name carries the selector, so a later change of the
   dkim_selector key does not orphan a published key. dkim_generate names
   the RSA key SELECTOR and the Ed25519 key SELECTOR-ed25519 (one selector
   holds one DNS record). */
#ifndef POSTROOM_DKIM_H
#define POSTROOM_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct dkim_key;

enum dkim_alg { DKIM_RSA = 1, DKIM_ED25519 = 2 };

#define DKIM_RSA_BITS 2048
#define DKIM_SELECTOR_MAX 63

/* Loads one private key (PEM) for domain/selector. 0, or -1 with err. */
int dkim_key_load(const char *path, const char *domain, const char *selector,
    struct dkim_key **key_r, char *err, size_t errlen);
void dkim_key_free(struct dkim_key **key);
enum dkim_alg dkim_key_alg(const struct dkim_key *key);
const char *dkim_key_selector(const struct dkim_key *key);
const char *dkim_key_domain(const struct dkim_key *key);

/* Every key of domain under data_dir/dkim/DOMAIN (sorted by selector). An
   owned array of owned keys (dkim_keys_free); *n_r 0 if the domain has no
   key. -1 with err if a key file is unreadable. */
int dkim_keys_load(const char *data_dir, const char *domain,
    struct dkim_key ***keys_r, size_t *n_r, char *err, size_t errlen);
void dkim_keys_free(struct dkim_key **keys, size_t n);

/* Makes a new key and writes it to data_dir/dkim/DOMAIN/SELECTOR.private
   (0600, directories 0700; atomically, refusing to replace an existing
   one). *key_r (may be NULL) gets it loaded. 0, or -1 with err. */
int dkim_generate(const char *data_dir, const char *domain,
    const char *selector, enum dkim_alg alg, struct dkim_key **key_r,
    char *err, size_t errlen);

/* The DNS TXT data to publish at SELECTOR._domainkey.DOMAIN:
   "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" or
   "v=DKIM1; k=ed25519; p=<base64 of the 32-byte key>". Replaces out. */
void dkim_dns_txt(const struct dkim_key *key, struct buf *out);

/* Relaxed canonicalisation (RFC 6376 3.4.2) of one header field given as
   it appears in the message (name, colon, value, folded lines, final line
   end optional). Appends "name:value\r\n" to out. */
void dkim_canon_header(const char *field, size_t len, struct buf *out);
/* Relaxed body canonicalisation (RFC 6376 3.4.4) of body[0..len). Appends
   to out. */
void dkim_canon_body(const char *body, size_t len, struct buf *out);

/* Signs msg[0..len) (header, empty line, body) with key at time t (the t=
   tag). Appends one complete "DKIM-Signature: ...\r\n" field (folded) to
   out, to be put in front of the message. Signed fields: those of a fixed
   list that are present (From is signed once more than present, so that
   none can be added). 0, or -1 with err (no From field, key failure). */
int dkim_sign(const struct dkim_key *key, const char *msg, size_t len,
    int64_t t, struct buf *out, char *err, size_t errlen);
/* The same with the header (fields, optionally the empty line) and the
   body in separate buffers: head[0..hlen), body[0..blen). */
int dkim_sign_parts(const struct dkim_key *key, const char *head, size_t hlen,
    const char *body, size_t blen, int64_t t, struct buf *out, char *err,
    size_t errlen);

#endif
