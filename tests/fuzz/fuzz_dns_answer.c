/* Fuzz target for common/dns.c's answer decoder: the input is a DNS message
   (as a server would send it), decoded as the answer to each query type the
   resolver asks; the MX helpers run on what comes out. Checks the bounds the
   decoder promises: at most DNS_MAX_RR records, names NUL-terminated within
   DNS_NAME_SIZE, TXT within DNS_TXT_MAX; whatever comes out goes through
   the answer cache (kept only for a TTL within the caps, read back equal,
   the cache within its byte budget). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

static void
cache_round_trip(const struct dns_answer *a, int qtype)
{
	static struct dns_cache *c;
	static unsigned seq;
	struct dns_answer *got = malloc(sizeof(*got));
	uint32_t ttl = dns_cache_ttl(a);
	size_t txt = 0;
	char name[32];

	if (c == NULL)
		c = dns_cache_new(64, 1 << 20);
	if (ttl > DNS_CACHE_MAX_TTL)
		abort();
	for (size_t i = 0; i < a->n; i++)
		txt += a->rr[i].txt_len + 1;
	/* A fresh name each time: what is read back is this answer. */
	snprintf(name, sizeof(name), "f%u.test", seq++);
	dns_cache_put(c, name, qtype, a, 100.);
	if (dns_cache_get(c, name, qtype, 100., got)) {
		if (ttl == 0 || got->n != a->n || got->status != a->status)
			abort();
		for (size_t i = 0; i < got->n; i++)
			if (got->rr[i].txt_len != a->rr[i].txt_len ||
			    (a->rr[i].txt_len > 0 && memcmp(got->rr[i].txt,
			    a->rr[i].txt, a->rr[i].txt_len) != 0))
				abort();
		dns_answer_clear(got);
	} else if (ttl > 0 && txt + 32768 < (1 << 17)) {
		abort();        /* small enough, yet not kept */
	}
	if (dns_cache_bytes(c) > (1 << 20))
		abort();
	free(got);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = { DNS_T_MX, DNS_T_A, DNS_T_AAAA, DNS_T_TXT,
	    DNS_T_PTR, DNS_T_CNAME };
	struct dns_answer *a = malloc(sizeof(*a));
	const char *err;

	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		(void)dns_answer_parse(data, size, types[t], a, &err);
		if (a->n > DNS_MAX_RR)
			abort();
		for (size_t i = 0; i < a->n; i++) {
			if (memchr(a->rr[i].name, '\0', DNS_NAME_SIZE) == NULL)
				abort();
			if (a->rr[i].txt_len > DNS_TXT_MAX)
				abort();
		}
		if (types[t] == DNS_T_MX) {
			(void)dns_answer_is_null_mx(a);
			dns_answer_sort_mx(a, false);
			for (size_t i = 1; i < a->n; i++)
				if (a->rr[i - 1].pref > a->rr[i].pref)
					abort();
		}
		cache_round_trip(a, types[t]);
		dns_answer_clear(a);
	}
	free(a);
	return 0;
}
