/* Unit tests of the store's secondary structures: the MODSEQ index behind
   store_msg_list(min_modseq) (checked against a plain filtered scan after
   deliveries, flag changes, copy, move, expunge, INBOX rename, reindex and
   the rebuild of a store that had no index), the header cache behind
   store_msg_header_get, and store_msg_open through the cached directory
   fds (renames, more mailboxes than slots, threads, deleted mailboxes).
   Real LMDB in a mkdtemp data dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
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

	store_test_open(f->dir, f->data, "/tmp/test_store_index.XXXXXX",
	    "example.test", &f->st);
	/* Any string does as a hash: nobody logs in here. */
	assert_int_equal(store_user_add(f->st, "alice@example.test",
	    "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", 0,
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
deliver(struct store *st, uint32_t user, uint32_t mbox, const char *body)
{
	struct store_delivery *d;
	struct store_delivery_result res;

	assert_int_equal(store_delivery_new(st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, body, strlen(body)), STORE_OK);
	assert_int_equal(store_delivery_add_target(d, user, mbox, 0, NULL, 0,
	    0, 0), STORE_OK);
	assert_int_equal(store_delivery_commit(d, 0, &res), STORE_OK);
	store_delivery_free(&d);
	return res.uid;
}

static uint32_t
mbox_id(struct store *st, uint32_t user, const char *name)
{
	struct store_mailbox mb;

	assert_int_equal(store_mailbox_get(st, user, name, &mb), STORE_OK);
	return mb.id;
}

/* store_msg_list(min_uid, M) must equal the full list filtered by hand,
   for every M from 0 to HIGHESTMODSEQ + 1. Returns HIGHESTMODSEQ. */
static uint64_t
check_index(struct store *st, uint32_t mbox, uint32_t min_uid)
{
	struct store_mailbox mb;
	struct store_msg *all, *got;
	size_t nall, ngot;

	assert_int_equal(store_msg_list(st, mbox, 0, 0, &all, &nall, &mb),
	    STORE_OK);
	assert_int_equal(nall, mb.messages);
	for (uint64_t m = 0; m <= mb.highestmodseq + 1; m++) {
		size_t k = 0;
		assert_int_equal(store_msg_list(st, mbox, min_uid, m, &got,
		    &ngot, NULL), STORE_OK);
		for (size_t i = 0; i < nall; i++) {
			if (all[i].modseq <= m || all[i].uid < min_uid)
				continue;
			assert_true(k < ngot);
			assert_int_equal(got[k].uid, all[i].uid);
			assert_int_equal(got[k].flags, all[i].flags);
			assert_int_equal(got[k].keywords, all[i].keywords);
			assert_int_equal(got[k].modseq, all[i].modseq);
			assert_int_equal(got[k].size, all[i].size);
			assert_int_equal(got[k].internaldate, all[i].internaldate);
			k++;
		}
		assert_int_equal(k, ngot);
		free(got);
	}
	free(all);
	return mb.highestmodseq;
}

static void
set_seen(struct store *st, uint32_t mbox, const uint32_t *uids, size_t n,
    enum store_flag_op op)
{
	struct store_flag_change *ch = xcalloc(n, sizeof(*ch));

	for (size_t i = 0; i < n; i++)
		ch[i].uid = uids[i];
	assert_int_equal(store_msg_set_flags(st, mbox, op, STORE_F_SEEN, NULL,
	    0, 0, ch, n), STORE_OK);
	free(ch);
}

#define NMSG 60

static void
fill(struct fx *f, uint32_t inbox, uint32_t *uids)
{
	for (int i = 0; i < NMSG; i++) {
		char *body = xasprintf("Subject: m%d\r\nFrom: a@b.test\r\n\r\n"
		    "body %d\r\n", i, i);
		uids[i] = deliver(f->st, f->alice.id, inbox, body);
		free(body);
	}
}

static void
test_modseq_list(void **state)
{
	struct fx *f = *state;
	uint32_t inbox = mbox_id(f->st, f->alice.id, "INBOX");
	uint32_t uids[NMSG], few[3];
	struct store_msg *got;
	size_t n;
	uint64_t hms;

	fill(f, inbox, uids);
	hms = check_index(f->st, inbox, 0);
	few[0] = uids[40];
	few[1] = uids[3];
	few[2] = uids[17];
	set_seen(f->st, inbox, few, 3, STORE_FLAGS_ADD);
	/* exactly the three, in uid order */
	assert_int_equal(store_msg_list(f->st, inbox, 0, hms, &got, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(got[0].uid, uids[3]);
	assert_int_equal(got[1].uid, uids[17]);
	assert_int_equal(got[2].uid, uids[40]);
	assert_true(got[0].flags & STORE_F_SEEN);
	free(got);
	/* the same message changed twice is listed once */
	set_seen(f->st, inbox, few, 1, STORE_FLAGS_REMOVE);
	assert_int_equal(store_msg_list(f->st, inbox, 0, hms, &got, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 3);
	free(got);
	check_index(f->st, inbox, 0);
	check_index(f->st, inbox, uids[10]);
	/* every message changed: the many-changes path (plain scan) */
	set_seen(f->st, inbox, uids, NMSG, STORE_FLAGS_ADD);
	check_index(f->st, inbox, 0);
	check_index(f->st, inbox, uids[30]);
	/* nothing newer than HIGHESTMODSEQ */
	hms = check_index(f->st, inbox, 0);
	assert_int_equal(store_msg_list(f->st, inbox, 0, hms, &got, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 0);
	assert_null(got);
}

static void
test_modseq_copy_move_expunge(void **state)
{
	struct fx *f = *state;
	uint32_t inbox = mbox_id(f->st, f->alice.id, "INBOX");
	uint32_t arch = mbox_id(f->st, f->alice.id, "Archive");
	uint32_t uids[NMSG], dst[4], *gone;
	size_t ngone;

	fill(f, inbox, uids);
	assert_int_equal(store_msg_copy(f->st, inbox, uids, 4, arch, false,
	    dst, NULL), STORE_OK);
	check_index(f->st, inbox, 0);
	check_index(f->st, arch, 0);
	assert_int_equal(store_msg_copy(f->st, inbox, uids + 4, 4, arch, true,
	    dst, NULL), STORE_OK);
	check_index(f->st, inbox, 0);
	check_index(f->st, arch, 0);
	set_seen(f->st, arch, dst, 2, STORE_FLAGS_ADD);
	assert_int_equal(store_msg_expunge(f->st, arch, dst, 3, false, &gone,
	    &ngone), STORE_OK);
	assert_int_equal(ngone, 3);
	free(gone);
	check_index(f->st, arch, 0);
	assert_int_equal(store_msg_expunge(f->st, inbox, NULL, 0, false, &gone,
	    &ngone), STORE_OK);
	assert_int_equal(ngone, NMSG - 4);
	free(gone);
	check_index(f->st, inbox, 0);
	/* renaming INBOX moves every message into the new mailbox */
	fill(f, inbox, uids);
	set_seen(f->st, inbox, uids + 5, 5, STORE_FLAGS_ADD);
	assert_int_equal(store_mailbox_rename(f->st, f->alice.id, "INBOX",
	    "Old"), STORE_OK);
	check_index(f->st, inbox, 0);
	check_index(f->st, mbox_id(f->st, f->alice.id, "Old"), 0);
	/* a deleted mailbox leaves nothing behind for a reused id range */
	assert_int_equal(store_mailbox_delete(f->st, f->alice.id, "Old"),
	    STORE_OK);
	check_index(f->st, arch, 0);
}

static void
test_modseq_reindex(void **state)
{
	struct fx *f = *state;
	uint32_t inbox = mbox_id(f->st, f->alice.id, "INBOX");
	uint32_t uids[NMSG];
	struct store_reindex_stats rs;
	struct store_msg *got;
	size_t n;
	uint64_t hms;

	fill(f, inbox, uids);
	set_seen(f->st, inbox, uids + 7, 9, STORE_FLAGS_ADD);
	hms = check_index(f->st, inbox, 0);
	assert_int_equal(store_reindex_user(f->st, "alice@example.test", &rs),
	    STORE_OK);
	/* reindex gives every message a fresh modseq past the old ones */
	assert_int_equal(store_msg_list(f->st, inbox, 0, hms, &got, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, NMSG);
	free(got);
	check_index(f->st, inbox, 0);
	set_seen(f->st, inbox, uids, 2, STORE_FLAGS_REMOVE);
	check_index(f->st, inbox, 0);
	/* the whole index lost: reindex brings the MODSEQ index back too */
	char *idx = xasprintf("%s/index", f->data);
	store_close(&f->st);
	rm_tree(idx);
	free(idx);
	assert_int_equal(store_open(f->data, &f->st), STORE_OK);
	assert_int_equal(store_reindex_user(f->st, "alice@example.test", &rs),
	    STORE_OK);
	inbox = mbox_id(f->st, f->alice.id, "INBOX");
	hms = check_index(f->st, inbox, 0);
	set_seen(f->st, inbox, uids + 30, 1, STORE_FLAGS_ADD);
	assert_int_equal(store_msg_list(f->st, inbox, 0, hms, &got, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].uid, uids[30]);
	free(got);
	check_index(f->st, inbox, 0);
}

/* A store written before the MODSEQ index existed: store_open builds it. */
static void
test_modseq_built_on_open(void **state)
{
	struct fx *f = *state;
	uint32_t inbox = mbox_id(f->st, f->alice.id, "INBOX");
	uint32_t uids[NMSG];
	char *idx = xasprintf("%s/index", f->data);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint64_t hms;
	struct store_msg *got;
	size_t n;

	fill(f, inbox, uids);
	set_seen(f->st, inbox, uids + 20, 3, STORE_FLAGS_ADD);
	hms = check_index(f->st, inbox, 0);
	store_close(&f->st);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_set_mapsize(env, (size_t)32 << 30), 0);
	assert_int_equal(mdb_env_open(env, idx, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "msgmodseq", 0, &dbi), 0);
	assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(idx);
	assert_int_equal(store_open(f->data, &f->st), STORE_OK);
	assert_int_equal(check_index(f->st, inbox, 0), hms);
	set_seen(f->st, inbox, uids, 1, STORE_FLAGS_ADD);
	assert_int_equal(store_msg_list(f->st, inbox, 0, hms, &got, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].uid, uids[0]);
	free(got);
}

#define assert_header(st, mbox, uid, want) \
	assert_header_at(st, mbox, uid, want, __LINE__)

static void
assert_header_at(struct store *st, uint32_t mbox, uint32_t uid, const char *want, int line)
{
	struct buf b;
	enum store_err e;

	buf_init(&b);
	e = store_msg_header_get(st, mbox, uid, &b);
	if (e != STORE_OK)
		print_error("line %d: %s\n", line, store_last_error());
	assert_int_equal(e, STORE_OK);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	buf_free(&b);
}

static void
test_header_cache(void **state)
{
	struct fx *f = *state;
	uint32_t inbox = mbox_id(f->st, f->alice.id, "INBOX");
	uint32_t arch = mbox_id(f->st, f->alice.id, "Archive");
	uint32_t u1, u2, u3, u4, u5, dst[2], moved[2], *gone;
	size_t ngone;
	struct store_reindex_stats rs;
	struct buf b, big;

	buf_init(&b);
	buf_init(&big);
	/* bare LF is stored as CRLF, and so is the cached header */
	u1 = deliver(f->st, f->alice.id, inbox,
	    "Subject: hi\nFrom: a@b.test\n\nbody\n\nmore\n");
	assert_header(f->st, inbox, u1,
	    "Subject: hi\r\nFrom: a@b.test\r\n\r\n");
	/* no empty line: the whole message is its header */
	u2 = deliver(f->st, f->alice.id, inbox, "Subject: only\r\nX: y\r\n");
	assert_header(f->st, inbox, u2, "Subject: only\r\nX: y\r\n");
	/* an empty header */
	u3 = deliver(f->st, f->alice.id, inbox, "\r\nbody only\r\n");
	assert_header(f->st, inbox, u3, "\r\n");
	/* a header over the cap is not cached; one at the cap is */
	while (big.len < STORE_HEADER_CACHE_MAX)
		buf_puts(&big, "X-Filler: 0123456789012345678901234567890\r\n");
	buf_puts(&big, "\r\nbody\r\n");
	u4 = deliver(f->st, f->alice.id, inbox, big.data);
	assert_int_equal(store_msg_header_get(f->st, inbox, u4, &b),
	    STORE_ENOTFOUND);
	buf_reset(&big);
	while (big.len < STORE_HEADER_CACHE_MAX - 64)
		buf_puts(&big, "X-F: 0123456789012\r\n");
	while (big.len < STORE_HEADER_CACHE_MAX - 4)
		buf_putc(&big, 'x');
	buf_puts(&big, "\r\n\r\n");
	assert_int_equal(big.len, STORE_HEADER_CACHE_MAX);
	char *exact = xstrdup(big.data);
	buf_puts(&big, "body\r\n");
	u5 = deliver(f->st, f->alice.id, inbox, big.data);
	assert_header(f->st, inbox, u5, exact);
	free(exact);
	/* copy and move carry it; expunge drops it */
	uint32_t two[2] = { u1, u2 };
	assert_int_equal(store_msg_copy(f->st, inbox, two, 2, arch, false, dst,
	    NULL), STORE_OK);
	assert_header(f->st, arch, dst[0],
	    "Subject: hi\r\nFrom: a@b.test\r\n\r\n");
	assert_int_equal(store_msg_copy(f->st, arch, dst, 2, inbox, true, moved,
	    NULL), STORE_OK);
	assert_header(f->st, inbox, moved[1], "Subject: only\r\nX: y\r\n");
	assert_int_equal(store_msg_expunge(f->st, inbox, &u3, 1, false, &gone,
	    &ngone), STORE_OK);
	free(gone);
	assert_int_equal(store_msg_header_get(f->st, inbox, u3, &b),
	    STORE_ENOTFOUND);
	assert_int_equal(store_msg_header_get(f->st, inbox, 999999, &b),
	    STORE_ENOTFOUND);
	/* reindex computes it again from the files */
	assert_int_equal(store_reindex_user(f->st, "alice@example.test", &rs),
	    STORE_OK);
	assert_header(f->st, inbox, u1,
	    "Subject: hi\r\nFrom: a@b.test\r\n\r\n");
	assert_header(f->st, inbox, moved[1], "Subject: only\r\nX: y\r\n");
	assert_int_equal(store_msg_header_get(f->st, inbox, u4, &b),
	    STORE_ENOTFOUND);
	buf_free(&b);
	buf_free(&big);
}

static void
assert_open_reads(struct store *st, uint32_t mbox, uint32_t uid,
    const char *want)
{
	char buf[256];
	int fd;
	ssize_t r;

	assert_int_equal(store_msg_open(st, mbox, uid, &fd), STORE_OK);
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(r >= 0);
	buf[r] = '\0';
	assert_string_equal(buf, want);
}

#define NBOX 80     /* more than the store's cached directory slots */

struct open_job {
	struct store *st;
	uint32_t *boxes, *uids;
	int seed;
	int bad;
};

static void *
open_worker(void *arg)
{
	struct open_job *j = arg;

	for (int i = 0; i < 2000; i++) {
		int b = (i * 7 + j->seed * 13) % NBOX;
		char buf[64], want[64];
		int fd;
		ssize_t r;
		if (store_msg_open(j->st, j->boxes[b], j->uids[b], &fd) !=
		    STORE_OK) {
			j->bad++;
			continue;
		}
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		snprintf(want, sizeof(want), "Subject: box %d\r\n\r\nx\r\n", b);
		if (r < 0 || (buf[r] = '\0', strcmp(buf, want) != 0))
			j->bad++;
	}
	return NULL;
}

static void
test_msg_open_dirfd(void **state)
{
	struct fx *f = *state;
	uint32_t inbox = mbox_id(f->st, f->alice.id, "INBOX");
	uint32_t boxes[NBOX], uids[NBOX], u;
	struct store_mailbox mb;
	struct open_job jobs[4];
	pthread_t th[4];
	int fd;

	u = deliver(f->st, f->alice.id, inbox, "Subject: a\r\n\r\nx\r\n");
	assert_open_reads(f->st, inbox, u, "Subject: a\r\n\r\nx\r\n");
	/* the file is renamed by a flag change: found by its new name */
	set_seen(f->st, inbox, &u, 1, STORE_FLAGS_ADD);
	assert_open_reads(f->st, inbox, u, "Subject: a\r\n\r\nx\r\n");
	set_seen(f->st, inbox, &u, 1, STORE_FLAGS_REMOVE);
	assert_open_reads(f->st, inbox, u, "Subject: a\r\n\r\nx\r\n");
	for (int i = 0; i < NBOX; i++) {
		char name[32], body[64];
		snprintf(name, sizeof(name), "box%d", i);
		snprintf(body, sizeof(body), "Subject: box %d\r\n\r\nx\r\n", i);
		assert_int_equal(store_mailbox_create(f->st, f->alice.id, name, 0,
		    &mb), STORE_OK);
		boxes[i] = mb.id;
		uids[i] = deliver(f->st, f->alice.id, mb.id, body);
	}
	/* many mailboxes from several threads: slots are replaced while
	   other threads use them */
	for (int t = 0; t < 4; t++) {
		jobs[t] = (struct open_job){ f->st, boxes, uids, t, 0 };
		assert_int_equal(pthread_create(&th[t], NULL, open_worker,
		    &jobs[t]), 0);
	}
	for (int t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(jobs[t].bad, 0);
	}
	/* the directory replaced under the cached fd (restored from a
	   backup): found by path, and the cache follows */
	{
		char *cur = xasprintf("%s/mail/example.test/alice/%u/cur",
		    f->data, boxes[5]);
		char *moved = xasprintf("%s.old", cur);
		char *cmd = xasprintf("cp -a '%s' '%s'", moved, cur);
		assert_open_reads(f->st, boxes[5], uids[5],
		    "Subject: box 5\r\n\r\nx\r\n");   /* cached now */
		assert_int_equal(rename(cur, moved), 0);
		assert_int_equal(system(cmd), 0);
		rm_tree(moved);
		for (int i = 0; i < 2; i++) {
			char want[64];
			snprintf(want, sizeof(want),
			    "Subject: box %d\r\n\r\nx\r\n", 5);
			assert_open_reads(f->st, boxes[5], uids[5], want);
		}
		free(cur);
		free(moved);
		free(cmd);
	}
	/* a deleted mailbox's messages cannot be opened any more */
	assert_int_equal(store_mailbox_delete(f->st, f->alice.id, "box3"),
	    STORE_OK);
	assert_int_not_equal(store_msg_open(f->st, boxes[3], uids[3], &fd),
	    STORE_OK);
	assert_open_reads(f->st, inbox, u, "Subject: a\r\n\r\nx\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_modseq_list, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_modseq_copy_move_expunge,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_modseq_reindex, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_modseq_built_on_open,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_cache, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_msg_open_dirfd, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
