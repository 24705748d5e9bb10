/* cmd_auth: LOGIN and AUTHENTICATE (PLAIN, LOGIN, SASL-IR) on the shared
   login path (login.c: throttle, the Argon2id check on a worker, delayed
   failures, the log line); this file only words imapd's replies
   ([AUTHENTICATIONFAILED], [UNAVAILABLE], "+ " challenges, BYE). The SASL
   response lines are read by the command's continuation, not the parser.
   Credentials are wiped after use and never logged. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "login.h"

#include "imap_commands.h"
#include "imap_features.h"

/* A SASL response line longer than this ends the session. */
#define SASL_LINE_MAX 16384

/* What the check on the worker found. */
struct imap_login_job {
	struct store_user u;
};

static struct imap_session *
imap_of(struct session *base)
{
	return (struct imap_session *)base;
}

static enum login_result
verify(struct daemon *d, const char *user, const char *pass, void *job)
{
	struct imap_login_job *j = job;

	switch (store_authenticate(d->store, user, pass, &j->u)) {
	case STORE_OK:
		return LOGIN_OK;
	case STORE_ENOTFOUND:
	case STORE_EPERM:
		return LOGIN_FAIL;
	default:
		return LOGIN_TEMPFAIL;
	}
}

static const char *
reply_ok(struct session *base, void *job)
{
	struct imap_session *s = imap_of(base);
	struct imap_login_job *j = job;
	struct buf b;

	s->user = j->u;
	imap_session_logged_in(s);
	buf_init(&b);
	imap_capability_string(s, &b);
	imap_cmd_reply(s, IMAP_OK, "[CAPABILITY %s] Logged in", b.data);
	buf_free(&b);
	imap_cmd_finish(s);
	return NULL;
}

static void
reply_fail(struct session *base, bool last)
{
	struct imap_session *s = imap_of(base);

	imap_cmd_reply(s, IMAP_NO,
	    "[AUTHENTICATIONFAILED] Authentication failed");
	imap_cmd_finish(s);
	if (last)
		imap_reply_untagged(s, "BYE Too many failed logins");
}

static const char *
reply_tempfail(struct session *base, void *job)
{
	struct imap_session *s = imap_of(base);

	imap_cmd_reply(s, IMAP_NO, "[UNAVAILABLE] Temporary failure");
	imap_cmd_finish(s);
	return "store";
}

static void
reply_refused(struct session *base)
{
	struct imap_session *s = imap_of(base);

	imap_reply_untagged(s, "BYE Too many failed logins");
	imap_cmd_reply(s, IMAP_NO,
	    "[AUTHENTICATIONFAILED] Authentication failed");
}

static int sasl_continue(struct imap_session *s);

static void
send_challenge(struct session *base, const char *challenge)
{
	struct imap_session *s = imap_of(base);

	s->cmd->wait = IMAP_WAIT_INPUT;
	s->cmd->continuation = sasl_continue;
	imap_reply_continue(s, challenge);
}

static enum cmd_result
reply_sasl_error(struct session *base, enum sasl_result r)
{
	struct imap_session *s = imap_of(base);

	imap_cmd_reply(s, IMAP_BAD, r == SASL_CANCEL ?
	    "Authentication cancelled" : "Invalid SASL response");
	return CMD_DONE;
}

static void
job_free(void *job)
{
	free(job);
}

static const struct login_ops login_ops = {
	.verify = verify,
	.reply_ok = reply_ok,
	.reply_fail = reply_fail,
	.reply_tempfail = reply_tempfail,
	.reply_refused = reply_refused,
	.send_challenge = send_challenge,
	.reply_sasl_error = reply_sasl_error,
	.job_free = job_free,
	.fail_max_session = IMAP_AUTH_FAIL_MAX_SESSION,
	.fail_max_addr = IMAP_AUTH_FAIL_MAX_ADDR,
	.close_at_addr_max = false,
	.line_max = IMAP_LINE_MAX,
};

const struct login_ops *
imap_login_ops(void)
{
	return &login_ops;
}

static bool
plaintext_ok(struct imap_session *s)
{
	return conn_is_tls(s->base.c) || s->base.d->cfg->allow_plaintext_auth;
}

/* What a login step returned, as the command's result: a challenge out
   means waiting for the next line (input on); a check means waiting for
   the worker. */
static enum cmd_result
login_step(struct imap_session *s, enum cmd_result r)
{
	if (s->cmd != NULL && !login_in_sasl(&s->login))
		s->cmd->wait = IMAP_WAIT_NONE;
	if (r == CMD_DONE && login_in_sasl(&s->login))
		return CMD_SUSPEND;
	return r;
}

enum cmd_result
imap_cmd_login(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	const struct imap_arg *u = args, *p = imap_arg_next(args);

	if (!imap_arg_is_string(u) || !imap_arg_is_string(p)) {
		imap_cmd_usage(s);
		return CMD_DONE;
	}
	if (!plaintext_ok(s)) {
		imap_cmd_reply(s, IMAP_NO,
		    "[PRIVACYREQUIRED] Use STARTTLS first");
		return CMD_DONE;
	}
	/* Not worth a check (nor a throttle slot): answered at once. */
	if (u->len == 0 || p->len == 0 || memchr(u->str, 0, u->len) ||
	    memchr(p->str, 0, p->len)) {
		imap_cmd_reply(s, IMAP_NO,
		    "[AUTHENTICATIONFAILED] Authentication failed");
		return CMD_DONE;
	}
	return login_start(&s->login, "LOGIN", xstrndup(u->str, u->len),
	    xstrndup(p->str, p->len),
	    xcalloc(1, sizeof(struct imap_login_job)));
}

/* AUTHENTICATE's continuation: one client response line. */
static int
sasl_continue(struct imap_session *s)
{
	const char *p;
	size_t len, used;
	enum cmd_result res;
	char *line;
	int rc;

	if ((rc = imap_raw_line(s, SASL_LINE_MAX, &p, &len, &used)) <= 0) {
		if (rc < 0) {
			login_sasl_abort(&s->login);
			imap_reply_untagged(s, "BYE SASL response too long");
			imap_session_close(s, "sasl-line-too-long");
		}
		return 0;
	}
	line = xstrndup(p, len);
	conn_consume(s->base.c, used);
	res = login_step(s, login_sasl_line(&s->login, line, len));
	explicit_bzero(line, len);
	free(line);
	if (res == CMD_DONE) {
		imap_cmd_finish(s);
	} else if (res == CMD_CLOSE) {
		imap_cmd_finish(s);
		imap_session_close(s, "auth-refused");
	} else if (s->cmd != NULL && s->cmd->wait != IMAP_WAIT_INPUT &&
	    !s->paused) {
		/* waiting on the password check */
		s->paused = true;
		conn_pause(s->base.c);
	}
	return 1;
}

enum cmd_result
imap_cmd_authenticate(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	size_t n = imap_args_count(args, end);
	enum sasl_mech mech;

	if (args->type != IMAP_ARG_ATOM ||
	    (n == 2 && !imap_arg_is_string(imap_arg_next(args)))) {
		imap_cmd_usage(s);
		return CMD_DONE;
	}
	if (!plaintext_ok(s)) {
		imap_cmd_reply(s, IMAP_NO,
		    "[PRIVACYREQUIRED] Use STARTTLS first");
		return CMD_DONE;
	}
	if ((mech = sasl_mech_parse(args->str)) == SASL_MECH_NONE) {
		imap_cmd_reply(s, IMAP_NO, "Unsupported mechanism");
		return CMD_DONE;
	}
	return login_step(s, login_sasl_start(&s->login, mech,
	    n == 2 ? imap_arg_next(args)->str : NULL,
	    xcalloc(1, sizeof(struct imap_login_job))));
}
