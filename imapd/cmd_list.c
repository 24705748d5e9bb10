/* cmd_list: LIST and LSUB (RFC 3501), LIST's extended forms
   (LIST-EXTENDED, RFC 5258) with LIST-STATUS (RFC 5819), SPECIAL-USE
   selection and attributes (RFC 6154) and CHILDREN (RFC 3348). The index
   is read on the loop; nothing here writes. Wildcard matching never
   backtracks, so a hostile pattern costs at most pattern x name steps. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_commands.h"
#include "imap_commands_util.h"
#include "imap_list_ext.h"
#include "imap_utf7.h"

#define PATTERN_MAX 1024

/* ---- plain LIST / LSUB ---- */

/* A run of wildcards matches what its widest member matches: "%*%" is
   "*", "%%" is "%". Collapsing bounds the matcher's work by the pattern's
   literal characters, whatever the client sends. */
static void
collapse_wildcards(char *p)
{
	char *w = p;

	while (*p) {
		if (*p == '*' || *p == '%') {
			char c = '%';

			for (; *p == '*' || *p == '%'; p++)
				if (*p == '*')
					c = '*';
			*w++ = c;
		} else {
			*w++ = *p++;
		}
	}
	*w = '\0';
}

/* '*' matches anything, '%' anything but the delimiter. Dynamic
   programming over (pattern, name): no exponential backtracking. */
static bool
pattern_match(const char *pat, const char *name)
{
	size_t pl = strlen(pat), nl = strlen(name), i, j, lit = 0;
	unsigned char *row, *prev;
	bool r;

	for (i = 0; i < pl; i++)
		if (pat[i] != '*' && pat[i] != '%')
			lit++;
	if (lit > nl)
		return false;   /* more fixed characters than the name has */

	prev = xcalloc(nl + 1, 1);
	row = xcalloc(nl + 1, 1);
	prev[0] = 1;
	for (j = 1; j <= nl; j++)
		prev[j] = 0;
	for (i = 1; i <= pl; i++) {
		char c = pat[i - 1];
		unsigned char *t;

		row[0] = (c == '*' || c == '%') && prev[0];
		for (j = 1; j <= nl; j++) {
			if (c == '*')
				row[j] = prev[j] || row[j - 1];
			else if (c == '%')
				row[j] = prev[j] || (row[j - 1] && name[j - 1] != '/');
			else
				row[j] = prev[j - 1] && c == name[j - 1];
		}
		t = prev;
		prev = row;
		row = t;
	}
	r = prev[nl];
	free(prev);
	free(row);
	return r;
}

struct lentry {
	char *name;
	bool exists;
	uint32_t special_use;
	bool children;
	bool direct;    /* listed itself, not only implied by a child */
};

static bool
descendant_matches(const struct lentry *v, size_t n, size_t i,
    const char *pat)
{
	size_t k, l = strlen(v[i].name);

	for (k = i + 1; k < n; k++)
		if (v[k].direct && strncmp(v[k].name, v[i].name, l) == 0 &&
		    v[k].name[l] == '/' && pattern_match(pat, v[k].name))
			return true;
	return false;
}

static int
lentry_cmp(const void *a, const void *b)
{
	const struct lentry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static void
put_attrs(struct buf *b, const struct lentry *e, bool lsub)
{
	size_t i, start = b->len;

	buf_putc(b, '(');
	if (!e->exists)
		buf_puts(b, "\\Noselect ");
	if (!lsub)
		buf_puts(b, e->children ? "\\HasChildren " : "\\HasNoChildren ");
	for (i = 0; i < IMAP_SPECIAL_USE_N; i++)
		if (e->special_use & imap_special_uses[i].bit)
			buf_printf(b, "%s ", imap_special_uses[i].name);
	if (b->len > start + 1)
		b->len--;   /* the last space */
	b->data[b->len] = '\0';
	buf_putc(b, ')');
}

static void
add_entry(struct lentry **v, size_t *n, size_t *cap, const char *name,
    bool exists, uint32_t su, bool direct)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	(*v)[*n].name = xstrdup(name);
	(*v)[*n].exists = exists;
	(*v)[*n].special_use = su;
	(*v)[*n].children = false;
	(*v)[*n].direct = direct;
	(*n)++;
}

/* Names plus their implied parents, sorted and merged. */
static void
collect(struct lentry **v_r, size_t *n_r, char **names, const bool *exists,
    const uint32_t *su, size_t nn)
{
	struct lentry *v = NULL;
	size_t n = 0, cap = 0, i, k;

	for (i = 0; i < nn; i++) {
		char *copy = xstrdup(names[i]), *p;

		add_entry(&v, &n, &cap, names[i], exists[i], su ? su[i] : 0, true);
		for (p = strchr(copy, '/'); p != NULL; p = strchr(p + 1, '/')) {
			*p = '\0';
			add_entry(&v, &n, &cap, copy, false, 0, false);
			*p = '/';
		}
		free(copy);
	}
	if (n)
		qsort(v, n, sizeof(*v), lentry_cmp);
	for (i = 0, k = 0; i < n; i++) {
		if (k > 0 && strcmp(v[k - 1].name, v[i].name) == 0) {
			v[k - 1].exists |= v[i].exists;
			v[k - 1].special_use |= v[i].special_use;
			v[k - 1].direct |= v[i].direct;
			free(v[i].name);
			continue;
		}
		v[k++] = v[i];
	}
	n = k;
	for (i = 0; i < n; i++) {
		size_t l = strlen(v[i].name);

		for (k = 0; k < n && !v[i].children; k++)
			if (strncmp(v[k].name, v[i].name, l) == 0 &&
			    v[k].name[l] == '/')
				v[i].children = true;
	}
	*v_r = v;
	*n_r = n;
}

/* The reference and pattern of a plain LIST/LSUB as one UTF-8 pattern
   with INBOX normalised and wildcard runs collapsed. -1 if they are not
   valid modified UTF-7. */
static int
list_pattern(const struct imap_arg *ref, const struct imap_arg *pat,
    struct buf *pattern)
{
	if (imap_utf7_to_utf8(ref->str, ref->len, pattern) < 0 ||
	    imap_utf7_to_utf8(pat->str, pat->len, pattern) < 0)
		return -1;
	buf_putc(pattern, '\0');
	imap_mailbox_normalize_inbox(pattern->data);
	collapse_wildcards(pattern->data);
	return 0;
}

/* LSUB's names: the subscriptions, each marked whether it exists. */
static enum store_err
gather_subscriptions(struct imap_session *s, struct lentry **v_r, size_t *n_r)
{
	struct store_mailbox mb;
	char **names = NULL;
	bool *exists;
	size_t nn = 0, i;
	enum store_err e;

	e = store_subscription_list(s->base.d->store, s->user.id, &names, &nn);
	if (e != STORE_OK)
		return e;
	exists = xcalloc(nn + 1, sizeof(*exists));
	for (i = 0; i < nn; i++)
		exists[i] = store_mailbox_get(s->base.d->store, s->user.id,
		    names[i], &mb) == STORE_OK;
	collect(v_r, n_r, names, exists, NULL, nn);
	for (i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	free(exists);
	return STORE_OK;
}

/* LIST's names: the mailboxes with their special-use attributes. */
static enum store_err
gather_mailboxes(struct imap_session *s, struct lentry **v_r, size_t *n_r)
{
	struct store_mailbox *mbs = NULL;
	char **names;
	bool *exists;
	uint32_t *su;
	size_t nn = 0, i;
	enum store_err e;

	if ((e = store_mailbox_list(s->base.d->store, s->user.id, &mbs, &nn)) !=
	    STORE_OK)
		return e;
	names = xcalloc(nn + 1, sizeof(*names));
	exists = xcalloc(nn + 1, sizeof(*exists));
	su = xcalloc(nn + 1, sizeof(*su));
	for (i = 0; i < nn; i++) {
		names[i] = mbs[i].name;
		exists[i] = true;
		su[i] = mbs[i].special_use;
	}
	collect(v_r, n_r, names, exists, su, nn);
	free(names);
	free(exists);
	free(su);
	free(mbs);
	return STORE_OK;
}

/* The LIST/LSUB lines of the entries that match; frees the entries. */
static void
list_output(struct imap_session *s, struct lentry *v, size_t n,
    const char *pattern, bool lsub)
{
	struct buf out;
	size_t i;

	buf_init(&out);
	for (i = 0; i < n; i++) {
		/* LSUB lists parents only as \Noselect stand-ins for a
		   subscribed child that '%' hides. */
		if (pattern_match(pattern, v[i].name) && !(lsub &&
		    !v[i].direct && descendant_matches(v, n, i, pattern))) {
			buf_printf(&out, "* %s ", lsub ? "LSUB" : "LIST");
			put_attrs(&out, &v[i], lsub);
			buf_puts(&out, " \"/\" ");
			imap_buf_mailbox(&out, v[i].name);
			buf_puts(&out, "\r\n");
		}
	}
	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	imap_send_buf(s, &out);
	buf_free(&out);
}

static enum cmd_result
list_cmd(struct imap_session *s, const struct imap_arg *args, bool lsub)
{
	const struct imap_arg *ref = args, *pat = imap_arg_next(args);
	const char *verb = lsub ? "LSUB" : "LIST";
	struct lentry *v = NULL;
	struct buf pattern;
	size_t n = 0;
	enum store_err e;

	if (!imap_arg_is_string(ref) || !imap_arg_is_string(pat) ||
	    ref->len + pat->len > PATTERN_MAX) {
		imap_cmd_reply(s, IMAP_BAD, "Usage: %s reference pattern", verb);
		return CMD_DONE;
	}
	if (!lsub && pat->len == 0) {
		imap_reply_untagged(s, "LIST (\\Noselect) \"/\" \"\"");
		imap_cmd_reply(s, IMAP_OK, "LIST completed");
		return CMD_DONE;
	}
	buf_init(&pattern);
	if (list_pattern(ref, pat, &pattern) < 0) {
		buf_free(&pattern);
		imap_cmd_reply(s, IMAP_BAD, "Invalid modified UTF-7 pattern");
		return CMD_DONE;
	}
	e = lsub ? gather_subscriptions(s, &v, &n) : gather_mailboxes(s, &v, &n);
	if (e != STORE_OK) {
		buf_free(&pattern);
		imap_reply_store_err(s, e, verb);
		return CMD_DONE;
	}
	list_output(s, v, n, pattern.data, lsub);
	buf_free(&pattern);
	imap_cmd_reply(s, IMAP_OK, "%s completed", verb);
	return CMD_DONE;
}

/* ---- LIST-EXTENDED (RFC 5258) ---- */

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
	for (i = 0; e->mb != NULL && i < IMAP_SPECIAL_USE_N; i++)
		if (e->mb->special_use & imap_special_uses[i].bit)
			buf_printf(b, "%s ", imap_special_uses[i].name);
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

/* Whether LIST's arguments are the RFC 5258 form (selection options,
   several patterns, RETURN options). */
static bool
list_is_extended(const struct imap_arg *args, const struct imap_arg *end)
{
	return imap_args_count(args, end) != 2 || args->type == IMAP_ARG_LIST ||
	    imap_arg_next(args)->type == IMAP_ARG_LIST;
}

static void
free_patterns(char **pats, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(pats[i]);
	free(pats);
}

/* The patterns of o with the reference prefixed, as owned UTF-8 strings.
   NULL if one is too long or not valid modified UTF-7. */
static char **
ext_patterns(const struct imap_list_opts *o, bool *empty_r)
{
	char **pats = xcalloc(o->npats, sizeof(*pats));
	size_t i;

	*empty_r = false;
	for (i = 0; i < o->npats; i++) {
		struct buf p;

		buf_init(&p);
		if (o->ref->len + o->pats[i]->len > PATTERN_MAX ||
		    imap_utf7_to_utf8(o->ref->str, o->ref->len, &p) < 0 ||
		    imap_utf7_to_utf8(o->pats[i]->str, o->pats[i]->len, &p) < 0) {
			buf_free(&p);
			free_patterns(pats, i);
			return NULL;
		}
		if (o->pats[i]->len == 0)
			*empty_r = true;
		buf_putc(&p, '\0');
		pats[i] = buf_steal(&p);
		imap_mailbox_normalize_inbox(pats[i]);
	}
	return pats;
}

/* RECURSIVEMATCH: marks entries with a descendant that the selection
   options select (sorted order puts descendants right after). */
static void
mark_child_selected(struct xlist *l)
{
	size_t i, k;

	for (i = 0; i < l->n; i++) {
		size_t len = strlen(l->v[i].name);

		for (k = i + 1; k < l->n; k++) {
			if (strncmp(l->v[k].name, l->v[i].name, len) != 0)
				break;
			if (l->v[k].name[len] == '/' && l->v[k].selected) {
				l->v[i].child_selected = true;
				break;
			}
		}
	}
}

/* One LIST line (with CHILDINFO and a LIST-STATUS line as asked). */
static void
put_xentry(struct buf *out, const struct xentry *x,
    const struct imap_list_opts *o)
{
	buf_puts(out, "* LIST ");
	put_xattrs(out, x, o);
	buf_puts(out, " \"/\" ");
	imap_buf_mailbox(out, x->name);
	if (x->child_selected) {
		/* the selection criteria a descendant meets (RFC 5258 §3.5) */
		buf_puts(out, " (\"CHILDINFO\" (");
		if (o->sel & IMAP_LSEL_SUBSCRIBED)
			buf_puts(out, "\"SUBSCRIBED\"");
		if (o->sel & IMAP_LSEL_SPECIAL_USE)
			buf_puts(out, o->sel & IMAP_LSEL_SUBSCRIBED ?
			    " \"SPECIAL-USE\"" : "\"SPECIAL-USE\"");
		buf_puts(out, "))");
	}
	buf_puts(out, "\r\n");
	/* RFC 5819: STATUS right after its LIST line, selectable mailboxes
	   only */
	if ((o->ret & IMAP_LRET_STATUS) && x->mb != NULL && x->selected)
		put_status(out, x, o->status);
}

/* Reads the mailboxes and subscriptions and sends the matching lines. */
static enum store_err
ext_list(struct imap_session *s, const struct imap_list_opts *o,
    char **pats, struct buf *out)
{
	struct store_mailbox *mbs = NULL;
	char **subs = NULL;
	size_t nmb = 0, nsubs = 0, i, k;
	struct xlist l = { NULL, 0, 0 };
	enum store_err e;

	if ((e = store_mailbox_list(s->base.d->store, s->user.id, &mbs, &nmb)) !=
	    STORE_OK || (e = store_subscription_list(s->base.d->store, s->user.id,
	    &subs, &nsubs)) != STORE_OK)
		goto out;
	xcollect(&l, mbs, nmb, subs, nsubs);
	for (i = 0; i < l.n; i++)
		l.v[i].selected = xselected(&l.v[i], o->sel);
	if (o->sel & IMAP_LSEL_RECURSIVEMATCH)
		mark_child_selected(&l);
	for (i = 0; i < l.n; i++) {
		bool match = false;

		for (k = 0; k < o->npats && !match; k++)
			match = imap_list_match(pats[k], l.v[i].name);
		if (!match || (!l.v[i].selected && !l.v[i].child_selected))
			continue;
		put_xentry(out, &l.v[i], o);
		if (out->len > 65536)
			imap_send_buf(s, out);
	}
out:
	for (i = 0; i < l.n; i++)
		free(l.v[i].name);
	free(l.v);
	for (i = 0; i < nsubs; i++)
		free(subs[i]);
	free(subs);
	free(mbs);
	return e;
}

/* LIST with RFC 5258 syntax (selection options, several patterns,
   RETURN options). */
static enum cmd_result
list_ext(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct imap_list_opts o;
	const char *err;
	enum store_err e;
	struct buf out;
	bool empty_pat;
	char **pats;

	if (imap_list_opts_parse(args, end, &o, &err) < 0) {
		imap_cmd_reply(s, IMAP_BAD, "%s", err);
		return CMD_DONE;
	}
	if ((pats = ext_patterns(&o, &empty_pat)) == NULL) {
		imap_cmd_reply(s, IMAP_BAD, "Invalid pattern");
		return CMD_DONE;
	}
	buf_init(&out);
	if (empty_pat && o.npats == 1) {
		/* LIST "" "": the hierarchy delimiter (RFC 3501 §6.3.8) */
		buf_puts(&out, "* LIST (\\Noselect) \"/\" \"\"\r\n");
	} else if ((e = ext_list(s, &o, pats, &out)) != STORE_OK) {
		buf_free(&out);
		free_patterns(pats, o.npats);
		imap_reply_store_err(s, e, "LIST");
		return CMD_DONE;
	}
	imap_send_buf(s, &out);
	buf_free(&out);
	free_patterns(pats, o.npats);
	imap_cmd_reply(s, IMAP_OK, "LIST completed");
	return CMD_DONE;
}

enum cmd_result
imap_cmd_list(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	if (list_is_extended(args, end))
		return list_ext(s, args, end);
	return list_cmd(s, args, false);
}

enum cmd_result
imap_cmd_lsub(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)end;
	return list_cmd(s, args, true);
}
