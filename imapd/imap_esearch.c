/* imap_esearch: RETURN option parsing and ESEARCH formatting (RFC 4731,
   RFC 5182, MODSEQ from RFC 7162 §3.1.5). Pure: no I/O, no session, no
   globals; the saved SEARCHRES result is kept by the caller
   (imap_features.c). */
#include <string.h>
#include <strings.h>

#include "imap_esearch.h"
#include "imap_seqset.h"

int
imap_esearch_parse_return(const struct imap_arg **ap,
    const struct imap_arg *end, unsigned *opts_r, const char **error_r)
{
	static const struct { const char *name; unsigned bit; } opts[] = {
		{ "MIN", IMAP_ESR_MIN }, { "MAX", IMAP_ESR_MAX },
		{ "ALL", IMAP_ESR_ALL }, { "COUNT", IMAP_ESR_COUNT },
		{ "SAVE", IMAP_ESR_SAVE },
	};
	const struct imap_arg *a = *ap, *l, *o;
	unsigned v = 0;
	size_t i;

	*opts_r = 0;
	if (a >= end || !imap_arg_is_atom(a, "RETURN"))
		return 0;
	l = imap_arg_next(a);
	if (l >= end || l->type != IMAP_ARG_LIST) {
		*error_r = "RETURN needs an option list";
		return -1;
	}
	for (o = l + 1; o < imap_arg_list_end(l); o = imap_arg_next(o)) {
		for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
			if (imap_arg_is_atom(o, opts[i].name))
				break;
		if (i == sizeof(opts) / sizeof(opts[0])) {
			*error_r = "Unknown SEARCH RETURN option";
			return -1;
		}
		v |= opts[i].bit;
	}
	if (v == 0)
		v = IMAP_ESR_ALL;   /* RETURN () means ALL (RFC 4731 §3.1) */
	*opts_r = v;
	*ap = imap_arg_next(l);
	return 1;
}

static void
put_tag(struct buf *out, const char *tag)
{
	buf_puts(out, "(TAG \"");
	for (; *tag; tag++) {
		if (*tag == '"' || *tag == '\\')
			buf_putc(out, '\\');
		buf_putc(out, *tag);
	}
	buf_puts(out, "\")");
}

void
imap_esearch_format(struct buf *out, const char *tag, bool uid,
    unsigned opts, const uint32_t *nums, size_t n, uint64_t modseq)
{
	if ((opts & ~IMAP_ESR_SAVE) == 0)
		return;
	buf_puts(out, "* ESEARCH ");
	put_tag(out, tag);
	if (uid)
		buf_puts(out, " UID");
	if (n > 0 && (opts & IMAP_ESR_MIN))
		buf_printf(out, " MIN %u", nums[0]);
	if (n > 0 && (opts & IMAP_ESR_MAX))
		buf_printf(out, " MAX %u", nums[n - 1]);
	if (n > 0 && (opts & IMAP_ESR_ALL)) {
		buf_puts(out, " ALL ");
		imap_seqset_format(nums, n, out);
	}
	if (opts & IMAP_ESR_COUNT)
		buf_printf(out, " COUNT %zu", n);
	if (modseq != 0 && n > 0)
		buf_printf(out, " MODSEQ %llu", (unsigned long long)modseq);
	buf_puts(out, "\r\n");
}

uint64_t
imap_esearch_modseq(unsigned opts, const uint64_t *modseqs, size_t n)
{
	uint64_t hi = 0;
	size_t i;

	if (n == 0)
		return 0;
	if (!(opts & (IMAP_ESR_ALL | IMAP_ESR_COUNT)) &&
	    (opts & (IMAP_ESR_MIN | IMAP_ESR_MAX))) {
		if (opts & IMAP_ESR_MIN)
			hi = modseqs[0];
		if ((opts & IMAP_ESR_MAX) && modseqs[n - 1] > hi)
			hi = modseqs[n - 1];
		return hi;
	}
	for (i = 0; i < n; i++)
		if (modseqs[i] > hi)
			hi = modseqs[i];
	return hi;
}

size_t
imap_esearch_save_part(unsigned opts, size_t n, size_t idx_r[2])
{
	size_t k = 0;

	if (!(opts & IMAP_ESR_SAVE) ||
	    (opts & (IMAP_ESR_ALL | IMAP_ESR_COUNT)) ||
	    !(opts & (IMAP_ESR_MIN | IMAP_ESR_MAX)))
		return SIZE_MAX;
	if (n == 0)
		return 0;
	if (opts & IMAP_ESR_MIN)
		idx_r[k++] = 0;
	if ((opts & IMAP_ESR_MAX) && !(k == 1 && n == 1))
		idx_r[k++] = n - 1;
	return k;
}
