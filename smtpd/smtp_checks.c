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
   arrives; the signatures are verified on the worker. DMARC (RFC 7489):
   the From: domain's policy (TXT at _dmarc.DOMAIN, else at its
   organizational domain's, from the Public Suffix List) is looked up at
   the same time; on the worker a pass needs an aligned SPF pass or an
   aligned DKIM pass. With dmarc_policy = yes a failing message under
   p=reject is refused (550 5.7.1, nothing stored) and under
   p=quarantine filed as Junk (pct= samples). With inbound_checks = no
   (an MX behind a gateway that already checked) none of SPF, DKIM or
   DMARC is looked up or evaluated and no Authentication-Results is
   added, but forged ones claiming our hostname are still removed (a
   downstream reader trusts them) and the Received: name is still
   confirmed; milters and DNS blocklists do not depend on this. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "dkim_verify.h"
#include "dmarc.h"
#include "dns.h"
#include "log.h"
#include "spf.h"
#include "util.h"
#include "worker.h"

#include <pthread.h>
#include <sodium.h>

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

#define RDNS_NAMES_MAX 5

/* Forward-confirmed reverse DNS: the PTR names of the client's address,
   each looked up forward; the first (in PTR order) whose addresses
   include the client's is the name for Received:. */
struct rdns_lookup {
	struct smtp_checks *c;
	int idx;                        /* -1: the PTR query */
};

/* A DMARC policy lookup: at the From: domain [0] and at its
   organizational domain [1]. */
struct dmarc_lookup {
	struct smtp_checks *c;
	int which;
};

struct smtp_checks {
	struct smtp_session *s;
	unsigned pending;               /* lookups the commit waits for */
	bool dmarc_on;                  /* dmarc_policy = yes */
	bool auth_on;                   /* inbound_checks = yes */
	char from_domain[DMARC_DOMAIN_MAX + 1];
	char org_domain[DMARC_DOMAIN_MAX + 2];
	struct {
		bool asked, done;
		enum dns_status status;
		int nrec;                       /* DMARC records found */
		struct dmarc_record rec;
		struct dmarc_lookup *lk;
	} dm[2];
	/* FCrDNS */
	int family;
	unsigned char ip[16];
	char rdns_names[RDNS_NAMES_MAX][DNS_NAME_SIZE];
	bool rdns_ok[RDNS_NAMES_MAX];
	size_t nrdns;
	struct rdns_lookup *rdns_lk[RDNS_NAMES_MAX + 1];
	/* DMARC result (worker). */
	char dmarc_ar[512];
	bool reject;
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

/* The Public Suffix List: replaced on SIGHUP; a replaced list may still
   be in use on a worker, so old ones are kept until stop. */
static pthread_mutex_t psl_mu = PTHREAD_MUTEX_INITIALIZER;
static struct psl *psl_cur;
static struct psl **psl_old;
static size_t npsl_old;

static void
psl_reload(void)
{
	char err[256];
	struct psl *p = psl_load(DMARC_PSL_PATH, err, sizeof(err));

	if (p == NULL) {
		log_warnx("dmarc: %s (organizational domains: the last two "
		    "labels)", err);
		return;
	}
	pthread_mutex_lock(&psl_mu);
	if (psl_cur != NULL) {
		psl_old = xrealloc(psl_old, (npsl_old + 1) * sizeof(*psl_old));
		psl_old[npsl_old++] = psl_cur;
	}
	psl_cur = p;
	pthread_mutex_unlock(&psl_mu);
}

static const struct psl *
psl_get(void)
{
	const struct psl *p;

	pthread_mutex_lock(&psl_mu);
	p = psl_cur;
	pthread_mutex_unlock(&psl_mu);
	return p;
}

void
smtp_checks_reload(struct daemon *d)
{
	(void)d;
	if (resolver != NULL)
		psl_reload();
}

int
smtp_checks_start(struct daemon *d, char *err, size_t errlen)
{
	if (d->cfg->smtp_listen == NULL || d->cfg->smtp_listen[0] == '\0')
		return 0;
	resolver = dns_resolver_new(d->loop, d->cfg->dns_servers, 0, 0, err,
	    errlen);
	if (resolver == NULL)
		return -1;
	/* Senders repeat: their SPF, DKIM key and DMARC records are asked
	   again for every message without a cache across messages. */
	dns_resolver_enable_cache(resolver);
	psl_reload();
	return 0;
}

void
smtp_checks_stop(void)
{
	dns_resolver_free(&resolver);
	psl_free(&psl_cur);
	for (size_t i = 0; i < npsl_old; i++)
		psl_free(&psl_old[i]);
	free(psl_old);
	psl_old = NULL;
	npsl_old = 0;
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

static void
wake(struct smtp_checks *c)
{
	c->pending--;
	if (c->waiting && c->pending == 0) {
		c->waiting = false;
		smtp_checks_submit(c->s, c->work, c->done);
	}
}

static void
rdns_fwd_done(void *arg, const struct dns_answer *ans)
{
	struct rdns_lookup *lk = arg;
	struct smtp_checks *c = lk->c;
	int i = lk->idx;

	free(lk);
	if (c == NULL)
		return;
	c->rdns_lk[i + 1] = NULL;
	for (size_t k = 0; k < ans->n; k++)
		if (ans->rr[k].family == c->family && memcmp(ans->rr[k].addr,
		    c->ip, c->family == AF_INET ? 4 : 16) == 0)
			c->rdns_ok[i] = true;
	wake(c);
}

static void
rdns_ptr_done(void *arg, const struct dns_answer *ans)
{
	struct rdns_lookup *lk = arg;
	struct smtp_checks *c = lk->c;

	free(lk);
	if (c == NULL)
		return;
	c->rdns_lk[0] = NULL;
	for (size_t k = 0; k < ans->n && c->nrdns < RDNS_NAMES_MAX; k++) {
		if (ans->rr[k].type != DNS_T_PTR ||
		    !dns_is_valid_name(ans->rr[k].name))
			continue;
		int i = (int)c->nrdns++;
		str_copy(c->rdns_names[i], ans->rr[k].name,
		    sizeof(c->rdns_names[i]));
		struct rdns_lookup *f = xcalloc(1, sizeof(*f));
		f->c = c;
		f->idx = i;
		if (dns_query(resolver, c->rdns_names[i], c->family == AF_INET ?
		    DNS_T_A : DNS_T_AAAA, rdns_fwd_done, f) < 0) {
			free(f);
			continue;
		}
		c->rdns_lk[i + 1] = f;
		c->pending++;
	}
	wake(c);
}

static void
rdns_start(struct smtp_checks *c)
{
	char name[DNS_NAME_SIZE];
	static const char hex[] = "0123456789abcdef";
	struct rdns_lookup *lk;

	if (c->family == AF_INET) {
		snprintf(name, sizeof(name), "%u.%u.%u.%u.in-addr.arpa",
		    c->ip[3], c->ip[2], c->ip[1], c->ip[0]);
	} else {
		size_t o = 0;
		for (int i = 15; i >= 0; i--) {
			name[o++] = hex[c->ip[i] & 15];
			name[o++] = '.';
			name[o++] = hex[c->ip[i] >> 4];
			name[o++] = '.';
		}
		memcpy(name + o, "ip6.arpa", 9);
	}
	lk = xcalloc(1, sizeof(*lk));
	lk->c = c;
	lk->idx = -1;
	if (dns_query(resolver, name, DNS_T_PTR, rdns_ptr_done, lk) < 0) {
		free(lk);
		return;
	}
	c->rdns_lk[0] = lk;
	c->pending++;
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
	c->dmarc_on = s->base.d->cfg->dmarc_policy;
	c->auth_on = s->base.d->cfg->inbound_checks;
	str_copy(c->hostname, s->base.d->cfg->hostname, sizeof(c->hostname));
	tx->checks = c;
	memset(&req, 0, sizeof(req));
	peer_ip(s, &req);
	str_copy(req.sender, tx->from, sizeof(req.sender));
	str_copy(req.helo, s->helo, sizeof(req.helo));
	str_copy(req.receiver, c->hostname, sizeof(req.receiver));
	req.now = (long long)time(NULL);
	buf_init(&c->hdr);
	c->family = req.family;
	memcpy(c->ip, req.ip, sizeof(c->ip));
	rdns_start(c);
	if (!c->auth_on)
		return;
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

static void
dmarc_done(void *arg, const struct dns_answer *ans)
{
	struct dmarc_lookup *lk = arg;
	struct smtp_checks *c = lk->c;
	int w = lk->which;

	free(lk);
	if (c == NULL)
		return;
	c->dm[w].lk = NULL;
	c->dm[w].done = true;
	c->dm[w].status = ans->status;
	for (size_t i = 0; i < ans->n; i++) {
		struct dmarc_record r;
		if (ans->rr[i].type != DNS_T_TXT || ans->rr[i].txt_len < 8 ||
		    memcmp(ans->rr[i].txt, "v=DMARC1", 8) != 0)
			continue;
		if (dmarc_record_parse(ans->rr[i].txt, ans->rr[i].txt_len,
		    &r) < 0)
			continue;
		if (c->dm[w].nrec++ == 0)
			c->dm[w].rec = r;
	}
	c->pending--;
	if (c->waiting && c->pending == 0) {
		c->waiting = false;
		smtp_checks_submit(c->s, c->work, c->done);
	}
}

static void
dmarc_ask(struct smtp_checks *c, int w, const char *domain)
{
	char name[DNS_NAME_SIZE + 16];

	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	if (strlen(name) >= DNS_NAME_SIZE)
		name[0] = '\0';
	c->dm[w].asked = true;
	c->dm[w].lk = xcalloc(1, sizeof(*c->dm[w].lk));
	c->dm[w].lk->c = c;
	c->dm[w].lk->which = w;
	if (dns_query(resolver, name, DNS_T_TXT, dmarc_done,
	    c->dm[w].lk) < 0) {
		free(c->dm[w].lk);
		c->dm[w].lk = NULL;
		c->dm[w].done = true;
		c->dm[w].status = DNS_NXDOMAIN;
		return;
	}
	c->pending++;
}

/* The header is complete: look up the key of every signature and the
   From: domain's DMARC policy. */
static void
header_done(struct smtp_checks *c)
{
	const char *h = c->hdr.data;
	size_t len = c->hdr.len, pos = 0;
	struct smtp_hdr_info hi;

	c->hdr_done = true;
	smtp_hdr_scan(h != NULL ? h : "", len, &hi);
	str_copy(c->from_domain, hi.from_domain, sizeof(c->from_domain));
	if (c->from_domain[0] != '\0' && dns_is_valid_name(c->from_domain)) {
		psl_org_domain(psl_get(), c->from_domain, c->org_domain,
		    sizeof(c->org_domain));
		dmarc_ask(c, 0, c->from_domain);
		if (strcmp(c->org_domain, c->from_domain) != 0)
			dmarc_ask(c, 1, c->org_domain);
	}
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

	if (c == NULL || c->hdr_done || !c->auth_on || n == 0)
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
	for (int w = 0; w < 2; w++)
		if (c->dm[w].lk != NULL)
			c->dm[w].lk->c = NULL;
	for (size_t i = 0; i <= RDNS_NAMES_MAX; i++)
		if (c->rdns_lk[i] != NULL)
			c->rdns_lk[i]->c = NULL;
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

	if (c != NULL && !c->hdr_done && c->auth_on)
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
	buf_printf(b, "%s%s\r\n", c->dkim_ar, c->dmarc_ar);
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

static bool
dns_temp(enum dns_status st)
{
	return st == DNS_TEMPFAIL || st == DNS_BADANSWER ||
	    st == DNS_CANCELLED;
}

/* DMARC for the From: domain (RFC 7489 6.6): the result into
   c->dmarc_ar, the disposition onto tx. */
static void
dmarc_eval(struct smtp_tx *tx)
{
	struct smtp_checks *c = tx->checks;
	const struct psl *p = psl_get();
	const struct dmarc_record *rec = NULL;
	enum dmarc_policy pol = DMARC_P_NONE, dis;
	bool pass = false, org = false;
	const char *res;

	c->dmarc_ar[0] = '\0';
	if (c->from_domain[0] == '\0')
		return;   /* no From: domain: nothing to say */
	if (!c->dm[0].done || dns_temp(c->dm[0].status)) {
		res = "temperror";
		goto out;
	}
	if (c->dm[0].nrec == 1) {
		rec = &c->dm[0].rec;
	} else if (c->dm[0].nrec == 0 && c->dm[1].asked) {
		if (!c->dm[1].done || dns_temp(c->dm[1].status)) {
			res = "temperror";
			goto out;
		}
		if (c->dm[1].nrec == 1) {
			rec = &c->dm[1].rec;
			org = true;
		}
	}
	if (rec == NULL) {
		res = "none";
		goto out;
	}
	pol = org ? rec->sp : rec->p;
	/* An aligned SPF pass (the MAIL FROM domain, or HELO for <>). */
	if (c->spf_done && c->spf_out.result == SPF_PASS &&
	    dmarc_aligned(p, c->spf_out.domain, c->from_domain,
	    rec->aspf_strict))
		pass = true;
	/* An aligned DKIM pass. */
	for (size_t i = 0; i < c->dkim_pass_n && !pass; i++)
		if (dmarc_aligned(p, c->dkim_pass[i], c->from_domain,
		    rec->adkim_strict))
			pass = true;
	if (pass) {
		res = "pass";
		dis = DMARC_P_NONE;
	} else {
		res = "fail";
		dis = pol;
		/* pct: messages outside the sample get the next policy
		   down (RFC 7489 6.6.4). */
		if (rec->pct < 100 && randombytes_uniform(100) >= rec->pct)
			dis = dis == DMARC_P_REJECT ? DMARC_P_QUARANTINE :
			    DMARC_P_NONE;
		if (!c->dmarc_on)
			dis = DMARC_P_NONE;
		if (dis == DMARC_P_REJECT)
			c->reject = true;
		else if (dis == DMARC_P_QUARANTINE)
			smtp_tx_set_junk(tx, "dmarc=quarantine");
	}
	snprintf(c->dmarc_ar, sizeof(c->dmarc_ar), ";\r\n\tdmarc=%s "
	    "(p=%s dis=%s) header.from=%s", res, dmarc_policy_str(pol),
	    dmarc_policy_str(pass ? DMARC_P_NONE : dis), c->from_domain);
	return;
out:
	snprintf(c->dmarc_ar, sizeof(c->dmarc_ar), ";\r\n\tdmarc=%s "
	    "header.from=%s", res, c->from_domain);
}

const char *
smtp_checks_dmarc_domain(const struct smtp_tx *tx)
{
	return tx->checks != NULL ? tx->checks->from_domain : "";
}

/* Our trace fields with the client's forward-confirmed name put into
   Received: "from HELO (NAME [ip])". */
static void
trace_with_rdns(const struct smtp_checks *c, const char *t, size_t len,
    struct buf *out)
{
	const char *name = NULL, *rcv, *par;

	buf_init(out);
	for (size_t i = 0; i < c->nrdns && name == NULL; i++)
		if (c->rdns_ok[i])
			name = c->rdns_names[i];
	rcv = name != NULL ? memmem(t, len, "\nReceived: from ", 16) : NULL;
	par = rcv != NULL ? memmem(rcv, len - (size_t)(rcv - t), " ([", 3) :
	    NULL;
	if (par == NULL) {
		buf_append(out, t, len);
		return;
	}
	buf_append(out, t, (size_t)(par - t) + 2);
	buf_printf(out, "%s ", name);
	buf_append(out, par + 2, len - (size_t)(par + 2 - t));
}

int
smtp_checks_work(struct smtp_tx *tx, const char *map, size_t size)
{
	const char *c = map + tx->trace_len;
	size_t clen = size - tx->trace_len, hlen, tlen;
	struct buf head;
	enum store_err e;

	if (tx->checks == NULL)
		return 0;
	if (tx->checks->auth_on) {
		dkim_all(tx->checks, c, clen);
		dmarc_eval(tx);
	}
	if (tx->checks->reject) {
		tx->prep = SMTP_PREP_DMARC_REJECT;
		return 0;
	}
	/* Trace fields, A-R, then the header without forged A-Rs, in place
	   of the old trace fields and header: the body is not written
	   again. map is invalid once the delivery changed. */
	trace_with_rdns(tx->checks, map, tx->trace_len, &head);
	tlen = head.len;
	if (tx->checks->auth_on)
		ar_header(tx, &head);
	hlen = header_filtered(c, clen, tx->checks->hostname, &head);
	e = store_delivery_replace_head(tx->d, tx->trace_len + hlen, head.data,
	    head.len);
	buf_free(&head);
	if (e != STORE_OK) {
		tx->commit_err = e;
		return -1;
	}
	tx->trace_len = tlen;
	return 0;
}

const char *
smtp_checks_spf_str(const struct smtp_tx *tx)
{
	if (tx->checks == NULL || !tx->checks->auth_on)
		return NULL;
	return tx->checks->spf_done ?
	    spf_result_str(tx->checks->spf_out.result) : "temperror";
}
