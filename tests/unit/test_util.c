/* Unit tests for common/util.c, common/log.c (log_escape) and common/auth.c:
   table-driven, each table row is one case. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"
#include "log.h"
#include "util.h"

static void
test_buf(void **state)
{
	struct buf b;
	char *s;
	int i;

	buf_init(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	buf_puts(&b, "hello");
	buf_putc(&b, ' ');
	buf_printf(&b, "%d-%s", 42, "x");
	assert_string_equal(b.data, "hello 42-x");
	assert_int_equal(b.len, 10);
	buf_consume(&b, 6);
	assert_string_equal(b.data, "42-x");
	buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	/* Growth past the first allocation, and a long printf. */
	for (i = 0; i < 1000; i++)
		buf_append(&b, "abcdefghij", 10);
	assert_int_equal(b.len, 10000);
	assert_int_equal(b.data[b.len], '\0');
	buf_reset(&b);
	buf_printf(&b, "%0500d", 7);
	assert_int_equal(b.len, 500);
	assert_int_equal(b.data[499], '7');
	s = buf_steal(&b);
	assert_null(b.data);
	assert_int_equal(strlen(s), 500);
	free(s);
	s = buf_steal(&b);   /* empty buffer gives "" */
	assert_string_equal(s, "");
	free(s);
	buf_append(&b, "x", 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	buf_free(&b);
}

static void
test_strings(void **state)
{
	char small[4], s[] = "MiXeD Case 123";
	char *p;

	assert_int_equal(str_copy(small, "abcdef", sizeof(small)), 6);
	assert_string_equal(small, "abc");
	assert_int_equal(str_copy(small, "ab", sizeof(small)), 2);
	assert_string_equal(small, "ab");
	str_lower(s);
	assert_string_equal(s, "mixed case 123");
	assert_true(str_has_prefix_ci("STARTTLS", "start"));
	assert_true(str_has_prefix_ci("x", ""));
	assert_false(str_has_prefix_ci("STA", "start"));
	assert_false(str_has_prefix_ci("STOP", "start"));
	p = xasprintf("%s=%u", "k", 5u);
	assert_string_equal(p, "k=5");
	free(p);
	p = xstrndup("abcdef", 3);
	assert_string_equal(p, "abc");
	free(p);
	p = xstrndup("ab", 10);
	assert_string_equal(p, "ab");
	secret_free(&p);
	assert_null(p);
	secret_free(&p);
}

static void
test_parse_size(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t v;
	} t[] = {
		{ "0", 0, 0 },
		{ "123", 0, 123 },
		{ "10K", 0, 10240 },
		{ "10k", 0, 10240 },
		{ "50M", 0, 50ULL << 20 },
		{ "2G", 0, 2ULL << 30 },
		{ "1KB", 0, 1024 },
		{ "1MiB", 0, 1ULL << 20 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -1, 0 },
		{ "17179869184G", -1, 0 },
		{ "", -1, 0 },
		{ "M", -1, 0 },
		{ "-1", -1, 0 },
		{ " 1", -1, 0 },
		{ "1 ", -1, 0 },
		{ "1T", -1, 0 },
		{ "1.5M", -1, 0 },
		{ "1MM", -1, 0 },
		{ "1B", -1, 0 },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		uint64_t v = 999;
		int r = parse_size(t[i].in, &v);
		if (r != t[i].ret)
			fail_msg("parse_size(\"%s\") = %d", t[i].in, r);
		if (r == 0)
			assert_true(v == t[i].v);
	}
	assert_int_equal(parse_size(NULL, &(uint64_t){0}), -1);
}

static void
test_parse_duration(void **state)
{
	static const struct {
		const char *in;
		int ret;
		double v;
	} t[] = {
		{ "30", 0, 30 },
		{ "30s", 0, 30 },
		{ "5m", 0, 300 },
		{ "2h", 0, 7200 },
		{ "1d", 0, 86400 },
		{ "0", 0, 0 },
		{ "", -1, 0 },
		{ "s", -1, 0 },
		{ "5x", -1, 0 },
		{ "5 m", -1, 0 },
		{ "5ms", -1, 0 },
		{ "-5", -1, 0 },
		{ "99999999999999999999", -1, 0 },
		{ "1000d", -1, 0 },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		double v = -1;
		int r = parse_duration(t[i].in, &v);
		if (r != t[i].ret)
			fail_msg("parse_duration(\"%s\") = %d", t[i].in, r);
		if (r == 0)
			assert_true(v == t[i].v);
	}
}

static void
test_base64(void **state)
{
	/* RFC 4648 section 10 vectors, both ways. */
	static const struct {
		const char *plain, *enc;
	} t[] = {
		{ "", "" },
		{ "f", "Zg==" },
		{ "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
		{ "Username:", "VXNlcm5hbWU6" },
		{ "Password:", "UGFzc3dvcmQ6" },
	};
	static const char *const bad[] = {
		"Zg=", "Zg", "Z===", "=Zg=", "Zg==Zg==", "Zm9v\n", "Zm 9v",
		"Zh==", "Zm9=", "Zm9v!", "Zg=a", "====", "Zm9vY===",
	};
	struct buf b;
	size_t i, k;

	buf_init(&b);
	for (i = 0; i < ARRAY_SIZE(t); i++) {
		buf_reset(&b);
		base64_encode(t[i].plain, strlen(t[i].plain), &b);
		assert_string_equal(b.data, t[i].enc);
		buf_reset(&b);
		assert_int_equal(base64_decode(t[i].enc, strlen(t[i].enc),
		    &b), 0);
		assert_int_equal(b.len, strlen(t[i].plain));
		assert_memory_equal(b.data, t[i].plain, b.len);
		/* Decoding in two chunks at every quad boundary appends to
		   the same buffer and gives the same bytes. */
		for (k = 4; k < strlen(t[i].enc); k += 4) {
			buf_reset(&b);
			assert_int_equal(base64_decode(t[i].enc, k, &b), 0);
			assert_int_equal(base64_decode(t[i].enc + k,
			    strlen(t[i].enc) - k, &b), 0);
			assert_string_equal(b.data, t[i].plain);
		}
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		buf_reset(&b);
		buf_puts(&b, "keep");
		if (base64_decode(bad[i], strlen(bad[i]), &b) != -1)
			fail_msg("base64_decode accepted \"%s\"", bad[i]);
		/* A failed decode leaves what was there before. */
		assert_string_equal(b.data, "keep");
	}
	/* All byte values round-trip. */
	{
		unsigned char all[256];
		struct buf e;
		for (i = 0; i < 256; i++)
			all[i] = (unsigned char)i;
		buf_init(&e);
		base64_encode(all, sizeof(all), &e);
		buf_reset(&b);
		assert_int_equal(base64_decode(e.data, e.len, &b), 0);
		assert_int_equal(b.len, 256);
		assert_memory_equal(b.data, all, 256);
		buf_free(&e);
	}
	buf_free(&b);
}

static void
test_date(void **state)
{
	char out[64];

	setenv("TZ", "UTC", 1);
	tzset();
	date_rfc5322(0, out, sizeof(out));
	assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 +0000");
	date_rfc5322(1795475605, out, sizeof(out));
	assert_string_equal(out, "Mon, 23 Nov 2026 23:13:25 +0000");
	setenv("TZ", "EST5", 1);
	tzset();
	date_rfc5322(0, out, sizeof(out));
	assert_string_equal(out, "Wed, 31 Dec 1969 19:00:00 -0500");
	setenv("TZ", "IST-5:30", 1);
	tzset();
	date_rfc5322(0, out, sizeof(out));
	assert_string_equal(out, "Thu, 01 Jan 1970 05:30:00 +0530");
	setenv("TZ", "UTC", 1);
	tzset();
}

static void
test_address(void **state)
{
	static const struct {
		const char *in, *out;   /* out NULL: rejected */
	} t[] = {
		{ "alice@example.test", "alice@example.test" },
		{ "Alice.Smith@Example.TEST", "alice.smith@example.test" },
		{ "a+tag@sub.example.test", "a+tag@sub.example.test" },
		{ "x@localhost", "x@localhost" },
		{ "o'brien@ex-ample.test", "o'brien@ex-ample.test" },
		{ "", NULL },
		{ "alice", NULL },
		{ "@example.test", NULL },
		{ "alice@", NULL },
		{ "alice@@example.test", NULL },
		{ "al ice@example.test", NULL },
		{ ".alice@example.test", NULL },
		{ "alice.@example.test", NULL },
		{ "al..ice@example.test", NULL },
		{ "alice@example..test", NULL },
		{ "alice@.example.test", NULL },
		{ "alice@example.test.", NULL },
		{ "alice@-example.test", NULL },
		{ "alice@example-.test", NULL },
		{ "alice@exa_mple.test", NULL },
		{ "<alice@example.test>", NULL },
		{ "alice@example.test\r\n", NULL },
		{ "al\xc3\xa9@example.test", NULL },
		{ "a\"b@example.test", NULL },
	};
	char buf[400];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		int r;
		str_copy(buf, t[i].in, sizeof(buf));
		r = address_normalize(buf);
		if (t[i].out == NULL) {
			if (r != -1)
				fail_msg("accepted \"%s\"", t[i].in);
		} else {
			if (r != 0)
				fail_msg("rejected \"%s\"", t[i].in);
			assert_string_equal(buf, t[i].out);
		}
	}
	/* Length limits: 64 for the local part, 254 in all. */
	memset(buf, 'a', 65);
	strcpy(buf + 65, "@example.test");
	assert_int_equal(address_normalize(buf), -1);
	memset(buf, 'a', 64);
	strcpy(buf + 64, "@example.test");
	assert_int_equal(address_normalize(buf), 0);
	/* 2 + 4 * 62 + 4 = 254 bytes: just fits; one more label does not. */
	strcpy(buf, "a@");
	for (i = 0; i < 4; i++)
		strcat(buf, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.");
	strcat(buf, "test");
	assert_int_equal(address_normalize(buf), 0);
	strcpy(buf, "a@x.");
	for (i = 0; i < 4; i++)
		strcat(buf, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.");
	strcat(buf, "test");
	assert_int_equal(address_normalize(buf), -1);
	assert_int_equal(address_normalize(NULL), -1);
}

static void
test_log_escape(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} t[] = {
		{ "plain text", 10, "plain text" },
		{ "a\r\nb", 4, "a\\x0d\\x0ab" },
		{ "nul\0x", 5, "nul\\x00x" },
		{ "back\\slash", 10, "back\\x5cslash" },
		{ "\xff\x80", 2, "\\xff\\x80" },
		{ "0123456789012345678901234567890123456789012345678901234567890123456789",
		  70,
		  "0123456789012345678901234567890123456789012345678901234567890123..." },
	};
	char out[LOG_ESCAPE_SIZE], tiny[8];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(t); i++)
		assert_string_equal(log_escape(t[i].in, t[i].len, out,
		    sizeof(out)), t[i].out);
	/* 64 bytes that all need escaping fit in LOG_ESCAPE_SIZE. */
	{
		char ctl[80];
		memset(ctl, 1, sizeof(ctl));
		log_escape(ctl, sizeof(ctl), out, sizeof(out));
		assert_int_equal(strlen(out), 64 * 4 + 3);
	}
	/* A small output buffer truncates safely. */
	log_escape("abcdefghij", 10, tiny, sizeof(tiny));
	assert_true(strlen(tiny) < sizeof(tiny));
	assert_non_null(strstr(tiny, "..."));
	log_escape("abcdefghij", 10, tiny, 4);
	assert_true(strlen(tiny) < 4);
}

static void
test_log_level(void **state)
{
	log_init("test", LOG_LVL_INFO);
	assert_false(log_is_debug());
	log_set_level(LOG_LVL_DEBUG);
	assert_true(log_is_debug());
	log_set_level(LOG_LVL_WARN);
	assert_false(log_is_debug());
	log_debug("not shown %d", 1);
	log_set_level(LOG_LVL_INFO);
}

#define LOG_THREADS 8
#define LOG_LINES 200

static void *
log_thread(void *arg)
{
	int id = (int)(intptr_t)arg, i;

	for (i = 0; i < LOG_LINES; i++)
		log_info("t%d line %d %s", id, i,
		    "padding-padding-padding-padding-padding-padding");
	return NULL;
}

/* Lines from many threads arrive whole (one write(2) each), with the
   "<name> <level> <message>" shape, and embedded newlines cannot forge a
   second line. */
static void
test_log_lines(void **state)
{
	char path[] = "/tmp/test_log.XXXXXX";
	pthread_t th[LOG_THREADS];
	int fd, saved, i, lines = 0;
	char *text, *line, *save = NULL;
	struct buf b;
	char chunk[4096];
	ssize_t n;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	log_init("unit", LOG_LVL_INFO);
	for (i = 0; i < LOG_THREADS; i++)
		pthread_create(&th[i], NULL, log_thread, (void *)(intptr_t)i);
	for (i = 0; i < LOG_THREADS; i++)
		pthread_join(th[i], NULL);
	log_warnx("multi\nline\r%s", "end");
	errno = ENOENT;
	log_warn("open %s", "x");
	log_debug("hidden");
	dup2(saved, STDERR_FILENO);
	close(saved);

	buf_init(&b);
	lseek(fd, 0, SEEK_SET);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)n);
	close(fd);
	unlink(path);
	assert_non_null(strstr(b.data, "unit warn multi line end\n"));
	assert_non_null(strstr(b.data, "unit warn open x: No such file"));
	assert_null(strstr(b.data, "hidden"));
	text = b.data;   /* strtok_r cuts it up from here on */
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		lines++;
		if (lines <= LOG_THREADS * LOG_LINES) {
			assert_true(strncmp(line, "unit info t", 11) == 0);
			assert_non_null(strstr(line, " padding-padding-padding-"
			    "padding-padding-padding"));
		}
	}
	assert_int_equal(lines, LOG_THREADS * LOG_LINES + 2);
	buf_free(&b);
}

static void
test_pw(void **state)
{
	char h[PW_HASH_MAX], h2[PW_HASH_MAX];

	assert_int_equal(pw_hash("s3cret-Pass", h), 0);
	assert_true(strncmp(h, "$argon2id$", 10) == 0);
	assert_true(pw_verify(h, "s3cret-Pass"));
	assert_false(pw_verify(h, "s3cret-pass"));
	assert_false(pw_verify(h, ""));
	assert_false(pw_verify("", "s3cret-Pass"));
	assert_false(pw_verify("garbage", "s3cret-Pass"));
	assert_false(pw_verify(NULL, "x"));
	/* Salted: the same password hashes differently. */
	assert_int_equal(pw_hash("s3cret-Pass", h2), 0);
	assert_string_not_equal(h, h2);
	assert_int_equal(pw_hash("", h2), 0);
	assert_true(pw_verify(h2, ""));
	pw_verify_dummy("anything");
	pw_verify_dummy(NULL);
	/* The dummy uses the parameters of fresh hashes, so it costs the
	   same: the prefix up to the salt is identical. */
	assert_int_equal(pw_hash("x", h2), 0);
	assert_true(strncmp(h2, "$argon2id$v=19$m=65536,t=2,p=1$", 31) == 0);
}

static void
test_throttle(void **state)
{
	static const double want[] = { 1, 2, 4, 8, 15, 15, 15 };
	struct auth_throttle *t = auth_throttle_new();
	char addr[32];
	size_t i;

	assert_int_equal(auth_throttle_count(t, "192.0.2.1"), 0);
	for (i = 0; i < ARRAY_SIZE(want); i++) {
		double d = auth_throttle_fail(t, "192.0.2.1");
		assert_true(d == want[i]);
		assert_int_equal(auth_throttle_count(t, "192.0.2.1"), i + 1);
	}
	/* Other addresses are independent. */
	assert_true(auth_throttle_fail(t, "2001:db8::1") == 1);
	assert_int_equal(auth_throttle_count(t, "192.0.2.2"), 0);
	auth_throttle_success(t, "192.0.2.1");
	assert_int_equal(auth_throttle_count(t, "192.0.2.1"), 0);
	assert_true(auth_throttle_fail(t, "192.0.2.1") == 1);
	auth_throttle_success(t, "198.51.100.7");   /* unknown: no-op */
	/* Many addresses: memory is bounded and everything is freed. */
	for (i = 0; i < 5000; i++) {
		snprintf(addr, sizeof(addr), "10.0.%zu.%zu", i / 256, i % 256);
		auth_throttle_fail(t, addr);
	}
	assert_int_equal(auth_throttle_count(t, "10.0.0.1"), 1);
	auth_throttle_free(&t);
	assert_null(t);
	auth_throttle_free(&t);
}

/* The decimal formatter the IMAP FETCH paths use instead of printf. */
static void
test_u64_dec(void **state)
{
	static const uint64_t v[] = { 0, 7, 10, 4294967295u, UINT64_MAX };
	char want[32], at[32];
	struct buf b;

	(void)state;
	buf_init(&b);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		snprintf(want, sizeof(want), "%llu", (unsigned long long)v[i]);
		*u64_dec_at(at, v[i]) = '\0';
		assert_string_equal(at, want);
		buf_reset(&b);
		buf_put_u64(&b, v[i]);
		assert_int_equal(b.len, strlen(want));
		assert_memory_equal(b.data, want, b.len);
	}
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_u64_dec),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_address),
		cmocka_unit_test(test_log_escape),
		cmocka_unit_test(test_log_level),
		cmocka_unit_test(test_log_lines),
		cmocka_unit_test(test_pw),
		cmocka_unit_test(test_throttle),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
