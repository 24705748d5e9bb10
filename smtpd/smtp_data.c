/* smtp_data: message content for smtpd. DATA is dot-unstuffed
   (smtp_parse.c) and BDAT chunks are taken as they are; both are checked
   for size, NUL, bare CR/LF and overlong lines and streamed into a store
   delivery behind a Return-Path and a Received header. The commit (fsync,
   LMDB, group commit) runs on the worker pool; the 250 is sent only after
   it returned. Nothing of a refused or interrupted message is kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

#include "smtp_session.h"

#define DATA_SLICE 16384    /* bytes unstuffed per step */

static const char *
with_protocol(const struct smtp_session *s)
{
	bool tls = conn_is_tls(s->base.c);

	/* RFC 3848 and RFC 6531 4.3. */
	if (!(s->flags & SMTP_F_ESMTP))
		return tls ? "SMTPS" : "SMTP";
	if (s->tx->smtputf8)
		return smtp_is_authenticated(s) ? (tls ? "UTF8SMTPSA" :
		    "UTF8SMTPA") : (tls ? "UTF8SMTPS" : "UTF8SMTP");
	return smtp_is_authenticated(s) ? (tls ? "ESMTPSA" : "ESMTPA") :
	    (tls ? "ESMTPS" : "ESMTP");
}

static void
trace_headers(struct smtp_session *s, struct buf *b)
{
	const char *ip = conn_peer_addr(s->base.c);
	char date[64];

	date_rfc5322(time(NULL), date, sizeof(date));
	buf_printf(b, "Return-Path: <%s>\r\n", s->tx->from);
	buf_printf(b, "Received: from %s (%s%s%s)\r\n", s->helo,
	    strchr(ip, ':') != NULL ? "[IPv6:" : "[", ip, "]");
	if (conn_is_tls(s->base.c))
		buf_printf(b, "\t(using %s with cipher %s)\r\n",
		    conn_tls_version(s->base.c), conn_tls_cipher(s->base.c));
	buf_printf(b, "\tby %s (Postroom) with %s id %s\r\n",
	    s->base.d->cfg->hostname, with_protocol(s), s->tx->id);
	/* "for" only names a single recipient: with several it would tell
	   each about the others (RFC 5321 7.2). */
	if (s->tx->nrcpts == 1)
		buf_printf(b, "\tfor <%s>; %s\r\n", s->tx->first_rcpt, date);
	else
		buf_printf(b, "\t; %s\r\n", date);
}

int
smtp_data_begin(struct smtp_session *s, bool bdat)
{
	struct smtp_tx *tx = s->tx;
	struct buf b;
	enum store_err e;

	e = store_delivery_new(s->base.d->store, &tx->d);
	if (e != STORE_OK) {
		smtp_reply_store_err(s, e, "data");
		return -1;
	}
	buf_init(&b);
	trace_headers(s, &b);
	e = store_delivery_write(tx->d, b.data, b.len);
	tx->trace_len = b.len;
	buf_free(&b);
	if (e != STORE_OK) {
		store_delivery_free(&tx->d);
		smtp_reply_store_err(s, e, "data");
		return -1;
	}
	tx->bdat = bdat;
	tx->size = 0;
	tx->hdr_len = tx->hdr_line = 0;
	tx->hdr_done = tx->hdr_too_big = false;
	smtp_dot_init(&tx->dot);
	smtp_content_init(&tx->content);
	return 0;
}

/* Measures the header section (up to the first empty line) as the bytes
   arrive. The checks, the milters and DKIM each work on the whole header,
   so an oversized one must be known before its bytes reach them: a slice
   that takes it past max is not passed on at all. */
static void
header_count(struct smtp_tx *tx, const char *p, size_t n, uint64_t max)
{
	const char *lf;
	size_t k;

	while (n > 0 && !tx->hdr_done) {
		lf = memchr(p, '\n', n);
		k = lf != NULL ? (size_t)(lf - p) + 1 : n;
		if (tx->hdr_line == 0)
			tx->hdr_first = p[0];
		tx->hdr_line += k;
		if (lf != NULL) {
			if (tx->hdr_line == 1 ||
			    (tx->hdr_line == 2 && tx->hdr_first == '\r'))
				tx->hdr_done = true;
			else
				tx->hdr_len += tx->hdr_line;
			tx->hdr_line = 0;
		}
		p += k;
		n -= k;
	}
	/* A lone CR may still become the empty line: not counted yet. */
	k = tx->hdr_line == 1 && tx->hdr_first == '\r' ? 0 : tx->hdr_line;
	if (tx->hdr_len + k > max)
		tx->hdr_too_big = true;
}

/* Accounts for content bytes and writes them unless the message is
   already lost (too big, header too big, bad content, write error). */
static void
data_put(struct smtp_session *s, const char *p, size_t n, unsigned flags)
{
	struct smtp_tx *tx = s->tx;

	tx->size += n;
	if (tx->size > s->base.d->cfg->max_message_size)
		tx->too_big = true;
	if (!tx->hdr_too_big)
		header_count(tx, p, n, s->base.d->cfg->max_header_size);
	if (tx->too_big || tx->hdr_too_big || tx->write_failed ||
	    flags != 0 || n == 0)
		return;
	smtp_checks_data(s, p, n);
	if (store_delivery_write(tx->d, p, n) != STORE_OK)
		tx->write_failed = true;
}

void
smtp_data_commit_work(void *arg)
{
	smtp_submit_work(arg);
}

enum cmd_result
smtp_data_commit_done(struct session *base, void *arg)
{
	struct smtp_session *s = (struct smtp_session *)base;
	struct smtp_tx *tx = s->tx;
	char esc[LOG_ESCAPE_SIZE];

	log_escape(tx->from, strlen(tx->from), esc, sizeof(esc));
	if (tx->prep == SMTP_PREP_LOOP) {
		log_info("%s message id=%s from=<%s> result=refused "
		    "reason=\"more than %d Received: fields\"",
		    conn_id(s->base.c), tx->id, esc, SMTP_HOPS_MAX);
		smtp_reply(s, 554, "5.4.6", "Too many hops: more than %d "
		    "Received: fields (mail loop?)", SMTP_HOPS_MAX);
	} else if (tx->prep == SMTP_PREP_NOSPACE) {
		log_warnx("%s message id=%s result=deferred reason=\"queue "
		    "disk nearly full\"", conn_id(s->base.c), tx->id);
		smtp_reply(s, 452, "4.3.1", "Insufficient system storage, "
		    "try again later");
	} else if (tx->prep == SMTP_PREP_DMARC_REJECT) {
		log_info("%s message id=%s from=<%s> result=refused "
		    "reason=\"DMARC policy of %s\"", conn_id(s->base.c), tx->id,
		    esc, smtp_checks_dmarc_domain(tx));
		smtp_reply(s, 550, "5.7.1", "Message refused by the DMARC "
		    "policy of %s", smtp_checks_dmarc_domain(tx));
	} else if (tx->commit_err == STORE_OK) {
		char qid[24] = "";
		s->messages++;
		if (tx->queue_id != 0) {
			str_copy(qid, " queue=", sizeof(qid));
			store_queue_id_str(tx->queue_id, qid + 7,
			    sizeof(qid) - 7);
		}
		log_info("%s message id=%s from=<%s> rcpts=%u size=%llu "
		    "local=%zu remote=%zu%s dkim=%u%s%s%s%s%s result=ok",
		    conn_id(s->base.c), tx->id, esc, tx->nrcpts,
		    (unsigned long long)tx->size, tx->nusers, tx->nremote, qid,
		    tx->dkim_signed, tx->junk && !tx->fix_headers ?
		    " junk=\"" : "", tx->junk && !tx->fix_headers ?
		    tx->junk_why : "", tx->junk && !tx->fix_headers ? "\"" : "",
		    smtp_checks_spf_str(tx) != NULL ? " spf=" : "",
		    smtp_checks_spf_str(tx) != NULL ? smtp_checks_spf_str(tx) :
		    "");
		smtp_reply(s, 250, "2.0.0", "Ok: queued as %s", tx->id);
	} else {
		smtp_reply_store_err(s, tx->commit_err, "commit");
	}
	(void)arg;
	smtp_tx_free(&s->tx);
	smtp_set_state(s, SMTP_ST_READY);
	return CMD_DONE;
}

/* The envelope sender of the queued copy: the user's own address for a
   submission; for mail forwarded through an alias (or a bounce routed
   back through SRS) the sender rewritten by SRS into our domain, so the
   destination's SPF check passes; <> and our own domains stay. */
static void
queue_sender(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	const struct smtp_priv *priv = s->base.d->priv;
	const char *at = strrchr(tx->from, '@');

	str_copy(tx->queue_sender, tx->from, sizeof(tx->queue_sender));
	if (tx->nremote == 0 || smtp_is_authenticated(s) || at == NULL ||
	    tx->srs_domain[0] == '\0' || priv == NULL ||
	    store_domain_is_local(s->base.d->store, at + 1))
		return;
	if (srs_forward(priv->srs_key, tx->from, tx->srs_domain,
	    (int64_t)time(NULL), tx->queue_sender,
	    sizeof(tx->queue_sender)) < 0)
		str_copy(tx->queue_sender, tx->from, sizeof(tx->queue_sender));
}

/* The end of the content: refuse it, or make it durable and then 250. */
static void
data_end(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	unsigned flags = tx->bdat ? tx->content.flags : tx->dot.content.flags;
	const char *why = NULL;
	int code = 554;
	const char *ecode = "5.6.0";

	if (tx->too_big) {
		code = 552;
		ecode = "5.3.4";
		why = "Message size exceeds fixed maximum message size";
	} else if (tx->hdr_too_big) {
		code = 552;
		ecode = "5.3.4";
		why = "Message header too large";
	} else if (flags & SMTP_CONTENT_NUL) {
		why = "Message contains NUL bytes";
	} else if (flags & (SMTP_CONTENT_BARE_LF | SMTP_CONTENT_BARE_CR)) {
		why = "Message contains a bare CR or LF; lines must end with "
		    "CRLF (RFC 5321 2.3.8)";
	} else if (flags & SMTP_CONTENT_LONG_LINE) {
		why = "Message has a line longer than 998 octets "
		    "(RFC 5321 4.5.3.1.6)";
	} else if (tx->write_failed) {
		code = 451;
		ecode = "4.3.0";
		why = "Temporary local problem, try again later";
	}
	if (why != NULL) {
		log_info("%s message id=%s result=refused reason=\"%s\"",
		    conn_id(s->base.c), tx->id, why);
		smtp_tx_reset(s);
		smtp_reply(s, code, ecode, "%s", why);
		return;
	}
	/* What the worker needs (it touches nothing but tx). */
	tx->cfg = s->base.d->cfg;
	tx->store = s->base.d->store;
	tx->fix_headers = smtp_is_authenticated(s);
	str_copy(tx->auth_user, s->auth_user, sizeof(tx->auth_user));
	queue_sender(s);
	/* The checks first (SPF may still be in flight), then the milters,
	   then the commit: a milter sees the message the checks passed. */
	if (smtp_milter_wanted(s))
		smtp_checks_submit(s, smtp_milter_gate_work,
		    smtp_milter_gate_done);
	else
		smtp_checks_submit(s, smtp_data_commit_work,
		    smtp_data_commit_done);
}

void
smtp_data_input(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	const char *p;
	size_t n, o, used;
	int done;

	if (tx->scratch == NULL) {
		tx->scratch_cap = DATA_SLICE + 1;
		tx->scratch = xmalloc(tx->scratch_cap);
	}
	while ((n = conn_peek(s->base.c, &p)) > 0) {
		if (n > DATA_SLICE)
			n = DATA_SLICE;
		done = smtp_dot_feed(&tx->dot, p, n, tx->scratch, &o, &used);
		data_put(s, tx->scratch, o, tx->dot.content.flags);
		conn_consume(s->base.c, used);
		if (done) {
			data_end(s);
			return;
		}
	}
}

void
smtp_bdat_chunk(struct smtp_session *s, uint64_t size, bool last)
{
	s->tx->chunk_left = size;
	s->tx->chunk_last = last;
	smtp_set_state(s, SMTP_ST_BDAT);
	s->chunk_input = true;
	smtp_bdat_input(s);
}

static void
chunk_end(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	uint64_t size;

	s->chunk_input = false;
	if (tx->chunk_last) {
		smtp_content_finish(&tx->content);
		data_end(s);
		return;
	}
	if (tx->too_big || tx->hdr_too_big) {
		/* Refused now; the following chunks are dropped with 503. */
		const char *why = tx->too_big ? "Message size exceeds fixed "
		    "maximum message size" : "Message header too large";
		log_info("%s message id=%s result=refused reason=\"%s\"",
		    conn_id(s->base.c), tx->id, why);
		smtp_tx_reset(s);
		smtp_reply(s, 552, "5.3.4", "%s", why);
		return;
	}
	size = tx->size;
	smtp_reply(s, 250, "2.0.0", "%llu octets received",
	    (unsigned long long)size);
}

void
smtp_bdat_input(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	const char *p;
	size_t n;

	if (s->discard_left > 0 || tx == NULL || tx->d == NULL) {
		while (s->discard_left > 0 && (n = conn_peek(s->base.c, &p)) > 0) {
			if (n > s->discard_left)
				n = (size_t)s->discard_left;
			conn_consume(s->base.c, n);
			s->discard_left -= n;
		}
		if (s->discard_left > 0)
			return;
		/* The phase did not change while the bytes were dropped. */
		s->chunk_input = false;
		if (s->discard_reply != NULL) {
			int code = atoi(s->discard_reply);
			smtp_reply(s, code, NULL, "%s", s->discard_reply + 4);
		}
		s->discard_reply = NULL;
		return;
	}
	while (tx->chunk_left > 0 && (n = conn_peek(s->base.c, &p)) > 0) {
		if (n > tx->chunk_left)
			n = (size_t)tx->chunk_left;
		smtp_content_feed(&tx->content, p, n);
		data_put(s, p, n, tx->content.flags);
		conn_consume(s->base.c, n);
		tx->chunk_left -= n;
	}
	if (tx->chunk_left == 0)
		chunk_end(s);
}
