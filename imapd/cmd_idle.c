/* cmd_idle: IDLE (RFC 2177). The command stays running with input on; a
   change notification syncs the view at once, so EXISTS/EXPUNGE/FETCH
   from any process reach the client. Its continuation reads only the DONE
   line: a command pipelined after it stays for the parser (iOS sends one
   in the same packet). An idle session trims its buffers and zlib state,
   and says "* OK Still here" only every few minutes. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ev.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_view.h"

/* Seconds between "* OK Still here" during IDLE. Rare on purpose: any
   untagged line, a keep-alive too, makes Thunderbird send DONE, then NOOP
   and "UID FETCH n:* (FLAGS)", then IDLE again; Dovecot setups raise the
   interval to 4 minutes for battery's sake. $POSTROOM_IMAP_IDLE_KEEPALIVE
   overrides it (tests). */
#define IMAP_IDLE_KEEPALIVE 240.0
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
timer_arm(struct imap_session *s, bool trim)
{
	struct imap_idle *x = &s->idle;

	x->trim_next = trim;
	ev_timer_stop(s->base.d->loop, &x->timer);
	ev_timer_set(&x->timer, trim ? IDLE_TRIM_DELAY : keepalive_interval(),
	    0.);
	ev_timer_start(s->base.d->loop, &x->timer);
}

static void
idle_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct imap_session *s = w->data;

	(void)loop;
	(void)revents;
	if (!s->idle.active || s->base.closing || conn_is_closing(s->base.c))
		return;
	if (s->idle.trim_next) {
		imap_parser_trim(s->parser);
		conn_trim(s->base.c);
		timer_arm(s, false);
		return;
	}
	imap_reply_untagged(s, "OK Still here");
	timer_arm(s, true);
}

void
imap_idle_view_changed(struct imap_session *s)
{
	if (!s->idle.active || s->sel == NULL || s->base.closing)
		return;
	imap_view_sync(s, true, false);
	if (conn_outq_len(s->base.c) > 0)
		timer_arm(s, true);
}

void
imap_idle_free(struct imap_session *s)
{
	ev_timer_stop(s->base.d->loop, &s->idle.timer);
	s->idle.active = false;
}

static void
idle_stop(struct imap_session *s)
{
	imap_idle_free(s);
	conn_set_timeout(s->base.c, s->base.d->cfg->imap_timeout);
}

/* IDLE's continuation: the DONE line. */
static int
idle_input(struct imap_session *s)
{
	const char *p;
	size_t len, used;
	bool done;
	int r;

	if ((r = imap_raw_line(s, IDLE_LINE_MAX, &p, &len, &used)) <= 0) {
		if (r < 0) {
			idle_stop(s);
			imap_reply_untagged(s, "BYE Expected DONE");
			imap_session_close(s, "idle-expected-done");
		}
		return 0;
	}
	done = len == 4 && strncasecmp(p, "DONE", 4) == 0;
	/* Only this line: a pipelined command after it is the parser's. */
	conn_consume(s->base.c, used);
	idle_stop(s);
	if (done) {
		imap_cmd_reply(s, IMAP_OK, "IDLE completed");
	} else {
		log_debug("%s idle-end result=not-done", conn_id(s->base.c));
		imap_cmd_reply(s, IMAP_BAD, "Expected DONE");
	}
	imap_cmd_finish(s);
	return 1;
}

enum cmd_result
imap_cmd_idle(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)args;
	(void)end;
	s->idle.active = true;
	ev_timer_init(&s->idle.timer, idle_timer_cb, IDLE_TRIM_DELAY, 0.);
	s->idle.timer.data = s;
	s->cmd->wait = IMAP_WAIT_INPUT;
	s->cmd->continuation = idle_input;
	conn_set_timeout(s->base.c, s->base.d->cfg->imap_idle_timeout);
	imap_reply_continue(s, "idling");
	/* An IDLE may last 30 minutes and more: the parser's buffers are
	   not needed until DONE (the arguments are not used past here). */
	imap_parser_release(s->parser);
	/* Changes made between the last command and IDLE are reported right
	   away (Thunderbird relies on it; Cyrus bug 3668). */
	if (s->sel != NULL) {
		s->force_sync = true;
		imap_view_sync(s, true, false);
	}
	timer_arm(s, true);
	return CMD_SUSPEND;
}
