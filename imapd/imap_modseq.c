/* imap_modseq: parsing of the CONDSTORE/QRESYNC parameters of SELECT,
   FETCH and STORE (RFC 7162 §3.1.2, §3.1.3, §3.1.4, §3.2.5). Pure. */
#include <string.h>
#include <strings.h>

#include "imap_modseq.h"

int
imap_modseq_parse(const struct imap_arg *a, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (a->type != IMAP_ARG_ATOM || a->len == 0 || a->len > 19)
		return -1;
	for (i = 0; i < a->len; i++) {
		if (a->str[i] < '0' || a->str[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(a->str[i] - '0');
	}
	if (v > IMAP_MODSEQ_MAX)
		return -1;
	*v_r = v;
	return 0;
}

static int
parse_set(const struct imap_arg *a, struct imap_seqset *set, bool *have)
{
	const char *err;

	if (a->type != IMAP_ARG_ATOM || imap_seqset_parse(a->str, a->len,
	    IMAP_SEQSET_RANGES_MAX, set, &err) < 0)
		return -1;
	*have = true;
	return 0;
}

/* "(uidvalidity modseq [known-uids [(msns uids)]])" */
static int
parse_qresync(const struct imap_arg *l, struct imap_select_params *p,
    const char **error_r)
{
	const struct imap_arg *a = l + 1, *end = imap_arg_list_end(l), *m;
	uint64_t v;
	bool have_msns = false, have_uids = false;

	*error_r = "Invalid QRESYNC parameters";
	if (l->type != IMAP_ARG_LIST || a >= end ||
	    imap_modseq_parse(a, &v) < 0 || v == 0 || v > UINT32_MAX)
		return -1;
	p->uidvalidity = (uint32_t)v;
	if ((a = imap_arg_next(a)) >= end ||
	    imap_modseq_parse(a, &p->modseq) < 0)
		return -1;
	if ((a = imap_arg_next(a)) >= end)
		return 0;
	if (a->type == IMAP_ARG_ATOM) {
		if (parse_set(a, &p->known, &p->have_known) < 0 ||
		    p->known.has_star)
			return -1;
		imap_seqset_resolve(&p->known, 0);  /* sorted for _has */
		a = imap_arg_next(a);
	}
	if (a >= end)
		return 0;
	if (a->type != IMAP_ARG_LIST || imap_arg_next(a) != end)
		return -1;
	m = a + 1;
	if (m >= imap_arg_list_end(a) ||
	    parse_set(m, &p->match_msns, &have_msns) < 0 ||
	    (m = imap_arg_next(m)) >= imap_arg_list_end(a) ||
	    parse_set(m, &p->match_uids, &have_uids) < 0 ||
	    imap_arg_next(m) != imap_arg_list_end(a) ||
	    p->match_msns.has_star || p->match_uids.has_star)
		return -1;
	p->have_match = true;
	return 0;
}

int
imap_select_params_parse(const struct imap_arg *list,
    struct imap_select_params *p, const char **error_r)
{
	const struct imap_arg *a, *end;

	memset(p, 0, sizeof(*p));
	*error_r = "Invalid SELECT parameters";
	if (list->type != IMAP_ARG_LIST)
		return -1;
	end = imap_arg_list_end(list);
	for (a = list + 1; a < end; a = imap_arg_next(a)) {
		if (imap_arg_is_atom(a, "CONDSTORE") && !p->condstore) {
			p->condstore = true;
		} else if (imap_arg_is_atom(a, "QRESYNC") && !p->qresync) {
			p->qresync = true;
			a = imap_arg_next(a);
			if (a >= end || parse_qresync(a, p, error_r) < 0)
				return -1;
		} else {
			return -1;
		}
	}
	return 0;
}

void
imap_select_params_free(struct imap_select_params *p)
{
	/* zeroed or parsed: freeing all three is always safe */
	imap_seqset_free(&p->known);
	imap_seqset_free(&p->match_msns);
	imap_seqset_free(&p->match_uids);
	p->have_known = p->have_match = false;
}

int
imap_fetch_mods_parse(const struct imap_arg *list, struct imap_fetch_mods *m,
    const char **error_r)
{
	const struct imap_arg *a, *end;

	memset(m, 0, sizeof(*m));
	*error_r = "Invalid FETCH modifiers";
	if (list->type != IMAP_ARG_LIST || list->span == 0)
		return -1;
	end = imap_arg_list_end(list);
	for (a = list + 1; a < end; a = imap_arg_next(a)) {
		if (imap_arg_is_atom(a, "CHANGEDSINCE") && !m->changedsince) {
			a = imap_arg_next(a);
			if (a >= end || imap_modseq_parse(a, &m->since) < 0)
				return -1;
			m->changedsince = true;
		} else if (imap_arg_is_atom(a, "VANISHED") && !m->vanished) {
			m->vanished = true;
		} else {
			return -1;
		}
	}
	if (m->vanished && !m->changedsince) {
		*error_r = "VANISHED needs CHANGEDSINCE";
		return -1;
	}
	return 0;
}

int
imap_store_mods_parse(const struct imap_arg *list, uint64_t *since_r,
    const char **error_r)
{
	const struct imap_arg *a;

	*error_r = "Invalid STORE modifiers";
	if (list->type != IMAP_ARG_LIST || list->span != 2)
		return -1;
	a = list + 1;
	if (!imap_arg_is_atom(a, "UNCHANGEDSINCE") ||
	    imap_modseq_parse(a + 1, since_r) < 0)
		return -1;
	return 0;
}
