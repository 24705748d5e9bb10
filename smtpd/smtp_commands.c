/* smtp_commands: smtpd's command table and handlers: EHLO/HELO, MAIL,
   RCPT, DATA, BDAT, RSET, NOOP, QUIT, HELP, VRFY, EXPN, STARTTLS, AUTH.
   The dispatcher checks the state and the argument count from the table
   before a handler runs; handlers never repeat those checks. Recipient
   lookups are LMDB reads done here on the loop. AUTH is smtp_auth.c's,
   message content smtp_data.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "util.h"

#include "smtp_session.h"

typedef enum cmd_result smtp_cmd_fn(struct smtp_session *s,
    const char *args, size_t len);

/* A row: the shared part (name, states, arity: SMTP arguments are not
   split, so "1" means "any"), then the handler. */
struct smtp_cmd_row {
	struct cmd_def def;
	smtp_cmd_fn *fn;
};

static enum cmd_result cmd_ehlo(struct smtp_session *s, const char *args,
    size_t len);
static enum cmd_result cmd_helo(struct smtp_session *s, const char *args,
    size_t len);

/* false: the milters are asked first (the session is suspended). */
static bool
ehlo_common(struct smtp_session *s, const char *args, size_t len, bool esmtp)
{
	const char *err;
	char helo[256];
	const struct config *cfg = s->base.d->cfg;

	if (smtp_parse_helo(args, len, helo, sizeof(helo), &err) < 0) {
		smtp_reply(s, 501, "5.5.4", "%s", err);
		return true;
	}
	if (smtp_milter_gate(s, MILTER_HELO, helo, esmtp ? cmd_ehlo : cmd_helo,
	    args, len))
		return false;
	/* EHLO in the middle of a transaction resets it (RFC 5321 4.1.4). */
	smtp_tx_free(&s->tx);
	memcpy(s->helo, helo, sizeof(helo));
	if (esmtp)
		s->flags |= SMTP_F_ESMTP;
	else
		s->flags &= ~(unsigned)SMTP_F_ESMTP;
	smtp_set_state(s, SMTP_ST_READY);
	if (!esmtp) {
		conn_printf(s->base.c, "250 %s\r\n", cfg->hostname);
		return true;
	}
	conn_printf(s->base.c, "250-%s Hello %s [%s]\r\n", cfg->hostname, helo,
	    conn_peer_addr(s->base.c));
	conn_puts(s->base.c, "250-PIPELINING\r\n");
	conn_printf(s->base.c, "250-SIZE %llu\r\n",
	    (unsigned long long)cfg->max_message_size);
	conn_puts(s->base.c, "250-8BITMIME\r\n");
	conn_puts(s->base.c, "250-SMTPUTF8\r\n");
	conn_puts(s->base.c, "250-CHUNKING\r\n");
	if (!conn_is_tls(s->base.c) && server_has_tls(s->base.d->srv))
		conn_puts(s->base.c, "250-STARTTLS\r\n");
	if (smtp_auth_allowed(s) && !smtp_is_authenticated(s))
		conn_puts(s->base.c, "250-AUTH PLAIN LOGIN\r\n");
	/* RFC 3461 on the submission listeners, where mail is queued for
	   the world (the MX delivers locally only). */
	if (smtp_is_submission(s))
		conn_puts(s->base.c, "250-DSN\r\n");
	conn_puts(s->base.c, "250 ENHANCEDSTATUSCODES\r\n");
	return true;
}

static enum cmd_result
cmd_ehlo(struct smtp_session *s, const char *args, size_t len)
{
	return ehlo_common(s, args, len, true) ? CMD_DONE : CMD_SUSPEND;
}

static enum cmd_result
cmd_helo(struct smtp_session *s, const char *args, size_t len)
{
	return ehlo_common(s, args, len, false) ? CMD_DONE : CMD_SUSPEND;
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

static enum cmd_result
cmd_mail(struct smtp_session *s, const char *args, size_t len)
{
	struct smtp_path path;
	const struct config *cfg = s->base.d->cfg;
	enum smtp_path_err e;
	const char *err = "";
	struct smtp_tx *tx;

	if (smtp_is_submission(s) && !smtp_is_authenticated(s)) {
		if (!smtp_auth_allowed(s))
			smtp_reply(s, 530, "5.7.0",
			    "Must issue a STARTTLS command first");
		else
			smtp_reply(s, 530, "5.7.0", "Authentication required");
		return CMD_DONE;
	}
	e = smtp_parse_path_dsn(args, len, true, false, smtp_is_submission(s),
	    &path, &err);
	if (e != SMTP_PATH_OK) {
		reply_path_err(s, e, err, true);
		return CMD_DONE;
	}
	if (path.has_size && path.size > cfg->max_message_size) {
		smtp_reply(s, 552, "5.3.4",
		    "Message size exceeds fixed maximum message size");
		return CMD_DONE;
	}
	if (smtp_is_authenticated(s) && (path.address[0] == '\0' ||
	    !store_user_owns_address(s->base.d->store, s->auth_user_id,
	    path.address))) {
		smtp_reply(s, 553, "5.7.1", "Sender address <%s> not owned by %s",
		    path.address, s->auth_user);
		return CMD_DONE;
	}
	if (smtp_milter_gate(s, MILTER_MAIL, path.address, cmd_mail, args, len))
		return CMD_SUSPEND;
	tx = xcalloc(1, sizeof(*tx));
	memcpy(tx->from, path.address, sizeof(tx->from));
	tx->smtputf8 = path.smtputf8;
	tx->body = path.body;
	tx->declared_size = path.has_size ? path.size : 0;
	tx->ret = path.ret;
	memcpy(tx->envid, path.envid, sizeof(tx->envid));
	snprintf(tx->id, sizeof(tx->id), "%.11s%05X", conn_id(s->base.c),
	    s->messages & 0xfffff);
	s->tx = tx;
	smtp_checks_mail(s);
	smtp_set_state(s, SMTP_ST_MAIL);
	smtp_reply(s, 250, "2.1.0", "Sender <%s> OK", path.address);
	return CMD_DONE;
}

/* Whether every user behind a recipient can take the message: quota is
   checked here, at RCPT, so the commit can skip it (STORE_DELIVER_NOQUOTA)
   and no message is accepted and then bounced. */
static bool
rcpt_has_room(struct smtp_session *s, const uint32_t *ids, size_t n)
{
	struct store_user u;

	for (size_t i = 0; i < n; i++) {
		if (store_user_get_by_id(s->base.d->store, ids[i], &u) != STORE_OK)
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
	if (tx->nusers >= SMTP_RCPT_USER_MAX)
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
	struct pm_search ps = { .st = s->base.d->store };
	char addr[STORE_ADDRESS_MAX + 16];

	snprintf(addr, sizeof(addr), "postmaster@%s", s->base.d->cfg->hostname);
	if (store_resolve(ps.st, addr, ids_r, n_r) == STORE_OK)
		return STORE_OK;
	(void)store_domain_list(ps.st, pm_try_domain, &ps);
	if (ps.ids == NULL)
		return STORE_ENOTFOUND;
	*ids_r = ps.ids;
	*n_r = ps.n;
	return STORE_OK;
}

/* Adds address to the queued recipients; NULL if it is there already or
   the queue's recipient bound is reached. */
static struct smtp_qrcpt *
tx_add_remote(struct smtp_tx *tx, const char *address)
{
	struct smtp_qrcpt *q;

	for (size_t i = 0; i < tx->nremote; i++)
		if (strcasecmp(tx->remote[i].address, address) == 0)
			return NULL;
	if (tx->nremote >= STORE_QUEUE_MAX_RCPTS)
		return NULL;
	if (tx->nremote == tx->remote_cap) {
		tx->remote_cap = tx->remote_cap ? tx->remote_cap * 2 : 4;
		tx->remote = xrealloc(tx->remote,
		    tx->remote_cap * sizeof(*tx->remote));
	}
	q = &tx->remote[tx->nremote++];
	memset(q, 0, sizeof(*q));
	str_copy(q->address, address, sizeof(q->address));
	return q;
}

/* Whether n more recipients fit in the queue, and its disk has room:
   false after replying. */
static bool
queue_has_room(struct smtp_session *s, const struct smtp_path *path, size_t n)
{
	struct smtp_tx *tx = s->tx;

	if (tx->nremote + n > STORE_QUEUE_MAX_RCPTS) {
		smtp_reply(s, 452, "4.5.3", "Too many recipients");
		return false;
	}
	if (tx->nremote == 0 && !store_queue_space_ok(s->base.d->store,
	    tx->declared_size)) {
		log_warnx("%s queue disk nearly full: <%s> deferred",
		    conn_id(s->base.c), path->address);
		smtp_reply(s, 452, "4.3.1", "Insufficient system storage, try "
		    "again later");
		return false;
	}
	return true;
}

/* A recipient outside the local domains from an authenticated user: it
   goes to the queue, within the user's submission rate. 0 (accepted, no
   reply yet) or -1 (replied). */
static int
rcpt_remote(struct smtp_session *s, const struct smtp_path *path)
{
	struct smtp_tx *tx = s->tx;
	const struct config *cfg = s->base.d->cfg;
	struct smtp_qrcpt *q;
	unsigned count;

	if (!tx->user_remote && !store_rate_check(s->base.d->store,
	    s->auth_user, cfg->submission_rate_limit,
	    cfg->submission_rate_period, (int64_t)time(NULL), &count)) {
		log_info("%s rate limit: %s sent %u messages in the last %s",
		    conn_id(s->base.c), s->auth_user, count,
		    cfg->submission_rate_period > 3600 ? "day" : "hour");
		smtp_reply(s, 452, "4.7.1", "<%s>: Too many messages from %s "
		    "(limit %u per %s), try again later", path->address,
		    s->auth_user, cfg->submission_rate_limit,
		    cfg->submission_rate_period > 3600 ? "day" : "hour");
		return -1;
	}
	if (!queue_has_room(s, path, 1))
		return -1;
	q = tx_add_remote(tx, path->address);
	if (q != NULL) {
		memcpy(q->orcpt, path->orcpt, sizeof(q->orcpt));
		q->notify = path->notify;
	}
	tx->user_remote = true;
	return 0;
}

/* RCPT to an SRS address of ours (a bounce of forwarded mail): the
   reversed address, local or remote. STORE_OK with users or one remote
   recipient in *fwd_r; STORE_EEXISTS after replying (not ours, forged or
   expired). */
static enum store_err
rcpt_srs(struct smtp_session *s, const struct smtp_path *path,
    uint32_t **ids_r, size_t *n_r, char ***fwd_r, size_t *nfwd_r)
{
	const struct smtp_priv *priv = s->base.d->priv;
	char back[SMTP_PATH_MAX + 1];
	enum store_err se;

	if (priv == NULL || srs_reverse(priv->srs_key, path->address,
	    (int64_t)time(NULL), back, sizeof(back)) != 0) {
		smtp_reply(s, 550, "5.1.1", "<%s>: Recipient address rejected: "
		    "User unknown", path->address);
		return STORE_EEXISTS;
	}
	free(*ids_r);
	*ids_r = NULL;
	*n_r = 0;
	se = store_resolve(s->base.d->store, back, ids_r, n_r);
	if (se == STORE_EPERM) {
		*fwd_r = xcalloc(1, sizeof(char *));
		(*fwd_r)[0] = xstrdup(back);
		*nfwd_r = 1;
		return STORE_OK;
	}
	return se;
}

static enum cmd_result
cmd_rcpt(struct smtp_session *s, const char *args, size_t len)
{
	struct smtp_tx *tx = s->tx;
	struct smtp_path path;
	enum smtp_path_err e;
	enum store_err se;
	const char *err = "";
	uint32_t *ids = NULL;
	size_t n = 0, nfwd = 0;
	char **fwd = NULL;
	enum cmd_result r = CMD_DONE;

	if (tx->nrcpts >= s->base.d->cfg->max_recipients) {
		smtp_reply(s, 452, "4.5.3", "Too many recipients");
		return CMD_DONE;
	}
	e = smtp_parse_path_dsn(args, len, false, tx->smtputf8,
	    smtp_is_submission(s), &path, &err);
	if (e != SMTP_PATH_OK) {
		reply_path_err(s, e, err, false);
		return CMD_DONE;
	}
	if (!path.has_domain)
		se = resolve_postmaster(s, &ids, &n);
	else
		se = store_resolve_all(s->base.d->store, path.address, &ids, &n,
		    &fwd, &nfwd);
	if (se == STORE_ENOTFOUND && path.has_domain &&
	    srs_is_srs(path.address)) {
		/* A bounce to an address we made by SRS: back to where the
		   forwarded message came from. */
		se = rcpt_srs(s, &path, &ids, &n, &fwd, &nfwd);
		if (se == STORE_EEXISTS)
			goto out;   /* replied */
	}
	switch (se) {
	case STORE_OK:
		break;
	case STORE_EPERM:
		if (smtp_is_authenticated(s)) {
			if (rcpt_remote(s, &path) == 0)
				goto accepted;
			goto out;   /* replied */
		}
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
	if (nfwd > 0 && !queue_has_room(s, &path, nfwd))
		goto out;   /* replied */
	if (!rcpt_has_room(s, ids, n)) {
		smtp_reply(s, 452, "4.2.2", "<%s>: Mailbox full", path.address);
		goto out;
	}
	/* The milters see only what smtpd itself would accept. */
	if (smtp_milter_gate(s, MILTER_RCPT, path.address, cmd_rcpt, args,
	    len)) {
		r = CMD_SUSPEND;
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
	/* Targets of the aliases outside our domains: forwarded through the
	   queue, the alias named as the original recipient (RFC 3461 4.2). */
	for (size_t i = 0; i < nfwd; i++) {
		struct smtp_qrcpt *q = tx_add_remote(tx, fwd[i]);
		if (q == NULL)
			continue;   /* already there */
		if (path.orcpt[0] != '\0')
			memcpy(q->orcpt, path.orcpt, sizeof(q->orcpt));
		else
			snprintf(q->orcpt, sizeof(q->orcpt), "rfc822;%s",
			    path.address);
		q->notify = path.notify;
		if (tx->srs_domain[0] == '\0')
			str_copy(tx->srs_domain, path.domain,
			    sizeof(tx->srs_domain));
	}
accepted:
	if (tx->nrcpts++ == 0)
		memcpy(tx->first_rcpt, path.address, sizeof(tx->first_rcpt));
	smtp_set_state(s, SMTP_ST_RCPT);
	smtp_reply(s, 250, "2.1.5", "Recipient <%s> OK", path.address);
out:
	free(ids);
	store_strv_free(fwd, nfwd);
	return r;
}

static enum cmd_result
cmd_data(struct smtp_session *s, const char *args, size_t len)
{
	if (smtp_milter_gate(s, MILTER_DATA, NULL, cmd_data, args, len))
		return CMD_SUSPEND;
	if (smtp_data_begin(s, false) < 0)
		return CMD_DONE;
	smtp_set_state(s, SMTP_ST_DATA);
	smtp_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	return CMD_DONE;
}

static enum cmd_result
cmd_bdat(struct smtp_session *s, const char *args, size_t len)
{
	uint64_t size;
	bool last;
	const char *err;

	if (smtp_parse_bdat(args, len, &size, &last, &err) < 0) {
		/* Without a size the chunk cannot be skipped: the bytes that
		   follow will be read as commands and fail on their own. */
		smtp_reply(s, 501, "5.5.4", "%s", err);
		return CMD_DONE;
	}
	/* The chunk follows the command whatever we answer, so a BDAT that
	   cannot be taken still has its bytes read and dropped. */
	if (s->base.state != SMTP_ST_RCPT && s->base.state != SMTP_ST_BDAT) {
		s->discard_left = size;
		s->discard_reply = s->base.state == SMTP_ST_MAIL ?
		    "554 5.5.1 No valid recipients" :
		    s->base.state == SMTP_ST_INIT ? "503 5.5.1 Send EHLO/HELO first" :
		    "503 5.5.1 Need MAIL and RCPT first";
		s->chunk_input = true;
		smtp_bdat_input(s);
		return CMD_DONE;
	}
	if (s->base.state == SMTP_ST_RCPT && smtp_data_begin(s, true) < 0) {
		s->discard_left = size;
		s->discard_reply = NULL;    /* the error was sent already */
		s->chunk_input = true;
		smtp_bdat_input(s);
		return CMD_DONE;
	}
	smtp_bdat_chunk(s, size, last);
	return CMD_DONE;
}

static enum cmd_result
cmd_rset(struct smtp_session *s, const char *args, size_t len)
{
	smtp_tx_reset(s);
	smtp_reply(s, 250, "2.0.0", "OK");
	return CMD_DONE;
}

static enum cmd_result
cmd_noop(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, 250, "2.0.0", "OK");
	return CMD_DONE;
}

static enum cmd_result
cmd_quit(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, 221, "2.0.0", "%s closing connection",
	    s->base.d->cfg->hostname);
	session_close(&s->base, "quit");
	return CMD_CLOSE;
}

static enum cmd_result
cmd_help(struct smtp_session *s, const char *args, size_t len)
{
	conn_puts(s->base.c, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT "
	    "RSET NOOP QUIT HELP VRFY\r\n");
	conn_puts(s->base.c, "214-2.0.0 STARTTLS AUTH (submission, after TLS)\r\n");
	conn_puts(s->base.c, "214 2.0.0 See RFC 5321\r\n");
	return CMD_DONE;
}

static enum cmd_result
cmd_vrfy(struct smtp_session *s, const char *args, size_t len)
{
	/* Says nothing about whether the address exists (RFC 5321 3.5.3). */
	smtp_reply(s, 252, "2.5.2", "Cannot VRFY user, but will accept "
	    "message and attempt delivery");
	return CMD_DONE;
}

static enum cmd_result
cmd_expn(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, 502, "5.5.1", "EXPN not available");
	return CMD_DONE;
}

static enum cmd_result
cmd_starttls(struct smtp_session *s, const char *args, size_t len)
{
	if (conn_is_tls(s->base.c)) {
		smtp_reply(s, 503, "5.5.1", "TLS already active");
		return CMD_DONE;
	}
	if (!server_has_tls(s->base.d->srv)) {
		smtp_reply(s, 502, "5.5.1", "STARTTLS not available");
		return CMD_DONE;
	}
	smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
	smtp_tx_free(&s->tx);
	login_sasl_abort(&s->login);
	if (conn_starttls(s->base.c) < 0)
		smtp_close_421(s, "4.7.0", "TLS not available");
	return CMD_DONE;
}

/* ---- dispatch ---- */

#define ST_LINE (SMTP_ST_INIT | SMTP_ST_READY | SMTP_ST_MAIL | SMTP_ST_RCPT | \
    SMTP_ST_BDAT)
#define ANY CMD_ARGS_ANY

static const struct smtp_cmd_row cmds[] = {
	/* name        allowed states            args     flags  usage     handler */
	{ { "EHLO",     ST_LINE,                  0, ANY, 0, NULL }, cmd_ehlo },
	{ { "HELO",     ST_LINE,                  0, ANY, 0, NULL }, cmd_helo },
	{ { "MAIL",     SMTP_ST_READY,            0, ANY, 0, NULL }, cmd_mail },
	{ { "RCPT",     SMTP_ST_MAIL | SMTP_ST_RCPT, 0, ANY, 0, NULL }, cmd_rcpt },
	{ { "DATA",     SMTP_ST_RCPT,             0, 0,   0, NULL }, cmd_data },
	{ { "BDAT",     ST_LINE,                  0, ANY, 0, NULL }, cmd_bdat },
	{ { "RSET",     ST_LINE,                  0, 0,   0, NULL }, cmd_rset },
	{ { "NOOP",     ST_LINE,                  0, ANY, 0, NULL }, cmd_noop },
	{ { "QUIT",     ST_LINE,                  0, ANY, 0, NULL }, cmd_quit },
	{ { "HELP",     ST_LINE,                  0, ANY, 0, NULL }, cmd_help },
	{ { "VRFY",     ST_LINE,                  1, ANY, 0, "<address>" },
	    cmd_vrfy },
	{ { "EXPN",     ST_LINE,                  0, ANY, 0, NULL }, cmd_expn },
	{ { "STARTTLS", SMTP_ST_INIT | SMTP_ST_READY, 0, 0, 0, NULL },
	    cmd_starttls },
	{ { "AUTH",     SMTP_ST_READY | SMTP_ST_MAIL | SMTP_ST_RCPT, 0, ANY,
	    CMD_F_SECRET, NULL }, smtp_cmd_auth },
};

static void
bad_sequence(struct smtp_session *s, enum smtp_verb v)
{
	enum smtp_state st = s->base.state;

	if (st == SMTP_ST_INIT && v != SMTP_V_STARTTLS)
		smtp_reply(s, 503, "5.5.1", "Send EHLO/HELO first");
	else if (st == SMTP_ST_BDAT)
		smtp_reply(s, 503, "5.5.1", "Only BDAT, RSET or QUIT may follow BDAT");
	else if (v == SMTP_V_MAIL)
		smtp_reply(s, 503, "5.5.1", "Nested MAIL command");
	else if (v == SMTP_V_RCPT)
		smtp_reply(s, 503, "5.5.1", "Need MAIL before RCPT");
	else if (v == SMTP_V_DATA && st == SMTP_ST_MAIL)
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
	if (!smtp_is_authenticated(s) &&
	    ++s->bad_commands >= SMTP_BAD_CMD_MAX_PREAUTH)
		smtp_close_421(s, "4.7.0", "Too many unrecognized commands");
}

static void
trace(struct smtp_session *s, const char *line, size_t len, int i)
{
	char esc[LOG_ESCAPE_SIZE];

	/* Never log credentials (an AUTH initial response). */
	if (i >= 0 && (cmds[i].def.flags & CMD_F_SECRET))
		len = strlen(cmds[i].def.name);
	log_debug("%s < %s", conn_id(s->base.c),
	    log_escape(line, len, esc, sizeof(esc)));
}

enum cmd_result
smtp_command(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	enum cmd_check chk;
	const char *err;
	int i;

	if (smtp_parse_command(line, len, &cmd, &err) < 0) {
		smtp_reply(s, 500, "5.5.2", "%s", err);
		bad_command(s);
		return CMD_DONE;
	}
	i = CMD_LOOKUP(cmds, smtp_verb_name(cmd.verb), s->base.state,
	    cmd.args_len > 0 ? 1 : 0, &chk);
	if (log_is_debug())
		trace(s, line, len, i);
	switch (chk) {
	case CMD_EUNKNOWN:
		smtp_reply(s, 500, "5.5.1", "Command unrecognized");
		bad_command(s);
		return CMD_DONE;
	case CMD_ESTATE:
		bad_sequence(s, cmd.verb);
		return CMD_DONE;
	case CMD_EARITY:
		if (cmds[i].def.max_args == 0)
			smtp_reply(s, 501, "5.5.4", "%s takes no arguments",
			    cmds[i].def.name);
		else
			smtp_reply(s, 501, "5.5.4", "Syntax: %s %s",
			    cmds[i].def.name, cmds[i].def.usage);
		return CMD_DONE;
	case CMD_OK:
		break;
	}
	return cmds[i].fn(s, cmd.args, cmd.args_len);
}
