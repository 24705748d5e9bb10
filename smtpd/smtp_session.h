/* smtp_session: one SMTP connection of smtpd: its phase and facts, its
   current transaction, and the calls between the session core
   (smtp_session.c), the command table (smtp_commands.c), AUTH and its
   glue to login.c (smtp_auth.c) and the message reader and delivery
   (smtp_data.c). Private to smtpd. */
#ifndef POSTROOM_SMTP_SESSION_H
#define POSTROOM_SMTP_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "daemon.h"
#include "login.h"
#include "milter.h"
#include "proto_limits.h"
#include "session.h"
#include "store.h"

#include "smtp_parse.h"
#include "srs.h"

/* More Received: fields than this: a loop (RFC 5321 6.3). */
#define SMTP_HOPS_MAX 50

/* A recipient that goes to the outbound queue. */
struct smtp_qrcpt {
	char address[SMTP_PATH_MAX + 1];
	char orcpt[SMTP_ORCPT_MAX + 1];     /* "type;addr", "" if none */
	unsigned notify;                    /* enum smtp_notify bits */
};

/* smtpd's own state (struct daemon's priv), made by the start hook. */
struct smtp_priv {
	unsigned char srs_key[SRS_KEY_LEN];
};

/* Listen tags. */
enum smtp_listener {
	SMTP_L_MX = 1,          /* smtp_listen: inbound, STARTTLS, no AUTH */
	SMTP_L_SUBMISSION,      /* submission_listen: STARTTLS, AUTH required */
	SMTP_L_SMTPS,           /* smtps_listen: implicit TLS, AUTH required */
};

/* The protocol phase (a bit each, for the command table). Waiting on a
   worker is not a phase (session_is_busy), nor is reading a BDAT chunk's
   bytes (chunk_input), nor a SASL exchange (login_in_sasl). */
enum smtp_state {
	SMTP_ST_INIT = 1 << 0,      /* greeted, no EHLO/HELO yet */
	SMTP_ST_READY = 1 << 1,     /* EHLO done, no transaction */
	SMTP_ST_MAIL = 1 << 2,      /* MAIL accepted, no recipient yet */
	SMTP_ST_RCPT = 1 << 3,      /* at least one recipient */
	SMTP_ST_DATA = 1 << 4,      /* reading DATA content */
	SMTP_ST_BDAT = 1 << 5,      /* a BDAT transaction, between chunks */
};

/* Facts about the session, beside the phase (TLS: conn_is_tls). */
enum smtp_flag {
	SMTP_F_ESMTP = 1 << 0,          /* greeted with EHLO */
	SMTP_F_AUTHENTICATED = 1 << 1,
	SMTP_F_SHUTDOWN = 1 << 2,       /* the daemon stops: 421 at resume */
};

/* The current mail transaction, freed whole on RSET, EHLO, QUIT or after
   the message. */
struct smtp_tx {
	char from[SMTP_PATH_MAX + 1];   /* "" for <> */
	bool smtputf8;
	enum smtp_body_type body;
	uint64_t declared_size;
	uint32_t *users;                 /* unique recipient user ids */
	size_t nusers, users_cap;
	unsigned nrcpts;                 /* accepted RCPT commands */
	char first_rcpt[SMTP_PATH_MAX + 1];
	char id[17];

	/* the message being received */
	struct store_delivery *d;
	uint64_t size;                   /* content bytes received */
	bool too_big;
	bool write_failed;
	/* The header section as it arrives (max_header_size). */
	uint64_t hdr_len;                /* bytes of its complete lines */
	uint64_t hdr_line;               /* bytes of the line being read */
	char hdr_first;                  /* that line's first byte */
	bool hdr_done;                   /* its empty line was seen */
	bool hdr_too_big;
	bool bdat;                       /* BDAT, not DATA */
	struct smtp_dot dot;
	struct smtp_content content;     /* for BDAT */
	uint64_t chunk_left;
	bool chunk_last;
	char *scratch;                   /* DATA unstuffing output */
	size_t scratch_cap;
	enum store_err commit_err;

	/* Outbound (RFC 3461 on MAIL; recipients for the queue). */
	enum smtp_dsn_ret ret;
	char envid[SMTP_ENVID_MAX + 1];
	struct smtp_qrcpt *remote;
	size_t nremote, remote_cap;
	bool user_remote;                /* an authenticated user chose a
	                                    remote recipient: rate-counted */
	char srs_domain[SMTP_DOMAIN_MAX + 1]; /* ours, for an SRS sender */
	/* Filled on the loop for the worker (smtp_submit_work). */
	size_t trace_len;                /* Return-Path + Received written */
	bool fix_headers;                /* submission: Message-ID, Date, DKIM */
	char queue_sender[SMTP_PATH_MAX + 1];
	char auth_user[STORE_ADDRESS_MAX + 1];
	const struct config *cfg;
	struct store *store;
	/* Worker results. */
	int prep;                        /* enum smtp_prep */
	uint64_t queue_id;
	unsigned dkim_signed;
	/* Spam: the local recipients get it in Junk (smtp_junk.c). */
	bool junk;
	char junk_why[64];
	/* Milters (smtp_milter.c): recipients seen, verdict. */
	struct smtp_milter_tx *milter;
	/* Inbound checks on the MX listener (smtp_checks.c), else NULL. */
	struct smtp_checks *checks;
};

enum smtp_prep {
	SMTP_PREP_OK = 0,
	SMTP_PREP_LOOP,                  /* too many Received: 554 5.4.6 */
	SMTP_PREP_NOSPACE,               /* queue disk nearly full: 452 4.3.1 */
	SMTP_PREP_DMARC_REJECT,          /* DMARC p=reject: 550 5.7.1 */
};

struct smtp_session {
	struct session base;            /* first: the session core */
	enum smtp_listener listener;
	unsigned flags;                  /* enum smtp_flag */
	char helo[256];
	uint32_t auth_user_id;
	char auth_user[STORE_ADDRESS_MAX + 1];
	unsigned bad_commands;           /* unparseable or unknown verbs */
	unsigned messages;
	struct login login;

	/* Reading a BDAT chunk's bytes rather than command lines. */
	bool chunk_input;
	/* A BDAT chunk that must be read and thrown away (bad state, or the
	   transaction already failed), then answered with discard_reply. */
	uint64_t discard_left;
	const char *discard_reply;       /* static "503 5.5.1 ..." */

	struct smtp_tx *tx;
	/* The milters' session (smtp_milter.c), NULL without milters. */
	struct smtp_milter_sess *milter;
	/* The blocklist check at connect (smtp_milter.c), until it is over. */
	struct dnsbl_check *dnsbl;
};

static inline bool
smtp_is_authenticated(const struct smtp_session *s)
{
	return (s->flags & SMTP_F_AUTHENTICATED) != 0;
}

/* ---- smtp_session.c ---- */
extern const struct conn_handlers smtp_handlers;
/* Sets the phase, with the idle timeout that goes with it. */
void smtp_set_state(struct smtp_session *s, enum smtp_state st);
/* Queues one reply line "CODE X.Y.Z text" (the enhanced code may be NULL).
   A 4xx/5xx counts as an error; past SMTP_ERROR_MAX_SESSION a 421 follows
   and the session closes. */
void smtp_reply(struct smtp_session *s, int code, const char *ecode,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Queues the 421 and closes the session after it (if it waits on a
   worker, once the work's reply is out). */
void smtp_close_421(struct smtp_session *s, const char *ecode,
    const char *text);
/* Whether AUTH may be offered and used now. */
bool smtp_auth_allowed(const struct smtp_session *s);
/* Whether this listener requires AUTH before MAIL. */
bool smtp_is_submission(const struct smtp_session *s);
void smtp_tx_free(struct smtp_tx **tx);
/* Frees the transaction and goes back to READY (RSET semantics). */
void smtp_tx_reset(struct smtp_session *s);
/* Maps a store error to a reply (the one place smtpd does so). */
void smtp_reply_store_err(struct smtp_session *s, enum store_err e,
    const char *what);

/* ---- smtp_commands.c ---- */
/* Handles one command line (not DATA content, a BDAT chunk or a SASL
   line). */
enum cmd_result smtp_command(struct smtp_session *s, const char *line,
    size_t len);

/* ---- smtp_auth.c ---- */
/* What login.c needs from smtpd. */
extern const struct login_ops smtp_login_ops;
/* AUTH mechanism [initial-response] (RFC 4954). */
enum cmd_result smtp_cmd_auth(struct smtp_session *s, const char *args,
    size_t len);

/* ---- smtp_data.c ---- */
/* DATA: opens the delivery, writes the trace headers; 0 or -1 (reply
   sent). */
int smtp_data_begin(struct smtp_session *s, bool bdat);
/* Reads buffered DATA content; at the final dot, commits (suspends). */
void smtp_data_input(struct smtp_session *s);
/* BDAT: starts a chunk of size bytes (last: the final one). */
void smtp_bdat_chunk(struct smtp_session *s, uint64_t size, bool last);
/* Reads buffered bytes of the current BDAT chunk. */
void smtp_bdat_input(struct smtp_session *s);

/* The commit on the worker and its completion (what DATA's end submits;
   smtp_milter.c runs them itself after the milters). */
void smtp_data_commit_work(void *tx);
enum cmd_result smtp_data_commit_done(struct session *base, void *tx);

/* ---- smtp_milter.c ---- */
/* At accept on the MX listener: checks the dnsbl zones before the
   greeting. True: the greeting (or the 554) is sent later. */
bool smtp_milter_connect(struct smtp_session *s);
/* At shutdown: a listed client waiting out dnsbl_delay gets its 554 now. */
void smtp_dnsbl_cut(struct smtp_session *s);
/* A command handler that a milter stage may have to run again. */
typedef enum cmd_result smtp_milter_cmd_fn(struct smtp_session *s,
    const char *args, size_t len);
/* Asks the milters about a command that smtpd itself accepts (value: the
   HELO name, the sender, the recipient; NULL for DATA), before it takes
   effect. True: they are asked with the session suspended, and the
   handler returns CMD_SUSPEND without replying; on their verdict the
   refusal is sent, or fn(s, args, len) runs again and this call then
   returns false so the command completes. False: go on now. */
bool smtp_milter_gate(struct smtp_session *s, enum milter_stage st,
    const char *value, smtp_milter_cmd_fn *fn, const char *args,
    size_t len);
/* The session's end: closes the milter connections. */
void smtp_milter_session_free(struct smtp_session *s);
/* Whether this message goes through milters (MX listener, milter set). */
bool smtp_milter_wanted(const struct smtp_session *s);
/* The end of the content, once the inbound checks are decided, with the
   session suspended: smtp_checks_submit(s, smtp_milter_gate_work,
   smtp_milter_gate_done) runs the milters, then the commit. */
void smtp_milter_gate_work(void *arg);
enum cmd_result smtp_milter_gate_done(struct session *base, void *arg);
/* Starts the milters on the suspended session: 1 when they run (their
   verdict replies, commits and resumes), 2 when it answered itself (a
   temporary failure), 0 when the message goes on unfiltered. */
int smtp_milter_eom(struct smtp_session *s);
/* On the worker: applies the milters' header changes and files the
   message as junk if they asked to or marked it. */
void smtp_milter_apply(struct smtp_tx *tx);
void smtp_milter_tx_free(struct smtp_tx *tx);

/* ---- smtp_junk.c ---- */
/* Marks the message as spam (why: a short reason for the log; the first
   one is kept): its local recipients get it in their Junk mailbox. Not
   for authenticated submission (ignored at commit). */
void smtp_tx_set_junk(struct smtp_tx *tx, const char *why);
/* The id of the user's \Junk mailbox, 0 (INBOX) if none. Blocking:
   worker thread. */
uint32_t smtp_junk_mailbox(struct store *st, uint32_t user_id);

/* ---- smtp_checks.c ---- */
/* The start/stop hooks' part: the DNS resolver of the checks. */
int smtp_checks_start(struct daemon *d, char *err, size_t errlen);
void smtp_checks_stop(void);
/* SIGHUP: reads the Public Suffix List again. */
void smtp_checks_reload(struct daemon *d);
/* After MAIL FROM on the MX listener: starts SPF (tx->checks). */
void smtp_checks_mail(struct smtp_session *s);
void smtp_checks_free(struct smtp_checks **c);
/* Content bytes as received (the header is collected for the lookups). */
void smtp_checks_data(struct smtp_session *s, const char *p, size_t n);
/* session_submit(s, work, done, s->tx), once the checks that must be
   decided before the commit are. */
void smtp_checks_submit(struct smtp_session *s, void (*work)(void *arg),
    session_done_cb *done);
/* On the worker, before the targets: rewrites the delivery with the
   Authentication-Results header (incoming ones claiming our hostname
   removed). 0, or -1 with tx->commit_err set. */
int smtp_checks_work(struct smtp_tx *tx, const char *map, size_t size);
/* The From: domain whose DMARC policy refused the message. */
const char *smtp_checks_dmarc_domain(const struct smtp_tx *tx);
/* The SPF result for the log, NULL if not checked. */
const char *smtp_checks_spf_str(const struct smtp_tx *tx);

/* ---- smtp_submit.c ---- */
/* On the worker: checks the hop count, adds Message-ID/Date and DKIM
   signatures for a submission (rewriting the delivery), adds the local
   targets and the queue part, and commits. Sets tx->prep, commit_err,
   queue_id. Touches only tx (and the store). */
void smtp_submit_work(struct smtp_tx *tx);
/* The start hook's part: smtpd's priv with the SRS key. */
int smtp_submit_start(struct daemon *d, char *err, size_t errlen);
void smtp_submit_stop(struct daemon *d);

#endif
