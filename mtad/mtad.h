/* mtad: the internal interface between the delivery engine (engine.c:
   schedule, grouping, results, DSNs), the SMTP client (smtp_client.c: one
   delivery attempt over a list of addresses) and main.c. Private to mtad/. */
#ifndef POSTROOM_MTAD_H
#define POSTROOM_MTAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "config.h"
#include "dns.h"
#include "srs.h"
#include "store.h"

struct worker_pool;

#define MTAD_MAX_RCPTS_PER_TXN  50      /* RFC 5321 4.5.3.1.8: at least 100 */
#define MTAD_MAX_TARGETS        32      /* addresses tried per attempt */
#define MTAD_TXNS_PER_CONN      100     /* transactions, then QUIT */
#define MTAD_IDLE_SECONDS       2.0     /* a parked connection, then QUIT */

struct mtad_listen {
	int family;
	unsigned char addr[16];
	bool any;                   /* 0.0.0.0 / :: */
	uint16_t port;
};

struct mtad {
	const struct config *cfg;
	struct store *st;
	struct ev_loop *loop;
	struct dns_resolver *dns;
	SSL_CTX *tls_mx;            /* opportunistic, no verification */
	SSL_CTX *tls_relay;         /* verified (relayhost_ca_file or system) */
	char *relay_host;           /* from relayhost, or NULL */
	uint16_t relay_port;
	char *relay_user, *relay_pass;  /* relayhost_auth_file; owned, wiped */
	struct mtad_listen *listens;    /* our own listeners (loop guard) */
	size_t nlistens;
	/* The key smtpd signs SRS senders with: a DSN about a forwarded
	   message goes back to the sender the SRS address stands for. */
	unsigned char srs_key[SRS_KEY_LEN];
	/* The daemon's worker pool (store writes); NULL once the daemon
	   freed it at shutdown, when writes run on the loop thread. */
	struct worker_pool **workers;
	int ip_family;              /* AF_UNSPEC (any), AF_INET, AF_INET6 */
	unsigned nconns;            /* connections open */
	bool stopping;
	struct engine *engine;
};

/* One recipient of a delivery attempt. */
struct job_rcpt {
	uint32_t idx;
	char address[STORE_ADDRESS_MAX + 1];
	char orcpt[STORE_QUEUE_ORCPT_MAX + 1];
	uint32_t notify;
	bool done;                  /* its result was reported */
	bool accepted;              /* RCPT got 2xx in this session */
};

struct smtp_target {
	char host[DNS_NAME_SIZE];
	int family;
	unsigned char addr[16];
	uint16_t port;
};

enum job_tls {
	JOB_TLS_OPPORTUNISTIC,      /* MX: STARTTLS when offered, fallback */
	JOB_TLS_STARTTLS_VERIFY,    /* relayhost: STARTTLS required */
	JOB_TLS_IMPLICIT_VERIFY,    /* relayhost on 465 */
};

/* What a message needs from the remote, computed once per message. */
struct job_msg {
	const char *data;           /* the queue file, mapped; CRLF lines */
	size_t len;
	const char *sender;         /* "" = null sender */
	const char *envid;          /* "" = none */
	enum store_queue_ret ret;
	bool eightbit;              /* the body has bytes >= 0x80 */
	bool needs_utf8;            /* a non-ASCII address */
};

struct smtp_job;

/* The engine's side of a job, called on the loop thread. */
struct smtp_job_ops {
	/* One recipient's final outcome in this attempt. state: SENT, FAILED
	   or DEFERRED. relayed: SENT to a server that did not offer DSN while
	   NOTIFY=SUCCESS was asked. */
	void (*rcpt_result)(void *arg, struct job_rcpt *r,
	    enum store_queue_state state, const char *status,
	    const char *reply, const char *remote, const char *tls,
	    bool relayed);
	/* The attempt is over (every recipient reported). all_hosts_failed:
	   no host could be reached or every one failed before RCPT. parked:
	   the session is still open and good for another transaction; the
	   engine now owns job and must give it smtp_job_next or
	   smtp_job_close. */
	void (*done)(void *arg, struct smtp_job *job, bool all_hosts_failed,
	    bool parked);
};

/* Starts a delivery attempt of msg to rcpts[0..n) over targets[0..nt), in
   order, until a host takes a transaction. Borrowed: msg, rcpts (until
   done), targets are copied. Never calls back from inside this call. */
struct smtp_job *smtp_job_start(struct mtad *m, const struct job_msg *msg,
    struct job_rcpt *rcpts, size_t n, const struct smtp_target *targets,
    size_t nt, enum job_tls tls, const char *qid,
    const struct smtp_job_ops *ops, void *arg);
/* Another message over a parked job's connection (RSET first), to the
   same destination; done() is called for it as for smtp_job_start's. If
   the remote closed the connection meanwhile, the job connects again from
   the first address. Never calls back from inside this call. */
void smtp_job_next(struct smtp_job *job, const struct job_msg *msg,
    struct job_rcpt *rcpts, size_t n, const char *qid, void *arg);
/* Ends a parked job: QUIT (not waited for), close, free. No callback. */
void smtp_job_close(struct smtp_job *job);
/* Aborts an attempt (shutdown): recipients not reported yet are reported
   DEFERRED, then done() runs, before this returns. */
void smtp_job_abort(struct smtp_job *job);

/* Whether addr:port is one of our own listening sockets (loop guard). */
bool mtad_is_own_address(const struct mtad *m, int family,
    const unsigned char *addr, uint16_t port);

/* engine.c */
struct engine *engine_new(struct mtad *m);
/* Recovers the queue and schedules everything due. */
void engine_start(struct engine *e);
/* Re-reads the schedule now (queue wake file touched). */
void engine_wake(struct engine *e);
/* Stops starting attempts, aborts the ones running (results recorded). */
void engine_stop(struct engine *e);
void engine_free(struct engine **e);

/* ---- mtad_setup.c: daemon_main's hooks ---- */
struct daemon;
/* Opens d->store. 0, or -1 with a message in err. */
int mtad_open_store(struct daemon *d, char *err, size_t errlen);
/* Sets up the engine and everything it needs (d->priv). 0, or -1 with a
   message in err (daemon_main then calls mtad_setup_stop and exits 1). */
int mtad_setup_start(struct daemon *d, char *err, size_t errlen);
/* Tears down what mtad_setup_start made; safe after a failed start. */
void mtad_setup_stop(struct daemon *d);

#endif
