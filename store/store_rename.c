/* store_rename: RENAME of a mailbox and its children ("old/..."), which
   only rewrites names (directories are named by id, so nothing moves on
   disk), and RENAME INBOX, which moves INBOX's messages into a new mailbox
   and leaves INBOX empty (RFC 3501 6.3.5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_private.h"

/* Moves every message of src into dst (same user), keeping UIDs: used for
   RENAME INBOX, where dst is brand new with its own UIDVALIDITY. Files are
   staged (store_pending.c): linked into dst's postroom-adding/ (*linked)
   and moved from src's cur/ into its postroom-removing/ (*old), so that a
   failed commit or a crash loses nothing and leaves nothing twice. */
static enum store_err
move_all_messages(struct store *st, MDB_txn *txn, struct mbox_rec *src,
    const char *sdir, struct mbox_rec *dst, const char *ddir,
    struct pending_list *linked, struct pending_list *old)
{
	MDB_cursor *c;
	MDB_val k, v;
	unsigned char prefix[4];
	enum store_err e = STORE_OK;
	uint32_t *uids = NULL;
	size_t n = 0;
	uint64_t ms;

	if ((e = pending_settle(st, txn, src, sdir)) != STORE_OK ||
	    (e = pending_settle(st, txn, dst, ddir)) != STORE_OK)
		return e;
	if ((e = mbox_next_modseq(st, txn, src, sdir, &ms)) != STORE_OK)
		return e;
	be32_put(prefix, src->id);
	if (mdb_cursor_open(txn, st->db_msgs, &c) != 0)
		return store_set_error(STORE_EINTERNAL, "cursor");
	k.mv_size = 4;
	k.mv_data = prefix;
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || memcmp(k.mv_data, prefix, 4) != 0)
			break;
		uids = xrealloc(uids, (n + 1) * sizeof(*uids));
		uids[n++] = be32_get((unsigned char *)k.mv_data + 4);
	}
	mdb_cursor_close(c);
	for (size_t i = 0; i < n && e == STORE_OK; i++) {
		struct msg_rec m;
		unsigned char ok[8], nk[8];
		char from[4200], to[4200], fname[512];
		uint32_t uid = uids[i];
		MDB_val okv = { 8, ok }, nkv = { 8, nk }, cv;
		struct buf b;
		int prc;

		msg_key(ok, src->id, uid);
		msg_key(nk, dst->id, uid);
		if (mdb_get(txn, st->db_msgs, &okv, &v) != 0 ||
		    msg_rec_decode(&v, &m) < 0)
			continue;
		m.uid = uid;	/* the uid lives in the key, not the value */
		if (m.behind && (e = names_expect(st, txn, dst->id)) !=
		    STORE_OK)
			break;
		if ((e = modseq_idx_del(st, txn, src->id, m.h.modseq,
		    uid)) != STORE_OK)
			break;
		/* Keywords keep their bit: dst starts with src's list. */
		m.h.modseq = dst->highestmodseq;
		if (msg_find_path(sdir, src, &m, from, sizeof(from)) == 0) {
			char staged[4200];
			msg_file_name(dst, &m, fname, sizeof(fname));
			if (pending_add(from, ddir, fname, to, sizeof(to)) < 0) {
				e = store_errno_err("link message");
				break;
			}
			pending_list_add(linked, to, NULL);
			if (pending_remove(from, sdir, staged,
			    sizeof(staged)) < 0) {
				e = store_errno_err("stage message");
				break;
			}
			pending_list_add(old, staged, from);
		}
		buf_init(&b);
		msg_rec_encode(&m, &b);
		MDB_val nv = { b.len, b.data };
		prc = mdb_put(txn, st->db_msgs, &nkv, &nv, 0);
		buf_free(&b);
		if (prc == 0 && (e = modseq_idx_put(st, txn, dst->id,
		    m.h.modseq, uid)) != STORE_OK)
			break;
		if (prc == 0 && mdb_get(txn, st->db_cache, &okv, &cv) == 0) {
			buf_init(&b);
			buf_append(&b, cv.mv_data, cv.mv_size);
			MDB_val ncv = { b.len, b.data };
			prc = mdb_put(txn, st->db_cache, &nkv, &ncv, 0);
			buf_free(&b);
			mdb_del(txn, st->db_cache, &okv, NULL);
		}
		if (prc == 0)
			prc = mdb_del(txn, st->db_msgs, &okv, NULL);
		/* Tombstone for QRESYNC clients of INBOX. */
		MDB_val tv = { sizeof(ms), &ms };
		if (prc == 0)
			prc = mdb_put(txn, st->db_tombs, &okv, &tv, 0);
		if (prc != 0) {
			e = store_mdb_err(prc, "move message");
			break;
		}
		mbox_counters_add(dst, &m, 1);
		if (uid >= dst->uidnext)
			dst->uidnext = uid + 1;
	}
	free(uids);
	if (e != STORE_OK)
		return e;
	if (dst->uidnext >= dst->reserved_uid)
		dst->reserved_uid = dst->uidnext + STORE_RESERVE_CHUNK;
	src->messages = src->unseen = src->recent = src->deleted = 0;
	src->size = 0;
	return STORE_OK;
}

static enum store_err
rename_inbox(struct store *st, MDB_txn *txn, struct user_rec *u,
    const char *new_name, struct pending_list *linked, struct pending_list *old)
{
	struct mbox_rec inbox, dst;
	char sdir[4096], ddir[4096];
	uint32_t id;
	enum store_err e;

	if ((e = mbox_lookup(st, txn, u->id, "INBOX", &id)) != STORE_OK ||
	    (e = mbox_rec_get(st, txn, id, &inbox)) != STORE_OK)
		return e;
	if ((e = mbox_create_txn(st, txn, u, new_name, 0, &dst)) != STORE_OK)
		return e;
	dst.nkeywords = inbox.nkeywords;
	memcpy(dst.keywords, inbox.keywords, sizeof(dst.keywords));
	dst.uidnext = inbox.uidnext;
	dst.reserved_uid = inbox.uidnext + STORE_RESERVE_CHUNK;
	if ((e = mbox_dir(st, txn, &inbox, sdir, sizeof(sdir))) != STORE_OK ||
	    (e = mbox_dir(st, txn, &dst, ddir, sizeof(ddir))) != STORE_OK)
		return e;
	if ((e = move_all_messages(st, txn, &inbox, sdir, &dst, ddir, linked,
	    old)) != STORE_OK)
		return e;
	if (mbox_file_write(ddir, &dst) < 0)
		return store_errno_err("mailbox file");
	if (pending_sync(ddir, linked->n > 0, false) < 0 ||
	    pending_sync(sdir, false, old->n > 0) < 0)
		return store_errno_err("fsync dir");
	if ((e = mbox_rec_put(st, txn, &inbox)) != STORE_OK ||
	    (e = mbox_rec_put(st, txn, &dst)) != STORE_OK)
		return e;
	if (user_file_write(st, u) < 0)
		return store_errno_err("user file");
	return user_rec_put(st, txn, u);
}

enum store_err
store_mailbox_rename(struct store *st, uint32_t user_id, const char *old_name,
    const char *new_name)
{
	char on[STORE_MAILBOX_NAME_MAX + 1], nn[STORE_MAILBOX_NAME_MAX + 1];
	MDB_txn *txn;
	struct user_rec u;
	uint32_t *ids = NULL, *moved = NULL;
	size_t n = 0, nmoved = 0;
	struct pending_list linked = { 0 }, old = { 0 };
	enum store_err e;
	uint32_t id;

	if (mailbox_name_normalize(old_name, on) < 0)
		return store_set_error(STORE_ENOTFOUND, "no such mailbox");
	if (mailbox_name_normalize(new_name, nn) < 0)
		return store_set_error(STORE_EPERM, "invalid mailbox name");
	size_t ol = strlen(on), nl = strlen(nn);
	if (strcmp(on, nn) == 0)
		return store_set_error(STORE_EEXISTS, "same name");
	if (nl > ol && strncmp(nn, on, ol) == 0 && nn[ol] == '/')
		return store_set_error(STORE_EPERM,
		    "cannot rename a mailbox into itself");
	if (strcmp(nn, "INBOX") == 0)
		return store_set_error(STORE_EEXISTS, "INBOX exists");
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if ((e = user_rec_get(st, txn, user_id, &u)) != STORE_OK)
		goto fail;
	if ((e = mbox_lookup(st, txn, user_id, on, &id)) != STORE_OK)
		goto fail;
	if (mbox_lookup(st, txn, user_id, nn, &id) == STORE_OK) {
		e = store_set_error(STORE_EEXISTS, "mailbox exists");
		goto fail;
	}
	if (strcmp(on, "INBOX") == 0) {
		if ((e = rename_inbox(st, txn, &u, nn, &linked, &old)))
			goto fail;
		mbox_lookup(st, txn, user_id, "INBOX", &id);
		moved = xmalloc(sizeof(*moved));
		moved[nmoved++] = id;
		goto commit;
	}
	if ((e = user_mbox_ids(st, txn, user_id, &ids, &n)) != STORE_OK)
		goto fail;
	/* First check every target name is free, then move. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			struct mbox_rec r;
			char newn[STORE_MAILBOX_NAME_MAX + 2];
			unsigned char key[4 + STORE_MAILBOX_NAME_MAX];
			size_t kl;
			if ((e = mbox_rec_get(st, txn, ids[i], &r)) != STORE_OK)
				goto fail;
			size_t rl = strlen(r.name);
			if (!(strcmp(r.name, on) == 0 || (rl > ol &&
			    strncmp(r.name, on, ol) == 0 && r.name[ol] == '/')))
				continue;
			if (nl + (rl - ol) > STORE_MAILBOX_NAME_MAX) {
				e = store_set_error(STORE_ELIMIT, "name too long");
				goto fail;
			}
			snprintf(newn, sizeof(newn), "%s%s", nn, r.name + ol);
			uint32_t other;
			if (pass == 0) {
				if (mbox_lookup(st, txn, user_id, newn,
				    &other) == STORE_OK) {
					e = store_set_error(STORE_EEXISTS,
					    "mailbox %s exists", newn);
					goto fail;
				}
				continue;
			}
			name_key(key, &kl, user_id, r.name);
			MDB_val k = { kl, key };
			mdb_del(txn, st->db_mbox_names, &k, NULL);
			str_copy(r.name, newn, sizeof(r.name));
			name_key(key, &kl, user_id, r.name);
			MDB_val k2 = { kl, key }, v = { sizeof(r.id), &r.id };
			int rc = mdb_put(txn, st->db_mbox_names, &k2, &v, 0);
			if (rc != 0) {
				e = store_mdb_err(rc, "name put");
				goto fail;
			}
			if ((e = mbox_rec_put(st, txn, &r)) != STORE_OK ||
			    (e = mbox_file_sync(st, txn, &r, NULL)) != STORE_OK)
				goto fail;
			moved = xrealloc(moved, (nmoved + 1) * sizeof(*moved));
			moved[nmoved++] = r.id;
		}
	}
commit:
	if ((e = store_txn_commit(txn)) != STORE_OK) {
		pending_list_done(&old, PENDING_UNDO);
		pending_list_done(&linked, PENDING_UNDO);
		goto out;
	}
	pending_list_done(&linked, PENDING_PUBLISH);
	pending_list_done(&old, PENDING_UNLINK);
	for (size_t i = 0; i < nmoved; i++)
		notify_touch(st, moved[i]);
	goto out;
fail:
	mdb_txn_abort(txn);
	pending_list_done(&old, PENDING_UNDO);
	pending_list_done(&linked, PENDING_UNDO);
out:
	free(ids);
	free(moved);
	return e;
}
