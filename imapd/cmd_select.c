/* cmd_select: SELECT, EXAMINE (with CONDSTORE/QRESYNC parameters, RFC
   7162), UNSELECT (RFC 3691), CLOSE and CHECK: opening and closing the
   per-session view of a mailbox. Opening (and claiming \Recent) runs on a
   worker; CLOSE's silent expunge is cmd_expunge.c's. */
#include <stdlib.h>
#include <string.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_commands_util.h"
#include "imap_features.h"
#include "imap_modseq.h"
#include "imap_view.h"

struct select_job {
	struct store *st;
	uint32_t user_id;
	char *name;
	bool readonly;
	struct imap_view *v;
	enum store_err err;
	struct imap_select_params params;   /* CONDSTORE/QRESYNC (RFC 7162) */
	uint32_t *vanished;                 /* QRESYNC: owned, sorted */
	size_t nvanished;
};

static void
select_work(void *arg)
{
	struct select_job *j = arg;

	j->err = imap_view_open(j->st, j->user_id, j->name, j->readonly, &j->v);
	if (j->err != STORE_OK || !j->params.qresync)
		return;
	/* QRESYNC's reply lists changed messages: read the view now. */
	if ((j->err = imap_view_load(j->st, j->v)) != STORE_OK) {
		imap_view_free(&j->v);
		return;
	}
	imap_qresync_work(j->st, j->v, &j->params, &j->vanished,
	    &j->nvanished);
}

/* EXISTS, RECENT and the first unseen MSN: the SELECT's counts, or the
   view's own when it was read at once (QRESYNC). */
static void
select_counts(struct imap_view *v, size_t *exists_r, size_t *recent_r,
    size_t *unseen_r)
{
	size_t i;

	*recent_r = imap_view_recent_count(v);
	if (!v->loaded) {
		*exists_r = v->snap_exists;
		*unseen_r = v->first_unseen;
		return;
	}
	*exists_r = v->n;
	*unseen_r = 0;
	for (i = 0; i < v->n && *unseen_r == 0; i++)
		if (!(v->msgs[i].flags & STORE_F_SEEN))
			*unseen_r = i + 1;
}

static void
select_done(struct imap_session *s, void *arg)
{
	struct select_job *j = arg;
	struct imap_view *v = j->v;
	struct buf b;
	size_t exists, recent, unseen;

	if (j->params.condstore)
		imap_condstore_enable(s);   /* before the state is SELECTED */
	if (j->err != STORE_OK) {
		imap_reply_store_err(s, j->err, "SELECT");
		goto out;
	}
	s->sel = v;
	imap_set_state(s, IMAP_ST_SELECTED);
	imap_view_watch(s);
	buf_init(&b);
	imap_buf_flags_update(&b, v);
	select_counts(v, &exists, &recent, &unseen);
	buf_printf(&b, "* %zu EXISTS\r\n* %zu RECENT\r\n", exists, recent);
	v->reported_exists = (uint32_t)exists;
	v->reported_recent = (uint32_t)recent;
	if (unseen)
		buf_printf(&b, "* OK [UNSEEN %zu] First unseen\r\n", unseen);
	buf_printf(&b, "* OK [UIDVALIDITY %u] UIDs valid\r\n"
	    "* OK [UIDNEXT %u] Predicted next UID\r\n", v->mb.uidvalidity,
	    v->mb.uidnext);
	/* Every mailbox has mod-sequences: HIGHESTMODSEQ on every SELECT,
	   never NOMODSEQ (RFC 7162 §3.1.2.1). */
	buf_printf(&b, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
	    (unsigned long long)v->mb.highestmodseq);
	imap_qresync_reply(s, &j->params, j->vanished, j->nvanished, &b);
	imap_send_buf(s, &b);
	buf_free(&b);
	imap_cmd_reply(s, IMAP_OK, "[%s] %s completed",
	    v->readonly ? "READ-ONLY" : "READ-WRITE",
	    v->readonly ? "EXAMINE" : "SELECT");
out:
	imap_select_params_free(&j->params);
	free(j->vanished);
	free(j->name);
	free(j);
	imap_cmd_finish(s);
}

static enum cmd_result
do_select(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end, bool readonly)
{
	struct select_job *j;
	struct imap_select_params params;
	const char *err;
	size_t nargs = imap_args_count(args, end);
	char *name;

	memset(&params, 0, sizeof(params));
	if (nargs == 2 && imap_select_params_parse(imap_arg_next(args), &params,
	    &err) < 0) {
		imap_select_params_free(&params);
		imap_cmd_reply(s, IMAP_BAD, "%s", err);
		return CMD_DONE;
	}
	if (params.qresync && !imap_qresync_on(s)) {
		imap_select_params_free(&params);
		imap_cmd_reply(s, IMAP_BAD, "QRESYNC is not enabled");
		return CMD_DONE;
	}
	/* A SELECT that fails leaves the session unselected (RFC 3501). The
	   implicit close is announced for QRESYNC clients (RFC 7162
	   §3.2.11), before anything about the new mailbox. */
	if (s->base.state == IMAP_ST_SELECTED) {
		imap_set_state(s, IMAP_ST_AUTH);
		imap_reply_untagged(s, "OK [CLOSED] Previous mailbox closed");
	}
	imap_searchres_reset(s);
	if ((name = imap_mailbox_arg(s, args)) == NULL) {
		imap_select_params_free(&params);
		return CMD_DONE;
	}
	j = xcalloc(1, sizeof(*j));
	j->params = params;
	j->st = s->base.d->store;
	j->user_id = s->user.id;
	j->name = name;
	j->readonly = readonly;
	imap_session_submit(s, select_work, select_done, j);
	return CMD_SUSPEND;
}

enum cmd_result
imap_cmd_select(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	return do_select(s, args, end, false);
}

enum cmd_result
imap_cmd_examine(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	return do_select(s, args, end, true);
}

enum cmd_result
imap_cmd_check(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)args;
	(void)end;
	/* the row's REQUIRES_SYNC flag makes the sync read the store */
	imap_cmd_reply(s, IMAP_OK, "CHECK completed");
	return CMD_DONE;
}

enum cmd_result
imap_cmd_unselect(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)args;
	(void)end;
	/* Like CLOSE without the expunge: nothing is removed. */
	imap_set_state(s, IMAP_ST_AUTH);
	imap_searchres_reset(s);
	imap_cmd_reply(s, IMAP_OK, "UNSELECT completed");
	return CMD_DONE;
}

enum cmd_result
imap_cmd_close(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)args;
	(void)end;
	imap_searchres_reset(s);
	if (s->sel->readonly) {
		imap_set_state(s, IMAP_ST_AUTH);
		imap_cmd_reply(s, IMAP_OK, "CLOSE completed");
		return CMD_DONE;
	}
	return imap_close_expunge(s);
}
