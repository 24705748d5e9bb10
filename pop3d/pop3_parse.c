/* pop3_parse: pure helpers of pop3d: the command-line splitter, number
   parsing, the UIDL string and the RETR/TOP byte-stuffer. Nothing here does
   I/O, logs or keeps global state: the session feeds it bytes it already
   holds, and the fuzz target feeds it anything. */
#include <stdio.h>
#include <string.h>

#include "pop3_parse.h"

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

int
pop3_parse_command(const char *line, size_t len, struct pop3_request *req_r,
    const char **error_r)
{
	size_t i, klen;

	memset(req_r, 0, sizeof(*req_r));
	if (len == 0) {
		*error_r = "Empty command";
		return -1;
	}
	/* A tab or stray CR is as suspicious as a NUL: POP3 has no use for
	   control bytes, so refuse them anywhere rather than guess. */
	for (i = 0; i < len; i++) {
		if (is_ctl((unsigned char)line[i])) {
			*error_r = "Invalid characters in command";
			return -1;
		}
	}
	for (klen = 0; klen < len && line[klen] != ' '; klen++) {
		char c = line[klen];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) ||
		    klen >= POP3_KEYWORD_MAX) {
			*error_r = "Unknown command";
			return -1;
		}
		req_r->keyword[klen] = c >= 'a' ? (char)(c - 32) : c;
	}
	if (klen < 3) {
		*error_r = "Unknown command";
		return -1;
	}
	req_r->keyword[klen] = '\0';
	if (klen == len) {
		req_r->rest.off = len;
		return 0;
	}
	req_r->rest.off = klen + 1;
	req_r->rest.len = len - klen - 1;

	/* Clients differ in spacing; runs of spaces and trailing spaces
	   separate nothing. */
	i = klen;
	for (;;) {
		size_t start;

		while (i < len && line[i] == ' ')
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		if (req_r->nargs == POP3_ARGS_MAX) {
			req_r->too_many_args = true;
			break;
		}
		req_r->args[req_r->nargs].off = start;
		req_r->args[req_r->nargs].len = i - start;
		req_r->nargs++;
	}
	return 0;
}

int
pop3_parse_uint(const char *p, size_t len, uint32_t *n_r)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	*n_r = (uint32_t)v;
	return 0;
}

int
pop3_parse_msgnum(const char *p, size_t len, uint32_t max, uint32_t *n_r)
{
	uint32_t v;

	if (pop3_parse_uint(p, len, &v) < 0 || v == 0 || v > max)
		return -1;
	*n_r = v;
	return 0;
}

void
pop3_uidl_format(uint32_t uidvalidity, uint32_t uid, char *out, size_t size)
{
	snprintf(out, size, "%08x.%08x", uidvalidity, uid);
}

void
pop3_stuffer_init(struct pop3_stuffer *s, bool top, uint32_t lines)
{
	memset(s, 0, sizeof(*s));
	s->bol = true;
	s->top = top;
	s->line_blank = true;
	s->lines = lines;
}

/* Copies p[0..n) (no LF inside) to out with NULs turned into 0x80. */
static void
append_span(struct buf *out, const char *p, size_t n)
{
	const char *nul;

	while (n > 0 && (nul = memchr(p, '\0', n)) != NULL) {
		size_t k = (size_t)(nul - p);

		buf_append(out, p, k);
		buf_putc(out, (char)0x80);
		p += k + 1;
		n -= k + 1;
	}
	buf_append(out, p, n);
}

/* A line ended (its LF was emitted): update the TOP bookkeeping. */
static void
end_of_line(struct pop3_stuffer *s)
{
	if (s->top) {
		if (!s->in_body) {
			if (s->line_blank) {
				s->in_body = true;
				if (s->lines == 0)
					s->done = true;
			}
		} else if (--s->lines == 0) {
			s->done = true;
		}
	}
	s->bol = true;
	s->line_blank = true;
}

size_t
pop3_stuffer_feed(struct pop3_stuffer *s, const char *in, size_t len,
    struct buf *out)
{
	size_t i = 0;

	/* Most of a message is whole lines: copy line by line, looking at
	   single bytes only at line starts. */
	while (i < len && !s->done) {
		const char *lf = memchr(in + i, '\n', len - i);
		size_t end = lf != NULL ? (size_t)(lf - in) : len;
		size_t k;

		if (s->bol && in[i] == '.')
			buf_putc(out, '.');
		/* The header block ends at the first line holding nothing
		   (or only CR); a line is blank only if every one of its
		   bytes, possibly across chunks, was a CR. */
		if (s->top && !s->in_body && s->line_blank) {
			for (k = i; k < end; k++) {
				if (in[k] != '\r') {
					s->line_blank = false;
					break;
				}
			}
		}
		append_span(out, in + i, end - i);
		if (end == len) {
			if (end > i)
				s->bol = false;
			i = len;
			break;
		}
		buf_putc(out, '\n');
		i = end + 1;
		end_of_line(s);
	}
	return i;
}

void
pop3_stuffer_finish(struct pop3_stuffer *s, struct buf *out)
{
	if (!s->bol)
		buf_puts(out, "\r\n");
	buf_puts(out, ".\r\n");
	s->bol = true;
}
