/* smtp_reply: the pure parser of what a remote SMTP server answers (mtad's
   client side): multi-line replies, the RFC 3463 enhanced status code, and
   the EHLO keywords. Every line, the line count and the kept text are
   bounded, whatever a hostile remote sends. No I/O, no logging. */
#ifndef POSTROOM_SMTP_REPLY_H
#define POSTROOM_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX   2048   /* one line with CRLF (RFC 5321: 512) */
#define SMTP_REPLY_LINES_MAX  100    /* lines of one reply */
#define SMTP_REPLY_TEXT_MAX   4096   /* text kept; the rest is dropped */

struct smtp_reply {
	int code;                   /* 200..599 */
	char enhanced[16];          /* "5.1.1", "" when the remote gave none */
	size_t nlines;
	/* The lines' texts (after "NNN-" / "NNN "), each NUL-terminated, one
	   after the other; lines past the text bound are counted but not
	   kept (nkept <= nlines). */
	size_t nkept;
	char text[SMTP_REPLY_TEXT_MAX];
	size_t text_len;
};

struct smtp_reply_parser {
	struct smtp_reply r;
	bool started;               /* a continuation line was seen */
};

void smtp_reply_parser_init(struct smtp_reply_parser *p);

/* Parses buf[0..len). Consumes complete lines only (CRLF or a bare LF ends
   a line). Returns 1 when a whole reply was read: *reply_r points into p
   (valid until the next call) and *used_r says how much of buf it took; the
   parser is ready for the next reply. Returns 0 when more input is needed
   (*used_r: complete continuation lines consumed, possibly 0). Returns -1
   with *error_r on a malformed or over-long reply (the connection must be
   dropped). Never reads past len. */
int smtp_reply_parse(struct smtp_reply_parser *p, const char *buf, size_t len,
    size_t *used_r, const struct smtp_reply **reply_r, const char **error_r);

/* The i-th kept line of r (borrowed), or NULL. */
const char *smtp_reply_line(const struct smtp_reply *r, size_t i);

/* Writes "CODE text of line 1 / text of line 2..." (the enhanced code, when
   given, is the start of line 1's text) into out, printable ASCII only,
   truncated to fit: the one-line form used in logs, in the queue's last
   reply and in a DSN's Diagnostic-Code. out is "" when size < 8. Returns
   out. */
const char *smtp_reply_oneline(const struct smtp_reply *r, char *out,
    size_t size);

/* The first word of the first line (the server's name in a greeting or an
   EHLO reply) into out; "" if none. */
void smtp_reply_first_word(const struct smtp_reply *r, char *out, size_t size);

#define SMTP_AUTH_PLAIN   0x01
#define SMTP_AUTH_LOGIN   0x02

struct smtp_ehlo {
	bool starttls, pipelining, eightbitmime, smtputf8, dsn, enhanced;
	bool has_size;
	uint64_t size;              /* SIZE n; 0 = no declared limit */
	unsigned auth;              /* SMTP_AUTH_* offered */
};

/* Reads the keywords of a 250 EHLO reply (lines after the first). Unknown
   keywords are ignored; a malformed SIZE argument counts as no limit. */
void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e);

#endif
