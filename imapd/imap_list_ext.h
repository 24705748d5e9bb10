/* imap_list_ext: the LIST-EXTENDED argument parser (RFC 5258: selection
   options, one or several patterns, RETURN options; RFC 5819 STATUS;
   RFC 6154 SPECIAL-USE) and the mailbox pattern matcher. Pure: no I/O;
   unit-tested and fuzzed (fuzz_imap_list). */
#ifndef IMAP_LIST_EXT_H
#define IMAP_LIST_EXT_H

#include <stdbool.h>
#include <stddef.h>

#include "proto_limits.h"

#include "imap_parser.h"

/* IMAP_LIST_PATTERNS_MAX: proto_limits.h. */

/* selection options */
#define IMAP_LSEL_SUBSCRIBED     (1u << 0)
#define IMAP_LSEL_REMOTE         (1u << 1)
#define IMAP_LSEL_RECURSIVEMATCH (1u << 2)
#define IMAP_LSEL_SPECIAL_USE    (1u << 3)
/* return options */
#define IMAP_LRET_SUBSCRIBED     (1u << 0)
#define IMAP_LRET_CHILDREN       (1u << 1)
#define IMAP_LRET_SPECIAL_USE    (1u << 2)
#define IMAP_LRET_STATUS         (1u << 3)
/* STATUS items (RETURN (STATUS (...))), in the order they are written */
#define IMAP_LSTAT_MESSAGES      (1u << 0)
#define IMAP_LSTAT_RECENT        (1u << 1)
#define IMAP_LSTAT_UIDNEXT       (1u << 2)
#define IMAP_LSTAT_UIDVALIDITY   (1u << 3)
#define IMAP_LSTAT_UNSEEN        (1u << 4)
#define IMAP_LSTAT_SIZE          (1u << 5)
#define IMAP_LSTAT_HIGHESTMODSEQ (1u << 6)

struct imap_list_opts {
	unsigned sel;           /* IMAP_LSEL_* */
	unsigned ret;           /* IMAP_LRET_* */
	unsigned status;        /* IMAP_LSTAT_* */
	const struct imap_arg *ref;                 /* borrowed */
	const struct imap_arg *pats[IMAP_LIST_PATTERNS_MAX];
	size_t npats;
};

/* Parses LIST's arguments [args, end) (basic or extended form). 0, or
   -1 with *error_r (the reply is BAD). RECURSIVEMATCH alone is an error
   (RFC 5258 §3). Selection SUBSCRIBED implies RETURN SUBSCRIBED and
   selection SPECIAL-USE implies RETURN SPECIAL-USE. */
int imap_list_opts_parse(const struct imap_arg *args,
    const struct imap_arg *end, struct imap_list_opts *o,
    const char **error_r);

/* Parses a STATUS item name; 0 if unknown. */
unsigned imap_list_status_item(const struct imap_arg *a);

/* LIST wildcard match of a UTF-8 name with '/' as delimiter: '*'
   matches anything, '%' anything but '/'. O(len(pat) * len(name)). */
bool imap_list_match(const char *pat, const char *name);

#endif
