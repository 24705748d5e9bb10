/* cmd_store: STORE and UID STORE (FLAGS, +FLAGS, -FLAGS, .SILENT; system
   flags and keywords; UNCHANGEDSINCE, RFC 7162) through the store on a
   worker, then FETCH FLAGS replies from the result. The flag list parser
   is imap_commands_util.c's; nothing here reads message files. A bulk
   STORE writes the index only; the file names catch up in the background
   after the reply (imap_names.c). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_commands.h"
#include "imap_commands_util.h"
#include "imap_features.h"
#include "imap_modseq.h"
#include "imap_names.h"
#include "imap_seqset.h"
#include "imap_view.h"

/* From this many messages on, a STORE leaves the file names behind its
   flags (index only) and a catch-up renames them after the reply: below,
   the renames cost less than the catch-up's own commit and dir fsync. */
#define STORE_DEFER_MIN 64

struct store_job {
	struct store *st;
	uint32_t mbox_id;
	enum store_flag_op op;
	uint32_t flags;
	char **kw;
	size_t nkw;
	struct store_flag_change *ch;
	size_t n;
	bool silent;
	enum store_err err;
	struct store_mailbox mb;    /* keyword names after the change */
	bool have_mb;
	bool conditional;           /* UNCHANGEDSINCE given (RFC 7162) */
	uint64_t unchangedsince;
	uint32_t *modified;         /* MSNs or UIDs that failed the test */
	size_t nmodified;
	bool deferred;              /* the names are left behind the flags */
};

static void
job_free(struct store_job *j)
{
	size_t i;

	for (i = 0; i < j->nkw; i++)
		free(j->kw[i]);
	free(j->kw);
	free(j->ch);
	free(j->modified);
	free(j);
}

static void
store_work(void *arg)
{
	struct store_job *j = arg;

	size_t i;

	/* UNCHANGEDSINCE 0 fails for every message (each has a modseq);
	   the store takes 0 as "no condition", so it is answered here. */
	if (j->conditional && j->unchangedsince == 0) {
		for (i = 0; i < j->n; i++) {
			j->ch[i].exists = true;
			j->ch[i].conflict = true;
		}
		j->err = STORE_OK;
		return;
	}
	j->deferred = j->n >= STORE_DEFER_MIN;
	j->err = (j->deferred ? store_msg_set_flags_deferred :
	    store_msg_set_flags)(j->st, j->mbox_id, j->op, j->flags,
	    (const char *const *)j->kw, j->nkw, j->unchangedsince, j->ch, j->n);
	if (j->err == STORE_OK && j->nkw > 0)
		j->have_mb = store_mailbox_get_by_id(j->st, j->mbox_id, &j->mb) ==
		    STORE_OK;
}

/* The untagged FETCH for one changed message (nothing for a .SILENT one,
   except its new MODSEQ to a CONDSTORE client, RFC 7162 §3.1.3). */
static void
put_fetch(struct imap_session *s, const struct store_job *j,
    const struct store_flag_change *ch, uint32_t msn,
    const struct imap_view_msg *m, struct buf *b)
{
	if (j->silent) {
		if (ch->changed && imap_condstore_on(s))
			buf_printf(b, "* %u FETCH (UID %u MODSEQ (%llu))\r\n",
			    msn, m->uid, (unsigned long long)m->modseq);
		return;
	}
	buf_printf(b, "* %u FETCH (", msn);
	/* CONDSTORE: UID and MODSEQ in every such FETCH (RFC 7162 §3.1) */
	if (imap_cmd_is_uid(s) || imap_condstore_on(s))
		buf_printf(b, "UID %u ", m->uid);
	buf_puts(b, "FLAGS ");
	imap_buf_flags(b, s->sel, m);
	imap_buf_modseq(b, s, m->modseq);
	buf_puts(b, ")\r\n");
}

/* Takes the store's results into the view and sends the FETCH lines;
   collects the messages that failed UNCHANGEDSINCE in j->modified. */
static void
apply_changes(struct imap_session *s, struct store_job *j, struct buf *b)
{
	struct imap_view *v = s->sel;
	size_t i;

	for (i = 0; i < j->n; i++) {
		const struct store_flag_change *ch = &j->ch[i];
		struct imap_view_msg *m;
		uint32_t msn;

		if (!ch->exists || (msn = imap_view_msn(v, ch->uid)) == 0)
			continue;
		m = &v->msgs[msn - 1];
		if (ch->conflict) {
			/* at most one entry per message: sized once, not
			   grown per conflict (quadratic on a large set) */
			if (j->modified == NULL)
				j->modified = xmalloc(j->n * sizeof(*j->modified));
			j->modified[j->nmodified++] = imap_cmd_is_uid(s) ?
			    m->uid : msn;
			continue;
		}
		if (ch->modseq != 0)
			imap_view_msg_update(m, ch->flags, ch->keywords,
			    ch->modseq);
		if (m->expunged)
			continue;
		put_fetch(s, j, ch, msn, m, b);
		if (b->len > 65536)
			imap_send_buf(s, b);
	}
}

/* The tagged reply; [MODIFIED set] if a condition failed. */
static void
store_reply(struct imap_session *s, struct store_job *j, struct buf *b)
{
	if (j->nmodified == 0) {
		imap_cmd_reply(s, IMAP_OK, "%s completed", s->cmd->def->name);
		return;
	}
	/* ch[] is in view order, so the list is already ascending */
	imap_seqset_format(j->modified, j->nmodified, b);
	if (b->len < 900) {
		imap_cmd_reply(s, IMAP_OK, "[MODIFIED %s] Conditional STORE"
		    " failed", b->data);
		return;
	}
	/* too long for a bounded tagged reply: the dispatcher's sync, then
	   the line as is */
	imap_cmd_sync(s);
	s->bad_count = 0;
	conn_printf(s->base.c, "%s OK [MODIFIED ", s->cmd->tag);
	conn_write(s->base.c, b->data, b->len);
	conn_printf(s->base.c, "] Conditional STORE failed\r\n");
}

static void
store_done(struct imap_session *s, void *arg)
{
	struct store_job *j = arg;
	struct imap_view *v = s->sel;
	struct buf b;

	if (j->err != STORE_OK) {
		if (j->err == STORE_ELIMIT)
			imap_cmd_reply(s, IMAP_NO, "[LIMIT] Too many keywords");
		else
			imap_reply_store_err(s, j->err, "STORE");
		goto out;
	}
	buf_init(&b);
	if (j->have_mb && j->mb.nkeywords != v->mb.nkeywords) {
		v->mb.nkeywords = j->mb.nkeywords;
		memcpy(v->mb.keywords, j->mb.keywords, sizeof(v->mb.keywords));
		imap_buf_flags_update(&b, v);
	}
	apply_changes(s, j, &b);
	imap_send_buf(s, &b);
	store_reply(s, j, &b);
	buf_free(&b);
	if (j->deferred)
		imap_names_schedule(s->base.d, j->mbox_id);
out:
	job_free(j);
	imap_cmd_finish(s);
}

/* "[+-]FLAGS[.SILENT] flags" (a list, or flag atoms up to end) into j.
   -1 if invalid. */
static int
store_op_parse(struct store_job *j, const struct imap_arg *item,
    const struct imap_arg *end)
{
	const struct imap_arg *fl = imap_arg_next(item);
	const char *w = item->str;

	if (*w == '+') {
		j->op = STORE_FLAGS_ADD;
		w++;
	} else if (*w == '-') {
		j->op = STORE_FLAGS_REMOVE;
		w++;
	} else {
		j->op = STORE_FLAGS_SET;
	}
	if (strcasecmp(w, "FLAGS.SILENT") == 0)
		j->silent = true;
	else if (strcasecmp(w, "FLAGS") != 0)
		return -1;
	if (fl->type == IMAP_ARG_LIST)
		return imap_arg_next(fl) != end ||
		    imap_flags_parse(fl + 1, imap_arg_list_end(fl), &j->flags,
		    &j->kw, &j->nkw) < 0 ? -1 : 0;
	return imap_flags_parse(fl, end, &j->flags, &j->kw, &j->nkw);
}

enum cmd_result
imap_cmd_store(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	const struct imap_arg *item;
	struct store_job *j;
	size_t *idx = NULL, n = 0, i;
	const char *err;
	uint64_t since = 0;
	bool conditional = false;

	item = imap_arg_next(args);
	if (item->type == IMAP_ARG_LIST) {
		/* STORE set (UNCHANGEDSINCE n) item flags (RFC 7162 §3.1.3) */
		if (imap_store_mods_parse(item, &since, &err) < 0) {
			imap_cmd_reply(s, IMAP_BAD, "%s", err);
			return CMD_DONE;
		}
		conditional = true;
		item = imap_arg_next(item);
		if (imap_args_count(item, end) < 2) {
			imap_cmd_usage(s);
			return CMD_DONE;
		}
	}
	if (item->type != IMAP_ARG_ATOM) {
		imap_cmd_usage(s);
		return CMD_DONE;
	}
	j = xcalloc(1, sizeof(*j));
	j->conditional = conditional;
	j->unchangedsince = since;
	if (conditional)
		imap_condstore_enable(s);
	if (store_op_parse(j, item, end) < 0)
		goto bad;
	if (s->sel->readonly) {
		job_free(j);
		imap_cmd_reply(s, IMAP_NO, "[READ-ONLY] Mailbox is read-only");
		return CMD_DONE;
	}
	if (imap_seqset_arg(s, args, imap_cmd_is_uid(s), &idx, &n) < 0) {
		job_free(j);
		return CMD_DONE;
	}
	j->st = s->base.d->store;
	j->mbox_id = s->sel->mb.id;
	j->ch = xcalloc(n ? n : 1, sizeof(*j->ch));
	for (i = 0; i < n; i++) {
		struct imap_view_msg *m = &s->sel->msgs[idx[i]];

		if (m->expunged)
			continue;
		j->ch[j->n++].uid = m->uid;
	}
	free(idx);
	if (j->n == 0) {
		job_free(j);
		imap_cmd_reply(s, IMAP_OK, "%s completed", s->cmd->def->name);
		return CMD_DONE;
	}
	imap_session_submit(s, store_work, store_done, j);
	return CMD_SUSPEND;
bad:
	job_free(j);
	imap_cmd_reply(s, IMAP_BAD, "Invalid STORE arguments");
	return CMD_DONE;
}
