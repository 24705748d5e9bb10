/* Unit tests for common/fswatch.c: a write from another process wakes the
   subscribers of that path (file and directory), several subscribers share
   one watch, and subscribers may free themselves and each other from inside
   a callback. A 10 s timer only guards against a hang; nothing asserts on
   how fast an event arrives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fswatch.h"
#include "log.h"

static struct ev_loop *loop;
static char dir[64], file[96];
static ev_timer guard;
static bool guard_fired;

struct sub {
	struct fswatch *w;
	int calls;
	struct sub *victim;     /* freed from this one's callback */
	bool free_self;
};

static void
guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	guard_fired = true;
	ev_break(l, EVBREAK_ALL);
}

static void
sub_cb(void *arg)
{
	struct sub *s = arg;

	s->calls++;
	if (s->victim != NULL)
		fswatch_free(&s->victim->w);
	if (s->free_self)
		fswatch_free(&s->w);
	ev_break(loop, EVBREAK_ALL);
}

/* Another process appends to path n times. */
static void
child_write(const char *path, int n)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < n; i++) {
			int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);

			if (fd < 0 || write(fd, "x\n", 2) != 2)
				_exit(1);
			close(fd);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void
run_until_event(void)
{
	guard_fired = false;
	ev_timer_set(&guard, 10., 0.);
	ev_timer_start(loop, &guard);
	ev_run(loop, 0);
	ev_timer_stop(loop, &guard);
	assert_false(guard_fired);
}

static int
setup(void **state)
{
	int fd;

	loop = ev_loop_new(EVFLAG_AUTO);
	ev_timer_init(&guard, guard_cb, 10., 0.);
	snprintf(dir, sizeof(dir), "/tmp/test_fswatch.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/modseq", dir);
	fd = open(file, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	ev_loop_destroy(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)system(cmd);
	return 0;
}

static void
test_file_write(void **state)
{
	struct sub a = { 0 }, b = { 0 };

	a.w = fswatch_new(loop, file, sub_cb, &a);
	b.w = fswatch_new(loop, file, sub_cb, &b);
	assert_non_null(a.w);
	assert_non_null(b.w);
	child_write(file, 50);
	run_until_event();
	/* Both saw it; the burst of 50 writes may be coalesced. */
	assert_true(a.calls >= 1 && a.calls <= 50);
	assert_true(b.calls >= 1 && b.calls <= 50);
	fswatch_free(&a.w);
	fswatch_free(&b.w);
	assert_null(a.w);
}

static void
test_directory(void **state)
{
	struct sub a = { 0 };
	char path[128];

	/* A new file in a watched directory (maildir new/) fires too. */
	a.w = fswatch_new(loop, dir, sub_cb, &a);
	assert_non_null(a.w);
	snprintf(path, sizeof(path), "%s/newfile", dir);
	child_write(path, 1);
	run_until_event();
	assert_true(a.calls >= 1);
	fswatch_free(&a.w);
}

static void
test_free_in_callback(void **state)
{
	struct sub a = { 0 }, b = { 0 }, c = { 0 };

	/* Whichever of a and b runs first frees the other, and itself: the
	   other must not be called after being freed. c stays. */
	a.w = fswatch_new(loop, file, sub_cb, &a);
	b.w = fswatch_new(loop, file, sub_cb, &b);
	c.w = fswatch_new(loop, file, sub_cb, &c);
	a.victim = &b;
	b.victim = &a;
	a.free_self = b.free_self = true;
	child_write(file, 1);
	run_until_event();
	assert_int_equal(a.calls + b.calls, 1);
	assert_null(a.w);
	assert_null(b.w);
	assert_int_equal(c.calls, 1);
	/* The watch still works for c. */
	child_write(file, 1);
	run_until_event();
	assert_true(c.calls >= 2);
	fswatch_free(&c.w);
}

static void
test_replaced_file(void **state)
{
	struct sub a = { 0 };
	char tmp[128];
	int fd;

	/* A file replaced by rename (atomic update) is watched again. */
	a.w = fswatch_new(loop, file, sub_cb, &a);
	snprintf(tmp, sizeof(tmp), "%s/modseq.tmp", dir);
	fd = open(tmp, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(rename(tmp, file), 0);
	/* The kernel queues DELETE_SELF and IGNORED of the old inode
	   before rename() returns, so one dispatch sees both. */
	run_until_event();
	a.calls = 0;
	child_write(file, 1);
	run_until_event();
	assert_true(a.calls >= 1);
	fswatch_free(&a.w);
}

static void
test_queue_overflow(void **state)
{
	struct sub a = { 0 }, d = { 0 };
	char fill[128];
	FILE *f;
	long max = 16384;

	/* Fill the inotify queue through the directory watch; the write to
	   file then finds it full and is dropped, leaving only IN_Q_OVERFLOW.
	   Every subscriber must hear of it, or a's change is lost. */
	f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
	if (f != NULL) {
		if (fscanf(f, "%ld", &max) != 1)
			max = 16384;
		fclose(f);
	}
	if (max > 200000)
		skip();
	d.w = fswatch_new(loop, dir, sub_cb, &d);
	a.w = fswatch_new(loop, file, sub_cb, &a);
	assert_non_null(d.w);
	assert_non_null(a.w);
	snprintf(fill, sizeof(fill), "%s/fill", dir);
	child_write(fill, (int)(max / 2 + 100));
	child_write(file, 1);
	run_until_event();
	assert_true(d.calls >= 1);
	assert_true(a.calls >= 1);
	fswatch_free(&a.w);
	fswatch_free(&d.w);
}

static void
test_missing_path(void **state)
{
	struct fswatch *w;

	w = fswatch_new(loop, "/nonexistent/postroom/x", sub_cb, NULL);
	assert_null(w);
	assert_int_equal(errno, ENOENT);
	fswatch_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_callback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_replaced_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_queue_overflow, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_missing_path, setup,
		    teardown),
	};

	log_init("test", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
