/* Unit tests of store_msg_scan (the one-pass read an IMAP view is built
   from) against store_msg_list, and of the first unseen MSN SELECT
   reports, for unseen messages at either end of the mailbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_view.h"
#include "util.h"
#include "store_test_util.h"

struct fx {
	char dir[64];
	char data[128];
	struct store *st;
	struct store_user alice;
};

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	store_test_open(f->dir, f->data, "/tmp/test_store_view.XXXXXX",
	    "example.test", &f->st);
	/* the hash is never checked here */
	assert_int_equal(store_user_add(f->st, "alice@example.test",
	    "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", 0,
	    &f->alice), STORE_OK);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	store_close(&f->st);
	rm_tree(f->dir);
	free(f);
	return 0;
}

static uint32_t
deliver(struct store *st, uint32_t user, uint32_t mbox, uint32_t flags)
{
	static const char body[] = "Subject: s\r\n\r\nbody\r\n";
	struct store_delivery *d;
	struct store_delivery_result res;

	assert_int_equal(store_delivery_new(st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, body, strlen(body)), STORE_OK);
	assert_int_equal(store_delivery_add_target(d, user, mbox, flags, NULL,
	    0, 0, 0), STORE_OK);
	assert_int_equal(store_delivery_commit(d, 0, &res), STORE_OK);
	store_delivery_free(&d);
	return res.uid;
}

static uint32_t
create(struct fx *f, const char *name)
{
	struct store_mailbox mb;

	assert_int_equal(store_mailbox_create(f->st, f->alice.id, name, 0, &mb),
	    STORE_OK);
	return mb.id;
}

struct got {
	struct store_msg m[16];
	size_t n;
};

static void
collect(void *arg, const struct store_msg *m)
{
	struct got *g = arg;

	assert_true(g->n < 16);
	g->m[g->n++] = *m;
}

static void
test_scan_equals_list(void **state)
{
	struct fx *f = *state;
	uint32_t a = create(f, "a"), b = create(f, "b");
	struct store_mailbox mb;
	struct store_msg *list;
	struct got g = { .n = 0 };
	uint32_t gone = 2, *out;
	size_t n, i, nout;

	for (i = 0; i < 5; i++) {
		deliver(f->st, f->alice.id, a, i % 2 ? STORE_F_SEEN : 0);
		deliver(f->st, f->alice.id, b, 0);
	}
	assert_int_equal(store_msg_expunge(f->st, a, &gone, 1, false, &out,
	    &nout), STORE_OK);
	assert_int_equal(nout, 1);
	free(out);
	assert_int_equal(store_msg_scan(f->st, a, &mb, collect, &g), STORE_OK);
	assert_int_equal(store_msg_list(f->st, a, 0, 0, &list, &n, NULL),
	    STORE_OK);
	assert_int_equal(mb.id, a);
	assert_int_equal(mb.messages, 4);
	assert_int_equal(g.n, n);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++) {
		assert_int_equal(g.m[i].uid, list[i].uid);
		assert_int_equal(g.m[i].flags, list[i].flags);
		assert_int_equal(g.m[i].keywords, list[i].keywords);
		assert_true(g.m[i].modseq == list[i].modseq);
		assert_true(g.m[i].size == list[i].size);
		assert_true(g.m[i].internaldate == list[i].internaldate);
		assert_int_equal(g.m[i].internal_tz, list[i].internal_tz);
	}
	assert_int_equal(g.m[0].uid, 1);
	assert_int_equal(g.m[1].uid, 3);
	free(list);
}

static void
test_scan_empty_and_unknown(void **state)
{
	struct fx *f = *state;
	uint32_t e = create(f, "empty");
	struct store_mailbox mb;
	struct got g = { .n = 0 };

	assert_int_equal(store_msg_scan(f->st, e, &mb, collect, &g), STORE_OK);
	assert_int_equal(g.n, 0);
	assert_int_equal(mb.messages, 0);
	assert_int_equal(store_msg_scan(f->st, 999999, &mb, collect, &g),
	    STORE_ENOTFOUND);
	assert_int_equal(g.n, 0);
}

/* [UNSEEN n] of a mailbox of 8 whose unseen ones are the set bits of
   mask (bit i: MSN i + 1). */
static uint32_t
first_unseen(struct fx *f, const char *name, unsigned mask)
{
	uint32_t id = create(f, name);
	struct store_select sel;
	unsigned i;

	for (i = 0; i < 8; i++)
		deliver(f->st, f->alice.id, id,
		    mask & (1u << i) ? 0 : STORE_F_SEEN);
	assert_int_equal(store_mailbox_select(f->st, f->alice.id, name, true,
	    &sel), STORE_OK);
	assert_int_equal(sel.mb.messages, 8);
	return sel.first_unseen;
}

static void
test_first_unseen_either_end(void **state)
{
	struct fx *f = *state;

	assert_int_equal(first_unseen(f, "all", 0xff), 1);
	assert_int_equal(first_unseen(f, "first", 0x01), 1);
	assert_int_equal(first_unseen(f, "second", 0x06), 2);
	assert_int_equal(first_unseen(f, "back", 0x40), 7);
	assert_int_equal(first_unseen(f, "last2", 0xc0), 7);
	assert_int_equal(first_unseen(f, "middle", 0x88), 4);
	assert_int_equal(first_unseen(f, "last", 0x80), 8);
	assert_int_equal(first_unseen(f, "none", 0x00), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scan_equals_list, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_scan_empty_and_unknown,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_unseen_either_end,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
