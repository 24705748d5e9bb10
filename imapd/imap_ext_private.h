/* imap_ext_private: the per-session extension state behind
   imap_session.ext, shared by cmd_ext.c and cmd_idle.c only. */
#ifndef IMAP_EXT_PRIVATE_H
#define IMAP_EXT_PRIVATE_H

#include <stdbool.h>

#include <ev.h>

#include "imap_session.h"

struct imap_ext {
	unsigned enabled;           /* enum imap_ext_bit, set by ENABLE */
	/* IDLE */
	bool idling;
	bool trim_next;             /* the timer trims; else keep-alive */
	ev_timer timer;             /* trim / keep-alive, only while idling */
	struct imap_session *s;
	void *ext2;                 /* struct imap_ext2 (imap_ext2.h) */
};

/* s->ext, allocated on first use. */
struct imap_ext *imap_ext_get(struct imap_session *s);

#endif
