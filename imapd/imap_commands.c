/* imap_commands: the static command table and the dispatcher. The
   dispatcher looks a command up ("UID x" forms are rows of their own),
   checks the state mask and the argument count, calls the handler, and
   syncs the selected mailbox before the tagged reply as the row's flags
   say. It never parses arguments beyond counting them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_view.h"

#define ANY IMAP_ARGS_ANY
#define SEQS IMAP_CMDF_USES_SEQS
#define BREAKS IMAP_CMDF_BREAKS_SEQS
#define NOSYNC IMAP_CMDF_NO_SYNC

static const struct imap_cmd_def cmds[] = {
	/* name       states         args     usage (NULL: "takes no arguments")
	   flags, handler */
	{ "CAPABILITY", IMAP_ST_ANY, 0, 0, NULL, 0, imap_cmd_capability },
	{ "NOOP", IMAP_ST_ANY, 0, 0, NULL, IMAP_CMDF_REQUIRES_SYNC,
	    imap_cmd_noop },
	{ "LOGOUT", IMAP_ST_ANY, 0, 0, NULL, NOSYNC, imap_cmd_logout },
	{ "ID", IMAP_ST_ANY, 1, 1,
	    "Usage: ID (\"field\" \"value\" ...) or ID NIL", 0, imap_cmd_id },
	{ "STARTTLS", IMAP_ST_NOT_AUTH, 0, 0, NULL, 0, imap_cmd_starttls },
	{ "LOGIN", IMAP_ST_NOT_AUTH, 2, 2, "Usage: LOGIN user password", 0,
	    imap_cmd_login },
	{ "AUTHENTICATE", IMAP_ST_NOT_AUTH, 1, 2,
	    "Usage: AUTHENTICATE mechanism [ir]", 0, imap_cmd_authenticate },
	{ "ENABLE", IMAP_ST_AUTH, 1, ANY, "Usage: ENABLE capability ...", 0,
	    imap_cmd_enable },
	{ "NAMESPACE", IMAP_ST_AUTHED, 0, 0, NULL, 0, imap_cmd_namespace },
	{ "COMPRESS", IMAP_ST_AUTHED, 1, 1, "Usage: COMPRESS DEFLATE", 0,
	    imap_cmd_compress },
	{ "SELECT", IMAP_ST_AUTHED, 1, 2, "Usage: SELECT mailbox", NOSYNC,
	    imap_cmd_select },
	{ "EXAMINE", IMAP_ST_AUTHED, 1, 2, "Usage: SELECT mailbox", NOSYNC,
	    imap_cmd_examine },
	{ "CREATE", IMAP_ST_AUTHED, 1, 2, "Wrong number of arguments", 0,
	    imap_cmd_create },
	{ "DELETE", IMAP_ST_AUTHED, 1, 1, "Wrong number of arguments", 0,
	    imap_cmd_delete },
	{ "RENAME", IMAP_ST_AUTHED, 2, 2, "Wrong number of arguments", 0,
	    imap_cmd_rename },
	{ "SUBSCRIBE", IMAP_ST_AUTHED, 1, 1, "Wrong number of arguments", 0,
	    imap_cmd_subscribe },
	{ "UNSUBSCRIBE", IMAP_ST_AUTHED, 1, 1, "Wrong number of arguments", 0,
	    imap_cmd_unsubscribe },
	/* LIST's extended forms (RFC 5258) take any number of arguments;
	   their parser words the errors. */
	{ "LIST", IMAP_ST_AUTHED, 0, ANY, NULL, 0, imap_cmd_list },
	{ "LSUB", IMAP_ST_AUTHED, 2, 2, "Usage: LSUB reference pattern", 0,
	    imap_cmd_lsub },
	{ "STATUS", IMAP_ST_AUTHED, 2, 2, "Usage: STATUS mailbox (items)", 0,
	    imap_cmd_status },
	{ "APPEND", IMAP_ST_AUTHED, 2, 4,
	    "Usage: APPEND mailbox [flags] [date-time] literal",
	    IMAP_CMDF_STREAMS_LITERAL, imap_cmd_append },
	{ "IDLE", IMAP_ST_AUTHED, 0, 0, NULL, 0, imap_cmd_idle },
	{ "CHECK", IMAP_ST_SELECTED, 0, 0, NULL, IMAP_CMDF_REQUIRES_SYNC,
	    imap_cmd_check },
	{ "CLOSE", IMAP_ST_SELECTED, 0, 0, NULL, NOSYNC, imap_cmd_close },
	{ "UNSELECT", IMAP_ST_SELECTED, 0, 0, NULL, NOSYNC, imap_cmd_unselect },
	{ "EXPUNGE", IMAP_ST_SELECTED, 0, 0, NULL, BREAKS, imap_cmd_expunge },
	{ "UID EXPUNGE", IMAP_ST_SELECTED, 1, 1, "Usage: UID EXPUNGE set",
	    BREAKS, imap_cmd_uid_expunge },
	/* SEARCH's own parser words the errors of its criteria. */
	{ "SEARCH", IMAP_ST_SELECTED, 0, ANY, NULL, SEQS, imap_cmd_search },
	{ "UID SEARCH", IMAP_ST_SELECTED, 0, ANY, NULL, 0, imap_cmd_search },
	{ "FETCH", IMAP_ST_SELECTED, 2, 3, "Usage: FETCH sequence-set items",
	    SEQS, imap_cmd_fetch },
	{ "UID FETCH", IMAP_ST_SELECTED, 2, 3,
	    "Usage: FETCH sequence-set items", 0, imap_cmd_fetch },
	{ "STORE", IMAP_ST_SELECTED, 3, ANY, "Usage: STORE set item flags",
	    SEQS, imap_cmd_store },
	{ "UID STORE", IMAP_ST_SELECTED, 3, ANY, "Usage: STORE set item flags",
	    0, imap_cmd_store },
	{ "COPY", IMAP_ST_SELECTED, 2, 2, "Usage: COPY set mailbox", 0,
	    imap_cmd_copy },
	{ "UID COPY", IMAP_ST_SELECTED, 2, 2, "Usage: COPY set mailbox", 0,
	    imap_cmd_copy },
	{ "MOVE", IMAP_ST_SELECTED, 2, 2, "Usage: MOVE set mailbox", BREAKS,
	    imap_cmd_move },
	{ "UID MOVE", IMAP_ST_SELECTED, 2, 2, "Usage: MOVE set mailbox",
	    BREAKS, imap_cmd_move },
};

const struct imap_cmd_def *
imap_cmd_lookup(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cmds); i++)
		if (strcasecmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

struct imap_cmd_ctx *
imap_cmd_begin(struct imap_session *s, const char *tag,
    const struct imap_cmd_def *def)
{
	struct imap_cmd_ctx *cmd = xcalloc(1, sizeof(*cmd));

	cmd->tag = xstrdup(tag);
	cmd->def = def;
	cmd->uid = def != NULL && strncasecmp(def->name, "UID ", 4) == 0;
	s->cmd = cmd;
	return cmd;
}

void
imap_cmd_ctx_free(struct imap_cmd_ctx **cmdp)
{
	struct imap_cmd_ctx *cmd = *cmdp;

	if (cmd == NULL)
		return;
	if (cmd->state != NULL && cmd->state_free != NULL)
		cmd->state_free(cmd->state);
	free(cmd->tag);
	free(cmd);
	*cmdp = NULL;
}

void
imap_cmd_sync(struct imap_session *s)
{
	const struct imap_cmd_ctx *cmd = s->cmd;
	unsigned f;

	if (s->sel == NULL || cmd == NULL || cmd->def == NULL)
		return;
	f = cmd->def->flags;
	if (f & IMAP_CMDF_NO_SYNC)
		return;
	if (f & (IMAP_CMDF_BREAKS_SEQS | IMAP_CMDF_REQUIRES_SYNC))
		s->force_sync = true;
	imap_view_sync(s, !(f & IMAP_CMDF_USES_SEQS), cmd->uid);
}

void
imap_cmd_reply(struct imap_session *s, enum imap_status st, const char *fmt,
    ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	imap_cmd_sync(s);
	imap_reply_tagged(s, st, "%s", text);
}

void
imap_cmd_usage(struct imap_session *s)
{
	const struct imap_cmd_def *def = s->cmd->def;

	if (def->usage != NULL)
		imap_cmd_reply(s, IMAP_BAD, "%s", def->usage);
	else
		imap_cmd_reply(s, IMAP_BAD, "%s takes no arguments", def->name);
}

void
imap_cmd_finish(struct imap_session *s)
{
	imap_cmd_ctx_free(&s->cmd);
	if (s->paused) {
		s->paused = false;
		conn_resume(s->base.c);
	}
	imap_parser_trim(s->parser);
}

/* The row of a parsed command; "UID x" takes its first argument as part
   of the name. NULL with a tagged BAD queued if there is none. */
static const struct imap_cmd_def *
lookup_parsed(struct imap_session *s, const struct imap_cmd *cmd,
    const struct imap_arg **args_r)
{
	const struct imap_arg *a = cmd->args;
	const struct imap_cmd_def *def;
	char name[32];

	if (strcasecmp(cmd->name, "UID") != 0) {
		def = imap_cmd_lookup(cmd->name);
	} else if (a >= cmd->args_end || a->type != IMAP_ARG_ATOM) {
		imap_reply_tagged(s, IMAP_BAD, "Missing UID command");
		return NULL;
	} else if (a->len > sizeof(name) - 5) {
		def = NULL;
	} else {
		snprintf(name, sizeof(name), "UID %s", a->str);
		def = imap_cmd_lookup(name);
		*args_r = imap_arg_next(a);
	}
	if (def == NULL)
		imap_reply_tagged(s, IMAP_BAD, "Unknown command");
	return def;
}

/* Checks state and arity; false with a tagged BAD queued. */
static bool
cmd_valid(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	const struct imap_cmd_def *def = s->cmd->def;
	size_t n;

	if (!(def->states & s->base.state)) {
		imap_reply_tagged(s, IMAP_BAD,
		    "Command not valid in this state");
		return false;
	}
	n = imap_args_count(args, end);
	if (n < def->min_args || n > def->max_args) {
		imap_cmd_usage(s);
		return false;
	}
	return true;
}

static void
too_many_bad(struct imap_session *s)
{
	imap_reply_untagged(s, "BYE Too many invalid commands");
	imap_session_close(s, "too-many-bad-commands");
}

void
imap_cmd_run(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args;
	const struct imap_cmd_def *def;
	struct imap_cmd_ctx *ctx;

	/* APPEND's context exists since its literal was announced. */
	ctx = s->cmd != NULL ? s->cmd : imap_cmd_begin(s, cmd->tag, NULL);
	ctx->started = true;
	if ((def = lookup_parsed(s, cmd, &args)) == NULL)
		goto done;
	ctx->def = def;
	ctx->uid = args != cmd->args;
	if (!cmd_valid(s, args, cmd->args_end))
		goto done;
	if (imap_view_prepare(s, args, cmd->args_end))
		return;
	imap_cmd_call(s, args, cmd->args_end);
	return;
done:
	imap_cmd_finish(s);
	if (s->bad_count > IMAP_BAD_CMD_MAX)
		too_many_bad(s);
}

void
imap_cmd_call(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	enum cmd_result r;

	r = s->cmd->def->fn(s, args, end);
	if (r == CMD_CLOSE) {
		imap_session_close(s, "closed");
		return;
	}
	if (r == CMD_SUSPEND) {
		/* A command that reads its own input keeps input running. */
		if (s->cmd != NULL && s->cmd->wait != IMAP_WAIT_INPUT &&
		    !s->paused) {
			s->paused = true;
			conn_pause(s->base.c);
		}
		return;
	}
	imap_cmd_finish(s);
	if (s->bad_count > IMAP_BAD_CMD_MAX)
		too_many_bad(s);
}
