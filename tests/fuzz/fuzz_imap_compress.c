/* Fuzz target: the COMPRESS=DEFLATE layer of common/compress.c that imapd
   turns on with conn_start_compress(). The first byte picks a mode and
   chunking; the rest is either
   - raw bytes fed to the inflater as if they came off the socket (garbage,
     truncated and hostile streams must fail cleanly or inflate within the
     input buffer's bound), or
   - a payload deflated here with zlib (mixed sync/partial/full/no flushes)
     and fed in odd chunks, with z_conn_trim() (what IDLE's conn_trim does)
     between chunks: what comes out must equal the payload; and the same
     payload deflated by z_conn_write/z_conn_flush across trims must
     inflate back to itself.
   The conn is a bare struct on the stack: only the fields compress.c and
   the buffer helpers use; no socket, no loop (depth 1 keeps conn_consume
   from kicking the loop). */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "conn_private.h"

struct sink {
	unsigned char *p;
	size_t len, cap;
};

static void
sink_add(struct sink *s, const void *p, size_t n)
{
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2 + 64;
		s->p = realloc(s->p, s->cap);
		if (s->p == NULL)
			abort();
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
}

/* Moves everything inflated so far out of the conn's input buffer. */
static void
drain_in(struct conn *c, struct sink *out)
{
	const char *p;
	size_t n = conn_peek(c, &p);

	if (n > 0) {
		if (out != NULL)
			sink_add(out, p, n);
		conn_consume(c, n);
	}
}

/* Feeds src[0..len) as socket bytes in chunks of `chunk`. Returns -1 once
   the inflater reports a corrupt stream. */
static int
feed(struct conn *c, const unsigned char *src, size_t len, size_t chunk,
    bool trim, struct sink *out)
{
	size_t off = 0;
	uint64_t before;

	while (off < len || z_conn_has_pending(c)) {
		char *p;
		size_t room = z_conn_raw_space(c, &p), n = len - off;

		if (n > chunk)
			n = chunk;
		if (n > room)
			n = room;
		memcpy(p, src + off, n);
		z_conn_raw_added(c, n);
		off += n;
		before = c->consumed;
		if (z_conn_inflate(c) < 0)
			return -1;
		drain_in(c, out);
		if (trim)
			z_conn_trim(c);
		/* nothing fed and nothing came out: the inflater is stuck
		   waiting for more than the stream holds */
		if (n == 0 && c->consumed == before)
			break;
	}
	return 0;
}

static void
conn_setup(struct conn *c)
{
	memset(c, 0, sizeof(*c));
	c->phase = PH_OPEN;
	c->depth = 1;
	c->line_limit = 65536;
	if (conn_start_compress(c) < 0)
		abort();
}

static void
conn_teardown(struct conn *c)
{
	z_conn_free(c);
	free(c->in);
	free(c->out);
}

/* zlib as the peer: deflates payload with a flush mode per chunk. */
static void
peer_deflate(const unsigned char *pl, size_t len, size_t chunk,
    unsigned flushes, struct sink *out)
{
	static const int modes[4] = { Z_SYNC_FLUSH, Z_PARTIAL_FLUSH,
		Z_NO_FLUSH, Z_FULL_FLUSH };
	unsigned char buf[4096];
	z_stream z;
	size_t off = 0;
	unsigned k = 0;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	do {
		size_t n = len - off > chunk ? chunk : len - off;
		int flush = off + n == len ? Z_SYNC_FLUSH :
		    modes[(flushes >> (2 * (k++ % 4))) & 3];

		z.next_in = (Bytef *)pl + off;
		z.avail_in = (uInt)n;
		do {
			z.next_out = buf;
			z.avail_out = sizeof(buf);
			(void)deflate(&z, flush);
			sink_add(out, buf, sizeof(buf) - z.avail_out);
		} while (z.avail_out == 0);
		off += n;
	} while (off < len);
	deflateEnd(&z);
}

/* Our deflater (z_conn_write) -> zlib inflate: must give payload back. */
static void
check_deflate(const unsigned char *pl, size_t len, size_t chunk, bool trim)
{
	struct conn c;
	struct sink got = { 0 };
	unsigned char buf[4096];
	z_stream z;
	size_t off = 0;

	conn_setup(&c);
	while (off < len) {
		size_t n = len - off > chunk ? chunk : len - off;

		z_conn_write(&c, pl + off, n);
		z_conn_flush(&c);
		off += n;
		if (trim)
			z_conn_trim(&c);
	}
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -15) != Z_OK)
		abort();
	z.next_in = (Bytef *)c.out + c.out_start;
	z.avail_in = (uInt)(c.out_end - c.out_start);
	do {
		int r;

		z.next_out = buf;
		z.avail_out = sizeof(buf);
		r = inflate(&z, Z_SYNC_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR)
			abort();
		sink_add(&got, buf, sizeof(buf) - z.avail_out);
	} while (z.avail_out == 0);
	if (got.len != len || (len > 0 && memcmp(got.p, pl, len) != 0))
		abort();
	inflateEnd(&z);
	free(got.p);
	conn_teardown(&c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn c;
	struct sink wire = { 0 }, got = { 0 };
	unsigned mode, flushes;
	size_t chunk;
	bool trim;

	if (size < 2)
		return 0;
	mode = data[0];
	flushes = data[1];
	data += 2;
	size -= 2;
	chunk = ((mode >> 2) & 31) * 7 + 1;
	trim = (mode & 2) != 0;

	conn_setup(&c);
	if (!(mode & 1)) {
		/* hostile bytes straight off the socket */
		(void)feed(&c, data, size, chunk, trim, NULL);
		conn_teardown(&c);
		return 0;
	}
	peer_deflate(data, size, chunk * 3 + 1, flushes, &wire);
	if (feed(&c, wire.p, wire.len, chunk, trim, &got) < 0)
		abort();                /* zlib's own stream must inflate */
	if (got.len != size || (size > 0 && memcmp(got.p, data, size) != 0))
		abort();                /* and give the payload back exactly */
	conn_teardown(&c);
	free(wire.p);
	free(got.p);
	check_deflate(data, size, chunk * 5 + 1, trim);
	return 0;
}
