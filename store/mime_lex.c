/* mime_lex: the small lexing pieces the MIME parser is built from: header
   field iteration, unfolding, RFC 822 comments and quoted strings, and IMAP
   string output. Pure functions over caller memory; no allocation except
   through the caller's bufs. */
#include <string.h>

#include "mime_private.h"

void
mime_hdr_iter_init(struct mime_hdr_iter *it, const char *hdr, size_t len)
{
	it->p = hdr;
	it->end = hdr + len;
}

static const char *
line_end(const char *p, const char *end)
{
	const char *e = memchr(p, '\n', (size_t)(end - p));

	return e != NULL ? e + 1 : end;
}

int
mime_hdr_next(struct mime_hdr_iter *it, struct mime_field *f)
{
	for (;;) {
		const char *p = it->p, *e, *colon, *ne;

		if (p >= it->end || *p == '\n' ||
		    (*p == '\r' && p + 1 < it->end && p[1] == '\n') ||
		    (*p == '\r' && p + 1 == it->end))
			return 0;
		/* The field is this line plus every continuation line. */
		e = line_end(p, it->end);
		while (e < it->end && (*e == ' ' || *e == '\t'))
			e = line_end(e, it->end);
		it->p = e;
		colon = memchr(p, ':', (size_t)(e - p));
		if (colon == NULL)
			continue;   /* not a field (Dovecot skips it too) */
		ne = colon;
		while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
			ne--;
		if (ne == p)
			continue;
		f->name = p;
		f->name_len = (size_t)(ne - p);
		f->value = colon + 1;
		/* The value ends before the field's final line break. */
		if (e > f->value && e[-1] == '\n')
			e--;
		if (e > f->value && e[-1] == '\r')
			e--;
		f->value_len = (size_t)(e - f->value);
		return 1;
	}
}

bool
mime_field_is(const struct mime_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

void
mime_unfold(const char *v, size_t n, struct buf *out)
{
	const char *end = v + n, *p = v, *run;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	buf_reserve(out, (size_t)(end - p));
	for (run = p; p < end; p++) {
		if (*p == '\r' || *p == '\n') {
			buf_append(out, run, (size_t)(p - run));
			run = p + 1;
		}
	}
	buf_append(out, run, (size_t)(p - run));
}

void
mime_imap_human(struct buf *out, const char *p, size_t n)
{
	struct buf tmp;
	bool lwsp = true;       /* drops leading whitespace */

	buf_init(&tmp);
	buf_reserve(&tmp, n);
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (!lwsp)
				buf_putc(&tmp, ' ');
			lwsp = true;
		} else {
			buf_putc(&tmp, c);
			lwsp = false;
		}
	}
	if (lwsp && tmp.len > 0)
		tmp.len--;      /* the trailing space */
	mime_imap_str(out, tmp.data != NULL ? tmp.data : "", tmp.len);
	buf_free(&tmp);
}

void
mime_imap_str(struct buf *out, const char *p, size_t n)
{
	bool literal = false;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r' || c == '\n' || c >= 0x80 || c == 0) {
			literal = true;
			break;
		}
	}
	if (literal) {
		size_t nuls = 0;

		for (i = 0; i < n; i++)
			nuls += p[i] == 0;
		/* NUL cannot be sent; Dovecot's header parser makes it
		   U+FFFD, three bytes */
		buf_printf(out, "{%zu}\r\n", n + 2 * nuls);
		buf_reserve(out, n + 2 * nuls);
		for (i = 0; i < n; i++) {
			if (p[i] == 0)
				buf_append(out, "\xef\xbf\xbd", 3);
			else
				buf_putc(out, p[i]);
		}
		return;
	}
	/* Worst case every byte escaped; write in place. */
	buf_reserve(out, 2 * n + 2);
	{
		char *d = out->data + out->len;

		*d++ = '"';
		for (i = 0; i < n; i++) {
			if (p[i] == '"' || p[i] == '\\')
				*d++ = '\\';
			*d++ = p[i];
		}
		*d++ = '"';
		out->len = (size_t)(d - out->data);
		out->data[out->len] = '\0';
	}
}

void
mime_imap_unfolded(struct buf *out, const char *v, size_t n)
{
	struct buf tmp;

	if (v == NULL) {
		buf_puts(out, "NIL");
		return;
	}
	buf_init(&tmp);
	mime_unfold(v, n, &tmp);
	mime_imap_str(out, tmp.data != NULL ? tmp.data : "", tmp.len);
	buf_free(&tmp);
}

void
mime_skip_comment(const char **pp, const char *end, struct buf *out)
{
	const char *p = *pp + 1;
	int level = 1;

	while (p < end) {
		char c = *p;

		if (c == '\\' && p + 1 < end) {
			if (out != NULL)
				buf_putc(out, p[1]);
			p += 2;
			continue;
		}
		p++;
		if (c == '(')
			level++;
		else if (c == ')' && --level == 0)
			break;
		if (out != NULL && c != '\r' && c != '\n')
			buf_putc(out, c);
	}
	*pp = p;
}

void
mime_skip_cfws(const char **pp, const char *end)
{
	const char *p = *pp;

	while (p < end) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		else if (*p == '(')
			mime_skip_comment(&p, end, NULL);
		else
			break;
	}
	*pp = p;
}

bool
mime_read_quoted(const char **pp, const char *end, struct buf *out)
{
	const char *p = *pp + 1;
	bool closed;

	while (p < end && *p != '"') {
		if (*p == '\\' && p + 1 < end) {
			buf_putc(out, p[1]);
			p += 2;
			continue;
		}
		/* Folding inside a quoted string: the line break goes. */
		if (*p != '\r' && *p != '\n')
			buf_putc(out, *p);
		p++;
	}
	closed = p < end;
	if (closed)
		p++;
	*pp = p;
	return closed;
}
