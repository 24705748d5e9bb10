/* Unit tests of common/spf.c: the record parser, the macro expander (the
   examples of RFC 7208 7.4) and check_host() over a fake zone fed through
   the answer cache (every mechanism, include/redirect, exp, the lookup and
   void-lookup limits, temperror, several records). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "spf.h"

static void
test_parse(void **state)
{
	static const struct { const char *rec; int ok; size_t nterms; } t[] = {
		{ "v=spf1", 0, 0 },
		{ "v=spf1 -all", 0, 1 },
		{ "V=SPF1 +a mx/24 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all", 0, 5 },
		{ "v=spf1 a:x.example/24//64 mx//48 ptr ptr:x.example ?all", 0, 5 },
		{ "v=spf1 include:_spf.example exists:%{i}.x.example -all", 0, 3 },
		{ "v=spf1 redirect=_spf.example", 0, 0 },
		{ "v=spf1 foo=bar -all", 0, 1 },
		{ "v=spf1 redirect=a.example redirect=b.example", -1, 0 },
		{ "v=spf1 exp=a.example exp=b.example", -1, 0 },
		{ "v=spf1 bogus", -1, 0 },
		{ "v=spf1 ip4:192.0.2.300", -1, 0 },
		{ "v=spf1 ip4:192.0.2.1/33", -1, 0 },
		{ "v=spf1 ip6:::1/129", -1, 0 },
		{ "v=spf1 a:", -1, 0 },
		{ "v=spf1 include", -1, 0 },
		{ "v=spf1 all:x", -1, 0 },
		{ "v=spf1 exists:%{z}", -1, 0 },
		{ "v=spf1 a:%{d0}.x", -1, 0 },
		{ "v=spf10 -all", -1, 0 },
		{ "v=spf1  -all  ", 0, 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct spf_record rec;
		char err[128];
		int r = spf_record_parse(t[i].rec, strlen(t[i].rec), &rec, err,
		    sizeof(err));
		if (r != t[i].ok)
			fail_msg("row %zu (%s): %d %s", i, t[i].rec, r, err);
		if (r == 0 && rec.nterms != t[i].nterms)
			fail_msg("row %zu: %zu terms", i, rec.nterms);
		spf_record_free(&rec);
	}
	assert_true(spf_is_record("v=spf1", 6));
	assert_false(spf_is_record("v=spf1x", 7));
}

static void
test_macros(void **state)
{
	struct spf_macro_ctx c = {
		"strong-bad@email.example.com", "email.example.com",
		"mx.example.org", AF_INET, { 0 }, "rx.example", 1234
	};
	static const struct { const char *in, *out; } t[] = {
		{ "%{s}", "strong-bad@email.example.com" },
		{ "%{o}", "email.example.com" },
		{ "%{d}", "email.example.com" },
		{ "%{d4}", "email.example.com" },
		{ "%{d3}", "email.example.com" },
		{ "%{d2}", "example.com" },
		{ "%{d1}", "com" },
		{ "%{dr}", "com.example.email" },
		{ "%{d2r}", "example.email" },
		{ "%{l}", "strong-bad" },
		{ "%{l-}", "strong.bad" },
		{ "%{lr}", "strong-bad" },
		{ "%{lr-}", "bad.strong" },
		{ "%{l1r-}", "strong" },
		{ "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com" },
		{ "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com" },
		{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
		  "bad.strong.lp.3.2.0.192.in-addr._spf.example.com" },
		{ "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
		  "3.2.0.192.in-addr.strong.lp._spf.example.com" },
		{ "%{d2}.trusted-domains.example.net",
		  "example.com.trusted-domains.example.net" },
		{ "%%%_%-", "% %20" },
		{ "%{h}", "mx.example.org" },
		{ "%{S}", "strong-bad%40email.example.com" },
	};
	char out[SPF_EXPAND_MAX];

	(void)state;
	inet_pton(AF_INET, "192.0.2.3", c.ip);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(spf_macro_expand(t[i].in, strlen(t[i].in), &c,
		    false, out, sizeof(out)), 0);
		if (strcmp(out, t[i].out) != 0)
			fail_msg("%s: got %s", t[i].in, out);
	}
	/* c, r, t only in explanations. */
	assert_int_equal(spf_macro_expand("%{c}", 4, &c, false, out,
	    sizeof(out)), -1);
	assert_int_equal(spf_macro_expand("%{c} %{r} %{t}", 14, &c, true, out,
	    sizeof(out)), 0);
	assert_string_equal(out, "192.0.2.3 rx.example 1234");
	assert_int_equal(spf_macro_expand("%", 1, &c, false, out, sizeof(out)),
	    -1);
	assert_int_equal(spf_macro_expand("%{d", 3, &c, false, out,
	    sizeof(out)), -1);
	assert_int_equal(spf_macro_expand("%x", 2, &c, false, out,
	    sizeof(out)), -1);
	assert_int_equal(spf_macro_expand("%{d}", 4, &c, false, out, 5), -1);

	c.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::cb01", c.ip);
	assert_int_equal(spf_macro_expand("%{ir}.%{v}._spf.%{d2}", 21, &c,
	    false, out, sizeof(out)), 0);
	assert_string_equal(out, "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"
	    ".0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

/* ---- a fake zone ---- */

struct zrr { const char *name; int type; const char *value; };

static const struct zrr *zone;

static void
answer_for(const char *name, int type, struct dns_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->status = DNS_NXDOMAIN;
	for (const struct zrr *z = zone; z->name != NULL; z++) {
		if (strcasecmp(z->name, name) != 0)
			continue;
		if (a->status == DNS_NXDOMAIN)
			a->status = DNS_NODATA;
		if (strcmp(z->value, "TEMPFAIL") == 0) {
			a->status = DNS_TEMPFAIL;
			return;
		}
		if (z->type != type || a->n >= DNS_MAX_RR)
			continue;
		struct dns_rr *r = &a->rr[a->n++];
		a->status = DNS_OK;
		r->type = (uint16_t)type;
		if (type == DNS_T_TXT) {
			r->txt = (char *)z->value;
			r->txt_len = strlen(z->value);
		} else if (type == DNS_T_A) {
			r->family = AF_INET;
			inet_pton(AF_INET, z->value, r->addr);
		} else if (type == DNS_T_AAAA) {
			r->family = AF_INET6;
			inet_pton(AF_INET6, z->value, r->addr);
		} else {
			snprintf(r->name, sizeof(r->name), "%s", z->value);
		}
	}
}

static enum spf_result
run(const char *ip, const char *sender, const char *helo,
    struct spf_outcome *out)
{
	struct spf_request req;
	struct spf_cache *c = spf_cache_new();
	char need[DNS_NAME_SIZE];
	int type, rounds = 0;

	memset(&req, 0, sizeof(req));
	req.family = strchr(ip, ':') != NULL ? AF_INET6 : AF_INET;
	inet_pton(req.family, ip, req.ip);
	snprintf(req.sender, sizeof(req.sender), "%s", sender);
	snprintf(req.helo, sizeof(req.helo), "%s", helo);
	snprintf(req.receiver, sizeof(req.receiver), "mx.local.test");
	req.now = 1000;
	while (spf_evaluate(&req, c, out, need, &type) == 1) {
		struct dns_answer a;
		answer_for(need, type, &a);
		spf_cache_put(c, need, type, &a);
		assert_true(++rounds < 500);
	}
	spf_cache_free(&c);
	return out->result;
}

static const struct zrr z1[] = {
	{ "pass.test", DNS_T_TXT, "v=spf1 ip4:192.0.2.0/24 -all" },
	{ "pass.test", DNS_T_TXT, "unrelated text" },
	{ "a.test", DNS_T_TXT, "v=spf1 a -all" },
	{ "a.test", DNS_T_A, "192.0.2.10" },
	{ "a.test", DNS_T_AAAA, "2001:db8::10" },
	{ "acidr.test", DNS_T_TXT, "v=spf1 a:a.test/24 ~all" },
	{ "mx.test", DNS_T_TXT, "v=spf1 mx ?all" },
	{ "mx.test", DNS_T_MX, "mail.mx.test" },
	{ "mail.mx.test", DNS_T_A, "198.51.100.7" },
	{ "inc.test", DNS_T_TXT, "v=spf1 include:pass.test -all" },
	{ "incnone.test", DNS_T_TXT, "v=spf1 include:nothing.test -all" },
	{ "red.test", DNS_T_TXT, "v=spf1 redirect=pass.test" },
	{ "rednone.test", DNS_T_TXT, "v=spf1 redirect=nothing.test" },
	{ "ex.test", DNS_T_TXT, "v=spf1 exists:%{ir}.list.ex.test -all" },
	{ "7.2.0.192.list.ex.test", DNS_T_A, "127.0.0.2" },
	{ "two.test", DNS_T_TXT, "v=spf1 -all" },
	{ "two.test", DNS_T_TXT, "v=spf1 +all" },
	{ "temp.test", DNS_T_TXT, "TEMPFAIL" },
	{ "tempa.test", DNS_T_TXT, "v=spf1 a:temp.test -all" },
	{ "soft.test", DNS_T_TXT, "v=spf1 ~all" },
	{ "neutral.test", DNS_T_TXT, "v=spf1 ip4:10.0.0.1" },
	{ "bad.test", DNS_T_TXT, "v=spf1 ip4:1.2.3.4.5 -all" },
	{ "exp.test", DNS_T_TXT, "v=spf1 -all exp=why.exp.test" },
	{ "why.exp.test", DNS_T_TXT, "%{i} is not one of %{d}'s servers" },
	{ "voids.test", DNS_T_TXT,
	  "v=spf1 a:n1.test a:n2.test a:n3.test +all" },
	{ "voids2.test", DNS_T_TXT, "v=spf1 a:n1.test a:n2.test +all" },
	{ "loop.test", DNS_T_TXT, "v=spf1 include:loop.test -all" },
	{ "many.test", DNS_T_TXT, "v=spf1 a a a a a a a a a a a -all" },
	{ "many.test", DNS_T_A, "10.9.9.9" },
	{ "ten.test", DNS_T_TXT, "v=spf1 a a a a a a a a a a +all" },
	{ "ten.test", DNS_T_A, "10.9.9.9" },
	{ "ptr.test", DNS_T_TXT, "v=spf1 ptr -all" },
	{ "7.2.0.192.in-addr.arpa", DNS_T_PTR, "host.ptr.test" },
	{ "host.ptr.test", DNS_T_A, "192.0.2.7" },
	{ "helo.test", DNS_T_TXT, "v=spf1 ip4:192.0.2.7 -all" },
	{ "six.test", DNS_T_TXT, "v=spf1 ip6:2001:db8::/48 -all" },
	{ NULL, 0, NULL },
};

static void
test_eval(void **state)
{
	struct spf_outcome o;

	(void)state;
	zone = z1;
	assert_int_equal(run("192.0.2.7", "u@pass.test", "h", &o), SPF_PASS);
	assert_string_equal(o.domain, "pass.test");
	assert_int_equal(run("192.0.3.7", "u@pass.test", "h", &o), SPF_FAIL);
	assert_int_equal(run("192.0.2.10", "u@a.test", "h", &o), SPF_PASS);
	assert_int_equal(run("2001:db8::10", "u@a.test", "h", &o), SPF_PASS);
	assert_int_equal(run("2001:db8::11", "u@a.test", "h", &o), SPF_FAIL);
	assert_int_equal(run("192.0.2.99", "u@acidr.test", "h", &o), SPF_PASS);
	assert_int_equal(run("192.0.3.99", "u@acidr.test", "h", &o),
	    SPF_SOFTFAIL);
	assert_int_equal(run("198.51.100.7", "u@mx.test", "h", &o), SPF_PASS);
	assert_int_equal(run("198.51.100.8", "u@mx.test", "h", &o),
	    SPF_NEUTRAL);
	assert_int_equal(run("192.0.2.7", "u@inc.test", "h", &o), SPF_PASS);
	assert_int_equal(run("10.0.0.1", "u@inc.test", "h", &o), SPF_FAIL);
	assert_int_equal(run("10.0.0.1", "u@incnone.test", "h", &o),
	    SPF_PERMERROR);
	assert_int_equal(run("192.0.2.7", "u@red.test", "h", &o), SPF_PASS);
	assert_int_equal(run("10.0.0.1", "u@red.test", "h", &o), SPF_FAIL);
	assert_int_equal(run("10.0.0.1", "u@rednone.test", "h", &o),
	    SPF_PERMERROR);
	assert_int_equal(run("192.0.2.7", "u@ex.test", "h", &o), SPF_PASS);
	assert_int_equal(run("192.0.2.8", "u@ex.test", "h", &o), SPF_FAIL);
	assert_int_equal(run("192.0.2.8", "u@two.test", "h", &o),
	    SPF_PERMERROR);
	assert_int_equal(run("192.0.2.8", "u@temp.test", "h", &o),
	    SPF_TEMPERROR);
	assert_int_equal(run("192.0.2.8", "u@tempa.test", "h", &o),
	    SPF_TEMPERROR);
	assert_int_equal(run("192.0.2.8", "u@soft.test", "h", &o),
	    SPF_SOFTFAIL);
	assert_int_equal(run("192.0.2.8", "u@neutral.test", "h", &o),
	    SPF_NEUTRAL);
	assert_int_equal(run("192.0.2.8", "u@bad.test", "h", &o),
	    SPF_PERMERROR);
	assert_int_equal(run("192.0.2.8", "u@nothing.test", "h", &o),
	    SPF_NONE);
	assert_int_equal(run("192.0.2.8", "u@exp.test", "h", &o), SPF_FAIL);
	assert_string_equal(o.exp, "192.0.2.8 is not one of exp.test's servers");
	assert_int_equal(run("192.0.2.8", "u@voids.test", "h", &o),
	    SPF_PERMERROR);
	assert_int_equal(run("192.0.2.8", "u@voids2.test", "h", &o), SPF_PASS);
	assert_int_equal(o.voids, 2);
	assert_int_equal(run("192.0.2.8", "u@loop.test", "h", &o),
	    SPF_PERMERROR);
	assert_int_equal(run("192.0.2.8", "u@many.test", "h", &o),
	    SPF_PERMERROR);
	assert_int_equal(run("192.0.2.8", "u@ten.test", "h", &o), SPF_PASS);
	assert_int_equal(o.lookups, 10);
	assert_int_equal(run("192.0.2.7", "u@ptr.test", "h", &o), SPF_PASS);
	assert_int_equal(run("192.0.2.8", "u@ptr.test", "h", &o), SPF_FAIL);
	/* The null sender: the HELO identity. */
	assert_int_equal(run("192.0.2.7", "", "helo.test", &o), SPF_PASS);
	assert_true(o.helo_identity);
	assert_string_equal(o.identity, "postmaster@helo.test");
	assert_int_equal(run("192.0.2.8", "", "helo.test", &o), SPF_FAIL);
	assert_int_equal(run("192.0.2.8", "", "[192.0.2.8]", &o), SPF_NONE);
	assert_int_equal(run("2001:db8::1", "u@six.test", "h", &o), SPF_PASS);
	assert_int_equal(run("2001:db9::1", "u@six.test", "h", &o), SPF_FAIL);
	assert_string_equal(spf_result_str(SPF_SOFTFAIL), "softfail");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_macros),
		cmocka_unit_test(test_eval),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
