/* pop3_session: the life of one POP3 connection: greeting, input loop,
   login on the worker pool (password check, maildrop lock, INBOX
   snapshot), the growing delay after a wrong password, streaming RETR/TOP
   from the message file in bounded chunks, and the UPDATE state (the one
   expunge transaction at QUIT). A session that ends any other way deletes
   nothing. Never blocks the loop on a password hash or an LMDB write. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pop3_session.h"

/* Read size for RETR/TOP: big enough for few syscalls, small enough that
   a 50 MB message costs no more than this plus the output queue. */
#define POP3_CHUNK (64 * 1024)

struct pop3_daemon pop3_daemon;

/* Everything runs on the loop thread, so one read buffer and one
   stuffing buffer serve every session. */
static char chunk_buf[POP3_CHUNK];
static struct buf stuff_buf;

static const char *
state_name(enum pop3_state st)
{
	switch (st) {
	case POP3_ST_AUTHORIZATION: return "authorization";
	case POP3_ST_AUTH_SASL: return "auth-sasl";
	case POP3_ST_TRANSACTION: return "transaction";
	case POP3_ST_BUSY: return "busy";
	case POP3_ST_UPDATE: return "update";
	}
	return "?";
}

void
pop3_set_state(struct pop3_session *s, enum pop3_state st)
{
	if (s->state != st && log_is_debug())
		log_debug("%s state %s -> %s", conn_id(s->conn),
		    state_name(s->state), state_name(st));
	s->state = st;
}

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
	conn_write(s->conn, line, (size_t)n);
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
	return conn_is_tls(s->conn) || pop3_daemon.cfg->allow_plaintext_auth;
}

/* ---- the in-process maildrop lock set ---- */

static bool
locked_add(uint32_t user_id)
{
	struct pop3_daemon *d = &pop3_daemon;
	size_t i;

	for (i = 0; i < d->nlocked; i++) {
		if (d->locked[i] == user_id)
			return false;
	}
	if (d->nlocked == d->locked_cap) {
		d->locked_cap = d->locked_cap ? d->locked_cap * 2 : 16;
		d->locked = xrealloc(d->locked,
		    d->locked_cap * sizeof(*d->locked));
	}
	d->locked[d->nlocked++] = user_id;
	return true;
}

static void
locked_del(uint32_t user_id)
{
	struct pop3_daemon *d = &pop3_daemon;
	size_t i;

	for (i = 0; i < d->nlocked; i++) {
		if (d->locked[i] == user_id) {
			d->locked[i] = d->locked[--d->nlocked];
			return;
		}
	}
}

/* ---- session lifecycle ---- */

static void *
pop3_accept(struct conn *c, int tag)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));

	s->conn = c;
	s->state = POP3_ST_AUTHORIZATION;
	s->lock_fd = -1;
	s->stream.fd = -1;
	conn_set_line_limit(c, POP3_LINE_MAX);
	conn_set_timeout(c, pop3_daemon.cfg->preauth_timeout);
	pop3_reply(s, "+OK %s Postroom POP3 server ready",
	    pop3_daemon.cfg->hostname);
	return s;
}

static void
stream_end(struct pop3_session *s)
{
	if (s->stream.fd >= 0) {
		close(s->stream.fd);
		s->stream.fd = -1;
	}
}

static void
pop3_closed(struct conn *c, void *arg)
{
	struct pop3_session *s = arg;

	if (s->delay_active)
		ev_timer_stop(conn_loop(c), &s->delay);
	stream_end(s);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	if (s->in_locked_set)
		locked_del(s->user_id);
	if (s->state == POP3_ST_TRANSACTION)
		log_info("%s session-end user=%s retr=%" PRIu32 " bytes=%"
		    PRIu64 " deleted=0", conn_id(c), s->address,
		    s->retr_count, s->retr_bytes);
	secret_free(&s->user);
	sasl_server_reset(&s->sasl);
	free(s->msgs);
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
		if (s->state == POP3_ST_AUTH_SASL) {
			sasl_server_reset(&s->sasl);
			pop3_set_state(s, POP3_ST_AUTHORIZATION);
		}
		if (++s->bad_commands >= POP3_MAX_BAD_COMMANDS) {
			pop3_reply(s, "-ERR Too many bad commands, closing");
			conn_close(c);
			return;
		}
		pop3_reply(s, "-ERR Line too long");
		return;
	}
	if (s->state == POP3_ST_AUTH_SASL)
		r = pop3_auth_continue(s, line, len);
	else
		r = pop3_command_dispatch(s, line, len);
	switch (r) {
	case CMD_DONE:
		break;
	case CMD_SUSPEND:
		conn_pause(c);
		break;
	case CMD_CLOSE:
		conn_close(c);
		break;
	}
}

static void
pop3_tls_done(struct conn *c, void *arg, bool ok)
{
	if (ok)
		log_info("%s starttls version=%s cipher=%s", conn_id(c),
		    conn_tls_version(c), conn_tls_cipher(c));
}

/* In the middle of a RETR a goodbye line would land inside the message
   data; the missing terminator tells the client enough. */
static void
pop3_timeout(struct conn *c, void *arg)
{
	struct pop3_session *s = arg;

	log_info("%s timeout", conn_id(c));
	if (s->stream.fd < 0)
		conn_puts(c, "-ERR Disconnected for inactivity\r\n");
}

static void
pop3_shutdown(struct conn *c, void *arg)
{
	struct pop3_session *s = arg;

	if (s->stream.fd < 0)
		conn_puts(c, "-ERR [SYS/TEMP] Server shutting down\r\n");
}

/* ---- login ---- */

struct login_job {
	struct pop3_session *s;
	char *user, *pass;
	enum store_err err;
	struct store_user u;
	int lock_fd;
	struct store_mailbox mb;
	struct store_msg *msgs;
	size_t n;
};

/* Worker thread: password, lock, snapshot. Touches only the job. */
static void
login_work(void *arg)
{
	struct login_job *j = arg;
	struct store *st = pop3_daemon.store;

	j->lock_fd = -1;
	j->err = store_authenticate(st, j->user, j->pass, &j->u);
	secret_free(&j->pass);
	if (j->err != STORE_OK)
		return;
	j->err = store_user_lock(st, j->u.id, "pop3", &j->lock_fd);
	if (j->err != STORE_OK)
		return;
	j->err = store_mailbox_get(st, j->u.id, "INBOX", &j->mb);
	if (j->err == STORE_OK)
		j->err = store_msg_list(st, j->mb.id, 1, 0, &j->msgs, &j->n,
		    &j->mb);
	if (j->err == STORE_ENOTFOUND)      /* no INBOX: not the user's fault */
		j->err = STORE_ECORRUPT;
}

static void
delay_done(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	struct pop3_session *s = w->data;

	ev_timer_stop(loop, w);
	s->delay_active = false;
	pop3_set_state(s, POP3_ST_AUTHORIZATION);
	if (s->auth_failures >= POP3_MAX_AUTH_FAILURES) {
		pop3_reply(s, "-ERR [AUTH] Authentication failed, closing");
		conn_close(s->conn);
		return;
	}
	pop3_reply(s, "-ERR [AUTH] Authentication failed");
	conn_resume(s->conn);
}

static void
login_failed(struct pop3_session *s, const char *user)
{
	char esc[LOG_ESCAPE_SIZE];
	double delay;

	delay = auth_throttle_fail(pop3_daemon.throttle,
	    conn_peer_addr(s->conn));
	s->auth_failures++;
	log_info("%s login user=%s result=fail delay=%.0f", conn_id(s->conn),
	    log_escape(user, strlen(user), esc, sizeof(esc)), delay);
	/* The reply waits; the input stays paused meanwhile. */
	ev_timer_init(&s->delay, delay_done, delay, 0.);
	s->delay.data = s;
	s->delay_active = true;
	ev_timer_start(conn_loop(s->conn), &s->delay);
}

static void
login_success(struct pop3_session *s, struct login_job *j)
{
	size_t i;

	s->user_id = j->u.id;
	str_copy(s->address, j->u.address, sizeof(s->address));
	s->lock_fd = j->lock_fd;
	j->lock_fd = -1;
	s->in_locked_set = true;
	s->mbox_id = j->mb.id;
	s->uidvalidity = j->mb.uidvalidity;
	s->nmsgs = (uint32_t)j->n;
	s->msgs = xcalloc(j->n ? j->n : 1, sizeof(*s->msgs));
	s->size_total = 0;
	for (i = 0; i < j->n; i++) {
		s->msgs[i].uid = j->msgs[i].uid;
		s->msgs[i].size = j->msgs[i].size;
		s->msgs[i].seen = (j->msgs[i].flags & STORE_F_SEEN) != 0;
		s->size_total += j->msgs[i].size;
	}
	auth_throttle_success(pop3_daemon.throttle, conn_peer_addr(s->conn));
	pop3_set_state(s, POP3_ST_TRANSACTION);
	conn_set_timeout(s->conn, pop3_daemon.cfg->pop3_timeout);
	log_info("%s login user=%s result=ok tls=%s messages=%" PRIu32,
	    conn_id(s->conn), s->address,
	    conn_is_tls(s->conn) ? conn_tls_version(s->conn) : "no",
	    s->nmsgs);
	pop3_reply(s, "+OK Logged in, %" PRIu32 " messages (%" PRIu64
	    " octets)", s->nmsgs, s->size_total);
}

static void
login_done(void *arg)
{
	struct login_job *j = arg;
	struct pop3_session *s = j->s;
	struct conn *c = s->conn;

	auth_throttle_end(pop3_daemon.throttle, conn_peer_addr(c));
	if (conn_is_closing(c)) {
		/* Nobody to answer; drop what the job got. */
	} else if (j->err == STORE_OK && !locked_add(j->u.id)) {
		log_info("%s login user=%s result=in-use", conn_id(c),
		    j->u.address);
		/* The password was right: not a guess. */
		auth_throttle_success(pop3_daemon.throttle,
		    conn_peer_addr(c));
		pop3_set_state(s, POP3_ST_AUTHORIZATION);
		pop3_reply_store_err(s, STORE_EEXISTS);
		conn_resume(c);
	} else if (j->err == STORE_OK) {
		login_success(s, j);
		conn_resume(c);
	} else if (j->err == STORE_ENOTFOUND) {
		login_failed(s, j->user);
	} else {
		char esc[LOG_ESCAPE_SIZE];

		log_info("%s login user=%s result=%s", conn_id(c),
		    log_escape(j->user, strlen(j->user), esc, sizeof(esc)),
		    j->err == STORE_EEXISTS ? "in-use" : store_err_str(j->err));
		pop3_set_state(s, POP3_ST_AUTHORIZATION);
		pop3_reply_store_err(s, j->err);
		conn_resume(c);
	}
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	free(j->msgs);
	free(j->user);
	free(j);
	conn_release(c);
}

enum cmd_result
pop3_session_login(struct pop3_session *s, const char *user, char *pass)
{
	struct auth_throttle *t = pop3_daemon.throttle;
	const char *addr = conn_peer_addr(s->conn);
	struct login_job *j;

	if (!auth_throttle_begin(t, addr, POP3_MAX_AUTH_FAILURES_PER_ADDR)) {
		secret_free(&pass);
		free((char *)user);
		log_info("%s login result=refused reason=too-many-failures",
		    conn_id(s->conn));
		pop3_reply(s, "-ERR [AUTH] Too many failed logins, try later");
		return CMD_CLOSE;
	}
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->user = (char *)user;
	j->pass = pass;
	str_lower(j->user);
	pop3_set_state(s, POP3_ST_BUSY);
	conn_hold(s->conn);
	worker_submit(pop3_daemon.pool, login_work, login_done, j);
	/* The password is needed only by the worker; it wipes it there. */
	return CMD_SUSPEND;
}

/* ---- RETR / TOP ---- */

/* Sends what fits in the output queue. Returns true once the reply is
   complete (or the connection was given up). */
static bool
stream_pump(struct pop3_session *s)
{
	struct pop3_stream *m = &s->stream;

	while (!conn_is_congested(s->conn)) {
		/* Read no further than the size LIST announced: that saves
		   the read that would only report EOF. */
		size_t want = m->left < sizeof(chunk_buf) ? (size_t)m->left :
		    sizeof(chunk_buf);
		ssize_t n = want == 0 ? 0 : read(m->fd, chunk_buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* The +OK is out: no clean way to report this. */
			log_warn("%s retr result=read-error", conn_id(s->conn));
			stream_end(s);
			conn_abort(s->conn);
			return true;
		}
		m->left -= (uint64_t)n;
		buf_reset(&stuff_buf);
		if (n > 0)
			pop3_stuffer_feed(&m->st, chunk_buf, (size_t)n,
			    &stuff_buf);
		if (n == 0 || m->left == 0 || m->st.done)
			pop3_stuffer_finish(&m->st, &stuff_buf);
		conn_write(s->conn, stuff_buf.data, stuff_buf.len);
		if (n == 0 || m->left == 0 || m->st.done) {
			stream_end(s);
			return true;
		}
	}
	return false;
}

enum cmd_result
pop3_session_send_msg(struct pop3_session *s, uint32_t idx, bool top,
    uint32_t lines)
{
	struct pop3_msg *m = &s->msgs[idx];
	enum store_err e;
	int fd;

	e = store_msg_open(pop3_daemon.store, s->mbox_id, m->uid, &fd);
	if (e != STORE_OK) {
		pop3_reply_store_err(s, e);
		return CMD_DONE;
	}
	s->stream.fd = fd;
	s->stream.left = m->size;
	pop3_stuffer_init(&s->stream.st, top, lines);
	if (top) {
		pop3_reply(s, "+OK");
	} else {
		pop3_reply(s, "+OK %" PRIu64 " octets", m->size);
		m->retrieved = true;
		s->retr_count++;
		s->retr_bytes += m->size;
	}
	if (stream_pump(s))
		return CMD_DONE;
	return CMD_SUSPEND;
}

static void
pop3_drain(struct conn *c, void *arg)
{
	struct pop3_session *s = arg;

	if (s->stream.fd < 0)
		return;
	/* A client reading a big message slowly sends nothing, yet it is
	   not idle: its progress restarts the timer. */
	conn_set_timeout(c, pop3_daemon.cfg->pop3_timeout);
	if (stream_pump(s) && !conn_is_closing(c))
		conn_resume(c);
}

/* ---- UPDATE ---- */

struct expunge_job {
	struct pop3_session *s;
	uint32_t mbox_id;
	uint32_t *uids;             /* to expunge */
	size_t n;
	struct store_flag_change *seen;   /* to mark \Seen */
	size_t nseen;
	enum store_err err, seen_err;
	size_t nexpunged;
};

static void
expunge_work(void *arg)
{
	struct expunge_job *j = arg;
	uint32_t *exp = NULL;

	if (j->nseen > 0)
		j->seen_err = store_msg_set_flags(pop3_daemon.store, j->mbox_id,
		    STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0, 0, j->seen,
		    j->nseen);
	if (j->n > 0)
		j->err = store_msg_expunge(pop3_daemon.store, j->mbox_id,
		    j->uids, j->n, false, &exp, &j->nexpunged);
	free(exp);
}

static void
expunge_done(void *arg)
{
	struct expunge_job *j = arg;
	struct pop3_session *s = j->s;
	struct conn *c = s->conn;

	if (j->seen_err != STORE_OK)
		log_warnx("%s seen-flags user=%s result=%s", conn_id(c),
		    s->address, store_err_str(j->seen_err));
	log_info("%s logout user=%s retr=%" PRIu32 " bytes=%" PRIu64
	    " deleted=%zu result=%s", conn_id(c), s->address, s->retr_count,
	    s->retr_bytes, j->err == STORE_OK ? j->nexpunged : 0,
	    store_err_str(j->err));
	if (j->err == STORE_OK)
		pop3_reply(s, "+OK Logging out, %zu messages deleted",
		    j->nexpunged);
	else
		pop3_reply(s, "-ERR [SYS/TEMP] Some deleted messages were "
		    "not removed (%s)", store_err_str(j->err));
	free(j->uids);
	free(j->seen);
	free(j);
	/* Release first: conn_close on a held conn does not start the final
	   flush once released, and a released conn that is not closing
	   stays valid (only a peer close frees it, and that is checked). */
	if (conn_is_closing(c)) {
		conn_release(c);
		return;
	}
	conn_release(c);
	conn_close(c);
}

static bool
needs_seen(const struct pop3_msg *m)
{
	return m->retrieved && !m->seen && !m->deleted;
}

bool
pop3_session_has_updates(const struct pop3_session *s)
{
	uint32_t i;

	if (s->ndeleted > 0)
		return true;
	for (i = 0; i < s->nmsgs; i++) {
		if (needs_seen(&s->msgs[i]))
			return true;
	}
	return false;
}

enum cmd_result
pop3_session_update(struct pop3_session *s)
{
	struct expunge_job *j = xcalloc(1, sizeof(*j));
	uint32_t i, nseen = 0;

	j->s = s;
	j->mbox_id = s->mbox_id;
	for (i = 0; i < s->nmsgs; i++)
		nseen += needs_seen(&s->msgs[i]);
	j->uids = xcalloc(s->ndeleted ? s->ndeleted : 1, sizeof(*j->uids));
	j->seen = xcalloc(nseen ? nseen : 1, sizeof(*j->seen));
	for (i = 0; i < s->nmsgs; i++) {
		if (s->msgs[i].deleted)
			j->uids[j->n++] = s->msgs[i].uid;
		else if (needs_seen(&s->msgs[i]))
			j->seen[j->nseen++].uid = s->msgs[i].uid;
	}
	pop3_set_state(s, POP3_ST_UPDATE);
	conn_hold(s->conn);
	worker_submit(pop3_daemon.pool, expunge_work, expunge_done, j);
	return CMD_SUSPEND;
}

void
pop3_session_deinit(void)
{
	buf_free(&stuff_buf);
}

const struct conn_handlers pop3_handlers = {
	.accept = pop3_accept,
	.input = pop3_input,
	.drain = pop3_drain,
	.tls_done = pop3_tls_done,
	.timeout = pop3_timeout,
	.shutdown = pop3_shutdown,
	.closed = pop3_closed,
};
