/* proto_limits: every protocol limit of the daemons, in one table. A limit is
   named <PROTO>_<WHAT>_MAX[_<SCOPE>]: the thing counted, then the scope
   it is counted over (SESSION, ADDR for a peer address, PREAUTH for the
   time before login). Each line says why the number is what it is. Only
   constants here: no code, no includes, so the pure parsers (fuzzed and
   unit-tested on their own) can use it too. Buffer sizes of the I/O layer
   that a peer cannot name stay in conn_private.h. (Not "limits.h": with
   -Icommon that name would hide the C library's <limits.h>.) */
#ifndef POSTROOM_PROTO_LIMITS_H
#define POSTROOM_PROTO_LIMITS_H

/* ---- every daemon ---- */

/* Failed logins from one peer address (a native IPv6 peer counts for its
   /64) within the throttle's 15-minute window, after which further logins
   are refused without checking the password; checks still running count
   toward it (auth_throttle_begin), so parallel sessions cannot each guess
   below it. One number for SMTP, POP3 and IMAP: a guesser picks the
   daemon with the loosest limit. 5 (smtpd's old value, POP3 and IMAP had
   10): an honest user mistypes once or twice, a NAT of honest users
   resets the count with every success, and each check costs an Argon2id
   run on a worker. */
#define AUTH_FAIL_MAX_ADDR            5
/* A login name is an address: RFC 5321's 256-byte path without its
   brackets. Longer names are refused (after the same dummy password
   check as an unknown user, so timing tells nothing). */
#define AUTH_NAME_MAX                 254

/* ---- SMTP (smtpd) ---- */

/* RFC 5321 4.5.3.1: sizes of the parts of an address and of a text line
   (without CRLF); a path is counted without its angle brackets. */
#define SMTP_LOCAL_MAX                64
#define SMTP_DOMAIN_MAX               255
#define SMTP_PATH_MAX                 256
#define SMTP_TEXT_LINE_MAX            998
/* A command line with its ESMTP parameters (RFC 5321 allows 512, the
   extensions more): also holds an AUTH PLAIN initial response with a
   255-byte name and a long password. MX peers never log in, so the
   pre-auth cap is what they get; both are the same today because the
   longest pre-auth line (AUTH) is also the longest line after it. */
#define SMTP_PREAUTH_LINE_MAX         2048
#define SMTP_LINE_MAX                 2048
/* 4xx/5xx replies in one session before 421 (a confused client still
   gets many chances; a scanner does not get forever). */
#define SMTP_ERROR_MAX_SESSION        20
/* Unparseable or unknown commands before login before 421: a peer that
   is not speaking SMTP (an HTTP request through a proxy) is cut early. */
#define SMTP_BAD_CMD_MAX_PREAUTH      10
/* Failed AUTH per address: also the count at which a session gets 421. */
#define SMTP_AUTH_FAIL_MAX_ADDR       AUTH_FAIL_MAX_ADDR
/* Distinct recipient users of one message: the store's bound on the
   targets of one delivery. */
#define SMTP_RCPT_USER_MAX            1000

/* ---- POP3 (pop3d) ---- */

/* RFC 2449 4: keywords are 3-4 characters, arguments up to 40, at most 2
   of them; a PASS argument or an AUTH initial response is bounded by the
   line cap only. */
#define POP3_KEYWORD_MAX              4
#define POP3_ARG_MAX                  40
#define POP3_ARGS_MAX                 2
/* The command line without CRLF: room for an AUTH PLAIN initial response
   with a 255-byte name and a long password (pre-auth); nothing after
   login is longer, and lowering it would refuse lines accepted today. */
#define POP3_PREAUTH_LINE_MAX         2048
#define POP3_LINE_MAX                 2048
/* "<uidvalidity>.<uid>" as hex, with room to spare (RFC 1939: 70). */
#define POP3_UIDL_MAX                 70
/* Bad commands (or overlong lines) in a row before the session closes. */
#define POP3_BAD_CMD_MAX              10
/* Failed logins in one session before it closes (the per-address delay
   grows meanwhile, so a session is not a free guessing loop). */
#define POP3_AUTH_FAIL_MAX_SESSION    3
#define POP3_AUTH_FAIL_MAX_ADDR       AUTH_FAIL_MAX_ADDR

/* ---- IMAP (imapd) ---- */

/* Command text after login: BAD past this, the rest of the line is
   skipped. Long UID sets and SEARCH programs need the room. */
#define IMAP_LINE_MAX                 65536
/* Before login only LOGIN/AUTHENTICATE/STARTTLS/CAPABILITY make sense:
   an anonymous peer gets a tight cap (the Redis pre-auth rule). */
#define IMAP_PREAUTH_LINE_MAX         8192
/* A "line" without any LF: past this the session ends with BYE. */
#define IMAP_LINE_HARD_MAX            (1u << 20)
/* Literals outside APPEND, total per command (APPEND streams to disk
   under max_message_size instead). */
#define IMAP_LITERAL_SMALL_MAX        65536
/* Nesting of lists and SEARCH keys, and arguments per command: fixed at
   parser creation, they bound the parser's memory and recursion. */
#define IMAP_DEPTH_MAX                32
#define IMAP_ARGS_MAX                 20000
/* BAD replies in a row before BYE. */
#define IMAP_BAD_CMD_MAX              20
/* Failed logins in one session before BYE. */
#define IMAP_AUTH_FAIL_MAX_SESSION    5
#define IMAP_AUTH_FAIL_MAX_ADDR       AUTH_FAIL_MAX_ADDR
/* Ranges in one sequence set: "1,3,5,..." is the cheap way to make a
   server allocate; 100000 covers every real client's UID sets. */
#define IMAP_SEQSET_RANGES_MAX        100000
/* FETCH: header field names in one BODY[HEADER.FIELDS (...)], and fetch
   items in one command. */
#define IMAP_FETCH_FIELDS_MAX         200
#define IMAP_FETCH_ITEMS_MAX          100
/* LIST-EXTENDED: mailbox patterns in one LIST. */
#define IMAP_LIST_PATTERNS_MAX        32
/* SEARCH: nesting of keys and keys in one program (each costs a pass
   over the mailbox). */
#define IMAP_SEARCH_DEPTH_MAX         64
#define IMAP_SEARCH_NODES_MAX         2000

#endif
