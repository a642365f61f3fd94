/* dp-macvlan.c - macvlan secondary attachments.
 *
 * The macvlan is created on the master in the node namespace and
 * registered straight into the pod namespace under its final name (one
 * RTM_NEWLINK with IFLA_LINK = master and IFLA_NET_NS_FD = pod): the name
 * never exists in the node namespace, so it cannot collide there. The
 * pod-side steps run over a netlink socket opened inside the pod
 * namespace. A macvlan cannot talk to its own master (the parent host):
 * the master does not see frames sent by its macvlans, by design.
 */
#include "felix/dp-internal.h"

#include <linux/if_addr.h>
#include <linux/if_link.h>

static int parse_mode(const char *mode, uint32_t *out)
{
	if (!mode || !*mode || streq(mode, "bridge"))
		*out = MACVLAN_MODE_BRIDGE;
	else if (streq(mode, "vepa"))
		*out = MACVLAN_MODE_VEPA;
	else if (streq(mode, "private"))
		*out = MACVLAN_MODE_PRIVATE;
	else if (streq(mode, "passthru"))
		*out = MACVLAN_MODE_PASSTHRU;
	else
		return -EINVAL;
	return 0;
}

static bool name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	return n > 0 && n < IFNAMSIZ && !strchr(name, '/') && !strchr(name, ' ');
}

static int validate(const struct weft_dp_macvlan *att, uint32_t *mode, char **errmsg)
{
	if (!att || !att->netns_path || !*att->netns_path)
		return dp_fail(errmsg, -EINVAL, NULL, "macvlan: no netns path");
	if (!name_ok(att->ifname))
		return dp_fail(errmsg, -EINVAL, NULL, "macvlan: bad interface name \"%s\"",
			       att->ifname ? att->ifname : "");
	if (!name_ok(att->master))
		return dp_fail(errmsg, -EINVAL, NULL, "macvlan: bad master \"%s\"", att->master ? att->master : "");
	if (parse_mode(att->mode, mode) < 0)
		return dp_fail(errmsg, -EINVAL, NULL, "macvlan: unknown mode \"%s\"", att->mode);
	if (att->naddrs > WEFT_DP_MAX_ADDRS || att->nroutes > WEFT_DP_MAX_ROUTES)
		return dp_fail(errmsg, -EINVAL, NULL, "macvlan: too many addresses or routes");
	for (size_t i = 0; i < att->naddrs; i++)
		if ((att->addrs[i].ip.family != AF_INET && att->addrs[i].ip.family != AF_INET6) ||
		    att->addrs[i].prefixlen > weft_ip_bits(&att->addrs[i].ip))
			return dp_fail(errmsg, -EINVAL, NULL, "macvlan: bad address %zu", i);
	for (size_t i = 0; i < att->nroutes; i++) {
		const struct weft_dp_route *rt = &att->routes[i];
		if (rt->dst.ip.family != AF_INET && rt->dst.ip.family != AF_INET6)
			return dp_fail(errmsg, -EINVAL, NULL, "macvlan: bad route %zu", i);
		if (rt->gw.family && rt->gw.family != rt->dst.ip.family)
			return dp_fail(errmsg, -EINVAL, NULL, "macvlan: route %zu mixes families", i);
	}
	return 0;
}

/* The routes to program in the pod: the listed ones (their gateway, else
 * the attachment's gateway of the same family, else a device route). The
 * gateway alone adds no default route, as with the reference macvlan
 * plugin and whereabouts: a secondary attachment (Multus) must not take
 * the default route of the pod's main interface; a default route through
 * the macvlan is asked for by listing 0.0.0.0/0 (::/0). */
static size_t pod_routes(const struct weft_dp_macvlan *att, int oif, struct weft_route *out)
{
	size_t n = 0;

	for (size_t i = 0; i < att->nroutes; i++) {
		const struct weft_dp_route *rt = &att->routes[i];
		struct weft_route r = {.dst = rt->dst, .oif = oif};

		weft_cidr_mask(&r.dst);
		if (rt->gw.family)
			r.gateway = rt->gw;
		else if (att->gateway.family == rt->dst.ip.family)
			r.gateway = att->gateway;
		else
			r.scope = RT_SCOPE_LINK;
		out[n++] = r;
	}
	return n;
}

static int pod_setup(struct weft_nl *pnl, const struct weft_dp_macvlan *att, struct weft_link *pod, char **errmsg)
{
	struct weft_route routes[WEFT_DP_MAX_ROUTES + 1];
	size_t nroutes;
	char s[WEFT_CIDR_STRLEN];
	int r;

	r = weft_nl_link_get(pnl, att->ifname, pod);
	if (r < 0)
		return dp_fail(errmsg, r, pnl, "find %s in %s", att->ifname, att->netns_path);
	for (size_t i = 0; i < att->naddrs; i++) {
		struct weft_addr a = {
			.ifindex = pod->ifindex,
			.local = att->addrs[i],
			.flags = att->addrs[i].ip.family == AF_INET6 ? IFA_F_NODAD : 0,
		};

		r = weft_nl_addr_add(pnl, &a);
		if (r < 0)
			return dp_fail(errmsg, r, pnl, "add address %s to %s in pod",
				       weft_cidr_str(&att->addrs[i], s, sizeof(s)), att->ifname);
	}
	r = weft_nl_link_set_up(pnl, pod->ifindex, true);
	if (r < 0)
		return dp_fail(errmsg, r, pnl, "set %s up in pod", att->ifname);
	nroutes = pod_routes(att, pod->ifindex, routes);
	for (size_t i = 0; i < nroutes; i++) {
		/* Added, never replaced: an IPv4 replace takes over whatever
		 * route has the key, such as the main interface's default. */
		r = weft_nl_route_add(pnl, &routes[i]);
		if (r == -EEXIST)
			return dp_fail(errmsg, r, NULL, "route %s in pod: the pod has a route for it already (another "
					"interface's?)",
					weft_cidr_str(&routes[i].dst, s, sizeof(s)));
		if (r < 0)
			return dp_fail(errmsg, r, pnl, "add route %s dev %s in pod",
				       weft_cidr_str(&routes[i].dst, s, sizeof(s)), att->ifname);
	}
	return 0;
}

int weft_dp_macvlan_add(const struct weft_dp_macvlan *att, struct weft_dp_result *out, char **errmsg)
{
	_cleanup_nl_ struct weft_nl *nl = NULL;
	_cleanup_nl_ struct weft_nl *pnl = NULL;
	_cleanup_close_ int nsfd = -1;
	struct weft_dp_result res = {0};
	struct weft_link master, pod;
	uint32_t mode;
	int r;

	r = validate(att, &mode, errmsg);
	if (r < 0)
		return r;
	r = weft_nl_open(NETLINK_ROUTE, 0, &nl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket");
	r = weft_nl_link_get(nl, att->master, &master);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "find master %s", att->master);
	nsfd = dp_netns_open(att->netns_path);
	if (nsfd < 0)
		return dp_fail(errmsg, nsfd, NULL, "open netns %s", att->netns_path);
	r = dp_nl_open_in(nsfd, &pnl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket in netns %s", att->netns_path);
	r = dp_macvlan_create(nl, att->ifname, master.ifindex, mode, nsfd, att->mtu);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "create macvlan %s on %s in %s", att->ifname, att->master,
			       att->netns_path);
	r = pod_setup(pnl, att, &pod, errmsg);
	if (r < 0) {
		dp_link_delete_name(pnl, att->ifname, "macvlan");
		return r;
	}
	memcpy(res.pod_mac, pod.mac, 6);
	res.pod_ifindex = pod.ifindex;
	if (out)
		*out = res;
	return 0;
}

int weft_dp_macvlan_del(const char *netns_path, const char *ifname, char **errmsg)
{
	_cleanup_nl_ struct weft_nl *pnl = NULL;
	_cleanup_close_ int nsfd = -1;
	int r;

	if (!netns_path || !*netns_path)
		return 0;
	if (!name_ok(ifname))
		return dp_fail(errmsg, -EINVAL, NULL, "macvlan: bad interface name");
	nsfd = dp_netns_open(netns_path);
	/* The namespace is gone, and the macvlan with it (-EINVAL: a file
	 * that is no namespace is left where it was mounted). */
	if (nsfd == -ENOENT || nsfd == -EINVAL)
		return 0;
	if (nsfd < 0)
		return dp_fail(errmsg, nsfd, NULL, "open netns %s", netns_path);
	r = dp_nl_open_in(nsfd, &pnl);
	/* setns() refuses a file that is no namespace (any more: a file left
	 * where the namespace was mounted): nothing of ours can be in it. */
	if (r == -EINVAL)
		return 0;
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket in netns %s", netns_path);
	r = dp_link_delete_name(pnl, ifname, "macvlan");
	if (r < 0)
		return dp_fail(errmsg, r, pnl, "delete %s in %s", ifname, netns_path);
	return 0;
}

static bool route_in(const struct weft_route *v, size_t n, const struct weft_route *want)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].dst.prefixlen == want->dst.prefixlen && weft_ip_eq(&v[i].dst.ip, &want->dst.ip) &&
		    v[i].oif == want->oif &&
		    (want->gateway.family ? weft_ip_eq(&v[i].gateway, &want->gateway) : !v[i].gateway.family))
			return true;
	return false;
}

int weft_dp_macvlan_check(const struct weft_dp_macvlan *att, char **errmsg)
{
	_cleanup_nl_ struct weft_nl *pnl = NULL;
	_cleanup_close_ int nsfd = -1;
	_cleanup_free_ struct weft_addr *addrs = NULL;
	_cleanup_free_ struct weft_route *have = NULL;
	struct weft_route want[WEFT_DP_MAX_ROUTES + 1];
	size_t naddrs = 0, nhave = 0, nwant;
	struct weft_link pod;
	char s[WEFT_CIDR_STRLEN];
	uint32_t mode;
	int r;

	r = validate(att, &mode, errmsg);
	if (r < 0)
		return r;
	nsfd = dp_netns_open(att->netns_path);
	if (nsfd < 0)
		return dp_fail(errmsg, nsfd, NULL, "open netns %s", att->netns_path);
	r = dp_nl_open_in(nsfd, &pnl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket in netns %s", att->netns_path);
	r = weft_nl_link_get(pnl, att->ifname, &pod);
	if (r < 0)
		return dp_fail(errmsg, r == -ENODEV ? -ENOENT : r, pnl, "%s in %s", att->ifname, att->netns_path);
	if (!streq(pod.kind, "macvlan"))
		return dp_fail(errmsg, -EINVAL, NULL, "%s in pod is a \"%s\", not a macvlan", att->ifname, pod.kind);
	if (!(pod.flags & IFF_UP))
		return dp_fail(errmsg, -EINVAL, NULL, "%s in pod is down", att->ifname);
	if (att->mtu && pod.mtu != att->mtu)
		return dp_fail(errmsg, -EINVAL, NULL, "%s in pod has mtu %u, want %u", att->ifname, pod.mtu, att->mtu);
	r = dp_addr_list(pnl, pod.ifindex, &addrs, &naddrs);
	if (r < 0)
		return dp_fail(errmsg, r, pnl, "list addresses in pod");
	for (size_t i = 0; i < att->naddrs; i++) {
		bool found = false;

		for (size_t k = 0; k < naddrs && !found; k++)
			found = addrs[k].local.prefixlen == att->addrs[i].prefixlen &&
				weft_ip_eq(&addrs[k].local.ip, &att->addrs[i].ip);
		if (!found)
			return dp_fail(errmsg, -ENOENT, NULL, "address %s on %s in pod",
				       weft_cidr_str(&att->addrs[i], s, sizeof(s)), att->ifname);
	}
	r = dp_route_list(pnl, AF_UNSPEC, -1, &have, &nhave);
	if (r < 0)
		return dp_fail(errmsg, r, pnl, "list routes in pod");
	nwant = pod_routes(att, pod.ifindex, want);
	for (size_t i = 0; i < nwant; i++)
		if (!route_in(have, nhave, &want[i]))
			return dp_fail(errmsg, -ENOENT, NULL, "route %s dev %s in pod",
				       weft_cidr_str(&want[i].dst, s, sizeof(s)), att->ifname);
	return 0;
}
