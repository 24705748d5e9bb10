/* mime_text: the text helpers SEARCH needs: header field values, RFC 2047
   encoded words, decoded text of text/ parts, RFC 5322 dates, and charset
   conversion to UTF-8. Conversion is glibc's iconv, always opened with
   explicit charset names (never the locale's), so ISO-2022-JP, Shift_JIS,
   GB18030, KOI8-R, windows-1251, ISO-8859-7 and whatever else glibc knows
   are searchable; a charset iconv does not know is passed through as is.
   An iconv handle is not thread-safe: each conversion opens its own. */
#include <errno.h>
#include <iconv.h>
#include <string.h>

#include "mime_private.h"

/* ---- charsets ------------------------------------------------------------ */

enum mime_cs
mime_charset_id(const char *name, size_t n)
{
	static const struct {
		const char *name;
		enum mime_cs cs;
	} names[] = {
		{ "utf-8", MIME_CS_UTF8 }, { "utf8", MIME_CS_UTF8 },
		{ "us-ascii", MIME_CS_ASCII }, { "ascii", MIME_CS_ASCII },
		{ "iso-8859-1", MIME_CS_LATIN1 }, { "iso8859-1", MIME_CS_LATIN1 },
		{ "iso_8859-1", MIME_CS_LATIN1 }, { "latin1", MIME_CS_LATIN1 },
		{ "windows-1252", MIME_CS_CP1252 }, { "cp1252", MIME_CS_CP1252 },
		{ "iso-8859-15", MIME_CS_LATIN9 }, { "iso8859-15", MIME_CS_LATIN9 },
		{ "iso_8859-15", MIME_CS_LATIN9 }, { "latin9", MIME_CS_LATIN9 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strlen(names[i].name) == n &&
		    strncasecmp(names[i].name, name, n) == 0)
			return names[i].cs;
	return MIME_CS_OTHER;
}

static void
put_utf8(struct buf *out, uint32_t cp)
{
	char t[2];

	if (cp < 0x80) {
		buf_putc(out, (char)cp);
	} else {
		t[0] = (char)(0xc0 | cp >> 6);
		t[1] = (char)(0x80 | (cp & 0x3f));
		buf_append(out, t, 2);
	}
}

/* A charset name as it may go to iconv_open: a plain token, so that no
   "//TRANSLIT"-style suffix or path reaches it. */
static bool
charset_name_ok(const char *name, size_t n)
{
	if (n == 0 || n > 40)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
		    c == ':' || c == '+'))
			return false;
	}
	return true;
}

/* The iconv name of a charset the part table records by number. */
static const char *
cs_iconv_name(enum mime_cs cs)
{
	switch (cs) {
	case MIME_CS_LATIN1: return "ISO-8859-1";
	case MIME_CS_CP1252: return "WINDOWS-1252";
	case MIME_CS_LATIN9: return "ISO-8859-15";
	default: return NULL;   /* UTF-8, ASCII: as is; other: by name */
	}
}

/* Converts with iconv from charset cs (a C string); false, with nothing
   appended, if iconv does not know cs. A byte that is not valid in cs is
   taken as Latin-1 (for windows-1252's five unassigned bytes that is
   what browsers do), and conversion goes on after it. */
static bool
iconv_to_utf8(const char *cs, const char *in, size_t n, struct buf *out)
{
	iconv_t cd = iconv_open("UTF-8", cs);
	char *ip = (char *)in, *op;
	size_t il = n, ol;

	if (cd == (iconv_t)-1)
		return false;
	while (il > 0) {
		buf_reserve(out, il * 4 + 16);
		op = out->data + out->len;
		ol = out->cap - out->len - 1;
		size_t r = iconv(cd, &ip, &il, &op, &ol);
		out->len = (size_t)(op - out->data);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		/* EILSEQ, or EINVAL (a sequence cut short at the end). */
		put_utf8(out, (unsigned char)*ip);
		ip++;
		il--;
	}
	/* Back to the initial shift state (ISO-2022-JP): may write bytes. */
	buf_reserve(out, 16);
	op = out->data + out->len;
	ol = out->cap - out->len - 1;
	(void)iconv(cd, NULL, NULL, &op, &ol);
	out->len = (size_t)(op - out->data);
	out->data[out->len] = '\0';
	iconv_close(cd);
	return true;
}

void
mime_text_to_utf8(const char *cs, size_t cs_len, const char *in, size_t n,
    struct buf *out)
{
	char name[48];
	const char *iname;
	enum mime_cs id = mime_charset_id(cs, cs_len);

	if (id == MIME_CS_UTF8 || id == MIME_CS_ASCII) {
		buf_append(out, in, n);
		return;
	}
	if ((iname = cs_iconv_name(id)) == NULL) {
		if (!charset_name_ok(cs, cs_len)) {
			buf_append(out, in, n);
			return;
		}
		memcpy(name, cs, cs_len);
		name[cs_len] = '\0';
		iname = name;
	}
	if (!iconv_to_utf8(iname, in, n, out))
		buf_append(out, in, n);   /* unknown charset: as is */
}

/* ---- transfer encodings (tolerant: mail is often slightly broken) ------- */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Skips anything not in the alphabet; stops at the first '='. */
static void
b64_decode(const char *in, size_t n, struct buf *out)
{
	uint32_t acc = 0;
	int bits = 0;

	buf_reserve(out, n / 4 * 3 + 3);
	for (size_t i = 0; i < n && in[i] != '='; i++) {
		int v = base64_value((unsigned char)in[i]);

		if (v < 0)
			continue;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf_putc(out, (char)(acc >> bits));
			acc &= (1u << bits) - 1;
		}
	}
}

/* A soft line break after a '=': optional transport padding (spaces,
   tabs), then CR?LF or the end. *i_r: the last byte of it. */
static bool
qp_soft_break(const char *in, size_t n, size_t j, size_t *i_r)
{
	while (j < n && (in[j] == ' ' || in[j] == '\t'))
		j++;
	if (j < n && in[j] == '\r')
		j++;
	if (j < n && in[j] == '\n') {
		*i_r = j;
		return true;
	}
	if (j >= n) {
		*i_r = n;
		return true;
	}
	return false;
}

/* Quoted-printable (RFC 2045 6.7), or the Q encoding of RFC 2047 when
   q_words is set ('_' is a space, no soft line breaks). */
static void
qp_decode(const char *in, size_t n, bool q_words, struct buf *out)
{
	buf_reserve(out, n);
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c == '_' && q_words) {
			buf_putc(out, ' ');
		} else if (c != '=') {
			buf_putc(out, c);
		} else if (i + 2 < n + 0 && hexval(in[i + 1]) >= 0 &&
		    hexval(in[i + 2]) >= 0) {
			buf_putc(out, (char)(hexval(in[i + 1]) * 16 +
			    hexval(in[i + 2])));
			i += 2;
		} else if (!q_words && qp_soft_break(in, n, i + 1, &i)) {
			continue;       /* i is at the break's LF (or end) */
		} else {
			buf_putc(out, c);
		}
	}
}

/* ---- RFC 2047 ------------------------------------------------------------ */

struct ew {
	const char *cs, *text;
	size_t cs_len, text_len, len;
	char enc;
};

/* An encoded word "=?charset[*lang]?B|Q?text?=" at in[0..n), or false. */
static bool
ew_parse(const char *in, size_t n, struct ew *w)
{
	size_t i = 2, j;

	if (n < 8 || in[0] != '=' || in[1] != '?')
		return false;
	w->cs = in + 2;
	while (i < n && in[i] != '?' && in[i] > ' ' && in[i] != 0x7f)
		i++;
	if (i + 3 >= n || in[i] != '?' || i == 2 || in[i + 2] != '?')
		return false;
	w->cs_len = i - 2;
	w->enc = (char)(in[i + 1] | 0x20);
	if (w->enc != 'b' && w->enc != 'q')
		return false;
	w->text = in + i + 3;
	for (j = i + 3; j + 1 < n; j++) {
		if (in[j] == '?' && in[j + 1] == '=')
			break;
		if (in[j] == ' ' || in[j] == '\t' || in[j] == '\r' ||
		    in[j] == '\n')
			return false;
	}
	if (j + 1 >= n)
		return false;
	w->text_len = (size_t)(in + j - w->text);
	w->len = j + 2;
	/* RFC 2231 adds "*language" to the charset. */
	{
		const char *star = memchr(w->cs, '*', w->cs_len);

		if (star != NULL)
			w->cs_len = (size_t)(star - w->cs);
	}
	return true;
}

static void
ew_decode(const struct ew *w, struct buf *tmp, struct buf *out)
{
	buf_reset(tmp);
	if (w->enc == 'b')
		b64_decode(w->text, w->text_len, tmp);
	else
		qp_decode(w->text, w->text_len, true, tmp);
	mime_text_to_utf8(w->cs, w->cs_len, tmp->data != NULL ? tmp->data : "",
	    tmp->len, out);
}

static bool
is_lwsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void
mime_decode_words(const char *in, size_t len, struct buf *out)
{
	struct buf tmp;
	struct ew w;
	bool after_ew = false;
	size_t i = 0;

	buf_init(&tmp);
	buf_reserve(out, len);
	while (i < len) {
		if (in[i] == '=' && ew_parse(in + i, len - i, &w)) {
			ew_decode(&w, &tmp, out);
			i += w.len;
			after_ew = true;
			continue;
		}
		if (after_ew && is_lwsp(in[i])) {
			/* Whitespace between two encoded words is dropped. */
			size_t k = i;

			while (k < len && is_lwsp(in[k]))
				k++;
			if (k < len && ew_parse(in + k, len - k, &w)) {
				i = k;
				continue;
			}
			buf_append(out, in + i, k - i);
			i = k;
			after_ew = false;
			continue;
		}
		buf_putc(out, in[i++]);
		after_ew = false;
	}
	buf_append(out, "", 0);    /* data is a C string even when empty */
	buf_free(&tmp);
}

/* ---- header fields --------------------------------------------------------- */

int
mime_header_get(const char *hdr, size_t len, const char *name,
    struct buf *out)
{
	struct mime_hdr_iter it;
	struct mime_field f;
	int found = 0;

	mime_hdr_iter_init(&it, hdr, len);
	while (mime_hdr_next(&it, &f) == 1) {
		const char *p = f.value, *end = f.value + f.value_len;

		if (!mime_field_is(&f, name))
			continue;
		if (found++ > 0)
			buf_putc(out, '\n');
		/* RFC 5322 unfolding: only the line breaks go. */
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		buf_reserve(out, (size_t)(end - p));
		for (; p < end; p++)
			if (*p != '\r' && *p != '\n')
				buf_putc(out, *p);
	}
	if (out->data == NULL)
		buf_append(out, "", 0);
	return found;
}

/* ---- body text ------------------------------------------------------------- */

void
mime_body_text(const char *msg, size_t len, const void *parts, size_t plen,
    struct buf *out)
{
	struct mime_rec r;
	struct buf tmp;
	bool first = true;
	char cs[48];

	buf_init(&tmp);
	for (uint32_t i = 0; mime_tab_rec(parts, plen, i, &r); i++) {
		const char *body;

		if (r.kind != MIME_KIND_LEAF || !(r.flags & MIME_REC_TEXT) ||
		    r.body_off > len || r.body_len > len - r.body_off)
			continue;
		body = msg + r.body_off;
		if (!first)
			buf_putc(out, '\n');
		first = false;
		buf_reset(&tmp);
		if (r.cte == MIME_CTE_BASE64)
			b64_decode(body, r.body_len, &tmp);
		else if (r.cte == MIME_CTE_QP)
			qp_decode(body, r.body_len, false, &tmp);
		else
			buf_append(&tmp, body, r.body_len);
		/* The table has the usual charsets by number; any other is
		   read again from the part's header. */
		size_t csl;
		const char *iname = cs_iconv_name((enum mime_cs)r.charset);
		if (r.charset == MIME_CS_UTF8 || r.charset == MIME_CS_ASCII) {
			csl = 5;
			memcpy(cs, "utf-8", 6);
		} else if (iname != NULL) {
			csl = str_copy(cs, iname, sizeof(cs));
		} else if (r.hdr_off > len || r.hdr_len > len - r.hdr_off ||
		    (csl = mime_part_charset(msg + r.hdr_off, r.hdr_len, cs,
		    sizeof(cs))) == 0) {
			csl = 5;
			memcpy(cs, "utf-8", 6);   /* as is */
		}
		mime_text_to_utf8(cs, csl, tmp.data != NULL ? tmp.data : "",
		    tmp.len, out);
	}
	buf_append(out, "", 0);    /* data is a C string even when empty */
	buf_free(&tmp);
}

/* ---- dates ------------------------------------------------------------------ */

struct dlex {
	const char *p, *end;
};

static void
d_cfws(struct dlex *d)
{
	mime_skip_cfws(&d->p, d->end);
}

static size_t
d_num(struct dlex *d, int *v)
{
	size_t n = 0;

	d_cfws(d);
	*v = 0;
	while (d->p < d->end && *d->p >= '0' && *d->p <= '9' && n < 9) {
		*v = *v * 10 + (*d->p - '0');
		d->p++;
		n++;
	}
	return n;
}

static size_t
d_word(struct dlex *d, char *w, size_t size)
{
	size_t n = 0;

	d_cfws(d);
	while (d->p < d->end && ((*d->p | 0x20) >= 'a' && (*d->p | 0x20) <=
	    'z')) {
		if (n + 1 < size)
			w[n] = (char)(*d->p | 0x20);
		n++;
		d->p++;
	}
	w[n < size ? n : size - 1] = '\0';
	return n;
}

static bool
d_char(struct dlex *d, char c)
{
	d_cfws(d);
	if (d->p < d->end && *d->p == c) {
		d->p++;
		return true;
	}
	return false;
}

static int
zone_minutes(const char *w, size_t n, int *tz)
{
	static const struct {
		const char *name;
		int min;
	} zones[] = {
		{ "ut", 0 }, { "utc", 0 }, { "gmt", 0 }, { "z", 0 },
		{ "est", -300 }, { "edt", -240 }, { "cst", -360 },
		{ "cdt", -300 }, { "mst", -420 }, { "mdt", -360 },
		{ "pst", -480 }, { "pdt", -420 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(zones); i++) {
		if (strcmp(w, zones[i].name) == 0) {
			*tz = zones[i].min;
			return 0;
		}
	}
	/* RFC 5322 4.3: military and unknown zones mean -0000. */
	*tz = 0;
	return n > 0 ? 0 : -1;
}

static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int
days_in_month(int y, int m)
{
	static const int dm[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dm[m - 1];
}

int
mime_parse_date(const char *s, size_t len, time_t *t_r, int *tz_min_r)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	struct dlex d = { s, s + len };
	char w[16];
	const char *save;
	int day, mon = 0, year, hh, mm, ss = 0, tz = 0;
	size_t nd;

	if (s == NULL)
		return -1;
	save = d.p;
	if (d_word(&d, w, sizeof(w)) > 0)
		d_char(&d, ',');        /* a day name; its value is unused */
	else
		d.p = save;
	if (d_num(&d, &day) == 0 || day < 1)
		return -1;
	if (d_word(&d, w, sizeof(w)) < 3)
		return -1;
	for (int i = 0; i < 12; i++)
		if (memcmp(w, months + i * 3, 3) == 0)
			mon = i + 1;
	if (mon == 0)
		return -1;
	nd = d_num(&d, &year);
	if (nd < 2 || nd > 4)
		return -1;
	if (nd == 2)
		year += year < 50 ? 2000 : 1900;
	else if (nd == 3)
		year += 1900;
	if (year < 1900 || day > days_in_month(year, mon))
		return -1;
	if (d_num(&d, &hh) == 0 || !d_char(&d, ':') || d_num(&d, &mm) == 0)
		return -1;
	save = d.p;
	if (d_char(&d, ':')) {
		if (d_num(&d, &ss) == 0)
			return -1;
	} else {
		d.p = save;
	}
	if (hh > 23 || mm > 59 || ss > 60)
		return -1;
	d_cfws(&d);
	if (d.p < d.end && (*d.p == '+' || *d.p == '-')) {
		int sign = *d.p == '-' ? -1 : 1, z;

		d.p++;
		if (d_num(&d, &z) != 4 || z % 100 > 59)
			return -1;
		tz = sign * (z / 100 * 60 + z % 100);
	} else {
		size_t n = d_word(&d, w, sizeof(w));

		if (n > 0 && zone_minutes(w, n, &tz) < 0)
			return -1;
	}
	*t_r = (time_t)(days_from_civil(year, (unsigned)mon, (unsigned)day) *
	    86400 + hh * 3600 + mm * 60 + ss - (int64_t)tz * 60);
	*tz_min_r = tz;
	return 0;
}
