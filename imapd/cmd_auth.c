/* cmd_auth: any-state and not-authenticated commands: CAPABILITY, NOOP,
   LOGOUT, STARTTLS, LOGIN and AUTHENTICATE (PLAIN, LOGIN, SASL-IR).
   Passwords are checked on a worker (Argon2id); failures are answered after
   the throttle's delay. Credentials are wiped after use and never logged. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#include "imap_commands.h"

struct login_job {
	char *user, *pass;
	enum store_err err;
	struct store_user u;
	struct store *st;
};

enum cmd_result
imap_cmd_capability(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct buf b;

	if (args != end) {
		imap_reply_tagged(s, "BAD", "CAPABILITY takes no arguments");
		return CMD_DONE;
	}
	buf_init(&b);
	buf_puts(&b, "* CAPABILITY ");
	imap_capability_string(s, &b);
	buf_puts(&b, "\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	imap_reply_tagged(s, "OK", "Capability completed");
	return CMD_DONE;
}

enum cmd_result
imap_cmd_noop(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	if (args != end) {
		imap_reply_tagged(s, "BAD", "NOOP takes no arguments");
		return CMD_DONE;
	}
	s->force_sync = true;
	imap_reply_tagged(s, "OK", "NOOP completed");
	return CMD_DONE;
}

enum cmd_result
imap_cmd_logout(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	if (args != end) {
		imap_reply_tagged(s, "BAD", "LOGOUT takes no arguments");
		return CMD_DONE;
	}
	imap_reply_untagged(s, "BYE Logging out");
	imap_reply_tagged(s, "OK", "Logout completed");
	s->state = IMAP_ST_LOGOUT;
	return CMD_CLOSE;
}

enum cmd_result
imap_cmd_starttls(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	if (args != end) {
		imap_reply_tagged(s, "BAD", "STARTTLS takes no arguments");
		return CMD_DONE;
	}
	if (conn_is_tls(s->c) || s->implicit_tls) {
		imap_reply_tagged(s, "BAD", "TLS is already active");
		return CMD_DONE;
	}
	if (!server_has_tls(s->d->srv)) {
		imap_reply_tagged(s, "NO", "TLS is not available");
		return CMD_DONE;
	}
	imap_reply_tagged(s, "OK", "Begin TLS negotiation now");
	/* Drops whatever the client pipelined after the command (RFC 2595). */
	if (conn_starttls(s->c) < 0)
		return CMD_CLOSE;
	return CMD_DONE;
}

static bool
plaintext_ok(struct imap_session *s)
{
	return conn_is_tls(s->c) || s->d->cfg->allow_plaintext_auth;
}

static void
login_work(void *arg)
{
	struct login_job *j = arg;
	char *at;

	str_lower(j->user);
	at = strchr(j->user, '@');
	if (at == NULL || strlen(j->user) > STORE_ADDRESS_MAX) {
		pw_verify_dummy(j->pass);
		j->err = STORE_ENOTFOUND;
		return;
	}
	j->err = store_authenticate(j->st, j->user, j->pass, &j->u);
}

static void
login_job_free(struct login_job *j)
{
	secret_free(&j->pass);
	free(j->user);
	free(j);
}

static void
auth_delay_done(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct imap_session *s = t->data;

	ev_timer_stop(loop, t);
	imap_reply_tagged(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
	if (s->auth_fails >= IMAP_AUTH_FAIL_MAX_SESSION) {
		imap_reply_untagged(s, "BYE Too many failed logins");
		s->closing = true;
		imap_cmd_finish(s);
		conn_close(s->c);
		return;
	}
	imap_cmd_finish(s);
}

static void
login_done(struct imap_session *s, void *arg)
{
	struct login_job *j = arg;
	char esc[LOG_ESCAPE_SIZE];
	struct buf b;
	double delay;
	enum store_err err;

	auth_throttle_end(s->d->throttle, conn_peer_addr(s->c));
	log_escape(j->user, strlen(j->user), esc, sizeof(esc));
	if (j->err == STORE_OK) {
		auth_throttle_success(s->d->throttle, conn_peer_addr(s->c));
		s->user = j->u;
		imap_set_state(s, IMAP_ST_AUTH);
		log_info("%s login user=%s result=ok tls=%s", conn_id(s->c),
		    esc, conn_tls_version(s->c) ? conn_tls_version(s->c) : "no");
		buf_init(&b);
		imap_capability_string(s, &b);
		imap_reply_tagged(s, "OK", "[CAPABILITY %s] Logged in", b.data);
		buf_free(&b);
		imap_cmd_finish(s);
		login_job_free(j);
		return;
	}
	log_info("%s login user=%s result=fail peer=%s", conn_id(s->c), esc,
	    conn_peer_addr(s->c));
	err = j->err;
	login_job_free(j);
	if (err != STORE_ENOTFOUND && err != STORE_EPERM) {
		imap_reply_tagged(s, "NO", "[UNAVAILABLE] Temporary failure");
		imap_cmd_finish(s);
		return;
	}
	s->auth_fails++;
	delay = auth_throttle_fail(s->d->throttle, conn_peer_addr(s->c));
	if (s->auth_timer == NULL) {
		s->auth_timer = xcalloc(1, sizeof(*s->auth_timer));
		ev_init(s->auth_timer, auth_delay_done);
		s->auth_timer->data = s;
	}
	ev_timer_set(s->auth_timer, delay, 0.);
	ev_timer_start(s->d->loop, s->auth_timer);
}

static enum cmd_result
start_login(struct imap_session *s, const char *user, size_t ulen,
    const char *pass, size_t plen)
{
	struct login_job *j;

	if (ulen == 0 || plen == 0 || memchr(user, 0, ulen) ||
	    memchr(pass, 0, plen)) {
		imap_reply_tagged(s, "NO",
		    "[AUTHENTICATIONFAILED] Authentication failed");
		return CMD_DONE;
	}
	if (!auth_throttle_begin(s->d->throttle, conn_peer_addr(s->c),
	    IMAP_AUTH_FAIL_MAX_ADDR)) {
		log_info("%s login result=refused reason=too-many-failures "
		    "peer=%s", conn_id(s->c), conn_peer_addr(s->c));
		imap_reply_untagged(s, "BYE Too many failed logins");
		imap_reply_tagged(s, "NO",
		    "[AUTHENTICATIONFAILED] Authentication failed");
		return CMD_CLOSE;
	}
	j = xcalloc(1, sizeof(*j));
	j->user = xstrndup(user, ulen);
	j->pass = xstrndup(pass, plen);
	j->st = s->d->store;
	imap_session_submit(s, login_work, login_done, j);
	return CMD_SUSPEND;
}

enum cmd_result
imap_cmd_login(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	const struct imap_arg *u = args, *p;

	if (imap_args_count(args, end) != 2 || !imap_arg_is_string(u) ||
	    !imap_arg_is_string(p = imap_arg_next(u))) {
		imap_reply_tagged(s, "BAD", "Usage: LOGIN user password");
		return CMD_DONE;
	}
	if (!plaintext_ok(s)) {
		imap_reply_tagged(s, "NO", "[PRIVACYREQUIRED] Use STARTTLS first");
		return CMD_DONE;
	}
	return start_login(s, u->str, u->len, p->str, p->len);
}

/* SASL finished or failed: answer or check the password. */
static enum cmd_result
sasl_result(struct imap_session *s, enum sasl_result r, const char *chal)
{
	enum cmd_result res;

	switch (r) {
	case SASL_CONTINUE:
		s->in_sasl = true;
		imap_reply_continue(s, chal);
		return CMD_SUSPEND;
	case SASL_CANCEL:
		s->in_sasl = false;
		sasl_server_reset(&s->sasl);
		imap_reply_tagged(s, "BAD", "Authentication cancelled");
		return CMD_DONE;
	case SASL_FAIL:
		s->in_sasl = false;
		sasl_server_reset(&s->sasl);
		imap_reply_tagged(s, "BAD", "Invalid SASL response");
		return CMD_DONE;
	case SASL_DONE:
		break;
	}
	s->in_sasl = false;
	if (s->sasl.authzid != NULL &&
	    strcasecmp(s->sasl.authzid, s->sasl.user) != 0) {
		sasl_server_reset(&s->sasl);
		imap_reply_tagged(s, "NO",
		    "[AUTHORIZATIONFAILED] Authorization identity refused");
		return CMD_DONE;
	}
	res = start_login(s, s->sasl.user, strlen(s->sasl.user), s->sasl.pass,
	    strlen(s->sasl.pass));
	sasl_server_reset(&s->sasl);
	return res;
}

enum cmd_result
imap_cmd_authenticate(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	size_t n = imap_args_count(args, end);
	const char *chal = "";
	enum sasl_mech mech;
	enum sasl_result r;

	if (n < 1 || n > 2 || args->type != IMAP_ARG_ATOM ||
	    (n == 2 && !imap_arg_is_string(imap_arg_next(args)))) {
		imap_reply_tagged(s, "BAD", "Usage: AUTHENTICATE mechanism [ir]");
		return CMD_DONE;
	}
	if (!plaintext_ok(s)) {
		imap_reply_tagged(s, "NO", "[PRIVACYREQUIRED] Use STARTTLS first");
		return CMD_DONE;
	}
	if ((mech = sasl_mech_parse(args->str)) == SASL_MECH_NONE) {
		imap_reply_tagged(s, "NO", "Unsupported mechanism");
		return CMD_DONE;
	}
	sasl_server_init(&s->sasl, mech);
	r = sasl_server_start(&s->sasl, n == 2 ? imap_arg_next(args)->str : NULL,
	    &chal);
	return sasl_result(s, r, chal);
}

void
imap_auth_sasl_line(struct imap_session *s, const char *line, size_t len)
{
	const char *chal = "";
	enum sasl_result r;
	enum cmd_result res;

	r = sasl_server_step(&s->sasl, line, len, &chal);
	res = sasl_result(s, r, chal);
	if (res == CMD_DONE) {
		imap_cmd_finish(s);
	} else if (res == CMD_CLOSE) {
		s->closing = true;
		imap_cmd_finish(s);
		conn_close(s->c);
	} else if (!s->in_sasl && !s->paused) {
		/* waiting on the password check */
		s->paused = true;
		conn_pause(s->c);
	}
}
