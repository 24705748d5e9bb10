/* dsn: the text of delivery status notifications (RFC 3464, RFC 3462's
   multipart/report, RFC 3834's Auto-Submitted) and the retry schedule.
   Everything that comes from a peer (addresses, replies, ENVID) is written
   through one sanitiser, so a report can never gain a header or a line. */
#include "dsn.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Appends s with control bytes (CR, LF, TAB...) as '?' and at most max
   bytes, so peer text stays on its line. */
static void
put_clean(struct buf *out, const char *s, size_t max)
{
	size_t n = 0;

	for (; s != NULL && *s != '\0' && n < max; s++, n++)
		buf_putc(out, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

/* An address field's value: "rfc822; addr", or for a non-ASCII address
   RFC 6533's "utf-8; " form with each non-ASCII character as \x{HEX} (so
   message/delivery-status stays 7-bit). */
static void
put_addr(struct buf *out, const char *a)
{
	const unsigned char *p = (const unsigned char *)a;
	bool ascii = true;

	for (const unsigned char *q = p; *q != '\0'; q++)
		if (*q >= 0x80)
			ascii = false;
	if (ascii) {
		buf_puts(out, "rfc822; ");
		put_clean(out, a, 320);
		return;
	}
	buf_puts(out, "utf-8; ");
	for (size_t n = 0; *p != '\0' && n < 320; n++) {
		uint32_t cp = *p;
		int more = cp >= 0xf0 ? 3 : cp >= 0xe0 ? 2 : cp >= 0xc0 ? 1 : 0;

		if (cp < 0x80) {
			buf_putc(out, cp < 0x20 || cp == 0x7f ? '?' : (char)cp);
			p++;
			continue;
		}
		cp &= more == 3 ? 0x07 : more == 2 ? 0x0f : 0x1f;
		p++;
		for (int i = 0; i < more && (*p & 0xc0) == 0x80; i++, p++)
			cp = (cp << 6) | (*p & 0x3f);
		buf_printf(out, "\\x{%X}", (unsigned)cp);
	}
}

static const char *
action_name(enum dsn_action a)
{
	switch (a) {
	case DSN_ACT_FAILED: return "failed";
	case DSN_ACT_DELAYED: return "delayed";
	case DSN_ACT_DELIVERED: return "delivered";
	case DSN_ACT_RELAYED: return "relayed";
	}
	return "failed";
}

static enum dsn_action
worst(const struct dsn_report *rep)
{
	enum dsn_action w = DSN_ACT_DELIVERED;
	bool relayed = false;

	for (size_t i = 0; i < rep->nrcpts; i++) {
		enum dsn_action a = rep->rcpts[i].action;

		if (a == DSN_ACT_FAILED)
			return DSN_ACT_FAILED;
		if (a == DSN_ACT_DELAYED)
			w = DSN_ACT_DELAYED;
		if (a == DSN_ACT_RELAYED)
			relayed = true;
	}
	return w == DSN_ACT_DELIVERED && relayed ? DSN_ACT_RELAYED : w;
}

size_t
dsn_header_end(const char *msg, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (msg[i] != '\n')
			continue;
		if (i + 1 < len && msg[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && msg[i + 1] == '\r' && msg[i + 2] == '\n')
			return i + 3;
	}
	return len;
}

/* Appends msg[0..len) with every line ending in CRLF (a bare LF gains its
   CR) and a final CRLF if it lacks one. */
static void
put_crlf_text(struct buf *out, const char *msg, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (msg[i] != '\n')
			continue;
		buf_append(out, msg + start, i - start);
		if (i == 0 || msg[i - 1] != '\r')
			buf_putc(out, '\r');
		buf_putc(out, '\n');
		start = i + 1;
	}
	if (start < len) {
		buf_append(out, msg + start, len - start);
		buf_puts(out, "\r\n");
	}
}

static bool
has_8bit(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

static void
put_date(struct buf *out, const char *field, time_t t)
{
	char d[64];

	date_rfc5322(t, d, sizeof(d));
	buf_printf(out, "%s: %s\r\n", field, d);
}

static void
human_part(struct buf *out, const struct dsn_report *rep, enum dsn_action w)
{
	buf_puts(out, "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Description: Notification\r\n\r\n");
	buf_printf(out, "This is the mail system at host %s.\r\n\r\n",
	    rep->hostname);
	switch (w) {
	case DSN_ACT_FAILED:
		buf_puts(out, "I'm sorry to have to inform you that your message "
		    "could not\r\nbe delivered to one or more recipients. "
		    "It's attached below.\r\n");
		break;
	case DSN_ACT_DELAYED:
		buf_puts(out, "####################################################"
		    "#################\r\n# THIS IS A WARNING ONLY.  YOU DO NOT "
		    "NEED TO RESEND YOUR MESSAGE. #\r\n#########################"
		    "############################################\r\n\r\n"
		    "Your message could not be delivered yet to one or more "
		    "recipients.\r\nThe mail system will keep trying.\r\n");
		break;
	default:
		buf_puts(out, "Your message was successfully delivered to the "
		    "destination(s)\r\nlisted below. If the message was "
		    "delivered to a server that does\r\nnot report delivery "
		    "status, it says \"relayed\".\r\n");
		break;
	}
	buf_puts(out, "\r\n");
	for (size_t i = 0; i < rep->nrcpts; i++) {
		const struct dsn_rcpt *r = &rep->rcpts[i];

		buf_puts(out, "<");
		put_clean(out, r->address, 320);
		buf_printf(out, ">: %s", action_name(r->action));
		if (r->remote_mta != NULL) {
			buf_puts(out, " (host ");
			put_clean(out, r->remote_mta, 260);
			buf_puts(out, ")");
		}
		buf_puts(out, "\r\n");
		if (r->diagnostic != NULL) {
			buf_puts(out, "    ");
			put_clean(out, r->diagnostic, 900);
			buf_puts(out, "\r\n");
		}
	}
}

static void
status_part(struct buf *out, const struct dsn_report *rep)
{
	buf_puts(out, "Content-Type: message/delivery-status\r\n"
	    "Content-Description: Delivery report\r\n\r\n");
	buf_puts(out, "Reporting-MTA: dns; ");
	put_clean(out, rep->hostname, 255);
	buf_puts(out, "\r\n");
	if (rep->envid != NULL && rep->envid[0] != '\0') {
		buf_puts(out, "Original-Envelope-Id: ");
		put_clean(out, rep->envid, 100);
		buf_puts(out, "\r\n");
	}
	put_date(out, "Arrival-Date", rep->arrival);
	for (size_t i = 0; i < rep->nrcpts; i++) {
		const struct dsn_rcpt *r = &rep->rcpts[i];

		buf_puts(out, "\r\n");
		if (r->orcpt != NULL && strchr(r->orcpt, ';') != NULL) {
			buf_puts(out, "Original-Recipient: ");
			put_clean(out, r->orcpt, 500);
			buf_puts(out, "\r\n");
		}
		buf_puts(out, "Final-Recipient: ");
		put_addr(out, r->address);
		buf_printf(out, "\r\nAction: %s\r\nStatus: ",
		    action_name(r->action));
		put_clean(out, r->status != NULL ? r->status :
		    r->action == DSN_ACT_FAILED ? "5.0.0" :
		    r->action == DSN_ACT_DELAYED ? "4.0.0" : "2.0.0", 16);
		buf_puts(out, "\r\n");
		if (r->remote_mta != NULL) {
			buf_puts(out, "Remote-MTA: dns; ");
			put_clean(out, r->remote_mta, 260);
			buf_puts(out, "\r\n");
		}
		if (r->diagnostic != NULL) {
			buf_puts(out, r->diag_smtp ? "Diagnostic-Code: smtp; " :
			    "Diagnostic-Code: X-Postroom; ");
			put_clean(out, r->diagnostic, 900);
			buf_puts(out, "\r\n");
		}
		if (r->last_attempt != 0)
			put_date(out, "Last-Attempt-Date", r->last_attempt);
		if (r->action == DSN_ACT_DELAYED && r->retry_until != 0)
			put_date(out, "Will-Retry-Until", r->retry_until);
	}
}

void
dsn_build(const struct dsn_report *rep, struct buf *out)
{
	enum dsn_action w = worst(rep);
	char boundary[64], msgid[48];
	const unsigned char *rnd = rep->rand16;
	bool full;
	size_t hend = dsn_header_end(rep->msg, rep->msg_len);

	snprintf(boundary, sizeof(boundary),
	    "%02x%02x%02x%02x%02x%02x%02x%02x/%s", rnd[0], rnd[1], rnd[2], rnd[3],
	    rnd[4], rnd[5], rnd[6], rnd[7], "report");
	snprintf(msgid, sizeof(msgid), "%lld.%02x%02x%02x%02x%02x%02x%02x%02x",
	    (long long)rep->now, rnd[8], rnd[9], rnd[10], rnd[11], rnd[12],
	    rnd[13], rnd[14], rnd[15]);
	full = rep->ret == DSN_RET_FULL ||
	    (rep->ret == DSN_RET_DEFAULT && w == DSN_ACT_FAILED);
	if (rep->msg_len > rep->full_max)
		full = false;

	buf_puts(out, "From: Mail Delivery System <MAILER-DAEMON@");
	put_clean(out, rep->hostname, 255);
	buf_puts(out, ">\r\nTo: <");
	put_clean(out, rep->to, 320);
	buf_puts(out, ">\r\nSubject: ");
	buf_puts(out, w == DSN_ACT_FAILED ? "Undelivered Mail Returned to Sender" :
	    w == DSN_ACT_DELAYED ? "Delayed Mail (still being retried)" :
	    "Successful Mail Delivery Report");
	buf_puts(out, "\r\n");
	put_date(out, "Date", rep->now);
	buf_printf(out, "Message-ID: <%s@", msgid);
	put_clean(out, rep->hostname, 255);
	buf_puts(out, ">\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	buf_printf(out, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary);
	buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n\r\n"
	    "This is a MIME-encapsulated message.\r\n\r\n");

	buf_printf(out, "--%s\r\n", boundary);
	human_part(out, rep, w);
	buf_printf(out, "\r\n--%s\r\n", boundary);
	status_part(out, rep);
	buf_printf(out, "\r\n--%s\r\n", boundary);
	if (full) {
		buf_printf(out, "Content-Type: message/rfc822\r\n"
		    "Content-Description: Undelivered Message\r\n%s\r\n",
		    has_8bit(rep->msg, rep->msg_len) ?
		    "Content-Transfer-Encoding: 8bit\r\n" : "");
		put_crlf_text(out, rep->msg, rep->msg_len);
	} else {
		buf_printf(out, "Content-Type: text/rfc822-headers\r\n"
		    "Content-Description: Message Headers\r\n%s\r\n",
		    has_8bit(rep->msg, hend) ?
		    "Content-Transfer-Encoding: 8bit\r\n" : "");
		put_crlf_text(out, rep->msg, hend);
	}
	buf_printf(out, "\r\n--%s--\r\n", boundary);
}

double
dsn_retry_delay(unsigned attempts, double age, double retry_min,
    double retry_max, double jitter01)
{
	double d = retry_min;

	for (unsigned i = 1; i < attempts && d < retry_max; i++)
		d *= 2;
	if (d < age)
		d = age;
	if (d > retry_max)
		d = retry_max;
	d -= d * 0.1 * jitter01;
	if (d < retry_min)
		d = retry_min;
	return d;
}
