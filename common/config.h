/* config: the postroom.conf parser ("key = value", # comments). Unknown keys
   and bad values are errors naming file and line. config_parse() is pure
   (no I/O) so it can be fuzzed. */
#ifndef POSTROOM_CONFIG_H
#define POSTROOM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config {
	char *path;                 /* the file read; owned */
	char *hostname;             /* default: gethostname() at load time */
	char *data_dir;             /* default /var/lib/postroom */
	char *tls_cert, *tls_key;   /* NULL: no TLS */
	/* OpenSSL cipher list for TLS 1.2; NULL: TLS_CIPHERS_DEFAULT (tls.c).
	   TLS 1.3 suites are OpenSSL's defaults either way. */
	char *tls_ciphers;
	char *user;                 /* NULL: do not drop privileges */

	/* Listen lists, verbatim ("0.0.0.0:25, [::]:25"); "" or NULL = off.
	   Validated by config_parse (listen_list_parse). */
	char *smtp_listen, *submission_listen, *smtps_listen;
	char *pop3_listen, *pop3s_listen;
	char *imap_listen, *imaps_listen;

	uint64_t max_message_size;      /* default 50M */
	uint64_t max_header_size;       /* a message's header section, as the
	                                   client sent it; default 100K */
	bool allow_plaintext_auth;      /* default no */
	bool log_debug;                 /* log_level = info|debug */
	bool dmarc_policy;              /* inbound: honour DMARC p=reject and
	                                   p=quarantine, default yes */
	bool inbound_checks;            /* SPF, DKIM verification and DMARC
	                                   on smtp_listen, default yes */

	unsigned max_connections;       /* per daemon, default 1000 */
	unsigned max_connections_per_ip;/* default 100 */
	unsigned max_unauth_connections_per_ip; /* not logged in, default 20 */
	unsigned max_recipients;        /* per message, default 1000 */
	unsigned worker_threads;        /* default 8 */
	unsigned auth_threads;          /* password hashing; 0 (default):
	                                   half the CPUs, at least 1 */
	double auth_cache_ttl;          /* verified logins, default 5m; 0 off */

	double preauth_timeout;         /* before login, default 60s */
	double tls_handshake_timeout;   /* implicit TLS, STARTTLS: 10s */
	double smtp_timeout;            /* default 300s (RFC 5321 4.5.3.2) */
	double pop3_timeout;            /* default 600s (RFC 1939) */
	double imap_timeout;            /* authenticated, default 30m */
	double imap_idle_timeout;       /* in IDLE, default 30m */

	/* Outbound (the queue, smtpd's submission side and mtad). */
	char *dns_servers;          /* "127.0.0.1:53, [::1]:53" normalised
	                               (a missing port becomes 53); NULL:
	                               /etc/resolv.conf */
	unsigned outbound_port;     /* port used on MX hosts, default 25 */
	char *relayhost;            /* "host:port" (a missing port becomes
	                               25); NULL: deliver to the MX hosts */
	char *relayhost_auth_file;  /* "username password"; NULL: no AUTH */
	char *relayhost_ca_file;    /* NULL: OpenSSL's default verify paths */
	double outbound_timeout;    /* per remote reply, default 5m */
	unsigned outbound_max_connections; /* in total, default 20 */
	unsigned outbound_max_per_destination; /* to one destination (domain
	                               or relayhost), default 10 */
	char *outbound_ip_family;   /* "any" (default), "ipv4", "ipv6": the
	                               address families mtad connects to */
	unsigned submission_rate_limit;    /* messages per period per user,
	                                      default 500; 0: no limit */
	double submission_rate_period;     /* 3600 (N/h) or 86400 (N/d) */
	double queue_retry_min;     /* default 5m */
	double queue_retry_max;     /* default 1h */
	double queue_lifetime;      /* default 5d */
	double delay_warning;       /* default 4h; 0: never */
	char *dkim_selector;        /* default "postroom" */

	/* Inbound: milters and DNS blocklists (smtpd's MX listener). */
	char *milter;               /* "inet:host:port, unix:/path"; NULL: none */
	double milter_timeout;      /* per milter reply, default 30s */
	bool milter_fail_accept;    /* milter_failure = accept (default
	                               tempfail) */
	char *dnsbl;                /* "zone, zone"; NULL: none */
	double dnsbl_delay;         /* a listed client's 554 this long after
	                               it connected; default 6s */
};

/* Sets every field to its default (strings NULL except data_dir and
   hostname). */
void config_init(struct config *cfg);
void config_free(struct config *cfg);

/* Parses text[0..len) into cfg (which config_init prepared). name is used in
   error messages. Returns 0, or -1 with "NAME:LINE: reason" in err. */
int config_parse(struct config *cfg, const char *text, size_t len,
    const char *name, char *err, size_t errlen);

/* Reads and parses a file (config_init first is done here). 0 or -1 with
   err. On -1 cfg holds nothing to free (config_free on it is harmless).
   config_parse, by contrast, leaves cfg for the caller to config_free. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* The start of each daemon: parses "-c FILE" (anything else: usage line
   and exit 2), starts logging as prog, loads the config (on error: one line
   on stderr and exit 1) and applies log_level. */
void config_from_args(int argc, char **argv, const char *prog,
    struct config *cfg);

/* The file to read: cli_path if not NULL, else $POSTROOM_CONF, else
   /etc/postroom/postroom.conf. Borrowed. */
const char *config_default_path(const char *cli_path);

/* One host:port of a listen list. */
struct listen_addr {
	char host[64];      /* "0.0.0.0", "::", "127.0.0.1", "localhost" */
	char port[8];
};
/* Parses "a:1, [::1]:2"; empty or NULL gives *n_r = 0. Owned array in
   *addrs_r (free()). 0 or -1 with err. Pure. */
int listen_list_parse(const char *s, struct listen_addr **addrs_r, size_t *n_r,
    char *err, size_t errlen);

#endif
