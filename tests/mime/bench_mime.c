/* bench_mime: mime_parse throughput on generated messages (a plain text
   mail, a mail with a 1 MiB base64 attachment, and a 500-part message).
   Development aid: cc ... tests/mime/bench_mime.c libstore.a libcommon.a */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mime.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
run(const char *name, const struct buf *m, int iters)
{
	struct mime_info info;
	double t0 = now(), dt;

	for (int i = 0; i < iters; i++) {
		mime_parse(m->data, m->len, &info);
		mime_info_free(&info);
	}
	dt = now() - t0;
	printf("%-22s %8zu bytes  %9.1f us/msg  %7.1f MB/s\n", name, m->len,
	    dt / iters * 1e6, (double)m->len * iters / dt / 1e6);
}

int
main(void)
{
	static const char hdr[] =
	    "Return-Path: <alice@example.test>\r\n"
	    "Received: from mx.example.test by mail.example.test; "
	    "Mon, 23 Nov 2026 10:00:00 +0000\r\n"
	    "From: Alice Example <alice@example.test>\r\n"
	    "To: Bob <bob@example.test>, carol@example.test\r\n"
	    "Subject: =?utf-8?q?Quarterly_report?=\r\n"
	    "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
	    "Message-ID: <1234@example.test>\r\nMIME-Version: 1.0\r\n";
	struct buf m;
	int i;

	buf_init(&m);
	buf_puts(&m, hdr);
	buf_puts(&m, "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	for (i = 0; i < 60; i++)
		buf_puts(&m, "The quick brown fox jumps over the lazy dog.\r\n");
	run("plain 3 KiB", &m, 20000);

	buf_reset(&m);
	buf_puts(&m, hdr);
	buf_puts(&m, "Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n"
	    "--=_b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
	    "--=_b\r\nContent-Type: application/pdf; name=r.pdf\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=r.pdf\r\n\r\n");
	for (i = 0; i < 1024 * 1024 / 76; i++)
		buf_puts(&m, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n");
	buf_puts(&m, "--=_b--\r\n");
	run("attachment 1 MiB", &m, 300);

	buf_reset(&m);
	buf_puts(&m, hdr);
	buf_puts(&m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (i = 0; i < 500; i++)
		buf_printf(&m, "--b\r\nContent-Type: text/plain; name=p%d\r\n\r\n"
		    "part %d\r\n", i, i);
	buf_puts(&m, "--b--\r\n");
	run("500 parts", &m, 2000);
	buf_free(&m);
	return 0;
}
