/* netlink.c - rtnetlink over libmnl; the layers are described in netlink.h. */
#include "lib/netlink.h"
#include "lib/log.h"

#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/veth.h>
#include <sys/socket.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

/* A dump reply batch is at most 32 KiB (plus headers); notifications and
 * acks are smaller. A bigger datagram is reported as -EMSGSIZE. */
#define NL_RECV_BUF (64 * 1024)

/* Requests built by this file are small; 4 KiB, 8-byte aligned. */
#define NL_REQ_BUF_WORDS 512

struct weft_nl {
	struct mnl_socket *sock;
	unsigned portid;
	uint32_t seq;
	char errmsg[256];
	char *buf;
};

/* ---- the socket ---- */

int weft_nl_open(int proto, unsigned groups, struct weft_nl **out)
{
	struct weft_nl *nl;
	int one = 1, r;

	nl = wcalloc(1, sizeof(*nl));
	nl->sock = mnl_socket_open2(proto, SOCK_CLOEXEC);
	if (!nl->sock) {
		r = -errno;
		free(nl);
		return r;
	}
	/* Best effort: older kernels lack these and then behave as before
	 * (no error text, unfiltered dumps that the callers filter anyway). */
	mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl->sock, NETLINK_CAP_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl->sock, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
	if (mnl_socket_bind(nl->sock, groups, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		mnl_socket_close(nl->sock);
		free(nl);
		return r;
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	/* Start somewhere else than a previous instance of the same port. */
	nl->seq = (uint32_t)(weft_now_ns() / 1000);
	nl->buf = wmalloc(NL_RECV_BUF);
	*out = nl;
	return 0;
}

void weft_nl_close(struct weft_nl *nl)
{
	if (!nl)
		return;
	mnl_socket_close(nl->sock);
	free(nl->buf);
	free(nl);
}

int weft_nl_join(struct weft_nl *nl, unsigned group)
{
	int g = (int)group;

	if (mnl_socket_setsockopt(nl->sock, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g)) < 0)
		return -errno;
	return 0;
}

int weft_nl_set_rcvbuf(struct weft_nl *nl, int bytes)
{
	int fd = mnl_socket_get_fd(nl->sock);

	/* FORCE lifts rmem_max for root; fall back for the unprivileged. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) == 0)
		return 0;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) < 0)
		return -errno;
	return 0;
}

int weft_nl_fd(const struct weft_nl *nl)
{
	return mnl_socket_get_fd(nl->sock);
}

const char *weft_nl_errmsg(const struct weft_nl *nl)
{
	return nl->errmsg;
}

/* Receive one datagram from the kernel. Returns its length or a negative
 * errno (-EAGAIN with MSG_DONTWAIT, -EMSGSIZE if it did not fit). */
static ssize_t nl_recv(struct weft_nl *nl, int flags)
{
	for (;;) {
		struct sockaddr_nl addr;
		struct iovec iov = {.iov_base = nl->buf, .iov_len = NL_RECV_BUF};
		struct msghdr msg = {
			.msg_name = &addr,
			.msg_namelen = sizeof(addr),
			.msg_iov = &iov,
			.msg_iovlen = 1,
		};
		ssize_t n = recvmsg(mnl_socket_get_fd(nl->sock), &msg, flags);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (msg.msg_flags & MSG_TRUNC)
			return -EMSGSIZE;
		/* Only the kernel (port 0) may talk to us. */
		if (msg.msg_namelen != sizeof(addr) || addr.nl_pid != 0)
			continue;
		return n;
	}
}

const char *weft_nl_ext_ack(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t off = sizeof(*e), len = mnl_nlmsg_get_payload_len(nlh);
	const struct nlattr *attr;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return "";
	/* Without NLM_F_CAPPED the whole request is echoed before the TLVs. */
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	if (off >= len)
		return "";
	/* The macro casts its argument to struct nlattr * itself. */
	mnl_attr_for_each_payload((void *)((uintptr_t)e + off), len - off) {
		if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
			return mnl_attr_get_str(attr);
	}
	return "";
}

struct mnl_socket *weft_nl_netfilter_open(void)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	int one = 1;

	if (!nl)
		return NULL;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;

		mnl_socket_close(nl);
		errno = e;
		return NULL;
	}
	mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	return nl;
}

static int errmsg_attr_cb(const struct nlattr *attr, void *data)
{
	struct weft_nl *nl = data;

	if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
		weft_strlcpy(nl->errmsg, mnl_attr_get_str(attr), sizeof(nl->errmsg));
	return MNL_CB_OK;
}

/* The error of an NLMSG_ERROR (0 for an ACK), keeping its extended-ack text. */
static int nl_parse_error(struct weft_nl *nl, const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
	size_t offset;

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*err)))
		return -EBADMSG;
	if (err->error == 0)
		return 0;
	/* Without NLM_F_CAPPED the request comes back after the header. */
	offset = sizeof(*err);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		offset += err->msg.nlmsg_len - sizeof(struct nlmsghdr);
	if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) && mnl_nlmsg_size(offset) <= nlh->nlmsg_len)
		mnl_attr_parse(nlh, (unsigned)offset, errmsg_attr_cb, nl);
	return err->error < 0 ? err->error : -err->error;
}

/* NLMSG_DONE carries an int error, then (with NLM_F_ACK_TLVS) ext-ack. */
static int nl_parse_done(struct weft_nl *nl, const struct nlmsghdr *nlh)
{
	int err;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(int))
		return 0;
	memcpy(&err, mnl_nlmsg_get_payload(nlh), sizeof(int));
	if (err < 0 && (nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		mnl_attr_parse(nlh, sizeof(int), errmsg_attr_cb, nl);
	return err < 0 ? err : 0;
}

/* Read replies to request seq until its ACK / error (or, for a dump, its
 * NLMSG_DONE). */
static int nl_recv_reply(struct weft_nl *nl, uint32_t seq, bool dump, weft_nl_msg_fn cb, void *data)
{
	int result = 0;
	bool intr = false;

	for (;;) {
		ssize_t n = nl_recv(nl, 0);
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)nl->buf;
		int len;

		if (n < 0)
			return (int)n;
		len = (int)n;
		for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
			int r;

			/* Left over from an earlier request that gave up early, or
			 * not addressed to this port: not ours. */
			if (nlh->nlmsg_seq != seq || !mnl_nlmsg_portid_ok(nlh, nl->portid)) {
				log_debug("netlink: skipping message type %u seq %u (want %u)", nlh->nlmsg_type,
					  nlh->nlmsg_seq, seq);
				continue;
			}
			if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
				intr = true;
			switch (nlh->nlmsg_type) {
			case NLMSG_NOOP:
				continue;
			case NLMSG_OVERRUN:
				return -EOVERFLOW;
			case NLMSG_ERROR:
				r = nl_parse_error(nl, nlh);
				if (r < 0)
					return r;
				/* An ACK. A dump has none unless it failed. */
				if (!dump)
					return result;
				continue;
			case NLMSG_DONE:
				r = nl_parse_done(nl, nlh);
				if (r < 0)
					return r;
				if (dump)
					return result < 0 ? result : intr ? -EAGAIN : 0;
				continue;
			default:
				if (cb && result >= 0) {
					r = cb(nlh, data);
					if (r < 0)
						result = r;
				}
			}
		}
	}
}

static int nl_request(struct weft_nl *nl, struct nlmsghdr *req, bool dump, weft_nl_msg_fn cb, void *data)
{
	req->nlmsg_flags |= NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK);
	req->nlmsg_seq = ++nl->seq;
	req->nlmsg_pid = 0;
	nl->errmsg[0] = 0;
	if (mnl_socket_sendto(nl->sock, req, req->nlmsg_len) < 0)
		return -errno;
	return nl_recv_reply(nl, req->nlmsg_seq, dump, cb, data);
}

int weft_nl_transact(struct weft_nl *nl, struct nlmsghdr *req, weft_nl_msg_fn cb, void *data)
{
	return nl_request(nl, req, false, cb, data);
}

int weft_nl_dump(struct weft_nl *nl, struct nlmsghdr *req, weft_nl_msg_fn cb, void *data)
{
	return nl_request(nl, req, true, cb, data);
}

int weft_nl_drain(struct weft_nl *nl, weft_nl_msg_fn cb, void *data)
{
	bool lost = false;
	int count = 0;

	for (;;) {
		ssize_t n = nl_recv(nl, MSG_DONTWAIT);
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)nl->buf;
		int len;

		if (n == -EAGAIN)
			break;
		if (n == -ENOBUFS) {
			/* The kernel dropped notifications; keep reading what is
			 * still queued, the caller resyncs afterwards. */
			lost = true;
			continue;
		}
		if (n < 0)
			return (int)n;
		len = (int)n;
		for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
			int r;

			if (nlh->nlmsg_type == NLMSG_NOOP || nlh->nlmsg_type == NLMSG_DONE)
				continue;
			if (nlh->nlmsg_type == NLMSG_OVERRUN) {
				lost = true;
				continue;
			}
			count++;
			r = cb(nlh, data);
			if (r < 0)
				return r;
		}
	}
	return lost ? -ENOBUFS : count;
}

/* ---- attribute helpers ---- */

void weft_nl_attr_put_ip(struct nlmsghdr *nlh, uint16_t type, const struct weft_ip *ip)
{
	mnl_attr_put(nlh, type, ip->family == AF_INET ? 4 : 16, ip->bytes);
}

int weft_nl_attr_get_ip(const struct nlattr *attr, int family, struct weft_ip *out)
{
	uint16_t len = mnl_attr_get_payload_len(attr);
	struct weft_ip ip = {.family = family};

	if ((family == AF_INET && len != 4) || (family == AF_INET6 && len != 16) ||
	    (family != AF_INET && family != AF_INET6))
		return -EINVAL;
	memcpy(ip.bytes, mnl_attr_get_payload(attr), len);
	*out = ip;
	return 0;
}

struct parse_ctx {
	const enum mnl_attr_data_type *policy;
	uint16_t maxtype;
	const struct nlattr **tb;
};

static int parse_attr_cb(const struct nlattr *attr, void *data)
{
	struct parse_ctx *p = data;
	uint16_t type = mnl_attr_get_type(attr);

	if (type > p->maxtype)
		return MNL_CB_OK;
	if (p->policy && p->policy[type] != MNL_TYPE_UNSPEC && mnl_attr_validate(attr, p->policy[type]) < 0)
		return MNL_CB_ERROR;
	p->tb[type] = attr;
	return MNL_CB_OK;
}

int weft_nl_attr_parse(const struct nlmsghdr *nlh, unsigned offset, const enum mnl_attr_data_type *policy,
		       uint16_t maxtype, const struct nlattr **tb)
{
	struct parse_ctx p = {policy, maxtype, tb};

	memset(tb, 0, (maxtype + 1) * sizeof(*tb));
	if (mnl_nlmsg_get_payload_len(nlh) < offset)
		return -EINVAL;
	if (mnl_attr_parse(nlh, offset, parse_attr_cb, &p) < 0)
		return -EINVAL;
	return 0;
}

int weft_nl_attr_parse_nested(const struct nlattr *attr, const enum mnl_attr_data_type *policy,
			      uint16_t maxtype, const struct nlattr **tb)
{
	struct parse_ctx p = {policy, maxtype, tb};

	memset(tb, 0, (maxtype + 1) * sizeof(*tb));
	if (mnl_attr_parse_nested(attr, parse_attr_cb, &p) < 0)
		return -EINVAL;
	return 0;
}

/* ---- parsing the value types ---- */

int weft_nl_link_parse(const struct nlmsghdr *nlh, struct weft_link *out)
{
	static const enum mnl_attr_data_type policy[IFLA_MAX + 1] = {
		[IFLA_IFNAME] = MNL_TYPE_NUL_STRING,
		[IFLA_MTU] = MNL_TYPE_U32,
		[IFLA_MASTER] = MNL_TYPE_U32,
		[IFLA_LINKINFO] = MNL_TYPE_NESTED,
	};
	static const enum mnl_attr_data_type info_policy[IFLA_INFO_MAX + 1] = {
		[IFLA_INFO_KIND] = MNL_TYPE_STRING,
	};
	const struct nlattr *tb[IFLA_MAX + 1];
	const struct ifinfomsg *ifi;
	struct weft_link link = {0};

	if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK)
		return -EINVAL;
	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifi))
		return -EINVAL;
	ifi = mnl_nlmsg_get_payload(nlh);
	if (weft_nl_attr_parse(nlh, sizeof(*ifi), policy, IFLA_MAX, tb) < 0 || !tb[IFLA_IFNAME])
		return -EINVAL;
	link.ifindex = ifi->ifi_index;
	link.flags = ifi->ifi_flags;
	weft_strlcpy(link.name, mnl_attr_get_str(tb[IFLA_IFNAME]), sizeof(link.name));
	if (tb[IFLA_MTU])
		link.mtu = mnl_attr_get_u32(tb[IFLA_MTU]);
	if (tb[IFLA_MASTER])
		link.master = (int)mnl_attr_get_u32(tb[IFLA_MASTER]);
	if (tb[IFLA_ADDRESS] && mnl_attr_get_payload_len(tb[IFLA_ADDRESS]) == 6) {
		memcpy(link.mac, mnl_attr_get_payload(tb[IFLA_ADDRESS]), 6);
		link.has_mac = true;
	}
	if (tb[IFLA_LINKINFO]) {
		const struct nlattr *info[IFLA_INFO_MAX + 1];
		if (weft_nl_attr_parse_nested(tb[IFLA_LINKINFO], info_policy, IFLA_INFO_MAX, info) < 0)
			return -EINVAL;
		if (info[IFLA_INFO_KIND]) {
			/* The kind is NUL-terminated in practice; copy by length anyway. */
			size_t n = mnl_attr_get_payload_len(info[IFLA_INFO_KIND]);
			if (n >= sizeof(link.kind))
				n = sizeof(link.kind) - 1;
			memcpy(link.kind, mnl_attr_get_payload(info[IFLA_INFO_KIND]), n);
			link.kind[n] = 0;
		}
	}
	*out = link;
	return 0;
}

int weft_nl_addr_parse(const struct nlmsghdr *nlh, struct weft_addr *out)
{
	static const enum mnl_attr_data_type policy[IFA_MAX + 1] = {
		[IFA_FLAGS] = MNL_TYPE_U32,
	};
	const struct nlattr *tb[IFA_MAX + 1];
	const struct ifaddrmsg *ifa;
	const struct nlattr *a;
	struct weft_addr addr = {0};

	if (nlh->nlmsg_type != RTM_NEWADDR && nlh->nlmsg_type != RTM_DELADDR)
		return -EINVAL;
	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifa))
		return -EINVAL;
	ifa = mnl_nlmsg_get_payload(nlh);
	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return -EAFNOSUPPORT;
	if (weft_nl_attr_parse(nlh, sizeof(*ifa), policy, IFA_MAX, tb) < 0)
		return -EINVAL;
	/* IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on a
	 * point-to-point link (IPv6 only sends IFA_ADDRESS). */
	a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (!a || weft_nl_attr_get_ip(a, ifa->ifa_family, &addr.local.ip) < 0)
		return -EINVAL;
	addr.local.prefixlen = ifa->ifa_prefixlen;
	addr.ifindex = (int)ifa->ifa_index;
	addr.scope = ifa->ifa_scope;
	addr.flags = tb[IFA_FLAGS] ? mnl_attr_get_u32(tb[IFA_FLAGS]) : ifa->ifa_flags;
	*out = addr;
	return 0;
}

int weft_nl_route_parse(const struct nlmsghdr *nlh, struct weft_route *out)
{
	static const enum mnl_attr_data_type policy[RTA_MAX + 1] = {
		[RTA_OIF] = MNL_TYPE_U32,
		[RTA_TABLE] = MNL_TYPE_U32,
		[RTA_PRIORITY] = MNL_TYPE_U32,
	};
	const struct nlattr *tb[RTA_MAX + 1];
	const struct rtmsg *rtm;
	struct weft_route route = {0};

	if (nlh->nlmsg_type != RTM_NEWROUTE && nlh->nlmsg_type != RTM_DELROUTE)
		return -EINVAL;
	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*rtm))
		return -EINVAL;
	rtm = mnl_nlmsg_get_payload(nlh);
	if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6)
		return -EAFNOSUPPORT;
	if (rtm->rtm_dst_len > (rtm->rtm_family == AF_INET ? 32 : 128))
		return -EINVAL;
	if (weft_nl_attr_parse(nlh, sizeof(*rtm), policy, RTA_MAX, tb) < 0)
		return -EINVAL;
	route.dst.ip.family = rtm->rtm_family;
	route.dst.prefixlen = rtm->rtm_dst_len;
	if (tb[RTA_DST] && weft_nl_attr_get_ip(tb[RTA_DST], rtm->rtm_family, &route.dst.ip) < 0)
		return -EINVAL;
	if (tb[RTA_GATEWAY] && weft_nl_attr_get_ip(tb[RTA_GATEWAY], rtm->rtm_family, &route.gateway) < 0)
		return -EINVAL;
	if (tb[RTA_OIF])
		route.oif = (int)mnl_attr_get_u32(tb[RTA_OIF]);
	route.table = tb[RTA_TABLE] ? mnl_attr_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
	if (tb[RTA_PRIORITY])
		route.priority = mnl_attr_get_u32(tb[RTA_PRIORITY]);
	route.protocol = rtm->rtm_protocol;
	route.scope = rtm->rtm_scope;
	route.type = rtm->rtm_type;
	*out = route;
	return 0;
}

/* ---- links ---- */

static struct nlmsghdr *put_link_header(void *buf, uint16_t type, uint16_t flags, int ifindex,
					struct ifinfomsg **ifi_out)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	if (ifi_out)
		*ifi_out = ifi;
	return nlh;
}

static int link_reply_cb(const struct nlmsghdr *nlh, void *data)
{
	struct weft_link *link = data;
	return weft_nl_link_parse(nlh, link);
}

int weft_nl_link_get(struct weft_nl *nl, const char *name, struct weft_link *out)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	struct weft_link link = {0};
	struct nlmsghdr *nlh;
	int r;

	if (!name || !*name || strlen(name) >= IFNAMSIZ)
		return -EINVAL;
	nlh = put_link_header(buf, RTM_GETLINK, 0, 0, NULL);
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	/* Skip the statistics nobody here reads. */
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	r = weft_nl_transact(nl, nlh, link_reply_cb, &link);
	if (r < 0)
		return r;
	if (link.ifindex <= 0)
		return -ENODEV;
	*out = link;
	return 0;
}

int weft_nl_link_index(struct weft_nl *nl, const char *name, int *ifindex)
{
	struct weft_link link;
	int r = weft_nl_link_get(nl, name, &link);

	if (r < 0)
		return r;
	*ifindex = link.ifindex;
	return 0;
}

int weft_nl_link_set_up(struct weft_nl *nl, int ifindex, bool up)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	struct ifinfomsg *ifi;
	struct nlmsghdr *nlh;

	if (ifindex <= 0)
		return -EINVAL;
	nlh = put_link_header(buf, RTM_SETLINK, 0, ifindex, &ifi);
	ifi->ifi_change = IFF_UP;
	ifi->ifi_flags = up ? IFF_UP : 0;
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

int weft_nl_link_set_mtu(struct weft_nl *nl, int ifindex, unsigned mtu)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	struct nlmsghdr *nlh;

	if (ifindex <= 0 || mtu == 0)
		return -EINVAL;
	nlh = put_link_header(buf, RTM_SETLINK, 0, ifindex, NULL);
	mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

int weft_nl_link_delete(struct weft_nl *nl, int ifindex)
{
	uint64_t buf[NL_REQ_BUF_WORDS];

	if (ifindex <= 0)
		return -EINVAL;
	return weft_nl_transact(nl, put_link_header(buf, RTM_DELLINK, 0, ifindex, NULL), NULL, NULL);
}

int weft_nl_veth_create(struct weft_nl *nl, const char *name, const char *peer, int peer_nsfd, unsigned mtu)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	struct nlattr *linkinfo, *info_data, *peer_info;
	struct nlmsghdr *nlh;

	if (!name || !peer || !*name || !*peer || strlen(name) >= IFNAMSIZ || strlen(peer) >= IFNAMSIZ)
		return -EINVAL;
	nlh = put_link_header(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0, NULL);
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	info_data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	peer_info = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	/* The peer's attributes follow its own (zeroed) ifinfomsg. */
	mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	if (peer_nsfd >= 0)
		mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)peer_nsfd);
	mnl_attr_nest_end(nlh, peer_info);
	mnl_attr_nest_end(nlh, info_data);
	mnl_attr_nest_end(nlh, linkinfo);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

int weft_nl_link_set_netns(struct weft_nl *nl, int ifindex, int nsfd)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	struct nlmsghdr *nlh;

	if (ifindex <= 0 || nsfd < 0)
		return -EINVAL;
	nlh = put_link_header(buf, RTM_SETLINK, 0, ifindex, NULL);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)nsfd);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

struct link_dump_ctx {
	int (*cb)(const struct weft_link *link, void *data);
	void *data;
};

static int link_dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct link_dump_ctx *c = data;
	struct weft_link link;

	if (weft_nl_link_parse(nlh, &link) < 0)
		return 0;
	return c->cb(&link, c->data);
}

int weft_nl_link_dump(struct weft_nl *nl, int (*cb)(const struct weft_link *link, void *data), void *data)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	struct link_dump_ctx c = {cb, data};
	struct nlmsghdr *nlh = put_link_header(buf, RTM_GETLINK, 0, 0, NULL);

	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	return weft_nl_dump(nl, nlh, link_dump_cb, &c);
}

/* ---- addresses ---- */

static bool family_ok(int family)
{
	return family == AF_INET || family == AF_INET6;
}

static struct nlmsghdr *put_addr(void *buf, uint16_t type, uint16_t flags, const struct weft_addr *addr)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)addr->local.ip.family;
	ifa->ifa_prefixlen = (uint8_t)addr->local.prefixlen;
	ifa->ifa_flags = (uint8_t)addr->flags;
	ifa->ifa_scope = addr->scope;
	ifa->ifa_index = (uint32_t)addr->ifindex;
	weft_nl_attr_put_ip(nlh, IFA_LOCAL, &addr->local.ip);
	weft_nl_attr_put_ip(nlh, IFA_ADDRESS, &addr->local.ip);
	if (addr->flags > 0xff)
		mnl_attr_put_u32(nlh, IFA_FLAGS, addr->flags);
	return nlh;
}

static int addr_check(const struct weft_addr *addr)
{
	if (!addr || addr->ifindex <= 0 || !family_ok(addr->local.ip.family) ||
	    addr->local.prefixlen > weft_ip_bits(&addr->local.ip))
		return -EINVAL;
	return 0;
}

int weft_nl_addr_add(struct weft_nl *nl, const struct weft_addr *addr)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	int r = addr_check(addr);

	if (r < 0)
		return r;
	return weft_nl_transact(nl, put_addr(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, addr), NULL, NULL);
}

int weft_nl_addr_del(struct weft_nl *nl, const struct weft_addr *addr)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	int r = addr_check(addr);

	if (r < 0)
		return r;
	return weft_nl_transact(nl, put_addr(buf, RTM_DELADDR, 0, addr), NULL, NULL);
}

struct addr_dump_ctx {
	int ifindex;
	int (*cb)(const struct weft_addr *addr, void *data);
	void *data;
};

static int addr_dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct addr_dump_ctx *c = data;
	struct weft_addr addr;

	if (weft_nl_addr_parse(nlh, &addr) < 0)
		return 0;
	if (c->ifindex > 0 && addr.ifindex != c->ifindex)
		return 0;
	return c->cb(&addr, c->data);
}

int weft_nl_addr_dump(struct weft_nl *nl, int family, int ifindex,
		      int (*cb)(const struct weft_addr *addr, void *data), void *data)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	struct addr_dump_ctx c = {ifindex, cb, data};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;

	if (family != AF_UNSPEC && !family_ok(family))
		return -EINVAL;
	nlh->nlmsg_type = RTM_GETADDR;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)family;
	/* With strict checking the kernel filters by index itself. */
	ifa->ifa_index = ifindex > 0 ? (uint32_t)ifindex : 0;
	return weft_nl_dump(nl, nlh, addr_dump_cb, &c);
}

/* ---- routes ---- */

static int route_check(const struct weft_route *route)
{
	int family;

	if (!route)
		return -EINVAL;
	family = route->dst.ip.family;
	if (!family_ok(family) || route->dst.prefixlen > weft_ip_bits(&route->dst.ip))
		return -EINVAL;
	if (route->gateway.family && route->gateway.family != family)
		return -EINVAL;
	if (route->oif < 0)
		return -EINVAL;
	return 0;
}

static struct nlmsghdr *put_route(void *buf, uint16_t type, uint16_t flags, const struct weft_route *route)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	bool del = type == RTM_DELROUTE;
	uint32_t table = route->table ? route->table : RT_TABLE_MAIN;
	struct rtmsg *rtm;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)route->dst.ip.family;
	rtm->rtm_dst_len = (uint8_t)route->dst.prefixlen;
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	if (del) {
		/* Zero protocol and type match any; "nowhere" matches any scope. */
		rtm->rtm_protocol = route->protocol;
		rtm->rtm_type = route->type;
		rtm->rtm_scope = route->scope ? route->scope : RT_SCOPE_NOWHERE;
	} else {
		rtm->rtm_protocol = route->protocol ? route->protocol : RTPROT_BOOT;
		rtm->rtm_type = route->type ? route->type : RTN_UNICAST;
		rtm->rtm_scope = route->scope;
	}
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	if (route->dst.prefixlen > 0)
		weft_nl_attr_put_ip(nlh, RTA_DST, &route->dst.ip);
	if (route->gateway.family)
		weft_nl_attr_put_ip(nlh, RTA_GATEWAY, &route->gateway);
	if (route->oif > 0)
		mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)route->oif);
	if (route->priority)
		mnl_attr_put_u32(nlh, RTA_PRIORITY, route->priority);
	return nlh;
}

int weft_nl_route_add(struct weft_nl *nl, const struct weft_route *route)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	int r = route_check(route);

	if (r < 0)
		return r;
	return weft_nl_transact(nl, put_route(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route), NULL, NULL);
}

int weft_nl_route_replace(struct weft_nl *nl, const struct weft_route *route)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	int r = route_check(route);

	if (r < 0)
		return r;
	return weft_nl_transact(nl, put_route(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route), NULL,
				NULL);
}

int weft_nl_route_del(struct weft_nl *nl, const struct weft_route *route)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	int r = route_check(route);

	if (r < 0)
		return r;
	return weft_nl_transact(nl, put_route(buf, RTM_DELROUTE, 0, route), NULL, NULL);
}

struct route_dump_ctx {
	int protocol;
	int (*cb)(const struct weft_route *route, void *data);
	void *data;
};

static int route_dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct route_dump_ctx *c = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	struct weft_route route;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*rtm) || (rtm->rtm_flags & RTM_F_CLONED))
		return 0;
	/* Other families (multicast routing) and malformed messages are skipped. */
	if (weft_nl_route_parse(nlh, &route) < 0)
		return 0;
	/* The kernel filters with strict checking; older kernels do not. */
	if (c->protocol >= 0 && route.protocol != c->protocol)
		return 0;
	return c->cb(&route, c->data);
}

int weft_nl_route_dump(struct weft_nl *nl, int family, int protocol,
		       int (*cb)(const struct weft_route *route, void *data), void *data)
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	struct route_dump_ctx c = {protocol, cb, data};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;

	if ((family != AF_UNSPEC && !family_ok(family)) || protocol > 255)
		return -EINVAL;
	nlh->nlmsg_type = RTM_GETROUTE;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_protocol = protocol > 0 ? (uint8_t)protocol : 0;
	return weft_nl_dump(nl, nlh, route_dump_cb, &c);
}

/* ---- neighbours ---- */

int weft_nl_neigh_add_permanent(struct weft_nl *nl, int ifindex, const struct weft_ip *ip, const uint8_t mac[6])
{
	uint64_t buf[NL_REQ_BUF_WORDS];
	struct nlmsghdr *nlh;
	struct ndmsg *ndm;

	if (ifindex <= 0 || !ip || !family_ok(ip->family) || !mac)
		return -EINVAL;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWNEIGH;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
	ndm->ndm_family = (uint8_t)ip->family;
	ndm->ndm_ifindex = ifindex;
	ndm->ndm_state = NUD_PERMANENT;
	weft_nl_attr_put_ip(nlh, NDA_DST, ip);
	mnl_attr_put(nlh, NDA_LLADDR, 6, mac);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}
