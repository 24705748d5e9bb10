/* Fuzz target for common/dns.c's answer decoder: the input is a DNS message
   (as a server would send it), decoded as the answer to each query type the
   resolver asks; the MX helpers run on what comes out. Checks the bounds the
   decoder promises: at most DNS_MAX_RR records, names NUL-terminated within
   DNS_NAME_SIZE, TXT within DNS_TXT_MAX. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

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
		dns_answer_clear(a);
	}
	free(a);
	return 0;
}
