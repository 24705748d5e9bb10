/* imap_seqset: parsing and membership of sequence sets (RFC 3501 §9
   sequence-set). The number of ranges is capped; membership is a binary
   search over sorted, merged ranges. Pure: no I/O. */
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include "imap_seqset.h"

static int
parse_num(const char *s, size_t len, size_t *i, uint32_t *v_r)
{
	uint64_t v = 0;
	size_t start = *i;

	if (*i < len && s[*i] == '*') {
		(*i)++;
		*v_r = IMAP_SEQ_STAR;
		return 0;
	}
	while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
		v = v * 10 + (uint64_t)(s[*i] - '0');
		if (v > UINT32_MAX)
			return -1;
		(*i)++;
	}
	if (*i == start || v == 0 || s[start] == '0')
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

int
imap_seqset_parse(const char *s, size_t len, size_t max_ranges,
    struct imap_seqset *set_r, const char **error_r)
{
	size_t i = 0, cap = 0;

	memset(set_r, 0, sizeof(*set_r));
	if (len == 0)
		goto bad;
	for (;;) {
		struct imap_range r;

		if (parse_num(s, len, &i, &r.lo) < 0)
			goto bad;
		r.hi = r.lo;
		if (i < len && s[i] == ':') {
			i++;
			if (parse_num(s, len, &i, &r.hi) < 0)
				goto bad;
		}
		if (r.lo == IMAP_SEQ_STAR || r.hi == IMAP_SEQ_STAR)
			set_r->has_star = true;
		if (set_r->n >= max_ranges) {
			*error_r = "Too many ranges in sequence set";
			imap_seqset_free(set_r);
			return -1;
		}
		if (set_r->n == cap) {
			cap = cap ? cap * 2 : 4;
			set_r->r = xrealloc(set_r->r, cap * sizeof(*set_r->r));
		}
		set_r->r[set_r->n++] = r;
		if (i == len)
			return 0;
		if (s[i] != ',')
			goto bad;
		i++;
	}
bad:
	*error_r = "Invalid sequence set";
	imap_seqset_free(set_r);
	return -1;
}

void
imap_seqset_free(struct imap_seqset *set)
{
	free(set->r);
	memset(set, 0, sizeof(*set));
}

static int
range_cmp(const void *a, const void *b)
{
	const struct imap_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void
imap_seqset_resolve(struct imap_seqset *set, uint32_t star)
{
	size_t i, k = 0;

	for (i = 0; i < set->n; i++) {
		struct imap_range *r = &set->r[i];

		if (r->lo == IMAP_SEQ_STAR)
			r->lo = star;
		if (r->hi == IMAP_SEQ_STAR)
			r->hi = star;
		if (r->lo > r->hi) {
			uint32_t t = r->lo;

			r->lo = r->hi;
			r->hi = t;
		}
		if (r->lo == 0) {   /* "*" of an empty mailbox: star is 0 */
			if (r->hi == 0)
				continue;
			r->lo = 1;
		}
		set->r[k++] = *r;
	}
	set->n = k;
	if (k == 0)
		return;
	qsort(set->r, set->n, sizeof(*set->r), range_cmp);
	k = 0;
	for (i = 1; i < set->n; i++) {
		if (set->r[i].lo <= set->r[k].hi ||
		    set->r[i].lo - 1 == set->r[k].hi) {
			if (set->r[i].hi > set->r[k].hi)
				set->r[k].hi = set->r[i].hi;
		} else {
			set->r[++k] = set->r[i];
		}
	}
	set->n = k + 1;
}

bool
imap_seqset_has(const struct imap_seqset *set, uint32_t x)
{
	size_t lo = 0, hi = set->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (x < set->r[mid].lo)
			hi = mid;
		else if (x > set->r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

uint32_t
imap_seqset_max(const struct imap_seqset *set)
{
	return set->n ? set->r[set->n - 1].hi : 0;
}

void
imap_seqset_format(const uint32_t *v, size_t n, struct buf *out)
{
	size_t i = 0;

	while (i < n) {
		size_t j = i;

		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (i > 0)
			buf_putc(out, ',');
		if (j > i)
			buf_printf(out, "%u:%u", v[i], v[j]);
		else
			buf_printf(out, "%u", v[i]);
		i = j + 1;
	}
}
