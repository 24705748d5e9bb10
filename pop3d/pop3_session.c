/* pop3_session: the life of one POP3 connection: greeting, the input
   loop (command lines, or SASL lines for login.c), replies, streaming
   RETR/TOP from the message file through conn_send_fd with the
   byte-stuffer as its filter, timeouts, shutdown and the end of the
   session. Login and the maildrop are pop3_maildrop.c's, commands
   pop3_commands.c's. Never blocks the loop. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pop3_session.h"

static const char *const state_names[] = {
	"authorization", "transaction", "update",
};

static const struct session_class pop3_class = {
	.name = "pop3",
	.state_names = state_names,
	.nstates = ARRAY_SIZE(state_names),
};

void
pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	conn_write(s->base.c, line, (size_t)n);
}

void
pop3_reply_store_err(struct pop3_session *s, enum store_err e)
{
	switch (e) {
	case STORE_OK:
		pop3_reply(s, "+OK");
		break;
	case STORE_ENOTFOUND:
		pop3_reply(s, "-ERR Message no longer exists");
		break;
	case STORE_EEXISTS:
		pop3_reply(s, "-ERR [IN-USE] Maildrop is locked by another "
		    "POP3 session");
		break;
	case STORE_ECORRUPT:
	case STORE_EINTERNAL:
	case STORE_EPERM:
		/* Retrying will not help: RFC 3206 SYS/PERM. */
		pop3_reply(s, "-ERR [SYS/PERM] Server error (%s)",
		    store_err_str(e));
		break;
	default:
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary server error (%s)",
		    store_err_str(e));
		break;
	}
}

bool
pop3_can_plaintext_auth(const struct pop3_session *s)
{
	return conn_is_tls(s->base.c) || s->base.d->cfg->allow_plaintext_auth;
}

/* ---- session lifecycle ---- */

static void *
pop3_accept(struct conn *c, int tag)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));

	(void)tag;
	session_init(&s->base, c, &pop3_class, POP3_ST_AUTHORIZATION);
	login_init(&s->login, &s->base, &pop3_login_ops);
	s->lock_fd = -1;
	conn_set_line_limit(c, POP3_PREAUTH_LINE_MAX);
	conn_set_timeout(c, s->base.d->cfg->preauth_timeout);
	pop3_reply(s, "+OK %s Postroom POP3 server ready",
	    s->base.d->cfg->hostname);
	return s;
}

static void
pop3_closed(struct conn *c, void *arg)
{
	struct pop3_session *s = arg;

	if (s->base.state == POP3_ST_TRANSACTION)
		log_info("%s session-end user=%s retr=%" PRIu32 " bytes=%"
		    PRIu64 " deleted=0", conn_id(c), s->address,
		    s->retr_count, s->retr_bytes);
	login_deinit(&s->login);
	pop3_maildrop_release(s);
	secret_free(&s->user);
	free(s);
}

static void
pop3_input(struct conn *c, void *arg)
{
	struct pop3_session *s = arg;
	enum cmd_result r;
	char *line;
	size_t len;
	int ret;

	/* One line per call: conn calls again while lines remain, and a
	   suspended command pauses the conn before the next one. */
	ret = conn_getline(c, &line, &len);
	if (ret == 0)
		return;
	if (ret < 0) {
		login_sasl_abort(&s->login);
		r = pop3_bad_command(s, "Line too long");
	} else if (login_in_sasl(&s->login)) {
		r = login_sasl_line(&s->login, line, len);
	} else {
		r = pop3_command_dispatch(s, line, len);
	}
	if (r == CMD_CLOSE)
		session_close(&s->base, "quit");
}

static void
pop3_tls_done(struct conn *c, void *arg, bool ok)
{
	(void)arg;
	if (ok)
		log_info("%s starttls version=%s cipher=%s", conn_id(c),
		    conn_tls_version(c), conn_tls_cipher(c));
}

/* In the middle of a RETR a goodbye line would land inside the message
   data; the missing terminator tells the client enough. */
static void
pop3_timeout(struct conn *c, void *arg)
{
	(void)arg;
	log_info("%s timeout", conn_id(c));
	if (!conn_is_sending(c))
		conn_puts(c, "-ERR Disconnected for inactivity\r\n");
}

static void
pop3_shutdown(struct conn *c, void *arg)
{
	(void)arg;
	if (!conn_is_sending(c))
		conn_puts(c, "-ERR [SYS/TEMP] Server shutting down\r\n");
}

/* ---- RETR / TOP ---- */

/* conn_send_fd's filter: RFC 1939 byte-stuffing, and TOP's line count. */
static int
stuff_filter(void *arg, const char *in, size_t len, bool last,
    struct buf *out)
{
	struct pop3_stuffer *st = arg;

	if (len > 0)
		pop3_stuffer_feed(st, in, len, out);
	if (last || st->done) {
		pop3_stuffer_finish(st, out);
		return 0;
	}
	return 1;
}

enum cmd_result
pop3_session_send_msg(struct pop3_session *s, uint32_t idx, bool top,
    uint32_t lines)
{
	struct pop3_msg *m = &s->msgs[idx];
	enum store_err e;
	int fd;

	e = store_msg_open(s->base.d->store, s->mbox_id, m->uid, &fd);
	if (e != STORE_OK) {
		pop3_reply_store_err(s, e);
		return CMD_DONE;
	}
	pop3_stuffer_init(&s->stuffer, top, lines);
	if (top) {
		pop3_reply(s, "+OK");
	} else {
		pop3_reply(s, "+OK %" PRIu64 " octets", m->size);
		m->retrieved = true;
		s->retr_count++;
		s->retr_bytes += m->size;
	}
	/* The size LIST announced bounds the read. Input waits for the end
	   of the stream. */
	(void)conn_send_fd(s->base.c, fd, 0, m->size, stuff_filter, NULL,
	    &s->stuffer);
	return CMD_DONE;
}

const struct conn_handlers pop3_handlers = {
	.accept = pop3_accept,
	.input = pop3_input,
	.drain = NULL,
	.tls_done = pop3_tls_done,
	.timeout = pop3_timeout,
	.shutdown = pop3_shutdown,
	.closed = pop3_closed,
};
