/* resource.c - resources from documents and manifests (see resource.h). */
#include "model/resource.h"

#include "model/schema.h"
#include "model/yaml.h"

#include <strings.h>

void weft_resource_clear(struct weft_resource *r)
{
	if (!r)
		return;
	free(r->name);
	cJSON_Delete(r->doc);
	r->name = NULL;
	r->doc = NULL;
}

void weft_resources_free(struct weft_resource *rs, size_t n)
{
	if (!rs)
		return;
	for (size_t i = 0; i < n; i++)
		weft_resource_clear(&rs[i]);
	free(rs);
}

char *weft_resource_key(const struct weft_resource *r)
{
	return wasprintf("%s%s", weft_kind_prefix(r->kind), r->name);
}

/* A name good enough to label errors with, before it is validated: a short
 * printable string that does not need quoting in a message. */
static const char *usable_name(const cJSON *doc)
{
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(doc, "metadata");
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "name"));
	size_t l;

	if (!cJSON_IsObject(md) || !s)
		return NULL;
	l = strlen(s);
	if (l == 0 || l > 253)
		return NULL;
	for (size_t i = 0; i < l; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == ':' || s[i] == '/')
			return NULL;
	return s;
}

static int kind_from(struct weft_vctx *ctx, const cJSON *v, enum weft_kind *out)
{
	_cleanup_free_ char *s = NULL;
	enum weft_kind k = WEFT_KIND_COUNT;

	if (!v || cJSON_IsNull(v))
		return weft_vfail_at(ctx, "kind", "is required");
	s = weft_value_str(v);
	if (!cJSON_IsString(v))
		return weft_vfail_at(ctx, "kind", "expected a string, got %s", s);
	for (k = 0; k < WEFT_KIND_COUNT; k++) {
		if (streq(v->valuestring, weft_kind_info(k)->name)) {
			*out = k;
			return 0;
		}
	}
	if (streq(v->valuestring, "List"))
		return weft_vfail_at(ctx, "kind", "a List is only allowed as the whole manifest");
	if (weft_kind_lookup(v->valuestring, &k) == 0)
		return weft_vfail_at(ctx, "kind", "unknown kind %s (did you mean \"%s\"?)", s, weft_kind_info(k)->name);
	return weft_vfail_at(ctx, "kind", "unknown kind %s", s);
}

/* apiVersion, of a resource or a List: absent, null or weft/v1. */
static int check_api_version(struct weft_vctx *ctx, const cJSON *api)
{
	_cleanup_free_ char *s = NULL;

	if (!api || cJSON_IsNull(api))
		return 0;
	if (cJSON_IsString(api) && streq(api->valuestring, "weft/v1"))
		return 0;
	s = weft_value_str(api);
	return weft_vfail_at(ctx, "apiVersion", "%s is not supported (use weft/v1 or leave it out)", s);
}

static int from_json(struct weft_vctx *ctx, const cJSON *doc, struct weft_resource *out)
{
	const cJSON *api = NULL, *kind = NULL, *md = NULL, *spec = NULL, *unknown = NULL, *c;
	cJSON *md_out = NULL, *spec_out = NULL, *empty = NULL, *res;
	enum weft_kind k = WEFT_KIND_COUNT;
	int r;

	if (!cJSON_IsObject(doc)) {
		_cleanup_free_ char *s = weft_value_str(doc);
		return weft_vfail(ctx, "expected an object (a resource), got %s", s);
	}
	cJSON_ArrayForEach(c, doc) {
		const cJSON **slot = streq(c->string, "apiVersion") ? &api
				   : streq(c->string, "kind")     ? &kind
				   : streq(c->string, "metadata") ? &md
				   : streq(c->string, "spec")     ? &spec
								  : NULL;
		if (!slot) {
			if (!unknown)
				unknown = c;
			continue;
		}
		if (*slot)
			return weft_vfail_at(ctx, c->string, "duplicate field");
		*slot = c;
	}
	if (check_api_version(ctx, api) < 0)
		return -EINVAL;
	if (kind_from(ctx, kind, &k) < 0)
		return -EINVAL;
	ctx->kind = k;
	if (unknown)
		return weft_vfail_at(ctx, unknown->string, "unknown field");

	if (!md || cJSON_IsNull(md))
		return weft_vfail_at(ctx, "metadata", "is required");
	size_t old = weft_vpath_push(ctx, "metadata");
	r = weft_schema_object(ctx, &weft_metadata_schema, md, &md_out);
	weft_vpath_pop(ctx, old);
	if (r < 0)
		return r;
	ctx->name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md_out, "name"));

	/* No spec is an empty spec: the defaults and required fields apply. */
	if (!spec || cJSON_IsNull(spec))
		spec = empty = cJSON_CreateObject();
	old = weft_vpath_push(ctx, "spec");
	r = weft_schema_object(ctx, weft_kind_spec_schema(k), spec, &spec_out);
	weft_vpath_pop(ctx, old);
	cJSON_Delete(empty);
	if (r < 0) {
		cJSON_Delete(md_out);
		return r;
	}

	res = cJSON_CreateObject();
	cJSON_AddStringToObject(res, "kind", weft_kind_info(k)->name);
	cJSON_AddItemToObject(res, "metadata", md_out);
	cJSON_AddItemToObject(res, "spec", spec_out);
	out->kind = k;
	out->name = wstrdup(ctx->name);
	out->doc = res;
	return 0;
}

/* Validate doc; label is "document N" and is replaced by the document's
 * name when it has a usable one. */
static int resource_from_json(const cJSON *doc, const char *label, struct weft_resource *out, char **err)
{
	struct weft_vctx ctx = {0};
	const char *name = usable_name(doc);
	int r;

	ctx.label = name ? name : label ? label : "document";
	ctx.kind = WEFT_KIND_COUNT;
	r = from_json(&ctx, doc, out);
	if (r < 0 && err)
		*err = TAKE_PTR(ctx.err);
	weft_vctx_clear(&ctx);
	return r;
}

int weft_resource_from_json(const cJSON *doc, const char *label, struct weft_resource *out, char **err)
{
	struct weft_resource res = {0};
	int r = resource_from_json(doc, label, &res, err);
	if (r == 0)
		*out = res;
	return r;
}

/* Parse JSON text as weft_json_parse() does: trailing non-space is an
 * error, and so is a NUL character in a string (keys, names and selectors
 * are C strings; the YAML reader refuses NUL too). Returns 0, or -EINVAL
 * with "line L:C: ..." in *err and the kind of fault in *fault. */
static int json_parse(const char *text, size_t len, cJSON **out, char **err, enum weft_json_fault *fault)
{
	struct weft_json_error e;

	if (weft_json_parse_err(text, len, out, &e) < 0) {
		if (err)
			*err = wasprintf("line %zu:%zu: %s", e.line, e.column, e.msg);
		if (fault)
			*fault = e.fault;
		weft_json_error_clear(&e);
		return -EINVAL;
	}
	return 0;
}

int weft_resource_decode(const char *json, size_t len, struct weft_resource *out, char **err)
{
	cJSON *v = NULL;
	int r;

	if (!json || json_parse(json, len, &v, err, NULL) < 0) {
		if (!json && err)
			*err = wstrdup("no data");
		return -EINVAL;
	}
	r = weft_resource_from_json(v, "stored resource", out, err);
	cJSON_Delete(v);
	return r;
}

char *weft_resource_encode(const struct weft_resource *r, bool pretty)
{
	char *s = pretty ? cJSON_Print(r->doc) : cJSON_PrintUnformatted(r->doc);
	if (!s) {
		fprintf(stderr, "weft: out of memory encoding a resource\n");
		abort();
	}
	return s;
}

/* --- manifests ----------------------------------------------------------- */

struct manifest {
	struct weft_resource *rs;
	size_t n, cap;
	char *err;
};

static int add_doc(struct manifest *m, const cJSON *doc)
{
	char label[48];

	snprintf(label, sizeof(label), "document %zu", m->n + 1);
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 8;
		m->rs = wrealloc(m->rs, m->cap * sizeof(*m->rs));
	}
	if (resource_from_json(doc, label, &m->rs[m->n], &m->err) < 0)
		return -EINVAL;
	m->n++;
	return 0;
}

/* Check the fields of a List itself: only kind, items, apiVersion (as a
 * resource's) and metadata (an object; a List is not stored, so what it
 * holds does not matter), each once, and items a list. */
static int check_list(struct manifest *m, const cJSON *v)
{
	static const char *const fields[] = {"kind", "items", "apiVersion", "metadata"};
	const cJSON *seen[ARRAY_SIZE(fields)] = {0}, *c;
	struct weft_vctx ctx = {0};
	char label[48];
	int r = 0;

	snprintf(label, sizeof(label), "document %zu", m->n + 1);
	ctx.label = label;
	cJSON_ArrayForEach(c, v) {
		size_t i = 0;
		while (i < ARRAY_SIZE(fields) && !streq(c->string, fields[i]))
			i++;
		if (i == ARRAY_SIZE(fields)) {
			r = weft_vfail_at(&ctx, c->string, "unknown field in a List");
			goto out;
		}
		if (seen[i]) {
			r = weft_vfail_at(&ctx, c->string, "duplicate field");
			goto out;
		}
		seen[i] = c;
	}
	if ((r = check_api_version(&ctx, seen[2])) < 0)
		goto out;
	if (seen[3] && !cJSON_IsNull(seen[3]) && !cJSON_IsObject(seen[3])) {
		_cleanup_free_ char *s = weft_value_str(seen[3]);
		r = weft_vfail_at(&ctx, "metadata", "expected an object, got %s", s);
		goto out;
	}
	if (!cJSON_IsArray(seen[1]))
		r = weft_vfail_at(&ctx, "items", "a List needs a list of items");
out:
	if (r < 0)
		m->err = TAKE_PTR(ctx.err);
	weft_vctx_clear(&ctx);
	return r;
}

/* A top-level value: a resource, a list of them or a List. */
static int add_value(struct manifest *m, const cJSON *v)
{
	const cJSON *items = NULL, *c;

	if (cJSON_IsNull(v))
		return 0; /* an empty YAML document */
	if (cJSON_IsArray(v)) {
		items = v;
	} else if (cJSON_IsObject(v) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "kind")) &&
		   streq(cJSON_GetObjectItemCaseSensitive(v, "kind")->valuestring, "List")) {
		if (check_list(m, v) < 0)
			return -EINVAL;
		items = cJSON_GetObjectItemCaseSensitive(v, "items");
	}
	if (!items)
		return add_doc(m, v);
	cJSON_ArrayForEach(c, items)
		if (add_doc(m, c) < 0)
			return -EINVAL;
	return 0;
}

static int cmp_res(const void *a, const void *b)
{
	const struct weft_resource *x = *(const struct weft_resource *const *)a;
	const struct weft_resource *y = *(const struct weft_resource *const *)b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	int r = strcmp(x->name, y->name);
	if (r)
		return r;
	return x < y ? -1 : x > y;
}

/* Two documents with the same kind and name would silently overwrite each
 * other in the store: refuse them, naming the later one. */
static int check_duplicates(struct manifest *m)
{
	_cleanup_free_ const struct weft_resource **sorted = NULL;
	const struct weft_resource *first = NULL, *second = NULL;

	if (m->n < 2)
		return 0;
	sorted = wcalloc(m->n, sizeof(*sorted));
	for (size_t i = 0; i < m->n; i++)
		sorted[i] = &m->rs[i];
	qsort(sorted, m->n, sizeof(*sorted), cmp_res);
	for (size_t i = 1; i < m->n; i++) {
		if (sorted[i]->kind == sorted[i - 1]->kind && streq(sorted[i]->name, sorted[i - 1]->name) &&
		    (!second || sorted[i] < second)) {
			first = sorted[i - 1];
			second = sorted[i];
		}
	}
	if (!second)
		return 0;
	m->err = wasprintf("%s: metadata.name: duplicate %s \"%s\" (documents %zu and %zu)", second->name,
			   weft_kind_info(second->kind)->name, second->name, (size_t)(first - m->rs) + 1,
			   (size_t)(second - m->rs) + 1);
	return -EINVAL;
}

int weft_manifest_parse(const char *text, size_t len, struct weft_resource **out, size_t *n, char **err)
{
	struct manifest m = {0};
	cJSON *docs = NULL, *c;
	size_t i = 0;
	int r = 0;

	if (!text)
		len = 0;
	while (i < len && strchr(" \t\r\n", text[i]) && text[i])
		i++;
	if (i < len && (text[i] == '{' || text[i] == '[')) {
		_cleanup_free_ char *jerr = NULL;
		cJSON *v = NULL;
		enum weft_json_fault fault = WEFT_JSON_SYNTAX;
		/* YAML flow style starts the same way; JSON is tried first and
		 * its error reported when YAML does not do better. Valid JSON
		 * with a NUL in a string is no YAML either. */
		if (json_parse(text, len, &v, &jerr, &fault) == 0) {
			docs = cJSON_CreateArray();
			cJSON_AddItemToArray(docs, v);
		} else if (fault == WEFT_JSON_NUL || weft_yaml_parse(text, len, &docs, NULL) < 0) {
			if (err)
				*err = TAKE_PTR(jerr);
			return -EINVAL;
		}
	} else if (len > 0 && weft_yaml_parse(text, len, &docs, err) < 0) {
		return -EINVAL;
	}

	cJSON_ArrayForEach(c, docs) {
		if ((r = add_value(&m, c)) < 0)
			break;
	}
	cJSON_Delete(docs);
	if (r == 0 && m.n == 0) {
		m.err = wstrdup("no resources");
		r = -EINVAL;
	}
	if (r == 0)
		r = check_duplicates(&m);
	if (r < 0) {
		weft_resources_free(m.rs, m.n);
		if (err)
			*err = TAKE_PTR(m.err);
		free(m.err);
		return -EINVAL;
	}
	*out = m.rs;
	*n = m.n;
	return 0;
}
