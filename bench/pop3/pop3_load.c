/* pop3_load: a POP3 load generator for the benchmark. Logs in (USER/PASS,
   plain or implicit TLS) and RETRs messages 1..N, either one by one
   (-d 1) or with up to D commands in flight (-d D); with -P it runs P
   sessions at once in child processes, session i logging in as the -u
   format with i (e.g. "p%d@bench.test"). Times only the RETR phase, after
   every session has logged in. Prints one line of key=value figures.
   Works against any POP3 server (Dovecot too). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct cli {
	int fd;
	SSL *ssl;
	char *buf;
	size_t len, cap, off;
};

static const char *host = "127.0.0.1", *user_fmt = "big@bench.test";
static const char *pass = "bench";
static int port = 110, use_tls, depth = 1, nmsgs = 10000, npar = 1;
static int server_pid;      /* -R: report this process's peak RSS */

/* Resets the peak RSS of server_pid (clear_refs 5), so that the figure
   covers the RETR phase only and not the Argon2id work of the logins. */
static void
rss_reset(void)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/clear_refs", server_pid);
	if ((f = fopen(path, "w")) != NULL) {
		fputs("5", f);
		fclose(f);
	}
}

/* utime + stime of server_pid in seconds: unlike wall time, this does
   not depend on what else the machine is doing. */
static double
server_cpu_s(void)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", server_pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* fields after the ")" of the command name: state is field 3,
	   utime 14, stime 15 */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long
rss_peak_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", server_pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = atol(line + 6);
	}
	fclose(f);
	return kb;
}

static void
die(const char *m)
{
	fprintf(stderr, "pop3_load: %s (%s)\n", m, strerror(errno));
	exit(1);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
cli_write(struct cli *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = c->ssl ? SSL_write(c->ssl, p, (int)n)
		    : write(c->fd, p, n);

		if (w <= 0) {
			if (!c->ssl && w < 0 && errno == EINTR)
				continue;
			die("write");
		}
		p += w;
		n -= (size_t)w;
	}
}

static void
cli_fill(struct cli *c)
{
	ssize_t r;

	if (c->off > 0) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->cap - c->len < 65536) {
		c->cap = c->cap * 2 + 65536;
		c->buf = realloc(c->buf, c->cap);
		if (c->buf == NULL)
			die("realloc");
	}
	r = c->ssl ? SSL_read(c->ssl, c->buf + c->len, (int)(c->cap - c->len))
	    : read(c->fd, c->buf + c->len, c->cap - c->len);
	if (r <= 0)
		die("read: connection closed");
	c->len += (size_t)r;
}

/* Reads one status line and consumes it; exits unless it is +OK. */
static void
read_status(struct cli *c, const char *what)
{
	char *e;

	while ((e = memmem(c->buf + c->off, c->len - c->off, "\r\n", 2)) ==
	    NULL)
		cli_fill(c);
	if (strncmp(c->buf + c->off, "+OK", 3) != 0) {
		fprintf(stderr, "pop3_load: %s: %.*s\n", what,
		    (int)(e - (c->buf + c->off)), c->buf + c->off);
		exit(1);
	}
	c->off = (size_t)(e - c->buf) + 2;
}

/* Reads a RETR reply; returns the bytes of the message data on the wire. */
static size_t
read_retr(struct cli *c)
{
	size_t start, scan;
	char *t;

	read_status(c, "RETR");
	/* The status line's CRLF is the one in front of an empty body's
	   terminator: search from there. */
	start = c->off - 2;
	scan = start;
	for (;;) {
		t = memmem(c->buf + scan, c->len - scan, "\r\n.\r\n", 5);
		if (t != NULL)
			break;
		if (c->len - scan > 4)
			scan = c->len - 4;
		{
			/* cli_fill may move the data: keep offsets relative. */
			size_t rs = start - c->off, rc = scan - c->off;

			cli_fill(c);
			start = c->off + rs;
			scan = c->off + rc;
		}
	}
	c->off = (size_t)(t - c->buf) + 5;
	return (size_t)(t - c->buf) - start;
}

static void
cli_connect(struct cli *c, SSL_CTX *ctx)
{
	struct sockaddr_in sa;
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &sa.sin_addr);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (use_tls) {
		c->ssl = SSL_new(ctx);
		SSL_set_fd(c->ssl, c->fd);
		if (SSL_connect(c->ssl) != 1)
			die("TLS handshake");
	}
}

static void
login(struct cli *c, const char *user)
{
	char line[512];

	read_status(c, "greeting");
	snprintf(line, sizeof(line), "USER %s\r\n", user);
	cli_write(c, line, strlen(line));
	read_status(c, "USER");
	snprintf(line, sizeof(line), "PASS %s\r\n", pass);
	cli_write(c, line, strlen(line));
	read_status(c, "PASS");
}

/* RETRs 1..nmsgs with up to depth in flight; returns wire bytes. */
static size_t
retr_all(struct cli *c)
{
	char line[64];
	int sent = 0, got = 0;
	size_t bytes = 0;

	while (got < nmsgs) {
		/* Batch the commands of a window into one write. */
		char batch[64 * 64];
		size_t bl = 0;

		while (sent < nmsgs && sent - got < depth &&
		    bl + 32 < sizeof(batch)) {
			int n = snprintf(line, sizeof(line), "RETR %d\r\n",
			    ++sent);
			memcpy(batch + bl, line, (size_t)n);
			bl += (size_t)n;
		}
		if (bl > 0)
			cli_write(c, batch, bl);
		bytes += read_retr(c);
		got++;
	}
	return bytes;
}

static void
quit(struct cli *c)
{
	cli_write(c, "QUIT\r\n", 6);
	read_status(c, "QUIT");
	if (c->ssl)
		SSL_free(c->ssl);
	close(c->fd);
	free(c->buf);
}

static void
usage(void)
{
	fprintf(stderr, "usage: pop3_load [-h host] [-p port] [-t] [-u user|fmt] "
	    "[-w pass] [-n msgs] [-d depth] [-P sessions] [-R server-pid]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	int ch, i, ready[2], go[2], res[2];
	SSL_CTX *ctx = NULL;
	double t0, t1, cpu0 = 0;
	size_t total = 0;
	char buf[1];

	while ((ch = getopt(argc, argv, "h:p:tu:w:n:d:P:R:")) != -1) {
		switch (ch) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 't': use_tls = 1; break;
		case 'u': user_fmt = optarg; break;
		case 'w': pass = optarg; break;
		case 'n': nmsgs = atoi(optarg); break;
		case 'd': depth = atoi(optarg); break;
		case 'P': npar = atoi(optarg); break;
		case 'R': server_pid = atoi(optarg); break;
		default: usage();
		}
	}
	if (depth < 1 || depth > 64 || nmsgs < 1 || npar < 1)
		usage();
	if (use_tls) {
		ctx = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (pipe(ready) < 0 || pipe(go) < 0 || pipe(res) < 0)
		die("pipe");
	for (i = 0; i < npar; i++) {
		if (fork() == 0) {
			struct cli c;
			char user[256];
			size_t bytes;

			close(go[1]);
			snprintf(user, sizeof(user), user_fmt, i + 1);
			cli_connect(&c, ctx);
			login(&c, user);
			if (write(ready[1], "r", 1) != 1)
				die("ready");
			if (read(go[0], buf, 1) < 0)   /* EOF: start */
				die("go");
			bytes = retr_all(&c);
			quit(&c);
			if (write(res[1], &bytes, sizeof(bytes)) !=
			    sizeof(bytes))
				die("result");
			_exit(0);
		}
	}
	close(go[0]);
	close(ready[1]);
	close(res[1]);
	for (i = 0; i < npar; i++) {
		if (read(ready[0], buf, 1) != 1)
			die("a session failed to log in");
	}
	if (server_pid > 0) {
		rss_reset();
		cpu0 = server_cpu_s();
	}
	t0 = now();
	close(go[1]);
	for (i = 0; i < npar; i++) {
		size_t b;

		if (read(res[0], &b, sizeof(b)) != sizeof(b))
			die("a session failed");
		total += b;
	}
	t1 = now();
	while (wait(NULL) > 0)
		;
	printf("sessions=%d msgs_per_session=%d depth=%d tls=%s seconds=%.3f "
	    "msgs_per_s=%.0f MB_per_s=%.1f", npar, nmsgs, depth,
	    use_tls ? "yes" : "no", t1 - t0, npar * nmsgs / (t1 - t0),
	    total / (t1 - t0) / 1e6);
	if (server_pid > 0)
		printf(" server_cpu_s=%.3f server_peak_rss_retr=%ldkB",
		    server_cpu_s() - cpu0, rss_peak_kb());
	printf("\n");
	if (ctx)
		SSL_CTX_free(ctx);
	return 0;
}
