/* mime7: 8-bit to 7-bit downgrade of a message for a server without
   8BITMIME. Walks the MIME tree by boundaries (no full MIME parse is needed:
   only Content-Type's type and boundary and Content-Transfer-Encoding
   matter), copies 7-bit parts as they are and re-encodes 8-bit leaves as
   quoted-printable. Headers are never rewritten except the one
   Content-Transfer-Encoding field of a converted part. */
#include "mime7.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

static bool
has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

/* Offset just after the header block (after the empty line), or len. */
static size_t
header_end(const char *p, size_t len)
{
	if (len >= 2 && p[0] == '\r' && p[1] == '\n')
		return 2;
	if (len >= 1 && p[0] == '\n')
		return 1;
	for (size_t i = 0; i + 1 < len; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n')
			return i + 3;
	}
	return len;
}

/* The value of header field name in h[0..hl) (unfolded into val). */
static bool
header_value(const char *h, size_t hl, const char *name, char *val,
    size_t size)
{
	size_t nl = strlen(name), i = 0;

	while (i < hl) {
		size_t e = i;

		while (e < hl && h[e] != '\n')
			e++;
		if (e - i > nl && strncasecmp(h + i, name, nl) == 0 &&
		    h[i + nl] == ':') {
			size_t o = 0, k = i + nl + 1;

			for (;;) {
				for (; k < e && o + 1 < size; k++)
					if (h[k] != '\r')
						val[o++] = h[k];
				/* continuation lines */
				if (e + 1 < hl && (h[e + 1] == ' ' ||
				    h[e + 1] == '\t')) {
					k = e + 1;
					e = k;
					while (e < hl && h[e] != '\n')
						e++;
					continue;
				}
				break;
			}
			val[o] = '\0';
			return true;
		}
		i = e + 1;
	}
	return false;
}

static void
trim_lower_token(const char *v, char *out, size_t size)
{
	size_t o = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v != '\0' && *v != ';' && *v != ' ' && *v != '\t' &&
	    o + 1 < size; v++)
		out[o++] = (char)((*v >= 'A' && *v <= 'Z') ? *v + 32 : *v);
	out[o] = '\0';
}

/* boundary="..." or boundary=token from a Content-Type value. */
static bool
get_boundary(const char *ct, char *out, size_t size)
{
	const char *p = ct;

	while ((p = strchr(p, ';')) != NULL) {
		size_t o = 0;

		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary=", 9) != 0)
			continue;
		p += 9;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"' && o + 1 < size; p++)
				out[o++] = *p;
		} else {
			for (; *p != '\0' && *p != ';' && *p != ' ' &&
			    *p != '\t' && o + 1 < size; p++)
				out[o++] = *p;
		}
		out[o] = '\0';
		return o > 0;
	}
	return false;
}

/* Copies the header block h[0..hl) without its Content-Transfer-Encoding
   field (and its continuation lines), then adds cte (if not NULL) before
   the empty line. */
static void
put_headers(const char *h, size_t hl, const char *cte, struct buf *out)
{
	size_t i = 0;
	bool skipping = false;
	size_t body_sep = hl;

	/* The empty line at the end of h is written after cte. */
	if (hl >= 2 && h[hl - 2] == '\r' && h[hl - 1] == '\n')
		body_sep = hl - 2;
	else if (hl >= 1 && h[hl - 1] == '\n')
		body_sep = hl - 1;
	while (i < body_sep) {
		size_t e = i;

		while (e < body_sep && h[e] != '\n')
			e++;
		if (e < body_sep)
			e++;
		if (h[i] == ' ' || h[i] == '\t') {
			if (!skipping)
				buf_append(out, h + i, e - i);
		} else {
			skipping = e - i > 26 && strncasecmp(h + i,
			    "Content-Transfer-Encoding:", 26) == 0;
			if (!skipping)
				buf_append(out, h + i, e - i);
		}
		i = e;
	}
	if (cte != NULL)
		buf_printf(out, "Content-Transfer-Encoding: %s\r\n", cte);
	buf_append(out, h + body_sep, hl - body_sep);
}

void
mime7_qp_encode(const char *p, size_t len, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		bool eol = (c == '\r' && i + 1 < len && p[i + 1] == '\n');
		bool before_eol = i + 1 == len || (p[i + 1] == '\r' &&
		    i + 2 < len && p[i + 2] == '\n');
		size_t w;

		if (eol) {
			buf_puts(out, "\r\n");
			i++;
			col = 0;
			continue;
		}
		/* Literal: printable ASCII except '=', and blanks not at the
		   end of a line. */
		w = ((c >= 33 && c <= 126 && c != '=') ||
		    ((c == ' ' || c == '\t') && !before_eol)) ? 1 : 3;
		if (col + w > 75) {
			buf_puts(out, "=\r\n");
			col = 0;
		}
		if (w == 1)
			buf_putc(out, (char)c);
		else {
			buf_putc(out, '=');
			buf_putc(out, hex[c >> 4]);
			buf_putc(out, hex[c & 15]);
		}
		col += w;
	}
}

static int convert(const char *p, size_t len, struct buf *out, int depth,
    const char **error_r);

/* Whether the line l[0..n) (with its line end) is "--boundary" or
   "--boundary--" followed only by blanks (RFC 2046 5.1.1). */
static bool
is_delimiter(const char *l, size_t n, const char *boundary, size_t blen,
    bool *last_r)
{
	size_t k;

	*last_r = false;
	if (n < 2 + blen || l[0] != '-' || l[1] != '-' ||
	    memcmp(l + 2, boundary, blen) != 0)
		return false;
	k = 2 + blen;
	if (k + 1 < n && l[k] == '-' && l[k + 1] == '-') {
		*last_r = true;
		k += 2;
	}
	for (; k < n; k++)
		if (l[k] != ' ' && l[k] != '\t' && l[k] != '\r' && l[k] != '\n')
			return false;
	return true;
}

/* A multipart body b[0..bl) with the given boundary. */
static int
convert_multipart(const char *b, size_t bl, const char *boundary,
    struct buf *out, int depth, const char **error_r)
{
	size_t blen = strlen(boundary), i = 0, part_start = 0;
	bool in_part = false, closed = false;

	while (i < bl) {
		size_t e = i;
		bool delim, last;

		while (e < bl && b[e] != '\n')
			e++;
		if (e < bl)
			e++;
		delim = is_delimiter(b + i, e - i, boundary, blen, &last);
		if (delim && !closed) {
			size_t pe = i;

			if (in_part) {
				/* The CRLF before the delimiter belongs to it. */
				if (pe >= part_start + 2 && b[pe - 2] == '\r' &&
				    b[pe - 1] == '\n')
					pe -= 2;
				else if (pe > part_start && b[pe - 1] == '\n')
					pe--;
				if (convert(b + part_start, pe - part_start, out,
				    depth + 1, error_r) < 0)
					return -1;
				buf_append(out, b + pe, i - pe);
			} else if (has_8bit(b, i)) {
				*error_r = "8-bit preamble";
				return -1;
			} else {
				buf_append(out, b, i);
			}
			buf_append(out, b + i, e - i);
			in_part = !last;
			closed = last;
			part_start = e;
			i = e;
			continue;
		}
		i = e;
	}
	if (in_part) {
		/* No closing delimiter: the rest is the last part. */
		return convert(b + part_start, bl - part_start, out, depth + 1,
		    error_r);
	}
	if (!closed) {
		/* No delimiter at all: a broken multipart; keep it if 7-bit. */
		if (has_8bit(b, bl)) {
			*error_r = "8-bit multipart without parts";
			return -1;
		}
		buf_append(out, b, bl);
		return 0;
	}
	if (has_8bit(b + part_start, bl - part_start)) {
		*error_r = "8-bit epilogue";
		return -1;
	}
	buf_append(out, b + part_start, bl - part_start);
	return 0;
}

static int
convert(const char *p, size_t len, struct buf *out, int depth,
    const char **error_r)
{
	size_t hl = header_end(p, len);
	char ct[1024] = "", cte[64] = "", type[128] = "", enc[32] = "";
	char boundary[256];

	if (depth > MIME7_MAX_DEPTH) {
		*error_r = "MIME nesting too deep";
		return -1;
	}
	if (!has_8bit(p, len)) {
		buf_append(out, p, len);
		return 0;
	}
	if (has_8bit(p, hl)) {
		*error_r = "8-bit bytes in a header";
		return -1;
	}
	if (header_value(p, hl, "Content-Type", ct, sizeof(ct)))
		trim_lower_token(ct, type, sizeof(type));
	if (header_value(p, hl, "Content-Transfer-Encoding", cte, sizeof(cte)))
		trim_lower_token(cte, enc, sizeof(enc));
	if (strncmp(type, "multipart/", 10) == 0 &&
	    get_boundary(ct, boundary, sizeof(boundary))) {
		put_headers(p, hl, enc[0] != '\0' ? "7bit" : NULL, out);
		return convert_multipart(p + hl, len - hl, boundary, out, depth,
		    error_r);
	}
	if (strcmp(type, "message/rfc822") == 0 || strcmp(type,
	    "message/global") == 0) {
		put_headers(p, hl, enc[0] != '\0' ? "7bit" : NULL, out);
		return convert(p + hl, len - hl, out, depth + 1, error_r);
	}
	if (strcmp(enc, "base64") == 0 || strcmp(enc, "quoted-printable") == 0) {
		/* Declared encoded yet 8-bit: not ours to fix. */
		*error_r = "8-bit bytes in an encoded part";
		return -1;
	}
	put_headers(p, hl, "quoted-printable", out);
	mime7_qp_encode(p + hl, len - hl, out);
	return 0;
}

int
mime7_convert(const char *msg, size_t len, struct buf *out,
    const char **error_r)
{
	size_t hl = header_end(msg, len);
	char v[64];

	/* Plain RFC 5322 text (no MIME headers): it becomes a text/plain
	   part so that its body can be encoded. */
	if (has_8bit(msg + hl, len - hl) && !has_8bit(msg, hl) &&
	    !header_value(msg, hl, "MIME-Version", v, sizeof(v)) &&
	    !header_value(msg, hl, "Content-Type", v, sizeof(v)) &&
	    !header_value(msg, hl, "Content-Transfer-Encoding", v, sizeof(v))) {
		/* hl > 0 here: the body starts after an empty line. */
		size_t sep = hl >= 2 && msg[hl - 2] == '\r' ? 2 : 1;

		buf_append(out, msg, hl - sep);
		buf_puts(out, "MIME-Version: 1.0\r\nContent-Type: text/plain; "
		    "charset=utf-8\r\nContent-Transfer-Encoding: "
		    "quoted-printable\r\n\r\n");
		mime7_qp_encode(msg + hl, len - hl, out);
		return 0;
	}
	return convert(msg, len, out, 0, error_r);
}
