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

#define FETCH_CHUNK      65536
#define SECTION_DEPTH    16
#define FIELDS_MAX       200
#define HEADER_READ_MAX  (1u << 20)
#define PREFETCH         16     /* files opened ahead, read-ahead hinted */

enum fi_type {
	FI_UID, FI_FLAGS, FI_INTERNALDATE, FI_SIZE, FI_ENVELOPE, FI_BODY,
	FI_BODYSTRUCTURE, FI_SECTION,
};

enum sec_kind { SEC_ALL, SEC_HEADER, SEC_FIELDS, SEC_FIELDS_NOT, SEC_MIME,
	SEC_TEXT };

struct fitem {
	enum fi_type type;
	bool peek;
	uint32_t path[SECTION_DEPTH];
	size_t depth;
	enum sec_kind kind;
	char **fields;
	size_t nfields;
	bool partial;
	uint64_t start, count;
	char *label;            /* "BODY[1.MIME]<0>", "RFC822.HEADER": owned */
};

struct imap_fetch {
	struct fitem *items;
	size_t nitems;
	size_t *idx;            /* view indexes, ascending */
	size_t n, pos;
	bool *seen_changed;     /* per idx: report FLAGS */
	bool need_cache, need_fd, failed;
	/* the message being written */
	bool in_msg;
	size_t k;               /* next item */
	int fd;
	struct store_msg_cache cache;
	bool have_cache;
	uint64_t stream_off, stream_left;
	char *chunk;
	struct buf hdr;         /* the message header, read once per message */
	bool hdr_loaded;
	/* Files of the next messages, opened early with a read-ahead hint so
	   that a cold-cache FETCH 1:* reads many files in parallel. */
	int pf_fd[PREFETCH];
	size_t pf_next;         /* first position not yet prefetched */
	bool prefetch_body;
};

static void
item_free(struct fitem *it)
{
	size_t i;

	for (i = 0; i < it->nfields; i++)
		free(it->fields[i]);
	free(it->fields);
	free(it->label);
}

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
	for (i = 0; i < f->nitems; i++)
		item_free(&f->items[i]);
	free(f->items);
	free(f->idx);
	free(f->seen_changed);
	free(f->chunk);
	buf_free(&f->hdr);
	free(f);
	*fp = NULL;
}

/* ---- item parsing ---- */

static int
parse_u64(const char **p, uint64_t *v_r)
{
	uint64_t v = 0;
	const char *s = *p;

	if (*s < '0' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s++ - '0');
	}
	*p = s;
	*v_r = v;
	return 0;
}

/* "(FROM \"TO\" X-Y)" -> fields. */
static int
parse_fields(struct fitem *it, const char **pp)
{
	const char *p = *pp;

	if (*p != ' ')
		return -1;
	p++;
	if (*p++ != '(')
		return -1;
	while (*p != ')') {
		const char *st;
		size_t len;

		if (*p == ' ' && it->nfields > 0)
			p++;
		if (*p == '"') {
			st = ++p;
			while (*p && *p != '"')
				p++;
			if (*p != '"')
				return -1;
			len = (size_t)(p - st);
			p++;
		} else {
			st = p;
			while ((unsigned char)*p > 0x20 && *p < 0x7f && *p != ')' &&
			    *p != '(' && *p != ':' && *p != '"')
				p++;
			len = (size_t)(p - st);
		}
		if (len == 0 || it->nfields >= FIELDS_MAX)
			return -1;
		it->fields = xrealloc(it->fields,
		    (it->nfields + 1) * sizeof(*it->fields));
		it->fields[it->nfields++] = xstrndup(st, len);
		if (*p != ' ' && *p != ')')
			return -1;
	}
	if (it->nfields == 0)
		return -1;
	*pp = p + 1;
	return 0;
}

/* Parses "[section]<partial>" starting at p ('['). */
static int
parse_section(struct fitem *it, const char *p, struct buf *label)
{
	size_t i;

	p++;
	while (*p >= '1' && *p <= '9') {
		uint64_t v;

		if (parse_u64(&p, &v) < 0 || v > UINT32_MAX ||
		    it->depth >= SECTION_DEPTH)
			return -1;
		it->path[it->depth++] = (uint32_t)v;
		if (*p != '.')
			break;
		p++;
	}
	if (*p == ']') {
		if (it->depth > 0 && p[-1] == '.')
			return -1;
		it->kind = SEC_ALL;
	} else if (strncasecmp(p, "HEADER.FIELDS.NOT", 17) == 0) {
		it->kind = SEC_FIELDS_NOT;
		p += 17;
		if (parse_fields(it, &p) < 0)
			return -1;
	} else if (strncasecmp(p, "HEADER.FIELDS", 13) == 0) {
		it->kind = SEC_FIELDS;
		p += 13;
		if (parse_fields(it, &p) < 0)
			return -1;
	} else if (strncasecmp(p, "HEADER", 6) == 0) {
		it->kind = SEC_HEADER;
		p += 6;
	} else if (strncasecmp(p, "TEXT", 4) == 0) {
		it->kind = SEC_TEXT;
		p += 4;
	} else if (strncasecmp(p, "MIME", 4) == 0 && it->depth > 0) {
		it->kind = SEC_MIME;
		p += 4;
	} else {
		return -1;
	}
	if (*p != ']')
		return -1;
	/* The label: part numbers and the section keyword, as sent. */
	buf_puts(label, "BODY[");
	for (i = 0; i < it->depth; i++)
		buf_printf(label, i ? ".%u" : "%u", it->path[i]);
	if (it->depth > 0 && it->kind != SEC_ALL)
		buf_putc(label, '.');
	{
		static const char *const kw[] = { "", "HEADER",
			"HEADER.FIELDS", "HEADER.FIELDS.NOT", "MIME", "TEXT" };

		buf_puts(label, kw[it->kind]);
		if (it->nfields > 0) {
			buf_puts(label, " (");
			for (i = 0; i < it->nfields; i++)
				buf_printf(label, i ? " %s" : "%s", it->fields[i]);
			buf_putc(label, ')');
		}
	}
	buf_putc(label, ']');
	p++;
	if (*p == '<') {
		p++;
		if (parse_u64(&p, &it->start) < 0 || *p++ != '.' ||
		    parse_u64(&p, &it->count) < 0 || it->count == 0 ||
		    *p++ != '>')
			return -1;
		it->partial = true;
		buf_printf(label, "<%llu>", (unsigned long long)it->start);
	}
	return *p == '\0' ? 0 : -1;
}

static int
parse_item(struct imap_fetch *f, const struct imap_arg *a)
{
	struct fitem it;
	struct buf label;
	const char *w = a->str;

	if (a->type != IMAP_ARG_ATOM)
		return -1;
	memset(&it, 0, sizeof(it));
	buf_init(&label);
	if (strcasecmp(w, "UID") == 0) {
		it.type = FI_UID;
	} else if (strcasecmp(w, "FLAGS") == 0) {
		it.type = FI_FLAGS;
	} else if (strcasecmp(w, "INTERNALDATE") == 0) {
		it.type = FI_INTERNALDATE;
	} else if (strcasecmp(w, "RFC822.SIZE") == 0) {
		it.type = FI_SIZE;
	} else if (strcasecmp(w, "ENVELOPE") == 0) {
		it.type = FI_ENVELOPE;
		f->need_cache = true;
	} else if (strcasecmp(w, "BODYSTRUCTURE") == 0) {
		it.type = FI_BODYSTRUCTURE;
		f->need_cache = true;
	} else if (strcasecmp(w, "BODY") == 0) {
		it.type = FI_BODY;
		f->need_cache = true;
	} else if (strcasecmp(w, "RFC822") == 0) {
		it.type = FI_SECTION;
		buf_puts(&label, "RFC822");
	} else if (strcasecmp(w, "RFC822.HEADER") == 0) {
		it.type = FI_SECTION;
		it.peek = true;
		it.kind = SEC_HEADER;
		buf_puts(&label, "RFC822.HEADER");
	} else if (strcasecmp(w, "RFC822.TEXT") == 0) {
		it.type = FI_SECTION;
		it.kind = SEC_TEXT;
		buf_puts(&label, "RFC822.TEXT");
	} else if (strncasecmp(w, "BODY[", 5) == 0 ||
	    strncasecmp(w, "BODY.PEEK[", 10) == 0) {
		it.type = FI_SECTION;
		it.peek = w[4] == '.';
		if (parse_section(&it, w + (it.peek ? 9 : 4), &label) < 0) {
			item_free(&it);
			buf_free(&label);
			return -1;
		}
	} else {
		return -1;
	}
	if (it.type == FI_SECTION) {
		f->need_fd = true;
		/* the top-level header is found by reading the file; only
		   nested parts need the cached part table */
		if (it.depth > 0)
			f->need_cache = true;
		it.label = buf_steal(&label);
	}
	buf_free(&label);
	f->items = xrealloc(f->items, (f->nitems + 1) * sizeof(*f->items));
	f->items[f->nitems++] = it;
	return 0;
}

static int
add_macro(struct imap_fetch *f, const char *w)
{
	static const char *const all[] = { "FLAGS", "INTERNALDATE",
		"RFC822.SIZE", "ENVELOPE", "BODY" };
	size_t n, i;

	if (strcasecmp(w, "ALL") == 0)
		n = 4;
	else if (strcasecmp(w, "FAST") == 0)
		n = 3;
	else if (strcasecmp(w, "FULL") == 0)
		n = 5;
	else
		return 1;
	for (i = 0; i < n; i++) {
		struct imap_arg a = { .type = IMAP_ARG_ATOM, .str = all[i],
			.len = strlen(all[i]) };

		parse_item(f, &a);
	}
	return 0;
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

static bool
field_listed(const struct fitem *it, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < it->nfields; i++)
		if (strlen(it->fields[i]) == len &&
		    strncasecmp(it->fields[i], name, len) == 0)
			return true;
	return false;
}

/* Keeps the header fields of hdr[0..len) that the item asks for, and the
   blank line that ends a header. */
static void
filter_header(const struct fitem *it, const char *hdr, size_t len,
    struct buf *out)
{
	size_t i = 0;
	bool keep = false;

	while (i < len) {
		const char *line = hdr + i, *nl = memchr(line, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - line) + 1 : len - i;

		if (ll <= 2 && (line[0] == '\r' || line[0] == '\n'))
			break;  /* the blank line */
		if (line[0] != ' ' && line[0] != '\t') {
			const char *colon = memchr(line, ':', ll);
			size_t nlen = colon ? (size_t)(colon - line) : 0;

			while (nlen > 0 && (line[nlen - 1] == ' ' ||
			    line[nlen - 1] == '\t'))
				nlen--;
			keep = colon != NULL && (field_listed(it, line, nlen) ==
			    (it->kind == SEC_FIELDS));
		}
		if (keep)
			buf_append(out, line, ll);
		i += ll;
	}
	buf_puts(out, "\r\n");
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
locate(struct imap_fetch *f, const struct fitem *it, uint64_t fsize,
    uint64_t *off_r, uint64_t *len_r, struct buf *mem, bool *use_mem)
{
	struct mime_span sp;
	uint64_t ho = 0, hl = 0;
	bool is_msg;

	*use_mem = false;
	if (it->kind == SEC_ALL && it->depth == 0) {
		*off_r = 0;
		*len_r = fsize;
		return 0;
	}
	if (it->depth == 0) {
		load_header(f);
		switch (it->kind) {
		case SEC_HEADER:
			*off_r = 0;
			*len_r = f->hdr.len;
			return 0;
		case SEC_TEXT:
			*off_r = f->hdr.len;
			*len_r = fsize > f->hdr.len ? fsize - f->hdr.len : 0;
			return 0;
		default:
			filter_header(it, f->hdr.data ? f->hdr.data : "", f->hdr.len,
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
	case SEC_ALL:
		*off_r = sp.body_off;
		*len_r = sp.body_len;
		return 0;
	case SEC_MIME:
		*off_r = sp.hdr_off;
		*len_r = sp.hdr_len;
		return 0;
	case SEC_TEXT:
		*off_r = it->depth == 0 ? sp.body_off : sp.msg_body_off;
		*len_r = !is_msg ? 0 : it->depth == 0 ? sp.body_len :
		    sp.msg_body_len;
		return 0;
	default:
		ho = it->depth == 0 ? sp.hdr_off : sp.msg_hdr_off;
		hl = !is_msg ? 0 : it->depth == 0 ? sp.hdr_len : sp.msg_hdr_len;
		break;
	}
	if (it->kind == SEC_HEADER) {
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
		filter_header(it, tmp, (size_t)r, mem);
		free(tmp);
		*use_mem = true;
	}
	return 0;
}

static void
clip(const struct fitem *it, uint64_t *off, uint64_t *len)
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
		(void)posix_fadvise(fd, 0, f->prefetch_body ? 0 : 65536,
		    POSIX_FADV_WILLNEED);
		f->pf_fd[slot] = fd;
	}
}

/* Opens what the message's items need. -1 if the message is gone. */
static int
msg_open(struct imap_session *s, struct imap_fetch *f, uint32_t uid)
{
	if (f->need_fd) {
		size_t slot = f->pos % PREFETCH;

		prefetch(s, f);
		f->fd = f->pf_fd[slot];
		f->pf_fd[slot] = -1;
		if (f->fd < 0)
			return -1;
	}
	if (f->need_cache) {
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
	struct buf b;

	buf_init(&b);
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
				buf_free(&b);
				return false;
			}
			continue;
		}
		if (f->k >= f->nitems)
			break;
		{
			const struct fitem *it = &f->items[f->k];

			if (f->k > 0)
				buf_putc(&b, ' ');
			switch (it->type) {
			case FI_UID:
				buf_printf(&b, "UID %u", m->uid);
				break;
			case FI_FLAGS:
				buf_puts(&b, "FLAGS ");
				imap_buf_flags(&b, s->sel, m->flags, m->keywords);
				break;
			case FI_INTERNALDATE:
				put_internaldate(&b, m->internaldate, m->internal_tz);
				break;
			case FI_SIZE:
				buf_printf(&b, "RFC822.SIZE %llu",
				    (unsigned long long)m->size);
				break;
			case FI_ENVELOPE:
				buf_printf(&b, "ENVELOPE %s", f->cache.envelope);
				break;
			case FI_BODY:
				buf_printf(&b, "BODY %s", f->cache.body);
				break;
			case FI_BODYSTRUCTURE:
				buf_printf(&b, "BODYSTRUCTURE %s",
				    f->cache.bodystructure);
				break;
			case FI_SECTION: {
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
				buf_printf(&b, "%s {%llu}\r\n", it->label,
				    (unsigned long long)len);
				if (use_mem) {
					buf_append(&b, mem.data ? mem.data + off : "",
					    (size_t)len);
					buf_free(&mem);
					break;
				}
				buf_free(&mem);
				if (len > 0) {
					imap_send_buf(s, &b);
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
	buf_puts(&b, ")\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	return true;
}

static void fetch_finish(struct imap_session *s);

/* Writes messages until done or congested. */
static void
fetch_run(struct imap_session *s)
{
	struct imap_fetch *f = s->fetch;
	struct buf b;

	buf_init(&b);
	while (f->pos < f->n) {
		if (!f->in_msg) {
			struct store_msg *m = &s->sel->msgs[f->idx[f->pos]];
			bool add_flags = f->seen_changed && f->seen_changed[f->pos];
			size_t i;

			if (msg_open(s, f, m->uid) < 0) {
				f->failed = true;
				f->pos++;
				continue;
			}
			buf_printf(&b, "* %zu FETCH (", f->idx[f->pos] + 1);
			for (i = 0; add_flags && i < f->nitems; i++)
				if (f->items[i].type == FI_FLAGS)
					add_flags = false;
			if (add_flags) {
				buf_puts(&b, "FLAGS ");
				imap_buf_flags(&b, s->sel, m->flags, m->keywords);
				if (f->nitems)
					buf_putc(&b, ' ');
			}
			imap_send_buf(s, &b);
			f->in_msg = true;
			f->k = 0;
		}
		if (!write_items(s, f)) {
			buf_free(&b);
			return;     /* drain() calls us again */
		}
		msg_release(f);
		f->in_msg = false;
		f->pos++;
		if (conn_is_congested(s->c)) {
			buf_free(&b);
			return;
		}
	}
	buf_free(&b);
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
	const struct imap_arg *items;
	bool set_seen = false, has_uid = false;
	size_t i, nunseen = 0;

	if (imap_args_count(args, end) != 2) {
		imap_reply_tagged(s, "BAD", "Usage: FETCH sequence-set items");
		return CMD_DONE;
	}
	f = xcalloc(1, sizeof(*f));
	f->fd = -1;
	for (i = 0; i < PREFETCH; i++)
		f->pf_fd[i] = -1;
	items = imap_arg_next(args);
	if (items->type == IMAP_ARG_LIST) {
		const struct imap_arg *a;

		if (items->span == 0)
			goto bad;
		for (a = items + 1; a < imap_arg_list_end(items); a = imap_arg_next(a))
			if (parse_item(f, a) < 0)
				goto bad;
	} else if (items->type != IMAP_ARG_ATOM ||
	    (add_macro(f, items->str) != 0 && parse_item(f, items) < 0)) {
		goto bad;
	}
	for (i = 0; i < f->nitems; i++) {
		if (f->items[i].type == FI_UID)
			has_uid = true;
		if (f->items[i].type == FI_SECTION && !f->items[i].peek)
			set_seen = true;
		if (f->items[i].type == FI_SECTION &&
		    f->items[i].kind != SEC_HEADER && f->items[i].kind != SEC_FIELDS &&
		    f->items[i].kind != SEC_FIELDS_NOT)
			f->prefetch_body = true;
	}
	if (s->uid_cmd && !has_uid) {
		/* UID FETCH always returns the UID, first */
		f->items = xrealloc(f->items, (f->nitems + 1) * sizeof(*f->items));
		memmove(f->items + 1, f->items, f->nitems * sizeof(*f->items));
		memset(&f->items[0], 0, sizeof(f->items[0]));
		f->items[0].type = FI_UID;
		f->nitems++;
	}
	if (imap_seqset_arg(s, args, s->uid_cmd, &f->idx, &f->n) < 0) {
		imap_fetch_free(&f);
		return CMD_DONE;
	}
	if (f->need_fd)
		f->chunk = xmalloc(FETCH_CHUNK);
	s->fetch = f;
	if (set_seen && !s->sel->readonly) {
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
