/* store_mailbox: mailbox records, names, rename/delete, subscriptions,
   \Recent claims and change notification files. Each mailbox directory is
   named by its numeric id and carries a postroom-mailbox file mirroring its
   name, UIDVALIDITY, keywords and reserved uid/modseq marks, so the index
   can be rebuilt from the files without ever reusing a UID. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_private.h"

/* ---- names ---- */

static bool
utf8_is_valid(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + n >= len)
			return false;
		for (size_t j = 1; j <= n; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		if (cp >= 0x80 && cp < 0xa0)   /* C1 controls */
			return false;
		i += n + 1;
	}
	return true;
}

/* out: STORE_MAILBOX_NAME_MAX + 1 bytes. 0 or -1. */
int
mailbox_name_normalize(const char *in, char *out)
{
	size_t len;

	if (in == NULL)
		return -1;
	len = strlen(in);
	while (len > 0 && in[len - 1] == '/')
		len--;
	if (len == 0 || len > STORE_MAILBOX_NAME_MAX || in[0] == '/')
		return -1;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)in[i] < 0x20 || in[i] == 0x7f)
			return -1;
	if (!utf8_is_valid((const unsigned char *)in, len))
		return -1;
	memcpy(out, in, len);
	out[len] = '\0';
	/* Components: none empty, "." or "..". */
	for (const char *p = out; ;) {
		const char *slash = strchr(p, '/');
		size_t cl = slash ? (size_t)(slash - p) : strlen(p);
		if (cl == 0 || (cl == 1 && p[0] == '.') ||
		    (cl == 2 && p[0] == '.' && p[1] == '.'))
			return -1;
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	if (strncasecmp(out, "INBOX", 5) == 0 &&
	    (out[5] == '\0' || out[5] == '/'))
		memcpy(out, "INBOX", 5);
	return 0;
}

void
name_key(unsigned char *key, size_t *len_r, uint32_t user_id, const char *name)
{
	size_t nl = strlen(name);

	be32_put(key, user_id);
	memcpy(key + 4, name, nl);
	*len_r = 4 + nl;
}

/* ---- records ---- */

enum store_err
mbox_rec_get(struct store *st, MDB_txn *txn, uint32_t id, struct mbox_rec *mb_r)
{
	MDB_val k = { sizeof(id), &id }, v;
	int rc = mdb_get(txn, st->db_mboxes, &k, &v);

	if (rc == MDB_NOTFOUND)
		return store_set_error(STORE_ENOTFOUND, "no mailbox id %u", id);
	if (rc != 0)
		return store_mdb_err(rc, "mailbox get");
	if (v.mv_size != sizeof(*mb_r))
		return store_set_error(STORE_ECORRUPT, "bad mailbox record");
	memcpy(mb_r, v.mv_data, sizeof(*mb_r));
	return STORE_OK;
}

enum store_err
mbox_rec_put(struct store *st, MDB_txn *txn, const struct mbox_rec *mb)
{
	MDB_val k = { sizeof(mb->id), (void *)&mb->id };
	MDB_val v = { sizeof(*mb), (void *)mb };
	int rc = mdb_put(txn, st->db_mboxes, &k, &v, 0);

	return rc ? store_mdb_err(rc, "mailbox put") : STORE_OK;
}

enum store_err
mbox_lookup(struct store *st, MDB_txn *txn, uint32_t user_id, const char *name,
    uint32_t *id_r)
{
	char norm[STORE_MAILBOX_NAME_MAX + 1];
	unsigned char key[4 + STORE_MAILBOX_NAME_MAX];
	size_t kl;
	MDB_val k, v;
	int rc;

	if (mailbox_name_normalize(name, norm) < 0)
		return store_set_error(STORE_ENOTFOUND, "no such mailbox");
	name_key(key, &kl, user_id, norm);
	k.mv_size = kl;
	k.mv_data = key;
	rc = mdb_get(txn, st->db_mbox_names, &k, &v);
	if (rc == MDB_NOTFOUND)
		return store_set_error(STORE_ENOTFOUND, "no such mailbox");
	if (rc != 0)
		return store_mdb_err(rc, "mailbox name get");
	memcpy(id_r, v.mv_data, sizeof(*id_r));
	return STORE_OK;
}

enum store_err
mbox_dir(struct store *st, MDB_txn *txn, const struct mbox_rec *mb, char *buf,
    size_t size)
{
	struct user_rec u;
	char udir[4096];
	enum store_err e;

	if ((e = user_rec_get(st, txn, mb->user_id, &u)) != STORE_OK)
		return e;
	user_dir(st, u.address, udir, sizeof(udir));
	snprintf(buf, size, "%s/%u", udir, mb->id);
	return STORE_OK;
}

static bool
is_subscribed(struct store *st, MDB_txn *txn, uint32_t user_id,
    const char *name)
{
	unsigned char key[4 + STORE_MAILBOX_NAME_MAX];
	size_t kl;
	MDB_val k, v;

	name_key(key, &kl, user_id, name);
	k.mv_size = kl;
	k.mv_data = key;
	return mdb_get(txn, st->db_subs, &k, &v) == 0;
}

/* mbox_to_public but for the subscription (left false): SELECT does not
   report it, and on a cold cache its lookup is one more B-tree read. */
static void
mbox_fill_public(const struct mbox_rec *r, struct store_mailbox *mb)
{
	mb->id = r->id;
	mb->user_id = r->user_id;
	str_copy(mb->name, r->name, sizeof(mb->name));
	mb->uidvalidity = r->uidvalidity;
	mb->uidnext = r->uidnext;
	mb->highestmodseq = r->highestmodseq;
	mb->messages = r->messages;
	mb->unseen = r->unseen;
	mb->recent = r->recent;
	mb->first_recent_uid = r->first_recent_uid;
	mb->deleted = r->deleted;
	mb->size = r->size;
	mb->special_use = r->special_use;
	mb->subscribed = false;
	mb->nkeywords = r->nkeywords;
	memcpy(mb->keywords, r->keywords, sizeof(mb->keywords));
}

void
mbox_to_public(struct store *st, MDB_txn *txn, const struct mbox_rec *r,
    struct store_mailbox *mb)
{
	mbox_fill_public(r, mb);
	mb->subscribed = is_subscribed(st, txn, r->user_id, r->name);
}

/* ---- postroom-mailbox file ---- */

int
mbox_file_write(const char *dir, const struct mbox_rec *mb)
{
	char path[4200];
	struct buf b;
	int ret;

	buf_init(&b);
	buf_printf(&b, "name %s\nuidvalidity %u\nspecial_use %u\n"
	    "reserved_uid %u\nreserved_modseq %llu\n", mb->name,
	    mb->uidvalidity, mb->special_use, mb->reserved_uid,
	    (unsigned long long)mb->reserved_modseq);
	for (uint32_t i = 0; i < mb->nkeywords; i++)
		buf_printf(&b, "keyword %s\n", mb->keywords[i]);
	snprintf(path, sizeof(path), "%s/" STORE_MBOX_FILE, dir);
	ret = write_file_atomic(path, b.data, b.len);
	buf_free(&b);
	return ret;
}

int
mbox_file_read(const char *dir, struct mbox_rec *mb)
{
	char path[4200];
	char *s, *line, *save = NULL;
	bool have_name = false;

	snprintf(path, sizeof(path), "%s/" STORE_MBOX_FILE, dir);
	if ((s = read_file_str(path)) == NULL)
		return -1;
	mb->nkeywords = 0;
	for (line = strtok_r(s, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');
		if (sp == NULL)
			continue;
		*sp++ = '\0';
		if (strcmp(line, "name") == 0) {
			have_name = mailbox_name_normalize(sp, mb->name) == 0;
		} else if (strcmp(line, "uidvalidity") == 0) {
			mb->uidvalidity = (uint32_t)strtoul(sp, NULL, 10);
		} else if (strcmp(line, "special_use") == 0) {
			mb->special_use = (uint32_t)strtoul(sp, NULL, 10);
		} else if (strcmp(line, "reserved_uid") == 0) {
			mb->reserved_uid = (uint32_t)strtoul(sp, NULL, 10);
		} else if (strcmp(line, "reserved_modseq") == 0) {
			mb->reserved_modseq = strtoull(sp, NULL, 10);
		} else if (strcmp(line, "keyword") == 0 &&
		    mb->nkeywords < STORE_MAX_KEYWORDS &&
		    strlen(sp) <= STORE_KEYWORD_MAX) {
			str_copy(mb->keywords[mb->nkeywords++], sp,
			    STORE_KEYWORD_MAX + 1);
		}
	}
	free(s);
	return have_name ? 0 : -1;
}

enum store_err
mbox_file_sync(struct store *st, MDB_txn *txn, const struct mbox_rec *mb,
    const char *dir)
{
	char buf[4096];

	if (dir == NULL) {
		enum store_err e = mbox_dir(st, txn, mb, buf, sizeof(buf));
		if (e != STORE_OK)
			return e;
		dir = buf;
	}
	if (mbox_file_write(dir, mb) < 0)
		return store_errno_err("mailbox file");
	return STORE_OK;
}

enum store_err
mbox_next_uid(struct store *st, MDB_txn *txn, struct mbox_rec *mb,
    const char *dir, uint32_t *uid_r)
{
	if (mb->uidnext >= UINT32_MAX - STORE_RESERVE_CHUNK)
		return store_set_error(STORE_ELIMIT, "uid space exhausted");
	*uid_r = mb->uidnext++;
	if (mb->uidnext >= mb->reserved_uid) {
		/* The mark must be on disk before any uid past it is. */
		mb->reserved_uid = mb->uidnext + STORE_RESERVE_CHUNK;
		return mbox_file_sync(st, txn, mb, dir);
	}
	return STORE_OK;
}

enum store_err
mbox_next_modseq(struct store *st, MDB_txn *txn, struct mbox_rec *mb,
    const char *dir, uint64_t *modseq_r)
{
	*modseq_r = ++mb->highestmodseq;
	if (mb->highestmodseq + 1 >= mb->reserved_modseq) {
		mb->reserved_modseq = mb->highestmodseq + 1 + STORE_RESERVE_CHUNK;
		return mbox_file_sync(st, txn, mb, dir);
	}
	return STORE_OK;
}

static bool
keyword_is_valid(const char *k)
{
	size_t len = strlen(k);

	if (len == 0 || len > STORE_KEYWORD_MAX || k[0] == '\\')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = k[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

enum store_err
mbox_keywords_bits(struct mbox_rec *mb, const char *const *kw, size_t n,
    bool add, uint32_t *bits_r, bool *added_r)
{
	uint32_t bits = 0;

	for (size_t i = 0; i < n; i++) {
		uint32_t j;
		if (kw[i] == NULL || !keyword_is_valid(kw[i]))
			return store_set_error(STORE_EPERM, "invalid keyword");
		for (j = 0; j < mb->nkeywords; j++)
			if (strcasecmp(mb->keywords[j], kw[i]) == 0)
				break;
		if (j == mb->nkeywords) {
			if (!add)
				continue;
			if (mb->nkeywords >= STORE_MAX_KEYWORDS)
				return store_set_error(STORE_ELIMIT,
				    "too many keywords in mailbox");
			str_copy(mb->keywords[j], kw[i], STORE_KEYWORD_MAX + 1);
			mb->nkeywords++;
			if (added_r != NULL)
				*added_r = true;
		}
		bits |= 1u << j;
	}
	*bits_r = bits;
	return STORE_OK;
}

void
notify_touch(struct store *st, uint32_t mbox_id)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/notify/%u", st->data_dir, mbox_id);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (pwrite(fd, "x", 1, 0) < 0) {
		/* Nothing to do: a watcher will see the next change. */
	}
	close(fd);
}

void
store_mailbox_notify_path(struct store *st, uint32_t mbox_id, char *buf,
    size_t size)
{
	snprintf(buf, size, "%s/notify/%u", st->data_dir, mbox_id);
}

enum store_err
mbox_create_txn(struct store *st, MDB_txn *txn, struct user_rec *u,
    const char *name, uint32_t special_use, struct mbox_rec *mb)
{
	unsigned char key[4 + STORE_MAILBOX_NAME_MAX];
	char dir[4096], sub[4200];
	size_t kl;
	enum store_err e;
	int rc;

	memset(mb, 0, sizeof(*mb));
	if (mailbox_name_normalize(name, mb->name) < 0)
		return store_set_error(STORE_EPERM, "invalid mailbox name");
	if ((e = meta_next_id(st, txn, "next_mbox_id", &mb->id)) != STORE_OK)
		return e;
	mb->user_id = u->id;
	uint32_t now = (uint32_t)time(NULL);
	mb->uidvalidity = now > u->last_uidvalidity ? now :
	    u->last_uidvalidity + 1;
	u->last_uidvalidity = mb->uidvalidity;
	mb->uidnext = 1;
	mb->first_recent_uid = 1;
	mb->highestmodseq = 1;
	mb->reserved_uid = 1 + STORE_RESERVE_CHUNK;
	mb->reserved_modseq = 2 + STORE_RESERVE_CHUNK;
	mb->special_use = special_use;
	name_key(key, &kl, u->id, mb->name);
	MDB_val k = { kl, key }, v = { sizeof(mb->id), &mb->id };
	rc = mdb_put(txn, st->db_mbox_names, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST)
		return store_set_error(STORE_EEXISTS, "mailbox exists");
	if (rc != 0)
		return store_mdb_err(rc, "mailbox name put");
	if ((e = mbox_rec_put(st, txn, mb)) != STORE_OK)
		return e;
	if ((e = mbox_dir(st, txn, mb, dir, sizeof(dir))) != STORE_OK) {
		/* The user record may not be written yet (user_add). */
		char udir[4096];
		user_dir(st, u->address, udir, sizeof(udir));
		snprintf(dir, sizeof(dir), "%s/%u", udir, mb->id);
	}
	static const char *const subs[] = { "cur", "new", "tmp" };
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]);
		if (mkdir_p(sub, 0700) < 0)
			return store_errno_err(sub);
	}
	if (mbox_file_write(dir, mb) < 0)
		return store_errno_err("mailbox file");
	notify_touch(st, mb->id);
	return STORE_OK;
}

/* ---- public: lookup and listing ---- */

enum store_err
store_mailbox_get(struct store *st, uint32_t user_id, const char *name,
    struct store_mailbox *mb_r)
{
	MDB_txn *txn;
	struct mbox_rec r;
	uint32_t id;
	enum store_err e;

	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if ((e = mbox_lookup(st, txn, user_id, name, &id)) == STORE_OK &&
	    (e = mbox_rec_get(st, txn, id, &r)) == STORE_OK && mb_r != NULL)
		mbox_to_public(st, txn, &r, mb_r);
	mdb_txn_abort(txn);
	return e;
}

enum store_err
store_mailbox_get_by_id(struct store *st, uint32_t mbox_id,
    struct store_mailbox *mb_r)
{
	MDB_txn *txn;
	struct mbox_rec r;
	enum store_err e;

	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if ((e = mbox_rec_get(st, txn, mbox_id, &r)) == STORE_OK && mb_r)
		mbox_to_public(st, txn, &r, mb_r);
	mdb_txn_abort(txn);
	return e;
}

/* Collects the mailbox ids of a user, in name order, from txn. */
enum store_err
user_mbox_ids(struct store *st, MDB_txn *txn, uint32_t user_id,
    uint32_t **ids_r, size_t *n_r)
{
	MDB_cursor *c;
	MDB_val k, v;
	unsigned char prefix[4];
	uint32_t *ids = NULL;
	size_t n = 0;

	be32_put(prefix, user_id);
	if (mdb_cursor_open(txn, st->db_mbox_names, &c) != 0)
		return store_set_error(STORE_EINTERNAL, "cursor");
	k.mv_size = 4;
	k.mv_data = prefix;
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 4 || memcmp(k.mv_data, prefix, 4) != 0)
			break;
		ids = xrealloc(ids, (n + 1) * sizeof(*ids));
		memcpy(&ids[n++], v.mv_data, sizeof(uint32_t));
	}
	mdb_cursor_close(c);
	*ids_r = ids;
	*n_r = n;
	return STORE_OK;
}

enum store_err
store_mailbox_list(struct store *st, uint32_t user_id,
    struct store_mailbox **mbs_r, size_t *n_r)
{
	MDB_txn *txn;
	uint32_t *ids = NULL;
	size_t n = 0;
	struct store_mailbox *mbs = NULL;
	enum store_err e;

	*mbs_r = NULL;
	*n_r = 0;
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if ((e = user_mbox_ids(st, txn, user_id, &ids, &n)) != STORE_OK)
		goto out;
	mbs = n ? xcalloc(n, sizeof(*mbs)) : NULL;
	for (size_t i = 0; i < n; i++) {
		struct mbox_rec r;
		if ((e = mbox_rec_get(st, txn, ids[i], &r)) != STORE_OK) {
			free(mbs);
			mbs = NULL;
			goto out;
		}
		mbox_to_public(st, txn, &r, &mbs[i]);
	}
	*mbs_r = mbs;
	*n_r = n;
out:
	mdb_txn_abort(txn);
	free(ids);
	return e;
}

enum store_err
store_mailbox_create(struct store *st, uint32_t user_id, const char *name,
    uint32_t special_use, struct store_mailbox *mb_r)
{
	MDB_txn *txn;
	struct user_rec u;
	struct mbox_rec r;
	char norm[STORE_MAILBOX_NAME_MAX + 1];
	enum store_err e;

	if (mailbox_name_normalize(name, norm) < 0)
		return store_set_error(STORE_EPERM, "invalid mailbox name");
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if ((e = user_rec_get(st, txn, user_id, &u)) != STORE_OK)
		goto fail;
	if ((e = mbox_create_txn(st, txn, &u, norm, special_use, &r)))
		goto fail;
	if ((e = user_rec_put(st, txn, &u)) != STORE_OK)
		goto fail;
	/* The file keeps the last UIDVALIDITY for a rebuild: a mailbox
	   created after one must never get an old value again. */
	if (user_file_write(st, &u) < 0) {
		e = store_errno_err("user file");
		goto fail;
	}
	if (mb_r != NULL)
		mbox_to_public(st, txn, &r, mb_r);
	return store_txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return e;
}

enum store_err
mbox_purge_txn(struct store *st, MDB_txn *txn, uint32_t mbox_id)
{
	const MDB_dbi dbis[] = { st->db_msgs, st->db_cache, st->db_tombs };
	unsigned char prefix[4];
	MDB_val k, v;

	be32_put(prefix, mbox_id);
	for (size_t w = 0; w < ARRAY_SIZE(dbis); w++) {
		MDB_cursor *c;
		if (mdb_cursor_open(txn, dbis[w], &c) != 0)
			return store_set_error(STORE_EINTERNAL, "cursor");
		k.mv_size = 4;
		k.mv_data = prefix;
		for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
		    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			if (k.mv_size != 8 || memcmp(k.mv_data, prefix, 4) != 0)
				break;
			int drc = mdb_cursor_del(c, 0);
			if (drc != 0) {
				mdb_cursor_close(c);
				return store_mdb_err(drc, "purge");
			}
		}
		mdb_cursor_close(c);
	}
	enum store_err e = names_forget(st, txn, mbox_id);
	return e != STORE_OK ? e : modseq_idx_purge(st, txn, mbox_id);
}

enum store_err
store_mailbox_delete(struct store *st, uint32_t user_id, const char *name)
{
	MDB_txn *txn;
	struct mbox_rec r;
	struct user_rec u;
	unsigned char key[4 + STORE_MAILBOX_NAME_MAX];
	size_t kl;
	uint32_t id;
	char dir[4096];
	enum store_err e;

	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if ((e = mbox_lookup(st, txn, user_id, name, &id)) != STORE_OK ||
	    (e = mbox_rec_get(st, txn, id, &r)) != STORE_OK ||
	    (e = user_rec_get(st, txn, user_id, &u)) != STORE_OK)
		goto fail;
	if (strcmp(r.name, "INBOX") == 0) {
		e = store_set_error(STORE_EPERM, "INBOX cannot be deleted");
		goto fail;
	}
	if ((e = mbox_dir(st, txn, &r, dir, sizeof(dir))) != STORE_OK)
		goto fail;
	if ((e = mbox_purge_txn(st, txn, id)) != STORE_OK)
		goto fail;
	u.used = u.used > r.size ? u.used - r.size : 0;
	if ((e = user_rec_put(st, txn, &u)) != STORE_OK)
		goto fail;
	name_key(key, &kl, user_id, r.name);
	MDB_val k = { kl, key }, mk = { sizeof(id), &id };
	mdb_del(txn, st->db_mbox_names, &k, NULL);
	mdb_del(txn, st->db_mboxes, &mk, NULL);
	/* Remove the mirror first: a crash now must not resurrect it. */
	char mf[4200];
	snprintf(mf, sizeof(mf), "%s/" STORE_MBOX_FILE, dir);
	unlink(mf);
	if ((e = store_txn_commit(txn)) != STORE_OK) {
		/* The mailbox lives on: put its mirror back for a reindex. */
		(void)mbox_file_write(dir, &r);
		return e;
	}
	rm_rf(dir);
	notify_touch(st, id);
	snprintf(dir, sizeof(dir), "%s/notify/%u", st->data_dir, id);
	unlink(dir);
	return STORE_OK;
fail:
	mdb_txn_abort(txn);
	return e;
}

/* ---- subscriptions ---- */

void
subs_file_write(struct store *st, MDB_txn *txn, uint32_t user_id)
{
	struct user_rec u;
	MDB_cursor *c;
	MDB_val k, v;
	unsigned char prefix[4];
	char dir[4096], path[4200];
	struct buf b;

	if (user_rec_get(st, txn, user_id, &u) != STORE_OK)
		return;
	buf_init(&b);
	be32_put(prefix, user_id);
	if (mdb_cursor_open(txn, st->db_subs, &c) == 0) {
		k.mv_size = 4;
		k.mv_data = prefix;
		for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
		    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			if (k.mv_size < 4 || memcmp(k.mv_data, prefix, 4) != 0)
				break;
			buf_append(&b, (char *)k.mv_data + 4, k.mv_size - 4);
			buf_putc(&b, '\n');
		}
		mdb_cursor_close(c);
	}
	user_dir(st, u.address, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/" STORE_SUBS_FILE, dir);
	write_file_atomic(path, b.data ? b.data : "", b.len);
	buf_free(&b);
}

enum store_err
subs_add_txn(struct store *st, MDB_txn *txn, uint32_t user_id,
    const char *name)
{
	unsigned char key[4 + STORE_MAILBOX_NAME_MAX];
	size_t kl;
	int rc;

	name_key(key, &kl, user_id, name);
	MDB_val k = { kl, key }, v = { 0, "" };
	rc = mdb_put(txn, st->db_subs, &k, &v, 0);
	return rc ? store_mdb_err(rc, "subscription") : STORE_OK;
}

enum store_err
store_subscription_set(struct store *st, uint32_t user_id, const char *name,
    bool subscribed)
{
	char norm[STORE_MAILBOX_NAME_MAX + 1];
	unsigned char key[4 + STORE_MAILBOX_NAME_MAX];
	size_t kl;
	MDB_txn *txn;
	enum store_err e;
	int rc;

	if (mailbox_name_normalize(name, norm) < 0)
		return store_set_error(STORE_EPERM, "invalid mailbox name");
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	name_key(key, &kl, user_id, norm);
	MDB_val k = { kl, key }, v = { 0, "" };
	rc = subscribed ? mdb_put(txn, st->db_subs, &k, &v, 0) :
	    mdb_del(txn, st->db_subs, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return store_mdb_err(rc, "subscription");
	}
	subs_file_write(st, txn, user_id);
	return store_txn_commit(txn);
}

enum store_err
store_subscription_list(struct store *st, uint32_t user_id, char ***names_r,
    size_t *n_r)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	unsigned char prefix[4];
	char **names = NULL;
	size_t n = 0;
	enum store_err e;

	*names_r = NULL;
	*n_r = 0;
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	be32_put(prefix, user_id);
	if (mdb_cursor_open(txn, st->db_subs, &c) != 0) {
		mdb_txn_abort(txn);
		return store_set_error(STORE_EINTERNAL, "cursor");
	}
	k.mv_size = 4;
	k.mv_data = prefix;
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 4 || memcmp(k.mv_data, prefix, 4) != 0)
			break;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrndup((char *)k.mv_data + 4, k.mv_size - 4);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	*names_r = names;
	*n_r = n;
	return STORE_OK;
}

/* Restores subscriptions from the mirror file (reindex). */
void
subs_restore_txn(struct store *st, MDB_txn *txn, uint32_t user_id,
    const char *udir)
{
	char path[4200];
	char *s, *line, *save = NULL;

	snprintf(path, sizeof(path), "%s/" STORE_SUBS_FILE, udir);
	if ((s = read_file_str(path)) == NULL)
		return;
	for (line = strtok_r(s, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char norm[STORE_MAILBOX_NAME_MAX + 1];
		unsigned char key[4 + STORE_MAILBOX_NAME_MAX];
		size_t kl;
		if (mailbox_name_normalize(line, norm) < 0)
			continue;
		name_key(key, &kl, user_id, norm);
		MDB_val k = { kl, key }, v = { 0, "" };
		mdb_put(txn, st->db_subs, &k, &v, 0);
	}
	free(s);
}

enum store_err
store_mailbox_claim_recent(struct store *st, uint32_t mbox_id,
    uint32_t *first_recent_uid_r)
{
	uint32_t uidnext;

	return store_mailbox_claim_recent_range(st, mbox_id, first_recent_uid_r,
	    &uidnext);
}

/* One step of a cursor over mbox's records in direction op: 1 with the
   record's flags, 0 at the mailbox's end. */
static int
unseen_step(MDB_cursor *c, uint32_t mbox, MDB_cursor_op op, bool *seen_r)
{
	MDB_val k, v;
	struct msg_head h;

	if (mdb_cursor_get(c, &k, &v, op) != 0 || k.mv_size != 8 ||
	    be32_get(k.mv_data) != mbox || v.mv_size < sizeof(h))
		return 0;
	memcpy(&h, v.mv_data, sizeof(h));
	*seen_r = (h.flags & STORE_F_SEEN) != 0;
	return 1;
}

/* Positions c on mbox's first (last if last) record: 0 if it has none. */
static int
unseen_start(MDB_cursor *c, uint32_t mbox, bool last, bool *seen_r)
{
	unsigned char key[8];
	MDB_val k = { 8, key }, v;

	msg_key(key, mbox, last ? UINT32_MAX : 0);
	if (!last)
		return mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) == 0 &&
		    unseen_step(c, mbox, MDB_GET_CURRENT, seen_r);
	if (mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) != 0)
		return unseen_step(c, mbox, MDB_LAST, seen_r);
	return unseen_step(c, mbox, MDB_PREV, seen_r);
}

/* The MSN of r's first message without \Seen, 0 if none. The mailbox's
   counters say how many there are, so the scan runs from both ends at
   once and stops at whichever finds it first: from the front the first
   unseen record, from the back the unseen-th one counted backwards (whose
   MSN is messages minus the records passed). The cost is the distance of
   that message to the nearer end, not the mailbox size: read mail is
   usually at the front and new mail at the back. The back end is only
   looked at when the first record is seen: on a cold cache every page
   touched is a disk read. */
static uint32_t
first_unseen_msn(struct store *st, MDB_txn *txn, const struct mbox_rec *r)
{
	MDB_cursor *fc = NULL, *bc = NULL;
	uint32_t fi = 0, bi = 0, bunseen = 0, msn = 0;
	bool fseen, bseen;
	int fok, bok;

	if (r->unseen == 0 || r->messages == 0)
		return 0;
	if (r->unseen == r->messages)
		return 1;
	if (mdb_cursor_open(txn, st->db_msgs, &fc) != 0)
		return 0;
	fok = unseen_start(fc, r->id, false, &fseen);
	if (fok && !fseen) {
		mdb_cursor_close(fc);
		return 1;
	}
	if (mdb_cursor_open(txn, st->db_msgs, &bc) != 0)
		goto out;
	bok = unseen_start(bc, r->id, true, &bseen);
	while (fok || bok) {
		if (fok) {
			fi++;
			if (!fseen) {
				msn = fi;
				break;
			}
			fok = unseen_step(fc, r->id, MDB_NEXT, &fseen);
		}
		if (bok) {
			bi++;
			if (!bseen && ++bunseen == r->unseen) {
				msn = r->messages >= bi ? r->messages - bi + 1 : 1;
				break;
			}
			bok = unseen_step(bc, r->id, MDB_PREV, &bseen);
		}
	}
out:
	mdb_cursor_close(fc);
	if (bc != NULL)
		mdb_cursor_close(bc);
	return msn;
}

/* Fills sel from r (claim: the caller's range was [first, uidnext) with
   recent messages, and r is already past it). */
static void
select_fill(struct store *st, MDB_txn *txn, const struct mbox_rec *r,
    bool claim, uint32_t first, uint32_t recent, struct store_select *sel)
{
	mbox_fill_public(r, &sel->mb);
	sel->recent_lo = claim ? first : r->first_recent_uid;
	sel->recent_hi = r->uidnext;
	sel->recent = claim ? recent : r->recent;
	sel->first_unseen = first_unseen_msn(st, txn, r);
}

/* store_mailbox_select in a read (write false) or write transaction;
   *again_r: a claim is due, which the read transaction cannot make. */
static enum store_err
select_txn(struct store *st, uint32_t user_id, const char *name, bool write,
    bool claim, struct store_select *sel_r, bool *again_r)
{
	MDB_txn *txn;
	struct mbox_rec r;
	uint32_t id, first, recent;
	enum store_err e;

	*again_r = false;
	if ((e = store_txn_begin(st, write, &txn)) != STORE_OK)
		return e;
	if ((e = mbox_lookup(st, txn, user_id, name, &id)) != STORE_OK ||
	    (e = mbox_rec_get(st, txn, id, &r)) != STORE_OK)
		goto fail;
	first = r.first_recent_uid;
	recent = r.recent;
	if (!claim || r.first_recent_uid == r.uidnext) {
		select_fill(st, txn, &r, claim, first, recent, sel_r);
		mdb_txn_abort(txn);
		return STORE_OK;
	}
	if (!write) {
		*again_r = true;
		mdb_txn_abort(txn);
		return STORE_OK;
	}
	r.first_recent_uid = r.uidnext;
	r.recent = 0;
	if ((e = mbox_rec_put(st, txn, &r)) != STORE_OK)
		goto fail;
	select_fill(st, txn, &r, claim, first, recent, sel_r);
	return store_txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return e;
}

/* A read transaction unless there is something to claim: a SELECT then
   never waits for the writer lock (a bulk STORE elsewhere holds it for
   seconds). */
enum store_err
store_mailbox_select(struct store *st, uint32_t user_id, const char *name,
    bool claim, struct store_select *sel_r)
{
	bool again;
	enum store_err e;

	e = select_txn(st, user_id, name, false, claim, sel_r, &again);
	if (e != STORE_OK || !again)
		return e;
	return select_txn(st, user_id, name, true, claim, sel_r, &again);
}

enum store_err
store_mailbox_claim_recent_range(struct store *st, uint32_t mbox_id,
    uint32_t *first_r, uint32_t *uidnext_r)
{
	MDB_txn *txn;
	struct mbox_rec r;
	enum store_err e;

	/* Nothing unclaimed (the common case: another session took it, or
	   nothing came): a read, without waiting for the writer lock. */
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	e = mbox_rec_get(st, txn, mbox_id, &r);
	mdb_txn_abort(txn);
	if (e != STORE_OK)
		return e;
	if (r.first_recent_uid == r.uidnext) {
		*first_r = *uidnext_r = r.uidnext;
		return STORE_OK;
	}
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if ((e = mbox_rec_get(st, txn, mbox_id, &r)) != STORE_OK)
		goto fail;
	*first_r = r.first_recent_uid;
	*uidnext_r = r.uidnext;
	if (r.first_recent_uid == r.uidnext) {
		mdb_txn_abort(txn);
		return STORE_OK;
	}
	r.first_recent_uid = r.uidnext;
	r.recent = 0;
	if ((e = mbox_rec_put(st, txn, &r)) != STORE_OK)
		goto fail;
	return store_txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return e;
}
