/* conn_private: the structures shared by server.c (listeners, limits,
   signals), conn.c (buffers, I/O, lifecycle), tls.c (OpenSSL) and
   compress.c (zlib). Never included outside common/. */
#ifndef POSTROOM_CONN_PRIVATE_H
#define POSTROOM_CONN_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "conn.h"

/* Input: start small (an idle IMAP connection must stay cheap), grow up to
   the line limit or IN_RAW_MAX, whichever is larger. A read that fills the
   buffer means more is waiting (a message body, a literal): the buffer then
   grows straight to IN_READ and one pass reads up to IN_READ, so a stream
   costs one read(2) per 64 KiB rather than per KiB. A grown buffer is freed
   as soon as it is empty and the socket had nothing more, so an idle
   connection is back to nothing. */
#define IN_INIT      1024
#define IN_READ      (64 * 1024)
#define IN_RAW_MAX   (64 * 1024)
/* Before login, while the daemon reads lines, input may hold only the line
   limit, its CRLF and this much of a pipelined next line: one unfinished
   line of a peer that is not logged in must not cost IN_RAW_MAX. */
#define IN_PREAUTH_SLACK 64
/* Output: allocated on the first write; a flushed buffer bigger than
   OUT_KEEP is freed rather than kept for an idle connection. */
#define OUT_INIT     512
#define OUT_KEEP     1024
#define OUT_HIGH     (256 * 1024)
#define OUT_LOW      (64 * 1024)
#define OUT_HARD     (16 * 1024 * 1024)
/* Seconds to flush output once a connection is closing, and to finish a
   TLS handshake without a config (cfg->tls_handshake_timeout, or
   cfg->preauth_timeout if shorter). */
#define CLOSE_TIMEOUT     5.0
#define HANDSHAKE_TIMEOUT 10.0
/* input() calls per event before yielding to other connections. */
#define DISPATCH_ROUNDS   256
/* conn_consume of at least this much re-arms the idle timer even without
   a line end (literal data). */
#define CONN_PROGRESS_BYTES 512

enum conn_phase {
	PH_HANDSHAKE,       /* TLS handshake (implicit or after STARTTLS) */
	PH_OPEN,            /* normal I/O */
	PH_STARTTLS_WAIT,   /* flushing the plaintext reply before TLS */
	PH_CLOSING,         /* flushing, then close */
	PH_DEAD,            /* fd closed; waiting for the last release */
};

struct conn_z;
struct conn_send;

struct conn {
	struct server *srv;
	struct conn *prev, *next;   /* srv->conns */
	void *sess;
	ev_io io;
	ev_timer timer;
	SSL *ssl;
	struct conn_z *z;           /* NULL unless COMPRESS is on */
	struct conn_send *send;     /* NULL unless conn_send_fd is running */
	const char *reason;         /* why it closed, for the log */
	double idle_timeout;

	/* input: bytes [in_start, in_end) of in */
	char *in;
	uint32_t in_start, in_end, in_cap;
	uint32_t line_limit;
	/* output: bytes [out_start, out_end) of out */
	char *out;
	size_t out_start, out_end, out_cap;

	uint64_t consumed;          /* input progress, for the dispatch loop */
	/* Whole lines and literal bytes the daemon took. Only these re-arm
	   the idle timer (once per callback, in conn_leave): raw bytes do
	   not, or a peer trickling one byte a second would never time out. */
	uint64_t progress, progress_seen;
	/* When the last progress was seen (or the connect): the longest idle
	   unauthenticated connection is the one a full table closes. */
	ev_tstamp active;
	int fd;
	int tag;
	unsigned refs;              /* conn_hold + callbacks running */
	unsigned holds;             /* conn_hold alone */
	unsigned depth;             /* our callbacks running on this conn */
	unsigned pauses;
	uint8_t phase;
	uint8_t hs_events;          /* EV_READ/EV_WRITE the handshake wants */
	bool implicit_tls : 1;
	bool accepted : 1;          /* accept() returned a session */
	bool skipping : 1;          /* discarding an overlong line up to LF */
	bool eof : 1;
	bool congested : 1;
	bool drain_pending : 1;
	bool want_dispatch : 1;
	bool tls_read_wants_write : 1;
	bool tls_write_wants_read : 1;
	bool counted : 1;           /* in the total and per-address counts */
	bool tls_up : 1;            /* the TLS handshake completed */
	bool close_pending : 1;     /* conn_close while held: at the release */
	bool authed : 1;            /* conn_set_authenticated was called */
	bool in_more : 1;           /* the last read filled its room */
	bool in_big : 1;            /* the last pass read more than IN_INIT */
	bool in_raw : 1;            /* conn_peek since the last conn_getline */
	unsigned char addr_key[16]; /* peer address, IPv4 mapped into IPv6 */
	char id[17];
	char peer[46];
};

struct listener {
	ev_io io;
	struct server *srv;
	int fd;
	int tag;
	int port;
	bool implicit_tls;
};

struct ip_count;

struct server {
	char name[32];
	struct ev_loop *loop;
	const struct config *cfg;
	const struct conn_handlers *h;
	size_t line_limit;
	char *refuse_msg;
	void *daemon_ctx;           /* server_params.ctx */
	SSL_CTX *ctx;

	struct listener **listeners;
	size_t n_listeners;
	ev_timer accept_pause;      /* listeners off for a while after EMFILE */

	struct conn *conns;
	unsigned n_conns;           /* structs, with dead ones still held */
	unsigned n_open;            /* counted toward the limits */
	struct ip_count **ip_table;
	uint64_t id_base, id_next;

	ev_signal sig_term, sig_int, sig_hup;
	ev_timer stop_timer;
	bool stopping;
	void (*reload)(void *arg);
	void *reload_arg;
};

/* server.c */
void server_conn_gone(struct server *s, struct conn *c);
void server_conn_unlink(struct server *s, struct conn *c);
/* c logged in: it leaves its address's unauthenticated count. */
void server_conn_authed(struct server *s, struct conn *c);

/* conn.c */
struct conn *conn_new(struct server *s, int fd, int tag, bool implicit_tls);
void conn_enter(struct conn *c);
void conn_leave(struct conn *c);
void conn_kick(struct conn *c);
void conn_fail(struct conn *c, const char *reason);
void conn_force_free(struct conn *c);
/* Calls accept(); closes the conn if it returns NULL. */
void conn_do_accept(struct conn *c);
/* Where the next read goes: grows the buffer if it is full. 0 if no room. */
size_t conn_in_space(struct conn *c, char **p_r);
void conn_out_reserve(struct conn *c, size_t extra);
/* The idle timer after a phase change (handshake done, back to open). */
void conn_timer_reset(struct conn *c);

/* conn_send.c */
/* Ends a stream: closes its file (with the conn, or at its end). */
void conn_send_free(struct conn *c);
/* The output drained below the low-water mark: queue more of the stream,
   and call its done() once it is complete. */
void conn_send_continue(struct conn *c);

/* tls.c */
void tls_conn_start(struct conn *c);
void tls_conn_step(struct conn *c);
/* Read into p[0..len): >0 bytes, 0 would block, -1 EOF, -2 error. */
ssize_t tls_conn_read(struct conn *c, char *p, size_t len);
/* >0 bytes written, 0 would block, -1 error. */
ssize_t tls_conn_write(struct conn *c, const char *p, size_t len);
bool tls_conn_has_pending(const struct conn *c);
void tls_conn_shutdown(struct conn *c);

/* compress.c */
void z_conn_free(struct conn *c);
/* Deflates p[0..len) into the output queue. */
void z_conn_write(struct conn *c, const void *p, size_t len);
/* Z_SYNC_FLUSH of anything deflated since the last flush. */
void z_conn_flush(struct conn *c);
/* Where raw (compressed) bytes from the socket go. 0 if no room. With
   p_r NULL only tells whether there is room, allocating nothing. */
size_t z_conn_raw_space(struct conn *c, char **p_r);
void z_conn_raw_added(struct conn *c, size_t n);
/* Inflates what it can into the input buffer. -1 on a corrupt stream. */
int z_conn_inflate(struct conn *c);
bool z_conn_has_pending(const struct conn *c);
void z_conn_trim(struct conn *c);

#endif
