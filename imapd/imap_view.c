/* imap_view: the selected-mailbox view and its sync. Opens the view (and
   claims \Recent), follows the store through change notifications, and
   sends EXISTS/RECENT/EXPUNGE/FETCH only where RFC 3501 §7 allows: the
   caller says whether EXPUNGE may go out. It never writes to the store on
   the loop thread (the \Recent claim runs on a worker). */
#include <stdlib.h>
#include <string.h>

#include "fswatch.h"
#include "log.h"

#include "imap_commands.h"
#include "imap_features.h"
#include "imap_view.h"
#include "store_view.h"

/* Tells views apart across free and reuse of their memory, for a claim
   that finishes after its view was closed. */
static _Atomic uint64_t g_view_serial;

static void
msg_from_store(struct imap_view_msg *m, const struct store_msg *sm)
{
	m->uid = sm->uid;
	m->flags = sm->flags & IMAP_SYSTEM_FLAGS;
	m->keywords = sm->keywords;
	m->recent = false;
	m->expunged = false;
	m->untold = false;
	m->modseq = sm->modseq;
	m->size = sm->size;
	m->internaldate = sm->internaldate;
	m->internal_tz = sm->internal_tz;
}

void
imap_view_msg_update(struct imap_view_msg *m, uint32_t flags,
    uint32_t keywords, uint64_t modseq)
{
	m->flags = flags & IMAP_SYSTEM_FLAGS;
	m->keywords = keywords;
	m->modseq = modseq;
}

/* Whether m is \Recent for this session: in its claim (SELECT), or
   unclaimed when the view was opened (EXAMINE, RFC 3501 §6.3.2: the
   \Recent state is not altered, only reported). */
static bool
view_is_recent(const struct imap_view *v, uint32_t uid)
{
	return uid >= v->recent_lo && uid < v->recent_hi;
}

/* Whether a new message waits for a claim before it may be announced. */
static bool
view_holds(const struct imap_view *v, uint32_t uid)
{
	return !v->readonly && uid >= v->recent_hi;
}

enum store_err
imap_view_open(struct store *st, uint32_t user_id, const char *name,
    bool readonly, struct imap_view **v_r)
{
	struct imap_view *v = xcalloc(1, sizeof(*v));
	struct store_select sel;
	enum store_err e;

	if ((e = store_mailbox_select(st, user_id, name, !readonly, &sel)) !=
	    STORE_OK) {
		free(v);
		return e;
	}
	v->mb = sel.mb;
	v->readonly = readonly;
	v->recent_lo = sel.recent_lo;
	v->recent_hi = sel.recent_hi;
	v->sel_recent_lo = sel.recent_lo;
	v->sel_recent_hi = sel.recent_hi;
	v->snap_exists = sel.mb.messages;
	v->snap_recent = sel.recent;
	v->first_unseen = sel.first_unseen;
	v->snap_modseq = sel.mb.highestmodseq;
	v->snap_uidnext = sel.mb.uidnext;
	v->serial = ++g_view_serial;
	*v_r = v;
	return STORE_OK;
}

/* The view's read of the store, one message at a time. A message
   delivered past the claim is held back: the view then asks the store
   again from just below its modseq. */
struct view_scan {
	struct imap_view *v;
	const struct store_mailbox *mb;     /* the scan's snapshot */
	uint64_t hold;                      /* lowest modseq held back */
};

static void
view_scan_one(void *arg, const struct store_msg *sm)
{
	struct view_scan *vs = arg;
	struct imap_view *v = vs->v;
	struct imap_view_msg *m;

	if (view_holds(v, sm->uid)) {
		if (sm->modseq < vs->hold)
			vs->hold = sm->modseq;
		v->nheld++;
		v->claim_again = true;
		return;
	}
	if (v->n == v->cap) {
		/* sized once from the snapshot's count; more only if the
		   record's count is off */
		v->cap = v->cap ? v->cap * 2 : vs->mb->messages + 1;
		v->msgs = xrealloc(v->msgs, v->cap * sizeof(*v->msgs));
	}
	m = &v->msgs[v->n++];
	msg_from_store(m, sm);
	m->recent = view_is_recent(v, m->uid) ||
	    (m->uid >= v->sel_recent_lo && m->uid < v->sel_recent_hi);
	/* changed after the SELECT's HIGHESTMODSEQ: a FETCH is owed (the
	   client may cache flags by modseq) */
	m->untold = m->modseq > v->snap_modseq && m->uid < v->snap_uidnext;
	if (m->recent)
		v->nrecent++;
}

/* Adds the uids expunged since the SELECT (sorted) that the client still
   counts: below the SELECT's UIDNEXT and no longer in the view (a uid
   also in the view was read before its expunge: still present). */
static void
view_add_gone(struct imap_view *v, const uint32_t *gone, size_t ngone)
{
	struct imap_view_msg *all;
	size_t i = 0, j = 0, n = 0;

	while (ngone > 0 && gone[ngone - 1] >= v->snap_uidnext)
		ngone--;
	if (ngone == 0)
		return;
	all = xmalloc((v->n + ngone) * sizeof(*all));
	while (i < v->n || j < ngone) {
		if (j < ngone && (i == v->n || gone[j] < v->msgs[i].uid)) {
			memset(&all[n], 0, sizeof(all[n]));
			all[n].uid = gone[j++];
			all[n++].expunged = true;
			v->npending_expunge++;
			continue;
		}
		if (j < ngone && gone[j] == v->msgs[i].uid)
			j++;
		all[n++] = v->msgs[i++];
	}
	free(v->msgs);
	v->msgs = all;
	v->n = v->cap = n;
}

enum store_err
imap_view_load(struct store *st, struct imap_view *v)
{
	struct store_mailbox mb;
	struct view_scan vs = { v, &mb, UINT64_MAX };
	uint32_t *gone = NULL;
	size_t ngone = 0;
	enum store_err e;

	free(v->msgs);
	v->msgs = NULL;
	v->n = v->cap = 0;
	v->nheld = v->npending_expunge = v->nrecent = 0;
	if ((e = store_msg_scan(st, v->mb.id, &mb, view_scan_one, &vs)) !=
	    STORE_OK)
		return e;
	/* Expunged after the SELECT: the client still counts them. Read
	   after the scan, so that a message expunged in between is in one
	   of the two. */
	if (mb.highestmodseq > v->snap_modseq &&
	    (e = store_expunged_since(st, v->mb.id, v->snap_modseq, &gone,
	    &ngone)) != STORE_OK)
		return e;
	view_add_gone(v, gone, ngone);
	free(gone);
	v->mb = mb;
	/* The next sync reads from the SELECT's HIGHESTMODSEQ (or below a
	   held message): it tells the untold changes and takes in what was
	   held once claimed. */
	if (v->mb.highestmodseq > v->snap_modseq)
		v->dirty = true;
	v->mb.highestmodseq = v->snap_modseq;
	if (vs.hold != UINT64_MAX && vs.hold - 1 < v->mb.highestmodseq)
		v->mb.highestmodseq = vs.hold - 1;
	v->loaded = true;
	return STORE_OK;
}

void
imap_view_free(struct imap_view **vp)
{
	struct imap_view *v = *vp;

	if (v == NULL)
		return;
	fswatch_free(&v->watch);
	free(v->msgs);
	free(v);
	*vp = NULL;
}

static void
view_changed(void *arg)
{
	struct imap_session *s = arg;

	if (s->sel != NULL)
		s->sel->dirty = true;
	imap_idle_view_changed(s);
}

void
imap_view_watch(struct imap_session *s)
{
	char path[4096];

	store_mailbox_notify_path(s->base.d->store, s->sel->mb.id, path,
	    sizeof(path));
	s->sel->watch = fswatch_new(s->base.d->loop, path, view_changed, s);
	if (s->sel->watch == NULL)
		log_debug("%s fswatch failed path=%s", conn_id(s->base.c),
		    path);
}

uint32_t
imap_view_msn(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else if (v->msgs[mid].uid > uid)
			hi = mid;
		else
			return (uint32_t)mid + 1;
	}
	return 0;
}

size_t
imap_view_recent_count(const struct imap_view *v)
{
	/* kept as messages come and go: every command's sync asks, and a
	   walk of a large view's records is megabytes of memory */
	return v->loaded ? v->nrecent : v->snap_recent;
}

static void
view_append(struct imap_view *v, const struct imap_view_msg *m)
{
	if (v->n == v->cap) {
		/* Small first: most sessions (IDLE on a quiet mailbox) only
		   ever see a message or two arrive. */
		v->cap = v->cap ? v->cap * 2 : 4;
		v->msgs = xrealloc(v->msgs, v->cap * sizeof(*v->msgs));
	}
	v->msgs[v->n++] = *m;
	if (m->recent)
		v->nrecent++;
}

static void
mark_expunged(struct imap_view *v, struct imap_view_msg *m)
{
	if (!m->expunged) {
		m->expunged = true;
		v->npending_expunge++;
	}
}

/* The store's messages against the view's, both in uid order: a view
   message the store skips over is gone. */
struct expunge_scan {
	struct imap_view *v;
	size_t i;                   /* next view message to match */
};

static void
expunge_scan_one(void *arg, const struct store_msg *sm)
{
	struct expunge_scan *es = arg;
	struct imap_view *v = es->v;

	while (es->i < v->n && v->msgs[es->i].uid < sm->uid)
		mark_expunged(v, &v->msgs[es->i++]);
	if (es->i < v->n && v->msgs[es->i].uid == sm->uid)
		es->i++;
}

/* Marks view messages that the store no longer has. */
static void
view_find_expunged(struct imap_session *s)
{
	struct imap_view *v = s->sel;
	struct expunge_scan es = { v, 0 };
	struct store_mailbox mb;

	if (store_msg_scan(s->base.d->store, v->mb.id, &mb, expunge_scan_one,
	    &es) != STORE_OK)
		return;
	while (es.i < v->n)
		mark_expunged(v, &v->msgs[es.i++]);
}

void
imap_view_mark_expunged(struct imap_view *v, const uint32_t *uids, size_t n)
{
	size_t i;
	uint32_t msn;

	for (i = 0; i < n; i++)
		if ((msn = imap_view_msn(v, uids[i])) != 0)
			mark_expunged(v, &v->msgs[msn - 1]);
}

/* ---- the worker job: \Recent claims, reading the view ---- */

struct claim_job {
	struct store *st;
	struct imap_view *v;    /* only read on the worker when load */
	uint64_t serial;
	uint32_t mbox_id, hi, lo, new_hi;
	bool claim, load, claimed;
	enum store_err e;
};

/* Worker: claims what was delivered past the session's claim (SELECT), and
   reads the view if asked, after the claim so that it covers it. */
static void
claim_work(void *arg)
{
	struct claim_job *j = arg;
	uint32_t first, uidnext;

	if (j->claim) {
		j->e = store_mailbox_claim_recent_range(j->st, j->mbox_id,
		    &first, &uidnext);
		if (j->e != STORE_OK)
			return;
		if (uidnext > j->hi) {
			j->lo = first;
			j->new_hi = uidnext;
			j->claimed = true;
		}
	}
	if (j->load) {
		if (j->claimed) {
			j->v->recent_lo = j->lo;
			j->v->recent_hi = j->new_hi;
		}
		j->e = imap_view_load(j->st, j->v);
	}
}

static void view_claim(struct imap_session *s, bool load);
static void view_gone(struct imap_session *s);

/* The session's view failed to read: its MSNs cannot be trusted. */
static void
view_broken(struct imap_session *s, enum store_err e)
{
	if (e == STORE_ENOTFOUND) {
		view_gone(s);
		return;
	}
	s->sel->gone = true;
	imap_reply_untagged(s, "BYE Internal error reading the mailbox");
	imap_session_close(s, "view-error");
}

/* Back on the loop: a held message now covered by the claim is taken in
   at the next sync (at once while idling), with its EXISTS and RECENT
   together; a parked command runs. */
static void
claim_done(struct imap_session *s, void *arg)
{
	struct claim_job *j = arg;
	struct imap_view *v = s->sel;
	bool run;

	if (v == NULL || v->serial != j->serial)
		goto out;
	v->claiming = false;
	run = v->cmd_waiting;
	v->cmd_waiting = false;
	if (s->base.closing) {
		if (run)
			imap_cmd_finish(s);
		goto out;
	}
	if (j->e != STORE_OK && j->load) {
		/* The BYE goes out before the parked command's reply, as a
		   sync would send it. */
		view_broken(s, j->e);
		if (run)
			imap_cmd_call(s, v->wait_args, v->wait_end);
		goto out;
	}
	if (j->claimed && !j->load && j->new_hi > v->recent_hi) {
		v->recent_lo = j->lo;
		v->recent_hi = j->new_hi;
		v->dirty = true;
	}
	if (run && !v->loaded && !s->base.closing) {
		/* parked behind a claim that did not read the view */
		v->cmd_waiting = true;
		view_claim(s, true);
	} else if (run) {
		imap_cmd_call(s, v->wait_args, v->wait_end);
		/* A parked command that reads its own input (IDLE) gets it
		   back. */
		if (s->cmd != NULL && s->cmd->wait == IMAP_WAIT_INPUT &&
		    s->paused) {
			s->paused = false;
			conn_resume(s->base.c);
		}
	} else {
		if (v->claim_again)
			view_claim(s, false);
		if (j->claimed)
			imap_idle_view_changed(s);
	}
out:
	free(j);
}

/* One job at a time per view; mail that arrives while one runs is
   claimed by the next. */
static void
view_claim(struct imap_session *s, bool load)
{
	struct imap_view *v = s->sel;
	struct claim_job *j;

	if (v->claiming) {
		v->claim_again = true;
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->st = s->base.d->store;
	j->v = v;
	j->serial = v->serial;
	j->mbox_id = v->mb.id;
	j->hi = v->recent_hi;
	j->claim = !v->readonly;
	j->load = load;
	v->claiming = true;
	v->claim_again = false;
	imap_session_submit(s, claim_work, claim_done, j);
}

void
imap_view_claim_init(struct imap_session *s, uint32_t target_mbox,
    struct imap_view_claim *c)
{
	memset(c, 0, sizeof(*c));
	c->st = s->base.d->store;
	if (s->sel != NULL && !s->sel->readonly &&
	    s->sel->mb.id == target_mbox)
		c->mbox_id = target_mbox;
}

void
imap_view_claim_work(struct imap_view_claim *c)
{
	if (c->mbox_id != 0 && store_mailbox_claim_recent_range(c->st,
	    c->mbox_id, &c->lo, &c->hi) != STORE_OK)
		c->hi = 0;
}

void
imap_view_claim_take(struct imap_session *s, const struct imap_view_claim *c)
{
	struct imap_view *v = s->sel;

	/* Only forward: a claim that another one overtook is stale. */
	if (v == NULL || c->mbox_id == 0 || v->mb.id != c->mbox_id ||
	    c->hi <= v->recent_hi)
		return;
	v->recent_lo = c->lo;
	v->recent_hi = c->hi;
	v->dirty = true;
}

bool
imap_view_prepare(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct imap_view *v = s->sel;
	struct store_mailbox mb;

	/* APPEND streams its literal; its reply reads the view on the loop
	   if need be (imap_view_sync). */
	if (v == NULL || v->gone || (s->cmd->def->flags &
	    (IMAP_CMDF_NO_SYNC | IMAP_CMDF_STREAMS_LITERAL)))
		return false;
	/* One record read on the loop tells whether a claim is due. It is
	   skipped when the sync after the command will not read the store
	   either: the watch saw no change and the command forces no sync
	   (without a watch every command reads). */
	if (v->loaded && !v->claiming && (v->readonly ||
	    (v->watch != NULL && !v->dirty && !v->claim_again &&
	    !s->force_sync && !(s->cmd->def->flags &
	    (IMAP_CMDF_BREAKS_SEQS | IMAP_CMDF_REQUIRES_SYNC))) ||
	    store_mailbox_get_by_id(s->base.d->store, v->mb.id, &mb) !=
	    STORE_OK || mb.uidnext <= v->recent_hi))
		return false;
	v->cmd_waiting = true;
	v->wait_args = args;
	v->wait_end = end;
	if (!s->paused) {
		s->paused = true;
		conn_pause(s->base.c);
	}
	if (!v->claiming)
		view_claim(s, !v->loaded);
	return true;
}

/* ---- sync ---- */

static void
send_expunges(struct imap_session *s)
{
	struct imap_view *v = s->sel;
	struct buf b;
	size_t i, k = 0, known = v->reported_exists, gone = 0;

	buf_init(&b);
	/* Only messages the client was told of (MSN <= the last EXISTS) get
	   an EXPUNGE, and each one lowers that count: a message appended and
	   expunged in between is never mentioned, and the EXISTS that follows
	   is still sent when the count changed. */
	if (imap_qresync_on(s)) {
		/* QRESYNC: one VANISHED with the UIDs (RFC 7162 §3.2.10) */
		uint32_t *uids = xmalloc((v->n ? v->n : 1) * sizeof(*uids));

		for (i = 0; i < v->n && i < known; i++)
			if (v->msgs[i].expunged)
				uids[gone++] = v->msgs[i].uid;
		imap_buf_vanished(&b, false, uids, gone);
		free(uids);
	} else {
		for (i = v->n; i-- > 0;)
			if (v->msgs[i].expunged && i < known) {
				buf_printf(&b, "* %zu EXPUNGE\r\n", i + 1);
				gone++;
			}
	}
	for (i = 0; i < v->n; i++) {
		if (!v->msgs[i].expunged)
			v->msgs[k++] = v->msgs[i];
		else if (v->msgs[i].recent)
			v->nrecent--;
	}
	v->n = k;
	v->npending_expunge = 0;
	v->reported_exists = (uint32_t)(known > gone ? known - gone : 0);
	if (v->reported_exists > k)
		v->reported_exists = (uint32_t)k;
	imap_send_buf(s, &b);
	buf_free(&b);
}

void
imap_buf_flags_update(struct buf *b, const struct imap_view *v)
{
	unsigned k;

	buf_puts(b, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (k = 0; k < v->mb.nkeywords; k++)
		buf_printf(b, " %s", v->mb.keywords[k]);
	buf_puts(b, ")\r\n* OK [PERMANENTFLAGS (");
	if (!v->readonly) {
		buf_puts(b, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
		for (k = 0; k < v->mb.nkeywords; k++)
			buf_printf(b, " %s", v->mb.keywords[k]);
		buf_puts(b, " \\*");
	}
	buf_puts(b, ")] Flags permitted\r\n");
}

static const char *const sysflags[] = { "\\Seen", "\\Answered", "\\Flagged",
	"\\Deleted", "\\Draft" };

void
imap_buf_flags(struct buf *b, const struct imap_view *v,
    const struct imap_view_msg *m)
{
	bool first = true;
	unsigned i;

	buf_putc(b, '(');
	for (i = 0; i < 5; i++) {
		if (m->flags & (1u << i)) {
			if (!first)
				buf_putc(b, ' ');
			buf_puts(b, sysflags[i]);
			first = false;
		}
	}
	if (m->recent) {
		if (!first)
			buf_putc(b, ' ');
		buf_puts(b, "\\Recent");
		first = false;
	}
	for (i = 0; v != NULL && i < v->mb.nkeywords && i < 32; i++) {
		if (m->keywords & (1u << i)) {
			if (!first)
				buf_putc(b, ' ');
			buf_puts(b, v->mb.keywords[i]);
			first = false;
		}
	}
	buf_putc(b, ')');
}

/* The selected mailbox was deleted by another session or process (or
   deleted and created again: a new id). Its MSNs and UIDs mean nothing
   any more, and RFC 3501 has no response for it, so the session ends as
   Dovecot ends it. */
static void
view_gone(struct imap_session *s)
{
	s->sel->gone = true;
	log_info("%s mailbox-gone mailbox=%u", conn_id(s->base.c),
	    s->sel->mb.id);
	imap_reply_untagged(s,
	    "BYE Selected mailbox was deleted, have to disconnect.");
	imap_session_close(s, "mailbox-gone");
}

/* What one read of the store found. */
struct sync_changes {
	uint32_t *changed;      /* uids whose flags changed; owned */
	size_t nchanged;
	bool need_claim;        /* new mail past this session's claim */
	bool new_keywords;
};

/* A message the store lists as new or changed since the view's
   HIGHESTMODSEQ: appended past the last uid, or its flags updated. */
static void
merge_one(struct imap_view *v, const struct store_msg *sm, uint32_t last_uid,
    struct sync_changes *c)
{
	struct imap_view_msg *o, m;
	uint32_t msn;
	bool diff;

	if (sm->uid > last_uid) {
		msg_from_store(&m, sm);
		m.recent = !v->readonly && view_is_recent(v, m.uid);
		view_append(v, &m);
		return;
	}
	msn = imap_view_msn(v, sm->uid);
	if (msn == 0 || v->msgs[msn - 1].expunged ||
	    (v->msgs[msn - 1].modseq == sm->modseq &&
	    !v->msgs[msn - 1].untold))
		return;
	o = &v->msgs[msn - 1];
	diff = o->untold || o->flags != (sm->flags & IMAP_SYSTEM_FLAGS) ||
	    o->keywords != sm->keywords;
	o->untold = false;
	imap_view_msg_update(o, sm->flags, sm->keywords, sm->modseq);
	if (diff)
		c->changed[c->nchanged++] = sm->uid;
}

/* Merges the store's changes; a new message past the claim is held back
   (the next read starts just below its modseq) and a claim is asked
   for. */
static void
merge_all(struct imap_view *v, const struct store_msg *ch, size_t nch,
    struct sync_changes *c)
{
	uint32_t last_uid = v->n ? v->msgs[v->n - 1].uid : 0;
	uint64_t hold = UINT64_MAX;
	size_t i;

	v->nheld = 0;
	for (i = 0; i < nch; i++) {
		if (ch[i].uid > last_uid && view_holds(v, ch[i].uid)) {
			if (ch[i].modseq < hold)
				hold = ch[i].modseq;
			v->nheld++;
			c->need_claim = true;
			continue;
		}
		merge_one(v, &ch[i], last_uid, c);
	}
	if (hold != UINT64_MAX && hold - 1 < v->mb.highestmodseq)
		v->mb.highestmodseq = hold - 1;
}

/* Reads what changed in the store since the view was last in step. */
static void
sync_read(struct imap_session *s, struct sync_changes *c)
{
	struct imap_view *v = s->sel;
	struct store_msg *ch = NULL;
	struct store_mailbox mb;
	size_t nch = 0;
	enum store_err e;

	v->dirty = false;
	/* One record read tells whether anything changed; the scan of the
	   messages is only done when it did. */
	e = store_mailbox_get_by_id(s->base.d->store, v->mb.id, &mb);
	if (e == STORE_ENOTFOUND) {
		view_gone(s);
		return;
	}
	if (e != STORE_OK || (mb.highestmodseq == v->mb.highestmodseq &&
	    mb.uidnext == v->mb.uidnext &&
	    mb.messages == v->n - v->npending_expunge + v->nheld))
		return;
	if (store_msg_list(s->base.d->store, v->mb.id, 0, v->mb.highestmodseq,
	    &ch, &nch, &mb) != STORE_OK)
		return;
	if (mb.uidvalidity != v->mb.uidvalidity) {
		free(ch);
		return;
	}
	c->changed = xmalloc((nch ? nch : 1) * sizeof(*c->changed));
	c->new_keywords = mb.nkeywords != v->mb.nkeywords;
	v->mb = mb;
	merge_all(v, ch, nch, c);
	free(ch);
	if (mb.messages != v->n - v->npending_expunge + v->nheld)
		view_find_expunged(s);
}

/* RFC 3501 §7.3: EXISTS and RECENT come when the mailbox grows; an
   EXPUNGE already lowers both counts on the client's side, so a smaller
   count alone is not announced. RECENT also comes when a claim made
   messages recent for this session after their EXISTS. */
static void
put_counts(struct imap_view *v, struct buf *b)
{
	size_t recent = imap_view_recent_count(v);

	if (v->n != v->reported_exists) {
		bool grew = v->n > v->reported_exists;

		buf_printf(b, "* %zu EXISTS\r\n", v->n);
		v->reported_exists = (uint32_t)v->n;
		if (grew || recent != v->reported_recent)
			buf_printf(b, "* %zu RECENT\r\n", recent);
	} else if (recent > v->reported_recent) {
		buf_printf(b, "* %zu RECENT\r\n", recent);
	}
	v->reported_recent = (uint32_t)recent;
}

/* FETCH (FLAGS) of the messages other sessions changed: one line per
   message, as many as a bulk STORE elsewhere changed, so without the
   printf family. */
static void
put_changed(struct imap_session *s, const struct sync_changes *c,
    bool uid_fetch, struct buf *b)
{
	struct imap_view *v = s->sel;
	bool condstore = imap_condstore_on(s);
	size_t i;

	for (i = 0; i < c->nchanged; i++) {
		uint32_t msn = imap_view_msn(v, c->changed[i]);
		struct imap_view_msg *m;

		if (msn == 0)
			continue;
		m = &v->msgs[msn - 1];
		buf_append(b, "* ", 2);
		buf_put_u64(b, msn);
		buf_append(b, " FETCH (", 8);
		if (uid_fetch || condstore) {   /* RFC 7162 §3.1 */
			buf_append(b, "UID ", 4);
			buf_put_u64(b, m->uid);
			buf_putc(b, ' ');
		}
		buf_append(b, "FLAGS ", 6);
		imap_buf_flags(b, v, m);
		if (condstore) {
			buf_append(b, " MODSEQ (", 9);
			buf_put_u64(b, m->modseq);
			buf_putc(b, ')');
		}
		buf_append(b, ")\r\n", 3);
	}
}

void
imap_view_sync(struct imap_session *s, bool allow_expunge, bool uid_fetch)
{
	struct imap_view *v = s->sel;
	struct sync_changes c = { NULL, 0, false, false };
	struct buf b;

	if (v->gone)
		return;
	/* Not read yet (a command that did not pass imap_view_prepare, such
	   as APPEND's reply): read it here, on the loop. */
	if (!v->loaded) {
		enum store_err e = imap_view_load(s->base.d->store, v);

		if (e != STORE_OK) {
			view_broken(s, e);
			return;
		}
	}
	if (v->dirty || s->force_sync)
		sync_read(s, &c);
	if (v->gone)
		return;
	s->force_sync = false;
	if (allow_expunge && v->npending_expunge)
		send_expunges(s);
	buf_init(&b);
	if (c.new_keywords)
		imap_buf_flags_update(&b, v);
	put_counts(v, &b);
	put_changed(s, &c, uid_fetch, &b);
	imap_send_buf(s, &b);
	buf_free(&b);
	free(c.changed);
	if (!v->readonly && (c.need_claim || (v->claim_again && !v->claiming)))
		view_claim(s, false);
}
