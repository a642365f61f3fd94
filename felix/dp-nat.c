/* dp-nat.c - natOutgoing: weft's own nftables table, replaced atomically.
 *
 * The whole table is rebuilt in one nfnetlink batch (one nf_tables
 * transaction):
 *
 *   NEWTABLE ip weft-nat          (create if absent, so the delete cannot fail)
 *   DELTABLE ip weft-nat          (drops the old chain, sets and rule)
 *   NEWTABLE ip weft-nat
 *   NEWCHAIN postrouting { type nat hook postrouting priority srcnat }
 *   NEWSET pools, NEWSETELEM ...; NEWSET allpools, NEWSETELEM ...
 *   NEWRULE ip saddr @pools ip daddr != @allpools masquerade fully-random
 *
 * The kernel commits all of it or, if any message fails, none of it; the
 * packet path switches from the old generation to the new one at commit,
 * so no packet ever sees a missing or half-built table. This is the same
 * "add; delete; define" idiom `nft -f` scripts use to reload a table. The
 * equivalent with per-element diffs would save a few hundred bytes per
 * update at the price of reading the table back; pools change rarely.
 *
 * Every object message carries NLM_F_ACK, so the kernel answers each one
 * (success or error) once the batch has been processed: counting answers
 * tells us when we are done and which message failed.
 */
#include "felix/dp-internal.h"
#include "lib/log.h"
#include "lib/netlink.h"

#include <arpa/inet.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/ip.h>
#include <stddef.h>
#include <sys/socket.h>

#define NAT_CHAIN "postrouting"
#define NAT_SET_POOLS "pools"
#define NAT_SET_ALL "allpools"
#define NAT_PRIO_SRCNAT 100 /* NF_IP_PRI_NAT_SRC, nft's "srcnat" */
#define NAT_TYPE_IPADDR 7   /* nft's ipv4_addr datatype, so `nft list` shows it by name */
#define NAT_MAX_CIDRS 1000  /* keeps one element message below netlink's 64 KiB nest limit */
#define NAT_MAX_MSGS 16

struct range {
	uint32_t first, last; /* host byte order */
};

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* The IPv4 entries of a and b as sorted, merged (overlapping or adjacent
 * ranges joined) intervals: an nftables interval set rejects overlaps. */
static size_t ranges_of(const struct weft_cidr *a, size_t na, const struct weft_cidr *b, size_t nb,
			struct range *out)
{
	size_t n = 0, m = 0;

	for (size_t k = 0; k < na + nb; k++) {
		const struct weft_cidr *c = k < na ? &a[k] : &b[k - na];
		uint32_t ip, mask;

		if (c->ip.family != AF_INET || c->prefixlen > 32)
			continue;
		mask = c->prefixlen ? 0xffffffffu << (32 - c->prefixlen) : 0;
		ip = ntohl(c->ip.v4.s_addr) & mask;
		out[n].first = ip;
		out[n].last = ip | ~mask;
		n++;
	}
	if (!n)
		return 0;
	qsort(out, n, sizeof(*out), range_cmp);
	for (size_t k = 1; k < n; k++) {
		if (out[m].last == 0xffffffffu || out[k].first <= out[m].last + 1) {
			if (out[k].last > out[m].last)
				out[m].last = out[k].last;
		} else {
			out[++m] = out[k];
		}
	}
	return m + 1;
}

static void elem_add(struct nftnl_set *s, uint32_t host_ip, bool end)
{
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();
	uint32_t key = htonl(host_ip);

	if (!e)
		abort();
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &key, sizeof(key));
	if (end)
		nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
	nftnl_set_elem_add(s, e);
}

/* An interval set the way nft encodes one: a closing element at 0.0.0.0
 * unless the first interval starts there, then start and end+1 (flagged
 * INTERVAL_END) of each interval; the end of one reaching 255.255.255.255
 * is implicit. */
static struct nftnl_set *set_build(const char *name, uint32_t id, const struct range *r, size_t n)
{
	struct nftnl_set *s = nftnl_set_alloc();

	if (!s)
		abort();
	nftnl_set_set_str(s, NFTNL_SET_TABLE, WEFT_DP_NAT_TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_IPV4);
	nftnl_set_set_u32(s, NFTNL_SET_ID, id);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, NAT_TYPE_IPADDR);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, sizeof(uint32_t));
	if (n && r[0].first != 0)
		elem_add(s, 0, true);
	for (size_t k = 0; k < n; k++) {
		elem_add(s, r[k].first, false);
		if (r[k].last != 0xffffffffu)
			elem_add(s, r[k].last + 1, true);
	}
	return s;
}

static void expr_add(struct nftnl_rule *r, struct nftnl_expr *e)
{
	nftnl_rule_add_expr(r, e);
}

static struct nftnl_expr *expr_new(const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (!e)
		abort();
	return e;
}

/* Load 4 bytes of the IPv4 header at offset into register 1. */
static void rule_payload(struct nftnl_rule *r, uint32_t offset)
{
	struct nftnl_expr *e = expr_new("payload");

	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, sizeof(uint32_t));
	expr_add(r, e);
}

static void rule_lookup(struct nftnl_rule *r, const char *set, uint32_t id, bool invert)
{
	struct nftnl_expr *e = expr_new("lookup");

	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	/* The set exists only in this transaction: refer to it by id too. */
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, id);
	if (invert)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
	expr_add(r, e);
}

/* ---- the batch ---- */

struct batch {
	struct mnl_nlmsg_batch *b;
	char *buf;
	uint32_t seq0, seq;
	const char *what[NAT_MAX_MSGS]; /* by seq - seq0, for error messages */
	unsigned nacks;
};

static struct nlmsghdr *batch_hdr(struct batch *bt, uint16_t type, uint16_t flags, const char *what)
{
	struct nlmsghdr *nlh;

	bt->what[bt->seq - bt->seq0] = what;
	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bt->b), type, NFPROTO_IPV4, flags | NLM_F_ACK, bt->seq++);
	bt->nacks++;
	return nlh;
}

/* mnl_nlmsg_batch_next is false when the message went past the limit; the
 * buffer is twice the limit, so nothing was overwritten. */
static int batch_next(struct batch *bt)
{
	return mnl_nlmsg_batch_next(bt->b) ? 0 : -E2BIG;
}

static int put_table(struct batch *bt, uint16_t type, uint16_t flags, const char *what)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!t)
		abort();
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, WEFT_DP_NAT_TABLE);
	nlh = batch_hdr(bt, type, flags, what);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	return batch_next(bt);
}

static int put_chain(struct batch *bt)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;

	if (!c)
		abort();
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, WEFT_DP_NAT_TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, NAT_CHAIN);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "nat");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_POST_ROUTING);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, NAT_PRIO_SRCNAT);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nlh = batch_hdr(bt, NFT_MSG_NEWCHAIN, NLM_F_CREATE, "add chain " NAT_CHAIN);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	return batch_next(bt);
}

static int put_set(struct batch *bt, const char *name, uint32_t id, const struct range *r, size_t n)
{
	struct nftnl_set *s = set_build(name, id, r, n);
	struct nlmsghdr *nlh;
	int ret;

	nlh = batch_hdr(bt, NFT_MSG_NEWSET, NLM_F_CREATE, name);
	nftnl_set_nlmsg_build_payload(nlh, s);
	ret = batch_next(bt);
	if (ret == 0 && n) {
		nlh = batch_hdr(bt, NFT_MSG_NEWSETELEM, NLM_F_CREATE, name);
		nftnl_set_elems_nlmsg_build_payload(nlh, s);
		ret = batch_next(bt);
	}
	nftnl_set_free(s);
	return ret;
}

static int put_rule(struct batch *bt)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nftnl_expr *masq;
	struct nlmsghdr *nlh;

	if (!r)
		abort();
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_IPV4);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, WEFT_DP_NAT_TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, NAT_CHAIN);
	rule_payload(r, offsetof(struct iphdr, saddr));
	rule_lookup(r, NAT_SET_POOLS, 1, false);
	rule_payload(r, offsetof(struct iphdr, daddr));
	rule_lookup(r, NAT_SET_ALL, 2, true);
	/* fully-random, as Calico's MASQUERADE --random-fully: source ports
	 * chosen at random avoid clashes between pods behind one address. */
	masq = expr_new("masq");
	nftnl_expr_set_u32(masq, NFTNL_EXPR_MASQ_FLAGS, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
	expr_add(r, masq);
	nlh = batch_hdr(bt, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, "add rule");
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	return batch_next(bt);
}

/* Send the batch and collect one answer per message. Returns 0 or the
 * first error (with errmsg naming the message). */
static int batch_talk(struct mnl_socket *nl, struct batch *bt, char **errmsg)
{
	uint32_t portid = mnl_socket_get_portid(nl);
	char buf[MNL_SOCKET_BUFFER_SIZE] __attribute__((aligned(8)));
	unsigned answers = 0;
	int first = 0;

	if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(bt->b), mnl_nlmsg_batch_size(bt->b)) < 0)
		return dp_fail(errmsg, -errno, NULL, "send nftables batch");
	while (answers < bt->nacks) {
		ssize_t len = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
		int n = (int)len;

		if (len < 0) {
			int r = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
			return first ? first : dp_fail(errmsg, r, NULL, "read nftables answers");
		}
		for (; mnl_nlmsg_ok(nlh, n); nlh = mnl_nlmsg_next(nlh, &n)) {
			const struct nlmsgerr *e;
			uint32_t i;

			if (nlh->nlmsg_pid != portid || nlh->nlmsg_type != NLMSG_ERROR ||
			    mnl_nlmsg_get_payload_len(nlh) < sizeof(*e))
				continue;
			e = mnl_nlmsg_get_payload(nlh);
			i = nlh->nlmsg_seq - bt->seq0;
			if (i >= NAT_MAX_MSGS || !bt->what[i])
				continue;
			answers++;
			if (e->error && !first) {
				const char *ext = weft_nl_ext_ack(nlh);

				first = e->error;
				if (errmsg && !*errmsg)
					*errmsg = *ext ? wasprintf("nftables table %s: %s: %s (%s)", WEFT_DP_NAT_TABLE,
								   bt->what[i], strerror(-first), ext)
						       : wasprintf("nftables table %s: %s: %s", WEFT_DP_NAT_TABLE,
								   bt->what[i], strerror(-first));
			}
		}
	}
	return first;
}

static struct mnl_socket *nat_socket(void)
{
	struct mnl_socket *nl = weft_nl_netfilter_open();
	struct timeval tv = {.tv_sec = 5};

	if (!nl)
		return NULL;
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return nl;
}

int weft_dp_nat_set(const struct weft_cidr *nat_pools, size_t n, const struct weft_cidr *all_pools, size_t m,
		    char **errmsg)
{
	_cleanup_free_ struct range *pools = NULL, *all = NULL;
	_cleanup_free_ char *buf = NULL;
	struct mnl_socket *nl = NULL;
	struct batch bt = {0};
	size_t npools, nall, limit;
	int r;

	if ((n && !nat_pools) || (m && !all_pools))
		return dp_fail(errmsg, -EINVAL, NULL, "NAT pools: NULL array");
	if (n + m > NAT_MAX_CIDRS)
		return dp_fail(errmsg, -E2BIG, NULL, "NAT pools: %zu CIDRs, at most %d", n + m, NAT_MAX_CIDRS);
	pools = wcalloc(n + 1, sizeof(*pools));
	all = wcalloc(n + m + 1, sizeof(*all));
	npools = ranges_of(nat_pools, n, NULL, 0, pools);
	/* The NAT pools are pools too: never masquerade between them. */
	nall = ranges_of(all_pools, m, nat_pools, n, all);

	/* Room for the fixed messages plus ~3 elements per CIDR, doubled
	 * as mnl_nlmsg_batch wants. */
	limit = 8192 + (n + m) * 3 * 64;
	buf = wmalloc(2 * limit);
	bt.b = mnl_nlmsg_batch_start(buf, limit);
	if (!bt.b)
		abort();
	bt.seq0 = bt.seq = (uint32_t)weft_now_ms() & 0x7fffffff;
	nftnl_batch_begin(mnl_nlmsg_batch_current(bt.b), bt.seq++);
	bt.seq0 = bt.seq;
	r = batch_next(&bt);
	if (r == 0)
		r = put_table(&bt, NFT_MSG_NEWTABLE, NLM_F_CREATE, "add table");
	if (r == 0)
		r = put_table(&bt, NFT_MSG_DELTABLE, 0, "delete table");
	if (r == 0 && npools) {
		r = put_table(&bt, NFT_MSG_NEWTABLE, NLM_F_CREATE, "define table");
		if (r == 0)
			r = put_chain(&bt);
		if (r == 0)
			r = put_set(&bt, NAT_SET_POOLS, 1, pools, npools);
		if (r == 0)
			r = put_set(&bt, NAT_SET_ALL, 2, all, nall);
		if (r == 0)
			r = put_rule(&bt);
	}
	if (r == 0) {
		nftnl_batch_end(mnl_nlmsg_batch_current(bt.b), bt.seq++);
		r = batch_next(&bt);
	}
	if (r < 0) {
		r = dp_fail(errmsg, r, NULL, "build nftables batch");
		goto out;
	}
	nl = nat_socket();
	if (!nl) {
		r = dp_fail(errmsg, -errno, NULL, "open nfnetlink socket");
		goto out;
	}
	r = batch_talk(nl, &bt, errmsg);
	if (r == 0)
		log_debug("nftables table %s: %zu NAT interval(s), %zu pool interval(s)%s", WEFT_DP_NAT_TABLE,
			  npools, nall, npools ? "" : ", table removed");
out:
	if (nl)
		mnl_socket_close(nl);
	mnl_nlmsg_batch_stop(bt.b);
	return r;
}
