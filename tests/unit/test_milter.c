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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
