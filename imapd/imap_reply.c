/* imap_reply: response formatting. Every reply line goes out through these
   helpers (bounded formatting; peer strings as quoted strings or literals),
   and store errors map to IMAP response codes in exactly one place. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#include "imap_session.h"
#include "imap_utf7.h"

static void
sync_before_tagged(struct imap_session *s)
{
	unsigned f;

	if (s->sel == NULL || s->cur == NULL)
		return;
	f = s->cur->flags;
	if (f & IMAP_CMDF_NO_SYNC)
		return;
	imap_view_sync(s, !(f & IMAP_CMDF_NO_EXPUNGE) || s->uid_cmd);
}

void
imap_reply_tagged(struct imap_session *s, const char *status,
    const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	sync_before_tagged(s);
	if (strcmp(status, "BAD") == 0)
		s->bad_count++;
	else
		s->bad_count = 0;
	conn_printf(s->c, "%s %s %s\r\n", s->tag ? s->tag : "*", status, text);
}

void
imap_reply_untagged(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	conn_write(s->c, "* ", 2);
	va_start(ap, fmt);
	conn_vprintf(s->c, fmt, ap);
	va_end(ap);
	conn_write(s->c, "\r\n", 2);
}

void
imap_reply_continue(struct imap_session *s, const char *text)
{
	conn_printf(s->c, "+ %s\r\n", text);
}

void
imap_reply_store_err(struct imap_session *s, enum store_err e,
    const char *what)
{
	switch (e) {
	case STORE_OK:
		imap_reply_tagged(s, "OK", "%s", what);
		break;
	case STORE_ENOTFOUND:
		imap_reply_tagged(s, "NO", "[NONEXISTENT] %s: no such mailbox",
		    what);
		break;
	case STORE_EEXISTS:
		imap_reply_tagged(s, "NO", "[ALREADYEXISTS] %s: already exists",
		    what);
		break;
	case STORE_EPERM:
		imap_reply_tagged(s, "NO", "[CANNOT] %s: not allowed", what);
		break;
	case STORE_EQUOTA:
		imap_reply_tagged(s, "NO", "[OVERQUOTA] %s: quota exceeded",
		    what);
		break;
	case STORE_ELIMIT:
		imap_reply_tagged(s, "NO", "[LIMIT] %s: limit reached", what);
		break;
	case STORE_ETEMP:
		imap_reply_tagged(s, "NO", "[UNAVAILABLE] %s: try again later",
		    what);
		break;
	default:
		log_warnx("%s store error=%s detail=%s", conn_id(s->c),
		    store_err_str(e), store_last_error());
		imap_reply_tagged(s, "NO", "[SERVERBUG] %s: internal error",
		    what);
		break;
	}
}

void
imap_buf_string(struct buf *b, const char *str, size_t len)
{
	size_t i;
	bool lit = len > 1024;

	for (i = 0; i < len && !lit; i++) {
		unsigned char c = (unsigned char)str[i];

		if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
			lit = true;
	}
	if (lit) {
		buf_printf(b, "{%zu}\r\n", len);
		buf_append(b, str, len);
		return;
	}
	buf_putc(b, '"');
	for (i = 0; i < len; i++) {
		if (str[i] == '"' || str[i] == '\\')
			buf_putc(b, '\\');
		buf_putc(b, str[i]);
	}
	buf_putc(b, '"');
}

void
imap_buf_mailbox(struct buf *b, const char *utf8_name)
{
	struct buf t;

	buf_init(&t);
	if (strcasecmp(utf8_name, "INBOX") == 0)
		buf_puts(&t, "INBOX");
	else if (imap_utf8_to_utf7(utf8_name, &t) < 0) {
		buf_reset(&t);
		buf_puts(&t, utf8_name);    /* store names are UTF-8: not reached */
	}
	imap_buf_string(b, t.data ? t.data : "", t.len);
	buf_free(&t);
}

static const char *const sysflags[] = { "\\Seen", "\\Answered", "\\Flagged",
	"\\Deleted", "\\Draft" };

void
imap_buf_flags(struct buf *b, const struct imap_view *v, uint32_t flags,
    uint32_t keywords)
{
	bool first = true;
	unsigned i;

	buf_putc(b, '(');
	for (i = 0; i < 5; i++) {
		if (flags & (1u << i)) {
			if (!first)
				buf_putc(b, ' ');
			buf_puts(b, sysflags[i]);
			first = false;
		}
	}
	if (flags & IMAP_VF_RECENT) {
		if (!first)
			buf_putc(b, ' ');
		buf_puts(b, "\\Recent");
		first = false;
	}
	for (i = 0; v != NULL && i < v->mb.nkeywords && i < 32; i++) {
		if (keywords & (1u << i)) {
			if (!first)
				buf_putc(b, ' ');
			buf_puts(b, v->mb.keywords[i]);
			first = false;
		}
	}
	buf_putc(b, ')');
}

void
imap_send_buf(struct imap_session *s, struct buf *b)
{
	if (b->len)
		conn_write(s->c, b->data, b->len);
	buf_reset(b);
}
