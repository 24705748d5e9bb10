/* Unit tests for common/dns.c: the pure answer decoder on canned messages
   (MX sorting, null MX, TXT joining, NXDOMAIN/SERVFAIL, compression loops,
   every truncation of a valid answer), and the resolver in a libev loop
   against a tiny in-test UDP responder on a loopback port (MX with
   addresses, implicit MX, null MX, NXDOMAIN, a silent server). The answer
   cache on a fake clock (TTL policy, expiry, bounds against hostile answers)
   and through the resolver (a second lookup never reaches the server). A
   guard timer only prevents a hang; nothing asserts on timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns.h"
#include "log.h"
#include "util.h"

/* ---- building DNS messages ---- */

struct msg {
	unsigned char b[4096];
	size_t len;
};

static void
put8(struct msg *m, unsigned v)
{
	m->b[m->len++] = (unsigned char)v;
}

static void
put16(struct msg *m, unsigned v)
{
	put8(m, v >> 8);
	put8(m, v & 0xff);
}

static void
put32(struct msg *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xffff);
}

static void
put_name(struct msg *m, const char *name)
{
	const char *p = name;

	while (*p != '\0') {
		const char *dot = strchr(p, '.');
		size_t l = dot != NULL ? (size_t)(dot - p) : strlen(p);

		put8(m, (unsigned)l);
		memcpy(m->b + m->len, p, l);
		m->len += l;
		p += l;
		if (*p == '.')
			p++;
	}
	put8(m, 0);
}

static void
header(struct msg *m, unsigned id, unsigned rcode, unsigned qd, unsigned an)
{
	m->len = 0;
	put16(m, id);
	put16(m, 0x8180 | rcode);
	put16(m, qd);
	put16(m, an);
	put16(m, 0);
	put16(m, 0);
}

static void
question(struct msg *m, const char *name, unsigned type)
{
	put_name(m, name);
	put16(m, type);
	put16(m, 1);
}

static void
rr_mx(struct msg *m, const char *owner, unsigned pref, const char *host)
{
	struct msg t = { .len = 0 };

	put_name(m, owner);
	put16(m, DNS_T_MX);
	put16(m, 1);
	put32(m, 300);
	put16(&t, pref);
	put_name(&t, host);
	put16(m, (unsigned)t.len);
	memcpy(m->b + m->len, t.b, t.len);
	m->len += t.len;
}

static void
rr_a(struct msg *m, const char *owner, const char *ip)
{
	struct in_addr a;

	inet_pton(AF_INET, ip, &a);
	put_name(m, owner);
	put16(m, DNS_T_A);
	put16(m, 1);
	put32(m, 300);
	put16(m, 4);
	memcpy(m->b + m->len, &a, 4);
	m->len += 4;
}

/* ---- the decoder ---- */

static void
test_parse_mx_sorted(void **state)
{
	struct msg m;
	struct dns_answer a;
	const char *err;

	header(&m, 1, 0, 1, 3);
	question(&m, "example.test", DNS_T_MX);
	rr_mx(&m, "example.test", 20, "mx2.example.test");
	rr_mx(&m, "example.test", 10, "mx1.example.test");
	rr_mx(&m, "example.test", 30, "mx3.example.test");
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_MX, &a, &err), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 3);
	assert_false(dns_answer_is_null_mx(&a));
	dns_answer_sort_mx(&a, true);
	assert_string_equal(a.rr[0].name, "mx1.example.test");
	assert_int_equal(a.rr[0].pref, 10);
	assert_string_equal(a.rr[1].name, "mx2.example.test");
	assert_string_equal(a.rr[2].name, "mx3.example.test");
	dns_answer_clear(&a);
}

static void
test_parse_null_mx(void **state)
{
	struct msg m;
	struct dns_answer a;
	const char *err;

	header(&m, 1, 0, 1, 1);
	question(&m, "nullmx.test", DNS_T_MX);
	rr_mx(&m, "nullmx.test", 0, "");
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_MX, &a, &err), 0);
	assert_true(dns_answer_is_null_mx(&a));
	dns_answer_clear(&a);
}

static void
test_parse_rcodes(void **state)
{
	struct msg m;
	struct dns_answer a;
	const char *err;

	header(&m, 1, 3, 1, 0);
	question(&m, "nx.test", DNS_T_MX);
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_MX, &a, &err), 0);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	header(&m, 1, 2, 1, 0);
	question(&m, "sf.test", DNS_T_MX);
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_MX, &a, &err), 0);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	/* NOERROR with only an A record: no MX data. */
	header(&m, 1, 0, 1, 1);
	question(&m, "nd.test", DNS_T_MX);
	rr_a(&m, "nd.test", "192.0.2.1");
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_MX, &a, &err), 0);
	assert_int_equal(a.status, DNS_NODATA);
	dns_answer_clear(&a);
}

static void
test_parse_txt(void **state)
{
	struct msg m;
	struct dns_answer a;
	const char *err;

	header(&m, 1, 0, 1, 1);
	question(&m, "t.test", DNS_T_TXT);
	put_name(&m, "t.test");
	put16(&m, DNS_T_TXT);
	put16(&m, 1);
	put32(&m, 60);
	put16(&m, 1 + 6 + 1 + 4);
	put8(&m, 6);
	memcpy(m.b + m.len, "v=spf1", 6);
	m.len += 6;
	put8(&m, 4);
	memcpy(m.b + m.len, " -al", 4);
	m.len += 4;
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_TXT, &a, &err), 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.rr[0].txt_len, 10);
	assert_memory_equal(a.rr[0].txt, "v=spf1 -al", 10);
	dns_answer_clear(&a);
}

static void
test_parse_hostile(void **state)
{
	struct msg m;
	struct dns_answer a;
	const char *err;
	size_t full;

	/* A compression pointer to itself. */
	header(&m, 1, 0, 1, 1);
	question(&m, "loop.test", DNS_T_MX);
	put16(&m, 0xc000 | (unsigned)m.len);
	put16(&m, DNS_T_MX);
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_MX, &a, &err), -1);
	dns_answer_clear(&a);

	/* An answer count far above what is there. */
	header(&m, 1, 0, 1, 60000);
	question(&m, "many.test", DNS_T_MX);
	rr_mx(&m, "many.test", 1, "mx.many.test");
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_MX, &a, &err), -1);
	dns_answer_clear(&a);

	/* A bad byte in the exchange: that record is skipped. */
	header(&m, 1, 0, 1, 2);
	question(&m, "bad.test", DNS_T_MX);
	rr_mx(&m, "bad.test", 1, "m x.bad.test");
	rr_mx(&m, "bad.test", 2, "mx.bad.test");
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_MX, &a, &err), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.rr[0].name, "mx.bad.test");
	dns_answer_clear(&a);

	/* Every truncation of a valid answer is refused cleanly. */
	header(&m, 1, 0, 1, 2);
	question(&m, "cut.test", DNS_T_MX);
	rr_mx(&m, "cut.test", 1, "mx1.cut.test");
	rr_mx(&m, "cut.test", 2, "mx2.cut.test");
	full = m.len;
	for (size_t l = 0; l < full; l++) {
		assert_int_equal(dns_answer_parse(m.b, l, DNS_T_MX, &a, &err), -1);
		dns_answer_clear(&a);
	}
	/* More records than kept: bounded. */
	header(&m, 1, 0, 1, 40);
	question(&m, "big.test", DNS_T_A);
	for (int i = 0; i < 40; i++)
		rr_a(&m, "big.test", "192.0.2.7");
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_A, &a, &err), 0);
	assert_int_equal(a.n, DNS_MAX_RR);
	dns_answer_clear(&a);
}


/* ---- the answer cache, on a fake clock ---- */

static void
soa(struct msg *m, const char *owner, uint32_t ttl, uint32_t minimum)
{
	struct msg t = { .len = 0 };

	put_name(m, owner);
	put16(m, 6);
	put16(m, 1);
	put32(m, ttl);
	put_name(&t, "ns.test");
	put_name(&t, "hostmaster.test");
	for (int i = 0; i < 4; i++)
		put32(&t, 3600);
	put32(&t, minimum);
	put16(m, (unsigned)t.len);
	memcpy(m->b + m->len, t.b, t.len);
	m->len += t.len;
}

static void
test_parse_soa(void **state)
{
	struct msg m;
	struct dns_answer a;
	const char *err;

	/* NXDOMAIN: the smaller of the SOA's TTL and its minimum. */
	header(&m, 1, 3, 1, 0);
	m.b[9] = 1;     /* NSCOUNT */
	question(&m, "nx.test", DNS_T_TXT);
	soa(&m, "test", 600, 120);
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_TXT, &a, &err), 0);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	assert_true(a.has_soa);
	assert_int_equal(a.neg_ttl, 120);
	assert_int_equal(dns_cache_ttl(&a), 120);
	dns_answer_clear(&a);
	/* NODATA with an SOA whose TTL is the smaller. */
	header(&m, 1, 0, 1, 0);
	m.b[9] = 1;
	question(&m, "nd.test", DNS_T_TXT);
	soa(&m, "test", 30, 900);
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_TXT, &a, &err), 0);
	assert_int_equal(a.status, DNS_NODATA);
	assert_int_equal(a.neg_ttl, 30);
	dns_answer_clear(&a);
	/* A truncated SOA: the answer stands, without a negative TTL. */
	header(&m, 1, 3, 1, 0);
	m.b[9] = 1;
	question(&m, "nx.test", DNS_T_TXT);
	soa(&m, "test", 600, 120);
	m.len -= 3;
	assert_int_equal(dns_answer_parse(m.b, m.len, DNS_T_TXT, &a, &err), 0);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	assert_false(a.has_soa);
	assert_int_equal(dns_cache_ttl(&a), 0);
	dns_answer_clear(&a);
}

/* An answer of n A records with the given TTLs. */
static void
fake_a(struct dns_answer *a, size_t n, const uint32_t *ttls)
{
	memset(a, 0, sizeof(*a));
	a->status = n > 0 ? DNS_OK : DNS_NODATA;
	a->n = n;
	for (size_t i = 0; i < n; i++) {
		a->rr[i].type = DNS_T_A;
		a->rr[i].family = AF_INET;
		a->rr[i].ttl = ttls[i];
		a->rr[i].addr[0] = 127;
		a->rr[i].addr[3] = (unsigned char)(i + 1);
	}
}

static void
test_cache_ttl_policy(void **state)
{
	struct dns_answer a;
	uint32_t t[3] = { 300, 60, 900 };

	fake_a(&a, 3, t);
	assert_int_equal(dns_cache_ttl(&a), 60);            /* the minimum */
	t[1] = 0;
	fake_a(&a, 3, t);
	assert_int_equal(dns_cache_ttl(&a), 0);             /* TTL 0 */
	t[0] = t[1] = t[2] = 0x7fffffff;
	fake_a(&a, 3, t);
	assert_int_equal(dns_cache_ttl(&a), DNS_CACHE_MAX_TTL);
	t[0] = t[1] = t[2] = 0x80000000u;                   /* RFC 2181 8 */
	fake_a(&a, 3, t);
	assert_int_equal(dns_cache_ttl(&a), 0);
	fake_a(&a, 0, t);
	assert_int_equal(dns_cache_ttl(&a), 0);             /* no SOA */
	a.has_soa = true;
	a.neg_ttl = 86400;
	assert_int_equal(dns_cache_ttl(&a), DNS_CACHE_MAX_NEG_TTL);
	memset(&a, 0, sizeof(a));
	a.status = DNS_TEMPFAIL;
	a.has_soa = true;
	a.neg_ttl = 60;
	assert_int_equal(dns_cache_ttl(&a), 0);
	a.status = DNS_BADANSWER;
	assert_int_equal(dns_cache_ttl(&a), 0);
	a.status = DNS_CANCELLED;
	assert_int_equal(dns_cache_ttl(&a), 0);
}

static void
test_cache_expiry(void **state)
{
	struct dns_cache *c = dns_cache_new(16, 1 << 20);
	struct dns_answer a, got;
	uint32_t t[2] = { 60, 120 };

	fake_a(&a, 2, t);
	dns_cache_put(c, "Host.Example.Test.", DNS_T_A, &a, 1000.);
	assert_false(dns_cache_get(c, "host.example.test", DNS_T_AAAA, 1001.,
	    &got));
	assert_true(dns_cache_get(c, "HOST.example.test", DNS_T_A, 1001.,
	    &got));
	assert_int_equal(got.status, DNS_OK);
	assert_int_equal(got.n, 2);
	assert_int_equal(got.rr[1].addr[3], 2);
	assert_int_equal(got.rr[0].ttl, 59);    /* what remains */
	dns_answer_clear(&got);
	assert_true(dns_cache_get(c, "host.example.test", DNS_T_A, 1059.5,
	    &got));
	dns_answer_clear(&got);
	assert_false(dns_cache_get(c, "host.example.test", DNS_T_A, 1060.,
	    &got));
	assert_int_equal(dns_cache_count(c), 0);
	assert_int_equal(dns_cache_bytes(c), 0);
	/* A failure is never kept, and does not replace a good answer. */
	memset(&a, 0, sizeof(a));
	a.status = DNS_TEMPFAIL;
	dns_cache_put(c, "sf.test", DNS_T_A, &a, 2000.);
	assert_false(dns_cache_get(c, "sf.test", DNS_T_A, 2000., &got));
	dns_cache_free(&c);
	assert_null(c);
}

static void
test_cache_bounds(void **state)
{
	struct dns_cache *c = dns_cache_new(8, 256 << 10);
	struct dns_answer a, got;
	uint32_t t[1] = { 3600 };
	char name[64];

	fake_a(&a, 1, t);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "h%d.test", i);
		dns_cache_put(c, name, DNS_T_A, &a, 10.);
		/* h0 stays, being the most recently used each time. */
		if (dns_cache_get(c, "h0.test", DNS_T_A, 10., &got))
			dns_answer_clear(&got);
		assert_true(dns_cache_count(c) <= 8);
	}
	assert_true(dns_cache_get(c, "h0.test", DNS_T_A, 10., &got));
	dns_answer_clear(&got);
	assert_true(dns_cache_get(c, "h99.test", DNS_T_A, 10., &got));
	dns_answer_clear(&got);
	assert_false(dns_cache_get(c, "h50.test", DNS_T_A, 10., &got));

	/* Many large TXT records: an answer bigger than an eighth of the
	   budget is not kept; the byte budget holds whatever comes. */
	memset(&a, 0, sizeof(a));
	a.status = DNS_OK;
	a.n = DNS_MAX_RR;
	for (size_t i = 0; i < a.n; i++) {
		a.rr[i].type = DNS_T_TXT;
		a.rr[i].ttl = 3600;
		a.rr[i].txt_len = DNS_TXT_MAX;
		a.rr[i].txt = xcalloc(1, DNS_TXT_MAX + 1);
	}
	dns_cache_put(c, "big.test", DNS_T_TXT, &a, 10.);
	assert_false(dns_cache_get(c, "big.test", DNS_T_TXT, 10., &got));
	a.n = 4;
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "t%d.test", i);
		dns_cache_put(c, name, DNS_T_TXT, &a, 10.);
		assert_true(dns_cache_bytes(c) <= 256 << 10);
	}
	assert_true(dns_cache_get(c, "t49.test", DNS_T_TXT, 10., &got));
	assert_int_equal(got.rr[3].txt_len, DNS_TXT_MAX);
	dns_answer_clear(&got);
	a.n = DNS_MAX_RR;
	dns_answer_clear(&a);
	dns_cache_free(&c);
}

static void
test_valid_name(void **state)
{
	char long_label[80];

	assert_true(dns_is_valid_name("example.test"));
	assert_true(dns_is_valid_name("example.test."));
	assert_true(dns_is_valid_name("_dmarc.example.test"));
	assert_false(dns_is_valid_name(""));
	assert_false(dns_is_valid_name("."));
	assert_false(dns_is_valid_name("a..b"));
	assert_false(dns_is_valid_name(".a"));
	assert_false(dns_is_valid_name("a b"));
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	assert_false(dns_is_valid_name(long_label));
}

/* ---- the resolver against an in-test UDP responder ---- */

static struct ev_loop *loop;
static int srv_fd;
static int srv_port;
static int srv_queries;      /* queries the test server saw */
static ev_io srv_io;
static ev_timer guard;

static void
answer_query(const unsigned char *q, size_t qlen, struct sockaddr_in *from)
{
	struct msg m;
	char name[256];
	size_t pos = 12, o = 0;
	unsigned type, id;

	if (qlen < 17)
		return;
	id = (unsigned)(q[0] << 8 | q[1]);
	while (pos < qlen && q[pos] != 0) {
		unsigned l = q[pos];

		if (o > 0)
			name[o++] = '.';
		memcpy(name + o, q + pos + 1, l);
		o += l;
		pos += 1 + l;
	}
	name[o] = '\0';
	type = (unsigned)(q[pos + 1] << 8 | q[pos + 2]);
	str_lower(name);
	srv_queries++;

	if (strcmp(name, "silent.test") == 0)
		return;
	if (strcmp(name, "example.test") == 0 && type == DNS_T_MX) {
		header(&m, id, 0, 1, 2);
		question(&m, name, type);
		rr_mx(&m, name, 20, "mx2.example.test");
		rr_mx(&m, name, 10, "mx1.example.test");
	} else if (strcmp(name, "nullmx.test") == 0 && type == DNS_T_MX) {
		header(&m, id, 0, 1, 1);
		question(&m, name, type);
		rr_mx(&m, name, 0, "");
	} else if (strcmp(name, "mx1.example.test") == 0 && type == DNS_T_A) {
		header(&m, id, 0, 1, 2);
		question(&m, name, type);
		rr_a(&m, name, "127.0.0.2");
		rr_a(&m, name, "127.0.0.3");
	} else if (strcmp(name, "mx2.example.test") == 0 && type == DNS_T_A) {
		header(&m, id, 0, 1, 1);
		question(&m, name, type);
		rr_a(&m, name, "127.0.0.4");
	} else if (strcmp(name, "implicit.test") == 0 && type == DNS_T_A) {
		header(&m, id, 0, 1, 1);
		question(&m, name, type);
		rr_a(&m, name, "127.0.0.5");
	} else if (strcmp(name, "implicit.test") == 0 ||
	    strncmp(name, "mx", 2) == 0) {
		header(&m, id, 0, 1, 0);        /* NODATA, with an SOA */
		m.b[9] = 1;
		question(&m, name, type);
		soa(&m, "test", 60, 60);
	} else {
		header(&m, id, 3, 1, 0);        /* NXDOMAIN */
		question(&m, name, type);
	}
	sendto(srv_fd, m.b, m.len, 0, (struct sockaddr *)from, sizeof(*from));
}

static void
srv_cb(struct ev_loop *l, ev_io *w, int revents)
{
	unsigned char q[1500];
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(srv_fd, q, sizeof(q), 0, (struct sockaddr *)&from,
	    &fl);

	if (n > 0)
		answer_query(q, (size_t)n, &from);
}

static void
guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	fail_msg("resolver test hung");
}

static int
setup(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);

	loop = ev_loop_new(EVFLAG_AUTO);
	srv_fd = socket(AF_INET, SOCK_DGRAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(srv_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(srv_fd, (struct sockaddr *)&sa, &sl);
	srv_port = ntohs(sa.sin_port);
	ev_io_init(&srv_io, srv_cb, srv_fd, EV_READ);
	ev_io_start(loop, &srv_io);
	ev_timer_init(&guard, guard_cb, 60., 0.);
	ev_timer_start(loop, &guard);
	return 0;
}

static int
teardown(void **state)
{
	ev_io_stop(loop, &srv_io);
	ev_timer_stop(loop, &guard);
	close(srv_fd);
	ev_loop_destroy(loop);
	return 0;
}

static struct dns_resolver *
resolver(unsigned timeout_ms)
{
	char servers[64], err[256];
	struct dns_resolver *r;

	snprintf(servers, sizeof(servers), "127.0.0.1:%d", srv_port);
	r = dns_resolver_new(loop, servers, timeout_ms, 1, err, sizeof(err));
	assert_non_null(r);
	return r;
}

struct got {
	int calls;
	struct dns_mx_result res;
};

static void
mx_cb(void *arg, const struct dns_mx_result *res)
{
	struct got *g = arg;

	g->calls++;
	g->res = *res;
	ev_break(loop, EVBREAK_ONE);
}

static void
resolve(struct dns_resolver *r, const char *domain, struct got *g)
{
	memset(g, 0, sizeof(*g));
	assert_int_equal(dns_resolve_mx(r, domain, mx_cb, g), 0);
	assert_int_equal(g->calls, 0);  /* never from inside the call */
	while (g->calls == 0)
		ev_run(loop, EVRUN_ONCE);
	assert_int_equal(g->calls, 1);
}

static void
ip4(const struct dns_mx_host *h, size_t i, const char *want)
{
	char s[INET6_ADDRSTRLEN];

	assert_true(i < h->naddrs);
	assert_int_equal(h->addrs[i].family, AF_INET);
	inet_ntop(AF_INET, h->addrs[i].addr, s, sizeof(s));
	assert_string_equal(s, want);
}

static void
test_resolve_mx(void **state)
{
	struct dns_resolver *r = resolver(0);
	struct got g;

	resolve(r, "example.test", &g);
	assert_int_equal(g.res.status, DNS_OK);
	assert_false(g.res.null_mx);
	assert_false(g.res.implicit);
	assert_int_equal(g.res.nhosts, 2);
	assert_string_equal(g.res.hosts[0].name, "mx1.example.test");
	assert_int_equal(g.res.hosts[0].naddrs, 2);
	ip4(&g.res.hosts[0], 0, "127.0.0.2");
	ip4(&g.res.hosts[0], 1, "127.0.0.3");
	assert_string_equal(g.res.hosts[1].name, "mx2.example.test");
	ip4(&g.res.hosts[1], 0, "127.0.0.4");

	resolve(r, "implicit.test", &g);
	assert_int_equal(g.res.status, DNS_OK);
	assert_true(g.res.implicit);
	assert_int_equal(g.res.nhosts, 1);
	assert_string_equal(g.res.hosts[0].name, "implicit.test");
	ip4(&g.res.hosts[0], 0, "127.0.0.5");

	resolve(r, "nullmx.test", &g);
	assert_int_equal(g.res.status, DNS_OK);
	assert_true(g.res.null_mx);

	resolve(r, "nowhere.test", &g);
	assert_int_equal(g.res.status, DNS_NXDOMAIN);

	assert_int_equal(dns_resolve_mx(r, "bad name", mx_cb, &g), -1);
	dns_resolver_free(&r);
	assert_null(r);
}


static void
test_resolve_cached(void **state)
{
	struct dns_resolver *r = resolver(0);
	struct got g;
	int before;

	dns_resolver_enable_cache(r);
	resolve(r, "example.test", &g);
	assert_int_equal(g.res.status, DNS_OK);
	before = srv_queries;
	/* The same lookup again: answered from the cache (MX, A and the
	   NODATA answers to AAAA, which carry an SOA), still later. */
	resolve(r, "EXAMPLE.test", &g);
	assert_int_equal(srv_queries, before);
	assert_int_equal(g.res.status, DNS_OK);
	assert_int_equal(g.res.nhosts, 2);
	assert_string_equal(g.res.hosts[0].name, "mx1.example.test");
	ip4(&g.res.hosts[0], 1, "127.0.0.3");
	/* An NXDOMAIN without an SOA is asked again. */
	resolve(r, "nowhere.test", &g);
	before = srv_queries;
	resolve(r, "nowhere.test", &g);
	assert_int_equal(g.res.status, DNS_NXDOMAIN);
	assert_int_equal(srv_queries, before + 1);
	dns_resolver_free(&r);
}

static void
test_resolve_timeout_and_cancel(void **state)
{
	struct dns_resolver *r = resolver(200);
	struct got g, g2;

	resolve(r, "silent.test", &g);
	assert_int_equal(g.res.status, DNS_TEMPFAIL);

	/* Freeing the resolver with a lookup pending calls it back once. */
	memset(&g2, 0, sizeof(g2));
	assert_int_equal(dns_resolve_mx(r, "silent.test", mx_cb, &g2), 0);
	dns_resolver_free(&r);
	assert_int_equal(g2.calls, 1);
	assert_int_equal(g2.res.status, DNS_CANCELLED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_mx_sorted),
		cmocka_unit_test(test_parse_null_mx),
		cmocka_unit_test(test_parse_rcodes),
		cmocka_unit_test(test_parse_txt),
		cmocka_unit_test(test_parse_hostile),
		cmocka_unit_test(test_valid_name),
		cmocka_unit_test(test_parse_soa),
		cmocka_unit_test(test_cache_ttl_policy),
		cmocka_unit_test(test_cache_expiry),
		cmocka_unit_test(test_cache_bounds),
		cmocka_unit_test_setup_teardown(test_resolve_cached, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_resolve_mx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_timeout_and_cancel,
		    setup, teardown),
	};

	log_init("test_dns", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
