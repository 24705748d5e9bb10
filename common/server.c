/* server: listeners (IPv4 and IPv6, non-blocking accept), connection limits
   in total and per peer address, the list of connections, signals (SIGTERM
   and SIGINT graceful stop, SIGHUP reload) and privilege dropping. It hands
   each accepted socket to conn.c and never touches connection buffers. */
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "conn_private.h"
#include "log.h"
#include "util.h"

#define IP_BUCKETS      1024
#define ACCEPT_BATCH    64
#define STOP_TIMEOUT    3.0
#define DEFAULT_LINE    8192

struct ip_count {
	struct ip_count *next;
	unsigned char key[16];
	unsigned n;
	unsigned unauth;            /* of n, not logged in */
};

static void server_accept_cb(struct ev_loop *loop, ev_io *w, int revents);

static unsigned
ip_hash(const unsigned char *key)
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % IP_BUCKETS;
}

static struct ip_count **
ip_find(struct server *s, const unsigned char *key)
{
	struct ip_count **pp = &s->ip_table[ip_hash(key)];

	while (*pp != NULL && memcmp((*pp)->key, key, 16) != 0)
		pp = &(*pp)->next;
	return pp;
}

static unsigned
ip_get(struct server *s, const unsigned char *key, unsigned *unauth_r)
{
	struct ip_count *e = *ip_find(s, key);

	if (unauth_r != NULL)
		*unauth_r = e != NULL ? e->unauth : 0;
	return e != NULL ? e->n : 0;
}

/* delta: +1 a new (unauthenticated) connection, -1 one gone; unauth: the
   change of the unauthenticated count. */
static void
ip_add(struct server *s, const unsigned char *key, int delta, int unauth)
{
	struct ip_count **pp = ip_find(s, key), *e = *pp;

	if (e == NULL) {
		if (delta <= 0)
			return;
		e = xcalloc(1, sizeof(*e));
		memcpy(e->key, key, 16);
		*pp = e;
	}
	if (delta < 0 && e->n <= 1) {
		*pp = e->next;
		free(e);
		return;
	}
	e->n += (unsigned)delta;
	if (unauth >= 0 || e->unauth > 0)
		e->unauth += (unsigned)unauth;
}

static void
accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = w->data;

	(void)revents;
	if (s->stopping)
		return;
	for (size_t i = 0; i < s->n_listeners; i++)
		ev_io_start(loop, &s->listeners[i]->io);
}

static void
server_stop_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void server_signal_cb(struct ev_loop *loop, ev_signal *w, int revents);

struct server *
server_new(const struct server_params *p)
{
	struct server *s = xcalloc(1, sizeof(*s));
	uint64_t seed;

	str_copy(s->name, p->name != NULL ? p->name : "postroom",
	    sizeof(s->name));
	s->loop = p->loop;
	s->cfg = p->cfg;
	s->h = p->h;
	s->line_limit = p->line_limit > 0 ? p->line_limit : DEFAULT_LINE;
	s->refuse_msg = p->refuse_msg != NULL ? xstrdup(p->refuse_msg) : NULL;
	s->daemon_ctx = p->ctx;
	s->ip_table = xcalloc(IP_BUCKETS, sizeof(*s->ip_table));
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	s->id_base = seed;
	ev_timer_init(&s->accept_pause, accept_pause_cb, 0.5, 0.);
	s->accept_pause.data = s;
	ev_timer_init(&s->stop_timer, server_stop_timeout_cb, STOP_TIMEOUT, 0.);
	s->stop_timer.data = s;
	ev_signal_init(&s->sig_term, server_signal_cb, SIGTERM);
	ev_signal_init(&s->sig_int, server_signal_cb, SIGINT);
	ev_signal_init(&s->sig_hup, server_signal_cb, SIGHUP);
	s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
	/* A peer that vanishes mid-write must not kill the daemon (OpenSSL
	   writes with write(2), not send(MSG_NOSIGNAL)). */
	signal(SIGPIPE, SIG_IGN);
	/* A reload asked for while the daemon is still starting (before
	   server_run watches for it) must not kill it: SIGHUP's default. */
	signal(SIGHUP, SIG_IGN);
	return s;
}

void
server_free(struct server **sp)
{
	struct server *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	for (size_t i = 0; i < s->n_listeners; i++) {
		ev_io_stop(s->loop, &s->listeners[i]->io);
		close(s->listeners[i]->fd);
		free(s->listeners[i]);
	}
	free(s->listeners);
	s->stopping = false;	/* no ev_break from the frees below */
	while (s->conns != NULL)
		conn_force_free(s->conns);
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		while (s->ip_table[i] != NULL) {
			struct ip_count *e = s->ip_table[i];

			s->ip_table[i] = e->next;
			free(e);
		}
	}
	free(s->ip_table);
	ev_timer_stop(s->loop, &s->accept_pause);
	ev_timer_stop(s->loop, &s->stop_timer);
	ev_signal_stop(s->loop, &s->sig_term);
	ev_signal_stop(s->loop, &s->sig_int);
	ev_signal_stop(s->loop, &s->sig_hup);
	SSL_CTX_free(s->ctx);
	free(s->refuse_msg);
	free(s);
}

static void
format_hostport(const struct listen_addr *a, char *out, size_t size)
{
	if (strchr(a->host, ':') != NULL)
		snprintf(out, size, "[%s]:%s", a->host, a->port);
	else
		snprintf(out, size, "%s:%s", a->host, a->port);
}

static int
listen_one(struct server *s, const struct addrinfo *ai, int tag,
    bool implicit_tls, const char *hostport, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct listener *l;
	int fd, on = 1;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	/* [::] must not also claim IPv4, so 0.0.0.0 can bind beside it. */
	if (ai->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)
		goto fail;
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 511) < 0)
		goto fail;
	l = xcalloc(1, sizeof(*l));
	l->srv = s;
	l->fd = fd;
	l->tag = tag;
	l->implicit_tls = implicit_tls;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		l->port = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	ev_io_init(&l->io, server_accept_cb, fd, EV_READ);
	l->io.data = l;
	if (!s->stopping)
		ev_io_start(s->loop, &l->io);
	s->listeners = xrealloc(s->listeners,
	    (s->n_listeners + 1) * sizeof(*s->listeners));
	s->listeners[s->n_listeners++] = l;
	return 0;
fail:
	snprintf(err, errlen, "cannot bind %s: %s", hostport, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

int
server_listen(struct server *s, const char *listen_list, int tag,
    bool implicit_tls, char *err, size_t errlen)
{
	struct listen_addr *addrs = NULL;
	struct addrinfo hints, *res, *ai;
	char hostport[96];
	const char *host;
	size_t n = 0;
	int r, ret = -1;

	if (listen_list_parse(listen_list, &addrs, &n, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		format_hostport(&addrs[i], hostport, sizeof(hostport));
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		host = addrs[i].host;
		if (host[0] == '\0' || strcmp(host, "*") == 0)
			host = NULL;
		r = getaddrinfo(host, addrs[i].port, &hints, &res);
		if (r != 0) {
			snprintf(err, errlen, "cannot bind %s: %s", hostport,
			    gai_strerror(r));
			goto out;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if (listen_one(s, ai, tag, implicit_tls, hostport, err,
			    errlen) < 0) {
				freeaddrinfo(res);
				goto out;
			}
		}
		freeaddrinfo(res);
	}
	ret = 0;
out:
	free(addrs);
	return ret;
}

size_t
server_listener_count(const struct server *s)
{
	return s->n_listeners;
}

int
server_bound_port(const struct server *s, size_t i)
{
	return i < s->n_listeners ? s->listeners[i]->port : -1;
}

unsigned
server_conn_count(const struct server *s)
{
	return s->n_conns;
}

static void
peer_key(const struct sockaddr_storage *ss, unsigned char *key, char *str,
    size_t strsize)
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		memcpy(key, &s6->sin6_addr, 16);
		/* One native IPv6 peer holds a whole /64: counted per address
		   it could open max_connections_per_ip from each of 2^64. */
		if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			memset(key + 8, 0, 8);
		inet_ntop(AF_INET6, &s6->sin6_addr, str, strsize);
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;

		key[10] = key[11] = 0xff;
		memcpy(key + 12, &s4->sin_addr, 4);
		inet_ntop(AF_INET, &s4->sin_addr, str, strsize);
	} else {
		str_copy(str, "unknown", strsize);
	}
}

/* Whether a full table may close c to make room: not logged in, and idle
   (between commands, or in a TLS handshake), so no work in flight is
   lost. */
static bool
conn_evictable(const struct conn *c)
{
	if (!c->counted || c->authed || c->holds > 0 || c->close_pending)
		return false;
	if (c->phase == PH_HANDSHAKE)
		return true;
	/* Buffered input does not count: a line not finished yet is no
	   work in flight, and a peer could otherwise keep a slot out of
	   reach by sending one byte. */
	return c->phase == PH_OPEN && c->accepted && c->pauses == 0 &&
	    c->send == NULL && c->out_end == c->out_start;
}

static void
conn_evict(struct server *s, struct conn *c)
{
	log_info("%s evict peer=%s reason=max_connections", c->id, c->peer);
	conn_enter(c);
	if (c->reason == NULL)
		c->reason = "evicted";
	if (c->phase == PH_OPEN && s->h->timeout != NULL)
		s->h->timeout(c, c->sess);
	conn_close(c);
	/* Its slot is the newcomer's now, even while the goodbye flushes. */
	server_conn_gone(s, c);
	conn_leave(c);
}

/* The table is full: closes the longest idle unauthenticated connection of
   the address holding the most connections, if it holds more than the
   newcomer's (n_new). The most, not any address above n_new: else while
   one address held hundreds of fresh connections, each newcomer (from a
   new address of the same attacker, say) closed the oldest idle one of
   someone holding a single connection. False if there is none. One pass
   over the connections, made only while the table is full. */
static bool
server_make_room(struct server *s, unsigned n_new)
{
	struct conn *c, *victim = NULL;
	unsigned most = 0, n;

	/* Newest first: on a tie the older one wins. */
	for (c = s->conns; c != NULL; c = c->next) {
		if (!conn_evictable(c))
			continue;
		n = ip_get(s, c->addr_key, NULL);
		if (n <= n_new || n < most || (n == most &&
		    c->active > victim->active))
			continue;
		victim = c;
		most = n;
	}
	if (victim == NULL)
		return false;
	conn_evict(s, victim);
	return true;
}

/* Why a new connection from key is refused, or NULL to take it. */
static const char *
server_refusal(struct server *s, const unsigned char *key)
{
	const struct config *cfg = s->cfg;
	unsigned n, unauth;

	if (cfg == NULL)
		return NULL;
	n = ip_get(s, key, &unauth);
	if (cfg->max_connections_per_ip > 0 && n >= cfg->max_connections_per_ip)
		return "max_connections_per_ip";
	if (cfg->max_unauth_connections_per_ip > 0 &&
	    unauth >= cfg->max_unauth_connections_per_ip)
		return "max_unauth_connections_per_ip";
	if (cfg->max_connections > 0 && s->n_open >= cfg->max_connections &&
	    !server_make_room(s, n))
		return "max_connections";
	return NULL;
}

static void
server_accept_fd(struct server *s, struct listener *l, int fd,
    const struct sockaddr_storage *ss)
{
	unsigned char key[16];
	char peer[46];
	const char *why;
	struct conn *c;
	int on = 1;

	peer_key(ss, key, peer, sizeof(peer));
	why = server_refusal(s, key);
	if (why != NULL) {
		if (!l->implicit_tls && s->refuse_msg != NULL)
			(void)send(fd, s->refuse_msg, strlen(s->refuse_msg),
			    MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		log_info("- refused peer=%s reason=%s", peer, why);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	c = conn_new(s, fd, l->tag, l->implicit_tls);
	memcpy(c->addr_key, key, 16);
	memcpy(c->peer, peer, sizeof(c->peer));
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	s->n_open++;
	ip_add(s, key, 1, 1);
	c->counted = true;
	log_info("%s connect peer=%s%s", c->id, c->peer,
	    l->implicit_tls ? " tls=implicit" : "");
	conn_enter(c);
	if (!l->implicit_tls)
		conn_do_accept(c);
	else if (s->ctx == NULL)
		conn_fail(c, "no-tls-certificate");
	else
		tls_conn_start(c);
	conn_leave(c);
}

static void
server_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = w->data;
	struct server *s = l->srv;
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd;

	(void)revents;
	for (int i = 0; i < ACCEPT_BATCH && !s->stopping; i++) {
		sl = sizeof(ss);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			server_accept_fd(s, l, fd, &ss);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			/* The listen socket stays readable: without a pause
			   this would spin until a descriptor frees up. */
			log_warn("- accept result=fail");
			for (size_t j = 0; j < s->n_listeners; j++)
				ev_io_stop(loop, &s->listeners[j]->io);
			ev_timer_set(&s->accept_pause, 0.5, 0.);
			ev_timer_start(loop, &s->accept_pause);
		} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			log_warn("- accept result=fail");
		}
		break;
	}
}

void
server_conn_gone(struct server *s, struct conn *c)
{
	if (!c->counted)
		return;
	c->counted = false;
	s->n_open--;
	ip_add(s, c->addr_key, -1, c->authed ? 0 : -1);
}

void
server_conn_authed(struct server *s, struct conn *c)
{
	if (c->counted)
		ip_add(s, c->addr_key, 0, -1);
}

void
server_conn_unlink(struct server *s, struct conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	s->n_conns--;
}

/* Applies fn to every connection. All are held first, so a callback that
   releases another connection cannot free the one we visit next. */
static void
server_each_conn(struct server *s, void (*fn)(struct conn *c))
{
	struct conn *c, *next;

	for (c = s->conns; c != NULL; c = c->next)
		conn_hold(c);
	for (c = s->conns; c != NULL; c = c->next)
		fn(c);
	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		conn_release(c);
	}
}

static void
conn_stop_one(struct conn *c)
{
	const struct conn_handlers *h = c->srv->h;

	conn_enter(c);
	if (c->reason == NULL)
		c->reason = "shutdown";
	if ((c->phase == PH_OPEN || c->phase == PH_STARTTLS_WAIT) &&
	    c->accepted && h->shutdown != NULL)
		h->shutdown(c, c->sess);
	/* Paused: a worker job is in flight and its reply (a 250 after the
	   fsync) must still go out. conn_resume() closes it, or the stop
	   timeout does. The same for a file being streamed (conn_send_fd):
	   its end closes it. */
	if ((c->pauses == 0 && c->send == NULL) || c->phase != PH_OPEN)
		conn_close(c);
	conn_leave(c);
}

static void
conn_abort_one(struct conn *c)
{
	if (c->reason == NULL)
		c->reason = "shutdown";
	conn_abort(c);
}

static void
server_stop(struct server *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	log_info("- stopping connections=%u", s->n_conns);
	for (size_t i = 0; i < s->n_listeners; i++)
		ev_io_stop(s->loop, &s->listeners[i]->io);
	ev_timer_stop(s->loop, &s->accept_pause);
	server_each_conn(s, conn_stop_one);
	if (s->n_conns == 0)
		ev_break(s->loop, EVBREAK_ONE);
	else
		ev_timer_start(s->loop, &s->stop_timer);
}

static void
server_stop_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = w->data;

	(void)revents;
	log_info("- stop timeout, aborting connections=%u", s->n_conns);
	server_each_conn(s, conn_abort_one);
	ev_break(loop, EVBREAK_ONE);
}

/* Every daemon reloads through here, so all of them log the same one
   line: "- reload cert=<path|-> result=ok|fail" (fail: the certificate
   could not be loaded and the old one stays, with a warning saying why). */
static void
server_reload(struct server *s)
{
	const struct config *cfg = s->cfg;
	const char *cert = cfg != NULL ? cfg->tls_cert : NULL;
	bool ok = true;
	char err[512];

	if (s->reload != NULL)
		s->reload(s->reload_arg);
	if (cert != NULL && cfg->tls_key != NULL &&
	    server_tls_load(s, cert, cfg->tls_key, err, sizeof(err)) < 0) {
		ok = false;
		log_warnx("- tls-reload result=fail keep=old error=\"%s\"",
		    err);
	}
	log_info("- reload cert=%s result=%s", cert != NULL ? cert : "-",
	    ok ? "ok" : "fail");
}

static void
server_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct server *s = w->data;

	(void)loop;
	(void)revents;
	if (w->signum == SIGHUP)
		server_reload(s);
	else
		server_stop(s);
}

int
server_run(struct server *s, void (*reload)(void *arg), void *arg)
{
	s->reload = reload;
	s->reload_arg = arg;
	s->stopping = false;
	signal(SIGPIPE, SIG_IGN);
	ev_signal_start(s->loop, &s->sig_term);
	ev_signal_start(s->loop, &s->sig_int);
	ev_signal_start(s->loop, &s->sig_hup);
	ev_run(s->loop, 0);
	ev_signal_stop(s->loop, &s->sig_term);
	ev_signal_stop(s->loop, &s->sig_int);
	ev_signal_stop(s->loop, &s->sig_hup);
	ev_timer_stop(s->loop, &s->stop_timer);
	log_info("- stopped");
	return 0;
}

int
server_drop_privileges(struct server *s, char *err, size_t errlen)
{
	const char *user = s->cfg != NULL ? s->cfg->user : NULL;
	struct passwd *pw;

	if (user == NULL || *user == '\0' || geteuid() != 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(err, errlen, "unknown user %s", user);
		return -1;
	}
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		snprintf(err, errlen, "cannot become user %s: %s", user,
		    strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		snprintf(err, errlen, "could regain root after becoming %s",
		    user);
		return -1;
	}
	return 0;
}
