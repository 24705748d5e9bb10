/* mime_dump: prints what mime_parse() computes for one message file, in
   the "imap.field: value" form of `doveadm fetch`, for compare_dovecot.py.
   A development tool; the unit tests do not use it. */
#include <stdio.h>
#include <stdlib.h>

#include "mime.h"

static void
field(const char *name, const struct buf *b)
{
	/* doveadm prints the lists without their outer parentheses */
	printf("%s: %.*s\n", name, (int)(b->len - 2), b->data + 1);
}

int
main(int argc, char **argv)
{
	struct mime_info info;
	struct buf msg;
	char chunk[65536];
	size_t n;
	FILE *f;

	if (argc != 2 || (f = fopen(argv[1], "rb")) == NULL) {
		fprintf(stderr, "usage: mime_dump FILE\n");
		return 2;
	}
	buf_init(&msg);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&msg, chunk, n);
	fclose(f);
	mime_parse(msg.data != NULL ? msg.data : "", msg.len, &info);
	field("imap.envelope", &info.envelope);
	field("imap.bodystructure", &info.bodystructure);
	field("imap.body", &info.body);
	mime_info_free(&info);
	buf_free(&msg);
	return 0;
}
