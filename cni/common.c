/* common.c - versions, errors, value parsers and typed JSON readers shared
 * by the cni module; conventions in cni.h. */
#include "cni/cni-internal.h"

#include <ctype.h>

static const char *const version_names[] = {
	[WEFT_CNI_V0_3_0] = "0.3.0", [WEFT_CNI_V0_3_1] = "0.3.1", [WEFT_CNI_V0_4_0] = "0.4.0",
	[WEFT_CNI_V1_0_0] = "1.0.0", [WEFT_CNI_V1_1_0] = "1.1.0",
};

int weft_cni_version_parse(const char *s, enum weft_cni_version *out)
{
	int parts = 0;
	const char *p = s;

	if (!s)
		return -EINVAL;
	for (size_t v = 1; v < ARRAY_SIZE(version_names); v++) {
		if (streq(s, version_names[v])) {
			*out = (enum weft_cni_version)v;
			return 0;
		}
	}
	/* Tell "a version we do not speak" (code 1) from garbage (code 7):
	 * one to three dot-separated decimal numbers. */
	for (;;) {
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p))
			p++;
		parts++;
		if (*p == 0)
			break;
		if (*p != '.' || parts == 3)
			return -EINVAL;
		p++;
	}
	return -ENOTSUP;
}

const char *weft_cni_version_str(enum weft_cni_version v)
{
	if ((size_t)v == 0 || (size_t)v >= ARRAY_SIZE(version_names))
		return version_names[WEFT_CNI_VERSION_LATEST];
	return version_names[v];
}

int weft_cni_error_set(struct weft_cni_error *e, int code, const char *details, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return -EINVAL;
	enum weft_cni_version v = e->version;

	weft_cni_error_clear(e);
	e->version = v;
	va_start(ap, fmt);
	e->msg = wvasprintf(fmt, ap);
	va_end(ap);
	/* The message is one line: runtimes log it as such. */
	for (char *p = e->msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	e->code = code;
	e->details = details && *details ? wstrdup(details) : NULL;
	return -EINVAL;
}

void weft_cni_error_clear(struct weft_cni_error *e)
{
	if (!e)
		return;
	free(e->msg);
	free(e->details);
	*e = (struct weft_cni_error){0};
}

char *weft_cni_error_json(const struct weft_cni_error *e, enum weft_cni_version v)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	if (!v && e)
		v = e->version;
	cJSON_AddStringToObject(o, "cniVersion", weft_cni_version_str(v));
	cJSON_AddNumberToObject(o, "code", e && e->code ? e->code : WEFT_CNI_ERR_INTERNAL);
	cJSON_AddStringToObject(o, "msg", e && e->msg ? e->msg : "unknown error");
	if (e && e->details && *e->details)
		cJSON_AddStringToObject(o, "details", e->details);
	s = weft_json_print(o);
	cJSON_Delete(o);
	return s;
}

char *weft_cni_version_json(void)
{
	cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray();
	char *s;

	cJSON_AddStringToObject(o, "cniVersion", weft_cni_version_str(WEFT_CNI_VERSION_LATEST));
	for (size_t v = 1; v < ARRAY_SIZE(version_names); v++)
		cJSON_AddItemToArray(a, cJSON_CreateString(version_names[v]));
	cJSON_AddItemToObject(o, "supportedVersions", a);
	s = weft_json_print(o);
	cJSON_Delete(o);
	return s;
}

void weft_cni_strv_clear(struct weft_cni_strv *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct weft_cni_strv){0};
}

void weft_cni_dns_clear(struct weft_cni_dns *d)
{
	if (!d)
		return;
	weft_cni_strv_clear(&d->nameservers);
	weft_cni_strv_clear(&d->search);
	weft_cni_strv_clear(&d->options);
	free(d->domain);
	*d = (struct weft_cni_dns){0};
}

/* ---------------------------------------------------------------------- */

int weft_cni_parse_bandwidth(const char *s, uint64_t *out)
{
	/* value = digits / 10^scale * mult, accumulated exactly in 128 bits. */
	unsigned __int128 num = 0, mult = 1, den = 1, v;
	unsigned digits = 0, sig = 0;
	const char *p = s;
	bool frac = false;

	if (!s || !*s)
		return -EINVAL;
	for (; isdigit((unsigned char)*p) || (*p == '.' && !frac); p++) {
		if (*p == '.') {
			frac = true;
			continue;
		}
		digits++;
		/* At most 19 significant digits and exponents up to 18 keep
		 * every product below 10^38 < 2^128. */
		if ((num > 0 || frac) && ++sig > 19)
			return -ERANGE;
		num = num * 10 + (unsigned)(*p - '0');
		if (frac)
			den *= 10;
	}
	if (digits == 0 || (frac && p[-1] == '.'))
		return -EINVAL;
	/* An exponent needs a digit or a sign after the 'e'; "1E" alone is
	 * the exa suffix, as in Kubernetes. */
	if ((*p == 'e' || *p == 'E') && (isdigit((unsigned char)p[1]) || p[1] == '+' || p[1] == '-')) {
		int64_t e;
		const char *q = p + 1;
		bool neg = *q == '-';

		if (*q == '+' || *q == '-')
			q++;
		if (!*q || strspn(q, "0123456789") != strlen(q))
			return -EINVAL;
		if (weft_parse_int64(q, 0, 18, &e) < 0)
			return -ERANGE;
		for (int64_t i = 0; i < e; i++) {
			if (neg)
				den *= 10;
			else
				mult *= 10;
		}
	} else if (*p) {
		static const struct {
			const char *suffix;
			uint64_t base;
			unsigned power;
		} suffixes[] = {
			{"k", 1000, 1},  {"M", 1000, 2},  {"G", 1000, 3},  {"T", 1000, 4},  {"P", 1000, 5},
			{"E", 1000, 6},  {"Ki", 1024, 1}, {"Mi", 1024, 2}, {"Gi", 1024, 3}, {"Ti", 1024, 4},
			{"Pi", 1024, 5}, {"Ei", 1024, 6},
		};
		size_t i;

		for (i = 0; i < ARRAY_SIZE(suffixes); i++)
			if (streq(p, suffixes[i].suffix))
				break;
		if (i == ARRAY_SIZE(suffixes))
			return -EINVAL;
		for (unsigned k = 0; k < suffixes[i].power; k++)
			mult *= suffixes[i].base;
	}
	v = num * mult;
	v = v / den + (v % den != 0);
	if (v > UINT64_MAX)
		return -ERANGE;
	*out = (uint64_t)v;
	return 0;
}

int weft_cni_parse_mac(const char *s, uint8_t out[6])
{
	uint8_t mac[6];

	if (!s || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		const char *p = s + i * 3;
		int hi, lo;

		if (i < 5 && p[2] != ':')
			return -EINVAL;
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
			return -EINVAL;
		hi = isdigit((unsigned char)p[0]) ? p[0] - '0' : tolower((unsigned char)p[0]) - 'a' + 10;
		lo = isdigit((unsigned char)p[1]) ? p[1] - '0' : tolower((unsigned char)p[1]) - 'a' + 10;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(out, mac, 6);
	return 0;
}

int weft_cni_check_ifname(const char *name, const char **why)
{
	const char *w = NULL;

	if (!name || !*name)
		w = "is empty";
	else if (strlen(name) > 15)
		w = "is too long (more than 15 characters)";
	else if (streq(name, ".") || streq(name, ".."))
		w = "may not be \".\" or \"..\"";
	else
		for (const char *p = name; *p; p++)
			if (*p == '/' || *p == ':' || isspace((unsigned char)*p) || (unsigned char)*p < 0x20 ||
			    (unsigned char)*p == 0x7f) {
				w = "may not contain '/', ':', white space or control characters";
				break;
			}
	if (w) {
		if (why)
			*why = w;
		return -EINVAL;
	}
	return 0;
}

int weft_cni_check_container_id(const char *id, const char **why)
{
	const char *w = NULL;

	/* The spec: an alphanumeric, then alphanumerics, '_', '.' or '-'. */
	if (!id || !*id)
		w = "is empty";
	else if (!isalnum((unsigned char)id[0]))
		w = "must start with a letter or a digit";
	else
		for (const char *p = id; *p; p++)
			if (!isalnum((unsigned char)*p) && !strchr("_.-", *p)) {
				w = "may contain only letters, digits, '_', '.' and '-'";
				break;
			}
	if (w) {
		if (why)
			*why = w;
		return -EINVAL;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* JSON helpers */

char *weft_cni_value_str(const cJSON *v)
{
	char *s = weft_json_print(v);

	if (strlen(s) > 64) {
		char *t = wasprintf("%.60s...", s);
		free(s);
		return t;
	}
	return s;
}

const char *weft_cni_type_name(const cJSON *v)
{
	if (!v || cJSON_IsNull(v))
		return "null";
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsArray(v))
		return "a list";
	if (cJSON_IsObject(v))
		return "an object";
	return "an invalid value";
}

int weft_cni_fail(struct weft_cni_error *err, int code, const char *path, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = wvasprintf(fmt, ap);
	va_end(ap);
	if (path && *path)
		return weft_cni_error_set(err, code, NULL, "%s: %s", path, msg);
	return weft_cni_error_set(err, code, NULL, "%s", msg);
}

int weft_cni_json_parse(const char *text, size_t len, const char *what, cJSON **out, struct weft_cni_error *err)
{
	struct weft_json_error e;
	size_t blank = 0;
	int r;

	/* text need not be NUL-terminated: stay within len. */
	while (text && blank < len && text[blank] && strchr(" \t\r\n", text[blank]))
		blank++;
	if (!text || blank == len)
		return weft_cni_fail(err, WEFT_CNI_ERR_DECODE, "", "%s is empty", what);
	if (weft_json_parse_err(text, len, out, &e) == 0)
		return 0;
	/* A NUL is valid JSON, but a string weft would read cut short. */
	if (e.fault == WEFT_JSON_NUL)
		r = weft_cni_fail(err, WEFT_CNI_ERR_DECODE, "", "%s at line %zu, column %zu (byte %zu): %s", what, e.line,
				  e.column, e.offset, e.msg);
	else
		r = weft_cni_fail(err, WEFT_CNI_ERR_DECODE, "",
				  "%s is not valid JSON: error at line %zu, column %zu (byte %zu)", what, e.line, e.column,
				  e.offset);
	weft_json_error_clear(&e);
	return r;
}

const cJSON *weft_cni_duplicate_key(const cJSON *obj, const cJSON *after)
{
	const cJSON *a, *b;

	if (!cJSON_IsObject(obj))
		return NULL;
	/* Quadratic, but configs have a few dozen keys per object at most,
	 * and the fuzzer's worst case (thousands of keys) stays well under a
	 * second. */
	for (b = after ? after->next : obj->child; b; b = b->next)
		for (a = obj->child; a != b; a = a->next)
			if (a->string && b->string && streq(a->string, b->string))
				return b;
	return NULL;
}

static int want(const cJSON *item, const char *path, const char *expected, struct weft_cni_error *err)
{
	_cleanup_free_ char *s = weft_cni_value_str(item);
	return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, path, "expected %s, got %s %s", expected,
			     weft_cni_type_name(item), s);
}

int weft_cni_want_string(const cJSON *item, const char *path, const char **out, struct weft_cni_error *err)
{
	if (!cJSON_IsString(item) || !item->valuestring)
		return want(item, path, "a string", err);
	*out = item->valuestring;
	return 0;
}

int weft_cni_want_bool(const cJSON *item, const char *path, bool *out, struct weft_cni_error *err)
{
	if (!cJSON_IsBool(item))
		return want(item, path, "true or false", err);
	*out = cJSON_IsTrue(item);
	return 0;
}

int weft_cni_want_int(const cJSON *item, const char *path, int64_t min, int64_t max, int64_t *out,
		      struct weft_cni_error *err)
{
	int64_t v = 0;
	int r = weft_json_int64(item, &v);

	if (r == -EINVAL || (r < 0 && !cJSON_IsNumber(item)))
		return want(item, path, "an integer", err);
	if (r < 0 || v < min || v > max) {
		_cleanup_free_ char *s = weft_cni_value_str(item);
		return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, path, "%s is out of range (%lld..%lld)", s,
				     (long long)min, (long long)max);
	}
	*out = v;
	return 0;
}

int weft_cni_want_strv(const cJSON *item, const char *path, struct weft_cni_strv *out, struct weft_cni_error *err)
{
	struct weft_cni_strv s = {0};
	const cJSON *c;
	size_t i = 0;

	if (!cJSON_IsArray(item))
		return want(item, path, "a list of strings", err);
	s.n = (size_t)cJSON_GetArraySize(item);
	s.v = wcalloc(s.n ? s.n : 1, sizeof(char *));
	cJSON_ArrayForEach(c, item) {
		if (!cJSON_IsString(c) || !c->valuestring) {
			_cleanup_free_ char *p = wasprintf("%s[%zu]", path, i);
			weft_cni_strv_clear(&s);
			return want(c, p, "a string", err);
		}
		s.v[i++] = wstrdup(c->valuestring);
	}
	*out = s;
	return 0;
}

int weft_cni_want_ip(const cJSON *item, const char *path, struct weft_ip *out, struct weft_cni_error *err)
{
	const char *s = NULL;

	if (weft_cni_want_string(item, path, &s, err) < 0)
		return -EINVAL;
	if (weft_ip_parse(s, out) < 0) {
		_cleanup_free_ char *v = weft_cni_value_str(item);
		return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, path, "%s is not an IP address", v);
	}
	return 0;
}

int weft_cni_want_cidr(const cJSON *item, const char *path, bool host, struct weft_cidr *out,
		       struct weft_cni_error *err)
{
	struct weft_cidr c;
	const char *s = NULL;

	if (weft_cni_want_string(item, path, &s, err) < 0)
		return -EINVAL;
	if (weft_cidr_parse(s, false, &c) < 0) {
		_cleanup_free_ char *v = weft_cni_value_str(item);
		return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, path, "%s is not a CIDR", v);
	}
	if (!host)
		weft_cidr_mask(&c);
	*out = c;
	return 0;
}

int weft_cni_want_dns(const cJSON *item, const char *path, struct weft_cni_dns *out, struct weft_cni_error *err)
{
	struct weft_cni_dns d = {0};
	const cJSON *c;

	if (!cJSON_IsObject(item))
		return want(item, path, "an object", err);
	cJSON_ArrayForEach(c, item) {
		_cleanup_free_ char *p = wasprintf("%s.%s", path, c->string);
		int r = 0;

		if (streq(c->string, "nameservers")) {
			weft_cni_strv_clear(&d.nameservers);
			r = weft_cni_want_strv(c, p, &d.nameservers, err);
			for (size_t i = 0; r == 0 && i < d.nameservers.n; i++) {
				struct weft_ip ip;
				if (weft_ip_parse(d.nameservers.v[i], &ip) < 0)
					r = weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, p,
							  "\"%s\" is not an IP address", d.nameservers.v[i]);
			}
		} else if (streq(c->string, "domain")) {
			const char *s = NULL;
			r = weft_cni_want_string(c, p, &s, err);
			if (r == 0) {
				free(d.domain);
				d.domain = wstrdup(s);
			}
		} else if (streq(c->string, "search")) {
			weft_cni_strv_clear(&d.search);
			r = weft_cni_want_strv(c, p, &d.search, err);
		} else if (streq(c->string, "options")) {
			weft_cni_strv_clear(&d.options);
			r = weft_cni_want_strv(c, p, &d.options, err);
		}
		/* Other keys: later spec versions may add some; ignore. */
		if (r < 0) {
			weft_cni_dns_clear(&d);
			return r;
		}
	}
	*out = d;
	return 0;
}

int weft_cni_want_route(const cJSON *item, const char *path, bool extras, struct weft_cni_route *out,
			struct weft_cni_error *err)
{
	struct weft_cni_route rt = WEFT_CNI_ROUTE_INIT;
	const cJSON *dst, *gw, *c;
	_cleanup_free_ char *pd = wasprintf("%s.dst", path), *pg = wasprintf("%s.gw", path);

	if (!cJSON_IsObject(item))
		return want(item, path, "an object {\"dst\": CIDR, \"gw\": address}", err);
	dst = cJSON_GetObjectItemCaseSensitive(item, "dst");
	if (!dst)
		return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, pd, "is required");
	if (weft_cni_want_cidr(dst, pd, false, &rt.dst, err) < 0)
		return -EINVAL;
	gw = cJSON_GetObjectItemCaseSensitive(item, "gw");
	if (gw && !cJSON_IsNull(gw) && !(cJSON_IsString(gw) && gw->valuestring[0] == 0)) {
		if (weft_cni_want_ip(gw, pg, &rt.gw, err) < 0)
			return -EINVAL;
		if (rt.gw.family != rt.dst.ip.family)
			return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, pg,
					     "\"%s\" is not of the same address family as dst", gw->valuestring);
		rt.has_gw = true;
	}
	if (extras) {
		static const char *const names[] = {"mtu", "advmss", "priority", "table", "scope"};
		int *slots[] = {&rt.mtu, &rt.advmss, &rt.priority, &rt.table, &rt.scope};
		static const int64_t max[] = {65535, 65535, INT32_MAX, INT32_MAX, 255};

		for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
			_cleanup_free_ char *p = NULL;
			int64_t v;

			c = cJSON_GetObjectItemCaseSensitive(item, names[i]);
			if (!c || cJSON_IsNull(c))
				continue;
			p = wasprintf("%s.%s", path, names[i]);
			if (weft_cni_want_int(c, p, 0, max[i], &v, err) < 0)
				return -EINVAL;
			*slots[i] = (int)v;
		}
	}
	*out = rt;
	return 0;
}
