/* imap_features: the one registry of what this server advertises and what
   ENABLE (RFC 5161) can turn on, from one table, and the per-session
   feature state around it: CONDSTORE/QRESYNC (RFC 7162) being on, MODSEQ
   and VANISHED output, the QRESYNC part of SELECT, and the SEARCHRES
   (RFC 5182) saved result. Internal to imapd. */
#ifndef IMAP_FEATURES_H
#define IMAP_FEATURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_session.h"

#define IMAP_SERVER_NAME    "Postroom"
#define IMAP_SERVER_VERSION "0.1"

/* What ENABLE can turn on (bits of imap_session.enabled). */
enum imap_feature_bit {
	IMAP_FEAT_CONDSTORE = 1 << 0,   /* RFC 7162 */
	IMAP_FEAT_QRESYNC   = 1 << 1,
};

/* The capability list for s's state, without "* CAPABILITY ". */
void imap_capability_string(const struct imap_session *s, struct buf *out);
/* ENABLE name: turns the feature on if it is advertised in s's state.
   Returns the name to list in "* ENABLED" (static), or NULL if the name is
   unknown, not advertised or was already on (RFC 5161 §3.1). */
const char *imap_feature_enable(struct imap_session *s, const char *name);
/* Frees the features' per-session state (from the session's close). */
void imap_features_free(struct imap_session *s);

/* CONDSTORE is on: ENABLEd, or a CONDSTORE-enabling command was used
   (RFC 7162 §3.1). */
bool imap_condstore_on(const struct imap_session *s);
bool imap_qresync_on(const struct imap_session *s);
/* A CONDSTORE-enabling command ran (SELECT (CONDSTORE), FETCH MODSEQ,
   CHANGEDSINCE, UNCHANGEDSINCE, SEARCH MODSEQ, STATUS HIGHESTMODSEQ). */
void imap_condstore_enable(struct imap_session *s);
/* " MODSEQ (n)" when CONDSTORE is on; nothing otherwise. */
void imap_buf_modseq(struct buf *b, const struct imap_session *s,
    uint64_t modseq);
/* "* VANISHED [(EARLIER) ]uid-set\r\n" (nothing if n == 0). */
void imap_buf_vanished(struct buf *b, bool earlier, const uint32_t *uids,
    size_t n);

struct imap_select_params;
struct imap_view;
/* SELECT/EXAMINE with QRESYNC. On the worker, after the view is open:
   the expunged UIDs to report (owned, sorted). */
void imap_qresync_work(struct store *st, const struct imap_view *v,
    const struct imap_select_params *p, uint32_t **uids_r, size_t *n_r);
/* On the loop: appends the VANISHED (EARLIER) and the FETCH responses. */
void imap_qresync_reply(struct imap_session *s,
    const struct imap_select_params *p, const uint32_t *vanished,
    size_t nvanished, struct buf *b);
/* UID FETCH ... (CHANGEDSINCE n VANISHED): the VANISHED (EARLIER) line of
   the UIDs in the set (atom a) expunged after since. Loop thread. */
void imap_fetch_vanished(struct imap_session *s, const struct imap_arg *a,
    uint64_t since);

/* SEARCHRES: forget the saved result (SELECT, EXAMINE, CLOSE, UNSELECT). */
void imap_searchres_reset(struct imap_session *s);
/* Replaces the saved result by uids[0..n) (sorted; copied). */
void imap_searchres_save(struct imap_session *s, const uint32_t *uids,
    size_t n);
/* Whether arg a is the "$" marker. */
bool imap_arg_is_saved(const struct imap_arg *a);

#endif
