/* cmd_copy: COPY and UID COPY through store_msg_copy (hard links, flags
   and keywords kept, new UIDs in the destination) on a worker. */
#include <stdlib.h>
#include <string.h>

#include "imap_commands.h"
#include "imap_ext.h"

struct copy_job {
	struct store *st;
	uint32_t src, dst;
	uint32_t *uids, *dst_uids;
	size_t n;
	uint32_t uidvalidity;
	enum store_err err;
};

static void
copy_work(void *arg)
{
	struct copy_job *j = arg;

	j->err = store_msg_copy(j->st, j->src, j->uids, j->n, j->dst, false,
	    j->dst_uids, &j->uidvalidity);
}

static void
copy_done(struct imap_session *s, void *arg)
{
	struct copy_job *j = arg;

	if (j->err == STORE_OK) {
		struct buf b;

		if (s->sel != NULL && j->dst == s->sel->mb.id)
			s->force_sync = true;
		/* UIDPLUS (RFC 4315); a set too long for one reply line is
		   left out rather than cut. */
		buf_init(&b);
		if (imap_ext_copyuid(&b, j->uidvalidity, j->uids, j->dst_uids,
		    j->n) && b.len < 900)
			imap_reply_tagged(s, "OK", "[%s] %sCOPY completed", b.data,
			    s->uid_cmd ? "UID " : "");
		else
			imap_reply_tagged(s, "OK", "%sCOPY completed",
			    s->uid_cmd ? "UID " : "");
		buf_free(&b);
	} else if (j->err == STORE_ENOTFOUND) {
		imap_reply_tagged(s, "NO", "[TRYCREATE] No such mailbox");
	} else {
		imap_reply_store_err(s, j->err, "COPY");
	}
	free(j->uids);
	free(j->dst_uids);
	free(j);
	imap_cmd_finish(s);
}

enum cmd_result
imap_cmd_copy(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct store_mailbox mb;
	struct copy_job *j;
	size_t *idx = NULL, n = 0, i;
	enum store_err e;
	char *name;

	if (imap_args_count(args, end) != 2) {
		imap_reply_tagged(s, "BAD", "Usage: COPY set mailbox");
		return CMD_DONE;
	}
	if ((name = imap_mailbox_arg(s, imap_arg_next(args))) == NULL)
		return CMD_DONE;
	e = store_mailbox_get(s->d->store, s->user.id, name, &mb);
	free(name);
	if (e == STORE_ENOTFOUND) {
		imap_reply_tagged(s, "NO", "[TRYCREATE] No such mailbox");
		return CMD_DONE;
	}
	if (e != STORE_OK) {
		imap_reply_store_err(s, e, "COPY");
		return CMD_DONE;
	}
	if (imap_seqset_arg(s, args, s->uid_cmd, &idx, &n) < 0)
		return CMD_DONE;
	if (n == 0) {
		free(idx);
		imap_reply_tagged(s, "OK", "%sCOPY completed",
		    s->uid_cmd ? "UID " : "");
		return CMD_DONE;
	}
	j = xcalloc(1, sizeof(*j));
	j->st = s->d->store;
	j->src = s->sel->mb.id;
	j->dst = mb.id;
	j->uids = xmalloc(n * sizeof(*j->uids));
	j->dst_uids = xcalloc(n, sizeof(*j->dst_uids));
	for (i = 0; i < n; i++)
		j->uids[i] = s->sel->msgs[idx[i]].uid;
	j->n = n;
	free(idx);
	imap_session_submit(s, copy_work, copy_done, j);
	return CMD_SUSPEND;
}
