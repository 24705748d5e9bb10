/* Unit tests for common/conn.c, server.c, tls.c and compress.c: a real
   server on 127.0.0.1 with a kernel-chosen port runs a tiny line-echo
   daemon on the main thread's libev loop, and a client thread talks raw
   bytes to it (OpenSSL and zlib directly on the client side). The client
   thread never calls cmocka: it returns an error string that the main
   thread asserts on. No assertion depends on wall-clock time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <zlib.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "util.h"

/* ---------------------------------------------------------------- daemon */

struct tsess {
	struct conn *c;
	long big_left;          /* BIG: bytes still to stream */
	long raw_left;          /* RAW: bytes still to take with peek/consume */
	unsigned raw_sum;
	bool held;
	bool one;               /* ONE: one command per input() call */
	bool probe;             /* PROBE: input buffer size watched */
};

static struct {
	struct ev_loop *loop;
	struct server *srv;
	struct config cfg;
	int port, tls_port;
	int accepted, closed, timeouts, drains, shutdowns, tls_ok, tls_fail;
	int input_calls;
	bool later_close;           /* LATERCLOSE: close before release */
	struct conn *held_conn;     /* HOLD: released by the test */
	struct conn *paused_conn;
	struct conn *later_conn;    /* LATER: written from a timer */
	struct conn *async_conn;    /* ASYNC: paused until the shutdown */
	struct conn *stalled_conn;  /* STALL: paused until UNSTALL */
	int stall_calls;            /* input_calls at the UNSTALL */
	int reloads;
	size_t probe_cap;           /* PROBE: largest input buffer seen */
	ev_timer resume_timer, later_timer, async_timer;
	ev_async client_done;
	char certdir[64];
} T;

static void *
d_accept(struct conn *c, int tag)
{
	struct tsess *s = xcalloc(1, sizeof(*s));

	s->c = c;
	T.accepted++;
	conn_printf(c, "HELLO %s\r\n", conn_is_tls(c) ? "tls" : "plain");
	return s;
}

static void
d_stream(struct conn *c, struct tsess *s)
{
	char chunk[8192];

	memset(chunk, 'x', sizeof(chunk));
	while (s->big_left > 0 && !conn_is_congested(c)) {
		long n = s->big_left < (long)sizeof(chunk) ? s->big_left :
		    (long)sizeof(chunk);

		conn_write(c, chunk, (size_t)n);
		s->big_left -= n;
	}
	if (s->big_left == 0) {
		s->big_left = -1;
		conn_puts(c, "\r\nBIGDONE\r\n");
	}
}

static void
resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (T.paused_conn != NULL) {
		conn_puts(T.paused_conn, "RESUMED\r\n");
		conn_resume(T.paused_conn);
		T.paused_conn = NULL;
	}
}

static void
later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	/* Outside any conn callback, with only our hold: the write must
	   still be flushed. */
	conn_puts(T.later_conn, "LATERDONE\r\n");
	/* close while held, then release: the queued reply must still go out
	   before the close (the worker-completion pattern of the daemons) */
	if (T.later_close)
		conn_close(T.later_conn);
	conn_release(T.later_conn);
	T.later_conn = NULL;
}

static void
async_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	/* The worker job's completion: reply, resume, release. */
	conn_puts(T.async_conn, "ASYNCDONE\r\n");
	conn_resume(T.async_conn);
	conn_release(T.async_conn);
	T.async_conn = NULL;
}

static void
d_command(struct conn *c, struct tsess *s, char *line, size_t len)
{
	if (strcmp(line, "QUIT") == 0) {
		conn_puts(c, "BYE\r\n");
		conn_close(c);
	} else if (strcmp(line, "STARTTLS") == 0) {
		conn_puts(c, "GO\r\n");
		if (conn_starttls(c) < 0)
			conn_puts(c, "NOTLS\r\n");
	} else if (strcmp(line, "COMPRESS") == 0) {
		conn_puts(c, "OK deflate\r\n");
		if (conn_start_compress(c) < 0)
			conn_puts(c, "NOCOMPRESS\r\n");
	} else if (strcmp(line, "PAUSE") == 0) {
		conn_puts(c, "PAUSED\r\n");
		conn_pause(c);
		T.paused_conn = c;
		ev_timer_set(&T.resume_timer, 0.05, 0.);
		ev_timer_start(T.loop, &T.resume_timer);
	} else if (strncmp(line, "RAW ", 4) == 0) {
		s->raw_left = atol(line + 4);
		s->raw_sum = 0;
	} else if (strncmp(line, "BIG ", 4) == 0) {
		s->big_left = atol(line + 4);
		d_stream(c, s);
	} else if (strncmp(line, "FLOOD ", 6) == 0) {
		char chunk[65536];
		long left = atol(line + 6);

		memset(chunk, 'f', sizeof(chunk));
		while (left > 0 && !conn_is_closing(c)) {
			conn_write(c, chunk, sizeof(chunk));
			left -= (long)sizeof(chunk);
		}
	} else if (strcmp(line, "HOLD") == 0) {
		conn_hold(c);
		T.held_conn = c;
		conn_puts(c, "HELD\r\n");
	} else if (strcmp(line, "LATER") == 0 ||
	    strcmp(line, "LATERCLOSE") == 0) {
		T.later_close = strcmp(line, "LATERCLOSE") == 0;
		conn_hold(c);
		T.later_conn = c;
		ev_timer_set(&T.later_timer, 0.02, 0.);
		ev_timer_start(T.loop, &T.later_timer);
	} else if (strcmp(line, "ASYNC") == 0) {
		conn_hold(c);
		conn_pause(c);
		T.async_conn = c;
		conn_puts(c, "ASYNCSTART\r\n");
	} else if (strcmp(line, "RELOADS") == 0) {
		conn_printf(c, "RELOADS %d\r\n", T.reloads);
	} else if (strcmp(line, "TIMEOUT") == 0) {
		conn_set_timeout(c, 0.1);
		conn_puts(c, "ARMED\r\n");
	} else if (strcmp(line, "TRIM") == 0) {
		conn_puts(c, "TRIMMED\r\n");
		conn_trim(c);
	} else if (strcmp(line, "INFO") == 0) {
		conn_printf(c, "INFO tls=%s cipher=%s z=%d id=%s peer=%s\r\n",
		    conn_tls_version(c) ? conn_tls_version(c) : "-",
		    conn_tls_cipher(c) ? "yes" : "-", conn_is_compressed(c),
		    conn_id(c), conn_peer_addr(c));
	} else if (strcmp(line, "ONE") == 0) {
		s->one = true;
		conn_puts(c, "ONE\r\n");
	} else if (strcmp(line, "AUTH") == 0) {
		conn_set_authenticated(c);
		conn_printf(c, "AUTHED %d\r\n", conn_is_authenticated(c));
	} else if (strcmp(line, "STALL") == 0) {
		/* Reads nothing until another connection says UNSTALL. */
		conn_pause(c);
		T.stalled_conn = c;
		conn_puts(c, "STALLED\r\n");
	} else if (strcmp(line, "UNSTALL") == 0) {
		T.stall_calls = T.input_calls;
		conn_resume(T.stalled_conn);
		T.stalled_conn = NULL;
		conn_puts(c, "UNSTALLED\r\n");
	} else if (strcmp(line, "CALLS") == 0) {
		conn_printf(c, "CALLS %d\r\n", T.input_calls - T.stall_calls);
	} else if (strncmp(line, "PROBE ", 6) == 0) {
		conn_set_line_limit(c, (size_t)atol(line + 6));
		s->probe = true;
		T.probe_cap = 0;
		conn_puts(c, "PROBING\r\n");
	} else if (strcmp(line, "CAP") == 0) {
		conn_printf(c, "CAP %zu\r\n", T.probe_cap);
		T.probe_cap = 0;
	} else if (strcmp(line, "COUNT") == 0) {
		conn_printf(c, "COUNT %u\r\n", server_conn_count(T.srv));
	} else {
		conn_printf(c, "ECHO %zu %s\r\n", len, line);
	}
}

static void
d_input(struct conn *c, void *sess)
{
	struct tsess *s = sess;
	const char *p;
	char *line;
	size_t len, n;
	int r;

	T.input_calls++;
	/* What input holds when it is called: the unfinished line read. */
	if (s->probe && conn_in_allocated(c) > T.probe_cap)
		T.probe_cap = conn_in_allocated(c);
	for (;;) {
		if (s->raw_left > 0) {
			n = conn_peek(c, &p);
			if (n == 0)
				return;
			if (n > (size_t)s->raw_left)
				n = (size_t)s->raw_left;
			for (size_t i = 0; i < n; i++)
				s->raw_sum = s->raw_sum * 31 + (unsigned char)p[i];
			conn_consume(c, n);
			s->raw_left -= (long)n;
			if (s->raw_left == 0)
				conn_printf(c, "GOT %u\r\n", s->raw_sum);
			continue;
		}
		if (conn_is_paused(c) || conn_is_closing(c) ||
		    conn_is_congested(c))
			return;
		r = conn_getline(c, &line, &len);
		if (r == 0)
			return;
		if (r < 0) {
			conn_puts(c, "ERR line too long\r\n");
			continue;
		}
		d_command(c, s, line, len);
		/* One command per call when it changed the connection's
		   state, as a daemon with a CMD_SUSPEND would. */
		if (conn_is_paused(c) || conn_is_closing(c) || s->one)
			return;
	}
}

static void
d_drain(struct conn *c, void *sess)
{
	T.drains++;
	d_stream(c, sess);
}

static void
d_tls_done(struct conn *c, void *sess, bool ok)
{
	if (ok) {
		T.tls_ok++;
		conn_printf(c, "TLSOK %s\r\n", conn_tls_version(c));
	} else {
		T.tls_fail++;
	}
}

static void
d_timeout(struct conn *c, void *sess)
{
	T.timeouts++;
	conn_puts(c, "TIMEOUT\r\n");
}

static void
d_shutdown(struct conn *c, void *sess)
{
	T.shutdowns++;
	conn_puts(c, "SHUTDOWN\r\n");
	/* The job in flight finishes only now: the conn must still be open
	   for its reply. */
	if (T.async_conn == c) {
		ev_timer_set(&T.async_timer, 0., 0.);
		ev_timer_start(T.loop, &T.async_timer);
	}
}

static void
d_closed(struct conn *c, void *sess)
{
	T.closed++;
	free(sess);
}

static const struct conn_handlers handlers = {
	.accept = d_accept,
	.input = d_input,
	.drain = d_drain,
	.tls_done = d_tls_done,
	.timeout = d_timeout,
	.shutdown = d_shutdown,
	.closed = d_closed,
};

/* ---------------------------------------------------------------- client */

struct cli {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	bool z, zs, zr;         /* zlib set up; compress sends; inflate reads */
	z_stream zin, zout;
	char raw[8192];         /* compressed bytes not yet inflated */
	size_t raw_len;
	char buf[65536];
	size_t len;
};

/* From the loopback address src ("127.0.0.2"), or the default if NULL. */
static int
cli_connect_from(struct cli *k, int port, const char *src)
{
	struct sockaddr_in sin;
	struct timeval tv = { 20, 0 };  /* a safety net, never asserted on */

	memset(k, 0, sizeof(*k));
	k->fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(k->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (src != NULL) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		inet_pton(AF_INET, src, &sin.sin_addr);
		if (bind(k->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
			return -1;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return connect(k->fd, (struct sockaddr *)&sin, sizeof(sin));
}

static int
cli_connect(struct cli *k, int port)
{
	return cli_connect_from(k, port, NULL);
}

static void
cli_close(struct cli *k)
{
	if (k->ssl != NULL)
		SSL_free(k->ssl);
	if (k->ctx != NULL)
		SSL_CTX_free(k->ctx);
	if (k->z) {
		inflateEnd(&k->zin);
		deflateEnd(&k->zout);
	}
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	k->ssl = NULL;
	k->ctx = NULL;
	k->z = k->zs = k->zr = false;
}

static int
cli_send_wire(struct cli *k, const void *p, size_t n)
{
	if (k->ssl != NULL)
		return SSL_write(k->ssl, p, (int)n) == (int)n ? 0 : -1;
	while (n > 0) {
		ssize_t w = send(k->fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return -1;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int
cli_send(struct cli *k, const void *p, size_t n)
{
	char out[16384];

	if (!k->zs)
		return cli_send_wire(k, p, n);
	k->zout.next_in = (Bytef *)p;
	k->zout.avail_in = (uInt)n;
	do {
		k->zout.next_out = (Bytef *)out;
		k->zout.avail_out = sizeof(out);
		deflate(&k->zout, Z_SYNC_FLUSH);
		if (cli_send_wire(k, out, sizeof(out) - k->zout.avail_out) < 0)
			return -1;
	} while (k->zout.avail_out == 0);
	return 0;
}

static int
cli_puts(struct cli *k, const char *s)
{
	return cli_send(k, s, strlen(s));
}

/* Reads more bytes into k->buf; 0 at EOF, -1 on error. */
static ssize_t
cli_fill(struct cli *k)
{
	char *dst = k->buf + k->len;
	size_t room = sizeof(k->buf) - k->len;
	ssize_t n;

	if (room == 0)
		return -1;
	if (!k->zr) {
		if (k->ssl != NULL)
			n = SSL_read(k->ssl, dst, (int)room);
		else
			n = recv(k->fd, dst, room, 0);
		if (n < 0 && k->ssl != NULL)
			n = 0;
		if (n > 0)
			k->len += (size_t)n;
		return n;
	}
	for (;;) {
		if (k->raw_len > 0) {
			k->zin.next_in = (Bytef *)k->raw;
			k->zin.avail_in = (uInt)k->raw_len;
			k->zin.next_out = (Bytef *)dst;
			k->zin.avail_out = (uInt)room;
			if (inflate(&k->zin, Z_SYNC_FLUSH) < 0 &&
			    k->zin.avail_out == room)
				return -1;
			memmove(k->raw, k->zin.next_in, k->zin.avail_in);
			k->raw_len = k->zin.avail_in;
			n = (ssize_t)(room - k->zin.avail_out);
			if (n > 0) {
				k->len += (size_t)n;
				return n;
			}
		}
		if (k->ssl != NULL)
			n = SSL_read(k->ssl, k->raw + k->raw_len,
			    (int)(sizeof(k->raw) - k->raw_len));
		else
			n = recv(k->fd, k->raw + k->raw_len,
			    sizeof(k->raw) - k->raw_len, 0);
		if (n <= 0)
			return n < 0 && k->ssl != NULL ? 0 : n;
		k->raw_len += (size_t)n;
	}
}

/* One line without its CRLF into out; -1 at EOF or error. */
static int
cli_line(struct cli *k, char *out, size_t size)
{
	char *lf;
	size_t n;

	for (;;) {
		lf = memchr(k->buf, '\n', k->len);
		if (lf != NULL) {
			n = (size_t)(lf - k->buf);
			if (n > 0 && k->buf[n - 1] == '\r')
				n--;
			if (n >= size)
				n = size - 1;
			memcpy(out, k->buf, n);
			out[n] = '\0';
			n = (size_t)(lf - k->buf) + 1;
			memmove(k->buf, k->buf + n, k->len - n);
			k->len -= n;
			return 0;
		}
		if (cli_fill(k) <= 0)
			return -1;
	}
}

/* True at EOF without any more data. */
static bool
cli_eof(struct cli *k)
{
	return k->len == 0 && cli_fill(k) == 0;
}

static __thread char errbuf[2560];

#define EXPECT(k, want) do {						\
	char got_[1024];						\
	if (cli_line((k), got_, sizeof(got_)) < 0) {			\
		snprintf(errbuf, sizeof(errbuf), "EOF waiting for '%s'", (want)); \
		return errbuf;						\
	}								\
	if (strcmp(got_, (want)) != 0) {				\
		snprintf(errbuf, sizeof(errbuf), "want '%s' got '%s'",	\
		    (want), got_);					\
		return errbuf;						\
	}								\
} while (0)
#define EXPECT_PREFIX(k, want) do {					\
	char got_[1024];						\
	if (cli_line((k), got_, sizeof(got_)) < 0) {			\
		snprintf(errbuf, sizeof(errbuf), "EOF waiting for '%s'", (want)); \
		return errbuf;						\
	}								\
	if (strncmp(got_, (want), strlen(want)) != 0) {			\
		snprintf(errbuf, sizeof(errbuf), "want '%s...' got '%s'", \
		    (want), got_);					\
		return errbuf;						\
	}								\
} while (0)


static int
cli_tls(struct cli *k)
{
	k->ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(k->ctx, SSL_VERIFY_NONE, NULL);
	k->ssl = SSL_new(k->ctx);
	SSL_set_fd(k->ssl, k->fd);
	return SSL_connect(k->ssl) == 1 ? 0 : -1;
}

/* Sets up zlib; from now on what we send is deflated. */
static int
cli_compress(struct cli *k)
{
	k->z = k->zs = true;
	if (inflateInit2(&k->zin, -15) != Z_OK)
		return -1;
	return deflateInit2(&k->zout, 6, Z_DEFLATED, -15, 8,
	    Z_DEFAULT_STRATEGY) == Z_OK ? 0 : -1;
}

/* From now on what we read is inflated, including what is buffered. */
static void
cli_compress_recv(struct cli *k)
{
	memcpy(k->raw, k->buf, k->len);
	k->raw_len = k->len;
	k->len = 0;
	k->zr = true;
}

/* ---------------------------------------------------------------- harness */

typedef const char *(*client_fn)(void);

static struct {
	pthread_t th;
	client_fn fn;
	const char *result;
} C;

static void *
client_main(void *arg)
{
	C.result = C.fn();
	ev_async_send(T.loop, &T.client_done);
	return NULL;
}

static void
client_done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void
start_client(client_fn fn)
{
	sigset_t all, old;

	C.fn = fn;
	C.result = NULL;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	assert_int_equal(pthread_create(&C.th, NULL, client_main, NULL), 0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Runs the server loop until the client thread is done. */
static void
run_client(client_fn fn)
{
	start_client(fn);
	ev_run(T.loop, 0);
	pthread_join(C.th, NULL);
	if (C.result != NULL)
		fail_msg("client: %s", C.result);
}

/* Lets the loop settle: closes and releases that the client cannot see. */
static void
spin_loop(int rounds)
{
	for (int i = 0; i < rounds; i++)
		ev_run(T.loop, EVRUN_NOWAIT);
}

static void
gen_cert(void)
{
	char cmd[512];

	snprintf(T.certdir, sizeof(T.certdir), "/tmp/test_conn.XXXXXX");
	assert_non_null(mkdtemp(T.certdir));
	snprintf(cmd, sizeof(cmd),
	    "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test "
	    "-keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1",
	    T.certdir, T.certdir);
	assert_int_equal(system(cmd), 0);
}

static int
setup(void **state)
{
	struct server_params p = {
		.name = "test", .h = &handlers, .line_limit = 100,
		.refuse_msg = "421 too many\r\n",
	};
	char err[256], path[128], path2[128];

	memset(&T, 0, sizeof(T));
	T.loop = ev_loop_new(EVFLAG_AUTO);
	config_init(&T.cfg);
	T.cfg.max_connections_per_ip = 5;
	p.loop = T.loop;
	p.cfg = &T.cfg;
	T.srv = server_new(&p);
	gen_cert();
	snprintf(path, sizeof(path), "%s/cert.pem", T.certdir);
	snprintf(path2, sizeof(path2), "%s/key.pem", T.certdir);
	if (server_tls_load(T.srv, path, path2, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	T.cfg.tls_cert = xstrdup(path);
	T.cfg.tls_key = xstrdup(path2);
	if (server_listen(T.srv, "127.0.0.1:0", 1, false, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	if (server_listen(T.srv, "127.0.0.1:0", 2, true, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_int_equal(server_listener_count(T.srv), 2);
	T.port = server_bound_port(T.srv, 0);
	T.tls_port = server_bound_port(T.srv, 1);
	assert_true(T.port > 0 && T.tls_port > 0 && T.port != T.tls_port);
	ev_timer_init(&T.resume_timer, resume_cb, 0.05, 0.);
	ev_timer_init(&T.later_timer, later_cb, 0.02, 0.);
	ev_timer_init(&T.async_timer, async_cb, 0., 0.);
	ev_async_init(&T.client_done, client_done_cb);
	ev_async_start(T.loop, &T.client_done);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	ev_timer_stop(T.loop, &T.resume_timer);
	ev_timer_stop(T.loop, &T.later_timer);
	ev_timer_stop(T.loop, &T.async_timer);
	ev_async_stop(T.loop, &T.client_done);
	server_free(&T.srv);
	assert_int_equal(T.accepted, T.closed);
	config_free(&T.cfg);
	ev_loop_destroy(T.loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", T.certdir);
	(void)system(cmd);
	return 0;
}

/* ---------------------------------------------------------------- tests */

static const char *
cl_lines(void)
{
	struct cli k;
	char big[300];

	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	/* CRLF, bare LF, an empty line, two lines in one segment, and a
	   line split across segments. */
	cli_puts(&k, "one\r\ntwo\n\r\nthree\r\nfo");
	EXPECT(&k, "ECHO 3 one");
	EXPECT(&k, "ECHO 3 two");
	EXPECT(&k, "ECHO 0 ");
	EXPECT(&k, "ECHO 5 three");
	usleep(10000);
	cli_puts(&k, "ur\r\n");
	EXPECT(&k, "ECHO 4 four");
	/* Exactly the limit (100) passes, one more is refused once and the
	   rest of it, across several writes, is skipped to the LF. */
	memset(big, 'a', sizeof(big));
	cli_send(&k, big, 100);
	cli_puts(&k, "\r\n");
	EXPECT_PREFIX(&k, "ECHO 100 aaaa");
	cli_send(&k, big, 101);
	cli_puts(&k, "\r\nafter1\r\n");
	EXPECT(&k, "ERR line too long");
	EXPECT(&k, "ECHO 6 after1");
	cli_send(&k, big, sizeof(big));
	usleep(10000);
	cli_send(&k, big, sizeof(big));
	usleep(10000);
	cli_send(&k, big, sizeof(big));
	cli_puts(&k, "tail-of-long\nafter2\n");
	EXPECT(&k, "ERR line too long");
	EXPECT(&k, "ECHO 6 after2");
	/* A NUL byte inside a line is kept; len tells. */
	cli_send(&k, "a\0b\r\n", 5);
	EXPECT(&k, "ECHO 3 a");
	cli_puts(&k, "QUIT\r\n");
	EXPECT(&k, "BYE");
	if (!cli_eof(&k))
		return "no EOF after QUIT";
	cli_close(&k);
	return NULL;
}

static const char *
cl_lines_bytewise(void)
{
	struct cli k;
	char script[512];
	int one = 1;

	if (cli_connect(&k, T.port) < 0)
		return "connect";
	setsockopt(k.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	EXPECT(&k, "HELLO plain");
	/* One byte per segment: every split point, CR and LF apart, the
	   overlong line detected while it is still arriving. */
	snprintf(script, sizeof(script), "ab\r\ncd\n%0150d\r\nok\r\n\r\n"
	    "a\rb\r\n", 0);
	for (size_t i = 0; script[i] != '\0'; i++)
		if (cli_send(&k, script + i, 1) < 0)
			return "send";
	EXPECT(&k, "ECHO 2 ab");
	EXPECT(&k, "ECHO 2 cd");
	EXPECT(&k, "ERR line too long");
	EXPECT(&k, "ECHO 2 ok");
	EXPECT(&k, "ECHO 0 ");
	EXPECT(&k, "ECHO 3 a\rb");
	cli_close(&k);
	return NULL;
}

static const char *
eof_pipelined_on(bool tls)
{
	struct cli k;
	static char many[4000];
	char got[64];
	int n = 0;

	if (cli_connect(&k, tls ? T.tls_port : T.port) < 0)
		return "connect";
	if (tls && cli_tls(&k) < 0)
		return "tls";
	EXPECT(&k, tls ? "HELLO tls" : "HELLO plain");
	cli_puts(&k, "ONE\r\n");
	EXPECT(&k, "ONE");
	/* Far more one-byte commands than one dispatch runs, then the end
	   of our side: every command is still answered before the close. */
	memset(many, '\n', sizeof(many));
	if (cli_send(&k, many, sizeof(many)) < 0)
		return "send";
	shutdown(k.fd, SHUT_WR);
	while (cli_line(&k, got, sizeof(got)) == 0) {
		if (strcmp(got, "ECHO 0 ") != 0)
			return "unexpected reply";
		n++;
	}
	cli_close(&k);
	if (n != (int)sizeof(many)) {
		snprintf(errbuf, sizeof(errbuf), "%d of %zu answered", n,
		    sizeof(many));
		return errbuf;
	}
	return NULL;
}

/* Over TLS the read loop can take the data and the end in one go. */
static const char *
cl_eof_pipelined(void)
{
	const char *err = eof_pipelined_on(false);

	return err != NULL ? err : eof_pipelined_on(true);
}

static void
test_eof_pipelined(void **state)
{
	run_client(cl_eof_pipelined);
}

static void
test_lines_bytewise(void **state)
{
	run_client(cl_lines_bytewise);
}

static void
test_lines(void **state)
{
	run_client(cl_lines);
	spin_loop(3);
	assert_int_equal(T.accepted, 1);
	assert_int_equal(T.closed, 1);
	assert_int_equal(server_conn_count(T.srv), 0);
}

static const char *
cl_raw(void)
{
	struct cli k;
	char data[200000];
	unsigned sum = 0;
	char want[64];

	for (size_t i = 0; i < sizeof(data); i++) {
		data[i] = (char)(i * 7 + (i >> 9));
		sum = sum * 31 + (unsigned char)data[i];
	}
	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	/* The raw bytes follow the command in the same segment. */
	cli_puts(&k, "RAW 200000\r\n");
	cli_send(&k, data, sizeof(data));
	cli_puts(&k, "after\r\n");
	snprintf(want, sizeof(want), "GOT %u", sum);
	EXPECT(&k, want);
	EXPECT(&k, "ECHO 5 after");
	cli_close(&k);
	return NULL;
}

static void
test_raw(void **state)
{
	run_client(cl_raw);
}

/* Reads exactly n bytes that must all be c. */
static const char *
cli_take(struct cli *k, long n, char c)
{
	while (n > 0) {
		size_t m;

		if (k->len == 0 && cli_fill(k) <= 0)
			return "EOF in bulk data";
		m = k->len < (size_t)n ? k->len : (size_t)n;
		for (size_t i = 0; i < m; i++)
			if (k->buf[i] != c)
				return "bad byte in bulk data";
		memmove(k->buf, k->buf + m, k->len - m);
		k->len -= m;
		n -= (long)m;
	}
	return NULL;
}

static const char *
cl_backpressure(void)
{
	struct cli k;
	const char *r;

	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	/* 8 MiB: far above the high-water mark, so the daemon must stream
	   through drain(); the command pipelined behind it is answered
	   only after the stream. */
	cli_puts(&k, "BIG 8388608\r\nafter\r\n");
	usleep(200000);	/* let the queue fill while we do not read */
	if ((r = cli_take(&k, 8388608, 'x')) != NULL)
		return r;
	EXPECT(&k, "");
	EXPECT(&k, "BIGDONE");
	EXPECT(&k, "ECHO 5 after");
	cli_close(&k);
	return NULL;
}

static const char *
cl_flood(void)
{
	struct cli k;
	long total = 0;
	ssize_t n;

	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	/* A daemon that ignores congestion hits the hard limit (16 MiB):
	   the connection is aborted, we never see all 20 MB. */
	cli_puts(&k, "FLOOD 20000000\r\n");
	while ((n = recv(k.fd, k.buf, sizeof(k.buf), 0)) > 0)
		total += n;
	if (total >= 20000000)
		return "hard limit not enforced";
	cli_close(&k);
	return NULL;
}

static void
test_flood(void **state)
{
	run_client(cl_flood);
	spin_loop(3);
	assert_int_equal(T.closed, 1);
}

static void
test_backpressure(void **state)
{
	run_client(cl_backpressure);
	assert_true(T.drains > 0);
}

static const char *
cl_pause(void)
{
	struct cli k;

	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	/* The lines after PAUSE are buffered, not lost, and handled after
	   the resume (which the daemon announces first). */
	cli_puts(&k, "PAUSE\r\nx1\r\nx2\r\n");
	EXPECT(&k, "PAUSED");
	EXPECT(&k, "RESUMED");
	EXPECT(&k, "ECHO 2 x1");
	EXPECT(&k, "ECHO 2 x2");
	cli_puts(&k, "LATER\r\n");
	EXPECT(&k, "LATERDONE");
	cli_puts(&k, "LATERCLOSE\r\n");
	EXPECT(&k, "LATERDONE");
	if (!cli_eof(&k))
		return "no EOF after close under hold";
	cli_close(&k);
	return NULL;
}

static void
test_pause(void **state)
{
	run_client(cl_pause);
}

static const char *
cl_hold(void)
{
	struct cli k;

	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	cli_puts(&k, "HOLD\r\n");
	EXPECT(&k, "HELD");
	cli_close(&k);
	return NULL;
}

static void
test_hold(void **state)
{
	run_client(cl_hold);
	/* The peer is gone, but the conn is held: no closed() yet. */
	assert_non_null(T.held_conn);
	while (!conn_is_closing(T.held_conn))
		ev_run(T.loop, EVRUN_ONCE);
	spin_loop(5);
	assert_int_equal(T.closed, 0);
	assert_true(conn_is_closing(T.held_conn));
	assert_int_equal(server_conn_count(T.srv), 1);
	conn_release(T.held_conn);
	T.held_conn = NULL;
	assert_int_equal(T.closed, 1);
	assert_int_equal(server_conn_count(T.srv), 0);
}

static const char *
cl_timeout(void)
{
	struct cli k;

	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	cli_puts(&k, "TIMEOUT\r\n");
	EXPECT(&k, "ARMED");
	/* Silent: the idle timer fires, the goodbye comes, then EOF. */
	EXPECT(&k, "TIMEOUT");
	if (!cli_eof(&k))
		return "no EOF after timeout";
	cli_close(&k);
	return NULL;
}

static void
test_timeout(void **state)
{
	run_client(cl_timeout);
	spin_loop(3);
	assert_int_equal(T.timeouts, 1);
	assert_int_equal(T.closed, 1);
}

static const char *
cl_limit(void)
{
	struct cli k[6];

	for (int i = 0; i < 5; i++) {
		if (cli_connect(&k[i], T.port) < 0)
			return "connect";
		EXPECT(&k[i], "HELLO plain");
	}
	/* The sixth from the same address gets the refusal, then EOF. */
	if (cli_connect(&k[5], T.port) < 0)
		return "connect 6";
	EXPECT(&k[5], "421 too many");
	if (!cli_eof(&k[5]))
		return "no EOF after refusal";
	cli_close(&k[5]);
	/* Once one closes, a new one is welcome again. */
	cli_puts(&k[0], "QUIT\r\n");
	EXPECT(&k[0], "BYE");
	if (!cli_eof(&k[0]))
		return "no EOF after QUIT";
	cli_close(&k[0]);
	if (cli_connect(&k[0], T.port) < 0)
		return "connect again";
	EXPECT(&k[0], "HELLO plain");
	for (int i = 0; i < 5; i++)
		cli_close(&k[i]);
	return NULL;
}

static const char *
cl_total_limit(void)
{
	struct cli k[3];

	for (int i = 0; i < 2; i++) {
		if (cli_connect(&k[i], T.port) < 0)
			return "connect";
		EXPECT(&k[i], "HELLO plain");
	}
	if (cli_connect(&k[2], T.port) < 0)
		return "connect 3";
	EXPECT(&k[2], "421 too many");
	if (!cli_eof(&k[2]))
		return "no EOF after refusal";
	/* No refusal text on the TLS port: it would be plaintext. */
	cli_close(&k[2]);
	if (cli_connect(&k[2], T.tls_port) < 0)
		return "connect tls";
	if (!cli_eof(&k[2]))
		return "refused TLS connection not closed";
	for (int i = 0; i < 3; i++)
		cli_close(&k[i]);
	return NULL;
}

static void
test_total_limit(void **state)
{
	T.cfg.max_connections = 2;
	run_client(cl_total_limit);
	assert_int_equal(T.accepted, 2);
}

static void
test_limit(void **state)
{
	run_client(cl_limit);
	assert_int_equal(T.accepted, 6);
}

static const char *
cl_starttls(void)
{
	struct cli k;

	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	/* Injection: the line after STARTTLS arrives in the same segment,
	   in plaintext, and must never be executed. */
	cli_puts(&k, "STARTTLS\r\nINJECTED\r\n");
	EXPECT(&k, "GO");
	if (k.len != 0)
		return "bytes after GO";
	if (cli_tls(&k) < 0)
		return "TLS handshake";
	EXPECT_PREFIX(&k, "TLSOK TLSv1.");
	cli_puts(&k, "INFO\r\n");
	EXPECT_PREFIX(&k, "INFO tls=TLSv1.3 cipher=yes z=0 id=");
	cli_puts(&k, "STARTTLS\r\n");
	EXPECT(&k, "GO");
	EXPECT(&k, "NOTLS");
	cli_puts(&k, "hello\r\n");
	EXPECT(&k, "ECHO 5 hello");
	cli_puts(&k, "QUIT\r\n");
	EXPECT(&k, "BYE");
	cli_close(&k);
	return NULL;
}

static void
test_starttls(void **state)
{
	run_client(cl_starttls);
	assert_int_equal(T.tls_ok, 1);
}

static const char *
cl_implicit_tls(void)
{
	struct cli k;
	char big[50000];

	if (cli_connect(&k, T.tls_port) < 0)
		return "connect";
	if (cli_tls(&k) < 0)
		return "TLS handshake";
	EXPECT(&k, "HELLO tls");
	/* Many lines in one TLS write: all must come out, without a new
	   readable event per line. */
	memset(big, 0, sizeof(big));
	for (int i = 0; i < 1000; i++)
		snprintf(big + strlen(big), sizeof(big) - strlen(big),
		    "l%d\r\n", i);
	cli_puts(&k, big);
	for (int i = 0; i < 1000; i++) {
		char want[32];

		snprintf(want, sizeof(want), "ECHO %d l%d",
		    i < 10 ? 2 : i < 100 ? 3 : 4, i);
		EXPECT(&k, want);
	}
	cli_puts(&k, "QUIT\r\n");
	EXPECT(&k, "BYE");
	cli_close(&k);
	/* A plaintext client on the TLS port fails the handshake. */
	if (cli_connect(&k, T.tls_port) < 0)
		return "connect";
	cli_puts(&k, "HELLO\r\n");
	for (;;) {	/* a TLS alert may come first, then EOF or reset */
		ssize_t n = recv(k.fd, k.buf, sizeof(k.buf), 0);

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			break;
		if (n < 0)
			return "plaintext on the TLS port not closed";
		if (memmem(k.buf, (size_t)n, "HELLO", 5) != NULL)
			return "plaintext greeting on the TLS port";
	}
	cli_close(&k);
	return NULL;
}

static const char *
cl_tls_silent(void)
{
	struct cli k;

	/* A client that never starts the handshake is dropped after
	   preauth_timeout. */
	if (cli_connect(&k, T.tls_port) < 0)
		return "connect";
	if (!cli_eof(&k))
		return "silent client on the TLS port not closed";
	cli_close(&k);
	return NULL;
}

static void
test_tls_handshake_timeout(void **state)
{
	T.cfg.preauth_timeout = 0.2;
	run_client(cl_tls_silent);
	spin_loop(3);
	assert_int_equal(T.accepted, 0);
	assert_int_equal(server_conn_count(T.srv), 0);
}

static const char *
cl_starttls_silent(void)
{
	struct cli k;

	/* Asks for TLS, then never starts the handshake. */
	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	cli_puts(&k, "STARTTLS\r\n");
	EXPECT(&k, "GO");
	if (!cli_eof(&k))
		return "stalled STARTTLS handshake not closed";
	cli_close(&k);
	return NULL;
}

/* tls_handshake_timeout applies on its own, however long preauth_timeout
   is (the client's 20 s receive timeout is far above 0.2 s and far below
   the 60 s of preauth_timeout). */
static void
test_tls_handshake_deadline(void **state)
{
	T.cfg.preauth_timeout = 60;
	T.cfg.tls_handshake_timeout = 0.2;
	run_client(cl_tls_silent);
	run_client(cl_starttls_silent);
	spin_loop(3);
	assert_int_equal(T.accepted, 1);
	assert_int_equal(T.tls_fail, 1);
	assert_int_equal(server_conn_count(T.srv), 0);
}

/* Sends COUNT on k until the server holds n connections: the ones the
   client opened without a reply to wait for (a TLS handshake) are in. */
static const char *
wait_count(struct cli *k, unsigned n)
{
	char want[32], line[64];

	snprintf(want, sizeof(want), "COUNT %u", n);
	for (int i = 0; i < 20000; i++) {
		cli_puts(k, "COUNT\r\n");
		if (cli_line(k, line, sizeof(line)) < 0)
			return "EOF in COUNT";
		if (strcmp(line, want) == 0)
			return NULL;
		usleep(1000);
	}
	return "connection count never reached";
}

static const char *
cl_evict(void)
{
	struct cli a, b, hs, n2, n3, n4;
	const char *err;

	/* A full table (3) from 127.0.0.1: a logged-in session, an idle
	   one, a stalled TLS handshake. */
	if (cli_connect(&a, T.port) < 0)
		return "connect a";
	EXPECT(&a, "HELLO plain");
	cli_puts(&a, "AUTH\r\n");
	EXPECT(&a, "AUTHED 1");
	if (cli_connect(&b, T.port) < 0)
		return "connect b";
	EXPECT(&b, "HELLO plain");
	if (cli_connect(&hs, T.tls_port) < 0)
		return "connect hs";
	if ((err = wait_count(&a, 3)) != NULL)
		return err;
	/* A newcomer from another address closes the longest idle one,
	   with the idle goodbye. */
	if (cli_connect_from(&n2, T.port, "127.0.0.2") < 0)
		return "connect 127.0.0.2";
	EXPECT(&n2, "HELLO plain");
	EXPECT(&b, "TIMEOUT");
	if (!cli_eof(&b))
		return "evicted idle connection not closed";
	/* The next one takes the handshake's slot (127.0.0.1 still holds
	   more than 127.0.0.3), not the logged-in session's. */
	if (cli_connect_from(&n3, T.port, "127.0.0.3") < 0)
		return "connect 127.0.0.3";
	EXPECT(&n3, "HELLO plain");
	if (!cli_eof(&hs))
		return "evicted handshake not closed";
	/* 127.0.0.2 and .3 hold one each now, as much as 127.0.0.1's
	   newcomer would: it gets no room; but .4 takes the oldest. */
	if (cli_connect(&n4, T.port) < 0)
		return "connect 4";
	EXPECT(&n4, "421 too many");
	cli_close(&n4);
	if (cli_connect_from(&n4, T.port, "127.0.0.4") < 0)
		return "connect 127.0.0.4";
	EXPECT(&n4, "HELLO plain");
	EXPECT(&n2, "TIMEOUT");
	if (!cli_eof(&n2))
		return "evicted 127.0.0.2 not closed";
	/* The logged-in session survived it all. */
	cli_puts(&a, "hello\r\n");
	EXPECT(&a, "ECHO 5 hello");
	cli_close(&a);
	cli_close(&b);
	cli_close(&hs);
	cli_close(&n2);
	cli_close(&n3);
	cli_close(&n4);
	return NULL;
}

static void
test_evict(void **state)
{
	T.cfg.max_connections = 3;
	run_client(cl_evict);
	/* a, b, n2, n3, n4 (the refused one and the handshake never were) */
	assert_int_equal(T.accepted, 5);
	assert_int_equal(T.timeouts, 2);
}

/* A full table (4): one idle connection from 127.0.0.1, the oldest, and
   three from 127.0.0.2. A newcomer from 127.0.0.3 closes the oldest of
   127.0.0.2's, the address holding the most, not 127.0.0.1's older one. */
static const char *
cl_evict_most(void)
{
	struct cli b, x[3], n;

	if (cli_connect(&b, T.port) < 0)
		return "connect b";
	EXPECT(&b, "HELLO plain");
	for (int i = 0; i < 3; i++) {
		if (cli_connect_from(&x[i], T.port, "127.0.0.2") < 0)
			return "connect 127.0.0.2";
		EXPECT(&x[i], "HELLO plain");
	}
	if (cli_connect_from(&n, T.port, "127.0.0.3") < 0)
		return "connect 127.0.0.3";
	EXPECT(&n, "HELLO plain");
	EXPECT(&x[0], "TIMEOUT");
	if (!cli_eof(&x[0]))
		return "evicted connection of 127.0.0.2 not closed";
	cli_puts(&b, "hello\r\n");
	EXPECT(&b, "ECHO 5 hello");
	cli_puts(&x[1], "hello\r\n");
	EXPECT(&x[1], "ECHO 5 hello");
	cli_close(&b);
	for (int i = 0; i < 3; i++)
		cli_close(&x[i]);
	cli_close(&n);
	return NULL;
}

static void
test_evict_most(void **state)
{
	T.cfg.max_connections = 4;
	run_client(cl_evict_most);
	assert_int_equal(T.accepted, 5);
	assert_int_equal(T.timeouts, 1);
}

static const char *
cl_unauth_limit(void)
{
	struct cli k[4];

	for (int i = 0; i < 2; i++) {
		if (cli_connect(&k[i], T.port) < 0)
			return "connect";
		EXPECT(&k[i], "HELLO plain");
	}
	if (cli_connect(&k[2], T.port) < 0)
		return "connect 3";
	EXPECT(&k[2], "421 too many");
	if (!cli_eof(&k[2]))
		return "no EOF after refusal";
	cli_close(&k[2]);
	/* A login frees its unauthenticated slot; the total per address
	   (5) still counts it. */
	cli_puts(&k[0], "AUTH\r\n");
	EXPECT(&k[0], "AUTHED 1");
	cli_puts(&k[0], "AUTH\r\n");
	EXPECT(&k[0], "AUTHED 1");
	if (cli_connect(&k[2], T.port) < 0)
		return "connect 3 again";
	EXPECT(&k[2], "HELLO plain");
	if (cli_connect(&k[3], T.port) < 0)
		return "connect 4";
	EXPECT(&k[3], "421 too many");
	for (int i = 0; i < 4; i++)
		cli_close(&k[i]);
	return NULL;
}

static void
test_unauth_limit(void **state)
{
	T.cfg.max_unauth_connections_per_ip = 2;
	run_client(cl_unauth_limit);
	assert_int_equal(T.accepted, 3);
}

static const char *
cl_large_reads(void)
{
	static char data[256 * 1024];
	struct cli k, ctl;
	char line[64];
	size_t sent = 0;
	int calls;

	if (cli_connect(&k, T.port) < 0 || cli_connect(&ctl, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	EXPECT(&ctl, "HELLO plain");
	cli_puts(&k, "STALL\r\n");
	EXPECT(&k, "STALLED");
	/* As much of the body as the socket takes waits there before the
	   server reads; the rest follows while it reads. */
	memset(data, 'r', sizeof(data));
	snprintf(line, sizeof(line), "RAW %zu\r\n", sizeof(data));
	cli_puts(&k, line);
	while (sent < sizeof(data)) {
		ssize_t n = send(k.fd, data + sent, sizeof(data) - sent,
		    MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	cli_puts(&ctl, "UNSTALL\r\n");
	EXPECT(&ctl, "UNSTALLED");
	if (cli_send(&k, data + sent, sizeof(data) - sent) < 0)
		return "send";
	EXPECT_PREFIX(&k, "GOT ");
	cli_puts(&ctl, "CALLS\r\n");
	if (cli_line(&ctl, line, sizeof(line)) < 0)
		return "EOF in CALLS";
	calls = atoi(line + 6);
	/* One input() call per loop pass: at 1 KiB a pass this took about
	   256; in large reads a handful (one more per segment the kernel
	   hands over while the server keeps up). */
	if (calls > 64) {
		snprintf(errbuf, sizeof(errbuf), "%d input() calls for 256 KiB",
		    calls);
		return errbuf;
	}
	cli_close(&k);
	cli_close(&ctl);
	return NULL;
}

static void
test_large_reads(void **state)
{
	run_client(cl_large_reads);
}

/* One unfinished 1025-byte line of a connection not logged in: the input
   buffer stays within the line limit and a little (it was 64 KiB); once
   logged in, the same line may use large reads again. */
static const char *
cl_preauth_buffer(void)
{
	static char part[1025];
	struct cli k;
	char line[64];
	size_t cap;

	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	cli_puts(&k, "PROBE 2048\r\n");
	EXPECT(&k, "PROBING");
	memset(part, 'p', sizeof(part));
	for (int authed = 0; authed < 2; authed++) {
		if (cli_send(&k, part, sizeof(part)) < 0)
			return "send";
		cli_puts(&k, "\r\n");
		EXPECT_PREFIX(&k, "ECHO 1025 ppp");
		cli_puts(&k, "CAP\r\n");
		if (cli_line(&k, line, sizeof(line)) < 0)
			return "EOF in CAP";
		cap = (size_t)atol(line + 4);
		if (!authed && (cap < sizeof(part) || cap > 2048 + 2 + 64)) {
			snprintf(errbuf, sizeof(errbuf), "before login: input "
			    "buffer of %zu bytes for a 1025-byte line", cap);
			return errbuf;
		}
		if (authed && cap <= 2048 + 2 + 64) {
			snprintf(errbuf, sizeof(errbuf), "logged in: input "
			    "buffer of %zu bytes, no large reads", cap);
			return errbuf;
		}
		cli_puts(&k, "AUTH\r\n");
		EXPECT(&k, "AUTHED 1");
	}
	cli_close(&k);
	return NULL;
}

static void
test_preauth_buffer(void **state)
{
	run_client(cl_preauth_buffer);
}

static void
test_implicit_tls(void **state)
{
	run_client(cl_implicit_tls);
	spin_loop(3);
	assert_int_equal(T.accepted, 1);
	assert_int_equal(server_conn_count(T.srv), 0);
}

static const char *
cl_compress_common(struct cli *k)
{
	char big[20000];
	char want[64];

	/* The reply to COMPRESS is plain; the line pipelined after it in
	   the same segment is already compressed. */
	if (cli_compress(k) < 0)
		return "zlib init";
	k->zs = false;
	{
		char seg[256];
		size_t n;

		memcpy(seg, "COMPRESS\r\n", 10);
		k->zout.next_in = (Bytef *)"zipped\r\n";
		k->zout.avail_in = 8;
		k->zout.next_out = (Bytef *)seg + 10;
		k->zout.avail_out = sizeof(seg) - 10;
		deflate(&k->zout, Z_SYNC_FLUSH);
		n = sizeof(seg) - k->zout.avail_out;
		if (cli_send_wire(k, seg, n) < 0)
			return "send";
	}
	k->zs = true;
	EXPECT(k, "OK deflate");
	cli_compress_recv(k);
	EXPECT(k, "ECHO 6 zipped");
	cli_puts(k, "INFO\r\n");
	EXPECT_PREFIX(k, "INFO tls=");
	cli_puts(k, "COMPRESS\r\n");
	EXPECT(k, "OK deflate");
	EXPECT(k, "NOCOMPRESS");
	/* Highly compressible bulk both ways. */
	memset(big, 'q', sizeof(big));
	cli_puts(k, "RAW 20000\r\n");
	cli_send(k, big, sizeof(big));
	{
		unsigned sum = 0;

		for (size_t i = 0; i < sizeof(big); i++)
			sum = sum * 31 + 'q';
		snprintf(want, sizeof(want), "GOT %u", sum);
	}
	EXPECT(k, want);
	/* conn_trim drops both zlib states between commands; the stream
	   goes on, and our deflater's back-references into text sent before
	   the trim must still resolve on the server. */
	for (int i = 0; i < 3; i++) {
		char line[300], echo[320];

		snprintf(line, sizeof(line), "long-%080d", i / 2);
		snprintf(echo, sizeof(echo), "ECHO 85 %s", line);
		cli_puts(k, line);
		cli_puts(k, "\r\n");
		EXPECT(k, echo);
		cli_puts(k, "TRIM\r\n");
		EXPECT(k, "TRIMMED");
	}
	cli_puts(k, "QUIT\r\n");
	EXPECT(k, "BYE");
	return NULL;
}

static const char *
cl_compress(void)
{
	struct cli k;
	const char *r;

	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	r = cl_compress_common(&k);
	cli_close(&k);
	if (r != NULL)
		return r;
	/* Inside TLS. */
	if (cli_connect(&k, T.tls_port) < 0)
		return "connect";
	if (cli_tls(&k) < 0)
		return "TLS handshake";
	EXPECT(&k, "HELLO tls");
	r = cl_compress_common(&k);
	cli_close(&k);
	return r;
}

static void
test_compress(void **state)
{
	run_client(cl_compress);
}

static const char *
cl_shutdown(void)
{
	struct cli k, b;

	if (cli_connect(&k, T.port) < 0 || cli_connect(&b, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	EXPECT(&b, "HELLO plain");
	/* b is busy (paused, held) when the stop comes: it gets the reply
	   of its job after the goodbye, then EOF. */
	cli_puts(&b, "ASYNC\r\n");
	EXPECT(&b, "ASYNCSTART");
	kill(getpid(), SIGTERM);
	EXPECT(&k, "SHUTDOWN");
	if (!cli_eof(&k))
		return "no EOF after shutdown";
	EXPECT(&b, "SHUTDOWN");
	EXPECT(&b, "ASYNCDONE");
	if (!cli_eof(&b))
		return "no EOF after shutdown of the busy conn";
	cli_close(&k);
	cli_close(&b);
	return NULL;
}

static void
test_shutdown(void **state)
{
	/* server_run returns once the connection has flushed and closed. */
	start_client(cl_shutdown);
	assert_int_equal(server_run(T.srv, NULL, NULL), 0);
	pthread_join(C.th, NULL);
	if (C.result != NULL)
		fail_msg("client: %s", C.result);
	assert_int_equal(T.shutdowns, 2);
	assert_int_equal(T.closed, 2);
}

static void
on_reload(void *arg)
{
	T.reloads++;
}

static const char *
cl_reload(void)
{
	struct cli k, t;
	char line[64];
	int i;

	if (cli_connect(&k, T.port) < 0)
		return "connect";
	EXPECT(&k, "HELLO plain");
	kill(getpid(), SIGHUP);
	for (i = 0; i < 10000; i++) {
		cli_puts(&k, "RELOADS\r\n");
		if (cli_line(&k, line, sizeof(line)) < 0)
			return "EOF in RELOADS";
		if (strcmp(line, "RELOADS 1") == 0)
			break;
		usleep(1000);
	}
	if (i == 10000)
		return "reload() never called";
	/* The certificate could not be reloaded: the old one still works. */
	if (cli_connect(&t, T.tls_port) < 0)
		return "connect tls";
	if (cli_tls(&t) < 0)
		return "TLS handshake after a failed reload";
	EXPECT(&t, "HELLO tls");
	kill(getpid(), SIGTERM);
	EXPECT(&k, "SHUTDOWN");
	EXPECT(&t, "SHUTDOWN");
	if (!cli_eof(&k) || !cli_eof(&t))
		return "no EOF after shutdown";
	cli_close(&k);
	cli_close(&t);
	return NULL;
}

static void
test_reload(void **state)
{
	free(T.cfg.tls_cert);
	T.cfg.tls_cert = xstrdup("/nonexistent/cert.pem");
	start_client(cl_reload);
	assert_int_equal(server_run(T.srv, on_reload, NULL), 0);
	pthread_join(C.th, NULL);
	if (C.result != NULL)
		fail_msg("client: %s", C.result);
	assert_int_equal(T.reloads, 1);
	assert_true(server_has_tls(T.srv));
	assert_int_equal(T.closed, 2);
}

static int v6_port;

static const char *
cl_ipv6(void)
{
	struct sockaddr_in6 sin6;
	struct cli k;

	memset(&k, 0, sizeof(k));
	k.fd = socket(AF_INET6, SOCK_STREAM, 0);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons((uint16_t)v6_port);
	sin6.sin6_addr = in6addr_loopback;
	if (connect(k.fd, (struct sockaddr *)&sin6, sizeof(sin6)) < 0)
		return "connect ::1";
	EXPECT(&k, "HELLO plain");
	cli_puts(&k, "INFO\r\n");
	EXPECT_PREFIX(&k, "INFO tls=- cipher=- z=0 id=");
	cli_close(&k);
	/* The IPv4 socket on the same port answers as well. */
	if (cli_connect(&k, v6_port) < 0)
		return "connect 127.0.0.1";
	EXPECT(&k, "HELLO plain");
	cli_close(&k);
	return NULL;
}

static void
test_ipv6_and_v4_same_port(void **state)
{
	char err[256], list[64];
	size_t n = server_listener_count(T.srv);
	int tries;

	/* [::] is V6ONLY, so 0.0.0.0 can take the same port. Another
	   program may hold the v4 side of a kernel-chosen port: retry. */
	for (tries = 0; tries < 10; tries++) {
		if (server_listen(T.srv, "[::]:0", 3, false, err,
		    sizeof(err)) < 0)
			fail_msg("%s", err);
		v6_port = server_bound_port(T.srv, n++);
		snprintf(list, sizeof(list), "0.0.0.0:%d", v6_port);
		if (server_listen(T.srv, list, 3, false, err, sizeof(err)) == 0)
			break;
		assert_non_null(strstr(err, "cannot bind 0.0.0.0:"));
	}
	assert_true(tries < 10);
	/* A port in use is reported with the address. */
	snprintf(list, sizeof(list), "127.0.0.1:%d", T.port);
	assert_int_equal(server_listen(T.srv, list, 1, false, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "cannot bind 127.0.0.1:"));
	assert_non_null(strstr(err, "in use"));
	run_client(cl_ipv6);
	spin_loop(3);
	assert_int_equal(T.accepted, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_pipelined, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lines_bytewise, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_total_limit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_starttls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_implicit_tls, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls_handshake_timeout,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_handshake_deadline,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_most, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unauth_limit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_large_reads, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_preauth_buffer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_compress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_and_v4_same_port,
		    setup, teardown),
	};

	log_init("test", getenv("TEST_LOG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
