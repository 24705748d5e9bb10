/* store_msg: message records (list, get, open, cache), flag changes,
   copy/move and expunge. Every change is one LMDB write transaction; file
   renames and links happen inside it (serialized by the writer lock). A
   deferred flag change renames nothing: the record remembers the letters
   its file's name still has, and store_names.c catches the names up. New
   links and removed files are staged beside cur/ until the commit decides
   (store_pending.c), so a crash never loses mail, never leaves a file the
   index does not know in cur/, and never blocks a later operation. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mime.h"
#include "store_private.h"

int
msg_rec_decode(const MDB_val *v, struct msg_rec *m)
{
	const unsigned char *p = v->mv_data;
	size_t rest;

	if (v->mv_size < sizeof(m->h))
		return -1;
	memcpy(&m->h, p, sizeof(m->h));
	if (m->h.base_len > MSG_BASE_MAX ||
	    v->mv_size < sizeof(m->h) + m->h.base_len)
		return -1;
	memcpy(m->base, p + sizeof(m->h), m->h.base_len);
	m->base[m->h.base_len] = '\0';
	rest = v->mv_size - sizeof(m->h) - m->h.base_len;
	p += sizeof(m->h) + m->h.base_len;
	m->behind = false;
	m->disk_flags = m->h.flags;
	m->disk_keywords = m->h.keywords;
	if (rest == 0)
		return 0;
	if (rest != MSG_DISK_LEN || p[0] != MSG_DISK_V1)
		return -1;
	memcpy(&m->disk_flags, p + 1, 4);
	memcpy(&m->disk_keywords, p + 5, 4);
	m->behind = true;
	return 0;
}

void
msg_rec_encode(const struct msg_rec *m, struct buf *out)
{
	struct msg_head h = m->h;
	unsigned char t[MSG_DISK_LEN];

	h.base_len = (uint32_t)strlen(m->base);
	buf_append(out, &h, sizeof(h));
	buf_append(out, m->base, h.base_len);
	if (!m->behind || (m->disk_flags == h.flags &&
	    m->disk_keywords == h.keywords))
		return;
	t[0] = MSG_DISK_V1;
	memcpy(t + 1, &m->disk_flags, 4);
	memcpy(t + 5, &m->disk_keywords, 4);
	buf_append(out, t, sizeof(t));
}

void
msg_set_behind(const struct msg_rec *m, struct msg_rec *nm)
{
	if (!m->behind) {
		nm->disk_flags = m->h.flags;
		nm->disk_keywords = m->h.keywords;
	}
	nm->behind = nm->disk_flags != nm->h.flags ||
	    nm->disk_keywords != nm->h.keywords;
}

void
msg_letters(uint32_t flags, uint32_t keywords, char *buf)
{
	char *p = buf;

	/* Maildir wants the info letters in ASCII order. */
	if (flags & STORE_F_DRAFT)
		*p++ = 'D';
	if (flags & STORE_F_FLAGGED)
		*p++ = 'F';
	if (flags & STORE_F_ANSWERED)
		*p++ = 'R';
	if (flags & STORE_F_SEEN)
		*p++ = 'S';
	if (flags & STORE_F_DELETED)
		*p++ = 'T';
	for (int i = 0; i < STORE_MAX_KEYWORDS; i++)
		if (keywords & (1u << i))
			*p++ = (char)('a' + i);
	*p = '\0';
}

void
msg_file_name(const struct mbox_rec *mb, const struct msg_rec *m, char *buf,
    size_t size)
{
	char letters[40];

	(void)mb;
	if (m->behind)
		msg_letters(m->disk_flags, m->disk_keywords, letters);
	else
		msg_letters(m->h.flags, m->h.keywords, letters);
	snprintf(buf, size, "%s:2,%s", m->base, letters);
}

void
msg_want_name(const struct msg_rec *m, char *buf, size_t size)
{
	char letters[40];

	msg_letters(m->h.flags, m->h.keywords, letters);
	snprintf(buf, size, "%s:2,%s", m->base, letters);
}

static int
scan_for_base(const char *dir, const char *base, char *buf, size_t size)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t bl = strlen(base);
	int ret = -1;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, base, bl) == 0 &&
		    (de->d_name[bl] == ':' || de->d_name[bl] == '\0')) {
			snprintf(buf, size, "%s/%s", dir, de->d_name);
			ret = 0;
			break;
		}
	}
	closedir(d);
	return ret;
}

int
msg_find_path(const char *dir, const struct mbox_rec *mb,
    const struct msg_rec *m, char *buf, size_t size)
{
	char name[512], sub[4200];

	msg_file_name(mb, m, name, sizeof(name));
	snprintf(buf, size, "%s/cur/%s", dir, name);
	if (access(buf, F_OK) == 0)
		return 0;
	/* Staged: linked by a commit that has not moved it into cur/ yet,
	   or taken away by a transaction still in flight (or by one a crash
	   ended, until the next write settles the mailbox). */
	pending_path(dir, STORE_ADDING_DIR, name, buf, size);
	if (access(buf, F_OK) == 0)
		return 0;
	pending_path(dir, STORE_REMOVING_DIR, name, buf, size);
	if (access(buf, F_OK) == 0)
		return 0;
	/* A name behind its flags: a catch-up may have renamed it since the
	   record was read. */
	if (m->behind) {
		msg_want_name(m, name, sizeof(name));
		snprintf(buf, size, "%s/cur/%s", dir, name);
		if (access(buf, F_OK) == 0)
			return 0;
	}
	/* A crash between a rename and its commit leaves other letters. */
	static const char *const subs[] = { "cur", "new", STORE_ADDING_DIR,
	    STORE_REMOVING_DIR };
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]);
		if (scan_for_base(sub, m->base, buf, size) == 0)
			return 0;
	}
	return -1;
}

void
mbox_counters_add(struct mbox_rec *mb, const struct msg_rec *m, int sign)
{
	uint32_t d = sign > 0 ? 1 : (uint32_t)-1;

	mb->messages += d;
	if (!(m->h.flags & STORE_F_SEEN))
		mb->unseen += d;
	if (m->h.flags & STORE_F_DELETED)
		mb->deleted += d;
	if (m->uid >= mb->first_recent_uid)
		mb->recent += d;
	if (sign > 0)
		mb->size += m->h.size;
	else
		mb->size = mb->size > m->h.size ? mb->size - m->h.size : 0;
}

static void
msg_to_public(const struct msg_rec *m, struct store_msg *out)
{
	out->uid = m->uid;
	out->flags = m->h.flags;
	out->keywords = m->h.keywords;
	out->modseq = m->h.modseq;
	out->size = m->h.size;
	out->internaldate = m->h.internaldate;
	out->internal_tz = m->h.internal_tz;
}

enum store_err
msg_rec_get(struct store *st, MDB_txn *txn, uint32_t mbox, uint32_t uid,
    struct msg_rec *m)
{
	unsigned char key[8];
	MDB_val k = { 8, key }, v;
	int rc;

	msg_key(key, mbox, uid);
	rc = mdb_get(txn, st->db_msgs, &k, &v);
	if (rc == MDB_NOTFOUND)
		return store_set_error(STORE_ENOTFOUND, "no such message");
	if (rc != 0)
		return store_mdb_err(rc, "msg get");
	if (msg_rec_decode(&v, m) < 0)
		return store_set_error(STORE_ECORRUPT, "bad message record");
	m->uid = uid;
	return STORE_OK;
}

enum store_err
msg_rec_put(struct store *st, MDB_txn *txn, uint32_t mbox,
    const struct msg_rec *m)
{
	unsigned char key[8];
	struct buf b;
	int rc;

	enum store_err e;
	MDB_val ov;

	msg_key(key, mbox, m->uid);
	/* Every record write passes here, so the MODSEQ index is kept here:
	   the old entry goes, the new one comes. */
	MDB_val k = { 8, key };
	rc = mdb_get(txn, st->db_msgs, &k, &ov);
	if (rc == 0 && ov.mv_size >= sizeof(struct msg_head)) {
		struct msg_head oh;
		memcpy(&oh, ov.mv_data, sizeof(oh));
		if (oh.modseq != m->h.modseq &&
		    (e = modseq_idx_del(st, txn, mbox, oh.modseq, m->uid)))
			return e;
	} else if (rc != 0 && rc != MDB_NOTFOUND) {
		return store_mdb_err(rc, "msg get");
	}
	if ((e = modseq_idx_put(st, txn, mbox, m->h.modseq, m->uid)))
		return e;
	buf_init(&b);
	msg_rec_encode(m, &b);
	MDB_val v = { b.len, b.data };
	rc = mdb_put(txn, st->db_msgs, &k, &v, 0);
	buf_free(&b);
	return rc ? store_mdb_err(rc, "msg put") : STORE_OK;
}

static void
head_to_public(uint32_t uid, const struct msg_head *h, struct store_msg *out)
{
	out->uid = uid;
	out->flags = h->flags;
	out->keywords = h->keywords;
	out->modseq = h->modseq;
	out->size = h->size;
	out->internaldate = h->internaldate;
	out->internal_tz = h->internal_tz;
}

/* store_msg_list through the MODSEQ index: cost proportional to the
   changes. STORE_ENOTFOUND if there are more than max (scan instead). */
static enum store_err
list_changed(struct store *st, MDB_txn *txn, MDB_cursor *c, uint32_t mbox_id,
    uint32_t min_uid, uint64_t min_modseq, size_t max,
    struct store_msg **msgs_r, size_t *n_r)
{
	struct store_msg *msgs;
	uint32_t *uids;
	size_t nu, n = 0;
	unsigned char key[8];
	MDB_val k, v;

	if (modseq_idx_changed(st, txn, mbox_id, min_modseq, max, &uids,
	    &nu) < 0)
		return STORE_ENOTFOUND;
	if (nu == 0)
		return STORE_OK;
	msgs = xmalloc(nu * sizeof(*msgs));
	for (size_t i = 0; i < nu; i++) {
		struct msg_head h;
		if (uids[i] < min_uid)
			continue;
		msg_key(key, mbox_id, uids[i]);
		k.mv_size = 8;
		k.mv_data = key;
		if (mdb_cursor_get(c, &k, &v, MDB_SET_KEY) != 0 ||
		    v.mv_size < sizeof(h))
			continue;
		memcpy(&h, v.mv_data, sizeof(h));
		if (h.modseq <= min_modseq)
			continue;
		head_to_public(uids[i], &h, &msgs[n++]);
	}
	free(uids);
	if (n == 0) {
		free(msgs);
		msgs = NULL;
	}
	*msgs_r = msgs;
	*n_r = n;
	return STORE_OK;
}

enum store_err
store_msg_list(struct store *st, uint32_t mbox_id, uint32_t min_uid,
    uint64_t min_modseq, struct store_msg **msgs_r, size_t *n_r,
    struct store_mailbox *mb_r)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	struct mbox_rec r;
	unsigned char key[8];
	struct store_msg *msgs = NULL;
	size_t n = 0, cap = 0;
	enum store_err e;

	*msgs_r = NULL;
	*n_r = 0;
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if ((e = mbox_rec_get(st, txn, mbox_id, &r)) != STORE_OK)
		goto out;
	if (mb_r != NULL)
		mbox_to_public(st, txn, &r, mb_r);
	if (mdb_cursor_open(txn, st->db_msgs, &c) != 0) {
		e = store_set_error(STORE_EINTERNAL, "cursor");
		goto out;
	}
	if (min_modseq > 0) {
		e = list_changed(st, txn, c, mbox_id, min_uid, min_modseq,
		    r.messages / 8 + 16, msgs_r, n_r);
		if (e != STORE_ENOTFOUND) {
			mdb_cursor_close(c);
			goto out;
		}
		e = STORE_OK;   /* many changes: scan */
	}
	cap = r.messages < 16 ? 16 : r.messages;
	msgs = xmalloc(cap * sizeof(*msgs));
	msg_key(key, mbox_id, min_uid);
	k.mv_size = 8;
	k.mv_data = key;
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct msg_head h;
		if (k.mv_size != 8 || memcmp(k.mv_data, key, 4) != 0)
			break;
		if (v.mv_size < sizeof(h))
			continue;
		/* Only the fixed head: this loop is the FLAGS-fetch hot path. */
		memcpy(&h, v.mv_data, sizeof(h));
		if (h.modseq <= min_modseq)
			continue;
		if (n == cap) {
			cap *= 2;
			msgs = xrealloc(msgs, cap * sizeof(*msgs));
		}
		head_to_public(be32_get((unsigned char *)k.mv_data + 4), &h,
		    &msgs[n++]);
	}
	mdb_cursor_close(c);
	if (n == 0) {
		free(msgs);
		msgs = NULL;
	}
	*msgs_r = msgs;
	*n_r = n;
out:
	mdb_txn_abort(txn);
	return e;
}

enum store_err
store_msg_get(struct store *st, uint32_t mbox_id, uint32_t uid,
    struct store_msg *msg_r)
{
	MDB_txn *txn;
	struct msg_rec m;
	enum store_err e;

	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	e = msg_rec_get(st, txn, mbox_id, uid, &m);
	mdb_txn_abort(txn);
	if (e == STORE_OK && msg_r != NULL)
		msg_to_public(&m, msg_r);
	return e;
}

enum store_err
store_msg_open(struct store *st, uint32_t mbox_id, uint32_t uid, int *fd_r)
{
	MDB_txn *txn;
	struct msg_rec m;
	struct mbox_rec r;
	struct dirfd_ent *de = dirfd_ref(st, mbox_id);
	char dir[4096], path[4200], name[512];
	bool have_dir = false, missed = false;
	enum store_err e;
	int fd;

	*fd_r = -1;
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK) {
		dirfd_unref(st, de);
		return e;
	}
	/* With the cur/ fd cached, the message record is all we need. */
	e = msg_rec_get(st, txn, mbox_id, uid, &m);
	if (e == STORE_OK && de == NULL &&
	    (e = mbox_rec_get(st, txn, mbox_id, &r)) == STORE_OK &&
	    (e = mbox_dir(st, txn, &r, dir, sizeof(dir))) == STORE_OK) {
		have_dir = true;
		de = dirfd_add(st, mbox_id, dir);
	}
	mdb_txn_abort(txn);
	if (e != STORE_OK) {
		dirfd_unref(st, de);
		return e;
	}
	if (de != NULL) {
		msg_file_name(NULL, &m, name, sizeof(name));
		fd = openat(dirfd_fd(de), name, O_RDONLY | O_CLOEXEC);
		/* Behind its flags: renamed by a catch-up since the read? */
		if (fd < 0 && errno == ENOENT && m.behind) {
			msg_want_name(&m, name, sizeof(name));
			fd = openat(dirfd_fd(de), name, O_RDONLY | O_CLOEXEC);
		}
		dirfd_unref(st, de);
		if (fd >= 0) {
			*fd_r = fd;
			return STORE_OK;
		}
		if (errno != ENOENT)
			return store_errno_err("open message");
		missed = true;
	}
	/* Renamed by a concurrent flag change, or left with other letters
	   by a crash: look it up by path (and scan) a few times. */
	if (!have_dir) {
		if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
			return e;
		if ((e = mbox_rec_get(st, txn, mbox_id, &r)) == STORE_OK)
			e = mbox_dir(st, txn, &r, dir, sizeof(dir));
		mdb_txn_abort(txn);
		if (e != STORE_OK)
			return e;
	}
	for (int tries = 0; tries < 5; tries++) {
		if (msg_find_path(dir, &r, &m, path, sizeof(path)) < 0)
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			/* The cached directory may be a removed one (a maildir
			   restored from a backup): open it afresh. */
			if (missed)
				dirfd_unref(st, dirfd_add(st, mbox_id, dir));
			*fd_r = fd;
			return STORE_OK;
		}
		if (errno != ENOENT)
			return store_errno_err("open message");
	}
	/* Expunged meanwhile (files go after the commit)? */
	if (store_msg_get(st, mbox_id, uid, NULL) == STORE_ENOTFOUND)
		return store_set_error(STORE_ENOTFOUND, "message expunged");
	return store_set_error(STORE_ECORRUPT, "message file of uid %u missing",
	    uid);
}

/* ---- cache ---- */

static void
put_field(struct buf *out, const void *p, size_t len)
{
	uint32_t l = (uint32_t)len;

	buf_append(out, &l, sizeof(l));
	if (len > 0)
		buf_append(out, p, len);
}

/* Fields: envelope, bodystructure, body, parts, then the header if it is
   cached. Entries written before the header existed end after parts. */
void
cache_encode(const struct store_msg_cache *c, const char *hdr,
    size_t hdr_len, struct buf *out)
{
	put_field(out, c->envelope, c->envelope ? strlen(c->envelope) : 0);
	put_field(out, c->bodystructure,
	    c->bodystructure ? strlen(c->bodystructure) : 0);
	put_field(out, c->body, c->body ? strlen(c->body) : 0);
	put_field(out, c->parts, c->parts_len);
	if (hdr != NULL && hdr_len <= STORE_HEADER_CACHE_MAX)
		put_field(out, hdr, hdr_len);
}

void
cache_build(int fd, uint64_t size, struct buf *out)
{
	void *map = NULL;

	if (fd >= 0 && size > 0) {
		map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED)
			map = NULL;
	}
	/* Not cached (NULL, size > 0) if the file could not be mapped. */
	cache_build_mem(map, size, out);
	if (map != NULL)
		munmap(map, size);
}

void
cache_build_mem(const char *msg, uint64_t size, struct buf *out)
{
	struct mime_info info;
	struct store_msg_cache c;

	memset(&info, 0, sizeof(info));
	mime_parse(msg ? msg : "", msg ? size : 0, &info);
	c.envelope = info.envelope.data;
	c.bodystructure = info.bodystructure.data;
	c.body = info.body.data;
	c.parts = (struct store_part_table *)info.parts.data;
	c.parts_len = info.parts.len;
	buf_reset(out);
	/* The header too, so that header fetches need not open the file
	   (not cached if the file could not be mapped). */
	cache_encode(&c, msg ? msg : (size == 0 ? "" : NULL),
	    msg ? msg_header_len(msg, size) : 0, out);
	mime_info_free(&info);
}

size_t
msg_header_len(const char *msg, size_t len)
{
	const char *e;

	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n')
		return 2;
	e = memmem(msg, len, "\r\n\r\n", 4);
	return e != NULL ? (size_t)(e - msg) + 4 : len;
}

static int
get_field(const unsigned char **p, const unsigned char *end, char **s_r,
    size_t *len_r)
{
	uint32_t l;

	if ((size_t)(end - *p) < sizeof(l))
		return -1;
	memcpy(&l, *p, sizeof(l));
	*p += sizeof(l);
	if ((size_t)(end - *p) < l)
		return -1;
	*s_r = xmalloc(l + 1);
	memcpy(*s_r, *p, l);
	(*s_r)[l] = '\0';
	*p += l;
	if (len_r != NULL)
		*len_r = l;
	return 0;
}

/* Opens a read txn and finds the cache record of (mbox_id, uid). On
 * STORE_OK *txn_r is open and *v_r points into it: the caller aborts it. */
static enum store_err
cache_lookup(struct store *st, uint32_t mbox_id, uint32_t uid,
    MDB_txn **txn_r, MDB_val *v_r)
{
	unsigned char key[8];
	MDB_val k = { 8, key };
	enum store_err e;
	int rc;

	if ((e = store_txn_begin(st, false, txn_r)) != STORE_OK)
		return e;
	msg_key(key, mbox_id, uid);
	rc = mdb_get(*txn_r, st->db_cache, &k, v_r);
	if (rc != 0) {
		mdb_txn_abort(*txn_r);
		*txn_r = NULL;
		if (rc == MDB_NOTFOUND)
			return store_set_error(STORE_ENOTFOUND, "no cache entry");
		return store_mdb_err(rc, "cache get");
	}
	return STORE_OK;
}

enum store_err
store_msg_cache_get(struct store *st, uint32_t mbox_id, uint32_t uid,
    struct store_msg_cache *cache_r)
{
	MDB_txn *txn;
	MDB_val v;
	enum store_err e;

	memset(cache_r, 0, sizeof(*cache_r));
	if ((e = cache_lookup(st, mbox_id, uid, &txn, &v)) != STORE_OK)
		return e;
	const unsigned char *p = v.mv_data, *end = p + v.mv_size;
	char *parts = NULL;
	if (get_field(&p, end, &cache_r->envelope, NULL) < 0 ||
	    get_field(&p, end, &cache_r->bodystructure, NULL) < 0 ||
	    get_field(&p, end, &cache_r->body, NULL) < 0 ||
	    get_field(&p, end, &parts, &cache_r->parts_len) < 0) {
		mdb_txn_abort(txn);
		store_msg_cache_free(cache_r);
		return store_set_error(STORE_ECORRUPT, "bad cache entry");
	}
	cache_r->parts = (struct store_part_table *)parts;
	mdb_txn_abort(txn);
	return STORE_OK;
}

/* Skips one length-prefixed field; -1 if it does not fit. */
static int
skip_field(const unsigned char **p, const unsigned char *end)
{
	uint32_t l;

	if ((size_t)(end - *p) < sizeof(l))
		return -1;
	memcpy(&l, *p, sizeof(l));
	*p += sizeof(l);
	if ((size_t)(end - *p) < l)
		return -1;
	*p += l;
	return 0;
}

enum store_err
store_msg_header_get(struct store *st, uint32_t mbox_id, uint32_t uid,
    struct buf *out)
{
	MDB_txn *txn;
	MDB_val v;
	enum store_err e;
	uint32_t l;

	buf_reset(out);
	if ((e = cache_lookup(st, mbox_id, uid, &txn, &v)) != STORE_OK)
		return e;
	const unsigned char *p = v.mv_data, *end = p + v.mv_size;
	e = STORE_OK;
	for (int i = 0; i < 4 && e == STORE_OK; i++)
		if (skip_field(&p, end) < 0)
			e = store_set_error(STORE_ECORRUPT, "bad cache entry");
	if (e == STORE_OK && p == end) {
		e = store_set_error(STORE_ENOTFOUND, "header not cached");
	} else if (e == STORE_OK) {
		const unsigned char *h = p;
		if (skip_field(&p, end) < 0) {
			e = store_set_error(STORE_ECORRUPT, "bad cache entry");
		} else {
			memcpy(&l, h, sizeof(l));
			buf_append(out, h + sizeof(l), l);
		}
	}
	mdb_txn_abort(txn);
	return e;
}

void
store_msg_cache_free(struct store_msg_cache *cache)
{
	free(cache->envelope);
	free(cache->bodystructure);
	free(cache->body);
	free(cache->parts);
	memset(cache, 0, sizeof(*cache));
}

/* ---- flags ---- */

void
rename_log_add(struct rename_log *l, const char *from, const char *to)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->from = xrealloc(l->from, l->cap * sizeof(char *));
		l->to = xrealloc(l->to, l->cap * sizeof(char *));
	}
	l->from[l->n] = xstrdup(from);
	l->to[l->n++] = xstrdup(to);
}

/* Undo: a failed change leaves the names the index still has. */
void
rename_log_free(struct rename_log *l, bool undo)
{
	for (size_t i = l->n; i-- > 0;) {
		if (undo)
			(void)renameat(l->dfd, l->to[i], l->dfd, l->from[i]);
		free(l->from[i]);
		free(l->to[i]);
	}
	free(l->from);
	free(l->to);
	l->from = l->to = NULL;
	l->n = l->cap = 0;
}

/* Gives m's file (the name it has on disk) the name nname. The name the
   index holds is renamed at once, relative to the cur/ fd: no path walk
   and no existence check per message, which in a cur/ of 100,000 entries
   is most of a bulk rename's time. Only when that name is not there
   (staged, left with other letters by a crash, or the cached fd is stale)
   is the file searched for by path. A file found nowhere is left alone. */
enum store_err
msg_rename_to(const char *dir, const struct mbox_rec *mb,
    const struct msg_rec *m, const char *nname, struct rename_log *l)
{
	char from[4200], to[4200], oname[512];

	msg_file_name(mb, m, oname, sizeof(oname));
	if (strcmp(oname, nname) == 0)
		return STORE_OK;
	if (l->dfd >= 0) {
		if (renameat(l->dfd, oname, l->dfd, nname) == 0) {
			rename_log_add(l, oname, nname);
			return STORE_OK;
		}
		if (errno != ENOENT)
			return store_errno_err("rename message");
	}
	if (msg_find_path(dir, mb, m, from, sizeof(from)) < 0)
		return STORE_OK;
	snprintf(to, sizeof(to), "%s/cur/%s", dir, nname);
	if (strcmp(from, to) == 0)
		return STORE_OK;
	if (rename(from, to) < 0)
		return store_errno_err("rename message");
	rename_log_add(l, from, to);
	return STORE_OK;
}

/* One flag change of store_msg_set_flags: the new flags of m by op. */
static void
flags_apply(enum store_flag_op op, uint32_t flags, uint32_t kbits,
    struct msg_rec *nm)
{
	switch (op) {
	case STORE_FLAGS_SET:
		nm->h.flags = flags;
		nm->h.keywords = kbits;
		break;
	case STORE_FLAGS_ADD:
		nm->h.flags |= flags;
		nm->h.keywords |= kbits;
		break;
	case STORE_FLAGS_REMOVE:
		nm->h.flags &= ~flags;
		nm->h.keywords &= ~kbits;
		break;
	}
}

struct flags_txn {
	struct store *st;
	MDB_txn *txn;
	uint32_t mbox_id;
	struct mbox_rec mb;
	char dir[4096];
	uint64_t modseq;        /* of this change, 0 until the first one */
	bool any;
	bool deferred;          /* index only: the names fall behind */
	struct rename_log renamed;
};

/* The file name after a change from m to nm: renamed now, or (deferred)
   left as it is and recorded in nm as behind. */
static enum store_err
flags_name(struct flags_txn *t, const struct msg_rec *m, struct msg_rec *nm)
{
	char nname[512];
	enum store_err e;

	if (t->deferred) {
		msg_set_behind(m, nm);
		return STORE_OK;
	}
	msg_want_name(nm, nname, sizeof(nname));
	if ((e = msg_rename_to(t->dir, &t->mb, m, nname, &t->renamed)) !=
	    STORE_OK)
		return e;
	nm->behind = false;
	return STORE_OK;
}

static enum store_err
flags_one(struct flags_txn *t, enum store_flag_op op, uint32_t flags,
    uint32_t kbits, uint64_t unchangedsince, struct store_flag_change *ch)
{
	struct msg_rec m, nm;
	enum store_err e;

	ch->exists = ch->changed = ch->conflict = false;
	ch->flags = ch->keywords = 0;
	ch->modseq = 0;
	e = msg_rec_get(t->st, t->txn, t->mbox_id, ch->uid, &m);
	if (e == STORE_ENOTFOUND)
		return STORE_OK;
	if (e != STORE_OK)
		return e;
	ch->exists = true;
	nm = m;
	flags_apply(op, flags, kbits, &nm);
	if (unchangedsince != 0 && m.h.modseq > unchangedsince) {
		ch->conflict = true;
		nm = m;
	} else if (nm.h.flags != m.h.flags || nm.h.keywords != m.h.keywords) {
		if (t->modseq == 0 && (e = mbox_next_modseq(t->st, t->txn,
		    &t->mb, t->dir, &t->modseq)) != STORE_OK)
			return e;
		nm.h.modseq = t->modseq;
		if ((e = flags_name(t, &m, &nm)) != STORE_OK)
			return e;
		mbox_counters_add(&t->mb, &m, -1);
		mbox_counters_add(&t->mb, &nm, 1);
		if ((e = msg_rec_put(t->st, t->txn, t->mbox_id, &nm)) !=
		    STORE_OK)
			return e;
		ch->changed = true;
		t->any = true;
	}
	ch->flags = nm.h.flags;
	ch->keywords = nm.h.keywords;
	ch->modseq = nm.h.modseq;
	return STORE_OK;
}

/* The mailbox's record, directory and cur/ fd for a flag change. */
static enum store_err
flags_begin(struct flags_txn *t, struct dirfd_ent **de_r)
{
	enum store_err e;

	if ((e = mbox_rec_get(t->st, t->txn, t->mbox_id, &t->mb)) !=
	    STORE_OK ||
	    (e = mbox_dir(t->st, t->txn, &t->mb, t->dir, sizeof(t->dir))) !=
	    STORE_OK ||
	    (e = pending_settle(t->st, t->txn, &t->mb, t->dir)) != STORE_OK)
		return e;
	if ((*de_r = dirfd_ref(t->st, t->mbox_id)) == NULL)
		*de_r = dirfd_add(t->st, t->mbox_id, t->dir);
	t->renamed.dfd = *de_r != NULL ? dirfd_fd(*de_r) : -1;
	return STORE_OK;
}

static enum store_err
set_flags(struct store *st, uint32_t mbox_id, enum store_flag_op op,
    uint32_t flags, const char *const *keywords, size_t nkeywords,
    uint64_t unchangedsince, struct store_flag_change *ch, size_t n,
    bool deferred)
{
	struct flags_txn t = { .st = st, .mbox_id = mbox_id,
	    .deferred = deferred };
	struct dirfd_ent *de = NULL;
	uint32_t kbits = 0;
	bool added = false;
	enum store_err e;

	t.renamed.dfd = -1;
	flags &= STORE_F_SEEN | STORE_F_ANSWERED | STORE_F_FLAGGED |
	    STORE_F_DELETED | STORE_F_DRAFT;
	if ((e = store_txn_begin(st, true, &t.txn)) != STORE_OK)
		return e;
	if ((e = flags_begin(&t, &de)) != STORE_OK ||
	    (e = mbox_keywords_bits(&t.mb, keywords, nkeywords,
	    op != STORE_FLAGS_REMOVE, &kbits, &added)) != STORE_OK)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if ((e = flags_one(&t, op, flags, kbits, unchangedsince,
		    &ch[i])) != STORE_OK)
			goto fail;
	if (!t.any && !added) {
		mdb_txn_abort(t.txn);
		dirfd_unref(st, de);
		return STORE_OK;
	}
	if (added && mbox_file_write(t.dir, &t.mb) < 0) {
		e = store_errno_err("mailbox file");
		goto fail;
	}
	if ((e = mbox_rec_put(st, t.txn, &t.mb)) != STORE_OK ||
	    (t.deferred && t.any &&
	    (e = names_expect(st, t.txn, mbox_id)) != STORE_OK))
		goto fail;
	if ((e = store_txn_commit(t.txn)) != STORE_OK) {
		rename_log_free(&t.renamed, true);
		dirfd_unref(st, de);
		return e;
	}
	rename_log_free(&t.renamed, false);
	dirfd_unref(st, de);
	notify_touch(st, mbox_id);
	return STORE_OK;
fail:
	mdb_txn_abort(t.txn);
	rename_log_free(&t.renamed, true);
	dirfd_unref(st, de);
	return e;
}

enum store_err
store_msg_set_flags(struct store *st, uint32_t mbox_id, enum store_flag_op op,
    uint32_t flags, const char *const *keywords, size_t nkeywords,
    uint64_t unchangedsince, struct store_flag_change *ch, size_t n)
{
	return set_flags(st, mbox_id, op, flags, keywords, nkeywords,
	    unchangedsince, ch, n, false);
}

enum store_err
store_msg_set_flags_deferred(struct store *st, uint32_t mbox_id,
    enum store_flag_op op, uint32_t flags, const char *const *keywords,
    size_t nkeywords, uint64_t unchangedsince, struct store_flag_change *ch,
    size_t n)
{
	return set_flags(st, mbox_id, op, flags, keywords, nkeywords,
	    unchangedsince, ch, n, true);
}

/* ---- copy, move ---- */

static size_t
stem_len(const char *base)
{
	const char *s = strstr(base, ",S=");

	return s ? (size_t)(s - base) : strlen(base);
}

struct uid_idx { uint32_t uid; size_t i; };

static int
uid_idx_cmp(const void *a, const void *b)
{
	const struct uid_idx *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static enum store_err
cache_copy(struct store *st, MDB_txn *txn, uint32_t smbox, uint32_t suid,
    uint32_t dmbox, uint32_t duid)
{
	unsigned char sk[8], dk[8];
	MDB_val k = { 8, sk }, v, dkv = { 8, dk };
	struct buf b;
	int rc;

	msg_key(sk, smbox, suid);
	msg_key(dk, dmbox, duid);
	if (mdb_get(txn, st->db_cache, &k, &v) != 0)
		return STORE_OK;
	/* The value lives in the map and mdb_put may move it: copy first. */
	buf_init(&b);
	buf_append(&b, v.mv_data, v.mv_size);
	MDB_val nv = { b.len, b.data };
	rc = mdb_put(txn, st->db_cache, &dkv, &nv, 0);
	buf_free(&b);
	return rc ? store_mdb_err(rc, "cache put") : STORE_OK;
}

/* Removes one message from mb in txn: record, cache, tombstone. */
static enum store_err
msg_remove_txn(struct store *st, MDB_txn *txn, struct mbox_rec *mb,
    const struct msg_rec *m, uint64_t modseq)
{
	unsigned char key[8];
	MDB_val k = { 8, key }, tv = { sizeof(modseq), &modseq };
	int rc;

	msg_key(key, mb->id, m->uid);
	if ((rc = mdb_del(txn, st->db_msgs, &k, NULL)) != 0)
		return store_mdb_err(rc, "msg del");
	enum store_err e = modseq_idx_del(st, txn, mb->id, m->h.modseq, m->uid);
	if (e != STORE_OK)
		return e;
	mdb_del(txn, st->db_cache, &k, NULL);
	if ((rc = mdb_put(txn, st->db_tombs, &k, &tv, 0)) != 0)
		return store_mdb_err(rc, "tombstone put");
	mbox_counters_add(mb, m, -1);
	return STORE_OK;
}

enum store_err
store_msg_copy(struct store *st, uint32_t src_mbox, const uint32_t *uids,
    size_t n, uint32_t dst_mbox, bool move, uint32_t *dst_uids_r,
    uint32_t *dst_uidvalidity_r)
{
	MDB_txn *txn;
	struct mbox_rec src, dst_store, *dst;
	struct user_rec su, du_store, *du;
	char sdir[4096], ddir[4096];
	struct uid_idx *order = NULL;
	struct pending_list created = { 0 }, removed = { 0 };
	uint64_t dmodseq = 0, smodseq = 0, total = 0;
	bool added = false;
	enum store_err e;

	for (size_t i = 0; i < n; i++)
		dst_uids_r[i] = 0;
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if ((e = mbox_rec_get(st, txn, src_mbox, &src)) != STORE_OK)
		goto fail;
	dst = &dst_store;
	if (dst_mbox == src_mbox)
		dst = &src;
	else if ((e = mbox_rec_get(st, txn, dst_mbox, dst)) != STORE_OK)
		goto fail;
	if ((e = user_rec_get(st, txn, src.user_id, &su)) != STORE_OK)
		goto fail;
	du = &du_store;
	if (dst->user_id == src.user_id)
		du = &su;
	else if ((e = user_rec_get(st, txn, dst->user_id, du)) != STORE_OK)
		goto fail;
	if ((e = mbox_dir(st, txn, &src, sdir, sizeof(sdir))) != STORE_OK ||
	    (e = mbox_dir(st, txn, dst, ddir, sizeof(ddir))) != STORE_OK)
		goto fail;
	/* What a crash left staged goes first: its files must not meet the
	   names (uids) this transaction hands out again. */
	if ((e = pending_settle(st, txn, &src, sdir)) != STORE_OK ||
	    (dst != &src && (e = pending_settle(st, txn, dst, ddir))))
		goto fail;
	order = xcalloc(n ? n : 1, sizeof(*order));
	for (size_t i = 0; i < n; i++) {
		struct msg_rec m;
		order[i].uid = uids[i];
		order[i].i = i;
		if (msg_rec_get(st, txn, src_mbox, uids[i], &m) == STORE_OK)
			total += m.h.size;
	}
	qsort(order, n, sizeof(*order), uid_idx_cmp);
	if (!(move && du == &su) && du->quota != 0 &&
	    du->used + total > du->quota) {
		e = store_set_error(STORE_EQUOTA, "over quota");
		goto fail;
	}
	for (size_t j = 0; j < n; j++) {
		struct msg_rec m, nm;
		char from[4200], to[4200], name[512];
		size_t i = order[j].i;
		if (j > 0 && order[j].uid == order[j - 1].uid)
			continue;
		e = msg_rec_get(st, txn, src_mbox, order[j].uid, &m);
		if (e == STORE_ENOTFOUND)
			continue;
		if (e != STORE_OK)
			goto fail;
		if (msg_find_path(sdir, &src, &m, from, sizeof(from)) < 0)
			continue;   /* the file is gone: nothing to copy */
		nm = m;
		nm.behind = false;      /* the new link has nm's letters */
		/* Keyword bits are per mailbox: map them by name. */
		nm.h.keywords = 0;
		for (uint32_t b = 0; b < src.nkeywords; b++) {
			const char *kw = src.keywords[b];
			uint32_t bits;
			if (!(m.h.keywords & (1u << b)))
				continue;
			if ((e = mbox_keywords_bits(dst, &kw, 1, true, &bits,
			    &added)) != STORE_OK)
				goto fail;
			nm.h.keywords |= bits;
		}
		if (dmodseq == 0 && (e = mbox_next_modseq(st, txn, dst, ddir,
		    &dmodseq)) != STORE_OK)
			goto fail;
		if ((e = mbox_next_uid(st, txn, dst, ddir, &nm.uid)) != STORE_OK)
			goto fail;
		nm.h.modseq = dmodseq;
		snprintf(nm.base, sizeof(nm.base), "%.*s,S=%llu,U=%u",
		    (int)stem_len(m.base), m.base,
		    (unsigned long long)m.h.size, nm.uid);
		msg_file_name(dst, &nm, name, sizeof(name));
		if (pending_add(from, ddir, name, to, sizeof(to)) < 0) {
			e = store_errno_err("link message");
			goto fail;
		}
		pending_list_add(&created, to, NULL);
		if ((e = msg_rec_put(st, txn, dst->id, &nm)) != STORE_OK ||
		    (e = cache_copy(st, txn, src_mbox, m.uid, dst->id,
		    nm.uid)) != STORE_OK)
			goto fail;
		mbox_counters_add(dst, &nm, 1);
		du->used += m.h.size;
		dst_uids_r[i] = nm.uid;
		if (move) {
			if (smodseq == 0 && (e = mbox_next_modseq(st, txn, &src,
			    sdir, &smodseq)) != STORE_OK)
				goto fail;
			if ((e = msg_remove_txn(st, txn, &src, &m, smodseq)))
				goto fail;
			su.used = su.used > m.h.size ? su.used - m.h.size : 0;
			char staged[4200];
			if (pending_remove(from, sdir, staged,
			    sizeof(staged)) < 0) {
				e = store_errno_err("stage message");
				goto fail;
			}
			pending_list_add(&removed, staged, from);
		}
	}
	if (added && mbox_file_write(ddir, dst) < 0) {
		e = store_errno_err("mailbox file");
		goto fail;
	}
	if (pending_sync(ddir, created.n > 0, false) < 0 ||
	    pending_sync(sdir, false, removed.n > 0) < 0) {
		e = store_errno_err("fsync dir");
		goto fail;
	}
	if ((e = mbox_rec_put(st, txn, &src)) != STORE_OK ||
	    (dst != &src && (e = mbox_rec_put(st, txn, dst)) != STORE_OK) ||
	    (e = user_rec_put(st, txn, &su)) != STORE_OK ||
	    (du != &su && (e = user_rec_put(st, txn, du)) != STORE_OK))
		goto fail;
	if (dst_uidvalidity_r != NULL)
		*dst_uidvalidity_r = dst->uidvalidity;
	if ((e = store_txn_commit(txn)) != STORE_OK) {
		pending_list_done(&removed, PENDING_UNDO);
		pending_list_done(&created, PENDING_UNDO);
		free(order);
		return e;
	}
	pending_list_done(&created, PENDING_PUBLISH);
	pending_list_done(&removed, PENDING_UNLINK);
	free(order);
	notify_touch(st, dst_mbox);
	if (move)
		notify_touch(st, src_mbox);
	return STORE_OK;
fail:
	mdb_txn_abort(txn);
	pending_list_done(&removed, PENDING_UNDO);
	pending_list_done(&created, PENDING_UNDO);
	free(order);
	for (size_t i = 0; i < n; i++)
		dst_uids_r[i] = 0;
	return e;
}

/* ---- expunge ---- */

static int
u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

enum store_err
store_msg_expunge(struct store *st, uint32_t mbox_id, const uint32_t *uids,
    size_t n, bool only_deleted, uint32_t **expunged_r, size_t *nexpunged_r)
{
	MDB_txn *txn;
	struct mbox_rec mb;
	struct user_rec u;
	char dir[4096];
	uint32_t *cand = NULL, *out = NULL;
	size_t ncand = 0, nout = 0;
	struct pending_list paths = { 0 };
	uint64_t modseq = 0;
	enum store_err e;

	*expunged_r = NULL;
	*nexpunged_r = 0;
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if ((e = mbox_rec_get(st, txn, mbox_id, &mb)) != STORE_OK ||
	    (e = user_rec_get(st, txn, mb.user_id, &u)) != STORE_OK ||
	    (e = mbox_dir(st, txn, &mb, dir, sizeof(dir))) != STORE_OK ||
	    (e = pending_settle(st, txn, &mb, dir)) != STORE_OK)
		goto fail;
	if (uids != NULL) {
		cand = xmalloc((n ? n : 1) * sizeof(*cand));
		memcpy(cand, uids, n * sizeof(*cand));
		ncand = n;
		qsort(cand, ncand, sizeof(*cand), u32_cmp);
	} else {
		MDB_cursor *c;
		MDB_val k, v;
		unsigned char prefix[4];
		be32_put(prefix, mbox_id);
		if (mdb_cursor_open(txn, st->db_msgs, &c) != 0) {
			e = store_set_error(STORE_EINTERNAL, "cursor");
			goto fail;
		}
		k.mv_size = 4;
		k.mv_data = prefix;
		for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
		    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			if (k.mv_size != 8 || memcmp(k.mv_data, prefix, 4) != 0)
				break;
			cand = xrealloc(cand, (ncand + 1) * sizeof(*cand));
			cand[ncand++] = be32_get((unsigned char *)k.mv_data + 4);
		}
		mdb_cursor_close(c);
	}
	out = xmalloc((ncand ? ncand : 1) * sizeof(*out));
	for (size_t i = 0; i < ncand; i++) {
		struct msg_rec m;
		char path[4200];
		if (i > 0 && cand[i] == cand[i - 1])
			continue;
		e = msg_rec_get(st, txn, mbox_id, cand[i], &m);
		if (e == STORE_ENOTFOUND)
			continue;
		if (e != STORE_OK)
			goto fail;
		if (only_deleted && !(m.h.flags & STORE_F_DELETED))
			continue;
		if (modseq == 0 && (e = mbox_next_modseq(st, txn, &mb, dir,
		    &modseq)) != STORE_OK)
			goto fail;
		if ((e = msg_remove_txn(st, txn, &mb, &m, modseq)) != STORE_OK)
			goto fail;
		u.used = u.used > m.h.size ? u.used - m.h.size : 0;
		out[nout++] = m.uid;
		if (msg_find_path(dir, &mb, &m, path, sizeof(path)) == 0) {
			char staged[4200];
			if (pending_remove(path, dir, staged,
			    sizeof(staged)) < 0) {
				e = store_errno_err("stage message");
				goto fail;
			}
			pending_list_add(&paths, staged, path);
		}
	}
	free(cand);
	cand = NULL;
	if (nout == 0) {
		mdb_txn_abort(txn);
		free(out);
		return STORE_OK;
	}
	if ((e = mbox_rec_put(st, txn, &mb)) != STORE_OK ||
	    (e = user_rec_put(st, txn, &u)) != STORE_OK)
		goto fail;
	if (pending_sync(dir, false, paths.n > 0) < 0) {
		e = store_errno_err("fsync dir");
		goto fail;
	}
	if ((e = store_txn_commit(txn)) != STORE_OK) {
		free(out);
		pending_list_done(&paths, PENDING_UNDO);
		return e;
	}
	pending_list_done(&paths, PENDING_UNLINK);
	notify_touch(st, mbox_id);
	*expunged_r = out;
	*nexpunged_r = nout;
	return STORE_OK;
fail:
	mdb_txn_abort(txn);
	free(cand);
	free(out);
	pending_list_done(&paths, PENDING_UNDO);
	return e;
}

enum store_err
store_expunged_since(struct store *st, uint32_t mbox_id, uint64_t since,
    uint32_t **uids_r, size_t *n_r)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	unsigned char prefix[4];
	uint32_t *uids = NULL;
	size_t n = 0;
	enum store_err e;

	*uids_r = NULL;
	*n_r = 0;
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if (mdb_cursor_open(txn, st->db_tombs, &c) != 0) {
		mdb_txn_abort(txn);
		return store_set_error(STORE_EINTERNAL, "cursor");
	}
	be32_put(prefix, mbox_id);
	k.mv_size = 4;
	k.mv_data = prefix;
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint64_t ms;
		if (k.mv_size != 8 || memcmp(k.mv_data, prefix, 4) != 0)
			break;
		if (v.mv_size != sizeof(ms))
			continue;
		memcpy(&ms, v.mv_data, sizeof(ms));
		if (ms <= since)
			continue;
		uids = xrealloc(uids, (n + 1) * sizeof(*uids));
		uids[n++] = be32_get((unsigned char *)k.mv_data + 4);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	*uids_r = uids;
	*n_r = n;
	return STORE_OK;
}
