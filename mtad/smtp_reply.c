/* smtp_reply: reads a remote server's replies line by line, bounded (line
   length, lines per reply, kept text), and reads the EHLO keywords. Pure:
   the SMTP client feeds it bytes from its input buffer and acts on whole
   replies; nothing here does I/O or logs. */
#include "smtp_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
smtp_reply_parser_init(struct smtp_reply_parser *p)
{
	memset(p, 0, sizeof(*p));
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "X.Y.Z" at the start of t[0..len) with X matching the code's class:
   copies it into enh and returns its length, or 0. */
static size_t
read_enhanced(const char *t, size_t len, int code, char *enh, size_t enhsize)
{
	size_t i = 0, n;

	if (len < 5 || t[0] != '0' + code / 100 || t[1] != '.')
		return 0;
	i = 2;
	for (n = 0; i < len && is_digit(t[i]) && n < 3; i++, n++)
		;
	if (n == 0 || i >= len || t[i] != '.')
		return 0;
	i++;
	for (n = 0; i < len && is_digit(t[i]) && n < 3; i++, n++)
		;
	if (n == 0 || (i < len && t[i] != ' ' && t[i] != '\t'))
		return 0;
	if (i >= enhsize)
		return 0;
	memcpy(enh, t, i);
	enh[i] = '\0';
	return i;
}

/* One line l[0..len) without its line end. 1 last line, 0 continuation,
   -1 malformed. */
static int
one_line(struct smtp_reply_parser *p, const char *l, size_t len,
    const char **error_r)
{
	struct smtp_reply *r = &p->r;
	int code;
	const char *t;
	size_t tl;

	if (len < 3 || !is_digit(l[0]) || !is_digit(l[1]) || !is_digit(l[2]) ||
	    l[0] < '2' || l[0] > '5' || (len > 3 && l[3] != ' ' && l[3] != '-')) {
		*error_r = "malformed reply line";
		return -1;
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (p->started && code != r->code) {
		*error_r = "reply code changes within a multi-line reply";
		return -1;
	}
	if (!p->started) {
		memset(r, 0, sizeof(*r));
		r->code = code;
	}
	if (++r->nlines > SMTP_REPLY_LINES_MAX) {
		*error_r = "too many lines in one reply";
		return -1;
	}
	t = len > 4 ? l + 4 : "";
	tl = len > 4 ? len - 4 : 0;
	if (r->nlines == 1)
		(void)read_enhanced(t, tl, code, r->enhanced,
		    sizeof(r->enhanced));
	if (r->text_len + tl + 1 <= sizeof(r->text)) {
		memcpy(r->text + r->text_len, t, tl);
		r->text[r->text_len + tl] = '\0';
		r->text_len += tl + 1;
		r->nkept++;
	}
	if (len > 3 && l[3] == '-') {
		p->started = true;
		return 0;
	}
	p->started = false;
	return 1;
}

int
smtp_reply_parse(struct smtp_reply_parser *p, const char *buf, size_t len,
    size_t *used_r, const struct smtp_reply **reply_r, const char **error_r)
{
	size_t pos = 0;

	*used_r = 0;
	*reply_r = NULL;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end, ll;
		int k;

		if (nl == NULL) {
			if (len - pos >= SMTP_REPLY_LINE_MAX) {
				*error_r = "reply line too long";
				return -1;
			}
			return 0;
		}
		end = (size_t)(nl - buf);
		if (end - pos + 1 > SMTP_REPLY_LINE_MAX) {
			*error_r = "reply line too long";
			return -1;
		}
		ll = end - pos;
		if (ll > 0 && buf[end - 1] == '\r')
			ll--;
		k = one_line(p, buf + pos, ll, error_r);
		if (k < 0)
			return -1;
		pos = end + 1;
		*used_r = pos;
		if (k == 1) {
			*reply_r = &p->r;
			return 1;
		}
	}
	return 0;
}

const char *
smtp_reply_line(const struct smtp_reply *r, size_t i)
{
	size_t off = 0;

	if (i >= r->nkept)
		return NULL;
	while (i-- > 0)
		off += strlen(r->text + off) + 1;
	return r->text + off;
}

const char *
smtp_reply_oneline(const struct smtp_reply *r, char *out, size_t size)
{
	size_t o;
	const char *sep = "";

	if (size < 8) {
		if (size > 0)
			out[0] = '\0';
		return out;
	}
	o = (size_t)snprintf(out, size, "%03d", r->code);
	for (size_t i = 0; i < r->nkept && o + 1 < size; i++) {
		const char *t = smtp_reply_line(r, i);

		if (o + 1 < size)
			out[o++] = ' ';
		for (const char *s = sep; *s != '\0' && o + 1 < size; s++)
			out[o++] = *s;
		for (; *t != '\0' && o + 1 < size; t++)
			out[o++] = (*t >= 0x20 && *t < 0x7f) ? *t : '?';
		sep = "/ ";
	}
	out[o < size ? o : size - 1] = '\0';
	return out;
}

void
smtp_reply_first_word(const struct smtp_reply *r, char *out, size_t size)
{
	const char *t = r->nkept > 0 ? smtp_reply_line(r, 0) : "";
	size_t n = 0;

	while (*t == ' ')
		t++;
	while (t[n] != '\0' && t[n] != ' ' && t[n] != '\t')
		n++;
	if (size == 0)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(out, t, n);
	out[n] = '\0';
}

static bool
word_is(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

static void
auth_mechs(const char *s, struct smtp_ehlo *e)
{
	while (*s != '\0') {
		size_t n;

		while (*s == ' ' || *s == '\t' || *s == '=')
			s++;
		n = strcspn(s, " \t");
		if (word_is(s, n, "PLAIN"))
			e->auth |= SMTP_AUTH_PLAIN;
		else if (word_is(s, n, "LOGIN"))
			e->auth |= SMTP_AUTH_LOGIN;
		s += n;
	}
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e)
{
	memset(e, 0, sizeof(*e));
	for (size_t i = 1; i < r->nkept; i++) {
		const char *l = smtp_reply_line(r, i), *arg;
		size_t n = strcspn(l, " \t=");

		arg = l + n;
		while (*arg == ' ' || *arg == '\t')
			arg++;
		if (word_is(l, n, "STARTTLS"))
			e->starttls = true;
		else if (word_is(l, n, "PIPELINING"))
			e->pipelining = true;
		else if (word_is(l, n, "8BITMIME"))
			e->eightbitmime = true;
		else if (word_is(l, n, "SMTPUTF8"))
			e->smtputf8 = true;
		else if (word_is(l, n, "DSN"))
			e->dsn = true;
		else if (word_is(l, n, "ENHANCEDSTATUSCODES"))
			e->enhanced = true;
		else if (word_is(l, n, "AUTH"))
			auth_mechs(arg, e);
		else if (word_is(l, n, "SIZE")) {
			char *endp;
			unsigned long long v;

			e->has_size = true;
			e->size = 0;
			if (is_digit(*arg)) {
				v = strtoull(arg, &endp, 10);
				if ((*endp == '\0' || *endp == ' ') &&
				    strlen(arg) <= 19)
					e->size = v;
			}
		}
	}
}
