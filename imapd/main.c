/* imapd: the IMAP4rev1 server (RFC 3501) over the shared store, described
   as a table for daemon_main: imap_listen (STARTTLS) and imaps_listen
   (implicit TLS, RFC 8314). Start-up, signals and teardown are daemon.c's;
   protocol work lives in imap_session.c and the cmd_*.c files. */
#include <stdio.h>

#include "daemon.h"
#include "util.h"

#include "imap_names.h"
#include "imap_session.h"

static int
open_store(struct daemon *d, char *err, size_t errlen)
{
	if (store_open(d->cfg->data_dir, &d->store) == STORE_OK)
		return 0;
	snprintf(err, errlen, "cannot open store %s: %s", d->cfg->data_dir,
	    store_last_error());
	return -1;
}

static const struct daemon_listener listeners[] = {
	DAEMON_LISTEN(imap_listen, IMAP_LISTEN_PLAIN, false),
	DAEMON_LISTEN(imaps_listen, IMAP_LISTEN_IMPLICIT_TLS, true),
};

int
main(int argc, char **argv)
{
	static struct daemon_def def = {
		.name = "imapd",
		.listeners = listeners,
		.nlisteners = ARRAY_SIZE(listeners),
		.line_limit = IMAP_LINE_MAX,
		.refuse_msg = "* BYE Too many connections\r\n",
		.store_open = open_store,
		.store_close = store_close,
		/* names a stop or crash left behind their flags */
		.start = imap_names_start,
	};

	def.handlers = imap_session_handlers();
	return daemon_main(argc, argv, &def);
}
