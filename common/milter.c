/* milter: runs one message through the configured milters, one after the
   other, each on its own non-blocking socket with a timer; the protocol
   bytes come from milter_codec. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "milter.h"
#include "milter_codec.h"
#include "util.h"

/* The steps of one milter's conversation, in order. */
enum step {
	S_OPTNEG, S_CONNECT, S_HELO, S_MAIL, S_RCPT, S_DATA, S_HEADER, S_EOH,
	S_BODY, S_EOB, S_QUIT, S_DONE,
};

struct milter_run {
	struct ev_loop *loop;
	const struct milter_msg *msg;
	milter_done_cb *cb;
	void *arg;
	double timeout;
	bool fail_accept;
	char specs[MILTER_MAX][256];
	size_t nspecs, cur;

	int fd;
	ev_io io;
	ev_timer timer;
	ev_timer kick;
	bool connecting;
	struct buf out;
	struct buf in;
	enum step step;
	size_t sub;                 /* rcpt index, header offset, body offset */
	bool waiting;               /* a reply is due */
	bool accepted;              /* this milter said ACCEPT */
	uint32_t actions, protocol;
	struct milter_result *res;
};

static void run_next(struct milter_run *r);
static void send_next(struct milter_run *r);

/* "inet:host:port", "host:port" or "unix:/path" into a sockaddr. */
static int
spec_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *sl,
    bool resolve, char *err, size_t errlen)
{
	char host[256], *colon;
	const char *hp = spec;
	struct addrinfo hints, *ai = NULL;

	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		if (spec[5] != '/' || strlen(spec + 5) >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "milter %s: bad unix path", spec);
			return -1;
		}
		memset(un, 0, sizeof(*un));
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, spec + 5);
		*sl = sizeof(*un);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) == 0)
		hp = spec + 5;
	else if (strncmp(spec, "inet6:", 6) == 0)
		hp = spec + 6;
	if (str_copy(host, hp, sizeof(host)) >= sizeof(host) ||
	    (colon = strrchr(host, ':')) == NULL || colon[1] == '\0') {
		snprintf(err, errlen, "milter %s: want inet:host:port or "
		    "unix:/path", spec);
		return -1;
	}
	*colon = '\0';
	if (host[0] == '[' && colon > host + 1 && colon[-1] == ']') {
		colon[-1] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	/* Also "port@host" as sendmail writes it is not taken: one form. */
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) > 5 || atoi(colon + 1) <= 0 ||
	    atoi(colon + 1) > 65535 || host[0] == '\0') {
		snprintf(err, errlen, "milter %s: bad host or port", spec);
		return -1;
	}
	if (!resolve)
		return 0;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL) {
		snprintf(err, errlen, "milter %s: bad host or port", spec);
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sl = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* Splits the list into specs; -1 with err. */
static int
split_list(const char *list, char specs[][256], size_t *n, char *err,
    size_t errlen)
{
	const char *p = list;

	*n = 0;
	while (p != NULL && *p != '\0') {
		size_t len;
		p += strspn(p, " \t,");
		len = strcspn(p, " \t,");
		if (len == 0)
			break;
		if (*n == MILTER_MAX || len >= 256) {
			snprintf(err, errlen, "milter: at most %d milters of "
			    "255 bytes", MILTER_MAX);
			return -1;
		}
		memcpy(specs[*n], p, len);
		specs[*n][len] = '\0';
		(*n)++;
		p += len;
	}
	return 0;
}

int
milter_list_check(const char *list, char *err, size_t errlen)
{
	char specs[MILTER_MAX][256];
	struct sockaddr_storage ss;
	socklen_t sl;
	size_t n;

	if (split_list(list, specs, &n, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (spec_addr(specs[i], &ss, &sl, false, err, errlen) < 0)
			return -1;
	return 0;
}

void
milter_result_free(struct milter_result *res)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < res->nmods; i++) {
		free(res->mods[i].name);
		free(res->mods[i].value);
	}
	free(res->mods);
	free(res);
}

static void
close_fd(struct milter_run *r)
{
	ev_io_stop(r->loop, &r->io);
	ev_timer_stop(r->loop, &r->timer);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	buf_reset(&r->out);
	buf_reset(&r->in);
}

static void
finish(struct milter_run *r)
{
	struct milter_result *res = r->res;
	milter_done_cb *cb = r->cb;
	void *arg = r->arg;

	close_fd(r);
	ev_timer_stop(r->loop, &r->kick);
	r->res = NULL;
	milter_run_cancel(&r);
	cb(arg, res);
}

/* This milter failed: skip it (milter_failure = accept) or tempfail. */
static void
fail(struct milter_run *r, const char *why)
{
	log_warnx("milter %s: %s%s", r->specs[r->cur], why,
	    r->fail_accept ? " (skipped: milter_failure = accept)" :
	    " (tempfail: milter_failure = tempfail)");
	r->res->failed = true;
	str_copy(r->res->why, why, sizeof(r->res->why));
	str_copy(r->res->who, r->specs[r->cur], sizeof(r->res->who));
	close_fd(r);
	if (r->fail_accept) {
		r->cur++;
		run_next(r);
		return;
	}
	r->res->action = MILTER_TEMPFAIL;
	str_copy(r->res->reply, "451 4.7.1 Service unavailable - try again "
	    "later", sizeof(r->res->reply));
	finish(r);
}

static void
arm_timer(struct milter_run *r)
{
	ev_timer_stop(r->loop, &r->timer);
	ev_timer_set(&r->timer, r->timeout, 0);
	ev_timer_start(r->loop, &r->timer);
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct milter_run *r = w->data;

	(void)loop;
	(void)revents;
	fail(r, r->connecting ? "connect timed out" : "timed out");
}

static void
set_events(struct milter_run *r)
{
	int ev = EV_READ;

	if (r->out.len > 0 || r->connecting)
		ev |= EV_WRITE;
	ev_io_stop(r->loop, &r->io);
	ev_io_set(&r->io, r->fd, ev);
	ev_io_start(r->loop, &r->io);
}

/* Macros a milter may want (rspamd reads i and the client's). */
static void
macros(struct milter_run *r, char cmd)
{
	const struct milter_msg *m = r->msg;
	const char *n[4], *v[4];
	size_t k = 0;

	switch (cmd) {
	case SMFIC_CONNECT:
		n[k] = "j"; v[k++] = m->hostname;
		n[k] = "{daemon_name}"; v[k++] = "postroom";
		n[k] = "{client_addr}"; v[k++] = m->client_addr;
		n[k] = "{client_name}"; v[k++] = m->client_name;
		break;
	case SMFIC_MAIL:
		n[k] = "i"; v[k++] = m->queue_id;
		n[k] = "{mail_addr}"; v[k++] = m->from;
		break;
	case SMFIC_BODYEOB:
		n[k] = "i"; v[k++] = m->queue_id;
		break;
	default:
		return;
	}
	milter_enc_macro(&r->out, cmd, n, v, k);
}

/* The next header field of the block from *off: name and value (value's
   line breaks as LF, the first space after the colon dropped). 0 at the
   end. */
static int
next_header(const char *h, size_t len, size_t *off, struct buf *name,
    struct buf *value)
{
	size_t i = *off, end;
	const char *colon;

	if (i >= len || h[i] == '\r' || h[i] == '\n')
		return 0;
	/* The field ends at a line break not followed by white space. */
	end = i;
	for (;;) {
		const char *nl = memchr(h + end, '\n', len - end);
		if (nl == NULL) {
			end = len;
			break;
		}
		end = (size_t)(nl - h) + 1;
		if (end >= len || (h[end] != ' ' && h[end] != '\t'))
			break;
	}
	*off = end;
	colon = memchr(h + i, ':', end - i);
	if (colon == NULL)
		return next_header(h, len, off, name, value);
	buf_reset(name);
	buf_reset(value);
	buf_append(name, h + i, (size_t)(colon - (h + i)));
	while (name->len > 0 && (name->data[name->len - 1] == ' ' ||
	    name->data[name->len - 1] == '\t'))
		name->len--;
	buf_putc(name, '\0');
	i = (size_t)(colon - h) + 1;
	if (i < end && h[i] == ' ')
		i++;
	for (; i < end; i++) {
		if (h[i] == '\r')
			continue;
		buf_putc(value, h[i]);
	}
	while (value->len > 0 && value->data[value->len - 1] == '\n')
		value->len--;
	buf_putc(value, '\0');
	return 1;
}

/* Whether the milter asked to leave the step out. */
static bool
skipped(const struct milter_run *r, enum step st)
{
	static const uint32_t no[] = {
		[S_CONNECT] = SMFIP_NOCONNECT, [S_HELO] = SMFIP_NOHELO,
		[S_MAIL] = SMFIP_NOMAIL, [S_RCPT] = SMFIP_NORCPT,
		[S_DATA] = SMFIP_NODATA, [S_HEADER] = SMFIP_NOHDRS,
		[S_EOH] = SMFIP_NOEOH, [S_BODY] = SMFIP_NOBODY,
	};
	if (st >= S_CONNECT && st <= S_BODY)
		return (r->protocol & no[st]) != 0;
	return false;
}

/* Whether the milter answers the step. */
static bool
answers(const struct milter_run *r, enum step st)
{
	static const uint32_t nr[] = {
		[S_CONNECT] = SMFIP_NR_CONN, [S_HELO] = SMFIP_NR_HELO,
		[S_MAIL] = SMFIP_NR_MAIL, [S_RCPT] = SMFIP_NR_RCPT,
		[S_DATA] = SMFIP_NR_DATA, [S_HEADER] = SMFIP_NR_HDR,
		[S_EOH] = SMFIP_NR_EOH, [S_BODY] = SMFIP_NR_BODY,
	};
	if (st >= S_CONNECT && st <= S_BODY)
		return (r->protocol & nr[st]) == 0;
	return st == S_EOB || st == S_OPTNEG;
}

/* Queues the packet(s) of the current step; false when the step has
   nothing more to send (move on). */
static bool
put_step(struct milter_run *r)
{
	const struct milter_msg *m = r->msg;
	char tmp[1024];
	const char *args[1];

	switch (r->step) {
	case S_CONNECT:
		if (r->sub > 0)
			return false;
		macros(r, SMFIC_CONNECT);
		milter_enc_connect(&r->out, m->client_name,
		    m->client_v6 ? '6' : '4', m->client_port, m->client_addr);
		break;
	case S_HELO:
		if (r->sub > 0)
			return false;
		milter_enc_helo(&r->out, m->helo);
		break;
	case S_MAIL:
		if (r->sub > 0)
			return false;
		macros(r, SMFIC_MAIL);
		snprintf(tmp, sizeof(tmp), "<%s>", m->from);
		args[0] = tmp;
		milter_enc_args(&r->out, SMFIC_MAIL, args, 1);
		break;
	case S_RCPT: {
		const char *n[1] = { "{rcpt_addr}" }, *v[1];
		if (r->sub >= m->nrcpts)
			return false;
		v[0] = m->rcpts[r->sub];
		milter_enc_macro(&r->out, SMFIC_RCPT, n, v, 1);
		snprintf(tmp, sizeof(tmp), "<%s>", m->rcpts[r->sub]);
		args[0] = tmp;
		milter_enc_args(&r->out, SMFIC_RCPT, args, 1);
		r->sub++;
		return true;
	}
	case S_DATA:
		if (r->sub > 0)
			return false;
		milter_enc_simple(&r->out, SMFIC_DATA);
		break;
	case S_HEADER: {
		struct buf n, v;
		int got;
		buf_init(&n);
		buf_init(&v);
		got = next_header(m->header, m->header_len, &r->sub, &n, &v);
		if (got)
			milter_enc_header(&r->out, n.data, v.data);
		buf_free(&n);
		buf_free(&v);
		return got != 0;
	}
	case S_EOH:
		if (r->sub > 0)
			return false;
		milter_enc_simple(&r->out, SMFIC_EOH);
		break;
	case S_BODY: {
		size_t n = m->body_len - r->sub;
		if (r->sub >= m->body_len)
			return false;
		if (n > MILTER_CHUNK_SIZE)
			n = MILTER_CHUNK_SIZE;
		milter_enc_body(&r->out, m->body + r->sub, n);
		r->sub += n;
		return true;
	}
	case S_EOB:
		if (r->sub > 0)
			return false;
		macros(r, SMFIC_BODYEOB);
		milter_enc_simple(&r->out, SMFIC_BODYEOB);
		break;
	case S_QUIT:
		if (r->sub > 0)
			return false;
		milter_enc_simple(&r->out, SMFIC_QUIT);
		break;
	default:
		return false;
	}
	r->sub = 1;
	return true;
}

static void
next_step(struct milter_run *r, enum step st)
{
	r->step = st;
	r->sub = 0;
}

/* Queues packets until one wants a reply (or QUIT went out). */
static void
send_next(struct milter_run *r)
{
	while (r->step < S_DONE) {
		if (r->step != S_QUIT && skipped(r, r->step)) {
			next_step(r, r->step + 1);
			continue;
		}
		if (!put_step(r)) {
			next_step(r, r->step + 1);
			continue;
		}
		if (r->step == S_QUIT) {
			r->step = S_DONE;
			break;
		}
		if (answers(r, r->step)) {
			r->waiting = true;
			arm_timer(r);
			break;
		}
	}
	set_events(r);
}

static void
add_mod(struct milter_run *r, const struct milter_reply *rep)
{
	struct milter_result *res = r->res;
	struct milter_mod *mo;

	if (res->nmods == MILTER_MAX_MODS) {
		log_warnx("milter %s: more than %d header changes, the rest "
		    "ignored", r->specs[r->cur], MILTER_MAX_MODS);
		return;
	}
	res->mods = xrealloc(res->mods, (res->nmods + 1) * sizeof(*mo));
	mo = &res->mods[res->nmods++];
	mo->type = rep->cmd;
	mo->index = rep->index;
	mo->name = xstrdup(rep->name);
	mo->value = xstrdup(rep->value);
}

/* A decision that ends the run (reject, tempfail, discard). */
static void
decide(struct milter_run *r, enum milter_action a, const char *reply)
{
	r->res->action = a;
	str_copy(r->res->who, r->specs[r->cur], sizeof(r->res->who));
	str_copy(r->res->reply, reply, sizeof(r->res->reply));
	log_info("milter %s: %s%s%s", r->specs[r->cur],
	    a == MILTER_REJECT ? "reject" : a == MILTER_TEMPFAIL ? "tempfail" :
	    "discard", reply[0] != '\0' ? " " : "", reply);
	finish(r);
}

/* One reply packet. 0 goes on, -1: the run moved on (do not touch the
   connection). */
static int
handle(struct milter_run *r, char cmd, const unsigned char *data,
    size_t dlen)
{
	struct milter_reply rep;
	const char *err;

	if (!r->waiting) {
		fail(r, "reply nobody asked for");
		return -1;
	}
	if (milter_reply_parse(cmd, data, dlen, &rep, &err) < 0) {
		fail(r, err);
		return -1;
	}
	if (r->step == S_OPTNEG) {
		if (rep.type != MILTER_R_OPTNEG || rep.version < 2 ||
		    rep.version > MILTER_VERSION) {
			fail(r, "bad option negotiation");
			return -1;
		}
		r->actions = rep.actions & MILTER_OUR_ACTIONS;
		r->protocol = rep.protocol & MILTER_OUR_PROTOCOL;
		r->waiting = false;
		next_step(r, S_CONNECT);
		send_next(r);
		return 0;
	}
	switch (rep.type) {
	case MILTER_R_PROGRESS:
		arm_timer(r);
		return 0;
	case MILTER_R_CONTINUE:
		break;
	case MILTER_R_SKIP:
		if (r->step == S_BODY)
			next_step(r, S_EOB);
		break;
	case MILTER_R_ACCEPT:
		/* This milter has no more to say about the message. */
		next_step(r, S_QUIT);
		break;
	case MILTER_R_REJECT:
		decide(r, MILTER_REJECT, "550 5.7.1 Command rejected");
		return -1;
	case MILTER_R_TEMPFAIL:
		decide(r, MILTER_TEMPFAIL, "451 4.7.1 Service unavailable - "
		    "try again later");
		return -1;
	case MILTER_R_DISCARD:
		decide(r, MILTER_DISCARD, "");
		return -1;
	case MILTER_R_REPLYCODE:
		decide(r, rep.text[0] == '5' ? MILTER_REJECT : MILTER_TEMPFAIL,
		    rep.text);
		return -1;
	case MILTER_R_ADDHEADER:
	case MILTER_R_CHGHEADER:
	case MILTER_R_INSHEADER:
		if (r->step != S_EOB) {
			fail(r, "header change before end of message");
			return -1;
		}
		if (!(r->actions & (rep.type == MILTER_R_CHGHEADER ?
		    SMFIF_CHGHDRS : SMFIF_ADDHDRS))) {
			fail(r, "header change not negotiated");
			return -1;
		}
		add_mod(r, &rep);
		return 0;
	case MILTER_R_QUARANTINE:
		if (r->step != S_EOB) {
			fail(r, "quarantine before end of message");
			return -1;
		}
		r->res->quarantine = true;
		str_copy(r->res->quarantine_reason, rep.text,
		    sizeof(r->res->quarantine_reason));
		log_info("milter %s: quarantine \"%s\"", r->specs[r->cur],
		    rep.text);
		return 0;
	case MILTER_R_OTHER:
		if (r->step == S_EOB) {
			log_warnx("milter %s: unsupported action '%c' ignored",
			    r->specs[r->cur], cmd);
			return 0;
		}
		fail(r, "unexpected reply");
		return -1;
	default:
		fail(r, "unexpected reply");
		return -1;
	}
	r->waiting = false;
	ev_timer_stop(r->loop, &r->timer);
	if (r->step == S_EOB)
		next_step(r, S_QUIT);
	send_next(r);
	return 0;
}

static void
on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct milter_run *r = w->data;
	ssize_t n;

	(void)loop;
	if (r->connecting) {
		int e = 0;
		socklen_t el = sizeof(e);
		if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 ||
		    e != 0) {
			char why[96];
			snprintf(why, sizeof(why), "connect: %s",
			    strerror(e != 0 ? e : errno));
			fail(r, why);
			return;
		}
		r->connecting = false;
		set_events(r);
		return;
	}
	if ((revents & EV_WRITE) && r->out.len > 0) {
		n = send(r->fd, r->out.data, r->out.len, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			fail(r, "write failed");
			return;
		}
		if (n > 0)
			buf_consume(&r->out, (size_t)n);
		if (r->out.len == 0 && r->step == S_DONE) {
			/* QUIT sent: on to the next milter. */
			close_fd(r);
			r->cur++;
			run_next(r);
			return;
		}
		set_events(r);
	}
	if (revents & EV_READ) {
		char tmp[16384];
		n = recv(r->fd, tmp, sizeof(tmp), 0);
		if (n == 0) {
			fail(r, "connection closed");
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			fail(r, "read failed");
			return;
		}
		buf_append(&r->in, tmp, (size_t)n);
		for (;;) {
			size_t used, dlen;
			char cmd;
			const unsigned char *data;
			int f = milter_frame((const unsigned char *)r->in.data,
			    r->in.len, &used, &cmd, &data, &dlen);
			if (f < 0) {
				fail(r, "bad packet length");
				return;
			}
			if (f == 0)
				break;
			if (handle(r, cmd, data, dlen) < 0)
				return;
			buf_consume(&r->in, used);
		}
	}
}

/* Connects to milter r->cur, or finishes when none is left. */
static void
run_next(struct milter_run *r)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[300];

	if (r->cur >= r->nspecs) {
		finish(r);
		return;
	}
	r->step = S_OPTNEG;
	r->sub = 0;
	r->waiting = false;
	r->accepted = false;
	r->actions = r->protocol = 0;
	if (spec_addr(r->specs[r->cur], &ss, &sl, true, err, sizeof(err)) < 0) {
		fail(r, "bad address");
		return;
	}
	r->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (r->fd < 0) {
		fail(r, "socket failed");
		return;
	}
	r->connecting = true;
	if (connect(r->fd, (struct sockaddr *)&ss, sl) == 0)
		r->connecting = false;
	else if (errno != EINPROGRESS) {
		char why[96];
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		r->connecting = false;
		fail(r, why);
		return;
	}
	milter_enc_optneg(&r->out, MILTER_VERSION, MILTER_OUR_ACTIONS,
	    MILTER_OUR_PROTOCOL);
	r->waiting = true;
	arm_timer(r);
	set_events(r);
}

static void
on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	run_next(w->data);
}

struct milter_run *
milter_run_start(struct ev_loop *loop, const char *list, double timeout,
    bool fail_accept, const struct milter_msg *msg, milter_done_cb *cb,
    void *arg)
{
	struct milter_run *r = xcalloc(1, sizeof(*r));
	char err[300];

	r->loop = loop;
	r->msg = msg;
	r->cb = cb;
	r->arg = arg;
	r->timeout = timeout > 0 ? timeout : 30;
	r->fail_accept = fail_accept;
	r->fd = -1;
	r->res = xcalloc(1, sizeof(*r->res));
	if (split_list(list, r->specs, &r->nspecs, err, sizeof(err)) < 0)
		r->nspecs = 0;
	buf_init(&r->out);
	buf_init(&r->in);
	ev_io_init(&r->io, on_io, -1, EV_READ);
	r->io.data = r;
	ev_timer_init(&r->timer, on_timer, r->timeout, 0);
	r->timer.data = r;
	/* The callback never comes from inside this call. */
	ev_timer_init(&r->kick, on_kick, 0, 0);
	r->kick.data = r;
	ev_timer_start(loop, &r->kick);
	return r;
}

void
milter_run_cancel(struct milter_run **rp)
{
	struct milter_run *r = *rp;

	if (r == NULL)
		return;
	close_fd(r);
	ev_timer_stop(r->loop, &r->kick);
	buf_free(&r->out);
	buf_free(&r->in);
	milter_result_free(r->res);
	free(r);
	*rp = NULL;
}
