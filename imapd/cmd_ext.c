/* cmd_ext: small extension commands and the extension capability list:
   NAMESPACE (RFC 2342), ID (RFC 2971), ENABLE (RFC 5161) and UNSELECT
   (RFC 3691), plus the per-session extension state (s->ext). None of them
   touches the store. A capability is listed here only once its command
   is complete and tested. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ev.h>

#include "log.h"

#include "imap_ext.h"
#include "imap_ext_private.h"
#include "imap_ext2.h"

/* RFC 2971 §3.3: at most 30 pairs, fields <= 30 and values <= 1024
   octets. */
#define ID_PAIRS_MAX  30
#define ID_FIELD_MAX  30
#define ID_VALUE_MAX  1024

struct imap_ext *
imap_ext_get(struct imap_session *s)
{
	if (s->ext == NULL)
		s->ext = xcalloc(1, sizeof(struct imap_ext));
	return s->ext;
}

unsigned
imap_ext_enabled(const struct imap_session *s)
{
	const struct imap_ext *x = s->ext;

	return x != NULL ? x->enabled : 0;
}

void
imap_ext_free(struct imap_session *s)
{
	struct imap_ext *x = s->ext;

	if (x == NULL)
		return;
	ev_timer_stop(s->d->loop, &x->timer);
	imap_ext2_free(x->ext2);
	free(x);
	s->ext = NULL;
}

void
imap_ext_capabilities(const struct imap_session *s, struct buf *out)
{
	/* ID is useful before login too (clients send it early; logs). */
	buf_puts(out, " ID");
	if (s->state == IMAP_ST_NOT_AUTH)
		return;
	buf_puts(out, " ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE"
	    " COMPRESS=DEFLATE STATUS=SIZE");
	buf_printf(out, " APPENDLIMIT=%llu",
	    (unsigned long long)s->d->cfg->max_message_size);
	imap_ext2_capabilities(s, out);
}

enum cmd_result
imap_cmd_namespace(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	if (args != end) {
		imap_reply_tagged(s, "BAD", "NAMESPACE takes no arguments");
		return CMD_DONE;
	}
	/* One personal namespace, empty prefix, '/' as everywhere else. */
	imap_reply_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_reply_tagged(s, "OK", "NAMESPACE completed");
	return CMD_DONE;
}

/* Checks the ID parameter list; appends "key=value" pairs (escaped) to
   logb. -1 if malformed. */
static int
id_params(const struct imap_arg *list, struct buf *logb)
{
	const struct imap_arg *a = list + 1, *end = imap_arg_list_end(list);
	char k[LOG_ESCAPE_SIZE], v[LOG_ESCAPE_SIZE];
	unsigned pairs = 0;

	while (a < end) {
		const struct imap_arg *val = imap_arg_next(a);

		if (val >= end || ++pairs > ID_PAIRS_MAX)
			return -1;
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
		a = imap_arg_next(val);
	}
	return 0;
}

enum cmd_result
imap_cmd_id(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct buf logb;

	if (imap_args_count(args, end) != 1 ||
	    (!imap_arg_is_atom(args, "NIL") && args->type != IMAP_ARG_LIST)) {
		imap_reply_tagged(s, "BAD", "Usage: ID (\"field\" \"value\" ...)"
		    " or ID NIL");
		return CMD_DONE;
	}
	buf_init(&logb);
	if (args->type == IMAP_ARG_LIST && id_params(args, &logb) < 0) {
		buf_free(&logb);
		imap_reply_tagged(s, "BAD", "Invalid ID parameters");
		return CMD_DONE;
	}
	log_info("%s id%s", conn_id(s->c), logb.len ? logb.data : "");
	buf_free(&logb);
	imap_reply_untagged(s, "ID (\"name\" \"" IMAP_SERVER_NAME "\" "
	    "\"version\" \"" IMAP_SERVER_VERSION "\")");
	imap_reply_tagged(s, "OK", "ID completed");
	return CMD_DONE;
}

/* What ENABLE can turn on. A row is live only while the server
   advertises the capability (advertised() true). CONDSTORE and QRESYNC
   add rows here (QRESYNC also sets the CONDSTORE bit, RFC 7162 §3.2.3). */
struct enable_def {
	const char *name;
	unsigned bits;
	bool (*advertised)(const struct imap_session *s);
};

static const struct enable_def enable_defs[] = {
	{ "CONDSTORE", IMAP_EXT_CONDSTORE, imap_ext2_condstore_advertised },
	{ "QRESYNC", IMAP_EXT_CONDSTORE | IMAP_EXT_QRESYNC,
	    imap_ext2_condstore_advertised },
	{ NULL, 0, NULL },
};

enum cmd_result
imap_cmd_enable(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	const struct imap_arg *a;
	const struct enable_def *d;
	struct imap_ext *x;
	struct buf b;

	if (args == end) {
		imap_reply_tagged(s, "BAD", "Usage: ENABLE capability ...");
		return CMD_DONE;
	}
	for (a = args; a < end; a = imap_arg_next(a)) {
		if (a->type != IMAP_ARG_ATOM) {
			imap_reply_tagged(s, "BAD", "ENABLE takes capability names");
			return CMD_DONE;
		}
	}
	x = imap_ext_get(s);
	buf_init(&b);
	buf_puts(&b, "* ENABLED");
	for (a = args; a < end; a = imap_arg_next(a)) {
		/* Unknown names are ignored (RFC 5161 §3.1); only names that
		   were not enabled before are listed. */
		for (d = enable_defs; d->name != NULL; d++) {
			if (strcasecmp(d->name, a->str) != 0 ||
			    (d->advertised != NULL && !d->advertised(s)))
				continue;
			if ((x->enabled & d->bits) != d->bits) {
				x->enabled |= d->bits;
				buf_printf(&b, " %s", d->name);
			}
			break;
		}
	}
	buf_puts(&b, "\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	imap_reply_tagged(s, "OK", "ENABLE completed");
	return CMD_DONE;
}

enum cmd_result
imap_cmd_unselect(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	if (args != end) {
		imap_reply_tagged(s, "BAD", "UNSELECT takes no arguments");
		return CMD_DONE;
	}
	/* Like CLOSE without the expunge: nothing is removed. */
	imap_set_state(s, IMAP_ST_AUTH);
	imap_searchres_reset(s);
	imap_reply_tagged(s, "OK", "UNSELECT completed");
	return CMD_DONE;
}
