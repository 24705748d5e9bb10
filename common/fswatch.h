/* fswatch: change notification between processes through inotify. One
   inotify descriptor per process, shared by every watcher of the same path,
   so 10,000 IDLE sessions on one mailbox cost one kernel watch. */
#ifndef POSTROOM_FSWATCH_H
#define POSTROOM_FSWATCH_H

#include <ev.h>

struct fswatch;

/* Calls cb(arg) on the loop thread soon (< 50 ms) after path is modified,
   written or touched. Bursts may be coalesced into one call. path must exist.
   Owned; NULL with errno set on failure. */
struct fswatch *fswatch_new(struct ev_loop *loop, const char *path,
    void (*cb)(void *arg), void *arg);
void fswatch_free(struct fswatch **w);

#endif
