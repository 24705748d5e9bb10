/* Fuzz target for common/dmarc.c's pure parts: the record parser, and the
   Public Suffix List parser with organizational-domain lookups of the
   input's lines against the list made from the input itself. Any bytes:
   a result, never a crash or a leak. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dmarc.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct dmarc_record r;
	struct psl *l;
	char d[300], out[300];
	size_t pos = 0;

	if (dmarc_record_parse(p, size, &r) == 0 && r.pct > 100)
		__builtin_trap();
	l = psl_parse(p, size);
	while (pos < size) {
		const char *nl = memchr(p + pos, '\n', size - pos);
		size_t end = nl != NULL ? (size_t)(nl - p) : size;
		size_t n = end - pos < sizeof(d) - 1 ? end - pos : sizeof(d) - 1;
		memcpy(d, p + pos, n);
		d[n] = '\0';
		psl_org_domain(l, d, out, sizeof(out));
		dmarc_aligned(l, d, out, false);
		pos = end + 1;
	}
	psl_free(&l);
	return 0;
}
