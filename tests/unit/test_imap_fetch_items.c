/* Unit tests of the FETCH item parser and the HEADER.FIELDS filter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_fetch_items.h"
#include "imap_parser.h"

/* Parses "t FETCH 1 <items>" and returns the item labels/types joined. */
static int
parse(const char *items, struct buf *out)
{
	static const struct imap_parser_limits lim = { 4096, 8192, 4096, 16,
		1000 };
	struct imap_parser *p = imap_parser_new(&lim);
	struct imap_fetch_items it;
	char line[1024];
	size_t used, i;
	enum imap_pev ev;
	struct imap_cmd cmd;
	const char *tag, *err;
	int r = -1;

	snprintf(line, sizeof(line), "t FETCH 1 %s\r\n", items);
	if (imap_parser_next(p, line, strlen(line), &used, &ev, &cmd, &tag,
	    &err) == 1 && imap_fetch_items_parse(imap_arg_next(cmd.args),
	    &it) == 0) {
		for (i = 0; i < it.n; i++) {
			if (it.v[i].type == IMAP_FI_SECTION)
				buf_printf(out, "%s%s%s;", it.v[i].label,
				    it.v[i].peek ? "/peek" : "",
				    it.v[i].partial ? "/partial" : "");
			else
				buf_printf(out, "%d;", (int)it.v[i].type);
		}
		buf_printf(out, "%s%s", it.set_seen ? "S" : "",
		    it.need_cache ? "C" : "");
		imap_fetch_items_free(&it);
		r = 0;
	}
	imap_parser_free(&p);
	return r;
}

static void
test_items(void **state)
{
	static const struct { const char *in, *out; } ok[] = {
		{ "FLAGS", "1;" },
		{ "(UID FLAGS)", "0;1;" },
		{ "(UID MODSEQ)", "0;8;" },     /* RFC 7162 */
		{ "ALL", "1;2;3;4;C" },
		{ "FAST", "1;2;3;" },
		{ "FULL", "1;2;3;4;5;C" },
		{ "BODY[]", "BODY[];S" },
		{ "BODY.PEEK[]<0.65536>", "BODY[]<0>/peek/partial;" },
		{ "(BODY.PEEK[HEADER.FIELDS (From \"To\" x-y)])",
		  "BODY[HEADER.FIELDS (From To x-y)]/peek;" },
		{ "body.peek[header.fields.not (subject)]",
		  "BODY[HEADER.FIELDS.NOT (subject)]/peek;" },
		{ "BODY[1.2.MIME]", "BODY[1.2.MIME];SC" },
		{ "BODY[2.HEADER]<5.10>", "BODY[2.HEADER]<5>/partial;SC" },
		{ "BODY[3]", "BODY[3];SC" },
		{ "BODY[TEXT]", "BODY[TEXT];S" },
		{ "RFC822", "RFC822;S" },
		{ "RFC822.HEADER", "RFC822.HEADER/peek;" },
		{ "RFC822.TEXT", "RFC822.TEXT;S" },
		{ "(ENVELOPE BODYSTRUCTURE BODY)", "4;6;5;C" },
	};
	static const char *const bad[] = { "()", "NOPE", "BODY[MIME]",
		"BODY[1.]", "BODY[0]", "BODY[HEADER.FIELDS]",
		"BODY[HEADER.FIELDS ()]", "BODY[]<1.0>", "BODY[]<1>",
		"BODY[TEXT]x", "BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17]",
		"\"FLAGS\"", "(FLAGS (UID))", "BODY[HEADER.FIELDS (a:b)]",
		"BODY[]<99999999999999999999999.1>" };
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct buf b;

		buf_init(&b);
		buf_puts(&b, "");
		if (parse(ok[i].in, &b) != 0 || strcmp(b.data, ok[i].out) != 0)
			fail_msg("%s: got %s want %s", ok[i].in, b.data, ok[i].out);
		buf_free(&b);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b;

		buf_init(&b);
		if (parse(bad[i], &b) == 0)
			fail_msg("accepted %s", bad[i]);
		buf_free(&b);
	}
}

static void
test_filter(void **state)
{
	const char hdr[] = "From: a@b\r\nSubject: one\r\n two\r\nTo: c@d\r\n"
	    "subject : again\r\n\r\n";
	struct imap_fetch_item it;
	char *f[] = { "SUBJECT" };
	struct buf b;

	memset(&it, 0, sizeof(it));
	it.kind = IMAP_SEC_FIELDS;
	it.fields = f;
	it.nfields = 1;
	buf_init(&b);
	imap_fetch_filter_header(&it, hdr, sizeof(hdr) - 1, &b);
	assert_string_equal(b.data, "Subject: one\r\n two\r\nsubject : again\r\n"
	    "\r\n");
	buf_reset(&b);
	it.kind = IMAP_SEC_FIELDS_NOT;
	imap_fetch_filter_header(&it, hdr, sizeof(hdr) - 1, &b);
	assert_string_equal(b.data, "From: a@b\r\nTo: c@d\r\n\r\n");
	buf_reset(&b);
	imap_fetch_filter_header(&it, "", 0, &b);
	assert_string_equal(b.data, "\r\n");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_items),
		cmocka_unit_test(test_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
