/* sasl: the server side of SASL PLAIN (RFC 4616) and LOGIN
   (draft-murchison-sasl-login) as small state machines. Pure: no I/O, no
   logging, no password checks (auth.c does those, on a worker). Decoded
   credentials are wiped as soon as they are no longer needed. */
#include "sasl.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util.h"

/* The conventional LOGIN challenges: Outlook insists on exactly these. */
#define LOGIN_USER_CHALLENGE "VXNlcm5hbWU6"   /* "Username:" */
#define LOGIN_PASS_CHALLENGE "UGFzc3dvcmQ6"   /* "Password:" */

/* A PLAIN message holds two names and a password; 4 KiB of base64 is far
   more than any real one, and bounds what an unauthenticated peer makes us
   decode. */
#define SASL_RESPONSE_MAX 4096

enum sasl_mech
sasl_mech_parse(const char *name)
{
	if (name == NULL)
		return SASL_MECH_NONE;
	if (str_has_prefix_ci(name, "PLAIN") && name[5] == '\0')
		return SASL_MECH_PLAIN;
	if (str_has_prefix_ci(name, "LOGIN") && name[5] == '\0')
		return SASL_MECH_LOGIN;
	return SASL_MECH_NONE;
}

void
sasl_server_init(struct sasl_server *s, enum sasl_mech mech)
{
	memset(s, 0, sizeof(*s));
	s->mech = mech;
}

void
sasl_server_reset(struct sasl_server *s)
{
	enum sasl_mech mech = s->mech;

	secret_free(&s->pass);
	free(s->authzid);
	free(s->user);
	sasl_server_init(s, mech);
}

static void
buf_wipe_free(struct buf *b)
{
	if (b->data != NULL)
		sodium_memzero(b->data, b->cap);
	buf_free(b);
}

static bool
has_nul(const struct buf *b)
{
	return b->len > 0 && memchr(b->data, '\0', b->len) != NULL;
}

/* Decodes one base64 response into b. "=" stands for an empty response
   (RFC 4954 and RFC 3501 both use it for the initial response). A trailing
   CR/LF from a lenient caller is ignored. */
static int
decode_response(const char *resp, size_t len, struct buf *b)
{
	while (len > 0 && (resp[len - 1] == '\n' || resp[len - 1] == '\r'))
		len--;
	if (len > SASL_RESPONSE_MAX)
		return -1;
	if (len == 1 && resp[0] == '=') {
		buf_append(b, "", 0);
		return 0;
	}
	return base64_decode(resp, len, b);
}

static bool
is_cancel(const char *resp, size_t len)
{
	while (len > 0 && (resp[len - 1] == '\n' || resp[len - 1] == '\r'))
		len--;
	return len == 1 && resp[0] == '*';
}

int
sasl_plain_decode(const char *msg, size_t len, char **authzid_r,
    char **user_r, char **pass_r)
{
	const char *nul1, *nul2;
	size_t zlen, ulen, plen;

	*authzid_r = *user_r = *pass_r = NULL;
	nul1 = memchr(msg, '\0', len);
	if (nul1 == NULL)
		return -1;
	zlen = (size_t)(nul1 - msg);
	nul2 = memchr(nul1 + 1, '\0', len - zlen - 1);
	if (nul2 == NULL)
		return -1;
	ulen = (size_t)(nul2 - nul1 - 1);
	plen = len - zlen - ulen - 2;
	if (memchr(nul2 + 1, '\0', plen) != NULL || ulen == 0 || plen == 0)
		return -1;
	if (zlen > 0)
		*authzid_r = xstrndup(msg, zlen);
	*user_r = xstrndup(nul1 + 1, ulen);
	*pass_r = xstrndup(nul2 + 1, plen);
	return 0;
}

static enum sasl_result
plain_finish(struct sasl_server *s, const char *resp, size_t len)
{
	struct buf b;
	enum sasl_result r = SASL_FAIL;

	buf_init(&b);
	if (decode_response(resp, len, &b) < 0)
		goto out;
	if (sasl_plain_decode(b.data, b.len, &s->authzid, &s->user,
	    &s->pass) < 0)
		goto out;
	s->step = 2;
	r = SASL_DONE;
out:
	buf_wipe_free(&b);
	return r;
}

/* LOGIN: one decoded field (user or password) as an owned string. */
static int
login_field(const char *resp, size_t len, char **out)
{
	struct buf b;
	int ret = -1;

	buf_init(&b);
	if (decode_response(resp, len, &b) < 0 || b.len == 0 || has_nul(&b))
		goto out;
	*out = xstrndup(b.data, b.len);
	ret = 0;
out:
	buf_wipe_free(&b);
	return ret;
}

enum sasl_result
sasl_server_start(struct sasl_server *s, const char *initial,
    const char **challenge_r)
{
	enum sasl_result r;

	*challenge_r = "";
	if (s->step != 0)
		return SASL_FAIL;
	switch (s->mech) {
	case SASL_MECH_PLAIN:
		if (initial == NULL) {
			s->step = 1;
			return SASL_CONTINUE;
		}
		if (is_cancel(initial, strlen(initial)))
			return SASL_CANCEL;
		r = plain_finish(s, initial, strlen(initial));
		if (r == SASL_FAIL)
			sasl_server_reset(s);
		return r;
	case SASL_MECH_LOGIN:
		if (initial == NULL) {
			s->step = 1;
			*challenge_r = LOGIN_USER_CHALLENGE;
			return SASL_CONTINUE;
		}
		/* RFC 4954 clients may send the user name up front. */
		if (is_cancel(initial, strlen(initial)))
			return SASL_CANCEL;
		if (login_field(initial, strlen(initial), &s->user) < 0) {
			sasl_server_reset(s);
			return SASL_FAIL;
		}
		s->step = 2;
		*challenge_r = LOGIN_PASS_CHALLENGE;
		return SASL_CONTINUE;
	case SASL_MECH_NONE:
		break;
	}
	return SASL_FAIL;
}

enum sasl_result
sasl_server_step(struct sasl_server *s, const char *resp, size_t len,
    const char **challenge_r)
{
	enum sasl_result r = SASL_FAIL;

	*challenge_r = "";
	if (is_cancel(resp, len)) {
		sasl_server_reset(s);
		return SASL_CANCEL;
	}
	if (s->mech == SASL_MECH_PLAIN && s->step == 1) {
		r = plain_finish(s, resp, len);
	} else if (s->mech == SASL_MECH_LOGIN && s->step == 1) {
		if (login_field(resp, len, &s->user) == 0) {
			s->step = 2;
			*challenge_r = LOGIN_PASS_CHALLENGE;
			r = SASL_CONTINUE;
		}
	} else if (s->mech == SASL_MECH_LOGIN && s->step == 2) {
		if (login_field(resp, len, &s->pass) == 0) {
			s->step = 3;
			r = SASL_DONE;
		}
	}
	if (r == SASL_FAIL)
		sasl_server_reset(s);
	return r;
}
