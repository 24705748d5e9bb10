/* smtpd: Postroom's SMTP server. Reads the config, opens the store, starts
   the worker pool and the three listeners (MX with STARTTLS, submission
   with STARTTLS and AUTH, SMTPS with implicit TLS), runs the loop until
   SIGTERM and frees everything. Sessions live in smtp_session.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#include "smtp_session.h"

static struct smtp_ctx the_ctx;

struct smtp_ctx *
smtp_ctx_get(void)
{
	return &the_ctx;
}

static void
on_reload(void *arg)
{
	(void)arg;
	log_info("- reload cert=%s", the_ctx.cfg != NULL &&
	    the_ctx.cfg->tls_cert != NULL ? the_ctx.cfg->tls_cert : "-");
}

static bool
is_set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

int
main(int argc, char **argv)
{
	struct config cfg;
	char err[512];
	enum store_err se;
	int ret = 1;
	struct server_params sp;

	config_from_args(argc, argv, "smtpd", &cfg);
	if (is_set(cfg.smtps_listen) && cfg.tls_cert == NULL) {
		fprintf(stderr, "smtpd: smtps_listen needs tls_cert and tls_key\n");
		goto out_cfg;
	}
	se = store_open(cfg.data_dir, &the_ctx.store);
	if (se != STORE_OK) {
		fprintf(stderr, "smtpd: cannot open store in %s: %s\n",
		    cfg.data_dir, store_last_error());
		goto out_cfg;
	}
	the_ctx.cfg = &cfg;
	the_ctx.loop = ev_default_loop(0);
	the_ctx.pool = worker_pool_new(the_ctx.loop,
	    cfg.worker_threads > 0 ? cfg.worker_threads : 1);
	the_ctx.throttle = auth_throttle_new();
	memset(&sp, 0, sizeof(sp));
	sp.name = "smtpd";
	sp.loop = the_ctx.loop;
	sp.cfg = &cfg;
	sp.h = &smtp_handlers;
	sp.line_limit = SMTP_LINE_MAX;
	sp.refuse_msg = "421 4.7.0 Too many connections, try again later\r\n";
	the_ctx.server = server_new(&sp);
	if (cfg.tls_cert != NULL && server_tls_load(the_ctx.server,
	    cfg.tls_cert, cfg.tls_key, err, sizeof(err)) < 0) {
		fprintf(stderr, "smtpd: %s\n", err);
		goto out;
	}
	if (server_listen(the_ctx.server, cfg.smtp_listen, SMTP_L_MX, false,
	    err, sizeof(err)) < 0 ||
	    server_listen(the_ctx.server, cfg.submission_listen,
	    SMTP_L_SUBMISSION, false, err, sizeof(err)) < 0 ||
	    server_listen(the_ctx.server, cfg.smtps_listen, SMTP_L_SMTPS, true,
	    err, sizeof(err)) < 0) {
		fprintf(stderr, "smtpd: %s\n", err);
		goto out;
	}
	if (server_drop_privileges(the_ctx.server, err, sizeof(err)) < 0) {
		fprintf(stderr, "smtpd: %s\n", err);
		goto out;
	}
	log_info("- start hostname=%s max_message_size=%llu",
	    cfg.hostname, (unsigned long long)cfg.max_message_size);
	ret = server_run(the_ctx.server, on_reload, NULL);
out:
	/* Work in flight finishes first: its done callbacks still reply to
	   (and release) their connections. */
	worker_pool_free(&the_ctx.pool);
	server_free(&the_ctx.server);
	auth_throttle_free(&the_ctx.throttle);
	store_close(&the_ctx.store);
	ev_loop_destroy(the_ctx.loop);
out_cfg:
	config_free(&cfg);
	return ret;
}
