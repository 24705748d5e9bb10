/* store_pending: file changes that wait for their LMDB commit.

   A write that adds or removes message files (COPY, MOVE, EXPUNGE,
   delivery and APPEND, RENAME INBOX) cannot change the maildir and the
   index atomically. It used to link new files straight into cur/ under
   their final name before the commit: a process killed before the commit
   left files there that the index never knew. The next COPY of the same
   messages then picked the same UIDs, hence the same names, and failed for
   good on link()'s EEXIST; and a reindex, which takes cur/ as the truth,
   turned those files into duplicates. Files unlinked after an expunge's
   commit had the same problem the other way round (an expunged message
   came back at the next reindex).

   So file changes are staged beside cur/, in two directories of the
   mailbox, under the file's name:
     postroom-adding/    links made by a transaction that has not committed
                         yet; renamed into cur/ after the commit;
     postroom-removing/  files an uncommitted transaction takes away; they
                         were renamed there from cur/ and are unlinked after
                         the commit.
   Neither is part of the maildir (reindex, other maildir readers, the
   duplicate scan never look at them), and both are empty except while a
   write is in flight. Whatever a crash leaves there is resolved by the
   index, by one rule for both: a staged file whose message record (uid and
   base name from the file name) exists in the index is the message's file
   and goes (back) into cur/ under the record's name; any other one belongs
   to a change that never committed (adding) or that did (removing) and is
   unlinked. pending_settle() applies the rule to a mailbox; every write
   transaction that touches a mailbox's files runs it first, while it holds
   LMDB's writer lock, so no other transaction is half-way through there;
   a post-commit rename or unlink of another process racing with it finds
   its file gone (ENOENT) and ignores that. Readers never settle (they do
   not hold the lock); msg_find_path() looks in both directories too.

   This was chosen over an intent record in LMDB: that would need its own
   durable commit (an extra fsync) before the links, and still a name for
   each link that a reindex could tell apart. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_private.h"

void
pending_path(const char *dir, const char *sub, const char *name, char *buf,
    size_t size)
{
	snprintf(buf, size, "%s/%s/%s", dir, sub, name);
}

/* link() or rename() into dir/sub/name, creating dir/sub when a mailbox
   made before these directories existed meets its first staged change. */
static int
stage(const char *from, const char *dir, const char *sub, const char *name,
    char *out, size_t size, bool do_link)
{
	pending_path(dir, sub, name, out, size);
	for (int tries = 0; tries < 3; tries++) {
		int r = do_link ? link(from, out) : rename(from, out);
		if (r == 0)
			return 0;
		if (errno == ENOENT) {
			char d[4200];
			snprintf(d, sizeof(d), "%s/%s", dir, sub);
			if (mkdir(d, 0700) == 0) {
				/* The new directory's own entry in dir: the
				   fsyncs before the commit cover only its
				   contents, so a power cut could lose it. */
				if (fsync_dir(dir) < 0)
					return -1;
			} else if (errno != EEXIST) {
				return -1;
			}
			/* from itself may be missing: then ENOENT again. */
			struct stat sb;
			if (stat(from, &sb) < 0)
				return -1;
			continue;
		}
		/* Under the writer lock, with the mailbox settled, a file of
		   that name (same message, same new uid) can only be left by
		   a transaction that never committed. */
		if (errno == EEXIST && do_link && unlink(out) == 0)
			continue;
		return -1;
	}
	return -1;
}

int
pending_add(const char *from, const char *dir, const char *name, char *out,
    size_t size)
{
	return stage(from, dir, STORE_ADDING_DIR, name, out, size, true);
}

int
pending_remove(const char *from, const char *dir, char *out, size_t size)
{
	const char *slash = strrchr(from, '/');

	return stage(from, dir, STORE_REMOVING_DIR, slash ? slash + 1 : from,
	    out, size, false);
}

int
pending_sync(const char *dir, bool adding, bool removing)
{
	char d[4200];

	if (adding) {
		snprintf(d, sizeof(d), "%s/%s", dir, STORE_ADDING_DIR);
		if (fsync_dir(d) < 0)
			return -1;
	}
	if (removing) {
		/* Both ends of the renames out of cur/. */
		snprintf(d, sizeof(d), "%s/%s", dir, STORE_REMOVING_DIR);
		if (fsync_dir(d) < 0)
			return -1;
		snprintf(d, sizeof(d), "%s/cur", dir);
		if (fsync_dir(d) < 0)
			return -1;
	}
	return 0;
}

void
pending_publish(const char *path)
{
	char to[4600];
	const char *slash = strrchr(path, '/');
	size_t dl;

	/* path is DIR/postroom-adding/NAME: to DIR/cur/NAME. */
	if (slash == NULL)
		return;
	dl = (size_t)(slash - path);
	/* Only a staged link: a delivery's list also holds its queue file
	   (data_dir/queue/ID), which must stay where it is. */
	if (dl < sizeof(STORE_ADDING_DIR) ||
	    path[dl - sizeof(STORE_ADDING_DIR)] != '/' ||
	    memcmp(path + dl - (sizeof(STORE_ADDING_DIR) - 1),
	    STORE_ADDING_DIR, sizeof(STORE_ADDING_DIR) - 1) != 0)
		return;
	dl -= sizeof(STORE_ADDING_DIR) - 1;
	snprintf(to, sizeof(to), "%.*scur%s", (int)dl, path, slash);
	/* ENOENT: a settle (or a flag change) of another process got there
	   first; the file is in cur/ already. Any other failure leaves it
	   staged, where readers find it and the next settle moves it. */
	(void)rename(path, to);
}

/* The base name and uid a file name carries ("<base>:2,<letters>", the
   base ending in ",U=<uid>"); uid 0 if none. */
static void
staged_name(const char *name, char *base, size_t size, uint32_t *uid_r)
{
	const char *info = strstr(name, ":2,");
	size_t bl = info ? (size_t)(info - name) : strlen(name);
	const char *u;

	if (bl >= size)
		bl = size - 1;
	memcpy(base, name, bl);
	base[bl] = '\0';
	*uid_r = 0;
	if ((u = strstr(base, ",U=")) != NULL) {
		char *end;
		unsigned long v = strtoul(u + 3, &end, 10);
		if (end != u + 3 && (*end == '\0' || *end == ',') &&
		    v < UINT32_MAX)
			*uid_r = (uint32_t)v;
	}
}

static enum store_err
settle_sub(struct store *st, MDB_txn *txn, const struct mbox_rec *mb,
    const char *dir, const char *sub, bool known)
{
	char sd[4200], from[4600], to[4600], name[512];
	enum store_err e = STORE_OK;
	struct dirent *de;
	DIR *d;

	snprintf(sd, sizeof(sd), "%s/%s", dir, sub);
	if ((d = opendir(sd)) == NULL)
		return STORE_OK;   /* none yet: nothing staged */
	while ((de = readdir(d)) != NULL) {
		char base[MSG_BASE_MAX + 1];
		struct msg_rec m;
		uint32_t uid;
		bool keep;

		if (de->d_name[0] == '.')
			continue;
		snprintf(from, sizeof(from), "%s/%s", sd, de->d_name);
		staged_name(de->d_name, base, sizeof(base), &uid);
		if (known) {
			e = uid == 0 ? STORE_ENOTFOUND :
			    msg_rec_get(st, txn, mb->id, uid, &m);
			if (e != STORE_OK && e != STORE_ENOTFOUND)
				break;
			keep = e == STORE_OK && strcmp(m.base, base) == 0;
			e = STORE_OK;
			if (keep)
				msg_file_name(mb, &m, name, sizeof(name));
		} else {
			/* The index lost this mailbox (a reindex from the
			   files alone): the commit cannot be told any more.
			   A removal is undone, an addition dropped, so that
			   nothing is lost; a MOVE whose removal had committed
			   may come back in its source, never vanish. */
			keep = strcmp(sub, STORE_REMOVING_DIR) == 0;
			str_copy(name, de->d_name, sizeof(name));
		}
		if (keep) {
			snprintf(to, sizeof(to), "%s/cur/%s", dir, name);
			if (rename(from, to) < 0 && errno != ENOENT) {
				e = store_errno_err("settle message");
				break;
			}
		} else if (unlink(from) < 0 && errno != ENOENT) {
			e = store_errno_err("settle message");
			break;
		}
	}
	closedir(d);
	return e;
}

enum store_err
pending_settle(struct store *st, MDB_txn *txn, const struct mbox_rec *mb,
    const char *dir)
{
	enum store_err e;

	if ((e = settle_sub(st, txn, mb, dir, STORE_ADDING_DIR,
	    mb != NULL)) != STORE_OK)
		return e;
	return settle_sub(st, txn, mb, dir, STORE_REMOVING_DIR, mb != NULL);
}

void
pending_list_add(struct pending_list *l, const char *path, const char *orig)
{
	l->p = xrealloc(l->p, (l->n + 1) * sizeof(char *));
	l->orig = xrealloc(l->orig, (l->n + 1) * sizeof(char *));
	l->p[l->n] = xstrdup(path);
	l->orig[l->n++] = orig ? xstrdup(orig) : NULL;
}

void
pending_list_done(struct pending_list *l, enum pending_end end)
{
	/* Newest first, so that undoing puts back what was there. */
	for (size_t i = l->n; i-- > 0;) {
		switch (end) {
		case PENDING_UNLINK:
			(void)unlink(l->p[i]);
			break;
		case PENDING_PUBLISH:
			pending_publish(l->p[i]);
			break;
		case PENDING_UNDO:
			if (l->orig[i] != NULL)
				(void)rename(l->p[i], l->orig[i]);
			else
				(void)unlink(l->p[i]);
			break;
		}
		free(l->p[i]);
		free(l->orig[i]);
	}
	free(l->p);
	free(l->orig);
	memset(l, 0, sizeof(*l));
}
