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
 * tree (owned by the caller), or -EINVAL on a syntax error, on trailing
 * garbage (a NUL byte after the value included) or when a string or an
 * object key holds a NUL character (a \u0000 escape or a raw NUL byte):
 * cJSON would keep such a string cut at the NUL, so that the tree would
 * silently say less than the text ("role == 'db'\u0000 && env == 'prod'"
 * read as "role == 'db'"). Every reader of outside input goes through here. */
int weft_json_parse(const char *text, size_t len, cJSON **out);

/* Why weft_json_parse_err() refused a text, and where. */
enum weft_json_fault {
	WEFT_JSON_SYNTAX,   /* not JSON (an empty text included) */
	WEFT_JSON_TRAILING, /* something other than white space after the value */
	WEFT_JSON_NUL,      /* a NUL character in a string or a key */
};

struct weft_json_error {
	enum weft_json_fault fault;
	size_t offset;       /* of the fault in text, in bytes */
	size_t line, column; /* the same, 1-based; the column counts bytes */
	/* Malloc'ed, one line, without the position: "invalid JSON",
	 * "unexpected text after the JSON value", or for a NUL
	 * "PATH: NUL characters (\u0000) are not supported", PATH the string's
	 * place in weft's path notation (see weft_json_path_key(); none for
	 * the top-level value), and " in field names" appended for a key
	 * (PATH is then its object's). */
	char *msg;
};

/* weft_json_parse(), and on failure *err (when not NULL) says why and
 * where; the caller frees it with weft_json_error_clear(). err is
 * untouched on success. */
int weft_json_parse_err(const char *text, size_t len, cJSON **out, struct weft_json_error *err);

/* Frees err->msg; accepts NULL. */
void weft_json_error_clear(struct weft_json_error *err);

/* weft's notation for the place of a value in a document, as every error
 * message names it: "spec.inboundRules[1].destination", a member by its
 * key after a '.' (none at the start) when the key is a plain name (a
 * letter or '_', then letters, digits, '_' and '-'), else as ["quoted
 * key"]; a list element as [index]. Both append one step to path and
 * return its old length, to cut it back to. */
size_t weft_json_path_key(struct weft_buf *path, const char *key);
size_t weft_json_path_index(struct weft_buf *path, size_t i);

/* s JSON-quoted for a one-line message, cut after about max bytes (never
 * inside a UTF-8 sequence) and "..." appended then. Malloc'ed, never NULL. */
char *weft_json_quote(const char *s, size_t max);

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
