/* engine: mtad's scheduler. Walks the queue's schedule, groups each
   message's waiting recipients by destination domain (at most 50 per
   transaction), resolves the MX hosts, runs SMTP attempts within the
   connection bounds, commits each recipient's result as soon as it is known,
   computes retries, and sends the DSNs (delayed, failed, delivered/relayed).
   Store writes (marking an attempt's recipients in flight, results, DSNs,
   removal) run on the worker pool, in order, one at a time; only the
   schedule's reads are made on the loop thread. A connection goes on to
   its next transaction while the previous one's results are committed. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "dsn.h"
#include "log.h"
#include "mtad.h"
#include "util.h"
#include "worker.h"

#define SCAN_MAX        4096    /* messages read per schedule scan */
#define BACKOFF_MAX     1024    /* domains remembered as unreachable */
#define DSN_FULL_MAX    (10u << 20)
#define ACTIVE_BUCKETS  4096
/* A queue file up to this size is read into memory: for small messages a
   read costs less than mapping (and unmapping, with the worker threads
   around) does. */
#define READ_MAX        (256u << 10)

#ifdef POSTROOM_TEST_HOOKS
/* Test builds only: POSTROOM_TEST_CRASH=<point> kills mtad there as a
   kill -9 would, so the crash tests hit the instant they are about. */
static void
crash_point(const char *point)
{
	const char *v = getenv("POSTROOM_TEST_CRASH");

	if (v != NULL && strcmp(v, point) == 0)
		raise(SIGKILL);
}

/* Test builds only: a point named in POSTROOM_TEST_FAIL (a list) fails
   once, as a store write refused by LMDB (MDB_MAP_FULL) would. */
static bool
fail_point(const char *point, bool *fired)
{
	const char *v = getenv("POSTROOM_TEST_FAIL");

	if (*fired || v == NULL || strstr(v, point) == NULL)
		return false;
	*fired = true;
	return true;
}
#else
#define crash_point(point) ((void)(point))
#define fail_point(point, fired) ((void)(point), (void)(fired), false)
#endif

struct qmsg;

/* A connection's transactions whose results are not committed yet (a
   kill -9 now would send them again). It takes another transaction only
   while this is under CONN_UNCOMMITTED_MAX, so a transaction may run while
   the previous one's results are being committed, never more. Shared by
   the connection (idle or running) and its groups; freed with the last. */
#define CONN_UNCOMMITTED_MAX    2
struct conn_state {
	struct engine *e;
	char domain[DNS_NAME_SIZE];
	unsigned uncommitted;
	unsigned refs;
	struct conn_state *next;    /* the engine's, all alive */
};

/* The recipients of one message for one destination, one attempt. */
struct group {
	struct engine *e;
	struct qmsg *qm;
	char domain[DNS_NAME_SIZE];
	uint32_t dhash;             /* of domain, case-folded */
	size_t n;
	struct smtp_job *job;
	struct conn_state *cs;      /* its connection's, once it has one */
	/* Its connection went on to another transaction (or to the idle
	   list) before its results were committed: it no longer counts
	   among the running. */
	bool released;
	bool resolving, cancelled;
	struct group *next;         /* in the wait list or the running list */
	struct group **prevp;
	/* Only the n it has: a full array for every group made the scan of a
	   large queue spend its time clearing memory. */
	struct job_rcpt rcpts[];
};

/* A message being worked on. */
struct qmsg {
	struct engine *e;
	uint64_t id;
	char qid[24];
	struct store_queue_msg msg;
	struct store_queue_rcpt *rcpts;
	size_t n;
	void *map;                  /* mmap'd, or (heap) read in */
	size_t maplen;
	bool heap;
	struct job_msg jm;
	unsigned groups;            /* groups not finished */
	struct qmsg *next, **prevp; /* the engine's active list */
	struct qmsg *hnext;         /* in the engine's byid bucket */
};

/* A connection parked after a transaction, for the next message to the
   same destination (smtp_job_next) until MTAD_IDLE_SECONDS pass. */
struct idle_conn {
	struct engine *e;
	struct smtp_job *job;
	struct conn_state *cs;
	char domain[DNS_NAME_SIZE];
	ev_timer timer;
	struct idle_conn *next;
};

/* A destination that failed lately: one connection at a time to it until
   a transaction gets through (slow start, as Postfix lowers a failing
   destination's concurrency), so a host coming back is not met with all
   the queue at once. */
struct slow_dest {
	char domain[DNS_NAME_SIZE];
	int64_t since;
};

struct backoff {
	char domain[DNS_NAME_SIZE];
	int64_t until;
	char status[16];
	char reason[256];
};

struct engine {
	struct mtad *m;
	ev_timer timer;
	ev_idle rescan;
	/* start_waiting before the loop next waits: a batch of commits
	   ending many groups makes one pass over the waiting groups, not
	   one each. */
	ev_prepare start_soon;
	struct qmsg *active;
	/* The active messages by id: the scan asks for each due one. */
	struct qmsg *byid[ACTIVE_BUCKETS];
	struct group *waiting;      /* FIFO */
	/* Its last group's next (or &waiting): appending a group to a long
	   wait list walked all of it. */
	struct group **wait_tailp;
	struct group *running;
	unsigned nrunning;
	struct idle_conn *idle;     /* oldest first */
	struct conn_state *conns;
	unsigned nidle;
	bool starting, start_again;     /* start_waiting is running */
	struct backoff backoff[BACKOFF_MAX];
	size_t nbackoff;
	struct slow_dest slow[BACKOFF_MAX];
	size_t nslow;
	struct group **begin;       /* made by this scan, for WOP_BEGIN */
	size_t nbegin, capbegin;
	bool stopping;
	struct wop *wq_head, *wq_tail;  /* store writes waiting, FIFO */
	struct wop *wq_results;     /* the one WOP_RESULTS waiting, or NULL */
	bool wq_busy;               /* one is running */
	bool wq_kicking;
	/* Recipients whose results could not be committed and that could
	   not be put back to be retried either: tried again before every
	   later store write. Touched only by the store writes, which run one
	   at a time. */
	struct store_queue_result_item *unreleased;
	size_t nunreleased;
};

static void schedule_scan(struct engine *e);
static void group_queue(struct engine *e, struct group *g);
static void start_waiting(struct engine *e);
static void idle_add(struct engine *e, const char *domain,
    struct smtp_job *job, struct conn_state *cs);
static void group_start(struct group *g);
static void qmsg_settle(struct qmsg *qm, bool rescan);

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

/* FNV-1a of the lower-cased name: a cheap first test before strcasecmp. */
static uint32_t
domain_hash(const char *d)
{
	uint32_t h = 2166136261u;

	for (; *d != '\0'; d++) {
		unsigned char c = (unsigned char)*d;

		h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32 : c)) * 16777619u;
	}
	return h;
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* ---- backoff of unreachable domains ---- */

static struct backoff *
backoff_find(struct engine *e, const char *domain, int64_t now)
{
	for (size_t i = 0; i < e->nbackoff; i++) {
		struct backoff *b = &e->backoff[i];

		if (b->until <= now) {
			e->backoff[i] = e->backoff[--e->nbackoff];
			i--;
			continue;
		}
		if (strcasecmp(b->domain, domain) == 0)
			return b;
	}
	return NULL;
}

static void
backoff_set(struct engine *e, const char *domain, int64_t until,
    const char *status, const char *reason)
{
	struct backoff *b = backoff_find(e, domain, now_s());

	if (b == NULL) {
		if (e->nbackoff == BACKOFF_MAX)
			return;
		b = &e->backoff[e->nbackoff++];
	}
	str_copy(b->domain, domain, sizeof(b->domain));
	b->until = until;
	str_copy(b->status, status, sizeof(b->status));
	str_copy(b->reason, reason, sizeof(b->reason));
}

/* ---- slow start ---- */

static struct slow_dest *
slow_find(struct engine *e, const char *domain)
{
	for (size_t i = 0; i < e->nslow; i++)
		if (strcasecmp(e->slow[i].domain, domain) == 0)
			return &e->slow[i];
	return NULL;
}

static void
slow_set(struct engine *e, const char *domain)
{
	struct slow_dest *s = slow_find(e, domain);

	if (s != NULL)
		return;
	if (e->nslow == BACKOFF_MAX) {
		/* Full: the oldest entry goes. */
		size_t old = 0;

		for (size_t i = 1; i < e->nslow; i++)
			if (e->slow[i].since < e->slow[old].since)
				old = i;
		e->slow[old] = e->slow[--e->nslow];
	}
	s = &e->slow[e->nslow++];
	str_copy(s->domain, domain, sizeof(s->domain));
	s->since = now_s();
	log_info("mtad slow-start domain=%s connections=1", domain);
}

static void
slow_clear(struct engine *e, const char *domain)
{
	struct slow_dest *s = slow_find(e, domain);

	if (s == NULL)
		return;
	log_info("mtad slow-start-end domain=%s connections=%u", domain,
	    e->m->cfg->outbound_max_per_destination);
	*s = e->slow[--e->nslow];
}

/* ---- results ---- */

static int64_t
retry_time(struct engine *e, const struct qmsg *qm, uint32_t attempts,
    int64_t now)
{
	const struct config *c = e->m->cfg;
	double age = (double)(now - qm->msg.arrival);
	double d = dsn_retry_delay(attempts, age < 0 ? 0 : age,
	    c->queue_retry_min, c->queue_retry_max,
	    randombytes_uniform(1000) / 1000.0);
	int64_t t = now + (int64_t)(d + 0.5), end;

	if (t <= now)
		t = now + 1;
	/* The last try comes at the lifetime, so the bounce is on time. */
	end = qm->msg.arrival + (int64_t)c->queue_lifetime;
	if (t > end && end > now)
		t = end;
	return t;
}

static struct store_queue_rcpt *
qrcpt(struct qmsg *qm, uint32_t idx)
{
	return idx < qm->n ? &qm->rcpts[idx] : NULL;
}

static void
log_result(struct qmsg *qm, const char *addr, const char *remote,
    const char *tls, enum store_queue_state st, const char *status,
    const char *reply, int64_t now)
{
	char esc[LOG_ESCAPE_SIZE * 4], ea[LOG_ESCAPE_SIZE];
	const char *word = st == STORE_QS_SENT ? "sent" :
	    st == STORE_QS_DEFERRED ? "deferred" : "bounced";

	log_escape(reply != NULL ? reply : "", reply != NULL ? strlen(reply) :
	    0, esc, sizeof(esc));
	log_escape(addr, strlen(addr), ea, sizeof(ea));
	log_info("mtad %s delivery rcpt=%s relay=%s delay=%llds tls=%s "
	    "status=%s dsn=%s reply=\"%s\"", qm->qid, ea,
	    remote != NULL ? remote : "none",
	    (long long)(now - qm->msg.arrival), tls != NULL ? tls : "none",
	    word, status != NULL ? status : "", esc);
}

/* ---- the store writes, on the worker pool ----

   Every write that follows an attempt (the recipients' results, then the
   message's DSNs and its removal) goes through one FIFO of operations run
   on the worker pool one at a time, so the loop never waits on an fsync
   and a message is settled only after its results are committed. Results
   that come in while a commit runs wait in the next batch: under load one
   transaction per message carries many of them. Once the daemon freed its
   pool (shutdown), operations run at once on the loop thread. */

struct wres {
	struct qmsg *qm;
	uint32_t idx;
	struct store_queue_result res;
	char address[STORE_ADDRESS_MAX + 1];
	char status[STORE_QUEUE_STATUS_MAX + 1];
	char reply[STORE_QUEUE_REPLY_MAX + 1];
	char remote[STORE_QUEUE_REMOTE_MAX + 1];
	char tls[32];
	bool has_status, has_reply, has_remote, has_tls;
	int64_t retry_at;           /* if the result cannot be committed */
	enum store_err err;
	char errmsg[256];
	bool requeued;              /* then put back to be retried */
};

/* WOP_CALL runs fn on the loop thread once everything before it is
   committed: a transaction counts as uncommitted on its connection until
   then (struct conn_state), so at most CONN_UNCOMMITTED_MAX transactions
   per connection have results not yet durable (the duplicates a kill -9
   can cause). */
enum wop_kind { WOP_RESULTS, WOP_SETTLE, WOP_CALL, WOP_BEGIN };

struct wop {
	struct engine *e;
	enum wop_kind kind;
	struct wop *next;
	struct wres *r;             /* WOP_RESULTS */
	size_t n, cap;
	struct qmsg **qms;          /* WOP_SETTLE */
	size_t nqms, capqms;
	bool rescan;
	void (*fn)(void *arg);      /* WOP_CALL */
	void *arg;
	struct group **groups;      /* WOP_BEGIN: store_queue_begin_attempt */
	size_t ngroups;
	int64_t now;
};

static void wq_kick(struct engine *e);
static void settle_work(struct wop *op);
static void wq_link(struct engine *e, struct wop *op);
static void qmsg_free(struct qmsg *qm);

/* The results of items could not be committed: their recipients, still
   in flight in the store, go back to be retried (at the time a deferral
   would have given them), else they would wait for a restart. */
static enum store_err
put_back(struct engine *e, struct store_queue_result_item *it, size_t n)
{
	static bool fired;

	if (fail_point("results-retry", &fired))
		return STORE_ETEMP;
	return store_queue_rcpt_retry(e->m->st, it, n);
}

/* Those that could not be put back before: again, before each write. */
static void
put_back_pending(struct engine *e)
{
	if (e->nunreleased == 0 || put_back(e, e->unreleased,
	    e->nunreleased) != STORE_OK)
		return;
	log_info("mtad result-requeued rcpts=%zu (after an earlier failure)",
	    e->nunreleased);
	free(e->unreleased);
	e->unreleased = NULL;
	e->nunreleased = 0;
}

static void
put_back_later(struct engine *e, const struct store_queue_result_item *it,
    size_t n)
{
	e->unreleased = xrealloc(e->unreleased, (e->nunreleased + n) *
	    sizeof(*it));
	memcpy(e->unreleased + e->nunreleased, it, n * sizeof(*it));
	for (size_t i = 0; i < n; i++) {
		struct store_queue_result_item *u = &e->unreleased[
		    e->nunreleased + i];

		u->res.status = u->res.reply = u->res.remote = NULL;
	}
	e->nunreleased += n;
}

static enum store_err
results_commit(struct engine *e, struct store_queue_result_item *it,
    size_t n)
{
	static bool fired;

	if (fail_point("results-commit", &fired))
		return STORE_ETEMP;
	return store_queue_rcpt_results_many(e->m->st, it, n);
}

static void
results_work(struct wop *op)
{
	struct store_queue_result_item *it = xcalloc(op->n + 1, sizeof(*it));
	enum store_err err;
	bool requeued = false;

	/* The batch may have moved while it grew: the strings are pointed at
	   only now. */
	for (size_t i = 0; i < op->n; i++) {
		struct wres *w = &op->r[i];

		it[i].id = w->qm->id;
		it[i].idx = w->idx;
		it[i].res = w->res;
		it[i].res.status = w->has_status ? w->status : NULL;
		it[i].res.reply = w->has_reply ? w->reply : NULL;
		it[i].res.remote = w->has_remote ? w->remote : NULL;
	}
	err = results_commit(op->e, it, op->n);
	for (size_t i = 0; i < op->n; i++) {
		op->r[i].err = err != STORE_OK ? err : it[i].err;
		if (op->r[i].err != STORE_OK)
			str_copy(op->r[i].errmsg, store_last_error(),
			    sizeof(op->r[i].errmsg));
	}
	if (err != STORE_OK) {
		for (size_t i = 0; i < op->n; i++)
			it[i].res.next_attempt = op->r[i].retry_at;
		requeued = put_back(op->e, it, op->n) == STORE_OK;
		if (!requeued)
			put_back_later(op->e, it, op->n);
		for (size_t i = 0; i < op->n; i++)
			op->r[i].requeued = requeued;
	}
	free(it);
}

static void
results_done(struct wop *op)
{
	for (size_t i = 0; i < op->n; i++) {
		struct wres *w = &op->r[i];

		if (w->err == STORE_ENOTFOUND) {
			log_info("mtad %s result-dropped rcpt=%s reason=\"deleted "
			    "meanwhile\"", w->qm->qid, w->address);
			continue;
		}
		if (w->err != STORE_OK)
			log_warnx("mtad %s result-commit-failed rcpt=%s "
			    "error=\"%s\" retry=%s", w->qm->qid, w->address,
			    w->errmsg, w->requeued ? "requeued" : "later");
		log_result(w->qm, w->address, w->has_remote ? w->remote : NULL,
		    w->has_tls ? w->tls : NULL, w->res.state, w->status,
		    w->reply, w->res.now);
	}
}

/* Marks each group's recipients in flight, one transaction per message;
   a recipient the store no longer has waiting (or a held message) is left
   out of its group. */
static void
begin_work(struct wop *op)
{
	struct store_queue_begin_item *it = xcalloc(op->ngroups + 1,
	    sizeof(*it));
	uint32_t (*idx)[MTAD_MAX_RCPTS_PER_TXN] = xcalloc(op->ngroups + 1,
	    sizeof(*idx));

	for (size_t i = 0; i < op->ngroups; i++) {
		struct group *g = op->groups[i];

		for (size_t k = 0; k < g->n; k++)
			idx[i][k] = g->rcpts[k].idx;
		it[i].id = g->qm->id;
		it[i].idx = idx[i];
		it[i].n = g->n;
	}
	if (store_queue_begin_attempts(op->e->m->st, it, op->ngroups,
	    op->now) != STORE_OK)
		for (size_t i = 0; i < op->ngroups; i++)
			it[i].n = 0;
	for (size_t i = 0; i < op->ngroups; i++) {
		struct group *g = op->groups[i];

		for (size_t k = 0; k < it[i].n; k++)
			g->rcpts[k].idx = idx[i][k];
		g->n = it[i].n;
	}
	free(idx);
	free(it);
}

static void
begin_done(struct wop *op)
{
	struct engine *e = op->e;

	for (size_t i = 0; i < op->ngroups; i++) {
		struct group *g = op->groups[i];
		struct qmsg *qm = g->qm;

		if (g->n == 0) {
			free(g);
			if (--qm->groups == 0)
				qmsg_settle(qm, false);
			continue;
		}
		for (size_t k = 0; k < g->n; k++) {
			struct store_queue_rcpt *o = qrcpt(qm, g->rcpts[k].idx);

			o->attempts++;
			str_copy(g->rcpts[k].address, o->address,
			    sizeof(g->rcpts[k].address));
			str_copy(g->rcpts[k].orcpt, o->orcpt,
			    sizeof(g->rcpts[k].orcpt));
			g->rcpts[k].notify = o->notify;
		}
		group_queue(e, g);
	}
	free(op->groups);
	start_waiting(e);
}

static void
wop_work(void *arg)
{
	struct wop *op = arg;

	put_back_pending(op->e);
	if (op->kind == WOP_RESULTS)
		results_work(op);
	else if (op->kind == WOP_BEGIN)
		begin_work(op);
	else
		settle_work(op);
}

static void
wop_done(void *arg)
{
	struct wop *op = arg;
	struct engine *e = op->e;

	if (op->kind == WOP_RESULTS) {
		results_done(op);
	} else if (op->kind == WOP_BEGIN) {
		begin_done(op);
	} else {
		for (size_t i = 0; i < op->nqms; i++)
			qmsg_free(op->qms[i]);
		free(op->qms);
		if (op->rescan && !e->stopping)
			schedule_scan(e);
	}
	free(op->r);
	free(op);
	e->wq_busy = false;
	wq_kick(e);
}

/* Starts the next operation if none runs. Calls made from inside (a
   WOP_CALL that ends in more results) leave the work to the outer one. */
static void
wq_kick(struct engine *e)
{
	if (e->wq_kicking)
		return;
	e->wq_kicking = true;
	while (!e->wq_busy && e->wq_head != NULL) {
		struct wop *op = e->wq_head;
		struct worker_pool *pool = *e->m->workers;

		e->wq_head = op->next;
		if (e->wq_head == NULL)
			e->wq_tail = NULL;
		if (op == e->wq_results)
			e->wq_results = NULL;
		if (op->kind == WOP_CALL) {
			op->fn(op->arg);
			free(op);
			continue;
		}
		e->wq_busy = true;
		if (pool != NULL) {
			worker_submit(pool, wop_work, wop_done, op);
		} else {
			wop_work(op);
			wop_done(op);
		}
	}
	e->wq_kicking = false;
}

/* Appends op without starting anything. */
static void
wq_link(struct engine *e, struct wop *op)
{
	op->next = NULL;
	op->e = e;
	if (e->wq_tail != NULL)
		e->wq_tail->next = op;
	else
		e->wq_head = op;
	e->wq_tail = op;
}

static void
wq_push(struct engine *e, struct wop *op)
{
	wq_link(e, op);
	wq_kick(e);
}

/* A slot in the first batch of results not yet started, made if needed.
   Any waiting batch will do: what waits behind it (settling a message,
   giving a slot back) never concerns a result still coming in. */
static struct wres *
wq_result_slot(struct engine *e)
{
	/* At most one waiting: a new one is made only when none is. Kept
	   at hand, not looked for past every call and settle queued. */
	struct wop *op = e->wq_results;

	if (op == NULL) {
		op = xcalloc(1, sizeof(*op));
		op->kind = WOP_RESULTS;
		op->e = e;
		if (e->wq_tail != NULL)
			e->wq_tail->next = op;
		else
			e->wq_head = op;
		e->wq_tail = op;
		e->wq_results = op;
	}
	if (op->n == op->cap) {
		op->cap = op->cap != 0 ? op->cap * 2 : 16;
		op->r = xrealloc(op->r, op->cap * sizeof(*op->r));
	}
	memset(&op->r[op->n], 0, sizeof(op->r[op->n]));
	return &op->r[op->n++];
}

/* Runs fn(arg) on the loop thread once what is queued before is done. */
static void
wq_call(struct engine *e, void (*fn)(void *), void *arg)
{
	struct wop *op = xcalloc(1, sizeof(*op));

	op->kind = WOP_CALL;
	op->fn = fn;
	op->arg = arg;
	wq_push(e, op);
}

/* Records one recipient's result: the in-memory copy now, the store on
   the worker pool (logged once committed). */
static void
commit_result(struct qmsg *qm, uint32_t idx, enum store_queue_state st,
    const char *status, const char *reply, const char *remote,
    const char *tls, uint32_t flags, int64_t next)
{
	struct engine *e = qm->e;
	struct store_queue_rcpt *q = qrcpt(qm, idx);
	struct wres *w;

	if (q == NULL)
		return;
	w = wq_result_slot(e);
	w->qm = qm;
	w->idx = idx;
	str_copy(w->address, q->address, sizeof(w->address));
	str_copy(w->status, status != NULL ? status : "", sizeof(w->status));
	str_copy(w->reply, reply != NULL ? reply : "", sizeof(w->reply));
	str_copy(w->remote, remote != NULL ? remote : "", sizeof(w->remote));
	str_copy(w->tls, tls != NULL ? tls : "", sizeof(w->tls));
	w->has_remote = remote != NULL;
	w->has_tls = tls != NULL;
	w->res.state = st;
	w->res.now = now_s();
	w->res.set_flags = flags;
	w->has_status = status != NULL;
	w->has_reply = reply != NULL;
	w->retry_at = retry_time(e, qm, q->attempts, w->res.now);
	if (st == STORE_QS_DEFERRED)
		w->res.next_attempt = next != 0 ? next : w->retry_at;
	q->state = st;
	q->flags |= flags;
	str_copy(q->status, w->status, sizeof(q->status));
	str_copy(q->reply, w->reply, sizeof(q->reply));
	str_copy(q->remote, w->remote, sizeof(q->remote));
	q->last_attempt = w->res.now;
	wq_kick(e);
}

static void
job_rcpt_result(void *arg, struct job_rcpt *r, enum store_queue_state st,
    const char *status, const char *reply, const char *remote,
    const char *tls, bool relayed)
{
	struct group *g = arg;

	commit_result(g->qm, r->idx, st, status, reply, remote, tls,
	    relayed ? STORE_QRF_RELAYED : 0, 0);
}

static void
group_unlink(struct group *g)
{
	if (g->prevp != NULL) {
		*g->prevp = g->next;
		if (g->next != NULL)
			g->next->prevp = g->prevp;
		if (g->e->wait_tailp == &g->next)
			g->e->wait_tailp = g->prevp;
		g->prevp = NULL;
		g->next = NULL;
	}
}

/* ---- connections kept between transactions ---- */

static struct conn_state *
cs_new(struct engine *e, const char *domain)
{
	struct conn_state *cs = xcalloc(1, sizeof(*cs));

	cs->e = e;
	str_copy(cs->domain, domain, sizeof(cs->domain));
	cs->next = e->conns;
	e->conns = cs;
	return cs;
}

static struct conn_state *
cs_ref(struct conn_state *cs)
{
	cs->refs++;
	return cs;
}

static void
cs_unref(struct conn_state *cs)
{
	if (cs == NULL || --cs->refs > 0)
		return;
	for (struct conn_state **pp = &cs->e->conns; *pp != NULL;
	    pp = &(*pp)->next)
		if (*pp == cs) {
			*pp = cs->next;
			break;
		}
	free(cs);
}

/* g's transaction runs on cs's connection: uncommitted until group_done. */
static void
group_take_conn(struct group *g, struct conn_state *cs)
{
	g->cs = cs_ref(cs);
	cs->uncommitted++;
}

/* The connections to domain, and the groups about to make one: a
   connection closed while its last transactions are not committed still
   counts, so the uncommitted transactions to a destination stay under
   CONN_UNCOMMITTED_MAX times outbound_max_per_destination. */
static unsigned
dest_conns(struct engine *e, const char *domain)
{
	unsigned n = 0;

	for (struct conn_state *cs = e->conns; cs != NULL; cs = cs->next)
		if (strcasecmp(cs->domain, domain) == 0)
			n++;
	for (struct group *r = e->running; r != NULL; r = r->next)
		if (r->cs == NULL && strcasecmp(r->domain, domain) == 0)
			n++;
	return n;
}

static void
idle_remove(struct idle_conn *ic)
{
	struct engine *e = ic->e;

	for (struct idle_conn **pp = &e->idle; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ic) {
			*pp = ic->next;
			break;
		}
	ev_timer_stop(e->m->loop, &ic->timer);
	e->nidle--;
	cs_unref(ic->cs);
	free(ic);
}

static void
idle_close(struct idle_conn *ic)
{
	struct smtp_job *job = ic->job;

	idle_remove(ic);
	smtp_job_close(job);
}

static void
idle_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct idle_conn *ic = w->data;
	struct engine *e = ic->e;

	idle_close(ic);
	start_waiting(e);
}

static void
idle_add(struct engine *e, const char *domain, struct smtp_job *job,
    struct conn_state *cs)
{
	struct idle_conn *ic = xcalloc(1, sizeof(*ic)), **pp = &e->idle;

	if (e->stopping) {
		free(ic);
		smtp_job_close(job);
		return;
	}
	ic->e = e;
	ic->job = job;
	ic->cs = cs_ref(cs);
	str_copy(ic->domain, domain, sizeof(ic->domain));
	ev_timer_init(&ic->timer, idle_timer_cb, MTAD_IDLE_SECONDS, 0.);
	ic->timer.data = ic;
	ev_timer_start(e->m->loop, &ic->timer);
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = ic;
	e->nidle++;
}

/* A parked connection to domain that may take a transaction now. */
static struct idle_conn *
idle_find(struct engine *e, const char *domain)
{
	for (struct idle_conn *ic = e->idle; ic != NULL; ic = ic->next)
		if (ic->cs->uncommitted < CONN_UNCOMMITTED_MAX &&
		    strcasecmp(ic->domain, domain) == 0)
			return ic;
	return NULL;
}

/* g's message over a parked connection to its destination. */
static void
group_reuse(struct group *g, struct idle_conn *ic)
{
	struct smtp_job *job = ic->job;

	group_take_conn(g, ic->cs);
	idle_remove(ic);
	g->job = job;
	smtp_job_next(job, &g->qm->jm, g->rcpts, g->n, g->qm->qid, g);
}

#define START_FULL_MAX  64

static bool
in_full(const struct group *const *full, size_t n, const struct group *g)
{
	for (size_t i = 0; i < n; i++)
		if (full[i]->dhash == g->dhash &&
		    strcasecmp(full[i]->domain, g->domain) == 0)
			return true;
	return false;
}

/* Starts what waits, within the bounds. A group may end inside
   group_start (an address literal, a bad name) and call this again: the
   inner call only asks the outer one to look once more. */
static void
start_waiting(struct engine *e)
{
	unsigned max = e->m->cfg->outbound_max_connections > 0 ?
	    e->m->cfg->outbound_max_connections : 20;
	unsigned per_dest = e->m->cfg->outbound_max_per_destination > 0 ?
	    e->m->cfg->outbound_max_per_destination : 10;
	bool started;

	if (e->starting) {
		e->start_again = true;
		return;
	}
	/* The loop has stopped (work finishing at shutdown): engine_stop
	   turns what waits back into deferred recipients. */
	if (ev_depth(e->m->loop) == 0)
		return;
	e->starting = true;
	do {
		/* Destinations found at their bound in this pass: the groups
		   behind for them are passed over without looking again (a
		   large queue to one domain made every pass quadratic). */
		const struct group *full[START_FULL_MAX];
		size_t nfull = 0;

		started = false;
		e->start_again = false;
		for (struct group *g = e->waiting; g != NULL && !e->stopping;
		    g = g->next) {
			struct idle_conn *ic;
			unsigned limit;

			if (in_full(full, nfull, g))
				continue;
			ic = idle_find(e, g->domain);
			limit = slow_find(e, g->domain) != NULL ? 1 : per_dest;
			if (ic == NULL && dest_conns(e, g->domain) >= limit) {
				if (nfull < START_FULL_MAX)
					full[nfull++] = g;
				continue;
			}
			/* At the bound, a parked connection to elsewhere
			   makes room. */
			if (ic == NULL && e->nrunning + e->nidle >= max) {
				if (e->idle == NULL)
					break;
				idle_close(e->idle);
			}
			group_unlink(g);
			g->next = e->running;
			if (g->next != NULL)
				g->next->prevp = &g->next;
			g->prevp = &e->running;
			e->running = g;
			e->nrunning++;
			if (ic != NULL)
				group_reuse(g, ic);
			else
				group_start(g);
			started = true;
			break;      /* the lists changed: from the head again */
		}
	} while ((started || e->start_again) && !e->stopping);
	e->starting = false;
}

static void
start_soon_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	ev_prepare_stop(loop, w);
	start_waiting(w->data);
}

/* g's results are committed (or g never had any). */
static void
group_done(struct group *g)
{
	struct engine *e = g->e;
	struct qmsg *qm = g->qm;

	if (!g->released) {
		group_unlink(g);
		e->nrunning--;
	}
	if (g->cs != NULL) {
		g->cs->uncommitted--;
		cs_unref(g->cs);
	}
	free(g);
	if (--qm->groups == 0)
		qmsg_settle(qm, true);
	if (!e->stopping)
		ev_prepare_start(e->m->loop, &e->start_soon);
}

static void
group_done_cb(void *arg)
{
	group_done(arg);
}

static void
job_done(void *arg, struct smtp_job *job, bool all_hosts_failed, bool parked)
{
	struct group *g = arg;
	struct engine *e = g->e;

	g->job = NULL;
	if (all_hosts_failed)
		slow_set(e, g->domain);
	else
		slow_clear(e, g->domain);
	if (parked) {
		/* The connection may carry the next message while g's results
		   are being committed (idle_find: not more than that). */
		group_unlink(g);
		e->nrunning--;
		g->released = true;
		idle_add(e, g->domain, job, g->cs);
		wq_call(e, group_done_cb, g);
		start_waiting(e);
		return;
	}
	if (all_hosts_failed && e->m->relay_host == NULL) {
		/* Every host of the domain failed: the domain waits for the
		   retry instead of being tried again for each message. */
		struct store_queue_rcpt *q = qrcpt(g->qm, g->rcpts[0].idx);

		if (q != NULL && q->state == STORE_QS_DEFERRED)
			backoff_set(e, g->domain, now_s() +
			    (int64_t)e->m->cfg->queue_retry_min, q->status,
			    q->reply);
	}
	wq_call(e, group_done_cb, g);
}

static const struct smtp_job_ops job_ops = {
	.rcpt_result = job_rcpt_result,
	.done = job_done,
};

/* Every recipient of g gets the same result (DNS failure, backoff). */
static void
group_fail_all(struct group *g, enum store_queue_state st,
    const char *status, const char *reason, int64_t next)
{
	for (size_t i = 0; i < g->n; i++)
		commit_result(g->qm, g->rcpts[i].idx, st, status, reason, NULL,
		    NULL, 0, next);
}

/* ---- resolving and starting ---- */

static void
add_target(struct smtp_target *t, size_t *nt, const char *host, int family,
    const unsigned char *addr, uint16_t port)
{
	if (*nt >= MTAD_MAX_TARGETS)
		return;
	str_copy(t[*nt].host, host, sizeof(t[*nt].host));
	t[*nt].family = family;
	memcpy(t[*nt].addr, addr, family == AF_INET ? 4 : 16);
	t[*nt].port = port;
	(*nt)++;
}

/* One host's addresses, IPv6 and IPv4 interleaved (IPv6 first, as RFC
   8305 orders them), so an unreachable family costs one try, not all;
   only those of outbound_ip_family. */
static void
add_host_targets(const struct mtad *m, const struct dns_mx_host *h,
    struct smtp_target *t, size_t *nt, uint16_t port)
{
	size_t i4 = 0, i6 = 0;
	bool want4 = m->ip_family != AF_INET6, want6 = m->ip_family != AF_INET;

	for (;;) {
		while (i6 < h->naddrs && h->addrs[i6].family != AF_INET6)
			i6++;
		while (i4 < h->naddrs && h->addrs[i4].family != AF_INET)
			i4++;
		if ((!want6 || i6 >= h->naddrs) && (!want4 || i4 >= h->naddrs))
			return;
		if (want6 && i6 < h->naddrs) {
			add_target(t, nt, h->name, AF_INET6, h->addrs[i6].addr,
			    port);
			i6++;
		}
		if (want4 && i4 < h->naddrs) {
			add_target(t, nt, h->name, AF_INET, h->addrs[i4].addr,
			    port);
			i4++;
		}
	}
}

static void
mx_cb(void *arg, const struct dns_mx_result *res)
{
	struct group *g = arg;
	struct engine *e = g->e;
	struct mtad *m = e->m;
	struct smtp_target t[MTAD_MAX_TARGETS];
	size_t nt = 0;
	uint16_t port = m->relay_host != NULL ? m->relay_port :
	    (uint16_t)m->cfg->outbound_port;
	char why[400];

	g->resolving = false;
	if (res->status == DNS_CANCELLED || g->cancelled) {
		group_fail_all(g, STORE_QS_DEFERRED, "4.3.2", "mtad is stopping",
		    0);
		group_done(g);
		return;
	}
	if (res->null_mx) {
		snprintf(why, sizeof(why), "domain %s does not accept mail "
		    "(null MX)", g->domain);
		group_fail_all(g, STORE_QS_FAILED, "5.1.10", why, 0);
		group_done(g);
		return;
	}
	if (res->status == DNS_NXDOMAIN || res->status == DNS_NODATA) {
		snprintf(why, sizeof(why), "Host or domain name not found: %s "
		    "(%s)", m->relay_host != NULL ? m->relay_host : g->domain,
		    dns_status_str(res->status));
		if (m->relay_host != NULL)
			group_fail_all(g, STORE_QS_DEFERRED, "4.4.3", why, 0);
		else
			group_fail_all(g, STORE_QS_FAILED, "5.1.2", why, 0);
		group_done(g);
		return;
	}
	if (res->status != DNS_OK) {
		snprintf(why, sizeof(why), "DNS lookup for %s failed "
		    "temporarily (%s)", m->relay_host != NULL ? m->relay_host :
		    g->domain, dns_status_str(res->status));
		group_fail_all(g, STORE_QS_DEFERRED, "4.4.3", why, 0);
		group_done(g);
		return;
	}
	for (size_t i = 0; i < res->nhosts; i++)
		add_host_targets(m, &res->hosts[i], t, &nt, port);
	if (nt == 0) {
		snprintf(why, sizeof(why), "no address for the mail exchangers "
		    "of %s", g->domain);
		group_fail_all(g, STORE_QS_DEFERRED, "4.4.3", why, 0);
		group_done(g);
		return;
	}
	group_take_conn(g, cs_new(e, g->domain));
	g->job = smtp_job_start(m, &g->qm->jm, g->rcpts, g->n, t, nt,
	    m->relay_host == NULL ? JOB_TLS_OPPORTUNISTIC :
	    m->relay_port == 465 ? JOB_TLS_IMPLICIT_VERIFY :
	    JOB_TLS_STARTTLS_VERIFY, g->qm->qid, &job_ops, g);
}

/* An address literal ("[192.0.2.1]", "1.2.3.4") as a target. */
static bool
literal_target(const char *s, struct dns_mx_result *res)
{
	char tmp[DNS_NAME_SIZE];
	size_t len = strlen(s);
	struct dns_mx_host *h = &res->hosts[0];

	if (len >= sizeof(tmp))
		return false;
	if (s[0] == '[' && len > 2 && s[len - 1] == ']') {
		memcpy(tmp, s + 1, len - 2);
		tmp[len - 2] = '\0';
	} else {
		memcpy(tmp, s, len + 1);
	}
	if (strncasecmp(tmp, "IPv6:", 5) == 0)
		memmove(tmp, tmp + 5, strlen(tmp + 5) + 1);
	memset(res, 0, sizeof(*res));
	if (inet_pton(AF_INET, tmp, h->addrs[0].addr) == 1)
		h->addrs[0].family = AF_INET;
	else if (inet_pton(AF_INET6, tmp, h->addrs[0].addr) == 1)
		h->addrs[0].family = AF_INET6;
	else
		return false;
	str_copy(h->name, tmp, sizeof(h->name));
	h->naddrs = 1;
	h->status = DNS_OK;
	res->status = DNS_OK;
	res->implicit = true;
	res->nhosts = 1;
	return true;
}

static void
group_start(struct group *g)
{
	struct mtad *m = g->e->m;
	const char *name = m->relay_host != NULL ? m->relay_host : g->domain;
	struct dns_mx_result lit;
	int rc;

	if (literal_target(name, &lit)) {
		mx_cb(g, &lit);
		return;
	}
	g->resolving = true;
	rc = m->relay_host != NULL ? dns_resolve_host(m->dns, name, mx_cb, g) :
	    dns_resolve_mx(m->dns, name, mx_cb, g);
	if (rc < 0) {
		char why[320];

		g->resolving = false;
		snprintf(why, sizeof(why), "bad destination domain %s", name);
		group_fail_all(g, m->relay_host != NULL ? STORE_QS_DEFERRED :
		    STORE_QS_FAILED, m->relay_host != NULL ? "4.4.3" : "5.1.2",
		    why, 0);
		group_done(g);
	}
}

/* ---- DSNs ---- */

/* The recipients a DSN reports on: their flag is set in the DSN's own
   commit, so a kill -9 can neither send the DSN twice (it went, the mark
   with it) nor lose it (neither went: the next look makes it again). */
struct dsn_marks {
	uint32_t *idx;
	size_t n;
	uint32_t flag;
};

/* Delivers the DSN in out to the local address to, marks and all. */
static enum store_err
dsn_commit_local(struct engine *e, struct qmsg *qm, const char *to,
    const struct buf *out, const struct dsn_marks *mk)
{
	uint32_t *ids = NULL;
	size_t nids = 0;
	struct store_delivery *d = NULL;
	enum store_err err;

	err = store_resolve(e->m->st, to, &ids, &nids);
	if (err == STORE_OK && nids == 0)
		err = STORE_ENOTFOUND;
	if (err == STORE_OK && (err = store_delivery_new(e->m->st, &d)) ==
	    STORE_OK && (err = store_delivery_write(d, out->data, out->len)) ==
	    STORE_OK) {
		for (size_t i = 0; i < nids && err == STORE_OK; i++)
			err = store_delivery_add_target(d, ids[i], 0, 0,
			    NULL, 0, 0, 0);
		if (err == STORE_OK)
			err = store_delivery_queue_mark(d, qm->id, mk->idx,
			    mk->n, mk->flag);
		if (err == STORE_OK)
			err = store_delivery_commit(d,
			    STORE_DELIVER_NOQUOTA, NULL);
	}
	store_delivery_free(&d);
	free(ids);
	return err;
}

/* Queues the DSN in out for the remote address to, marks and all. */
static enum store_err
dsn_commit_queue(struct engine *e, struct qmsg *qm, const char *to,
    const struct buf *out, const struct dsn_marks *mk, uint64_t *id_r)
{
	struct store_delivery *d = NULL;
	struct store_queue_msg env;
	struct store_queue_rcpt r;
	enum store_err err;

	memset(&env, 0, sizeof(env));
	env.flags = STORE_QMF_DSN;
	memset(&r, 0, sizeof(r));
	str_copy(r.address, to, sizeof(r.address));
	r.notify = STORE_QN_NEVER;
	*id_r = 0;
	if ((err = store_delivery_new(e->m->st, &d)) == STORE_OK &&
	    (err = store_delivery_write(d, out->data, out->len)) == STORE_OK &&
	    (err = store_delivery_queue(d, &env, &r, 1)) == STORE_OK &&
	    (err = store_delivery_queue_mark(d, qm->id, mk->idx, mk->n,
	    mk->flag)) == STORE_OK &&
	    (err = store_delivery_commit(d, 0, NULL)) == STORE_OK)
		*id_r = store_delivery_queue_id(d);
	store_delivery_free(&d);
	return err;
}

/* The address a DSN about qm goes to (in buf when it is an SRS sender of
   ours turned back), or NULL when there is no one to write to. A
   forwarded message carries an SRS sender of ours: its DSN goes to the
   address that stands for (the original sender, or the previous forwarder
   for SRS1). One that does not verify names no one we may write to: no
   DSN, as smtpd refuses such a bounce at RCPT. */
static const char *
dsn_to(struct engine *e, struct qmsg *qm, char *buf, size_t size)
{
	struct mtad *m = e->m;
	const char *to = qm->msg.sender;
	int sr;

	if (!srs_is_srs(to) || !store_domain_is_local(m->st, domain_of(to)))
		return to;
	sr = srs_reverse(m->srs_key, to, (int64_t)time(NULL), buf, size);
	if (sr < 0) {
		log_warnx("mtad %s dsn-dropped to=%s reason=bad-srs",
		    qm->qid, to);
		return NULL;
	}
	return sr == 0 ? buf : to;
}

/* Builds and commits the DSN with its marks; false when it was not made
   (the caller then sets the marks alone: a DSN that cannot go now is not
   tried again on every look). */
static bool
dsn_deliver(struct engine *e, struct qmsg *qm, const struct dsn_rcpt *dr,
    size_t n, const struct dsn_marks *mk)
{
	struct mtad *m = e->m;
	struct dsn_report rep;
	unsigned char rnd[16];
	struct buf out;
	char unsrs[SRS_ADDRESS_MAX + 1], idb[24];
	const char *to = dsn_to(e, qm, unsrs, sizeof(unsrs));
	uint64_t id = 0;
	enum store_err err;
	bool local;

	if (to == NULL)
		return false;
	randombytes_buf(rnd, sizeof(rnd));
	memset(&rep, 0, sizeof(rep));
	rep.hostname = m->cfg->hostname;
	rep.to = to;
	rep.envid = qm->msg.envid[0] != '\0' ? qm->msg.envid : NULL;
	rep.arrival = (time_t)qm->msg.arrival;
	rep.now = time(NULL);
	rep.ret = qm->msg.ret == STORE_QRET_FULL ? DSN_RET_FULL :
	    qm->msg.ret == STORE_QRET_HDRS ? DSN_RET_HDRS : DSN_RET_DEFAULT;
	rep.msg = qm->jm.data != NULL ? qm->jm.data : "";
	rep.msg_len = qm->jm.data != NULL ? qm->jm.len : 0;
	rep.full_max = DSN_FULL_MAX;
	rep.rcpts = dr;
	rep.nrcpts = n;
	rep.rand16 = rnd;
	buf_init(&out);
	dsn_build(&rep, &out);
	local = store_domain_is_local(m->st, domain_of(to));
	err = local ? dsn_commit_local(e, qm, to, &out, mk) :
	    dsn_commit_queue(e, qm, to, &out, mk, &id);
	buf_free(&out);
	if (err != STORE_OK) {
		log_warnx("mtad %s dsn-failed to=%s error=\"%s\"", qm->qid, to,
		    local && err == STORE_ENOTFOUND ? "no such local user" :
		    store_last_error());
		return false;
	}
	crash_point("dsn-committed");
	store_queue_id_str(id, idb, sizeof(idb));
	if (local)
		log_info("mtad %s dsn-delivered to=%s where=inbox", qm->qid,
		    to);
	else
		log_info("mtad %s dsn-queued to=%s id=%s", qm->qid, to, idb);
	return true;
}

/* The marks of a DSN that did not go (or of none): set on their own. */
static void
marks_alone(struct engine *e, struct qmsg *qm, const struct dsn_marks *mk)
{
	for (size_t i = 0; i < mk->n; i++)
		store_queue_rcpt_set_flags(e->m->st, qm->id, mk->idx[i],
		    mk->flag);
}

/* The marks are in qm's store records now: the copy in memory too (mk
   was taken from qm->rcpts in their order). */
static void
marks_taken(struct qmsg *qm, const struct dsn_marks *mk)
{
	for (size_t i = 0, j = 0; i < qm->n && j < mk->n; i++)
		if (qm->rcpts[i].idx == mk->idx[j]) {
			qm->rcpts[i].flags |= mk->flag;
			j++;
		}
}

static bool
may_notify(const struct qmsg *qm)
{
	/* Never a DSN about a null-sender message (or one of our DSNs). */
	return qm->msg.sender[0] != '\0' && !(qm->msg.flags & STORE_QMF_DSN);
}

static void
fill_dsn_rcpt(struct dsn_rcpt *d, const struct store_queue_rcpt *q,
    enum dsn_action a, int64_t retry_until)
{
	memset(d, 0, sizeof(*d));
	d->address = q->address;
	d->orcpt = q->orcpt[0] != '\0' ? q->orcpt : NULL;
	d->action = a;
	d->status = q->status[0] != '\0' ? q->status : NULL;
	d->remote_mta = q->remote[0] != '\0' ? q->remote : NULL;
	d->diagnostic = q->reply[0] != '\0' ? q->reply : NULL;
	d->diag_smtp = q->reply[0] >= '2' && q->reply[0] <= '5' &&
	    q->reply[1] >= '0' && q->reply[1] <= '9';
	d->last_attempt = (time_t)q->last_attempt;
	d->retry_until = (time_t)retry_until;
}

/* Whether the final state of q asks for a DSN. */
static bool
final_wanted(const struct store_queue_rcpt *q)
{
	if (q->state == STORE_QS_FAILED)
		return !(q->notify & STORE_QN_NEVER) && (q->notify == 0 ||
		    (q->notify & STORE_QN_FAILURE));
	/* A remote that offered DSN got NOTIFY and reports itself; one that
	   did not gets a "relayed" from us (RFC 3461 5.2.2). */
	return (q->notify & STORE_QN_SUCCESS) != 0 &&
	    (q->flags & STORE_QRF_RELAYED) != 0;
}

/* The final DSN (failed; delivered/relayed when asked) for recipients that
   reached a final state, once each: every such recipient is marked with
   it. Without a DSN nothing is marked (a later look decides the same
   again, and the commit is saved). */
static void
final_dsns(struct engine *e, struct qmsg *qm)
{
	struct dsn_rcpt *dr = xcalloc(qm->n + 1, sizeof(*dr));
	struct dsn_marks mk = { xcalloc(qm->n + 1, sizeof(uint32_t)), 0,
	    STORE_QRF_FINAL_DSN };
	size_t nd = 0;

	for (size_t i = 0; i < qm->n; i++) {
		struct store_queue_rcpt *q = &qm->rcpts[i];

		if ((q->state != STORE_QS_SENT && q->state != STORE_QS_FAILED) ||
		    (q->flags & STORE_QRF_FINAL_DSN))
			continue;
		mk.idx[mk.n++] = q->idx;
		if (final_wanted(q) && may_notify(qm))
			fill_dsn_rcpt(&dr[nd++], q, q->state == STORE_QS_FAILED ?
			    DSN_ACT_FAILED : DSN_ACT_RELAYED, 0);
	}
	if (nd > 0) {
		if (!dsn_deliver(e, qm, dr, nd, &mk))
			marks_alone(e, qm, &mk);
		marks_taken(qm, &mk);
	}
	free(dr);
	free(mk.idx);
}

/* One "delayed" DSN for the deferred recipients past delay_warning. */
static void
delay_dsns(struct engine *e, struct qmsg *qm, int64_t now)
{
	const struct config *c = e->m->cfg;
	struct dsn_rcpt *dr;
	struct dsn_marks mk = { NULL, 0, STORE_QRF_DELAY_DSN };

	if (c->delay_warning <= 0 || now - qm->msg.arrival <
	    (int64_t)c->delay_warning || !may_notify(qm))
		return;
	dr = xcalloc(qm->n + 1, sizeof(*dr));
	mk.idx = xcalloc(qm->n + 1, sizeof(uint32_t));
	for (size_t i = 0; i < qm->n; i++) {
		struct store_queue_rcpt *q = &qm->rcpts[i];

		if (q->state != STORE_QS_DEFERRED ||
		    (q->flags & STORE_QRF_DELAY_DSN))
			continue;
		if (q->notify != 0 && !(q->notify & STORE_QN_DELAY))
			continue;
		fill_dsn_rcpt(&dr[mk.n], q, DSN_ACT_DELAYED, qm->msg.arrival +
		    (int64_t)c->queue_lifetime);
		mk.idx[mk.n++] = q->idx;
	}
	if (mk.n > 0) {
		if (!dsn_deliver(e, qm, dr, mk.n, &mk))
			marks_alone(e, qm, &mk);
		marks_taken(qm, &mk);
	}
	free(dr);
	free(mk.idx);
}

/* ---- messages ---- */

static void
qmsg_free(struct qmsg *qm)
{
	struct engine *e = qm->e;

	if (qm->prevp != NULL) {
		*qm->prevp = qm->next;
		if (qm->next != NULL)
			qm->next->prevp = qm->prevp;
		for (struct qmsg **pp = &e->byid[qm->id % ACTIVE_BUCKETS];
		    *pp != NULL; pp = &(*pp)->hnext)
			if (*pp == qm) {
				*pp = qm->hnext;
				break;
			}
	}
	if (qm->heap)
		free(qm->map);
	else if (qm->map != NULL && qm->map != MAP_FAILED)
		munmap(qm->map, qm->maplen);
	free(qm->rcpts);
	free(qm);
}

/* On the worker pool, after the messages' results are committed: the
   store's view again (so a delete or hold that came meanwhile is honoured:
   a deleted message gets no DSN), the DSNs, then the removal of those with
   nothing left to try, all in one transaction. Touches only the store and
   the qmsgs, never the loop. */
static void
settle_work(struct wop *op)
{
	struct engine *e = op->e;
	uint64_t *ids = xcalloc(op->nqms + 1, sizeof(*ids));
	bool *removed = xcalloc(op->nqms + 1, sizeof(*removed));
	size_t nids = 0;

	for (size_t i = 0; i < op->nqms; i++) {
		struct qmsg *qm = op->qms[i];
		struct store_queue_rcpt *fresh = NULL;
		size_t n = 0;

		if (store_queue_get(e->m->st, qm->id, &qm->msg, &fresh, &n) !=
		    STORE_OK) {
			free(fresh);
			continue;
		}
		free(qm->rcpts);
		qm->rcpts = fresh;
		qm->n = n;
		delay_dsns(e, qm, now_s());
		final_dsns(e, qm);
		ids[nids++] = qm->id;
	}
	if (nids > 0 && store_queue_finish_many(e->m->st, ids, nids,
	    removed) == STORE_OK)
		for (size_t i = 0; i < nids; i++)
			if (removed[i]) {
				char qid[24];

				store_queue_id_str(ids[i], qid, sizeof(qid));
				log_info("mtad %s removed", qid);
			}
	free(ids);
	free(removed);
}

/* Every group of the message is over: settle it behind its results (with
   the other messages settling then), then (rescan) look at the schedule
   again, as due messages that were busy were skipped. */
static void
qmsg_settle(struct qmsg *qm, bool rescan)
{
	struct engine *e = qm->e;
	struct wop *op = e->wq_tail;

	if (e->stopping) {
		qmsg_free(qm);
		return;
	}
	/* The last operation waiting is never started: it may grow. */
	if (op == NULL || op->kind != WOP_SETTLE) {
		op = xcalloc(1, sizeof(*op));
		op->kind = WOP_SETTLE;
		wq_link(e, op);
	}
	if (op->nqms == op->capqms) {
		op->capqms = op->capqms != 0 ? op->capqms * 2 : 16;
		op->qms = xrealloc(op->qms, op->capqms * sizeof(*op->qms));
	}
	op->qms[op->nqms++] = qm;
	op->rescan |= rescan;
	wq_kick(e);
}

static bool
is_active(struct engine *e, uint64_t id)
{
	for (struct qmsg *q = e->byid[id % ACTIVE_BUCKETS]; q != NULL;
	    q = q->hnext)
		if (q->id == id)
			return true;
	return false;
}

static bool
has_high_bytes(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

/* n bytes from the start of fd; -1 on an error or a short file. */
static int
read_all(int fd, char *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int
qmsg_map(struct qmsg *qm)
{
	struct stat sb;
	int fd;

	if (store_queue_open(qm->e->m->st, qm->id, &fd) != STORE_OK)
		return -1;
	if (fstat(fd, &sb) < 0) {
		close(fd);
		return -1;
	}
	qm->maplen = (size_t)sb.st_size;
	if (qm->maplen > 0 && qm->maplen <= READ_MAX) {
		qm->map = xmalloc(qm->maplen);
		qm->heap = true;
		if (read_all(fd, qm->map, qm->maplen) < 0) {
			close(fd);
			return -1;
		}
	} else if (qm->maplen > 0) {
		qm->map = mmap(NULL, qm->maplen, PROT_READ, MAP_PRIVATE, fd, 0);
		if (qm->map == MAP_FAILED) {
			qm->map = NULL;
			close(fd);
			return -1;
		}
	}
	close(fd);
	qm->jm.data = qm->map != NULL ? qm->map : "";
	qm->jm.len = qm->maplen;
	qm->jm.sender = qm->msg.sender;
	qm->jm.envid = qm->msg.envid;
	qm->jm.ret = qm->msg.ret;
	qm->jm.eightbit = has_high_bytes(qm->jm.data, qm->jm.len);
	qm->jm.needs_utf8 = has_high_bytes(qm->msg.sender,
	    strlen(qm->msg.sender));
	for (size_t i = 0; i < qm->n; i++)
		if (has_high_bytes(qm->rcpts[i].address,
		    strlen(qm->rcpts[i].address)))
			qm->jm.needs_utf8 = true;
	return 0;
}

/* Recipients still waiting past queue_lifetime bounce (5.4.7). */
static void
expire(struct engine *e, struct qmsg *qm, int64_t now)
{
	const struct config *c = e->m->cfg;
	char why[STORE_QUEUE_REPLY_MAX + 1];

	if (now - qm->msg.arrival < (int64_t)c->queue_lifetime)
		return;
	for (size_t i = 0; i < qm->n; i++) {
		struct store_queue_rcpt *q = &qm->rcpts[i];

		if (q->state != STORE_QS_PENDING &&
		    q->state != STORE_QS_DEFERRED)
			continue;
		snprintf(why, sizeof(why), "%s", q->reply[0] != '\0' ?
		    q->reply : "message expired in the queue");
		commit_result(qm, q->idx, STORE_QS_FAILED, "5.4.7", why,
		    q->remote[0] != '\0' ? q->remote : NULL, NULL, 0, 0);
	}
}

static void
group_queue(struct engine *e, struct group *g)
{
	struct group **pp = e->wait_tailp;

	g->next = NULL;
	g->prevp = pp;
	*pp = g;
	e->wait_tailp = &g->next;
}

/* Splits the due recipients of qm into groups and queues them. */
static void
qmsg_dispatch(struct engine *e, struct qmsg *qm, int64_t now)
{
	bool *taken = xcalloc(qm->n + 1, sizeof(bool));

	for (size_t i = 0; i < qm->n; i++) {
		struct store_queue_rcpt *q = &qm->rcpts[i];
		const char *dom;
		struct group *g;
		struct backoff *b;
		uint32_t idx[MTAD_MAX_RCPTS_PER_TXN];
		size_t ni = 0;

		if (taken[i] || (q->state != STORE_QS_PENDING &&
		    (q->state != STORE_QS_DEFERRED || q->next_attempt > now)))
			continue;
		dom = e->m->relay_host != NULL ? "" : domain_of(q->address);
		for (size_t k = i; k < qm->n && ni < MTAD_MAX_RCPTS_PER_TXN;
		    k++) {
			struct store_queue_rcpt *o = &qm->rcpts[k];

			if (taken[k] || (o->state != STORE_QS_PENDING &&
			    (o->state != STORE_QS_DEFERRED ||
			    o->next_attempt > now)))
				continue;
			if (e->m->relay_host == NULL &&
			    strcasecmp(domain_of(o->address), dom) != 0)
				continue;
			taken[k] = true;
			idx[ni++] = o->idx;
		}
		if (e->m->relay_host == NULL &&
		    (b = backoff_find(e, dom, now)) != NULL) {
			for (size_t k = 0; k < ni; k++)
				commit_result(qm, idx[k], STORE_QS_DEFERRED,
				    b->status, b->reason, NULL, NULL, 0,
				    b->until);
			continue;
		}
		g = xcalloc(1, sizeof(*g) + ni * sizeof(g->rcpts[0]));
		g->e = e;
		g->qm = qm;
		str_copy(g->domain, e->m->relay_host != NULL ?
		    e->m->relay_host : dom, sizeof(g->domain));
		g->dhash = domain_hash(g->domain);
		/* In flight from now on here; in the store once the scan's
		   WOP_BEGIN ran (scan_begin), then the group may start. */
		for (size_t k = 0; k < ni; k++) {
			qrcpt(qm, idx[k])->state = STORE_QS_INFLIGHT;
			g->rcpts[k].idx = idx[k];
		}
		g->n = ni;
		qm->groups++;
		if (e->nbegin == e->capbegin) {
			e->capbegin = e->capbegin != 0 ? e->capbegin * 2 : 64;
			e->begin = xrealloc(e->begin, e->capbegin *
			    sizeof(*e->begin));
		}
		e->begin[e->nbegin++] = g;
	}
	free(taken);
}

/* The groups the scan made go to the worker pool to be marked in flight. */
static void
scan_begin(struct engine *e, int64_t now)
{
	struct wop *op;

	if (e->nbegin == 0)
		return;
	op = xcalloc(1, sizeof(*op));
	op->kind = WOP_BEGIN;
	op->groups = e->begin;
	op->ngroups = e->nbegin;
	op->now = now;
	e->begin = NULL;
	e->nbegin = e->capbegin = 0;
	wq_push(e, op);
}

static void
process(struct engine *e, uint64_t id, int64_t now)
{
	struct qmsg *qm = xcalloc(1, sizeof(*qm));
	enum store_err err;

	qm->e = e;
	qm->id = id;
	store_queue_id_str(id, qm->qid, sizeof(qm->qid));
	err = store_queue_get(e->m->st, id, &qm->msg, &qm->rcpts, &qm->n);
	if (err == STORE_ECORRUPT) {
		log_warnx("mtad %s corrupt error=\"%s\" action=quarantine",
		    qm->qid, store_last_error());
		store_queue_quarantine(e->m->st, id);
		free(qm);
		return;
	}
	if (err != STORE_OK) {
		free(qm);
		return;
	}
	qm->next = e->active;
	if (qm->next != NULL)
		qm->next->prevp = &qm->next;
	qm->prevp = &e->active;
	e->active = qm;
	qm->hnext = e->byid[id % ACTIVE_BUCKETS];
	e->byid[id % ACTIVE_BUCKETS] = qm;
	if (qmsg_map(qm) < 0) {
		log_warnx("mtad %s unreadable error=\"%s\" action=quarantine",
		    qm->qid, store_last_error());
		store_queue_quarantine(e->m->st, id);
		qmsg_free(qm);
		return;
	}
	expire(e, qm, now);
	qmsg_dispatch(e, qm, now);
	if (qm->groups == 0)
		/* Nothing to try now: DSNs and removal, if done. */
		qmsg_settle(qm, false);
}

/* ---- the schedule ---- */

static void
scan(struct engine *e)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	int64_t next = 0, now = now_s();
	bool fresh = false;
	double wait;

	if (e->stopping)
		return;
	if (store_queue_due(e->m->st, now, SCAN_MAX, &ids, &n, &next) !=
	    STORE_OK) {
		log_warnx("mtad queue-read-failed error=\"%s\"",
		    store_last_error());
		next = now + 5;
	}
	for (size_t i = 0; i < n; i++) {
		if (is_active(e, ids[i]))
			continue;
		fresh = true;
		process(e, ids[i], now);
	}
	free(ids);
	scan_begin(e, now);
	start_waiting(e);
	/* Due messages that are busy come back when their attempt ends. */
	wait = next > 0 ? (double)(next - now) : 3600;
	if (n >= SCAN_MAX && fresh)
		wait = 0;
	if (wait < 0.05)
		wait = next > 0 && next <= now ? 1 : 0.05;
	ev_timer_stop(e->m->loop, &e->timer);
	ev_timer_set(&e->timer, wait, 0.);
	ev_timer_start(e->m->loop, &e->timer);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	scan(w->data);
}

static void
rescan_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	ev_idle_stop(loop, w);
	scan(w->data);
}

static void
schedule_scan(struct engine *e)
{
	if (!e->stopping)
		ev_idle_start(e->m->loop, &e->rescan);
}

struct engine *
engine_new(struct mtad *m)
{
	struct engine *e = xcalloc(1, sizeof(*e));

	e->m = m;
	ev_init(&e->timer, timer_cb);
	e->timer.data = e;
	ev_idle_init(&e->rescan, rescan_cb);
	e->wait_tailp = &e->waiting;
	ev_prepare_init(&e->start_soon, start_soon_cb);
	e->start_soon.data = e;
	e->rescan.data = e;
	return e;
}

static int
recover_report(void *arg, const char *id, const char *reason)
{
	log_warnx("mtad %s corrupt reason=\"%s\" action=moved-to-queue/corrupt",
	    id, reason);
	return 0;
}

void
engine_start(struct engine *e)
{
	struct store_queue_recover_stats stats;

	if (store_queue_recover(e->m->st, now_s(), recover_report, NULL,
	    &stats) != STORE_OK)
		log_warnx("mtad queue-recover-failed error=\"%s\"",
		    store_last_error());
	else
		log_info("mtad queue-recovered messages=%u inflight=%u "
		    "corrupt=%u orphans=%u", stats.messages, stats.inflight,
		    stats.corrupt, stats.orphans);
	schedule_scan(e);
}

void
engine_wake(struct engine *e)
{
	schedule_scan(e);
}

void
engine_stop(struct engine *e)
{
	e->stopping = true;
	ev_timer_stop(e->m->loop, &e->timer);
	ev_idle_stop(e->m->loop, &e->rescan);
	ev_prepare_stop(e->m->loop, &e->start_soon);
	/* Waiting groups: back to DEFERRED, due at once at the next start. */
	while (e->waiting != NULL) {
		struct group *g = e->waiting;

		group_unlink(g);
		e->nrunning++;      /* group_done counts it down */
		group_fail_all(g, STORE_QS_DEFERRED, "4.3.2", "mtad is stopping",
		    now_s());
		group_done(g);
	}
	while (e->idle != NULL)
		idle_close(e->idle);
	/* Running attempts end now (their recipients become DEFERRED);
	   lookups in progress end when the resolver is freed. */
	for (struct group *g = e->running, *nx; g != NULL; g = nx) {
		nx = g->next;
		if (g->job != NULL)
			smtp_job_abort(g->job);     /* calls job_done */
		else
			g->cancelled = true;
	}
}

void
engine_free(struct engine **ep)
{
	struct engine *e = *ep;

	if (e == NULL)
		return;
	*ep = NULL;
	while (e->active != NULL)
		qmsg_free(e->active);
	while (e->conns != NULL) {
		struct conn_state *cs = e->conns;

		e->conns = cs->next;
		free(cs);
	}
	free(e->unreleased);
	free(e);
}
