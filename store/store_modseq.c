/* store_modseq: the per-mailbox MODSEQ-ordered secondary index
   (be32 mbox + be64 modseq + be32 uid -> empty) over the message records,
   so that "what changed since modseq M" (the question every selected IMAP
   session asks after any flag change) costs the number of changes, not
   the size of the mailbox. Kept by msg_rec_put / msg_remove_txn and the
   purges; rebuilt from the records when an older store is opened. */
#include <stdlib.h>
#include <string.h>

#include "store_private.h"

void
modseq_idx_key(unsigned char key[MODSEQ_KEY_LEN], uint32_t mbox, uint64_t modseq,
    uint32_t uid)
{
	be32_put(key, mbox);
	be64_put(key + 4, modseq);
	be32_put(key + 12, uid);
}

enum store_err
modseq_idx_put(struct store *st, MDB_txn *txn, uint32_t mbox, uint64_t modseq,
    uint32_t uid)
{
	unsigned char key[MODSEQ_KEY_LEN];
	MDB_val k = { sizeof(key), key }, v = { 0, key };
	int rc;

	modseq_idx_key(key, mbox, modseq, uid);
	rc = mdb_put(txn, st->db_modseq, &k, &v, 0);
	return rc ? store_mdb_err(rc, "modseq index put") : STORE_OK;
}

enum store_err
modseq_idx_del(struct store *st, MDB_txn *txn, uint32_t mbox, uint64_t modseq,
    uint32_t uid)
{
	unsigned char key[MODSEQ_KEY_LEN];
	MDB_val k = { sizeof(key), key };
	int rc;

	modseq_idx_key(key, mbox, modseq, uid);
	rc = mdb_del(txn, st->db_modseq, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_mdb_err(rc, "modseq index del");
	return STORE_OK;
}

enum store_err
modseq_idx_purge(struct store *st, MDB_txn *txn, uint32_t mbox)
{
	unsigned char prefix[4];
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	be32_put(prefix, mbox);
	if (mdb_cursor_open(txn, st->db_modseq, &c) != 0)
		return store_set_error(STORE_EINTERNAL, "cursor");
	k.mv_size = sizeof(prefix);
	k.mv_data = prefix;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != MODSEQ_KEY_LEN ||
		    memcmp(k.mv_data, prefix, 4) != 0)
			break;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_mdb_err(rc, "modseq index purge");
	return STORE_OK;
}

enum store_err
modseq_idx_build(struct store *st, MDB_txn *txn)
{
	MDB_cursor *c;
	MDB_val k, v;
	enum store_err e = STORE_OK;
	int rc;

	if (mdb_cursor_open(txn, st->db_msgs, &c) != 0)
		return store_set_error(STORE_EINTERNAL, "cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct msg_head h;
		const unsigned char *kp = k.mv_data;
		if (k.mv_size != 8 || v.mv_size < sizeof(h))
			continue;
		memcpy(&h, v.mv_data, sizeof(h));
		if ((e = modseq_idx_put(st, txn, be32_get(kp), h.modseq,
		    be32_get(kp + 4))) != STORE_OK)
			break;
	}
	mdb_cursor_close(c);
	return e;
}

static int
u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int
modseq_idx_changed(struct store *st, MDB_txn *txn, uint32_t mbox,
    uint64_t min_modseq, size_t max, uint32_t **uids_r, size_t *n_r)
{
	unsigned char key[MODSEQ_KEY_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*uids_r = NULL;
	*n_r = 0;
	if (min_modseq == UINT64_MAX)
		return 0;
	if (mdb_cursor_open(txn, st->db_modseq, &c) != 0)
		return -1;
	modseq_idx_key(key, mbox, min_modseq + 1, 0);
	k.mv_size = sizeof(key);
	k.mv_data = key;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != MODSEQ_KEY_LEN || memcmp(k.mv_data, key, 4) != 0)
			break;
		if (n == max) {
			/* Many changes: a plain scan in uid order is cheaper
			   than this many random lookups. */
			mdb_cursor_close(c);
			free(uids);
			return -1;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			uids = xrealloc(uids, cap * sizeof(*uids));
		}
		uids[n++] = be32_get((const unsigned char *)k.mv_data + 12);
	}
	mdb_cursor_close(c);
	if (n > 1)
		qsort(uids, n, sizeof(*uids), u32_cmp);
	*uids_r = uids;
	*n_r = n;
	return 0;
}
