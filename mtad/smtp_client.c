/* smtp_client: one delivery attempt of one message to up to 50 recipients,
   over a list of addresses tried in order (MX preference, then each
   address). A small client connection of its own on libev + OpenSSL:
   common/conn is built around accepted server connections (a listener,
   server-side TLS context, session callbacks), while this side connects,
   verifies certificates and switches TLS on as a client. Every reply goes
   through the pure smtp_reply parser; every wait has outbound_timeout.
   Results are handed to the engine as soon as the remote answers. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "log.h"
#include "mime7.h"
#include "mtad.h"
#include "smtp_reply.h"
#include "util.h"

#define READ_CHUNK      16384
#define BODY_CHUNK      65536   /* body bytes queued per write round */
#define OUT_LOW_WATER   32768

enum cst {
	CS_CONNECT,
	CS_TLS_IMPLICIT,
	CS_GREETING,
	CS_EHLO,
	CS_HELO,
	CS_STARTTLS,
	CS_TLS,
	CS_AUTH,                    /* waiting for 235 */
	CS_AUTH_LOGIN1,             /* waiting for the username prompt */
	CS_AUTH_LOGIN2,             /* waiting for the password prompt */
	CS_TXN,
	CS_BODY,
	CS_DOT,
	CS_QUIT,
	CS_IDLE,                    /* parked between transactions */
	CS_RSET,                    /* reused: waiting for the RSET reply */
};

/* Expected replies in a transaction: MAIL, RCPT k, DATA. */
#define EXP_MAIL  (-1)
#define EXP_DATA  (-2)

struct smtp_job {
	struct mtad *m;
	const struct job_msg *msg;
	struct job_rcpt *rcpts;
	size_t n;
	struct smtp_target targets[MTAD_MAX_TARGETS];
	size_t nt, ti;
	enum job_tls tls;
	char qid[24];
	const struct smtp_job_ops *ops;
	void *arg;

	/* the connection to targets[ti] */
	int fd;
	ev_io io;
	ev_timer timer;
	ev_idle kick;               /* first step, outside smtp_job_start */
	SSL *ssl;
	bool tls_on, no_tls;        /* no_tls: plaintext retry of this host */
	bool want_write_for_read;
	enum cst st;
	struct buf in, out;
	struct smtp_reply_parser rp;
	struct smtp_ehlo ehlo;
	char remote[STORE_QUEUE_REMOTE_MAX + 1];
	char tls_ver[32];

	/* the transaction */
	const char *body;           /* msg->data, or conv.data (7-bit form) */
	size_t body_len;
	struct buf conv;
	int exp[MTAD_MAX_RCPTS_PER_TXN + 2];
	size_t nexp, nexp_done, ncmds, ncmds_sent;
	int cmds[MTAD_MAX_RCPTS_PER_TXN + 2];
	bool pipelining;
	size_t body_pos;
	bool body_bol;
	bool dot_sent;
	bool any_accepted;
	bool reached_txn;           /* some host got as far as MAIL */
	/* Hosts given up on: those that refused us outright (5xx greeting,
	   or 5xx to both EHLO and HELO) and all the others. Only when every
	   host refused outright do the recipients fail; anything else may
	   heal and defers. */
	bool refused_now;           /* the host being left refused outright */
	unsigned nrefused, nother;
	char refused_err[900];
	char refused_status[16];

	char last_err[900];
	char last_status[16];
	bool finished;
	unsigned ntxn;              /* transactions over this connection */
};

static void job_step_io(struct smtp_job *j);
static void done_cb(struct ev_loop *loop, ev_idle *w, int revents);

static void
wipe_buf(struct buf *b)
{
	if (b->data != NULL)
		sodium_memzero(b->data, b->cap);
	buf_free(b);
}
static void next_target(struct smtp_job *j, const char *why,
    const char *status);
static void conn_close(struct smtp_job *j);

/* ---- results ---- */

static size_t
remaining(const struct smtp_job *j)
{
	size_t k = 0;

	for (size_t i = 0; i < j->n; i++)
		if (!j->rcpts[i].done)
			k++;
	return k;
}

static void
report(struct smtp_job *j, struct job_rcpt *r, enum store_queue_state state,
    const char *status, const char *reply, bool relayed)
{
	if (r->done)
		return;
	r->done = true;
	j->ops->rcpt_result(j->arg, r, state, status, reply,
	    j->remote[0] != '\0' ? j->remote : NULL,
	    j->tls_ver[0] != '\0' ? j->tls_ver : NULL, relayed);
}

static void
report_rest(struct smtp_job *j, enum store_queue_state state,
    const char *status, const char *reply)
{
	for (size_t i = 0; i < j->n; i++)
		report(j, &j->rcpts[i], state, status, reply, false);
}

/* Ends the attempt: the connection is closed now; done() and the free come
   on the next loop iteration, so callers up the stack may still look at
   j->finished. */
static void
finish(struct smtp_job *j)
{
	if (j->finished)
		return;
	j->finished = true;
	conn_close(j);
	ev_idle_stop(j->m->loop, &j->kick);
	ev_idle_init(&j->kick, done_cb);
	j->kick.data = j;
	ev_idle_start(j->m->loop, &j->kick);
}

static void
job_release(struct smtp_job *j)
{
	ev_idle_stop(j->m->loop, &j->kick);
	buf_free(&j->in);
	buf_free(&j->conv);
	wipe_buf(&j->out);
	free(j);
}

static void
job_free(struct smtp_job *j)
{
	ev_idle_stop(j->m->loop, &j->kick);
	j->ops->done(j->arg, j, !j->reached_txn, false);
	job_release(j);
}

static void
done_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	job_free(w->data);
}

static void
parked_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct smtp_job *j = w->data;

	ev_idle_stop(loop, w);
	j->ops->done(j->arg, j, false, true);
}

/* The transaction is over and the session is good: the connection waits,
   unwatched, for the engine's next message to this destination. A remote
   that closes it meanwhile is found out at the RSET. */
static void
park(struct smtp_job *j)
{
	j->st = CS_IDLE;
	ev_io_stop(j->m->loop, &j->io);
	ev_timer_stop(j->m->loop, &j->timer);
	ev_idle_stop(j->m->loop, &j->kick);
	ev_idle_init(&j->kick, parked_cb);
	j->kick.data = j;
	ev_idle_start(j->m->loop, &j->kick);
}

/* The status class of a reply: its enhanced code, or one made from the
   basic code. */
static const char *
reply_status(const struct smtp_reply *r, char *buf, size_t size)
{
	if (r->enhanced[0] != '\0')
		return r->enhanced;
	snprintf(buf, size, "%d.0.0", r->code / 100);
	return buf;
}

/* ---- the connection ---- */

static void
conn_close(struct smtp_job *j)
{
	ev_io_stop(j->m->loop, &j->io);
	ev_timer_stop(j->m->loop, &j->timer);
	if (j->ssl != NULL) {
		SSL_free(j->ssl);
		j->ssl = NULL;
	}
	if (j->fd >= 0) {
		close(j->fd);
		j->fd = -1;
		j->m->nconns--;
	}
	j->tls_on = false;
	buf_reset(&j->in);
	buf_reset(&j->out);
	smtp_reply_parser_init(&j->rp);
}

static void
touch_timer(struct smtp_job *j)
{
	j->timer.repeat = j->m->cfg->outbound_timeout > 0 ?
	    j->m->cfg->outbound_timeout : 300;
	ev_timer_again(j->m->loop, &j->timer);
}

static void
set_events(struct smtp_job *j, int ev)
{
	if (j->fd < 0)
		return;
	if (ev_is_active(&j->io) && j->io.events == ev)
		return;
	ev_io_stop(j->m->loop, &j->io);
	ev_io_set(&j->io, j->fd, ev);
	ev_io_start(j->m->loop, &j->io);
}

static void
put_cmd(struct smtp_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put_cmd(struct smtp_job *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&j->out, fmt, ap);
	va_end(ap);
	buf_puts(&j->out, "\r\n");
}

static void
tls_error(char *out, size_t size)
{
	unsigned long e = ERR_peek_last_error();

	if (e != 0)
		ERR_error_string_n(e, out, size);
	else
		snprintf(out, size, "%s", errno != 0 ? strerror(errno) :
		    "connection closed");
	ERR_clear_error();
}

/* Writes what j->out holds. 0 ok (maybe partially), -1 broken. */
static int
flush_out(struct smtp_job *j)
{
	while (j->out.len > 0) {
		ssize_t w;

		if (j->ssl != NULL && j->tls_on) {
			int k;

			ERR_clear_error();
			k = SSL_write(j->ssl, j->out.data, (int)(j->out.len >
			    1 << 20 ? 1 << 20 : j->out.len));
			if (k <= 0) {
				int e = SSL_get_error(j->ssl, k);

				if (e == SSL_ERROR_WANT_WRITE)
					return 0;
				if (e == SSL_ERROR_WANT_READ) {
					j->want_write_for_read = true;
					return 0;
				}
				snprintf(j->last_err, sizeof(j->last_err),
				    "TLS write error");
				return -1;
			}
			w = k;
		} else {
			w = send(j->fd, j->out.data, j->out.len, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return 0;
				snprintf(j->last_err, sizeof(j->last_err),
				    "write to %s: %s", j->remote,
				    strerror(errno));
				return -1;
			}
		}
		buf_consume(&j->out, (size_t)w);
		touch_timer(j);
	}
	return 0;
}

/* Reads what is there into j->in. 1 got bytes, 0 nothing yet, -1 closed
   or broken. */
static int
fill_in(struct smtp_job *j)
{
	char tmp[READ_CHUNK];
	ssize_t r;

	if (j->ssl != NULL && j->tls_on) {
		int k;

		ERR_clear_error();
		k = SSL_read(j->ssl, tmp, sizeof(tmp));
		if (k <= 0) {
			int e = SSL_get_error(j->ssl, k);

			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0;
			snprintf(j->last_err, sizeof(j->last_err),
			    "lost connection with %s", j->remote);
			return -1;
		}
		r = k;
	} else {
		r = recv(j->fd, tmp, sizeof(tmp), 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (r <= 0) {
			snprintf(j->last_err, sizeof(j->last_err),
			    "lost connection with %s%s%s", j->remote,
			    r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
			return -1;
		}
	}
	/* The timer restarts on a whole reply, not on each byte: a remote
	   dripping a reply slowly still has outbound_timeout for all of it. */
	buf_append(&j->in, tmp, (size_t)r);
	return 1;
}

static void
xtext(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 33 || c > 126 || c == '+' || c == '=')
			buf_printf(b, "+%02X", c);
		else
			buf_putc(b, (char)c);
	}
}

/* ---- the body ---- */

/* Queues the next part of the body, dot-stuffed, then the final dot. */
static void
queue_body(struct smtp_job *j)
{
	const char *p = j->body;
	size_t len = j->body_len, end;

	if (j->body_pos >= len) {
		if (len > 0 && (len < 2 || p[len - 2] != '\r' ||
		    p[len - 1] != '\n') && !j->body_bol)
			buf_puts(&j->out, "\r\n");
		buf_puts(&j->out, ".\r\n");
		j->dot_sent = true;
		j->st = CS_DOT;
		return;
	}
	end = j->body_pos + BODY_CHUNK < len ? j->body_pos + BODY_CHUNK : len;
	while (j->body_pos < end) {
		const char *nl;
		size_t take;

		if (j->body_bol && p[j->body_pos] == '.')
			buf_putc(&j->out, '.');
		nl = memchr(p + j->body_pos, '\n', end - j->body_pos);
		take = nl != NULL ? (size_t)(nl - (p + j->body_pos)) + 1 :
		    end - j->body_pos;
		buf_append(&j->out, p + j->body_pos, take);
		j->body_pos += take;
		j->body_bol = nl != NULL;
	}
}

/* ---- the dialogue ---- */

static void
send_next_cmd(struct smtp_job *j)
{
	int c = j->cmds[j->ncmds_sent++];

	if (c == EXP_MAIL) {
		struct buf b;

		buf_init(&b);
		buf_printf(&b, "MAIL FROM:<%s>", j->msg->sender);
		if (j->ehlo.has_size)
			buf_printf(&b, " SIZE=%zu", j->body_len);
		if (j->msg->eightbit && j->ehlo.eightbitmime)
			buf_puts(&b, " BODY=8BITMIME");
		if (j->msg->needs_utf8)
			buf_puts(&b, " SMTPUTF8");
		if (j->ehlo.dsn) {
			if (j->msg->ret == STORE_QRET_FULL)
				buf_puts(&b, " RET=FULL");
			else if (j->msg->ret == STORE_QRET_HDRS)
				buf_puts(&b, " RET=HDRS");
			if (j->msg->envid[0] != '\0') {
				buf_puts(&b, " ENVID=");
				xtext(&b, j->msg->envid);
			}
		}
		put_cmd(j, "%s", b.data);
		buf_free(&b);
	} else if (c == EXP_DATA) {
		put_cmd(j, "DATA");
	} else {
		struct job_rcpt *r = &j->rcpts[c];
		struct buf b;

		buf_init(&b);
		buf_printf(&b, "RCPT TO:<%s>", r->address);
		if (j->ehlo.dsn && r->notify != 0) {
			const char *sep = " NOTIFY=";

			if (r->notify & STORE_QN_NEVER)
				buf_puts(&b, " NOTIFY=NEVER");
			else {
				if (r->notify & STORE_QN_SUCCESS) {
					buf_printf(&b, "%sSUCCESS", sep);
					sep = ",";
				}
				if (r->notify & STORE_QN_FAILURE) {
					buf_printf(&b, "%sFAILURE", sep);
					sep = ",";
				}
				if (r->notify & STORE_QN_DELAY)
					buf_printf(&b, "%sDELAY", sep);
			}
		}
		if (j->ehlo.dsn && r->orcpt[0] != '\0')
			buf_printf(&b, " ORCPT=%s", r->orcpt);
		put_cmd(j, "%s", b.data);
		buf_free(&b);
	}
	j->exp[j->nexp++] = c;
}

/* After EHLO (and TLS, AUTH): checks what the remote can take, then sends
   the transaction (all at once with PIPELINING). */
static void
start_txn(struct smtp_job *j)
{
	j->body = j->msg->data;
	j->body_len = j->msg->len;
	if (j->msg->needs_utf8 && !j->ehlo.smtputf8) {
		report_rest(j, STORE_QS_FAILED, "5.6.7", "SMTPUTF8 is "
		    "required but was not offered by the remote");
		j->reached_txn = true;
		goto quit;
	}
	if (j->msg->eightbit && !j->ehlo.eightbitmime) {
		/* RFC 6152 3: downgrade to 7 bits (quoted-printable). */
		const char *err;
		char why[200];

		buf_reset(&j->conv);
		if (mime7_convert(j->msg->data, j->msg->len, &j->conv,
		    &err) < 0) {
			snprintf(why, sizeof(why), "8-bit message and the "
			    "remote does not offer 8BITMIME; cannot convert "
			    "it to 7 bits: %s", err);
			report_rest(j, STORE_QS_FAILED, "5.6.3", why);
			j->reached_txn = true;
			goto quit;
		}
		j->body = j->conv.data;
		j->body_len = j->conv.len;
		log_info("mtad %s converted remote=%s from=8bit to=7bit size=%zu",
		    j->qid, j->remote, j->body_len);
	}
	if (j->ehlo.has_size && j->ehlo.size > 0 && j->body_len >
	    j->ehlo.size) {
		char why[160];

		snprintf(why, sizeof(why), "message size %zu exceeds the "
		    "remote's limit of %llu", j->body_len,
		    (unsigned long long)j->ehlo.size);
		report_rest(j, STORE_QS_FAILED, "5.3.4", why);
		j->reached_txn = true;
		goto quit;
	}
	j->reached_txn = true;
	j->nexp = j->nexp_done = j->ncmds = j->ncmds_sent = 0;
	j->any_accepted = false;
	j->cmds[j->ncmds++] = EXP_MAIL;
	for (size_t i = 0; i < j->n; i++) {
		j->rcpts[i].accepted = false;
		if (!j->rcpts[i].done)
			j->cmds[j->ncmds++] = (int)i;
	}
	j->cmds[j->ncmds++] = EXP_DATA;
	j->pipelining = j->ehlo.pipelining;
	j->st = CS_TXN;
	if (j->pipelining)
		while (j->ncmds_sent < j->ncmds)
			send_next_cmd(j);
	else
		send_next_cmd(j);
	return;
quit:
	put_cmd(j, "QUIT");
	j->st = CS_QUIT;
}

static void
send_ehlo(struct smtp_job *j)
{
	put_cmd(j, "EHLO %s", j->m->cfg->hostname);
	j->st = CS_EHLO;
}

static bool
is_our_name(struct smtp_job *j, const struct smtp_reply *r)
{
	char w[DNS_NAME_SIZE];

	smtp_reply_first_word(r, w, sizeof(w));
	return w[0] != '\0' && strcasecmp(w, j->m->cfg->hostname) == 0;
}

static void
loop_detected(struct smtp_job *j, const char *where)
{
	char why[700];

	snprintf(why, sizeof(why), "mail for this domain loops back to myself "
	    "(%s greets with our name %s)", j->remote, j->m->cfg->hostname);
	log_info("mtad %s loop-detected remote=%s where=%s", j->qid, j->remote,
	    where);
	report_rest(j, STORE_QS_FAILED, "5.4.6", why);
	j->reached_txn = true;
	finish(j);
}

static void start_tls(struct smtp_job *j);
static void reconnect(struct smtp_job *j);

static void
auth_start(struct smtp_job *j)
{
	struct buf raw, b64;
	const char *u = j->m->relay_user, *p = j->m->relay_pass;

	if (j->ehlo.auth & SMTP_AUTH_PLAIN) {
		buf_init(&raw);
		buf_init(&b64);
		buf_putc(&raw, '\0');
		buf_puts(&raw, u);
		buf_putc(&raw, '\0');
		buf_puts(&raw, p);
		base64_encode(raw.data, raw.len, &b64);
		put_cmd(j, "AUTH PLAIN %s", b64.data);
		wipe_buf(&raw);
		wipe_buf(&b64);
		j->st = CS_AUTH;
	} else if (j->ehlo.auth & SMTP_AUTH_LOGIN) {
		put_cmd(j, "AUTH LOGIN");
		j->st = CS_AUTH_LOGIN1;
	} else {
		next_target(j, "the relayhost offers neither AUTH PLAIN nor "
		    "AUTH LOGIN", "4.7.0");
	}
}

static void
after_ehlo(struct smtp_job *j)
{
	bool need_tls = j->tls != JOB_TLS_OPPORTUNISTIC;

	if (!j->tls_on && !j->no_tls && j->ehlo.starttls &&
	    j->m->tls_mx != NULL) {
		put_cmd(j, "STARTTLS");
		j->st = CS_STARTTLS;
		return;
	}
	if (!j->tls_on && need_tls) {
		next_target(j, "the relayhost does not offer STARTTLS (TLS is "
		    "required)", "4.7.0");
		return;
	}
	if (j->m->relay_user != NULL && j->tls != JOB_TLS_OPPORTUNISTIC) {
		auth_start(j);
		return;
	}
	start_txn(j);
}

static void
on_rcpt_reply(struct smtp_job *j, struct job_rcpt *r,
    const struct smtp_reply *rep, const char *line)
{
	char sb[16];

	if (rep->code / 100 == 2) {
		r->accepted = true;
		j->any_accepted = true;
	} else {
		report(j, r, rep->code / 100 == 4 ? STORE_QS_DEFERRED :
		    STORE_QS_FAILED, reply_status(rep, sb, sizeof(sb)), line,
		    false);
	}
}

static void
accepted_result(struct smtp_job *j, enum store_queue_state st,
    const char *status, const char *line)
{
	for (size_t i = 0; i < j->n; i++) {
		struct job_rcpt *r = &j->rcpts[i];
		bool relayed;

		if (!r->accepted || r->done)
			continue;
		relayed = st == STORE_QS_SENT && !j->ehlo.dsn &&
		    (r->notify & STORE_QN_SUCCESS) != 0;
		report(j, r, st, status, line, relayed);
	}
}

/* One reply in the transaction. */
static void
txn_reply(struct smtp_job *j, const struct smtp_reply *rep, const char *line)
{
	int e = j->exp[j->nexp_done++];
	char sb[16];
	const char *status = reply_status(rep, sb, sizeof(sb));
	enum store_queue_state bad = rep->code / 100 == 4 ? STORE_QS_DEFERRED :
	    STORE_QS_FAILED;

	if (e == EXP_MAIL) {
		if (rep->code / 100 != 2) {
			report_rest(j, bad, status, line);
			goto quit;
		}
	} else if (e == EXP_DATA) {
		if (rep->code != 354) {
			accepted_result(j, bad, status, line);
			goto quit;
		}
		if (!j->any_accepted) {
			/* 354 with no recipient: nothing to send. */
			finish(j);
			return;
		}
		j->body_pos = 0;
		j->body_bol = true;
		j->st = CS_BODY;
		queue_body(j);
		return;
	} else {
		on_rcpt_reply(j, &j->rcpts[e], rep, line);
	}
	if (!j->pipelining && j->ncmds_sent < j->ncmds) {
		if (j->cmds[j->ncmds_sent] == EXP_DATA && !j->any_accepted)
			goto quit;
		send_next_cmd(j);
	}
	return;
quit:
	put_cmd(j, "QUIT");
	j->st = CS_QUIT;
}

static void
on_reply(struct smtp_job *j, const struct smtp_reply *rep)
{
	char line[STORE_QUEUE_REPLY_MAX + 1], sb[16];

	smtp_reply_oneline(rep, line, sizeof(line));
	switch (j->st) {
	case CS_GREETING:
		if (rep->code != 220) {
			j->refused_now = rep->code / 100 == 5;
			next_target(j, line, reply_status(rep, sb, sizeof(sb)));
			return;
		}
		if (is_our_name(j, rep)) {
			loop_detected(j, "greeting");
			return;
		}
		send_ehlo(j);
		return;
	case CS_EHLO:
		if (rep->code / 100 != 2) {
			put_cmd(j, "HELO %s", j->m->cfg->hostname);
			j->st = CS_HELO;
			return;
		}
		if (is_our_name(j, rep)) {
			loop_detected(j, "ehlo");
			return;
		}
		smtp_ehlo_parse(rep, &j->ehlo);
		after_ehlo(j);
		return;
	case CS_HELO:
		if (rep->code / 100 != 2) {
			j->refused_now = rep->code / 100 == 5;
			next_target(j, line, reply_status(rep, sb, sizeof(sb)));
			return;
		}
		memset(&j->ehlo, 0, sizeof(j->ehlo));
		after_ehlo(j);
		return;
	case CS_STARTTLS:
		if (rep->code != 220) {
			if (j->tls != JOB_TLS_OPPORTUNISTIC) {
				next_target(j, line, "4.7.0");
				return;
			}
			log_info("mtad %s tls-refused remote=%s reply=\"%.200s\" "
			    "action=plaintext", j->qid, j->remote, line);
			j->no_tls = true;
			after_ehlo(j);
			return;
		}
		start_tls(j);
		return;
	case CS_AUTH:
		if (rep->code != 235) {
			next_target(j, line, "4.7.0");
			return;
		}
		start_txn(j);
		return;
	case CS_AUTH_LOGIN1:
	case CS_AUTH_LOGIN2: {
		const char *v = j->st == CS_AUTH_LOGIN1 ? j->m->relay_user :
		    j->m->relay_pass;
		struct buf b;

		if (rep->code != 334) {
			next_target(j, line, "4.7.0");
			return;
		}
		buf_init(&b);
		base64_encode(v, strlen(v), &b);
		put_cmd(j, "%s", b.data);
		wipe_buf(&b);
		j->st = j->st == CS_AUTH_LOGIN1 ? CS_AUTH_LOGIN2 : CS_AUTH;
		return;
	}
	case CS_TXN:
		txn_reply(j, rep, line);
		return;
	case CS_DOT: {
		const char *status = reply_status(rep, sb, sizeof(sb));

		accepted_result(j, rep->code / 100 == 2 ? STORE_QS_SENT :
		    rep->code / 100 == 4 ? STORE_QS_DEFERRED : STORE_QS_FAILED,
		    status, line);
		if (++j->ntxn < MTAD_TXNS_PER_CONN) {
			park(j);
			return;
		}
		put_cmd(j, "QUIT");
		j->st = CS_QUIT;
		return;
	}
	case CS_RSET:
		if (rep->code / 100 != 2) {
			str_copy(j->last_err, line, sizeof(j->last_err));
			reconnect(j);
			return;
		}
		start_txn(j);
		return;
	case CS_QUIT:
		/* Every recipient has its result: the reply to QUIT, or a late
		   one to a pipelined command, ends it. */
		finish(j);
		return;
	default:
		return;
	}
}

/* Parses the replies in j->in. */
static void
read_replies(struct smtp_job *j)
{
	for (;;) {
		size_t used;
		const struct smtp_reply *r;
		const char *err;
		int k = smtp_reply_parse(&j->rp, j->in.data, j->in.len, &used,
		    &r, &err);

		if (k < 0) {
			snprintf(j->last_err, sizeof(j->last_err),
			    "bad reply from %s: %s", j->remote, err);
			if (j->dot_sent) {
				report_rest(j, STORE_QS_DEFERRED, "4.4.2",
				    j->last_err);
				finish(j);
			} else
				next_target(j, j->last_err, "4.4.2");
			return;
		}
		buf_consume(&j->in, used);
		if (k == 0)
			return;
		touch_timer(j);
		on_reply(j, r);
		if (j->finished || j->fd < 0 || j->st == CS_TLS ||
		    j->st == CS_CONNECT || j->st == CS_IDLE)
			return;
	}
}

/* ---- TLS ---- */

static void
tls_handshake(struct smtp_job *j)
{
	int k;

	ERR_clear_error();
	k = SSL_connect(j->ssl);
	if (k == 1) {
		j->tls_on = true;
		str_copy(j->tls_ver, SSL_get_version(j->ssl),
		    sizeof(j->tls_ver));
		buf_reset(&j->in);
		smtp_reply_parser_init(&j->rp);
		if (j->st == CS_TLS_IMPLICIT) {
			j->st = CS_GREETING;
		} else {
			send_ehlo(j);
		}
		touch_timer(j);
		return;
	}
	switch (SSL_get_error(j->ssl, k)) {
	case SSL_ERROR_WANT_READ:
		set_events(j, EV_READ);
		return;
	case SSL_ERROR_WANT_WRITE:
		set_events(j, EV_WRITE);
		return;
	default: {
		char why[256], msg[700];
		long v = SSL_get_verify_result(j->ssl);

		tls_error(why, sizeof(why));
		if (v != X509_V_OK)
			snprintf(why, sizeof(why), "certificate: %s",
			    X509_verify_cert_error_string(v));
		snprintf(msg, sizeof(msg), "TLS handshake with %s failed: %s",
		    j->remote, why);
		if (j->tls == JOB_TLS_OPPORTUNISTIC) {
			/* Opportunistic: the same host again, in plaintext. */
			log_info("mtad %s tls-failed remote=%s reason=\"%s\" "
			    "action=plaintext-retry", j->qid, j->remote, why);
			j->no_tls = true;
			conn_close(j);
			j->ti--;
			next_target(j, NULL, NULL);
			return;
		}
		next_target(j, msg, "4.7.0");
		return;
	}
	}
}

static void
start_tls(struct smtp_job *j)
{
	SSL_CTX *ctx = j->tls == JOB_TLS_OPPORTUNISTIC ? j->m->tls_mx :
	    j->m->tls_relay;
	struct smtp_target *t = &j->targets[j->ti];

	if (j->st != CS_TLS_IMPLICIT)
		j->st = CS_TLS;
	buf_reset(&j->in);          /* nothing pipelined before TLS counts */
	j->ssl = SSL_new(ctx);
	if (j->ssl == NULL) {
		next_target(j, "cannot create a TLS session", "4.7.0");
		return;
	}
	SSL_set_fd(j->ssl, j->fd);
	if (dns_is_valid_name(t->host) && strchr(t->host, '.') != NULL) {
		SSL_set_tlsext_host_name(j->ssl, t->host);
		if (j->tls != JOB_TLS_OPPORTUNISTIC)
			SSL_set1_host(j->ssl, t->host);
	} else if (j->tls != JOB_TLS_OPPORTUNISTIC) {
		char ip[INET6_ADDRSTRLEN];

		inet_ntop(t->family, t->addr, ip, sizeof(ip));
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(j->ssl), ip);
	}
	tls_handshake(j);
}

/* ---- events ---- */

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct smtp_job *j = w->data;

	if (j->st == CS_CONNECT) {
		int err = 0;
		socklen_t el = sizeof(err);

		getsockopt(j->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0) {
			char why[700];

			snprintf(why, sizeof(why), "connect to %s: %s",
			    j->remote, strerror(err));
			next_target(j, why, "4.4.1");
			return;
		}
		touch_timer(j);
		if (j->tls == JOB_TLS_IMPLICIT_VERIFY) {
			j->st = CS_TLS_IMPLICIT;
			start_tls(j);
			return;
		}
		j->st = CS_GREETING;
		set_events(j, EV_READ);
		return;
	}
	if (j->st == CS_TLS || j->st == CS_TLS_IMPLICIT) {
		tls_handshake(j);
		if (!j->finished && j->fd >= 0 && j->tls_on)
			job_step_io(j);
		return;
	}
	job_step_io(j);
}

/* Reads and writes as far as possible, handles replies, re-arms. */
static void
job_step_io(struct smtp_job *j)
{
	int k;

	if (flush_out(j) < 0)
		goto broken;
	do {
		k = fill_in(j);
		if (k < 0)
			goto broken;
		if (k > 0) {
			read_replies(j);
			if (j->finished || j->fd < 0 || j->st == CS_TLS ||
			    j->st == CS_CONNECT || j->st == CS_IDLE)
				return;
		}
	} while (k > 0 && (j->ssl == NULL || SSL_pending(j->ssl) > 0));
	if (j->st == CS_BODY && j->out.len < OUT_LOW_WATER) {
		while (j->st == CS_BODY && j->out.len < OUT_LOW_WATER)
			queue_body(j);
	}
	if (flush_out(j) < 0)
		goto broken;
	set_events(j, EV_READ | (j->out.len > 0 || j->st == CS_BODY ?
	    EV_WRITE : 0));
	return;
broken:
	if (j->st == CS_QUIT) {
		finish(j);
		return;
	}
	if (j->st == CS_RSET) {
		reconnect(j);
		return;
	}
	if (j->dot_sent) {
		/* The message went out; whether it was taken is unknown.
		   Another host now could mean a duplicate: retry later. */
		report_rest(j, STORE_QS_DEFERRED, "4.4.2", j->last_err);
		finish(j);
		return;
	}
	next_target(j, j->last_err, "4.4.2");
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct smtp_job *j = w->data;

	snprintf(j->last_err, sizeof(j->last_err), "timeout waiting for %s "
	    "(state %d)", j->remote, (int)j->st);
	if (j->st == CS_QUIT) {
		finish(j);
		return;
	}
	if (j->st == CS_RSET) {
		reconnect(j);
		return;
	}
	if (j->dot_sent) {
		report_rest(j, STORE_QS_DEFERRED, "4.4.2", j->last_err);
		finish(j);
		return;
	}
	next_target(j, j->last_err, "4.4.2");
}

static int
connect_target(struct smtp_job *j)
{
	struct smtp_target *t = &j->targets[j->ti];
	struct sockaddr_storage ss;
	socklen_t sl;
	char ip[INET6_ADDRSTRLEN];
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (t->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(t->port);
		memcpy(&s4->sin_addr, t->addr, 4);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(t->port);
		memcpy(&s6->sin6_addr, t->addr, 16);
		sl = sizeof(*s6);
	}
	inet_ntop(t->family, t->addr, ip, sizeof(ip));
	snprintf(j->remote, sizeof(j->remote), "%.200s[%s]:%u", t->host, ip,
	    (unsigned)t->port);
	j->tls_ver[0] = '\0';
	j->dot_sent = false;
	j->st = CS_CONNECT;
	fd = socket(t->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(j->last_err, sizeof(j->last_err), "socket: %s",
		    strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 &&
	    errno != EINPROGRESS) {
		snprintf(j->last_err, sizeof(j->last_err), "connect to %s: %s",
		    j->remote, strerror(errno));
		close(fd);
		return -1;
	}
	j->fd = fd;
	j->m->nconns++;
	ev_io_init(&j->io, io_cb, fd, EV_WRITE);
	j->io.data = j;
	ev_io_start(j->m->loop, &j->io);
	touch_timer(j);
	return 0;
}

/* Gives up on the current host (why: the reason, NULL for a silent move
   such as the plaintext retry) and tries the next address. */
static void
next_target(struct smtp_job *j, const char *why, const char *status)
{
	if (why != NULL) {
		if (why != j->last_err)
			str_copy(j->last_err, why, sizeof(j->last_err));
		str_copy(j->last_status, status != NULL ? status : "4.4.1",
		    sizeof(j->last_status));
		log_info("mtad %s host-failed remote=%s reason=\"%.300s\"",
		    j->qid, j->remote, j->last_err);
		j->no_tls = false;
		if (j->refused_now) {
			j->nrefused++;
			str_copy(j->refused_err, j->last_err,
			    sizeof(j->refused_err));
			str_copy(j->refused_status, j->last_status,
			    sizeof(j->refused_status));
		} else {
			j->nother++;
		}
		j->refused_now = false;
	}
	conn_close(j);
	for (j->ti++; j->ti < j->nt; j->ti++) {
		if (remaining(j) == 0)
			break;
		if (mtad_is_own_address(j->m, j->targets[j->ti].family,
		    j->targets[j->ti].addr, j->targets[j->ti].port)) {
			char why2[300];

			snprintf(why2, sizeof(why2), "mail for this domain loops "
			    "back to myself (%s is one of our own listening "
			    "addresses)", j->targets[j->ti].host);
			report_rest(j, STORE_QS_FAILED, "5.4.6", why2);
			j->reached_txn = true;
			break;
		}
		if (connect_target(j) == 0)
			return;
		log_info("mtad %s host-failed remote=%s reason=\"%.300s\"",
		    j->qid, j->remote, j->last_err);
		j->nother++;
	}
	if (remaining(j) > 0 && j->nrefused > 0 && j->nother == 0 &&
	    !j->reached_txn)
		/* Every host refused us for good (as Postfix bounces when the
		   last MX host greets with 5xx): the remote's own words. */
		report_rest(j, STORE_QS_FAILED, j->refused_status,
		    j->refused_err);
	else if (remaining(j) > 0)
		report_rest(j, j->last_status[0] == '5' && j->reached_txn ?
		    STORE_QS_FAILED : STORE_QS_DEFERRED,
		    j->last_status[0] != '\0' ? j->last_status : "4.4.1",
		    j->last_err[0] != '\0' ? j->last_err : "no host to try");
	finish(j);
}

static void
kick_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct smtp_job *j = w->data;

	ev_idle_stop(loop, w);
	j->ti = (size_t)-1;
	next_target(j, NULL, NULL);
}

struct smtp_job *
smtp_job_start(struct mtad *m, const struct job_msg *msg,
    struct job_rcpt *rcpts, size_t n, const struct smtp_target *targets,
    size_t nt, enum job_tls tls, const char *qid,
    const struct smtp_job_ops *ops, void *arg)
{
	struct smtp_job *j = xcalloc(1, sizeof(*j));

	j->m = m;
	j->msg = msg;
	j->rcpts = rcpts;
	j->n = n;
	j->nt = nt < MTAD_MAX_TARGETS ? nt : MTAD_MAX_TARGETS;
	memcpy(j->targets, targets, j->nt * sizeof(*targets));
	j->tls = tls;
	str_copy(j->qid, qid, sizeof(j->qid));
	j->ops = ops;
	j->arg = arg;
	j->fd = -1;
	buf_init(&j->in);
	buf_init(&j->out);
	buf_init(&j->conv);
	smtp_reply_parser_init(&j->rp);
	str_copy(j->last_status, "4.4.1", sizeof(j->last_status));
	str_copy(j->last_err, "no address to connect to", sizeof(j->last_err));
	ev_init(&j->timer, timer_cb);
	j->timer.data = j;
	ev_idle_init(&j->kick, kick_cb);
	j->kick.data = j;
	ev_idle_start(m->loop, &j->kick);
	return j;
}

/* A reused connection failed before the new transaction began: the remote
   may close an idle session (RFC 5321 4.5.3.2), which says nothing about
   this message, so it starts over on a new connection from the first
   address. */
static void
reconnect(struct smtp_job *j)
{
	log_info("mtad %s reconnect remote=%s reason=\"%.300s\"", j->qid,
	    j->remote, j->last_err);
	conn_close(j);
	j->ntxn = 0;
	j->no_tls = false;
	j->ti = (size_t)-1;
	next_target(j, NULL, NULL);
}

static void
resume_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct smtp_job *j = w->data;

	ev_idle_stop(loop, w);
	buf_reset(&j->in);
	smtp_reply_parser_init(&j->rp);
	put_cmd(j, "RSET");
	j->st = CS_RSET;
	touch_timer(j);
	job_step_io(j);
}

void
smtp_job_next(struct smtp_job *j, const struct job_msg *msg,
    struct job_rcpt *rcpts, size_t n, const char *qid, void *arg)
{
	j->msg = msg;
	j->rcpts = rcpts;
	j->n = n;
	j->arg = arg;
	str_copy(j->qid, qid, sizeof(j->qid));
	j->reached_txn = false;
	j->dot_sent = false;
	j->refused_now = false;
	j->nrefused = j->nother = 0;
	str_copy(j->last_status, "4.4.1", sizeof(j->last_status));
	str_copy(j->last_err, "connection lost", sizeof(j->last_err));
	ev_idle_stop(j->m->loop, &j->kick);
	ev_idle_init(&j->kick, resume_cb);
	j->kick.data = j;
	ev_idle_start(j->m->loop, &j->kick);
}

void
smtp_job_close(struct smtp_job *j)
{
	if (j->fd >= 0) {
		put_cmd(j, "QUIT");
		(void)flush_out(j);
	}
	conn_close(j);
	job_release(j);
}

void
smtp_job_abort(struct smtp_job *j)
{
	str_copy(j->last_err, "mtad is stopping", sizeof(j->last_err));
	report_rest(j, STORE_QS_DEFERRED, "4.3.2", j->last_err);
	finish(j);
	job_free(j);
}
