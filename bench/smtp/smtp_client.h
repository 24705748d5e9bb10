/* smtp_client.h: the blocking SMTP client pieces the load generators share
   (bench/smtp/smtp_load.c, bench/inbound/inload.c): dial, write all,
   read one whole reply, send a command and check its code. Header-only,
   so each generator stays one cc command. */
#ifndef SMTP_CLIENT_H
#define SMTP_CLIENT_H
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct io {
	int fd;
	char buf[8192];
	size_t len;
};

static int
dial(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1, one = 1;

	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one complete reply; returns its code or -1. */
static int
reply(struct io *io)
{
	for (;;) {
		char *nl;

		while ((nl = memchr(io->buf, '\n', io->len)) != NULL) {
			size_t l = (size_t)(nl - io->buf) + 1;
			int code = atoi(io->buf);
			int more = l > 3 && io->buf[3] == '-';

			memmove(io->buf, io->buf + l, io->len - l);
			io->len -= l;
			if (!more)
				return code;
		}
		if (io->len == sizeof(io->buf))
			return -1;
		ssize_t r = read(io->fd, io->buf + io->len,
		    sizeof(io->buf) - io->len);
		if (r <= 0)
			return -1;
		io->len += (size_t)r;
	}
}

static int
cmd(struct io *io, const char *line, int want)
{
	if (send_all(io->fd, line, strlen(line)) < 0)
		return -1;
	return reply(io) == want ? 0 : -1;
}

#endif
