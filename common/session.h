/* session: the protocol-neutral core every session embeds as its first
   member (struct session base): the daemon, the conn, the protocol phase
   with its state-name table, the bad-command budget, the one close path
   with a reason, suspension around work on the worker pool, and the
   command-table dispatcher (state mask and arity checked in one place).
   The protocol formats every reply; nothing here writes to the peer.
   Everything runs on the loop thread. */
#ifndef POSTROOM_SESSION_H
#define POSTROOM_SESSION_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct daemon;
struct session;

/* What a command handler (or a completion) did. */
enum cmd_result {
	CMD_DONE,       /* replied; take the next command */
	CMD_SUSPEND,    /* the session is suspended (session_submit or
	                   session_suspend); a completion resumes it */
	CMD_CLOSE,      /* replied; close after flushing */
};

/* What the protocol tells the core about itself. */
struct session_class {
	const char *name;               /* "smtp": for logs */
	/* Names of the states by bit number: names[i] for 1u << i. */
	const char *const *state_names;
	size_t nstates;
	/* Optional: the session was suspended (busy true) or is about to
	   resume reading (false), e.g. to change the idle timeout. */
	void (*busy_changed)(struct session *s, bool busy);
};

typedef enum cmd_result session_done_cb(struct session *s, void *arg);

struct session {
	struct daemon *d;               /* borrowed: outlives every session */
	struct conn *c;
	const struct session_class *cls;
	unsigned state;                 /* one bit of the protocol's enum */
	unsigned errors;                /* the bad-command budget spent */
	bool busy;                      /* suspended: held, not reading */
	bool closing;                   /* session_close was called */
	/* the work in flight (session_submit) */
	void (*work)(void *arg);
	session_done_cb *done;
	void *arg;
};

/* Fills the core for a new connection (in accept()): the daemon comes
   from the server's context (daemon_main sets it). */
void session_init(struct session *s, struct conn *c,
    const struct session_class *cls, unsigned state);

/* The name of a state ("?" if unknown). Static. */
const char *session_state_name(const struct session *s, unsigned state);
/* The only writer of s->state; logs "<id> state old -> new" at debug. */
void session_set_state(struct session *s, unsigned state);

/* The one way a session ends on our side: logs "<id> close
   reason=\"...\"" and closes the conn after what is queued (if the
   session is suspended, at its resume). reason: a static string. Safe to
   call twice (the first reason counts). */
void session_close(struct session *s, const char *reason);

/* Stops reading input and keeps the session alive (conn_hold) until
   session_resume: for any wait (a worker job, a delayed reply). */
void session_suspend(struct session *s);
/* Undoes session_suspend: reading goes on, pipelined input is handled.
   May free the session (if the peer went away meanwhile, closed() runs
   in here): do not touch s after it. */
void session_resume(struct session *s);
/* Suspends the session and runs work(arg) on the worker pool (work must
   not touch the session or the conn: only arg), then done(s, arg) on the
   loop. What done returns decides: CMD_DONE resumes, CMD_CLOSE closes and
   resumes, CMD_SUSPEND stays suspended (done started another wait that
   calls session_resume itself). One submission at a time per session. */
void session_submit(struct session *s, void (*work)(void *arg),
    session_done_cb *done, void *arg);
/* The same on a lane of the pool (enum worker_lane: WORKER_LANE_CPU for
   password hashing). held: the session is already suspended
   (session_suspend, e.g. while it waited its turn) and stays so. */
void session_submit_lane(struct session *s, int lane, bool held,
    void (*work)(void *arg), session_done_cb *done, void *arg);
static inline bool
session_is_busy(const struct session *s)
{
	return s->busy;
}

/* Counts one error against the budget: true once max errors were
   counted (the protocol then says goodbye and closes). */
bool session_count_error(struct session *s, unsigned max);
/* For budgets that count errors in a row. */
void session_reset_errors(struct session *s);

/* ---- command tables ---- */

#define CMD_ARGS_ANY 0xffffu

enum cmd_flag {
	CMD_F_SECRET = 1 << 0,  /* the arguments carry credentials: a debug
	                           trace shows the name only */
};

/* The protocol-neutral part of a command-table row. A protocol's row
   embeds it first and adds its typed handler, so handlers keep their own
   session type:
	struct pop3_cmd { struct cmd_def def; pop3_cmd_fn *fn; };
	{ { "RETR", POP3_ST_TRANSACTION, 1, 1, 0, NULL }, cmd_retr },  */
struct cmd_def {
	const char *name;               /* upper case; compared without case */
	unsigned states;                /* mask of the states it is valid in */
	unsigned min_args, max_args;    /* max CMD_ARGS_ANY: no upper bound */
	unsigned flags;                 /* enum cmd_flag */
	const char *usage;              /* the arguments, for a syntax reply
	                                   ("<address>"); may be NULL */
};

enum cmd_check {
	CMD_OK,
	CMD_EUNKNOWN,   /* no such command */
	CMD_ESTATE,     /* not valid in the current state */
	CMD_EARITY,     /* too few or too many arguments */
};

/* Finds name in table (n rows of stride bytes, each starting with a
   struct cmd_def) and checks the state and the argument count. Returns
   the row index with CMD_OK, CMD_ESTATE or CMD_EARITY in *check_r (state
   before arity), or -1 with CMD_EUNKNOWN. The caller formats the error
   and calls the row's handler. */
int cmd_lookup(const void *table, size_t n, size_t stride, const char *name,
    unsigned state, unsigned nargs, enum cmd_check *check_r);
#define CMD_LOOKUP(table, name, state, nargs, check_r) \
	cmd_lookup((table), sizeof(table) / sizeof((table)[0]), \
	    sizeof((table)[0]), (name), (state), (nargs), (check_r))

#endif
