/* dns: asynchronous DNS inside a libev loop (c-ares for the transport) and a
   pure, bounded decoder of DNS answers (dns_answer_parse, fuzzed). Lookups:
   MX (sorted, null MX per RFC 7505, implicit MX from A/AAAA when there is no
   MX, each host's addresses resolved), A, AAAA, TXT, PTR. */
#ifndef POSTROOM_DNS_H
#define POSTROOM_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#define DNS_T_A     1
#define DNS_T_CNAME 5
#define DNS_T_PTR   12
#define DNS_T_MX    15
#define DNS_T_TXT   16
#define DNS_T_AAAA  28

/* Bounds applied to every answer, whatever the peer sends. */
#define DNS_NAME_SIZE   256     /* 255 octets in presentation form + NUL */
#define DNS_MAX_RR      32      /* records of the asked type kept per answer */
#define DNS_TXT_MAX     4096    /* bytes of one TXT record (strings joined) */
#define DNS_MAX_MX      10      /* MX hosts kept per domain */
#define DNS_MAX_ADDRS   8       /* addresses kept per MX host */

enum dns_status {
	DNS_OK,             /* at least one record of the asked type */
	DNS_NODATA,         /* the name exists, no record of that type */
	DNS_NXDOMAIN,       /* the name does not exist */
	DNS_TEMPFAIL,       /* timeout, SERVFAIL, network error: try later */
	DNS_BADANSWER,      /* malformed or hostile answer (treated as temp) */
	DNS_CANCELLED,      /* the resolver was freed with the query pending */
};

/* One record of the asked type. name: the MX exchange or PTR target
   (presentation form without the final dot, "" for the root). addr: the
   address for A (4 bytes) and AAAA (16 bytes). txt: the record's strings
   joined, txt_len bytes (may contain NULs), owned by the answer. */
struct dns_rr {
	uint16_t type;
	uint16_t pref;
	uint32_t ttl;
	int family;             /* AF_INET / AF_INET6 for A / AAAA, else 0 */
	unsigned char addr[16];
	char name[DNS_NAME_SIZE];
	char *txt;
	size_t txt_len;
};

struct dns_answer {
	enum dns_status status;
	int rcode;
	/* For NODATA / NXDOMAIN: the negative-caching TTL of RFC 2308 (the
	   authority SOA's TTL capped by its minimum field), when there was
	   an SOA; without one a negative answer is not cached. */
	bool has_soa;
	uint32_t neg_ttl;
	size_t n;                   /* records kept (<= DNS_MAX_RR) */
	struct dns_rr rr[DNS_MAX_RR];
};

/* Pure: decodes the DNS message msg[0..len) as an answer to a question of
   type qtype. Keeps at most DNS_MAX_RR records of type qtype and class IN from
   the answer section (CNAMEs are followed by the recursive resolver; their
   targets are not checked here). Names are bounded to 255 octets, with at
   most 64 compression jumps; MX/PTR/CNAME targets with bytes outside the
   hostname set are skipped. Sets out->status: DNS_OK / DNS_NODATA /
   DNS_NXDOMAIN / DNS_TEMPFAIL (SERVFAIL, REFUSED...) and returns 0, or returns
   -1 with *error_r and status DNS_BADANSWER. out must be released with
   dns_answer_clear (also after -1). */
int dns_answer_parse(const unsigned char *msg, size_t len, int qtype,
    struct dns_answer *out, const char **error_r);
void dns_answer_clear(struct dns_answer *a);

/* True if the answer to an MX query is a null MX (RFC 7505): exactly one MX
   with an empty (root) exchange. Pure. */
bool dns_answer_is_null_mx(const struct dns_answer *a);

/* Sorts the MX records of a by preference; records of equal preference are
   shuffled when shuffle is true (RFC 5321 5.1). */
void dns_answer_sort_mx(struct dns_answer *a, bool shuffle);

struct dns_resolver;

/* servers: "host:port, [v6]:port" (port optional) or NULL/"" for
   /etc/resolv.conf. timeout_ms per try (0: 3000), tries (0: 3). Owned; NULL
   with a reason in err. */
struct dns_resolver *dns_resolver_new(struct ev_loop *loop,
    const char *servers, unsigned timeout_ms, unsigned tries,
    char *err, size_t errlen);
/* Pending lookups get their callback with DNS_CANCELLED before this returns. */
void dns_resolver_free(struct dns_resolver **r);

/* ans: borrowed for the duration of the call. Called exactly once per
   dns_query, on the loop thread, never from inside dns_query itself. */
typedef void dns_query_cb(void *arg, const struct dns_answer *ans);

/* Looks up name (presentation form) for qtype. Returns 0, or -1 if name is
   not a valid domain name (no callback then). */
int dns_query(struct dns_resolver *r, const char *name, int qtype,
    dns_query_cb *cb, void *arg);

/* The result of an MX resolution. */
struct dns_mx_host {
	char name[DNS_NAME_SIZE];
	uint16_t pref;
	enum dns_status status;     /* of its address lookups (OK if any) */
	size_t naddrs;
	struct {
		int family;
		unsigned char addr[16];
	} addrs[DNS_MAX_ADDRS];     /* IPv4 first, then IPv6 */
};
struct dns_mx_result {
	/* DNS_OK: hosts[] filled (some may have no address);
	   DNS_NXDOMAIN: the domain does not exist; DNS_NODATA: neither MX nor
	   an address (implicit MX failed); DNS_TEMPFAIL / DNS_BADANSWER: retry
	   later. null_mx: the domain accepts no mail (RFC 7505). */
	enum dns_status status;
	bool null_mx;
	bool implicit;              /* no MX record: the domain itself */
	size_t nhosts;
	struct dns_mx_host hosts[DNS_MAX_MX];   /* by preference */
};
/* res: borrowed for the duration of the call. */
typedef void dns_mx_cb(void *arg, const struct dns_mx_result *res);

/* Resolves the mail exchangers of domain and the addresses of each, as
   RFC 5321 5.1 says. Returns 0 or -1 (invalid domain; no callback). The
   callback comes exactly once, later, on the loop thread. */
int dns_resolve_mx(struct dns_resolver *r, const char *domain,
    dns_mx_cb *cb, void *arg);

/* Resolves a host name into addresses (A then AAAA) as one MX-like host
   (used for a relayhost given as a name). Same contract as dns_resolve_mx;
   the result has one host and implicit = true. */
int dns_resolve_host(struct dns_resolver *r, const char *host,
    dns_mx_cb *cb, void *arg);

/* ---- the answer cache ----

   Answers are kept across lookups (and so across messages) for the TTL
   they carry: the smallest TTL of the kept records, at most
   DNS_CACHE_MAX_TTL; a negative answer (NODATA, NXDOMAIN) for its SOA's
   negative TTL, at most DNS_CACHE_MAX_NEG_TTL, and not at all without an
   SOA. A TTL of 0, a temporary failure (SERVFAIL, timeout, bad answer)
   or a cancellation is never cached. The cache is bounded in entries and
   bytes; the least recently used entries go first. */
#define DNS_CACHE_MAX_TTL       3600
#define DNS_CACHE_MAX_NEG_TTL   300
#define DNS_CACHE_ENTRIES       4096
#define DNS_CACHE_BYTES         (4u << 20)

struct dns_cache;

/* Pure (the clock is passed in, in seconds). */
struct dns_cache *dns_cache_new(size_t max_entries, size_t max_bytes);
void dns_cache_free(struct dns_cache **c);
/* How long answer a may be kept, in seconds; 0: not at all. */
uint32_t dns_cache_ttl(const struct dns_answer *a);
/* Keeps a copy of a (if dns_cache_ttl says so) for name (case does not
   matter) and qtype, replacing any previous one. */
void dns_cache_put(struct dns_cache *c, const char *name, int qtype,
    const struct dns_answer *a, double now);
/* true and a copy in *out (release with dns_answer_clear; the records'
   TTLs are what remains of them) if a live answer is kept; false (out
   untouched) otherwise. Expired entries are dropped. */
bool dns_cache_get(struct dns_cache *c, const char *name, int qtype,
    double now, struct dns_answer *out);
size_t dns_cache_count(const struct dns_cache *c);
size_t dns_cache_bytes(const struct dns_cache *c);

/* Gives the resolver a cache (DNS_CACHE_ENTRIES, DNS_CACHE_BYTES) on the
   loop's clock: dns_query, and so MX resolution, answer from it when they
   can. Without this call nothing is cached. */
void dns_resolver_enable_cache(struct dns_resolver *r);

/* Pure helpers. A valid domain name: 1..253 octets, labels 1..63 of
   letters, digits, '-' and '_', no leading/trailing dot (one trailing dot
   allowed). */
bool dns_is_valid_name(const char *name);
const char *dns_status_str(enum dns_status s);

#endif
