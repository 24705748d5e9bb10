/* compress: RFC 4978 COMPRESS=DEFLATE for conn. Raw deflate (no zlib
   header) both ways, sitting inside TLS: app data -> deflate -> TLS on the
   way out, TLS -> inflate -> input buffer on the way in. Output is
   Z_SYNC_FLUSHed at the end of each write batch so the peer can always
   decode every reply it has received. */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "conn_private.h"
#include "util.h"

/* Compressed bytes read from the socket and not yet inflated. */
#define RAW_CAP 4096
/* Inflate must accept any window the peer uses (32 KiB). Our own deflate
   uses a smaller window and hash: every inflater decodes it, and it costs
   ~50 KiB per connection instead of ~270 KiB, which matters because
   Thunderbird compresses every connection. */
#define DEFLATE_WBITS    (-12)
#define DEFLATE_MEMLEVEL 6

struct conn_z {
	z_stream in, out;
	char *raw;
	uint32_t raw_start, raw_end, raw_cap;
	bool in_more;       /* inflate filled its output: it may have more */
	bool dirty;         /* deflated since the last sync flush */
};

int
conn_start_compress(struct conn *c)
{
	struct conn_z *z;
	uint32_t n;

	if (c->z != NULL || c->phase != PH_OPEN)
		return -1;
	z = xcalloc(1, sizeof(*z));
	if (inflateInit2(&z->in, -15) != Z_OK) {
		free(z);
		return -1;
	}
	if (deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
	    DEFLATE_WBITS, DEFLATE_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
		inflateEnd(&z->in);
		free(z);
		return -1;
	}
	/* What the peer sent after the COMPRESS command is already
	   compressed: move it in front of the inflater. */
	n = c->in_end - c->in_start;
	if (n > 0) {
		z->raw_cap = n > RAW_CAP ? n : RAW_CAP;
		z->raw = xmalloc(z->raw_cap);
		memcpy(z->raw, c->in + c->in_start, n);
		z->raw_end = n;
		c->consumed += n;
		c->in_start = c->in_end = 0;
	}
	c->z = z;
	return 0;
}

bool
conn_is_compressed(const struct conn *c)
{
	return c->z != NULL;
}

void
z_conn_free(struct conn *c)
{
	struct conn_z *z = c->z;

	inflateEnd(&z->in);
	deflateEnd(&z->out);
	free(z->raw);
	free(z);
	c->z = NULL;
}

/* Deflates with the given flush mode until zlib has nothing more to say
   for the input given. */
static void
z_deflate(struct conn *c, int flush)
{
	z_stream *s = &c->z->out;

	do {
		conn_out_reserve(c, 1024 + s->avail_in / 2);
		s->next_out = (Bytef *)c->out + c->out_end;
		s->avail_out = (uInt)(c->out_cap - c->out_end);
		(void)deflate(s, flush);
		c->out_end = c->out_cap - s->avail_out;
	} while (s->avail_in > 0 || s->avail_out == 0);
}

void
z_conn_write(struct conn *c, const void *p, size_t len)
{
	z_stream *s = &c->z->out;

	while (len > 0) {
		size_t chunk = len > (1u << 30) ? (1u << 30) : len;

		s->next_in = (Bytef *)p;
		s->avail_in = (uInt)chunk;
		z_deflate(c, Z_NO_FLUSH);
		p = (const char *)p + chunk;
		len -= chunk;
	}
	c->z->dirty = true;
}

void
z_conn_flush(struct conn *c)
{
	if (!c->z->dirty)
		return;
	c->z->out.next_in = NULL;
	c->z->out.avail_in = 0;
	z_deflate(c, Z_SYNC_FLUSH);
	c->z->dirty = false;
}

size_t
z_conn_raw_space(struct conn *c, char **p_r)
{
	struct conn_z *z = c->z;
	uint32_t used = z->raw_end - z->raw_start;

	if (p_r == NULL)
		return z->raw == NULL || used < z->raw_cap ? 1 : 0;
	if (z->raw == NULL) {
		z->raw_cap = RAW_CAP;
		z->raw = xmalloc(z->raw_cap);
		z->raw_start = z->raw_end = 0;
	}
	if (z->raw_start > 0) {
		memmove(z->raw, z->raw + z->raw_start, used);
		z->raw_start = 0;
		z->raw_end = used;
	}
	*p_r = z->raw + z->raw_end;
	return z->raw_cap - z->raw_end;
}

void
z_conn_raw_added(struct conn *c, size_t n)
{
	c->z->raw_end += (uint32_t)n;
}

int
z_conn_inflate(struct conn *c)
{
	struct conn_z *z = c->z;
	size_t room, used, made;
	char *p;
	int r;

	while (z->raw_end > z->raw_start || z->in_more) {
		room = conn_in_space(c, &p);
		if (room == 0)
			break;
		z->in.next_in = (Bytef *)z->raw + z->raw_start;
		z->in.avail_in = z->raw_end - z->raw_start;
		z->in.next_out = (Bytef *)p;
		z->in.avail_out = (uInt)room;
		r = inflate(&z->in, Z_SYNC_FLUSH);
		used = (z->raw_end - z->raw_start) - z->in.avail_in;
		made = room - z->in.avail_out;
		z->raw_start += (uint32_t)used;
		if (z->raw_start == z->raw_end)
			z->raw_start = z->raw_end = 0;
		c->in_end += (uint32_t)made;
		/* RFC 4978 streams never end; an end or garbage is fatal. */
		if (r != Z_OK && r != Z_BUF_ERROR)
			return -1;
		z->in_more = z->in.avail_out == 0;
		if (used == 0 && made == 0) {
			z->in_more = false;
			break;
		}
	}
	return 0;
}

bool
z_conn_has_pending(const struct conn *c)
{
	return c->z != NULL && (c->z->raw_end > c->z->raw_start ||
	    c->z->in_more);
}

void
z_conn_trim(struct conn *c)
{
	struct conn_z *z = c->z;

	if (z->raw != NULL && z->raw_end == z->raw_start) {
		free(z->raw);
		z->raw = NULL;
		z->raw_start = z->raw_end = z->raw_cap = 0;
	}
}
