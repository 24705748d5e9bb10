/* worker: fixed sets of pthreads, one per lane, each taking jobs from its
   lane's FIFO queue (the IO lane's threads exist from the start, a CPU
   lane's when it is started). A
   finished job goes on a done list and the loop thread is woken with
   ev_async to run its done() callback, so done() may touch libev and
   connections while work() must not. The threads block every signal: the
   loop thread alone handles SIGTERM/SIGHUP. */
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"
#include "worker.h"

struct job {
	struct job *next;
	void (*work)(void *arg);
	void (*done)(void *arg);
	void *arg;
};

struct job_list {
	struct job *head, **tail;
};

struct worker_thread {
	pthread_t tid;
	struct worker_pool *p;
	enum worker_lane lane;
};

struct worker_pool {
	struct ev_loop *loop;
	ev_async async;
	pthread_mutex_t mu;
	pthread_cond_t cond[WORKER_NLANES];
	struct job_list queue[WORKER_NLANES];   /* waiting to start, FIFO */
	struct job_list done;       /* finished, done() not yet run */
	struct worker_thread *threads[WORKER_NLANES];
	unsigned nthreads[WORKER_NLANES];
	bool stop;
};

static void
list_init(struct job_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
}

static void
list_push(struct job_list *l, struct job *j)
{
	j->next = NULL;
	*l->tail = j;
	l->tail = &j->next;
}

static struct job *
list_pop(struct job_list *l)
{
	struct job *j = l->head;

	if (j != NULL) {
		l->head = j->next;
		if (l->head == NULL)
			l->tail = &l->head;
	}
	return j;
}

static void *
worker_main(void *arg)
{
	struct worker_thread *t = arg;
	struct worker_pool *p = t->p;
	struct job_list *q = &p->queue[t->lane];
	struct job *j;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (q->head == NULL && !p->stop)
			pthread_cond_wait(&p->cond[t->lane], &p->mu);
		j = list_pop(q);
		if (j == NULL)
			break;	/* stopping and the queue is drained */
		pthread_mutex_unlock(&p->mu);
		j->work(j->arg);
		pthread_mutex_lock(&p->mu);
		list_push(&p->done, j);
		pthread_mutex_unlock(&p->mu);
		ev_async_send(p->loop, &p->async);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Runs the done() callbacks of finished jobs, in completion order. */
static void
worker_run_done(struct worker_pool *p)
{
	struct job_list l;
	struct job *j;

	pthread_mutex_lock(&p->mu);
	l = p->done;
	list_init(&p->done);
	pthread_mutex_unlock(&p->mu);
	if (l.head == NULL)
		return;
	while ((j = list_pop(&l)) != NULL) {
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

static void
worker_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	worker_run_done(w->data);
}

/* Starts n threads serving lane. */
static void
start_threads(struct worker_pool *p, enum worker_lane lane, unsigned n)
{
	sigset_t all, old;

	p->threads[lane] = xcalloc(n, sizeof(struct worker_thread));
	/* Threads inherit the mask: a signal must never land on a worker,
	   where libev's signalfd would not see it. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < n; i++) {
		struct worker_thread *t = &p->threads[lane][i];

		t->p = p;
		t->lane = lane;
		if (pthread_create(&t->tid, NULL, worker_main, t) != 0)
			fatalx("worker: cannot create thread %u", i);
		p->nthreads[lane]++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

struct worker_pool *
worker_pool_new(struct ev_loop *loop, unsigned nthreads)
{
	struct worker_pool *p = xcalloc(1, sizeof(*p));

	assert(nthreads >= 1);
	p->loop = loop;
	pthread_mutex_init(&p->mu, NULL);
	for (int l = 0; l < WORKER_NLANES; l++) {
		pthread_cond_init(&p->cond[l], NULL);
		list_init(&p->queue[l]);
	}
	list_init(&p->done);
	ev_async_init(&p->async, worker_async_cb);
	p->async.data = p;
	ev_async_start(loop, &p->async);
	start_threads(p, WORKER_LANE_IO, nthreads);
	return p;
}

bool
worker_pool_start_lane(struct worker_pool *p, enum worker_lane lane,
    unsigned nthreads)
{
	assert(nthreads >= 1 && lane < WORKER_NLANES);
	if (p->nthreads[lane] > 0)
		return false;
	start_threads(p, lane, nthreads);
	return true;
}

void
worker_submit_lane(struct worker_pool *p, enum worker_lane lane,
    void (*work)(void *arg), void (*done)(void *arg), void *arg)
{
	struct job *j = xmalloc(sizeof(*j));

	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->mu);
	/* Read under the lock: nthreads of a lane is only written by the
	   loop thread, which is the one submitting. */
	if (lane >= WORKER_NLANES || p->nthreads[lane] == 0)
		lane = WORKER_LANE_IO;
	list_push(&p->queue[lane], j);
	pthread_cond_signal(&p->cond[lane]);
	pthread_mutex_unlock(&p->mu);
}

void
worker_submit(struct worker_pool *p, void (*work)(void *arg),
    void (*done)(void *arg), void *arg)
{
	worker_submit_lane(p, WORKER_LANE_IO, work, done, arg);
}

/* A job still queued on any lane (the threads are gone). */
static struct job *
pop_any(struct worker_pool *p)
{
	struct job *j = NULL;

	pthread_mutex_lock(&p->mu);
	for (int l = 0; l < WORKER_NLANES && j == NULL; l++)
		j = list_pop(&p->queue[l]);
	pthread_mutex_unlock(&p->mu);
	return j;
}

void
worker_pool_free(struct worker_pool **pp)
{
	struct worker_pool *p = *pp;
	struct job *j;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	for (int l = 0; l < WORKER_NLANES; l++)
		pthread_cond_broadcast(&p->cond[l]);
	pthread_mutex_unlock(&p->mu);
	for (int l = 0; l < WORKER_NLANES; l++)
		for (unsigned i = 0; i < p->nthreads[l]; i++)
			pthread_join(p->threads[l][i].tid, NULL);
	ev_async_stop(p->loop, &p->async);
	/* A done() may submit more work (the pool is still valid until we
	   return): with the threads gone, run it here until nothing is left. */
	for (;;) {
		worker_run_done(p);
		if ((j = pop_any(p)) == NULL)
			break;
		j->work(j->arg);
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
	pthread_mutex_destroy(&p->mu);
	for (int l = 0; l < WORKER_NLANES; l++) {
		pthread_cond_destroy(&p->cond[l]);
		free(p->threads[l]);
	}
	free(p);
	*pp = NULL;
}
