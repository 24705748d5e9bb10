/* mime: the MIME structure of a whole message in memory, computed once at
   delivery. Pass 1 walks the message once, line by line, against a stack of
   active boundaries (Dovecot's rule: longest prefix match wins, so a part
   ends at any ancestor's boundary) and records each entity's byte ranges.
   Pass 2 writes BODYSTRUCTURE/BODY from those records, and the records are
   serialized into the part table read by mime_section_find(). Never fails,
   never reads past len; nesting and part counts are capped. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mime_private.h"

#define MAX_PARAMS 32

enum {
	NODE_TEXT = 0x01,       /* a text/ leaf (MIME_REC_TEXT) */
	NODE_DIGEST = 0x02,     /* default type is message/rfc822 */
	NODE_OPAQUE = 0x04,     /* too deep / too many parts: text/plain */
	NODE_SYNTH = 0x08,      /* the empty part of a boundary-less multipart */
	NODE_MSG = 0x10,        /* a message's own header (root, rfc822) */
};

struct mnode {
	size_t hdr_off, hdr_len, body_off, body_len;
	size_t floor;           /* the body cannot end before this */
	uint32_t skip;
	uint8_t kind, cte, charset, flags;
};

struct bnd {
	size_t off, len;        /* in ctx->bbuf; off NO_BOUNDARY: none */
};
#define NO_BOUNDARY SIZE_MAX

struct mctx {
	const char *msg;
	size_t len;
	struct mnode *nodes;
	size_t n, cap;
	struct bnd stack[MIME_MAX_DEPTH + 2];
	size_t nstack;
	struct buf bbuf;        /* boundary strings of the stack */
	struct buf sc;          /* scratch for parsed parameters */
};

/* A parsed Content-Type / Content-Disposition; strings live in a scratch
   buf, as offsets so that the buf may grow. */
struct mparam {
	size_t name_off, name_len, val_off, val_len;
};
struct mctype {
	bool valid;
	size_t type_off, type_len, sub_off, sub_len;
	size_t np;
	struct mparam p[MAX_PARAMS];
};

/* The Content-* fields of one entity (value NULL when absent). */
struct part_hdr {
	struct mime_field ctype, cte, id, desc, md5, disp, lang, loc;
	bool mime_version;
};

/* ---- Content-Type parsing ---------------------------------------------- */

static bool
is_tspecial(unsigned char c)
{
	/* a switch, not strchr: this runs for every byte of every
	   Content-* value */
	switch (c) {
	case '(': case ')': case '<': case '>': case '@': case ',': case ';':
	case ':': case '\\': case '"': case '/': case '[': case ']': case '?':
	case '=': case 0x7f:
		return true;
	default:
		return c <= ' ';
	}
}

static size_t
read_token(const char **pp, const char *end, struct buf *sc)
{
	const char *p = *pp, *s = p;

	while (p < end && !is_tspecial((unsigned char)*p))
		p++;
	buf_append(sc, s, (size_t)(p - s));
	*pp = p;
	return (size_t)(p - s);
}

static const char *
sc_str(const struct buf *sc, size_t off)
{
	return sc->data != NULL ? sc->data + off : "";
}

static bool
sc_eq(const struct buf *sc, size_t off, size_t len, const char *s)
{
	size_t n = strlen(s);

	return len == n && strncasecmp(sc_str(sc, off), s, n) == 0;
}

/* RFC 2231 parameters, merged the way Dovecot 2.3 does. A name with a
   '*' is "key*", "key*N" or "key*N*" ('*' at the end: extended). Those go
   after the plain parameters, sorted by key (case-insensitively) and N;
   a key whose pieces are numbered 0, 1, 2... becomes one parameter, named
   "key*" if any piece is extended, with the values concatenated as sent
   (unextended pieces with '%' escaped then, and "''" put first if the first one
   is not extended); with a number missing, every piece stays apart as
   "key*N" / "key*N*". */
struct p2231 {
	struct mparam m;
	size_t key_len;
	unsigned idx;
	bool ext;
};

/* *last_idx: the number of the previous piece in this header. Dovecot
   gives a bare "key*" that number (a quirk we copy so that the answers
   match), so "key*" is piece 0 only when no numbered piece came first. */
static bool
split_2231(const struct buf *sc, const struct mparam *m, struct p2231 *r,
    unsigned *last_idx)
{
	const char *n = sc_str(sc, m->name_off);
	const char *star = memchr(n, '*', m->name_len);
	size_t i;

	if (star == NULL)
		return false;
	r->m = *m;
	r->key_len = (size_t)(star - n);
	r->idx = 0;
	r->ext = true;
	i = r->key_len + 1;
	if (i == m->name_len) {
		r->idx = *last_idx;     /* "key*" */
		return true;
	}
	for (; i < m->name_len && n[i] >= '0' && n[i] <= '9'; i++)
		r->idx = r->idx < 100000 ? r->idx * 10 + (unsigned)(n[i] - '0') :
		    r->idx;
	*last_idx = r->idx;     /* even when the name turns out invalid */
	r->ext = i < m->name_len && n[i] == '*';
	if (r->ext)
		i++;
	return i == m->name_len;
}

static int
cmp_2231(const struct buf *sc, const struct p2231 *a, const struct p2231 *b)
{
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	/* case-sensitive, as Dovecot sorts ("Name" before "name"), while
	   the grouping below ignores case */
	int c = memcmp(sc_str(sc, a->m.name_off), sc_str(sc, b->m.name_off), n);

	if (c != 0)
		return c;
	if (a->key_len != b->key_len)
		return a->key_len < b->key_len ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx ? 1 : 0;
}

/* Appends sc[off..off+len) to sc itself: reserve first, so that the
   source does not move under buf_append. */
static void
sc_dup(struct buf *sc, size_t off, size_t len)
{
	buf_reserve(sc, len);
	buf_append(sc, sc_str(sc, off), len);
}

static void
sc_escape_2231(struct buf *sc, size_t off, size_t len)
{
	buf_reserve(sc, 3 * len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)sc->data[off + i];

		/* Dovecot escapes only '%' */
		if (c == '%')
			buf_puts(sc, "%25");
		else
			buf_putc(sc, (char)c);
	}
}

static void
params_join_2231(struct buf *sc, struct mctype *ct)
{
	struct p2231 q[MAX_PARAMS], t;
	size_t nq = 0, np = 0, i, j, k;
	unsigned last_idx = 0;

	for (i = 0; i < ct->np; i++) {
		if (split_2231(sc, &ct->p[i], &q[nq], &last_idx))
			nq++;
		else
			ct->p[np++] = ct->p[i];
	}
	for (i = 1; i < nq; i++) {      /* insertion sort: nq is small */
		t = q[i];
		for (j = i; j > 0 && cmp_2231(sc, &q[j - 1], &t) > 0; j--)
			q[j] = q[j - 1];
		q[j] = t;
	}
	for (i = 0; i < nq; i = j) {
		bool ok = true, any_ext = false;
		struct mparam out;

		for (j = i; j < nq && q[j].key_len == q[i].key_len &&
		    strncasecmp(sc_str(sc, q[j].m.name_off),
		    sc_str(sc, q[i].m.name_off), q[i].key_len) == 0; j++) {
			ok = ok && q[j].idx == j - i;
			any_ext = any_ext || q[j].ext;
		}
		if (!ok) {
			for (k = i; k < j; k++) {
				out = q[k].m;
				out.name_off = sc->len;
				sc_dup(sc, q[k].m.name_off, q[k].key_len);
				buf_printf(sc, q[k].ext ? "*%u*" : "*%u",
				    q[k].idx);
				out.name_len = sc->len - out.name_off;
				ct->p[np++] = out;
			}
			continue;
		}
		out.name_off = sc->len;
		sc_dup(sc, q[i].m.name_off, q[i].key_len);
		if (any_ext)
			buf_putc(sc, '*');
		out.name_len = sc->len - out.name_off;
		out.val_off = sc->len;
		if (any_ext && !q[i].ext)
			buf_puts(sc, "''");
		for (k = i; k < j; k++) {
			if (any_ext && !q[k].ext)
				sc_escape_2231(sc, q[k].m.val_off,
				    q[k].m.val_len);
			else
				sc_dup(sc, q[k].m.val_off, q[k].m.val_len);
		}
		out.val_len = sc->len - out.val_off;
		ct->p[np++] = out;
	}
	ct->np = np;
}

/* Skips to the next ';' outside quotes and comments (junk after a value,
   which Dovecot skips too). */
static void
skip_to_semicolon(const char **pp, const char *end)
{
	const char *p = *pp;

	while (p < end && *p != ';') {
		if (*p == '"') {
			struct buf junk;

			buf_init(&junk);
			mime_read_quoted(&p, end, &junk);
			buf_free(&junk);
		} else if (*p == '(') {
			mime_skip_comment(&p, end, NULL);
		} else {
			p++;
		}
	}
	*pp = p;
}

/* Content-Type (is_ctype) or Content-Disposition, as Dovecot 2.3 reads
   them: a present header is always used ("" "" when it is broken, "foo"
   "" without a slash, no parameters after a broken type), parameters are
   read up to the first one without '='. */
static void
parse_ctype(const char *v, size_t n, bool is_ctype, struct buf *sc,
    struct mctype *ct)
{
	const char *p, *end;

	memset(ct, 0, sizeof(*ct));
	if (v == NULL)
		return;
	p = v;
	end = v + n;
	ct->valid = true;
	mime_skip_cfws(&p, end);
	ct->type_off = sc->len;
	ct->type_len = read_token(&p, end, sc);
	ct->sub_off = sc->len;
	if (is_ctype) {
		if (ct->type_len == 0)
			return;
		mime_skip_cfws(&p, end);
		if (p >= end)
			return;         /* "text": kept, subtype "" */
		if (*p != '/') {
			ct->type_len = 0;       /* "text; x=y": broken */
			return;
		}
		p++;
		mime_skip_cfws(&p, end);
		ct->sub_off = sc->len;
		ct->sub_len = read_token(&p, end, sc);
		mime_skip_cfws(&p, end);
		if (ct->sub_len == 0 || (p < end && *p != ';')) {
			ct->type_len = ct->sub_len = 0;
			return;
		}
	}
	while (ct->np < MAX_PARAMS) {
		struct mparam *m = &ct->p[ct->np];

		skip_to_semicolon(&p, end);
		if (p >= end)
			break;
		p++;
		mime_skip_cfws(&p, end);
		m->name_off = sc->len;
		m->name_len = read_token(&p, end, sc);
		if (m->name_len == 0)
			break;
		mime_skip_cfws(&p, end);
		if (p >= end || *p != '=')
			break;
		p++;
		mime_skip_cfws(&p, end);
		m->val_off = sc->len;
		if (p < end && *p == '"')
			mime_read_quoted(&p, end, sc);
		else
			read_token(&p, end, sc);
		m->val_len = sc->len - m->val_off;
		ct->np++;
	}
	params_join_2231(sc, ct);
}

static const struct mparam *
ctype_param(const struct buf *sc, const struct mctype *ct, const char *name)
{
	for (size_t i = 0; i < ct->np; i++)
		if (sc_eq(sc, ct->p[i].name_off, ct->p[i].name_len, name))
			return &ct->p[i];
	return NULL;
}

static void
part_hdr_read(const char *h, size_t n, struct part_hdr *ph)
{
	struct mime_hdr_iter it;
	struct mime_field f;
	static const struct {
		const char *name;
		size_t off;
	} map[] = {
		{ "Content-Type", offsetof(struct part_hdr, ctype) },
		{ "Content-Transfer-Encoding", offsetof(struct part_hdr, cte) },
		{ "Content-ID", offsetof(struct part_hdr, id) },
		{ "Content-Description", offsetof(struct part_hdr, desc) },
		{ "Content-MD5", offsetof(struct part_hdr, md5) },
		{ "Content-Disposition", offsetof(struct part_hdr, disp) },
		{ "Content-Language", offsetof(struct part_hdr, lang) },
		{ "Content-Location", offsetof(struct part_hdr, loc) },
	};

	memset(ph, 0, sizeof(*ph));
	mime_hdr_iter_init(&it, h, n);
	while (mime_hdr_next(&it, &f) == 1) {
		if (mime_field_is(&f, "MIME-Version"))
			ph->mime_version = true;
		if (f.name_len < 8 || strncasecmp(f.name, "Content-", 8) != 0)
			continue;
		for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
			struct mime_field *dst =
			    (struct mime_field *)((char *)ph + map[i].off);

			if (dst->value == NULL && mime_field_is(&f, map[i].name)) {
				*dst = f;
				break;
			}
		}
	}
}

size_t
mime_part_charset(const char *h, size_t n, char *name, size_t size)
{
	struct part_hdr ph;
	struct mctype ct;
	const struct mparam *m;
	struct buf sc;
	size_t len = 0;

	part_hdr_read(h, n, &ph);
	if (ph.ctype.value == NULL)
		return 0;
	buf_init(&sc);
	parse_ctype(ph.ctype.value, ph.ctype.value_len, true, &sc, &ct);
	if (ct.valid && (m = ctype_param(&sc, &ct, "charset")) != NULL &&
	    m->val_len < size) {
		memcpy(name, sc_str(&sc, m->val_off), m->val_len);
		name[m->val_len] = '\0';
		len = m->val_len;
	}
	buf_free(&sc);
	return len;
}

/* A message's header is MIME only with MIME-Version or Content-Type;
   otherwise Dovecot ignores its other Content-* fields, and so do we. A
   part of a multipart is always MIME. */
static void
part_hdr_load(const char *msg, const struct mnode *nd, struct part_hdr *ph)
{
	part_hdr_read(msg + nd->hdr_off, nd->hdr_len, ph);
	if ((nd->flags & NODE_MSG) && !ph->mime_version &&
	    ph->ctype.value == NULL)
		memset(ph, 0, sizeof(*ph));
}

/* The first token of Content-Transfer-Encoding, or NULL/0. */
static const char *
cte_token(const struct mime_field *f, size_t *len_r)
{
	const char *p = f->value, *end, *s;

	*len_r = 0;
	if (p == NULL)
		return NULL;
	end = p + f->value_len;
	mime_skip_cfws(&p, end);
	s = p;
	while (p < end && !is_tspecial((unsigned char)*p))
		p++;
	*len_r = (size_t)(p - s);
	return *len_r > 0 ? s : NULL;
}

/* ---- pass 1: structure --------------------------------------------------- */

/* The stack entry whose boundary is the longest prefix of the line after
   "--" (innermost on ties), or -1. */
static int
boundary_match(const struct mctx *c, const char *line, size_t n)
{
	int best = -1;

	if (n < 2 || line[0] != '-' || line[1] != '-')
		return -1;
	line += 2;
	n -= 2;
	for (size_t i = c->nstack; i-- > 0;) {
		const struct bnd *b = &c->stack[i];

		if (b->len <= n && (b->len == 0 || memcmp(c->bbuf.data +
		    b->off, line, b->len) == 0) && (best < 0 ||
		    b->len > c->stack[best].len))
			best = (int)i;
	}
	return best;
}

static size_t
next_line(const struct mctx *c, size_t pos)
{
	const char *e = memchr(c->msg + pos, '\n', c->len - pos);

	return e != NULL ? (size_t)(e - c->msg) + 1 : c->len;
}

/* From the line start pos, the start of the first line that is a boundary
   of the stack (*m_r its index), or len (*m_r = -1). */
static size_t
scan_to_boundary(const struct mctx *c, size_t pos, int *m_r)
{
	while (pos < c->len) {
		size_t nl = next_line(c, pos);

		if (c->nstack > 0 && c->msg[pos] == '-') {
			int m = boundary_match(c, c->msg + pos, nl - pos);

			if (m >= 0) {
				*m_r = m;
				return pos;
			}
		}
		pos = nl;
	}
	*m_r = -1;
	return c->len;
}

/* The header of an entity starting at pos ends after its blank line, at
   a boundary line, or at the end. Returns the body offset. A blank line
   right before a boundary line is the delimiter's own line break (RFC
   2046 5.1.1: the CRLF before "--boundary" belongs to the boundary), so
   such a header has no blank line and ends before it: [n.MIME] must be
   bytes of the part, never the delimiter's (Dovecot serves the same). */
static size_t
scan_header(const struct mctx *c, size_t pos)
{
	while (pos < c->len) {
		size_t nl = next_line(c, pos);
		const char *l = c->msg + pos;
		size_t n = nl - pos;

		if ((n == 1 && l[0] == '\n') || (n == 2 && l[0] == '\r' &&
		    l[1] == '\n')) {
			if (c->nstack > 0 && nl < c->len && c->msg[nl] == '-' &&
			    boundary_match(c, c->msg + nl,
			    next_line(c, nl) - nl) >= 0)
				return pos;
			return nl;
		}
		if (c->nstack > 0 && l[0] == '-' && boundary_match(c, l, n) >= 0)
			return pos;
		pos = nl;
	}
	return c->len;
}

/* The CR?LF before a boundary line belongs to the boundary. */
static size_t
body_end(const struct mctx *c, size_t start, size_t b)
{
	if (b > start && c->msg[b - 1] == '\n')
		b--;
	if (b > start && c->msg[b - 1] == '\r')
		b--;
	return b;
}

static size_t
node_new(struct mctx *c)
{
	if (c->n == c->cap) {
		c->cap = c->cap == 0 ? 8 : c->cap * 2;
		c->nodes = xrealloc(c->nodes, c->cap * sizeof(*c->nodes));
	}
	memset(&c->nodes[c->n], 0, sizeof(c->nodes[0]));
	return c->n++;
}

/* Fills kind, text info and (for a multipart) the boundary into bbuf at
   *b_r (len 0: none) from the entity's header. */
static void
classify(struct mctx *c, struct mnode *nd, struct bnd *b_r, bool *digest_r)
{
	struct part_hdr ph;
	struct mctype ct;
	const char *tok;
	size_t tl;

	b_r->off = NO_BOUNDARY;
	b_r->len = 0;
	*digest_r = false;
	part_hdr_load(c->msg, nd, &ph);
	buf_reset(&c->sc);
	parse_ctype(ph.ctype.value, ph.ctype.value_len, true, &c->sc, &ct);
	tok = cte_token(&ph.cte, &tl);
	if (tok != NULL && tl == 16 && strncasecmp(tok, "quoted-printable",
	    16) == 0)
		nd->cte = MIME_CTE_QP;
	else if (tok != NULL && tl == 6 && strncasecmp(tok, "base64", 6) == 0)
		nd->cte = MIME_CTE_BASE64;
	if (!ct.valid) {
		if (nd->flags & NODE_DIGEST)
			nd->kind = MIME_KIND_MESSAGE;
		else
			nd->flags |= NODE_TEXT;
		nd->charset = MIME_CS_ASCII;
		return;
	}
	if (sc_eq(&c->sc, ct.type_off, ct.type_len, "multipart")) {
		const struct mparam *m = ctype_param(&c->sc, &ct, "boundary");

		nd->kind = MIME_KIND_MULTI;
		*digest_r = sc_eq(&c->sc, ct.sub_off, ct.sub_len, "digest");
		if (m != NULL) {
			b_r->off = c->bbuf.len;
			b_r->len = m->val_len;
			buf_append(&c->bbuf, sc_str(&c->sc, m->val_off),
			    m->val_len);
		}
	} else if (sc_eq(&c->sc, ct.type_off, ct.type_len, "message") &&
	    sc_eq(&c->sc, ct.sub_off, ct.sub_len, "rfc822")) {
		nd->kind = MIME_KIND_MESSAGE;
	} else if (sc_eq(&c->sc, ct.type_off, ct.type_len, "text")) {
		const struct mparam *m = ctype_param(&c->sc, &ct, "charset");

		nd->flags |= NODE_TEXT;
		nd->charset = m != NULL ? mime_charset_id(sc_str(&c->sc,
		    m->val_off), m->val_len) : MIME_CS_ASCII;
	}
}

static size_t parse_entity(struct mctx *c, size_t pos, int depth,
    uint8_t flags, int *m_r);

/* Parses the parts of multipart node self. *floor_r: where its body may
   end at the earliest, i.e. after the close delimiter line or the last
   part's own floor (a line break they consumed is not the next
   boundary's). */
static size_t
parse_multipart(struct mctx *c, size_t self, struct bnd b, bool digest,
    int depth, int *m_r, size_t *floor_r)
{
	size_t pos = c->nodes[self].body_off, own = c->nstack, nchild = 0;
	size_t last = 0;
	int m;

	*floor_r = pos;

	if (b.off == NO_BOUNDARY) {
		pos = scan_to_boundary(c, pos, &m);
		goto out;
	}
	c->stack[c->nstack++] = b;
	pos = scan_to_boundary(c, pos, &m);
	while (m == (int)own) {
		size_t nl = next_line(c, pos);
		const char *after = c->msg + pos + 2 + b.len;

		if ((size_t)(after - c->msg) + 2 <= c->len && after[0] == '-' &&
		    after[1] == '-') {
			/* The close delimiter: the rest is epilogue. */
			c->nstack = own;
			*floor_r = nl;
			pos = scan_to_boundary(c, nl, &m);
			break;
		}
		if (nl == c->len && c->msg[nl - 1] != '\n') {
			/* A delimiter on an unfinished last line starts no
			   part (Dovecot waits for its line end). */
			pos = c->len;
			m = -1;
			break;
		}
		if (c->n >= MIME_MAX_PARTS) {
			/* Out of parts: the rest up to the close delimiter
			   belongs to no part. */
			pos = scan_to_boundary(c, nl, &m);
			continue;
		}
		last = c->n;
		pos = parse_entity(c, nl, depth + 1, digest ? NODE_DIGEST : 0,
		    &m);
		nchild++;
	}
	c->nstack = own;
	if (nchild > 0 && c->nodes[last].floor > *floor_r)
		*floor_r = c->nodes[last].floor;
out:
	if (nchild == 0) {
		/* Like Dovecot: one empty text/plain part. */
		size_t k = node_new(c);

		c->nodes[k].hdr_off = c->nodes[self].body_off;
		c->nodes[k].body_off = c->nodes[self].body_off;
		c->nodes[k].floor = c->nodes[self].body_off;
		c->nodes[k].flags = NODE_SYNTH | NODE_TEXT;
		c->nodes[k].charset = MIME_CS_ASCII;
		c->nodes[k].skip = (uint32_t)c->n;
	}
	*m_r = m;
	return pos;
}

static size_t
parse_entity(struct mctx *c, size_t pos, int depth, uint8_t flags, int *m_r)
{
	size_t self = node_new(c), body_off, end, floor;
	struct mnode *nd = &c->nodes[self];
	struct bnd b;
	bool digest;
	int m;

	nd->flags = flags;
	nd->hdr_off = pos;
	body_off = scan_header(c, pos);
	nd->hdr_len = body_off - pos;
	nd->body_off = body_off;
	classify(c, nd, &b, &digest);
	if (nd->kind != MIME_KIND_LEAF && (depth >= MIME_MAX_DEPTH ||
	    c->n + 1 > MIME_MAX_PARTS)) {
		if (b.off != NO_BOUNDARY)
			c->bbuf.len = b.off;
		nd->kind = MIME_KIND_LEAF;
		nd->flags |= NODE_OPAQUE | NODE_TEXT;
		nd->charset = MIME_CS_ASCII;
		nd->cte = MIME_CTE_PLAIN;
	}
	floor = body_off;
	if (nd->kind == MIME_KIND_MULTI) {
		end = parse_multipart(c, self, b, digest, depth, &m, &floor);
		if (b.off != NO_BOUNDARY)
			c->bbuf.len = b.off;
	} else if (nd->kind == MIME_KIND_MESSAGE) {
		end = parse_entity(c, body_off, depth + 1, NODE_MSG, &m);
		floor = c->nodes[self + 1].floor;
	} else {
		end = scan_to_boundary(c, body_off, &m);
	}
	/* At the end of the message the last line break is body. Before a
	   boundary it is the boundary's, unless something inside already
	   took it: a header that ended at the boundary (a part without
	   blank line) or a close delimiter line right before it (Dovecot
	   counts it so). */
	nd = &c->nodes[self];   /* nodes may have moved */
	nd->floor = floor;
	nd->body_len = (m >= 0 ? body_end(c, floor, end) : end) - body_off;
	nd->skip = (uint32_t)c->n;
	*m_r = m;
	return end;
}

/* ---- pass 2: BODYSTRUCTURE and BODY ------------------------------------ */

static void
put_sc(struct buf *out, const struct buf *sc, size_t off, size_t len)
{
	mime_imap_str(out, sc_str(sc, off), len);
}

static void
write_params(struct buf *out, const struct buf *sc, const struct mctype *ct,
    bool text)
{
	bool seen = false;

	if (ct->np == 0 && !text) {
		buf_puts(out, "NIL");
		return;
	}
	buf_putc(out, '(');
	for (size_t i = 0; i < ct->np; i++) {
		if (i > 0)
			buf_putc(out, ' ');
		if (sc_eq(sc, ct->p[i].name_off, ct->p[i].name_len, "charset"))
			seen = true;
		put_sc(out, sc, ct->p[i].name_off, ct->p[i].name_len);
		buf_putc(out, ' ');
		put_sc(out, sc, ct->p[i].val_off, ct->p[i].val_len);
	}
	if (text && !seen)
		buf_puts(out, ct->np > 0 ? " \"charset\" \"us-ascii\"" :
		    "\"charset\" \"us-ascii\"");
	buf_putc(out, ')');
}

static void
write_disposition(struct buf *out, struct buf *sc, const struct mime_field *f)
{
	struct mctype d;

	parse_ctype(f->value, f->value_len, false, sc, &d);
	if (!d.valid || (d.type_len == 0 && d.np == 0)) {
		buf_puts(out, "NIL");
		return;
	}
	buf_putc(out, '(');
	put_sc(out, sc, d.type_off, d.type_len);
	buf_putc(out, ' ');
	write_params(out, sc, &d, false);
	buf_putc(out, ')');
}

static void
write_language(struct buf *out, const struct mime_field *f)
{
	const char *p = f->value, *end;
	bool any = false;

	if (p == NULL) {
		buf_puts(out, "NIL");
		return;
	}
	end = p + f->value_len;
	for (;;) {
		const char *s;

		mime_skip_cfws(&p, end);
		while (p < end && *p == ',') {
			p++;
			mime_skip_cfws(&p, end);
		}
		s = p;
		while (p < end && !is_tspecial((unsigned char)*p))
			p++;
		if (p == s)
			break;
		buf_puts(out, any ? " " : "(");
		mime_imap_str(out, s, (size_t)(p - s));
		any = true;
	}
	buf_puts(out, any ? ")" : "NIL");
}

static void
write_ext_tail(struct buf *out, struct buf *sc, const struct part_hdr *ph)
{
	buf_putc(out, ' ');
	write_disposition(out, sc, &ph->disp);
	buf_putc(out, ' ');
	write_language(out, &ph->lang);
	buf_putc(out, ' ');
	mime_imap_unfolded(out, ph->loc.value, ph->loc.value_len);
}

/* Appends bs[from..] to b: the parts BODY and BODYSTRUCTURE share. */
static void
copy_tail(struct buf *b, const struct buf *bs, size_t from)
{
	buf_append(b, bs->data + from, bs->len - from);
}

static size_t
write_node(struct mctx *c, size_t i, struct buf *bs, struct buf *b)
{
	const struct mnode nd = c->nodes[i];
	struct part_hdr ph;
	struct mctype ct;
	size_t from, j, tl;
	bool text = false;
	const char *tok;

	part_hdr_load(c->msg, &nd, &ph);
	buf_reset(&c->sc);
	parse_ctype(ph.ctype.value, ph.ctype.value_len, true, &c->sc, &ct);
	if (nd.kind == MIME_KIND_MULTI) {
		buf_putc(bs, '(');
		buf_putc(b, '(');
		for (j = i + 1; j < nd.skip;)
			j = write_node(c, j, bs, b);
		/* The children reused the scratch buffer. */
		buf_reset(&c->sc);
		parse_ctype(ph.ctype.value, ph.ctype.value_len, true, &c->sc,
		    &ct);
		from = bs->len;
		buf_putc(bs, ' ');
		put_sc(bs, &c->sc, ct.sub_off, ct.sub_len);
		copy_tail(b, bs, from);
		buf_putc(b, ')');
		buf_putc(bs, ' ');
		write_params(bs, &c->sc, &ct, false);
		write_ext_tail(bs, &c->sc, &ph);
		buf_putc(bs, ')');
		return nd.skip;
	}
	from = bs->len;
	buf_putc(bs, '(');
	if ((nd.flags & (NODE_OPAQUE | NODE_SYNTH)) || (!ct.valid &&
	    nd.kind != MIME_KIND_MESSAGE)) {
		buf_puts(bs, "\"text\" \"plain\" (\"charset\" \"us-ascii\")");
		text = true;
	} else if (!ct.valid) {
		buf_puts(bs, "\"message\" \"rfc822\" NIL");
	} else if (nd.kind == MIME_KIND_MESSAGE) {
		/* Dovecot writes these two in lower case, as sent or not */
		buf_puts(bs, "\"message\" \"rfc822\" ");
		write_params(bs, &c->sc, &ct, false);
	} else {
		text = sc_eq(&c->sc, ct.type_off, ct.type_len, "text");
		put_sc(bs, &c->sc, ct.type_off, ct.type_len);
		buf_putc(bs, ' ');
		put_sc(bs, &c->sc, ct.sub_off, ct.sub_len);
		buf_putc(bs, ' ');
		write_params(bs, &c->sc, &ct, text);
	}
	buf_putc(bs, ' ');
	mime_imap_unfolded(bs, ph.id.value, ph.id.value_len);
	buf_putc(bs, ' ');
	mime_imap_unfolded(bs, ph.desc.value, ph.desc.value_len);
	buf_putc(bs, ' ');
	tok = cte_token(&ph.cte, &tl);
	if (tok != NULL)
		mime_imap_str(bs, tok, tl);
	else
		buf_puts(bs, "\"7bit\"");
	buf_printf(bs, " %zu", nd.body_len);
	if (nd.kind == MIME_KIND_MESSAGE) {
		const struct mnode *in = &c->nodes[i + 1];

		buf_putc(bs, ' ');
		mime_envelope_write(bs, c->msg + in->hdr_off, in->hdr_len);
		buf_putc(bs, ' ');
		copy_tail(b, bs, from);
		write_node(c, i + 1, bs, b);
		from = bs->len;
		/* the child reused the scratch buffer */
		buf_reset(&c->sc);
		text = true;    /* a line count follows, as for text */
	}
	if (text) {
		const char *p = c->msg + nd.body_off, *e = p + nd.body_len;
		size_t lines = 0;

		while ((p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
			lines++;
			p++;
		}
		buf_printf(bs, " %zu", lines);
	}
	copy_tail(b, bs, from);
	buf_putc(b, ')');
	buf_putc(bs, ' ');
	mime_imap_unfolded(bs, ph.md5.value, ph.md5.value_len);
	write_ext_tail(bs, &c->sc, &ph);
	buf_putc(bs, ')');
	return nd.skip;
}

/* ---- the part table ------------------------------------------------------ */

static void
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static void
write_table(const struct mctx *c, struct buf *out)
{
	unsigned char *p;

	buf_reserve(out, MIME_TAB_HDR + c->n * MIME_REC_SIZE);
	p = (unsigned char *)out->data + out->len;
	memcpy(p, MIME_TAB_MAGIC, 4);
	put_u32(p + 4, (uint32_t)c->n);
	put_u32(p + 8, 0);
	p += MIME_TAB_HDR;
	for (size_t i = 0; i < c->n; i++, p += MIME_REC_SIZE) {
		const struct mnode *nd = &c->nodes[i];

		put_u32(p, (uint32_t)nd->hdr_off);
		put_u32(p + 4, (uint32_t)nd->hdr_len);
		put_u32(p + 8, (uint32_t)nd->body_off);
		put_u32(p + 12, (uint32_t)nd->body_len);
		put_u32(p + 16, nd->skip);
		p[20] = nd->kind;
		p[21] = nd->cte;
		p[22] = nd->charset;
		p[23] = (nd->flags & NODE_TEXT) ? MIME_REC_TEXT : 0;
	}
	out->len += MIME_TAB_HDR + c->n * MIME_REC_SIZE;
	out->data[out->len] = '\0';
}

int
mime_parse(const char *msg, size_t len, struct mime_info *info)
{
	struct mctx c;
	int m;

	memset(&c, 0, sizeof(c));
	buf_init(&info->envelope);
	buf_init(&info->bodystructure);
	buf_init(&info->body);
	buf_init(&info->parts);
	/* The table holds 32-bit offsets; messages are far smaller. */
	if (len > UINT32_MAX)
		len = UINT32_MAX;
	if (msg == NULL) {
		msg = "";
		len = 0;
	}
	c.msg = msg;
	c.len = len;
	buf_init(&c.bbuf);
	buf_init(&c.sc);
	parse_entity(&c, 0, 0, NODE_MSG, &m);
	mime_envelope_write(&info->envelope, msg, c.nodes[0].hdr_len);
	write_node(&c, 0, &info->bodystructure, &info->body);
	write_table(&c, &info->parts);
	free(c.nodes);
	buf_free(&c.bbuf);
	buf_free(&c.sc);
	return 0;
}

void
mime_info_free(struct mime_info *info)
{
	buf_free(&info->envelope);
	buf_free(&info->bodystructure);
	buf_free(&info->body);
	buf_free(&info->parts);
}
