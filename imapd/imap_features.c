/* imap_features: the capability list and ENABLE from one table, and the
   per-session state of CONDSTORE/QRESYNC (RFC 7162) and SEARCHRES (RFC
   5182), kept in typed fields of the session. A capability gets a row
   only once its commands are complete and tested. No store writes; the
   pure parsers (imap_modseq.c, imap_esearch.c) stay apart. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_features.h"
#include "imap_modseq.h"
#include "imap_seqset.h"
#include "imap_view.h"

/* When a row is advertised. */
enum feat_when {
	WHEN_ALWAYS,
	WHEN_AUTHED,            /* after login */
	WHEN_STARTTLS,          /* before login, STARTTLS possible */
	WHEN_AUTH_OK,           /* before login, plaintext auth allowed */
	WHEN_AUTH_DISABLED,     /* before login, plaintext auth refused */
};

struct feature {
	const char *name;
	enum feat_when when;
	unsigned enable_bits;   /* ENABLE name sets these; 0: not ENABLE-able */
};

/* In the order of the CAPABILITY line. ENABLE QRESYNC also turns on
   CONDSTORE (RFC 7162 §3.2.3). ID is useful before login too (clients
   send it early; logs). APPENDLIMIT gets its value appended. */
static const struct feature features[] = {
	{ "IMAP4rev1",          WHEN_ALWAYS, 0 },
	{ "LITERAL+",           WHEN_ALWAYS, 0 },
	{ "SASL-IR",            WHEN_ALWAYS, 0 },
	{ "ID",                 WHEN_ALWAYS, 0 },
	{ "ENABLE",             WHEN_AUTHED, 0 },
	{ "IDLE",               WHEN_AUTHED, 0 },
	{ "NAMESPACE",          WHEN_AUTHED, 0 },
	{ "UNSELECT",           WHEN_AUTHED, 0 },
	{ "UIDPLUS",            WHEN_AUTHED, 0 },
	{ "MOVE",               WHEN_AUTHED, 0 },
	{ "COMPRESS=DEFLATE",   WHEN_AUTHED, 0 },
	{ "STATUS=SIZE",        WHEN_AUTHED, 0 },
	{ "APPENDLIMIT=",       WHEN_AUTHED, 0 },
	{ "CONDSTORE",          WHEN_AUTHED, IMAP_FEAT_CONDSTORE },
	{ "QRESYNC",            WHEN_AUTHED,
	    IMAP_FEAT_CONDSTORE | IMAP_FEAT_QRESYNC },
	{ "ESEARCH",            WHEN_AUTHED, 0 },
	{ "SEARCHRES",          WHEN_AUTHED, 0 },
	{ "LIST-EXTENDED",      WHEN_AUTHED, 0 },
	{ "LIST-STATUS",        WHEN_AUTHED, 0 },
	{ "SPECIAL-USE",        WHEN_AUTHED, 0 },
	{ "CREATE-SPECIAL-USE", WHEN_AUTHED, 0 },
	{ "CHILDREN",           WHEN_AUTHED, 0 },
	{ "STARTTLS",           WHEN_STARTTLS, 0 },
	{ "AUTH=PLAIN",         WHEN_AUTH_OK, 0 },
	{ "AUTH=LOGIN",         WHEN_AUTH_OK, 0 },
	{ "LOGINDISABLED",      WHEN_AUTH_DISABLED, 0 },
};

static bool
advertised(const struct imap_session *s, const struct feature *f)
{
	bool tls = conn_is_tls(s->base.c);
	bool plain_ok = tls || s->base.d->cfg->allow_plaintext_auth;

	if (f->when == WHEN_ALWAYS)
		return true;
	if (f->when == WHEN_AUTHED)
		return s->base.state != IMAP_ST_NOT_AUTH;
	if (s->base.state != IMAP_ST_NOT_AUTH)
		return false;
	switch (f->when) {
	case WHEN_STARTTLS:
		return !tls && !s->implicit_tls &&
		    server_has_tls(s->base.d->srv);
	case WHEN_AUTH_OK:
		return plain_ok;
	default:
		return !plain_ok;
	}
}

void
imap_capability_string(const struct imap_session *s, struct buf *out)
{
	size_t i;
	bool first = true;

	for (i = 0; i < ARRAY_SIZE(features); i++) {
		const struct feature *f = &features[i];

		if (!advertised(s, f))
			continue;
		if (!first)
			buf_putc(out, ' ');
		first = false;
		buf_puts(out, f->name);
		if (strcmp(f->name, "APPENDLIMIT=") == 0)
			buf_printf(out, "%llu",
			    (unsigned long long)s->base.d->cfg->max_message_size);
	}
}

const char *
imap_feature_enable(struct imap_session *s, const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(features); i++) {
		const struct feature *f = &features[i];

		if (f->enable_bits == 0 || strcasecmp(f->name, name) != 0 ||
		    !advertised(s, f))
			continue;
		if ((s->enabled & f->enable_bits) == f->enable_bits)
			return NULL;
		s->enabled |= f->enable_bits;
		return f->name;
	}
	return NULL;
}

void
imap_features_free(struct imap_session *s)
{
	imap_searchres_reset(s);
}

/* ---- CONDSTORE / QRESYNC (RFC 7162) ---- */

bool
imap_condstore_on(const struct imap_session *s)
{
	return (s->enabled & IMAP_FEAT_CONDSTORE) || s->condstore_implicit;
}

bool
imap_qresync_on(const struct imap_session *s)
{
	return (s->enabled & IMAP_FEAT_QRESYNC) != 0;
}

void
imap_condstore_enable(struct imap_session *s)
{
	struct store_mailbox mb;

	/* The first enabling command in the selected state tells the
	   mailbox's HIGHESTMODSEQ (RFC 7162 §3.1), read fresh: this
	   session's own STOREs do not update the view's copy. */
	if (!imap_condstore_on(s) && s->base.state == IMAP_ST_SELECTED &&
	    s->sel != NULL && store_mailbox_get_by_id(s->base.d->store,
	    s->sel->mb.id, &mb) == STORE_OK)
		imap_reply_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest",
		    (unsigned long long)mb.highestmodseq);
	s->condstore_implicit = true;
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
		const struct imap_view_msg *m = &v->msgs[i];

		if (m->modseq <= p->modseq ||
		    (p->have_known && !imap_seqset_has(&p->known, m->uid)))
			continue;
		buf_printf(b, "* %zu FETCH (UID %u FLAGS ", i + 1, m->uid);
		imap_buf_flags(b, v, m);
		buf_printf(b, " MODSEQ (%llu))\r\n",
		    (unsigned long long)m->modseq);
		if (b->len > 65536)
			imap_send_buf(s, b);
	}
}

/* The set of UID FETCH's first argument for VANISHED: "$" is the saved
   UIDs as single-UID ranges (RFC 5182). -1 if it does not parse. */
static int
vanished_set(struct imap_session *s, const struct imap_arg *a,
    struct imap_seqset *set)
{
	const char *err;
	size_t i;

	if (!imap_arg_is_saved(a))
		return imap_seqset_parse(a->str, a->len,
		    IMAP_SEQSET_RANGES_MAX, set, &err);
	memset(set, 0, sizeof(*set));
	set->r = xmalloc((s->searchres.n ? s->searchres.n : 1) *
	    sizeof(*set->r));
	for (i = 0; i < s->searchres.n; i++)
		set->r[i].lo = set->r[i].hi = s->searchres.uids[i];
	set->n = s->searchres.n;
	return 0;
}

void
imap_fetch_vanished(struct imap_session *s, const struct imap_arg *a,
    uint64_t since)
{
	const struct imap_view *v = s->sel;
	struct imap_seqset set;
	uint32_t *uids = NULL;
	size_t n = 0;
	struct buf b;

	if (vanished_set(s, a, &set) < 0)
		return;
	/* '*' is the highest UID ever given out, so that expunged UIDs above
	   the last existing message are reported too. */
	imap_seqset_resolve(&set, v->mb.uidnext > 0 ? v->mb.uidnext - 1 : 0);
	if (store_expunged_since(s->base.d->store, v->mb.id, since, &uids,
	    &n) == STORE_OK) {
		n = filter_set(uids, n, &set);
		buf_init(&b);
		imap_buf_vanished(&b, true, uids, n);
		imap_send_buf(s, &b);
		buf_free(&b);
	}
	free(uids);
	imap_seqset_free(&set);
}

/* ---- SEARCHRES (RFC 5182) ---- */

/* The saved result is kept as UIDs so that it survives expunges and
   appends and can be read back as MSNs or UIDs by "$". */
void
imap_searchres_reset(struct imap_session *s)
{
	free(s->searchres.uids);
	s->searchres.uids = NULL;
	s->searchres.n = 0;
}

void
imap_searchres_save(struct imap_session *s, const uint32_t *uids, size_t n)
{
	imap_searchres_reset(s);
	s->searchres.n = n;
	if (n > 0) {
		s->searchres.uids = xmalloc(n * sizeof(*uids));
		memcpy(s->searchres.uids, uids, n * sizeof(*uids));
	}
}

bool
imap_arg_is_saved(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM && a->len == 1 && a->str[0] == '$';
}
