/* store: the mail store. One LMDB environment (data_dir/index) holds domains,
   users, aliases, mailboxes and message records; bodies are immutable
   maildir files under data_dir/mail/DOMAIN/LOCAL/<mailbox-id>/cur, stored
   with CRLF line ends so that a message's size is its file's size.
   Every function is thread-safe and may block (disk, fsync, LMDB write
   lock): daemons call the writing ones from worker threads only. Errors come
   back as enum store_err with detail in store_last_error() (per thread).
   The store never logs above debug and never exits. */
#ifndef POSTROOM_STORE_H
#define POSTROOM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_err {
	STORE_OK = 0,
	STORE_ENOTFOUND,   /* no such user / mailbox / message / domain */
	STORE_EEXISTS,     /* already exists; also: lock held (IN-USE) */
	STORE_EPERM,       /* not allowed (bad name, non-local domain, INBOX delete) */
	STORE_EQUOTA,      /* over quota */
	STORE_ELIMIT,      /* a store limit (keywords per mailbox, name length) */
	STORE_ETEMP,       /* temporary: disk full, I/O error, map full; retry */
	STORE_ECORRUPT,    /* index and files disagree in a way we cannot fix */
	STORE_EINTERNAL,
};

#define STORE_ADDRESS_MAX      254
#define STORE_MAILBOX_NAME_MAX 255    /* bytes of UTF-8 */
#define STORE_MAX_KEYWORDS     26     /* per mailbox: mirrored as a-z in file names */
#define STORE_KEYWORD_MAX      64

/* System flags (\Recent is per session, not stored). */
enum store_flag {
	STORE_F_SEEN     = 1 << 0,
	STORE_F_ANSWERED = 1 << 1,
	STORE_F_FLAGGED  = 1 << 2,
	STORE_F_DELETED  = 1 << 3,
	STORE_F_DRAFT    = 1 << 4,
};

/* RFC 6154 special-use attributes of a mailbox. */
enum store_special_use {
	STORE_SU_ALL     = 1 << 0,
	STORE_SU_ARCHIVE = 1 << 1,
	STORE_SU_DRAFTS  = 1 << 2,
	STORE_SU_FLAGGED = 1 << 3,
	STORE_SU_JUNK    = 1 << 4,
	STORE_SU_SENT    = 1 << 5,
	STORE_SU_TRASH   = 1 << 6,
};

struct store;

/* Opens (creating if need be) the store under data_dir. Several processes
   may open the same data_dir at once. Within one process, opening the same
   data_dir again returns the same shared handle (reference counted: LMDB
   allows one environment per file per process); each store_open needs its
   store_close. Never use a handle across fork(): open in the child.
   Owned; close with store_close. */
enum store_err store_open(const char *data_dir, struct store **st_r);
void store_close(struct store **st);
/* Detail of this thread's last error. Borrowed, valid until the next call. */
const char *store_last_error(void);
const char *store_err_str(enum store_err e);

/* ---- domains, users, aliases (mailctl; also read by the daemons) ---- */

struct store_user {
	uint32_t id;
	char address[STORE_ADDRESS_MAX + 1];   /* lowercase local@domain */
	uint64_t quota;                        /* bytes, 0 = unlimited */
	uint64_t used;                         /* bytes of mail stored */
};

/* Each callback returns 0 to go on, non-zero to stop. */
typedef int store_str_cb(void *arg, const char *a, const char *b);

enum store_err store_domain_add(struct store *st, const char *domain);
/* Fails with STORE_EPERM while users or aliases of the domain exist. */
enum store_err store_domain_del(struct store *st, const char *domain);
enum store_err store_domain_list(struct store *st, store_str_cb *cb, void *arg);
bool store_domain_is_local(struct store *st, const char *domain);

/* pw_hash: an Argon2id string from pw_hash() (auth.h). Creates the maildir
   and INBOX, Drafts, Sent, Trash, Junk, Archive (with special-use), all
   subscribed.
   STORE_EPERM if the domain is not local or the local part is invalid
   ([a-z0-9._-], no leading dot), STORE_EEXISTS if taken by a user or alias. */
enum store_err store_user_add(struct store *st, const char *address,
    const char *pw_hash, uint64_t quota, struct store_user *user_r);
enum store_err store_user_set_password(struct store *st, const char *address,
    const char *pw_hash);
enum store_err store_user_set_quota(struct store *st, const char *address,
    uint64_t quota);
/* Removes the user, its index entries and its maildir. */
enum store_err store_user_del(struct store *st, const char *address);
enum store_err store_user_get(struct store *st, const char *address,
    struct store_user *user_r);
enum store_err store_user_get_by_id(struct store *st, uint32_t id,
    struct store_user *user_r);
/* cb(arg, address, NULL) for each user, of one domain if domain != NULL. */
enum store_err store_user_list(struct store *st, const char *domain,
    store_str_cb *cb, void *arg);

/* Looks up the user and checks the password (Argon2id, slow: worker thread
   only). Unknown users cost the same time. STORE_ENOTFOUND for an unknown
   user or a wrong password alike. */
enum store_err store_authenticate(struct store *st, const char *address,
    const char *password, struct store_user *user_r);

/* targets: comma-separated local addresses (users or other aliases).
   STORE_EEXISTS if a user or alias has that address already. */
enum store_err store_alias_add(struct store *st, const char *alias,
    const char *targets);
enum store_err store_alias_del(struct store *st, const char *alias);
/* cb(arg, alias, targets). */
enum store_err store_alias_list(struct store *st, store_str_cb *cb, void *arg);

/* Resolves a recipient: case-insensitive, "user+tag@domain" as
   "user@domain", aliases expanded recursively (depth 8). STORE_OK with an
   owned array of unique user ids; STORE_ENOTFOUND if the domain is local but
   no user or alias matches; STORE_EPERM if the domain is not local. */
enum store_err store_resolve(struct store *st, const char *address,
    uint32_t **user_ids_r, size_t *n_r);
/* Whether user may send as address: its own address, its +tag forms, and
   aliases that resolve to it. */
bool store_user_owns_address(struct store *st, uint32_t user_id,
    const char *address);

/* An exclusive advisory lock per user and purpose (POP3 maildrop), across
   processes. STORE_OK with an fd to close to unlock; STORE_EEXISTS if held. */
enum store_err store_user_lock(struct store *st, uint32_t user_id,
    const char *purpose, int *fd_r);

/* ---- mailboxes ---- */

struct store_mailbox {
	uint32_t id;                        /* unique in the store, never reused */
	uint32_t user_id;
	char name[STORE_MAILBOX_NAME_MAX + 1];  /* UTF-8, '/' separated; "INBOX" */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint32_t unseen;
	uint32_t recent;                    /* messages with uid >= first_recent_uid */
	uint32_t first_recent_uid;
	uint32_t deleted;                   /* messages with \Deleted */
	uint64_t size;                      /* sum of message sizes */
	uint32_t special_use;               /* enum store_special_use bits */
	bool subscribed;
	unsigned nkeywords;                 /* keyword i is bit i of store_msg.keywords */
	char keywords[STORE_MAX_KEYWORDS][STORE_KEYWORD_MAX + 1];
};

/* Names are validated here: non-empty UTF-8, no control characters, no
   empty, "." or ".." component, no leading '/', <= 255 bytes; a trailing '/'
   is stripped; "inbox" in any case is INBOX. Directories are named by id, so
   a name can never reach outside the user's maildir. */
enum store_err store_mailbox_get(struct store *st, uint32_t user_id,
    const char *name, struct store_mailbox *mb_r);
enum store_err store_mailbox_get_by_id(struct store *st, uint32_t mbox_id,
    struct store_mailbox *mb_r);
/* Owned array sorted by name. */
enum store_err store_mailbox_list(struct store *st, uint32_t user_id,
    struct store_mailbox **mbs_r, size_t *n_r);
/* special_use may be 0. Parents are not created implicitly. */
enum store_err store_mailbox_create(struct store *st, uint32_t user_id,
    const char *name, uint32_t special_use, struct store_mailbox *mb_r);
/* Removes the mailbox and its messages (not its children). INBOX: EPERM. */
enum store_err store_mailbox_delete(struct store *st, uint32_t user_id,
    const char *name);
/* Renames the mailbox and its children ("old/..."), keeping UIDVALIDITY.
   Renaming INBOX moves its messages into a new mailbox and leaves INBOX
   empty (RFC 3501 6.3.5). */
enum store_err store_mailbox_rename(struct store *st, uint32_t user_id,
    const char *old_name, const char *new_name);
/* Subscriptions are kept by name and may name mailboxes that do not exist. */
enum store_err store_subscription_set(struct store *st, uint32_t user_id,
    const char *name, bool subscribed);
/* Owned array of owned names (free each, then the array). */
enum store_err store_subscription_list(struct store *st, uint32_t user_id,
    char ***names_r, size_t *n_r);
/* Claims \Recent (RFC 3501): returns the first uid that is recent for the
   calling session and moves the mailbox's mark to uidnext, so no other
   session sees those messages as recent. Write transaction. */
enum store_err store_mailbox_claim_recent(struct store *st, uint32_t mbox_id,
    uint32_t *first_recent_uid_r);
/* The same, and the mailbox's uidnext of that transaction: [*first_r,
   *uidnext_r) are the caller's recent messages, exactly; messages
   delivered after the claim are at or past *uidnext_r. */
enum store_err store_mailbox_claim_recent_range(struct store *st,
    uint32_t mbox_id, uint32_t *first_r, uint32_t *uidnext_r);

/* What SELECT and EXAMINE report, from the mailbox record and its
   counters (kept by every transaction that adds, expunges or changes the
   flags of a message), in one transaction. */
struct store_select {
	struct store_mailbox mb;    /* after the claim; subscribed not read */
	uint32_t recent_lo, recent_hi;  /* uids [lo, hi) are recent */
	uint32_t recent;            /* messages in that range */
	uint32_t first_unseen;      /* MSN of the first without \Seen, 0: none */
};
/* claim: SELECT's claim of \Recent (store_mailbox_claim_recent) in the same
   write transaction; without it (EXAMINE) a read transaction that reports
   the unclaimed messages as recent. The first unseen MSN costs a scan of
   the message records from both ends up to it (bounded by its distance
   to the nearer end); everything else is the mailbox record. */
enum store_err store_mailbox_select(struct store *st, uint32_t user_id,
    const char *name, bool claim, struct store_select *sel_r);
/* The file that is modified after every committed change of the mailbox
   (delivery, flags, expunge, rename); watch it with fswatch. */
void store_mailbox_notify_path(struct store *st, uint32_t mbox_id,
    char *buf, size_t size);

/* ---- messages ---- */

struct store_msg {
	uint32_t uid;
	uint32_t flags;         /* enum store_flag bits */
	uint32_t keywords;      /* bit i: the mailbox's keyword i */
	uint64_t modseq;
	uint64_t size;          /* octets, CRLF line ends: RFC822.SIZE */
	int64_t internaldate;   /* unix time */
	int32_t internal_tz;    /* minutes east of UTC of the INTERNALDATE */
};

/* The messages with uid >= min_uid and modseq > min_modseq, in uid order.
   Owned array (free()); *n_r may be 0 with *msgs_r NULL. One read
   snapshot: also fills *mb_r if mb_r is not NULL, consistently. */
enum store_err store_msg_list(struct store *st, uint32_t mbox_id,
    uint32_t min_uid, uint64_t min_modseq, struct store_msg **msgs_r,
    size_t *n_r, struct store_mailbox *mb_r);
enum store_err store_msg_get(struct store *st, uint32_t mbox_id, uint32_t uid,
    struct store_msg *msg_r);
/* Opens the message file read-only. STORE_OK with an fd the caller closes. */
enum store_err store_msg_open(struct store *st, uint32_t mbox_id, uint32_t uid,
    int *fd_r);

/* The serialized part table mime_parse() builds (opaque bytes, parts_len
   long); only mime_section_find() and mime_body_text() read it. */
struct store_part_table;
/* What mime_parse() computed at delivery (mime.h). All owned; free with
   store_msg_cache_free. */
struct store_msg_cache {
	char *envelope;         /* "(date subject from ...)" */
	char *bodystructure;    /* with extension data */
	char *body;             /* BODY: without extension data */
	struct store_part_table *parts; /* for mime_section_find() */
	size_t parts_len;
};
enum store_err store_msg_cache_get(struct store *st, uint32_t mbox_id,
    uint32_t uid, struct store_msg_cache *cache_r);
void store_msg_cache_free(struct store_msg_cache *cache);

/* Headers up to this size are cached at delivery (and by copy, move and
   reindex) next to the structure above; larger ones are not. */
#define STORE_HEADER_CACHE_MAX 16384
struct buf;
/* The message's top-level header as stored in its file: up to and
   including the first empty line (just "\r\n" if the message starts with
   one; the whole message if it has no empty line). Replaces out's
   contents. STORE_ENOTFOUND if the message is gone or its header is not
   cached (too large, or delivered before the cache existed): read the
   file then. One short read transaction; never touches the file. */
enum store_err store_msg_header_get(struct store *st, uint32_t mbox_id,
    uint32_t uid, struct buf *out);

enum store_flag_op { STORE_FLAGS_SET, STORE_FLAGS_ADD, STORE_FLAGS_REMOVE };

struct store_flag_change {
	uint32_t uid;           /* in: the message */
	bool exists;            /* out: false if no such uid (ignored) */
	bool changed;           /* out: flags changed (modseq bumped) */
	bool conflict;          /* out: modseq > unchangedsince, not changed */
	uint32_t flags;         /* out: flags after the operation */
	uint32_t keywords;      /* out: keyword bits after */
	uint64_t modseq;        /* out: the message's modseq after */
};
/* Applies op to every uid in ch[0..n) in one transaction. keywords are
   names (case-insensitive; new ones are added to the mailbox, STORE_ELIMIT
   past STORE_MAX_KEYWORDS). unchangedsince: 0 = no condition (RFC 7162). */
enum store_err store_msg_set_flags(struct store *st, uint32_t mbox_id,
    enum store_flag_op op, uint32_t flags, const char *const *keywords,
    size_t nkeywords, uint64_t unchangedsince, struct store_flag_change *ch,
    size_t n);
/* The same, but only the index is written (committed, fsync'd, before the
   return): the message files keep their names, which lag behind the flags
   until store_names_catch_up renames them. Every store function finds a
   file whatever letters its name has. For bulk changes (a rename each is
   most of their cost). */
enum store_err store_msg_set_flags_deferred(struct store *st,
    uint32_t mbox_id, enum store_flag_op op, uint32_t flags,
    const char *const *keywords, size_t nkeywords, uint64_t unchangedsince,
    struct store_flag_change *ch, size_t n);
/* Renames up to max files of mbox_id whose names are behind their flags,
   in one write transaction (cur/ fsync'd before the commit). *more_r:
   call again (more may be behind). A crash leaves at worst names behind,
   which the next call finishes. A missing mailbox is not an error. */
enum store_err store_names_catch_up(struct store *st, uint32_t mbox_id,
    size_t max, bool *more_r);
/* The mailboxes (owned array of ids) whose names may be behind: those
   with message records written since their last complete catch-up. */
enum store_err store_names_pending(struct store *st, uint32_t **ids_r,
    size_t *n_r);

/* Copies (hard links) uids[0..n) into dst with their flags and keywords,
   new UIDs in ascending order; move also expunges them from src in the same
   transaction (RFC 6851). dst_uids_r[i] is 0 for a uid that did not exist.
   Quota is checked for copies. */
enum store_err store_msg_copy(struct store *st, uint32_t src_mbox,
    const uint32_t *uids, size_t n, uint32_t dst_mbox, bool move,
    uint32_t *dst_uids_r, uint32_t *dst_uidvalidity_r);

/* Expunges messages of mbox: those in uids[0..n) (all if uids is NULL),
   and if only_deleted, only those with \Deleted at commit time. The uids
   really expunged are returned as an owned sorted array. Files are
   removed after the commit. */
enum store_err store_msg_expunge(struct store *st, uint32_t mbox_id,
    const uint32_t *uids, size_t n, bool only_deleted,
    uint32_t **expunged_r, size_t *nexpunged_r);
/* UIDs expunged with a modseq > since (QRESYNC VANISHED), owned sorted. */
enum store_err store_expunged_since(struct store *st, uint32_t mbox_id,
    uint64_t since, uint32_t **uids_r, size_t *n_r);

/* ---- delivery and append ---- */

struct store_delivery;

/* Starts a message. It is kept in memory up to 256 KiB and written into
   data_dir/tmp when it grows beyond that or at its commit. Owned; free
   with store_delivery_free (which removes an uncommitted file). */
enum store_err store_delivery_new(struct store *st, struct store_delivery **d_r);
/* Appends body bytes; bare LF becomes CRLF. Writes go to memory or the
   page cache (no fsync). STORE_ETEMP on a write error. */
enum store_err store_delivery_write(struct store_delivery *d, const void *p,
    size_t n);
/* Octets written so far, after CRLF normalisation. */
uint64_t store_delivery_size(const struct store_delivery *d);
/* Adds a destination: mbox_id 0 means the user's INBOX. internaldate 0
   means now. Up to 1000 targets. */
enum store_err store_delivery_add_target(struct store_delivery *d,
    uint32_t user_id, uint32_t mbox_id, uint32_t flags,
    const char *const *keywords, size_t nkeywords, int64_t internaldate,
    int32_t internal_tz);

#define STORE_DELIVER_NOQUOTA 1   /* smtpd: quota was checked at RCPT */

struct store_delivery_result {
	uint32_t mbox_id;
	uint32_t uid;
	uint32_t uidvalidity;
};
/* Makes the message durable in every target: link the file into each
   mailbox with its UID in the name, fdatasync the file, fsync the
   directories, then one LMDB transaction; concurrent commits from several threads are batched into one
   transaction (group commit). Returns only when all is on disk. res_r has
   one entry per target, in order (may be NULL). Blocking: worker thread. */
enum store_err store_delivery_commit(struct store_delivery *d, unsigned opts,
    struct store_delivery_result *res_r);
void store_delivery_free(struct store_delivery **d);

/* Turns group commit off (bench: the same load without batching). */
void store_set_group_commit(struct store *st, bool on);
/* Group-commit counters of this process: write transactions run by a
   leader and deliveries committed in them (commits/batches = batch size). */
void store_group_commit_stats(struct store *st, uint64_t *batches_r,
    uint64_t *commits_r);

/* ---- maintenance ---- */

struct store_reindex_stats {
	unsigned mailboxes, messages, recovered;   /* recovered: files without entry */
};
/* Rebuilds the index entries of one user from the maildir files: every
   message with its UID, flags and keywords; UIDVALIDITY kept; UIDNEXT and
   HIGHESTMODSEQ never go back. Works after the whole index was lost too:
   the user (password hash, quota) and its domain come back from the
   maildir's postroom-user file, mailboxes and subscriptions from theirs.
   Files without a UID (or sharing one) get fresh UIDs: stats.recovered. */
enum store_err store_reindex_user(struct store *st, const char *address,
    struct store_reindex_stats *stats_r);

/* ---- the outbound queue (store_queue.c) ----

   Mail for remote recipients waits in the queue until mtad has delivered
   it. One message = one immutable file data_dir/queue/<ID> (CRLF line ends,
   as in the mailboxes) plus LMDB records in the store's environment:
     a message row   (envelope sender, size, arrival, ENVID, RET, held, DSN
                      flag, the authenticated submitter, schedule time),
     a recipient row per recipient (address, ORCPT, NOTIFY, state, attempts,
                      next and last attempt, last status/reply/remote host),
     a schedule index (next time, ID) of the messages that are not held,
     an attempt log  (ID, time, recipient) kept STORE_QUEUE_LOG_KEEP seconds.
   A message enters the queue through a store_delivery (store_delivery_queue
   before store_delivery_commit), so local mailboxes and the queue are made
   durable in one LMDB transaction: the file is fsync'd, linked into queue/,
   the directory fsync'd, then the commit. After the commit the wake file
   (store_queue_notify_path) is touched; mtad watches it with fswatch.
   IDs are 64-bit, never reused, and written as STORE_QUEUE_ID_LEN
   upper-case hex digits. Writes are blocking (worker threads in daemons).
   A deleted message (store_queue_delete) stays deleted: results reported
   for it afterwards are refused with STORE_ENOTFOUND; a held message keeps
   the results of an attempt in flight but is not scheduled again until
   released. */

#define STORE_QUEUE_ID_LEN      10       /* hex digits in names (more if needed) */
#define STORE_QUEUE_ENVID_MAX   100      /* RFC 3461 4.4, after xtext decoding */
#define STORE_QUEUE_ORCPT_MAX   500      /* "rfc822;addr" as given, xtext */
#define STORE_QUEUE_STATUS_MAX  15       /* "5.1.10" */
#define STORE_QUEUE_REPLY_MAX   1000     /* last reply, lines joined by ' ' */
#define STORE_QUEUE_REMOTE_MAX  300      /* "host[address]:port" */
#define STORE_QUEUE_MAX_RCPTS   1000
#define STORE_QUEUE_LOG_KEEP    (4 * 86400)

enum store_queue_ret { STORE_QRET_NONE = 0, STORE_QRET_FULL, STORE_QRET_HDRS };

/* RFC 3461 NOTIFY bits; 0 means NOTIFY was not given (then failures and
   delays are reported, RFC 3461 4.1). */
enum store_queue_notify {
	STORE_QN_NEVER   = 1 << 0,
	STORE_QN_SUCCESS = 1 << 1,
	STORE_QN_FAILURE = 1 << 2,
	STORE_QN_DELAY   = 1 << 3,
};

enum store_queue_state {
	STORE_QS_PENDING = 0,   /* never tried */
	STORE_QS_INFLIGHT,      /* an attempt is running */
	STORE_QS_DEFERRED,      /* tried, to be retried at next_attempt */
	STORE_QS_SENT,          /* final: accepted by the remote */
	STORE_QS_FAILED,        /* final: refused, expired, or given up */
};

/* Recipient flags kept for mtad (store_queue_rcpt_set_flags). */
enum store_queue_rcpt_flag {
	STORE_QRF_DELAY_DSN = 1 << 0,   /* the "delayed" DSN has been sent */
	STORE_QRF_FINAL_DSN = 1 << 1,   /* the final DSN (or none) is done */
	STORE_QRF_RELAYED   = 1 << 2,   /* sent to a server without DSN */
};

enum store_queue_msg_flag {
	STORE_QMF_HELD = 1 << 0,        /* not scheduled until released */
	STORE_QMF_DSN  = 1 << 1,        /* a DSN we made: never rate-limited,
	                                   never bounced (sender is empty) */
};

struct store_queue_msg {
	uint64_t id;
	uint32_t flags;                         /* enum store_queue_msg_flag */
	char sender[STORE_ADDRESS_MAX + 1];     /* "" = null sender (<>) */
	char envid[STORE_QUEUE_ENVID_MAX + 1];  /* "" = none */
	enum store_queue_ret ret;
	char auth_user[STORE_ADDRESS_MAX + 1];  /* "" = not submitted by a user */
	uint64_t size;                          /* octets of the file */
	int64_t arrival;                        /* unix time */
	int64_t next;                           /* scheduled time, 0 = none */
	uint32_t nrcpts;
};

struct store_queue_rcpt {
	uint32_t idx;                           /* 0..nrcpts-1 */
	char address[STORE_ADDRESS_MAX + 1];
	char orcpt[STORE_QUEUE_ORCPT_MAX + 1];  /* "" = none */
	uint32_t notify;                        /* enum store_queue_notify */
	enum store_queue_state state;
	uint32_t flags;                         /* enum store_queue_rcpt_flag */
	uint32_t attempts;
	int64_t next_attempt;                   /* unix time */
	int64_t last_attempt;                   /* 0 = never */
	char status[STORE_QUEUE_STATUS_MAX + 1];/* enhanced code, "" = none */
	char reply[STORE_QUEUE_REPLY_MAX + 1];  /* last reply or reason */
	char remote[STORE_QUEUE_REMOTE_MAX + 1];/* "mx.example[192.0.2.1]:25" */
};

/* Adds the queue to a delivery: on store_delivery_commit the message is
   queued for rcpts[0..n) (address, orcpt, notify are used; the rest is
   set here) with the envelope of env (sender, envid, ret, auth_user and
   STORE_QMF_DSN are used), in the same transaction as the delivery's local
   targets (a delivery may have no local target then). Once per delivery.
   When env->auth_user is set and the message is not a DSN, the commit also
   counts one message against that user's rate (store_rate_check). */
enum store_err store_delivery_queue(struct store_delivery *d,
    const struct store_queue_msg *env, const struct store_queue_rcpt *rcpts,
    size_t n);
/* With the commit of d, in its transaction, sets flags
   (store_queue_rcpt_flag) on recipients idx[0..n) of the queued message
   id: mtad makes a DSN and the mark that it went one commit, so a crash
   can neither send it twice nor lose it. A message or recipient gone by
   then is skipped. Once per delivery; with or without store_delivery_queue
   (before or after it). */
enum store_err store_delivery_queue_mark(struct store_delivery *d,
    uint64_t id, const uint32_t *idx, size_t n, uint32_t flags);
/* The queue ID given by a successful commit (0 before, or without queue). */
uint64_t store_delivery_queue_id(const struct store_delivery *d);

/* The same for a message held in memory (mtad: DSNs to remote senders).
   Bare LF becomes CRLF. */
enum store_err store_queue_add(struct store *st, const void *msg, size_t len,
    const struct store_queue_msg *env, const struct store_queue_rcpt *rcpts,
    size_t n, uint64_t *id_r);

/* "00000001A2" (STORE_QUEUE_ID_LEN digits, more when the ID is larger);
   buf of at least 17 bytes. */
void store_queue_id_str(uint64_t id, char *buf, size_t size);
/* 1..16 hex digits, either case; 0 or -1. */
int store_queue_id_parse(const char *s, uint64_t *id_r);

/* The IDs whose scheduled time is <= now (held messages never are), in
   time order, at most max of them (owned array, may be NULL with *n_r 0);
   *next_r: the earliest scheduled time after now, or 0 if none. A message
   with no recipient left to try is due at once (finish it). */
enum store_err store_queue_due(struct store *st, int64_t now, size_t max,
    uint64_t **ids_r, size_t *n_r, int64_t *next_r);

/* The message and its recipients (owned array, idx order). STORE_ENOTFOUND
   if it is gone, STORE_ECORRUPT if a record cannot be decoded (then call
   store_queue_quarantine). rcpts_r may be NULL. */
enum store_err store_queue_get(struct store *st, uint64_t id,
    struct store_queue_msg *msg_r, struct store_queue_rcpt **rcpts_r,
    size_t *n_r);
/* Read-only fd of the message file (the caller closes it). */
enum store_err store_queue_open(struct store *st, uint64_t id, int *fd_r);
/* data_dir/queue/<ID> */
void store_queue_path(struct store *st, uint64_t id, char *buf, size_t size);

/* Marks the recipients idx[0..*n) INFLIGHT (attempts + 1, last_attempt =
   now). Those not PENDING or DEFERRED are left out: idx is compacted and
   *n set to the number marked. STORE_ENOTFOUND if the message is gone,
   STORE_EPERM if it is held (nothing marked). */
enum store_err store_queue_begin_attempt(struct store *st, uint64_t id,
    uint32_t *idx, size_t *n, int64_t now);

struct store_queue_result {
	enum store_queue_state state;   /* SENT, FAILED or DEFERRED */
	int64_t now;                    /* time of the answer */
	int64_t next_attempt;           /* DEFERRED: when to retry */
	uint32_t set_flags;             /* store_queue_rcpt_flag bits to set */
	const char *status;             /* enhanced code or NULL */
	const char *reply;              /* remote reply or reason, or NULL */
	const char *remote;             /* "host[addr]:port" or NULL */
};
/* Commits one recipient's outcome at once (one write transaction) and
   appends it to the attempt log. STORE_ENOTFOUND if the message was
   deleted meanwhile (nothing is written); a held message keeps the result
   but stays unscheduled. */
enum store_err store_queue_rcpt_result(struct store *st, uint64_t id,
    uint32_t idx, const struct store_queue_result *res);
/* The same for several recipients answered at once (after DATA): one
   transaction for idx[0..n) with res[0..n). All or nothing. */
enum store_err store_queue_rcpt_results(struct store *st, uint64_t id,
    const uint32_t *idx, const struct store_queue_result *res, size_t n);
/* Results of several messages in one transaction (mtad batches what
   arrives together). Consecutive items with the same id are one message's
   run; a message that is gone gets err STORE_ENOTFOUND (nothing written
   for it) and the others still commit. Another error: nothing at all. */
struct store_queue_result_item {
	uint64_t id;
	uint32_t idx;
	struct store_queue_result res;
	enum store_err err;             /* out */
};
enum store_err store_queue_rcpt_results_many(struct store *st,
    struct store_queue_result_item *items, size_t n);
/* Puts the recipients of items[0..n) (consecutive items of one message
   together) that are still INFLIGHT back to DEFERRED, due at their
   res.next_attempt (0: now): mtad's way out when their results could not
   be committed, rather than leaving them in flight until a restart. One
   transaction; a message gone gets err STORE_ENOTFOUND and is skipped. */
enum store_err store_queue_rcpt_retry(struct store *st,
    struct store_queue_result_item *items, size_t n);
/* store_queue_begin_attempt for several messages in one transaction: a
   message gone or held gets err STORE_ENOTFOUND / STORE_EPERM and n 0;
   another error: nothing at all. */
struct store_queue_begin_item {
	uint64_t id;
	uint32_t *idx;                  /* in/out, as begin_attempt's */
	size_t n;                       /* in/out */
	enum store_err err;             /* out */
};
enum store_err store_queue_begin_attempts(struct store *st,
    struct store_queue_begin_item *items, size_t n, int64_t now);
/* Sets flags (store_queue_rcpt_flag) of one recipient. */
enum store_err store_queue_rcpt_set_flags(struct store *st, uint64_t id,
    uint32_t idx, uint32_t flags);

/* Removes the message (records, then its file) if no recipient is PENDING,
   INFLIGHT or DEFERRED; *removed_r says whether it did. */
enum store_err store_queue_finish(struct store *st, uint64_t id,
    bool *removed_r);
/* The same for ids[0..n) in one transaction and one directory sync;
   removed[i] says whether ids[i] went (a message gone is skipped). */
enum store_err store_queue_finish_many(struct store *st, const uint64_t *ids,
    size_t n, bool *removed);

struct store_queue_recover_stats {
	unsigned messages;      /* in the queue after recovery */
	unsigned inflight;      /* recipients put back from INFLIGHT */
	unsigned corrupt;       /* entries moved to queue/corrupt/ */
	unsigned orphans;       /* files without a record, removed */
};
/* At mtad start: every INFLIGHT recipient becomes DEFERRED and due now
   (never SENT: the remote's answer was not recorded), the schedule is
   rebuilt, entries that cannot be decoded or lost their file are moved to
   queue/corrupt/ (report(arg, ID, reason) for each; report may be NULL),
   queue files without a record older than an hour are removed (never
   acknowledged: the commit did not happen), and the attempt log is pruned.
   now: the current time. */
enum store_err store_queue_recover(struct store *st, int64_t now,
    store_str_cb *report, void *arg, struct store_queue_recover_stats *stats_r);
/* Moves one entry aside (file to queue/corrupt/<ID>, records removed). */
enum store_err store_queue_quarantine(struct store *st, uint64_t id);

/* Administration (mailctl). delete drops the message without a DSN; hold
   takes it out of the schedule; release puts it back (due at once); flush
   makes every waiting recipient due now (id 0: every message that is not
   held). STORE_ENOTFOUND for an unknown ID. Each touches the wake file. */
enum store_err store_queue_delete(struct store *st, uint64_t id);
enum store_err store_queue_hold(struct store *st, uint64_t id);
enum store_err store_queue_release(struct store *st, uint64_t id);
enum store_err store_queue_flush(struct store *st, uint64_t id);

/* Calls cb(arg, msg, rcpts, n) for every message in ID order, from one
   read snapshot; cb returns non-zero to stop. Undecodable entries are
   skipped (store_queue_recover moves them aside). */
typedef int store_queue_list_cb(void *arg, const struct store_queue_msg *msg,
    const struct store_queue_rcpt *rcpts, size_t n);
enum store_err store_queue_list(struct store *st, store_queue_list_cb *cb,
    void *arg);

struct store_queue_log_entry {
	uint64_t id;
	int64_t time_us;                /* microseconds since the epoch */
	uint32_t idx;                   /* recipient; UINT32_MAX: the message */
	char address[STORE_ADDRESS_MAX + 1];
	enum store_queue_state state;
	char status[STORE_QUEUE_STATUS_MAX + 1];
	char reply[STORE_QUEUE_REPLY_MAX + 1];
	char remote[STORE_QUEUE_REMOTE_MAX + 1];
};
/* The attempt log of one message in time order (also after the message
   left the queue, for STORE_QUEUE_LOG_KEEP). cb returns non-zero to stop. */
typedef int store_queue_log_cb(void *arg,
    const struct store_queue_log_entry *e);
enum store_err store_queue_log(struct store *st, uint64_t id,
    store_queue_log_cb *cb, void *arg);
/* Removes log entries older than before (unix time). */
enum store_err store_queue_log_prune(struct store *st, int64_t before);

/* The wake file: modified after every change a delivery daemon must see
   (new message, flush, release, delete, hold). Watch it with fswatch. */
void store_queue_notify_path(struct store *st, char *buf, size_t size);
void store_queue_wake(struct store *st);

/* Whether the queue's file system has room for a message of size octets
   with a margin (free space above 2 x size + 1% of the file system, at
   least 16 MiB). false: refuse with a temporary error (452 4.3.1). */
bool store_queue_space_ok(struct store *st, uint64_t size);

/* Submission rate per user (fixed windows of period seconds): whether
   address may submit one more message when limit are allowed per window
   (limit 0: no limit). Counted by the commit of a queued message with
   auth_user set (store_delivery_queue). *count_r (may be NULL): messages
   counted in the current window. */
bool store_rate_check(struct store *st, const char *address, unsigned limit,
    double period, int64_t now, unsigned *count_r);
/* The window length the commit uses; set once at start (default 3600). */
void store_rate_set_period(struct store *st, double period);

/* Like store_resolve, and also the targets outside the local domains that
   the address's aliases lead to (forwarding: an alias may point to
   someone's mailbox elsewhere; store_alias_add accepts such targets).
   STORE_OK when at least one local user or remote target results (either
   array may be empty); the remote addresses are lowercase, unique, owned
   (store_strv_free). store_resolve itself ignores remote targets. */
enum store_err store_resolve_all(struct store *st, const char *address,
    uint32_t **user_ids_r, size_t *n_r, char ***remote_r, size_t *nremote_r);
void store_strv_free(char **v, size_t n);

/* The delivery's file as written so far (a message still in memory is
   written out first): an fd to read with pread or mmap (owned by d, valid
   until the commit or free) and its size. Prefer store_delivery_map,
   which does not force the file. */
enum store_err store_delivery_contents(struct store_delivery *d, int *fd_r,
    uint64_t *size_r);
/* The message as written so far, for reading (checks, DKIM, milters,
   header fixes before the commit): the memory buffer, or a map of the
   file once the message grew past the memory bound. *p_r (never NULL) is
   owned by d and valid until the next write, replace, contents, commit or
   free of d. */
enum store_err store_delivery_map(struct store_delivery *d, const char **p_r,
    size_t *len_r);
/* Replaces the first old_len octets of the message with head[0..n)
   (bare LF made CRLF): how smtpd puts header fields after its trace
   fields without writing the message twice. In memory that is a
   memmove; a message already in its file is rewritten into a new file
   (copy_file_range for the rest). On failure the message is unchanged. */
enum store_err store_delivery_replace_head(struct store_delivery *d,
    uint64_t old_len, const void *head, size_t n);

#endif
