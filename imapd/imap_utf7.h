/* imap_utf7: modified UTF-7 mailbox names (RFC 3501 §5.1.3) to and from
   UTF-8. Pure: mailbox name rules (INBOX, '/', validity) are
   imap_commands_util.c's. */
#ifndef IMAP_UTF7_H
#define IMAP_UTF7_H

#include <stddef.h>

#include "util.h"

/* Decodes in[0..len) and appends the UTF-8 to out. 0, or -1 for invalid
   modified UTF-7 (bad base64, an encoded printable ASCII char, lone
   surrogates, leftover bits, 8-bit or control bytes). */
int imap_utf7_to_utf8(const char *in, size_t len, struct buf *out);
/* Encodes a NUL-terminated UTF-8 name. 0, or -1 for invalid UTF-8. */
int imap_utf8_to_utf7(const char *in, struct buf *out);

#endif
