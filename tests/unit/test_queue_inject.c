/* The outbound tests' helper (driven by tests/proto/outbound/): puts
   messages into the queue through the store's queue API, as smtpd will, and
   lists the queue for assertions. Without arguments it runs one trivial
   cmocka test so that `make unit` is happy. With arguments:
     inject DATA_DIR SENDER RCPTS [NOTIFY [RET [ENVID]]] < message
         RCPTS: comma-separated; "addr|orcpt" gives an ORCPT. NOTIFY: "-"
         (not given), NEVER, or SUCCESS,FAILURE,DELAY. RET: "-", FULL or
         HDRS. SENDER "-" is the null sender. Prints "id <ID>".
     bulk DATA_DIR SENDER RCPT COUNT
         COUNT messages "Subject: bulk <n>" with body "tag <n>"; prints
         "id <ID> <n>" for each.
     delete|hold|release|flush DATA_DIR ID
         the admin verbs of the store (as mailctl queue ... will be).
     list DATA_DIR
         "msg <ID> <sender> <flags>" then per recipient
         "rcpt <ID> <idx> <address> <state> <attempts> <status> <flags>
         <reply>" (tab-separated), then "ok <messages>". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

static const char *state_names[] = { "pending", "inflight", "deferred",
    "sent", "failed" };

static uint32_t
parse_notify(const char *s)
{
	uint32_t n = 0;

	if (s == NULL || strcmp(s, "-") == 0)
		return 0;
	if (strstr(s, "NEVER"))
		n |= STORE_QN_NEVER;
	if (strstr(s, "SUCCESS"))
		n |= STORE_QN_SUCCESS;
	if (strstr(s, "FAILURE"))
		n |= STORE_QN_FAILURE;
	if (strstr(s, "DELAY"))
		n |= STORE_QN_DELAY;
	return n;
}

static int
do_inject(struct store *st, int argc, char **argv)
{
	struct store_queue_msg env;
	struct store_queue_rcpt *r;
	struct buf msg;
	char chunk[65536], *list, *save = NULL, *tok, idb[24];
	size_t n = 0, got;
	uint64_t id;
	enum store_err e;

	memset(&env, 0, sizeof(env));
	if (strcmp(argv[3], "-") != 0)
		str_copy(env.sender, argv[3], sizeof(env.sender));
	if (argc > 6 && strcmp(argv[6], "FULL") == 0)
		env.ret = STORE_QRET_FULL;
	else if (argc > 6 && strcmp(argv[6], "HDRS") == 0)
		env.ret = STORE_QRET_HDRS;
	if (argc > 7)
		str_copy(env.envid, argv[7], sizeof(env.envid));
	r = xcalloc(STORE_QUEUE_MAX_RCPTS, sizeof(*r));
	list = xstrdup(argv[4]);
	for (tok = strtok_r(list, ",", &save); tok != NULL &&
	    n < STORE_QUEUE_MAX_RCPTS; tok = strtok_r(NULL, ",", &save)) {
		char *bar = strchr(tok, '|');

		if (bar != NULL) {
			*bar = '\0';
			str_copy(r[n].orcpt, bar + 1, sizeof(r[n].orcpt));
		}
		str_copy(r[n].address, tok, sizeof(r[n].address));
		r[n].notify = parse_notify(argc > 5 ? argv[5] : NULL);
		n++;
	}
	free(list);
	buf_init(&msg);
	while ((got = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		buf_append(&msg, chunk, got);
	e = store_queue_add(st, msg.data != NULL ? msg.data : "", msg.len, &env,
	    r, n, &id);
	buf_free(&msg);
	free(r);
	if (e != STORE_OK) {
		fprintf(stderr, "inject: %s\n", store_last_error());
		return 1;
	}
	store_queue_id_str(id, idb, sizeof(idb));
	printf("id %s\n", idb);
	return 0;
}

static int
do_bulk(struct store *st, char **argv)
{
	struct store_queue_msg env;
	struct store_queue_rcpt r;
	int count = atoi(argv[5]);

	memset(&env, 0, sizeof(env));
	str_copy(env.sender, argv[3], sizeof(env.sender));
	memset(&r, 0, sizeof(r));
	str_copy(r.address, argv[4], sizeof(r.address));
	for (int i = 0; i < count; i++) {
		char *m = xasprintf("From: <%s>\r\nTo: <%s>\r\nSubject: bulk %d\r\n"
		    "\r\ntag %d\r\n", argv[3], argv[4], i, i);
		uint64_t id;
		char idb[24];

		if (store_queue_add(st, m, strlen(m), &env, &r, 1, &id) !=
		    STORE_OK) {
			fprintf(stderr, "bulk: %s\n", store_last_error());
			free(m);
			return 1;
		}
		free(m);
		store_queue_id_str(id, idb, sizeof(idb));
		printf("id %s %d\n", idb, i);
	}
	return 0;
}

static void
clean(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '\t' || *s == '\n' || *s == '\r')
			*s = ' ';
}

static int
list_cb(void *arg, const struct store_queue_msg *m,
    const struct store_queue_rcpt *r, size_t n)
{
	char idb[24];

	(*(unsigned *)arg)++;
	store_queue_id_str(m->id, idb, sizeof(idb));
	printf("msg\t%s\t%s\t%u\n", idb, m->sender[0] ? m->sender : "<>",
	    m->flags);
	for (size_t i = 0; i < n; i++) {
		char reply[STORE_QUEUE_REPLY_MAX + 1];

		str_copy(reply, r[i].reply, sizeof(reply));
		clean(reply);
		printf("rcpt\t%s\t%u\t%s\t%s\t%u\t%s\t%u\t%s\n", idb, r[i].idx,
		    r[i].address, r[i].state < 5 ? state_names[r[i].state] :
		    "?", r[i].attempts, r[i].status[0] ? r[i].status : "-",
		    r[i].flags, reply);
	}
	return 0;
}

static void
test_nothing(void **state)
{
	(void)state;
}

int
main(int argc, char **argv)
{
	struct store *st;
	unsigned count = 0;
	int rc;

	if (argc < 3) {
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_nothing),
		};

		return cmocka_run_group_tests(tests, NULL, NULL);
	}
	if (store_open(argv[2], &st) != STORE_OK) {
		fprintf(stderr, "store_open: %s\n", store_last_error());
		return 1;
	}
	if (strcmp(argv[1], "inject") == 0 && argc >= 5)
		rc = do_inject(st, argc, argv);
	else if (strcmp(argv[1], "bulk") == 0 && argc >= 6)
		rc = do_bulk(st, argv);
	else if (argc >= 4 && (strcmp(argv[1], "delete") == 0 ||
	    strcmp(argv[1], "hold") == 0 || strcmp(argv[1], "release") == 0 ||
	    strcmp(argv[1], "flush") == 0)) {
		uint64_t id;
		enum store_err e;

		if (store_queue_id_parse(argv[3], &id) < 0) {
			fprintf(stderr, "bad ID\n");
			rc = 2;
		} else {
			e = strcmp(argv[1], "delete") == 0 ?
			    store_queue_delete(st, id) :
			    strcmp(argv[1], "hold") == 0 ? store_queue_hold(st, id) :
			    strcmp(argv[1], "release") == 0 ?
			    store_queue_release(st, id) : store_queue_flush(st, id);
			if (e != STORE_OK)
				fprintf(stderr, "%s: %s\n", argv[1],
				    store_last_error());
			rc = e == STORE_OK ? 0 : 1;
		}
	} else if (strcmp(argv[1], "list") == 0) {
		rc = store_queue_list(st, list_cb, &count) == STORE_OK ? 0 : 1;
		printf("ok %u\n", count);
	} else {
		fprintf(stderr, "usage: see the comment at the top\n");
		rc = 2;
	}
	store_close(&st);
	return rc;
}
