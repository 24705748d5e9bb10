/* conn_send: conn_send_fd, streaming a region of a file to a peer with
   back-pressure: a chunk is read only while the output queue is below the
   high-water mark, through the daemon's filter (POP3 byte-stuffing, TOP's
   line count). It never reads ahead of the peer and never interprets the
   bytes beyond handing them to the filter. Loop thread only. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "conn_private.h"
#include "log.h"
#include "util.h"

/* The file is read in chunks of this size: few syscalls, and a 50 MB
   message costs no more than this plus the output queue. */
#define SEND_CHUNK (64 * 1024)

struct conn_send {
	int fd;
	uint64_t off, left;
	conn_filter_cb *filter;
	conn_send_done_cb *done;
	void *arg;
	struct buf out;             /* the filter's output, reused */
};

void
conn_send_free(struct conn *c)
{
	struct conn_send *x = c->send;

	if (x == NULL)
		return;
	c->send = NULL;
	close(x->fd);
	buf_free(&x->out);
	free(x);
}

/* Queues chunks until the output is congested. 1 once the stream is
   complete (and freed), 0 to wait for a drain, -1 if the conn died. */
static int
send_pump(struct conn *c)
{
	/* Everything runs on the loop thread: one chunk buffer for all. */
	static char chunk[SEND_CHUNK];
	struct conn_send *x = c->send;
	size_t want;
	ssize_t n;
	bool last;
	int more;

	while (!c->congested) {
		/* Never past the region: that saves the read that would
		   only report EOF. */
		want = x->left < sizeof(chunk) ? (size_t)x->left : sizeof(chunk);
		n = want == 0 ? 0 : pread(x->fd, chunk, want, (off_t)x->off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* Part of the reply is out: no clean way to say so. */
			log_warn("%s send-file result=read-error", c->id);
			conn_send_free(c);
			conn_fail(c, "file-read-error");
			return -1;
		}
		x->off += (uint64_t)n;
		x->left -= (uint64_t)n;
		last = n == 0 || x->left == 0;
		more = 1;
		if (x->filter != NULL) {
			buf_reset(&x->out);
			more = x->filter(x->arg, chunk, (size_t)n, last, &x->out);
			conn_write(c, x->out.data, x->out.len);
		} else {
			conn_write(c, chunk, (size_t)n);
		}
		if (c->phase == PH_DEAD)
			return -1;	/* conn_shut freed the stream */
		if (last || more == 0) {
			conn_send_free(c);
			return 1;
		}
	}
	return 0;
}

/* The peer took output: go on, and tell the daemon once done. */
void
conn_send_continue(struct conn *c)
{
	conn_send_done_cb *done = c->send->done;
	void *arg = c->send->arg;

	/* Taking output is progress: the idle timer restarts. */
	c->progress++;
	if (send_pump(c) != 1)
		return;
	if (done != NULL)
		done(c, arg);
	if (c->srv->stopping && c->phase == PH_OPEN && c->pauses == 0)
		conn_close(c);	/* the stop waited for this reply */
}

int
conn_send_fd(struct conn *c, int fd, uint64_t off, uint64_t len,
    conn_filter_cb *filter, conn_send_done_cb *done, void *arg)
{
	struct conn_send *x;

	if (c->send != NULL || c->phase == PH_DEAD) {
		close(fd);
		return c->send != NULL ? -1 : 1;
	}
	x = xcalloc(1, sizeof(*x));
	x->fd = fd;
	x->off = off;
	x->left = len;
	x->filter = filter;
	x->done = done;
	x->arg = arg;
	buf_init(&x->out);
	c->send = x;
	return send_pump(c) == 0 ? 0 : 1;
}

bool
conn_is_sending(const struct conn *c)
{
	return c->send != NULL;
}

