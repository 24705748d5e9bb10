/* Unit tests of the outbound queue (store/store_queue.c) over a real LMDB in
   a mkdtemp data dir: add/get/due, a delivery that is local and queued in
   one commit, attempts and per-recipient results, finish, recovery of
   in-flight recipients, admin delete winning over an attempt in flight,
   hold/release/flush, list and the attempt log, record round trip with
   every field at its longest, undecodable records (every truncation of a
   real record) moved aside, orphan files, the submission rate counter, and
   a crash test: a child adding in a loop is killed with SIGKILL and every
   add it saw acknowledged is in the queue exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "store.h"
#include "store_private.h"
#include "util.h"
#include "store_test_util.h"

struct fx {
	char dir[64];
	char data[128];
	struct store *st;
	struct store_user alice;
};

static char pwhash[PW_HASH_MAX];

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	store_test_open(f->dir, f->data, "/tmp/test_store_queue.XXXXXX",
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

static const char msg_text[] =
    "From: alice@example.test\nTo: bob@remote.test\nSubject: hi\n\nhello\n";

static void
env_init(struct store_queue_msg *env, const char *sender)
{
	memset(env, 0, sizeof(*env));
	str_copy(env->sender, sender, sizeof(env->sender));
}

static void
rcpt_init(struct store_queue_rcpt *r, const char *addr, uint32_t notify)
{
	memset(r, 0, sizeof(*r));
	str_copy(r->address, addr, sizeof(r->address));
	r->notify = notify;
}

static uint64_t
add2(struct store *st, const char *auth_user)
{
	struct store_queue_msg env;
	struct store_queue_rcpt r[2];
	uint64_t id = 0;

	env_init(&env, "alice@example.test");
	str_copy(env.envid, "env-1", sizeof(env.envid));
	env.ret = STORE_QRET_HDRS;
	if (auth_user != NULL)
		str_copy(env.auth_user, auth_user, sizeof(env.auth_user));
	rcpt_init(&r[0], "bob@remote.test", STORE_QN_SUCCESS |
	    STORE_QN_FAILURE);
	str_copy(r[0].orcpt, "rfc822;bob@remote.test", sizeof(r[0].orcpt));
	rcpt_init(&r[1], "carol@other.test", 0);
	assert_int_equal(store_queue_add(st, msg_text, strlen(msg_text), &env,
	    r, 2, &id), STORE_OK);
	assert_true(id != 0);
	return id;
}

static char *
read_all(int fd)
{
	struct buf b;
	char chunk[4096];
	ssize_t n;

	buf_init(&b);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)n);
	buf_append(&b, "", 1);
	return b.data;
}

static void
test_id_str(void **state)
{
	char buf[24];
	uint64_t id;

	store_queue_id_str(0x1a2, buf, sizeof(buf));
	assert_string_equal(buf, "00000001A2");
	assert_int_equal(store_queue_id_parse(buf, &id), 0);
	assert_true(id == 0x1a2);
	assert_int_equal(store_queue_id_parse("1a2", &id), 0);
	assert_true(id == 0x1a2);
	store_queue_id_str(UINT64_MAX, buf, sizeof(buf));
	assert_string_equal(buf, "FFFFFFFFFFFFFFFF");
	assert_int_equal(store_queue_id_parse(buf, &id), 0);
	assert_true(id == UINT64_MAX);
	assert_int_equal(store_queue_id_parse("", &id), -1);
	assert_int_equal(store_queue_id_parse("0", &id), -1);
	assert_int_equal(store_queue_id_parse("12G", &id), -1);
	assert_int_equal(store_queue_id_parse("../x", &id), -1);
	assert_int_equal(store_queue_id_parse("11111111111111111", &id), -1);
	assert_int_equal(store_queue_id_parse(NULL, &id), -1);
}

static void
test_add_get(void **state)
{
	struct fx *f = *state;
	struct store_queue_msg m;
	struct store_queue_rcpt *r;
	size_t n;
	uint64_t id = add2(f->st, NULL), id2, *ids;
	int64_t now = (int64_t)time(NULL), next;
	char *text;
	int fd;

	assert_int_equal(store_queue_get(f->st, id, &m, &r, &n), STORE_OK);
	assert_true(m.id == id);
	assert_string_equal(m.sender, "alice@example.test");
	assert_string_equal(m.envid, "env-1");
	assert_int_equal(m.ret, STORE_QRET_HDRS);
	assert_string_equal(m.auth_user, "");
	assert_int_equal(m.flags, 0);
	assert_int_equal(m.nrcpts, 2);
	assert_true(m.arrival >= now - 5 && m.arrival <= now + 5);
	assert_int_equal(n, 2);
	assert_string_equal(r[0].address, "bob@remote.test");
	assert_string_equal(r[0].orcpt, "rfc822;bob@remote.test");
	assert_int_equal(r[0].notify, STORE_QN_SUCCESS | STORE_QN_FAILURE);
	assert_int_equal(r[0].state, STORE_QS_PENDING);
	assert_int_equal(r[0].attempts, 0);
	assert_string_equal(r[1].address, "carol@other.test");
	assert_int_equal(r[1].idx, 1);
	assert_int_equal(r[1].notify, 0);
	free(r);

	/* The file: CRLF, size as recorded. */
	assert_int_equal(store_queue_open(f->st, id, &fd), STORE_OK);
	text = read_all(fd);
	close(fd);
	assert_true(strlen(text) == m.size);
	assert_non_null(strstr(text, "Subject: hi\r\n\r\nhello\r\n"));
	free(text);

	/* Due at once; a second one after it. */
	id2 = add2(f->st, NULL);
	assert_true(id2 > id);
	assert_int_equal(store_queue_due(f->st, now + 10, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 2);
	assert_true(ids[0] == id && ids[1] == id2);
	assert_true(next == 0);
	free(ids);
	assert_int_equal(store_queue_due(f->st, now + 10, 1, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 1);
	assert_true(next != 0);
	free(ids);
	assert_int_equal(store_queue_due(f->st, now - 100, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 0);
	assert_null(ids);
	assert_true(next >= now - 5);

	assert_int_equal(store_queue_get(f->st, 999999, &m, NULL, NULL),
	    STORE_ENOTFOUND);
	/* Bad input. */
	struct store_queue_msg env;
	struct store_queue_rcpt bad;
	env_init(&env, "");
	rcpt_init(&bad, "", 0);
	assert_int_equal(store_queue_add(f->st, "x", 1, &env, &bad, 1, NULL),
	    STORE_EPERM);
	assert_int_equal(store_queue_add(f->st, "x", 1, &env, &bad, 0, NULL),
	    STORE_ELIMIT);
}

static void
test_mixed_delivery(void **state)
{
	struct fx *f = *state;
	struct store_delivery *d;
	struct store_delivery_result res;
	struct store_queue_msg env, m;
	struct store_queue_rcpt r;
	struct store_mailbox mb;
	char wake[4096];
	struct stat before, after;
	uint64_t id;

	store_queue_notify_path(f->st, wake, sizeof(wake));
	assert_int_equal(stat(wake, &before), 0);
	env_init(&env, "alice@example.test");
	str_copy(env.auth_user, "alice@example.test", sizeof(env.auth_user));
	rcpt_init(&r, "bob@remote.test", 0);
	assert_int_equal(store_delivery_new(f->st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, msg_text, strlen(msg_text)),
	    STORE_OK);
	assert_int_equal(store_delivery_add_target(d, f->alice.id, 0, 0, NULL,
	    0, 0, 0), STORE_OK);
	assert_int_equal(store_delivery_queue(d, &env, &r, 1), STORE_OK);
	assert_int_equal(store_delivery_queue(d, &env, &r, 1), STORE_EPERM);
	assert_true(store_delivery_queue_id(d) == 0);
	assert_int_equal(store_delivery_commit(d, 0, &res), STORE_OK);
	id = store_delivery_queue_id(d);
	assert_true(id != 0);
	store_delivery_free(&d);

	assert_int_equal(store_mailbox_get(f->st, f->alice.id, "INBOX", &mb),
	    STORE_OK);
	assert_int_equal(mb.messages, 1);
	assert_int_equal(store_queue_get(f->st, id, &m, NULL, NULL), STORE_OK);
	assert_true(m.size == mb.size);
	assert_string_equal(m.auth_user, "alice@example.test");
	assert_int_equal(stat(wake, &after), 0);
	assert_true(after.st_mtim.tv_sec > before.st_mtim.tv_sec ||
	    (after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
	    after.st_mtim.tv_nsec >= before.st_mtim.tv_nsec));

	/* Nothing left in data_dir/tmp. */
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "ls -A '%s/tmp' | grep -q .", f->data);
	assert_int_not_equal(system(tmp), 0);
}

struct log_acc {
	int n;
	struct store_queue_log_entry last;
};

static int
log_cb(void *arg, const struct store_queue_log_entry *e)
{
	struct log_acc *a = arg;

	a->n++;
	a->last = *e;
	return 0;
}

static void
test_attempt_results(void **state)
{
	struct fx *f = *state;
	uint64_t id = add2(f->st, NULL), *ids;
	int64_t now = (int64_t)time(NULL), next;
	uint32_t idx[3] = { 0, 1, 7 };
	size_t n = 3;
	struct store_queue_rcpt *r;
	struct store_queue_result res;
	struct log_acc acc = { 0 };
	bool removed;
	int fd;

	assert_int_equal(store_queue_begin_attempt(f->st, id, idx, &n, now),
	    STORE_OK);
	assert_int_equal(n, 2);
	/* Already in flight: nothing marked again. */
	idx[0] = 0;
	n = 1;
	assert_int_equal(store_queue_begin_attempt(f->st, id, idx, &n, now),
	    STORE_OK);
	assert_int_equal(n, 0);
	/* All in flight: not due. */
	assert_int_equal(store_queue_due(f->st, now + 1000, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 0);
	free(ids);

	memset(&res, 0, sizeof(res));
	res.state = STORE_QS_SENT;
	res.now = now;
	res.status = "2.0.0";
	res.reply = "250 2.0.0 Ok: queued as 123";
	res.remote = "mx.remote.test[127.0.0.2]:25";
	assert_int_equal(store_queue_rcpt_result(f->st, id, 0, &res),
	    STORE_OK);
	res.state = STORE_QS_DEFERRED;
	res.next_attempt = now + 300;
	res.status = "4.2.0";
	res.reply = "451 4.2.0 try later";
	res.remote = "mx.other.test[127.0.0.3]:25";
	assert_int_equal(store_queue_rcpt_result(f->st, id, 1, &res),
	    STORE_OK);
	assert_int_equal(store_queue_rcpt_result(f->st, id, 5, &res),
	    STORE_ENOTFOUND);

	assert_int_equal(store_queue_get(f->st, id, NULL, &r, &n), STORE_OK);
	assert_int_equal(r[0].state, STORE_QS_SENT);
	assert_int_equal(r[0].attempts, 1);
	assert_string_equal(r[0].status, "2.0.0");
	assert_string_equal(r[0].remote, "mx.remote.test[127.0.0.2]:25");
	assert_int_equal(r[1].state, STORE_QS_DEFERRED);
	assert_true(r[1].next_attempt == now + 300);
	assert_string_equal(r[1].reply, "451 4.2.0 try later");
	free(r);

	assert_int_equal(store_queue_due(f->st, now + 299, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 0);
	assert_true(next == now + 300);
	free(ids);
	assert_int_equal(store_queue_due(f->st, now + 300, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 1);
	assert_true(ids[0] == id);
	free(ids);

	assert_int_equal(store_queue_finish(f->st, id, &removed), STORE_OK);
	assert_false(removed);
	assert_int_equal(store_queue_rcpt_set_flags(f->st, id, 1,
	    STORE_QRF_DELAY_DSN), STORE_OK);

	idx[0] = 1;
	n = 1;
	assert_int_equal(store_queue_begin_attempt(f->st, id, idx, &n,
	    now + 300), STORE_OK);
	assert_int_equal(n, 1);
	res.state = STORE_QS_FAILED;
	res.now = now + 301;
	res.status = "5.1.1";
	res.reply = "550 5.1.1 no such user";
	assert_int_equal(store_queue_rcpt_result(f->st, id, 1, &res),
	    STORE_OK);
	assert_int_equal(store_queue_get(f->st, id, NULL, &r, &n), STORE_OK);
	assert_int_equal(r[1].attempts, 2);
	assert_int_equal(r[1].flags, STORE_QRF_DELAY_DSN);
	free(r);
	/* Nothing left to try: due at once, to be finished. */
	assert_int_equal(store_queue_due(f->st, now + 301, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 1);
	free(ids);

	assert_int_equal(store_queue_log(f->st, id, log_cb, &acc), STORE_OK);
	assert_int_equal(acc.n, 3);
	assert_int_equal(acc.last.idx, 1);
	assert_int_equal(acc.last.state, STORE_QS_FAILED);
	assert_string_equal(acc.last.address, "carol@other.test");
	assert_string_equal(acc.last.reply, "550 5.1.1 no such user");

	assert_int_equal(store_queue_finish(f->st, id, &removed), STORE_OK);
	assert_true(removed);
	assert_int_equal(store_queue_get(f->st, id, NULL, NULL, NULL),
	    STORE_ENOTFOUND);
	assert_int_equal(store_queue_open(f->st, id, &fd), STORE_ENOTFOUND);
	assert_int_equal(store_queue_due(f->st, now + 100000, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 0);
	/* The log outlives the message. */
	acc.n = 0;
	assert_int_equal(store_queue_log(f->st, id, log_cb, &acc), STORE_OK);
	assert_int_equal(acc.n, 3);
	/* ... until pruned. */
	assert_int_equal(store_queue_log_prune(f->st, now + 10), STORE_OK);
	acc.n = 0;
	assert_int_equal(store_queue_log(f->st, id, log_cb, &acc), STORE_OK);
	assert_int_equal(acc.n, 0);
}

static int
report_cb(void *arg, const char *id, const char *why)
{
	struct buf *b = arg;

	buf_puts(b, id);
	buf_puts(b, ": ");
	buf_puts(b, why);
	buf_puts(b, "\n");
	return 0;
}

static void
test_recover_inflight(void **state)
{
	struct fx *f = *state;
	uint64_t id = add2(f->st, NULL), id2 = add2(f->st, NULL), *ids;
	int64_t now = (int64_t)time(NULL), next;
	uint32_t idx[2] = { 0, 1 };
	size_t n = 2;
	struct store_queue_rcpt *r;
	struct store_queue_recover_stats stats;
	struct store_queue_result res;

	assert_int_equal(store_queue_begin_attempt(f->st, id, idx, &n, now),
	    STORE_OK);
	memset(&res, 0, sizeof(res));
	res.state = STORE_QS_SENT;
	res.now = now;
	assert_int_equal(store_queue_rcpt_result(f->st, id, 0, &res),
	    STORE_OK);
	/* The daemon dies here: rcpt 1 is in flight. */
	assert_int_equal(store_queue_recover(f->st, now + 50, NULL, NULL,
	    &stats), STORE_OK);
	assert_int_equal(stats.messages, 2);
	assert_int_equal(stats.inflight, 1);
	assert_int_equal(stats.corrupt, 0);
	assert_int_equal(store_queue_get(f->st, id, NULL, &r, &n), STORE_OK);
	assert_int_equal(r[0].state, STORE_QS_SENT);      /* never re-sent */
	assert_int_equal(r[1].state, STORE_QS_DEFERRED);  /* never lost */
	assert_true(r[1].next_attempt == now + 50);
	free(r);
	assert_int_equal(store_queue_due(f->st, now + 50, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 2);
	assert_true(ids[0] == id2 || ids[1] == id2);
	free(ids);
}

static void
test_delete_wins(void **state)
{
	struct fx *f = *state;
	uint64_t id = add2(f->st, NULL), *ids;
	int64_t now = (int64_t)time(NULL), next;
	uint32_t idx[2] = { 0, 1 };
	size_t n = 2;
	struct store_queue_result res;
	char path[4096];

	assert_int_equal(store_queue_begin_attempt(f->st, id, idx, &n, now),
	    STORE_OK);
	assert_int_equal(store_queue_delete(f->st, id), STORE_OK);
	memset(&res, 0, sizeof(res));
	res.state = STORE_QS_DEFERRED;
	res.now = now;
	res.next_attempt = now + 10;
	assert_int_equal(store_queue_rcpt_result(f->st, id, 0, &res),
	    STORE_ENOTFOUND);
	assert_int_equal(store_queue_rcpt_set_flags(f->st, id, 0, 1),
	    STORE_ENOTFOUND);
	assert_int_equal(store_queue_get(f->st, id, NULL, NULL, NULL),
	    STORE_ENOTFOUND);
	store_queue_path(f->st, id, path, sizeof(path));
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(store_queue_due(f->st, now + 1000, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_queue_delete(f->st, id), STORE_ENOTFOUND);
	assert_int_equal(store_queue_hold(f->st, id), STORE_ENOTFOUND);
	assert_int_equal(store_queue_release(f->st, id), STORE_ENOTFOUND);
	assert_int_equal(store_queue_flush(f->st, id), STORE_ENOTFOUND);
	/* Recovery does not bring it back. */
	assert_int_equal(store_queue_recover(f->st, now, NULL, NULL, NULL),
	    STORE_OK);
	assert_int_equal(store_queue_get(f->st, id, NULL, NULL, NULL),
	    STORE_ENOTFOUND);
}

/* The batch forms mtad uses: several messages per transaction, a deleted
   one skipped, a held one left out, only finished ones removed. */
static void
test_batches(void **state)
{
	struct fx *f = *state;
	uint64_t a = add2(f->st, NULL), b = add2(f->st, NULL),
	    c = add2(f->st, NULL), ids[3];
	int64_t now = (int64_t)time(NULL);
	uint32_t ia[2] = { 0, 1 }, ib[2] = { 0, 1 }, ic[1] = { 1 };
	struct store_queue_begin_item bi[3] = {
		{ .id = a, .idx = ia, .n = 2 },
		{ .id = b, .idx = ib, .n = 2 },
		{ .id = c, .idx = ic, .n = 1 },
	};
	struct store_queue_result_item ri[5];
	struct store_queue_rcpt *r = NULL;
	bool removed[3];
	size_t n;

	assert_int_equal(store_queue_hold(f->st, c), STORE_OK);
	assert_int_equal(store_queue_begin_attempts(f->st, bi, 3, now),
	    STORE_OK);
	assert_int_equal(bi[0].n, 2);
	assert_int_equal(bi[1].n, 2);
	assert_int_equal(bi[2].n, 0);
	assert_int_equal(bi[2].err, STORE_EPERM);
	assert_int_equal(store_queue_get(f->st, b, NULL, &r, &n), STORE_OK);
	assert_int_equal(r[1].state, STORE_QS_INFLIGHT);
	free(r);
	assert_int_equal(store_queue_delete(f->st, b), STORE_OK);
	memset(ri, 0, sizeof(ri));
	for (size_t i = 0; i < 5; i++) {
		ri[i].id = i < 2 ? a : i < 4 ? b : a;
		ri[i].idx = (uint32_t)(i % 2);
		ri[i].res.state = STORE_QS_SENT;
		ri[i].res.now = now;
		ri[i].res.status = "2.0.0";
	}
	ri[4].idx = 1;
	ri[4].res.state = STORE_QS_FAILED;  /* a later result, own run */
	assert_int_equal(store_queue_rcpt_results_many(f->st, ri, 5),
	    STORE_OK);
	assert_int_equal(ri[0].err, STORE_OK);
	assert_int_equal(ri[2].err, STORE_ENOTFOUND);
	assert_int_equal(ri[3].err, STORE_ENOTFOUND);
	assert_int_equal(store_queue_get(f->st, a, NULL, &r, &n), STORE_OK);
	assert_int_equal(r[0].state, STORE_QS_SENT);
	assert_int_equal(r[1].state, STORE_QS_FAILED);
	free(r);
	ids[0] = a;
	ids[1] = b;
	ids[2] = c;
	assert_int_equal(store_queue_finish_many(f->st, ids, 3, removed),
	    STORE_OK);
	assert_true(removed[0] && !removed[1] && !removed[2]);
	assert_int_equal(store_queue_get(f->st, a, NULL, NULL, NULL),
	    STORE_ENOTFOUND);
	assert_int_equal(store_queue_get(f->st, c, NULL, NULL, NULL),
	    STORE_OK);
}

static void
test_hold_release_flush(void **state)
{
	struct fx *f = *state;
	uint64_t id = add2(f->st, NULL), id2 = add2(f->st, NULL), *ids;
	int64_t now = (int64_t)time(NULL), next;
	uint32_t idx[2] = { 0, 1 };
	size_t n = 2;
	struct store_queue_result res;
	struct store_queue_msg m;
	struct store_queue_rcpt *r;

	/* An attempt in flight, then hold: the results are kept, the
	   message is not scheduled again. */
	assert_int_equal(store_queue_begin_attempt(f->st, id, idx, &n, now),
	    STORE_OK);
	assert_int_equal(store_queue_hold(f->st, id), STORE_OK);
	memset(&res, 0, sizeof(res));
	res.state = STORE_QS_SENT;
	res.now = now;
	assert_int_equal(store_queue_rcpt_result(f->st, id, 0, &res),
	    STORE_OK);
	res.state = STORE_QS_DEFERRED;
	res.next_attempt = now;
	assert_int_equal(store_queue_rcpt_result(f->st, id, 1, &res),
	    STORE_OK);
	assert_int_equal(store_queue_get(f->st, id, &m, &r, &n), STORE_OK);
	assert_true(m.flags & STORE_QMF_HELD);
	assert_true(m.next == 0);
	assert_int_equal(r[0].state, STORE_QS_SENT);
	free(r);
	assert_int_equal(store_queue_due(f->st, now + 100000, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 1);
	assert_true(ids[0] == id2);
	free(ids);
	idx[0] = 1;
	n = 1;
	assert_int_equal(store_queue_begin_attempt(f->st, id, idx, &n, now),
	    STORE_EPERM);
	/* Flush of everything leaves held ones alone. */
	assert_int_equal(store_queue_flush(f->st, 0), STORE_OK);
	assert_int_equal(store_queue_get(f->st, id, &m, NULL, NULL), STORE_OK);
	assert_true(m.flags & STORE_QMF_HELD);
	/* Recovery keeps it held. */
	assert_int_equal(store_queue_recover(f->st, now, NULL, NULL, NULL),
	    STORE_OK);
	assert_int_equal(store_queue_due(f->st, now + 100000, 100, &ids, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 1);
	free(ids);

	assert_int_equal(store_queue_release(f->st, id), STORE_OK);
	assert_int_equal(store_queue_get(f->st, id, &m, NULL, NULL), STORE_OK);
	assert_false(m.flags & STORE_QMF_HELD);
	assert_int_equal(store_queue_due(f->st, (int64_t)time(NULL), 100, &ids,
	    &n, &next), STORE_OK);
	assert_int_equal(n, 2);
	free(ids);

	/* Flush: a recipient deferred for an hour becomes due now. Both
	   results in one transaction. */
	idx[0] = 0;
	idx[1] = 1;
	n = 2;
	assert_int_equal(store_queue_begin_attempt(f->st, id2, idx, &n, now),
	    STORE_OK);
	struct store_queue_result two[2];
	memset(two, 0, sizeof(two));
	two[0].state = two[1].state = STORE_QS_DEFERRED;
	two[0].now = two[1].now = now;
	two[0].next_attempt = now + 3600;
	two[1].next_attempt = now + 7200;
	uint32_t bad_idx[2] = { 0, 9 };
	assert_int_equal(store_queue_rcpt_results(f->st, id2, bad_idx, two, 2),
	    STORE_ENOTFOUND);
	assert_int_equal(store_queue_get(f->st, id2, NULL, &r, &n), STORE_OK);
	assert_int_equal(r[0].state, STORE_QS_INFLIGHT);   /* all or nothing */
	free(r);
	assert_int_equal(store_queue_rcpt_results(f->st, id2, idx, two, 2),
	    STORE_OK);
	assert_int_equal(store_queue_get(f->st, id2, &m, NULL, NULL),
	    STORE_OK);
	assert_true(m.next == now + 3600);
	assert_int_equal(store_queue_flush(f->st, id2), STORE_OK);
	assert_int_equal(store_queue_get(f->st, id2, &m, NULL, NULL),
	    STORE_OK);
	assert_true(m.next <= (int64_t)time(NULL));
}

struct list_acc {
	int n;
	unsigned rcpts;
};

static int
list_cb(void *arg, const struct store_queue_msg *m,
    const struct store_queue_rcpt *r, size_t n)
{
	struct list_acc *a = arg;

	a->n++;
	a->rcpts += (unsigned)n;
	assert_string_equal(r[0].address, "bob@remote.test");
	assert_true(m->nrcpts == n);
	return 0;
}

static void
test_list_and_rate(void **state)
{
	struct fx *f = *state;
	struct list_acc acc = { 0 };
	int64_t now = (int64_t)time(NULL);
	unsigned count;

	assert_true(store_rate_check(f->st, "alice@example.test", 2, 3600, now,
	    &count));
	assert_int_equal(count, 0);
	add2(f->st, "alice@example.test");
	add2(f->st, NULL);
	assert_true(store_rate_check(f->st, "alice@example.test", 2, 3600, now,
	    &count));
	assert_int_equal(count, 1);
	add2(f->st, "alice@example.test");
	assert_false(store_rate_check(f->st, "alice@example.test", 2, 3600,
	    now, &count));
	assert_int_equal(count, 2);
	assert_true(store_rate_check(f->st, "alice@example.test", 0, 3600,
	    now, NULL));
	/* The window passes. */
	assert_true(store_rate_check(f->st, "alice@example.test", 2, 3600,
	    now + 4000, &count));
	assert_int_equal(count, 0);
	/* DSNs are never counted. */
	struct store_queue_msg env;
	struct store_queue_rcpt r;
	env_init(&env, "");
	env.flags = STORE_QMF_DSN;
	str_copy(env.auth_user, "alice@example.test", sizeof(env.auth_user));
	rcpt_init(&r, "bob@remote.test", STORE_QN_NEVER);
	assert_int_equal(store_queue_add(f->st, "x\n", 2, &env, &r, 1, NULL),
	    STORE_OK);
	assert_true(store_rate_check(f->st, "alice@example.test", 100, 3600,
	    now, &count));
	assert_int_equal(count, 2);

	assert_int_equal(store_queue_list(f->st, list_cb, &acc), STORE_OK);
	assert_int_equal(acc.n, 4);
	assert_int_equal(acc.rcpts, 7);
}

/* Every field at its longest, with every byte value a field may hold. */
static void
test_round_trip(void **state)
{
	struct fx *f = *state;
	struct store_queue_msg env, m;
	struct store_queue_rcpt r, *got;
	struct store_queue_result res;
	char reply[STORE_QUEUE_REPLY_MAX + 1], remote[STORE_QUEUE_REMOTE_MAX + 1];
	uint64_t id;
	size_t n;
	uint32_t idx = 0;

	memset(&env, 'a', sizeof(env));
	env.sender[STORE_ADDRESS_MAX] = '\0';
	env.envid[STORE_QUEUE_ENVID_MAX] = '\0';
	env.auth_user[STORE_ADDRESS_MAX] = '\0';
	for (size_t i = 0; i < STORE_QUEUE_ENVID_MAX; i++)
		env.envid[i] = (char)(1 + i % 255);
	env.ret = STORE_QRET_FULL;
	env.flags = STORE_QMF_DSN | 0x100;   /* unknown bits are dropped */
	memset(&r, 'b', sizeof(r));
	r.address[STORE_ADDRESS_MAX] = '\0';
	r.orcpt[STORE_QUEUE_ORCPT_MAX] = '\0';
	r.notify = 0xff;
	assert_int_equal(store_queue_add(f->st, "x", 1, &env, &r, 1, &id),
	    STORE_OK);
	assert_int_equal(store_queue_get(f->st, id, &m, &got, &n), STORE_OK);
	assert_string_equal(m.sender, env.sender);
	assert_memory_equal(m.envid, env.envid, sizeof(m.envid));
	assert_string_equal(m.auth_user, env.auth_user);
	assert_int_equal(m.ret, STORE_QRET_FULL);
	assert_int_equal(m.flags, STORE_QMF_DSN);
	assert_string_equal(got[0].address, r.address);
	assert_string_equal(got[0].orcpt, r.orcpt);
	assert_int_equal(got[0].notify, 0xf);
	free(got);

	for (size_t i = 0; i < sizeof(reply) - 1; i++)
		reply[i] = (char)(1 + (i * 7) % 255);
	reply[sizeof(reply) - 1] = '\0';
	memset(remote, 'r', sizeof(remote));
	remote[sizeof(remote) - 1] = '\0';
	n = 1;
	assert_int_equal(store_queue_begin_attempt(f->st, id, &idx, &n, 5),
	    STORE_OK);
	memset(&res, 0, sizeof(res));
	res.state = STORE_QS_DEFERRED;
	res.now = -7;                      /* any value survives */
	res.next_attempt = INT64_MAX;
	res.status = "4.4.1-too-long-for-the-field";
	res.reply = reply;
	res.remote = remote;
	res.set_flags = STORE_QRF_RELAYED;
	assert_int_equal(store_queue_rcpt_result(f->st, id, 0, &res),
	    STORE_OK);
	assert_int_equal(store_queue_get(f->st, id, NULL, &got, &n), STORE_OK);
	assert_string_equal(got[0].reply, reply);
	assert_string_equal(got[0].remote, remote);
	assert_string_equal(got[0].status, "4.4.1-too-long-");
	assert_true(got[0].last_attempt == -7);
	assert_true(got[0].next_attempt == INT64_MAX);
	assert_int_equal(got[0].flags, STORE_QRF_RELAYED);
	assert_int_equal(got[0].attempts, 1);
	free(got);
}

/* A queue file left at the next ID by a process that died before its
   commit does not block later adds; the free-space check. */
static void
test_leftover_file_and_space(void **state)
{
	struct fx *f = *state;
	uint64_t id = add2(f->st, NULL), id2;
	char path[4096], *text;
	int fd;

	store_queue_path(f->st, id + 1, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "stale", 5), 5);
	close(fd);
	id2 = add2(f->st, NULL);
	assert_true(id2 == id + 1);
	assert_int_equal(store_queue_open(f->st, id2, &fd), STORE_OK);
	text = read_all(fd);
	close(fd);
	assert_non_null(strstr(text, "Subject: hi"));
	free(text);

	assert_true(store_queue_space_ok(f->st, 1000));
	assert_false(store_queue_space_ok(f->st, UINT64_MAX / 4));
}

/* Aliases to addresses elsewhere: store_resolve_all returns them; plain
   store_resolve keeps ignoring them. */
static void
test_resolve_all(void **state)
{
	struct fx *f = *state;
	uint32_t *ids;
	char **rem;
	size_t n, nr;

	assert_int_equal(store_alias_add(f->st, "fwd@example.test",
	    "alice@example.test, bob@remote.test,Carol@Other.Test"), STORE_OK);
	assert_int_equal(store_alias_add(f->st, "out@example.test",
	    "bob@remote.test"), STORE_OK);
	assert_int_equal(store_alias_add(f->st, "both@example.test",
	    "fwd@example.test,out@example.test"), STORE_OK);
	assert_int_equal(store_alias_add(f->st, "bad@example.test",
	    "not an address"), STORE_EPERM);
	assert_int_equal(store_resolve_all(f->st, "FWD+x@example.test", &ids,
	    &n, &rem, &nr), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], f->alice.id);
	assert_int_equal(nr, 2);
	assert_string_equal(rem[0], "bob@remote.test");
	assert_string_equal(rem[1], "carol@other.test");
	free(ids);
	store_strv_free(rem, nr);
	assert_int_equal(store_resolve_all(f->st, "both@example.test", &ids,
	    &n, &rem, &nr), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(nr, 2);   /* bob once */
	free(ids);
	store_strv_free(rem, nr);
	assert_int_equal(store_resolve_all(f->st, "out@example.test", &ids,
	    &n, &rem, &nr), STORE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(nr, 1);
	free(ids);
	store_strv_free(rem, nr);
	assert_int_equal(store_resolve(f->st, "out@example.test", &ids, &n),
	    STORE_ENOTFOUND);
	assert_int_equal(store_resolve(f->st, "fwd@example.test", &ids, &n),
	    STORE_OK);
	assert_int_equal(n, 1);
	free(ids);
	assert_int_equal(store_resolve_all(f->st, "nobody@example.test", &ids,
	    &n, &rem, &nr), STORE_ENOTFOUND);
	assert_null(rem);
	assert_int_equal(store_resolve_all(f->st, "x@remote.test", &ids,
	    &n, &rem, &nr), STORE_EPERM);
	assert_null(rem);
}

/* Raw access to a record through the store's LMDB handles. */
static void
raw_put(struct store *st, MDB_dbi dbi, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	MDB_txn *txn;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	assert_int_equal(mdb_txn_begin(st->env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
}

static size_t
raw_get(struct store *st, MDB_dbi dbi, const void *key, size_t klen,
    unsigned char *out, size_t size)
{
	MDB_txn *txn;
	MDB_val k = { klen, (void *)key }, v;
	size_t n = 0;

	assert_int_equal(mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn), 0);
	if (mdb_get(txn, dbi, &k, &v) == 0) {
		n = v.mv_size < size ? v.mv_size : size;
		memcpy(out, v.mv_data, n);
	}
	mdb_txn_abort(txn);
	return n;
}

static void
key64(unsigned char *k, uint64_t id)
{
	be32_put(k, (uint32_t)(id >> 32));
	be32_put(k + 4, (uint32_t)id);
}

static void
test_corrupt(void **state)
{
	struct fx *f = *state;
	uint64_t id = add2(f->st, NULL), id2 = add2(f->st, NULL),
	    id3 = add2(f->st, NULL);
	unsigned char key[12], rec[4096];
	size_t len, rlen;
	struct store_queue_msg m;
	struct store_queue_rcpt *r;
	struct store_queue_recover_stats stats;
	struct buf rep;
	char path[4096], ids[24];
	size_t n;
	int64_t now = (int64_t)time(NULL);

	/* Every truncation of a real message record and of a recipient
	   record is refused cleanly, then the good record comes back. */
	key64(key, id);
	len = raw_get(f->st, f->st->db_qmsgs, key, 8, rec, sizeof(rec));
	assert_true(len > 10);
	for (size_t cut = 0; cut < len; cut++) {
		raw_put(f->st, f->st->db_qmsgs, key, 8, rec, cut);
		assert_int_equal(store_queue_get(f->st, id, &m, NULL, NULL),
		    STORE_ECORRUPT);
	}
	raw_put(f->st, f->st->db_qmsgs, key, 8, rec, len);
	be32_put(key + 8, 1);
	rlen = raw_get(f->st, f->st->db_qrcpts, key, 12, rec, sizeof(rec));
	assert_true(rlen > 10);
	for (size_t cut = 0; cut < rlen; cut++) {
		raw_put(f->st, f->st->db_qrcpts, key, 12, rec, cut);
		assert_int_equal(store_queue_get(f->st, id, &m, &r, &n),
		    STORE_ECORRUPT);
		assert_null(r);
	}
	/* Left corrupt: a recipient record with a bad version byte. */
	rec[0] = 99;
	raw_put(f->st, f->st->db_qrcpts, key, 12, rec, rlen);
	/* id2 loses its file. */
	store_queue_path(f->st, id2, path, sizeof(path));
	assert_int_equal(unlink(path), 0);

	buf_init(&rep);
	assert_int_equal(store_queue_recover(f->st, now, report_cb, &rep,
	    &stats), STORE_OK);
	buf_append(&rep, "", 1);
	assert_int_equal(stats.corrupt, 2);
	assert_int_equal(stats.messages, 1);
	store_queue_id_str(id, ids, sizeof(ids));
	assert_non_null(strstr(rep.data, ids));
	store_queue_id_str(id2, ids, sizeof(ids));
	assert_non_null(strstr(rep.data, ids));
	assert_non_null(strstr(rep.data, "message file missing"));
	buf_free(&rep);
	/* Moved aside, records gone, the good one untouched. */
	store_queue_id_str(id, ids, sizeof(ids));
	snprintf(path, sizeof(path), "%s/queue/corrupt/%s", f->data, ids);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(store_queue_get(f->st, id, NULL, NULL, NULL),
	    STORE_ENOTFOUND);
	assert_int_equal(store_queue_get(f->st, id2, NULL, NULL, NULL),
	    STORE_ENOTFOUND);
	assert_int_equal(store_queue_get(f->st, id3, &m, NULL, NULL),
	    STORE_OK);
	uint64_t *due;
	int64_t next;
	assert_int_equal(store_queue_due(f->st, now + 10, 100, &due, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 1);
	assert_true(due[0] == id3);
	free(due);

	/* quarantine by hand, too. */
	assert_int_equal(store_queue_quarantine(f->st, id3), STORE_OK);
	assert_int_equal(store_queue_get(f->st, id3, NULL, NULL, NULL),
	    STORE_ENOTFOUND);

	/* An orphan file: old ones go, new ones stay. */
	store_queue_path(f->st, 0xABCDEF, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(store_queue_recover(f->st, now, NULL, NULL, &stats),
	    STORE_OK);
	assert_int_equal(stats.orphans, 0);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(store_queue_recover(f->st, now + 7200, NULL, NULL,
	    &stats), STORE_OK);
	assert_int_equal(stats.orphans, 1);
	assert_int_not_equal(access(path, F_OK), 0);
}

/* The crash test: a child adds in a loop and prints "<id> <tag>" after each
   acknowledged add; it is killed with SIGKILL; every acknowledged one must
   be in the queue once, its file carrying its tag. */
static void
test_crash(void **state)
{
	char dir[64], data[128];
	int pfd[2];
	pid_t pid;
	FILE *in;
	char line[256];
	unsigned acked = 0;
	uint64_t ids[4096];
	char tags[4096][48];

	snprintf(dir, sizeof(dir), "/tmp/test_store_queue_crash.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(data, sizeof(data), "%s/data", dir);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *cst;
		close(pfd[0]);
		if (store_open(data, &cst) != STORE_OK)
			_exit(1);
		for (unsigned i = 0; ; i++) {
			struct store_queue_msg env;
			struct store_queue_rcpt r;
			char body[512], out[128];
			uint64_t id;
			int len, ol;

			env_init(&env, "alice@example.test");
			rcpt_init(&r, "bob@remote.test", 0);
			len = snprintf(body, sizeof(body), "Subject: c\n"
			    "X-Tag: tag%u\n\n%0300u\n", i, i);
			if (store_queue_add(cst, body, (size_t)len, &env, &r,
			    1, &id) != STORE_OK)
				continue;
			ol = snprintf(out, sizeof(out), "%llu tag%u\n",
			    (unsigned long long)id, i);
			if (write(pfd[1], out, (size_t)ol) != ol)
				_exit(1);
		}
	}
	close(pfd[1]);
	in = fdopen(pfd[0], "r");
	assert_non_null(in);
	while (acked < 150 && fgets(line, sizeof(line), in) != NULL) {
		unsigned long long id;
		if (sscanf(line, "%llu %47s", &id, tags[acked]) != 2)
			fail_msg("bad line %s", line);
		ids[acked++] = id;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* Lines written before the kill count as acknowledged too. */
	while (acked < 4096 && fgets(line, sizeof(line), in) != NULL) {
		unsigned long long id;
		if (sscanf(line, "%llu %47s", &id, tags[acked]) == 2)
			ids[acked++] = id;
	}
	fclose(in);
	assert_true(acked >= 150);

	struct store *st;
	struct store_queue_recover_stats stats;
	assert_int_equal(store_open(data, &st), STORE_OK);
	assert_int_equal(store_queue_recover(st, (int64_t)time(NULL) + 7200,
	    NULL, NULL, &stats), STORE_OK);
	assert_int_equal(stats.corrupt, 0);
	/* At most one add committed without its acknowledgement. */
	assert_true(stats.messages == acked || stats.messages == acked + 1);
	for (unsigned i = 0; i < acked; i++) {
		int fd;
		char *text, want[64];
		assert_int_equal(store_queue_open(st, ids[i], &fd), STORE_OK);
		text = read_all(fd);
		close(fd);
		snprintf(want, sizeof(want), "X-Tag: %s\r\n", tags[i]);
		if (strstr(text, want) == NULL)
			fail_msg("entry %u lacks %s", i, want);
		free(text);
		for (unsigned j = 0; j < i; j++)
			assert_true(ids[j] != ids[i]);
	}
	store_close(&st);
	rm_tree(dir);
}

/* Helper mode for the protocol tests of the queue verbs (tests/proto/
   submission/), which need queue entries in particular states:
     add DATA_DIR SENDER RCPT...          queue stdin, print the ID
     result DATA_DIR ID IDX sent|deferred|failed STATUS REPLY REMOTE
   Exit 0 or 1. */
static int
helper(int argc, char **argv)
{
	struct store *st;
	int rc = 1;

	if (argc < 3 || store_open(argv[2], &st) != STORE_OK)
		return 1;
	if (strcmp(argv[1], "add") == 0 && argc >= 5) {
		struct store_queue_msg env;
		struct store_queue_rcpt *r;
		size_t n = (size_t)argc - 4;
		char *text = read_all(0), ids[24];
		uint64_t id;

		env_init(&env, argv[3]);
		r = xcalloc(n, sizeof(*r));
		for (size_t i = 0; i < n; i++)
			rcpt_init(&r[i], argv[4 + i], 0);
		if (store_queue_add(st, text, strlen(text), &env, r, n, &id) ==
		    STORE_OK) {
			store_queue_id_str(id, ids, sizeof(ids));
			printf("%s\n", ids);
			rc = 0;
		}
		free(r);
		free(text);
	} else if (strcmp(argv[1], "result") == 0 && argc == 9) {
		struct store_queue_result res;
		uint64_t id;
		uint32_t idx = (uint32_t)atoi(argv[4]);
		size_t n = 1;
		int64_t now = (int64_t)time(NULL);

		memset(&res, 0, sizeof(res));
		res.state = strcmp(argv[5], "sent") == 0 ? STORE_QS_SENT :
		    strcmp(argv[5], "failed") == 0 ? STORE_QS_FAILED :
		    STORE_QS_DEFERRED;
		res.now = now;
		res.next_attempt = now + 3600;
		res.status = argv[6];
		res.reply = argv[7];
		res.remote = argv[8];
		if (store_queue_id_parse(argv[3], &id) == 0 &&
		    store_queue_begin_attempt(st, id, &idx, &n, now) ==
		    STORE_OK &&
		    store_queue_rcpt_result(st, id, idx, &res) == STORE_OK)
			rc = 0;
	}
	store_close(&st);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc > 1)
		return helper(argc, argv);
	{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_str),
		cmocka_unit_test_setup_teardown(test_add_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mixed_delivery, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_attempt_results, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_recover_inflight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_delete_wins, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hold_release_flush, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_list_and_rate, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_all, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_leftover_file_and_space,
		    setup, teardown),
		cmocka_unit_test(test_crash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
	}
}
