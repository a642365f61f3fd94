/* schema.h - the schema-driven validator behind the resource model.
 *
 * Every kind is described by tables of fields (struct weft_field): the JSON
 * name, the type, whether it is required, its default, its constraints and,
 * for objects, a sub-schema. weft_schema_object() walks an input cJSON
 * object against a schema and builds the canonical object: exactly the
 * schema's fields, in schema order, defaults filled in, values normalised
 * (CIDRs and addresses in their canonical text form, enums in their table
 * spelling). Unknown fields, wrong types, missing required fields and bad
 * values are errors that name the field path, e.g.
 *   pool1: spec.inboundRules[1].destination.ports[0]: "99999" is not a port
 *
 * This header is internal to model/: other modules use model/resource.h.
 */
#ifndef WEFT_SCHEMA_H
#define WEFT_SCHEMA_H

#include "lib/json.h"
#include "model/resource.h"

/* The state of one document's validation. */
struct weft_vctx {
	const char *label;   /* "pool1" or "document 2": starts every error */
	enum weft_kind kind;
	const char *name;    /* metadata.name once validated, else NULL */
	/* Where the walk is, "spec.inboundRules[1]" as steps: a key (which
	 * must outlive its step) or, key NULL, a list index. Kept as steps
	 * and written out only for an error, since every value visited
	 * pushes one. Freed with weft_vctx_clear(). */
	struct weft_vstep {
		const char *key;
		size_t index;
	} *path;
	size_t depth, cap;
	char *err;           /* the first error, malloc'ed */
};

/* Frees ctx's path steps and error. */
void weft_vctx_clear(struct weft_vctx *ctx);

enum weft_ftype {
	WEFT_T_STRING,    /* a string; check() decides what is valid */
	WEFT_T_BOOL,
	WEFT_T_INT,       /* an integral number in [min, max] */
	WEFT_T_NUMBER,    /* any finite number */
	WEFT_T_ENUM,      /* one of values[], any case; canonical: table spelling */
	WEFT_T_CIDR,      /* "10.0.0.0/16": host bits must be zero */
	WEFT_T_CIDR_HOST, /* "198.18.0.11/24": an address with its prefix length */
	WEFT_T_IP,        /* "10.0.0.1" or "fd00::1" */
	WEFT_T_NET,       /* an address or a CIDR; canonical: a CIDR (/32, /128) */
	WEFT_T_PORT,      /* 80, "80" or "8000:8080"; canonical: number or "lo:hi" */
	WEFT_T_PROTOCOL,  /* "tcp" ... or 0..255 */
	WEFT_T_LIST,      /* a list of elem */
	WEFT_T_OBJECT,    /* an object with schema sub */
	WEFT_T_MAP,       /* string -> string: key_check() and check() */
};

#define WEFT_FIELD_REQUIRED (1u << 0)
#define WEFT_FIELD_UNIQUE   (1u << 1) /* lists: no element twice */
#define WEFT_FIELD_V4       (1u << 2) /* addresses: IPv4 only */
#define WEFT_FIELD_V6       (1u << 3) /* addresses: IPv6 only */
#define WEFT_FIELD_RANGE    (1u << 4) /* INT: min/max are checked */
#define WEFT_FIELD_IGNORE   (1u << 5) /* accepted (and checked) but left out of the output */

struct weft_schema;

/* A string check: 0 when s is valid, else -EINVAL with *why set to a
 * malloc'ed phrase that follows the quoted value in the error message,
 * e.g. "is not a valid interface name". */
typedef int (*weft_check_fn)(const struct weft_vctx *ctx, const char *s, char **why);

/* A computed default: a new value, or NULL for "absent". out is the
 * canonical object built so far (the fields before this one). */
typedef cJSON *(*weft_default_fn)(const struct weft_vctx *ctx, const cJSON *out);

/* Cross-field checks on a finished canonical object: 0, or -EINVAL after
 * weft_vfail*() recorded the error. */
typedef int (*weft_post_fn)(struct weft_vctx *ctx, cJSON *out);

struct weft_field {
	const char *name;
	enum weft_ftype type;
	unsigned flags;
	const char *def;            /* default as JSON text, or NULL */
	weft_default_fn def_fn;     /* computed default (wins over def) */
	int64_t min, max;           /* INT range (with WEFT_FIELD_RANGE); list max length */
	const char *const *values;  /* ENUM: NULL-terminated */
	weft_check_fn check;        /* STRING values, MAP values */
	weft_check_fn key_check;    /* MAP keys */
	const struct weft_schema *sub;   /* OBJECT */
	const struct weft_field *elem;   /* LIST */
};

struct weft_schema {
	const struct weft_field *fields;
	size_t n;
	weft_post_fn post;
};

#define WEFT_SCHEMA(fields, post) {(fields), ARRAY_SIZE(fields), (post)}

/* Walk in against schema s and build the canonical object in *out.
 * Returns 0 or -EINVAL (ctx->err set). */
int weft_schema_object(struct weft_vctx *ctx, const struct weft_schema *s, const cJSON *in, cJSON **out);

/* Record an error at the current path (the first one wins). Returns -EINVAL. */
int weft_vfail(struct weft_vctx *ctx, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Same, with sub appended to the path (".sub") for this message only. */
int weft_vfail_at(struct weft_vctx *ctx, const char *sub, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Path helpers: push returns the old depth to hand to pop. seg must stay
 * valid until then. */
size_t weft_vpath_push(struct weft_vctx *ctx, const char *seg);
size_t weft_vpath_push_index(struct weft_vctx *ctx, size_t i);
void weft_vpath_pop(struct weft_vctx *ctx, size_t depth);

/* A short, one-line rendering of a value for messages: "text" (JSON
 * quoted, truncated), 26, true, null, a list, an object. Malloc'ed. */
char *weft_value_str(const cJSON *v);
/* A number as the messages and the YAML emitter print it. */
void weft_number_str(double v, char *buf, size_t size);

/* The spec schema of a kind and the metadata schema (model/kinds.c). */
const struct weft_schema *weft_kind_spec_schema(enum weft_kind kind);
extern const struct weft_schema weft_metadata_schema;

#endif
