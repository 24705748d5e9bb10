/* imap_seqset: IMAP sequence sets ("1:3,7,9:*"), for MSNs and UIDs.
   Pure: resolving "*" and mapping to view indexes are the caller's
   (imap_commands_util.c). */
#ifndef IMAP_SEQSET_H
#define IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto_limits.h"

/* "*" before imap_seqset_resolve: 0, the one number a set never holds,
   so that every number from 1 to 4294967295 can be written. */
#define IMAP_SEQ_STAR 0
/* IMAP_SEQSET_RANGES_MAX is in proto_limits.h. */

struct imap_range {
	uint32_t lo, hi;
};

struct imap_seqset {
	struct imap_range *r;   /* owned */
	size_t n;
	bool has_star;
};

/* Parses s[0..len). 0 with an owned set (free with imap_seqset_free), or -1
   with *error_r (zero, bad syntax, more than max_ranges ranges). */
int imap_seqset_parse(const char *s, size_t len, size_t max_ranges,
    struct imap_seqset *set_r, const char **error_r);
void imap_seqset_free(struct imap_seqset *set);
/* Replaces '*' by star (the highest MSN or UID; 0 for an empty mailbox,
   which then matches nothing), orders each range and sorts and merges the
   ranges, so that imap_seqset_has works. */
void imap_seqset_resolve(struct imap_seqset *set, uint32_t star);
/* After resolve: whether x is in the set (binary search). */
bool imap_seqset_has(const struct imap_seqset *set, uint32_t x);
/* After resolve: the largest number in the set (0 if empty). */
uint32_t imap_seqset_max(const struct imap_seqset *set);
/* Writes the set as "1:3,7" (resolved form) into out; for COPYUID. */
struct buf;
void imap_seqset_format(const uint32_t *sorted, size_t n, struct buf *out);

#endif
