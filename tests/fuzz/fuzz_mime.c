/* Fuzz target for store/mime: mime_parse on the input, then invariants on
   what it produced (every IMAP list balanced, literals well formed, every
   section the table yields inside the message), section lookups on paths
   taken from the input, and the text helpers on the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static void
check_list(const struct buf *b)
{
	size_t i = 0;
	int level = 0;

	CHECK(b->len >= 2 && b->data[0] == '(');
	while (i < b->len) {
		char c = b->data[i];

		if (c == '"') {
			for (i++; i < b->len && b->data[i] != '"'; i++) {
				CHECK(b->data[i] != '\r' && b->data[i] != '\n');
				CHECK((unsigned char)b->data[i] < 0x80);
				if (b->data[i] == '\\')
					i++;
			}
			CHECK(i < b->len);
			i++;
			continue;
		}
		if (c == '{') {
			char *end;
			unsigned long n = strtoul(b->data + i + 1, &end, 10);

			CHECK(end[0] == '}' && end[1] == '\r' && end[2] == '\n');
			i = (size_t)(end + 3 - b->data) + n;
			CHECK(i <= b->len);
			continue;
		}
		if (c == '(')
			level++;
		else if (c == ')')
			level--;
		CHECK(level >= 0);
		CHECK(level > 0 || i == b->len - 1);
		i++;
	}
	CHECK(level == 0);
}

static void
check_span(const struct mime_span *s, size_t len)
{
	CHECK(s->hdr_off + s->hdr_len <= len);
	CHECK(s->body_off + s->body_len <= len);
	if (s->is_message) {
		CHECK(s->msg_hdr_off + s->msg_hdr_len <= len);
		CHECK(s->msg_body_off + s->msg_body_len <= len);
		CHECK(s->msg_hdr_off >= s->body_off);
	}
}

static void
walk(const struct mime_info *info, size_t len, uint32_t *path, size_t depth,
    int *budget)
{
	struct mime_span sp;

	if (depth >= 12)
		return;
	for (uint32_t n = 1; *budget > 0; n++, (*budget)--) {
		path[depth] = n;
		if (mime_section_find(info->parts.data, info->parts.len, path,
		    depth + 1, &sp) < 0)
			break;
		check_span(&sp, len);
		if (sp.is_multipart || sp.is_message)
			walk(info, len, path, depth + 1, budget);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct mime_info info;
	struct mime_span sp;
	struct buf b;
	uint32_t path[16];
	size_t depth;
	int budget = 500;
	time_t t;
	int tz;

	mime_parse(msg, size, &info);
	check_list(&info.envelope);
	check_list(&info.bodystructure);
	check_list(&info.body);
	CHECK(mime_section_find(info.parts.data, info.parts.len, NULL, 0,
	    &sp) == 0);
	CHECK(sp.hdr_off == 0 && sp.body_off + sp.body_len == size);
	walk(&info, size, path, 0, &budget);
	/* a path from the first bytes of the input: small numbers, zeros */
	depth = size < 8 ? size : 8;
	for (size_t i = 0; i < depth; i++)
		path[i] = data[i] % 5;
	if (mime_section_find(info.parts.data, info.parts.len, path, depth,
	    &sp) == 0)
		check_span(&sp, size);
	/* a damaged table must be rejected or stay in bounds */
	if (info.parts.len > 16 && size > 0) {
		char *bad = malloc(info.parts.len);

		memcpy(bad, info.parts.data, info.parts.len);
		bad[12 + data[0] % (info.parts.len - 12)] ^= (char)(data[size -
		    1] | 1);
		path[0] = 1;
		path[1] = 1;
		(void)mime_section_find(bad, info.parts.len, path, 2, &sp);
		buf_init(&b);
		mime_body_text(msg, size, bad, info.parts.len, &b);
		buf_free(&b);
		free(bad);
	}
	buf_init(&b);
	mime_body_text(msg, size, info.parts.data, info.parts.len, &b);
	buf_reset(&b);
	(void)mime_header_get(msg, size, "subject", &b);
	buf_reset(&b);
	mime_decode_words(msg, size, &b);
	buf_free(&b);
	(void)mime_parse_date(msg, size < 256 ? size : 256, &t, &tz);
	mime_info_free(&info);
	return 0;
}
