/* milter: the MTA side of the Sendmail milter protocol on libev. One run
   takes a whole message (connection facts, HELO, envelope, header block,
   body) through each configured milter in order, each over a fresh
   connection (inet:host:port or unix:/path): option negotiation (header
   changes and quarantine offered), CONNECT, HELO, MAIL, RCPT, DATA,
   HEADER, EOH, BODY chunks, BODYEOB, QUIT. The first milter that rejects,
   tempfails or discards decides; ACCEPT ends that milter's part; header
   changes and a quarantine request at end of message are collected for
   the caller. A milter that cannot be reached, stalls past the timeout,
   closes or answers garbage is a failure: with fail_accept it is skipped,
   otherwise the result is a tempfail. Everything runs on the loop. */
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

/* res: owned by the callee (milter_result_free). Called exactly once per
   run, later, on the loop; the run is freed after it returns. */
typedef void milter_done_cb(void *arg, struct milter_result *res);

struct milter_run;
/* Starts a run (list already checked; timeout in seconds for each reply
   and the connection). msg and everything it points to must stay valid
   until the callback. Never NULL. */
struct milter_run *milter_run_start(struct ev_loop *loop, const char *list,
    double timeout, bool fail_accept, const struct milter_msg *msg,
    milter_done_cb *cb, void *arg);
/* Stops a run without its callback (the session went away). */
void milter_run_cancel(struct milter_run **r);

#endif
