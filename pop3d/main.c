/* pop3d: the POP3 (110, STLS) and POP3S (995) daemon, described as a table
   for daemon_main: two listeners, the store, and the in-process maildrop
   lock set (start/stop hooks). Start-up, signals (HUP reloads the
   certificate) and teardown are daemon.c's; the protocol is in
   pop3_session.c, pop3_commands.c and pop3_maildrop.c. */
#include <stdio.h>

#include "pop3_session.h"

static int
open_store(struct daemon *d, char *err, size_t errlen)
{
	if (store_open(d->cfg->data_dir, &d->store) == STORE_OK)
		return 0;
	snprintf(err, errlen, "cannot open the store in %s: %s",
	    d->cfg->data_dir, store_last_error());
	return -1;
}

static const struct daemon_listener listeners[] = {
	DAEMON_LISTEN(pop3_listen, POP3_TAG_PLAIN, false),
	DAEMON_LISTEN(pop3s_listen, POP3_TAG_TLS, true),
};

static const struct daemon_def pop3d = {
	.name = "pop3d",
	.handlers = &pop3_handlers,
	.listeners = listeners,
	.nlisteners = ARRAY_SIZE(listeners),
	.need_listener = true,
	.line_limit = POP3_PREAUTH_LINE_MAX,
	.refuse_msg = "-ERR [SYS/TEMP] Too many connections\r\n",
	.default_workers = 1,
	.store_open = open_store,
	.store_close = store_close,
	.start = pop3_maildrop_start,
	.stop = pop3_maildrop_stop,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &pop3d);
}
