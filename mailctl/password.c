/* password: how mailctl gets a new password. With --password-stdin, one line
   from standard input (for scripts); otherwise two prompts on the terminal
   with echo turned off, restored even on Ctrl-C. Never prints or logs a
   password, and wipes every copy it made. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "mailctl.h"
#include "util.h"

/* A password is a line; anything longer is surely a mistake (a file piped
   in by accident). */
#define PASSWORD_MAX 1024

static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;

static void
restore_tty_and_die(int sig)
{
	if (tio_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Reads one line from fd into buf (NUL-terminated, without the line end).
   1 on a line, 0 at EOF before any byte, -1 on an error or an overlong
   line. One byte at a time, so nothing after the newline is consumed. */
static int
read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	bool any = false;
	char c;

	for (;;) {
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		any = true;
		if (c == '\n')
			break;
		if (n + 1 >= size)
			return -1;
		buf[n++] = c;
	}
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return any ? 1 : 0;
}

static void
say(const char *s)
{
	ssize_t r = write(STDERR_FILENO, s, strlen(s));
	(void)r;
}

/* One prompt with echo off. 1, 0 (EOF) or -1. */
static int
prompt_noecho(const char *prompt, char *buf, size_t size)
{
	struct termios tio;
	int r;

	if (tcgetattr(STDIN_FILENO, &saved_tio) != 0)
		return -1;
	tio = saved_tio;
	tio.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
	tio.c_lflag |= ECHONL;
	tio_saved = 1;
	signal(SIGINT, restore_tty_and_die);
	signal(SIGTERM, restore_tty_and_die);
	signal(SIGHUP, restore_tty_and_die);
	signal(SIGQUIT, restore_tty_and_die);
	/* Echo goes off before the prompt appears, so nothing typed after
	   the prompt is flushed or shown. */
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) != 0) {
		r = -1;
		goto out;
	}
	say(prompt);
	r = read_line(STDIN_FILENO, buf, size);
out:
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	tio_saved = 0;
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	return r;
}

char *
password_read(bool from_stdin, bool *usage_r)
{
	char a[PASSWORD_MAX], b[PASSWORD_MAX];
	char *ret = NULL;
	int r;

	*usage_r = false;
	if (from_stdin) {
		r = read_line(STDIN_FILENO, a, sizeof(a));
		if (r <= 0) {
			mailctl_err(r == 0 ? "no password on standard input" :
			    "cannot read the password from standard input "
			    "(or longer than %d bytes)", PASSWORD_MAX - 1);
			goto out;
		}
	} else {
		if (!isatty(STDIN_FILENO)) {
			mailctl_err("standard input is not a terminal: "
			    "use --password-stdin to pass the password");
			*usage_r = true;
			goto out;
		}
		r = prompt_noecho("New password: ", a, sizeof(a));
		if (r <= 0) {
			mailctl_err("no password entered");
			goto out;
		}
		r = prompt_noecho("Retype new password: ", b, sizeof(b));
		if (r <= 0 || strcmp(a, b) != 0) {
			mailctl_err("the passwords do not match");
			goto out;
		}
	}
	if (a[0] == '\0') {
		mailctl_err("empty password refused");
		goto out;
	}
	ret = xstrdup(a);
out:
	sodium_memzero(a, sizeof(a));
	sodium_memzero(b, sizeof(b));
	return ret;
}
