/* store_names: catches the maildir file names up with their flags after
   deferred flag changes (store_msg_set_flags_deferred writes the index
   only; the record keeps the letters its file's name still has).

   Which records can be behind: only those written after the mailbox's
   last complete catch-up. The MODSEQ index orders a mailbox's records by
   (modseq, uid), and every record write moves its entry past all others,
   so a mark "every entry up to (modseq, uid) has its name right", kept in
   the meta DB, bounds each catch-up by the changes since the previous one.
   A catch-up never changes a modseq: a name is no change a client sees.
   The mark only moves in a catch-up that renames something: looking
   without renaming is a read transaction. A mailbox without a mark has
   never had a name behind (names_expect puts one, at the start of the
   index, in the transaction that first leaves one behind), so it costs no
   scan at all, at a catch-up or at the daemon's start. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_private.h"

#define MARK_PREFIX     "names_ok"
#define MARK_PREFIX_LEN 8
#define MARK_KEY_LEN    (MARK_PREFIX_LEN + 4)
#define MARK_VAL_LEN    12

/* A position in the MODSEQ index of one mailbox. */
struct pos {
	uint64_t modseq;
	uint32_t uid;
};

static void
mark_key(unsigned char key[MARK_KEY_LEN], uint32_t mbox)
{
	memcpy(key, MARK_PREFIX, MARK_PREFIX_LEN);
	be32_put(key + MARK_PREFIX_LEN, mbox);
}

/* The mark of mbox; {0, 0} (before every entry) if there is none, and
   then *found_r false. */
static struct pos
mark_get(struct store *st, MDB_txn *txn, uint32_t mbox, bool *found_r)
{
	unsigned char key[MARK_KEY_LEN];
	MDB_val k = { sizeof(key), key }, v;
	struct pos p = { 0, 0 };

	mark_key(key, mbox);
	*found_r = false;
	if (mdb_get(txn, st->db_meta, &k, &v) == 0 &&
	    v.mv_size == MARK_VAL_LEN) {
		p.modseq = be64_get(v.mv_data);
		p.uid = be32_get((unsigned char *)v.mv_data + 8);
		*found_r = true;
	}
	return p;
}

static enum store_err
mark_put(struct store *st, MDB_txn *txn, uint32_t mbox, struct pos p)
{
	unsigned char key[MARK_KEY_LEN], val[MARK_VAL_LEN];
	MDB_val k = { sizeof(key), key }, v = { sizeof(val), val };
	int rc;

	mark_key(key, mbox);
	be64_put(val, p.modseq);
	be32_put(val + 8, p.uid);
	if ((rc = mdb_put(txn, st->db_meta, &k, &v, 0)) != 0)
		return store_mdb_err(rc, "names mark put");
	return STORE_OK;
}

enum store_err
names_expect(struct store *st, MDB_txn *txn, uint32_t mbox)
{
	bool found;

	(void)mark_get(st, txn, mbox, &found);
	return found ? STORE_OK : mark_put(st, txn, mbox, (struct pos){ 0, 0 });
}

enum store_err
names_forget(struct store *st, MDB_txn *txn, uint32_t mbox)
{
	unsigned char key[MARK_KEY_LEN];
	MDB_val k = { sizeof(key), key };
	int rc;

	mark_key(key, mbox);
	rc = mdb_del(txn, st->db_meta, &k, NULL);
	return rc != 0 && rc != MDB_NOTFOUND ?
	    store_mdb_err(rc, "names mark del") : STORE_OK;
}

/* Up to max positions of mbox's MODSEQ index entries after `after`, in
   order, into out; *more_r if entries remain past them. */
static enum store_err
entries_after(struct store *st, MDB_txn *txn, uint32_t mbox, struct pos after,
    struct pos *out, size_t max, size_t *n_r, bool *more_r)
{
	unsigned char key[MODSEQ_KEY_LEN];
	MDB_val k = { sizeof(key), key }, v;
	MDB_cursor *c;
	size_t n = 0;
	int rc;

	*more_r = false;
	modseq_idx_key(key, mbox, after.modseq, after.uid);
	if ((rc = mdb_cursor_open(txn, st->db_modseq, &c)) != 0)
		return store_mdb_err(rc, "cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const unsigned char *p = k.mv_data;
		struct pos e;
		if (k.mv_size != MODSEQ_KEY_LEN || be32_get(p) != mbox)
			break;
		e.modseq = be64_get(p + 4);
		e.uid = be32_get(p + 12);
		if (e.modseq == after.modseq && e.uid == after.uid)
			continue;   /* SET_RANGE lands on the mark itself */
		if (n == max) {
			*more_r = true;
			break;
		}
		out[n++] = e;
	}
	mdb_cursor_close(c);
	*n_r = n;
	return STORE_OK;
}

/* Whether a record of mbox after `after` has its name behind: read only,
   from the value's length (the trailer), so that a mailbox with nothing
   to rename costs no write transaction (and no fsync) at all. */
static enum store_err
any_behind(struct store *st, MDB_txn *txn, uint32_t mbox, struct pos after,
    bool *any_r)
{
	unsigned char key[MODSEQ_KEY_LEN], mkey[8];
	MDB_val k = { sizeof(key), key }, v, mk = { sizeof(mkey), mkey }, mv;
	MDB_cursor *c;
	int rc;

	*any_r = false;
	modseq_idx_key(key, mbox, after.modseq, after.uid);
	if ((rc = mdb_cursor_open(txn, st->db_modseq, &c)) != 0)
		return store_mdb_err(rc, "cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && !*any_r;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const unsigned char *p = k.mv_data;
		struct msg_head h;
		if (k.mv_size != MODSEQ_KEY_LEN || be32_get(p) != mbox)
			break;
		msg_key(mkey, mbox, be32_get(p + 12));
		if (mdb_get(txn, st->db_msgs, &mk, &mv) != 0 ||
		    mv.mv_size < sizeof(h))
			continue;
		memcpy(&h, mv.mv_data, sizeof(h));
		*any_r = mv.mv_size > sizeof(h) + h.base_len;
	}
	mdb_cursor_close(c);
	return STORE_OK;
}

/* Renames one record's file to its flags' name and records that. *done_r
   is set if there was a name to catch up. */
static enum store_err
catch_up_one(struct store *st, MDB_txn *txn, const struct mbox_rec *mb,
    const char *dir, uint32_t uid, struct rename_log *l, bool *done_r)
{
	struct msg_rec m;
	char nname[512];
	unsigned char key[8];
	struct buf b;
	enum store_err e;
	int rc;

	*done_r = false;
	e = msg_rec_get(st, txn, mb->id, uid, &m);
	if (e == STORE_ENOTFOUND)
		return STORE_OK;
	if (e != STORE_OK || !m.behind)
		return e;
	msg_want_name(&m, nname, sizeof(nname));
	if ((e = msg_rename_to(dir, mb, &m, nname, l)) != STORE_OK)
		return e;
	m.behind = false;
	/* Straight into the DB: the modseq (and its index entry) stay. */
	msg_key(key, mb->id, uid);
	MDB_val k = { sizeof(key), key };
	buf_init(&b);
	msg_rec_encode(&m, &b);
	MDB_val v = { b.len, b.data };
	rc = mdb_put(txn, st->db_msgs, &k, &v, 0);
	buf_free(&b);
	if (rc != 0)
		return store_mdb_err(rc, "msg put");
	*done_r = true;
	return STORE_OK;
}

/* One batch in txn: the mark moves past every entry looked at. */
static enum store_err
catch_up_txn(struct store *st, MDB_txn *txn, uint32_t mbox_id, size_t max,
    struct rename_log *l, bool *more_r)
{
	struct mbox_rec mb;
	char dir[4096], cur[4200];
	struct pos mark, *ents;
	size_t n = 0, renamed = 0, i;
	enum store_err e;

	if ((e = mbox_rec_get(st, txn, mbox_id, &mb)) != STORE_OK ||
	    (e = mbox_dir(st, txn, &mb, dir, sizeof(dir))) != STORE_OK ||
	    (e = pending_settle(st, txn, &mb, dir)) != STORE_OK)
		return e;
	mark = mark_get(st, txn, mbox_id, &(bool){ false });
	/* Records already right cost a lookup each: look at a few times as
	   many as may be renamed. */
	ents = xmalloc(4 * max * sizeof(*ents));
	if ((e = entries_after(st, txn, mbox_id, mark, ents, 4 * max, &n,
	    more_r)) != STORE_OK)
		goto out;
	snprintf(cur, sizeof(cur), "%s/cur", dir);
	l->dfd = open(cur, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (i = 0; i < n && renamed < max; i++) {
		bool done;
		if ((e = catch_up_one(st, txn, &mb, dir, ents[i].uid, l,
		    &done)) != STORE_OK)
			goto out;
		renamed += done;
	}
	if (i < n)
		*more_r = true;
	if (i > 0 && (e = mark_put(st, txn, mbox_id, ents[i - 1])) != STORE_OK)
		goto out;
	/* The record's letters claim the new names: they must be on disk
	   before the commit makes the claim. */
	if (l->n > 0 && (l->dfd < 0 || fsync(l->dfd) < 0) &&
	    fsync_dir(cur) < 0)
		e = store_errno_err("fsync dir");
out:
	free(ents);
	return e;
}

enum store_err
store_names_catch_up(struct store *st, uint32_t mbox_id, size_t max,
    bool *more_r)
{
	struct rename_log l = { .dfd = -1 };
	MDB_txn *txn;
	enum store_err e;

	*more_r = false;
	if (max == 0)
		max = 1;
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	bool any = false, found;
	struct pos mark = mark_get(st, txn, mbox_id, &found);
	e = found ? any_behind(st, txn, mbox_id, mark, &any) : STORE_OK;
	mdb_txn_abort(txn);
	if (e != STORE_OK || !any)
		return e;
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	e = catch_up_txn(st, txn, mbox_id, max, &l, more_r);
	if (e == STORE_OK)
		e = store_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	rename_log_free(&l, e != STORE_OK);
	if (l.dfd >= 0)
		close(l.dfd);
	if (e != STORE_OK)
		*more_r = false;
	/* The mailbox went away: nothing left to rename. */
	return e == STORE_ENOTFOUND ? STORE_OK : e;
}

enum store_err
store_names_pending(struct store *st, uint32_t **ids_r, size_t *n_r)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	uint32_t *ids = NULL;
	size_t n = 0;
	enum store_err e;
	int rc;

	*ids_r = NULL;
	*n_r = 0;
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if ((rc = mdb_cursor_open(txn, st->db_mboxes, &c)) != 0) {
		mdb_txn_abort(txn);
		return store_mdb_err(rc, "cursor");
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint32_t id;
		bool any, found;
		struct pos mark;
		if (k.mv_size != sizeof(id))
			continue;
		memcpy(&id, k.mv_data, sizeof(id));
		mark = mark_get(st, txn, id, &found);
		if (!found)
			continue;
		if ((e = any_behind(st, txn, id, mark, &any)) != STORE_OK)
			break;
		if (!any)
			continue;
		ids = xrealloc(ids, (n + 1) * sizeof(*ids));
		ids[n++] = id;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (e != STORE_OK) {
		free(ids);
		return e;
	}
	*ids_r = ids;
	*n_r = n;
	return STORE_OK;
}
