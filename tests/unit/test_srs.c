/* Unit tests of common/srs.c: SRS0 round trip, case changes by a remote
   MTA, SRS1 when an SRS0 address is forwarded again (and again), expiry,
   forged hashes, malformed addresses, and the key file (made once, 0600,
   the same key read back). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srs.h"
#include "util.h"

static const unsigned char key[SRS_KEY_LEN] = "0123456789abcdef0123456789abcde";
static const unsigned char key2[SRS_KEY_LEN] = "another key, just as long......";
#define NOW ((int64_t)1765130400)

static void
test_srs0(void **state)
{
	char fwd[300], back[300];

	assert_int_equal(srs_forward(key, "alice@orig.example", "fwd.test", NOW,
	    fwd, sizeof(fwd)), 0);
	assert_true(strncmp(fwd, "SRS0=", 5) == 0);
	assert_non_null(strstr(fwd, "=orig.example=alice@fwd.test"));
	assert_true(srs_is_srs(fwd));
	assert_int_equal(srs_reverse(key, fwd, NOW, back, sizeof(back)), 0);
	assert_string_equal(back, "alice@orig.example");
	/* A remote MTA lowercasing the local part. */
	for (char *p = fwd; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	assert_int_equal(srs_reverse(key, fwd, NOW, back, sizeof(back)), 0);
	assert_string_equal(back, "alice@orig.example");
	/* Up to 21 days later, not 22. */
	assert_int_equal(srs_reverse(key, fwd, NOW + 21 * 86400, back,
	    sizeof(back)), 0);
	assert_int_equal(srs_reverse(key, fwd, NOW + 22 * 86400, back,
	    sizeof(back)), -1);
	/* Another key: refused. */
	assert_int_equal(srs_reverse(key2, fwd, NOW, back, sizeof(back)), -1);
	/* Local parts with '=' and '+' survive. */
	assert_int_equal(srs_forward(key, "a=b+c@x.example", "fwd.test", NOW,
	    fwd, sizeof(fwd)), 0);
	assert_int_equal(srs_reverse(key, fwd, NOW, back, sizeof(back)), 0);
	assert_string_equal(back, "a=b+c@x.example");
}

static void
test_srs1(void **state)
{
	char a[300], b[300], c[300], back[300], back2[300];

	/* alice -> hop1 (key) -> hop2 (key2) -> hop3 (key2 again) */
	assert_int_equal(srs_forward(key, "alice@orig.example", "hop1.test",
	    NOW, a, sizeof(a)), 0);
	assert_int_equal(srs_forward(key2, a, "hop2.test", NOW, b, sizeof(b)),
	    0);
	assert_true(strncmp(b, "SRS1=", 5) == 0);
	assert_non_null(strstr(b, "=hop1.test==")) ;
	assert_true(strlen(b) > 10 && strcmp(b + strlen(b) - 10,
	    "@hop2.test") == 0);
	assert_int_equal(srs_reverse(key2, b, NOW, back, sizeof(back)), 0);
	assert_string_equal(back, a);   /* back to hop1's SRS0 address */
	assert_int_equal(srs_reverse(key, back, NOW, back2, sizeof(back2)), 0);
	assert_string_equal(back2, "alice@orig.example");
	assert_int_equal(srs_forward(key2, b, "hop3.test", NOW, c, sizeof(c)),
	    0);
	assert_non_null(strstr(c, "=hop1.test=="));
	assert_int_equal(srs_reverse(key2, c, NOW, back, sizeof(back)), 0);
	assert_string_equal(back, a);
	/* Forged hash. */
	c[5] = c[5] == 'A' ? 'B' : 'A';
	assert_int_equal(srs_reverse(key2, c, NOW, back, sizeof(back)), -1);
}

static void
test_bad(void **state)
{
	static const char *const bad[] = {
		"SRS0=", "SRS0=@x", "SRS0=abc@x", "SRS0=h=TT=d@x",
		"SRS0=hhhhhh=T=d=l@x", "SRS0=hhhhhh=T1=d=l@x",
		"SRS0=hhhhhh=AA==l@x", "SRS0=hhhhhh=AA=d=@x",
		"SRS1=", "SRS1=h@x", "SRS1=h=first@x", "SRS1=h===rest@x",
		"SRS1=hhhhhh=first==rest", "srs0=AAAAAA=AA=d=l@x",
	};
	char out[300], small[8];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (srs_reverse(key, bad[i], NOW, out, sizeof(out)) != -1)
			fail_msg("accepted %s", bad[i]);
	assert_int_equal(srs_reverse(key, "alice@x", NOW, out, sizeof(out)), 1);
	assert_false(srs_is_srs("alice@x"));
	assert_int_equal(srs_forward(key, "noat", "f.test", NOW, out,
	    sizeof(out)), -1);
	assert_int_equal(srs_forward(key, "@x", "f.test", NOW, out,
	    sizeof(out)), -1);
	assert_int_equal(srs_forward(key, "a@", "f.test", NOW, out,
	    sizeof(out)), -1);
	assert_int_equal(srs_forward(key, "a@b", "f.test", NOW, small,
	    sizeof(small)), -1);
	char longl[300];
	memset(longl, 'l', 240);
	strcpy(longl + 240, "@x.test");
	assert_int_equal(srs_forward(key, longl, "f.test", NOW, out,
	    sizeof(out)), -1);
}

static void
test_key_file(void **state)
{
	char dir[] = "/tmp/test_srs.XXXXXX", path[128], err[256];
	unsigned char k1[SRS_KEY_LEN], k2[SRS_KEY_LEN];
	struct stat sb;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(srs_key_load(dir, k1, err, sizeof(err)), 0);
	assert_int_equal(srs_key_load(dir, k2, err, sizeof(err)), 0);
	assert_memory_equal(k1, k2, SRS_KEY_LEN);
	snprintf(path, sizeof(path), "%s/srs.key", dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sb.st_size, SRS_KEY_LEN);
	/* A truncated key is an error, never silently replaced. */
	assert_int_equal(truncate(path, 5), 0);
	assert_int_equal(srs_key_load(dir, k2, err, sizeof(err)), -1);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_srs0),
		cmocka_unit_test(test_srs1),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_key_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
