/* store_delivery: writing a message (CRLF-normalised) into data_dir/tmp,
   and committing it into one or more mailboxes. Commits from concurrent
   threads are batched: each thread fsyncs its own file, then one leader
   runs a single LMDB write transaction for everyone waiting (group commit),
   links the files into cur/, fsyncs each directory once and commits. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mime.h"
#include "store_private.h"

#define WBUF_SIZE 65536

struct target {
	uint32_t user_id;
	uint32_t mbox_id;
	uint32_t flags;
	char **kw;
	size_t nkw;
	int64_t internaldate;
	int32_t tz;
};

struct store_delivery {
	struct store *st;
	int fd;
	char *tmp_path;
	char stem[160];
	char *wbuf;
	size_t wlen;
	uint64_t size;
	bool last_cr;
	bool failed;
	struct target *t;
	size_t nt;
	struct buf cache;
	struct queue_part *queue;   /* store_delivery_queue (store_queue.c) */
};

struct queue_part **
delivery_queue_part(struct store_delivery *d)
{
	return &d->queue;
}

struct gc_req {
	struct store_delivery *d;
	unsigned opts;
	struct store_delivery_result *res;
	char **links;           /* files linked in this attempt */
	size_t nlinks;
	enum store_err err;
	char errmsg[256];
	bool done;
	struct gc_req *next;
};

static enum store_err
temp_err(const char *what)
{
	return store_set_error(STORE_ETEMP, "%s: %s", what, strerror(errno));
}

void
gc_init(struct store *st)
{
	pthread_mutex_init(&st->gc_mu, NULL);
	pthread_cond_init(&st->gc_cv, NULL);
}

void
gc_deinit(struct store *st)
{
	pthread_mutex_destroy(&st->gc_mu);
	pthread_cond_destroy(&st->gc_cv);
}

enum store_err
store_delivery_new(struct store *st, struct store_delivery **d_r)
{
	struct store_delivery *d;
	struct timeval tv;
	unsigned q = atomic_fetch_add(&st->unique, 1);

	*d_r = NULL;
	d = xcalloc(1, sizeof(*d));
	d->st = st;
	gettimeofday(&tv, NULL);
	snprintf(d->stem, sizeof(d->stem), "%lld.M%ldP%dQ%u.%s",
	    (long long)tv.tv_sec, (long)tv.tv_usec, (int)getpid(), q, st->host);
	d->tmp_path = xasprintf("%s/tmp/%s", st->data_dir, d->stem);
	d->fd = open(d->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (d->fd < 0) {
		enum store_err e = store_errno_err(d->tmp_path);
		free(d->tmp_path);
		free(d);
		return e == STORE_ENOTFOUND ? STORE_ETEMP : e;
	}
	d->wbuf = xmalloc(WBUF_SIZE);
	buf_init(&d->cache);
	*d_r = d;
	return STORE_OK;
}

static int
flush_wbuf(struct store_delivery *d)
{
	size_t off = 0;

	while (off < d->wlen) {
		ssize_t w = write(d->fd, d->wbuf + off, d->wlen - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			d->failed = true;
			return -1;
		}
		off += (size_t)w;
	}
	d->wlen = 0;
	return 0;
}

enum store_err
store_delivery_write(struct store_delivery *d, const void *p, size_t n)
{
	const char *s = p, *end = s + n;

	if (d->failed)
		return store_set_error(STORE_ETEMP, "earlier write failed");
	while (s < end) {
		/* Keep room for at least one byte plus an inserted CRLF, so
		   that an empty span below always means *s == '\n'. */
		if (WBUF_SIZE - d->wlen < 3 && flush_wbuf(d) < 0)
			return store_errno_err("write message");
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t span = (nl ? (size_t)(nl - s) : (size_t)(end - s));
		size_t room = WBUF_SIZE - d->wlen - 2;
		if (span > room)
			span = room;
		if (span > 0) {
			memcpy(d->wbuf + d->wlen, s, span);
			d->wlen += span;
			d->size += span;
			d->last_cr = s[span - 1] == '\r';
			s += span;
			continue;
		}
		/* *s == '\n' here; last_cr carries across write calls. */
		if (!d->last_cr) {
			d->wbuf[d->wlen++] = '\r';
			d->size++;
		}
		d->wbuf[d->wlen++] = '\n';
		d->size++;
		d->last_cr = false;
		s++;
	}
	if (d->wlen >= WBUF_SIZE / 2 && flush_wbuf(d) < 0)
		return store_errno_err("write message");
	return STORE_OK;
}

uint64_t
store_delivery_size(const struct store_delivery *d)
{
	return d->size;
}

enum store_err
store_delivery_contents(struct store_delivery *d, int *fd_r, uint64_t *size_r)
{
	*fd_r = -1;
	*size_r = 0;
	if (d->fd < 0)
		return store_set_error(STORE_EPERM, "already committed");
	if (flush_wbuf(d) < 0 || d->failed)
		return store_set_error(STORE_ETEMP, "write message failed");
	*fd_r = d->fd;
	*size_r = d->size;
	return STORE_OK;
}

enum store_err
store_delivery_add_target(struct store_delivery *d, uint32_t user_id,
    uint32_t mbox_id, uint32_t flags, const char *const *keywords,
    size_t nkeywords, int64_t internaldate, int32_t internal_tz)
{
	struct target *t;

	if (d->nt >= STORE_MAX_TARGETS)
		return store_set_error(STORE_ELIMIT, "too many targets");
	if (nkeywords > STORE_MAX_KEYWORDS)
		return store_set_error(STORE_ELIMIT, "too many keywords");
	d->t = xrealloc(d->t, (d->nt + 1) * sizeof(*d->t));
	t = &d->t[d->nt++];
	memset(t, 0, sizeof(*t));
	t->user_id = user_id;
	t->mbox_id = mbox_id;
	t->flags = flags & (STORE_F_SEEN | STORE_F_ANSWERED | STORE_F_FLAGGED |
	    STORE_F_DELETED | STORE_F_DRAFT);
	t->internaldate = internaldate ? internaldate : (int64_t)time(NULL);
	t->tz = internal_tz;
	if (nkeywords > 0) {
		t->kw = xcalloc(nkeywords, sizeof(char *));
		for (size_t i = 0; i < nkeywords; i++)
			t->kw[i] = xstrdup(keywords[i] ? keywords[i] : "");
		t->nkw = nkeywords;
	}
	return STORE_OK;
}

/* Parses the message once for FETCH (in the caller's thread, so parses of
   concurrent deliveries run in parallel). */
static void
build_cache(struct store_delivery *d)
{
	cache_build(d->fd, d->size, &d->cache);
}

struct dirset {
	char **dirs;
	size_t n;
	uint32_t *mboxes;
	size_t nm;
};

static void
dirset_add_dir(struct dirset *s, const char *dir)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->dirs[i], dir) == 0)
			return;
	s->dirs = xrealloc(s->dirs, (s->n + 1) * sizeof(char *));
	s->dirs[s->n++] = xstrdup(dir);
}

static void
dirset_add_mbox(struct dirset *s, uint32_t mbox)
{
	for (size_t i = 0; i < s->nm; i++)
		if (s->mboxes[i] == mbox)
			return;
	s->mboxes = xrealloc(s->mboxes, (s->nm + 1) * sizeof(uint32_t));
	s->mboxes[s->nm++] = mbox;
}

static void
dirset_free(struct dirset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->dirs[i]);
	free(s->dirs);
	free(s->mboxes);
	memset(s, 0, sizeof(*s));
}

static void
req_unlink(struct gc_req *r)
{
	for (size_t i = 0; i < r->nlinks; i++) {
		unlink(r->links[i]);
		free(r->links[i]);
	}
	free(r->links);
	r->links = NULL;
	r->nlinks = 0;
}

static void
req_forget_links(struct gc_req *r)
{
	for (size_t i = 0; i < r->nlinks; i++)
		free(r->links[i]);
	free(r->links);
	r->links = NULL;
	r->nlinks = 0;
}

/* One delivery into all its targets, inside txn. */
static enum store_err
deliver_one(struct store *st, MDB_txn *txn, struct gc_req *r,
    struct dirset *ds)
{
	struct store_delivery *d = r->d;
	enum store_err e;

	for (size_t i = 0; i < d->nt; i++) {
		struct target *t = &d->t[i];
		struct user_rec u;
		struct mbox_rec mb;
		struct msg_rec m;
		char dir[4096], path[4600], name[512], cur[4200];
		uint32_t id = t->mbox_id, kbits = 0;
		bool added = false;
		int rc;

		if ((e = user_rec_get(st, txn, t->user_id, &u)) != STORE_OK)
			return e;
		if (id == 0 && (e = mbox_lookup(st, txn, t->user_id, "INBOX",
		    &id)) != STORE_OK)
			return e;
		if ((e = mbox_rec_get(st, txn, id, &mb)) != STORE_OK)
			return e;
		if (mb.user_id != t->user_id)
			return store_set_error(STORE_EPERM,
			    "mailbox belongs to another user");
		if (!(r->opts & STORE_DELIVER_NOQUOTA) && u.quota != 0 &&
		    u.used + d->size > u.quota)
			return store_set_error(STORE_EQUOTA, "%s is over quota",
			    u.address);
		u.used += d->size;
		if ((e = user_rec_put(st, txn, &u)) != STORE_OK)
			return e;
		if ((e = mbox_dir(st, txn, &mb, dir, sizeof(dir))) != STORE_OK)
			return e;
		if ((e = mbox_keywords_bits(&mb, (const char *const *)t->kw,
		    t->nkw, true, &kbits, &added)) != STORE_OK)
			return e;
		memset(&m, 0, sizeof(m));
		if ((e = mbox_next_uid(st, txn, &mb, dir, &m.uid)) != STORE_OK ||
		    (e = mbox_next_modseq(st, txn, &mb, dir, &m.h.modseq)))
			return e;
		m.h.flags = t->flags;
		m.h.keywords = kbits;
		m.h.size = d->size;
		m.h.internaldate = t->internaldate;
		m.h.internal_tz = t->tz;
		snprintf(m.base, sizeof(m.base), "%s,S=%llu,U=%u", d->stem,
		    (unsigned long long)d->size, m.uid);
		msg_file_name(&mb, &m, name, sizeof(name));
		snprintf(path, sizeof(path), "%s/cur/%s", dir, name);
		if (link(d->tmp_path, path) < 0)
			return temp_err("link message");
		r->links = xrealloc(r->links, (r->nlinks + 1) * sizeof(char *));
		r->links[r->nlinks++] = xstrdup(path);
		if ((e = msg_rec_put(st, txn, mb.id, &m)) != STORE_OK)
			return e;
		unsigned char key[8];
		msg_key(key, mb.id, m.uid);
		MDB_val k = { 8, key }, v = { d->cache.len, d->cache.data };
		if ((rc = mdb_put(txn, st->db_cache, &k, &v, 0)) != 0)
			return store_mdb_err(rc, "cache put");
		mbox_counters_add(&mb, &m, 1);
		if (added && mbox_file_write(dir, &mb) < 0)
			return store_errno_err("mailbox file");
		if ((e = mbox_rec_put(st, txn, &mb)) != STORE_OK)
			return e;
		snprintf(cur, sizeof(cur), "%s/cur", dir);
		dirset_add_dir(ds, cur);
		dirset_add_mbox(ds, mb.id);
		if (r->res != NULL) {
			r->res[i].mbox_id = mb.id;
			r->res[i].uid = m.uid;
			r->res[i].uidvalidity = mb.uidvalidity;
		}
	}
	if (d->queue != NULL) {
		char *qpath = NULL, qdir[4200];

		e = queue_commit_txn(st, txn, d->queue, d->tmp_path, d->size,
		    &qpath);
		if (qpath != NULL) {
			r->links = xrealloc(r->links, (r->nlinks + 1) *
			    sizeof(char *));
			r->links[r->nlinks++] = qpath;
		}
		if (e != STORE_OK)
			return e;
		snprintf(qdir, sizeof(qdir), "%s/queue", st->data_dir);
		dirset_add_dir(ds, qdir);
	}
	return STORE_OK;
}

static void
req_fail(struct gc_req *r, enum store_err e)
{
	r->err = e;
	str_copy(r->errmsg, store_last_error(), sizeof(r->errmsg));
	req_unlink(r);
}

/* Commits reqs[0..n) in one write transaction; sets each req's err. */
static void
process_batch(struct store *st, struct gc_req **reqs, size_t n)
{
	MDB_txn *txn, *child;
	struct dirset ds = { 0 };
	enum store_err e;
	size_t nok = 0;
	int rc;

	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK) {
		for (size_t i = 0; i < n; i++)
			req_fail(reqs[i], e);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct dirset mine = { 0 };
		reqs[i]->err = STORE_OK;
		/* A nested transaction per delivery: one over quota or with a
		   bad target must not spoil the batch. */
		if ((rc = mdb_txn_begin(st->env, txn, 0, &child)) != 0) {
			req_fail(reqs[i], store_mdb_err(rc, "nested txn"));
			continue;
		}
		e = deliver_one(st, child, reqs[i], &mine);
		if (e == STORE_OK && (rc = mdb_txn_commit(child)) != 0)
			e = store_mdb_err(rc, "nested commit");
		else if (e != STORE_OK)
			mdb_txn_abort(child);
		if (e != STORE_OK) {
			req_fail(reqs[i], e);
		} else {
			for (size_t j = 0; j < mine.n; j++)
				dirset_add_dir(&ds, mine.dirs[j]);
			for (size_t j = 0; j < mine.nm; j++)
				dirset_add_mbox(&ds, mine.mboxes[j]);
			nok++;
		}
		dirset_free(&mine);
	}
	e = STORE_OK;
	for (size_t i = 0; i < ds.n && e == STORE_OK; i++)
		if (fsync_dir(ds.dirs[i]) < 0)
			e = store_errno_err("fsync dir");
	if (e == STORE_OK && nok > 0)
		e = store_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	for (size_t i = 0; i < n; i++) {
		if (reqs[i]->err != STORE_OK)
			continue;
		if (e != STORE_OK)
			req_fail(reqs[i], e);
		else
			req_forget_links(reqs[i]);
	}
	if (e == STORE_OK)
		for (size_t i = 0; i < ds.nm; i++)
			notify_touch(st, ds.mboxes[i]);
	dirset_free(&ds);
}

static void
group_commit(struct store *st, struct gc_req *r)
{
	pthread_mutex_lock(&st->gc_mu);
	r->next = NULL;
	if (st->gc_tail != NULL)
		st->gc_tail->next = r;
	else
		st->gc_head = r;
	st->gc_tail = r;
	while (!r->done) {
		if (st->gc_busy) {
			pthread_cond_wait(&st->gc_cv, &st->gc_mu);
			continue;
		}
		/* Become the leader for everything queued so far. */
		struct gc_req *batch = st->gc_head, **v = NULL;
		size_t n = 0;
		st->gc_head = st->gc_tail = NULL;
		st->gc_busy = true;
		pthread_mutex_unlock(&st->gc_mu);
		for (struct gc_req *q = batch; q != NULL; q = q->next)
			n++;
		v = xmalloc(n * sizeof(*v));
		n = 0;
		for (struct gc_req *q = batch; q != NULL; q = q->next)
			v[n++] = q;
		process_batch(st, v, n);
		pthread_mutex_lock(&st->gc_mu);
		st->gc_batches++;
		st->gc_commits += n;
		for (size_t i = 0; i < n; i++)
			v[i]->done = true;
		free(v);
		st->gc_busy = false;
		pthread_cond_broadcast(&st->gc_cv);
	}
	pthread_mutex_unlock(&st->gc_mu);
}

enum store_err
store_delivery_commit(struct store_delivery *d, unsigned opts,
    struct store_delivery_result *res_r)
{
	struct store *st = d->st;
	struct gc_req r;

	if (d->nt == 0 && d->queue == NULL)
		return store_set_error(STORE_EPERM, "no targets");
	if (d->fd < 0)
		return store_set_error(STORE_EPERM, "already committed");
	if (flush_wbuf(d) < 0 || d->failed)
		return store_set_error(STORE_ETEMP, "write message failed");
	if (d->nt > 0)
		build_cache(d);
	/* The file's mtime carries INTERNALDATE for a reindex. */
	if (d->nt > 0) {
		struct timespec ts[2] = { { d->t[0].internaldate, 0 },
		    { d->t[0].internaldate, 0 } };
		futimens(d->fd, ts);
	}
	/* fdatasync is enough: the file is new, so its size and blocks are
	   the metadata it flushes; link and directory come later. */
	if (fdatasync(d->fd) < 0)
		return temp_err("fsync message");
	memset(&r, 0, sizeof(r));
	r.d = d;
	r.opts = opts;
	r.res = res_r;
	if (atomic_load(&st->group_commit)) {
		group_commit(st, &r);
	} else {
		struct gc_req *one = &r;
		process_batch(st, &one, 1);
	}
	if (r.err != STORE_OK)
		return store_set_error(r.err, "%s", r.errmsg);
	if (d->queue != NULL)
		store_queue_wake(st);
	close(d->fd);
	d->fd = -1;
	unlink(d->tmp_path);
	return STORE_OK;
}

void
store_group_commit_stats(struct store *st, uint64_t *batches_r,
    uint64_t *commits_r)
{
	pthread_mutex_lock(&st->gc_mu);
	*batches_r = st->gc_batches;
	*commits_r = st->gc_commits;
	pthread_mutex_unlock(&st->gc_mu);
}

void
store_delivery_free(struct store_delivery **dp)
{
	struct store_delivery *d = *dp;

	if (d == NULL)
		return;
	if (d->fd >= 0) {
		close(d->fd);
		unlink(d->tmp_path);
	}
	for (size_t i = 0; i < d->nt; i++) {
		for (size_t j = 0; j < d->t[i].nkw; j++)
			free(d->t[i].kw[j]);
		free(d->t[i].kw);
	}
	free(d->t);
	queue_part_free(d->queue);
	free(d->tmp_path);
	free(d->wbuf);
	buf_free(&d->cache);
	free(d);
	*dp = NULL;
}
