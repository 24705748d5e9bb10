/* cmd_select: SELECT, EXAMINE, CHECK, CLOSE and EXPUNGE: opening the
   per-session view of a mailbox (and claiming \Recent) and removing
   \Deleted messages. Store access runs on a worker. */
#include <stdlib.h>
#include <string.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_ext2.h"
#include "imap_modseq.h"

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
	if (j->err == STORE_OK && j->params.qresync)
		imap_qresync_work(j->st, j->v, &j->params, &j->vanished,
		    &j->nvanished);
}

static void
select_done(struct imap_session *s, void *arg)
{
	struct select_job *j = arg;
	struct imap_view *v = j->v;
	struct buf b;
	size_t i, recent = 0, unseen = 0;

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
	for (i = 0; i < v->n; i++) {
		if (v->msgs[i].flags & IMAP_VF_RECENT)
			recent++;
		if (unseen == 0 && !(v->msgs[i].flags & STORE_F_SEEN))
			unseen = i + 1;
	}
	buf_printf(&b, "* %zu EXISTS\r\n* %zu RECENT\r\n", v->n, recent);
	v->reported_exists = (uint32_t)v->n;
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
	imap_reply_tagged(s, "OK", "[%s] %s completed",
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
	if (nargs != 1 && nargs != 2) {
		imap_reply_tagged(s, "BAD", "Usage: SELECT mailbox");
		return CMD_DONE;
	}
	if (nargs == 2 && imap_select_params_parse(imap_arg_next(args), &params,
	    &err) < 0) {
		imap_select_params_free(&params);
		imap_reply_tagged(s, "BAD", "%s", err);
		return CMD_DONE;
	}
	if (params.qresync && !imap_qresync_on(s)) {
		imap_select_params_free(&params);
		imap_reply_tagged(s, "BAD", "QRESYNC is not enabled");
		return CMD_DONE;
	}
	/* A SELECT that fails leaves the session unselected (RFC 3501). The
	   implicit close is announced for QRESYNC clients (RFC 7162
	   §3.2.11), before anything about the new mailbox. */
	if (s->state == IMAP_ST_SELECTED) {
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
	j->st = s->d->store;
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
	if (args != end) {
		imap_reply_tagged(s, "BAD", "CHECK takes no arguments");
		return CMD_DONE;
	}
	s->force_sync = true;
	imap_reply_tagged(s, "OK", "CHECK completed");
	return CMD_DONE;
}

struct expunge_job {
	struct store *st;
	uint32_t mbox_id;
	uint32_t *uids;
	size_t n;
	enum store_err err;
	bool close;
};

static void
expunge_work(void *arg)
{
	struct expunge_job *j = arg;

	j->err = store_msg_expunge(j->st, j->mbox_id, NULL, 0, true, &j->uids,
	    &j->n);
}

static void
expunge_done(struct imap_session *s, void *arg)
{
	struct expunge_job *j = arg;

	if (j->close) {
		/* CLOSE is silent: no EXPUNGE responses (RFC 3501 6.4.2). */
		imap_set_state(s, IMAP_ST_AUTH);
		if (j->err != STORE_OK)
			log_warnx("%s close expunge error=%s", conn_id(s->c),
			    store_err_str(j->err));
		imap_reply_tagged(s, "OK", "CLOSE completed");
	} else if (j->err != STORE_OK) {
		imap_reply_store_err(s, j->err, "EXPUNGE");
	} else {
		imap_view_mark_expunged(s->sel, j->uids, j->n);
		s->force_sync = true;
		imap_reply_tagged(s, "OK", "EXPUNGE completed");
	}
	free(j->uids);
	free(j);
	imap_cmd_finish(s);
}

static enum cmd_result
start_expunge(struct imap_session *s, bool close)
{
	struct expunge_job *j = xcalloc(1, sizeof(*j));

	j->st = s->d->store;
	j->mbox_id = s->sel->mb.id;
	j->close = close;
	imap_session_submit(s, expunge_work, expunge_done, j);
	return CMD_SUSPEND;
}

enum cmd_result
imap_cmd_close(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	if (args != end) {
		imap_reply_tagged(s, "BAD", "CLOSE takes no arguments");
		return CMD_DONE;
	}
	imap_searchres_reset(s);
	if (s->sel->readonly) {
		imap_set_state(s, IMAP_ST_AUTH);
		imap_reply_tagged(s, "OK", "CLOSE completed");
		return CMD_DONE;
	}
	return start_expunge(s, true);
}

enum cmd_result
imap_cmd_expunge(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	if (args != end) {
		imap_reply_tagged(s, "BAD", "EXPUNGE takes no arguments");
		return CMD_DONE;
	}
	if (s->sel->readonly) {
		imap_reply_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
		return CMD_DONE;
	}
	return start_expunge(s, false);
}
