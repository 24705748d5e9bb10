/* Fuzz target: SEARCH RETURN options (ESEARCH/SEARCHRES) followed by the
   criteria (MODSEQ and "$" keys included), the ESEARCH reply built from
   the hits, and the CONDSTORE/QRESYNC parameter parsers of SELECT, FETCH
   and STORE on every list argument. Input: one command line. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "imap_esearch.h"
#include "imap_modseq.h"
#include "fuzz_imap_util.h"
#include "imap_parser.h"
#include "imap_search.h"

static int
get_header(void *ctx, const char **p, size_t *len)
{
	*p = "Subject: x\r\n\r\n";
	*len = 14;
	return 0;
}

static int
get_message(void *ctx, const char **p, size_t *len, const void **parts,
    size_t *plen)
{
	*p = "Subject: x\r\n\r\nbody\r\n";
	*len = 20;
	*parts = NULL;
	*plen = 0;
	return 0;
}

static void
search(const struct imap_cmd *cmd)
{
	static const uint32_t saved[] = { 2, 5, 7 };
	const struct imap_arg *a = cmd->args;
	struct imap_search *s;
	unsigned opts;
	const char *err;
	uint32_t hits[8];
	size_t n = 0, idx[2];
	uint32_t i;
	struct buf b;

	if (imap_esearch_parse_return(&a, cmd->args_end, &opts, &err) < 0)
		return;
	if (imap_search_parse(a, cmd->args_end, &s, &err) != IMAP_SEARCH_OK)
		return;
	imap_search_bind(s, 8, 9, NULL, 0);
	imap_search_bind_saved(s, saved, 3);
	for (i = 1; i <= 8; i++) {
		struct imap_search_msg m = { .msn = i, .uid = i + 1, .size = 30,
			.modseq = i * 3, .get_header = get_header,
			.get_message = get_message };

		if (imap_search_match(s, &m))
			hits[n++] = i;
	}
	buf_init(&b);
	imap_esearch_format(&b, "t", opts & 1, opts, hits, n,
	    imap_search_has_modseq(s) ? 24 : 0);
	(void)imap_esearch_save_part(opts, n, idx);
	buf_free(&b);
	imap_search_free(&s);
}

static void
modifiers(const struct imap_arg *a, const struct imap_arg *end)
{
	for (; a < end; a = imap_arg_next(a)) {
		struct imap_select_params p;
		struct imap_fetch_mods m;
		const char *err;
		uint64_t since;

		if (a->type != IMAP_ARG_LIST)
			continue;
		(void)imap_select_params_parse(a, &p, &err);
		if (p.have_known)
			(void)imap_seqset_has(&p.known, 7);
		imap_select_params_free(&p);
		(void)imap_fetch_mods_parse(a, &m, &err);
		(void)imap_store_mods_parse(a, &since, &err);
		modifiers(a + 1, imap_arg_list_end(a));
	}
}

static void
command(const struct imap_cmd *cmd)
{
	search(cmd);
	modifiers(cmd->args, cmd->args_end);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_imap_each_cmd(data, size, command);
	return 0;
}
