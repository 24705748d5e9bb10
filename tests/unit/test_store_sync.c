/* What a delivery syncs, seen through fsync and fdatasync interposed
   here: the delivery that creates postroom-adding/ in a mailbox made
   before the staging directories existed makes its entry in the mailbox
   directory durable (fsync of the mailbox directory), once; and a
   batch's file and directory syncs run at once, not one after the
   other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "util.h"
#include "store_test_util.h"

#define MAX_SYNCED 256

static char synced[MAX_SYNCED][PATH_MAX];
static size_t nsynced;
static pthread_mutex_t synced_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t synced_cv = PTHREAD_COND_INITIALIZER;
static bool hold_files, dir_started, overlapped;

/* Takes the place of libc's fsync for the store linked into this test. */
int
fsync(int fd)
{
	char link[64], path[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	path[n > 0 ? n : 0] = '\0';
	pthread_mutex_lock(&synced_mu);
	if (n > 0 && nsynced < MAX_SYNCED)
		snprintf(synced[nsynced++], PATH_MAX, "%s", path);
	if (strstr(path, "/postroom-adding") != NULL) {
		dir_started = true;
		pthread_cond_broadcast(&synced_cv);
	}
	pthread_mutex_unlock(&synced_mu);
	return (int)syscall(SYS_fsync, fd);
}

/* With hold_files, a message file's fdatasync waits for the fsync of its
   postroom-adding/ to start, which only a sync running beside it can do;
   the bound is there so that a serial implementation fails instead of
   hanging. */
int
fdatasync(int fd)
{
	char link[64], path[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	path[n > 0 ? n : 0] = '\0';
	pthread_mutex_lock(&synced_mu);
	if (hold_files && strstr(path, "/data/tmp/") != NULL) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 60;
		while (!dir_started && pthread_cond_timedwait(&synced_cv,
		    &synced_mu, &until) != ETIMEDOUT)
			;
		overlapped = dir_started;
	}
	pthread_mutex_unlock(&synced_mu);
	return (int)syscall(SYS_fdatasync, fd);
}

static size_t
times_synced(const char *path)
{
	char real[PATH_MAX];
	size_t c = 0;

	assert_non_null(realpath(path, real));
	for (size_t i = 0; i < nsynced; i++)
		c += strcmp(synced[i], real) == 0;
	return c;
}

static void
deliver(struct store *st, uint32_t user)
{
	struct store_delivery *d;
	struct store_delivery_result res;
	const char *msg = "Subject: x\r\n\r\nbody\r\n";

	assert_int_equal(store_delivery_new(st, &d), STORE_OK);
	assert_int_equal(store_delivery_write(d, msg, strlen(msg)), STORE_OK);
	assert_int_equal(store_delivery_add_target(d, user, 0, 0, NULL, 0, 0,
	    0), STORE_OK);
	assert_int_equal(store_delivery_commit(d, 0, &res), STORE_OK);
	store_delivery_free(&d);
}

static void
test_adding_dir_entry_synced(void **state)
{
	char dir[64], data[128], mdir[300], adding[340];
	struct store *st;
	struct store_user u;
	struct store_mailbox mb;

	(void)state;
	store_test_open(dir, data, "/tmp/test_store_sync.XXXXXX",
	    "example.test", &st);
	assert_int_equal(store_user_add(st, "u@example.test", NULL, 0, &u),
	    STORE_OK);
	deliver(st, u.id);
	assert_int_equal(store_mailbox_get(st, u.id, "INBOX", &mb), STORE_OK);
	snprintf(mdir, sizeof(mdir), "%s/mail/example.test/u/%u", data, mb.id);
	snprintf(adding, sizeof(adding), "%s/postroom-adding", mdir);
	/* A mailbox from before the staging directories: none there. */
	assert_int_equal(rmdir(adding), 0);
	nsynced = 0;
	deliver(st, u.id);
	assert_int_equal(times_synced(mdir), 1);
	/* The directory exists now: no more syncs of the mailbox. */
	nsynced = 0;
	deliver(st, u.id);
	assert_int_equal(times_synced(mdir), 0);
	store_close(&st);
	rm_tree(dir);
}

static void
test_file_and_dir_synced_at_once(void **state)
{
	char dir[64], data[128];
	struct store *st;
	struct store_user u;

	(void)state;
	store_test_open(dir, data, "/tmp/test_store_sync.XXXXXX",
	    "example.test", &st);
	assert_int_equal(store_user_add(st, "u@example.test", NULL, 0, &u),
	    STORE_OK);
	hold_files = true;
	dir_started = overlapped = false;
	deliver(st, u.id);
	hold_files = false;
	assert_true(overlapped);
	store_close(&st);
	rm_tree(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_adding_dir_entry_synced),
		cmocka_unit_test(test_file_and_dir_synced_at_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
