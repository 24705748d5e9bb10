/* Shared fixture steps of the store unit tests (test_store.c,
   test_store_index.c): a mkdtemp data dir holding a fresh store with one
   domain, and its removal. Header-only; include after <cmocka.h>,
   "store.h" and "util.h". */
#ifndef STORE_TEST_UTIL_H
#define STORE_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
rm_tree(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "rm failed\n");
	free(cmd);
}

/* mkdtemp(tmpl) into dir, a store opened in dir/data (path into data)
   with domain added. */
static void
store_test_open(char dir[64], char data[128], const char *tmpl,
    const char *domain, struct store **st_r)
{
	snprintf(dir, 64, "%s", tmpl);
	assert_non_null(mkdtemp(dir));
	snprintf(data, 128, "%s/data", dir);
	assert_int_equal(store_open(data, st_r), STORE_OK);
	assert_int_equal(store_domain_add(*st_r, domain), STORE_OK);
}

#endif
