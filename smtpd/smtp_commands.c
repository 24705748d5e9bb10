/* smtp_commands: smtpd's command table and handlers: EHLO/HELO, MAIL,
   RCPT, DATA, BDAT, RSET, NOOP, QUIT, HELP, VRFY, EXPN, STARTTLS, AUTH.
   The dispatcher checks the state before a handler runs. Recipient lookups
   are LMDB reads done here on the loop; password checks run on the worker
   pool. Message content is smtp_data.c's business. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "log.h"
#include "util.h"

#include "smtp_session.h"

#define ST_LINE (SMTP_ST_INIT | SMTP_ST_READY | SMTP_ST_MAIL | SMTP_ST_RCPT | \
    SMTP_ST_BDAT)

struct smtp_cmd_def {
	enum smtp_verb verb;
	unsigned states;
	void (*fn)(struct smtp_session *s, const char *args, size_t len);
};

static bool
has_args(size_t len)
{
	return len > 0;
}

static void
ehlo_common(struct smtp_session *s, const char *args, size_t len, bool esmtp)
{
	const char *err;
	char helo[256];
	const struct config *cfg = s->ctx->cfg;

	if (smtp_parse_helo(args, len, helo, sizeof(helo), &err) < 0) {
		smtp_reply(s, 501, "5.5.4", "%s", err);
		return;
	}
	/* EHLO in the middle of a transaction resets it (RFC 5321 4.1.4). */
	smtp_tx_free(&s->tx);
	memcpy(s->helo, helo, sizeof(helo));
	s->esmtp = esmtp;
	smtp_set_state(s, SMTP_ST_READY);
	if (!esmtp) {
		conn_printf(s->c, "250 %s\r\n", cfg->hostname);
		return;
	}
	conn_printf(s->c, "250-%s Hello %s [%s]\r\n", cfg->hostname, helo,
	    conn_peer_addr(s->c));
	conn_puts(s->c, "250-PIPELINING\r\n");
	conn_printf(s->c, "250-SIZE %llu\r\n",
	    (unsigned long long)cfg->max_message_size);
	conn_puts(s->c, "250-8BITMIME\r\n");
	conn_puts(s->c, "250-SMTPUTF8\r\n");
	conn_puts(s->c, "250-CHUNKING\r\n");
	if (!conn_is_tls(s->c) && server_has_tls(s->ctx->server))
		conn_puts(s->c, "250-STARTTLS\r\n");
	if (smtp_auth_allowed(s) && !s->authenticated)
		conn_puts(s->c, "250-AUTH PLAIN LOGIN\r\n");
	conn_puts(s->c, "250 ENHANCEDSTATUSCODES\r\n");
}

static void
cmd_ehlo(struct smtp_session *s, const char *args, size_t len)
{
	ehlo_common(s, args, len, true);
}

static void
cmd_helo(struct smtp_session *s, const char *args, size_t len)
{
	ehlo_common(s, args, len, false);
}

static void
reply_path_err(struct smtp_session *s, enum smtp_path_err e, const char *err,
    bool is_mail)
{
	switch (e) {
	case SMTP_PATH_EPARAM:
		smtp_reply(s, 555, "5.5.4", "%s", err);
		break;
	case SMTP_PATH_EUTF8:
		smtp_reply(s, 553, "5.6.7", "%s", err);
		break;
	default:
		smtp_reply(s, 501, is_mail ? "5.1.7" : "5.1.3", "%s", err);
		break;
	}
}

static void
cmd_mail(struct smtp_session *s, const char *args, size_t len)
{
	struct smtp_path path;
	const struct config *cfg = s->ctx->cfg;
	enum smtp_path_err e;
	const char *err = "";
	struct smtp_tx *tx;

	if (smtp_is_submission(s) && !s->authenticated) {
		if (!smtp_auth_allowed(s))
			smtp_reply(s, 530, "5.7.0",
			    "Must issue a STARTTLS command first");
		else
			smtp_reply(s, 530, "5.7.0", "Authentication required");
		return;
	}
	e = smtp_parse_path(args, len, true, false, &path, &err);
	if (e != SMTP_PATH_OK) {
		reply_path_err(s, e, err, true);
		return;
	}
	if (path.has_size && path.size > cfg->max_message_size) {
		smtp_reply(s, 552, "5.3.4",
		    "Message size exceeds fixed maximum message size");
		return;
	}
	if (s->authenticated && (path.address[0] == '\0' ||
	    !store_user_owns_address(s->ctx->store, s->auth_user_id,
	    path.address))) {
		smtp_reply(s, 553, "5.7.1", "Sender address <%s> not owned by %s",
		    path.address, s->auth_user);
		return;
	}
	tx = xcalloc(1, sizeof(*tx));
	memcpy(tx->from, path.address, sizeof(tx->from));
	tx->smtputf8 = path.smtputf8;
	tx->body = path.body;
	tx->declared_size = path.has_size ? path.size : 0;
	snprintf(tx->id, sizeof(tx->id), "%.11s%05X", conn_id(s->c),
	    s->messages & 0xfffff);
	s->tx = tx;
	smtp_set_state(s, SMTP_ST_MAIL);
	smtp_reply(s, 250, "2.1.0", "Sender <%s> OK", path.address);
}

/* Whether every user behind a recipient can take the message: quota is
   checked here, at RCPT, so the commit can skip it (STORE_DELIVER_NOQUOTA)
   and no message is accepted and then bounced. */
static bool
rcpt_has_room(struct smtp_session *s, const uint32_t *ids, size_t n)
{
	struct store_user u;

	for (size_t i = 0; i < n; i++) {
		if (store_user_get_by_id(s->ctx->store, ids[i], &u) != STORE_OK)
			continue;
		if (u.quota != 0 && u.used + s->tx->declared_size >= u.quota)
			return false;
	}
	return true;
}

static bool
tx_add_user(struct smtp_tx *tx, uint32_t id)
{
	for (size_t i = 0; i < tx->nusers; i++)
		if (tx->users[i] == id)
			return true;
	if (tx->nusers >= 1000)     /* store_delivery_add_target's bound */
		return false;
	if (tx->nusers == tx->users_cap) {
		tx->users_cap = tx->users_cap ? tx->users_cap * 2 : 4;
		tx->users = xrealloc(tx->users,
		    tx->users_cap * sizeof(*tx->users));
	}
	tx->users[tx->nusers++] = id;
	return true;
}

struct pm_search {
	struct store *st;
	uint32_t *ids;
	size_t n;
};

static int
pm_try_domain(void *arg, const char *domain, const char *unused)
{
	struct pm_search *ps = arg;
	char addr[STORE_ADDRESS_MAX + 16];

	(void)unused;
	snprintf(addr, sizeof(addr), "postmaster@%s", domain);
	return store_resolve(ps->st, addr, &ps->ids, &ps->n) == STORE_OK;
}

/* RCPT TO:<Postmaster> has no domain and must be accepted (RFC 5321
   4.5.1): postmaster@ our hostname, else of the first local domain that
   has one. */
static enum store_err
resolve_postmaster(struct smtp_session *s, uint32_t **ids_r, size_t *n_r)
{
	struct pm_search ps = { .st = s->ctx->store };
	char addr[STORE_ADDRESS_MAX + 16];

	snprintf(addr, sizeof(addr), "postmaster@%s", s->ctx->cfg->hostname);
	if (store_resolve(ps.st, addr, ids_r, n_r) == STORE_OK)
		return STORE_OK;
	(void)store_domain_list(ps.st, pm_try_domain, &ps);
	if (ps.ids == NULL)
		return STORE_ENOTFOUND;
	*ids_r = ps.ids;
	*n_r = ps.n;
	return STORE_OK;
}

static void
cmd_rcpt(struct smtp_session *s, const char *args, size_t len)
{
	struct smtp_tx *tx = s->tx;
	struct smtp_path path;
	enum smtp_path_err e;
	enum store_err se;
	const char *err = "";
	uint32_t *ids = NULL;
	size_t n = 0;

	if (tx->nrcpts >= s->ctx->cfg->max_recipients) {
		smtp_reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	e = smtp_parse_path(args, len, false, tx->smtputf8, &path, &err);
	if (e != SMTP_PATH_OK) {
		reply_path_err(s, e, err, false);
		return;
	}
	if (!path.has_domain)
		se = resolve_postmaster(s, &ids, &n);
	else
		se = store_resolve(s->ctx->store, path.address, &ids, &n);
	switch (se) {
	case STORE_OK:
		break;
	case STORE_EPERM:
		if (s->authenticated)
			smtp_reply(s, 550, "5.7.1", "<%s>: Outbound relay is not "
			    "configured on this server; only local recipients "
			    "are accepted", path.address);
		else
			smtp_reply(s, 554, "5.7.1", "<%s>: Relay access denied",
			    path.address);
		goto out;
	case STORE_ENOTFOUND:
		smtp_reply(s, 550, "5.1.1", "<%s>: Recipient address rejected: "
		    "User unknown", path.address);
		goto out;
	default:
		smtp_reply_store_err(s, se, "rcpt");
		goto out;
	}
	if (!rcpt_has_room(s, ids, n)) {
		smtp_reply(s, 452, "4.2.2", "<%s>: Mailbox full", path.address);
		goto out;
	}
	size_t before = tx->nusers;
	for (size_t i = 0; i < n; i++) {
		if (!tx_add_user(tx, ids[i])) {
			tx->nusers = before;
			smtp_reply(s, 452, "4.5.3", "Too many recipients");
			goto out;
		}
	}
	if (tx->nrcpts++ == 0)
		memcpy(tx->first_rcpt, path.address, sizeof(tx->first_rcpt));
	smtp_set_state(s, SMTP_ST_RCPT);
	smtp_reply(s, 250, "2.1.5", "Recipient <%s> OK", path.address);
out:
	free(ids);
}

static void
cmd_data(struct smtp_session *s, const char *args, size_t len)
{
	if (has_args(len)) {
		smtp_reply(s, 501, "5.5.4", "DATA takes no arguments");
		return;
	}
	if (smtp_data_begin(s, false) < 0)
		return;
	smtp_set_state(s, SMTP_ST_DATA);
	smtp_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

static void
cmd_bdat(struct smtp_session *s, const char *args, size_t len)
{
	uint64_t size;
	bool last;
	const char *err;

	if (smtp_parse_bdat(args, len, &size, &last, &err) < 0) {
		/* Without a size the chunk cannot be skipped: the bytes that
		   follow will be read as commands and fail on their own. */
		smtp_reply(s, 501, "5.5.4", "%s", err);
		return;
	}
	/* The chunk follows the command whatever we answer, so a BDAT that
	   cannot be taken still has its bytes read and dropped. */
	if (s->state != SMTP_ST_RCPT && s->state != SMTP_ST_BDAT) {
		s->discard_left = size;
		s->discard_reply = s->state == SMTP_ST_MAIL ?
		    "554 5.5.1 No valid recipients" :
		    s->state == SMTP_ST_INIT ? "503 5.5.1 Send EHLO/HELO first" :
		    "503 5.5.1 Need MAIL and RCPT first";
		smtp_set_state(s, SMTP_ST_CHUNK);
		smtp_bdat_input(s);
		return;
	}
	if (s->state == SMTP_ST_RCPT && smtp_data_begin(s, true) < 0) {
		s->discard_left = size;
		s->discard_reply = NULL;    /* the error was sent already */
		smtp_set_state(s, SMTP_ST_CHUNK);
		smtp_bdat_input(s);
		return;
	}
	smtp_bdat_chunk(s, size, last);
}

static void
cmd_rset(struct smtp_session *s, const char *args, size_t len)
{
	if (has_args(len)) {
		smtp_reply(s, 501, "5.5.4", "RSET takes no arguments");
		return;
	}
	smtp_tx_reset(s);
	smtp_reply(s, 250, "2.0.0", "OK");
}

static void
cmd_noop(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, 250, "2.0.0", "OK");
}

static void
cmd_quit(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, 221, "2.0.0", "%s closing connection",
	    s->ctx->cfg->hostname);
	s->closing = true;
	conn_close(s->c);
}

static void
cmd_help(struct smtp_session *s, const char *args, size_t len)
{
	conn_puts(s->c, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT "
	    "RSET NOOP QUIT HELP VRFY\r\n");
	conn_puts(s->c, "214-2.0.0 STARTTLS AUTH (submission, after TLS)\r\n");
	conn_puts(s->c, "214 2.0.0 See RFC 5321\r\n");
}

static void
cmd_vrfy(struct smtp_session *s, const char *args, size_t len)
{
	if (!has_args(len)) {
		smtp_reply(s, 501, "5.5.4", "Syntax: VRFY <address>");
		return;
	}
	/* Says nothing about whether the address exists (RFC 5321 3.5.3). */
	smtp_reply(s, 252, "2.5.2", "Cannot VRFY user, but will accept "
	    "message and attempt delivery");
}

static void
cmd_expn(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, 502, "5.5.1", "EXPN not available");
}

static void
cmd_starttls(struct smtp_session *s, const char *args, size_t len)
{
	if (conn_is_tls(s->c)) {
		smtp_reply(s, 503, "5.5.1", "TLS already active");
		return;
	}
	if (!server_has_tls(s->ctx->server)) {
		smtp_reply(s, 502, "5.5.1", "STARTTLS not available");
		return;
	}
	if (has_args(len)) {
		smtp_reply(s, 501, "5.5.4", "STARTTLS takes no arguments");
		return;
	}
	smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
	smtp_tx_free(&s->tx);
	if (conn_starttls(s->c) < 0)
		smtp_close_421(s, "4.7.0", "TLS not available");
}

/* ---- AUTH ---- */

static void auth_verify(struct smtp_session *s);

static void
auth_result(struct smtp_session *s, enum sasl_result r, const char *chal)
{
	switch (r) {
	case SASL_CONTINUE:
		conn_printf(s->c, "334 %s\r\n", chal);
		smtp_set_state(s, SMTP_ST_AUTH);
		break;
	case SASL_DONE:
		auth_verify(s);
		break;
	case SASL_CANCEL:
		sasl_server_reset(&s->sasl);
		smtp_set_state(s, SMTP_ST_READY);
		smtp_reply(s, 501, "5.0.0", "Authentication cancelled");
		break;
	case SASL_FAIL:
		sasl_server_reset(&s->sasl);
		smtp_set_state(s, SMTP_ST_READY);
		smtp_reply(s, 501, "5.5.2", "Cannot decode response");
		break;
	}
}

static void
cmd_auth(struct smtp_session *s, const char *args, size_t len)
{
	char mech[32], initial[SMTP_LINE_MAX + 1];
	const char *sp, *chal = "";
	enum sasl_mech m;
	enum sasl_result r;
	size_t mlen;

	if (!smtp_is_submission(s)) {
		smtp_reply(s, 502, "5.5.1", "AUTH not available on this port; "
		    "use submission");
		return;
	}
	if (!smtp_auth_allowed(s)) {
		smtp_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
		return;
	}
	if (s->authenticated) {
		smtp_reply(s, 503, "5.5.1", "Already authenticated");
		return;
	}
	if (s->state != SMTP_ST_READY) {
		smtp_reply(s, 503, "5.5.1", "AUTH not allowed in a mail transaction");
		return;
	}
	if (auth_throttle_count(s->ctx->throttle, conn_peer_addr(s->c)) >=
	    SMTP_MAX_AUTH_FAILS) {
		smtp_close_421(s, "4.7.0", "Too many failed authentications");
		return;
	}
	sp = memchr(args, ' ', len);
	mlen = sp != NULL ? (size_t)(sp - args) : len;
	if (mlen == 0 || mlen >= sizeof(mech)) {
		smtp_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
		return;
	}
	memcpy(mech, args, mlen);
	mech[mlen] = '\0';
	m = sasl_mech_parse(mech);
	if (m == SASL_MECH_NONE) {
		smtp_reply(s, 504, "5.5.4", "Unrecognized authentication type");
		return;
	}
	sasl_server_init(&s->sasl, m);
	if (sp != NULL) {
		size_t ilen = len - mlen - 1;
		memcpy(initial, sp + 1, ilen);
		initial[ilen] = '\0';
		r = sasl_server_start(&s->sasl, initial, &chal);
		sodium_memzero(initial, ilen);
	} else {
		r = sasl_server_start(&s->sasl, NULL, &chal);
	}
	/* chal is set by the call: never in the same argument list. */
	auth_result(s, r, chal);
}

void
smtp_auth_line(struct smtp_session *s, const char *line, size_t len)
{
	const char *chal = "";
	enum sasl_result r = sasl_server_step(&s->sasl, line, len, &chal);

	auth_result(s, r, chal);
}

static void
auth_work(void *arg)
{
	struct smtp_session *s = arg;

	s->auth_err = store_authenticate(s->ctx->store, s->sasl.user,
	    s->sasl.pass, &s->auth_result);
}

/* Ends the wait after a failed AUTH, early on shutdown: the 535 goes out
   and the session takes commands again. */
void
smtp_auth_cancel(struct smtp_session *s)
{
	if (!s->delay_on)
		return;
	ev_timer_stop(s->ctx->loop, &s->delay);
	s->delay_on = false;
	smtp_reply(s, 535, "5.7.8", "Authentication credentials invalid");
	smtp_resume(s, SMTP_ST_READY);
}

static void
auth_delay_done(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	smtp_auth_cancel(w->data);
}

static void
auth_done(void *arg)
{
	struct smtp_session *s = arg;
	const char *addr = conn_peer_addr(s->c);
	bool proxy = s->sasl.authzid != NULL &&
	    strcasecmp(s->sasl.authzid, s->sasl.user) != 0;
	char esc[LOG_ESCAPE_SIZE];

	auth_throttle_end(s->ctx->throttle, addr);
	log_escape(s->sasl.user, strlen(s->sasl.user), esc, sizeof(esc));
	if (s->auth_err == STORE_OK && !proxy) {
		auth_throttle_success(s->ctx->throttle, addr);
		s->authenticated = true;
		s->auth_user_id = s->auth_result.id;
		memcpy(s->auth_user, s->auth_result.address,
		    sizeof(s->auth_user));
		sasl_server_reset(&s->sasl);
		log_info("%s auth user=%s result=ok", conn_id(s->c), esc);
		smtp_reply(s, 235, "2.7.0", "Authentication successful");
		smtp_resume(s, SMTP_ST_READY);
		return;
	}
	sasl_server_reset(&s->sasl);
	if (s->auth_err != STORE_OK && s->auth_err != STORE_ENOTFOUND) {
		smtp_reply_store_err(s, s->auth_err, "auth");
		smtp_resume(s, SMTP_ST_READY);
		return;
	}
	double delay = auth_throttle_fail(s->ctx->throttle, addr);
	unsigned n = auth_throttle_count(s->ctx->throttle, addr);

	log_info("%s auth user=%s result=fail failures=%u", conn_id(s->c),
	    esc, n);
	if (n >= SMTP_MAX_AUTH_FAILS || s->shutting_down) {
		smtp_close_421(s, "4.7.0", "Too many failed authentications");
		smtp_resume(s, SMTP_ST_READY);
		return;
	}
	/* The reply waits (growing delay per address) so that guessing is
	   slow, but the loop does not. */
	ev_timer_init(&s->delay, auth_delay_done, delay, 0.);
	s->delay.data = s;
	ev_timer_start(s->ctx->loop, &s->delay);
	s->delay_on = true;
}

static void
auth_verify(struct smtp_session *s)
{
	const char *addr = conn_peer_addr(s->c);

	/* Checked here, not only at AUTH: checks running in parallel
	   sessions (or a LOGIN exchange begun before others failed) must not
	   each get a guess below the limit. */
	if (!auth_throttle_begin(s->ctx->throttle, addr, SMTP_MAX_AUTH_FAILS)) {
		sasl_server_reset(&s->sasl);
		smtp_close_421(s, "4.7.0", "Too many failed authentications");
		return;
	}
	smtp_suspend(s);
	worker_submit(s->ctx->pool, auth_work, auth_done, s);
}

/* ---- dispatch ---- */

static const struct smtp_cmd_def cmds[] = {
	/* verb            allowed states                      handler */
	{ SMTP_V_EHLO,     ST_LINE,                            cmd_ehlo },
	{ SMTP_V_HELO,     ST_LINE,                            cmd_helo },
	{ SMTP_V_MAIL,     SMTP_ST_READY,                      cmd_mail },
	{ SMTP_V_RCPT,     SMTP_ST_MAIL | SMTP_ST_RCPT,        cmd_rcpt },
	{ SMTP_V_DATA,     SMTP_ST_RCPT,                       cmd_data },
	{ SMTP_V_BDAT,     ST_LINE,                            cmd_bdat },
	{ SMTP_V_RSET,     ST_LINE,                            cmd_rset },
	{ SMTP_V_NOOP,     ST_LINE,                            cmd_noop },
	{ SMTP_V_QUIT,     ST_LINE,                            cmd_quit },
	{ SMTP_V_HELP,     ST_LINE,                            cmd_help },
	{ SMTP_V_VRFY,     ST_LINE,                            cmd_vrfy },
	{ SMTP_V_EXPN,     ST_LINE,                            cmd_expn },
	{ SMTP_V_STARTTLS, SMTP_ST_INIT | SMTP_ST_READY,       cmd_starttls },
	{ SMTP_V_AUTH,     SMTP_ST_READY | SMTP_ST_MAIL | SMTP_ST_RCPT, cmd_auth },
};

static void
bad_sequence(struct smtp_session *s, enum smtp_verb v)
{
	if (s->state == SMTP_ST_INIT && v != SMTP_V_STARTTLS)
		smtp_reply(s, 503, "5.5.1", "Send EHLO/HELO first");
	else if (s->state == SMTP_ST_BDAT)
		smtp_reply(s, 503, "5.5.1", "Only BDAT, RSET or QUIT may follow BDAT");
	else if (v == SMTP_V_MAIL)
		smtp_reply(s, 503, "5.5.1", "Nested MAIL command");
	else if (v == SMTP_V_RCPT)
		smtp_reply(s, 503, "5.5.1", "Need MAIL before RCPT");
	else if (v == SMTP_V_DATA && s->state == SMTP_ST_MAIL)
		smtp_reply(s, 554, "5.5.1", "No valid recipients");
	else if (v == SMTP_V_DATA)
		smtp_reply(s, 503, "5.5.1", "Need MAIL and RCPT before DATA");
	else
		smtp_reply(s, 503, "5.5.1", "Bad sequence of commands");
}

/* A peer that is not speaking SMTP at all (an HTTP request sent through a
   proxy, a port scanner) is cut sooner than the general error limit allows,
   unless it has authenticated. */
static void
bad_command(struct smtp_session *s)
{
	if (!s->authenticated &&
	    ++s->bad_commands >= SMTP_MAX_BAD_COMMANDS_PREAUTH)
		smtp_close_421(s, "4.7.0", "Too many unrecognized commands");
}

void
smtp_command(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	const char *err;

	if (smtp_parse_command(line, len, &cmd, &err) < 0) {
		smtp_reply(s, 500, "5.5.2", "%s", err);
		bad_command(s);
		return;
	}
	if (log_is_debug()) {
		char esc[LOG_ESCAPE_SIZE];
		/* Never log an AUTH initial response. */
		size_t l = cmd.verb == SMTP_V_AUTH ? 4 : len;
		log_debug("%s < %s", conn_id(s->c),
		    log_escape(line, l, esc, sizeof(esc)));
	}
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (cmds[i].verb != cmd.verb)
			continue;
		if (!(cmds[i].states & s->state)) {
			bad_sequence(s, cmd.verb);
			return;
		}
		cmds[i].fn(s, cmd.args, cmd.args_len);
		return;
	}
	smtp_reply(s, 500, "5.5.1", "Command unrecognized");
	bad_command(s);
}
