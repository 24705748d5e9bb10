/* mime_section: reading the part table that mime_parse() serialized
   (layout in mime_private.h): record access with bounds checks, and the
   RFC 3501 6.4.5 section-number walk for BODY[section]. No allocation; a
   damaged table gives -1, never a read outside it. */
#include <string.h>

#include "mime_private.h"

static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

bool
mime_tab_rec(const unsigned char *tab, size_t len, uint32_t i,
    struct mime_rec *r)
{
	uint32_t n;
	const unsigned char *p;

	if (tab == NULL || len < MIME_TAB_HDR || memcmp(tab, MIME_TAB_MAGIC,
	    4) != 0)
		return false;
	n = get_u32(tab + 4);
	if (i >= n || (len - MIME_TAB_HDR) / MIME_REC_SIZE < n)
		return false;
	p = tab + MIME_TAB_HDR + (size_t)i * MIME_REC_SIZE;
	r->hdr_off = get_u32(p);
	r->hdr_len = get_u32(p + 4);
	r->body_off = get_u32(p + 8);
	r->body_len = get_u32(p + 12);
	r->skip = get_u32(p + 16);
	r->kind = p[20];
	r->cte = p[21];
	r->charset = p[22];
	r->flags = p[23];
	/* A subtree always holds its own node and ends within the table:
	   this is what keeps every walk over the table finite. */
	return r->skip > i && r->skip <= n;
}

/* ---- BODY[section] lookups ---------------------------------------------- */

static void
span_fill(const unsigned char *tab, size_t len, uint32_t i,
    const struct mime_rec *r, struct mime_span *s)
{
	struct mime_rec in;

	memset(s, 0, sizeof(*s));
	s->hdr_off = r->hdr_off;
	s->hdr_len = r->hdr_len;
	s->body_off = r->body_off;
	s->body_len = r->body_len;
	s->is_multipart = r->kind == MIME_KIND_MULTI;
	if (r->kind == MIME_KIND_MESSAGE && i + 1 < r->skip &&
	    mime_tab_rec(tab, len, i + 1, &in)) {
		s->is_message = true;
		s->msg_hdr_off = in.hdr_off;
		s->msg_hdr_len = in.hdr_len;
		s->msg_body_off = in.body_off;
		s->msg_body_len = in.body_len;
	}
}

/* The n-th (1-based) child of multipart node i, or false. */
static bool
nth_child(const unsigned char *tab, size_t len, uint32_t i,
    const struct mime_rec *r, uint32_t n, uint32_t *j_r, struct mime_rec *cr)
{
	uint32_t j = i + 1;

	for (;;) {
		if (j >= r->skip || !mime_tab_rec(tab, len, j, cr) ||
		    cr->skip > r->skip)
			return false;
		if (--n == 0)
			break;
		j = cr->skip;
	}
	*j_r = j;
	return true;
}

int
mime_section_find(const void *parts, size_t len, const uint32_t *path,
    size_t depth, struct mime_span *span_r)
{
	const unsigned char *tab = parts;
	struct mime_rec cur, part;
	uint32_t ci = 0, pi;

	if (!mime_tab_rec(tab, len, 0, &cur))
		return -1;
	if (depth == 0) {
		span_fill(tab, len, 0, &cur, span_r);
		return 0;
	}
	for (size_t k = 0;; k++) {
		/* cur (index ci) is a message: the root or an encapsulated one. */
		if (path[k] == 0)
			return -1;
		if (cur.kind == MIME_KIND_MULTI) {
			if (!nth_child(tab, len, ci, &cur, path[k], &pi, &part))
				return -1;
		} else if (path[k] == 1) {
			pi = ci;
			part = cur;
		} else {
			return -1;
		}
		if (k + 1 == depth) {
			span_fill(tab, len, pi, &part, span_r);
			return 0;
		}
		if (part.kind == MIME_KIND_MESSAGE) {
			if (pi + 1 >= part.skip ||
			    !mime_tab_rec(tab, len, pi + 1, &cur))
				return -1;
			ci = pi + 1;
		} else if (part.kind == MIME_KIND_MULTI && pi != ci) {
			ci = pi;
			cur = part;
		} else {
			return -1;
		}
	}
}
