/* worker: a fixed pool of pthreads taking jobs from one FIFO queue. A
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

struct worker_pool {
	struct ev_loop *loop;
	ev_async async;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct job_list queue;      /* waiting to start, FIFO */
	struct job_list done;       /* finished, done() not yet run */
	pthread_t *threads;
	unsigned nthreads;
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
	struct worker_pool *p = arg;
	struct job *j;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->queue.head == NULL && !p->stop)
			pthread_cond_wait(&p->cond, &p->mu);
		j = list_pop(&p->queue);
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

struct worker_pool *
worker_pool_new(struct ev_loop *loop, unsigned nthreads)
{
	struct worker_pool *p = xcalloc(1, sizeof(*p));
	sigset_t all, old;

	assert(nthreads >= 1);
	p->loop = loop;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cond, NULL);
	list_init(&p->queue);
	list_init(&p->done);
	ev_async_init(&p->async, worker_async_cb);
	p->async.data = p;
	ev_async_start(loop, &p->async);
	p->threads = xcalloc(nthreads, sizeof(*p->threads));
	/* Threads inherit the mask: a signal must never land on a worker,
	   where libev's signalfd would not see it. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0)
			fatalx("worker: cannot create thread %u", i);
		p->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return p;
}

void
worker_submit(struct worker_pool *p, void (*work)(void *arg),
    void (*done)(void *arg), void *arg)
{
	struct job *j = xmalloc(sizeof(*j));

	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->mu);
	list_push(&p->queue, j);
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
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
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	ev_async_stop(p->loop, &p->async);
	/* A done() may submit more work (the pool is still valid until we
	   return): with the threads gone, run it here until nothing is left. */
	for (;;) {
		worker_run_done(p);
		pthread_mutex_lock(&p->mu);
		j = list_pop(&p->queue);
		pthread_mutex_unlock(&p->mu);
		if (j == NULL)
			break;
		j->work(j->arg);
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	free(p->threads);
	free(p);
	*pp = NULL;
}
