/* imap_parser: incremental tokenizer of IMAP commands (RFC 3501 §9 lexical
   rules, RFC 7888 LITERAL+). Builds a preorder argument tree; the command
   semantics (what a FETCH item or a SEARCH key means) are parsed elsewhere.
   Pure: no I/O, no logging, no globals. Memory grows only as bytes arrive,
   bounded by the limits given at creation. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parser.h"

enum pstate {
	PS_ARGS,        /* between tokens */
	PS_ATOM,
	PS_QUOTED,
	PS_QUOTED_ESC,
	PS_LIT_HDR,     /* inside {...} */
	PS_LIT_CRLF,    /* after '}' */
	PS_LIT_LF,      /* after '}' CR */
	PS_LIT_WAIT,    /* announced; the caller decides */
	PS_LIT_DATA,
	PS_CR,          /* CR seen at end of line */
	PS_SKIP,        /* discarding to the next LF after an error */
	PS_DISCARD,     /* discarding a rejected non-sync literal */
};

#define NO_STR ((size_t)-1)

struct pnode {
	enum imap_arg_type type;
	size_t off, len, span, lit_size;
};

struct imap_parser {
	struct imap_parser_limits lim;
	enum pstate st;
	bool done;              /* a command or error was returned: reset next */
	bool fatal;
	struct buf text;        /* token bytes, each NUL-terminated */
	struct pnode *nodes;
	size_t nnodes, cap;
	struct imap_arg *args;  /* built at completion */
	size_t args_cap;
	size_t stack[64];
	size_t depth;
	size_t ntop;            /* top-level nodes (tag and name included) */
	size_t line_bytes;      /* command text outside literals */
	size_t lit_total;
	size_t skipped;
	int bracket;            /* inside [...] of an atom */
	uint64_t lit_size, lit_left;
	bool lit_sync, lit_digits;
	const char *err;
};

struct imap_parser *
imap_parser_new(const struct imap_parser_limits *lim)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));

	p->lim = *lim;
	if (p->lim.depth_max > ARRAY_SIZE(p->stack))
		p->lim.depth_max = ARRAY_SIZE(p->stack);
	buf_init(&p->text);
	return p;
}

void
imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;

	if (p == NULL)
		return;
	buf_free(&p->text);
	free(p->nodes);
	free(p->args);
	free(p);
	*pp = NULL;
}

static void
reset(struct imap_parser *p)
{
	buf_reset(&p->text);
	p->nnodes = 0;
	p->ntop = 0;
	p->depth = 0;
	p->line_bytes = 0;
	p->lit_total = 0;
	p->bracket = 0;
	p->st = PS_ARGS;
	p->done = false;
}

void
imap_parser_trim(struct imap_parser *p)
{
	if (p->st != PS_ARGS || p->nnodes != 0 || p->text.len != 0)
		return;
	if (p->text.cap > 4096)
		buf_free(&p->text);
	if (p->cap > 64) {
		free(p->nodes);
		p->nodes = NULL;
		p->cap = 0;
	}
	if (p->args_cap > 64) {
		free(p->args);
		p->args = NULL;
		p->args_cap = 0;
	}
}

bool
imap_parser_release(struct imap_parser *p)
{
	if (!p->done && (p->st != PS_ARGS || p->nnodes != 0 ||
	    p->text.len != 0))
		return false;
	reset(p);
	buf_free(&p->text);
	free(p->nodes);
	p->nodes = NULL;
	p->cap = 0;
	free(p->args);
	p->args = NULL;
	p->args_cap = 0;
	return true;
}

bool
imap_parser_is_fatal(const struct imap_parser *p)
{
	return p->fatal;
}

static int
fail(struct imap_parser *p, const char *err, bool at_eol)
{
	p->err = err;
	p->done = true;
	p->st = at_eol ? PS_ARGS : PS_SKIP;
	p->skipped = 0;
	return -1;
}

static struct pnode *
node_add(struct imap_parser *p, enum imap_arg_type type)
{
	struct pnode *n;

	if (p->nnodes >= p->lim.args_max)
		return NULL;
	if (p->nnodes == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->nodes = xrealloc(p->nodes, p->cap * sizeof(*p->nodes));
	}
	n = &p->nodes[p->nnodes++];
	memset(n, 0, sizeof(*n));
	n->type = type;
	n->off = p->text.len;
	if (p->depth == 0)
		p->ntop++;
	return n;
}

static void
text_end(struct imap_parser *p)
{
	struct pnode *n = &p->nodes[p->nnodes - 1];

	n->len = p->text.len - n->off;
	buf_putc(&p->text, '\0');
}

static bool
is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return c != '(' && c != ')' && c != '{' && c != '"';
}

static bool
is_tag_char(unsigned char c)
{
	return is_atom_char(c) && c != '+' && c != '*' && c != '%' &&
	    c != '\\';
}

size_t
imap_parser_cur_nargs(const struct imap_parser *p)
{
	return p->ntop >= 2 ? p->ntop - 2 : 0;
}

bool
imap_parser_literal_fits(const struct imap_parser *p)
{
	return p->lit_size <= p->lim.literal_total &&
	    p->lit_total + p->lit_size <= p->lim.literal_total &&
	    p->nnodes < p->lim.args_max;
}

const char *
imap_parser_cur_tag(const struct imap_parser *p)
{
	if (p->nnodes < 1 || p->nodes[0].type != IMAP_ARG_ATOM)
		return NULL;
	return p->text.data + p->nodes[0].off;
}

const char *
imap_parser_cur_name(const struct imap_parser *p)
{
	if (p->nnodes < 2 || p->nodes[1].type != IMAP_ARG_ATOM)
		return NULL;
	return p->text.data + p->nodes[1].off;
}

uint64_t
imap_parser_lit_size(const struct imap_parser *p)
{
	return p->lit_size;
}

bool
imap_parser_lit_sync(const struct imap_parser *p)
{
	return p->lit_sync;
}

void
imap_parser_literal_read(struct imap_parser *p)
{
	struct pnode *n;

	assert(p->st == PS_LIT_WAIT);
	n = node_add(p, IMAP_ARG_LITERAL);
	assert(n != NULL);  /* checked before announcing */
	n->lit_size = p->lit_size;
	p->lit_total += p->lit_size;
	p->lit_left = p->lit_size;
	p->st = PS_LIT_DATA;
	if (p->lit_left == 0) {
		text_end(p);
		p->st = PS_ARGS;
	}
}

void
imap_parser_literal_external(struct imap_parser *p)
{
	struct pnode *n;

	assert(p->st == PS_LIT_WAIT);
	n = node_add(p, IMAP_ARG_LITERAL);
	assert(n != NULL);
	n->off = NO_STR;
	n->lit_size = p->lit_size;
	p->st = PS_ARGS;
}

void
imap_parser_literal_reject(struct imap_parser *p)
{
	assert(p->st == PS_LIT_WAIT);
	reset(p);
	if (!p->lit_sync) {
		p->lit_left = p->lit_size;
		p->skipped = 0;
		p->st = PS_DISCARD;
	}
}

static void build_args(struct imap_parser *p);

static int
complete(struct imap_parser *p, struct imap_cmd *cmd_r, const char **tag_r)
{
	size_t i;

	if (p->depth != 0)
		return fail(p, "Unbalanced parentheses", true);
	if (p->nnodes < 2 || p->nodes[0].type != IMAP_ARG_ATOM)
		return fail(p, "Missing command", true);
	for (i = 0; i < p->nodes[0].len; i++)
		if (!is_tag_char((unsigned char)p->text.data[p->nodes[0].off + i]))
			return fail(p, "Invalid tag", true);
	if (p->nodes[1].type != IMAP_ARG_ATOM)
		return fail(p, "Invalid command name", true);
	build_args(p);
	cmd_r->tag = p->args[0].str;
	cmd_r->name = p->args[1].str;
	cmd_r->args = &p->args[2];
	cmd_r->args_end = &p->args[p->nnodes];
	*tag_r = cmd_r->tag;
	p->done = true;
	return 1;
}

static void
build_args(struct imap_parser *p)
{
	size_t i;

	if (p->args_cap < p->nnodes) {
		free(p->args);
		p->args_cap = p->nnodes;
		p->args = xmalloc(p->args_cap * sizeof(*p->args));
	}
	for (i = 0; i < p->nnodes; i++) {
		struct pnode *n = &p->nodes[i];
		struct imap_arg *a = &p->args[i];

		a->type = n->type;
		a->str = n->off == NO_STR ? NULL : p->text.data + n->off;
		a->len = n->len;
		a->span = n->span;
		a->lit_size = n->lit_size;
		if (n->type == IMAP_ARG_LIST)
			a->str = NULL;
	}
}

int
imap_parser_cur_args(struct imap_parser *p, const struct imap_arg **args_r,
    const struct imap_arg **end_r)
{
	if (p->depth != 0 || p->nnodes < 2 || p->st != PS_LIT_WAIT)
		return -1;
	build_args(p);
	*args_r = &p->args[2];
	*end_r = &p->args[p->nnodes];
	return 0;
}

/* Handles one byte in PS_ARGS. Returns 1 to go on, or the result code
   with *res set (complete, error, literal). */
static int
args_byte(struct imap_parser *p, unsigned char c, int *res,
    struct imap_cmd *cmd_r, const char **tag_r)
{
	struct pnode *n;

	switch (c) {
	case ' ':
		return 1;
	case '\r':
		p->st = PS_CR;
		return 1;
	case '\n':
		if (p->nnodes == 0) {
			reset(p);       /* empty line: ignored */
			return 1;
		}
		*res = complete(p, cmd_r, tag_r);
		return 0;
	case '(':
		if (p->nnodes < 2) {
			*res = fail(p, "Invalid command", false);
			return 0;
		}
		if (p->depth >= p->lim.depth_max) {
			*res = fail(p, "Too deeply nested", false);
			return 0;
		}
		if ((n = node_add(p, IMAP_ARG_LIST)) == NULL) {
			*res = fail(p, "Too many arguments", false);
			return 0;
		}
		p->stack[p->depth++] = p->nnodes - 1;
		return 1;
	case ')':
		if (p->depth == 0) {
			*res = fail(p, "Unexpected ')'", false);
			return 0;
		}
		p->depth--;
		n = &p->nodes[p->stack[p->depth]];
		n->span = p->nnodes - p->stack[p->depth] - 1;
		return 1;
	case '"':
		if (node_add(p, IMAP_ARG_QUOTED) == NULL) {
			*res = fail(p, "Too many arguments", false);
			return 0;
		}
		p->st = PS_QUOTED;
		return 1;
	case '{':
		if (p->nnodes < 2) {
			*res = fail(p, "Invalid command", false);
			return 0;
		}
		p->lit_size = 0;
		p->lit_sync = true;
		p->lit_digits = false;
		p->st = PS_LIT_HDR;
		return 1;
	default:
		if (!is_atom_char(c) && !(c == ']' || c == '[')) {
			*res = fail(p, "Invalid characters in command", false);
			return 0;
		}
		if (node_add(p, IMAP_ARG_ATOM) == NULL) {
			*res = fail(p, "Too many arguments", false);
			return 0;
		}
		p->bracket = 0;
		p->st = PS_ATOM;
		return 2;   /* reprocess the byte as part of the atom */
	}
}

/* '[' is an ordinary atom character (a mailbox may be called "foo[bar"):
   only after a fetch attribute that takes a section (BODY[...],
   BINARY[...]) does it open a bracket that may hold spaces and parens
   up to its ']'. */
static bool
opens_section(const struct imap_parser *p)
{
	static const char *const names[] = { "BODY", "BODY.PEEK", "BINARY",
		"BINARY.PEEK", "BINARY.SIZE" };
	const struct pnode *n = &p->nodes[p->nnodes - 1];
	const char *s = p->text.data + n->off;
	size_t len = p->text.len - n->off, i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len &&
		    strncasecmp(s, names[i], len) == 0)
			return true;
	return false;
}

static int
atom_byte(struct imap_parser *p, unsigned char c)
{
	if (p->bracket) {
		if (c == '\r' || c == '\n' || c == 0)
			return -1;
		if (c == ']')
			p->bracket = 0;
		buf_putc(&p->text, (char)c);
		return 1;
	}
	if (c == '[' && opens_section(p)) {
		p->bracket = 1;
		buf_putc(&p->text, (char)c);
		return 1;
	}
	if (is_atom_char(c)) {
		buf_putc(&p->text, (char)c);
		return 1;
	}
	text_end(p);
	p->st = PS_ARGS;
	return 0;   /* the byte belongs to PS_ARGS */
}

/* A byte inside a quoted string. -1 on error (p->err set). */
static int
quoted_byte(struct imap_parser *p, unsigned char c, int *res)
{
	if (p->st == PS_QUOTED_ESC) {
		if (c != '"' && c != '\\') {
			*res = fail(p, "Invalid escape in quoted string",
			    c == '\n');
			return -1;
		}
		buf_putc(&p->text, (char)c);
		p->st = PS_QUOTED;
	} else if (c == '"') {
		text_end(p);
		p->st = PS_ARGS;
	} else if (c == '\\') {
		p->st = PS_QUOTED_ESC;
	} else if (c == '\r' || c == '\n' || c == 0) {
		*res = fail(p, "Unterminated quoted string", c == '\n');
		return -1;
	} else {
		buf_putc(&p->text, (char)c);
	}
	return 0;
}

/* A byte of a literal announcement "{123+}". -1 on error. */
static int
literal_hdr_byte(struct imap_parser *p, unsigned char c, int *res)
{
	if (c >= '0' && c <= '9') {
		if (p->lit_size > (UINT64_MAX - 9) / 10) {
			*res = fail(p, "Literal too big", false);
			return -1;
		}
		p->lit_size = p->lit_size * 10 + (c - '0');
		p->lit_digits = true;
	} else if (c == '+' && p->lit_digits && p->lit_sync) {
		p->lit_sync = false;
	} else if (c == '}' && p->lit_digits) {
		p->st = PS_LIT_CRLF;
	} else {
		*res = fail(p, "Invalid literal", c == '\n');
		return -1;
	}
	return 0;
}

/* The CRLF after a literal announcement: 1 when the literal event is
   complete, 0 to go on, -1 on error. */
static int
literal_crlf_byte(struct imap_parser *p, unsigned char c, int *res,
    enum imap_pev *ev_r, const char **tag_r)
{
	if (c == '\r' && p->st == PS_LIT_CRLF) {
		p->st = PS_LIT_LF;
		return 0;
	}
	if (c != '\n') {
		*res = fail(p, "Literal not at end of line", false);
		return -1;
	}
	if (p->nnodes >= p->lim.args_max) {
		*res = fail(p, "Too many arguments", false);
		return -1;
	}
	p->st = PS_LIT_WAIT;
	*tag_r = imap_parser_cur_tag(p);
	*ev_r = IMAP_PEV_LITERAL;
	*res = 1;
	return 1;
}

/* The LF after a CR ending the line: 1 with a complete command, 0 for an
   empty line, -1 on error. */
static int
cr_byte(struct imap_parser *p, unsigned char c, int *res,
    enum imap_pev *ev_r, struct imap_cmd *cmd_r, const char **tag_r)
{
	if (c != '\n') {
		*res = fail(p, "CR without LF", false);
		return -1;
	}
	p->st = PS_ARGS;
	if (p->nnodes == 0) {
		reset(p);
		return 0;
	}
	*res = complete(p, cmd_r, tag_r);
	if (*res < 0)
		return -1;
	*ev_r = IMAP_PEV_COMMAND;
	return 1;
}

/* One byte of command text (outside literal data). Returns 0 to go on
   (*reread: read this byte again), 1 when an event is complete (*res is
   imap_parser_next's return), -1 on error (p->err set). */
static int
line_byte(struct imap_parser *p, unsigned char c, bool *reread, int *res,
    enum imap_pev *ev_r, struct imap_cmd *cmd_r, const char **tag_r)
{
	int r;

	switch (p->st) {
	case PS_ARGS:
		r = args_byte(p, c, res, cmd_r, tag_r);
		if (r == 2) {
			atom_byte(p, c);
		} else if (r == 0) {
			if (*res < 0)
				return -1;
			*ev_r = IMAP_PEV_COMMAND;
			return 1;
		}
		return 0;
	case PS_ATOM:
		r = atom_byte(p, c);
		if (r < 0) {
			*res = fail(p, "Unterminated [", c == '\n');
			return -1;
		}
		*reread = r == 0;       /* ended the atom: re-read in PS_ARGS */
		return 0;
	case PS_QUOTED:
	case PS_QUOTED_ESC:
		return quoted_byte(p, c, res);
	case PS_LIT_HDR:
		return literal_hdr_byte(p, c, res);
	case PS_LIT_CRLF:
	case PS_LIT_LF:
		return literal_crlf_byte(p, c, res, ev_r, tag_r);
	case PS_CR:
		return cr_byte(p, c, res, ev_r, cmd_r, tag_r);
	default:
		assert(0);
		return -1;
	}
}

/* Skips the rest of a bad line. -1 (fatal) past hard_max bytes. */
static int
skip_byte(struct imap_parser *p, unsigned char c)
{
	if (c == '\n') {
		reset(p);
		return 0;
	}
	if (++p->skipped > p->lim.hard_max) {
		p->fatal = true;
		p->done = true;
		return -1;
	}
	return 0;
}

/* Literal bytes: read into the tree, or discarded (a refused literal). */
static size_t
literal_bytes(struct imap_parser *p, const char *buf, size_t len)
{
	size_t take = len;

	if (take > p->lit_left)
		take = (size_t)p->lit_left;
	if (p->st == PS_LIT_DATA)
		buf_append(&p->text, buf, take);
	p->lit_left -= take;
	if (p->lit_left == 0 && p->st == PS_LIT_DATA) {
		text_end(p);
		p->st = PS_ARGS;
	} else if (p->lit_left == 0) {
		p->skipped = 0;
		p->st = PS_SKIP;
	}
	return take;
}

int
imap_parser_next(struct imap_parser *p, const char *buf, size_t len,
    size_t *used_r, enum imap_pev *ev_r, struct imap_cmd *cmd_r,
    const char **tag_r, const char **error_r)
{
	size_t i = 0;
	int res = 0, r;

	*tag_r = NULL;
	*error_r = NULL;
	if (p->done) {
		enum pstate keep = p->st;

		reset(p);
		if (keep == PS_SKIP)
			p->st = PS_SKIP;
	}
	assert(p->st != PS_LIT_WAIT);
	while (i < len) {
		unsigned char c = (unsigned char)buf[i];
		bool reread = false;

		if (p->st == PS_SKIP) {
			i++;
			if (skip_byte(p, c) < 0) {
				*used_r = i;
				*error_r = "Line too long";
				return -1;
			}
			continue;
		}
		if (p->st == PS_DISCARD || p->st == PS_LIT_DATA) {
			i += literal_bytes(p, buf + i, len - i);
			continue;
		}
		i++;
		if (++p->line_bytes > p->lim.line_max) {
			*used_r = i;
			res = fail(p, "Command line too long", c == '\n');
			goto err;
		}
		r = line_byte(p, c, &reread, &res, ev_r, cmd_r, tag_r);
		if (reread) {
			i--;
			p->line_bytes--;
		}
		if (r == 0)
			continue;
		*used_r = i;
		if (r < 0)
			goto err;
		return res;
	}
	*used_r = i;
	return 0;
err:
	*tag_r = imap_parser_cur_tag(p);
	*error_r = p->err;
	return -1;
}

size_t
imap_args_count(const struct imap_arg *a, const struct imap_arg *end)
{
	size_t n = 0;

	for (; a < end; a = imap_arg_next(a))
		n++;
	return n;
}

bool
imap_arg_is_string(const struct imap_arg *a)
{
	return a->type != IMAP_ARG_LIST && a->str != NULL;
}

bool
imap_arg_is_atom(const struct imap_arg *a, const char *word)
{
	return a->type == IMAP_ARG_ATOM && strcasecmp(a->str, word) == 0;
}
