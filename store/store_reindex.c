/* store_reindex: rebuilds one user's index entries from the maildir files.
   The files are the truth here: each mailbox directory's postroom-mailbox
   gives name, UIDVALIDITY, keywords and the reserved uid/modseq marks, each
   file name gives UID, flags and keywords (unless the index still has
   the message with newer flags its name has not caught up with: those
   win, and the file is renamed to them). A user whose index record was
   lost is brought back from postroom-user. UIDs are never reused. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mime.h"
#include "store_private.h"

struct rfile {
	char *name;       /* file name in cur/ */
	char base[MSG_BASE_MAX + 1];
	uint32_t uid;
	uint32_t flags;
	uint32_t keywords;
	uint64_t size;
	int64_t mtime;
	bool fresh;       /* needs a new uid */
};

struct old_msg {
	uint32_t uid;
	char base[MSG_BASE_MAX + 1];
	int64_t internaldate;
	int32_t tz;
	bool gone;
	/* A name behind the record's flags (a deferred flag change not yet
	   caught up): the flags, and the letters the name still has. */
	bool behind;
	uint32_t flags, keywords, disk_flags, disk_keywords;
};

/* old[] is in uid order (the index's key order). */
static struct old_msg *
old_find(struct old_msg *old, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (old[mid].uid == uid)
			return &old[mid];
		if (old[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
rfile_cmp(const void *a, const void *b)
{
	const struct rfile *x = a, *y = b;

	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void
parse_file_name(const char *name, struct rfile *f)
{
	const char *info = strstr(name, ":2,");
	size_t bl = info ? (size_t)(info - name) : strlen(name);
	const char *u;

	if (bl > MSG_BASE_MAX)
		bl = MSG_BASE_MAX;
	memcpy(f->base, name, bl);
	f->base[bl] = '\0';
	f->uid = 0;
	if ((u = strstr(f->base, ",U=")) != NULL) {
		char *end;
		unsigned long v = strtoul(u + 3, &end, 10);
		if (end != u + 3 && (*end == '\0' || *end == ',') &&
		    v < UINT32_MAX - STORE_RESERVE_CHUNK)
			f->uid = (uint32_t)v;
	}
	f->flags = f->keywords = 0;
	if (info == NULL)
		return;
	for (const char *p = info + 3; *p; p++) {
		switch (*p) {
		case 'D': f->flags |= STORE_F_DRAFT; break;
		case 'F': f->flags |= STORE_F_FLAGGED; break;
		case 'R': f->flags |= STORE_F_ANSWERED; break;
		case 'S': f->flags |= STORE_F_SEEN; break;
		case 'T': f->flags |= STORE_F_DELETED; break;
		default:
			if (*p >= 'a' && *p <= 'z')
				f->keywords |= 1u << (*p - 'a');
		}
	}
}

/* Moves new/ files into cur/ (maildir delivery by another tool). */
static void
adopt_new(const char *dir)
{
	char nd[4200], from[4600], to[4600];
	DIR *d;
	struct dirent *de;

	snprintf(nd, sizeof(nd), "%s/new", dir);
	if ((d = opendir(nd)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(from, sizeof(from), "%s/%s", nd, de->d_name);
		if (strstr(de->d_name, ":2,") != NULL)
			snprintf(to, sizeof(to), "%s/cur/%s", dir, de->d_name);
		else
			snprintf(to, sizeof(to), "%s/cur/%s:2,", dir, de->d_name);
		if (rename(from, to) < 0) {
			/* Left in new/: picked up by the next reindex. */
		}
	}
	closedir(d);
}

static void
scan_cur(const char *dir, struct rfile **files_r, size_t *n_r)
{
	char cd[4200], path[4600];
	DIR *d;
	struct dirent *de;
	struct rfile *files = NULL;
	size_t n = 0;

	snprintf(cd, sizeof(cd), "%s/cur", dir);
	if ((d = opendir(cd)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			struct stat sb;
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", cd, de->d_name);
			if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
				continue;
			files = xrealloc(files, (n + 1) * sizeof(*files));
			memset(&files[n], 0, sizeof(files[n]));
			files[n].name = xstrdup(de->d_name);
			parse_file_name(de->d_name, &files[n]);
			files[n].size = (uint64_t)sb.st_size;
			files[n].mtime = sb.st_mtime;
			n++;
		}
		closedir(d);
	}
	*files_r = files;
	*n_r = n;
}

static void
parse_into_cache(const char *path, uint64_t size, struct buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cache_build(fd, size, out);
	if (fd >= 0)
		close(fd);
}

static size_t
stem_len(const char *base)
{
	const char *s = strstr(base, ",S=");
	const char *u = strstr(base, ",U=");

	if (s == NULL || (u != NULL && u < s))
		s = u;
	return s ? (size_t)(s - base) : strlen(base);
}

static enum store_err
purge_db(struct store *st, MDB_txn *txn, MDB_dbi dbi, uint32_t mbox)
{
	unsigned char prefix[4];
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	be32_put(prefix, mbox);
	if (mdb_cursor_open(txn, dbi, &c) != 0)
		return store_set_error(STORE_EINTERNAL, "cursor");
	k.mv_size = 4;
	k.mv_data = prefix;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || memcmp(k.mv_data, prefix, 4) != 0)
			break;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_mdb_err(rc, "purge");
	return STORE_OK;
}

/* Rebuilds the messages of one mailbox from dir/cur. */
static enum store_err
rebuild_mailbox(struct store *st, MDB_txn *txn, struct mbox_rec *mb,
    const char *dir, bool existed, const struct mbox_rec *fm, bool file_ok,
    struct store_reindex_stats *stats)
{
	struct old_msg *old = NULL;
	size_t nold = 0, nfiles = 0;
	struct rfile *files = NULL;
	struct buf cache;
	unsigned char prefix[4];
	MDB_cursor *c;
	MDB_val k, v;
	enum store_err e = STORE_OK;
	uint32_t max_uid = 0, kwmask;
	uint64_t modseq;

	/* Changes a crash left staged beside cur/ (store_pending.c) are
	   resolved by the index first: only then is cur/ the truth. */
	if ((e = pending_settle(st, txn, existed ? mb : NULL, dir)) != STORE_OK)
		return e;
	/* What the index knew, for INTERNALDATE and tombstones. */
	be32_put(prefix, mb->id);
	if (mdb_cursor_open(txn, st->db_msgs, &c) != 0)
		return store_set_error(STORE_EINTERNAL, "cursor");
	k.mv_size = 4;
	k.mv_data = prefix;
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct msg_rec m;
		if (k.mv_size != 8 || memcmp(k.mv_data, prefix, 4) != 0)
			break;
		if (msg_rec_decode(&v, &m) < 0)
			continue;
		old = xrealloc(old, (nold + 1) * sizeof(*old));
		old[nold].uid = be32_get((unsigned char *)k.mv_data + 4);
		old[nold].internaldate = m.h.internaldate;
		old[nold].tz = m.h.internal_tz;
		old[nold].gone = false;
		old[nold].behind = m.behind;
		old[nold].flags = m.h.flags;
		old[nold].keywords = m.h.keywords;
		old[nold].disk_flags = m.disk_flags;
		old[nold].disk_keywords = m.disk_keywords;
		memcpy(old[nold].base, m.base, sizeof(m.base));
		nold++;
	}
	mdb_cursor_close(c);
	/* Tombstones stay: QRESYNC clients still need them. */
	if ((e = purge_db(st, txn, st->db_msgs, mb->id)) != STORE_OK ||
	    (e = purge_db(st, txn, st->db_cache, mb->id)) != STORE_OK ||
	    (e = modseq_idx_purge(st, txn, mb->id)) != STORE_OK)
		goto out;
	adopt_new(dir);
	scan_cur(dir, &files, &nfiles);
	if (nfiles > 1)
		qsort(files, nfiles, sizeof(*files), rfile_cmp);
	/* Files sharing a uid (a link left by a crash before its commit,
	   or a copy made by hand): the one the index knew keeps the uid. */
	for (size_t i = 0; i < nfiles;) {
		size_t j = i, keep = i;
		while (j < nfiles && files[j].uid == files[i].uid)
			j++;
		struct old_msg *o = j - i > 1 ?
		    old_find(old, nold, files[i].uid) : NULL;
		for (size_t x = i; o != NULL && x < j; x++)
			if (strcmp(o->base, files[x].base) == 0)
				keep = x;
		for (size_t x = i; x < j; x++)
			files[x].fresh = files[x].uid == 0 || x != keep;
		if (files[i].uid > max_uid)
			max_uid = files[i].uid;
		i = j;
	}
	/* With the index record at hand its UIDNEXT is right (clients see
	   no jump); without it, the marks in the file are past anything ever
	   handed out. */
	if (!existed) {
		mb->uidnext = 1;
		if (file_ok && fm->reserved_uid > mb->uidnext)
			mb->uidnext = fm->reserved_uid;
		if (file_ok && fm->reserved_modseq > mb->highestmodseq)
			mb->highestmodseq = fm->reserved_modseq;
	}
	if (max_uid + 1 > mb->uidnext)
		mb->uidnext = max_uid + 1;
	if (!existed)
		mb->first_recent_uid = mb->uidnext;
	if (mb->highestmodseq == 0)
		mb->highestmodseq = 1;
	mb->messages = mb->unseen = mb->recent = mb->deleted = 0;
	mb->size = 0;
	modseq = ++mb->highestmodseq;
	kwmask = mb->nkeywords >= 32 ? UINT32_MAX : (1u << mb->nkeywords) - 1;
	buf_init(&cache);
	for (size_t i = 0; i < nfiles; i++) {
		struct rfile *f = &files[i];
		struct msg_rec m;
		char from[4600], to[4600], name[512];
		bool known = false;

		memset(&m, 0, sizeof(m));
		if (f->fresh) {
			if (mb->uidnext >= UINT32_MAX - STORE_RESERVE_CHUNK) {
				e = store_set_error(STORE_ELIMIT, "uid space");
				break;
			}
			f->uid = mb->uidnext++;
			snprintf(m.base, sizeof(m.base), "%.*s,S=%llu,U=%u",
			    (int)stem_len(f->base), f->base,
			    (unsigned long long)f->size, f->uid);
		} else {
			str_copy(m.base, f->base, sizeof(m.base));
		}
		m.uid = f->uid;
		m.h.flags = f->flags;
		m.h.keywords = f->keywords & kwmask;
		m.h.modseq = modseq;
		m.h.size = f->size;
		m.h.internaldate = f->mtime;
		struct old_msg *o = f->fresh ? NULL :
		    old_find(old, nold, f->uid);
		if (o != NULL && !o->gone) {
			m.h.internaldate = o->internaldate;
			m.h.internal_tz = o->tz;
			/* The name is as the index left it, just behind: the
			   index's flags are the newer (the file takes them). */
			if (o->behind && f->flags == o->disk_flags &&
			    (f->keywords & kwmask) == o->disk_keywords) {
				m.h.flags = o->flags;
				m.h.keywords = o->keywords & kwmask;
			}
			o->gone = true;   /* present: no tombstone */
			known = true;
		}
		if (!known)
			stats->recovered++;
		snprintf(from, sizeof(from), "%s/cur/%s", dir, f->name);
		msg_file_name(mb, &m, name, sizeof(name));
		snprintf(to, sizeof(to), "%s/cur/%s", dir, name);
		if (strcmp(f->name, name) != 0 && rename(from, to) < 0) {
			e = store_errno_err("rename message");
			break;
		}
		parse_into_cache(to, f->size, &cache);
		if ((e = msg_rec_put(st, txn, mb->id, &m)) != STORE_OK)
			break;
		unsigned char key[8];
		msg_key(key, mb->id, m.uid);
		MDB_val ck = { 8, key }, cv = { cache.len, cache.data };
		int rc = mdb_put(txn, st->db_cache, &ck, &cv, 0);
		if (rc != 0) {
			e = store_mdb_err(rc, "cache put");
			break;
		}
		mbox_counters_add(mb, &m, 1);
		stats->messages++;
	}
	buf_free(&cache);
	if (e != STORE_OK)
		goto out;
	for (size_t j = 0; j < nold; j++) {
		unsigned char key[8];
		if (old[j].gone)
			continue;
		msg_key(key, mb->id, old[j].uid);
		MDB_val tk = { 8, key }, tv = { sizeof(modseq), &modseq };
		int rc = mdb_put(txn, st->db_tombs, &tk, &tv, 0);
		if (rc != 0) {
			e = store_mdb_err(rc, "tombstone put");
			goto out;
		}
	}
	mb->reserved_uid = mb->uidnext + STORE_RESERVE_CHUNK;
	mb->reserved_modseq = mb->highestmodseq + 1 + STORE_RESERVE_CHUNK;
	if (mbox_file_write(dir, mb) < 0) {
		e = store_errno_err("mailbox file");
		goto out;
	}
	char cur[4200];
	snprintf(cur, sizeof(cur), "%s/cur", dir);
	if (fsync_dir(cur) < 0) {
		e = store_errno_err("fsync dir");
		goto out;
	}
	e = mbox_rec_put(st, txn, mb);
out:
	for (size_t i = 0; i < nfiles; i++)
		free(files[i].name);
	free(files);
	free(old);
	return e;
}

/* Brings a user back from postroom-user after the index was lost. */
static enum store_err
restore_user(struct store *st, MDB_txn *txn, const char *addr,
    const char *udir, struct user_rec *u)
{
	char path[4200];
	char *s, *line, *save = NULL;
	unsigned long long quota = 0;
	unsigned long id = 0, uv = 0;
	char hash[STORE_PW_HASH_MAX] = "";
	const char *at = strrchr(addr, '@');
	enum store_err e;

	snprintf(path, sizeof(path), "%s/" STORE_USER_FILE, udir);
	if ((s = read_file_str(path)) == NULL)
		return store_set_error(STORE_ENOTFOUND, "no such user");
	for (line = strtok_r(s, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "id ", 3) == 0)
			id = strtoul(line + 3, NULL, 10);
		else if (strncmp(line, "quota ", 6) == 0)
			quota = strtoull(line + 6, NULL, 10);
		else if (strncmp(line, "uidvalidity ", 12) == 0)
			uv = strtoul(line + 12, NULL, 10);
		else if (strncmp(line, "hash ", 5) == 0)
			str_copy(hash, line + 5, sizeof(hash));
	}
	explicit_bzero(s, strlen(s));
	free(s);
	if (at != NULL) {
		MDB_val k = { strlen(at + 1), (void *)(at + 1) }, v = { 0, "" };
		mdb_put(txn, st->db_domains, &k, &v, 0);
	}
	e = user_create_txn(st, txn, addr, hash, quota,
	    id < UINT32_MAX ? (uint32_t)id : 0, u);
	explicit_bzero(hash, sizeof(hash));
	if (e != STORE_OK)
		return e;
	if (uv > u->last_uidvalidity)
		u->last_uidvalidity = (uint32_t)uv;
	return STORE_OK;
}

/* Drops a mailbox from the index (not its directory). */
static void
mbox_forget(struct store *st, MDB_txn *txn, const struct mbox_rec *mb)
{
	unsigned char key[4 + STORE_MAILBOX_NAME_MAX];
	size_t kl;

	mbox_purge_txn(st, txn, mb->id);
	name_key(key, &kl, mb->user_id, mb->name);
	MDB_val k = { kl, key }, mk = { sizeof(mb->id), (void *)&mb->id };
	mdb_del(txn, st->db_mbox_names, &k, NULL);
	mdb_del(txn, st->db_mboxes, &mk, NULL);
}

static bool
dir_has_files(const char *dir)
{
	char cd[4200];
	DIR *d;
	struct dirent *de;
	bool any = false;

	snprintf(cd, sizeof(cd), "%s/cur", dir);
	if ((d = opendir(cd)) == NULL)
		return false;
	while (!any && (de = readdir(d)) != NULL)
		any = de->d_name[0] != '.';
	closedir(d);
	return any;
}

static void
list_dir_ids(const char *udir, uint32_t **ids_r, size_t *n_r)
{
	DIR *d = opendir(udir);
	struct dirent *de;
	uint32_t *ids = NULL;
	size_t n = 0;

	while (d != NULL && (de = readdir(d)) != NULL) {
		char *end;
		unsigned long v = strtoul(de->d_name, &end, 10);
		if (de->d_name[0] < '1' || de->d_name[0] > '9' || *end ||
		    v >= UINT32_MAX)
			continue;
		ids = xrealloc(ids, (n + 1) * sizeof(*ids));
		ids[n++] = (uint32_t)v;
	}
	if (d != NULL)
		closedir(d);
	*ids_r = ids;
	*n_r = n;
}

enum store_err
store_reindex_user(struct store *st, const char *address,
    struct store_reindex_stats *stats_r)
{
	char addr[STORE_ADDRESS_MAX + 1], udir[4096], dir[4200];
	struct store_reindex_stats stats = { 0 };
	struct user_rec u;
	MDB_txn *txn;
	uint32_t *dids = NULL, *iids = NULL, *touched = NULL;
	size_t ndids = 0, niids = 0, ntouched = 0;
	char **rm_dirs = NULL;
	size_t nrm = 0;
	enum store_err e;
	MDB_val k, v;

	if (stats_r != NULL)
		memset(stats_r, 0, sizeof(*stats_r));
	if (address == NULL || str_copy(addr, address, sizeof(addr)) >=
	    sizeof(addr) || strchr(addr, '/') != NULL ||
	    strrchr(addr, '@') == NULL)
		return store_set_error(STORE_ENOTFOUND, "no such user");
	str_lower(addr);
	{
		const char *at = strrchr(addr, '@');
		if (!local_part_is_valid(addr, (size_t)(at - addr)) ||
		    !domain_is_valid(at + 1))
			return store_set_error(STORE_ENOTFOUND, "no such user");
	}
	user_dir(st, addr, udir, sizeof(udir));
	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	k.mv_size = strlen(addr);
	k.mv_data = addr;
	if (mdb_get(txn, st->db_addrs, &k, &v) == 0 && v.mv_size == 4) {
		uint32_t id;
		memcpy(&id, v.mv_data, 4);
		if ((e = user_rec_get(st, txn, id, &u)) != STORE_OK)
			goto fail;
	} else if ((e = restore_user(st, txn, addr, udir, &u)) != STORE_OK) {
		goto fail;
	}
	list_dir_ids(udir, &dids, &ndids);
	if ((e = user_mbox_ids(st, txn, u.id, &iids, &niids)) != STORE_OK)
		goto fail;
	/* Index mailboxes without a directory are gone. */
	for (size_t i = 0; i < niids; i++) {
		struct mbox_rec mb;
		bool found = false;
		for (size_t j = 0; j < ndids; j++)
			found |= dids[j] == iids[i];
		if (!found && mbox_rec_get(st, txn, iids[i], &mb) == STORE_OK)
			mbox_forget(st, txn, &mb);
	}
	/* Pass 0: directories the index knows; pass 1: the others. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < ndids; i++) {
			struct mbox_rec mb, fm;
			bool existed, file_ok;
			uint32_t id = dids[i];
			if (id == 0)
				continue;
			existed = mbox_rec_get(st, txn, id, &mb) == STORE_OK &&
			    mb.user_id == u.id;
			if (existed != (pass == 0))
				continue;
			snprintf(dir, sizeof(dir), "%s/%u", udir, id);
			memset(&fm, 0, sizeof(fm));
			file_ok = mbox_file_read(dir, &fm) == 0;
			if (!existed) {
				struct mbox_rec other;
				if (mbox_rec_get(st, txn, id, &other) == STORE_OK) {
					/* Id taken by another user's mailbox. */
					char nd[4200];
					if ((e = meta_next_id(st, txn,
					    "next_mbox_id", &id)) != STORE_OK)
						goto fail;
					snprintf(nd, sizeof(nd), "%s/%u", udir, id);
					if (rename(dir, nd) < 0) {
						e = store_errno_err("rename dir");
						goto fail;
					}
					str_copy(dir, nd, sizeof(dir));
				}
				meta_bump_id(st, txn, "next_mbox_id", id + 1);
				memset(&mb, 0, sizeof(mb));
				mb.id = id;
				mb.user_id = u.id;
				if (file_ok) {
					str_copy(mb.name, fm.name, sizeof(mb.name));
					mb.uidvalidity = fm.uidvalidity;
					mb.special_use = fm.special_use;
					mb.nkeywords = fm.nkeywords;
					memcpy(mb.keywords, fm.keywords,
					    sizeof(mb.keywords));
				} else {
					snprintf(mb.name, sizeof(mb.name),
					    "recovered-%u", id);
				}
				if (mb.uidvalidity == 0) {
					uint32_t now = (uint32_t)time(NULL);
					mb.uidvalidity = now > u.last_uidvalidity ?
					    now : u.last_uidvalidity + 1;
				}
				uint32_t oid;
				if (mbox_lookup(st, txn, u.id, mb.name,
				    &oid) == STORE_OK) {
					struct mbox_rec o;
					char od[4200];
					snprintf(od, sizeof(od), "%s/%u", udir, oid);
					if (mbox_rec_get(st, txn, oid, &o) ==
					    STORE_OK && o.messages == 0 &&
					    !dir_has_files(od)) {
						/* An empty stand-in, e.g. made by
						   user add after the index was
						   lost: the old one wins. */
						mbox_forget(st, txn, &o);
						rm_dirs = xrealloc(rm_dirs,
						    (nrm + 1) * sizeof(char *));
						rm_dirs[nrm++] = xstrdup(od);
					} else {
						char nn[STORE_MAILBOX_NAME_MAX + 16];
						snprintf(nn, sizeof(nn), "%.*s-%u",
						    STORE_MAILBOX_NAME_MAX - 12,
						    mb.name, id);
						str_copy(mb.name, nn, sizeof(mb.name));
					}
				}
				unsigned char key[4 + STORE_MAILBOX_NAME_MAX];
				size_t kl;
				name_key(key, &kl, u.id, mb.name);
				MDB_val nk = { kl, key }, nv = { 4, &mb.id };
				int rc = mdb_put(txn, st->db_mbox_names, &nk,
				    &nv, 0);
				if (rc != 0) {
					e = store_mdb_err(rc, "name put");
					goto fail;
				}
			} else if (file_ok && fm.nkeywords > mb.nkeywords) {
				/* Keywords added just before a crash. */
				mb.nkeywords = fm.nkeywords;
				memcpy(mb.keywords, fm.keywords,
				    sizeof(mb.keywords));
			}
			if (mb.uidvalidity > u.last_uidvalidity)
				u.last_uidvalidity = mb.uidvalidity;
			if ((e = rebuild_mailbox(st, txn, &mb, dir, existed, &fm,
			    file_ok, &stats)) != STORE_OK)
				goto fail;
			stats.mailboxes++;
			touched = xrealloc(touched,
			    (ntouched + 1) * sizeof(*touched));
			touched[ntouched++] = mb.id;
		}
	}
	/* Usage from what is really there. */
	u.used = 0;
	for (size_t i = 0; i < ntouched; i++) {
		struct mbox_rec mb;
		if (mbox_rec_get(st, txn, touched[i], &mb) == STORE_OK)
			u.used += mb.size;
	}
	subs_restore_txn(st, txn, u.id, udir);
	if ((e = user_rec_put(st, txn, &u)) != STORE_OK)
		goto fail;
	if (user_file_write(st, &u) < 0) {
		e = store_errno_err("user file");
		goto fail;
	}
	if ((e = store_txn_commit(txn)) != STORE_OK)
		goto out;
	for (size_t i = 0; i < nrm; i++)
		rm_rf(rm_dirs[i]);
	for (size_t i = 0; i < ntouched; i++)
		notify_touch(st, touched[i]);
	if (stats_r != NULL)
		*stats_r = stats;
	goto out;
fail:
	mdb_txn_abort(txn);
out:
	for (size_t i = 0; i < nrm; i++)
		free(rm_dirs[i]);
	free(rm_dirs);
	free(dids);
	free(iids);
	free(touched);
	return e;
}
