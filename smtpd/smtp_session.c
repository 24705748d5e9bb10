/* smtp_session: the life of one SMTP connection in smtpd: greeting, the
   input loop that hands lines to the command table or raw bytes to the
   DATA/BDAT reader, replies and the error budget, timeouts per state,
   suspension while a worker runs, STARTTLS completion and shutdown. It
   does not parse commands (smtp_parse.c) nor touch the store for writes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#include "smtp_session.h"

static const char *
state_name(enum smtp_state st)
{
	switch (st) {
	case SMTP_ST_INIT: return "init";
	case SMTP_ST_READY: return "ready";
	case SMTP_ST_MAIL: return "mail";
	case SMTP_ST_RCPT: return "rcpt";
	case SMTP_ST_DATA: return "data";
	case SMTP_ST_BDAT: return "bdat";
	case SMTP_ST_CHUNK: return "chunk";
	case SMTP_ST_AUTH: return "auth";
	case SMTP_ST_BUSY: return "busy";
	}
	return "?";
}

void
smtp_set_state(struct smtp_session *s, enum smtp_state st)
{
	const struct config *cfg = s->ctx->cfg;
	double t;

	if (s->state != st && log_is_debug())
		log_debug("%s state %s -> %s", conn_id(s->c),
		    state_name(s->state), state_name(st));
	s->state = st;
	/* Before the client has said EHLO (or authenticated on submission)
	   it gets the short pre-auth timeout; waiting on our own work has
	   none, the conn is held anyway. */
	if (st == SMTP_ST_BUSY)
		t = 0;
	else if (st == SMTP_ST_INIT || st == SMTP_ST_AUTH ||
	    (smtp_is_submission(s) && !s->authenticated))
		t = cfg->preauth_timeout;
	else
		t = cfg->smtp_timeout;
	conn_set_timeout(s->c, t);
}

bool
smtp_is_submission(const struct smtp_session *s)
{
	return s->listener != SMTP_L_MX;
}

bool
smtp_auth_allowed(const struct smtp_session *s)
{
	/* Never on the MX port (CLIENTS.md 1.10), and never in clear text
	   unless the administrator said so. */
	if (!smtp_is_submission(s))
		return false;
	return conn_is_tls(s->c) || s->ctx->cfg->allow_plaintext_auth;
}

void
smtp_close_421(struct smtp_session *s, const char *ecode, const char *text)
{
	if (s->closing)
		return;
	conn_printf(s->c, "421 %s %s\r\n", ecode, text);
	s->closing = true;
	log_info("%s close reason=\"%s\"", conn_id(s->c), text);
	/* While held (BUSY) the close waits for smtp_resume: a conn closed
	   under a hold is only flushed once something kicks it. */
	if (s->state == SMTP_ST_BUSY)
		s->close_pending = true;
	else
		conn_close(s->c);
}

void
smtp_reply(struct smtp_session *s, int code, const char *ecode,
    const char *fmt, ...)
{
	char text[512];
	va_list ap;

	if (s->closing)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (ecode != NULL)
		conn_printf(s->c, "%d %s %s\r\n", code, ecode, text);
	else
		conn_printf(s->c, "%d %s\r\n", code, text);
	if (code >= 400 && ++s->errors >= SMTP_MAX_ERRORS)
		smtp_close_421(s, "4.7.0", "Too many errors, closing connection");
}

void
smtp_reply_store_err(struct smtp_session *s, enum store_err e,
    const char *what)
{
	char esc[LOG_ESCAPE_SIZE];
	const char *detail = store_last_error();

	log_warnx("%s store-error op=%s err=%s detail=\"%s\"", conn_id(s->c),
	    what, store_err_str(e),
	    log_escape(detail, strlen(detail), esc, sizeof(esc)));
	switch (e) {
	case STORE_EQUOTA:
		smtp_reply(s, 452, "4.2.2", "Mailbox full");
		break;
	case STORE_ENOTFOUND:
		smtp_reply(s, 550, "5.1.1", "Mailbox unavailable");
		break;
	default:
		smtp_reply(s, 451, "4.3.0",
		    "Temporary local problem, try again later");
		break;
	}
}

void
smtp_tx_free(struct smtp_tx **txp)
{
	struct smtp_tx *tx = *txp;

	if (tx == NULL)
		return;
	if (tx->d != NULL)
		store_delivery_free(&tx->d);
	free(tx->users);
	free(tx->scratch);
	free(tx);
	*txp = NULL;
}

void
smtp_tx_reset(struct smtp_session *s)
{
	smtp_tx_free(&s->tx);
	smtp_set_state(s, s->helo[0] != '\0' ? SMTP_ST_READY : SMTP_ST_INIT);
}

void
smtp_suspend(struct smtp_session *s)
{
	conn_hold(s->c);
	conn_pause(s->c);
	smtp_set_state(s, SMTP_ST_BUSY);
}

void
smtp_resume(struct smtp_session *s, enum smtp_state next)
{
	struct conn *c = s->c;
	bool close_now;

	if (s->shutting_down)
		smtp_close_421(s, "4.3.2", "Service shutting down");
	close_now = s->close_pending;
	smtp_set_state(s, next);
	conn_resume(c);
	if (close_now && !conn_is_closing(c)) {
		/* Not closing, so the release cannot finalize c. */
		conn_release(c);
		conn_close(c);
		return;
	}
	/* May free the session (closed() comes at the last release). */
	conn_release(c);
}

static void *
on_accept(struct conn *c, int tag)
{
	struct smtp_session *s;

	s = xcalloc(1, sizeof(*s));
	s->ctx = smtp_ctx_get();
	s->c = c;
	s->listener = (enum smtp_listener)tag;
	s->state = SMTP_ST_INIT;
	conn_set_line_limit(c, SMTP_LINE_MAX);
	smtp_set_state(s, SMTP_ST_INIT);
	log_info("%s session listener=%s tls=%s", conn_id(c), tag == SMTP_L_MX ? "mx" :
	    tag == SMTP_L_SUBMISSION ? "submission" : "smtps",
	    conn_is_tls(c) ? conn_tls_version(c) : "no");
	conn_printf(c, "220 %s ESMTP Postroom\r\n", s->ctx->cfg->hostname);
	return s;
}

static void
on_input(struct conn *c, void *sess)
{
	struct smtp_session *s = sess;
	char *line;
	size_t len;
	int r;

	if (s->closing || s->state == SMTP_ST_BUSY)
		return;
	if (s->state == SMTP_ST_DATA) {
		smtp_data_input(s);
		return;
	}
	if (s->state == SMTP_ST_CHUNK) {
		smtp_bdat_input(s);
		return;
	}
	r = conn_getline(c, &line, &len);
	if (r == 0)
		return;
	if (r < 0) {
		/* The rest of the line is skipped by conn; the session goes
		   on (RFC 5321 4.5.3.1.4). */
		if (s->state == SMTP_ST_AUTH) {
			sasl_server_reset(&s->sasl);
			smtp_set_state(s, SMTP_ST_READY);
		}
		smtp_reply(s, 500, "5.5.2", "Line too long");
		return;
	}
	if (s->state == SMTP_ST_AUTH)
		smtp_auth_line(s, line, len);
	else
		smtp_command(s, line, len);
}

static void
on_tls_done(struct conn *c, void *sess, bool ok)
{
	struct smtp_session *s = sess;

	if (!ok) {
		log_info("%s starttls result=fail", conn_id(c));
		return;
	}
	/* RFC 3207 4.2: forget everything learnt before TLS, a plaintext
	   AUTH (allow_plaintext_auth) included. */
	smtp_tx_free(&s->tx);
	s->helo[0] = '\0';
	s->esmtp = false;
	s->authenticated = false;
	s->auth_user_id = 0;
	s->auth_user[0] = '\0';
	smtp_set_state(s, SMTP_ST_INIT);
	log_info("%s starttls result=ok version=%s cipher=%s", conn_id(c),
	    conn_tls_version(c), conn_tls_cipher(c));
}

static void
on_timeout(struct conn *c, void *sess)
{
	struct smtp_session *s = sess;

	smtp_close_421(s, "4.4.2", "Idle timeout, closing connection");
	(void)c;
}

static void
on_shutdown(struct conn *c, void *sess)
{
	struct smtp_session *s = sess;

	(void)c;
	if (s->state == SMTP_ST_BUSY) {
		/* A delivery or login in flight: its reply comes first, then
		   the 421 (smtp_resume); an AUTH delay is cut short. */
		s->shutting_down = true;
		smtp_auth_cancel(s);
		return;
	}
	smtp_close_421(s, "4.3.2", "Service shutting down");
}

static void
on_closed(struct conn *c, void *sess)
{
	struct smtp_session *s = sess;

	log_info("%s session-end messages=%u errors=%u", conn_id(c),
	    s->messages, s->errors);
	smtp_tx_free(&s->tx);
	sasl_server_reset(&s->sasl);
	free(s);
}

const struct conn_handlers smtp_handlers = {
	.accept = on_accept,
	.input = on_input,
	.drain = NULL,
	.tls_done = on_tls_done,
	.timeout = on_timeout,
	.shutdown = on_shutdown,
	.closed = on_closed,
};
