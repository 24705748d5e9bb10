/* Fuzz target for the addresses SEARCH FROM/TO/CC/BCC match against
   (mime_addresses_text): the input is a message header; every address
   comes out as two NUL-terminated strings, local@domain without
   whitespace or comments. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mime.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static void
check(const char *hdr, size_t len, const char *name)
{
	struct buf b;
	size_t n, nul = 0, i;

	buf_init(&b);
	n = mime_addresses_text(hdr, len, name, &b);
	for (i = 0; i < b.len; i++)
		nul += b.data[i] == '\0';
	/* a decoded display name may hold NULs of its own: at least two
	   per address, and the output ends with one */
	CHECK(nul >= 2 * n);
	CHECK(n == 0 || b.data[b.len - 1] == '\0');
	CHECK(n > 0 || b.len == 0);
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check((const char *)data, size, "From");
	check((const char *)data, size, "Cc");
	return 0;
}
