/* Unit tests for the failed-login throttle in common/auth.c: growing delay,
   counting, success clears, and IPv6 peers counted per /64. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "auth.h"

static void
test_delay_grows(void **state)
{
	struct auth_throttle *t = auth_throttle_new();
	double d1, d2, d3;

	(void)state;
	d1 = auth_throttle_fail(t, "192.0.2.1");
	d2 = auth_throttle_fail(t, "192.0.2.1");
	d3 = auth_throttle_fail(t, "192.0.2.1");
	assert_true(d1 < d2 && d2 < d3);
	assert_int_equal(auth_throttle_count(t, "192.0.2.1"), 3);
	assert_int_equal(auth_throttle_count(t, "192.0.2.2"), 0);
	auth_throttle_success(t, "192.0.2.1");
	assert_int_equal(auth_throttle_count(t, "192.0.2.1"), 0);
	auth_throttle_free(&t);
	assert_null(t);
}

static void
test_ipv6_per_64(void **state)
{
	struct auth_throttle *t = auth_throttle_new();

	(void)state;
	auth_throttle_fail(t, "2001:db8:1:2::1");
	auth_throttle_fail(t, "2001:db8:1:2:ffff:eeee:dddd:cccc");
	assert_int_equal(auth_throttle_count(t, "2001:db8:1:2::77"), 2);
	assert_int_equal(auth_throttle_count(t, "2001:db8:1:3::1"), 0);
	/* v4-mapped addresses stay whole */
	auth_throttle_fail(t, "::ffff:192.0.2.1");
	assert_int_equal(auth_throttle_count(t, "::ffff:192.0.2.2"), 0);
	auth_throttle_success(t, "2001:db8:1:2::5");
	assert_int_equal(auth_throttle_count(t, "2001:db8:1:2::1"), 0);
	/* not an address: used as given */
	auth_throttle_fail(t, "unknown");
	assert_int_equal(auth_throttle_count(t, "unknown"), 1);
	auth_throttle_free(&t);
}

static void
test_full_table(void **state)
{
	struct auth_throttle *t = auth_throttle_new();
	char addr[32];
	int i;

	(void)state;
	/* 65536 addresses fill the table (THROTTLE_MAX_ENTRIES). Those
	   already in keep counting; a new one is not tracked but gets the
	   longest delay, and many attempts while full stay cheap. */
	for (i = 0; i < 65536; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.1", i >> 8, i & 255);
		assert_true(auth_throttle_fail(t, addr) < 15.0);
	}
	for (i = 0; i < 20000; i++)
		assert_true(auth_throttle_fail(t, "192.0.2.77") == 15.0);
	assert_int_equal(auth_throttle_count(t, "192.0.2.77"), 0);
	assert_true(auth_throttle_begin(t, "192.0.2.77", 1));
	assert_true(auth_throttle_fail(t, "10.0.5.1") < 15.0);
	assert_int_equal(auth_throttle_count(t, "10.0.5.1"), 2);
	auth_throttle_free(&t);
}

static void
test_begin_end(void **state)
{
	struct auth_throttle *t = auth_throttle_new();
	int i;

	(void)state;
	/* No failure yet: a burst of checks from one address all start. */
	for (i = 0; i < 20; i++)
		assert_true(auth_throttle_begin(t, "192.0.2.9", 5));
	for (i = 0; i < 20; i++)
		auth_throttle_end(t, "192.0.2.9");
	/* One failure: running checks count toward the limit. */
	auth_throttle_fail(t, "192.0.2.9");
	for (i = 0; i < 4; i++)
		assert_true(auth_throttle_begin(t, "192.0.2.9", 5));
	assert_false(auth_throttle_begin(t, "192.0.2.9", 5));
	/* They fail: the limit is reached for good. */
	for (i = 0; i < 4; i++) {
		auth_throttle_end(t, "192.0.2.9");
		auth_throttle_fail(t, "192.0.2.9");
	}
	assert_int_equal(auth_throttle_count(t, "192.0.2.9"), 5);
	assert_false(auth_throttle_begin(t, "192.0.2.9", 5));
	/* A success clears the failures but keeps a running check known. */
	assert_true(auth_throttle_begin(t, "192.0.2.10", 5));
	assert_true(auth_throttle_begin(t, "192.0.2.10", 5));
	auth_throttle_end(t, "192.0.2.10");
	auth_throttle_success(t, "192.0.2.10");
	auth_throttle_end(t, "192.0.2.10");
	auth_throttle_end(t, "192.0.2.10");   /* unmatched: harmless */
	assert_int_equal(auth_throttle_count(t, "192.0.2.10"), 0);
	auth_throttle_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delay_grows),
		cmocka_unit_test(test_ipv6_per_64),
		cmocka_unit_test(test_full_table),
		cmocka_unit_test(test_begin_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
