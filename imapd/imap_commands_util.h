/* imap_commands_util: argument helpers the command files share (sequence
   sets against the view, flag lists, mailbox names) and the one mapping of
   store errors to tagged replies. Internal to imapd. */
#ifndef IMAP_COMMANDS_UTIL_H
#define IMAP_COMMANDS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_session.h"

/* Parses a sequence set argument against the view (MSNs or UIDs; "$" is
   the SEARCHRES result) into an owned ascending array of view indexes.
   -1 with a tagged BAD queued. */
int imap_seqset_arg(struct imap_session *s, const struct imap_arg *a,
    bool uid, size_t **idx_r, size_t *n_r);
/* Parses flag atoms [a, end): system flags into *flags_r, keywords as an
   owned array of owned strings. -1 on an invalid flag. */
int imap_flags_parse(const struct imap_arg *a, const struct imap_arg *end,
    uint32_t *flags_r, char ***kw_r, size_t *nkw_r);
/* Decodes a mailbox argument (mUTF-7) to an owned UTF-8 name with INBOX
   normalised and a trailing '/' removed. NULL (and a tagged reply queued)
   if invalid. */
char *imap_mailbox_arg(struct imap_session *s, const struct imap_arg *a);
/* Rewrites a leading "inbox" (any case, alone or before '/') to "INBOX"
   in place. */
void imap_mailbox_normalize_inbox(char *name);
/* The special-use attributes (RFC 6154) and their STORE_SU_* bits. */
struct imap_special_use {
	uint32_t bit;
	const char *name;
};
#define IMAP_SPECIAL_USE_N 7
extern const struct imap_special_use imap_special_uses[IMAP_SPECIAL_USE_N];

/* Tagged NO for a store error (OK for STORE_OK), the one mapping of store
   errors to IMAP response codes. */
void imap_reply_store_err(struct imap_session *s, enum store_err e,
    const char *what);

#endif
