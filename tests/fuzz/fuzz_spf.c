/* Fuzz target for common/spf.c: the record parser, the macro expander
   (domain-spec and explanation modes) and check_host() over a zone where
   every TXT query answers with the input (so include/redirect recurse
   into it), A/AAAA with a fixed address and everything else NXDOMAIN.
   Any bytes: a result, never a crash, a hang or a leak. */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "spf.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct spf_record rec;
	struct spf_macro_ctx mc = {
		"user@example.test", "example.test", "helo.test", AF_INET,
		{ 192, 0, 2, 1 }, "mx.test", 1
	};
	struct spf_request req;
	struct spf_outcome out;
	struct spf_cache *c;
	char err[128], buf[SPF_EXPAND_MAX], need[DNS_NAME_SIZE];
	int type, rounds = 0;

	spf_record_parse(p, size, &rec, err, sizeof(err));
	spf_record_free(&rec);
	spf_macro_expand(p, size, &mc, false, buf, sizeof(buf));
	spf_macro_expand(p, size, &mc, true, buf, sizeof(buf));
	mc.family = AF_INET6;
	spf_macro_expand(p, size, &mc, false, buf, sizeof(buf));

	memset(&req, 0, sizeof(req));
	req.family = size > 0 && (data[0] & 1) ? AF_INET6 : AF_INET;
	req.ip[0] = 192;
	strcpy(req.sender, "user@example.test");
	strcpy(req.helo, "helo.test");
	c = spf_cache_new();
	while (spf_evaluate(&req, c, &out, need, &type) == 1) {
		struct dns_answer a;
		memset(&a, 0, sizeof(a));
		a.status = DNS_NXDOMAIN;
		if (type == DNS_T_TXT && size <= DNS_TXT_MAX) {
			a.status = DNS_OK;
			a.n = 1;
			a.rr[0].type = DNS_T_TXT;
			a.rr[0].txt = (char *)p;
			a.rr[0].txt_len = size;
		} else if (type == DNS_T_A && (rounds & 1)) {
			a.status = DNS_OK;
			a.n = 1;
			a.rr[0].type = DNS_T_A;
			a.rr[0].family = AF_INET;
			memcpy(a.rr[0].addr, "\xc0\x00\x02\x01", 4);
		}
		spf_cache_put(c, need, type, &a);
		if (++rounds > 1000)
			__builtin_trap();   /* the evaluation must converge */
	}
	if (out.result > SPF_PERMERROR)
		__builtin_trap();
	spf_cache_free(&c);
	return 0;
}
