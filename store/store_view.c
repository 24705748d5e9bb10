/* store_view: a cursor pass over a mailbox's message records that hands
   each head to the caller as it goes. The IMAP view of a large mailbox is
   built from it straight into its own array: no list of the store's
   records is allocated, filled and copied first. */
#include <string.h>

#include "store_private.h"
#include "store_view.h"

/* Walks mbox's records (keys mbox|uid, ascending) with c. */
static void
scan_records(MDB_cursor *c, uint32_t mbox_id, store_msg_scan_fn fn,
    void *arg)
{
	unsigned char key[8];
	MDB_val k = { sizeof(key), key }, v;
	struct store_msg m;
	struct msg_head h;
	int rc;

	msg_key(key, mbox_id, 0);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || memcmp(k.mv_data, key, 4) != 0)
			break;
		/* the same records store_msg_list lists */
		if (v.mv_size < sizeof(h))
			continue;
		memcpy(&h, v.mv_data, sizeof(h));
		m.uid = be32_get((unsigned char *)k.mv_data + 4);
		m.flags = h.flags;
		m.keywords = h.keywords;
		m.modseq = h.modseq;
		m.size = h.size;
		m.internaldate = h.internaldate;
		m.internal_tz = h.internal_tz;
		fn(arg, &m);
	}
}

enum store_err
store_msg_scan(struct store *st, uint32_t mbox_id, struct store_mailbox *mb_r,
    store_msg_scan_fn fn, void *arg)
{
	MDB_txn *txn;
	MDB_cursor *c;
	struct mbox_rec r;
	enum store_err e;

	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if ((e = mbox_rec_get(st, txn, mbox_id, &r)) != STORE_OK)
		goto out;
	mbox_to_public(st, txn, &r, mb_r);
	if (mdb_cursor_open(txn, st->db_msgs, &c) != 0) {
		e = store_set_error(STORE_EINTERNAL, "cursor");
		goto out;
	}
	scan_records(c, mbox_id, fn, arg);
	mdb_cursor_close(c);
out:
	mdb_txn_abort(txn);
	return e;
}
