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

/* Verified credentials, remembered for a short time so that a client
   logging in again and again (a phone polling, a reconnect storm) costs
   an LMDB read rather than an Argon2id run, as Dovecot's auth_cache does.
   One cache per process, any thread. An entry is a keyed BLAKE2b hash
   (a random key per process) of the name and password, never either of
   them, with a hash of the stored password hash it was checked against:
   a password changed or reset (a new random salt, even for the same
   password) or a user deleted and made again no longer matches. Only
   successes are stored. At most AUTH_CACHE_MAX entries, the oldest go. */
#define AUTH_CACHE_MAX 4096
/* How long a verified login is remembered, in seconds; 0 (the start
   value) turns the cache off and empties it. */
void auth_cache_set_ttl(double ttl);
/* Whether (user, pass) has a live entry: then its check will be cheap (a
   hint to schedule it: the check itself still compares the stored hash). */
bool auth_cache_probe(const char *user, const char *pass);
/* Whether (user, pass) was verified against exactly hash (the stored
   Argon2id string) within the ttl. An entry for another hash is dropped. */
bool auth_cache_check(const char *user, const char *pass, const char *hash);
/* Whether the last auth_cache_check on this thread was a hit (for the
   log line); clears it. */
bool auth_cache_hit_taken(void);
/* Remembers that (user, pass) verified against hash. */
void auth_cache_put(const char *user, const char *pass, const char *hash);
/* Forgets (user, pass) (the user is gone). */
void auth_cache_drop(const char *user, const char *pass);

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
/* What auth_throttle_begin says about one login attempt. REFUSE is 0 so
   a caller may test the result as "not refused". */
enum auth_begin {
	AUTH_BEGIN_REFUSE = 0,  /* refused unchecked: nothing reserved */
	AUTH_BEGIN_GO,          /* a guess is reserved: check it now */
	AUTH_BEGIN_WAIT,        /* nothing reserved: ask again after the next
	                           auth_throttle_end for this address */
};
/* Brackets one password check from addr, begin before it starts (on the
   loop), end when its result is in (before _fail or _success). A guess
   counts from its start: the failures plus the checks running never pass
   `limit`, so parallel sessions cannot each make a guess below it. When
   they would: REFUSE if addr has failed before, else WAIT (a burst of
   first logins, an office behind one NAT, queues rather than fails; its
   first failure turns the queue into refusals). REFUSE also once addr
   has `limit` failures. */
enum auth_begin auth_throttle_begin(struct auth_throttle *t, const char *addr,
    unsigned limit);
void auth_throttle_end(struct auth_throttle *t, const char *addr);

#endif
