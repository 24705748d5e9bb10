/* milter_codec: the Sendmail milter protocol (version 6, as Postfix speaks
   it), pure: encoders for the MTA's commands and a bounded decoder for the
   filter's replies. A packet is a 4-byte big-endian length (the command
   byte and its data), the command byte, then the data. No I/O here. */
#ifndef POSTROOM_MILTER_CODEC_H
#define POSTROOM_MILTER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MILTER_VERSION      6
#define MILTER_MAX_PACKET   (1024 * 1024)   /* larger replies: garbage */
#define MILTER_CHUNK_SIZE   65535           /* BODY data per packet */

/* Commands (MTA to filter). */
#define SMFIC_ABORT     'A'
#define SMFIC_BODY      'B'
#define SMFIC_CONNECT   'C'
#define SMFIC_MACRO     'D'
#define SMFIC_BODYEOB   'E'
#define SMFIC_HELO      'H'
#define SMFIC_QUIT_NC   'K'
#define SMFIC_HEADER    'L'
#define SMFIC_MAIL      'M'
#define SMFIC_EOH       'N'
#define SMFIC_OPTNEG    'O'
#define SMFIC_QUIT      'Q'
#define SMFIC_RCPT      'R'
#define SMFIC_DATA      'T'
#define SMFIC_UNKNOWN   'U'

/* Replies (filter to MTA). */
#define SMFIR_ADDRCPT   '+'
#define SMFIR_DELRCPT   '-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_SHUTDOWN  '4'
#define SMFIR_ACCEPT    'a'
#define SMFIR_REPLBODY  'b'
#define SMFIR_CONTINUE  'c'
#define SMFIR_DISCARD   'd'
#define SMFIR_CHGFROM   'e'
#define SMFIR_CONN_FAIL 'f'
#define SMFIR_ADDHEADER 'h'
#define SMFIR_INSHEADER 'i'
#define SMFIR_SETSYMLIST 'l'
#define SMFIR_CHGHEADER 'm'
#define SMFIR_PROGRESS  'p'
#define SMFIR_QUARANTINE 'q'
#define SMFIR_REJECT    'r'
#define SMFIR_SKIP      's'
#define SMFIR_TEMPFAIL  't'
#define SMFIR_REPLYCODE 'y'

/* Actions a filter may take (negotiated). */
#define SMFIF_ADDHDRS   0x001u
#define SMFIF_CHGBODY   0x002u
#define SMFIF_ADDRCPT   0x004u
#define SMFIF_DELRCPT   0x008u
#define SMFIF_CHGHDRS   0x010u
#define SMFIF_QUARANTINE 0x020u
#define SMFIF_CHGFROM   0x040u
#define SMFIF_ADDRCPT_PAR 0x080u
#define SMFIF_SETSYMLIST 0x100u

/* Protocol steps a filter may leave out or not answer. */
#define SMFIP_NOCONNECT 0x00000001u
#define SMFIP_NOHELO    0x00000002u
#define SMFIP_NOMAIL    0x00000004u
#define SMFIP_NORCPT    0x00000008u
#define SMFIP_NOBODY    0x00000010u
#define SMFIP_NOHDRS    0x00000020u
#define SMFIP_NOEOH     0x00000040u
#define SMFIP_NR_HDR    0x00000080u
#define SMFIP_NOUNKNOWN 0x00000100u
#define SMFIP_NODATA    0x00000200u
#define SMFIP_SKIP      0x00000400u
#define SMFIP_RCPT_REJ  0x00000800u
#define SMFIP_NR_CONN   0x00001000u
#define SMFIP_NR_HELO   0x00002000u
#define SMFIP_NR_MAIL   0x00004000u
#define SMFIP_NR_RCPT   0x00008000u
#define SMFIP_NR_DATA   0x00010000u
#define SMFIP_NR_UNKN   0x00020000u
#define SMFIP_NR_EOH    0x00040000u
#define SMFIP_NR_BODY   0x00080000u
#define SMFIP_HDR_LEADSPC 0x00100000u

/* What Postroom offers: header changes and quarantine; every step may be
   left out or left unanswered, and SKIP is understood. */
#define MILTER_OUR_ACTIONS (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE)
#define MILTER_OUR_PROTOCOL (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | \
    SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NR_HDR | \
    SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP | SMFIP_NR_CONN | \
    SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA | \
    SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY)

/* ---- encoders: each appends one whole packet to b ---- */
void milter_enc_optneg(struct buf *b, uint32_t version, uint32_t actions,
    uint32_t protocol);
/* Macros for the step cmd: names[i] = values[i], n pairs. */
void milter_enc_macro(struct buf *b, char cmd, const char *const *names,
    const char *const *values, size_t n);
/* family: '4', '6', 'U' (unix, addr is a path) or 'U' unknown without
   port/addr when addr is NULL. */
void milter_enc_connect(struct buf *b, const char *hostname, char family,
    uint16_t port, const char *addr);
void milter_enc_helo(struct buf *b, const char *helo);
/* MAIL or RCPT: "<address>" then ESMTP arguments, each NUL-terminated. */
void milter_enc_args(struct buf *b, char cmd, const char *const *args,
    size_t n);
void milter_enc_header(struct buf *b, const char *name, const char *value);
/* n <= MILTER_CHUNK_SIZE. */
void milter_enc_body(struct buf *b, const void *p, size_t n);
/* A command without data: EOH, DATA, BODYEOB, ABORT, QUIT, QUIT_NC. */
void milter_enc_simple(struct buf *b, char cmd);

/* ---- decoder ---- */
/* Finds one packet in p[0..len). 1: a packet (*cmd, *data, *dlen; *used
   bytes to consume); 0: more bytes needed; -1: a bad length (0 or over
   MILTER_MAX_PACKET). */
int milter_frame(const unsigned char *p, size_t len, size_t *used,
    char *cmd, const unsigned char **data, size_t *dlen);

enum milter_rtype {
	MILTER_R_OPTNEG = 1,
	MILTER_R_ACCEPT,
	MILTER_R_CONTINUE,
	MILTER_R_REJECT,
	MILTER_R_TEMPFAIL,
	MILTER_R_DISCARD,
	MILTER_R_REPLYCODE,     /* text: "4xx ..." or "5xx ..." */
	MILTER_R_ADDHEADER,     /* name, value */
	MILTER_R_CHGHEADER,     /* index (1-based among same-named; an
	                           empty value deletes), name, value */
	MILTER_R_INSHEADER,     /* index (position, 0 = top), name, value */
	MILTER_R_QUARANTINE,    /* text: the reason */
	MILTER_R_PROGRESS,
	MILTER_R_SKIP,
	MILTER_R_OTHER,         /* understood but not supported here (body
	                           or recipient changes, SETSYMLIST...) */
};

/* Pointers go into the packet data (which must stay alive); strings are
   NUL-terminated inside it. */
struct milter_reply {
	enum milter_rtype type;
	char cmd;
	uint32_t version, actions, protocol;    /* OPTNEG */
	uint32_t index;
	const char *name, *value, *text;
};

/* Decodes one reply packet (as milter_frame returned it). 0, or -1 with
   a static reason: unknown command, truncated data, missing NUL, a
   header name that is not a field name, a REPLYCODE that is not one
   line of "4xx"/"5xx" text. */
int milter_reply_parse(char cmd, const unsigned char *data, size_t dlen,
    struct milter_reply *out, const char **err);

/* True for a valid header field name (RFC 5322 ftext, 1..997 bytes). */
bool milter_header_name_ok(const char *name);
/* Appends "name: value" with CRLF line ends: the value's line breaks (LF,
   CRLF or CR) become CRLF, a continuation line that does not start with
   white space gets a leading tab, empty lines are dropped. */
void milter_header_format(struct buf *b, const char *name,
    const char *value);

#endif
