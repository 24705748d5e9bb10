/* imap_parser: the pure, incremental IMAP command parser. Bytes in, one
   command (tag, name, argument tree) out. It never does I/O: a literal
   announcement is reported to the caller, which checks the size and answers
   "+ " or NO/BAD before any literal byte is read. Limits are fixed at
   creation; no allocation is ever sized from a number the peer sent. */
#ifndef IMAP_PARSER_H
#define IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum imap_arg_type {
	IMAP_ARG_ATOM,      /* also NIL, numbers, \Flags, BODY[...]<..> */
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,   /* str NULL if the session consumed it (APPEND) */
	IMAP_ARG_LIST,      /* children follow in preorder: see imap_arg_next */
};

/* One node of the argument tree. Nodes are stored in preorder in one array;
   a list's children are the next `span` nodes. Strings are NUL-terminated
   (literals may also contain NULs: use len). Pool: valid until the next
   imap_parser_next() call. */
struct imap_arg {
	enum imap_arg_type type;
	const char *str;
	size_t len;
	size_t span;        /* descendants (lists); 0 otherwise */
	size_t lit_size;    /* IMAP_ARG_LITERAL: announced size */
};

struct imap_cmd {
	const char *tag;
	const char *name;           /* as sent; compare case-insensitively */
	const struct imap_arg *args; /* top-level arguments, see imap_arg_next */
	const struct imap_arg *args_end;
};

/* Iteration: first child of a list is a + 1, the one after a is
   imap_arg_next(a); a list's children end at imap_arg_list_end(a). */
static inline const struct imap_arg *
imap_arg_next(const struct imap_arg *a)
{
	return a + 1 + a->span;
}
static inline const struct imap_arg *
imap_arg_list_end(const struct imap_arg *a)
{
	return a + 1 + a->span;
}
/* Number of arguments in [a, end). */
size_t imap_args_count(const struct imap_arg *a, const struct imap_arg *end);
/* True for atoms, quoted strings and read literals (an IMAP astring). */
bool imap_arg_is_string(const struct imap_arg *a);
bool imap_arg_is_atom(const struct imap_arg *a, const char *word);

struct imap_parser_limits {
	size_t line_max;        /* bytes of command text outside literals: BAD */
	size_t hard_max;        /* bytes skipped without a LF: fatal (BYE) */
	size_t literal_total;   /* sum of literals read into the parser */
	size_t depth_max;       /* list nesting */
	size_t args_max;        /* nodes per command */
};

enum imap_pev {
	IMAP_PEV_COMMAND,   /* *cmd_r is a complete command */
	IMAP_PEV_LITERAL,   /* a literal was announced: see lit_size/lit_sync;
	                       call one of the imap_parser_literal_* functions
	                       before the next imap_parser_next */
};

struct imap_parser;

/* Owned; limits copied. */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *lim);
void imap_parser_free(struct imap_parser **p);

/* Parses from buf[0..len). Returns 1 with *ev_r set (and *cmd_r for a
   command), 0 when everything was consumed and more is needed, -1 on a
   syntax or limit error with *error_r set and the tag (may be NULL) in
   *tag_r: the rest of the bad line is then skipped by later calls, and
   imap_parser_is_fatal() tells whether the session must end (BYE). Always
   sets *used_r to the bytes consumed; never reads past len. */
int imap_parser_next(struct imap_parser *p, const char *buf, size_t len,
    size_t *used_r, enum imap_pev *ev_r, struct imap_cmd *cmd_r,
    const char **tag_r, const char **error_r);

/* After IMAP_PEV_LITERAL: */
uint64_t imap_parser_lit_size(const struct imap_parser *p);
bool imap_parser_lit_sync(const struct imap_parser *p);
/* The tag and the command words seen so far (for the literal decision:
   e.g. APPEND's message literal). Borrowed. */
const char *imap_parser_cur_tag(const struct imap_parser *p);
const char *imap_parser_cur_name(const struct imap_parser *p);
/* Number of complete top-level arguments seen so far in this command. */
size_t imap_parser_cur_nargs(const struct imap_parser *p);
/* At a literal announcement outside any list: the complete top-level
   arguments before the literal (APPEND's mailbox, flags, date). 0, or -1
   inside a list. Pool: valid until the literal decision. */
int imap_parser_cur_args(struct imap_parser *p, const struct imap_arg **args_r,
    const struct imap_arg **end_r);
/* Whether the announced literal fits the limits for reading it into the
   tree (literal_total, args_max). */
bool imap_parser_literal_fits(const struct imap_parser *p);
/* Read the literal into the argument tree; only if literal_fits. */
void imap_parser_literal_read(struct imap_parser *p);
/* The caller consumes the literal bytes itself (streamed APPEND); the
   parser records an IMAP_ARG_LITERAL with str NULL and resumes after it. */
void imap_parser_literal_external(struct imap_parser *p);
/* The command is rejected: the parser resets. For a non-synchronizing
   literal its bytes and the rest of the line are discarded first. */
void imap_parser_literal_reject(struct imap_parser *p);

bool imap_parser_is_fatal(const struct imap_parser *p);
/* Frees a large buffer left by a big command (idle memory). */
void imap_parser_trim(struct imap_parser *p);
/* Between commands (the last one returned, nothing of the next parsed
   yet): frees every buffer, for a session that will wait long (IDLE).
   The args of the last command are invalid afterwards. Returns false and
   does nothing if a command is partly parsed. */
bool imap_parser_release(struct imap_parser *p);

#endif
