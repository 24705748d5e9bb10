/* milter_codec: encoders for the milter commands an MTA sends and a
   bounded decoder of a filter's replies (Sendmail milter protocol
   version 6). Pure. */
#include <string.h>

#include "milter_codec.h"

static void
put32(struct buf *b, uint32_t v)
{
	unsigned char x[4] = { (unsigned char)(v >> 24),
	    (unsigned char)(v >> 16), (unsigned char)(v >> 8),
	    (unsigned char)v };
	buf_append(b, x, 4);
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The packet header for a command with dlen bytes of data. */
static void
head(struct buf *b, char cmd, size_t dlen)
{
	put32(b, (uint32_t)(dlen + 1));
	buf_putc(b, cmd);
}

static void
putstr(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s) + 1);
}

void
milter_enc_optneg(struct buf *b, uint32_t version, uint32_t actions,
    uint32_t protocol)
{
	head(b, SMFIC_OPTNEG, 12);
	put32(b, version);
	put32(b, actions);
	put32(b, protocol);
}

void
milter_enc_macro(struct buf *b, char cmd, const char *const *names,
    const char *const *values, size_t n)
{
	size_t len = 1;

	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1 + strlen(values[i]) + 1;
	head(b, SMFIC_MACRO, len);
	buf_putc(b, cmd);
	for (size_t i = 0; i < n; i++) {
		putstr(b, names[i]);
		putstr(b, values[i]);
	}
}

void
milter_enc_connect(struct buf *b, const char *hostname, char family,
    uint16_t port, const char *addr)
{
	size_t len = strlen(hostname) + 1 + 1;

	if (addr != NULL)
		len += 2 + strlen(addr) + 1;
	head(b, SMFIC_CONNECT, len);
	putstr(b, hostname);
	if (addr == NULL) {
		buf_putc(b, 'U');
		return;
	}
	buf_putc(b, family);
	buf_putc(b, (char)(port >> 8));
	buf_putc(b, (char)(port & 0xff));
	putstr(b, addr);
}

void
milter_enc_helo(struct buf *b, const char *helo)
{
	head(b, SMFIC_HELO, strlen(helo) + 1);
	putstr(b, helo);
}

void
milter_enc_args(struct buf *b, char cmd, const char *const *args, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += strlen(args[i]) + 1;
	head(b, cmd, len);
	for (size_t i = 0; i < n; i++)
		putstr(b, args[i]);
}

void
milter_enc_header(struct buf *b, const char *name, const char *value)
{
	head(b, SMFIC_HEADER, strlen(name) + 1 + strlen(value) + 1);
	putstr(b, name);
	putstr(b, value);
}

void
milter_enc_body(struct buf *b, const void *p, size_t n)
{
	head(b, SMFIC_BODY, n);
	buf_append(b, p, n);
}

void
milter_enc_simple(struct buf *b, char cmd)
{
	head(b, cmd, 0);
}

int
milter_frame(const unsigned char *p, size_t len, size_t *used, char *cmd,
    const unsigned char **data, size_t *dlen)
{
	uint32_t n;

	if (len < 4)
		return 0;
	n = get32(p);
	if (n == 0 || n > MILTER_MAX_PACKET)
		return -1;
	if (len - 4 < n)
		return 0;
	*cmd = (char)p[4];
	*data = p + 5;
	*dlen = n - 1;
	*used = 4 + (size_t)n;
	return 1;
}

/* The NUL-terminated string at data[*off..dlen), or NULL. */
static const char *
take_str(const unsigned char *data, size_t dlen, size_t *off)
{
	const unsigned char *z;

	if (*off >= dlen)
		return NULL;
	z = memchr(data + *off, '\0', dlen - *off);
	if (z == NULL)
		return NULL;
	const char *s = (const char *)data + *off;
	*off = (size_t)(z - data) + 1;
	return s;
}

bool
milter_header_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 997)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 33 || c > 126 || c == ':')
			return false;
	}
	return true;
}

/* "4xx" or "5xx", then nothing, a space or a '-' continuation is not
   taken: one line of printable text (UTF-8 allowed), no CR/LF. */
static bool
replycode_ok(const char *t)
{
	if (t[0] != '4' && t[0] != '5')
		return false;
	if (t[1] < '0' || t[1] > '9' || t[2] < '0' || t[2] > '9')
		return false;
	if (t[3] != '\0' && t[3] != ' ')
		return false;
	for (const unsigned char *p = (const unsigned char *)t; *p; p++)
		if (*p < 32 || *p == 127)
			return false;
	return strlen(t) <= 480;
}

static bool
text_ok(const char *t)
{
	for (const unsigned char *p = (const unsigned char *)t; *p; p++)
		if (*p < 32 && *p != '\t')
			return false;
	return true;
}

int
milter_reply_parse(char cmd, const unsigned char *data, size_t dlen,
    struct milter_reply *out, const char **err)
{
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	out->cmd = cmd;
	switch (cmd) {
	case SMFIC_OPTNEG:
		if (dlen < 12) {
			*err = "short option negotiation";
			return -1;
		}
		out->type = MILTER_R_OPTNEG;
		out->version = get32(data);
		out->actions = get32(data + 4);
		out->protocol = get32(data + 8);
		return 0;
	case SMFIR_ACCEPT:
		out->type = MILTER_R_ACCEPT;
		return 0;
	case SMFIR_CONTINUE:
		out->type = MILTER_R_CONTINUE;
		return 0;
	case SMFIR_REJECT:
		out->type = MILTER_R_REJECT;
		return 0;
	case SMFIR_TEMPFAIL:
		out->type = MILTER_R_TEMPFAIL;
		return 0;
	case SMFIR_DISCARD:
		out->type = MILTER_R_DISCARD;
		return 0;
	case SMFIR_PROGRESS:
		out->type = MILTER_R_PROGRESS;
		return 0;
	case SMFIR_SKIP:
		out->type = MILTER_R_SKIP;
		return 0;
	case SMFIR_REPLYCODE:
		out->type = MILTER_R_REPLYCODE;
		if ((out->text = take_str(data, dlen, &off)) == NULL) {
			*err = "reply code without NUL";
			return -1;
		}
		if (!replycode_ok(out->text)) {
			*err = "reply code is not one 4xx/5xx line";
			return -1;
		}
		return 0;
	case SMFIR_QUARANTINE:
		out->type = MILTER_R_QUARANTINE;
		if ((out->text = take_str(data, dlen, &off)) == NULL) {
			*err = "quarantine reason without NUL";
			return -1;
		}
		if (!text_ok(out->text)) {
			*err = "quarantine reason with control bytes";
			return -1;
		}
		return 0;
	case SMFIR_ADDHEADER:
		out->type = MILTER_R_ADDHEADER;
		break;
	case SMFIR_CHGHEADER:
	case SMFIR_INSHEADER:
		out->type = cmd == SMFIR_CHGHEADER ? MILTER_R_CHGHEADER :
		    MILTER_R_INSHEADER;
		if (dlen < 4) {
			*err = "header change without index";
			return -1;
		}
		out->index = get32(data);
		off = 4;
		break;
	case SMFIR_ADDRCPT:
	case SMFIR_DELRCPT:
	case SMFIR_ADDRCPT_PAR:
	case SMFIR_REPLBODY:
	case SMFIR_CHGFROM:
	case SMFIR_SETSYMLIST:
	case SMFIR_SHUTDOWN:
	case SMFIR_CONN_FAIL:
		out->type = MILTER_R_OTHER;
		return 0;
	default:
		*err = "unknown reply";
		return -1;
	}
	/* A header: name and value. */
	out->name = take_str(data, dlen, &off);
	out->value = out->name != NULL ? take_str(data, dlen, &off) : NULL;
	if (out->value == NULL) {
		*err = "header reply without name and value";
		return -1;
	}
	if (!milter_header_name_ok(out->name)) {
		*err = "bad header name";
		return -1;
	}
	return 0;
}

void
milter_header_format(struct buf *b, const char *name, const char *value)
{
	const char *p = value;
	bool first = true;

	buf_puts(b, name);
	buf_putc(b, ':');
	while (*p != '\0' || first) {
		size_t n = strcspn(p, "\r\n");
		if (first) {
			if (n > 0 && p[0] != ' ' && p[0] != '\t')
				buf_putc(b, ' ');
			buf_append(b, p, n);
			first = false;
		} else if (n > 0) {
			buf_puts(b, "\r\n");
			if (p[0] != ' ' && p[0] != '\t')
				buf_putc(b, '\t');
			buf_append(b, p, n);
		}
		p += n;
		if (*p == '\r')
			p++;
		if (*p == '\n')
			p++;
	}
	buf_puts(b, "\r\n");
}
