/* imap_ext2: CONDSTORE/QRESYNC (RFC 7162), ESEARCH (RFC 4731), SEARCHRES
   (RFC 5182), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819),
   SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154), CHILDREN (RFC 3348):
   the hooks the core command files call, and the per-session state hung
   on struct imap_ext (ext2). Internal to imapd. */
#ifndef IMAP_EXT2_H
#define IMAP_EXT2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_session.h"

struct imap_select_params;

/* Per-session state (owned by struct imap_ext, freed by imap_ext_free). */
struct imap_ext2 {
	/* SEARCHRES: the UIDs of the last SEARCH RETURN (SAVE), sorted. */
	uint32_t *saved;
	size_t nsaved;
	/* CONDSTORE turned on by an enabling command, not by ENABLE. */
	bool condstore_implicit;
};

/* ---- cmd_condstore.c ---- */

/* Appends this file's capabilities (leading spaces). */
void imap_ext2_capabilities(const struct imap_session *s, struct buf *out);
/* ENABLE rows: whether CONDSTORE / QRESYNC are advertised. */
bool imap_ext2_condstore_advertised(const struct imap_session *s);
void imap_ext2_free(void *ext2);
/* ext2 state of s, allocated on first use. */
struct imap_ext2 *imap_ext2_get(struct imap_session *s);

/* CONDSTORE is on: ENABLEd, or a CONDSTORE-enabling command was used
   (RFC 7162 §3.1). */
bool imap_condstore_on(const struct imap_session *s);
bool imap_qresync_on(const struct imap_session *s);
/* A CONDSTORE-enabling command ran (SELECT (CONDSTORE), FETCH MODSEQ,
   CHANGEDSINCE, UNCHANGEDSINCE, SEARCH MODSEQ). */
void imap_condstore_enable(struct imap_session *s);
/* " MODSEQ (n)" when CONDSTORE is on; nothing otherwise. */
void imap_buf_modseq(struct buf *b, const struct imap_session *s,
    uint64_t modseq);
/* "* VANISHED [(EARLIER) ]uid-set\r\n" (nothing if n == 0). */
void imap_buf_vanished(struct buf *b, bool earlier, const uint32_t *uids,
    size_t n);

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

/* ---- cmd_esearch.c ---- */

/* SEARCHRES: forget the saved result (SELECT, EXAMINE, CLOSE, UNSELECT). */
void imap_searchres_reset(struct imap_session *s);
/* Replaces the saved result by uids[0..n) (sorted; copied). */
void imap_searchres_save(struct imap_session *s, const uint32_t *uids,
    size_t n);
/* The saved result (borrowed; may be empty). */
void imap_searchres_get(struct imap_session *s, const uint32_t **uids_r,
    size_t *n_r);
/* Whether arg a is the "$" marker. */
bool imap_arg_is_saved(const struct imap_arg *a);

/* ---- cmd_list_ext.c ---- */

/* LIST with RFC 5258 syntax (selection options, several patterns, RETURN
   options). Called by imap_cmd_list when the arguments are extended. */
imap_cmd_fn imap_cmd_list_ext;
/* Whether LIST's arguments need imap_cmd_list_ext. */
bool imap_list_is_extended(const struct imap_arg *args,
    const struct imap_arg *end);
/* CREATE name (USE (\Drafts ...)) (RFC 6154 §3). */
imap_cmd_fn imap_cmd_create_ext;

#endif
