/* dsn: builds delivery status notifications (RFC 3464 multipart/report;
   report-type=delivery-status) and computes the retry schedule. Pure: no
   I/O, no clock (the caller passes "now" and the randomness), no logging. */
#ifndef POSTROOM_DSN_H
#define POSTROOM_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util.h"

enum dsn_action {
	DSN_ACT_FAILED,
	DSN_ACT_DELAYED,
	DSN_ACT_DELIVERED,
	DSN_ACT_RELAYED,
};

enum dsn_ret {
	DSN_RET_DEFAULT,    /* no RET: the whole message for a failure, the
	                       headers otherwise */
	DSN_RET_HDRS,
	DSN_RET_FULL,
};

struct dsn_rcpt {
	const char *address;        /* Final-Recipient (rfc822) */
	const char *orcpt;          /* "rfc822;addr" from ORCPT, or NULL */
	enum dsn_action action;
	const char *status;         /* "5.1.1", "4.4.1", "2.0.0" */
	const char *remote_mta;     /* host name (or [address]), or NULL */
	const char *diagnostic;     /* one line, or NULL: the remote's reply
	                               ("smtp;") when diag_smtp, else our own
	                               reason ("X-Postroom;") */
	bool diag_smtp;
	time_t last_attempt;        /* 0: none */
	time_t retry_until;         /* Will-Retry-Until for delayed; 0: none */
};

struct dsn_report {
	const char *hostname;       /* Reporting-MTA and MAILER-DAEMON@ */
	const char *to;             /* the original envelope sender */
	const char *envid;          /* ENVID, or NULL */
	time_t arrival;
	time_t now;
	enum dsn_ret ret;
	const char *msg;            /* the original message (CRLF lines) */
	size_t msg_len;
	size_t full_max;            /* over this, only the headers go back */
	const struct dsn_rcpt *rcpts;
	size_t nrcpts;
	const unsigned char *rand16;/* 16 random bytes: boundary, Message-ID */
};

/* Appends the whole DSN message (headers and body, CRLF line ends) to out.
   Header fields are sanitised (no CR/LF/control bytes from any input). The
   Subject and the human-readable part follow the most severe action
   (failed, then delayed, then delivered/relayed). */
void dsn_build(const struct dsn_report *rep, struct buf *out);

/* The end of the header block of msg[0..len): the offset just past the
   empty line, or len when there is none. */
size_t dsn_header_end(const char *msg, size_t len);

/* Retry schedule (Postfix-like): the delay before attempt number
   attempts + 1, for a message of age seconds that failed its attempts-th
   attempt. Doubles from retry_min with each attempt and is at least the
   message's age (so an old message is not hammered), at most retry_max;
   jitter01 in [0, 1) shortens it by up to 10% (never under retry_min) so
   messages deferred together spread out. Pure. */
double dsn_retry_delay(unsigned attempts, double age, double retry_min,
    double retry_max, double jitter01);

#endif
