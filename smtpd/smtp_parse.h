/* smtp_parse: the pure SMTP parsers of smtpd (RFC 5321, 1870, 6531, 3030,
   4954): a command line into verb and arguments, MAIL FROM / RCPT TO paths
   with their ESMTP parameters, EHLO arguments, BDAT arguments, and the
   incremental DATA dot-unstuffing machine. No I/O, no logging, no globals,
   no allocation: everything works on caller memory, so it can be fuzzed. */
#ifndef POSTROOM_SMTP_PARSE_H
#define POSTROOM_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SMTP_LOCAL_MAX, SMTP_DOMAIN_MAX, SMTP_PATH_MAX, SMTP_TEXT_LINE_MAX (RFC
   5321 4.5.3.1): proto_limits.h. */
#include "proto_limits.h"

enum smtp_verb {
	SMTP_V_UNKNOWN = 0,
	SMTP_V_EHLO, SMTP_V_HELO, SMTP_V_MAIL, SMTP_V_RCPT, SMTP_V_DATA,
	SMTP_V_BDAT, SMTP_V_RSET, SMTP_V_NOOP, SMTP_V_QUIT, SMTP_V_HELP,
	SMTP_V_VRFY, SMTP_V_EXPN, SMTP_V_STARTTLS, SMTP_V_AUTH,
	SMTP_V_COUNT
};

/* One command line. args points into the line (borrowed), after the single
   space that follows the verb; args_len may be 0. */
struct smtp_cmd {
	enum smtp_verb verb;
	const char *args;
	size_t args_len;
};

/* Splits line[0..len) (without CRLF) into verb and arguments. Returns 0, or
   -1 with *error_r for an empty line or a line with a NUL byte. An unknown
   verb is not an error: verb is SMTP_V_UNKNOWN. */
int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *cmd_r,
    const char **error_r);
/* The canonical upper-case name of a verb ("MAIL"), for logs. */
const char *smtp_verb_name(enum smtp_verb v);

enum smtp_body_type { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

/* RFC 3461. */
#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500
enum smtp_dsn_ret { SMTP_RET_NONE = 0, SMTP_RET_FULL, SMTP_RET_HDRS };
enum smtp_notify {
	SMTP_NOTIFY_NEVER   = 1 << 0,
	SMTP_NOTIFY_SUCCESS = 1 << 1,
	SMTP_NOTIFY_FAILURE = 1 << 2,
	SMTP_NOTIFY_DELAY   = 1 << 3,
};
/* Decodes RFC 3461 xtext p[0..len) into out[size] ("+HH" hex escapes,
   uppercase hex; only printable ASCII other than '+' and '=' as is, and
   the decoded bytes must be printable ASCII too). 0, or -1 if malformed or
   too long. */
int smtp_xtext_decode(const char *p, size_t len, char *out, size_t size);

/* What a MAIL FROM or RCPT TO line says. Strings are NUL-terminated copies
   inside the struct. address is "" for the null reverse-path <>, and
   the bare local part for RCPT TO:<Postmaster> (has_domain false). */
struct smtp_path {
	char address[SMTP_PATH_MAX + 1];
	char local[SMTP_LOCAL_MAX * 2 + 3]; /* as canonicalised (unquoted if possible) */
	char domain[SMTP_DOMAIN_MAX + 1];
	bool has_domain;
	bool is_utf8;          /* the address has non-ASCII bytes */
	/* MAIL parameters */
	bool has_size;
	uint64_t size;
	enum smtp_body_type body;
	bool smtputf8;
	bool has_auth;         /* AUTH=<...> (RFC 4954 5): accepted, ignored */
	/* RFC 3461 (DSN) parameters (smtp_parse_path_dsn). Values are
	   xtext-decoded (printable ASCII). */
	bool has_dsn;
	enum smtp_dsn_ret ret;                  /* MAIL RET= */
	char envid[SMTP_ENVID_MAX + 1];         /* MAIL ENVID=, "" if none */
	unsigned notify;                        /* RCPT NOTIFY=, enum smtp_notify */
	char orcpt[SMTP_ORCPT_MAX + 1];         /* RCPT ORCPT= "type;addr" */
};

/* Result codes of smtp_parse_path, mapped to replies by the caller. */
enum smtp_path_err {
	SMTP_PATH_OK = 0,
	SMTP_PATH_ESYNTAX,     /* 501 5.5.4 / 5.1.7 / 5.1.3 */
	SMTP_PATH_EPARAM,      /* 555 5.5.4 unknown or bad parameter */
	SMTP_PATH_EUTF8,       /* 553 5.6.7 non-ASCII address without SMTPUTF8 */
};

/* Parses the arguments of MAIL (is_mail: "FROM:<path> params") or RCPT
   ("TO:<path> params"). Tolerates a space after the colon and a path
   without angle brackets. For RCPT, utf8_ok says whether the MAIL command
   carried SMTPUTF8. Fills *path_r. */
enum smtp_path_err smtp_parse_path(const char *args, size_t len, bool is_mail,
    bool utf8_ok, struct smtp_path *path_r, const char **error_r);
/* The same, also taking the RFC 3461 DSN parameters (RET, ENVID on MAIL;
   NOTIFY, ORCPT on RCPT) when dsn is true (where EHLO offers DSN). */
enum smtp_path_err smtp_parse_path_dsn(const char *args, size_t len,
    bool is_mail, bool utf8_ok, bool dsn, struct smtp_path *path_r,
    const char **error_r);

/* Checks an address p[0..len) ("local@domain", no brackets); utf8 allows
   UTF-8 in both parts. Returns 0 or -1 with *error_r. */
int smtp_parse_address(const char *p, size_t len, bool utf8,
    struct smtp_path *path_r, const char **error_r);

/* EHLO/HELO argument: a domain or an address literal; anything printable
   without spaces is tolerated (clients send odd names). Copies it into
   out (size >= 256). 0, or -1 with *error_r if missing or not printable. */
int smtp_parse_helo(const char *args, size_t len, char *out, size_t size,
    const char **error_r);

/* BDAT arguments: "<size> [LAST]". 0 or -1 with *error_r. */
int smtp_parse_bdat(const char *args, size_t len, uint64_t *size_r,
    bool *last_r, const char **error_r);

/* Problems found in message content, whichever way it came. */
enum smtp_content_flag {
	SMTP_CONTENT_BARE_LF   = 1 << 0,
	SMTP_CONTENT_BARE_CR   = 1 << 1,
	SMTP_CONTENT_NUL       = 1 << 2,
	SMTP_CONTENT_LONG_LINE = 1 << 3,
};

/* Watches message content for bare CR/LF, NUL bytes and lines over
   SMTP_TEXT_LINE_MAX; used directly for BDAT, and inside smtp_dot. */
struct smtp_content {
	unsigned flags;        /* enum smtp_content_flag */
	size_t line_len;
	bool cr;               /* the previous byte was CR */
};
void smtp_content_init(struct smtp_content *c);
void smtp_content_feed(struct smtp_content *c, const char *p, size_t len);
/* At the end of the message: a final CR without LF is bare. */
void smtp_content_finish(struct smtp_content *c);

/* The DATA reader. Only <CRLF>.<CRLF> ends the data (RFC 5321 4.1.1.4);
   <LF>.<LF> does not, and a bare LF or CR anywhere is flagged so the caller
   can refuse the message: accepting either would allow SMTP smuggling. */
struct smtp_dot {
	int state;
	struct smtp_content content;
};
void smtp_dot_init(struct smtp_dot *d);
/* Consumes in[0..len): writes the unstuffed content to out (which must have
   room for len + 1 bytes) and sets *out_len_r and *used_r. Returns 1 when
   the terminating line was consumed (*used_r bytes, the rest belongs to the
   next command), 0 if all input was used and more is needed. The content
   written never includes the final ".CRLF"; it ends with the CRLF before
   it. */
int smtp_dot_feed(struct smtp_dot *d, const char *in, size_t len, char *out,
    size_t *out_len_r, size_t *used_r);

#endif
