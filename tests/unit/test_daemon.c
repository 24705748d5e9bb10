/* Unit tests for common/daemon.c: daemon_main's order for a daemon
   without listeners (the shape of a queue runner: all its work in the
   start hook), the stop hook and teardown after SIGTERM, and the start-up
   refusals (an implicit-TLS listener without a certificate, no listener
   where one is needed, a failing start hook). The store is faked through
   the def's hooks. The config comes from $POSTROOM_CONF. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "util.h"

static struct {
	int opened, closed, started, stopped, ticks;
	bool had_all;
	ev_timer timer;
	char conf[64];
} T;

static int
fake_open(struct daemon *d, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	T.opened++;
	d->store = NULL;
	return 0;
}

static void
fake_close(struct store **st)
{
	(void)st;
	T.closed++;
}

/* The queue runner's own timer: a few rounds, then it asks to stop the
   way an administrator would. */
static void
tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	if (++T.ticks < 3)
		return;
	ev_timer_stop(loop, w);
	kill(getpid(), SIGTERM);
}

static int
runner_start(struct daemon *d, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	T.started++;
	T.had_all = d->loop != NULL && d->cfg != NULL && d->srv != NULL &&
	    d->workers != NULL && d->throttle != NULL && T.opened == 1 &&
	    T.closed == 0;
	d->priv = &T;
	ev_timer_init(&T.timer, tick, 0., 0.001);
	ev_timer_start(d->loop, &T.timer);
	return 0;
}

static int
failing_start(struct daemon *d, char *err, size_t errlen)
{
	T.started++;
	d->priv = &T;           /* half made: stop must undo it */
	snprintf(err, errlen, "no queue directory");
	return -1;
}

static void
runner_stop(struct daemon *d)
{
	/* After the loop and the sessions, before the store. */
	if (d->priv == &T && T.closed == 0)
		T.stopped++;
	d->priv = NULL;
}

static void
write_conf(const char *text)
{
	FILE *f;

	snprintf(T.conf, sizeof(T.conf), "/tmp/test_daemon_%d.conf",
	    (int)getpid());
	f = fopen(T.conf, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	setenv("POSTROOM_CONF", T.conf, 1);
}

static int
run(const struct daemon_def *def)
{
	char *argv[] = { (char *)"testd", NULL };
	int rc;

	memset(&T, 0, sizeof(T) - sizeof(T.conf));
	rc = daemon_main(1, argv, def);
	unlink(T.conf);
	return rc;
}

static void
test_no_listeners(void **state)
{
	static const struct daemon_def def = {
		.name = "testd",
		.store_open = fake_open,
		.store_close = fake_close,
		.start = runner_start,
		.stop = runner_stop,
	};

	(void)state;
	write_conf("data_dir = /tmp\nworker_threads = 1\n");
	assert_int_equal(run(&def), 0);
	assert_int_equal(T.opened, 1);
	assert_int_equal(T.started, 1);
	assert_true(T.had_all);
	assert_int_equal(T.ticks, 3);
	assert_int_equal(T.stopped, 1);
	assert_int_equal(T.closed, 1);
}

static const struct daemon_listener tls_listener[] = {
	DAEMON_LISTEN(imaps_listen, 1, true),
};

static void
test_implicit_tls_needs_cert(void **state)
{
	static const struct daemon_def def = {
		.name = "testd",
		.listeners = tls_listener,
		.nlisteners = 1,
		.store_open = fake_open,
		.store_close = fake_close,
		.start = runner_start,
		.stop = runner_stop,
	};

	(void)state;
	write_conf("data_dir = /tmp\nimaps_listen = 127.0.0.1:0\n");
	assert_int_equal(run(&def), 1);
	/* Refused before anything was opened. */
	assert_int_equal(T.opened, 0);
	assert_int_equal(T.started, 0);
	assert_int_equal(T.closed, 0);
}

static void
test_need_listener(void **state)
{
	static const struct daemon_def def = {
		.name = "testd",
		.listeners = tls_listener,
		.nlisteners = 1,
		.need_listener = true,
		.store_open = fake_open,
		.store_close = fake_close,
	};

	(void)state;
	write_conf("data_dir = /tmp\n");
	assert_int_equal(run(&def), 1);
	assert_int_equal(T.opened, 0);
}

static void
test_start_fails(void **state)
{
	static const struct daemon_def def = {
		.name = "testd",
		.store_open = fake_open,
		.store_close = fake_close,
		.start = failing_start,
		.stop = runner_stop,
	};

	(void)state;
	write_conf("data_dir = /tmp\n");
	assert_int_equal(run(&def), 1);
	/* The stop hook still runs (start may have made half its state),
	   and everything opened is closed. */
	assert_int_equal(T.started, 1);
	assert_int_equal(T.stopped, 1);
	assert_int_equal(T.opened, 1);
	assert_int_equal(T.closed, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_listeners),
		cmocka_unit_test(test_implicit_tls_needs_cert),
		cmocka_unit_test(test_need_listener),
		cmocka_unit_test(test_start_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
