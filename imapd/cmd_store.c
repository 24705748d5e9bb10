/* cmd_store: STORE and UID STORE (FLAGS, +FLAGS, -FLAGS, .SILENT; system
   flags and keywords) through the store on a worker, then FETCH FLAGS
   replies from the result. Also the flag-list parser APPEND shares. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_commands.h"
#include "imap_ext2.h"
#include "imap_modseq.h"
#include "imap_seqset.h"

struct store_job {
	struct store *st;
	uint32_t mbox_id;
	enum store_flag_op op;
	uint32_t flags;
	char **kw;
	size_t nkw;
	struct store_flag_change *ch;
	size_t n;
	bool silent;
	enum store_err err;
	struct store_mailbox mb;    /* keyword names after the change */
	bool have_mb;
	bool conditional;           /* UNCHANGEDSINCE given (RFC 7162) */
	uint64_t unchangedsince;
	uint32_t *modified;         /* MSNs or UIDs that failed the test */
	size_t nmodified;
};

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

static void
job_free(struct store_job *j)
{
	size_t i;

	for (i = 0; i < j->nkw; i++)
		free(j->kw[i]);
	free(j->kw);
	free(j->ch);
	free(j->modified);
	free(j);
}

static void
store_work(void *arg)
{
	struct store_job *j = arg;

	size_t i;

	/* UNCHANGEDSINCE 0 fails for every message (each has a modseq);
	   the store takes 0 as "no condition", so it is answered here. */
	if (j->conditional && j->unchangedsince == 0) {
		for (i = 0; i < j->n; i++) {
			j->ch[i].exists = true;
			j->ch[i].conflict = true;
		}
		j->err = STORE_OK;
		return;
	}
	j->err = store_msg_set_flags(j->st, j->mbox_id, j->op, j->flags,
	    (const char *const *)j->kw, j->nkw, j->unchangedsince, j->ch, j->n);
	if (j->err == STORE_OK && j->nkw > 0)
		j->have_mb = store_mailbox_get_by_id(j->st, j->mbox_id, &j->mb) ==
		    STORE_OK;
}

static void
store_done(struct imap_session *s, void *arg)
{
	struct store_job *j = arg;
	struct imap_view *v = s->sel;
	struct buf b;
	size_t i;

	if (j->err != STORE_OK) {
		if (j->err == STORE_ELIMIT)
			imap_reply_tagged(s, "NO", "[LIMIT] Too many keywords");
		else
			imap_reply_store_err(s, j->err, "STORE");
		goto out;
	}
	buf_init(&b);
	if (j->have_mb && j->mb.nkeywords != v->mb.nkeywords) {
		v->mb.nkeywords = j->mb.nkeywords;
		memcpy(v->mb.keywords, j->mb.keywords, sizeof(v->mb.keywords));
		imap_buf_flags_update(&b, v);
	}
	for (i = 0; i < j->n; i++) {
		uint32_t msn;
		struct store_msg *m;

		if (!j->ch[i].exists ||
		    (msn = imap_view_msn(v, j->ch[i].uid)) == 0)
			continue;
		m = &v->msgs[msn - 1];
		if (j->ch[i].conflict) {
			/* at most one entry per message: sized once, not
			   grown per conflict (quadratic on a large set) */
			if (j->modified == NULL)
				j->modified = xmalloc(j->n *
				    sizeof(*j->modified));
			j->modified[j->nmodified++] = s->uid_cmd ? m->uid : msn;
			continue;
		}
		if (j->ch[i].modseq != 0) {
			m->flags = (m->flags & ~IMAP_VF_SYSTEM) |
			    (j->ch[i].flags & IMAP_VF_SYSTEM);
			m->keywords = j->ch[i].keywords;
			m->modseq = j->ch[i].modseq;
		}
		if (m->flags & IMAP_VF_EXPUNGED)
			continue;
		/* .SILENT still reports the new MODSEQ of a changed message
		   to a CONDSTORE client (RFC 7162 §3.1.3). */
		if (j->silent) {
			if (!j->ch[i].changed || !imap_condstore_on(s))
				continue;
			buf_printf(&b, "* %u FETCH (UID %u ", msn, m->uid);
			buf_printf(&b, "MODSEQ (%llu))\r\n",
			    (unsigned long long)m->modseq);
			continue;
		}
		buf_printf(&b, "* %u FETCH (", msn);
		/* CONDSTORE: UID and MODSEQ in every such FETCH (RFC 7162
		   §3.1) */
		if (s->uid_cmd || imap_condstore_on(s))
			buf_printf(&b, "UID %u ", m->uid);
		buf_puts(&b, "FLAGS ");
		imap_buf_flags(&b, v, m->flags, m->keywords);
		imap_buf_modseq(&b, s, m->modseq);
		buf_puts(&b, ")\r\n");
		if (b.len > 65536)
			imap_send_buf(s, &b);
	}
	imap_send_buf(s, &b);
	if (j->nmodified > 0) {
		/* ch[] is in view order, so the list is already ascending */
		imap_seqset_format(j->modified, j->nmodified, &b);
		if (b.len < 900) {
			imap_reply_tagged(s, "OK", "[MODIFIED %s] Conditional"
			    " STORE failed", b.data);
		} else {
			/* too long for imap_reply_tagged's bounded text: the
			   same sync it does (STORE: expunges for UID STORE
			   only), then the line as is */
			imap_view_sync(s, s->uid_cmd);
			s->bad_count = 0;
			conn_printf(s->c, "%s OK [MODIFIED ", s->tag);
			conn_write(s->c, b.data, b.len);
			conn_printf(s->c, "] Conditional STORE failed\r\n");
		}
	} else {
		imap_reply_tagged(s, "OK", "%sSTORE completed",
		    s->uid_cmd ? "UID " : "");
	}
	buf_free(&b);
out:
	job_free(j);
	imap_cmd_finish(s);
}

enum cmd_result
imap_cmd_store(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	const struct imap_arg *item, *fl;
	struct store_job *j;
	const char *w;
	size_t *idx = NULL, n = 0, i;

	const char *err;
	uint64_t since = 0;
	bool conditional = false;

	if (imap_args_count(args, end) < 3) {
		imap_reply_tagged(s, "BAD", "Usage: STORE set item flags");
		return CMD_DONE;
	}
	item = imap_arg_next(args);
	if (item->type == IMAP_ARG_LIST) {
		/* STORE set (UNCHANGEDSINCE n) item flags (RFC 7162 §3.1.3) */
		if (imap_store_mods_parse(item, &since, &err) < 0) {
			imap_reply_tagged(s, "BAD", "%s", err);
			return CMD_DONE;
		}
		conditional = true;
		item = imap_arg_next(item);
		if (imap_args_count(item, end) < 2) {
			imap_reply_tagged(s, "BAD", "Usage: STORE set item flags");
			return CMD_DONE;
		}
	}
	if (item->type != IMAP_ARG_ATOM) {
		imap_reply_tagged(s, "BAD", "Usage: STORE set item flags");
		return CMD_DONE;
	}
	j = xcalloc(1, sizeof(*j));
	j->conditional = conditional;
	j->unchangedsince = since;
	if (conditional)
		imap_condstore_enable(s);
	w = item->str;
	if (*w == '+') {
		j->op = STORE_FLAGS_ADD;
		w++;
	} else if (*w == '-') {
		j->op = STORE_FLAGS_REMOVE;
		w++;
	} else {
		j->op = STORE_FLAGS_SET;
	}
	if (strcasecmp(w, "FLAGS.SILENT") == 0)
		j->silent = true;
	else if (strcasecmp(w, "FLAGS") != 0)
		goto bad;
	fl = imap_arg_next(item);
	if (fl->type == IMAP_ARG_LIST) {
		if (imap_arg_next(fl) != end ||
		    imap_flags_parse(fl + 1, imap_arg_list_end(fl), &j->flags,
		    &j->kw, &j->nkw) < 0)
			goto bad;
	} else if (imap_flags_parse(fl, end, &j->flags, &j->kw, &j->nkw) < 0) {
		goto bad;
	}
	if (s->sel->readonly) {
		job_free(j);
		imap_reply_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
		return CMD_DONE;
	}
	if (imap_seqset_arg(s, args, s->uid_cmd, &idx, &n) < 0) {
		job_free(j);
		return CMD_DONE;
	}
	j->st = s->d->store;
	j->mbox_id = s->sel->mb.id;
	j->ch = xcalloc(n ? n : 1, sizeof(*j->ch));
	for (i = 0; i < n; i++) {
		struct store_msg *m = &s->sel->msgs[idx[i]];

		if (m->flags & IMAP_VF_EXPUNGED)
			continue;
		j->ch[j->n++].uid = m->uid;
	}
	free(idx);
	if (j->n == 0) {
		job_free(j);
		imap_reply_tagged(s, "OK", "%sSTORE completed",
		    s->uid_cmd ? "UID " : "");
		return CMD_DONE;
	}
	imap_session_submit(s, store_work, store_done, j);
	return CMD_SUSPEND;
bad:
	job_free(j);
	imap_reply_tagged(s, "BAD", "Invalid STORE arguments");
	return CMD_DONE;
}
