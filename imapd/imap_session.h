/* imap_session: one IMAP connection. The session struct, its states, the
   command table entry type, the selected-mailbox view (msn = index + 1) and
   the reply helpers every command file uses. Command families live in
   cmd_*.c; extensions add a cmd_<ext>.c and a line in imap_dispatch.c. */
#ifndef IMAP_SESSION_H
#define IMAP_SESSION_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "proto_limits.h"
#include "sasl.h"
#include "store.h"
#include "worker.h"

#include "imap_parser.h"

/* Session states (bit mask, for the command table). */
enum imap_state {
	IMAP_ST_NOT_AUTH = 1 << 0,
	IMAP_ST_AUTH     = 1 << 1,
	IMAP_ST_SELECTED = 1 << 2,
	IMAP_ST_LOGOUT   = 1 << 3,
};
#define IMAP_ST_ANY (IMAP_ST_NOT_AUTH | IMAP_ST_AUTH | IMAP_ST_SELECTED)
#define IMAP_ST_AUTHED (IMAP_ST_AUTH | IMAP_ST_SELECTED)

enum cmd_result {
	CMD_DONE,       /* the tagged reply is queued */
	CMD_SUSPEND,    /* async work (worker, literal, drain): the command ends
	                   later with imap_cmd_finish() */
	CMD_CLOSE,      /* close after flushing (LOGOUT, BYE) */
};

/* Listen tags. */
enum { IMAP_LISTEN_PLAIN = 0, IMAP_LISTEN_IMPLICIT_TLS = 1 };

/* The protocol limits (IMAP_LINE_MAX ...) are in proto_limits.h. */
#define IMAP_PREAUTH_TIMEOUT   60.0

/* Process-wide state (one per imapd). */
struct imap_daemon {
	struct ev_loop *loop;
	const struct config *cfg;
	struct server *srv;
	struct store *store;
	struct worker_pool *workers;
	struct auth_throttle *throttle;
};

/* Session-local bits kept in the view's store_msg.flags beside the stored
   system flags. */
#define IMAP_VF_RECENT    (1u << 31)    /* \Recent for this session */
#define IMAP_VF_EXPUNGED  (1u << 30)    /* gone from the store, not yet told */
#define IMAP_VF_SYSTEM    0x1fu         /* STORE_F_* bits */

struct fswatch;

/* The selected mailbox as this session knows it. msgs[i] is MSN i + 1 and
   only changes at points where the client may be told (imap_view_sync). */
struct imap_view {
	struct store_mailbox mb;    /* id, uidvalidity, uidnext, keyword names */
	bool readonly;              /* EXAMINE */
	struct store_msg *msgs;     /* owned */
	size_t n, cap;
	uint32_t reported_exists;   /* last EXISTS count sent */
	uint32_t reported_recent;   /* last RECENT count sent */
	uint32_t npending_expunge;  /* msgs with IMAP_VF_EXPUNGED */
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

struct imap_session;

typedef enum cmd_result imap_cmd_fn(struct imap_session *s,
    const struct imap_arg *args, const struct imap_arg *end);

#define IMAP_CMDF_UID         (1u << 0) /* also valid after "UID " */
#define IMAP_CMDF_NO_EXPUNGE  (1u << 1) /* FETCH/STORE/SEARCH by MSN */
#define IMAP_CMDF_NO_SYNC     (1u << 2) /* never send untagged updates */

struct imap_cmd_def {
	const char *name;
	unsigned states;            /* enum imap_state mask */
	unsigned flags;             /* IMAP_CMDF_* */
	imap_cmd_fn *fn;
};

struct imap_append;             /* cmd_append.c */
struct imap_fetch;              /* cmd_fetch.c */

struct imap_session {
	struct imap_daemon *d;
	struct conn *c;
	enum imap_state state;
	struct imap_parser *parser;
	bool implicit_tls;

	/* The running command. tag is owned (copied from the parser). */
	char *tag;
	const struct imap_cmd_def *cur;
	bool uid_cmd;               /* "UID FETCH" etc. */
	bool running;               /* a command is between start and finish */
	unsigned bad_count;         /* BADs in a row */
	unsigned auth_fails;

	struct store_user user;     /* valid once authenticated */
	struct imap_view *sel;      /* NULL unless IMAP_ST_SELECTED */

	/* AUTHENTICATE in progress (continuation lines are not commands). */
	bool in_sasl;
	struct sasl_server sasl;

	struct imap_append *append; /* APPEND literal being streamed */
	struct imap_fetch *fetch;   /* FETCH reply being streamed */
	bool closing;
	bool paused;                /* input paused by the running command */
	bool force_sync;            /* next imap_view_sync reads the store */
	ev_timer *auth_timer;       /* failed-login delay; owned */
	/* Called when another session or process changed the selected
	   mailbox (for IDLE). May be NULL. */
	void (*view_changed_hook)(struct imap_session *s);
	void *ext;                  /* for extension state */
};

/* ---- session (imap_session.c) ---- */

/* Writes state and logs the transition at debug level. */
void imap_set_state(struct imap_session *s, enum imap_state st);
/* Ends the running command: the tagged reply must already be queued.
   Resumes input processing (pipelined commands). */
void imap_cmd_finish(struct imap_session *s);
/* Runs work(arg) on a worker thread, then done(s, arg) on the loop; input
   is paused and the session kept alive meanwhile. The handler returns
   CMD_SUSPEND and done() ends with imap_cmd_finish() (or closes). */
void imap_session_submit(struct imap_session *s, void (*work)(void *arg),
    void (*done)(struct imap_session *s, void *arg), void *arg);
/* One raw input line that is not a command (an AUTHENTICATE response,
   IDLE's DONE), without its CRLF. Returns 1 with *p_r and *len_r borrowed
   from the input buffer (consume *used_r bytes when done with it), 0 if
   more input is needed, -1 if max bytes came without a LF. */
int imap_raw_line(struct imap_session *s, size_t max, const char **p_r,
    size_t *len_r, size_t *used_r);
/* Capability list for the current state, without "* CAPABILITY ". */
void imap_capability_string(const struct imap_session *s, struct buf *out);

/* ---- selected-mailbox view (imap_session.c) ---- */

/* Opens the view of mbox for SELECT/EXAMINE (reads the store; the caller
   runs it on a worker). Owned; free with imap_view_free. */
enum store_err imap_view_open(struct store *st, uint32_t user_id,
    const char *name, bool readonly, struct imap_view **v_r);
void imap_view_free(struct imap_view **v);
/* Starts watching the mailbox for changes of other sessions. */
void imap_view_watch(struct imap_session *s);
/* Brings the view up to date with the store and queues the untagged
   EXISTS/RECENT/FETCH (and EXPUNGE if allow_expunge) replies. */
void imap_view_sync(struct imap_session *s, bool allow_expunge);
/* MSN (1-based) of uid, or 0. Binary search. */
uint32_t imap_view_msn(const struct imap_view *v, uint32_t uid);
/* Marks uids as expunged (told at the next sync that allows it). */
void imap_view_mark_expunged(struct imap_view *v, const uint32_t *uids,
    size_t n);

/* The conn callbacks of imapd; d must outlive every session. */
const struct conn_handlers *imap_session_handlers(struct imap_daemon *d);

/* ---- replies (imap_reply.c) ---- */

void imap_reply_tagged(struct imap_session *s, const char *status,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void imap_reply_untagged(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "+ text" */
void imap_reply_continue(struct imap_session *s, const char *text);
/* Tagged NO/BAD for a store error, the one mapping of store errors. */
void imap_reply_store_err(struct imap_session *s, enum store_err e,
    const char *what);
/* Appends s[0..len) as an IMAP string: an atom-safe quoted string, or a
   literal if it has CR, LF, NUL, '"'/'\\' plus 8-bit, or is long. */
void imap_buf_string(struct buf *b, const char *str, size_t len);
/* A mailbox name (UTF-8 internally) as modified UTF-7 string. */
void imap_buf_mailbox(struct buf *b, const char *utf8_name);
/* The untagged FLAGS and PERMANENTFLAGS lines of the view's mailbox. */
void imap_buf_flags_update(struct buf *b, const struct imap_view *v);
/* "(\Seen \Flagged kw1 ...)" with \Recent from IMAP_VF_RECENT. */
void imap_buf_flags(struct buf *b, const struct imap_view *v,
    uint32_t flags, uint32_t keywords);
/* Queues b and resets it. */
void imap_send_buf(struct imap_session *s, struct buf *b);

/* ---- dispatch (imap_dispatch.c) ---- */

const struct imap_cmd_def *imap_cmd_lookup(const char *name);

#endif
