/* store_view: the one read of a mailbox's message heads that an IMAP
   session's view is built from, without an intermediate array. */
#ifndef STORE_VIEW_H
#define STORE_VIEW_H

#include "store.h"

/* Called once per message in uid order. m is only valid during the call. */
typedef void (*store_msg_scan_fn)(void *arg, const struct store_msg *m);

/* One read snapshot of mbox: fills *mb_r first (so that fn may size its
   storage from mb_r->messages), then calls fn for every message. Only the
   fixed head of each record is read (no file name, no cache). */
enum store_err store_msg_scan(struct store *st, uint32_t mbox_id,
    struct store_mailbox *mb_r, store_msg_scan_fn fn, void *arg);

#endif
