/* sasl: the server side of SASL PLAIN (RFC 4616) and LOGIN, shared by the
   three daemons. Pure: no I/O. The daemon carries the base64 strings over
   its protocol and checks the password itself (auth.h). */
#ifndef POSTROOM_SASL_H
#define POSTROOM_SASL_H

#include <stddef.h>

enum sasl_mech { SASL_MECH_NONE = 0, SASL_MECH_PLAIN, SASL_MECH_LOGIN };

enum sasl_result {
	SASL_CONTINUE,  /* send *challenge_r (base64, may be "") and wait */
	SASL_DONE,      /* user and pass are set */
	SASL_FAIL,      /* malformed response: protocol error reply */
	SASL_CANCEL,    /* the client sent "*" */
};

struct sasl_server {
	enum sasl_mech mech;
	int step;
	char *authzid;  /* owned, may be NULL */
	char *user;     /* owned */
	char *pass;     /* owned, wiped on reset */
};

/* Case-insensitive "PLAIN"/"LOGIN"; SASL_MECH_NONE if unknown. */
enum sasl_mech sasl_mech_parse(const char *name);

void sasl_server_init(struct sasl_server *s, enum sasl_mech mech);
/* Wipes and frees the credentials. */
void sasl_server_reset(struct sasl_server *s);

/* Starts the exchange. initial: the initial response (base64; "=" means an
   empty one) or NULL if none was sent. */
enum sasl_result sasl_server_start(struct sasl_server *s, const char *initial,
    const char **challenge_r);
/* Feeds one client response line (base64, or "*" to cancel). */
enum sasl_result sasl_server_step(struct sasl_server *s, const char *resp,
    size_t len, const char **challenge_r);

/* Decodes a PLAIN message (already base64-decoded bytes). 0 with owned
   strings (authzid may be NULL when empty), -1 if malformed (not exactly
   two NULs, empty user or password). Pure. */
int sasl_plain_decode(const char *msg, size_t len, char **authzid_r,
    char **user_r, char **pass_r);

#endif
