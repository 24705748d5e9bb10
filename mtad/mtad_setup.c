/* mtad_setup: mtad's start and stop hooks for daemon_main. Sets up what the
   engine needs (the store, the DNS resolver, client TLS contexts, the
   relayhost and its credentials, our own listening addresses for the loop
   guard, the queue's wake file, the SRS key) and tears it down. No
   delivery logic here: that is engine.c and smtp_client.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ifaddrs.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <sodium.h>

#include "daemon.h"
#include "fswatch.h"
#include "log.h"
#include "mtad.h"
#include "util.h"

struct mtad_state {
	struct mtad m;
	struct fswatch *wake;
	int lock_fd;                /* data_dir/mtad.lock, held while running */
};

/* One mtad per data_dir: two would deliver the same messages. */
static int
take_lock(struct mtad_state *s, char *err, size_t errlen)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/mtad.lock", s->m.cfg->data_dir);
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (s->lock_fd < 0) {
		snprintf(err, errlen, "cannot open %.300s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "another mtad is running on %.300s "
		    "(%.300s is locked)", s->m.cfg->data_dir, path);
		close(s->lock_fd);
		s->lock_fd = -1;
		return -1;
	}
	return 0;
}

/* ---- the loop guard: our own listening addresses ---- */

static void
add_listen(struct mtad *m, const char *list)
{
	struct listen_addr *a = NULL;
	size_t n = 0;
	char err[256];

	if (list == NULL || list[0] == '\0' ||
	    listen_list_parse(list, &a, &n, err, sizeof(err)) < 0)
		return;
	m->listens = xrealloc(m->listens, (m->nlistens + n) *
	    sizeof(*m->listens));
	for (size_t i = 0; i < n; i++) {
		struct mtad_listen *l = &m->listens[m->nlistens];

		memset(l, 0, sizeof(*l));
		l->port = (uint16_t)atoi(a[i].port);
		if (inet_pton(AF_INET, a[i].host, l->addr) == 1)
			l->family = AF_INET;
		else if (inet_pton(AF_INET6, a[i].host, l->addr) == 1)
			l->family = AF_INET6;
		else if (strcmp(a[i].host, "localhost") == 0) {
			l->family = AF_INET;
			inet_pton(AF_INET, "127.0.0.1", l->addr);
		} else
			continue;
		l->any = (l->family == AF_INET &&
		    memcmp(l->addr, "\0\0\0\0", 4) == 0) ||
		    (l->family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(
		    (struct in6_addr *)l->addr));
		m->nlistens++;
	}
	free(a);
}

/* Whether addr is configured on this machine (for wildcard listeners). */
static bool
is_local_address(int family, const unsigned char *addr)
{
	struct ifaddrs *ifa, *p;
	bool found = false;

	if (family == AF_INET && addr[0] == 127)
		return true;
	if (family == AF_INET6 && IN6_IS_ADDR_LOOPBACK((struct in6_addr *)addr))
		return true;
	if (getifaddrs(&ifa) < 0)
		return false;
	for (p = ifa; p != NULL && !found; p = p->ifa_next) {
		if (p->ifa_addr == NULL || p->ifa_addr->sa_family != family)
			continue;
		if (family == AF_INET)
			found = memcmp(&((struct sockaddr_in *)p->ifa_addr)->
			    sin_addr, addr, 4) == 0;
		else
			found = memcmp(&((struct sockaddr_in6 *)p->ifa_addr)->
			    sin6_addr, addr, 16) == 0;
	}
	freeifaddrs(ifa);
	return found;
}

bool
mtad_is_own_address(const struct mtad *m, int family,
    const unsigned char *addr, uint16_t port)
{
	for (size_t i = 0; i < m->nlistens; i++) {
		const struct mtad_listen *l = &m->listens[i];

		if (l->port != port)
			continue;
		if (l->any) {
			if (is_local_address(family, addr))
				return true;
			continue;
		}
		if (l->family == family && memcmp(l->addr, addr,
		    family == AF_INET ? 4 : 16) == 0)
			return true;
	}
	return false;
}

/* ---- TLS and the relayhost ---- */

static SSL_CTX *
client_ctx(bool verify, const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS client context");
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!verify) {
		/* Opportunistic TLS toward MX hosts (RFC 7435): encrypt when
		   possible, never refuse for a certificate. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file,
	    NULL) != 1 : SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(err, errlen, "cannot load CA certificates%s%s",
		    ca_file != NULL ? " from " : "",
		    ca_file != NULL ? ca_file : "");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* relayhost_auth_file: "username password" on its first line; refused
   when others may read it. */
static int
load_relay_auth(struct mtad *m, const char *path, char *err, size_t errlen)
{
	struct stat sb;
	char line[1024], *sp, *end;
	FILE *f;

	if (stat(path, &sb) < 0) {
		snprintf(err, errlen, "relayhost_auth_file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (sb.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(err, errlen, "relayhost_auth_file %s is readable by "
		    "others (mode %03o): chmod 600 it", path,
		    (unsigned)(sb.st_mode & 0777));
		return -1;
	}
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "relayhost_auth_file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	end = line + strcspn(line, "\r\n");
	*end = '\0';
	sp = strpbrk(line, " \t");
	if (sp == NULL || sp == line || sp[1] == '\0') {
		sodium_memzero(line, sizeof(line));
		snprintf(err, errlen, "relayhost_auth_file %s: expected "
		    "\"username password\"", path);
		return -1;
	}
	*sp++ = '\0';
	while (*sp == ' ' || *sp == '\t')
		sp++;
	m->relay_user = xstrdup(line);
	m->relay_pass = xstrdup(sp);
	sodium_memzero(line, sizeof(line));
	return 0;
}

static int
parse_relayhost(struct mtad *m, const char *rh, char *err, size_t errlen)
{
	const char *colon;
	char host[DNS_NAME_SIZE];
	size_t hl;

	if (rh[0] == '[') {
		const char *close_b = strchr(rh, ']');

		if (close_b == NULL)
			goto bad;
		hl = (size_t)(close_b - rh) + 1;
		colon = close_b[1] == ':' ? close_b + 1 : NULL;
	} else {
		colon = strrchr(rh, ':');
		hl = colon != NULL ? (size_t)(colon - rh) : strlen(rh);
	}
	if (hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, rh, hl);
	host[hl] = '\0';
	m->relay_host = xstrdup(host);
	m->relay_port = colon != NULL ? (uint16_t)atoi(colon + 1) : 25;
	if (m->relay_port == 0)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "relayhost: bad host:port \"%s\"", rh);
	return -1;
}

static void
wake_cb(void *arg)
{
	struct mtad *m = arg;

	if (m->engine != NULL)
		engine_wake(m->engine);
}

/* Everything after the store is open and the loop exists. 0 or -1. */
static int
mtad_start(struct mtad_state *s, char *err, size_t errlen)
{
	struct mtad *m = &s->m;
	const struct config *c = m->cfg;
	char path[4096];
	unsigned timeout_ms;

	if (take_lock(s, err, errlen) < 0)
		return -1;
	add_listen(m, c->smtp_listen);
	add_listen(m, c->submission_listen);
	add_listen(m, c->smtps_listen);
	timeout_ms = c->outbound_timeout > 0 && c->outbound_timeout < 10 ?
	    (unsigned)(c->outbound_timeout * 1000) : 0;
	if (c->outbound_ip_family == NULL ||
	    strcasecmp(c->outbound_ip_family, "any") == 0)
		m->ip_family = AF_UNSPEC;
	else if (strcasecmp(c->outbound_ip_family, "ipv4") == 0)
		m->ip_family = AF_INET;
	else if (strcasecmp(c->outbound_ip_family, "ipv6") == 0)
		m->ip_family = AF_INET6;
	else {
		snprintf(err, errlen, "outbound_ip_family: want any, ipv4 or "
		    "ipv6, not %.40s", c->outbound_ip_family);
		return -1;
	}
	if (srs_key_load(c->data_dir, m->srs_key, err, errlen) < 0)
		return -1;
	m->dns = dns_resolver_new(m->loop, c->dns_servers, timeout_ms, 0, err,
	    errlen);
	if (m->dns == NULL)
		return -1;
	/* Mail to one domain comes in bursts: its MX and addresses are
	   answered from the cache within their TTL (failures never kept). */
	dns_resolver_enable_cache(m->dns);
	if ((m->tls_mx = client_ctx(false, NULL, err, errlen)) == NULL)
		return -1;
	if (c->relayhost != NULL && c->relayhost[0] != '\0') {
		if (parse_relayhost(m, c->relayhost, err, errlen) < 0)
			return -1;
		if ((m->tls_relay = client_ctx(true, c->relayhost_ca_file, err,
		    errlen)) == NULL)
			return -1;
		if (c->relayhost_auth_file != NULL &&
		    c->relayhost_auth_file[0] != '\0' &&
		    load_relay_auth(m, c->relayhost_auth_file, err, errlen) < 0)
			return -1;
	}
	store_queue_notify_path(m->st, path, sizeof(path));
	if (access(path, F_OK) != 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);

		if (fd >= 0)
			close(fd);
	}
	s->wake = fswatch_new(m->loop, path, wake_cb, m);
	if (s->wake == NULL) {
		snprintf(err, errlen, "cannot watch %.300s: %s", path,
		    strerror(errno));
		return -1;
	}
	m->engine = engine_new(m);
	engine_start(m->engine);
	log_info("mtad started hostname=%s relayhost=%s dns=%s",
	    c->hostname, m->relay_host != NULL ? c->relayhost : "none",
	    c->dns_servers != NULL ? c->dns_servers : "resolv.conf");
	return 0;
}

static void
mtad_stop(struct mtad_state *s)
{
	struct mtad *m = &s->m;

	sodium_memzero(m->srs_key, sizeof(m->srs_key));
	if (m->engine != NULL)
		engine_stop(m->engine);
	/* Lookups still pending are called back (cancelled) here. */
	dns_resolver_free(&m->dns);
	engine_free(&m->engine);
	fswatch_free(&s->wake);
	SSL_CTX_free(m->tls_mx);
	SSL_CTX_free(m->tls_relay);
	free(m->relay_host);
	secret_free(&m->relay_user);
	secret_free(&m->relay_pass);
	free(m->listens);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
}

/* ---- the daemon_main hooks ---- */

int
mtad_open_store(struct daemon *d, char *err, size_t errlen)
{
	if (store_open(d->cfg->data_dir, &d->store) == STORE_OK)
		return 0;
	snprintf(err, errlen, "cannot open the store in %s: %s",
	    d->cfg->data_dir, store_last_error());
	return -1;
}

int
mtad_setup_start(struct daemon *d, char *err, size_t errlen)
{
	struct mtad_state *s = xcalloc(1, sizeof(*s));

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot start");
		free(s);
		return -1;
	}
	d->priv = s;
	s->lock_fd = -1;
	s->m.cfg = d->cfg;
	s->m.st = d->store;
	s->m.loop = d->loop;
	s->m.workers = &d->workers;
	return mtad_start(s, err, errlen);
}

void
mtad_setup_stop(struct daemon *d)
{
	struct mtad_state *s = d->priv;

	if (s == NULL)
		return;
	mtad_stop(s);
	free(s);
	d->priv = NULL;
	log_info("mtad stopped");
}
