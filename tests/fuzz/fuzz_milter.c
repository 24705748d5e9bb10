/* Fuzz target for common/milter_codec.c: the input is a stream of bytes
   as a milter would send them; packets are framed and each reply decoded,
   and a decoded header is formatted as it would be stored. Checks that
   decoded strings lie inside the packet. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter_codec.h"
#include "util.h"

static void
inside(const char *s, const unsigned char *data, size_t dlen)
{
	if (s == NULL)
		return;
	if ((const unsigned char *)s < data ||
	    (const unsigned char *)s + strlen(s) >= data + dlen)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t size)
{
	struct milter_reply r;
	const unsigned char *data;
	const char *err;
	size_t used, dlen;
	char cmd;
	struct buf b;

	buf_init(&b);
	while (milter_frame(p, size, &used, &cmd, &data, &dlen) == 1) {
		if (used > size)
			abort();
		if (milter_reply_parse(cmd, data, dlen, &r, &err) == 0) {
			inside(r.name, data, dlen);
			inside(r.value, data, dlen);
			inside(r.text, data, dlen);
			if (r.name != NULL) {
				buf_reset(&b);
				milter_header_format(&b, r.name, r.value);
				if (b.len < 3 || memcmp(b.data + b.len - 2,
				    "\r\n", 2) != 0)
					abort();
			}
		}
		p += used;
		size -= used;
	}
	buf_free(&b);
	return 0;
}
