/* compress: RFC 4978 COMPRESS=DEFLATE for conn. Raw deflate (no zlib
   header) both ways, sitting inside TLS: app data -> deflate -> TLS on the
   way out, TLS -> inflate -> input buffer on the way in. Output is
   Z_SYNC_FLUSHed at the end of each write batch so the peer can always
   decode every reply it has received.
   conn_trim() (a session going IDLE) drops both zlib states: a raw deflate
   stream is just a run of blocks, so after a sync flush a fresh deflater
   can continue it, and a fresh inflater primed with the saved window
   (often a few KiB of commands) continues the peer's stream as long as we
   stopped at a block boundary. */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "conn_private.h"
#include "log.h"
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
	bool in_live, out_live;     /* the zlib state is allocated */
	char *dict;                 /* inflate window saved by z_conn_trim */
	uInt dict_len;
	char *raw;
	uint32_t raw_start, raw_end, raw_cap;
	bool in_more;       /* inflate filled its output: it may have more */
	bool dirty;         /* deflated since the last sync flush */
};

static int
z_deflate_init(struct conn_z *z)
{
	memset(&z->out, 0, sizeof(z->out));
	if (deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
	    DEFLATE_WBITS, DEFLATE_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	z->out_live = true;
	return 0;
}

static int
z_inflate_init(struct conn_z *z)
{
	int r;

	memset(&z->in, 0, sizeof(z->in));
	if (inflateInit2(&z->in, -15) != Z_OK)
		return -1;
	z->in_live = true;
	r = z->dict != NULL ? inflateSetDictionary(&z->in, (Bytef *)z->dict,
	    z->dict_len) : Z_OK;
	free(z->dict);
	z->dict = NULL;
	z->dict_len = 0;
	return r == Z_OK ? 0 : -1;
}

int
conn_start_compress(struct conn *c)
{
	struct conn_z *z;
	uint32_t n;

	if (c->z != NULL || c->phase != PH_OPEN)
		return -1;
	z = xcalloc(1, sizeof(*z));
	if (z_inflate_init(z) < 0) {
		free(z);
		return -1;
	}
	if (z_deflate_init(z) < 0) {
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

	if (z->in_live)
		inflateEnd(&z->in);
	if (z->out_live)
		deflateEnd(&z->out);
	free(z->dict);
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

	if (!c->z->out_live && z_deflate_init(c->z) < 0)
		fatalx("compress: cannot allocate a deflate stream");

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
		if (!z->in_live && z_inflate_init(z) < 0)
			return -1;
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
	if (z->out_live) {
		/* Everything deflated so far goes into the output queue. */
		z_conn_flush(c);
		deflateEnd(&z->out);
		z->out_live = false;
	}
	/* data_type 128: the inflater waits for a block header on a byte
	   boundary, outside a final block; only then can a fresh one take
	   over. */
	if (z->in_live && z->raw_end == z->raw_start && !z->in_more &&
	    z->in.data_type == 128) {
		uInt n = 0;

		inflateGetDictionary(&z->in, NULL, &n);
		z->dict = n > 0 ? xmalloc(n) : NULL;
		z->dict_len = n;
		if (n > 0)
			inflateGetDictionary(&z->in, (Bytef *)z->dict, &n);
		inflateEnd(&z->in);
		z->in_live = false;
	}
}
