/* Fuzz target for smtpd's pure parsers: the input is a stream of command
   lines; each goes through the command parser and, by verb, the path, EHLO
   and BDAT parsers. The whole input is also fed to the DATA reader in
   chunks whose sizes come from the input, checking it never writes past
   len + 1 and never consumes more than it was given. */
// LINK: smtpd/smtp_parse.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

static void
one_line(const char *p, size_t len)
{
	struct smtp_cmd cmd;
	struct smtp_path path;
	const char *err;
	char helo[256];
	uint64_t size;
	bool last;

	if (smtp_parse_command(p, len, &cmd, &err) < 0)
		return;
	switch (cmd.verb) {
	case SMTP_V_MAIL:
		(void)smtp_parse_path(cmd.args, cmd.args_len, true, false, &path,
		    &err);
		(void)smtp_parse_path_dsn(cmd.args, cmd.args_len, true, false,
		    true, &path, &err);
		break;
	case SMTP_V_RCPT:
		(void)smtp_parse_path(cmd.args, cmd.args_len, false, true, &path,
		    &err);
		(void)smtp_parse_path(cmd.args, cmd.args_len, false, false,
		    &path, &err);
		(void)smtp_parse_path_dsn(cmd.args, cmd.args_len, false, true,
		    true, &path, &err);
		break;
	case SMTP_V_EHLO:
	case SMTP_V_HELO:
		(void)smtp_parse_helo(cmd.args, cmd.args_len, helo, sizeof(helo),
		    &err);
		break;
	case SMTP_V_BDAT:
		(void)smtp_parse_bdat(cmd.args, cmd.args_len, &size, &last, &err);
		break;
	default:
		(void)smtp_parse_address(cmd.args, cmd.args_len, true, &path,
		    &err);
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t start = 0;
	struct smtp_dot dot;
	char *out;
	size_t pos = 0, step = size > 0 ? (size_t)(data[0] % 17) + 1 : 1;

	for (size_t i = 0; i <= size; i++) {
		if (i == size || p[i] == '\n') {
			size_t end = i;
			if (end > start && p[end - 1] == '\r')
				end--;
			one_line(p + start, end - start);
			start = i + 1;
		}
	}
	smtp_dot_init(&dot);
	while (pos < size) {
		size_t n = size - pos < step ? size - pos : step, o, used;
		int done;

		/* Exactly n + 1 bytes, so ASan catches any overrun. */
		out = malloc(n + 1);
		done = smtp_dot_feed(&dot, p + pos, n, out, &o, &used);
		if (o > n + 1 || used > n || (!done && used != n))
			abort();
		free(out);
		pos += used;
		if (done)
			smtp_dot_init(&dot);
	}
	return 0;
}
