/* dp-internal.h - helpers shared by the dataplane files (not a public API).
 *
 * Namespaces: every pod-side step runs over a netlink socket opened inside
 * the pod's namespace (dp_nl_open_in: setns to the pod, socket(), setns
 * back to the saved namespace of the calling thread). A netlink socket
 * stays bound to the namespace it was created in, so the thread itself is
 * only ever in the pod namespace for the duration of one socket() call.
 * Sysctls are written from the node namespace (the thread's own): the
 * kernel resolves /proc/sys/net against the network namespace of the task
 * doing the lookup, so the node-side interface's files are found there.
 */
#ifndef WEFT_DP_INTERNAL_H
#define WEFT_DP_INTERNAL_H

#include "felix/dataplane.h"
#include "lib/netlink.h"

/* Set *errmsg (if errmsg is non-NULL and *errmsg is still NULL) to
 * "<what>: <strerror(-r)>" plus the kernel's extended-ack text from nl
 * (may be NULL). Returns r, so a failure path reads
 * `return dp_fail(errmsg, r, nl, "create veth %s", name)`. */
int dp_fail(char **errmsg, int r, const struct weft_nl *nl, const char *fmt, ...) PRINTF_LIKE(4, 5);

/* How often dp_link_list, dp_addr_list and dp_route_list take a dump
 * that raced with a change (NLM_F_DUMP_INTR, -EAGAIN) before giving up. */
#define DP_DUMP_TRIES 8

/* Open a network namespace file (nsfs, of type CLONE_NEWNET): the fd, or
 * -EINVAL for anything else (a FIFO, a plain file, another kind of
 * namespace), or the open() error. Never blocks. */
int dp_netns_open(const char *path);
/* Open a NETLINK_ROUTE socket inside the namespace nsfd; the calling
 * thread is back in its own namespace on return (aborts if it cannot get
 * back: continuing in the wrong namespace would program the wrong host).
 * Returns 0 or a negative errno. */
int dp_nl_open_in(int nsfd, struct weft_nl **out);

/* Write value to /proc/sys/net/<path> in the current namespace. Returns 0
 * or a negative errno. */
int dp_sysctl_write(const char *path, const char *value);
/* Read it into buf (trailing newline stripped). */
int dp_sysctl_read(const char *path, char *buf, size_t size);

/* ---- netlink operations lib/netlink.h lacks ---- */

/* Set a link's MAC address. */
int dp_link_set_mac(struct weft_nl *nl, int ifindex, const uint8_t mac[6]);
/* Create a macvlan named name on master (an ifindex in nl's namespace) in
 * the namespace nsfd (-1: nl's), with mode (MACVLAN_MODE_*), mtu (0: the
 * master's). -EEXIST if name exists there. */
int dp_macvlan_create(struct weft_nl *nl, const char *name, int master, uint32_t mode, int nsfd, unsigned mtu);
/* Create an ifb device, administratively up. */
int dp_ifb_create(struct weft_nl *nl, const char *name, unsigned mtu);
/* Delete the link called name if it exists. Returns 1 if deleted, 0 if
 * there was none, or a negative errno. If kind is non-NULL, a link of
 * another kind is left alone (returns 0). */
int dp_link_delete_name(struct weft_nl *nl, const char *name, const char *kind);
/* Add or replace a route with RTNH_F_ONLINK (the gateway need not be on
 * a connected subnet). An IPv4 replace takes the place of the first route
 * with the same prefix, tos and metric, whatever its protocol. */
int dp_route_replace_onlink(struct weft_nl *nl, const struct weft_route *route);
/* The same, added only (NLM_F_EXCL): -EEXIST when a route with the same
 * key is there, which is left alone. */
int dp_route_add_onlink(struct weft_nl *nl, const struct weft_route *route);
/* Does the neighbour table of ifindex hold a permanent entry ip -> mac?
 * Returns 1, 0, or a negative errno. */
int dp_neigh_has_permanent(struct weft_nl *nl, int ifindex, const struct weft_ip *ip, const uint8_t mac[6]);
/* Collect the routes of family in the main table into a malloc'ed array. */
int dp_route_list(struct weft_nl *nl, int family, int protocol, struct weft_route **out, size_t *n);
/* The same; with intr, a dump still interrupted by changes after
 * DP_DUMP_TRIES is returned all the same (*intr = true): every route in it
 * existed during the dump, but one may be missing or there twice. */
int dp_route_list_intr(struct weft_nl *nl, int family, int protocol, struct weft_route **out, size_t *n, bool *intr);
/* Collect the addresses of ifindex. */
int dp_addr_list(struct weft_nl *nl, int ifindex, struct weft_addr **out, size_t *n);
/* Collect every link. intr as for dp_route_list_intr (NULL: an interrupted
 * dump is -EAGAIN). */
int dp_link_list(struct weft_nl *nl, struct weft_link **out, size_t *n, bool *intr);

/* ---- tc (dp-tc.c) ---- */

/* The ifb name for a host ifname ("wft" + hex -> "wfb" + hex). */
void dp_ifb_name(const char *host_ifname, char out[IFNAMSIZ]);
/* Apply bw to the host veth host_ifname (ifindex): tbf on its root for
 * pod ingress; ifb + ingress qdisc + u32/mirred + tbf for pod egress.
 * On failure what it created is removed. */
int dp_tc_apply(struct weft_nl *nl, const char *host_ifname, int ifindex, unsigned mtu,
		const struct weft_dp_bandwidth *bw, char **errmsg);
/* Verify what dp_tc_apply set up. -ENOENT/-EINVAL + errmsg. */
int dp_tc_check(struct weft_nl *nl, const char *host_ifname, int ifindex, const struct weft_dp_bandwidth *bw,
		char **errmsg);

/* Is name WEFT_DP_IFPREFIX (or prefix) + exactly 11 lower-case hex digits? */
bool dp_is_weft_name(const char *name, const char *prefix);

#endif
