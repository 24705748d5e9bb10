/* dns: c-ares driven from the libev loop (its sockets on ev_io watchers, its
   retransmission timer on one ev_timer) and our own bounded decoder of the
   answers, so what a hostile or broken server sends is checked in one pure
   function that has a fuzz target. Never blocks, never reads /etc/hosts for
   MX work (raw queries only). */
#include "dns.h"

#include <arpa/inet.h>
#include <ares.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

#include "log.h"
#include "util.h"

#define MAX_JUMPS 64
#define MAX_QDCOUNT 4

/* ---- the pure decoder ---- */

static uint16_t
get16(const unsigned char *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
get32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | p[3];
}

static bool
is_host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Reads the (possibly compressed) name at msg[*pos]. Writes it in
   presentation form into out (DNS_NAME_SIZE) when out is not NULL; *host_ok
   says whether every byte is a hostname character. Advances *pos past the
   name in the record. 0 or -1. */
static int
read_name(const unsigned char *msg, size_t len, size_t *pos, char *out,
    bool *host_ok)
{
	size_t p = *pos, o = 0, end = 0;
	int jumps = 0;
	bool jumped = false, ok = true;

	for (;;) {
		unsigned c;

		if (p >= len)
			return -1;
		c = msg[p];
		if ((c & 0xc0) == 0xc0) {
			size_t target;

			if (p + 1 >= len || ++jumps > MAX_JUMPS)
				return -1;
			target = ((c & 0x3f) << 8) | msg[p + 1];
			if (!jumped)
				end = p + 2;
			jumped = true;
			/* Only backwards: no loops, whatever the count. */
			if (target >= p)
				return -1;
			p = target;
			continue;
		}
		if ((c & 0xc0) != 0)
			return -1;      /* extended label types: refused */
		if (c == 0) {
			p++;
			break;
		}
		if (p + 1 + c > len || o + c + 1 >= DNS_NAME_SIZE)
			return -1;
		if (o > 0 && out != NULL)
			out[o] = '.';
		if (o > 0)
			o++;
		for (unsigned i = 0; i < c; i++) {
			unsigned char ch = msg[p + 1 + i];

			if (!is_host_char(ch))
				ok = false;
			if (out != NULL)
				out[o] = (char)(is_host_char(ch) ? ch : '?');
			o++;
		}
		p += 1 + c;
	}
	if (out != NULL)
		out[o] = '\0';
	*pos = jumped ? end : p;
	if (host_ok != NULL)
		*host_ok = ok;
	return 0;
}

void
dns_answer_clear(struct dns_answer *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->rr[i].txt);
	memset(a, 0, sizeof(*a));
}

/* Decodes the rdata of one record of the asked type into rr. 1 kept, 0
   skipped (bad target), -1 malformed. */
static int
decode_rdata(const unsigned char *msg, size_t len, size_t rd, size_t rdlen,
    uint16_t type, struct dns_rr *rr)
{
	size_t pos = rd;
	bool ok;

	switch (type) {
	case DNS_T_A:
		if (rdlen != 4)
			return -1;
		rr->family = AF_INET;
		memcpy(rr->addr, msg + rd, 4);
		return 1;
	case DNS_T_AAAA:
		if (rdlen != 16)
			return -1;
		rr->family = AF_INET6;
		memcpy(rr->addr, msg + rd, 16);
		return 1;
	case DNS_T_MX:
		if (rdlen < 3)
			return -1;
		rr->pref = get16(msg + rd);
		pos = rd + 2;
		/* fallthrough */
	case DNS_T_PTR:
	case DNS_T_CNAME:
		if (read_name(msg, rd + rdlen, &pos, rr->name, &ok) < 0 ||
		    pos != rd + rdlen)
			return -1;
		return ok ? 1 : 0;
	case DNS_T_TXT: {
		struct buf b;

		buf_init(&b);
		while (pos < rd + rdlen) {
			size_t sl = msg[pos];

			if (pos + 1 + sl > rd + rdlen || b.len + sl > DNS_TXT_MAX) {
				buf_free(&b);
				return -1;
			}
			buf_append(&b, msg + pos + 1, sl);
			pos += 1 + sl;
		}
		rr->txt_len = b.len;
		rr->txt = b.data != NULL ? buf_steal(&b) : xstrdup("");
		return 1;
	}
	default:
		return 0;
	}
}

/* Skips the record at msg[*pos]: its type, TTL and the offset and length
   of its data into the out parameters. 0 or -1 (malformed). */
static int
skip_rr(const unsigned char *msg, size_t len, size_t *pos, uint16_t *type,
    uint32_t *ttl, size_t *rd, size_t *rdlen)
{
	if (read_name(msg, len, pos, NULL, NULL) < 0 || *pos + 10 > len)
		return -1;
	*type = get16(msg + *pos);
	*ttl = get32(msg + *pos + 4);
	*rdlen = get16(msg + *pos + 8);
	*rd = *pos + 10;
	if (*rd + *rdlen > len)
		return -1;
	*pos = *rd + *rdlen;
	return 0;
}

/* The negative TTL of a NODATA / NXDOMAIN answer (RFC 2308 5): the
   authority section's SOA, the smaller of its TTL and its minimum field.
   pos is past the question (skip the an records first) or past the
   answer section. Anything malformed there only means no SOA: the answer
   itself stands. */
static void
read_soa(const unsigned char *msg, size_t len, size_t pos, unsigned an,
    unsigned ns, struct dns_answer *out)
{
	uint16_t type;
	uint32_t ttl, min;
	size_t rd, rdlen, p;

	for (unsigned i = 0; i < an; i++)
		if (skip_rr(msg, len, &pos, &type, &ttl, &rd, &rdlen) < 0)
			return;
	for (unsigned i = 0; i < ns; i++) {
		if (skip_rr(msg, len, &pos, &type, &ttl, &rd, &rdlen) < 0)
			return;
		if (type != 6)
			continue;
		p = rd;
		/* MNAME, RNAME, then five 32-bit fields, MINIMUM last. */
		if (read_name(msg, rd + rdlen, &p, NULL, NULL) < 0 ||
		    read_name(msg, rd + rdlen, &p, NULL, NULL) < 0 ||
		    p + 20 != rd + rdlen)
			return;
		min = get32(msg + p + 16);
		out->has_soa = true;
		out->neg_ttl = ttl < min ? ttl : min;
		return;
	}
}

int
dns_answer_parse(const unsigned char *msg, size_t len, int qtype,
    struct dns_answer *out, const char **error_r)
{
	size_t pos = 12;
	unsigned qd, an, flags;

	memset(out, 0, sizeof(*out));
	out->status = DNS_BADANSWER;
	if (len < 12) {
		*error_r = "short header";
		return -1;
	}
	flags = get16(msg + 2);
	qd = get16(msg + 4);
	an = get16(msg + 6);
	if ((flags & 0x8000) == 0) {
		*error_r = "not a response";
		return -1;
	}
	out->rcode = (int)(flags & 0x0f);
	if (qd > MAX_QDCOUNT) {
		*error_r = "too many questions";
		return -1;
	}
	for (unsigned i = 0; i < qd; i++) {
		if (read_name(msg, len, &pos, NULL, NULL) < 0 || pos + 4 > len) {
			*error_r = "bad question";
			return -1;
		}
		pos += 4;
	}
	if (out->rcode == 3) {
		out->status = DNS_NXDOMAIN;
		read_soa(msg, len, pos, an, get16(msg + 8), out);
		return 0;
	}
	if (out->rcode != 0) {
		out->status = DNS_TEMPFAIL;
		return 0;
	}
	for (unsigned i = 0; i < an; i++) {
		uint16_t type, cls;
		uint32_t ttl;
		size_t rdlen;
		int k;

		if (read_name(msg, len, &pos, NULL, NULL) < 0 || pos + 10 > len) {
			*error_r = "bad answer record";
			goto bad;
		}
		type = get16(msg + pos);
		cls = get16(msg + pos + 2);
		ttl = get32(msg + pos + 4);
		rdlen = get16(msg + pos + 8);
		pos += 10;
		if (pos + rdlen > len) {
			*error_r = "record data past the end";
			goto bad;
		}
		if (type == qtype && cls == 1 && out->n < DNS_MAX_RR) {
			struct dns_rr *rr = &out->rr[out->n];

			memset(rr, 0, sizeof(*rr));
			rr->type = type;
			rr->ttl = ttl;
			k = decode_rdata(msg, len, pos, rdlen, type, rr);
			if (k < 0) {
				*error_r = "malformed record data";
				goto bad;
			}
			if (k > 0)
				out->n++;
		}
		pos += rdlen;
	}
	out->status = out->n > 0 ? DNS_OK : DNS_NODATA;
	if (out->n == 0)
		read_soa(msg, len, pos, 0, get16(msg + 8), out);
	return 0;
bad:
	dns_answer_clear(out);
	out->status = DNS_BADANSWER;
	return -1;
}

bool
dns_answer_is_null_mx(const struct dns_answer *a)
{
	return a->status == DNS_OK && a->n == 1 && a->rr[0].type == DNS_T_MX &&
	    a->rr[0].name[0] == '\0';
}

void
dns_answer_sort_mx(struct dns_answer *a, bool shuffle)
{
	/* Insertion sort: at most DNS_MAX_RR records. */
	if (shuffle) {
		for (size_t i = a->n; i > 1; i--) {
			size_t j = randombytes_uniform((uint32_t)i);
			struct dns_rr t = a->rr[i - 1];

			a->rr[i - 1] = a->rr[j];
			a->rr[j] = t;
		}
	}
	for (size_t i = 1; i < a->n; i++) {
		struct dns_rr t = a->rr[i];
		size_t j = i;

		while (j > 0 && a->rr[j - 1].pref > t.pref) {
			a->rr[j] = a->rr[j - 1];
			j--;
		}
		a->rr[j] = t;
	}
}

bool
dns_is_valid_name(const char *name)
{
	size_t len = strlen(name), lab = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (lab == 0)
				return false;
			lab = 0;
			continue;
		}
		if (!is_host_char((unsigned char)name[i]) || ++lab > 63)
			return false;
	}
	return lab > 0;
}

const char *
dns_status_str(enum dns_status s)
{
	switch (s) {
	case DNS_OK: return "ok";
	case DNS_NODATA: return "nodata";
	case DNS_NXDOMAIN: return "nxdomain";
	case DNS_TEMPFAIL: return "tempfail";
	case DNS_BADANSWER: return "badanswer";
	case DNS_CANCELLED: return "cancelled";
	}
	return "?";
}

/* ---- the answer cache ---- */

struct cache_ent {
	struct cache_ent *hnext;            /* hash chain */
	struct cache_ent *prev, *next;      /* LRU list, most recent first */
	char name[DNS_NAME_SIZE];           /* lower case, no final dot */
	int qtype;
	double expires;
	size_t bytes;
	struct dns_answer *ans;             /* only ans->n records used */
};

struct dns_cache {
	struct cache_ent **tab;
	size_t nbuckets;                    /* a power of two */
	size_t n, max_n, bytes, max_bytes;
	struct cache_ent *head, *tail;
};

struct dns_cache *
dns_cache_new(size_t max_entries, size_t max_bytes)
{
	struct dns_cache *c = xcalloc(1, sizeof(*c));

	c->max_n = max_entries > 0 ? max_entries : 1;
	c->max_bytes = max_bytes;
	c->nbuckets = 16;
	while (c->nbuckets < c->max_n)
		c->nbuckets *= 2;
	c->tab = xcalloc(c->nbuckets, sizeof(*c->tab));
	return c;
}

uint32_t
dns_cache_ttl(const struct dns_answer *a)
{
	uint32_t ttl = DNS_CACHE_MAX_TTL;

	switch (a->status) {
	case DNS_OK:
		for (size_t i = 0; i < a->n; i++) {
			/* RFC 2181 8: a TTL with the top bit set is 0. */
			uint32_t t = a->rr[i].ttl > 0x7fffffffu ? 0 :
			    a->rr[i].ttl;

			if (t < ttl)
				ttl = t;
		}
		return a->n > 0 ? ttl : 0;
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		if (!a->has_soa || a->neg_ttl > 0x7fffffffu)
			return 0;
		return a->neg_ttl < DNS_CACHE_MAX_NEG_TTL ? a->neg_ttl :
		    DNS_CACHE_MAX_NEG_TTL;
	default:
		return 0;
	}
}

/* The key: the name folded to lower case, without its final dot. */
static bool
cache_key(const char *name, char *out)
{
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len >= DNS_NAME_SIZE)
		return false;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ?
		    name[i] + 32 : name[i]);
	out[len] = '\0';
	return true;
}

static size_t
cache_hash(const struct dns_cache *c, const char *key, int qtype)
{
	uint32_t h = 2166136261u ^ (uint32_t)qtype;

	for (const char *p = key; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h & (c->nbuckets - 1);
}

static struct cache_ent **
cache_find(struct dns_cache *c, const char *key, int qtype)
{
	struct cache_ent **pp = &c->tab[cache_hash(c, key, qtype)];

	for (; *pp != NULL; pp = &(*pp)->hnext)
		if ((*pp)->qtype == qtype && strcmp((*pp)->name, key) == 0)
			break;
	return pp;
}

static void
lru_unlink(struct dns_cache *c, struct cache_ent *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
lru_push(struct dns_cache *c, struct cache_ent *e)
{
	e->next = c->head;
	e->prev = NULL;
	if (c->head != NULL)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

/* Removes the entry *pp points at (its hash chain link). */
static void
cache_drop(struct dns_cache *c, struct cache_ent **pp)
{
	struct cache_ent *e = *pp;

	*pp = e->hnext;
	lru_unlink(c, e);
	c->n--;
	c->bytes -= e->bytes;
	dns_answer_clear(e->ans);
	free(e->ans);
	free(e);
}

/* A deep copy of the first a->n records of a (records past n untouched
   in dst, which is zeroed first). */
static void
answer_copy(struct dns_answer *dst, const struct dns_answer *a)
{
	memset(dst, 0, sizeof(*dst));
	dst->status = a->status;
	dst->rcode = a->rcode;
	dst->has_soa = a->has_soa;
	dst->neg_ttl = a->neg_ttl;
	dst->n = a->n;
	for (size_t i = 0; i < a->n; i++) {
		dst->rr[i] = a->rr[i];
		if (a->rr[i].txt != NULL) {
			dst->rr[i].txt = xmalloc(a->rr[i].txt_len + 1);
			memcpy(dst->rr[i].txt, a->rr[i].txt, a->rr[i].txt_len);
			dst->rr[i].txt[a->rr[i].txt_len] = '\0';
		}
	}
}

void
dns_cache_put(struct dns_cache *c, const char *name, int qtype,
    const struct dns_answer *a, double now)
{
	char key[DNS_NAME_SIZE];
	struct cache_ent **pp, *e;
	uint32_t ttl = dns_cache_ttl(a);
	size_t bytes = sizeof(*e) + sizeof(*a);

	if (ttl == 0 || !cache_key(name, key))
		return;
	for (size_t i = 0; i < a->n; i++)
		bytes += a->rr[i].txt_len + 1;
	/* One answer may take at most an eighth of the budget. */
	if (bytes > c->max_bytes / 8)
		return;
	pp = cache_find(c, key, qtype);
	if (*pp != NULL)
		cache_drop(c, pp);
	while (c->tail != NULL && (c->n >= c->max_n ||
	    c->bytes + bytes > c->max_bytes))
		cache_drop(c, cache_find(c, c->tail->name, c->tail->qtype));
	e = xcalloc(1, sizeof(*e));
	memcpy(e->name, key, sizeof(key));
	e->qtype = qtype;
	e->expires = now + ttl;
	e->bytes = bytes;
	e->ans = xmalloc(sizeof(*e->ans));
	answer_copy(e->ans, a);
	pp = &c->tab[cache_hash(c, key, qtype)];
	e->hnext = *pp;
	*pp = e;
	lru_push(c, e);
	c->n++;
	c->bytes += bytes;
}

bool
dns_cache_get(struct dns_cache *c, const char *name, int qtype, double now,
    struct dns_answer *out)
{
	char key[DNS_NAME_SIZE];
	struct cache_ent **pp, *e;
	uint32_t left;

	if (!cache_key(name, key))
		return false;
	pp = cache_find(c, key, qtype);
	if ((e = *pp) == NULL)
		return false;
	if (now >= e->expires) {
		cache_drop(c, pp);
		return false;
	}
	lru_unlink(c, e);
	lru_push(c, e);
	answer_copy(out, e->ans);
	left = (uint32_t)(e->expires - now);
	for (size_t i = 0; i < out->n; i++)
		out->rr[i].ttl = left;
	if (out->has_soa)
		out->neg_ttl = left;
	return true;
}

size_t
dns_cache_count(const struct dns_cache *c)
{
	return c->n;
}

size_t
dns_cache_bytes(const struct dns_cache *c)
{
	return c->bytes;
}

void
dns_cache_free(struct dns_cache **cp)
{
	struct dns_cache *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	while (c->head != NULL)
		cache_drop(c, cache_find(c, c->head->name, c->head->qtype));
	free(c->tab);
	free(c);
}

/* ---- the resolver on libev ---- */

struct dns_sock {
	ev_io io;
	struct dns_resolver *r;
	struct dns_sock *next;
};

struct query;
struct mx_job;

struct dns_resolver {
	struct ev_loop *loop;
	ares_channel ch;
	ev_timer timer;
	struct dns_sock *socks;
	bool freeing;
	/* Results waiting for the next loop iteration (never delivered from
	   inside the call that asked). */
	struct query *deferred_q;
	struct mx_job *deferred_mx;
	struct dns_cache *cache;        /* NULL: no caching */
};

static void rearm_timer(struct dns_resolver *r);

static void
sock_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dns_sock *s = (struct dns_sock *)w;
	struct dns_resolver *r = s->r;
	int fd = w->fd;

	ares_process_fd(r->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	rearm_timer(r);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dns_resolver *r = w->data;

	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_timer(r);
}

static void
rearm_timer(struct dns_resolver *r)
{
	struct timeval tv, *tvp;

	if (r->freeing)
		return;
	ev_timer_stop(r->loop, &r->timer);
	tvp = ares_timeout(r->ch, NULL, &tv);
	if (tvp == NULL)
		return;
	ev_timer_set(&r->timer, (double)tvp->tv_sec + tvp->tv_usec / 1e6 + 0.001,
	    0.);
	ev_timer_start(r->loop, &r->timer);
}

static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;
	struct dns_sock **pp, *s;
	int ev = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	for (pp = &r->socks; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->io.fd == fd)
			break;
	s = *pp;
	if (ev == 0) {
		if (s != NULL) {
			ev_io_stop(r->loop, &s->io);
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->r = r;
		s->next = r->socks;
		r->socks = s;
		ev_io_init(&s->io, sock_io_cb, fd, ev);
	} else {
		ev_io_stop(r->loop, &s->io);
		ev_io_set(&s->io, fd, ev);
	}
	ev_io_start(r->loop, &s->io);
}

struct dns_resolver *
dns_resolver_new(struct ev_loop *loop, const char *servers,
    unsigned timeout_ms, unsigned tries, char *err, size_t errlen)
{
	static bool lib_init;
	struct dns_resolver *r;
	struct ares_options opt;
	int rc;

	if (!lib_init) {
		rc = ares_library_init(ARES_LIB_INIT_ALL);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
			return NULL;
		}
		lib_init = true;
	}
	r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	memset(&opt, 0, sizeof(opt));
	opt.sock_state_cb = sock_state_cb;
	opt.sock_state_cb_data = r;
	opt.timeout = timeout_ms > 0 ? (int)timeout_ms : 3000;
	opt.tries = tries > 0 ? (int)tries : 3;
	opt.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	rc = ares_init_options(&r->ch, &opt, ARES_OPT_SOCK_STATE_CB |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		free(r);
		return NULL;
	}
	if (servers != NULL && servers[0] != '\0') {
		char *s = xstrdup(servers), *d = s;

		/* c-ares wants "a:1,b:2" without blanks. */
		for (const char *p = servers; *p != '\0'; p++)
			if (*p != ' ' && *p != '\t')
				*d++ = *p;
		*d = '\0';
		rc = ares_set_servers_ports_csv(r->ch, s);
		free(s);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errlen, "dns_servers: %s", ares_strerror(rc));
			ares_destroy(r->ch);
			free(r);
			return NULL;
		}
	}
	ev_timer_init(&r->timer, timer_cb, 1., 0.);
	r->timer.data = r;
	return r;
}

struct query {
	struct dns_resolver *r;
	int qtype;
	dns_query_cb *cb;
	void *arg;
	bool issuing;               /* inside ares_query */
	struct dns_answer *ans;     /* kept while deferred */
	char name[DNS_NAME_SIZE];   /* the cache's key (when it has one) */
	ev_idle idle;
	struct query *next, **prevp;
};

static void
query_fire(struct query *q)
{
	q->cb(q->arg, q->ans);
	dns_answer_clear(q->ans);
	free(q->ans);
	free(q);
}

static void
query_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct query *q = w->data;

	ev_idle_stop(loop, w);
	*q->prevp = q->next;
	if (q->next != NULL)
		q->next->prevp = q->prevp;
	query_fire(q);
}

/* Delivers q's answer on the next loop iteration. */
static void
defer_query(struct query *q)
{
	struct dns_resolver *r = q->r;

	ev_idle_init(&q->idle, query_idle_cb);
	q->idle.data = q;
	q->next = r->deferred_q;
	if (q->next != NULL)
		q->next->prevp = &q->next;
	q->prevp = &r->deferred_q;
	r->deferred_q = q;
	ev_idle_start(r->loop, &q->idle);
}

static void
query_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct query *q = arg;
	struct dns_answer *a = xmalloc(sizeof(*a));
	const char *err;

	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
		memset(a, 0, sizeof(*a));
		a->status = DNS_CANCELLED;
	} else if (abuf != NULL && alen > 0) {
		if (dns_answer_parse(abuf, (size_t)alen, q->qtype, a, &err) < 0)
			log_debug("dns bad-answer reason=\"%s\"", err);
	} else {
		memset(a, 0, sizeof(*a));
		a->status = status == ARES_ENOTFOUND ? DNS_NXDOMAIN :
		    status == ARES_ENODATA ? DNS_NODATA : DNS_TEMPFAIL;
	}
	q->ans = a;
	if (q->r->cache != NULL && !q->r->freeing)
		dns_cache_put(q->r->cache, q->name, q->qtype, a,
		    ev_now(q->r->loop));
	if (q->issuing && !q->r->freeing) {
		defer_query(q);
		return;
	}
	query_fire(q);
}

int
dns_query(struct dns_resolver *r, const char *name, int qtype,
    dns_query_cb *cb, void *arg)
{
	struct query *q;

	if (r->freeing || !dns_is_valid_name(name))
		return -1;
	q = xcalloc(1, sizeof(*q));
	q->r = r;
	q->qtype = qtype;
	q->cb = cb;
	q->arg = arg;
	str_copy(q->name, name, sizeof(q->name));
	if (r->cache != NULL) {
		struct dns_answer *a = xmalloc(sizeof(*a));

		if (dns_cache_get(r->cache, name, qtype, ev_now(r->loop), a)) {
			q->ans = a;
			defer_query(q);
			return 0;
		}
		free(a);
	}
	/* c-ares calls back from inside ares_query on some errors; query_done
	   then defers the result to the next loop iteration. q is only read
	   here while it may still be alive. */
	q->issuing = true;
	ares_query(r->ch, name, 1 /* IN */, qtype, query_done, q);
	if (q->ans == NULL)
		q->issuing = false;
	rearm_timer(r);
	return 0;
}

void
dns_resolver_enable_cache(struct dns_resolver *r)
{
	if (r->cache == NULL)
		r->cache = dns_cache_new(DNS_CACHE_ENTRIES, DNS_CACHE_BYTES);
}

/* ---- MX resolution: MX, then A and AAAA of each exchange ---- */

struct mx_job {
	struct dns_resolver *r;
	dns_mx_cb *cb;
	void *arg;
	struct dns_mx_result res;
	unsigned pending;
	bool started;                   /* all address queries issued */
	ev_idle defer;                  /* delivers results never inline */
	struct mx_job *next, **prevp;   /* in r->deferred_mx while deferred */
	/* per host: addresses by family as they come */
	struct {
		size_t n4, n6;
		unsigned char a4[DNS_MAX_ADDRS][4];
		unsigned char a6[DNS_MAX_ADDRS][16];
		enum dns_status st4, st6;
	} h[DNS_MAX_MX];
};

struct addr_q {
	struct mx_job *job;
	size_t host;
	int family;
};

static void
mx_finish_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct mx_job *j = w->data;

	ev_idle_stop(loop, w);
	*j->prevp = j->next;
	if (j->next != NULL)
		j->next->prevp = j->prevp;
	j->cb(j->arg, &j->res);
	free(j);
}

static void
mx_deliver(struct mx_job *j)
{
	struct dns_mx_result *res = &j->res;
	bool any_addr = false, any_temp = false;

	for (size_t i = 0; i < res->nhosts; i++) {
		struct dns_mx_host *h = &res->hosts[i];

		h->naddrs = 0;
		for (size_t k = 0; k < j->h[i].n4 && h->naddrs < DNS_MAX_ADDRS;
		    k++) {
			h->addrs[h->naddrs].family = AF_INET;
			memcpy(h->addrs[h->naddrs].addr, j->h[i].a4[k], 4);
			h->naddrs++;
		}
		for (size_t k = 0; k < j->h[i].n6 && h->naddrs < DNS_MAX_ADDRS;
		    k++) {
			h->addrs[h->naddrs].family = AF_INET6;
			memcpy(h->addrs[h->naddrs].addr, j->h[i].a6[k], 16);
			h->naddrs++;
		}
		if (h->naddrs > 0)
			h->status = DNS_OK;
		else if (j->h[i].st4 == DNS_NXDOMAIN ||
		    j->h[i].st6 == DNS_NXDOMAIN)
			h->status = DNS_NXDOMAIN;
		else if (j->h[i].st4 == DNS_NODATA && j->h[i].st6 == DNS_NODATA)
			h->status = DNS_NODATA;
		else
			h->status = j->h[i].st4 != DNS_NODATA ? j->h[i].st4 :
			    j->h[i].st6;
		if (h->naddrs > 0)
			any_addr = true;
		if (h->status == DNS_TEMPFAIL || h->status == DNS_BADANSWER ||
		    h->status == DNS_CANCELLED)
			any_temp = true;
	}
	if (res->status == DNS_OK && !res->null_mx && !any_addr) {
		/* Nothing to connect to: temporary if any lookup was. */
		if (any_temp)
			res->status = DNS_TEMPFAIL;
		else if (res->implicit)
			res->status = res->hosts[0].status == DNS_NXDOMAIN ?
			    DNS_NXDOMAIN : DNS_NODATA;
		else
			res->status = DNS_NODATA;
	}
	if (j->r->freeing) {
		/* Inside dns_resolver_free: no loop iteration will follow. */
		j->res.status = DNS_CANCELLED;
		j->cb(j->arg, &j->res);
		free(j);
		return;
	}
	ev_idle_init(&j->defer, mx_finish_cb);
	j->defer.data = j;
	j->next = j->r->deferred_mx;
	if (j->next != NULL)
		j->next->prevp = &j->next;
	j->prevp = &j->r->deferred_mx;
	j->r->deferred_mx = j;
	ev_idle_start(j->r->loop, &j->defer);
}

static void
addr_done(void *arg, const struct dns_answer *a)
{
	struct addr_q *q = arg;
	struct mx_job *j = q->job;
	size_t i = q->host;

	if (q->family == AF_INET) {
		j->h[i].st4 = a->status;
		for (size_t k = 0; k < a->n && j->h[i].n4 < DNS_MAX_ADDRS; k++)
			memcpy(j->h[i].a4[j->h[i].n4++], a->rr[k].addr, 4);
	} else {
		j->h[i].st6 = a->status;
		for (size_t k = 0; k < a->n && j->h[i].n6 < DNS_MAX_ADDRS; k++)
			memcpy(j->h[i].a6[j->h[i].n6++], a->rr[k].addr, 16);
	}
	free(q);
	if (--j->pending == 0 && j->started)
		mx_deliver(j);
}

static void
mx_lookup_addrs(struct mx_job *j)
{
	j->pending = 1;     /* held while issuing, so no early delivery */
	j->started = false;
	for (size_t i = 0; i < j->res.nhosts; i++) {
		for (int f = 0; f < 2; f++) {
			struct addr_q *q = xmalloc(sizeof(*q));

			q->job = j;
			q->host = i;
			q->family = f == 0 ? AF_INET : AF_INET6;
			j->pending++;
			if (dns_query(j->r, j->res.hosts[i].name,
			    f == 0 ? DNS_T_A : DNS_T_AAAA, addr_done, q) < 0) {
				j->pending--;
				free(q);
				if (f == 0)
					j->h[i].st4 = DNS_NXDOMAIN;
				else
					j->h[i].st6 = DNS_NXDOMAIN;
			}
		}
	}
	j->started = true;
	if (--j->pending == 0)
		mx_deliver(j);
}

static void
mx_done(void *arg, const struct dns_answer *ans)
{
	struct mx_job *j = arg;
	struct dns_answer a = *ans;     /* shallow: only sorted, not freed */

	switch (ans->status) {
	case DNS_OK:
		if (dns_answer_is_null_mx(ans)) {
			j->res.null_mx = true;
			j->res.status = DNS_OK;
			mx_deliver(j);
			return;
		}
		dns_answer_sort_mx(&a, true);
		for (size_t i = 0; i < a.n && j->res.nhosts < DNS_MAX_MX; i++) {
			/* An empty exchange among real ones is meaningless. */
			if (a.rr[i].name[0] == '\0')
				continue;
			str_copy(j->res.hosts[j->res.nhosts].name, a.rr[i].name,
			    DNS_NAME_SIZE);
			j->res.hosts[j->res.nhosts++].pref = a.rr[i].pref;
		}
		j->res.status = DNS_OK;
		if (j->res.nhosts == 0) {
			j->res.status = DNS_BADANSWER;
			mx_deliver(j);
			return;
		}
		mx_lookup_addrs(j);
		return;
	case DNS_NODATA:
		/* RFC 5321 5.1: no MX, the domain itself is the exchange. */
		j->res.implicit = true;
		j->res.status = DNS_OK;
		j->res.nhosts = 1;
		mx_lookup_addrs(j);
		return;
	default:
		j->res.status = ans->status;
		mx_deliver(j);
		return;
	}
}

static struct mx_job *
mx_job_new(struct dns_resolver *r, const char *name, dns_mx_cb *cb, void *arg)
{
	struct mx_job *j = xcalloc(1, sizeof(*j));
	size_t len;

	j->r = r;
	j->cb = cb;
	j->arg = arg;
	str_copy(j->res.hosts[0].name, name, DNS_NAME_SIZE);
	len = strlen(j->res.hosts[0].name);
	if (len > 0 && j->res.hosts[0].name[len - 1] == '.')
		j->res.hosts[0].name[len - 1] = '\0';
	return j;
}

int
dns_resolve_mx(struct dns_resolver *r, const char *domain, dns_mx_cb *cb,
    void *arg)
{
	struct mx_job *j;

	if (!dns_is_valid_name(domain))
		return -1;
	j = mx_job_new(r, domain, cb, arg);
	return dns_query(r, domain, DNS_T_MX, mx_done, j);
}

int
dns_resolve_host(struct dns_resolver *r, const char *host, dns_mx_cb *cb,
    void *arg)
{
	struct mx_job *j;

	if (!dns_is_valid_name(host))
		return -1;
	j = mx_job_new(r, host, cb, arg);
	j->res.implicit = true;
	j->res.status = DNS_OK;
	j->res.nhosts = 1;
	mx_lookup_addrs(j);
	return 0;
}

void
dns_resolver_free(struct dns_resolver **rp)
{
	struct dns_resolver *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	r->freeing = true;
	ev_timer_stop(r->loop, &r->timer);
	/* Calls every pending callback with ARES_EDESTRUCTION. */
	ares_destroy(r->ch);
	while (r->deferred_q != NULL) {
		struct query *q = r->deferred_q;

		ev_idle_stop(r->loop, &q->idle);
		r->deferred_q = q->next;
		if (q->next != NULL)
			q->next->prevp = &r->deferred_q;
		dns_answer_clear(q->ans);
		q->ans->status = DNS_CANCELLED;
		query_fire(q);
	}
	while (r->deferred_mx != NULL) {
		struct mx_job *j = r->deferred_mx;

		ev_idle_stop(r->loop, &j->defer);
		r->deferred_mx = j->next;
		if (j->next != NULL)
			j->next->prevp = &r->deferred_mx;
		j->res.status = DNS_CANCELLED;
		j->cb(j->arg, &j->res);
		free(j);
	}
	dns_cache_free(&r->cache);
	while (r->socks != NULL) {
		struct dns_sock *s = r->socks;

		r->socks = s->next;
		ev_io_stop(r->loop, &s->io);
		free(s);
	}
	free(r);
}
