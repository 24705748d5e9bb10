/* smtp_auth: smtpd's glue to the shared login path (login.c): the AUTH
   command (RFC 4954) and the SMTP wording of every login outcome (235,
   535 after the delay, 421 once the address's budget is spent, 334
   challenges). The throttle, the check on a worker, the authzid rule and
   the log line are login.c's; AUTH is offered on submission only. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "log.h"
#include "util.h"

#include "smtp_session.h"

/* What the check on the worker found. */
struct smtp_login_job {
	enum store_err err;
	struct store_user u;
};

static struct smtp_session *
smtp_of(struct session *base)
{
	return (struct smtp_session *)base;
}

static enum login_result
auth_verify(struct daemon *d, const char *user, const char *pass, void *arg)
{
	struct smtp_login_job *j = arg;

	j->err = store_authenticate(d->store, user, pass, &j->u);
	if (j->err == STORE_OK)
		return LOGIN_OK;
	return j->err == STORE_ENOTFOUND ? LOGIN_FAIL : LOGIN_TEMPFAIL;
}

static const char *
auth_reply_ok(struct session *base, void *arg)
{
	struct smtp_session *s = smtp_of(base);
	struct smtp_login_job *j = arg;

	s->flags |= SMTP_F_AUTHENTICATED;
	s->auth_user_id = j->u.id;
	memcpy(s->auth_user, j->u.address, sizeof(s->auth_user));
	smtp_reply(s, 235, "2.7.0", "Authentication successful");
	return NULL;
}

static void
auth_reply_fail(struct session *base, bool last)
{
	struct smtp_session *s = smtp_of(base);

	if (last)
		smtp_close_421(s, "4.7.0", "Too many failed authentications");
	else
		smtp_reply(s, 535, "5.7.8", "Authentication credentials invalid");
}

static const char *
auth_reply_tempfail(struct session *base, void *arg)
{
	struct smtp_login_job *j = arg;

	smtp_reply_store_err(smtp_of(base), j->err, "auth");
	return store_err_str(j->err);
}

static void
auth_reply_refused(struct session *base)
{
	smtp_close_421(smtp_of(base), "4.7.0",
	    "Too many failed authentications");
}

static void
auth_send_challenge(struct session *base, const char *challenge)
{
	conn_printf(base->c, "334 %s\r\n", challenge);
}

static enum cmd_result
auth_reply_sasl_error(struct session *base, enum sasl_result r)
{
	if (r == SASL_CANCEL)
		smtp_reply(smtp_of(base), 501, "5.0.0",
		    "Authentication cancelled");
	else
		smtp_reply(smtp_of(base), 501, "5.5.2",
		    "Cannot decode response");
	return CMD_DONE;
}

const struct login_ops smtp_login_ops = {
	.verify = auth_verify,
	.reply_ok = auth_reply_ok,
	.reply_fail = auth_reply_fail,
	.reply_tempfail = auth_reply_tempfail,
	.reply_refused = auth_reply_refused,
	.send_challenge = auth_send_challenge,
	.reply_sasl_error = auth_reply_sasl_error,
	.job_free = free,
	.fail_max_session = 0,
	.fail_max_addr = SMTP_AUTH_FAIL_MAX_ADDR,
	.close_at_addr_max = true,
	.line_max = SMTP_LINE_MAX,
};

enum cmd_result
smtp_cmd_auth(struct smtp_session *s, const char *args, size_t len)
{
	char mech[32], initial[SMTP_LINE_MAX + 1];
	const char *sp;
	enum sasl_mech m;
	enum cmd_result r;
	size_t mlen, ilen;

	if (!smtp_is_submission(s)) {
		smtp_reply(s, 502, "5.5.1", "AUTH not available on this port; "
		    "use submission");
		return CMD_DONE;
	}
	if (!smtp_auth_allowed(s)) {
		smtp_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
		return CMD_DONE;
	}
	if (smtp_is_authenticated(s)) {
		smtp_reply(s, 503, "5.5.1", "Already authenticated");
		return CMD_DONE;
	}
	if (s->base.state != SMTP_ST_READY) {
		smtp_reply(s, 503, "5.5.1", "AUTH not allowed in a mail transaction");
		return CMD_DONE;
	}
	if (login_addr_blocked(&s->login)) {
		smtp_close_421(s, "4.7.0", "Too many failed authentications");
		return CMD_DONE;
	}
	sp = memchr(args, ' ', len);
	mlen = sp != NULL ? (size_t)(sp - args) : len;
	if (mlen == 0 || mlen >= sizeof(mech)) {
		smtp_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
		return CMD_DONE;
	}
	memcpy(mech, args, mlen);
	mech[mlen] = '\0';
	m = sasl_mech_parse(mech);
	if (m == SASL_MECH_NONE) {
		smtp_reply(s, 504, "5.5.4", "Unrecognized authentication type");
		return CMD_DONE;
	}
	if (sp == NULL)
		return login_sasl_start(&s->login, m, NULL,
		    xcalloc(1, sizeof(struct smtp_login_job)));
	/* The line is the conn's: a NUL-terminated copy, wiped after. */
	ilen = len - mlen - 1;
	if (ilen > SMTP_LINE_MAX)
		ilen = SMTP_LINE_MAX;
	memcpy(initial, sp + 1, ilen);
	initial[ilen] = '\0';
	r = login_sasl_start(&s->login, m, initial,
	    xcalloc(1, sizeof(struct smtp_login_job)));
	sodium_memzero(initial, ilen);
	return r;
}
