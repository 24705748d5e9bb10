/* Unit tests for common/session.c (the command-table lookup, the state
   setter, the one close path, suspension around a worker job) and the two
   conn changes it relies on: a close asked for while the conn is held
   completes at the last release, and conn_send_fd streams a file with
   back-pressure to a slow reader. A real server on 127.0.0.1 with a
   kernel-chosen port runs on this thread's loop; the client is a
   non-blocking socket driven from the same thread, so nothing depends on
   wall-clock time: the test runs the loop until the awaited event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "config.h"
#include "conn.h"
#include "daemon.h"
#include "log.h"
#include "session.h"
#include "util.h"
#include "worker.h"

/* ---------------------------------------------------------- cmd_lookup */

enum { ST_A = 1 << 0, ST_B = 1 << 1, ST_C = 1 << 2 };

struct row {
	struct cmd_def def;
	int id;
};

static const struct row table[] = {
	{ { "NOOP", ST_A | ST_B, 0, 0, 0, NULL }, 1 },
	{ { "USER", ST_A,        1, 1, 0, NULL }, 2 },
	{ { "PASS", ST_A,        1, CMD_ARGS_ANY, CMD_F_SECRET, NULL }, 3 },
	{ { "LIST", ST_B,        0, 1, 0, NULL }, 4 },
	{ { "TOP",  ST_B | ST_C, 2, 2, 0, "msg n" }, 5 },
};

static void
test_lookup(void **state)
{
	static const struct {
		const char *name;
		unsigned st, nargs;
		int index;
		enum cmd_check check;
	} cases[] = {
		{ "NOOP", ST_A, 0, 0, CMD_OK },
		{ "noop", ST_B, 0, 0, CMD_OK },         /* without case */
		{ "NOOP", ST_C, 0, 0, CMD_ESTATE },
		{ "NOOP", ST_A, 1, 0, CMD_EARITY },
		{ "USER", ST_A, 0, 1, CMD_EARITY },     /* too few */
		{ "USER", ST_A, 2, 1, CMD_EARITY },     /* too many */
		{ "USER", ST_B, 5, 1, CMD_ESTATE },     /* state before arity */
		{ "PASS", ST_A, 9, 2, CMD_OK },         /* no upper bound */
		{ "PASS", ST_A, 0, 2, CMD_EARITY },
		{ "LIST", ST_B, 1, 3, CMD_OK },
		{ "TOP",  ST_C, 2, 4, CMD_OK },
		{ "TOP",  ST_C, 1, 4, CMD_EARITY },
		{ "RETR", ST_B, 1, -1, CMD_EUNKNOWN },
		{ "NOOPX", ST_A, 0, -1, CMD_EUNKNOWN },
		{ "", ST_A, 0, -1, CMD_EUNKNOWN },
	};
	enum cmd_check chk;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		r = CMD_LOOKUP(table, cases[i].name, cases[i].st,
		    cases[i].nargs, &chk);
		assert_int_equal(r, cases[i].index);
		assert_int_equal(chk, cases[i].check);
		if (r >= 0)
			assert_int_equal(table[r].id, r + 1);
	}
}

/* ------------------------------------------------------------- daemon */

static const char *const names[] = { "alpha", "beta", "gamma" };
static const struct session_class tclass = {
	.name = "test", .state_names = names, .nstates = ARRAY_SIZE(names),
};

struct tsess {
	struct session base;
	char fill[8];
};

static struct {
	struct daemon d;
	struct config cfg;
	struct ev_loop *loop;
	int port;
	int accepted, closed, dones, filter_calls, work_ran;
	struct tsess *last;
	size_t max_outq;
	const char *file;
	bool stream_done;
} T;

static void *
d_accept(struct conn *c, int tag)
{
	struct tsess *s = xcalloc(1, sizeof(*s));

	(void)tag;
	session_init(&s->base, c, &tclass, ST_A);
	T.accepted++;
	T.last = s;
	conn_puts(c, "HELLO\r\n");
	return s;
}

/* Upper-cases the file and ends with "END". */
static int
upper_filter(void *arg, const char *in, size_t len, bool last,
    struct buf *out)
{
	size_t i;

	(void)arg;
	T.filter_calls++;
	for (i = 0; i < len; i++)
		buf_putc(out, (char)(in[i] >= 'a' && in[i] <= 'z' ?
		    in[i] - 32 : in[i]));
	if (last)
		buf_puts(out, "END\r\n");
	return last ? 0 : 1;
}

static void
send_done(struct conn *c, void *arg)
{
	(void)c;
	(void)arg;
	T.stream_done = true;
}

static void
work_fn(void *arg)
{
	int *ran = arg;

	*ran = 1;
}

static enum cmd_result
work_done(struct session *s, void *arg)
{
	int *ran = arg;

	conn_printf(s->c, "DONE %d\r\n", *ran);
	return CMD_DONE;
}

static void
d_input(struct conn *c, void *sess)
{
	struct tsess *s = sess;
	char *line;
	size_t len;
	int fd;

	if (conn_getline(c, &line, &len) <= 0)
		return;
	if (strcmp(line, "STATE") == 0) {
		session_set_state(&s->base, ST_C);
		conn_printf(c, "STATE %s\r\n",
		    session_state_name(&s->base, s->base.state));
	} else if (strcmp(line, "BYE") == 0) {
		conn_puts(c, "GOODBYE\r\n");
		session_close(&s->base, "test");
		session_close(&s->base, "twice");
	} else if (strcmp(line, "HOLD") == 0) {
		session_suspend(&s->base);
		conn_puts(c, "HELD\r\n");
	} else if (strcmp(line, "WORK") == 0) {
		T.work_ran = 0;
		session_submit(&s->base, work_fn, work_done, &T.work_ran);
	} else if (strcmp(line, "SEND") == 0) {
		fd = open(T.file, O_RDONLY);
		assert_true(fd >= 0);
		conn_puts(c, "FILE\r\n");
		if (conn_send_fd(c, fd, 0, UINT64_MAX, upper_filter,
		    send_done, NULL) == 1)
			T.stream_done = true;
	} else {
		conn_printf(c, "ECHO %s\r\n", line);
	}
}

static void
d_drain(struct conn *c, void *sess)
{
	(void)c;
	(void)sess;
}

static void
d_closed(struct conn *c, void *sess)
{
	(void)c;
	T.closed++;
	if (T.last == sess)
		T.last = NULL;
	free(sess);
}

static const struct conn_handlers handlers = {
	.accept = d_accept, .input = d_input, .drain = d_drain,
	.closed = d_closed,
};

static int
setup(void **state)
{
	struct server_params sp;
	char err[256];

	(void)state;
	memset(&T, 0, sizeof(T));
	log_init("test", LOG_LVL_WARN);
	config_init(&T.cfg);
	T.loop = ev_default_loop(0);
	T.d.loop = T.loop;
	T.d.cfg = &T.cfg;
	T.d.workers = worker_pool_new(T.loop, 1);
	memset(&sp, 0, sizeof(sp));
	sp.name = "test";
	sp.loop = T.loop;
	sp.cfg = &T.cfg;
	sp.h = &handlers;
	sp.line_limit = 1024;
	sp.ctx = &T.d;
	T.d.srv = server_new(&sp);
	if (server_listen(T.d.srv, "127.0.0.1:0", 0, false, err,
	    sizeof(err)) < 0)
		return -1;
	T.port = server_bound_port(T.d.srv, 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	worker_pool_free(&T.d.workers);
	server_free(&T.d.srv);
	config_free(&T.cfg);
	return 0;
}

/* ------------------------------------------------------------- client */

struct cli {
	int fd;
	char buf[1 << 16];
	size_t len;
	bool eof;
};

static void
cli_connect(struct cli *k)
{
	struct sockaddr_in a;

	memset(k, 0, sizeof(*k));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)T.port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	k->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(k->fd >= 0);
	/* A small window: the daemon's output backs up quickly. */
	(void)setsockopt(k->fd, SOL_SOCKET, SO_RCVBUF, &(int){ 8192 },
	    sizeof(int));
	assert_int_equal(connect(k->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(fcntl(k->fd, F_SETFL, O_NONBLOCK), 0);
}

static void
cli_send(struct cli *k, const char *s)
{
	assert_int_equal(write(k->fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* One loop step, then whatever the socket has (at most max bytes). */
static void
step(struct cli *k, size_t max)
{
	ssize_t n;
	size_t room = sizeof(k->buf) - k->len;

	ev_run(T.loop, EVRUN_NOWAIT);
	if (max > room)
		max = room;
	if (k->eof || max == 0)
		return;
	n = read(k->fd, k->buf + k->len, max);
	if (n == 0)
		k->eof = true;
	else if (n > 0)
		k->len += (size_t)n;
}

/* Runs until a whole line is buffered; returns it (without CRLF). */
static char *
cli_line(struct cli *k, char *out, size_t size)
{
	char *lf;
	size_t n;

	while ((lf = memchr(k->buf, '\n', k->len)) == NULL && !k->eof)
		step(k, sizeof(k->buf));
	if (lf == NULL)
		return NULL;
	n = (size_t)(lf - k->buf) + 1;
	snprintf(out, size, "%.*s", (int)(n > 1 && lf[-1] == '\r' ? n - 2 :
	    n - 1), k->buf);
	memmove(k->buf, k->buf + n, k->len - n);
	k->len -= n;
	return out;
}

static void
expect(struct cli *k, const char *want)
{
	char line[512];

	assert_non_null(cli_line(k, line, sizeof(line)));
	assert_string_equal(line, want);
}

static void
until_eof(struct cli *k)
{
	while (!k->eof)
		step(k, sizeof(k->buf));
	assert_int_equal(k->len, 0);
}

/* -------------------------------------------------------------- tests */

static void
test_state_and_close(void **state)
{
	struct cli k;

	(void)state;
	cli_connect(&k);
	expect(&k, "HELLO");
	assert_non_null(T.last);
	assert_string_equal(session_state_name(&T.last->base, ST_B), "beta");
	assert_string_equal(session_state_name(&T.last->base, 1u << 7), "?");
	cli_send(&k, "STATE\r\n");
	expect(&k, "STATE gamma");
	assert_int_equal(T.last->base.state, ST_C);
	/* The reply queued before the close goes out, then EOF; closed()
	   comes once whatever the number of closes. */
	cli_send(&k, "BYE\r\nECHO never\r\n");
	expect(&k, "GOODBYE");
	until_eof(&k);
	while (T.closed < 1)
		ev_run(T.loop, EVRUN_ONCE);
	assert_int_equal(T.closed, 1);
	close(k.fd);
}

static void
test_close_while_held(void **state)
{
	struct cli k;
	struct tsess *s;

	(void)state;
	T.closed = 0;
	cli_connect(&k);
	expect(&k, "HELLO");
	cli_send(&k, "HOLD\r\nECHO pipelined\r\n");
	expect(&k, "HELD");
	s = T.last;
	assert_true(session_is_busy(&s->base));
	/* Closed while suspended (held): nothing ends yet, and what the
	   holder writes before the release still goes out first. */
	session_close(&s->base, "test");
	assert_true(conn_is_closing(s->base.c));
	ev_run(T.loop, EVRUN_NOWAIT);
	assert_int_equal(T.closed, 0);
	conn_puts(s->base.c, "LATE\r\n");
	session_resume(&s->base);
	expect(&k, "LATE");
	/* The pipelined line is never handled: the session is closing. */
	until_eof(&k);
	while (T.closed < 1)
		ev_run(T.loop, EVRUN_ONCE);
	assert_int_equal(T.closed, 1);
	close(k.fd);
}

static void
test_submit(void **state)
{
	struct cli k;

	(void)state;
	T.closed = 0;
	cli_connect(&k);
	expect(&k, "HELLO");
	/* The line after WORK waits for the work's reply. */
	cli_send(&k, "WORK\r\nafter\r\n");
	expect(&k, "DONE 1");
	expect(&k, "ECHO after");
	assert_false(session_is_busy(&T.last->base));
	close(k.fd);
	while (T.closed < 1)
		ev_run(T.loop, EVRUN_ONCE);
}

static void
test_send_fd_slow_reader(void **state)
{
	char path[] = "/tmp/test_session_XXXXXX";
	const size_t size = 16 * 1024 * 1024 + 123;
	char *data = xmalloc(size);
	size_t i, got = 0;
	struct conn *c;
	struct cli k;
	int fd;

	(void)state;
	T.closed = 0;
	for (i = 0; i < size; i++)
		data[i] = (char)('a' + i % 26);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	close(fd);
	T.file = path;
	T.stream_done = false;
	T.filter_calls = 0;
	cli_connect(&k);
	expect(&k, "HELLO");
	c = T.last->base.c;
	cli_send(&k, "SEND\r\nafter\r\n");
	expect(&k, "FILE");
	/* Read slowly: the daemon must not read the file ahead of the
	   reader, and must not take the pipelined line before the end. */
	for (;;) {
		assert_true(got + k.len <= size);
		for (i = 0; i < k.len; i++)
			assert_int_equal(k.buf[i], data[got + i] - 32);
		got += k.len;
		k.len = 0;
		if (got == size)
			break;
		if (T.last != NULL && conn_outq_len(c) > T.max_outq)
			T.max_outq = conn_outq_len(c);
		step(&k, size - got < 4096 ? size - got : 4096);
	}
	expect(&k, "END");
	expect(&k, "ECHO after");
	assert_true(T.stream_done);
	/* The queue filled up (the reader was slow), and stayed bounded by
	   the high-water mark plus one filtered chunk. */
	assert_true(T.max_outq >= 256 * 1024);
	assert_true(T.max_outq <= 256 * 1024 + 2 * 64 * 1024);
	assert_true(T.filter_calls >= (int)(size / (64 * 1024)));
	unlink(path);
	free(data);
	close(k.fd);
	while (T.closed < 1)
		ev_run(T.loop, EVRUN_ONCE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test_setup_teardown(test_state_and_close, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_close_while_held, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_submit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_fd_slow_reader,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
