/* Fuzz target for the SASL server state machines. The input is split on
   '\n' into lines: the first byte of the input picks the mechanism and
   whether the first line is an initial response; each further line is one
   client response. Also feeds the whole input to sasl_plain_decode(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"
#include "util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sasl_server s;
	const char *p = (const char *)data, *end, *ch;
	char *z, *u, *pw, *line;
	enum sasl_result r;
	int use_ir;

	if (size == 0)
		return 0;
	if (sasl_plain_decode(p, size, &z, &u, &pw) == 0) {
		if (u == NULL || pw == NULL || u[0] == '\0' || pw[0] == '\0')
			__builtin_trap();
		free(z);
		free(u);
		secret_free(&pw);
	}
	sasl_server_init(&s, (data[0] & 1) ? SASL_MECH_LOGIN :
	    SASL_MECH_PLAIN);
	use_ir = data[0] & 2;
	p++;
	size--;
	end = p + size;
	if (use_ir) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		line = xstrndup(p, n);
		r = sasl_server_start(&s, line, &ch);
		free(line);
		p += n + (nl ? 1 : 0);
	} else {
		r = sasl_server_start(&s, NULL, &ch);
	}
	while (r == SASL_CONTINUE && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (ch == NULL)
			__builtin_trap();
		r = sasl_server_step(&s, p, n, &ch);
		p += n + (nl ? 1 : 0);
	}
	if (r == SASL_DONE && (s.user == NULL || s.pass == NULL))
		__builtin_trap();
	sasl_server_reset(&s);
	return 0;
}
