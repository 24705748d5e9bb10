/* log: one line per event to stderr, "<daemon> <level> <session> <event>
   key=value ...". Peer strings go through log_escape(). Never logs secrets. */
#ifndef POSTROOM_LOG_H
#define POSTROOM_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN };

/* name: the program ("smtpd"). Not thread-safe to call twice; the log_*
   functions are thread-safe (one write(2) per line). */
void log_init(const char *name, enum log_level level);
void log_set_level(enum log_level level);
bool log_is_debug(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Appends ": strerror(errno)". */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1): for startup and impossible states only. */
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Writes a printable, quoted-free rendering of p[0..len) into out (size >= 4):
   control bytes and non-ASCII as \xNN, truncated to 64 source bytes with
   "..." appended. Returns out. */
const char *log_escape(const char *p, size_t len, char *out, size_t size);
#define LOG_ESCAPE_SIZE 272

#endif
