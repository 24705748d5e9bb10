/* store_private: what the store's .c files share and nothing outside
   store/ may include. The LMDB schema (one environment, named DBs), the
   packed record layouts, error helpers and the maildir path helpers. */
#ifndef POSTROOM_STORE_PRIVATE_H
#define POSTROOM_STORE_PRIVATE_H

#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#include "store.h"
#include "util.h"

/* Paths are built in PATH_MAX-sized buffers from the administrator's
   data_dir plus short generated names; snprintf truncation there is not a
   concern worth a check at every call, and GCC cannot see the bounds. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define STORE_MAP_SIZE      ((size_t)32 << 30)
#define STORE_RESERVE_CHUNK 1024     /* uid/modseq marks in postroom-mailbox */
#define STORE_MBOX_FILE     "postroom-mailbox"
#define STORE_USER_FILE     "postroom-user"
#define STORE_SUBS_FILE     "postroom-subscriptions"
#define STORE_MAX_TARGETS   1000
#define STORE_ALIAS_DEPTH   8
#define STORE_PW_HASH_MAX   128

struct gc_req;
struct dirfd_ent;

#define STORE_DIRFD_SLOTS 64

struct store {
	char *data_dir;
	MDB_env *env;
	/* meta: "next_user_id", "next_mbox_id" -> u32 */
	MDB_dbi db_meta;
	MDB_dbi db_domains;    /* domain -> "" */
	MDB_dbi db_users;      /* u32 id -> struct user_rec */
	MDB_dbi db_addrs;      /* address -> u32 user id */
	MDB_dbi db_aliases;    /* alias -> targets */
	MDB_dbi db_mboxes;     /* u32 mbox id -> struct mbox_rec */
	MDB_dbi db_mbox_names; /* be32 user id + name -> u32 mbox id */
	MDB_dbi db_msgs;       /* be32 mbox + be32 uid -> packed msg record */
	MDB_dbi db_cache;      /* be32 mbox + be32 uid -> packed mime cache */
	MDB_dbi db_tombs;      /* be32 mbox + be32 uid -> u64 modseq */
	MDB_dbi db_subs;       /* be32 user id + name -> "" */
	/* be32 mbox + be64 modseq + be32 uid -> "" (store_modseq.c) */
	MDB_dbi db_modseq;
	/* The outbound queue (store_queue.c): */
	MDB_dbi db_qmsgs;      /* be64 id -> packed queue message */
	MDB_dbi db_qrcpts;     /* be64 id + be32 idx -> packed recipient */
	MDB_dbi db_qsched;     /* be64 time + be64 id -> "" */
	MDB_dbi db_qlog;       /* be64 id + be64 time_us + be32 idx -> entry */
	MDB_dbi db_qrate;      /* address -> be64 window start + be32 count */
	_Atomic double rate_period;
	char host[64];
	atomic_bool group_commit;
	atomic_uint unique;
	pthread_mutex_t gc_mu;
	pthread_cond_t gc_cv;
	struct gc_req *gc_head, *gc_tail;
	bool gc_busy;
	uint64_t gc_batches, gc_commits;   /* under gc_mu */
	/* cur/ directory fds by mailbox id (store_dirfd.c) */
	pthread_mutex_t dirfd_mu;
	struct dirfd_ent *dirfds[STORE_DIRFD_SLOTS];
	/* Process-wide registry of open stores (LMDB allows one environment
	   per file per process): */
	char *real_dir;
	pid_t pid;
	unsigned refs;
	struct store *reg_next;
};

struct user_rec {
	uint32_t id;
	uint32_t last_uidvalidity;
	uint64_t quota;
	uint64_t used;
	char address[STORE_ADDRESS_MAX + 1];
	char hash[STORE_PW_HASH_MAX];
};

struct mbox_rec {
	uint32_t id;
	uint32_t user_id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t first_recent_uid;
	uint32_t messages, unseen, recent, deleted;
	uint32_t special_use;
	uint32_t reserved_uid;      /* no uid >= this was ever handed out */
	uint32_t nkeywords;
	uint64_t highestmodseq;
	uint64_t reserved_modseq;   /* no modseq >= this was ever handed out */
	uint64_t size;
	char name[STORE_MAILBOX_NAME_MAX + 1];
	char keywords[STORE_MAX_KEYWORDS][STORE_KEYWORD_MAX + 1];
};

/* A message record: fixed head followed by the base file name. */
struct msg_head {
	uint32_t flags;
	uint32_t keywords;
	uint64_t modseq;
	uint64_t size;
	int64_t internaldate;
	int32_t internal_tz;
	uint32_t base_len;
};
#define MSG_BASE_MAX 255

/* A record whose file name lags behind its flags (a deferred flag change,
   store_msg_set_flags_deferred) carries the letters the name has on disk
   in a trailer after the base: one version byte (MSG_DISK_V1), then the
   u32 flags and u32 keyword bits of the name. Records without it (all of
   them before deferred changes existed) have the letters of h. */
#define MSG_DISK_V1   1
#define MSG_DISK_LEN  9

struct msg_rec {
	uint32_t uid;           /* from the key, not encoded in the value */
	struct msg_head h;
	char base[MSG_BASE_MAX + 1];
	bool behind;            /* the name has disk_*, not h's letters */
	uint32_t disk_flags;
	uint32_t disk_keywords;
};

/* ---- store.c ---- */
enum store_err store_set_error(enum store_err e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
enum store_err store_mdb_err(int rc, const char *what);
enum store_err store_errno_err(const char *what);

enum store_err store_txn_begin(struct store *st, bool write, MDB_txn **txn_r);
enum store_err store_txn_commit(MDB_txn *txn);

void be32_put(unsigned char *p, uint32_t v);
uint32_t be32_get(const unsigned char *p);
void be64_put(unsigned char *p, uint64_t v);
uint64_t be64_get(const unsigned char *p);
void msg_key(unsigned char key[8], uint32_t mbox, uint32_t uid);

enum store_err meta_next_id(struct store *st, MDB_txn *txn, const char *name,
    uint32_t *id_r);
void meta_bump_id(struct store *st, MDB_txn *txn, const char *name,
    uint32_t at_least);

int mkdir_p(const char *path, mode_t mode);
int rm_rf(const char *path);
int fsync_dir(const char *path);
/* Writes data to path atomically (tmp + fsync + rename + dir fsync). */
int write_file_atomic(const char *path, const char *data, size_t len);
char *read_file_str(const char *path);

/* ---- users (store_user.c) ---- */
enum store_err user_rec_get(struct store *st, MDB_txn *txn, uint32_t id,
    struct user_rec *u_r);
enum store_err user_rec_put(struct store *st, MDB_txn *txn,
    const struct user_rec *u);
/* data_dir/mail/DOMAIN/LOCAL */
void user_dir(struct store *st, const char *address, char *buf, size_t size);
int user_file_write(struct store *st, const struct user_rec *u);
bool local_part_is_valid(const char *s, size_t len);
bool domain_is_valid(const char *d);
/* Creates the user record (id want_id if free, else a new one) and maildir;
   the caller adds mailboxes and puts the record again. */
enum store_err user_create_txn(struct store *st, MDB_txn *txn,
    const char *addr, const char *pw_hash, uint64_t quota, uint32_t want_id,
    struct user_rec *u);

/* ---- mailboxes (store_mailbox.c) ---- */
enum store_err mbox_rec_get(struct store *st, MDB_txn *txn, uint32_t id,
    struct mbox_rec *mb_r);
enum store_err mbox_rec_put(struct store *st, MDB_txn *txn,
    const struct mbox_rec *mb);
enum store_err mbox_lookup(struct store *st, MDB_txn *txn, uint32_t user_id,
    const char *name, uint32_t *id_r);
/* Returns the mailbox directory (data_dir/mail/D/L/<id>). */
enum store_err mbox_dir(struct store *st, MDB_txn *txn,
    const struct mbox_rec *mb, char *buf, size_t size);
void mbox_to_public(struct store *st, MDB_txn *txn, const struct mbox_rec *r,
    struct store_mailbox *mb);
/* Rewrites postroom-mailbox from mb (fsync'd). */
int mbox_file_write(const char *dir, const struct mbox_rec *mb);
/* Parses a postroom-mailbox file into mb (name, uidvalidity, special use,
   marks, keywords). 0 or -1. */
int mbox_file_read(const char *dir, struct mbox_rec *mb);
/* mbox_file_write into the mailbox's directory (dir NULL: looked up). */
enum store_err mbox_file_sync(struct store *st, MDB_txn *txn,
    const struct mbox_rec *mb, const char *dir);
/* Hands out the next uid / modseq, moving the reserved marks (and writing
   the mailbox file) when they are reached. dir may be NULL to look it up. */
enum store_err mbox_next_uid(struct store *st, MDB_txn *txn,
    struct mbox_rec *mb, const char *dir, uint32_t *uid_r);
enum store_err mbox_next_modseq(struct store *st, MDB_txn *txn,
    struct mbox_rec *mb, const char *dir, uint64_t *modseq_r);
enum store_err mbox_create_txn(struct store *st, MDB_txn *txn,
    struct user_rec *u, const char *name, uint32_t special_use,
    struct mbox_rec *mb_r);
/* Resolves keyword names to bits in mb, adding new ones if add. */
enum store_err mbox_keywords_bits(struct mbox_rec *mb,
    const char *const *kw, size_t n, bool add, uint32_t *bits_r,
    bool *added_r);
int mailbox_name_normalize(const char *in, char *out);
/* key: 4 + STORE_MAILBOX_NAME_MAX bytes. */
void name_key(unsigned char *key, size_t *len_r, uint32_t user_id,
    const char *name);
/* The user's mailbox ids in name order; owned array. */
enum store_err user_mbox_ids(struct store *st, MDB_txn *txn, uint32_t user_id,
    uint32_t **ids_r, size_t *n_r);
void notify_touch(struct store *st, uint32_t mbox_id);
/* Mirrors the user's subscriptions into postroom-subscriptions. */
void subs_file_write(struct store *st, MDB_txn *txn, uint32_t user_id);
enum store_err subs_add_txn(struct store *st, MDB_txn *txn, uint32_t user_id,
    const char *name);
void subs_restore_txn(struct store *st, MDB_txn *txn, uint32_t user_id,
    const char *udir);
/* Deletes every message record, cache entry and tombstone of a mailbox;
   the caller removes the mailbox directory (files and all) after commit. */
enum store_err mbox_purge_txn(struct store *st, MDB_txn *txn, uint32_t mbox_id);

/* ---- messages (store_msg.c) ---- */
int msg_rec_decode(const MDB_val *v, struct msg_rec *m);
void msg_rec_encode(const struct msg_rec *m, struct buf *out);
/* "<base>:2,<letters>": the name the file has on disk (m->disk_* letters
   while m->behind). */
void msg_file_name(const struct mbox_rec *mb, const struct msg_rec *m,
    char *buf, size_t size);
/* The name with the letters of m's flags (what a catch-up renames to). */
void msg_want_name(const struct msg_rec *m, char *buf, size_t size);
/* Marks nm (a copy of m with changed flags) as behind: its file keeps
   m's name. Clears behind when the flags came back to the name's. */
void msg_set_behind(const struct msg_rec *m, struct msg_rec *nm);
void msg_letters(uint32_t flags, uint32_t keywords, char *buf);
/* Finds the file of a message in dir/cur (derived name, else a scan for the
   base). 0 with the full path in buf, or -1. */
int msg_find_path(const char *dir, const struct mbox_rec *mb,
    const struct msg_rec *m, char *buf, size_t size);
void mbox_counters_add(struct mbox_rec *mb, const struct msg_rec *m, int sign);
/* hdr may be NULL (header not cached: too large). */
void cache_encode(const struct store_msg_cache *c, const char *hdr,
    size_t hdr_len, struct buf *out);
/* Length of the top-level header of msg[0..len) as FETCH BODY[HEADER]
   sees it (store_msg_header_get). */
size_t msg_header_len(const char *msg, size_t len);
/* Parses the size bytes of the file open on fd (fd < 0: unreadable) and
   encodes its cache record into out (reset first). */
void cache_build(int fd, uint64_t size, struct buf *out);
/* The same from the message in memory (NULL with size > 0: unreadable). */
void cache_build_mem(const char *msg, uint64_t size, struct buf *out);
enum store_err msg_rec_get(struct store *st, MDB_txn *txn, uint32_t mbox,
    uint32_t uid, struct msg_rec *m);
enum store_err msg_rec_put(struct store *st, MDB_txn *txn, uint32_t mbox,
    const struct msg_rec *m);

/* Renames made inside a write transaction, to undo if it fails. A name
   without a '/' is relative to dfd (renameat ignores it for absolute
   paths). */
struct rename_log {
	char **from, **to;
	size_t n, cap;
	int dfd;
};
void rename_log_add(struct rename_log *l, const char *from, const char *to);
/* Frees the log; with undo, first renames every file back (newest
   first). */
void rename_log_free(struct rename_log *l, bool undo);

/* Renames m's file (whatever letters its name has) to dir/cur/nname
   inside the caller's write transaction, logging it in l. A file found
   nowhere is left alone (STORE_OK). */
enum store_err msg_rename_to(const char *dir, const struct mbox_rec *mb,
    const struct msg_rec *m, const char *nname, struct rename_log *l);

/* ---- the MODSEQ index (store_modseq.c) ---- */
#define MODSEQ_KEY_LEN 16
void modseq_idx_key(unsigned char key[MODSEQ_KEY_LEN], uint32_t mbox,
    uint64_t modseq, uint32_t uid);
/* store_names.c: a write that leaves names behind in mbox (a deferred
   flag change, records carried by a rename) calls names_expect in its
   transaction, so that catch-ups and the start look at that mailbox (and
   at no other); names_forget when the mailbox goes. */
enum store_err names_expect(struct store *st, MDB_txn *txn, uint32_t mbox);
enum store_err names_forget(struct store *st, MDB_txn *txn, uint32_t mbox);
enum store_err modseq_idx_put(struct store *st, MDB_txn *txn, uint32_t mbox,
    uint64_t modseq, uint32_t uid);
/* A missing entry is not an error. */
enum store_err modseq_idx_del(struct store *st, MDB_txn *txn, uint32_t mbox,
    uint64_t modseq, uint32_t uid);
enum store_err modseq_idx_purge(struct store *st, MDB_txn *txn,
    uint32_t mbox);
/* Indexes every message record of the store (a store from before the
   index existed). */
enum store_err modseq_idx_build(struct store *st, MDB_txn *txn);
/* The uids of mbox with modseq > min_modseq, sorted (owned array). -1 if
   there are more than max of them (or on error): scan the records then. */
int modseq_idx_changed(struct store *st, MDB_txn *txn, uint32_t mbox,
    uint64_t min_modseq, size_t max, uint32_t **uids_r, size_t *n_r);

/* ---- cached cur/ directory fds (store_dirfd.c) ---- */
/* A referenced entry for the mailbox, or NULL if none is cached. */
struct dirfd_ent *dirfd_ref(struct store *st, uint32_t mbox_id);
/* Opens dir/cur, caches it (replacing the slot's entry) and returns it
   referenced; NULL if the directory cannot be opened. */
struct dirfd_ent *dirfd_add(struct store *st, uint32_t mbox_id,
    const char *dir);
void dirfd_unref(struct store *st, struct dirfd_ent *e);
int dirfd_fd(const struct dirfd_ent *e);
void dirfd_deinit(struct store *st);

/* ---- staged file changes (store_pending.c) ---- */
/* Beside cur/ in a mailbox directory: links of a transaction that has not
   committed yet, and files it takes away. Whatever a crash leaves there is
   resolved against the index by pending_settle(). */
#define STORE_ADDING_DIR   "postroom-adding"
#define STORE_REMOVING_DIR "postroom-removing"
void pending_path(const char *dir, const char *sub, const char *name,
    char *buf, size_t size);
/* Links from as dir/postroom-adding/name (path in out). 0 or -1 (errno). */
int pending_add(const char *from, const char *dir, const char *name,
    char *out, size_t size);
/* Renames from (a file of dir's cur/) into dir/postroom-removing/. */
int pending_remove(const char *from, const char *dir, char *out,
    size_t size);
/* fsyncs what the staging changed, before the commit. */
int pending_sync(const char *dir, bool adding, bool removing);
/* After the commit: dir/postroom-adding/NAME into dir/cur/NAME. */
void pending_publish(const char *path);
/* Resolves whatever is staged in dir by the index (mb in txn; mb NULL: the
   index does not know the mailbox). Writer lock held: write txn only. */
enum store_err pending_settle(struct store *st, MDB_txn *txn,
    const struct mbox_rec *mb, const char *dir);

struct pending_list {
	char **p;       /* staged paths */
	char **orig;    /* where a removed file came from (NULL: a link) */
	size_t n;
};
enum pending_end {
	PENDING_UNLINK,     /* committed removals; failed links */
	PENDING_PUBLISH,    /* committed links: into cur/ */
	PENDING_UNDO,       /* failed: links unlinked, removals put back */
};
void pending_list_add(struct pending_list *l, const char *path,
    const char *orig);
void pending_list_done(struct pending_list *l, enum pending_end end);

/* ---- delivery (store_delivery.c) ---- */
void gc_init(struct store *st);
void gc_deinit(struct store *st);

/* ---- the queue (store_queue.c) ---- */
struct queue_part;
/* Opens the queue's named DBs and creates queue/ and queue/corrupt/
   (store_open, after the other DBs). */
enum store_err queue_open(struct store *st);
/* The delivery's queue part, set by store_delivery_queue (owned by d). */
struct queue_part **delivery_queue_part(struct store_delivery *d);
/* Inside the delivery's transaction: allocates the ID, links tmp_path to
   queue/<ID> (*path_r: owned, to unlink if the transaction fails), writes
   the records and counts the rate. */
enum store_err queue_commit_txn(struct store *st, MDB_txn *txn,
    struct queue_part *q, const char *tmp_path, uint64_t size,
    char **path_r);
void queue_part_free(struct queue_part *q);

#endif
