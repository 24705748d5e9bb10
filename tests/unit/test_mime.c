/* Unit tests for store/mime: the corpus in tests/data/mime (each .eml
   with the .expected ENVELOPE/BODYSTRUCTURE/BODY, checked against Dovecot
   2.3 by tests/mime/compare_dovecot.py), every prefix of tricky messages,
   section lookups, part limits, and tables for the text helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mime.h"

static char data_dir[PATH_MAX];

static void
find_data_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (access("tests/data/mime", R_OK) == 0) {
		str_copy(data_dir, "tests/data/mime", sizeof(data_dir));
		return;
	}
	/* build/<x>/tests/test_mime -> ../../../tests/data/mime */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	snprintf(data_dir, sizeof(data_dir), "%.*s/../../../tests/data/mime",
	    (int)(strrchr(exe, '/') - exe), exe);
}

static bool
read_file(const char *path, struct buf *out)
{
	char chunk[8192];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return false;
	buf_init(out);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(out, chunk, n);
	fclose(f);
	if (out->data == NULL)
		buf_append(out, "", 0);
	return true;
}

/* Skips an IMAP string at s[*i] (quoted or literal). */
static void
skip_string(const char *s, size_t len, size_t *i)
{
	if (s[*i] == '"') {
		for ((*i)++; *i < len && s[*i] != '"'; (*i)++)
			if (s[*i] == '\\')
				(*i)++;
		assert_true(*i < len);
		(*i)++;
	} else {
		char *end;
		unsigned long n = strtoul(s + *i + 1, &end, 10);

		assert_int_equal(end[0], '}');
		assert_int_equal(end[1], '\r');
		assert_int_equal(end[2], '\n');
		*i = (size_t)(end + 3 - s) + n;
		assert_true(*i <= len);
	}
}

/* Balanced parentheses outside strings, one list at the top. */
static void
check_balanced(const struct buf *b)
{
	size_t i = 0;
	int level = 0;

	assert_true(b->len >= 2);
	assert_int_equal(b->data[0], '(');
	while (i < b->len) {
		char c = b->data[i];

		if (c == '"' || c == '{') {
			skip_string(b->data, b->len, &i);
			continue;
		}
		if (c == '(')
			level++;
		else if (c == ')')
			level--;
		assert_true(level >= 0);
		if (level == 0)
			assert_int_equal(i, b->len - 1);
		i++;
	}
	assert_int_equal(level, 0);
}

/* Every section path reachable by walking the table resolves inside
   the message; count of resolvable leaf paths returned. */
static void
walk_sections(const struct mime_info *info, size_t len, uint32_t *path,
    size_t depth)
{
	struct mime_span sp;

	if (depth >= 8)
		return;
	for (uint32_t n = 1; n < 50; n++) {
		path[depth] = n;
		if (mime_section_find(info->parts.data, info->parts.len, path,
		    depth + 1, &sp) < 0)
			break;
		assert_true(sp.hdr_off + sp.hdr_len <= len);
		assert_true(sp.body_off + sp.body_len <= len);
		assert_true(sp.hdr_off + sp.hdr_len <= sp.body_off ||
		    sp.hdr_len == 0);
		if (sp.is_message) {
			assert_true(sp.msg_hdr_off + sp.msg_hdr_len <= len);
			assert_true(sp.msg_body_off + sp.msg_body_len <= len);
		}
		if (sp.is_multipart || sp.is_message)
			walk_sections(info, len, path, depth + 1);
		if (!sp.is_multipart && !sp.is_message && depth > 0 &&
		    n == 1) {
			/* a leaf has no part 2 under it */
			path[depth + 1] = 2;
			assert_int_equal(mime_section_find(info->parts.data,
			    info->parts.len, path, depth + 2, &sp), -1);
		}
	}
}

static void
check_invariants(const char *msg, size_t len)
{
	struct mime_info info;
	struct mime_span sp;
	struct buf text;
	uint32_t path[10];

	mime_parse(msg, len, &info);
	check_balanced(&info.envelope);
	check_balanced(&info.bodystructure);
	check_balanced(&info.body);
	assert_true(info.body.len <= info.bodystructure.len);
	assert_int_equal(mime_section_find(info.parts.data, info.parts.len,
	    NULL, 0, &sp), 0);
	assert_int_equal(sp.hdr_off, 0);
	assert_int_equal(sp.body_off + sp.body_len, len);
	walk_sections(&info, len, path, 0);
	buf_init(&text);
	mime_body_text(msg, len, info.parts.data, info.parts.len, &text);
	buf_free(&text);
	mime_info_free(&info);
}

static void
format_dump(const struct mime_info *info, struct buf *out)
{
	buf_init(out);
	buf_printf(out, "imap.envelope: %.*s\nimap.bodystructure: %.*s\n"
	    "imap.body: %.*s\n", (int)info->envelope.len - 2,
	    info->envelope.data + 1, (int)info->bodystructure.len - 2,
	    info->bodystructure.data + 1, (int)info->body.len - 2,
	    info->body.data + 1);
}

static void
test_corpus(void **state)
{
	DIR *d;
	struct dirent *de;
	int files = 0;

	(void)state;
	find_data_dir();
	d = opendir(data_dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX + 300];
		struct buf msg, want, got;
		struct mime_info info;
		size_t nl = strlen(de->d_name);

		if (nl < 5 || strcmp(de->d_name + nl - 4, ".eml") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", data_dir, de->d_name);
		assert_true(read_file(path, &msg));
		snprintf(path, sizeof(path), "%s/%.*s.expected", data_dir,
		    (int)nl - 4, de->d_name);
		assert_true(read_file(path, &want));
		mime_parse(msg.data, msg.len, &info);
		format_dump(&info, &got);
		if (got.len != want.len || memcmp(got.data, want.data,
		    got.len) != 0)
			fail_msg("%s:\n got: %s\nwant: %s", de->d_name,
			    got.data, want.data);
		mime_info_free(&info);
		check_invariants(msg.data, msg.len);
		buf_free(&msg);
		buf_free(&want);
		buf_free(&got);
		files++;
	}
	closedir(d);
	assert_true(files >= 30);
}

/* Every prefix of a nested message is a message too. */
static void
test_prefixes(void **state)
{
	static const char *const names[] = { "nested.eml",
	    "rfc822_multi_rfc822.eml", "addresses.eml", "prefix_boundaries.eml",
	    "rfc2231.eml", "bare_lf.eml" };

	(void)state;
	find_data_dir();
	for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
		char path[PATH_MAX + 300];
		struct buf msg;

		snprintf(path, sizeof(path), "%s/%s", data_dir, names[k]);
		assert_true(read_file(path, &msg));
		for (size_t n = 0; n <= msg.len; n++) {
			/* a copy, so ASan sees any read past the prefix */
			char *p = xmalloc(n > 0 ? n : 1);

			memcpy(p, msg.data, n);
			check_invariants(p, n);
			free(p);
		}
		buf_free(&msg);
	}
}

static void
span_text(const char *msg, uint64_t off, uint64_t len, const char *want)
{
	if (strlen(want) != len || memcmp(msg + off, want, len) != 0)
		fail_msg("span [%llu+%llu] is \"%.*s\", want \"%s\"",
		    (unsigned long long)off, (unsigned long long)len,
		    (int)len, msg + off, want);
}

#define CRLF "\r\n"
static const char nested_msg[] =
    "Subject: top" CRLF
    "Content-Type: multipart/mixed; boundary=outer" CRLF
    CRLF
    "preamble" CRLF
    "--outer" CRLF
    "Content-Type: text/plain" CRLF
    CRLF
    "part one" CRLF
    "--outer" CRLF
    "Content-Type: message/rfc822" CRLF
    CRLF
    "Subject: inner" CRLF
    "Content-Type: multipart/alternative; boundary=inner" CRLF
    CRLF
    "--inner" CRLF
    "Content-Type: text/plain" CRLF
    CRLF
    "alt text" CRLF
    "--inner" CRLF
    "Content-Type: multipart/related; boundary=deep" CRLF
    CRLF
    "--deep" CRLF
    CRLF
    "deep one" CRLF
    "--deep--" CRLF
    "--inner--" CRLF
    CRLF
    "--outer--" CRLF
    "epilogue" CRLF;

static void
find(const struct mime_info *info, const uint32_t *path, size_t depth,
    struct mime_span *sp)
{
	assert_int_equal(mime_section_find(info->parts.data, info->parts.len,
	    path, depth, sp), 0);
}

static void
test_sections(void **state)
{
	const char *m = nested_msg;
	struct mime_info info;
	struct mime_span sp;
	uint32_t p[4];

	(void)state;
	mime_parse(m, strlen(m), &info);
	/* BODY[] / [HEADER] / [TEXT] */
	find(&info, p, 0, &sp);
	assert_true(sp.is_multipart);
	span_text(m, sp.hdr_off, sp.hdr_len, "Subject: top" CRLF
	    "Content-Type: multipart/mixed; boundary=outer" CRLF CRLF);
	assert_int_equal(sp.body_off + sp.body_len, strlen(m));
	/* [1], [1.MIME] */
	p[0] = 1;
	find(&info, p, 1, &sp);
	span_text(m, sp.body_off, sp.body_len, "part one");
	span_text(m, sp.hdr_off, sp.hdr_len, "Content-Type: text/plain" CRLF
	    CRLF);
	assert_false(sp.is_multipart || sp.is_message);
	/* [2] is the message/rfc822: [2.HEADER], [2.TEXT] */
	p[0] = 2;
	find(&info, p, 1, &sp);
	assert_true(sp.is_message);
	span_text(m, sp.msg_hdr_off, sp.msg_hdr_len, "Subject: inner" CRLF
	    "Content-Type: multipart/alternative; boundary=inner" CRLF CRLF);
	assert_int_equal(sp.msg_body_off + sp.msg_body_len,
	    sp.body_off + sp.body_len);
	assert_int_equal(sp.msg_hdr_off, sp.body_off);
	/* [2.1] is inside the encapsulated message's multipart; [2.1.MIME] */
	p[1] = 1;
	find(&info, p, 2, &sp);
	span_text(m, sp.body_off, sp.body_len, "alt text");
	span_text(m, sp.hdr_off, sp.hdr_len, "Content-Type: text/plain" CRLF
	    CRLF);
	/* [2.TEXT] is the encapsulated message's body, boundaries and all */
	p[1] = 0;
	find(&info, p, 1, &sp);
	assert_true(sp.msg_body_len > 0 && m[sp.msg_body_off] == '-');
	/* [2.2] multipart/related, [2.2.1] */
	p[1] = 2;
	find(&info, p, 2, &sp);
	assert_true(sp.is_multipart);
	p[2] = 1;
	find(&info, p, 3, &sp);
	span_text(m, sp.body_off, sp.body_len, "deep one");
	assert_int_equal(sp.hdr_len, 2);
	/* no such parts */
	p[2] = 2;
	assert_int_equal(mime_section_find(info.parts.data, info.parts.len, p,
	    3, &sp), -1);
	p[0] = 3;
	assert_int_equal(mime_section_find(info.parts.data, info.parts.len, p,
	    1, &sp), -1);
	p[0] = 0;
	assert_int_equal(mime_section_find(info.parts.data, info.parts.len, p,
	    1, &sp), -1);
	p[0] = 1;
	p[1] = 1;
	assert_int_equal(mime_section_find(info.parts.data, info.parts.len, p,
	    2, &sp), -1);
	/* a malformed table */
	assert_int_equal(mime_section_find("junk", 4, p, 1, &sp), -1);
	assert_int_equal(mime_section_find(info.parts.data, info.parts.len - 1,
	    p, 1, &sp), -1);
	mime_info_free(&info);
}

static void
test_sections_single(void **state)
{
	static const char m1[] = "Subject: x" CRLF CRLF "body" CRLF;
	static const char m2[] = "Content-Type: message/rfc822" CRLF CRLF
	    "Subject: in" CRLF CRLF "inner body" CRLF;
	struct mime_info info;
	struct mime_span sp;
	uint32_t p[3] = { 1, 1, 1 };

	(void)state;
	/* part 1 of a non-multipart message is its body */
	mime_parse(m1, strlen(m1), &info);
	find(&info, p, 1, &sp);
	span_text(m1, sp.body_off, sp.body_len, "body" CRLF);
	assert_int_equal(mime_section_find(info.parts.data, info.parts.len, p,
	    2, &sp), -1);
	p[0] = 2;
	assert_int_equal(mime_section_find(info.parts.data, info.parts.len, p,
	    1, &sp), -1);
	mime_info_free(&info);
	/* a top-level message/rfc822: [1] is it, [1.HEADER], [1.1] */
	p[0] = 1;
	mime_parse(m2, strlen(m2), &info);
	find(&info, p, 1, &sp);
	assert_true(sp.is_message);
	span_text(m2, sp.msg_hdr_off, sp.msg_hdr_len, "Subject: in" CRLF CRLF);
	span_text(m2, sp.msg_body_off, sp.msg_body_len, "inner body" CRLF);
	find(&info, p, 2, &sp);
	span_text(m2, sp.body_off, sp.body_len, "inner body" CRLF);
	mime_info_free(&info);
}

/* CPython's email test message msg_47.txt: part 1's header has no blank
   line of its own (the one there is the boundary's line break), part 2's
   runs into the boundary. [n.MIME] is bytes of the message up to where
   the delimiter's CRLF starts, as Dovecot serves it; never more. */
static void
test_sections_no_blank_line(void **state)
{
	static const char m[] =
	    "Date: 01 Jan 2001 00:01+0000" CRLF
	    "From: arthur@example.example" CRLF
	    "MIME-Version: 1.0" CRLF
	    "Content-Type: multipart/mixed; boundary=foo" CRLF
	    CRLF
	    "--foo" CRLF
	    "Content-Type: text/plain" CRLF
	    "bar" CRLF
	    CRLF
	    "--foo" CRLF
	    "Content-Type: text/html" CRLF
	    "<html><body><iframe src=\"http://example.edu/\" /></body></html>"
	    CRLF
	    "--foo--" CRLF;
	struct mime_info info;
	struct mime_span sp;
	uint32_t p[1] = { 1 };

	(void)state;
	mime_parse(m, strlen(m), &info);
	find(&info, p, 1, &sp);
	span_text(m, sp.hdr_off, sp.hdr_len,
	    "Content-Type: text/plain" CRLF "bar" CRLF);
	assert_int_equal(sp.body_len, 0);
	assert_true(sp.hdr_off + sp.hdr_len <= sp.body_off);
	/* The CRLF before "--foo" is the delimiter's, not the header's. */
	assert_memory_equal(m + sp.body_off, CRLF "--foo", 7);
	p[0] = 2;
	find(&info, p, 1, &sp);
	span_text(m, sp.hdr_off, sp.hdr_len, "Content-Type: text/html" CRLF
	    "<html><body><iframe src=\"http://example.edu/\" /></body></html>"
	    CRLF);
	assert_int_equal(sp.body_len, 0);
	/* Still parsed as before: text/plain then text/html, no body. */
	assert_non_null(strstr(info.bodystructure.data,
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"));
	mime_info_free(&info);
}

static void
test_limits(void **state)
{
	struct buf m;
	struct mime_info info;
	struct mime_span sp;
	uint32_t p[2] = { MIME_MAX_PARTS + 10, 1 };
	int i;

	(void)state;
	/* more parts than MIME_MAX_PARTS */
	buf_init(&m);
	buf_puts(&m, "Content-Type: multipart/mixed; boundary=x\r\n\r\n");
	for (i = 0; i < MIME_MAX_PARTS + 500; i++)
		buf_printf(&m, "--x\r\n\r\n%d\r\n", i);
	buf_puts(&m, "--x--\r\n");
	mime_parse(m.data, m.len, &info);
	check_balanced(&info.bodystructure);
	assert_true(info.parts.len <= 12 + 24 * (size_t)MIME_MAX_PARTS);
	assert_int_equal(mime_section_find(info.parts.data, info.parts.len, p,
	    1, &sp), -1);
	p[0] = MIME_MAX_PARTS - 1;
	find(&info, p, 1, &sp);
	mime_info_free(&info);
	check_invariants(m.data, m.len);
	/* deep message/rfc822 nesting */
	buf_reset(&m);
	for (i = 0; i < 100; i++)
		buf_puts(&m, "Content-Type: message/rfc822\r\n\r\n");
	buf_puts(&m, "x\r\n");
	mime_parse(m.data, m.len, &info);
	check_balanced(&info.bodystructure);
	assert_true(info.parts.len <= 12 + 24 * (MIME_MAX_DEPTH + 2));
	mime_info_free(&info);
	check_invariants(m.data, m.len);
	buf_free(&m);
}

static void
test_strings(void **state)
{
	static const char m[] = "Subject: a \"b\" \\c\r\nFrom: \xc3\xa9 <a@b>\r\n"
	    "\r\n";
	struct mime_info info;

	(void)state;
	mime_parse(m, strlen(m), &info);
	assert_string_equal(info.envelope.data, "(NIL \"a \\\"b\\\" \\\\c\" "
	    "(({2}\r\n\xc3\xa9 NIL \"a\" \"b\")) (({2}\r\n\xc3\xa9 NIL \"a\" "
	    "\"b\")) (({2}\r\n\xc3\xa9 NIL \"a\" \"b\")) NIL NIL NIL NIL NIL)");
	mime_info_free(&info);
}

static void
test_header_get(void **state)
{
	static const char h[] = "Subject: one\r\n two\r\nX-A: 1\r\n"
	    "x-a:2\r\nReceived: r\r\n\r\nX-A: body\r\n";
	struct buf b;

	(void)state;
	buf_init(&b);
	assert_int_equal(mime_header_get(h, strlen(h), "subject", &b), 1);
	assert_string_equal(b.data, "one two");
	buf_reset(&b);
	assert_int_equal(mime_header_get(h, strlen(h), "X-A", &b), 2);
	assert_string_equal(b.data, "1\n2");
	buf_reset(&b);
	assert_int_equal(mime_header_get(h, strlen(h), "Cc", &b), 0);
	assert_int_equal(b.len, 0);
	/* the header ends at its blank line; bare LF too */
	buf_reset(&b);
	assert_int_equal(mime_header_get("A: 1\n\nA: 2\n", 11, "a", &b), 1);
	assert_string_equal(b.data, "1");
	buf_free(&b);
}

static void
test_decode_words(void **state)
{
	static const struct {
		const char *in, *want;
	} t[] = {
		{ "plain text", "plain text" },
		{ "=?utf-8?q?caf=C3=A9?=", "caf\xc3\xa9" },
		{ "=?UTF-8?B?w6l0w6k=?=", "\xc3\xa9t\xc3\xa9" },
		{ "=?iso-8859-1?q?caf=E9?=", "caf\xc3\xa9" },
		{ "=?ISO-8859-15?Q?=A4?=", "\xe2\x82\xac" },
		{ "=?windows-1252?q?=80_x?=", "\xe2\x82\xac x" },
		{ "=?utf-8?q?a?= =?utf-8?q?b?=", "ab" },
		{ "=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab" },
		{ "=?utf-8?q?a?= b =?utf-8?q?c?=", "a b c" },
		{ "x =?utf-8?q?a_b?= y", "x a b y" },
		{ "=?utf-8*en?q?hi?=", "hi" },
		{ "=?koi8-r?b?9NXU?=", "\xd0\xa2\xd1\x83\xd1\x82" },
		{ "=?x-no-such?b?9NXU?=", "\xf4\xd5\xd4" },
		/* only a plain charset name goes to iconv_open */
		{ "=?utf-16//translit?q?ab?=", "ab" },
		{ "=?utf-8?x?bad?=", "=?utf-8?x?bad?=" },
		{ "=?utf-8?q?no end", "=?utf-8?q?no end" },
		{ "=?utf-8?q?sp ace?=", "=?utf-8?q?sp ace?=" },
		{ "", "" },
	};
	struct buf b;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		buf_init(&b);
		mime_decode_words(t[i].in, strlen(t[i].in), &b);
		buf_append(&b, "", 0);
		if (strcmp(b.data, t[i].want) != 0)
			fail_msg("\"%s\": got \"%s\"", t[i].in, b.data);
		buf_free(&b);
	}
}

static void
test_body_text(void **state)
{
	static const char m[] =
	    "Content-Type: multipart/mixed; boundary=z\r\n\r\n"
	    "--z\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "caf=E9 =\r\nsoft =  \r\npad=\r\n"
	    "--z\r\nContent-Type: text/html; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nw6l0\r\nw6k=\r\n"
	    "--z\r\nContent-Type: image/png\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
	    "--z\r\nContent-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\n"
	    "inner\r\n--z--\r\n";
	struct mime_info info;
	struct buf b;

	(void)state;
	mime_parse(m, strlen(m), &info);
	buf_init(&b);
	mime_body_text(m, strlen(m), info.parts.data, info.parts.len, &b);
	assert_string_equal(b.data, "caf\xc3\xa9 soft pad\n\xc3\xa9t\xc3\xa9\ninner");
	/* a bad table adds nothing */
	buf_reset(&b);
	mime_body_text(m, strlen(m), "xx", 2, &b);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	mime_info_free(&info);
}

/* Charset conversion for SEARCH, one case per family (glibc iconv by
   name), in RFC 2047 words and in body parts. */
static const struct {
	const char *cs, *raw, *b64, *utf8;
} charset_cases[] = {
	{ "ISO-2022-JP",
	    "\x1b\x24\x42\x46\x7c\x4b\x5c\x38\x6c\x24\x4e\x25\x61\x21\x3c\x25"
	    "\x6b\x1b\x28\x42", "GyRCRnxLXDhsJE4lYSE8JWsbKEI=",
	    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\xa1\xe3"
	    "\x83\xbc\xe3\x83\xab" },
	{ "Shift_JIS", "\x93\xfa\x96\x7b\x8c\xea", "k/qWe4zq",
	    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
	{ "GB18030", "\xd6\xd0\xce\xc4\x81\x30\x89\x38\x94\x39\xfc\x36",
	    "1tDOxIEwiTiUOfw2",
	    "\xe4\xb8\xad\xe6\x96\x87\xc3\x9f\xf0\x9f\x98\x80" },
	{ "koi8-r", "\xf0\xd2\xc9\xd7\xc5\xd4", "8NLJ18XU",
	    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82" },
	{ "windows-1251", "\xcf\xf0\xe8\xe2\xe5\xf2", "z/Do4uXy",
	    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82" },
	{ "iso-8859-7", "\xca\xe1\xeb\xe7\xec\xdd\xf1\xe1", "yuHr5+zd8eE=",
	    "\xce\x9a\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1" },
	{ "EUC-KR", "\xc7\xd1\xb1\xb9\xbe\xee", "x9Gxub7u",
	    "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4" },
	{ "Big5", "\xa4\xa4\xa4\xe5", "pKSk5Q==", "\xe4\xb8\xad\xe6\x96\x87" },
	/* the ones converted before iconv, unchanged */
	{ "iso-8859-1", "caf\xe9", "Y2Fm6Q==", "caf\xc3\xa9" },
	{ "ISO-8859-15", "\xa4", "pA==", "\xe2\x82\xac" },
	/* windows-1252's unassigned 0x81 stays U+0081 (as Latin-1) */
	{ "windows-1252", "\x80\x81x", "gIF4", "\xe2\x82\xac\xc2\x81x" },
	{ "utf-8", "\xc3\xa9", "w6k=", "\xc3\xa9" },
	{ "us-ascii", "abc", "YWJj", "abc" },
	/* unknown: the bytes as they are */
	{ "x-unknown", "\xf0\xd2", "8NI=", "\xf0\xd2" },
};

static void
test_charsets(void **state)
{
	struct buf b, m;
	struct mime_info info;

	(void)state;
	buf_init(&b);
	buf_init(&m);
	buf_puts(&m, "Subject: x\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=zz\r\n\r\n");
	for (size_t i = 0; i < ARRAY_SIZE(charset_cases); i++) {
		char *w = xasprintf("a =?%s?B?%s?= b", charset_cases[i].cs,
		    charset_cases[i].b64);
		char *want = xasprintf("a %s b", charset_cases[i].utf8);
		buf_reset(&b);
		mime_decode_words(w, strlen(w), &b);
		if (strcmp(b.data, want) != 0)
			fail_msg("%s: got \"%s\"", w, b.data);
		free(w);
		free(want);
		/* body parts: 8bit and base64, charset quoted or not */
		buf_printf(&m, "--zz\r\nContent-Type: text/plain; charset=%s\r\n"
		    "\r\n%s\r\n", charset_cases[i].cs, charset_cases[i].raw);
		buf_printf(&m, "--zz\r\nContent-Type: text/plain; "
		    "charset=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		    "%s\r\n", charset_cases[i].cs, charset_cases[i].b64);
	}
	buf_puts(&m, "--zz--\r\n");
	mime_parse(m.data, m.len, &info);
	buf_reset(&b);
	mime_body_text(m.data, m.len, info.parts.data, info.parts.len, &b);
	const char *p = b.data;
	for (size_t i = 0; i < ARRAY_SIZE(charset_cases); i++) {
		for (int k = 0; k < 2; k++) {
			const char *want = charset_cases[i].utf8;
			size_t wl = strlen(want);
			if (strncmp(p, want, wl) != 0)
				fail_msg("body %s (%s): got \"%.40s\"",
				    charset_cases[i].cs, k ? "base64" : "8bit", p);
			p += wl;
			/* The 8bit part keeps its line end; parts are joined
			   by "\n". */
			if (k == 0 && strncmp(p, "\r\n", 2) == 0)
				p += 2;
			if (*p == '\n')
				p++;
		}
	}
	assert_int_equal(*p, '\0');
	mime_info_free(&info);
	buf_free(&m);
	buf_free(&b);
}

static void
test_parse_date(void **state)
{
	static const struct {
		const char *in;
		int ok;
		long long t;
		int tz;
	} t[] = {
		{ "Mon, 23 Nov 2026 10:00:00 +0000", 0, 1795428000LL, 0 },
		{ "Mon, 23 Nov 2026 10:00:00 +0130", 0, 1795422600LL, 90 },
		{ "23 Nov 2026 10:00:00 -0500", 0, 1795446000LL, -300 },
		{ "23 Nov 2026 10:00 EST", 0, 1795446000LL, -300 },
		{ "23 nov 2026 10:00:00 GMT", 0, 1795428000LL, 0 },
		{ "23 Nov 2026 10:00:00 UT", 0, 1795428000LL, 0 },
		{ "23 Nov 2026 10:00:00 PDT", 0, 1795453200LL, -420 },
		{ "23 Nov 26 10:00:00 +0000", 0, 1795428000LL, 0 },
		{ "1 Jan 99 00:00:00 +0000", 0, 915148800LL, 0 },
		{ "1 Jan 099 00:00:00 +0000", 0, 915148800LL, 0 },
		{ "Thu, 1 Jan 1970 00:00:00 Z", 0, 0, 0 },
		{ " (c) Mon , 23 Nov 2026 10 : 00 : 00 (x) +0000", 0,
		    1795428000LL, 0 },
		{ "29 Feb 2024 12:00:00 +0000", 0, 1709208000LL, 0 },
		{ "23 Nov 2026 10:00:00 A", 0, 1795428000LL, 0 },
		{ "23 Nov 2026 10:00:00", 0, 1795428000LL, 0 },
		{ "29 Feb 2023 12:00:00 +0000", -1, 0, 0 },
		{ "32 Jan 2026 00:00:00 +0000", -1, 0, 0 },
		{ "1 Foo 2026 00:00:00 +0000", -1, 0, 0 },
		{ "1 Jan 2026 24:00:00 +0000", -1, 0, 0 },
		{ "1 Jan 2026 10:60:00 +0000", -1, 0, 0 },
		{ "1 Jan 2026 10:00:00 +00", -1, 0, 0 },
		{ "1 Jan 2026", -1, 0, 0 },
		{ "", -1, 0, 0 },
		{ "garbage", -1, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		time_t tt = 0;
		int tz = 0, r;

		r = mime_parse_date(t[i].in, strlen(t[i].in), &tt, &tz);
		if (r != t[i].ok)
			fail_msg("\"%s\": returned %d", t[i].in, r);
		if (r == 0 && ((long long)tt != t[i].t || tz != t[i].tz))
			fail_msg("\"%s\": %lld %d, want %lld %d", t[i].in,
			    (long long)tt, tz, t[i].t, t[i].tz);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_sections_single),
		cmocka_unit_test(test_sections_no_blank_line),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_header_get),
		cmocka_unit_test(test_decode_words),
		cmocka_unit_test(test_body_text),
		cmocka_unit_test(test_charsets),
		cmocka_unit_test(test_parse_date),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
