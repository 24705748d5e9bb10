/* store_queue: the outbound queue in the store's LMDB environment (message
   rows, recipient rows, the schedule index, the attempt log, per-user
   submission counters) and its immutable files under data_dir/queue/.
   Records are packed little-endian with a version byte and length-prefixed
   strings; a record that does not decode is corrupt and is moved aside
   (queue/corrupt/), never allowed to stop the delivery daemon. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "store_private.h"

#define QREC_VERSION 1
#define QLOG_MSG_IDX UINT32_MAX
/* A file in queue/ without a record is removed by recovery only when it is
   older than this: a delivery that linked it may still be committing. */
#define QORPHAN_AGE 3600

struct queue_part {
	struct store_queue_msg env;
	struct store_queue_rcpt *rcpts;
	size_t n;               /* 0: only marks, nothing queued */
	uint64_t id;            /* set by a successful commit */
	/* store_delivery_queue_mark: flags set on recipients of another
	   queued message in the same commit. */
	uint64_t mark_id;
	uint32_t *mark_idx;
	size_t nmarks;
	uint32_t mark_flags;
};

/* ---- keys and packing ---- */


static void
put_u8(struct buf *b, unsigned v)
{
	unsigned char c = (unsigned char)v;

	buf_append(b, &c, 1);
}

static void
put_u32(struct buf *b, uint32_t v)
{
	unsigned char p[4] = { (unsigned char)v, (unsigned char)(v >> 8),
	    (unsigned char)(v >> 16), (unsigned char)(v >> 24) };

	buf_append(b, p, 4);
}

static void
put_u64(struct buf *b, uint64_t v)
{
	put_u32(b, (uint32_t)v);
	put_u32(b, (uint32_t)(v >> 32));
}

static void
put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	if (n > 0xffff)
		n = 0xffff;
	put_u8(b, n & 0xff);
	put_u8(b, n >> 8);
	buf_append(b, s, n);
}

struct rd {
	const unsigned char *p;
	size_t left;
	bool bad;
};

static unsigned
get_u8(struct rd *r)
{
	if (r->left < 1) {
		r->bad = true;
		return 0;
	}
	r->left--;
	return *r->p++;
}

static uint32_t
get_u32(struct rd *r)
{
	uint32_t v;

	if (r->left < 4) {
		r->bad = true;
		return 0;
	}
	v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 |
	    (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
	r->p += 4;
	r->left -= 4;
	return v;
}

static uint64_t
get_u64(struct rd *r)
{
	uint64_t lo = get_u32(r);

	return lo | (uint64_t)get_u32(r) << 32;
}

/* A string into out[size]: too long for out, or with a NUL, is corrupt. */
static void
get_str(struct rd *r, char *out, size_t size)
{
	size_t n = get_u8(r);

	n |= (size_t)get_u8(r) << 8;
	if (r->bad || n > r->left || n >= size ||
	    memchr(r->p, '\0', n) != NULL) {
		r->bad = true;
		out[0] = '\0';
		return;
	}
	memcpy(out, r->p, n);
	out[n] = '\0';
	r->p += n;
	r->left -= n;
}

/* Copies s into out[size], cut at size - 1 bytes (and at a NUL). */
static void
copy_cut(char *out, const char *s, size_t size)
{
	str_copy(out, s != NULL ? s : "", size);
}

static void
qmsg_encode(const struct store_queue_msg *m, struct buf *out)
{
	buf_reset(out);
	put_u8(out, QREC_VERSION);
	put_u32(out, m->flags);
	put_u8(out, (unsigned)m->ret);
	put_u64(out, m->size);
	put_u64(out, (uint64_t)m->arrival);
	put_u64(out, (uint64_t)m->next);
	put_u32(out, m->nrcpts);
	put_str(out, m->sender);
	put_str(out, m->envid);
	put_str(out, m->auth_user);
}

static int
qmsg_decode(const MDB_val *v, uint64_t id, struct store_queue_msg *m)
{
	struct rd r = { v->mv_data, v->mv_size, false };

	memset(m, 0, sizeof(*m));
	m->id = id;
	if (get_u8(&r) != QREC_VERSION)
		return -1;
	m->flags = get_u32(&r);
	m->ret = (enum store_queue_ret)get_u8(&r);
	m->size = get_u64(&r);
	m->arrival = (int64_t)get_u64(&r);
	m->next = (int64_t)get_u64(&r);
	m->nrcpts = get_u32(&r);
	get_str(&r, m->sender, sizeof(m->sender));
	get_str(&r, m->envid, sizeof(m->envid));
	get_str(&r, m->auth_user, sizeof(m->auth_user));
	if (r.bad || r.left != 0 || m->ret > STORE_QRET_HDRS ||
	    m->nrcpts == 0 || m->nrcpts > STORE_QUEUE_MAX_RCPTS)
		return -1;
	return 0;
}

static void
qrcpt_encode(const struct store_queue_rcpt *q, struct buf *out)
{
	buf_reset(out);
	put_u8(out, QREC_VERSION);
	put_u8(out, (unsigned)q->state);
	put_u32(out, q->notify);
	put_u32(out, q->flags);
	put_u32(out, q->attempts);
	put_u64(out, (uint64_t)q->next_attempt);
	put_u64(out, (uint64_t)q->last_attempt);
	put_str(out, q->address);
	put_str(out, q->orcpt);
	put_str(out, q->status);
	put_str(out, q->reply);
	put_str(out, q->remote);
}

static int
qrcpt_decode(const MDB_val *v, uint32_t idx, struct store_queue_rcpt *q)
{
	struct rd r = { v->mv_data, v->mv_size, false };

	memset(q, 0, sizeof(*q));
	q->idx = idx;
	if (get_u8(&r) != QREC_VERSION)
		return -1;
	q->state = (enum store_queue_state)get_u8(&r);
	q->notify = get_u32(&r);
	q->flags = get_u32(&r);
	q->attempts = get_u32(&r);
	q->next_attempt = (int64_t)get_u64(&r);
	q->last_attempt = (int64_t)get_u64(&r);
	get_str(&r, q->address, sizeof(q->address));
	get_str(&r, q->orcpt, sizeof(q->orcpt));
	get_str(&r, q->status, sizeof(q->status));
	get_str(&r, q->reply, sizeof(q->reply));
	get_str(&r, q->remote, sizeof(q->remote));
	if (r.bad || r.left != 0 || q->state > STORE_QS_FAILED ||
	    q->address[0] == '\0')
		return -1;
	return 0;
}

static void
qlog_encode(const struct store_queue_log_entry *e, struct buf *out)
{
	buf_reset(out);
	put_u8(out, QREC_VERSION);
	put_u8(out, (unsigned)e->state);
	put_str(out, e->address);
	put_str(out, e->status);
	put_str(out, e->reply);
	put_str(out, e->remote);
}

static int
qlog_decode(const MDB_val *k, const MDB_val *v,
    struct store_queue_log_entry *e)
{
	struct rd r = { v->mv_data, v->mv_size, false };
	const unsigned char *kp = k->mv_data;

	memset(e, 0, sizeof(*e));
	if (k->mv_size != 20)
		return -1;
	e->id = be64_get(kp);
	e->time_us = (int64_t)be64_get(kp + 8);
	e->idx = be32_get(kp + 16);
	if (get_u8(&r) != QREC_VERSION)
		return -1;
	e->state = (enum store_queue_state)get_u8(&r);
	get_str(&r, e->address, sizeof(e->address));
	get_str(&r, e->status, sizeof(e->status));
	get_str(&r, e->reply, sizeof(e->reply));
	get_str(&r, e->remote, sizeof(e->remote));
	if (r.bad || r.left != 0 || e->state > STORE_QS_FAILED)
		return -1;
	return 0;
}

/* ---- small helpers ---- */

void
store_queue_id_str(uint64_t id, char *buf, size_t size)
{
	snprintf(buf, size, "%0*llX", STORE_QUEUE_ID_LEN,
	    (unsigned long long)id);
}

int
store_queue_id_parse(const char *s, uint64_t *id_r)
{
	uint64_t v = 0;
	size_t n = 0;

	if (s == NULL)
		return -1;
	for (; s[n] != '\0'; n++) {
		char c = s[n];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -1;
		if (n >= 16)
			return -1;
		v = v << 4 | d;
	}
	if (n == 0 || v == 0)
		return -1;
	*id_r = v;
	return 0;
}

void
store_queue_path(struct store *st, uint64_t id, char *buf, size_t size)
{
	char ids[24];

	store_queue_id_str(id, ids, sizeof(ids));
	snprintf(buf, size, "%s/queue/%s", st->data_dir, ids);
}

void
store_queue_notify_path(struct store *st, char *buf, size_t size)
{
	snprintf(buf, size, "%s/notify/queue", st->data_dir);
}

void
store_queue_wake(struct store *st)
{
	char path[4096];
	int fd;

	store_queue_notify_path(st, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (pwrite(fd, "x", 1, 0) < 0) {
		/* A watcher sees the next change; mtad also polls. */
	}
	close(fd);
}

static int64_t
now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

enum store_err
queue_open(struct store *st)
{
	static const struct { const char *name; size_t off; } dbs[] = {
		{ "qmsgs", offsetof(struct store, db_qmsgs) },
		{ "qrcpts", offsetof(struct store, db_qrcpts) },
		{ "qsched", offsetof(struct store, db_qsched) },
		{ "qlog", offsetof(struct store, db_qlog) },
		{ "qrate", offsetof(struct store, db_qrate) },
	};
	char path[4096];
	MDB_txn *txn;
	enum store_err e;
	int rc;

	atomic_store(&st->rate_period, 3600.0);
	snprintf(path, sizeof(path), "%s/queue/corrupt", st->data_dir);
	if (mkdir_p(path, 0700) < 0)
		return store_errno_err(path);
	store_queue_notify_path(st, path, sizeof(path));
	if (access(path, F_OK) != 0)
		store_queue_wake(st);
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	for (size_t i = 0; i < ARRAY_SIZE(dbs); i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)st + dbs[i].off);
		if ((rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbi))
		    != 0) {
			mdb_txn_abort(txn);
			return store_mdb_err(rc, "queue dbi open");
		}
	}
	return store_txn_commit(txn);
}

void
store_rate_set_period(struct store *st, double period)
{
	atomic_store(&st->rate_period, period > 0 ? period : 3600.0);
}

/* ---- records inside a transaction ---- */

static enum store_err
msg_get_txn(struct store *st, MDB_txn *txn, uint64_t id,
    struct store_queue_msg *m)
{
	unsigned char key[8];
	MDB_val k = { 8, key }, v;
	int rc;

	be64_put(key, id);
	if ((rc = mdb_get(txn, st->db_qmsgs, &k, &v)) != 0)
		return rc == MDB_NOTFOUND ? store_set_error(STORE_ENOTFOUND,
		    "no such queue entry") : store_mdb_err(rc, "queue get");
	if (qmsg_decode(&v, id, m) < 0)
		return store_set_error(STORE_ECORRUPT,
		    "queue message record undecodable");
	return STORE_OK;
}

static enum store_err
msg_put_txn(struct store *st, MDB_txn *txn, const struct store_queue_msg *m,
    struct buf *b)
{
	unsigned char key[8];
	MDB_val k = { 8, key }, v;
	int rc;

	be64_put(key, m->id);
	qmsg_encode(m, b);
	v.mv_size = b->len;
	v.mv_data = b->data;
	if ((rc = mdb_put(txn, st->db_qmsgs, &k, &v, 0)) != 0)
		return store_mdb_err(rc, "queue put");
	return STORE_OK;
}

static enum store_err
rcpt_get_txn(struct store *st, MDB_txn *txn, uint64_t id, uint32_t idx,
    struct store_queue_rcpt *q)
{
	unsigned char key[12];
	MDB_val k = { 12, key }, v;
	int rc;

	be64_put(key, id);
	be32_put(key + 8, idx);
	if ((rc = mdb_get(txn, st->db_qrcpts, &k, &v)) != 0)
		return rc == MDB_NOTFOUND ? store_set_error(STORE_ENOTFOUND,
		    "no such queue recipient") : store_mdb_err(rc,
		    "queue rcpt get");
	if (qrcpt_decode(&v, idx, q) < 0)
		return store_set_error(STORE_ECORRUPT,
		    "queue recipient record undecodable");
	return STORE_OK;
}

static enum store_err
rcpt_put_txn(struct store *st, MDB_txn *txn, uint64_t id,
    const struct store_queue_rcpt *q, struct buf *b)
{
	unsigned char key[12];
	MDB_val k = { 12, key }, v;
	int rc;

	be64_put(key, id);
	be32_put(key + 8, q->idx);
	qrcpt_encode(q, b);
	v.mv_size = b->len;
	v.mv_data = b->data;
	if ((rc = mdb_put(txn, st->db_qrcpts, &k, &v, 0)) != 0)
		return store_mdb_err(rc, "queue rcpt put");
	return STORE_OK;
}

/* All recipients of id (owned array in *rcpts_r, exactly m->nrcpts). */
static enum store_err
rcpts_get_txn(struct store *st, MDB_txn *txn, const struct store_queue_msg *m,
    struct store_queue_rcpt **rcpts_r)
{
	struct store_queue_rcpt *v = xcalloc(m->nrcpts, sizeof(*v));
	enum store_err e;

	for (uint32_t i = 0; i < m->nrcpts; i++) {
		if ((e = rcpt_get_txn(st, txn, m->id, i, &v[i])) != STORE_OK) {
			free(v);
			*rcpts_r = NULL;
			if (e == STORE_ENOTFOUND)
				e = store_set_error(STORE_ECORRUPT,
				    "queue recipient %u missing", i);
			return e;
		}
	}
	*rcpts_r = v;
	return STORE_OK;
}

static enum store_err
sched_del_txn(struct store *st, MDB_txn *txn, int64_t t, uint64_t id)
{
	unsigned char key[16];
	MDB_val k = { 16, key };
	int rc;

	if (t == 0)
		return STORE_OK;
	be64_put(key, (uint64_t)t);
	be64_put(key + 8, id);
	rc = mdb_del(txn, st->db_qsched, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_mdb_err(rc, "queue sched del");
	return STORE_OK;
}

static enum store_err
sched_put_txn(struct store *st, MDB_txn *txn, int64_t t, uint64_t id)
{
	unsigned char key[16];
	MDB_val k = { 16, key }, v = { 0, "" };
	int rc;

	be64_put(key, (uint64_t)t);
	be64_put(key + 8, id);
	if ((rc = mdb_put(txn, st->db_qsched, &k, &v, 0)) != 0)
		return store_mdb_err(rc, "queue sched put");
	return STORE_OK;
}

static bool
state_active(enum store_queue_state s)
{
	return s == STORE_QS_PENDING || s == STORE_QS_INFLIGHT ||
	    s == STORE_QS_DEFERRED;
}

/* Recomputes m's scheduled time from its recipients and rewrites the
   message row and the schedule key: the earliest next_attempt of the
   recipients waiting (PENDING, DEFERRED); none waiting and none in flight:
   now (due to be finished); held: unscheduled. */
static enum store_err
sched_update_txn(struct store *st, MDB_txn *txn, struct store_queue_msg *m,
    const struct store_queue_rcpt *r, int64_t now, struct buf *b)
{
	int64_t next = 0;
	bool inflight = false;
	enum store_err e;

	for (uint32_t i = 0; i < m->nrcpts; i++) {
		if (r[i].state == STORE_QS_INFLIGHT)
			inflight = true;
		else if (state_active(r[i].state)) {
			int64_t t = r[i].next_attempt > 0 ?
			    r[i].next_attempt : 1;
			if (next == 0 || t < next)
				next = t;
		}
	}
	if (next == 0 && !inflight)
		next = now > 0 ? now : 1;
	if (m->flags & STORE_QMF_HELD)
		next = 0;
	if ((e = sched_del_txn(st, txn, m->next, m->id)) != STORE_OK)
		return e;
	m->next = next;
	if (next != 0 && (e = sched_put_txn(st, txn, next, m->id)) != STORE_OK)
		return e;
	return msg_put_txn(st, txn, m, b);
}

static enum store_err
log_put_txn(struct store *st, MDB_txn *txn, uint64_t id, uint32_t idx,
    const struct store_queue_log_entry *e, struct buf *b)
{
	unsigned char key[20];
	MDB_val k = { 20, key }, v;
	int64_t t = e->time_us;
	int rc;

	be64_put(key, id);
	be32_put(key + 16, idx);
	qlog_encode(e, b);
	v.mv_size = b->len;
	v.mv_data = b->data;
	/* Two entries in the same microsecond: the later one moves on. */
	for (int tries = 0; tries < 1000; tries++, t++) {
		be64_put(key + 8, (uint64_t)t);
		rc = mdb_put(txn, st->db_qlog, &k, &v, MDB_NOOVERWRITE);
		if (rc != MDB_KEYEXIST)
			break;
	}
	if (rc != 0)
		return store_mdb_err(rc, "queue log put");
	return STORE_OK;
}

static enum store_err
log_msg_event(struct store *st, MDB_txn *txn, uint64_t id, const char *what,
    struct buf *b)
{
	struct store_queue_log_entry le;

	memset(&le, 0, sizeof(le));
	le.time_us = now_us();
	le.state = STORE_QS_FAILED;
	copy_cut(le.reply, what, sizeof(le.reply));
	return log_put_txn(st, txn, id, QLOG_MSG_IDX, &le, b);
}

/* Deletes the message row, its recipient rows and its schedule key. */
static enum store_err
records_del_txn(struct store *st, MDB_txn *txn, uint64_t id, int64_t next)
{
	unsigned char key[12];
	MDB_val k = { 8, key }, v;
	MDB_cursor *c;
	enum store_err e = STORE_OK;
	int rc;

	be64_put(key, id);
	rc = mdb_del(txn, st->db_qmsgs, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_mdb_err(rc, "queue del");
	if ((e = sched_del_txn(st, txn, next, id)) != STORE_OK)
		return e;
	if ((rc = mdb_cursor_open(txn, st->db_qrcpts, &c)) != 0)
		return store_mdb_err(rc, "queue cursor");
	for (;;) {
		/* Seek again after each delete: simple and always right. */
		k.mv_size = 8;
		k.mv_data = key;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc != 0 || k.mv_size < 8 || memcmp(k.mv_data, key, 8) != 0)
			break;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		e = store_mdb_err(rc, "queue rcpt del");
	mdb_cursor_close(c);
	return e;
}

static void
fsync_queue_dir(struct store *st)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/queue", st->data_dir);
	fsync_dir(dir);
}

/* ---- adding ---- */

static enum store_err
queue_part_new(const struct store_queue_msg *env,
    const struct store_queue_rcpt *rcpts, size_t n, struct queue_part **q_r)
{
	struct queue_part *q;

	*q_r = NULL;
	if (n == 0 || n > STORE_QUEUE_MAX_RCPTS)
		return store_set_error(STORE_ELIMIT,
		    "a queued message needs 1..%d recipients",
		    STORE_QUEUE_MAX_RCPTS);
	if (env->ret > STORE_QRET_HDRS)
		return store_set_error(STORE_EPERM, "bad RET");
	for (size_t i = 0; i < n; i++)
		if (rcpts[i].address[0] == '\0')
			return store_set_error(STORE_EPERM,
			    "empty recipient address");
	q = xcalloc(1, sizeof(*q));
	q->env = *env;
	q->env.sender[sizeof(q->env.sender) - 1] = '\0';
	q->env.envid[sizeof(q->env.envid) - 1] = '\0';
	q->env.auth_user[sizeof(q->env.auth_user) - 1] = '\0';
	q->env.flags &= STORE_QMF_HELD | STORE_QMF_DSN;
	q->rcpts = xcalloc(n, sizeof(*q->rcpts));
	for (size_t i = 0; i < n; i++) {
		struct store_queue_rcpt *r = &q->rcpts[i];
		copy_cut(r->address, rcpts[i].address, sizeof(r->address));
		copy_cut(r->orcpt, rcpts[i].orcpt, sizeof(r->orcpt));
		r->notify = rcpts[i].notify & (STORE_QN_NEVER |
		    STORE_QN_SUCCESS | STORE_QN_FAILURE | STORE_QN_DELAY);
		r->idx = (uint32_t)i;
		r->state = STORE_QS_PENDING;
	}
	q->n = n;
	*q_r = q;
	return STORE_OK;
}

void
queue_part_free(struct queue_part *q)
{
	if (q == NULL)
		return;
	free(q->rcpts);
	free(q->mark_idx);
	free(q);
}

enum store_err
store_delivery_queue(struct store_delivery *d,
    const struct store_queue_msg *env, const struct store_queue_rcpt *rcpts,
    size_t n)
{
	struct queue_part **slot = delivery_queue_part(d), *q;
	enum store_err e;

	if (*slot != NULL && (*slot)->n > 0)
		return store_set_error(STORE_EPERM, "already queued");
	if ((e = queue_part_new(env, rcpts, n, &q)) != STORE_OK)
		return e;
	if (*slot != NULL) {
		/* Marks were asked for first: they go with the queued part. */
		q->mark_id = (*slot)->mark_id;
		q->mark_idx = (*slot)->mark_idx;
		q->nmarks = (*slot)->nmarks;
		q->mark_flags = (*slot)->mark_flags;
		(*slot)->mark_idx = NULL;
		queue_part_free(*slot);
	}
	*slot = q;
	return STORE_OK;
}

enum store_err
store_delivery_queue_mark(struct store_delivery *d, uint64_t id,
    const uint32_t *idx, size_t n, uint32_t flags)
{
	struct queue_part **slot = delivery_queue_part(d);

	if (n == 0 || n > STORE_QUEUE_MAX_RCPTS)
		return store_set_error(STORE_ELIMIT, "bad number of marks");
	if (*slot == NULL)
		*slot = xcalloc(1, sizeof(**slot));
	if ((*slot)->nmarks > 0)
		return store_set_error(STORE_EPERM, "already marked");
	(*slot)->mark_idx = xcalloc(n, sizeof(*idx));
	memcpy((*slot)->mark_idx, idx, n * sizeof(*idx));
	(*slot)->nmarks = n;
	(*slot)->mark_id = id;
	(*slot)->mark_flags = flags;
	return STORE_OK;
}

/* The marks of q, in the commit's transaction. A message or recipient
   gone meanwhile (deleted) needs no mark: skipped. */
static enum store_err
marks_txn(struct store *st, MDB_txn *txn, const struct queue_part *q)
{
	struct store_queue_msg m;
	struct store_queue_rcpt r;
	struct buf b;
	enum store_err e;

	if (q->nmarks == 0)
		return STORE_OK;
	e = msg_get_txn(st, txn, q->mark_id, &m);
	if (e != STORE_OK)
		return e == STORE_ENOTFOUND ? STORE_OK : e;
	buf_init(&b);
	for (size_t i = 0; i < q->nmarks && e == STORE_OK; i++) {
		e = rcpt_get_txn(st, txn, q->mark_id, q->mark_idx[i], &r);
		if (e == STORE_ENOTFOUND) {
			e = STORE_OK;
			continue;
		}
		if (e != STORE_OK)
			break;
		r.flags |= q->mark_flags;
		e = rcpt_put_txn(st, txn, q->mark_id, &r, &b);
	}
	buf_free(&b);
	return e;
}

uint64_t
store_delivery_queue_id(const struct store_delivery *d)
{
	struct queue_part *q = *delivery_queue_part((struct store_delivery *)d);

	return q != NULL ? q->id : 0;
}

static enum store_err
next_queue_id(struct store *st, MDB_txn *txn, uint64_t *id_r)
{
	MDB_val k = { 13, "next_queue_id" }, v;
	uint64_t next = 1;
	int rc;

	rc = mdb_get(txn, st->db_meta, &k, &v);
	if (rc == 0 && v.mv_size == sizeof(next))
		memcpy(&next, v.mv_data, sizeof(next));
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return store_mdb_err(rc, "meta get");
	*id_r = next++;
	v.mv_size = sizeof(next);
	v.mv_data = &next;
	if ((rc = mdb_put(txn, st->db_meta, &k, &v, 0)) != 0)
		return store_mdb_err(rc, "meta put");
	return STORE_OK;
}

static enum store_err
rate_count_txn(struct store *st, MDB_txn *txn, const char *address,
    int64_t now)
{
	MDB_val k = { strlen(address), (void *)address }, v;
	unsigned char rec[12];
	double period = atomic_load(&st->rate_period);
	int64_t start = now;
	uint32_t count = 0;
	int rc;

	rc = mdb_get(txn, st->db_qrate, &k, &v);
	if (rc == 0 && v.mv_size == 12) {
		start = (int64_t)be64_get(v.mv_data);
		count = be32_get((const unsigned char *)v.mv_data + 8);
	} else if (rc != 0 && rc != MDB_NOTFOUND) {
		return store_mdb_err(rc, "rate get");
	}
	if (now >= start + (int64_t)period || now < start) {
		start = now;
		count = 0;
	}
	if (count < UINT32_MAX)
		count++;
	be64_put(rec, (uint64_t)start);
	be32_put(rec + 8, count);
	v.mv_size = 12;
	v.mv_data = rec;
	if ((rc = mdb_put(txn, st->db_qrate, &k, &v, 0)) != 0)
		return store_mdb_err(rc, "rate put");
	return STORE_OK;
}

enum store_err
queue_commit_txn(struct store *st, MDB_txn *txn, struct queue_part *q,
    const char *tmp_path, uint64_t size, char **path_r)
{
	struct store_queue_msg m = q->env;
	struct buf b;
	char path[4096];
	int64_t now = (int64_t)time(NULL);
	enum store_err e;

	*path_r = NULL;
	q->id = 0;
	if ((e = marks_txn(st, txn, q)) != STORE_OK || q->n == 0)
		return e;
	if ((e = next_queue_id(st, txn, &m.id)) != STORE_OK)
		return e;
	store_queue_path(st, m.id, path, sizeof(path));
	/* A file already there was left by a process that died between this
	   link and its commit: the ID was never committed (the counter
	   proves it, and it is only read under the write lock), so nothing
	   refers to that file. */
	if (link(tmp_path, path) < 0 && (errno != EEXIST || unlink(path) < 0 ||
	    link(tmp_path, path) < 0))
		return store_set_error(STORE_ETEMP, "link queue file: %s",
		    strerror(errno));
	*path_r = xstrdup(path);
	m.size = size;
	m.arrival = now;
	m.next = 0;
	m.nrcpts = (uint32_t)q->n;
	buf_init(&b);
	for (size_t i = 0; i < q->n; i++) {
		q->rcpts[i].next_attempt = now;
		if ((e = rcpt_put_txn(st, txn, m.id, &q->rcpts[i], &b)) !=
		    STORE_OK)
			goto out;
	}
	if ((e = sched_update_txn(st, txn, &m, q->rcpts, now, &b)) != STORE_OK)
		goto out;
	if (m.auth_user[0] != '\0' && !(m.flags & STORE_QMF_DSN) &&
	    (e = rate_count_txn(st, txn, m.auth_user, now)) != STORE_OK)
		goto out;
	q->id = m.id;
out:
	buf_free(&b);
	return e;
}

enum store_err
store_queue_add(struct store *st, const void *msg, size_t len,
    const struct store_queue_msg *env, const struct store_queue_rcpt *rcpts,
    size_t n, uint64_t *id_r)
{
	struct store_delivery *d;
	enum store_err e;

	if (id_r != NULL)
		*id_r = 0;
	if ((e = store_delivery_new(st, &d)) != STORE_OK)
		return e;
	if ((e = store_delivery_write(d, msg, len)) == STORE_OK &&
	    (e = store_delivery_queue(d, env, rcpts, n)) == STORE_OK &&
	    (e = store_delivery_commit(d, 0, NULL)) == STORE_OK &&
	    id_r != NULL)
		*id_r = store_delivery_queue_id(d);
	store_delivery_free(&d);
	return e;
}

/* ---- reading ---- */

enum store_err
store_queue_due(struct store *st, int64_t now, size_t max, uint64_t **ids_r,
    size_t *n_r, int64_t *next_r)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	enum store_err e;
	int rc;

	*ids_r = NULL;
	*n_r = 0;
	if (next_r != NULL)
		*next_r = 0;
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if ((rc = mdb_cursor_open(txn, st->db_qsched, &c)) != 0) {
		mdb_txn_abort(txn);
		return store_mdb_err(rc, "queue cursor");
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const unsigned char *kp = k.mv_data;
		int64_t t;

		if (k.mv_size != 16)
			continue;
		t = (int64_t)be64_get(kp);
		if (t > now) {
			if (next_r != NULL)
				*next_r = t;
			break;
		}
		if (n >= max) {
			if (next_r != NULL)
				*next_r = t;
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			ids = xrealloc(ids, cap * sizeof(*ids));
		}
		ids[n++] = be64_get(kp + 8);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	*ids_r = ids;
	*n_r = n;
	return STORE_OK;
}

enum store_err
store_queue_get(struct store *st, uint64_t id, struct store_queue_msg *msg_r,
    struct store_queue_rcpt **rcpts_r, size_t *n_r)
{
	struct store_queue_msg m;
	MDB_txn *txn;
	enum store_err e;

	if (rcpts_r != NULL)
		*rcpts_r = NULL;
	if (n_r != NULL)
		*n_r = 0;
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	e = msg_get_txn(st, txn, id, &m);
	if (e == STORE_OK && rcpts_r != NULL) {
		e = rcpts_get_txn(st, txn, &m, rcpts_r);
		if (e == STORE_OK && n_r != NULL)
			*n_r = m.nrcpts;
	}
	mdb_txn_abort(txn);
	if (e == STORE_OK && msg_r != NULL)
		*msg_r = m;
	return e;
}

enum store_err
store_queue_open(struct store *st, uint64_t id, int *fd_r)
{
	char path[4096];
	int fd;

	*fd_r = -1;
	store_queue_path(st, id, path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return store_errno_err(path);
	*fd_r = fd;
	return STORE_OK;
}

enum store_err
store_queue_list(struct store *st, store_queue_list_cb *cb, void *arg)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	enum store_err e;
	int rc;

	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if ((rc = mdb_cursor_open(txn, st->db_qmsgs, &c)) != 0) {
		mdb_txn_abort(txn);
		return store_mdb_err(rc, "queue cursor");
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct store_queue_msg m;
		struct store_queue_rcpt *r;
		int stop;

		if (k.mv_size != 8 || qmsg_decode(&v, be64_get(k.mv_data),
		    &m) < 0)
			continue;
		if (rcpts_get_txn(st, txn, &m, &r) != STORE_OK)
			continue;
		stop = cb(arg, &m, r, m.nrcpts);
		free(r);
		if (stop)
			break;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return STORE_OK;
}

enum store_err
store_queue_log(struct store *st, uint64_t id, store_queue_log_cb *cb,
    void *arg)
{
	unsigned char key[8];
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k = { 8, key }, v;
	enum store_err e;
	int rc;

	be64_put(key, id);
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if ((rc = mdb_cursor_open(txn, st->db_qlog, &c)) != 0) {
		mdb_txn_abort(txn);
		return store_mdb_err(rc, "queue cursor");
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct store_queue_log_entry le;

		if (k.mv_size < 8 || memcmp(k.mv_data, key, 8) != 0)
			break;
		if (qlog_decode(&k, &v, &le) < 0)
			continue;
		if (cb(arg, &le))
			break;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return STORE_OK;
}

/* ---- attempts and results ---- */

/* The body of store_queue_begin_attempt in txn. STORE_ENOTFOUND and
   STORE_EPERM come before any write. */
static enum store_err
begin_txn(struct store *st, MDB_txn *txn, uint64_t id, uint32_t *idx,
    size_t *n, int64_t now, struct buf *b)
{
	struct store_queue_msg m;
	struct store_queue_rcpt *r = NULL;
	enum store_err e;
	size_t out = 0;

	if ((e = msg_get_txn(st, txn, id, &m)) != STORE_OK)
		return e;
	if (m.flags & STORE_QMF_HELD)
		return store_set_error(STORE_EPERM, "queue entry is held");
	if ((e = rcpts_get_txn(st, txn, &m, &r)) != STORE_OK)
		return e;
	for (size_t i = 0; i < *n; i++) {
		struct store_queue_rcpt *q;

		if (idx[i] >= m.nrcpts)
			continue;
		q = &r[idx[i]];
		if (q->state != STORE_QS_PENDING &&
		    q->state != STORE_QS_DEFERRED)
			continue;
		q->state = STORE_QS_INFLIGHT;
		q->attempts++;
		q->last_attempt = now;
		if ((e = rcpt_put_txn(st, txn, id, q, b)) != STORE_OK)
			goto out;
		idx[out++] = idx[i];
	}
	if ((e = sched_update_txn(st, txn, &m, r, now, b)) == STORE_OK)
		*n = out;
out:
	free(r);
	return e;
}

enum store_err
store_queue_begin_attempt(struct store *st, uint64_t id, uint32_t *idx,
    size_t *n, int64_t now)
{
	struct buf b;
	MDB_txn *txn;
	enum store_err e;

	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	buf_init(&b);
	if ((e = begin_txn(st, txn, id, idx, n, now, &b)) != STORE_OK) {
		mdb_txn_abort(txn);
		buf_free(&b);
		return e;
	}
	buf_free(&b);
	return store_txn_commit(txn);
}

enum store_err
store_queue_begin_attempts(struct store *st, struct store_queue_begin_item
    *items, size_t n, int64_t now)
{
	struct buf b;
	MDB_txn *txn;
	enum store_err e = STORE_OK;

	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	buf_init(&b);
	for (size_t i = 0; i < n; i++) {
		items[i].err = begin_txn(st, txn, items[i].id, items[i].idx,
		    &items[i].n, now, &b);
		if (items[i].err == STORE_ENOTFOUND ||
		    items[i].err == STORE_EPERM) {
			items[i].n = 0;
			continue;
		}
		if ((e = items[i].err) != STORE_OK)
			break;
	}
	buf_free(&b);
	if (e != STORE_OK) {
		mdb_txn_abort(txn);
		return e;
	}
	return store_txn_commit(txn);
}

static bool
results_valid(const struct store_queue_result *res, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (res[i].state != STORE_QS_SENT &&
		    res[i].state != STORE_QS_FAILED &&
		    res[i].state != STORE_QS_DEFERRED)
			return false;
	return true;
}

/* The body of store_queue_rcpt_results in txn; STORE_ENOTFOUND for a
   message that is gone comes before any write. */
static enum store_err
results_txn(struct store *st, MDB_txn *txn, uint64_t id, const uint32_t *idx,
    const struct store_queue_result *res, size_t n, struct buf *b)
{
	struct store_queue_msg m;
	struct store_queue_rcpt *r = NULL, *q;
	struct store_queue_log_entry le;
	enum store_err e;
	int64_t last_now = 0;

	if ((e = msg_get_txn(st, txn, id, &m)) != STORE_OK)
		return e;
	for (size_t i = 0; i < n; i++)
		if (idx[i] >= m.nrcpts)
			return store_set_error(STORE_ENOTFOUND,
			    "no such recipient");
	if ((e = rcpts_get_txn(st, txn, &m, &r)) != STORE_OK)
		return e;
	for (size_t i = 0; i < n; i++) {
		q = &r[idx[i]];
		q->state = res[i].state;
		q->flags |= res[i].set_flags;
		q->last_attempt = res[i].now;
		q->next_attempt = res[i].state == STORE_QS_DEFERRED ?
		    res[i].next_attempt : 0;
		copy_cut(q->status, res[i].status, sizeof(q->status));
		copy_cut(q->reply, res[i].reply, sizeof(q->reply));
		copy_cut(q->remote, res[i].remote, sizeof(q->remote));
		if ((e = rcpt_put_txn(st, txn, id, q, b)) != STORE_OK)
			goto out;
		memset(&le, 0, sizeof(le));
		le.time_us = now_us();
		copy_cut(le.address, q->address, sizeof(le.address));
		le.state = q->state;
		copy_cut(le.status, q->status, sizeof(le.status));
		copy_cut(le.reply, q->reply, sizeof(le.reply));
		copy_cut(le.remote, q->remote, sizeof(le.remote));
		if ((e = log_put_txn(st, txn, id, idx[i], &le, b)) !=
		    STORE_OK)
			goto out;
		if (res[i].now > last_now)
			last_now = res[i].now;
	}
	e = sched_update_txn(st, txn, &m, r, last_now, b);
out:
	free(r);
	return e;
}

enum store_err
store_queue_rcpt_results(struct store *st, uint64_t id, const uint32_t *idx,
    const struct store_queue_result *res, size_t n)
{
	struct buf b;
	MDB_txn *txn;
	enum store_err e;

	if (!results_valid(res, n))
		return store_set_error(STORE_EPERM, "bad result state");
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	buf_init(&b);
	if ((e = results_txn(st, txn, id, idx, res, n, &b)) != STORE_OK) {
		mdb_txn_abort(txn);
		buf_free(&b);
		return e;
	}
	buf_free(&b);
	return store_txn_commit(txn);
}

enum store_err
store_queue_rcpt_results_many(struct store *st,
    struct store_queue_result_item *items, size_t n)
{
	uint32_t *idx = xcalloc(n + 1, sizeof(*idx));
	struct store_queue_result *res = xcalloc(n + 1, sizeof(*res));
	struct buf b;
	MDB_txn *txn = NULL;
	enum store_err e = STORE_OK;

	for (size_t i = 0; i < n; i++)
		if (!results_valid(&items[i].res, 1))
			e = store_set_error(STORE_EPERM, "bad result state");
	if (e != STORE_OK || (e = store_txn_begin(st, true, &txn)) != STORE_OK)
		goto out;
	buf_init(&b);
	/* One run per message (consecutive items with the same id). */
	for (size_t i = 0, k; i < n && e == STORE_OK; i = k) {
		enum store_err one;

		for (k = i; k < n && items[k].id == items[i].id; k++) {
			idx[k - i] = items[k].idx;
			res[k - i] = items[k].res;
		}
		one = results_txn(st, txn, items[i].id, idx, res, k - i, &b);
		for (size_t x = i; x < k; x++)
			items[x].err = one;
		if (one != STORE_OK && one != STORE_ENOTFOUND)
			e = one;
	}
	buf_free(&b);
	if (e != STORE_OK)
		mdb_txn_abort(txn);
	else
		e = store_txn_commit(txn);
out:
	free(idx);
	free(res);
	return e;
}

/* One message's run of items[0..n) (all of one id) in txn. */
static enum store_err
retry_txn(struct store *st, MDB_txn *txn,
    const struct store_queue_result_item *items, size_t n, struct buf *b)
{
	struct store_queue_msg m;
	struct store_queue_rcpt *r = NULL;
	enum store_err e;
	int64_t now = (int64_t)time(NULL);

	if ((e = msg_get_txn(st, txn, items[0].id, &m)) != STORE_OK ||
	    (e = rcpts_get_txn(st, txn, &m, &r)) != STORE_OK)
		return e;
	for (size_t i = 0; i < n; i++) {
		struct store_queue_rcpt *q;

		if (items[i].idx >= m.nrcpts)
			continue;
		q = &r[items[i].idx];
		if (q->state != STORE_QS_INFLIGHT)
			continue;
		q->state = STORE_QS_DEFERRED;
		q->next_attempt = items[i].res.next_attempt > 0 ?
		    items[i].res.next_attempt : now;
		if ((e = rcpt_put_txn(st, txn, m.id, q, b)) != STORE_OK)
			goto out;
	}
	e = sched_update_txn(st, txn, &m, r, now, b);
out:
	free(r);
	return e;
}

enum store_err
store_queue_rcpt_retry(struct store *st,
    struct store_queue_result_item *items, size_t n)
{
	struct buf b;
	MDB_txn *txn;
	enum store_err e;

	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	buf_init(&b);
	for (size_t i = 0, k; i < n && e == STORE_OK; i = k) {
		for (k = i; k < n && items[k].id == items[i].id; k++)
			;
		e = retry_txn(st, txn, &items[i], k - i, &b);
		for (size_t x = i; x < k; x++)
			items[x].err = e;
		if (e == STORE_ENOTFOUND)
			e = STORE_OK;
	}
	buf_free(&b);
	if (e != STORE_OK) {
		mdb_txn_abort(txn);
		return e;
	}
	return store_txn_commit(txn);
}

enum store_err
store_queue_rcpt_result(struct store *st, uint64_t id, uint32_t idx,
    const struct store_queue_result *res)
{
	return store_queue_rcpt_results(st, id, &idx, res, 1);
}

enum store_err
store_queue_rcpt_set_flags(struct store *st, uint64_t id, uint32_t idx,
    uint32_t flags)
{
	struct store_queue_msg m;
	struct store_queue_rcpt q;
	struct buf b;
	MDB_txn *txn;
	enum store_err e;

	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	buf_init(&b);
	if ((e = msg_get_txn(st, txn, id, &m)) == STORE_OK &&
	    (e = rcpt_get_txn(st, txn, id, idx, &q)) == STORE_OK) {
		q.flags |= flags;
		e = rcpt_put_txn(st, txn, id, &q, &b);
	}
	buf_free(&b);
	if (e != STORE_OK) {
		mdb_txn_abort(txn);
		return e;
	}
	return store_txn_commit(txn);
}

/* Removes the records of id (in one transaction) and then its file;
   if_done: only when no recipient is active. */
static enum store_err
remove_entry(struct store *st, uint64_t id, bool if_done, const char *why,
    bool *removed_r)
{
	struct store_queue_msg m;
	struct store_queue_rcpt *r = NULL;
	struct buf b;
	char path[4096];
	MDB_txn *txn;
	enum store_err e;

	if (removed_r != NULL)
		*removed_r = false;
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	buf_init(&b);
	if ((e = msg_get_txn(st, txn, id, &m)) != STORE_OK)
		goto fail;
	if (if_done) {
		if ((e = rcpts_get_txn(st, txn, &m, &r)) != STORE_OK)
			goto fail;
		for (uint32_t i = 0; i < m.nrcpts; i++)
			if (state_active(r[i].state))
				goto fail;   /* e is STORE_OK: not removed */
	}
	if ((e = records_del_txn(st, txn, id, m.next)) != STORE_OK ||
	    (why != NULL && (e = log_msg_event(st, txn, id, why, &b)) !=
	    STORE_OK))
		goto fail;
	if ((e = store_txn_commit(txn)) != STORE_OK) {
		free(r);
		buf_free(&b);
		return e;
	}
	free(r);
	buf_free(&b);
	store_queue_path(st, id, path, sizeof(path));
	unlink(path);
	fsync_queue_dir(st);
	if (removed_r != NULL)
		*removed_r = true;
	return STORE_OK;
fail:
	mdb_txn_abort(txn);
	free(r);
	buf_free(&b);
	return e;
}

enum store_err
store_queue_finish(struct store *st, uint64_t id, bool *removed_r)
{
	return remove_entry(st, id, true, NULL, removed_r);
}

enum store_err
store_queue_finish_many(struct store *st, const uint64_t *ids, size_t n,
    bool *removed)
{
	MDB_txn *txn;
	enum store_err e = STORE_OK;
	char path[4096];

	for (size_t i = 0; i < n; i++)
		removed[i] = false;
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	for (size_t i = 0; i < n && e == STORE_OK; i++) {
		struct store_queue_msg m;
		struct store_queue_rcpt *r = NULL;
		bool active = false;

		if ((e = msg_get_txn(st, txn, ids[i], &m)) == STORE_ENOTFOUND) {
			e = STORE_OK;
			continue;
		}
		if (e != STORE_OK ||
		    (e = rcpts_get_txn(st, txn, &m, &r)) != STORE_OK)
			break;
		for (uint32_t k = 0; k < m.nrcpts; k++)
			if (state_active(r[k].state))
				active = true;
		free(r);
		if (!active && (e = records_del_txn(st, txn, ids[i], m.next)) ==
		    STORE_OK)
			removed[i] = true;
	}
	if (e != STORE_OK)
		mdb_txn_abort(txn);
	else
		e = store_txn_commit(txn);
	if (e != STORE_OK) {
		for (size_t i = 0; i < n; i++)
			removed[i] = false;
		return e;
	}
	for (size_t i = 0; i < n; i++)
		if (removed[i]) {
			store_queue_path(st, ids[i], path, sizeof(path));
			unlink(path);
		}
	fsync_queue_dir(st);
	return STORE_OK;
}

enum store_err
store_queue_delete(struct store *st, uint64_t id)
{
	enum store_err e = remove_entry(st, id, false,
	    "deleted by the administrator", NULL);

	if (e == STORE_OK)
		store_queue_wake(st);
	return e;
}

/* Applies one admin change to a message in one transaction. */
enum admin_op { OP_HOLD, OP_RELEASE, OP_FLUSH };

static enum store_err
admin_one_txn(struct store *st, MDB_txn *txn, struct store_queue_msg *m,
    enum admin_op op, int64_t now, struct buf *b)
{
	struct store_queue_rcpt *r;
	enum store_err e;

	if ((e = rcpts_get_txn(st, txn, m, &r)) != STORE_OK)
		return e;
	switch (op) {
	case OP_HOLD:
		m->flags |= STORE_QMF_HELD;
		break;
	case OP_RELEASE:
		m->flags &= ~(uint32_t)STORE_QMF_HELD;
		/* Released mail goes out at once. */
		/* fall through */
	case OP_FLUSH:
		for (uint32_t i = 0; i < m->nrcpts; i++) {
			if (r[i].state != STORE_QS_PENDING &&
			    r[i].state != STORE_QS_DEFERRED)
				continue;
			r[i].next_attempt = now;
			if ((e = rcpt_put_txn(st, txn, m->id, &r[i], b)) !=
			    STORE_OK)
				goto out;
		}
		break;
	}
	e = sched_update_txn(st, txn, m, r, now, b);
out:
	free(r);
	return e;
}

static enum store_err
admin_op(struct store *st, uint64_t id, enum admin_op op)
{
	struct store_queue_msg m;
	struct buf b;
	MDB_txn *txn;
	enum store_err e;
	int64_t now = (int64_t)time(NULL);

	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	buf_init(&b);
	if (id != 0) {
		if ((e = msg_get_txn(st, txn, id, &m)) == STORE_OK)
			e = admin_one_txn(st, txn, &m, op, now, &b);
		if (e == STORE_OK)
			e = log_msg_event(st, txn, id, op == OP_HOLD ?
			    "held by the administrator" : op == OP_RELEASE ?
			    "released by the administrator" :
			    "flushed by the administrator", &b);
	} else {
		MDB_cursor *c;
		MDB_val k, v;
		uint64_t *ids = NULL;
		size_t n = 0, cap = 0;
		int rc;

		/* Collect first: the loop below rewrites the DB. */
		if ((rc = mdb_cursor_open(txn, st->db_qmsgs, &c)) != 0) {
			e = store_mdb_err(rc, "queue cursor");
		} else {
			for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
			    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
				if (k.mv_size != 8)
					continue;
				if (n == cap) {
					cap = cap ? cap * 2 : 64;
					ids = xrealloc(ids, cap * sizeof(*ids));
				}
				ids[n++] = be64_get(k.mv_data);
			}
			mdb_cursor_close(c);
		}
		for (size_t i = 0; i < n && e == STORE_OK; i++) {
			/* Undecodable entries are recovery's business. */
			if (msg_get_txn(st, txn, ids[i], &m) != STORE_OK ||
			    (m.flags & STORE_QMF_HELD))
				continue;
			e = admin_one_txn(st, txn, &m, op, now, &b);
			if (e == STORE_ECORRUPT)
				e = STORE_OK;
		}
		free(ids);
	}
	buf_free(&b);
	if (e != STORE_OK) {
		mdb_txn_abort(txn);
		return e;
	}
	if ((e = store_txn_commit(txn)) == STORE_OK)
		store_queue_wake(st);
	return e;
}

enum store_err
store_queue_hold(struct store *st, uint64_t id)
{
	if (id == 0)
		return store_set_error(STORE_ENOTFOUND, "no such queue entry");
	return admin_op(st, id, OP_HOLD);
}

enum store_err
store_queue_release(struct store *st, uint64_t id)
{
	if (id == 0)
		return store_set_error(STORE_ENOTFOUND, "no such queue entry");
	return admin_op(st, id, OP_RELEASE);
}

enum store_err
store_queue_flush(struct store *st, uint64_t id)
{
	return admin_op(st, id, OP_FLUSH);
}

/* ---- recovery ---- */

/* Moves the file aside and removes the records, inside txn. */
static enum store_err
quarantine_txn(struct store *st, MDB_txn *txn, uint64_t id)
{
	char from[4096], to[4200], ids[24];
	unsigned char key[8];
	MDB_val k = { 8, key }, v;
	int64_t next = 0;
	enum store_err e;

	store_queue_path(st, id, from, sizeof(from));
	store_queue_id_str(id, ids, sizeof(ids));
	snprintf(to, sizeof(to), "%s/queue/corrupt/%s", st->data_dir, ids);
	if (rename(from, to) < 0 && errno != ENOENT)
		return store_errno_err("move queue file aside");
	/* The schedule key needs the time, which an undecodable record may
	   not give: look for the id among the keys instead. */
	be64_put(key, id);
	if (mdb_get(txn, st->db_qmsgs, &k, &v) == 0 && v.mv_size >= 30) {
		struct rd r = { v.mv_data, v.mv_size, false };
		get_u8(&r);
		get_u32(&r);
		get_u8(&r);
		get_u64(&r);
		get_u64(&r);
		next = (int64_t)get_u64(&r);
	}
	if ((e = records_del_txn(st, txn, id, next)) != STORE_OK)
		return e;
	return STORE_OK;
}

enum store_err
store_queue_quarantine(struct store *st, uint64_t id)
{
	MDB_txn *txn;
	enum store_err e;
	char dir[4200];

	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if ((e = quarantine_txn(st, txn, id)) != STORE_OK) {
		mdb_txn_abort(txn);
		return e;
	}
	snprintf(dir, sizeof(dir), "%s/queue/corrupt", st->data_dir);
	fsync_dir(dir);
	fsync_queue_dir(st);
	return store_txn_commit(txn);
}

static void
report_id(store_str_cb *report, void *arg, uint64_t id, const char *why)
{
	char ids[24];

	if (report == NULL)
		return;
	store_queue_id_str(id, ids, sizeof(ids));
	report(arg, ids, why);
}

/* Every message ID in the queue, so each can be looked at on its own. */
static enum store_err
recover_collect_ids(struct store *st, MDB_txn *txn, uint64_t **ids_r,
    size_t *n_r)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->db_qmsgs, &c)) != 0)
		return store_mdb_err(rc, "queue cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			ids = xrealloc(ids, cap * sizeof(*ids));
		}
		ids[n++] = be64_get(k.mv_data);
	}
	mdb_cursor_close(c);
	*ids_r = ids;
	*n_r = n;
	return STORE_OK;
}

/* One message: quarantined if unreadable or its file is gone, else its
   in-flight recipients deferred and it is put back on the schedule. */
static enum store_err
recover_msg_txn(struct store *st, MDB_txn *txn, uint64_t id, int64_t now,
    struct buf *b, struct store_queue_recover_stats *stats,
    store_str_cb *report, void *arg)
{
	struct store_queue_msg m;
	struct store_queue_rcpt *r = NULL;
	struct stat sb;
	const char *why = NULL;
	char path[4096];
	enum store_err e;

	e = msg_get_txn(st, txn, id, &m);
	if (e == STORE_OK)
		e = rcpts_get_txn(st, txn, &m, &r);
	if (e == STORE_ECORRUPT) {
		why = store_last_error();
	} else if (e != STORE_OK) {
		return e;
	} else {
		store_queue_path(st, id, path, sizeof(path));
		if (stat(path, &sb) < 0)
			why = "message file missing";
	}
	if (why != NULL) {
		char reason[256];
		free(r);
		str_copy(reason, why, sizeof(reason));
		if ((e = quarantine_txn(st, txn, id)) != STORE_OK)
			return e;
		stats->corrupt++;
		report_id(report, arg, id, reason);
		return STORE_OK;
	}
	for (uint32_t j = 0; j < m.nrcpts; j++) {
		if (r[j].state != STORE_QS_INFLIGHT)
			continue;
		r[j].state = STORE_QS_DEFERRED;
		r[j].next_attempt = now;
		stats->inflight++;
		if ((e = rcpt_put_txn(st, txn, m.id, &r[j], b)) != STORE_OK) {
			free(r);
			return e;
		}
	}
	m.next = 0;   /* the schedule was dropped */
	e = sched_update_txn(st, txn, &m, r, now, b);
	free(r);
	if (e != STORE_OK)
		return e;
	stats->messages++;
	return STORE_OK;
}

/* Files nobody committed: their 250 was never given. */
static void
recover_remove_orphans(struct store *st, int64_t now,
    struct store_queue_recover_stats *stats)
{
	char path[4096], dir[4200];
	DIR *d;
	struct dirent *de;

	snprintf(dir, sizeof(dir), "%s/queue", st->data_dir);
	d = opendir(dir);
	while (d != NULL && (de = readdir(d)) != NULL) {
		uint64_t id;
		struct stat sb;

		if (store_queue_id_parse(de->d_name, &id) < 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &sb) < 0 || !S_ISREG(sb.st_mode) ||
		    sb.st_mtime > now - QORPHAN_AGE)
			continue;
		if (store_queue_get(st, id, NULL, NULL, NULL) !=
		    STORE_ENOTFOUND)
			continue;
		if (unlink(path) == 0)
			stats->orphans++;
	}
	if (d != NULL)
		closedir(d);
}

enum store_err
store_queue_recover(struct store *st, int64_t now, store_str_cb *report,
    void *arg, struct store_queue_recover_stats *stats_r)
{
	struct store_queue_recover_stats stats = { 0 };
	MDB_txn *txn;
	uint64_t *ids = NULL;
	size_t n = 0;
	struct buf b;
	enum store_err e = STORE_OK;
	char dir[4200];
	int rc;

	if (stats_r != NULL)
		memset(stats_r, 0, sizeof(*stats_r));
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	buf_init(&b);
	/* Every message ID, then each one on its own. */
	if ((e = recover_collect_ids(st, txn, &ids, &n)) != STORE_OK)
		goto fail;
	/* The schedule is rebuilt from the rows. */
	if ((rc = mdb_drop(txn, st->db_qsched, 0)) != 0) {
		e = store_mdb_err(rc, "queue sched drop");
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		if ((e = recover_msg_txn(st, txn, ids[i], now, &b, &stats,
		    report, arg)) != STORE_OK)
			goto fail;
	if (stats.corrupt > 0) {
		snprintf(dir, sizeof(dir), "%s/queue/corrupt", st->data_dir);
		fsync_dir(dir);
	}
	if ((e = store_txn_commit(txn)) != STORE_OK) {
		txn = NULL;
		goto fail;
	}
	txn = NULL;
	recover_remove_orphans(st, now, &stats);
	free(ids);
	buf_free(&b);
	store_queue_log_prune(st, now - STORE_QUEUE_LOG_KEEP);
	if (stats_r != NULL)
		*stats_r = stats;
	return STORE_OK;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	free(ids);
	buf_free(&b);
	return e;
}

enum store_err
store_queue_log_prune(struct store *st, int64_t before)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	enum store_err e;
	int rc;

	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if ((rc = mdb_cursor_open(txn, st->db_qlog, &c)) != 0) {
		mdb_txn_abort(txn);
		return store_mdb_err(rc, "queue cursor");
	}
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0) {
		unsigned char again[20];
		size_t klen = k.mv_size < sizeof(again) ? k.mv_size :
		    sizeof(again);
		int64_t t = k.mv_size == 20 ?
		    (int64_t)(be64_get((const unsigned char *)k.mv_data + 8) /
		    1000000) : 0;

		if (t >= before) {
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		memcpy(again, k.mv_data, klen);
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		k.mv_size = klen;
		k.mv_data = again;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return store_mdb_err(rc, "queue log prune");
	}
	return store_txn_commit(txn);
}

/* ---- space and rate ---- */

bool
store_queue_space_ok(struct store *st, uint64_t size)
{
	struct statvfs sv;
	char dir[4096];
	uint64_t avail, total, margin;

	snprintf(dir, sizeof(dir), "%s/queue", st->data_dir);
	if (statvfs(dir, &sv) < 0)
		return true;   /* cannot tell: let the write find out */
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	total = (uint64_t)sv.f_blocks * sv.f_frsize;
	margin = total / 100;
	if (margin < 16ULL << 20)
		margin = 16ULL << 20;
	return avail > margin && avail - margin >= 2 * size;
}

bool
store_rate_check(struct store *st, const char *address, unsigned limit,
    double period, int64_t now, unsigned *count_r)
{
	MDB_txn *txn;
	MDB_val k = { strlen(address), (void *)address }, v;
	uint32_t count = 0;

	if (count_r != NULL)
		*count_r = 0;
	if (store_txn_begin(st, false, &txn) != STORE_OK)
		return limit == 0;
	if (mdb_get(txn, st->db_qrate, &k, &v) == 0 && v.mv_size == 12) {
		int64_t start = (int64_t)be64_get(v.mv_data);
		if (now >= start && now < start + (int64_t)period)
			count = be32_get((const unsigned char *)v.mv_data + 8);
	}
	mdb_txn_abort(txn);
	if (count_r != NULL)
		*count_r = count;
	return limit == 0 || count < limit;
}
