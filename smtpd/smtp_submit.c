/* smtp_submit: what happens to a message between the end of its content
   and its commit, on the worker pool: the hop count (more than
   SMTP_HOPS_MAX Received: fields is a loop), and for authenticated
   submission the fixes of RFC 6409 8 (Message-ID and Date when missing)
   and DKIM signatures (RFC 6376, every key of the From: domain, else of
   the envelope sender's domain). A message that needs any of those is
   given them in place (trace fields, signatures, added fields, then the
   content as received: store_delivery_replace_head); then the local targets and the queue
   part are added and everything is committed in one transaction. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "dkim.h"
#include "log.h"
#include "util.h"

#include "smtp_session.h"

/* DKIM keys by domain, loaded once and again only when the domain's key
   directory changes (OpenSSL's PEM decoding costs about as much as a
   signature). Replaced sets are kept until stop, since a worker may still
   sign with one. */
struct key_set {
	char domain[SMTP_DOMAIN_MAX + 1];
	struct timespec mtime;          /* of data_dir/dkim/DOMAIN; 0: none */
	struct dkim_key **keys;
	size_t n;
	struct key_set *next;
	bool stale;
};

static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER;
static struct key_set *key_sets;

/* The keys of domain (borrowed until smtp_submit_stop), n 0 if none. */
static struct dkim_key **
keys_for(const char *data_dir, const char *domain, size_t *n_r)
{
	char dir[4096], err[256];
	struct stat sb;
	struct timespec mt = { 0, 0 };
	struct key_set *ks, *found = NULL;
	struct dkim_key **keys = NULL;
	size_t n = 0;

	snprintf(dir, sizeof(dir), "%s/dkim/%s", data_dir, domain);
	if (stat(dir, &sb) == 0)
		mt = sb.st_mtim;
	pthread_mutex_lock(&keys_mu);
	for (ks = key_sets; ks != NULL; ks = ks->next) {
		if (ks->stale || strcmp(ks->domain, domain) != 0)
			continue;
		if (ks->mtime.tv_sec == mt.tv_sec &&
		    ks->mtime.tv_nsec == mt.tv_nsec)
			found = ks;
		else
			ks->stale = true;
		break;
	}
	if (found == NULL) {
		if (mt.tv_sec != 0 && dkim_keys_load(data_dir, domain, &keys,
		    &n, err, sizeof(err)) < 0) {
			log_warnx("dkim: %s", err);
			keys = NULL;
			n = 0;
		}
		found = xcalloc(1, sizeof(*found));
		str_copy(found->domain, domain, sizeof(found->domain));
		found->mtime = mt;
		found->keys = keys;
		found->n = n;
		found->next = key_sets;
		key_sets = found;
	}
	pthread_mutex_unlock(&keys_mu);
	*n_r = found->n;
	return found->keys;
}

static void
keys_free_all(void)
{
	pthread_mutex_lock(&keys_mu);
	while (key_sets != NULL) {
		struct key_set *ks = key_sets;
		key_sets = ks->next;
		dkim_keys_free(ks->keys, ks->n);
		free(ks);
	}
	pthread_mutex_unlock(&keys_mu);
}

int
smtp_submit_start(struct daemon *d, char *err, size_t errlen)
{
	struct smtp_priv *priv = xcalloc(1, sizeof(*priv));

	d->priv = priv;
	store_rate_set_period(d->store, d->cfg->submission_rate_period);
	if (srs_key_load(d->cfg->data_dir, priv->srs_key, err, errlen) < 0)
		return -1;
	return smtp_checks_start(d, err, errlen);
}

void
smtp_submit_stop(struct daemon *d)
{
	if (d->priv != NULL)
		sodium_memzero(d->priv, sizeof(struct smtp_priv));
	free(d->priv);
	d->priv = NULL;
	keys_free_all();
	smtp_checks_stop();
}

static const char *
sender_domain(const struct smtp_tx *tx)
{
	const char *at = strrchr(tx->from, '@');

	return at != NULL ? at + 1 : "";
}

/* Puts the fields the submission needs after the trace fields: 0
   (nothing to do), 1 (done: map is stale), or -1 (tx->commit_err set).
   whole is the scan of the message with its trace: the trace holds only
   our Received: field, so its facts are the header's, and the header
   proper is whole->len less the trace. */
static int
fix_and_sign(struct smtp_tx *tx, const char *map, size_t size,
    const struct smtp_hdr_info *whole)
{
	const char *c = map + tx->trace_len;
	size_t clen = size - tx->trace_len;
	struct smtp_hdr_info hi = *whole;
	struct buf added, head, sigs;
	struct dkim_key **keys = NULL;
	size_t nkeys = 0;
	char err[256], domain[SMTP_DOMAIN_MAX + 1];
	enum store_err e;
	int64_t now = (int64_t)time(NULL);
	int ret = 0;

	hi.len = hi.len > tx->trace_len ? hi.len - tx->trace_len : 0;
	buf_init(&added);
	buf_init(&head);
	buf_init(&sigs);
	if (!hi.message_id) {
		char host[300];
		str_copy(host, tx->cfg->hostname, sizeof(host));
		buf_printf(&added, "Message-ID: <%s.%llx%08x@%s>\r\n", tx->id,
		    (unsigned long long)now, (unsigned)randombytes_random(),
		    host);
	}
	if (!hi.date) {
		char date[64];
		date_rfc5322((time_t)now, date, sizeof(date));
		buf_printf(&added, "Date: %s\r\n", date);
	}
	/* The signing domain: From:'s when it is ours, else the sender's. */
	str_copy(domain, hi.from_domain, sizeof(domain));
	if (domain[0] == '\0' || !store_domain_is_local(tx->store, domain))
		str_copy(domain, sender_domain(tx), sizeof(domain));
	if (domain[0] != '\0')
		keys = keys_for(tx->cfg->data_dir, domain, &nkeys);
	if (added.len == 0 && nkeys == 0)
		goto out;
	buf_append(&head, added.data, added.len);
	buf_append(&head, c, hi.len);
	/* Signatures are prepended in the order made: the last key's on
	   top. */
	for (size_t i = 0; i < nkeys; i++) {
		struct buf one;
		buf_init(&one);
		if (dkim_sign_parts(keys[i], head.data, head.len, c + hi.len,
		    clen - hi.len, now, &one, err, sizeof(err)) == 0) {
			buf_append(&one, sigs.data, sigs.len);
			buf_free(&sigs);
			sigs = one;
			tx->dkim_signed++;
		} else {
			log_warnx("dkim: %s: %s", domain, err);
			buf_free(&one);
		}
	}
	/* After the trace fields, in place: the message is not written
	   again. */
	buf_reset(&head);
	buf_append(&head, map, tx->trace_len);
	buf_append(&head, sigs.data, sigs.len);
	buf_append(&head, added.data, added.len);
	if ((e = store_delivery_replace_head(tx->d, tx->trace_len, head.data,
	    head.len)) != STORE_OK) {
		tx->commit_err = e;
		ret = -1;
		goto out;
	}
	ret = 1;
out:
	buf_free(&added);
	buf_free(&head);
	buf_free(&sigs);
	return ret;
}

static void
add_queue(struct smtp_tx *tx)
{
	struct store_queue_msg env;
	struct store_queue_rcpt *r;
	enum store_err e;

	memset(&env, 0, sizeof(env));
	str_copy(env.sender, tx->queue_sender, sizeof(env.sender));
	str_copy(env.envid, tx->envid, sizeof(env.envid));
	env.ret = tx->ret == SMTP_RET_FULL ? STORE_QRET_FULL :
	    tx->ret == SMTP_RET_HDRS ? STORE_QRET_HDRS : STORE_QRET_NONE;
	if (tx->user_remote)
		str_copy(env.auth_user, tx->auth_user, sizeof(env.auth_user));
	r = xcalloc(tx->nremote, sizeof(*r));
	for (size_t i = 0; i < tx->nremote; i++) {
		str_copy(r[i].address, tx->remote[i].address,
		    sizeof(r[i].address));
		str_copy(r[i].orcpt, tx->remote[i].orcpt, sizeof(r[i].orcpt));
		/* smtp_notify and store_queue_notify share their bits. */
		r[i].notify = tx->remote[i].notify;
	}
	e = store_delivery_queue(tx->d, &env, r, tx->nremote);
	free(r);
	if (e != STORE_OK)
		tx->commit_err = e;
}

void
smtp_submit_work(struct smtp_tx *tx)
{
	struct smtp_hdr_info hi;
	const char *map;
	size_t size;
	enum store_err e;
	int r;

	tx->prep = SMTP_PREP_OK;
	tx->commit_err = STORE_OK;
	if ((e = store_delivery_map(tx->d, &map, &size)) != STORE_OK) {
		tx->commit_err = e;
		return;
	}
	smtp_hdr_scan(map, size, &hi);
	if (hi.received > SMTP_HOPS_MAX) {
		tx->prep = SMTP_PREP_LOOP;
		return;
	}
	if (tx->nremote > 0 && !store_queue_space_ok(tx->store, size)) {
		tx->prep = SMTP_PREP_NOSPACE;
		return;
	}
	if (tx->fix_headers && (r = fix_and_sign(tx, map, size, &hi)) != 0) {
		if (r < 0)
			return;
		if ((e = store_delivery_map(tx->d, &map, &size)) != STORE_OK) {
			tx->commit_err = e;
			return;
		}
	}
	if (tx->checks != NULL && (smtp_checks_work(tx, map, size) < 0 ||
	    tx->prep != SMTP_PREP_OK))
		return;
	for (size_t i = 0; i < tx->nusers; i++) {
		uint32_t mbox = tx->junk && !tx->fix_headers ?
		    smtp_junk_mailbox(tx->store, tx->users[i]) : 0;
		e = store_delivery_add_target(tx->d, tx->users[i], mbox, 0,
		    NULL, 0, 0, 0);
		if (e != STORE_OK) {
			tx->commit_err = e;
			return;
		}
	}
	if (tx->nremote > 0) {
		add_queue(tx);
		if (tx->commit_err != STORE_OK)
			return;
	}
	tx->commit_err = store_delivery_commit(tx->d, STORE_DELIVER_NOQUOTA,
	    NULL);
	if (tx->commit_err == STORE_OK)
		tx->queue_id = store_delivery_queue_id(tx->d);
}
