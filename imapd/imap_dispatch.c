/* imap_dispatch: the static command table. The session checks the state
   mask and the UID prefix before calling a handler, so handlers never
   repeat those checks. Extensions add their lines here. */
#include <strings.h>

#include "imap_commands.h"
#include "imap_ext.h"

static const struct imap_cmd_def cmds[] = {
	/* name          states            flags                  handler */
	{ "CAPABILITY",   IMAP_ST_ANY,      0,                     imap_cmd_capability },
	{ "NOOP",         IMAP_ST_ANY,      0,                     imap_cmd_noop },
	{ "LOGOUT",       IMAP_ST_ANY,      IMAP_CMDF_NO_SYNC,     imap_cmd_logout },
	{ "STARTTLS",     IMAP_ST_NOT_AUTH, 0,                     imap_cmd_starttls },
	{ "LOGIN",        IMAP_ST_NOT_AUTH, 0,                     imap_cmd_login },
	{ "AUTHENTICATE", IMAP_ST_NOT_AUTH, 0,                     imap_cmd_authenticate },
	{ "SELECT",       IMAP_ST_AUTHED,   IMAP_CMDF_NO_SYNC,     imap_cmd_select },
	{ "EXAMINE",      IMAP_ST_AUTHED,   IMAP_CMDF_NO_SYNC,     imap_cmd_examine },
	{ "CREATE",       IMAP_ST_AUTHED,   0,                     imap_cmd_create },
	{ "DELETE",       IMAP_ST_AUTHED,   0,                     imap_cmd_delete },
	{ "RENAME",       IMAP_ST_AUTHED,   0,                     imap_cmd_rename },
	{ "SUBSCRIBE",    IMAP_ST_AUTHED,   0,                     imap_cmd_subscribe },
	{ "UNSUBSCRIBE",  IMAP_ST_AUTHED,   0,                     imap_cmd_unsubscribe },
	{ "LIST",         IMAP_ST_AUTHED,   0,                     imap_cmd_list },
	{ "LSUB",         IMAP_ST_AUTHED,   0,                     imap_cmd_lsub },
	{ "STATUS",       IMAP_ST_AUTHED,   0,                     imap_cmd_status },
	{ "APPEND",       IMAP_ST_AUTHED,   0,                     imap_cmd_append },
	{ "CHECK",        IMAP_ST_SELECTED, 0,                     imap_cmd_check },
	{ "CLOSE",        IMAP_ST_SELECTED, IMAP_CMDF_NO_SYNC,     imap_cmd_close },
	{ "EXPUNGE",      IMAP_ST_SELECTED, IMAP_CMDF_UID,         imap_cmd_expunge_any },
	{ "SEARCH",       IMAP_ST_SELECTED, IMAP_CMDF_UID | IMAP_CMDF_NO_EXPUNGE, imap_cmd_search },
	{ "FETCH",        IMAP_ST_SELECTED, IMAP_CMDF_UID | IMAP_CMDF_NO_EXPUNGE, imap_cmd_fetch },
	{ "STORE",        IMAP_ST_SELECTED, IMAP_CMDF_UID | IMAP_CMDF_NO_EXPUNGE, imap_cmd_store },
	{ "COPY",         IMAP_ST_SELECTED, IMAP_CMDF_UID,         imap_cmd_copy },
	/* extensions (imap_ext.h) */
	{ "IDLE",         IMAP_ST_AUTHED,   0,                     imap_cmd_idle },
	{ "NAMESPACE",    IMAP_ST_AUTHED,   0,                     imap_cmd_namespace },
	{ "ID",           IMAP_ST_ANY,      0,                     imap_cmd_id },
	{ "ENABLE",       IMAP_ST_AUTH,     0,                     imap_cmd_enable },
	{ "UNSELECT",     IMAP_ST_SELECTED, IMAP_CMDF_NO_SYNC,     imap_cmd_unselect },
	{ "MOVE",         IMAP_ST_SELECTED, IMAP_CMDF_UID,         imap_cmd_move },
	{ "COMPRESS",     IMAP_ST_AUTHED,   0,                     imap_cmd_compress },
};

const struct imap_cmd_def *
imap_cmd_lookup(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcasecmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}
