/* Unit tests of the pure parsers behind CONDSTORE/QRESYNC (imap_modseq),
   ESEARCH/SEARCHRES (imap_esearch) and LIST-EXTENDED (imap_list_ext). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_esearch.h"
#include "imap_list_ext.h"
#include "imap_modseq.h"
#include "imap_parser.h"

static struct imap_parser *parser;
static struct imap_cmd cmd;

/* Parses "t X <args>"; the arguments are in cmd. */
static void
parse(const char *args)
{
	static const struct imap_parser_limits lim = { 4096, 8192, 4096, 16,
		1000 };
	char line[1024];
	size_t used;
	enum imap_pev ev;
	const char *tag, *err;

	imap_parser_free(&parser);
	parser = imap_parser_new(&lim);
	snprintf(line, sizeof(line), "t X %s\r\n", args);
	assert_int_equal(imap_parser_next(parser, line, strlen(line), &used,
	    &ev, &cmd, &tag, &err), 1);
}

static void
test_select_params(void **state)
{
	static const char *const bad[] = { "(FOO)", "(QRESYNC)",
		"(QRESYNC ())", "(QRESYNC (1))", "(QRESYNC (0 1))",
		"(QRESYNC (x 1))", "(QRESYNC (1 1 1:*))", "(QRESYNC (1 1 1 (1)))",
		"(QRESYNC (1 1 (1 2) x))", "(QRESYNC (4294967296 1))",
		"(QRESYNC (1 9223372036854775808))", "(CONDSTORE CONDSTORE)",
		"(QRESYNC (1 1 1:5 (1:2 3:*)))", "CONDSTORE" };
	struct imap_select_params p;
	const char *err;
	size_t i;

	parse("(CONDSTORE)");
	assert_int_equal(imap_select_params_parse(cmd.args, &p, &err), 0);
	assert_true(p.condstore && !p.qresync);
	imap_select_params_free(&p);
	parse("(QRESYNC (67890007 90060115194045000 41,43:211,214:541)"
	    " CONDSTORE)");
	assert_int_equal(imap_select_params_parse(cmd.args, &p, &err), 0);
	assert_true(p.qresync && p.condstore && p.have_known && !p.have_match);
	assert_int_equal(p.uidvalidity, 67890007);
	assert_true(p.modseq == 90060115194045000ull);
	assert_true(imap_seqset_has(&p.known, 43) &&
	    !imap_seqset_has(&p.known, 42) && imap_seqset_has(&p.known, 541));
	imap_select_params_free(&p);
	parse("(QRESYNC (1 2 (1:2 5,7)))");
	assert_int_equal(imap_select_params_parse(cmd.args, &p, &err), 0);
	assert_true(p.have_match && !p.have_known);
	imap_select_params_free(&p);
	parse("(QRESYNC (1 2 3 (1:2 5,7)))");
	assert_int_equal(imap_select_params_parse(cmd.args, &p, &err), 0);
	assert_true(p.have_match && p.have_known);
	imap_select_params_free(&p);
	parse("()");
	assert_int_equal(imap_select_params_parse(cmd.args, &p, &err), 0);
	imap_select_params_free(&p);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse(bad[i]);
		if (imap_select_params_parse(cmd.args, &p, &err) == 0)
			fail_msg("accepted %s", bad[i]);
		imap_select_params_free(&p);
	}
}

static void
test_fetch_store_mods(void **state)
{
	static const char *const bad[] = { "()", "(CHANGEDSINCE)",
		"(CHANGEDSINCE -1)", "(VANISHED)", "(CHANGEDSINCE 1 FOO)",
		"(CHANGEDSINCE 1 CHANGEDSINCE 2)", "X" };
	struct imap_fetch_mods m;
	const char *err;
	uint64_t since;
	size_t i;

	parse("(CHANGEDSINCE 12345 VANISHED)");
	assert_int_equal(imap_fetch_mods_parse(cmd.args, &m, &err), 0);
	assert_true(m.changedsince && m.vanished && m.since == 12345);
	parse("(changedsince 0)");
	assert_int_equal(imap_fetch_mods_parse(cmd.args, &m, &err), 0);
	assert_true(m.changedsince && !m.vanished && m.since == 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse(bad[i]);
		if (imap_fetch_mods_parse(cmd.args, &m, &err) == 0)
			fail_msg("accepted %s", bad[i]);
	}
	parse("(UNCHANGEDSINCE 0)");
	assert_int_equal(imap_store_mods_parse(cmd.args, &since, &err), 0);
	assert_true(since == 0);
	parse("(UNCHANGEDSINCE 9223372036854775807)");
	assert_int_equal(imap_store_mods_parse(cmd.args, &since, &err), 0);
	parse("(UNCHANGEDSINCE 9223372036854775808)");
	assert_int_equal(imap_store_mods_parse(cmd.args, &since, &err), -1);
	parse("(UNCHANGEDSINCE)");
	assert_int_equal(imap_store_mods_parse(cmd.args, &since, &err), -1);
	parse("(FOO 1)");
	assert_int_equal(imap_store_mods_parse(cmd.args, &since, &err), -1);
}

static void
test_esearch(void **state)
{
	static const uint32_t nums[] = { 2, 3, 4, 9 };
	const struct imap_arg *a;
	unsigned opts;
	const char *err;
	struct buf b;
	size_t idx[2];

	parse("RETURN (MIN MAX COUNT ALL SAVE) ALL");
	a = cmd.args;
	assert_int_equal(imap_esearch_parse_return(&a, cmd.args_end, &opts,
	    &err), 1);
	assert_int_equal(opts, IMAP_ESR_MIN | IMAP_ESR_MAX | IMAP_ESR_COUNT |
	    IMAP_ESR_ALL | IMAP_ESR_SAVE);
	assert_true(imap_arg_is_atom(a, "ALL"));
	parse("RETURN () ALL");
	a = cmd.args;
	assert_int_equal(imap_esearch_parse_return(&a, cmd.args_end, &opts,
	    &err), 1);
	assert_int_equal(opts, IMAP_ESR_ALL);
	parse("ALL");
	a = cmd.args;
	assert_int_equal(imap_esearch_parse_return(&a, cmd.args_end, &opts,
	    &err), 0);
	assert_ptr_equal(a, cmd.args);
	parse("RETURN (FOO) ALL");
	a = cmd.args;
	assert_int_equal(imap_esearch_parse_return(&a, cmd.args_end, &opts,
	    &err), -1);
	parse("RETURN ALL");
	a = cmd.args;
	assert_int_equal(imap_esearch_parse_return(&a, cmd.args_end, &opts,
	    &err), -1);

	buf_init(&b);
	imap_esearch_format(&b, "A1", true, IMAP_ESR_MIN | IMAP_ESR_MAX |
	    IMAP_ESR_ALL | IMAP_ESR_COUNT, nums, 4, 0);
	assert_string_equal(b.data, "* ESEARCH (TAG \"A1\") UID MIN 2 MAX 9"
	    " ALL 2:4,9 COUNT 4\r\n");
	buf_reset(&b);
	imap_esearch_format(&b, "x", false, IMAP_ESR_MIN | IMAP_ESR_COUNT,
	    nums, 0, 0);
	assert_string_equal(b.data, "* ESEARCH (TAG \"x\") COUNT 0\r\n");
	buf_reset(&b);
	imap_esearch_format(&b, "x", false, IMAP_ESR_COUNT, nums, 2, 77);
	assert_string_equal(b.data, "* ESEARCH (TAG \"x\") COUNT 2 MODSEQ 77\r\n");
	buf_reset(&b);
	imap_esearch_format(&b, "x", false, IMAP_ESR_SAVE, nums, 2, 0);
	assert_int_equal(b.len, 0);
	buf_free(&b);

	assert_int_equal(imap_esearch_save_part(IMAP_ESR_SAVE, 4, idx), SIZE_MAX);
	assert_int_equal(imap_esearch_save_part(IMAP_ESR_SAVE | IMAP_ESR_ALL |
	    IMAP_ESR_MIN, 4, idx), SIZE_MAX);
	assert_int_equal(imap_esearch_save_part(IMAP_ESR_SAVE | IMAP_ESR_MIN |
	    IMAP_ESR_MAX, 4, idx), 2);
	assert_true(idx[0] == 0 && idx[1] == 3);
	assert_int_equal(imap_esearch_save_part(IMAP_ESR_SAVE | IMAP_ESR_MAX,
	    4, idx), 1);
	assert_true(idx[0] == 3);
	assert_int_equal(imap_esearch_save_part(IMAP_ESR_SAVE | IMAP_ESR_MIN |
	    IMAP_ESR_MAX, 1, idx), 1);
	assert_int_equal(imap_esearch_save_part(IMAP_ESR_SAVE | IMAP_ESR_MIN,
	    0, idx), 0);
}

/* RFC 4731 §3.2: MIN or MAX alone give their message's MODSEQ, both the
   higher of the two, ALL or COUNT the highest of all matches. */
static void
test_esearch_modseq(void **state)
{
	static const uint64_t ms[] = { 7, 9, 8 };

	assert_int_equal(imap_esearch_modseq(IMAP_ESR_MIN, ms, 3), 7);
	assert_int_equal(imap_esearch_modseq(IMAP_ESR_MAX, ms, 3), 8);
	assert_int_equal(imap_esearch_modseq(IMAP_ESR_MAX | IMAP_ESR_SAVE,
	    ms, 3), 8);
	assert_int_equal(imap_esearch_modseq(IMAP_ESR_MIN | IMAP_ESR_MAX,
	    ms, 3), 8);
	assert_int_equal(imap_esearch_modseq(IMAP_ESR_MIN | IMAP_ESR_COUNT,
	    ms, 3), 9);
	assert_int_equal(imap_esearch_modseq(IMAP_ESR_ALL, ms, 3), 9);
	assert_int_equal(imap_esearch_modseq(IMAP_ESR_COUNT, ms, 3), 9);
	assert_int_equal(imap_esearch_modseq(IMAP_ESR_MIN, ms, 0), 0);
}

static void
test_list_opts(void **state)
{
	static const char *const bad[] = { "", "\"\"", "(FOO) \"\" *",
		"\"\" * RETURN", "\"\" * RETURN (FOO)", "\"\" * RETURN (STATUS)",
		"\"\" * RETURN (STATUS ())", "\"\" * RETURN (STATUS (X))",
		"(RECURSIVEMATCH) \"\" *", "(REMOTE RECURSIVEMATCH) \"\" *",
		"\"\" ()", "\"\" * FOO (x)", "\"\" * RETURN () x", "() () *",
		"\"\" (* (a))" };
	struct imap_list_opts o;
	const char *err;
	size_t i;

	parse("\"\" *");
	assert_int_equal(imap_list_opts_parse(cmd.args, cmd.args_end, &o, &err),
	    0);
	assert_true(o.sel == 0 && o.ret == 0 && o.npats == 1);
	parse("(SUBSCRIBED RECURSIVEMATCH REMOTE) \"\" (\"INBOX\" % Foo/*)"
	    " RETURN (CHILDREN STATUS (MESSAGES HIGHESTMODSEQ) SPECIAL-USE)");
	assert_int_equal(imap_list_opts_parse(cmd.args, cmd.args_end, &o, &err),
	    0);
	assert_int_equal(o.sel, IMAP_LSEL_SUBSCRIBED | IMAP_LSEL_RECURSIVEMATCH |
	    IMAP_LSEL_REMOTE);
	assert_int_equal(o.ret, IMAP_LRET_SUBSCRIBED | IMAP_LRET_CHILDREN |
	    IMAP_LRET_STATUS | IMAP_LRET_SPECIAL_USE);
	assert_int_equal(o.status, IMAP_LSTAT_MESSAGES |
	    IMAP_LSTAT_HIGHESTMODSEQ);
	assert_int_equal(o.npats, 3);
	assert_string_equal(o.pats[2]->str, "Foo/*");
	parse("(SPECIAL-USE) \"\" * RETURN ()");
	assert_int_equal(imap_list_opts_parse(cmd.args, cmd.args_end, &o, &err),
	    0);
	assert_int_equal(o.ret, IMAP_LRET_SPECIAL_USE);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse(bad[i][0] ? bad[i] : "\"\"");
		if (bad[i][0] == '\0') {
			/* no arguments at all */
			assert_int_equal(imap_list_opts_parse(cmd.args, cmd.args,
			    &o, &err), -1);
			continue;
		}
		if (imap_list_opts_parse(cmd.args, cmd.args_end, &o, &err) == 0)
			fail_msg("accepted %s", bad[i]);
	}
}

static void
test_list_match(void **state)
{
	assert_true(imap_list_match("*", "a/b/c"));
	assert_true(imap_list_match("%", "abc"));
	assert_false(imap_list_match("%", "a/b"));
	assert_true(imap_list_match("a/%", "a/b"));
	assert_false(imap_list_match("a/%", "a/b/c"));
	assert_true(imap_list_match("a*c", "a/b/c"));
	assert_true(imap_list_match("INBOX", "INBOX"));
	assert_false(imap_list_match("INBOX", "INBOX/x"));
	assert_true(imap_list_match("", ""));
	assert_true(imap_list_match("*%*%*%*%*%*%*%*%*%*%*x",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaax"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_select_params),
		cmocka_unit_test(test_fetch_store_mods),
		cmocka_unit_test(test_esearch),
		cmocka_unit_test(test_esearch_modseq),
		cmocka_unit_test(test_list_opts),
		cmocka_unit_test(test_list_match),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);

	imap_parser_free(&parser);
	return r;
}
