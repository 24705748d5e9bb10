/* worker: a small thread pool for anything that blocks (fsync, LMDB writes,
   Argon2id), reporting back on the loop thread through ev_async. */
#ifndef POSTROOM_WORKER_H
#define POSTROOM_WORKER_H

#include <ev.h>

struct worker_pool;

/* Owned; nthreads >= 1. */
struct worker_pool *worker_pool_new(struct ev_loop *loop, unsigned nthreads);
/* Waits for queued work to finish (done callbacks are run), then frees. */
void worker_pool_free(struct worker_pool **p);

/* Runs work(arg) on a pool thread, then done(arg) on the loop thread. FIFO
   order of start; never blocks the caller. work must not touch libev or
   connections; done may. */
void worker_submit(struct worker_pool *p, void (*work)(void *arg),
    void (*done)(void *arg), void *arg);

#endif
