/* log: formats one line "<name> <level> <message>\n" and hands it to the
   kernel with a single write(2) on stderr, so lines from several threads or
   processes sharing the fd never interleave. No allocation, no locks: the
   line is built on the stack. Never logs secrets; callers escape peer text
   with log_escape(). */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static char log_name[32] = "postroom";
static atomic_int log_min_level = LOG_LVL_INFO;

void
log_init(const char *name, enum log_level level)
{
	snprintf(log_name, sizeof(log_name), "%s", name ? name : "postroom");
	atomic_store(&log_min_level, (int)level);
}

void
log_set_level(enum log_level level)
{
	atomic_store(&log_min_level, (int)level);
}

bool
log_is_debug(void)
{
	return atomic_load(&log_min_level) <= LOG_LVL_DEBUG;
}

static void
log_emit(const char *level, const char *fmt, va_list ap, int errnum)
{
	char line[LOG_LINE_MAX];
	size_t len, i, start;
	int n;

	n = snprintf(line, sizeof(line), "%s %s ", log_name, level);
	len = n < 0 ? 0 : (size_t)n;
	start = len;
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n > 0)
		len += (size_t)n;
	if (len > sizeof(line) - 1)
		len = sizeof(line) - 1;
	if (errnum != 0) {
		n = snprintf(line + len, sizeof(line) - len, ": %s",
		    strerror(errnum));
		if (n > 0)
			len += (size_t)n;
		if (len > sizeof(line) - 1)
			len = sizeof(line) - 1;
	}
	/* One event, one line: a stray newline in a message must not let
	   anything forge a second log line. */
	for (i = start; i < len; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	line[len++] = '\n';
	/* Best effort: nothing sensible to do if stderr is gone. */
	while (write(STDERR_FILENO, line, len) < 0 && errno == EINTR)
		;
}

#define LOG_FN(fn, lvl, tag)                                      \
	void fn(const char *fmt, ...)                             \
	{                                                         \
		va_list ap;                                       \
		int saved = errno;                                \
		if (atomic_load(&log_min_level) > (lvl))          \
			return;                                   \
		va_start(ap, fmt);                                \
		log_emit(tag, fmt, ap, 0);                        \
		va_end(ap);                                       \
		errno = saved;                                    \
	}

LOG_FN(log_debug, LOG_LVL_DEBUG, "debug")
LOG_FN(log_info, LOG_LVL_INFO, "info")
LOG_FN(log_warnx, LOG_LVL_WARN, "warn")

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_emit("warn", fmt, ap, saved);
	va_end(ap);
	errno = saved;
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("fatal", fmt, ap, 0);
	va_end(ap);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_emit("fatal", fmt, ap, saved);
	va_end(ap);
	exit(1);
}

const char *
log_escape(const char *p, size_t len, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0, n = len > 64 ? 64 : len;

	if (size < 4) {
		if (size > 0)
			out[0] = '\0';
		return out;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		/* Room for the widest item, "..." and the NUL. */
		if (o + 4 + 4 > size)
			break;
		if (c < 0x20 || c >= 0x7f || c == '\\') {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	if (i < len && o + 4 <= size) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}
