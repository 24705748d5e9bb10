/* store_user: domains, users, aliases, recipient resolution, password
   checks and per-user advisory locks. Users are mirrored in a small
   postroom-user file in their maildir so that reindex can bring a user back
   after the index was lost. Never logs passwords or hashes. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "auth.h"
#include "store_private.h"

static const char *const default_mailboxes[] = {
	"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive" };
static const uint32_t default_special[] = {
	0, STORE_SU_DRAFTS, STORE_SU_SENT, STORE_SU_TRASH, STORE_SU_JUNK,
	STORE_SU_ARCHIVE };

bool
local_part_is_valid(const char *s, size_t len)
{
	if (len == 0 || len > 64 || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool
domain_is_valid(const char *d)
{
	size_t len = strlen(d);

	if (len == 0 || len > 253 || d[0] == '.' || d[0] == '-' ||
	    d[len - 1] == '.' || strstr(d, "..") != NULL)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = d[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* Lowercases and splits an address; 0 or -1. local/domain point into buf. */
static int
addr_split(const char *address, char *buf, size_t size, char **local_r,
    char **domain_r)
{
	char *at;

	if (address == NULL || strlen(address) > STORE_ADDRESS_MAX ||
	    str_copy(buf, address, size) >= size)
		return -1;
	str_lower(buf);
	at = strrchr(buf, '@');
	if (at == NULL || at == buf || !domain_is_valid(at + 1))
		return -1;
	*at = '\0';
	*local_r = buf;
	*domain_r = at + 1;
	return 0;
}

static bool
domain_exists(struct store *st, MDB_txn *txn, const char *domain)
{
	MDB_val k = { strlen(domain), (void *)domain }, v;

	return mdb_get(txn, st->db_domains, &k, &v) == 0;
}

void
user_dir(struct store *st, const char *address, char *buf, size_t size)
{
	const char *at = strrchr(address, '@');

	if (at == NULL) {
		snprintf(buf, size, "%s/mail/_/%s", st->data_dir, address);
		return;
	}
	snprintf(buf, size, "%s/mail/%s/%.*s", st->data_dir, at + 1,
	    (int)(at - address), address);
}

int
user_file_write(struct store *st, const struct user_rec *u)
{
	char dir[4096], path[4200];
	char *s;
	int ret;

	user_dir(st, u->address, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/" STORE_USER_FILE, dir);
	s = xasprintf("id %u\nquota %llu\nuidvalidity %u\nhash %s\n", u->id,
	    (unsigned long long)u->quota, u->last_uidvalidity, u->hash);
	ret = write_file_atomic(path, s, strlen(s));
	free(s);
	return ret;
}

enum store_err
user_rec_get(struct store *st, MDB_txn *txn, uint32_t id, struct user_rec *u_r)
{
	MDB_val k = { sizeof(id), &id }, v;
	int rc = mdb_get(txn, st->db_users, &k, &v);

	if (rc == MDB_NOTFOUND)
		return store_set_error(STORE_ENOTFOUND, "no user id %u", id);
	if (rc != 0)
		return store_mdb_err(rc, "user get");
	if (v.mv_size != sizeof(*u_r))
		return store_set_error(STORE_ECORRUPT, "bad user record %u", id);
	memcpy(u_r, v.mv_data, sizeof(*u_r));
	return STORE_OK;
}

enum store_err
user_rec_put(struct store *st, MDB_txn *txn, const struct user_rec *u)
{
	MDB_val k = { sizeof(u->id), (void *)&u->id };
	MDB_val v = { sizeof(*u), (void *)u };
	int rc = mdb_put(txn, st->db_users, &k, &v, 0);

	return rc ? store_mdb_err(rc, "user put") : STORE_OK;
}

static enum store_err
addr_lookup(struct store *st, MDB_txn *txn, const char *addr, uint32_t *id_r)
{
	MDB_val k = { strlen(addr), (void *)addr }, v;
	int rc = mdb_get(txn, st->db_addrs, &k, &v);

	if (rc == MDB_NOTFOUND)
		return store_set_error(STORE_ENOTFOUND, "no such user");
	if (rc != 0)
		return store_mdb_err(rc, "address get");
	if (v.mv_size != sizeof(*id_r))
		return store_set_error(STORE_ECORRUPT, "bad address record");
	memcpy(id_r, v.mv_data, sizeof(*id_r));
	return STORE_OK;
}

static bool
alias_exists(struct store *st, MDB_txn *txn, const char *addr)
{
	MDB_val k = { strlen(addr), (void *)addr }, v;

	return mdb_get(txn, st->db_aliases, &k, &v) == 0;
}

static void
user_to_public(const struct user_rec *u, struct store_user *pub)
{
	memset(pub, 0, sizeof(*pub));
	pub->id = u->id;
	str_copy(pub->address, u->address, sizeof(pub->address));
	pub->quota = u->quota;
	pub->used = u->used;
}

/* ---- domains ---- */

enum store_err
store_domain_add(struct store *st, const char *domain)
{
	char d[256];
	MDB_txn *txn;
	enum store_err e;
	int rc;

	if (domain == NULL || str_copy(d, domain, sizeof(d)) >= sizeof(d))
		return store_set_error(STORE_EPERM, "bad domain");
	str_lower(d);
	if (!domain_is_valid(d))
		return store_set_error(STORE_EPERM, "bad domain name");
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	MDB_val k = { strlen(d), d }, v = { 0, "" };
	rc = mdb_put(txn, st->db_domains, &k, &v, MDB_NOOVERWRITE);
	if (rc != 0) {
		mdb_txn_abort(txn);
		if (rc == MDB_KEYEXIST)
			return store_set_error(STORE_EEXISTS, "domain exists");
		return store_mdb_err(rc, "domain put");
	}
	return store_txn_commit(txn);
}

static bool
db_has_domain_key(MDB_txn *txn, MDB_dbi dbi, const char *domain)
{
	MDB_cursor *c;
	MDB_val k, v;
	size_t dl = strlen(domain);
	bool found = false;

	if (mdb_cursor_open(txn, dbi, &c) != 0)
		return true;
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const char *s = k.mv_data;
		if (k.mv_size > dl + 1 && s[k.mv_size - dl - 1] == '@' &&
		    memcmp(s + k.mv_size - dl, domain, dl) == 0) {
			found = true;
			break;
		}
	}
	mdb_cursor_close(c);
	return found;
}

enum store_err
store_domain_del(struct store *st, const char *domain)
{
	char d[256];
	MDB_txn *txn;
	enum store_err e;
	int rc;

	if (domain == NULL || str_copy(d, domain, sizeof(d)) >= sizeof(d))
		return store_set_error(STORE_ENOTFOUND, "no such domain");
	str_lower(d);
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if (db_has_domain_key(txn, st->db_addrs, d) ||
	    db_has_domain_key(txn, st->db_aliases, d)) {
		mdb_txn_abort(txn);
		return store_set_error(STORE_EPERM,
		    "domain still has users or aliases");
	}
	MDB_val k = { strlen(d), d };
	rc = mdb_del(txn, st->db_domains, &k, NULL);
	if (rc != 0) {
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND)
			return store_set_error(STORE_ENOTFOUND, "no such domain");
		return store_mdb_err(rc, "domain del");
	}
	return store_txn_commit(txn);
}

/* Calls cb for every key (and value string if with_val) of a string DB;
   filter: only keys ending in "@domain" if domain != NULL. */
static enum store_err
list_strings(struct store *st, MDB_dbi dbi, const char *domain, bool with_val,
    store_str_cb *cb, void *arg)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	enum store_err e;
	char dl[256] = "";
	struct buf kb, vb;

	if (domain != NULL) {
		str_copy(dl, domain, sizeof(dl));
		str_lower(dl);
	}
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if (mdb_cursor_open(txn, dbi, &c) != 0) {
		mdb_txn_abort(txn);
		return store_set_error(STORE_EINTERNAL, "cursor");
	}
	/* Copy everything first: the callback may call into the store. */
	struct { char *a, *b; } *items = NULL;
	size_t n = 0, cap = 0;
	buf_init(&kb);
	buf_init(&vb);
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		size_t l = strlen(dl);
		const char *s = k.mv_data;
		if (l > 0 && !(k.mv_size > l + 1 && s[k.mv_size - l - 1] == '@' &&
		    memcmp(s + k.mv_size - l, dl, l) == 0))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			items = xrealloc(items, cap * sizeof(*items));
		}
		items[n].a = xstrndup(k.mv_data, k.mv_size);
		items[n].b = with_val ? xstrndup(v.mv_data, v.mv_size) : NULL;
		n++;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	bool stop = false;
	for (size_t i = 0; i < n; i++) {
		if (!stop && cb(arg, items[i].a, items[i].b) != 0)
			stop = true;
		free(items[i].a);
		free(items[i].b);
	}
	free(items);
	return STORE_OK;
}

enum store_err
store_domain_list(struct store *st, store_str_cb *cb, void *arg)
{
	return list_strings(st, st->db_domains, NULL, false, cb, arg);
}

bool
store_domain_is_local(struct store *st, const char *domain)
{
	char d[256];
	MDB_txn *txn;
	bool ok;

	if (domain == NULL || str_copy(d, domain, sizeof(d)) >= sizeof(d))
		return false;
	str_lower(d);
	if (store_txn_begin(st, false, &txn) != STORE_OK)
		return false;
	ok = domain_exists(st, txn, d);
	mdb_txn_abort(txn);
	return ok;
}

/* ---- users ---- */

/* Creates the user record, maildir and default mailboxes in txn. */
enum store_err
user_create_txn(struct store *st, MDB_txn *txn, const char *addr,
    const char *pw_hash, uint64_t quota, uint32_t want_id,
    struct user_rec *u)
{
	char dir[4096];
	enum store_err e;
	int rc;

	memset(u, 0, sizeof(*u));
	if (want_id != 0) {
		struct user_rec other;
		if (user_rec_get(st, txn, want_id, &other) == STORE_ENOTFOUND) {
			u->id = want_id;
			meta_bump_id(st, txn, "next_user_id", want_id + 1);
		}
	}
	if (u->id == 0 &&
	    (e = meta_next_id(st, txn, "next_user_id", &u->id)) != STORE_OK)
		return e;
	str_copy(u->address, addr, sizeof(u->address));
	str_copy(u->hash, pw_hash ? pw_hash : "", sizeof(u->hash));
	u->quota = quota;
	MDB_val k = { strlen(addr), (void *)addr }, v = { sizeof(u->id), &u->id };
	rc = mdb_put(txn, st->db_addrs, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST)
		return store_set_error(STORE_EEXISTS, "user exists");
	if (rc != 0)
		return store_mdb_err(rc, "address put");
	user_dir(st, addr, dir, sizeof(dir));
	if (mkdir_p(dir, 0700) < 0)
		return store_errno_err(dir);
	if ((e = user_rec_put(st, txn, u)) != STORE_OK)
		return e;
	if (user_file_write(st, u) < 0)
		return store_errno_err("user file");
	return STORE_OK;
}

enum store_err
store_user_add(struct store *st, const char *address, const char *pw_hash,
    uint64_t quota, struct store_user *user_r)
{
	char buf[STORE_ADDRESS_MAX + 1], addr[STORE_ADDRESS_MAX + 1];
	char *local, *domain;
	MDB_txn *txn;
	struct user_rec u;
	enum store_err e;

	if (addr_split(address, buf, sizeof(buf), &local, &domain) < 0 ||
	    !local_part_is_valid(local, strlen(local)))
		return store_set_error(STORE_EPERM, "invalid address");
	if (pw_hash != NULL && strlen(pw_hash) >= STORE_PW_HASH_MAX)
		return store_set_error(STORE_EPERM, "password hash too long");
	snprintf(addr, sizeof(addr), "%s@%s", local, domain);
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if (!domain_exists(st, txn, domain)) {
		e = store_set_error(STORE_EPERM, "domain %s is not local", domain);
		goto fail;
	}
	if (alias_exists(st, txn, addr)) {
		e = store_set_error(STORE_EEXISTS, "an alias has that address");
		goto fail;
	}
	if ((e = user_create_txn(st, txn, addr, pw_hash, quota, 0, &u)))
		goto fail;
	for (size_t i = 0; i < ARRAY_SIZE(default_mailboxes); i++) {
		struct mbox_rec mb;
		e = mbox_create_txn(st, txn, &u, default_mailboxes[i],
		    default_special[i], &mb);
		/* Subscribed from the start: clients that show only
		   subscribed folders (LSUB) must see them. */
		if (e == STORE_OK)
			e = subs_add_txn(st, txn, u.id, default_mailboxes[i]);
		if (e != STORE_OK)
			goto fail;
	}
	if ((e = user_rec_put(st, txn, &u)) != STORE_OK)
		goto fail;
	subs_file_write(st, txn, u.id);
	if ((e = store_txn_commit(txn)) != STORE_OK)
		return e;
	if (user_r != NULL)
		user_to_public(&u, user_r);
	return STORE_OK;
fail:
	mdb_txn_abort(txn);
	return e;
}

/* Looks up a user record by address inside txn. */
static enum store_err
user_by_addr(struct store *st, MDB_txn *txn, const char *address,
    struct user_rec *u_r)
{
	char addr[STORE_ADDRESS_MAX + 1];
	uint32_t id;
	enum store_err e;

	if (address == NULL || str_copy(addr, address, sizeof(addr)) >= sizeof(addr))
		return store_set_error(STORE_ENOTFOUND, "no such user");
	str_lower(addr);
	if ((e = addr_lookup(st, txn, addr, &id)) != STORE_OK)
		return e;
	return user_rec_get(st, txn, id, u_r);
}

static enum store_err
user_update(struct store *st, const char *address, const char *pw_hash,
    const uint64_t *quota)
{
	MDB_txn *txn;
	struct user_rec u;
	enum store_err e;

	if (pw_hash != NULL && strlen(pw_hash) >= STORE_PW_HASH_MAX)
		return store_set_error(STORE_EPERM, "password hash too long");
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if ((e = user_by_addr(st, txn, address, &u)) != STORE_OK)
		goto fail;
	if (pw_hash != NULL)
		str_copy(u.hash, pw_hash, sizeof(u.hash));
	if (quota != NULL)
		u.quota = *quota;
	if ((e = user_rec_put(st, txn, &u)) != STORE_OK)
		goto fail;
	if (user_file_write(st, &u) < 0) {
		e = store_errno_err("user file");
		goto fail;
	}
	return store_txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return e;
}

enum store_err
store_user_set_password(struct store *st, const char *address,
    const char *pw_hash)
{
	return user_update(st, address, pw_hash ? pw_hash : "", NULL);
}

enum store_err
store_user_set_quota(struct store *st, const char *address, uint64_t quota)
{
	return user_update(st, address, NULL, &quota);
}

enum store_err
store_user_del(struct store *st, const char *address)
{
	MDB_txn *txn;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	struct user_rec u;
	enum store_err e;
	unsigned char prefix[4];
	uint32_t *ids = NULL;
	size_t nids = 0;
	char dir[4096];
	int rc;

	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	if ((e = user_by_addr(st, txn, address, &u)) != STORE_OK)
		goto fail;
	/* Collect and drop the user's mailboxes. */
	be32_put(prefix, u.id);
	if (mdb_cursor_open(txn, st->db_mbox_names, &c) != 0) {
		e = store_set_error(STORE_EINTERNAL, "cursor");
		goto fail;
	}
	k.mv_size = 4;
	k.mv_data = prefix;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 4 || memcmp(k.mv_data, prefix, 4) != 0)
			break;
		ids = xrealloc(ids, (nids + 1) * sizeof(*ids));
		memcpy(&ids[nids++], v.mv_data, sizeof(uint32_t));
		mdb_cursor_del(c, 0);
	}
	mdb_cursor_close(c);
	c = NULL;
	for (size_t i = 0; i < nids; i++) {
		MDB_val mk = { sizeof(ids[i]), &ids[i] };
		if ((e = mbox_purge_txn(st, txn, ids[i])))
			goto fail;
		mdb_del(txn, st->db_mboxes, &mk, NULL);
	}
	/* Subscriptions. */
	if (mdb_cursor_open(txn, st->db_subs, &c) == 0) {
		k.mv_size = 4;
		k.mv_data = prefix;
		for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
		    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			if (k.mv_size < 4 || memcmp(k.mv_data, prefix, 4) != 0)
				break;
			mdb_cursor_del(c, 0);
		}
		mdb_cursor_close(c);
		c = NULL;
	}
	k.mv_size = strlen(u.address);
	k.mv_data = u.address;
	mdb_del(txn, st->db_addrs, &k, NULL);
	k.mv_size = sizeof(u.id);
	k.mv_data = &u.id;
	mdb_del(txn, st->db_users, &k, NULL);
	if ((e = store_txn_commit(txn)) != STORE_OK)
		goto out;
	user_dir(st, u.address, dir, sizeof(dir));
	rm_rf(dir);
	for (size_t i = 0; i < nids; i++) {
		notify_touch(st, ids[i]);
		snprintf(dir, sizeof(dir), "%s/notify/%u", st->data_dir, ids[i]);
		unlink(dir);
	}
	goto out;
fail:
	mdb_txn_abort(txn);
out:
	free(ids);
	return e;
}

/* One user by address, or by id when address is NULL, in a read txn. */
static enum store_err
user_get(struct store *st, const char *address, uint32_t id,
    struct store_user *user_r)
{
	MDB_txn *txn;
	struct user_rec u;
	enum store_err e;

	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	e = address != NULL ? user_by_addr(st, txn, address, &u) :
	    user_rec_get(st, txn, id, &u);
	mdb_txn_abort(txn);
	if (e == STORE_OK && user_r != NULL)
		user_to_public(&u, user_r);
	return e;
}

enum store_err
store_user_get(struct store *st, const char *address, struct store_user *user_r)
{
	return user_get(st, address, 0, user_r);
}

enum store_err
store_user_get_by_id(struct store *st, uint32_t id, struct store_user *user_r)
{
	return user_get(st, NULL, id, user_r);
}

enum store_err
store_user_list(struct store *st, const char *domain, store_str_cb *cb,
    void *arg)
{
	return list_strings(st, st->db_addrs, domain, false, cb, arg);
}

enum store_err
store_authenticate(struct store *st, const char *address, const char *password,
    struct store_user *user_r)
{
	MDB_txn *txn;
	struct user_rec u;
	enum store_err e;

	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	e = user_by_addr(st, txn, address, &u);
	mdb_txn_abort(txn);
	if (password == NULL)
		password = "";
	if (e == STORE_ENOTFOUND) {
		auth_cache_drop(address, password);     /* the user is gone */
		pw_verify_dummy(password);
		return store_set_error(STORE_ENOTFOUND, "authentication failed");
	}
	if (e != STORE_OK)
		return e;
	/* The cache is checked against the hash just read, so a password
	   changed by mailctl (another process) counts at the next login. */
	if (!auth_cache_check(address, password, u.hash)) {
		if (!pw_verify(u.hash, password)) {
			explicit_bzero(u.hash, sizeof(u.hash));
			return store_set_error(STORE_ENOTFOUND,
			    "authentication failed");
		}
		auth_cache_put(address, password, u.hash);
	}
	explicit_bzero(u.hash, sizeof(u.hash));
	if (user_r != NULL)
		user_to_public(&u, user_r);
	return STORE_OK;
}

/* ---- aliases ---- */

enum store_err
store_alias_add(struct store *st, const char *alias, const char *targets)
{
	char buf[STORE_ADDRESS_MAX + 1], addr[STORE_ADDRESS_MAX + 1];
	char *local, *domain;
	MDB_txn *txn;
	struct buf norm;
	enum store_err e;
	int rc;

	if (addr_split(alias, buf, sizeof(buf), &local, &domain) < 0 ||
	    !local_part_is_valid(local, strlen(local)))
		return store_set_error(STORE_EPERM, "invalid alias address");
	snprintf(addr, sizeof(addr), "%s@%s", local, domain);
	if (targets == NULL || strlen(targets) > 65536)
		return store_set_error(STORE_EPERM, "bad targets");
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	buf_init(&norm);
	if (!domain_exists(st, txn, domain)) {
		e = store_set_error(STORE_EPERM, "domain %s is not local", domain);
		goto fail;
	}
	/* Normalise the target list: trimmed, lowercase, local domains. */
	const char *p = targets;
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len > 0 && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		if (len > 0) {
			char tb[STORE_ADDRESS_MAX + 1], tcopy[STORE_ADDRESS_MAX + 1];
			char *tl, *td;
			if (len > STORE_ADDRESS_MAX) {
				e = store_set_error(STORE_EPERM, "target too long");
				goto fail;
			}
			memcpy(tcopy, p, len);
			tcopy[len] = '\0';
			/* Targets outside the local domains are forwarded
			   through the outbound queue (store_resolve_all). */
			if (addr_split(tcopy, tb, sizeof(tb), &tl, &td) < 0 ||
			    tl[0] == '\0' || strpbrk(tl, " \t\r\n<>") != NULL) {
				e = store_set_error(STORE_EPERM,
				    "target is not a valid address");
				goto fail;
			}
			if (norm.len > 0)
				buf_putc(&norm, ',');
			buf_printf(&norm, "%s@%s", tl, td);
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	if (norm.len == 0) {
		e = store_set_error(STORE_EPERM, "no targets");
		goto fail;
	}
	uint32_t id;
	if (addr_lookup(st, txn, addr, &id) == STORE_OK) {
		e = store_set_error(STORE_EEXISTS, "a user has that address");
		goto fail;
	}
	MDB_val k = { strlen(addr), addr }, v = { norm.len, norm.data };
	rc = mdb_put(txn, st->db_aliases, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST) {
		e = store_set_error(STORE_EEXISTS, "alias exists");
		goto fail;
	}
	if (rc != 0) {
		e = store_mdb_err(rc, "alias put");
		goto fail;
	}
	buf_free(&norm);
	return store_txn_commit(txn);
fail:
	buf_free(&norm);
	mdb_txn_abort(txn);
	return e;
}

enum store_err
store_alias_del(struct store *st, const char *alias)
{
	char addr[STORE_ADDRESS_MAX + 1];
	MDB_txn *txn;
	enum store_err e;
	int rc;

	if (alias == NULL || str_copy(addr, alias, sizeof(addr)) >= sizeof(addr))
		return store_set_error(STORE_ENOTFOUND, "no such alias");
	str_lower(addr);
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	MDB_val k = { strlen(addr), addr };
	rc = mdb_del(txn, st->db_aliases, &k, NULL);
	if (rc != 0) {
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND)
			return store_set_error(STORE_ENOTFOUND, "no such alias");
		return store_mdb_err(rc, "alias del");
	}
	return store_txn_commit(txn);
}

enum store_err
store_alias_list(struct store *st, store_str_cb *cb, void *arg)
{
	return list_strings(st, st->db_aliases, NULL, true, cb, arg);
}

/* ---- resolution ---- */

struct resolve_ctx {
	uint32_t *ids;
	size_t n;
	char **remote;    /* targets outside the local domains */
	size_t nremote;
	char *seen[64];   /* aliases already expanded: loop guard */
	size_t nseen;
};

static void
add_id(struct resolve_ctx *rc, uint32_t id)
{
	for (size_t i = 0; i < rc->n; i++)
		if (rc->ids[i] == id)
			return;
	rc->ids = xrealloc(rc->ids, (rc->n + 1) * sizeof(*rc->ids));
	rc->ids[rc->n++] = id;
}

/* addr: lowercase, no +tag. Expands aliases up to STORE_ALIAS_DEPTH. */
static void
resolve_one(struct store *st, MDB_txn *txn, const char *addr, int depth,
    struct resolve_ctx *ctx)
{
	uint32_t id;
	MDB_val k = { strlen(addr), (void *)addr }, v;

	if (addr_lookup(st, txn, addr, &id) == STORE_OK) {
		add_id(ctx, id);
		return;
	}
	const char *at = strrchr(addr, '@');
	if (at != NULL && !domain_exists(st, txn, at + 1)) {
		for (size_t i = 0; i < ctx->nremote; i++)
			if (strcmp(ctx->remote[i], addr) == 0)
				return;
		if (ctx->nremote < STORE_QUEUE_MAX_RCPTS) {
			ctx->remote = xrealloc(ctx->remote, (ctx->nremote + 1) *
			    sizeof(char *));
			ctx->remote[ctx->nremote++] = xstrdup(addr);
		}
		return;
	}
	if (depth >= STORE_ALIAS_DEPTH || ctx->nseen >= ARRAY_SIZE(ctx->seen))
		return;
	if (mdb_get(txn, st->db_aliases, &k, &v) != 0)
		return;
	for (size_t i = 0; i < ctx->nseen; i++)
		if (strcmp(ctx->seen[i], addr) == 0)
			return;
	ctx->seen[ctx->nseen++] = xstrdup(addr);
	char *targets = xstrndup(v.mv_data, v.mv_size), *save = NULL;
	for (char *t = strtok_r(targets, ",", &save); t != NULL;
	    t = strtok_r(NULL, ",", &save))
		resolve_one(st, txn, t, depth + 1, ctx);
	free(targets);
}

void
store_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static enum store_err
resolve(struct store *st, const char *address, uint32_t **user_ids_r,
    size_t *n_r, char ***remote_r, size_t *nremote_r);

enum store_err
store_resolve(struct store *st, const char *address, uint32_t **user_ids_r,
    size_t *n_r)
{
	return resolve(st, address, user_ids_r, n_r, NULL, NULL);
}

enum store_err
store_resolve_all(struct store *st, const char *address, uint32_t **user_ids_r,
    size_t *n_r, char ***remote_r, size_t *nremote_r)
{
	*remote_r = NULL;
	*nremote_r = 0;
	return resolve(st, address, user_ids_r, n_r, remote_r, nremote_r);
}

/* The postmaster@ of the first local domain (by name) that has a user or
   alias of that name. */
static void
resolve_any_postmaster(struct store *st, MDB_txn *txn,
    struct resolve_ctx *ctx)
{
	char addr[STORE_ADDRESS_MAX + 1];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (mdb_cursor_open(txn, st->db_domains, &cur) != 0)
		return;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 &&
	    ctx->n == 0 && ctx->nremote == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size + sizeof("postmaster@") > sizeof(addr))
			continue;
		snprintf(addr, sizeof(addr), "postmaster@%.*s", (int)k.mv_size,
		    (const char *)k.mv_data);
		resolve_one(st, txn, addr, 1, ctx);
	}
	mdb_cursor_close(cur);
}

/* The first user created: the lowest id (the users table is keyed by
   id, MDB_INTEGERKEY). */
static void
resolve_first_user(struct store *st, MDB_txn *txn, struct resolve_ctx *ctx)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint32_t id;

	if (mdb_cursor_open(txn, st->db_users, &cur) != 0)
		return;
	if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 &&
	    k.mv_size == sizeof(id)) {
		memcpy(&id, k.mv_data, sizeof(id));
		add_id(ctx, id);
	}
	mdb_cursor_close(cur);
}

/* RFC 5321 4.5.1: postmaster@ every local domain must be accepted and
   reach a person, and RFC 2142 asks the same of abuse@, even when nobody
   made them. Called when no user or alias of that name exists: abuse@D
   goes where postmaster@D goes; postmaster@D goes to the postmaster@ of
   the first local domain (by name) that has one, else to the first user
   created (normally whoever set the server up). An administrator picks
   someone with `mailctl alias add postmaster@D someone@...` (one such
   alias serves every domain without its own). */
static void
resolve_role(struct store *st, MDB_txn *txn, const char *local,
    const char *domain, struct resolve_ctx *ctx)
{
	char addr[STORE_ADDRESS_MAX + 1];

	if (strcmp(local, "abuse") == 0) {
		snprintf(addr, sizeof(addr), "postmaster@%s", domain);
		resolve_one(st, txn, addr, 1, ctx);
	} else if (strcmp(local, "postmaster") != 0) {
		return;
	}
	if (ctx->n == 0 && ctx->nremote == 0)
		resolve_any_postmaster(st, txn, ctx);
	if (ctx->n == 0 && ctx->nremote == 0)
		resolve_first_user(st, txn, ctx);
}

static enum store_err
resolve(struct store *st, const char *address, uint32_t **user_ids_r,
    size_t *n_r, char ***remote_r, size_t *nremote_r)
{
	char buf[STORE_ADDRESS_MAX + 1], addr[STORE_ADDRESS_MAX + 1];
	char *local, *domain, *plus;
	MDB_txn *txn;
	struct resolve_ctx ctx = { 0 };
	enum store_err e;

	*user_ids_r = NULL;
	*n_r = 0;
	if (addr_split(address, buf, sizeof(buf), &local, &domain) < 0)
		return store_set_error(STORE_EPERM, "invalid address");
	if ((e = store_txn_begin(st, false, &txn)) != STORE_OK)
		return e;
	if (!domain_exists(st, txn, domain)) {
		mdb_txn_abort(txn);
		return store_set_error(STORE_EPERM, "domain is not local");
	}
	if ((plus = strchr(local, '+')) != NULL)
		*plus = '\0';
	snprintf(addr, sizeof(addr), "%s@%s", local, domain);
	resolve_one(st, txn, addr, 0, &ctx);
	if (ctx.n == 0 && ctx.nremote == 0)
		resolve_role(st, txn, local, domain, &ctx);
	mdb_txn_abort(txn);
	for (size_t i = 0; i < ctx.nseen; i++)
		free(ctx.seen[i]);
	if (remote_r != NULL && (ctx.n > 0 || ctx.nremote > 0)) {
		*remote_r = ctx.remote;
		*nremote_r = ctx.nremote;
		*user_ids_r = ctx.ids;
		*n_r = ctx.n;
		return STORE_OK;
	}
	store_strv_free(ctx.remote, ctx.nremote);
	if (ctx.n == 0) {
		free(ctx.ids);
		return store_set_error(STORE_ENOTFOUND, "no such recipient");
	}
	*user_ids_r = ctx.ids;
	*n_r = ctx.n;
	return STORE_OK;
}

bool
store_user_owns_address(struct store *st, uint32_t user_id, const char *address)
{
	uint32_t *ids;
	size_t n;
	bool owns = false;

	if (store_resolve(st, address, &ids, &n) != STORE_OK)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ids[i] == user_id)
			owns = true;
	free(ids);
	return owns;
}

enum store_err
store_user_lock(struct store *st, uint32_t user_id, const char *purpose,
    int *fd_r)
{
	char path[4096];
	int fd;

	*fd_r = -1;
	if (purpose == NULL || !purpose[0] || strlen(purpose) > 32)
		return store_set_error(STORE_EPERM, "bad lock purpose");
	for (const char *p = purpose; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return store_set_error(STORE_EPERM, "bad lock purpose");
	snprintf(path, sizeof(path), "%s/locks/%u.%s", st->data_dir, user_id,
	    purpose);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return store_errno_err(path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;
		close(fd);
		if (err == EWOULDBLOCK)
			return store_set_error(STORE_EEXISTS, "lock held");
		errno = err;
		return store_errno_err("flock");
	}
	*fd_r = fd;
	return STORE_OK;
}
