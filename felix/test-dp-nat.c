/* test-dp-nat.c - natOutgoing (weft's nftables table) against a real
 * kernel, only ever inside private namespaces.
 *
 * main() records the root namespace's links, routes and nftables ruleset,
 * then moves the process into a fresh network namespace (the "node") with
 * unshare(CLONE_NEWNET) before anything else. Two pods (routed veths from
 * the existing dataplane) and an "outside host" reached through the node's
 * uplink are namespaces held by forked children. A TCP server in the
 * destination namespace reports the source address it sees. nft runs
 * only in the node namespace. At the end the root namespace must be
 * unchanged. Without privilege the test exits 77 (skipped).
 */
#include "felix/dataplane.h"
#include "felix/test-ns.h"
#include "lib/test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

static int home_fd = -1;

/* Move the thread into ns (NULL: back to the fabric namespace). */
static void enter(const struct ns *ns)
{
	if (setns(ns ? ns->fd : home_fd, CLONE_NEWNET) < 0)
		abort();
}

static struct ns pod1, pod2, outside;

static int socket_in(const struct ns *ns)
{
	int s;

	enter(ns);
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	enter(NULL);
	return s;
}

/* Connect from the namespace of client to addr:port served in the one of
 * server; returns the client address the server saw ("" on failure). */
static const char *seen_from(const struct ns *client, const struct ns *server, const char *addr, int port)
{
	static char seen[INET_ADDRSTRLEN];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)}, peer;
	socklen_t plen = sizeof(peer);
	struct timeval tv = {.tv_sec = 3};
	int srv = socket_in(server), cli = socket_in(client), conn = -1, one = 1;

	seen[0] = 0;
	inet_pton(AF_INET, addr, &sa.sin_addr);
	if (srv < 0 || cli < 0)
		goto done;
	setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(cli, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (bind(srv, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(srv, 1) < 0)
		goto done;
	if (connect(cli, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto done;
	conn = accept(srv, (struct sockaddr *)&peer, &plen);
	if (conn >= 0)
		inet_ntop(AF_INET, &peer.sin_addr, seen, sizeof(seen));
done:
	if (!seen[0])
		fprintf(stderr, "  tcp to %s:%d failed: %s\n", addr, port, strerror(errno));
	if (conn >= 0)
		close(conn);
	if (srv >= 0)
		close(srv);
	if (cli >= 0)
		close(cli);
	return seen;
}

static char *nat_table(void)
{
	return out("nft list table ip weft-nat 2>&1");
}

static void test_no_nat(void)
{
	CHECK_STREQ(seen_from(&pod1, &outside, "198.18.0.100", 8001), "10.244.1.5");
	CHECK_STREQ(seen_from(&pod1, &pod2, "10.244.1.6", 8002), "10.244.1.5");
}

static void test_nat(void)
{
	struct weft_cidr pools[] = {cidr("10.244.0.0/16")};
	_cleanup_free_ char *t = NULL, *other = NULL;
	char *err = NULL;

	CHECK_EQ_INT(weft_dp_nat_set(pools, 1, pools, 1, &err), 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	free(err);
	t = nat_table();
	CHECK_HAS(t, "table ip weft-nat");
	CHECK_HAS(t, "type nat hook postrouting priority srcnat; policy accept;");
	CHECK_HAS(t, "ip saddr @pools ip daddr != @allpools masquerade fully-random");
	CHECK_HAS(t, "set pools {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.244.0.0/16 }");
	CHECK_HAS(t, "set allpools {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.244.0.0/16 }");
	/* Leaving the pools: the node's address. Within them: untouched. */
	CHECK_STREQ(seen_from(&pod1, &outside, "198.18.0.100", 8003), "198.18.0.1");
	CHECK_STREQ(seen_from(&pod1, &pod2, "10.244.1.6", 8004), "10.244.1.5");
	other = out("nft list table ip other");
	CHECK_HAS(other, "chain keep");
}

static void test_replace(void)
{
	/* Overlapping and adjacent entries are merged; one pool reaches the
	 * top of the address space; IPv6 entries are ignored. */
	struct weft_cidr nat[] = {cidr("10.250.0.0/16"), cidr("10.244.1.0/24"), cidr("10.244.0.0/16"),
				  cidr("fd00::/48")};
	struct weft_cidr all[] = {cidr("198.18.0.0/24"), cidr("240.0.0.0/4"), cidr("10.251.0.0/16")};
	_cleanup_free_ char *t = NULL, *t2 = NULL, *other = NULL;
	char *err = NULL;

	CHECK_EQ_INT(weft_dp_nat_set(nat, ARRAY_SIZE(nat), all, ARRAY_SIZE(all), &err), 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	free(err);
	t = nat_table();
	CHECK_HAS(t, "elements = { 10.244.0.0/16, 10.250.0.0/16 }");
	/* 10.250/16 and 10.251/16 are adjacent: one interval, a /15. */
	CHECK_HAS(t, "elements = { 10.244.0.0/16, 10.250.0.0/15,");
	CHECK_HAS(t, "198.18.0.0/24, 240.0.0.0/4 }");
	/* Exactly one chain and one rule: the old content is gone. */
	CHECK_HAS(t, "ip saddr @pools ip daddr != @allpools masquerade fully-random");
	CHECK(strstr(strstr(t, "chain ") + 1, "chain ") == NULL);
	CHECK(strstr(strstr(t, "masquerade") + 1, "masquerade") == NULL);
	/* The outside host is inside all pools now: no masquerade. */
	CHECK_STREQ(seen_from(&pod1, &outside, "198.18.0.100", 8005), "10.244.1.5");

	/* The same call again gives the same table. */
	CHECK_EQ_INT(weft_dp_nat_set(nat, ARRAY_SIZE(nat), all, ARRAY_SIZE(all), NULL), 0);
	t2 = nat_table();
	CHECK_STREQ(t, t2);
	other = out("nft list table ip other");
	CHECK_HAS(other, "chain keep");
}

static void test_remove(void)
{
	struct weft_cidr v6[] = {cidr("fd00::/48")};
	struct weft_cidr pools[] = {cidr("10.244.0.0/16")};
	_cleanup_free_ char *t = NULL, *tables = NULL;

	CHECK_EQ_INT(weft_dp_nat_set(NULL, 0, NULL, 0, NULL), 0);
	t = nat_table();
	CHECK_HAS(t, "No such file or directory");
	CHECK_STREQ(seen_from(&pod1, &outside, "198.18.0.100", 8006), "10.244.1.5");
	/* Removing what is not there is fine. */
	CHECK_EQ_INT(weft_dp_nat_set(NULL, 0, pools, 1, NULL), 0);
	/* Only IPv6 NAT pools: nothing for the ip table, so it goes too. */
	CHECK_EQ_INT(weft_dp_nat_set(pools, 1, pools, 1, NULL), 0);
	CHECK_EQ_INT(weft_dp_nat_set(v6, 1, pools, 1, NULL), 0);
	CHECK_EQ_INT(system("nft list table ip weft-nat >/dev/null 2>&1") != 0, 1);
	tables = out("nft list tables");
	CHECK_STREQ(tables, "table ip other\n");
	CHECK_EQ_INT(weft_dp_nat_set(NULL, 1, NULL, 0, NULL), -EINVAL);
}

static const struct test_case cases[] = {
	TEST(test_no_nat),
	TEST(test_nat),
	TEST(test_replace),
	TEST(test_remove),
};

int main(void)
{
	struct ns_guard guard;
	struct weft_dp_result res;
	char *err = NULL;
	int rc;

	rc = ns_isolate(&guard, &home_fd);
	if (rc)
		return rc;
	CHECK_EQ_INT(ns_new(&pod1), 0);
	CHECK_EQ_INT(ns_new(&pod2), 0);
	CHECK_EQ_INT(ns_new(&outside), 0);
	/* The node: uplink 198.18.0.1/24 to the outside host .100, which
	 * routes the pools back to the node (so it can answer un-NATed pods). */
	sh("ip link set lo up && ip link add uplink type veth peer name ext0 netns %d && "
	   "ip addr add 198.18.0.1/24 dev uplink && ip link set uplink up && "
	   "echo 1 > /proc/sys/net/ipv4/conf/uplink/forwarding", (int)outside.pid);
	enter(&outside);
	sh("ip link set lo up && ip link set ext0 up && ip addr add 198.18.0.100/24 dev ext0 && "
	   "ip route add 10.244.0.0/16 via 198.18.0.1");
	enter(NULL);
	for (int i = 0; i < 2; i++) {
		struct weft_dp_routed ep = {.netns_path = i ? pod2.path : pod1.path, .container_id = i ? "c2" : "c1",
					    .ifname = "eth0", .naddrs = 1};
		ep.addrs[0] = ip(i ? "10.244.1.6" : "10.244.1.5");
		CHECK_EQ_INT(weft_dp_routed_add(&ep, &res, &err), 0);
		if (err)
			fprintf(stderr, "  %s\n", err);
		free(err);
		err = NULL;
	}
	/* Someone else's table: must survive everything weft does. */
	sh("nft add table ip other && nft add chain ip other keep '{ type filter hook forward priority 0; }'");

	rc = test_run(cases, ARRAY_SIZE(cases));

	ns_free(&pod1);
	ns_free(&pod2);
	ns_free(&outside);
	if (ns_restore_check(&guard))
		rc = 1;
	return rc;
}
