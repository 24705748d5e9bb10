/* imap_list_ext: LIST-EXTENDED argument parsing and pattern matching
   (RFC 5258). Pure: no I/O and no store access; cmd_list.c does the store
   reads and the replies. Matching never backtracks exponentially. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#include "imap_list_ext.h"

unsigned
imap_list_status_item(const struct imap_arg *a)
{
	static const struct { const char *name; unsigned bit; } items[] = {
		{ "MESSAGES", IMAP_LSTAT_MESSAGES },
		{ "RECENT", IMAP_LSTAT_RECENT },
		{ "UIDNEXT", IMAP_LSTAT_UIDNEXT },
		{ "UIDVALIDITY", IMAP_LSTAT_UIDVALIDITY },
		{ "UNSEEN", IMAP_LSTAT_UNSEEN }, { "SIZE", IMAP_LSTAT_SIZE },
		{ "HIGHESTMODSEQ", IMAP_LSTAT_HIGHESTMODSEQ },
	};
	size_t i;

	for (i = 0; i < sizeof(items) / sizeof(items[0]); i++)
		if (imap_arg_is_atom(a, items[i].name))
			return items[i].bit;
	return 0;
}

static int
parse_select(const struct imap_arg *l, struct imap_list_opts *o)
{
	const struct imap_arg *a;

	for (a = l + 1; a < imap_arg_list_end(l); a = imap_arg_next(a)) {
		if (imap_arg_is_atom(a, "SUBSCRIBED"))
			o->sel |= IMAP_LSEL_SUBSCRIBED;
		else if (imap_arg_is_atom(a, "REMOTE"))
			o->sel |= IMAP_LSEL_REMOTE;
		else if (imap_arg_is_atom(a, "RECURSIVEMATCH"))
			o->sel |= IMAP_LSEL_RECURSIVEMATCH;
		else if (imap_arg_is_atom(a, "SPECIAL-USE"))
			o->sel |= IMAP_LSEL_SPECIAL_USE;
		else
			return -1;
	}
	return 0;
}

static int
parse_return(const struct imap_arg *l, struct imap_list_opts *o)
{
	const struct imap_arg *a, *st;

	for (a = l + 1; a < imap_arg_list_end(l); a = imap_arg_next(a)) {
		if (imap_arg_is_atom(a, "SUBSCRIBED")) {
			o->ret |= IMAP_LRET_SUBSCRIBED;
		} else if (imap_arg_is_atom(a, "CHILDREN")) {
			o->ret |= IMAP_LRET_CHILDREN;
		} else if (imap_arg_is_atom(a, "SPECIAL-USE")) {
			o->ret |= IMAP_LRET_SPECIAL_USE;
		} else if (imap_arg_is_atom(a, "STATUS")) {
			a = imap_arg_next(a);
			if (a >= imap_arg_list_end(l) ||
			    a->type != IMAP_ARG_LIST || a->span == 0)
				return -1;
			for (st = a + 1; st < imap_arg_list_end(a);
			    st = imap_arg_next(st)) {
				unsigned bit = imap_list_status_item(st);

				if (bit == 0)
					return -1;
				o->status |= bit;
			}
			o->ret |= IMAP_LRET_STATUS;
		} else {
			return -1;
		}
	}
	return 0;
}

int
imap_list_opts_parse(const struct imap_arg *args, const struct imap_arg *end,
    struct imap_list_opts *o, const char **error_r)
{
	const struct imap_arg *a = args, *p;

	memset(o, 0, sizeof(*o));
	*error_r = "Usage: LIST [(options)] reference pattern"
	    " [RETURN (options)]";
	if (a < end && a->type == IMAP_ARG_LIST) {
		if (parse_select(a, o) < 0) {
			*error_r = "Unknown LIST selection option";
			return -1;
		}
		a = imap_arg_next(a);
	}
	if (a >= end || !imap_arg_is_string(a))
		return -1;
	o->ref = a;
	a = imap_arg_next(a);
	if (a >= end)
		return -1;
	if (a->type == IMAP_ARG_LIST) {
		if (a->span == 0)
			return -1;
		for (p = a + 1; p < imap_arg_list_end(a);
		    p = imap_arg_next(p)) {
			if (!imap_arg_is_string(p) ||
			    o->npats == IMAP_LIST_PATTERNS_MAX)
				return -1;
			o->pats[o->npats++] = p;
		}
	} else if (imap_arg_is_string(a)) {
		o->pats[o->npats++] = a;
	} else {
		return -1;
	}
	a = imap_arg_next(a);
	if (a < end) {
		if (!imap_arg_is_atom(a, "RETURN") ||
		    (p = imap_arg_next(a)) >= end || p->type != IMAP_ARG_LIST ||
		    imap_arg_next(p) != end)
			return -1;
		if (parse_return(p, o) < 0) {
			*error_r = "Unknown LIST return option";
			return -1;
		}
	}
	if ((o->sel & IMAP_LSEL_RECURSIVEMATCH) &&
	    !(o->sel & (IMAP_LSEL_SUBSCRIBED | IMAP_LSEL_SPECIAL_USE))) {
		*error_r = "RECURSIVEMATCH needs another selection option";
		return -1;
	}
	if (o->sel & IMAP_LSEL_SUBSCRIBED)
		o->ret |= IMAP_LRET_SUBSCRIBED;
	if (o->sel & IMAP_LSEL_SPECIAL_USE)
		o->ret |= IMAP_LRET_SPECIAL_USE;
	return 0;
}

/* Dynamic programming over (pattern, name): no exponential backtracking
   on "*%*%*" patterns. */
bool
imap_list_match(const char *pat, const char *name)
{
	size_t pl = strlen(pat), nl = strlen(name), i, j;
	unsigned char *row, *prev, *t;
	bool r;

	prev = xcalloc(nl + 1, 1);
	row = xcalloc(nl + 1, 1);
	prev[0] = 1;
	for (i = 1; i <= pl; i++) {
		char c = pat[i - 1];

		row[0] = (c == '*' || c == '%') && prev[0];
		for (j = 1; j <= nl; j++) {
			if (c == '*')
				row[j] = prev[j] || row[j - 1];
			else if (c == '%')
				row[j] = prev[j] ||
				    (row[j - 1] && name[j - 1] != '/');
			else
				row[j] = prev[j - 1] && c == name[j - 1];
		}
		t = prev;
		prev = row;
		row = t;
	}
	r = prev[nl] != 0;
	free(prev);
	free(row);
	return r;
}
