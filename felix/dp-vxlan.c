/* dp-vxlan.c - the node's VXLAN device and its per-remote-node entries
 * (Calico's VXLAN mode: vxlan.calico, VNI 4096, port 4789, learning off).
 *
 * A packet for a remote block is routed "via <remote tunnel IP> onlink dev
 * weft.vxlan"; the permanent neighbour entry turns the tunnel IP into the
 * remote VTEP MAC without ARP, and the FDB entry of that MAC names the
 * remote node's underlay address as the outer destination. Nothing is
 * learned or flooded, so the three entries per peer are the whole truth
 * and set_peers can reconcile them by dump-and-compare.
 */
#include "felix/dp-internal.h"
#include "lib/util.h"
#include "lib/log.h"

#include <linux/if_link.h>
#include <linux/neighbour.h>

#define DP_REQ_WORDS 512

_Static_assert(sizeof(WEFT_DP_VXLAN_IFNAME) <= IFNAMSIZ, "VXLAN device name longer than 15 characters");

void weft_dp_vxlan_mac(const char *node_name, uint8_t out[6])
{
	uint64_t h = node_name ? weft_fnv1a(node_name, strlen(node_name), WEFT_FNV_INIT) : WEFT_FNV_INIT;

	for (int i = 0; i < 6; i++)
		out[i] = (uint8_t)(h >> (56 - 8 * i));
	/* Locally administered, unicast. */
	out[0] = (uint8_t)((out[0] & 0xfc) | 0x02);
}

/* ---- the device ---- */

struct vxlan_info {
	struct weft_link link;
	bool is_vxlan;
	uint32_t vni;
	uint16_t port; /* host order */
	struct weft_ip local;
	int parent;
	bool learning;
};

static int vxlan_info_cb(const struct nlmsghdr *nlh, void *data)
{
	static const enum mnl_attr_data_type policy[IFLA_MAX + 1] = {0};
	static const enum mnl_attr_data_type ipolicy[IFLA_INFO_MAX + 1] = {0};
	static const enum mnl_attr_data_type vpolicy[IFLA_VXLAN_MAX + 1] = {0};
	const struct nlattr *tb[IFLA_MAX + 1], *info[IFLA_INFO_MAX + 1], *vx[IFLA_VXLAN_MAX + 1];
	struct vxlan_info *v = data;

	if (weft_nl_link_parse(nlh, &v->link) < 0)
		return 0;
	v->is_vxlan = streq(v->link.kind, "vxlan");
	if (!v->is_vxlan)
		return 0;
	if (weft_nl_attr_parse(nlh, sizeof(struct ifinfomsg), policy, IFLA_MAX, tb) < 0 || !tb[IFLA_LINKINFO])
		return 0;
	if (weft_nl_attr_parse_nested(tb[IFLA_LINKINFO], ipolicy, IFLA_INFO_MAX, info) < 0 || !info[IFLA_INFO_DATA])
		return 0;
	if (weft_nl_attr_parse_nested(info[IFLA_INFO_DATA], vpolicy, IFLA_VXLAN_MAX, vx) < 0)
		return 0;
	if (vx[IFLA_VXLAN_ID] && mnl_attr_get_payload_len(vx[IFLA_VXLAN_ID]) == 4)
		v->vni = mnl_attr_get_u32(vx[IFLA_VXLAN_ID]);
	if (vx[IFLA_VXLAN_PORT] && mnl_attr_get_payload_len(vx[IFLA_VXLAN_PORT]) == 2)
		v->port = ntohs(mnl_attr_get_u16(vx[IFLA_VXLAN_PORT]));
	if (vx[IFLA_VXLAN_LOCAL])
		weft_nl_attr_get_ip(vx[IFLA_VXLAN_LOCAL], AF_INET, &v->local);
	if (vx[IFLA_VXLAN_LINK] && mnl_attr_get_payload_len(vx[IFLA_VXLAN_LINK]) == 4)
		v->parent = (int)mnl_attr_get_u32(vx[IFLA_VXLAN_LINK]);
	if (vx[IFLA_VXLAN_LEARNING] && mnl_attr_get_payload_len(vx[IFLA_VXLAN_LEARNING]) == 1)
		v->learning = mnl_attr_get_u8(vx[IFLA_VXLAN_LEARNING]) != 0;
	return 0;
}

/* Returns 0 (found), -ENODEV or another negative errno. */
static int vxlan_get(struct weft_nl *nl, struct vxlan_info *out)
{
	uint64_t buf[DP_REQ_WORDS];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	int r;

	memset(out, 0, sizeof(*out));
	nlh->nlmsg_type = RTM_GETLINK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, WEFT_DP_VXLAN_IFNAME);
	r = weft_nl_transact(nl, nlh, vxlan_info_cb, out);
	if (r == 0 && out->link.ifindex <= 0)
		r = -ENODEV;
	return r;
}

static int vxlan_create(struct weft_nl *nl, uint32_t vni, uint16_t port, const struct weft_ip *local, int parent,
			unsigned mtu, const uint8_t mac[6])
{
	uint64_t buf[DP_REQ_WORDS];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nlattr *linkinfo, *data;
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, WEFT_DP_VXLAN_IFNAME);
	mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "vxlan");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	mnl_attr_put_u32(nlh, IFLA_VXLAN_ID, vni);
	mnl_attr_put_u16(nlh, IFLA_VXLAN_PORT, htons(port));
	weft_nl_attr_put_ip(nlh, IFLA_VXLAN_LOCAL, local);
	if (parent > 0)
		mnl_attr_put_u32(nlh, IFLA_VXLAN_LINK, (uint32_t)parent);
	/* No learning: every remote MAC is a permanent FDB entry weft owns. */
	mnl_attr_put_u8(nlh, IFLA_VXLAN_LEARNING, 0);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, linkinfo);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

/* Bring the device's MAC, MTU, IPv4 addresses and state in line. */
static int vxlan_reconcile(struct weft_nl *nl, const struct vxlan_info *v, const uint8_t mac[6], unsigned mtu,
			   const struct weft_ip *tunnel, char **errmsg)
{
	_cleanup_free_ struct weft_addr *addrs = NULL;
	size_t naddrs = 0;
	bool have = false;
	char s[WEFT_CIDR_STRLEN], fwd[8];
	int ifindex = v->link.ifindex, r;

	if (!v->link.has_mac || memcmp(v->link.mac, mac, 6) != 0) {
		r = dp_link_set_mac(nl, ifindex, mac);
		if (r < 0)
			return dp_fail(errmsg, r, nl, "set MAC of %s", WEFT_DP_VXLAN_IFNAME);
	}
	if (v->link.mtu != mtu) {
		r = weft_nl_link_set_mtu(nl, ifindex, mtu);
		if (r < 0)
			return dp_fail(errmsg, r, nl, "set MTU %u on %s", mtu, WEFT_DP_VXLAN_IFNAME);
	}
	r = dp_addr_list(nl, ifindex, &addrs, &naddrs);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "list addresses of %s", WEFT_DP_VXLAN_IFNAME);
	for (size_t i = 0; i < naddrs; i++) {
		const struct weft_addr *a = &addrs[i];

		if (a->local.ip.family != AF_INET)
			continue; /* the kernel's IPv6 link-local address stays */
		if (tunnel->family == AF_INET && a->local.prefixlen == 32 && weft_ip_eq(&a->local.ip, tunnel)) {
			have = true;
			continue;
		}
		r = weft_nl_addr_del(nl, a);
		if (r < 0 && r != -EADDRNOTAVAIL)
			return dp_fail(errmsg, r, nl, "delete address %s from %s",
				       weft_cidr_str(&a->local, s, sizeof(s)), WEFT_DP_VXLAN_IFNAME);
	}
	if (tunnel->family == AF_INET && !have) {
		struct weft_addr a = {.ifindex = ifindex, .local = {.ip = *tunnel, .prefixlen = 32}};

		r = weft_nl_addr_add(nl, &a);
		if (r < 0)
			return dp_fail(errmsg, r, nl, "add address %s to %s", weft_cidr_str(&a.local, s, sizeof(s)),
				       WEFT_DP_VXLAN_IFNAME);
	}
	/* Decapsulated packets for local pods are forwarded from this device:
	 * IPv4 checks the forwarding flag of the interface a packet came in
	 * on (as for the host veths, no node-wide setting is needed). */
	r = dp_sysctl_read("ipv4/conf/" WEFT_DP_VXLAN_IFNAME "/forwarding", fwd, sizeof(fwd));
	if (r < 0 || !streq(fwd, "1"))
		r = dp_sysctl_write("ipv4/conf/" WEFT_DP_VXLAN_IFNAME "/forwarding", "1");
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "set forwarding on %s", WEFT_DP_VXLAN_IFNAME);
	if (!(v->link.flags & IFF_UP)) {
		r = weft_nl_link_set_up(nl, ifindex, true);
		if (r < 0)
			return dp_fail(errmsg, r, nl, "set %s up", WEFT_DP_VXLAN_IFNAME);
	}
	return 0;
}

int weft_dp_vxlan_ensure(const struct weft_dp_vxlan_dev *dev, char **errmsg)
{
	_cleanup_nl_ struct weft_nl *nl = NULL;
	struct vxlan_info v;
	struct weft_link parent = {0};
	uint32_t vni = dev->vni ? dev->vni : WEFT_DP_VXLAN_VNI;
	uint16_t port = dev->port ? dev->port : WEFT_DP_VXLAN_PORT;
	unsigned mtu = dev->mtu;
	uint8_t mac[6];
	bool created = false;
	char s[WEFT_IP_STRLEN];
	int r;

	if (!dev->node_name || !*dev->node_name || dev->local.family != AF_INET || vni >= (1u << 24) ||
	    (dev->tunnel_addr.family && dev->tunnel_addr.family != AF_INET))
		return dp_fail(errmsg, -EINVAL, NULL, "VXLAN device: need a node name, an IPv4 underlay "
			       "address, a VNI below 2^24 and an IPv4 tunnel address");
	r = weft_nl_open(NETLINK_ROUTE, 0, &nl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket");
	if (dev->parent && *dev->parent) {
		r = weft_nl_link_get(nl, dev->parent, &parent);
		if (r < 0)
			return dp_fail(errmsg, r, nl, "VXLAN parent device %s", dev->parent);
	}
	if (!mtu)
		mtu = (parent.ifindex > 0 ? parent.mtu : 1500) - WEFT_DP_VXLAN_OVERHEAD;
	weft_dp_vxlan_mac(dev->node_name, mac);

	r = vxlan_get(nl, &v);
	if (r < 0 && r != -ENODEV)
		return dp_fail(errmsg, r, nl, "look up %s", WEFT_DP_VXLAN_IFNAME);
	/* The caller could not tell the parent this time: what the device
	 * has stays (deleting it for that would cut every peer off). */
	if (r == 0 && v.is_vxlan && dev->keep_parent && !(dev->parent && *dev->parent)) {
		parent.ifindex = v.parent;
		if (!dev->mtu)
			mtu = v.link.mtu;
	}
	if (r == 0 && (!v.is_vxlan || v.vni != vni || v.port != port || !weft_ip_eq(&v.local, &dev->local) ||
		       v.parent != parent.ifindex || v.learning)) {
		/* These cannot be changed on a live device portably: start over. */
		log_debug("recreating %s (kind %s vni %u port %u local %s)", WEFT_DP_VXLAN_IFNAME, v.link.kind,
			  v.vni, v.port, v.local.family ? weft_ip_str(&v.local, s, sizeof(s)) : "-");
		r = weft_nl_link_delete(nl, v.link.ifindex);
		if (r < 0 && r != -ENODEV)
			return dp_fail(errmsg, r, nl, "delete stale %s", WEFT_DP_VXLAN_IFNAME);
		r = -ENODEV;
	}
	if (r == -ENODEV) {
		r = vxlan_create(nl, vni, port, &dev->local, parent.ifindex, mtu, mac);
		if (r < 0)
			return dp_fail(errmsg, r, nl, "create %s (vni %u port %u local %s)", WEFT_DP_VXLAN_IFNAME,
				       vni, port, weft_ip_str(&dev->local, s, sizeof(s)));
		created = true;
		r = vxlan_get(nl, &v);
		if (r < 0) {
			dp_fail(errmsg, r, nl, "look up %s after creating it", WEFT_DP_VXLAN_IFNAME);
			goto undo;
		}
	}
	r = vxlan_reconcile(nl, &v, mac, mtu, &dev->tunnel_addr, errmsg);
	if (r < 0)
		goto undo;
	return created ? 1 : 0;
undo:
	if (created)
		dp_link_delete_name(nl, WEFT_DP_VXLAN_IFNAME, "vxlan");
	return r;
}

int weft_dp_vxlan_remove(void)
{
	_cleanup_nl_ struct weft_nl *nl = NULL;
	int r = weft_nl_open(NETLINK_ROUTE, 0, &nl);

	if (r < 0)
		return r;
	return dp_link_delete_name(nl, WEFT_DP_VXLAN_IFNAME, "vxlan");
}

/* ---- FDB and neighbour dumps ---- */

struct nd_entry {
	struct weft_ip ip; /* family 0: no NDA_DST */
	uint8_t mac[6];
	bool has_mac;
	uint16_t state;
};

struct nd_list {
	int ifindex;
	int family; /* of the ndmsg: AF_BRIDGE (FDB) or AF_INET */
	struct nd_entry *v;
	size_t n;
};

static int nd_cb(const struct nlmsghdr *nlh, void *data)
{
	static const enum mnl_attr_data_type policy[NDA_MAX + 1] = {0};
	const struct nlattr *tb[NDA_MAX + 1];
	struct nd_list *l = data;
	const struct ndmsg *ndm;
	struct nd_entry e = {0};

	if (nlh->nlmsg_type != RTM_NEWNEIGH || mnl_nlmsg_get_payload_len(nlh) < sizeof(*ndm))
		return 0;
	ndm = mnl_nlmsg_get_payload(nlh);
	if (ndm->ndm_ifindex != l->ifindex || ndm->ndm_family != l->family)
		return 0;
	if (weft_nl_attr_parse(nlh, sizeof(*ndm), policy, NDA_MAX, tb) < 0)
		return 0;
	if (tb[NDA_DST]) {
		/* An FDB entry's destination is IPv4 or IPv6 by its length. */
		int fam = mnl_attr_get_payload_len(tb[NDA_DST]) == 16 ? AF_INET6 : AF_INET;

		if (weft_nl_attr_get_ip(tb[NDA_DST], fam, &e.ip) < 0)
			return 0;
	}
	if (tb[NDA_LLADDR] && mnl_attr_get_payload_len(tb[NDA_LLADDR]) == 6) {
		memcpy(e.mac, mnl_attr_get_payload(tb[NDA_LLADDR]), 6);
		e.has_mac = true;
	}
	e.state = ndm->ndm_state;
	l->v = wrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = e;
	return 0;
}

static int nd_dump(struct weft_nl *nl, int family, int ifindex, struct nd_list *out)
{
	uint64_t buf[DP_REQ_WORDS];
	int r = -EAGAIN;

	out->ifindex = ifindex;
	out->family = family;
	for (int i = 0; i < 5 && r == -EAGAIN; i++) {
		struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
		struct ndmsg *ndm;

		free(out->v);
		out->v = NULL;
		out->n = 0;
		nlh->nlmsg_type = RTM_GETNEIGH;
		ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
		ndm->ndm_family = (uint8_t)family;
		/* Strict checking: the FDB dump filters on the header's index,
		 * the neighbour dump only on NDA_IFINDEX; nd_cb filters too. */
		if (family == AF_BRIDGE)
			ndm->ndm_ifindex = ifindex;
		else
			mnl_attr_put_u32(nlh, NDA_IFINDEX, (uint32_t)ifindex);
		r = weft_nl_dump(nl, nlh, nd_cb, out);
	}
	if (r < 0) {
		free(out->v);
		out->v = NULL;
		out->n = 0;
	}
	return r;
}

/* RTM_NEWNEIGH (replace) or RTM_DELNEIGH of one FDB entry mac -> dst. */
static int fdb_change(struct weft_nl *nl, uint16_t type, int ifindex, const uint8_t mac[6], const struct weft_ip *dst)
{
	uint64_t buf[DP_REQ_WORDS];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ndmsg *ndm;

	nlh->nlmsg_type = type;
	if (type == RTM_NEWNEIGH)
		nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
	ndm->ndm_family = AF_BRIDGE;
	ndm->ndm_ifindex = ifindex;
	ndm->ndm_flags = NTF_SELF;
	ndm->ndm_state = type == RTM_NEWNEIGH ? NUD_PERMANENT : 0;
	mnl_attr_put(nlh, NDA_LLADDR, 6, mac);
	if (dst && dst->family)
		weft_nl_attr_put_ip(nlh, NDA_DST, dst);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

static int neigh_del(struct weft_nl *nl, int ifindex, const struct weft_ip *ip)
{
	uint64_t buf[DP_REQ_WORDS];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ndmsg *ndm;

	nlh->nlmsg_type = RTM_DELNEIGH;
	ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
	ndm->ndm_family = (uint8_t)ip->family;
	ndm->ndm_ifindex = ifindex;
	weft_nl_attr_put_ip(nlh, NDA_DST, ip);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

static void mac_str(const uint8_t m[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* ---- set_peers ---- */

static int check_peers(const struct weft_dp_vxlan_peer *peers, size_t n, char **errmsg)
{
	char s[WEFT_CIDR_STRLEN], m[18];

	for (size_t i = 0; i < n; i++) {
		const struct weft_dp_vxlan_peer *p = &peers[i];

		if (p->underlay.family != AF_INET || p->tunnel.family != AF_INET || (p->nblocks && !p->blocks))
			return dp_fail(errmsg, -EINVAL, NULL, "VXLAN peer %zu: underlay and tunnel address must be IPv4", i);
		if (p->mac[0] & 1)
			return dp_fail(errmsg, -EINVAL, NULL, "VXLAN peer %zu: multicast MAC %s", i, (mac_str(p->mac, m), m));
		for (size_t b = 0; b < p->nblocks; b++) {
			struct weft_cidr c = p->blocks[b];

			weft_cidr_mask(&c);
			if (c.ip.family != AF_INET || c.prefixlen > 32 || !weft_ip_eq(&c.ip, &p->blocks[b].ip))
				return dp_fail(errmsg, -EINVAL, NULL, "VXLAN peer %zu: block %s is not an IPv4 network", i,
					       p->blocks[b].ip.family ? weft_cidr_str(&p->blocks[b], s, sizeof(s)) : "?");
		}
		for (size_t j = 0; j < i; j++) {
			if (weft_ip_eq(&peers[j].tunnel, &p->tunnel))
				return dp_fail(errmsg, -EINVAL, NULL, "VXLAN peers %zu and %zu share tunnel address %s", j,
					       i, weft_ip_str(&p->tunnel, s, sizeof(s)));
			if (memcmp(peers[j].mac, p->mac, 6) == 0)
				return dp_fail(errmsg, -EINVAL, NULL, "VXLAN peers %zu and %zu share VTEP MAC %s", j, i,
					       (mac_str(p->mac, m), m));
		}
	}
	return 0;
}

static int sync_fdb(struct weft_nl *nl, int ifindex, const struct weft_dp_vxlan_peer *peers, size_t n, char **errmsg)
{
	struct nd_list l = {0};
	char m[18], s[WEFT_IP_STRLEN];
	int changes = 0, r;

	r = nd_dump(nl, AF_BRIDGE, ifindex, &l);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "dump FDB of %s", WEFT_DP_VXLAN_IFNAME);
	/* Add or fix first, so a peer whose underlay address moved keeps a
	 * working entry throughout (replace rewrites the entry in place). */
	for (size_t i = 0; i < n; i++) {
		bool ok = false;

		for (size_t k = 0; k < l.n && !ok; k++)
			ok = l.v[k].has_mac && memcmp(l.v[k].mac, peers[i].mac, 6) == 0 &&
			     weft_ip_eq(&l.v[k].ip, &peers[i].underlay) && (l.v[k].state & NUD_PERMANENT);
		if (ok)
			continue;
		r = fdb_change(nl, RTM_NEWNEIGH, ifindex, peers[i].mac, &peers[i].underlay);
		if (r < 0) {
			dp_fail(errmsg, r, nl, "add FDB entry %s dst %s", (mac_str(peers[i].mac, m), m),
				weft_ip_str(&peers[i].underlay, s, sizeof(s)));
			goto out;
		}
		changes++;
	}
	/* A replace rewrote an entry's remote in place, so what is stale is
	 * read afresh (deleting a remote the entry no longer has would be a
	 * silent no-op, not an error). */
	if (changes) {
		r = nd_dump(nl, AF_BRIDGE, ifindex, &l);
		if (r < 0) {
			dp_fail(errmsg, r, nl, "dump FDB of %s", WEFT_DP_VXLAN_IFNAME);
			goto out;
		}
	}
	for (size_t k = 0; k < l.n; k++) {
		bool want = false;

		for (size_t i = 0; i < n && !want; i++)
			want = l.v[k].has_mac && memcmp(l.v[k].mac, peers[i].mac, 6) == 0 &&
			       weft_ip_eq(&l.v[k].ip, &peers[i].underlay);
		if (want || !l.v[k].has_mac)
			continue;
		r = fdb_change(nl, RTM_DELNEIGH, ifindex, l.v[k].mac, &l.v[k].ip);
		/* Already gone, e.g. rewritten by the replace above. */
		if (r == -ENOENT || r == -ESRCH)
			continue;
		if (r < 0) {
			dp_fail(errmsg, r, nl, "delete FDB entry %s", (mac_str(l.v[k].mac, m), m));
			goto out;
		}
		changes++;
	}
	r = changes;
out:
	free(l.v);
	return r;
}

/* Add the peers' neighbour entries (stale false) or delete the permanent
 * ones no peer has (stale true): set_peers deletes only after the routes
 * moved, so that no route is left pointing at a tunnel address without an
 * entry. */
static int sync_neigh(struct weft_nl *nl, int ifindex, const struct weft_dp_vxlan_peer *peers, size_t n, bool stale,
		      char **errmsg)
{
	struct nd_list l = {0};
	char s[WEFT_IP_STRLEN];
	int changes = 0, r;

	r = nd_dump(nl, AF_INET, ifindex, &l);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "dump neighbours of %s", WEFT_DP_VXLAN_IFNAME);
	for (size_t i = 0; i < n && !stale; i++) {
		bool ok = false;

		for (size_t k = 0; k < l.n && !ok; k++)
			ok = weft_ip_eq(&l.v[k].ip, &peers[i].tunnel) && l.v[k].has_mac &&
			     memcmp(l.v[k].mac, peers[i].mac, 6) == 0 && (l.v[k].state & NUD_PERMANENT);
		if (ok)
			continue;
		r = weft_nl_neigh_add_permanent(nl, ifindex, &peers[i].tunnel, peers[i].mac);
		if (r < 0) {
			dp_fail(errmsg, r, nl, "add neighbour %s on %s", weft_ip_str(&peers[i].tunnel, s, sizeof(s)),
				WEFT_DP_VXLAN_IFNAME);
			goto out;
		}
		changes++;
	}
	/* Only permanent entries are weft's; the kernel ages out the rest. */
	for (size_t k = 0; k < l.n && stale; k++) {
		bool want = false;

		if (!(l.v[k].state & NUD_PERMANENT) || !l.v[k].ip.family)
			continue;
		for (size_t i = 0; i < n && !want; i++)
			want = weft_ip_eq(&l.v[k].ip, &peers[i].tunnel);
		if (want)
			continue;
		r = neigh_del(nl, ifindex, &l.v[k].ip);
		if (r == -ENOENT)
			continue;
		if (r < 0) {
			dp_fail(errmsg, r, nl, "delete neighbour %s on %s", weft_ip_str(&l.v[k].ip, s, sizeof(s)),
				WEFT_DP_VXLAN_IFNAME);
			goto out;
		}
		changes++;
	}
	r = changes;
out:
	free(l.v);
	return r;
}

/* The peer that owns block b: the first listing it. */
static bool first_owner(const struct weft_dp_vxlan_peer *peers, size_t pi, size_t bi)
{
	const struct weft_cidr *b = &peers[pi].blocks[bi];

	for (size_t i = 0; i <= pi; i++)
		for (size_t j = 0; j < peers[i].nblocks && !(i == pi && j >= bi); j++)
			if (peers[i].blocks[j].prefixlen == b->prefixlen && weft_ip_eq(&peers[i].blocks[j].ip, &b->ip))
				return false;
	return true;
}

static int sync_routes(struct weft_nl *nl, int ifindex, const struct weft_dp_vxlan_peer *peers, size_t n,
		       char **errmsg)
{
	_cleanup_free_ struct weft_route *all = NULL, *have = NULL;
	size_t nall = 0, nhave = 0;
	char s[WEFT_CIDR_STRLEN], g[WEFT_IP_STRLEN];
	int changes = 0, r;

	r = dp_route_list(nl, AF_INET, WEFT_DP_RTPROTO, &all, &nall);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "list routes");
	/* Only ours on the device (all of ours stay in all). */
	have = wcalloc(nall + 1, sizeof(*have));
	for (size_t k = 0; k < nall; k++)
		if (all[k].oif == ifindex && all[k].protocol == WEFT_DP_RTPROTO)
			have[nhave++] = all[k];

	for (size_t i = 0; i < n; i++) {
		for (size_t b = 0; b < peers[i].nblocks; b++) {
			struct weft_route rt = {
				.dst = peers[i].blocks[b],
				.gateway = peers[i].tunnel,
				.oif = ifindex,
				.protocol = WEFT_DP_RTPROTO,
			};
			bool ok = false, ours = false;

			if (!first_owner(peers, i, b)) {
				log_debug("VXLAN block %s listed twice; the first peer keeps it",
					  weft_cidr_str(&rt.dst, s, sizeof(s)));
				continue;
			}
			for (size_t k = 0; k < nhave && !ok; k++)
				ok = have[k].dst.prefixlen == rt.dst.prefixlen && weft_ip_eq(&have[k].dst.ip, &rt.dst.ip) &&
				     weft_ip_eq(&have[k].gateway, &rt.gateway) && have[k].priority == 0 &&
				     (!have[k].type || have[k].type == RTN_UNICAST);
			if (ok)
				continue;
			/* Replace only a route of ours with the same key (metric 0,
			 * main table: on the device, or a blackhole of a block that
			 * moved away); any other is added with NLM_F_EXCL, so that a
			 * route of another protocol is never taken over (an IPv4
			 * replace would swap it whatever its protocol). */
			for (size_t k = 0; k < nall && !ours; k++)
				ours = all[k].protocol == WEFT_DP_RTPROTO && all[k].priority == 0 &&
				       all[k].dst.prefixlen == rt.dst.prefixlen && weft_ip_eq(&all[k].dst.ip, &rt.dst.ip);
			r = ours ? dp_route_replace_onlink(nl, &rt) : dp_route_add_onlink(nl, &rt);
			if (r == -EEXIST) {
				/* Logged here: set_peers only returns a count. The next
				 * call tries again. */
				log_warn("VXLAN route %s via %s: another route with the same prefix and metric is in the "
					 "way; left alone",
					 weft_cidr_str(&rt.dst, s, sizeof(s)), weft_ip_str(&rt.gateway, g, sizeof(g)));
				continue;
			}
			if (r < 0)
				return dp_fail(errmsg, r, nl, "route %s via %s dev %s", weft_cidr_str(&rt.dst, s, sizeof(s)),
					       weft_ip_str(&rt.gateway, g, sizeof(g)),
					       WEFT_DP_VXLAN_IFNAME);
			changes++;
		}
	}
	for (size_t k = 0; k < nhave; k++) {
		bool want = false;

		for (size_t i = 0; i < n && !want; i++)
			for (size_t b = 0; b < peers[i].nblocks && !want; b++)
				want = have[k].dst.prefixlen == peers[i].blocks[b].prefixlen &&
				       weft_ip_eq(&have[k].dst.ip, &peers[i].blocks[b].ip) &&
				       weft_ip_eq(&have[k].gateway, &peers[i].tunnel) && have[k].priority == 0 &&
				       first_owner(peers, i, b);
		if (want)
			continue;
		r = weft_nl_route_del(nl, &have[k]);
		if (r == -ESRCH)
			continue;
		if (r < 0)
			return dp_fail(errmsg, r, nl, "delete route %s dev %s", weft_cidr_str(&have[k].dst, s, sizeof(s)),
				       WEFT_DP_VXLAN_IFNAME);
		changes++;
	}
	return changes;
}

int weft_dp_vxlan_set_peers(const struct weft_dp_vxlan_peer *peers, size_t n, char **errmsg)
{
	_cleanup_nl_ struct weft_nl *nl = NULL;
	int ifindex, changes = 0, r;

	if (n && !peers)
		return dp_fail(errmsg, -EINVAL, NULL, "VXLAN peers: NULL array");
	r = check_peers(peers, n, errmsg);
	if (r < 0)
		return r;
	r = weft_nl_open(NETLINK_ROUTE, 0, &nl);
	if (r < 0)
		return dp_fail(errmsg, r, NULL, "open netlink socket");
	r = weft_nl_link_index(nl, WEFT_DP_VXLAN_IFNAME, &ifindex);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "look up %s", WEFT_DP_VXLAN_IFNAME);
	/* FDB and neighbours before routes: a new route is usable at once. */
	r = sync_fdb(nl, ifindex, peers, n, errmsg);
	if (r < 0)
		return r;
	changes += r;
	r = sync_neigh(nl, ifindex, peers, n, false, errmsg);
	if (r < 0)
		return r;
	changes += r;
	r = sync_routes(nl, ifindex, peers, n, errmsg);
	if (r < 0)
		return r;
	changes += r;
	/* Stale neighbours last: the routes no longer use them. */
	r = sync_neigh(nl, ifindex, peers, n, true, errmsg);
	if (r < 0)
		return r;
	changes += r;
	if (changes)
		log_debug("%s: %d change(s) for %zu peer(s)", WEFT_DP_VXLAN_IFNAME, changes, n);
	return changes;
}
