/* dp-nl.c - namespace, sysctl and netlink helpers for the dataplane. */
#include "felix/dp-internal.h"
#include "lib/log.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>

/* Requests built here are small; 4 KiB, 8-byte aligned. */
#define DP_REQ_WORDS 512

int dp_fail(char **errmsg, int r, const struct weft_nl *nl, const char *fmt, ...)
{
	_cleanup_free_ char *what = NULL;
	const char *ext = nl ? weft_nl_errmsg(nl) : "";
	va_list ap;

	if (!errmsg || *errmsg)
		return r;
	va_start(ap, fmt);
	what = wvasprintf(fmt, ap);
	va_end(ap);
	if (ext && *ext)
		*errmsg = wasprintf("%s: %s (%s)", what, strerror(-r), ext);
	else
		*errmsg = wasprintf("%s: %s", what, strerror(-r));
	return r;
}

bool dp_is_weft_name(const char *name, const char *prefix)
{
	size_t p = strlen(prefix);

	if (strncmp(name, prefix, p) != 0 || strlen(name) != p + 11)
		return false;
	for (const char *c = name + p; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

/* ---- namespaces ---- */

int dp_netns_open(const char *path)
{
	struct statfs sfs;
	int fd;

	if (!path || !*path)
		return -EINVAL;
	/* The path comes from a client: O_NONBLOCK, or a FIFO there would
	 * hold weftd's loop until someone opens it for writing; then only a
	 * namespace file (nsfs) of a network namespace is taken. */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != NSFS_MAGIC || ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

int weft_dp_netns_check(const char *path)
{
	int fd = dp_netns_open(path);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int dp_nl_open_in(int nsfd, struct weft_nl **out)
{
	_cleanup_close_ int self = -1;
	int r;

	/* thread-self: setns() changes only the calling thread. */
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -errno;
	if (setns(nsfd, CLONE_NEWNET) < 0)
		return -errno;
	r = weft_nl_open(NETLINK_ROUTE, 0, out);
	if (setns(self, CLONE_NEWNET) < 0) {
		/* Carrying on would program the pod's namespace as if it were
		 * the node's; there is no safe way forward. */
		log_error_errno(-errno, "cannot return to the node network namespace: %m");
		abort();
	}
	return r;
}

/* ---- sysctls ---- */

int dp_sysctl_write(const char *path, const char *value)
{
	_cleanup_free_ char *file = wasprintf("/proc/sys/net/%s", path);
	_cleanup_close_ int fd = -1;
	size_t len = strlen(value);
	ssize_t n;

	fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, value, len);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int dp_sysctl_read(const char *path, char *buf, size_t size)
{
	_cleanup_free_ char *file = wasprintf("/proc/sys/net/%s", path);
	_cleanup_close_ int fd = -1;
	ssize_t n;

	if (size == 0)
		return -EINVAL;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		return -errno;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = 0;
	return 0;
}

/* ---- links ---- */

static struct nlmsghdr *link_header(void *buf, uint16_t type, uint16_t flags, int ifindex)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	return nlh;
}

int dp_link_set_mac(struct weft_nl *nl, int ifindex, const uint8_t mac[6])
{
	uint64_t buf[DP_REQ_WORDS];
	struct nlmsghdr *nlh;

	if (ifindex <= 0)
		return -EINVAL;
	nlh = link_header(buf, RTM_SETLINK, 0, ifindex);
	mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

int dp_macvlan_create(struct weft_nl *nl, const char *name, int master, uint32_t mode, int nsfd, unsigned mtu)
{
	uint64_t buf[DP_REQ_WORDS];
	struct nlattr *linkinfo, *data;
	struct nlmsghdr *nlh;

	if (!name || !*name || strlen(name) >= IFNAMSIZ || master <= 0)
		return -EINVAL;
	nlh = link_header(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	/* IFLA_LINK is resolved in the namespace of the socket, the new link
	 * is registered (and its name checked) in the one of IFLA_NET_NS_FD. */
	mnl_attr_put_u32(nlh, IFLA_LINK, (uint32_t)master);
	if (nsfd >= 0)
		mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)nsfd);
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "macvlan");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	mnl_attr_put_u32(nlh, IFLA_MACVLAN_MODE, mode);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, linkinfo);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

int dp_ifb_create(struct weft_nl *nl, const char *name, unsigned mtu)
{
	uint64_t buf[DP_REQ_WORDS];
	struct nlattr *linkinfo;
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;

	if (!name || !*name || strlen(name) >= IFNAMSIZ)
		return -EINVAL;
	nlh = link_header(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
	ifi = mnl_nlmsg_get_payload(nlh);
	ifi->ifi_change = IFF_UP;
	ifi->ifi_flags = IFF_UP;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "ifb");
	mnl_attr_nest_end(nlh, linkinfo);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

int dp_link_delete_name(struct weft_nl *nl, const char *name, const char *kind)
{
	struct weft_link link;
	int r = weft_nl_link_get(nl, name, &link);

	if (r == -ENODEV)
		return 0;
	if (r < 0)
		return r;
	if (kind && !streq(link.kind, kind))
		return 0;
	r = weft_nl_link_delete(nl, link.ifindex);
	/* Gone in between (e.g. with its veth peer): fine. */
	if (r == -ENODEV)
		return 0;
	return r < 0 ? r : 1;
}

/* A growing array of dumped objects (links, addresses, routes). */
struct dump_vec {
	void *v;
	size_t n, size;
};

static void vec_push(struct dump_vec *c, const void *item)
{
	c->v = wrealloc(c->v, (c->n + 1) * c->size);
	memcpy((char *)c->v + c->n * c->size, item, c->size);
	c->n++;
}

/* Run dump into c, taken again while it raced with a change
 * (NLM_F_DUMP_INTR, -EAGAIN; on a node where veths come and go, one link
 * dump in five does), at most DP_DUMP_TRIES times. With intr, a dump still
 * interrupted then is kept (*intr = true); without, it is -EAGAIN. On
 * success *out and *n get the array. */
static int dump_retry(int (*dump)(struct weft_nl *, const void *, struct dump_vec *), struct weft_nl *nl,
		      const void *arg, size_t size, void **out, size_t *n, bool *intr)
{
	struct dump_vec c = {.size = size};
	int r = -EAGAIN;

	for (int i = 0; i < DP_DUMP_TRIES; i++) {
		free(c.v);
		c.v = NULL;
		c.n = 0;
		r = dump(nl, arg, &c);
		if (r != -EAGAIN)
			break;
	}
	if (intr)
		*intr = r == -EAGAIN;
	if (r == -EAGAIN && intr)
		r = 0;
	if (r < 0) {
		free(c.v);
		return r;
	}
	*out = c.v;
	*n = c.n;
	return 0;
}

static int link_cb(const struct weft_link *link, void *data)
{
	vec_push(data, link);
	return 0;
}

static int link_dump(struct weft_nl *nl, const void *arg, struct dump_vec *c)
{
	(void)arg;
	return weft_nl_link_dump(nl, link_cb, c);
}

int dp_link_list(struct weft_nl *nl, struct weft_link **out, size_t *n, bool *intr)
{
	void *v;
	int r = dump_retry(link_dump, nl, NULL, sizeof(**out), &v, n, intr);

	if (r == 0)
		*out = v;
	return r;
}

/* ---- addresses and routes ---- */

static int addr_cb(const struct weft_addr *addr, void *data)
{
	vec_push(data, addr);
	return 0;
}

static int addr_dump(struct weft_nl *nl, const void *arg, struct dump_vec *c)
{
	return weft_nl_addr_dump(nl, AF_UNSPEC, *(const int *)arg, addr_cb, c);
}

int dp_addr_list(struct weft_nl *nl, int ifindex, struct weft_addr **out, size_t *n)
{
	void *v;
	int r = dump_retry(addr_dump, nl, &ifindex, sizeof(**out), &v, n, NULL);

	if (r == 0)
		*out = v;
	return r;
}

static int route_cb(const struct weft_route *route, void *data)
{
	if (route->table == RT_TABLE_MAIN)
		vec_push(data, route);
	return 0;
}

struct route_dump_arg {
	int family, protocol;
};

static int route_dump(struct weft_nl *nl, const void *arg, struct dump_vec *c)
{
	const struct route_dump_arg *a = arg;
	return weft_nl_route_dump(nl, a->family, a->protocol, route_cb, c);
}

int dp_route_list(struct weft_nl *nl, int family, int protocol, struct weft_route **out, size_t *n)
{
	return dp_route_list_intr(nl, family, protocol, out, n, NULL);
}

int dp_route_list_intr(struct weft_nl *nl, int family, int protocol, struct weft_route **out, size_t *n, bool *intr)
{
	struct route_dump_arg a = {family, protocol};
	void *v;
	int r = dump_retry(route_dump, nl, &a, sizeof(**out), &v, n, intr);

	if (r == 0)
		*out = v;
	return r;
}

static int route_onlink(struct weft_nl *nl, const struct weft_route *route, uint16_t flags)
{
	uint64_t buf[DP_REQ_WORDS];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;
	int family = route->dst.ip.family;

	if ((family != AF_INET && family != AF_INET6) || route->gateway.family != family || route->oif <= 0)
		return -EINVAL;
	nlh->nlmsg_type = RTM_NEWROUTE;
	nlh->nlmsg_flags = flags;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_dst_len = (uint8_t)route->dst.prefixlen;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = route->protocol ? route->protocol : RTPROT_BOOT;
	rtm->rtm_scope = RT_SCOPE_UNIVERSE;
	rtm->rtm_type = RTN_UNICAST;
	rtm->rtm_flags = RTNH_F_ONLINK;
	if (route->dst.prefixlen > 0)
		weft_nl_attr_put_ip(nlh, RTA_DST, &route->dst.ip);
	weft_nl_attr_put_ip(nlh, RTA_GATEWAY, &route->gateway);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)route->oif);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

int dp_route_replace_onlink(struct weft_nl *nl, const struct weft_route *route)
{
	return route_onlink(nl, route, NLM_F_CREATE | NLM_F_REPLACE);
}

int dp_route_add_onlink(struct weft_nl *nl, const struct weft_route *route)
{
	return route_onlink(nl, route, NLM_F_CREATE | NLM_F_EXCL);
}

/* ---- neighbours ---- */

struct neigh_ctx {
	int ifindex;
	const struct weft_ip *ip;
	const uint8_t *mac;
	int found;
};

static int neigh_cb(const struct nlmsghdr *nlh, void *data)
{
	static const enum mnl_attr_data_type policy[NDA_MAX + 1] = {0};
	struct neigh_ctx *c = data;
	const struct nlattr *tb[NDA_MAX + 1];
	const struct ndmsg *ndm;
	struct weft_ip ip;

	if (nlh->nlmsg_type != RTM_NEWNEIGH || mnl_nlmsg_get_payload_len(nlh) < sizeof(*ndm))
		return 0;
	ndm = mnl_nlmsg_get_payload(nlh);
	if (ndm->ndm_ifindex != c->ifindex || ndm->ndm_family != c->ip->family || !(ndm->ndm_state & NUD_PERMANENT))
		return 0;
	if (weft_nl_attr_parse(nlh, sizeof(*ndm), policy, NDA_MAX, tb) < 0 || !tb[NDA_DST] || !tb[NDA_LLADDR])
		return 0;
	if (weft_nl_attr_get_ip(tb[NDA_DST], ndm->ndm_family, &ip) < 0 || !weft_ip_eq(&ip, c->ip))
		return 0;
	if (mnl_attr_get_payload_len(tb[NDA_LLADDR]) == 6 && memcmp(mnl_attr_get_payload(tb[NDA_LLADDR]), c->mac, 6) == 0)
		c->found = 1;
	return 0;
}

int dp_neigh_has_permanent(struct weft_nl *nl, int ifindex, const struct weft_ip *ip, const uint8_t mac[6])
{
	uint64_t buf[DP_REQ_WORDS];
	struct neigh_ctx c = {ifindex, ip, mac, 0};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ndmsg *ndm;
	int r;

	nlh->nlmsg_type = RTM_GETNEIGH;
	ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
	ndm->ndm_family = (uint8_t)ip->family;
	/* Strict dump checking wants the index as an attribute, not in the
	 * header; the callback filters as well for kernels without it. */
	mnl_attr_put_u32(nlh, NDA_IFINDEX, (uint32_t)ifindex);
	r = weft_nl_dump(nl, nlh, neigh_cb, &c);
	return r < 0 ? r : c.found;
}
