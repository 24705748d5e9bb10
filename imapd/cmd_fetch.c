/* cmd_fetch: FETCH and UID FETCH. Items are parsed once; the reply is
   streamed message by message, body literals straight from the message
   file in chunks with back-pressure (a 50 MB message is never loaded whole).
   ENVELOPE/BODYSTRUCTURE come verbatim from the structure cached at
   delivery; sections are located with mime_section_find. Non-PEEK body
   fetches set \Seen first, on a worker, and report the new FLAGS. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mime.h"

#include "imap_commands.h"
#include "imap_ext2.h"
#include "imap_fetch_items.h"
#include "imap_modseq.h"

#define FETCH_CHUNK      65536
#define HEADER_READ_MAX  (1u << 20)
#define PREFETCH         16     /* files opened ahead, read-ahead hinted */

struct imap_fetch {
	struct imap_fetch_items it;
	size_t *idx;            /* view indexes, ascending */
	size_t n, pos;
	bool *seen_changed;     /* per idx: report FLAGS */
	bool failed;
	/* the message being written */
	bool in_msg;
	size_t k;               /* next item */
	int fd;
	struct store_msg_cache cache;
	bool have_cache;
	uint64_t stream_off, stream_left;
	char *chunk;
	struct buf out;         /* reply text, reused from message to message */
	struct buf hdr;         /* the message header, read once per message */
	bool hdr_loaded;
	/* Files of the next messages, opened early with a read-ahead hint so
	   that a cold-cache FETCH 1:* reads many files in parallel. */
	int pf_fd[PREFETCH];
	size_t pf_next;         /* first position not yet prefetched */
	bool has_modseq;        /* MODSEQ is among the items */
	bool has_flags;         /* FLAGS is among the items */
	/* Only top-level header sections are read: served from the store's
	   header cache (no file open) when the message has one. */
	bool hdr_only;
};

static void
msg_release(struct imap_fetch *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->have_cache)
		store_msg_cache_free(&f->cache);
	f->have_cache = false;
	f->hdr_loaded = false;
	buf_reset(&f->hdr);
	if (f->hdr.cap > 65536)
		buf_free(&f->hdr);
}

void
imap_fetch_free(struct imap_fetch **fp)
{
	struct imap_fetch *f = *fp;
	size_t i;

	if (f == NULL)
		return;
	msg_release(f);
	for (i = 0; i < PREFETCH; i++)
		if (f->pf_fd[i] >= 0)
			close(f->pf_fd[i]);
	imap_fetch_items_free(&f->it);
	free(f->idx);
	free(f->seen_changed);
	free(f->chunk);
	buf_free(&f->out);
	buf_free(&f->hdr);
	free(f);
	*fp = NULL;
}

/* ---- writing ---- */

static void
put_internaldate(struct buf *b, int64_t t, int32_t tz)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May",
		"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t lt = (time_t)(t + (int64_t)tz * 60);
	struct tm tm;
	int a = tz < 0 ? -tz : tz;

	gmtime_r(&lt, &tm);
	buf_printf(b, "INTERNALDATE \"%02d-%s-%04d %02d:%02d:%02d %c%02d%02d\"",
	    tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, tz < 0 ? '-' : '+', a / 60, a % 60);
}

/* Reads the top-level header (up to and including the blank line, at most
   HEADER_READ_MAX) into f->hdr. */
static void
load_header(struct imap_fetch *f)
{
	char tmp[16384];
	uint64_t off = 0;
	ssize_t r;

	if (f->hdr_loaded)
		return;
	f->hdr_loaded = true;
	buf_reset(&f->hdr);
	while (f->hdr.len < HEADER_READ_MAX &&
	    (r = pread(f->fd, tmp, sizeof(tmp), (off_t)off)) > 0) {
		size_t from = f->hdr.len > 3 ? f->hdr.len - 3 : 0;
		const char *e;

		buf_append(&f->hdr, tmp, (size_t)r);
		off += (uint64_t)r;
		if (f->hdr.len >= 2 && from == 0 && f->hdr.data[0] == '\r' &&
		    f->hdr.data[1] == '\n') {
			f->hdr.len = 2;     /* empty header */
			break;
		}
		e = memmem(f->hdr.data + from, f->hdr.len - from, "\r\n\r\n", 4);
		if (e != NULL) {
			f->hdr.len = (size_t)(e - f->hdr.data) + 4;
			break;
		}
	}
	if (f->hdr.data != NULL)
		f->hdr.data[f->hdr.len] = '\0';
}

/* The byte range of the item's section in the message file, or the bytes
   themselves in mem (HEADER.FIELDS). -1 if the part does not exist. */
static int
locate(struct imap_fetch *f, const struct imap_fetch_item *it, uint64_t fsize,
    uint64_t *off_r, uint64_t *len_r, struct buf *mem, bool *use_mem)
{
	struct mime_span sp;
	uint64_t ho = 0, hl = 0;
	bool is_msg;

	*use_mem = false;
	if (it->kind == IMAP_SEC_ALL && it->depth == 0) {
		*off_r = 0;
		*len_r = fsize;
		return 0;
	}
	if (it->depth == 0) {
		load_header(f);
		switch (it->kind) {
		case IMAP_SEC_HEADER:
			*off_r = 0;
			*len_r = f->hdr.len;
			if (f->fd < 0) {    /* from the header cache */
				buf_append(mem, f->hdr.data ? f->hdr.data : "",
				    f->hdr.len);
				*use_mem = true;
			}
			return 0;
		case IMAP_SEC_TEXT:
			*off_r = f->hdr.len;
			*len_r = fsize > f->hdr.len ? fsize - f->hdr.len : 0;
			return 0;
		default:
			imap_fetch_filter_header(it, f->hdr.data ? f->hdr.data : "", f->hdr.len,
			    mem);
			*use_mem = true;
			return 0;
		}
	}
	if (!f->have_cache || mime_section_find(f->cache.parts,
	    f->cache.parts_len, it->path, it->depth, &sp) < 0) {
		/* a missing part is an empty string, not an error */
		*off_r = 0;
		*len_r = 0;
		return 0;
	}
	is_msg = it->depth == 0 || sp.is_message;
	switch (it->kind) {
	case IMAP_SEC_ALL:
		*off_r = sp.body_off;
		*len_r = sp.body_len;
		return 0;
	case IMAP_SEC_MIME:
		*off_r = sp.hdr_off;
		*len_r = sp.hdr_len;
		return 0;
	case IMAP_SEC_TEXT:
		*off_r = it->depth == 0 ? sp.body_off : sp.msg_body_off;
		*len_r = !is_msg ? 0 : it->depth == 0 ? sp.body_len :
		    sp.msg_body_len;
		return 0;
	default:
		ho = it->depth == 0 ? sp.hdr_off : sp.msg_hdr_off;
		hl = !is_msg ? 0 : it->depth == 0 ? sp.hdr_len : sp.msg_hdr_len;
		break;
	}
	if (it->kind == IMAP_SEC_HEADER) {
		*off_r = ho;
		*len_r = hl;
		return 0;
	}
	{
		size_t want = hl > HEADER_READ_MAX ? HEADER_READ_MAX : (size_t)hl;
		char *tmp = xmalloc(want + 1);
		ssize_t r = want ? pread(f->fd, tmp, want, (off_t)ho) : 0;

		if (r < 0)
			r = 0;
		imap_fetch_filter_header(it, tmp, (size_t)r, mem);
		free(tmp);
		*use_mem = true;
	}
	return 0;
}

static void
clip(const struct imap_fetch_item *it, uint64_t *off, uint64_t *len)
{
	if (!it->partial)
		return;
	if (it->start >= *len) {
		*off += *len;
		*len = 0;
		return;
	}
	*off += it->start;
	*len -= it->start;
	if (*len > it->count)
		*len = it->count;
}

static void
prefetch(struct imap_session *s, struct imap_fetch *f)
{
	/* Positions served from the header cache were never prefetched. */
	if (f->pf_next < f->pos)
		f->pf_next = f->pos;
	while (f->pf_next < f->n && f->pf_next < f->pos + PREFETCH) {
		size_t slot = f->pf_next % PREFETCH;
		uint32_t uid = s->sel->msgs[f->idx[f->pf_next]].uid;
		int fd;

		f->pf_next++;
		if (f->pf_fd[slot] >= 0)
			close(f->pf_fd[slot]);
		f->pf_fd[slot] = -1;
		if (store_msg_open(s->d->store, s->sel->mb.id, uid, &fd) !=
		    STORE_OK)
			continue;
		(void)posix_fadvise(fd, 0, f->it.prefetch_body ? 0 : 65536,
		    POSIX_FADV_WILLNEED);
		f->pf_fd[slot] = fd;
	}
}

/* Opens what the message's items need. -1 if the message is gone. */
static int
msg_open(struct imap_session *s, struct imap_fetch *f, uint32_t uid)
{
	if (f->it.need_fd && f->hdr_only && store_msg_header_get(s->d->store,
	    s->sel->mb.id, uid, &f->hdr) == STORE_OK) {
		size_t slot = f->pos % PREFETCH;

		f->hdr_loaded = true;
		/* opened ahead after an earlier cache miss: not needed */
		if (f->pf_fd[slot] >= 0)
			close(f->pf_fd[slot]);
		f->pf_fd[slot] = -1;
	} else if (f->it.need_fd) {
		size_t slot = f->pos % PREFETCH;

		prefetch(s, f);
		f->fd = f->pf_fd[slot];
		f->pf_fd[slot] = -1;
		if (f->fd < 0)
			return -1;
	}
	if (f->it.need_cache) {
		if (store_msg_cache_get(s->d->store, s->sel->mb.id, uid,
		    &f->cache) != STORE_OK) {
			msg_release(f);
			return -1;
		}
		f->have_cache = true;
	}
	return 0;
}

/* Writes items of the current message from f->k on; false if it stopped
   because the output is congested. */
static bool
write_items(struct imap_session *s, struct imap_fetch *f)
{
	struct store_msg *m = &s->sel->msgs[f->idx[f->pos]];
	struct buf *bp = &f->out;

	for (;;) {
		if (f->stream_left > 0) {
			size_t want = f->stream_left > FETCH_CHUNK ? FETCH_CHUNK :
			    (size_t)f->stream_left;
			ssize_t r = pread(f->fd, f->chunk, want, (off_t)f->stream_off);

			if (r <= 0) {
				/* file shorter than the index says: pad, keep the
				   literal length promised to the client */
				memset(f->chunk, ' ', want);
				r = (ssize_t)want;
			}
			conn_write(s->c, f->chunk, (size_t)r);
			f->stream_off += (uint64_t)r;
			f->stream_left -= (uint64_t)r;
			if (f->stream_left == 0)
				f->k++;
			if (conn_is_congested(s->c)) {
				return false;
			}
			continue;
		}
		if (f->k >= f->it.n)
			break;
		{
			const struct imap_fetch_item *it = &f->it.v[f->k];

			if (f->k > 0)
				buf_putc(bp, ' ');
			switch (it->type) {
			case IMAP_FI_UID:
				buf_printf(bp, "UID %u", m->uid);
				break;
			case IMAP_FI_FLAGS:
				buf_puts(bp, "FLAGS ");
				imap_buf_flags(bp, s->sel, m->flags, m->keywords);
				break;
			case IMAP_FI_INTERNALDATE:
				put_internaldate(bp, m->internaldate, m->internal_tz);
				break;
			case IMAP_FI_SIZE:
				buf_printf(bp, "RFC822.SIZE %llu",
				    (unsigned long long)m->size);
				break;
			case IMAP_FI_MODSEQ:
				buf_printf(bp, "MODSEQ (%llu)",
				    (unsigned long long)m->modseq);
				break;
			case IMAP_FI_ENVELOPE:
				buf_printf(bp, "ENVELOPE %s", f->cache.envelope);
				break;
			case IMAP_FI_BODY:
				buf_printf(bp, "BODY %s", f->cache.body);
				break;
			case IMAP_FI_BODYSTRUCTURE:
				buf_printf(bp, "BODYSTRUCTURE %s",
				    f->cache.bodystructure);
				break;
			case IMAP_FI_SECTION: {
				uint64_t off = 0, len = 0, fsize = m->size;
				struct buf mem;
				bool use_mem;

				buf_init(&mem);
				locate(f, it, fsize, &off, &len, &mem, &use_mem);
				if (use_mem) {
					off = 0;
					len = mem.len;
				}
				if (off > fsize)
					off = fsize;
				if (len > fsize - off && !use_mem)
					len = fsize - off;
				clip(it, &off, &len);
				buf_printf(bp, "%s {%llu}\r\n", it->label,
				    (unsigned long long)len);
				if (use_mem) {
					buf_append(bp, mem.data ? mem.data + off : "",
					    (size_t)len);
					buf_free(&mem);
					break;
				}
				buf_free(&mem);
				if (len > 0) {
					imap_send_buf(s, bp);
					f->stream_off = off;
					f->stream_left = len;
					continue;   /* k advances when streamed */
				}
				break;
			}
			}
			f->k++;
		}
	}
	buf_puts(bp, ")\r\n");
	imap_send_buf(s, bp);
	return true;
}

static void fetch_finish(struct imap_session *s);

/* Writes messages until done or congested. */
static void
fetch_run(struct imap_session *s)
{
	struct imap_fetch *f = s->fetch;
	struct buf *bp = &f->out;

	while (f->pos < f->n) {
		if (!f->in_msg) {
			struct store_msg *m = &s->sel->msgs[f->idx[f->pos]];
			bool add_flags = f->seen_changed &&
			    f->seen_changed[f->pos] && !f->has_flags;

			if (msg_open(s, f, m->uid) < 0) {
				f->failed = true;
				f->pos++;
				continue;
			}
			buf_printf(bp, "* %zu FETCH (", f->idx[f->pos] + 1);
			if (add_flags) {
				buf_puts(bp, "FLAGS ");
				imap_buf_flags(bp, s->sel, m->flags, m->keywords);
				if (!f->has_modseq)
					imap_buf_modseq(bp, s, m->modseq);
				if (f->it.n)
					buf_putc(bp, ' ');
			}
			imap_send_buf(s, bp);
			f->in_msg = true;
			f->k = 0;
		}
		if (!write_items(s, f)) {
			return;     /* drain() calls us again */
		}
		msg_release(f);
		f->in_msg = false;
		f->pos++;
		if (conn_is_congested(s->c)) {
			return;
		}
	}
	fetch_finish(s);
}

static void
fetch_finish(struct imap_session *s)
{
	bool failed = s->fetch->failed;

	imap_fetch_free(&s->fetch);
	if (failed)
		imap_reply_tagged(s, "NO", "[EXPUNGEISSUED] Some messages could "
		    "not be fetched");
	else
		imap_reply_tagged(s, "OK", "%sFETCH completed",
		    s->uid_cmd ? "UID " : "");
	imap_cmd_finish(s);
}

void
imap_fetch_drain(struct imap_session *s)
{
	if (s->fetch != NULL && s->sel != NULL)
		fetch_run(s);
}

/* ---- \Seen before a non-PEEK fetch ---- */

struct seen_job {
	struct store *st;
	uint32_t mbox_id;
	struct store_flag_change *ch;
	size_t n;
	enum store_err err;
};

static void
seen_work(void *arg)
{
	struct seen_job *j = arg;

	j->err = store_msg_set_flags(j->st, j->mbox_id, STORE_FLAGS_ADD,
	    STORE_F_SEEN, NULL, 0, 0, j->ch, j->n);
}

static void
seen_done(struct imap_session *s, void *arg)
{
	struct seen_job *j = arg;
	struct imap_fetch *f = s->fetch;
	size_t i, k = 0;

	if (j->err == STORE_OK && s->sel != NULL) {
		f->seen_changed = xcalloc(f->n, sizeof(bool));
		for (i = 0; i < f->n && k < j->n; i++) {
			struct store_msg *m = &s->sel->msgs[f->idx[i]];

			if (m->uid != j->ch[k].uid)
				continue;
			if (j->ch[k].exists && j->ch[k].changed) {
				m->flags = (m->flags & ~IMAP_VF_SYSTEM) |
				    (j->ch[k].flags & IMAP_VF_SYSTEM);
				m->keywords = j->ch[k].keywords;
				m->modseq = j->ch[k].modseq;
				f->seen_changed[i] = true;
			}
			k++;
		}
	}
	free(j->ch);
	free(j);
	fetch_run(s);
}

enum cmd_result
imap_cmd_fetch(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	struct imap_fetch *f;
	struct imap_fetch_mods mods;
	bool has_uid = false;
	size_t i, nunseen = 0, nargs = imap_args_count(args, end);
	const char *err;

	memset(&mods, 0, sizeof(mods));
	if (nargs != 2 && nargs != 3) {
		imap_reply_tagged(s, "BAD", "Usage: FETCH sequence-set items");
		return CMD_DONE;
	}
	/* RFC 7162 §3.1.4: (CHANGEDSINCE n) and, for UID FETCH with QRESYNC
	   enabled, VANISHED (§3.2.6). */
	if (nargs == 3) {
		if (imap_fetch_mods_parse(imap_arg_next(imap_arg_next(args)),
		    &mods, &err) < 0) {
			imap_reply_tagged(s, "BAD", "%s", err);
			return CMD_DONE;
		}
		if (mods.vanished && (!s->uid_cmd || !imap_qresync_on(s))) {
			imap_reply_tagged(s, "BAD", "VANISHED needs UID FETCH and"
			    " ENABLE QRESYNC");
			return CMD_DONE;
		}
		imap_condstore_enable(s);
		/* Changes by other sessions count: bring the view up to date
		   (untagged FETCH is allowed here, EXPUNGE only for UID). */
		s->force_sync = true;
		imap_view_sync(s, s->uid_cmd);
	}
	f = xcalloc(1, sizeof(*f));
	f->fd = -1;
	for (i = 0; i < PREFETCH; i++)
		f->pf_fd[i] = -1;
	if (imap_fetch_items_parse(imap_arg_next(args), &f->it) < 0)
		goto bad;
	for (i = 0; i < f->it.n; i++) {
		if (f->it.v[i].type == IMAP_FI_UID)
			has_uid = true;
		if (f->it.v[i].type == IMAP_FI_FLAGS)
			f->has_flags = true;
		if (f->it.v[i].type == IMAP_FI_MODSEQ)
			f->has_modseq = true;
	}
	if (f->has_modseq)
		imap_condstore_enable(s);
	/* Once CONDSTORE is on, FLAGS come with MODSEQ (RFC 7162 §3.1.4.1);
	   CHANGEDSINCE always adds it. */
	if (!f->has_modseq && (mods.changedsince ||
	    (f->has_flags && imap_condstore_on(s)))) {
		f->it.v = xrealloc(f->it.v, (f->it.n + 1) * sizeof(*f->it.v));
		memset(&f->it.v[f->it.n], 0, sizeof(f->it.v[0]));
		f->it.v[f->it.n].type = IMAP_FI_MODSEQ;
		f->it.n++;
		f->has_modseq = true;
	}
	if (s->uid_cmd && !has_uid) {
		/* UID FETCH always returns the UID, first */
		f->it.v = xrealloc(f->it.v, (f->it.n + 1) * sizeof(*f->it.v));
		memmove(f->it.v + 1, f->it.v, f->it.n * sizeof(*f->it.v));
		memset(&f->it.v[0], 0, sizeof(f->it.v[0]));
		f->it.v[0].type = IMAP_FI_UID;
		f->it.n++;
	}
	if (imap_seqset_arg(s, args, s->uid_cmd, &f->idx, &f->n) < 0) {
		imap_fetch_free(&f);
		return CMD_DONE;
	}
	if (mods.changedsince) {
		size_t k = 0;

		for (i = 0; i < f->n; i++)
			if (s->sel->msgs[f->idx[i]].modseq > mods.since)
				f->idx[k++] = f->idx[i];
		f->n = k;
		if (mods.vanished)
			imap_fetch_vanished(s, args, mods.since);
	}
	f->hdr_only = f->it.need_fd;
	for (i = 0; i < f->it.n; i++) {
		const struct imap_fetch_item *it = &f->it.v[i];

		if (it->type == IMAP_FI_SECTION && (it->depth != 0 ||
		    (it->kind != IMAP_SEC_HEADER && it->kind != IMAP_SEC_FIELDS &&
		    it->kind != IMAP_SEC_FIELDS_NOT)))
			f->hdr_only = false;
	}
	if (f->it.need_fd)
		f->chunk = xmalloc(FETCH_CHUNK);
	s->fetch = f;
	if (f->it.set_seen && !s->sel->readonly) {
		struct seen_job *j;

		for (i = 0; i < f->n; i++)
			if (!(s->sel->msgs[f->idx[i]].flags &
			    (STORE_F_SEEN | IMAP_VF_EXPUNGED)))
				nunseen++;
		if (nunseen > 0) {
			j = xcalloc(1, sizeof(*j));
			j->st = s->d->store;
			j->mbox_id = s->sel->mb.id;
			j->ch = xcalloc(nunseen, sizeof(*j->ch));
			for (i = 0; i < f->n; i++) {
				struct store_msg *m = &s->sel->msgs[f->idx[i]];

				if (!(m->flags & (STORE_F_SEEN | IMAP_VF_EXPUNGED)))
					j->ch[j->n++].uid = m->uid;
			}
			imap_session_submit(s, seen_work, seen_done, j);
			return CMD_SUSPEND;
		}
	}
	fetch_run(s);
	return s->fetch != NULL ? CMD_SUSPEND : CMD_DONE;
bad:
	imap_fetch_free(&f);
	imap_reply_tagged(s, "BAD", "Invalid FETCH items");
	return CMD_DONE;
}
