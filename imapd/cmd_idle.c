/* cmd_idle: IDLE (RFC 2177). The session stays in the IDLE command with
   input running: the mailbox watcher (fswatch on the store's notify file)
   triggers an immediate view sync, so EXISTS/EXPUNGE/FETCH from any
   process reach the client at once. Only the DONE line is read; whatever
   the client pipelined after it stays in the buffer for the parser (iOS
   sends the next command in the same packet). An idle session trims its
   buffers and zlib state, and says "* OK Still here" only every few
   minutes. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ev.h>

#include "log.h"

#include "imap_ext.h"
#include "imap_ext_private.h"

/* Seconds after output before the idle connection's buffers are trimmed
   (the output has normally left by then). */
#define IDLE_TRIM_DELAY 1.0
/* A DONE line longer than this without LF is not a DONE line. */
#define IDLE_LINE_MAX   1024

static double
keepalive_interval(void)
{
	static double v;
	const char *e;

	if (v == 0) {
		e = getenv("POSTROOM_IMAP_IDLE_KEEPALIVE");
		v = e != NULL && atof(e) > 0 ? atof(e) : IMAP_IDLE_KEEPALIVE;
	}
	return v;
}

static void
timer_arm(struct imap_session *s, struct imap_ext *x, bool trim)
{
	x->trim_next = trim;
	ev_timer_stop(s->d->loop, &x->timer);
	ev_timer_set(&x->timer, trim ? IDLE_TRIM_DELAY : keepalive_interval(),
	    0.);
	ev_timer_start(s->d->loop, &x->timer);
}

static void
idle_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct imap_ext *x = w->data;
	struct imap_session *s = x->s;

	if (!x->idling || s->closing || conn_is_closing(s->c))
		return;
	if (x->trim_next) {
		imap_parser_trim(s->parser);
		conn_trim(s->c);
		timer_arm(s, x, false);
		return;
	}
	imap_reply_untagged(s, "OK Still here");
	timer_arm(s, x, true);
}

/* The selected mailbox changed (any process): tell the client now. */
static void
idle_view_changed(struct imap_session *s)
{
	struct imap_ext *x = s->ext;

	if (x == NULL || !x->idling || s->sel == NULL || s->closing)
		return;
	imap_view_sync(s, true);
	if (conn_outq_len(s->c) > 0)
		timer_arm(s, x, true);
}

bool
imap_idle_active(const struct imap_session *s)
{
	const struct imap_ext *x = s->ext;

	return x != NULL && x->idling;
}

static void
idle_stop(struct imap_session *s)
{
	struct imap_ext *x = s->ext;

	x->idling = false;
	ev_timer_stop(s->d->loop, &x->timer);
	s->view_changed_hook = NULL;
	conn_set_timeout(s->c, s->d->cfg->imap_timeout);
}

enum cmd_result
imap_cmd_idle(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct imap_ext *x;

	if (args != end) {
		imap_reply_tagged(s, "BAD", "IDLE takes no arguments");
		return CMD_DONE;
	}
	x = imap_ext_get(s);
	x->s = s;
	x->idling = true;
	ev_timer_init(&x->timer, idle_timer_cb, IDLE_TRIM_DELAY, 0.);
	x->timer.data = x;
	s->view_changed_hook = idle_view_changed;
	conn_set_timeout(s->c, s->d->cfg->imap_idle_timeout);
	imap_reply_continue(s, "idling");
	/* An IDLE may last 30 minutes and more: the parser's buffers are
	   not needed until DONE (the arguments are not used past here). */
	imap_parser_release(s->parser);
	/* Changes made between the last command and IDLE are reported right
	   away (Thunderbird relies on it; Cyrus bug 3668). */
	if (s->sel != NULL) {
		s->force_sync = true;
		imap_view_sync(s, true);
	}
	timer_arm(s, x, true);
	return CMD_SUSPEND;
}

bool
imap_idle_input(struct imap_session *s)
{
	const char *p;
	size_t len, used;
	bool done;
	int r;

	if ((r = imap_raw_line(s, IDLE_LINE_MAX, &p, &len, &used)) <= 0) {
		if (r < 0) {
			idle_stop(s);
			imap_reply_untagged(s, "BYE Expected DONE");
			s->closing = true;
			conn_close(s->c);
		}
		return false;
	}
	done = len == 4 && strncasecmp(p, "DONE", 4) == 0;
	/* Only this line: a pipelined command after it is the parser's. */
	conn_consume(s->c, used);
	idle_stop(s);
	if (done) {
		imap_reply_tagged(s, "OK", "IDLE completed");
	} else {
		log_debug("%s idle-end result=not-done", conn_id(s->c));
		imap_reply_tagged(s, "BAD", "Expected DONE");
	}
	imap_cmd_finish(s);
	return true;
}
