/* Fuzz target for mtad's 8-bit to 7-bit downgrade: any message either is
   refused or comes out with no byte >= 0x80, and the quoted-printable
   encoder keeps every line within 76 characters. */
#include <stdint.h>
#include <stdlib.h>

#include "mime7.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b;
	const char *err;
	size_t col = 0;

	buf_init(&b);
	if (mime7_convert((const char *)data, size, &b, &err) == 0) {
		for (size_t i = 0; i < b.len; i++)
			if ((unsigned char)b.data[i] >= 0x80)
				abort();
	}
	buf_reset(&b);
	mime7_qp_encode((const char *)data, size, &b);
	for (size_t i = 0; i < b.len; i++) {
		if ((unsigned char)b.data[i] >= 0x80)
			abort();
		if (b.data[i] == '\n')
			col = 0;
		else if (++col > 77)
			abort();
	}
	buf_free(&b);
	return 0;
}
