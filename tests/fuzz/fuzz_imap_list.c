/* Fuzz target: the LIST-EXTENDED argument parser (selection options,
   pattern lists, RETURN options with STATUS items) and the pattern
   matcher against a fixed tree of names, on each command of the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "imap_list_ext.h"
#include "fuzz_imap_util.h"
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
	fuzz_imap_each_cmd(data, size, list);
	return 0;
}
