/* The store crash test's helper (driven by tests/proto/store/
   test_store_crash.py). Without arguments it runs one trivial cmocka test so
   that `make unit` is happy. With arguments:
     setup DATA_DIR ADDRESS            create the domain and the user
     deliver DATA_DIR ADDRESS THREADS  deliver until killed; after each
                                       commit returns, print
                                       "committed <uid> <tag>"
     check DATA_DIR ADDRESS            open the store, print "msg <uid> <tag>"
                                       for every INBOX message (tag read
                                       from the file), then "ok <n>"
     reindex DATA_DIR ADDRESS          store_reindex_user, print the stats */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "store.h"
#include "util.h"

static struct store *st;
static uint32_t user_id;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void *
deliver_thread(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	char body[2048];

	for (unsigned i = 0; ; i++) {
		struct store_delivery *d;
		struct store_delivery_result res;
		char tag[64];
		int len;

		snprintf(tag, sizeof(tag), "p%dt%ui%u", (int)getpid(), t, i);
		len = snprintf(body, sizeof(body),
		    "From: crash@example.test\nSubject: %s\nX-Tag: %s\n\n"
		    "%0900d\n", tag, tag, 0);
		if (store_delivery_new(st, &d) != STORE_OK)
			continue;
		if (store_delivery_write(d, body, (size_t)len) == STORE_OK &&
		    store_delivery_add_target(d, user_id, 0, 0, NULL, 0, 0,
		    0) == STORE_OK &&
		    store_delivery_commit(d, 0, &res) == STORE_OK) {
			pthread_mutex_lock(&out_mu);
			printf("committed %u %s\n", res.uid, tag);
			fflush(stdout);
			pthread_mutex_unlock(&out_mu);
		}
		store_delivery_free(&d);
	}
	return NULL;
}

static int
find_tag(int fd, char *tag, size_t size)
{
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	char *p, *end;

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if ((p = strstr(buf, "X-Tag: ")) == NULL)
		return -1;
	p += 7;
	end = strstr(p, "\r\n");
	if (end == NULL || (size_t)(end - p) >= size)
		return -1;
	memcpy(tag, p, (size_t)(end - p));
	tag[end - p] = '\0';
	return 0;
}

static int
run_check(void)
{
	struct store_mailbox mb;
	struct store_msg *msgs;
	size_t n;
	int bad = 0;

	if (store_mailbox_get(st, user_id, "INBOX", &mb) != STORE_OK)
		return 1;
	if (store_msg_list(st, mb.id, 1, 0, &msgs, &n, &mb) != STORE_OK)
		return 1;
	for (size_t i = 0; i < n; i++) {
		char tag[64];
		int fd;
		if (store_msg_open(st, mb.id, msgs[i].uid, &fd) != STORE_OK) {
			printf("missing %u\n", msgs[i].uid);
			bad++;
			continue;
		}
		if (find_tag(fd, tag, sizeof(tag)) < 0)
			str_copy(tag, "?", sizeof(tag));
		close(fd);
		printf("msg %u %s\n", msgs[i].uid, tag);
	}
	if (mb.messages != n || (n > 0 && mb.uidnext <= msgs[n - 1].uid)) {
		printf("counters wrong: messages %u n %zu uidnext %u\n",
		    mb.messages, n, mb.uidnext);
		bad++;
	}
	free(msgs);
	printf("ok %zu\n", n);
	return bad ? 1 : 0;
}

static void
test_trivial(void **state)
{
	(void)state;
	assert_string_equal(store_err_str(STORE_OK), "ok");
}

int
main(int argc, char **argv)
{
	struct store_user u;
	int ret = 0;

	if (argc < 2) {
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_trivial),
		};
		return cmocka_run_group_tests(tests, NULL, NULL);
	}
	if (argc < 4) {
		fprintf(stderr, "usage: %s setup|deliver|check|reindex DIR ADDR"
		    " [THREADS]\n", argv[0]);
		return 2;
	}
	if (store_open(argv[2], &st) != STORE_OK) {
		fprintf(stderr, "open: %s\n", store_last_error());
		return 1;
	}
	if (strcmp(argv[1], "setup") == 0) {
		char h[PW_HASH_MAX];
		const char *dom = strchr(argv[3], '@');
		if (dom == NULL || pw_hash("x", h) < 0 ||
		    store_domain_add(st, dom + 1) != STORE_OK ||
		    store_user_add(st, argv[3], h, 0, NULL) != STORE_OK) {
			fprintf(stderr, "setup: %s\n", store_last_error());
			ret = 1;
		}
	} else if (store_user_get(st, argv[3], &u) != STORE_OK) {
		fprintf(stderr, "no user: %s\n", store_last_error());
		ret = 1;
	} else if (strcmp(argv[1], "deliver") == 0) {
		int nthreads = argc > 4 ? atoi(argv[4]) : 16;
		pthread_t th[64];
		user_id = u.id;
		if (nthreads < 1 || nthreads > 64)
			nthreads = 16;
		for (int i = 0; i < nthreads; i++)
			pthread_create(&th[i], NULL, deliver_thread,
			    (void *)(uintptr_t)i);
		for (;;)
			pause();   /* until SIGKILL */
	} else if (strcmp(argv[1], "check") == 0) {
		user_id = u.id;
		ret = run_check();
	} else if (strcmp(argv[1], "reindex") == 0) {
		struct store_reindex_stats s;
		if (store_reindex_user(st, argv[3], &s) != STORE_OK) {
			fprintf(stderr, "reindex: %s\n", store_last_error());
			ret = 1;
		} else {
			printf("reindex %u %u %u\n", s.mailboxes, s.messages,
			    s.recovered);
		}
	} else {
		ret = 2;
	}
	store_close(&st);
	return ret;
}
