/* inload: the inbound checks benchmark's SMTP load generator. Like
   bench/smtp/smtp_load (N sessions, one thread each, connections reused,
   one command at a time) but the messages are prepared ones, taken in
   turn from a set file: the checks need real signatures and envelope
   senders whose SPF and DMARC records exist, which a generated body has
   not. A C client, so the generator's own CPU stays small beside the
   server's on a 2-core machine.

   Set file: records of "SENDER LENGTH\n" followed by LENGTH bytes of
   DATA content already dot-stuffed and ending in "\r\n.\r\n".

   cc -O2 -pthread -o inload inload.c
   inload -p PORT -n MESSAGES -c SESSIONS -m SETFILE -t RCPT [-h HOST] */
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../smtp/smtp_client.h"

struct msg {
	char from[256];
	char *data;
	size_t len;
};

static const char *host = "127.0.0.1", *port, *rcpt = "bench@example.test";
static long total = 1000;
static int sessions = 10;
static struct msg *msgs;
static size_t nmsgs;
static atomic_long next_msg, ok_msgs, bad_msgs;

static int
load_set(const char *path)
{
	FILE *f = fopen(path, "rb");
	char head[512];
	size_t cap = 0;

	if (f == NULL)
		return -1;
	while (fgets(head, sizeof(head), f) != NULL) {
		struct msg m;
		if (sscanf(head, "%255s %zu", m.from, &m.len) != 2)
			break;
		m.data = malloc(m.len);
		if (m.data == NULL || fread(m.data, 1, m.len, f) != m.len)
			break;
		if (nmsgs == cap) {
			cap = cap ? cap * 2 : 16;
			msgs = realloc(msgs, cap * sizeof(*msgs));
		}
		msgs[nmsgs++] = m;
	}
	fclose(f);
	return nmsgs > 0 ? 0 : -1;
}

static int
one(struct io *io, const struct msg *m)
{
	char line[512];

	if (io->fd < 0) {
		io->fd = dial(host, port);
		io->len = 0;
		if (io->fd < 0 || reply(io) != 220 ||
		    cmd(io, "EHLO client.bench.test\r\n", 250) < 0)
			return -1;
	}
	snprintf(line, sizeof(line), "MAIL FROM:<%s>\r\n", m->from);
	if (cmd(io, line, 250) < 0)
		return -1;
	snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", rcpt);
	if (cmd(io, line, 250) < 0 || cmd(io, "DATA\r\n", 354) < 0)
		return -1;
	if (send_all(io->fd, m->data, m->len) < 0 || reply(io) != 250)
		return -1;
	return 0;
}

static void *
run(void *arg)
{
	struct io io = { .fd = -1 };

	(void)arg;
	for (;;) {
		long i = atomic_fetch_add(&next_msg, 1);
		if (i >= total)
			break;
		if (one(&io, &msgs[(size_t)i % nmsgs]) == 0) {
			atomic_fetch_add(&ok_msgs, 1);
			continue;
		}
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
	const char *set = NULL;
	pthread_t *th;
	double t0, t1;
	int ch;

	while ((ch = getopt(argc, argv, "h:p:n:c:m:t:")) != -1) {
		switch (ch) {
		case 'h': host = optarg; break;
		case 'p': port = optarg; break;
		case 'n': total = atol(optarg); break;
		case 'c': sessions = atoi(optarg); break;
		case 'm': set = optarg; break;
		case 't': rcpt = optarg; break;
		default:
			fprintf(stderr, "usage: inload -p port -n messages "
			    "-c sessions -m setfile [-t rcpt] [-h host]\n");
			return 2;
		}
	}
	if (port == NULL || set == NULL || sessions < 1 ||
	    load_set(set) < 0) {
		fprintf(stderr, "inload: need -p and a readable -m set\n");
		return 2;
	}
	th = calloc((size_t)sessions, sizeof(*th));
	t0 = now();
	for (int i = 0; i < sessions; i++)
		pthread_create(&th[i], NULL, run, NULL);
	for (int i = 0; i < sessions; i++)
		pthread_join(th[i], NULL);
	t1 = now();
	printf("messages=%ld failed=%ld seconds=%.3f rate=%.1f\n",
	    (long)ok_msgs, (long)bad_msgs, t1 - t0,
	    (double)ok_msgs / (t1 - t0));
	free(th);
	for (size_t i = 0; i < nmsgs; i++)
		free(msgs[i].data);
	free(msgs);
	return bad_msgs > 0 ? 1 : 0;
}
