/* imap_session: the connection side of imapd. Feeds input to the pure
   parser, decides on literal announcements (size checks before "+"),
   dispatches commands in order (pausing input while one runs on a worker),
   and keeps the selected-mailbox view in step with the store, sending
   EXISTS/RECENT/EXPUNGE/FETCH only where RFC 3501 §7 allows. It never
   writes to the store on the loop thread. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fswatch.h"
#include "log.h"

#include "imap_commands.h"
#include "imap_ext.h"
#include "imap_ext2.h"
#include "imap_session.h"

static struct imap_daemon *g_d;

struct submit_ctx {
	struct imap_session *s;
	void (*work)(void *);
	void (*done)(struct imap_session *, void *);
	void *arg;
};

static const char *const state_names[] = { "not-auth", "auth", "selected",
	"logout" };

static const char *
state_name(enum imap_state st)
{
	unsigned i = 0;

	while (i < 3 && !((unsigned)st & (1u << i)))
		i++;
	return state_names[i];
}

void
imap_set_state(struct imap_session *s, enum imap_state st)
{
	log_debug("%s state from=%s to=%s", conn_id(s->c), state_name(s->state),
	    state_name(st));
	if (st == IMAP_ST_AUTH || st == IMAP_ST_SELECTED)
		conn_set_timeout(s->c, s->d->cfg->imap_timeout);
	if (st != IMAP_ST_SELECTED && s->sel != NULL)
		imap_view_free(&s->sel);
	s->state = st;
}

void
imap_capability_string(const struct imap_session *s, struct buf *out)
{
	bool tls = conn_is_tls(s->c);

	buf_puts(out, "IMAP4rev1 LITERAL+ SASL-IR");
	imap_ext_capabilities(s, out);
	if (s->state != IMAP_ST_NOT_AUTH)
		return;
	if (!tls && !s->implicit_tls && server_has_tls(s->d->srv))
		buf_puts(out, " STARTTLS");
	if (tls || s->d->cfg->allow_plaintext_auth)
		buf_puts(out, " AUTH=PLAIN AUTH=LOGIN");
	else
		buf_puts(out, " LOGINDISABLED");
}

/* ---- command flow ---- */

void
imap_cmd_finish(struct imap_session *s)
{
	free(s->tag);
	s->tag = NULL;
	s->cur = NULL;
	s->uid_cmd = false;
	s->running = false;
	if (s->paused) {
		s->paused = false;
		conn_resume(s->c);
	}
	imap_parser_trim(s->parser);
}

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
	conn_release(s->c);
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
	conn_hold(s->c);
	worker_submit(s->d->workers, submit_work, submit_done, x);
}

static void
run_command(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args;
	const char *name = cmd->name;
	const struct imap_cmd_def *def;
	enum cmd_result r;

	s->tag = xstrdup(cmd->tag);
	s->running = true;
	if (strcasecmp(name, "UID") == 0) {
		if (args >= cmd->args_end || args->type != IMAP_ARG_ATOM) {
			imap_reply_tagged(s, "BAD", "Missing UID command");
			goto done;
		}
		name = args->str;
		args = imap_arg_next(args);
		s->uid_cmd = true;
	}
	def = imap_cmd_lookup(name);
	if (def == NULL || (s->uid_cmd && !(def->flags & IMAP_CMDF_UID))) {
		imap_reply_tagged(s, "BAD", "Unknown command");
		goto done;
	}
	if (!(def->states & s->state)) {
		imap_reply_tagged(s, "BAD", "Command not valid in this state");
		goto done;
	}
	s->cur = def;
	r = def->fn(s, args, cmd->args_end);
	if (r == CMD_CLOSE) {
		s->closing = true;
		conn_close(s->c);
		return;
	}
	if (r == CMD_SUSPEND) {
		if (s->running && !s->paused && !s->in_sasl &&
		    !imap_idle_active(s)) {
			s->paused = true;
			conn_pause(s->c);
		}
		return;
	}
done:
	imap_cmd_finish(s);
	if (s->bad_count > IMAP_BAD_CMD_MAX) {
		imap_reply_untagged(s, "BYE Too many invalid commands");
		s->closing = true;
		conn_close(s->c);
	}
}

static void
reply_raw_tagged(struct imap_session *s, const char *tag, const char *text)
{
	conn_printf(s->c, "%s %s\r\n", tag ? tag : "*", text);
}

/* A literal was announced: read it, stream it (APPEND) or refuse it,
   before the client sends any of it (or, for LITERAL+, as it arrives). */
static void
literal_decision(struct imap_session *s)
{
	struct imap_parser *p = s->parser;
	const char *name = imap_parser_cur_name(p);
	const char *tag = imap_parser_cur_tag(p);
	uint64_t size = imap_parser_lit_size(p);
	bool sync = imap_parser_lit_sync(p);
	const struct imap_arg *a, *end;
	uint64_t limit;

	if (name != NULL && strcasecmp(name, "APPEND") == 0 &&
	    (s->state & IMAP_ST_AUTHED) && imap_parser_cur_nargs(p) >= 1 &&
	    imap_parser_cur_args(p, &a, &end) == 0) {
		s->tag = xstrdup(tag);
		if (imap_append_literal_begin(s, tag, a, end, size, sync) == 0) {
			free(s->tag);
			s->tag = NULL;
			imap_parser_literal_external(p);
			if (sync)
				imap_reply_continue(s, "Ready for literal data");
			return;
		}
		free(s->tag);
		s->tag = NULL;
		goto reject;
	}
	limit = s->state == IMAP_ST_NOT_AUTH ? 8192 : IMAP_LITERAL_SMALL_MAX;
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
	if (!sync && (s->state == IMAP_ST_NOT_AUTH ||
	    size > 2 * s->d->cfg->max_message_size + 65536)) {
		imap_reply_untagged(s, "BYE Literal too large");
		s->closing = true;
		conn_close(s->c);
	}
}

int
imap_raw_line(struct imap_session *s, size_t max, const char **p_r,
    size_t *len_r, size_t *used_r)
{
	const char *p, *lf;
	size_t n, len;

	if ((n = conn_peek(s->c, &p)) == 0)
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

static bool
sasl_input(struct imap_session *s)
{
	const char *p;
	size_t len, used;
	char *line;
	int r;

	if ((r = imap_raw_line(s, 16384, &p, &len, &used)) <= 0) {
		if (r < 0) {
			imap_reply_untagged(s, "BYE SASL response too long");
			s->closing = true;
			conn_close(s->c);
		}
		return false;
	}
	line = xstrndup(p, len);
	conn_consume(s->c, used);
	imap_auth_sasl_line(s, line, len);
	explicit_bzero(line, len);
	free(line);
	return true;
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

		if (s->closing || conn_is_closing(c))
			return;
		if (s->append != NULL && !imap_append_literal_done(s)) {
			if ((n = conn_peek(c, &p)) == 0)
				return;
			conn_consume(c, imap_append_feed(s, p, n));
			continue;
		}
		if (s->in_sasl) {
			if (!sasl_input(s))
				return;
			continue;
		}
		if (imap_idle_active(s)) {
			if (!imap_idle_input(s))
				return;
			continue;
		}
		if (s->running) {
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
		if (r == 0)
			continue;
		if (r < 0) {
			imap_append_free(&s->append);
			if (imap_parser_is_fatal(s->parser)) {
				imap_reply_untagged(s, "BYE %s", err);
				s->closing = true;
				conn_close(c);
				return;
			}
			conn_printf(c, "%s BAD %s\r\n", tag ? tag : "*", err);
			if (++s->bad_count > IMAP_BAD_CMD_MAX) {
				imap_reply_untagged(s, "BYE Too many invalid commands");
				s->closing = true;
				conn_close(c);
				return;
			}
			continue;
		}
		if (ev == IMAP_PEV_LITERAL) {
			literal_decision(s);
			continue;
		}
		run_command(s, &cmd);
	}
}

/* ---- connection callbacks ---- */

static void *
session_accept(struct conn *c, int tag)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	const struct imap_parser_limits lim = {
		.line_max = IMAP_LINE_MAX,
		.hard_max = IMAP_LINE_HARD_MAX,
		.literal_total = IMAP_LITERAL_SMALL_MAX,
		.depth_max = IMAP_DEPTH_MAX,
		.args_max = IMAP_ARGS_MAX,
	};
	struct buf b;

	s->d = g_d;
	s->c = c;
	s->state = IMAP_ST_NOT_AUTH;
	s->implicit_tls = tag == IMAP_LISTEN_IMPLICIT_TLS;
	s->parser = imap_parser_new(&lim);
	conn_set_line_limit(c, IMAP_LINE_MAX);
	conn_set_timeout(c, s->d->cfg->preauth_timeout > 0 ?
	    s->d->cfg->preauth_timeout : IMAP_PREAUTH_TIMEOUT);
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

	if (s->fetch != NULL)
		imap_fetch_drain(s);
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
	s->closing = true;
}

static void
session_shutdown(struct conn *c, void *arg)
{
	struct imap_session *s = arg;

	imap_reply_untagged(s, "BYE Server shutting down");
	s->closing = true;
}

static void
session_closed(struct conn *c, void *arg)
{
	struct imap_session *s = arg;

	/* The disconnect line (with its reason) is conn.c's; this one says
	   what the session was. */
	log_info("%s session-end user=%s", conn_id(c),
	    s->state == IMAP_ST_NOT_AUTH ? "-" : s->user.address);
	imap_fetch_free(&s->fetch);
	imap_append_free(&s->append);
	imap_view_free(&s->sel);
	imap_ext_free(s);
	sasl_server_reset(&s->sasl);
	if (s->auth_timer != NULL) {
		ev_timer_stop(s->d->loop, s->auth_timer);
		free(s->auth_timer);
	}
	imap_parser_free(&s->parser);
	free(s->tag);
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
imap_session_handlers(struct imap_daemon *d)
{
	g_d = d;
	return &handlers;
}

/* ---- the selected-mailbox view ---- */

/* Tells views apart across free and reuse of their memory, for a claim
   that finishes after its view was closed. */
static _Atomic uint64_t g_view_serial;

/* Claims \Recent for this session (worker thread). The store moves the
   mark from first to its uidnext at the time of the claim; uidnext read
   just before is a lower bound of that, so [first, pre) is certainly this
   session's. A delivery racing the claim leaves its message recent for
   nobody rather than for two sessions. */
static enum store_err
claim_recent_range(struct store *st, uint32_t mbox_id, uint32_t pre_uidnext,
    uint32_t *lo_r, uint32_t *hi_r)
{
	uint32_t first;
	enum store_err e;

	if ((e = store_mailbox_claim_recent(st, mbox_id, &first)) != STORE_OK)
		return e;
	*lo_r = first;
	*hi_r = pre_uidnext > first ? pre_uidnext : first;
	return STORE_OK;
}

enum store_err
imap_view_open(struct store *st, uint32_t user_id, const char *name,
    bool readonly, struct imap_view **v_r)
{
	struct imap_view *v = xcalloc(1, sizeof(*v));
	uint32_t first = 0;
	enum store_err e;
	size_t i;

	if ((e = store_mailbox_get(st, user_id, name, &v->mb)) != STORE_OK)
		goto fail;
	/* EXAMINE peeks at the recent mark without claiming (RFC 3501
	   §6.3.2: the \Recent state is not altered). */
	if (readonly)
		first = v->mb.first_recent_uid;
	else if ((e = claim_recent_range(st, v->mb.id, v->mb.uidnext,
	    &v->recent_lo, &v->recent_hi)) != STORE_OK)
		goto fail;
	if ((e = store_msg_list(st, v->mb.id, 0, 0, &v->msgs, &v->n, &v->mb)) !=
	    STORE_OK)
		goto fail;
	v->cap = v->n;
	v->readonly = readonly;
	v->serial = ++g_view_serial;
	for (i = 0; i < v->n; i++) {
		uint32_t uid = v->msgs[i].uid;

		v->msgs[i].flags &= IMAP_VF_SYSTEM;
		if (readonly ? first != 0 && uid >= first :
		    uid >= v->recent_lo && uid < v->recent_hi)
			v->msgs[i].flags |= IMAP_VF_RECENT;
		else if (!readonly && uid >= v->recent_hi)
			v->claim_again = true;  /* delivered during the claim */
	}
	*v_r = v;
	return STORE_OK;
fail:
	free(v->msgs);
	free(v);
	return e;
}

void
imap_view_free(struct imap_view **vp)
{
	struct imap_view *v = *vp;

	if (v == NULL)
		return;
	fswatch_free(&v->watch);
	free(v->msgs);
	free(v);
	*vp = NULL;
}

static void
view_changed(void *arg)
{
	struct imap_session *s = arg;

	if (s->sel != NULL)
		s->sel->dirty = true;
	if (s->view_changed_hook != NULL)
		s->view_changed_hook(s);
}

void
imap_view_watch(struct imap_session *s)
{
	char path[4096];

	store_mailbox_notify_path(s->d->store, s->sel->mb.id, path, sizeof(path));
	s->sel->watch = fswatch_new(s->d->loop, path, view_changed, s);
	if (s->sel->watch == NULL)
		log_debug("%s fswatch failed path=%s", conn_id(s->c), path);
}

uint32_t
imap_view_msn(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else if (v->msgs[mid].uid > uid)
			hi = mid;
		else
			return (uint32_t)mid + 1;
	}
	return 0;
}

static void
view_append(struct imap_view *v, const struct store_msg *m)
{
	if (v->n == v->cap) {
		/* Small first: most sessions (IDLE on a quiet mailbox) only
		   ever see a message or two arrive. */
		v->cap = v->cap ? v->cap * 2 : 4;
		v->msgs = xrealloc(v->msgs, v->cap * sizeof(*v->msgs));
	}
	v->msgs[v->n++] = *m;
}

/* Marks view messages that the store no longer has (merge of two
   uid-ordered lists). */
static void
view_find_expunged(struct imap_session *s)
{
	struct imap_view *v = s->sel;
	struct store_msg *all = NULL;
	size_t n = 0, i, j = 0;

	if (store_msg_list(s->d->store, v->mb.id, 0, 0, &all, &n, NULL) !=
	    STORE_OK)
		return;
	for (i = 0; i < v->n; i++) {
		while (j < n && all[j].uid < v->msgs[i].uid)
			j++;
		if ((j == n || all[j].uid != v->msgs[i].uid) &&
		    !(v->msgs[i].flags & IMAP_VF_EXPUNGED)) {
			v->msgs[i].flags |= IMAP_VF_EXPUNGED;
			v->npending_expunge++;
		}
	}
	free(all);
}

struct claim_job {
	uint64_t serial;
	uint32_t mbox_id, pre_uidnext, lo, hi;
	enum store_err e;
};

static void
claim_work(void *arg)
{
	struct claim_job *j = arg;
	struct store_mailbox mb;

	/* A fresher lower bound than the view's, read right before. */
	if (store_mailbox_get_by_id(g_d->store, j->mbox_id, &mb) == STORE_OK &&
	    mb.uidnext > j->pre_uidnext)
		j->pre_uidnext = mb.uidnext;
	j->e = claim_recent_range(g_d->store, j->mbox_id, j->pre_uidnext,
	    &j->lo, &j->hi);
}

static void view_claim(struct imap_session *s);

/* The claim is back: flag what it gave this session. The client hears of
   it with the next untagged window (at once while idling). */
static void
claim_done(struct imap_session *s, void *arg)
{
	struct claim_job *j = arg;
	struct imap_view *v = s->sel;
	bool flagged = false;
	size_t i;

	if (v == NULL || v->serial != j->serial || s->closing)
		goto out;
	v->claiming = false;
	if (j->e != STORE_OK)
		goto out;
	v->recent_lo = j->lo;
	v->recent_hi = j->hi;
	for (i = 0; i < v->n; i++) {
		struct store_msg *m = &v->msgs[i];

		if (m->uid >= j->lo && m->uid < j->hi &&
		    !(m->flags & (IMAP_VF_RECENT | IMAP_VF_EXPUNGED))) {
			m->flags |= IMAP_VF_RECENT;
			flagged = true;
		}
	}
	if (v->claim_again)
		view_claim(s);
	if (flagged && s->view_changed_hook != NULL)
		s->view_changed_hook(s);
out:
	free(j);
}

/* One claim at a time per view; mail that arrives while one runs is
   claimed by the next. */
static void
view_claim(struct imap_session *s)
{
	struct imap_view *v = s->sel;
	struct claim_job *j;

	if (v->claiming) {
		v->claim_again = true;
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->serial = v->serial;
	j->mbox_id = v->mb.id;
	j->pre_uidnext = v->mb.uidnext;
	v->claiming = true;
	v->claim_again = false;
	imap_session_submit(s, claim_work, claim_done, j);
}

void
imap_view_mark_expunged(struct imap_view *v, const uint32_t *uids, size_t n)
{
	size_t i;
	uint32_t msn;

	for (i = 0; i < n; i++) {
		msn = imap_view_msn(v, uids[i]);
		if (msn && !(v->msgs[msn - 1].flags & IMAP_VF_EXPUNGED)) {
			v->msgs[msn - 1].flags |= IMAP_VF_EXPUNGED;
			v->npending_expunge++;
		}
	}
}

static void
send_expunges(struct imap_session *s)
{
	struct imap_view *v = s->sel;
	struct buf b;
	size_t i, k = 0, known = v->reported_exists, gone = 0;

	buf_init(&b);
	/* Only messages the client was told of (MSN <= the last EXISTS) get
	   an EXPUNGE, and each one lowers that count: a message appended and
	   expunged in between is never mentioned, and the EXISTS that follows
	   is still sent when the count changed. */
	if (imap_qresync_on(s)) {
		/* QRESYNC: one VANISHED with the UIDs (RFC 7162 §3.2.10) */
		uint32_t *uids = xmalloc((v->n ? v->n : 1) * sizeof(*uids));

		for (i = 0; i < v->n && i < known; i++)
			if (v->msgs[i].flags & IMAP_VF_EXPUNGED)
				uids[gone++] = v->msgs[i].uid;
		imap_buf_vanished(&b, false, uids, gone);
		free(uids);
	} else {
		for (i = v->n; i-- > 0;)
			if ((v->msgs[i].flags & IMAP_VF_EXPUNGED) && i < known) {
				buf_printf(&b, "* %zu EXPUNGE\r\n", i + 1);
				gone++;
			}
	}
	for (i = 0; i < v->n; i++)
		if (!(v->msgs[i].flags & IMAP_VF_EXPUNGED))
			v->msgs[k++] = v->msgs[i];
	v->n = k;
	v->npending_expunge = 0;
	v->reported_exists = (uint32_t)(known > gone ? known - gone : 0);
	if (v->reported_exists > k)
		v->reported_exists = (uint32_t)k;
	imap_send_buf(s, &b);
	buf_free(&b);
}

void
imap_buf_flags_update(struct buf *b, const struct imap_view *v)
{
	unsigned k;

	buf_puts(b, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (k = 0; k < v->mb.nkeywords; k++)
		buf_printf(b, " %s", v->mb.keywords[k]);
	buf_puts(b, ")\r\n* OK [PERMANENTFLAGS (");
	if (!v->readonly) {
		buf_puts(b, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
		for (k = 0; k < v->mb.nkeywords; k++)
			buf_printf(b, " %s", v->mb.keywords[k]);
		buf_puts(b, " \\*");
	}
	buf_puts(b, ")] Flags permitted\r\n");
}

/* The selected mailbox was deleted by another session or process (or
   deleted and created again: a new id). Its MSNs and UIDs mean nothing
   any more, and RFC 3501 has no response for it, so the session ends as
   Dovecot ends it. */
static void
view_gone(struct imap_session *s)
{
	s->sel->gone = true;
	log_info("%s mailbox-gone mailbox=%u", conn_id(s->c), s->sel->mb.id);
	imap_reply_untagged(s,
	    "BYE Selected mailbox was deleted, have to disconnect.");
	s->closing = true;
	conn_close(s->c);
}

void
imap_view_sync(struct imap_session *s, bool allow_expunge)
{
	struct imap_view *v = s->sel;
	struct store_msg *ch = NULL;
	struct store_mailbox mb;
	size_t nch = 0, i, nchanged = 0, recent = 0;
	uint32_t last_uid, *changed = NULL;
	bool need_claim = false, new_keywords = false;
	enum store_err e;
	struct buf b;

	if (v->gone)
		return;
	if (v->dirty || s->force_sync) {
		v->dirty = false;
		/* One record read tells whether anything changed; the scan
		   of the messages is only done when it did. */
		e = store_mailbox_get_by_id(s->d->store, v->mb.id, &mb);
		if (e == STORE_ENOTFOUND) {
			view_gone(s);
			return;
		}
		if (e != STORE_OK || (mb.highestmodseq == v->mb.highestmodseq &&
		    mb.uidnext == v->mb.uidnext &&
		    mb.messages == v->n - v->npending_expunge))
			goto report;
		if (store_msg_list(s->d->store, v->mb.id, 0, v->mb.highestmodseq,
		    &ch, &nch, &mb) != STORE_OK)
			goto report;
		if (mb.uidvalidity != v->mb.uidvalidity) {
			free(ch);
			goto report;
		}
		last_uid = v->n ? v->msgs[v->n - 1].uid : 0;
		changed = xmalloc((nch ? nch : 1) * sizeof(*changed));
		for (i = 0; i < nch; i++) {
			struct store_msg m = ch[i];
			uint32_t msn;

			if (m.uid > last_uid) {
				m.flags &= IMAP_VF_SYSTEM;
				if (v->readonly)
					;
				else if (m.uid >= v->recent_lo &&
				    m.uid < v->recent_hi)
					m.flags |= IMAP_VF_RECENT;
				else if (m.uid >= v->recent_hi)
					need_claim = true;
				view_append(v, &m);
				continue;
			}
			msn = imap_view_msn(v, m.uid);
			if (msn == 0 || (v->msgs[msn - 1].flags & IMAP_VF_EXPUNGED))
				continue;
			if (v->msgs[msn - 1].modseq != m.modseq) {
				struct store_msg *o = &v->msgs[msn - 1];
				uint32_t keep = o->flags & ~IMAP_VF_SYSTEM;
				bool diff = (o->flags & IMAP_VF_SYSTEM) !=
				    (m.flags & IMAP_VF_SYSTEM) ||
				    o->keywords != m.keywords;

				o->flags = (m.flags & IMAP_VF_SYSTEM) | keep;
				o->keywords = m.keywords;
				o->modseq = m.modseq;
				if (diff)
					changed[nchanged++] = m.uid;
			}
		}
		free(ch);
		new_keywords = mb.nkeywords != v->mb.nkeywords;
		v->mb = mb;
		if (mb.messages != v->n - v->npending_expunge)
			view_find_expunged(s);
	}
report:
	s->force_sync = false;
	if (allow_expunge && v->npending_expunge)
		send_expunges(s);
	buf_init(&b);
	if (new_keywords)
		imap_buf_flags_update(&b, v);
	for (i = 0; i < v->n; i++)
		if (v->msgs[i].flags & IMAP_VF_RECENT)
			recent++;
	/* RFC 3501 §7.3: EXISTS and RECENT come when the mailbox grows; an
	   EXPUNGE already lowers both counts on the client's side, so a
	   smaller count alone is not announced. RECENT also comes when a
	   claim made messages recent for this session after their EXISTS. */
	if (v->n != v->reported_exists) {
		bool grew = v->n > v->reported_exists;

		buf_printf(&b, "* %zu EXISTS\r\n", v->n);
		v->reported_exists = (uint32_t)v->n;
		if (grew || recent != v->reported_recent) {
			buf_printf(&b, "* %zu RECENT\r\n", recent);
			v->reported_recent = (uint32_t)recent;
		}
	} else if (recent > v->reported_recent) {
		buf_printf(&b, "* %zu RECENT\r\n", recent);
		v->reported_recent = (uint32_t)recent;
	}
	v->reported_recent = (uint32_t)recent;
	for (i = 0; i < nchanged; i++) {
		uint32_t msn = imap_view_msn(v, changed[i]);
		struct store_msg *m;

		if (msn == 0)
			continue;
		m = &v->msgs[msn - 1];
		buf_printf(&b, "* %u FETCH (", msn);
		if (s->uid_cmd || imap_condstore_on(s))  /* RFC 7162 §3.1 */
			buf_printf(&b, "UID %u ", m->uid);
		buf_puts(&b, "FLAGS ");
		imap_buf_flags(&b, v, m->flags, m->keywords);
		imap_buf_modseq(&b, s, m->modseq);
		buf_puts(&b, ")\r\n");
	}
	imap_send_buf(s, &b);
	buf_free(&b);
	free(changed);
	if (!v->readonly && (need_claim || (v->claim_again && !v->claiming)))
		view_claim(s);
}
