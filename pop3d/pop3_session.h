/* pop3_session: one POP3 connection (RFC 1939, 2449, 2595, 5034) over
   the shared store, and the calls between the session core
   (pop3_session.c), the command table (pop3_commands.c) and the maildrop
   (pop3_maildrop.c: lock, snapshot, UPDATE). Everything runs on the loop
   thread; password checks and the expunge at QUIT run on the worker
   pool. Private to pop3d. */
#ifndef POSTROOM_POP3_SESSION_H
#define POSTROOM_POP3_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "daemon.h"
#include "login.h"
#include "pop3_parse.h"
#include "proto_limits.h"
#include "session.h"
#include "store.h"
#include "util.h"

enum pop3_listen_tag { POP3_TAG_PLAIN = 0, POP3_TAG_TLS = 1 };

/* The protocol phase (a bit each, for the command table). A SASL
   exchange (login_in_sasl) and waiting on a worker (session_is_busy) are
   not phases. */
enum pop3_state {
	POP3_ST_AUTHORIZATION = 1 << 0,
	POP3_ST_TRANSACTION   = 1 << 1,
	POP3_ST_UPDATE        = 1 << 2,   /* QUIT: expunging, then close */
};

/* One message of the snapshot taken at login. */
struct pop3_msg {
	uint32_t uid;
	uint64_t size;
	bool deleted;
	bool seen;          /* \Seen at login or set by us */
	bool retrieved;     /* RETR sent it whole: \Seen at QUIT */
};

struct pop3_session {
	struct session base;        /* first: the session core */
	struct login login;
	char *user;                 /* USER argument, owned */

	/* After login */
	uint32_t user_id;
	char address[STORE_ADDRESS_MAX + 1];
	int lock_fd;
	bool in_locked_set;
	uint32_t mbox_id;
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	uint32_t nmsgs;
	uint32_t ndeleted;
	uint64_t size_total;        /* of the undeleted messages */
	uint64_t retr_bytes;        /* for the logout line */
	uint32_t retr_count;

	struct pop3_stuffer stuffer;    /* of the RETR/TOP being streamed */
};

/* ---- pop3_session.c ---- */
/* conn handlers for daemon_main. */
extern const struct conn_handlers pop3_handlers;
/* Queues one reply line; CRLF is appended. Bounded formatting. */
void pop3_reply(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Maps a store error to its -ERR reply (the one place that does). */
void pop3_reply_store_err(struct pop3_session *s, enum store_err e);
/* Whether USER/PASS/AUTH are allowed on this connection now. */
bool pop3_can_plaintext_auth(const struct pop3_session *s);
/* Queues message idx (0-based) after its +OK line, streamed from its
   file (conn_send_fd); top: TOP with lines body lines. Input waits until
   the whole reply is queued. */
enum cmd_result pop3_session_send_msg(struct pop3_session *s, uint32_t idx,
    bool top, uint32_t lines);

/* ---- pop3_commands.c ---- */
/* Handles one command line (dispatch through the command table). */
enum cmd_result pop3_command_dispatch(struct pop3_session *s, char *line,
    size_t len);
/* Counts an error reply; past the limit the session ends (CMD_CLOSE). */
enum cmd_result pop3_bad_command(struct pop3_session *s, const char *msg);

/* ---- pop3_maildrop.c ---- */
/* What login.c needs from pop3d (the check also locks the maildrop and
   takes the INBOX snapshot). */
extern const struct login_ops pop3_login_ops;
/* A job for login_start/login_sasl_start. Owned by login from there. */
void *pop3_login_job_new(void);
/* The in-process set of locked maildrops (d->priv): daemon start/stop
   hooks. */
int pop3_maildrop_start(struct daemon *d, char *err, size_t errlen);
void pop3_maildrop_stop(struct daemon *d);
/* Gives up the maildrop of a session that ends (lock, snapshot). Deletes
   nothing. */
void pop3_maildrop_release(struct pop3_session *s);
/* Whether QUIT has store work to do (deletions, \Seen to set). */
bool pop3_maildrop_has_updates(const struct pop3_session *s);
/* QUIT in the TRANSACTION state: on the worker pool, set \Seen on the
   messages RETR sent (as Dovecot does, so IMAP shows them read), then
   expunge the deleted ones in one transaction; then +OK and close.
   Returns CMD_SUSPEND. */
enum cmd_result pop3_maildrop_update(struct pop3_session *s);

#endif
