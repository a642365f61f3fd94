/* config.c - the network configuration on stdin: standard CNI keys,
 * weft's keys, the ipam object, runtimeConfig, args, prevResult and the GC
 * attachment list; conventions in cni.h, the reference in docs/cni.md. */
#include "cni/cni-internal.h"

#include <ctype.h>
#include <strings.h>

#define FAIL7(err, path, ...) weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, path, __VA_ARGS__)

void weft_cni_config_free(struct weft_cni_config *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->type);
	weft_cni_dns_clear(&c->dns);
	free(c->weftd_socket);
	weft_cni_strv_clear(&c->profiles);
	free(c->master);
	for (size_t i = 0; i < c->n_labels; i++) {
		free(c->labels[i].key);
		free(c->labels[i].value);
	}
	free(c->labels);
	free(c->ipam.type);
	weft_cni_strv_clear(&c->ipam.ipv4_pools);
	free(c->ipam.range_text);
	free(c->ipam.exclude);
	free(c->ipam.addresses);
	free(c->ipam.routes);
	free(c->rt_ips);
	free(c->rt_port_mappings);
	free(c->arg_ips);
	weft_cni_result_free(c->prev_result);
	for (size_t i = 0; i < c->n_valid_attachments; i++) {
		free(c->valid_attachments[i].container_id);
		free(c->valid_attachments[i].ifname);
	}
	free(c->valid_attachments);
	free(c);
}

const char *weft_cni_mode_str(enum weft_cni_mode m)
{
	return m == WEFT_CNI_MODE_MACVLAN ? "macvlan" : "routed";
}

static const char *const macvlan_modes[] = {
	[WEFT_CNI_MACVLAN_BRIDGE] = "bridge",
	[WEFT_CNI_MACVLAN_VEPA] = "vepa",
	[WEFT_CNI_MACVLAN_PRIVATE] = "private",
	[WEFT_CNI_MACVLAN_PASSTHRU] = "passthru",
};

const char *weft_cni_macvlan_mode_str(enum weft_cni_macvlan_mode m)
{
	return (size_t)m < ARRAY_SIZE(macvlan_modes) ? macvlan_modes[m] : "?";
}

/* ---------------------------------------------------------------------- */
/* Keys */

enum key_kind {
	K_STANDARD,  /* a CNI key weft reads */
	K_TOLERATED, /* a key other software adds that weft ignores */
	K_WEFT,      /* one of weft's own */
};

static const struct {
	const char *name;
	enum key_kind kind;
} top_keys[] = {
	{"cniVersion", K_STANDARD},
	{"cniVersions", K_STANDARD},
	{"name", K_STANDARD},
	{"type", K_STANDARD},
	{"disableCheck", K_STANDARD},
	{"disableGC", K_STANDARD},
	{"capabilities", K_STANDARD},
	{"runtimeConfig", K_STANDARD},
	{"args", K_STANDARD},
	{"prevResult", K_STANDARD},
	{"ipMasq", K_STANDARD},
	{"dns", K_STANDARD},
	{"ipam", K_STANDARD},
	{"cni.dev/valid-attachments", K_STANDARD},
	{"cni.dev/attachments", K_STANDARD},
	/* Multus writes the device-plugin allocation of the pod into the
	 * delegate's config; weft has no use for it. */
	{"deviceID", K_TOLERATED},
	{"pciBusID", K_TOLERATED},
	{"weftd_socket", K_WEFT},
	{"mode", K_WEFT},
	{"mtu", K_WEFT},
	{"profiles", K_WEFT},
	{"master", K_WEFT},
	{"macvlan_mode", K_WEFT},
	{"ingress_bandwidth", K_WEFT},
	{"egress_bandwidth", K_WEFT},
	{"labels", K_WEFT},
};

static int key_index(const char *k)
{
	for (size_t i = 0; i < ARRAY_SIZE(top_keys); i++)
		if (streq(k, top_keys[i].name))
			return (int)i;
	return -1;
}

static const char *const ipam_keys[] = {
	"type", "ipv4_pools", "assign_ipv4", "range", "range_start", "range_end", "exclude", "gateway", "routes",
	"addresses",
};

/* Keys of other IPAM plugins people bring along, and what weft calls them. */
static const struct {
	const char *theirs, *ours;
} ipam_hints[] = {
	{"subnet", "range"},           {"rangeStart", "range_start"}, {"rangeEnd", "range_end"},
	{"ipRanges", "range"},         {"ranges", "range"},           {"exclude_ranges", "exclude"},
};

static int unsupported(struct weft_cni_error *err, const char *path, const char *hint)
{
	if (hint)
		return weft_cni_fail(err, WEFT_CNI_ERR_UNSUPPORTED_FIELD, path, "unsupported field (did you mean \"%s\"?)",
				     hint);
	return weft_cni_fail(err, WEFT_CNI_ERR_UNSUPPORTED_FIELD, path, "unsupported field");
}

/* ---------------------------------------------------------------------- */
/* Small validators */

/* Resource names (profiles, pools): what weft's store accepts in a key. */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253 || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

/* A Kubernetes label name segment: at most 63, alphanumeric at both ends,
 * '-', '_', '.' inside. Empty allowed only for values. */
static bool valid_label_segment(const char *s, size_t n, bool allow_empty)
{
	if (n == 0)
		return allow_empty;
	if (n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
			return false;
	return true;
}

static bool valid_label_key(const char *k)
{
	const char *slash = strchr(k, '/');

	if (!slash)
		return valid_label_segment(k, strlen(k), false);
	/* prefix: a DNS subdomain. */
	if (slash == k || slash - k > 253 || strchr(slash + 1, '/'))
		return false;
	for (const char *p = k; p < slash; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-' && *p != '.')
			return false;
	return valid_label_segment(slash + 1, strlen(slash + 1), false);
}

/* Bandwidth in config: a quantity string ("10M") or a number of bit/s. */
static int want_bandwidth(const cJSON *item, const char *path, uint64_t *out, struct weft_cni_error *err)
{
	_cleanup_free_ char *s = weft_cni_value_str(item);
	uint64_t v;
	int r;

	if (cJSON_IsString(item)) {
		r = weft_cni_parse_bandwidth(item->valuestring, &v);
		if (r == -EINVAL)
			return FAIL7(err, path, "%s is not a bandwidth (bit/s, optionally with k, M, G, T, P, Ki, Mi, Gi ..., "
						"e.g. \"10M\")", s);
	} else if (cJSON_IsNumber(item)) {
		int64_t i;
		r = weft_json_int64(item, &i);
		if (r == -EINVAL || i < 0)
			return FAIL7(err, path, "%s is not a whole, positive number of bit/s", s);
		v = (uint64_t)i;
	} else {
		return FAIL7(err, path, "expected a bandwidth such as \"10M\", got %s %s", weft_cni_type_name(item), s);
	}
	if (r < 0 || v > WEFT_CNI_BANDWIDTH_MAX)
		return FAIL7(err, path, "%s is more than 1P bit/s", s);
	if (v < WEFT_CNI_BANDWIDTH_MIN)
		return FAIL7(err, path, "%s is less than 1k bit/s", s);
	*out = v;
	return 0;
}

static int want_object(const cJSON *item, const char *path, struct weft_cni_error *err)
{
	const cJSON *dup;

	if (!cJSON_IsObject(item)) {
		_cleanup_free_ char *s = weft_cni_value_str(item);
		return FAIL7(err, path, "expected an object, got %s %s", weft_cni_type_name(item), s);
	}
	dup = weft_cni_duplicate_key(item, NULL);
	if (dup) {
		_cleanup_free_ char *p = *path ? wasprintf("%s.%s", path, dup->string) : wstrdup(dup->string);
		return FAIL7(err, p, "given twice");
	}
	return 0;
}

static int want_list(const cJSON *item, const char *path, struct weft_cni_error *err)
{
	if (!cJSON_IsArray(item)) {
		_cleanup_free_ char *s = weft_cni_value_str(item);
		return FAIL7(err, path, "expected a list, got %s %s", weft_cni_type_name(item), s);
	}
	return 0;
}

static char *elem_path(const char *path, size_t i)
{
	return wasprintf("%s[%zu]", path, i);
}

/* A list of CIDRs or addresses (runtimeConfig.ips, args.cni.ips). */
static int want_ip_list(const cJSON *item, const char *path, struct weft_cidr **out, size_t *n,
			struct weft_cni_error *err)
{
	_cleanup_free_ struct weft_cidr *v = NULL;
	const cJSON *c;
	size_t i = 0;

	if (want_list(item, path, err) < 0)
		return -EINVAL;
	v = wcalloc((size_t)cJSON_GetArraySize(item) + 1, sizeof(*v));
	cJSON_ArrayForEach(c, item) {
		_cleanup_free_ char *p = elem_path(path, i);
		const char *s;

		if (weft_cni_want_string(c, p, &s, err) < 0)
			return -EINVAL;
		if (weft_cidr_parse_host(s, &v[i]) < 0)
			return FAIL7(err, p, "\"%.64s\" is not an IP address or CIDR", s);
		for (size_t j = 0; j < i; j++)
			if (weft_ip_eq(&v[j].ip, &v[i].ip))
				return FAIL7(err, p, "\"%.64s\" is listed twice", s);
		i++;
	}
	*out = TAKE_PTR(v);
	*n = i;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* ipam */

/* The range's allocatable bounds: IPv4 leaves out the network and the
 * broadcast address, IPv6 the subnet-router anycast address (the first);
 * point-to-point sized subnets (/31, /32, /127, /128) keep every address. */
static void usable_bounds(const struct weft_cidr *subnet, struct weft_ip *lo, struct weft_ip *hi)
{
	unsigned bits = weft_ip_bits(&subnet->ip);

	*lo = subnet->ip;
	weft_cidr_last(subnet, hi);
	if (subnet->prefixlen + 1 >= bits)
		return;
	weft_ip_add(lo, 1, lo);
	if (subnet->ip.family == AF_INET)
		weft_ip_add(hi, -1, hi);
}

static const char *reserved_name(const struct weft_cidr *subnet, const struct weft_ip *ip)
{
	struct weft_ip lo, hi, last;

	usable_bounds(subnet, &lo, &hi);
	if (weft_ip_cmp(ip, &lo) < 0)
		return subnet->ip.family == AF_INET ? "the network address" : "the subnet-router anycast address";
	weft_cidr_last(subnet, &last);
	if (weft_ip_cmp(ip, &hi) > 0 && weft_ip_eq(ip, &last))
		return "the broadcast address";
	return NULL;
}

/* "a.b.c.d-e.f.g.h/p" or a CIDR. */
static int parse_range(const cJSON *item, const char *path, struct weft_cni_ipam *ipam, bool *explicit_bounds,
		       struct weft_cni_error *err)
{
	char ipbuf[WEFT_CIDR_STRLEN], a[WEFT_CIDR_STRLEN], b[WEFT_CIDR_STRLEN];
	const char *s, *dash, *slash;
	struct weft_cidr c;

	if (weft_cni_want_string(item, path, &s, err) < 0)
		return -EINVAL;
	dash = strchr(s, '-');
	if (!dash) {
		if (weft_cidr_parse(s, false, &c) < 0)
			goto bad;
		/* Host bits are ignored, as whereabouts does. */
		weft_cidr_mask(&c);
		ipam->subnet = c;
		*explicit_bounds = false;
		return 0;
	}
	slash = strrchr(s, '/');
	if (!slash || slash < dash || (size_t)(dash - s) >= sizeof(a) || (size_t)(slash - dash - 1) >= sizeof(b))
		goto bad;
	memcpy(a, s, dash - s);
	a[dash - s] = 0;
	memcpy(b, dash + 1, slash - dash - 1);
	b[slash - dash - 1] = 0;
	/* "first/prefix" gives the subnet; the last address must share it. */
	if (snprintf(ipbuf, sizeof(ipbuf), "%s%s", a, slash) >= (int)sizeof(ipbuf) ||
	    weft_cidr_parse(ipbuf, false, &c) < 0 || weft_ip_parse(b, &ipam->last) < 0)
		goto bad;
	ipam->first = c.ip;
	weft_cidr_mask(&c);
	ipam->subnet = c;
	if (!weft_cidr_contains(&c, &ipam->last)) {
		char sub[WEFT_CIDR_STRLEN];
		return FAIL7(err, path, "the last address %s is outside %s", b, weft_cidr_str(&c, sub, sizeof(sub)));
	}
	*explicit_bounds = true;
	return 0;
bad:
	return FAIL7(err, path, "\"%.64s\" is not a CIDR or first-last/prefix range", s);
}

static int parse_in_subnet(const cJSON *item, const char *path, const struct weft_cidr *subnet, struct weft_ip *out,
			   struct weft_cni_error *err)
{
	char sub[WEFT_CIDR_STRLEN], ipb[WEFT_IP_STRLEN];
	const char *what;

	if (weft_cni_want_ip(item, path, out, err) < 0)
		return -EINVAL;
	weft_ip_str(out, ipb, sizeof(ipb));
	weft_cidr_str(subnet, sub, sizeof(sub));
	if (!weft_cidr_contains(subnet, out))
		return FAIL7(err, path, "%s is outside the range's subnet %s", ipb, sub);
	what = reserved_name(subnet, out);
	if (what)
		return FAIL7(err, path, "%s is %s of %s", ipb, what, sub);
	return 0;
}

static int parse_range_mode(const cJSON *ipam_obj, struct weft_cni_ipam *ipam, struct weft_cni_error *err)
{
	const cJSON *range = cJSON_GetObjectItemCaseSensitive(ipam_obj, "range");
	const cJSON *start = cJSON_GetObjectItemCaseSensitive(ipam_obj, "range_start");
	const cJSON *end = cJSON_GetObjectItemCaseSensitive(ipam_obj, "range_end");
	const cJSON *gw = cJSON_GetObjectItemCaseSensitive(ipam_obj, "gateway");
	const cJSON *excl = cJSON_GetObjectItemCaseSensitive(ipam_obj, "exclude");
	char sub[WEFT_CIDR_STRLEN], fb[WEFT_IP_STRLEN], lb[WEFT_IP_STRLEN];
	struct weft_ip lo, hi;
	bool explicit_bounds = false;
	const char *what;

	if (!range) {
		const char *k = start ? "range_start" : end ? "range_end" : gw ? "gateway" : "exclude";
		_cleanup_free_ char *p = wasprintf("ipam.%s", k);
		return FAIL7(err, p, "needs ipam.range");
	}
	if (parse_range(range, "ipam.range", ipam, &explicit_bounds, err) < 0)
		return -EINVAL;
	weft_cidr_str(&ipam->subnet, sub, sizeof(sub));
	usable_bounds(&ipam->subnet, &lo, &hi);
	if (explicit_bounds) {
		if (start || end)
			return FAIL7(err, start ? "ipam.range_start" : "ipam.range_end",
				     "cannot be combined with a first-last ipam.range");
		what = reserved_name(&ipam->subnet, &ipam->first);
		if (what)
			return FAIL7(err, "ipam.range", "the first address %s is %s of %s",
				     weft_ip_str(&ipam->first, fb, sizeof(fb)), what, sub);
		what = reserved_name(&ipam->subnet, &ipam->last);
		if (what)
			return FAIL7(err, "ipam.range", "the last address %s is %s of %s",
				     weft_ip_str(&ipam->last, lb, sizeof(lb)), what, sub);
		if (weft_ip_cmp(&ipam->first, &ipam->last) > 0)
			return FAIL7(err, "ipam.range", "the first address %s is after the last %s",
				     weft_ip_str(&ipam->first, fb, sizeof(fb)), weft_ip_str(&ipam->last, lb, sizeof(lb)));
	} else {
		ipam->first = lo;
		ipam->last = hi;
		if (start && parse_in_subnet(start, "ipam.range_start", &ipam->subnet, &ipam->first, err) < 0)
			return -EINVAL;
		if (end && parse_in_subnet(end, "ipam.range_end", &ipam->subnet, &ipam->last, err) < 0)
			return -EINVAL;
		if (weft_ip_cmp(&ipam->first, &ipam->last) > 0)
			return FAIL7(err, start ? "ipam.range_start" : "ipam.range_end", "%s is after %s",
				     weft_ip_str(&ipam->first, fb, sizeof(fb)), weft_ip_str(&ipam->last, lb, sizeof(lb)));
	}
	ipam->range_text = wasprintf("%s-%s/%u", weft_ip_str(&ipam->first, fb, sizeof(fb)),
				     weft_ip_str(&ipam->last, lb, sizeof(lb)), ipam->subnet.prefixlen);
	if (gw) {
		if (parse_in_subnet(gw, "ipam.gateway", &ipam->subnet, &ipam->gateway, err) < 0)
			return -EINVAL;
		ipam->has_gateway = true;
	}
	if (excl) {
		const cJSON *c;
		size_t i = 0;

		if (want_list(excl, "ipam.exclude", err) < 0)
			return -EINVAL;
		ipam->exclude = wcalloc((size_t)cJSON_GetArraySize(excl) + 1, sizeof(*ipam->exclude));
		cJSON_ArrayForEach(c, excl) {
			_cleanup_free_ char *p = elem_path("ipam.exclude", i);
			struct weft_cidr x;
			const char *s;

			if (weft_cni_want_string(c, p, &s, err) < 0)
				return -EINVAL;
			if (weft_cidr_parse_host(s, &x) < 0)
				return FAIL7(err, p, "\"%.64s\" is not an IP address or CIDR", s);
			weft_cidr_mask(&x);
			if (!weft_cidr_covers(&ipam->subnet, &x))
				return FAIL7(err, p, "%s is not inside the range's subnet %s", s, sub);
			ipam->exclude[i++] = x;
			ipam->n_exclude = i;
		}
	}
	return 0;
}

static int parse_static_mode(const cJSON *list, struct weft_cni_ipam *ipam, struct weft_cni_error *err)
{
	const cJSON *c;
	size_t i = 0;

	if (want_list(list, "ipam.addresses", err) < 0)
		return -EINVAL;
	if (cJSON_GetArraySize(list) == 0)
		return FAIL7(err, "ipam.addresses", "is empty");
	ipam->addresses = wcalloc((size_t)cJSON_GetArraySize(list), sizeof(*ipam->addresses));
	cJSON_ArrayForEach(c, list) {
		_cleanup_free_ char *p = elem_path("ipam.addresses", i);
		_cleanup_free_ char *pa = wasprintf("%s.address", p), *pg = wasprintf("%s.gateway", p);
		struct weft_cni_static_addr *a = &ipam->addresses[i];
		const cJSON *x;

		if (want_object(c, p, err) < 0)
			return -EINVAL;
		cJSON_ArrayForEach(x, c) {
			if (!streq(x->string, "address") && !streq(x->string, "gateway")) {
				_cleanup_free_ char *pk = wasprintf("%s.%s", p, x->string);
				return unsupported(err, pk, NULL);
			}
		}
		x = cJSON_GetObjectItemCaseSensitive(c, "address");
		if (!x)
			return FAIL7(err, pa, "is required");
		if (weft_cni_want_cidr(x, pa, true, &a->address, err) < 0)
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (weft_ip_eq(&ipam->addresses[j].address.ip, &a->address.ip))
				return FAIL7(err, pa, "\"%s\" is listed twice", x->valuestring);
		x = cJSON_GetObjectItemCaseSensitive(c, "gateway");
		if (x) {
			if (weft_cni_want_ip(x, pg, &a->gateway, err) < 0)
				return -EINVAL;
			if (a->gateway.family != a->address.ip.family)
				return FAIL7(err, pg, "\"%s\" is not of the address's family", x->valuestring);
			a->has_gateway = true;
		}
		ipam->n_addresses = ++i;
	}
	return 0;
}

static int parse_pool_mode(const cJSON *ipam_obj, struct weft_cni_ipam *ipam, struct weft_cni_error *err)
{
	const cJSON *pools = cJSON_GetObjectItemCaseSensitive(ipam_obj, "ipv4_pools");
	const cJSON *assign = cJSON_GetObjectItemCaseSensitive(ipam_obj, "assign_ipv4");

	if (pools) {
		if (weft_cni_want_strv(pools, "ipam.ipv4_pools", &ipam->ipv4_pools, err) < 0)
			return -EINVAL;
		for (size_t i = 0; i < ipam->ipv4_pools.n; i++) {
			_cleanup_free_ char *p = elem_path("ipam.ipv4_pools", i);
			const char *s = ipam->ipv4_pools.v[i];
			struct weft_cidr c;

			if (strchr(s, '/')) {
				if (weft_cidr_parse(s, false, &c) < 0 || c.ip.family != AF_INET)
					return FAIL7(err, p, "\"%.64s\" is not an IPv4 CIDR", s);
			} else if (!valid_name(s)) {
				return FAIL7(err, p, "\"%.64s\" is not a pool name or an IPv4 CIDR", s);
			}
			for (size_t j = 0; j < i; j++)
				if (streq(ipam->ipv4_pools.v[j], s))
					return FAIL7(err, p, "\"%.64s\" is listed twice", s);
		}
	}
	ipam->assign_ipv4 = true;
	if (assign) {
		/* Calico writes "true"/"false" as strings; take both. */
		if (cJSON_IsString(assign) && (streq(assign->valuestring, "true") || streq(assign->valuestring, "false")))
			ipam->assign_ipv4 = streq(assign->valuestring, "true");
		else if (weft_cni_want_bool(assign, "ipam.assign_ipv4", &ipam->assign_ipv4, err) < 0)
			return -EINVAL;
		if (!ipam->assign_ipv4)
			return FAIL7(err, "ipam.assign_ipv4", "false leaves nothing to assign (weft assigns IPv4 only)");
	}
	return 0;
}

static int parse_ipam(const cJSON *obj, struct weft_cni_ipam *ipam, struct weft_cni_error *err)
{
	bool pool, range, stat;
	const cJSON *c;
	const char *type;

	/* A second "ipam" (tolerated duplicate keys of a delegating plugin's
	 * config) must not overwrite, and leak, the first one's fields. */
	if (ipam->present)
		return FAIL7(err, "ipam", "given twice");
	if (want_object(obj, "ipam", err) < 0)
		return -EINVAL;
	cJSON_ArrayForEach(c, obj) {
		_cleanup_free_ char *p = wasprintf("ipam.%s", c->string);
		const char *hint = NULL;
		size_t i;

		for (i = 0; i < ARRAY_SIZE(ipam_keys); i++)
			if (streq(c->string, ipam_keys[i]))
				break;
		if (i < ARRAY_SIZE(ipam_keys))
			continue;
		for (i = 0; i < ARRAY_SIZE(ipam_hints); i++)
			if (streq(c->string, ipam_hints[i].theirs))
				hint = ipam_hints[i].ours;
		return unsupported(err, p, hint);
	}
	ipam->present = true;
	c = cJSON_GetObjectItemCaseSensitive(obj, "type");
	if (!c)
		return FAIL7(err, "ipam.type", "is required (\"weft-ipam\")");
	if (weft_cni_want_string(c, "ipam.type", &type, err) < 0)
		return -EINVAL;
	if (!streq(type, "weft-ipam") && !streq(type, "weft"))
		return FAIL7(err, "ipam.type", "\"%.64s\" is not weft's IPAM (use \"weft-ipam\")", type);
	ipam->type = wstrdup(type);

	pool = cJSON_GetObjectItemCaseSensitive(obj, "ipv4_pools") || cJSON_GetObjectItemCaseSensitive(obj, "assign_ipv4");
	range = cJSON_GetObjectItemCaseSensitive(obj, "range") || cJSON_GetObjectItemCaseSensitive(obj, "range_start") ||
		cJSON_GetObjectItemCaseSensitive(obj, "range_end") || cJSON_GetObjectItemCaseSensitive(obj, "exclude") ||
		cJSON_GetObjectItemCaseSensitive(obj, "gateway");
	stat = cJSON_GetObjectItemCaseSensitive(obj, "addresses");
	if (pool + range + stat > 1)
		return FAIL7(err, "ipam", "%s cannot be combined",
			     pool && range ? "pool keys (ipv4_pools, assign_ipv4) and range keys (range, range_start, "
					     "range_end, exclude, gateway)"
			     : pool	   ? "pool keys (ipv4_pools, assign_ipv4) and static addresses"
					   : "range keys (range, range_start, range_end, exclude, gateway) and static addresses");
	if (range) {
		ipam->mode = WEFT_CNI_IPAM_RANGE;
		if (parse_range_mode(obj, ipam, err) < 0)
			return -EINVAL;
	} else if (stat) {
		ipam->mode = WEFT_CNI_IPAM_STATIC;
		if (parse_static_mode(cJSON_GetObjectItemCaseSensitive(obj, "addresses"), ipam, err) < 0)
			return -EINVAL;
	} else {
		ipam->mode = WEFT_CNI_IPAM_POOL;
		if (parse_pool_mode(obj, ipam, err) < 0)
			return -EINVAL;
	}
	c = cJSON_GetObjectItemCaseSensitive(obj, "routes");
	if (c) {
		const cJSON *x;
		size_t i = 0;

		if (want_list(c, "ipam.routes", err) < 0)
			return -EINVAL;
		ipam->routes = wcalloc((size_t)cJSON_GetArraySize(c) + 1, sizeof(*ipam->routes));
		cJSON_ArrayForEach(x, c) {
			_cleanup_free_ char *p = elem_path("ipam.routes", i);

			if (want_object(x, p, err) < 0)
				return -EINVAL;
			for (const cJSON *k = x->child; k; k = k->next) {
				if (!streq(k->string, "dst") && !streq(k->string, "gw")) {
					_cleanup_free_ char *pk = wasprintf("%s.%s", p, k->string);
					return unsupported(err, pk, NULL);
				}
			}
			if (weft_cni_want_route(x, p, false, &ipam->routes[i], err) < 0)
				return -EINVAL;
			ipam->n_routes = ++i;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* runtimeConfig, args, attachments */

static int parse_runtime_bandwidth(const cJSON *obj, struct weft_cni_bandwidth *bw, struct weft_cni_error *err)
{
	static const char *const names[] = {"ingressRate", "ingressBurst", "egressRate", "egressBurst"};
	uint64_t *slots[] = {&bw->ingress_rate, &bw->ingress_burst, &bw->egress_rate, &bw->egress_burst};

	if (want_object(obj, "runtimeConfig.bandwidth", err) < 0)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, names[i]);
		_cleanup_free_ char *p = wasprintf("runtimeConfig.bandwidth.%s", names[i]);
		/* Bursts are bits; tc keeps them in bytes in 32 bits, and the
		 * dataplane keeps them below 2^31 bytes (tbf's bucket time
		 * must not overflow either): refuse more than it can set up. */
		int64_t max = i % 2 ? (int64_t)(UINT32_MAX / 2) * 8 : (int64_t)WEFT_CNI_BANDWIDTH_MAX;
		int64_t v;

		if (!c || cJSON_IsNull(c))
			continue;
		if (weft_cni_want_int(c, p, 0, max, &v, err) < 0)
			return -EINVAL;
		/* The annotations' lower bound for runtimeConfig too: tc
		 * counts bytes per second, so a rate under 8 bit/s was set as
		 * 8 and every CHECK then failed. */
		if (i % 2 == 0 && v > 0 && (uint64_t)v < WEFT_CNI_BANDWIDTH_MIN)
			return FAIL7(err, p, "%lld bit/s is below the smallest rate, %llu bit/s (kubelet's too)",
				     (long long)v, WEFT_CNI_BANDWIDTH_MIN);
		*slots[i] = (uint64_t)v;
	}
	if (bw->ingress_burst && !bw->ingress_rate)
		return FAIL7(err, "runtimeConfig.bandwidth.ingressBurst", "is set but ingressRate is not");
	if (bw->egress_burst && !bw->egress_rate)
		return FAIL7(err, "runtimeConfig.bandwidth.egressBurst", "is set but egressRate is not");
	return 0;
}

static int parse_port_mappings(const cJSON *list, struct weft_cni_config *cfg, struct weft_cni_error *err)
{
	const cJSON *c;
	size_t i = 0;

	if (want_list(list, "runtimeConfig.portMappings", err) < 0)
		return -EINVAL;
	cfg->rt_port_mappings = wcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*cfg->rt_port_mappings));
	cJSON_ArrayForEach(c, list) {
		_cleanup_free_ char *p = elem_path("runtimeConfig.portMappings", i);
		struct weft_cni_port_mapping *m = &cfg->rt_port_mappings[i];
		const cJSON *x;
		int64_t v;

		if (want_object(c, p, err) < 0)
			return -EINVAL;
		for (int k = 0; k < 2; k++) {
			const char *key = k ? "containerPort" : "hostPort";
			_cleanup_free_ char *pk = wasprintf("%s.%s", p, key);

			x = cJSON_GetObjectItemCaseSensitive(c, key);
			if (!x)
				return FAIL7(err, pk, "is required");
			if (weft_cni_want_int(x, pk, 1, 65535, &v, err) < 0)
				return -EINVAL;
			*(k ? &m->container_port : &m->host_port) = (uint16_t)v;
		}
		weft_strlcpy(m->protocol, "tcp", sizeof(m->protocol));
		x = cJSON_GetObjectItemCaseSensitive(c, "protocol");
		if (x) {
			_cleanup_free_ char *pk = wasprintf("%s.protocol", p);
			const char *s;

			if (weft_cni_want_string(x, pk, &s, err) < 0)
				return -EINVAL;
			if (strcasecmp(s, "tcp") && strcasecmp(s, "udp") && strcasecmp(s, "sctp"))
				return FAIL7(err, pk, "\"%.16s\" is not tcp, udp or sctp", s);
			for (size_t k = 0; s[k]; k++)
				m->protocol[k] = (char)tolower((unsigned char)s[k]);
			m->protocol[strlen(s)] = 0;
		}
		x = cJSON_GetObjectItemCaseSensitive(c, "hostIP");
		if (x && !(cJSON_IsString(x) && !x->valuestring[0])) {
			_cleanup_free_ char *pk = wasprintf("%s.hostIP", p);
			if (weft_cni_want_ip(x, pk, &m->host_ip, err) < 0)
				return -EINVAL;
			m->has_host_ip = true;
		}
		cfg->n_rt_port_mappings = ++i;
	}
	return 0;
}

static int parse_runtime_config(const cJSON *obj, struct weft_cni_config *cfg, struct weft_cni_error *err)
{
	const cJSON *c;

	if (want_object(obj, "runtimeConfig", err) < 0)
		return -EINVAL;
	/* Only the capabilities weft uses are read; runtimes and Multus pass
	 * others (aliases, deviceID, cgroupPath, pod annotations ...) which
	 * belong to other plugins in the chain, so they are ignored. */
	c = cJSON_GetObjectItemCaseSensitive(obj, "ips");
	if (c && !cJSON_IsNull(c) && want_ip_list(c, "runtimeConfig.ips", &cfg->rt_ips, &cfg->n_rt_ips, err) < 0)
		return -EINVAL;
	c = cJSON_GetObjectItemCaseSensitive(obj, "mac");
	if (c && !cJSON_IsNull(c) && !(cJSON_IsString(c) && !c->valuestring[0])) {
		const char *s;
		if (weft_cni_want_string(c, "runtimeConfig.mac", &s, err) < 0)
			return -EINVAL;
		if (weft_cni_parse_mac(s, cfg->rt_mac) < 0)
			return FAIL7(err, "runtimeConfig.mac", "\"%.32s\" is not a MAC address", s);
		cfg->rt_has_mac = true;
	}
	c = cJSON_GetObjectItemCaseSensitive(obj, "bandwidth");
	if (c && !cJSON_IsNull(c)) {
		if (parse_runtime_bandwidth(c, &cfg->rt_bandwidth, err) < 0)
			return -EINVAL;
		cfg->rt_has_bandwidth = true;
	}
	c = cJSON_GetObjectItemCaseSensitive(obj, "portMappings");
	if (c && !cJSON_IsNull(c) && parse_port_mappings(c, cfg, err) < 0)
		return -EINVAL;
	return 0;
}

static int parse_args(const cJSON *obj, struct weft_cni_config *cfg, struct weft_cni_error *err)
{
	const cJSON *cni, *ips;

	if (want_object(obj, "args", err) < 0)
		return -EINVAL;
	cni = cJSON_GetObjectItemCaseSensitive(obj, "cni");
	if (!cni || cJSON_IsNull(cni))
		return 0;
	if (want_object(cni, "args.cni", err) < 0)
		return -EINVAL;
	ips = cJSON_GetObjectItemCaseSensitive(cni, "ips");
	if (ips && !cJSON_IsNull(ips) && want_ip_list(ips, "args.cni.ips", &cfg->arg_ips, &cfg->n_arg_ips, err) < 0)
		return -EINVAL;
	return 0;
}

static int parse_attachments(const cJSON *list, const char *path, struct weft_cni_config *cfg,
			     struct weft_cni_error *err)
{
	const cJSON *c;
	size_t i = 0;

	/* libcni marshals a nil list (no attachment left) as null. */
	if (cJSON_IsNull(list)) {
		cfg->has_valid_attachments = true;
		return 0;
	}
	if (want_list(list, path, err) < 0)
		return -EINVAL;
	cfg->valid_attachments = wcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*cfg->valid_attachments));
	cJSON_ArrayForEach(c, list) {
		_cleanup_free_ char *p = elem_path(path, i);
		_cleanup_free_ char *pc = wasprintf("%s.containerID", p), *pi = wasprintf("%s.ifname", p);
		struct weft_cni_attachment *a = &cfg->valid_attachments[i];
		const char *id, *ifn;

		if (want_object(c, p, err) < 0)
			return -EINVAL;
		if (weft_cni_want_string(cJSON_GetObjectItemCaseSensitive(c, "containerID"), pc, &id, err) < 0 ||
		    weft_cni_want_string(cJSON_GetObjectItemCaseSensitive(c, "ifname"), pi, &ifn, err) < 0)
			return -EINVAL;
		a->container_id = wstrdup(id);
		a->ifname = wstrdup(ifn);
		cfg->n_valid_attachments = ++i;
	}
	cfg->has_valid_attachments = true;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Top level */

static int parse_version(const cJSON *doc, struct weft_cni_config *cfg, struct weft_cni_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "cniVersion");
	const cJSON *vs = cJSON_GetObjectItemCaseSensitive(doc, "cniVersions");
	static const char details[] = "weft supports cniVersion 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0";
	enum weft_cni_version best = 0, x;
	const char *s;
	int r;

	if (vs) {
		const cJSON *c;
		size_t i = 0;

		if (want_list(vs, "cniVersions", err) < 0)
			return -EINVAL;
		cJSON_ArrayForEach(c, vs) {
			_cleanup_free_ char *p = elem_path("cniVersions", i++);
			if (weft_cni_want_string(c, p, &s, err) < 0)
				return -EINVAL;
			r = weft_cni_version_parse(s, &x);
			if (r == -EINVAL)
				return FAIL7(err, p, "\"%.16s\" is not a version", s);
			if (r == 0 && x > best)
				best = x;
		}
	}
	if (v) {
		if (weft_cni_want_string(v, "cniVersion", &s, err) < 0)
			return -EINVAL;
		r = weft_cni_version_parse(s, &x);
		if (r == -EINVAL)
			return FAIL7(err, "cniVersion", "\"%.16s\" is not a version", s);
		if (r < 0)
			return weft_cni_error_set(err, WEFT_CNI_ERR_INCOMPATIBLE_VERSION, details,
						  "cniVersion \"%.16s\" is not supported", s);
		/* The runtime picked this one from cniVersions (if any). */
		cfg->version = x;
	} else if (best) {
		cfg->version = best;
	} else if (vs) {
		return weft_cni_error_set(err, WEFT_CNI_ERR_INCOMPATIBLE_VERSION, details,
					  "cniVersions lists no version weft supports");
	} else {
		/* An absent cniVersion means 0.1.0 in every runtime. */
		return weft_cni_error_set(err, WEFT_CNI_ERR_INCOMPATIBLE_VERSION, details,
					  "cniVersion is missing (which means 0.1.0, not supported)");
	}
	if (err)
		err->version = cfg->version;
	return 0;
}

static int parse_name(const cJSON *c, const char *key, bool strict, char **out, struct weft_cni_error *err)
{
	const char *s, *why;

	if (!c)
		return FAIL7(err, key, "is required");
	if (weft_cni_want_string(c, key, &s, err) < 0)
		return -EINVAL;
	if (!*s)
		return FAIL7(err, key, "is empty");
	/* The spec's rule for network names: the runtime keys its cache and
	 * weft keys its ranges and endpoints by it. */
	if (strict && weft_cni_check_container_id(s, &why) < 0)
		return FAIL7(err, key, "\"%.64s\" %s", s, why);
	*out = wstrdup(s);
	return 0;
}

static int parse_weft_key(const cJSON *c, struct weft_cni_config *cfg, struct weft_cni_error *err)
{
	const char *k = c->string, *s, *why;
	int64_t v;

	if (streq(k, "weftd_socket")) {
		if (weft_cni_want_string(c, k, &s, err) < 0)
			return -EINVAL;
		if (s[0] != '/')
			return FAIL7(err, k, "\"%.64s\" is not an absolute path", s);
		/* sun_path holds 108 bytes with the NUL. */
		if (strlen(s) >= 108)
			return FAIL7(err, k, "is longer than a unix socket path may be (107 bytes)");
		free(cfg->weftd_socket);
		cfg->weftd_socket = wstrdup(s);
	} else if (streq(k, "mode")) {
		if (weft_cni_want_string(c, k, &s, err) < 0)
			return -EINVAL;
		if (streq(s, "routed"))
			cfg->mode = WEFT_CNI_MODE_ROUTED;
		else if (streq(s, "macvlan"))
			cfg->mode = WEFT_CNI_MODE_MACVLAN;
		else
			return FAIL7(err, k, "\"%.32s\" is not routed or macvlan", s);
	} else if (streq(k, "mtu")) {
		if (weft_cni_want_int(c, k, 68, 65535, &v, err) < 0)
			return -EINVAL;
		cfg->mtu = (unsigned)v;
	} else if (streq(k, "profiles")) {
		if (weft_cni_want_strv(c, k, &cfg->profiles, err) < 0)
			return -EINVAL;
		for (size_t i = 0; i < cfg->profiles.n; i++) {
			_cleanup_free_ char *p = elem_path(k, i);
			if (!valid_name(cfg->profiles.v[i]))
				return FAIL7(err, p, "\"%.64s\" is not a profile name (letters, digits, '.', '_', '-')",
					     cfg->profiles.v[i]);
			for (size_t j = 0; j < i; j++)
				if (streq(cfg->profiles.v[j], cfg->profiles.v[i]))
					return FAIL7(err, p, "\"%.64s\" is listed twice", cfg->profiles.v[i]);
		}
	} else if (streq(k, "master")) {
		if (weft_cni_want_string(c, k, &s, err) < 0)
			return -EINVAL;
		if (weft_cni_check_ifname(s, &why) < 0)
			return FAIL7(err, k, "\"%.64s\" %s", s, why);
		cfg->master = wstrdup(s);
	} else if (streq(k, "macvlan_mode")) {
		size_t i;
		if (weft_cni_want_string(c, k, &s, err) < 0)
			return -EINVAL;
		for (i = 0; i < ARRAY_SIZE(macvlan_modes); i++)
			if (streq(s, macvlan_modes[i]))
				break;
		if (i == ARRAY_SIZE(macvlan_modes))
			return FAIL7(err, k, "\"%.32s\" is not bridge, vepa, private or passthru", s);
		cfg->macvlan_mode = (enum weft_cni_macvlan_mode)i;
	} else if (streq(k, "ingress_bandwidth")) {
		return want_bandwidth(c, k, &cfg->ingress_bandwidth, err);
	} else if (streq(k, "egress_bandwidth")) {
		return want_bandwidth(c, k, &cfg->egress_bandwidth, err);
	} else if (streq(k, "labels")) {
		const cJSON *l;
		size_t i = 0;

		if (want_object(c, k, err) < 0)
			return -EINVAL;
		cfg->labels = wcalloc((size_t)cJSON_GetArraySize(c) + 1, sizeof(*cfg->labels));
		cJSON_ArrayForEach(l, c) {
			_cleanup_free_ char *p = wasprintf("labels.%s", l->string);
			if (!valid_label_key(l->string))
				return FAIL7(err, "labels", "\"%.64s\" is not a label key", l->string);
			if (weft_cni_want_string(l, p, &s, err) < 0)
				return -EINVAL;
			if (!valid_label_segment(s, strlen(s), true))
				return FAIL7(err, p, "\"%.64s\" is not a label value (at most 63 letters, digits, '-', "
						    "'_', '.')", s);
			cfg->labels[i].key = wstrdup(l->string);
			cfg->labels[i].value = wstrdup(s);
			cfg->n_labels = ++i;
		}
	}
	return 0;
}

static int check_modes(struct weft_cni_config *cfg, const cJSON *doc, struct weft_cni_error *err)
{
	if (cfg->mode == WEFT_CNI_MODE_ROUTED) {
		if (cfg->master)
			return FAIL7(err, "master", "is only used in macvlan mode");
		if (cJSON_GetObjectItemCaseSensitive(doc, "macvlan_mode"))
			return FAIL7(err, "macvlan_mode", "is only used in macvlan mode");
		return 0;
	}
	if (!cfg->master)
		return FAIL7(err, "master", "is required in macvlan mode (the host interface to attach to)");
	if (!cfg->ipam.present)
		return FAIL7(err, "ipam", "is required in macvlan mode (a range or static addresses)");
	if (cfg->ipam.mode == WEFT_CNI_IPAM_POOL)
		return FAIL7(err, "ipam", "macvlan mode needs a range or static addresses; pool IPAM hands out "
					  "routed addresses");
	if (cfg->ingress_bandwidth || cfg->egress_bandwidth)
		return FAIL7(err, cfg->ingress_bandwidth ? "ingress_bandwidth" : "egress_bandwidth",
			     "is only supported in routed mode");
	return 0;
}

static int parse_doc(const cJSON *doc, unsigned flags, struct weft_cni_config *cfg, struct weft_cni_error *err)
{
	bool ipam_only = flags & WEFT_CNI_PARSE_IPAM_ONLY;
	const cJSON *c, *dup;
	bool b;

	if (!cJSON_IsObject(doc))
		return weft_cni_fail(err, WEFT_CNI_ERR_DECODE, "", "the network configuration is %s, not a JSON object",
				     weft_cni_type_name(doc));
	if (parse_version(doc, cfg, err) < 0)
		return -EINVAL;
	/* An IPAM plugin tolerates another plugin's keys given twice, not
	 * its own (all of them: each duplicate, not just the first). */
	for (dup = weft_cni_duplicate_key(doc, NULL); dup; dup = weft_cni_duplicate_key(doc, dup))
		if (!ipam_only || key_index(dup->string) >= 0)
			return FAIL7(err, dup->string, "given twice");
	if (!ipam_only) {
		cJSON_ArrayForEach(c, doc) {
			/* Keys under cni.dev/ are reserved for the spec and
			 * libcni; a later version may add some. */
			if (key_index(c->string) < 0 && !startswith(c->string, "cni.dev/"))
				return unsupported(err, c->string, NULL);
		}
	}

	if (parse_name(cJSON_GetObjectItemCaseSensitive(doc, "name"), "name", true, &cfg->name, err) < 0 ||
	    parse_name(cJSON_GetObjectItemCaseSensitive(doc, "type"), "type", false, &cfg->type, err) < 0)
		return -EINVAL;
	cfg->weftd_socket = wstrdup(WEFT_CNI_DEFAULT_SOCKET);

	cJSON_ArrayForEach(c, doc) {
		const char *k = c->string;
		int i = key_index(k);

		if (i < 0 || top_keys[i].kind == K_TOLERATED)
			continue;
		if (top_keys[i].kind == K_WEFT) {
			if (!ipam_only && parse_weft_key(c, cfg, err) < 0)
				return -EINVAL;
			continue;
		}
		if (streq(k, "disableCheck")) {
			if (weft_cni_want_bool(c, k, &cfg->disable_check, err) < 0)
				return -EINVAL;
		} else if (streq(k, "disableGC")) {
			if (weft_cni_want_bool(c, k, &cfg->disable_gc, err) < 0)
				return -EINVAL;
		} else if (streq(k, "ipMasq")) {
			if (weft_cni_want_bool(c, k, &cfg->ip_masq, err) < 0)
				return -EINVAL;
		} else if (streq(k, "capabilities")) {
			const cJSON *x;
			if (want_object(c, k, err) < 0)
				return -EINVAL;
			cJSON_ArrayForEach(x, c) {
				_cleanup_free_ char *p = wasprintf("capabilities.%s", x->string);
				if (weft_cni_want_bool(x, p, &b, err) < 0)
					return -EINVAL;
			}
		} else if (streq(k, "dns")) {
			if (want_object(c, k, err) < 0 || weft_cni_want_dns(c, k, &cfg->dns, err) < 0)
				return -EINVAL;
		} else if (streq(k, "runtimeConfig")) {
			if (!cJSON_IsNull(c) && parse_runtime_config(c, cfg, err) < 0)
				return -EINVAL;
		} else if (streq(k, "args")) {
			if (!cJSON_IsNull(c) && parse_args(c, cfg, err) < 0)
				return -EINVAL;
		} else if (streq(k, "prevResult")) {
			if (!cJSON_IsNull(c) &&
			    weft_cni_result_from_json(c, "prevResult", cfg->version, &cfg->prev_result, err) < 0)
				return -EINVAL;
		} else if (streq(k, "ipam")) {
			if (parse_ipam(c, &cfg->ipam, err) < 0)
				return -EINVAL;
		}
	}
	/* libcni writes the list under both names; the first is the spec's. */
	c = cJSON_GetObjectItemCaseSensitive(doc, "cni.dev/valid-attachments");
	if (c && parse_attachments(c, "cni.dev/valid-attachments", cfg, err) < 0)
		return -EINVAL;
	if (!c) {
		c = cJSON_GetObjectItemCaseSensitive(doc, "cni.dev/attachments");
		if (c && parse_attachments(c, "cni.dev/attachments", cfg, err) < 0)
			return -EINVAL;
	}
	if (!cfg->ipam.present) {
		if (ipam_only)
			return FAIL7(err, "ipam", "is required");
		cfg->ipam.mode = WEFT_CNI_IPAM_POOL;
		cfg->ipam.assign_ipv4 = true;
	}
	if (!ipam_only && check_modes(cfg, doc, err) < 0)
		return -EINVAL;
	return 0;
}

int weft_cni_config_parse(const char *text, size_t len, unsigned flags, struct weft_cni_config **out,
			  struct weft_cni_error *err)
{
	_cleanup_json_ cJSON *doc = NULL;
	struct weft_cni_error local = {0};
	struct weft_cni_config *cfg;
	int r;

	if (!err)
		err = &local;
	if (weft_cni_json_parse(text, len, "the network configuration", &doc, err) < 0) {
		weft_cni_error_clear(&local);
		return -EBADMSG;
	}
	cfg = wcalloc(1, sizeof(*cfg));
	if (parse_doc(doc, flags, cfg, err) < 0) {
		r = err->code == WEFT_CNI_ERR_INCOMPATIBLE_VERSION ? -ENOTSUP
		    : err->code == WEFT_CNI_ERR_DECODE		 ? -EBADMSG
								 : -EINVAL;
		weft_cni_config_free(cfg);
		weft_cni_error_clear(&local);
		return r;
	}
	*out = cfg;
	return 0;
}

/* ---------------------------------------------------------------------- */

void weft_cni_effective_bandwidth(const struct weft_cni_config *c, const struct weft_cni_env *env,
				  struct weft_cni_bandwidth *out)
{
	struct weft_cni_bandwidth bw = {0};

	bw.ingress_rate = c->ingress_bandwidth;
	bw.egress_rate = c->egress_bandwidth;
	if (env && env->ingress_bandwidth)
		bw.ingress_rate = env->ingress_bandwidth;
	if (env && env->egress_bandwidth)
		bw.egress_rate = env->egress_bandwidth;
	if (c->rt_has_bandwidth) {
		if (c->rt_bandwidth.ingress_rate) {
			bw.ingress_rate = c->rt_bandwidth.ingress_rate;
			bw.ingress_burst = c->rt_bandwidth.ingress_burst;
		}
		if (c->rt_bandwidth.egress_rate) {
			bw.egress_rate = c->rt_bandwidth.egress_rate;
			bw.egress_burst = c->rt_bandwidth.egress_burst;
		}
	}
	*out = bw;
}

int weft_cni_requested_ips(const struct weft_cni_config *c, const struct weft_cni_env *env, struct weft_cidr **out)
{
	if (c->n_rt_ips) {
		*out = wmemdup(c->rt_ips, c->n_rt_ips * sizeof(*c->rt_ips));
		return (int)c->n_rt_ips;
	}
	if (c->n_arg_ips) {
		*out = wmemdup(c->arg_ips, c->n_arg_ips * sizeof(*c->arg_ips));
		return (int)c->n_arg_ips;
	}
	if (env && env->n_ips) {
		struct weft_cidr *v = wcalloc(env->n_ips, sizeof(*v));
		for (size_t i = 0; i < env->n_ips; i++) {
			v[i].ip = env->ips[i];
			v[i].prefixlen = weft_ip_bits(&env->ips[i]);
		}
		*out = v;
		return (int)env->n_ips;
	}
	*out = NULL;
	return 0;
}
