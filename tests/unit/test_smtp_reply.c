/* Unit tests of mtad's SMTP reply parser: single and multi-line replies,
   enhanced status codes, the one-line rendering, EHLO keywords, and the
   bounds a hostile remote runs into (line length, line count, code changes,
   junk). Every valid case is also fed one byte at a time and at every
   two-chunk split, with "need more" until the last line's LF arrives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_reply.h"

/* Feeds s in chunks: the first of size split (0 = one byte at a time for
   every chunk), then the rest; keeps unconsumed bytes like a client's input
   buffer does. Returns the number of whole replies; *last gets a copy of
   the last one. -1 on a parse error. */
static int
feed(const char *s, size_t len, size_t split, struct smtp_reply *last)
{
	struct smtp_reply_parser p;
	char *held = malloc(len + 1);
	size_t hl = 0, pos = 0;
	int n = 0;

	smtp_reply_parser_init(&p);
	while (pos < len) {
		size_t chunk = split == 0 ? 1 : (pos == 0 ? split : len - pos);

		if (chunk > len - pos)
			chunk = len - pos;
		memcpy(held + hl, s + pos, chunk);
		hl += chunk;
		pos += chunk;
		for (;;) {
			size_t used;
			const struct smtp_reply *r;
			const char *err;
			int k = smtp_reply_parse(&p, held, hl, &used, &r, &err);

			if (k < 0) {
				free(held);
				return -1;
			}
			memmove(held, held + used, hl - used);
			hl -= used;
			if (k == 0)
				break;
			*last = *r;
			n++;
		}
	}
	free(held);
	assert_int_equal(hl, 0);
	return n;
}

static void
check_all_splits(const char *s, int want_n, int want_code)
{
	size_t len = strlen(s);
	struct smtp_reply r;

	assert_int_equal(feed(s, len, len, &r), want_n);
	assert_int_equal(r.code, want_code);
	assert_int_equal(feed(s, len, 0, &r), want_n);
	assert_int_equal(r.code, want_code);
	for (size_t i = 1; i < len; i++) {
		assert_int_equal(feed(s, len, i, &r), want_n);
		assert_int_equal(r.code, want_code);
	}
}

static void
test_single_and_multi(void **state)
{
	struct smtp_reply r;
	char one[256];
	const char *s = "250-mx.example.test hello\r\n250-PIPELINING\r\n"
	    "250 8BITMIME\r\n";

	assert_int_equal(feed(s, strlen(s), strlen(s), &r), 1);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.nlines, 3);
	assert_string_equal(smtp_reply_line(&r, 0), "mx.example.test hello");
	assert_string_equal(smtp_reply_line(&r, 2), "8BITMIME");
	assert_null(smtp_reply_line(&r, 3));
	smtp_reply_first_word(&r, one, sizeof(one));
	assert_string_equal(one, "mx.example.test");
	check_all_splits(s, 1, 250);

	s = "550 5.1.1 <bob@example.test>: user unknown\r\n";
	assert_int_equal(feed(s, strlen(s), strlen(s), &r), 1);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.enhanced, "5.1.1");
	assert_string_equal(smtp_reply_oneline(&r, one, sizeof(one)),
	    "550 5.1.1 <bob@example.test>: user unknown");
	check_all_splits(s, 1, 550);

	/* Two replies back to back (pipelining), bare LF, a code alone. */
	s = "250 2.1.0 ok\n354\r\n";
	assert_int_equal(feed(s, strlen(s), strlen(s), &r), 2);
	assert_int_equal(r.code, 354);
	assert_string_equal(r.enhanced, "");
	check_all_splits(s, 2, 354);

	s = "421-4.3.2 going down\r\n421 4.3.2 bye\r\n";
	assert_int_equal(feed(s, strlen(s), strlen(s), &r), 1);
	assert_string_equal(smtp_reply_oneline(&r, one, sizeof(one)),
	    "421 4.3.2 going down / 4.3.2 bye");
	/* The class of the enhanced code must match the reply's. */
	s = "250 5.1.1 odd\r\n";
	assert_int_equal(feed(s, strlen(s), strlen(s), &r), 1);
	assert_string_equal(r.enhanced, "");
	s = "451 4.7.650 long detail\r\n";
	assert_int_equal(feed(s, strlen(s), strlen(s), &r), 1);
	assert_string_equal(r.enhanced, "4.7.650");
	/* Control bytes do not reach the one-line form. */
	s = "550 bad\x01\x7f text\r\n";
	assert_int_equal(feed(s, strlen(s), strlen(s), &r), 1);
	assert_string_equal(smtp_reply_oneline(&r, one, sizeof(one)),
	    "550 bad?? text");
	/* Truncated to the size given. */
	smtp_reply_oneline(&r, one, 9);
	assert_string_equal(one, "550 bad?");
}

static void
test_hostile(void **state)
{
	struct smtp_reply r;
	struct smtp_reply_parser p;
	char *big;
	size_t used, n;
	const struct smtp_reply *rp;
	const char *err;

	assert_int_equal(feed("hello\r\n", 7, 7, &r), -1);
	assert_int_equal(feed("25\r\n", 4, 4, &r), -1);
	assert_int_equal(feed("250x\r\n", 6, 6, &r), -1);
	assert_int_equal(feed("150 no\r\n", 8, 8, &r), -1);
	assert_int_equal(feed("650 no\r\n", 8, 8, &r), -1);
	assert_int_equal(feed("250-a\r\n251 b\r\n", 14, 14, &r), -1);

	/* A line with no end, longer than the bound. */
	big = malloc(SMTP_REPLY_LINE_MAX + 10);
	memset(big, 'x', SMTP_REPLY_LINE_MAX + 10);
	memcpy(big, "250 ", 4);
	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_parse(&p, big, SMTP_REPLY_LINE_MAX - 1,
	    &used, &rp, &err), 0);
	assert_int_equal(smtp_reply_parse(&p, big, SMTP_REPLY_LINE_MAX,
	    &used, &rp, &err), -1);
	big[SMTP_REPLY_LINE_MAX + 9] = '\n';
	assert_int_equal(smtp_reply_parse(&p, big, SMTP_REPLY_LINE_MAX + 10,
	    &used, &rp, &err), -1);
	free(big);

	/* Endless continuation lines: refused past the bound. */
	n = (SMTP_REPLY_LINES_MAX + 1) * 8;
	big = malloc(n + 1);
	for (size_t i = 0; i < SMTP_REPLY_LINES_MAX + 1; i++)
		memcpy(big + i * 8, "250-abc\n", 8);
	assert_int_equal(feed(big, n, n, &r), -1);
	/* Within the line bound, the kept text is bounded and counted. */
	free(big);
	n = SMTP_REPLY_LINES_MAX * 100;
	big = malloc(n + 1);
	for (size_t i = 0; i < SMTP_REPLY_LINES_MAX; i++) {
		memset(big + i * 100, 'y', 100);
		memcpy(big + i * 100, "250-", 4);
		big[i * 100 + 99] = '\n';
	}
	big[(SMTP_REPLY_LINES_MAX - 1) * 100 + 3] = ' ';
	assert_int_equal(feed(big, n, n, &r), 1);
	assert_int_equal(r.nlines, SMTP_REPLY_LINES_MAX);
	assert_true(r.nkept < r.nlines);
	assert_true(r.text_len <= sizeof(r.text));
	free(big);
}

static void
test_ehlo(void **state)
{
	struct smtp_reply r;
	struct smtp_ehlo e;
	const char *s = "250-mx.example.test\r\n250-PIPELINING\r\n"
	    "250-SIZE 10485760\r\n250-starttls\r\n250-8BITMIME\r\n"
	    "250-SMTPUTF8\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n"
	    "250-AUTH=LOGIN\r\n250 AUTH CRAM-MD5 PLAIN LOGIN\r\n";

	assert_int_equal(feed(s, strlen(s), strlen(s), &r), 1);
	smtp_ehlo_parse(&r, &e);
	assert_true(e.pipelining);
	assert_true(e.has_size);
	assert_int_equal(e.size, 10485760);
	assert_true(e.starttls);
	assert_true(e.eightbitmime);
	assert_true(e.smtputf8);
	assert_true(e.dsn);
	assert_true(e.enhanced);
	assert_int_equal(e.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN);
	check_all_splits(s, 1, 250);

	s = "250-mx\r\n250-SIZE\r\n250-AUTH CRAM-MD5\r\n250 XFOO\r\n";
	assert_int_equal(feed(s, strlen(s), strlen(s), &r), 1);
	smtp_ehlo_parse(&r, &e);
	assert_true(e.has_size);
	assert_int_equal(e.size, 0);
	assert_int_equal(e.auth, 0);
	assert_false(e.starttls);
	assert_false(e.pipelining);

	s = "250-mx\r\n250 SIZE 99999999999999999999999\r\n";
	assert_int_equal(feed(s, strlen(s), strlen(s), &r), 1);
	smtp_ehlo_parse(&r, &e);
	assert_int_equal(e.size, 0);

	/* The greeting's name only (HELO-style reply): no keywords. */
	s = "250 mx.example.test\r\n";
	assert_int_equal(feed(s, strlen(s), strlen(s), &r), 1);
	smtp_ehlo_parse(&r, &e);
	assert_false(e.has_size);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_and_multi),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_ehlo),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
