/* imap_ext: the IMAP extensions beyond RFC 3501 (IDLE, NAMESPACE, ID,
   ENABLE, UNSELECT, UIDPLUS, MOVE, COMPRESS=DEFLATE, STATUS=SIZE,
   APPENDLIMIT): their handlers, the per-session extension state hung on
   imap_session.ext, and the hooks the core session calls. Internal to
   imapd. */
#ifndef IMAP_EXT_H
#define IMAP_EXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_session.h"

#define IMAP_SERVER_NAME    "Postroom"
#define IMAP_SERVER_VERSION "0.1"

/* Seconds between "* OK Still here" during IDLE. Rare on purpose: every
   untagged line makes Thunderbird leave and re-enter IDLE (CLIENTS.md
   1.6). $POSTROOM_IMAP_IDLE_KEEPALIVE overrides it (tests). */
#define IMAP_IDLE_KEEPALIVE 240.0

/* Extensions a client can turn on with ENABLE (RFC 5161); bits of
   imap_ext_enabled(). CONDSTORE/QRESYNC add their bit and a row in
   cmd_ext.c's enable table. */
enum imap_ext_bit {
	IMAP_EXT_NONE = 0,
	IMAP_EXT_CONDSTORE = 1 << 0,    /* RFC 7162 (imap_ext2.h) */
	IMAP_EXT_QRESYNC = 1 << 1,
};

/* ---- cmd_ext.c ---- */

imap_cmd_fn imap_cmd_namespace, imap_cmd_id, imap_cmd_enable,
    imap_cmd_unselect;
/* Appends the extension capabilities for s's state to out (each with a
   leading space). Called by imap_capability_string. */
void imap_ext_capabilities(const struct imap_session *s, struct buf *out);
/* Bits (enum imap_ext_bit) the client ENABLEd in this session. */
unsigned imap_ext_enabled(const struct imap_session *s);
/* Frees s->ext (IDLE timers included). From session_closed. */
void imap_ext_free(struct imap_session *s);

/* ---- cmd_idle.c ---- */

imap_cmd_fn imap_cmd_idle;
/* True while s is in IDLE: its input is the DONE line, not commands. */
bool imap_idle_active(const struct imap_session *s);
/* Reads the DONE line if one is buffered (consuming only that line, so a
   command pipelined after DONE stays for the parser). Returns true if it
   consumed a line (the caller loops), false if it needs more input. */
bool imap_idle_input(struct imap_session *s);

/* ---- cmd_copy.c, cmd_move.c ---- */

/* MOVE / UID MOVE (RFC 6851, cmd_copy.c) and EXPUNGE / UID EXPUNGE
   (RFC 4315, cmd_move.c). */
imap_cmd_fn imap_cmd_move, imap_cmd_expunge_any;
/* Appends "COPYUID uidvalidity src dst" (without brackets) for the pairs
   with dst[i] != 0; both lists ascending. Returns false (nothing added)
   if no pair was copied. */
bool imap_ext_copyuid(struct buf *b, uint32_t uidvalidity,
    const uint32_t *src, const uint32_t *dst, size_t n);

/* ---- cmd_compress.c ---- */

imap_cmd_fn imap_cmd_compress;

#endif
