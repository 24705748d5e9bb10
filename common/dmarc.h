/* dmarc: DMARC (RFC 7489): the record parser (pure, fuzzed:
   tests/fuzz/fuzz_dmarc.c), the organizational domain from the Public
   Suffix List (Debian's publicsuffix package), identifier alignment and
   the policy to apply. */
#ifndef POSTROOM_DMARC_H
#define POSTROOM_DMARC_H

#include <stdbool.h>
#include <stddef.h>

#define DMARC_PSL_PATH "/usr/share/publicsuffix/public_suffix_list.dat"
#define DMARC_DOMAIN_MAX 253

enum dmarc_policy { DMARC_P_NONE, DMARC_P_QUARANTINE, DMARC_P_REJECT };
const char *dmarc_policy_str(enum dmarc_policy p);

struct dmarc_record {
	enum dmarc_policy p, sp;
	bool has_sp;
	bool adkim_strict, aspf_strict;
	unsigned pct;               /* 0..100, default 100 */
};
/* Pure. Parses "v=DMARC1; p=...; ..." (v= first, p= required, unknown
   tags ignored): 0, or -1 (not a valid DMARC record). */
int dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r);

/* The Public Suffix List. */
struct psl;
/* Pure. Parses the list's text (rules, wildcards, exceptions; comments
   and the ICANN/private section markers). Owned; never NULL. */
struct psl *psl_parse(const char *text, size_t len);
/* Reads and parses path; NULL with err if unreadable. */
struct psl *psl_load(const char *path, char *err, size_t errlen);
void psl_free(struct psl **p);
/* Pure. The organizational domain of domain (lower case) into out: the
   public suffix plus one label; domain itself when it is shorter (a
   public suffix has no organizational domain: out = domain). No list
   (NULL): the last two labels. */
void psl_org_domain(const struct psl *p, const char *domain, char *out,
    size_t size);

/* Pure. Whether a and b align: equal, or (relaxed) the same
   organizational domain. */
bool dmarc_aligned(const struct psl *p, const char *a, const char *b,
    bool strict);

#endif
