/* imap_names: the background catch-up of maildir file names after a
   deferred (index-only) flag change. One batch at a time on the worker
   pool, each a job of its own, so that a command's job never waits
   behind more than one batch. */
#ifndef POSTROOM_IMAP_NAMES_H
#define POSTROOM_IMAP_NAMES_H

#include <stdint.h>

#include "daemon.h"

/* Files renamed per batch (one write transaction each). It holds the
   store's writer lock: 500 keeps a STORE arriving meanwhile within a few
   ms of its usual time (2,000 made it wait tens of ms on 2 loaded cores),
   and 100,000 names still settle in about 5 s. */
#define IMAP_NAMES_BATCH 500

/* Queues mbox_id's names for a catch-up (after the write's reply went
   out). Loop thread. */
void imap_names_schedule(struct daemon *d, uint32_t mbox_id);
/* At start: queues every mailbox whose names may be behind (a catch-up
   that a stop or a crash cut short). The daemon's start hook. */
int imap_names_start(struct daemon *d, char *err, size_t errlen);

#endif
