/* Unit tests of smtpd's header scan (smtpd/smtp_submit.c): Received:
   counting for the hop limit, Message-ID:/Date: detection, the From:
   domain that picks the DKIM key, over folded fields, LF-only text, a
   header without an end, and arbitrary bytes. */
// LINK: smtpd/smtp_submit.c smtpd/smtp_junk.c smtpd/smtp_checks.c
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "smtp_session.h"

static void
scan(const char *text, struct smtp_hdr_info *hi)
{
	smtp_hdr_scan(text, strlen(text), hi);
}

static void
test_counts(void **state)
{
	struct smtp_hdr_info hi;
	const char *m =
	    "Return-Path: <a@b>\r\n"
	    "Received: from x\r\n\tby y; date\r\n"
	    "received : from z\r\n"
	    "X-Received: not one\r\n"
	    "MESSAGE-id: <1@x>\r\n"
	    "From: \"Alice, A.\" <Alice@Example.TEST>\r\n"
	    "From: second@other.test\r\n"
	    "\r\n"
	    "Received: in the body\r\n"
	    "Date: in the body\r\n";

	(void)state;
	scan(m, &hi);
	assert_int_equal(hi.received, 2);
	assert_true(hi.message_id);
	assert_false(hi.date);
	assert_string_equal(hi.from_domain, "example.test");
	assert_int_equal(hi.len, strstr(m, "\r\n\r\n") + 4 - m);
}

static void
test_from_forms(void **state)
{
	static const struct { const char *from, *domain; } t[] = {
		{ "From: a@x.test\r\n\r\n", "x.test" },
		{ "From: A <a@X.Test>\r\n\r\n", "x.test" },
		{ "From: a@x.test (Alice)\r\n\r\n", "x.test" },
		{ "From: a@x.test, b@y.test\r\n\r\n", "x.test" },
		{ "From:\r\n  Alice\r\n  <a@folded.test>\r\n\r\n", "folded.test" },
		{ "From: nobody\r\n\r\n", "" },
		{ "From: <@>\r\n\r\n", "" },
		{ "Subject: none\r\n\r\n", "" },
		{ "From: a@x.test\n\nbody\n", "x.test" },
	};
	struct smtp_hdr_info hi;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		scan(t[i].from, &hi);
		if (strcmp(hi.from_domain, t[i].domain) != 0)
			fail_msg("row %zu: got '%s'", i, hi.from_domain);
	}
}

static void
test_edges(void **state)
{
	struct smtp_hdr_info hi;
	char junk[4096];

	(void)state;
	scan("", &hi);
	assert_int_equal(hi.len, 0);
	scan("\r\nbody", &hi);
	assert_int_equal(hi.len, 2);
	scan("Date: x\r\nReceived: y", &hi);      /* no end of header */
	assert_true(hi.date);
	assert_int_equal(hi.received, 1);
	assert_int_equal(hi.len, strlen("Date: x\r\nReceived: y"));
	scan("no colon here\r\nDate: x\r\n\r\n", &hi);
	assert_true(hi.date);
	/* Arbitrary bytes: never past the end, whatever they hold. */
	srand(7);
	for (int round = 0; round < 200; round++) {
		size_t n = (size_t)(rand() % (int)sizeof(junk));
		for (size_t i = 0; i < n; i++)
			junk[i] = "\r\n :@<>,\tFromReceived"[rand() % 21];
		smtp_hdr_scan(junk, n, &hi);
		assert_true(hi.len <= n);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_from_forms),
		cmocka_unit_test(test_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
