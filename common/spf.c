/* spf: RFC 7208 record parsing, macro expansion and check_host() over a
   cache of DNS answers, and its asynchronous driver over common/dns. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "spf.h"
#include "util.h"

const char *
spf_result_str(enum spf_result r)
{
	switch (r) {
	case SPF_NONE: return "none";
	case SPF_NEUTRAL: return "neutral";
	case SPF_PASS: return "pass";
	case SPF_FAIL: return "fail";
	case SPF_SOFTFAIL: return "softfail";
	case SPF_TEMPERROR: return "temperror";
	case SPF_PERMERROR: return "permerror";
	}
	return "permerror";
}

/* ---- record parser ---- */

bool
spf_is_record(const char *txt, size_t len)
{
	return len >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 &&
	    (len == 6 || txt[6] == ' ');
}

static bool
name_eq(const char *p, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(p, name, len) == 0;
}

/* "/n" (max) at p[0..len): the prefix length, -1 if malformed. */
static int
parse_prefix(const char *p, size_t len, int max)
{
	int v = 0;

	if (len == 0 || len > 3)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)p[i]))
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	if (len > 1 && p[0] == '0')
		return -1;
	return v <= max ? v : -1;
}

/* Splits "spec/c4//c6" (any part optional) of a / mx. */
static int
dual_cidr(const char *p, size_t len, struct spf_term *t)
{
	const char *slash = memchr(p, '/', len);
	size_t spec_end = slash != NULL ? (size_t)(slash - p) : len;
	size_t i = spec_end;

	t->spec_len = spec_end;
	if (i < len && i + 1 < len && p[i + 1] != '/') {
		/* "/n" for IPv4, maybe followed by "//n". */
		size_t j = i + 1;
		while (j < len && p[j] != '/')
			j++;
		if ((t->cidr4 = parse_prefix(p + i + 1, j - i - 1, 32)) < 0)
			return -1;
		i = j;
	}
	if (i < len) {
		if (i + 2 > len || p[i] != '/' || p[i + 1] != '/')
			return -1;
		if ((t->cidr6 = parse_prefix(p + i + 2, len - i - 2, 128)) < 0)
			return -1;
		i = len;
	}
	return 0;
}

/* A macro-string is checked by expanding it against a dummy context. */
static bool
macro_ok(const char *p, size_t len)
{
	static const struct spf_macro_ctx dummy = {
		"a@b.example", "b.example", "h.example", AF_INET, { 0 },
		"r.example", 0
	};
	char out[SPF_EXPAND_MAX];

	return len == 0 || spf_macro_expand(p, len, &dummy, false, out,
	    sizeof(out)) == 0 || len >= SPF_EXPAND_MAX / 4;
}

/*
 * A modifier, name "=" macro-string, whose name is p[0..nlen): only
 * redirect= and exp= are kept, each at most once.
 */
static int
parse_modifier(struct spf_record *rec, const char *p, size_t len,
    size_t nlen, size_t off, char *err, size_t errlen)
{
	const char *v = p + nlen + 1;
	size_t vlen = len - nlen - 1;

	if (!macro_ok(v, vlen)) {
		snprintf(err, errlen, "bad macro in modifier");
		return -1;
	}
	if (name_eq(p, nlen, "redirect")) {
		if (rec->has_redirect || vlen == 0) {
			snprintf(err, errlen, "bad or repeated redirect");
			return -1;
		}
		rec->has_redirect = true;
		rec->redirect_off = off + nlen + 1;
		rec->redirect_len = vlen;
	} else if (name_eq(p, nlen, "exp")) {
		if (rec->has_exp || vlen == 0) {
			snprintf(err, errlen, "bad or repeated exp");
			return -1;
		}
		rec->has_exp = true;
		rec->exp_off = off + nlen + 1;
		rec->exp_len = vlen;
	}
	return 0;   /* unknown modifiers are ignored (6) */
}

/* The argument of ip4: or ip6:, an address with an optional prefix. */
static int
parse_ip_arg(struct spf_term *t, const char *arg, size_t alen, bool v4)
{
	char addr[64];
	const char *slash;
	size_t alen2;

	slash = memchr(arg, '/', alen);
	alen2 = slash != NULL ? (size_t)(slash - arg) : alen;
	if (alen2 == 0 || alen2 >= sizeof(addr))
		return -1;
	memcpy(addr, arg, alen2);
	addr[alen2] = '\0';
	if (inet_pton(v4 ? AF_INET : AF_INET6, addr, t->ip) != 1)
		return -1;
	if (slash != NULL) {
		int c = parse_prefix(slash + 1, alen - alen2 - 1,
		    v4 ? 32 : 128);
		if (c < 0)
			return -1;
		if (v4)
			t->cidr4 = c;
		else
			t->cidr6 = c;
	}
	t->spec_len = 0;
	return 0;
}

/*
 * The mechanism named p[0..nlen) with its argument arg (NULL if none;
 * p[nlen] tells whether it came after ':' or is a bare '/').
 */
static int
parse_mechanism(struct spf_term *t, const char *p, size_t nlen,
    const char *arg, size_t alen, char *err, size_t errlen)
{
	if (name_eq(p, nlen, "all")) {
		t->mech = SPF_M_ALL;
		if (arg != NULL)
			goto bad;
	} else if (name_eq(p, nlen, "include") || name_eq(p, nlen, "exists")) {
		t->mech = name_eq(p, nlen, "include") ? SPF_M_INCLUDE :
		    SPF_M_EXISTS;
		if (arg == NULL || p[nlen] != ':' || alen == 0)
			goto bad;
		t->spec_len = alen;
	} else if (name_eq(p, nlen, "a") || name_eq(p, nlen, "mx")) {
		t->mech = name_eq(p, nlen, "a") ? SPF_M_A : SPF_M_MX;
		if (arg != NULL) {
			if (p[nlen] == ':' && (alen == 0 || arg[0] == '/'))
				goto bad;
			if (dual_cidr(arg, alen, t) < 0)
				goto bad;
		}
	} else if (name_eq(p, nlen, "ptr")) {
		t->mech = SPF_M_PTR;
		if (arg != NULL) {
			if (p[nlen] != ':' || alen == 0)
				goto bad;
			t->spec_len = alen;
		}
	} else if (name_eq(p, nlen, "ip4") || name_eq(p, nlen, "ip6")) {
		bool v4 = name_eq(p, nlen, "ip4");
		t->mech = v4 ? SPF_M_IP4 : SPF_M_IP6;
		if (arg == NULL || p[nlen] != ':' || alen == 0)
			goto bad;
		if (parse_ip_arg(t, arg, alen, v4) < 0)
			goto bad;
	} else {
		snprintf(err, errlen, "unknown mechanism");
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "malformed mechanism");
	return -1;
}

static int
parse_term(struct spf_record *rec, const char *p, size_t len, size_t off,
    char *err, size_t errlen)
{
	struct spf_term *t;
	char qual = '+';
	size_t nlen;
	const char *arg = NULL;
	size_t alen = 0;

	/* Modifier: name "=" macro-string, name = ALPHA *( ALPHA / DIGIT /
	   "-" / "_" / "." ). */
	for (nlen = 0; nlen < len && (isalnum((unsigned char)p[nlen]) ||
	    p[nlen] == '-' || p[nlen] == '_' || p[nlen] == '.'); nlen++)
		;
	if (nlen > 0 && nlen < len && p[nlen] == '=' &&
	    isalpha((unsigned char)p[0]))
		return parse_modifier(rec, p, len, nlen, off, err, errlen);
	if (len > 0 && strchr("+-~?", p[0]) != NULL) {
		qual = p[0];
		p++;
		len--;
		off++;
	}
	if (rec->nterms >= SPF_MAX_TERMS) {
		snprintf(err, errlen, "more than %d terms", SPF_MAX_TERMS);
		return -1;
	}
	t = &rec->terms[rec->nterms];
	memset(t, 0, sizeof(*t));
	t->qual = qual;
	t->cidr4 = 32;
	t->cidr6 = 128;
	for (nlen = 0; nlen < len && p[nlen] != ':' && p[nlen] != '/'; nlen++)
		;
	if (nlen < len) {
		arg = p + nlen + (p[nlen] == ':' ? 1 : 0);
		alen = len - nlen - (p[nlen] == ':' ? 1 : 0);
	}
	t->spec_off = off + (size_t)(arg != NULL ? arg - p : 0);
	if (parse_mechanism(t, p, nlen, arg, alen, err, errlen) < 0)
		return -1;
	if (t->spec_len > 0 && !macro_ok(arg, t->spec_len)) {
		snprintf(err, errlen, "bad macro in domain-spec");
		return -1;
	}
	rec->nterms++;
	return 0;
}

int
spf_record_parse(const char *txt, size_t len, struct spf_record *rec,
    char *err, size_t errlen)
{
	size_t i;

	memset(rec, 0, sizeof(*rec));
	err[0] = '\0';
	rec->text = xmalloc(len + 1);
	memcpy(rec->text, txt, len);
	rec->text[len] = '\0';
	if (!spf_is_record(txt, len)) {
		snprintf(err, errlen, "not an SPF record");
		return -1;
	}
	i = 6;
	while (i < len) {
		size_t start;
		if (txt[i] == ' ') {
			i++;
			continue;
		}
		start = i;
		while (i < len && txt[i] != ' ')
			i++;
		for (size_t k = start; k < i; k++) {
			unsigned char ch = (unsigned char)txt[k];
			if (ch < 0x21 || ch > 0x7e) {
				snprintf(err, errlen, "bad character");
				return -1;
			}
		}
		if (parse_term(rec, rec->text + start, i - start, start, err,
		    errlen) < 0)
			return -1;
	}
	return 0;
}

void
spf_record_free(struct spf_record *rec)
{
	free(rec->text);
	rec->text = NULL;
}

/* ---- macros ---- */

struct obuf {
	char *p;
	size_t n, cap;
	bool over;
};

static void
oput(struct obuf *o, const char *s, size_t n)
{
	if (o->n + n + 1 > o->cap) {
		o->over = true;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
	o->p[o->n] = '\0';
}

static void
ip_dotted(const struct spf_macro_ctx *ctx, char *out, size_t size)
{
	if (ctx->family == AF_INET) {
		inet_ntop(AF_INET, ctx->ip, out, (socklen_t)size);
		return;
	}
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (int i = 0; i < 16 && o + 4 < size; i++) {
		out[o++] = hex[ctx->ip[i] >> 4];
		out[o++] = '.';
		out[o++] = hex[ctx->ip[i] & 15];
		out[o++] = '.';
	}
	if (o > 0)
		o--;
	out[o] = '\0';
}

static int
macro_value(char letter, const struct spf_macro_ctx *ctx, bool exp,
    char *v, size_t size)
{
	const char *at = ctx->sender != NULL ? strrchr(ctx->sender, '@') : NULL;

	switch (tolower((unsigned char)letter)) {
	case 's':
		str_copy(v, ctx->sender != NULL ? ctx->sender : "", size);
		break;
	case 'l':
		if (at == NULL || at == ctx->sender)
			str_copy(v, "postmaster", size);
		else
			snprintf(v, size, "%.*s", (int)(at - ctx->sender),
			    ctx->sender);
		break;
	case 'o':
		str_copy(v, at != NULL ? at + 1 : "", size);
		break;
	case 'd':
		str_copy(v, ctx->domain != NULL ? ctx->domain : "", size);
		break;
	case 'i':
		ip_dotted(ctx, v, size);
		break;
	case 'p':
		str_copy(v, "unknown", size);
		break;
	case 'v':
		str_copy(v, ctx->family == AF_INET ? "in-addr" : "ip6", size);
		break;
	case 'h':
		str_copy(v, ctx->helo != NULL ? ctx->helo : "", size);
		break;
	case 'c':
		if (!exp)
			return -1;
		inet_ntop(ctx->family, ctx->ip, v, (socklen_t)size);
		break;
	case 'r':
		if (!exp)
			return -1;
		str_copy(v, ctx->receiver != NULL && ctx->receiver[0] ?
		    ctx->receiver : "unknown", size);
		break;
	case 't':
		if (!exp)
			return -1;
		snprintf(v, size, "%lld", ctx->now);
		break;
	default:
		return -1;
	}
	return 0;
}

static bool
is_delim(char c)
{
	return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

/* Applies digits / 'r' / delimiters to v and appends to o. */
static void
transform(struct obuf *o, const char *v, unsigned digits, bool rev,
    const char *delims, bool url)
{
	const char *parts[SPF_EXPAND_MAX];
	size_t lens[SPF_EXPAND_MAX], n = 0, start = 0, vlen = strlen(v);

	for (size_t i = 0; i <= vlen && n < SPF_EXPAND_MAX; i++) {
		if (i == vlen || strchr(delims, v[i]) != NULL) {
			parts[n] = v + start;
			lens[n++] = i - start;
			start = i + 1;
		}
	}
	if (rev) {
		for (size_t i = 0; i < n / 2; i++) {
			const char *tp = parts[i];
			size_t tl = lens[i];
			parts[i] = parts[n - 1 - i];
			lens[i] = lens[n - 1 - i];
			parts[n - 1 - i] = tp;
			lens[n - 1 - i] = tl;
		}
	}
	size_t first = digits > 0 && digits < n ? n - digits : 0;
	for (size_t i = first; i < n; i++) {
		if (i > first)
			oput(o, ".", 1);
		if (!url) {
			oput(o, parts[i], lens[i]);
			continue;
		}
		for (size_t k = 0; k < lens[i]; k++) {
			unsigned char c = (unsigned char)parts[i][k];
			char e[4];
			if (isalnum(c) || strchr("-._~", c) != NULL) {
				oput(o, (const char *)&c, 1);
			} else {
				snprintf(e, sizeof(e), "%%%02X", c);
				oput(o, e, 3);
			}
		}
	}
}

int
spf_macro_expand(const char *spec, size_t len,
    const struct spf_macro_ctx *ctx, bool exp, char *out, size_t outsz)
{
	struct obuf o = { out, 0, outsz, false };
	char v[SPF_EXPAND_MAX];

	if (outsz == 0)
		return -1;
	out[0] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)spec[i];
		if (c != '%') {
			if (c < 0x20 || c > 0x7e || (!exp && c == ' '))
				return -1;
			oput(&o, spec + i, 1);
			continue;
		}
		if (++i >= len)
			return -1;
		if (spec[i] == '%') {
			oput(&o, "%", 1);
		} else if (spec[i] == '_') {
			oput(&o, " ", 1);
		} else if (spec[i] == '-') {
			oput(&o, "%20", 3);
		} else if (spec[i] == '{') {
			char letter, delims[8] = "";
			unsigned digits = 0;
			bool rev = false, anyd = false;
			size_t nd = 0;
			if (++i >= len)
				return -1;
			letter = spec[i++];
			if (macro_value(letter, ctx, exp, v, sizeof(v)) < 0)
				return -1;
			while (i < len && isdigit((unsigned char)spec[i])) {
				anyd = true;
				if (digits < 1000)
					digits = digits * 10 +
					    (unsigned)(spec[i] - '0');
				i++;
			}
			if (anyd && digits == 0)
				return -1;
			if (i < len && (spec[i] == 'r' || spec[i] == 'R')) {
				rev = true;
				i++;
			}
			while (i < len && is_delim(spec[i])) {
				if (nd + 1 < sizeof(delims) &&
				    strchr(delims, spec[i]) == NULL)
					delims[nd++] = spec[i];
				i++;
			}
			if (i >= len || spec[i] != '}')
				return -1;
			if (nd == 0)
				str_copy(delims, ".", sizeof(delims));
			transform(&o, v, digits, rev, delims,
			    isupper((unsigned char)letter));
		} else {
			return -1;
		}
		if (o.over)
			return -1;
	}
	if (o.over)
		return -1;
	if (!exp) {
		/* Over 253 octets: drop labels on the left. */
		char *p = out;
		while (strlen(p) > 253) {
			char *dot = strchr(p, '.');
			if (dot == NULL)
				return -1;
			p = dot + 1;
		}
		if (p != out)
			memmove(out, p, strlen(p) + 1);
	}
	return 0;
}

/* ---- DNS cache ---- */

#define CACHE_MAX 400

struct crr {
	int family;
	unsigned char addr[16];
	char *s;
	size_t len;
};

struct centry {
	char name[DNS_NAME_SIZE];
	int type;
	enum dns_status status;
	size_t n;
	struct crr *rr;
};

struct spf_cache {
	struct centry e[CACHE_MAX];
	size_t n;
};

struct spf_cache *
spf_cache_new(void)
{
	return xcalloc(1, sizeof(struct spf_cache));
}

void
spf_cache_free(struct spf_cache **cp)
{
	struct spf_cache *c = *cp;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		for (size_t k = 0; k < c->e[i].n; k++)
			free(c->e[i].rr[k].s);
		free(c->e[i].rr);
	}
	free(c);
	*cp = NULL;
}

static const struct centry *
cache_get(const struct spf_cache *c, const char *name, int type)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].type == type &&
		    strcasecmp(c->e[i].name, name) == 0)
			return &c->e[i];
	return NULL;
}

void
spf_cache_put(struct spf_cache *c, const char *name, int type,
    const struct dns_answer *ans)
{
	struct centry *e;

	if (c->n >= CACHE_MAX || cache_get(c, name, type) != NULL)
		return;
	e = &c->e[c->n++];
	memset(e, 0, sizeof(*e));
	str_copy(e->name, name, sizeof(e->name));
	e->type = type;
	e->status = ans->status;
	if (ans->status != DNS_OK)
		return;
	e->rr = xcalloc(ans->n + 1, sizeof(*e->rr));
	for (size_t i = 0; i < ans->n; i++) {
		const struct dns_rr *r = &ans->rr[i];
		struct crr *o = &e->rr[e->n];
		if (r->type != type)
			continue;
		o->family = r->family;
		memcpy(o->addr, r->addr, sizeof(o->addr));
		if (type == DNS_T_TXT) {
			o->s = xmalloc(r->txt_len + 1);
			memcpy(o->s, r->txt, r->txt_len);
			o->s[r->txt_len] = '\0';
			o->len = r->txt_len;
		} else {
			o->s = xstrdup(r->name);
			o->len = strlen(r->name);
		}
		e->n++;
	}
}

/* ---- check_host() ---- */

enum step { ST_DONE, ST_NEED };

struct ev {
	const struct spf_request *req;
	struct spf_cache *c;
	struct spf_outcome *out;
	char *need_name;
	int *need_type;
	unsigned lookups, voids;
};

/* The answer, or NULL with the need recorded. */
static const struct centry *
lookup(struct ev *ev, const char *name, int type)
{
	const struct centry *e = cache_get(ev->c, name, type);

	if (e == NULL) {
		str_copy(ev->need_name, name, DNS_NAME_SIZE);
		*ev->need_type = type;
	}
	return e;
}

static bool
is_void(const struct centry *e)
{
	return e->status == DNS_NXDOMAIN || e->status == DNS_NODATA ||
	    (e->status == DNS_OK && e->n == 0);
}

static bool
is_temp(const struct centry *e)
{
	return e->status == DNS_TEMPFAIL || e->status == DNS_BADANSWER ||
	    e->status == DNS_CANCELLED;
}

static bool
cidr_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

static void
set_problem(struct ev *ev, const char *fmt, const char *arg)
{
	if (ev->out->problem[0] == '\0')
		snprintf(ev->out->problem, sizeof(ev->out->problem), fmt,
		    arg != NULL ? arg : "");
}

/* result codes within the evaluation */
#define R_NEED (-1)

static int check_host(struct ev *ev, const char *domain, bool top,
    int depth);

static int
count_lookup(struct ev *ev)
{
	if (++ev->lookups > SPF_LOOKUP_MAX) {
		set_problem(ev, "more than 10 DNS lookups%s", NULL);
		return -1;
	}
	return 0;
}

static int
count_void(struct ev *ev)
{
	if (++ev->voids > SPF_VOID_MAX) {
		set_problem(ev, "more than 2 void lookups%s", NULL);
		return -1;
	}
	return 0;
}

/* Expands a domain-spec (or takes the current domain). 0, -1 permerror,
   1 invalid name (no match). */
static int
target(struct ev *ev, const struct spf_record *rec, size_t off, size_t len,
    const char *domain, char out[DNS_NAME_SIZE])
{
	struct spf_macro_ctx mc;
	char buf[SPF_EXPAND_MAX];

	if (len == 0) {
		str_copy(out, domain, DNS_NAME_SIZE);
		return 0;
	}
	memset(&mc, 0, sizeof(mc));
	mc.sender = ev->out->identity;
	mc.domain = domain;
	mc.helo = ev->req->helo;
	mc.family = ev->req->family;
	memcpy(mc.ip, ev->req->ip, 16);
	mc.receiver = ev->req->receiver;
	mc.now = ev->req->now;
	if (spf_macro_expand(rec->text + off, len, &mc, false, buf,
	    sizeof(buf)) < 0) {
		set_problem(ev, "bad macro%s", NULL);
		return -1;
	}
	if (strlen(buf) >= DNS_NAME_SIZE || !dns_is_valid_name(buf))
		return 1;
	str_copy(out, buf, DNS_NAME_SIZE);
	return 0;
}

/* Whether any address of name (A or AAAA as the client) matches. 1 match,
   0 no, R_NEED, or a result (SPF_TEMPERROR...) + 100. */
static int
addr_match(struct ev *ev, const char *name, int c4, int c6, bool counts_void)
{
	int type = ev->req->family == AF_INET ? DNS_T_A : DNS_T_AAAA;
	const struct centry *e = lookup(ev, name, type);

	if (e == NULL)
		return R_NEED;
	if (is_temp(e)) {
		set_problem(ev, "DNS failure for %s", name);
		return 100 + SPF_TEMPERROR;
	}
	if (is_void(e)) {
		if (counts_void && count_void(ev) < 0)
			return 100 + SPF_PERMERROR;
		return 0;
	}
	for (size_t i = 0; i < e->n; i++) {
		if (e->rr[i].family != ev->req->family)
			continue;
		if (cidr_match(e->rr[i].addr, ev->req->ip,
		    ev->req->family == AF_INET ? c4 : c6))
			return 1;
	}
	return 0;
}

static void
reverse_name(const struct spf_request *req, char *out, size_t size)
{
	if (req->family == AF_INET) {
		snprintf(out, size, "%u.%u.%u.%u.in-addr.arpa", req->ip[3],
		    req->ip[2], req->ip[1], req->ip[0]);
		return;
	}
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (int i = 15; i >= 0 && o + 5 < size; i--) {
		out[o++] = hex[req->ip[i] & 15];
		out[o++] = '.';
		out[o++] = hex[req->ip[i] >> 4];
		out[o++] = '.';
	}
	out[o] = '\0';
	if (o + 9 <= size)
		memcpy(out + o, "ip6.arpa", 9);
}

static bool
is_subdomain(const char *name, const char *dom)
{
	size_t n = strlen(name), d = strlen(dom);

	if (n == d)
		return strcasecmp(name, dom) == 0;
	return n > d && name[n - d - 1] == '.' &&
	    strcasecmp(name + n - d, dom) == 0;
}

/* One mechanism: 1 match, 0 no match, R_NEED, 100 + result. */
static int
mechanism(struct ev *ev, const struct spf_record *rec,
    const struct spf_term *t, const char *domain, int depth)
{
	char name[DNS_NAME_SIZE];
	const struct centry *e;
	int r;

	switch (t->mech) {
	case SPF_M_ALL:
		return 1;
	case SPF_M_IP4:
		return ev->req->family == AF_INET &&
		    cidr_match(t->ip, ev->req->ip, t->cidr4);
	case SPF_M_IP6:
		return ev->req->family == AF_INET6 &&
		    cidr_match(t->ip, ev->req->ip, t->cidr6);
	default:
		break;
	}
	if (count_lookup(ev) < 0)
		return 100 + SPF_PERMERROR;
	r = target(ev, rec, t->spec_off, t->spec_len, domain, name);
	if (r < 0)
		return 100 + SPF_PERMERROR;
	if (r > 0)
		return count_void(ev) < 0 ? 100 + SPF_PERMERROR : 0;
	switch (t->mech) {
	case SPF_M_INCLUDE:
		r = check_host(ev, name, false, depth + 1);
		if (r == R_NEED)
			return R_NEED;
		if (r == SPF_PASS)
			return 1;
		if (r == SPF_TEMPERROR)
			return 100 + SPF_TEMPERROR;
		if (r == SPF_PERMERROR || r == SPF_NONE) {
			set_problem(ev, "include:%s has no valid record", name);
			return 100 + SPF_PERMERROR;
		}
		return 0;
	case SPF_M_A:
		return addr_match(ev, name, t->cidr4, t->cidr6, true);
	case SPF_M_EXISTS:
		if ((e = lookup(ev, name, DNS_T_A)) == NULL)
			return R_NEED;
		if (is_temp(e))
			return 100 + SPF_TEMPERROR;
		if (is_void(e))
			return count_void(ev) < 0 ? 100 + SPF_PERMERROR : 0;
		return 1;
	case SPF_M_MX: {
		size_t n = 0;
		if ((e = lookup(ev, name, DNS_T_MX)) == NULL)
			return R_NEED;
		if (is_temp(e)) {
			set_problem(ev, "DNS failure for %s", name);
			return 100 + SPF_TEMPERROR;
		}
		if (is_void(e))
			return count_void(ev) < 0 ? 100 + SPF_PERMERROR : 0;
		for (size_t i = 0; i < e->n; i++) {
			if (e->rr[i].s[0] == '\0')
				continue;   /* null MX */
			if (++n > SPF_LOOKUP_MAX) {
				set_problem(ev, "more than 10 MX names%s",
				    NULL);
				return 100 + SPF_PERMERROR;
			}
			r = addr_match(ev, e->rr[i].s, t->cidr4, t->cidr6,
			    false);
			if (r != 0)
				return r;
		}
		return 0;
	}
	case SPF_M_PTR: {
		char rev[DNS_NAME_SIZE];
		reverse_name(ev->req, rev, sizeof(rev));
		if ((e = lookup(ev, rev, DNS_T_PTR)) == NULL)
			return R_NEED;
		if (e->status != DNS_OK)
			return 0;   /* 5.5: errors are no match */
		for (size_t i = 0; i < e->n && i < SPF_LOOKUP_MAX; i++) {
			if (!is_subdomain(e->rr[i].s, name) ||
			    !dns_is_valid_name(e->rr[i].s))
				continue;
			r = addr_match(ev, e->rr[i].s, 32, 128, false);
			if (r == R_NEED || r == 1)
				return r;
		}
		return 0;
	}
	default:
		return 0;
	}
}

static enum spf_result
qual_result(char q)
{
	switch (q) {
	case '-': return SPF_FAIL;
	case '~': return SPF_SOFTFAIL;
	case '?': return SPF_NEUTRAL;
	default: return SPF_PASS;
	}
}

/* The explanation of a fail (6.2); failures leave it empty. */
static int
explain(struct ev *ev, const struct spf_record *rec, const char *domain)
{
	char name[DNS_NAME_SIZE];
	const struct centry *e;
	struct spf_macro_ctx mc;

	if (target(ev, rec, rec->exp_off, rec->exp_len, domain, name) != 0)
		return 0;
	if ((e = lookup(ev, name, DNS_T_TXT)) == NULL)
		return R_NEED;
	if (e->status != DNS_OK || e->n != 1)
		return 0;
	memset(&mc, 0, sizeof(mc));
	mc.sender = ev->out->identity;
	mc.domain = domain;
	mc.helo = ev->req->helo;
	mc.family = ev->req->family;
	memcpy(mc.ip, ev->req->ip, 16);
	mc.receiver = ev->req->receiver;
	mc.now = ev->req->now;
	if (spf_macro_expand(e->rr[0].s, e->rr[0].len, &mc, true,
	    ev->out->exp, sizeof(ev->out->exp)) < 0)
		ev->out->exp[0] = '\0';
	return 0;
}

/* check_host(): a result, or R_NEED. */
static int
check_host(struct ev *ev, const char *domain, bool top, int depth)
{
	const struct centry *e;
	struct spf_record rec;
	char err[128];
	int found = -1, r;
	int res = SPF_NEUTRAL;
	bool matched = false;

	if (depth > SPF_LOOKUP_MAX + 1)
		return SPF_PERMERROR;
	if (!dns_is_valid_name(domain))
		return SPF_NONE;
	if ((e = lookup(ev, domain, DNS_T_TXT)) == NULL)
		return R_NEED;
	if (is_temp(e)) {
		set_problem(ev, "DNS failure for %s", domain);
		return SPF_TEMPERROR;
	}
	for (size_t i = 0; i < e->n; i++) {
		if (!spf_is_record(e->rr[i].s, e->rr[i].len))
			continue;
		if (found >= 0) {
			set_problem(ev, "several SPF records at %s", domain);
			return SPF_PERMERROR;
		}
		found = (int)i;
	}
	if (found < 0)
		return SPF_NONE;
	if (spf_record_parse(e->rr[found].s, e->rr[found].len, &rec, err,
	    sizeof(err)) < 0) {
		spf_record_free(&rec);
		set_problem(ev, "%s", err);
		return SPF_PERMERROR;
	}
	for (size_t i = 0; i < rec.nterms; i++) {
		r = mechanism(ev, &rec, &rec.terms[i], domain, depth);
		if (r == R_NEED) {
			res = R_NEED;
			goto out;
		}
		if (r >= 100) {
			res = r - 100;
			goto out;
		}
		if (r == 1) {
			res = qual_result(rec.terms[i].qual);
			matched = true;
			break;
		}
	}
	if (!matched && rec.has_redirect) {
		char name[DNS_NAME_SIZE];
		if (count_lookup(ev) < 0) {
			res = SPF_PERMERROR;
			goto out;
		}
		r = target(ev, &rec, rec.redirect_off, rec.redirect_len,
		    domain, name);
		if (r != 0) {
			res = SPF_PERMERROR;
			goto out;
		}
		r = check_host(ev, name, top, depth + 1);
		if (r == SPF_NONE) {
			set_problem(ev, "redirect=%s has no record", name);
			r = SPF_PERMERROR;
		}
		res = r;
		goto out;
	}
	if (matched && res == SPF_FAIL && top && rec.has_exp &&
	    explain(ev, &rec, domain) == R_NEED)
		res = R_NEED;
out:
	spf_record_free(&rec);
	return res;
}

int
spf_outcome_init(const struct spf_request *req, struct spf_outcome *out)
{
	const char *at;

	memset(out, 0, sizeof(*out));
	out->result = SPF_NONE;
	if (req->sender[0] == '\0') {
		out->helo_identity = true;
		snprintf(out->identity, sizeof(out->identity),
		    "postmaster@%s", req->helo);
		str_copy(out->domain, req->helo, sizeof(out->domain));
	} else {
		at = strrchr(req->sender, '@');
		if (at == NULL || at == req->sender) {
			snprintf(out->identity, sizeof(out->identity),
			    "postmaster@%s", at != NULL ? at + 1 : req->sender);
			str_copy(out->domain, at != NULL ? at + 1 : req->sender,
			    sizeof(out->domain));
		} else {
			str_copy(out->identity, req->sender,
			    sizeof(out->identity));
			str_copy(out->domain, at + 1, sizeof(out->domain));
		}
	}
	return dns_is_valid_name(out->domain) ? 0 : -1;
}

int
spf_evaluate(const struct spf_request *req, struct spf_cache *c,
    struct spf_outcome *out, char need_name[DNS_NAME_SIZE], int *need_type)
{
	struct ev ev = { req, c, out, need_name, need_type, 0, 0 };
	int r;

	if (spf_outcome_init(req, out) < 0)
		return 0;
	r = check_host(&ev, out->domain, true, 0);
	out->lookups = ev.lookups;
	out->voids = ev.voids;
	if (r == R_NEED)
		return 1;
	out->result = (enum spf_result)r;
	if (out->result != SPF_FAIL)
		out->exp[0] = '\0';
	if (out->result != SPF_PERMERROR && out->result != SPF_TEMPERROR)
		out->problem[0] = '\0';
	return 0;
}

/* ---- asynchronous driver ---- */

struct spf_check {
	struct dns_resolver *r;
	struct spf_request req;
	struct spf_cache *cache;
	spf_done_cb *cb;
	void *arg;
	bool cancelled, pending;
	char name[DNS_NAME_SIZE];
	int type;
	struct spf_outcome out;
};

static void check_answer(void *arg, const struct dns_answer *ans);

/* Runs the evaluation until it decides (0) or a query is in flight (1). */
static int
check_run(struct spf_check *c)
{
	static const struct dns_answer nx = { .status = DNS_NXDOMAIN };

	for (;;) {
		if (spf_evaluate(&c->req, c->cache, &c->out, c->name,
		    &c->type) == 0)
			return 0;
		if (dns_query(c->r, c->name, c->type, check_answer, c) == 0) {
			c->pending = true;
			return 1;
		}
		spf_cache_put(c->cache, c->name, c->type, &nx);
	}
}

static void
check_free(struct spf_check *c)
{
	spf_cache_free(&c->cache);
	free(c);
}

static void
check_answer(void *arg, const struct dns_answer *ans)
{
	struct spf_check *c = arg;

	c->pending = false;
	if (c->cancelled || ans->status == DNS_CANCELLED) {
		if (!c->cancelled) {
			c->out.result = SPF_TEMPERROR;
			str_copy(c->out.problem, "resolver stopped",
			    sizeof(c->out.problem));
			c->cb(c->arg, &c->out);
		}
		check_free(c);
		return;
	}
	spf_cache_put(c->cache, c->name, c->type, ans);
	if (check_run(c) == 1)
		return;
	c->cb(c->arg, &c->out);
	check_free(c);
}

int
spf_check_start(struct dns_resolver *r, const struct spf_request *req,
    spf_done_cb *cb, void *arg, struct spf_check **c_r,
    struct spf_outcome *out)
{
	struct spf_check *c = xcalloc(1, sizeof(*c));

	*c_r = NULL;
	c->r = r;
	c->req = *req;
	c->cache = spf_cache_new();
	c->cb = cb;
	c->arg = arg;
	if (check_run(c) == 1) {
		*c_r = c;
		return 1;
	}
	*out = c->out;
	check_free(c);
	return 0;
}

void
spf_check_cancel(struct spf_check *c)
{
	if (c != NULL)
		c->cancelled = true;
}
