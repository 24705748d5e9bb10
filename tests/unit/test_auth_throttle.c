/* Unit tests for the failed-login throttle in common/auth.c: growing delay,
   counting, success clears, IPv6 peers counted per /64, guesses reserved
   when they start; and the verified-credentials cache. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <time.h>

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

static void
test_reserve_at_start(void **state)
{
	struct auth_throttle *t = auth_throttle_new();
	int i;

	(void)state;
	/* A new address opening with many parallel guesses: only `limit`
	   are checked at once; the rest wait, not refused (an office behind
	   one NAT logging in at 9:00). */
	for (i = 0; i < 5; i++)
		assert_int_equal(auth_throttle_begin(t, "192.0.2.20", 5),
		    AUTH_BEGIN_GO);
	for (i = 0; i < 50; i++)
		assert_int_equal(auth_throttle_begin(t, "192.0.2.20", 5),
		    AUTH_BEGIN_WAIT);
	/* The first verdict is a failure: the waiting ones are refused. */
	auth_throttle_end(t, "192.0.2.20");
	auth_throttle_fail(t, "192.0.2.20");
	assert_int_equal(auth_throttle_begin(t, "192.0.2.20", 5),
	    AUTH_BEGIN_REFUSE);
	/* Each running one that fails fills the budget it had reserved. */
	for (i = 0; i < 4; i++) {
		auth_throttle_end(t, "192.0.2.20");
		auth_throttle_fail(t, "192.0.2.20");
		assert_int_equal(auth_throttle_begin(t, "192.0.2.20", 5),
		    AUTH_BEGIN_REFUSE);
	}
	assert_int_equal(auth_throttle_count(t, "192.0.2.20"), 5);
	/* A success releases its slot to the next one waiting. */
	for (i = 0; i < 5; i++)
		assert_int_equal(auth_throttle_begin(t, "192.0.2.21", 5),
		    AUTH_BEGIN_GO);
	assert_int_equal(auth_throttle_begin(t, "192.0.2.21", 5),
	    AUTH_BEGIN_WAIT);
	auth_throttle_end(t, "192.0.2.21");
	auth_throttle_success(t, "192.0.2.21");
	assert_int_equal(auth_throttle_begin(t, "192.0.2.21", 5),
	    AUTH_BEGIN_GO);
	auth_throttle_free(&t);
}

#define H1 "$argon2id$v=19$m=65536,t=2,p=1$salt1$hash1"
#define H2 "$argon2id$v=19$m=65536,t=2,p=1$salt2$hash2"

static void
test_cache(void **state)
{
	(void)state;
	/* Off: nothing is kept. */
	auth_cache_set_ttl(0);
	auth_cache_put("a@example.com", "pw", H1);
	assert_false(auth_cache_probe("a@example.com", "pw"));
	assert_false(auth_cache_check("a@example.com", "pw", H1));
	auth_cache_set_ttl(300);
	auth_cache_put("a@example.com", "pw", H1);
	assert_true(auth_cache_probe("a@example.com", "pw"));
	assert_true(auth_cache_check("a@example.com", "pw", H1));
	/* Another password, another user, a split that differs. */
	assert_false(auth_cache_check("a@example.com", "pw2", H1));
	assert_false(auth_cache_check("b@example.com", "pw", H1));
	assert_false(auth_cache_check("a@example.compw", "", H1));
	/* The stored hash changed (mailctl user passwd): a miss, and the
	   entry is gone even for the old hash. */
	assert_false(auth_cache_check("a@example.com", "pw", H2));
	assert_false(auth_cache_probe("a@example.com", "pw"));
	assert_false(auth_cache_check("a@example.com", "pw", H1));
	/* Dropped (the user was deleted). */
	auth_cache_put("a@example.com", "pw", H1);
	auth_cache_drop("a@example.com", "pw");
	assert_false(auth_cache_check("a@example.com", "pw", H1));
	/* Turning it off empties it. */
	auth_cache_put("a@example.com", "pw", H1);
	auth_cache_set_ttl(0);
	auth_cache_set_ttl(300);
	assert_false(auth_cache_check("a@example.com", "pw", H1));
	auth_cache_set_ttl(0);
}

static void
test_cache_bounded(void **state)
{
	char user[64];
	int i;

	(void)state;
	auth_cache_set_ttl(300);
	for (i = 0; i < AUTH_CACHE_MAX + 100; i++) {
		snprintf(user, sizeof(user), "u%d@example.com", i);
		auth_cache_put(user, "pw", H1);
	}
	/* The oldest went first. */
	assert_false(auth_cache_check("u0@example.com", "pw", H1));
	assert_false(auth_cache_check("u99@example.com", "pw", H1));
	snprintf(user, sizeof(user), "u%d@example.com", AUTH_CACHE_MAX + 99);
	assert_true(auth_cache_check(user, "pw", H1));
	assert_true(auth_cache_check("u100@example.com", "pw", H1));
	auth_cache_set_ttl(0);
}

static void
test_cache_expires(void **state)
{
	struct timespec t0, t1;

	(void)state;
	/* A 1 ms ttl, then wait for the clock to pass it (no bound on how
	   long that takes: only that it happened). */
	auth_cache_set_ttl(0.001);
	auth_cache_put("a@example.com", "pw", H1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while ((t1.tv_sec - t0.tv_sec) * 1000000000L +
	    (t1.tv_nsec - t0.tv_nsec) < 2000000L);
	assert_false(auth_cache_probe("a@example.com", "pw"));
	assert_false(auth_cache_check("a@example.com", "pw", H1));
	auth_cache_set_ttl(0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delay_grows),
		cmocka_unit_test(test_ipv6_per_64),
		cmocka_unit_test(test_full_table),
		cmocka_unit_test(test_begin_end),
		cmocka_unit_test(test_reserve_at_start),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_bounded),
		cmocka_unit_test(test_cache_expires),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
