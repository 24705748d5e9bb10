/* login: the one login path of every daemon (the Dovecot login-common
   idea). A session embeds a struct login; the protocol parses its own
   commands (USER/PASS, LOGIN, AUTH, AUTHENTICATE) and hands the name and
   password, or the SASL exchange, to login, which runs: the per-address
   throttle -> the check on a worker (name normalised, Argon2id through
   the protocol's verify) -> the throttle's verdict -> success, a failure
   answered after the growing delay, or a temporary failure. It applies
   the authzid rule, carries the SASL continuation lines, raises the line
   cap after login and writes the one log line
     <id> login user=<name> result=ok|fail|tempfail|refused method=<m>
        tls=<version|no> [reason=...] [failures=N delay=S] [cached=yes]
   (cached=yes: the verified-credentials cache answered, no Argon2id).
   A guess is counted from its start (auth_throttle_begin): attempts from
   an address whose budget is taken by checks running wait in a queue
   here, or are refused once the address has failed. The check runs on
   the pool's CPU lane unless the cache will answer.
   The protocol formats every reply through the callbacks of login_ops. */
#ifndef POSTROOM_LOGIN_H
#define POSTROOM_LOGIN_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "sasl.h"
#include "session.h"

struct daemon;

enum login_result {
	LOGIN_OK,       /* name and password right */
	LOGIN_FAIL,     /* wrong name or password: counted, delayed */
	LOGIN_TEMPFAIL, /* could not check (store error, lock held) */
};

struct login_ops {
	/* Worker thread: checks user/pass and, on success, may do more
	   blocking work the protocol needs before its reply (pop3d locks and
	   snapshots the maildrop). user is already lowered and shaped like
	   an address. Touches only d's thread-safe parts (the store) and
	   job: never the session. */
	enum login_result (*verify)(struct daemon *d, const char *user,
	    const char *pass, void *job);
	/* Loop thread, the password was right: take the login (state,
	   reply). Returns NULL, or a short reason ("in-use") if it refused
	   the login after all (it sent that reply too). */
	const char *(*reply_ok)(struct session *s, void *job);
	/* A failed login, after the delay. last: the session ends now (its
	   or the address's failure budget is spent); the protocol adds its
	   goodbye if it has one, login closes the session. */
	void (*reply_fail)(struct session *s, bool last);
	/* The check could not be made; returns a reason for the log. */
	const char *(*reply_tempfail)(struct session *s, void *job);
	/* The address has too many failures: refused unchecked, the
	   session then closes. */
	void (*reply_refused)(struct session *s);
	/* A SASL challenge (base64, may be "") to send. */
	void (*send_challenge)(struct session *s, const char *challenge);
	/* The client cancelled ("*", SASL_CANCEL) or sent a malformed
	   response (SASL_FAIL). Returns CMD_DONE or CMD_CLOSE. */
	enum cmd_result (*reply_sasl_error)(struct session *s,
	    enum sasl_result r);
	/* Frees the protocol's job (may be NULL). */
	void (*job_free)(void *job);

	unsigned fail_max_session;      /* 0: no per-session limit */
	unsigned fail_max_addr;         /* auth_throttle_begin's limit */
	/* The address's limit reached by a failure ends the session at once
	   (no delay) rather than at its next attempt. */
	bool close_at_addr_max;
	size_t line_max;                /* the line cap after login */
};

struct login_req;

struct login {
	struct session *s;
	const struct login_ops *ops;
	struct sasl_server sasl;
	enum sasl_mech sasl_mech;
	void *sasl_job;                 /* the job for the exchange's check */
	bool in_sasl;                   /* a challenge is out */
	bool no_delay;                  /* stopping: failures answered now */
	const char *method;             /* of the running attempt */
	unsigned fails;                 /* in this session */
	ev_timer delay;
	bool delay_on;
	bool delay_last;
	struct login_req *req;          /* the check in flight */
};

/* SIGHUP: reads auth_cache_ttl from the config file again and applies it
   (0 empties the cache); the file unreadable, the old value stays. */
void login_reload(struct daemon *d);
void login_init(struct login *l, struct session *s,
    const struct login_ops *ops);
/* Wipes the SASL state and stops a pending delay (at session end). */
void login_deinit(struct login *l);

/* Checks user/pass (both owned by login from now on; pass is wiped).
   method names the way for the log ("USER", "LOGIN"). job is the
   protocol's (job_free frees it). Returns CMD_SUSPEND (the session is
   suspended until the reply) or CMD_CLOSE (refused by the throttle,
   reply_refused sent). */
enum cmd_result login_start(struct login *l, const char *method, char *user,
    char *pass, void *job);

/* SASL: starts mech with the initial response (base64, "=" for an empty
   one; NULL if none), or feeds one client line. Returns what the
   protocol's handler returns: CMD_DONE (a challenge is out, or an error
   reply), CMD_SUSPEND (checking), CMD_CLOSE. job as for login_start. */
enum cmd_result login_sasl_start(struct login *l, enum sasl_mech mech,
    const char *initial, void *job);
enum cmd_result login_sasl_line(struct login *l, const char *line,
    size_t len);
/* Whether the next input line belongs to the SASL exchange. */
static inline bool
login_in_sasl(const struct login *l)
{
	return l->in_sasl;
}
/* Drops a SASL exchange (overlong line, STARTTLS). */
void login_sasl_abort(struct login *l);

/* Whether the peer's address has spent its failure budget. */
bool login_addr_blocked(const struct login *l);
/* Answers a delayed failure now (daemon stopping). */
void login_delay_cut(struct login *l);

#endif
