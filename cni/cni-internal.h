/* cni-internal.h - helpers shared by the files of the cni module only. */
#ifndef WEFT_CNI_INTERNAL_H
#define WEFT_CNI_INTERNAL_H

#include "cni/cni.h"
#include "lib/json.h"

/* Short printable form of a JSON value for messages: strings quoted, long
 * values cut with "...". malloc'ed. */
char *weft_cni_value_str(const cJSON *v);

/* "got a string" style description of a value's type. */
const char *weft_cni_type_name(const cJSON *v);

/* Record "PATH: message" as an error with code. Returns -EINVAL. path may
 * be "" (no prefix). */
int weft_cni_fail(struct weft_cni_error *err, int code, const char *path, const char *fmt, ...) PRINTF_LIKE(4, 5);

/* Parse text as JSON (weft_json_parse()); on failure code 6 with line and
 * column, what names the document ("the network configuration"). A NUL
 * character in a string or a key is refused too, naming the field.
 * Returns 0 or -EINVAL. */
int weft_cni_json_parse(const char *text, size_t len, const char *what, cJSON **out, struct weft_cni_error *err);

/* Parse a result object (see weft_cni_result_parse) found at path. */
int weft_cni_result_from_json(const cJSON *obj, const char *path, enum weft_cni_version v,
			      struct weft_cni_result **out, struct weft_cni_error *err);

/* Typed readers used by config.c and result.c: each checks the type of
 * item and reports "PATH: expected ..., got ..." (code 7) on mismatch. */
int weft_cni_want_string(const cJSON *item, const char *path, const char **out, struct weft_cni_error *err);
int weft_cni_want_bool(const cJSON *item, const char *path, bool *out, struct weft_cni_error *err);
int weft_cni_want_int(const cJSON *item, const char *path, int64_t min, int64_t max, int64_t *out,
		      struct weft_cni_error *err);
int weft_cni_want_strv(const cJSON *item, const char *path, struct weft_cni_strv *out, struct weft_cni_error *err);
int weft_cni_want_ip(const cJSON *item, const char *path, struct weft_ip *out, struct weft_cni_error *err);
/* A CIDR; with host false the host bits are zeroed ("10.0.0.0/8"), with
 * host true they are kept ("10.1.2.3/24"). */
int weft_cni_want_cidr(const cJSON *item, const char *path, bool host, struct weft_cidr *out,
		       struct weft_cni_error *err);
int weft_cni_want_dns(const cJSON *item, const char *path, struct weft_cni_dns *out, struct weft_cni_error *err);
int weft_cni_want_route(const cJSON *item, const char *path, bool extras, struct weft_cni_route *out,
			struct weft_cni_error *err);

/* The first entry after `after` (NULL: from the start) whose key an
 * earlier entry of obj has too, or NULL. */
const cJSON *weft_cni_duplicate_key(const cJSON *obj, const cJSON *after);

#endif
