/* spf: Sender Policy Framework (RFC 7208). The record parser and the
   macro expander are pure (fuzzed: tests/fuzz/fuzz_spf.c); the evaluator
   (check_host() of RFC 7208 4) is pure over a cache of DNS answers: it
   either decides or names the one lookup it needs next. spf_check_start
   drives it asynchronously over common/dns, re-running the evaluation
   from the top each time an answer arrives (every answer is cached, so a
   run costs only CPU; the record count and the 10 DNS-mechanism and 2
   void-lookup limits are recomputed identically on each run). */
#ifndef POSTROOM_SPF_H
#define POSTROOM_SPF_H

#include <stdbool.h>
#include <stddef.h>

#include "dns.h"

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};
/* "none", "pass", ... as Authentication-Results spells them. */
const char *spf_result_str(enum spf_result r);

#define SPF_MAX_TERMS    128    /* mechanisms+modifiers of one record */
#define SPF_LOOKUP_MAX   10     /* RFC 7208 4.6.4 */
#define SPF_VOID_MAX     2
#define SPF_EXPAND_MAX   512    /* bytes of an expanded macro-string */
#define SPF_EXP_MAX      256    /* explanation text kept */

enum spf_mech {
	SPF_M_ALL, SPF_M_INCLUDE, SPF_M_A, SPF_M_MX, SPF_M_PTR, SPF_M_IP4,
	SPF_M_IP6, SPF_M_EXISTS,
};

struct spf_term {
	char qual;                  /* '+', '-', '~', '?' */
	enum spf_mech mech;
	size_t spec_off, spec_len;  /* domain-spec in rec->text; len 0: none */
	unsigned char ip[16];       /* ip4 (4 bytes) / ip6 */
	int cidr4, cidr6;           /* prefix lengths (32 / 128 if absent) */
};

struct spf_record {
	char *text;                 /* owned copy of the record */
	size_t nterms;
	struct spf_term terms[SPF_MAX_TERMS];
	bool has_redirect, has_exp;
	size_t redirect_off, redirect_len, exp_off, exp_len;
};

/* Pure. Whether txt[0..len) is an SPF record ("v=spf1" then a space or
   the end, case-insensitive). */
bool spf_is_record(const char *txt, size_t len);
/* Pure. Parses an SPF record (one that spf_is_record accepts): 0, or -1
   (a permerror) with a reason in err. Free with spf_record_free (also
   after -1). */
int spf_record_parse(const char *txt, size_t len, struct spf_record *rec,
    char *err, size_t errlen);
void spf_record_free(struct spf_record *rec);

/* What the macros (RFC 7208 7) expand from. */
struct spf_macro_ctx {
	const char *sender;         /* local-part@domain ("postmaster@helo"
	                               for the null sender) */
	const char *domain;         /* the current <domain> */
	const char *helo;
	int family;                 /* AF_INET / AF_INET6 */
	unsigned char ip[16];
	const char *receiver;       /* our hostname (%{r}) */
	long long now;              /* %{t} */
};
/* Pure. Expands spec[0..len) into out (NUL-terminated). exp: the
   explanation string (c, r, t allowed; no domain truncation). A domain
   name longer than 253 octets loses labels on the left (RFC 7208 7.3).
   0, or -1 on a syntax error (a permerror) or overflow of outsz. */
int spf_macro_expand(const char *spec, size_t len,
    const struct spf_macro_ctx *ctx, bool exp, char *out, size_t outsz);

/* A cache of DNS answers (the evaluation's only input besides the
   request). */
struct spf_cache;
struct spf_cache *spf_cache_new(void);
void spf_cache_free(struct spf_cache **c);
/* Records the answer to (name, type): its status and records. */
void spf_cache_put(struct spf_cache *c, const char *name, int type,
    const struct dns_answer *ans);

struct spf_request {
	int family;                 /* AF_INET / AF_INET6 (a v4-mapped v6
	                               address is taken as IPv4) */
	unsigned char ip[16];
	char sender[513];           /* MAIL FROM, "" for <> */
	char helo[256];
	char receiver[256];         /* our hostname */
	long long now;
};

struct spf_outcome {
	enum spf_result result;
	char domain[256];           /* the domain checked */
	char identity[600];         /* smtp.mailfrom (or postmaster@helo) */
	bool helo_identity;         /* checked the HELO name (null sender) */
	char exp[SPF_EXP_MAX];      /* explanation on fail, else "" */
	char problem[128];          /* why permerror/temperror, else "" */
	unsigned lookups, voids;
};

/* Pure. Sets up out's identity from req. 0, or -1: no usable identity
   (out->result is then NONE). */
int spf_outcome_init(const struct spf_request *req, struct spf_outcome *out);
/* Pure. One evaluation over the cache: 0 (out filled), or 1 with the
   lookup needed next in need_name/need_type. */
int spf_evaluate(const struct spf_request *req, struct spf_cache *c,
    struct spf_outcome *out, char need_name[DNS_NAME_SIZE], int *need_type);

/* Asynchronous check over r. 0: decided at once (out filled, no
   callback); 1: pending, cb(arg, outcome) comes later on the loop thread
   unless spf_check_cancel is called first; *c_r is the handle until the
   callback or the cancel. */
struct spf_check;
typedef void spf_done_cb(void *arg, const struct spf_outcome *out);
int spf_check_start(struct dns_resolver *r, const struct spf_request *req,
    spf_done_cb *cb, void *arg, struct spf_check **c_r,
    struct spf_outcome *out);
/* No callback after this; the lookup in flight finishes on its own. */
void spf_check_cancel(struct spf_check *c);

#endif
