/* cmd_any: the commands valid in every state: CAPABILITY, NOOP, LOGOUT
   and ID (RFC 2971). None touches the store; NOOP's mailbox news come
   from the dispatcher's sync (its row asks the sync to read the store).
   Peer strings from ID are logged escaped and truncated, never echoed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_features.h"

/* RFC 2971 §3.3: at most 30 pairs, fields <= 30 and values <= 1024
   octets. */
#define ID_PAIRS_MAX  30
#define ID_FIELD_MAX  30
#define ID_VALUE_MAX  1024

enum cmd_result
imap_cmd_capability(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct buf b;

	(void)args;
	(void)end;
	buf_init(&b);
	buf_puts(&b, "* CAPABILITY ");
	imap_capability_string(s, &b);
	buf_puts(&b, "\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	imap_cmd_reply(s, IMAP_OK, "Capability completed");
	return CMD_DONE;
}

enum cmd_result
imap_cmd_noop(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)args;
	(void)end;
	imap_cmd_reply(s, IMAP_OK, "NOOP completed");
	return CMD_DONE;
}

enum cmd_result
imap_cmd_logout(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)args;
	(void)end;
	imap_reply_untagged(s, "BYE Logging out");
	imap_cmd_reply(s, IMAP_OK, "Logout completed");
	session_set_state(&s->base, IMAP_ST_LOGOUT);
	return CMD_CLOSE;
}

/* One "field" value pair of ID as key="value" for the log line; -1 if
   malformed. */
static int
id_pair(const struct imap_arg *a, const struct imap_arg *val,
    struct buf *logb)
{
	char k[LOG_ESCAPE_SIZE], v[LOG_ESCAPE_SIZE];

	if (a->type != IMAP_ARG_QUOTED && a->type != IMAP_ARG_LITERAL)
		return -1;
	if (a->str == NULL || a->len > ID_FIELD_MAX)
		return -1;
	if (imap_arg_is_atom(val, "NIL")) {
		snprintf(v, sizeof(v), "NIL");
	} else if ((val->type == IMAP_ARG_QUOTED ||
	    val->type == IMAP_ARG_LITERAL) && val->str != NULL &&
	    val->len <= ID_VALUE_MAX) {
		log_escape(val->str, val->len, v, sizeof(v));
	} else {
		return -1;
	}
	log_escape(a->str, a->len, k, sizeof(k));
	/* spaces would make the key=value log line ambiguous */
	for (char *p = k; *p; p++)
		if (*p == ' ' || *p == '=')
			*p = '_';
	buf_printf(logb, " %s=\"%s\"", k, v);
	return 0;
}

/* Checks the ID parameter list; appends "key=value" pairs (escaped) to
   logb. -1 if malformed. */
static int
id_params(const struct imap_arg *list, struct buf *logb)
{
	const struct imap_arg *a = list + 1, *end = imap_arg_list_end(list);
	unsigned pairs = 0;

	while (a < end) {
		const struct imap_arg *val = imap_arg_next(a);

		if (val >= end || ++pairs > ID_PAIRS_MAX)
			return -1;
		if (id_pair(a, val, logb) < 0)
			return -1;
		a = imap_arg_next(val);
	}
	return 0;
}

enum cmd_result
imap_cmd_id(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct buf logb;

	(void)end;
	if (!imap_arg_is_atom(args, "NIL") && args->type != IMAP_ARG_LIST) {
		imap_cmd_usage(s);
		return CMD_DONE;
	}
	buf_init(&logb);
	if (args->type == IMAP_ARG_LIST && id_params(args, &logb) < 0) {
		buf_free(&logb);
		imap_cmd_reply(s, IMAP_BAD, "Invalid ID parameters");
		return CMD_DONE;
	}
	log_info("%s id%s", conn_id(s->base.c), logb.len ? logb.data : "");
	buf_free(&logb);
	imap_reply_untagged(s, "ID (\"name\" \"" IMAP_SERVER_NAME "\" "
	    "\"version\" \"" IMAP_SERVER_VERSION "\")");
	imap_cmd_reply(s, IMAP_OK, "ID completed");
	return CMD_DONE;
}
