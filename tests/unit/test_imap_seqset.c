/* Unit tests of sequence sets and modified UTF-7 names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_seqset.h"
#include "imap_utf7.h"
#include "util.h"

static void
test_parse_bad(void **state)
{
	static const char *const bad[] = { "", "0", "1:0", ",", "1,", "a",
		"1::2", "01", "4294967296", "1:*x", "*:", ":1" };
	struct imap_seqset set;
	const char *err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(imap_seqset_parse(bad[i], strlen(bad[i]), 100,
		    &set, &err), -1);
	assert_int_equal(imap_seqset_parse("1,2,3", 5, 2, &set, &err), -1);
}

/* Every non-zero 32-bit number, 4294967295 included, apart from '*'. */
static void
test_parse_top(void **state)
{
	struct imap_seqset set;
	const char *err, *s = "4294967295,1:4294967295,*:4294967294";

	assert_int_equal(imap_seqset_parse(s, strlen(s), 100, &set, &err), 0);
	assert_int_equal(set.n, 3);
	assert_int_equal(set.r[0].lo, 4294967295u);
	imap_seqset_resolve(&set, 5);
	assert_int_equal(set.n, 1);
	assert_true(imap_seqset_has(&set, 4294967295u));
	assert_true(imap_seqset_has(&set, 1));
	imap_seqset_free(&set);
	assert_int_equal(imap_seqset_parse("4294967295:*", 12, 100, &set,
	    &err), 0);
	assert_true(set.has_star);
	imap_seqset_resolve(&set, 7);
	assert_true(imap_seqset_has(&set, 7) && imap_seqset_has(&set,
	    4294967295u) && !imap_seqset_has(&set, 6));
	imap_seqset_free(&set);
	assert_int_equal(imap_seqset_parse("4294967295", 10, 100, &set,
	    &err), 0);
	assert_false(set.has_star);
	imap_seqset_resolve(&set, 0);
	assert_true(imap_seqset_has(&set, 4294967295u));
	assert_false(imap_seqset_has(&set, 1));
	imap_seqset_free(&set);
}

static void
test_resolve(void **state)
{
	struct imap_seqset set;
	const char *err;
	const char *s = "5:*,2,9:7,1";

	assert_int_equal(imap_seqset_parse(s, strlen(s), 100, &set, &err), 0);
	assert_true(set.has_star);
	imap_seqset_resolve(&set, 10);
	assert_int_equal(set.n, 2);     /* 1:2, 5:10 */
	assert_true(imap_seqset_has(&set, 1));
	assert_true(imap_seqset_has(&set, 2));
	assert_false(imap_seqset_has(&set, 3));
	assert_true(imap_seqset_has(&set, 7));
	assert_true(imap_seqset_has(&set, 10));
	assert_false(imap_seqset_has(&set, 11));
	assert_int_equal(imap_seqset_max(&set), 10);
	imap_seqset_free(&set);

	/* n:* with n past the highest still matches the highest */
	assert_int_equal(imap_seqset_parse("50:*", 4, 100, &set, &err), 0);
	imap_seqset_resolve(&set, 4);
	assert_true(imap_seqset_has(&set, 4));
	assert_false(imap_seqset_has(&set, 3));
	imap_seqset_free(&set);

	/* * of an empty mailbox matches nothing */
	assert_int_equal(imap_seqset_parse("1:*", 3, 100, &set, &err), 0);
	imap_seqset_resolve(&set, 0);
	assert_true(imap_seqset_has(&set, 1));
	imap_seqset_free(&set);
	assert_int_equal(imap_seqset_parse("*", 1, 100, &set, &err), 0);
	imap_seqset_resolve(&set, 0);
	assert_int_equal(set.n, 0);
	assert_false(imap_seqset_has(&set, 1));
	imap_seqset_free(&set);
}

static void
test_format(void **state)
{
	uint32_t v[] = { 1, 2, 3, 5, 7, 8 };
	struct buf b;

	buf_init(&b);
	imap_seqset_format(v, 6, &b);
	assert_string_equal(b.data, "1:3,5,7:8");
	buf_free(&b);
}

static void
test_utf7(void **state)
{
	static const struct { const char *utf8, *utf7; } ok[] = {
		{ "INBOX", "INBOX" },
		{ "a&b", "a&-b" },
		{ "Entw\xc3\xbcrfe", "Entw&APw-rfe" },
		{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&ZeVnLIqe-" },
		{ "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		  "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
		{ "\xf0\x9f\x98\x80", "&2D3eAA-" },
	};
	static const char *const bad[] = { "&", "&Jjo", "&U,BTFw", "&AGE-",
		"&2D0-", "&3gA-", "\xc3\xa9", "a\x01", "&Jjo!-", "&AP-" };
	struct buf b;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		buf_init(&b);
		assert_int_equal(imap_utf8_to_utf7(ok[i].utf8, &b), 0);
		assert_string_equal(b.data, ok[i].utf7);
		buf_free(&b);
		assert_int_equal(imap_utf7_to_utf8(ok[i].utf7, strlen(ok[i].utf7),
		    &b), 0);
		assert_string_equal(b.data, ok[i].utf8);
		buf_free(&b);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_init(&b);
		if (imap_utf7_to_utf8(bad[i], strlen(bad[i]), &b) != -1)
			fail_msg("accepted %s", bad[i]);
		buf_free(&b);
	}
	buf_init(&b);
	assert_int_equal(imap_utf8_to_utf7("\xff", &b), -1);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_top),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_utf7),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
