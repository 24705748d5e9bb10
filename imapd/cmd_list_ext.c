/* cmd_list_ext: LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819),
   SPECIAL-USE selection and attributes (RFC 6154), CHILDREN (RFC 3348)
   and CREATE-SPECIAL-USE (RFC 6154 §3). Plain "LIST ref pattern" stays
   in cmd_mailbox.c; imap_cmd_list hands the extended forms over here.
   The index is read on the loop, like the plain LIST. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_commands.h"
#include "imap_ext2.h"
#include "imap_list_ext.h"
#include "imap_utf7.h"

static const struct { uint32_t bit; const char *name; } su_names[] = {
	{ STORE_SU_ALL, "\\All" }, { STORE_SU_ARCHIVE, "\\Archive" },
	{ STORE_SU_DRAFTS, "\\Drafts" }, { STORE_SU_FLAGGED, "\\Flagged" },
	{ STORE_SU_JUNK, "\\Junk" }, { STORE_SU_SENT, "\\Sent" },
	{ STORE_SU_TRASH, "\\Trash" },
};

struct xentry {
	char *name;                 /* owned, UTF-8 */
	const struct store_mailbox *mb;  /* NULL: does not exist */
	bool subscribed;
	bool children;              /* an existing mailbox below it */
	bool selected;              /* matches the selection options */
	bool child_selected;        /* a descendant matches them */
};

struct xlist {
	struct xentry *v;
	size_t n, cap;
};

static int
xentry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct xentry *)a)->name,
	    ((const struct xentry *)b)->name);
}

static void
xadd(struct xlist *l, const char *name, const struct store_mailbox *mb,
    bool subscribed)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 32;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	memset(&l->v[l->n], 0, sizeof(l->v[0]));
	l->v[l->n].name = xstrdup(name);
	l->v[l->n].mb = mb;
	l->v[l->n].subscribed = subscribed;
	l->n++;
}

/* Mailboxes, subscriptions and the implied parents of both, merged by
   name and sorted, so that descendants follow their parent. */
static void
xcollect(struct xlist *l, const struct store_mailbox *mbs, size_t nmb,
    char **subs, size_t nsubs)
{
	size_t i, k, n0;

	for (i = 0; i < nmb; i++)
		xadd(l, mbs[i].name, &mbs[i], false);
	for (i = 0; i < nsubs; i++)
		xadd(l, subs[i], NULL, true);
	n0 = l->n;
	for (i = 0; i < n0; i++) {
		char *copy = xstrdup(l->v[i].name), *p;

		for (p = strchr(copy, '/'); p != NULL; p = strchr(p + 1, '/')) {
			*p = '\0';
			xadd(l, copy, NULL, false);
			*p = '/';
		}
		free(copy);
	}
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), xentry_cmp);
	for (i = 0, k = 0; i < l->n; i++) {
		if (k > 0 && strcmp(l->v[k - 1].name, l->v[i].name) == 0) {
			if (l->v[i].mb != NULL)
				l->v[k - 1].mb = l->v[i].mb;
			l->v[k - 1].subscribed |= l->v[i].subscribed;
			free(l->v[i].name);
			continue;
		}
		l->v[k++] = l->v[i];
	}
	l->n = k;
	/* children: sorted order puts "a/..." right after "a" (and after
	   names like "a b" that sort between; scan until the prefix ends) */
	for (i = 0; i < l->n; i++) {
		size_t len = strlen(l->v[i].name);

		for (k = i + 1; k < l->n; k++) {
			if (strncmp(l->v[k].name, l->v[i].name, len) != 0)
				break;
			if (l->v[k].name[len] == '/' && l->v[k].mb != NULL) {
				l->v[i].children = true;
				break;
			}
		}
	}
}

static bool
xselected(const struct xentry *e, unsigned sel)
{
	if ((sel & IMAP_LSEL_SUBSCRIBED) && !e->subscribed)
		return false;
	if ((sel & IMAP_LSEL_SPECIAL_USE) &&
	    (e->mb == NULL || e->mb->special_use == 0))
		return false;
	if (!(sel & IMAP_LSEL_SUBSCRIBED) && e->mb == NULL)
		return !(sel & IMAP_LSEL_SPECIAL_USE) && e->children;
	return true;
}

static void
put_xattrs(struct buf *b, const struct xentry *e,
    const struct imap_list_opts *o)
{
	size_t i, start = b->len;

	buf_putc(b, '(');
	/* A name that is only a parent of real mailboxes is \Noselect, as
	   in the plain LIST; one that a selection option brought in
	   (subscribed, or a RECURSIVEMATCH parent) is \NonExistent. */
	if (e->mb == NULL)
		buf_puts(b, o->sel & (IMAP_LSEL_SUBSCRIBED |
		    IMAP_LSEL_RECURSIVEMATCH) ? "\\NonExistent " :
		    "\\Noselect ");
	if ((o->ret & IMAP_LRET_SUBSCRIBED) && e->subscribed)
		buf_puts(b, "\\Subscribed ");
	buf_puts(b, e->children ? "\\HasChildren " : "\\HasNoChildren ");
	for (i = 0; e->mb != NULL && i < ARRAY_SIZE(su_names); i++)
		if (e->mb->special_use & su_names[i].bit)
			buf_printf(b, "%s ", su_names[i].name);
	if (b->len > start + 1)
		b->len--;
	b->data[b->len] = '\0';
	buf_putc(b, ')');
}

static void
put_status(struct buf *b, const struct xentry *e, unsigned items)
{
	const struct store_mailbox *mb = e->mb;
	size_t start;

	buf_puts(b, "* STATUS ");
	imap_buf_mailbox(b, e->name);
	buf_puts(b, " (");
	start = b->len;
	if (items & IMAP_LSTAT_MESSAGES)
		buf_printf(b, " MESSAGES %u", mb->messages);
	if (items & IMAP_LSTAT_RECENT)
		buf_printf(b, " RECENT %u", mb->recent);
	if (items & IMAP_LSTAT_UIDNEXT)
		buf_printf(b, " UIDNEXT %u", mb->uidnext);
	if (items & IMAP_LSTAT_UIDVALIDITY)
		buf_printf(b, " UIDVALIDITY %u", mb->uidvalidity);
	if (items & IMAP_LSTAT_UNSEEN)
		buf_printf(b, " UNSEEN %u", mb->unseen);
	if (items & IMAP_LSTAT_SIZE)
		buf_printf(b, " SIZE %llu", (unsigned long long)mb->size);
	if (items & IMAP_LSTAT_HIGHESTMODSEQ)
		buf_printf(b, " HIGHESTMODSEQ %llu",
		    (unsigned long long)mb->highestmodseq);
	/* drop the first item's leading space */
	memmove(b->data + start, b->data + start + 1, b->len - start - 1);
	b->len--;
	buf_puts(b, ")\r\n");
}

bool
imap_list_is_extended(const struct imap_arg *args, const struct imap_arg *end)
{
	return imap_args_count(args, end) != 2 || args->type == IMAP_ARG_LIST ||
	    imap_arg_next(args)->type == IMAP_ARG_LIST;
}

enum cmd_result
imap_cmd_list_ext(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct imap_list_opts o;
	struct store_mailbox *mbs = NULL;
	char **subs = NULL, **pats;
	size_t nmb = 0, nsubs = 0, i, k;
	struct xlist l = { NULL, 0, 0 };
	const char *err;
	enum store_err e;
	struct buf out;
	bool empty_pat = false;

	if (imap_list_opts_parse(args, end, &o, &err) < 0) {
		imap_reply_tagged(s, "BAD", "%s", err);
		return CMD_DONE;
	}
	pats = xcalloc(o.npats, sizeof(*pats));
	for (i = 0; i < o.npats; i++) {
		struct buf p;

		buf_init(&p);
		if (o.ref->len + o.pats[i]->len > 1024 ||
		    imap_utf7_to_utf8(o.ref->str, o.ref->len, &p) < 0 ||
		    imap_utf7_to_utf8(o.pats[i]->str, o.pats[i]->len, &p) < 0) {
			buf_free(&p);
			for (k = 0; k < i; k++)
				free(pats[k]);
			free(pats);
			imap_reply_tagged(s, "BAD", "Invalid pattern");
			return CMD_DONE;
		}
		if (o.pats[i]->len == 0)
			empty_pat = true;
		buf_putc(&p, '\0');
		pats[i] = buf_steal(&p);
		imap_mailbox_normalize_inbox(pats[i]);
	}
	buf_init(&out);
	if (empty_pat && o.npats == 1) {
		/* LIST "" "": the hierarchy delimiter (RFC 3501 §6.3.8) */
		buf_puts(&out, "* LIST (\\Noselect) \"/\" \"\"\r\n");
		goto send;
	}
	if ((e = store_mailbox_list(s->d->store, s->user.id, &mbs, &nmb)) !=
	    STORE_OK || (e = store_subscription_list(s->d->store, s->user.id,
	    &subs, &nsubs)) != STORE_OK) {
		buf_free(&out);
		imap_reply_store_err(s, e, "LIST");
		goto out;
	}
	xcollect(&l, mbs, nmb, subs, nsubs);
	for (i = 0; i < l.n; i++)
		l.v[i].selected = xselected(&l.v[i], o.sel);
	if (o.sel & IMAP_LSEL_RECURSIVEMATCH) {
		for (i = 0; i < l.n; i++) {
			size_t len = strlen(l.v[i].name);

			for (k = i + 1; k < l.n; k++) {
				if (strncmp(l.v[k].name, l.v[i].name, len) != 0)
					break;
				if (l.v[k].name[len] == '/' &&
				    l.v[k].selected) {
					l.v[i].child_selected = true;
					break;
				}
			}
		}
	}
	for (i = 0; i < l.n; i++) {
		struct xentry *x = &l.v[i];
		bool match = false;

		for (k = 0; k < o.npats && !match; k++)
			match = imap_list_match(pats[k], x->name);
		if (!match || (!x->selected && !x->child_selected))
			continue;
		buf_puts(&out, "* LIST ");
		put_xattrs(&out, x, &o);
		buf_puts(&out, " \"/\" ");
		imap_buf_mailbox(&out, x->name);
		if (x->child_selected) {
			/* the selection criteria a descendant meets (RFC 5258
			   §3.5) */
			buf_puts(&out, " (\"CHILDINFO\" (");
			if (o.sel & IMAP_LSEL_SUBSCRIBED)
				buf_puts(&out, "\"SUBSCRIBED\"");
			if (o.sel & IMAP_LSEL_SPECIAL_USE)
				buf_puts(&out, o.sel & IMAP_LSEL_SUBSCRIBED ?
				    " \"SPECIAL-USE\"" : "\"SPECIAL-USE\"");
			buf_puts(&out, "))");
		}
		buf_puts(&out, "\r\n");
		/* RFC 5819: STATUS right after its LIST line, selectable
		   mailboxes only */
		if ((o.ret & IMAP_LRET_STATUS) && x->mb != NULL && x->selected)
			put_status(&out, x, o.status);
		if (out.len > 65536)
			imap_send_buf(s, &out);
	}
send:
	imap_send_buf(s, &out);
	buf_free(&out);
	imap_reply_tagged(s, "OK", "LIST completed");
out:
	for (i = 0; i < l.n; i++)
		free(l.v[i].name);
	free(l.v);
	for (i = 0; i < nsubs; i++)
		free(subs[i]);
	free(subs);
	free(mbs);
	for (i = 0; i < o.npats; i++)
		free(pats[i]);
	free(pats);
	return CMD_DONE;
}

/* ---- CREATE name (USE (...)) ---- */

struct create_job {
	struct store *st;
	uint32_t user_id;
	char *name;
	uint32_t su;
	enum store_err err;
};

static void
create_work(void *arg)
{
	struct create_job *j = arg;
	struct store_mailbox mb;
	char *p;

	/* missing parents first, like the plain CREATE */
	for (p = strchr(j->name, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (store_mailbox_get(j->st, j->user_id, j->name, &mb) ==
		    STORE_ENOTFOUND) {
			j->err = store_mailbox_create(j->st, j->user_id,
			    j->name, 0, &mb);
			if (j->err != STORE_OK && j->err != STORE_EEXISTS) {
				*p = '/';
				return;
			}
		}
		*p = '/';
	}
	j->err = store_mailbox_create(j->st, j->user_id, j->name, j->su, &mb);
}

static void
create_done(struct imap_session *s, void *arg)
{
	struct create_job *j = arg;

	if (j->err == STORE_OK)
		imap_reply_tagged(s, "OK", "CREATE completed");
	else
		imap_reply_store_err(s, j->err, "CREATE");
	free(j->name);
	free(j);
	imap_cmd_finish(s);
}

enum cmd_result
imap_cmd_create_ext(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	const struct imap_arg *l = imap_arg_next(args), *a, *u;
	struct create_job *j;
	uint32_t su = 0;
	char *name;
	size_t i;

	if (l >= end || l->type != IMAP_ARG_LIST || imap_arg_next(l) != end) {
		imap_reply_tagged(s, "BAD",
		    "Usage: CREATE mailbox [(USE (...))]");
		return CMD_DONE;
	}
	for (a = l + 1; a < imap_arg_list_end(l); a = imap_arg_next(u)) {
		u = imap_arg_next(a);
		if (!imap_arg_is_atom(a, "USE") || u >= imap_arg_list_end(l) ||
		    u->type != IMAP_ARG_LIST) {
			imap_reply_tagged(s, "BAD", "Unknown CREATE parameter");
			return CMD_DONE;
		}
		for (a = u + 1; a < imap_arg_list_end(u);
		    a = imap_arg_next(a)) {
			for (i = 0; i < ARRAY_SIZE(su_names); i++)
				if (imap_arg_is_atom(a, su_names[i].name))
					break;
			if (i == ARRAY_SIZE(su_names)) {
				imap_reply_tagged(s, "NO", "[USEATTR] Unsupported"
				    " special-use");
				return CMD_DONE;
			}
			su |= su_names[i].bit;
		}
	}
	if ((name = imap_mailbox_arg(s, args)) == NULL)
		return CMD_DONE;
	if (strcmp(name, "INBOX") == 0) {
		free(name);
		imap_reply_tagged(s, "NO", "[ALREADYEXISTS] INBOX exists");
		return CMD_DONE;
	}
	j = xcalloc(1, sizeof(*j));
	j->st = s->d->store;
	j->user_id = s->user.id;
	j->name = name;
	j->su = su;
	imap_session_submit(s, create_work, create_done, j);
	return CMD_SUSPEND;
}
