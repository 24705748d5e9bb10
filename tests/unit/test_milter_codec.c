/* Unit tests of common/milter_codec.c: command encodings byte for byte,
   packet framing (partial, bad lengths), every reply type, malformed
   replies, and the CRLF formatting of headers a filter adds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "milter_codec.h"
#include "util.h"

static void
test_encode(void **state)
{
	struct buf b;
	const char *args[] = { "<a@b.test>", "SIZE=10" };
	const char *mn[] = { "j", "{daemon_name}" };
	const char *mv[] = { "mx.test", "postroom" };

	(void)state;
	buf_init(&b);
	milter_enc_optneg(&b, 6, MILTER_OUR_ACTIONS, 0x7f);
	assert_int_equal(b.len, 17);
	assert_memory_equal(b.data, "\0\0\0\x0dO\0\0\0\x06\0\0\0\x31\0\0\0\x7f",
	    17);
	buf_reset(&b);
	milter_enc_connect(&b, "host.test", '4', 25, "127.0.0.1");
	assert_int_equal(b.len, 4 + 1 + 10 + 1 + 2 + 10);
	assert_memory_equal(b.data + 4, "Chost.test\0" "4\0\x19" "127.0.0.1\0",
	    b.len - 4);
	buf_reset(&b);
	milter_enc_args(&b, SMFIC_MAIL, args, 2);
	assert_memory_equal(b.data, "\0\0\0\x14M<a@b.test>\0SIZE=10\0", b.len);
	buf_reset(&b);
	milter_enc_macro(&b, SMFIC_CONNECT, mn, mv, 2);
	assert_memory_equal(b.data + 4, "DCj\0mx.test\0{daemon_name}\0postroom\0",
	    b.len - 4);
	buf_reset(&b);
	milter_enc_header(&b, "Subject", "hi");
	assert_memory_equal(b.data, "\0\0\0\x0cLSubject\0hi\0", b.len);
	buf_reset(&b);
	milter_enc_body(&b, "x\r\n", 3);
	milter_enc_simple(&b, SMFIC_BODYEOB);
	assert_memory_equal(b.data, "\0\0\0\x04" "Bx\r\n" "\0\0\0\x01" "E",
	    b.len);
	buf_reset(&b);
	milter_enc_connect(&b, "unknown", 'U', 0, NULL);
	assert_memory_equal(b.data, "\0\0\0\x0a" "Cunknown\0U", b.len);
	buf_free(&b);
}

static void
test_frame(void **state)
{
	const unsigned char pkt[] = "\0\0\0\x01" "c" "\0\0\0\x03" "yab";
	size_t used, dlen;
	char cmd;
	const unsigned char *data;

	(void)state;
	assert_int_equal(milter_frame(pkt, 3, &used, &cmd, &data, &dlen), 0);
	assert_int_equal(milter_frame(pkt, 4, &used, &cmd, &data, &dlen), 0);
	assert_int_equal(milter_frame(pkt, 5, &used, &cmd, &data, &dlen), 1);
	assert_int_equal(used, 5);
	assert_int_equal(cmd, 'c');
	assert_int_equal(dlen, 0);
	assert_int_equal(milter_frame(pkt + 5, 6, &used, &cmd, &data, &dlen), 0);
	assert_int_equal(milter_frame(pkt + 5, 7, &used, &cmd, &data, &dlen), 1);
	assert_int_equal(dlen, 2);
	assert_int_equal(milter_frame((const unsigned char *)"\0\0\0\0c", 5,
	    &used, &cmd, &data, &dlen), -1);
	assert_int_equal(milter_frame((const unsigned char *)"\xff\0\0\0c", 5,
	    &used, &cmd, &data, &dlen), -1);
}

static int
parse(const char *cmdpkt, size_t len, struct milter_reply *r)
{
	const char *err;
	return milter_reply_parse(cmdpkt[0], (const unsigned char *)cmdpkt + 1,
	    len - 1, r, &err);
}

static void
test_replies(void **state)
{
	struct milter_reply r;

	(void)state;
	assert_int_equal(parse("O\0\0\0\x06\0\0\0\x21\0\0\0\x10", 13, &r), 0);
	assert_int_equal(r.type, MILTER_R_OPTNEG);
	assert_int_equal(r.version, 6);
	assert_int_equal(r.actions, 0x21);
	assert_int_equal(r.protocol, 0x10);
	assert_int_equal(parse("O\0\0\0", 4, &r), -1);
	assert_int_equal(parse("a", 1, &r), 0);
	assert_int_equal(r.type, MILTER_R_ACCEPT);
	assert_int_equal(parse("c", 1, &r), 0);
	assert_int_equal(r.type, MILTER_R_CONTINUE);
	assert_int_equal(parse("r", 1, &r), 0);
	assert_int_equal(r.type, MILTER_R_REJECT);
	assert_int_equal(parse("t", 1, &r), 0);
	assert_int_equal(r.type, MILTER_R_TEMPFAIL);
	assert_int_equal(parse("d", 1, &r), 0);
	assert_int_equal(r.type, MILTER_R_DISCARD);
	assert_int_equal(parse("p", 1, &r), 0);
	assert_int_equal(r.type, MILTER_R_PROGRESS);
	assert_int_equal(parse("s", 1, &r), 0);
	assert_int_equal(r.type, MILTER_R_SKIP);
	assert_int_equal(parse("y550 5.7.1 go away\0", 19, &r), 0);
	assert_int_equal(r.type, MILTER_R_REPLYCODE);
	assert_string_equal(r.text, "550 5.7.1 go away");
	assert_int_equal(parse("y250 ok\0", 8, &r), -1);
	assert_int_equal(parse("y550 5.7.1 a\r\n550 b\0", 20, &r), -1);
	assert_int_equal(parse("y550 no nul", 11, &r), -1);
	assert_int_equal(parse("y55\0", 4, &r), -1);
	assert_int_equal(parse("qspam\0", 6, &r), 0);
	assert_int_equal(r.type, MILTER_R_QUARANTINE);
	assert_string_equal(r.text, "spam");
	assert_int_equal(parse("hX-Spam\0Yes\0", 12, &r), 0);
	assert_int_equal(r.type, MILTER_R_ADDHEADER);
	assert_string_equal(r.name, "X-Spam");
	assert_string_equal(r.value, "Yes");
	assert_int_equal(parse("m\0\0\0\x02Subject\0\0", 14, &r), 0);
	assert_int_equal(r.type, MILTER_R_CHGHEADER);
	assert_int_equal(r.index, 2);
	assert_string_equal(r.value, "");
	assert_int_equal(parse("i\0\0\0\0X-A\0b\0", 11, &r), 0);
	assert_int_equal(r.type, MILTER_R_INSHEADER);
	assert_int_equal(parse("i\0\0", 3, &r), -1);
	assert_int_equal(parse("hBad Name\0v\0", 12, &r), -1);
	assert_int_equal(parse("hX:Y\0v\0", 7, &r), -1);
	assert_int_equal(parse("hX\0v", 4, &r), -1);
	assert_int_equal(parse("h\0v\0", 4, &r), -1);
	assert_int_equal(parse("+<x@y>\0", 7, &r), 0);
	assert_int_equal(r.type, MILTER_R_OTHER);
	assert_int_equal(parse("Z", 1, &r), -1);
}

static void
test_format(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	milter_header_format(&b, "X-Spam", "Yes");
	milter_header_format(&b, "X-A", "one\n\ttwo\r\nthree\n\n");
	milter_header_format(&b, "X-B", "");
	milter_header_format(&b, "X-C", " lead");
	buf_putc(&b, '\0');
	assert_string_equal(b.data, "X-Spam: Yes\r\n"
	    "X-A: one\r\n\ttwo\r\n\tthree\r\n"
	    "X-B:\r\n"
	    "X-C: lead\r\n");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
