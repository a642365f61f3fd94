/* resource.h - weft's resource model: the kinds, their manifests (YAML or
 * JSON, calicoctl style), validation, canonical JSON and store keys.
 *
 * A resource is held as its canonical JSON document (cJSON):
 *   {"kind": "IPPool", "metadata": {"name": "pool1", ...}, "spec": {...}}
 * with every default filled in and every field checked against the kind's
 * schema (model/schema.c). docs/resources.md documents every kind.
 *
 * Return convention: 0 or a negative errno; output parameters untouched on
 * failure. Validation errors are -EINVAL with a malloc'ed one-line message
 * in *err that names the document, the field and the problem, e.g.
 *   pool1: spec.cidr: "10.65.0.0/33" is not a CIDR
 */
#ifndef WEFT_RESOURCE_H
#define WEFT_RESOURCE_H

#include "lib/util.h"

#include <cjson/cJSON.h>

enum weft_kind {
	WEFT_KIND_IPPOOL,
	WEFT_KIND_PROFILE,
	WEFT_KIND_POLICY,
	WEFT_KIND_NODE,
	WEFT_KIND_BGPPEER,
	WEFT_KIND_BGPCONFIG,
	WEFT_KIND_TENANT,
	WEFT_KIND_NETWORK,
	WEFT_KIND_ENDPOINT,
	WEFT_KIND_COUNT
};

struct weft_kind_info {
	enum weft_kind kind;
	const char *name;   /* "IPPool" as in manifests */
	const char *plural; /* "ippools": lower-case, used in keys and the CLI */
	const char *short_name; /* "pool" or NULL: another CLI alias */
};

const struct weft_kind_info *weft_kind_info(enum weft_kind kind);
/* Look up a kind by manifest name, plural or short name, any case:
 * "IPPool", "ippool", "ippools", "pool". Returns 0 or -ENOENT. */
int weft_kind_lookup(const char *s, enum weft_kind *out);

/* A Node's spec.status.reason when its weftd stopped cleanly (written, with
 * healthy false, on the way out): weftctl delete node then needs no
 * --force. */
#define WEFT_NODE_REASON_STOPPED "weftd stopped"

/* The store key prefix of a kind: "/weft/v1/ippools/". */
const char *weft_kind_prefix(enum weft_kind kind);

struct weft_resource {
	enum weft_kind kind;
	char *name;
	cJSON *doc; /* canonical document, owned */
};

void weft_resource_clear(struct weft_resource *r);

/* "/weft/v1/<plural>/<name>" (malloc'ed). */
char *weft_resource_key(const struct weft_resource *r);

/* Validate one decoded document and build the canonical resource. label is
 * used in errors when the document has no usable name ("document 2").
 * doc is not modified or taken. */
int weft_resource_from_json(const cJSON *doc, const char *label, struct weft_resource *out, char **err);

/* Decode a resource as stored (canonical JSON text). Same checks as above:
 * the store is outside input too. */
int weft_resource_decode(const char *json, size_t len, struct weft_resource *out, char **err);
/* Canonical JSON text of r (compact when !pretty), malloc'ed. */
char *weft_resource_encode(const struct weft_resource *r, bool pretty);

/* Parse a manifest file: YAML (one or more documents separated by ---) or
 * JSON (one object, an array of objects, or {"kind":"List","items":[...]}).
 * All-or-nothing: on any error nothing is returned. Duplicate (kind, name)
 * pairs are an error. On success *out is an array of *n resources. */
int weft_manifest_parse(const char *text, size_t len, struct weft_resource **out, size_t *n, char **err);
void weft_resources_free(struct weft_resource *rs, size_t n);

/* Load a YAML text that holds at most one document (a config file, say)
 * with the same reader as manifests (YAML 1.2 core schema, see
 * model/yaml.h). *doc is NULL when the text has no document, else the
 * value (owned by the caller). Returns 0, or -EINVAL with a malloc'ed
 * "line L:C: problem" message in *err (err may be NULL). */
int weft_yaml_load(const char *text, size_t len, cJSON **doc, char **err);

/* Render a cJSON value as YAML (block style, keys in document order).
 * Returns a malloc'ed string. */
char *weft_yaml_emit(const cJSON *v);
/* Render each element of a cJSON array as its own YAML document, "---"
 * before each (for listing several resources). Returns a malloc'ed string. */
char *weft_yaml_emit_documents(const cJSON *array);

#endif
