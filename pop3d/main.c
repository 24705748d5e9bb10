/* pop3d: the POP3 (110, STLS) and POP3S (995) daemon. Loads the config,
   opens the store, binds the listeners, and runs the loop until SIGTERM;
   SIGHUP reloads the certificate (done by server_run). All protocol work is
   in pop3_session.c / pop3_commands.c; this file only wires things up and
   frees everything on the way out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pop3_session.h"

static void
pop3_reload(void *arg)
{
	const struct config *cfg = arg;

	log_info("- reload cert=%s", cfg->tls_cert ? cfg->tls_cert : "-");
}

int
main(int argc, char **argv)
{
	struct pop3_daemon *d = &pop3_daemon;
	struct server_params sp;
	struct config cfg;
	char err[512];
	enum store_err se;
	int rc = 1;

	config_from_args(argc, argv, "pop3d", &cfg);
	if ((cfg.pop3_listen == NULL || *cfg.pop3_listen == '\0') &&
	    (cfg.pop3s_listen == NULL || *cfg.pop3s_listen == '\0')) {
		fprintf(stderr, "pop3d: neither pop3_listen nor pop3s_listen "
		    "is set\n");
		goto out_cfg;
	}

	memset(d, 0, sizeof(*d));
	d->cfg = &cfg;
	d->loop = ev_default_loop(0);
	se = store_open(cfg.data_dir, &d->store);
	if (se != STORE_OK) {
		fprintf(stderr, "pop3d: cannot open the store in %s: %s\n",
		    cfg.data_dir, store_last_error());
		goto out_cfg;
	}

	memset(&sp, 0, sizeof(sp));
	sp.name = "pop3d";
	sp.loop = d->loop;
	sp.cfg = &cfg;
	sp.h = &pop3_handlers;
	sp.line_limit = POP3_LINE_MAX;
	sp.refuse_msg = "-ERR [SYS/TEMP] Too many connections\r\n";
	d->server = server_new(&sp);

	if (cfg.tls_cert != NULL && cfg.tls_key != NULL &&
	    server_tls_load(d->server, cfg.tls_cert, cfg.tls_key, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "pop3d: %s\n", err);
		goto out;
	}
	if (cfg.pop3s_listen != NULL && *cfg.pop3s_listen != '\0' &&
	    !server_has_tls(d->server)) {
		fprintf(stderr, "pop3d: pop3s_listen needs tls_cert and "
		    "tls_key\n");
		goto out;
	}
	if (server_listen(d->server, cfg.pop3_listen, POP3_TAG_PLAIN, false,
	    err, sizeof(err)) < 0 ||
	    server_listen(d->server, cfg.pop3s_listen, POP3_TAG_TLS, true,
	    err, sizeof(err)) < 0) {
		fprintf(stderr, "pop3d: %s\n", err);
		goto out;
	}
	if (server_drop_privileges(d->server, err, sizeof(err)) < 0) {
		fprintf(stderr, "pop3d: %s\n", err);
		goto out;
	}
	d->pool = worker_pool_new(d->loop, cfg.worker_threads);
	d->throttle = auth_throttle_new();
	log_info("- start pop3=%s pop3s=%s",
	    cfg.pop3_listen ? cfg.pop3_listen : "",
	    cfg.pop3s_listen ? cfg.pop3s_listen : "");

	rc = server_run(d->server, pop3_reload, &cfg) == 0 ? 0 : 1;

out:
	/* Pending jobs hold their connections: finish them (their done
	   callbacks release the conns) before the server goes. */
	if (d->pool != NULL)
		worker_pool_free(&d->pool);
	server_free(&d->server);
	auth_throttle_free(&d->throttle);
	store_close(&d->store);
	pop3_session_deinit();
	free(d->locked);
	ev_loop_destroy(d->loop);
out_cfg:
	config_free(&cfg);
	return rc;
}
