/* daemon: the skeleton every Postroom daemon runs on (the Postfix
   *_server_main idea). A daemon describes itself in a static struct
   daemon_def (name, connection handlers, a table of listeners, hooks) and
   its main() is one call to daemon_main(), which does the generic part in
   one fixed order: config, checks, store, loop, worker pool, login
   throttle, server and TLS, listeners, privilege drop, start hook, run
   (signals: TERM/INT stop, HUP reloads), and teardown. Sessions reach the
   struct daemon through their session core (s->base.d). */
#ifndef POSTROOM_DAEMON_H
#define POSTROOM_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "config.h"
#include "conn.h"

struct auth_throttle;
struct store;
struct worker_pool;

/* Everything a daemon process shares; one per process, built by
   daemon_main and valid from the start hook until the stop hook returns.
   Sessions borrow it. */
struct daemon {
	const struct daemon_def *def;
	struct ev_loop *loop;
	const struct config *cfg;
	struct store *store;
	struct server *srv;             /* there even without listeners */
	struct worker_pool *workers;
	struct auth_throttle *throttle;
	void *priv;                     /* the daemon's own state (hooks) */
};

/* One row of the listener table: the listen list in the config field at
   offset (a "host:port, ..." list; empty or NULL = off), the tag accept()
   gets, and whether TLS starts before accept() (implicit TLS). */
struct daemon_listener {
	const char *key;                /* "smtps_listen", for messages */
	size_t offset;                  /* offsetof(struct config, ...) */
	int tag;
	bool implicit_tls;
};
#define DAEMON_LISTEN(field, tag, implicit_tls) \
	{ #field, offsetof(struct config, field), (tag), (implicit_tls) }

struct daemon_def {
	const char *name;               /* "smtpd": logs, stderr, config */
	/* NULL for a daemon without listeners (a queue runner that owns its
	   own timers and outgoing connections: all of it in start/stop). */
	const struct conn_handlers *handlers;
	const struct daemon_listener *listeners;
	size_t nlisteners;
	bool need_listener;             /* refuse to start with none set */
	size_t line_limit;              /* initial line cap of a conn */
	const char *refuse_msg;         /* see server_params */
	unsigned default_workers;       /* if worker_threads is 0 */

	/* Required. Opens d->store from d->cfg->data_dir (common cannot
	   call the store itself): 0, or -1 with a message in err. */
	int (*store_open)(struct daemon *d, char *err, size_t errlen);
	/* Required. Closes it (store_close fits). */
	void (*store_close)(struct store **st);
	/* Optional. After the listeners are bound and privileges dropped,
	   before the loop runs: set up the daemon's own state (d->priv),
	   timers, outgoing work. 0, or -1 with err (the daemon exits 1). */
	int (*start)(struct daemon *d, char *err, size_t errlen);
	/* Optional. SIGHUP, before the certificate is reloaded. */
	void (*reload)(struct daemon *d);
	/* Optional. After the loop stopped, the work in flight finished and
	   every session was freed; before the store closes. Frees what
	   start made. Called whenever start was (even if it failed). */
	void (*stop)(struct daemon *d);
};

/* Runs the daemon: "-c FILE" from argv (config_from_args), then the
   order above. Returns the exit status for main(): 0 after a clean stop,
   1 if start-up failed (one line on stderr names the reason). */
int daemon_main(int argc, char **argv, const struct daemon_def *def);

#endif
