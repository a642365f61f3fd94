/* test-store-util.h - a fresh embedded store in a temporary directory and
 * manifests written into it through the resource model, for unit tests
 * (test-only). */
#ifndef WEFT_TEST_STORE_UTIL_H
#define WEFT_TEST_STORE_UTIL_H

#include "lib/test.h"
#include "model/resource.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>

/* mkdtemp(dir) (a template ending in XXXXXX) and open file:DIR/store;
 * url gets the URL. Exits the test on failure; returns the open's result
 * (0, or -ENOSYS when the backend is missing, for the caller to skip). */
static inline int test_store_open_tmp(char *dir, char *url, size_t url_size, struct weft_store **out)
{
	char *err = NULL;
	int r;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(url, url_size, "file:%s/store", dir);
	r = weft_store_open(url, out, &err);
	if (r < 0 && r != -ENOSYS) {
		fprintf(stderr, "open %s: %s\n", url, err ? err : strerror(-r));
		exit(1);
	}
	free(err);
	return r;
}

/* rm -rf dir. */
static inline void test_store_remove_tmp(const char *dir)
{
	char cmd[320];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* Validate a one-document manifest through the resource model and store
 * it (so the record is canonical); what names it in a failure. */
static inline void test_put_manifest(struct weft_store *s, const char *what, const char *text)
{
	struct weft_resource *rs = NULL;
	size_t n = 0;
	char *err = NULL;
	int r = weft_manifest_parse(text, strlen(text), &rs, &n, &err);

	if (r < 0)
		fprintf(stderr, "%s: %s\n", what, err);
	CHECK_EQ_INT(r, 0);
	if (r == 0 && n == 1) {
		_cleanup_free_ char *key = weft_resource_key(&rs[0]);
		_cleanup_free_ char *val = weft_resource_encode(&rs[0], false);
		CHECK_EQ_INT(weft_store_put(s, key, val, strlen(val), NULL), 0);
	}
	weft_resources_free(rs, n);
	free(err);
}

#endif
