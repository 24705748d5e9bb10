/* Shared by the IMAP fuzz targets: feeds the input through the command
   parser under fixed limits, accepts or rejects each literal the way the
   session does, and hands every complete command to the target's callback.
   Header-only (static), since each target is one translation unit. */
#ifndef FUZZ_IMAP_UTIL_H
#define FUZZ_IMAP_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "imap_parser.h"

typedef void fuzz_imap_cmd_cb(const struct imap_cmd *cmd);

static void
fuzz_imap_each_cmd(const uint8_t *data, size_t size, fuzz_imap_cmd_cb *cb)
{
	static const struct imap_parser_limits lim = {
		.line_max = 4096, .hard_max = 8192, .literal_total = 4096,
		.depth_max = 16, .args_max = 500,
	};
	struct imap_parser *p = imap_parser_new(&lim);
	size_t pos = 0;

	while (pos < size && !imap_parser_is_fatal(p)) {
		size_t used;
		enum imap_pev ev;
		struct imap_cmd cmd;
		const char *tag, *err;
		int r;

		r = imap_parser_next(p, (const char *)data + pos, size - pos,
		    &used, &ev, &cmd, &tag, &err);
		pos += used;
		if (r == 1 && ev == IMAP_PEV_LITERAL) {
			if (imap_parser_literal_fits(p))
				imap_parser_literal_read(p);
			else
				imap_parser_literal_reject(p);
			continue;
		}
		if (r == 1)
			cb(&cmd);
		else if (r == 0 && used == 0)
			break;
	}
	imap_parser_free(&p);
}

#endif
