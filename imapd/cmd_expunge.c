/* cmd_expunge: EXPUNGE, UID EXPUNGE (RFC 4315: only the named messages
   that have \Deleted at commit time go) and CLOSE's silent expunge, on a
   worker. The EXPUNGE responses are the dispatcher's sync before the
   tagged reply (the rows say BREAKS_SEQS); CLOSE sends none. */
#include <stdlib.h>
#include <string.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_commands_util.h"
#include "imap_view.h"

struct expunge_job {
	struct store *st;
	uint32_t mbox_id;
	uint32_t *uids;             /* UID EXPUNGE: the named messages */
	size_t n;
	uint32_t *gone;             /* the expunged ones */
	size_t ngone;
	enum store_err err;
	bool close;
	const char *what;
};

static void
expunge_work(void *arg)
{
	struct expunge_job *j = arg;

	j->err = store_msg_expunge(j->st, j->mbox_id, j->uids, j->n, true,
	    &j->gone, &j->ngone);
}

static void
expunge_done(struct imap_session *s, void *arg)
{
	struct expunge_job *j = arg;

	if (j->close) {
		/* CLOSE is silent: no EXPUNGE responses (RFC 3501 6.4.2). */
		imap_set_state(s, IMAP_ST_AUTH);
		if (j->err != STORE_OK)
			log_warnx("%s close expunge error=%s",
			    conn_id(s->base.c), store_err_str(j->err));
		imap_cmd_reply(s, IMAP_OK, "CLOSE completed");
	} else if (j->err != STORE_OK) {
		imap_reply_store_err(s, j->err, j->what);
	} else {
		imap_view_mark_expunged(s->sel, j->gone, j->ngone);
		imap_cmd_reply(s, IMAP_OK, "%s completed", j->what);
	}
	free(j->uids);
	free(j->gone);
	free(j);
	imap_cmd_finish(s);
}

static enum cmd_result
expunge_start(struct imap_session *s, struct expunge_job *j)
{
	j->st = s->base.d->store;
	j->mbox_id = s->sel->mb.id;
	imap_session_submit(s, expunge_work, expunge_done, j);
	return CMD_SUSPEND;
}

enum cmd_result
imap_close_expunge(struct imap_session *s)
{
	struct expunge_job *j = xcalloc(1, sizeof(*j));

	j->close = true;
	j->what = "CLOSE";
	return expunge_start(s, j);
}

enum cmd_result
imap_cmd_expunge(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct expunge_job *j;

	(void)args;
	(void)end;
	if (s->sel->readonly) {
		imap_cmd_reply(s, IMAP_NO, "[READ-ONLY] Mailbox is read-only");
		return CMD_DONE;
	}
	j = xcalloc(1, sizeof(*j));
	j->what = "EXPUNGE";
	return expunge_start(s, j);
}

enum cmd_result
imap_cmd_uid_expunge(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct expunge_job *j;
	size_t *idx = NULL, n = 0, i;

	(void)end;
	if (s->sel->readonly) {
		imap_cmd_reply(s, IMAP_NO, "[READ-ONLY] Mailbox is read-only");
		return CMD_DONE;
	}
	if (imap_seqset_arg(s, args, true, &idx, &n) < 0)
		return CMD_DONE;
	if (n == 0) {
		free(idx);
		imap_cmd_reply(s, IMAP_OK, "UID EXPUNGE completed");
		return CMD_DONE;
	}
	j = xcalloc(1, sizeof(*j));
	j->what = "UID EXPUNGE";
	j->uids = xmalloc(n * sizeof(*j->uids));
	for (i = 0; i < n; i++)
		j->uids[i] = s->sel->msgs[idx[i]].uid;
	j->n = n;
	free(idx);
	return expunge_start(s, j);
}
