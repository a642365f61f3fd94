/* test-acl-util.h - helpers the ACL unit tests share (test-only). */
#ifndef WEFT_TEST_ACL_UTIL_H
#define WEFT_TEST_ACL_UTIL_H

#include "acl/acl.h"
#include "lib/test.h"
#include "model/resource.h"

/* The program for node (NULL: every endpoint) from a YAML manifest;
 * failures are test failures (and NULL). */
static inline struct weft_acl_program *compile_yaml(const char *yaml, const char *node)
{
	struct weft_acl_options opt = {.node = node};
	struct weft_acl_program *p = NULL;
	struct weft_resource *rs = NULL;
	char *err = NULL;
	size_t n = 0;
	int r = weft_manifest_parse(yaml, strlen(yaml), &rs, &n, &err);

	if (r < 0)
		fprintf(stderr, "manifest: %s\n%s", err, yaml);
	CHECK_EQ_INT(r, 0);
	free(err);
	err = NULL;
	if (r < 0)
		return NULL;
	r = weft_acl_compile(rs, n, &opt, &p, &err);
	if (r < 0)
		fprintf(stderr, "compile: %s\n", err);
	CHECK_EQ_INT(r, 0);
	free(err);
	weft_resources_free(rs, n);
	return p;
}

/* "a,b,c" (malloc'ed). */
static inline char *cidrs_str(const struct weft_cidr *v, size_t n)
{
	struct weft_buf b = {0};

	for (size_t i = 0; i < n; i++) {
		char buf[WEFT_CIDR_STRLEN];
		weft_buf_printf(&b, "%s%s", i ? "," : "", weft_cidr_str(&v[i], buf, sizeof(buf)));
	}
	return weft_buf_steal(&b);
}

#endif
