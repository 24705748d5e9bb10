/* mime7: turns an 8-bit MIME message into a 7-bit one for a remote server
   that does not offer 8BITMIME (RFC 6152 section 3): every leaf part whose
   body has bytes >= 0x80 is re-encoded as quoted-printable, multiparts and
   message/rfc822 parts are converted part by part. Pure: no I/O. */
#ifndef POSTROOM_MIME7_H
#define POSTROOM_MIME7_H

#include <stddef.h>

#include "util.h"

#define MIME7_MAX_DEPTH 20

/* Appends the 7-bit form of msg[0..len) (CRLF lines) to out. Returns 0, or
   -1 with *error_r when it cannot be done without changing the meaning
   (8-bit bytes in a header, in a multipart's preamble or epilogue, or
   nesting deeper than MIME7_MAX_DEPTH); out then holds garbage. */
int mime7_convert(const char *msg, size_t len, struct buf *out,
    const char **error_r);

/* Quoted-printable (RFC 2045 6.7) of p[0..len) with CRLF line breaks kept
   as hard breaks and soft breaks keeping lines within 76 characters. */
void mime7_qp_encode(const char *p, size_t len, struct buf *out);

#endif
