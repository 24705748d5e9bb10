/* dmarc: RFC 7489 record parsing, alignment and the Public Suffix List. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dmarc.h"
#include "util.h"

const char *
dmarc_policy_str(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_P_QUARANTINE: return "quarantine";
	case DMARC_P_REJECT: return "reject";
	default: return "none";
	}
}

static bool
ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
policy(const char *v, size_t n, enum dmarc_policy *p)
{
	if (n == 4 && strncasecmp(v, "none", 4) == 0)
		*p = DMARC_P_NONE;
	else if (n == 10 && strncasecmp(v, "quarantine", 10) == 0)
		*p = DMARC_P_QUARANTINE;
	else if (n == 6 && strncasecmp(v, "reject", 6) == 0)
		*p = DMARC_P_REJECT;
	else
		return -1;
	return 0;
}

int
dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r)
{
	size_t i = 0, ntag = 0;
	bool have_p = false;

	memset(r, 0, sizeof(*r));
	r->pct = 100;
	while (i < len) {
		size_t ns, ne, vs, ve;
		while (i < len && ws(txt[i]))
			i++;
		if (i >= len)
			break;
		ns = i;
		while (i < len && (isalnum((unsigned char)txt[i]) ||
		    txt[i] == '_'))
			i++;
		ne = i;
		while (i < len && ws(txt[i]))
			i++;
		if (ne == ns || i >= len || txt[i] != '=')
			return -1;
		i++;
		while (i < len && ws(txt[i]))
			i++;
		vs = i;
		while (i < len && txt[i] != ';')
			i++;
		ve = i;
		while (ve > vs && ws(txt[ve - 1]))
			ve--;
		if (i < len)
			i++;
		const char *n = txt + ns, *v = txt + vs;
		size_t nl = ne - ns, vl = ve - vs;
		if (ntag++ == 0) {
			/* v=DMARC1 first, exactly. */
			if (!(nl == 1 && n[0] == 'v' && vl == 6 &&
			    memcmp(v, "DMARC1", 6) == 0))
				return -1;
			continue;
		}
		if (nl == 1 && n[0] == 'p') {
			if (have_p || policy(v, vl, &r->p) < 0)
				return -1;
			have_p = true;
		} else if (nl == 2 && memcmp(n, "sp", 2) == 0) {
			if (policy(v, vl, &r->sp) == 0)
				r->has_sp = true;
		} else if (nl == 5 && memcmp(n, "adkim", 5) == 0) {
			if (vl == 1 && (v[0] == 's' || v[0] == 'S'))
				r->adkim_strict = true;
		} else if (nl == 4 && memcmp(n, "aspf", 4) == 0) {
			if (vl == 1 && (v[0] == 's' || v[0] == 'S'))
				r->aspf_strict = true;
		} else if (nl == 3 && memcmp(n, "pct", 3) == 0) {
			unsigned x = 0;
			if (vl == 0 || vl > 3)
				continue;   /* invalid pct: the default */
			bool ok = true;
			for (size_t k = 0; k < vl; k++) {
				if (!isdigit((unsigned char)v[k]))
					ok = false;
				else
					x = x * 10 + (unsigned)(v[k] - '0');
			}
			if (ok && x <= 100)
				r->pct = x;
		}
	}
	if (ntag == 0 || !have_p)
		return -1;
	if (!r->has_sp)
		r->sp = r->p;
	return 0;
}

/* ---- Public Suffix List ---- */

struct psl {
	char **rules;               /* sorted; "*.x" wildcards, "!x" exceptions */
	size_t n;
};

static int
cmp_rule(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct psl *
psl_parse(const char *text, size_t len)
{
	struct psl *p = xcalloc(1, sizeof(*p));
	size_t cap = 0, pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) : len, e = pos;
		/* A rule is the first whitespace-free run of the line. */
		while (e < end && !ws(text[e]) && text[e] != '\0')
			e++;
		if (e > pos && !(e - pos >= 2 && text[pos] == '/' &&
		    text[pos + 1] == '/') && e - pos <= DMARC_DOMAIN_MAX) {
			char *r = xmalloc(e - pos + 1);
			for (size_t i = 0; i < e - pos; i++)
				r[i] = (char)tolower((unsigned char)text[pos + i]);
			r[e - pos] = '\0';
			if (p->n == cap) {
				cap = cap ? cap * 2 : 1024;
				p->rules = xrealloc(p->rules, cap * sizeof(char *));
			}
			p->rules[p->n++] = r;
		}
		pos = end + 1;
	}
	if (p->n > 0)
		qsort(p->rules, p->n, sizeof(char *), cmp_rule);
	return p;
}

struct psl *
psl_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[8192];
	size_t n;
	struct psl *p;

	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open", path);
		return NULL;
	}
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	p = psl_parse(b.data != NULL ? b.data : "", b.len);
	buf_free(&b);
	return p;
}

void
psl_free(struct psl **pp)
{
	struct psl *p = *pp;

	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->rules[i]);
	free(p->rules);
	free(p);
	*pp = NULL;
}

static bool
has_rule(const struct psl *p, const char *r)
{
	return p != NULL && p->n > 0 && bsearch(&r, p->rules, p->n,
	    sizeof(char *), cmp_rule) != NULL;
}

void
psl_org_domain(const struct psl *p, const char *domain, char *out,
    size_t size)
{
	char d[DMARC_DOMAIN_MAX + 2], rule[DMARC_DOMAIN_MAX + 4];
	const char *labels[128];
	size_t nl = 0, suffix = 1;   /* labels in the public suffix */

	str_copy(d, domain, sizeof(d));
	for (char *c = d; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	size_t dl = strlen(d);
	if (dl > 0 && d[dl - 1] == '.')
		d[--dl] = '\0';
	/* Label starts, right to left. */
	for (size_t i = dl; i-- > 0 && nl < 127;) {
		if (i == 0 || d[i - 1] == '.')
			labels[nl++] = d + i;
	}
	if (nl == 0) {
		str_copy(out, d, size);
		return;
	}
	if (p == NULL) {
		suffix = 1;
	} else {
		/* The longest matching rule; an exception wins and counts
		   one label less; no match: the last label ("*"). */
		for (size_t k = 1; k <= nl; k++) {
			const char *s = labels[k - 1];
			snprintf(rule, sizeof(rule), "!%s", s);
			if (has_rule(p, rule)) {
				suffix = k - 1;
				break;
			}
			if (has_rule(p, s))
				suffix = k;
			if (k < nl) {
				snprintf(rule, sizeof(rule), "*.%s", s);
				if (has_rule(p, rule))
					suffix = k + 1;
			}
		}
	}
	if (suffix >= nl) {
		str_copy(out, d, size);
		return;
	}
	str_copy(out, labels[suffix], size);
}

bool
dmarc_aligned(const struct psl *p, const char *a, const char *b, bool strict)
{
	char oa[DMARC_DOMAIN_MAX + 2], ob[DMARC_DOMAIN_MAX + 2];

	if (a[0] == '\0' || b[0] == '\0')
		return false;
	if (strcasecmp(a, b) == 0)
		return true;
	if (strict)
		return false;
	psl_org_domain(p, a, oa, sizeof(oa));
	psl_org_domain(p, b, ob, sizeof(ob));
	return strcmp(oa, ob) == 0;
}
