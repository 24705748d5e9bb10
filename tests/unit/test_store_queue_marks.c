/* Unit tests of the queue writes mtad makes one with another's commit:
   store_delivery_queue_mark (a DSN, delivered locally or queued, and the
   flags that say it went, in one transaction; a message gone meanwhile is
   skipped) and store_queue_rcpt_retry (recipients whose results could not
   be committed go back from INFLIGHT to DEFERRED, due when asked). Over a
   real LMDB in a mkdtemp data dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "store.h"
#include "util.h"
#include "store_test_util.h"

struct fx {
	char dir[64];
	char data[128];
	struct store *st;
	struct store_user alice;
};

static char pwhash[PW_HASH_MAX];

static const char msg_text[] =
    "From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: hi\r\n"
    "\r\nhello\r\n";

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	store_test_open(f->dir, f->data, "/tmp/test_store_marks.XXXXXX",
	    "example.test", &f->st);
	if (!pwhash[0])
		assert_int_equal(pw_hash("pw", pwhash), 0);
	assert_int_equal(store_user_add(f->st, "alice@example.test", pwhash,
	    0, &f->alice), STORE_OK);
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

/* A queued message for two remote recipients. */
static uint64_t
add2(struct store *st)
{
	struct store_queue_msg env;
	struct store_queue_rcpt r[2];
	uint64_t id = 0;

	memset(&env, 0, sizeof(env));
	str_copy(env.sender, "alice@example.test", sizeof(env.sender));
	memset(r, 0, sizeof(r));
	str_copy(r[0].address, "bob@remote.test", sizeof(r[0].address));
	str_copy(r[1].address, "carol@other.test", sizeof(r[1].address));
	assert_int_equal(store_queue_add(st, msg_text, strlen(msg_text), &env,
	    r, 2, &id), STORE_OK);
	return id;
}

static uint32_t
flags_of(struct store *st, uint64_t id, uint32_t idx)
{
	struct store_queue_rcpt *r = NULL;
	size_t n = 0;
	uint32_t fl;

	assert_int_equal(store_queue_get(st, id, NULL, &r, &n), STORE_OK);
	assert_true(idx < n);
	fl = r[idx].flags;
	free(r);
	return fl;
}

static void
test_mark_with_local_delivery(void **state)
{
	struct fx *f = *state;
	uint64_t id = add2(f->st);
	uint32_t idx[1] = { 1 };
	struct store_delivery *d = NULL;

	assert_int_equal(store_delivery_new(f->st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, msg_text, strlen(msg_text)),
	    STORE_OK);
	assert_int_equal(store_delivery_add_target(d, f->alice.id, 0, 0,
	    NULL, 0, 0, 0), STORE_OK);
	assert_int_equal(store_delivery_queue_mark(d, id, idx, 1,
	    STORE_QRF_FINAL_DSN), STORE_OK);
	/* Once per delivery. */
	assert_int_equal(store_delivery_queue_mark(d, id, idx, 1,
	    STORE_QRF_FINAL_DSN), STORE_EPERM);
	assert_int_equal(flags_of(f->st, id, 1), 0);    /* not before */
	assert_int_equal(store_delivery_commit(d, STORE_DELIVER_NOQUOTA,
	    NULL), STORE_OK);
	/* Nothing was queued by it. */
	assert_int_equal(store_delivery_queue_id(d), 0);
	store_delivery_free(&d);
	assert_int_equal(flags_of(f->st, id, 0), 0);
	assert_int_equal(flags_of(f->st, id, 1), STORE_QRF_FINAL_DSN);
}

static void
test_mark_with_queued_dsn(void **state)
{
	struct fx *f = *state;
	uint64_t id = add2(f->st), dsn;
	uint32_t idx[2] = { 0, 1 };
	struct store_delivery *d = NULL;
	struct store_queue_msg env;
	struct store_queue_rcpt r;

	memset(&env, 0, sizeof(env));
	env.flags = STORE_QMF_DSN;
	memset(&r, 0, sizeof(r));
	str_copy(r.address, "sender@remote.test", sizeof(r.address));
	assert_int_equal(store_delivery_new(f->st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, msg_text, strlen(msg_text)),
	    STORE_OK);
	/* The mark first, then the queue: both go. */
	assert_int_equal(store_delivery_queue_mark(d, id, idx, 2,
	    STORE_QRF_DELAY_DSN), STORE_OK);
	assert_int_equal(store_delivery_queue(d, &env, &r, 1), STORE_OK);
	assert_int_equal(store_delivery_queue(d, &env, &r, 1), STORE_EPERM);
	assert_int_equal(store_delivery_commit(d, 0, NULL), STORE_OK);
	dsn = store_delivery_queue_id(d);
	store_delivery_free(&d);
	assert_true(dsn != 0 && dsn != id);
	assert_int_equal(flags_of(f->st, id, 0), STORE_QRF_DELAY_DSN);
	assert_int_equal(flags_of(f->st, id, 1), STORE_QRF_DELAY_DSN);
	assert_int_equal(flags_of(f->st, dsn, 0), 0);
}

static void
test_mark_of_deleted_message_skipped(void **state)
{
	struct fx *f = *state;
	uint64_t id = add2(f->st);
	uint32_t idx[1] = { 0 };
	struct store_delivery *d = NULL;

	assert_int_equal(store_queue_delete(f->st, id), STORE_OK);
	assert_int_equal(store_delivery_new(f->st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, msg_text, strlen(msg_text)),
	    STORE_OK);
	assert_int_equal(store_delivery_add_target(d, f->alice.id, 0, 0,
	    NULL, 0, 0, 0), STORE_OK);
	assert_int_equal(store_delivery_queue_mark(d, id, idx, 1,
	    STORE_QRF_FINAL_DSN), STORE_OK);
	assert_int_equal(store_delivery_commit(d, STORE_DELIVER_NOQUOTA,
	    NULL), STORE_OK);
	store_delivery_free(&d);
}

static void
test_retry_puts_inflight_back(void **state)
{
	struct fx *f = *state;
	uint64_t id = add2(f->st), gone = add2(f->st), *ids = NULL;
	int64_t now = (int64_t)time(NULL), next;
	uint32_t idx[2] = { 0, 1 };
	size_t n = 2;
	struct store_queue_result res;
	struct store_queue_result_item it[3];
	struct store_queue_rcpt *r = NULL;

	assert_int_equal(store_queue_begin_attempt(f->st, id, idx, &n, now),
	    STORE_OK);
	assert_int_equal(n, 2);
	/* Nothing due while both are in flight. */
	assert_int_equal(store_queue_due(f->st, now + 1000, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 1);
	assert_true(ids[0] == gone);
	free(ids);
	memset(&res, 0, sizeof(res));
	res.state = STORE_QS_SENT;
	res.now = now;
	assert_int_equal(store_queue_rcpt_result(f->st, id, 0, &res),
	    STORE_OK);
	assert_int_equal(store_queue_delete(f->st, gone), STORE_OK);
	/* Both results failed to commit, as mtad saw it: rcpt 0's did go
	   (it stays SENT), rcpt 1 goes back; the deleted one is skipped. */
	memset(it, 0, sizeof(it));
	it[0].id = id;
	it[0].idx = 0;
	it[0].res.next_attempt = now + 60;
	it[1].id = id;
	it[1].idx = 1;
	it[1].res.next_attempt = now + 60;
	it[2].id = gone;
	it[2].idx = 0;
	assert_int_equal(store_queue_rcpt_retry(f->st, it, 3), STORE_OK);
	assert_int_equal(it[0].err, STORE_OK);
	assert_int_equal(it[2].err, STORE_ENOTFOUND);
	assert_int_equal(store_queue_get(f->st, id, NULL, &r, &n), STORE_OK);
	assert_int_equal(r[0].state, STORE_QS_SENT);
	assert_int_equal(r[1].state, STORE_QS_DEFERRED);
	assert_true(r[1].next_attempt == now + 60);
	free(r);
	assert_int_equal(store_queue_due(f->st, now + 59, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 0);
	free(ids);
	assert_int_equal(store_queue_due(f->st, now + 60, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 1);
	assert_true(ids[0] == id);
	free(ids);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mark_with_local_delivery,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mark_with_queued_dsn,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_mark_of_deleted_message_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_puts_inflight_back,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
