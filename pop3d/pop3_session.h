/* pop3_session: one POP3 connection (RFC 1939, 2449, 2595, 5034) over
   the shared store. The session owns its state, its maildrop snapshot, the
   open message being streamed, and the maildrop lock. Everything runs on
   the loop thread; password checks and the expunge at QUIT run on the
   worker pool. */
#ifndef POSTROOM_POP3_SESSION_H
#define POSTROOM_POP3_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "pop3_parse.h"
#include "sasl.h"
#include "store.h"
#include "util.h"
#include "worker.h"

enum pop3_listen_tag { POP3_TAG_PLAIN = 0, POP3_TAG_TLS = 1 };

/* Bad commands (or overlong lines) in a row before the session closes. */
#define POP3_MAX_BAD_COMMANDS 10
/* Failed logins in one session before it closes (the per-address delay
   of auth_throttle grows meanwhile). */
#define POP3_MAX_AUTH_FAILURES 3
/* Failed logins from one address, across its sessions, before further
   attempts are refused without checking the password (auth_throttle_begin:
   parallel sessions must not multiply the guesses the delay allows). */
#define POP3_MAX_AUTH_FAILURES_PER_ADDR 10

/* What the whole daemon shares; one per process, owned by main.c. */
struct pop3_daemon {
	const struct config *cfg;
	struct ev_loop *loop;
	struct server *server;
	struct store *store;
	struct worker_pool *pool;
	struct auth_throttle *throttle;
	/* User ids with a live POP3 session in this process: the store's
	   lock is per process, this catches a second session here. */
	uint32_t *locked;
	size_t nlocked, locked_cap;
};
extern struct pop3_daemon pop3_daemon;

enum pop3_state {
	POP3_ST_AUTHORIZATION = 1 << 0,
	POP3_ST_AUTH_SASL     = 1 << 1,   /* inside an AUTH exchange */
	POP3_ST_TRANSACTION   = 1 << 2,
	POP3_ST_BUSY          = 1 << 3,   /* worker job or delayed reply */
	POP3_ST_UPDATE        = 1 << 4,   /* QUIT: expunging, then close */
};

/* One message of the snapshot taken at login. */
struct pop3_msg {
	uint32_t uid;
	uint64_t size;
	bool deleted;
	bool seen;          /* \Seen at login or set by us */
	bool retrieved;     /* RETR sent it whole: \Seen at QUIT */
};

/* A RETR/TOP reply being streamed from the message file. */
struct pop3_stream {
	int fd;                     /* -1: nothing streaming */
	uint64_t left;              /* bytes of the file not read yet */
	struct pop3_stuffer st;
};

struct pop3_session {
	struct conn *conn;
	enum pop3_state state;
	unsigned bad_commands;      /* errors in a row; close past a limit */
	unsigned auth_failures;

	char *user;                 /* USER argument, owned */
	struct sasl_server sasl;
	struct ev_timer delay;      /* the growing delay of a failed login */
	bool delay_active;

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

	struct pop3_stream stream;
	struct buf scratch;         /* stuffer output, reused */
};

/* conn handlers for server_new(). */
extern const struct conn_handlers pop3_handlers;

/* Writes the state and logs old -> new at debug level. */
void pop3_set_state(struct pop3_session *s, enum pop3_state st);
/* Queues one reply line; CRLF is appended. Bounded formatting. */
void pop3_reply(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Maps a store error to its -ERR reply (the one place that does). */
void pop3_reply_store_err(struct pop3_session *s, enum store_err e);

/* Whether USER/PASS/AUTH are allowed on this connection now. */
bool pop3_can_plaintext_auth(const struct pop3_session *s);

/* pop3_commands.c: handles one parsed command line (dispatch through the
   command table). Returns CMD_DONE, CMD_SUSPEND (input is paused until
   the work resumes it) or CMD_CLOSE. */
enum cmd_result { CMD_DONE, CMD_SUSPEND, CMD_CLOSE };
enum cmd_result pop3_command_dispatch(struct pop3_session *s, char *line,
    size_t len);
/* One line of an AUTH exchange (base64 or "*"). */
enum cmd_result pop3_auth_continue(struct pop3_session *s, char *line,
    size_t len);

/* pop3_session.c services for the commands. */
/* Starts checking user/pass on the worker pool; the reply comes later.
   Takes ownership of pass (wiped). Returns CMD_SUSPEND. */
enum cmd_result pop3_session_login(struct pop3_session *s, const char *user,
    char *pass);
/* Starts streaming message idx (0-based) after its +OK line; top: TOP with
   lines body lines. CMD_DONE if all of it fit, CMD_SUSPEND if waiting for
   the output to drain. */
enum cmd_result pop3_session_send_msg(struct pop3_session *s, uint32_t idx,
    bool top, uint32_t lines);
/* Whether QUIT has store work to do (deletions, \Seen to set). */
bool pop3_session_has_updates(const struct pop3_session *s);
/* QUIT in the TRANSACTION state: on the worker pool, set \Seen on the
   messages RETR sent (as Dovecot does, so IMAP shows them read), then
   expunge the deleted ones in one transaction; then +OK and close.
   Returns CMD_SUSPEND. */
enum cmd_result pop3_session_update(struct pop3_session *s);

/* Frees the buffers shared by all sessions (at exit). */
void pop3_session_deinit(void);

#endif
