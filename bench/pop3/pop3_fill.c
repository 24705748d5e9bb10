/* pop3_fill: fills a store for the pop3d benchmark straight through
   libstore (no SMTP in the way): domain bench.test, user big@bench.test
   with NBIG messages of SIZE bytes, and users p1..pNPAR@bench.test with
   NPER messages each (one delivery hard-linked to every pN, as smtpd does
   for several local recipients). All users get the password given.
   Deliveries run on several threads so the store's group commit batches
   the fsyncs. Not a daemon: exits 1 with a message on any error. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "store.h"
#include "util.h"

#define THREADS 16

static struct store *st;
static unsigned nbig, npar, nper, msg_size;
static uint32_t big_id;
static uint32_t *par_ids;
static unsigned next_job;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void
die(const char *what, enum store_err e)
{
	fprintf(stderr, "pop3_fill: %s: %s (%s)\n", what, store_err_str(e),
	    store_last_error());
	exit(1);
}

/* A message of exactly msg_size bytes with CRLF lines, some starting with
   a dot so that RETR has stuffing to do. */
static void
make_msg(struct buf *b, unsigned n)
{
	unsigned line = 0;

	buf_reset(b);
	buf_printf(b, "From: Bench <bench@bench.test>\r\nTo: you@bench.test\r\n"
	    "Subject: bench message %u\r\nMessage-ID: <%u@bench.test>\r\n\r\n",
	    n, n);
	while (b->len + 2 < msg_size) {
		size_t room = msg_size - b->len - 2;
		size_t want = room < 72 ? room : 72;
		size_t i;

		for (i = 0; i < want; i++)
			buf_putc(b, i == 0 && line % 10 == 0 ? '.' :
			    (char)('a' + (i + line + n) % 26));
		buf_puts(b, "\r\n");
		line++;
	}
	while (b->len < msg_size)
		buf_putc(b, b->len + 1 == msg_size ? '\n' : '\r');
}

static void
deliver_one(struct buf *b, unsigned n, bool par)
{
	struct store_delivery *d;
	enum store_err e;
	unsigned i;

	make_msg(b, n);
	if ((e = store_delivery_new(st, &d)) != STORE_OK)
		die("delivery_new", e);
	if ((e = store_delivery_write(d, b->data, b->len)) != STORE_OK)
		die("delivery_write", e);
	if (par) {
		for (i = 0; i < npar; i++) {
			e = store_delivery_add_target(d, par_ids[i], 0, 0,
			    NULL, 0, 0, 0);
			if (e != STORE_OK)
				die("add_target", e);
		}
	} else if ((e = store_delivery_add_target(d, big_id, 0, 0, NULL, 0, 0,
	    0)) != STORE_OK) {
		die("add_target", e);
	}
	if ((e = store_delivery_commit(d, STORE_DELIVER_NOQUOTA, NULL)) !=
	    STORE_OK)
		die("commit", e);
	store_delivery_free(&d);
}

static void *
worker(void *arg)
{
	struct buf b;

	buf_init(&b);
	for (;;) {
		unsigned j;

		pthread_mutex_lock(&mu);
		j = next_job++;
		pthread_mutex_unlock(&mu);
		if (j >= nbig + nper)
			break;
		if (j < nbig)
			deliver_one(&b, j + 1, false);
		else
			deliver_one(&b, j - nbig + 1, true);
	}
	buf_free(&b);
	return NULL;
}

static uint32_t
add_user(const char *addr, const char *hash)
{
	struct store_user u;
	enum store_err e;

	e = store_user_add(st, addr, hash, 0, &u);
	if (e != STORE_OK)
		die(addr, e);
	return u.id;
}

int
main(int argc, char **argv)
{
	char hash[PW_HASH_MAX], addr[64];
	pthread_t th[THREADS];
	enum store_err e;
	unsigned i;

	if (argc != 7) {
		fprintf(stderr, "usage: pop3_fill DATA_DIR PASSWORD NBIG SIZE "
		    "NPAR NPER\n");
		return 2;
	}
	nbig = (unsigned)atoi(argv[3]);
	msg_size = (unsigned)atoi(argv[4]);
	npar = (unsigned)atoi(argv[5]);
	nper = (unsigned)atoi(argv[6]);
	if (msg_size < 256 || npar > 1000) {
		fprintf(stderr, "pop3_fill: SIZE >= 256, NPAR <= 1000\n");
		return 2;
	}
	if ((e = store_open(argv[1], &st)) != STORE_OK)
		die("store_open", e);
	if (pw_hash(argv[2], hash) < 0) {
		fprintf(stderr, "pop3_fill: pw_hash failed\n");
		return 1;
	}
	if ((e = store_domain_add(st, "bench.test")) != STORE_OK)
		die("domain_add", e);
	big_id = add_user("big@bench.test", hash);
	par_ids = xcalloc(npar ? npar : 1, sizeof(*par_ids));
	for (i = 0; i < npar; i++) {
		snprintf(addr, sizeof(addr), "p%u@bench.test", i + 1);
		par_ids[i] = add_user(addr, hash);
	}
	for (i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	free(par_ids);
	store_close(&st);
	return 0;
}
