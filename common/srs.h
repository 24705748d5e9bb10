/* srs: the Sender Rewriting Scheme (as postsrsd/libsrs2 do it for Postfix)
   for mail forwarded through an alias to another domain. The envelope
   sender is rewritten into one of our domains so the destination's SPF
   check passes, and a bounce to the rewritten address can be routed back:

     alice@orig.example          -> SRS0=HHHHHH=TT=orig.example=alice@OURS
     SRS0=x=TT=d=l@fwd.example   -> SRS1=HHHHHH=fwd.example==x=TT=d=l@OURS
     SRS1=y=first==rest@fwd      -> SRS1=HHHHHH=first==rest@OURS

   HHHHHH: 6 base32 characters of an HMAC-SHA256 (key kept under data_dir)
   over the lowercased rest, so a bounce cannot be forged to use us as an
   open relay; TT: the day (base32, modulo 1024), and a reverse older than
   SRS_MAX_AGE_DAYS is refused. Base32 keeps it safe from remote MTAs that
   change the case of local parts. Pure functions except srs_key_load. */
#ifndef POSTROOM_SRS_H
#define POSTROOM_SRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRS_KEY_LEN       32
#define SRS_MAX_AGE_DAYS  21
#define SRS_ADDRESS_MAX   254

/* Reads DATA_DIR/srs.key (32 random bytes), creating it (mode 0600,
   atomically) when missing. 0, or -1 with err. */
int srs_key_load(const char *data_dir, unsigned char key[SRS_KEY_LEN],
    char *err, size_t errlen);

/* Whether the local part starts with SRS0= or SRS1= (any case). */
bool srs_is_srs(const char *address);

/* Rewrites sender (local@domain, not empty) into our_domain. 0 with the
   address in out, or -1 if it cannot be done (malformed sender, result
   longer than SRS_ADDRESS_MAX or outlen). now: unix time. */
int srs_forward(const unsigned char key[SRS_KEY_LEN], const char *sender,
    const char *our_domain, int64_t now, char *out, size_t outlen);

/* The reverse: 0 with the address to send the bounce to in out (the
   original sender for SRS0, the previous forwarder's SRS0 address for
   SRS1); 1 if address is not an SRS address; -1 if it is one but its hash
   is wrong, it is too old, or it is malformed (refuse it). */
int srs_reverse(const unsigned char key[SRS_KEY_LEN], const char *address,
    int64_t now, char *out, size_t outlen);

#endif
