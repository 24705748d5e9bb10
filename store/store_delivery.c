/* store_delivery: writing a message (CRLF-normalised) and committing it
   into one or more mailboxes.

   A message up to MEM_MAX octets stays in memory until its commit, so
   that smtpd can still put header fields in front of it (trace fields,
   Authentication-Results, Message-ID, DKIM signatures, a milter's changes)
   with a memmove instead of writing it a second time; a larger one spills
   into data_dir/tmp as it arrives, and a change of its header rewrites the
   file with copy_file_range (no copy through user space).

   Commits from concurrent threads are batched: one leader runs a single
   LMDB write transaction for everyone waiting (group commit). In it, each
   message file is linked into its mailboxes' postroom-adding/ first and
   only then synced: every file's writeback is started, then the files
   are fdatasync'd (unless their threads did while they waited for an
   earlier batch) and the directories fsync'd, all at once (sync_all),
   then the transaction commits, and the links are renamed into cur/ (store_pending.c: a crash before
   the commit leaves nothing in cur/, and the next write transaction on
   that mailbox unlinks the staged files the index does not know).

   Why that order: the guarantee is that when the LMDB commit is durable
   (its meta page, written O_DSYNC after its data pages are fdatasync'd),
   the file's data and size (fdatasync) and its name in postroom-adding/
   (fsync of that directory) are durable before it, so the committed index
   never points at a missing file. Both syncs are still made, one after
   the other, before the commit: this holds on any file system. Linking
   before the data sync costs nothing in safety (an uncommitted link is
   unlinked by the settle), and on a journalling file system such as ext4
   the fdatasync's journal commit carries the link's directory change too,
   so the directory fsync beside it finds nothing left to write: one
   journal commit per batch instead of one for the files and one for the
   directories. Without a journal (ext4 nojournal) each sync writes its
   own blocks and flushes the device cache: done at once, their waits
   overlap instead of adding up. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
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

#define WBUF_SIZE 65536          /* write buffer once spilled */
#define MEM_MIN 16384            /* first allocation of the buffer */
#define MEM_MAX (256 * 1024)     /* kept in memory up to this size */

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
	int fd;                 /* -1 while the message is only in wbuf */
	char *tmp_path;         /* the file's name, whether it exists or not */
	char stem[160];
	char *wbuf;             /* the whole message, or what awaits writing */
	size_t wlen, wcap;
	uint64_t size;
	bool last_cr;
	bool failed;
	bool committed;
	void *map;              /* store_delivery_map of a spilled file */
	size_t map_len;
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
	char **links;           /* files staged in this attempt */
	size_t nlinks;
	enum store_err err;
	char errmsg[256];
	bool done;
	bool synced;            /* file data synced before it was queued */
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

/* A new unique name for the file (maildir style: time, pid, counter). */
static void
new_name(struct store_delivery *d)
{
	struct store *st = d->st;
	struct timeval tv;
	unsigned q = atomic_fetch_add(&st->unique, 1);

	gettimeofday(&tv, NULL);
	snprintf(d->stem, sizeof(d->stem), "%lld.M%ldP%dQ%u.%s",
	    (long long)tv.tv_sec, (long)tv.tv_usec, (int)getpid(), q, st->host);
	free(d->tmp_path);
	d->tmp_path = xasprintf("%s/tmp/%s", st->data_dir, d->stem);
}

enum store_err
store_delivery_new(struct store *st, struct store_delivery **d_r)
{
	struct store_delivery *d;

	*d_r = NULL;
	d = xcalloc(1, sizeof(*d));
	d->st = st;
	d->fd = -1;
	new_name(d);
	buf_init(&d->cache);
	*d_r = d;
	return STORE_OK;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
flush_wbuf(struct store_delivery *d)
{
	if (write_all(d->fd, d->wbuf, d->wlen) < 0) {
		d->failed = true;
		return -1;
	}
	d->wlen = 0;
	return 0;
}

static int
open_file(struct store_delivery *d)
{
	d->fd = open(d->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (d->fd < 0) {
		d->failed = true;
		return -1;
	}
	return 0;
}

/* The message into its file: created if need be, the buffer written. */
static int
spill(struct store_delivery *d)
{
	if (d->fd < 0 && open_file(d) < 0)
		return -1;
	return flush_wbuf(d);
}

static void
unmap_view(struct store_delivery *d)
{
	if (d->map != NULL)
		munmap(d->map, d->map_len);
	d->map = NULL;
	d->map_len = 0;
}

static void
reserve(struct store_delivery *d, size_t need)
{
	size_t cap = d->wcap != 0 ? d->wcap : MEM_MIN;

	if (need <= d->wcap)
		return;
	while (cap < need)
		cap *= 2;
	d->wbuf = xrealloc(d->wbuf, cap);
	d->wcap = cap;
}

static enum store_err
check_open(const struct store_delivery *d)
{
	if (d->committed)
		return store_set_error(STORE_EPERM, "already committed");
	if (d->failed)
		return store_set_error(STORE_ETEMP, "write message failed");
	return STORE_OK;
}

enum store_err
store_delivery_write(struct store_delivery *d, const void *p, size_t n)
{
	const char *s = p, *end = s + n;

	if (d->failed)
		return store_set_error(STORE_ETEMP, "earlier write failed");
	unmap_view(d);
	while (s < end) {
		size_t limit = d->fd < 0 ? MEM_MAX : WBUF_SIZE;
		/* Keep room for at least one byte plus an inserted CRLF, so
		   that an empty span below always means *s == '\n'. */
		if (d->wlen + 3 > limit) {
			if (spill(d) < 0)
				return store_errno_err("write message");
			continue;
		}
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t span = (nl ? (size_t)(nl - s) : (size_t)(end - s));
		size_t room = limit - d->wlen - 2;
		if (span > room)
			span = room;
		reserve(d, d->wlen + span + 2);
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
	if (d->fd >= 0 && d->wlen >= WBUF_SIZE / 2 && flush_wbuf(d) < 0)
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
	enum store_err e;

	*fd_r = -1;
	*size_r = 0;
	if ((e = check_open(d)) != STORE_OK)
		return e;
	if (spill(d) < 0)
		return store_set_error(STORE_ETEMP, "write message failed");
	*fd_r = d->fd;
	*size_r = d->size;
	return STORE_OK;
}

enum store_err
store_delivery_map(struct store_delivery *d, const char **p_r,
    size_t *len_r)
{
	enum store_err e;

	*p_r = "";
	*len_r = 0;
	if ((e = check_open(d)) != STORE_OK)
		return e;
	if (d->fd < 0) {
		if (d->wlen > 0)
			*p_r = d->wbuf;
		*len_r = d->wlen;
		return STORE_OK;
	}
	if (flush_wbuf(d) < 0)
		return store_set_error(STORE_ETEMP, "write message failed");
	if (d->map == NULL && d->size > 0) {
		void *m = mmap(NULL, d->size, PROT_READ, MAP_SHARED, d->fd, 0);
		if (m == MAP_FAILED)
			return temp_err("map message");
		d->map = m;
		d->map_len = d->size;
	}
	if (d->map != NULL)
		*p_r = d->map;
	*len_r = d->map_len;
	return STORE_OK;
}

/* len octets of in from offset off onwards, appended at out's offset. */
static int
copy_tail(int in, off_t off, int out, uint64_t len)
{
	char tmp[65536];

	while (len > 0) {
		ssize_t n = copy_file_range(in, &off, out, NULL, len, 0);
		if (n > 0) {
			len -= (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (errno != EXDEV && errno != ENOSYS &&
		    errno != EINVAL && errno != EOPNOTSUPP))
			return -1;
		/* No kernel-side copy here: through user space. */
		n = pread(in, tmp, len < sizeof(tmp) ? len : sizeof(tmp), off);
		if (n <= 0 || write_all(out, tmp, (size_t)n) < 0)
			return -1;
		off += n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* The spilled file's first old_len octets replaced: a new file with the
   new head, then the old file's rest; the old one goes on success, the
   new one on failure (the delivery is unchanged then). */
static enum store_err
rewrite_file(struct store_delivery *d, uint64_t old_len, const char *p,
    size_t n)
{
	char *old_path = xstrdup(d->tmp_path), old_stem[sizeof(d->stem)];
	int old_fd = d->fd;
	enum store_err e = STORE_OK;

	str_copy(old_stem, d->stem, sizeof(old_stem));
	new_name(d);
	if (open_file(d) < 0 || write_all(d->fd, p, n) < 0 ||
	    copy_tail(old_fd, (off_t)old_len, d->fd, d->size - old_len) < 0) {
		e = temp_err("rewrite message");
		if (d->fd >= 0) {
			close(d->fd);
			unlink(d->tmp_path);
		}
		d->fd = old_fd;
		d->failed = false;
		str_copy(d->stem, old_stem, sizeof(d->stem));
		free(d->tmp_path);
		d->tmp_path = old_path;
		return e;
	}
	close(old_fd);
	unlink(old_path);
	free(old_path);
	return e;
}

/* p[0..n) with every bare LF made CRLF, into out (when there is one). */
static bool
normalise(const char *p, size_t n, struct buf *out)
{
	bool bare = false;

	for (size_t i = 0; i < n && !bare; i++)
		bare = p[i] == '\n' && (i == 0 || p[i - 1] != '\r');
	if (!bare)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			buf_putc(out, '\r');
		buf_putc(out, p[i]);
	}
	return true;
}

enum store_err
store_delivery_replace_head(struct store_delivery *d, uint64_t old_len,
    const void *head, size_t n)
{
	const char *p = head;
	enum store_err e;
	struct buf norm;
	uint64_t size = d->size;

	if ((e = check_open(d)) != STORE_OK)
		return e;
	if (old_len > size)
		return store_set_error(STORE_EINTERNAL, "head beyond the end");
	buf_init(&norm);
	if (normalise(p, n, &norm)) {
		p = norm.data;
		n = norm.len;
	}
	unmap_view(d);
	if (d->fd < 0) {
		/* Memory: one memmove, whatever MEM_MAX (header fields are
		   small; the file comes at the commit). */
		reserve(d, d->wlen - old_len + n);
		memmove(d->wbuf + n, d->wbuf + old_len, d->wlen - old_len);
		if (n > 0)
			memcpy(d->wbuf, p, n);
		d->wlen = d->wlen - old_len + n;
	} else if (flush_wbuf(d) < 0) {
		e = store_set_error(STORE_ETEMP, "write message failed");
	} else {
		e = rewrite_file(d, old_len, p, n);
	}
	if (e == STORE_OK) {
		d->size = size - old_len + n;
		if (old_len == size)
			d->last_cr = n > 0 && p[n - 1] == '\r';
	}
	buf_free(&norm);
	return e;
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
	const char *p;
	size_t len;

	if (store_delivery_map(d, &p, &len) == STORE_OK && len == d->size)
		cache_build_mem(p, len, &d->cache);
	else
		cache_build_mem(NULL, d->size, &d->cache);
	unmap_view(d);
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

static bool
dirset_has_mbox(const struct dirset *s, uint32_t mbox)
{
	for (size_t i = 0; i < s->nm; i++)
		if (s->mboxes[i] == mbox)
			return true;
	return false;
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

/* After the commit: the staged links into cur/. */
static void
req_publish_links(struct gc_req *r)
{
	for (size_t i = 0; i < r->nlinks; i++) {
		pending_publish(r->links[i]);
		free(r->links[i]);
	}
	free(r->links);
	r->links = NULL;
	r->nlinks = 0;
}

/* One delivery into all its targets, inside txn. settled: the mailboxes
   whose staged files this batch has resolved already (once per batch,
   before its first link there: later, the batch's own uncommitted links
   would look committed to the nested transactions). */
static enum store_err
deliver_one(struct store *st, MDB_txn *txn, struct gc_req *r,
    struct dirset *ds, struct dirset *settled)
{
	struct store_delivery *d = r->d;
	enum store_err e;

	for (size_t i = 0; i < d->nt; i++) {
		struct target *t = &d->t[i];
		struct user_rec u;
		struct mbox_rec mb;
		struct msg_rec m;
		char dir[4096], path[4600], name[512];
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
		if (!dirset_has_mbox(settled, mb.id)) {
			if ((e = pending_settle(st, txn, &mb, dir)) != STORE_OK)
				return e;
			dirset_add_mbox(settled, mb.id);
		}
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
		if (pending_add(d->tmp_path, dir, name, path, sizeof(path)) < 0)
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
		char adding[4200];
		snprintf(adding, sizeof(adding), "%s/%s", dir, STORE_ADDING_DIR);
		dirset_add_dir(ds, adding);
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

/* Parallel syncs. The files and directories of a batch are independent
   of each other (only the commit must wait for all of them), so their
   waits overlap: up to SYNC_HELPERS threads take jobs beside the thread
   that runs the batch. On a file system without a journal (ext4
   nojournal, where each fsync writes its own inode and directory blocks
   and then flushes the device cache) the waits add up one after the
   other otherwise: a file's fdatasync, then its directory's fsync, then
   the next file. The helpers start with the first batch of two or more
   syncs and live as long as the process; a child of fork() starts its
   own. One batch at a time uses them: another one (a second store, or
   commits without group commit) syncs in its own thread. */
#define SYNC_HELPERS 3

struct sync_job {
	int fd;
	bool data_only;         /* fdatasync, not fsync */
	int err;                /* errno, 0 once synced */
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	unsigned helpers;
	struct sync_job *jobs;  /* the batch being synced, or NULL */
	size_t n, next, left;
	bool atfork;
} sp = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	PTHREAD_COND_INITIALIZER, 0, NULL, 0, 0, 0, false };

static void
sync_job_run(struct sync_job *j)
{
	int r = j->data_only ? fdatasync(j->fd) : fsync(j->fd);

	j->err = r < 0 ? errno : 0;
}

/* Runs the next job of the batch; called with sp.mu held, returns with
   it held. */
static void
sync_take_one(void)
{
	struct sync_job *j = &sp.jobs[sp.next++];

	pthread_mutex_unlock(&sp.mu);
	sync_job_run(j);
	pthread_mutex_lock(&sp.mu);
	if (--sp.left == 0)
		pthread_cond_signal(&sp.done);
}

static void *
sync_helper(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&sp.mu);
	for (;;) {
		while (sp.jobs == NULL || sp.next >= sp.n)
			pthread_cond_wait(&sp.work, &sp.mu);
		sync_take_one();
	}
	return NULL;
}

static void
sync_atfork_prepare(void)
{
	pthread_mutex_lock(&sp.mu);
}

static void
sync_atfork_parent(void)
{
	pthread_mutex_unlock(&sp.mu);
}

/* The child has none of the helpers, and no batch of its own yet; the
   forking thread holds sp.mu (sync_atfork_prepare). */
static void
sync_atfork_child(void)
{
	pthread_mutex_unlock(&sp.mu);
	pthread_cond_init(&sp.work, NULL);
	pthread_cond_init(&sp.done, NULL);
	sp.helpers = 0;
	sp.jobs = NULL;
	sp.n = sp.next = sp.left = 0;
}

/* With sp.mu held. A helper that cannot be created leaves the work to
   the others and to the caller. */
static void
sync_start_helpers(void)
{
	sigset_t all, old;
	pthread_attr_t attr;

	if (sp.helpers >= SYNC_HELPERS)
		return;
	if (!sp.atfork) {
		pthread_atfork(sync_atfork_prepare, sync_atfork_parent,
		    sync_atfork_child);
		sp.atfork = true;
	}
	/* Signals go to the daemon's loop, never to a helper. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	while (sp.helpers < SYNC_HELPERS) {
		pthread_t tid;
		if (pthread_create(&tid, &attr, sync_helper, NULL) != 0)
			break;
		sp.helpers++;
	}
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* All jobs synced when it returns, each with its err set. */
static void
sync_all(struct sync_job *jobs, size_t n)
{
	pthread_mutex_lock(&sp.mu);
	if (n < 2 || sp.jobs != NULL) {
		pthread_mutex_unlock(&sp.mu);
		for (size_t i = 0; i < n; i++)
			sync_job_run(&jobs[i]);
		return;
	}
	sync_start_helpers();
	sp.jobs = jobs;
	sp.n = n;
	sp.next = 0;
	sp.left = n;
	for (size_t i = 1; i < n && i <= sp.helpers; i++)
		pthread_cond_signal(&sp.work);
	while (sp.next < sp.n)
		sync_take_one();
	while (sp.left > 0)
		pthread_cond_wait(&sp.done, &sp.mu);
	sp.jobs = NULL;
	pthread_mutex_unlock(&sp.mu);
}

/* Makes the linked files of the batch durable, data and names, before
   its commit (the order and why: at the top of this file), all of them
   at once (sync_all). fdatasync is enough for a file: it is new, so its
   size and blocks are the metadata it flushes. Every writeback is
   started before the first wait, so that the files of a batch share
   their journal commits. */
static enum store_err
sync_batch(struct gc_req **reqs, size_t n, const struct dirset *ds)
{
	struct sync_job *jobs = xcalloc(n + ds->n, sizeof(*jobs));
	size_t nj = 0, nfiles;
	enum store_err e = STORE_OK;

	for (size_t i = 0; i < n; i++) {
		if (reqs[i]->err != STORE_OK || reqs[i]->synced)
			continue;
		(void)sync_file_range(reqs[i]->d->fd, 0, 0,
		    SYNC_FILE_RANGE_WRITE);
		jobs[nj].fd = reqs[i]->d->fd;
		jobs[nj++].data_only = true;
	}
	nfiles = nj;
	for (size_t i = 0; i < ds->n; i++) {
		jobs[nj].fd = open(ds->dirs[i], O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC);
		if (jobs[nj].fd < 0) {
			e = store_errno_err("fsync dir");
			break;
		}
		nj++;
	}
	if (e == STORE_OK)
		sync_all(jobs, nj);
	for (size_t i = 0; i < nj; i++) {
		if (e == STORE_OK && jobs[i].err != 0) {
			errno = jobs[i].err;
			e = i < nfiles ? temp_err("fsync message") :
			    store_errno_err("fsync dir");
		}
		if (i >= nfiles)
			close(jobs[i].fd);
	}
	free(jobs);
	return e;
}

/* Commits reqs[0..n) in one write transaction; sets each req's err. */
static void
process_batch(struct store *st, struct gc_req **reqs, size_t n)
{
	MDB_txn *txn, *child;
	struct dirset ds = { 0 }, settled = { 0 };
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
		e = deliver_one(st, child, reqs[i], &mine, &settled);
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
	e = sync_batch(reqs, n, &ds);
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
			req_publish_links(reqs[i]);
	}
	if (e == STORE_OK)
		for (size_t i = 0; i < ds.nm; i++)
			notify_touch(st, ds.mboxes[i]);
	dirset_free(&ds);
	dirset_free(&settled);
}

static void
group_commit(struct store *st, struct gc_req *r)
{
	bool busy;

	/* A batch in progress means a wait anyway: sync the file's data
	   meanwhile, as the other waiters do, so that the next batch has
	   only links, directories and the commit left (the pipeline of many
	   sessions). With no batch running (one session), the leader syncs
	   it after the link: one journal commit instead of two. Either way
	   the data is durable before the commit. */
	pthread_mutex_lock(&st->gc_mu);
	busy = st->gc_busy;
	pthread_mutex_unlock(&st->gc_mu);
	if (busy && fdatasync(r->d->fd) == 0)
		r->synced = true;
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
	enum store_err e;

	if (d->nt == 0 && d->queue == NULL)
		return store_set_error(STORE_EPERM, "no targets");
	if ((e = check_open(d)) != STORE_OK)
		return e;
	if (d->nt > 0)
		build_cache(d);
	/* The file's first write for a message that stayed in memory; not
	   synced here (process_batch syncs it after linking it). */
	if (spill(d) < 0)
		return store_set_error(STORE_ETEMP, "write message failed");
	/* The file's mtime carries INTERNALDATE for a reindex. */
	if (d->nt > 0) {
		struct timespec ts[2] = { { d->t[0].internaldate, 0 },
		    { d->t[0].internaldate, 0 } };
		futimens(d->fd, ts);
	}
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
	d->committed = true;
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
	unmap_view(d);
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
