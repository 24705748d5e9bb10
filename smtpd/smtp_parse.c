/* smtp_parse: pure parsers for smtpd. Command lines, MAIL/RCPT paths and
   their ESMTP parameters, EHLO and BDAT arguments, and the DATA
   dot-unstuffing state machine. Must not do I/O, log, allocate or keep
   global state: the fuzz target and the unit tests call it directly. */
#include <string.h>

#include "smtp_parse.h"

static const char *const verb_names[SMTP_V_COUNT] = {
	[SMTP_V_UNKNOWN] = "UNKNOWN",
	[SMTP_V_EHLO] = "EHLO", [SMTP_V_HELO] = "HELO", [SMTP_V_MAIL] = "MAIL",
	[SMTP_V_RCPT] = "RCPT", [SMTP_V_DATA] = "DATA", [SMTP_V_BDAT] = "BDAT",
	[SMTP_V_RSET] = "RSET", [SMTP_V_NOOP] = "NOOP", [SMTP_V_QUIT] = "QUIT",
	[SMTP_V_HELP] = "HELP", [SMTP_V_VRFY] = "VRFY", [SMTP_V_EXPN] = "EXPN",
	[SMTP_V_STARTTLS] = "STARTTLS", [SMTP_V_AUTH] = "AUTH",
};

static int
lc(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool
eq_ci(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (lc((unsigned char)a[i]) != lc((unsigned char)b[i]))
			return false;
	return true;
}

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

const char *
smtp_verb_name(enum smtp_verb v)
{
	if ((int)v < 0 || v >= SMTP_V_COUNT)
		return "UNKNOWN";
	return verb_names[v];
}

int
smtp_parse_command(const char *line, size_t len, struct smtp_cmd *cmd_r,
    const char **error_r)
{
	size_t vlen = 0, i;

	memset(cmd_r, 0, sizeof(*cmd_r));
	if (memchr(line, '\0', len) != NULL) {
		*error_r = "NUL byte in command";
		return -1;
	}
	/* Trailing blanks are noise some clients add; they never matter. */
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0) {
		*error_r = "Empty command";
		return -1;
	}
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	cmd_r->verb = SMTP_V_UNKNOWN;
	for (i = 1; i < SMTP_V_COUNT; i++)
		if (eq_ci(line, vlen, verb_names[i])) {
			cmd_r->verb = (enum smtp_verb)i;
			break;
		}
	i = vlen;
	while (i < len && line[i] == ' ')
		i++;
	cmd_r->args = line + i;
	cmd_r->args_len = len - i;
	return 0;
}

/* RFC 5321 atext (RFC 5322 3.2.3). */
static bool
is_atext(int c, bool utf8)
{
	if (is_alnum(c))
		return true;
	if (c >= 0x80)
		return utf8;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static bool
utf8_valid(const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t n;
		unsigned long cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* Dot-string = Atom *("." Atom). */
static bool
is_dot_string(const char *p, size_t len, bool utf8)
{
	bool prev_dot = true;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '.') {
			if (prev_dot)
				return false;
			prev_dot = true;
		} else if (is_atext(c, utf8)) {
			prev_dot = false;
		} else {
			return false;
		}
	}
	return !prev_dot;
}

/* Domain = sub-domain *("." sub-domain), or an address literal. */
static bool
is_domain(const char *p, size_t len, bool utf8)
{
	size_t label = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	if (p[0] == '[') {
		if (len < 3 || p[len - 1] != ']')
			return false;
		for (size_t i = 1; i < len - 1; i++) {
			unsigned char c = (unsigned char)p[i];
			/* dcontent: %d33-90 / %d94-126 */
			if (c < 33 || c > 126 || c == '[' || c == '\\' ||
			    c == ']')
				return false;
		}
		return true;
	}
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)p[i] : '.';

		if (c == '.') {
			if (label == 0 || label > 63 || p[i - 1] == '-')
				return false;
			label = 0;
		} else if (is_alnum(c) || (c >= 0x80 && utf8) ||
		    (c == '-' && label > 0)) {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

int
smtp_parse_address(const char *p, size_t len, bool utf8,
    struct smtp_path *path_r, const char **error_r)
{
	size_t i = 0, at, dlen;
	bool nonascii = false;

	for (size_t k = 0; k < len; k++)
		if ((unsigned char)p[k] >= 0x80)
			nonascii = true;
	if (nonascii && (!utf8 || !utf8_valid((const unsigned char *)p, len))) {
		*error_r = utf8 ? "Bad UTF-8 in address" :
		    "Non-ASCII address needs SMTPUTF8";
		return -1;
	}
	path_r->is_utf8 = nonascii;
	if (len > SMTP_PATH_MAX) {
		*error_r = "Address too long";
		return -1;
	}
	if (len > 0 && p[0] == '"') {
		/* Quoted-string: find the closing quote, honouring escapes. */
		char unq[SMTP_LOCAL_MAX + 1];
		size_t ulen = 0;

		for (i = 1; i < len && p[i] != '"'; i++) {
			unsigned char c = (unsigned char)p[i];

			if (c == '\\') {
				if (++i >= len || (unsigned char)p[i] < 32 ||
				    (unsigned char)p[i] == 127) {
					*error_r = "Bad quoted local part";
					return -1;
				}
				c = (unsigned char)p[i];
			} else if (c < 32 || c == 127) {
				*error_r = "Bad quoted local part";
				return -1;
			}
			if (ulen < SMTP_LOCAL_MAX)
				unq[ulen] = (char)c;
			ulen++;
		}
		if (i >= len) {
			*error_r = "Unterminated quoted local part";
			return -1;
		}
		i++;    /* the closing quote */
		if (i > SMTP_LOCAL_MAX + 2 || ulen == 0 || ulen > SMTP_LOCAL_MAX) {
			*error_r = "Bad local part length";
			return -1;
		}
		/* "abc"@x and abc@x are the same mailbox (RFC 5321 4.1.2). */
		if (is_dot_string(unq, ulen, utf8)) {
			memcpy(path_r->local, unq, ulen);
			path_r->local[ulen] = '\0';
		} else {
			memcpy(path_r->local, p, i);
			path_r->local[i] = '\0';
		}
	} else {
		const char *a = memchr(p, '@', len);

		i = a != NULL ? (size_t)(a - p) : len;
		if (i > SMTP_LOCAL_MAX || !is_dot_string(p, i, utf8)) {
			*error_r = "Bad local part";
			return -1;
		}
		memcpy(path_r->local, p, i);
		path_r->local[i] = '\0';
	}
	if (i >= len || p[i] != '@') {
		*error_r = "Address needs a domain";
		return -1;
	}
	at = i;
	dlen = len - at - 1;
	if (!is_domain(p + at + 1, dlen, utf8)) {
		*error_r = "Bad domain";
		return -1;
	}
	memcpy(path_r->domain, p + at + 1, dlen);
	path_r->domain[dlen] = '\0';
	path_r->has_domain = true;
	/* local <= 64+2 quoted, domain <= 255: the sum may exceed the path
	   limit, which the check above already bounded. */
	size_t l = strlen(path_r->local);
	memcpy(path_r->address, path_r->local, l);
	path_r->address[l] = '@';
	memcpy(path_r->address + l + 1, path_r->domain, dlen + 1);
	return 0;
}

/* Finds the end of an angle-bracketed path starting at p[0] == '<',
   skipping quoted strings. Returns the index of '>' or len. */
static size_t
path_end(const char *p, size_t len)
{
	bool quoted = false;

	for (size_t i = 1; i < len; i++) {
		if (quoted && p[i] == '\\') {
			i++;
		} else if (p[i] == '"') {
			quoted = !quoted;
		} else if (!quoted && p[i] == '>') {
			return i;
		}
	}
	return len;
}

int
smtp_xtext_decode(const char *p, size_t len, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '+') {
			int v = 0;
			if (i + 2 >= len)
				return -1;
			for (int k = 1; k <= 2; k++) {
				char h = p[i + (size_t)k];
				v <<= 4;
				if (h >= '0' && h <= '9')
					v |= h - '0';
				else if (h >= 'A' && h <= 'F')
					v |= h - 'A' + 10;
				else
					return -1;
			}
			c = (unsigned char)v;
			i += 2;
			if (c < 0x20 || c > 0x7e)
				return -1;
		} else if (c < 33 || c > 126 || c == '=') {
			return -1;
		}
		if (o + 1 >= size)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY. */
static int
parse_notify(const char *p, size_t len, unsigned *bits_r)
{
	unsigned bits = 0;
	size_t i = 0;

	if (len == 0)
		return -1;
	while (i <= len) {
		size_t s = i;
		unsigned b;
		while (i < len && p[i] != ',')
			i++;
		if (eq_ci(p + s, i - s, "NEVER"))
			b = SMTP_NOTIFY_NEVER;
		else if (eq_ci(p + s, i - s, "SUCCESS"))
			b = SMTP_NOTIFY_SUCCESS;
		else if (eq_ci(p + s, i - s, "FAILURE"))
			b = SMTP_NOTIFY_FAILURE;
		else if (eq_ci(p + s, i - s, "DELAY"))
			b = SMTP_NOTIFY_DELAY;
		else
			return -1;
		if (bits & b)
			return -1;
		bits |= b;
		i++;
	}
	/* NEVER stands alone (RFC 3461 4.1). */
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return -1;
	*bits_r = bits;
	return 0;
}

/* A DSN parameter (RFC 3461): 1 if key was one (and was handled: 0 more
   to do, or -1 with *error_r), 0 if it is not a DSN parameter. */
static int
parse_dsn_param(const char *k, size_t klen, const char *v, size_t vlen,
    bool is_mail, struct smtp_path *path, const char **error_r, int *bad_r)
{
	*bad_r = 0;
	if (is_mail && eq_ci(k, klen, "RET")) {
		if (path->ret != SMTP_RET_NONE)
			*error_r = "Duplicate RET parameter";
		else if (eq_ci(v, vlen, "FULL"))
			path->ret = SMTP_RET_FULL;
		else if (eq_ci(v, vlen, "HDRS"))
			path->ret = SMTP_RET_HDRS;
		else
			*error_r = "Bad RET parameter (FULL or HDRS)";
		*bad_r = path->ret == SMTP_RET_NONE || *error_r != NULL;
	} else if (is_mail && eq_ci(k, klen, "ENVID")) {
		if (path->envid[0] != '\0' || vlen == 0 ||
		    vlen > SMTP_ENVID_MAX ||
		    smtp_xtext_decode(v, vlen, path->envid,
		    sizeof(path->envid)) < 0 || path->envid[0] == '\0') {
			*error_r = "Bad ENVID parameter";
			*bad_r = 1;
		}
	} else if (!is_mail && eq_ci(k, klen, "NOTIFY")) {
		if (path->notify != 0 || parse_notify(v, vlen, &path->notify) <
		    0) {
			*error_r = "Bad NOTIFY parameter";
			*bad_r = 1;
		}
	} else if (!is_mail && eq_ci(k, klen, "ORCPT")) {
		const char *semi = memchr(v, ';', vlen);
		size_t tlen = semi != NULL ? (size_t)(semi - v) : 0;
		bool type_ok = tlen > 0;
		for (size_t i = 0; i < tlen; i++)
			if (!is_alnum((unsigned char)v[i]) && v[i] != '-')
				type_ok = false;
		if (path->orcpt[0] != '\0' || !type_ok ||
		    vlen > SMTP_ORCPT_MAX || tlen + 1 >= vlen) {
			*error_r = "Bad ORCPT parameter";
			*bad_r = 1;
		} else {
			memcpy(path->orcpt, v, tlen + 1);
			if (smtp_xtext_decode(semi + 1, vlen - tlen - 1,
			    path->orcpt + tlen + 1, sizeof(path->orcpt) - tlen -
			    1) < 0) {
				path->orcpt[0] = '\0';
				*error_r = "Bad ORCPT parameter";
				*bad_r = 1;
			}
		}
	} else {
		return 0;
	}
	path->has_dsn = true;
	return 1;
}

static enum smtp_path_err
parse_params(const char *p, size_t len, bool is_mail, bool dsn,
    struct smtp_path *path, const char **error_r)
{
	size_t i = 0;

	while (i < len) {
		size_t s, kend, vstart, e;

		while (i < len && p[i] == ' ')
			i++;
		if (i >= len)
			break;
		s = i;
		while (i < len && p[i] != ' ')
			i++;
		e = i;
		kend = s;
		while (kend < e && p[kend] != '=')
			kend++;
		vstart = kend < e ? kend + 1 : e;
		if (dsn && kend < e) {
			int bad;
			const char *perr = NULL;
			if (parse_dsn_param(p + s, kend - s, p + vstart,
			    e - vstart, is_mail, path, &perr, &bad) == 1) {
				if (bad) {
					*error_r = perr != NULL ? perr :
					    "Bad DSN parameter";
					return SMTP_PATH_EPARAM;
				}
				continue;
			}
		}
		if (!is_mail) {
			*error_r = "No RCPT parameters are supported";
			return SMTP_PATH_EPARAM;
		}
		if (eq_ci(p + s, kend - s, "SIZE")) {
			uint64_t v = 0;

			if (path->has_size || vstart >= e || e - vstart > 19) {
				*error_r = "Bad SIZE parameter";
				return SMTP_PATH_EPARAM;
			}
			for (size_t k = vstart; k < e; k++) {
				if (!is_digit((unsigned char)p[k])) {
					*error_r = "Bad SIZE parameter";
					return SMTP_PATH_EPARAM;
				}
				v = v * 10 + (uint64_t)(p[k] - '0');
			}
			path->has_size = true;
			path->size = v;
		} else if (eq_ci(p + s, kend - s, "BODY")) {
			if (path->body != SMTP_BODY_NONE) {
				*error_r = "Duplicate BODY parameter";
				return SMTP_PATH_EPARAM;
			}
			if (eq_ci(p + vstart, e - vstart, "7BIT"))
				path->body = SMTP_BODY_7BIT;
			else if (eq_ci(p + vstart, e - vstart, "8BITMIME"))
				path->body = SMTP_BODY_8BITMIME;
			else {
				*error_r = "Unsupported BODY type";
				return SMTP_PATH_EPARAM;
			}
		} else if (eq_ci(p + s, e - s, "SMTPUTF8")) {
			if (path->smtputf8) {
				*error_r = "Duplicate SMTPUTF8 parameter";
				return SMTP_PATH_EPARAM;
			}
			path->smtputf8 = true;
		} else if (eq_ci(p + s, kend - s, "AUTH") && vstart < e) {
			if (path->has_auth) {
				*error_r = "Duplicate AUTH parameter";
				return SMTP_PATH_EPARAM;
			}
			path->has_auth = true;
		} else {
			*error_r = "Unsupported parameter";
			return SMTP_PATH_EPARAM;
		}
	}
	return SMTP_PATH_OK;
}

enum smtp_path_err
smtp_parse_path(const char *args, size_t len, bool is_mail, bool utf8_ok,
    struct smtp_path *path_r, const char **error_r)
{
	return smtp_parse_path_dsn(args, len, is_mail, utf8_ok, false, path_r,
	    error_r);
}

enum smtp_path_err
smtp_parse_path_dsn(const char *args, size_t len, bool is_mail, bool utf8_ok,
    bool dsn, struct smtp_path *path_r, const char **error_r)
{
	const char *kw = is_mail ? "FROM:" : "TO:";
	size_t kwlen = strlen(kw), i, ps, pe, rest;
	enum smtp_path_err err;

	memset(path_r, 0, sizeof(*path_r));
	if (len < kwlen || !eq_ci(args, kwlen, kw)) {
		*error_r = is_mail ? "Syntax: MAIL FROM:<address>" :
		    "Syntax: RCPT TO:<address>";
		return SMTP_PATH_ESYNTAX;
	}
	i = kwlen;
	while (i < len && args[i] == ' ')
		i++;
	if (i < len && args[i] == '<') {
		pe = path_end(args + i, len - i) + i;
		if (pe >= len) {
			*error_r = "Missing '>' in path";
			return SMTP_PATH_ESYNTAX;
		}
		ps = i + 1;
		rest = pe + 1;
		if (rest < len && args[rest] != ' ') {
			*error_r = "Garbage after path";
			return SMTP_PATH_ESYNTAX;
		}
	} else {
		/* Tolerated: a bare address without brackets. */
		ps = i;
		pe = i;
		while (pe < len && args[pe] != ' ')
			pe++;
		rest = pe;
		if (pe == ps) {
			*error_r = "Missing address";
			return SMTP_PATH_ESYNTAX;
		}
	}
	/* The parameters come first: SMTPUTF8 decides what the address may
	   contain. */
	err = parse_params(args + rest, len - rest, is_mail, dsn, path_r,
	    error_r);
	if (err != SMTP_PATH_OK)
		return err;
	/* An obsolete source route "@a,@b:user@c" is ignored (RFC 5321 C). */
	if (pe > ps && args[ps] == '@') {
		const char *colon = memchr(args + ps, ':', pe - ps);

		if (colon == NULL) {
			*error_r = "Bad source route";
			return SMTP_PATH_ESYNTAX;
		}
		ps = (size_t)(colon - args) + 1;
	}
	if (pe == ps) {
		if (!is_mail) {
			*error_r = "Empty recipient";
			return SMTP_PATH_ESYNTAX;
		}
		return SMTP_PATH_OK;    /* the null reverse-path <> */
	}
	if (!is_mail && eq_ci(args + ps, pe - ps, "postmaster")) {
		memcpy(path_r->local, "postmaster", 11);
		memcpy(path_r->address, "postmaster", 11);
		return SMTP_PATH_OK;
	}
	if (smtp_parse_address(args + ps, pe - ps,
	    is_mail ? path_r->smtputf8 : utf8_ok, path_r, error_r) < 0) {
		for (size_t k = ps; k < pe; k++)
			if ((unsigned char)args[k] >= 0x80 &&
			    !(is_mail ? path_r->smtputf8 : utf8_ok))
				return SMTP_PATH_EUTF8;
		return SMTP_PATH_ESYNTAX;
	}
	return SMTP_PATH_OK;
}

int
smtp_parse_helo(const char *args, size_t len, char *out, size_t size,
    const char **error_r)
{
	size_t i = 0, n;

	while (i < len && args[i] == ' ')
		i++;
	n = i;
	while (n < len && args[n] != ' ')
		n++;
	if (n == i) {
		*error_r = "EHLO/HELO needs a domain or address literal";
		return -1;
	}
	if (n - i >= size || n - i > 255) {
		*error_r = "Domain too long";
		return -1;
	}
	for (size_t k = i; k < n; k++) {
		unsigned char c = (unsigned char)args[k];
		if (c < 33 || c > 126) {
			*error_r = "Bad characters in domain";
			return -1;
		}
	}
	memcpy(out, args + i, n - i);
	out[n - i] = '\0';
	return 0;
}

int
smtp_parse_bdat(const char *args, size_t len, uint64_t *size_r, bool *last_r,
    const char **error_r)
{
	size_t i = 0;
	uint64_t v = 0;

	*last_r = false;
	while (i < len && is_digit((unsigned char)args[i])) {
		if (i >= 19) {
			*error_r = "BDAT size too large";
			return -1;
		}
		v = v * 10 + (uint64_t)(args[i] - '0');
		i++;
	}
	if (i == 0) {
		*error_r = "Syntax: BDAT <size> [LAST]";
		return -1;
	}
	while (i < len && args[i] == ' ')
		i++;
	if (i < len) {
		if (!eq_ci(args + i, len - i, "LAST")) {
			*error_r = "Syntax: BDAT <size> [LAST]";
			return -1;
		}
		*last_r = true;
	}
	*size_r = v;
	return 0;
}

void
smtp_content_init(struct smtp_content *c)
{
	memset(c, 0, sizeof(*c));
}

void
smtp_content_feed(struct smtp_content *c, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = p[i];

		if (c->cr && ch != '\n')
			c->flags |= SMTP_CONTENT_BARE_CR;
		if (ch == '\n') {
			if (!c->cr)
				c->flags |= SMTP_CONTENT_BARE_LF;
			c->line_len = 0;
			c->cr = false;
			continue;
		}
		c->cr = ch == '\r';
		if (ch == '\0')
			c->flags |= SMTP_CONTENT_NUL;
		if (!c->cr && ++c->line_len > SMTP_TEXT_LINE_MAX)
			c->flags |= SMTP_CONTENT_LONG_LINE;
	}
}

void
smtp_content_finish(struct smtp_content *c)
{
	if (c->cr)
		c->flags |= SMTP_CONTENT_BARE_CR;
	c->cr = false;
}

/* States of the DATA reader. "Beginning of line" is only ever reached by
   CRLF, so a lone LF cannot start the terminating "." line. */
enum {
	DOT_BOL = 0,    /* after CRLF (or at the start) */
	DOT_DOT,        /* a "." at the beginning of a line, held back */
	DOT_DOT_CR,     /* ".\r" held back */
	DOT_TEXT,       /* inside a line */
	DOT_CR,         /* a CR was emitted, LF may follow */
};

void
smtp_dot_init(struct smtp_dot *d)
{
	d->state = DOT_BOL;
	smtp_content_init(&d->content);
}

int
smtp_dot_feed(struct smtp_dot *d, const char *in, size_t len, char *out,
    size_t *out_len_r, size_t *used_r)
{
	size_t o = 0, i;
	int done = 0;

	for (i = 0; i < len && !done; i++) {
		char c = in[i];

		switch (d->state) {
		case DOT_BOL:
			if (c == '.') {
				d->state = DOT_DOT;
				continue;
			}
			break;
		case DOT_DOT:
			/* The leading dot is dropped whatever follows
			   (RFC 5321 4.5.2), unless it is the end. */
			if (c == '\r') {
				d->state = DOT_DOT_CR;
				continue;
			}
			break;
		case DOT_DOT_CR:
			if (c == '\n') {
				done = 1;
				continue;
			}
			/* ".\r" then something else: the CR was content. */
			out[o++] = '\r';
			d->state = DOT_CR;
			break;
		default:
			break;
		}
		out[o++] = c;
		if (c == '\r')
			d->state = DOT_CR;
		else if (c == '\n')
			d->state = d->state == DOT_CR ? DOT_BOL : DOT_TEXT;
		else
			d->state = DOT_TEXT;
	}
	smtp_content_feed(&d->content, out, o);
	*out_len_r = o;
	*used_r = i;
	return done;
}
