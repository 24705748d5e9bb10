/* Unit tests of the SEARCH evaluator: criteria parsed from real command
   text, evaluated against fake messages with lazy loaders that count how
   often they are called. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_parser.h"
#include "imap_search.h"
#include "store.h"

static const char hdr[] =
    "From: Carol <carol@a.test>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= report\r\n"
    "Date: Tue, 3 Mar 2026 23:30:00 -0200\r\nX-Tag: Special\r\n"
    "Cc: <user-from (comment)@ (comment) domain.org>, j@b.test\r\n\r\n";
static const char full[] =
    "From: Carol <carol@a.test>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= report\r\n"
    "Date: Tue, 3 Mar 2026 23:30:00 -0200\r\nX-Tag: Special\r\n"
    "Cc: <user-from (comment)@ (comment) domain.org>, j@b.test\r\n\r\n"
    "The quick brown fox\r\n";
static int header_loads, message_loads;

static int
get_header(void *ctx, const char **p, size_t *len)
{
	header_loads++;
	*p = hdr;
	*len = strlen(hdr);
	return 0;
}

static int
get_message(void *ctx, const char **p, size_t *len, const void **parts,
    size_t *plen)
{
	message_loads++;
	*p = full;
	*len = strlen(full);
	*parts = NULL;
	*plen = 0;
	return 0;
}

/* Parses "t SEARCH <q>" and evaluates it on message msn 2 of 5. */
static int
eval(const char *q, uint32_t flags, bool recent)
{
	static const struct imap_parser_limits lim = { 4096, 8192, 4096, 16,
		1000 };
	const char (*kw)[65] = (const char (*)[65])"$Work\0\0\0\0\0\0\0\0\0\0\0"
	    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
	    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
	struct imap_parser *p = imap_parser_new(&lim);
	char line[1024];
	size_t used;
	enum imap_pev ev;
	struct imap_cmd cmd;
	const char *tag, *err;
	struct imap_search *s;
	static const uint32_t saved[] = { 5, 20 };  /* SEARCHRES "$" */
	int r;
	struct imap_search_msg m = {
		.msn = 2, .uid = 20, .flags = flags, .recent = recent,
		.keywords = 1, .size = 1000,
		.internaldate = 1772580600, /* 2026-03-03 23:30 UTC */
		.internal_tz = 120,         /* +0200: already 4 Mar there */
		.modseq = 77,
		.get_header = get_header, .get_message = get_message,
	};

	snprintf(line, sizeof(line), "t SEARCH %s\r\n", q);
	if (imap_parser_next(p, line, strlen(line), &used, &ev, &cmd, &tag,
	    &err) != 1) {
		imap_parser_free(&p);
		return -1;      /* not even a command */
	}
	r = imap_search_parse(cmd.args, cmd.args_end, &s, &err);
	if (r != IMAP_SEARCH_OK) {
		imap_parser_free(&p);
		return r == IMAP_SEARCH_BADCHARSET ? -2 : -1;
	}
	imap_search_bind(s, 5, 50, kw, 1);
	imap_search_bind_saved(s, saved, 2);
	r = imap_search_match(s, &m);
	imap_search_free(&s);
	imap_parser_free(&p);
	return r;
}

static void
test_keys(void **state)
{
	static const struct { const char *q; int want; } t[] = {
		{ "ALL", 1 }, { "SEEN", 1 }, { "UNSEEN", 0 }, { "FLAGGED", 0 },
		{ "UNFLAGGED", 1 }, { "NEW", 0 }, { "RECENT", 1 }, { "OLD", 0 },
		{ "2", 1 }, { "3:*", 0 }, { "1:2", 1 }, { "*", 0 },
		{ "UID 20", 1 }, { "UID 21:*", 0 }, { "UID *", 0 },
		{ "LARGER 999", 1 }, { "LARGER 1000", 0 }, { "SMALLER 1001", 1 },
		{ "KEYWORD $work", 1 }, { "KEYWORD other", 0 },
		{ "UNKEYWORD other", 1 }, { "UNKEYWORD $Work", 0 },
		{ "ON 4-Mar-2026", 1 }, { "ON 3-Mar-2026", 0 },
		{ "BEFORE 4-Mar-2026", 0 }, { "SINCE 4-Mar-2026", 1 },
		{ "SENTON 3-Mar-2026", 1 }, { "SENTBEFORE 4-Mar-2026", 1 },
		{ "SENTSINCE 4-Mar-2026", 0 },
		{ "FROM carol", 1 }, { "FROM CAROL@A.TEST", 1 }, { "TO carol", 0 },
		/* addresses as parsed: comments and spaces gone */
		{ "CC user-from@domain.org", 1 }, { "CC \"@domain.org\"", 1 },
		{ "CC \"(comment)@\"", 1 }, { "CC j@b.test", 1 },
		{ "CC \"org>, j@\"", 1 },  /* raw text */
		{ "FROM user-from", 0 }, { "BCC user-from", 0 },
		{ "HEADER Cc user-from@domain.org", 0 },
		{ "UID 1:4294967295", 1 }, { "UID 4294967295", 0 },
		{ "UID 4294967296", -1 },
		{ "SUBJECT report", 1 }, { "SUBJECT \"GR\xc3\xbc\xc3\x9f\"", 1 },
		/* Unicode case folding (Latin, Greek, Cyrillic) */
		{ "SUBJECT \"GR\xc3\x9c\"", 1 },
		{ "SUBJECT \"GR\xc3\x9cX\"", 0 },
		{ "SUBJECT \"gr\xc3\xbc\xc3\x9f" "e\"", 1 },
		{ "SUBJECT gr\xc3\xbc", -1 },  /* 8-bit atom */
		{ "HEADER x-tag special", 1 }, { "HEADER X-Tag \"\"", 1 },
		{ "HEADER X-Nope \"\"", 0 },
		{ "BODY fox", 1 }, { "BODY FOX", 1 }, { "BODY carol", 0 },
		{ "TEXT carol", 1 }, { "TEXT QUICK", 1 }, { "TEXT zebra", 0 },
		{ "OR FLAGGED SEEN", 1 }, { "OR FLAGGED DRAFT", 0 },
		{ "NOT SEEN", 0 }, { "NOT NOT SEEN", 1 },
		{ "(SEEN (RECENT (NOT DELETED)))", 1 },
		{ "SEEN RECENT DELETED", 0 },
		{ "CHARSET UTF-8 SEEN", 1 }, { "CHARSET us-ascii SEEN", 1 },
		{ "CHARSET KOI8-R SEEN", -2 },
		{ "", -1 }, { "BOGUS", -1 }, { "OR SEEN", -1 }, { "NOT", -1 },
		{ "BEFORE 1-Foo-2026", -1 }, { "BEFORE 99-Mar-2026", -1 },
		{ "LARGER -1", -1 }, { "LARGER 99999999999999999999", -1 },
		{ "UID x", -1 }, { "0", -1 }, { "HEADER", -1 }, { "()", -1 },
		{ "KEYWORD \\Seen", -1 }, { "(SEEN", -1 },
		/* RFC 7162 MODSEQ, RFC 5182 "$" */
		{ "MODSEQ 77", 1 }, { "MODSEQ 78", 0 }, { "MODSEQ 0", 1 },
		{ "MODSEQ \"/flags/\\\\seen\" all 77", 1 },
		{ "MODSEQ \"/flags/x\" priv 78", 0 },
		{ "MODSEQ", -1 }, { "MODSEQ x", -1 }, { "MODSEQ -1", -1 },
		{ "MODSEQ \"/flags/x\" bogus 1", -1 }, { "MODSEQ \"/flags/x\"", -1 },
		{ "$", 1 }, { "UID $", 1 }, { "NOT $", 0 }, { "OR $ FLAGGED", 1 },
		{ "$:3", -1 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int r = eval(t[i].q, STORE_F_SEEN, true);

		if (r != t[i].want)
			fail_msg("%s: got %d want %d", t[i].q, r, t[i].want);
	}
}

static void
test_lazy_loading(void **state)
{
	header_loads = message_loads = 0;
	assert_int_equal(eval("SEEN LARGER 10 OR 1:3 UID 5", STORE_F_SEEN,
	    false), 1);
	assert_int_equal(header_loads + message_loads, 0);
	assert_int_equal(eval("FROM carol", 0, false), 1);
	assert_int_equal(message_loads, 0);
	assert_true(header_loads > 0);
	/* AND stops at the first false key: the body is never read */
	assert_int_equal(eval("DELETED BODY fox", 0, false), 0);
	assert_int_equal(message_loads, 0);
}

static void
test_depth_and_size(void **state)
{
	char q[1024];
	size_t i;

	q[0] = '\0';
	for (i = 0; i < 100; i++)
		strcat(q, "NOT ");
	strcat(q, "SEEN");
	assert_int_equal(eval(q, 0, false), -1);
	q[0] = '\0';
	for (i = 0; i < 30; i++)
		strcat(q, "NOT ");
	strcat(q, "SEEN");
	assert_int_equal(eval(q, 0, false), 0);
}

static void
test_dates(void **state)
{
	int64_t d;

	assert_int_equal(imap_date_parse("1-Jan-1970", 10, &d), 0);
	assert_int_equal(d, 0);
	assert_int_equal(imap_date_parse("29-Feb-2024", 11, &d), 0);
	assert_int_equal(d, imap_days_from_civil(2024, 2, 29));
	assert_int_equal(imap_date_parse("1-jan-70", 8, &d), -1);
	assert_int_equal(imap_date_parse("001-Jan-1970", 12, &d), -1);
	assert_int_equal(imap_date_parse("", 0, &d), -1);
	assert_true(imap_substr_ci("Hello World", 11, "WORLD", 5));
	assert_true(imap_substr_ci("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", 12,
	    "\xd0\xbf\xd0\xa0\xd0\x98", 6));   /* Привет ~ пРИ */
	assert_true(imap_substr_ci("\xc3\x84rger", 6, "\xc3\xa4RGER", 6));
	assert_false(imap_substr_ci("\xc3\x84rger", 6, "\xc3\xa4x", 3));
	assert_true(imap_substr_ci("x", 1, "", 0));
	assert_false(imap_substr_ci("Hello", 5, "Hello!", 6));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_lazy_loading),
		cmocka_unit_test(test_depth_and_size),
		cmocka_unit_test(test_dates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
