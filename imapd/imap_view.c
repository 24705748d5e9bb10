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

/* Claims \Recent for this session (worker thread). The store moves the
   mark from first to its uidnext at the time of the claim; uidnext read
   just before is a lower bound of that, so [first, pre) is certainly this
   session's. A delivery racing the claim leaves its message recent for
   nobody rather than for two sessions. */
static enum store_err
claim_recent_range(struct store *st, uint32_t mbox_id, uint32_t pre_uidnext,
    uint32_t *lo_r, uint32_t *hi_r)
{
	uint32_t first;
	enum store_err e;

	if ((e = store_mailbox_claim_recent(st, mbox_id, &first)) != STORE_OK)
		return e;
	*lo_r = first;
	*hi_r = pre_uidnext > first ? pre_uidnext : first;
	return STORE_OK;
}

/* Copies the store's list into the view's records and flags \Recent:
   EXAMINE peeks at the mark (first), SELECT uses its claim. */
static void
view_fill(struct imap_view *v, const struct store_msg *list, size_t n,
    uint32_t first)
{
	size_t i;

	v->msgs = xmalloc((n ? n : 1) * sizeof(*v->msgs));
	v->n = v->cap = n;
	for (i = 0; i < n; i++) {
		struct imap_view_msg *m = &v->msgs[i];

		msg_from_store(m, &list[i]);
		if (v->readonly ? first != 0 && m->uid >= first :
		    m->uid >= v->recent_lo && m->uid < v->recent_hi)
			m->recent = true;
		else if (!v->readonly && m->uid >= v->recent_hi)
			v->claim_again = true;  /* delivered during the claim */
	}
}

enum store_err
imap_view_open(struct store *st, uint32_t user_id, const char *name,
    bool readonly, struct imap_view **v_r)
{
	struct imap_view *v = xcalloc(1, sizeof(*v));
	struct store_msg *list = NULL;
	uint32_t first = 0;
	size_t n = 0;
	enum store_err e;

	if ((e = store_mailbox_get(st, user_id, name, &v->mb)) != STORE_OK)
		goto fail;
	/* EXAMINE peeks at the recent mark without claiming (RFC 3501
	   §6.3.2: the \Recent state is not altered). */
	if (readonly)
		first = v->mb.first_recent_uid;
	else if ((e = claim_recent_range(st, v->mb.id, v->mb.uidnext,
	    &v->recent_lo, &v->recent_hi)) != STORE_OK)
		goto fail;
	if ((e = store_msg_list(st, v->mb.id, 0, 0, &list, &n, &v->mb)) !=
	    STORE_OK)
		goto fail;
	v->readonly = readonly;
	v->serial = ++g_view_serial;
	view_fill(v, list, n, first);
	free(list);
	*v_r = v;
	return STORE_OK;
fail:
	free(v);
	return e;
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
	size_t i, n = 0;

	for (i = 0; i < v->n; i++)
		if (v->msgs[i].recent)
			n++;
	return n;
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
}

static void
mark_expunged(struct imap_view *v, struct imap_view_msg *m)
{
	if (!m->expunged) {
		m->expunged = true;
		v->npending_expunge++;
	}
}

/* Marks view messages that the store no longer has (merge of two
   uid-ordered lists). */
static void
view_find_expunged(struct imap_session *s)
{
	struct imap_view *v = s->sel;
	struct store_msg *all = NULL;
	size_t n = 0, i, j = 0;

	if (store_msg_list(s->base.d->store, v->mb.id, 0, 0, &all, &n, NULL) !=
	    STORE_OK)
		return;
	for (i = 0; i < v->n; i++) {
		while (j < n && all[j].uid < v->msgs[i].uid)
			j++;
		if (j == n || all[j].uid != v->msgs[i].uid)
			mark_expunged(v, &v->msgs[i]);
	}
	free(all);
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

/* ---- \Recent claims after SELECT ---- */

struct claim_job {
	struct store *st;
	uint64_t serial;
	uint32_t mbox_id, pre_uidnext, lo, hi;
	enum store_err e;
};

static void
claim_work(void *arg)
{
	struct claim_job *j = arg;
	struct store_mailbox mb;

	/* A fresher lower bound than the view's, read right before. */
	if (store_mailbox_get_by_id(j->st, j->mbox_id, &mb) == STORE_OK &&
	    mb.uidnext > j->pre_uidnext)
		j->pre_uidnext = mb.uidnext;
	j->e = claim_recent_range(j->st, j->mbox_id, j->pre_uidnext, &j->lo,
	    &j->hi);
}

static void view_claim(struct imap_session *s);

/* The claim is back: flag what it gave this session. The client hears of
   it with the next untagged window (at once while idling). */
static void
claim_done(struct imap_session *s, void *arg)
{
	struct claim_job *j = arg;
	struct imap_view *v = s->sel;
	bool flagged = false;
	size_t i;

	if (v == NULL || v->serial != j->serial || s->base.closing)
		goto out;
	v->claiming = false;
	if (j->e != STORE_OK)
		goto out;
	v->recent_lo = j->lo;
	v->recent_hi = j->hi;
	for (i = 0; i < v->n; i++) {
		struct imap_view_msg *m = &v->msgs[i];

		if (m->uid >= j->lo && m->uid < j->hi && !m->recent &&
		    !m->expunged) {
			m->recent = true;
			flagged = true;
		}
	}
	if (v->claim_again)
		view_claim(s);
	if (flagged)
		imap_idle_view_changed(s);
out:
	free(j);
}

/* One claim at a time per view; mail that arrives while one runs is
   claimed by the next. */
static void
view_claim(struct imap_session *s)
{
	struct imap_view *v = s->sel;
	struct claim_job *j;

	if (v->claiming) {
		v->claim_again = true;
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->st = s->base.d->store;
	j->serial = v->serial;
	j->mbox_id = v->mb.id;
	j->pre_uidnext = v->mb.uidnext;
	v->claiming = true;
	v->claim_again = false;
	imap_session_submit(s, claim_work, claim_done, j);
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
	for (i = 0; i < v->n; i++)
		if (!v->msgs[i].expunged)
			v->msgs[k++] = v->msgs[i];
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
		if (v->readonly)
			;
		else if (m.uid >= v->recent_lo && m.uid < v->recent_hi)
			m.recent = true;
		else if (m.uid >= v->recent_hi)
			c->need_claim = true;
		view_append(v, &m);
		return;
	}
	msn = imap_view_msn(v, sm->uid);
	if (msn == 0 || v->msgs[msn - 1].expunged ||
	    v->msgs[msn - 1].modseq == sm->modseq)
		return;
	o = &v->msgs[msn - 1];
	diff = o->flags != (sm->flags & IMAP_SYSTEM_FLAGS) ||
	    o->keywords != sm->keywords;
	imap_view_msg_update(o, sm->flags, sm->keywords, sm->modseq);
	if (diff)
		c->changed[c->nchanged++] = sm->uid;
}

/* Reads what changed in the store since the view was last in step. */
static void
sync_read(struct imap_session *s, struct sync_changes *c)
{
	struct imap_view *v = s->sel;
	struct store_msg *ch = NULL;
	struct store_mailbox mb;
	size_t nch = 0, i;
	uint32_t last_uid;
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
	    mb.messages == v->n - v->npending_expunge))
		return;
	if (store_msg_list(s->base.d->store, v->mb.id, 0, v->mb.highestmodseq,
	    &ch, &nch, &mb) != STORE_OK)
		return;
	if (mb.uidvalidity != v->mb.uidvalidity) {
		free(ch);
		return;
	}
	last_uid = v->n ? v->msgs[v->n - 1].uid : 0;
	c->changed = xmalloc((nch ? nch : 1) * sizeof(*c->changed));
	for (i = 0; i < nch; i++)
		merge_one(v, &ch[i], last_uid, c);
	free(ch);
	c->new_keywords = mb.nkeywords != v->mb.nkeywords;
	v->mb = mb;
	if (mb.messages != v->n - v->npending_expunge)
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

/* FETCH (FLAGS) of the messages other sessions changed. */
static void
put_changed(struct imap_session *s, const struct sync_changes *c,
    bool uid_fetch, struct buf *b)
{
	struct imap_view *v = s->sel;
	size_t i;

	for (i = 0; i < c->nchanged; i++) {
		uint32_t msn = imap_view_msn(v, c->changed[i]);
		struct imap_view_msg *m;

		if (msn == 0)
			continue;
		m = &v->msgs[msn - 1];
		buf_printf(b, "* %u FETCH (", msn);
		if (uid_fetch || imap_condstore_on(s))  /* RFC 7162 §3.1 */
			buf_printf(b, "UID %u ", m->uid);
		buf_puts(b, "FLAGS ");
		imap_buf_flags(b, v, m);
		imap_buf_modseq(b, s, m->modseq);
		buf_puts(b, ")\r\n");
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
		view_claim(s);
}
