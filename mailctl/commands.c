/* commands: the mailctl verbs over store.h. Each checks its arguments,
   calls the store, prints results on stdout (one record per line, for
   scripts) and failures as one line on stderr; it returns the exit code.
   Passwords exist only long enough to be hashed, then are wiped. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "mailctl.h"
#include "util.h"

/* Prints why a store call failed: the store's detail when it has one. */
static int
store_fail(const char *what, enum store_err e)
{
	const char *detail = store_last_error();

	if (detail == NULL || detail[0] == '\0')
		detail = store_err_str(e);
	mailctl_err("%s: %s", what, detail);
	return EXIT_FAIL;
}

/* Copies and normalizes an address argument; 0 or EXIT_FAIL after saying
   why. */
static int
address_arg(const char *in, char *out, size_t size)
{
	if (str_copy(out, in, size) >= size || address_normalize(out) < 0) {
		mailctl_err("invalid address '%s' (want local@domain)", in);
		return EXIT_FAIL;
	}
	return 0;
}

static int
domain_arg(const char *in, char *out, size_t size)
{
	char probe[STORE_ADDRESS_MAX + 1];

	/* A domain is valid when "x@domain" is a valid address. */
	if (snprintf(probe, sizeof(probe), "x@%s", in) >= (int)sizeof(probe) ||
	    address_normalize(probe) < 0) {
		mailctl_err("invalid domain '%s'", in);
		return EXIT_FAIL;
	}
	str_copy(out, probe + 2, size);
	return 0;
}

/* Fails clearly when the address's domain is not one of ours. */
static int
require_local(struct mailctl *m, const char *addr)
{
	const char *dom = strrchr(addr, '@') + 1;

	if (!store_domain_is_local(m->st, dom)) {
		mailctl_err("domain '%s' is not local (add it first with: "
		    "mailctl domain add %s)", dom, dom);
		return EXIT_FAIL;
	}
	return 0;
}

static int
get_user(struct mailctl *m, const char *addr, struct store_user *u)
{
	enum store_err e = store_user_get(m->st, addr, u);

	if (e == STORE_ENOTFOUND) {
		mailctl_err("no such user '%s'", addr);
		return EXIT_FAIL;
	}
	if (e != STORE_OK)
		return store_fail(addr, e);
	return 0;
}

/* Reads and hashes a new password; 0 or an exit code. */
static int
new_password_hash(struct mailctl *m, char hash[PW_HASH_MAX])
{
	bool usage;
	char *pw = password_read(m->password_stdin, &usage);
	int r;

	if (pw == NULL)
		return usage ? EXIT_USAGE : EXIT_FAIL;
	r = pw_hash(pw, hash);
	secret_free(&pw);
	if (r < 0) {
		mailctl_err("cannot hash the password (out of memory?)");
		return EXIT_FAIL;
	}
	return 0;
}

static int
print_line_cb(void *arg, const char *a, const char *b)
{
	if (b != NULL)
		printf("%s %s\n", a, b);
	else
		printf("%s\n", a);
	return 0;
}

/* ---- domain ---- */

int
cmd_domain_add(struct mailctl *m)
{
	char dom[STORE_ADDRESS_MAX + 1];
	enum store_err e;

	if (domain_arg(m->args[0], dom, sizeof(dom)) != 0)
		return EXIT_FAIL;
	e = store_domain_add(m->st, dom);
	if (e == STORE_EEXISTS) {
		mailctl_err("domain '%s' already exists", dom);
		return EXIT_FAIL;
	}
	return e == STORE_OK ? EXIT_OK : store_fail(dom, e);
}

int
cmd_domain_del(struct mailctl *m)
{
	char dom[STORE_ADDRESS_MAX + 1];
	enum store_err e;

	if (domain_arg(m->args[0], dom, sizeof(dom)) != 0)
		return EXIT_FAIL;
	e = store_domain_del(m->st, dom);
	if (e == STORE_ENOTFOUND) {
		mailctl_err("no such domain '%s'", dom);
		return EXIT_FAIL;
	}
	if (e == STORE_EPERM) {
		mailctl_err("domain '%s' still has users or aliases; "
		    "delete them first", dom);
		return EXIT_FAIL;
	}
	return e == STORE_OK ? EXIT_OK : store_fail(dom, e);
}

int
cmd_domain_list(struct mailctl *m)
{
	enum store_err e = store_domain_list(m->st, print_line_cb, NULL);

	return e == STORE_OK ? EXIT_OK : store_fail("domain list", e);
}

/* ---- user ---- */

int
cmd_user_add(struct mailctl *m)
{
	char addr[STORE_ADDRESS_MAX + 1], hash[PW_HASH_MAX];
	struct store_user u;
	enum store_err e;
	int r;

	if ((r = address_arg(m->args[0], addr, sizeof(addr))) != 0 ||
	    (r = require_local(m, addr)) != 0)
		return r;
	/* Say so before asking for a password that would be thrown away. */
	if (store_user_get(m->st, addr, &u) == STORE_OK) {
		mailctl_err("user '%s' already exists", addr);
		return EXIT_FAIL;
	}
	if ((r = new_password_hash(m, hash)) != 0)
		return r;
	e = store_user_add(m->st, addr, hash, m->has_quota ? m->quota : 0, &u);
	memset(hash, 0, PW_HASH_MAX);
	if (e == STORE_EEXISTS) {
		mailctl_err("'%s' is already a user or an alias", addr);
		return EXIT_FAIL;
	}
	if (e == STORE_EPERM) {
		/* The domain is local (checked above): the name is the
		   problem. '+' is refused because "user+tag" is delivered to
		   "user". */
		*strrchr(addr, '@') = '\0';
		mailctl_err("invalid user name '%s' (use a-z, 0-9, '.', '_' "
		    "and '-', not starting with '.')", addr);
		return EXIT_FAIL;
	}
	return e == STORE_OK ? EXIT_OK : store_fail(addr, e);
}

int
cmd_user_passwd(struct mailctl *m)
{
	char addr[STORE_ADDRESS_MAX + 1], hash[PW_HASH_MAX];
	struct store_user u;
	enum store_err e;
	int r;

	if ((r = address_arg(m->args[0], addr, sizeof(addr))) != 0 ||
	    (r = get_user(m, addr, &u)) != 0)
		return r;
	if ((r = new_password_hash(m, hash)) != 0)
		return r;
	e = store_user_set_password(m->st, addr, hash);
	memset(hash, 0, PW_HASH_MAX);
	return e == STORE_OK ? EXIT_OK : store_fail(addr, e);
}

int
cmd_user_del(struct mailctl *m)
{
	char addr[STORE_ADDRESS_MAX + 1];
	enum store_err e;
	int r;

	if ((r = address_arg(m->args[0], addr, sizeof(addr))) != 0)
		return r;
	e = store_user_del(m->st, addr);
	if (e == STORE_ENOTFOUND) {
		mailctl_err("no such user '%s'", addr);
		return EXIT_FAIL;
	}
	return e == STORE_OK ? EXIT_OK : store_fail(addr, e);
}

int
cmd_user_list(struct mailctl *m)
{
	char dom[STORE_ADDRESS_MAX + 1];
	enum store_err e;

	if (m->nargs == 1) {
		if (domain_arg(m->args[0], dom, sizeof(dom)) != 0)
			return EXIT_FAIL;
		if (!store_domain_is_local(m->st, dom)) {
			mailctl_err("no such domain '%s'", dom);
			return EXIT_FAIL;
		}
	}
	e = store_user_list(m->st, m->nargs == 1 ? dom : NULL, print_line_cb,
	    NULL);
	return e == STORE_OK ? EXIT_OK : store_fail("user list", e);
}

int
cmd_user_quota(struct mailctl *m)
{
	char addr[STORE_ADDRESS_MAX + 1];
	struct store_user u;
	uint64_t quota;
	enum store_err e;
	int r;

	if (parse_size(m->args[1], &quota) < 0) {
		mailctl_err("bad SIZE '%s' (want bytes or a K/M/G suffix)",
		    m->args[1]);
		return EXIT_USAGE;
	}
	if ((r = address_arg(m->args[0], addr, sizeof(addr))) != 0 ||
	    (r = get_user(m, addr, &u)) != 0)
		return r;
	e = store_user_set_quota(m->st, addr, quota);
	return e == STORE_OK ? EXIT_OK : store_fail(addr, e);
}

int
cmd_user_show(struct mailctl *m)
{
	char addr[STORE_ADDRESS_MAX + 1];
	struct store_user u;
	int r;

	if ((r = address_arg(m->args[0], addr, sizeof(addr))) != 0 ||
	    (r = get_user(m, addr, &u)) != 0)
		return r;
	printf("address %s\nquota %" PRIu64 "\nused %" PRIu64 "\n", u.address,
	    u.quota, u.used);
	return EXIT_OK;
}

/* ---- alias ---- */

int
cmd_alias_add(struct mailctl *m)
{
	char alias[STORE_ADDRESS_MAX + 1];
	struct buf targets;
	char *list, *tok, *save = NULL;
	uint32_t *ids;
	size_t nids;
	enum store_err e;
	int r = EXIT_FAIL;

	buf_init(&targets);
	list = xstrdup(m->args[1]);
	if (address_arg(m->args[0], alias, sizeof(alias)) != 0 ||
	    require_local(m, alias) != 0)
		goto out;
	/* Normalize each target so the store sees "a@x,b@y". */
	for (tok = strtok_r(list, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char t[STORE_ADDRESS_MAX + 1];
		while (*tok == ' ' || *tok == '\t')
			tok++;
		if (*tok == '\0')
			continue;
		if (address_arg(tok, t, sizeof(t)) != 0)
			goto out;
		/* A typo in a target would silently lose mail: each must
		   already be a user or an alias here. */
		ids = NULL;
		e = store_resolve(m->st, t, &ids, &nids);
		free(ids);
		if (e == STORE_EPERM) {
			/* Outside the local domains: forwarded through the
			   outbound queue (with an SRS envelope sender). */
			buf_printf(&targets, "%s%s", targets.len ? "," : "", t);
			continue;
		}
		if (e == STORE_ENOTFOUND) {
			mailctl_err("target '%s' is not a user or alias "
			    "(create it first)", t);
			goto out;
		}
		if (e != STORE_OK) {
			store_fail(t, e);
			goto out;
		}
		buf_printf(&targets, "%s%s", targets.len ? "," : "", t);
	}
	if (targets.len == 0) {
		mailctl_err("alias add: no TARGET given");
		r = EXIT_USAGE;
		goto out;
	}
	e = store_alias_add(m->st, alias, targets.data);
	if (e == STORE_EEXISTS)
		mailctl_err("'%s' is already a user or an alias", alias);
	else if (e != STORE_OK)
		store_fail(alias, e);
	else
		r = EXIT_OK;
out:
	free(list);
	buf_free(&targets);
	return r;
}

int
cmd_alias_del(struct mailctl *m)
{
	char alias[STORE_ADDRESS_MAX + 1];
	enum store_err e;

	if (address_arg(m->args[0], alias, sizeof(alias)) != 0)
		return EXIT_FAIL;
	e = store_alias_del(m->st, alias);
	if (e == STORE_ENOTFOUND) {
		mailctl_err("no such alias '%s'", alias);
		return EXIT_FAIL;
	}
	return e == STORE_OK ? EXIT_OK : store_fail(alias, e);
}

int
cmd_alias_list(struct mailctl *m)
{
	enum store_err e = store_alias_list(m->st, print_line_cb, NULL);

	return e == STORE_OK ? EXIT_OK : store_fail("alias list", e);
}

/* ---- mailboxes and maintenance ---- */

int
cmd_mailbox_list(struct mailctl *m)
{
	char addr[STORE_ADDRESS_MAX + 1];
	struct store_user u;
	struct store_mailbox *mbs = NULL;
	size_t n = 0, i;
	enum store_err e;
	int r;

	if ((r = address_arg(m->args[0], addr, sizeof(addr))) != 0 ||
	    (r = get_user(m, addr, &u)) != 0)
		return r;
	e = store_mailbox_list(m->st, u.id, &mbs, &n);
	if (e != STORE_OK)
		return store_fail(addr, e);
	for (i = 0; i < n; i++)
		printf("%s %" PRIu32 " %" PRIu32 " %" PRIu64 "\n", mbs[i].name,
		    mbs[i].messages, mbs[i].unseen, mbs[i].size);
	free(mbs);
	return EXIT_OK;
}

int
cmd_reindex(struct mailctl *m)
{
	char addr[STORE_ADDRESS_MAX + 1];
	struct store_reindex_stats stats;
	enum store_err e;
	int r;

	if ((r = address_arg(m->args[0], addr, sizeof(addr))) != 0)
		return r;
	memset(&stats, 0, sizeof(stats));
	e = store_reindex_user(m->st, addr, &stats);
	if (e == STORE_ENOTFOUND) {
		mailctl_err("no such user '%s' (no maildir under %s/mail)",
		    addr, m->data_dir);
		return EXIT_FAIL;
	}
	if (e != STORE_OK)
		return store_fail(addr, e);
	printf("%s: %u mailboxes, %u messages, %u recovered\n", addr,
	    stats.mailboxes, stats.messages, stats.recovered);
	return EXIT_OK;
}

int
cmd_deliver(struct mailctl *m)
{
	char addr[STORE_ADDRESS_MAX + 1], chunk[65536];
	struct store_delivery *d = NULL;
	struct store_mailbox mb;
	struct store_user u;
	uint32_t mbox_id = 0;
	enum store_err e;
	ssize_t n;
	int r;

	if ((r = address_arg(m->args[0], addr, sizeof(addr))) != 0 ||
	    (r = get_user(m, addr, &u)) != 0)
		return r;
	if (m->mailbox != NULL) {
		e = store_mailbox_get(m->st, u.id, m->mailbox, &mb);
		if (e == STORE_ENOTFOUND) {
			mailctl_err("no mailbox '%s' for %s", m->mailbox, addr);
			return EXIT_FAIL;
		}
		if (e != STORE_OK)
			return store_fail(m->mailbox, e);
		mbox_id = mb.id;
	}
	r = EXIT_FAIL;
	if ((e = store_delivery_new(m->st, &d)) != STORE_OK) {
		store_fail("deliver", e);
		goto out;
	}
	for (;;) {
		n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mailctl_err("reading the message: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (m->max_message_size != 0 && store_delivery_size(d) +
		    (uint64_t)n > m->max_message_size) {
			mailctl_err("message larger than max_message_size "
			    "(%" PRIu64 " bytes)", m->max_message_size);
			goto out;
		}
		if ((e = store_delivery_write(d, chunk, (size_t)n)) !=
		    STORE_OK) {
			store_fail("deliver", e);
			goto out;
		}
	}
	if (store_delivery_size(d) == 0) {
		mailctl_err("empty message on standard input");
		goto out;
	}
	e = store_delivery_add_target(d, u.id, mbox_id, 0, NULL, 0, 0, 0);
	if (e == STORE_OK)
		e = store_delivery_commit(d, 0, NULL);
	if (e == STORE_EQUOTA) {
		mailctl_err("%s is over quota", addr);
		goto out;
	}
	if (e != STORE_OK) {
		store_fail("deliver", e);
		goto out;
	}
	r = EXIT_OK;
out:
	store_delivery_free(&d);
	return r;
}
