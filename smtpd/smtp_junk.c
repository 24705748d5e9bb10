/* smtp_junk: filing a received message as spam. A check (DMARC
   p=quarantine) or a milter's verdict marks the transaction with
   smtp_tx_set_junk; at commit the local recipients then get the message in
   their mailbox with the \Junk special-use attribute (RFC 6154), or in
   INBOX when they have none. Authenticated submission is never filed as
   spam: the mark is ignored for it. */
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include "smtp_session.h"

void
smtp_tx_set_junk(struct smtp_tx *tx, const char *why)
{
	if (tx == NULL || tx->junk)
		return;    /* the first reason is the one logged */
	tx->junk = true;
	str_copy(tx->junk_why, why != NULL && why[0] != '\0' ? why : "spam",
	    sizeof(tx->junk_why));
}

uint32_t
smtp_junk_mailbox(struct store *st, uint32_t user_id)
{
	struct store_mailbox *mbs = NULL;
	size_t n = 0;
	uint32_t id = 0;

	if (store_mailbox_list(st, user_id, &mbs, &n) != STORE_OK)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (mbs[i].special_use & STORE_SU_JUNK) {
			id = mbs[i].id;
			break;
		}
	}
	free(mbs);
	return id;
}
