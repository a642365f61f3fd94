/* dp-sweep.c - remove weft-owned node objects no endpoint accounts for.
 *
 * Owned means: a link named WEFT_DP_IFPREFIX + 11 hex digits (any kind),
 * an ifb named WEFT_DP_IFBPREFIX + 11 hex digits, and a unicast route in
 * the main table with protocol WEFT_DP_RTPROTO. Such a route is kept only
 * while its device is a kept host veth. Blackhole/unreachable routes with
 * weft's protocol (the BGP side may use them for blocks) are not touched,
 * nor are routes on the VXLAN device (WEFT_DP_VXLAN_IFNAME):
 * weft_dp_vxlan_set_peers() reconciles those against the peer set.
 */
#include "felix/dp-internal.h"
#include "lib/log.h"

static bool kept(const char *name, const char *const *keep, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (keep[i] && streq(keep[i], name))
			return true;
	return false;
}

int weft_dp_sweep(const char *const *keep, size_t n, char **errmsg)
{
	_cleanup_nl_ struct weft_nl *nl = NULL;
	_cleanup_free_ struct weft_link *links = NULL;
	_cleanup_free_ struct weft_route *routes = NULL;
	_cleanup_free_ int *kept_idx = NULL;
	size_t nlinks = 0, nroutes = 0, nkept = 0;
	bool intr = false;
	int removed = 0, r;

	r = weft_nl_open(NETLINK_ROUTE, 0, &nl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket");
	/* The devices whose routes stay, each looked up by name: not from the
	 * dump below, which links coming and going beside weftd (kubelet,
	 * another plugin) may leave inconsistent. */
	kept_idx = wcalloc(n + 2, sizeof(int));
	for (size_t i = 0; i <= n; i++) {
		const char *name = i < n ? keep[i] : WEFT_DP_VXLAN_IFNAME;
		int idx;

		r = weft_nl_link_index(nl, name, &idx);
		if (r == -ENODEV)
			continue;
		if (r < 0)
			return dp_fail(errmsg, r, nl, "look up %s", name);
		kept_idx[nkept++] = idx;
	}
	/* Nothing is being set up while the sweep runs (weftd serves no ADD
	 * yet), so a dump that changes keep interrupting is used all the same:
	 * whatever it lists existed, and what it missed is swept next time. */
	r = dp_link_list(nl, &links, &nlinks, &intr);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "list links");
	if (intr)
		log_debug("sweep: the link dump kept being interrupted by changes; using the last one");
	for (size_t i = 0; i < nlinks; i++) {
		const struct weft_link *l = &links[i];
		char host[IFNAMSIZ];
		bool del = false;

		if (streq(l->name, WEFT_DP_VXLAN_IFNAME))
			continue;
		if (dp_is_weft_name(l->name, WEFT_DP_IFPREFIX)) {
			del = !kept(l->name, keep, n);
		} else if (dp_is_weft_name(l->name, WEFT_DP_IFBPREFIX) && streq(l->kind, "ifb")) {
			snprintf(host, sizeof(host), "%s%s", WEFT_DP_IFPREFIX, l->name + strlen(WEFT_DP_IFBPREFIX));
			del = !kept(host, keep, n);
		}
		if (!del)
			continue;
		r = weft_nl_link_delete(nl, l->ifindex);
		if (r == -ENODEV) /* a veth peer deleted a moment ago */
			continue;
		if (r < 0)
			return dp_fail(errmsg, r, nl, "delete %s", l->name);
		removed++;
	}
	/* Listed after the links: routes through deleted veths went with them. */
	r = dp_route_list_intr(nl, AF_UNSPEC, WEFT_DP_RTPROTO, &routes, &nroutes, &intr);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "list routes");
	for (size_t i = 0; i < nroutes; i++) {
		const struct weft_route *rt = &routes[i];
		bool keep_it = false;
		char s[WEFT_CIDR_STRLEN];

		if (rt->protocol != WEFT_DP_RTPROTO || (rt->type && rt->type != RTN_UNICAST))
			continue;
		for (size_t k = 0; k < nkept && !keep_it; k++)
			keep_it = rt->oif > 0 && rt->oif == kept_idx[k];
		if (keep_it)
			continue;
		r = weft_nl_route_del(nl, rt);
		if (r == -ESRCH)
			continue;
		if (r < 0)
			return dp_fail(errmsg, r, nl, "delete route %s", weft_cidr_str(&rt->dst, s, sizeof(s)));
		removed++;
	}
	return removed;
}
