/* Unit tests for common/config.c: config_parse on a table of files (good
   and bad, with the exact error text), listen_list_parse on a table of
   lists, config_load and config_default_path. Every good file is also
   parsed at every two-chunk split point of its text: the prefix must parse
   or fail cleanly, never crash or leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "util.h"

static const char full_config[] =
    "# a full file\n"
    "hostname          = mail.example.test       # greetings\n"
    "data_dir          = /tmp/pr-data\n"
    "tls_cert          = /etc/postroom/cert.pem\n"
    "tls_key           = /etc/postroom/key.pem\n"
    "user              = postroom\n"
    "\n"
    "smtp_listen       = 0.0.0.0:25, [::]:25\n"
    "submission_listen = 0.0.0.0:587\n"
    "smtps_listen      = 0.0.0.0:465\n"
    "pop3_listen       = 0.0.0.0:110\n"
    "pop3s_listen      = 0.0.0.0:995\n"
    "imap_listen       = 127.0.0.1:143\n"
    "imaps_listen      =\n"
    "max_message_size  = 10M\n"
    "allow_plaintext_auth = yes\n"
    "log_level = debug\n"
    "max_connections = 50\n"
    "max_connections_per_ip = 5\n"
    "max_recipients = 20\n"
    "worker_threads = 2\n"
    "preauth_timeout = 30s\n"
    "smtp_timeout = 5m\n"
    "pop3_timeout = 10m\n"
    "imap_timeout = 1h\n"
    "imap_idle_timeout = 29m\n";

static void
test_full(void **state)
{
	struct config c;
	char err[256] = "";

	config_init(&c);
	assert_int_equal(config_parse(&c, full_config, strlen(full_config),
	    "t.conf", err, sizeof(err)), 0);
	assert_string_equal(c.hostname, "mail.example.test");
	assert_string_equal(c.data_dir, "/tmp/pr-data");
	assert_string_equal(c.tls_cert, "/etc/postroom/cert.pem");
	assert_string_equal(c.tls_key, "/etc/postroom/key.pem");
	assert_string_equal(c.user, "postroom");
	assert_string_equal(c.smtp_listen, "0.0.0.0:25, [::]:25");
	assert_string_equal(c.submission_listen, "0.0.0.0:587");
	assert_string_equal(c.smtps_listen, "0.0.0.0:465");
	assert_string_equal(c.pop3_listen, "0.0.0.0:110");
	assert_string_equal(c.pop3s_listen, "0.0.0.0:995");
	assert_string_equal(c.imap_listen, "127.0.0.1:143");
	assert_string_equal(c.imaps_listen, "");
	assert_true(c.max_message_size == 10ULL << 20);
	assert_true(c.allow_plaintext_auth);
	assert_true(c.log_debug);
	assert_int_equal(c.max_connections, 50);
	assert_int_equal(c.max_connections_per_ip, 5);
	assert_int_equal(c.max_recipients, 20);
	assert_int_equal(c.worker_threads, 2);
	assert_true(c.preauth_timeout == 30);
	assert_true(c.smtp_timeout == 300);
	assert_true(c.pop3_timeout == 600);
	assert_true(c.imap_timeout == 3600);
	assert_true(c.imap_idle_timeout == 29 * 60);
	config_free(&c);
}

static void
test_defaults(void **state)
{
	struct config c;
	char err[256];

	config_init(&c);
	assert_int_equal(config_parse(&c, "", 0, "empty", err, sizeof(err)),
	    0);
	assert_non_null(c.hostname);
	assert_true(c.hostname[0] != '\0');
	assert_string_equal(c.data_dir, "/var/lib/postroom");
	assert_null(c.tls_cert);
	assert_null(c.tls_key);
	assert_null(c.user);
	assert_null(c.smtp_listen);
	assert_null(c.imaps_listen);
	assert_true(c.max_message_size == 50ULL << 20);
	assert_false(c.allow_plaintext_auth);
	assert_false(c.log_debug);
	assert_int_equal(c.max_connections, 1000);
	assert_int_equal(c.max_connections_per_ip, 100);
	assert_int_equal(c.max_recipients, 1000);
	assert_int_equal(c.worker_threads, 8);
	assert_true(c.preauth_timeout == 60);
	assert_true(c.smtp_timeout == 300);
	assert_true(c.pop3_timeout == 600);
	assert_true(c.imap_timeout == 1800);
	assert_true(c.imap_idle_timeout == 1800);
	config_free(&c);
	config_free(&c);   /* twice is harmless */
}

static void
test_table(void **state)
{
	static const struct {
		const char *text;
		const char *err;        /* NULL: must parse */
	} t[] = {
		{ "\n\n   \n# only comments\n\t# indented\n", NULL },
		{ "hostname=a.test", NULL },
		{ "hostname =a.test\r\n", NULL },
		{ "  hostname\t=\ta.test  # trailing comment\n", NULL },
		{ "allow_plaintext_auth = true\n", NULL },
		{ "allow_plaintext_auth = false\n", NULL },
		{ "allow_plaintext_auth = no\n", NULL },
		{ "log_level = info\n", NULL },
		{ "max_message_size = 123\n", NULL },
		{ "smtp_listen = 127.0.0.1:0\n", NULL },
		{ "smtp_listen = localhost:2525,[::1]:2525 , 10.0.0.1:25\n", NULL },
		{ "smtp_listen =\n", NULL },
		{ "tls_cert =\n", NULL },
		{ "imap_timeout = 90\n", NULL },
		{ "\xef\xbb\xbf" "hostname = bom.test\n", NULL },
		{ "hostname = a\n\xef\xbb\xbf" "data_dir = /x\n",
		  "t.conf:2: unknown key '???data_dir'" },
		{ "bogus = 1\n", "t.conf:1: unknown key 'bogus'" },
		{ "\n\nHostname = x\n", "t.conf:3: unknown key 'Hostname'" },
		{ "hostname\n", "t.conf:1: expected 'key = value'" },
		{ "hostname x\n", "t.conf:1: expected 'key = value'" },
		{ "= x\n", "t.conf:1: missing key before '='" },
		{ "hostname =\n", "t.conf:1: hostname: empty value" },
		{ "data_dir = # nothing\n", "t.conf:1: data_dir: empty value" },
		{ "hostname = a\nhostname = b\n",
		  "t.conf:2: duplicate key 'hostname'" },
		{ "allow_plaintext_auth = maybe\n",
		  "t.conf:1: allow_plaintext_auth: bad boolean (want yes or no)" },
		{ "allow_plaintext_auth = YES\n",
		  "t.conf:1: allow_plaintext_auth: bad boolean (want yes or no)" },
		{ "log_level = trace\n",
		  "t.conf:1: log_level: bad log level (want info or debug)" },
		{ "max_message_size = 10X\n",
		  "t.conf:1: max_message_size: bad size (want e.g. 50M)" },
		{ "max_message_size =\n",
		  "t.conf:1: max_message_size: bad size (want e.g. 50M)" },
		{ "max_connections = 0\n",
		  "t.conf:1: max_connections: bad number (want 1..10000000)" },
		{ "max_connections = 1K\n",
		  "t.conf:1: max_connections: bad number (want 1..10000000)" },
		{ "worker_threads = -1\n",
		  "t.conf:1: worker_threads: bad number (want 1..10000000)" },
		{ "max_recipients = 99999999999999999999999\n",
		  "t.conf:1: max_recipients: bad number (want 1..10000000)" },
		{ "smtp_timeout = 5y\n",
		  "t.conf:1: smtp_timeout: bad duration (want e.g. 30s, 5m, 2h)" },
		{ "smtp_timeout = 0\n",
		  "t.conf:1: smtp_timeout: bad duration (want e.g. 30s, 5m, 2h)" },
		{ "smtp_listen = 0.0.0.0\n",
		  "t.conf:1: smtp_listen: bad address (want host:port)" },
		{ "smtp_listen = 0.0.0.0:65536\n",
		  "t.conf:1: smtp_listen: bad port (want 0..65535)" },
		{ "smtp_listen = 0.0.0.0:\n",
		  "t.conf:1: smtp_listen: bad port (want 0..65535)" },
		{ "smtp_listen = 0.0.0.0:smtp\n",
		  "t.conf:1: smtp_listen: bad port (want 0..65535)" },
		{ "smtp_listen = :25\n",
		  "t.conf:1: smtp_listen: missing host (want host:port)" },
		{ "smtp_listen = ::1:25\n",
		  "t.conf:1: smtp_listen: bad address (IPv6 needs brackets: [::]:port)" },
		{ "smtp_listen = [::1]25\n",
		  "t.conf:1: smtp_listen: bad address (want [v6]:port)" },
		{ "smtp_listen = []:25\n",
		  "t.conf:1: smtp_listen: bad IPv6 address in brackets" },
		{ "smtp_listen = 0.0.0.0:25,\n",
		  "t.conf:1: smtp_listen: empty address in listen list" },
		{ "smtp_listen = a b:25\n",
		  "t.conf:1: smtp_listen: bad host in address" },
		{ "x\xff = 1\n", "t.conf:1: unknown key 'x?'" },
		{ "relayhost =\n", NULL },
		{ "dns_servers =\n", NULL },
		{ "relayhost_auth_file =\n", NULL },
		{ "delay_warning = 0\n", NULL },
		{ "submission_rate_limit = 0\n", NULL },
		{ "\n\nrelayhost = a b\n",
		  "t.conf:3: relayhost: bad host in address" },
		{ "relayhost = a:1, b:2\n",
		  "t.conf:1: relayhost: want one host:port" },
		{ "relayhost = smtp.example:99999\n",
		  "t.conf:1: relayhost: bad port (want 0..65535)" },
		{ "dns_servers = 127.0.0.1:53,\n",
		  "t.conf:1: dns_servers: empty address in list" },
		{ "dns_servers = [::1\n",
		  "t.conf:1: dns_servers: bad address (want [v6]:port)" },
		{ "outbound_port = 0\n",
		  "t.conf:1: outbound_port: bad port (want 1..65535)" },
		{ "outbound_port = 65536\n",
		  "t.conf:1: outbound_port: bad port (want 1..65535)" },
		{ "outbound_port = smtp\n",
		  "t.conf:1: outbound_port: bad port (want 1..65535)" },
		{ "outbound_timeout = 0\n",
		  "t.conf:1: outbound_timeout: bad duration (want e.g. 30s, 5m, 2h)" },
		{ "outbound_max_connections = 0\n",
		  "t.conf:1: outbound_max_connections: bad number (want 1..10000000)" },
		{ "queue_lifetime = 5w\n",
		  "t.conf:1: queue_lifetime: bad duration (want e.g. 30s, 5m, 2h)" },
		{ "delay_warning = -1\n",
		  "t.conf:1: delay_warning: bad duration (want e.g. 0, 30s, 5m, 2h)" },
		{ "submission_rate_limit = 500\n",
		  "t.conf:1: submission_rate_limit: bad rate (want N/h or N/d, or 0 for no limit)" },
		{ "submission_rate_limit = 500/m\n",
		  "t.conf:1: submission_rate_limit: bad rate (want N/h or N/d, or 0 for no limit)" },
		{ "submission_rate_limit = 0/h\n",
		  "t.conf:1: submission_rate_limit: bad rate (want N/h or N/d, or 0 for no limit)" },
		{ "submission_rate_limit = /h\n",
		  "t.conf:1: submission_rate_limit: bad rate (want N/h or N/d, or 0 for no limit)" },
		{ "submission_rate_limit = 99999999999/h\n",
		  "t.conf:1: submission_rate_limit: bad rate (want N/h or N/d, or 0 for no limit)" },
		{ "dkim_selector =\n",
		  "t.conf:1: dkim_selector: bad name (want a DNS label)" },
		{ "dkim_selector = a/b\n",
		  "t.conf:1: dkim_selector: bad name (want a DNS label)" },
		{ "dkim_selector = .x\n",
		  "t.conf:1: dkim_selector: bad name (want a DNS label)" },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		struct config c;
		char err[256] = "";
		size_t len = strlen(t[i].text);
		int r;

		config_init(&c);
		r = config_parse(&c, t[i].text, len, "t.conf", err,
		    sizeof(err));
		if (t[i].err == NULL && r != 0)
			fail_msg("row %zu: unexpected error: %s", i, err);
		if (t[i].err != NULL) {
			if (r != -1)
				fail_msg("row %zu accepted", i);
			if (strcmp(err, t[i].err) != 0)
				fail_msg("row %zu: got \"%s\", want \"%s\"", i,
				    err, t[i].err);
		}
		config_free(&c);
	}
}

static void
test_outbound(void **state)
{
	static const char text[] =
	    "dns_servers = 127.0.0.1, [::1]:5353 ,10.0.0.1:53, ::2\n"
	    "outbound_port = 2525\n"
	    "relayhost = smtp.provider.test\n"
	    "relayhost_auth_file = /etc/postroom/relay.auth\n"
	    "relayhost_ca_file = /etc/postroom/ca.pem\n"
	    "outbound_timeout = 30s\n"
	    "outbound_max_connections = 7\n"
	    "submission_rate_limit = 2000/d\n"
	    "queue_retry_min = 1m\n"
	    "queue_retry_max = 2h\n"
	    "queue_lifetime = 3d\n"
	    "delay_warning = 0\n"
	    "dkim_selector = sel-2026\n";
	struct config c;
	char err[256] = "";

	config_init(&c);
	assert_int_equal(config_parse(&c, "", 0, "empty", err, sizeof(err)),
	    0);
	assert_null(c.dns_servers);
	assert_int_equal(c.outbound_port, 25);
	assert_null(c.relayhost);
	assert_null(c.relayhost_auth_file);
	assert_null(c.relayhost_ca_file);
	assert_true(c.outbound_timeout == 300);
	assert_int_equal(c.outbound_max_connections, 20);
	assert_int_equal(c.submission_rate_limit, 500);
	assert_true(c.submission_rate_period == 3600);
	assert_true(c.queue_retry_min == 300);
	assert_true(c.queue_retry_max == 3600);
	assert_true(c.queue_lifetime == 5 * 86400);
	assert_true(c.delay_warning == 4 * 3600);
	assert_string_equal(c.dkim_selector, "postroom");
	config_free(&c);

	config_init(&c);
	if (config_parse(&c, text, strlen(text), "t.conf", err,
	    sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(c.dns_servers,
	    "127.0.0.1:53, [::1]:5353, 10.0.0.1:53, [::2]:53");
	assert_int_equal(c.outbound_port, 2525);
	assert_string_equal(c.relayhost, "smtp.provider.test:25");
	assert_string_equal(c.relayhost_auth_file, "/etc/postroom/relay.auth");
	assert_string_equal(c.relayhost_ca_file, "/etc/postroom/ca.pem");
	assert_true(c.outbound_timeout == 30);
	assert_int_equal(c.outbound_max_connections, 7);
	assert_int_equal(c.submission_rate_limit, 2000);
	assert_true(c.submission_rate_period == 86400);
	assert_true(c.queue_retry_min == 60);
	assert_true(c.queue_retry_max == 7200);
	assert_true(c.queue_lifetime == 3 * 86400);
	assert_true(c.delay_warning == 0);
	assert_string_equal(c.dkim_selector, "sel-2026");
	config_free(&c);

	config_init(&c);
	assert_int_equal(config_parse(&c, "relayhost = [::1]:465\n", 22, "t",
	    err, sizeof(err)), 0);
	assert_string_equal(c.relayhost, "[::1]:465");
	config_free(&c);
}

static void
test_long_line(void **state)
{
	struct config c;
	char err[256];
	struct buf b;
	size_t i;

	buf_init(&b);
	buf_puts(&b, "hostname = ");
	for (i = 0; i < 5000; i++)
		buf_putc(&b, 'a');
	buf_putc(&b, '\n');
	config_init(&c);
	assert_int_equal(config_parse(&c, b.data, b.len, "t", err,
	    sizeof(err)), -1);
	assert_string_equal(err, "t:1: line too long");
	config_free(&c);
	buf_free(&b);

	config_init(&c);
	assert_int_equal(config_parse(&c, "hostname = a\0b\n", 15, "t", err,
	    sizeof(err)), -1);
	assert_string_equal(err, "t:1: NUL byte in line");
	config_free(&c);
}

static void
test_splits(void **state)
{
	size_t k;

	/* Every prefix of a good file either parses or fails with a message
	   naming the file and a line; the remainder alone as well. */
	for (k = 0; k <= strlen(full_config); k++) {
		struct config c;
		char err[256] = "";

		config_init(&c);
		if (config_parse(&c, full_config, k, "p", err, sizeof(err)) < 0)
			assert_true(strncmp(err, "p:", 2) == 0);
		config_free(&c);
		config_init(&c);
		if (config_parse(&c, full_config + k, strlen(full_config) - k,
		    "s", err, sizeof(err)) < 0)
			assert_true(strncmp(err, "s:", 2) == 0);
		config_free(&c);
	}
}

static void
test_listen(void **state)
{
	static const struct {
		const char *in;
		int ret;
		size_t n;
		const char *host0, *port0, *host1, *port1;
	} t[] = {
		{ "", 0, 0, NULL, NULL, NULL, NULL },
		{ "   ", 0, 0, NULL, NULL, NULL, NULL },
		{ "0.0.0.0:25", 0, 1, "0.0.0.0", "25", NULL, NULL },
		{ "0.0.0.0:25, [::]:25", 0, 2, "0.0.0.0", "25", "::", "25" },
		{ "[::1]:143,127.0.0.1:0", 0, 2, "::1", "143", "127.0.0.1",
		  "0" },
		{ " localhost:65535 ", 0, 1, "localhost", "65535", NULL, NULL },
		{ "[::ffff:127.0.0.1]:1", 0, 1, "::ffff:127.0.0.1", "1", NULL,
		  NULL },
		{ "host", -1, 0, NULL, NULL, NULL, NULL },
		{ "host:123456", -1, 0, NULL, NULL, NULL, NULL },
		{ "host:-1", -1, 0, NULL, NULL, NULL, NULL },
		{ "[::1]", -1, 0, NULL, NULL, NULL, NULL },
		{ "[::1:25", -1, 0, NULL, NULL, NULL, NULL },
		{ "[g::1]:25", -1, 0, NULL, NULL, NULL, NULL },
		{ "[1.2.3.4]:25", -1, 0, NULL, NULL, NULL, NULL },
		{ ",", -1, 0, NULL, NULL, NULL, NULL },
		{ "a:1,,b:2", -1, 0, NULL, NULL, NULL, NULL },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1",
		  -1, 0, NULL, NULL, NULL, NULL },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		struct listen_addr *a = (void *)1;
		size_t n = 99;
		char err[128] = "";
		int r = listen_list_parse(t[i].in, &a, &n, err, sizeof(err));

		if (r != t[i].ret)
			fail_msg("\"%s\": ret %d (%s)", t[i].in, r, err);
		if (r < 0) {
			assert_true(err[0] != '\0');
			assert_null(a);
			continue;
		}
		assert_int_equal(n, t[i].n);
		if (n >= 1) {
			assert_string_equal(a[0].host, t[i].host0);
			assert_string_equal(a[0].port, t[i].port0);
		}
		if (n >= 2) {
			assert_string_equal(a[1].host, t[i].host1);
			assert_string_equal(a[1].port, t[i].port1);
		}
		free(a);
	}
	{
		struct listen_addr *a = (void *)1;
		size_t n = 9;
		char err[64];
		assert_int_equal(listen_list_parse(NULL, &a, &n, err,
		    sizeof(err)), 0);
		assert_null(a);
		assert_int_equal(n, 0);
	}
	/* Many entries grow the array. */
	{
		struct buf b;
		struct listen_addr *a;
		size_t n, i2;
		char err[64];
		buf_init(&b);
		for (i2 = 0; i2 < 100; i2++)
			buf_printf(&b, "%s127.0.0.1:%zu", i2 ? "," : "", i2);
		assert_int_equal(listen_list_parse(b.data, &a, &n, err,
		    sizeof(err)), 0);
		assert_int_equal(n, 100);
		assert_string_equal(a[99].port, "99");
		free(a);
		buf_free(&b);
	}
}

static void
test_load(void **state)
{
	char dir[] = "/tmp/test_config.XXXXXX", path[128], err[256];
	struct config c;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/p.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("hostname = loaded.test\nsmtp_listen = 127.0.0.1:0\n", f);
	fclose(f);
	assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.path, path);
	assert_string_equal(c.hostname, "loaded.test");
	config_free(&c);

	f = fopen(path, "w");
	fputs("hostname = ok\nnope = 1\n", f);
	fclose(f);
	assert_int_equal(config_load(&c, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/p.conf:2: unknown key 'nope'"));
	config_free(&c);   /* harmless after a failed load */
	unlink(path);

	assert_int_equal(config_load(&c, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	rmdir(dir);

	assert_string_equal(config_default_path("/x.conf"), "/x.conf");
	setenv("POSTROOM_CONF", "/env.conf", 1);
	assert_string_equal(config_default_path(NULL), "/env.conf");
	setenv("POSTROOM_CONF", "", 1);
	assert_string_equal(config_default_path(NULL),
	    "/etc/postroom/postroom.conf");
	unsetenv("POSTROOM_CONF");
	assert_string_equal(config_default_path(NULL),
	    "/etc/postroom/postroom.conf");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_outbound),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_splits),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
