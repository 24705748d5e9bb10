/* smtp_milter: the MX listener's inbound filters. At connect, the DNS
   blocklists (dnsbl): the client's address, reversed (IPv4 octets, IPv6
   nibbles), looked up as an A record under each zone; a listed client gets
   554 5.7.1 naming the list instead of the greeting and the session ends,
   so nothing is stored. The configured milters are then talked to as the
   session goes: connect before the greeting, HELO, MAIL, each RCPT and
   DATA before smtpd's reply to that command (a refusal is the reply to
   that command: one refused recipient leaves the others), the header and
   body at the end of the message. Their verdict is honoured (reject with
   their reply text, tempfail, discard) and their header changes are
   applied on the worker before the commit. A quarantine request or a spam
   mark (X-Spam: Yes, X-Spam-Flag: YES, which rspamd's "add header" action
   adds) files the message as junk. Authenticated sessions and the
   submission listeners are never filtered. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dns.h"
#include "log.h"
#include "milter.h"
#include "milter_codec.h"
#include "worker.h"
#include "util.h"

#include "smtp_session.h"

#define DNSBL_MAX 8

/* What the message keeps for the milters (tx->milter). */
struct smtp_milter_tx {
	/* The end of message in flight: the message as the delivery holds it
	   (memory or a map it owns: store_delivery_map), for the
	   milters to read. */
	const char *map;
	/* The verdict, for the worker. */
	struct milter_result *res;
	char junk_why[256];
};

/* What the session keeps for the milters (s->milter). */
struct smtp_milter_sess {
	struct milter_session *ms;
	struct milter_msg msg;          /* what the stages read */
	char helo[256];
	char from[SMTP_PATH_MAX + 1];
	char rcpt[SMTP_PATH_MAX + 1];
	const char *rcptv[1];
	char queue_id[32];
	/* The command waiting for the verdict, run again when it passes. */
	enum milter_stage stage;
	smtp_milter_cmd_fn *fn;
	char *args;
	size_t len;
	bool pass;                      /* the re-run: the milters passed it */
	bool discard;                   /* a milter discards this message */
};

/* One resolver for the process, made at the first lookup. */
static struct dns_resolver *resolver;

static void stage_done(void *arg, struct milter_result *res);
static void milters_connect(struct smtp_session *s);

static bool
filtered(const struct smtp_session *s)
{
	return s->listener == SMTP_L_MX && !smtp_is_authenticated(s);
}

/* ---- DNS blocklists ---- */

struct dnsbl_check {
	struct smtp_session *s;
	size_t pending;
	char listed[256];       /* the first zone that lists the client */
	ev_tstamp start;        /* when the client connected */
	bool cut;               /* shutting down: no dnsbl_delay */
	ev_timer delay;         /* a listed client's wait (dnsbl_delay) */
};

/* "4.3.2.1.zone" or the 32 nibbles of an IPv6 address. -1 if addr is not
   numeric. Pure. */
static int
dnsbl_name(const char *addr, const char *zone, char *out, size_t size)
{
	unsigned char a[16];
	size_t o = 0;

	if (inet_pton(AF_INET, addr, a) == 1) {
		if (snprintf(out, size, "%u.%u.%u.%u.%s", a[3], a[2], a[1],
		    a[0], zone) >= (int)size)
			return -1;
		return 0;
	}
	if (inet_pton(AF_INET6, addr, a) != 1 || size < 64 + strlen(zone) + 1)
		return -1;
	for (int i = 15; i >= 0; i--) {
		static const char hex[] = "0123456789abcdef";
		out[o++] = hex[a[i] & 15];
		out[o++] = '.';
		out[o++] = hex[a[i] >> 4];
		out[o++] = '.';
	}
	if (snprintf(out + o, size - o, "%s", zone) >= (int)(size - o))
		return -1;
	return 0;
}

/* The 554 to a listed client, and the end of its session. */
static void
dnsbl_refuse(struct dnsbl_check *k)
{
	struct smtp_session *s = k->s;

	log_info("%s dnsbl listed=%s ip=%s result=refused",
	    conn_id(s->base.c), k->listed, conn_peer_addr(s->base.c));
	conn_printf(s->base.c, "554 5.7.1 Service unavailable; client "
	    "[%s] blocked using %s\r\n", conn_peer_addr(s->base.c),
	    k->listed);
	session_close(&s->base, "dnsbl");
	s->dnsbl = NULL;
	free(k);
	session_resume(&s->base);
}

static void
dnsbl_delay_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	dnsbl_refuse(w->data);
}

void
smtp_dnsbl_cut(struct smtp_session *s)
{
	struct dnsbl_check *k = s->dnsbl;

	if (k == NULL)
		return;
	if (!ev_is_active(&k->delay)) {
		k->cut = true;  /* lookups pending */
		return;
	}
	ev_timer_stop(s->base.d->loop, &k->delay);
	dnsbl_refuse(k);
}

/* A listed client is answered dnsbl_delay after it connected, as an MX
   that holds its greeting for a few seconds (postscreen's greet wait)
   would: a bot then spends that long per attempt, and the 554 never comes
   sooner than a greeting would. Clients that are not listed are greeted as
   soon as the lookups are done. */
static void
dnsbl_done(struct dnsbl_check *k)
{
	struct smtp_session *s = k->s;
	const struct config *cfg = s->base.d->cfg;

	if (k->listed[0] != '\0') {
		ev_tstamp left = cfg->dnsbl_delay -
		    (ev_now(s->base.d->loop) - k->start);
		if (left <= 0 || k->cut) {
			dnsbl_refuse(k);
			return;
		}
		log_info("%s dnsbl listed=%s ip=%s result=held secs=%.0f",
		    conn_id(s->base.c), k->listed, conn_peer_addr(s->base.c),
		    left);
		ev_timer_init(&k->delay, dnsbl_delay_cb, left, 0.);
		k->delay.data = k;
		ev_timer_start(s->base.d->loop, &k->delay);
		return;
	}
	s->dnsbl = NULL;
	free(k);
	if (s->milter != NULL) {
		milters_connect(s);
		return;
	}
	conn_printf(s->base.c, "220 %s ESMTP Postroom\r\n", cfg->hostname);
	session_resume(&s->base);
}

/* The per-query context: the check and its zone. */
struct dnsbl_query {
	struct dnsbl_check *k;
	char zone[256];
};

static void
dnsbl_query_answer(void *arg, const struct dns_answer *ans)
{
	struct dnsbl_query *q = arg;
	struct dnsbl_check *k = q->k;

	if (k->s == NULL) {
		/* The session went (the daemon stops) before the answers. */
		free(q);
		if (--k->pending == 0)
			free(k);
		return;
	}
	/* Listed: any A record (127.0.0.x by convention). Our own DNS
	   trouble never refuses anyone. */
	if (ans->status == DNS_OK && k->listed[0] == '\0')
		str_copy(k->listed, q->zone, sizeof(k->listed));
	else if (ans->status == DNS_TEMPFAIL || ans->status == DNS_BADANSWER)
		log_warnx("%s dnsbl zone=%s lookup=%s", conn_id(k->s->base.c),
		    q->zone, dns_status_str(ans->status));
	free(q);
	if (--k->pending == 0)
		dnsbl_done(k);
}

/* The session's milters at connect: the greeting waits for them. */
static void
milters_connect(struct smtp_session *s)
{
	struct smtp_milter_sess *m = s->milter;

	m->msg.hostname = s->base.d->cfg->hostname;
	m->msg.client_name = "unknown";
	m->msg.client_addr = conn_peer_addr(s->base.c);
	m->msg.client_v6 = strchr(m->msg.client_addr, ':') != NULL;
	m->msg.client_port = 0;
	m->msg.helo = m->helo;
	m->msg.from = m->from;
	m->msg.queue_id = m->queue_id;
	m->rcptv[0] = m->rcpt;
	m->stage = MILTER_CONNECT;
	milter_session_step(m->ms, MILTER_CONNECT, &m->msg, stage_done, s);
}

/* Whether the greeting waits for the DNSBL lookups. */
static bool
dnsbl_wanted(const struct smtp_session *s)
{
	const struct config *cfg = s->base.d->cfg;
	char err[256];

	if (s->listener != SMTP_L_MX || cfg->dnsbl == NULL)
		return false;
	if (resolver == NULL) {
		resolver = dns_resolver_new(s->base.d->loop, cfg->dns_servers,
		    0, 0, err, sizeof(err));
		if (resolver == NULL) {
			log_warnx("dnsbl: %s", err);
			return false;
		}
		dns_resolver_enable_cache(resolver);
	}
	return true;
}

bool
smtp_milter_connect(struct smtp_session *s)
{
	const struct config *cfg = s->base.d->cfg;
	struct dnsbl_check *k;
	const char *p;

	if (smtp_milter_wanted(s)) {
		s->milter = xcalloc(1, sizeof(*s->milter));
		s->milter->ms = milter_session_new(s->base.d->loop, cfg->milter,
		    cfg->milter_timeout, cfg->milter_fail_accept);
	}
	if (!dnsbl_wanted(s)) {
		if (s->milter == NULL)
			return false;
		session_suspend(&s->base);
		milters_connect(s);
		return true;
	}
	k = xcalloc(1, sizeof(*k));
	k->s = s;
	k->pending = 1;     /* held until every query went out */
	k->start = ev_now(s->base.d->loop);
	s->dnsbl = k;
	session_suspend(&s->base);
	p = cfg->dnsbl;
	while (*(p += strspn(p, " \t,")) != '\0') {
		size_t len = strcspn(p, " \t,");
		struct dnsbl_query *q = xcalloc(1, sizeof(*q));
		char name[DNS_NAME_SIZE];
		q->k = k;
		if (len < sizeof(q->zone))
			memcpy(q->zone, p, len);
		p += len;
		if (dnsbl_name(conn_peer_addr(s->base.c), q->zone, name,
		    sizeof(name)) < 0 || dns_query(resolver, name, DNS_T_A,
		    dnsbl_query_answer, q) < 0) {
			free(q);
			continue;
		}
		k->pending++;
	}
	/* The greeting waits for the answers: a listed client never sees a
	   220 (the lookups are the greeting delay). */
	if (--k->pending == 0)
		dnsbl_done(k);
	return true;
}

/* ---- milters ---- */

static struct smtp_milter_tx *
mtx_of(struct smtp_tx *tx)
{
	if (tx->milter == NULL)
		tx->milter = xcalloc(1, sizeof(*tx->milter));
	return tx->milter;
}

void
smtp_milter_tx_free(struct smtp_tx *tx)
{
	struct smtp_milter_tx *m = tx->milter;

	if (m == NULL)
		return;
	milter_result_free(m->res);
	free(m);
	tx->milter = NULL;
}

/* ---- the milters during the session ---- */

/* The milters' verdict on the connection: the greeting, or a refusal
   with their text (as 554 or 421: the codes a greeting may carry). */
static void
connect_verdict(struct smtp_session *s, const struct milter_result *res)
{
	const char *text = strlen(res->reply) > 4 ? res->reply + 4 : "";

	switch (res->action) {
	case MILTER_REJECT:
	case MILTER_TEMPFAIL:
		log_info("%s milter=%s result=%s at=connect reply=\"%s\"",
		    conn_id(s->base.c), res->who, res->action == MILTER_REJECT ?
		    "refused" : "deferred", res->reply);
		conn_printf(s->base.c, "%s %s\r\n", res->action ==
		    MILTER_REJECT ? "554" : "421", text);
		session_close(&s->base, "milter");
		break;
	default:
		conn_printf(s->base.c, "220 %s ESMTP Postroom\r\n",
		    s->base.d->cfg->hostname);
		break;
	}
}

/* The command the milters passed: its handler runs again, this time to
   the end (smtp_milter_gate says go on). */
static void
rerun(struct smtp_session *s)
{
	struct smtp_milter_sess *m = s->milter;
	enum cmd_result r;

	m->pass = true;
	r = m->fn(s, m->args, m->len);
	m->pass = false;
	free(m->args);
	m->args = NULL;
	switch (r) {
	case CMD_SUSPEND:
		return;
	case CMD_CLOSE:
		session_close(&s->base, "closed");
		break;
	case CMD_DONE:
		break;
	}
	session_resume(&s->base);
}

static const char *
stage_name(enum milter_stage st)
{
	static const char *const names[] = { "connect", "helo", "mail",
	    "rcpt", "data", "eom" };

	return names[st];
}

static void
stage_done(void *arg, struct milter_result *res)
{
	struct smtp_session *s = arg;
	struct smtp_milter_sess *m = s->milter;

	if (m->stage == MILTER_CONNECT) {
		connect_verdict(s, res);
		milter_result_free(res);
		session_resume(&s->base);
		return;
	}
	switch (res->action) {
	case MILTER_DISCARD:
		/* The whole message, whichever command it came at. */
		if (m->stage >= MILTER_MAIL) {
			log_info("%s milter=%s discards the message at=%s",
			    conn_id(s->base.c), res->who, stage_name(m->stage));
			m->discard = true;
		}
		/* fallthrough */
	case MILTER_CONTINUE:
		milter_result_free(res);
		rerun(s);
		return;
	case MILTER_REJECT:
	case MILTER_TEMPFAIL:
		log_info("%s milter=%s result=%s at=%s reply=\"%s\"",
		    conn_id(s->base.c), res->who, res->action == MILTER_REJECT ?
		    "refused" : "deferred", stage_name(m->stage), res->reply);
		conn_printf(s->base.c, "%s\r\n", res->reply);
		if (session_count_error(&s->base, SMTP_ERROR_MAX_SESSION))
			smtp_close_421(s, "4.7.0",
			    "Too many errors, closing connection");
		break;
	}
	milter_result_free(res);
	free(m->args);
	m->args = NULL;
	session_resume(&s->base);
}

bool
smtp_milter_gate(struct smtp_session *s, enum milter_stage st,
    const char *value, smtp_milter_cmd_fn *fn, const char *args, size_t len)
{
	struct smtp_milter_sess *m = s->milter;

	if (m == NULL || !filtered(s))
		return false;
	if (m->pass) {
		m->pass = false;
		return false;
	}
	switch (st) {
	case MILTER_HELO:
		str_copy(m->helo, value, sizeof(m->helo));
		m->msg.tls_version = conn_tls_version(s->base.c);
		m->msg.tls_cipher = conn_tls_cipher(s->base.c);
		break;
	case MILTER_MAIL:
		str_copy(m->from, value, sizeof(m->from));
		/* The id cmd_mail gives the transaction. */
		snprintf(m->queue_id, sizeof(m->queue_id), "%.11s%05X",
		    conn_id(s->base.c), s->messages & 0xfffff);
		m->discard = false;
		break;
	case MILTER_RCPT:
		str_copy(m->rcpt, value, sizeof(m->rcpt));
		m->msg.rcpts = m->rcptv;
		m->msg.nrcpts = 1;
		break;
	default:
		break;
	}
	m->stage = st;
	m->fn = fn;
	m->args = xmalloc(len + 1);
	if (len > 0)
		memcpy(m->args, args, len);
	m->args[len] = '\0';
	m->len = len;
	session_suspend(&s->base);
	milter_session_step(m->ms, st, &m->msg, stage_done, s);
	return true;
}

void
smtp_milter_session_free(struct smtp_session *s)
{
	struct smtp_milter_sess *m = s->milter;

	/* A session freed at exit while a listed client waits; while lookups
	   are pending their answers (run when the resolver is freed) still
	   hold the check: it is left to them, without its session. */
	if (s->dnsbl != NULL) {
		if (s->dnsbl->pending == 0) {
			ev_timer_stop(s->base.d->loop, &s->dnsbl->delay);
			free(s->dnsbl);
		} else {
			s->dnsbl->s = NULL;
		}
		s->dnsbl = NULL;
	}
	if (m == NULL)
		return;
	milter_session_free(&m->ms);
	free(m->args);
	free(m);
	s->milter = NULL;
}

/* Where the header ends in p[0..len): the offset of the body (after the
   empty line), and the header's length (without the empty line). */
static void
split_message(const char *p, size_t len, size_t *hlen, size_t *body)
{
	if (len >= 2 && p[0] == '\r' && p[1] == '\n') {
		*hlen = 0;
		*body = 2;
		return;
	}
	for (size_t i = 0; i + 3 < len; i++) {
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' &&
		    p[i + 3] == '\n') {
			*hlen = i + 2;
			*body = i + 4;
			return;
		}
	}
	*hlen = len;
	*body = len;
}

/* Whether the header block carries a spam mark. */
static const char *
spam_mark(const char *h, size_t len)
{
	static const struct {
		const char *field, *value;
	} marks[] = {
		{ "X-Spam:", "yes" },
		{ "X-Spam-Flag:", "yes" },
	};
	size_t i = 0;

	while (i < len) {
		const char *nl = memchr(h + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - h) : len;
		for (size_t k = 0; k < ARRAY_SIZE(marks); k++) {
			size_t fl = strlen(marks[k].field), j;
			if (end - i < fl || strncasecmp(h + i, marks[k].field,
			    fl) != 0)
				continue;
			j = i + fl;
			while (j < end && (h[j] == ' ' || h[j] == '\t'))
				j++;
			if (end - j >= 3 && strncasecmp(h + j, "yes", 3) == 0 &&
			    (end - j == 3 || h[j + 3] == '\r' || h[j + 3] == ' ' ||
			    h[j + 3] == ';'))
				return marks[k].field;
		}
		i = end + 1;
	}
	return NULL;
}

static void
apply_work(void *arg)
{
	struct smtp_session *s = arg;

	smtp_milter_apply(s->tx);
	smtp_data_commit_work(s->tx);
}

static void
apply_done(void *arg)
{
	struct smtp_session *s = arg;

	switch (smtp_data_commit_done(&s->base, s->tx)) {
	case CMD_SUSPEND:
		return;
	case CMD_CLOSE:
		session_close(&s->base, "closed");
		break;
	case CMD_DONE:
		break;
	}
	session_resume(&s->base);
}

static void
milter_done(void *arg, struct milter_result *res)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;
	struct smtp_milter_tx *m = tx->milter;
	const char *text;

	m->map = NULL;
	m->res = res;
	switch (res->action) {
	case MILTER_CONTINUE:
		if (res->quarantine)
			snprintf(m->junk_why, sizeof(m->junk_why),
			    "milter quarantine: %.200s", res->quarantine_reason);
		/* The header changes and the commit run on the worker. */
		worker_submit(s->base.d->workers, apply_work, apply_done, s);
		return;
	case MILTER_DISCARD:
		log_info("%s message id=%s result=discarded milter=%s",
		    conn_id(s->base.c), tx->id, res->who);
		smtp_tx_reset(s);
		smtp_reply(s, 250, "2.0.0", "Ok: queued as %s (discarded)",
		    "-");
		break;
	case MILTER_REJECT:
	case MILTER_TEMPFAIL:
		/* "550 5.7.1 text" or "550 text": code, optional enhanced
		   code, text. */
		log_info("%s message id=%s result=%s milter=%s reply=\"%s\"",
		    conn_id(s->base.c), tx->id, res->action == MILTER_REJECT ?
		    "refused" : "deferred", res->who, res->reply);
		text = res->reply;
		conn_printf(s->base.c, "%s\r\n", text);
		if (session_count_error(&s->base, SMTP_ERROR_MAX_SESSION))
			smtp_close_421(s, "4.7.0",
			    "Too many errors, closing connection");
		smtp_tx_reset(s);
		break;
	}
	session_resume(&s->base);
}

bool
smtp_milter_wanted(const struct smtp_session *s)
{
	return filtered(s) && s->base.d->cfg->milter != NULL;
}

void
smtp_milter_gate_work(void *arg)
{
	/* Nothing: the hop to the worker and back is how the checks hand
	   the suspended session to smtp_milter_gate_done. */
	(void)arg;
}

enum cmd_result
smtp_milter_gate_done(struct session *base, void *arg)
{
	struct smtp_session *s = (struct smtp_session *)base;

	(void)arg;
	switch (smtp_milter_eom(s)) {
	case 1:
		return CMD_SUSPEND;     /* milter_done resumes */
	case 2:
		return CMD_DONE;        /* answered */
	}
	/* The milters are down and milter_failure = accept: commit. */
	worker_submit(s->base.d->workers, apply_work, apply_done, s);
	return CMD_SUSPEND;
}

int
smtp_milter_eom(struct smtp_session *s)
{
	const struct config *cfg = s->base.d->cfg;
	struct smtp_tx *tx = s->tx;
	struct smtp_milter_sess *ms;
	struct smtp_milter_tx *m;
	size_t size, hlen, body;
	const char *p;

	if (!filtered(s) || s->milter == NULL)
		return 0;
	if (s->milter->discard) {
		log_info("%s message id=%s result=discarded", conn_id(s->base.c),
		    tx->id);
		smtp_tx_reset(s);
		smtp_reply(s, 250, "2.0.0", "Ok: queued as %s (discarded)",
		    "-");
		return 2;
	}
	m = mtx_of(tx);
	if (store_delivery_map(tx->d, &m->map, &size) != STORE_OK ||
	    size <= tx->trace_len) {
		m->map = NULL;
		/* As if the milter were down. */
		log_warnx("%s milter: cannot read the message",
		    conn_id(s->base.c));
		if (cfg->milter_fail_accept)
			return 0;
		smtp_tx_reset(s);
		smtp_reply(s, 451, "4.3.0", "Temporary local problem, try "
		    "again later");
		return 2;
	}
	p = m->map + tx->trace_len;
	split_message(p, size - tx->trace_len, &hlen, &body);
	ms = s->milter;
	str_copy(ms->queue_id, tx->id, sizeof(ms->queue_id));
	ms->msg.nrcpts = 0;
	ms->msg.header = p;
	ms->msg.header_len = hlen;
	ms->msg.body = p + body;
	ms->msg.body_len = size - tx->trace_len - body;
	ms->stage = MILTER_EOM;
	/* The session is suspended already (smtp_milter_gate_done). */
	milter_session_step(ms->ms, MILTER_EOM, &ms->msg, milter_done, s);
	return 1;
}

/* ---- applying header changes (on the worker) ---- */

/* Trace lines and the new header in place of the old ones (the body is
   not written again); on failure the message keeps its old header. */
static void
rewrite_delivery(struct smtp_tx *tx, const char *map, size_t hlen,
    const struct buf *out)
{
	struct buf head;
	enum store_err e;

	buf_init(&head);
	buf_append(&head, map, tx->trace_len);
	buf_append(&head, out->data, out->len);
	if ((e = store_delivery_replace_head(tx->d, tx->trace_len + hlen,
	    head.data, head.len)) != STORE_OK)
		log_warnx("milter: header changes lost: %s",
		    store_err_str(e));
	buf_free(&head);
}

void
smtp_milter_apply(struct smtp_tx *tx)
{
	struct smtp_milter_tx *m = tx->milter;
	size_t hlen, body;
	struct buf out;
	size_t size;
	const char *map, *h, *why;

	if (m == NULL || m->res == NULL)
		return;
	if (store_delivery_map(tx->d, &map, &size) != STORE_OK ||
	    size == 0 || size < tx->trace_len)
		return;
	h = map + tx->trace_len;
	split_message(h, size - tx->trace_len, &hlen, &body);
	buf_init(&out);
	milter_header_edit(h, hlen, m->res->mods, m->res->nmods, &out);
	why = spam_mark(out.data != NULL ? out.data : "", out.len);
	if (why != NULL && m->junk_why[0] == '\0')
		snprintf(m->junk_why, sizeof(m->junk_why), "spam mark %s Yes",
		    why);
	if (m->res->nmods > 0)
		rewrite_delivery(tx, map, hlen, &out);
	buf_free(&out);
	if (m->junk_why[0] != '\0')
		smtp_tx_set_junk(tx, m->junk_why);
}
