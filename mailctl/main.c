/* mailctl: the administrator's tool. This file parses the command line
   (global -c, noun, verb, the verb's options and arguments), prints help,
   loads the config and opens the store, then runs the verb from the table.
   Exit codes: 0 ok, 1 failure (one line on stderr), 2 bad usage. Uses only
   common/ and store/: no sockets, no event loop. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "mailctl.h"
#include "util.h"

enum verb_opt {
	OPT_PASSWORD_STDIN = 1 << 0,
	OPT_QUOTA          = 1 << 1,
	OPT_MAILBOX        = 1 << 2,
	OPT_JSON           = 1 << 3,
	OPT_ALGORITHM      = 1 << 4,
};

struct verb {
	const char *noun, *verb;
	int min_args, max_args;
	unsigned opts;                 /* enum verb_opt bits accepted */
	mailctl_verb_fn *fn;
	const char *usage;             /* after "mailctl " */
	const char *help;              /* one line */
};

static const struct verb verbs[] = {
	{ "domain", "add", 1, 1, 0, cmd_domain_add, "domain add DOMAIN",
	  "make DOMAIN local: mail for it is accepted and stored here" },
	{ "domain", "del", 1, 1, 0, cmd_domain_del, "domain del DOMAIN",
	  "remove a local domain (it must have no users or aliases left)" },
	{ "domain", "list", 0, 0, 0, cmd_domain_list, "domain list",
	  "list the local domains, one per line" },
	{ "user", "add", 1, 1, OPT_PASSWORD_STDIN | OPT_QUOTA, cmd_user_add,
	  "user add ADDRESS [--password-stdin] [--quota SIZE]",
	  "create a user with INBOX, Drafts, Sent, Trash, Junk and Archive" },
	{ "user", "passwd", 1, 1, OPT_PASSWORD_STDIN, cmd_user_passwd,
	  "user passwd ADDRESS [--password-stdin]",
	  "set a user's password" },
	{ "user", "del", 1, 1, 0, cmd_user_del, "user del ADDRESS",
	  "delete a user and all of its mail" },
	{ "user", "list", 0, 1, 0, cmd_user_list, "user list [DOMAIN]",
	  "list users (of one domain), one address per line" },
	{ "user", "quota", 2, 2, 0, cmd_user_quota, "user quota ADDRESS SIZE",
	  "set a user's quota (0 = unlimited)" },
	{ "user", "show", 1, 1, 0, cmd_user_show, "user show ADDRESS",
	  "print address, quota and bytes used" },
	{ "alias", "add", 2, 2, 0, cmd_alias_add,
	  "alias add ALIAS TARGET[,TARGET...]",
	  "deliver mail for ALIAS to local users, other aliases, or addresses "
	  "elsewhere (forwarded)" },
	{ "alias", "del", 1, 1, 0, cmd_alias_del, "alias del ALIAS",
	  "delete an alias" },
	{ "alias", "list", 0, 0, 0, cmd_alias_list, "alias list",
	  "list aliases: \"ALIAS TARGET,...\" per line" },
	{ "mailbox", "list", 1, 1, 0, cmd_mailbox_list,
	  "mailbox list ADDRESS",
	  "list a user's mailboxes: \"name messages unseen size\" per line" },
	{ "reindex", NULL, 1, 1, 0, cmd_reindex, "reindex ADDRESS",
	  "rebuild a user's index from the maildir files" },
	{ "deliver", NULL, 1, 1, OPT_MAILBOX, cmd_deliver,
	  "deliver ADDRESS [--mailbox NAME] < MESSAGE",
	  "store a message read from standard input (default: INBOX)" },
	{ "queue", "list", 0, 0, OPT_JSON, cmd_queue_list,
	  "queue list [--json]",
	  "outbound queue: \"ID age <sender> recipient state attempts "
	  "last-reply\" per recipient" },
	{ "queue", "show", 1, 1, 0, cmd_queue_show, "queue show ID",
	  "envelope, per-recipient state and history, and headers of one "
	  "entry" },
	{ "queue", "flush", 0, 1, 0, cmd_queue_flush, "queue flush [ID]",
	  "retry now (one entry, or every entry that is not held)" },
	{ "queue", "delete", 1, 1, 0, cmd_queue_delete, "queue delete ID",
	  "drop an entry without a bounce" },
	{ "queue", "hold", 1, 1, 0, cmd_queue_hold, "queue hold ID",
	  "keep an entry from being delivered until released" },
	{ "queue", "release", 1, 1, 0, cmd_queue_release, "queue release ID",
	  "let a held entry go (it is tried at once)" },
	{ "dkim", "generate", 1, 1, OPT_ALGORITHM, cmd_dkim_generate,
	  "dkim generate DOMAIN [--algorithm rsa|ed25519|both]",
	  "make a DKIM key (default rsa) and print its DNS record" },
	{ "dns", NULL, 1, 1, 0, cmd_dns, "dns DOMAIN",
	  "print the zone-file lines to publish: MX, SPF, DKIM, DMARC, SRV" },
};

static const char *const nouns[] = {
	"domain", "user", "alias", "mailbox", "reindex", "deliver", "queue",
	"dkim", "dns" };

static const char global_usage[] =
    "usage: mailctl [-c FILE] NOUN VERB [ARGS...]\n";

void
mailctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("mailctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
print_verbs(FILE *f, const char *noun)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(verbs); i++) {
		if (noun != NULL && strcmp(verbs[i].noun, noun) != 0)
			continue;
		fprintf(f, "  mailctl %s\n      %s\n", verbs[i].usage,
		    verbs[i].help);
	}
}

static void
print_help(void)
{
	printf("%s", global_usage);
	printf("\nManage the domains, users, aliases and mailboxes of a "
	    "Postroom mail server.\n\n"
	    "Options:\n"
	    "  -c FILE     the config file (default: $POSTROOM_CONF, then "
	    "/etc/postroom/postroom.conf)\n"
	    "  -h, --help  this help; \"mailctl NOUN --help\" for one noun\n"
	    "\nCommands:\n");
	print_verbs(stdout, NULL);
	printf("\nSIZE is bytes or a number with a K, M or G suffix "
	    "(1024-based).\n"
	    "Without --password-stdin, passwords are asked twice on the "
	    "terminal, without echo.\n"
	    "Exit status: 0 ok, 1 failure (reason on stderr), 2 bad usage.\n");
}

static void
print_noun_help(const char *noun)
{
	printf("usage:\n");
	print_verbs(stdout, noun);
	if (strcmp(noun, "user") == 0)
		printf("\nSIZE is bytes or a number with a K, M or G suffix. "
		    "--password-stdin reads one line\nfrom standard input; "
		    "without it the password is asked twice on the terminal.\n");
}

static int
usage_error(const char *noun, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
usage_error(const char *noun, const char *fmt, ...)
{
	va_list ap;

	fputs("mailctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (noun != NULL) {
		fputs("usage:\n", stderr);
		print_verbs(stderr, noun);
	} else {
		fputs(global_usage, stderr);
		fputs("Run \"mailctl --help\" for the commands.\n", stderr);
	}
	return EXIT_USAGE;
}

static bool
is_help(const char *s)
{
	return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0 ||
	    strcmp(s, "help") == 0;
}

static bool
is_noun(const char *s)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(nouns); i++) {
		if (strcmp(nouns[i], s) == 0)
			return true;
	}
	return false;
}

static const struct verb *
find_verb(const char *noun, const char *verb)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(verbs); i++) {
		if (strcmp(verbs[i].noun, noun) != 0)
			continue;
		/* verb NULL: the noun's first entry (whose verb is NULL for
		   nouns that take none). */
		if (verb == NULL || verbs[i].verb == NULL ||
		    strcmp(verbs[i].verb, verb) == 0)
			return &verbs[i];
	}
	return NULL;
}

/* Splits argv (after noun and verb) into options and positional args.
   Returns 0, EXIT_USAGE after printing why, or -1 for --help. */
static int
parse_verb_args(const struct verb *v, int argc, char **argv,
    struct mailctl *m)
{
	bool opts_done = false;
	int i;

	m->args = xcalloc((size_t)argc + 1, sizeof(char *));
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (opts_done || a[0] != '-' || a[1] == '\0') {
			m->args[m->nargs++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			opts_done = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			return -1;
		} else if ((v->opts & OPT_PASSWORD_STDIN) &&
		    strcmp(a, "--password-stdin") == 0) {
			m->password_stdin = true;
		} else if ((v->opts & OPT_QUOTA) &&
		    (strcmp(a, "--quota") == 0 ||
		    strncmp(a, "--quota=", 8) == 0)) {
			const char *val = a[7] == '=' ? a + 8 : argv[++i];
			if (val == NULL)
				return usage_error(v->noun,
				    "--quota needs a SIZE");
			if (parse_size(val, &m->quota) < 0)
				return usage_error(v->noun, "bad SIZE '%s' "
				    "(want bytes or K/M/G suffix)", val);
			m->has_quota = true;
		} else if ((v->opts & OPT_MAILBOX) &&
		    (strcmp(a, "--mailbox") == 0 ||
		    strncmp(a, "--mailbox=", 10) == 0)) {
			const char *val = a[9] == '=' ? a + 10 : argv[++i];
			if (val == NULL)
				return usage_error(v->noun,
				    "--mailbox needs a NAME");
			m->mailbox = val;
		} else if ((v->opts & OPT_JSON) && strcmp(a, "--json") == 0) {
			m->json = true;
		} else if ((v->opts & OPT_ALGORITHM) &&
		    (strcmp(a, "--algorithm") == 0 ||
		    strncmp(a, "--algorithm=", 12) == 0)) {
			const char *val = a[11] == '=' ? a + 12 : argv[++i];
			if (val == NULL)
				return usage_error(v->noun,
				    "--algorithm needs rsa, ed25519 or both");
			m->algorithm = val;
		} else {
			return usage_error(v->noun, "unknown option '%s'", a);
		}
	}
	if (m->nargs < v->min_args)
		return usage_error(v->noun, "%s: missing argument", v->usage);
	if (m->nargs > v->max_args)
		return usage_error(v->noun, "%s: too many arguments",
		    v->usage);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *cli_conf = NULL, *noun, *verb_name;
	const struct verb *v;
	struct mailctl m;
	struct config cfg;
	char err[512];
	enum store_err se;
	int i = 1, rest, r, ret = EXIT_FAIL;
	bool cfg_loaded = false;

	memset(&m, 0, sizeof(m));
	log_init("mailctl", LOG_LVL_WARN);
	/* Global options come before the noun. */
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") ==
		    0) {
			if (i + 1 >= argc)
				return usage_error(NULL, "-c needs a FILE");
			cli_conf = argv[i + 1];
			i += 2;
		} else if (is_help(argv[i])) {
			print_help();
			return EXIT_OK;
		} else {
			return usage_error(NULL, "unknown option '%s'",
			    argv[i]);
		}
	}
	if (i >= argc)
		return usage_error(NULL, "missing command");
	noun = argv[i++];
	if (is_help(noun)) {
		if (i < argc && is_noun(argv[i]))
			print_noun_help(argv[i]);
		else
			print_help();
		return EXIT_OK;
	}
	if (!is_noun(noun))
		return usage_error(NULL, "unknown command '%s'", noun);
	v = find_verb(noun, NULL);
	if (v->verb != NULL) {
		/* A noun with verbs: the next word picks one. */
		if (i >= argc)
			return usage_error(noun, "%s: missing verb", noun);
		verb_name = argv[i++];
		if (is_help(verb_name)) {
			print_noun_help(noun);
			return EXIT_OK;
		}
		v = find_verb(noun, verb_name);
		if (v == NULL)
			return usage_error(noun, "unknown verb '%s %s'", noun,
			    verb_name);
	}
	rest = argc - i;
	r = parse_verb_args(v, rest, argv + i, &m);
	if (r < 0) {
		print_noun_help(noun);
		ret = EXIT_OK;
		goto out;
	}
	if (r != 0) {
		ret = r;
		goto out;
	}
	if (config_load(&cfg, config_default_path(cli_conf), err,
	    sizeof(err)) < 0) {
		mailctl_err("%s", err);
		goto out;
	}
	cfg_loaded = true;
	m.data_dir = cfg.data_dir;
	m.max_message_size = cfg.max_message_size;
	m.cfg = &cfg;
	se = store_open(cfg.data_dir, &m.st);
	if (se != STORE_OK) {
		mailctl_err("cannot open the store in %s: %s", cfg.data_dir,
		    store_last_error());
		goto out;
	}
	ret = v->fn(&m);
out:
	if (m.st != NULL)
		store_close(&m.st);
	if (cfg_loaded)
		config_free(&cfg);
	free(m.args);
	return ret;
}
