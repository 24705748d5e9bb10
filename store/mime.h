/* mime: a pure MIME parser (RFC 5322 / 2045-2049 / 2231 / 2047) over a
   whole message in memory. It computes what IMAP FETCH needs once, at
   delivery: ENVELOPE, BODYSTRUCTURE and BODY as ready-to-send IMAP strings,
   and a compact part table for BODY[section] lookups. It never fails: any
   input yields a structure (garbage is text/plain). No I/O, no globals. */
#ifndef POSTROOM_MIME_H
#define POSTROOM_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util.h"

#define MIME_MAX_DEPTH 32   /* deeper nesting is treated as opaque text */
#define MIME_MAX_PARTS 2000

struct mime_info {
	struct buf envelope;        /* IMAP ENVELOPE list */
	struct buf bodystructure;   /* BODYSTRUCTURE, with extension data */
	struct buf body;            /* BODY, without extension data */
	struct buf parts;           /* serialized part table */
};

/* Parses msg[0..len) (CRLF line ends expected, bare LF tolerated). Fills
   info (bufs owned; free with mime_info_free). Always returns 0. */
int mime_parse(const char *msg, size_t len, struct mime_info *info);
void mime_info_free(struct mime_info *info);

/* Byte ranges of one part, for BODY[section]. */
struct mime_span {
	uint64_t hdr_off, hdr_len;   /* the part's MIME header, incl. blank line */
	uint64_t body_off, body_len; /* the part's body */
	bool is_multipart;
	bool is_message;             /* message/rfc822 (as Dovecot: not global): */
	uint64_t msg_hdr_off, msg_hdr_len;   /* the encapsulated message's header */
	uint64_t msg_body_off, msg_body_len; /* and its text */
};
/* path[0..depth) are part numbers ("1.2.3" = {1,2,3}); depth 0 is the
   whole message (hdr = its header, body = its text). Follows RFC 3501
   6.4.5: part 1 of a non-multipart message is its body; parts of a
   message/rfc822 part are those of the encapsulated message's body.
   0, or -1 if there is no such part (or the table is malformed). */
int mime_section_find(const void *parts, size_t len, const uint32_t *path,
    size_t depth, struct mime_span *span_r);

/* Header helpers for SEARCH and HEADER.FIELDS. */

/* Appends the unfolded value of every field called name (case-insensitive)
   in hdr[0..len) to out, separated by '\n'. Returns how many were found. */
int mime_header_get(const char *hdr, size_t len, const char *name,
    struct buf *out);
/* Appends every address of the fields called name in hdr[0..len), parsed
   as for ENVELOPE (comments, routes, groups), as "display name\0local@domain\0"
   with the display name's encoded words decoded; for SEARCH FROM/TO/CC/BCC.
   Returns how many addresses. */
size_t mime_addresses_text(const char *hdr, size_t len, const char *name,
    struct buf *out);
/* Decodes RFC 2047 encoded words to UTF-8 (UTF-8, US-ASCII, ISO-8859-1,
   Windows-1252 and ISO-8859-15 converted; other charsets kept as decoded
   bytes). */
void mime_decode_words(const char *in, size_t len, struct buf *out);
/* Appends the text of every text/ part of msg, transfer encoding undone and
   charset converted as above, for BODY and TEXT search. */
void mime_body_text(const char *msg, size_t len, const void *parts,
    size_t plen, struct buf *out);
/* Parses an RFC 5322 date (obsolete forms too). 0 with the UTC time and the
   zone offset in minutes, or -1. */
int mime_parse_date(const char *s, size_t len, time_t *t_r, int *tz_min_r);

#endif
