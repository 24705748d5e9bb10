/* imap_fetch: the FETCH engine. Writes the FETCH responses of a list of
   view messages, item by item through a table of handlers (one row per
   item type: UID, FLAGS, MODSEQ, BODY[] ...), streaming body literals from
   the message file with back-pressure. Parsing the command and setting
   \Seen are cmd_fetch.c's. Internal to imapd. */
#ifndef IMAP_FETCH_H
#define IMAP_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "imap_fetch_items.h"
#include "imap_session.h"

struct imap_fetch;

/* A FETCH of the view messages idx[0..n) (ascending view indexes) with
   the items it. Takes it and idx (owned from here on). */
struct imap_fetch *imap_fetch_new(struct imap_fetch_items *it, size_t *idx,
    size_t n);
void imap_fetch_free(struct imap_fetch **f);
/* The message at position i had \Seen set by this FETCH: its response
   gets FLAGS even if not asked for. */
void imap_fetch_set_seen_changed(struct imap_fetch *f, size_t i);
/* Writes responses until all are out (true) or the output is congested
   (false: call again when it drained). */
bool imap_fetch_run(struct imap_session *s, struct imap_fetch *f);
/* The view indexes being fetched (borrowed) and their number. */
const size_t *imap_fetch_indexes(const struct imap_fetch *f);
size_t imap_fetch_count(const struct imap_fetch *f);
/* Some item is a non-PEEK body section (\Seen is to be set first). */
bool imap_fetch_sets_seen(const struct imap_fetch *f);
/* Some message could not be read (expunged meanwhile). */
bool imap_fetch_failed(const struct imap_fetch *f);

#endif
