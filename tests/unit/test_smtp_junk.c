/* Unit tests of smtpd's Junk filing (smtpd/smtp_junk.c) through the
   commit path of smtpd/smtp_submit.c and a real store: a message marked
   with smtp_tx_set_junk lands in each local recipient's \Junk mailbox
   (INBOX for a user who has none), an unmarked one in INBOX, and the mark
   is ignored for authenticated submission. */
// LINK: smtpd/smtp_submit.c smtpd/smtp_junk.c smtpd/smtp_checks.c
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "util.h"
#include "store_test_util.h"

#include "smtp_session.h"

static const char msg[] =
    "Return-Path: <a@remote.test>\r\n"
    "Received: from x by y; date\r\n"
    "From: a@remote.test\r\n"
    "Subject: junk test\r\n"
    "\r\n"
    "body\r\n";

static uint32_t
count_in(struct store *st, uint32_t user, const char *name)
{
	struct store_mailbox mb;

	assert_int_equal(store_mailbox_get(st, user, name, &mb), STORE_OK);
	return mb.messages;
}

static void
deliver(struct store *st, struct config *cfg, uint32_t *users, size_t n,
    const char *why, bool submission)
{
	struct smtp_tx tx;

	memset(&tx, 0, sizeof(tx));
	tx.cfg = cfg;
	tx.store = st;
	tx.users = users;
	tx.nusers = n;
	tx.fix_headers = submission;
	str_copy(tx.id, "TESTID", sizeof(tx.id));
	assert_int_equal(store_delivery_new(st, &tx.d), STORE_OK);
	assert_int_equal(store_delivery_write(tx.d, msg, sizeof(msg) - 1),
	    STORE_OK);
	tx.trace_len = strstr(msg, "From:") - msg;
	if (why != NULL) {
		smtp_tx_set_junk(&tx, why);
		smtp_tx_set_junk(&tx, "second reason");
		assert_true(tx.junk);
		assert_string_equal(tx.junk_why, why[0] ? why : "spam");
	}
	smtp_submit_work(&tx);
	assert_int_equal(tx.prep, SMTP_PREP_OK);
	assert_int_equal(tx.commit_err, STORE_OK);
	store_delivery_free(&tx.d);
}

static void
test_junk_filing(void **state)
{
	char dir[64], data[128];
	struct store *st;
	struct store_user a, b;
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	uint32_t users[2];

	(void)state;
	store_test_open(dir, data, "/tmp/pr-junk-XXXXXX", "local.test", &st);
	cfg->data_dir = data;
	cfg->hostname = (char *)"mx.local.test";
	assert_int_equal(store_user_add(st, "a@local.test", "x", 0, &a),
	    STORE_OK);
	assert_int_equal(store_user_add(st, "b@local.test", "x", 0, &b),
	    STORE_OK);
	/* b has no Junk mailbox: INBOX takes its spam. */
	assert_int_equal(store_mailbox_delete(st, b.id, "Junk"), STORE_OK);
	users[0] = a.id;
	users[1] = b.id;

	deliver(st, cfg, users, 2, NULL, false);
	assert_int_equal(count_in(st, a.id, "INBOX"), 1);
	assert_int_equal(count_in(st, a.id, "Junk"), 0);
	assert_int_equal(count_in(st, b.id, "INBOX"), 1);

	deliver(st, cfg, users, 2, "dmarc=quarantine", false);
	assert_int_equal(count_in(st, a.id, "INBOX"), 1);
	assert_int_equal(count_in(st, a.id, "Junk"), 1);
	assert_int_equal(count_in(st, b.id, "INBOX"), 2);

	deliver(st, cfg, users, 1, "", false);
	assert_int_equal(count_in(st, a.id, "Junk"), 2);

	/* Authenticated submission: never filed as spam. */
	deliver(st, cfg, users, 1, "milter", true);
	assert_int_equal(count_in(st, a.id, "INBOX"), 2);
	assert_int_equal(count_in(st, a.id, "Junk"), 2);

	/* A renamed Junk is still found by its special use. */
	assert_int_equal(store_mailbox_rename(st, a.id, "Junk", "Spam"),
	    STORE_OK);
	deliver(st, cfg, users, 1, "x", false);
	assert_int_equal(count_in(st, a.id, "Spam"), 3);

	store_close(&st);
	rm_tree(dir);
	free(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_junk_filing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
