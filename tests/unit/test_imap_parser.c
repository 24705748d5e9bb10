/* Unit tests of the IMAP command parser: table-driven, every input also fed
   one byte at a time and at every two-chunk split. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_parser.h"

static const struct imap_parser_limits lim = {
	.line_max = 200, .hard_max = 400, .literal_total = 64,
	.depth_max = 4, .args_max = 50,
};

static void
ser_args(struct buf *o, const struct imap_arg *a, const struct imap_arg *end)
{
	for (; a < end; a = imap_arg_next(a)) {
		buf_putc(o, ' ');
		switch (a->type) {
		case IMAP_ARG_ATOM:
			buf_printf(o, "%s", a->str);
			break;
		case IMAP_ARG_QUOTED:
			buf_printf(o, "\"%s\"", a->str);
			break;
		case IMAP_ARG_LITERAL:
			if (a->str)
				buf_printf(o, "{%s}", a->str);
			else
				buf_printf(o, "{ext %zu}", a->lit_size);
			break;
		case IMAP_ARG_LIST:
			buf_putc(o, '(');
			ser_args(o, a + 1, imap_arg_list_end(a));
			buf_puts(o, " )");
			break;
		}
	}
}

/* Feeds in[] split at the given points; returns the transcript. */
static char *
run(const char *in, size_t len, size_t chunk, size_t split)
{
	struct imap_parser *p = imap_parser_new(&lim);
	struct buf o;
	size_t pos = 0;

	buf_init(&o);
	buf_puts(&o, "");
	while (pos < len) {
		size_t n = len - pos, used;
		enum imap_pev ev;
		struct imap_cmd cmd;
		const char *tag, *err;
		int r;

		if (chunk && n > chunk)
			n = chunk;
		if (split && pos < split && pos + n > split)
			n = split - pos;
		r = imap_parser_next(p, in + pos, n, &used, &ev, &cmd, &tag, &err);
		assert_true(used <= n);
		pos += used;
		if (r == 0) {
			assert_int_equal(used, n);
			continue;
		}
		if (r < 0) {
			buf_printf(&o, "ERR(%s)%s;", tag ? tag : "-",
			    imap_parser_is_fatal(p) ? "FATAL" : "");
			if (imap_parser_is_fatal(p))
				break;
			continue;
		}
		if (ev == IMAP_PEV_LITERAL) {
			if (imap_parser_cur_name(p) &&
			    strcmp(imap_parser_cur_name(p), "EXT") == 0) {
				/* the caller consumes the literal itself */
				size_t k = imap_parser_lit_size(p);
				imap_parser_literal_external(p);
				pos += k <= len - pos ? k : len - pos;
			} else if (imap_parser_literal_fits(p)) {
				imap_parser_literal_read(p);
			} else {
				buf_printf(&o, "TOOBIG(%s%s);", tag ? tag : "-",
				    imap_parser_lit_sync(p) ? "" : "+");
				imap_parser_literal_reject(p);
			}
			continue;
		}
		buf_printf(&o, "%s %s", cmd.tag, cmd.name);
		ser_args(&o, cmd.args, cmd.args_end);
		buf_puts(&o, ";");
	}
	imap_parser_free(&p);
	return buf_steal(&o);
}

struct tcase {
	const char *in;
	const char *out;
};

static const struct tcase cases[] = {
	{ "a NOOP\r\n", "a NOOP;" },
	{ "a NOOP\n", "a NOOP;" },
	{ "\r\n\r\na1 CAPABILITY\r\n", "a1 CAPABILITY;" },
	{ "a LOGIN \"us\\\"er\" {4}\r\npass\r\n", "a LOGIN \"us\"er\" {pass};" },
	{ "a LOGIN x {4+}\r\npass\r\nb NOOP\r\n", "a LOGIN x {pass};b NOOP;" },
	{ "a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM \"TO\")]<0.10>)\r\n",
	  "a FETCH 1:* ( FLAGS BODY.PEEK[HEADER.FIELDS (FROM \"TO\")]<0.10> );" },
	{ "a FETCH 1 (BINARY.PEEK[1] body[header.fields (A)])\r\n",
	  "a FETCH 1 ( BINARY.PEEK[1] body[header.fields (A)] );" },
	/* '[' is an atom character anywhere else: mailbox names */
	{ "a SELECT [q\r\n", "a SELECT [q;" },
	{ "a RENAME foo[bar x[ (y)\r\n", "a RENAME foo[bar x[ ( y );" },
	{ "a LIST \"\" foo[bar]\r\n", "a LIST \"\" foo[bar];" },
	{ "a STORE 1 +FLAGS (\\Seen \\Deleted)\r\n",
	  "a STORE 1 +FLAGS ( \\Seen \\Deleted );" },
	{ "a LIST \"\" %\r\n", "a LIST \"\" %;" },
	{ "a X ((a) ())\r\n", "a X ( ( a ) ( ) );" },
	{ "a X {0}\r\n\r\n", "a X {};" },
	{ "a EXT {5}\r\nhello\r\n", "a EXT {ext 5};" },
	{ "a EXT m (\\Seen) {3+}\r\nabc x\r\n", "a EXT m ( \\Seen ) {ext 3} x;" },
	/* errors and recovery */
	{ "a X (b\r\nc NOOP\r\n", "ERR(a);c NOOP;" },
	{ "a X b)\r\nc NOOP\r\n", "ERR(a);c NOOP;" },
	{ "a X \"unterminated\r\nc NOOP\r\n", "ERR(a);c NOOP;" },
	{ "a X \"bad\\q\"\r\nc NOOP\r\n", "ERR(a);c NOOP;" },
	{ "a X {12x}\r\nc NOOP\r\n", "ERR(a);c NOOP;" },
	{ "a X {3} y\r\nc NOOP\r\n", "ERR(a);c NOOP;" },
	{ "a+ NOOP\r\nc NOOP\r\n", "ERR(a+);c NOOP;" },
	{ "a\r\n", "ERR(a);" },
	{ "(a NOOP\r\n", "ERR(-);" },
	{ "a X \r\x01\r\nb NOOP\r\n", "ERR(a);b NOOP;" },
	{ "a X ((((((x))))))\r\nb NOOP\r\n", "ERR(a);b NOOP;" },
	{ "a X {100}\r\nb NOOP\r\n", "TOOBIG(a);b NOOP;" },
	{ "a X {65+}\r\n0123456789012345678901234567890123456789012345678901234567890123\r\nb NOOP\r\n",
	  "TOOBIG(a+);b NOOP;" },
	{ "a X {99999999999999999999999}\r\nb NOOP\r\n", "ERR(a);b NOOP;" },
};

static void
test_table(void **state)
{
	size_t i, k;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *in = cases[i].in;
		size_t len = strlen(in);
		char *out = run(in, len, 0, 0);

		if (strcmp(out, cases[i].out) != 0)
			fail_msg("case %zu: %s\n got  %s\n want %s", i, in, out,
			    cases[i].out);
		free(out);
		out = run(in, len, 1, 0);
		assert_string_equal(out, cases[i].out);
		free(out);
		for (k = 1; k < len; k++) {
			out = run(in, len, 0, k);
			if (strcmp(out, cases[i].out) != 0)
				fail_msg("case %zu split %zu: got %s", i, k, out);
			free(out);
		}
	}
}

static void
test_need_more(void **state)
{
	struct imap_parser *p = imap_parser_new(&lim);
	const char *in = "a SELECT \"INBOX\"\r\n";
	size_t i, used;
	enum imap_pev ev;
	struct imap_cmd cmd;
	const char *tag, *err;

	for (i = 0; in[i + 1]; i++)
		assert_int_equal(imap_parser_next(p, in + i, 1, &used, &ev, &cmd,
		    &tag, &err), 0);
	assert_int_equal(imap_parser_next(p, in + i, 1, &used, &ev, &cmd, &tag,
	    &err), 1);
	assert_int_equal(ev, IMAP_PEV_COMMAND);
	assert_string_equal(cmd.name, "SELECT");
	assert_int_equal(imap_args_count(cmd.args, cmd.args_end), 1);
	imap_parser_free(&p);
}

static void
test_long_line(void **state)
{
	char big[1000];
	char *out;

	memset(big, 'x', sizeof(big));
	memcpy(big, "a X ", 4);
	memcpy(big + 300, "\r\nb NOOP\r\n", 10);
	out = run(big, 310, 0, 0);
	assert_string_equal(out, "ERR(a);b NOOP;");
	free(out);
	/* no LF within the hard limit: fatal */
	memset(big, 'x', sizeof(big));
	memcpy(big, "a X ", 4);
	out = run(big, sizeof(big), 0, 0);
	assert_string_equal(out, "ERR(a);ERR(-)FATAL;");
	free(out);
}

/* An IDLE session drops the parser's buffers between commands; the
   next command parses as before. */
static void
test_release(void **state)
{
	struct imap_parser *p = imap_parser_new(&lim);
	const char *in = "a LOGIN \"u\" (x (y z)) {3+}\r\nabc\r\n";
	const char *tag, *err;
	struct imap_cmd cmd;
	enum imap_pev ev;
	size_t used, off = 0;
	int r;

	do {
		r = imap_parser_next(p, in + off, strlen(in) - off, &used, &ev,
		    &cmd, &tag, &err);
		off += used;
		if (r == 1 && ev == IMAP_PEV_LITERAL)
			imap_parser_literal_read(p);
	} while (!(r == 1 && ev != IMAP_PEV_LITERAL));
	assert_true(imap_parser_release(p));
	assert_true(imap_parser_release(p));
	/* half a command: kept */
	assert_int_equal(imap_parser_next(p, "b NOOP", 6, &used, &ev, &cmd,
	    &tag, &err), 0);
	assert_false(imap_parser_release(p));
	assert_int_equal(imap_parser_next(p, "\r\n", 2, &used, &ev, &cmd,
	    &tag, &err), 1);
	assert_string_equal(cmd.tag, "b");
	assert_string_equal(cmd.name, "NOOP");
	imap_parser_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_need_more),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
