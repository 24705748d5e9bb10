/* Unit tests of deferred flag changes (store_msg_set_flags_deferred) and
   the catch-up of the file names behind them (store_names_catch_up):
   open, copy, move, expunge and a plain flag change of a message whose
   name is behind, the catch-up in batches, after a simulated crash (a
   rename done, its commit lost), after a reindex with and without the
   index, and the pending-mailbox list. Real LMDB in a mkdtemp data dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "util.h"
#include "store_test_util.h"

#define NMSG 10

struct fx {
	char dir[64];
	char data[128];
	struct store *st;
	struct store_user alice;
	uint32_t inbox;
	uint32_t uids[NMSG];
};

static uint32_t
deliver(struct store *st, uint32_t user, const char *body, uint32_t flags)
{
	struct store_delivery *d;
	struct store_delivery_result res;

	assert_int_equal(store_delivery_new(st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, body, strlen(body)), STORE_OK);
	assert_int_equal(store_delivery_add_target(d, user, 0, flags, NULL, 0,
	    0, 0), STORE_OK);
	assert_int_equal(store_delivery_commit(d, 0, &res), STORE_OK);
	store_delivery_free(&d);
	return res.uid;
}

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct store_mailbox mb;

	store_test_open(f->dir, f->data, "/tmp/test_store_flags.XXXXXX",
	    "example.test", &f->st);
	assert_int_equal(store_user_add(f->st, "alice@example.test",
	    "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", 0,
	    &f->alice), STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, f->alice.id, "INBOX", &mb),
	    STORE_OK);
	f->inbox = mb.id;
	for (int i = 0; i < NMSG; i++) {
		char body[64];
		snprintf(body, sizeof(body), "Subject: m%d\r\n\r\nbody %d\r\n",
		    i, i);
		f->uids[i] = deliver(f->st, f->alice.id, body,
		    i % 2 ? STORE_F_SEEN : 0);
	}
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

static void
cur_dir(struct fx *f, uint32_t mbox, char *buf, size_t size)
{
	snprintf(buf, size, "%s/mail/example.test/alice/%u/cur", f->data, mbox);
}

/* The file name (in cur/) of uid in mbox, or "" if there is none; asserts
   there is at most one. */
static void
file_of(struct fx *f, uint32_t mbox, uint32_t uid, char *out, size_t size)
{
	char cur[256], tag[32];
	DIR *d;
	struct dirent *de;
	int n = 0;

	cur_dir(f, mbox, cur, sizeof(cur));
	snprintf(tag, sizeof(tag), ",U=%u:", uid);
	out[0] = '\0';
	assert_non_null(d = opendir(cur));
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, tag) != NULL) {
			str_copy(out, de->d_name, size);
			n++;
		}
	closedir(d);
	assert_true(n <= 1);
}

static bool
name_has(struct fx *f, uint32_t mbox, uint32_t uid, char letter)
{
	char name[512];
	const char *info;

	file_of(f, mbox, uid, name, sizeof(name));
	assert_non_null(info = strstr(name, ":2,"));
	return strchr(info + 3, letter) != NULL;
}

static size_t
cur_count(struct fx *f, uint32_t mbox)
{
	char cur[256];
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	cur_dir(f, mbox, cur, sizeof(cur));
	assert_non_null(d = opendir(cur));
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void
set_all(struct fx *f, enum store_flag_op op, uint32_t flags, bool deferred)
{
	struct store_flag_change ch[NMSG];

	memset(ch, 0, sizeof(ch));
	for (int i = 0; i < NMSG; i++)
		ch[i].uid = f->uids[i];
	assert_int_equal((deferred ? store_msg_set_flags_deferred :
	    store_msg_set_flags)(f->st, f->inbox, op, flags, NULL, 0, 0, ch,
	    NMSG), STORE_OK);
	for (int i = 0; i < NMSG; i++)
		assert_true(ch[i].exists);
}

static void
assert_opens(struct fx *f, uint32_t mbox, uint32_t uid, int i)
{
	char buf[64], want[64];
	int fd;
	ssize_t r;

	assert_int_equal(store_msg_open(f->st, mbox, uid, &fd), STORE_OK);
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(r > 0);
	buf[r] = '\0';
	snprintf(want, sizeof(want), "Subject: m%d\r\n", i);
	assert_non_null(strstr(buf, want));
}

static uint32_t
flags_of(struct fx *f, uint32_t mbox, uint32_t uid)
{
	struct store_msg m;

	assert_int_equal(store_msg_get(f->st, mbox, uid, &m), STORE_OK);
	return m.flags;
}

/* Runs catch-ups of max files until none is left; the number of runs. */
static int
catch_up_all(struct fx *f, uint32_t mbox, size_t max)
{
	bool more = true;
	int runs = 0;

	while (more) {
		assert_int_equal(store_names_catch_up(f->st, mbox, max, &more),
		    STORE_OK);
		assert_true(++runs < 1000);
	}
	return runs;
}

/* The index has the flags at once; the names stay until the catch-up. */
static void
test_deferred_then_catch_up(void **state)
{
	struct fx *f = *state;
	uint32_t *ids;
	size_t n;

	set_all(f, STORE_FLAGS_ADD, STORE_F_FLAGGED, true);
	for (int i = 0; i < NMSG; i++) {
		assert_true(flags_of(f, f->inbox, f->uids[i]) &
		    STORE_F_FLAGGED);
		assert_false(name_has(f, f->inbox, f->uids[i], 'F'));
		assert_opens(f, f->inbox, f->uids[i], i);
	}
	assert_int_equal(store_names_pending(f->st, &ids, &n), STORE_OK);
	assert_true(n >= 1);
	bool found = false;
	for (size_t i = 0; i < n; i++)
		found |= ids[i] == f->inbox;
	free(ids);
	assert_true(found);
	/* Batches of 3: several runs, each leaving the rest for the next. */
	assert_true(catch_up_all(f, f->inbox, 3) >= 4);
	for (int i = 0; i < NMSG; i++) {
		assert_true(name_has(f, f->inbox, f->uids[i], 'F'));
		assert_int_equal(name_has(f, f->inbox, f->uids[i], 'S'), i % 2);
		assert_opens(f, f->inbox, f->uids[i], i);
	}
	assert_int_equal(cur_count(f, f->inbox), NMSG);
	/* Caught up: the mailbox is no longer pending, and a second pass
	   has nothing to do. */
	assert_int_equal(store_names_pending(f->st, &ids, &n), STORE_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(ids[i], f->inbox);
	free(ids);
	assert_int_equal(catch_up_all(f, f->inbox, 3), 1);
	/* New mail has its names right: still nothing pending. */
	deliver(f->st, f->alice.id, "Subject: late\r\n\r\nx\r\n", 0);
	assert_int_equal(store_names_pending(f->st, &ids, &n), STORE_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(ids[i], f->inbox);
	free(ids);
	assert_int_equal(catch_up_all(f, f->inbox, 3), 1);
	/* A change back to the letters the name has is no lag at all. */
	set_all(f, STORE_FLAGS_REMOVE, STORE_F_FLAGGED, true);
	set_all(f, STORE_FLAGS_ADD, STORE_F_FLAGGED, true);
	for (int i = 0; i < NMSG; i++)
		assert_true(name_has(f, f->inbox, f->uids[i], 'F'));
	assert_int_equal(cur_count(f, f->inbox), NMSG + 1);
}

/* Copy, move, expunge and a plain flag change find a file behind. */
static void
test_behind_copy_move_expunge(void **state)
{
	struct fx *f = *state;
	struct store_mailbox arch;
	uint32_t dst[2], uv, *ex;
	size_t n;

	assert_int_equal(store_mailbox_create(f->st, f->alice.id, "Kept", 0,
	    &arch), STORE_OK);
	set_all(f, STORE_FLAGS_ADD, STORE_F_FLAGGED | STORE_F_ANSWERED, true);
	/* COPY: the new link has the flags' letters, the source keeps its. */
	assert_int_equal(store_msg_copy(f->st, f->inbox, &f->uids[0], 1,
	    arch.id, false, dst, &uv), STORE_OK);
	assert_true(dst[0] != 0);
	assert_true(name_has(f, arch.id, dst[0], 'F'));
	assert_true(name_has(f, arch.id, dst[0], 'R'));
	assert_false(name_has(f, f->inbox, f->uids[0], 'F'));
	assert_opens(f, arch.id, dst[0], 0);
	assert_opens(f, f->inbox, f->uids[0], 0);
	/* MOVE */
	assert_int_equal(store_msg_copy(f->st, f->inbox, &f->uids[1], 1,
	    arch.id, true, &dst[1], &uv), STORE_OK);
	assert_true(dst[1] != 0);
	assert_true(name_has(f, arch.id, dst[1], 'F'));
	assert_opens(f, arch.id, dst[1], 1);
	char name[512];
	file_of(f, f->inbox, f->uids[1], name, sizeof(name));
	assert_string_equal(name, "");
	/* EXPUNGE */
	assert_int_equal(store_msg_expunge(f->st, f->inbox, &f->uids[2], 1,
	    false, &ex, &n), STORE_OK);
	assert_int_equal(n, 1);
	free(ex);
	file_of(f, f->inbox, f->uids[2], name, sizeof(name));
	assert_string_equal(name, "");
	assert_int_equal(cur_count(f, f->inbox), NMSG - 2);
	/* A plain (renaming) change of a message behind: its name takes all
	   of its flags at once. */
	struct store_flag_change ch = { .uid = f->uids[3] };
	assert_int_equal(store_msg_set_flags(f->st, f->inbox, STORE_FLAGS_ADD,
	    STORE_F_DRAFT, NULL, 0, 0, &ch, 1), STORE_OK);
	assert_true(name_has(f, f->inbox, f->uids[3], 'D'));
	assert_true(name_has(f, f->inbox, f->uids[3], 'F'));
	assert_true(name_has(f, f->inbox, f->uids[3], 'R'));
	assert_opens(f, f->inbox, f->uids[3], 3);
	catch_up_all(f, f->inbox, 100);
	for (int i = 3; i < NMSG; i++) {
		assert_true(name_has(f, f->inbox, f->uids[i], 'F'));
		assert_opens(f, f->inbox, f->uids[i], i);
	}
	assert_int_equal(cur_count(f, f->inbox), NMSG - 2);
}

/* A catch-up killed between its renames and its commit: some files have
   their new names, the index still says the old ones. Everything opens,
   and the next catch-up finishes without losing or doubling a file. */
static void
test_catch_up_after_crash(void **state)
{
	struct fx *f = *state;
	char cur[256], from[1024], to[1024], name[512];

	set_all(f, STORE_FLAGS_ADD, STORE_F_FLAGGED, true);
	cur_dir(f, f->inbox, cur, sizeof(cur));
	for (int i = 0; i < NMSG; i += 3) {
		file_of(f, f->inbox, f->uids[i], name, sizeof(name));
		snprintf(from, sizeof(from), "%s/%s", cur, name);
		/* the letters in ASCII order: F before S */
		snprintf(to, sizeof(to), "%s/%.*sF%s", cur,
		    (int)(strstr(name, ":2,") + 3 - name), name,
		    strstr(name, ":2,") + 3);
		assert_int_equal(rename(from, to), 0);
	}
	for (int i = 0; i < NMSG; i++)
		assert_opens(f, f->inbox, f->uids[i], i);
	catch_up_all(f, f->inbox, 4);
	for (int i = 0; i < NMSG; i++) {
		assert_true(name_has(f, f->inbox, f->uids[i], 'F'));
		assert_int_equal(name_has(f, f->inbox, f->uids[i], 'S'), i % 2);
		assert_opens(f, f->inbox, f->uids[i], i);
	}
	assert_int_equal(cur_count(f, f->inbox), NMSG);
	/* The store closed and opened again (a restart) changes nothing. */
	store_close(&f->st);
	assert_int_equal(store_open(f->data, &f->st), STORE_OK);
	catch_up_all(f, f->inbox, 4);
	assert_int_equal(cur_count(f, f->inbox), NMSG);
	for (int i = 0; i < NMSG; i++)
		assert_true(flags_of(f, f->inbox, f->uids[i]) &
		    STORE_F_FLAGGED);
}

static void
reopen_without_index(struct fx *f)
{
	char *idx = xasprintf("%s/index", f->data);

	store_close(&f->st);
	rm_tree(idx);
	free(idx);
	assert_int_equal(store_open(f->data, &f->st), STORE_OK);
}

/* After the catch-up the files carry the flags: a rebuild from the files
   alone brings them back. */
static void
test_reindex_after_catch_up(void **state)
{
	struct fx *f = *state;
	struct store_reindex_stats stats;

	set_all(f, STORE_FLAGS_ADD, STORE_F_FLAGGED, true);
	catch_up_all(f, f->inbox, 2);
	reopen_without_index(f);
	assert_int_equal(store_reindex_user(f->st, "alice@example.test",
	    &stats), STORE_OK);
	for (int i = 0; i < NMSG; i++) {
		uint32_t fl = flags_of(f, f->inbox, f->uids[i]);
		assert_true(fl & STORE_F_FLAGGED);
		assert_int_equal((fl & STORE_F_SEEN) != 0, i % 2);
		assert_opens(f, f->inbox, f->uids[i], i);
	}
}

/* A reindex while names are behind (the index still there) keeps the
   index's newer flags and renames the files to them. */
static void
test_reindex_while_behind(void **state)
{
	struct fx *f = *state;
	struct store_reindex_stats stats;

	set_all(f, STORE_FLAGS_SET, STORE_F_DELETED, true);
	assert_int_equal(store_reindex_user(f->st, "alice@example.test",
	    &stats), STORE_OK);
	for (int i = 0; i < NMSG; i++) {
		assert_int_equal(flags_of(f, f->inbox, f->uids[i]),
		    STORE_F_DELETED);
		assert_true(name_has(f, f->inbox, f->uids[i], 'T'));
		assert_false(name_has(f, f->inbox, f->uids[i], 'S'));
		assert_opens(f, f->inbox, f->uids[i], i);
	}
	assert_int_equal(cur_count(f, f->inbox), NMSG);
}

/* Renaming INBOX moves its records, names behind included, into a new
   mailbox: that mailbox is then pending (a catch-up finds it), and the
   emptied INBOX is not. A mailbox that never had a deferred change is
   never pending. */
static void
test_rename_carries_pending(void **state)
{
	struct fx *f = *state;
	struct store_mailbox mb;
	uint32_t *ids;
	size_t n;
	bool found = false;

	assert_int_equal(store_names_pending(f->st, &ids, &n), STORE_OK);
	assert_int_equal(n, 0);
	free(ids);
	set_all(f, STORE_FLAGS_ADD, STORE_F_FLAGGED, true);
	assert_int_equal(store_mailbox_rename(f->st, f->alice.id, "INBOX",
	    "Old"), STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, f->alice.id, "Old", &mb),
	    STORE_OK);
	assert_int_equal(store_names_pending(f->st, &ids, &n), STORE_OK);
	for (size_t i = 0; i < n; i++)
		found |= ids[i] == mb.id;
	free(ids);
	assert_true(found);
	assert_true(catch_up_all(f, mb.id, 3) >= 1);
	for (int i = 0; i < NMSG; i++)
		assert_true(name_has(f, mb.id, f->uids[i], 'F'));
	assert_int_equal(store_names_pending(f->st, &ids, &n), STORE_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(ids[i], mb.id);
	free(ids);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deferred_then_catch_up,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_behind_copy_move_expunge,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_catch_up_after_crash,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reindex_after_catch_up,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reindex_while_behind,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_carries_pending,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
