/* imap_names: see imap_names.h. The queue is the process's (loop thread
   only): mailbox ids in order, the head being caught up. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "util.h"
#include "worker.h"

#include "imap_names.h"

static struct {
	uint32_t *ids;
	size_t n;
	bool running;       /* a batch of ids[0] is on the pool */
	bool again;         /* ids[0] was written to meanwhile */
} q;

struct batch {
	struct daemon *d;
	uint32_t mbox_id;
	enum store_err err;
	char why[256];      /* store_last_error() is the worker thread's */
	bool more;
};

static void
batch_work(void *arg)
{
	struct batch *b = arg;

	b->err = store_names_catch_up(b->d->store, b->mbox_id,
	    IMAP_NAMES_BATCH, &b->more);
	if (b->err != STORE_OK)
		str_copy(b->why, store_last_error(), sizeof(b->why));
}

static void batch_done(void *arg);

static void
batch_submit(struct daemon *d)
{
	struct batch *b = xcalloc(1, sizeof(*b));

	b->d = d;
	b->mbox_id = q.ids[0];
	q.running = true;
	q.again = false;
	worker_submit(d->workers, batch_work, batch_done, b);
}

static void
batch_done(void *arg)
{
	struct batch *b = arg;
	struct daemon *d = b->d;

	q.running = false;
	if (b->err != STORE_OK)
		log_warnx("names of mailbox %u: %s", b->mbox_id, b->why);
	if (b->err != STORE_OK || (!b->more && !q.again)) {
		memmove(q.ids, q.ids + 1, (q.n - 1) * sizeof(*q.ids));
		q.n--;
	}
	free(b);
	/* Outside the loop the pool is being freed (the daemon stops): no
	   more batches then; the next start takes over. */
	if (q.n > 0 && ev_depth(d->loop) > 0) {
		batch_submit(d);
		return;
	}
	free(q.ids);
	q.ids = NULL;
	q.n = 0;
}

void
imap_names_schedule(struct daemon *d, uint32_t mbox_id)
{
	for (size_t i = 0; i < q.n; i++) {
		if (q.ids[i] != mbox_id)
			continue;
		/* The running batch may have looked before this write. */
		if (i == 0 && q.running)
			q.again = true;
		return;
	}
	q.ids = xrealloc(q.ids, (q.n + 1) * sizeof(*q.ids));
	q.ids[q.n++] = mbox_id;
	if (!q.running)
		batch_submit(d);
}

struct pending_job {
	struct daemon *d;
	uint32_t *ids;
	size_t n;
	enum store_err err;
	char why[256];
};

static void
pending_work(void *arg)
{
	struct pending_job *j = arg;

	j->err = store_names_pending(j->d->store, &j->ids, &j->n);
	if (j->err != STORE_OK)
		str_copy(j->why, store_last_error(), sizeof(j->why));
}

static void
pending_done(void *arg)
{
	struct pending_job *j = arg;

	if (j->err != STORE_OK)
		log_warnx("names catch-up: %s", j->why);
	for (size_t i = 0; i < j->n && ev_depth(j->d->loop) > 0; i++)
		imap_names_schedule(j->d, j->ids[i]);
	free(j->ids);
	free(j);
}

int
imap_names_start(struct daemon *d, char *err, size_t errlen)
{
	struct pending_job *j = xcalloc(1, sizeof(*j));

	(void)err;
	(void)errlen;
	j->d = d;
	worker_submit(d->workers, pending_work, pending_done, j);
	return 0;
}
