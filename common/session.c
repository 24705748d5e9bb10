/* session: the protocol-neutral session core (state, close with a reason,
   suspension around worker jobs, error budget) and the command-table
   lookup. It never formats a reply and never parses a command: the
   protocol does both. Loop thread only, except the work function of a
   submission, which touches nothing of the session. */
#include <assert.h>
#include <strings.h>

#include "conn.h"
#include "daemon.h"
#include "log.h"
#include "session.h"
#include "worker.h"

void
session_init(struct session *s, struct conn *c,
    const struct session_class *cls, unsigned state)
{
	s->d = conn_server_ctx(c);
	s->c = c;
	s->cls = cls;
	s->state = state;
	s->errors = 0;
	s->busy = false;
	s->closing = false;
	s->work = NULL;
	s->done = NULL;
	s->arg = NULL;
}

const char *
session_state_name(const struct session *s, unsigned state)
{
	size_t i;

	for (i = 0; i < s->cls->nstates; i++) {
		if (state == 1u << i)
			return s->cls->state_names[i];
	}
	return "?";
}

void
session_set_state(struct session *s, unsigned state)
{
	if (s->state != state && log_is_debug())
		log_debug("%s state %s -> %s", conn_id(s->c),
		    session_state_name(s, s->state),
		    session_state_name(s, state));
	s->state = state;
}

void
session_close(struct session *s, const char *reason)
{
	if (s->closing)
		return;
	s->closing = true;
	log_info("%s close reason=\"%s\"", conn_id(s->c), reason);
	conn_close(s->c);
}

void
session_suspend(struct session *s)
{
	assert(!s->busy);
	s->busy = true;
	conn_hold(s->c);
	conn_pause(s->c);
	if (s->cls->busy_changed != NULL)
		s->cls->busy_changed(s, true);
}

void
session_resume(struct session *s)
{
	struct conn *c = s->c;

	assert(s->busy);
	s->busy = false;
	if (s->cls->busy_changed != NULL)
		s->cls->busy_changed(s, false);
	conn_resume(c);
	/* May run closed(), which frees s. */
	conn_release(c);
}

static void
submit_work(void *arg)
{
	struct session *s = arg;

	/* Only the two fields written before the submission are read. */
	s->work(s->arg);
}

static void
submit_done(void *arg)
{
	struct session *s = arg;
	session_done_cb *done = s->done;
	void *done_arg = s->arg;

	s->work = NULL;
	s->done = NULL;
	s->arg = NULL;
	switch (done(s, done_arg)) {
	case CMD_SUSPEND:
		return;
	case CMD_CLOSE:
		session_close(s, "closed");
		break;
	case CMD_DONE:
		break;
	}
	session_resume(s);
}

void
session_submit_lane(struct session *s, int lane, bool held,
    void (*work)(void *arg), session_done_cb *done, void *arg)
{
	assert(s->done == NULL);
	if (held)
		assert(s->busy);
	else
		session_suspend(s);
	s->work = work;
	s->done = done;
	s->arg = arg;
	worker_submit_lane(s->d->workers, (enum worker_lane)lane, submit_work,
	    submit_done, s);
}

void
session_submit(struct session *s, void (*work)(void *arg),
    session_done_cb *done, void *arg)
{
	session_submit_lane(s, WORKER_LANE_IO, false, work, done, arg);
}

bool
session_count_error(struct session *s, unsigned max)
{
	return ++s->errors >= max;
}

void
session_reset_errors(struct session *s)
{
	s->errors = 0;
}

int
cmd_lookup(const void *table, size_t n, size_t stride, const char *name,
    unsigned state, unsigned nargs, enum cmd_check *check_r)
{
	const struct cmd_def *def;
	size_t i;

	for (i = 0; i < n; i++) {
		def = (const struct cmd_def *)(const void *)
		    ((const char *)table + i * stride);
		if (strcasecmp(def->name, name) != 0)
			continue;
		if ((def->states & state) == 0)
			*check_r = CMD_ESTATE;
		else if (nargs < def->min_args ||
		    (def->max_args != CMD_ARGS_ANY && nargs > def->max_args))
			*check_r = CMD_EARITY;
		else
			*check_r = CMD_OK;
		return (int)i;
	}
	*check_r = CMD_EUNKNOWN;
	return -1;
}
