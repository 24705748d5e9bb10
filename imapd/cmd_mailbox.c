/* cmd_mailbox: mailbox names (modified UTF-7 on the wire, UTF-8 in the
   store, '/' as delimiter, INBOX case-insensitive) and the commands on
   them: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS.
   Writes run on a worker; LIST and STATUS read the index on the loop. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_ext2.h"
#include "imap_utf7.h"

#define PATTERN_MAX 1024

void
imap_mailbox_normalize_inbox(char *name)
{
	if (strncasecmp(name, "INBOX", 5) == 0 &&
	    (name[5] == '\0' || name[5] == '/'))
		memcpy(name, "INBOX", 5);
}

/* Refuses names that could mean something else than one mailbox: empty
   components, "." and "..", control characters and wildcards. */
static bool
name_is_valid(const char *n)
{
	const char *p = n, *slash;

	if (*n == '\0' || *n == '/' || strlen(n) > STORE_MAILBOX_NAME_MAX)
		return false;
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '*' ||
		    *p == '%')
			return false;
	for (p = n; *p; p = slash + 1) {
		size_t len;

		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 0 || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (slash == NULL)
			break;
	}
	return true;
}

char *
imap_mailbox_arg(struct imap_session *s, const struct imap_arg *a)
{
	struct buf b;
	char *name;

	if (!imap_arg_is_string(a) || strlen(a->str) != a->len) {
		imap_reply_tagged(s, "BAD", "Invalid mailbox name");
		return NULL;
	}
	buf_init(&b);
	if (imap_utf7_to_utf8(a->str, a->len, &b) < 0) {
		buf_free(&b);
		imap_reply_tagged(s, "NO", "[CANNOT] Invalid modified UTF-7 name");
		return NULL;
	}
	name = b.data ? buf_steal(&b) : xstrdup("");
	while (name[0] && name[strlen(name) - 1] == '/')
		name[strlen(name) - 1] = '\0';
	imap_mailbox_normalize_inbox(name);
	if (!name_is_valid(name)) {
		free(name);
		imap_reply_tagged(s, "NO", "[CANNOT] Invalid mailbox name");
		return NULL;
	}
	return name;
}

/* ---- writes ---- */

enum mbox_op { OP_CREATE, OP_DELETE, OP_RENAME, OP_SUBSCRIBE,
	OP_UNSUBSCRIBE };

struct mbox_job {
	struct store *st;
	enum mbox_op op;
	uint32_t user_id;
	char *name, *name2;
	enum store_err err;
	const char *what;
};

/* Creates the missing parents of name ("a/b/c": "a", "a/b"). */
static enum store_err
create_parents(struct store *st, uint32_t user_id, const char *name)
{
	char *copy = xstrdup(name), *p;
	struct store_mailbox mb;
	enum store_err e = STORE_OK;

	for (p = strchr(copy, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (store_mailbox_get(st, user_id, copy, &mb) == STORE_ENOTFOUND) {
			e = store_mailbox_create(st, user_id, copy, 0, &mb);
			if (e == STORE_EEXISTS)
				e = STORE_OK;
		}
		*p = '/';
		if (e != STORE_OK)
			break;
	}
	free(copy);
	return e;
}

static void
mbox_work(void *arg)
{
	struct mbox_job *j = arg;
	struct store_mailbox mb;

	switch (j->op) {
	case OP_CREATE:
		if ((j->err = create_parents(j->st, j->user_id, j->name)) ==
		    STORE_OK)
			j->err = store_mailbox_create(j->st, j->user_id, j->name, 0,
			    &mb);
		break;
	case OP_DELETE:
		j->err = store_mailbox_delete(j->st, j->user_id, j->name);
		break;
	case OP_RENAME:
		if (store_mailbox_get(j->st, j->user_id, j->name2, &mb) ==
		    STORE_OK) {
			j->err = STORE_EEXISTS;
			break;
		}
		if ((j->err = create_parents(j->st, j->user_id, j->name2)) ==
		    STORE_OK)
			j->err = store_mailbox_rename(j->st, j->user_id, j->name,
			    j->name2);
		break;
	case OP_SUBSCRIBE:
	case OP_UNSUBSCRIBE:
		j->err = store_subscription_set(j->st, j->user_id, j->name,
		    j->op == OP_SUBSCRIBE);
		break;
	}
}

static void
mbox_done(struct imap_session *s, void *arg)
{
	struct mbox_job *j = arg;

	if (j->err == STORE_OK) {
		imap_reply_tagged(s, "OK", "%s completed", j->what);
	} else if (j->err == STORE_ENOTFOUND) {
		imap_reply_tagged(s, "NO", "[NONEXISTENT] No such mailbox");
	} else if (j->err == STORE_EPERM && j->op == OP_DELETE) {
		imap_reply_tagged(s, "NO", "[CANNOT] INBOX cannot be deleted");
	} else {
		imap_reply_store_err(s, j->err, j->what);
	}
	free(j->name);
	free(j->name2);
	free(j);
	imap_cmd_finish(s);
}

static enum cmd_result
mbox_cmd(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end, enum mbox_op op, const char *what)
{
	size_t want = op == OP_RENAME ? 2 : 1;
	struct mbox_job *j;
	char *name, *name2 = NULL;

	if (imap_args_count(args, end) != want) {
		imap_reply_tagged(s, "BAD", "Wrong number of arguments");
		return CMD_DONE;
	}
	if ((name = imap_mailbox_arg(s, args)) == NULL)
		return CMD_DONE;
	if (op == OP_RENAME &&
	    (name2 = imap_mailbox_arg(s, imap_arg_next(args))) == NULL) {
		free(name);
		return CMD_DONE;
	}
	if ((op == OP_CREATE && strcmp(name, "INBOX") == 0) ||
	    (op == OP_RENAME && strcmp(name2, "INBOX") == 0)) {
		imap_reply_tagged(s, "NO", "[ALREADYEXISTS] INBOX exists");
		goto refuse;
	}
	if (op == OP_DELETE && strcmp(name, "INBOX") == 0) {
		imap_reply_tagged(s, "NO", "[CANNOT] INBOX cannot be deleted");
		goto refuse;
	}
	if (op == OP_RENAME && strncmp(name2, name, strlen(name)) == 0 &&
	    name2[strlen(name)] == '/') {
		imap_reply_tagged(s, "NO", "[CANNOT] Cannot rename into itself");
		goto refuse;
	}
	j = xcalloc(1, sizeof(*j));
	j->st = s->d->store;
	j->op = op;
	j->user_id = s->user.id;
	j->name = name;
	j->name2 = name2;
	j->what = what;
	imap_session_submit(s, mbox_work, mbox_done, j);
	return CMD_SUSPEND;
refuse:
	free(name);
	free(name2);
	return CMD_DONE;
}

enum cmd_result
imap_cmd_create(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	/* CREATE name (USE (...)): CREATE-SPECIAL-USE in cmd_list_ext.c */
	if (imap_args_count(args, end) == 2)
		return imap_cmd_create_ext(s, args, end);
	return mbox_cmd(s, args, end, OP_CREATE, "CREATE");
}

enum cmd_result
imap_cmd_delete(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	return mbox_cmd(s, args, end, OP_DELETE, "DELETE");
}

enum cmd_result
imap_cmd_rename(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	return mbox_cmd(s, args, end, OP_RENAME, "RENAME");
}

enum cmd_result
imap_cmd_subscribe(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	return mbox_cmd(s, args, end, OP_SUBSCRIBE, "SUBSCRIBE");
}

enum cmd_result
imap_cmd_unsubscribe(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	return mbox_cmd(s, args, end, OP_UNSUBSCRIBE, "UNSUBSCRIBE");
}

/* ---- LIST / LSUB ---- */

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

static bool pattern_match(const char *pat, const char *name);

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
	static const struct { uint32_t bit; const char *name; } su[] = {
		{ STORE_SU_ALL, "\\All" }, { STORE_SU_ARCHIVE, "\\Archive" },
		{ STORE_SU_DRAFTS, "\\Drafts" }, { STORE_SU_FLAGGED, "\\Flagged" },
		{ STORE_SU_JUNK, "\\Junk" }, { STORE_SU_SENT, "\\Sent" },
		{ STORE_SU_TRASH, "\\Trash" },
	};
	size_t i, start = b->len;

	buf_putc(b, '(');
	if (!e->exists)
		buf_puts(b, "\\Noselect ");
	if (!lsub)
		buf_puts(b, e->children ? "\\HasChildren " : "\\HasNoChildren ");
	for (i = 0; i < ARRAY_SIZE(su); i++)
		if (e->special_use & su[i].bit)
			buf_printf(b, "%s ", su[i].name);
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

static enum cmd_result
list_cmd(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end, bool lsub)
{
	const struct imap_arg *ref = args, *pat;
	struct buf pattern, out;
	struct lentry *v = NULL;
	size_t n = 0, i, nn = 0;
	char **names = NULL;
	bool *exists = NULL;
	uint32_t *su = NULL;
	enum store_err e;
	const char *verb = lsub ? "LSUB" : "LIST";

	if (imap_args_count(args, end) != 2 || !imap_arg_is_string(ref) ||
	    !imap_arg_is_string(pat = imap_arg_next(ref)) ||
	    ref->len + pat->len > PATTERN_MAX) {
		imap_reply_tagged(s, "BAD", "Usage: %s reference pattern", verb);
		return CMD_DONE;
	}
	if (!lsub && pat->len == 0) {
		imap_reply_untagged(s, "LIST (\\Noselect) \"/\" \"\"");
		imap_reply_tagged(s, "OK", "LIST completed");
		return CMD_DONE;
	}
	buf_init(&pattern);
	if (imap_utf7_to_utf8(ref->str, ref->len, &pattern) < 0 ||
	    imap_utf7_to_utf8(pat->str, pat->len, &pattern) < 0) {
		buf_free(&pattern);
		imap_reply_tagged(s, "BAD", "Invalid modified UTF-7 pattern");
		return CMD_DONE;
	}
	buf_putc(&pattern, '\0');
	imap_mailbox_normalize_inbox(pattern.data);
	collapse_wildcards(pattern.data);
	if (lsub) {
		struct store_mailbox mb;

		e = store_subscription_list(s->d->store, s->user.id, &names, &nn);
		if (e != STORE_OK)
			goto fail;
		exists = xcalloc(nn + 1, sizeof(*exists));
		for (i = 0; i < nn; i++)
			exists[i] = store_mailbox_get(s->d->store, s->user.id,
			    names[i], &mb) == STORE_OK;
		collect(&v, &n, names, exists, NULL, nn);
		for (i = 0; i < nn; i++)
			free(names[i]);
		free(names);
	} else {
		struct store_mailbox *mbs = NULL;

		if ((e = store_mailbox_list(s->d->store, s->user.id, &mbs, &nn)) !=
		    STORE_OK)
			goto fail;
		names = xcalloc(nn + 1, sizeof(*names));
		exists = xcalloc(nn + 1, sizeof(*exists));
		su = xcalloc(nn + 1, sizeof(*su));
		for (i = 0; i < nn; i++) {
			names[i] = mbs[i].name;
			exists[i] = true;
			su[i] = mbs[i].special_use;
		}
		collect(&v, &n, names, exists, su, nn);
		free(names);
		free(mbs);
	}
	buf_init(&out);
	for (i = 0; i < n; i++) {
		if (pattern_match(pattern.data, v[i].name)) {
			/* LSUB lists parents only as \Noselect stand-ins for a
			   subscribed child that '%' hides. */
			if (lsub && !v[i].direct &&
			    descendant_matches(v, n, i, pattern.data)) {
				free(v[i].name);
				continue;
			}
			buf_printf(&out, "* %s ", verb);
			put_attrs(&out, &v[i], lsub);
			buf_puts(&out, " \"/\" ");
			imap_buf_mailbox(&out, v[i].name);
			buf_puts(&out, "\r\n");
		}
		free(v[i].name);
	}
	free(v);
	free(exists);
	free(su);
	imap_send_buf(s, &out);
	buf_free(&out);
	buf_free(&pattern);
	imap_reply_tagged(s, "OK", "%s completed", verb);
	return CMD_DONE;
fail:
	buf_free(&pattern);
	imap_reply_store_err(s, e, verb);
	return CMD_DONE;
}

enum cmd_result
imap_cmd_list(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	/* selection/return options, several patterns: RFC 5258 */
	if (imap_list_is_extended(args, end))
		return imap_cmd_list_ext(s, args, end);
	return list_cmd(s, args, end, false);
}

enum cmd_result
imap_cmd_lsub(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	return list_cmd(s, args, end, true);
}

/* ---- STATUS ---- */

enum cmd_result
imap_cmd_status(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	const struct imap_arg *list, *a;
	struct store_mailbox mb;
	enum store_err e;
	struct buf b;
	char *name;
	bool first = true;

	if (imap_args_count(args, end) != 2 ||
	    (list = imap_arg_next(args))->type != IMAP_ARG_LIST ||
	    list->span == 0) {
		imap_reply_tagged(s, "BAD", "Usage: STATUS mailbox (items)");
		return CMD_DONE;
	}
	for (a = list + 1; a < imap_arg_list_end(list); a = imap_arg_next(a)) {
		if (a->type != IMAP_ARG_ATOM ||
		    (strcasecmp(a->str, "MESSAGES") && strcasecmp(a->str, "RECENT") &&
		    strcasecmp(a->str, "UIDNEXT") &&
		    strcasecmp(a->str, "UIDVALIDITY") &&
		    strcasecmp(a->str, "UNSEEN") &&
		    strcasecmp(a->str, "SIZE") &&
		    strcasecmp(a->str, "HIGHESTMODSEQ"))) {
			imap_reply_tagged(s, "BAD", "Unknown STATUS item");
			return CMD_DONE;
		}
	}
	if ((name = imap_mailbox_arg(s, args)) == NULL)
		return CMD_DONE;
	e = store_mailbox_get(s->d->store, s->user.id, name, &mb);
	if (e != STORE_OK) {
		free(name);
		imap_reply_store_err(s, e, "STATUS");
		return CMD_DONE;
	}
	buf_init(&b);
	buf_puts(&b, "* STATUS ");
	imap_buf_mailbox(&b, name);
	buf_puts(&b, " (");
	for (a = list + 1; a < imap_arg_list_end(list); a = imap_arg_next(a)) {
		if (!first)
			buf_putc(&b, ' ');
		first = false;
		if (strcasecmp(a->str, "MESSAGES") == 0)
			buf_printf(&b, "MESSAGES %u", mb.messages);
		else if (strcasecmp(a->str, "RECENT") == 0)
			buf_printf(&b, "RECENT %u", mb.recent);
		else if (strcasecmp(a->str, "UIDNEXT") == 0)
			buf_printf(&b, "UIDNEXT %u", mb.uidnext);
		else if (strcasecmp(a->str, "UIDVALIDITY") == 0)
			buf_printf(&b, "UIDVALIDITY %u", mb.uidvalidity);
		else if (strcasecmp(a->str, "SIZE") == 0)  /* RFC 8438 */
			buf_printf(&b, "SIZE %llu", (unsigned long long)mb.size);
		else if (strcasecmp(a->str, "HIGHESTMODSEQ") == 0) {
			/* RFC 7162 §3.1: a CONDSTORE enabling command */
			buf_printf(&b, "HIGHESTMODSEQ %llu",
			    (unsigned long long)mb.highestmodseq);
			imap_condstore_enable(s);
		}
		else
			buf_printf(&b, "UNSEEN %u", mb.unseen);
	}
	buf_puts(&b, ")\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	free(name);
	imap_reply_tagged(s, "OK", "STATUS completed");
	return CMD_DONE;
}
