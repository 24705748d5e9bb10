/* conn: one peer connection on the loop thread. Owns the bounded input
   buffer (lines, raw bytes), the output queue with back-pressure, the idle
   timer and the lifecycle (close, abort, hold/release). The TLS and deflate
   layers live in tls.c and compress.c; listeners and limits in server.c.
   Callbacks into the daemon run only from the watchers here, each wrapped in
   conn_enter/conn_leave so a conn is never freed under a running callback.
   File streaming is conn_send.c's. It never interprets the bytes it
   carries. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_private.h"
#include "log.h"
#include "util.h"

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* splitmix64: a bijection, so distinct counters give distinct ids, and
   consecutive ids do not look consecutive. */
static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

struct conn *
conn_new(struct server *s, int fd, int tag, bool implicit_tls)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->srv = s;
	c->fd = fd;
	c->tag = tag;
	c->implicit_tls = implicit_tls;
	c->line_limit = (uint32_t)s->line_limit;
	c->phase = PH_OPEN;
	ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
	c->io.data = c;
	ev_init(&c->timer, conn_timer_cb);
	c->timer.data = c;
	c->active = ev_now(s->loop);
	snprintf(c->id, sizeof(c->id), "%016llx",
	    (unsigned long long)mix64(s->id_base + s->id_next++));
	return c;
}

static size_t
out_pending(const struct conn *c)
{
	return c->out_end - c->out_start;
}

/* Raw input (DATA, a literal: what the daemon takes with conn_peek as it
   comes) may use large reads whoever sends it; lines before login get no
   more room than the longest one allowed. */
static uint32_t
in_max(const struct conn *c)
{
	uint32_t m = c->line_limit + 2;

	if (!c->authed && !c->in_raw)
		return m + IN_PREAUTH_SLACK;
	return m > IN_RAW_MAX ? m : IN_RAW_MAX;
}

void
conn_kick(struct conn *c)
{
	ev_feed_event(c->srv->loop, &c->io, EV_CUSTOM);
}

static bool
conn_can_read(const struct conn *c)
{
	if (c->phase != PH_OPEN || c->pauses > 0 || c->congested || c->eof ||
	    c->close_pending)
		return false;
	if (c->z != NULL)
		return z_conn_raw_space((struct conn *)c, NULL) > 0;
	return c->in_end - c->in_start < in_max(c);
}

static bool
conn_can_input(const struct conn *c)
{
	return c->phase == PH_OPEN && c->pauses == 0 && !c->congested &&
	    c->accepted && c->send == NULL && !c->close_pending;
}

/* Sets the watched events from the state; keeps a pending kick alive
   across the restart, since ev_io_stop would drop it. */
static void
conn_update_io(struct conn *c)
{
	int want = 0, pend;

	if (c->phase == PH_HANDSHAKE) {
		want = c->hs_events;
	} else if (c->phase != PH_DEAD) {
		if (out_pending(c) > 0 || c->tls_read_wants_write)
			want |= EV_WRITE;
		if (conn_can_read(c) ||
		    (c->tls_write_wants_read && out_pending(c) > 0))
			want |= EV_READ;
	}
	if (ev_is_active(&c->io) &&
	    (c->io.events & (EV_READ | EV_WRITE)) == want)
		return;
	pend = ev_clear_pending(c->srv->loop, &c->io) & EV_CUSTOM;
	ev_io_stop(c->srv->loop, &c->io);
	if (want != 0) {
		ev_io_set(&c->io, c->fd, want);
		ev_io_start(c->srv->loop, &c->io);
	}
	if (pend)
		conn_kick(c);
}

/* A handshake is a few round trips: a peer that stalls it holds a slot
   for nothing, so its deadline is short (and, nobody being logged in yet,
   never longer than preauth_timeout). */
static double
handshake_timeout(const struct config *cfg)
{
	double t = HANDSHAKE_TIMEOUT;

	if (cfg == NULL)
		return t;
	if (cfg->tls_handshake_timeout > 0)
		t = cfg->tls_handshake_timeout;
	if (cfg->preauth_timeout > 0 && cfg->preauth_timeout < t)
		t = cfg->preauth_timeout;
	return t;
}

void
conn_timer_reset(struct conn *c)
{
	struct ev_loop *loop = c->srv->loop;

	switch (c->phase) {
	case PH_OPEN:
		if (c->idle_timeout > 0 && !c->close_pending) {
			c->timer.repeat = c->idle_timeout;
			ev_timer_again(loop, &c->timer);
		} else {
			ev_timer_stop(loop, &c->timer);
		}
		break;
	case PH_HANDSHAKE:
	case PH_STARTTLS_WAIT:
		c->timer.repeat = handshake_timeout(c->srv->cfg);
		ev_timer_again(loop, &c->timer);
		break;
	case PH_CLOSING:
		c->timer.repeat = CLOSE_TIMEOUT;
		ev_timer_again(loop, &c->timer);
		break;
	default:
		ev_timer_stop(loop, &c->timer);
		break;
	}
}

/* Closes the socket and frees the buffers; the struct stays until the last
   reference goes (conn_release). */
static void
conn_shut(struct conn *c)
{
	ev_io_stop(c->srv->loop, &c->io);
	ev_timer_stop(c->srv->loop, &c->timer);
	if (c->z != NULL)
		z_conn_free(c);
	conn_send_free(c);
	close(c->fd);
	c->fd = -1;
	c->phase = PH_DEAD;
	/* The buffers themselves stay until conn_finalize: the daemon may be
	   inside input() holding a line when a write aborts the conn. */
	c->in_start = c->in_end = 0;
	c->skipping = false;
	c->out_start = c->out_end = 0;
	server_conn_gone(c->srv, c);
	log_info("%s disconnect reason=%s", c->id,
	    c->reason != NULL ? c->reason : "closed");
}

static void
conn_finalize(struct conn *c)
{
	struct server *s = c->srv;

	server_conn_unlink(s, c);
	if (c->accepted && s->h->closed != NULL) {
		/* A hold/release inside closed() must not recurse. */
		c->refs = 1;
		c->accepted = false;
		s->h->closed(c, c->sess);
	}
	ev_clear_pending(s->loop, &c->io);
	ev_clear_pending(s->loop, &c->timer);
	SSL_free(c->ssl);
	free(c->in);
	free(c->out);
	free(c);
	if (s->stopping && s->n_conns == 0)
		ev_break(s->loop, EVBREAK_ONE);
}

void
conn_force_free(struct conn *c)
{
	if (c->phase != PH_DEAD) {
		if (c->reason == NULL)
			c->reason = "server-stopped";
		conn_shut(c);
	}
	conn_finalize(c);
}

void
conn_hold(struct conn *c)
{
	c->refs++;
	c->holds++;
}

static void
conn_unref(struct conn *c)
{
	assert(c->refs > 0);
	if (--c->refs == 0 && c->phase == PH_DEAD)
		conn_finalize(c);
}

void
conn_release(struct conn *c)
{
	assert(c->holds > 0);
	if (--c->holds == 0 && c->close_pending) {
		/* The close asked for while held starts now, flushing what
		   the holder queued; as a callback of its own, so that the
		   flush (and maybe the end) happens here, not at some later
		   event. */
		c->close_pending = false;
		conn_enter(c);
		conn_close(c);
		conn_leave(c);
	}
	conn_unref(c);
}

void
conn_abort(struct conn *c)
{
	if (c->phase == PH_DEAD)
		return;
	if (c->reason == NULL)
		c->reason = "aborted";
	conn_shut(c);
	/* Nobody holds it: finish from the loop, never under the caller. */
	if (c->refs == 0)
		conn_kick(c);
}

void
conn_fail(struct conn *c, const char *reason)
{
	if (c->reason == NULL)
		c->reason = reason;
	conn_abort(c);
}

void
conn_close(struct conn *c)
{
	if (c->phase == PH_CLOSING || c->phase == PH_DEAD || c->close_pending)
		return;
	if (c->reason == NULL)
		c->reason = "closed";
	if (c->holds > 0 && c->phase != PH_HANDSHAKE) {
		/* No idle timeout meanwhile (it would say goodbye twice): the
		   close timer starts at the release. */
		c->close_pending = true;
		ev_timer_stop(c->srv->loop, &c->timer);
		return;
	}
	if (c->phase == PH_HANDSHAKE) {
		conn_abort(c);
		return;
	}
	c->phase = PH_CLOSING;
	c->in_start = c->in_end = 0;
	c->skipping = false;
	conn_timer_reset(c);
	if (c->depth == 0)
		conn_kick(c);
}

bool
conn_is_closing(const struct conn *c)
{
	return c->phase == PH_CLOSING || c->phase == PH_DEAD ||
	    c->close_pending;
}

/* Writes as much of the output queue as the socket takes. */
static void
conn_flush(struct conn *c)
{
	ssize_t n;

	if (c->z != NULL)
		z_conn_flush(c);
	while (out_pending(c) > 0) {
		if (c->ssl != NULL) {
			n = tls_conn_write(c, c->out + c->out_start,
			    out_pending(c));
		} else {
			n = send(c->fd, c->out + c->out_start, out_pending(c),
			    MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR))
				n = 0;
		}
		if (n == 0)
			break;
		if (n < 0) {
			conn_fail(c, "write-error");
			return;
		}
		c->out_start += (size_t)n;
	}
	if (out_pending(c) == 0) {
		c->out_start = c->out_end = 0;
		if (c->out_cap > OUT_KEEP) {
			free(c->out);
			c->out = NULL;
			c->out_cap = 0;
		}
	}
	if (c->congested && out_pending(c) < OUT_LOW) {
		c->congested = false;
		c->drain_pending = true;
		conn_kick(c);
	}
}

static void
conn_read(struct conn *c)
{
	char *p;
	size_t room, total = 0;
	ssize_t n;

	c->in_more = false;
	for (;;) {
		room = c->z != NULL ? z_conn_raw_space(c, &p) :
		    conn_in_space(c, &p);
		if (room == 0)
			return;
		if (c->ssl != NULL) {
			n = tls_conn_read(c, p, room);
		} else {
			n = read(c->fd, p, room);
			if (n == 0)
				n = -1;
			else if (n < 0)
				n = (errno == EAGAIN || errno == EWOULDBLOCK ||
				    errno == EINTR) ? 0 : -2;
		}
		if (n <= 0)
			c->in_more = false;
		if (n == 0)
			return;
		if (n == -1) {
			c->eof = true;
			return;
		}
		if (n < 0) {
			conn_fail(c, "read-error");
			return;
		}
		if (c->z != NULL)
			z_conn_raw_added(c, (size_t)n);
		else
			c->in_end += (uint32_t)n;
		total += (size_t)n;
		c->in_more = (size_t)n == room;
		c->in_big = total > IN_INIT;
		/* OpenSSL may hold decrypted bytes the kernel no longer
		   reports, so drain it. Plain sockets are level-triggered:
		   read on only while the reads fill the buffer (more is
		   waiting), up to IN_READ a pass to stay fair to others. */
		if (c->ssl == NULL && (!c->in_more || total >= IN_READ))
			return;
	}
}

/* input_line() for one complete line, if there is one. */
static void
conn_input_line(struct conn *c)
{
	char *line;
	size_t len;
	int r = conn_getline(c, &line, &len);

	if (r == 0)
		return;
	if (c->srv->h->input_line(c, c->sess, r > 0 ? line : NULL,
	    r > 0 ? len : 0) < 0)
		conn_close(c);
}

/* Calls input() while it makes progress. A daemon that consumes nothing is
   waiting for more bytes: stop, or we would spin. True when it stopped at
   DISPATCH_ROUNDS with input left for the kicked next round. */
static bool
conn_dispatch(struct conn *c)
{
	uint64_t before;
	int rounds;

	for (rounds = 0; conn_can_input(c); rounds++) {
		if (c->z != NULL && z_conn_inflate(c) < 0) {
			conn_fail(c, "inflate-error");
			return false;
		}
		if (c->in_end == c->in_start)
			return false;
		if (rounds == DISPATCH_ROUNDS) {
			conn_kick(c);
			return true;
		}
		before = c->consumed;
		if (c->srv->h->input != NULL)
			c->srv->h->input(c, c->sess);
		else
			conn_input_line(c);
		if (c->consumed == before)
			return false;
	}
	return false;
}

void
conn_enter(struct conn *c)
{
	c->refs++;
	c->depth++;
}

/* The end of every callback: flush, move through the STARTTLS and closing
   phases, re-arm the watcher, drop the reference. */
void
conn_leave(struct conn *c)
{
	c->depth--;
	if (c->depth > 0) {
		/* a nested callback: the outermost one finishes the work */
		conn_unref(c);
		return;
	}
	if (c->phase != PH_DEAD && c->phase != PH_HANDSHAKE)
		conn_flush(c);
	if (c->phase == PH_STARTTLS_WAIT && out_pending(c) == 0)
		tls_conn_start(c);
	if (c->phase == PH_CLOSING && out_pending(c) == 0) {
		if (c->ssl != NULL)
			tls_conn_shutdown(c);
		conn_shut(c);
	}
	/* Not while paused: the daemon may still hold its last line. Kept
	   while the peer has more waiting (the next pass reads it at once). */
	if (c->in_start == c->in_end && c->in_cap > IN_INIT && c->pauses == 0 &&
	    !c->in_more) {
		free(c->in);
		c->in = NULL;
		c->in_start = c->in_end = c->in_cap = 0;
	}
	if (c->progress != c->progress_seen) {
		c->progress_seen = c->progress;
		c->active = ev_now(c->srv->loop);
		if (c->phase == PH_OPEN && c->idle_timeout > 0 &&
		    !c->close_pending)
			ev_timer_again(c->srv->loop, &c->timer);
	}
	if (c->phase != PH_DEAD) {
		conn_update_io(c);
		if (conn_can_read(c) && tls_conn_has_pending(c))
			conn_kick(c);
	}
	conn_unref(c);
}

void
conn_do_accept(struct conn *c)
{
	void *sess = c->srv->h->accept(c, c->tag);

	if (sess == NULL) {
		if (c->reason == NULL)
			c->reason = "refused-by-daemon";
		conn_close(c);
		return;
	}
	c->sess = sess;
	c->accepted = true;
	conn_timer_reset(c);
}

static void
conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	const struct conn_handlers *h = c->srv->h;

	(void)loop;
	conn_enter(c);
	if (c->phase == PH_HANDSHAKE) {
		tls_conn_step(c);
		if (c->phase != PH_OPEN)
			goto out;
		revents |= EV_READ;	/* data may follow the handshake */
	}
	if (c->phase == PH_DEAD)
		goto out;
	conn_flush(c);
	if (c->drain_pending && c->phase == PH_OPEN) {
		c->drain_pending = false;
		if (c->send != NULL && !c->congested)
			conn_send_continue(c);
		if (h->drain != NULL && c->accepted && !c->congested &&
		    c->send == NULL && c->phase == PH_OPEN)
			h->drain(c, c->sess);
	}
	if (conn_can_read(c) && ((revents & EV_READ) ||
	    c->tls_read_wants_write || tls_conn_has_pending(c)))
		conn_read(c);
	/* At the end of the peer's data, close only once the commands
	   before it have had their turn. */
	if (!conn_dispatch(c) && c->eof && c->phase == PH_OPEN &&
	    c->pauses == 0 && !c->congested && c->send == NULL) {
		if (c->reason == NULL)
			c->reason = "eof";
		conn_close(c);
	}
out:
	conn_leave(c);
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;
	const struct conn_handlers *h = c->srv->h;

	(void)loop;
	(void)revents;
	conn_enter(c);
	switch (c->phase) {
	case PH_OPEN:
		if (c->reason == NULL)
			c->reason = "timeout";
		if (c->accepted && h->timeout != NULL)
			h->timeout(c, c->sess);
		conn_close(c);
		break;
	case PH_HANDSHAKE:
		if (c->reason == NULL)
			c->reason = "tls-handshake-timeout";
		if (c->accepted && h->tls_done != NULL)
			h->tls_done(c, c->sess, false);
		conn_abort(c);
		break;
	case PH_DEAD:
		break;
	case PH_STARTTLS_WAIT:
		/* The peer never read our "go ahead". */
		if (c->reason == NULL)
			c->reason = "starttls-timeout";
		if (h->tls_done != NULL)
			h->tls_done(c, c->sess, false);
		conn_abort(c);
		break;
	default:
		if (c->reason == NULL)
			c->reason = "close-timeout";
		conn_abort(c);
		break;
	}
	conn_leave(c);
}

/* ---- input ---- */

size_t
conn_in_space(struct conn *c, char **p_r)
{
	uint32_t max = in_max(c), used = c->in_end - c->in_start, cap;

	if (used >= max)
		return 0;
	if (c->in == NULL) {
		/* A peer that sent much last time likely goes on. */
		c->in_cap = c->in_big ? (IN_READ < max ? IN_READ : max) :
		    IN_INIT;
		c->in = xmalloc(c->in_cap);
		c->in_start = c->in_end = 0;
	}
	if (c->in_end == c->in_cap && c->in_start > 0) {
		memmove(c->in, c->in + c->in_start, used);
		c->in_start = 0;
		c->in_end = used;
	}
	if (c->in_end == c->in_cap && c->in_cap < max) {
		/* Full: a stream, not a command line. */
		cap = c->in_cap < IN_READ ? IN_READ : c->in_cap * 2;
		if (cap > max)
			cap = max;
		c->in = xrealloc(c->in, cap);
		c->in_cap = cap;
	}
	*p_r = c->in + c->in_end;
	cap = c->in_cap - c->in_end;
	return cap < max - used ? cap : max - used;
}

static void
conn_consumed(struct conn *c, size_t n)
{
	c->in_start += (uint32_t)n;
	c->consumed += n;
	if (c->in_start == c->in_end)
		c->in_start = c->in_end = 0;
	/* Room appeared outside a callback: reading may resume. */
	if (c->depth == 0 && c->phase == PH_OPEN)
		conn_kick(c);
}

int
conn_getline(struct conn *c, char **line_r, size_t *len_r)
{
	char *p, *lf;
	size_t n, len;

	c->in_raw = false;
	for (;;) {
		n = c->in_end - c->in_start;
		if (n == 0)
			return 0;
		p = c->in + c->in_start;
		lf = memchr(p, '\n', n);
		if (c->skipping) {
			if (lf == NULL) {
				conn_consumed(c, n);
				return 0;
			}
			conn_consumed(c, (size_t)(lf - p) + 1);
			c->skipping = false;
			continue;
		}
		if (lf == NULL) {
			if (n > (size_t)c->line_limit + 1) {
				conn_consumed(c, n);
				c->skipping = true;
				return -1;
			}
			return 0;
		}
		len = (size_t)(lf - p);
		conn_consumed(c, len + 1);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len > c->line_limit)
			return -1;
		p[len] = '\0';
		*line_r = p;
		*len_r = len;
		c->progress++;
		return 1;
	}
}

size_t
conn_peek(struct conn *c, const char **p_r)
{
	size_t n = c->in_end - c->in_start;

	c->in_raw = true;
	*p_r = n > 0 ? c->in + c->in_start : "";
	return n;
}

size_t
conn_in_allocated(const struct conn *c)
{
	return c->in != NULL ? c->in_cap : 0;
}

void
conn_consume(struct conn *c, size_t n)
{
	/* A close or abort since the peek discarded the input already. */
	if (c->phase == PH_CLOSING || c->phase == PH_DEAD)
		return;
	assert(n <= (size_t)(c->in_end - c->in_start));
	if (n == 0)
		return;
	/* Progress for the idle timer: a line end (a command, or a part of
	   one, is complete) or a good chunk of literal data. A parser that
	   takes bytes one at a time must not let a trickle keep it alive. */
	if (n >= CONN_PROGRESS_BYTES ||
	    memchr(c->in + c->in_start, '\n', n) != NULL)
		c->progress++;
	conn_consumed(c, n);
}

void
conn_set_line_limit(struct conn *c, size_t max)
{
	if (max > UINT32_MAX - 2 - IN_RAW_MAX)
		max = UINT32_MAX - 2 - IN_RAW_MAX;
	c->line_limit = (uint32_t)max;
}

void
conn_pause(struct conn *c)
{
	c->pauses++;
}

void
conn_resume(struct conn *c)
{
	assert(c->pauses > 0);
	if (--c->pauses > 0 || c->phase != PH_OPEN)
		return;
	if (c->srv->stopping)
		conn_close(c);	/* after the reply the daemon queued */
	else
		conn_kick(c);
}

bool
conn_is_paused(const struct conn *c)
{
	return c->pauses > 0;
}

/* ---- output ---- */

void
conn_out_reserve(struct conn *c, size_t extra)
{
	size_t used = out_pending(c), need, cap;

	if (c->out_cap - c->out_end >= extra)
		return;
	if (c->out_start > 0) {
		memmove(c->out, c->out + c->out_start, used);
		c->out_start = 0;
		c->out_end = used;
		if (c->out_cap - c->out_end >= extra)
			return;
	}
	need = used + extra;
	cap = c->out_cap > 0 ? c->out_cap : OUT_INIT;
	while (cap < need)
		cap *= 2;
	c->out = xrealloc(c->out, cap);
	c->out_cap = cap;
}

void
conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->phase == PH_DEAD || len == 0)
		return;
	if (out_pending(c) + len > OUT_HARD) {
		conn_fail(c, "output-overflow");
		return;
	}
	if (c->z != NULL) {
		z_conn_write(c, data, len);
	} else {
		conn_out_reserve(c, len);
		memcpy(c->out + c->out_end, data, len);
		c->out_end += len;
	}
	if (out_pending(c) > OUT_HIGH)
		c->congested = true;
	/* Outside our callbacks (a worker's done(), a timer of the daemon)
	   nothing else would flush. */
	if (c->depth == 0)
		conn_kick(c);
}

void
conn_puts(struct conn *c, const char *s)
{
	conn_write(c, s, strlen(s));
}

void
conn_vprintf(struct conn *c, const char *fmt, va_list ap)
{
	char small[512], *big;
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		conn_write(c, small, (size_t)n);
		return;
	}
	big = xmalloc((size_t)n + 1);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	conn_write(c, big, (size_t)n);
	free(big);
}

void
conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conn_vprintf(c, fmt, ap);
	va_end(ap);
}

size_t
conn_outq_len(const struct conn *c)
{
	return out_pending(c);
}

bool
conn_is_congested(const struct conn *c)
{
	return c->congested;
}

void
conn_set_timeout(struct conn *c, double seconds)
{
	c->idle_timeout = seconds > 0 ? seconds : 0;
	if (c->phase == PH_OPEN)
		conn_timer_reset(c);
}

void
conn_set_authenticated(struct conn *c)
{
	if (c->authed)
		return;
	c->authed = true;
	server_conn_authed(c->srv, c);
}

bool
conn_is_authenticated(const struct conn *c)
{
	return c->authed;
}

/* ---- identity ---- */

const char *
conn_peer_addr(const struct conn *c)
{
	return c->peer;
}

const char *
conn_id(const struct conn *c)
{
	return c->id;
}

int
conn_tag(const struct conn *c)
{
	return c->tag;
}

struct ev_loop *
conn_loop(const struct conn *c)
{
	return c->srv->loop;
}

void *
conn_session(const struct conn *c)
{
	return c->sess;
}

void *
conn_server_ctx(const struct conn *c)
{
	return c->srv->daemon_ctx;
}

void
conn_trim(struct conn *c)
{
	if (c->phase == PH_DEAD)
		return;
	if (c->z != NULL)
		z_conn_trim(c);	/* may queue the last deflated bytes */
	if (out_pending(c) > 0 && c->depth == 0)
		conn_kick(c);
	if (c->in_end == c->in_start && c->in != NULL) {
		free(c->in);
		c->in = NULL;
		c->in_start = c->in_end = c->in_cap = 0;
	}
	c->in_big = false;	/* idle now: the next input starts small */
	if (out_pending(c) == 0 && c->out != NULL) {
		free(c->out);
		c->out = NULL;
		c->out_start = c->out_end = c->out_cap = 0;
	}
	/* Normally already done by SSL_MODE_RELEASE_BUFFERS; fails harmlessly
	   if a record is half read or written. */
	if (c->ssl != NULL && c->phase == PH_OPEN)
		SSL_free_buffers(c->ssl);
}
