/* pop3_maildrop: the maildrop of a POP3 session: the login check that
   also locks it and snapshots INBOX (on a worker, through login.c), the
   in-process lock set, and the UPDATE state (the one transaction at QUIT
   that sets \Seen and expunges). A session that ends any other way
   deletes nothing. Never blocks the loop on a password hash or an LMDB
   write; formats replies only through pop3_reply. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pop3_session.h"

/* User ids with a live POP3 session in this process (d->priv): the
   store's lock is per process, this catches a second session here. */
struct pop3_locks {
	uint32_t *ids;
	size_t n, cap;
};

static struct pop3_session *
pop3_of(struct session *base)
{
	return (struct pop3_session *)base;
}

int
pop3_maildrop_start(struct daemon *d, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	d->priv = xcalloc(1, sizeof(struct pop3_locks));
	return 0;
}

void
pop3_maildrop_stop(struct daemon *d)
{
	struct pop3_locks *l = d->priv;

	if (l != NULL)
		free(l->ids);
	free(l);
	d->priv = NULL;
}

static bool
locked_add(struct daemon *d, uint32_t user_id)
{
	struct pop3_locks *l = d->priv;
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->ids[i] == user_id)
			return false;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->ids = xrealloc(l->ids, l->cap * sizeof(*l->ids));
	}
	l->ids[l->n++] = user_id;
	return true;
}

static void
locked_del(struct daemon *d, uint32_t user_id)
{
	struct pop3_locks *l = d->priv;
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->ids[i] == user_id) {
			l->ids[i] = l->ids[--l->n];
			return;
		}
	}
}

void
pop3_maildrop_release(struct pop3_session *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->lock_fd = -1;
	if (s->in_locked_set)
		locked_del(s->base.d, s->user_id);
	s->in_locked_set = false;
	free(s->msgs);
	s->msgs = NULL;
}

/* ---- login ---- */

struct pop3_login_job {
	enum store_err err;
	struct store_user u;
	int lock_fd;
	struct store_mailbox mb;
	struct store_msg *msgs;
	size_t n;
};

void *
pop3_login_job_new(void)
{
	struct pop3_login_job *j = xcalloc(1, sizeof(*j));

	j->lock_fd = -1;
	return j;
}

static void
login_job_free(void *arg)
{
	struct pop3_login_job *j = arg;

	if (j->lock_fd >= 0)
		close(j->lock_fd);
	free(j->msgs);
	free(j);
}

/* Worker thread: password, lock, snapshot. Touches only the job. */
static enum login_result
login_verify(struct daemon *d, const char *user, const char *pass, void *arg)
{
	struct pop3_login_job *j = arg;
	struct store *st = d->store;

	j->err = store_authenticate(st, user, pass, &j->u);
	if (j->err == STORE_ENOTFOUND)
		return LOGIN_FAIL;
	if (j->err == STORE_OK)
		j->err = store_user_lock(st, j->u.id, "pop3", &j->lock_fd);
	if (j->err == STORE_OK)
		j->err = store_mailbox_get(st, j->u.id, "INBOX", &j->mb);
	if (j->err == STORE_OK)
		j->err = store_msg_list(st, j->mb.id, 1, 0, &j->msgs, &j->n,
		    &j->mb);
	if (j->err == STORE_ENOTFOUND)      /* no INBOX: not the user's fault */
		j->err = STORE_ECORRUPT;
	return j->err == STORE_OK ? LOGIN_OK : LOGIN_TEMPFAIL;
}

static void
take_snapshot(struct pop3_session *s, struct pop3_login_job *j)
{
	size_t i;

	s->user_id = j->u.id;
	str_copy(s->address, j->u.address, sizeof(s->address));
	s->lock_fd = j->lock_fd;
	j->lock_fd = -1;
	s->in_locked_set = true;
	s->mbox_id = j->mb.id;
	s->uidvalidity = j->mb.uidvalidity;
	s->nmsgs = (uint32_t)j->n;
	s->msgs = xcalloc(j->n ? j->n : 1, sizeof(*s->msgs));
	s->size_total = 0;
	for (i = 0; i < j->n; i++) {
		s->msgs[i].uid = j->msgs[i].uid;
		s->msgs[i].size = j->msgs[i].size;
		s->msgs[i].seen = (j->msgs[i].flags & STORE_F_SEEN) != 0;
		s->size_total += j->msgs[i].size;
	}
}

static const char *
login_reply_ok(struct session *base, void *arg)
{
	struct pop3_session *s = pop3_of(base);
	struct pop3_login_job *j = arg;

	if (!locked_add(base->d, j->u.id)) {
		/* Another session of this process has it. The password was
		   right: not a guess (login counted it a success). */
		pop3_reply_store_err(s, STORE_EEXISTS);
		return "in-use";
	}
	take_snapshot(s, j);
	session_set_state(base, POP3_ST_TRANSACTION);
	conn_set_timeout(base->c, base->d->cfg->pop3_timeout);
	log_info("%s maildrop user=%s messages=%" PRIu32, conn_id(base->c),
	    s->address, s->nmsgs);
	pop3_reply(s, "+OK Logged in, %" PRIu32 " messages (%" PRIu64
	    " octets)", s->nmsgs, s->size_total);
	return NULL;
}

static void
login_reply_fail(struct session *base, bool last)
{
	if (last)
		pop3_reply(pop3_of(base),
		    "-ERR [AUTH] Authentication failed, closing");
	else
		pop3_reply(pop3_of(base), "-ERR [AUTH] Authentication failed");
}

static const char *
login_reply_tempfail(struct session *base, void *arg)
{
	struct pop3_login_job *j = arg;

	pop3_reply_store_err(pop3_of(base), j->err);
	return j->err == STORE_EEXISTS ? "in-use" : store_err_str(j->err);
}

static void
login_reply_refused(struct session *base)
{
	pop3_reply(pop3_of(base),
	    "-ERR [AUTH] Too many failed logins, try later");
}

static void
login_send_challenge(struct session *base, const char *challenge)
{
	pop3_reply(pop3_of(base), "+ %s", challenge);
}

static enum cmd_result
login_reply_sasl_error(struct session *base, enum sasl_result r)
{
	if (r == SASL_CANCEL) {
		pop3_reply(pop3_of(base), "-ERR Authentication cancelled");
		return CMD_DONE;
	}
	return pop3_bad_command(pop3_of(base), "Malformed authentication data");
}

const struct login_ops pop3_login_ops = {
	.verify = login_verify,
	.reply_ok = login_reply_ok,
	.reply_fail = login_reply_fail,
	.reply_tempfail = login_reply_tempfail,
	.reply_refused = login_reply_refused,
	.send_challenge = login_send_challenge,
	.reply_sasl_error = login_reply_sasl_error,
	.job_free = login_job_free,
	.fail_max_session = POP3_AUTH_FAIL_MAX_SESSION,
	.fail_max_addr = POP3_AUTH_FAIL_MAX_ADDR,
	.close_at_addr_max = false,
	.line_max = POP3_LINE_MAX,
};

/* ---- UPDATE ---- */

struct expunge_job {
	struct store *st;
	uint32_t mbox_id;
	uint32_t *uids;             /* to expunge */
	size_t n;
	struct store_flag_change *seen;   /* to mark \Seen */
	size_t nseen;
	enum store_err err, seen_err;
	size_t nexpunged;
};

static void
expunge_work(void *arg)
{
	struct expunge_job *j = arg;
	uint32_t *exp = NULL;

	if (j->nseen > 0)
		j->seen_err = store_msg_set_flags(j->st, j->mbox_id,
		    STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0, 0, j->seen,
		    j->nseen);
	if (j->n > 0)
		j->err = store_msg_expunge(j->st, j->mbox_id, j->uids, j->n,
		    false, &exp, &j->nexpunged);
	free(exp);
}

static enum cmd_result
expunge_done(struct session *base, void *arg)
{
	struct expunge_job *j = arg;
	struct pop3_session *s = pop3_of(base);
	struct conn *c = base->c;

	if (j->seen_err != STORE_OK)
		log_warnx("%s seen-flags user=%s result=%s", conn_id(c),
		    s->address, store_err_str(j->seen_err));
	log_info("%s logout user=%s retr=%" PRIu32 " bytes=%" PRIu64
	    " deleted=%zu result=%s", conn_id(c), s->address, s->retr_count,
	    s->retr_bytes, j->err == STORE_OK ? j->nexpunged : 0,
	    store_err_str(j->err));
	if (j->err == STORE_OK)
		pop3_reply(s, "+OK Logging out, %zu messages deleted",
		    j->nexpunged);
	else
		pop3_reply(s, "-ERR [SYS/TEMP] Some deleted messages were "
		    "not removed (%s)", store_err_str(j->err));
	free(j->uids);
	free(j->seen);
	free(j);
	session_close(base, "quit");
	return CMD_DONE;
}

static bool
needs_seen(const struct pop3_msg *m)
{
	return m->retrieved && !m->seen && !m->deleted;
}

bool
pop3_maildrop_has_updates(const struct pop3_session *s)
{
	uint32_t i;

	if (s->ndeleted > 0)
		return true;
	for (i = 0; i < s->nmsgs; i++) {
		if (needs_seen(&s->msgs[i]))
			return true;
	}
	return false;
}

enum cmd_result
pop3_maildrop_update(struct pop3_session *s)
{
	struct expunge_job *j = xcalloc(1, sizeof(*j));
	uint32_t i, nseen = 0;

	j->st = s->base.d->store;
	j->mbox_id = s->mbox_id;
	for (i = 0; i < s->nmsgs; i++)
		nseen += needs_seen(&s->msgs[i]);
	j->uids = xcalloc(s->ndeleted ? s->ndeleted : 1, sizeof(*j->uids));
	j->seen = xcalloc(nseen ? nseen : 1, sizeof(*j->seen));
	for (i = 0; i < s->nmsgs; i++) {
		if (s->msgs[i].deleted)
			j->uids[j->n++] = s->msgs[i].uid;
		else if (needs_seen(&s->msgs[i]))
			j->seen[j->nseen++].uid = s->msgs[i].uid;
	}
	session_set_state(&s->base, POP3_ST_UPDATE);
	session_submit(&s->base, expunge_work, expunge_done, j);
	return CMD_SUSPEND;
}
