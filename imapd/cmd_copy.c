/* cmd_copy: COPY, MOVE (RFC 6851), UID COPY and UID MOVE through one
   store_msg_copy on a worker (hard links, flags and keywords kept, new
   UIDs in the destination; MOVE also expunges from the source in the same
   transaction), and the COPYUID response code (RFC 4315) they share. The
   source's EXPUNGEs after a MOVE are the dispatcher's sync. */
#include <stdlib.h>
#include <string.h>

#include "imap_commands.h"
#include "imap_commands_util.h"
#include "imap_view.h"

/* Appends the uids of list[0..n) whose pair[i] != 0 as a compact
   ascending set ("1:3,7"). */
static void
put_set(struct buf *b, const uint32_t *list, const uint32_t *pair, size_t n)
{
	size_t i = 0, j;
	bool first = true;

	while (i < n) {
		if (pair[i] == 0) {
			i++;
			continue;
		}
		j = i;
		while (j + 1 < n && pair[j + 1] != 0 && list[j + 1] == list[j] + 1)
			j++;
		if (!first)
			buf_putc(b, ',');
		first = false;
		if (j == i)
			buf_printf(b, "%u", list[i]);
		else
			buf_printf(b, "%u:%u", list[i], list[j]);
		i = j + 1;
	}
}

/* Appends "COPYUID uidvalidity src dst" (without brackets) for the pairs
   with dst[i] != 0; both lists ascending. Returns false (nothing added)
   if no pair was copied. */
static bool
copyuid(struct buf *b, uint32_t uidvalidity, const uint32_t *src,
    const uint32_t *dst, size_t n)
{
	size_t i;

	for (i = 0; i < n && dst[i] == 0; i++)
		;
	if (i == n)
		return false;
	/* Both lists are ascending and paired by index, so compressing
	   each on its own keeps the correspondence (RFC 4315 §3). A range
	   only spans pairs that both exist: the dst list is its own pair
	   mask. */
	buf_printf(b, "COPYUID %u ", uidvalidity);
	put_set(b, src, dst, n);
	buf_putc(b, ' ');
	put_set(b, dst, dst, n);
	return true;
}

struct copy_job {
	struct store *st;
	uint32_t src, dst;
	uint32_t *uids, *dst_uids;
	size_t n;
	uint32_t uidvalidity;
	bool move;
	enum store_err err;
	struct imap_view_claim claim;   /* \Recent, into the selected mailbox */
};

static void
copy_work(void *arg)
{
	struct copy_job *j = arg;

	j->err = store_msg_copy(j->st, j->src, j->uids, j->n, j->dst, j->move,
	    j->dst_uids, &j->uidvalidity);
	if (j->err == STORE_OK)
		imap_view_claim_work(&j->claim);
}

/* COPY: COPYUID in the tagged OK; a set too long for one reply line is
   left out rather than cut. */
static void
copy_reply(struct imap_session *s, struct copy_job *j)
{
	struct buf b;

	if (s->sel != NULL && j->dst == s->sel->mb.id)
		s->force_sync = true;
	buf_init(&b);
	if (copyuid(&b, j->uidvalidity, j->uids, j->dst_uids, j->n) &&
	    b.len < 900)
		imap_cmd_reply(s, IMAP_OK, "[%s] %s completed", b.data,
		    s->cmd->def->name);
	else
		imap_cmd_reply(s, IMAP_OK, "%s completed", s->cmd->def->name);
	buf_free(&b);
}

/* MOVE: COPYUID goes in an untagged OK before the EXPUNGEs, which the
   tagged reply's sync sends (RFC 6851 §4.3). */
static void
move_reply(struct imap_session *s, struct copy_job *j)
{
	struct buf b;
	size_t i, k = 0;

	buf_init(&b);
	buf_puts(&b, "* OK [");
	if (copyuid(&b, j->uidvalidity, j->uids, j->dst_uids, j->n)) {
		buf_puts(&b, "] Moved\r\n");
		imap_send_buf(s, &b);
	}
	buf_free(&b);
	for (i = 0; i < j->n; i++)
		if (j->dst_uids[i] != 0)
			j->uids[k++] = j->uids[i];
	imap_view_mark_expunged(s->sel, j->uids, k);
	imap_cmd_reply(s, IMAP_OK, "%s completed", s->cmd->def->name);
}

static void
copy_done(struct imap_session *s, void *arg)
{
	struct copy_job *j = arg;

	if (j->err == STORE_OK)
		imap_view_claim_take(s, &j->claim);
	if (j->err == STORE_OK && j->move)
		move_reply(s, j);
	else if (j->err == STORE_OK)
		copy_reply(s, j);
	else if (j->err == STORE_ENOTFOUND)
		imap_cmd_reply(s, IMAP_NO, "[TRYCREATE] No such mailbox");
	else
		imap_reply_store_err(s, j->err, j->move ? "MOVE" : "COPY");
	free(j->uids);
	free(j->dst_uids);
	free(j);
	imap_cmd_finish(s);
}

static enum cmd_result
copy_start(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end, bool move)
{
	struct store_mailbox mb;
	struct copy_job *j;
	size_t *idx = NULL, n = 0, i;
	enum store_err e;
	char *name;

	(void)end;
	if (move && s->sel->readonly) {
		imap_cmd_reply(s, IMAP_NO, "[READ-ONLY] Mailbox is read-only");
		return CMD_DONE;
	}
	if ((name = imap_mailbox_arg(s, imap_arg_next(args))) == NULL)
		return CMD_DONE;
	e = store_mailbox_get(s->base.d->store, s->user.id, name, &mb);
	free(name);
	if (e == STORE_ENOTFOUND) {
		imap_cmd_reply(s, IMAP_NO, "[TRYCREATE] No such mailbox");
		return CMD_DONE;
	}
	if (e != STORE_OK) {
		imap_reply_store_err(s, e, move ? "MOVE" : "COPY");
		return CMD_DONE;
	}
	if (imap_seqset_arg(s, args, imap_cmd_is_uid(s), &idx, &n) < 0)
		return CMD_DONE;
	for (i = 0; i < n; i++)
		if (!s->sel->msgs[idx[i]].expunged)
			break;
	if (i == n) {
		/* nothing (left) to copy: not an error (RFC 3501 §6.4.8) */
		free(idx);
		imap_cmd_reply(s, IMAP_OK, "%s completed", s->cmd->def->name);
		return CMD_DONE;
	}
	j = xcalloc(1, sizeof(*j));
	j->st = s->base.d->store;
	j->src = s->sel->mb.id;
	j->dst = mb.id;
	j->move = move;
	j->uids = xmalloc(n * sizeof(*j->uids));
	j->dst_uids = xcalloc(n, sizeof(*j->dst_uids));
	for (i = 0; i < n; i++)
		j->uids[i] = s->sel->msgs[idx[i]].uid;
	j->n = n;
	free(idx);
	imap_view_claim_init(s, j->dst, &j->claim);
	imap_session_submit(s, copy_work, copy_done, j);
	return CMD_SUSPEND;
}

enum cmd_result
imap_cmd_copy(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	return copy_start(s, args, end, false);
}

enum cmd_result
imap_cmd_move(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	return copy_start(s, args, end, true);
}
