/* smtpd: Postroom's SMTP server, described as a table for daemon_main:
   three listeners (MX with STARTTLS, submission with STARTTLS and AUTH,
   SMTPS with implicit TLS) and the store. Start-up, signals and teardown
   are daemon.c's; sessions live in smtp_session.c. */
#include <stdio.h>

#include "util.h"

#include "smtp_session.h"

static int
open_store(struct daemon *d, char *err, size_t errlen)
{
	if (store_open(d->cfg->data_dir, &d->store) == STORE_OK)
		return 0;
	snprintf(err, errlen, "cannot open store in %s: %s", d->cfg->data_dir,
	    store_last_error());
	return -1;
}

static const struct daemon_listener listeners[] = {
	DAEMON_LISTEN(smtp_listen, SMTP_L_MX, false),
	DAEMON_LISTEN(submission_listen, SMTP_L_SUBMISSION, false),
	DAEMON_LISTEN(smtps_listen, SMTP_L_SMTPS, true),
};

static const struct daemon_def smtpd = {
	.name = "smtpd",
	.handlers = &smtp_handlers,
	.listeners = listeners,
	.nlisteners = ARRAY_SIZE(listeners),
	.line_limit = SMTP_PREAUTH_LINE_MAX,
	.refuse_msg = "421 4.7.0 Too many connections, try again later\r\n",
	.store_open = open_store,
	.store_close = store_close,
	.start = smtp_submit_start,
	.stop = smtp_submit_stop,
	.reload = smtp_checks_reload,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &smtpd);
}
