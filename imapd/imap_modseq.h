/* imap_modseq: the pure parsers of CONDSTORE/QRESYNC syntax (RFC 7162):
   SELECT/EXAMINE parameters "(CONDSTORE)" and "(QRESYNC (uidvalidity
   modseq [known-uids [(seq-msns seq-uids)]]))", the FETCH modifiers
   "(CHANGEDSINCE n [VANISHED])" and the STORE modifier "(UNCHANGEDSINCE
   n)". No I/O; unit-tested and fuzzed (fuzz_imap_esearch). */
#ifndef IMAP_MODSEQ_H
#define IMAP_MODSEQ_H

#include <stdbool.h>
#include <stdint.h>

#include "imap_parser.h"
#include "imap_seqset.h"

/* RFC 7162 §7: mod-sequence-value is at most 2^63 - 1. */
#define IMAP_MODSEQ_MAX 9223372036854775807ull

struct imap_select_params {
	bool condstore;             /* CONDSTORE given */
	bool qresync;               /* QRESYNC given */
	uint32_t uidvalidity;
	uint64_t modseq;
	bool have_known;
	struct imap_seqset known;   /* known-uids, owned */
	bool have_match;
	struct imap_seqset match_msns, match_uids;  /* owned */
};

/* Parses the optional list after SELECT's mailbox. 0, or -1 with
   *error_r; p is always safe to free with imap_select_params_free. */
int imap_select_params_parse(const struct imap_arg *list,
    struct imap_select_params *p, const char **error_r);
void imap_select_params_free(struct imap_select_params *p);

struct imap_fetch_mods {
	bool changedsince;
	uint64_t since;
	bool vanished;
};
/* FETCH's modifier list. VANISHED without CHANGEDSINCE is an error. */
int imap_fetch_mods_parse(const struct imap_arg *list,
    struct imap_fetch_mods *m, const char **error_r);

/* STORE's modifier list: UNCHANGEDSINCE n (0 is valid: always fails). */
int imap_store_mods_parse(const struct imap_arg *list, uint64_t *since_r,
    const char **error_r);

/* A mod-sequence number (digits only, <= IMAP_MODSEQ_MAX). 0 or -1. */
int imap_modseq_parse(const struct imap_arg *a, uint64_t *v_r);

#endif
