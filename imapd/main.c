/* imapd: the IMAP4rev1 server (RFC 3501) over the shared store. Reads the
   config, opens the store, listens on imap_listen (STARTTLS) and
   imaps_listen (implicit TLS, RFC 8314) and runs the loop until SIGTERM.
   Protocol work lives in imap_session.c and the cmd_*.c files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#include "imap_session.h"

int
main(int argc, char **argv)
{
	struct imap_daemon d;
	struct config cfg;
	struct server_params sp;
	char err[512];
	int rc = 1;

	config_from_args(argc, argv, "imapd", &cfg);
	memset(&d, 0, sizeof(d));
	d.cfg = &cfg;
	d.loop = ev_default_loop(0);
	if (store_open(cfg.data_dir, &d.store) != STORE_OK) {
		fprintf(stderr, "imapd: cannot open store %s: %s\n", cfg.data_dir,
		    store_last_error());
		goto out;
	}
	memset(&sp, 0, sizeof(sp));
	sp.name = "imapd";
	sp.loop = d.loop;
	sp.cfg = &cfg;
	sp.h = imap_session_handlers(&d);
	sp.line_limit = IMAP_LINE_MAX;
	sp.refuse_msg = "* BYE Too many connections\r\n";
	d.srv = server_new(&sp);
	if (cfg.tls_cert != NULL && cfg.tls_key != NULL &&
	    server_tls_load(d.srv, cfg.tls_cert, cfg.tls_key, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "imapd: %s\n", err);
		goto out;
	}
	if (server_listen(d.srv, cfg.imap_listen, IMAP_LISTEN_PLAIN, false, err,
	    sizeof(err)) < 0 ||
	    server_listen(d.srv, cfg.imaps_listen, IMAP_LISTEN_IMPLICIT_TLS, true,
	    err, sizeof(err)) < 0) {
		fprintf(stderr, "imapd: %s\n", err);
		goto out;
	}
	if (cfg.imaps_listen != NULL && cfg.imaps_listen[0] != '\0' &&
	    !server_has_tls(d.srv)) {
		fprintf(stderr, "imapd: imaps_listen needs tls_cert and tls_key\n");
		goto out;
	}
	if (server_drop_privileges(d.srv, err, sizeof(err)) < 0) {
		fprintf(stderr, "imapd: %s\n", err);
		goto out;
	}
	d.workers = worker_pool_new(d.loop, cfg.worker_threads ?
	    cfg.worker_threads : 4);
	d.throttle = auth_throttle_new();
	log_info("- start imap=%s imaps=%s",
	    cfg.imap_listen ? cfg.imap_listen : "",
	    cfg.imaps_listen ? cfg.imaps_listen : "");
	/* server_run logs "- stopped" itself. */
	rc = server_run(d.srv, NULL, NULL) == 0 ? 0 : 1;
out:
	if (d.workers != NULL)
		worker_pool_free(&d.workers);
	server_free(&d.srv);
	auth_throttle_free(&d.throttle);
	if (d.store != NULL)
		store_close(&d.store);
	config_free(&cfg);
	ev_loop_destroy(d.loop);
	return rc;
}
