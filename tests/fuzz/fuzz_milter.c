/* Fuzz target for common/milter_codec.c and milter_header.c: the input is
   a stream of bytes as a milter would send them; packets are framed and
   each reply decoded, a decoded header is formatted as it would be stored,
   and the header changes are applied to a header block (milter_header_edit)
   as a later milter and the message would read it. Checks that decoded
   strings lie inside the packet and that the edited block is CRLF lines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter.h"
#include "milter_codec.h"
#include "util.h"

#define MODS_MAX 32

static const char header[] = "From: a@b\r\nSubject: s\r\nX-A: 1\r\n\tfolded\r\n"
    "X-A: 2\r\n";

/* The changes collected so far, applied to the header. */
static void
edit(const struct milter_mod *mods, size_t n)
{
	struct buf out;

	buf_init(&out);
	milter_header_edit(header, sizeof(header) - 1, mods, n, &out);
	if (out.len > 0 && (out.len < 3 || memcmp(out.data + out.len - 2,
	    "\r\n", 2) != 0))
		abort();
	buf_free(&out);
}

static void
keep(struct milter_mod *mods, size_t *n, const struct milter_reply *r)
{
	if (*n == MODS_MAX || r->name == NULL || (r->cmd != 'h' &&
	    r->cmd != 'm' && r->cmd != 'i'))
		return;
	mods[*n] = (struct milter_mod){ .type = r->cmd, .index = r->index,
	    .name = xstrdup(r->name), .value = xstrdup(r->value != NULL ?
	    r->value : "") };
	(*n)++;
}

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
	struct milter_mod mods[MODS_MAX];
	size_t nmods = 0;

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
				keep(mods, &nmods, &r);
			}
		}
		p += used;
		size -= used;
	}
	buf_free(&b);
	edit(mods, nmods);
	for (size_t i = 0; i < nmods; i++) {
		free(mods[i].name);
		free(mods[i].value);
	}
	return 0;
}
