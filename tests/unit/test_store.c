/* Unit tests of the store over a real LMDB in a mkdtemp data dir: users,
   domains, aliases, resolution, authentication, mailboxes, delivery, flags,
   copy/move, expunge, tombstones, UIDs never reused, quota, concurrent
   delivery from two processes, reindex after the index is lost, and a
   process killed at random points of COPY, MOVE, EXPUNGE and delivery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "store.h"
#include "util.h"
#include "store_test_util.h"

struct fx {
	char dir[64];
	char data[128];
	struct store *st;
	struct store_user alice, bob;
};

static char alice_hash[PW_HASH_MAX];

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	store_test_open(f->dir, f->data, "/tmp/test_store.XXXXXX",
	    "Example.TEST", &f->st);
	if (!alice_hash[0])
		assert_int_equal(pw_hash("alice-pw", alice_hash), 0);
	assert_int_equal(store_user_add(f->st, "Alice@example.test", alice_hash,
	    0, &f->alice), STORE_OK);
	assert_int_equal(store_user_add(f->st, "bob@example.test", alice_hash,
	    0, &f->bob), STORE_OK);
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
deliver(struct store *st, uint32_t user, uint32_t mbox, const char *body,
    uint32_t flags, const char *kw)
{
	struct store_delivery *d;
	struct store_delivery_result res;
	const char *kws[1] = { kw };

	assert_int_equal(store_delivery_new(st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, body, strlen(body)), STORE_OK);
	assert_int_equal(store_delivery_add_target(d, user, mbox, flags, kws,
	    kw ? 1 : 0, 0, 0), STORE_OK);
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

static int
count_cb(void *arg, const char *a, const char *b)
{
	(void)a;
	(void)b;
	(*(int *)arg)++;
	return 0;
}

static void
test_domains_users(void **state)
{
	struct fx *f = *state;
	struct store_user u;
	int n = 0;

	assert_string_equal(f->alice.address, "alice@example.test");
	assert_int_equal(store_domain_add(f->st, "example.test"), STORE_EEXISTS);
	assert_int_equal(store_domain_add(f->st, "bad..domain"), STORE_EPERM);
	assert_true(store_domain_is_local(f->st, "EXAMPLE.test"));
	assert_false(store_domain_is_local(f->st, "other.test"));
	assert_int_equal(store_user_add(f->st, "x@other.test", alice_hash, 0,
	    NULL), STORE_EPERM);
	assert_int_equal(store_user_add(f->st, "a+b@example.test", alice_hash,
	    0, NULL), STORE_EPERM);
	assert_int_equal(store_user_add(f->st, ".a@example.test", alice_hash,
	    0, NULL), STORE_EPERM);
	assert_int_equal(store_user_add(f->st, "ALICE@example.test", alice_hash,
	    0, NULL), STORE_EEXISTS);
	assert_int_equal(store_user_get(f->st, "alice@EXAMPLE.test", &u),
	    STORE_OK);
	assert_int_equal(u.id, f->alice.id);
	assert_int_equal(store_user_get_by_id(f->st, f->bob.id, &u), STORE_OK);
	assert_string_equal(u.address, "bob@example.test");
	assert_int_equal(store_user_list(f->st, NULL, count_cb, &n), STORE_OK);
	assert_int_equal(n, 2);
	n = 0;
	assert_int_equal(store_domain_list(f->st, count_cb, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(store_domain_del(f->st, "example.test"), STORE_EPERM);
	assert_int_equal(store_user_set_quota(f->st, "bob@example.test", 1000),
	    STORE_OK);
	assert_int_equal(store_user_get(f->st, "bob@example.test", &u),
	    STORE_OK);
	assert_int_equal(u.quota, 1000);
	assert_int_equal(store_user_del(f->st, "bob@example.test"), STORE_OK);
	assert_int_equal(store_user_get(f->st, "bob@example.test", &u),
	    STORE_ENOTFOUND);
	assert_int_equal(store_user_del(f->st, "alice@example.test"), STORE_OK);
	assert_int_equal(store_domain_del(f->st, "example.test"), STORE_OK);
	assert_int_equal(store_domain_del(f->st, "example.test"),
	    STORE_ENOTFOUND);
}

static void
test_default_mailboxes(void **state)
{
	struct fx *f = *state;
	struct store_mailbox *mbs;
	size_t n;

	assert_int_equal(store_mailbox_list(f->st, f->alice.id, &mbs, &n),
	    STORE_OK);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(mbs[i].name, "Sent") == 0)
			assert_int_equal(mbs[i].special_use, STORE_SU_SENT);
		if (strcmp(mbs[i].name, "INBOX") == 0)
			assert_int_equal(mbs[i].special_use, 0);
		if (i > 0)
			assert_true(strcmp(mbs[i - 1].name, mbs[i].name) < 0);
		assert_int_equal(mbs[i].uidnext, 1);
	}
	free(mbs);
}

static void
test_aliases_resolve(void **state)
{
	struct fx *f = *state;
	uint32_t *ids;
	size_t n;
	int cnt = 0;

	assert_int_equal(store_alias_add(f->st, "team@example.test",
	    "alice@example.test, Bob@Example.test"), STORE_OK);
	assert_int_equal(store_alias_add(f->st, "all@example.test",
	    "team@example.test,alice@example.test"), STORE_OK);
	assert_int_equal(store_alias_add(f->st, "loop1@example.test",
	    "loop2@example.test"), STORE_OK);
	assert_int_equal(store_alias_add(f->st, "loop2@example.test",
	    "loop1@example.test"), STORE_OK);
	assert_int_equal(store_alias_add(f->st, "alice@example.test",
	    "bob@example.test"), STORE_EEXISTS);
	assert_int_equal(store_alias_add(f->st, "team@example.test",
	    "bob@example.test"), STORE_EEXISTS);
	/* A target outside the local domains is forwarded (queue, SRS). */
	assert_int_equal(store_alias_add(f->st, "ext@example.test",
	    "x@elsewhere.test"), STORE_OK);
	assert_int_equal(store_alias_del(f->st, "ext@example.test"), STORE_OK);
	assert_int_equal(store_user_add(f->st, "team@example.test", alice_hash,
	    0, NULL), STORE_EEXISTS);

	assert_int_equal(store_resolve(f->st, "ALICE+news@Example.Test", &ids,
	    &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], f->alice.id);
	free(ids);
	assert_int_equal(store_resolve(f->st, "all@example.test", &ids, &n),
	    STORE_OK);
	assert_int_equal(n, 2);
	free(ids);
	assert_int_equal(store_resolve(f->st, "loop1@example.test", &ids, &n),
	    STORE_ENOTFOUND);
	assert_int_equal(store_resolve(f->st, "nobody@example.test", &ids, &n),
	    STORE_ENOTFOUND);
	assert_int_equal(store_resolve(f->st, "alice@other.test", &ids, &n),
	    STORE_EPERM);
	assert_true(store_user_owns_address(f->st, f->alice.id,
	    "alice+x@example.test"));
	assert_true(store_user_owns_address(f->st, f->bob.id,
	    "team@example.test"));
	assert_false(store_user_owns_address(f->st, f->bob.id,
	    "alice@example.test"));
	assert_int_equal(store_alias_list(f->st, count_cb, &cnt), STORE_OK);
	assert_int_equal(cnt, 4);
	assert_int_equal(store_alias_del(f->st, "team@example.test"), STORE_OK);
	assert_int_equal(store_alias_del(f->st, "team@example.test"),
	    STORE_ENOTFOUND);
	assert_int_equal(store_resolve(f->st, "all@example.test", &ids, &n),
	    STORE_OK);
	assert_int_equal(n, 1);
	free(ids);
}

static void
test_alias_depth_and_delete_usage(void **state)
{
	struct fx *f = *state;
	uint32_t *ids;
	size_t n;
	char a[64], t[64];

	/* a1 -> a2 -> ... -> a8 -> alice resolves (depth 8); a0 one more
	   level does not. */
	for (int i = 1; i <= 8; i++) {
		snprintf(a, sizeof(a), "a%d@example.test", i);
		if (i == 8)
			snprintf(t, sizeof(t), "alice@example.test");
		else
			snprintf(t, sizeof(t), "a%d@example.test", i + 1);
		assert_int_equal(store_alias_add(f->st, a, t), STORE_OK);
	}
	assert_int_equal(store_alias_add(f->st, "a0@example.test",
	    "a1@example.test"), STORE_OK);
	assert_int_equal(store_resolve(f->st, "a1@example.test", &ids, &n),
	    STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], f->alice.id);
	free(ids);
	assert_int_equal(store_resolve(f->st, "a0@example.test", &ids, &n),
	    STORE_ENOTFOUND);

	/* Deleting a mailbox gives its space back. */
	struct store_mailbox mb;
	struct store_user u;
	assert_int_equal(store_mailbox_create(f->st, f->alice.id, "Tmp", 0,
	    &mb), STORE_OK);
	deliver(f->st, f->alice.id, mb.id, "Subject: x\n\nx\n", 0, NULL);
	deliver(f->st, f->alice.id, 0, "Subject: y\n\ny\n", 0, NULL);
	assert_int_equal(store_user_get_by_id(f->st, f->alice.id, &u), STORE_OK);
	assert_int_equal(u.used, 2 * strlen("Subject: x\r\n\r\nx\r\n"));
	assert_int_equal(store_mailbox_delete(f->st, f->alice.id, "Tmp"),
	    STORE_OK);
	assert_int_equal(store_user_get_by_id(f->st, f->alice.id, &u), STORE_OK);
	assert_int_equal(u.used, strlen("Subject: y\r\n\r\ny\r\n"));
	assert_int_equal(store_mailbox_get_by_id(f->st, mb.id, &mb),
	    STORE_ENOTFOUND);
	/* A new mailbox never reuses the id, and gets a newer UIDVALIDITY. */
	struct store_mailbox mb2;
	assert_int_equal(store_mailbox_create(f->st, f->alice.id, "Tmp", 0,
	    &mb2), STORE_OK);
	assert_true(mb2.id > mb.id);
	assert_true(mb2.uidvalidity > mb.uidvalidity);
}

static void
test_authenticate(void **state)
{
	struct fx *f = *state;
	struct store_user u;
	char h[PW_HASH_MAX];

	assert_int_equal(store_authenticate(f->st, "alice@example.test",
	    "alice-pw", &u), STORE_OK);
	assert_int_equal(u.id, f->alice.id);
	assert_int_equal(store_authenticate(f->st, "alice@example.test",
	    "wrong", &u), STORE_ENOTFOUND);
	assert_int_equal(store_authenticate(f->st, "nobody@example.test",
	    "alice-pw", &u), STORE_ENOTFOUND);
	assert_int_equal(pw_hash("new-pw", h), 0);
	assert_int_equal(store_user_set_password(f->st, "alice@example.test",
	    h), STORE_OK);
	assert_int_equal(store_authenticate(f->st, "alice@example.test",
	    "new-pw", &u), STORE_OK);
}

static void
test_mailboxes(void **state)
{
	struct fx *f = *state;
	struct store_mailbox mb, mb2;
	uint32_t a = f->alice.id;
	char **names;
	size_t n;

	assert_int_equal(store_mailbox_create(f->st, a, "Work", 0, &mb),
	    STORE_OK);
	assert_int_equal(store_mailbox_create(f->st, a, "Work/", 0, NULL),
	    STORE_EEXISTS);
	assert_int_equal(store_mailbox_create(f->st, a, "Work/2026", 0, &mb2),
	    STORE_OK);
	assert_true(mb2.uidvalidity > mb.uidvalidity);
	assert_int_equal(store_mailbox_create(f->st, a, "inbox", 0, NULL),
	    STORE_EEXISTS);
	static const char *const bad[] = { "", "/x", "a//b", "a/./b", "../x",
	    "a/..", "x\001y", "\xff\xfe" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(store_mailbox_create(f->st, a, bad[i], 0, NULL),
		    STORE_EPERM);
	assert_int_equal(store_mailbox_create(f->st, a, "Büro", 0, NULL),
	    STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, a, "iNbOx", &mb2), STORE_OK);
	assert_string_equal(mb2.name, "INBOX");

	/* Rename with children keeps UIDVALIDITY and ids. */
	uint32_t uid = deliver(f->st, a, mb.id, "Subject: w\n\nwork\n", 0, NULL);
	assert_int_equal(store_mailbox_rename(f->st, a, "Work", "Job"),
	    STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, a, "Work", &mb2),
	    STORE_ENOTFOUND);
	assert_int_equal(store_mailbox_get(f->st, a, "Job", &mb2), STORE_OK);
	assert_int_equal(mb2.id, mb.id);
	assert_int_equal(mb2.uidvalidity, mb.uidvalidity);
	assert_int_equal(mb2.messages, 1);
	assert_int_equal(store_mailbox_get(f->st, a, "Job/2026", &mb2),
	    STORE_OK);
	int fd;
	assert_int_equal(store_msg_open(f->st, mb.id, uid, &fd), STORE_OK);
	close(fd);
	assert_int_equal(store_mailbox_rename(f->st, a, "Job", "Job/x"),
	    STORE_EPERM);
	assert_int_equal(store_mailbox_rename(f->st, a, "Job", "Sent"),
	    STORE_EEXISTS);
	assert_int_equal(store_mailbox_rename(f->st, a, "Nope", "X"),
	    STORE_ENOTFOUND);

	/* Rename INBOX: messages move, INBOX stays and is empty. */
	struct store_mailbox in;
	assert_int_equal(store_mailbox_get(f->st, a, "INBOX", &in), STORE_OK);
	uint32_t u1 = deliver(f->st, a, 0, "Subject: 1\n\none\n", 0, "$Work");
	deliver(f->st, a, 0, "Subject: 2\n\ntwo\n", STORE_F_SEEN, NULL);
	assert_int_equal(store_mailbox_rename(f->st, a, "INBOX", "Old"),
	    STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, a, "INBOX", &mb2), STORE_OK);
	assert_int_equal(mb2.id, in.id);
	assert_int_equal(mb2.uidvalidity, in.uidvalidity);
	assert_int_equal(mb2.messages, 0);
	assert_true(mb2.uidnext >= 3);
	assert_int_equal(store_mailbox_get(f->st, a, "Old", &mb2), STORE_OK);
	assert_int_equal(mb2.messages, 2);
	assert_int_equal(mb2.unseen, 1);
	assert_int_equal(store_msg_open(f->st, mb2.id, u1, &fd), STORE_OK);
	close(fd);
	struct store_msg m;
	assert_int_equal(store_msg_get(f->st, mb2.id, u1, &m), STORE_OK);
	assert_int_equal(m.keywords, 1);
	assert_string_equal(mb2.keywords[0], "$Work");

	/* Delete: not INBOX, children stay. */
	assert_int_equal(store_mailbox_delete(f->st, a, "INBOX"), STORE_EPERM);
	assert_int_equal(store_mailbox_delete(f->st, a, "Job"), STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, a, "Job", &mb2),
	    STORE_ENOTFOUND);
	assert_int_equal(store_mailbox_get(f->st, a, "Job/2026", &mb2),
	    STORE_OK);
	assert_int_equal(store_msg_open(f->st, mb.id, uid, &fd),
	    STORE_ENOTFOUND);

	/* Subscriptions by name, also for mailboxes that do not exist; the
	   six default mailboxes start subscribed. */
	assert_int_equal(store_subscription_set(f->st, a, "Ghost", true),
	    STORE_OK);
	assert_int_equal(store_subscription_set(f->st, a, "inbox", true),
	    STORE_OK);
	assert_int_equal(store_subscription_list(f->st, a, &names, &n),
	    STORE_OK);
	assert_int_equal(n, 7);
	assert_string_equal(names[2], "Ghost");
	assert_string_equal(names[3], "INBOX");
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	assert_int_equal(store_mailbox_get(f->st, a, "INBOX", &mb2), STORE_OK);
	assert_true(mb2.subscribed);
	assert_int_equal(store_subscription_set(f->st, a, "Ghost", false),
	    STORE_OK);
	assert_int_equal(store_subscription_set(f->st, a, "Junk", false),
	    STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, a, "Junk", &mb2), STORE_OK);
	assert_false(mb2.subscribed);
	assert_int_equal(store_subscription_list(f->st, a, &names, &n),
	    STORE_OK);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void
test_deliver_read(void **state)
{
	struct fx *f = *state;
	struct store_delivery *d;
	struct store_delivery_result res[2];
	struct store_msg *msgs;
	struct store_mailbox mb;
	struct store_msg_cache c;
	size_t n;
	char buf[256];
	int fd;

	assert_int_equal(store_delivery_new(f->st, &d), STORE_OK);
	/* Bare LF across write boundaries; CRLF split across writes too. */
	const char *parts[] = { "Subject: hi\n", "From: a@b.test\r", "\nTo: x",
	    "@y.test\n\n", "body\n", "line2" };
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(store_delivery_write(d, parts[i],
		    strlen(parts[i])), STORE_OK);
	const char *want = "Subject: hi\r\nFrom: a@b.test\r\nTo: x@y.test\r\n"
	    "\r\nbody\r\nline2";
	assert_int_equal(store_delivery_size(d), strlen(want));
	assert_int_equal(store_delivery_add_target(d, f->alice.id, 0, 0, NULL,
	    0, 1700000000, 60), STORE_OK);
	assert_int_equal(store_delivery_add_target(d, f->bob.id, 0,
	    STORE_F_FLAGGED, NULL, 0, 0, 0), STORE_OK);
	assert_int_equal(store_delivery_commit(d, 0, res), STORE_OK);
	store_delivery_free(&d);
	assert_int_equal(res[0].uid, 1);
	assert_int_equal(res[1].uid, 1);
	assert_int_not_equal(res[0].mbox_id, res[1].mbox_id);

	assert_int_equal(store_msg_list(f->st, res[0].mbox_id, 1, 0, &msgs, &n,
	    &mb), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(msgs[0].uid, 1);
	assert_int_equal(msgs[0].size, strlen(want));
	assert_int_equal(msgs[0].internaldate, 1700000000);
	assert_int_equal(msgs[0].internal_tz, 60);
	assert_int_equal(mb.messages, 1);
	assert_int_equal(mb.unseen, 1);
	assert_int_equal(mb.recent, 1);
	assert_int_equal(mb.uidnext, 2);
	assert_int_equal(mb.size, strlen(want));
	assert_int_equal(mb.uidvalidity, res[0].uidvalidity);
	free(msgs);
	assert_int_equal(store_msg_list(f->st, res[0].mbox_id, 2, 0, &msgs, &n,
	    NULL), STORE_OK);
	assert_int_equal(n, 0);
	assert_null(msgs);

	assert_int_equal(store_msg_open(f->st, res[1].mbox_id, 1, &fd),
	    STORE_OK);
	ssize_t r = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(r, strlen(want));
	assert_memory_equal(buf, want, strlen(want));

	assert_int_equal(store_msg_cache_get(f->st, res[0].mbox_id, 1, &c),
	    STORE_OK);
	assert_non_null(c.envelope);
	assert_non_null(strstr(c.envelope, "hi"));
	assert_non_null(c.bodystructure);
	assert_true(c.parts_len > 0);
	store_msg_cache_free(&c);
	assert_int_equal(store_msg_cache_get(f->st, res[0].mbox_id, 9, &c),
	    STORE_ENOTFOUND);

	struct store_user u;
	assert_int_equal(store_user_get_by_id(f->st, f->alice.id, &u), STORE_OK);
	assert_int_equal(u.used, strlen(want));

	/* \Recent is claimed once. */
	uint32_t first;
	assert_int_equal(store_mailbox_claim_recent(f->st, res[0].mbox_id,
	    &first), STORE_OK);
	assert_int_equal(first, 1);
	assert_int_equal(store_mailbox_claim_recent(f->st, res[0].mbox_id,
	    &first), STORE_OK);
	assert_int_equal(first, 2);
	assert_int_equal(store_mailbox_get_by_id(f->st, res[0].mbox_id, &mb),
	    STORE_OK);
	assert_int_equal(mb.recent, 0);

	/* Errors: no target, unknown mailbox. */
	assert_int_equal(store_delivery_new(f->st, &d), STORE_OK);
	assert_int_equal(store_delivery_commit(d, 0, NULL), STORE_EPERM);
	assert_int_equal(store_delivery_add_target(d, f->alice.id, 9999, 0,
	    NULL, 0, 0, 0), STORE_OK);
	assert_int_equal(store_delivery_commit(d, 0, NULL), STORE_ENOTFOUND);
	store_delivery_free(&d);
	/* No file left behind in tmp/. */
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "%s/tmp", f->data);
	DIR *dd = opendir(tmp);
	struct dirent *de;
	int files = 0;
	while ((de = readdir(dd)) != NULL)
		if (de->d_name[0] != '.')
			files++;
	closedir(dd);
	assert_int_equal(files, 0);
}

/* CRLF normalisation across write and buffer boundaries: a large message
   with bare LF, CRLF and lone CR, written in chunks of varying size. */
static void
test_deliver_crlf_large(void **state)
{
	struct fx *f = *state;
	struct store_delivery *d;
	struct store_delivery_result res;
	size_t len = 300 * 1024, off = 0, step = 1;
	char *in = xmalloc(len), *want = xmalloc(2 * len), *got;
	size_t wl = 0;
	unsigned seed = 12345;

	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245 + 12345;
		unsigned r = (seed >> 16) % 50;
		in[i] = r == 0 ? '\n' : r == 1 ? '\r' : (char)('a' + r % 26);
	}
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			want[wl++] = '\r';
		want[wl++] = in[i];
	}
	assert_int_equal(store_delivery_new(f->st, &d), STORE_OK);
	while (off < len) {
		size_t n = step < len - off ? step : len - off;
		assert_int_equal(store_delivery_write(d, in + off, n), STORE_OK);
		off += n;
		step = step * 7 % 70001 + 1;
	}
	assert_int_equal(store_delivery_size(d), wl);
	assert_int_equal(store_delivery_add_target(d, f->alice.id, 0, 0, NULL,
	    0, 0, 0), STORE_OK);
	assert_int_equal(store_delivery_commit(d, 0, &res), STORE_OK);
	store_delivery_free(&d);
	int fd;
	assert_int_equal(store_msg_open(f->st, res.mbox_id, res.uid, &fd),
	    STORE_OK);
	got = xmalloc(wl + 1);
	size_t have = 0;
	ssize_t r;
	while ((r = read(fd, got + have, wl + 1 - have)) > 0)
		have += (size_t)r;
	close(fd);
	assert_int_equal(have, wl);
	assert_memory_equal(got, want, wl);
	struct store_msg m;
	assert_int_equal(store_msg_get(f->st, res.mbox_id, res.uid, &m),
	    STORE_OK);
	assert_int_equal(m.size, wl);
	free(in);
	free(want);
	free(got);
}

static int
tmp_files(const struct fx *f)
{
	char tmp[256];
	struct dirent *de;
	DIR *dd;
	int files = 0;

	snprintf(tmp, sizeof(tmp), "%s/tmp", f->data);
	assert_non_null(dd = opendir(tmp));
	while ((de = readdir(dd)) != NULL)
		if (de->d_name[0] != '.')
			files++;
	closedir(dd);
	return files;
}

/* The committed file of (mbox, uid), owned, NUL-terminated. */
static char *
read_msg(struct store *st, uint32_t mbox, uint32_t uid, size_t *len_r)
{
	struct stat sb;
	char *got;
	size_t have = 0;
	ssize_t r;
	int fd;

	assert_int_equal(store_msg_open(st, mbox, uid, &fd), STORE_OK);
	assert_int_equal(fstat(fd, &sb), 0);
	got = xmalloc((size_t)sb.st_size + 1);
	while ((r = read(fd, got + have, (size_t)sb.st_size - have)) > 0)
		have += (size_t)r;
	close(fd);
	got[have] = '\0';
	*len_r = have;
	return got;
}

/* A small message stays in memory until its commit (no file in tmp/), can
   be read with store_delivery_map, and gets header fields put after its
   trace fields in place (store_delivery_replace_head): the committed file,
   its size, the quota and the FETCH cache all see the new header. */
static void
test_deliver_replace_head_memory(void **state)
{
	struct fx *f = *state;
	struct store_delivery *d;
	struct store_delivery_result res;
	struct store_msg_cache c;
	struct store_user u;
	const char *trace = "Received: from x\r\n";
	const char *body = "Subject: old\r\n\r\nbody\r\n";
	const char *head = "Received: from x (rdns)\nSubject: new\r\n";
	const char *want = "Received: from x (rdns)\r\nSubject: new\r\n"
	    "\r\nbody\r\n";
	const char *p;
	size_t len;
	char *got;

	assert_int_equal(store_delivery_new(f->st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, trace, strlen(trace)),
	    STORE_OK);
	assert_int_equal(store_delivery_write(d, body, strlen(body)), STORE_OK);
	assert_int_equal(tmp_files(f), 0);
	assert_int_equal(store_delivery_map(d, &p, &len), STORE_OK);
	assert_int_equal(len, strlen(trace) + strlen(body));
	assert_memory_equal(p, "Received: from x\r\nSubject: old\r\n", 32);
	/* Beyond the end: refused, nothing changed. */
	assert_int_not_equal(store_delivery_replace_head(d, len + 1, "x", 1),
	    STORE_OK);
	assert_int_equal(store_delivery_size(d), len);
	/* The trace field and Subject replaced; the bare LF becomes CRLF. */
	assert_int_equal(store_delivery_replace_head(d, strlen(trace) + 14,
	    head, strlen(head)), STORE_OK);
	assert_int_equal(store_delivery_size(d), strlen(want));
	assert_int_equal(store_delivery_map(d, &p, &len), STORE_OK);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(p, want, len);
	assert_int_equal(tmp_files(f), 0);
	assert_int_equal(store_delivery_add_target(d, f->alice.id, 0, 0, NULL,
	    0, 0, 0), STORE_OK);
	assert_int_equal(store_delivery_commit(d, 0, &res), STORE_OK);
	assert_int_equal(store_delivery_replace_head(d, 0, "x", 1),
	    STORE_EPERM);
	assert_int_equal(store_delivery_map(d, &p, &len), STORE_EPERM);
	store_delivery_free(&d);
	assert_int_equal(tmp_files(f), 0);
	got = read_msg(f->st, res.mbox_id, res.uid, &len);
	assert_int_equal(len, strlen(want));
	assert_string_equal(got, want);
	free(got);
	assert_int_equal(store_msg_cache_get(f->st, res.mbox_id, res.uid, &c),
	    STORE_OK);
	assert_non_null(strstr(c.envelope, "new"));
	assert_null(strstr(c.envelope, "old"));
	store_msg_cache_free(&c);
	assert_int_equal(store_user_get_by_id(f->st, f->alice.id, &u),
	    STORE_OK);
	assert_int_equal(u.used, strlen(want));
}

/* A message past the memory bound is in its file before the commit; a
   change of its head rewrites the file (one file in tmp/ all along) and
   keeps the rest intact; map sees the file. */
static void
test_deliver_replace_head_spilled(void **state)
{
	struct fx *f = *state;
	struct store_delivery *d;
	struct store_delivery_result res;
	size_t blen = 600 * 1024, len, wl;
	char *body = xmalloc(blen), *want, *got;
	const char *trace = "Received: from y\r\n", *add = "X-Added: 1\r\n";
	const char *p;
	int fd;
	uint64_t fsize;

	memcpy(body, "Subject: big\r\n\r\n", 16);
	for (size_t i = 16; i < blen; i++)
		body[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' :
		    (char)('a' + i % 26);
	assert_int_equal(store_delivery_new(f->st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, trace, strlen(trace)),
	    STORE_OK);
	for (size_t off = 0; off < blen; off += 4096)
		assert_int_equal(store_delivery_write(d, body + off,
		    blen - off < 4096 ? blen - off : 4096), STORE_OK);
	assert_int_equal(tmp_files(f), 1);
	assert_int_equal(store_delivery_map(d, &p, &len), STORE_OK);
	assert_int_equal(len, strlen(trace) + blen);
	assert_memory_equal(p + strlen(trace), body, blen);
	assert_int_equal(store_delivery_replace_head(d, 0, "", 0), STORE_OK);
	/* Trace kept, a field added after it. */
	wl = strlen(trace) + strlen(add) + blen;
	want = xmalloc(wl + 1);
	snprintf(want, wl + 1, "%s%s", trace, add);
	memcpy(want + strlen(trace) + strlen(add), body, blen);
	assert_int_equal(store_delivery_replace_head(d, strlen(trace), want,
	    strlen(trace) + strlen(add)), STORE_OK);
	assert_int_equal(store_delivery_size(d), wl);
	assert_int_equal(tmp_files(f), 1);
	assert_int_equal(store_delivery_contents(d, &fd, &fsize), STORE_OK);
	assert_int_equal(fsize, wl);
	assert_int_equal(store_delivery_map(d, &p, &len), STORE_OK);
	assert_int_equal(len, wl);
	assert_memory_equal(p, want, wl);
	/* More content after the change goes at the end. */
	assert_int_equal(store_delivery_write(d, "end\n", 4), STORE_OK);
	assert_int_equal(store_delivery_add_target(d, f->alice.id, 0, 0, NULL,
	    0, 0, 0), STORE_OK);
	assert_int_equal(store_delivery_commit(d, 0, &res), STORE_OK);
	store_delivery_free(&d);
	assert_int_equal(tmp_files(f), 0);
	got = read_msg(f->st, res.mbox_id, res.uid, &len);
	assert_int_equal(len, wl + 5);
	assert_memory_equal(got, want, wl);
	assert_memory_equal(got + wl, "end\r\n", 5);
	free(got);
	free(want);
	free(body);
}

/* The notify file fires IN_MODIFY after a committed change, and a message
   whose file carries other flag letters (crash between rename and commit)
   still opens. */
static void
test_notify_and_open_fallback(void **state)
{
	struct fx *f = *state;
	uint32_t in = mbox_id(f->st, f->alice.id, "INBOX");
	char path[512], cur[512], from[1024], to[1024];
	char evbuf[4096];
	int ifd, fd;

	store_mailbox_notify_path(f->st, in, path, sizeof(path));
	ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	assert_true(ifd >= 0);
	assert_true(inotify_add_watch(ifd, path, IN_MODIFY) >= 0);
	assert_true(read(ifd, evbuf, sizeof(evbuf)) < 0);
	uint32_t uid = deliver(f->st, f->alice.id, 0, "Subject: n\n\nn\n", 0,
	    NULL);
	assert_true(read(ifd, evbuf, sizeof(evbuf)) > 0);
	struct store_flag_change ch = { .uid = uid };
	assert_int_equal(store_msg_set_flags(f->st, in, STORE_FLAGS_ADD,
	    STORE_F_SEEN, NULL, 0, 0, &ch, 1), STORE_OK);
	assert_true(read(ifd, evbuf, sizeof(evbuf)) > 0);
	close(ifd);

	snprintf(cur, sizeof(cur), "%s/mail/example.test/alice/%u/cur",
	    f->data, in);
	DIR *d = opendir(cur);
	struct dirent *de;
	from[0] = '\0';
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			snprintf(from, sizeof(from), "%s/%s", cur, de->d_name);
	closedir(d);
	assert_non_null(strstr(from, ":2,S"));
	snprintf(to, sizeof(to), "%.*s:2,FT", (int)(strstr(from, ":2,") - from),
	    from);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(store_msg_open(f->st, in, uid, &fd), STORE_OK);
	close(fd);
	/* The next flag change renames it back to what the index says. */
	assert_int_equal(store_msg_set_flags(f->st, in, STORE_FLAGS_ADD,
	    STORE_F_ANSWERED, NULL, 0, 0, &ch, 1), STORE_OK);
	snprintf(to, sizeof(to), "%.*s:2,RS", (int)(strstr(from, ":2,") - from),
	    from);
	assert_int_equal(access(to, F_OK), 0);
}

static void
test_flags(void **state)
{
	struct fx *f = *state;
	uint32_t a = f->alice.id, in = mbox_id(f->st, a, "INBOX");
	struct store_flag_change ch[3];
	struct store_mailbox mb;
	struct store_msg m;
	const char *kw[] = { "$Label1", "Junk" };
	int fd;

	for (int i = 0; i < 3; i++)
		deliver(f->st, a, 0, "Subject: x\n\nx\n", 0, NULL);
	assert_int_equal(store_mailbox_get_by_id(f->st, in, &mb), STORE_OK);
	uint64_t hms = mb.highestmodseq;
	memset(ch, 0, sizeof(ch));
	ch[0].uid = 1;
	ch[1].uid = 2;
	ch[2].uid = 77;
	assert_int_equal(store_msg_set_flags(f->st, in, STORE_FLAGS_ADD,
	    STORE_F_SEEN | STORE_F_DELETED, kw, 2, 0, ch, 3), STORE_OK);
	assert_true(ch[0].exists && ch[0].changed);
	assert_false(ch[2].exists);
	assert_int_equal(ch[0].flags, STORE_F_SEEN | STORE_F_DELETED);
	assert_int_equal(ch[0].keywords, 3);
	assert_true(ch[0].modseq > hms);
	assert_int_equal(store_mailbox_get_by_id(f->st, in, &mb), STORE_OK);
	assert_int_equal(mb.unseen, 1);
	assert_int_equal(mb.deleted, 2);
	assert_int_equal(mb.nkeywords, 2);
	assert_string_equal(mb.keywords[1], "Junk");
	assert_int_equal(mb.highestmodseq, ch[0].modseq);
	/* The file follows the flags, and still opens. */
	assert_int_equal(store_msg_open(f->st, in, 1, &fd), STORE_OK);
	close(fd);

	/* No-op change: no modseq bump. */
	uint64_t ms = ch[0].modseq;
	assert_int_equal(store_msg_set_flags(f->st, in, STORE_FLAGS_ADD,
	    STORE_F_SEEN, NULL, 0, 0, ch, 1), STORE_OK);
	assert_false(ch[0].changed);
	assert_int_equal(ch[0].modseq, ms);

	/* UNCHANGEDSINCE: 1 was changed after hms, 3 was not. */
	ch[0].uid = 1;
	ch[1].uid = 3;
	assert_int_equal(store_msg_set_flags(f->st, in, STORE_FLAGS_SET,
	    STORE_F_FLAGGED, NULL, 0, hms, ch, 2), STORE_OK);
	assert_true(ch[0].conflict);
	assert_false(ch[0].changed);
	assert_int_equal(ch[0].flags, STORE_F_SEEN | STORE_F_DELETED);
	assert_false(ch[1].conflict);
	assert_true(ch[1].changed);
	assert_int_equal(ch[1].flags, STORE_F_FLAGGED);
	assert_int_equal(ch[1].keywords, 0);

	/* Remove keywords case-insensitively; unknown ones are ignored. */
	const char *rm[] = { "junk", "Nope" };
	ch[0].uid = 2;
	assert_int_equal(store_msg_set_flags(f->st, in, STORE_FLAGS_REMOVE, 0,
	    rm, 2, 0, ch, 1), STORE_OK);
	assert_int_equal(ch[0].keywords, 1);
	assert_int_equal(store_msg_get(f->st, in, 2, &m), STORE_OK);
	assert_int_equal(m.keywords, 1);

	/* Changed-since listing. */
	struct store_msg *msgs;
	size_t n;
	assert_int_equal(store_msg_list(f->st, in, 1, hms, &msgs, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 3);
	free(msgs);
	assert_int_equal(store_msg_list(f->st, in, 1, ch[0].modseq, &msgs, &n,
	    NULL), STORE_OK);
	assert_int_equal(n, 0);

	/* Keyword limit and bad keywords. */
	char names[30][16];
	const char *many[30];
	for (int i = 0; i < 30; i++) {
		snprintf(names[i], sizeof(names[i]), "kw%d", i);
		many[i] = names[i];
	}
	ch[0].uid = 1;
	assert_int_equal(store_msg_set_flags(f->st, in, STORE_FLAGS_ADD, 0,
	    many, 30, 0, ch, 1), STORE_ELIMIT);
	const char *badkw[] = { "a b" };
	assert_int_equal(store_msg_set_flags(f->st, in, STORE_FLAGS_ADD, 0,
	    badkw, 1, 0, ch, 1), STORE_EPERM);
}

/* SELECT's counts come from the mailbox record; the first unseen MSN
   from a scan from both ends, right wherever the unseen messages are. */
static void
test_select_counts(void **state)
{
	struct fx *f = *state;
	uint32_t a = f->alice.id, in = mbox_id(f->st, a, "INBOX");
	struct store_select sel, sel2;
	struct store_flag_change ch[9];
	uint32_t first, uidnext;

	assert_int_equal(store_mailbox_select(f->st, a, "INBOX", true, &sel),
	    STORE_OK);
	assert_int_equal(sel.mb.messages, 0);
	assert_int_equal(sel.first_unseen, 0);
	for (int i = 0; i < 9; i++)
		deliver(f->st, a, 0, "Subject: s\n\ns\n", STORE_F_SEEN, NULL);
	/* EXAMINE reports the unclaimed ones and claims nothing */
	assert_int_equal(store_mailbox_select(f->st, a, "inbox", false, &sel),
	    STORE_OK);
	assert_int_equal(sel.recent, 9);
	assert_int_equal(sel.recent_lo, 1);
	assert_int_equal(sel.recent_hi, 10);
	assert_int_equal(sel.first_unseen, 0);
	assert_int_equal(store_mailbox_select(f->st, a, "INBOX", true, &sel),
	    STORE_OK);
	assert_int_equal(sel.mb.messages, 9);
	assert_int_equal(sel.recent, 9);
	assert_int_equal(sel.recent_lo, 1);
	assert_int_equal(sel.recent_hi, 10);
	assert_int_equal(sel.mb.recent, 0);
	assert_int_equal(store_mailbox_select(f->st, a, "INBOX", true, &sel2),
	    STORE_OK);
	assert_int_equal(sel2.recent, 0);
	assert_int_equal(sel2.recent_lo, sel2.recent_hi);
	/* unseen at the front, in the middle, at the back, several */
	static const uint32_t cases[][3] = {
		{ 1, 0, 1 }, { 5, 0, 5 }, { 9, 0, 9 }, { 4, 8, 4 }, { 2, 9, 2 },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		for (int i = 0; i < 9; i++)
			ch[i].uid = (uint32_t)i + 1;
		assert_int_equal(store_msg_set_flags(f->st, in, STORE_FLAGS_ADD,
		    STORE_F_SEEN, NULL, 0, 0, ch, 9), STORE_OK);
		for (int j = 0; j < 2 && cases[k][j]; j++) {
			ch[0].uid = cases[k][j];
			assert_int_equal(store_msg_set_flags(f->st, in,
			    STORE_FLAGS_REMOVE, STORE_F_SEEN, NULL, 0, 0, ch,
			    1), STORE_OK);
		}
		assert_int_equal(store_mailbox_select(f->st, a, "INBOX", false,
		    &sel), STORE_OK);
		assert_int_equal(sel.first_unseen, cases[k][2]);
	}
	/* MSNs, not uids: expunge uid 1, the first unseen (uid 2) is MSN 1 */
	uint32_t one = 1, *gone;
	size_t ngone;
	assert_int_equal(store_msg_expunge(f->st, in, &one, 1, false, &gone,
	    &ngone), STORE_OK);
	free(gone);
	assert_int_equal(store_mailbox_select(f->st, a, "INBOX", false, &sel),
	    STORE_OK);
	assert_int_equal(sel.mb.messages, 8);
	assert_int_equal(sel.first_unseen, 1);
	/* a claim's range is exact: what is delivered after it is past it */
	deliver(f->st, a, 0, "Subject: n\n\nn\n", 0, NULL);
	assert_int_equal(store_mailbox_claim_recent_range(f->st, in, &first,
	    &uidnext), STORE_OK);
	assert_int_equal(first, 10);
	assert_int_equal(uidnext, 11);
	assert_int_equal(store_mailbox_select(f->st, a, "nope", true, &sel),
	    STORE_ENOTFOUND);
}

static void
test_copy_move_expunge(void **state)
{
	struct fx *f = *state;
	uint32_t a = f->alice.id, in = mbox_id(f->st, a, "INBOX");
	uint32_t trash = mbox_id(f->st, a, "Trash");
	uint32_t uids[4] = { 3, 1, 2, 50 }, dst[4], uv;
	struct store_mailbox mb;
	struct store_msg m;
	int fd;

	deliver(f->st, a, 0, "Subject: 1\n\n1\n", STORE_F_SEEN, "$A");
	deliver(f->st, a, 0, "Subject: 2\n\n2\n", 0, "$B");
	deliver(f->st, a, 0, "Subject: 3\n\n3\n", STORE_F_DELETED, NULL);
	deliver(f->st, a, trash, "Subject: t\n\nt\n", 0, "$B");

	assert_int_equal(store_msg_copy(f->st, in, uids, 4, trash, false, dst,
	    &uv), STORE_OK);
	assert_int_equal(dst[1], 2);   /* uid 1 -> 2 (Trash had uid 1) */
	assert_int_equal(dst[2], 3);
	assert_int_equal(dst[0], 4);
	assert_int_equal(dst[3], 0);
	assert_int_equal(store_mailbox_get_by_id(f->st, trash, &mb), STORE_OK);
	assert_int_equal(uv, mb.uidvalidity);
	assert_int_equal(mb.messages, 4);
	assert_int_equal(mb.deleted, 1);
	/* Keywords mapped by name: Trash had $B as keyword 0. */
	assert_string_equal(mb.keywords[0], "$B");
	assert_string_equal(mb.keywords[1], "$A");
	assert_int_equal(store_msg_get(f->st, trash, 2, &m), STORE_OK);
	assert_int_equal(m.flags, STORE_F_SEEN);
	assert_int_equal(m.keywords, 2);
	assert_int_equal(store_msg_get(f->st, trash, 3, &m), STORE_OK);
	assert_int_equal(m.keywords, 1);
	assert_int_equal(store_msg_open(f->st, trash, 4, &fd), STORE_OK);
	close(fd);
	struct store_msg_cache c;
	assert_int_equal(store_msg_cache_get(f->st, trash, 4, &c), STORE_OK);
	store_msg_cache_free(&c);

	/* Move 1 to Junk: gone from INBOX with a tombstone. */
	uint32_t junk = mbox_id(f->st, a, "Junk");
	struct store_mailbox before;
	assert_int_equal(store_mailbox_get_by_id(f->st, in, &before), STORE_OK);
	uint32_t one = 1;
	assert_int_equal(store_msg_copy(f->st, in, &one, 1, junk, true, dst,
	    &uv), STORE_OK);
	assert_int_equal(dst[0], 1);
	assert_int_equal(store_msg_get(f->st, in, 1, &m), STORE_ENOTFOUND);
	assert_int_equal(store_msg_get(f->st, junk, 1, &m), STORE_OK);
	assert_int_equal(store_msg_open(f->st, junk, 1, &fd), STORE_OK);
	close(fd);
	uint32_t *ex;
	size_t n;
	assert_int_equal(store_expunged_since(f->st, in,
	    before.highestmodseq, &ex, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(ex[0], 1);
	free(ex);

	/* Expunge only \Deleted. */
	assert_int_equal(store_msg_expunge(f->st, in, NULL, 0, true, &ex, &n),
	    STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(ex[0], 3);
	free(ex);
	assert_int_equal(store_mailbox_get_by_id(f->st, in, &mb), STORE_OK);
	assert_int_equal(mb.messages, 1);
	assert_int_equal(mb.deleted, 0);
	/* Expunge listed uids regardless of \Deleted. */
	uint32_t two[2] = { 2, 99 };
	assert_int_equal(store_msg_expunge(f->st, in, two, 2, false, &ex, &n),
	    STORE_OK);
	assert_int_equal(n, 1);
	free(ex);
	assert_int_equal(store_expunged_since(f->st, in, 0, &ex, &n), STORE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(ex[0], 1);
	assert_int_equal(ex[2], 3);
	free(ex);
	assert_int_equal(store_mailbox_get_by_id(f->st, in, &mb), STORE_OK);
	assert_int_equal(mb.messages, 0);
	assert_int_equal(mb.size, 0);
	/* The files are gone from INBOX's cur/. */
	char cur[512];
	snprintf(cur, sizeof(cur), "%s/mail/example.test/alice/%u/cur",
	    f->data, in);
	DIR *dd = opendir(cur);
	assert_non_null(dd);
	struct dirent *de;
	int files = 0;
	while ((de = readdir(dd)) != NULL)
		if (de->d_name[0] != '.')
			files++;
	closedir(dd);
	assert_int_equal(files, 0);
	/* UIDs never reused after expunging the last message. */
	assert_int_equal(deliver(f->st, a, 0, "x\n", 0, NULL), 4);
}

static void
test_quota(void **state)
{
	struct fx *f = *state;
	struct store_delivery *d;
	char body[600];

	memset(body, 'a', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	assert_int_equal(store_user_set_quota(f->st, "bob@example.test", 1000),
	    STORE_OK);
	deliver(f->st, f->bob.id, 0, body, 0, NULL);
	assert_int_equal(store_delivery_new(f->st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, body, strlen(body)), STORE_OK);
	assert_int_equal(store_delivery_add_target(d, f->bob.id, 0, 0, NULL, 0,
	    0, 0), STORE_OK);
	assert_int_equal(store_delivery_commit(d, 0, NULL), STORE_EQUOTA);
	assert_int_equal(store_delivery_commit(d, STORE_DELIVER_NOQUOTA, NULL),
	    STORE_OK);
	store_delivery_free(&d);
	uint32_t in = mbox_id(f->st, f->bob.id, "INBOX");
	uint32_t sent = mbox_id(f->st, f->bob.id, "Sent"), uid = 1, dst;
	assert_int_equal(store_msg_copy(f->st, in, &uid, 1, sent, false, &dst,
	    NULL), STORE_EQUOTA);
	/* A move does not need more space. */
	assert_int_equal(store_msg_copy(f->st, in, &uid, 1, sent, true, &dst,
	    NULL), STORE_OK);
	struct store_mailbox mb;
	assert_int_equal(store_mailbox_get_by_id(f->st, in, &mb), STORE_OK);
	assert_int_equal(mb.messages, 1);
}

static void
test_user_lock(void **state)
{
	struct fx *f = *state;
	int fd, fd2;

	assert_int_equal(store_user_lock(f->st, f->alice.id, "pop3", &fd),
	    STORE_OK);
	assert_int_equal(store_user_lock(f->st, f->alice.id, "pop3", &fd2),
	    STORE_EEXISTS);
	assert_int_equal(store_user_lock(f->st, f->bob.id, "pop3", &fd2),
	    STORE_OK);
	close(fd2);
	close(fd);
	assert_int_equal(store_user_lock(f->st, f->alice.id, "pop3", &fd),
	    STORE_OK);
	close(fd);
	assert_int_equal(store_user_lock(f->st, f->alice.id, "../x", &fd),
	    STORE_EPERM);

	/* A second open in the same process shares the environment. */
	struct store *st2;
	char *path = xasprintf("%s/./", f->data);
	assert_int_equal(store_open(path, &st2), STORE_OK);
	free(path);
	assert_ptr_equal(st2, f->st);
	store_close(&st2);
	assert_null(st2);
	assert_true(store_domain_is_local(f->st, "example.test"));
}

struct thr_arg {
	struct store *st;
	uint32_t user, mbox;
	int id;
};

static void *
deliver_thr(void *p)
{
	struct thr_arg *a = p;

	for (int i = 0; i < 25; i++) {
		struct store_delivery *d;
		char body[64];
		snprintf(body, sizeof(body), "Subject: t%d-%d\n\nx\n", a->id, i);
		if (store_delivery_new(a->st, &d) != STORE_OK)
			continue;
		store_delivery_write(d, body, strlen(body));
		store_delivery_add_target(d, a->user, 0, i % 2 ? STORE_F_SEEN : 0,
		    NULL, 0, 0, 0);
		store_delivery_commit(d, 0, NULL);
		store_delivery_free(&d);
	}
	return NULL;
}

static void *
churn_thr(void *p)
{
	struct thr_arg *a = p;
	const char *kw[] = { "$T" };

	for (int i = 0; i < 40; i++) {
		struct store_flag_change ch[4];
		uint32_t *ex, uid = (uint32_t)(i * 3 % 60) + 1;
		size_t n;
		for (int j = 0; j < 4; j++)
			ch[j].uid = uid + (uint32_t)j;
		store_msg_set_flags(a->st, a->mbox, i % 3 == 0 ?
		    STORE_FLAGS_REMOVE : STORE_FLAGS_ADD,
		    i % 2 ? STORE_F_DELETED : STORE_F_SEEN, kw, 1, 0, ch, 4);
		if (i % 7 == 0 && store_msg_expunge(a->st, a->mbox, NULL, 0, true,
		    &ex, &n) == STORE_OK)
			free(ex);
	}
	return NULL;
}

/* Deliveries (group commit) racing flag changes and expunges: the
   counters kept on every change must match the messages at the end. */
static void
test_concurrent_counters(void **state)
{
	struct fx *f = *state;
	uint32_t in = mbox_id(f->st, f->alice.id, "INBOX");
	struct thr_arg args[8];
	pthread_t th[8];
	struct store_msg *msgs;
	struct store_mailbox mb;
	struct store_user u;
	size_t n;

	for (int i = 0; i < 8; i++) {
		args[i] = (struct thr_arg){ f->st, f->alice.id, in, i };
		pthread_create(&th[i], NULL, i < 6 ? deliver_thr : churn_thr,
		    &args[i]);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(store_msg_list(f->st, in, 1, 0, &msgs, &n, &mb),
	    STORE_OK);
	uint32_t unseen = 0, deleted = 0;
	uint64_t size = 0;
	for (size_t i = 0; i < n; i++) {
		unseen += !(msgs[i].flags & STORE_F_SEEN);
		deleted += !!(msgs[i].flags & STORE_F_DELETED);
		size += msgs[i].size;
		assert_true(msgs[i].modseq <= mb.highestmodseq);
		int fd;
		assert_int_equal(store_msg_open(f->st, in, msgs[i].uid, &fd),
		    STORE_OK);
		close(fd);
	}
	free(msgs);
	assert_int_equal(mb.messages, n);
	assert_int_equal(mb.unseen, unseen);
	assert_int_equal(mb.deleted, deleted);
	assert_int_equal(mb.size, size);
	assert_int_equal(mb.uidnext, 6 * 25 + 1);
	assert_int_equal(store_user_get_by_id(f->st, f->alice.id, &u), STORE_OK);
	assert_int_equal(u.used, size);
}

/* Two processes (each with its own environment) deliver at once. */
static void
test_two_processes(void **state)
{
	struct fx *f = *state;
	uint32_t a = f->alice.id;
	enum { PER = 60 };
	pid_t pids[2];

	store_close(&f->st);
	for (int p = 0; p < 2; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			struct store *st;
			int bad = 0;
			if (store_open(f->data, &st) != STORE_OK)
				_exit(2);
			store_set_group_commit(st, p == 0);
			for (int i = 0; i < PER; i++) {
				struct store_delivery *d;
				char body[64];
				snprintf(body, sizeof(body), "X-P: %d-%d\n\nb\n", p, i);
				if (store_delivery_new(st, &d) != STORE_OK ||
				    store_delivery_write(d, body,
				    strlen(body)) != STORE_OK ||
				    store_delivery_add_target(d, a, 0, 0, NULL, 0,
				    0, 0) != STORE_OK ||
				    store_delivery_commit(d, 0, NULL) != STORE_OK)
					bad++;
				store_delivery_free(&d);
			}
			store_close(&st);
			_exit(bad ? 1 : 0);
		}
	}
	for (int p = 0; p < 2; p++) {
		int status;
		assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(store_open(f->data, &f->st), STORE_OK);
	struct store_msg *msgs;
	struct store_mailbox mb;
	size_t n;
	uint32_t in = mbox_id(f->st, a, "INBOX");
	assert_int_equal(store_msg_list(f->st, in, 1, 0, &msgs, &n, &mb),
	    STORE_OK);
	assert_int_equal(n, 2 * PER);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(msgs[i].uid, i + 1);
	assert_int_equal(mb.messages, 2 * PER);
	assert_int_equal(mb.uidnext, 2 * PER + 1);
	free(msgs);
}

struct snap {
	uint32_t uidvalidity, uidnext;
	uint64_t hms;
	size_t n;
	struct store_msg msgs[16];
	char kw[16][2][STORE_KEYWORD_MAX + 1];
};

static void
take_snap(struct store *st, uint32_t user, const char *name, struct snap *s)
{
	struct store_mailbox mb;
	struct store_msg *msgs;
	size_t n;

	memset(s, 0, sizeof(*s));
	assert_int_equal(store_mailbox_get(st, user, name, &mb), STORE_OK);
	assert_int_equal(store_msg_list(st, mb.id, 1, 0, &msgs, &n, &mb),
	    STORE_OK);
	assert_true(n <= 16);
	s->uidvalidity = mb.uidvalidity;
	s->uidnext = mb.uidnext;
	s->hms = mb.highestmodseq;
	s->n = n;
	for (size_t i = 0; i < n; i++) {
		s->msgs[i] = msgs[i];
		/* Keyword names, since bits may differ after a rebuild. */
		int k = 0;
		for (unsigned b = 0; b < mb.nkeywords && k < 2; b++)
			if (msgs[i].keywords & (1u << b))
				strcpy(s->kw[i][k++], mb.keywords[b]);
	}
	free(msgs);
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

static void
test_reindex_lost_index(void **state)
{
	struct fx *f = *state;
	uint32_t a = f->alice.id;
	struct store_mailbox work;
	struct store_flag_change ch = { .uid = 2 };
	const char *kw[] = { "$Forwarded" };
	struct snap before, after, wb, wa, bb, ba;
	uint32_t *ex;
	size_t n;

	assert_int_equal(store_mailbox_create(f->st, a, "Work/Q1", 0, &work),
	    STORE_OK);
	deliver(f->st, a, 0, "Subject: 1\n\n1\n", STORE_F_SEEN, "$Label1");
	deliver(f->st, a, 0, "Subject: 2\n\n2\n", 0, NULL);
	deliver(f->st, a, 0, "Subject: 3\n\n3\n", STORE_F_FLAGGED, NULL);
	deliver(f->st, a, 0, "Subject: 4\n\n4\n", 0, NULL);
	deliver(f->st, a, work.id, "Subject: w\n\nw\n", STORE_F_DRAFT, "x");
	deliver(f->st, f->bob.id, 0, "Subject: b\n\nb\n", 0, NULL);
	assert_int_equal(store_msg_set_flags(f->st, mbox_id(f->st, a, "INBOX"),
	    STORE_FLAGS_ADD, STORE_F_ANSWERED, kw, 1, 0, &ch, 1), STORE_OK);
	uint32_t four = 4;
	assert_int_equal(store_msg_expunge(f->st, mbox_id(f->st, a, "INBOX"),
	    &four, 1, false, &ex, &n), STORE_OK);
	free(ex);
	assert_int_equal(store_subscription_set(f->st, a, "Work/Q1", true),
	    STORE_OK);
	take_snap(f->st, a, "INBOX", &before);
	take_snap(f->st, a, "Work/Q1", &wb);
	take_snap(f->st, f->bob.id, "INBOX", &bb);
	assert_int_equal(before.n, 3);

	reopen_without_index(f);
	struct store_user u;
	assert_int_equal(store_user_get(f->st, "alice@example.test", &u),
	    STORE_ENOTFOUND);
	struct store_reindex_stats stats;
	assert_int_equal(store_reindex_user(f->st, "alice@example.test",
	    &stats), STORE_OK);
	assert_int_equal(stats.mailboxes, 7);
	assert_int_equal(stats.messages, 4);
	assert_int_equal(store_authenticate(f->st, "alice@example.test",
	    "alice-pw", &u), STORE_OK);
	assert_int_equal(u.id, a);
	take_snap(f->st, a, "INBOX", &after);
	take_snap(f->st, a, "Work/Q1", &wa);
	assert_int_equal(after.uidvalidity, before.uidvalidity);
	assert_true(after.uidnext >= before.uidnext);
	assert_true(after.hms >= before.hms);
	assert_int_equal(after.n, before.n);
	for (size_t i = 0; i < after.n; i++) {
		assert_int_equal(after.msgs[i].uid, before.msgs[i].uid);
		assert_int_equal(after.msgs[i].flags, before.msgs[i].flags);
		assert_int_equal(after.msgs[i].size, before.msgs[i].size);
		assert_int_equal(after.msgs[i].internaldate,
		    before.msgs[i].internaldate);
		assert_string_equal(after.kw[i][0], before.kw[i][0]);
		assert_string_equal(after.kw[i][1], before.kw[i][1]);
	}
	assert_int_equal(wa.uidvalidity, wb.uidvalidity);
	assert_int_equal(wa.n, 1);
	assert_int_equal(wa.msgs[0].flags, STORE_F_DRAFT);
	assert_string_equal(wa.kw[0][0], "x");
	struct store_mailbox mb;
	assert_int_equal(store_mailbox_get(f->st, a, "Work/Q1", &mb), STORE_OK);
	assert_true(mb.subscribed);
	assert_int_equal(store_mailbox_get(f->st, a, "Sent", &mb), STORE_OK);
	assert_int_equal(mb.special_use, STORE_SU_SENT);
	/* UID 4 was expunged before the loss: never handed out again. */
	uint32_t nu = deliver(f->st, a, 0, "Subject: 5\n\n5\n", 0, NULL);
	assert_true(nu >= before.uidnext);
	struct store_msg_cache c;
	assert_int_equal(store_msg_cache_get(f->st, mbox_id(f->st, a, "INBOX"),
	    1, &c), STORE_OK);
	assert_non_null(strstr(c.envelope, "\"1\""));
	store_msg_cache_free(&c);

	/* bob was re-added before his reindex: his old mailboxes win. */
	assert_int_equal(store_user_add(f->st, "bob@example.test", alice_hash,
	    0, NULL), STORE_OK);
	assert_int_equal(store_reindex_user(f->st, "bob@example.test", &stats),
	    STORE_OK);
	assert_int_equal(store_user_get(f->st, "bob@example.test", &u),
	    STORE_OK);
	take_snap(f->st, u.id, "INBOX", &ba);
	assert_int_equal(ba.uidvalidity, bb.uidvalidity);
	assert_int_equal(ba.n, 1);
	struct store_mailbox *mbs;
	assert_int_equal(store_mailbox_list(f->st, u.id, &mbs, &n), STORE_OK);
	assert_int_equal(n, 6);
	free(mbs);
}

static void
test_reindex_recover(void **state)
{
	struct fx *f = *state;
	uint32_t a = f->alice.id, in = mbox_id(f->st, a, "INBOX");
	struct store_reindex_stats stats;
	char cur[512], path[1024], src[1024];
	struct store_msg *msgs;
	struct store_mailbox mb;
	size_t n;

	deliver(f->st, a, 0, "Subject: 1\n\n1\n", 0, NULL);
	deliver(f->st, a, 0, "Subject: 2\n\n2\n", 0, NULL);
	snprintf(cur, sizeof(cur), "%s/mail/example.test/alice/%u/cur",
	    f->data, in);
	/* A foreign file without UID, and a duplicate of UID 1. */
	snprintf(path, sizeof(path), "%s/1700000000.foreign.host:2,S", cur);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("Subject: foreign\r\n\r\nhello\r\n", fp);
	fclose(fp);
	DIR *d = opendir(cur);
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ",U=1:") != NULL)
			snprintf(src, sizeof(src), "%s/%s", cur, de->d_name);
	closedir(d);
	snprintf(path, sizeof(path), "%s/9.copy.host,S=15,U=1:2,F", cur);
	assert_int_equal(link(src, path), 0);

	assert_int_equal(store_reindex_user(f->st, "alice@example.test",
	    &stats), STORE_OK);
	assert_int_equal(stats.recovered, 2);
	assert_int_equal(store_msg_list(f->st, in, 1, 0, &msgs, &n, &mb),
	    STORE_OK);
	assert_int_equal(n, 4);
	assert_int_equal(mb.messages, 4);
	for (size_t i = 1; i < n; i++)
		assert_true(msgs[i].uid > msgs[i - 1].uid);
	assert_int_equal(msgs[0].uid, 1);
	assert_int_equal(msgs[1].uid, 2);
	assert_true(msgs[2].uid >= 3);
	free(msgs);
	/* Every one opens, and a second reindex changes nothing. */
	int fd;
	assert_int_equal(store_msg_open(f->st, in, 2, &fd), STORE_OK);
	close(fd);
	assert_int_equal(store_reindex_user(f->st, "alice@example.test",
	    &stats), STORE_OK);
	assert_int_equal(stats.recovered, 0);
	assert_int_equal(stats.messages, 4);
	assert_int_equal(store_reindex_user(f->st, "nobody@example.test",
	    &stats), STORE_ENOTFOUND);

	/* Expunge the highest uid, reindex: it is never handed out again,
	   and UIDNEXT does not move for clients. */
	assert_int_equal(store_mailbox_get_by_id(f->st, in, &mb), STORE_OK);
	uint32_t last = mb.uidnext - 1, *ex;
	assert_int_equal(store_msg_expunge(f->st, in, &last, 1, false, &ex, &n),
	    STORE_OK);
	assert_int_equal(n, 1);
	free(ex);
	assert_int_equal(store_reindex_user(f->st, "alice@example.test",
	    &stats), STORE_OK);
	struct store_mailbox mb2;
	assert_int_equal(store_mailbox_get_by_id(f->st, in, &mb2), STORE_OK);
	assert_int_equal(mb2.uidnext, mb.uidnext);
	assert_int_equal(mb2.uidvalidity, mb.uidvalidity);
	assert_true(mb2.highestmodseq > mb.highestmodseq);
	assert_int_equal(deliver(f->st, a, 0, "x\n", 0, NULL), mb.uidnext);
	assert_int_equal(store_expunged_since(f->st, in, mb.highestmodseq, &ex,
	    &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(ex[0], last);
	free(ex);
}

/* ---- crash in the middle of COPY, MOVE, EXPUNGE and delivery ---- */

enum { CR_MSGS = 150, CR_ROUNDS = 8 };

static int
str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The X-Tag of every message of mbox, sorted, as one string per message
   ("name:tag"); every record's file must open. */
static char **
crash_tags(struct store *st, uint32_t user, const char *name, size_t *n_r)
{
	struct store_msg *msgs;
	struct store_mailbox mb;
	size_t n;
	char **tags;

	assert_int_equal(store_mailbox_get(st, user, name, &mb), STORE_OK);
	assert_int_equal(store_msg_list(st, mb.id, 1, 0, &msgs, &n, &mb),
	    STORE_OK);
	assert_int_equal(mb.messages, n);
	tags = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		char buf[512], *p, *e;
		int fd;
		ssize_t r;
		if (store_msg_open(st, mb.id, msgs[i].uid, &fd) != STORE_OK)
			fail_msg("%s uid %u: %s", name, msgs[i].uid,
			    store_last_error());
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		assert_true(r > 0);
		buf[r] = '\0';
		assert_non_null(p = strstr(buf, "X-Tag: "));
		p += 7;
		assert_non_null(e = strstr(p, "\r\n"));
		tags[i] = xasprintf("%s:%.*s", name, (int)(e - p), p);
	}
	free(msgs);
	qsort(tags, n, sizeof(char *), str_ptr_cmp);
	*n_r = n;
	return tags;
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Files of a mailbox directory's subdirectory (not dot files). */
static size_t
count_files(const char *data, uint32_t mbox, const char *sub)
{
	char *path = xasprintf("%s/mail/example.test/alice/%u/%s", data, mbox,
	    sub);
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	while (d != NULL && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	if (d != NULL)
		closedir(d);
	free(path);
	return n;
}

/* The uids of the first messages of mbox (at most max). */
static size_t
crash_uids(struct store *st, uint32_t mbox, uint32_t *uids, size_t max)
{
	struct store_msg *msgs;
	size_t n;

	assert_int_equal(store_msg_list(st, mbox, 1, 0, &msgs, &n, NULL),
	    STORE_OK);
	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++)
		uids[i] = msgs[i].uid;
	free(msgs);
	return n;
}

/* The child: moves everything back and forth, copies and expunges, and
   delivers, until killed; a byte down the pipe before each operation, and
   "tag\n" after each delivery is committed. */
static void __attribute__((noreturn))
crash_child(const char *data, uint32_t a, int wfd, int round)
{
	struct store *st;
	static uint32_t uids[4 * CR_MSGS], dst[4 * CR_MSGS];
	struct store_mailbox in, trash, arch;

	/* No cmocka assertion here: this is a forked copy of the runner. */
	if (store_open(data, &st) != STORE_OK ||
	    store_mailbox_get(st, a, "INBOX", &in) != STORE_OK ||
	    store_mailbox_get(st, a, "Trash", &trash) != STORE_OK ||
	    store_mailbox_get(st, a, "Archive", &arch) != STORE_OK)
		_exit(2);
	for (int i = 0; ; i++) {
		uint32_t from = i % 2 ? trash.id : in.id;
		uint32_t to = i % 2 ? in.id : trash.id;
		struct store_msg *msgs;
		struct store_delivery *d;
		size_t n;
		uint32_t *ex;
		size_t nex;
		char line[64];

		if (write(wfd, "o", 1) != 1 ||
		    store_msg_list(st, from, 1, 0, &msgs, &n, NULL) != STORE_OK)
			_exit(3);
		if (n > 4 * CR_MSGS)
			n = 4 * CR_MSGS;
		for (size_t j = 0; j < n; j++)
			uids[j] = msgs[j].uid;
		free(msgs);
		if (n > 0 && store_msg_copy(st, from, uids, n, arch.id, false,
		    dst, NULL) != STORE_OK)
			_exit(4);
		if (write(wfd, "o", 1) != 1 || store_msg_expunge(st, arch.id,
		    NULL, 0, false, &ex, &nex) != STORE_OK)
			_exit(5);
		free(ex);
		if (write(wfd, "o", 1) != 1 || (n > 0 && store_msg_copy(st,
		    from, uids, n, to, true, dst, NULL) != STORE_OK))
			_exit(6);
		if (write(wfd, "o", 1) != 1)
			_exit(3);
		snprintf(line, sizeof(line), "X-Tag: r%di%d\n\nd\n", round, i);
		if (store_delivery_new(st, &d) != STORE_OK ||
		    store_delivery_write(d, line, strlen(line)) != STORE_OK ||
		    store_delivery_add_target(d, a, to, 0, NULL, 0, 0,
		    0) != STORE_OK ||
		    store_delivery_commit(d, 0, NULL) != STORE_OK)
			_exit(7);
		store_delivery_free(&d);
		snprintf(line, sizeof(line), "r%di%d\n", round, i);
		if (write(wfd, line, strlen(line)) != (ssize_t)strlen(line))
			_exit(3);
	}
}

static void
test_crash_copy_move(void **state)
{
	struct fx *f = *state;
	uint32_t a = f->alice.id, in = mbox_id(f->st, a, "INBOX");
	uint32_t trash = mbox_id(f->st, a, "Trash");
	uint32_t arch = mbox_id(f->st, a, "Archive");
	char **acked = NULL;
	size_t nacked = 0;

	for (int i = 0; i < CR_MSGS; i++) {
		char body[64];
		snprintf(body, sizeof(body), "X-Tag: m%d\n\nbody %d\n", i, i);
		deliver(f->st, a, 0, body, i % 3 ? 0 : STORE_F_SEEN, NULL);
	}
	srandom((unsigned)getpid());
	for (int round = 0; round < CR_ROUNDS; round++) {
		int pfd[2];
		pid_t pid;
		int status;
		char buf[4096];
		size_t ops = 0, want = 1 + (size_t)(random() % 12);
		struct buf text;

		store_close(&f->st);
		assert_int_equal(pipe(pfd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			crash_child(f->data, a, pfd[1], round);
		}
		close(pfd[1]);
		/* Let it reach a random operation, then a random moment in
		   it (the checks below hold wherever the kill lands). */
		buf_init(&text);
		while (ops < want) {
			ssize_t r = read(pfd[0], buf, sizeof(buf));
			assert_true(r > 0);
			for (ssize_t j = 0; j < r; j++)
				ops += buf[j] == 'o';
			buf_append(&text, buf, (size_t)r);
		}
		usleep((useconds_t)(random() % 30000));
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		for (ssize_t r; (r = read(pfd[0], buf, sizeof(buf))) > 0;)
			buf_append(&text, buf, (size_t)r);
		close(pfd[0]);
		/* Deliveries the child saw committed. */
		buf_append(&text, "", 1);
		for (char *p = text.data, *save = NULL,
		    *t = strtok_r(p, "o\n", &save); t != NULL;
		    t = strtok_r(NULL, "o\n", &save)) {
			acked = xrealloc(acked, (nacked + 1) * sizeof(char *));
			acked[nacked++] = xstrdup(t);
		}
		buf_free(&text);

		assert_int_equal(store_open(f->data, &f->st), STORE_OK);
		size_t ni, nt, na, ni2, nt2, na2;
		char **ti = crash_tags(f->st, a, "INBOX", &ni);
		char **tt = crash_tags(f->st, a, "Trash", &nt);
		char **ta = crash_tags(f->st, a, "Archive", &na);
		/* Every message exactly once in INBOX or Trash. */
		size_t nall = ni + nt;
		char **all = xcalloc(nall + 1, sizeof(char *));
		for (size_t j = 0; j < ni; j++)
			all[j] = strchr(ti[j], ':') + 1;
		for (size_t j = 0; j < nt; j++)
			all[ni + j] = strchr(tt[j], ':') + 1;
		qsort(all, nall, sizeof(char *), str_ptr_cmp);
		for (size_t j = 1; j < nall; j++)
			if (strcmp(all[j], all[j - 1]) == 0)
				fail_msg("round %d: %s twice", round, all[j]);
		for (int m = 0; m < CR_MSGS; m++) {
			char tag[16];
			const char *key = tag;
			snprintf(tag, sizeof(tag), "m%d", m);
			if (bsearch(&key, all, nall, sizeof(char *),
			    str_ptr_cmp) == NULL)
				fail_msg("round %d: %s lost", round, tag);
		}
		for (size_t j = 0; j < nacked; j++) {
			const char *key = acked[j];
			if (bsearch(&key, all, nall, sizeof(char *),
			    str_ptr_cmp) == NULL)
				fail_msg("round %d: delivered %s lost", round,
				    acked[j]);
		}
		free(all);
		/* Files on disk are those of the index, after the next
		   operation on the mailbox at the latest: a MOVE both ways
		   (which a crash must never block) then a reindex. */
		for (int dir = 0; dir < 2; dir++) {
			uint32_t from = dir ? trash : in, to = dir ? in : trash;
			uint32_t uids[10], dst[10];
			size_t n = crash_uids(f->st, from, uids, 10);
			if (n > 0 && store_msg_copy(f->st, from, uids, n, to,
			    true, dst, NULL) != STORE_OK)
				fail_msg("round %d: move after crash: %s", round,
				    store_last_error());
			n = crash_uids(f->st, to, uids, 10);
			if (n > 0 && store_msg_copy(f->st, to, uids, n, from,
			    true, dst, NULL) != STORE_OK)
				fail_msg("round %d: move back: %s", round,
				    store_last_error());
		}
		struct store_reindex_stats stats;
		assert_int_equal(store_reindex_user(f->st, "alice@example.test",
		    &stats), STORE_OK);
		/* A reindex changes nothing: no orphan comes back as a
		   message, none goes. */
		assert_int_equal(stats.recovered, 0);
		char **ti2 = crash_tags(f->st, a, "INBOX", &ni2);
		char **tt2 = crash_tags(f->st, a, "Trash", &nt2);
		char **ta2 = crash_tags(f->st, a, "Archive", &na2);
		assert_int_equal(ni2 + nt2, ni + nt);
		assert_int_equal(na2, na);
		for (size_t j = 0; j < na; j++)
			assert_string_equal(ta[j], ta2[j]);
		assert_int_equal(count_files(f->data, in, "cur"), ni2);
		assert_int_equal(count_files(f->data, trash, "cur"), nt2);
		assert_int_equal(count_files(f->data, arch, "cur"), na2);
		free_strv(ti, ni);
		free_strv(tt, nt);
		free_strv(ta, na);
		free_strv(ti2, ni2);
		free_strv(tt2, nt2);
		free_strv(ta2, na2);
	}
	free_strv(acked, nacked);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_domains_users, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_default_mailboxes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_aliases_resolve, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_alias_depth_and_delete_usage,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_authenticate, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mailboxes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_read, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_deliver_crlf_large, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_deliver_replace_head_memory,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_replace_head_spilled,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_and_open_fallback,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_select_counts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_copy_move_expunge, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_counters, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_two_processes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reindex_lost_index, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reindex_recover, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_crash_copy_move, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
