/* Fuzz target: the IMAP command parser fed in random chunks, with literal
   decisions taken from the input, plus sequence sets and mUTF-7 names of
   every argument. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "imap_fetch_items.h"
#include "imap_parser.h"
#include "imap_search.h"
#include "imap_seqset.h"
#include "imap_utf7.h"

static void
walk(const struct imap_arg *a, const struct imap_arg *end)
{
	for (; a < end; a = imap_arg_next(a)) {
		if (a->type == IMAP_ARG_LIST) {
			walk(a + 1, imap_arg_list_end(a));
		} else if (a->str != NULL) {
			struct imap_seqset set;
			const char *err;
			struct buf b;

			if (imap_seqset_parse(a->str, a->len, 1000, &set, &err) == 0) {
				imap_seqset_resolve(&set, 1000);
				(void)imap_seqset_has(&set, 7);
				imap_seqset_free(&set);
			}
			buf_init(&b);
			if (imap_utf7_to_utf8(a->str, a->len, &b) == 0 && b.data) {
				struct buf b2;

				buf_init(&b2);
				if (imap_utf8_to_utf7(b.data, &b2) != 0)
					__builtin_trap();
				buf_free(&b2);
			}
			buf_free(&b);
		}
	}
}

static const char fake[] = "Subject: x\r\nFrom: a@b\r\n\r\nbody\r\n";

static int
get_header(void *ctx, const char **p, size_t *len)
{
	*p = fake;
	*len = 24;
	return 0;
}

static int
get_message(void *ctx, const char **p, size_t *len, const void **parts,
    size_t *plen)
{
	*p = fake;
	*len = sizeof(fake) - 1;
	*parts = NULL;
	*plen = 0;
	return 0;
}

/* Every command's arguments also go through the SEARCH parser and one
   evaluation. */
static void
search(const struct imap_cmd *cmd)
{
	struct imap_search *s;
	const char *err;
	struct imap_search_msg m = { .msn = 3, .uid = 7, .size = 30,
		.get_header = get_header, .get_message = get_message };

	if (imap_search_parse(cmd->args, cmd->args_end, &s, &err) !=
	    IMAP_SEARCH_OK)
		return;
	imap_search_bind(s, 10, 20, NULL, 0);
	(void)imap_search_match(s, &m);
	imap_search_free(&s);
}

/* And the second argument through the FETCH item parser. */
static void
fetch_items(const struct imap_cmd *cmd)
{
	struct imap_fetch_items it;
	const struct imap_arg *a = cmd->args;
	size_t i;

	if (a >= cmd->args_end || (a = imap_arg_next(a)) >= cmd->args_end)
		return;
	if (imap_fetch_items_parse(a, &it) < 0)
		return;
	for (i = 0; i < it.n; i++) {
		struct buf b;

		buf_init(&b);
		if (it.v[i].nfields > 0)
			imap_fetch_filter_header(&it.v[i], fake, sizeof(fake) - 1, &b);
		buf_free(&b);
	}
	imap_fetch_items_free(&it);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct imap_parser_limits lim = {
		.line_max = 4096, .hard_max = 8192, .literal_total = 4096,
		.depth_max = 16, .args_max = 500,
	};
	struct imap_parser *p = imap_parser_new(&lim);
	size_t pos = 0, step = 1;

	if (size > 0) {
		step = 1 + data[0] % 64;
		pos = 1;
	}
	while (pos < size && !imap_parser_is_fatal(p)) {
		size_t n = size - pos, used;
		enum imap_pev ev;
		struct imap_cmd cmd;
		const char *tag, *err;
		int r;

		if (n > step)
			n = step;
		r = imap_parser_next(p, (const char *)data + pos, n, &used, &ev,
		    &cmd, &tag, &err);
		pos += used;
		if (r == 1 && ev == IMAP_PEV_LITERAL) {
			uint64_t sz = imap_parser_lit_size(p);

			if (sz % 3 == 0 && imap_parser_literal_fits(p))
				imap_parser_literal_read(p);
			else if (sz % 3 == 1) {
				imap_parser_literal_external(p);
				pos += sz < size - pos ? sz : size - pos;
			} else
				imap_parser_literal_reject(p);
		} else if (r == 1) {
			walk(cmd.args, cmd.args_end);
			search(&cmd);
			fetch_items(&cmd);
		} else if (r == 0 && used == 0 && n > 0) {
			__builtin_trap();   /* no progress */
		}
	}
	imap_parser_trim(p);
	imap_parser_free(&p);
	return 0;
}
