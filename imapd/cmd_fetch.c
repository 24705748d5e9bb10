/* cmd_fetch: FETCH and UID FETCH. Parses the items (pure
   imap_fetch_items.c) and the CONDSTORE/QRESYNC modifiers (CHANGEDSINCE,
   VANISHED; RFC 7162), adds the items the RFCs imply (UID for UID FETCH,
   MODSEQ once CONDSTORE is on), sets \Seen for non-PEEK body fetches on a
   worker, then hands the writing to the FETCH engine (imap_fetch.c), whose
   streaming continues as the command's continuation on output drain. */
#include <stdlib.h>
#include <string.h>

#include "imap_commands.h"
#include "imap_commands_util.h"
#include "imap_features.h"
#include "imap_fetch.h"
#include "imap_fetch_items.h"
#include "imap_modseq.h"
#include "imap_view.h"

static void
fetch_state_free(void *state)
{
	struct imap_fetch *f = state;

	imap_fetch_free(&f);
}

/* The continuation on output drain, and the first run. */
static int
fetch_continue(struct imap_session *s)
{
	struct imap_fetch *f = s->cmd->state;

	if (s->sel == NULL || !imap_fetch_run(s, f))
		return 0;
	if (imap_fetch_failed(f))
		imap_cmd_reply(s, IMAP_NO, "[EXPUNGEISSUED] Some messages could "
		    "not be fetched");
	else
		imap_cmd_reply(s, IMAP_OK, "%s completed", s->cmd->def->name);
	imap_cmd_finish(s);
	return 1;
}

/* Starts writing; CMD_SUSPEND either way (finished or waiting). */
static enum cmd_result
fetch_start(struct imap_session *s)
{
	s->cmd->wait = IMAP_WAIT_DRAIN;
	s->cmd->continuation = fetch_continue;
	fetch_continue(s);
	return CMD_SUSPEND;
}

/* ---- \Seen before a non-PEEK fetch ---- */

struct seen_job {
	struct store *st;
	uint32_t mbox_id;
	struct store_flag_change *ch;
	size_t n;
	enum store_err err;
};

static void
seen_work(void *arg)
{
	struct seen_job *j = arg;

	j->err = store_msg_set_flags(j->st, j->mbox_id, STORE_FLAGS_ADD,
	    STORE_F_SEEN, NULL, 0, 0, j->ch, j->n);
}

static void
seen_done(struct imap_session *s, void *arg)
{
	struct seen_job *j = arg;
	struct imap_fetch *f = s->cmd->state;
	size_t i, k = 0;

	if (j->err == STORE_OK && s->sel != NULL) {
		const size_t *fidx = imap_fetch_indexes(f);
		size_t n = imap_fetch_count(f);

		for (i = 0; i < n && k < j->n; i++) {
			struct imap_view_msg *m = &s->sel->msgs[fidx[i]];

			if (m->uid != j->ch[k].uid)
				continue;
			if (j->ch[k].exists && j->ch[k].changed) {
				imap_view_msg_update(m, j->ch[k].flags,
				    j->ch[k].keywords, j->ch[k].modseq);
				imap_fetch_set_seen_changed(f, i);
			}
			k++;
		}
	}
	free(j->ch);
	free(j);
	fetch_start(s);
}

/* Sets \Seen on the unseen messages first (a worker job), if any.
   Returns false if there is nothing to set. */
static bool
seen_submit(struct imap_session *s, const size_t *idx, size_t n)
{
	struct seen_job *j;
	size_t i, nunseen = 0;

	for (i = 0; i < n; i++) {
		const struct imap_view_msg *m = &s->sel->msgs[idx[i]];

		if (!(m->flags & STORE_F_SEEN) && !m->expunged)
			nunseen++;
	}
	if (nunseen == 0)
		return false;
	j = xcalloc(1, sizeof(*j));
	j->st = s->base.d->store;
	j->mbox_id = s->sel->mb.id;
	j->ch = xcalloc(nunseen, sizeof(*j->ch));
	for (i = 0; i < n; i++) {
		const struct imap_view_msg *m = &s->sel->msgs[idx[i]];

		if (!(m->flags & STORE_F_SEEN) && !m->expunged)
			j->ch[j->n++].uid = m->uid;
	}
	imap_session_submit(s, seen_work, seen_done, j);
	return true;
}

/* ---- the command ---- */

/* RFC 7162 §3.1.4: (CHANGEDSINCE n) and, for UID FETCH with QRESYNC
   enabled, VANISHED (§3.2.6). -1 with a tagged BAD queued. */
static int
fetch_modifiers(struct imap_session *s, const struct imap_arg *a,
    struct imap_fetch_mods *mods)
{
	const char *err;

	if (imap_fetch_mods_parse(a, mods, &err) < 0) {
		imap_cmd_reply(s, IMAP_BAD, "%s", err);
		return -1;
	}
	if (mods->vanished && (!imap_cmd_is_uid(s) || !imap_qresync_on(s))) {
		imap_cmd_reply(s, IMAP_BAD, "VANISHED needs UID FETCH and"
		    " ENABLE QRESYNC");
		return -1;
	}
	imap_condstore_enable(s);
	/* Changes by other sessions count: bring the view up to date
	   (untagged FETCH is allowed here, EXPUNGE only for UID). */
	s->force_sync = true;
	imap_view_sync(s, imap_cmd_is_uid(s), imap_cmd_is_uid(s));
	return 0;
}

static bool
items_have(const struct imap_fetch_items *it, enum imap_fi_type type)
{
	size_t i;

	for (i = 0; i < it->n; i++)
		if (it->v[i].type == type)
			return true;
	return false;
}

/* Adds an item of type at position at (0 or it->n). */
static void
items_add(struct imap_fetch_items *it, enum imap_fi_type type, size_t at)
{
	it->v = xrealloc(it->v, (it->n + 1) * sizeof(*it->v));
	memmove(it->v + at + 1, it->v + at, (it->n - at) * sizeof(*it->v));
	memset(&it->v[at], 0, sizeof(it->v[0]));
	it->v[at].type = type;
	it->n++;
}

/* The items the RFCs add to what the client asked for. */
static void
items_implied(struct imap_session *s, struct imap_fetch_items *it,
    const struct imap_fetch_mods *mods)
{
	bool has_modseq = items_have(it, IMAP_FI_MODSEQ);

	if (has_modseq)
		imap_condstore_enable(s);
	/* Once CONDSTORE is on, FLAGS come with MODSEQ (RFC 7162 §3.1.4.1);
	   CHANGEDSINCE always adds it. */
	if (!has_modseq && (mods->changedsince ||
	    (items_have(it, IMAP_FI_FLAGS) && imap_condstore_on(s))))
		items_add(it, IMAP_FI_MODSEQ, it->n);
	/* UID FETCH always returns the UID, first */
	if (imap_cmd_is_uid(s) && !items_have(it, IMAP_FI_UID))
		items_add(it, IMAP_FI_UID, 0);
}

/* CHANGEDSINCE: keeps the messages with a higher MODSEQ. */
static size_t
filter_changed(const struct imap_view *v, size_t *idx, size_t n,
    uint64_t since)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (v->msgs[idx[i]].modseq > since)
			idx[k++] = idx[i];
	return k;
}

enum cmd_result
imap_cmd_fetch(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct imap_fetch_mods mods;
	struct imap_fetch_items it;
	size_t *idx = NULL, n = 0;
	struct imap_fetch *f;

	memset(&mods, 0, sizeof(mods));
	memset(&it, 0, sizeof(it));
	if (imap_args_count(args, end) == 3 &&
	    fetch_modifiers(s, imap_arg_next(imap_arg_next(args)), &mods) < 0)
		return CMD_DONE;
	if (imap_fetch_items_parse(imap_arg_next(args), &it) < 0) {
		imap_fetch_items_free(&it);
		imap_cmd_reply(s, IMAP_BAD, "Invalid FETCH items");
		return CMD_DONE;
	}
	items_implied(s, &it, &mods);
	if (imap_seqset_arg(s, args, imap_cmd_is_uid(s), &idx, &n) < 0) {
		imap_fetch_items_free(&it);
		return CMD_DONE;
	}
	if (mods.changedsince) {
		n = filter_changed(s->sel, idx, n, mods.since);
		if (mods.vanished)
			imap_fetch_vanished(s, args, mods.since);
	}
	f = imap_fetch_new(&it, idx, n);
	s->cmd->state = f;
	s->cmd->state_free = fetch_state_free;
	if (imap_fetch_sets_seen(f) && !s->sel->readonly &&
	    seen_submit(s, imap_fetch_indexes(f), imap_fetch_count(f)))
		return CMD_SUSPEND;
	return fetch_start(s);
}
