/* util: allocation that aborts on OOM, a growable byte buffer, small string
   helpers. No I/O beyond abort on OOM. */
#ifndef POSTROOM_UTIL_H
#define POSTROOM_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* All abort with a message on OOM; never return NULL. Owned by the caller. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable byte buffer. data is always NUL-terminated (not counted in len)
   once anything was appended; data may be NULL while len == 0. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};
void buf_init(struct buf *b);
void buf_free(struct buf *b);          /* frees data, back to the empty state */
void buf_reset(struct buf *b);         /* len = 0, keeps the allocation */
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
/* v in decimal: written at p (room for 20 bytes), returning the end; or
   appended. For hot paths that avoid the printf family. */
char *u64_dec_at(char *p, uint64_t v);
void buf_put_u64(struct buf *b, uint64_t v);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Returns the data as an owned string and leaves b empty. */
char *buf_steal(struct buf *b);

/* Copies at most size-1 bytes and NUL-terminates; returns strlen(src). */
size_t str_copy(char *dst, const char *src, size_t size);
/* ASCII-only case folding, independent of the locale. */
void str_lower(char *s);
bool str_has_prefix_ci(const char *s, const char *prefix);
/* Parses a size "123", "10K", "50M", "2G" (1024-based). 0 or -1. */
int parse_size(const char *s, uint64_t *out);
/* Parses a duration "30", "30s", "5m", "2h". 0 or -1. */
int parse_duration(const char *s, double *seconds_out);

/* Base64 (RFC 4648, no line breaks). decode returns -1 on any bad input,
   including bad padding; whitespace is not accepted. */
void base64_encode(const void *in, size_t len, struct buf *out);
/* The 6-bit value of one base64 alphabet character, or -1. */
int base64_value(unsigned char c);
int base64_decode(const char *in, size_t len, struct buf *out);

/* "Mon, 23 Nov 2026 23:13:25 +0000" (RFC 5322) in local time; out >= 64. */
void date_rfc5322(time_t t, char *out, size_t size);

/* Lowercases an address in place and checks it is local@domain with a
   plausible domain; returns 0 or -1. */
int address_normalize(char *addr);

/* Wipes and frees a secret string (sodium_memzero). */
void secret_free(char **s);

#endif
