/* pop3_commands: the POP3 command table and its handlers (RFC 1939, CAPA
   from RFC 2449, STLS from RFC 2595, AUTH from RFC 5034). The dispatcher
   checks the state and the argument count from the table; handlers never
   repeat those checks. Handlers only queue replies and call the session's
   services (login, streaming, update); they do no I/O of their own. */
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "pop3_session.h"

typedef enum cmd_result pop3_cmd_fn(struct pop3_session *s, const char *line,
    const struct pop3_request *req);

struct pop3_cmd {
	const char *name;
	unsigned states;
	unsigned min_args, max_args;   /* max UINT_MAX: takes the rest */
	pop3_cmd_fn *handler;
};

#define ANY_ARGS 0xffffu
#define ST_AUTH  POP3_ST_AUTHORIZATION
#define ST_TRANS POP3_ST_TRANSACTION

static pop3_cmd_fn cmd_capa, cmd_stls, cmd_user, cmd_pass, cmd_auth,
    cmd_stat, cmd_list, cmd_retr, cmd_dele, cmd_noop, cmd_rset, cmd_quit,
    cmd_top, cmd_uidl;

static const struct pop3_cmd pop3_cmds[] = {
	/* name    allowed states       args         handler */
	{ "CAPA", ST_AUTH | ST_TRANS, 0, 0,        cmd_capa },
	{ "STLS", ST_AUTH,            0, 0,        cmd_stls },
	{ "USER", ST_AUTH,            1, 1,        cmd_user },
	{ "PASS", ST_AUTH,            1, ANY_ARGS, cmd_pass },
	{ "AUTH", ST_AUTH,            0, 2,        cmd_auth },
	{ "STAT", ST_TRANS,           0, 0,        cmd_stat },
	{ "LIST", ST_TRANS,           0, 1,        cmd_list },
	{ "RETR", ST_TRANS,           1, 1,        cmd_retr },
	{ "DELE", ST_TRANS,           1, 1,        cmd_dele },
	{ "NOOP", ST_TRANS,           0, 0,        cmd_noop },
	{ "RSET", ST_TRANS,           0, 0,        cmd_rset },
	{ "QUIT", ST_AUTH | ST_TRANS, 0, 0,        cmd_quit },
	{ "TOP",  ST_TRANS,           2, 2,        cmd_top },
	{ "UIDL", ST_TRANS,           0, 1,        cmd_uidl },
};

static const struct pop3_cmd *
cmd_find(const char *keyword)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(pop3_cmds); i++) {
		if (strcmp(pop3_cmds[i].name, keyword) == 0)
			return &pop3_cmds[i];
	}
	return NULL;
}

/* Counts an error reply; past the limit the session ends. */
static enum cmd_result
bad_command(struct pop3_session *s, const char *msg)
{
	if (++s->bad_commands >= POP3_MAX_BAD_COMMANDS) {
		pop3_reply(s, "-ERR Too many bad commands, closing");
		return CMD_CLOSE;
	}
	pop3_reply(s, "-ERR %s", msg);
	return CMD_DONE;
}

enum cmd_result
pop3_command_dispatch(struct pop3_session *s, char *line, size_t len)
{
	struct pop3_request req;
	const struct pop3_cmd *cmd;
	const char *err;
	unsigned nargs;

	if (pop3_parse_command(line, len, &req, &err) < 0)
		return bad_command(s, err);
	cmd = cmd_find(req.keyword);
	if (cmd == NULL)
		return bad_command(s, "Unknown command");
	if ((cmd->states & s->state) == 0)
		return bad_command(s, "Command not valid in this state");
	nargs = req.too_many_args ? POP3_MAX_ARGS + 1 : req.nargs;
	if (nargs < cmd->min_args ||
	    (cmd->max_args != ANY_ARGS && nargs > cmd->max_args))
		return bad_command(s, "Wrong number of arguments");
	s->bad_commands = 0;
	return cmd->handler(s, line, &req);
}

/* ---- AUTHORIZATION ---- */

static enum cmd_result
cmd_capa(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	bool authz = s->state == POP3_ST_AUTHORIZATION;

	pop3_reply(s, "+OK Capability list follows");
	pop3_reply(s, "TOP");
	pop3_reply(s, "UIDL");
	pop3_reply(s, "RESP-CODES");
	pop3_reply(s, "AUTH-RESP-CODE");
	pop3_reply(s, "PIPELINING");
	if (authz && pop3_can_plaintext_auth(s)) {
		pop3_reply(s, "USER");
		pop3_reply(s, "SASL PLAIN LOGIN");
	}
	if (authz && !conn_is_tls(s->conn) &&
	    server_has_tls(pop3_daemon.server))
		pop3_reply(s, "STLS");
	pop3_reply(s, "IMPLEMENTATION Postroom");
	pop3_reply(s, ".");
	return CMD_DONE;
}

static enum cmd_result
cmd_stls(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	if (conn_is_tls(s->conn))
		return bad_command(s, "TLS is already active");
	if (!server_has_tls(pop3_daemon.server))
		return bad_command(s, "TLS is not available");
	pop3_reply(s, "+OK Begin TLS negotiation");
	if (conn_starttls(s->conn) < 0) {
		log_warnx("%s starttls result=fail", conn_id(s->conn));
		return CMD_CLOSE;
	}
	/* A USER given in plaintext does not carry over into TLS. */
	secret_free(&s->user);
	return CMD_DONE;
}

static const char plaintext_refused[] =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure "
    "connections (use STLS or POP3S)";

static enum cmd_result
cmd_user(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	const struct pop3_span *a = &req->args[0];

	if (!pop3_can_plaintext_auth(s)) {
		pop3_reply(s, "%s", plaintext_refused);
		return CMD_DONE;
	}
	if (a->len > STORE_ADDRESS_MAX)
		return bad_command(s, "User name too long");
	secret_free(&s->user);
	s->user = xstrndup(line + a->off, a->len);
	pop3_reply(s, "+OK");
	return CMD_DONE;
}

static enum cmd_result
cmd_pass(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	char *user, *pass;

	if (!pop3_can_plaintext_auth(s)) {
		pop3_reply(s, "%s", plaintext_refused);
		return CMD_DONE;
	}
	if (s->user == NULL)
		return bad_command(s, "No user name given (USER first)");
	/* RFC 1939 7: the password is the rest of the line, spaces and
	   all. */
	pass = xstrndup(line + req->rest.off, req->rest.len);
	user = s->user;
	s->user = NULL;
	return pop3_session_login(s, user, pass);
}

static enum cmd_result
auth_result(struct pop3_session *s, enum sasl_result r,
    const char *challenge)
{
	char *user, *pass;

	switch (r) {
	case SASL_CONTINUE:
		pop3_set_state(s, POP3_ST_AUTH_SASL);
		pop3_reply(s, "+ %s", challenge);
		return CMD_DONE;
	case SASL_CANCEL:
		sasl_server_reset(&s->sasl);
		pop3_set_state(s, POP3_ST_AUTHORIZATION);
		pop3_reply(s, "-ERR Authentication cancelled");
		return CMD_DONE;
	case SASL_FAIL:
		sasl_server_reset(&s->sasl);
		pop3_set_state(s, POP3_ST_AUTHORIZATION);
		return bad_command(s, "Malformed authentication data");
	case SASL_DONE:
		break;
	}
	pop3_set_state(s, POP3_ST_AUTHORIZATION);
	/* No proxy logins: an authzid other than the user is refused like
	   a wrong password (through the same delayed path). Compared
	   without case, as smtpd does: the login name is lowered later. */
	user = s->sasl.user;
	pass = s->sasl.pass;
	s->sasl.user = s->sasl.pass = NULL;
	if (s->sasl.authzid != NULL && strcasecmp(s->sasl.authzid, user) != 0)
		pass[0] = '\0';
	sasl_server_reset(&s->sasl);
	return pop3_session_login(s, user, pass);
}

static enum cmd_result
cmd_auth(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	enum sasl_mech mech;
	const char *challenge;
	char name[16];
	char *ir = NULL;
	enum sasl_result r;

	if (!pop3_can_plaintext_auth(s)) {
		pop3_reply(s, "%s", plaintext_refused);
		return CMD_DONE;
	}
	if (req->nargs == 0) {
		/* Pre-RFC 5034 clients (Outlook) list mechanisms so. */
		pop3_reply(s, "+OK");
		pop3_reply(s, "PLAIN");
		pop3_reply(s, "LOGIN");
		pop3_reply(s, ".");
		return CMD_DONE;
	}
	if (req->args[0].len >= sizeof(name))
		return bad_command(s, "Unsupported authentication mechanism");
	memcpy(name, line + req->args[0].off, req->args[0].len);
	name[req->args[0].len] = '\0';
	mech = sasl_mech_parse(name);
	if (mech == SASL_MECH_NONE)
		return bad_command(s, "Unsupported authentication mechanism");
	sasl_server_init(&s->sasl, mech);
	if (req->nargs == 2)
		ir = xstrndup(line + req->args[1].off, req->args[1].len);
	r = sasl_server_start(&s->sasl, ir, &challenge);
	secret_free(&ir);
	return auth_result(s, r, challenge);
}

enum cmd_result
pop3_auth_continue(struct pop3_session *s, char *line, size_t len)
{
	const char *challenge;
	enum sasl_result r;

	r = sasl_server_step(&s->sasl, line, len, &challenge);
	return auth_result(s, r, challenge);
}

/* ---- TRANSACTION ---- */

/* The message named by the argument, or NULL after an -ERR reply. */
static struct pop3_msg *
arg_msg(struct pop3_session *s, const char *line, const struct pop3_span *a,
    uint32_t *idx_r)
{
	uint32_t n;

	if (pop3_parse_msgnum(line + a->off, a->len, s->nmsgs, &n) < 0) {
		pop3_reply(s, "-ERR No such message");
		return NULL;
	}
	if (s->msgs[n - 1].deleted) {
		pop3_reply(s, "-ERR Message %" PRIu32 " is deleted", n);
		return NULL;
	}
	*idx_r = n - 1;
	return &s->msgs[n - 1];
}

static enum cmd_result
cmd_stat(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	pop3_reply(s, "+OK %" PRIu32 " %" PRIu64, s->nmsgs - s->ndeleted,
	    s->size_total);
	return CMD_DONE;
}

static enum cmd_result
cmd_list(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	struct pop3_msg *m;
	uint32_t i;

	if (req->nargs == 1) {
		if ((m = arg_msg(s, line, &req->args[0], &i)) != NULL)
			pop3_reply(s, "+OK %" PRIu32 " %" PRIu64, i + 1, m->size);
		return CMD_DONE;
	}
	pop3_reply(s, "+OK %" PRIu32 " messages (%" PRIu64 " octets)",
	    s->nmsgs - s->ndeleted, s->size_total);
	for (i = 0; i < s->nmsgs; i++) {
		if (!s->msgs[i].deleted)
			pop3_reply(s, "%" PRIu32 " %" PRIu64, i + 1,
			    s->msgs[i].size);
	}
	pop3_reply(s, ".");
	return CMD_DONE;
}

static enum cmd_result
cmd_uidl(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	char uidl[POP3_UIDL_MAX + 1];
	struct pop3_msg *m;
	uint32_t i;

	if (req->nargs == 1) {
		if ((m = arg_msg(s, line, &req->args[0], &i)) != NULL) {
			pop3_uidl_format(s->uidvalidity, m->uid, uidl,
			    sizeof(uidl));
			pop3_reply(s, "+OK %" PRIu32 " %s", i + 1, uidl);
		}
		return CMD_DONE;
	}
	pop3_reply(s, "+OK");
	for (i = 0; i < s->nmsgs; i++) {
		if (s->msgs[i].deleted)
			continue;
		pop3_uidl_format(s->uidvalidity, s->msgs[i].uid, uidl,
		    sizeof(uidl));
		pop3_reply(s, "%" PRIu32 " %s", i + 1, uidl);
	}
	pop3_reply(s, ".");
	return CMD_DONE;
}

static enum cmd_result
cmd_retr(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	uint32_t i;

	if (arg_msg(s, line, &req->args[0], &i) == NULL)
		return CMD_DONE;
	return pop3_session_send_msg(s, i, false, 0);
}

static enum cmd_result
cmd_top(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	const struct pop3_span *a = &req->args[1];
	uint32_t i, lines;

	if (arg_msg(s, line, &req->args[0], &i) == NULL)
		return CMD_DONE;
	if (pop3_parse_uint(line + a->off, a->len, &lines) < 0)
		return bad_command(s, "Invalid number of lines");
	return pop3_session_send_msg(s, i, true, lines);
}

static enum cmd_result
cmd_dele(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	struct pop3_msg *m;
	uint32_t i;

	if ((m = arg_msg(s, line, &req->args[0], &i)) == NULL)
		return CMD_DONE;
	m->deleted = true;
	s->ndeleted++;
	s->size_total -= m->size;
	pop3_reply(s, "+OK Message %" PRIu32 " deleted", i + 1);
	return CMD_DONE;
}

static enum cmd_result
cmd_noop(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	pop3_reply(s, "+OK");
	return CMD_DONE;
}

static enum cmd_result
cmd_rset(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	uint32_t i;

	for (i = 0; i < s->nmsgs; i++) {
		if (s->msgs[i].deleted) {
			s->msgs[i].deleted = false;
			s->size_total += s->msgs[i].size;
		}
	}
	s->ndeleted = 0;
	pop3_reply(s, "+OK %" PRIu32 " messages (%" PRIu64 " octets)",
	    s->nmsgs, s->size_total);
	return CMD_DONE;
}

static enum cmd_result
cmd_quit(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	if (s->state == POP3_ST_TRANSACTION && pop3_session_has_updates(s))
		return pop3_session_update(s);
	pop3_reply(s, "+OK Logging out");
	return CMD_CLOSE;
}
