// LINK: imapd/imap_parser.c imapd/imap_list_ext.c imapd/imap_utf7.c
/* Fuzz target: the LIST-EXTENDED argument parser (selection options,
   pattern lists, RETURN options with STATUS items) and the pattern
   matcher against a fixed tree of names, on each command of the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "imap_list_ext.h"
#include "imap_parser.h"
#include "imap_utf7.h"

static void
list(const struct imap_cmd *cmd)
{
	static const char *const names[] = { "INBOX", "INBOX/a", "Sent",
		"a/b/c", "a", "", "%*" };
	struct imap_list_opts o;
	const char *err;
	size_t i, k;

	if (imap_list_opts_parse(cmd->args, cmd->args_end, &o, &err) < 0)
		return;
	for (i = 0; i < o.npats; i++) {
		struct buf b;

		buf_init(&b);
		if (imap_utf7_to_utf8(o.ref->str, o.ref->len, &b) == 0 &&
		    imap_utf7_to_utf8(o.pats[i]->str, o.pats[i]->len, &b) == 0) {
			buf_putc(&b, '\0');
			for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
				(void)imap_list_match(b.data, names[k]);
		}
		buf_free(&b);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
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
			list(&cmd);
		else if (r == 0 && used == 0)
			break;
	}
	imap_parser_free(&p);
	return 0;
}
