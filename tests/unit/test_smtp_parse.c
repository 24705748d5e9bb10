/* Unit tests of smtpd's pure parsers: commands, paths and parameters,
   EHLO/BDAT arguments, and the DATA dot-unstuffing machine fed whole, one
   byte at a time and at every two-chunk split. */
// LINK: smtpd/smtp_parse.c
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_parse.h"

static void
test_command(void **state)
{
	static const struct {
		const char *line;
		enum smtp_verb verb;
		const char *args;
	} cases[] = {
		{ "EHLO client.test", SMTP_V_EHLO, "client.test" },
		{ "ehlo [192.0.2.10]", SMTP_V_EHLO, "[192.0.2.10]" },
		{ "MAIL FROM:<a@b.c> SIZE=10", SMTP_V_MAIL, "FROM:<a@b.c> SIZE=10" },
		{ "rcpt  TO:<a@b.c>  ", SMTP_V_RCPT, "TO:<a@b.c>" },
		{ "DATA", SMTP_V_DATA, "" },
		{ "BDAT 10 LAST", SMTP_V_BDAT, "10 LAST" },
		{ "StartTLS", SMTP_V_STARTTLS, "" },
		{ "AUTH PLAIN AGFsaWNlAHNlY3JldA==", SMTP_V_AUTH,
		  "PLAIN AGFsaWNlAHNlY3JldA==" },
		{ "QUITX", SMTP_V_UNKNOWN, "" },
		{ "GET / HTTP/1.0", SMTP_V_UNKNOWN, "/ HTTP/1.0" },
	};
	struct smtp_cmd cmd;
	const char *err = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(smtp_parse_command(cases[i].line,
		    strlen(cases[i].line), &cmd, &err), 0);
		assert_int_equal(cmd.verb, cases[i].verb);
		assert_int_equal(cmd.args_len, strlen(cases[i].args));
		assert_memory_equal(cmd.args, cases[i].args, cmd.args_len);
	}
	assert_int_equal(smtp_parse_command("", 0, &cmd, &err), -1);
	assert_int_equal(smtp_parse_command("   ", 3, &cmd, &err), -1);
	assert_int_equal(smtp_parse_command("NO\0OP", 5, &cmd, &err), -1);
	assert_string_equal(smtp_verb_name(SMTP_V_MAIL), "MAIL");
}

static void
test_mail_paths(void **state)
{
	static const struct {
		const char *args;
		int is_mail;
		int utf8_ok;
		enum smtp_path_err err;
		const char *address;
	} cases[] = {
		{ "FROM:<alice@example.test>", 1, 0, SMTP_PATH_OK, "alice@example.test" },
		{ "from: <alice@example.test>", 1, 0, SMTP_PATH_OK, "alice@example.test" },
		{ "FROM:alice@example.test", 1, 0, SMTP_PATH_OK, "alice@example.test" },
		{ "FROM:<>", 1, 0, SMTP_PATH_OK, "" },
		{ "FROM:<\"alice\"@example.test>", 1, 0, SMTP_PATH_OK, "alice@example.test" },
		{ "FROM:<\"a b\"@example.test>", 1, 0, SMTP_PATH_OK, "\"a b\"@example.test" },
		{ "FROM:<\"a>b\"@example.test>", 1, 0, SMTP_PATH_OK, "\"a>b\"@example.test" },
		{ "FROM:<@relay.test:alice@example.test>", 1, 0, SMTP_PATH_OK, "alice@example.test" },
		{ "FROM:<a@[192.0.2.1]>", 1, 0, SMTP_PATH_OK, "a@[192.0.2.1]" },
		{ "FROM:<a+tag@example.test> SIZE=1000 BODY=8BITMIME", 1, 0, SMTP_PATH_OK, "a+tag@example.test" },
		{ "FROM:<a@example.test> AUTH=<>", 1, 0, SMTP_PATH_OK, "a@example.test" },
		{ "FROM:<j\xc3\xb6rg@example.test> SMTPUTF8", 1, 0, SMTP_PATH_OK, "j\xc3\xb6rg@example.test" },
		{ "FROM:<j\xc3\xb6rg@example.test>", 1, 0, SMTP_PATH_EUTF8, NULL },
		{ "FROM:<j\xc3(rg@example.test> SMTPUTF8", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "FROM:<a@example.test> SIZE=abc", 1, 0, SMTP_PATH_EPARAM, NULL },
		{ "FROM:<a@example.test> SIZE=99999999999999999999", 1, 0, SMTP_PATH_EPARAM, NULL },
		{ "FROM:<a@example.test> BODY=BINARYMIME", 1, 0, SMTP_PATH_EPARAM, NULL },
		{ "FROM:<a@example.test> RET=FULL", 1, 0, SMTP_PATH_EPARAM, NULL },
		{ "FROM:<a@example.test> SMTPUTF8 SMTPUTF8", 1, 0, SMTP_PATH_EPARAM, NULL },
		{ "FROM:<a@example.test", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "FROM:<a@example.test>x", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "FROM:<a..b@example.test>", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "FROM:<.a@example.test>", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "FROM:<a@-example.test>", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "FROM:<a@example-.test>", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "FROM:<a@example..test>", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "FROM:<a>", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "FROM:<a b@example.test>", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "FROM:", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "TO:<a@example.test>", 1, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "TO:<bob@example.test>", 0, 0, SMTP_PATH_OK, "bob@example.test" },
		{ "to:<Bob@Example.TEST>", 0, 0, SMTP_PATH_OK, "Bob@Example.TEST" },
		{ "TO:<Postmaster>", 0, 0, SMTP_PATH_OK, "postmaster" },
		{ "TO:<>", 0, 0, SMTP_PATH_ESYNTAX, NULL },
		{ "TO:<b@example.test> NOTIFY=NEVER", 0, 0, SMTP_PATH_EPARAM, NULL },
		{ "TO:<j\xc3\xb6rg@example.test>", 0, 1, SMTP_PATH_OK, "j\xc3\xb6rg@example.test" },
		{ "TO:<j\xc3\xb6rg@example.test>", 0, 0, SMTP_PATH_EUTF8, NULL },
		{ "TO:<b@b\xc3\xbc.test>", 0, 1, SMTP_PATH_OK, "b@b\xc3\xbc.test" },
	};
	struct smtp_path path;
	const char *err = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum smtp_path_err e = smtp_parse_path(cases[i].args,
		    strlen(cases[i].args), cases[i].is_mail, cases[i].utf8_ok,
		    &path, &err);
		if (e != cases[i].err)
			fail_msg("case %zu (%s): got %d want %d (%s)", i,
			    cases[i].args, e, cases[i].err, err);
		if (e == SMTP_PATH_OK)
			assert_string_equal(path.address, cases[i].address);
	}
	assert_int_equal(smtp_parse_path("FROM:<a@b.c> SIZE=1234 BODY=7BIT", 32,
	    true, false, &path, &err), SMTP_PATH_OK);
	assert_true(path.has_size);
	assert_int_equal(path.size, 1234);
	assert_int_equal(path.body, SMTP_BODY_7BIT);

	/* Length limits: 64-octet local part, 256-octet path. */
	char buf[600];
	snprintf(buf, sizeof(buf), "FROM:<%065d@example.test>", 0);
	assert_int_equal(smtp_parse_path(buf, strlen(buf), true, false, &path,
	    &err), SMTP_PATH_ESYNTAX);
	snprintf(buf, sizeof(buf), "FROM:<%064d@example.test>", 0);
	assert_int_equal(smtp_parse_path(buf, strlen(buf), true, false, &path,
	    &err), SMTP_PATH_OK);
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "FROM:<a@", 8);
	memcpy(buf + 300, ".test>", 7);
	assert_int_equal(smtp_parse_path(buf, strlen(buf), true, false, &path,
	    &err), SMTP_PATH_ESYNTAX);
}

static void
test_helo_bdat(void **state)
{
	char out[256];
	const char *err;
	uint64_t size;
	bool last;

	(void)state;
	assert_int_equal(smtp_parse_helo("client.test", 11, out, sizeof(out),
	    &err), 0);
	assert_string_equal(out, "client.test");
	assert_int_equal(smtp_parse_helo("[IPv6:::1] x", 12, out, sizeof(out),
	    &err), 0);
	assert_string_equal(out, "[IPv6:::1]");
	assert_int_equal(smtp_parse_helo("", 0, out, sizeof(out), &err), -1);
	assert_int_equal(smtp_parse_helo("a\x01", 2, out, sizeof(out), &err), -1);

	assert_int_equal(smtp_parse_bdat("100", 3, &size, &last, &err), 0);
	assert_int_equal(size, 100);
	assert_false(last);
	assert_int_equal(smtp_parse_bdat("0 last", 6, &size, &last, &err), 0);
	assert_int_equal(size, 0);
	assert_true(last);
	assert_int_equal(smtp_parse_bdat("", 0, &size, &last, &err), -1);
	assert_int_equal(smtp_parse_bdat("10 FIRST", 8, &size, &last, &err), -1);
	assert_int_equal(smtp_parse_bdat("-1", 2, &size, &last, &err), -1);
	assert_int_equal(smtp_parse_bdat("99999999999999999999", 20, &size,
	    &last, &err), -1);
}

struct dot_case {
	const char *in;
	size_t in_len;
	int done;               /* the terminator is in in */
	const char *out;        /* expected content */
	size_t out_len;
	size_t used;            /* bytes consumed when done */
	unsigned flags;
};

#define S(x) x, sizeof(x) - 1

static const struct dot_case dot_cases[] = {
	{ S(".\r\n"), 1, S(""), 3, 0 },
	{ S("a\r\n.\r\n"), 1, S("a\r\n"), 6, 0 },
	{ S("a\r\n.\r\nQUIT\r\n"), 1, S("a\r\n"), 6, 0 },
	{ S("..a\r\n.b\r\n.\r\n"), 1, S(".a\r\nb\r\n"), 12, 0 },
	{ S("a\r\n..\r\n.\r\n"), 1, S("a\r\n.\r\n"), 10, 0 },
	{ S("a\n.\n"), 0, S("a\n.\n"), 0, SMTP_CONTENT_BARE_LF },
	{ S("a\n.\r\nb\r\n.\r\n"), 1, S("a\n.\r\nb\r\n"), 11, SMTP_CONTENT_BARE_LF },
	{ S("a\r.\r\n.\r\n"), 1, S("a\r.\r\n"), 8, SMTP_CONTENT_BARE_CR },
	{ S(".\rx\r\n.\r\n"), 1, S("\rx\r\n"), 8, SMTP_CONTENT_BARE_CR },
	{ S(".\n.\r\n.\r\n"), 1, S("\n.\r\n"), 8, SMTP_CONTENT_BARE_LF },
	{ S("a\0b\r\n.\r\n"), 1, S("a\0b\r\n"), 8, SMTP_CONTENT_NUL },
	{ S("a\r\n.\r"), 0, S("a\r\n"), 0, 0 },
};

static void
check_dot(const struct dot_case *c, size_t split1, size_t step)
{
	struct smtp_dot d;
	char out[256];
	char acc[256];
	size_t acc_len = 0, pos = 0;
	int done = 0;

	smtp_dot_init(&d);
	while (pos < c->in_len && !done) {
		size_t n = c->in_len - pos, o, used;

		if (step > 0 && n > step)
			n = step;
		if (split1 > 0 && pos < split1 && pos + n > split1)
			n = split1 - pos;
		done = smtp_dot_feed(&d, c->in + pos, n, out, &o, &used);
		if (!done)
			assert_int_equal(used, n);
		memcpy(acc + acc_len, out, o);
		acc_len += o;
		pos += used;
	}
	assert_int_equal(done, c->done);
	if (done)
		assert_int_equal(pos, c->used);
	if (!done)
		smtp_content_finish(&d.content);
	assert_int_equal(acc_len, c->out_len);
	assert_memory_equal(acc, c->out, acc_len);
	if (c->done)
		assert_int_equal(d.content.flags, c->flags);
}

static void
test_dot(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++) {
		const struct dot_case *c = &dot_cases[i];

		check_dot(c, 0, 0);
		check_dot(c, 0, 1);
		for (size_t s = 1; s < c->in_len; s++)
			check_dot(c, s, 0);
	}
}

static void
test_dot_long_line(void **state)
{
	static char in[2100], out[2200];
	struct smtp_dot d;
	size_t o, used;

	(void)state;
	memset(in, 'x', 998);
	memcpy(in + 998, "\r\n.\r\n", 5);
	smtp_dot_init(&d);
	assert_int_equal(smtp_dot_feed(&d, in, 1003, out, &o, &used), 1);
	assert_int_equal(d.content.flags, 0);

	memset(in, 'x', 999);
	memcpy(in + 999, "\r\n.\r\n", 5);
	smtp_dot_init(&d);
	assert_int_equal(smtp_dot_feed(&d, in, 1004, out, &o, &used), 1);
	assert_int_equal(d.content.flags, SMTP_CONTENT_LONG_LINE);
}

static void
test_content(void **state)
{
	struct smtp_content c;

	(void)state;
	smtp_content_init(&c);
	smtp_content_feed(&c, "a\r\nb\r", 5);
	smtp_content_feed(&c, "\n", 1);
	smtp_content_finish(&c);
	assert_int_equal(c.flags, 0);
	smtp_content_init(&c);
	smtp_content_feed(&c, "a\r", 2);
	smtp_content_finish(&c);
	assert_int_equal(c.flags, SMTP_CONTENT_BARE_CR);
	smtp_content_init(&c);
	smtp_content_feed(&c, "a\nb", 3);
	assert_int_equal(c.flags, SMTP_CONTENT_BARE_LF);
}

/* RFC 3461 parameters through smtp_parse_path_dsn (and refused by
   smtp_parse_path, where DSN is not offered). */
static void
test_dsn_params(void **state)
{
	struct smtp_path p;
	const char *err = NULL;
	char out[16];
	static const char *const bad[] = {
		"TO:<b@x.test> NOTIFY=", "TO:<b@x.test> NOTIFY=NEVER,DELAY",
		"TO:<b@x.test> NOTIFY=SUCCESS,SUCCESS", "TO:<b@x.test> NOTIFY=X",
		"TO:<b@x.test> NOTIFY=DELAY NOTIFY=DELAY",
		"TO:<b@x.test> ORCPT=", "TO:<b@x.test> ORCPT=rfc822",
		"TO:<b@x.test> ORCPT=rfc822;", "TO:<b@x.test> ORCPT=;a@b",
		"TO:<b@x.test> ORCPT=rfc822;a+2", "TO:<b@x.test> ORCPT=rfc822;a+0A",
		"TO:<b@x.test> RET=FULL", "FROM:<a@x.test> NOTIFY=NEVER",
		"FROM:<a@x.test> RET=", "FROM:<a@x.test> RET=ALL",
		"FROM:<a@x.test> RET=FULL RET=HDRS", "FROM:<a@x.test> ENVID=",
		"FROM:<a@x.test> ENVID=a=b", "FROM:<a@x.test> ENVID=+zz",
	};

	(void)state;
#define DSN(str, mail) smtp_parse_path_dsn((str), strlen(str), (mail), false, \
	true, &p, &err)
	assert_int_equal(DSN("FROM:<a@x.test> RET=hdrs ENVID=Q+2B1 SIZE=10",
	    true), SMTP_PATH_OK);
	assert_int_equal(p.ret, SMTP_RET_HDRS);
	assert_string_equal(p.envid, "Q+1");
	assert_true(p.has_dsn && p.has_size && p.size == 10);
	assert_int_equal(DSN("TO:<b@x.test> notify=success,Delay "
	    "ORCPT=rfc822;B+2B1@x.test", false), SMTP_PATH_OK);
	assert_int_equal(p.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY);
	assert_string_equal(p.orcpt, "rfc822;B+1@x.test");
	assert_int_equal(DSN("TO:<b@x.test>", false), SMTP_PATH_OK);
	assert_false(p.has_dsn);
	assert_int_equal(p.notify, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (DSN(bad[i], bad[i][0] == 'F') != SMTP_PATH_EPARAM)
			fail_msg("accepted: %s", bad[i]);
	}
	assert_int_equal(smtp_parse_path("TO:<b@x.test> NOTIFY=NEVER",
	    strlen("TO:<b@x.test> NOTIFY=NEVER"), false, false, &p, &err),
	    SMTP_PATH_EPARAM);
#undef DSN
	assert_int_equal(smtp_xtext_decode("a+2Bb", 5, out, sizeof(out)), 0);
	assert_string_equal(out, "a+b");
	assert_int_equal(smtp_xtext_decode("a+2b", 4, out, sizeof(out)), -1);
	assert_int_equal(smtp_xtext_decode("a b", 3, out, sizeof(out)), -1);
	assert_int_equal(smtp_xtext_decode("0123456789abcdef", 16, out,
	    sizeof(out)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_mail_paths),
		cmocka_unit_test(test_dsn_params),
		cmocka_unit_test(test_helo_bdat),
		cmocka_unit_test(test_dot),
		cmocka_unit_test(test_dot_long_line),
		cmocka_unit_test(test_content),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
