/* imap_fetch_items: the FETCH attribute parser (RFC 3501 §6.4.5): items,
   macros, BODY[section]<partial> with part numbers, HEADER, HEADER.FIELDS
   (.NOT), MIME and TEXT; and the HEADER.FIELDS filter. Pure: no I/O. */
#ifndef IMAP_FETCH_ITEMS_H
#define IMAP_FETCH_ITEMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto_limits.h"
#include "util.h"

#include "imap_parser.h"

#define IMAP_FETCH_SECTION_DEPTH 16
/* IMAP_FETCH_FIELDS_MAX, IMAP_FETCH_ITEMS_MAX: proto_limits.h. */

enum imap_fi_type {
	IMAP_FI_UID, IMAP_FI_FLAGS, IMAP_FI_INTERNALDATE, IMAP_FI_SIZE, IMAP_FI_ENVELOPE, IMAP_FI_BODY,
	IMAP_FI_BODYSTRUCTURE, IMAP_FI_SECTION,
	IMAP_FI_MODSEQ,         /* RFC 7162 */
};

enum imap_sec_kind { IMAP_SEC_ALL, IMAP_SEC_HEADER, IMAP_SEC_FIELDS, IMAP_SEC_FIELDS_NOT, IMAP_SEC_MIME,
	IMAP_SEC_TEXT };

struct imap_fetch_item {
	enum imap_fi_type type;
	bool peek;
	uint32_t path[IMAP_FETCH_SECTION_DEPTH];
	size_t depth;
	enum imap_sec_kind kind;
	char **fields;
	size_t nfields;
	bool partial;
	uint64_t start, count;
	char *label;            /* "BODY[1.MIME]<0>", "RFC822.HEADER": owned */
};

struct imap_fetch_items {
	struct imap_fetch_item *v;  /* owned */
	size_t n;
	bool need_cache;            /* ENVELOPE, BODY(STRUCTURE), nested parts */
	bool need_fd;               /* some section is read from the file */
	bool set_seen;              /* a non-PEEK body section */
	bool prefetch_body;         /* more than headers is read */
};

/* Parses FETCH's second argument (an atom, a macro or a list) into out.
   0, or -1 (out is then empty). */
int imap_fetch_items_parse(const struct imap_arg *a,
    struct imap_fetch_items *out);
void imap_fetch_items_free(struct imap_fetch_items *it);

/* Appends the header fields of hdr[0..len) the item asks for (or, for
   HEADER.FIELDS.NOT, does not), then the blank line. */
void imap_fetch_filter_header(const struct imap_fetch_item *it,
    const char *hdr, size_t len, struct buf *out);

#endif
