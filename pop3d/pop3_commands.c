/* pop3_commands: the POP3 command table and its handlers (RFC 1939, CAPA
   from RFC 2449, STLS from RFC 2595, AUTH from RFC 5034). The dispatcher
   (cmd_lookup) checks the state and the argument count from the table;
   handlers never repeat those checks. Handlers only queue replies and
   call the services of login.c, the session (streaming) and the maildrop
   (update); they do no I/O of their own. */
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "pop3_session.h"

typedef enum cmd_result pop3_cmd_fn(struct pop3_session *s, const char *line,
    const struct pop3_request *req);

/* A row: the shared part (name, states, arity, flags), then the
   handler. */
struct pop3_cmd {
	struct cmd_def def;
	pop3_cmd_fn *fn;
};

#define ANY_ARGS CMD_ARGS_ANY
#define SECRET   CMD_F_SECRET
#define ST_AUTH  POP3_ST_AUTHORIZATION
#define ST_TRANS POP3_ST_TRANSACTION

static pop3_cmd_fn cmd_capa, cmd_stls, cmd_user, cmd_pass, cmd_auth,
    cmd_stat, cmd_list, cmd_retr, cmd_dele, cmd_noop, cmd_rset, cmd_quit,
    cmd_top, cmd_uidl;

static const struct pop3_cmd pop3_cmds[] = {
	/* name   allowed states      args         flags  usage  handler */
	{ { "CAPA", ST_AUTH | ST_TRANS, 0, 0,        0,      NULL }, cmd_capa },
	{ { "STLS", ST_AUTH,            0, 0,        0,      NULL }, cmd_stls },
	{ { "USER", ST_AUTH,            1, 1,        0,      NULL }, cmd_user },
	{ { "PASS", ST_AUTH,            1, ANY_ARGS, SECRET, NULL }, cmd_pass },
	{ { "AUTH", ST_AUTH,            0, 2,        SECRET, NULL }, cmd_auth },
	{ { "STAT", ST_TRANS,           0, 0,        0,      NULL }, cmd_stat },
	{ { "LIST", ST_TRANS,           0, 1,        0,      NULL }, cmd_list },
	{ { "RETR", ST_TRANS,           1, 1,        0,      NULL }, cmd_retr },
	{ { "DELE", ST_TRANS,           1, 1,        0,      NULL }, cmd_dele },
	{ { "NOOP", ST_TRANS,           0, 0,        0,      NULL }, cmd_noop },
	{ { "RSET", ST_TRANS,           0, 0,        0,      NULL }, cmd_rset },
	{ { "QUIT", ST_AUTH | ST_TRANS, 0, 0,        0,      NULL }, cmd_quit },
	{ { "TOP",  ST_TRANS,           2, 2,        0,      NULL }, cmd_top },
	{ { "UIDL", ST_TRANS,           0, 1,        0,      NULL }, cmd_uidl },
};

enum cmd_result
pop3_bad_command(struct pop3_session *s, const char *msg)
{
	if (session_count_error(&s->base, POP3_BAD_CMD_MAX)) {
		pop3_reply(s, "-ERR Too many bad commands, closing");
		session_close(&s->base, "too many bad commands");
		return CMD_CLOSE;
	}
	pop3_reply(s, "-ERR %s", msg);
	return CMD_DONE;
}

enum cmd_result
pop3_command_dispatch(struct pop3_session *s, char *line, size_t len)
{
	struct pop3_request req;
	enum cmd_check chk;
	const char *err;
	int i;

	if (pop3_parse_command(line, len, &req, &err) < 0)
		return pop3_bad_command(s, err);
	i = CMD_LOOKUP(pop3_cmds, req.keyword, s->base.state,
	    req.too_many_args ? POP3_ARGS_MAX + 1 : req.nargs, &chk);
	if (log_is_debug()) {
		char esc[LOG_ESCAPE_SIZE];

		/* Never log credentials. */
		log_debug("%s < %s", conn_id(s->base.c), log_escape(line,
		    i >= 0 && (pop3_cmds[i].def.flags & SECRET) ?
		    strlen(req.keyword) : len, esc, sizeof(esc)));
	}
	switch (chk) {
	case CMD_EUNKNOWN:
		return pop3_bad_command(s, "Unknown command");
	case CMD_ESTATE:
		return pop3_bad_command(s, "Command not valid in this state");
	case CMD_EARITY:
		return pop3_bad_command(s, "Wrong number of arguments");
	case CMD_OK:
		break;
	}
	session_reset_errors(&s->base);
	return pop3_cmds[i].fn(s, line, &req);
}

/* ---- AUTHORIZATION ---- */

static enum cmd_result
cmd_capa(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	bool authz = s->base.state == POP3_ST_AUTHORIZATION;

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
	if (authz && !conn_is_tls(s->base.c) &&
	    server_has_tls(s->base.d->srv))
		pop3_reply(s, "STLS");
	pop3_reply(s, "IMPLEMENTATION Postroom");
	pop3_reply(s, ".");
	return CMD_DONE;
}

static enum cmd_result
cmd_stls(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	if (conn_is_tls(s->base.c))
		return pop3_bad_command(s, "TLS is already active");
	if (!server_has_tls(s->base.d->srv))
		return pop3_bad_command(s, "TLS is not available");
	pop3_reply(s, "+OK Begin TLS negotiation");
	if (conn_starttls(s->base.c) < 0) {
		log_warnx("%s starttls result=fail", conn_id(s->base.c));
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
		return pop3_bad_command(s, "User name too long");
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
		return pop3_bad_command(s, "No user name given (USER first)");
	/* RFC 1939 7: the password is the rest of the line, spaces and
	   all. */
	pass = xstrndup(line + req->rest.off, req->rest.len);
	user = s->user;
	s->user = NULL;
	return login_start(&s->login, "USER", user, pass,
	    pop3_login_job_new());
}

static enum cmd_result
cmd_auth(struct pop3_session *s, const char *line,
    const struct pop3_request *req)
{
	enum sasl_mech mech;
	enum cmd_result r;
	char name[16];
	char *ir = NULL;

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
		return pop3_bad_command(s, "Unsupported authentication mechanism");
	memcpy(name, line + req->args[0].off, req->args[0].len);
	name[req->args[0].len] = '\0';
	mech = sasl_mech_parse(name);
	if (mech == SASL_MECH_NONE)
		return pop3_bad_command(s, "Unsupported authentication mechanism");
	if (req->nargs == 2)
		ir = xstrndup(line + req->args[1].off, req->args[1].len);
	r = login_sasl_start(&s->login, mech, ir, pop3_login_job_new());
	secret_free(&ir);
	return r;
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
		return pop3_bad_command(s, "Invalid number of lines");
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
	if (s->base.state == POP3_ST_TRANSACTION &&
	    pop3_maildrop_has_updates(s))
		return pop3_maildrop_update(s);
	pop3_reply(s, "+OK Logging out");
	return CMD_CLOSE;
}
