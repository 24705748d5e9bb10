/* smtp_load: an SMTP load generator for any host:port (ours or Postfix).
   N concurrent sessions (one thread each, blocking sockets) send messages
   of a given size, MAIL/RCPT/DATA one command at a time like a plain
   client, reusing the connection (or one message per connection with -1).
   Prints the accepted count, the elapsed time and the rate; exits non-zero
   if any message was refused. Plain TCP only: load, not TLS, is measured.
   -a B64 sends "AUTH PLAIN B64" after EHLO (a submission listener with
   allow_plaintext_auth), once per connection.

   cc -O2 -pthread -o smtp_load smtp_load.c */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host = "127.0.0.1", *port = "10025";
static const char *from = "load@remote.test", *rcpt = "bench@example.test";
static const char *auth_plain;
static long total = 1000, size = 1024;
static int sessions = 10, one_per_conn;
static atomic_long next_msg, ok_msgs, bad_msgs;
static char *body;
static size_t body_len;

#include "smtp_client.h"

static void *
run(void *arg)
{
	struct io io = { .fd = -1 };
	char line[512];

	(void)arg;
	for (;;) {
		if (atomic_fetch_add(&next_msg, 1) >= total)
			break;
		if (io.fd < 0) {
			io.fd = dial(host, port);
			io.len = 0;
			if (io.fd < 0 || reply(&io) != 220 ||
			    cmd(&io, "EHLO load.test\r\n", 250) < 0)
				goto fail;
			snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n",
			    auth_plain != NULL ? auth_plain : "");
			if (auth_plain != NULL && cmd(&io, line, 235) < 0)
				goto fail;
		}
		snprintf(line, sizeof(line), "MAIL FROM:<%s>\r\n", from);
		if (cmd(&io, line, 250) < 0)
			goto fail;
		snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", rcpt);
		if (cmd(&io, line, 250) < 0 || cmd(&io, "DATA\r\n", 354) < 0)
			goto fail;
		if (send_all(io.fd, body, body_len) < 0 || reply(&io) != 250)
			goto fail;
		atomic_fetch_add(&ok_msgs, 1);
		if (one_per_conn) {
			cmd(&io, "QUIT\r\n", 221);
			close(io.fd);
			io.fd = -1;
		}
		continue;
fail:
		atomic_fetch_add(&bad_msgs, 1);
		if (io.fd >= 0)
			close(io.fd);
		io.fd = -1;
	}
	if (io.fd >= 0) {
		cmd(&io, "QUIT\r\n", 221);
		close(io.fd);
	}
	return NULL;
}

static void
make_body(void)
{
	size_t cap = (size_t)size + 1024, n;
	char *p;

	body = malloc(cap);
	n = (size_t)snprintf(body, cap, "From: <%s>\r\nTo: <%s>\r\n"
	    "Subject: load test\r\n\r\n", from, rcpt);
	p = body + n;
	/* 76-character lines of text up to the size, then the final dot. */
	while ((long)(p - body) < size) {
		size_t l = 76;
		memset(p, 'a' + (int)((p - body) % 26), l);
		p[l] = '\r';
		p[l + 1] = '\n';
		p += l + 2;
	}
	memcpy(p, ".\r\n", 3);
	body_len = (size_t)(p - body) + 3;
}

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	int ch;
	pthread_t *th;
	double t0, t1;
	struct rusage ru;

	while ((ch = getopt(argc, argv, "h:p:n:c:s:f:t:1a:")) != -1) {
		switch (ch) {
		case 'h': host = optarg; break;
		case 'p': port = optarg; break;
		case 'n': total = atol(optarg); break;
		case 'c': sessions = atoi(optarg); break;
		case 's': size = atol(optarg); break;
		case 'f': from = optarg; break;
		case 't': rcpt = optarg; break;
		case '1': one_per_conn = 1; break;
		case 'a': auth_plain = optarg; break;
		default:
			fprintf(stderr, "usage: smtp_load [-h host] [-p port] "
			    "[-n messages] [-c sessions] [-s bytes] [-f from] "
			    "[-t rcpt] [-1] [-a auth-plain-b64]\n");
			return 2;
		}
	}
	make_body();
	th = calloc((size_t)sessions, sizeof(*th));
	t0 = now();
	for (int i = 0; i < sessions; i++)
		pthread_create(&th[i], NULL, run, NULL);
	for (int i = 0; i < sessions; i++)
		pthread_join(th[i], NULL);
	t1 = now();
	getrusage(RUSAGE_SELF, &ru);
	printf("messages=%ld failed=%ld seconds=%.3f rate=%.1f "
	    "client_cpu=%.3f\n", (long)ok_msgs, (long)bad_msgs, t1 - t0,
	    (double)ok_msgs / (t1 - t0),
	    ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	free(th);
	free(body);
	return bad_msgs > 0 ? 1 : 0;
}
