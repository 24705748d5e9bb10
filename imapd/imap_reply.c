/* imap_reply: response formatting, output only. Every reply line goes out
   through these helpers (bounded formatting; peer strings as quoted
   strings or literals). No mailbox sync happens here: the dispatcher
   (imap_cmd_reply) syncs before a command's tagged line. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#include "imap_session.h"
#include "imap_utf7.h"

static const char *const status_names[] = { "OK", "NO", "BAD" };

void
imap_reply_tagged(struct imap_session *s, enum imap_status st,
    const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (st == IMAP_BAD)
		s->bad_count++;
	else
		s->bad_count = 0;
	conn_printf(s->base.c, "%s %s %s\r\n", s->cmd != NULL ? s->cmd->tag : "*",
	    status_names[st], text);
}

void
imap_reply_untagged(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	conn_write(s->base.c, "* ", 2);
	va_start(ap, fmt);
	conn_vprintf(s->base.c, fmt, ap);
	va_end(ap);
	conn_write(s->base.c, "\r\n", 2);
}

void
imap_reply_continue(struct imap_session *s, const char *text)
{
	conn_printf(s->base.c, "+ %s\r\n", text);
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

void
imap_send_buf(struct imap_session *s, struct buf *b)
{
	if (b->len)
		conn_write(s->base.c, b->data, b->len);
	buf_reset(b);
}
