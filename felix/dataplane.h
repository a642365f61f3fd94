/* dataplane.h - what weftd programs in the kernel for one workload
 * attachment: routed veth endpoints (Calico model), macvlan secondary
 * attachments, per-pod bandwidth limits, and the sweep of weft-owned
 * objects. Everything here works in the CURRENT network namespace (the
 * node's: weftd runs there) plus the pod namespace given by path; it never
 * changes the calling thread's namespace permanently.
 *
 * Ownership marks (so weft only ever touches its own objects):
 *  - host-side veths are named WEFT_DP_IFPREFIX + 11 hex digits;
 *  - routes weft programs carry protocol WEFT_DP_RTPROTO;
 *  - ifb devices for egress shaping are named "wfb" + the same 11 hex.
 *
 * Return convention: 0 or a negative errno; on failure *errmsg (when the
 * function has one) receives a malloc'ed one-line description, and the
 * function has undone what it did (no half-applied state).
 */
#ifndef WEFT_DATAPLANE_H
#define WEFT_DATAPLANE_H

#include "lib/ipaddr.h"

#include <net/if.h>

#define WEFT_DP_IFPREFIX "wft"
#define WEFT_DP_IFBPREFIX "wfb"
#define WEFT_DP_RTPROTO 81 /* Calico's felix uses 80, BIRD 12 */
#define WEFT_DP_GATEWAY "169.254.1.1"
#define WEFT_DP_GATEWAY6 "fe80::ecee:eeff:feee:eeee" /* link-local of ee:ee:ee:ee:ee:ee */
#define WEFT_DP_HOST_MAC "ee:ee:ee:ee:ee:ee"
#define WEFT_DP_MAX_ADDRS 8
#define WEFT_DP_MAX_ROUTES 16

/* The host-side name for (container id, ifname): WEFT_DP_IFPREFIX + the
 * first 11 hex digits of FNV-1a-64 of "<container_id>:<ifname>".
 * out must hold IFNAMSIZ bytes. */
void weft_dp_host_ifname(const char *container_id, const char *ifname, char out[IFNAMSIZ]);

struct weft_dp_bandwidth {
	uint64_t ingress_rate;  /* bit/s into the pod, 0 = unlimited */
	uint64_t ingress_burst; /* bits, 0 = a sensible default */
	uint64_t egress_rate;   /* bit/s out of the pod, 0 = unlimited */
	uint64_t egress_burst;
};

struct weft_dp_route {
	struct weft_cidr dst;
	struct weft_ip gw; /* family 0 = the attachment's default gateway */
};

struct weft_dp_routed {
	const char *netns_path; /* the pod's netns, e.g. /run/netns/X or /proc/PID/ns/net */
	const char *container_id;
	const char *ifname;     /* name inside the pod (CNI_IFNAME) */
	struct weft_ip addrs[WEFT_DP_MAX_ADDRS]; /* each becomes a /32 (/128) */
	size_t naddrs;
	unsigned mtu;           /* 0 = 1500 */
	struct weft_dp_bandwidth bw;
};

struct weft_dp_macvlan {
	const char *netns_path;
	const char *container_id;
	const char *ifname;
	const char *master;     /* parent interface in the node namespace */
	const char *mode;       /* bridge (default) | vepa | private | passthru */
	struct weft_cidr addrs[WEFT_DP_MAX_ADDRS]; /* with their subnet prefix */
	size_t naddrs;
	struct weft_ip gateway; /* family 0 = none */
	struct weft_dp_route routes[WEFT_DP_MAX_ROUTES];
	size_t nroutes;
	unsigned mtu;           /* 0 = the master's */
};

/* What was created, for the CNI result and the Endpoint record. */
struct weft_dp_result {
	char host_ifname[IFNAMSIZ]; /* routed only */
	uint8_t host_mac[6];
	uint8_t pod_mac[6];
	int pod_ifindex;
};

/* Is path a network namespace (CNI_NETNS)? 0, -EINVAL when it is
 * something else (a FIFO, a plain file, another kind of namespace), or
 * the error of opening it (-ENOENT...). Never blocks. */
int weft_dp_netns_check(const char *path);

/* Routed endpoint: veth pair created straight into the pod namespace (the
 * pod side named ifname, /32 addresses, default route via 169.254.1.1 with
 * a permanent neighbour entry for it -> host-side MAC), host side up with
 * MAC ee:ee:ee:ee:ee:ee, proxy_arp=1, neigh proxy_delay=0, forwarding=1,
 * route_localnet=1 (IPv6: proxy_ndp=1, accept_ra=0), one scope-link /32
 * route per address with protocol WEFT_DP_RTPROTO, and the bandwidth
 * limits. An existing attachment with the same names is replaced. */
int weft_dp_routed_add(const struct weft_dp_routed *ep, struct weft_dp_result *out, char **errmsg);
/* Remove it: host veth (and with it the pod side), its routes, shaping.
 * Idempotent: already gone is success. netns_path may be NULL or gone. */
int weft_dp_routed_del(const char *container_id, const char *ifname, char **errmsg);
/* Withdraw only its routes to addrs (the /32 or /128 through its host veth,
 * protocol WEFT_DP_RTPROTO) and leave the veth to weft_dp_routed_del():
 * weftd's asynchronous DEL does this before it releases the addresses, so
 * no address that another node may take next is still routed into a veth
 * waiting for deletion. A route through another device is never touched;
 * a veth or route already gone is success. */
int weft_dp_routed_unroute(const char *container_id, const char *ifname, const struct weft_ip *addrs, size_t n,
			   char **errmsg);
/* Verify the kernel matches ep (CNI CHECK): -ENOENT/-EINVAL + errmsg. */
int weft_dp_routed_check(const struct weft_dp_routed *ep, char **errmsg);

int weft_dp_macvlan_add(const struct weft_dp_macvlan *att, struct weft_dp_result *out, char **errmsg);
/* Idempotent; with netns gone it is success. */
int weft_dp_macvlan_del(const char *netns_path, const char *ifname, char **errmsg);
int weft_dp_macvlan_check(const struct weft_dp_macvlan *att, char **errmsg);

/* Sweep: delete every weft-owned host veth, ifb and WEFT_DP_RTPROTO route
 * in the node namespace whose host ifname is not in keep[] (n names).
 * Returns the number of objects removed, or a negative errno. */
int weft_dp_sweep(const char *const *keep, size_t n, char **errmsg);

/* Node-wide settings endpoints rely on, for weftd to call once at start
 * (added by the dataplane helper). IPv6 forwarding in Linux is gated by
 * net.ipv6.conf.all.forwarding (the per-interface value alone does not
 * forward), so with ipv6 this sets it to 1 in the node namespace; note
 * that a node forwarding IPv6 ignores router advertisements on interfaces
 * whose accept_ra is 1. IPv4 needs nothing node-wide: the host veths'
 * own forwarding=1 suffices. Returns 0 or a negative errno + errmsg. */
int weft_dp_node_prepare(bool ipv6, char **errmsg);


/* ---- VXLAN (Calico's VXLAN mode; felix/dp-vxlan.c) ----
 *
 * One VXLAN device per node, WEFT_DP_VXLAN_IFNAME, learning off, no
 * flooding: every remote node is programmed explicitly. For a remote node
 * with underlay address U, VTEP MAC M, tunnel address T and blocks B:
 *   FDB        M -> dst U (NTF_SELF, permanent) on weft.vxlan
 *   neighbour  T -> M (permanent) on weft.vxlan
 *   routes     B via T dev weft.vxlan onlink proto WEFT_DP_RTPROTO
 * IPv4 only (underlay and overlay), like Calico's vxlan.calico. The whole
 * device is weft's: anything on it that the caller did not ask for is
 * removed. Which peers go through VXLAN (vxlanMode Always/CrossSubnet) is
 * weftd's decision; these functions program whatever set they are given. */
#define WEFT_DP_VXLAN_IFNAME "weft.vxlan"
#define WEFT_DP_VXLAN_VNI 4096
#define WEFT_DP_VXLAN_PORT 4789
#define WEFT_DP_VXLAN_OVERHEAD 50 /* outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 */

struct weft_dp_vxlan_dev {
	const char *node_name;      /* the VTEP MAC is derived from it */
	uint32_t vni;               /* 0 = WEFT_DP_VXLAN_VNI */
	uint16_t port;              /* UDP port; 0 = WEFT_DP_VXLAN_PORT */
	struct weft_ip local;       /* the node's underlay IPv4 address */
	const char *parent;         /* underlay device; NULL = none */
	bool keep_parent;           /* parent unknown (NULL): an existing device keeps its parent and MTU */
	unsigned mtu;               /* 0 = parent's MTU - 50 (1450 without parent) */
	struct weft_ip tunnel_addr; /* the node's tunnel address, put on the device as /32; family 0 = none */
};

struct weft_dp_vxlan_peer {
	struct weft_ip underlay;        /* remote node's underlay IPv4 address (FDB dst) */
	uint8_t mac[6];                 /* remote VTEP MAC (weft_dp_vxlan_mac of its name) */
	struct weft_ip tunnel;          /* remote tunnel address (route gateway, neighbour) */
	const struct weft_cidr *blocks; /* the remote node's blocks, routed via tunnel */
	size_t nblocks;
};

/* The VTEP MAC of node_name: the first 6 bytes of FNV-1a-64 of the name,
 * made a locally administered unicast address (02 bit set, 01 bit clear).
 * Every node computes every other node's MAC the same way. */
void weft_dp_vxlan_mac(const char *node_name, uint8_t out[6]);

/* Create or reconcile WEFT_DP_VXLAN_IFNAME: VNI, port, local address,
 * parent, learning off, MTU, MAC, the tunnel /32 (other IPv4 addresses on
 * it are removed), up. A device whose kind, VNI, port, local address,
 * parent or learning differ is deleted and recreated (its FDB, neighbour
 * entries and routes go with it: call weft_dp_vxlan_set_peers after).
 * Returns 1 if the device was (re)created, 0 if it existed and was
 * reconciled, or a negative errno + errmsg; a device this call created is
 * deleted again on failure. */
int weft_dp_vxlan_ensure(const struct weft_dp_vxlan_dev *dev, char **errmsg);

/* Reconcile the complete set of remote VTEPs on WEFT_DP_VXLAN_IFNAME
 * (mark and sweep: dump FDB, neighbours and proto-WEFT_DP_RTPROTO routes
 * on the device, add/replace what is missing or different, delete what is
 * not in peers). A block listed by two peers goes to the first. Returns the
 * number of kernel objects added, replaced or deleted (0: nothing to do),
 * or a negative errno + errmsg (-ENODEV: no device; -EINVAL: bad input,
 * nothing changed). A failure half-way leaves a partly reconciled state
 * that the next call completes. */
int weft_dp_vxlan_set_peers(const struct weft_dp_vxlan_peer *peers, size_t n, char **errmsg);

/* Delete WEFT_DP_VXLAN_IFNAME (if it is a vxlan) and with it everything on
 * it. Returns 1 if deleted, 0 if there was none, or a negative errno. */
int weft_dp_vxlan_remove(void);

/* ---- NAT outgoing (felix/dp-nat.c) ----
 *
 * One nftables table, family ip, WEFT_DP_NAT_TABLE, owned by weft:
 *   set pools     { type ipv4_addr; flags interval; }   natOutgoing pools
 *   set allpools  { type ipv4_addr; flags interval; }   every pool
 *   chain postrouting { type nat hook postrouting priority srcnat;
 *       ip saddr @pools ip daddr != @allpools masquerade fully-random }
 * No other table is ever read or written. */
#define WEFT_DP_NAT_TABLE "weft-nat"

/* Replace the table's whole content in ONE nftables transaction (add
 * table, delete table, add table + chain + sets + elements + rule in one
 * batch: the kernel applies all of it or nothing, and packets never see
 * an empty or half-built table). nat_pools (n) are masqueraded towards
 * destinations outside all_pools (m; nat_pools are added to it). IPv6
 * entries are ignored (the table is family ip). n == 0 (or no IPv4 entry)
 * removes the table. Returns 0 or a negative errno + errmsg; on failure
 * the previous table is left as it was. */
int weft_dp_nat_set(const struct weft_cidr *nat_pools, size_t n, const struct weft_cidr *all_pools, size_t m,
		    char **errmsg);

#endif
