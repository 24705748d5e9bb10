/* imap_search: SEARCH criteria (RFC 3501 §6.4.4) parsed to a tree and
   evaluated per message. Message text is fetched lazily through callbacks
   only when a key needs it. Pure apart from those callbacks. */
#ifndef IMAP_SEARCH_H
#define IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto_limits.h"

#include "imap_parser.h"
#include "imap_seqset.h"

/* IMAP_SEARCH_DEPTH_MAX, IMAP_SEARCH_NODES_MAX: proto_limits.h. */

#define IMAP_SEARCH_NEED_HEADER (1u << 0)
#define IMAP_SEARCH_NEED_BODY   (1u << 1)   /* the whole message */

struct imap_search;

enum imap_search_perr {
	IMAP_SEARCH_OK = 0,
	IMAP_SEARCH_BAD,        /* syntax: BAD */
	IMAP_SEARCH_BADCHARSET, /* NO [BADCHARSET (UTF-8 US-ASCII)] */
};

/* Parses the SEARCH arguments [args, end) (with an optional leading
   CHARSET). Owned tree in *s_r; free with imap_search_free. */
enum imap_search_perr imap_search_parse(const struct imap_arg *args,
    const struct imap_arg *end, struct imap_search **s_r,
    const char **error_r);
void imap_search_free(struct imap_search **s);
/* What the criteria need to read (IMAP_SEARCH_NEED_*). */
unsigned imap_search_needs(const struct imap_search *s);

/* Binds the criteria to a mailbox: sequence sets resolved against the
   highest MSN and UID, keyword names to bits of names[0..n). Once per
   search (it resolves '*' in place). */
void imap_search_bind(struct imap_search *s, uint32_t max_msn,
    uint32_t max_uid, const char (*names)[65], unsigned n);

/* One message as the evaluator sees it. */
struct imap_search_msg {
	uint32_t msn, uid;
	uint32_t flags;         /* STORE_F_* bits */
	bool recent;
	uint32_t keywords;
	uint64_t size;
	int64_t internaldate;
	int32_t internal_tz;
	uint64_t modseq;        /* RFC 7162 MODSEQ key */
	/* Lazy loaders: 0 with a borrowed buffer valid for this message, or
	   -1 (the key then does not match). */
	int (*get_header)(void *ctx, const char **p_r, size_t *len_r);
	int (*get_message)(void *ctx, const char **p_r, size_t *len_r,
	    const void **parts_r, size_t *plen_r);
	void *ctx;
};

bool imap_search_match(struct imap_search *s, const struct imap_search_msg *m);

/* SEARCHRES (RFC 5182): binds "$" keys to the saved UIDs (sorted,
   borrowed until the search is freed). */
void imap_search_bind_saved(struct imap_search *s, const uint32_t *uids,
    size_t n);
/* Whether the criteria have a MODSEQ key (the reply then ends with
   "(MODSEQ n)", RFC 7162 §3.1.5) / a "$" key. */
bool imap_search_has_modseq(const struct imap_search *s);
bool imap_search_has_saved(const struct imap_search *s);

/* "1-Feb-1994" -> days since 1970-01-01. 0 or -1. Pure. */
int imap_date_parse(const char *s, size_t len, int64_t *day_r);
/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t imap_days_from_civil(int y, unsigned m, unsigned d);
/* Case-insensitive (ASCII) substring search. */
bool imap_substr_ci(const char *hay, size_t hlen, const char *needle,
    size_t nlen);

#endif
