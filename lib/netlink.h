/* netlink.h - rtnetlink over libmnl, in three layers.
 *
 * (a) A socket object, struct weft_nl: weft_nl_transact() sends one request
 *     with NLM_F_ACK and waits for its ACK, weft_nl_dump() runs an
 *     NLM_F_DUMP request to its end. Both check sequence numbers and port
 *     ids, pass each reply message to a callback, and return 0 or the
 *     negative errno the kernel answered with. The kernel's extended-ack
 *     text (NETLINK_EXT_ACK, "Nexthop device is not up" ...) of the last
 *     failed request is kept and read with weft_nl_errmsg().
 * (b) Attributes are built and read with libmnl (mnl_attr_put_*,
 *     mnl_attr_get_*); weft adds only what libmnl lacks: putting/reading a
 *     weft_ip, and parsing a message's attributes into a table validated
 *     against a policy (weft_nl_attr_parse()).
 * (c) A multicast listener is the same object opened with groups (or
 *     joined to RTNLGRP_* groups later). Put weft_nl_fd() on the event loop
 *     and call weft_nl_drain() when it is readable. When the kernel dropped
 *     notifications because the socket buffer was full, drain returns
 *     -ENOBUFS: the listener is out of sync and the caller must dump again
 *     ("resync needed").
 *
 * Typed operations below (links, addresses, routes, neighbours) are small
 * functions over layer (a) taking plain value structs.
 *
 * Conventions: 0 (or a count) or a negative errno; outputs untouched on
 * failure; no logging above debug level; out of memory aborts. A weft_nl is
 * bound to the network namespace that was current when it was opened.
 * Not thread-safe: one socket per thread.
 */
#ifndef WEFT_NETLINK_H
#define WEFT_NETLINK_H

#include "lib/ipaddr.h"
#include "lib/util.h"

/* net/if.h (not linux/if.h) for IFNAMSIZ, so that users may include either
 * after this header. */
#include <libmnl/libmnl.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

struct weft_nl;

/* ---- (a) the socket ---- */

/* Open a netlink socket of protocol proto (NETLINK_ROUTE) bound to the
 * legacy multicast bitmask groups (RTMGRP_*; 0 for a request socket).
 * Extended acks are turned on, and strict checking of dump requests so
 * that the kernel filters route dumps itself. Returns 0 or a negative
 * errno. */
int weft_nl_open(int proto, unsigned groups, struct weft_nl **out);
/* Close and free; accepts NULL. */
void weft_nl_close(struct weft_nl *nl);
static inline void weft_nl_closep(struct weft_nl **nl) { weft_nl_close(*nl); }
#define _cleanup_nl_ __attribute__((cleanup(weft_nl_closep)))

/* Join multicast group number group (RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE ...,
 * including those above 31). Returns 0 or a negative errno. */
int weft_nl_join(struct weft_nl *nl, unsigned group);
/* Set the receive buffer (SO_RCVBUFFORCE, else SO_RCVBUF). A listener wants
 * a large one. Returns 0 or a negative errno. */
int weft_nl_set_rcvbuf(struct weft_nl *nl, int bytes);
/* The socket, for weft_loop_add_io(..., EPOLLIN, ...). */
int weft_nl_fd(const struct weft_nl *nl);

/* Called with each reply message (never NLMSG_ERROR / NLMSG_DONE). A
 * negative return stops the callbacks; the rest of the reply is still read
 * so the socket stays in sync, and the request returns that value. */
typedef int (*weft_nl_msg_fn)(const struct nlmsghdr *nlh, void *data);

/* Send req (built with mnl_nlmsg_put_header() in a buffer of at least
 * nlmsg_len bytes); weft sets the sequence number and NLM_F_REQUEST |
 * NLM_F_ACK. Replies before the ACK (e.g. the RTM_NEWLINK answering an
 * RTM_GETLINK) go to cb, which may be NULL. Returns 0, the negative errno
 * of the kernel's answer, or a negative errno of the socket. */
int weft_nl_transact(struct weft_nl *nl, struct nlmsghdr *req, weft_nl_msg_fn cb, void *data);
/* Send req with NLM_F_REQUEST | NLM_F_DUMP and pass every message to cb
 * until NLMSG_DONE. Returns 0, the kernel's negative errno, cb's negative
 * return, or -EAGAIN when the kernel flagged the dump as inconsistent
 * (NLM_F_DUMP_INTR: the table changed during the dump; try again). */
int weft_nl_dump(struct weft_nl *nl, struct nlmsghdr *req, weft_nl_msg_fn cb, void *data);
/* The extended-ack text of the last request sent to the kernel if it
 * failed, or "" when the kernel sent none or the request succeeded.
 * Arguments rejected before sending (-EINVAL) leave it alone. Valid until
 * the next request. */
const char *weft_nl_errmsg(const struct weft_nl *nl);
/* The kernel's extended-ack text (NLMSGERR_ATTR_MSG) of an NLMSG_ERROR
 * message, or "" when it carries none. For code that reads netlink answers
 * itself (the nftables batches of felix/dp-nat.c and acl/nft.c). */
const char *weft_nl_ext_ack(const struct nlmsghdr *nlh);
/* A bound NETLINK_NETFILTER socket (close-on-exec, auto port id) asking,
 * best effort, for the kernel's error text and no echo of our requests in
 * error answers: what the nftables code (felix/dp-nat.c, the fabric's NAT
 * check, acl/nft.c) talks through with libnftnl. NULL with errno set on
 * failure. Close with mnl_socket_close(). */
struct mnl_socket *weft_nl_netfilter_open(void);

/* Listener: read every message already queued (never blocks) and pass each
 * to cb. Returns the number of messages, or -ENOBUFS when notifications
 * were lost (after delivering what was still queued): resync by dumping.
 * Other socket errors are returned as a negative errno. */
int weft_nl_drain(struct weft_nl *nl, weft_nl_msg_fn cb, void *data);

/* ---- (b) attribute helpers libmnl lacks ---- */

/* Put ip as a 4- or 16-byte attribute. */
void weft_nl_attr_put_ip(struct nlmsghdr *nlh, uint16_t type, const struct weft_ip *ip);
/* Read a 4- or 16-byte attribute as an address of family. Returns 0 or
 * -EINVAL (wrong length). */
int weft_nl_attr_get_ip(const struct nlattr *attr, int family, struct weft_ip *out);
/* Parse the attributes of nlh after its offset-byte family header into
 * tb[0..maxtype] (zeroed first; absent ones stay NULL). policy[type] is the
 * libmnl type each attribute must validate as (MNL_TYPE_UNSPEC: any
 * length); attributes above maxtype are ignored. Returns 0 or -EINVAL. */
int weft_nl_attr_parse(const struct nlmsghdr *nlh, unsigned offset, const enum mnl_attr_data_type *policy,
		       uint16_t maxtype, const struct nlattr **tb);
/* The same for the attributes nested in attr. */
int weft_nl_attr_parse_nested(const struct nlattr *attr, const enum mnl_attr_data_type *policy,
			      uint16_t maxtype, const struct nlattr **tb);

/* ---- value types ---- */

struct weft_link {
	int ifindex;
	char name[IFNAMSIZ];
	unsigned flags; /* IFF_UP, IFF_LOWER_UP ... */
	unsigned mtu;
	int master;          /* ifindex, 0 if none */
	char kind[16];       /* "veth", "bridge" ...; "" if not a virtual link */
	uint8_t mac[6];
	bool has_mac;
};

struct weft_addr {
	int ifindex;
	struct weft_cidr local; /* address and prefix length */
	uint32_t flags;         /* IFA_F_*, e.g. IFA_F_NODAD; 0 by default */
	uint8_t scope;          /* RT_SCOPE_UNIVERSE (0) by default */
};

struct weft_route {
	struct weft_cidr dst;   /* host bits must be zero */
	struct weft_ip gateway; /* family 0: none; else the dst's family */
	int oif;                /* 0: none */
	uint32_t table;         /* 0 means RT_TABLE_MAIN */
	uint8_t protocol;       /* RTPROT_*, or weft's own number; 0 means RTPROT_BOOT */
	uint8_t scope;          /* RT_SCOPE_*; 0 is RT_SCOPE_UNIVERSE */
	uint8_t type;           /* RTN_UNICAST, RTN_BLACKHOLE ...; 0 means unicast */
	uint32_t priority;      /* metric; 0: kernel default */
};

/* Fill *out from an RTM_NEWLINK / RTM_NEWADDR / RTM_NEWROUTE message (a
 * dump reply or a notification). Return 0, -EINVAL (malformed or another
 * message type) or -EAFNOSUPPORT (routes/addresses not IPv4/IPv6). */
int weft_nl_link_parse(const struct nlmsghdr *nlh, struct weft_link *out);
int weft_nl_addr_parse(const struct nlmsghdr *nlh, struct weft_addr *out);
int weft_nl_route_parse(const struct nlmsghdr *nlh, struct weft_route *out);

/* ---- links ---- */

/* Returns 0, -ENODEV (no such link) or another negative errno. */
int weft_nl_link_get(struct weft_nl *nl, const char *name, struct weft_link *out);
int weft_nl_link_index(struct weft_nl *nl, const char *name, int *ifindex);
/* Set the link administratively up or down. */
int weft_nl_link_set_up(struct weft_nl *nl, int ifindex, bool up);
int weft_nl_link_set_mtu(struct weft_nl *nl, int ifindex, unsigned mtu);
/* Delete a link (for a veth, the peer goes too). */
int weft_nl_link_delete(struct weft_nl *nl, int ifindex);
/* Create a veth pair: name here, peer named peer in the namespace of
 * peer_nsfd (an open /proc/PID/ns/net or /run/netns/X; -1: this one). mtu
 * 0 keeps the default. Returns 0, -EEXIST or another negative errno. */
int weft_nl_veth_create(struct weft_nl *nl, const char *name, const char *peer, int peer_nsfd, unsigned mtu);
/* Move a link into the namespace of nsfd. */
int weft_nl_link_set_netns(struct weft_nl *nl, int ifindex, int nsfd);
/* Calls cb for every link. Returns 0 or a negative errno. */
int weft_nl_link_dump(struct weft_nl *nl, int (*cb)(const struct weft_link *link, void *data), void *data);

/* ---- addresses ---- */

/* Add (or, if present, keep: NLM_F_REPLACE) / delete an address. */
int weft_nl_addr_add(struct weft_nl *nl, const struct weft_addr *addr);
int weft_nl_addr_del(struct weft_nl *nl, const struct weft_addr *addr);
/* Calls cb for every address of family (AF_UNSPEC: both) on ifindex (0:
 * all links). */
int weft_nl_addr_dump(struct weft_nl *nl, int family, int ifindex,
		      int (*cb)(const struct weft_addr *addr, void *data), void *data);

/* ---- routes ---- */

/* Add a route; -EEXIST if it is there already. */
int weft_nl_route_add(struct weft_nl *nl, const struct weft_route *route);
/* Add or replace the route with the same dst/table/metric. */
int weft_nl_route_replace(struct weft_nl *nl, const struct weft_route *route);
/* Delete the route matching dst, table and, when set, protocol, type,
 * gateway, oif and metric. -ESRCH if there is none. */
int weft_nl_route_del(struct weft_nl *nl, const struct weft_route *route);
/* Calls cb for every route of family (AF_INET, AF_INET6 or AF_UNSPEC) in
 * every table whose protocol is protocol (-1: any). This is how weft
 * sweeps only the routes it owns. Cached/cloned routes are skipped. */
int weft_nl_route_dump(struct weft_nl *nl, int family, int protocol,
		       int (*cb)(const struct weft_route *route, void *data), void *data);

/* ---- neighbours ---- */

/* Add or replace a permanent neighbour entry ip -> mac on ifindex. */
int weft_nl_neigh_add_permanent(struct weft_nl *nl, int ifindex, const struct weft_ip *ip, const uint8_t mac[6]);

#endif
