/* worker: a small thread pool for anything that blocks (fsync, LMDB writes,
   Argon2id), reporting back on the loop thread through ev_async. Jobs go
   to a lane: the IO lane (the pool's threads) and, once started, a CPU
   lane with threads of its own, so that long CPU work (a storm of
   password hashes) never makes disk work wait behind it. */
#ifndef POSTROOM_WORKER_H
#define POSTROOM_WORKER_H

#include <stdbool.h>

#include <ev.h>

struct worker_pool;

enum worker_lane {
	WORKER_LANE_IO,         /* disk work: the threads of worker_pool_new */
	WORKER_LANE_CPU,        /* password hashing */
	WORKER_NLANES,
};

/* Owned; nthreads >= 1. */
struct worker_pool *worker_pool_new(struct ev_loop *loop, unsigned nthreads);
/* Waits for queued work to finish (done callbacks are run), then frees. */
void worker_pool_free(struct worker_pool **p);

/* Runs work(arg) on a pool thread, then done(arg) on the loop thread. FIFO
   order of start; never blocks the caller. work must not touch libev or
   connections; done may. */
void worker_submit(struct worker_pool *p, void (*work)(void *arg),
    void (*done)(void *arg), void *arg);
/* The same on lane: FIFO within the lane. A lane without threads of its
   own (not started) runs its jobs on the IO lane. */
void worker_submit_lane(struct worker_pool *p, enum worker_lane lane,
    void (*work)(void *arg), void (*done)(void *arg), void *arg);
/* Gives lane nthreads (>= 1) threads of its own; once: false, and nothing
   done, if it has them already. Loop thread. */
bool worker_pool_start_lane(struct worker_pool *p, enum worker_lane lane,
    unsigned nthreads);

#endif
