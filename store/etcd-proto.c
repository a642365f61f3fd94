/* etcd-proto.c - the etcd v3 JSON gateway protocol: URL parsing, base64,
 * request bodies and response decoding (see etcd-proto.h). */
#include "store/etcd-proto.h"

#include "lib/json.h"

#include <cjson/cJSON.h>
#include <ctype.h>

/* ---- URL ---- */

void weft_etcd_conf_clear(struct weft_etcd_conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_endpoints; i++)
		free(c->endpoints[i]);
	free(c->endpoints);
	free(c->prefix);
	free(c->ca);
	free(c->cert);
	free(c->key);
	memset(c, 0, sizeof(*c));
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) into a new string; NULL if an escape is bad or
 * decodes to a control character (option values are paths and key
 * prefixes, both printable). */
static char *pct_decode(const char *s, size_t n)
{
	struct weft_buf b = {0};

	weft_buf_append(&b, "", 0);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
			int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				weft_buf_free(&b);
				return NULL;
			}
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f) {
			weft_buf_free(&b);
			return NULL;
		}
		weft_buf_append(&b, &c, 1);
	}
	return weft_buf_steal(&b);
}

static bool valid_host(const char *h, size_t n)
{
	if (n == 0 || n > 255)
		return false;
	if (h[0] == '[') {
		if (n < 3 || h[n - 1] != ']')
			return false;
		for (size_t i = 1; i < n - 1; i++)
			if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
				return false;
		return true;
	}
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_')
			return false;
	return true;
}

/* Parse one "HOST[:PORT]" into a normalized "HOST:PORT". */
static int parse_endpoint(const char *s, size_t n, char **out)
{
	const char *colon = NULL;
	int64_t port = 2379;

	if (n > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', n);
		if (!rb)
			return -EINVAL;
		if ((size_t)(rb - s) + 1 < n) {
			if (rb[1] != ':')
				return -EINVAL;
			colon = rb + 1;
		}
	} else {
		colon = memchr(s, ':', n);
	}
	size_t hlen = colon ? (size_t)(colon - s) : n;
	if (!valid_host(s, hlen))
		return -EINVAL;
	if (colon) {
		_cleanup_free_ char *p = wstrndup(colon + 1, n - hlen - 1);
		if (!isdigit((unsigned char)p[0]) || weft_parse_int64(p, 1, 65535, &port) < 0)
			return -EINVAL;
	}
	*out = wasprintf("%.*s:%d", (int)hlen, s, (int)port);
	return 0;
}

static int conf_fail(char **errmsg, const char *fmt, ...) PRINTF_LIKE(2, 3);
static int conf_fail(char **errmsg, const char *fmt, ...)
{
	va_list ap;

	if (errmsg) {
		va_start(ap, fmt);
		*errmsg = wvasprintf(fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int weft_etcd_conf_parse(const char *scheme, const char *spec, struct weft_etcd_conf *out, char **errmsg)
{
	struct weft_etcd_conf c = {0};
	const char *p, *q, *hosts_end;
	int r;

	if (errmsg)
		*errmsg = NULL;
	c.tls = streq(scheme, "etcds");
	c.timeout_ms = WEFT_ETCD_TIMEOUT_MS_DEFAULT;
	if (!startswith(spec, "//"))
		return conf_fail(errmsg, "store URL %s:%s: expected %s://HOST:PORT[,HOST:PORT...][?opts]", scheme,
				 spec, scheme);
	p = spec + 2;
	q = strchr(p, '?');
	hosts_end = q ? q : p + strlen(p);
	/* Allow one trailing slash ("etcd://h:2379/"), nothing else as a path. */
	if (hosts_end > p && hosts_end[-1] == '/')
		hosts_end--;
	if (hosts_end == p) {
		r = conf_fail(errmsg, "store URL %s:%s: no endpoint", scheme, spec);
		goto fail;
	}
	while (p < hosts_end) {
		const char *comma = memchr(p, ',', (size_t)(hosts_end - p));
		const char *e = comma ? comma : hosts_end;
		char *ep = NULL;
		if (parse_endpoint(p, (size_t)(e - p), &ep) < 0) {
			r = conf_fail(errmsg, "store URL %s:%s: bad endpoint \"%.*s\" (expected HOST:PORT)", scheme, spec,
				      (int)(e - p), p);
			goto fail;
		}
		c.endpoints = wrealloc(c.endpoints, (c.n_endpoints + 1) * sizeof(char *));
		c.endpoints[c.n_endpoints++] = ep;
		p = comma ? comma + 1 : e;
		if (comma && p == hosts_end) {
			r = conf_fail(errmsg, "store URL %s:%s: empty endpoint", scheme, spec);
			goto fail;
		}
	}
	c.prefix = wstrdup("");
	for (p = q ? q + 1 : NULL; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t n = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', n);
		if (!eq) {
			r = conf_fail(errmsg, "store URL option \"%.*s\": expected NAME=VALUE", (int)n, p);
			goto fail;
		}
		size_t nlen = (size_t)(eq - p);
		char *v = pct_decode(eq + 1, n - nlen - 1);
		if (!v) {
			r = conf_fail(errmsg, "store URL option \"%.*s\": bad value", (int)n, p);
			goto fail;
		}
#define OPT(name) (nlen == strlen(name) && strncmp(p, name, nlen) == 0)
		if (OPT("prefix")) {
			free(c.prefix);
			c.prefix = v;
			if (strlen(v) > 256) {
				r = conf_fail(errmsg, "store URL option prefix: longer than 256 bytes");
				goto fail;
			}
		} else if (OPT("ca") || OPT("cert") || OPT("key")) {
			char **slot = OPT("ca") ? &c.ca : OPT("cert") ? &c.cert : &c.key;
			free(*slot);
			*slot = v;
			if (!*v) {
				r = conf_fail(errmsg, "store URL option %.*s: empty file name", (int)nlen, p);
				goto fail;
			}
		} else if (OPT("timeout_ms")) {
			int64_t t;
			int rr = isdigit((unsigned char)v[0]) ? weft_parse_int64(v, 1, 3600 * 1000, &t) : -EINVAL;
			free(v);
			if (rr < 0) {
				r = conf_fail(errmsg, "store URL option timeout_ms: expected 1..3600000 milliseconds");
				goto fail;
			}
			c.timeout_ms = (int)t;
		} else {
			free(v);
			r = conf_fail(errmsg, "store URL option \"%.*s\": unknown (expected prefix, ca, cert, key, timeout_ms)",
				      (int)nlen, p);
			goto fail;
		}
#undef OPT
		p = amp ? amp + 1 : p + n;
	}
	if (!c.tls && (c.ca || c.cert || c.key)) {
		r = conf_fail(errmsg, "store URL: ca, cert and key need etcds:// (TLS)");
		goto fail;
	}
	if (!c.cert != !c.key) {
		r = conf_fail(errmsg, "store URL: cert and key go together");
		goto fail;
	}
	*out = c;
	return 0;
fail:
	weft_etcd_conf_clear(&c);
	return r;
}

/* ---- base64 ---- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *weft_etcd_b64_encode(const void *p, size_t n)
{
	const unsigned char *s = p;
	char *out = wmalloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = b64_alphabet[v >> 18 & 63];
		*o++ = b64_alphabet[v >> 12 & 63];
		*o++ = b64_alphabet[v >> 6 & 63];
		*o++ = b64_alphabet[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
		*o++ = b64_alphabet[v >> 18 & 63];
		*o++ = b64_alphabet[v >> 12 & 63];
		*o++ = i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	*o = 0;
	return out;
}

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int weft_etcd_b64_decode(const char *s, size_t len, char **out, size_t *outlen)
{
	unsigned char *buf, *o;

	if (len % 4)
		return -EBADMSG;
	buf = o = wmalloc(len / 4 * 3 + 1);
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		size_t pad = 0;
		for (int j = 0; j < 4; j++) {
			char c = s[i + j];
			if (c == '=' && i + 4 == len && j >= 2 && (j == 3 || s[i + 3] == '=')) {
				v[j] = 0;
				pad++;
			} else if ((v[j] = b64_val(c)) < 0) {
				free(buf);
				return -EBADMSG;
			}
		}
		uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		/* Canonical form only: the bits dropped by padding must be 0. */
		if ((pad == 1 && (x & 0xff)) || (pad == 2 && (x & 0xffff))) {
			free(buf);
			return -EBADMSG;
		}
		*o++ = (unsigned char)(x >> 16);
		if (pad < 2)
			*o++ = (unsigned char)(x >> 8);
		if (pad < 1)
			*o++ = (unsigned char)x;
	}
	*o = 0;
	*outlen = (size_t)(o - buf);
	*out = (char *)buf;
	return 0;
}

/* ---- requests ---- */

char *weft_etcd_prefix_end(const char *p, size_t n, size_t *outlen)
{
	while (n > 0 && (unsigned char)p[n - 1] == 0xff)
		n--;
	if (n == 0) {
		*outlen = 1;
		return wcalloc(1, 2);
	}
	char *e = wmemdup(p, n + 1);
	e[n - 1] = (char)((unsigned char)e[n - 1] + 1);
	e[n] = 0;
	*outlen = n;
	return e;
}

/* Append "name":"base64(prefix + key)". An empty full key becomes "\0",
 * the lowest key, which etcd accepts where it rejects an empty one. */
static void put_key(struct weft_buf *b, const char *name, const char *prefix, const char *key)
{
	_cleanup_free_ char *full = wasprintf("%s%s", prefix, key);
	size_t n = strlen(full);
	_cleanup_free_ char *enc = weft_etcd_b64_encode(n ? full : "", n ? n : 1);
	weft_buf_printf(b, "\"%s\":\"%s\"", name, enc);
}

char *weft_etcd_req_range_key(const char *prefix, const char *key)
{
	struct weft_buf b = {0};
	weft_buf_printf(&b, "{");
	put_key(&b, "key", prefix, key);
	weft_buf_printf(&b, "}");
	return weft_buf_steal(&b);
}

static void put_range(struct weft_buf *b, const char *prefix, const char *key_prefix)
{
	_cleanup_free_ char *full = wasprintf("%s%s", prefix, key_prefix);
	size_t n = strlen(full), elen;
	_cleanup_free_ char *end = weft_etcd_prefix_end(full, n, &elen);
	_cleanup_free_ char *enc_end = weft_etcd_b64_encode(end, elen);

	put_key(b, "key", prefix, key_prefix);
	weft_buf_printf(b, ",\"range_end\":\"%s\"", enc_end);
}

char *weft_etcd_req_range_prefix(const char *prefix, const char *key_prefix, bool count_only)
{
	struct weft_buf b = {0};
	weft_buf_printf(&b, "{");
	put_range(&b, prefix, key_prefix);
	if (count_only)
		weft_buf_printf(&b, ",\"count_only\":true");
	weft_buf_printf(&b, "}");
	return weft_buf_steal(&b);
}

char *weft_etcd_req_txn(const char *prefix, const struct weft_txn_cmp *cmps, size_t ncmps,
			const struct weft_txn_op *ops, size_t nops)
{
	struct weft_buf b = {0};

	/* "Absent" is compared as mod_revision == 0: etcd reports 0 for a key
	 * that does not exist, and the gateway keeps an explicit "0" in the
	 * oneof (create_revision == 0 works the same; checked on 3.4). */
	weft_buf_printf(&b, "{\"compare\":[");
	for (size_t i = 0; i < ncmps; i++) {
		weft_buf_printf(&b, "%s{", i ? "," : "");
		put_key(&b, "key", prefix, cmps[i].key);
		weft_buf_printf(&b, ",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"%lld\"}",
				(long long)cmps[i].mod_rev);
	}
	weft_buf_printf(&b, "],\"success\":[");
	for (size_t i = 0; i < nops; i++) {
		weft_buf_printf(&b, "%s{\"%s\":{", i ? "," : "",
				ops[i].type == WEFT_OP_PUT ? "request_put" : "request_delete_range");
		put_key(&b, "key", prefix, ops[i].key);
		if (ops[i].type == WEFT_OP_PUT) {
			_cleanup_free_ char *v = weft_etcd_b64_encode(ops[i].value ? ops[i].value : "", ops[i].value_len);
			weft_buf_printf(&b, ",\"value\":\"%s\"", v);
		}
		weft_buf_printf(&b, "}}");
	}
	weft_buf_printf(&b, "]}");
	return weft_buf_steal(&b);
}

char *weft_etcd_req_watch(const char *prefix, const char *key_prefix, int64_t start_rev)
{
	struct weft_buf b = {0};

	weft_buf_printf(&b, "{\"create_request\":{");
	put_range(&b, prefix, key_prefix);
	weft_buf_printf(&b, ",\"start_revision\":\"%lld\",\"progress_notify\":true}}", (long long)start_rev);
	return weft_buf_steal(&b);
}

/* ---- responses ---- */

static cJSON *parse_object(const char *body, size_t len)
{
	cJSON *j = NULL;

	if (!body || len == 0 || len > WEFT_ETCD_RESPONSE_MAX || weft_json_parse(body, len, &j) < 0)
		return NULL;
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/* A member that must be an object if present; NULL if absent. */
static int get_object(const cJSON *o, const char *name, const cJSON **out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
	if (j && !cJSON_IsNull(j) && !cJSON_IsObject(j))
		return -EBADMSG;
	*out = cJSON_IsObject(j) ? j : NULL;
	return 0;
}

/* An int64 field: a decimal string (protobuf JSON) or an integral number;
 * missing means 0. Every field weft reads is non-negative. */
static int get_int64(const cJSON *o, const char *name, int64_t *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!j || cJSON_IsNull(j)) {
		*out = 0;
		return 0;
	}
	if (cJSON_IsString(j)) {
		const char *s = j->valuestring;
		if (!s || !isdigit((unsigned char)s[0]) || strlen(s) > 19)
			return -EBADMSG;
		return weft_parse_int64(s, 0, INT64_MAX, out) < 0 ? -EBADMSG : 0;
	}
	if (cJSON_IsNumber(j)) {
		double d = j->valuedouble;
		/* In range first, so that the cast is defined. */
		if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(int64_t)d)
			return -EBADMSG;
		*out = (int64_t)d;
		return 0;
	}
	return -EBADMSG;
}

/* An unsigned 64-bit field (member and cluster ids use the whole range). */
static int get_uint64(const cJSON *o, const char *name, uint64_t *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!j || cJSON_IsNull(j)) {
		*out = 0;
		return 0;
	}
	if (cJSON_IsString(j)) {
		const char *s = j->valuestring;
		char *end;
		if (!s || !isdigit((unsigned char)s[0]) || strlen(s) > 20)
			return -EBADMSG;
		errno = 0;
		unsigned long long v = strtoull(s, &end, 10);
		if (*end || errno)
			return -EBADMSG;
		*out = v;
		return 0;
	}
	int64_t v;
	int r = get_int64(o, name, &v);
	if (r < 0)
		return r;
	*out = (uint64_t)v;
	return 0;
}

static int get_bool(const cJSON *o, const char *name, bool *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!j || cJSON_IsNull(j)) {
		*out = false;
		return 0;
	}
	if (!cJSON_IsBool(j))
		return -EBADMSG;
	*out = cJSON_IsTrue(j);
	return 0;
}

/* A string field; missing means "". *out points into the JSON tree. */
static int get_string(const cJSON *o, const char *name, const char **out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!j || cJSON_IsNull(j)) {
		*out = "";
		return 0;
	}
	if (!cJSON_IsString(j) || !j->valuestring)
		return -EBADMSG;
	*out = j->valuestring;
	return 0;
}

/* A bytes field (base64); missing means empty. */
static int get_bytes(const cJSON *o, const char *name, char **out, size_t *len)
{
	const char *s;
	int r = get_string(o, name, &s);
	if (r < 0)
		return r;
	return weft_etcd_b64_decode(s, strlen(s), out, len);
}

/* The response header's revision (0 if absent). */
static int get_header_rev(const cJSON *o, int64_t *rev)
{
	const cJSON *h;
	int r = get_object(o, "header", &h);
	if (r < 0)
		return r;
	if (!h) {
		*rev = 0;
		return 0;
	}
	return get_int64(h, "revision", rev);
}

/* Decode a mvccpb.KeyValue. Returns 1 and *kv filled, 0 if the key is the
 * prefix itself (not a weft key), or -EBADMSG. */
static int decode_kv(const cJSON *j, const char *strip, struct weft_kv *kv)
{
	_cleanup_free_ char *key = NULL, *value = NULL;
	size_t klen, vlen, slen = strlen(strip);
	struct weft_kv k = {0};

	if (!cJSON_IsObject(j))
		return -EBADMSG;
	if (get_bytes(j, "key", &key, &klen) < 0 || get_bytes(j, "value", &value, &vlen) < 0 ||
	    get_int64(j, "create_revision", &k.create_rev) < 0 || get_int64(j, "mod_revision", &k.mod_rev) < 0 ||
	    get_int64(j, "version", &k.version) < 0)
		return -EBADMSG;
	/* Keys are C strings in weft: a NUL inside one cannot be represented.
	 * Every key must lie under the prefix this handle asked for. */
	if (klen == 0 || strlen(key) != klen || klen < slen || memcmp(key, strip, slen) != 0)
		return -EBADMSG;
	if (k.mod_rev <= 0)
		return -EBADMSG;
	if (klen == slen)
		return 0;
	k.key = wstrdup(key + slen);
	k.value = TAKE_PTR(value);
	k.value_len = vlen;
	*kv = k;
	return 1;
}

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct weft_kv *)a)->key, ((const struct weft_kv *)b)->key);
}

int weft_etcd_parse_range(const char *body, size_t len, const char *strip, struct weft_kv_list *out)
{
	_cleanup_json_ cJSON *j = parse_object(body, len);
	struct weft_kv_list l = {0};
	const cJSON *kvs, *it;
	int64_t rev;
	int r;

	if (!j || get_header_rev(j, &rev) < 0 || rev <= 0)
		return -EBADMSG;
	kvs = cJSON_GetObjectItemCaseSensitive(j, "kvs");
	if (kvs && !cJSON_IsNull(kvs)) {
		if (!cJSON_IsArray(kvs))
			return -EBADMSG;
		size_t n = (size_t)cJSON_GetArraySize(kvs);
		l.items = wcalloc(n ? n : 1, sizeof(struct weft_kv));
		cJSON_ArrayForEach(it, kvs)
		{
			r = decode_kv(it, strip, &l.items[l.n]);
			if (r < 0) {
				weft_kv_list_clear(&l);
				return -EBADMSG;
			}
			/* A kv from the future of the header is inconsistent. */
			if (r > 0 && l.items[l.n].mod_rev > rev) {
				l.n++;
				weft_kv_list_clear(&l);
				return -EBADMSG;
			}
			l.n += (size_t)r;
		}
	}
	if (l.n > 1)
		qsort(l.items, l.n, sizeof(l.items[0]), kv_cmp);
	for (size_t i = 1; i < l.n; i++)
		if (streq(l.items[i - 1].key, l.items[i].key)) {
			weft_kv_list_clear(&l);
			return -EBADMSG;
		}
	l.rev = rev;
	*out = l;
	return 0;
}

int weft_etcd_parse_header_rev(const char *body, size_t len, int64_t *rev)
{
	_cleanup_json_ cJSON *j = parse_object(body, len);
	int64_t v;

	if (!j || get_header_rev(j, &v) < 0 || v <= 0)
		return -EBADMSG;
	*rev = v;
	return 0;
}

int weft_etcd_parse_txn(const char *body, size_t len, bool *succeeded, int64_t *rev)
{
	_cleanup_json_ cJSON *j = parse_object(body, len);
	int64_t v;
	bool ok;

	if (!j || get_header_rev(j, &v) < 0 || v <= 0 || get_bool(j, "succeeded", &ok) < 0)
		return -EBADMSG;
	*succeeded = ok;
	*rev = v;
	return 0;
}

int weft_etcd_parse_status(const char *body, size_t len, int64_t *rev, uint64_t *leader, char *version,
			   size_t version_size)
{
	_cleanup_json_ cJSON *j = parse_object(body, len);
	const char *ver;
	int64_t v;
	uint64_t l;

	if (!j || get_header_rev(j, &v) < 0 || v <= 0 || get_uint64(j, "leader", &l) < 0 ||
	    get_string(j, "version", &ver) < 0)
		return -EBADMSG;
	for (const char *c = ver; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			return -EBADMSG;
	*rev = v;
	*leader = l;
	if (version_size)
		weft_strlcpy(version, ver, version_size);
	return 0;
}

int weft_etcd_grpc_errno(int64_t code)
{
	switch (code) {
	case 3: /* InvalidArgument, e.g. "request is too large" */
		return -EINVAL;
	case 4: /* DeadlineExceeded */
		return -ETIMEDOUT;
	case 7: /* PermissionDenied */
	case 16: /* Unauthenticated */
		return -EACCES;
	case 8: /* ResourceExhausted: "database space exceeded" */
		return -ENOSPC;
	case 11: /* OutOfRange: "required revision has been compacted" */
		return -ESTALE;
	case 12: /* Unimplemented */
		return -ENOSYS;
	default: /* Unavailable (no leader), Internal, Unknown... */
		return -EIO;
	}
}

/* Copy a message keeping only printable ASCII, so that it fits on one
 * line of an error description. */
static void copy_msg(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	if (!size)
		return;
	for (; *src && i + 1 < size; src++)
		dst[i++] = (unsigned char)*src >= 0x20 && (unsigned char)*src < 0x7f ? *src : '?';
	dst[i] = 0;
}

int weft_etcd_parse_error(const char *body, size_t len, char *msg, size_t msg_size)
{
	_cleanup_json_ cJSON *j = parse_object(body, len);
	const char *m, *e;
	int64_t code;

	if (!j || get_int64(j, "code", &code) < 0 || get_string(j, "message", &m) < 0 ||
	    get_string(j, "error", &e) < 0)
		return -EBADMSG;
	if (!*m)
		m = e;
	if (!*m && code == 0)
		return -EBADMSG;
	copy_msg(msg, msg_size, *m ? m : "(no message)");
	return weft_etcd_grpc_errno(code);
}

void weft_etcd_watch_msg_clear(struct weft_etcd_watch_msg *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_events; i++)
		weft_event_clear(&m->events[i]);
	free(m->events);
	memset(m, 0, sizeof(*m));
}

static int decode_events(const cJSON *evs, const char *strip, struct weft_etcd_watch_msg *m)
{
	const cJSON *it;
	int64_t last = 0;

	if (!evs || cJSON_IsNull(evs))
		return 0;
	if (!cJSON_IsArray(evs))
		return -EBADMSG;
	size_t n = (size_t)cJSON_GetArraySize(evs);
	m->events = wcalloc(n ? n : 1, sizeof(struct weft_event));
	m->n_raw_events = n;
	cJSON_ArrayForEach(it, evs)
	{
		struct weft_event ev = {0};
		const cJSON *t, *kv;
		int r;

		if (!cJSON_IsObject(it))
			return -EBADMSG;
		t = cJSON_GetObjectItemCaseSensitive(it, "type");
		if (!t || cJSON_IsNull(t) || (cJSON_IsString(t) && streq(t->valuestring, "PUT")) ||
		    (cJSON_IsNumber(t) && t->valuedouble == 0))
			ev.type = WEFT_EV_PUT;
		else if ((cJSON_IsString(t) && streq(t->valuestring, "DELETE")) ||
			 (cJSON_IsNumber(t) && t->valuedouble == 1))
			ev.type = WEFT_EV_DELETE;
		else
			return -EBADMSG;
		kv = cJSON_GetObjectItemCaseSensitive(it, "kv");
		r = decode_kv(kv, strip, &ev.kv);
		if (r < 0)
			return r;
		/* The prefix key itself: not a weft key, and decode_kv() filled
		 * nothing in (its mod_rev of 0 must not fail the order check). */
		if (r == 0)
			continue;
		/* Events come in revision order; the reconnect logic relies on it. */
		if (ev.kv.mod_rev < last) {
			weft_event_clear(&ev);
			return -EBADMSG;
		}
		last = ev.kv.mod_rev;
		if (ev.type == WEFT_EV_DELETE) {
			/* A delete carries the deletion's revision and nothing else. */
			free(ev.kv.value);
			ev.kv.value = wstrdup("");
			ev.kv.value_len = 0;
			ev.kv.create_rev = 0;
			ev.kv.version = 0;
		}
		m->events[m->n_events++] = ev;
	}
	return 0;
}

int weft_etcd_parse_watch(const char *line, size_t len, const char *strip, struct weft_etcd_watch_msg *out)
{
	_cleanup_json_ cJSON *j = parse_object(line, len);
	struct weft_etcd_watch_msg m = {0};
	const cJSON *res, *err;
	const char *reason;

	if (!j)
		return -EBADMSG;
	if (get_object(j, "result", &res) < 0 || get_object(j, "error", &err) < 0 || (!res == !err))
		return -EBADMSG;
	if (err) {
		/* grpc-gateway's stream error: {"error":{"grpc_code":14,"http_code":503,"message":...}} */
		const char *msg;
		int64_t code;
		if (get_int64(err, "grpc_code", &code) < 0 || get_string(err, "message", &msg) < 0)
			return -EBADMSG;
		m.stream_error = true;
		m.error_errno = weft_etcd_grpc_errno(code);
		copy_msg(m.reason, sizeof(m.reason), *msg ? msg : "watch stream error");
		*out = m;
		return 0;
	}
	if (get_header_rev(res, &m.header_rev) < 0 || get_bool(res, "created", &m.created) < 0 ||
	    get_bool(res, "canceled", &m.canceled) < 0 || get_int64(res, "compact_revision", &m.compact_rev) < 0 ||
	    get_string(res, "cancel_reason", &reason) < 0)
		return -EBADMSG;
	copy_msg(m.reason, sizeof(m.reason), reason);
	if (decode_events(cJSON_GetObjectItemCaseSensitive(res, "events"), strip, &m) < 0) {
		weft_etcd_watch_msg_clear(&m);
		return -EBADMSG;
	}
	*out = m;
	return 0;
}
