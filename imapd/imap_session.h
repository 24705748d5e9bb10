/* imap_session: one IMAP connection. The session struct with a typed
   field for every feature's per-session state, its states, the running
   command's context, the process-wide daemon handle and the reply helpers
   (imap_reply.c) every command file uses. The command table is in
   imap_commands.c, the selected-mailbox view in imap_view.c. */
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
#include "daemon.h"
#include "proto_limits.h"
#include "login.h"
#include "sasl.h"
#include "session.h"
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

/* The status of a tagged reply. */
enum imap_status { IMAP_OK, IMAP_NO, IMAP_BAD };

/* Listen tags. */
enum { IMAP_LISTEN_PLAIN = 0, IMAP_LISTEN_IMPLICIT_TLS = 1 };

/* The protocol limits (IMAP_LINE_MAX ...) are in proto_limits.h. */
#define IMAP_PREAUTH_TIMEOUT   60.0

struct imap_session;
struct imap_view;
struct imap_cmd_def;

/* What a waiting command waits for (struct imap_cmd_ctx.wait). */
enum imap_wait {
	IMAP_WAIT_NONE,     /* not waiting, or on a worker (input paused) */
	IMAP_WAIT_INPUT,    /* its continuation reads the input (AUTHENTICATE's
	                       responses, IDLE's DONE, APPEND's literal) */
	IMAP_WAIT_DRAIN,    /* its continuation runs when the output drained
	                       (a streamed FETCH) */
};

/* A continuation: the command goes on. For IMAP_WAIT_INPUT it returns 1
   if it consumed input or changed the wait (the session loops), 0 if it
   needs more input (or the session is closing). For IMAP_WAIT_DRAIN the
   return value is not used. */
typedef int imap_cont_fn(struct imap_session *s);

/* The running command. Owned by the session (s->cmd) from its start (or,
   for APPEND, from its message literal's announcement) to
   imap_cmd_finish(). */
struct imap_cmd_ctx {
	char *tag;                      /* owned copy */
	const struct imap_cmd_def *def; /* NULL until dispatched */
	bool uid;                       /* a "UID x" row */
	bool started;                   /* its handler was called */
	enum imap_wait wait;
	imap_cont_fn *continuation;
	void *state;                    /* the command's own, freed by */
	void (*state_free)(void *state); /* this at finish or close */
};

/* SEARCHRES (RFC 5182): the UIDs the last SEARCH RETURN (SAVE) saved. */
struct imap_searchres {
	uint32_t *uids;                 /* owned, ascending */
	size_t n;
};

/* IDLE (RFC 2177) while the command runs. */
struct imap_idle {
	bool active;
	bool trim_next;                 /* the timer trims; else keep-alive */
	ev_timer timer;                 /* only running while active */
};

struct imap_session {
	/* The session core: the daemon (base.d), the conn (base.c), the state
	   (base.state, enum imap_state, written by imap_set_state), closing. */
	struct session base;
	struct imap_parser *parser;
	bool implicit_tls;

	struct imap_cmd_ctx *cmd;   /* the running command, or NULL */
	unsigned bad_count;         /* BADs in a row */

	struct store_user user;     /* valid once authenticated */
	struct imap_view *sel;      /* NULL unless IMAP_ST_SELECTED */

	struct login login;         /* LOGIN/AUTHENTICATE (login.c) */
	bool paused;                /* input paused by the running command */
	bool force_sync;            /* next imap_view_sync reads the store */

	/* Features (imap_features.h). */
	unsigned enabled;           /* IMAP_FEAT_* bits ENABLEd (RFC 5161) */
	bool condstore_implicit;    /* CONDSTORE on by an enabling command */
	struct imap_searchres searchres;
	struct imap_idle idle;
};

/* ---- session (imap_session.c) ---- */

/* Writes state and logs the transition at debug level. */
void imap_set_state(struct imap_session *s, enum imap_state st);
/* The login succeeded: the authenticated state, and the line cap of an
   authenticated session (IMAP_LINE_MAX instead of IMAP_PREAUTH_LINE_MAX)
   for the parser and the conn. Only between two commands' parsing (the
   running command's arguments become invalid). */
void imap_session_logged_in(struct imap_session *s);
/* Runs work(arg) on a worker thread, then done(s, arg) on the loop; input
   is paused and the session kept alive meanwhile. The handler returns
   CMD_SUSPEND and done() ends with imap_cmd_finish() (or closes). Not
   session_submit: a view's \Recent claim runs on a worker beside the
   command (and is started from a command's completion), and
   session_submit allows one job at a time. */
void imap_session_submit(struct imap_session *s, void (*work)(void *arg),
    void (*done)(struct imap_session *s, void *arg), void *arg);
/* Ends the session after what is queued was sent (session_close: logs
   the reason, a static string). */
void imap_session_close(struct imap_session *s, const char *reason);
/* One raw input line that is not a command (an AUTHENTICATE response,
   IDLE's DONE), without its CRLF. Returns 1 with *p_r and *len_r borrowed
   from the input buffer (consume *used_r bytes when done with it), 0 if
   more input is needed, -1 if max bytes came without a LF. */
int imap_raw_line(struct imap_session *s, size_t max, const char **p_r,
    size_t *len_r, size_t *used_r);

/* The conn callbacks of imapd. Sessions reach the daemon as s->base.d
   (daemon_main puts it in the server's context). */
const struct conn_handlers *imap_session_handlers(void);

/* ---- replies (imap_reply.c): output only, never a mailbox sync ---- */

/* "<tag> OK|NO|BAD text" with the running command's tag ("*" without
   one). Counts BADs in a row (a BYE follows past IMAP_BAD_CMD_MAX). Commands
   answer through imap_cmd_reply (imap_commands.h), which syncs first. */
void imap_reply_tagged(struct imap_session *s, enum imap_status st,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void imap_reply_untagged(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "+ text" */
void imap_reply_continue(struct imap_session *s, const char *text);
/* Appends s[0..len) as an IMAP string: an atom-safe quoted string, or a
   literal if it has CR, LF, NUL, '"'/'\\' plus 8-bit, or is long. */
void imap_buf_string(struct buf *b, const char *str, size_t len);
/* A mailbox name (UTF-8 internally) as modified UTF-7 string. */
void imap_buf_mailbox(struct buf *b, const char *utf8_name);
/* Queues b and resets it. */
void imap_send_buf(struct imap_session *s, struct buf *b);

#endif
