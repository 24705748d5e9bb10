/* imap_view: the selected mailbox as one session knows it, and its sync
   with the store. MSN i + 1 is msgs[i]; the array only changes at points
   where the client may be told (imap_view_sync). Session-local facts
   (\Recent, expunged but not yet told) live in the view's own records,
   never in the store's flags. */
#ifndef IMAP_VIEW_H
#define IMAP_VIEW_H

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
	struct fswatch *watch;
	bool dirty;                 /* a change notification arrived */
	bool gone;                  /* deleted elsewhere: BYE sent */
	/* \Recent: the uids of this session's last claim, [lo, hi); only
	   these are ever flagged recent here (RFC 3501 §2.3.2). */
	uint32_t recent_lo, recent_hi;
	bool claiming;              /* a claim is on a worker */
	bool claim_again;           /* unclaimed mail arrived meanwhile */
	uint64_t serial;            /* tells a claim's view apart */
};

/* Opens the view of mbox for SELECT/EXAMINE (reads the store; the caller
   runs it on a worker). Owned; free with imap_view_free. */
enum store_err imap_view_open(struct store *st, uint32_t user_id,
    const char *name, bool readonly, struct imap_view **v_r);
void imap_view_free(struct imap_view **v);
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
/* Number of messages that are \Recent for this session. */
size_t imap_view_recent_count(const struct imap_view *v);

/* The untagged FLAGS and PERMANENTFLAGS lines of the view's mailbox. */
void imap_buf_flags_update(struct buf *b, const struct imap_view *v);
/* "(\Seen \Flagged kw1 ...)" with \Recent for this session. */
void imap_buf_flags(struct buf *b, const struct imap_view *v,
    const struct imap_view_msg *m);

#endif
