/* cmd_compress: COMPRESS DEFLATE (RFC 4978), only once authenticated (the
   command table says so). The tagged OK is queued before the conn turns
   compression on, so it leaves uncompressed; bytes the client pipelined
   after the command are already deflated and conn inflates them. */
#include "log.h"

#include "imap_commands.h"

enum cmd_result
imap_cmd_compress(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	(void)end;
	if (!imap_arg_is_atom(args, "DEFLATE")) {
		imap_cmd_usage(s);
		return CMD_DONE;
	}
	if (conn_is_compressed(s->base.c)) {
		imap_cmd_reply(s, IMAP_NO, "[COMPRESSIONACTIVE] DEFLATE is "
		    "already active");
		return CMD_DONE;
	}
	imap_cmd_reply(s, IMAP_OK, "DEFLATE active");
	if (conn_start_compress(s->base.c) < 0) {
		/* the client now deflates: nothing more can be understood */
		log_warnx("%s compress result=fail", conn_id(s->base.c));
		return CMD_CLOSE;
	}
	log_info("%s compress result=ok method=deflate", conn_id(s->base.c));
	return CMD_DONE;
}
