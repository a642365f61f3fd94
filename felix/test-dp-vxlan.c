/* test-dp-vxlan.c - the VXLAN dataplane against a real kernel, only ever
 * inside private namespaces.
 *
 * main() records the root namespace's links, routes and nftables ruleset,
 * then moves the process into a fresh network namespace (the "fabric",
 * holding a bridge: the underlay segment 198.18.0.0/24) with
 * unshare(CLONE_NEWNET) before anything else. Two node namespaces and a
 * pod for each are held by forked children (/proc/PID/ns/net) that die
 * with the test. The dataplane functions run in a node's namespace by
 * setns()ing the (single) test thread into it and back; shell commands
 * inherit the namespace the thread is in. At the end the root namespace
 * must be unchanged. Without privilege the test exits 77 (skipped).
 */
#include "felix/dataplane.h"
#include "felix/test-ns.h"
#include "lib/test.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static int home_fd = -1;

/* Move the thread into ns (NULL: back to the fabric namespace). */
static void enter(const struct ns *ns)
{
	if (setns(ns ? ns->fd : home_fd, CLONE_NEWNET) < 0)
		abort();
}

static void mac_text(const char *node, char buf[18])
{
	uint8_t m[6];

	weft_dp_vxlan_mac(node, m);
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* The topology: node N (1, 2) has underlay 198.18.0.N/24 on "uplink",
 * block 10.244.N.0/26, tunnel address 10.244.N.0, one pod 10.244.N.5. */
static struct ns node[3], pod[3];
static struct weft_cidr block[3];

static struct weft_dp_vxlan_dev dev_of(int n)
{
	static char names[3][16];
	char a[32];

	snprintf(names[n], sizeof(names[n]), "node%d", n);
	struct weft_dp_vxlan_dev d = {.node_name = names[n], .parent = "uplink"};
	snprintf(a, sizeof(a), "198.18.0.%d", n);
	d.local = ip(a);
	snprintf(a, sizeof(a), "10.244.%d.0", n);
	d.tunnel_addr = ip(a);
	return d;
}

static struct weft_dp_vxlan_peer peer_of(int n)
{
	struct weft_dp_vxlan_dev d = dev_of(n);
	struct weft_dp_vxlan_peer p = {.underlay = d.local, .tunnel = d.tunnel_addr, .blocks = &block[n], .nblocks = 1};

	weft_dp_vxlan_mac(d.node_name, p.mac);
	return p;
}

/* Everything weft programs on the device, as text, for before/after. */
static char *vxlan_state(void)
{
	/* Without the ifindex (a recreated device has a new one) and the
	 * kernel's IPv6 link-local address (its DAD state changes). */
	return out("ip -d link show weft.vxlan | sed '1s/^[0-9]*://'; ip -4 addr show dev weft.vxlan | sed '1s/^[0-9]*://'; "
		   "ip route show dev weft.vxlan; ip neigh show dev weft.vxlan nud permanent; "
		   "bridge fdb show dev weft.vxlan");
}

static unsigned long long tx_packets(void)
{
	_cleanup_free_ char *j = out("ip -j -s link show dev weft.vxlan");
	const char *p = strstr(j, "\"tx\":{");

	p = p ? strstr(p, "\"packets\":") : NULL;
	return p ? strtoull(p + 10, NULL, 10) : 0;
}

static void test_mac(void)
{
	uint8_t a[6], b[6], c[6];

	weft_dp_vxlan_mac("node1", a);
	weft_dp_vxlan_mac("node1", b);
	weft_dp_vxlan_mac("node2", c);
	CHECK(memcmp(a, b, 6) == 0);
	CHECK(memcmp(a, c, 6) != 0);
	CHECK_EQ_INT(a[0] & 3, 2); /* locally administered unicast */
	CHECK_EQ_INT(c[0] & 3, 2);
	CHECK(strlen(WEFT_DP_VXLAN_IFNAME) < IFNAMSIZ);
}

static void test_device(void)
{
	struct weft_dp_vxlan_dev d = dev_of(1);
	_cleanup_free_ char *link = NULL, *addrs = NULL, *before = NULL, *after = NULL, *fwd = NULL;
	char *err = NULL, mac[18];

	enter(&node[1]);
	CHECK_EQ_INT(weft_dp_vxlan_ensure(&d, &err), 1);
	if (err)
		fprintf(stderr, "  %s\n", err);
	free(err);
	err = NULL;
	mac_text("node1", mac);
	/* Pinned: other nodes' FDB entries name this MAC (FNV-1a 64 of the
	 * node name, locally administered). */
	CHECK_STREQ(mac, "ca:4e:ba:72:07:23");
	link = out("ip -d link show weft.vxlan");
	CHECK_HAS(link, "vxlan id 4096");
	CHECK_HAS(link, "local 198.18.0.1");
	CHECK_HAS(link, "dev uplink");
	CHECK_HAS(link, "dstport 4789");
	CHECK_HAS(link, "nolearning");
	CHECK_HAS(link, "mtu 1450"); /* uplink 1500 - 50 */
	CHECK_HAS(link, mac);
	CHECK_HAS(link, ",UP");
	addrs = out("ip -4 addr show dev weft.vxlan");
	CHECK_HAS(addrs, "inet 10.244.1.0/32");
	fwd = out("cat /proc/sys/net/ipv4/conf/weft.vxlan/forwarding");
	CHECK_HAS(fwd, "1");

	/* Idempotent: nothing changes on a second call. */
	before = vxlan_state();
	CHECK_EQ_INT(weft_dp_vxlan_ensure(&d, NULL), 0);
	after = vxlan_state();
	CHECK_STREQ(before, after);

	/* Drift is repaired in place. */
	sh("ip link set weft.vxlan down mtu 1300 address 02:00:00:00:00:99 && ip addr add 10.9.9.9/32 dev weft.vxlan");
	CHECK_EQ_INT(weft_dp_vxlan_ensure(&d, NULL), 0);
	free(after);
	after = vxlan_state();
	CHECK_STREQ(before, after);

	/* Another VNI or port means a new device. */
	d.vni = 4097;
	CHECK_EQ_INT(weft_dp_vxlan_ensure(&d, NULL), 1);
	free(link);
	link = out("ip -d link show weft.vxlan");
	CHECK_HAS(link, "vxlan id 4097");
	d.vni = 0;
	d.port = 8472;
	CHECK_EQ_INT(weft_dp_vxlan_ensure(&d, NULL), 1);
	free(link);
	link = out("ip -d link show weft.vxlan");
	CHECK_HAS(link, "dstport 8472");
	d.port = 0;
	CHECK_EQ_INT(weft_dp_vxlan_ensure(&d, NULL), 1);
	free(after);
	after = vxlan_state();
	CHECK_STREQ(before, after);

	/* A foreign device of another kind with the name is replaced. */
	CHECK_EQ_INT(weft_dp_vxlan_remove(), 1);
	CHECK_EQ_INT(weft_dp_vxlan_remove(), 0);
	sh("ip link add weft.vxlan type bridge");
	CHECK_EQ_INT(weft_dp_vxlan_ensure(&d, NULL), 1);
	free(link);
	link = out("ip -d link show weft.vxlan");
	CHECK_HAS(link, "vxlan id 4096");

	/* Bad input and a missing parent: errors, nothing created. */
	CHECK_EQ_INT(weft_dp_vxlan_remove(), 1);
	d.parent = "nosuchdev";
	CHECK_EQ_INT(weft_dp_vxlan_ensure(&d, &err), -ENODEV);
	CHECK(err && strstr(err, "nosuchdev"));
	free(err);
	err = NULL;
	d.parent = "uplink";
	d.local = ip("fd00::1");
	CHECK_EQ_INT(weft_dp_vxlan_ensure(&d, NULL), -EINVAL);
	CHECK(system("ip link show weft.vxlan >/dev/null 2>&1") != 0);
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(NULL, 0, NULL), -ENODEV);
	enter(NULL);
}

/* Both nodes with their device and pod, peers programmed crosswise. */
static void setup_nodes(void)
{
	for (int n = 1; n <= 2; n++) {
		struct weft_dp_vxlan_dev d = dev_of(n);
		struct weft_dp_routed ep = {.netns_path = pod[n].path, .container_id = "c", .ifname = "eth0", .naddrs = 1};
		struct weft_dp_result res;
		char a[32], *err = NULL;

		snprintf(a, sizeof(a), "10.244.%d.5", n);
		ep.addrs[0] = ip(a);
		enter(&node[n]);
		CHECK(weft_dp_vxlan_ensure(&d, &err) >= 0);
		CHECK_EQ_INT(weft_dp_routed_add(&ep, &res, &err), 0);
		if (err)
			fprintf(stderr, "  node%d: %s\n", n, err);
		free(err);
		enter(NULL);
	}
}

static void test_pod_to_pod(void)
{
	struct weft_dp_vxlan_peer p1 = peer_of(1), p2 = peer_of(2);
	_cleanup_free_ char *routes = NULL, *neigh = NULL, *fdb = NULL, *before = NULL, *after = NULL;
	unsigned long long tx0, tx1;
	char *err = NULL, mac2[18];

	setup_nodes();
	enter(&node[1]);
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(&p2, 1, &err), 3); /* FDB, neighbour, route */
	if (err)
		fprintf(stderr, "  %s\n", err);
	free(err);
	err = NULL;
	enter(&node[2]);
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(&p1, 1, &err), 3);
	free(err);
	err = NULL;

	enter(&node[1]);
	mac_text("node2", mac2);
	routes = out("ip route show dev weft.vxlan");
	CHECK_HAS(routes, "10.244.2.0/26 via 10.244.2.0 proto 81 onlink");
	neigh = out("ip neigh show dev weft.vxlan");
	CHECK_HAS(neigh, "10.244.2.0 lladdr");
	CHECK_HAS(neigh, mac2);
	CHECK_HAS(neigh, "PERMANENT");
	fdb = out("bridge fdb show dev weft.vxlan");
	CHECK_HAS(fdb, mac2);
	CHECK_HAS(fdb, "dst 198.18.0.2 self permanent");

	tx0 = tx_packets();
	CHECK_EQ_INT(sh("nsenter --net=%s ping -c 3 -i 0.2 -W 2 -q 10.244.2.5 >/dev/null", pod[1].path), 0);
	CHECK_EQ_INT(sh("nsenter --net=%s ping -c 2 -i 0.2 -W 2 -q 10.244.1.5 >/dev/null", pod[2].path), 0);
	tx1 = tx_packets();
	/* 3 requests + 2 replies went out encapsulated through node1's VTEP. */
	CHECK(tx1 >= tx0 + 5);
	if (tx1 < tx0 + 5)
		fprintf(stderr, "  weft.vxlan tx packets %llu -> %llu\n", tx0, tx1);

	/* A second call changes nothing. */
	before = vxlan_state();
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(&p2, 1, NULL), 0);
	after = vxlan_state();
	CHECK_STREQ(before, after);

	/* The endpoint sweep leaves the VXLAN device's routes alone. */
	char host[IFNAMSIZ];
	const char *keep[] = {host};
	weft_dp_host_ifname("c", "eth0", host);
	CHECK_EQ_INT(weft_dp_sweep(keep, 1, NULL), 0);
	free(after);
	after = vxlan_state();
	CHECK_STREQ(before, after);
	enter(NULL);
}

static void test_peer_changes(void)
{
	struct weft_cidr blocks3[2] = {cidr("10.244.3.0/26"), cidr("10.244.3.64/26")};
	struct weft_cidr blocks2[2] = {cidr("10.244.2.0/26"), cidr("10.244.2.128/26")};
	struct weft_dp_vxlan_peer peers[2];
	_cleanup_free_ char *st = NULL, *foreign = NULL;
	char *err = NULL, mac3[18], mac2[18];

	peers[0] = peer_of(2);
	peers[1] = (struct weft_dp_vxlan_peer){.underlay = ip("198.18.0.3"), .tunnel = ip("10.244.3.0"),
					       .blocks = blocks3, .nblocks = 2};
	weft_dp_vxlan_mac("node3", peers[1].mac);
	mac_text("node3", mac3);
	mac_text("node2", mac2);

	enter(&node[1]);
	/* Objects that are not weft's: another protocol on the device, and
	 * a dynamic neighbour. They must survive every sweep. */
	sh("ip route add 10.77.0.0/24 via 10.244.2.0 dev weft.vxlan onlink proto static");
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(peers, 2, &err), 1 + 1 + 2);
	if (err)
		fprintf(stderr, "  %s\n", err);
	free(err);
	err = NULL;
	st = vxlan_state();
	CHECK_HAS(st, "10.244.3.0/26 via 10.244.3.0 proto 81 onlink");
	CHECK_HAS(st, "10.244.3.64/26 via 10.244.3.0 proto 81 onlink");
	CHECK_HAS(st, mac3);
	CHECK_HAS(st, "dst 198.18.0.3 self permanent");

	/* node2 gains a block and moves to another underlay address. */
	peers[0].blocks = blocks2;
	peers[0].nblocks = 2;
	peers[0].underlay = ip("198.18.0.22");
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(peers, 2, NULL), 2);
	free(st);
	st = vxlan_state();
	CHECK_HAS(st, "10.244.2.128/26 via 10.244.2.0 proto 81 onlink");
	CHECK_HAS(st, "dst 198.18.0.22 self permanent");
	CHECK_HASNT(st, "dst 198.18.0.2 ");
	peers[0] = peer_of(2);

	/* node3 leaves: its FDB entry, neighbour and both routes go, node2 is
	 * back at its address and without its second block. */
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(peers, 1, NULL), 1 + 1 + 1 + 3);
	free(st);
	st = vxlan_state();
	CHECK_HASNT(st, "10.244.3.");
	CHECK_HASNT(st, mac3);
	CHECK_HASNT(st, "10.244.2.128/26");
	CHECK_HAS(st, "10.244.2.0/26 via 10.244.2.0 proto 81 onlink");
	CHECK_HAS(st, "dst 198.18.0.2 self permanent");
	foreign = out("ip route show dev weft.vxlan proto static");
	CHECK_HAS(foreign, "10.77.0.0/24");
	CHECK_EQ_INT(sh("nsenter --net=%s ping -c 1 -W 2 -q 10.244.2.5 >/dev/null", pod[1].path), 0);

	/* Invalid input changes nothing. */
	peers[1] = peers[0]; /* same tunnel address twice */
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(peers, 2, &err), -EINVAL);
	CHECK(err != NULL);
	free(err);
	err = NULL;
	peers[1] = peer_of(1);
	peers[1].tunnel = ip("fd00::1");
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(peers, 2, NULL), -EINVAL);
	{
		_cleanup_free_ char *again = vxlan_state();
		CHECK_STREQ(st, again);
	}

	/* No peers: everything weft put on the device goes. */
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(NULL, 0, NULL), 3);
	free(st);
	st = out("ip route show dev weft.vxlan proto 81; ip neigh show dev weft.vxlan nud permanent; "
		 "bridge fdb show dev weft.vxlan");
	CHECK_STREQ(st, "");
	free(foreign);
	foreign = out("ip route show dev weft.vxlan proto static");
	CHECK_HAS(foreign, "10.77.0.0/24");

	/* remove takes the device and everything on it. */
	CHECK_EQ_INT(weft_dp_vxlan_remove(), 1);
	CHECK(system("ip link show weft.vxlan >/dev/null 2>&1") != 0);
	CHECK_EQ_INT(weft_dp_vxlan_remove(), 0);
	enter(NULL);
}

/* A peer's tunnel address moves: its routes follow before the old
 * neighbour entry goes (ip monitor sees the order), so no route points at
 * an address without an entry in between. */
static void test_tunnel_moves(void)
{
	struct weft_dp_vxlan_peer p = peer_of(2);
	_cleanup_free_ char *path = wasprintf("/tmp/weft-test-dp-vxlan-mon.%d", (int)getpid()), *mon = NULL;
	const char *route, *del;
	pid_t pid;

	enter(&node[1]);
	CHECK(weft_dp_vxlan_set_peers(&p, 1, NULL) >= 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(1);
		execlp("ip", "ip", "-o", "monitor", "route", "neigh", (char *)NULL);
		_exit(127);
	}
	usleep(200 * 1000);
	p.tunnel = ip("10.244.2.1");
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(&p, 1, NULL), 3);
	usleep(200 * 1000);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	mon = out("cat %s", path);
	unlink(path);
	route = strstr(mon, "10.244.2.0/26 via 10.244.2.1 dev weft.vxlan");
	del = strstr(mon, "Deleted 10.244.2.0 dev weft.vxlan");
	CHECK(route && del && route < del);
	if (!(route && del && route < del))
		fprintf(stderr, "  monitor:\n%s", mon);
	p = peer_of(2);
	CHECK_EQ_INT(weft_dp_vxlan_set_peers(&p, 1, NULL), 3);
	CHECK_EQ_INT(sh("nsenter --net=%s ping -c 1 -W 2 -q 10.244.2.5 >/dev/null", pod[1].path), 0);
	enter(NULL);
}

static const struct test_case cases[] = {
	TEST(test_mac),
	TEST(test_device),
	TEST(test_pod_to_pod),
	TEST(test_tunnel_moves),
	TEST(test_peer_changes),
};

int main(void)
{
	struct ns_guard guard;
	int rc;

	rc = ns_isolate(&guard, &home_fd);
	if (rc)
		return rc;
	block[1] = cidr("10.244.1.0/26");
	block[2] = cidr("10.244.2.0/26");
	sh("ip link set lo up && ip link add br0 type bridge && ip link set br0 up");
	for (int n = 1; n <= 2; n++) {
		CHECK_EQ_INT(ns_new(&node[n]), 0);
		CHECK_EQ_INT(ns_new(&pod[n]), 0);
		sh("ip link add n%d type veth peer name uplink netns %d && ip link set n%d master br0 up", n,
		   (int)node[n].pid, n);
		enter(&node[n]);
		sh("ip link set lo up && ip link set uplink up && ip addr add 198.18.0.%d/24 dev uplink", n);
		enter(NULL);
	}

	rc = test_run(cases, ARRAY_SIZE(cases));

	for (int n = 1; n <= 2; n++) {
		ns_free(&pod[n]);
		ns_free(&node[n]);
	}
	if (ns_restore_check(&guard))
		rc = 1;
	return rc;
}
