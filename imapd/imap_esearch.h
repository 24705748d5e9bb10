/* imap_esearch: SEARCH RETURN options (ESEARCH, RFC 4731; SAVE, RFC
   5182) and the "* ESEARCH" reply. Pure: no I/O; unit-tested and fuzzed
   (fuzz_imap_esearch). */
#ifndef IMAP_ESEARCH_H
#define IMAP_ESEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#include "imap_parser.h"

#define IMAP_ESR_MIN   (1u << 0)
#define IMAP_ESR_MAX   (1u << 1)
#define IMAP_ESR_ALL   (1u << 2)
#define IMAP_ESR_COUNT (1u << 3)
#define IMAP_ESR_SAVE  (1u << 4)

/* If *ap is "RETURN (options)", parses the options into *opts_r (an
   empty list means ALL), advances *ap past them and returns 1; returns 0
   (nothing consumed, *opts_r 0) if there is no RETURN; -1 with *error_r
   on bad syntax or an unknown option. */
int imap_esearch_parse_return(const struct imap_arg **ap,
    const struct imap_arg *end, unsigned *opts_r, const char **error_r);

/* Appends "* ESEARCH (TAG "tag")[ UID][ MIN n][ MAX n][ ALL set][ COUNT n]
   [ MODSEQ m]\r\n" for the ascending nums[0..n). modseq 0: none. Nothing
   for RETURN (SAVE) alone (RFC 5182 §2.4). */
void imap_esearch_format(struct buf *out, const char *tag, bool uid,
    unsigned opts, const uint32_t *nums, size_t n, uint64_t modseq);

/* The MODSEQ to give with an ESEARCH whose matches have the mod-sequences
   modseqs[0..n), in ascending message order (RFC 4731 §3.2): with MIN or
   MAX and neither ALL nor COUNT, the highest of the messages returned
   (MIN's, MAX's or both); otherwise the highest of all matches. 0 if n
   is 0. */
uint64_t imap_esearch_modseq(unsigned opts, const uint64_t *modseqs,
    size_t n);

/* The part of the result SAVE keeps (RFC 5182 §2.4: only MIN and/or MAX
   when they come without ALL and COUNT): writes its index range of
   nums[0..n) as at most two indexes into idx_r; returns how many. With
   the whole result to save, returns SIZE_MAX. */
size_t imap_esearch_save_part(unsigned opts, size_t n, size_t idx_r[2]);

#endif
