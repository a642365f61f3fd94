/* dp-routed.c - routed veth endpoints (the Calico model).
 *
 * Node side: host veth wft<hash>, MAC ee:ee:ee:ee:ee:ee, proxy_arp and the
 * other per-interface sysctls, a scope-link /32 (/128) route per pod
 * address with protocol WEFT_DP_RTPROTO and a permanent neighbour entry
 * pod address -> pod MAC (no ARP before the first packet to it, no entry
 * in the shared neighbour cache). Pod side: ifname with the /32
 * (/128) addresses, a default route via 169.254.1.1 (onlink) and a
 * permanent neighbour entry 169.254.1.1 -> the host MAC, so the pod does
 * not depend on the node's routes for proxy ARP to answer. IPv6 uses the
 * host veth's own link-local address (fe80::ecee:eeff:feee:eeee, derived
 * from the fixed MAC) as the gateway, also with a permanent entry.
 */
#include "lib/util.h"
#include "felix/dp-internal.h"

#include <linux/if_addr.h>

static const uint8_t host_mac[6] = {0xee, 0xee, 0xee, 0xee, 0xee, 0xee};
#define DP_GATEWAY6 WEFT_DP_GATEWAY6

void weft_dp_host_ifname(const char *container_id, const char *ifname, char out[IFNAMSIZ])
{
	uint64_t h = weft_fnv1a(container_id, strlen(container_id), WEFT_FNV_INIT);
	char hex[17];

	h = weft_fnv1a(":", 1, h);
	h = weft_fnv1a(ifname, strlen(ifname), h);
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
	snprintf(out, IFNAMSIZ, "%s%.11s", WEFT_DP_IFPREFIX, hex);
}

static bool ifname_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	return n > 0 && n < IFNAMSIZ && !strchr(name, '/') && !strchr(name, ' ') && !streq(name, ".") &&
	       !streq(name, "..");
}

static int validate(const struct weft_dp_routed *ep, char **errmsg)
{
	if (!ep || !ep->netns_path || !*ep->netns_path)
		return dp_fail(errmsg, -EINVAL, NULL, "routed endpoint: no netns path");
	if (!ep->container_id || !*ep->container_id)
		return dp_fail(errmsg, -EINVAL, NULL, "routed endpoint: no container id");
	if (!ifname_ok(ep->ifname))
		return dp_fail(errmsg, -EINVAL, NULL, "routed endpoint: bad interface name \"%s\"",
			       ep->ifname ? ep->ifname : "");
	if (ep->naddrs > WEFT_DP_MAX_ADDRS)
		return dp_fail(errmsg, -EINVAL, NULL, "routed endpoint: too many addresses");
	for (size_t i = 0; i < ep->naddrs; i++)
		if (ep->addrs[i].family != AF_INET && ep->addrs[i].family != AF_INET6)
			return dp_fail(errmsg, -EINVAL, NULL, "routed endpoint: address %zu has no family", i);
	if (ep->mtu && (ep->mtu < 68 || ep->mtu > 65535))
		return dp_fail(errmsg, -EINVAL, NULL, "routed endpoint: bad mtu %u", ep->mtu);
	return 0;
}

static bool has_family(const struct weft_dp_routed *ep, int family)
{
	for (size_t i = 0; i < ep->naddrs; i++)
		if (ep->addrs[i].family == family)
			return true;
	return false;
}

static struct weft_ip gateway_of(int family)
{
	struct weft_ip gw = {0};

	weft_ip_parse(family == AF_INET ? WEFT_DP_GATEWAY : DP_GATEWAY6, &gw);
	return gw;
}

struct host_sysctl {
	const char *dir; /* /proc/sys/net/<dir>/<ifname>/<key> */
	const char *key;
	const char *value;
	const char *name; /* for messages */
	int family;
};

static const struct host_sysctl host_sysctls[] = {
	{"ipv4/conf", "proxy_arp", "1", "proxy_arp", AF_INET},
	{"ipv4/neigh", "proxy_delay", "0", "neigh proxy_delay", AF_INET},
	{"ipv4/conf", "forwarding", "1", "forwarding", AF_INET},
	{"ipv4/conf", "route_localnet", "1", "route_localnet", AF_INET},
	{"ipv6/conf", "proxy_ndp", "1", "ipv6 proxy_ndp", AF_INET6},
	{"ipv6/conf", "accept_ra", "0", "ipv6 accept_ra", AF_INET6},
	{"ipv6/conf", "forwarding", "1", "ipv6 forwarding", AF_INET6},
};

/* The pod-side steps, over a socket in the pod namespace. */
static int pod_setup(struct weft_nl *pnl, const struct weft_dp_routed *ep, struct weft_dp_result *res, char **errmsg)
{
	struct weft_link pod;
	int r;

	r = weft_nl_link_get(pnl, ep->ifname, &pod);
	if (r < 0)
		return dp_fail(errmsg, r, pnl, "find %s in %s", ep->ifname, ep->netns_path);
	for (size_t i = 0; i < ep->naddrs; i++) {
		struct weft_addr a = {
			.ifindex = pod.ifindex,
			.local = {.ip = ep->addrs[i], .prefixlen = weft_ip_bits(&ep->addrs[i])},
			.flags = ep->addrs[i].family == AF_INET6 ? IFA_F_NODAD : 0,
		};
		char s[WEFT_IP_STRLEN];

		r = weft_nl_addr_add(pnl, &a);
		if (r < 0)
			return dp_fail(errmsg, r, pnl, "add address %s to %s in pod",
				       weft_ip_str(&ep->addrs[i], s, sizeof(s)), ep->ifname);
	}
	r = weft_nl_link_set_up(pnl, pod.ifindex, true);
	if (r < 0)
		return dp_fail(errmsg, r, pnl, "set %s up in pod", ep->ifname);
	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		struct weft_ip gw = gateway_of(family);
		struct weft_route def = {.dst = {.ip = {.family = family}}, .gateway = gw, .oif = pod.ifindex};

		if (!has_family(ep, family))
			continue;
		r = weft_nl_neigh_add_permanent(pnl, pod.ifindex, &gw, host_mac);
		if (r < 0)
			return dp_fail(errmsg, r, pnl, "add neighbour %s on %s in pod",
				       family == AF_INET ? WEFT_DP_GATEWAY : DP_GATEWAY6, ep->ifname);
		r = dp_route_replace_onlink(pnl, &def);
		if (r < 0)
			return dp_fail(errmsg, r, pnl, "add default route via %s on %s in pod",
				       family == AF_INET ? WEFT_DP_GATEWAY : DP_GATEWAY6, ep->ifname);
	}
	/* Read back the MAC (the kernel assigns a random one) and index. */
	r = weft_nl_link_get(pnl, ep->ifname, &pod);
	if (r < 0)
		return dp_fail(errmsg, r, pnl, "find %s in %s", ep->ifname, ep->netns_path);
	memcpy(res->pod_mac, pod.mac, 6);
	res->pod_ifindex = pod.ifindex;
	return 0;
}

int weft_dp_routed_add(const struct weft_dp_routed *ep, struct weft_dp_result *out, char **errmsg)
{
	_cleanup_nl_ struct weft_nl *nl = NULL;
	_cleanup_nl_ struct weft_nl *pnl = NULL;
	_cleanup_close_ int nsfd = -1;
	struct weft_dp_result res = {0};
	char host[IFNAMSIZ], ifb[IFNAMSIZ];
	unsigned mtu;
	struct weft_link hl;
	int r;

	r = validate(ep, errmsg);
	if (r < 0)
		return r;
	mtu = ep->mtu ? ep->mtu : 1500;
	weft_dp_host_ifname(ep->container_id, ep->ifname, host);
	dp_ifb_name(host, ifb);

	r = weft_nl_open(NETLINK_ROUTE, 0, &nl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket");
	nsfd = dp_netns_open(ep->netns_path);
	if (nsfd < 0)
		return dp_fail(errmsg, nsfd, NULL, "open netns %s", ep->netns_path);
	r = dp_nl_open_in(nsfd, &pnl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket in netns %s", ep->netns_path);

	/* Replace an earlier attachment with the same names: its pod side
	 * goes with the host veth, its routes with the device. */
	r = dp_link_delete_name(nl, host, NULL);
	if (r >= 0)
		r = dp_link_delete_name(nl, ifb, "ifb");
	if (r < 0)
		return dp_fail(errmsg, r, nl, "delete old %s", host);

	r = weft_nl_veth_create(nl, host, ep->ifname, nsfd, mtu);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "create veth %s with peer %s in %s", host, ep->ifname, ep->netns_path);

	/* From here on, failure deletes the veth (and with it the peer and the
	 * routes through it) and the ifb. */
	r = weft_nl_link_get(nl, host, &hl);
	if (r < 0) {
		dp_fail(errmsg, r, nl, "find %s", host);
		goto undo;
	}
	r = dp_link_set_mac(nl, hl.ifindex, host_mac);
	if (r < 0) {
		dp_fail(errmsg, r, nl, "set MAC of %s", host);
		goto undo;
	}
	for (size_t i = 0; i < ARRAY_SIZE(host_sysctls); i++) {
		const struct host_sysctl *s = &host_sysctls[i];
		_cleanup_free_ char *path = NULL;

		if (s->family == AF_INET6 && !has_family(ep, AF_INET6))
			continue;
		path = wasprintf("%s/%s/%s", s->dir, host, s->key);
		r = dp_sysctl_write(path, s->value);
		if (r < 0) {
			dp_fail(errmsg, r, NULL, "set %s on %s", s->name, host);
			goto undo;
		}
	}
	r = weft_nl_link_set_up(nl, hl.ifindex, true);
	if (r < 0) {
		dp_fail(errmsg, r, nl, "set %s up", host);
		goto undo;
	}
	r = pod_setup(pnl, ep, &res, errmsg);
	if (r < 0)
		goto undo;
	for (size_t i = 0; i < ep->naddrs; i++) {
		struct weft_route rt = {
			.dst = {.ip = ep->addrs[i], .prefixlen = weft_ip_bits(&ep->addrs[i])},
			.oif = hl.ifindex,
			.protocol = WEFT_DP_RTPROTO,
			.scope = RT_SCOPE_LINK,
		};
		char s[WEFT_IP_STRLEN];

		r = weft_nl_route_replace(nl, &rt);
		if (r < 0) {
			dp_fail(errmsg, r, nl, "add route %s dev %s", weft_ip_str(&ep->addrs[i], s, sizeof(s)), host);
			goto undo;
		}
		/* A permanent neighbour for the pod, as Calico's felix does: no
		 * ARP/ND round trip before the first packet to a new pod, and
		 * no entry per pod in the kernel's shared, size-limited
		 * neighbour cache (the pod needs none either: its gateway is
		 * permanent too). */
		r = weft_nl_neigh_add_permanent(nl, hl.ifindex, &ep->addrs[i], res.pod_mac);
		if (r < 0) {
			dp_fail(errmsg, r, nl, "add neighbour %s on %s", weft_ip_str(&ep->addrs[i], s, sizeof(s)), host);
			goto undo;
		}
	}
	r = dp_tc_apply(nl, host, hl.ifindex, mtu, &ep->bw, errmsg);
	if (r < 0)
		goto undo;

	weft_strlcpy(res.host_ifname, host, sizeof(res.host_ifname));
	memcpy(res.host_mac, host_mac, 6);
	if (out)
		*out = res;
	return 0;

undo:
	/* Best effort: the original error is what the caller needs. */
	dp_link_delete_name(nl, host, NULL);
	dp_link_delete_name(nl, ifb, "ifb");
	return r;
}

int weft_dp_routed_del(const char *container_id, const char *ifname, char **errmsg)
{
	_cleanup_nl_ struct weft_nl *nl = NULL;
	char host[IFNAMSIZ], ifb[IFNAMSIZ];
	int r;

	if (!container_id || !*container_id || !ifname_ok(ifname))
		return dp_fail(errmsg, -EINVAL, NULL, "routed endpoint: bad container id or interface name");
	weft_dp_host_ifname(container_id, ifname, host);
	dp_ifb_name(host, ifb);
	r = weft_nl_open(NETLINK_ROUTE, 0, &nl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket");
	/* The routes through the veth and its qdiscs go with it. */
	r = dp_link_delete_name(nl, host, NULL);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "delete %s", host);
	r = dp_link_delete_name(nl, ifb, "ifb");
	if (r < 0)
		return dp_fail(errmsg, r, nl, "delete %s", ifb);
	return 0;
}

int weft_dp_routed_unroute(const char *container_id, const char *ifname, const struct weft_ip *addrs, size_t n,
			   char **errmsg)
{
	_cleanup_nl_ struct weft_nl *nl = NULL;
	char host[IFNAMSIZ], s[WEFT_IP_STRLEN];
	struct weft_link hl;
	int r;

	if (!container_id || !*container_id || !ifname_ok(ifname))
		return dp_fail(errmsg, -EINVAL, NULL, "routed endpoint: bad container id or interface name");
	if (n == 0)
		return 0;
	weft_dp_host_ifname(container_id, ifname, host);
	r = weft_nl_open(NETLINK_ROUTE, 0, &nl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket");
	r = weft_nl_link_get(nl, host, &hl);
	if (r == -ENODEV)
		return 0;
	if (r < 0)
		return dp_fail(errmsg, r, nl, "find %s", host);
	for (size_t i = 0; i < n; i++) {
		/* With the oif: only the route into this veth matches. */
		struct weft_route rt = {
			.dst = {.ip = addrs[i], .prefixlen = weft_ip_bits(&addrs[i])},
			.oif = hl.ifindex,
			.protocol = WEFT_DP_RTPROTO,
			.scope = RT_SCOPE_LINK,
		};

		r = weft_nl_route_del(nl, &rt);
		if (r < 0 && r != -ESRCH && r != -ENODEV)
			return dp_fail(errmsg, r, nl, "delete route %s dev %s", weft_ip_str(&addrs[i], s, sizeof(s)), host);
	}
	return 0;
}

int weft_dp_node_prepare(bool ipv6, char **errmsg)
{
	char v[16];
	int r;

	if (!ipv6)
		return 0;
	/* Only write when needed: the write itself resets per-interface
	 * forwarding values on every interface. */
	r = dp_sysctl_read("ipv6/conf/all/forwarding", v, sizeof(v));
	if (r == 0 && streq(v, "1"))
		return 0;
	r = dp_sysctl_write("ipv6/conf/all/forwarding", "1");
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "set net.ipv6.conf.all.forwarding");
	return 0;
}

/* ---- check ---- */

static bool route_present(const struct weft_route *v, size_t n, const struct weft_cidr *dst, int oif,
			  const struct weft_ip *gw, int protocol)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].dst.prefixlen != dst->prefixlen || !weft_ip_eq(&v[i].dst.ip, &dst->ip))
			continue;
		if (oif && v[i].oif != oif)
			continue;
		if (gw && !weft_ip_eq(&v[i].gateway, gw))
			continue;
		if (protocol >= 0 && v[i].protocol != protocol)
			continue;
		return true;
	}
	return false;
}

static bool addr_present(const struct weft_addr *v, size_t n, const struct weft_cidr *c)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].local.prefixlen == c->prefixlen && weft_ip_eq(&v[i].local.ip, &c->ip))
			return true;
	return false;
}

static int pod_check(struct weft_nl *pnl, const struct weft_dp_routed *ep, unsigned mtu, char **errmsg)
{
	_cleanup_free_ struct weft_addr *addrs = NULL;
	_cleanup_free_ struct weft_route *routes = NULL;
	size_t naddrs = 0, nroutes = 0;
	struct weft_link pod;
	char s[WEFT_CIDR_STRLEN];
	int r;

	r = weft_nl_link_get(pnl, ep->ifname, &pod);
	if (r < 0)
		return dp_fail(errmsg, r == -ENODEV ? -ENOENT : r, pnl, "%s in %s", ep->ifname, ep->netns_path);
	if (!streq(pod.kind, "veth"))
		return dp_fail(errmsg, -EINVAL, NULL, "%s in pod is a \"%s\", not a veth", ep->ifname, pod.kind);
	if (!(pod.flags & IFF_UP))
		return dp_fail(errmsg, -EINVAL, NULL, "%s in pod is down", ep->ifname);
	if (pod.mtu != mtu)
		return dp_fail(errmsg, -EINVAL, NULL, "%s in pod has mtu %u, want %u", ep->ifname, pod.mtu, mtu);
	r = dp_addr_list(pnl, pod.ifindex, &addrs, &naddrs);
	if (r < 0)
		return dp_fail(errmsg, r, pnl, "list addresses in pod");
	for (size_t i = 0; i < ep->naddrs; i++) {
		struct weft_cidr c = {ep->addrs[i], weft_ip_bits(&ep->addrs[i])};

		if (!addr_present(addrs, naddrs, &c))
			return dp_fail(errmsg, -ENOENT, NULL, "address %s on %s in pod",
				       weft_cidr_str(&c, s, sizeof(s)), ep->ifname);
	}
	r = dp_route_list(pnl, AF_UNSPEC, -1, &routes, &nroutes);
	if (r < 0)
		return dp_fail(errmsg, r, pnl, "list routes in pod");
	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		struct weft_ip gw = gateway_of(family);
		struct weft_cidr def = {.ip = {.family = family}};

		if (!has_family(ep, family))
			continue;
		if (!route_present(routes, nroutes, &def, pod.ifindex, &gw, -1))
			return dp_fail(errmsg, -ENOENT, NULL, "default route via %s dev %s in pod",
				       weft_ip_str(&gw, s, sizeof(s)), ep->ifname);
		r = dp_neigh_has_permanent(pnl, pod.ifindex, &gw, host_mac);
		if (r < 0)
			return dp_fail(errmsg, r, pnl, "list neighbours in pod");
		if (r == 0)
			return dp_fail(errmsg, -ENOENT, NULL, "permanent neighbour %s on %s in pod",
				       weft_ip_str(&gw, s, sizeof(s)), ep->ifname);
	}
	return 0;
}

int weft_dp_routed_check(const struct weft_dp_routed *ep, char **errmsg)
{
	_cleanup_nl_ struct weft_nl *nl = NULL;
	_cleanup_nl_ struct weft_nl *pnl = NULL;
	_cleanup_close_ int nsfd = -1;
	_cleanup_free_ struct weft_route *routes = NULL;
	size_t nroutes = 0;
	char host[IFNAMSIZ];
	struct weft_link hl;
	unsigned mtu;
	int r;

	r = validate(ep, errmsg);
	if (r < 0)
		return r;
	mtu = ep->mtu ? ep->mtu : 1500;
	weft_dp_host_ifname(ep->container_id, ep->ifname, host);
	r = weft_nl_open(NETLINK_ROUTE, 0, &nl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket");
	r = weft_nl_link_get(nl, host, &hl);
	if (r < 0)
		return dp_fail(errmsg, r == -ENODEV ? -ENOENT : r, nl, "host veth %s", host);
	if (!streq(hl.kind, "veth"))
		return dp_fail(errmsg, -EINVAL, NULL, "%s is a \"%s\", not a veth", host, hl.kind);
	if (!(hl.flags & IFF_UP))
		return dp_fail(errmsg, -EINVAL, NULL, "%s is down", host);
	if (!hl.has_mac || memcmp(hl.mac, host_mac, 6) != 0)
		return dp_fail(errmsg, -EINVAL, NULL, "%s does not have MAC %s", host, WEFT_DP_HOST_MAC);
	if (hl.mtu != mtu)
		return dp_fail(errmsg, -EINVAL, NULL, "%s has mtu %u, want %u", host, hl.mtu, mtu);
	for (size_t i = 0; i < ARRAY_SIZE(host_sysctls); i++) {
		const struct host_sysctl *s = &host_sysctls[i];
		_cleanup_free_ char *path = NULL;
		char val[32];

		if (s->family == AF_INET6 && !has_family(ep, AF_INET6))
			continue;
		path = wasprintf("%s/%s/%s", s->dir, host, s->key);
		r = dp_sysctl_read(path, val, sizeof(val));
		if (r < 0)
			return dp_fail(errmsg, r, NULL, "read %s of %s", s->name, host);
		if (!streq(val, s->value))
			return dp_fail(errmsg, -EINVAL, NULL, "%s of %s is %s, want %s", s->name, host, val, s->value);
	}
	r = dp_route_list(nl, AF_UNSPEC, WEFT_DP_RTPROTO, &routes, &nroutes);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "list routes");
	for (size_t i = 0; i < ep->naddrs; i++) {
		struct weft_cidr dst = {ep->addrs[i], weft_ip_bits(&ep->addrs[i])};
		char s[WEFT_CIDR_STRLEN];

		if (!route_present(routes, nroutes, &dst, hl.ifindex, NULL, WEFT_DP_RTPROTO))
			return dp_fail(errmsg, -ENOENT, NULL, "route %s dev %s proto %d",
				       weft_cidr_str(&dst, s, sizeof(s)), host, WEFT_DP_RTPROTO);
	}
	r = dp_tc_check(nl, host, hl.ifindex, &ep->bw, errmsg);
	if (r < 0)
		return r;

	nsfd = dp_netns_open(ep->netns_path);
	if (nsfd < 0)
		return dp_fail(errmsg, nsfd, NULL, "open netns %s", ep->netns_path);
	r = dp_nl_open_in(nsfd, &pnl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket in netns %s", ep->netns_path);
	return pod_check(pnl, ep, mtu, errmsg);
}
