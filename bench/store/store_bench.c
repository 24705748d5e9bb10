/* store_bench: durable deliveries per second through the store API, with 1
   and 16 writer threads, 1 KiB and 100 KiB messages, group commit on and
   off. Each configuration runs for a fixed time in a fresh data dir; a
   delivery counts once store_delivery_commit returned (fsync'd file and
   directory, LMDB commit). Usage: store_bench [BASE_DIR] [SECONDS]
   store_bench list BASE_DIR [N]: fills a mailbox with N messages (default
   100000) and times the FLAGS listing (store_msg_list of 1:*), i.e. the
   store's part of SELECT + UID FETCH 1:* (FLAGS). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

static struct store *st;
static uint32_t user_id;
static atomic_bool stop;
static atomic_ulong done, failed;
static size_t msg_size;
static double avg_batch;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
writer(void *arg)
{
	char *body = malloc(msg_size);
	size_t hdr;

	(void)arg;
	hdr = (size_t)snprintf(body, msg_size,
	    "From: bench@example.test\r\nTo: u@example.test\r\n"
	    "Subject: bench\r\n\r\n");
	for (size_t i = hdr; i < msg_size; i++)
		body[i] = (i % 64 == 63) ? '\n' : 'a' + (char)(i % 26);
	while (!atomic_load(&stop)) {
		struct store_delivery *d;
		if (store_delivery_new(st, &d) != STORE_OK) {
			atomic_fetch_add(&failed, 1);
			continue;
		}
		if (store_delivery_write(d, body, msg_size) == STORE_OK &&
		    store_delivery_add_target(d, user_id, 0, 0, NULL, 0, 0,
		    0) == STORE_OK &&
		    store_delivery_commit(d, STORE_DELIVER_NOQUOTA, NULL) ==
		    STORE_OK)
			atomic_fetch_add(&done, 1);
		else
			atomic_fetch_add(&failed, 1);
		store_delivery_free(&d);
	}
	free(body);
	return NULL;
}

static double
run_one(const char *base, int threads, size_t size, bool group, double secs)
{
	char dir[512], cmd[600];
	pthread_t th[64];
	struct store_user u;
	double t0, t1;

	snprintf(dir, sizeof(dir), "%s/store-bench.XXXXXX", base);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	if (store_open(dir, &st) != STORE_OK ||
	    store_domain_add(st, "example.test") != STORE_OK ||
	    store_user_add(st, "u@example.test", "x", 0, &u) != STORE_OK) {
		fprintf(stderr, "setup: %s\n", store_last_error());
		exit(1);
	}
	user_id = u.id;
	store_set_group_commit(st, group);
	msg_size = size;
	atomic_store(&stop, false);
	atomic_store(&done, 0);
	atomic_store(&failed, 0);
	t0 = now();
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, writer, NULL);
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&stop, true);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	t1 = now();
	uint64_t batches, commits;
	store_group_commit_stats(st, &batches, &commits);
	avg_batch = batches ? (double)commits / batches : 1.0;
	store_close(&st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	if (atomic_load(&failed) > 0)
		fprintf(stderr, "%lu deliveries failed\n", atomic_load(&failed));
	return atomic_load(&done) / (t1 - t0);
}

static int
bench_list(const char *base, unsigned long n)
{
	char dir[512], cmd[600], body[1024];
	struct store_user u;
	struct store_mailbox mb;
	struct store_msg *msgs;
	size_t cnt, len;
	double t0, best = 1e9;

	snprintf(dir, sizeof(dir), "%s/store-bench.XXXXXX", base);
	if (mkdtemp(dir) == NULL || store_open(dir, &st) != STORE_OK ||
	    store_domain_add(st, "example.test") != STORE_OK ||
	    store_user_add(st, "u@example.test", "x", 0, &u) != STORE_OK) {
		fprintf(stderr, "setup: %s\n", store_last_error());
		return 1;
	}
	len = (size_t)snprintf(body, sizeof(body),
	    "From: a@example.test\r\nSubject: list bench\r\n\r\nhello\r\n");
	t0 = now();
	/* 1000 targets per delivery: hard links of one file, one commit. */
	for (unsigned long done_n = 0; done_n < n;) {
		struct store_delivery *d;
		unsigned long k = n - done_n < 1000 ? n - done_n : 1000;
		if (store_delivery_new(st, &d) != STORE_OK ||
		    store_delivery_write(d, body, len) != STORE_OK)
			return 1;
		for (unsigned long i = 0; i < k; i++)
			store_delivery_add_target(d, u.id, 0,
			    i % 3 ? STORE_F_SEEN : 0, NULL, 0, 0, 0);
		if (store_delivery_commit(d, 0, NULL) != STORE_OK) {
			fprintf(stderr, "commit: %s\n", store_last_error());
			return 1;
		}
		store_delivery_free(&d);
		done_n += k;
	}
	printf("filled %lu messages in %.1f s\n", n, now() - t0);
	/* What imapd's SELECT asks of the store, with a cold page cache
	   when we may drop it (root): the record, \Recent, the list. */
	{
		uint32_t first;
		double t1, t2, t3;
		FILE *dc;
		sync();
		dc = fopen("/proc/sys/vm/drop_caches", "w");
		if (dc != NULL) {
			fputs("3\n", dc);
			fclose(dc);
		}
		t0 = now();
		if (store_mailbox_get(st, u.id, "INBOX", &mb) != STORE_OK)
			return 1;
		t1 = now();
		if (store_mailbox_claim_recent(st, mb.id, &first) != STORE_OK)
			return 1;
		t2 = now();
		if (store_msg_list(st, mb.id, 0, 0, &msgs, &cnt, &mb) != STORE_OK)
			return 1;
		t3 = now();
		free(msgs);
		printf("select%s: mailbox_get %.1f ms, claim_recent %.1f ms, "
		    "msg_list %.1f ms\n", dc ? " (cold)" : "", (t1 - t0) * 1000,
		    (t2 - t1) * 1000, (t3 - t2) * 1000);
	}
	for (int r = 0; r < 5; r++) {
		t0 = now();
		if (store_mailbox_get(st, u.id, "INBOX", &mb) != STORE_OK ||
		    store_msg_list(st, mb.id, 1, 0, &msgs, &cnt, &mb) !=
		    STORE_OK)
			return 1;
		free(msgs);
		if (now() - t0 < best)
			best = now() - t0;
	}
	printf("store_msg_list 1:* of %zu messages: %.1f ms (best of 5)\n",
	    cnt, best * 1000);
	/* What every selected session asks after another's flag change:
	   "changed since M" with 10 of the N messages changed. */
	{
		struct store_flag_change ch10[10];
		uint64_t since = mb.highestmodseq;
		memset(ch10, 0, sizeof(ch10));
		for (int i = 0; i < 10; i++)
			ch10[i].uid = (uint32_t)(1 + i * (cnt / 10));
		if (store_msg_set_flags(st, mb.id, STORE_FLAGS_ADD,
		    STORE_F_FLAGGED, NULL, 0, 0, ch10, 10) != STORE_OK)
			return 1;
		best = 1e9;
		for (int r = 0; r < 5; r++) {
			t0 = now();
			if (store_msg_list(st, mb.id, 0, since, &msgs, &cnt, NULL) !=
			    STORE_OK)
				return 1;
			free(msgs);
			if (now() - t0 < best)
				best = now() - t0;
		}
		printf("store_msg_list changed-since (%zu changed): %.3f ms "
		    "(best of 5)\n", cnt, best * 1000);
		cnt = n;
	}
	/* Per-message costs of a header fetch: open the file, or (with the
	   header cache) read the header from the index. */
	{
		unsigned long k = n < 20000 ? n : 20000;
		t0 = now();
		for (unsigned long i = 1; i <= k; i++) {
			int fd;
			if (store_msg_open(st, mb.id, (uint32_t)i, &fd) != STORE_OK)
				return 1;
			close(fd);
		}
		printf("store_msg_open: %.2f us per message (%lu)\n",
		    (now() - t0) * 1e6 / k, k);
#ifdef STORE_HEADER_CACHE_MAX
		struct buf hb;
		buf_init(&hb);
		t0 = now();
		for (unsigned long i = 1; i <= k; i++)
			if (store_msg_header_get(st, mb.id, (uint32_t)i, &hb) !=
			    STORE_OK)
				return 1;
		printf("store_msg_header_get: %.2f us per message (%lu)\n",
		    (now() - t0) * 1e6 / k, k);
		buf_free(&hb);
#endif
	}
	/* "Mark all as read": one transaction, a rename per changed file. */
	struct store_flag_change *ch = calloc(cnt, sizeof(*ch));
	for (size_t i = 0; i < cnt; i++)
		ch[i].uid = (uint32_t)i + 1;
	t0 = now();
	if (store_msg_set_flags(st, mb.id, STORE_FLAGS_ADD, STORE_F_SEEN, NULL,
	    0, 0, ch, cnt) != STORE_OK)
		return 1;
	size_t changed = 0;
	for (size_t i = 0; i < cnt; i++)
		changed += ch[i].changed;
	printf("store_msg_set_flags +\\Seen on 1:* (%zu changed): %.1f ms\n",
	    changed, (now() - t0) * 1000);
	free(ch);
	store_close(&st);
	if (getenv("STORE_BENCH_KEEP") != NULL) {
		printf("kept %s\n", dir);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "list") == 0)
		return bench_list(argc > 2 ? argv[2] : "/tmp",
		    argc > 3 ? strtoul(argv[3], NULL, 10) : 100000);
	const char *base = argc > 1 ? argv[1] : "/tmp";
	double secs = argc > 2 ? atof(argv[2]) : 3.0;
	static const int threads[] = { 1, 16 };
	static const size_t sizes[] = { 1024, 100 * 1024 };

	printf("%-8s %-8s %-6s %12s %10s %10s\n", "threads", "size", "group",
	    "deliveries/s", "MiB/s", "avg batch");
	for (size_t s = 0; s < 2; s++)
		for (size_t t = 0; t < 2; t++)
			for (int g = 1; g >= 0; g--) {
				double r = run_one(base, threads[t], sizes[s],
				    g, secs);
				printf("%-8d %-8zu %-6s %12.0f %10.1f %10.1f\n",
				    threads[t], sizes[s], g ? "on" : "off", r,
				    r * sizes[s] / 1048576.0, avg_batch);
				fflush(stdout);
			}
	return 0;
}
