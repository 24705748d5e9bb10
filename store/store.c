/* store: opening the LMDB environment, per-thread error detail, small
   file-system helpers (mkdir -p, rm -rf, atomic file writes) shared by the
   rest of the store. No protocol knowledge here, no logging above debug. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store_private.h"

static _Thread_local char err_buf[512];

enum store_err
store_set_error(enum store_err e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	return e;
}

const char *
store_last_error(void)
{
	return err_buf;
}

const char *
store_err_str(enum store_err e)
{
	switch (e) {
	case STORE_OK: return "ok";
	case STORE_ENOTFOUND: return "not found";
	case STORE_EEXISTS: return "already exists";
	case STORE_EPERM: return "not permitted";
	case STORE_EQUOTA: return "over quota";
	case STORE_ELIMIT: return "limit reached";
	case STORE_ETEMP: return "temporary failure";
	case STORE_ECORRUPT: return "index corrupt";
	case STORE_EINTERNAL: return "internal error";
	}
	return "unknown error";
}

enum store_err
store_mdb_err(int rc, const char *what)
{
	enum store_err e;

	switch (rc) {
	case MDB_NOTFOUND: e = STORE_ENOTFOUND; break;
	case MDB_KEYEXIST: e = STORE_EEXISTS; break;
	case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		e = STORE_ECORRUPT; break;
	case MDB_MAP_FULL: case MDB_TXN_FULL: case MDB_READERS_FULL:
	case MDB_MAP_RESIZED: case ENOSPC: case EIO: case EAGAIN: case ENOMEM:
		e = STORE_ETEMP; break;
	default: e = STORE_EINTERNAL; break;
	}
	return store_set_error(e, "%s: %s", what, mdb_strerror(rc));
}

enum store_err
store_errno_err(const char *what)
{
	int err = errno;

	return store_set_error(err == ENOENT ? STORE_ENOTFOUND : STORE_ETEMP,
	    "%s: %s", what, strerror(err));
}

enum store_err
store_txn_begin(struct store *st, bool write, MDB_txn **txn_r)
{
	int rc = mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY, txn_r);

	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size and retry. */
		mdb_env_set_mapsize(st->env, 0);
		rc = mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY, txn_r);
	}
	if (rc != 0)
		return store_mdb_err(rc, "txn begin");
	return STORE_OK;
}

enum store_err
store_txn_commit(MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);

	if (rc != 0)
		return store_mdb_err(rc, "txn commit");
	return STORE_OK;
}

void
be32_put(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

uint32_t
be32_get(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

void
be64_put(unsigned char *p, uint64_t v)
{
	be32_put(p, (uint32_t)(v >> 32));
	be32_put(p + 4, (uint32_t)v);
}

uint64_t
be64_get(const unsigned char *p)
{
	return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

void
msg_key(unsigned char key[8], uint32_t mbox, uint32_t uid)
{
	be32_put(key, mbox);
	be32_put(key + 4, uid);
}

enum store_err
meta_next_id(struct store *st, MDB_txn *txn, const char *name, uint32_t *id_r)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	uint32_t next = 1;
	int rc;

	rc = mdb_get(txn, st->db_meta, &k, &v);
	if (rc == 0 && v.mv_size == sizeof(next))
		memcpy(&next, v.mv_data, sizeof(next));
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return store_mdb_err(rc, "meta get");
	*id_r = next;
	next++;
	v.mv_size = sizeof(next);
	v.mv_data = &next;
	rc = mdb_put(txn, st->db_meta, &k, &v, 0);
	if (rc != 0)
		return store_mdb_err(rc, "meta put");
	return STORE_OK;
}

void
meta_bump_id(struct store *st, MDB_txn *txn, const char *name,
    uint32_t at_least)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	uint32_t next = 1;

	if (mdb_get(txn, st->db_meta, &k, &v) == 0 &&
	    v.mv_size == sizeof(next))
		memcpy(&next, v.mv_data, sizeof(next));
	if (next >= at_least)
		return;
	v.mv_size = sizeof(at_least);
	v.mv_data = &at_least;
	mdb_put(txn, st->db_meta, &k, &v, 0);
}

int
mkdir_p(const char *path, mode_t mode)
{
	char tmp[4096];
	size_t len = str_copy(tmp, path, sizeof(tmp));

	if (len >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

int
rm_rf(const char *path)
{
	struct stat sb;
	DIR *d;
	struct dirent *de;
	int ret = 0;

	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(sb.st_mode))
		return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *sub = xasprintf("%s/%s", path, de->d_name);
		if (rm_rf(sub) < 0)
			ret = -1;
		free(sub);
	}
	closedir(d);
	if (rmdir(path) < 0 && errno != ENOENT)
		ret = -1;
	return ret;
}

int
fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret;
}

int
write_file_atomic(const char *path, const char *data, size_t len)
{
	char tmp[4200], dir[4096];
	int fd, ret = -1;
	size_t off = 0;
	const char *slash;

	/* Per thread, not per process: worker threads of one daemon may
	   rewrite the same mirror file at once. */
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%d", path, (int)getpid(),
	    (int)gettid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0)
		goto out;
	if (rename(tmp, path) < 0)
		goto out;
	slash = strrchr(path, '/');
	if (slash != NULL && (size_t)(slash - path) < sizeof(dir)) {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		/* The rename is done, but unless the directory is on disk
		   the caller must not count on the new contents. */
		if (fsync_dir(dir) < 0)
			goto out;
	}
	ret = 0;
out:
	close(fd);
	if (ret < 0)
		unlink(tmp);
	return ret;
}

char *
read_file_str(const char *path)
{
	struct buf b;
	char chunk[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return NULL;
	buf_init(&b);
	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			buf_free(&b);
			return NULL;
		}
		buf_append(&b, chunk, (size_t)r);
	}
	close(fd);
	if (b.data == NULL)
		return xstrdup("");
	return buf_steal(&b);
}

/* After the index was lost, ids must not collide with directories and users
   still on disk: start the counters past everything found under mail/. */
static void
seed_counters(struct store *st, MDB_txn *txn)
{
	char *mail = xasprintf("%s/mail", st->data_dir);
	uint32_t max_mbox = 0, max_user = 0;
	DIR *dd = opendir(mail), *ud, *md;
	struct dirent *de, *ue, *me;

	while (dd != NULL && (de = readdir(dd)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *dpath = xasprintf("%s/%s", mail, de->d_name);
		ud = opendir(dpath);
		while (ud != NULL && (ue = readdir(ud)) != NULL) {
			if (ue->d_name[0] == '.')
				continue;
			char *upath = xasprintf("%s/%s", dpath, ue->d_name);
			char *uf = xasprintf("%s/" STORE_USER_FILE, upath);
			char *s = read_file_str(uf);
			unsigned long id;
			if (s != NULL && sscanf(s, "id %lu", &id) == 1 &&
			    id > max_user && id < UINT32_MAX)
				max_user = (uint32_t)id;
			free(s);
			free(uf);
			md = opendir(upath);
			while (md != NULL && (me = readdir(md)) != NULL) {
				char *end;
				unsigned long v = strtoul(me->d_name, &end, 10);
				if (*end == '\0' && me->d_name[0] != '\0' &&
				    v > max_mbox && v < UINT32_MAX)
					max_mbox = (uint32_t)v;
			}
			if (md != NULL)
				closedir(md);
			free(upath);
		}
		if (ud != NULL)
			closedir(ud);
		free(dpath);
	}
	if (dd != NULL)
		closedir(dd);
	free(mail);
	meta_bump_id(st, txn, "next_mbox_id", max_mbox + 1);
	meta_bump_id(st, txn, "next_user_id", max_user + 1);
}

static enum store_err
open_dbs(struct store *st)
{
	static const struct { const char *name; size_t off; unsigned flags; }
	dbs[] = {
		{ "meta", offsetof(struct store, db_meta), 0 },
		{ "domains", offsetof(struct store, db_domains), 0 },
		{ "users", offsetof(struct store, db_users), MDB_INTEGERKEY },
		{ "addrs", offsetof(struct store, db_addrs), 0 },
		{ "aliases", offsetof(struct store, db_aliases), 0 },
		{ "mboxes", offsetof(struct store, db_mboxes), MDB_INTEGERKEY },
		{ "mbox_names", offsetof(struct store, db_mbox_names), 0 },
		{ "msgs", offsetof(struct store, db_msgs), 0 },
		{ "cache", offsetof(struct store, db_cache), 0 },
		{ "tombs", offsetof(struct store, db_tombs), 0 },
		{ "subs", offsetof(struct store, db_subs), 0 },
	};
	MDB_txn *txn;
	enum store_err e;
	int rc;

	if ((e = store_txn_begin(st, true, &txn)) != STORE_OK)
		return e;
	for (size_t i = 0; i < ARRAY_SIZE(dbs); i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)st + dbs[i].off);
		rc = mdb_dbi_open(txn, dbs[i].name, dbs[i].flags | MDB_CREATE, dbi);
		if (rc != 0) {
			mdb_txn_abort(txn);
			return store_mdb_err(rc, "dbi open");
		}
	}
	/* A store from before the MODSEQ index: build it once, here. */
	rc = mdb_dbi_open(txn, "msgmodseq", 0, &st->db_modseq);
	if (rc == MDB_NOTFOUND) {
		rc = mdb_dbi_open(txn, "msgmodseq", MDB_CREATE, &st->db_modseq);
		if (rc == 0 && (e = modseq_idx_build(st, txn)) != STORE_OK) {
			mdb_txn_abort(txn);
			return e;
		}
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		return store_mdb_err(rc, "dbi open");
	}
	MDB_val k = { 12, "next_mbox_id" }, v;
	if (mdb_get(txn, st->db_meta, &k, &v) == MDB_NOTFOUND)
		seed_counters(st, txn);
	return store_txn_commit(txn);
}

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct store *reg_head;

/* Deliveries killed half-way leave files in data_dir/tmp; a day is far
   longer than any delivery in progress in another process. */
static void
clean_tmp(const char *data_dir)
{
	char *dir = xasprintf("%s/tmp", data_dir);
	DIR *d = opendir(dir);
	struct dirent *de;
	time_t limit = time(NULL) - 36 * 3600;

	while (d != NULL && (de = readdir(d)) != NULL) {
		struct stat sb;
		if (de->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", dir, de->d_name);
		if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    sb.st_mtime < limit)
			unlink(p);
		free(p);
	}
	if (d != NULL)
		closedir(d);
	free(dir);
}

static enum store_err store_open_new(const char *data_dir,
    struct store **st_r);
static void store_free(struct store *st);

enum store_err
store_open(const char *data_dir, struct store **st_r)
{
	char *real;
	enum store_err e;

	*st_r = NULL;
	if (mkdir_p(data_dir, 0700) < 0)
		return store_errno_err(data_dir);
	if ((real = realpath(data_dir, NULL)) == NULL)
		return store_errno_err(data_dir);
	pthread_mutex_lock(&reg_mu);
	for (struct store *s = reg_head; s != NULL; s = s->reg_next) {
		if (s->pid == getpid() && strcmp(s->real_dir, real) == 0) {
			s->refs++;
			*st_r = s;
			pthread_mutex_unlock(&reg_mu);
			free(real);
			return STORE_OK;
		}
	}
	e = store_open_new(real, st_r);
	if (e == STORE_OK) {
		(*st_r)->real_dir = real;
		(*st_r)->pid = getpid();
		(*st_r)->refs = 1;
		(*st_r)->reg_next = reg_head;
		reg_head = *st_r;
	} else {
		free(real);
	}
	pthread_mutex_unlock(&reg_mu);
	return e;
}

static enum store_err
store_open_new(const char *data_dir, struct store **st_r)
{
	struct store *st = xcalloc(1, sizeof(*st));
	char path[4096];
	enum store_err e;
	int rc;

	*st_r = NULL;
	st->data_dir = xstrdup(data_dir);
	atomic_init(&st->group_commit, true);
	atomic_init(&st->unique, 0);
	gc_init(st);
	pthread_mutex_init(&st->dirfd_mu, NULL);
	if (gethostname(st->host, sizeof(st->host) - 1) < 0 || !st->host[0])
		str_copy(st->host, "localhost", sizeof(st->host));
	for (char *p = st->host; *p; p++)
		if (*p == '/' || *p == ':' || *p == ',' || *p == '.')
			*p = '_';
	static const char *const sub[] = { "index", "mail", "tmp", "notify",
	    "locks" };
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
		snprintf(path, sizeof(path), "%s/%s", data_dir, sub[i]);
		if (mkdir_p(path, 0700) < 0) {
			e = store_errno_err(path);
			goto fail;
		}
	}
	if ((rc = mdb_env_create(&st->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(st->env, 32)) != 0 ||
	    (rc = mdb_env_set_mapsize(st->env, STORE_MAP_SIZE)) != 0 ||
	    (rc = mdb_env_set_maxreaders(st->env, 1022)) != 0) {
		e = store_mdb_err(rc, "env create");
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/index", data_dir);
	if ((rc = mdb_env_open(st->env, path, MDB_NOTLS, 0600)) != 0) {
		e = store_mdb_err(rc, path);
		goto fail;
	}
	/* Readers left behind by a killed process would pin old pages. */
	int dead;
	mdb_reader_check(st->env, &dead);
	if ((e = open_dbs(st)) != STORE_OK || (e = queue_open(st)) != STORE_OK)
		goto fail;
	clean_tmp(data_dir);
	*st_r = st;
	return STORE_OK;
fail:
	store_free(st);
	return e;
}

static void
store_free(struct store *st)
{
	if (st->env != NULL)
		mdb_env_close(st->env);
	gc_deinit(st);
	dirfd_deinit(st);
	pthread_mutex_destroy(&st->dirfd_mu);
	free(st->data_dir);
	free(st->real_dir);
	free(st);
}

void
store_close(struct store **stp)
{
	struct store *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	pthread_mutex_lock(&reg_mu);
	if (st->refs > 1) {
		st->refs--;
		pthread_mutex_unlock(&reg_mu);
		return;
	}
	for (struct store **pp = &reg_head; *pp != NULL; pp = &(*pp)->reg_next) {
		if (*pp == st) {
			*pp = st->reg_next;
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
	store_free(st);
}

void
store_set_group_commit(struct store *st, bool on)
{
	atomic_store(&st->group_commit, on);
}
