/* auth: Argon2id password hashes through libsodium's crypto_pwhash_str and
   the per-address failed-login throttle. pw_* burn tens of milliseconds of
   CPU and memory on purpose: call them from a worker thread, never from the
   event loop. The throttle is single-threaded (one per loop). */
#include "auth.h"

#include <arpa/inet.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "log.h"
#include "util.h"

_Static_assert(PW_HASH_MAX >= crypto_pwhash_STRBYTES,
    "PW_HASH_MAX too small for crypto_pwhash_str");

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

/* A valid Argon2id hash with libsodium's interactive limits (the ones
   pw_hash uses) of a random password nobody knows. Verifying against it
   costs what verifying a real user's hash costs, so an unknown user cannot
   be told from a wrong password by timing. */
static const char dummy_hash[crypto_pwhash_STRBYTES] =
    "$argon2id$v=19$m=65536,t=2,p=1$ACJpSnBX7HE41y78jM5CBw$"
    "2aFNONbIxdZEpYM+3cWNmHzhf7kYGPkN25XavnOU81k";

static void
sodium_setup(void)
{
	if (sodium_init() < 0)
		fatalx("auth: sodium_init failed");
}

static void
auth_init_once(void)
{
	pthread_once(&sodium_once, sodium_setup);
}

int
pw_hash(const char *password, char out[PW_HASH_MAX])
{
	auth_init_once();
	memset(out, 0, PW_HASH_MAX);
	if (crypto_pwhash_str(out, password, strlen(password),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return -1;
	return 0;
}

bool
pw_verify(const char *hash, const char *password)
{
	auth_init_once();
	if (hash == NULL || password == NULL ||
	    strnlen(hash, PW_HASH_MAX) >= PW_HASH_MAX)
		return false;
	return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

void
pw_verify_dummy(const char *password)
{
	/* volatile: the result is meaningless but the work must happen. */
	volatile int r;

	auth_init_once();
	r = crypto_pwhash_str_verify(dummy_hash, password != NULL ?
	    password : "", password != NULL ? strlen(password) : 0);
	(void)r;
}

/* ---- verified-credentials cache ---- */

#define CACHE_BUCKETS 4096      /* a power of two */
#define CACHE_KEY_BYTES 32

struct cache_entry {
	struct cache_entry *next;               /* in its bucket */
	struct cache_entry *older, *newer;      /* by insertion */
	double expires;                         /* CLOCK_MONOTONIC */
	unsigned char key[CACHE_KEY_BYTES];     /* of user and password */
	unsigned char hash[CACHE_KEY_BYTES];    /* of the stored hash */
};

static struct {
	pthread_mutex_t mu;
	double ttl;
	size_t n;
	struct cache_entry *oldest, *newest;
	struct cache_entry *buckets[CACHE_BUCKETS];
	unsigned char secret[crypto_generichash_KEYBYTES];
	bool keyed;
} cache = { .mu = PTHREAD_MUTEX_INITIALIZER };

static double mono_now(void);

static _Thread_local bool last_hit;

bool
auth_cache_hit_taken(void)
{
	bool hit = last_hit;

	last_hit = false;
	return hit;
}

/* The keyed hash of user and password (NUL between: "ab"+"c" is not
   "a"+"bc"). */
static void
cache_key(const char *user, const char *pass, unsigned char out[32])
{
	crypto_generichash_state st;
	static const unsigned char nul = 0;

	crypto_generichash_init(&st, cache.secret, sizeof(cache.secret),
	    CACHE_KEY_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)user,
	    strlen(user));
	crypto_generichash_update(&st, &nul, 1);
	crypto_generichash_update(&st, (const unsigned char *)pass,
	    strlen(pass));
	crypto_generichash_final(&st, out, CACHE_KEY_BYTES);
	sodium_memzero(&st, sizeof(st));
}

static struct cache_entry **
cache_slot(const unsigned char key[32])
{
	uint32_t b;

	memcpy(&b, key, sizeof(b));
	return &cache.buckets[b & (CACHE_BUCKETS - 1)];
}

/* Unlinks and frees e. Lock held. */
static void
cache_remove(struct cache_entry *e)
{
	struct cache_entry **pp = cache_slot(e->key);

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		cache.oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		cache.newest = e->older;
	sodium_memzero(e, sizeof(*e));
	free(e);
	cache.n--;
}

/* The live entry for key, or NULL (an expired one is removed). Lock held. */
static struct cache_entry *
cache_find(const unsigned char key[32], double now)
{
	struct cache_entry *e = *cache_slot(key);

	for (; e != NULL; e = e->next) {
		if (sodium_memcmp(e->key, key, CACHE_KEY_BYTES) != 0)
			continue;
		if (now < e->expires)
			return e;
		cache_remove(e);
		return NULL;
	}
	return NULL;
}

void
auth_cache_set_ttl(double ttl)
{
	double now;

	auth_init_once();
	pthread_mutex_lock(&cache.mu);
	if (!cache.keyed) {
		randombytes_buf(cache.secret, sizeof(cache.secret));
		cache.keyed = true;
	}
	cache.ttl = ttl > 0 ? ttl : 0;
	if (cache.ttl == 0)
		while (cache.oldest != NULL)
			cache_remove(cache.oldest);
	/* A shorter TTL (SIGHUP) holds for the entries made before it too. */
	now = mono_now();
	for (struct cache_entry *e = cache.oldest; e != NULL; e = e->newer)
		if (e->expires > now + cache.ttl)
			e->expires = now + cache.ttl;
	pthread_mutex_unlock(&cache.mu);
}

bool
auth_cache_probe(const char *user, const char *pass)
{
	unsigned char key[CACHE_KEY_BYTES];
	bool found;

	pthread_mutex_lock(&cache.mu);
	if (cache.ttl > 0 && cache.n > 0) {
		cache_key(user, pass, key);
		found = cache_find(key, mono_now()) != NULL;
	} else {
		found = false;
	}
	pthread_mutex_unlock(&cache.mu);
	return found;
}

bool
auth_cache_check(const char *user, const char *pass, const char *hash)
{
	unsigned char key[CACHE_KEY_BYTES], hh[CACHE_KEY_BYTES];
	struct cache_entry *e;
	bool ok = false;

	pthread_mutex_lock(&cache.mu);
	if (cache.ttl > 0 && cache.n > 0) {
		cache_key(user, pass, key);
		crypto_generichash(hh, sizeof(hh), (const unsigned char *)hash,
		    strlen(hash), cache.secret, sizeof(cache.secret));
		if ((e = cache_find(key, mono_now())) != NULL) {
			ok = sodium_memcmp(e->hash, hh, sizeof(hh)) == 0;
			if (!ok)
				cache_remove(e);    /* the password changed */
		}
	}
	pthread_mutex_unlock(&cache.mu);
	last_hit = ok;
	return ok;
}

void
auth_cache_put(const char *user, const char *pass, const char *hash)
{
	unsigned char key[CACHE_KEY_BYTES];
	struct cache_entry *e;
	double now = mono_now();

	pthread_mutex_lock(&cache.mu);
	if (cache.ttl <= 0) {
		pthread_mutex_unlock(&cache.mu);
		return;
	}
	cache_key(user, pass, key);
	if ((e = cache_find(key, now)) != NULL)
		cache_remove(e);
	while (cache.oldest != NULL && (cache.n >= AUTH_CACHE_MAX ||
	    cache.oldest->expires <= now))
		cache_remove(cache.oldest);
	e = xcalloc(1, sizeof(*e));
	memcpy(e->key, key, sizeof(key));
	crypto_generichash(e->hash, sizeof(e->hash), (const unsigned char *)hash,
	    strlen(hash), cache.secret, sizeof(cache.secret));
	e->expires = now + cache.ttl;
	e->next = *cache_slot(key);
	*cache_slot(key) = e;
	e->older = cache.newest;
	if (cache.newest != NULL)
		cache.newest->newer = e;
	else
		cache.oldest = e;
	cache.newest = e;
	cache.n++;
	pthread_mutex_unlock(&cache.mu);
}

void
auth_cache_drop(const char *user, const char *pass)
{
	unsigned char key[CACHE_KEY_BYTES];
	struct cache_entry *e;

	pthread_mutex_lock(&cache.mu);
	if (cache.n > 0) {
		cache_key(user, pass, key);
		if ((e = cache_find(key, mono_now())) != NULL)
			cache_remove(e);
	}
	pthread_mutex_unlock(&cache.mu);
}

/* ---- failed-login throttle ---- */

#define THROTTLE_BUCKETS 1024
#define THROTTLE_FORGET_SECS (15.0 * 60)
#define THROTTLE_MAX_DELAY 15.0
/* Bounds the memory a flood from many addresses can take. */
#define THROTTLE_MAX_ENTRIES 65536

struct throttle_entry {
	struct throttle_entry *next;
	double last;            /* CLOCK_MONOTONIC seconds of the last failure */
	unsigned count;
	unsigned pending;           /* attempts begun and not ended */
	char addr[];
};

struct auth_throttle {
	struct throttle_entry *buckets[THROTTLE_BUCKETS];
	size_t n_entries;
	unsigned ops_since_sweep;
	double oldest;          /* no entry's last is older (set by a sweep) */
};

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t
addr_hash(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

struct auth_throttle *
auth_throttle_new(void)
{
	return xcalloc(1, sizeof(struct auth_throttle));
}

void
auth_throttle_free(struct auth_throttle **tp)
{
	struct auth_throttle *t = *tp;
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < THROTTLE_BUCKETS; i++) {
		struct throttle_entry *e = t->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t);
	*tp = NULL;
}

/* The throttle's key for a peer: the address itself, except that a native
   IPv6 address stands for its /64, which one peer typically holds whole
   (else each guess could come from a new address). */
static const char *
throttle_key(const char *addr, char *buf, size_t size)
{
	struct in6_addr a;

	if (strchr(addr, ':') == NULL || inet_pton(AF_INET6, addr, &a) != 1 ||
	    IN6_IS_ADDR_V4MAPPED(&a))
		return addr;
	memset(a.s6_addr + 8, 0, 8);
	if (inet_ntop(AF_INET6, &a, buf, (socklen_t)size) == NULL)
		return addr;
	return buf;
}

/* Drops entries quiet for longer than the window. */
static void
throttle_sweep(struct auth_throttle *t, double now)
{
	size_t i;

	t->oldest = now;
	for (i = 0; i < THROTTLE_BUCKETS; i++) {
		struct throttle_entry **pp = &t->buckets[i];
		while (*pp != NULL) {
			struct throttle_entry *e = *pp;
			if (now - e->last > THROTTLE_FORGET_SECS &&
			    e->pending == 0) {
				*pp = e->next;
				free(e);
				t->n_entries--;
			} else {
				if (e->last < t->oldest)
					t->oldest = e->last;
				pp = &e->next;
			}
		}
	}
	t->ops_since_sweep = 0;
}

/* Finds addr's live entry; a stale one is treated as absent and removed. */
static struct throttle_entry *
throttle_find(struct auth_throttle *t, const char *addr, double now)
{
	struct throttle_entry **pp = &t->buckets[addr_hash(addr) %
	    THROTTLE_BUCKETS];

	for (; *pp != NULL; pp = &(*pp)->next) {
		struct throttle_entry *e = *pp;
		if (strcmp(e->addr, addr) != 0)
			continue;
		if (now - e->last > THROTTLE_FORGET_SECS) {
			if (e->pending > 0) {
				/* Old failures are forgiven, not the attempts
				   still running. */
				e->count = 0;
				return e;
			}
			*pp = e->next;
			free(e);
			t->n_entries--;
			return NULL;
		}
		return e;
	}
	return NULL;
}

/* addr's entry (addr already a key), made if need be; NULL if the table
   is full. */
static struct throttle_entry *
throttle_get(struct auth_throttle *t, const char *addr, double now)
{
	struct throttle_entry *e;
	size_t len;
	uint32_t b;

	/* A full table is swept again only once its oldest entry can have
	   gone stale: else every attempt during a flood would walk all
	   THROTTLE_MAX_ENTRIES entries on the loop thread to free nothing. */
	if (++t->ops_since_sweep >= 1024 ||
	    (t->n_entries >= THROTTLE_MAX_ENTRIES &&
	    now - t->oldest > THROTTLE_FORGET_SECS))
		throttle_sweep(t, now);
	e = throttle_find(t, addr, now);
	if (e != NULL)
		return e;
	if (t->n_entries >= THROTTLE_MAX_ENTRIES)
		return NULL;
	len = strlen(addr);
	e = xmalloc(sizeof(*e) + len + 1);
	memcpy(e->addr, addr, len + 1);
	e->count = 0;
	e->pending = 0;
	e->last = now;
	b = addr_hash(addr) % THROTTLE_BUCKETS;
	e->next = t->buckets[b];
	t->buckets[b] = e;
	t->n_entries++;
	return e;
}

enum auth_begin
auth_throttle_begin(struct auth_throttle *t, const char *addr, unsigned limit)
{
	char kbuf[INET6_ADDRSTRLEN];
	double now = mono_now();
	struct throttle_entry *e;

	addr = throttle_key(addr, kbuf, sizeof(kbuf));
	e = throttle_get(t, addr, now);
	if (e == NULL)
		return AUTH_BEGIN_GO;   /* flooded: the delays still apply */
	if (e->count >= limit)
		return AUTH_BEGIN_REFUSE;
	if (e->count + e->pending >= limit)
		return e->count > 0 ? AUTH_BEGIN_REFUSE : AUTH_BEGIN_WAIT;
	e->pending++;
	e->last = now;
	return AUTH_BEGIN_GO;
}

void
auth_throttle_end(struct auth_throttle *t, const char *addr)
{
	char kbuf[INET6_ADDRSTRLEN];
	struct throttle_entry *e;

	e = throttle_find(t, throttle_key(addr, kbuf, sizeof(kbuf)),
	    mono_now());
	if (e != NULL && e->pending > 0)
		e->pending--;
}

double
auth_throttle_fail(struct auth_throttle *t, const char *addr)
{
	double now = mono_now(), delay;
	struct throttle_entry *e;
	char kbuf[INET6_ADDRSTRLEN];
	unsigned shift;

	addr = throttle_key(addr, kbuf, sizeof(kbuf));
	e = throttle_get(t, addr, now);
	if (e == NULL)
		return THROTTLE_MAX_DELAY;  /* flooded: be slow to all */
	if (e->count < UINT_MAX)
		e->count++;
	e->last = now;
	shift = e->count - 1 < 4 ? e->count - 1 : 4;
	delay = (double)(1u << shift);
	return delay < THROTTLE_MAX_DELAY ? delay : THROTTLE_MAX_DELAY;
}

unsigned
auth_throttle_count(struct auth_throttle *t, const char *addr)
{
	char kbuf[INET6_ADDRSTRLEN];
	struct throttle_entry *e = throttle_find(t,
	    throttle_key(addr, kbuf, sizeof(kbuf)), mono_now());

	return e != NULL ? e->count : 0;
}

void
auth_throttle_success(struct auth_throttle *t, const char *addr)
{
	char kbuf[INET6_ADDRSTRLEN];
	struct throttle_entry **pp;

	addr = throttle_key(addr, kbuf, sizeof(kbuf));
	pp = &t->buckets[addr_hash(addr) % THROTTLE_BUCKETS];
	for (; *pp != NULL; pp = &(*pp)->next) {
		struct throttle_entry *e = *pp;
		if (strcmp(e->addr, addr) != 0)
			continue;
		if (e->pending > 0) {
			/* Others from there are still trying. */
			e->count = 0;
			return;
		}
		*pp = e->next;
		free(e);
		t->n_entries--;
		return;
	}
}
