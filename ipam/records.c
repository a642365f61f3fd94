/* records.c - IPAM store records: validating decoders, canonical encoders,
 * keys. See ipam-records.h and docs/ipam.md. */
#include "ipam/ipam-records.h"

#include "lib/json.h"

#include <cjson/cJSON.h>

/* --- names and keys ------------------------------------------------------- */

bool ipam_name_ok(const char *s)
{
	size_t len;

	if (!s)
		return false;
	len = strlen(s);
	if (len == 0 || len > WEFT_IPAM_NAME_MAX || streq(s, ".") || streq(s, ".."))
		return false;
	for (const char *p = s; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '/')
			return false;
	return true;
}

bool ipam_attr_ok(const char *s)
{
	if (!s)
		return true;
	if (strlen(s) > WEFT_IPAM_NAME_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < ' ' || *p == 0x7f)
			return false;
	return true;
}

const char *ipam_cidr_name(const struct weft_cidr *c, char *buf, size_t size)
{
	char ip[WEFT_IP_STRLEN];

	snprintf(buf, size, "%s-%u", weft_ip_str(&c->ip, ip, sizeof(ip)), c->prefixlen);
	return buf;
}

char *ipam_block_key(const struct weft_cidr *c)
{
	char n[WEFT_CIDR_STRLEN];
	return wasprintf("%s%s", WEFT_IPAM_BLOCKS_PREFIX, ipam_cidr_name(c, n, sizeof(n)));
}

char *ipam_affinity_key(const char *node, const struct weft_cidr *c)
{
	char n[WEFT_CIDR_STRLEN];
	return wasprintf("%s%s/%s", WEFT_IPAM_AFFINITIES_PREFIX, node, ipam_cidr_name(c, n, sizeof(n)));
}

char *ipam_handle_key(const char *handle)
{
	return wasprintf("%s%s", WEFT_IPAM_HANDLES_PREFIX, handle);
}

char *ipam_range_key(const char *network, const struct weft_cidr *subnet)
{
	char n[WEFT_CIDR_STRLEN];
	return wasprintf("%s%s/%s", WEFT_IPAM_RANGES_PREFIX, network, ipam_cidr_name(subnet, n, sizeof(n)));
}

uint64_t ipam_cidr_size(const struct weft_cidr *c)
{
	unsigned host = weft_ip_bits(&c->ip) - c->prefixlen;
	return host >= 64 ? UINT64_MAX : (uint64_t)1 << host;
}

int ipam_ip_offset(const struct weft_ip *base, const struct weft_ip *ip, uint64_t *out)
{
	size_t len = base->family == AF_INET6 ? 16 : 4;
	unsigned borrow = 0;
	uint8_t d[16];

	if (base->family != ip->family || weft_ip_cmp(ip, base) < 0)
		return -ERANGE;
	for (size_t i = len; i-- > 0;) {
		int v = (int)ip->bytes[i] - (int)base->bytes[i] - (int)borrow;
		borrow = v < 0;
		d[i] = (uint8_t)v;
	}
	for (size_t i = 0; i + 8 < len; i++)
		if (d[i])
			return -ERANGE;
	uint64_t r = 0;
	for (size_t i = len > 8 ? len - 8 : 0; i < len; i++)
		r = r << 8 | d[i];
	*out = r;
	return 0;
}

/* --- allocation lists ------------------------------------------------------ */

void weft_ipam_attrs_clear(struct weft_ipam_attrs *a)
{
	if (!a)
		return;
	free(a->namespace);
	free(a->pod);
	free(a->node);
	free(a->container_id);
	free(a->ifname);
	free(a->network);
	free(a->plugin);
	*a = (struct weft_ipam_attrs){0};
}

void weft_ipam_allocation_clear(struct weft_ipam_allocation *a)
{
	if (!a)
		return;
	free(a->handle);
	free(a->holder);
	weft_ipam_attrs_clear(&a->attrs);
	*a = (struct weft_ipam_allocation){0};
}

void weft_ipam_allocations_free(struct weft_ipam_allocation *a, size_t n)
{
	for (size_t i = 0; a && i < n; i++)
		weft_ipam_allocation_clear(&a[i]);
	free(a);
}

void ipam_rec_clear(struct ipam_rec *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		weft_ipam_allocation_clear(&r->allocs[i]);
	free(r->allocs);
	free(r->affinity);
	free(r->network);
	*r = (struct ipam_rec){0};
}

void ipam_handle_rec_clear(struct ipam_handle_rec *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		free(h->entries[i].key);
	free(h->entries);
	free(h->handle);
	*h = (struct ipam_handle_rec){0};
}

static char *dup_or_null(const char *s)
{
	return s ? wstrdup(s) : NULL;
}

static void attrs_copy(struct weft_ipam_attrs *dst, const struct weft_ipam_attrs *src)
{
	*dst = (struct weft_ipam_attrs){0};
	if (!src)
		return;
	dst->namespace = dup_or_null(src->namespace);
	dst->pod = dup_or_null(src->pod);
	dst->node = dup_or_null(src->node);
	dst->container_id = dup_or_null(src->container_id);
	dst->ifname = dup_or_null(src->ifname);
	dst->network = dup_or_null(src->network);
	dst->plugin = dup_or_null(src->plugin);
}

/* Binary search: the index of ip, or -(insertion point) - 1. */
static ssize_t rec_search(const struct ipam_rec *r, const struct weft_ip *ip)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = weft_ip_cmp(&r->allocs[mid].ip, ip);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(ssize_t)lo - 1;
}

ssize_t ipam_rec_find(const struct ipam_rec *r, const struct weft_ip *ip)
{
	ssize_t i = rec_search(r, ip);
	return i >= 0 ? i : -1;
}

int ipam_rec_add(struct ipam_rec *r, const struct weft_ip *ip, const char *handle, const struct weft_ipam_attrs *attrs)
{
	ssize_t i = rec_search(r, ip);
	size_t at;

	if (i >= 0)
		return -EEXIST;
	at = (size_t)(-i - 1);
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		r->allocs = wrealloc(r->allocs, r->cap * sizeof(*r->allocs));
	}
	memmove(&r->allocs[at + 1], &r->allocs[at], (r->n - at) * sizeof(*r->allocs));
	r->allocs[at] = (struct weft_ipam_allocation){.ip = *ip, .handle = wstrdup(handle)};
	attrs_copy(&r->allocs[at].attrs, attrs);
	r->n++;
	return 0;
}

void ipam_rec_remove_at(struct ipam_rec *r, size_t i)
{
	weft_ipam_allocation_clear(&r->allocs[i]);
	memmove(&r->allocs[i], &r->allocs[i + 1], (r->n - i - 1) * sizeof(*r->allocs));
	r->n--;
}

void ipam_handle_add(struct ipam_handle_rec *h, const struct weft_ip *ip, const char *key)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 4;
		h->entries = wrealloc(h->entries, h->cap * sizeof(*h->entries));
	}
	h->entries[h->n++] = (struct ipam_handle_entry){.ip = *ip, .key = wstrdup(key)};
}

bool ipam_handle_remove(struct ipam_handle_rec *h, const struct weft_ip *ip, const char *key)
{
	for (size_t i = 0; i < h->n; i++) {
		if (!weft_ip_eq(&h->entries[i].ip, ip) || (key && !streq(h->entries[i].key, key)))
			continue;
		free(h->entries[i].key);
		memmove(&h->entries[i], &h->entries[i + 1], (h->n - i - 1) * sizeof(*h->entries));
		h->n--;
		return true;
	}
	return false;
}

/* --- decoding -------------------------------------------------------------- */

static int PRINTF_LIKE(3, 4) bad(char **err, const char *key, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		_cleanup_free_ char *m = wvasprintf(fmt, ap);
		va_end(ap);
		*err = wasprintf("%s: %s", key ? key : "ipam record", m);
	}
	return -EBADMSG;
}

/* A string member: -ENOENT when absent (or JSON null when null_ok), else
 * 0 or a message. */
static int get_str(const cJSON *obj, const char *name, bool null_ok, const char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!v || (null_ok && cJSON_IsNull(v)))
		return -ENOENT;
	if (!cJSON_IsString(v))
		return -EINVAL;
	*out = v->valuestring;
	return 0;
}

static int parse_doc(const char *key, const char *json, size_t len, cJSON **out, char **err)
{
	cJSON *doc;

	if (!json || weft_json_parse(json, len, &doc) < 0)
		return bad(err, key, "not valid JSON");
	if (!cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		return bad(err, key, "not a JSON object");
	}
	*out = doc;
	return 0;
}

static const struct {
	const char *json;
	size_t off;
} attr_fields[] = {
	{"namespace", offsetof(struct weft_ipam_attrs, namespace)},
	{"pod", offsetof(struct weft_ipam_attrs, pod)},
	{"node", offsetof(struct weft_ipam_attrs, node)},
	{"containerId", offsetof(struct weft_ipam_attrs, container_id)},
	{"ifname", offsetof(struct weft_ipam_attrs, ifname)},
	{"network", offsetof(struct weft_ipam_attrs, network)},
	{"plugin", offsetof(struct weft_ipam_attrs, plugin)},
};

static char **attr_slot(struct weft_ipam_attrs *a, size_t i)
{
	return (char **)((char *)a + attr_fields[i].off);
}

static int decode_attrs(const char *key, size_t idx, const cJSON *o, struct weft_ipam_attrs *a, char **err)
{
	if (!o)
		return 0;
	if (!cJSON_IsObject(o))
		return bad(err, key, "allocations[%zu].attrs: not an object", idx);
	for (size_t i = 0; i < ARRAY_SIZE(attr_fields); i++) {
		const char *s;
		int r = get_str(o, attr_fields[i].json, true, &s);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return bad(err, key, "allocations[%zu].attrs.%s: not a string", idx, attr_fields[i].json);
		if (!ipam_attr_ok(s))
			return bad(err, key, "allocations[%zu].attrs.%s: too long or has control characters", idx,
				   attr_fields[i].json);
		*attr_slot(a, i) = wstrdup(s);
	}
	return 0;
}

static int decode_cidr(const char *key, const cJSON *doc, struct weft_cidr *out, char **err)
{
	const char *s;
	int r = get_str(doc, "cidr", false, &s);

	if (r == -ENOENT)
		return bad(err, key, "cidr: missing");
	if (r < 0)
		return bad(err, key, "cidr: not a string");
	if (weft_cidr_parse(s, true, out) < 0)
		return bad(err, key, "cidr: \"%.64s\" is not a CIDR (with zero host bits)", s);
	return 0;
}

static int decode_allocs(const char *key, const cJSON *doc, struct ipam_rec *rec, char **err)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "allocations");
	const cJSON *it;
	size_t idx = 0;
	char cs[WEFT_CIDR_STRLEN];

	if (!arr)
		return 0;
	if (!cJSON_IsArray(arr))
		return bad(err, key, "allocations: not an array");
	cJSON_ArrayForEach(it, arr) {
		struct weft_ipam_attrs attrs = {0};
		struct weft_ip ip;
		const char *s, *h;
		int r;

		if (!cJSON_IsObject(it))
			return bad(err, key, "allocations[%zu]: not an object", idx);
		r = get_str(it, "ip", false, &s);
		if (r < 0)
			return bad(err, key, "allocations[%zu].ip: %s", idx, r == -ENOENT ? "missing" : "not a string");
		if (weft_ip_parse(s, &ip) < 0)
			return bad(err, key, "allocations[%zu].ip: \"%.64s\" is not an address", idx, s);
		if (!weft_cidr_contains(&rec->cidr, &ip))
			return bad(err, key, "allocations[%zu].ip: \"%.64s\" is outside %s", idx, s,
				   weft_cidr_str(&rec->cidr, cs, sizeof(cs)));
		if (rec->n && weft_ip_cmp(&rec->allocs[rec->n - 1].ip, &ip) >= 0)
			return bad(err, key, "allocations[%zu].ip: \"%.64s\" is not in increasing order (duplicate?)",
				   idx, s);
		r = get_str(it, "handle", false, &h);
		if (r < 0)
			return bad(err, key, "allocations[%zu].handle: %s", idx,
				   r == -ENOENT ? "missing" : "not a string");
		if (!ipam_name_ok(h))
			return bad(err, key, "allocations[%zu].handle: not a valid handle", idx);
		r = decode_attrs(key, idx, cJSON_GetObjectItemCaseSensitive(it, "attrs"), &attrs, err);
		if (r < 0) {
			weft_ipam_attrs_clear(&attrs);
			return r;
		}
		/* Appending in order: ipam_rec_add() puts it last. */
		ipam_rec_add(rec, &ip, h, &attrs);
		weft_ipam_attrs_clear(&attrs);
		idx++;
	}
	return 0;
}

int ipam_rec_decode(enum ipam_rec_type type, const char *key, const char *json, size_t len, struct ipam_rec *out,
		    char **err)
{
	_cleanup_json_ cJSON *doc = NULL;
	struct ipam_rec rec = {.type = type};
	const char *s;
	int r;

	r = parse_doc(key, json, len, &doc, err);
	if (r < 0)
		return r;
	r = decode_cidr(key, doc, &rec.cidr, err);
	if (r < 0)
		return r;
	if (type == IPAM_REC_BLOCK) {
		r = get_str(doc, "affinity", true, &s);
		if (r == 0 && !ipam_name_ok(s))
			return bad(err, key, "affinity: not a valid node name");
		if (r == -EINVAL)
			return bad(err, key, "affinity: not a string or null");
		if (r == 0)
			rec.affinity = wstrdup(s);
		/* A block holds at most 4096 addresses (v4 /20, v6 /116: what
		 * the IPPool schema allows); a bigger one is not ours. */
		if (weft_ip_bits(&rec.cidr.ip) - rec.cidr.prefixlen > 12) {
			ipam_rec_clear(&rec);
			return bad(err, key, "cidr: a /%u block is larger than 4096 addresses", rec.cidr.prefixlen);
		}
	} else {
		r = get_str(doc, "network", false, &s);
		if (r < 0)
			return bad(err, key, "network: %s", r == -ENOENT ? "missing" : "not a string");
		if (!ipam_name_ok(s))
			return bad(err, key, "network: not a valid network name");
		rec.network = wstrdup(s);
	}
	if (key) {
		_cleanup_free_ char *want = type == IPAM_REC_BLOCK ? ipam_block_key(&rec.cidr)
								   : ipam_range_key(rec.network, &rec.cidr);
		if (!streq(want, key)) {
			ipam_rec_clear(&rec);
			return bad(err, key, "%s: does not match the key (expected key %s)",
				   type == IPAM_REC_BLOCK ? "cidr" : "cidr/network", want);
		}
	}
	r = decode_allocs(key, doc, &rec, err);
	if (r < 0) {
		ipam_rec_clear(&rec);
		return r;
	}
	*out = rec;
	return 0;
}

static bool holder_key_ok(const char *k)
{
	const char *rest;

	if (startswith(k, WEFT_IPAM_BLOCKS_PREFIX))
		rest = k + strlen(WEFT_IPAM_BLOCKS_PREFIX);
	else if (startswith(k, WEFT_IPAM_RANGES_PREFIX))
		rest = k + strlen(WEFT_IPAM_RANGES_PREFIX);
	else
		return false;
	if (!*rest || strlen(k) > 1024)
		return false;
	for (const char *p = rest; *p; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return false;
	return true;
}

int ipam_handle_decode(const char *key, const char *json, size_t len, struct ipam_handle_rec *out, char **err)
{
	_cleanup_json_ cJSON *doc = NULL;
	struct ipam_handle_rec h = {0};
	const cJSON *arr, *it;
	const char *s;
	size_t idx = 0;
	int r;

	r = parse_doc(key, json, len, &doc, err);
	if (r < 0)
		return r;
	r = get_str(doc, "handle", false, &s);
	if (r < 0)
		return bad(err, key, "handle: %s", r == -ENOENT ? "missing" : "not a string");
	if (!ipam_name_ok(s))
		return bad(err, key, "handle: not a valid handle");
	if (key && (!startswith(key, WEFT_IPAM_HANDLES_PREFIX) || !streq(key + strlen(WEFT_IPAM_HANDLES_PREFIX), s)))
		return bad(err, key, "handle: \"%s\" does not match the key", s);
	arr = cJSON_GetObjectItemCaseSensitive(doc, "allocations");
	if (arr && !cJSON_IsArray(arr))
		return bad(err, key, "allocations: not an array");
	h.handle = wstrdup(s);
	cJSON_ArrayForEach(it, arr) {
		struct weft_ip ip;
		const char *k;

		if (!cJSON_IsObject(it)) {
			r = bad(err, key, "allocations[%zu]: not an object", idx);
			goto fail;
		}
		r = get_str(it, "ip", false, &s);
		if (r < 0) {
			r = bad(err, key, "allocations[%zu].ip: %s", idx, r == -ENOENT ? "missing" : "not a string");
			goto fail;
		}
		if (weft_ip_parse(s, &ip) < 0) {
			r = bad(err, key, "allocations[%zu].ip: \"%.64s\" is not an address", idx, s);
			goto fail;
		}
		r = get_str(it, "key", false, &k);
		if (r < 0) {
			r = bad(err, key, "allocations[%zu].key: %s", idx, r == -ENOENT ? "missing" : "not a string");
			goto fail;
		}
		if (!holder_key_ok(k)) {
			r = bad(err, key, "allocations[%zu].key: not a block or range key", idx);
			goto fail;
		}
		for (size_t i = 0; i < h.n; i++)
			if (weft_ip_eq(&h.entries[i].ip, &ip)) {
				r = bad(err, key, "allocations[%zu].ip: \"%.64s\" listed twice", idx, s);
				goto fail;
			}
		ipam_handle_add(&h, &ip, k);
		idx++;
	}
	*out = h;
	return 0;
fail:
	ipam_handle_rec_clear(&h);
	return r;
}

int ipam_affinity_decode(const char *key, const char *json, size_t len, char **node, struct weft_cidr *cidr,
			 char **err)
{
	_cleanup_json_ cJSON *doc = NULL;
	struct weft_cidr c;
	const char *s;
	int r;

	r = parse_doc(key, json, len, &doc, err);
	if (r < 0)
		return r;
	r = get_str(doc, "node", false, &s);
	if (r < 0)
		return bad(err, key, "node: %s", r == -ENOENT ? "missing" : "not a string");
	if (!ipam_name_ok(s))
		return bad(err, key, "node: not a valid node name");
	r = decode_cidr(key, doc, &c, err);
	if (r < 0)
		return r;
	if (key) {
		_cleanup_free_ char *want = ipam_affinity_key(s, &c);
		if (!streq(want, key))
			return bad(err, key, "node/cidr: does not match the key (expected key %s)", want);
	}
	*node = wstrdup(s);
	*cidr = c;
	return 0;
}

/* --- encoding -------------------------------------------------------------- */

static void add_str(cJSON *o, const char *name, const char *v)
{
	if (!cJSON_AddStringToObject(o, name, v)) {
		fprintf(stderr, "weft: out of memory in cJSON\n");
		abort();
	}
}

static cJSON *new_obj(void)
{
	cJSON *o = cJSON_CreateObject();
	if (!o) {
		fprintf(stderr, "weft: out of memory in cJSON\n");
		abort();
	}
	return o;
}

static cJSON *new_arr(void)
{
	cJSON *o = cJSON_CreateArray();
	if (!o) {
		fprintf(stderr, "weft: out of memory in cJSON\n");
		abort();
	}
	return o;
}

char *ipam_rec_encode(const struct ipam_rec *r)
{
	_cleanup_json_ cJSON *doc = new_obj();
	char buf[WEFT_CIDR_STRLEN];
	cJSON *arr;

	if (r->type == IPAM_REC_RANGE)
		add_str(doc, "network", r->network);
	add_str(doc, "cidr", weft_cidr_str(&r->cidr, buf, sizeof(buf)));
	if (r->type == IPAM_REC_BLOCK) {
		if (r->affinity)
			add_str(doc, "affinity", r->affinity);
		else
			cJSON_AddItemToObject(doc, "affinity", cJSON_CreateNull());
	}
	arr = new_arr();
	cJSON_AddItemToObject(doc, "allocations", arr);
	for (size_t i = 0; i < r->n; i++) {
		const struct weft_ipam_allocation *a = &r->allocs[i];
		cJSON *o = new_obj(), *at = NULL;
		cJSON_AddItemToArray(arr, o);
		add_str(o, "ip", weft_ip_str(&a->ip, buf, sizeof(buf)));
		add_str(o, "handle", a->handle);
		/* "attrs" only when there is something to say. */
		for (size_t f = 0; f < ARRAY_SIZE(attr_fields); f++) {
			const char *v = *attr_slot((struct weft_ipam_attrs *)&a->attrs, f);
			if (!v)
				continue;
			if (!at) {
				at = new_obj();
				cJSON_AddItemToObject(o, "attrs", at);
			}
			add_str(at, attr_fields[f].json, v);
		}
	}
	return weft_json_print(doc);
}

char *ipam_handle_encode(const struct ipam_handle_rec *h)
{
	_cleanup_json_ cJSON *doc = new_obj();
	char buf[WEFT_IP_STRLEN];
	cJSON *arr = new_arr();

	add_str(doc, "handle", h->handle);
	cJSON_AddItemToObject(doc, "allocations", arr);
	for (size_t i = 0; i < h->n; i++) {
		cJSON *o = new_obj();
		cJSON_AddItemToArray(arr, o);
		add_str(o, "ip", weft_ip_str(&h->entries[i].ip, buf, sizeof(buf)));
		add_str(o, "key", h->entries[i].key);
	}
	return weft_json_print(doc);
}

char *ipam_affinity_encode(const char *node, const struct weft_cidr *cidr)
{
	_cleanup_json_ cJSON *doc = new_obj();
	char buf[WEFT_CIDR_STRLEN];

	add_str(doc, "node", node);
	add_str(doc, "cidr", weft_cidr_str(cidr, buf, sizeof(buf)));
	return weft_json_print(doc);
}
