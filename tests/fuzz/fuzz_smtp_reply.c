/* Fuzz target for mtad's SMTP reply parser: the input is what a remote
   server sends, fed in chunks whose sizes come from the input (as it would
   arrive on a socket), each whole reply rendered on one line and read as an
   EHLO reply. Checks that the parser never consumes more than it was given,
   keeps its bounds, and that an unconsumed remainder stays below a line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply_parser p;
	char *held = malloc(size + 1), one[512], word[64];
	size_t hl = 0, pos = 0, step = size > 0 ? (size_t)(data[0] % 29) + 1 : 1;

	smtp_reply_parser_init(&p);
	while (pos < size) {
		size_t n = size - pos < step ? size - pos : step;

		memcpy(held + hl, data + pos, n);
		hl += n;
		pos += n;
		for (;;) {
			size_t used;
			const struct smtp_reply *r;
			const char *err;
			struct smtp_ehlo e;
			int k = smtp_reply_parse(&p, held, hl, &used, &r, &err);

			if (k < 0) {
				free(held);
				return 0;
			}
			if (used > hl)
				abort();
			memmove(held, held + used, hl - used);
			hl -= used;
			if (k == 0)
				break;
			if (r->code < 200 || r->code > 599 ||
			    r->nlines > SMTP_REPLY_LINES_MAX ||
			    r->nkept > r->nlines || r->text_len > sizeof(r->text))
				abort();
			smtp_reply_oneline(r, one, sizeof(one));
			if (strlen(one) >= sizeof(one))
				abort();
			smtp_reply_first_word(r, word, sizeof(word));
			smtp_ehlo_parse(r, &e);
		}
		if (hl >= SMTP_REPLY_LINE_MAX)
			abort();
	}
	free(held);
	return 0;
}
