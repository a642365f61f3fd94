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

#endif
