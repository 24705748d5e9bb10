/* mtad: the outbound delivery daemon, described as a table for
   daemon_main. It has no listener: the queue runner owns its timers and
   outgoing connections (set up and torn down by mtad_setup.c's hooks);
   daemon_main gives it the config, the store, the loop, signals (TERM/INT
   stop, HUP reload) and the teardown order. */
#include "daemon.h"
#include "mtad.h"
#include "util.h"

static const struct daemon_def mtad = {
	.name = "mtad",
	.handlers = NULL,
	.listeners = NULL,
	.nlisteners = 0,
	.need_listener = false,
	.default_workers = 1,
	.store_open = mtad_open_store,
	.store_close = store_close,
	.start = mtad_setup_start,
	.stop = mtad_setup_stop,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &mtad);
}
