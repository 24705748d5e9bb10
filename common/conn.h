/* conn: listeners and connections on libev over plain TCP or TLS (OpenSSL 3),
   with a bounded input buffer (lines and raw bytes), an output queue with
   back-pressure, idle timeouts, connection limits, STARTTLS, COMPRESS=DEFLATE
   and graceful shutdown on signals. Protocol-agnostic: it knows nothing of
   SMTP, POP3 or IMAP. Everything runs on the loop thread. */
#ifndef POSTROOM_CONN_H
#define POSTROOM_CONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "config.h"

struct buf;
struct conn;
struct server;

/* Callbacks of the daemon. sess is what accept() returned. */
struct conn_handlers {
	/* A new connection (for an implicit-TLS listener: after the handshake).
	   tag is the listen tag given to server_listen(). Write the greeting
	   here. Return the session, or NULL to close the connection. */
	void *(*accept)(struct conn *c, int tag);
	/* Input is buffered: consume it with conn_getline()/conn_peek(). Called
	   again after every return while unconsumed complete input remains and
	   the conn is not paused; not called while paused or held closed. */
	void (*input)(struct conn *c, void *sess);
	/* The line-protocol convenience, used when input is NULL: one
	   complete line per call (as conn_getline gives it; NULL and 0 for
	   a line over the limit, whose bytes are skipped). Returns 1 or 0
	   to go on (conn calls again for the next line unless the daemon
	   paused: 0 says it did), or -1 to close the connection. */
	int (*input_line)(struct conn *c, void *sess, char *line, size_t len);
	/* The output queue went from congested to below the low-water mark. Used
	   to resume streaming a big reply. May be NULL. */
	void (*drain)(struct conn *c, void *sess);
	/* conn_starttls() finished: ok is true, or false (then the conn closes
	   right after this returns). May be NULL. */
	void (*tls_done)(struct conn *c, void *sess, bool ok);
	/* The idle timer expired. The handler may queue a goodbye; the conn is
	   then closed (after flushing) whatever the handler does. May be NULL. */
	void (*timeout)(struct conn *c, void *sess);
	/* The daemon is stopping: queue a goodbye (421 / * BYE / -ERR). The conn
	   is then closed after flushing. A conn paused at that moment (waiting
	   for a worker) stays open until its conn_resume(), so the reply of
	   the work in flight still goes out; it is closed right after (or
	   when the 3 s of server_run's stop run out). May be NULL. */
	void (*shutdown)(struct conn *c, void *sess);
	/* The connection is gone (peer closed, error, conn_close done, timeout).
	   Free the session here. Never called while the conn is held
	   (conn_hold); then it comes at the last conn_release(). After this the
	   conn pointer is invalid. */
	void (*closed)(struct conn *c, void *sess);
};

struct server_params {
	const char *name;                 /* "imapd": for logs */
	struct ev_loop *loop;
	const struct config *cfg;         /* borrowed; must outlive the server */
	const struct conn_handlers *h;
	size_t line_limit;                /* initial max line length, bytes */
	/* Written raw (plaintext listeners only) before closing a connection
	   refused for the total or per-address limit, e.g.
	   "421 4.7.0 Too many connections\r\n". May be NULL. */
	const char *refuse_msg;
	/* Handed to every connection (conn_server_ctx): how a session finds
	   its daemon without a global. May be NULL. */
	void *ctx;
};

/* Owned; free with server_free. Limits come from cfg (max_connections,
   max_connections_per_ip, max_unauth_connections_per_ip for connections
   not logged in; a native IPv6 peer is counted per /64). When
   max_connections is reached, a newcomer makes room by closing the longest
   idle connection that is not logged in, of the address holding the most
   connections if that is more than the newcomer's (the idle timeout()
   handler says goodbye); only if there is none is it refused. */
struct server *server_new(const struct server_params *p);
void server_free(struct server **s);

/* Loads (or reloads) the certificate chain and key; TLS 1.2+ only.
   0 or -1 with err. On reload failure the old context stays in use. */
int server_tls_load(struct server *s, const char *cert, const char *key,
    char *err, size_t errlen);
bool server_has_tls(const struct server *s);

/* Binds and listens on every address of the list (config syntax).
   implicit_tls: handshake before accept(). 0 or -1 with err
   ("cannot bind 127.0.0.1:25: Address already in use"). */
int server_listen(struct server *s, const char *listen_list, int tag,
    bool implicit_tls, char *err, size_t errlen);

/* Drops root privileges to cfg->user if set and running as root.
   0 or -1 with err. */
int server_drop_privileges(struct server *s, char *err, size_t errlen);

/* Runs the loop until SIGTERM/SIGINT: then stops the listeners, calls
   shutdown() on every connection, waits up to 3 s for output to flush, and
   returns 0. SIGHUP calls reload(arg) (may be NULL) and reloads the TLS
   certificate from cfg. SIGPIPE is ignored. */
int server_run(struct server *s, void (*reload)(void *arg), void *arg);

/* Number of open connections (for tests/logs). */
unsigned server_conn_count(const struct server *s);

/* Listening sockets, in the order server_listen() created them (a host
   name may give several), and the port each is bound to: with port 0 in
   the listen list the kernel picks one, so tests can connect. -1 if i is
   out of range. */
size_t server_listener_count(const struct server *s);
int server_bound_port(const struct server *s, size_t i);

/* ---- input ---- */

/* Returns 1 with the next line in *line_r and *len_r (CRLF or bare LF
   removed, NUL-terminated; may contain NUL bytes, use len), 0 if no complete
   line is buffered, or -1 once for a line longer than the line limit: its
   bytes are discarded up to the next LF (across reads if need be). The line
   is valid until input() returns or the next conn_getline/conn_peek/
   conn_consume/conn_start_compress on c, and stays valid while c is paused
   (nothing is read then). */
int conn_getline(struct conn *c, char **line_r, size_t *len_r);
/* Raw access to the buffered input (literals, DATA, BDAT). Returns the
   number of bytes available at *p_r (0 if none). Until the next
   conn_getline, input may then be read in large chunks even before login
   (otherwise a connection not logged in buffers at most its line limit
   and a little). */
size_t conn_peek(struct conn *c, const char **p_r);
/* Bytes allocated for c's input buffer (tests, benchmarks). */
size_t conn_in_allocated(const struct conn *c);
/* Drops n peeked bytes. The idle timer is re-armed (at the end of the
   callback) only by input that shows progress: a line from conn_getline, a
   consumed chunk holding a LF, or at least 512 bytes. Bytes that trickle in
   without completing anything do not keep a connection alive. */
void conn_consume(struct conn *c, size_t n);
/* Changes the max line length (e.g. tighter before authentication). */
void conn_set_line_limit(struct conn *c, size_t max);
/* Stop / restart calling input(). conn_resume() schedules input() soon if
   anything is buffered. Counted: each pause needs one resume. */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);
bool conn_is_paused(const struct conn *c);

/* ---- output ---- */

void conn_write(struct conn *c, const void *data, size_t len);
void conn_puts(struct conn *c, const char *s);
void conn_printf(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void conn_vprintf(struct conn *c, const char *fmt, va_list ap);
/* Bytes queued and not yet written to the socket. */
size_t conn_outq_len(const struct conn *c);
/* True above the high-water mark (256 KiB): a streaming writer stops and
   waits for drain(). While congested the conn does not read input; past a
   hard limit (16 MiB) the connection is aborted. */
bool conn_is_congested(const struct conn *c);

/* ---- lifecycle ---- */

/* Flush queued output (for at most a few seconds), then close; closed()
   follows. Input is ignored from now on. Safe to call twice. On a held
   conn (conn_hold) the close completes at the last conn_release(): what
   the holder writes before releasing (the reply of a worker job) still
   goes out first, and conn_is_closing() is true meanwhile. */
void conn_close(struct conn *c);
/* Close at once, dropping queued output. */
void conn_abort(struct conn *c);
/* Keeps the conn (and so the session) alive across asynchronous work: a
   peer close while held is remembered and closed() comes at the last
   release; a conn_close() while held starts its flush there. Pair every
   hold with a release. conn_release may run closed() (and so free the
   session) before it returns. */
void conn_hold(struct conn *c);
void conn_release(struct conn *c);
bool conn_is_closing(const struct conn *c);

/* ---- streaming a file ---- */

/* Rewrites a piece of a file on its way to the peer (POP3 byte-stuffing,
   TOP's line count): appends the output for in[0..len) to out. last: no
   more input follows (the region ended, or the file ended early; len may
   be 0): append any trailer. Returns 1 for more input, 0 once it wants no
   more (it has written its trailer then). Runs on the loop thread. */
typedef int conn_filter_cb(void *arg, const char *in, size_t len, bool last,
    struct buf *out);
/* The stream is complete: every byte (and the filter's trailer) is queued.
   Not called when the conn dies first. */
typedef void conn_send_done_cb(struct conn *c, void *arg);

/* Queues len bytes of fd from offset off (fewer if the file is shorter),
   through filter (NULL: as they are), without holding more than a chunk
   plus the output high-water mark in memory: reading stops while the
   output queue is congested and resumes as it drains. The conn owns fd
   from now on (closed at the end, or with the conn). While a stream runs,
   input() is not called (pipelined commands wait for it) and the idle
   timer restarts whenever the peer takes output. A read error aborts the
   connection (the reply is half sent). Returns 1 if everything was queued
   before returning (done is not called), 0 if the stream goes on (done
   comes later), -1 if a stream is already running (fd is closed). filter
   and done are called with arg, which must live as long as the stream. */
int conn_send_fd(struct conn *c, int fd, uint64_t off, uint64_t len,
    conn_filter_cb *filter, conn_send_done_cb *done, void *arg);
/* Whether a conn_send_fd stream is still running (a goodbye line written
   now would land inside it). */
bool conn_is_sending(const struct conn *c);

/* Idle timeout in seconds, restarted on every byte received; 0 = none. */
void conn_set_timeout(struct conn *c, double seconds);

/* The peer logged in. Until then the connection counts toward
   max_unauth_connections_per_ip too, and a full table may close it (the
   longest idle) to make room for a newcomer; from now on it counts only
   toward max_connections_per_ip and is never closed for room. Call it on
   the loop thread when a login succeeds. Idempotent. */
void conn_set_authenticated(struct conn *c);
bool conn_is_authenticated(const struct conn *c);

/* ---- TLS and compression ---- */

/* Starts a server-side TLS handshake once the queued output (the "ready to
   start TLS" reply) has been written in plaintext. Discards any input
   already buffered (STARTTLS injection). tls_done() reports the result.
   Returns -1 if the server has no certificate or TLS is already on. */
int conn_starttls(struct conn *c);
bool conn_is_tls(const struct conn *c);
/* "TLSv1.3" and the cipher name, or NULL without TLS. Borrowed. */
const char *conn_tls_version(const struct conn *c);
const char *conn_tls_cipher(const struct conn *c);
/* RFC 4978 COMPRESS=DEFLATE: output queued so far is sent uncompressed;
   everything written after this call is deflated, and all input not yet
   consumed (and everything after) is inflated. -1 if already on. */
int conn_start_compress(struct conn *c);
bool conn_is_compressed(const struct conn *c);

/* ---- identity ---- */

const char *conn_peer_addr(const struct conn *c);   /* "127.0.0.1", "::1" */
const char *conn_id(const struct conn *c);          /* 16 hex chars */
int conn_tag(const struct conn *c);                  /* the listen tag */
struct ev_loop *conn_loop(const struct conn *c);
void *conn_session(const struct conn *c);
/* server_params.ctx of the server that accepted c. */
void *conn_server_ctx(const struct conn *c);

/* Releases idle per-connection memory (OpenSSL buffers, empty input and
   output buffers, and with COMPRESS both zlib states, ~100 KiB, which come
   back transparently on the next byte). Call when a session goes idle
   (IMAP IDLE). Must not be called while the daemon still uses a line it
   got from conn_getline. */
void conn_trim(struct conn *c);

#endif
