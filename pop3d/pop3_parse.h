/* pop3_parse: the pure parts of pop3d. Splitting a command line into a
   keyword and arguments (RFC 1939 / 2449), message numbers, the UIDL
   string, and the streaming byte-stuffer used by RETR and TOP. No I/O, no
   logging, no globals, so every function here is unit-tested and fuzzed. */
#ifndef POSTROOM_POP3_PARSE_H
#define POSTROOM_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* POP3_KEYWORD_MAX, POP3_ARG_MAX, POP3_ARGS_MAX, POP3_LINE_MAX and
   POP3_UIDL_MAX (RFC 1939, 2449 4): proto_limits.h. */
#include "proto_limits.h"

/* One parsed command line. Arguments are spans into the line that was
   parsed: valid as long as that line is. */
struct pop3_span {
	size_t off, len;
};
struct pop3_request {
	char keyword[POP3_KEYWORD_MAX + 1];   /* upper case, NUL-terminated */
	unsigned nargs;                       /* space-separated arguments */
	struct pop3_span args[POP3_ARGS_MAX];
	/* Everything after the keyword and one space, trailing CR/LF
	   excluded (PASS takes this: passwords may contain spaces). */
	struct pop3_span rest;
	bool too_many_args;                   /* more than POP3_ARGS_MAX */
};

/* Parses one command line line[0..len) (CRLF already removed). Returns 0
   with *req_r filled, or -1 with *error_r set to a short reason for the
   -ERR reply: empty line, NUL or control bytes, a keyword that is not 3-4
   letters. Argument lengths are the command's business (an AUTH initial
   response is longer than POP3_ARG_MAX). Never reads past len. */
int pop3_parse_command(const char *line, size_t len,
    struct pop3_request *req_r, const char **error_r);

/* Parses a message number: decimal digits only (no sign, no spaces), value
   1..max. 0 or -1. */
int pop3_parse_msgnum(const char *p, size_t len, uint32_t max, uint32_t *n_r);
/* Decimal 0..UINT32_MAX, digits only. 0 or -1. */
int pop3_parse_uint(const char *p, size_t len, uint32_t *n_r);

/* Writes the UIDL of a message ("<uidvalidity-hex8>.<uid-hex8>": unique
   and stable as long as UIDVALIDITY is) into out (size >= POP3_UIDL_MAX+1). */
void pop3_uidl_format(uint32_t uidvalidity, uint32_t uid, char *out,
    size_t size);

/* The streaming byte-stuffer for RETR and TOP (RFC 1939 3): a line that
   starts with '.' gets another '.' in front. NUL bytes become 0x80 (Outlook
   hangs on NULs; the octet count stays the same). For TOP, output stops
   after the header block, the blank line and `lines` body lines. */
struct pop3_stuffer {
	bool bol;          /* the next byte starts a line */
	bool top;          /* TOP: limit the body lines */
	bool in_body;      /* the blank line after the headers was passed */
	bool line_blank;   /* the current line holds nothing but CR so far */
	bool done;         /* TOP: every byte wanted was emitted */
	uint32_t lines;    /* TOP: body lines still to send */
};

/* top: false for RETR (the whole message). */
void pop3_stuffer_init(struct pop3_stuffer *s, bool top, uint32_t lines);
/* Appends the stuffed form of in[0..len) to out. Returns the number of
   input bytes used: len, or fewer once s->done is set (TOP finished; the
   rest of the message is not wanted). */
size_t pop3_stuffer_feed(struct pop3_stuffer *s, const char *in, size_t len,
    struct buf *out);
/* Appends the end of the multi-line reply: CRLF if the message did not end
   with a line end, then ".\r\n". */
void pop3_stuffer_finish(struct pop3_stuffer *s, struct buf *out);

#endif
