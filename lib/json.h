/* json.h - small helpers over cJSON used by every weft module.
 *
 * Typed getters look a key up in an object (case-sensitively) and tell the
 * three outcomes apart: 0 and the value, -ENOENT when the key is missing,
 * -EINVAL when it is there with another type (JSON null counts as another
 * type) or when the container is not an object. Outputs are untouched on
 * failure, and returned pointers point into the tree (not copies).
 *
 * Out of memory aborts, as everywhere in weft: weft_json_init() installs
 * allocation hooks so that every cJSON allocation goes through wmalloc(),
 * and the helpers here also abort if cJSON reports a failed allocation.
 */
#ifndef WEFT_JSON_H
#define WEFT_JSON_H

#include "lib/util.h"

#include <cjson/cJSON.h>

/* Make cJSON allocate through wmalloc() (abort on OOM). Idempotent; call it
 * early in main(), before any cJSON object exists. */
void weft_json_init(void);

/* Parse len bytes of text (need not be NUL-terminated). Returns 0 and the
 * tree (owned by the caller), or -EINVAL on a syntax error or trailing
 * garbage. */
int weft_json_parse(const char *text, size_t len, cJSON **out);

int weft_json_get_string(const cJSON *obj, const char *key, const char **out);
int weft_json_get_bool(const cJSON *obj, const char *key, bool *out);
/* A number that is integral and fits in int64_t exactly: -EINVAL for a
 * non-number or a fraction (1.5), -ERANGE beyond +-2^53, where a double
 * can no longer hold every integer and the value read may not be the one
 * written. */
int weft_json_get_int64(const cJSON *obj, const char *key, int64_t *out);
int weft_json_get_object(const cJSON *obj, const char *key, cJSON **out);
int weft_json_get_array(const cJSON *obj, const char *key, cJSON **out);

/* The same checks on a value itself (an array element, say). */
int weft_json_int64(const cJSON *item, int64_t *out);

/* Compact text of item, malloc'ed, owned by the caller (free()); never NULL. */
char *weft_json_print(const cJSON *item);

/* Frees the tree; accepts NULL. */
void weft_json_freep(cJSON **p);
#define _cleanup_json_ __attribute__((cleanup(weft_json_freep)))

#endif
