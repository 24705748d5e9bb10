/* cmd_append: APPEND. The mailbox, flags, date and size are checked when
   the message literal is announced, before "+" (or NO [TOOBIG] without
   reading it); the literal is then streamed into store_delivery_write by
   the command's continuation as it arrives, never buffered whole, and
   committed on a worker. One message per command (no MULTIAPPEND). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_commands_util.h"
#include "imap_search.h"
#include "imap_view.h"

struct imap_append {
	struct store_delivery *d;
	uint64_t left;
	uint32_t mbox_id;
	enum store_err err;
	struct store_delivery_result res;
	struct imap_view_claim claim;   /* \Recent, into the selected mailbox */
};

static void
append_free(struct imap_append **ap)
{
	struct imap_append *a = *ap;

	if (a == NULL)
		return;
	store_delivery_free(&a->d);
	free(a);
	*ap = NULL;
}

static void
append_state_free(void *state)
{
	struct imap_append *a = state;

	append_free(&a);
}

/* The continuation while the message literal arrives: feeds its bytes to
   the delivery; once all came, the parser reads the rest of the line. */
static int
append_input(struct imap_session *s)
{
	struct imap_append *a = s->cmd->state;
	const char *p;
	size_t n;

	if (a->left == 0) {
		s->cmd->wait = IMAP_WAIT_NONE;
		s->cmd->continuation = NULL;
		return 1;
	}
	if ((n = conn_peek(s->base.c, &p)) == 0)
		return 0;
	if (n > a->left)
		n = (size_t)a->left;
	if (a->err == STORE_OK)
		a->err = store_delivery_write(a->d, p, n);
	a->left -= n;
	conn_consume(s->base.c, n);
	return 1;
}

/* "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be space-padded). */
static int
parse_datetime(const char *s, size_t len, int64_t *t_r, int32_t *tz_r)
{
	char date[16];
	int64_t day;
	unsigned h, m, sec, zh, zm;
	char sign;
	const char *p;

	if (len != 26 || s[2] != '-')
		return -1;
	memcpy(date, s[0] == ' ' ? s + 1 : s, s[0] == ' ' ? 10 : 11);
	date[s[0] == ' ' ? 10 : 11] = '\0';
	if (imap_date_parse(date, strlen(date), &day) < 0)
		return -1;
	p = s + 11;
	if (sscanf(p, " %2u:%2u:%2u %c%2u%2u", &h, &m, &sec, &sign, &zh, &zm) != 6 ||
	    p[0] != ' ' || p[3] != ':' || p[6] != ':' || p[9] != ' ' ||
	    (sign != '+' && sign != '-') || h > 23 || m > 59 || sec > 60 ||
	    zh > 23 || zm > 59)
		return -1;
	*tz_r = (int32_t)(zh * 60 + zm) * (sign == '-' ? -1 : 1);
	*t_r = day * 86400 + h * 3600 + m * 60 + sec - (int64_t)*tz_r * 60;
	return 0;
}

/* A refusal before the literal is read: a plain line, no sync. */
static void
reply(struct imap_session *s, const char *text)
{
	conn_printf(s->base.c, "%s %s\r\n", s->cmd->tag, text);
}

int
imap_append_literal_begin(struct imap_session *s,
    const struct imap_arg *args, const struct imap_arg *end, uint64_t size)
{
	const struct imap_arg *a = imap_arg_next(args);
	struct store_mailbox mb;
	struct imap_append *ap;
	uint32_t flags = 0;
	char **kw = NULL, *name;
	size_t nkw = 0, i;
	int64_t t = 0;
	int32_t tz = 0;
	enum store_err e;
	int rc = -1;

	if (size > s->base.d->cfg->max_message_size) {
		reply(s, "NO [TOOBIG] Message too large");
		return -1;
	}
	if (a < end && a->type == IMAP_ARG_LIST) {
		if (imap_flags_parse(a + 1, imap_arg_list_end(a), &flags, &kw,
		    &nkw) < 0) {
			reply(s, "BAD Invalid flags");
			return -1;
		}
		a = imap_arg_next(a);
	}
	if (a < end) {
		if (!imap_arg_is_string(a) || a->type == IMAP_ARG_ATOM ||
		    parse_datetime(a->str, a->len, &t, &tz) < 0) {
			reply(s, "BAD Invalid date-time");
			goto out;
		}
		a = imap_arg_next(a);
	}
	if (a != end) {
		reply(s, "BAD Invalid APPEND arguments");
		goto out;
	}
	if (s->cmd->state != NULL) {
		/* a second message literal in one command (MULTIAPPEND) */
		reply(s, "BAD One message per APPEND");
		goto out;
	}
	if ((name = imap_mailbox_arg(s, args)) == NULL)
		goto out;
	e = store_mailbox_get(s->base.d->store, s->user.id, name, &mb);
	free(name);
	if (e == STORE_ENOTFOUND) {
		reply(s, "NO [TRYCREATE] No such mailbox");
		goto out;
	}
	if (e != STORE_OK) {
		imap_reply_store_err(s, e, "APPEND");
		goto out;
	}
	ap = xcalloc(1, sizeof(*ap));
	if ((e = store_delivery_new(s->base.d->store, &ap->d)) != STORE_OK ||
	    (e = store_delivery_add_target(ap->d, s->user.id, mb.id, flags,
	    (const char *const *)kw, nkw, t, tz)) != STORE_OK) {
		append_free(&ap);
		imap_reply_store_err(s, e, "APPEND");
		goto out;
	}
	ap->left = size;
	ap->mbox_id = mb.id;
	s->cmd->state = ap;
	s->cmd->state_free = append_state_free;
	s->cmd->wait = IMAP_WAIT_INPUT;
	s->cmd->continuation = append_input;
	rc = 0;
out:
	for (i = 0; i < nkw; i++)
		free(kw[i]);
	free(kw);
	return rc;
}

static void
append_work(void *arg)
{
	struct imap_append *a = arg;

	if (a->err == STORE_OK)
		a->err = store_delivery_commit(a->d, 0, &a->res);
	if (a->err == STORE_OK)
		imap_view_claim_work(&a->claim);
}

static void
append_done(struct imap_session *s, void *arg)
{
	struct imap_append *a = arg;

	if (a->err == STORE_OK) {
		if (s->sel != NULL && s->sel->mb.id == a->mbox_id)
			s->force_sync = true;
		imap_view_claim_take(s, &a->claim);
		imap_cmd_reply(s, IMAP_OK, "[APPENDUID %u %u] APPEND completed",
		    a->res.uidvalidity, a->res.uid);
	} else if (a->err == STORE_EQUOTA) {
		imap_cmd_reply(s, IMAP_NO, "[OVERQUOTA] Quota exceeded");
	} else {
		imap_reply_store_err(s, a->err, "APPEND");
	}
	append_free(&a);
	imap_cmd_finish(s);
}

enum cmd_result
imap_cmd_append(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	const struct imap_arg *a, *last = NULL;
	struct imap_append *ap = s->cmd->state;

	for (a = args; a < end; a = imap_arg_next(a))
		last = a;
	if (ap == NULL || last == NULL || last->type != IMAP_ARG_LITERAL ||
	    last->str != NULL) {
		imap_cmd_usage(s);
		return CMD_DONE;
	}
	s->cmd->state = NULL;
	if (ap->err != STORE_OK) {
		imap_reply_store_err(s, ap->err, "APPEND");
		append_free(&ap);
		return CMD_DONE;
	}
	imap_view_claim_init(s, ap->mbox_id, &ap->claim);
	imap_session_submit(s, append_work, append_done, ap);
	return CMD_SUSPEND;
}
