/* smtp_session: one SMTP connection of smtpd: its state, its current
   transaction, and the calls between the session core (smtp_session.c),
   the command handlers (smtp_commands.c) and the message reader and
   delivery (smtp_data.c). Private to smtpd. */
#ifndef POSTROOM_SMTP_SESSION_H
#define POSTROOM_SMTP_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "sasl.h"
#include "store.h"
#include "worker.h"

#include "smtp_parse.h"

#define SMTP_LINE_MAX        2048   /* command line incl. parameters */
#define SMTP_MAX_ERRORS      20     /* error replies before 421 */
#define SMTP_MAX_AUTH_FAILS  5      /* failed AUTH per address before 421 */
#define SMTP_MAX_BAD_COMMANDS_PREAUTH 10

/* Listen tags. */
enum smtp_listener {
	SMTP_L_MX = 1,          /* smtp_listen: inbound, STARTTLS, no AUTH */
	SMTP_L_SUBMISSION,      /* submission_listen: STARTTLS, AUTH required */
	SMTP_L_SMTPS,           /* smtps_listen: implicit TLS, AUTH required */
};

/* The process-wide context, owned by main.c. */
struct smtp_ctx {
	struct ev_loop *loop;
	const struct config *cfg;
	struct store *store;
	struct worker_pool *pool;
	struct auth_throttle *throttle;
	struct server *server;
};

enum smtp_state {
	SMTP_ST_INIT = 1 << 0,      /* greeted, no EHLO/HELO yet */
	SMTP_ST_READY = 1 << 1,     /* EHLO done, no transaction */
	SMTP_ST_MAIL = 1 << 2,      /* MAIL accepted, no recipient yet */
	SMTP_ST_RCPT = 1 << 3,      /* at least one recipient */
	SMTP_ST_DATA = 1 << 4,      /* reading DATA content */
	SMTP_ST_BDAT = 1 << 5,      /* between BDAT chunks */
	SMTP_ST_CHUNK = 1 << 6,     /* reading a BDAT chunk's bytes */
	SMTP_ST_AUTH = 1 << 7,      /* in a SASL exchange */
	SMTP_ST_BUSY = 1 << 8,      /* waiting on a worker or a delay */
};

/* The current mail transaction, freed whole on RSET, EHLO, QUIT or after
   the message. */
struct smtp_tx {
	char from[SMTP_PATH_MAX + 1];   /* "" for <> */
	bool smtputf8;
	enum smtp_body_type body;
	uint64_t declared_size;
	uint32_t *users;                 /* unique recipient user ids */
	size_t nusers, users_cap;
	unsigned nrcpts;                 /* accepted RCPT commands */
	char first_rcpt[SMTP_PATH_MAX + 1];
	char id[17];

	/* the message being received */
	struct store_delivery *d;
	uint64_t size;                   /* content bytes received */
	bool too_big;
	bool write_failed;
	bool bdat;                       /* BDAT, not DATA */
	struct smtp_dot dot;
	struct smtp_content content;     /* for BDAT */
	uint64_t chunk_left;
	bool chunk_last;
	char *scratch;                   /* DATA unstuffing output */
	size_t scratch_cap;
	enum store_err commit_err;
};

struct smtp_session {
	struct smtp_ctx *ctx;
	struct conn *c;
	enum smtp_listener listener;
	enum smtp_state state;
	char helo[256];
	bool esmtp;
	bool authenticated;
	uint32_t auth_user_id;
	char auth_user[STORE_ADDRESS_MAX + 1];
	unsigned errors;
	unsigned bad_commands;           /* unparseable or unknown verbs */
	unsigned messages;

	/* AUTH */
	struct sasl_server sasl;
	enum store_err auth_err;
	struct store_user auth_result;
	ev_timer delay;                  /* failed-AUTH delay */
	bool delay_on;
	bool closing;                    /* 421 sent: close after the reply */
	bool close_pending;              /* close at smtp_resume */
	bool shutting_down;              /* SIGTERM came while BUSY */

	/* A BDAT chunk that must be read and thrown away (bad state, or the
	   transaction already failed), then answered with discard_reply. */
	uint64_t discard_left;
	const char *discard_reply;       /* static "503 5.5.1 ..." */

	struct smtp_tx *tx;
};

/* ---- main.c ---- */
/* The one context of the process: accept() has no argument to carry it. */
struct smtp_ctx *smtp_ctx_get(void);

/* ---- smtp_session.c ---- */
extern const struct conn_handlers smtp_handlers;
/* Sets the state, with the idle timeout that goes with it. */
void smtp_set_state(struct smtp_session *s, enum smtp_state st);
/* Queues one reply line "CODE X.Y.Z text" (the enhanced code may be NULL).
   A 4xx/5xx counts as an error; past SMTP_MAX_ERRORS a 421 follows and the
   session closes. */
void smtp_reply(struct smtp_session *s, int code, const char *ecode,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Queues the 421 and closes the connection after it. */
void smtp_close_421(struct smtp_session *s, const char *ecode,
    const char *text);
/* Suspends input while asynchronous work runs (hold + pause + BUSY);
   smtp_resume undoes it and sets next as the state. */
void smtp_suspend(struct smtp_session *s);
void smtp_resume(struct smtp_session *s, enum smtp_state next);
/* Whether AUTH may be offered and used now. */
bool smtp_auth_allowed(const struct smtp_session *s);
/* Whether this listener requires AUTH before MAIL. */
bool smtp_is_submission(const struct smtp_session *s);
void smtp_tx_free(struct smtp_tx **tx);
/* Frees the transaction and goes back to READY (RSET semantics). */
void smtp_tx_reset(struct smtp_session *s);
/* Maps a store error to a reply (the one place smtpd does so). */
void smtp_reply_store_err(struct smtp_session *s, enum store_err e,
    const char *what);

/* ---- smtp_commands.c ---- */
/* Handles one command line (not in DATA/BDAT chunk/AUTH state). */
void smtp_command(struct smtp_session *s, const char *line, size_t len);
/* Handles one line of a SASL exchange (state AUTH). */
void smtp_auth_line(struct smtp_session *s, const char *line, size_t len);
/* Cancels a pending AUTH delay (shutdown). */
void smtp_auth_cancel(struct smtp_session *s);

/* ---- smtp_data.c ---- */
/* DATA: opens the delivery, writes the trace headers; 0 or -1 (reply
   sent). */
int smtp_data_begin(struct smtp_session *s, bool bdat);
/* Reads buffered DATA content; at the final dot, commits (suspends). */
void smtp_data_input(struct smtp_session *s);
/* BDAT: starts a chunk of size bytes (last: the final one). */
void smtp_bdat_chunk(struct smtp_session *s, uint64_t size, bool last);
/* Reads buffered bytes of the current BDAT chunk. */
void smtp_bdat_input(struct smtp_session *s);

#endif
