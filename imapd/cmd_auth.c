/* cmd_auth: LOGIN and AUTHENTICATE (PLAIN, LOGIN, SASL-IR). Passwords are
   checked on a worker (Argon2id); failures are answered after the
   throttle's delay. AUTHENTICATE's response lines are read by the
   command's continuation, not the parser. Credentials are wiped after use
   and never logged. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_features.h"

struct login_job {
	char *user, *pass;
	enum store_err err;
	struct store_user u;
	struct store *st;
};

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
	imap_cmd_reply(s, IMAP_NO, "[AUTHENTICATIONFAILED] Authentication failed");
	imap_cmd_finish(s);
	if (s->auth_fails >= IMAP_AUTH_FAIL_MAX_SESSION) {
		imap_reply_untagged(s, "BYE Too many failed logins");
		imap_session_close(s);
	}
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
		imap_cmd_reply(s, IMAP_OK, "[CAPABILITY %s] Logged in", b.data);
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
		imap_cmd_reply(s, IMAP_NO, "[UNAVAILABLE] Temporary failure");
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
		imap_cmd_reply(s, IMAP_NO,
		    "[AUTHENTICATIONFAILED] Authentication failed");
		return CMD_DONE;
	}
	if (!auth_throttle_begin(s->d->throttle, conn_peer_addr(s->c),
	    IMAP_AUTH_FAIL_MAX_ADDR)) {
		log_info("%s login result=refused reason=too-many-failures "
		    "peer=%s", conn_id(s->c), conn_peer_addr(s->c));
		imap_reply_untagged(s, "BYE Too many failed logins");
		imap_cmd_reply(s, IMAP_NO,
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
	const struct imap_arg *u = args, *p = imap_arg_next(args);

	(void)end;
	if (!imap_arg_is_string(u) || !imap_arg_is_string(p)) {
		imap_cmd_usage(s);
		return CMD_DONE;
	}
	if (!plaintext_ok(s)) {
		imap_cmd_reply(s, IMAP_NO, "[PRIVACYREQUIRED] Use STARTTLS first");
		return CMD_DONE;
	}
	return start_login(s, u->str, u->len, p->str, p->len);
}

static int sasl_continue(struct imap_session *s);

/* SASL finished or failed: answer or check the password. */
static enum cmd_result
sasl_result(struct imap_session *s, enum sasl_result r, const char *chal)
{
	enum cmd_result res;

	s->cmd->wait = IMAP_WAIT_NONE;
	switch (r) {
	case SASL_CONTINUE:
		s->cmd->wait = IMAP_WAIT_INPUT;
		s->cmd->continuation = sasl_continue;
		imap_reply_continue(s, chal);
		return CMD_SUSPEND;
	case SASL_CANCEL:
		sasl_server_reset(&s->sasl);
		imap_cmd_reply(s, IMAP_BAD, "Authentication cancelled");
		return CMD_DONE;
	case SASL_FAIL:
		sasl_server_reset(&s->sasl);
		imap_cmd_reply(s, IMAP_BAD, "Invalid SASL response");
		return CMD_DONE;
	case SASL_DONE:
		break;
	}
	if (s->sasl.authzid != NULL &&
	    strcasecmp(s->sasl.authzid, s->sasl.user) != 0) {
		sasl_server_reset(&s->sasl);
		imap_cmd_reply(s, IMAP_NO,
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

	if (args->type != IMAP_ARG_ATOM ||
	    (n == 2 && !imap_arg_is_string(imap_arg_next(args)))) {
		imap_cmd_usage(s);
		return CMD_DONE;
	}
	if (!plaintext_ok(s)) {
		imap_cmd_reply(s, IMAP_NO, "[PRIVACYREQUIRED] Use STARTTLS first");
		return CMD_DONE;
	}
	if ((mech = sasl_mech_parse(args->str)) == SASL_MECH_NONE) {
		imap_cmd_reply(s, IMAP_NO, "Unsupported mechanism");
		return CMD_DONE;
	}
	sasl_server_init(&s->sasl, mech);
	r = sasl_server_start(&s->sasl, n == 2 ? imap_arg_next(args)->str : NULL,
	    &chal);
	return sasl_result(s, r, chal);
}

/* AUTHENTICATE's continuation: one client response line. */
static int
sasl_continue(struct imap_session *s)
{
	const char *p, *chal = "";
	size_t len, used;
	enum cmd_result res;
	enum sasl_result r;
	char *line;
	int rc;

	if ((rc = imap_raw_line(s, 16384, &p, &len, &used)) <= 0) {
		if (rc < 0) {
			imap_reply_untagged(s, "BYE SASL response too long");
			imap_session_close(s);
		}
		return 0;
	}
	line = xstrndup(p, len);
	conn_consume(s->c, used);
	r = sasl_server_step(&s->sasl, line, len, &chal);
	res = sasl_result(s, r, chal);
	explicit_bzero(line, len);
	free(line);
	if (res == CMD_DONE) {
		imap_cmd_finish(s);
	} else if (res == CMD_CLOSE) {
		imap_cmd_finish(s);
		imap_session_close(s);
	} else if (s->cmd->wait != IMAP_WAIT_INPUT && !s->paused) {
		/* waiting on the password check */
		s->paused = true;
		conn_pause(s->c);
	}
	return 1;
}
