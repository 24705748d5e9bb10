/* auth: password hashing and verification (libsodium Argon2id) and the
   per-address failed-login throttle. pw_* block for tens of milliseconds:
   run them on a worker thread, never on the event loop. */
#ifndef POSTROOM_AUTH_H
#define POSTROOM_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define PW_HASH_MAX 128   /* >= crypto_pwhash_STRBYTES */

/* Argon2id via crypto_pwhash_str (interactive limits). 0 or -1. */
int pw_hash(const char *password, char out[PW_HASH_MAX]);
/* crypto_pwhash_str_verify; false on mismatch or malformed hash. */
bool pw_verify(const char *hash, const char *password);
/* Constant work for an unknown user, so timing does not tell users apart. */
void pw_verify_dummy(const char *password);

/* Failed logins per peer address, kept by one process on its loop thread.
   A native IPv6 address counts for its whole /64. */
struct auth_throttle;
struct auth_throttle *auth_throttle_new(void);
void auth_throttle_free(struct auth_throttle **t);
/* Records a failure from addr; returns the delay in seconds to wait before
   answering it (grows with the count: 1, 2, 4, ... up to 15 s). */
double auth_throttle_fail(struct auth_throttle *t, const char *addr);
/* Failures from addr in the current window (forgotten after 15 minutes of
   quiet). A daemon closes a session past its own limit. */
unsigned auth_throttle_count(struct auth_throttle *t, const char *addr);
void auth_throttle_success(struct auth_throttle *t, const char *addr);
/* Brackets one password check from addr, begin before it starts (on the
   loop), end when its result is in (before _fail or _success). Returns
   false, counting nothing, if the attempt must be refused unchecked: addr
   has `limit` failures, or has failed before and its failures plus the
   checks still running reach `limit` (so parallel sessions cannot each
   make a guess below the limit; a burst of first logins is not refused). */
bool auth_throttle_begin(struct auth_throttle *t, const char *addr,
    unsigned limit);
void auth_throttle_end(struct auth_throttle *t, const char *addr);

#endif
