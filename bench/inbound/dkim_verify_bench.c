/* DKIM verification cost: signs a SIZE-byte message with a fresh key of
   each algorithm (common/dkim.c) and times N dkim_verify() calls (header
   and body canonicalisation, SHA-256, the public-key operation).
   Prints microseconds per verification, wall clock and the process's
   CPU time (the figure that holds on a busy machine). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dkim.h"
#include "dkim_verify.h"
#include "util.h"

static double
now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	size_t size = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
	int n = argc > 2 ? atoi(argv[2]) : 1000;
	char dir[] = "/tmp/pr-dkbench-XXXXXX", err[256];
	struct buf m;

	if (mkdtemp(dir) == NULL)
		return 1;
	buf_init(&m);
	buf_puts(&m, "From: a@bench.test\r\nTo: b@example.test\r\n"
	    "Subject: bench\r\n\r\n");
	while (m.len < size)
		buf_puts(&m, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxx\r\n");
	for (int a = 0; a < 2; a++) {
		enum dkim_alg alg = a == 0 ? DKIM_RSA : DKIM_ED25519;
		struct dkim_key *key;
		struct buf sig, txt, all;
		if (dkim_generate(dir, "bench.test", a == 0 ? "rsa" : "ed", alg,
		    &key, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		buf_init(&sig);
		buf_init(&txt);
		buf_init(&all);
		dkim_dns_txt(key, &txt);
		dkim_sign(key, m.data, m.len, 1, &sig, err, sizeof(err));
		buf_append(&all, sig.data, sig.len);
		buf_append(&all, m.data, m.len);
		double t0 = now(CLOCK_MONOTONIC);
		double c0 = now(CLOCK_PROCESS_CPUTIME_ID);
		for (int i = 0; i < n; i++)
			if (dkim_verify(all.data, sig.len, all.data, all.len,
			    txt.data, txt.len, 2, NULL, err, sizeof(err)) !=
			    DKIM_R_PASS) {
				fprintf(stderr, "verify: %s\n", err);
				return 1;
			}
		double dt = now(CLOCK_MONOTONIC) - t0;
		double dc = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
		printf("dkim_verify alg=%s size=%zu us_per_verify=%.1f "
		    "cpu_us_per_verify=%.1f\n",
		    a == 0 ? "rsa-sha256(2048)" : "ed25519-sha256", m.len,
		    dt * 1e6 / n, dc * 1e6 / n);
		buf_free(&sig);
		buf_free(&txt);
		buf_free(&all);
		dkim_key_free(&key);
	}
	buf_free(&m);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	free(cmd);
	return 0;
}
