/* login: the shared login path: throttle, the password check on a worker,
   the verdict, the delayed failure, the authzid rule, the SASL exchange
   and the one log line. It never formats a protocol reply (login_ops
   does) and never logs a password or a SASL payload. The check itself is
   the protocol's verify (common cannot reach the store). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "daemon.h"
#include "log.h"
#include "login.h"
#include "proto_limits.h"
#include "util.h"
#include "worker.h"

struct login_req {
	struct login_req *next;         /* in the queue of waiting attempts */
	struct login *l;
	struct daemon *d;
	const struct login_ops *ops;
	char *user, *pass;
	void *job;
	const char *method;
	bool refuse;            /* authzid is not the user: fails whatever
	                           the password */
	bool cached;            /* the cache answered */
	enum login_result r;
};

/* Attempts waiting for a throttle slot of their address (AUTH_BEGIN_WAIT),
   oldest first. Loop thread; one daemon per process. */
static struct login_req *waiting;

static void wake_waiting(void);

static const char *
mech_name(enum sasl_mech m)
{
	return m == SASL_MECH_PLAIN ? "PLAIN" : m == SASL_MECH_LOGIN ?
	    "LOGIN" : "?";
}

static void
delay_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct login *l = w->data;
	struct session *s = l->s;

	(void)revents;
	ev_timer_stop(loop, w);
	l->delay_on = false;
	l->ops->reply_fail(s, l->delay_last);
	if (l->delay_last)
		session_close(s, "too many failed logins");
	session_resume(s);
}

void
login_init(struct login *l, struct session *s, const struct login_ops *ops)
{
	memset(l, 0, sizeof(*l));
	l->s = s;
	l->ops = ops;
	ev_init(&l->delay, delay_cb);
	l->delay.data = l;
}

static void
job_free(const struct login_ops *ops, void **job)
{
	if (*job != NULL && ops->job_free != NULL)
		ops->job_free(*job);
	*job = NULL;
}

void
login_sasl_abort(struct login *l)
{
	sasl_server_reset(&l->sasl);
	l->in_sasl = false;
	job_free(l->ops, &l->sasl_job);
}

static void req_free(struct login_req *r);

/* Takes r out of the waiting queue; false if it was not in it. */
static bool
unqueue(struct login_req *r)
{
	struct login_req **pp;

	for (pp = &waiting; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			r->next = NULL;
			return true;
		}
	}
	return false;
}

void
login_deinit(struct login *l)
{
	if (l->req != NULL && unqueue(l->req)) {
		req_free(l->req);
		l->req = NULL;
	}
	login_sasl_abort(l);
	if (l->delay_on) {
		ev_timer_stop(conn_loop(l->s->c), &l->delay);
		l->delay_on = false;
	}
}

static void
req_free(struct login_req *r)
{
	secret_free(&r->pass);
	free(r->user);
	job_free(r->ops, &r->job);
	free(r);
}

/* The one log line of a login attempt. */
static void
log_result(struct login *l, const char *user, const char *result,
    const char *reason, const char *extra)
{
	char esc[LOG_ESCAPE_SIZE];
	struct conn *c = l->s->c;

	log_escape(user, strlen(user), esc, sizeof(esc));
	log_info("%s login user=%s result=%s method=%s tls=%s%s%s%s",
	    conn_id(c), esc, result, l->method != NULL ? l->method : "-",
	    conn_is_tls(c) ? conn_tls_version(c) : "no",
	    reason != NULL ? " reason=" : "", reason != NULL ? reason : "",
	    extra != NULL ? extra : "");
}

/* Worker thread: a malformed name costs the same dummy check as an
   unknown user. */
static void
login_work(void *arg)
{
	struct login_req *r = arg;
	const char *at;

	at = strchr(r->user, '@');
	if (r->refuse || at == NULL || at == r->user || at[1] == '\0' ||
	    strlen(r->user) > AUTH_NAME_MAX) {
		pw_verify_dummy(r->pass);
		r->r = LOGIN_FAIL;
	} else {
		(void)auth_cache_hit_taken();
		r->r = r->ops->verify(r->d, r->user, r->pass, r->job);
		r->cached = auth_cache_hit_taken();
	}
	secret_free(&r->pass);
}

/* A wrong password: count it, then answer after the address's delay (or
   at once when the session ends because the address's budget is out). */
static enum cmd_result
login_failed(struct login *l, struct login_req *r)
{
	struct session *s = l->s;
	const char *addr = conn_peer_addr(s->c);
	const struct login_ops *ops = l->ops;
	double delay = auth_throttle_fail(s->d->throttle, addr);
	unsigned n = auth_throttle_count(s->d->throttle, addr);
	char extra[64];
	bool last_addr;

	l->fails++;
	snprintf(extra, sizeof(extra), " failures=%u delay=%.0f", n, delay);
	log_result(l, r->user, "fail", r->refuse ? "authzid" : NULL, extra);
	req_free(r);
	last_addr = ops->close_at_addr_max && n >= ops->fail_max_addr;
	l->delay_last = last_addr || (ops->fail_max_session > 0 &&
	    l->fails >= ops->fail_max_session);
	if (last_addr || l->no_delay) {
		ops->reply_fail(s, l->delay_last);
		if (l->delay_last)
			session_close(s, "too many failed logins");
		return CMD_DONE;
	}
	/* The reply waits, the loop does not: guessing gets slow. */
	ev_timer_set(&l->delay, delay, 0.);
	ev_timer_start(conn_loop(s->c), &l->delay);
	l->delay_on = true;
	return CMD_SUSPEND;
}

static enum cmd_result
login_done(struct session *s, void *arg)
{
	struct login_req *r = arg;
	struct login *l = r->l;
	const char *addr = conn_peer_addr(s->c), *why;
	enum cmd_result res = CMD_DONE;

	l->req = NULL;
	auth_throttle_end(s->d->throttle, addr);
	if (conn_is_closing(s->c)) {
		/* Nobody to answer; a wrong guess still counts (else hanging
		   up before the verdict would guess for free). */
		if (r->r == LOGIN_FAIL)
			(void)auth_throttle_fail(s->d->throttle, addr);
		else if (r->r == LOGIN_OK)
			auth_throttle_success(s->d->throttle, addr);
		req_free(r);
		wake_waiting();
		return CMD_DONE;
	}
	switch (r->r) {
	case LOGIN_OK:
		auth_throttle_success(s->d->throttle, addr);
		why = l->ops->reply_ok(s, r->job);
		log_result(l, r->user, why != NULL ? "tempfail" : "ok", why,
		    r->cached ? " cached=yes" : NULL);
		if (why == NULL && l->ops->line_max > 0)
			conn_set_line_limit(s->c, l->ops->line_max);
		if (why == NULL)
			conn_set_authenticated(s->c);
		req_free(r);
		break;
	case LOGIN_TEMPFAIL:
		why = l->ops->reply_tempfail(s, r->job);
		log_result(l, r->user, "tempfail", why, NULL);
		req_free(r);
		break;
	case LOGIN_FAIL:
	default:
		res = login_failed(l, r);
		break;
	}
	/* The slot is free and the verdict counted: the queue may move. */
	wake_waiting();
	return res;
}

/* Threads of the CPU lane: Argon2id is pure CPU (and 64 MiB each), so
   more hashing threads than half the cores would let a login storm take
   the CPU that the loop and the disk threads need, without raising the
   hashes per second that the cores can give. */
/* auth_cache_ttl as the last SIGHUP read it (the daemon's config is the
   one read at start and stays const). Loop thread. */
static double reloaded_ttl;
static bool ttl_reloaded;

static double
cache_ttl(const struct daemon *d)
{
	return ttl_reloaded ? reloaded_ttl : d->cfg->auth_cache_ttl;
}

void
login_reload(struct daemon *d)
{
	struct config fresh;
	char err[512];
	double old = cache_ttl(d);

	if (d->cfg->path == NULL)
		return;
	if (config_load(&fresh, d->cfg->path, err, sizeof(err)) < 0) {
		log_warnx("- auth-cache ttl=%g kept error=\"%s\"", old, err);
		return;
	}
	reloaded_ttl = fresh.auth_cache_ttl;
	ttl_reloaded = true;
	config_free(&fresh);
	/* Also before the first login: that one sets the cache up with
	   cache_ttl(), the value read now. */
	auth_cache_set_ttl(reloaded_ttl);
	/* Not a second "reload" line: every daemon logs just the one. */
	if (reloaded_ttl != old)
		log_info("- auth-cache ttl=%g", reloaded_ttl);
}

static unsigned
hash_threads(const struct config *cfg)
{
	long ncpu;

	if (cfg->auth_threads > 0)
		return cfg->auth_threads;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	return ncpu >= 4 ? (unsigned)(ncpu / 2) : 1;
}

/* The password check's lane: the CPU lane (its own threads, started at
   the first login) unless the cache will answer, so a storm of Argon2id
   runs never delays the disk work of the IO lane, nor a cached login. */
static enum worker_lane
check_lane(struct daemon *d, const struct login_req *r)
{
	if (worker_pool_start_lane(d->workers, WORKER_LANE_CPU,
	    hash_threads(d->cfg)))
		auth_cache_set_ttl(cache_ttl(d));
	if (!r->refuse && auth_cache_probe(r->user, r->pass))
		return WORKER_LANE_IO;
	return WORKER_LANE_CPU;
}

/* A refused attempt: logged, answered (the session then closes). */
static void
refuse(struct login *l, struct login_req *r)
{
	l->req = NULL;
	log_result(l, r->user, "refused", "too-many-failures", NULL);
	req_free(r);
	l->ops->reply_refused(l->s);
}

/* Asks the throttle about r and acts on the verdict: GO submits the
   check (held: the session is suspended already), REFUSE refuses, WAIT
   is the caller's to queue. */
static enum auth_begin
try_start(struct login *l, struct login_req *r, bool held)
{
	struct session *s = l->s;
	enum auth_begin v = auth_throttle_begin(s->d->throttle,
	    conn_peer_addr(s->c), l->ops->fail_max_addr);

	if (v == AUTH_BEGIN_REFUSE)
		refuse(l, r);
	else if (v == AUTH_BEGIN_GO)
		session_submit_lane(s, check_lane(s->d, r), held, login_work,
		    login_done, r);
	return v;
}

/* Gives each waiting attempt its turn again, oldest first. A session
   resumed here may start a new attempt, which queues behind. */
static void
wake_waiting(void)
{
	struct login_req *list = waiting, *r, *keep = NULL, **kt = &keep;

	waiting = NULL;
	while ((r = list) != NULL) {
		struct login *l = r->l;
		struct session *s = l->s;

		list = r->next;
		r->next = NULL;
		if (conn_is_closing(s->c)) {
			l->req = NULL;
			req_free(r);
			session_resume(s);
			continue;
		}
		switch (try_start(l, r, true)) {
		case AUTH_BEGIN_REFUSE:
			session_close(s, "too many failed logins");
			session_resume(s);
			break;
		case AUTH_BEGIN_WAIT:
			*kt = r;
			kt = &r->next;
			break;
		case AUTH_BEGIN_GO:
			break;
		}
	}
	/* The ones still waiting stay ahead of those queued meanwhile. */
	*kt = waiting;
	waiting = keep;
}

static enum cmd_result
start(struct login *l, const char *method, char *user, char *pass,
    void *job, bool refuse)
{
	struct login_req *r, **pp;

	l->method = method;
	/* Lowered here, on the loop: the cache probe and the check see the
	   same name. */
	str_lower(user);
	r = xcalloc(1, sizeof(*r));
	r->l = l;
	r->d = l->s->d;
	r->ops = l->ops;
	r->user = user;
	r->pass = pass;
	r->job = job;
	r->method = method;
	r->refuse = refuse;
	l->req = r;
	switch (try_start(l, r, false)) {
	case AUTH_BEGIN_REFUSE:
		return CMD_CLOSE;
	case AUTH_BEGIN_WAIT:
		for (pp = &waiting; *pp != NULL; pp = &(*pp)->next)
			;
		*pp = r;
		session_suspend(l->s);
		return CMD_SUSPEND;
	case AUTH_BEGIN_GO:
		break;
	}
	return CMD_SUSPEND;
}

enum cmd_result
login_start(struct login *l, const char *method, char *user, char *pass,
    void *job)
{
	return start(l, method, user, pass, job, false);
}

static enum cmd_result
sasl_result(struct login *l, enum sasl_result r, const char *chal)
{
	char *user, *pass;
	void *job;
	bool refuse;

	switch (r) {
	case SASL_CONTINUE:
		l->in_sasl = true;
		l->ops->send_challenge(l->s, chal);
		return CMD_DONE;
	case SASL_CANCEL:
	case SASL_FAIL:
		login_sasl_abort(l);
		return l->ops->reply_sasl_error(l->s, r);
	case SASL_DONE:
		break;
	}
	l->in_sasl = false;
	user = l->sasl.user;
	pass = l->sasl.pass;
	l->sasl.user = l->sasl.pass = NULL;
	/* No proxy logins: an authzid other than the user (compared without
	   case, the name is lowered anyway) fails like a wrong password,
	   through the same delayed path, so it tells a guesser nothing. */
	refuse = l->sasl.authzid != NULL && l->sasl.authzid[0] != '\0' &&
	    strcasecmp(l->sasl.authzid, user) != 0;
	sasl_server_reset(&l->sasl);
	job = l->sasl_job;
	l->sasl_job = NULL;
	return start(l, mech_name(l->sasl_mech), user, pass, job, refuse);
}

enum cmd_result
login_sasl_start(struct login *l, enum sasl_mech mech, const char *initial,
    void *job)
{
	const char *chal = "";
	enum sasl_result r;

	login_sasl_abort(l);
	l->sasl_job = job;
	l->sasl_mech = mech;
	l->method = mech_name(mech);
	sasl_server_init(&l->sasl, mech);
	r = sasl_server_start(&l->sasl, initial, &chal);
	/* chal is set by the call: never in the same argument list. */
	return sasl_result(l, r, chal);
}

enum cmd_result
login_sasl_line(struct login *l, const char *line, size_t len)
{
	const char *chal = "";
	enum sasl_result r = sasl_server_step(&l->sasl, line, len, &chal);

	return sasl_result(l, r, chal);
}

bool
login_addr_blocked(const struct login *l)
{
	return auth_throttle_count(l->s->d->throttle,
	    conn_peer_addr(l->s->c)) >= l->ops->fail_max_addr;
}

void
login_delay_cut(struct login *l)
{
	l->no_delay = true;
	if (!l->delay_on)
		return;
	ev_timer_stop(conn_loop(l->s->c), &l->delay);
	delay_cb(conn_loop(l->s->c), &l->delay, 0);
}
