/* Unit tests for common/sasl.c: each table row is one whole exchange
   (mechanism, initial response, client lines) with the challenge and result
   expected at each step and the credentials at the end. A PLAIN response
   is also cut at every point: a prefix never yields the full credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sasl.h"
#include "util.h"

#define MAX_STEPS 4

struct step {
	const char *resp;               /* NULL ends the list */
	enum sasl_result result;
	const char *challenge;          /* checked on SASL_CONTINUE */
};

struct exchange {
	const char *name;
	enum sasl_mech mech;
	const char *initial;            /* NULL: none sent */
	enum sasl_result start_result;
	const char *start_challenge;
	struct step steps[MAX_STEPS];
	const char *authzid, *user, *pass;   /* checked on the final DONE */
};

/* Made with printf '...' | base64: */
#define B64_PLAIN_ALICE "AGFsaWNlAHMzY3JldA=="          /* \0alice\0s3cret */
#define B64_PLAIN_AUTHZ "Ym9iAGFsaWNlAHMzY3JldA=="      /* bob\0alice\0s3cret */
#define B64_PLAIN_NOPASS "AGFsaWNlAA=="                 /* \0alice\0 */
#define B64_PLAIN_NOUSER "AABzM2NyZXQ="                 /* \0\0s3cret */
#define B64_PLAIN_ONENUL "YWxpY2UAczNjcmV0"             /* alice\0s3cret */
#define B64_PLAIN_3NUL "AGFsaWNlAHMzY3JldAB4"           /* \0alice\0s3cret\0x */
#define B64_ALICE "YWxpY2U="                            /* alice */
#define B64_SECRET "czNjcmV0"                           /* s3cret */
#define B64_NUL_IN "YQBi"                               /* a\0b */
#define USER_CH "VXNlcm5hbWU6"
#define PASS_CH "UGFzc3dvcmQ6"

static const struct exchange exchanges[] = {
	{ "plain ir", SASL_MECH_PLAIN, B64_PLAIN_ALICE, SASL_DONE, NULL,
	  { { NULL, 0, NULL } }, NULL, "alice", "s3cret" },
	{ "plain ir authzid", SASL_MECH_PLAIN, B64_PLAIN_AUTHZ, SASL_DONE,
	  NULL, { { NULL, 0, NULL } }, "bob", "alice", "s3cret" },
	{ "plain no ir", SASL_MECH_PLAIN, NULL, SASL_CONTINUE, "",
	  { { B64_PLAIN_ALICE, SASL_DONE, NULL }, { NULL, 0, NULL } },
	  NULL, "alice", "s3cret" },
	{ "plain crlf tolerated", SASL_MECH_PLAIN, NULL, SASL_CONTINUE, "",
	  { { B64_PLAIN_ALICE "\r\n", SASL_DONE, NULL }, { NULL, 0, NULL } },
	  NULL, "alice", "s3cret" },
	{ "plain cancel", SASL_MECH_PLAIN, NULL, SASL_CONTINUE, "",
	  { { "*", SASL_CANCEL, NULL }, { NULL, 0, NULL } },
	  NULL, NULL, NULL },
	{ "plain ir cancel", SASL_MECH_PLAIN, "*", SASL_CANCEL, NULL,
	  { { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "plain empty ir", SASL_MECH_PLAIN, "=", SASL_FAIL, NULL,
	  { { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "plain empty response", SASL_MECH_PLAIN, NULL, SASL_CONTINUE, "",
	  { { "", SASL_FAIL, NULL }, { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "plain bad base64", SASL_MECH_PLAIN, NULL, SASL_CONTINUE, "",
	  { { "!!!!", SASL_FAIL, NULL }, { NULL, 0, NULL } },
	  NULL, NULL, NULL },
	{ "plain tagged command instead", SASL_MECH_PLAIN, NULL,
	  SASL_CONTINUE, "", { { "A2 LOGOUT", SASL_FAIL, NULL },
	  { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "plain no password", SASL_MECH_PLAIN, B64_PLAIN_NOPASS, SASL_FAIL,
	  NULL, { { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "plain no user", SASL_MECH_PLAIN, B64_PLAIN_NOUSER, SASL_FAIL,
	  NULL, { { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "plain one nul", SASL_MECH_PLAIN, B64_PLAIN_ONENUL, SASL_FAIL,
	  NULL, { { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "plain three nuls", SASL_MECH_PLAIN, B64_PLAIN_3NUL, SASL_FAIL,
	  NULL, { { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "plain step after done", SASL_MECH_PLAIN, NULL, SASL_CONTINUE, "",
	  { { B64_PLAIN_ALICE, SASL_DONE, NULL },
	    { B64_PLAIN_ALICE, SASL_FAIL, NULL }, { NULL, 0, NULL } },
	  NULL, NULL, NULL },
	{ "login", SASL_MECH_LOGIN, NULL, SASL_CONTINUE, USER_CH,
	  { { B64_ALICE, SASL_CONTINUE, PASS_CH },
	    { B64_SECRET, SASL_DONE, NULL }, { NULL, 0, NULL } },
	  NULL, "alice", "s3cret" },
	{ "login ir user", SASL_MECH_LOGIN, B64_ALICE, SASL_CONTINUE, PASS_CH,
	  { { B64_SECRET, SASL_DONE, NULL }, { NULL, 0, NULL } },
	  NULL, "alice", "s3cret" },
	{ "login cancel at user", SASL_MECH_LOGIN, NULL, SASL_CONTINUE,
	  USER_CH, { { "*", SASL_CANCEL, NULL }, { NULL, 0, NULL } },
	  NULL, NULL, NULL },
	{ "login cancel at pass", SASL_MECH_LOGIN, NULL, SASL_CONTINUE,
	  USER_CH, { { B64_ALICE, SASL_CONTINUE, PASS_CH },
	  { "*", SASL_CANCEL, NULL }, { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "login empty user", SASL_MECH_LOGIN, NULL, SASL_CONTINUE, USER_CH,
	  { { "", SASL_FAIL, NULL }, { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "login '=' user", SASL_MECH_LOGIN, "=", SASL_FAIL, NULL,
	  { { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "login empty pass", SASL_MECH_LOGIN, NULL, SASL_CONTINUE, USER_CH,
	  { { B64_ALICE, SASL_CONTINUE, PASS_CH }, { "", SASL_FAIL, NULL },
	    { NULL, 0, NULL } }, NULL, NULL, NULL },
	{ "login nul in user", SASL_MECH_LOGIN, NULL, SASL_CONTINUE, USER_CH,
	  { { B64_NUL_IN, SASL_FAIL, NULL }, { NULL, 0, NULL } },
	  NULL, NULL, NULL },
	{ "login bad base64 pass", SASL_MECH_LOGIN, NULL, SASL_CONTINUE,
	  USER_CH, { { B64_ALICE, SASL_CONTINUE, PASS_CH },
	  { "czNjcmV0=", SASL_FAIL, NULL }, { NULL, 0, NULL } },
	  NULL, NULL, NULL },
	{ "login step after done", SASL_MECH_LOGIN, B64_ALICE, SASL_CONTINUE,
	  PASS_CH, { { B64_SECRET, SASL_DONE, NULL },
	  { B64_SECRET, SASL_FAIL, NULL }, { NULL, 0, NULL } },
	  NULL, NULL, NULL },
	{ "none", SASL_MECH_NONE, NULL, SASL_FAIL, NULL,
	  { { NULL, 0, NULL } }, NULL, NULL, NULL },
};

static void
run_exchange(const struct exchange *x)
{
	struct sasl_server s;
	const char *ch = "junk";
	enum sasl_result r, last;
	size_t i;

	sasl_server_init(&s, x->mech);
	r = sasl_server_start(&s, x->initial, &ch);
	if (r != x->start_result)
		fail_msg("%s: start gave %d", x->name, (int)r);
	if (r == SASL_CONTINUE)
		assert_string_equal(ch, x->start_challenge);
	last = r;
	for (i = 0; i < MAX_STEPS && x->steps[i].resp != NULL; i++) {
		const struct step *st = &x->steps[i];
		ch = "junk";
		r = sasl_server_step(&s, st->resp, strlen(st->resp), &ch);
		if (r != st->result)
			fail_msg("%s: step %zu gave %d", x->name, i, (int)r);
		if (r == SASL_CONTINUE)
			assert_string_equal(ch, st->challenge);
		last = r;
	}
	if (last == SASL_DONE && x->user != NULL) {
		assert_string_equal(s.user, x->user);
		assert_string_equal(s.pass, x->pass);
		if (x->authzid == NULL)
			assert_null(s.authzid);
		else
			assert_string_equal(s.authzid, x->authzid);
	}
	if (last == SASL_FAIL || last == SASL_CANCEL) {
		/* Nothing half-decoded is left behind. */
		assert_null(s.user);
		assert_null(s.pass);
	}
	sasl_server_reset(&s);
	assert_null(s.user);
	assert_null(s.pass);
	assert_null(s.authzid);
	assert_int_equal(s.mech, x->mech);
}

static void
test_exchanges(void **state)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(exchanges); i++)
		run_exchange(&exchanges[i]);
}

static void
test_mech_parse(void **state)
{
	static const struct {
		const char *in;
		enum sasl_mech m;
	} t[] = {
		{ "PLAIN", SASL_MECH_PLAIN },
		{ "plain", SASL_MECH_PLAIN },
		{ "Login", SASL_MECH_LOGIN },
		{ "LOGIN", SASL_MECH_LOGIN },
		{ "PLAINX", SASL_MECH_NONE },
		{ "PLAI", SASL_MECH_NONE },
		{ "CRAM-MD5", SASL_MECH_NONE },
		{ "", SASL_MECH_NONE },
		{ NULL, SASL_MECH_NONE },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(t); i++)
		assert_int_equal(sasl_mech_parse(t[i].in), t[i].m);
}

static void
test_plain_decode(void **state)
{
	static const struct {
		const char *msg;
		size_t len;
		int ret;
		const char *authzid, *user, *pass;
	} t[] = {
		{ "\0u\0p", 4, 0, NULL, "u", "p" },
		{ "z\0u\0p", 5, 0, "z", "u", "p" },
		{ "\0user@example.test\0pa ss", 24, 0, NULL,
		  "user@example.test", "pa ss" },
		{ "\0u\0", 3, -1, NULL, NULL, NULL },
		{ "\0\0p", 3, -1, NULL, NULL, NULL },
		{ "u\0p", 3, -1, NULL, NULL, NULL },
		{ "\0u\0p\0", 5, -1, NULL, NULL, NULL },
		{ "", 0, -1, NULL, NULL, NULL },
		{ "\0", 1, -1, NULL, NULL, NULL },
		{ "\0\0", 2, -1, NULL, NULL, NULL },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		char *z = (char *)1, *u = (char *)1, *p = (char *)1;
		int r = sasl_plain_decode(t[i].msg, t[i].len, &z, &u, &p);
		if (r != t[i].ret)
			fail_msg("row %zu: %d", i, r);
		if (r < 0) {
			assert_null(z);
			assert_null(u);
			assert_null(p);
			continue;
		}
		if (t[i].authzid == NULL)
			assert_null(z);
		else
			assert_string_equal(z, t[i].authzid);
		assert_string_equal(u, t[i].user);
		assert_string_equal(p, t[i].pass);
		free(z);
		free(u);
		secret_free(&p);
	}
}

/* A PLAIN response cut in two at every point: the first piece alone never
   completes with the right credentials (the daemon hands whole lines, so a
   split response must fail or be incomplete, not authenticate someone
   else), and the whole line still works. */
static void
test_plain_splits(void **state)
{
	const char *full = B64_PLAIN_AUTHZ;
	size_t k, len = strlen(full);

	for (k = 0; k < len; k++) {
		struct sasl_server s;
		const char *ch;
		enum sasl_result r;

		sasl_server_init(&s, SASL_MECH_PLAIN);
		assert_int_equal(sasl_server_start(&s, NULL, &ch),
		    SASL_CONTINUE);
		r = sasl_server_step(&s, full, k, &ch);
		if (r == SASL_DONE)
			assert_false(strcmp(s.user, "alice") == 0 &&
			    strcmp(s.pass, "s3cret") == 0);
		sasl_server_reset(&s);
		assert_int_equal(sasl_server_start(&s, NULL, &ch),
		    SASL_CONTINUE);
		assert_int_equal(sasl_server_step(&s, full, len, &ch),
		    SASL_DONE);
		assert_string_equal(s.user, "alice");
		sasl_server_reset(&s);
	}
}

static void
test_oversized(void **state)
{
	struct sasl_server s;
	const char *ch;
	struct buf b;
	size_t i;

	buf_init(&b);
	for (i = 0; i < 10000; i++)
		buf_puts(&b, "QUFB");
	sasl_server_init(&s, SASL_MECH_PLAIN);
	assert_int_equal(sasl_server_start(&s, NULL, &ch), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(&s, b.data, b.len, &ch), SASL_FAIL);
	sasl_server_reset(&s);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exchanges),
		cmocka_unit_test(test_mech_parse),
		cmocka_unit_test(test_plain_decode),
		cmocka_unit_test(test_plain_splits),
		cmocka_unit_test(test_oversized),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
