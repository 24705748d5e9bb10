/* store_dirfd: a small cache of open cur/ directory fds per mailbox, so
   that store_msg_open is one openat() of a short name instead of a walk
   down data_dir/mail/DOMAIN/LOCAL/<id>/cur for every message (and needs no
   mailbox or user record). Mailbox directories are named by ids that are
   never reused, so a cached fd can go stale only by the directory being
   removed, and then openat fails as the path would. Thread-safe: entries
   are reference counted, and one replaced while in use is closed by its
   last user. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store_private.h"

struct dirfd_ent {
	uint32_t mbox_id;
	int fd;
	unsigned refs;          /* the table's (until replaced) + users' */
};

static void
ent_free(struct dirfd_ent *e)
{
	close(e->fd);
	free(e);
}

struct dirfd_ent *
dirfd_ref(struct store *st, uint32_t mbox_id)
{
	struct dirfd_ent *e;

	pthread_mutex_lock(&st->dirfd_mu);
	e = st->dirfds[mbox_id % STORE_DIRFD_SLOTS];
	if (e != NULL && e->mbox_id == mbox_id)
		e->refs++;
	else
		e = NULL;
	pthread_mutex_unlock(&st->dirfd_mu);
	return e;
}

struct dirfd_ent *
dirfd_add(struct store *st, uint32_t mbox_id, const char *dir)
{
	char path[4200];
	struct dirfd_ent *e, *old;
	int fd;

	snprintf(path, sizeof(path), "%s/cur", dir);
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	e->mbox_id = mbox_id;
	e->fd = fd;
	e->refs = 2;            /* the table's and the caller's */
	pthread_mutex_lock(&st->dirfd_mu);
	old = st->dirfds[mbox_id % STORE_DIRFD_SLOTS];
	st->dirfds[mbox_id % STORE_DIRFD_SLOTS] = e;
	if (old != NULL && --old->refs > 0)
		old = NULL;     /* still in use: its last user closes it */
	pthread_mutex_unlock(&st->dirfd_mu);
	if (old != NULL)
		ent_free(old);
	return e;
}

void
dirfd_unref(struct store *st, struct dirfd_ent *e)
{
	bool last;

	if (e == NULL)
		return;
	pthread_mutex_lock(&st->dirfd_mu);
	last = --e->refs == 0;
	pthread_mutex_unlock(&st->dirfd_mu);
	if (last)
		ent_free(e);
}

int
dirfd_fd(const struct dirfd_ent *e)
{
	return e->fd;
}

void
dirfd_deinit(struct store *st)
{
	for (size_t i = 0; i < STORE_DIRFD_SLOTS; i++) {
		struct dirfd_ent *e = st->dirfds[i];
		st->dirfds[i] = NULL;
		if (e != NULL && --e->refs == 0)
			ent_free(e);
	}
}
