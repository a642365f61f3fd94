/* test-netlink.c - rtnetlink tests, only ever inside private namespaces.
 *
 * main() first moves the process into a new network namespace A with
 * unshare(CLONE_NEWNET), before anything else, so the root namespace is
 * never touched. A second namespace B is made the same way and kept alive
 * by an open fd while the process goes back to A: veth peers are put into
 * B through IFLA_NET_NS_FD. Both namespaces vanish when the process exits.
 * Without the privilege to unshare, the test prints "skipped" and exits 77.
 *
 * The tests share the namespaces and run in order.
 */
#include "lib/loop.h"
#include "lib/netlink.h"
#include "lib/test.h"

#include <fcntl.h>
#include <sched.h>

#define PROTO_WEFT 201

static struct weft_nl *nl;  /* in namespace A */
static struct weft_nl *nlb; /* in namespace B */
static int ns_a = -1, ns_b = -1;

static struct weft_cidr cidr(const char *s)
{
	struct weft_cidr c = {0};
	if (weft_cidr_parse(s, false, &c) < 0)
		fprintf(stderr, "bad cidr in test: %s\n", s);
	return c;
}

static struct weft_ip ip(const char *s)
{
	struct weft_ip a = {0};
	if (weft_ip_parse(s, &a) < 0)
		fprintf(stderr, "bad ip in test: %s\n", s);
	return a;
}

static int ifindex_of(struct weft_nl *n, const char *name)
{
	int idx = -1;
	return weft_nl_link_index(n, name, &idx) < 0 ? -1 : idx;
}

static void test_lo(void)
{
	struct weft_link lo;
	int idx = -1;

	CHECK_EQ_INT(weft_nl_link_index(nl, "lo", &idx), 0);
	CHECK_EQ_INT(idx, 1);
	CHECK_EQ_INT(weft_nl_link_set_up(nl, idx, true), 0);
	CHECK_EQ_INT(weft_nl_link_get(nl, "lo", &lo), 0);
	CHECK_STREQ(lo.name, "lo");
	CHECK(lo.flags & IFF_UP);
	idx = 12345;
	CHECK_EQ_INT(weft_nl_link_index(nl, "nosuchlink0", &idx), -ENODEV);
	CHECK_EQ_INT(idx, 12345);
	CHECK_EQ_INT(weft_nl_link_index(nl, "waytoolongname-0123456789", &idx), -EINVAL);
}

/* ---- the listener, driven by the event loop ---- */

struct listen_ctx {
	struct weft_nl *listener;
	int newlink_wa0;
	int dellink_wa0;
	int newroute;
	int msgs;
	int drain_result;
};

static int on_notification(const struct nlmsghdr *nlh, void *data)
{
	struct listen_ctx *c = data;
	struct weft_link link;
	struct weft_route route;

	c->msgs++;
	if (weft_nl_link_parse(nlh, &link) == 0 && streq(link.name, "wa0")) {
		if (nlh->nlmsg_type == RTM_NEWLINK)
			c->newlink_wa0++;
		else
			c->dellink_wa0++;
	}
	if (nlh->nlmsg_type == RTM_NEWROUTE && weft_nl_route_parse(nlh, &route) == 0 &&
	    route.protocol == PROTO_WEFT)
		c->newroute++;
	return 0;
}

static int on_listener(struct weft_source *s, int fd, uint32_t revents, void *userdata)
{
	struct listen_ctx *c = userdata;

	c->drain_result = weft_nl_drain(c->listener, on_notification, c);
	return c->drain_result < 0 ? c->drain_result : 0;
}

static struct listen_ctx lctx;
static struct weft_loop *lloop;

static void test_veth_and_listener(void)
{
	struct weft_link wa0, wb0;
	int idx;

	/* A listener for link and IPv4 route changes, on the loop. */
	CHECK_EQ_INT(weft_nl_open(NETLINK_ROUTE, 0, &lctx.listener), 0);
	CHECK_EQ_INT(weft_nl_join(lctx.listener, RTNLGRP_LINK), 0);
	CHECK_EQ_INT(weft_nl_join(lctx.listener, RTNLGRP_IPV4_ROUTE), 0);
	CHECK_EQ_INT(weft_nl_set_rcvbuf(lctx.listener, 1 << 20), 0);
	CHECK_EQ_INT(weft_loop_new(&lloop), 0);
	CHECK_EQ_INT(weft_loop_add_io(lloop, weft_nl_fd(lctx.listener), EPOLLIN, on_listener, &lctx, NULL), 0);

	/* wa0 here, its peer wb0 straight into namespace B. */
	CHECK_EQ_INT(weft_nl_veth_create(nl, "wa0", "wb0", ns_b, 1400), 0);
	CHECK_EQ_INT(weft_nl_veth_create(nl, "wa0", "wb1", ns_b, 0), -EEXIST);
	CHECK_EQ_INT(weft_nl_link_get(nl, "wa0", &wa0), 0);
	CHECK_STREQ(wa0.kind, "veth");
	CHECK_EQ_INT(wa0.mtu, 1400);
	CHECK(wa0.has_mac);
	CHECK_EQ_INT(weft_nl_link_index(nl, "wb0", &idx), -ENODEV);
	CHECK_EQ_INT(weft_nl_link_get(nlb, "wb0", &wb0), 0);
	CHECK_EQ_INT(wb0.mtu, 1400);
	CHECK_EQ_INT(weft_nl_link_set_mtu(nl, wa0.ifindex, 1450), 0);
	CHECK_EQ_INT(weft_nl_link_set_up(nl, wa0.ifindex, true), 0);
	CHECK_EQ_INT(weft_nl_link_set_up(nlb, wb0.ifindex, true), 0);
	CHECK_EQ_INT(weft_nl_link_get(nl, "wa0", &wa0), 0);
	CHECK_EQ_INT(wa0.mtu, 1450);
	CHECK(wa0.flags & IFF_UP);

	/* The loop sees the listener readable and the drain finds wa0. */
	for (int i = 0; i < 10 && lctx.newlink_wa0 < 3; i++)
		CHECK(weft_loop_run_once(lloop, 1000) >= 0);
	CHECK_EQ_INT(lctx.drain_result >= 0, 1);
	CHECK(lctx.newlink_wa0 >= 3); /* created, mtu, up */
}

static void test_move_netns(void)
{
	int wc0, wd0;

	/* Both ends here, then one moved into B. */
	CHECK_EQ_INT(weft_nl_veth_create(nl, "wc0", "wd0", -1, 0), 0);
	wc0 = ifindex_of(nl, "wc0");
	wd0 = ifindex_of(nl, "wd0");
	CHECK(wc0 > 0 && wd0 > 0);
	CHECK_EQ_INT(weft_nl_link_set_netns(nl, wd0, ns_b), 0);
	CHECK_EQ_INT(ifindex_of(nl, "wd0"), -1);
	CHECK(ifindex_of(nlb, "wd0") > 0);
	/* Deleting one end deletes its peer in the other namespace. */
	CHECK_EQ_INT(weft_nl_link_delete(nl, wc0), 0);
	CHECK_EQ_INT(ifindex_of(nlb, "wd0"), -1);
	CHECK_EQ_INT(weft_nl_link_delete(nl, wc0), -ENODEV);
}

/* ---- addresses ---- */

struct addr_seen {
	bool v4, v6;
};

static int on_addr(const struct weft_addr *a, void *data)
{
	struct addr_seen *seen = data;
	char buf[WEFT_CIDR_STRLEN];

	weft_cidr_str(&a->local, buf, sizeof(buf));
	if (streq(buf, "10.99.0.1/24"))
		seen->v4 = true;
	if (streq(buf, "fd99::1/64"))
		seen->v6 = true;
	return 0;
}

static void test_addresses(void)
{
	int wa0 = ifindex_of(nl, "wa0");
	struct weft_addr a4 = {.ifindex = wa0, .local = cidr("10.99.0.1/24")};
	struct weft_addr a6 = {.ifindex = wa0, .local = cidr("fd99::1/64"), .flags = IFA_F_NODAD};
	struct weft_addr b4 = {.ifindex = ifindex_of(nlb, "wb0"), .local = cidr("10.99.0.2/24")};
	struct weft_addr tmp = {.ifindex = wa0, .local = cidr("10.98.0.1/24")};
	struct addr_seen seen = {0};

	CHECK(wa0 > 0);
	CHECK_EQ_INT(weft_nl_addr_add(nl, &a4), 0);
	CHECK_EQ_INT(weft_nl_addr_add(nl, &a4), 0); /* idempotent */
	CHECK_EQ_INT(weft_nl_addr_add(nl, &a6), 0);
	CHECK_EQ_INT(weft_nl_addr_add(nlb, &b4), 0);
	CHECK_EQ_INT(weft_nl_addr_add(nl, &tmp), 0);
	CHECK_EQ_INT(weft_nl_addr_del(nl, &tmp), 0);
	CHECK_EQ_INT(weft_nl_addr_del(nl, &tmp), -EADDRNOTAVAIL);
	CHECK_EQ_INT(weft_nl_addr_dump(nl, AF_UNSPEC, wa0, on_addr, &seen), 0);
	CHECK(seen.v4);
	CHECK(seen.v6);
	/* Only lo's addresses on index 1. */
	seen = (struct addr_seen){0};
	CHECK_EQ_INT(weft_nl_addr_dump(nl, AF_INET, 1, on_addr, &seen), 0);
	CHECK(!seen.v4);
}

/* ---- routes ---- */

struct route_list {
	int n;
	int n_other_proto;
	int n_table_1000;
	int n_blackhole;
	bool replaced_gw; /* 10.100.0.0/16 via 10.99.0.3 */
	bool v6;
};

static int on_route(const struct weft_route *r, void *data)
{
	struct route_list *l = data;
	char dst[WEFT_CIDR_STRLEN], gw[WEFT_IP_STRLEN] = "";

	weft_cidr_str(&r->dst, dst, sizeof(dst));
	if (r->gateway.family)
		weft_ip_str(&r->gateway, gw, sizeof(gw));
	l->n++;
	if (r->protocol != PROTO_WEFT)
		l->n_other_proto++;
	if (r->table == 1000)
		l->n_table_1000++;
	if (r->type == RTN_BLACKHOLE)
		l->n_blackhole++;
	if (streq(dst, "10.100.0.0/16") && streq(gw, "10.99.0.3"))
		l->replaced_gw = true;
	if (streq(dst, "fd98::/64") && streq(gw, "fd99::2"))
		l->v6 = true;
	return 0;
}

static int on_route_stop(const struct weft_route *r, void *data)
{
	int *calls = data;
	(*calls)++;
	return -ECANCELED;
}

static void test_routes(void)
{
	int wa0 = ifindex_of(nl, "wa0");
	struct weft_route via = {.dst = cidr("10.100.0.0/16"), .gateway = ip("10.99.0.2"), .protocol = PROTO_WEFT};
	struct weft_route dev = {.dst = cidr("10.101.0.0/16"), .oif = wa0, .scope = RT_SCOPE_LINK,
				 .protocol = PROTO_WEFT};
	struct weft_route hole = {.dst = cidr("10.102.0.0/16"), .type = RTN_BLACKHOLE, .protocol = PROTO_WEFT};
	struct weft_route tab = {.dst = cidr("10.103.0.0/24"), .oif = wa0, .scope = RT_SCOPE_LINK,
				 .table = 1000, .protocol = PROTO_WEFT};
	struct weft_route v6 = {.dst = cidr("fd98::/64"), .gateway = ip("fd99::2"), .oif = wa0,
				.protocol = PROTO_WEFT};
	struct weft_route other = {.dst = cidr("10.104.0.0/16"), .oif = wa0, .scope = RT_SCOPE_LINK,
				   .protocol = RTPROT_STATIC};
	struct route_list l = {0};
	int calls = 0;

	CHECK_EQ_INT(weft_nl_route_add(nl, &via), 0);
	CHECK_EQ_INT(weft_nl_route_add(nl, &via), -EEXIST);
	CHECK_EQ_INT(weft_nl_route_add(nl, &dev), 0);
	CHECK_EQ_INT(weft_nl_route_add(nl, &hole), 0);
	CHECK_EQ_INT(weft_nl_route_add(nl, &tab), 0);
	CHECK_EQ_INT(weft_nl_route_add(nl, &v6), 0);
	CHECK_EQ_INT(weft_nl_route_add(nl, &other), 0);
	via.gateway = ip("10.99.0.3");
	CHECK_EQ_INT(weft_nl_route_replace(nl, &via), 0);
	CHECK_EQ_INT(weft_nl_route_replace(nl, &via), 0);

	/* Only weft's own routes, from every table, both families. */
	CHECK_EQ_INT(weft_nl_route_dump(nl, AF_UNSPEC, PROTO_WEFT, on_route, &l), 0);
	CHECK_EQ_INT(l.n, 5);
	CHECK_EQ_INT(l.n_other_proto, 0);
	CHECK_EQ_INT(l.n_table_1000, 1);
	CHECK_EQ_INT(l.n_blackhole, 1);
	CHECK(l.replaced_gw);
	CHECK(l.v6);
	l = (struct route_list){0};
	CHECK_EQ_INT(weft_nl_route_dump(nl, AF_INET, PROTO_WEFT, on_route, &l), 0);
	CHECK_EQ_INT(l.n, 4);
	/* Everything: the kernel's own routes as well. */
	l = (struct route_list){0};
	CHECK_EQ_INT(weft_nl_route_dump(nl, AF_INET, -1, on_route, &l), 0);
	CHECK(l.n_other_proto > 0);

	/* A callback that stops the dump: its error comes back, and the socket
	 * is still in sync for the next request. */
	CHECK_EQ_INT(weft_nl_route_dump(nl, AF_UNSPEC, -1, on_route_stop, &calls), -ECANCELED);
	CHECK_EQ_INT(calls, 1);
	CHECK(ifindex_of(nl, "wa0") == wa0);

	/* Sweep: delete what the dump found, then nothing is left. */
	CHECK_EQ_INT(weft_nl_route_del(nl, &hole), 0);
	CHECK_EQ_INT(weft_nl_route_del(nl, &hole), -ESRCH);
	CHECK_EQ_INT(weft_nl_route_del(nl, &tab), 0);
	CHECK_EQ_INT(weft_nl_route_del(nl, &v6), 0);
	l = (struct route_list){0};
	CHECK_EQ_INT(weft_nl_route_dump(nl, AF_UNSPEC, PROTO_WEFT, on_route, &l), 0);
	CHECK_EQ_INT(l.n, 2);

	/* The listener saw weft's IPv4 routes come. */
	for (int i = 0; i < 10 && lctx.newroute < 4; i++)
		CHECK(weft_loop_run_once(lloop, 1000) >= 0);
	CHECK(lctx.newroute >= 4);
}

static void test_errors(void)
{
	int wa0 = ifindex_of(nl, "wa0");
	struct weft_route unreachable = {.dst = cidr("10.110.0.0/16"), .gateway = ip("10.200.0.1"),
					 .protocol = PROTO_WEFT};
	struct weft_route nodev = {.dst = cidr("10.111.0.0/16"), .oif = 9999, .protocol = PROTO_WEFT};
	struct weft_route onlink = {.dst = cidr("10.112.0.0/16"), .gateway = ip("10.99.0.2"), .oif = wa0,
				    .protocol = PROTO_WEFT};
	struct weft_route mixed = {.dst = cidr("10.113.0.0/16"), .gateway = ip("fd99::2")};
	struct weft_route hostbits = {.dst = cidr("10.114.0.1/16"), .oif = wa0, .scope = RT_SCOPE_LINK};
	int r;

	r = weft_nl_route_add(nl, &unreachable);
	CHECK_EQ_INT(r, -ENETUNREACH);
	fprintf(stderr, "  unreachable gateway: %d \"%s\"\n", r, weft_nl_errmsg(nl));
	CHECK(*weft_nl_errmsg(nl) != 0);

	/* Not every error carries a text: this one has none on 6.x kernels. */
	r = weft_nl_route_add(nl, &nodev);
	CHECK_EQ_INT(r, -ENODEV);
	fprintf(stderr, "  no such device: %d \"%s\"\n", r, weft_nl_errmsg(nl));

	r = weft_nl_route_add(nl, &hostbits);
	CHECK_EQ_INT(r, -EINVAL);
	fprintf(stderr, "  host bits: %d \"%s\"\n", r, weft_nl_errmsg(nl));
	CHECK(*weft_nl_errmsg(nl) != 0);

	/* A success clears the message. */
	CHECK_EQ_INT(weft_nl_route_add(nl, &onlink), 0);
	CHECK_STREQ(weft_nl_errmsg(nl), "");
	CHECK_EQ_INT(weft_nl_route_del(nl, &onlink), 0);

	/* Caught before the kernel sees it. */
	CHECK_EQ_INT(weft_nl_route_add(nl, &mixed), -EINVAL);

	r = weft_nl_link_set_mtu(nl, wa0, 10);
	CHECK_EQ_INT(r, -EINVAL);
	fprintf(stderr, "  mtu 10: %d \"%s\"\n", r, weft_nl_errmsg(nl));
	CHECK(*weft_nl_errmsg(nl) != 0);
}

static void test_neigh(void)
{
	int wa0 = ifindex_of(nl, "wa0");
	static const uint8_t mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x05};
	struct weft_ip n4 = ip("10.99.0.5"), n6 = ip("fd99::5");
	char line[256] = "";
	FILE *f;

	CHECK_EQ_INT(weft_nl_neigh_add_permanent(nl, wa0, &n4, mac), 0);
	CHECK_EQ_INT(weft_nl_neigh_add_permanent(nl, wa0, &n4, mac), 0); /* replace */
	CHECK_EQ_INT(weft_nl_neigh_add_permanent(nl, wa0, &n6, mac), 0);
	CHECK_EQ_INT(weft_nl_neigh_add_permanent(nl, 9999, &n4, mac), -ENODEV);
	/* `ip` runs in this process's namespace. */
	f = popen("ip -4 neigh show dev wa0 2>/dev/null", "r");
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		pclose(f);
		if (line[0]) {
			CHECK(strstr(line, "10.99.0.5") != NULL);
			CHECK(strstr(line, "02:00:00:00:00:05") != NULL);
			CHECK(strstr(line, "PERMANENT") != NULL);
		}
	}
}

/* A tiny receive buffer and a burst of changes: the kernel drops
 * notifications and the drain says "resync needed". */
static void test_enobufs(void)
{
	_cleanup_nl_ struct weft_nl *small = NULL;
	int wa0 = ifindex_of(nl, "wa0");
	struct listen_ctx c = {0};
	int r;

	CHECK_EQ_INT(weft_nl_open(NETLINK_ROUTE, RTMGRP_LINK, &small), 0);
	CHECK_EQ_INT(weft_nl_set_rcvbuf(small, 1), 0);
	for (unsigned i = 0; i < 64; i++)
		CHECK_EQ_INT(weft_nl_link_set_mtu(nl, wa0, 1300 + i), 0);
	r = weft_nl_drain(small, on_notification, &c);
	CHECK_EQ_INT(r, -ENOBUFS);
	CHECK(c.newlink_wa0 < 64);
	/* Once drained the socket works again. */
	CHECK_EQ_INT(weft_nl_drain(small, on_notification, &c), 0);
	CHECK_EQ_INT(weft_nl_link_set_mtu(nl, wa0, 1450), 0);
	CHECK_EQ_INT(weft_nl_drain(small, on_notification, &c), 1);
}

static void test_delete(void)
{
	int wa0 = ifindex_of(nl, "wa0");

	lctx.dellink_wa0 = 0;
	CHECK_EQ_INT(weft_nl_link_delete(nl, wa0), 0);
	CHECK_EQ_INT(ifindex_of(nl, "wa0"), -1);
	CHECK_EQ_INT(ifindex_of(nlb, "wb0"), -1);
	for (int i = 0; i < 10 && lctx.dellink_wa0 < 1; i++)
		CHECK(weft_loop_run_once(lloop, 1000) >= 0);
	CHECK_EQ_INT(lctx.dellink_wa0, 1);
	weft_loop_free(lloop);
	weft_nl_close(lctx.listener);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_lo),	       TEST(test_veth_and_listener), TEST(test_move_netns), TEST(test_addresses),
		TEST(test_routes),     TEST(test_errors),	     TEST(test_neigh),	    TEST(test_enobufs),
		TEST(test_delete),
	};
	int r;

	/* First thing: leave the root namespace. Nothing before this line may
	 * touch the network. */
	if (unshare(CLONE_NEWNET) < 0) {
		if (errno == EPERM) {
			printf("skipped: unshare(CLONE_NEWNET): %s (needs root)\n", strerror(errno));
			return 77;
		}
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return 1;
	}
	ns_a = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	/* Namespace B: enter it, open a socket there, and come back to A. */
	if (ns_a < 0 || unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "second namespace: %s\n", strerror(errno));
		return 1;
	}
	ns_b = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (ns_b < 0 || weft_nl_open(NETLINK_ROUTE, 0, &nlb) < 0 || setns(ns_a, CLONE_NEWNET) < 0) {
		fprintf(stderr, "namespace B setup: %s\n", strerror(errno));
		return 1;
	}
	if (weft_nl_open(NETLINK_ROUTE, 0, &nl) < 0) {
		fprintf(stderr, "netlink socket: %s\n", strerror(errno));
		return 1;
	}
	r = test_run(cases, ARRAY_SIZE(cases));
	weft_nl_close(nl);
	weft_nl_close(nlb);
	close(ns_a);
	close(ns_b);
	return r;
}
