/* Unit tests for common/worker.c: work runs off the loop thread, done runs
   on it, FIFO start order, completion order with one thread, and
   worker_pool_free waiting for queued work (running its done callbacks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

#define NJOBS 200

static pthread_t loop_thread;
static struct ev_loop *loop;
static int order[NJOBS];
static int ndone;
static atomic_int nwork;
static atomic_int started[NJOBS];
static atomic_int start_seq;
static bool work_on_loop_thread;

struct job {
	int id;
	int start_pos;
};

static void
job_work(void *arg)
{
	struct job *j = arg;

	if (pthread_equal(pthread_self(), loop_thread))
		work_on_loop_thread = true;
	j->start_pos = atomic_fetch_add(&start_seq, 1);
	if (j->id % 17 == 0)
		usleep(1000);
	atomic_fetch_add(&nwork, 1);
}

static void
job_done(void *arg)
{
	struct job *j = arg;

	assert_true(pthread_equal(pthread_self(), loop_thread));
	order[ndone++] = j->id;
	started[j->id] = j->start_pos;
	free(j);
	if (ndone == NJOBS)
		ev_break(loop, EVBREAK_ALL);
}

static void
submit_all(struct worker_pool *p)
{
	for (int i = 0; i < NJOBS; i++) {
		struct job *j = calloc(1, sizeof(*j));

		j->id = i;
		worker_submit(p, job_work, job_done, j);
	}
}

static void
reset(void)
{
	ndone = 0;
	atomic_store(&nwork, 0);
	atomic_store(&start_seq, 0);
	work_on_loop_thread = false;
	loop_thread = pthread_self();
	loop = ev_loop_new(EVFLAG_AUTO);
}

static void
test_single_thread_order(void **state)
{
	struct worker_pool *p;

	reset();
	p = worker_pool_new(loop, 1);
	submit_all(p);
	ev_run(loop, 0);
	assert_int_equal(ndone, NJOBS);
	/* One thread: start order and completion order are submit order. */
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(order[i], i);
		assert_int_equal(started[i], i);
	}
	assert_false(work_on_loop_thread);
	worker_pool_free(&p);
	assert_null(p);
	ev_loop_destroy(loop);
}

static void
test_many_threads(void **state)
{
	struct worker_pool *p;
	int seen[NJOBS] = { 0 };

	reset();
	p = worker_pool_new(loop, 4);
	submit_all(p);
	ev_run(loop, 0);
	assert_int_equal(ndone, NJOBS);
	for (int i = 0; i < NJOBS; i++)
		seen[order[i]]++;
	for (int i = 0; i < NJOBS; i++)
		assert_int_equal(seen[i], 1);
	/* (Start order across threads is FIFO at the dequeue, which a job
	   cannot observe: two threads race between dequeue and run.) */
	worker_pool_free(&p);
	ev_loop_destroy(loop);
}

static void
test_free_waits(void **state)
{
	struct worker_pool *p;

	reset();
	p = worker_pool_new(loop, 3);
	submit_all(p);
	/* No loop run at all: free must finish the work and run every
	   done callback here. */
	worker_pool_free(&p);
	assert_int_equal(atomic_load(&nwork), NJOBS);
	assert_int_equal(ndone, NJOBS);
	ev_loop_destroy(loop);
}

static struct worker_pool *chain_pool;
static int chain_left;

static void
chain_work(void *arg)
{
}

static void
chain_done(void *arg)
{
	if (--chain_left > 0)
		worker_submit(chain_pool, chain_work, chain_done, NULL);
}

static void
test_free_with_resubmit(void **state)
{
	reset();
	chain_pool = worker_pool_new(loop, 2);
	chain_left = 10;
	worker_submit(chain_pool, chain_work, chain_done, NULL);
	worker_pool_free(&chain_pool);
	assert_int_equal(chain_left, 0);
	ev_loop_destroy(loop);
}

/* ---- lanes ---- */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static bool cpu_done, io_done_first;
static struct worker_pool *lane_pool;

/* A long CPU job: blocks until the IO job's done() opens the gate. */
static void
cpu_work(void *arg)
{
	pthread_mutex_lock(&gate_mu);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
}

static void
cpu_job_done(void *arg)
{
	cpu_done = true;
	ev_break(loop, EVBREAK_ALL);
}

static void
io_job_done(void *arg)
{
	io_done_first = !cpu_done;
	pthread_mutex_lock(&gate_mu);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_mu);
}

static void
test_lanes_independent(void **state)
{
	reset();
	gate_open = cpu_done = io_done_first = false;
	/* One IO thread and one CPU thread: the IO job submitted after a
	   CPU job that cannot finish until the IO job is done must not wait
	   behind it (with one shared FIFO this would deadlock). */
	lane_pool = worker_pool_new(loop, 1);
	assert_true(worker_pool_start_lane(lane_pool, WORKER_LANE_CPU, 1));
	assert_false(worker_pool_start_lane(lane_pool, WORKER_LANE_CPU, 3));
	worker_submit_lane(lane_pool, WORKER_LANE_CPU, cpu_work, cpu_job_done,
	    NULL);
	worker_submit_lane(lane_pool, WORKER_LANE_CPU, cpu_work, NULL, NULL);
	worker_submit(lane_pool, chain_work, io_job_done, NULL);
	ev_run(loop, 0);
	assert_true(cpu_done);
	assert_true(io_done_first);
	worker_pool_free(&lane_pool);
	ev_loop_destroy(loop);
}

static void
test_lane_not_started(void **state)
{
	struct worker_pool *p;

	reset();
	/* A lane without threads runs its jobs on the IO lane, in order;
	   free runs what is left. */
	p = worker_pool_new(loop, 1);
	for (int i = 0; i < NJOBS; i++) {
		struct job *j = calloc(1, sizeof(*j));

		j->id = i;
		worker_submit_lane(p, i % 2 ? WORKER_LANE_CPU : WORKER_LANE_IO,
		    job_work, job_done, j);
	}
	ev_run(loop, 0);
	for (int i = 0; i < NJOBS; i++)
		assert_int_equal(order[i], i);
	worker_pool_free(&p);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_thread_order),
		cmocka_unit_test(test_many_threads),
		cmocka_unit_test(test_free_waits),
		cmocka_unit_test(test_free_with_resubmit),
		cmocka_unit_test(test_lanes_independent),
		cmocka_unit_test(test_lane_not_started),
	};

	log_init("test", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
