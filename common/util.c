/* util: allocation that aborts on OOM, the growable byte buffer, small string
   helpers (sizes, durations, base64, dates, addresses). No I/O except the
   message written before aborting on OOM; no global state. */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

static void
oom(size_t n)
{
	/* No log.h here: util must work before logging is set up, and a
	   formatted write may itself need memory. */
	static const char msg[] = "fatal: out of memory\n";
	ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)r;
	(void)n;
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		oom(n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	buf_init(&b);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	return buf_steal(&b);
}

void
buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void
buf_reserve(struct buf *b, size_t extra)
{
	size_t need, cap;

	/* +1 keeps room for the terminating NUL the header promises. */
	if (extra > SIZE_MAX - b->len - 1)
		oom(SIZE_MAX);
	need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
	/* Keeps "NUL-terminated once allocated" true even before an append. */
	b->data[b->len] = '\0';
}

void
buf_append(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void
buf_putc(struct buf *b, char c)
{
	buf_append(b, &c, 1);
}

char *
u64_dec_at(char *p, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	memcpy(p, tmp + i, sizeof(tmp) - i);
	return p + sizeof(tmp) - i;
}

void
buf_put_u64(struct buf *b, uint64_t v)
{
	char tmp[20];

	buf_append(b, tmp, (size_t)(u64_dec_at(tmp, v) - tmp));
}

void
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	buf_reserve(b, 64);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	if (n < 0) {
		va_end(ap2);
		b->data[b->len] = '\0';
		return;
	}
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
	}
	va_end(ap2);
	b->len += (size_t)n;
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

char *
buf_steal(struct buf *b)
{
	char *p = b->data;

	if (p == NULL)
		p = xstrdup("");
	buf_init(b);
	return p;
}

size_t
str_copy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

static char
ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

void
str_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = ascii_lower(*s);
}

bool
str_has_prefix_ci(const char *s, const char *prefix)
{
	for (; *prefix != '\0'; s++, prefix++) {
		if (ascii_lower(*s) != ascii_lower(*prefix))
			return false;
	}
	return true;
}

/* Parses the leading decimal digits of s into *v; returns the rest or NULL
   if there is no digit or it overflows. */
static const char *
parse_u64(const char *s, uint64_t *v)
{
	uint64_t n = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - d) / 10)
			return NULL;
		n = n * 10 + d;
	}
	if (p == s)
		return NULL;
	*v = n;
	return p;
}

int
parse_size(const char *s, uint64_t *out)
{
	uint64_t n, mult = 1;
	const char *p;

	if (s == NULL || (p = parse_u64(s, &n)) == NULL)
		return -1;
	switch (*p) {
	case '\0':
		break;
	case 'k': case 'K': mult = 1024ULL; p++; break;
	case 'm': case 'M': mult = 1024ULL * 1024; p++; break;
	case 'g': case 'G': mult = 1024ULL * 1024 * 1024; p++; break;
	default:
		return -1;
	}
	/* "10KB" and "10KiB" are what people write too. */
	if (mult > 1 && (*p == 'b' || *p == 'B'))
		p++;
	else if (mult > 1 && *p == 'i' && (p[1] == 'b' || p[1] == 'B'))
		p += 2;
	if (*p != '\0' || n > UINT64_MAX / mult)
		return -1;
	*out = n * mult;
	return 0;
}

int
parse_duration(const char *s, double *seconds_out)
{
	uint64_t n, mult = 1;
	const char *p;

	if (s == NULL || (p = parse_u64(s, &n)) == NULL)
		return -1;
	switch (*p) {
	case '\0':
		break;
	case 's': p++; break;
	case 'm': mult = 60; p++; break;
	case 'h': mult = 3600; p++; break;
	case 'd': mult = 86400; p++; break;
	default:
		return -1;
	}
	/* A year is far past any sane timeout; reject to keep doubles exact. */
	if (*p != '\0' || n > 366ULL * 86400 / mult)
		return -1;
	*seconds_out = (double)(n * mult);
	return 0;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
base64_encode(const void *in, size_t len, struct buf *out)
{
	const unsigned char *p = in;
	char q[4];
	size_t i;

	buf_reserve(out, (len + 2) / 3 * 4);
	for (i = 0; i + 2 < len; i += 3) {
		q[0] = b64_alphabet[p[i] >> 2];
		q[1] = b64_alphabet[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		q[2] = b64_alphabet[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		q[3] = b64_alphabet[p[i + 2] & 63];
		buf_append(out, q, 4);
	}
	if (i < len) {
		q[0] = b64_alphabet[p[i] >> 2];
		if (i + 1 < len) {
			q[1] = b64_alphabet[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
			q[2] = b64_alphabet[(p[i + 1] & 15) << 2];
		} else {
			q[1] = b64_alphabet[(p[i] & 3) << 4];
			q[2] = '=';
		}
		q[3] = '=';
		buf_append(out, q, 4);
	}
}

int
base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
base64_decode(const char *in, size_t len, struct buf *out)
{
	size_t start = out->len, i;
	unsigned char o[3];
	int v[4];

	/* Strict: whole quads, padding only at the very end, and the unused
	   bits of the last quad zero (so each byte string has one encoding). */
	if (len % 4 != 0)
		return -1;
	buf_reserve(out, len / 4 * 3);
	for (i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int pad = 0, k;

		for (k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=' && last && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad > 0 || (v[k] = base64_value(c)) < 0)
				goto bad;
		}
		o[0] = (unsigned char)((v[0] << 2) | (v[1] >> 4));
		o[1] = (unsigned char)(((v[1] & 15) << 4) | (v[2] >> 2));
		o[2] = (unsigned char)(((v[2] & 3) << 6) | v[3]);
		if ((pad == 2 && (v[1] & 15) != 0) ||
		    (pad == 1 && (v[2] & 3) != 0))
			goto bad;
		buf_append(out, o, (size_t)(3 - pad));
	}
	if (out->data == NULL)
		buf_append(out, "", 0);
	return 0;
bad:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}

void
date_rfc5322(time_t t, char *out, size_t size)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	long off;
	char sign = '+';

	/* Day and month names by hand: strftime's would follow the locale. */
	if (localtime_r(&t, &tm) == NULL) {
		str_copy(out, "Thu, 01 Jan 1970 00:00:00 +0000", size);
		return;
	}
	off = tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
	    off / 60, off % 60);
}

static bool
ascii_isalnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z');
}

static bool
is_local_char(unsigned char c)
{
	/* RFC 5322 atext plus '.', which is checked for placement below. */
	return ascii_isalnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

int
address_normalize(char *addr)
{
	char *at, *p, *label;
	size_t len;

	if (addr == NULL)
		return -1;
	len = strlen(addr);
	if (len == 0 || len > 254)
		return -1;
	at = strrchr(addr, '@');
	if (at == NULL || at == addr || at - addr > 64 || at[1] == '\0')
		return -1;
	for (p = addr; p < at; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 0x80 || !is_local_char(c))
			return -1;
	}
	if (addr[0] == '.' || at[-1] == '.' || strstr(addr, "..") != NULL)
		return -1;
	/* Domain: dot-separated labels of letters, digits and inner hyphens. */
	label = at + 1;
	for (p = at + 1;; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.' || c == '\0') {
			size_t l = (size_t)(p - label);
			if (l == 0 || l > 63 || label[0] == '-' || p[-1] == '-')
				return -1;
			if (c == '\0')
				break;
			label = p + 1;
			continue;
		}
		if (c >= 0x80 || !(ascii_isalnum(c) || c == '-'))
			return -1;
	}
	str_lower(addr);
	return 0;
}

void
secret_free(char **s)
{
	if (*s == NULL)
		return;
	sodium_memzero(*s, strlen(*s));
	free(*s);
	*s = NULL;
}
