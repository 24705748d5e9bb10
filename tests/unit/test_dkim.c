/* Unit tests of common/dkim.c: relaxed canonicalisation against RFC 6376
   3.4.5's example and edge cases (empty body, trailing empty lines,
   whitespace-only lines, LF line ends, missing final line end), key
   generation (mode 0600, refusing to replace a key, loading back, the DNS
   TXT data), and signatures of both algorithms verified by dkimpy
   (/usr/bin/python3 with python3-dkim, its DNS answered by a dnsfunc
   callback from the TXT data we produce). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dkim.h"
#include "util.h"

static void
check_header(const char *in, const char *want)
{
	struct buf b;

	buf_init(&b);
	dkim_canon_header(in, strlen(in), &b);
	buf_putc(&b, '\0');
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void
check_body(const char *in, const char *want)
{
	struct buf b;

	buf_init(&b);
	dkim_canon_body(in, strlen(in), &b);
	buf_putc(&b, '\0');
	assert_string_equal(b.data, want);
	buf_free(&b);
}

/* RFC 6376 3.4.5. */
static void
test_rfc_example(void **state)
{
	check_header("A: X\r\n", "a:X\r\n");
	check_header("B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n");
	check_body(" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
}

static void
test_canon_edges(void **state)
{
	check_header("Subject:hello", "subject:hello\r\n");
	check_header("SUBJECT:   \r\n", "subject:\r\n");
	check_header("X-Long: a\r\n b\r\n\t c  d\r\n", "x-long:a b c d\r\n");
	check_header("To:\r\n x@y\r\n", "to:x@y\r\n");
	check_body("", "");
	check_body("\r\n\r\n", "");
	check_body(" \t \r\n", "");
	check_body("a", "a\r\n");
	check_body("a\nb  \n\n", "a\r\nb\r\n");
	check_body("a\r\n \r\nb\r\n", "a\r\n\r\nb\r\n");
	check_body("x\ty  z \r\n", "x y z\r\n");
}

static const char msg[] =
    "From: Alice <alice@example.test>\r\n"
    "To: bob@remote.test\r\n"
    "Subject: a  test\r\n"
    "  folded\r\n"
    "Date: Mon, 07 Dec 2026 18:00:00 +0000\r\n"
    "Message-ID: <1@example.test>\r\n"
    "X-Not-Signed: whatever\r\n"
    "\r\n"
    "Hello Bob,  \r\n"
    "\r\n"
    "a line with trailing tabs\t\t\r\n"
    "\r\n"
    "\r\n";

/* Runs dkimpy over DIR/msg.eml with TXT records from DIR/dns.txt ("name
   data" per line). Returns the verifier's exit status. */
static int
dkimpy_verify(const char *dir)
{
	char *script, *cmd;
	FILE *f;
	int rc;

	script = xasprintf("%s/verify.py", dir);
	f = fopen(script, "w");
	assert_non_null(f);
	fprintf(f,
	    "import sys, dkim\n"
	    "recs = {}\n"
	    "for line in open(sys.argv[2]):\n"
	    "    name, data = line.rstrip('\\n').split(' ', 1)\n"
	    "    recs[name.encode()] = data.encode()\n"
	    "def dns(name, timeout=5):\n"
	    "    return recs.get(name.rstrip(b'.'))\n"
	    "msg = open(sys.argv[1], 'rb').read()\n"
	    "d = dkim.DKIM(msg)\n"
	    "n = int(sys.argv[3])\n"
	    "for i in range(n):\n"
	    "    try:\n"
	    "        ok = d.verify(idx=i, dnsfunc=dns)\n"
	    "    except dkim.ValidationError as e:\n"
	    "        ok = False; print('dkimpy:', e)\n"
	    "    if not ok:\n"
	    "        print('signature', i, 'failed'); sys.exit(1)\n"
	    "print('ok', n)\n");
	fclose(f);
	cmd = xasprintf("/usr/bin/python3 %s %s/msg.eml %s/dns.txt 2 "
	    ">&2", script, dir, dir);
	rc = system(cmd);
	free(cmd);
	free(script);
	return rc;
}

static void
test_sign_verify(void **state)
{
	char dir[] = "/tmp/test_dkim.XXXXXX";
	struct dkim_key *rsa, *ed, *again;
	struct dkim_key **keys;
	size_t nkeys;
	char err[256], path[256];
	struct buf sig, txt;
	struct stat sb;
	FILE *f;

	if (system("/usr/bin/python3 -c 'import dkim, nacl' 2>/dev/null")
	    != 0)
		skip();   /* python3-dkim / python3-nacl: scripts/deps.sh test */
	assert_non_null(mkdtemp(dir));
	if (dkim_generate(dir, "Example.TEST", "postroom", DKIM_RSA, &rsa, err,
	    sizeof(err)) != 0)
		fail_msg("%s", err);
	if (dkim_generate(dir, "example.test", "postroom-ed25519",
	    DKIM_ED25519, &ed, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(dkim_key_alg(rsa), DKIM_RSA);
	assert_int_equal(dkim_key_alg(ed), DKIM_ED25519);
	assert_string_equal(dkim_key_domain(rsa), "example.test");
	assert_string_equal(dkim_key_selector(ed), "postroom-ed25519");
	snprintf(path, sizeof(path), "%s/dkim/example.test/postroom.private",
	    dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/dkim/example.test", dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	/* Never replaced. */
	assert_int_equal(dkim_generate(dir, "example.test", "postroom",
	    DKIM_ED25519, &again, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exists already"));
	assert_int_equal(dkim_generate(dir, "example.test", "../x",
	    DKIM_ED25519, NULL, err, sizeof(err)), -1);
	assert_int_equal(dkim_keys_load(dir, "EXAMPLE.test", &keys, &nkeys,
	    err, sizeof(err)), 0);
	assert_int_equal(nkeys, 2);
	assert_string_equal(dkim_key_selector(keys[0]), "postroom");
	assert_string_equal(dkim_key_selector(keys[1]), "postroom-ed25519");
	dkim_keys_free(keys, nkeys);
	assert_int_equal(dkim_keys_load(dir, "other.test", &keys, &nkeys,
	    err, sizeof(err)), 0);
	assert_int_equal(nkeys, 0);

	/* Sign with both (Ed25519 first, then RSA on top) and verify. */
	buf_init(&sig);
	buf_init(&txt);
	assert_int_equal(dkim_sign(ed, msg, strlen(msg), 1765130400, &sig,
	    err, sizeof(err)), 0);
	assert_int_equal(dkim_sign(rsa, msg, strlen(msg), 1765130400, &sig,
	    err, sizeof(err)), 0);
	for (size_t i = 0; i + 1 < sig.len; i++) {
		/* Folded lines stay short and use CRLF. */
		if (sig.data[i] == '\n')
			assert_true(sig.data[i - 1] == '\r');
	}
	snprintf(path, sizeof(path), "%s/msg.eml", dir);
	f = fopen(path, "wb");
	assert_non_null(f);
	fwrite(sig.data, 1, sig.len, f);
	fwrite(msg, 1, strlen(msg), f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/dns.txt", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	dkim_dns_txt(rsa, &txt);
	assert_true(strncmp(txt.data, "v=DKIM1; k=rsa; p=MII", 21) == 0);
	fprintf(f, "postroom._domainkey.example.test %.*s\n", (int)txt.len,
	    txt.data);
	dkim_dns_txt(ed, &txt);
	assert_true(strncmp(txt.data, "v=DKIM1; k=ed25519; p=", 22) == 0);
	assert_int_equal(txt.len, 22 + 44);
	fprintf(f, "postroom-ed25519._domainkey.example.test %.*s\n",
	    (int)txt.len, txt.data);
	fclose(f);
	assert_int_equal(dkimpy_verify(dir), 0);

	/* Header and body in two buffers: the same signature (both
	   algorithms are deterministic). */
	{
		struct buf one, two;
		const char *body = strstr(msg, "\r\n\r\n") + 4;
		buf_init(&one);
		buf_init(&two);
		assert_int_equal(dkim_sign(rsa, msg, strlen(msg), 7, &one, err,
		    sizeof(err)), 0);
		assert_int_equal(dkim_sign_parts(rsa, msg, (size_t)(body - msg),
		    body, strlen(body), 7, &two, err, sizeof(err)), 0);
		assert_int_equal(one.len, two.len);
		assert_memory_equal(one.data, two.data, one.len);
		buf_free(&one);
		buf_free(&two);
	}

	/* A changed body no longer verifies. */
	snprintf(path, sizeof(path), "%s/msg.eml", dir);
	f = fopen(path, "wb");
	fwrite(sig.data, 1, sig.len, f);
	fputs("From: Alice <alice@example.test>\r\n\r\nother\r\n", f);
	fclose(f);
	assert_int_not_equal(dkimpy_verify(dir), 0);

	/* No From: refused. */
	buf_reset(&sig);
	assert_int_equal(dkim_sign(rsa, "Subject: x\r\n\r\nb\r\n", 17, 1, &sig,
	    err, sizeof(err)), -1);
	/* Bad messages never crash: no header end, no colon, empty. */
	assert_int_equal(dkim_sign(ed, "From: a@b", 9, 1, &sig, err,
	    sizeof(err)), 0);
	assert_int_equal(dkim_sign(ed, "garbage\r\n\r\n", 11, 1, &sig, err,
	    sizeof(err)), -1);
	assert_int_equal(dkim_sign(ed, "", 0, 1, &sig, err, sizeof(err)), -1);
	buf_free(&sig);
	buf_free(&txt);
	dkim_key_free(&rsa);
	dkim_key_free(&ed);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_example),
		cmocka_unit_test(test_canon_edges),
		cmocka_unit_test(test_sign_verify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
