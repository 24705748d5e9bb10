/* milter_header: the milters' header changes (add, insert at a position,
   change or delete the n-th field of a name) applied to a header block, in
   the order they came. Pure: no I/O, no protocol; the message keeps the
   result, and at the end of a message each milter reads the result of the
   milters before it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "milter.h"
#include "milter_codec.h"
#include "util.h"

struct field {
	size_t off, len;        /* in the old header, with its CRLF */
	char *text;             /* replaced or added text (owned), or NULL */
	bool deleted;
};

static bool
field_is(const char *h, const struct field *f, const char *name)
{
	size_t n = strlen(name);

	if (f->text != NULL)
		return strncasecmp(f->text, name, n) == 0 && f->text[n] == ':';
	return f->len > n && strncasecmp(h + f->off, name, n) == 0 &&
	    (h[f->off + n] == ':' || h[f->off + n] == ' ');
}

static char *
format_field(const char *name, const char *value)
{
	struct buf b;

	buf_init(&b);
	milter_header_format(&b, name, value);
	buf_putc(&b, '\0');
	return buf_steal(&b);
}

/* The fields of the header, folded lines kept with theirs. */
static struct field *
header_fields(const char *h, size_t hlen, size_t *nf_r)
{
	struct field *f = NULL;
	size_t nf = 0, i;

	for (i = 0; i < hlen;) {
		size_t end = i;
		do {
			const char *nl = memchr(h + end, '\n', hlen - end);
			end = nl != NULL ? (size_t)(nl - h) + 1 : hlen;
		} while (end < hlen && (h[end] == ' ' || h[end] == '\t'));
		f = xrealloc(f, (nf + 1) * sizeof(*f));
		f[nf++] = (struct field){ .off = i, .len = end - i };
		i = end;
	}
	*nf_r = nf;
	return f;
}

/* Where change mo goes: the field it replaces (*replace), or the position
   a new field takes; nf when it adds nothing. */
static size_t
mod_position(const char *h, const struct field *f, size_t nf,
    const struct milter_mod *mo, bool *replace)
{
	size_t at, seen = 0;

	*replace = false;
	if (mo->type == 'm') {
		for (at = 0; at < nf; at++)
			if (!f[at].deleted && field_is(h, &f[at], mo->name) &&
			    ++seen == (mo->index ? mo->index : 1)) {
				*replace = true;
				return at;
			}
		/* A change for a header the message lacks adds it (as
		   Postfix does); a delete of it is nothing. */
		return mo->value[0] == '\0' ? SIZE_MAX : nf;
	}
	if (mo->type != 'i')
		return nf;
	/* Position among the fields still there. */
	for (at = 0; at < nf && seen < mo->index; at++)
		if (!f[at].deleted)
			seen++;
	return at;
}

/* Applies the changes, inserts and additions to f. */
static struct field *
apply_mods(const char *h, struct field *f, size_t *nf_r,
    const struct milter_mod *mods, size_t nmods)
{
	size_t nf = *nf_r;

	for (size_t k = 0; k < nmods; k++) {
		const struct milter_mod *mo = &mods[k];
		bool replace;
		size_t at = mod_position(h, f, nf, mo, &replace);

		if (at == SIZE_MAX)
			continue;
		if (replace) {
			free(f[at].text);
			f[at].text = NULL;
			if (mo->value[0] == '\0')
				f[at].deleted = true;
			else
				f[at].text = format_field(mo->name, mo->value);
			continue;
		}
		f = xrealloc(f, (nf + 1) * sizeof(*f));
		memmove(&f[at + 1], &f[at], (nf - at) * sizeof(*f));
		f[at] = (struct field){ .text = format_field(mo->name,
		    mo->value) };
		nf++;
	}
	*nf_r = nf;
	return f;
}

void
milter_header_edit(const char *h, size_t hlen, const struct milter_mod *mods,
    size_t nmods, struct buf *out)
{
	size_t nf;
	struct field *f = apply_mods(h, header_fields(h, hlen, &nf), &nf,
	    mods, nmods);

	for (size_t i = 0; i < nf; i++) {
		if (f[i].deleted)
			;
		else if (f[i].text != NULL)
			buf_puts(out, f[i].text);
		else
			buf_append(out, h + f[i].off, f[i].len);
		free(f[i].text);
	}
	free(f);
}
