/* mtad: the outbound delivery daemon. Placeholder while the delivery engine
   is being written on this branch: it refuses to start, so nothing can
   mistake it for a working daemon. */
#include <stdio.h>

int
main(int argc, char **argv)
{
	fprintf(stderr, "mtad: not built yet (delivery engine in progress)\n");
	return 1;
}
