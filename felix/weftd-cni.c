/* weftd-cni.c - the CNI commands weftd serves for the `weft` and
 * `weft-ipam` plugins (docs/weftd.md, docs/cni.md).
 *
 * weftd parses the configuration and environment again itself: they are
 * outside input to the daemon as well, and the plugin only forwards them.
 *
 * ADD is all or nothing: IPAM, then the kernel, then the Endpoint record;
 * a failure at any step undoes the earlier ones (dataplane del, IPAM
 * release), so no half-applied attachment is ever left behind.
 */
#include "cni/cni.h"
#include "felix/dataplane.h"
#include "felix/weftd.h"
#include "lib/json.h"
#include "lib/log.h"
#include "model/resource.h"

#include <ctype.h>
#include <arpa/inet.h>
#include <sys/socket.h>

struct cni_ctx {
	struct weftd *d;
	bool ipam_only; /* the weft-ipam plugin */
	struct weft_cni_config *cfg;
	struct weft_cni_env env;
	struct weft_cni_error err;
	char *handle;
	char *ep_key;
};

/* What IPAM handed out for one attachment. */
struct alloc {
	struct weft_cidr addrs[WEFT_DP_MAX_ADDRS];
	struct weft_ip gws[WEFT_DP_MAX_ADDRS]; /* family 0: none */
	size_t n;
};

static const char *cidr_s(const struct weft_cidr *c, char *buf)
{
	return weft_cidr_str(c, buf, WEFT_CIDR_STRLEN);
}

static void mac_s(const uint8_t m[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* Map an IPAM failure to its CNI error. */
static int ipam_error(struct cni_ctx *c, int r, const char *what)
{
	const char *msg = weft_ipam_errmsg(c->d->ipam);
	int code;

	switch (r) {
	case -ENOSPC:
		code = WEFT_CNI_ERR_EXHAUSTED;
		break;
	case -ENOENT:
		code = WEFT_CNI_ERR_NOT_FOUND;
		break;
	case -EEXIST:
		code = WEFT_CNI_ERR_ADDRESS_IN_USE;
		break;
	case -EAGAIN:
	case -ETIMEDOUT:
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
		code = WEFT_CNI_ERR_TRY_AGAIN_LATER;
		break;
	case -EINVAL:
	case -EOPNOTSUPP:
		code = WEFT_CNI_ERR_INVALID_CONFIG;
		break;
	default:
		code = WEFT_CNI_ERR_INTERNAL;
	}
	return weft_cni_error_set(&c->err, code, NULL, "%s: %s", what, *msg ? msg : strerror(-r));
}

static void fill_attrs(struct cni_ctx *c, struct weft_ipam_attrs *a)
{
	*a = (struct weft_ipam_attrs){
		.namespace = c->env.k8s_pod_namespace,
		.pod = c->env.k8s_pod_name,
		.node = (char *)c->d->node,
		.container_id = c->env.container_id,
		.ifname = c->env.ifname,
		.network = c->cfg->name,
		/* weftctl ipam check cannot judge these by Endpoint records. */
		.plugin = c->ipam_only ? "weft-ipam" : NULL,
	};
}

static void range_from_config(const struct weft_cni_config *cfg, struct weft_ipam_range *rg)
{
	*rg = (struct weft_ipam_range){
		.network = cfg->name,
		.subnet = cfg->ipam.subnet,
		.start = cfg->ipam.first,
		.end = cfg->ipam.last,
		.exclude = cfg->ipam.exclude,
		.nexclude = cfg->ipam.n_exclude,
	};
	if (cfg->ipam.has_gateway)
		rg->gateway = cfg->ipam.gateway;
}

/* Allocate the attachment's addresses (any earlier ones of the same handle
 * are released first, so a repeated ADD never accumulates addresses). */
static int do_alloc(struct cni_ctx *c, struct alloc *a)
{
	const struct weft_cni_ipam *ip = &c->cfg->ipam;
	_cleanup_free_ struct weft_cidr *req = NULL;
	struct weft_ipam_attrs attrs;
	int nreq, r;

	fill_attrs(c, &attrs);
	*a = (struct alloc){0};
	nreq = weft_cni_requested_ips(c->cfg, &c->env, &req);
	if (nreq > WEFT_DP_MAX_ADDRS)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INVALID_CONFIG, NULL,
					  "runtimeConfig.ips: at most %d addresses", WEFT_DP_MAX_ADDRS);
	r = weft_ipam_release_handle(c->d->ipam, c->handle);
	if (r < 0)
		return ipam_error(c, r, "ipam");

	switch (ip->mode) {
	case WEFT_CNI_IPAM_POOL:
		if (nreq > 0) {
			for (int i = 0; i < nreq; i++) {
				r = weft_ipam_assign_ip(c->d->ipam, c->handle, &req[i].ip, c->d->node, &attrs);
				if (r < 0) {
					char b[WEFT_IP_STRLEN];
					_cleanup_free_ char *what = wasprintf(
						"static address %s", weft_ip_str(&req[i].ip, b, sizeof(b)));
					r = ipam_error(c, r, what);
					(void)weft_ipam_release_handle(c->d->ipam, c->handle);
					return r;
				}
				a->addrs[a->n].ip = req[i].ip;
				a->addrs[a->n++].prefixlen = weft_ip_bits(&req[i].ip);
			}
		} else {
			struct weft_ipam_request rq = {
				.handle = c->handle,
				.node = c->d->node,
				.family = AF_INET,
				.count = 1,
				.pools = (const char *const *)ip->ipv4_pools.v,
				.npools = ip->ipv4_pools.n,
				.attrs = attrs,
			};
			struct weft_ip got;

			r = weft_ipam_auto_assign(c->d->ipam, &rq, &got);
			if (r < 0)
				return ipam_error(c, r, ip->ipv4_pools.n ? "ipam.ipv4_pools" : "ipam");
			a->addrs[0].ip = got;
			a->addrs[0].prefixlen = weft_ip_bits(&got);
			a->n = 1;
		}
		return 0;
	case WEFT_CNI_IPAM_RANGE: {
		struct weft_ipam_range rg;
		struct weft_ip got;

		if (nreq > 0)
			return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INVALID_CONFIG, NULL,
						  "runtimeConfig.ips: static addresses cannot be combined with "
						  "ipam.range; use ipam.addresses");
		range_from_config(c->cfg, &rg);
		r = weft_ipam_range_validate(c->d->ipam, &rg);
		if (r < 0)
			return ipam_error(c, r, "ipam.range");
		r = weft_ipam_range_assign(c->d->ipam, &rg, c->handle, &attrs, &got);
		if (r < 0)
			return ipam_error(c, r, "ipam.range");
		a->addrs[0].ip = got;
		a->addrs[0].prefixlen = ip->subnet.prefixlen;
		if (ip->has_gateway)
			a->gws[0] = ip->gateway;
		a->n = 1;
		return 0;
	}
	case WEFT_CNI_IPAM_STATIC:
		if (nreq > 0) {
			for (int i = 0; i < nreq; i++)
				a->addrs[a->n++] = req[i];
		} else {
			if (ip->n_addresses > WEFT_DP_MAX_ADDRS)
				return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INVALID_CONFIG, NULL,
							  "ipam.addresses: at most %d addresses", WEFT_DP_MAX_ADDRS);
			for (size_t i = 0; i < ip->n_addresses; i++) {
				a->addrs[a->n] = ip->addresses[i].address;
				if (ip->addresses[i].has_gateway)
					a->gws[a->n] = ip->addresses[i].gateway;
				a->n++;
			}
		}
		return 0;
	}
	return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INVALID_CONFIG, NULL, "ipam: unknown mode");
}

static void release(struct cni_ctx *c)
{
	int r = weft_ipam_release_handle(c->d->ipam, c->handle);

	if (r < 0)
		log_warn("rollback: release of %s failed: %s (reclaimed later by GC)", c->handle,
			 weft_ipam_errmsg(c->d->ipam));
}

/* --- Endpoint records ---------------------------------------------------- */

static bool subdomain_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
		if (!alnum && ((ch != '-' && ch != '.') || i == 0 || i == n - 1))
			return false;
	}
	return true;
}

static bool label_value_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
		if (!alnum && ((ch != '-' && ch != '_' && ch != '.') || i == 0 || i == n - 1))
			return false;
	}
	return true;
}

/* A CNI network name usable as a profile name (letters, digits, _ . -;
 * at most 253; not . or ..). */
static bool profile_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253 || streq(s, ".") || streq(s, ".."))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
			return false;
	return true;
}

/* Write the Endpoint record of a fresh attachment. */
static int endpoint_write(struct cni_ctx *c, const struct alloc *a, const char *host_ifname, const char *mac)
{
	_cleanup_json_ cJSON *doc = cJSON_CreateObject();
	_cleanup_free_ char *name = weftd_endpoint_name(c->d->node, c->env.container_id, c->env.ifname);
	_cleanup_free_ char *err = NULL, *text = NULL;
	struct weft_resource res = {0};
	cJSON *meta, *labels, *ann, *spec, *ips, *profs;
	int64_t rev = 0;
	int r;

	cJSON_AddStringToObject(doc, "kind", "Endpoint");
	meta = cJSON_AddObjectToObject(doc, "metadata");
	cJSON_AddStringToObject(meta, "name", name);
	labels = cJSON_AddObjectToObject(meta, "labels");
	for (size_t i = 0; i < c->cfg->n_labels; i++)
		cJSON_AddStringToObject(labels, c->cfg->labels[i].key, c->cfg->labels[i].value);
	if (c->env.k8s_pod_namespace && label_value_ok(c->env.k8s_pod_namespace))
		cJSON_AddStringToObject(labels, WEFTD_LABEL_NAMESPACE, c->env.k8s_pod_namespace);
	if (c->env.k8s_pod_name && label_value_ok(c->env.k8s_pod_name))
		cJSON_AddStringToObject(labels, WEFTD_LABEL_POD, c->env.k8s_pod_name);
	ann = cJSON_AddObjectToObject(meta, "annotations");
	cJSON_AddStringToObject(ann, WEFTD_ANN_CNI_NETWORK, c->cfg->name);
	cJSON_AddStringToObject(ann, WEFTD_ANN_NETNS, c->env.netns);
	cJSON_AddStringToObject(ann, WEFTD_ANN_MODE, weft_cni_mode_str(c->cfg->mode));

	spec = cJSON_AddObjectToObject(doc, "spec");
	cJSON_AddStringToObject(spec, "node", c->d->node);
	cJSON_AddStringToObject(spec, "containerID", c->env.container_id);
	if (c->cfg->mode == WEFT_CNI_MODE_MACVLAN && subdomain_ok(c->cfg->name))
		cJSON_AddStringToObject(spec, "network", c->cfg->name);
	cJSON_AddStringToObject(spec, "ifname", c->env.ifname);
	if (host_ifname)
		cJSON_AddStringToObject(spec, "hostIfname", host_ifname);
	cJSON_AddStringToObject(spec, "mac", mac);
	ips = cJSON_AddArrayToObject(spec, "ipNetworks");
	for (size_t i = 0; i < a->n; i++) {
		char b[WEFT_CIDR_STRLEN];
		struct weft_cidr h = {.ip = a->addrs[i].ip, .prefixlen = weft_ip_bits(&a->addrs[i].ip)};
		cJSON_AddItemToArray(ips, cJSON_CreateString(cidr_s(&h, b)));
	}
	profs = cJSON_AddArrayToObject(spec, "profiles");
	for (size_t i = 0; i < c->cfg->profiles.n; i++)
		cJSON_AddItemToArray(profs, cJSON_CreateString(c->cfg->profiles.v[i]));
	/* A network that names no profiles gets its default profile, named
	 * after it (Calico's CNI and Docker integrations). */
	if (c->cfg->profiles.n == 0 && profile_name_ok(c->cfg->name)) {
		(void)weftd_default_profile(c->d, c->cfg->name);
		cJSON_AddItemToArray(profs, cJSON_CreateString(c->cfg->name));
	}

	r = weft_resource_from_json(doc, name, &res, &err);
	if (r < 0)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INTERNAL, NULL, "endpoint record: %s",
					  err ? err : strerror(-r));
	text = weft_resource_encode(&res, false);
	weft_resource_clear(&res);
	r = weft_store_put(c->d->store, c->ep_key, text, strlen(text), &rev);
	if (r < 0)
		return weft_cni_error_set(&c->err, r == -ETIMEDOUT || r == -ECONNREFUSED ? WEFT_CNI_ERR_TRY_AGAIN_LATER
											 : WEFT_CNI_ERR_INTERNAL,
					  NULL, "endpoint record %s: %s", c->ep_key, weft_store_errmsg(c->d->store));
	/* No window without policy: the routed endpoint's ACLs are in the
	 * kernel before the plugin answers (until then the backend drops its
	 * traffic as an unknown weft interface). */
	if (c->cfg->mode != WEFT_CNI_MODE_MACVLAN) {
		_cleanup_free_ char *aerr = NULL;

		r = weftd_acl_endpoint_ready(c->d->acl, c->ep_key, text, strlen(text), rev, host_ifname, &aerr);
		if (r < 0) {
			(void)weft_store_delete(c->d->store, c->ep_key, rev, NULL);
			return weft_cni_error_set(&c->err, WEFT_CNI_ERR_TRY_AGAIN_LATER, NULL,
						  "programming the ACLs of %s: %s", c->ep_key, aerr ? aerr : strerror(-r));
		}
	}
	return 0;
}

/* --- results --------------------------------------------------------------- */

static void add_config_routes(struct cni_ctx *c, struct weft_cni_result *res)
{
	for (size_t i = 0; i < c->cfg->ipam.n_routes; i++)
		(void)weft_cni_result_add_route(res, &c->cfg->ipam.routes[i]);
}

static void copy_dns(const struct weft_cni_dns *from, struct weft_cni_result *res)
{
	struct weft_cni_dns *to = &res->dns;

	for (size_t i = 0; i < from->nameservers.n; i++) {
		to->nameservers.v = wrealloc(to->nameservers.v, (to->nameservers.n + 2) * sizeof(char *));
		to->nameservers.v[to->nameservers.n++] = wstrdup(from->nameservers.v[i]);
		to->nameservers.v[to->nameservers.n] = NULL;
	}
	for (size_t i = 0; i < from->search.n; i++) {
		to->search.v = wrealloc(to->search.v, (to->search.n + 2) * sizeof(char *));
		to->search.v[to->search.n++] = wstrdup(from->search.v[i]);
		to->search.v[to->search.n] = NULL;
	}
	for (size_t i = 0; i < from->options.n; i++) {
		to->options.v = wrealloc(to->options.v, (to->options.n + 2) * sizeof(char *));
		to->options.v[to->options.n++] = wstrdup(from->options.v[i]);
		to->options.v[to->options.n] = NULL;
	}
	if (from->domain)
		to->domain = wstrdup(from->domain);
}

static char *result_text(struct cni_ctx *c, struct weft_cni_result *res)
{
	char *s;

	copy_dns(&c->cfg->dns, res);
	s = weft_cni_result_json(res, c->cfg->version);
	return s ? s : wstrdup("");
}

/* --- ADD ------------------------------------------------------------------- */

/* The attachment's Endpoint record: under its key, or under the key a
 * weft before 2026-11-27 gave it (a dot in its container id or interface
 * name) when that record names this very attachment. */
static int endpoint_get_own(struct cni_ctx *c, struct weftd_endpoint *ep)
{
	_cleanup_free_ char *legacy = NULL;
	int r = weftd_endpoint_get(c->d, c->ep_key, ep);

	if (r != -ENOENT)
		return r;
	legacy = weftd_endpoint_legacy_key(c->d->node, c->env.container_id, c->env.ifname);
	if (!legacy)
		return r;
	r = weftd_endpoint_get(c->d, legacy, ep);
	if (r == -EBADMSG)
		return -ENOENT; /* not known to be ours: left alone */
	if (r == 0 && !(ep->container_id && streq(ep->container_id, c->env.container_id) && ep->ifname &&
			streq(ep->ifname, c->env.ifname) && ep->node && streq(ep->node, c->d->node))) {
		weftd_endpoint_clear(ep);
		return -ENOENT;
	}
	return r;
}

/* An ADD for an attachment that exists already (a runtime retrying) first
 * removes the old one completely, so that a failing ADD never leaves the
 * old attachment half-released behind. */
static int reset_existing(struct cni_ctx *c)
{
	struct weftd_endpoint ep = {0};
	_cleanup_free_ char *msg = NULL;
	bool macvlan;
	int r;

	r = endpoint_get_own(c, &ep);
	if (r == -ENOENT)
		return 0;
	if (r < 0 && r != -EBADMSG)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_TRY_AGAIN_LATER, NULL, "store: %s",
					  weft_store_errmsg(c->d->store));
	macvlan = r == 0 && ep.mode && streq(ep.mode, "macvlan");
	r = weftd_teardown(c->d, c->env.container_id, c->env.ifname, ep.netns ? ep.netns : c->env.netns,
			   ep.key ? &ep : NULL, macvlan, &msg);
	weftd_endpoint_clear(&ep);
	if (r < 0)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INTERNAL, NULL, "replacing the existing attachment: %s",
					  msg);
	log_info("ADD %s:%s: an attachment existed already; removed it first", c->env.container_id, c->env.ifname);
	return 0;
}

static int add_routed(struct cni_ctx *c, char **output)
{
	struct weft_dp_routed ep = {
		.netns_path = c->env.netns,
		.container_id = c->env.container_id,
		.ifname = c->env.ifname,
		.mtu = c->cfg->mtu,
	};
	struct weft_cni_bandwidth bw;
	struct weft_dp_result dr = {0};
	_cleanup_free_ char *dperr = NULL;
	_cleanup_cni_result_ struct weft_cni_result *res = NULL;
	struct weft_ip gw, gw6;
	struct alloc a;
	char hmac[18], pmac[18];
	int r, hi, pi;

	r = reset_existing(c);
	if (r < 0)
		return r;
	r = do_alloc(c, &a);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a.n; i++) {
		ep.addrs[ep.naddrs++] = a.addrs[i].ip;
		/* IPv6 endpoints need node-wide IPv6 forwarding; set it the
		 * first time one appears rather than on every IPv4-only node. */
		if (a.addrs[i].ip.family == AF_INET6) {
			_cleanup_free_ char *perr = NULL;
			r = weft_dp_node_prepare(true, &perr);
			if (r < 0) {
				release(c);
				return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INTERNAL, NULL, "dataplane: %s",
							  perr ? perr : strerror(-r));
			}
		}
	}
	weft_cni_effective_bandwidth(c->cfg, &c->env, &bw);
	ep.bw = (struct weft_dp_bandwidth){bw.ingress_rate, bw.ingress_burst, bw.egress_rate, bw.egress_burst};

	r = weft_dp_routed_add(&ep, &dr, &dperr);
	if (r < 0) {
		release(c);
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INTERNAL, NULL, "dataplane: %s",
					  dperr ? dperr : strerror(-r));
	}
	mac_s(dr.host_mac, hmac);
	mac_s(dr.pod_mac, pmac);
	r = endpoint_write(c, &a, dr.host_ifname, pmac);
	if (r < 0) {
		_cleanup_free_ char *e2 = NULL;
		if (weft_dp_routed_del(c->env.container_id, c->env.ifname, &e2) < 0)
			log_warn("rollback: dataplane del %s: %s", dr.host_ifname, e2 ? e2 : "failed");
		release(c);
		return r;
	}

	res = weft_cni_result_new(c->cfg->version);
	hi = weft_cni_result_add_interface(res, dr.host_ifname, hmac, NULL);
	pi = weft_cni_result_add_interface(res, c->env.ifname, pmac, c->env.netns);
	(void)hi;
	(void)weft_ip_parse(WEFT_DP_GATEWAY, &gw);
	(void)weft_ip_parse(WEFT_DP_GATEWAY6, &gw6);
	for (size_t i = 0; i < a.n; i++) {
		struct weft_cidr h = {.ip = a.addrs[i].ip, .prefixlen = weft_ip_bits(&a.addrs[i].ip)};
		(void)weft_cni_result_add_ip(res, &h, h.ip.family == AF_INET ? &gw : &gw6, pi);
	}
	/* The routes the pod has: a default route per family it has an
	 * address of (ipam.routes are not installed in routed mode: the
	 * default routes send everything to the node already). */
	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		struct weft_cni_route def = WEFT_CNI_ROUTE_INIT;
		bool have = false;

		for (size_t i = 0; i < a.n; i++)
			have |= a.addrs[i].ip.family == family;
		if (!have)
			continue;
		def.dst.ip.family = family;
		def.dst.prefixlen = 0;
		def.has_gw = true;
		def.gw = family == AF_INET ? gw : gw6;
		(void)weft_cni_result_add_route(res, &def);
	}
	*output = result_text(c, res);
	log_info("ADD %s:%s -> %s on %s", c->env.container_id, c->env.ifname,
		 a.n ? weft_ip_str(&a.addrs[0].ip, (char[WEFT_IP_STRLEN]){0}, WEFT_IP_STRLEN) : "-", dr.host_ifname);
	return 0;
}

static void macvlan_att(struct cni_ctx *c, const struct alloc *a, struct weft_dp_macvlan *att)
{
	*att = (struct weft_dp_macvlan){
		.netns_path = c->env.netns,
		.container_id = c->env.container_id,
		.ifname = c->env.ifname,
		.master = c->cfg->master,
		.mode = weft_cni_macvlan_mode_str(c->cfg->macvlan_mode),
		.mtu = c->cfg->mtu,
	};
	for (size_t i = 0; i < a->n && i < WEFT_DP_MAX_ADDRS; i++) {
		att->addrs[att->naddrs++] = a->addrs[i];
		if (a->gws[i].family && !att->gateway.family && a->gws[i].family == AF_INET)
			att->gateway = a->gws[i];
	}
	for (size_t i = 0; i < c->cfg->ipam.n_routes && att->nroutes < WEFT_DP_MAX_ROUTES; i++) {
		struct weft_dp_route *rt = &att->routes[att->nroutes++];
		rt->dst = c->cfg->ipam.routes[i].dst;
		if (c->cfg->ipam.routes[i].has_gw)
			rt->gw = c->cfg->ipam.routes[i].gw;
	}
}

static int add_macvlan(struct cni_ctx *c, char **output)
{
	struct weft_dp_macvlan att;
	struct weft_dp_result dr = {0};
	_cleanup_free_ char *dperr = NULL;
	_cleanup_cni_result_ struct weft_cni_result *res = NULL;
	struct alloc a;
	char pmac[18];
	int r, pi;

	if (c->cfg->ipam.n_routes > WEFT_DP_MAX_ROUTES)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INVALID_CONFIG, NULL,
					  "ipam.routes: %zu routes; a macvlan attachment takes at most %d",
					  c->cfg->ipam.n_routes, WEFT_DP_MAX_ROUTES);
	r = reset_existing(c);
	if (r < 0)
		return r;
	r = do_alloc(c, &a);
	if (r < 0)
		return r;
	macvlan_att(c, &a, &att);
	r = weft_dp_macvlan_add(&att, &dr, &dperr);
	if (r < 0) {
		release(c);
		return weft_cni_error_set(&c->err, r == -ENODEV ? WEFT_CNI_ERR_INVALID_CONFIG : WEFT_CNI_ERR_INTERNAL,
					  NULL, "%s%s", r == -ENODEV ? "master: " : "dataplane: ",
					  dperr ? dperr : strerror(-r));
	}
	mac_s(dr.pod_mac, pmac);
	r = endpoint_write(c, &a, NULL, pmac);
	if (r < 0) {
		_cleanup_free_ char *e2 = NULL;
		if (weft_dp_macvlan_del(c->env.netns, c->env.ifname, &e2) < 0)
			log_warn("rollback: dataplane del %s: %s", c->env.ifname, e2 ? e2 : "failed");
		release(c);
		return r;
	}
	res = weft_cni_result_new(c->cfg->version);
	pi = weft_cni_result_add_interface(res, c->env.ifname, pmac, c->env.netns);
	for (size_t i = 0; i < a.n; i++)
		(void)weft_cni_result_add_ip(res, &a.addrs[i], a.gws[i].family ? &a.gws[i] : NULL, pi);
	add_config_routes(c, res);
	*output = result_text(c, res);
	log_info("ADD %s:%s -> macvlan on %s", c->env.container_id, c->env.ifname, c->cfg->master);
	return 0;
}

static int add_ipam_only(struct cni_ctx *c, char **output)
{
	_cleanup_cni_result_ struct weft_cni_result *res = NULL;
	struct alloc a;
	int r;

	r = do_alloc(c, &a);
	if (r < 0)
		return r;
	res = weft_cni_result_new(c->cfg->version);
	for (size_t i = 0; i < a.n; i++)
		(void)weft_cni_result_add_ip(res, &a.addrs[i], a.gws[i].family ? &a.gws[i] : NULL, -1);
	add_config_routes(c, res);
	*output = result_text(c, res);
	return 0;
}

/* --- DEL ------------------------------------------------------------------- */

/* The durable half of a teardown: the IPAM handle and the Endpoint
 * record (both idempotent). */
static int release_state(struct weftd *d, const char *container_id, const char *ifname,
			 const struct weftd_endpoint *ep, char **errmsg)
{
	_cleanup_free_ char *handle = NULL, *key = NULL;
	int r;

	r = weft_ipam_handle_id(container_id, ifname, &handle);
	if (r == 0) {
		r = weft_ipam_release_handle(d->ipam, handle);
		if (r < 0) {
			*errmsg = wasprintf("ipam: %s", weft_ipam_errmsg(d->ipam));
			return r;
		}
	}
	key = ep ? wstrdup(ep->key) : weftd_endpoint_key(d->node, container_id, ifname);
	r = weft_store_delete(d->store, key, 0, NULL);
	if (r < 0 && r != -ENOENT) {
		*errmsg = wasprintf("endpoint record %s: %s", key, weft_store_errmsg(d->store));
		return r;
	}
	return 0;
}

int weftd_teardown(struct weftd *d, const char *container_id, const char *ifname, const char *netns,
		   const struct weftd_endpoint *ep, bool macvlan, char **errmsg)
{
	_cleanup_free_ char *dperr = NULL;
	int r;

	if (macvlan)
		r = netns ? weft_dp_macvlan_del(netns, ifname, &dperr) : 0;
	else
		r = weft_dp_routed_del(container_id, ifname, &dperr);
	if (r < 0) {
		*errmsg = wasprintf("dataplane: %s", dperr ? dperr : strerror(-r));
		return r;
	}
	return release_state(d, container_id, ifname, ep, errmsg);
}

/* Before its addresses are released: no route of this node may lead one
 * of them into the veth that waits for the teardown worker, while another
 * node may already give it to a new pod. A failure leaves the window
 * open until the worker runs; it is logged, the DEL goes on. */
static void unroute(struct cni_ctx *c, const struct weftd_endpoint *ep)
{
	_cleanup_free_ struct weft_ip *addrs = wcalloc(ep->n_ip_networks + 1, sizeof(*addrs));
	_cleanup_free_ char *err = NULL;
	size_t n = 0;
	int r;

	for (size_t i = 0; i < ep->n_ip_networks; i++) {
		struct weft_cidr cc;

		if (weft_cidr_parse_host(ep->ip_networks[i], &cc) == 0)
			addrs[n++] = cc.ip;
	}
	r = weft_dp_routed_unroute(c->env.container_id, c->env.ifname, addrs, n, &err);
	if (r < 0)
		log_warn_errno(r, "DEL %s:%s: withdrawing the routes: %s; the teardown removes them", c->env.container_id,
			       c->env.ifname, err ? err : "failed");
}

static int cmd_del(struct cni_ctx *c, char **output)
{
	struct weftd_endpoint ep = {0};
	_cleanup_free_ char *msg = NULL;
	bool have, macvlan;
	int r;

	if (c->ipam_only) {
		r = weft_ipam_release_handle(c->d->ipam, c->handle);
		if (r < 0)
			return ipam_error(c, r, "ipam");
		*output = wstrdup("");
		return 0;
	}
	r = endpoint_get_own(c, &ep);
	have = r == 0;
	if (r < 0 && r != -ENOENT && r != -EBADMSG)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_TRY_AGAIN_LATER, NULL, "store: %s",
					  weft_store_errmsg(c->d->store));
	macvlan = have && ep.mode ? streq(ep.mode, "macvlan") : c->cfg->mode == WEFT_CNI_MODE_MACVLAN;
	if (!macvlan && c->d->td) {
		/* Routed: withdraw the routes, release the durable state and
		 * answer; the worker deletes the host veth (docs/weftd.md,
		 * "Asynchronous teardown"). */
		const char *netns = c->env.netns ? c->env.netns : (have ? ep.netns : NULL);
		char host[IFNAMSIZ];

		if (have)
			unroute(c, &ep);
		r = release_state(c->d, c->env.container_id, c->env.ifname, have ? &ep : NULL, &msg);
		if (r == 0) {
			weft_dp_host_ifname(c->env.container_id, c->env.ifname, host);
			/* A repeated DEL finds its teardown queued already. */
			if (!weftd_td_busy(c->d->td, host, NULL, NULL) &&
			    weftd_td_queue_routed(c->d->td, c->env.container_id, c->env.ifname, netns) < 0) {
				_cleanup_free_ char *dperr = NULL;
				/* Queue full: back pressure, tear down here. */
				r = weft_dp_routed_del(c->env.container_id, c->env.ifname, &dperr);
				if (r < 0) {
					free(msg);
					msg = wasprintf("dataplane: %s", dperr ? dperr : strerror(-r));
				}
			}
		}
		weftd_endpoint_clear(&ep);
		if (r < 0)
			return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INTERNAL, NULL, "%s", msg);
		log_info("DEL %s:%s%s (host veth %s queued for deletion)", c->env.container_id, c->env.ifname,
			 have ? "" : " (no endpoint record)", host);
		*output = wstrdup("");
		return 0;
	}
	/* macvlan stays synchronous: its address lives on a shared L2
	 * segment, where nothing like a route replace would displace a
	 * lingering old interface that still answers ARP for it. */
	r = weftd_teardown(c->d, c->env.container_id, c->env.ifname,
			   c->env.netns ? c->env.netns : (have ? ep.netns : NULL), have ? &ep : NULL, macvlan, &msg);
	weftd_endpoint_clear(&ep);
	if (r < 0)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INTERNAL, NULL, "%s", msg);
	log_info("DEL %s:%s%s", c->env.container_id, c->env.ifname, have ? "" : " (no endpoint record)");
	*output = wstrdup("");
	return 0;
}

/* --- CHECK ----------------------------------------------------------------- */

static bool ep_has_ip(const struct weftd_endpoint *ep, const struct weft_ip *ip)
{
	for (size_t i = 0; i < ep->n_ip_networks; i++) {
		struct weft_cidr cc;
		if (weft_cidr_parse_host(ep->ip_networks[i], &cc) == 0 && weft_ip_eq(&cc.ip, ip))
			return true;
	}
	return false;
}

static int cmd_check(struct cni_ctx *c, char **output)
{
	struct weftd_endpoint ep = {0};
	_cleanup_free_ char *dperr = NULL;
	const struct weft_cni_result *prev = c->cfg->prev_result;
	char b[WEFT_IP_STRLEN];
	int r;

	if (!prev)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INVALID_CONFIG, NULL, "prevResult: required for CHECK");
	if (c->ipam_only) {
		for (size_t i = 0; i < prev->n_ips && c->cfg->ipam.mode != WEFT_CNI_IPAM_STATIC; i++) {
			struct weft_ipam_allocation al = {0};
			r = weft_ipam_lookup_ip(c->d->ipam, &prev->ips[i].address.ip, &al);
			bool ok = r == 0 && al.handle && streq(al.handle, c->handle);
			weft_ipam_allocation_clear(&al);
			if (!ok)
				return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INTERNAL, NULL,
							  "prevResult.ips[%zu]: %s is not allocated to %s", i,
							  weft_ip_str(&prev->ips[i].address.ip, b, sizeof(b)), c->handle);
		}
		*output = wstrdup("");
		return 0;
	}
	r = endpoint_get_own(c, &ep);
	if (r == -ENOENT)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_UNKNOWN_CONTAINER, NULL,
					  "no endpoint for container %s interface %s on node %s", c->env.container_id,
					  c->env.ifname, c->d->node);
	if (r < 0)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INTERNAL, NULL, "endpoint record %s: %s", c->ep_key,
					  r == -EBADMSG ? "undecodable" : weft_store_errmsg(c->d->store));
	for (size_t i = 0; i < prev->n_ips; i++)
		if (!ep_has_ip(&ep, &prev->ips[i].address.ip)) {
			weftd_endpoint_clear(&ep);
			return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INTERNAL, NULL,
						  "prevResult.ips[%zu]: %s is not an address of endpoint %s", i,
						  weft_ip_str(&prev->ips[i].address.ip, b, sizeof(b)), c->ep_key);
		}
	if (ep.mode && streq(ep.mode, "macvlan")) {
		struct weft_dp_macvlan att;
		struct alloc a = {0};
		for (size_t i = 0; i < prev->n_ips && a.n < WEFT_DP_MAX_ADDRS; i++) {
			a.addrs[a.n] = prev->ips[i].address;
			if (prev->ips[i].has_gateway)
				a.gws[a.n] = prev->ips[i].gateway;
			a.n++;
		}
		macvlan_att(c, &a, &att);
		r = weft_dp_macvlan_check(&att, &dperr);
	} else {
		struct weft_dp_routed rt = {
			.netns_path = c->env.netns,
			.container_id = c->env.container_id,
			.ifname = c->env.ifname,
			.mtu = c->cfg->mtu,
		};
		struct weft_cni_bandwidth bw;

		for (size_t i = 0; i < ep.n_ip_networks && rt.naddrs < WEFT_DP_MAX_ADDRS; i++) {
			struct weft_cidr cc;
			if (weft_cidr_parse_host(ep.ip_networks[i], &cc) == 0)
				rt.addrs[rt.naddrs++] = cc.ip;
		}
		/* The shaping ADD set up is part of what CHECK compares. */
		weft_cni_effective_bandwidth(c->cfg, &c->env, &bw);
		rt.bw = (struct weft_dp_bandwidth){bw.ingress_rate, bw.ingress_burst, bw.egress_rate, bw.egress_burst};
		r = weft_dp_routed_check(&rt, &dperr);
	}
	weftd_endpoint_clear(&ep);
	if (r < 0)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INTERNAL, NULL, "%s", dperr ? dperr : strerror(-r));
	*output = wstrdup("");
	return 0;
}

/* --- GC -------------------------------------------------------------------- */

static bool is_valid(const struct weft_cni_config *cfg, const char *cid, const char *ifname)
{
	if (!cid || !ifname)
		return false;
	for (size_t i = 0; i < cfg->n_valid_attachments; i++)
		if (streq(cfg->valid_attachments[i].container_id, cid) && streq(cfg->valid_attachments[i].ifname, ifname))
			return true;
	return false;
}

static int cmd_gc(struct cni_ctx *c, char **output)
{
	struct weftd_endpoint *eps = NULL;
	struct weft_ipam_allocation *al = NULL;
	_cleanup_free_ char *range_prefix = NULL;
	size_t neps = 0, nal = 0, removed = 0, released = 0;
	int r;

	if (!c->cfg->has_valid_attachments)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_INVALID_CONFIG, NULL,
					  "cni.dev/valid-attachments: required for GC");
	r = weftd_endpoint_list_node(c->d, &eps, &neps);
	if (r < 0)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_TRY_AGAIN_LATER, NULL, "store: %s",
					  weft_store_errmsg(c->d->store));
	/* 1. Endpoints of this node and this network that the runtime no
	 * longer knows: kernel objects, addresses and record. */
	for (size_t i = 0; i < neps && !c->ipam_only; i++) {
		struct weftd_endpoint *e = &eps[i];
		_cleanup_free_ char *msg = NULL;

		if (!e->network || !streq(e->network, c->cfg->name) || !e->container_id || !e->ifname ||
		    is_valid(c->cfg, e->container_id, e->ifname))
			continue;
		r = weftd_teardown(c->d, e->container_id, e->ifname, e->netns, e,
				   e->mode && streq(e->mode, "macvlan"), &msg);
		if (r < 0)
			log_warn("GC %s: %s", e->key, msg);
		else {
			log_info("GC: removed endpoint %s", e->name);
			removed++;
		}
	}
	/* 2. Addresses of this node and this network without an endpoint and
	 * not valid: leaks of a crash between IPAM and the record, or of
	 * weft-ipam users. An address is this network's when it was recorded
	 * with the network's name, or (written before weft recorded it) lies
	 * in the network's range; a pool address without a name is left alone
	 * (it may be another network's: weftctl ipam check/release decide). */
	r = weft_ipam_list_allocations(c->d->ipam, &al, &nal);
	if (r < 0) {
		weftd_endpoints_free(eps, neps);
		return ipam_error(c, r, "ipam");
	}
	range_prefix = wasprintf("%s%s/", WEFT_IPAM_RANGES_PREFIX, c->cfg->name);
	for (size_t i = 0; i < nal; i++) {
		struct weft_ipam_allocation *x = &al[i];
		bool mine;
		bool has_ep = false;

		if (!x->attrs.node || !streq(x->attrs.node, c->d->node) || !x->handle ||
		    is_valid(c->cfg, x->attrs.container_id, x->attrs.ifname))
			continue;
		if (x->attrs.network)
			mine = streq(x->attrs.network, c->cfg->name);
		else
			mine = x->holder && startswith(x->holder, range_prefix);
		if (!mine)
			continue;
		/* An endpoint record holding it keeps it: another network's, or
		 * this network's whose teardown in step 1 failed (its record and
		 * route are still there: the address is not free). */
		for (size_t k = 0; k < neps; k++)
			if (eps[k].container_id && eps[k].ifname && x->attrs.container_id && x->attrs.ifname &&
			    streq(eps[k].container_id, x->attrs.container_id) && streq(eps[k].ifname, x->attrs.ifname))
				has_ep = true;
		if (has_ep)
			continue;
		if (!c->ipam_only && c->cfg->mode == WEFT_CNI_MODE_ROUTED && x->attrs.container_id && x->attrs.ifname) {
			_cleanup_free_ char *e2 = NULL;
			(void)weft_dp_routed_del(x->attrs.container_id, x->attrs.ifname, &e2);
		}
		r = weft_ipam_release_handle(c->d->ipam, x->handle);
		if (r > 0) {
			log_info("GC: released %d address(es) of %s", r, x->handle);
			released += (size_t)r;
		}
	}
	weft_ipam_allocations_free(al, nal);
	weftd_endpoints_free(eps, neps);
	log_info("GC of %s: %zu endpoint(s) removed, %zu leaked address(es) released", c->cfg->name, removed, released);
	*output = wstrdup("");
	return 0;
}

/* --- dispatch ---------------------------------------------------------------- */

static int cmd_status(struct cni_ctx *c, char **output)
{
	int64_t rev;
	int r = weft_store_revision(c->d->store, &rev);

	if (r < 0)
		return weft_cni_error_set(&c->err, WEFT_CNI_ERR_NOT_AVAILABLE, NULL, "store %s does not answer: %s",
					  c->d->store_url, weft_store_errmsg(c->d->store));
	*output = wstrdup("");
	return 0;
}

int weftd_cni_handle(struct weftd *d, const struct weftd_cni_request *req, char **output)
{
	struct cni_ctx c = {.d = d, .ipam_only = req->plugin && streq(req->plugin, "weft-ipam")};
	char *out = NULL;
	int r;

	r = weft_cni_config_parse(req->config, req->config_len, c.ipam_only ? WEFT_CNI_PARSE_IPAM_ONLY : 0, &c.cfg,
				  &c.err);
	if (r < 0)
		goto fail;
	r = weft_cni_env_parse(req->envp, &c.env, &c.err);
	if (r < 0)
		goto fail;
	r = weft_cni_command_check_version(c.env.command, c.cfg->version, &c.err);
	if (r < 0)
		goto fail;
	if (c.env.container_id && c.env.ifname) {
		r = weft_ipam_handle_id(c.env.container_id, c.env.ifname, &c.handle);
		if (r < 0) {
			r = weft_cni_error_set(&c.err, WEFT_CNI_ERR_INVALID_ENV, NULL,
					       "CNI_CONTAINERID/CNI_IFNAME: not usable as an IPAM handle");
			goto fail;
		}
		c.ep_key = weftd_endpoint_key(d->node, c.env.container_id, c.env.ifname);
	}

	/* An ADD or CHECK of devices a queued teardown is about to delete
	 * waits for it: the worker deletes by name, and must not take the new
	 * attachment's devices with the old. Only these requests wait, and
	 * they are parked by the API server rather than blocking the loop. */
	if ((c.env.command == WEFT_CNI_CMD_ADD || c.env.command == WEFT_CNI_CMD_CHECK) && !c.ipam_only && d->td &&
	    c.env.container_id && c.env.ifname) {
		char host[IFNAMSIZ];
		const char *busy;

		weft_dp_host_ifname(c.env.container_id, c.env.ifname, host);
		busy = weftd_td_busy(d->td, c.cfg->mode == WEFT_CNI_MODE_ROUTED ? host : NULL, c.env.netns,
				     c.env.ifname);
		if (busy && req->may_defer) {
			log_debug("%s %s:%s waits for the teardown of %s", req->command, c.env.container_id,
				  c.env.ifname, busy);
			*output = NULL;
			weft_cni_env_clear(&c.env);
			weft_cni_config_free(c.cfg);
			free(c.handle);
			free(c.ep_key);
			return WEFTD_CNI_DEFER;
		}
		if (busy) {
			r = weft_cni_error_set(&c.err, WEFT_CNI_ERR_TRY_AGAIN_LATER, NULL,
					       "the teardown of %s (an earlier DEL) did not finish within %d ms",
					       busy, WEFTD_TD_WAIT_MS);
			goto fail;
		}
	}

	/* Before anything is allocated: a CNI_NETNS that is no network
	 * namespace (a FIFO would even block) is the runtime's mistake. */
	if ((c.env.command == WEFT_CNI_CMD_ADD || c.env.command == WEFT_CNI_CMD_CHECK) && !c.ipam_only && c.env.netns &&
	    weft_dp_netns_check(c.env.netns) == -EINVAL) {
		r = weft_cni_error_set(&c.err, WEFT_CNI_ERR_INVALID_ENV, NULL, "CNI_NETNS: %s is not a network namespace",
				       c.env.netns);
		goto fail;
	}

	switch (c.env.command) {
	case WEFT_CNI_CMD_ADD:
		if (c.ipam_only)
			r = add_ipam_only(&c, &out);
		else if (c.cfg->mode == WEFT_CNI_MODE_MACVLAN)
			r = add_macvlan(&c, &out);
		else
			r = add_routed(&c, &out);
		break;
	case WEFT_CNI_CMD_DEL:
		r = cmd_del(&c, &out);
		break;
	case WEFT_CNI_CMD_CHECK:
		r = cmd_check(&c, &out);
		break;
	case WEFT_CNI_CMD_GC:
		r = cmd_gc(&c, &out);
		break;
	case WEFT_CNI_CMD_STATUS:
		r = cmd_status(&c, &out);
		break;
	case WEFT_CNI_CMD_VERSION:
		out = weft_cni_version_json();
		r = 0;
		break;
	default:
		r = weft_cni_error_set(&c.err, WEFT_CNI_ERR_INVALID_ENV, NULL, "CNI_COMMAND: unknown command");
	}
fail:
	if (r < 0 || !out) {
		if (!c.err.code)
			(void)weft_cni_error_set(&c.err, WEFT_CNI_ERR_INTERNAL, NULL, "internal error: %s", strerror(-r));
		free(out);
		out = weft_cni_error_json(&c.err, c.cfg ? c.cfg->version : 0);
		log_info("%s %s:%s failed: code %d: %s", req->command ? req->command : "?",
			 c.env.container_id ? c.env.container_id : "-", c.env.ifname ? c.env.ifname : "-", c.err.code,
			 c.err.msg);
		r = 1;
	} else {
		r = 0;
	}
	*output = out;
	weft_cni_error_clear(&c.err);
	weft_cni_env_clear(&c.env);
	weft_cni_config_free(c.cfg);
	free(c.handle);
	free(c.ep_key);
	return r;
}
