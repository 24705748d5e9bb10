/* config: parses postroom.conf ("key = value", '#' comments, blank lines)
   into struct config. config_parse() and listen_list_parse() are pure (no
   I/O, no logging) so they can be fuzzed; config_load() only adds reading
   the file. Unknown keys, repeated keys and bad values are errors that name
   the file and line. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dns.h"
#include "log.h"
#include "milter.h"
#include "util.h"

/* A config file is a few KiB; anything far bigger is a mistake. */
#define CONFIG_MAX_SIZE (1024 * 1024)
#define CONFIG_LINE_MAX 4096

enum key_type { K_STR, K_LISTEN, K_SIZE, K_BOOL, K_LEVEL, K_UINT, K_DURATION,
	K_DURATION0, K_PORT, K_HOSTPORTS, K_RELAY, K_RATE, K_TOKEN,
	K_MILTER, K_MFAIL, K_DNSBL };

struct key_def {
	const char *name;
	enum key_type type;
	size_t off;
};

#define F(field) offsetof(struct config, field)
static const struct key_def config_keys[] = {
	{ "hostname", K_STR, F(hostname) },
	{ "data_dir", K_STR, F(data_dir) },
	{ "tls_cert", K_STR, F(tls_cert) },
	{ "tls_key", K_STR, F(tls_key) },
	{ "tls_ciphers", K_STR, F(tls_ciphers) },
	{ "user", K_STR, F(user) },
	{ "smtp_listen", K_LISTEN, F(smtp_listen) },
	{ "submission_listen", K_LISTEN, F(submission_listen) },
	{ "smtps_listen", K_LISTEN, F(smtps_listen) },
	{ "pop3_listen", K_LISTEN, F(pop3_listen) },
	{ "pop3s_listen", K_LISTEN, F(pop3s_listen) },
	{ "imap_listen", K_LISTEN, F(imap_listen) },
	{ "imaps_listen", K_LISTEN, F(imaps_listen) },
	{ "max_message_size", K_SIZE, F(max_message_size) },
	{ "max_header_size", K_SIZE, F(max_header_size) },
	{ "allow_plaintext_auth", K_BOOL, F(allow_plaintext_auth) },
	{ "dmarc_policy", K_BOOL, F(dmarc_policy) },
	{ "inbound_checks", K_BOOL, F(inbound_checks) },
	{ "log_level", K_LEVEL, F(log_debug) },
	{ "max_connections", K_UINT, F(max_connections) },
	{ "max_connections_per_ip", K_UINT, F(max_connections_per_ip) },
	{ "max_unauth_connections_per_ip", K_UINT,
	    F(max_unauth_connections_per_ip) },
	{ "max_recipients", K_UINT, F(max_recipients) },
	{ "worker_threads", K_UINT, F(worker_threads) },
	{ "auth_threads", K_UINT, F(auth_threads) },
	{ "auth_cache_ttl", K_DURATION0, F(auth_cache_ttl) },
	{ "preauth_timeout", K_DURATION, F(preauth_timeout) },
	{ "tls_handshake_timeout", K_DURATION, F(tls_handshake_timeout) },
	{ "smtp_timeout", K_DURATION, F(smtp_timeout) },
	{ "pop3_timeout", K_DURATION, F(pop3_timeout) },
	{ "imap_timeout", K_DURATION, F(imap_timeout) },
	{ "imap_idle_timeout", K_DURATION, F(imap_idle_timeout) },
	{ "dns_servers", K_HOSTPORTS, F(dns_servers) },
	{ "outbound_port", K_PORT, F(outbound_port) },
	{ "relayhost", K_RELAY, F(relayhost) },
	{ "relayhost_auth_file", K_STR, F(relayhost_auth_file) },
	{ "relayhost_ca_file", K_STR, F(relayhost_ca_file) },
	{ "outbound_timeout", K_DURATION, F(outbound_timeout) },
	{ "outbound_max_connections", K_UINT, F(outbound_max_connections) },
	{ "outbound_ip_family", K_TOKEN, F(outbound_ip_family) },
	{ "outbound_max_per_destination", K_UINT,
	  F(outbound_max_per_destination) },
	{ "submission_rate_limit", K_RATE, F(submission_rate_limit) },
	{ "queue_retry_min", K_DURATION, F(queue_retry_min) },
	{ "queue_retry_max", K_DURATION, F(queue_retry_max) },
	{ "queue_lifetime", K_DURATION, F(queue_lifetime) },
	{ "delay_warning", K_DURATION0, F(delay_warning) },
	{ "dkim_selector", K_TOKEN, F(dkim_selector) },
	/* Inbound: milters and DNS blocklists (smtpd's MX listener). */
	{ "milter", K_MILTER, F(milter) },
	{ "milter_timeout", K_DURATION, F(milter_timeout) },
	{ "milter_failure", K_MFAIL, F(milter_fail_accept) },
	{ "dnsbl", K_DNSBL, F(dnsbl) },
	{ "dnsbl_delay", K_DURATION0, F(dnsbl_delay) },
};
#undef F

void
config_init(struct config *cfg)
{
	char host[256];

	memset(cfg, 0, sizeof(*cfg));
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		str_copy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = xstrdup(host);
	cfg->data_dir = xstrdup("/var/lib/postroom");
	cfg->max_message_size = 50ULL * 1024 * 1024;
	cfg->max_header_size = 100 * 1024;
	cfg->allow_plaintext_auth = false;
	cfg->dmarc_policy = true;
	cfg->inbound_checks = true;
	cfg->log_debug = false;
	cfg->max_connections = 1000;
	cfg->max_connections_per_ip = 100;
	cfg->max_unauth_connections_per_ip = 20;
	cfg->max_recipients = 1000;
	cfg->worker_threads = 8;
	cfg->auth_threads = 0;
	cfg->auth_cache_ttl = 5 * 60;
	cfg->preauth_timeout = 60;
	cfg->tls_handshake_timeout = 10;
	cfg->smtp_timeout = 300;
	cfg->pop3_timeout = 600;
	cfg->imap_timeout = 30 * 60;
	cfg->imap_idle_timeout = 30 * 60;
	cfg->outbound_port = 25;
	cfg->outbound_timeout = 5 * 60;
	cfg->outbound_max_connections = 20;
	cfg->outbound_max_per_destination = 10;
	cfg->submission_rate_limit = 500;
	cfg->submission_rate_period = 3600;
	cfg->queue_retry_min = 5 * 60;
	cfg->queue_retry_max = 3600;
	cfg->queue_lifetime = 5 * 86400;
	cfg->delay_warning = 4 * 3600;
	cfg->dkim_selector = xstrdup("postroom");
	cfg->outbound_ip_family = xstrdup("any");
	cfg->milter_timeout = 30;
	cfg->dnsbl_delay = 6;
}

void
config_free(struct config *cfg)
{
	size_t i;

	free(cfg->path);
	cfg->path = NULL;
	for (i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const struct key_def *k = &config_keys[i];
		if (k->type == K_STR || k->type == K_LISTEN ||
		    k->type == K_HOSTPORTS || k->type == K_RELAY ||
		    k->type == K_TOKEN || k->type == K_MILTER ||
		    k->type == K_DNSBL) {
			char **sp = (char **)((char *)cfg + k->off);
			free(*sp);
			*sp = NULL;
		}
	}
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static int
parse_one_addr(const char *s, size_t len, struct listen_addr *a,
    char *err, size_t errlen)
{
	const char *host, *port;
	size_t hlen, plen, i;
	unsigned long pv = 0;

	if (len == 0) {
		snprintf(err, errlen, "empty address in listen list");
		return -1;
	}
	if (s[0] == '[') {
		const char *end = memchr(s, ']', len);
		if (end == NULL || (size_t)(end - s) + 1 >= len ||
		    end[1] != ':') {
			snprintf(err, errlen,
			    "bad address (want [v6]:port)");
			return -1;
		}
		host = s + 1;
		hlen = (size_t)(end - host);
		port = end + 2;
		plen = len - (size_t)(port - s);
		if (hlen == 0 || memchr(host, ':', hlen) == NULL) {
			snprintf(err, errlen, "bad IPv6 address in brackets");
			return -1;
		}
		for (i = 0; i < hlen; i++) {
			char c = host[i];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			    (c >= 'A' && c <= 'F') || c == ':' || c == '.')) {
				snprintf(err, errlen,
				    "bad IPv6 address in brackets");
				return -1;
			}
		}
	} else {
		const char *colon = NULL;
		for (i = 0; i < len; i++) {
			if (s[i] == ':') {
				if (colon != NULL) {
					snprintf(err, errlen, "bad address "
					    "(IPv6 needs brackets: [::]:port)");
					return -1;
				}
				colon = s + i;
			}
		}
		if (colon == NULL) {
			snprintf(err, errlen, "bad address (want host:port)");
			return -1;
		}
		host = s;
		hlen = (size_t)(colon - s);
		port = colon + 1;
		plen = len - hlen - 1;
		if (hlen == 0) {
			snprintf(err, errlen, "missing host (want host:port)");
			return -1;
		}
		for (i = 0; i < hlen; i++) {
			char c = host[i];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			    (c >= 'A' && c <= 'Z') || c == '.' || c == '-' ||
			    c == '_')) {
				snprintf(err, errlen, "bad host in address");
				return -1;
			}
		}
	}
	if (hlen >= sizeof(a->host)) {
		snprintf(err, errlen, "host too long in address");
		return -1;
	}
	if (plen == 0 || plen > 5) {
		snprintf(err, errlen, "bad port (want 0..65535)");
		return -1;
	}
	for (i = 0; i < plen; i++) {
		if (port[i] < '0' || port[i] > '9') {
			snprintf(err, errlen, "bad port (want 0..65535)");
			return -1;
		}
		pv = pv * 10 + (unsigned long)(port[i] - '0');
	}
	if (pv > 65535) {
		snprintf(err, errlen, "bad port (want 0..65535)");
		return -1;
	}
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	memcpy(a->port, port, plen);
	a->port[plen] = '\0';
	return 0;
}

int
listen_list_parse(const char *s, struct listen_addr **addrs_r, size_t *n_r,
    char *err, size_t errlen)
{
	struct listen_addr *addrs = NULL;
	size_t n = 0, cap = 0;
	const char *p = s;

	*addrs_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return 0;
	for (;;) {
		const char *end = strchr(p, ',');
		const char *stop = end != NULL ? end : p + strlen(p);
		const char *a = p, *b = stop;

		while (a < b && is_space(*a))
			a++;
		while (b > a && is_space(b[-1]))
			b--;
		if (n == cap) {
			/* Bounded by the input length, never by a count the
			   text declares. */
			cap = cap ? cap * 2 : 4;
			addrs = xrealloc(addrs, cap * sizeof(*addrs));
		}
		if (parse_one_addr(a, (size_t)(b - a), &addrs[n], err,
		    errlen) < 0) {
			free(addrs);
			return -1;
		}
		n++;
		if (end == NULL)
			break;
		p = end + 1;
	}
	*addrs_r = addrs;
	*n_r = n;
	return 0;
}

/* "host", "host:port", "[v6]:port", "[v6]" or a bare IPv6 address, made
   into "host:port" / "[v6]:port" with def_port when none is given, then
   checked by parse_one_addr. Appends to out (with ", " between items). */
static int
hostport_normalise(const char *s, size_t len, const char *def_port,
    struct buf *out, char *why, size_t whylen)
{
	struct listen_addr a;
	char tmp[128];
	size_t colons = 0, i;

	if (len == 0) {
		snprintf(why, whylen, "empty address in list");
		return -1;
	}
	if (len + 8 >= sizeof(tmp)) {
		snprintf(why, whylen, "address too long");
		return -1;
	}
	for (i = 0; i < len; i++)
		colons += s[i] == ':';
	if (s[0] == '[') {
		if (s[len - 1] == ']')
			snprintf(tmp, sizeof(tmp), "%.*s:%s", (int)len, s,
			    def_port);
		else
			snprintf(tmp, sizeof(tmp), "%.*s", (int)len, s);
	} else if (colons > 1) {
		snprintf(tmp, sizeof(tmp), "[%.*s]:%s", (int)len, s, def_port);
	} else if (colons == 0) {
		snprintf(tmp, sizeof(tmp), "%.*s:%s", (int)len, s, def_port);
	} else {
		snprintf(tmp, sizeof(tmp), "%.*s", (int)len, s);
	}
	if (parse_one_addr(tmp, strlen(tmp), &a, why, whylen) < 0)
		return -1;
	if (out->len > 0)
		buf_append(out, ", ", 2);
	if (strchr(a.host, ':') != NULL) {
		buf_append(out, "[", 1);
		buf_append(out, a.host, strlen(a.host));
		buf_append(out, "]", 1);
	} else {
		buf_append(out, a.host, strlen(a.host));
	}
	buf_append(out, ":", 1);
	buf_append(out, a.port, strlen(a.port));
	return 0;
}

/* A comma-separated list of hostport_normalise items into a new string. */
static char *
hostport_list_normalise(const char *v, const char *def_port, bool single,
    char *why, size_t whylen)
{
	struct buf out;
	const char *p = v;
	size_t n = 0;

	buf_init(&out);
	for (;;) {
		const char *end = strchr(p, ',');
		const char *stop = end != NULL ? end : p + strlen(p);
		const char *a = p, *b = stop;

		while (a < b && is_space(*a))
			a++;
		while (b > a && is_space(b[-1]))
			b--;
		if (hostport_normalise(a, (size_t)(b - a), def_port, &out, why,
		    whylen) < 0) {
			buf_free(&out);
			return NULL;
		}
		n++;
		if (end == NULL)
			break;
		p = end + 1;
	}
	if (single && n != 1) {
		snprintf(why, whylen, "want one host:port");
		buf_free(&out);
		return NULL;
	}
	buf_append(&out, "", 1);
	return out.data;
}

/* "500/h", "2000/d", or "0" (no limit). */
static int
parse_rate(const char *v, unsigned *n_r, double *period_r)
{
	uint64_t n;
	const char *p = v;

	if (strcmp(v, "0") == 0) {
		*n_r = 0;
		*period_r = 3600;
		return 0;
	}
	if (*p < '0' || *p > '9')
		return -1;
	for (n = 0; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (uint64_t)(*p - '0');
		if (n > 10000000)
			return -1;
	}
	if (n == 0 || *p++ != '/')
		return -1;
	if (strcmp(p, "h") == 0)
		*period_r = 3600;
	else if (strcmp(p, "d") == 0)
		*period_r = 86400;
	else
		return -1;
	*n_r = (unsigned)n;
	return 0;
}

/* Replaces a string field with v (or NULL), taking ownership of v. */
static void
set_str(void *field, char *v)
{
	free(*(char **)field);
	*(char **)field = v;
}

/* Strings, listen lists and host:port lists: checked, then kept as text. */
static int
parse_string_value(const struct key_def *k, void *field, const char *v,
    char *why, size_t whylen)
{
	struct listen_addr *addrs;
	size_t n;
	char *norm;

	switch (k->type) {
	case K_STR:
		if (*v == '\0') {
			/* Empty means "not set" for the optional ones. */
			if (strcmp(k->name, "hostname") == 0 ||
			    strcmp(k->name, "data_dir") == 0) {
				snprintf(why, whylen, "empty value");
				return -1;
			}
			set_str(field, NULL);
			return 0;
		}
		set_str(field, xstrdup(v));
		return 0;
	case K_LISTEN:
		if (listen_list_parse(v, &addrs, &n, why, whylen) < 0)
			return -1;
		free(addrs);
		set_str(field, xstrdup(v));
		return 0;
	case K_HOSTPORTS:
	case K_RELAY:
		if (*v == '\0') {
			set_str(field, NULL);
			return 0;
		}
		norm = hostport_list_normalise(v, k->type == K_RELAY ? "25" :
		    "53", k->type == K_RELAY, why, whylen);
		if (norm == NULL)
			return -1;
		set_str(field, norm);
		return 0;
	default:
		break;
	}
	snprintf(why, whylen, "internal error");
	return -1;
}

/* Keywords: booleans, the log level, the milter failure mode. */
static int
parse_choice_value(const struct key_def *k, void *field, const char *v,
    char *why, size_t whylen)
{
	switch (k->type) {
	case K_BOOL:
		if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
			*(bool *)field = true;
		else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
			*(bool *)field = false;
		else {
			snprintf(why, whylen, "bad boolean (want yes or no)");
			return -1;
		}
		return 0;
	case K_LEVEL:
		if (strcmp(v, "debug") == 0)
			*(bool *)field = true;
		else if (strcmp(v, "info") == 0)
			*(bool *)field = false;
		else {
			snprintf(why, whylen,
			    "bad log level (want info or debug)");
			return -1;
		}
		return 0;
	case K_MFAIL:
		if (strcmp(v, "tempfail") != 0 && strcmp(v, "accept") != 0) {
			snprintf(why, whylen, "bad milter_failure (want "
			    "tempfail or accept)");
			return -1;
		}
		*(bool *)field = strcmp(v, "accept") == 0;
		return 0;
	default:
		break;
	}
	snprintf(why, whylen, "internal error");
	return -1;
}

/* Sizes, counts, durations, ports and rates. */
static int
parse_number_value(struct config *cfg, const struct key_def *k, void *field,
    const char *v, char *why, size_t whylen)
{
	uint64_t u;
	double d;

	switch (k->type) {
	case K_SIZE:
		if (parse_size(v, &u) < 0) {
			snprintf(why, whylen, "bad size (want e.g. 50M)");
			return -1;
		}
		*(uint64_t *)field = u;
		return 0;
	case K_UINT:
		if (parse_size(v, &u) < 0 || strspn(v, "0123456789") !=
		    strlen(v) || u == 0 || u > 10000000) {
			snprintf(why, whylen,
			    "bad number (want 1..10000000)");
			return -1;
		}
		*(unsigned *)field = (unsigned)u;
		return 0;
	case K_DURATION:
		if (parse_duration(v, &d) < 0 || d <= 0) {
			snprintf(why, whylen,
			    "bad duration (want e.g. 30s, 5m, 2h)");
			return -1;
		}
		*(double *)field = d;
		return 0;
	case K_DURATION0:
		if (parse_duration(v, &d) < 0) {
			snprintf(why, whylen,
			    "bad duration (want e.g. 0, 30s, 5m, 2h)");
			return -1;
		}
		*(double *)field = d;
		return 0;
	case K_PORT:
		if (strspn(v, "0123456789") != strlen(v) || *v == '\0' ||
		    strlen(v) > 5 || atoi(v) < 1 || atoi(v) > 65535) {
			snprintf(why, whylen, "bad port (want 1..65535)");
			return -1;
		}
		*(unsigned *)field = (unsigned)atoi(v);
		return 0;
	case K_RATE:
		if (parse_rate(v, (unsigned *)field,
		    &cfg->submission_rate_period) < 0) {
			snprintf(why, whylen,
			    "bad rate (want N/h or N/d, or 0 for no limit)");
			return -1;
		}
		return 0;
	default:
		break;
	}
	snprintf(why, whylen, "internal error");
	return -1;
}

/* Milter lists, DNSBL zones and DNS labels: names checked as such. */
static int
parse_name_value(const struct key_def *k, void *field, const char *v,
    char *why, size_t whylen)
{
	char zone[256];
	const char *p = v;
	size_t len;

	switch (k->type) {
	case K_MILTER:
		if (milter_list_check(v, why, whylen) < 0)
			return -1;
		set_str(field, *v != '\0' ? xstrdup(v) : NULL);
		return 0;
	case K_DNSBL:
		while (*(p += strspn(p, " \t,")) != '\0') {
			len = strcspn(p, " \t,");
			if (len >= sizeof(zone) || (memcpy(zone, p, len),
			    zone[len] = '\0', !dns_is_valid_name(zone))) {
				snprintf(why, whylen, "bad dnsbl zone");
				return -1;
			}
			p += len;
		}
		set_str(field, *v != '\0' ? xstrdup(v) : NULL);
		return 0;
	case K_TOKEN:
		/* A DNS label: letters, digits, '-' (and '.' between). */
		if (*v == '\0' || strlen(v) > 63 ||
		    strspn(v, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != strlen(v) ||
		    v[0] == '.' || v[0] == '-' || v[strlen(v) - 1] == '.' ||
		    strstr(v, "..") != NULL) {
			snprintf(why, whylen, "bad name (want a DNS label)");
			return -1;
		}
		set_str(field, xstrdup(v));
		return 0;
	default:
		break;
	}
	snprintf(why, whylen, "internal error");
	return -1;
}

static int
parse_value(struct config *cfg, const struct key_def *k, const char *v,
    char *why, size_t whylen)
{
	void *field = (char *)cfg + k->off;

	switch (k->type) {
	case K_STR:
	case K_LISTEN:
	case K_HOSTPORTS:
	case K_RELAY:
		return parse_string_value(k, field, v, why, whylen);
	case K_BOOL:
	case K_LEVEL:
	case K_MFAIL:
		return parse_choice_value(k, field, v, why, whylen);
	case K_SIZE:
	case K_UINT:
	case K_DURATION:
	case K_DURATION0:
	case K_PORT:
	case K_RATE:
		return parse_number_value(cfg, k, field, v, why, whylen);
	case K_MILTER:
	case K_DNSBL:
	case K_TOKEN:
		return parse_name_value(k, field, v, why, whylen);
	}
	snprintf(why, whylen, "internal error");
	return -1;
}

/* Parses one line (NUL-terminated, comment already cut) into cfg. */
static int
parse_line(struct config *cfg, char *line, unsigned char *seen,
    char *why, size_t whylen)
{
	char *p = line, *key, *val, *end;
	char vwhy[160];
	size_t i;

	while (is_space(*p))
		p++;
	if (*p == '\0')
		return 0;
	key = p;
	while (*p != '\0' && *p != '=' && !is_space(*p))
		p++;
	end = p;
	while (is_space(*p))
		p++;
	if (*p != '=') {
		snprintf(why, whylen, "expected 'key = value'");
		return -1;
	}
	*end = '\0';
	val = p + 1;
	while (is_space(*val))
		val++;
	end = val + strlen(val);
	while (end > val && is_space(end[-1]))
		end--;
	*end = '\0';
	if (*key == '\0') {
		snprintf(why, whylen, "missing key before '='");
		return -1;
	}
	for (i = 0; i < ARRAY_SIZE(config_keys); i++) {
		if (strcmp(config_keys[i].name, key) == 0)
			break;
	}
	if (i == ARRAY_SIZE(config_keys)) {
		char esc[80];
		size_t k, o = 0;
		/* Echo the key safely: it is arbitrary file content. */
		for (k = 0; key[k] != '\0' && o + 2 < sizeof(esc) && k < 64;
		    k++) {
			unsigned char c = (unsigned char)key[k];
			esc[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
		esc[o] = '\0';
		snprintf(why, whylen, "unknown key '%s'", esc);
		return -1;
	}
	if (seen[i]) {
		snprintf(why, whylen, "duplicate key '%s'",
		    config_keys[i].name);
		return -1;
	}
	seen[i] = 1;
	if (parse_value(cfg, &config_keys[i], val, vwhy, sizeof(vwhy)) < 0) {
		snprintf(why, whylen, "%s: %s", config_keys[i].name, vwhy);
		return -1;
	}
	return 0;
}

int
config_parse(struct config *cfg, const char *text, size_t len,
    const char *name, char *err, size_t errlen)
{
	unsigned char seen[ARRAY_SIZE(config_keys)] = { 0 };
	char line[CONFIG_LINE_MAX + 1];
	char why[256];
	size_t pos = 0;
	unsigned lineno = 0;

	if (name == NULL)
		name = "config";
	/* Some editors start a UTF-8 file with a byte order mark. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
		char *hash;

		lineno++;
		if (ll > CONFIG_LINE_MAX) {
			snprintf(err, errlen, "%s:%u: line too long", name,
			    lineno);
			return -1;
		}
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		pos += ll + (nl != NULL ? 1 : 0);
		if (memchr(line, '\0', ll) != NULL) {
			snprintf(err, errlen, "%s:%u: NUL byte in line", name,
			    lineno);
			return -1;
		}
		/* '#' starts a comment anywhere: no value needs a '#'. */
		hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		if (parse_line(cfg, line, seen, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%u: %s", name, lineno, why);
			return -1;
		}
	}
	return 0;
}

int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct buf b;
	char chunk[8192];
	int fd, ret = -1;
	ssize_t n;

	config_init(cfg);
	buf_init(&b);
	cfg->path = xstrdup(path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > CONFIG_MAX_SIZE) {
			snprintf(err, errlen, "%s: file too large", path);
			goto out;
		}
		buf_append(&b, chunk, (size_t)n);
	}
	ret = config_parse(cfg, b.data != NULL ? b.data : "", b.len, path, err,
	    errlen);
out:
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	/* On failure nothing is left to free, whether or not the caller
	   calls config_free() (which stays harmless). */
	if (ret < 0)
		config_free(cfg);
	return ret;
}

const char *
config_default_path(const char *cli_path)
{
	const char *env;

	if (cli_path != NULL)
		return cli_path;
	env = getenv("POSTROOM_CONF");
	if (env != NULL && *env != '\0')
		return env;
	return "/etc/postroom/postroom.conf";
}

void
config_from_args(int argc, char **argv, const char *prog, struct config *cfg)
{
	const char *cli_path = NULL;
	char err[512];
	int ch;

	while ((ch = getopt(argc, argv, "c:")) != -1) {
		if (ch != 'c')
			goto usage;
		cli_path = optarg;
	}
	if (optind != argc)
		goto usage;
	log_init(prog, LOG_LVL_INFO);
	if (config_load(cfg, config_default_path(cli_path), err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		config_free(cfg);
		exit(1);
	}
	if (cfg->log_debug)
		log_set_level(LOG_LVL_DEBUG);
	return;
usage:
	fprintf(stderr, "usage: %s [-c FILE]\n", prog);
	exit(2);
}
