/* tls: the OpenSSL 3 layer of conn. Server context (TLS 1.2 minimum, loaded
   and reloaded from PEM files), the non-blocking handshake for implicit TLS
   and STARTTLS, and record I/O for conn.c. TLS 1.2 offers only the suites
   of Mozilla's "intermediate" policy unless tls_ciphers says otherwise;
   TLS 1.3 keeps OpenSSL's suites. Sessions stay cheap while idle:
   SSL_MODE_RELEASE_BUFFERS frees the record buffers between records, and
   there is no server-side session cache. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "config.h"
#include "conn_private.h"
#include "log.h"
#include "util.h"

/* The ECDHE suites of Mozilla's "intermediate" TLS 1.2 list (server side
   TLS guidelines, version 5.7): forward secrecy with AEAD ciphers (AES-GCM,
   ChaCha20-Poly1305) only. No static RSA key exchange, no CBC, no SHA-1
   MAC: scanners grade those weak. The list's DHE suites are left out of
   the default: a DHE server must use a published prime (OpenSSL's RFC 3526
   or RFC 7919 groups), which testssl.sh grades LOW ("common prime", the
   LOGJAM check), and every client that does TLS 1.2 with AEAD also does
   ECDHE. tls_ciphers can add them back (DH groups are chosen
   automatically). */
#define TLS_CIPHERS_DEFAULT \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static void
tls_err_string(char *out, size_t size)
{
	unsigned long e = ERR_peek_last_error();

	if (e != 0)
		ERR_error_string_n(e, out, size);
	else if (errno != 0)
		snprintf(out, size, "%s", strerror(errno));
	else
		snprintf(out, size, "connection closed");
	ERR_clear_error();
}

int
server_tls_load(struct server *s, const char *cert, const char *key,
    char *err, size_t errlen)
{
	SSL_CTX *ctx;
	char why[256];

	ERR_clear_error();
	errno = 0;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		tls_err_string(why, sizeof(why));
		snprintf(err, errlen, "cannot create TLS context: %s", why);
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* IGNORE_UNEXPECTED_EOF: a peer that just drops the TCP connection is
	   an ordinary end of session for mail clients, not an error. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	const char *ciphers = s->cfg != NULL && s->cfg->tls_ciphers != NULL ?
	    s->cfg->tls_ciphers : TLS_CIPHERS_DEFAULT;
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		tls_err_string(why, sizeof(why));
		snprintf(err, errlen, "bad tls_ciphers \"%s\": %s", ciphers,
		    why);
		goto fail;
	}
	/* For DHE suites a tls_ciphers may add: a group matching the key's
	   strength (2048 bits for RSA-2048). */
	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_err_string(why, sizeof(why));
		snprintf(err, errlen, "cannot load certificate %s: %s", cert,
		    why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_err_string(why, sizeof(why));
		snprintf(err, errlen, "cannot load key %s: %s", key, why);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_err_string(why, sizeof(why));
		snprintf(err, errlen,
		    "key %s does not match certificate %s: %s", key, cert,
		    why);
		goto fail;
	}
	/* Open connections keep a reference to the old context. */
	SSL_CTX_free(s->ctx);
	s->ctx = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -1;
}

bool
server_has_tls(const struct server *s)
{
	return s->ctx != NULL;
}

static void
tls_handshake_done(struct conn *c)
{
	const struct conn_handlers *h = c->srv->h;

	c->phase = PH_OPEN;
	c->hs_events = 0;
	c->tls_up = true;
	conn_timer_reset(c);
	log_debug("%s tls version=%s cipher=%s", c->id, SSL_get_version(c->ssl),
	    SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
	if (!c->accepted)
		conn_do_accept(c);
	else if (h->tls_done != NULL)
		h->tls_done(c, c->sess, true);
}

static void
tls_handshake_failed(struct conn *c, const char *why)
{
	const struct conn_handlers *h = c->srv->h;

	log_info("%s tls result=fail reason=\"%s\"", c->id, why);
	if (c->reason == NULL)
		c->reason = "tls-handshake-failed";
	if (c->accepted && h->tls_done != NULL)
		h->tls_done(c, c->sess, false);
	conn_abort(c);
}

void
tls_conn_start(struct conn *c)
{
	c->ssl = SSL_new(c->srv->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		tls_handshake_failed(c, "cannot create TLS session");
		return;
	}
	SSL_set_accept_state(c->ssl);
	c->phase = PH_HANDSHAKE;
	c->hs_events = EV_READ;
	conn_timer_reset(c);
	tls_conn_step(c);
}

void
tls_conn_step(struct conn *c)
{
	char why[256];
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		tls_handshake_done(c);
		return;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		c->hs_events = EV_READ;
		return;
	case SSL_ERROR_WANT_WRITE:
		c->hs_events = EV_WRITE;
		return;
	default:
		tls_err_string(why, sizeof(why));
		tls_handshake_failed(c, why);
		return;
	}
}

ssize_t
tls_conn_read(struct conn *c, char *p, size_t len)
{
	int n;

	c->tls_read_wants_write = false;
	ERR_clear_error();
	n = SSL_read(c->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
		return 0;
	case SSL_ERROR_WANT_WRITE:
		c->tls_read_wants_write = true;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return -1;
	default:
		ERR_clear_error();
		return -2;
	}
}

ssize_t
tls_conn_write(struct conn *c, const char *p, size_t len)
{
	int n;

	c->tls_write_wants_read = false;
	ERR_clear_error();
	n = SSL_write(c->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_WRITE:
		return 0;
	case SSL_ERROR_WANT_READ:
		c->tls_write_wants_read = true;
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

bool
tls_conn_has_pending(const struct conn *c)
{
	/* Only decrypted bytes: a partial record would make us spin. */
	return c->tls_up && c->phase != PH_DEAD && SSL_pending(c->ssl) > 0;
}

void
tls_conn_shutdown(struct conn *c)
{
	/* One close_notify, best effort; we do not wait for the peer's. */
	ERR_clear_error();
	if (c->tls_up)
		SSL_shutdown(c->ssl);
	ERR_clear_error();
}

int
conn_starttls(struct conn *c)
{
	if (c->srv->ctx == NULL || c->ssl != NULL || c->z != NULL ||
	    c->phase != PH_OPEN)
		return -1;
	/* STARTTLS injection: whatever the peer pipelined after the command
	   was sent in plaintext and must not be read as if it came over TLS. */
	c->consumed += c->in_end - c->in_start;
	c->in_start = c->in_end = 0;
	c->skipping = false;
	c->phase = PH_STARTTLS_WAIT;
	conn_timer_reset(c);
	if (c->depth == 0)
		conn_kick(c);
	return 0;
}

bool
conn_is_tls(const struct conn *c)
{
	return c->tls_up;
}

const char *
conn_tls_version(const struct conn *c)
{
	return conn_is_tls(c) ? SSL_get_version(c->ssl) : NULL;
}

const char *
conn_tls_cipher(const struct conn *c)
{
	return conn_is_tls(c) ?
	    SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)) : NULL;
}
