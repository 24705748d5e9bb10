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

static const char *const state_names[] = {
	"init", "ready", "mail", "rcpt", "data", "bdat",
};

static void busy_changed(struct session *base, bool busy);

static const struct session_class smtp_class = {
	.name = "smtp",
	.state_names = state_names,
	.nstates = ARRAY_SIZE(state_names),
	.busy_changed = busy_changed,
};

/* Before the client has said EHLO (or authenticated on submission) it
   gets the short pre-auth timeout; waiting on our own work has none, the
   conn is held anyway. */
static void
apply_timeout(struct smtp_session *s)
{
	const struct config *cfg = s->base.d->cfg;
	double t;

	if (session_is_busy(&s->base))
		t = 0;
	else if (s->base.state == SMTP_ST_INIT ||
	    (smtp_is_submission(s) && !smtp_is_authenticated(s)))
		t = cfg->preauth_timeout;
	else
		t = cfg->smtp_timeout;
	conn_set_timeout(s->base.c, t);
}

void
smtp_set_state(struct smtp_session *s, enum smtp_state st)
{
	session_set_state(&s->base, st);
	apply_timeout(s);
}

static void
busy_changed(struct session *base, bool busy)
{
	struct smtp_session *s = (struct smtp_session *)base;

	/* SIGTERM came while a delivery or login was in flight: its reply
	   went first, the 421 follows. */
	if (!busy && (s->flags & SMTP_F_SHUTDOWN))
		smtp_close_421(s, "4.3.2", "Service shutting down");
	apply_timeout(s);
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
	return conn_is_tls(s->base.c) || s->base.d->cfg->allow_plaintext_auth;
}

void
smtp_close_421(struct smtp_session *s, const char *ecode, const char *text)
{
	if (s->base.closing)
		return;
	conn_printf(s->base.c, "421 %s %s\r\n", ecode, text);
	session_close(&s->base, text);
}

void
smtp_reply(struct smtp_session *s, int code, const char *ecode,
    const char *fmt, ...)
{
	char text[512];
	va_list ap;

	if (s->base.closing)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (ecode != NULL)
		conn_printf(s->base.c, "%d %s %s\r\n", code, ecode, text);
	else
		conn_printf(s->base.c, "%d %s\r\n", code, text);
	if (code >= 400 &&
	    session_count_error(&s->base, SMTP_ERROR_MAX_SESSION))
		smtp_close_421(s, "4.7.0", "Too many errors, closing connection");
}

void
smtp_reply_store_err(struct smtp_session *s, enum store_err e,
    const char *what)
{
	char esc[LOG_ESCAPE_SIZE];
	const char *detail = store_last_error();

	log_warnx("%s store-error op=%s err=%s detail=\"%s\"",
	    conn_id(s->base.c),
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
	smtp_milter_tx_free(tx);
	smtp_checks_free(&tx->checks);
	free(tx->users);
	free(tx->remote);
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

static void *
on_accept(struct conn *c, int tag)
{
	struct smtp_session *s;

	s = xcalloc(1, sizeof(*s));
	session_init(&s->base, c, &smtp_class, SMTP_ST_INIT);
	login_init(&s->login, &s->base, &smtp_login_ops);
	s->listener = (enum smtp_listener)tag;
	conn_set_line_limit(c, SMTP_PREAUTH_LINE_MAX);
	smtp_set_state(s, SMTP_ST_INIT);
	log_info("%s session listener=%s tls=%s", conn_id(c),
	    tag == SMTP_L_MX ? "mx" :
	    tag == SMTP_L_SUBMISSION ? "submission" : "smtps",
	    conn_is_tls(c) ? conn_tls_version(c) : "no");
	if (!smtp_milter_connect(s))
		conn_printf(c, "220 %s ESMTP Postroom\r\n",
		    s->base.d->cfg->hostname);
	return s;
}

static void
on_input(struct conn *c, void *sess)
{
	struct smtp_session *s = sess;
	enum cmd_result res;
	char *line;
	size_t len;
	int r;

	if (s->base.closing)
		return;
	if (s->base.state == SMTP_ST_DATA) {
		smtp_data_input(s);
		return;
	}
	if (s->chunk_input) {
		smtp_bdat_input(s);
		return;
	}
	r = conn_getline(c, &line, &len);
	if (r == 0)
		return;
	if (r < 0) {
		/* The rest of the line is skipped by conn; the session goes
		   on (RFC 5321 4.5.3.1.4). */
		login_sasl_abort(&s->login);
		smtp_reply(s, 500, "5.5.2", "Line too long");
		return;
	}
	if (login_in_sasl(&s->login))
		res = login_sasl_line(&s->login, line, len);
	else
		res = smtp_command(s, line, len);
	if (res == CMD_CLOSE)
		session_close(&s->base, "closed");
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
	login_sasl_abort(&s->login);
	s->helo[0] = '\0';
	s->flags &= ~(unsigned)(SMTP_F_ESMTP | SMTP_F_AUTHENTICATED);
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
	if (session_is_busy(&s->base)) {
		/* A delivery or login in flight: its reply comes first, then
		   the 421 (busy_changed); an AUTH delay is cut short. */
		s->flags |= SMTP_F_SHUTDOWN;
		login_delay_cut(&s->login);
		smtp_dnsbl_cut(s);
		return;
	}
	smtp_close_421(s, "4.3.2", "Service shutting down");
}

static void
on_closed(struct conn *c, void *sess)
{
	struct smtp_session *s = sess;

	log_info("%s session-end messages=%u errors=%u", conn_id(c),
	    s->messages, s->base.errors);
	smtp_tx_free(&s->tx);
	smtp_milter_session_free(s);
	login_deinit(&s->login);
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
