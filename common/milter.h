/* milter: the MTA side of the Sendmail milter protocol on libev, for a
   whole SMTP session: one connection per configured milter (inet:host:port
   or unix:/path), option negotiation (header changes and quarantine
   offered), then CONNECT, HELO, MAIL, RCPT, DATA as the SMTP commands
   arrive and HEADER, EOH, BODY chunks, BODYEOB at the end of each message,
   each answered before the SMTP reply. A milter that cannot be reached,
   stalls past the timeout, closes or answers garbage is a failure: it is
   dropped for the session; with fail_accept that is all, otherwise the
   session's messages are tempfailed at their end. The macros are Postfix's
   default set where it applies. Everything runs on the loop. */
#ifndef POSTROOM_MILTER_H
#define POSTROOM_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#define MILTER_MAX          8       /* milters in the list */
#define MILTER_MAX_MODS     256     /* header changes kept per message */

/* Checks a "inet:host:port, unix:/path" list (also "host:port" is taken
   as inet; host names are resolved only when used). 0 or -1 with
   err. Pure. */
int milter_list_check(const char *list, char *err, size_t errlen);

struct milter_msg {
	const char *hostname;       /* ours: macro j */
	const char *queue_id;       /* macro i */
	const char *client_name;    /* the client's host name or "unknown" */
	const char *client_addr;    /* numeric address */
	uint16_t client_port;
	bool client_v6;
	const char *helo;
	const char *tls_version;    /* "TLSv1.3", or NULL without TLS */
	const char *tls_cipher;
	const char *from;           /* the address, without <> ("" for <>) */
	const char *const *rcpts;   /* addresses without <> */
	size_t nrcpts;
	const char *header;         /* the header block, CRLF lines, with or
	                               without its empty line */
	size_t header_len;
	const char *body;           /* after the empty line */
	size_t body_len;
};

enum milter_action {
	MILTER_CONTINUE = 0,        /* deliver (with the changes below) */
	MILTER_REJECT,              /* reply: the 5xx to send */
	MILTER_TEMPFAIL,            /* reply: the 4xx to send */
	MILTER_DISCARD,             /* say 250, keep nothing */
};

/* A header change: 'h' add at the end, 'i' insert at position index
   (0: top), 'm' change the index-th (1-based) field named name (empty
   value: delete; missing field: add). */
struct milter_mod {
	char type;
	uint32_t index;
	char *name, *value;
};

struct milter_result {
	enum milter_action action;
	char reply[512];            /* "550 5.7.1 text" ("" unless REJECT or
	                               TEMPFAIL) */
	char who[128];              /* the milter that decided, or failed */
	bool failed;                /* a milter failed (see who, why) */
	char why[128];
	bool quarantine;
	char quarantine_reason[256];
	struct milter_mod *mods;
	size_t nmods;
};
void milter_result_free(struct milter_result *r);

struct buf;
/* The header block h[0..hlen) (CRLF lines, without the empty line) with
   the changes applied in order, into out: what the message keeps, and
   what a later milter reads. Pure. */
void milter_header_edit(const char *h, size_t hlen,
    const struct milter_mod *mods, size_t nmods, struct buf *out);

/* The stages of a session, each run as its SMTP command arrives. */
enum milter_stage {
	MILTER_CONNECT,             /* at the greeting */
	MILTER_HELO,
	MILTER_MAIL,
	MILTER_RCPT,                /* one recipient: rcpts[0] */
	MILTER_DATA,
	MILTER_EOM,                 /* header, body, end of message */
};

/* res: owned by the callee (milter_result_free). Called exactly once per
   stage, later, on the loop. */
typedef void milter_done_cb(void *arg, struct milter_result *res);

struct milter_session;
/* A session with the milters of list (already checked); timeout in
   seconds for each reply and the connection. Nothing is opened before the
   first stage. Never NULL. */
struct milter_session *milter_session_new(struct ev_loop *loop,
    const char *list, double timeout, bool fail_accept);
/* Runs one stage through each milter still taking part, in order; the
   first that rejects, tempfails or discards decides (for RCPT only that
   recipient is refused). ACCEPT before MAIL ends that milter's part in
   the session, after it its part in the message. MAIL and HELO first end
   (SMFIC_ABORT) a message the milters hold open. At MILTER_EOM the header
   changes and a quarantine request are collected, and each milter reads
   the header with the changes of the milters before it (as with Postfix); a milter that failed
   with fail_accept false makes every end of message a 451 from then on.
   One stage at a time; msg and what it points to stay valid until the
   callback. */
void milter_session_step(struct milter_session *ms, enum milter_stage stage,
    const struct milter_msg *msg, milter_done_cb *cb, void *arg);
/* Closes the connections (a QUIT where it fits); a stage in progress gets
   no callback. */
void milter_session_free(struct milter_session **ms);

#endif
