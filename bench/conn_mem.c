/* conn_mem: a minimal daemon on libcommon's conn layer, to measure what an
   idle connection costs (struct conn, buffers, OpenSSL state), without any
   protocol session on top. Listens on 127.0.0.1 plain and implicit TLS with
   kernel-chosen ports and prints "PORTS <plain> <tls>". Each connection gets
   a one-line greeting and a 64-byte session. Commands on any connection:
   STATS -> "STATS conns=N heap=BYTES rss=KIB", TRIM -> conn_trim() on every
   other connection, then "TRIMMED", COMPRESS -> COMPRESS=DEFLATE on,
   NOOP -> "OK noop". Driven by bench/conn_mem.py. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "util.h"

struct sess {
	struct sess *prev, *next;
	struct conn *c;
	char pad[64 - 3 * sizeof(void *)];
};

static struct sess *all;
static struct server *srv;

static long
rss_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void *
on_accept(struct conn *c, int tag)
{
	struct sess *s = xcalloc(1, sizeof(*s));

	s->c = c;
	s->next = all;
	if (all != NULL)
		all->prev = s;
	all = s;
	conn_set_timeout(c, 1800);
	conn_puts(c, "* OK ready\r\n");
	return s;
}

static void
on_input(struct conn *c, void *arg)
{
	struct mallinfo2 mi;
	char *line;
	size_t len;

	while (conn_getline(c, &line, &len) == 1) {
		if (strcmp(line, "STATS") == 0) {
			malloc_trim(0);
			mi = mallinfo2();
			conn_printf(c, "STATS conns=%u heap=%zu rss=%ld\r\n",
			    server_conn_count(srv), mi.uordblks, rss_kib());
		} else if (strcmp(line, "COMPRESS") == 0) {
			conn_puts(c, "OK deflate\r\n");
			conn_start_compress(c);
		} else if (strcmp(line, "NOOP") == 0) {
			conn_puts(c, "OK noop\r\n");
		} else if (strcmp(line, "TRIM") == 0) {
			for (struct sess *s = all; s != NULL; s = s->next)
				if (s->c != c)
					conn_trim(s->c);
			conn_puts(c, "TRIMMED\r\n");
		} else {
			conn_puts(c, "? unknown\r\n");
		}
	}
}

static void
on_closed(struct conn *c, void *arg)
{
	struct sess *s = arg;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		all = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s);
}

static const struct conn_handlers handlers = {
	.accept = on_accept,
	.input = on_input,
	.closed = on_closed,
};

int
main(int argc, char **argv)
{
	struct config cfg;
	struct server_params p = { 0 };
	char err[512];
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: conn_mem CERT KEY\n");
		return 2;
	}
	log_init("conn_mem", LOG_LVL_WARN);
	config_init(&cfg);
	cfg.max_connections = 0;
	cfg.max_connections_per_ip = 0;
	cfg.max_unauth_connections_per_ip = 0;
	cfg.tls_cert = xstrdup(argv[1]);
	cfg.tls_key = xstrdup(argv[2]);
	p.name = "conn_mem";
	p.loop = EV_DEFAULT;
	p.cfg = &cfg;
	p.h = &handlers;
	p.line_limit = 8192;
	srv = server_new(&p);
	if (server_tls_load(srv, argv[1], argv[2], err, sizeof(err)) < 0 ||
	    server_listen(srv, "127.0.0.1:0", 0, false, err, sizeof(err)) < 0 ||
	    server_listen(srv, "127.0.0.1:0", 1, true, err, sizeof(err)) < 0) {
		fprintf(stderr, "conn_mem: %s\n", err);
		return 1;
	}
	printf("PORTS %d %d\n", server_bound_port(srv, 0),
	    server_bound_port(srv, 1));
	fflush(stdout);
	rc = server_run(srv, NULL, NULL);
	server_free(&srv);
	config_free(&cfg);
	return rc;
}
