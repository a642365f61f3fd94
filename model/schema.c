/* schema.c - walk a cJSON document against a schema table (see schema.h). */
#include "model/schema.h"

#include "lib/ipaddr.h"

#include <math.h>
#include <strings.h>

/* Lists longer than this are refused: no resource needs more, and it keeps
 * the quadratic duplicate checks below cheap on hostile input. */
#define LIST_MAX 10000
#define UNIQUE_LIST_MAX 1024
#define MAP_MAX 1024
#define STRING_MAX 65536

/* --- paths and errors ------------------------------------------------ */

static size_t vpath_step(struct weft_vctx *ctx, const char *key, size_t index)
{
	if (ctx->depth == ctx->cap) {
		ctx->cap = ctx->cap ? ctx->cap * 2 : 16;
		ctx->path = wrealloc(ctx->path, ctx->cap * sizeof(*ctx->path));
	}
	ctx->path[ctx->depth] = (struct weft_vstep){key, index};
	return ctx->depth++;
}

size_t weft_vpath_push(struct weft_vctx *ctx, const char *seg)
{
	return vpath_step(ctx, seg, 0);
}

size_t weft_vpath_push_index(struct weft_vctx *ctx, size_t i)
{
	return vpath_step(ctx, NULL, i);
}

void weft_vpath_pop(struct weft_vctx *ctx, size_t depth)
{
	if (depth <= ctx->depth)
		ctx->depth = depth;
}

void weft_vctx_clear(struct weft_vctx *ctx)
{
	free(ctx->path);
	ctx->path = NULL;
	ctx->depth = ctx->cap = 0;
	free(ctx->err);
	ctx->err = NULL;
}

static int vfail(struct weft_vctx *ctx, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);
static int vfail(struct weft_vctx *ctx, const char *fmt, va_list ap)
{
	_cleanup_free_ char *msg = NULL;

	if (ctx->err)
		return -EINVAL;
	msg = wvasprintf(fmt, ap);
	if (ctx->depth) {
		struct weft_buf path = {0};
		for (size_t i = 0; i < ctx->depth; i++) {
			if (ctx->path[i].key)
				weft_json_path_key(&path, ctx->path[i].key);
			else
				weft_json_path_index(&path, ctx->path[i].index);
		}
		ctx->err = wasprintf("%s: %s: %s", ctx->label, path.data, msg);
		weft_buf_free(&path);
	} else {
		ctx->err = wasprintf("%s: %s", ctx->label, msg);
	}
	return -EINVAL;
}

int weft_vfail(struct weft_vctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(ctx, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int weft_vfail_at(struct weft_vctx *ctx, const char *sub, const char *fmt, ...)
{
	size_t old = weft_vpath_push(ctx, sub);
	va_list ap;
	va_start(ap, fmt);
	vfail(ctx, fmt, ap);
	va_end(ap);
	weft_vpath_pop(ctx, old);
	return -EINVAL;
}

void weft_number_str(double v, char *buf, size_t size)
{
	if (isfinite(v) && v == floor(v) && fabs(v) < 1e15) {
		snprintf(buf, size, "%.0f", v);
		return;
	}
	snprintf(buf, size, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, size, "%.17g", v);
}

char *weft_value_str(const cJSON *v)
{
	char num[64];

	if (cJSON_IsString(v))
		return weft_json_quote(v->valuestring, 64);
	if (cJSON_IsNumber(v)) {
		weft_number_str(v->valuedouble, num, sizeof(num));
		return wstrdup(num);
	}
	if (cJSON_IsTrue(v))
		return wstrdup("true");
	if (cJSON_IsFalse(v))
		return wstrdup("false");
	if (cJSON_IsNull(v))
		return wstrdup("null");
	if (cJSON_IsArray(v))
		return wstrdup("a list");
	if (cJSON_IsObject(v))
		return wstrdup("an object");
	return wstrdup("an invalid value");
}

static int type_error(struct weft_vctx *ctx, const char *expected, const cJSON *v)
{
	_cleanup_free_ char *s = weft_value_str(v);
	return weft_vfail(ctx, "expected %s, got %s", expected, s);
}

/* Fail with `"value" problem...`. */
static int value_error(struct weft_vctx *ctx, const char *value, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int value_error(struct weft_vctx *ctx, const char *value, const char *fmt, ...)
{
	_cleanup_free_ char *q = weft_json_quote(value, 64), *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = wvasprintf(fmt, ap);
	va_end(ap);
	return weft_vfail(ctx, "%s %s", q, msg);
}

/* --- strings ---------------------------------------------------------- */

/* Is s well-formed UTF-8 (no overlongs, no surrogates)? */
static bool utf8_valid(const unsigned char *s)
{
	while (*s) {
		unsigned c = *s, n, cp;
		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return false;
		for (unsigned i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		s += n + 1;
	}
	return true;
}

/* Every string weft keeps is valid UTF-8 without control characters: they
 * end up in one-line messages, logs, BIRD configs and YAML output. */
static int check_text(struct weft_vctx *ctx, const char *s)
{
	if (!utf8_valid((const unsigned char *)s))
		return weft_vfail(ctx, "not valid UTF-8");
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return value_error(ctx, s, "contains a control character");
	if (strlen(s) > STRING_MAX)
		return value_error(ctx, s, "is longer than %d characters", STRING_MAX);
	return 0;
}

static int run_check(struct weft_vctx *ctx, weft_check_fn check, const char *s)
{
	_cleanup_free_ char *why = NULL;
	int r;

	r = check_text(ctx, s);
	if (r < 0 || !check)
		return r;
	if (check(ctx, s, &why) < 0)
		return value_error(ctx, s, "%s", why ? why : "is not valid");
	return 0;
}

/* --- addresses -------------------------------------------------------- */

static int family_check(struct weft_vctx *ctx, const struct weft_field *f, const char *s, int family)
{
	if ((f->flags & WEFT_FIELD_V4) && family != AF_INET)
		return value_error(ctx, s, "is not an IPv4 %s", f->type == WEFT_T_IP ? "address" : "CIDR");
	if ((f->flags & WEFT_FIELD_V6) && family != AF_INET6)
		return value_error(ctx, s, "is not an IPv6 %s", f->type == WEFT_T_IP ? "address" : "CIDR");
	return 0;
}

static int strict_cidr(struct weft_vctx *ctx, const struct weft_field *f, const char *s, cJSON **out)
{
	struct weft_cidr c;
	char buf[WEFT_CIDR_STRLEN];

	if (weft_cidr_parse(s, true, &c) < 0) {
		if (weft_cidr_parse(s, false, &c) == 0) {
			weft_cidr_mask(&c);
			return value_error(ctx, s, "has host bits set (did you mean %s?)",
					   weft_cidr_str(&c, buf, sizeof(buf)));
		}
		return value_error(ctx, s, "is not a CIDR");
	}
	if (family_check(ctx, f, s, c.ip.family) < 0)
		return -EINVAL;
	*out = cJSON_CreateString(weft_cidr_str(&c, buf, sizeof(buf)));
	return 0;
}

/* A field's own check on an address that parsed (WEFT_T_IP): which
 * addresses make sense where, e.g. a BGP peer must be unicast. schema.h
 * documents check for strings and maps; an IP field may have one too. */
static int address_check(struct weft_vctx *ctx, const struct weft_field *f, const char *s)
{
	_cleanup_free_ char *why = NULL;

	if (f->check && f->check(ctx, s, &why) < 0)
		return value_error(ctx, s, "%s", why ? why : "is not valid here");
	return 0;
}

static int walk_address(struct weft_vctx *ctx, const struct weft_field *f, const char *s, cJSON **out)
{
	char buf[WEFT_CIDR_STRLEN];
	struct weft_cidr c;
	struct weft_ip ip;

	switch (f->type) {
	case WEFT_T_CIDR:
		return strict_cidr(ctx, f, s, out);
	case WEFT_T_CIDR_HOST:
		if (weft_cidr_parse(s, false, &c) < 0)
			return value_error(ctx, s, "is not an address with a prefix length (like 198.18.0.11/24)");
		if (family_check(ctx, f, s, c.ip.family) < 0)
			return -EINVAL;
		*out = cJSON_CreateString(weft_cidr_str(&c, buf, sizeof(buf)));
		return 0;
	case WEFT_T_IP:
		if (weft_ip_parse(s, &ip) < 0)
			return value_error(ctx, s, "is not an IP address");
		if (family_check(ctx, f, s, ip.family) < 0 || address_check(ctx, f, s) < 0)
			return -EINVAL;
		*out = cJSON_CreateString(weft_ip_str(&ip, buf, sizeof(buf)));
		return 0;
	case WEFT_T_NET:
		if (strchr(s, '/'))
			return strict_cidr(ctx, f, s, out);
		if (weft_ip_parse(s, &ip) < 0)
			return value_error(ctx, s, "is not an IP address or a CIDR");
		if (family_check(ctx, f, s, ip.family) < 0)
			return -EINVAL;
		c.ip = ip;
		c.prefixlen = weft_ip_bits(&ip);
		*out = cJSON_CreateString(weft_cidr_str(&c, buf, sizeof(buf)));
		return 0;
	default:
		return weft_vfail(ctx, "internal error: not an address type");
	}
}

/* --- ports and protocols --------------------------------------------- */

static int parse_port(const char *s, size_t len, int64_t *out)
{
	char buf[8];

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = 0;
	return weft_parse_int64(buf, 0, 65535, out);
}

static int walk_port(struct weft_vctx *ctx, const cJSON *in, cJSON **out)
{
	const char *s, *colon;
	int64_t lo, hi;
	char buf[32];

	if (cJSON_IsNumber(in)) {
		double v = in->valuedouble;
		if (v != floor(v) || v < 0 || v > 65535) {
			weft_number_str(v, buf, sizeof(buf));
			return weft_vfail(ctx, "%s is not a port (0..65535)", buf);
		}
		*out = cJSON_CreateNumber(v);
		return 0;
	}
	if (!cJSON_IsString(in))
		return type_error(ctx, "a port or a port range", in);
	s = in->valuestring;
	colon = strchr(s, ':');
	if (!colon) {
		if (parse_port(s, strlen(s), &lo) < 0)
			return value_error(ctx, s, "is not a port (0..65535) or a port range (like \"8000:8080\")");
		*out = cJSON_CreateNumber((double)lo);
		return 0;
	}
	if (parse_port(s, (size_t)(colon - s), &lo) < 0 || parse_port(colon + 1, strlen(colon + 1), &hi) < 0)
		return value_error(ctx, s, "is not a port (0..65535) or a port range (like \"8000:8080\")");
	if (lo > hi)
		return value_error(ctx, s, "is not a port range: %lld is above %lld", (long long)lo, (long long)hi);
	if (lo == hi) {
		*out = cJSON_CreateNumber((double)lo);
		return 0;
	}
	snprintf(buf, sizeof(buf), "%lld:%lld", (long long)lo, (long long)hi);
	*out = cJSON_CreateString(buf);
	return 0;
}

static const char *const protocol_names[] = {"tcp", "udp", "icmp", "icmpv6", "sctp", "udplite", NULL};

static int walk_protocol(struct weft_vctx *ctx, const cJSON *in, cJSON **out)
{
	int64_t n;
	char buf[32];

	if (cJSON_IsNumber(in)) {
		double v = in->valuedouble;
		if (v != floor(v) || v < 0 || v > 255) {
			weft_number_str(v, buf, sizeof(buf));
			return weft_vfail(ctx, "%s is not a protocol number (0..255)", buf);
		}
		*out = cJSON_CreateNumber(v);
		return 0;
	}
	if (!cJSON_IsString(in))
		return type_error(ctx, "a protocol name or number", in);
	for (size_t i = 0; protocol_names[i]; i++) {
		if (strcasecmp(in->valuestring, protocol_names[i]) == 0) {
			*out = cJSON_CreateString(protocol_names[i]);
			return 0;
		}
	}
	if (in->valuestring[0] >= '0' && in->valuestring[0] <= '9' &&
	    weft_parse_int64(in->valuestring, 0, 255, &n) == 0) {
		*out = cJSON_CreateNumber((double)n);
		return 0;
	}
	return value_error(ctx, in->valuestring, "is not a protocol (tcp, udp, icmp, icmpv6, sctp, udplite or 0..255)");
}

/* --- containers ------------------------------------------------------- */

static int walk_value(struct weft_vctx *ctx, const struct weft_field *f, const cJSON *in, cJSON **out);

static int walk_list(struct weft_vctx *ctx, const struct weft_field *f, const cJSON *in, cJSON **out)
{
	int64_t max = f->max > 0 ? f->max : LIST_MAX;
	cJSON *list, *item, *prev;
	const cJSON *c;
	size_t i = 0;

	if (!cJSON_IsArray(in))
		return type_error(ctx, "a list", in);
	if ((f->flags & WEFT_FIELD_UNIQUE) && max > UNIQUE_LIST_MAX)
		max = UNIQUE_LIST_MAX;
	if (cJSON_GetArraySize(in) > max)
		return weft_vfail(ctx, "more than %lld entries", (long long)max);
	list = cJSON_CreateArray();
	cJSON_ArrayForEach(c, in) {
		size_t old = weft_vpath_push_index(ctx, i);
		item = NULL;
		if (walk_value(ctx, f->elem, c, &item) < 0) {
			cJSON_Delete(list);
			return -EINVAL;
		}
		if (f->flags & WEFT_FIELD_UNIQUE) {
			cJSON_ArrayForEach(prev, list) {
				if (cJSON_Compare(prev, item, true)) {
					_cleanup_free_ char *s = weft_value_str(item);
					cJSON_Delete(item);
					cJSON_Delete(list);
					return weft_vfail(ctx, "%s is listed twice", s);
				}
			}
		}
		cJSON_AddItemToArray(list, item);
		weft_vpath_pop(ctx, old);
		i++;
	}
	*out = list;
	return 0;
}

static int cmp_child(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	return strcmp(x->string, y->string);
}

/* Maps are canonical with their keys sorted, so that two equal maps are
 * the same JSON text whatever order the manifest wrote them in. */
static int walk_map(struct weft_vctx *ctx, const struct weft_field *f, const cJSON *in, cJSON **out)
{
	_cleanup_free_ const cJSON **kids = NULL;
	size_t n = 0, max = MAP_MAX;
	const cJSON *c;
	cJSON *map;

	if (!cJSON_IsObject(in))
		return type_error(ctx, "an object of strings", in);
	if ((size_t)cJSON_GetArraySize(in) > max)
		return weft_vfail(ctx, "more than %zu entries", max);
	kids = wcalloc((size_t)cJSON_GetArraySize(in) + 1, sizeof(*kids));
	cJSON_ArrayForEach(c, in) {
		size_t old = weft_vpath_push(ctx, c->string);
		if (check_text(ctx, c->string) < 0)
			return -EINVAL;
		for (size_t j = 0; j < n; j++)
			if (streq(kids[j]->string, c->string))
				return weft_vfail(ctx, "duplicate key");
		if (f->key_check) {
			_cleanup_free_ char *why = NULL;
			if (f->key_check(ctx, c->string, &why) < 0)
				return value_error(ctx, c->string, "%s", why ? why : "is not a valid key");
		}
		if (!cJSON_IsString(c))
			return type_error(ctx, "a string", c);
		if (run_check(ctx, f->check, c->valuestring) < 0)
			return -EINVAL;
		kids[n++] = c;
		weft_vpath_pop(ctx, old);
	}
	qsort(kids, n, sizeof(*kids), cmp_child);
	map = cJSON_CreateObject();
	for (size_t j = 0; j < n; j++)
		cJSON_AddItemToObject(map, kids[j]->string, cJSON_CreateString(kids[j]->valuestring));
	*out = map;
	return 0;
}

static int walk_enum(struct weft_vctx *ctx, const struct weft_field *f, const cJSON *in, cJSON **out)
{
	struct weft_buf list = {0};

	if (!cJSON_IsString(in))
		return type_error(ctx, "a string", in);
	if (check_text(ctx, in->valuestring) < 0)
		return -EINVAL;
	for (size_t i = 0; f->values[i]; i++) {
		if (strcasecmp(in->valuestring, f->values[i]) == 0) {
			*out = cJSON_CreateString(f->values[i]);
			return 0;
		}
	}
	for (size_t i = 0; f->values[i]; i++)
		weft_buf_printf(&list, "%s%s", i ? ", " : "", f->values[i][0] ? f->values[i] : "\"\"");
	value_error(ctx, in->valuestring, "is not one of %s", list.data);
	weft_buf_free(&list);
	return -EINVAL;
}

static int walk_value(struct weft_vctx *ctx, const struct weft_field *f, const cJSON *in, cJSON **out)
{
	char buf[64], lo[32], hi[32];
	double v;

	switch (f->type) {
	case WEFT_T_STRING:
		if (!cJSON_IsString(in))
			return type_error(ctx, "a string", in);
		if (run_check(ctx, f->check, in->valuestring) < 0)
			return -EINVAL;
		*out = cJSON_CreateString(in->valuestring);
		return 0;
	case WEFT_T_BOOL:
		if (!cJSON_IsBool(in))
			return type_error(ctx, "true or false", in);
		*out = cJSON_CreateBool(cJSON_IsTrue(in));
		return 0;
	case WEFT_T_INT:
		if (!cJSON_IsNumber(in))
			return type_error(ctx, "an integer", in);
		v = in->valuedouble;
		weft_number_str(v, buf, sizeof(buf));
		if (!isfinite(v) || v != floor(v))
			return weft_vfail(ctx, "%s is not an integer", buf);
		if (f->flags & WEFT_FIELD_RANGE) {
			if (v < (double)f->min || v > (double)f->max) {
				snprintf(lo, sizeof(lo), "%lld", (long long)f->min);
				snprintf(hi, sizeof(hi), "%lld", (long long)f->max);
				return weft_vfail(ctx, "%s is out of range %s..%s", buf, lo, hi);
			}
		} else if (fabs(v) > 9007199254740992.0) {
			/* Beyond 2^53 a double no longer holds every integer. */
			return weft_vfail(ctx, "%s is out of range", buf);
		}
		*out = cJSON_CreateNumber(v);
		return 0;
	case WEFT_T_NUMBER:
		if (!cJSON_IsNumber(in))
			return type_error(ctx, "a number", in);
		if (!isfinite(in->valuedouble))
			return weft_vfail(ctx, "not a finite number");
		*out = cJSON_CreateNumber(in->valuedouble);
		return 0;
	case WEFT_T_ENUM:
		return walk_enum(ctx, f, in, out);
	case WEFT_T_CIDR:
	case WEFT_T_CIDR_HOST:
	case WEFT_T_IP:
	case WEFT_T_NET:
		if (!cJSON_IsString(in))
			return type_error(ctx, "a string", in);
		if (check_text(ctx, in->valuestring) < 0)
			return -EINVAL;
		return walk_address(ctx, f, in->valuestring, out);
	case WEFT_T_PORT:
		if (cJSON_IsString(in) && check_text(ctx, in->valuestring) < 0)
			return -EINVAL;
		return walk_port(ctx, in, out);
	case WEFT_T_PROTOCOL:
		if (cJSON_IsString(in) && check_text(ctx, in->valuestring) < 0)
			return -EINVAL;
		return walk_protocol(ctx, in, out);
	case WEFT_T_LIST:
		return walk_list(ctx, f, in, out);
	case WEFT_T_OBJECT:
		return weft_schema_object(ctx, f->sub, in, out);
	case WEFT_T_MAP:
		return walk_map(ctx, f, in, out);
	}
	return weft_vfail(ctx, "internal error: unknown field type");
}

/* Suggest the field a misspelt key probably meant (same letters, other case). */
static const char *case_match(const struct weft_schema *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcasecmp(s->fields[i].name, key) == 0)
			return s->fields[i].name;
	return NULL;
}

int weft_schema_object(struct weft_vctx *ctx, const struct weft_schema *s, const cJSON *in, cJSON **out)
{
	const cJSON *given[64] = {0};
	const cJSON *c;
	cJSON *obj;

	if (s->n > ARRAY_SIZE(given))
		return weft_vfail(ctx, "internal error: schema too large");
	if (!cJSON_IsObject(in))
		return type_error(ctx, "an object", in);
	cJSON_ArrayForEach(c, in) {
		size_t i;
		for (i = 0; i < s->n; i++)
			if (streq(s->fields[i].name, c->string))
				break;
		if (i == s->n) {
			const char *hint = case_match(s, c->string);
			if (hint)
				return weft_vfail_at(ctx, c->string, "unknown field (did you mean %s?)", hint);
			return weft_vfail_at(ctx, c->string, "unknown field");
		}
		if (given[i])
			return weft_vfail_at(ctx, c->string, "duplicate field");
		given[i] = c;
	}

	obj = cJSON_CreateObject();
	for (size_t i = 0; i < s->n; i++) {
		const struct weft_field *f = &s->fields[i];
		size_t old = weft_vpath_push(ctx, f->name);
		cJSON *v = NULL;

		c = given[i];
		/* null means absent, as in Kubernetes manifests ("labels:" with
		 * nothing after it is null in YAML). */
		if (c && cJSON_IsNull(c))
			c = NULL;
		if (c) {
			if (walk_value(ctx, f, c, &v) < 0)
				goto fail;
		} else if (f->flags & WEFT_FIELD_REQUIRED) {
			weft_vfail(ctx, "is required");
			goto fail;
		} else if (f->def_fn) {
			v = f->def_fn(ctx, obj);
		} else if (f->def) {
			v = cJSON_Parse(f->def);
		}
		if (v && (f->flags & WEFT_FIELD_IGNORE)) {
			cJSON_Delete(v);
			v = NULL;
		}
		if (v)
			cJSON_AddItemToObject(obj, f->name, v);
		weft_vpath_pop(ctx, old);
	}
	if (s->post && s->post(ctx, obj) < 0) {
		cJSON_Delete(obj);
		return -EINVAL;
	}
	*out = obj;
	return 0;
fail:
	cJSON_Delete(obj);
	return -EINVAL;
}
