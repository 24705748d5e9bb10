/* outbound: the mailctl verbs of outbound mail. "queue list|show|flush|
   delete|hold|release" over the store's queue, "dkim generate" (keys under
   data_dir/dkim/DOMAIN, mode 0600) and "dns DOMAIN" (the BIND zone-file
   lines an administrator publishes: MX, SPF, DKIM, DMARC and the RFC 6186
   client-configuration SRV records). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dkim.h"
#include "mailctl.h"
#include "util.h"

static int
fail_store(const char *what, enum store_err e)
{
	const char *detail = store_last_error();

	if (detail == NULL || detail[0] == '\0')
		detail = store_err_str(e);
	mailctl_err("%s: %s", what, detail);
	return EXIT_FAIL;
}

static const char *
state_name(enum store_queue_state s)
{
	switch (s) {
	case STORE_QS_PENDING: return "pending";
	case STORE_QS_INFLIGHT: return "inflight";
	case STORE_QS_DEFERRED: return "deferred";
	case STORE_QS_SENT: return "sent";
	case STORE_QS_FAILED: return "failed";
	}
	return "unknown";
}

/* "45s", "12m", "3h", "2d". */
static void
age_str(int64_t secs, char *buf, size_t size)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(buf, size, "%llds", (long long)secs);
	else if (secs < 7200)
		snprintf(buf, size, "%lldm", (long long)(secs / 60));
	else if (secs < 2 * 86400)
		snprintf(buf, size, "%lldh", (long long)(secs / 3600));
	else
		snprintf(buf, size, "%lldd", (long long)(secs / 86400));
}

static void
time_str(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0) {
		str_copy(buf, "-", size);
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A JSON string: quotes, backslash and control characters escaped; bytes
   that are not valid UTF-8 become U+FFFD so the output always parses. */
static void
json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (*p != '\0') {
		unsigned char c = *p;
		size_t n = 0;

		if (c == '"' || c == '\\') {
			fprintf(f, "\\%c", c);
			p++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
			p++;
			continue;
		}
		if (c < 0x80) {
			fputc(c, f);
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3;
		bool ok = n > 0;
		for (size_t i = 1; ok && i <= n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (!ok) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		fwrite(p, 1, n + 1, f);
		p += n + 1;
	}
	fputc('"', f);
}

/* Text for humans: control characters shown as '?'. */
static void
text_str(FILE *f, const char *s)
{
	for (; *s != '\0'; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

static void
notify_str(uint32_t notify, char *buf, size_t size)
{
	buf[0] = '\0';
	if (notify == 0) {
		str_copy(buf, "-", size);
		return;
	}
	if (notify & STORE_QN_NEVER)
		str_copy(buf, "NEVER", size);
	if (notify & STORE_QN_SUCCESS)
		snprintf(buf + strlen(buf), size - strlen(buf), "%sSUCCESS",
		    buf[0] ? "," : "");
	if (notify & STORE_QN_FAILURE)
		snprintf(buf + strlen(buf), size - strlen(buf), "%sFAILURE",
		    buf[0] ? "," : "");
	if (notify & STORE_QN_DELAY)
		snprintf(buf + strlen(buf), size - strlen(buf), "%sDELAY",
		    buf[0] ? "," : "");
}

static const char *
ret_name(enum store_queue_ret r)
{
	return r == STORE_QRET_FULL ? "FULL" : r == STORE_QRET_HDRS ? "HDRS" :
	    "";
}

struct list_ctx {
	bool json;
	int count;
	int64_t now;
};

static int
list_text_cb(void *arg, const struct store_queue_msg *m,
    const struct store_queue_rcpt *r, size_t n)
{
	struct list_ctx *c = arg;
	char id[24], age[32];

	store_queue_id_str(m->id, id, sizeof(id));
	age_str(c->now - m->arrival, age, sizeof(age));
	for (size_t i = 0; i < n; i++) {
		const char *st = state_name(r[i].state);
		if ((m->flags & STORE_QMF_HELD) &&
		    r[i].state != STORE_QS_SENT &&
		    r[i].state != STORE_QS_FAILED)
			st = "held";
		printf("%s %s <", id, age);
		text_str(stdout, m->sender);
		printf("> ");
		text_str(stdout, r[i].address);
		printf(" %s %u ", st, r[i].attempts);
		text_str(stdout, r[i].reply[0] ? r[i].reply : "-");
		printf("\n");
	}
	c->count++;
	return 0;
}

static int
list_json_cb(void *arg, const struct store_queue_msg *m,
    const struct store_queue_rcpt *r, size_t n)
{
	struct list_ctx *c = arg;
	char id[24], t[40], nt[80];

	store_queue_id_str(m->id, id, sizeof(id));
	printf("%s\n  {\"id\": \"%s\", \"sender\": ", c->count ? "," : "",
	    id);
	json_str(stdout, m->sender);
	printf(", \"size\": %" PRIu64 ", \"arrival\": %lld, ", m->size,
	    (long long)m->arrival);
	time_str(m->arrival, t, sizeof(t));
	printf("\"arrival_utc\": \"%s\", \"age\": %lld, \"held\": %s, "
	    "\"dsn\": %s, \"next\": %lld, \"envid\": ", t,
	    (long long)(c->now - m->arrival),
	    (m->flags & STORE_QMF_HELD) ? "true" : "false",
	    (m->flags & STORE_QMF_DSN) ? "true" : "false",
	    (long long)m->next);
	json_str(stdout, m->envid);
	printf(", \"ret\": \"%s\", \"auth_user\": ", ret_name(m->ret));
	json_str(stdout, m->auth_user);
	printf(", \"recipients\": [");
	for (size_t i = 0; i < n; i++) {
		printf("%s\n    {\"address\": ", i ? "," : "");
		json_str(stdout, r[i].address);
		printf(", \"orcpt\": ");
		json_str(stdout, r[i].orcpt);
		notify_str(r[i].notify, nt, sizeof(nt));
		printf(", \"notify\": \"%s\", \"state\": \"%s\", "
		    "\"attempts\": %u, \"next_attempt\": %lld, "
		    "\"last_attempt\": %lld, \"status\": ",
		    r[i].notify ? nt : "", state_name(r[i].state),
		    r[i].attempts, (long long)r[i].next_attempt,
		    (long long)r[i].last_attempt);
		json_str(stdout, r[i].status);
		printf(", \"reply\": ");
		json_str(stdout, r[i].reply);
		printf(", \"remote\": ");
		json_str(stdout, r[i].remote);
		printf("}");
	}
	printf("]}");
	c->count++;
	return 0;
}

int
cmd_queue_list(struct mailctl *m)
{
	struct list_ctx c = { m->json, 0, (int64_t)time(NULL) };
	enum store_err e;

	if (m->json)
		printf("[");
	e = store_queue_list(m->st, m->json ? list_json_cb : list_text_cb,
	    &c);
	if (m->json)
		printf("%s]\n", c.count ? "\n" : "");
	if (e != STORE_OK)
		return fail_store("queue list", e);
	return EXIT_OK;
}

static int
queue_id_arg(const char *s, uint64_t *id)
{
	if (store_queue_id_parse(s, id) < 0) {
		mailctl_err("invalid queue ID '%s' (want the hex ID that "
		    "\"mailctl queue list\" shows)", s);
		return EXIT_FAIL;
	}
	return 0;
}

static int
show_log_cb(void *arg, const struct store_queue_log_entry *e)
{
	char t[40];
	time_t secs = (time_t)(e->time_us / 1000000);

	time_str((int64_t)secs, t, sizeof(t));
	printf("  %s ", t);
	if (e->idx == UINT32_MAX) {
		text_str(stdout, e->reply);
		printf("\n");
		return 0;
	}
	text_str(stdout, e->address);
	printf(" %s", state_name(e->state));
	if (e->status[0]) {
		printf(" ");
		text_str(stdout, e->status);
	}
	if (e->remote[0]) {
		printf(" via ");
		text_str(stdout, e->remote);
	}
	if (e->reply[0]) {
		printf(": ");
		text_str(stdout, e->reply);
	}
	printf("\n");
	return 0;
}

static int
count_log_cb(void *arg, const struct store_queue_log_entry *e)
{
	*(int *)arg += 1;
	return 0;
}

int
cmd_queue_show(struct mailctl *m)
{
	struct store_queue_msg q;
	struct store_queue_rcpt *r = NULL;
	size_t n = 0;
	uint64_t id;
	enum store_err e;
	char ids[24], t[40], nt[80];
	int rv, nlog = 0, fd;

	if ((rv = queue_id_arg(m->args[0], &id)) != 0)
		return rv;
	store_queue_id_str(id, ids, sizeof(ids));
	e = store_queue_get(m->st, id, &q, &r, &n);
	if (e == STORE_ENOTFOUND) {
		/* Gone from the queue: its history may still be there. */
		store_queue_log(m->st, id, count_log_cb, &nlog);
		if (nlog == 0) {
			mailctl_err("no queue entry '%s'", m->args[0]);
			return EXIT_FAIL;
		}
		printf("id: %s (no longer in the queue)\nhistory:\n", ids);
		store_queue_log(m->st, id, show_log_cb, &nlog);
		return EXIT_OK;
	}
	if (e != STORE_OK)
		return fail_store(ids, e);
	printf("id: %s\nsender: <", ids);
	text_str(stdout, q.sender);
	printf(">\n");
	time_str(q.arrival, t, sizeof(t));
	printf("arrival: %s\nsize: %" PRIu64 "\n", t, q.size);
	if (q.auth_user[0]) {
		printf("submitted by: ");
		text_str(stdout, q.auth_user);
		printf("\n");
	}
	if (q.envid[0]) {
		printf("envid: ");
		text_str(stdout, q.envid);
		printf("\n");
	}
	if (q.ret != STORE_QRET_NONE)
		printf("ret: %s\n", ret_name(q.ret));
	if (q.flags & STORE_QMF_DSN)
		printf("type: delivery status notification\n");
	printf("held: %s\n", (q.flags & STORE_QMF_HELD) ? "yes" : "no");
	time_str(q.next, t, sizeof(t));
	printf("next attempt: %s\nrecipients:\n", t);
	for (size_t i = 0; i < n; i++) {
		printf("  ");
		text_str(stdout, r[i].address);
		printf(" %s attempts=%u", state_name(r[i].state),
		    r[i].attempts);
		if (r[i].notify) {
			notify_str(r[i].notify, nt, sizeof(nt));
			printf(" notify=%s", nt);
		}
		if (r[i].orcpt[0]) {
			printf(" orcpt=");
			text_str(stdout, r[i].orcpt);
		}
		if (r[i].state == STORE_QS_DEFERRED ||
		    r[i].state == STORE_QS_PENDING) {
			time_str(r[i].next_attempt, t, sizeof(t));
			printf(" next=%s", t);
		}
		if (r[i].reply[0]) {
			printf(" last=\"");
			text_str(stdout, r[i].reply);
			printf("\"");
		}
		printf("\n");
	}
	free(r);
	printf("history:\n");
	store_queue_log(m->st, id, show_log_cb, &nlog);
	/* The header, as stored (bounded). */
	printf("headers:\n");
	if (store_queue_open(m->st, id, &fd) == STORE_OK) {
		char buf[65536];
		size_t len = 0;
		ssize_t k;
		while (len < sizeof(buf) - 1 && (k = read(fd, buf + len,
		    sizeof(buf) - 1 - len)) > 0)
			len += (size_t)k;
		close(fd);
		buf[len] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (end != NULL)
			end[2] = '\0';
		for (char *p = buf; *p; p++)
			if (*p != '\r')
				fputc((unsigned char)*p < 0x20 && *p != '\n' &&
				    *p != '\t' ? '?' : *p, stdout);
	}
	return EXIT_OK;
}

static int
admin_verb(struct mailctl *m, enum store_err (*fn)(struct store *,
    uint64_t), const char *what)
{
	uint64_t id = 0;
	enum store_err e;
	int rv;

	if (m->nargs > 0 && (rv = queue_id_arg(m->args[0], &id)) != 0)
		return rv;
	e = fn(m->st, id);
	if (e == STORE_ENOTFOUND) {
		mailctl_err("no queue entry '%s'", m->args[0]);
		return EXIT_FAIL;
	}
	if (e != STORE_OK)
		return fail_store(what, e);
	return EXIT_OK;
}

int
cmd_queue_flush(struct mailctl *m)
{
	return admin_verb(m, store_queue_flush, "queue flush");
}

int
cmd_queue_delete(struct mailctl *m)
{
	return admin_verb(m, store_queue_delete, "queue delete");
}

int
cmd_queue_hold(struct mailctl *m)
{
	return admin_verb(m, store_queue_hold, "queue hold");
}

int
cmd_queue_release(struct mailctl *m)
{
	return admin_verb(m, store_queue_release, "queue release");
}

/* ---- dkim and dns ---- */

static int
local_domain_arg(struct mailctl *m, const char *in, char *out, size_t size)
{
	char probe[STORE_ADDRESS_MAX + 1];

	if (snprintf(probe, sizeof(probe), "x@%s", in) >= (int)sizeof(probe) ||
	    address_normalize(probe) < 0) {
		mailctl_err("invalid domain '%s'", in);
		return EXIT_FAIL;
	}
	str_copy(out, probe + 2, size);
	if (!store_domain_is_local(m->st, out)) {
		mailctl_err("domain '%s' is not local (add it first with: "
		    "mailctl domain add %s)", out, out);
		return EXIT_FAIL;
	}
	return 0;
}

/* TXT data as zone-file strings of at most 255 octets each. */
static void
print_txt(const char *name, const char *data)
{
	size_t len = strlen(data);

	printf("%s 3600 IN TXT", name);
	for (size_t off = 0; off < len || off == 0; off += 255) {
		size_t n = len - off < 255 ? len - off : 255;
		printf(" \"");
		for (size_t i = 0; i < n; i++) {
			char c = data[off + i];
			if (c == '"' || c == '\\')
				putchar('\\');
			putchar(c);
		}
		printf("\"");
		if (len == 0)
			break;
	}
	printf("\n");
}

static void
print_dkim_record(const struct dkim_key *k)
{
	struct buf txt;
	char *name;

	buf_init(&txt);
	dkim_dns_txt(k, &txt);
	buf_putc(&txt, '\0');
	name = xasprintf("%s._domainkey.%s.", dkim_key_selector(k),
	    dkim_key_domain(k));
	print_txt(name, txt.data);
	free(name);
	buf_free(&txt);
}

int
cmd_dkim_generate(struct mailctl *m)
{
	char domain[STORE_ADDRESS_MAX + 1], err[512], sel[128];
	const char *alg = m->algorithm != NULL ? m->algorithm : "rsa";
	bool rsa, ed;
	struct dkim_key *k;
	int rv;

	if (strcmp(alg, "rsa") == 0) {
		rsa = true;
		ed = false;
	} else if (strcmp(alg, "ed25519") == 0) {
		rsa = false;
		ed = true;
	} else if (strcmp(alg, "both") == 0) {
		rsa = ed = true;
	} else {
		mailctl_err("unknown algorithm '%s' (want rsa, ed25519 or "
		    "both)", alg);
		return EXIT_USAGE;
	}
	if ((rv = local_domain_arg(m, m->args[0], domain, sizeof(domain))) !=
	    0)
		return rv;
	if (rsa) {
		if (dkim_generate(m->data_dir, domain, m->cfg->dkim_selector,
		    DKIM_RSA, &k, err, sizeof(err)) < 0) {
			mailctl_err("%s", err);
			return EXIT_FAIL;
		}
		print_dkim_record(k);
		dkim_key_free(&k);
	}
	if (ed) {
		snprintf(sel, sizeof(sel), "%s-ed25519",
		    m->cfg->dkim_selector);
		if (strlen(sel) > DKIM_SELECTOR_MAX) {
			mailctl_err("dkim_selector too long for the Ed25519 "
			    "selector '%s'", sel);
			return EXIT_FAIL;
		}
		if (dkim_generate(m->data_dir, domain, sel, DKIM_ED25519, &k,
		    err, sizeof(err)) < 0) {
			mailctl_err("%s", err);
			return EXIT_FAIL;
		}
		print_dkim_record(k);
		dkim_key_free(&k);
	}
	return EXIT_OK;
}

/* The port of the first address of a listen list, or NULL when off. */
static const char *
listen_port(const char *list, char *buf, size_t size)
{
	struct listen_addr *a;
	size_t n;
	char err[128];

	if (listen_list_parse(list, &a, &n, err, sizeof(err)) < 0 || n == 0)
		return NULL;
	str_copy(buf, a[0].port, size);
	free(a);
	return buf;
}

int
cmd_dns(struct mailctl *m)
{
	static const struct { const char *svc; size_t off; } srv[] = {
		{ "_submission", offsetof(struct config, submission_listen) },
		{ "_submissions", offsetof(struct config, smtps_listen) },
		{ "_imap", offsetof(struct config, imap_listen) },
		{ "_imaps", offsetof(struct config, imaps_listen) },
		{ "_pop3", offsetof(struct config, pop3_listen) },
		{ "_pop3s", offsetof(struct config, pop3s_listen) },
	};
	char domain[STORE_ADDRESS_MAX + 1], err[512], host[300];
	struct dkim_key **keys;
	size_t nkeys;
	int rv;

	if ((rv = local_domain_arg(m, m->args[0], domain, sizeof(domain))) !=
	    0)
		return rv;
	if (dkim_keys_load(m->data_dir, domain, &keys, &nkeys, err,
	    sizeof(err)) < 0) {
		mailctl_err("%s", err);
		return EXIT_FAIL;
	}
	snprintf(host, sizeof(host), "%s.", m->cfg->hostname);
	printf("%s. 3600 IN MX 10 %s\n", domain, host);
	{
		char *name = xasprintf("%s.", domain);
		if (m->cfg->relayhost != NULL) {
			printf("; relayhost is set: add your provider's SPF "
			    "mechanism (include:...) before ~all\n");
			print_txt(name, "v=spf1 mx ~all");
		} else {
			print_txt(name, "v=spf1 mx -all");
		}
		free(name);
	}
	if (nkeys == 0)
		printf("; no DKIM key for %s yet: run \"mailctl dkim "
		    "generate %s\"\n", domain, domain);
	for (size_t i = 0; i < nkeys; i++)
		print_dkim_record(keys[i]);
	dkim_keys_free(keys, nkeys);
	{
		char *name = xasprintf("_dmarc.%s.", domain);
		char *data = xasprintf("v=DMARC1; p=quarantine; "
		    "rua=mailto:postmaster@%s", domain);
		print_txt(name, data);
		free(name);
		free(data);
	}
	for (size_t i = 0; i < ARRAY_SIZE(srv); i++) {
		const char *list = *(char *const *)((const char *)m->cfg +
		    srv[i].off);
		char port[16];
		if (listen_port(list, port, sizeof(port)) == NULL)
			/* RFC 6186 3.4: "." means not offered here. */
			printf("%s._tcp.%s. 3600 IN SRV 0 0 0 .\n", srv[i].svc,
			    domain);
		else
			printf("%s._tcp.%s. 3600 IN SRV 0 1 %s %s\n",
			    srv[i].svc, domain, port, host);
	}
	return EXIT_OK;
}
