/* Unit tests of pop3d's pure parts: the command splitter, message numbers,
   UIDL strings and the RETR/TOP byte-stuffer. The stuffer is fed every
   input whole, one byte at a time and at every two-chunk split, and must
   give the same bytes each way. (Command lines arrive whole from
   conn_getline, so the splitter has no "need more" state to test.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pop3_parse.h"

struct cmd_case {
	const char *line;
	int ret;
	const char *keyword;
	unsigned nargs;
	const char *arg0, *arg1;
	const char *rest;
	bool too_many;
};

static const struct cmd_case cmd_cases[] = {
	{ "STAT", 0, "STAT", 0, NULL, NULL, "", false },
	{ "stat", 0, "STAT", 0, NULL, NULL, "", false },
	{ "rEtR 1", 0, "RETR", 1, "1", NULL, "1", false },
	{ "TOP 12 0", 0, "TOP", 2, "12", "0", "12 0", false },
	{ "TOP  12   0  ", 0, "TOP", 2, "12", "0", " 12   0  ", false },
	{ "LIST ", 0, "LIST", 0, NULL, NULL, "", false },
	{ "PASS pass word with spaces", 0, "PASS", 2, "pass", "word",
	  "pass word with spaces", true },
	{ "USER alice@example.test", 0, "USER", 1, "alice@example.test", NULL,
	  "alice@example.test", false },
	{ "AUTH PLAIN AGFsaWNlAHNlY3JldA==", 0, "AUTH", 2, "PLAIN",
	  "AGFsaWNlAHNlY3JldA==", "PLAIN AGFsaWNlAHNlY3JldA==", false },
	{ "PASS \xc3\xa9t\xc3\xa9", 0, "PASS", 1, "\xc3\xa9t\xc3\xa9", NULL,
	  "\xc3\xa9t\xc3\xa9", false },
	{ "", -1, NULL, 0, NULL, NULL, NULL, false },
	{ " STAT", -1, NULL, 0, NULL, NULL, NULL, false },
	{ "ST", -1, NULL, 0, NULL, NULL, NULL, false },
	{ "STATS", -1, NULL, 0, NULL, NULL, NULL, false },
	{ "ST4T", -1, NULL, 0, NULL, NULL, NULL, false },
	{ "RETR\t1", -1, NULL, 0, NULL, NULL, NULL, false },
	{ "RETR 1\r", -1, NULL, 0, NULL, NULL, NULL, false },
	{ "\xff\xfe", -1, NULL, 0, NULL, NULL, NULL, false },
	/* Well-formed but unknown: the dispatcher's business. */
	{ "GET / HTTP/1.1", 0, "GET", 2, "/", "HTTP/1.1", "/ HTTP/1.1", false },
};

static void
check_span(const char *line, struct pop3_span sp, const char *want)
{
	assert_non_null(want);
	assert_int_equal(sp.len, strlen(want));
	assert_memory_equal(line + sp.off, want, sp.len);
}

static void
test_command(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		const struct cmd_case *c = &cmd_cases[i];
		struct pop3_request req;
		const char *err = NULL;
		int ret = pop3_parse_command(c->line, strlen(c->line), &req,
		    &err);

		assert_int_equal(ret, c->ret);
		if (ret < 0) {
			assert_non_null(err);
			continue;
		}
		assert_string_equal(req.keyword, c->keyword);
		assert_int_equal(req.nargs, c->nargs);
		if (c->nargs > 0)
			check_span(c->line, req.args[0], c->arg0);
		if (c->nargs > 1)
			check_span(c->line, req.args[1], c->arg1);
		check_span(c->line, req.rest, c->rest);
		assert_int_equal(req.too_many_args, c->too_many);
	}
}

static void
test_command_nul(void **state)
{
	static const char line[] = "RETR 1\0 2";
	struct pop3_request req;
	const char *err = NULL;

	(void)state;
	assert_int_equal(pop3_parse_command(line, sizeof(line) - 1, &req,
	    &err), -1);
	assert_non_null(err);
	/* A NUL in the keyword too. */
	assert_int_equal(pop3_parse_command("ST\0T", 4, &req, &err), -1);
}

static void
test_numbers(void **state)
{
	uint32_t n = 77;

	(void)state;
	assert_int_equal(pop3_parse_msgnum("1", 1, 5, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pop3_parse_msgnum("5", 1, 5, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(pop3_parse_msgnum("6", 1, 5, &n), -1);
	assert_int_equal(pop3_parse_msgnum("0", 1, 5, &n), -1);
	assert_int_equal(pop3_parse_msgnum("", 0, 5, &n), -1);
	assert_int_equal(pop3_parse_msgnum("-1", 2, 5, &n), -1);
	assert_int_equal(pop3_parse_msgnum("+1", 2, 5, &n), -1);
	assert_int_equal(pop3_parse_msgnum("1a", 2, 5, &n), -1);
	assert_int_equal(pop3_parse_msgnum("4294967296", 10, UINT32_MAX, &n),
	    -1);
	assert_int_equal(pop3_parse_msgnum("99999999999999999999", 20,
	    UINT32_MAX, &n), -1);
	assert_int_equal(pop3_parse_uint("4294967295", 10, &n), 0);
	assert_int_equal(n, UINT32_MAX);
	assert_int_equal(pop3_parse_uint("0", 1, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(pop3_parse_uint("007", 3, &n), 0);
	assert_int_equal(n, 7);
}

static void
test_uidl(void **state)
{
	char out[POP3_UIDL_MAX + 1];
	size_t i;

	(void)state;
	pop3_uidl_format(0x5f1c0a9e, 1, out, sizeof(out));
	assert_string_equal(out, "5f1c0a9e.00000001");
	pop3_uidl_format(UINT32_MAX, UINT32_MAX, out, sizeof(out));
	assert_string_equal(out, "ffffffff.ffffffff");
	for (i = 0; out[i] != '\0'; i++)
		assert_true(out[i] >= 0x21 && out[i] <= 0x7e);
}

struct stuff_case {
	const char *in;
	size_t in_len;          /* 0: strlen */
	bool top;
	uint32_t lines;
	const char *out;        /* including the terminator */
	size_t out_len;         /* 0: strlen */
};

static const struct stuff_case stuff_cases[] = {
	{ "", 0, false, 0, ".\r\n", 0 },
	{ "a\r\n", 0, false, 0, "a\r\n.\r\n", 0 },
	{ "no final newline", 0, false, 0, "no final newline\r\n.\r\n", 0 },
	{ ".\r\n", 0, false, 0, "..\r\n.\r\n", 0 },
	{ ".hidden\r\n..two\r\nx.y\r\n.", 0, false, 0,
	  "..hidden\r\n...two\r\nx.y\r\n..\r\n.\r\n", 0 },
	{ "a\0b\r\n", 5, false, 0, "a\x80" "b\r\n.\r\n", 0 },
	{ "Subject: x\r\nFrom: y\r\n\r\nl1\r\n.l2\r\nl3\r\n", 0, true, 0,
	  "Subject: x\r\nFrom: y\r\n\r\n.\r\n", 0 },
	{ "Subject: x\r\nFrom: y\r\n\r\nl1\r\n.l2\r\nl3\r\n", 0, true, 2,
	  "Subject: x\r\nFrom: y\r\n\r\nl1\r\n..l2\r\n.\r\n", 0 },
	{ "Subject: x\r\n\r\nl1\r\n", 0, true, 10,
	  "Subject: x\r\n\r\nl1\r\n.\r\n", 0 },
	{ "Subject: x\r\nno blank line", 0, true, 0,
	  "Subject: x\r\nno blank line\r\n.\r\n", 0 },
	{ "S: x\r\n\r\n\r\n\r\nb\r\n", 0, true, 1, "S: x\r\n\r\n\r\n.\r\n", 0 },
	{ "S: x\r\n \r\nbody\r\n\r\nb\r\n", 0, true, 1,
	  "S: x\r\n \r\nbody\r\n\r\nb\r\n.\r\n", 0 },
};

/* Feeds in[0..len) as the chunks given by cuts (ascending offsets). */
static void
run_stuffer(const struct stuff_case *c, const size_t *cuts, size_t ncuts,
    struct buf *out)
{
	struct pop3_stuffer s;
	size_t len = c->in_len ? c->in_len : strlen(c->in);
	size_t pos = 0, k;

	buf_reset(out);
	pop3_stuffer_init(&s, c->top, c->lines);
	for (k = 0; k <= ncuts && !s.done; k++) {
		size_t end = k < ncuts ? cuts[k] : len;
		size_t used = pop3_stuffer_feed(&s, c->in + pos, end - pos, out);

		assert_true(used <= end - pos);
		if (used < end - pos)
			assert_true(s.done);
		pos = end;
	}
	pop3_stuffer_finish(&s, out);
}

static void
check_out(const struct stuff_case *c, const struct buf *out)
{
	size_t want = c->out_len ? c->out_len : strlen(c->out);

	assert_int_equal(out->len, want);
	assert_memory_equal(out->data, c->out, want);
}

static void
test_stuffer(void **state)
{
	struct buf out;
	size_t i, j, len;
	size_t *cuts;

	(void)state;
	buf_init(&out);
	for (i = 0; i < sizeof(stuff_cases) / sizeof(stuff_cases[0]); i++) {
		const struct stuff_case *c = &stuff_cases[i];

		len = c->in_len ? c->in_len : strlen(c->in);
		run_stuffer(c, NULL, 0, &out);
		check_out(c, &out);
		/* every two-chunk split */
		for (j = 0; j <= len; j++) {
			run_stuffer(c, &j, 1, &out);
			check_out(c, &out);
		}
		/* one byte at a time */
		cuts = test_malloc((len + 1) * sizeof(*cuts));
		for (j = 0; j < len; j++)
			cuts[j] = j + 1;
		run_stuffer(c, cuts, len, &out);
		check_out(c, &out);
		test_free(cuts);
	}
	buf_free(&out);
}

/* RETR's output, unstuffed, gives back the input exactly (NUL-free). */
static void
test_stuffer_roundtrip(void **state)
{
	static const char msg[] = "From: a\r\n\r\n.\r\n..\r\n.x\r\nend.\r\n.";
	struct pop3_stuffer s;
	struct buf out, back;
	size_t i;
	bool bol = true;

	(void)state;
	buf_init(&out);
	buf_init(&back);
	pop3_stuffer_init(&s, false, 0);
	assert_int_equal(pop3_stuffer_feed(&s, msg, sizeof(msg) - 1, &out),
	    sizeof(msg) - 1);
	pop3_stuffer_finish(&s, &out);
	for (i = 0; i < out.len; i++) {
		if (bol && out.data[i] == '.') {
			if (out.data[i + 1] == '\r')
				break;          /* the terminator */
			i++;
		}
		buf_putc(&back, out.data[i]);
		bol = out.data[i] == '\n';
	}
	assert_int_equal(back.len, sizeof(msg) - 1 + 2);   /* + final CRLF */
	assert_memory_equal(back.data, msg, sizeof(msg) - 1);
	buf_free(&out);
	buf_free(&back);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_command_nul),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_uidl),
		cmocka_unit_test(test_stuffer),
		cmocka_unit_test(test_stuffer_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
