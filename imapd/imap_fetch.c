/* imap_fetch: the FETCH engine. Each item type is a row of a handler
   table {name, init, write}; the engine opens what a message's items need
   (files opened ahead with a read-ahead hint, the cached structure or
   header), and streams body literals in chunks with back-pressure (a 50 MB
   message is never loaded whole). ENVELOPE/BODYSTRUCTURE are sent verbatim
   from the delivery-time cache. It never writes to the store. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mime.h"

#include "imap_features.h"
#include "imap_fetch.h"
#include "imap_view.h"

#define FETCH_CHUNK      65536
#define HEADER_READ_MAX  (1u << 20)
#define PREFETCH         16     /* files opened ahead, read-ahead hinted */
#define OUT_FLUSH        65536  /* reply bytes gathered before conn_write */
#define FLAG_SETS        8      /* flag lists kept formatted */

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
	/* A body literal on its way: conn_send_fd streams it (streaming), or,
	   if the fd cannot be shared, stream_chunk() reads it here. */
	bool streaming;
	uint64_t stream_off, stream_left;
	char *chunk;
	struct buf out;         /* reply text, reused from message to message */
	struct buf mem;         /* a filtered header, reused likewise */
	/* Flag lists formatted so far: most messages of a mailbox share a
	   few flag sets (\Seen or not, \Recent or not, often interleaved),
	   each formatted once, all kept end to end in fl. */
	struct buf fl;
	struct flag_set {
		uint32_t flags, keywords;
		bool recent;
		size_t off, len;
	} sets[FLAG_SETS];
	size_t nsets;
	/* Only items that are numbers or flags: each message's reply is
	   formatted in place in one reserved stretch (write_simple). */
	bool simple;
	struct buf hdr;         /* the message header, read once per message */
	uint64_t hdr_size;      /* its length in the file: hdr.len unless cut */
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

/* One row per item type. init: what the item needs, once per command;
   write: appends the item to f->out; returns false if it started
   streaming a literal (the item is done when the stream is). */
struct fetch_handler {
	const char *name;
	void (*init)(struct imap_fetch *f, const struct imap_fetch_item *it);
	bool (*write)(struct imap_session *s, struct imap_fetch *f,
	    const struct imap_view_msg *m, const struct imap_fetch_item *it);
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
	buf_free(&f->mem);
	buf_free(&f->fl);
	buf_free(&f->hdr);
	free(f);
	*fp = NULL;
}

void
imap_fetch_set_seen_changed(struct imap_fetch *f, size_t i)
{
	if (f->seen_changed == NULL)
		f->seen_changed = xcalloc(f->n, sizeof(bool));
	f->seen_changed[i] = true;
}

const size_t *
imap_fetch_indexes(const struct imap_fetch *f)
{
	return f->idx;
}

size_t
imap_fetch_count(const struct imap_fetch *f)
{
	return f->n;
}

bool
imap_fetch_sets_seen(const struct imap_fetch *f)
{
	return f->it.set_seen;
}

bool
imap_fetch_failed(const struct imap_fetch *f)
{
	return f->failed;
}

/* ---- locating sections ---- */

/* Offset just past the "\r\n\r\n" that ends the header, searched from
   off on; the file size if there is none (the whole message is header). */
static uint64_t
header_end(int fd, uint64_t off)
{
	char tmp[16384];
	ssize_t r;

	while ((r = pread(fd, tmp, sizeof(tmp), (off_t)off)) > 0) {
		const char *e = memmem(tmp, (size_t)r, "\r\n\r\n", 4);

		if (e != NULL)
			return off + (uint64_t)(e - tmp) + 4;
		if (r < 4)
			return off + (uint64_t)r;
		off += (uint64_t)r - 3;     /* the end may straddle two reads */
	}
	return off;
}

/* The length of the whole fields at the start of a header cut at
   h[len]: a header longer than HEADER_READ_MAX is filtered (HEADER.FIELDS)
   without a field cut in the middle. A field starts after a CRLF that is
   not followed by white space; 0 if even the first field is longer. */
static size_t
whole_fields(const char *h, size_t len)
{
	size_t i;

	for (i = len - 1; i >= 2 && i < len; i--)
		if (h[i - 2] == '\r' && h[i - 1] == '\n' && h[i] != ' ' &&
		    h[i] != '\t')
			return i;
	return 0;
}

/* Reads the top-level header (up to and including the blank line) into
   f->hdr. One of more than HEADER_READ_MAX bytes is kept there only up
   to a field boundary, for HEADER.FIELDS, while f->hdr_size is its exact
   length in the file: HEADER and TEXT are byte ranges of the file. */
static void
load_header(struct imap_fetch *f)
{
	char tmp[16384];
	uint64_t off = 0;
	ssize_t r;
	bool found = false;

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
			found = true;
			break;
		}
		e = memmem(f->hdr.data + from, f->hdr.len - from, "\r\n\r\n", 4);
		if (e != NULL) {
			f->hdr.len = (size_t)(e - f->hdr.data) + 4;
			found = true;
			break;
		}
	}
	f->hdr_size = f->hdr.len;
	if (!found && f->hdr.len >= HEADER_READ_MAX) {
		f->hdr_size = header_end(f->fd, off - 3);
		f->hdr.len = whole_fields(f->hdr.data, f->hdr.len);
	}
	if (f->hdr.data != NULL)
		f->hdr.data[f->hdr.len] = '\0';
}

/* A top-level section (depth 0): the whole message, or its header or
   text found from the header read above. */
static void
locate_top(struct imap_fetch *f, const struct imap_fetch_item *it,
    uint64_t fsize, uint64_t *off_r, uint64_t *len_r, struct buf *mem,
    bool *use_mem)
{
	if (it->kind == IMAP_SEC_ALL) {
		*off_r = 0;
		*len_r = fsize;
		return;
	}
	load_header(f);
	switch (it->kind) {
	case IMAP_SEC_HEADER:
		*off_r = 0;
		*len_r = f->hdr_size;
		if (f->fd < 0) {    /* from the header cache */
			buf_append(mem, f->hdr.data ? f->hdr.data : "",
			    f->hdr.len);
			*use_mem = true;
		}
		return;
	case IMAP_SEC_TEXT:
		*off_r = f->hdr_size;
		*len_r = fsize > f->hdr_size ? fsize - f->hdr_size : 0;
		return;
	default:
		imap_fetch_filter_header(it, f->hdr.data ? f->hdr.data : "",
		    f->hdr.len, mem);
		*use_mem = true;
		return;
	}
}

/* HEADER.FIELDS (.NOT) of a nested message: its header read from the
   file (its whole fields within HEADER_READ_MAX) and filtered into mem. */
static void
filter_part_header(struct imap_fetch *f, const struct imap_fetch_item *it,
    uint64_t ho, uint64_t hl, struct buf *mem)
{
	size_t want = hl > HEADER_READ_MAX ? HEADER_READ_MAX : (size_t)hl;
	char *tmp = xmalloc(want + 1);
	ssize_t r = want ? pread(f->fd, tmp, want, (off_t)ho) : 0;

	if (r < 0)
		r = 0;
	if (hl > want)
		r = (ssize_t)whole_fields(tmp, (size_t)r);
	imap_fetch_filter_header(it, tmp, (size_t)r, mem);
	free(tmp);
}

/* The byte range of the item's section in the message file, or the bytes
   themselves in mem (HEADER.FIELDS; *use_mem set). A missing part is an
   empty string, not an error. */
static void
locate(struct imap_fetch *f, const struct imap_fetch_item *it, uint64_t fsize,
    uint64_t *off_r, uint64_t *len_r, struct buf *mem, bool *use_mem)
{
	struct mime_span sp;
	uint64_t ho, hl;

	*use_mem = false;
	*off_r = 0;
	*len_r = 0;
	if (it->depth == 0) {
		locate_top(f, it, fsize, off_r, len_r, mem, use_mem);
		return;
	}
	if (!f->have_cache || mime_section_find(f->cache.parts,
	    f->cache.parts_len, it->path, it->depth, &sp) < 0)
		return;
	switch (it->kind) {
	case IMAP_SEC_ALL:
		*off_r = sp.body_off;
		*len_r = sp.body_len;
		return;
	case IMAP_SEC_MIME:
		*off_r = sp.hdr_off;
		*len_r = sp.hdr_len;
		return;
	case IMAP_SEC_TEXT:
		*off_r = sp.msg_body_off;
		*len_r = sp.is_message ? sp.msg_body_len : 0;
		return;
	default:
		break;
	}
	ho = sp.msg_hdr_off;
	hl = sp.is_message ? sp.msg_hdr_len : 0;
	if (it->kind == IMAP_SEC_HEADER) {
		*off_r = ho;
		*len_r = hl;
		return;
	}
	filter_part_header(f, it, ho, hl, mem);
	*use_mem = true;
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

/* ---- item handlers ---- */

static void
put_lit(struct buf *b, const char *s, size_t len)
{
	buf_append(b, s, len);
}
#define PUT_LIT(b, s) put_lit((b), (s), sizeof(s) - 1)

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
write_uid(struct imap_session *s, struct imap_fetch *f,
    const struct imap_view_msg *m, const struct imap_fetch_item *it)
{
	(void)s;
	(void)it;
	PUT_LIT(&f->out, "UID ");
	buf_put_u64(&f->out, m->uid);
	return true;
}

static void
init_flags(struct imap_fetch *f, const struct imap_fetch_item *it)
{
	(void)it;
	f->has_flags = true;
}

/* m's imap_buf_flags() text, formatted once per distinct flag set (the
   keyword names are the view's: fixed for the command). Valid until the
   next call. */
static void
flags_text(struct imap_fetch *f, const struct imap_view *v,
    const struct imap_view_msg *m, const char **p_r, size_t *len_r)
{
	struct flag_set *fs;
	size_t i;

	for (i = 0; i < f->nsets; i++) {
		fs = &f->sets[i];
		if (fs->flags == m->flags && fs->keywords == m->keywords &&
		    fs->recent == m->recent)
			goto found;
	}
	if (f->nsets == FLAG_SETS) {
		buf_reset(&f->fl);
		f->nsets = 0;
	}
	fs = &f->sets[f->nsets++];
	fs->flags = m->flags;
	fs->keywords = m->keywords;
	fs->recent = m->recent;
	fs->off = f->fl.len;
	imap_buf_flags(&f->fl, v, m);
	fs->len = f->fl.len - fs->off;
found:
	*p_r = f->fl.data + fs->off;
	*len_r = fs->len;
}

static void
put_flags(struct imap_fetch *f, const struct imap_view *v,
    const struct imap_view_msg *m)
{
	const char *p;
	size_t len;

	flags_text(f, v, m, &p, &len);
	buf_append(&f->out, p, len);
}

static bool
write_flags(struct imap_session *s, struct imap_fetch *f,
    const struct imap_view_msg *m, const struct imap_fetch_item *it)
{
	(void)it;
	PUT_LIT(&f->out, "FLAGS ");
	put_flags(f, s->sel, m);
	return true;
}

static bool
write_internaldate(struct imap_session *s, struct imap_fetch *f,
    const struct imap_view_msg *m, const struct imap_fetch_item *it)
{
	(void)s;
	(void)it;
	put_internaldate(&f->out, m->internaldate, m->internal_tz);
	return true;
}

static bool
write_size(struct imap_session *s, struct imap_fetch *f,
    const struct imap_view_msg *m, const struct imap_fetch_item *it)
{
	(void)s;
	(void)it;
	PUT_LIT(&f->out, "RFC822.SIZE ");
	buf_put_u64(&f->out, m->size);
	return true;
}

static void
init_modseq(struct imap_fetch *f, const struct imap_fetch_item *it)
{
	(void)it;
	f->has_modseq = true;
}

static bool
write_modseq(struct imap_session *s, struct imap_fetch *f,
    const struct imap_view_msg *m, const struct imap_fetch_item *it)
{
	(void)s;
	(void)it;
	PUT_LIT(&f->out, "MODSEQ (");
	buf_put_u64(&f->out, m->modseq);
	buf_putc(&f->out, ')');
	return true;
}

static bool
write_envelope(struct imap_session *s, struct imap_fetch *f,
    const struct imap_view_msg *m, const struct imap_fetch_item *it)
{
	(void)s;
	(void)m;
	(void)it;
	PUT_LIT(&f->out, "ENVELOPE ");
	buf_puts(&f->out, f->cache.envelope);
	return true;
}

static bool
write_body(struct imap_session *s, struct imap_fetch *f,
    const struct imap_view_msg *m, const struct imap_fetch_item *it)
{
	(void)s;
	(void)m;
	(void)it;
	PUT_LIT(&f->out, "BODY ");
	buf_puts(&f->out, f->cache.body);
	return true;
}

static bool
write_bodystructure(struct imap_session *s, struct imap_fetch *f,
    const struct imap_view_msg *m, const struct imap_fetch_item *it)
{
	(void)s;
	(void)m;
	(void)it;
	PUT_LIT(&f->out, "BODYSTRUCTURE ");
	buf_puts(&f->out, f->cache.bodystructure);
	return true;
}

static void
init_section(struct imap_fetch *f, const struct imap_fetch_item *it)
{
	if (it->depth != 0 || (it->kind != IMAP_SEC_HEADER &&
	    it->kind != IMAP_SEC_FIELDS && it->kind != IMAP_SEC_FIELDS_NOT))
		f->hdr_only = false;
}

/* Keeps the literal length promised to the client if the file is shorter
   than the index says: the missing bytes are sent as spaces. */
static int
stream_filter(void *arg, const char *in, size_t len, bool last,
    struct buf *out)
{
	struct imap_fetch *f = arg;

	if (len > f->stream_left)
		len = (size_t)f->stream_left;
	buf_append(out, in, len);
	f->stream_left -= len;
	for (; last && f->stream_left > 0; f->stream_left--)
		buf_putc(out, ' ');
	return 1;
}

static void
stream_done(struct conn *c, void *arg)
{
	struct imap_fetch *f = arg;

	f->streaming = false;
	f->k++;
}

/* Streams [off, off + len) of the message file with back-pressure
   (conn_send_fd, which owns a duplicate of the fd), or, for a literal of
   one chunk, leaves it to stream_chunk(). True if it is all queued
   already (the item is done), false if it goes on. */
static bool
stream_start(struct imap_session *s, struct imap_fetch *f, uint64_t off,
    uint64_t len)
{
	int fd;

	f->stream_left = len;
	/* One chunk or less (most messages): a pread here costs less than
	   setting up a stream; so does a fd that cannot be shared. */
	if (len <= FETCH_CHUNK || (fd = dup(f->fd)) < 0) {
		f->stream_off = off;    /* read here, chunk by chunk */
		return false;
	}
	if (conn_send_fd(s->base.c, fd, off, len, stream_filter, stream_done,
	    f) == 0) {
		f->streaming = true;
		return false;
	}
	f->stream_left = 0;
	return true;
}

/* A literal of one chunk or less (most messages) is read straight into
   the reply, which goes out with the next ones. Like stream_chunk(), it
   keeps the length promised if the file is shorter than the index says:
   the missing bytes are spaces. */
static void
read_into_out(struct imap_fetch *f, uint64_t off, size_t len)
{
	size_t got = 0;
	ssize_t r;

	buf_reserve(&f->out, len);
	while (got < len && (r = pread(f->fd, f->out.data + f->out.len + got,
	    len - got, (off_t)(off + got))) > 0)
		got += (size_t)r;
	memset(f->out.data + f->out.len + got, ' ', len - got);
	f->out.len += len;
	f->out.data[f->out.len] = '\0';
}

/* BODY[section]<partial>: a literal, from memory (filtered headers), read
   into the reply (small) or streamed from the file. */
static bool
write_section(struct imap_session *s, struct imap_fetch *f,
    const struct imap_view_msg *m, const struct imap_fetch_item *it)
{
	uint64_t off = 0, len = 0, fsize = m->size;
	struct buf *mem = &f->mem;
	bool use_mem;

	buf_reset(mem);
	locate(f, it, fsize, &off, &len, mem, &use_mem);
	if (use_mem) {
		off = 0;
		len = mem->len;
	}
	if (off > fsize)
		off = fsize;
	if (len > fsize - off && !use_mem)
		len = fsize - off;
	clip(it, &off, &len);
	buf_puts(&f->out, it->label);
	PUT_LIT(&f->out, " {");
	buf_put_u64(&f->out, len);
	PUT_LIT(&f->out, "}\r\n");
	if (use_mem)
		buf_append(&f->out, mem->data ? mem->data + off : "",
		    (size_t)len);
	if (mem->cap > 65536)
		buf_free(mem);      /* one huge header: not kept for the rest */
	if (use_mem || len == 0)
		return true;
	if (len <= FETCH_CHUNK) {
		read_into_out(f, off, (size_t)len);
		return true;
	}
	imap_send_buf(s, &f->out);
	return stream_start(s, f, off, len);
}

static const struct fetch_handler handlers[] = {
	[IMAP_FI_UID]           = { "UID", NULL, write_uid },
	[IMAP_FI_FLAGS]         = { "FLAGS", init_flags, write_flags },
	[IMAP_FI_INTERNALDATE]  = { "INTERNALDATE", NULL, write_internaldate },
	[IMAP_FI_SIZE]          = { "RFC822.SIZE", NULL, write_size },
	[IMAP_FI_ENVELOPE]      = { "ENVELOPE", NULL, write_envelope },
	[IMAP_FI_BODY]          = { "BODY", NULL, write_body },
	[IMAP_FI_BODYSTRUCTURE] = { "BODYSTRUCTURE", NULL,
	    write_bodystructure },
	[IMAP_FI_SECTION]       = { "BODY[]", init_section, write_section },
	[IMAP_FI_MODSEQ]        = { "MODSEQ", init_modseq, write_modseq },
};

struct imap_fetch *
imap_fetch_new(struct imap_fetch_items *it, size_t *idx, size_t n)
{
	struct imap_fetch *f = xcalloc(1, sizeof(*f));
	size_t i;

	f->it = *it;
	memset(it, 0, sizeof(*it));
	f->idx = idx;
	f->n = n;
	f->fd = -1;
	for (i = 0; i < PREFETCH; i++)
		f->pf_fd[i] = -1;
	f->hdr_only = f->it.need_fd;
	for (i = 0; i < f->it.n; i++) {
		const struct fetch_handler *h = &handlers[f->it.v[i].type];

		if (h->init != NULL)
			h->init(f, &f->it.v[i]);
	}
	if (f->it.need_fd)
		f->chunk = xmalloc(FETCH_CHUNK);
	f->simple = !f->it.need_fd && !f->it.need_cache;
	for (i = 0; i < f->it.n; i++) {
		enum imap_fi_type t = f->it.v[i].type;

		if (t != IMAP_FI_UID && t != IMAP_FI_FLAGS &&
		    t != IMAP_FI_SIZE && t != IMAP_FI_MODSEQ)
			f->simple = false;
	}
	return f;
}

/* ---- writing ---- */

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
		if (store_msg_open(s->base.d->store, s->sel->mb.id, uid, &fd) !=
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
	if (f->it.need_fd && f->hdr_only && store_msg_header_get(s->base.d->store,
	    s->sel->mb.id, uid, &f->hdr) == STORE_OK) {
		size_t slot = f->pos % PREFETCH;

		f->hdr_loaded = true;
		f->hdr_size = f->hdr.len;
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
		if (store_msg_cache_get(s->base.d->store, s->sel->mb.id, uid,
		    &f->cache) != STORE_OK) {
			msg_release(f);
			return -1;
		}
		f->have_cache = true;
	}
	return 0;
}

/* The next chunk of a streamed literal; false if the output is congested. */
static bool
stream_chunk(struct imap_session *s, struct imap_fetch *f)
{
	size_t want = f->stream_left > FETCH_CHUNK ? FETCH_CHUNK :
	    (size_t)f->stream_left;
	ssize_t r = pread(f->fd, f->chunk, want, (off_t)f->stream_off);

	if (r <= 0) {
		/* file shorter than the index says: pad, keep the literal
		   length promised to the client */
		memset(f->chunk, ' ', want);
		r = (ssize_t)want;
	}
	conn_write(s->base.c, f->chunk, (size_t)r);
	f->stream_off += (uint64_t)r;
	f->stream_left -= (uint64_t)r;
	if (f->stream_left == 0)
		f->k++;
	return !conn_is_congested(s->base.c);
}

/* Writes items of the current message from f->k on; false if it stopped
   because the output is congested. */
static bool
write_items(struct imap_session *s, struct imap_fetch *f)
{
	const struct imap_view_msg *m = &s->sel->msgs[f->idx[f->pos]];

	for (;;) {
		const struct imap_fetch_item *it;

		if (f->streaming)
			return false;       /* stream_done moves on */
		if (f->stream_left > 0) {
			if (!stream_chunk(s, f))
				return false;
			continue;
		}
		if (f->k >= f->it.n)
			break;
		it = &f->it.v[f->k];
		if (f->k > 0)
			buf_putc(&f->out, ' ');
		if (!handlers[it->type].write(s, f, m, it))
			continue;           /* a literal is being streamed */
		f->k++;
		/* many sections of one message: the same back-pressure */
		if (f->out.len >= OUT_FLUSH) {
			imap_send_buf(s, &f->out);
			if (conn_is_congested(s->base.c))
				return false;
		}
	}
	PUT_LIT(&f->out, ")\r\n");
	return true;
}

/* Opens the message at f->pos and starts its response; false if it is
   gone. */
static bool
msg_begin(struct imap_session *s, struct imap_fetch *f)
{
	const struct imap_view_msg *m = &s->sel->msgs[f->idx[f->pos]];
	struct buf *bp = &f->out;

	if (msg_open(s, f, m->uid) < 0)
		return false;
	PUT_LIT(bp, "* ");
	buf_put_u64(bp, f->idx[f->pos] + 1);
	PUT_LIT(bp, " FETCH (");
	if (f->seen_changed != NULL && f->seen_changed[f->pos] &&
	    !f->has_flags) {
		buf_puts(bp, "FLAGS ");
		imap_buf_flags(bp, s->sel, m);
		if (!f->has_modseq)
			imap_buf_modseq(bp, s, m->modseq);
		if (f->it.n)
			buf_putc(bp, ' ');
	}
	f->in_msg = true;
	f->k = 0;
	return true;
}

#define PUT_AT(p, s) (memcpy((p), (s), sizeof(s) - 1), (p) + sizeof(s) - 1)

/* The reply of the message at f->pos when every item is a number or the
   flags (f->simple): the same text write_items would make, written into
   one stretch reserved for its longest form (a FETCH 1:* (FLAGS) of a
   large mailbox spends its time here). */
static void
write_simple(struct imap_session *s, struct imap_fetch *f)
{
	const struct imap_view_msg *m = &s->sel->msgs[f->idx[f->pos]];
	const char *fl = "";
	size_t k, fllen = 0;
	char *p;

	if (f->has_flags)
		flags_text(f, s->sel, m, &fl, &fllen);
	/* "* n FETCH (" and ")\r\n"; per item its name, a number of up to 20
	   digits with parentheses, or the flags, and a space */
	buf_reserve(&f->out, 48 + f->it.n * (40 + fllen));
	p = f->out.data + f->out.len;
	p = PUT_AT(p, "* ");
	p = u64_dec_at(p, f->idx[f->pos] + 1);
	p = PUT_AT(p, " FETCH (");
	for (k = 0; k < f->it.n; k++) {
		if (k > 0)
			*p++ = ' ';
		switch (f->it.v[k].type) {
		case IMAP_FI_UID:
			p = u64_dec_at(PUT_AT(p, "UID "), m->uid);
			break;
		case IMAP_FI_FLAGS:
			p = PUT_AT(p, "FLAGS ");
			memcpy(p, fl, fllen);
			p += fllen;
			break;
		case IMAP_FI_SIZE:
			p = u64_dec_at(PUT_AT(p, "RFC822.SIZE "), m->size);
			break;
		default:        /* IMAP_FI_MODSEQ */
			p = u64_dec_at(PUT_AT(p, "MODSEQ ("), m->modseq);
			*p++ = ')';
			break;
		}
	}
	p = PUT_AT(p, ")\r\n");
	*p = '\0';
	f->out.len = (size_t)(p - f->out.data);
}

/* Replies of many small messages are gathered in f->out and written to
   the connection OUT_FLUSH bytes at a time; a literal streamed from the
   file flushes them first (write_section). */
static bool
fetch_loop(struct imap_session *s, struct imap_fetch *f)
{
	/* \Seen set by this FETCH is reported by msg_begin */
	bool simple = f->simple && f->seen_changed == NULL && !f->in_msg;

	while (f->pos < f->n) {
		if (simple) {
			write_simple(s, f);
			goto next;
		}
		if (!f->in_msg && !msg_begin(s, f)) {
			f->failed = true;
			f->pos++;
			continue;
		}
		if (!write_items(s, f))
			return false;
		msg_release(f);
		f->in_msg = false;
next:
		f->pos++;
		if (f->out.len >= OUT_FLUSH) {
			imap_send_buf(s, &f->out);
			if (conn_is_congested(s->base.c))
				return false;
		}
	}
	return true;
}

bool
imap_fetch_run(struct imap_session *s, struct imap_fetch *f)
{
	bool done = fetch_loop(s, f);

	imap_send_buf(s, &f->out);
	return done;
}
