/* cmd_compress: COMPRESS DEFLATE (RFC 4978), only once authenticated (the
   command table says so). The tagged OK is queued before the conn turns
   compression on, so it leaves uncompressed; bytes the client pipelined
   after the command are already deflated and conn inflates them. */
#include "log.h"

#include "imap_ext.h"

enum cmd_result
imap_cmd_compress(struct imap_session *s, const struct imap_arg *args,
    const struct imap_arg *end)
{
	if (imap_args_count(args, end) != 1 || !imap_arg_is_atom(args,
	    "DEFLATE")) {
		imap_reply_tagged(s, "BAD", "Usage: COMPRESS DEFLATE");
		return CMD_DONE;
	}
	if (conn_is_compressed(s->c)) {
		imap_reply_tagged(s, "NO", "[COMPRESSIONACTIVE] DEFLATE is "
		    "already active");
		return CMD_DONE;
	}
	imap_reply_tagged(s, "OK", "DEFLATE active");
	if (conn_start_compress(s->c) < 0) {
		/* the client now deflates: nothing more can be understood */
		log_warnx("%s compress result=fail", conn_id(s->c));
		s->closing = true;
		return CMD_CLOSE;
	}
	log_info("%s compress result=ok method=deflate", conn_id(s->c));
	return CMD_DONE;
}
