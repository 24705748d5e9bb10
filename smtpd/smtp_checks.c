/* smtp_checks: the sender-authentication checks of mail received on the
   MX listener (never on authenticated submission). SPF (RFC 7208) starts
   at MAIL FROM (the HELO name for the null sender) over the loop's DNS
   resolver, so its lookups overlap RCPT and DATA; at the end of the
   content the commit waits for it if it is still pending. On the worker,
   before the commit, the message gets one Authentication-Results header
   (RFC 8601) naming our hostname, and any incoming one that claims our
   hostname is removed (it would be a forgery: only we write those). A
   DNS failure is a temperror recorded in the header, never a refusal.
   DKIM: the header is collected as the content streams in; once it is
   complete, the key of every DKIM-Signature (up to CHECKS_SIGS_MAX) is
   looked up (TXT at SELECTOR._domainkey.DOMAIN) while the body still
   arrives; the signatures are verified on the worker. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "dkim_verify.h"
#include "dns.h"
#include "log.h"
#include "spf.h"
#include "util.h"
#include "worker.h"

#include "smtp_session.h"

#define CHECKS_SIGS_MAX 8
#define CHECKS_HEADER_MAX (256 * 1024)   /* collected for the lookups */

struct key_lookup;

/* One key looked up for a signature: by (d, s). */
struct checks_key {
	char d[DKIM_DOMAIN_MAX + 1], s[DKIM_SELECTOR_MAX + 1];
	bool done;
	enum dns_status status;
	char *txt;                      /* the first TXT string, owned */
	size_t txt_len;
	struct key_lookup *lk;          /* in flight, else NULL */
};

struct key_lookup {
	struct smtp_checks *c;          /* NULL once the checks are freed */
	size_t idx;
};

struct smtp_checks {
	struct smtp_session *s;
	unsigned pending;               /* lookups the commit waits for */
	/* The header as it streams in. */
	struct buf hdr;
	bool hdr_done;
	struct checks_key keys[CHECKS_SIGS_MAX];
	size_t nkeys;
	/* Worker results. */
	char dkim_ar[2048];
	char dkim_pass[CHECKS_SIGS_MAX][DKIM_DOMAIN_MAX + 1];
	size_t dkim_pass_n;
	/* SPF */
	struct spf_check *spf;          /* in flight, else NULL */
	bool spf_done;
	struct spf_outcome spf_out;
	/* The commit waiting for the checks (session suspended). */
	bool waiting;
	void (*work)(void *arg);
	session_done_cb *done;
	char hostname[256];
};

static struct dns_resolver *resolver;

int
smtp_checks_start(struct daemon *d, char *err, size_t errlen)
{
	if (d->cfg->smtp_listen == NULL || d->cfg->smtp_listen[0] == '\0')
		return 0;
	resolver = dns_resolver_new(d->loop, d->cfg->dns_servers, 0, 0, err,
	    errlen);
	return resolver != NULL ? 0 : -1;
}

void
smtp_checks_stop(void)
{
	dns_resolver_free(&resolver);
}

static void
spf_done(void *arg, const struct spf_outcome *out)
{
	struct smtp_checks *c = arg;
	struct smtp_session *s = c->s;

	c->spf = NULL;
	c->spf_done = true;
	c->spf_out = *out;
	c->pending--;
	if (!c->waiting || c->pending > 0)
		return;
	/* The session is suspended since the end of the content: the
	   commit goes to the worker now; its done resumes the session. */
	c->waiting = false;
	smtp_checks_submit(s, c->work, c->done);
}

static void
peer_ip(struct smtp_session *s, struct spf_request *req)
{
	const char *ip = conn_peer_addr(s->base.c);
	unsigned char a6[16];

	req->family = AF_INET;
	if (strchr(ip, ':') == NULL) {
		inet_pton(AF_INET, ip, req->ip);
		return;
	}
	if (inet_pton(AF_INET6, ip, a6) != 1)
		return;
	if (memcmp(a6, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		memcpy(req->ip, a6 + 12, 4);   /* v4-mapped */
		return;
	}
	req->family = AF_INET6;
	memcpy(req->ip, a6, 16);
}

void
smtp_checks_mail(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct smtp_checks *c;
	struct spf_request req;

	if (s->listener != SMTP_L_MX || smtp_is_authenticated(s) ||
	    resolver == NULL || tx == NULL)
		return;
	c = xcalloc(1, sizeof(*c));
	c->s = s;
	str_copy(c->hostname, s->base.d->cfg->hostname, sizeof(c->hostname));
	tx->checks = c;
	memset(&req, 0, sizeof(req));
	peer_ip(s, &req);
	str_copy(req.sender, tx->from, sizeof(req.sender));
	str_copy(req.helo, s->helo, sizeof(req.helo));
	str_copy(req.receiver, c->hostname, sizeof(req.receiver));
	req.now = (long long)time(NULL);
	buf_init(&c->hdr);
	if (spf_check_start(resolver, &req, spf_done, c, &c->spf,
	    &c->spf_out) == 0)
		c->spf_done = true;
	else
		c->pending++;
}

static void
key_done(void *arg, const struct dns_answer *ans)
{
	struct key_lookup *lk = arg;
	struct smtp_checks *c = lk->c;
	struct checks_key *k;

	if (c == NULL) {
		free(lk);
		return;
	}
	k = &c->keys[lk->idx];
	free(lk);
	k->lk = NULL;
	k->done = true;
	k->status = ans->status;
	for (size_t i = 0; i < ans->n; i++) {
		if (ans->rr[i].type != DNS_T_TXT)
			continue;
		k->txt = xmalloc(ans->rr[i].txt_len + 1);
		memcpy(k->txt, ans->rr[i].txt, ans->rr[i].txt_len);
		k->txt[ans->rr[i].txt_len] = '\0';
		k->txt_len = ans->rr[i].txt_len;
		break;
	}
	c->pending--;
	if (c->waiting && c->pending == 0) {
		c->waiting = false;
		smtp_checks_submit(c->s, c->work, c->done);
	}
}

static bool
name_is(const char *p, size_t len, const char *name);

/* The header is complete: look up the key of every signature. */
static void
header_done(struct smtp_checks *c)
{
	const char *h = c->hdr.data;
	size_t len = c->hdr.len, pos = 0;

	c->hdr_done = true;
	while (pos < len && c->nkeys < CHECKS_SIGS_MAX) {
		size_t start = pos, colon;
		const char *nl;
		struct dkim_sig sig;
		char err[128], name[DNS_NAME_SIZE + 80];
		bool dup = false;

		for (;;) {
			nl = memchr(h + pos, '\n', len - pos);
			pos = nl != NULL ? (size_t)(nl - h) + 1 : len;
			if (pos >= len || (h[pos] != ' ' && h[pos] != '\t'))
				break;
		}
		for (colon = start; colon < pos && h[colon] != ':'; colon++)
			;
		if (colon >= pos || !name_is(h + start, colon - start,
		    "DKIM-Signature"))
			continue;
		if (dkim_sig_parse(h + colon + 1, pos - colon - 1, &sig, err,
		    sizeof(err)) < 0)
			continue;
		for (size_t i = 0; i < c->nkeys; i++)
			if (strcmp(c->keys[i].d, sig.d) == 0 &&
			    strcmp(c->keys[i].s, sig.s) == 0)
				dup = true;
		if (dup)
			continue;
		struct checks_key *k = &c->keys[c->nkeys];
		memset(k, 0, sizeof(*k));
		str_copy(k->d, sig.d, sizeof(k->d));
		str_copy(k->s, sig.s, sizeof(k->s));
		c->nkeys++;
		snprintf(name, sizeof(name), "%s._domainkey.%s", sig.s, sig.d);
		if (strlen(name) >= DNS_NAME_SIZE)
			name[0] = '\0';   /* invalid: dns_query refuses it */
		k->lk = xcalloc(1, sizeof(*k->lk));
		k->lk->c = c;
		k->lk->idx = c->nkeys - 1;
		if (dns_query(resolver, name, DNS_T_TXT, key_done, k->lk) < 0) {
			free(k->lk);
			k->lk = NULL;
			k->done = true;
			k->status = DNS_NXDOMAIN;
			continue;
		}
		c->pending++;
	}
	buf_free(&c->hdr);
}

void
smtp_checks_data(struct smtp_session *s, const char *p, size_t n)
{
	struct smtp_checks *c = s->tx != NULL ? s->tx->checks : NULL;
	size_t old;

	if (c == NULL || c->hdr_done || n == 0)
		return;
	old = c->hdr.len;
	if (n > CHECKS_HEADER_MAX - old)
		n = CHECKS_HEADER_MAX - old;
	buf_append(&c->hdr, p, n);
	/* The end of the header: an empty line (searched from a little
	   before the new bytes, so a split CRLF CRLF is found). */
	size_t from = old >= 3 ? old - 3 : 0;
	const char *d = c->hdr.data;
	for (size_t i = from; i < c->hdr.len; i++) {
		if (d[i] != '\n')
			continue;
		if ((i == 0) || (i >= 1 && d[i - 1] == '\n') ||
		    (i >= 2 && d[i - 1] == '\r' && d[i - 2] == '\n')) {
			c->hdr.len = i + 1;
			header_done(c);
			return;
		}
	}
	if (c->hdr.len >= CHECKS_HEADER_MAX)
		header_done(c);
}

void
smtp_checks_free(struct smtp_checks **cp)
{
	struct smtp_checks *c = *cp;

	if (c == NULL)
		return;
	if (c->spf != NULL)
		spf_check_cancel(c->spf);
	for (size_t i = 0; i < c->nkeys; i++) {
		if (c->keys[i].lk != NULL)
			c->keys[i].lk->c = NULL;
		free(c->keys[i].txt);
	}
	buf_free(&c->hdr);
	free(c);
	*cp = NULL;
}

/* The worker job with its session: done runs as session_submit's would,
   then the session resumes. */
struct wait_job {
	struct smtp_session *s;
	struct smtp_tx *tx;
	void (*work)(void *arg);
	session_done_cb *done;
};

static void
job_work(void *arg)
{
	struct wait_job *j = arg;

	j->work(j->tx);
}

static void
job_done(void *arg)
{
	struct wait_job *j = arg;
	struct smtp_session *s = j->s;
	enum cmd_result r = j->done(&s->base, j->tx);

	free(j);
	if (r == CMD_SUSPEND)
		return;
	if (r == CMD_CLOSE)
		session_close(&s->base, "closed");
	session_resume(&s->base);
}

void
smtp_checks_submit(struct smtp_session *s, void (*work)(void *arg),
    session_done_cb *done)
{
	struct smtp_checks *c = s->tx->checks;
	struct wait_job *j;

	if (c != NULL && !c->hdr_done)
		header_done(c);   /* a message without a body */
	if (c == NULL || (c->pending == 0 && !session_is_busy(&s->base))) {
		session_submit(&s->base, work, done, s->tx);
		return;
	}
	if (c->pending > 0) {
		/* Wait for SPF; spf_done calls back in here. */
		c->waiting = true;
		c->work = work;
		c->done = done;
		session_suspend(&s->base);
		return;
	}
	/* Already suspended by the wait above. */
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->tx = s->tx;
	j->work = work;
	j->done = done;
	worker_submit(s->base.d->workers, job_work, job_done, j);
}

/* ---- on the worker: the Authentication-Results header ---- */

static bool
name_is(const char *p, size_t len, const char *name)
{
	size_t n = strlen(name);

	return len == n && strncasecmp(p, name, n) == 0;
}

/* Whether an Authentication-Results value names host as its authserv-id
   (comments and folding skipped). */
static bool
ar_claims(const char *v, size_t len, const char *host)
{
	size_t i = 0, start, depth = 0;

	for (;;) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' ||
		    v[i] == '\r' || v[i] == '\n'))
			i++;
		if (i < len && v[i] == '(') {
			/* A comment, with nesting and quoted pairs. */
			for (; i < len; i++) {
				if (v[i] == '\\' && i + 1 < len)
					i++;
				else if (v[i] == '(')
					depth++;
				else if (v[i] == ')' && --depth == 0) {
					i++;
					break;
				}
			}
			continue;
		}
		break;
	}
	start = i;
	while (i < len && v[i] != ';' && v[i] != ' ' && v[i] != '\t' &&
	    v[i] != '\r' && v[i] != '\n' && v[i] != '(')
		i++;
	if (i > start && v[start] == '"' && v[i - 1] == '"' && i - start >= 2)
		return name_is(v + start + 1, i - start - 2, host);
	return name_is(v + start, i - start, host);
}

/* The header of content c[0..len) without the A-R fields that claim
   host, into out; returns the header's length in c. */
static size_t
header_filtered(const char *c, size_t len, const char *host, struct buf *out)
{
	size_t pos = 0;

	while (pos < len) {
		size_t start = pos, end, colon, nlen;
		const char *nl;

		if (c[pos] == '\n' || (c[pos] == '\r' && pos + 1 < len &&
		    c[pos + 1] == '\n'))
			break;
		for (;;) {
			nl = memchr(c + pos, '\n', len - pos);
			end = nl != NULL ? (size_t)(nl - c) + 1 : len;
			pos = end;
			if (pos >= len || (c[pos] != ' ' && c[pos] != '\t'))
				break;
		}
		for (colon = start; colon < end && c[colon] != ':'; colon++)
			;
		nlen = colon - start;
		while (nlen > 0 && (c[start + nlen - 1] == ' ' ||
		    c[start + nlen - 1] == '\t'))
			nlen--;
		if (colon < end && name_is(c + start, nlen,
		    "Authentication-Results") && ar_claims(c + colon + 1,
		    end - colon - 1, host))
			continue;
		buf_append(out, c + start, end - start);
	}
	return pos;
}

static void
ar_header(const struct smtp_tx *tx, struct buf *b)
{
	const struct smtp_checks *c = tx->checks;
	const struct spf_outcome *o = &c->spf_out;

	buf_printf(b, "Authentication-Results: %s;\r\n", c->hostname);
	if (!c->spf_done)
		buf_printf(b, "\tspf=temperror");
	else if (o->helo_identity)
		buf_printf(b, "\tspf=%s smtp.helo=%s", spf_result_str(o->result),
		    o->domain);
	else
		buf_printf(b, "\tspf=%s smtp.mailfrom=%s",
		    spf_result_str(o->result), o->identity);
	buf_printf(b, "%s\r\n", c->dkim_ar);
}

static const struct checks_key *
key_for(const struct smtp_checks *c, const char *d, const char *s)
{
	for (size_t i = 0; i < c->nkeys; i++)
		if (strcmp(c->keys[i].d, d) == 0 && strcmp(c->keys[i].s, s) == 0)
			return &c->keys[i];
	return NULL;
}

/* Verifies every DKIM-Signature of the content (up to CHECKS_SIGS_MAX)
   into c->dkim_ar (";\r\n\tdkim=... header.d=..." each, or
   dkim=none). */
static void
dkim_all(struct smtp_checks *c, const char *m, size_t len)
{
	size_t pos = 0, o = 0, nsig = 0;
	int64_t now = (int64_t)time(NULL);
	char *out = c->dkim_ar;
	size_t cap = sizeof(c->dkim_ar);

	out[0] = '\0';
	while (pos < len && nsig < CHECKS_SIGS_MAX) {
		size_t start = pos, colon;
		const char *nl;
		struct dkim_sig sig;
		const struct checks_key *k;
		enum dkim_result r;
		char err[128], comment[160] = "";

		if (m[pos] == '\n' || (m[pos] == '\r' && pos + 1 < len &&
		    m[pos + 1] == '\n'))
			break;
		for (;;) {
			nl = memchr(m + pos, '\n', len - pos);
			pos = nl != NULL ? (size_t)(nl - m) + 1 : len;
			if (pos >= len || (m[pos] != ' ' && m[pos] != '\t'))
				break;
		}
		for (colon = start; colon < pos && m[colon] != ':'; colon++)
			;
		if (colon >= pos || !name_is(m + start, colon - start,
		    "DKIM-Signature"))
			continue;
		nsig++;
		memset(&sig, 0, sizeof(sig));
		if (dkim_sig_parse(m + colon + 1, pos - colon - 1, &sig, err,
		    sizeof(err)) < 0) {
			r = DKIM_R_NEUTRAL;
		} else if ((k = key_for(c, sig.d, sig.s)) == NULL ||
		    !k->done || k->status == DNS_TEMPFAIL ||
		    k->status == DNS_BADANSWER || k->status == DNS_CANCELLED) {
			r = DKIM_R_TEMPERROR;
			str_copy(err, "key lookup failed", sizeof(err));
		} else if (k->txt == NULL) {
			r = DKIM_R_PERMERROR;
			str_copy(err, "no key", sizeof(err));
		} else {
			r = dkim_verify(m + start, pos - start, m, len, k->txt,
			    k->txt_len, now, &sig, err, sizeof(err));
		}
		if (r != DKIM_R_PASS)
			snprintf(comment, sizeof(comment), " (%s)", err);
		else if (sig.has_l)
			snprintf(comment, sizeof(comment),
			    " (body length limit l=%llu)",
			    (unsigned long long)sig.l);
		int w = snprintf(out + o, cap - o, ";\r\n\tdkim=%s%s header.d=%s "
		    "header.s=%s header.a=%s", dkim_result_str(r), comment,
		    sig.d[0] ? sig.d : "unknown", sig.s[0] ? sig.s : "unknown",
		    sig.alg == DKIM_ED25519 ? "ed25519-sha256" : "rsa-sha256");
		if (w < 0 || (size_t)w >= cap - o) {
			out[o] = '\0';
			break;
		}
		o += (size_t)w;
		if (r == DKIM_R_PASS && c->dkim_pass_n < CHECKS_SIGS_MAX)
			str_copy(c->dkim_pass[c->dkim_pass_n++], sig.d,
			    sizeof(c->dkim_pass[0]));
	}
	if (nsig == 0)
		snprintf(out, cap, ";\r\n\tdkim=none");
}

int
smtp_checks_work(struct smtp_tx *tx, const char *map, size_t size)
{
	const char *c = map + tx->trace_len;
	size_t clen = size - tx->trace_len, hlen;
	struct buf head;
	struct store_delivery *d2 = NULL;
	enum store_err e;

	if (tx->checks == NULL)
		return 0;
	dkim_all(tx->checks, c, clen);
	buf_init(&head);
	ar_header(tx, &head);
	hlen = header_filtered(c, clen, tx->checks->hostname, &head);
	if ((e = store_delivery_new(tx->store, &d2)) != STORE_OK ||
	    (e = store_delivery_write(d2, map, tx->trace_len)) != STORE_OK ||
	    (e = store_delivery_write(d2, head.data, head.len)) != STORE_OK ||
	    (e = store_delivery_write(d2, c + hlen, clen - hlen)) != STORE_OK) {
		tx->commit_err = e;
		store_delivery_free(&d2);
		buf_free(&head);
		return -1;
	}
	buf_free(&head);
	store_delivery_free(&tx->d);
	tx->d = d2;
	return 0;
}

const char *
smtp_checks_spf_str(const struct smtp_tx *tx)
{
	if (tx->checks == NULL)
		return NULL;
	return tx->checks->spf_done ?
	    spf_result_str(tx->checks->spf_out.result) : "temperror";
}
