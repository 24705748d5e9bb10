/* imap_commands: the command table and the dispatcher. A row says in
   which states a command is valid, how many arguments it takes and what it
   does to the selected mailbox (flags), so the dispatcher checks state and
   arity once and syncs the view before the tagged reply; handlers never
   repeat those checks. Also the handler prototypes of the cmd_*.c files.
   Internal to imapd. */
#ifndef IMAP_COMMANDS_H
#define IMAP_COMMANDS_H

#include "imap_session.h"

typedef enum cmd_result imap_cmd_fn(struct imap_session *s,
    const struct imap_arg *args, const struct imap_arg *end);

/* Row flags (as Dovecot's COMMAND_FLAG_*). */
/* Uses message sequence numbers: no EXPUNGE may be sent while it runs,
   since the client could not tell which messages its numbers meant
   (RFC 3501 §7.4.1). */
#define IMAP_CMDF_USES_SEQS       (1u << 0)
/* Changes the selected mailbox's sequence (EXPUNGE, MOVE): the sync
   before its tagged reply reads the store. */
#define IMAP_CMDF_BREAKS_SEQS     (1u << 1)
/* Never sends untagged mailbox updates (SELECT, CLOSE, LOGOUT ...). */
#define IMAP_CMDF_NO_SYNC         (1u << 2)
/* Its message literal is streamed to the store as it arrives, never
   read into the argument tree (APPEND). */
#define IMAP_CMDF_STREAMS_LITERAL (1u << 3)
/* Asks for the mailbox's news: the sync reads the store (NOOP, CHECK). */
#define IMAP_CMDF_REQUIRES_SYNC   (1u << 4)

#define IMAP_ARGS_ANY ((unsigned)-1)    /* max_args: no limit */

struct imap_cmd_def {
	const char *name;           /* "FETCH", "UID FETCH" */
	unsigned states;            /* enum imap_state mask */
	unsigned min_args, max_args;
	const char *usage;          /* BAD text when the count is wrong; NULL:
	                               "<name> takes no arguments" */
	unsigned flags;             /* IMAP_CMDF_* */
	imap_cmd_fn *fn;
};

/* The row for name ("FETCH", "UID FETCH"; any case), or NULL. */
const struct imap_cmd_def *imap_cmd_lookup(const char *name);
/* Runs one parsed command: looks it up, checks state and arity, calls the
   handler and ends it if it is done. */
void imap_cmd_run(struct imap_session *s, const struct imap_cmd *cmd);
/* Runs the running command's handler and what its result asks for: the
   second half of imap_cmd_run, for a command imap_view_prepare parked. */
void imap_cmd_call(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end);
/* A context for a command whose tag is known before its line is complete
   (APPEND at its literal). Becomes s->cmd. */
struct imap_cmd_ctx *imap_cmd_begin(struct imap_session *s, const char *tag,
    const struct imap_cmd_def *def);
/* The tagged reply of the running command, after the mailbox sync its
   row's flags call for. */
void imap_cmd_reply(struct imap_session *s, enum imap_status st,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same sync, for a command that writes its tagged line itself. */
void imap_cmd_sync(struct imap_session *s);
/* Tagged BAD with the row's usage text. */
void imap_cmd_usage(struct imap_session *s);
/* Ends the running command: the tagged reply must already be queued.
   Frees its context and resumes input (pipelined commands). */
void imap_cmd_finish(struct imap_session *s);
/* Frees a command context (its state too). */
void imap_cmd_ctx_free(struct imap_cmd_ctx **cmd);
/* Whether the running command is a UID command. */
static inline bool
imap_cmd_is_uid(const struct imap_session *s)
{
	return s->cmd != NULL && s->cmd->uid;
}

/* cmd_any.c */
imap_cmd_fn imap_cmd_capability, imap_cmd_noop, imap_cmd_logout,
    imap_cmd_id;
/* cmd_starttls.c */
imap_cmd_fn imap_cmd_starttls;
/* cmd_auth.c */
imap_cmd_fn imap_cmd_login, imap_cmd_authenticate;
/* imapd's replies for the shared login path (login_init). */
const struct login_ops *imap_login_ops(void);
/* cmd_enable.c */
imap_cmd_fn imap_cmd_enable, imap_cmd_namespace;
/* cmd_compress.c */
imap_cmd_fn imap_cmd_compress;
/* cmd_select.c */
imap_cmd_fn imap_cmd_select, imap_cmd_examine, imap_cmd_unselect,
    imap_cmd_close, imap_cmd_check;
/* cmd_expunge.c */
imap_cmd_fn imap_cmd_expunge, imap_cmd_uid_expunge;
/* CLOSE's expunge of a read-write mailbox: silent, then the tagged OK and
   the unselected state. Returns CMD_SUSPEND. */
enum cmd_result imap_close_expunge(struct imap_session *s);
/* cmd_mailbox.c */
imap_cmd_fn imap_cmd_create, imap_cmd_delete, imap_cmd_rename,
    imap_cmd_subscribe, imap_cmd_unsubscribe, imap_cmd_status;
/* cmd_list.c */
imap_cmd_fn imap_cmd_list, imap_cmd_lsub;
/* cmd_fetch.c, cmd_store.c, cmd_copy.c, cmd_search.c */
imap_cmd_fn imap_cmd_fetch, imap_cmd_store, imap_cmd_copy, imap_cmd_move,
    imap_cmd_search;
/* cmd_append.c */
imap_cmd_fn imap_cmd_append;
/* At APPEND's message literal announcement (the command is s->cmd):
   checks the arguments so far and the size. 0: accepted (the command then
   reads the literal bytes as its continuation); -1: refused, a tagged
   reply was queued. */
int imap_append_literal_begin(struct imap_session *s,
    const struct imap_arg *args, const struct imap_arg *end, uint64_t size);
/* cmd_idle.c */
imap_cmd_fn imap_cmd_idle;
/* The selected mailbox changed (any process): an idling client hears it
   at once. No-op when not idling. */
void imap_idle_view_changed(struct imap_session *s);
/* Stops IDLE's timer (session close). */
void imap_idle_free(struct imap_session *s);

#endif
