/* Fuzz target for pop3d's command parser and byte-stuffer: the input is
   split into lines that go through pop3_parse_command (and the number
   parsers on every argument), and the whole input goes through the RETR and
   TOP stuffers, whose output must never hold a NUL, must end with the
   terminator, and (for RETR) must unstuff to the input. */
// LINK: pop3d/pop3_parse.c
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3_parse.h"

static void
fuzz_lines(const char *p, size_t len)
{
	size_t start = 0, i;

	for (i = 0; i <= len; i++) {
		struct pop3_request req;
		const char *err = NULL;
		size_t n;
		unsigned k;
		uint32_t v;

		if (i < len && p[i] != '\n')
			continue;
		n = i - start;
		if (n > 0 && p[start + n - 1] == '\r')
			n--;
		if (pop3_parse_command(p + start, n, &req, &err) == 0) {
			assert(req.nargs <= POP3_ARGS_MAX);
			assert(req.rest.off + req.rest.len <= n);
			for (k = 0; k < req.nargs; k++) {
				assert(req.args[k].off + req.args[k].len <= n);
				(void)pop3_parse_msgnum(p + start + req.args[k].off,
				    req.args[k].len, 1000, &v);
				(void)pop3_parse_uint(p + start + req.args[k].off,
				    req.args[k].len, &v);
			}
		} else {
			assert(err != NULL);
		}
		start = i + 1;
	}
}

static void
fuzz_stuffer(const char *p, size_t len, bool top, uint32_t lines)
{
	struct pop3_stuffer s;
	struct buf out;
	size_t pos = 0, chunk = 1 + (len % 7);

	buf_init(&out);
	pop3_stuffer_init(&s, top, lines);
	while (pos < len && !s.done) {
		size_t n = len - pos < chunk ? len - pos : chunk;
		size_t used = pop3_stuffer_feed(&s, p + pos, n, &out);

		assert(used == n || s.done);
		pos += used;
	}
	pop3_stuffer_finish(&s, &out);
	assert(out.len >= 3);
	assert(memcmp(out.data + out.len - 3, ".\r\n", 3) == 0);
	assert(memchr(out.data, '\0', out.len) == NULL);
	if (!top) {
		/* Unstuffed line by line up to the terminator, the output is
		   the input (NULs as 0x80) plus a CRLF if it lacked one. */
		struct buf back;
		size_t i = 0;

		buf_init(&back);
		while (i < out.len) {
			const char *lf = memchr(out.data + i, '\n', out.len - i);
			size_t end = (size_t)(lf - out.data) + 1;

			assert(lf != NULL);
			if (end - i == 3 && out.data[i] == '.' &&
			    out.data[i + 1] == '\r') {
				assert(end == out.len);
				break;
			}
			if (out.data[i] == '.')
				i++;
			buf_append(&back, out.data + i, end - i);
			i = end;
		}
		assert(back.len >= len);
		for (i = 0; i < len; i++)
			assert(back.data[i] == (p[i] == '\0' ? (char)0x80 : p[i]));
		if (len > 0 && p[len - 1] != '\n') {
			assert(back.len == len + 2);
			assert(memcmp(back.data + len, "\r\n", 2) == 0);
		} else {
			assert(back.len == len);
		}
		buf_free(&back);
	}
	buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;

	fuzz_lines(p, size);
	fuzz_stuffer(p, size, false, 0);
	fuzz_stuffer(p, size, true, size > 0 ? data[0] % 4 : 0);
	return 0;
}
