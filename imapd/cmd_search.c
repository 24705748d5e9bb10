/* cmd_search: SEARCH and UID SEARCH, with ESEARCH's RETURN options (RFC
   4731) and SEARCHRES's SAVE and "$" (RFC 5182). Criteria that only look
   at flags, sizes and dates run on the loop; criteria that read headers or
   bodies run on a worker over a copy of the view, loading each message
   lazily. The criteria parser and matcher are the pure imap_search.c. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#include "imap_commands.h"
#include "imap_esearch.h"
#include "imap_features.h"
#include "imap_search.h"
#include "imap_view.h"

#define SEARCH_HEADER_MAX (1u << 20)

/* ---- lazy message access ---- */

struct msg_loader {
	struct store *st;
	uint32_t mbox_id, uid;
	uint64_t max_size;
	bool hdr_done, msg_done;
	int hdr_ok, msg_ok;
	struct buf hdr, msg;
	struct store_msg_cache cache;
	bool have_cache;
};

static void
loader_reset(struct msg_loader *l, uint32_t uid)
{
	l->uid = uid;
	l->hdr_done = l->msg_done = false;
	buf_reset(&l->hdr);
	buf_reset(&l->msg);
	if (l->have_cache)
		store_msg_cache_free(&l->cache);
	l->have_cache = false;
}

static int
load_header(void *ctx, const char **p_r, size_t *len_r)
{
	struct msg_loader *l = ctx;
	int fd;

	if (!l->hdr_done) {
		l->hdr_done = true;
		l->hdr_ok = -1;
		if (l->msg_done && l->msg_ok == 0) {
			char *e = memmem(l->msg.data, l->msg.len, "\r\n\r\n", 4);
			size_t hl = e ? (size_t)(e - l->msg.data) + 4 : l->msg.len;

			buf_append(&l->hdr, l->msg.data, hl);
			l->hdr_ok = 0;
		} else if (store_msg_open(l->st, l->mbox_id, l->uid, &fd) ==
		    STORE_OK) {
			char chunk[8192];
			ssize_t r;

			while (l->hdr.len < SEARCH_HEADER_MAX &&
			    (r = read(fd, chunk, sizeof(chunk))) > 0) {
				size_t from = l->hdr.len > 3 ? l->hdr.len - 3 : 0;
				char *e;

				buf_append(&l->hdr, chunk, (size_t)r);
				e = memmem(l->hdr.data + from, l->hdr.len - from,
				    "\r\n\r\n", 4);
				if (e != NULL) {
					l->hdr.len = (size_t)(e - l->hdr.data) + 4;
					break;
				}
			}
			close(fd);
			l->hdr_ok = 0;
		}
	}
	*p_r = l->hdr.data ? l->hdr.data : "";
	*len_r = l->hdr.len;
	return l->hdr_ok;
}

static int
load_message(void *ctx, const char **p_r, size_t *len_r,
    const void **parts_r, size_t *plen_r)
{
	struct msg_loader *l = ctx;
	int fd;

	if (!l->msg_done) {
		l->msg_done = true;
		l->msg_ok = -1;
		if (store_msg_open(l->st, l->mbox_id, l->uid, &fd) == STORE_OK) {
			char chunk[65536];
			ssize_t r;

			while (l->msg.len < l->max_size &&
			    (r = read(fd, chunk, sizeof(chunk))) > 0)
				buf_append(&l->msg, chunk, (size_t)r);
			close(fd);
			l->msg_ok = 0;
			l->have_cache = store_msg_cache_get(l->st, l->mbox_id,
			    l->uid, &l->cache) == STORE_OK;
		}
	}
	*p_r = l->msg.data ? l->msg.data : "";
	*len_r = l->msg.len;
	*parts_r = l->have_cache ? l->cache.parts : NULL;
	*plen_r = l->have_cache ? l->cache.parts_len : 0;
	return l->msg_ok;
}

/* ---- evaluation ---- */

struct search_job {
	struct imap_search *prog;
	struct imap_view_msg *msgs; /* copy of the view */
	size_t n;
	struct msg_loader l;
	bool *hit;
	unsigned ret;               /* IMAP_ESR_*; 0: a plain SEARCH */
	bool esearch;               /* RETURN was given */
	bool want_modseq;           /* a MODSEQ key (RFC 7162 §3.1.5) */
};

/* A message expunged elsewhere but not yet reported keeps its MSN in this
   session (RFC 3501 §7.4.1), so it is matched on its last known state:
   flags, keywords, size, dates, UID, MODSEQ. Its text is gone, so a
   search that reads headers or bodies never matches it, under NOT too;
   the same holds for any message whose file could not be read. */
static void
search_eval(struct search_job *j)
{
	bool reads = imap_search_needs(j->prog) != 0;
	size_t i;

	for (i = 0; i < j->n; i++) {
		const struct imap_view_msg *m = &j->msgs[i];
		struct imap_search_msg sm = {
			.msn = (uint32_t)i + 1, .uid = m->uid,
			.flags = m->flags,
			.recent = m->recent,
			.keywords = m->keywords, .size = m->size,
			.internaldate = m->internaldate,
			.internal_tz = m->internal_tz, .modseq = m->modseq,
			.get_header = load_header, .get_message = load_message,
			.ctx = &j->l,
		};

		if (reads && m->expunged)
			continue;
		loader_reset(&j->l, m->uid);
		j->hit[i] = imap_search_match(j->prog, &sm) &&
		    !(j->l.hdr_done && j->l.hdr_ok < 0) &&
		    !(j->l.msg_done && j->l.msg_ok < 0);
	}
	loader_reset(&j->l, 0);
}

static void
search_work(void *arg)
{
	search_eval(arg);
}

static void
search_done(struct imap_session *s, void *arg)
{
	struct search_job *j = arg;
	struct buf b;
	size_t i, nhit = 0;
	uint32_t *nums, *uids;
	uint64_t *modseqs, modseq;

	nums = xmalloc((j->n ? j->n : 1) * sizeof(*nums));
	uids = xmalloc((j->n ? j->n : 1) * sizeof(*uids));
	modseqs = xmalloc((j->n ? j->n : 1) * sizeof(*modseqs));
	for (i = 0; i < j->n; i++) {
		if (!j->hit[i])
			continue;
		nums[nhit] = imap_cmd_is_uid(s) ? j->msgs[i].uid : (uint32_t)i + 1;
		modseqs[nhit] = j->msgs[i].modseq;
		uids[nhit++] = j->msgs[i].uid;
	}
	/* a plain SEARCH returns every match: RETURN (ALL) has its rule */
	modseq = !j->want_modseq ? 0 : imap_esearch_modseq(
	    j->esearch ? j->ret : IMAP_ESR_ALL, modseqs, nhit);
	free(modseqs);
	buf_init(&b);
	if (j->esearch) {
		imap_esearch_format(&b, s->cmd->tag, imap_cmd_is_uid(s), j->ret, nums, nhit,
		    modseq);
	} else {
		buf_puts(&b, "* SEARCH");
		for (i = 0; i < nhit; i++) {
			buf_printf(&b, " %u", nums[i]);
			if (b.len > 65536)
				imap_send_buf(s, &b);
		}
		/* no MODSEQ when nothing matched (RFC 7162 §3.1.5) */
		if (modseq != 0 && nhit > 0)
			buf_printf(&b, " (MODSEQ %llu)", (unsigned long long)modseq);
		buf_puts(&b, "\r\n");
	}
	imap_send_buf(s, &b);
	buf_free(&b);
	if (j->ret & IMAP_ESR_SAVE) {
		size_t part[2], np = imap_esearch_save_part(j->ret, nhit, part);
		uint32_t two[2];

		if (np == SIZE_MAX) {
			imap_searchres_save(s, uids, nhit);
		} else {
			for (i = 0; i < np; i++)
				two[i] = uids[part[i]];
			imap_searchres_save(s, two, np);
		}
	}
	free(nums);
	free(uids);
	imap_cmd_reply(s, IMAP_OK, "%s completed", s->cmd->def->name);
	imap_search_free(&j->prog);
	buf_free(&j->l.hdr);
	buf_free(&j->l.msg);
	free(j->msgs);
	free(j->hit);
	free(j);
	imap_cmd_finish(s);
}

enum cmd_result
imap_cmd_search(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct imap_view *v = s->sel;
	struct imap_search *prog;
	struct search_job *j;
	const char *err;
	unsigned ret = 0;
	int has_return;

	/* SEARCH RETURN (...) criteria: ESEARCH (RFC 4731) and SAVE (RFC
	   5182). */
	if ((has_return = imap_esearch_parse_return(&args, end, &ret, &err)) <
	    0) {
		imap_cmd_reply(s, IMAP_BAD, "%s", err);
		return CMD_DONE;
	}
	switch (imap_search_parse(args, end, &prog, &err)) {
	case IMAP_SEARCH_OK:
		break;
	case IMAP_SEARCH_BADCHARSET:
		if (ret & IMAP_ESR_SAVE)
			imap_searchres_reset(s);  /* RFC 5182 §2.1 */
		imap_cmd_reply(s, IMAP_NO, "%s", err);
		return CMD_DONE;
	default:
		if (ret & IMAP_ESR_SAVE)
			imap_searchres_reset(s);
		imap_cmd_reply(s, IMAP_BAD, "%s", err);
		return CMD_DONE;
	}
	if (imap_search_has_saved(prog))
		imap_search_bind_saved(prog, s->searchres.uids, s->searchres.n);
	if (imap_search_has_modseq(prog))
		imap_condstore_enable(s);
	imap_search_bind(prog, (uint32_t)v->n, v->n ? v->msgs[v->n - 1].uid : 0,
	    (const char (*)[65])v->mb.keywords, v->mb.nkeywords);
	j = xcalloc(1, sizeof(*j));
	j->prog = prog;
	j->ret = ret;
	j->esearch = has_return > 0;
	j->want_modseq = imap_search_has_modseq(prog);
	j->n = v->n;
	j->msgs = xmalloc((v->n ? v->n : 1) * sizeof(*j->msgs));
	if (v->n)
		memcpy(j->msgs, v->msgs, v->n * sizeof(*j->msgs));
	j->hit = xcalloc(v->n ? v->n : 1, sizeof(*j->hit));
	j->l.st = s->base.d->store;
	j->l.mbox_id = v->mb.id;
	j->l.max_size = s->base.d->cfg->max_message_size;
	buf_init(&j->l.hdr);
	buf_init(&j->l.msg);
	if (imap_search_needs(prog) == 0) {
		search_eval(j);
		search_done(s, j);
		return CMD_DONE;
	}
	imap_session_submit(s, search_work, search_done, j);
	return CMD_SUSPEND;
}
