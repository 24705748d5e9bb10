/* milter: the MTA side of the Sendmail milter protocol, kept open for a
   whole SMTP session: each configured milter gets its own non-blocking
   connection (opened at the first stage), and each stage (connect, HELO,
   MAIL, each RCPT, DATA, end of message) goes through the milters in
   order, one reply at a time, with a timer per reply; the protocol bytes
   come from milter_codec. */
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
	S_BODY, S_EOB,
};

struct milter_session;

/* One milter's connection. */
struct mconn {
	struct milter_session *ms;
	char spec[256];
	int fd;
	ev_io io;
	bool connecting;
	bool negotiated;
	struct buf out;
	struct buf in;
	uint32_t actions, protocol;
	/* The stage in progress on this milter. */
	const struct milter_msg *msg;
	enum step step, last;
	size_t sub;                 /* header offset, body offset */
	bool waiting;               /* a reply is due */
	/* For the session: failed (skipped from then on); said ACCEPT
	   before any message (nothing more to say). */
	bool dead, conn_accepted;
	/* For the message: saw MAIL; said ACCEPT; got DATA; got its end. */
	bool msg_open, msg_accepted, data_sent, eom_sent;
};

struct milter_session {
	struct ev_loop *loop;
	double timeout;
	bool fail_accept;
	bool tempfail;              /* a milter failed: messages get 451 */
	struct mconn m[MILTER_MAX];
	size_t n;
	/* The stage in progress. */
	bool busy;
	enum milter_stage stage;
	const struct milter_msg *msg;
	milter_done_cb *cb;
	void *arg;
	size_t cur;
	struct milter_result *res;
	ev_timer timer;             /* the reply due from m[cur] */
	ev_timer kick;              /* starts a stage on the next iteration */
	/* The message with the header changes of the milters before m[cur]. */
	struct milter_msg edited;
	struct buf hdr;
};

static void run_cur(struct milter_session *ms);
static void start_stage(struct mconn *r);
static void end_message(struct milter_session *ms);

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

/* The macros that go with cmd: Postfix's default lists (milter_*_macros)
   as far as they apply, for milters that read them (OpenDKIM: j,
   {daemon_name}, i; clamav-milter: i, {mail_addr}, {rcpt_addr}; rspamd: i
   and the client's). No {auth_*}: authenticated sessions are never
   filtered. A macro without a value is left out, as Postfix does. */
static void
macros(struct mconn *r, char cmd, size_t rcpt)
{
	const struct milter_msg *m = r->msg;
	const char *n[8], *v[8];
	char under[320];
	size_t k = 0;

#define MACRO(name, value) do {                                         \
	if ((value) != NULL && *(value) != '\0') {                       \
		n[k] = (name);                                          \
		v[k++] = (value);                                       \
	}                                                               \
} while (0)
	switch (cmd) {
	case SMFIC_CONNECT:
		snprintf(under, sizeof(under), "%s [%s]", m->client_name,
		    m->client_addr);
		MACRO("j", m->hostname);
		MACRO("{daemon_name}", "postroom");
		MACRO("v", "Postroom");
		MACRO("_", under);
		MACRO("{client_addr}", m->client_addr);
		MACRO("{client_name}", m->client_name);
		break;
	case SMFIC_HELO:
		MACRO("{tls_version}", m->tls_version);
		MACRO("{cipher}", m->tls_cipher);
		break;
	case SMFIC_MAIL:
		MACRO("i", m->queue_id);
		MACRO("{mail_addr}", m->from);
		break;
	case SMFIC_RCPT:
		MACRO("i", m->queue_id);
		MACRO("{rcpt_addr}", m->rcpts[rcpt]);
		break;
	case SMFIC_DATA:
	case SMFIC_EOH:
	case SMFIC_BODYEOB:
		MACRO("i", m->queue_id);
		break;
	default:
		break;
	}
#undef MACRO
	if (k > 0)
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
skipped(const struct mconn *r, enum step st)
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
answers(const struct mconn *r, enum step st)
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
put_step(struct mconn *r)
{
	const struct milter_msg *m = r->msg;
	char tmp[1024];
	const char *args[1];

	switch (r->step) {
	case S_CONNECT:
		if (r->sub > 0)
			return false;
		macros(r, SMFIC_CONNECT, 0);
		milter_enc_connect(&r->out, m->client_name,
		    m->client_v6 ? '6' : '4', m->client_port, m->client_addr);
		break;
	case S_HELO:
		if (r->sub > 0)
			return false;
		macros(r, SMFIC_HELO, 0);
		milter_enc_helo(&r->out, m->helo);
		break;
	case S_MAIL:
		if (r->sub > 0)
			return false;
		macros(r, SMFIC_MAIL, 0);
		snprintf(tmp, sizeof(tmp), "<%s>", m->from);
		args[0] = tmp;
		milter_enc_args(&r->out, SMFIC_MAIL, args, 1);
		break;
	case S_RCPT:
		if (r->sub >= m->nrcpts)
			return false;
		macros(r, SMFIC_RCPT, r->sub);
		snprintf(tmp, sizeof(tmp), "<%s>", m->rcpts[r->sub]);
		args[0] = tmp;
		milter_enc_args(&r->out, SMFIC_RCPT, args, 1);
		r->sub++;
		return true;
	case S_DATA:
		if (r->sub > 0)
			return false;
		macros(r, SMFIC_DATA, 0);
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
		macros(r, SMFIC_EOH, 0);
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
		macros(r, SMFIC_BODYEOB, 0);
		milter_enc_simple(&r->out, SMFIC_BODYEOB);
		break;
	default:
		return false;
	}
	r->sub = 1;
	return true;
}

static void
add_mod(struct mconn *r, const struct milter_reply *rep)
{
	struct milter_result *res = r->ms->res;
	struct milter_mod *mo;

	if (res->nmods == MILTER_MAX_MODS) {
		log_warnx("milter %s: more than %d header changes, the rest "
		    "ignored", r->spec, MILTER_MAX_MODS);
		return;
	}
	res->mods = xrealloc(res->mods, (res->nmods + 1) * sizeof(*mo));
	mo = &res->mods[res->nmods++];
	mo->type = rep->cmd;
	mo->index = rep->index;
	mo->name = xstrdup(rep->name);
	mo->value = xstrdup(rep->value);
}

static void
set_events(struct mconn *r)
{
	int ev = EV_READ;

	if (r->fd < 0)
		return;
	if (r->out.len > 0 || r->connecting)
		ev |= EV_WRITE;
	ev_io_stop(r->ms->loop, &r->io);
	ev_io_set(&r->io, r->fd, ev);
	ev_io_start(r->ms->loop, &r->io);
}

static void
close_fd(struct mconn *r)
{
	ev_io_stop(r->ms->loop, &r->io);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->connecting = false;
	buf_reset(&r->out);
	buf_reset(&r->in);
}

/* The stage's verdict to the caller; the session waits for the next. */
static void
finish(struct milter_session *ms)
{
	struct milter_result *res = ms->res;
	milter_done_cb *cb = ms->cb;
	void *arg = ms->arg;

	ev_timer_stop(ms->loop, &ms->timer);
	ev_timer_stop(ms->loop, &ms->kick);
	if (ms->stage == MILTER_EOM && res->action == MILTER_CONTINUE &&
	    ms->tempfail) {
		res->action = MILTER_TEMPFAIL;
		str_copy(res->reply, "451 4.7.1 Service unavailable - try "
		    "again later", sizeof(res->reply));
	}
	if (ms->stage == MILTER_EOM ||
	    (ms->stage == MILTER_MAIL && res->action != MILTER_CONTINUE &&
	    res->action != MILTER_DISCARD))
		end_message(ms);
	ms->res = NULL;
	ms->cb = NULL;
	ms->busy = false;
	cb(arg, res);
}

/* Milter r failed: it takes no more part in the session. With
   milter_failure = tempfail every message of the session gets a 451 at
   its end (a command is never refused for our filters' trouble, and the
   client learns at the one point where a retry makes sense). */
static void
fail(struct mconn *r, const char *why)
{
	struct milter_session *ms = r->ms;

	log_warnx("milter %s: %s%s", r->spec, why, ms->fail_accept ?
	    " (skipped: milter_failure = accept)" :
	    " (tempfail: milter_failure = tempfail)");
	close_fd(r);
	r->dead = true;
	if (!ms->fail_accept)
		ms->tempfail = true;
	if (ms->busy && ms->res != NULL) {
		ms->res->failed = true;
		str_copy(ms->res->why, why, sizeof(ms->res->why));
		str_copy(ms->res->who, r->spec, sizeof(ms->res->who));
	}
	if (ms->busy && &ms->m[ms->cur] == r) {
		ev_timer_stop(ms->loop, &ms->timer);
		ms->cur++;
		run_cur(ms);
	}
}

static void
arm_timer(struct milter_session *ms)
{
	ev_timer_stop(ms->loop, &ms->timer);
	ev_timer_set(&ms->timer, ms->timeout, 0);
	ev_timer_start(ms->loop, &ms->timer);
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct milter_session *ms = w->data;
	struct mconn *r = &ms->m[ms->cur];

	(void)loop;
	(void)revents;
	fail(r, r->connecting ? "connect timed out" : "timed out");
}

/* The steps of a stage: first and last. */
static void
stage_steps(enum milter_stage st, enum step *first, enum step *last)
{
	*first = *last = S_CONNECT;
	switch (st) {
	case MILTER_CONNECT: *first = *last = S_CONNECT; break;
	case MILTER_HELO: *first = *last = S_HELO; break;
	case MILTER_MAIL: *first = *last = S_MAIL; break;
	case MILTER_RCPT: *first = *last = S_RCPT; break;
	case MILTER_DATA: *first = *last = S_DATA; break;
	case MILTER_EOM: *first = S_DATA; *last = S_EOB; break;
	}
}

static void
next_step(struct mconn *r, enum step st)
{
	r->step = st;
	r->sub = 0;
}

/* Queues packets of the stage until one wants a reply; true when one
   does, false when the stage is through for this milter. */
static bool
send_next(struct mconn *r)
{
	bool wait = false;

	while (r->step <= r->last) {
		/* DATA is sent once per message (at DATA, or at the end of
		   a BDAT message). */
		if ((r->step == S_DATA && r->data_sent) ||
		    skipped(r, r->step) || !put_step(r)) {
			next_step(r, r->step + 1);
			continue;
		}
		if (r->step == S_DATA)
			r->data_sent = true;
		if (r->step == S_MAIL)
			r->msg_open = true;
		if (answers(r, r->step)) {
			wait = true;
			break;
		}
	}
	set_events(r);
	return wait;
}

/* Ends the message for every milter: those that took part in it and got
   no end of message are told to forget it. */
static void
end_message(struct milter_session *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		struct mconn *r = &ms->m[i];

		if (r->fd >= 0 && r->msg_open && !r->eom_sent) {
			milter_enc_simple(&r->out, SMFIC_ABORT);
			set_events(r);
		}
		r->msg_open = r->eom_sent = r->data_sent = false;
		r->msg_accepted = false;
	}
}

/* A decision that ends the stage (reject, tempfail, discard). */
static void
decide(struct mconn *r, enum milter_action a, const char *reply)
{
	struct milter_session *ms = r->ms;

	ms->res->action = a;
	/* Its own refusal of MAIL or its verdict on the message leaves it
	   nothing to abort. */
	if (r->step == S_EOB)
		r->eom_sent = true;
	if (r->step == S_MAIL)
		r->msg_open = false;
	str_copy(ms->res->who, r->spec, sizeof(ms->res->who));
	str_copy(ms->res->reply, reply, sizeof(ms->res->reply));
	log_info("milter %s: %s%s%s", r->spec,
	    a == MILTER_REJECT ? "reject" : a == MILTER_TEMPFAIL ? "tempfail" :
	    "discard", reply[0] != '\0' ? " " : "", reply);
	r->waiting = false;
	finish(ms);
}

/* A reply that moves the milter on: this milter is through with the
   stage (next milter), or the next packets go out. */
static void
advance(struct mconn *r, bool stage_done)
{
	struct milter_session *ms = r->ms;

	r->waiting = false;
	ev_timer_stop(ms->loop, &ms->timer);
	if (!stage_done) {
		if (send_next(r)) {
			r->waiting = true;
			arm_timer(ms);
			return;
		}
	}
	ms->cur++;
	run_cur(ms);
}

/* The reply to a message step that is not a verdict. 0 goes on, -1: the
   milter failed. */
static int
eom_action(struct mconn *r, const struct milter_reply *rep, char cmd)
{
	switch (rep->type) {
	case MILTER_R_ADDHEADER:
	case MILTER_R_CHGHEADER:
	case MILTER_R_INSHEADER:
		if (r->step != S_EOB) {
			fail(r, "header change before end of message");
			return -1;
		}
		if (!(r->actions & (rep->type == MILTER_R_CHGHEADER ?
		    SMFIF_CHGHDRS : SMFIF_ADDHDRS))) {
			fail(r, "header change not negotiated");
			return -1;
		}
		add_mod(r, rep);
		return 0;
	case MILTER_R_QUARANTINE:
		if (r->step != S_EOB) {
			fail(r, "quarantine before end of message");
			return -1;
		}
		r->ms->res->quarantine = true;
		str_copy(r->ms->res->quarantine_reason, rep->text,
		    sizeof(r->ms->res->quarantine_reason));
		log_info("milter %s: quarantine \"%s\"", r->spec, rep->text);
		return 0;
	default:
		if (r->step == S_EOB) {
			log_warnx("milter %s: unsupported action '%c' ignored",
			    r->spec, cmd);
			return 0;
		}
		fail(r, "unexpected reply");
		return -1;
	}
}

/* The option negotiation's reply: on to the stage. */
static int
negotiated(struct mconn *r, const struct milter_reply *rep)
{
	if (rep->type != MILTER_R_OPTNEG || rep->version < 2 ||
	    rep->version > MILTER_VERSION) {
		fail(r, "bad option negotiation");
		return -1;
	}
	r->actions = rep->actions & MILTER_OUR_ACTIONS;
	r->protocol = rep->protocol & MILTER_OUR_PROTOCOL;
	r->negotiated = true;
	r->waiting = false;
	ev_timer_stop(r->ms->loop, &r->ms->timer);
	start_stage(r);
	return 0;
}

/* One reply packet. 0 goes on, -1: stop reading this milter's input. */
static int
handle(struct mconn *r, char cmd, const unsigned char *data, size_t dlen)
{
	struct milter_reply rep;
	const char *err;
	bool conn_level = r->step <= S_HELO;

	if (!r->waiting) {
		fail(r, "reply nobody asked for");
		return -1;
	}
	if (milter_reply_parse(cmd, data, dlen, &rep, &err) < 0) {
		fail(r, err);
		return -1;
	}
	if (!r->negotiated)
		return negotiated(r, &rep);
	switch (rep.type) {
	case MILTER_R_PROGRESS:
		arm_timer(r->ms);
		return 0;
	case MILTER_R_CONTINUE:
		if (r->step == S_EOB)
			r->eom_sent = true;
		advance(r, r->step == S_EOB);
		return -1;
	case MILTER_R_SKIP:
		if (r->step == S_BODY) {
			next_step(r, S_EOB);
			advance(r, false);
			return -1;
		}
		advance(r, false);
		return -1;
	case MILTER_R_ACCEPT:
		/* Nothing more from this milter: for the session when said
		   before any message, else for this message. */
		if (conn_level)
			r->conn_accepted = true;
		else
			r->msg_accepted = true;
		if (r->step == S_EOB)
			r->eom_sent = true;
		advance(r, true);
		return -1;
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
	default:
		return eom_action(r, &rep, cmd);
	}
}

/* Reads what milter r sent; replies are handled one by one. */
static void
read_input(struct mconn *r)
{
	char tmp[16384];
	ssize_t n = recv(r->fd, tmp, sizeof(tmp), 0);
	unsigned char *pkt;
	int k;

	if (n == 0) {
		fail(r, "connection closed");
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
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
			return;
		/* A copy: handling the reply may move on to the next milter
		   and even end the session (r freed), so the packet leaves
		   the buffer first. */
		pkt = xmalloc(dlen + 1);
		memcpy(pkt, data, dlen);
		buf_consume(&r->in, used);
		k = handle(r, cmd, pkt, dlen);
		free(pkt);
		if (k < 0)
			return;
	}
}

static void
on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mconn *r = w->data;
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
		set_events(r);
	}
	if (revents & EV_READ)
		read_input(r);
}

/* Opens the connection to milter r and sends the option negotiation; on
   a failure fail() has moved the stage on already. */
static int
open_conn(struct mconn *r)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[300];

	if (spec_addr(r->spec, &ss, &sl, true, err, sizeof(err)) < 0) {
		fail(r, "bad address");
		return -1;
	}
	r->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (r->fd < 0) {
		fail(r, "socket failed");
		return -1;
	}
	r->connecting = true;
	if (connect(r->fd, (struct sockaddr *)&ss, sl) == 0) {
		r->connecting = false;
	} else if (errno != EINPROGRESS) {
		char why[96];

		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		fail(r, why);
		return -1;
	}
	milter_enc_optneg(&r->out, MILTER_VERSION, MILTER_OUR_ACTIONS,
	    MILTER_OUR_PROTOCOL);
	r->negotiated = false;
	r->waiting = true;
	arm_timer(r->ms);
	set_events(r);
	return 0;
}

/* What m[cur] reads at the end of message: the header as the milters
   before it left it. Postfix streams the message to its milters one after
   the other, each seeing the earlier ones' changes, and setups rely on it:
   OpenDMARC, placed after OpenDKIM, takes the DKIM results from the
   Authentication-Results field OpenDKIM added. */
static const struct milter_msg *
stage_msg(struct milter_session *ms)
{
	const struct milter_msg *m = ms->msg;
	size_t hlen = m->header_len;

	if (ms->stage != MILTER_EOM || ms->res->nmods == 0)
		return m;
	/* The edit wants the block without its empty line. */
	if (hlen >= 4 && memcmp(m->header + hlen - 4, "\r\n\r\n", 4) == 0)
		hlen -= 2;
	else if (hlen == 2 && memcmp(m->header, "\r\n", 2) == 0)
		hlen = 0;
	buf_reset(&ms->hdr);
	milter_header_edit(m->header, hlen, ms->res->mods, ms->res->nmods,
	    &ms->hdr);
	ms->edited = *m;
	ms->edited.header = ms->hdr.data != NULL ? ms->hdr.data : "";
	ms->edited.header_len = ms->hdr.len;
	return &ms->edited;
}

/* Sends the stage to the negotiated milter r. */
static void
start_stage(struct mconn *r)
{
	struct milter_session *ms = r->ms;
	enum step first = S_CONNECT;

	stage_steps(ms->stage, &first, &r->last);
	r->msg = stage_msg(ms);
	next_step(r, first);
	if (send_next(r)) {
		r->waiting = true;
		arm_timer(ms);
		return;
	}
	ms->cur++;
	run_cur(ms);
}

/* Runs the stage on milter ms->cur, or finishes when none is left. */
static void
run_cur(struct milter_session *ms)
{
	for (; ms->cur < ms->n; ms->cur++) {
		struct mconn *r = &ms->m[ms->cur];

		if (r->dead || r->conn_accepted ||
		    (r->msg_accepted && ms->stage >= MILTER_RCPT))
			continue;
		if (r->fd < 0)
			(void)open_conn(r);
		else
			start_stage(r);
		return;
	}
	finish(ms);
}

static void
on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct milter_session *ms = w->data;

	(void)loop;
	(void)revents;
	ms->cur = 0;
	run_cur(ms);
}

struct milter_session *
milter_session_new(struct ev_loop *loop, const char *list, double timeout,
    bool fail_accept)
{
	struct milter_session *ms = xcalloc(1, sizeof(*ms));
	char specs[MILTER_MAX][256], err[300];

	ms->loop = loop;
	ms->timeout = timeout > 0 ? timeout : 30;
	ms->fail_accept = fail_accept;
	if (split_list(list, specs, &ms->n, err, sizeof(err)) < 0)
		ms->n = 0;
	for (size_t i = 0; i < ms->n; i++) {
		struct mconn *r = &ms->m[i];

		r->ms = ms;
		r->fd = -1;
		memcpy(r->spec, specs[i], sizeof(r->spec));
		buf_init(&r->out);
		buf_init(&r->in);
		ev_io_init(&r->io, on_io, -1, EV_READ);
		r->io.data = r;
	}
	ev_timer_init(&ms->timer, on_timer, ms->timeout, 0);
	ms->timer.data = ms;
	ev_timer_init(&ms->kick, on_kick, 0, 0);
	ms->kick.data = ms;
	buf_init(&ms->hdr);
	return ms;
}

void
milter_session_step(struct milter_session *ms, enum milter_stage stage,
    const struct milter_msg *msg, milter_done_cb *cb, void *arg)
{
	/* A new message (or a new HELO, which resets one) first ends any
	   message the milters still hold open. */
	if (stage == MILTER_MAIL || stage == MILTER_HELO)
		end_message(ms);
	ms->stage = stage;
	ms->msg = msg;
	ms->cb = cb;
	ms->arg = arg;
	ms->busy = true;
	ms->res = xcalloc(1, sizeof(*ms->res));
	/* The callback never comes from inside this call. */
	ev_timer_start(ms->loop, &ms->kick);
}

void
milter_session_free(struct milter_session **msp)
{
	struct milter_session *ms = *msp;

	if (ms == NULL)
		return;
	*msp = NULL;
	ev_timer_stop(ms->loop, &ms->timer);
	ev_timer_stop(ms->loop, &ms->kick);
	for (size_t i = 0; i < ms->n; i++) {
		struct mconn *r = &ms->m[i];

		/* A polite goodbye when it fits the socket; never waited
		   for. */
		if (r->fd >= 0 && !r->connecting && r->negotiated &&
		    r->out.len == 0) {
			char q[5] = { 0, 0, 0, 1, SMFIC_QUIT };

			(void)send(r->fd, q, sizeof(q), MSG_NOSIGNAL |
			    MSG_DONTWAIT);
		}
		close_fd(r);
		buf_free(&r->out);
		buf_free(&r->in);
	}
	milter_result_free(ms->res);
	buf_free(&ms->hdr);
	free(ms);
}
