/* cmd_starttls: STARTTLS (RFC 3501 §6.2.1, RFC 2595), before login only
   (the command table says so). The tagged OK leaves in clear text; conn
   then drops whatever the client pipelined after the command, so nothing
   sent before the handshake is ever read as a command. */
#include "imap_commands.h"

enum cmd_result
imap_cmd_starttls(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)args;
	(void)end;
	if (conn_is_tls(s->base.c) || s->implicit_tls) {
		imap_cmd_reply(s, IMAP_BAD, "TLS is already active");
		return CMD_DONE;
	}
	if (!server_has_tls(s->base.d->srv)) {
		imap_cmd_reply(s, IMAP_NO, "TLS is not available");
		return CMD_DONE;
	}
	imap_cmd_reply(s, IMAP_OK, "Begin TLS negotiation now");
	if (conn_starttls(s->base.c) < 0)
		return CMD_CLOSE;
	return CMD_DONE;
}
