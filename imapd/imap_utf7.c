/* imap_utf7: modified UTF-7 <-> UTF-8. Strict on decode so that every
   name has exactly one spelling on the wire (RFC 3501 §5.1.3). Pure: no
   I/O, no allocation beyond the output buffer. */
#include <stdint.h>
#include <string.h>

#include "imap_utf7.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int
b64_val(unsigned char c)
{
	const char *p;

	if (c == 0 || (p = strchr(b64, c)) == NULL)
		return -1;
	return (int)(p - b64);
}

static void
put_utf8(struct buf *out, uint32_t cp)
{
	char t[4];
	size_t n;

	if (cp < 0x80) {
		t[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		t[0] = (char)(0xc0 | (cp >> 6));
		t[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		t[0] = (char)(0xe0 | (cp >> 12));
		t[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		t[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		t[0] = (char)(0xf0 | (cp >> 18));
		t[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		t[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		t[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(out, t, n);
}

int
imap_utf7_to_utf8(const char *in, size_t len, struct buf *out)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)in[i];
		uint32_t bits = 0, hi_sur = 0;
		int nbits = 0, v;
		size_t start;

		if (c < 0x20 || c > 0x7e)
			return -1;
		if (c != '&') {
			buf_putc(out, (char)c);
			i++;
			continue;
		}
		i++;
		if (i < len && in[i] == '-') {
			buf_putc(out, '&');
			i++;
			continue;
		}
		start = i;
		while (i < len && in[i] != '-') {
			if ((v = b64_val((unsigned char)in[i])) < 0)
				return -1;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			i++;
			if (nbits >= 16) {
				uint32_t u = (bits >> (nbits - 16)) & 0xffff;

				nbits -= 16;
				bits &= (1u << nbits) - 1;
				if (hi_sur) {
					if (u < 0xdc00 || u > 0xdfff)
						return -1;
					put_utf8(out, 0x10000 +
					    ((hi_sur - 0xd800) << 10) + (u - 0xdc00));
					hi_sur = 0;
				} else if (u >= 0xd800 && u <= 0xdbff) {
					hi_sur = u;
				} else if (u >= 0xdc00 && u <= 0xdfff) {
					return -1;
				} else if (u >= 0x20 && u <= 0x7e) {
					return -1;  /* must be sent directly */
				} else {
					put_utf8(out, u);
				}
			}
		}
		if (i == len || i == start || hi_sur || nbits >= 6 || bits != 0)
			return -1;
		i++;    /* '-' */
	}
	return 0;
}

/* Decodes one UTF-8 sequence; returns its length or -1. */
static int
utf8_next(const unsigned char *s, uint32_t *cp_r)
{
	uint32_t cp;
	int n, k;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		cp = s[0] & 0x1f;
		n = 2;
	} else if ((s[0] & 0xf0) == 0xe0) {
		cp = s[0] & 0x0f;
		n = 3;
	} else if ((s[0] & 0xf8) == 0xf0) {
		cp = s[0] & 0x07;
		n = 4;
	} else {
		return -1;
	}
	for (k = 1; k < n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*cp_r = cp;
	return n;
}

int
imap_utf8_to_utf7(const char *in, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)in;

	while (*s) {
		uint32_t bits = 0;
		int nbits = 0;

		if (*s >= 0x20 && *s <= 0x7e) {
			if (*s == '&')
				buf_puts(out, "&-");
			else
				buf_putc(out, (char)*s);
			s++;
			continue;
		}
		buf_putc(out, '&');
		while (*s && (*s < 0x20 || *s > 0x7e)) {
			uint32_t cp, u[2];
			int n = utf8_next(s, &cp), k, nu;

			if (n < 0)
				return -1;
			s += n;
			if (cp >= 0x10000) {
				cp -= 0x10000;
				u[0] = 0xd800 + (cp >> 10);
				u[1] = 0xdc00 + (cp & 0x3ff);
				nu = 2;
			} else {
				u[0] = cp;
				nu = 1;
			}
			for (k = 0; k < nu; k++) {
				bits = (bits << 16) | u[k];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					buf_putc(out, b64[(bits >> nbits) & 0x3f]);
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits > 0)
			buf_putc(out, b64[(bits << (6 - nbits)) & 0x3f]);
		buf_putc(out, '-');
	}
	return 0;
}
