/* mime_private: what the mime_*.c files share (lexing of RFC 5322/2045
   header values, IMAP string output, the part-table layout). Never
   included outside store/. */
#ifndef POSTROOM_MIME_PRIVATE_H
#define POSTROOM_MIME_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mime.h"
#include "util.h"

/* Part table: a 12-byte header ("PRM1", u32 count, u32 root flags unused)
   then count records of MIME_REC_SIZE bytes in pre-order, little endian.
   A record's "skip" is the index just past its subtree, so children of a
   multipart are found by hopping skip to skip, without allocation. */
#define MIME_TAB_MAGIC "PRM1"
#define MIME_TAB_HDR 12
#define MIME_REC_SIZE 24
enum mime_kind { MIME_KIND_LEAF = 0, MIME_KIND_MULTI = 1, MIME_KIND_MESSAGE = 2 };
enum mime_cte { MIME_CTE_PLAIN = 0, MIME_CTE_QP = 1, MIME_CTE_BASE64 = 2 };
enum mime_cs {
	MIME_CS_UTF8 = 0, MIME_CS_ASCII, MIME_CS_LATIN1, MIME_CS_CP1252,
	MIME_CS_LATIN9, MIME_CS_OTHER
};
#define MIME_REC_TEXT 0x01      /* flags: a text/ leaf (for body_text) */

struct mime_rec {
	uint32_t hdr_off, hdr_len, body_off, body_len, skip;
	uint8_t kind, cte, charset, flags;
};
/* Reads record i of a validated table; false if i is out of range. */
bool mime_tab_rec(const unsigned char *tab, size_t len, uint32_t i,
    struct mime_rec *r);

/* One header field: name and raw (folded) value, pointers into the input. */
struct mime_field {
	const char *name, *value;
	size_t name_len, value_len;
};
struct mime_hdr_iter {
	const char *p, *end;
};
void mime_hdr_iter_init(struct mime_hdr_iter *it, const char *hdr, size_t len);
/* 1 with the next field, 0 at the end of the header (blank line or end). */
int mime_hdr_next(struct mime_hdr_iter *it, struct mime_field *f);
bool mime_field_is(const struct mime_field *f, const char *name);

/* Unfolding as Dovecot sends Date, Message-ID, Content-ID...: whitespace
   before the first line break dropped, every CR and LF removed, the rest
   (trailing whitespace too) kept. */
void mime_unfold(const char *v, size_t n, struct buf *out);
/* Appends an IMAP string "for humans" (Dovecot's rule for Subject and
   display names): whitespace runs, CR and LF become one space, leading
   and trailing whitespace go. */
void mime_imap_human(struct buf *out, const char *p, size_t n);

/* Appends an IMAP string: quoted with \" and \\ escapes, or a literal when
   it has CR, LF, NUL or 8-bit bytes (NUL is sent as U+FFFD). */
void mime_imap_str(struct buf *out, const char *p, size_t n);
/* Same, of the unfolded value; NIL when v is NULL. */
void mime_imap_unfolded(struct buf *out, const char *v, size_t n);

/* RFC 822 lexing over a value (CR/LF count as whitespace). */
void mime_skip_cfws(const char **pp, const char *end);
/* Skips a comment at *pp (which is '('); appends its text to out if not
   NULL. */
void mime_skip_comment(const char **pp, const char *end, struct buf *out);
/* A quoted string at *pp (which is '"'): appends the unescaped text;
   false if the closing quote is missing. */
bool mime_read_quoted(const char **pp, const char *end, struct buf *out);

/* The ENVELOPE of the message whose header is hdr[0..len). */
void mime_envelope_write(struct buf *out, const char *hdr, size_t len);

/* Charset name to enum mime_cs. */
enum mime_cs mime_charset_id(const char *name, size_t n);
/* Appends in[0..n) converted to UTF-8 from the charset named cs[0..cs_len)
   (glibc iconv; a charset it does not know: as is). */
void mime_text_to_utf8(const char *cs, size_t cs_len, const char *in,
    size_t n, struct buf *out);
/* The charset parameter of the Content-Type in the part header h[0..n),
   into name (NUL-terminated); its length, or 0 if there is none or it does
   not fit. */
size_t mime_part_charset(const char *h, size_t n, char *name, size_t size);

#endif
