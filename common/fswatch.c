/* fswatch: inotify-based change notification. One inotify descriptor per
   process, read by one ev_io; a table of watched inodes (wd), each with its
   list of subscribers. All events read in one readable event are coalesced
   into at most one callback per subscriber. A subscriber may free itself or
   others from inside its callback: frees during dispatch only mark, and the
   sweep happens after. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "fswatch.h"
#include "log.h"
#include "util.h"

#define FSW_MASK (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | \
	IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

struct fsw_watch {
	struct fsw_watch *next;
	struct fswatch *subs;
	char *path;
	int wd;             /* -1 after the inode went away */
	bool fired;
};

struct fswatch {
	struct fswatch *next;
	struct fsw_watch *w;
	void (*cb)(void *arg);
	void *arg;
	bool dead;
};

static struct {
	struct ev_loop *loop;
	ev_io io;
	int fd;
	struct fsw_watch *watches;
	unsigned nsubs;
	int dispatching;
	bool need_sweep;
} reg = { .fd = -1 };

static void fsw_read_cb(struct ev_loop *loop, ev_io *w, int revents);

static struct fsw_watch *
fsw_find(int wd)
{
	struct fsw_watch *w;

	for (w = reg.watches; w != NULL; w = w->next)
		if (w->wd == wd && wd >= 0)
			return w;
	return NULL;
}

static void
fsw_close_if_unused(void)
{
	if (reg.nsubs > 0 || reg.watches != NULL || reg.fd < 0)
		return;
	ev_io_stop(reg.loop, &reg.io);
	close(reg.fd);
	reg.fd = -1;
	reg.loop = NULL;
}

/* Frees dead subscribers and watches nobody subscribes to any more. */
static void
fsw_sweep(void)
{
	struct fsw_watch **wp = &reg.watches, *w;
	struct fswatch **sp, *sub;

	reg.need_sweep = false;
	while ((w = *wp) != NULL) {
		sp = &w->subs;
		while ((sub = *sp) != NULL) {
			if (sub->dead) {
				*sp = sub->next;
				free(sub);
			} else {
				sp = &sub->next;
			}
		}
		if (w->subs == NULL) {
			if (w->wd >= 0)
				inotify_rm_watch(reg.fd, w->wd);
			*wp = w->next;
			free(w->path);
			free(w);
		} else {
			wp = &w->next;
		}
	}
	fsw_close_if_unused();
}

struct fswatch *
fswatch_new(struct ev_loop *loop, const char *path, void (*cb)(void *arg),
    void *arg)
{
	struct fsw_watch *w;
	struct fswatch *sub;
	int wd, saved;

	if (reg.fd < 0) {
		reg.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (reg.fd < 0)
			return NULL;
		reg.loop = loop;
		ev_io_init(&reg.io, fsw_read_cb, reg.fd, EV_READ);
		ev_io_start(loop, &reg.io);
	}
	assert(loop == reg.loop);
	wd = inotify_add_watch(reg.fd, path, FSW_MASK);
	if (wd < 0) {
		saved = errno;
		fsw_close_if_unused();
		errno = saved;
		return NULL;
	}
	w = fsw_find(wd);
	if (w == NULL) {
		w = xcalloc(1, sizeof(*w));
		w->wd = wd;
		w->path = xstrdup(path);
		w->next = reg.watches;
		reg.watches = w;
	}
	sub = xcalloc(1, sizeof(*sub));
	sub->w = w;
	sub->cb = cb;
	sub->arg = arg;
	sub->next = w->subs;
	w->subs = sub;
	reg.nsubs++;
	return sub;
}

void
fswatch_free(struct fswatch **sp)
{
	struct fswatch *sub = *sp;

	if (sub == NULL)
		return;
	*sp = NULL;
	sub->dead = true;
	reg.nsubs--;
	if (reg.dispatching > 0)
		reg.need_sweep = true;
	else
		fsw_sweep();
}

/* The inode went away (a file replaced by rename, a directory removed):
   watch the path again if something is there now. */
static void
fsw_rewatch(struct fsw_watch *w)
{
	struct fsw_watch *other;
	struct fswatch *sub;
	int wd;

	w->wd = -1;
	wd = inotify_add_watch(reg.fd, w->path, FSW_MASK);
	if (wd < 0) {
		log_debug("- fswatch rewatch=fail path=%s", w->path);
		return;
	}
	other = fsw_find(wd);
	if (other == NULL) {
		w->wd = wd;
		return;
	}
	/* Another path names the same inode: merge into its entry. */
	while ((sub = w->subs) != NULL) {
		w->subs = sub->next;
		sub->w = other;
		sub->next = other->subs;
		other->subs = sub;
	}
	reg.need_sweep = true;
}

static void
fsw_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	char buf[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	struct fsw_watch *w;
	struct fswatch *sub;
	ssize_t n;
	size_t off;
	bool gone;

	(void)loop;
	(void)io;
	(void)revents;
	for (;;) {
		n = read(reg.fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (off = 0; off < (size_t)n;
		    off += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)(buf + off);
			if (ev->mask & IN_Q_OVERFLOW) {
				/* The kernel dropped events: any watch may
				   have missed one. */
				for (w = reg.watches; w != NULL; w = w->next)
					w->fired = true;
				continue;
			}
			w = fsw_find(ev->wd);
			if (w == NULL)
				continue;
			w->fired = true;
			if (ev->mask & IN_IGNORED)
				w->wd = -2;	/* rewatch below */
		}
	}
	reg.dispatching++;
	for (w = reg.watches; w != NULL; w = w->next) {
		if (!w->fired)
			continue;
		w->fired = false;
		gone = w->wd == -2;
		for (sub = w->subs; sub != NULL; sub = sub->next)
			if (!sub->dead)
				sub->cb(sub->arg);
		if (gone && w->wd == -2)
			fsw_rewatch(w);
	}
	reg.dispatching--;
	if (reg.need_sweep && reg.dispatching == 0)
		fsw_sweep();
}
