/* cmd_condstore: the session side of CONDSTORE and QRESYNC (RFC 7162):
   whether they are on, MODSEQ in FETCH responses, VANISHED lines, the
   QRESYNC part of SELECT, VANISHED for UID FETCH (CHANGEDSINCE), and the
   capability list of the imap_ext2.h extensions. The parsers are pure in
   imap_modseq.c; SELECT/FETCH/STORE/SEARCH call in here. */
#include <stdlib.h>
#include <string.h>

#include "imap_ext.h"
#include "imap_ext2.h"
#include "imap_ext_private.h"
#include "imap_modseq.h"
#include "imap_seqset.h"

/* Each capability is listed once its commands are complete and tested. */
void
imap_ext2_capabilities(const struct imap_session *s, struct buf *out)
{
	if (s->state == IMAP_ST_NOT_AUTH)
		return;
	buf_puts(out, " CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED"
	    " LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE CHILDREN");
}

bool
imap_ext2_condstore_advertised(const struct imap_session *s)
{
	return s->state != IMAP_ST_NOT_AUTH;
}

struct imap_ext2 *
imap_ext2_get(struct imap_session *s)
{
	struct imap_ext *x = imap_ext_get(s);

	if (x->ext2 == NULL)
		x->ext2 = xcalloc(1, sizeof(struct imap_ext2));
	return x->ext2;
}

void
imap_ext2_free(void *p)
{
	struct imap_ext2 *e = p;

	if (e == NULL)
		return;
	free(e->saved);
	free(e);
}

bool
imap_condstore_on(const struct imap_session *s)
{
	const struct imap_ext *x = s->ext;

	if (x == NULL)
		return false;
	if (x->enabled & IMAP_EXT_CONDSTORE)
		return true;
	return x->ext2 != NULL &&
	    ((const struct imap_ext2 *)x->ext2)->condstore_implicit;
}

bool
imap_qresync_on(const struct imap_session *s)
{
	return (imap_ext_enabled(s) & IMAP_EXT_QRESYNC) != 0;
}

void
imap_condstore_enable(struct imap_session *s)
{
	struct store_mailbox mb;

	/* The first enabling command in the selected state tells the
	   mailbox's HIGHESTMODSEQ (RFC 7162 §3.1), read fresh: this
	   session's own STOREs do not update the view's copy. */
	if (!imap_condstore_on(s) && s->state == IMAP_ST_SELECTED &&
	    s->sel != NULL && store_mailbox_get_by_id(s->d->store,
	    s->sel->mb.id, &mb) == STORE_OK)
		imap_reply_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest",
		    (unsigned long long)mb.highestmodseq);
	imap_ext2_get(s)->condstore_implicit = true;
}

void
imap_buf_modseq(struct buf *b, const struct imap_session *s, uint64_t modseq)
{
	if (imap_condstore_on(s))
		buf_printf(b, " MODSEQ (%llu)", (unsigned long long)modseq);
}

void
imap_buf_vanished(struct buf *b, bool earlier, const uint32_t *uids,
    size_t n)
{
	if (n == 0)
		return;
	buf_puts(b, earlier ? "* VANISHED (EARLIER) " : "* VANISHED ");
	imap_seqset_format(uids, n, b);
	buf_puts(b, "\r\n");
}

/* Keeps the uids of the (resolved) set. */
static size_t
filter_set(uint32_t *uids, size_t n, const struct imap_seqset *set)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (imap_seqset_has(set, uids[i]))
			uids[k++] = uids[i];
	return k;
}

void
imap_qresync_work(struct store *st, const struct imap_view *v,
    const struct imap_select_params *p, uint32_t **uids_r, size_t *n_r)
{
	*uids_r = NULL;
	*n_r = 0;
	if (!p->qresync || p->uidvalidity != v->mb.uidvalidity)
		return;
	/* The tombstones are kept for every expunge, so the exact set is
	   known and the seq-match hint (§3.2.5.2) is not needed. */
	if (store_expunged_since(st, v->mb.id, p->modseq, uids_r, n_r) !=
	    STORE_OK) {
		*uids_r = NULL;
		*n_r = 0;
		return;
	}
	if (p->have_known)
		*n_r = filter_set(*uids_r, *n_r, &p->known);
}

void
imap_qresync_reply(struct imap_session *s,
    const struct imap_select_params *p, const uint32_t *vanished,
    size_t nvanished, struct buf *b)
{
	const struct imap_view *v = s->sel;
	size_t i;

	if (!p->qresync || p->uidvalidity != v->mb.uidvalidity)
		return;
	imap_buf_vanished(b, true, vanished, nvanished);
	for (i = 0; i < v->n; i++) {
		const struct store_msg *m = &v->msgs[i];

		if (m->modseq <= p->modseq ||
		    (p->have_known && !imap_seqset_has(&p->known, m->uid)))
			continue;
		buf_printf(b, "* %zu FETCH (UID %u FLAGS ", i + 1, m->uid);
		imap_buf_flags(b, v, m->flags, m->keywords);
		buf_printf(b, " MODSEQ (%llu))\r\n",
		    (unsigned long long)m->modseq);
		if (b->len > 65536)
			imap_send_buf(s, b);
	}
}

void
imap_fetch_vanished(struct imap_session *s, const struct imap_arg *a,
    uint64_t since)
{
	struct imap_seqset set;
	uint32_t *uids = NULL;
	size_t n = 0;
	const char *err;
	struct buf b;
	const struct imap_view *v = s->sel;

	if (imap_arg_is_saved(a)) {
		/* "$": the saved UIDs (RFC 5182), as single-UID ranges */
		const uint32_t *saved;
		size_t nsaved, i;

		imap_searchres_get(s, &saved, &nsaved);
		memset(&set, 0, sizeof(set));
		set.r = xmalloc((nsaved ? nsaved : 1) * sizeof(*set.r));
		for (i = 0; i < nsaved; i++)
			set.r[i].lo = set.r[i].hi = saved[i];
		set.n = nsaved;
	} else if (imap_seqset_parse(a->str, a->len, IMAP_SEQSET_RANGES_MAX,
	    &set, &err) < 0) {
		return;
	}
	/* '*' is the highest UID ever given out, so that expunged UIDs above
	   the last existing message are reported too. */
	imap_seqset_resolve(&set, v->mb.uidnext > 0 ? v->mb.uidnext - 1 : 0);
	if (store_expunged_since(s->d->store, v->mb.id, since, &uids, &n) ==
	    STORE_OK) {
		n = filter_set(uids, n, &set);
		buf_init(&b);
		imap_buf_vanished(&b, true, uids, n);
		imap_send_buf(s, &b);
		buf_free(&b);
	}
	free(uids);
	imap_seqset_free(&set);
}
