/* imap_commands_util: the argument helpers of the command files (sequence
   sets resolved against the view, flag lists, mailbox names) and the one
   mapping of store errors to tagged replies. Replies go through
   imap_cmd_reply; nothing here touches the store. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_commands_util.h"
#include "imap_features.h"
#include "imap_seqset.h"
#include "imap_utf7.h"
#include "imap_view.h"

/* SEARCHRES "$": the saved UIDs still in the view (RFC 5182 §2.1:
   expunged ones just drop out). */
static void
saved_indexes(struct imap_session *s, size_t **idx_r, size_t *n_r)
{
	const struct imap_view *v = s->sel;
	size_t *idx, n = 0, i;

	idx = xmalloc((s->searchres.n ? s->searchres.n : 1) * sizeof(*idx));
	for (i = 0; i < s->searchres.n; i++) {
		uint32_t msn = imap_view_msn(v, s->searchres.uids[i]);

		if (msn != 0)
			idx[n++] = msn - 1;
	}
	*idx_r = idx;
	*n_r = n;
}

/* First view index whose uid is >= uid. */
static size_t
first_index_from_uid(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
imap_seqset_arg(struct imap_session *s, const struct imap_arg *a, bool uid,
    size_t **idx_r, size_t *n_r)
{
	struct imap_view *v = s->sel;
	struct imap_seqset set;
	const char *err;
	size_t *idx = NULL, n = 0, cap = 0, r;

	if (imap_arg_is_saved(a)) {
		saved_indexes(s, idx_r, n_r);
		return 0;
	}
	if (a->type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(a->str, a->len, IMAP_SEQSET_RANGES_MAX, &set,
	    &err) < 0) {
		imap_cmd_reply(s, IMAP_BAD, "Invalid sequence set");
		return -1;
	}
	imap_seqset_resolve(&set, uid ? (v->n ? v->msgs[v->n - 1].uid : 0) :
	    (uint32_t)v->n);
	if (!uid && imap_seqset_max(&set) > v->n) {
		imap_seqset_free(&set);
		imap_cmd_reply(s, IMAP_BAD, "Invalid message sequence number");
		return -1;
	}
	for (r = 0; r < set.n; r++) {
		size_t i = uid ? first_index_from_uid(v, set.r[r].lo) :
		    set.r[r].lo - 1;

		for (; i < v->n; i++) {
			if (uid ? v->msgs[i].uid > set.r[r].hi : i + 1 > set.r[r].hi)
				break;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				idx = xrealloc(idx, cap * sizeof(*idx));
			}
			idx[n++] = i;
		}
	}
	imap_seqset_free(&set);
	*idx_r = idx;
	*n_r = n;
	return 0;
}

static const struct { const char *name; uint32_t bit; } sysflags[] = {
	{ "\\Seen", STORE_F_SEEN }, { "\\Answered", STORE_F_ANSWERED },
	{ "\\Flagged", STORE_F_FLAGGED }, { "\\Deleted", STORE_F_DELETED },
	{ "\\Draft", STORE_F_DRAFT },
};

static bool
keyword_ok(const char *k, size_t len)
{
	size_t i;

	if (len == 0 || len > STORE_KEYWORD_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)k[i];

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c))
			return false;
	}
	return true;
}

/* Parses flags from [a, end) (atoms); keywords as owned strings. */
int
imap_flags_parse(const struct imap_arg *a, const struct imap_arg *end,
    uint32_t *flags_r, char ***kw_r, size_t *nkw_r)
{
	size_t i;

	*flags_r = 0;
	*kw_r = NULL;
	*nkw_r = 0;
	for (; a < end; a = imap_arg_next(a)) {
		if (a->type != IMAP_ARG_ATOM)
			goto bad;
		if (a->str[0] == '\\') {
			for (i = 0; i < ARRAY_SIZE(sysflags); i++)
				if (strcasecmp(a->str, sysflags[i].name) == 0)
					break;
			if (i < ARRAY_SIZE(sysflags))
				*flags_r |= sysflags[i].bit;
			else if (strcasecmp(a->str, "\\Recent") != 0)
				goto bad;   /* \Recent is ignored, others refused */
			continue;
		}
		if (!keyword_ok(a->str, a->len) || *nkw_r >= 64)
			goto bad;
		*kw_r = xrealloc(*kw_r, (*nkw_r + 1) * sizeof(**kw_r));
		(*kw_r)[(*nkw_r)++] = xstrdup(a->str);
	}
	return 0;
bad:
	for (i = 0; i < *nkw_r; i++)
		free((*kw_r)[i]);
	free(*kw_r);
	*kw_r = NULL;
	*nkw_r = 0;
	return -1;
}

const struct imap_special_use imap_special_uses[IMAP_SPECIAL_USE_N] = {
	{ STORE_SU_ALL, "\\All" }, { STORE_SU_ARCHIVE, "\\Archive" },
	{ STORE_SU_DRAFTS, "\\Drafts" }, { STORE_SU_FLAGGED, "\\Flagged" },
	{ STORE_SU_JUNK, "\\Junk" }, { STORE_SU_SENT, "\\Sent" },
	{ STORE_SU_TRASH, "\\Trash" },
};

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
		imap_cmd_reply(s, IMAP_BAD, "Invalid mailbox name");
		return NULL;
	}
	buf_init(&b);
	if (imap_utf7_to_utf8(a->str, a->len, &b) < 0) {
		buf_free(&b);
		imap_cmd_reply(s, IMAP_NO, "[CANNOT] Invalid modified UTF-7 name");
		return NULL;
	}
	name = b.data ? buf_steal(&b) : xstrdup("");
	while (name[0] && name[strlen(name) - 1] == '/')
		name[strlen(name) - 1] = '\0';
	imap_mailbox_normalize_inbox(name);
	if (!name_is_valid(name)) {
		free(name);
		imap_cmd_reply(s, IMAP_NO, "[CANNOT] Invalid mailbox name");
		return NULL;
	}
	return name;
}

void
imap_reply_store_err(struct imap_session *s, enum store_err e,
    const char *what)
{
	switch (e) {
	case STORE_OK:
		imap_cmd_reply(s, IMAP_OK, "%s", what);
		break;
	case STORE_ENOTFOUND:
		imap_cmd_reply(s, IMAP_NO, "[NONEXISTENT] %s: no such mailbox",
		    what);
		break;
	case STORE_EEXISTS:
		imap_cmd_reply(s, IMAP_NO, "[ALREADYEXISTS] %s: already exists",
		    what);
		break;
	case STORE_EPERM:
		imap_cmd_reply(s, IMAP_NO, "[CANNOT] %s: not allowed", what);
		break;
	case STORE_EQUOTA:
		imap_cmd_reply(s, IMAP_NO, "[OVERQUOTA] %s: quota exceeded",
		    what);
		break;
	case STORE_ELIMIT:
		imap_cmd_reply(s, IMAP_NO, "[LIMIT] %s: limit reached", what);
		break;
	case STORE_ETEMP:
		imap_cmd_reply(s, IMAP_NO, "[UNAVAILABLE] %s: try again later",
		    what);
		break;
	default:
		log_warnx("%s store error=%s detail=%s", conn_id(s->base.c),
		    store_err_str(e), store_last_error());
		imap_cmd_reply(s, IMAP_NO, "[SERVERBUG] %s: internal error",
		    what);
		break;
	}
}

