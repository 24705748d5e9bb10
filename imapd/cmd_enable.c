/* cmd_enable: ENABLE (RFC 5161) and NAMESPACE (RFC 2342). What ENABLE can
   turn on is the feature registry's (imap_features.c); unknown names are
   ignored. Neither command touches the store. */
#include "imap_commands.h"
#include "imap_features.h"

enum cmd_result
imap_cmd_namespace(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)args;
	(void)end;
	/* One personal namespace, empty prefix, '/' as everywhere else. */
	imap_reply_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_cmd_reply(s, IMAP_OK, "NAMESPACE completed");
	return CMD_DONE;
}

enum cmd_result
imap_cmd_enable(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	const struct imap_arg *a;
	const char *name;
	struct buf b;

	for (a = args; a < end; a = imap_arg_next(a)) {
		if (a->type != IMAP_ARG_ATOM) {
			imap_cmd_reply(s, IMAP_BAD,
			    "ENABLE takes capability names");
			return CMD_DONE;
		}
	}
	buf_init(&b);
	buf_puts(&b, "* ENABLED");
	/* Only names that were not enabled before are listed (RFC 5161
	   §3.1). */
	for (a = args; a < end; a = imap_arg_next(a))
		if ((name = imap_feature_enable(s, a->str)) != NULL)
			buf_printf(&b, " %s", name);
	buf_puts(&b, "\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	imap_cmd_reply(s, IMAP_OK, "ENABLE completed");
	return CMD_DONE;
}
