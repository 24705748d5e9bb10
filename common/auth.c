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

bool
auth_throttle_begin(struct auth_throttle *t, const char *addr, unsigned limit)
{
	char kbuf[INET6_ADDRSTRLEN];
	double now = mono_now();
	struct throttle_entry *e;

	addr = throttle_key(addr, kbuf, sizeof(kbuf));
	e = throttle_get(t, addr, now);
	if (e == NULL)
		return true;    /* flooded: the delays still apply */
	/* Attempts running now count only once this address has failed:
	   a burst of honest logins from one NAT is not refused, but guesses
	   made in parallel cannot all start below the limit. */
	if (e->count >= limit || (e->count > 0 && e->count + e->pending >= limit))
		return false;
	e->pending++;
	e->last = now;
	return true;
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
