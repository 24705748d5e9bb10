/* cmd_mailbox: the commands on mailboxes by name: CREATE (with USE,
   CREATE-SPECIAL-USE, RFC 6154 §3), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE
   and STATUS. Writes run on a worker; STATUS reads the index on the loop.
   Names are decoded by imap_mailbox_arg (modified UTF-7 on the wire, UTF-8
   in the store, '/' as delimiter); LIST and LSUB are cmd_list.c's. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_commands_util.h"
#include "imap_features.h"

/* ---- writes ---- */

enum mbox_op { OP_CREATE, OP_DELETE, OP_RENAME, OP_SUBSCRIBE,
	OP_UNSUBSCRIBE };

struct mbox_job {
	struct store *st;
	enum mbox_op op;
	uint32_t user_id;
	char *name, *name2;
	uint32_t special_use;       /* CREATE ... (USE (...)) */
	enum store_err err;
	const char *what;
};

/* Creates the missing parents of name ("a/b/c": "a", "a/b"). */
static enum store_err
create_parents(struct store *st, uint32_t user_id, const char *name)
{
	char *copy = xstrdup(name), *p;
	struct store_mailbox mb;
	enum store_err e = STORE_OK;

	for (p = strchr(copy, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (store_mailbox_get(st, user_id, copy, &mb) == STORE_ENOTFOUND) {
			e = store_mailbox_create(st, user_id, copy, 0, &mb);
			if (e == STORE_EEXISTS)
				e = STORE_OK;
		}
		*p = '/';
		if (e != STORE_OK)
			break;
	}
	free(copy);
	return e;
}

static void
mbox_work(void *arg)
{
	struct mbox_job *j = arg;
	struct store_mailbox mb;

	switch (j->op) {
	case OP_CREATE:
		if ((j->err = create_parents(j->st, j->user_id, j->name)) ==
		    STORE_OK)
			j->err = store_mailbox_create(j->st, j->user_id, j->name,
			    j->special_use, &mb);
		break;
	case OP_DELETE:
		j->err = store_mailbox_delete(j->st, j->user_id, j->name);
		break;
	case OP_RENAME:
		if (store_mailbox_get(j->st, j->user_id, j->name2, &mb) ==
		    STORE_OK) {
			j->err = STORE_EEXISTS;
			break;
		}
		if ((j->err = create_parents(j->st, j->user_id, j->name2)) ==
		    STORE_OK)
			j->err = store_mailbox_rename(j->st, j->user_id, j->name,
			    j->name2);
		break;
	case OP_SUBSCRIBE:
	case OP_UNSUBSCRIBE:
		j->err = store_subscription_set(j->st, j->user_id, j->name,
		    j->op == OP_SUBSCRIBE);
		break;
	}
}

static void
mbox_done(struct imap_session *s, void *arg)
{
	struct mbox_job *j = arg;

	if (j->err == STORE_OK) {
		imap_cmd_reply(s, IMAP_OK, "%s completed", j->what);
	} else if (j->err == STORE_ENOTFOUND) {
		imap_cmd_reply(s, IMAP_NO, "[NONEXISTENT] No such mailbox");
	} else if (j->err == STORE_EPERM && j->op == OP_DELETE) {
		imap_cmd_reply(s, IMAP_NO, "[CANNOT] INBOX cannot be deleted");
	} else {
		imap_reply_store_err(s, j->err, j->what);
	}
	free(j->name);
	free(j->name2);
	free(j);
	imap_cmd_finish(s);
}

static enum cmd_result
mbox_cmd(struct imap_session *s, const struct imap_arg *args,
    enum mbox_op op, const char *what, uint32_t special_use)
{
	struct mbox_job *j;
	char *name, *name2 = NULL;

	if ((name = imap_mailbox_arg(s, args)) == NULL)
		return CMD_DONE;
	if (op == OP_RENAME &&
	    (name2 = imap_mailbox_arg(s, imap_arg_next(args))) == NULL) {
		free(name);
		return CMD_DONE;
	}
	if ((op == OP_CREATE && strcmp(name, "INBOX") == 0) ||
	    (op == OP_RENAME && strcmp(name2, "INBOX") == 0)) {
		imap_cmd_reply(s, IMAP_NO, "[ALREADYEXISTS] INBOX exists");
		goto refuse;
	}
	if (op == OP_DELETE && strcmp(name, "INBOX") == 0) {
		imap_cmd_reply(s, IMAP_NO, "[CANNOT] INBOX cannot be deleted");
		goto refuse;
	}
	if (op == OP_RENAME && strncmp(name2, name, strlen(name)) == 0 &&
	    name2[strlen(name)] == '/') {
		imap_cmd_reply(s, IMAP_NO, "[CANNOT] Cannot rename into itself");
		goto refuse;
	}
	j = xcalloc(1, sizeof(*j));
	j->st = s->base.d->store;
	j->op = op;
	j->user_id = s->user.id;
	j->name = name;
	j->name2 = name2;
	j->what = what;
	j->special_use = special_use;
	imap_session_submit(s, mbox_work, mbox_done, j);
	return CMD_SUSPEND;
refuse:
	free(name);
	free(name2);
	return CMD_DONE;
}

/* The (USE (\Drafts ...)) parameter list of CREATE (RFC 6154 §3). 0, or
   -1 with a tagged reply queued. */
static int
create_params(struct imap_session *s, const struct imap_arg *l,
    uint32_t *su_r)
{
	const struct imap_arg *a, *u;
	size_t i;

	*su_r = 0;
	if (l->type != IMAP_ARG_LIST) {
		imap_cmd_reply(s, IMAP_BAD, "Usage: CREATE mailbox [(USE (...))]");
		return -1;
	}
	for (a = l + 1; a < imap_arg_list_end(l); a = imap_arg_next(u)) {
		u = imap_arg_next(a);
		if (!imap_arg_is_atom(a, "USE") || u >= imap_arg_list_end(l) ||
		    u->type != IMAP_ARG_LIST) {
			imap_cmd_reply(s, IMAP_BAD, "Unknown CREATE parameter");
			return -1;
		}
		for (a = u + 1; a < imap_arg_list_end(u); a = imap_arg_next(a)) {
			for (i = 0; i < IMAP_SPECIAL_USE_N; i++)
				if (imap_arg_is_atom(a, imap_special_uses[i].name))
					break;
			if (i == IMAP_SPECIAL_USE_N) {
				imap_cmd_reply(s, IMAP_NO, "[USEATTR] Unsupported"
				    " special-use");
				return -1;
			}
			*su_r |= imap_special_uses[i].bit;
		}
	}
	return 0;
}

enum cmd_result
imap_cmd_create(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	uint32_t su = 0;

	if (imap_args_count(args, end) == 2 &&
	    create_params(s, imap_arg_next(args), &su) < 0)
		return CMD_DONE;
	return mbox_cmd(s, args, OP_CREATE, "CREATE", su);
}

enum cmd_result
imap_cmd_delete(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)end;
	return mbox_cmd(s, args, OP_DELETE, "DELETE", 0);
}

enum cmd_result
imap_cmd_rename(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)end;
	return mbox_cmd(s, args, OP_RENAME, "RENAME", 0);
}

enum cmd_result
imap_cmd_subscribe(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)end;
	return mbox_cmd(s, args, OP_SUBSCRIBE, "SUBSCRIBE", 0);
}

enum cmd_result
imap_cmd_unsubscribe(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)end;
	return mbox_cmd(s, args, OP_UNSUBSCRIBE, "UNSUBSCRIBE", 0);
}

/* ---- STATUS ---- */

enum cmd_result
imap_cmd_status(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	const struct imap_arg *list, *a;
	struct store_mailbox mb;
	enum store_err e;
	struct buf b;
	char *name;
	bool first = true;

	(void)end;
	if ((list = imap_arg_next(args))->type != IMAP_ARG_LIST ||
	    list->span == 0) {
		imap_cmd_usage(s);
		return CMD_DONE;
	}
	for (a = list + 1; a < imap_arg_list_end(list); a = imap_arg_next(a)) {
		if (a->type != IMAP_ARG_ATOM ||
		    (strcasecmp(a->str, "MESSAGES") && strcasecmp(a->str, "RECENT") &&
		    strcasecmp(a->str, "UIDNEXT") &&
		    strcasecmp(a->str, "UIDVALIDITY") &&
		    strcasecmp(a->str, "UNSEEN") &&
		    strcasecmp(a->str, "SIZE") &&
		    strcasecmp(a->str, "HIGHESTMODSEQ"))) {
			imap_cmd_reply(s, IMAP_BAD, "Unknown STATUS item");
			return CMD_DONE;
		}
	}
	if ((name = imap_mailbox_arg(s, args)) == NULL)
		return CMD_DONE;
	e = store_mailbox_get(s->base.d->store, s->user.id, name, &mb);
	if (e != STORE_OK) {
		free(name);
		imap_reply_store_err(s, e, "STATUS");
		return CMD_DONE;
	}
	buf_init(&b);
	buf_puts(&b, "* STATUS ");
	imap_buf_mailbox(&b, name);
	buf_puts(&b, " (");
	for (a = list + 1; a < imap_arg_list_end(list); a = imap_arg_next(a)) {
		if (!first)
			buf_putc(&b, ' ');
		first = false;
		if (strcasecmp(a->str, "MESSAGES") == 0)
			buf_printf(&b, "MESSAGES %u", mb.messages);
		else if (strcasecmp(a->str, "RECENT") == 0)
			buf_printf(&b, "RECENT %u", mb.recent);
		else if (strcasecmp(a->str, "UIDNEXT") == 0)
			buf_printf(&b, "UIDNEXT %u", mb.uidnext);
		else if (strcasecmp(a->str, "UIDVALIDITY") == 0)
			buf_printf(&b, "UIDVALIDITY %u", mb.uidvalidity);
		else if (strcasecmp(a->str, "SIZE") == 0)  /* RFC 8438 */
			buf_printf(&b, "SIZE %llu", (unsigned long long)mb.size);
		else if (strcasecmp(a->str, "HIGHESTMODSEQ") == 0) {
			/* RFC 7162 §3.1: a CONDSTORE enabling command */
			buf_printf(&b, "HIGHESTMODSEQ %llu",
			    (unsigned long long)mb.highestmodseq);
			imap_condstore_enable(s);
		}
		else
			buf_printf(&b, "UNSEEN %u", mb.unseen);
	}
	buf_puts(&b, ")\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	free(name);
	imap_cmd_reply(s, IMAP_OK, "STATUS completed");
	return CMD_DONE;
}
