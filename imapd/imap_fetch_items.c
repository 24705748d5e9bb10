/* imap_fetch_items: parsing of FETCH data items and the HEADER.FIELDS
   filter. Pure, so it is unit-tested and fuzzed alone; cmd_fetch.c does
   the I/O. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_fetch_items.h"

static void
item_free(struct imap_fetch_item *it)
{
	size_t i;

	for (i = 0; i < it->nfields; i++)
		free(it->fields[i]);
	free(it->fields);
	free(it->label);
}


static int
parse_u64(const char **p, uint64_t *v_r)
{
	uint64_t v = 0;
	const char *s = *p;

	if (*s < '0' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s++ - '0');
	}
	*p = s;
	*v_r = v;
	return 0;
}

/* "(FROM \"TO\" X-Y)" -> fields. */
static int
parse_fields(struct imap_fetch_item *it, const char **pp)
{
	const char *p = *pp;

	if (*p != ' ')
		return -1;
	p++;
	if (*p++ != '(')
		return -1;
	while (*p != ')') {
		const char *st;
		size_t len;

		if (*p == ' ' && it->nfields > 0)
			p++;
		if (*p == '"') {
			st = ++p;
			while (*p && *p != '"')
				p++;
			if (*p != '"')
				return -1;
			len = (size_t)(p - st);
			p++;
		} else {
			st = p;
			while ((unsigned char)*p > 0x20 && *p < 0x7f && *p != ')' &&
			    *p != '(' && *p != ':' && *p != '"')
				p++;
			len = (size_t)(p - st);
		}
		if (len == 0 || it->nfields >= IMAP_FETCH_FIELDS_MAX)
			return -1;
		it->fields = xrealloc(it->fields,
		    (it->nfields + 1) * sizeof(*it->fields));
		it->fields[it->nfields++] = xstrndup(st, len);
		if (*p != ' ' && *p != ')')
			return -1;
	}
	if (it->nfields == 0)
		return -1;
	*pp = p + 1;
	return 0;
}

/* Parses "[section]<partial>" starting at p ('['). */
static int
parse_section(struct imap_fetch_item *it, const char *p, struct buf *label)
{
	size_t i;

	p++;
	while (*p >= '1' && *p <= '9') {
		uint64_t v;

		if (parse_u64(&p, &v) < 0 || v > UINT32_MAX ||
		    it->depth >= IMAP_FETCH_SECTION_DEPTH)
			return -1;
		it->path[it->depth++] = (uint32_t)v;
		if (*p != '.')
			break;
		p++;
	}
	if (*p == ']') {
		if (it->depth > 0 && p[-1] == '.')
			return -1;
		it->kind = IMAP_SEC_ALL;
	} else if (strncasecmp(p, "HEADER.FIELDS.NOT", 17) == 0) {
		it->kind = IMAP_SEC_FIELDS_NOT;
		p += 17;
		if (parse_fields(it, &p) < 0)
			return -1;
	} else if (strncasecmp(p, "HEADER.FIELDS", 13) == 0) {
		it->kind = IMAP_SEC_FIELDS;
		p += 13;
		if (parse_fields(it, &p) < 0)
			return -1;
	} else if (strncasecmp(p, "HEADER", 6) == 0) {
		it->kind = IMAP_SEC_HEADER;
		p += 6;
	} else if (strncasecmp(p, "TEXT", 4) == 0) {
		it->kind = IMAP_SEC_TEXT;
		p += 4;
	} else if (strncasecmp(p, "MIME", 4) == 0 && it->depth > 0) {
		it->kind = IMAP_SEC_MIME;
		p += 4;
	} else {
		return -1;
	}
	if (*p != ']')
		return -1;
	/* The label: part numbers and the section keyword, as sent. */
	buf_puts(label, "BODY[");
	for (i = 0; i < it->depth; i++)
		buf_printf(label, i ? ".%u" : "%u", it->path[i]);
	if (it->depth > 0 && it->kind != IMAP_SEC_ALL)
		buf_putc(label, '.');
	{
		static const char *const kw[] = { "", "HEADER",
			"HEADER.FIELDS", "HEADER.FIELDS.NOT", "MIME", "TEXT" };

		buf_puts(label, kw[it->kind]);
		if (it->nfields > 0) {
			buf_puts(label, " (");
			for (i = 0; i < it->nfields; i++)
				buf_printf(label, i ? " %s" : "%s", it->fields[i]);
			buf_putc(label, ')');
		}
	}
	buf_putc(label, ']');
	p++;
	if (*p == '<') {
		p++;
		if (parse_u64(&p, &it->start) < 0 || *p++ != '.' ||
		    parse_u64(&p, &it->count) < 0 || it->count == 0 ||
		    *p++ != '>')
			return -1;
		it->partial = true;
		buf_printf(label, "<%llu>", (unsigned long long)it->start);
	}
	return *p == '\0' ? 0 : -1;
}

static int
parse_item(struct imap_fetch_items *f, const struct imap_arg *a)
{
	struct imap_fetch_item it;
	struct buf label;
	const char *w = a->str;

	if (a->type != IMAP_ARG_ATOM)
		return -1;
	memset(&it, 0, sizeof(it));
	buf_init(&label);
	if (strcasecmp(w, "UID") == 0) {
		it.type = IMAP_FI_UID;
	} else if (strcasecmp(w, "FLAGS") == 0) {
		it.type = IMAP_FI_FLAGS;
	} else if (strcasecmp(w, "MODSEQ") == 0) {
		it.type = IMAP_FI_MODSEQ;
	} else if (strcasecmp(w, "INTERNALDATE") == 0) {
		it.type = IMAP_FI_INTERNALDATE;
	} else if (strcasecmp(w, "RFC822.SIZE") == 0) {
		it.type = IMAP_FI_SIZE;
	} else if (strcasecmp(w, "ENVELOPE") == 0) {
		it.type = IMAP_FI_ENVELOPE;
		f->need_cache = true;
	} else if (strcasecmp(w, "BODYSTRUCTURE") == 0) {
		it.type = IMAP_FI_BODYSTRUCTURE;
		f->need_cache = true;
	} else if (strcasecmp(w, "BODY") == 0) {
		it.type = IMAP_FI_BODY;
		f->need_cache = true;
	} else if (strcasecmp(w, "RFC822") == 0) {
		it.type = IMAP_FI_SECTION;
		buf_puts(&label, "RFC822");
	} else if (strcasecmp(w, "RFC822.HEADER") == 0) {
		it.type = IMAP_FI_SECTION;
		it.peek = true;
		it.kind = IMAP_SEC_HEADER;
		buf_puts(&label, "RFC822.HEADER");
	} else if (strcasecmp(w, "RFC822.TEXT") == 0) {
		it.type = IMAP_FI_SECTION;
		it.kind = IMAP_SEC_TEXT;
		buf_puts(&label, "RFC822.TEXT");
	} else if (strncasecmp(w, "BODY[", 5) == 0 ||
	    strncasecmp(w, "BODY.PEEK[", 10) == 0) {
		it.type = IMAP_FI_SECTION;
		it.peek = w[4] == '.';
		if (parse_section(&it, w + (it.peek ? 9 : 4), &label) < 0) {
			item_free(&it);
			buf_free(&label);
			return -1;
		}
	} else {
		return -1;
	}
	if (it.type == IMAP_FI_SECTION) {
		f->need_fd = true;
		/* the top-level header is found by reading the file; only
		   nested parts need the cached part table */
		if (it.depth > 0)
			f->need_cache = true;
		it.label = buf_steal(&label);
	}
	buf_free(&label);
	f->v = xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
	f->v[f->n++] = it;
	return 0;
}

static int
add_macro(struct imap_fetch_items *f, const char *w)
{
	static const char *const all[] = { "FLAGS", "INTERNALDATE",
		"RFC822.SIZE", "ENVELOPE", "BODY" };
	size_t n, i;

	if (strcasecmp(w, "ALL") == 0)
		n = 4;
	else if (strcasecmp(w, "FAST") == 0)
		n = 3;
	else if (strcasecmp(w, "FULL") == 0)
		n = 5;
	else
		return 1;
	for (i = 0; i < n; i++) {
		struct imap_arg a = { .type = IMAP_ARG_ATOM, .str = all[i],
			.len = strlen(all[i]) };

		parse_item(f, &a);
	}
	return 0;
}

int
imap_fetch_items_parse(const struct imap_arg *items,
    struct imap_fetch_items *f)
{
	size_t i;

	memset(f, 0, sizeof(*f));
	if (items->type == IMAP_ARG_LIST) {
		const struct imap_arg *a;

		if (items->span == 0)
			goto bad;
		for (a = items + 1; a < imap_arg_list_end(items);
		    a = imap_arg_next(a))
			if (f->n >= IMAP_FETCH_ITEMS_MAX || parse_item(f, a) < 0)
				goto bad;
	} else if (items->type != IMAP_ARG_ATOM ||
	    (add_macro(f, items->str) != 0 && parse_item(f, items) < 0)) {
		goto bad;
	}
	for (i = 0; i < f->n; i++) {
		const struct imap_fetch_item *it = &f->v[i];

		if (it->type != IMAP_FI_SECTION)
			continue;
		if (!it->peek)
			f->set_seen = true;
		if (it->kind != IMAP_SEC_HEADER && it->kind != IMAP_SEC_FIELDS &&
		    it->kind != IMAP_SEC_FIELDS_NOT)
			f->prefetch_body = true;
	}
	return 0;
bad:
	imap_fetch_items_free(f);
	return -1;
}

void
imap_fetch_items_free(struct imap_fetch_items *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		item_free(&f->v[i]);
	free(f->v);
	memset(f, 0, sizeof(*f));
}

static bool
field_listed(const struct imap_fetch_item *it, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < it->nfields; i++)
		if (strlen(it->fields[i]) == len &&
		    strncasecmp(it->fields[i], name, len) == 0)
			return true;
	return false;
}

/* Keeps the header fields of hdr[0..len) that the item asks for, and the
   blank line that ends a header. */
void
imap_fetch_filter_header(const struct imap_fetch_item *it, const char *hdr, size_t len,
    struct buf *out)
{
	size_t i = 0;
	bool keep = false;

	while (i < len) {
		const char *line = hdr + i, *nl = memchr(line, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - line) + 1 : len - i;

		if (ll <= 2 && (line[0] == '\r' || line[0] == '\n'))
			break;  /* the blank line */
		if (line[0] != ' ' && line[0] != '\t') {
			const char *colon = memchr(line, ':', ll);
			size_t nlen = colon ? (size_t)(colon - line) : 0;

			while (nlen > 0 && (line[nlen - 1] == ' ' ||
			    line[nlen - 1] == '\t'))
				nlen--;
			keep = colon != NULL && (field_listed(it, line, nlen) ==
			    (it->kind == IMAP_SEC_FIELDS));
		}
		if (keep)
			buf_append(out, line, ll);
		i += ll;
	}
	buf_puts(out, "\r\n");
}
