/* Unit tests of mtad/dsn.c: the RFC 3464 report's structure, checked here
   and by Python's email package (a parser that is not ours), hostile field
   values that must not add lines, RET handling; and the retry schedule,
   whose real times for the default settings are PRINTED so a reader sees
   when a deferred message is retried. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dsn.h"

static const char orig[] =
    "From: Alice <alice@example.test>\r\n"
    "To: bob@remote.test\r\n"
    "Subject: hello\r\n"
    "Message-ID: <1@example.test>\r\n"
    "\r\n"
    "Body line one.\r\n"
    "Body line two.\r\n";

static const unsigned char rnd[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    13, 14, 15, 16 };

static void
build(enum dsn_ret ret, const struct dsn_rcpt *rcpts, size_t n, struct buf *out)
{
	struct dsn_report rep = {
		.hostname = "mail.example.test",
		.to = "alice@example.test",
		.envid = "ENV-42",
		.arrival = 1700000000,
		.now = 1700003600,
		.ret = ret,
		.msg = orig,
		.msg_len = sizeof(orig) - 1,
		.full_max = 1 << 20,
		.rcpts = rcpts,
		.nrcpts = n,
		.rand16 = rnd,
	};

	buf_init(out);
	dsn_build(&rep, out);
}

/* Runs Python's email parser over the report and checks its structure. */
static void
python_check(const struct buf *b, const char *script)
{
	char path[] = "/tmp/test_dsn_XXXXXX", cmd[512];
	int fd;
	FILE *f;

	if (access("/usr/bin/python3", X_OK) != 0) {
		fprintf(stderr, "python3 missing: structure checked in C only\n");
		return;
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b->data, b->len), (ssize_t)b->len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 - %s", path);
	f = popen(cmd, "w");
	assert_non_null(f);
	fputs(script, f);
	assert_int_equal(pclose(f), 0);
	unlink(path);
}

static const char py_failed[] =
    "import sys, email, email.policy\n"
    "m = email.message_from_bytes(open(sys.argv[1],'rb').read(),"
    " policy=email.policy.compat32)\n"
    "assert m.get_content_type() == 'multipart/report', m.get_content_type()\n"
    "assert m.get_param('report-type') == 'delivery-status'\n"
    "assert m['From'] == 'Mail Delivery System <MAILER-DAEMON@mail.example.test>'\n"
    "assert m['To'] == '<alice@example.test>'\n"
    "assert m['Auto-Submitted'] == 'auto-replied'\n"
    "p = m.get_payload()\n"
    "assert [x.get_content_type() for x in p] == ['text/plain',"
    " 'message/delivery-status', 'message/rfc822'], p\n"
    "ds = p[1].get_payload()\n"
    "assert ds[0]['Reporting-MTA'] == 'dns; mail.example.test'\n"
    "assert ds[0]['Original-Envelope-Id'] == 'ENV-42'\n"
    "assert ds[0]['Arrival-Date']\n"
    "assert len(ds) == 3, len(ds)\n"
    "assert ds[1]['Final-Recipient'] == 'rfc822; bob@remote.test'\n"
    "assert ds[1]['Original-Recipient'] == 'rfc822;Bob@Remote.test'\n"
    "assert ds[1]['Action'] == 'failed'\n"
    "assert ds[1]['Status'] == '5.1.1'\n"
    "assert ds[1]['Remote-MTA'] == 'dns; mx1.remote.test'\n"
    "assert ds[1]['Diagnostic-Code'] == 'smtp; 550 5.1.1 no such user'\n"
    "assert ds[1]['Last-Attempt-Date']\n"
    "assert ds[2]['Action'] == 'delivered'\n"
    "inner = p[2].get_payload()[0]\n"
    "assert inner['Subject'] == 'hello'\n"
    "assert 'Body line two.' in inner.get_payload()\n"
    "assert 'Injected' not in m.keys()\n";

static void
test_failed_full(void **state)
{
	struct dsn_rcpt r[2] = {
		{ .address = "bob@remote.test", .orcpt = "rfc822;Bob@Remote.test",
		  .action = DSN_ACT_FAILED, .status = "5.1.1",
		  .remote_mta = "mx1.remote.test",
		  .diagnostic = "550 5.1.1 no such user", .diag_smtp = true,
		  .last_attempt = 1700003500 },
		{ .address = "carol@remote.test", .action = DSN_ACT_DELIVERED,
		  .status = "2.0.0", .remote_mta = "mx1.remote.test" },
	};
	struct buf b;

	build(DSN_RET_DEFAULT, r, 2, &b);
	assert_non_null(strstr(b.data, "\r\nSubject: Undelivered Mail Returned "
	    "to Sender\r\n"));
	assert_non_null(strstr(b.data, "Content-Type: message/rfc822\r\n"));
	/* Every line ends in CRLF. */
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] == '\n')
			assert_true(i > 0 && b.data[i - 1] == '\r');
	python_check(&b, py_failed);
	buf_free(&b);
}

static const char py_delayed[] =
    "import sys, email, email.policy\n"
    "m = email.message_from_bytes(open(sys.argv[1],'rb').read(),"
    " policy=email.policy.compat32)\n"
    "p = m.get_payload()\n"
    "assert [x.get_content_type() for x in p] == ['text/plain',"
    " 'message/delivery-status', 'text/rfc822-headers'], p\n"
    "ds = p[1].get_payload()\n"
    "assert ds[1]['Action'] == 'delayed'\n"
    "assert ds[1]['Status'].startswith('4.')\n"
    "assert ds[1]['Will-Retry-Until']\n"
    "assert ds[1]['Diagnostic-Code'].startswith('X-Postroom; ')\n"
    "assert 'Body line' not in p[2].get_payload()\n"
    "assert 'Subject: hello' in p[2].get_payload()\n"
    "assert 'Evil' not in m.keys() and 'Evil' not in ds[1].keys()\n";

static void
test_delayed_headers_hostile(void **state)
{
	/* CR/LF inside peer text must not create a field or a line. */
	struct dsn_rcpt r = {
		.address = "bob@remote.test\r\nEvil: yes",
		.action = DSN_ACT_DELAYED, .status = "4.4.1",
		.diagnostic = "connection refused\r\nEvil: 1",
		.retry_until = 1700400000, .last_attempt = 1700003500,
	};
	struct buf b;

	build(DSN_RET_DEFAULT, &r, 1, &b);
	assert_non_null(strstr(b.data, "Subject: Delayed Mail"));
	assert_null(strstr(b.data, "\nEvil:"));
	python_check(&b, py_delayed);
	buf_free(&b);

	/* RET=HDRS with a failure: headers only. */
	r.action = DSN_ACT_FAILED;
	r.status = "5.4.4";
	build(DSN_RET_HDRS, &r, 1, &b);
	assert_non_null(strstr(b.data, "text/rfc822-headers"));
	assert_null(strstr(b.data, "Body line"));
	buf_free(&b);

	/* A non-ASCII address: RFC 6533's utf-8 type, 7-bit in the report. */
	r.address = "j\xc3\xb6rg@x.test";
	build(DSN_RET_HDRS, &r, 1, &b);
	assert_non_null(strstr(b.data, "Final-Recipient: utf-8; j\\x{F6}rg@x.test"
	    "\r\n"));
	buf_free(&b);
	r.address = "bob@remote.test";

	/* A relayed-only report. */
	r.action = DSN_ACT_RELAYED;
	r.status = "2.0.0";
	build(DSN_RET_FULL, &r, 1, &b);
	assert_non_null(strstr(b.data, "Action: relayed\r\n"));
	assert_non_null(strstr(b.data, "Successful Mail Delivery Report"));
	assert_non_null(strstr(b.data, "Body line"));
	buf_free(&b);
}

static void
test_header_end(void **state)
{
	assert_int_equal(dsn_header_end(orig, sizeof(orig) - 1),
	    strstr(orig, "Body") - orig);
	assert_int_equal(dsn_header_end("a: b\n\nbody", 10), 6);
	assert_int_equal(dsn_header_end("a: b\r\n", 6), 6);
	assert_int_equal(dsn_header_end("", 0), 0);
}

static void
fmt_dur(double s, char *out, size_t size)
{
	if (s >= 86400)
		snprintf(out, size, "%.2fd", s / 86400);
	else if (s >= 3600)
		snprintf(out, size, "%.2fh", s / 3600);
	else if (s >= 60)
		snprintf(out, size, "%.1fm", s / 60);
	else
		snprintf(out, size, "%.1fs", s);
}

static void
test_retry_schedule(void **state)
{
	/* The defaults: queue_retry_min 5m, queue_retry_max 1h, lifetime 5d.
	   Printed with no jitter and with the most jitter. */
	const double min = 300, max = 3600, lifetime = 5 * 86400;
	double t = 0, tj = 0, prev = 0;
	unsigned n = 0;
	char a[32], b[32], c[32];

	printf("retry schedule (queue_retry_min=5m queue_retry_max=1h "
	    "queue_lifetime=5d)\n  attempt  at(no jitter)  delay   "
	    "at(max jitter)\n");
	printf("  %7u  %13s\n", 1u, "0s");
	for (n = 1; t < lifetime; n++) {
		double d = dsn_retry_delay(n, t, min, max, 0.0);
		double dj = dsn_retry_delay(n, tj, min, max, 0.999);

		assert_true(d >= min && d <= max);
		assert_true(dj >= min && dj <= d);
		assert_true(d >= prev);         /* never shrinks */
		prev = d;
		t += d;
		tj += dj;
		if (t > lifetime)
			t = lifetime;
		if (n < 12 || t >= lifetime) {
			fmt_dur(t, a, sizeof(a));
			fmt_dur(d, b, sizeof(b));
			fmt_dur(tj, c, sizeof(c));
			printf("  %7u  %13s  %6s  %14s\n", n + 1, a, b, c);
		} else if (n == 12) {
			printf("      ...  (every %s until the lifetime)\n", b);
		}
	}
	printf("  %u attempts before the bounce at 5d\n", n);
	/* Age-based: an old message waits at least its age (up to max). */
	assert_true(dsn_retry_delay(1, 1000, min, max, 0) == 1000);
	assert_true(dsn_retry_delay(1, 0, min, max, 0) == min);
	assert_true(dsn_retry_delay(2, 0, min, max, 0) == 2 * min);
	assert_true(dsn_retry_delay(50, 0, min, max, 0) == max);
	/* Test settings: 1s minimum. */
	assert_true(dsn_retry_delay(1, 0, 1, 2, 0.5) == 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failed_full),
		cmocka_unit_test(test_delayed_headers_hostile),
		cmocka_unit_test(test_header_end),
		cmocka_unit_test(test_retry_schedule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
