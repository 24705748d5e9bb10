/* Unit tests of common/dmarc.c: the record parser (v= first, p= required,
   sp=, adkim=/aspf=, pct=, unknown tags), organizational domains from a
   small list and from Debian's public_suffix_list.dat (wildcards and
   exceptions), and alignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "dmarc.h"

static int
parse(const char *s, struct dmarc_record *r)
{
	return dmarc_record_parse(s, strlen(s), r);
}

static void
test_record(void **state)
{
	struct dmarc_record r;

	(void)state;
	assert_int_equal(parse("v=DMARC1; p=reject", &r), 0);
	assert_int_equal(r.p, DMARC_P_REJECT);
	assert_int_equal(r.sp, DMARC_P_REJECT);
	assert_int_equal(r.pct, 100);
	assert_false(r.adkim_strict);
	assert_int_equal(parse("v=DMARC1;p=quarantine;sp=none;adkim=s;"
	    "aspf=s;pct=20;rua=mailto:x@y.test;fo=1", &r), 0);
	assert_int_equal(r.p, DMARC_P_QUARANTINE);
	assert_int_equal(r.sp, DMARC_P_NONE);
	assert_true(r.adkim_strict);
	assert_true(r.aspf_strict);
	assert_int_equal(r.pct, 20);
	assert_int_equal(parse(" v = DMARC1 ; p = none ; ", &r), 0);
	assert_int_equal(r.p, DMARC_P_NONE);
	assert_int_equal(parse("v=DMARC1; p=reject; pct=500", &r), 0);
	assert_int_equal(r.pct, 100);
	assert_int_equal(parse("p=reject; v=DMARC1", &r), -1);
	assert_int_equal(parse("v=DMARC1", &r), -1);
	assert_int_equal(parse("v=DMARC1; p=bogus", &r), -1);
	assert_int_equal(parse("v=dmarc1; p=reject", &r), -1);
	assert_int_equal(parse("v=DMARC1; p=reject; p=none", &r), -1);
	assert_int_equal(parse("", &r), -1);
	assert_int_equal(parse("v=DMARC1; =x", &r), -1);
}

static void
org(const struct psl *p, const char *d, const char *want)
{
	char out[256];

	psl_org_domain(p, d, out, sizeof(out));
	if (strcmp(out, want) != 0)
		fail_msg("%s: got %s, want %s", d, out, want);
}

static void
test_psl_small(void **state)
{
	const char *list = "// comment\n"
	    "com\nuk\nco.uk\n*.ck\n!www.ck\n"
	    "// ===BEGIN PRIVATE DOMAINS===\nblogspot.com\n";
	struct psl *p = psl_parse(list, strlen(list));

	(void)state;
	org(p, "mail.example.com", "example.com");
	org(p, "Example.COM", "example.com");
	org(p, "a.b.example.co.uk", "example.co.uk");
	org(p, "co.uk", "co.uk");
	org(p, "x.y.foo.ck", "y.foo.ck");
	org(p, "www.ck", "www.ck");
	org(p, "a.www.ck", "www.ck");
	org(p, "me.blogspot.com", "me.blogspot.com");
	org(p, "a.unknown", "a.unknown");
	org(p, "x.a.unknown", "a.unknown");
	assert_true(dmarc_aligned(p, "mail.example.com", "example.com", false));
	assert_false(dmarc_aligned(p, "mail.example.com", "example.com", true));
	assert_true(dmarc_aligned(p, "example.com", "EXAMPLE.com", true));
	assert_false(dmarc_aligned(p, "a.co.uk", "b.co.uk", false));
	assert_false(dmarc_aligned(p, "", "b.co.uk", false));
	psl_free(&p);
	org(NULL, "a.b.example.org", "example.org");
}

static void
test_psl_debian(void **state)
{
	char err[256];
	struct psl *p;

	(void)state;
	if (access(DMARC_PSL_PATH, R_OK) != 0)
		skip();
	p = psl_load(DMARC_PSL_PATH, err, sizeof(err));
	assert_non_null(p);
	org(p, "mail.example.com", "example.com");
	org(p, "www.bbc.co.uk", "bbc.co.uk");
	org(p, "a.b.city.kawasaki.jp", "city.kawasaki.jp");
	org(p, "x.y.foo.kawasaki.jp", "y.foo.kawasaki.jp");
	org(p, "sub.dk.test", "dk.test");
	psl_free(&p);
	assert_null(psl_load("/nonexistent/psl.dat", err, sizeof(err)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record),
		cmocka_unit_test(test_psl_small),
		cmocka_unit_test(test_psl_debian),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
