/* imap_commands: the handlers of the command table (one file per family)
   and the hooks the session calls for APPEND's streamed literal and for
   FETCH's streamed reply. Internal to imapd. */
#ifndef IMAP_COMMANDS_H
#define IMAP_COMMANDS_H

#include "imap_session.h"

/* cmd_auth.c */
imap_cmd_fn imap_cmd_capability, imap_cmd_noop, imap_cmd_logout,
    imap_cmd_starttls, imap_cmd_login, imap_cmd_authenticate;
/* A SASL continuation line while in_sasl. */
void imap_auth_sasl_line(struct imap_session *s, const char *line, size_t len);

/* cmd_mailbox.c */
imap_cmd_fn imap_cmd_create, imap_cmd_delete, imap_cmd_rename,
    imap_cmd_subscribe, imap_cmd_unsubscribe, imap_cmd_list, imap_cmd_lsub,
    imap_cmd_status;
/* Decodes a mailbox argument (mUTF-7) to an owned UTF-8 name with INBOX
   normalised and a trailing '/' removed. NULL (and a tagged reply queued)
   if invalid. */
char *imap_mailbox_arg(struct imap_session *s, const struct imap_arg *a);
/* Rewrites a leading "inbox" (any case, alone or before '/') to "INBOX"
   in place. */
void imap_mailbox_normalize_inbox(char *name);

/* cmd_select.c */
imap_cmd_fn imap_cmd_select, imap_cmd_examine, imap_cmd_check,
    imap_cmd_close, imap_cmd_expunge;

/* cmd_fetch.c */
imap_cmd_fn imap_cmd_fetch;
/* Output drained: continue a streamed FETCH. */
void imap_fetch_drain(struct imap_session *s);
void imap_fetch_free(struct imap_fetch **f);

/* Parses flag atoms [a, end): system flags into *flags_r, keywords as an
   owned array of owned strings. -1 on an invalid flag. */
int imap_flags_parse(const struct imap_arg *a, const struct imap_arg *end,
    uint32_t *flags_r, char ***kw_r, size_t *nkw_r);

/* cmd_store.c, cmd_copy.c, cmd_search.c */
imap_cmd_fn imap_cmd_store, imap_cmd_copy, imap_cmd_search;
/* Parses a sequence set argument against the view (MSNs or UIDs) into an
   owned ascending array of view indexes. -1 with a tagged BAD queued. */
int imap_seqset_arg(struct imap_session *s, const struct imap_arg *a,
    bool uid, size_t **idx_r, size_t *n_r);

/* cmd_append.c */
imap_cmd_fn imap_cmd_append;
/* At APPEND's message literal announcement: checks the arguments so far
   and the size. 0: accepted (the session then feeds the literal bytes);
   -1: refused, a tagged reply was queued. */
int imap_append_literal_begin(struct imap_session *s, const char *tag,
    const struct imap_arg *args, const struct imap_arg *end, uint64_t size,
    bool sync);
/* Feeds literal bytes; returns how many were taken. */
size_t imap_append_feed(struct imap_session *s, const char *p, size_t n);
bool imap_append_literal_done(const struct imap_session *s);
void imap_append_free(struct imap_append **a);

#endif
