/* Unit tests of mtad/mime7.c, the 8-bit to 7-bit downgrade for servers
   without 8BITMIME: quoted-printable encoding rules, a plain message, a
   multipart with one 8-bit part, a message/rfc822 inside, and the refusals
   (8-bit header, preamble). Python's email package decodes each result and
   compares the text with the original (a decoder that is not ours). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mime7.h"

static void
assert_7bit(const struct buf *b)
{
	size_t col = 0;

	for (size_t i = 0; i < b->len; i++) {
		assert_true((unsigned char)b->data[i] < 0x80);
		if (b->data[i] == '\n')
			col = 0;
		else
			assert_true(++col <= 998);
	}
}

/* The decoded text of every text part of both messages must match. */
static void
python_same(const char *orig, const struct buf *conv)
{
	char p1[] = "/tmp/test_mime7_aXXXXXX", p2[] = "/tmp/test_mime7_bXXXXXX";
	char cmd[256];
	int f1 = mkstemp(p1), f2 = mkstemp(p2);
	FILE *py;

	if (access("/usr/bin/python3", X_OK) != 0)
		return;
	assert_true(f1 >= 0 && f2 >= 0);
	assert_int_equal(write(f1, orig, strlen(orig)), (ssize_t)strlen(orig));
	assert_int_equal(write(f2, conv->data, conv->len), (ssize_t)conv->len);
	close(f1);
	close(f2);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 - %s %s", p1, p2);
	py = popen(cmd, "w");
	assert_non_null(py);
	fputs("import sys, email, email.policy\n"
	    "def texts(path):\n"
	    "    m = email.message_from_bytes(open(path,'rb').read(),"
	    " policy=email.policy.default)\n"
	    "    out = []\n"
	    "    for p in m.walk():\n"
	    "        if p.get_content_maintype() == 'text':\n"
	    "            out.append(p.get_payload(decode=True))\n"
	    "    return out\n"
	    "a, b = texts(sys.argv[1]), texts(sys.argv[2])\n"
	    "assert a == b, (a, b)\n"
	    "assert a\n", py);
	assert_int_equal(pclose(py), 0);
	unlink(p1);
	unlink(p2);
}

static void
test_qp(void **state)
{
	struct buf b;
	char line[200];

	buf_init(&b);
	mime7_qp_encode("caf\xc3\xa9 = ok \r\nend\t\r\n", 19, &b);
	assert_string_equal(b.data, "caf=C3=A9 =3D ok=20\r\nend=09\r\n");
	buf_reset(&b);
	memset(line, 'a', 150);
	mime7_qp_encode(line, 150, &b);
	assert_non_null(strstr(b.data, "=\r\n"));
	assert_7bit(&b);
	buf_free(&b);
}

static void
test_plain(void **state)
{
	const char *m = "From: a@b.test\r\nSubject: hi\r\n\r\nCaf\xc3\xa9 cr\xc3\xa8me\r\n"
	    ".dot\r\n";
	struct buf b;
	const char *err;

	buf_init(&b);
	assert_int_equal(mime7_convert(m, strlen(m), &b, &err), 0);
	assert_7bit(&b);
	assert_non_null(strstr(b.data, "Content-Transfer-Encoding: "
	    "quoted-printable\r\n"));
	assert_non_null(strstr(b.data, "Caf=C3=A9"));
	python_same(m, &b);
	buf_free(&b);

	/* Already 7-bit: unchanged. */
	m = "Subject: x\r\n\r\nplain\r\n";
	buf_init(&b);
	assert_int_equal(mime7_convert(m, strlen(m), &b, &err), 0);
	assert_string_equal(b.data, m);
	buf_free(&b);
}

static void
test_multipart(void **state)
{
	const char *m =
	    "From: a@b.test\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n"
	    "preamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n\xc3\xa9t\xc3\xa9\r\n"
	    "--XX\r\nContent-Type: text/plain\r\n\r\nascii part\r\n"
	    "--XX\r\nContent-Type: message/rfc822\r\n\r\n"
	    "Subject: inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
	    "inn\xc3\xa9r\r\n--XX--\r\nepilogue\r\n";
	struct buf b;
	const char *err;

	buf_init(&b);
	assert_int_equal(mime7_convert(m, strlen(m), &b, &err), 0);
	assert_7bit(&b);
	assert_non_null(strstr(b.data, "Content-Transfer-Encoding: 7bit\r\n"));
	assert_non_null(strstr(b.data, "=C3=A9t=C3=A9"));
	assert_non_null(strstr(b.data, "ascii part\r\n--XX"));
	assert_non_null(strstr(b.data, "inn=C3=A9r"));
	python_same(m, &b);
	buf_free(&b);
}

static void
test_refused(void **state)
{
	struct buf b;
	const char *err;
	const char *m1 = "Subject: caf\xc3\xa9\r\n\r\nbody\xc3\xa9\r\n";
	const char *m2 = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
	    "boundary=Q\r\n\r\npre\xc3\xa9\r\n--Q\r\n\r\nx\r\n--Q--\r\n";
	const char *m3 = "MIME-Version: 1.0\r\nContent-Transfer-Encoding: "
	    "base64\r\n\r\n\xc3\xa9\r\n";

	buf_init(&b);
	assert_int_equal(mime7_convert(m1, strlen(m1), &b, &err), -1);
	buf_reset(&b);
	assert_int_equal(mime7_convert(m2, strlen(m2), &b, &err), -1);
	buf_reset(&b);
	assert_int_equal(mime7_convert(m3, strlen(m3), &b, &err), -1);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qp),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_multipart),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
