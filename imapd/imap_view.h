/* imap_view: the selected mailbox as one session knows it, and its sync
   with the store. MSN i + 1 is msgs[i]; the array only changes at points
   where the client may be told (imap_view_sync). Session-local facts
   (\Recent, expunged but not yet told) live in the view's own records,
   never in the store's flags. */
#ifndef IMAP_VIEW_H
#define IMAP_VIEW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_session.h"

/* The system flags a view record carries (enum store_flag). */
#define IMAP_SYSTEM_FLAGS (STORE_F_SEEN | STORE_F_ANSWERED | \
	STORE_F_FLAGGED | STORE_F_DELETED | STORE_F_DRAFT)

/* One message of the view. Laid out to stay as small as struct store_msg
   (a SELECT of a large mailbox holds one per message). */
struct imap_view_msg {
	uint32_t uid;
	uint32_t flags;         /* STORE_F_* bits only */
	uint32_t keywords;      /* bit i: the mailbox's keyword i */
	bool recent;            /* \Recent for this session */
	bool expunged;          /* gone from the store, not yet told */
	bool untold;            /* flags changed since the SELECT, not told */
	uint64_t modseq;
	uint64_t size;
	int64_t internaldate;
	int32_t internal_tz;
};

struct fswatch;

struct imap_view {
	struct store_mailbox mb;    /* id, uidvalidity, uidnext, keyword names */
	bool readonly;              /* EXAMINE */
	struct imap_view_msg *msgs; /* owned */
	size_t n, cap;
	uint32_t reported_exists;   /* last EXISTS count sent */
	uint32_t reported_recent;   /* last RECENT count sent */
	uint32_t npending_expunge;  /* msgs with expunged set */
	uint32_t nrecent;           /* msgs with recent set (once loaded) */
	struct fswatch *watch;
	/* A change notification arrived, or the view was read behind the
	   store. Atomic: the watch sets it on the loop while a worker reading
	   the view (imap_view_load) may set it too. */
	atomic_bool dirty;
	bool gone;                  /* deleted elsewhere: BYE sent */
	/* \Recent: the uids of this session's last claim, [lo, hi); only
	   these are ever flagged recent here (RFC 3501 §2.3.2). A message at
	   or past hi is held back (not in msgs, not announced) until a claim
	   covers it, so that the EXISTS announcing it is followed by a RECENT
	   that counts it if it is this session's. */
	uint32_t recent_lo, recent_hi;
	/* the SELECT's own range, kept for the load: a claim made before the
	   view is read moves [lo, hi) past it */
	uint32_t sel_recent_lo, sel_recent_hi;
	bool claiming;              /* a claim or load is on a worker */
	bool claim_again;           /* unclaimed mail arrived meanwhile */
	uint32_t nheld;             /* messages held back at the last read */
	uint64_t serial;            /* tells a claim's view apart */
	/* SELECT answers from the mailbox record; msgs is read by the first
	   command that follows (imap_view_prepare), or at once for QRESYNC. */
	bool loaded;
	uint32_t snap_exists;       /* EXISTS the SELECT reported */
	uint32_t snap_recent;       /* RECENT the SELECT reported */
	uint32_t first_unseen;      /* the SELECT's [UNSEEN n], 0: none */
	uint64_t snap_modseq;       /* its HIGHESTMODSEQ */
	uint32_t snap_uidnext;      /* its UIDNEXT */
	/* The command that waits for the worker job (imap_view_prepare). */
	bool cmd_waiting;
	const struct imap_arg *wait_args, *wait_end;
};

/* Opens the view of mbox for SELECT/EXAMINE (reads the store; the caller
   runs it on a worker). Owned; free with imap_view_free. */
enum store_err imap_view_open(struct store *st, uint32_t user_id,
    const char *name, bool readonly, struct imap_view **v_r);
void imap_view_free(struct imap_view **v);
/* Reads the view's messages (worker or loop): those of the SELECT's
   snapshot, those expunged since (to be told), and those delivered since
   (held back or announced at the next sync). */
enum store_err imap_view_load(struct store *st, struct imap_view *v);
/* Before a command of the selected state runs: reads the view if it was
   not yet, and claims \Recent for mail past this session's claim, on a
   worker. true: the command was parked (input paused) and runs from
   imap_cmd_call when that is done; false: run it now. */
bool imap_view_prepare(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end);
/* \Recent for messages this session adds to its own selected mailbox
   (APPEND, COPY): the command's worker claims right after its commit,
   so that the reply's EXISTS comes with a RECENT that counts them. */
struct imap_view_claim {
	struct store *st;
	uint32_t mbox_id;       /* 0: nothing to claim */
	uint32_t lo, hi;        /* out: the claim, hi 0 if it failed */
};
/* Loop, when the command starts: whether the target is the session's
   selected mailbox, read-write (then c->mbox_id is set). */
void imap_view_claim_init(struct imap_session *s, uint32_t target_mbox,
    struct imap_view_claim *c);
/* Worker, after the commit. */
void imap_view_claim_work(struct imap_view_claim *c);
/* Loop, before the reply: the view takes the claim. */
void imap_view_claim_take(struct imap_session *s,
    const struct imap_view_claim *c);
/* Starts watching the mailbox for changes of other sessions. */
void imap_view_watch(struct imap_session *s);
/* Brings the view up to date with the store and queues the untagged
   EXISTS/RECENT/FETCH (and EXPUNGE if allow_expunge) replies. uid_fetch:
   the running command is a UID command (its FETCH lines carry the UID). */
void imap_view_sync(struct imap_session *s, bool allow_expunge,
    bool uid_fetch);
/* MSN (1-based) of uid, or 0. Binary search. */
uint32_t imap_view_msn(const struct imap_view *v, uint32_t uid);
/* Marks uids as expunged (told at the next sync that allows it). */
void imap_view_mark_expunged(struct imap_view *v, const uint32_t *uids,
    size_t n);
/* Takes a flag change the store reported for m (flags, keywords, modseq
   after it). */
void imap_view_msg_update(struct imap_view_msg *m, uint32_t flags,
    uint32_t keywords, uint64_t modseq);
/* Number of messages that are \Recent for this session (the SELECT's
   count until the view is read). */
size_t imap_view_recent_count(const struct imap_view *v);

/* The untagged FLAGS and PERMANENTFLAGS lines of the view's mailbox. */
void imap_buf_flags_update(struct buf *b, const struct imap_view *v);
/* "(\Seen \Flagged kw1 ...)" with \Recent for this session. */
void imap_buf_flags(struct buf *b, const struct imap_view *v,
    const struct imap_view_msg *m);

#endif
