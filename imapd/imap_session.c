/* imap_session: the connection side of imapd. Feeds input to the pure
   parser, decides on literal announcements (size checks before "+"; the
   command table says which literal is streamed), hands commands to the
   dispatcher in order (pausing input while one runs on a worker) and input
   to a waiting command's continuation. It never writes to the store on
   the loop thread and knows no command by name. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fswatch.h"
#include "log.h"

#include "imap_commands.h"
#include "imap_features.h"
#include "imap_session.h"
#include "imap_view.h"

struct submit_ctx {
	struct imap_session *s;
	void (*work)(void *);
	void (*done)(struct imap_session *, void *);
	void *arg;
};

static const char *const state_names[] = { "not-auth", "auth", "selected",
	"logout" };

static const struct session_class imap_class = {
	.name = "imap",
	.state_names = state_names,
	.nstates = 4,
};

void
imap_set_state(struct imap_session *s, enum imap_state st)
{
	if (st == IMAP_ST_AUTH || st == IMAP_ST_SELECTED)
		conn_set_timeout(s->base.c, s->base.d->cfg->imap_timeout);
	if (st != IMAP_ST_SELECTED && s->sel != NULL)
		imap_view_free(&s->sel);
	session_set_state(&s->base, st);
}

/* ---- command flow ---- */

static void
submit_work(void *arg)
{
	struct submit_ctx *x = arg;

	x->work(x->arg);
}

static void
submit_done(void *arg)
{
	struct submit_ctx *x = arg;
	struct imap_session *s = x->s;

	x->done(s, x->arg);
	free(x);
	conn_release(s->base.c);
}

void
imap_session_submit(struct imap_session *s, void (*work)(void *arg),
    void (*done)(struct imap_session *s, void *arg), void *arg)
{
	struct submit_ctx *x = xmalloc(sizeof(*x));

	x->s = s;
	x->work = work;
	x->done = done;
	x->arg = arg;
	conn_hold(s->base.c);
	worker_submit(s->base.d->workers, submit_work, submit_done, x);
}

static void
reply_raw_tagged(struct imap_session *s, const char *tag, const char *text)
{
	conn_printf(s->base.c, "%s %s\r\n", tag ? tag : "*", text);
}

/* A streamed literal (APPEND's message): the command's context starts
   here, so that its checks can answer with its tag before "+". 0 if the
   literal was accepted. */
static int
literal_stream(struct imap_session *s, const struct imap_cmd_def *def,
    const char *tag, uint64_t size, bool sync)
{
	struct imap_parser *p = s->parser;
	const struct imap_arg *a, *end;

	if (imap_parser_cur_args(p, &a, &end) < 0)
		return 1;
	if (s->cmd == NULL)
		imap_cmd_begin(s, tag, def);
	if (imap_append_literal_begin(s, a, end, size) < 0) {
		imap_cmd_ctx_free(&s->cmd);
		return -1;
	}
	imap_parser_literal_external(p);
	if (sync)
		imap_reply_continue(s, "Ready for literal data");
	return 0;
}

/* A literal was announced: read it, stream it (APPEND) or refuse it,
   before the client sends any of it (or, for LITERAL+, as it arrives). */
static void
literal_decision(struct imap_session *s)
{
	struct imap_parser *p = s->parser;
	const char *name = imap_parser_cur_name(p);
	const char *tag = imap_parser_cur_tag(p);
	const struct imap_cmd_def *def = name ? imap_cmd_lookup(name) : NULL;
	uint64_t size = imap_parser_lit_size(p);
	bool sync = imap_parser_lit_sync(p);
	uint64_t limit;
	int r;

	if (def != NULL && (def->flags & IMAP_CMDF_STREAMS_LITERAL) &&
	    (def->states & s->base.state) && imap_parser_cur_nargs(p) >= 1 &&
	    (r = literal_stream(s, def, tag, size, sync)) <= 0) {
		if (r == 0)
			return;
		goto reject;
	}
	limit = s->base.state == IMAP_ST_NOT_AUTH ? 8192 : IMAP_LITERAL_SMALL_MAX;
	if (size <= limit && imap_parser_literal_fits(p)) {
		imap_parser_literal_read(p);
		if (sync)
			imap_reply_continue(s, "OK");
		return;
	}
	reply_raw_tagged(s, tag, "BAD [TOOBIG] Literal too large");
	s->bad_count++;
reject:
	imap_parser_literal_reject(p);
	/* A refused non-synchronizing literal is already on its way: after
	   login it is read and dropped (up to a bound); before login no client
	   has a reason to send one this big, so the session ends at once
	   rather than let an anonymous peer keep it busy draining. */
	if (!sync && (s->base.state == IMAP_ST_NOT_AUTH ||
	    size > 2 * s->base.d->cfg->max_message_size + 65536)) {
		imap_reply_untagged(s, "BYE Literal too large");
		imap_session_close(s, "literal-too-large");
	}
}

int
imap_raw_line(struct imap_session *s, size_t max, const char **p_r,
    size_t *len_r, size_t *used_r)
{
	const char *p, *lf;
	size_t n, len;

	if ((n = conn_peek(s->base.c, &p)) == 0)
		return 0;
	if ((lf = memchr(p, '\n', n)) == NULL)
		return n > max ? -1 : 0;
	len = (size_t)(lf - p);
	if (len > 0 && p[len - 1] == '\r')
		len--;
	*p_r = p;
	*len_r = len;
	*used_r = (size_t)(lf - p) + 1;
	return 1;
}

/* A parse error: BAD (or BYE if the parser cannot go on). */
static void
parse_error(struct imap_session *s, const char *tag, const char *err)
{
	/* an APPEND whose literal was taken ends here too */
	imap_cmd_ctx_free(&s->cmd);
	if (imap_parser_is_fatal(s->parser)) {
		imap_reply_untagged(s, "BYE %s", err);
		imap_session_close(s, "bad-input");
		return;
	}
	conn_printf(s->base.c, "%s BAD %s\r\n", tag ? tag : "*", err);
	if (++s->bad_count > IMAP_BAD_CMD_MAX) {
		imap_reply_untagged(s, "BYE Too many invalid commands");
		imap_session_close(s, "too-many-bad-commands");
	}
}

static void
session_input(struct conn *c, void *arg)
{
	struct imap_session *s = arg;

	for (;;) {
		const char *p, *tag, *err;
		size_t n, used;
		enum imap_pev ev;
		struct imap_cmd cmd;
		int r;

		if (s->base.closing || conn_is_closing(c))
			return;
		if (s->cmd != NULL && s->cmd->wait == IMAP_WAIT_INPUT) {
			if (s->cmd->continuation(s) <= 0)
				return;
			continue;
		}
		if (s->cmd != NULL && s->cmd->started) {
			if (!s->paused) {
				s->paused = true;
				conn_pause(c);
			}
			return;
		}
		if ((n = conn_peek(c, &p)) == 0)
			return;
		r = imap_parser_next(s->parser, p, n, &used, &ev, &cmd, &tag, &err);
		conn_consume(c, used);
		if (r < 0)
			parse_error(s, tag, err);
		else if (r > 0 && ev == IMAP_PEV_LITERAL)
			literal_decision(s);
		else if (r > 0)
			imap_cmd_run(s, &cmd);
	}
}

void
imap_session_close(struct imap_session *s, const char *reason)
{
	session_close(&s->base, reason);
}

/* ---- connection callbacks ---- */

static struct imap_parser *
parser_new(size_t line_max)
{
	const struct imap_parser_limits lim = {
		.line_max = line_max,
		.hard_max = IMAP_LINE_HARD_MAX,
		.literal_total = IMAP_LITERAL_SMALL_MAX,
		.depth_max = IMAP_DEPTH_MAX,
		.args_max = IMAP_ARGS_MAX,
	};

	return imap_parser_new(&lim);
}

void
imap_session_logged_in(struct imap_session *s)
{
	/* Between commands (the login's own arguments are no longer used):
	   a new parser with the full line cap replaces the pre-auth one. */
	imap_parser_free(&s->parser);
	s->parser = parser_new(IMAP_LINE_MAX);
	conn_set_line_limit(s->base.c, IMAP_LINE_MAX);
	imap_set_state(s, IMAP_ST_AUTH);
}

static void *
session_accept(struct conn *c, int tag)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	struct buf b;

	session_init(&s->base, c, &imap_class, IMAP_ST_NOT_AUTH);
	login_init(&s->login, &s->base, imap_login_ops());
	s->implicit_tls = tag == IMAP_LISTEN_IMPLICIT_TLS;
	/* An anonymous peer gets the tighter line cap until it logs in. */
	s->parser = parser_new(IMAP_PREAUTH_LINE_MAX);
	conn_set_line_limit(c, IMAP_PREAUTH_LINE_MAX);
	conn_set_timeout(c, s->base.d->cfg->preauth_timeout > 0 ?
	    s->base.d->cfg->preauth_timeout : IMAP_PREAUTH_TIMEOUT);
	buf_init(&b);
	buf_puts(&b, "* OK [CAPABILITY ");
	imap_capability_string(s, &b);
	buf_puts(&b, "] Postroom IMAP ready\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	/* The connect line is the network layer's (server.c). */
	return s;
}

static void
session_drain(struct conn *c, void *arg)
{
	struct imap_session *s = arg;

	if (s->cmd != NULL && s->cmd->wait == IMAP_WAIT_DRAIN)
		s->cmd->continuation(s);
}

static void
session_tls_done(struct conn *c, void *arg, bool ok)
{
	if (ok)
		log_info("%s starttls result=ok version=%s", conn_id(c),
		    conn_tls_version(c) ? conn_tls_version(c) : "-");
	else
		log_info("%s starttls result=fail", conn_id(c));
}

static void
session_timeout(struct conn *c, void *arg)
{
	struct imap_session *s = arg;

	imap_reply_untagged(s, "BYE Autologout; idle for too long");
	s->base.closing = true;
}

static void
session_shutdown(struct conn *c, void *arg)
{
	struct imap_session *s = arg;

	imap_reply_untagged(s, "BYE Server shutting down");
	s->base.closing = true;
}

static void
session_closed(struct conn *c, void *arg)
{
	struct imap_session *s = arg;

	/* The disconnect line (with its reason) is conn.c's; this one says
	   what the session was. */
	log_info("%s session-end user=%s", conn_id(c),
	    s->base.state == IMAP_ST_NOT_AUTH ? "-" : s->user.address);
	imap_cmd_ctx_free(&s->cmd);
	imap_view_free(&s->sel);
	imap_idle_free(s);
	imap_features_free(s);
	login_deinit(&s->login);
	imap_parser_free(&s->parser);
	free(s);
}

static const struct conn_handlers handlers = {
	.accept = session_accept,
	.input = session_input,
	.drain = session_drain,
	.tls_done = session_tls_done,
	.timeout = session_timeout,
	.shutdown = session_shutdown,
	.closed = session_closed,
};

const struct conn_handlers *
imap_session_handlers(void)
{
	return &handlers;
}
