/* kinds.c - the kinds of resources: names, aliases and schemas.
 *
 * docs/resources.md describes every field listed here; keep them in step.
 */
#include "model/schema.h"

#include "lib/ipaddr.h"
#include "model/selector.h"

#include <arpa/inet.h>
#include <math.h>
#include <strings.h>

/* --- kinds ------------------------------------------------------------ */

struct kind_def {
	struct weft_kind_info info;
	const char *prefix;
	const char *aliases[4]; /* more lower-case CLI names */
};

static const struct kind_def kinds[WEFT_KIND_COUNT] = {
	[WEFT_KIND_IPPOOL] = {{WEFT_KIND_IPPOOL, "IPPool", "ippools", "pool"}, "/weft/v1/ippools/", {"ippool", "pools"}},
	[WEFT_KIND_PROFILE] = {{WEFT_KIND_PROFILE, "Profile", "profiles", NULL}, "/weft/v1/profiles/", {"profile"}},
	[WEFT_KIND_POLICY] = {{WEFT_KIND_POLICY, "Policy", "policies", NULL}, "/weft/v1/policies/", {"policy"}},
	[WEFT_KIND_NODE] = {{WEFT_KIND_NODE, "Node", "nodes", NULL}, "/weft/v1/nodes/", {"node"}},
	[WEFT_KIND_BGPPEER] = {{WEFT_KIND_BGPPEER, "BGPPeer", "bgppeers", "peer"}, "/weft/v1/bgppeers/", {"bgppeer", "peers"}},
	[WEFT_KIND_BGPCONFIG] = {{WEFT_KIND_BGPCONFIG, "BGPConfig", "bgpconfigs", NULL}, "/weft/v1/bgpconfigs/",
				 {"bgpconfig", "bgpconfiguration", "bgpconfigurations"}},
	[WEFT_KIND_TENANT] = {{WEFT_KIND_TENANT, "Tenant", "tenants", NULL}, "/weft/v1/tenants/", {"tenant"}},
	[WEFT_KIND_NETWORK] = {{WEFT_KIND_NETWORK, "Network", "networks", "net"}, "/weft/v1/networks/", {"network", "nets"}},
	[WEFT_KIND_ENDPOINT] = {{WEFT_KIND_ENDPOINT, "Endpoint", "endpoints", "ep"}, "/weft/v1/endpoints/", {"endpoint", "eps"}},
};

const struct weft_kind_info *weft_kind_info(enum weft_kind kind)
{
	if ((unsigned)kind >= WEFT_KIND_COUNT)
		return NULL;
	return &kinds[kind].info;
}

const char *weft_kind_prefix(enum weft_kind kind)
{
	if ((unsigned)kind >= WEFT_KIND_COUNT)
		return NULL;
	return kinds[kind].prefix;
}

int weft_kind_lookup(const char *s, enum weft_kind *out)
{
	if (!s)
		return -ENOENT;
	for (size_t k = 0; k < WEFT_KIND_COUNT; k++) {
		const struct kind_def *d = &kinds[k];
		bool hit = strcasecmp(s, d->info.name) == 0 || strcasecmp(s, d->info.plural) == 0 ||
			   (d->info.short_name && strcasecmp(s, d->info.short_name) == 0);
		for (size_t i = 0; !hit && i < ARRAY_SIZE(d->aliases) && d->aliases[i]; i++)
			hit = strcasecmp(s, d->aliases[i]) == 0;
		if (hit) {
			*out = d->info.kind;
			return 0;
		}
	}
	return -ENOENT;
}

/* --- string checks ----------------------------------------------------- */

static int why(char **out, const char *s)
{
	*out = wstrdup(s);
	return -EINVAL;
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* RFC 1123 subdomain as Kubernetes checks it: lowercase letters, digits,
 * '-' and '.', starting and ending with a letter or digit, <= 253. */
static bool dns_subdomain(const char *s)
{
	size_t l = strlen(s);

	if (l == 0 || l > 253 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[l - 1]))
		return false;
	for (size_t i = 0; i < l; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

static bool dns_label(const char *s)
{
	size_t l = strlen(s);

	if (l == 0 || l > 63 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[l - 1]))
		return false;
	for (size_t i = 0; i < l; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

/* A host name: dot-separated labels of letters, digits and '-' (not at
 * either end of a label), each 1..63, in all <= 253. */
static bool hostname(const char *s)
{
	size_t l = strlen(s), run = 0;

	if (l == 0 || l > 253)
		return false;
	for (size_t i = 0; i <= l; i++) {
		char c = s[i];
		if (c == '.' || c == 0) {
			if (run == 0 || s[i - 1] == '-')
				return false;
			run = 0;
		} else if (is_alnum(c) || (c == '-' && run > 0)) {
			if (++run > 63)
				return false;
		} else {
			return false;
		}
	}
	return true;
}

/* Profile names and tags, as Calico v1 and Docker network names allow
 * them: letters, digits, '_', '.', '-', <= 253, not "." or "..". */
static bool tag_name(const char *s)
{
	size_t l = strlen(s);

	if (l == 0 || l > 253 || streq(s, ".") || streq(s, ".."))
		return false;
	for (size_t i = 0; i < l; i++)
		if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/* One segment of a store key: printable ASCII without '/' or spaces. */
static bool key_segment(const char *s)
{
	size_t l = strlen(s);

	if (l == 0 || l > 253 || streq(s, ".") || streq(s, ".."))
		return false;
	for (size_t i = 0; i < l; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '/')
			return false;
	return true;
}

#define SUBDOMAIN_RULE "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
#define LABEL_RULE "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
#define HOSTNAME_RULE "a host name: letters, digits, '-' and '.', at most 253 characters"
#define TAG_RULE "letters, digits, '_', '.' and '-', at most 253 characters"

static int check_subdomain(const struct weft_vctx *ctx, const char *s, char **w)
{
	return dns_subdomain(s) ? 0 : why(w, "is not a valid name (" SUBDOMAIN_RULE ")");
}

static int check_dns_label(const struct weft_vctx *ctx, const char *s, char **w)
{
	return dns_label(s) ? 0 : why(w, "is not a valid namespace name (" LABEL_RULE ")");
}

static int check_hostname(const struct weft_vctx *ctx, const char *s, char **w)
{
	return hostname(s) ? 0 : why(w, "is not a valid node name (" HOSTNAME_RULE ")");
}

static int check_tag(const struct weft_vctx *ctx, const char *s, char **w)
{
	return tag_name(s) ? 0 : why(w, "is not a valid tag (" TAG_RULE ")");
}

static int check_profile_ref(const struct weft_vctx *ctx, const char *s, char **w)
{
	return tag_name(s) ? 0 : why(w, "is not a valid profile name (" TAG_RULE ")");
}

static int check_name(const struct weft_vctx *ctx, const char *s, char **w)
{
	switch (ctx->kind) {
	case WEFT_KIND_NODE:
		return check_hostname(ctx, s, w);
	case WEFT_KIND_PROFILE:
		return tag_name(s) ? 0 : why(w, "is not a valid name (" TAG_RULE ")");
	case WEFT_KIND_TENANT:
		return check_dns_label(ctx, s, w);
	case WEFT_KIND_ENDPOINT:
		return key_segment(s) ? 0 : why(w, "is not a valid name (printable ASCII without '/' or spaces, at most 253 characters)");
	default:
		return check_subdomain(ctx, s, w);
	}
}

/* Kubernetes label names: an optional DNS subdomain prefix and '/', then
 * 1..63 letters, digits, '-', '_', '.', starting and ending alphanumeric. */
static bool label_name(const char *s, size_t l, bool allow_empty)
{
	if (l == 0)
		return allow_empty;
	if (l > 63 || !is_alnum(s[0]) || !is_alnum(s[l - 1]))
		return false;
	for (size_t i = 0; i < l; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

static int check_label_key(const struct weft_vctx *ctx, const char *s, char **w)
{
	const char *slash = strchr(s, '/');

	if (slash) {
		_cleanup_free_ char *prefix = wstrndup(s, (size_t)(slash - s));
		if (!dns_subdomain(prefix))
			return why(w, "is not a valid key: the prefix before '/' must be a DNS subdomain");
		s = slash + 1;
	}
	if (!label_name(s, strlen(s), false))
		return why(w, "is not a valid key (letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 63 characters, optionally after a DNS subdomain and '/')");
	return 0;
}

static int check_label_value(const struct weft_vctx *ctx, const char *s, char **w)
{
	if (!label_name(s, strlen(s), true))
		return why(w, "is not a valid label value (empty, or letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 63 characters)");
	return 0;
}

static int check_annotation(const struct weft_vctx *ctx, const char *s, char **w)
{
	return strlen(s) > 65536 ? why(w, "is longer than 65536 characters") : 0;
}

static int check_selector(const struct weft_vctx *ctx, const char *s, char **w)
{
	return weft_selector_validate(s, w);
}

/* Linux interface names: 1..15 bytes, no '/', ':' or white space. */
static int check_ifname(const struct weft_vctx *ctx, const char *s, char **w)
{
	size_t l = strlen(s);
	bool ok = l > 0 && l <= 15 && !streq(s, ".") && !streq(s, "..");

	for (size_t i = 0; ok && i < l; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '/' || s[i] == ':')
			ok = false;
	return ok ? 0 : why(w, "is not a valid interface name (1..15 characters, no '/', ':' or spaces)");
}

static int check_mac(const struct weft_vctx *ctx, const char *s, char **w)
{
	bool ok = strlen(s) == 17;

	for (size_t i = 0; ok && i < 17; i++) {
		if (i % 3 == 2)
			ok = s[i] == ':';
		else
			ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F');
	}
	return ok ? 0 : why(w, "is not a MAC address (like ee:ee:ee:ee:ee:ee)");
}

/* BIRD takes the password in a quoted string; keep it plain. */
static int check_password(const struct weft_vctx *ctx, const char *s, char **w)
{
	size_t l = strlen(s);

	if (l == 0 || l > 80)
		return why(w, "is not a valid password (1..80 characters)");
	if (strchr(s, '"') || strchr(s, '\\'))
		return why(w, "is not a valid password: '\"' and '\\' are not allowed");
	return 0;
}

static int check_container_id(const struct weft_vctx *ctx, const char *s, char **w)
{
	size_t l = strlen(s);
	return l > 0 && l <= 256 ? 0 : why(w, "is not a valid container id (1..256 characters)");
}

/* An IPAM range: "192.168.91.0/24" or "192.168.91.100-192.168.91.110/24".
 * Fills the subnet and the first and last addresses it allows. */
static int parse_range(const char *s, struct weft_cidr *subnet, struct weft_ip *first, struct weft_ip *last, char **w)
{
	const char *dash = strchr(s, '-'), *slash = strrchr(s, '/');
	struct weft_cidr c;
	struct weft_ip a, b;

	if (!slash)
		return why(w, "is not a range (a CIDR like 192.168.91.0/24 or first-last/prefix like 192.168.91.100-192.168.91.110/24)");
	if (!dash) {
		if (weft_cidr_parse(s, false, &c) < 0)
			return why(w, "is not a range (a CIDR like 192.168.91.0/24 or first-last/prefix like 192.168.91.100-192.168.91.110/24)");
		a = c.ip;
		weft_cidr_mask(&c);
		if (weft_ip_eq(&a, &c.ip))
			weft_ip_add(&c.ip, 1, &a);
		weft_cidr_last(&c, &b);
		if (c.ip.family == AF_INET && c.prefixlen < 31)
			weft_ip_add(&b, -1, &b);
	} else {
		_cleanup_free_ char *lo = wstrndup(s, (size_t)(dash - s));
		_cleanup_free_ char *hi = wstrndup(dash + 1, (size_t)(slash - dash - 1));
		_cleanup_free_ char *cidr = wasprintf("%s%s", lo, slash);
		if (dash > slash || weft_ip_parse(lo, &a) < 0 || weft_ip_parse(hi, &b) < 0 ||
		    weft_cidr_parse(cidr, false, &c) < 0)
			return why(w, "is not a range (a CIDR like 192.168.91.0/24 or first-last/prefix like 192.168.91.100-192.168.91.110/24)");
		weft_cidr_mask(&c);
		if (!weft_cidr_contains(&c, &b))
			return why(w, "is not a valid range: the last address is outside the subnet");
		if (weft_ip_cmp(&a, &b) > 0)
			return why(w, "is not a valid range: the first address is above the last");
	}
	*subnet = c;
	*first = a;
	*last = b;
	return 0;
}

static int check_range(const struct weft_vctx *ctx, const char *s, char **w)
{
	struct weft_cidr c;
	struct weft_ip a, b;
	return parse_range(s, &c, &a, &b, w);
}

/* --- shared helpers for post checks ----------------------------------- */

static const char *str_of(const cJSON *obj, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

static bool has(const cJSON *obj, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(obj, name) != NULL;
}

static bool nonempty_list(const cJSON *obj, const char *name)
{
	return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(obj, name)) > 0;
}

/* --- metadata ---------------------------------------------------------- */

static const struct weft_field metadata_fields[] = {
	{.name = "name", .type = WEFT_T_STRING, .flags = WEFT_FIELD_REQUIRED, .check = check_name},
	{.name = "labels", .type = WEFT_T_MAP, .key_check = check_label_key, .check = check_label_value},
	{.name = "annotations", .type = WEFT_T_MAP, .key_check = check_label_key, .check = check_annotation},
	/* Written by servers, not by users: accepted so that a resource read
	 * back from Kubernetes-style tooling applies again, and dropped. */
	{.name = "resourceVersion", .type = WEFT_T_STRING, .flags = WEFT_FIELD_IGNORE},
	{.name = "uid", .type = WEFT_T_STRING, .flags = WEFT_FIELD_IGNORE},
	{.name = "creationTimestamp", .type = WEFT_T_STRING, .flags = WEFT_FIELD_IGNORE},
};
const struct weft_schema weft_metadata_schema = WEFT_SCHEMA(metadata_fields, NULL);

/* --- IPPool ------------------------------------------------------------ */

static const char *const vxlan_modes[] = {"Never", "Always", "CrossSubnet", NULL};

static bool pool_cidr(const cJSON *spec, struct weft_cidr *c)
{
	const char *s = str_of(spec, "cidr");
	return s && weft_cidr_parse(s, true, c) == 0;
}

static cJSON *default_block_size(const struct weft_vctx *ctx, const cJSON *out)
{
	struct weft_cidr c;

	if (pool_cidr(out, &c) && c.ip.family == AF_INET6)
		return cJSON_CreateNumber(122);
	return cJSON_CreateNumber(26);
}

static int ippool_post(struct weft_vctx *ctx, cJSON *spec)
{
	double bs = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(spec, "blockSize"));
	struct weft_cidr c;
	char buf[64];
	bool v6;
	int lo, hi;

	if (!pool_cidr(spec, &c))
		return weft_vfail_at(ctx, "cidr", "is required");
	v6 = c.ip.family == AF_INET6;
	lo = v6 ? 116 : 20;
	hi = v6 ? 128 : 32;
	weft_number_str(bs, buf, sizeof(buf));
	if (bs < lo || bs > hi)
		return weft_vfail_at(ctx, "blockSize", "%s is out of range %d..%d", buf, lo, hi);
	if (bs < c.prefixlen) {
		char cs[WEFT_CIDR_STRLEN];
		return weft_vfail_at(ctx, "blockSize", "a /%s block does not fit in the pool's cidr %s", buf,
				     weft_cidr_str(&c, cs, sizeof(cs)));
	}
	return 0;
}

static const struct weft_field ippool_fields[] = {
	{.name = "cidr", .type = WEFT_T_CIDR, .flags = WEFT_FIELD_REQUIRED},
	{.name = "blockSize", .type = WEFT_T_INT, .def_fn = default_block_size},
	{.name = "natOutgoing", .type = WEFT_T_BOOL, .def = "false"},
	{.name = "vxlanMode", .type = WEFT_T_ENUM, .values = vxlan_modes, .def = "\"Never\""},
	{.name = "disabled", .type = WEFT_T_BOOL, .def = "false"},
	{.name = "nodeSelector", .type = WEFT_T_STRING, .check = check_selector, .def = "\"all()\""},
};

/* --- rules (Profile and Policy) ------------------------------------- */

static const char *const actions[] = {"allow", "deny", "log", "pass", NULL};

static const struct weft_field icmp_fields[] = {
	{.name = "type", .type = WEFT_T_INT, .flags = WEFT_FIELD_REQUIRED | WEFT_FIELD_RANGE, .min = 0, .max = 255},
	{.name = "code", .type = WEFT_T_INT, .flags = WEFT_FIELD_RANGE, .min = 0, .max = 255},
};
static const struct weft_schema icmp_schema = WEFT_SCHEMA(icmp_fields, NULL);

static const struct weft_field net_elem = {.type = WEFT_T_NET};
static const struct weft_field port_elem = {.type = WEFT_T_PORT};
static const struct weft_field tag_elem = {.type = WEFT_T_STRING, .check = check_tag};
static const struct weft_field profile_elem = {.type = WEFT_T_STRING, .check = check_profile_ref};

static const struct weft_field entity_fields[] = {
	{.name = "tag", .type = WEFT_T_STRING, .check = check_tag},
	{.name = "notTag", .type = WEFT_T_STRING, .check = check_tag},
	{.name = "nets", .type = WEFT_T_LIST, .elem = &net_elem},
	{.name = "notNets", .type = WEFT_T_LIST, .elem = &net_elem},
	{.name = "selector", .type = WEFT_T_STRING, .check = check_selector},
	{.name = "notSelector", .type = WEFT_T_STRING, .check = check_selector},
	{.name = "ports", .type = WEFT_T_LIST, .elem = &port_elem},
	{.name = "notPorts", .type = WEFT_T_LIST, .elem = &port_elem},
};
static const struct weft_schema entity_schema = WEFT_SCHEMA(entity_fields, NULL);

static bool proto_is(const cJSON *p, const char *const *names, const int *numbers)
{
	if (cJSON_IsString(p)) {
		for (size_t i = 0; names[i]; i++)
			if (streq(p->valuestring, names[i]))
				return true;
	} else if (cJSON_IsNumber(p)) {
		for (size_t i = 0; numbers[i] >= 0; i++)
			if (p->valuedouble == numbers[i])
				return true;
	}
	return false;
}

static const char *const port_protos[] = {"tcp", "udp", "sctp", "udplite", NULL};
static const int port_proto_numbers[] = {6, 17, 132, 136, -1};
static const char *const icmp_protos[] = {"icmp", "icmpv6", NULL};
static const int icmp_proto_numbers[] = {1, 58, -1};
static const char *const icmp4[] = {"icmp", NULL};
static const int icmp4_numbers[] = {1, -1};
static const char *const icmp6[] = {"icmpv6", NULL};
static const int icmp6_numbers[] = {58, -1};

static int entity_post(struct weft_vctx *ctx, const cJSON *rule, const char *side, int ipv)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(rule, side);
	const cJSON *proto = cJSON_GetObjectItemCaseSensitive(rule, "protocol");
	static const char *const ports[] = {"ports", "notPorts"}, *const nets[] = {"nets", "notNets"};
	size_t old;
	int r = 0;

	if (!e)
		return 0;
	old = weft_vpath_push(ctx, side);
	for (size_t i = 0; i < 2 && r == 0; i++)
		if (nonempty_list(e, ports[i]) && !proto_is(proto, port_protos, port_proto_numbers))
			r = weft_vfail_at(ctx, ports[i], "ports need protocol tcp, udp, sctp or udplite");
	for (size_t i = 0; i < 2 && r == 0 && ipv; i++) {
		const cJSON *n;
		size_t j = 0;
		cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(e, nets[i])) {
			struct weft_cidr c;
			if (weft_cidr_parse(n->valuestring, false, &c) == 0 && (c.ip.family == AF_INET6) != (ipv == 6)) {
				size_t o2 = weft_vpath_push(ctx, nets[i]);
				weft_vpath_push_index(ctx, j);
				r = weft_vfail(ctx, "\"%s\" is not an IPv%d CIDR (the rule's ipVersion is %d)",
					       n->valuestring, ipv, ipv);
				weft_vpath_pop(ctx, o2);
				break;
			}
			j++;
		}
	}
	weft_vpath_pop(ctx, old);
	return r;
}

static int rule_post(struct weft_vctx *ctx, cJSON *rule)
{
	const char *action = str_of(rule, "action");
	const cJSON *proto = cJSON_GetObjectItemCaseSensitive(rule, "protocol");
	const cJSON *ipvj = cJSON_GetObjectItemCaseSensitive(rule, "ipVersion");
	int ipv = 0;

	if (action && streq(action, "pass") && ctx->kind != WEFT_KIND_POLICY)
		return weft_vfail_at(ctx, "action", "\"pass\" is only allowed in policies");
	if (ipvj) {
		ipv = (int)ipvj->valuedouble;
		if (ipv != 4 && ipv != 6)
			return weft_vfail_at(ctx, "ipVersion", "%d is not 4 or 6", ipv);
		if ((ipv == 4 && proto_is(proto, icmp6, icmp6_numbers)) || (ipv == 6 && proto_is(proto, icmp4, icmp4_numbers)))
			return weft_vfail_at(ctx, "protocol", "%s does not go with ipVersion %d",
					     ipv == 4 ? "icmpv6" : "icmp", ipv);
	}
	if (has(rule, "icmp") && !proto_is(proto, icmp_protos, icmp_proto_numbers))
		return weft_vfail_at(ctx, "icmp", "icmp needs protocol icmp or icmpv6");
	if (has(rule, "notICMP") && !proto_is(proto, icmp_protos, icmp_proto_numbers))
		return weft_vfail_at(ctx, "notICMP", "notICMP needs protocol icmp or icmpv6");
	if (entity_post(ctx, rule, "source", ipv) < 0 || entity_post(ctx, rule, "destination", ipv) < 0)
		return -EINVAL;
	return 0;
}

static const struct weft_field rule_fields[] = {
	{.name = "action", .type = WEFT_T_ENUM, .flags = WEFT_FIELD_REQUIRED, .values = actions},
	{.name = "protocol", .type = WEFT_T_PROTOCOL},
	{.name = "notProtocol", .type = WEFT_T_PROTOCOL},
	{.name = "ipVersion", .type = WEFT_T_INT, .flags = WEFT_FIELD_RANGE, .min = 4, .max = 6},
	{.name = "icmp", .type = WEFT_T_OBJECT, .sub = &icmp_schema},
	{.name = "notICMP", .type = WEFT_T_OBJECT, .sub = &icmp_schema},
	{.name = "source", .type = WEFT_T_OBJECT, .sub = &entity_schema},
	{.name = "destination", .type = WEFT_T_OBJECT, .sub = &entity_schema},
};
static const struct weft_schema rule_schema = WEFT_SCHEMA(rule_fields, rule_post);
static const struct weft_field rule_elem = {.type = WEFT_T_OBJECT, .sub = &rule_schema};

/* --- Profile ----------------------------------------------------------- */

/* A new profile carries its own name as a tag and, when it gives no rules,
 * lets in traffic from its own tag and lets out everything (the Calico v1
 * default). An explicit empty list means "no rules": nothing matches. */
static cJSON *default_tags(const struct weft_vctx *ctx, const cJSON *out)
{
	cJSON *l = cJSON_CreateArray();
	if (ctx->name)
		cJSON_AddItemToArray(l, cJSON_CreateString(ctx->name));
	return l;
}

static cJSON *default_inbound(const struct weft_vctx *ctx, const cJSON *out)
{
	cJSON *l = cJSON_CreateArray(), *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "action", "allow");
	if (ctx->name)
		cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "source"), "tag", ctx->name);
	cJSON_AddItemToArray(l, r);
	return l;
}

static cJSON *default_outbound(const struct weft_vctx *ctx, const cJSON *out)
{
	cJSON *l = cJSON_CreateArray(), *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "action", "allow");
	cJSON_AddItemToArray(l, r);
	return l;
}

static const struct weft_field profile_fields[] = {
	{.name = "tags", .type = WEFT_T_LIST, .flags = WEFT_FIELD_UNIQUE, .elem = &tag_elem, .def_fn = default_tags},
	{.name = "labelsToApply", .type = WEFT_T_MAP, .key_check = check_label_key, .check = check_label_value},
	{.name = "inboundRules", .type = WEFT_T_LIST, .elem = &rule_elem, .def_fn = default_inbound},
	{.name = "outboundRules", .type = WEFT_T_LIST, .elem = &rule_elem, .def_fn = default_outbound},
};

/* --- Policy ------------------------------------------------------------ */

static const char *const policy_types[] = {"Ingress", "Egress", NULL};
static const struct weft_field policy_type_elem = {.type = WEFT_T_ENUM, .values = policy_types};

/* As in Calico: Ingress always, Egress when there are egress rules. */
static cJSON *default_types(const struct weft_vctx *ctx, const cJSON *out)
{
	cJSON *l = cJSON_CreateArray();

	cJSON_AddItemToArray(l, cJSON_CreateString("Ingress"));
	if (nonempty_list(out, "egress"))
		cJSON_AddItemToArray(l, cJSON_CreateString("Egress"));
	return l;
}

static bool list_has_string(const cJSON *l, const char *s)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, l)
		if (cJSON_IsString(c) && streq(c->valuestring, s))
			return true;
	return false;
}

static int policy_post(struct weft_vctx *ctx, cJSON *spec)
{
	const cJSON *types = cJSON_GetObjectItemCaseSensitive(spec, "types");

	if (nonempty_list(spec, "ingress") && !list_has_string(types, "Ingress"))
		return weft_vfail_at(ctx, "ingress", "ingress rules need \"Ingress\" in spec.types");
	if (nonempty_list(spec, "egress") && !list_has_string(types, "Egress"))
		return weft_vfail_at(ctx, "egress", "egress rules need \"Egress\" in spec.types");
	return 0;
}

static const struct weft_field policy_fields[] = {
	{.name = "order", .type = WEFT_T_NUMBER},
	{.name = "selector", .type = WEFT_T_STRING, .check = check_selector, .def = "\"all()\""},
	{.name = "ingress", .type = WEFT_T_LIST, .elem = &rule_elem, .def = "[]"},
	{.name = "egress", .type = WEFT_T_LIST, .elem = &rule_elem, .def = "[]"},
	{.name = "types", .type = WEFT_T_LIST, .flags = WEFT_FIELD_UNIQUE, .elem = &policy_type_elem, .def_fn = default_types},
};

/* --- Node -------------------------------------------------------------- */

#define AS_FIELD(fl) .type = WEFT_T_INT, .flags = WEFT_FIELD_RANGE | (fl), .min = 1, .max = 4294967295LL

/* A route reflector cluster id is a 32-bit identifier written like an
 * IPv4 address: any value but 0, which BIRD takes as "unset" (it would
 * silently use the router id instead). */
static int check_cluster_id(const struct weft_vctx *ctx, const char *s, char **w)
{
	struct weft_ip ip;

	if (weft_ip_parse(s, &ip) == 0 && ip.family == AF_INET && ip.v4.s_addr == 0)
		return why(w, "is not a cluster id: BIRD takes 0 as unset and would use the router id");
	return 0;
}

static const struct weft_field node_bgp_fields[] = {
	{.name = "ipv4Address", .type = WEFT_T_CIDR_HOST, .flags = WEFT_FIELD_V4},
	{.name = "ipv6Address", .type = WEFT_T_CIDR_HOST, .flags = WEFT_FIELD_V6},
	{.name = "asNumber", AS_FIELD(0)},
	{.name = "routeReflectorClusterID", .type = WEFT_T_IP, .flags = WEFT_FIELD_V4, .check = check_cluster_id},
};
static const struct weft_schema node_bgp_schema = WEFT_SCHEMA(node_bgp_fields, NULL);

/* spec.status: written by the node's weftd (felix/weftd-status.c), not by
 * operators; docs/resources.md shows its shape. Free text stays on one
 * printable line so that tables and logs show it as it is. */
static int check_status_text(const struct weft_vctx *ctx, const char *s, char **w)
{
	size_t l = strlen(s);

	if (l > 1024)
		return why(w, "is longer than 1024 characters");
	for (size_t i = 0; i < l; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return why(w, "is not one line of printable text");
	return 0;
}

static int check_status_word(const struct weft_vctx *ctx, const char *s, char **w)
{
	size_t l = strlen(s);
	bool ok = l > 0 && l <= 63;

	for (size_t i = 0; ok && i < l; i++)
		ok = is_alnum(s[i]) || s[i] == '-' || s[i] == '_';
	return ok ? 0 : why(w, "is not a state (1..63 letters, digits, '-' and '_')");
}

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* RFC 3339: 2026-11-26T14:04:44Z, with optional fraction and a numeric
 * offset instead of Z. The shape is checked, not the calendar. */
static int check_timestamp(const struct weft_vctx *ctx, const char *s, char **w)
{
	size_t l = strlen(s), i = 19;
	bool ok = l >= 20 && digits(s, 4) && s[4] == '-' && digits(s + 5, 2) && s[7] == '-' && digits(s + 8, 2) &&
		  (s[10] == 'T' || s[10] == 't') && digits(s + 11, 2) && s[13] == ':' && digits(s + 14, 2) &&
		  s[16] == ':' && digits(s + 17, 2);

	if (ok && s[i] == '.') {
		for (i++; i < l && s[i] >= '0' && s[i] <= '9'; i++)
			;
		ok = i > 20;
	}
	if (ok)
		ok = ((s[i] == 'Z' || s[i] == 'z') && i + 1 == l) ||
		     ((s[i] == '+' || s[i] == '-') && i + 6 == l && digits(s + i + 1, 2) && s[i + 3] == ':' &&
		      digits(s + i + 4, 2));
	return ok ? 0 : why(w, "is not an RFC 3339 timestamp (like 2026-11-26T14:04:44Z)");
}

static const char *const bird_states[] = {"running", "starting", "down", "disabled", NULL};
static const char *const bgp_peer_types[] = {"mesh", "reflector", "client", "global", "node", NULL};

static const struct weft_field node_peer_fields[] = {
	{.name = "address", .type = WEFT_T_IP, .flags = WEFT_FIELD_REQUIRED},
	{.name = "type", .type = WEFT_T_ENUM, .values = bgp_peer_types},
	{.name = "state", .type = WEFT_T_STRING, .flags = WEFT_FIELD_REQUIRED, .check = check_status_word},
	{.name = "since", .type = WEFT_T_STRING, .check = check_status_text},
};
static const struct weft_schema node_peer_schema = WEFT_SCHEMA(node_peer_fields, NULL);
static const struct weft_field node_peer_elem = {.type = WEFT_T_OBJECT, .sub = &node_peer_schema};

static const struct weft_field node_bgp_status_fields[] = {
	{.name = "established", .type = WEFT_T_INT, .flags = WEFT_FIELD_RANGE, .min = 0, .max = 1000000, .def = "0"},
	{.name = "total", .type = WEFT_T_INT, .flags = WEFT_FIELD_RANGE, .min = 0, .max = 1000000, .def = "0"},
	{.name = "peers", .type = WEFT_T_LIST, .elem = &node_peer_elem, .def = "[]"},
};
static const struct weft_schema node_bgp_status_schema = WEFT_SCHEMA(node_bgp_status_fields, NULL);

static const struct weft_field node_status_fields[] = {
	{.name = "healthy", .type = WEFT_T_BOOL, .flags = WEFT_FIELD_REQUIRED},
	{.name = "reason", .type = WEFT_T_STRING, .check = check_status_text},
	{.name = "birdState", .type = WEFT_T_ENUM, .values = bird_states},
	{.name = "bgp", .type = WEFT_T_OBJECT, .sub = &node_bgp_status_schema},
	{.name = "lastSync", .type = WEFT_T_STRING, .check = check_timestamp},
	{.name = "version", .type = WEFT_T_STRING, .check = check_status_text},
};
static const struct weft_schema node_status_schema = WEFT_SCHEMA(node_status_fields, NULL);

static const struct weft_field node_fields[] = {
	{.name = "bgp", .type = WEFT_T_OBJECT, .sub = &node_bgp_schema},
	/* Written by the node's weftd (felix/weftd-fabric.c): its address on
	 * weft.vxlan, from a VXLAN pool (Calico's ipv4VXLANTunnelAddr). */
	{.name = "ipv4VXLANTunnelAddr", .type = WEFT_T_IP, .flags = WEFT_FIELD_V4},
	{.name = "status", .type = WEFT_T_OBJECT, .sub = &node_status_schema},
};

/* --- BGPPeer ----------------------------------------------------------- */

static int bgppeer_post(struct weft_vctx *ctx, cJSON *spec)
{
	if (has(spec, "node") && has(spec, "nodeSelector"))
		return weft_vfail_at(ctx, "nodeSelector", "cannot be used together with spec.node");
	return 0;
}

/* A BGP peer is one unicast address BIRD can open a TCP session to:
 * not the unspecified address, a multicast group or the limited
 * broadcast (BIRD takes those and the session never comes up), and not
 * an IPv6 link-local address, which BIRD refuses without an interface
 * (which a BGPPeer cannot name). Loopback stays: a BGP speaker on the
 * node itself peers over 127.0.0.1. */
static int check_peer_ip(const struct weft_vctx *ctx, const char *s, char **w)
{
	static const uint8_t zero[16];
	struct weft_ip ip;

	if (weft_ip_parse(s, &ip) < 0)
		return 0; /* the type's own message */
	if (ip.family == AF_INET) {
		uint32_t a = ntohl(ip.v4.s_addr);

		if (a == 0)
			return why(w, "is not a unicast address (it is the unspecified address)");
		if ((a >> 28) == 0xe)
			return why(w, "is not a unicast address (it is a multicast address)");
		if (a == 0xffffffffu)
			return why(w, "is not a unicast address (it is the limited broadcast address)");
		return 0;
	}
	if (memcmp(ip.bytes, zero, 16) == 0)
		return why(w, "is not a unicast address (it is the unspecified address)");
	if (ip.bytes[0] == 0xff)
		return why(w, "is not a unicast address (it is a multicast address)");
	if (ip.bytes[0] == 0xfe && (ip.bytes[1] & 0xc0) == 0x80)
		return why(w, "is a link-local address: BIRD needs an interface for a link-local peer, and a BGPPeer "
			      "cannot name one");
	return 0;
}

static const struct weft_field bgppeer_fields[] = {
	{.name = "node", .type = WEFT_T_STRING, .check = check_hostname},
	{.name = "nodeSelector", .type = WEFT_T_STRING, .check = check_selector},
	{.name = "peerIP", .type = WEFT_T_IP, .flags = WEFT_FIELD_REQUIRED, .check = check_peer_ip},
	{.name = "asNumber", AS_FIELD(WEFT_FIELD_REQUIRED)},
	{.name = "password", .type = WEFT_T_STRING, .check = check_password},
};

/* --- BGPConfig --------------------------------------------------------- */

static const char *const severities[] = {"Debug", "Info", "Warning", "Error", NULL};

static const struct weft_field bgpconfig_fields[] = {
	{.name = "logSeverityScreen", .type = WEFT_T_ENUM, .values = severities, .def = "\"Info\""},
	{.name = "nodeToNodeMeshEnabled", .type = WEFT_T_BOOL, .def = "true"},
	{.name = "asNumber", AS_FIELD(0), .def = "64512"},
	{.name = "listenPort", .type = WEFT_T_INT, .flags = WEFT_FIELD_RANGE, .min = 1, .max = 65535, .def = "179"},
};

/* --- Tenant ------------------------------------------------------------ */

static const char *const tenant_actions[] = {"", "join", "isolate", "global", NULL};

static cJSON *default_net_name(const struct weft_vctx *ctx, const cJSON *out)
{
	return ctx->name ? cJSON_CreateString(ctx->name) : NULL;
}

static int tenant_post(struct weft_vctx *ctx, cJSON *spec)
{
	const char *action = str_of(spec, "action"), *join = str_of(spec, "joinNamespace");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(spec, "netID");

	if (action && streq(action, "join")) {
		if (!join)
			return weft_vfail_at(ctx, "joinNamespace", "is required for action join");
		if (ctx->name && streq(join, ctx->name))
			return weft_vfail_at(ctx, "joinNamespace", "a namespace cannot join itself");
	} else if (join) {
		return weft_vfail_at(ctx, "joinNamespace", "only applies to action join");
	}
	if (action && streq(action, "global") && id && id->valuedouble != 0)
		return weft_vfail_at(ctx, "netID", "must be 0 (or absent) for action global");
	return 0;
}

static const struct weft_field tenant_fields[] = {
	{.name = "netName", .type = WEFT_T_STRING, .check = check_dns_label, .def_fn = default_net_name},
	{.name = "netID", .type = WEFT_T_INT, .flags = WEFT_FIELD_RANGE, .min = 0, .max = 16777215},
	{.name = "action", .type = WEFT_T_ENUM, .values = tenant_actions, .def = "\"\""},
	{.name = "joinNamespace", .type = WEFT_T_STRING, .check = check_dns_label},
};

/* --- Network ----------------------------------------------------------- */

static const char *const network_types[] = {"macvlan", "routed", NULL};
static const char *const macvlan_modes[] = {"bridge", "vepa", "private", "passthru", NULL};
static const char *const ipam_types[] = {"range", "pool", NULL};

static int route_post(struct weft_vctx *ctx, cJSON *route)
{
	const char *dst = str_of(route, "dst"), *gw = str_of(route, "gw");
	struct weft_cidr c;
	struct weft_ip ip;

	if (dst && gw && weft_cidr_parse(dst, true, &c) == 0 && weft_ip_parse(gw, &ip) == 0 &&
	    c.ip.family != ip.family)
		return weft_vfail_at(ctx, "gw", "\"%s\" is not of the same address family as dst", gw);
	return 0;
}

static const struct weft_field route_fields[] = {
	{.name = "dst", .type = WEFT_T_CIDR, .flags = WEFT_FIELD_REQUIRED},
	{.name = "gw", .type = WEFT_T_IP},
};
static const struct weft_schema route_schema = WEFT_SCHEMA(route_fields, route_post);
static const struct weft_field route_elem = {.type = WEFT_T_OBJECT, .sub = &route_schema};
static const struct weft_field pool_ref_elem = {.type = WEFT_T_STRING, .check = check_subdomain};

static int inside(struct weft_vctx *ctx, const char *field, const char *addr, const struct weft_cidr *subnet)
{
	char buf[WEFT_CIDR_STRLEN];
	struct weft_ip ip;

	if (weft_ip_parse(addr, &ip) == 0 && !weft_cidr_contains(subnet, &ip))
		return weft_vfail_at(ctx, field, "\"%s\" is not inside the range's subnet %s", addr,
				     weft_cidr_str(subnet, buf, sizeof(buf)));
	return 0;
}

static int ipam_post(struct weft_vctx *ctx, cJSON *ipam)
{
	static const char *const range_only[] = {"range", "rangeStart", "rangeEnd", "exclude"};
	const char *type = str_of(ipam, "type"), *range = str_of(ipam, "range");
	const char *start = str_of(ipam, "rangeStart"), *end = str_of(ipam, "rangeEnd");
	_cleanup_free_ char *w = NULL;
	struct weft_cidr subnet;
	struct weft_ip first, last, a, b;
	const cJSON *c;
	size_t i = 0;

	if (streq(type, "pool")) {
		for (size_t k = 0; k < ARRAY_SIZE(range_only); k++)
			if (has(ipam, range_only[k]))
				return weft_vfail_at(ctx, range_only[k], "only applies to type range");
		return 0;
	}
	if (has(ipam, "pools"))
		return weft_vfail_at(ctx, "pools", "only applies to type pool");
	if (!range)
		return weft_vfail_at(ctx, "range", "is required for type range");
	if (parse_range(range, &subnet, &first, &last, &w) < 0)
		return weft_vfail_at(ctx, "range", "\"%s\" %s", range, w);
	if (start && inside(ctx, "rangeStart", start, &subnet) < 0)
		return -EINVAL;
	if (end && inside(ctx, "rangeEnd", end, &subnet) < 0)
		return -EINVAL;
	if (start && end && weft_ip_parse(start, &a) == 0 && weft_ip_parse(end, &b) == 0 && weft_ip_cmp(&a, &b) > 0)
		return weft_vfail_at(ctx, "rangeEnd", "\"%s\" is below rangeStart %s", end, start);
	if (str_of(ipam, "gateway") && inside(ctx, "gateway", str_of(ipam, "gateway"), &subnet) < 0)
		return -EINVAL;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(ipam, "exclude")) {
		struct weft_cidr x;
		char buf[WEFT_CIDR_STRLEN];
		if (weft_cidr_parse(c->valuestring, true, &x) == 0 && !weft_cidr_covers(&subnet, &x)) {
			size_t old = weft_vpath_push(ctx, "exclude");
			weft_vpath_push_index(ctx, i);
			weft_vfail(ctx, "\"%s\" is not inside the range's subnet %s", c->valuestring,
				   weft_cidr_str(&subnet, buf, sizeof(buf)));
			weft_vpath_pop(ctx, old);
			return -EINVAL;
		}
		i++;
	}
	i = 0;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(ipam, "routes")) {
		const char *gw = str_of(c, "gw");
		size_t old = weft_vpath_push(ctx, "routes");
		int r = 0;
		weft_vpath_push_index(ctx, i);
		if (gw)
			r = inside(ctx, "gw", gw, &subnet);
		weft_vpath_pop(ctx, old);
		if (r < 0)
			return r;
		i++;
	}
	return 0;
}

static const struct weft_field net_or_ip_elem = {.type = WEFT_T_NET};

static const struct weft_field ipam_fields[] = {
	{.name = "type", .type = WEFT_T_ENUM, .flags = WEFT_FIELD_REQUIRED, .values = ipam_types},
	{.name = "range", .type = WEFT_T_STRING, .check = check_range},
	{.name = "rangeStart", .type = WEFT_T_IP},
	{.name = "rangeEnd", .type = WEFT_T_IP},
	{.name = "exclude", .type = WEFT_T_LIST, .elem = &net_or_ip_elem},
	{.name = "gateway", .type = WEFT_T_IP},
	{.name = "routes", .type = WEFT_T_LIST, .elem = &route_elem},
	{.name = "pools", .type = WEFT_T_LIST, .flags = WEFT_FIELD_UNIQUE, .elem = &pool_ref_elem},
};
static const struct weft_schema ipam_schema = WEFT_SCHEMA(ipam_fields, ipam_post);

static cJSON *default_mode(const struct weft_vctx *ctx, const cJSON *out)
{
	const char *type = str_of(out, "type");
	return type && streq(type, "macvlan") ? cJSON_CreateString("bridge") : NULL;
}

static int network_post(struct weft_vctx *ctx, cJSON *spec)
{
	const char *type = str_of(spec, "type");

	if (type && streq(type, "macvlan")) {
		if (!has(spec, "master"))
			return weft_vfail_at(ctx, "master", "is required for type macvlan");
		return 0;
	}
	if (has(spec, "master"))
		return weft_vfail_at(ctx, "master", "only applies to type macvlan");
	if (has(spec, "mode"))
		return weft_vfail_at(ctx, "mode", "only applies to type macvlan");
	return 0;
}

static const struct weft_field network_fields[] = {
	{.name = "type", .type = WEFT_T_ENUM, .flags = WEFT_FIELD_REQUIRED, .values = network_types},
	{.name = "master", .type = WEFT_T_STRING, .check = check_ifname},
	{.name = "mode", .type = WEFT_T_ENUM, .values = macvlan_modes, .def_fn = default_mode},
	{.name = "mtu", .type = WEFT_T_INT, .flags = WEFT_FIELD_RANGE, .min = 68, .max = 65535},
	{.name = "ipam", .type = WEFT_T_OBJECT, .sub = &ipam_schema},
};

/* --- Endpoint ---------------------------------------------------------- */

static const struct weft_field ipnet_elem = {.type = WEFT_T_CIDR_HOST};

static const struct weft_field endpoint_fields[] = {
	{.name = "node", .type = WEFT_T_STRING, .flags = WEFT_FIELD_REQUIRED, .check = check_hostname},
	{.name = "containerID", .type = WEFT_T_STRING, .check = check_container_id},
	{.name = "network", .type = WEFT_T_STRING, .check = check_subdomain},
	{.name = "ifname", .type = WEFT_T_STRING, .check = check_ifname},
	{.name = "hostIfname", .type = WEFT_T_STRING, .check = check_ifname},
	{.name = "mac", .type = WEFT_T_STRING, .check = check_mac},
	{.name = "ipNetworks", .type = WEFT_T_LIST, .flags = WEFT_FIELD_UNIQUE, .elem = &ipnet_elem, .def = "[]"},
	{.name = "profiles", .type = WEFT_T_LIST, .flags = WEFT_FIELD_UNIQUE, .elem = &profile_elem, .def = "[]"},
};

/* --- the table ------------------------------------------------------- */

static const struct weft_schema spec_schemas[WEFT_KIND_COUNT] = {
	[WEFT_KIND_IPPOOL] = WEFT_SCHEMA(ippool_fields, ippool_post),
	[WEFT_KIND_PROFILE] = WEFT_SCHEMA(profile_fields, NULL),
	[WEFT_KIND_POLICY] = WEFT_SCHEMA(policy_fields, policy_post),
	[WEFT_KIND_NODE] = WEFT_SCHEMA(node_fields, NULL),
	[WEFT_KIND_BGPPEER] = WEFT_SCHEMA(bgppeer_fields, bgppeer_post),
	[WEFT_KIND_BGPCONFIG] = WEFT_SCHEMA(bgpconfig_fields, NULL),
	[WEFT_KIND_TENANT] = WEFT_SCHEMA(tenant_fields, tenant_post),
	[WEFT_KIND_NETWORK] = WEFT_SCHEMA(network_fields, network_post),
	[WEFT_KIND_ENDPOINT] = WEFT_SCHEMA(endpoint_fields, NULL),
};

const struct weft_schema *weft_kind_spec_schema(enum weft_kind kind)
{
	if ((unsigned)kind >= WEFT_KIND_COUNT)
		return NULL;
	return &spec_schemas[kind];
}
