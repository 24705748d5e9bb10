/* mailctl: shared declarations of the administrator's tool. Only mailctl's
   own files include this header. */
#ifndef POSTROOM_MAILCTL_H
#define POSTROOM_MAILCTL_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct config;

/* Exit codes (INTERFACE.md). */
#define EXIT_OK    0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

/* What a verb gets: the open store and its parsed arguments. */
struct mailctl {
	struct store *st;
	const char *data_dir;
	uint64_t max_message_size;   /* from the config (deliver) */
	char **args;            /* positional arguments after noun and verb */
	int nargs;
	bool password_stdin;    /* --password-stdin */
	bool has_quota;         /* --quota given */
	uint64_t quota;         /* --quota SIZE */
	const char *mailbox;    /* --mailbox NAME (deliver) */
	const struct config *cfg;   /* the loaded config */
	bool json;              /* --json (queue list) */
	const char *algorithm;  /* --algorithm rsa|ed25519|both (dkim) */
};

typedef int mailctl_verb_fn(struct mailctl *m);

/* Verbs (commands.c). Each returns an exit code and has printed the one-line
   reason on failure. */
mailctl_verb_fn cmd_domain_add, cmd_domain_del, cmd_domain_list;
mailctl_verb_fn cmd_user_add, cmd_user_passwd, cmd_user_del, cmd_user_list;
mailctl_verb_fn cmd_user_quota, cmd_user_show;
mailctl_verb_fn cmd_alias_add, cmd_alias_del, cmd_alias_list;
mailctl_verb_fn cmd_mailbox_list, cmd_reindex, cmd_deliver;
/* Outbound (outbound.c). */
mailctl_verb_fn cmd_queue_list, cmd_queue_show, cmd_queue_flush;
mailctl_verb_fn cmd_queue_delete, cmd_queue_hold, cmd_queue_release;
mailctl_verb_fn cmd_dkim_generate, cmd_dns;

/* Prints "mailctl: <message>" on stderr. */
void mailctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads the new password: one line from stdin when from_stdin, else twice
   from the terminal without echo. Returns an owned string (secret_free) or
   NULL after printing why; *usage_r is set when the failure is bad usage
   (no terminal and no --password-stdin). */
char *password_read(bool from_stdin, bool *usage_r);

#endif
