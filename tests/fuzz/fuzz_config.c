/* Fuzz target for config_parse() and, through it, listen_list_parse():
   any bytes must give 0 or -1 with a message, never a crash or a leak. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	char err[256];

	config_init(&cfg);
	if (config_parse(&cfg, (const char *)data, size, "fuzz", err,
	    sizeof(err)) < 0) {
		/* The message always names the file and is terminated. */
		if (strncmp(err, "fuzz:", 5) != 0 ||
		    memchr(err, '\0', sizeof(err)) == NULL)
			__builtin_trap();
	}
	config_free(&cfg);
	return 0;
}
