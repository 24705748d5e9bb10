/* Unit tests of common/milter.c and the config keys for it: milter lists
   (inet:, unix:, bad forms), and milter, milter_timeout, milter_failure,
   dnsbl in config_parse. Whole runs against real and misbehaving milters
   are in the protocol tests (tests/proto/milter). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "config.h"
#include "milter.h"
#include "util.h"

static void
test_list(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(milter_list_check("", err, sizeof(err)), 0);
	assert_int_equal(milter_list_check("inet:127.0.0.1:11332", err,
	    sizeof(err)), 0);
	assert_int_equal(milter_list_check("inet:localhost:8891, "
	    "unix:/run/opendkim.sock,127.0.0.1:1", err, sizeof(err)), 0);
	assert_int_equal(milter_list_check("inet:[::1]:11332", err,
	    sizeof(err)), 0);
	assert_int_equal(milter_list_check("inet:host", err, sizeof(err)), -1);
	assert_int_equal(milter_list_check("inet:host:0", err, sizeof(err)),
	    -1);
	assert_int_equal(milter_list_check("inet:host:99999", err,
	    sizeof(err)), -1);
	assert_int_equal(milter_list_check("inet::25", err, sizeof(err)), -1);
	assert_int_equal(milter_list_check("unix:relative", err, sizeof(err)),
	    -1);
	assert_int_equal(milter_list_check("a:1 b:2 c:3 d:4 e:5 f:6 g:7 h:8 "
	    "i:9", err, sizeof(err)), -1);
}

static int
parse(const char *text, struct config *cfg)
{
	char err[256];

	config_init(cfg);
	return config_parse(cfg, text, strlen(text), "t", err, sizeof(err));
}

static void
test_config(void **state)
{
	struct config cfg;

	(void)state;
	assert_int_equal(parse("", &cfg), 0);
	assert_null(cfg.milter);
	assert_null(cfg.dnsbl);
	assert_true(cfg.milter_timeout == 30);
	assert_false(cfg.milter_fail_accept);
	config_free(&cfg);
	assert_int_equal(parse("milter = inet:127.0.0.1:11332\n"
	    "milter_timeout = 2m\nmilter_failure = accept\n"
	    "dnsbl = zen.example.org, bl.test\n", &cfg), 0);
	assert_string_equal(cfg.milter, "inet:127.0.0.1:11332");
	assert_true(cfg.milter_timeout == 120);
	assert_true(cfg.milter_fail_accept);
	assert_string_equal(cfg.dnsbl, "zen.example.org, bl.test");
	config_free(&cfg);
	assert_int_equal(parse("milter = inet:nohost\n", &cfg), -1);
	config_free(&cfg);
	assert_int_equal(parse("milter_failure = maybe\n", &cfg), -1);
	config_free(&cfg);
	assert_int_equal(parse("dnsbl = bad..zone\n", &cfg), -1);
	config_free(&cfg);
	assert_int_equal(parse("milter_timeout = 0\n", &cfg), -1);
	config_free(&cfg);
}

static void
edit(const char *h, const struct milter_mod *mods, size_t n,
    const char *want)
{
	struct buf out;

	buf_init(&out);
	milter_header_edit(h, strlen(h), mods, n, &out);
	buf_putc(&out, '\0');
	assert_string_equal(out.data, want);
	buf_free(&out);
}

/* Each change sees the header as the ones before it left it: indices
   count the fields added and skip the deleted ones (what a later milter
   saw when it chose them). */
static void
test_header_edit(void **state)
{
	const char *h = "From: a\r\nSubject: s\r\nX-A: 1\r\n\tfold\r\n"
	    "X-A: 2\r\n";
	const struct milter_mod mods[] = {
		{ 'h', 0, "X-New", "v" },
		{ 'i', 0, "Authentication-Results", "top" },
		{ 'm', 2, "X-A", "two" },
		{ 'm', 1, "Subject", "" },
		{ 'm', 1, "X-Missing", "" },
		{ 'm', 1, "X-Gone", "here" },
		{ 'i', 2, "X-Mid", "m" },
		{ 'm', 2, "x-new", "" },
	};

	(void)state;
	edit(h, mods, 0, h);
	edit("", NULL, 0, "");
	edit(h, mods, sizeof(mods) / sizeof(mods[0]),
	    "Authentication-Results: top\r\nFrom: a\r\nX-Mid: m\r\n"
	    "X-A: 1\r\n\tfold\r\nX-A: two\r\nX-New: v\r\n"
	    "X-Gone: here\r\n");
	edit("", mods, 1, "X-New: v\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_header_edit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
