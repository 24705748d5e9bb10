/* mime_envelope: the IMAP ENVELOPE of a message header (RFC 3501 7.4.2),
   with RFC 5322 address lists (groups, routes, quoted and commented
   display names) parsed the way Dovecot 2.3 answers: encoded words are
   left as sent, repeated address fields are concatenated, a repeated
   string field is the last one, a missing local part or domain is
   MISSING_MAILBOX / MISSING_DOMAIN. Pure; writes only into the caller's
   buf. */
#include <string.h>

#include "mime_private.h"

struct aparse {
	const char *p, *end;
	struct buf phrase;      /* display name: words joined by a space */
	struct buf local;       /* the same words joined without spaces */
	struct buf domain, route, comment;
	struct buf *out;
	size_t count;
	size_t words;           /* words a_words read */
	bool bad;               /* an unterminated quoted string */
	bool flat;              /* out gets "name\0local@domain\0" each */
};

static bool
is_atext(unsigned char c)
{
	switch (c) {
	case '(': case ')': case '<': case '>': case '[': case ']': case ':':
	case ';': case '@': case '\\': case ',': case '.': case '"': case 0x7f:
		return false;
	default:
		return c > ' ';
	}
}
/* Skips whitespace and comments, keeping the last comment's text. */
static void
a_cfws(struct aparse *a)
{
	while (a->p < a->end) {
		char c = *a->p;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			a->p++;
		} else if (c == '(') {
			buf_reset(&a->comment);
			mime_skip_comment(&a->p, a->end, &a->comment);
		} else {
			break;
		}
	}
}

static bool
is_atext_dot(unsigned char c)
{
	return c == '.' || is_atext(c);
}

/* Reads words (dot-atoms and quoted strings) into phrase, joined by one
   space like Dovecot's obs-phrase ("John Q. Public"), and into local,
   joined without (the local part of an addr-spec); true if any. */
static bool
a_words(struct aparse *a)
{
	bool any = false;

	a->words = 0;
	for (;;) {
		a_cfws(a);
		if (a->p >= a->end)
			break;
		if (*a->p != '"' && !is_atext_dot((unsigned char)*a->p))
			break;
		if (a->phrase.len > 0)
			buf_putc(&a->phrase, ' ');
		if (*a->p == '"') {
			size_t s = a->local.len;

			if (!mime_read_quoted(&a->p, a->end, &a->local))
				a->bad = true;
			if (a->local.len > s)
				buf_append(&a->phrase, a->local.data + s,
				    a->local.len - s);
		} else {
			const char *s = a->p;

			while (a->p < a->end &&
			    is_atext_dot((unsigned char)*a->p))
				a->p++;
			buf_append(&a->phrase, s, (size_t)(a->p - s));
			buf_append(&a->local, s, (size_t)(a->p - s));
		}
		a->words++;
		any = true;
	}
	return any;
}

/* domain = dot-atom / domain-literal; words not joined by '.' are not
   part of it (what follows is junk to the list parser, as for Dovecot). */
static void
a_domain(struct aparse *a)
{
	bool want_atom = true;

	for (;;) {
		const char *save = a->p;

		a_cfws(a);
		if (a->p >= a->end) {
			if (!want_atom)
				a->p = save;    /* leave the comment to a_cfws */
			return;
		}
		if (want_atom && *a->p == '[') {
			const char *s = a->p;

			while (a->p < a->end && *a->p != ']')
				a->p++;
			if (a->p < a->end)
				a->p++;
			buf_append(&a->domain, s, (size_t)(a->p - s));
			want_atom = false;
		} else if (want_atom && is_atext((unsigned char)*a->p)) {
			const char *s = a->p;

			while (a->p < a->end && is_atext((unsigned char)*a->p))
				a->p++;
			buf_append(&a->domain, s, (size_t)(a->p - s));
			want_atom = false;
		} else if (*a->p == '.') {
			buf_putc(&a->domain, '.');
			a->p++;
			want_atom = true;
		} else {
			if (!want_atom)
				a->p = save;    /* leave the comment to a_cfws */
			return;
		}
	}
}

static void
put_name(struct buf *out, const struct buf *b)
{
	if (b != NULL && b->len > 0)
		mime_imap_human(out, b->data, b->len);
	else
		buf_puts(out, "NIL");
}

static void
put_nstr(struct buf *out, const struct buf *b, const char *dflt)
{
	if (b != NULL && b->len > 0)
		mime_imap_str(out, b->data, b->len);
	else if (dflt != NULL)
		mime_imap_str(out, dflt, strlen(dflt));
	else
		buf_puts(out, "NIL");
}

/* One address as SEARCH matches it: the display name with its encoded
   words decoded, then local@domain, each ending in a NUL. */
static void
a_emit_flat(struct aparse *a, const struct buf *name, const struct buf *mbox,
    const struct buf *host)
{
	if (name != NULL && name->len > 0)
		mime_decode_words(name->data, name->len, a->out);
	buf_putc(a->out, '\0');
	if (mbox != NULL && mbox->len > 0)
		buf_append(a->out, mbox->data, mbox->len);
	if (host != NULL && host->len > 0) {
		buf_putc(a->out, '@');
		buf_append(a->out, host->data, host->len);
	}
	buf_putc(a->out, '\0');
	a->count++;
}

static void
a_emit(struct aparse *a, const struct buf *name, const struct buf *adl,
    const struct buf *mbox, const struct buf *host, bool group)
{
	if (a->flat) {
		if (!group)
			a_emit_flat(a, name, mbox, host);
		return;
	}
	buf_putc(a->out, '(');
	put_name(a->out, name);
	buf_putc(a->out, ' ');
	put_nstr(a->out, adl, NULL);
	buf_putc(a->out, ' ');
	put_nstr(a->out, mbox, group ? NULL : "MISSING_MAILBOX");
	buf_putc(a->out, ' ');
	put_nstr(a->out, host, group ? NULL : "MISSING_DOMAIN");
	buf_putc(a->out, ')');
	a->count++;
}

/* "<" [route ":"] addr-spec ">" with a->p just past '<'. */
static void
a_angle(struct aparse *a, const struct buf *name)
{
	buf_reset(&a->local);
	buf_reset(&a->domain);
	buf_reset(&a->route);
	a_cfws(a);
	if (a->p < a->end && *a->p == '@') {
		/* obs-route: kept as written, minus whitespace */
		while (a->p < a->end && *a->p != ':' && *a->p != '>') {
			if (*a->p == '(')
				mime_skip_comment(&a->p, a->end, NULL);
			else if (*a->p == ' ' || *a->p == '\t' ||
			    *a->p == '\r' || *a->p == '\n')
				a->p++;
			else
				buf_putc(&a->route, *a->p++);
		}
		if (a->p < a->end && *a->p == ':')
			a->p++;
	}
	a_words(a);     /* a->phrase is scratch here: the name is apart */
	a_cfws(a);
	if (a->p < a->end && *a->p == '@') {
		a->p++;
		a_domain(a);
	}
	while (a->p < a->end && *a->p != '>' && *a->p != ',' && *a->p != ';')
		a->p++;
	if (a->p < a->end && *a->p == '>')
		a->p++;
	a_emit(a, name, &a->route, &a->local, &a->domain, false);
}

static bool a_list_items(struct aparse *a, bool in_group);

/* One mailbox or group. False on a syntax error, after which Dovecot
   ignores the rest of the field. */
static bool
a_element(struct aparse *a, bool in_group)
{
	buf_reset(&a->phrase);
	buf_reset(&a->local);
	buf_reset(&a->domain);
	buf_reset(&a->comment);
	a->bad = false;
	a_words(a);
	if (a->bad) {
		a_emit(a, NULL, NULL, NULL, NULL, false);
		return false;
	}
	if (a->p >= a->end || *a->p == ',' || *a->p == ';') {
		/* One word is a local part without domain ("alice"); more
		   are a display name without address. */
		if (a->words == 1)
			a_emit(a, NULL, NULL, &a->local, NULL, false);
		else
			a_emit(a, &a->phrase, NULL, NULL, NULL, false);
		return true;
	}
	switch (*a->p) {
	case '<': {
		struct buf name = a->phrase;

		a->p++;
		buf_init(&a->phrase);
		a_angle(a, &name);
		buf_free(&a->phrase);
		a->phrase = name;
		return !a->bad;
	}
	case ':': {
		bool ok;

		a->p++;
		if (in_group)
			return false;   /* no nested groups */
		a_emit(a, NULL, NULL, &a->phrase, NULL, true);
		ok = a_list_items(a, true);
		a_emit(a, NULL, NULL, NULL, NULL, true);
		return ok;
	}
	case '@':
		if (a->words == 0) {
			a_emit(a, NULL, NULL, NULL, NULL, false);
			return false;
		}
		a->p++;
		a_domain(a);
		/* the name is the last comment after the address */
		buf_reset(&a->comment);
		a_cfws(a);
		a_emit(a, &a->comment, NULL, &a->local, &a->domain, false);
		return true;
	default:
		return false;
	}
}

/* mailbox *("," mailbox), up to ';' in a group. An empty element gets
   an empty address (Dovecot's fill-missing), a trailing comma does not;
   junk after an address ends the field. */
static bool
a_list_items(struct aparse *a, bool in_group)
{
	for (;;) {
		a_cfws(a);
		if (a->p >= a->end)
			return true;
		if (in_group && *a->p == ';') {
			a->p++;
			return true;
		}
		if (*a->p == ',') {
			a_emit(a, NULL, NULL, NULL, NULL, false);
			a->p++;
			continue;
		}
		if (*a->p == ';')
			return false;
		if (!a_element(a, in_group))
			return false;
		a_cfws(a);
		if (a->p < a->end && *a->p == ',')
			a->p++;
		else if (a->p < a->end && !(in_group && *a->p == ';'))
			return false;
	}
}

/* Appends every address of value[0..n) to a->out. */
static void
a_list(struct aparse *a, const char *v, size_t n)
{
	a->p = v;
	a->end = v + n;
	(void)a_list_items(a, false);
}

/* Runs the address parser over every field called name; returns how
   many addresses it emitted. */
static size_t
a_fields(struct buf *out, bool flat, const char *hdr, size_t len,
    const char *name)
{
	struct mime_hdr_iter it;
	struct mime_field f;
	struct aparse a;

	memset(&a, 0, sizeof(a));
	buf_init(&a.phrase);
	buf_init(&a.local);
	buf_init(&a.domain);
	buf_init(&a.route);
	buf_init(&a.comment);
	a.out = out;
	a.flat = flat;
	mime_hdr_iter_init(&it, hdr, len);
	while (mime_hdr_next(&it, &f) == 1)
		if (mime_field_is(&f, name))
			a_list(&a, f.value, f.value_len);
	buf_free(&a.phrase);
	buf_free(&a.local);
	buf_free(&a.domain);
	buf_free(&a.route);
	buf_free(&a.comment);
	return a.count;
}

/* The address list of every field called name: "(...)" or NIL. */
static bool
addr_field(struct buf *out, const char *hdr, size_t len, const char *name)
{
	size_t start = out->len;

	buf_putc(out, '(');
	if (a_fields(out, false, hdr, len, name) > 0) {
		buf_putc(out, ')');
		return true;
	}
	out->len = start;
	buf_puts(out, "NIL");
	return false;
}

size_t
mime_addresses_text(const char *hdr, size_t len, const char *name,
    struct buf *out)
{
	return a_fields(out, true, hdr, len, name);
}

void
mime_envelope_write(struct buf *out, const char *hdr, size_t len)
{
	static const char *const strs[] = {
		"Date", "Subject", "In-Reply-To", "Message-ID"
	};
	struct mime_field last[4];
	struct mime_hdr_iter it;
	struct mime_field f;
	size_t from_off, from_len, i;

	memset(last, 0, sizeof(last));
	mime_hdr_iter_init(&it, hdr, len);
	while (mime_hdr_next(&it, &f) == 1)
		for (i = 0; i < 4; i++)
			if (mime_field_is(&f, strs[i]))
				last[i] = f;
	buf_putc(out, '(');
	mime_imap_unfolded(out, last[0].value, last[0].value_len);
	buf_putc(out, ' ');
	if (last[1].value != NULL)
		mime_imap_human(out, last[1].value, last[1].value_len);
	else
		buf_puts(out, "NIL");
	buf_putc(out, ' ');
	from_off = out->len;
	addr_field(out, hdr, len, "From");
	from_len = out->len - from_off;
	buf_putc(out, ' ');
	/* Sender and Reply-To default to From (RFC 3501 7.4.2). */
	if (!addr_field(out, hdr, len, "Sender")) {
		out->len -= 3;
		buf_reserve(out, from_len);     /* the source must not move */
		buf_append(out, out->data + from_off, from_len);
	}
	buf_putc(out, ' ');
	if (!addr_field(out, hdr, len, "Reply-To")) {
		out->len -= 3;
		buf_reserve(out, from_len);     /* the source must not move */
		buf_append(out, out->data + from_off, from_len);
	}
	buf_putc(out, ' ');
	addr_field(out, hdr, len, "To");
	buf_putc(out, ' ');
	addr_field(out, hdr, len, "Cc");
	buf_putc(out, ' ');
	addr_field(out, hdr, len, "Bcc");
	for (i = 2; i < 4; i++) {
		buf_putc(out, ' ');
		mime_imap_unfolded(out, last[i].value, last[i].value_len);
	}
	buf_putc(out, ')');
}
