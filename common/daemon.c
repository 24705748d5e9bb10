/* daemon: daemon_main, the one start-up and teardown order of every
   Postroom daemon. It wires config, store, worker pool, throttle, server,
   TLS and listeners together and runs the loop; it knows no protocol and
   never touches a session (the handlers of the def do). Start-up errors
   go to stderr (the service manager shows them); after that, to the log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "daemon.h"
#include "log.h"
#include "login.h"
#include "util.h"
#include "worker.h"

static const char *
listen_value(const struct config *cfg, const struct daemon_listener *l)
{
	const char *v = *(char *const *)(const void *)((const char *)cfg +
	    l->offset);

	return v != NULL ? v : "";
}

/* What can be said wrong before anything is opened. */
static int
check_config(const struct daemon_def *def, const struct config *cfg,
    char *err, size_t errlen)
{
	bool any = false;
	size_t i;

	for (i = 0; i < def->nlisteners; i++) {
		const struct daemon_listener *l = &def->listeners[i];

		if (listen_value(cfg, l)[0] == '\0')
			continue;
		any = true;
		if (l->implicit_tls &&
		    (cfg->tls_cert == NULL || cfg->tls_key == NULL)) {
			snprintf(err, errlen, "%s needs tls_cert and tls_key",
			    l->key);
			return -1;
		}
	}
	if (def->need_listener && !any) {
		snprintf(err, errlen, "no listener is set (%s%s)",
		    def->nlisteners > 0 ? def->listeners[0].key : "-",
		    def->nlisteners > 1 ? ", ..." : "");
		return -1;
	}
	return 0;
}

static void
on_reload(void *arg)
{
	struct daemon *d = arg;

	/* server_reload logs the reload line, after the certificate. */
	login_reload(d);
	if (d->def->reload != NULL)
		d->def->reload(d);
}

static struct server *
make_server(struct daemon *d)
{
	const struct daemon_def *def = d->def;
	struct server_params sp;

	memset(&sp, 0, sizeof(sp));
	sp.name = def->name;
	sp.loop = d->loop;
	sp.cfg = d->cfg;
	sp.h = def->handlers;
	sp.line_limit = def->line_limit;
	sp.refuse_msg = def->refuse_msg;
	sp.ctx = d;
	return server_new(&sp);
}

/* TLS, listeners, privileges. 0 or -1 with err. */
static int
open_listeners(struct daemon *d, char *err, size_t errlen)
{
	const struct config *cfg = d->cfg;
	size_t i;

	if (cfg->tls_cert != NULL && cfg->tls_key != NULL &&
	    server_tls_load(d->srv, cfg->tls_cert, cfg->tls_key, err,
	    errlen) < 0)
		return -1;
	for (i = 0; i < d->def->nlisteners; i++) {
		const struct daemon_listener *l = &d->def->listeners[i];

		if (server_listen(d->srv, listen_value(cfg, l), l->tag,
		    l->implicit_tls, err, errlen) < 0)
			return -1;
	}
	return server_drop_privileges(d->srv, err, errlen);
}

static void
log_start(const struct daemon *d)
{
	struct buf b;
	size_t i, n;

	buf_init(&b);
	buf_puts(&b, "- start");
	for (i = 0; i < d->def->nlisteners; i++) {
		const char *key = d->def->listeners[i].key;

		/* "imap_listen" is logged as imap= */
		n = strlen(key);
		if (n > 7 && strcmp(key + n - 7, "_listen") == 0)
			n -= 7;
		buf_printf(&b, " %.*s=%s", (int)n, key,
		    listen_value(d->cfg, &d->def->listeners[i]));
	}
	buf_printf(&b, " hostname=%s", d->cfg->hostname);
	log_info("%s", b.data);
	buf_free(&b);
}

int
daemon_main(int argc, char **argv, const struct daemon_def *def)
{
	struct daemon d;
	struct config cfg;
	char err[512];
	bool started = false;
	int rc = 1;

	err[0] = '\0';
	config_from_args(argc, argv, def->name, &cfg);
	memset(&d, 0, sizeof(d));
	d.def = def;
	d.cfg = &cfg;
	if (check_config(def, &cfg, err, sizeof(err)) < 0)
		goto out_cfg;
	if (def->store_open(&d, err, sizeof(err)) < 0)
		goto out_cfg;
	d.loop = ev_default_loop(0);
	d.workers = worker_pool_new(d.loop, cfg.worker_threads > 0 ?
	    cfg.worker_threads : def->default_workers > 0 ?
	    def->default_workers : 1);
	d.throttle = auth_throttle_new();
	d.srv = make_server(&d);
	if (open_listeners(&d, err, sizeof(err)) < 0)
		goto out;
	started = true;
	if (def->start != NULL && def->start(&d, err, sizeof(err)) < 0)
		goto out;
	log_start(&d);
	rc = server_run(d.srv, on_reload, &d) == 0 ? 0 : 1;
out:
	if (rc != 0 && err[0] != '\0')
		fprintf(stderr, "%s: %s\n", def->name, err);
	/* Work in flight finishes first: its done callbacks still reply to
	   (and release) their connections. Then the sessions go, then the
	   daemon's own state, then what they all used. */
	worker_pool_free(&d.workers);
	server_free(&d.srv);
	if (started && def->stop != NULL)
		def->stop(&d);
	auth_throttle_free(&d.throttle);
	def->store_close(&d.store);
	ev_loop_destroy(d.loop);
	config_free(&cfg);
	return rc;
out_cfg:
	fprintf(stderr, "%s: %s\n", def->name, err);
	config_free(&cfg);
	return 1;
}
