/* cmd_move: UID EXPUNGE (RFC 4315) on a worker: only the named messages
   that have \Deleted at commit time go. MOVE itself shares COPY's code
   in cmd_copy.c. */
#include <stdlib.h>
#include <string.h>

#include "imap_commands.h"
#include "imap_ext.h"

/* ---- UID EXPUNGE ---- */

struct uid_expunge_job {
	struct store *st;
	uint32_t mbox_id;
	uint32_t *uids, *gone;
	size_t n, ngone;
	enum store_err err;
};

static void
uid_expunge_work(void *arg)
{
	struct uid_expunge_job *j = arg;

	j->err = store_msg_expunge(j->st, j->mbox_id, j->uids, j->n, true,
	    &j->gone, &j->ngone);
}

static void
uid_expunge_done(struct imap_session *s, void *arg)
{
	struct uid_expunge_job *j = arg;

	if (j->err != STORE_OK) {
		imap_reply_store_err(s, j->err, "UID EXPUNGE");
	} else {
		imap_view_mark_expunged(s->sel, j->gone, j->ngone);
		s->force_sync = true;
		imap_reply_tagged(s, "OK", "UID EXPUNGE completed");
	}
	free(j->uids);
	free(j->gone);
	free(j);
	imap_cmd_finish(s);
}

enum cmd_result
imap_cmd_expunge_any(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct uid_expunge_job *j;
	size_t *idx = NULL, n = 0, i;

	if (!s->uid_cmd)
		return imap_cmd_expunge(s, args, end);
	if (imap_args_count(args, end) != 1) {
		imap_reply_tagged(s, "BAD", "Usage: UID EXPUNGE set");
		return CMD_DONE;
	}
	if (s->sel->readonly) {
		imap_reply_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
		return CMD_DONE;
	}
	if (imap_seqset_arg(s, args, true, &idx, &n) < 0)
		return CMD_DONE;
	if (n == 0) {
		free(idx);
		imap_reply_tagged(s, "OK", "UID EXPUNGE completed");
		return CMD_DONE;
	}
	j = xcalloc(1, sizeof(*j));
	j->st = s->d->store;
	j->mbox_id = s->sel->mb.id;
	j->uids = xmalloc(n * sizeof(*j->uids));
	for (i = 0; i < n; i++)
		j->uids[i] = s->sel->msgs[idx[i]].uid;
	j->n = n;
	free(idx);
	imap_session_submit(s, uid_expunge_work, uid_expunge_done, j);
	return CMD_SUSPEND;
}
