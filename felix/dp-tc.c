/* dp-tc.c - per-pod bandwidth limits with tc over netlink.
 *
 * Pod ingress (traffic towards the pod) leaves the node through the host
 * veth, so a tbf qdisc at the veth's root shapes it. Pod egress enters the
 * node on the host veth, where only policing is possible; to shape it
 * instead (queue, not drop), an ingress qdisc on the host veth holds a
 * match-all u32 filter whose mirred action redirects every packet to the
 * egress of an ifb device (wfb<hash>), which has its own tbf root; the ifb
 * hands the packets back to the veth's receive path afterwards. This is
 * the reference CNI bandwidth plugin's design. Deleting the veth and the
 * ifb removes every qdisc and filter.
 *
 * tbf parameters follow the reference plugin: rate in bytes/s, burst in
 * bytes (given to the kernel as TCA_TBF_BURST, so no tick conversion is
 * needed), limit = rate * 25 ms + burst. A burst smaller than one full
 * frame (mtu + 14) is raised to it, since tbf drops packets larger than
 * its bucket.
 */
#include "felix/dp-internal.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>

#define DP_REQ_WORDS 512
#define TBF_LATENCY_MS 25
#define TBF_HANDLE 0x10000u   /* 1: */
#define INGRESS_HANDLE 0xffff0000u /* ffff: */

void dp_ifb_name(const char *host_ifname, char out[IFNAMSIZ])
{
	size_t p = strlen(WEFT_DP_IFPREFIX);
	const char *rest = strncmp(host_ifname, WEFT_DP_IFPREFIX, p) == 0 ? host_ifname + p : host_ifname;

	snprintf(out, IFNAMSIZ, "%s%s", WEFT_DP_IFBPREFIX, rest);
}

static struct nlmsghdr *tc_header(void *buf, uint16_t type, uint16_t flags, int ifindex, uint32_t handle,
				  uint32_t parent, uint32_t info)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct tcmsg *tcm;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	tcm = mnl_nlmsg_put_extra_header(nlh, sizeof(*tcm));
	tcm->tcm_family = AF_UNSPEC;
	tcm->tcm_ifindex = ifindex;
	tcm->tcm_handle = handle;
	tcm->tcm_parent = parent;
	tcm->tcm_info = info;
	return nlh;
}

/* Bytes/s and burst bytes for a rate in bit/s and a burst in bits. */
static void tbf_params(uint64_t rate_bits, uint64_t burst_bits, unsigned mtu, uint64_t *rate, uint32_t *burst,
		       uint32_t *limit)
{
	uint64_t r = rate_bits / 8, b = burst_bits / 8, l;

	if (r == 0)
		r = 1;
	if (b == 0) {
		/* Default: 20 ms worth of traffic, at least a few frames. */
		b = r / 50;
		if (b < 4ULL * (mtu + 14))
			b = 4ULL * (mtu + 14);
	}
	if (b < mtu + 14)
		b = mtu + 14;
	if (b > UINT32_MAX / 2)
		b = UINT32_MAX / 2;
	l = r * TBF_LATENCY_MS / 1000 + b;
	if (l > UINT32_MAX)
		l = UINT32_MAX;
	*rate = r;
	*burst = (uint32_t)b;
	*limit = (uint32_t)l;
}

static int tbf_add(struct weft_nl *nl, int ifindex, uint64_t rate_bits, uint64_t burst_bits, unsigned mtu)
{
	uint64_t buf[DP_REQ_WORDS];
	struct tc_tbf_qopt q = {0};
	struct nlmsghdr *nlh;
	struct nlattr *opts;
	uint64_t rate, buffer_ns;
	uint32_t burst, limit;

	tbf_params(rate_bits, burst_bits, mtu, &rate, &burst, &limit);
	nlh = tc_header(buf, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, ifindex, TBF_HANDLE, TC_H_ROOT, 0);
	mnl_attr_put_strz(nlh, TCA_KIND, "tbf");
	q.rate.rate = rate >= UINT32_MAX ? UINT32_MAX : (uint32_t)rate;
	/* Without rate tables the kernel computes transmit times itself. */
	q.rate.linklayer = TC_LINKLAYER_ETHERNET;
	q.limit = limit;
	/* The bucket as time in psched ticks (64 ns); TCA_TBF_BURST below
	 * overrides it, but keep it consistent for older readers. */
	buffer_ns = (uint64_t)burst * 1000000000ULL / rate;
	q.buffer = buffer_ns >> 6 > UINT32_MAX ? UINT32_MAX : (uint32_t)(buffer_ns >> 6);
	opts = mnl_attr_nest_start(nlh, TCA_OPTIONS);
	mnl_attr_put(nlh, TCA_TBF_PARMS, sizeof(q), &q);
	if (rate >= UINT32_MAX)
		mnl_attr_put_u64(nlh, TCA_TBF_RATE64, rate);
	mnl_attr_put_u32(nlh, TCA_TBF_BURST, burst);
	mnl_attr_nest_end(nlh, opts);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

static int ingress_qdisc_add(struct weft_nl *nl, int ifindex)
{
	uint64_t buf[DP_REQ_WORDS];
	struct nlmsghdr *nlh =
		tc_header(buf, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, ifindex, INGRESS_HANDLE, TC_H_INGRESS, 0);

	mnl_attr_put_strz(nlh, TCA_KIND, "ingress");
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

/* u32 "match u32 0 0" at prio 1, protocol all, with mirred egress
 * redirect to ifb. */
static int redirect_filter_add(struct weft_nl *nl, int ifindex, int ifb_index)
{
	uint64_t buf[DP_REQ_WORDS];
	struct tc_u32_sel sel = {0};
	struct tc_u32_key key = {0}; /* mask 0, value 0: matches everything */
	uint8_t selbuf[offsetof(struct tc_u32_sel, keys) + sizeof(struct tc_u32_key)];
	struct tc_mirred mirred = {0};
	struct nlattr *opts, *acts, *act, *aopts;
	struct nlmsghdr *nlh;

	nlh = tc_header(buf, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, ifindex, 0, INGRESS_HANDLE,
			TC_H_MAKE(1u << 16, htons(ETH_P_ALL)));
	mnl_attr_put_strz(nlh, TCA_KIND, "u32");
	opts = mnl_attr_nest_start(nlh, TCA_OPTIONS);
	mnl_attr_put_u32(nlh, TCA_U32_CLASSID, TC_H_MAKE(1u << 16, 1));
	sel.flags = TC_U32_TERMINAL;
	sel.nkeys = 1;
	/* The selector is followed by its keys in one attribute. */
	memcpy(selbuf, &sel, offsetof(struct tc_u32_sel, keys));
	memcpy(selbuf + offsetof(struct tc_u32_sel, keys), &key, sizeof(key));
	mnl_attr_put(nlh, TCA_U32_SEL, sizeof(selbuf), selbuf);
	acts = mnl_attr_nest_start(nlh, TCA_U32_ACT);
	act = mnl_attr_nest_start(nlh, 1); /* the first action in order */
	mnl_attr_put_strz(nlh, TCA_ACT_KIND, "mirred");
	aopts = mnl_attr_nest_start(nlh, TCA_ACT_OPTIONS);
	mirred.action = TC_ACT_STOLEN;
	mirred.eaction = TCA_EGRESS_REDIR;
	mirred.ifindex = (uint32_t)ifb_index;
	mnl_attr_put(nlh, TCA_MIRRED_PARMS, sizeof(mirred), &mirred);
	mnl_attr_nest_end(nlh, aopts);
	mnl_attr_nest_end(nlh, act);
	mnl_attr_nest_end(nlh, acts);
	mnl_attr_nest_end(nlh, opts);
	return weft_nl_transact(nl, nlh, NULL, NULL);
}

int dp_tc_apply(struct weft_nl *nl, const char *host_ifname, int ifindex, unsigned mtu,
		const struct weft_dp_bandwidth *bw, char **errmsg)
{
	char ifb[IFNAMSIZ];
	int ifb_index, r;

	if (!bw)
		return 0;
	if (bw->ingress_rate) {
		r = tbf_add(nl, ifindex, bw->ingress_rate, bw->ingress_burst, mtu);
		if (r < 0)
			return dp_fail(errmsg, r, nl, "add tbf qdisc on %s", host_ifname);
	}
	if (!bw->egress_rate)
		return 0;
	dp_ifb_name(host_ifname, ifb);
	r = dp_ifb_create(nl, ifb, mtu);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "create ifb %s", ifb);
	r = weft_nl_link_index(nl, ifb, &ifb_index);
	if (r < 0) {
		dp_fail(errmsg, r, nl, "find ifb %s", ifb);
		goto undo;
	}
	r = tbf_add(nl, ifb_index, bw->egress_rate, bw->egress_burst, mtu);
	if (r < 0) {
		dp_fail(errmsg, r, nl, "add tbf qdisc on %s", ifb);
		goto undo;
	}
	r = ingress_qdisc_add(nl, ifindex);
	if (r < 0) {
		dp_fail(errmsg, r, nl, "add ingress qdisc on %s", host_ifname);
		goto undo;
	}
	r = redirect_filter_add(nl, ifindex, ifb_index);
	if (r < 0) {
		dp_fail(errmsg, r, nl, "add redirect filter on %s to %s", host_ifname, ifb);
		goto undo;
	}
	return 0;
undo:
	/* The caller deletes the veth (and its qdiscs); the ifb is ours. */
	dp_link_delete_name(nl, ifb, "ifb");
	return r;
}

/* ---- check ---- */

struct qdisc_info {
	char kind[16];
	uint32_t parent, handle;
	uint64_t rate; /* tbf: bytes/s */
};

struct qdisc_dump_ctx {
	int ifindex;
	struct qdisc_info v[8];
	size_t n;
};

static int qdisc_cb(const struct nlmsghdr *nlh, void *data)
{
	static const enum mnl_attr_data_type policy[TCA_MAX + 1] = {
		[TCA_KIND] = MNL_TYPE_NUL_STRING,
		[TCA_OPTIONS] = MNL_TYPE_NESTED,
	};
	static const enum mnl_attr_data_type tbf_policy[TCA_TBF_MAX + 1] = {
		[TCA_TBF_RATE64] = MNL_TYPE_U64,
	};
	struct qdisc_dump_ctx *c = data;
	const struct nlattr *tb[TCA_MAX + 1];
	const struct tcmsg *tcm;
	struct qdisc_info qi = {0};

	if (nlh->nlmsg_type != RTM_NEWQDISC || mnl_nlmsg_get_payload_len(nlh) < sizeof(*tcm))
		return 0;
	tcm = mnl_nlmsg_get_payload(nlh);
	if (tcm->tcm_ifindex != c->ifindex || c->n >= ARRAY_SIZE(c->v))
		return 0;
	if (weft_nl_attr_parse(nlh, sizeof(*tcm), policy, TCA_MAX, tb) < 0 || !tb[TCA_KIND])
		return 0;
	weft_strlcpy(qi.kind, mnl_attr_get_str(tb[TCA_KIND]), sizeof(qi.kind));
	qi.parent = tcm->tcm_parent;
	qi.handle = tcm->tcm_handle;
	if (streq(qi.kind, "tbf") && tb[TCA_OPTIONS]) {
		const struct nlattr *opt[TCA_TBF_MAX + 1];

		if (weft_nl_attr_parse_nested(tb[TCA_OPTIONS], tbf_policy, TCA_TBF_MAX, opt) == 0) {
			if (opt[TCA_TBF_PARMS] &&
			    mnl_attr_get_payload_len(opt[TCA_TBF_PARMS]) >= sizeof(struct tc_tbf_qopt)) {
				struct tc_tbf_qopt q;

				memcpy(&q, mnl_attr_get_payload(opt[TCA_TBF_PARMS]), sizeof(q));
				qi.rate = q.rate.rate;
			}
			if (opt[TCA_TBF_RATE64])
				qi.rate = mnl_attr_get_u64(opt[TCA_TBF_RATE64]);
		}
	}
	c->v[c->n++] = qi;
	return 0;
}

static int qdisc_list(struct weft_nl *nl, int ifindex, struct qdisc_dump_ctx *c)
{
	uint64_t buf[DP_REQ_WORDS];
	struct nlmsghdr *nlh = tc_header(buf, RTM_GETQDISC, 0, ifindex, 0, 0, 0);

	memset(c, 0, sizeof(*c));
	c->ifindex = ifindex;
	return weft_nl_dump(nl, nlh, qdisc_cb, c);
}

static const struct qdisc_info *qdisc_find(const struct qdisc_dump_ctx *c, const char *kind, uint32_t parent)
{
	for (size_t i = 0; i < c->n; i++)
		if (streq(c->v[i].kind, kind) && c->v[i].parent == parent)
			return &c->v[i];
	return NULL;
}

static int tbf_check(struct weft_nl *nl, const char *name, int ifindex, uint64_t rate_bits, char **errmsg)
{
	struct qdisc_dump_ctx c;
	const struct qdisc_info *q;
	int r = qdisc_list(nl, ifindex, &c);

	if (r < 0)
		return dp_fail(errmsg, r, nl, "list qdiscs of %s", name);
	q = qdisc_find(&c, "tbf", TC_H_ROOT);
	if (!rate_bits) {
		if (q)
			return dp_fail(errmsg, -EINVAL, NULL, "unexpected tbf qdisc on %s", name);
		return 0;
	}
	if (!q)
		return dp_fail(errmsg, -ENOENT, NULL, "tbf qdisc on %s", name);
	if (q->rate != rate_bits / 8)
		return dp_fail(errmsg, -EINVAL, NULL, "tbf on %s has rate %llu bit/s, want %llu", name,
			       (unsigned long long)q->rate * 8, (unsigned long long)rate_bits);
	return 0;
}

int dp_tc_check(struct weft_nl *nl, const char *host_ifname, int ifindex, const struct weft_dp_bandwidth *bw,
		char **errmsg)
{
	static const struct weft_dp_bandwidth none = {0};
	struct qdisc_dump_ctx c;
	char ifb[IFNAMSIZ];
	int ifb_index = 0, r;

	if (!bw)
		bw = &none;
	r = tbf_check(nl, host_ifname, ifindex, bw->ingress_rate, errmsg);
	if (r < 0)
		return r;
	dp_ifb_name(host_ifname, ifb);
	r = weft_nl_link_index(nl, ifb, &ifb_index);
	if (r < 0 && r != -ENODEV)
		return dp_fail(errmsg, r, nl, "find ifb %s", ifb);
	if (!bw->egress_rate) {
		if (ifb_index > 0)
			return dp_fail(errmsg, -EINVAL, NULL, "unexpected ifb %s", ifb);
		return 0;
	}
	if (ifb_index <= 0)
		return dp_fail(errmsg, -ENOENT, NULL, "ifb %s", ifb);
	r = qdisc_list(nl, ifindex, &c);
	if (r < 0)
		return dp_fail(errmsg, r, nl, "list qdiscs of %s", host_ifname);
	if (!qdisc_find(&c, "ingress", TC_H_INGRESS))
		return dp_fail(errmsg, -ENOENT, NULL, "ingress qdisc on %s", host_ifname);
	return tbf_check(nl, ifb, ifb_index, bw->egress_rate, errmsg);
}
