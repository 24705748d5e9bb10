/* imap_search: SEARCH key parsing (every RFC 3501 key, nested OR/NOT and
   parenthesised lists, bounded depth and size) and per-message evaluation.
   Header and body are asked for through callbacks only when a key needs
   them. No I/O of its own. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "store.h"
#include "util.h"

#include "imap_search.h"

enum skey {
	SK_AND, SK_OR, SK_NOT, SK_ALL, SK_SEQ, SK_UID,
	SK_FLAG, SK_UNFLAG, SK_KEYWORD, SK_UNKEYWORD,
	SK_NEW, SK_OLD, SK_RECENT,
	SK_LARGER, SK_SMALLER,
	SK_BEFORE, SK_ON, SK_SINCE, SK_SENTBEFORE, SK_SENTON, SK_SENTSINCE,
	SK_HEADER, SK_BODY, SK_TEXT,
	SK_MODSEQ,      /* RFC 7162 §3.1.5 */
	SK_SAVED,       /* "$", RFC 5182 */
};

struct snode {
	enum skey key;
	struct snode *kids, *next;   /* AND/OR/NOT children */
	uint32_t flag;
	int kwbit;                   /* -1: unknown keyword */
	uint64_t num;
	int64_t day;
	char *field, *value;         /* owned */
	size_t vlen;
	bool addr;                   /* FROM/TO/CC/BCC: parsed addresses too */
	struct imap_seqset set;
	const uint32_t *saved;       /* SK_SAVED: borrowed, sorted UIDs */
	size_t nsaved;
};

struct imap_search {
	struct snode *root;
	unsigned needs;
	size_t nnodes;
	bool has_modseq;             /* a MODSEQ key: (MODSEQ n) in the reply */
	bool has_saved;              /* a "$" key */
};

struct pctx {
	struct imap_search *s;
	const char *err;
	enum imap_search_perr perr;
};

static void
node_free(struct snode *n)
{
	while (n != NULL) {
		struct snode *next = n->next;

		node_free(n->kids);
		free(n->field);
		free(n->value);
		imap_seqset_free(&n->set);
		free(n);
		n = next;
	}
}

void
imap_search_free(struct imap_search **sp)
{
	if (*sp == NULL)
		return;
	node_free((*sp)->root);
	free(*sp);
	*sp = NULL;
}

unsigned
imap_search_needs(const struct imap_search *s)
{
	return s->needs;
}

int64_t
imap_days_from_civil(int y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static const char *const months[] = { "jan", "feb", "mar", "apr", "may",
	"jun", "jul", "aug", "sep", "oct", "nov", "dec" };

int
imap_date_parse(const char *s, size_t len, int64_t *day_r)
{
	unsigned d = 0, y = 0, m, i = 0, k;

	while (i < len && i < 2 && s[i] >= '0' && s[i] <= '9')
		d = d * 10 + (unsigned)(s[i++] - '0');
	if (i == 0 || d < 1 || d > 31 || len - i != 9 || s[i] != '-')
		return -1;
	i++;
	for (m = 0; m < 12; m++)
		if (strncasecmp(s + i, months[m], 3) == 0)
			break;
	if (m == 12 || s[i + 3] != '-')
		return -1;
	i += 4;
	for (k = 0; k < 4; k++) {
		if (s[i + k] < '0' || s[i + k] > '9')
			return -1;
		y = y * 10 + (unsigned)(s[i + k] - '0');
	}
	*day_r = imap_days_from_civil((int)y, m + 1, d);
	return 0;
}

/* Simple lower-case mapping of the scripts an office mostly writes in
   (Latin-1, Latin Extended-A, Greek, Cyrillic); others are left as is. */
static uint32_t
fold_cp(uint32_t c)
{
	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	if (c >= 0xc0 && c <= 0xde && c != 0xd7)
		return c + 32;
	if (c >= 0x100 && c <= 0x137)
		return c | 1;
	if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
		return (c & 1) ? c + 1 : c;
	if (c >= 0x14a && c <= 0x177)
		return c | 1;
	if (c == 0x178)
		return 0xff;
	if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2)
		return c + 32;
	if (c >= 0x410 && c <= 0x42f)
		return c + 32;
	if (c >= 0x400 && c <= 0x40f)
		return c + 80;
	return c;
}

/* Appends the case-folded form of UTF-8 text; invalid bytes pass as is. */
static void
fold_utf8(const char *p, size_t len, struct buf *out)
{
	size_t i = 0;

	buf_reserve(out, len + 1);
	while (i < len) {
		unsigned char c = (unsigned char)p[i];
		uint32_t cp;
		size_t n;
		char t[4];

		if (c < 0x80) {
			buf_putc(out, (char)fold_cp(c));
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0 && i + 1 < len &&
		    ((unsigned char)p[i + 1] & 0xc0) == 0x80) {
			cp = ((uint32_t)(c & 0x1f) << 6) |
			    ((unsigned char)p[i + 1] & 0x3f);
			n = 2;
		} else {
			buf_putc(out, (char)c);     /* 3/4-byte forms: unchanged */
			i++;
			continue;
		}
		cp = fold_cp(cp);
		if (cp < 0x80) {
			buf_putc(out, (char)cp);
		} else {
			t[0] = (char)(0xc0 | (cp >> 6));
			t[1] = (char)(0x80 | (cp & 0x3f));
			buf_append(out, t, 2);
		}
		i += n;
	}
}

static bool
substr_ascii_ci(const char *hay, size_t hlen, const char *needle,
    size_t nlen)
{
	size_t i, j;

	if (nlen == 0)
		return true;
	for (i = 0; i + nlen <= hlen; i++) {
		for (j = 0; j < nlen; j++) {
			unsigned char a = (unsigned char)hay[i + j];
			unsigned char b = (unsigned char)needle[j];

			if (a >= 'A' && a <= 'Z')
				a += 32;
			if (b >= 'A' && b <= 'Z')
				b += 32;
			if (a != b)
				break;
		}
		if (j == nlen)
			return true;
	}
	return false;
}

bool
imap_substr_ci(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	struct buf h, n;
	size_t i;
	bool r;

	for (i = 0; i < nlen; i++)
		if ((unsigned char)needle[i] >= 0x80)
			break;
	if (i == nlen)      /* an ASCII needle: no need to fold the text */
		return substr_ascii_ci(hay, hlen, needle, nlen);
	buf_init(&h);
	buf_init(&n);
	fold_utf8(hay, hlen, &h);
	fold_utf8(needle, nlen, &n);
	r = h.len >= n.len && memmem(h.data, h.len, n.data, n.len) != NULL;
	buf_free(&h);
	buf_free(&n);
	return r;
}

static struct snode *parse_key(struct pctx *c, const struct imap_arg **ap,
    const struct imap_arg *end, unsigned depth);

static struct snode *
new_node(struct pctx *c, enum skey key)
{
	struct snode *n;

	if (++c->s->nnodes > IMAP_SEARCH_NODES_MAX) {
		c->err = "Too many search keys";
		return NULL;
	}
	n = xcalloc(1, sizeof(*n));
	n->key = key;
	n->kwbit = -1;
	return n;
}

static const struct imap_arg *
take_string(struct pctx *c, const struct imap_arg **ap,
    const struct imap_arg *end)
{
	const struct imap_arg *a = *ap;

	if (a >= end || !imap_arg_is_string(a)) {
		c->err = "Missing search argument";
		return NULL;
	}
	*ap = imap_arg_next(a);
	return a;
}

static bool
is_seqset_atom(const struct imap_arg *a)
{
	const char *p;

	if (a->type != IMAP_ARG_ATOM || a->len == 0)
		return false;
	for (p = a->str; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '*' || *p == ':' ||
		    *p == ','))
			return false;
	return true;
}

static const struct {
	const char *name;
	enum skey key;
	uint32_t flag;
} simple_keys[] = {
	{ "ALL", SK_ALL, 0 },
	{ "ANSWERED", SK_FLAG, STORE_F_ANSWERED },
	{ "DELETED", SK_FLAG, STORE_F_DELETED },
	{ "DRAFT", SK_FLAG, STORE_F_DRAFT },
	{ "FLAGGED", SK_FLAG, STORE_F_FLAGGED },
	{ "SEEN", SK_FLAG, STORE_F_SEEN },
	{ "UNANSWERED", SK_UNFLAG, STORE_F_ANSWERED },
	{ "UNDELETED", SK_UNFLAG, STORE_F_DELETED },
	{ "UNDRAFT", SK_UNFLAG, STORE_F_DRAFT },
	{ "UNFLAGGED", SK_UNFLAG, STORE_F_FLAGGED },
	{ "UNSEEN", SK_UNFLAG, STORE_F_SEEN },
	{ "NEW", SK_NEW, 0 },
	{ "OLD", SK_OLD, 0 },
	{ "RECENT", SK_RECENT, 0 },
};

static const struct {
	const char *name;
	enum skey key;
} date_keys[] = {
	{ "BEFORE", SK_BEFORE }, { "ON", SK_ON }, { "SINCE", SK_SINCE },
	{ "SENTBEFORE", SK_SENTBEFORE }, { "SENTON", SK_SENTON },
	{ "SENTSINCE", SK_SENTSINCE },
};

static const char *const addr_keys[] = { "BCC", "CC", "FROM", "SUBJECT",
	"TO" };

static struct snode *
parse_list(struct pctx *c, const struct imap_arg *a, const struct imap_arg *end,
    unsigned depth)
{
	struct snode *n, **tail;

	if ((n = new_node(c, SK_AND)) == NULL)
		return NULL;
	tail = &n->kids;
	if (a >= end) {
		c->err = "Empty search list";
		node_free(n);
		return NULL;
	}
	while (a < end) {
		struct snode *k = parse_key(c, &a, end, depth + 1);

		if (k == NULL) {
			node_free(n);
			return NULL;
		}
		*tail = k;
		tail = &k->next;
	}
	return n;
}

/* MODSEQ [entry-name entry-type] n: the per-message modseq stands for
   every entry (one modseq per message here). */
static struct snode *
parse_modseq_key(struct pctx *c, const struct imap_arg **ap,
    const struct imap_arg *end)
{
	const struct imap_arg *v;
	struct snode *n;

	if ((n = new_node(c, SK_MODSEQ)) == NULL)
		return NULL;
	if ((v = take_string(c, ap, end)) == NULL)
		goto bad;
	if (v->type != IMAP_ARG_ATOM) {
		const struct imap_arg *t = *ap;

		if (t >= end || !(imap_arg_is_atom(t, "priv") ||
		    imap_arg_is_atom(t, "shared") ||
		    imap_arg_is_atom(t, "all"))) {
			c->err = "Invalid MODSEQ entry type";
			goto bad;
		}
		*ap = imap_arg_next(t);
		if ((v = take_string(c, ap, end)) == NULL)
			goto bad;
	}
	if (v->type != IMAP_ARG_ATOM || v->len == 0 || v->len > 19 ||
	    strspn(v->str, "0123456789") != v->len) {
		c->err = "Invalid mod-sequence";
		goto bad;
	}
	n->num = strtoull(v->str, NULL, 10);
	c->s->has_modseq = true;
	return n;
bad:
	node_free(n);
	return NULL;
}

/* A key that is a sequence set of its own. */
static struct snode *
parse_seq_key(struct pctx *c, const struct imap_arg *a)
{
	struct snode *n;

	if ((n = new_node(c, SK_SEQ)) == NULL)
		return NULL;
	if (imap_seqset_parse(a->str, a->len, IMAP_SEQSET_RANGES_MAX,
	    &n->set, &c->err) < 0) {
		node_free(n);
		return NULL;
	}
	return n;
}

/* BEFORE/ON/SINCE and their SENT forms: a date argument. */
static struct snode *
parse_date_key(struct pctx *c, const struct imap_arg **ap,
    const struct imap_arg *end, enum skey key)
{
	const struct imap_arg *v;
	struct snode *n;

	if ((n = new_node(c, key)) == NULL)
		return NULL;
	if ((v = take_string(c, ap, end)) == NULL)
		goto bad;
	if (imap_date_parse(v->str, v->len, &n->day) < 0) {
		c->err = "Invalid date";
		goto bad;
	}
	if (n->key >= SK_SENTBEFORE)
		c->s->needs |= IMAP_SEARCH_NEED_HEADER;
	return n;
bad:
	node_free(n);
	return NULL;
}

/* HEADER field value, or FROM/TO/... value (field given). */
static struct snode *
parse_header_key(struct pctx *c, const struct imap_arg **ap,
    const struct imap_arg *end, const char *field)
{
	const struct imap_arg *f = NULL, *v;
	struct snode *n;

	if ((n = new_node(c, SK_HEADER)) == NULL)
		return NULL;
	if ((field == NULL && (f = take_string(c, ap, end)) == NULL) ||
	    (v = take_string(c, ap, end)) == NULL)
		goto bad;
	if (f != NULL && (f->len == 0 || memchr(f->str, ':', f->len) ||
	    strlen(f->str) != f->len)) {
		c->err = "Invalid header field name";
		goto bad;
	}
	n->field = f != NULL ? xstrndup(f->str, f->len) : xstrdup(field);
	n->addr = f == NULL && strcmp(field, "SUBJECT") != 0;
	n->value = xstrndup(v->str, v->len);
	n->vlen = strlen(n->value);
	c->s->needs |= IMAP_SEARCH_NEED_HEADER;
	return n;
bad:
	node_free(n);
	return NULL;
}

/* BODY, TEXT, KEYWORD and UNKEYWORD: one string argument. */
static struct snode *
parse_string_key(struct pctx *c, const struct imap_arg **ap,
    const struct imap_arg *end, enum skey key)
{
	const struct imap_arg *v;
	struct snode *n;

	if ((n = new_node(c, key)) == NULL)
		return NULL;
	if ((v = take_string(c, ap, end)) == NULL)
		goto bad;
	if ((key == SK_KEYWORD || key == SK_UNKEYWORD) &&
	    (v->type != IMAP_ARG_ATOM || v->str[0] == '\\')) {
		c->err = "Invalid keyword";
		goto bad;
	}
	n->value = xstrndup(v->str, v->len);
	if (key == SK_BODY || key == SK_TEXT) {
		n->vlen = strlen(n->value);
		c->s->needs |= IMAP_SEARCH_NEED_BODY;
	}
	return n;
bad:
	node_free(n);
	return NULL;
}

/* LARGER / SMALLER n. */
static struct snode *
parse_size_key(struct pctx *c, const struct imap_arg **ap,
    const struct imap_arg *end, enum skey key)
{
	const struct imap_arg *v;
	struct snode *n;
	char *e;

	if ((n = new_node(c, key)) == NULL)
		return NULL;
	if ((v = take_string(c, ap, end)) == NULL)
		goto bad;
	if (v->type != IMAP_ARG_ATOM || v->str[0] < '0' ||
	    v->str[0] > '9' || v->len > 19) {
		c->err = "Invalid number";
		goto bad;
	}
	n->num = strtoull(v->str, &e, 10);
	if (*e != '\0') {
		c->err = "Invalid number";
		goto bad;
	}
	return n;
bad:
	node_free(n);
	return NULL;
}

/* UID set, or UID $: the saved result (RFC 5182), UIDs anyway. */
static struct snode *
parse_uid_key(struct pctx *c, const struct imap_arg **ap,
    const struct imap_arg *end)
{
	const struct imap_arg *v;
	struct snode *n;

	if ((n = new_node(c, SK_UID)) == NULL)
		return NULL;
	if ((v = take_string(c, ap, end)) == NULL)
		goto bad;
	if (v->len == 1 && v->str[0] == '$') {
		n->key = SK_SAVED;
		c->s->has_saved = true;
		return n;
	}
	if (imap_seqset_parse(v->str, v->len, IMAP_SEQSET_RANGES_MAX,
	    &n->set, &c->err) < 0)
		goto bad;
	return n;
bad:
	node_free(n);
	return NULL;
}

/* NOT key, OR key key. */
static struct snode *
parse_logic_key(struct pctx *c, const struct imap_arg **ap,
    const struct imap_arg *end, unsigned depth, enum skey key)
{
	struct snode *n;

	if ((n = new_node(c, key)) == NULL)
		return NULL;
	if ((n->kids = parse_key(c, ap, end, depth + 1)) == NULL ||
	    (key == SK_OR &&
	    (n->kids->next = parse_key(c, ap, end, depth + 1)) == NULL)) {
		node_free(n);
		return NULL;
	}
	return n;
}

/* The keys named by a word with arguments; NULL with c->err unset if w
   is none of them. */
static struct snode *
parse_word_key(struct pctx *c, const char *w, const struct imap_arg **ap,
    const struct imap_arg *end, unsigned depth)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(date_keys); i++)
		if (strcasecmp(w, date_keys[i].name) == 0)
			return parse_date_key(c, ap, end, date_keys[i].key);
	for (i = 0; i < ARRAY_SIZE(addr_keys); i++)
		if (strcasecmp(w, addr_keys[i]) == 0)
			return parse_header_key(c, ap, end, addr_keys[i]);
	if (strcasecmp(w, "HEADER") == 0)
		return parse_header_key(c, ap, end, NULL);
	if (strcasecmp(w, "BODY") == 0)
		return parse_string_key(c, ap, end, SK_BODY);
	if (strcasecmp(w, "TEXT") == 0)
		return parse_string_key(c, ap, end, SK_TEXT);
	if (strcasecmp(w, "KEYWORD") == 0)
		return parse_string_key(c, ap, end, SK_KEYWORD);
	if (strcasecmp(w, "UNKEYWORD") == 0)
		return parse_string_key(c, ap, end, SK_UNKEYWORD);
	if (strcasecmp(w, "LARGER") == 0)
		return parse_size_key(c, ap, end, SK_LARGER);
	if (strcasecmp(w, "SMALLER") == 0)
		return parse_size_key(c, ap, end, SK_SMALLER);
	if (strcasecmp(w, "UID") == 0)
		return parse_uid_key(c, ap, end);
	if (strcasecmp(w, "NOT") == 0)
		return parse_logic_key(c, ap, end, depth, SK_NOT);
	if (strcasecmp(w, "OR") == 0)
		return parse_logic_key(c, ap, end, depth, SK_OR);
	c->err = "Unknown search key";
	return NULL;
}

static struct snode *
parse_key(struct pctx *c, const struct imap_arg **ap,
    const struct imap_arg *end, unsigned depth)
{
	const struct imap_arg *a = *ap;
	struct snode *n;
	const char *w;
	size_t i;

	if (depth > IMAP_SEARCH_DEPTH_MAX) {
		c->err = "Search criteria nested too deeply";
		return NULL;
	}
	if (a >= end) {
		c->err = "Missing search key";
		return NULL;
	}
	*ap = imap_arg_next(a);
	if (a->type == IMAP_ARG_LIST)
		return parse_list(c, a + 1, imap_arg_list_end(a), depth);
	if (a->type != IMAP_ARG_ATOM) {
		c->err = "Invalid search key";
		return NULL;
	}
	w = a->str;
	if (a->len == 1 && w[0] == '$') {
		c->s->has_saved = true;
		return new_node(c, SK_SAVED);
	}
	if (strcasecmp(w, "MODSEQ") == 0)
		return parse_modseq_key(c, ap, end);
	if (is_seqset_atom(a))
		return parse_seq_key(c, a);
	for (i = 0; i < ARRAY_SIZE(simple_keys); i++) {
		if (strcasecmp(w, simple_keys[i].name) == 0) {
			if ((n = new_node(c, simple_keys[i].key)) == NULL)
				return NULL;
			n->flag = simple_keys[i].flag;
			return n;
		}
	}
	return parse_word_key(c, w, ap, end, depth);
}

enum imap_search_perr
imap_search_parse(const struct imap_arg *args, const struct imap_arg *end,
    struct imap_search **s_r, const char **error_r)
{
	struct pctx c = { 0 };
	const struct imap_arg *a = args;

	c.s = xcalloc(1, sizeof(*c.s));
	if (a < end && imap_arg_is_atom(a, "CHARSET")) {
		a = imap_arg_next(a);
		if (a >= end || !imap_arg_is_string(a)) {
			*error_r = "Missing charset";
			goto bad;
		}
		if (strcasecmp(a->str, "UTF-8") != 0 &&
		    strcasecmp(a->str, "US-ASCII") != 0) {
			imap_search_free(&c.s);
			*error_r = "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset";
			return IMAP_SEARCH_BADCHARSET;
		}
		a = imap_arg_next(a);
	}
	if ((c.s->root = parse_list(&c, a, end, 0)) == NULL) {
		*error_r = c.err ? c.err : "Invalid search";
		goto bad;
	}
	*s_r = c.s;
	return IMAP_SEARCH_OK;
bad:
	imap_search_free(&c.s);
	return IMAP_SEARCH_BAD;
}

static void
bind_nodes(struct snode *n, uint32_t max_msn, uint32_t max_uid,
    const char (*names)[65], unsigned nn)
{
	unsigned i;

	for (; n != NULL; n = n->next) {
		if (n->key == SK_SEQ || n->key == SK_UID) {
			imap_seqset_resolve(&n->set,
			    n->key == SK_SEQ ? max_msn : max_uid);
		} else if (n->key == SK_KEYWORD || n->key == SK_UNKEYWORD) {
			n->kwbit = -1;
			for (i = 0; i < nn; i++)
				if (strcasecmp(names[i], n->value) == 0)
					n->kwbit = (int)i;
		}
		bind_nodes(n->kids, max_msn, max_uid, names, nn);
	}
}

void
imap_search_bind(struct imap_search *s, uint32_t max_msn, uint32_t max_uid,
    const char (*names)[65], unsigned n)
{
	bind_nodes(s->root, max_msn, max_uid, names, n);
}

static int64_t
day_of(int64_t t, int32_t tz_min)
{
	int64_t x = t + (int64_t)tz_min * 60;

	return x >= 0 ? x / 86400 : -((-x + 86399) / 86400);
}

static bool
date_cmp(enum skey k, int64_t day, int64_t want)
{
	switch (k) {
	case SK_BEFORE: case SK_SENTBEFORE:
		return day < want;
	case SK_ON: case SK_SENTON:
		return day == want;
	default:
		return day >= want;
	}
}

/* Whether a display name or local@domain of the parsed address fields
   holds the value: the raw text misses addresses cut up by comments and
   folding ("<user (c)@ (c) example.org>"). */
static bool
match_addresses(const struct snode *n, const char *h, size_t hl)
{
	struct buf flat;
	size_t i = 0;
	bool r = false;

	buf_init(&flat);
	mime_addresses_text(h, hl, n->field, &flat);
	while (i < flat.len && !r) {
		size_t l = strlen(flat.data + i);

		r = imap_substr_ci(flat.data + i, l, n->value, n->vlen);
		i += l + 1;
	}
	buf_free(&flat);
	return r;
}

static bool
match_header(const struct snode *n, const struct imap_search_msg *m)
{
	const char *h;
	size_t hl;
	struct buf raw, dec;
	bool r = false;

	if (m->get_header(m->ctx, &h, &hl) < 0)
		return false;
	buf_init(&raw);
	buf_init(&dec);
	if (mime_header_get(h, hl, n->field, &raw) > 0) {
		if (n->vlen == 0) {
			r = true;
		} else {
			mime_decode_words(raw.data, raw.len, &dec);
			r = imap_substr_ci(dec.data, dec.len, n->value, n->vlen) ||
			    imap_substr_ci(raw.data, raw.len, n->value, n->vlen) ||
			    (n->addr && match_addresses(n, h, hl));
		}
	}
	buf_free(&raw);
	buf_free(&dec);
	return r;
}

static bool
match_sent(const struct snode *n, const struct imap_search_msg *m)
{
	const char *h;
	size_t hl;
	struct buf raw;
	time_t t;
	int tz;
	bool r = false;

	if (m->get_header(m->ctx, &h, &hl) < 0)
		return false;
	buf_init(&raw);
	if (mime_header_get(h, hl, "Date", &raw) > 0 &&
	    mime_parse_date(raw.data, strcspn(raw.data, "\n"), &t, &tz) == 0)
		r = date_cmp(n->key, day_of((int64_t)t, tz), n->day);
	buf_free(&raw);
	return r;
}

static bool
match_text(const struct snode *n, const struct imap_search_msg *m)
{
	const char *p;
	size_t len, plen;
	const void *parts;
	struct buf txt;
	bool r;

	if (m->get_message(m->ctx, &p, &len, &parts, &plen) < 0)
		return false;
	if (n->key == SK_TEXT) {
		const char *h;
		size_t hl;
		struct buf dec;

		if (m->get_header(m->ctx, &h, &hl) == 0) {
			if (imap_substr_ci(h, hl, n->value, n->vlen))
				return true;
			buf_init(&dec);
			mime_decode_words(h, hl, &dec);
			r = imap_substr_ci(dec.data, dec.len, n->value, n->vlen);
			buf_free(&dec);
			if (r)
				return true;
		}
	}
	buf_init(&txt);
	if (parts == NULL) {
		/* no cached structure (older index entry): parse it here */
		struct mime_info info;

		memset(&info, 0, sizeof(info));
		mime_parse(p, len, &info);
		mime_body_text(p, len, info.parts.data, info.parts.len, &txt);
		mime_info_free(&info);
	} else {
		mime_body_text(p, len, parts, plen, &txt);
	}
	r = imap_substr_ci(txt.data, txt.len, n->value, n->vlen);
	buf_free(&txt);
	return r;
}

static bool
eval(const struct snode *n, const struct imap_search_msg *m)
{
	const struct snode *k;

	switch (n->key) {
	case SK_AND:
		for (k = n->kids; k != NULL; k = k->next)
			if (!eval(k, m))
				return false;
		return true;
	case SK_OR:
		return eval(n->kids, m) || eval(n->kids->next, m);
	case SK_NOT:
		return !eval(n->kids, m);
	case SK_ALL:
		return true;
	case SK_SEQ:
		return imap_seqset_has(&n->set, m->msn);
	case SK_UID:
		return imap_seqset_has(&n->set, m->uid);
	case SK_MODSEQ:
		return m->modseq >= n->num;
	case SK_SAVED: {
		size_t lo = 0, hi = n->nsaved;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (n->saved[mid] < m->uid)
				lo = mid + 1;
			else if (n->saved[mid] > m->uid)
				hi = mid;
			else
				return true;
		}
		return false;
	}
	case SK_FLAG:
		return (m->flags & n->flag) != 0;
	case SK_UNFLAG:
		return (m->flags & n->flag) == 0;
	case SK_KEYWORD:
		return n->kwbit >= 0 && (m->keywords >> n->kwbit) & 1;
	case SK_UNKEYWORD:
		return n->kwbit < 0 || !((m->keywords >> n->kwbit) & 1);
	case SK_NEW:
		return m->recent && !(m->flags & STORE_F_SEEN);
	case SK_OLD:
		return !m->recent;
	case SK_RECENT:
		return m->recent;
	case SK_LARGER:
		return m->size > n->num;
	case SK_SMALLER:
		return m->size < n->num;
	case SK_BEFORE: case SK_ON: case SK_SINCE:
		return date_cmp(n->key, day_of(m->internaldate, m->internal_tz),
		    n->day);
	case SK_SENTBEFORE: case SK_SENTON: case SK_SENTSINCE:
		return match_sent(n, m);
	case SK_HEADER:
		return match_header(n, m);
	case SK_BODY: case SK_TEXT:
		return match_text(n, m);
	}
	return false;
}

static void
bind_saved(struct snode *n, const uint32_t *uids, size_t nuids)
{
	for (; n != NULL; n = n->next) {
		if (n->key == SK_SAVED) {
			n->saved = uids;
			n->nsaved = nuids;
		}
		bind_saved(n->kids, uids, nuids);
	}
}

void
imap_search_bind_saved(struct imap_search *s, const uint32_t *uids,
    size_t n)
{
	bind_saved(s->root, uids, n);
}

bool
imap_search_has_modseq(const struct imap_search *s)
{
	return s->has_modseq;
}

bool
imap_search_has_saved(const struct imap_search *s)
{
	return s->has_saved;
}

bool
imap_search_match(struct imap_search *s, const struct imap_search_msg *m)
{
	return eval(s->root, m);
}
