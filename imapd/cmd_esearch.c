/* cmd_esearch: the session side of SEARCHRES (RFC 5182): the result saved
   by SEARCH RETURN (SAVE), kept as UIDs so that it survives expunges and
   appends and can be read back as MSNs or UIDs by "$". The ESEARCH reply
   itself is built by the pure imap_esearch.c. */
#include <stdlib.h>
#include <string.h>

#include "imap_ext2.h"

void
imap_searchres_reset(struct imap_session *s)
{
	struct imap_ext2 *e;

	if (s->ext == NULL)
		return;
	e = imap_ext2_get(s);
	free(e->saved);
	e->saved = NULL;
	e->nsaved = 0;
}

void
imap_searchres_save(struct imap_session *s, const uint32_t *uids, size_t n)
{
	struct imap_ext2 *e = imap_ext2_get(s);

	free(e->saved);
	e->saved = NULL;
	e->nsaved = n;
	if (n > 0) {
		e->saved = xmalloc(n * sizeof(*uids));
		memcpy(e->saved, uids, n * sizeof(*uids));
	}
}

void
imap_searchres_get(struct imap_session *s, const uint32_t **uids_r,
    size_t *n_r)
{
	struct imap_ext2 *e = imap_ext2_get(s);

	*uids_r = e->saved;
	*n_r = e->nsaved;
}

bool
imap_arg_is_saved(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM && a->len == 1 && a->str[0] == '$';
}
