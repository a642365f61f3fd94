/* test-dataplane.c - the dataplane against a real kernel, only ever inside
 * private namespaces.
 *
 * main() records the root namespace's links and routes, then moves the
 * process into a fresh network namespace (the "node") with
 * unshare(CLONE_NEWNET) before doing anything else. Pod, segment and
 * external-host namespaces are held by forked children that unshare their
 * own network namespace and wait (they die with the test through
 * PR_SET_PDEATHSIG); they are addressed as /proc/PID/ns/net. Inspection
 * uses ip/tc run through nsenter; traffic uses ping and TCP sockets
 * created inside the pod namespaces. At the end the root namespace's links
 * and routes must be what they were. Without the privilege to unshare, the
 * test prints "skipped" and exits 77.
 */
#include "felix/dataplane.h"
#include "felix/dp-internal.h"
#include "felix/test-ns.h"
#include "lib/test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

static int node_fd = -1;

/* TCP from the namespace of a to addr:port in the namespace of b. */
static bool tcp_works(struct ns *a, struct ns *b, const char *addr, int port)
{
	bool ok = ns_tcp(node_fd, a->fd, NULL, b->fd, addr, port, 3000);

	if (!ok)
		fprintf(stderr, "  tcp to %s:%d failed\n", addr, port);
	return ok;
}

/* Count links named wft* / wfb* and routes with weft's protocol. */
static int count_owned(void)
{
	_cleanup_free_ char *links = out("ip -o link show | grep -c ': wf[tb][0-9a-f]*[:@]'");
	_cleanup_free_ char *routes = out("ip route show proto %d | wc -l", WEFT_DP_RTPROTO);
	return atoi(links) * 1000 + atoi(routes);
}

static struct ns pod_a, pod_b;

static struct weft_dp_routed routed(struct ns *pod, const char *cid, const char *addr)
{
	struct weft_dp_routed ep = {
		.netns_path = pod->path,
		.container_id = cid,
		.ifname = "eth0",
		.naddrs = 1,
		.mtu = 1400,
	};
	ep.addrs[0] = ip(addr);
	return ep;
}

static void test_host_ifname(void)
{
	char a[IFNAMSIZ], b[IFNAMSIZ], c[IFNAMSIZ];

	weft_dp_host_ifname("abc", "eth0", a);
	weft_dp_host_ifname("abc", "eth0", b);
	weft_dp_host_ifname("abc", "eth1", c);
	CHECK_STREQ(a, b);
	CHECK(strcmp(a, c) != 0);
	CHECK_EQ_INT(strlen(a), 14);
	/* Pinned: the name is how DEL finds a pod's veth made by an earlier
	 * version (FNV-1a 64 of "abc:eth0", its first 11 hex digits). */
	CHECK_STREQ(a, "wfta1e42178bf6");
	CHECK(dp_is_weft_name(a, WEFT_DP_IFPREFIX));
	CHECK(!dp_is_weft_name("wft0123", WEFT_DP_IFPREFIX));
	CHECK(!dp_is_weft_name("eth0", WEFT_DP_IFPREFIX));
}

static void test_routed(void)
{
	struct weft_dp_routed a = routed(&pod_a, "ctr-a", "10.65.0.1");
	struct weft_dp_routed b = routed(&pod_b, "ctr-b", "10.65.0.2");
	struct weft_dp_result ra, rb;
	char host_a[IFNAMSIZ], v[32], path[96];
	char *err = NULL;
	char *s;

	weft_dp_host_ifname("ctr-a", "eth0", host_a);
	CHECK_EQ_INT(weft_dp_routed_add(&a, &ra, &err), 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	CHECK_EQ_INT(weft_dp_routed_add(&b, &rb, &err), 0);
	CHECK_STREQ(ra.host_ifname, host_a);
	CHECK(ra.pod_ifindex > 0);
	CHECK_EQ_INT(ra.host_mac[0], 0xee);

	/* Pod side. */
	s = out("nsenter --net=%s ip -4 addr show dev eth0", pod_a.path);
	CHECK_HAS(s, "inet 10.65.0.1/32");
	CHECK_HAS(s, "mtu 1400");
	free(s);
	s = out("nsenter --net=%s ip route show default", pod_a.path);
	CHECK_HAS(s, "default via 169.254.1.1 dev eth0 onlink");
	free(s);
	s = out("nsenter --net=%s ip neigh show 169.254.1.1 dev eth0", pod_a.path);
	CHECK_HAS(s, "lladdr ee:ee:ee:ee:ee:ee PERMANENT");
	free(s);
	/* Node side. */
	s = out("ip route show proto %d", WEFT_DP_RTPROTO);
	{
		_cleanup_free_ char *want = wasprintf("10.65.0.1 dev %s scope link", host_a);
		CHECK_HAS(s, want);
	}
	free(s);
	s = out("ip link show %s", host_a);
	CHECK_HAS(s, "mtu 1400");
	CHECK_HAS(s, "link/ether ee:ee:ee:ee:ee:ee");
	CHECK_HAS(s, "state UP");
	free(s);
	static const char *const sysctls[] = {"proxy_arp", "forwarding", "route_localnet"};
	for (size_t i = 0; i < ARRAY_SIZE(sysctls); i++) {
		snprintf(path, sizeof(path), "ipv4/conf/%s/%s", host_a, sysctls[i]);
		CHECK_EQ_INT(dp_sysctl_read(path, v, sizeof(v)), 0);
		CHECK_STREQ(v, "1");
	}
	snprintf(path, sizeof(path), "ipv4/neigh/%s/proxy_delay", host_a);
	CHECK_EQ_INT(dp_sysctl_read(path, v, sizeof(v)), 0);
	CHECK_STREQ(v, "0");

	/* Traffic: the two pods reach each other. */
	CHECK_EQ_INT(sh("nsenter --net=%s ping -q -c 2 -i 0.2 -W 2 10.65.0.2 >/dev/null", pod_a.path), 0);
	CHECK_EQ_INT(sh("nsenter --net=%s ping -q -c 2 -i 0.2 -W 2 10.65.0.1 >/dev/null", pod_b.path), 0);
	CHECK(tcp_works(&pod_a, &pod_b, "10.65.0.2", 5555));
	CHECK(tcp_works(&pod_b, &pod_a, "10.65.0.1", 5556));

	/* CHECK passes, then fails after tampering, and a new ADD repairs. */
	CHECK_EQ_INT(weft_dp_routed_check(&a, &err), 0);
	CHECK(err == NULL);
	CHECK_EQ_INT(sh("nsenter --net=%s ip neigh del 169.254.1.1 dev eth0", pod_a.path), 0);
	CHECK_EQ_INT(weft_dp_routed_check(&a, &err), -ENOENT);
	CHECK(err && strstr(err, "neighbour"));
	free(err);
	err = NULL;
	CHECK_EQ_INT(weft_dp_routed_add(&a, &ra, &err), 0);
	CHECK_EQ_INT(weft_dp_routed_check(&a, &err), 0);
	snprintf(path, sizeof(path), "ipv4/conf/%s/proxy_arp", host_a);
	CHECK_EQ_INT(dp_sysctl_write(path, "0"), 0);
	CHECK_EQ_INT(weft_dp_routed_check(&a, &err), -EINVAL);
	CHECK(err && strstr(err, "proxy_arp"));
	free(err);
	err = NULL;
	CHECK_EQ_INT(sh("ip route del 10.65.0.1 dev %s", host_a), 0);
	CHECK_EQ_INT(weft_dp_routed_add(&a, &ra, &err), 0);
	CHECK_EQ_INT(weft_dp_routed_check(&a, &err), 0);
	CHECK_EQ_INT(sh("nsenter --net=%s ping -q -c 1 -W 2 10.65.0.2 >/dev/null", pod_a.path), 0);

	/* DEL removes the veth (both ends) and the route; twice is fine. */
	CHECK_EQ_INT(weft_dp_routed_del("ctr-a", "eth0", &err), 0);
	CHECK_EQ_INT(weft_dp_routed_del("ctr-a", "eth0", &err), 0);
	CHECK(err == NULL);
	CHECK(fails("ip link show %s >/dev/null 2>&1", host_a));
	s = out("ip route show proto %d", WEFT_DP_RTPROTO);
	CHECK_HASNT(s, "10.65.0.1");
	CHECK_HAS(s, "10.65.0.2");
	free(s);
	CHECK(fails("nsenter --net=%s ip link show eth0 >/dev/null 2>&1", pod_a.path));
	CHECK_EQ_INT(weft_dp_routed_check(&a, &err), -ENOENT);
	free(err);
	err = NULL;
	/* And ADD works again afterwards (pod B stays for the sweep test). */
	CHECK_EQ_INT(weft_dp_routed_add(&a, &ra, &err), 0);
	CHECK_EQ_INT(weft_dp_routed_del("ctr-a", "eth0", &err), 0);
	free(err);
}

static void test_routed_dualstack(void)
{
	struct ns c, d;
	struct weft_dp_routed ec, ed;
	char host[IFNAMSIZ], path[96], v[32];
	char *err = NULL, *s;

	CHECK_EQ_INT(weft_dp_node_prepare(true, &err), 0);
	CHECK_EQ_INT(ns_new(&c), 0);
	CHECK_EQ_INT(ns_new(&d), 0);
	ec = routed(&c, "ctr-c", "10.65.3.1");
	ec.addrs[1] = ip("fd00:65::1");
	ec.naddrs = 2;
	ed = routed(&d, "ctr-d", "10.65.3.2");
	ed.addrs[1] = ip("fd00:65::2");
	ed.naddrs = 2;
	CHECK_EQ_INT(weft_dp_routed_add(&ec, NULL, &err), 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	CHECK_EQ_INT(weft_dp_routed_add(&ed, NULL, &err), 0);
	weft_dp_host_ifname("ctr-c", "eth0", host);
	s = out("nsenter --net=%s ip -6 route show default", c.path);
	CHECK_HAS(s, "default via fe80::ecee:eeff:feee:eeee dev eth0");
	free(s);
	s = out("ip -6 route show proto %d", WEFT_DP_RTPROTO);
	CHECK_HAS(s, "fd00:65::1 dev");
	free(s);
	snprintf(path, sizeof(path), "ipv6/conf/%s/proxy_ndp", host);
	CHECK_EQ_INT(dp_sysctl_read(path, v, sizeof(v)), 0);
	CHECK_STREQ(v, "1");
	CHECK_EQ_INT(weft_dp_routed_check(&ec, &err), 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	/* The host side's link-local address needs DAD to finish first. */
	CHECK_EQ_INT(sh("for i in 1 2 3 4 5 6 7 8 9 10; do nsenter --net=%s ping -6 -q -c 1 -W 1 fd00:65::2 "
			">/dev/null && exit 0; sleep 0.3; done; exit 1",
			c.path),
		     0);
	CHECK_EQ_INT(sh("nsenter --net=%s ping -q -c 1 -W 2 10.65.3.1 >/dev/null", d.path), 0);
	CHECK_EQ_INT(weft_dp_routed_del("ctr-c", "eth0", &err), 0);
	CHECK_EQ_INT(weft_dp_routed_del("ctr-d", "eth0", &err), 0);
	s = out("ip -6 route show proto %d", WEFT_DP_RTPROTO);
	CHECK_HASNT(s, "fd00:65::");
	free(s);
	ns_free(&c);
	ns_free(&d);
	free(err);
}

static void test_bandwidth(void)
{
	struct ns pod;
	struct weft_dp_routed ep;
	struct weft_dp_result res;
	char host[IFNAMSIZ], ifb[IFNAMSIZ];
	char *err = NULL, *s;

	CHECK_EQ_INT(ns_new(&pod), 0);
	ep = routed(&pod, "ctr-bw", "10.65.0.9");
	ep.bw.ingress_rate = 10000000;
	ep.bw.egress_rate = 20000000;
	ep.bw.egress_burst = 800000;
	weft_dp_host_ifname("ctr-bw", "eth0", host);
	dp_ifb_name(host, ifb);
	CHECK_EQ_INT(weft_dp_routed_add(&ep, &res, &err), 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	s = out("tc qdisc show dev %s", host);
	CHECK_HAS(s, "qdisc tbf 1: root");
	CHECK_HAS(s, "rate 10Mbit");
	CHECK_HAS(s, "qdisc ingress ffff:");
	free(s);
	s = out("tc filter show dev %s ingress", host);
	CHECK_HAS(s, "u32");
	CHECK_HAS(s, "mirred (Egress Redirect to device");
	CHECK_HAS(s, ifb);
	free(s);
	s = out("tc qdisc show dev %s", ifb);
	CHECK_HAS(s, "qdisc tbf 1: root");
	CHECK_HAS(s, "rate 20Mbit burst 100000b");
	free(s);
	CHECK_EQ_INT(weft_dp_routed_check(&ep, &err), 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	/* A different rate is a CHECK failure. */
	ep.bw.egress_rate = 30000000;
	CHECK_EQ_INT(weft_dp_routed_check(&ep, &err), -EINVAL);
	CHECK(err && strstr(err, "rate"));
	free(err);
	err = NULL;
	ep.bw.egress_rate = 20000000;
	/* Traffic still flows through the shaping both ways. */
	CHECK_EQ_INT(sh("ip addr add 10.64.255.1/32 dev lo 2>/dev/null; nsenter --net=%s ping -q -c 2 -i 0.2 -W 2 "
			"10.64.255.1 >/dev/null",
			pod.path),
		     0);
	CHECK_EQ_INT(weft_dp_routed_del("ctr-bw", "eth0", &err), 0);
	CHECK(fails("ip link show %s >/dev/null 2>&1", ifb));
	CHECK(fails("ip link show %s >/dev/null 2>&1", host));
	ns_free(&pod);
	free(err);
}

/* iperf3 through 10 Mbit/s limits, each direction, within 15%. */
static double iperf_mbps(struct ns *client, const char *server_ip, bool reverse)
{
	_cleanup_free_ char *s = out("nsenter --net=%s iperf3 -c %s -t 3 -O 1 -f m %s 2>&1 | grep receiver",
				     client->path, server_ip, reverse ? "-R" : "");
	const char *p = strstr(s, "MBytes");
	double mbps = 0;

	if (p && sscanf(p, "MBytes %lf", &mbps) != 1)
		mbps = 0;
	if (!p)
		fprintf(stderr, "  iperf3: %s\n", s);
	return mbps;
}

static void iperf_run(struct ns *pod, struct ns *peer, uint64_t rate)
{
	struct weft_dp_routed ep = routed(pod, "ctr-ip1", "10.65.1.1"), ep2 = routed(peer, "ctr-ip2", "10.65.1.2");
	double mbps[2], want = (double)rate / 1e6;
	char *err = NULL;

	ep.mtu = ep2.mtu = 1500;
	ep.bw.ingress_rate = rate;
	ep.bw.egress_rate = rate;
	CHECK_EQ_INT(weft_dp_routed_add(&ep, NULL, &err), 0);
	CHECK_EQ_INT(weft_dp_routed_add(&ep2, NULL, &err), 0);
	for (int reverse = 0; reverse < 2; reverse++) {
		/* Up to 3 measurements: on a loaded machine (the suite runs
		 * tests in parallel) iperf3 itself can be starved of CPU and
		 * fall short of the limit; the shaper is what is under test. */
		for (int attempt = 0; attempt < 3; attempt++) {
			pid_t srv = fork();

			if (srv == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				if (setns(peer->fd, CLONE_NEWNET) == 0 && freopen("/dev/null", "w", stdout))
					execlp("iperf3", "iperf3", "-s", "-B", "10.65.1.2", "-p", "5201", "-1",
					       (char *)NULL);
				_exit(127);
			}
			usleep(300000);
			/* reverse 0: the pod sends (its egress); 1: it receives. */
			mbps[reverse] = iperf_mbps(pod, "10.65.1.2", reverse);
			kill(srv, SIGKILL);
			waitpid(srv, NULL, 0);
			if (mbps[reverse] > want * 0.85 && mbps[reverse] < want * 1.15)
				break;
			fprintf(stderr, "  iperf3 attempt %d at %.0f Mbit/s (%s): %.2f Mbit/s, measuring again\n",
				attempt + 1, want, reverse ? "ingress" : "egress", mbps[reverse]);
		}
	}
	fprintf(stderr, "  iperf3 at %.0f Mbit/s: pod egress %.2f, pod ingress %.2f Mbit/s\n", want, mbps[0],
		mbps[1]);
	CHECK(mbps[0] > want * 0.85 && mbps[0] < want * 1.15);
	CHECK(mbps[1] > want * 0.85 && mbps[1] < want * 1.15);
	CHECK_EQ_INT(weft_dp_routed_del("ctr-ip1", "eth0", &err), 0);
	CHECK_EQ_INT(weft_dp_routed_del("ctr-ip2", "eth0", &err), 0);
	free(err);
}

static void test_bandwidth_iperf(void)
{
	struct ns pod, peer;

	if (access("/usr/bin/iperf3", X_OK) != 0) {
		fprintf(stderr, "  iperf3 not installed, skipping\n");
		return;
	}
	CHECK_EQ_INT(ns_new(&pod), 0);
	CHECK_EQ_INT(ns_new(&peer), 0);
	iperf_run(&pod, &peer, 10000000);
	iperf_run(&pod, &peer, 100000000);
	ns_free(&pod);
	ns_free(&peer);
}

static void test_sweep(void)
{
	char host_b[IFNAMSIZ];
	const char *keep[] = {host_b};
	char *err = NULL, *s;
	int n;

	weft_dp_host_ifname("ctr-b", "eth0", host_b);
	CHECK_EQ_INT(sh("ip link add wft0123456789a type veth peer name strayp0"), 0);
	CHECK_EQ_INT(sh("ip link add wfb0123456789a type ifb"), 0);
	CHECK_EQ_INT(sh("ip link add keepme0 type veth peer name keepme1 && ip link set keepme0 up && "
			"ip link set keepme1 up"),
		     0);
	CHECK_EQ_INT(sh("ip route add 10.77.0.1 dev keepme0 proto %d scope link", WEFT_DP_RTPROTO), 0);
	CHECK_EQ_INT(sh("ip route add 10.78.0.1 dev keepme0 scope link"), 0);
	n = weft_dp_sweep(keep, 1, &err);
	CHECK_EQ_INT(n, 3);
	if (err)
		fprintf(stderr, "  %s\n", err);
	s = out("ip -o link show");
	CHECK_HASNT(s, "wft0123456789a");
	CHECK_HASNT(s, "wfb0123456789a");
	CHECK_HAS(s, "keepme0");
	CHECK_HAS(s, host_b);
	free(s);
	s = out("ip route show");
	CHECK_HASNT(s, "10.77.0.1");
	CHECK_HAS(s, "10.78.0.1");
	CHECK_HAS(s, "10.65.0.2");
	free(s);
	/* Nothing left to do the second time; the kept endpoint still works. */
	CHECK_EQ_INT(weft_dp_sweep(keep, 1, &err), 0);
	CHECK_EQ_INT(weft_dp_routed_check(&(struct weft_dp_routed){.netns_path = pod_b.path,
								    .container_id = "ctr-b",
								    .ifname = "eth0",
								    .addrs = {ip("10.65.0.2")},
								    .naddrs = 1,
								    .mtu = 1400},
					  &err),
		     0);
	/* An empty keep list removes pod B's endpoint too. */
	CHECK_EQ_INT(weft_dp_sweep(NULL, 0, &err), 1);
	CHECK(fails("ip link show %s >/dev/null 2>&1", host_b));
	CHECK_EQ_INT(sh("ip link del keepme0"), 0);
	free(err);
}

/* The sweep while links come and go beside it (kubelet, another CNI):
 * link dumps interrupted by a change are taken again, so it succeeds. */
static void test_sweep_churn(void)
{
	const char *keep[] = {"wftcccccccccc1"};
	char *err = NULL;
	int failed = 0;
	pid_t churn;

	CHECK_EQ_INT(sh("for i in $(seq 0 199); do echo \"link add chn$i type veth peer name chp$i\"; done | ip -batch -"),
		     0);
	/* A kept endpoint and an orphan, each with its route. */
	CHECK_EQ_INT(sh("ip link add wftcccccccccc1 type veth peer name kp1 && ip link set wftcccccccccc1 up && "
			"ip route add 10.98.0.1 dev wftcccccccccc1 proto 81 && "
			"ip link add wftdddddddddd1 type veth peer name op1 && ip link set wftdddddddddd1 up && "
			"ip route add 10.98.0.2 dev wftdddddddddd1 proto 81"),
		     0);
	fflush(NULL);
	churn = fork();
	if (churn == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl("/bin/sh", "sh", "-c",
		      "while :; do ip link add chx type veth peer name chy; sleep 0.01; ip link del chx; sleep 0.01; done >/dev/null 2>&1",
		      (char *)NULL);
		_exit(127);
	}
	CHECK(churn > 0);
	for (int i = 0; i < 100; i++) {
		if (weft_dp_sweep(keep, 1, &err) < 0) {
			if (failed++ == 0)
				fprintf(stderr, "  sweep %d: %s\n", i, err ? err : "?");
		}
		free(err);
		err = NULL;
	}
	kill(churn, SIGKILL);
	waitpid(churn, NULL, 0);
	CHECK_EQ_INT(failed, 0);
	CHECK(fails("ip link show wftdddddddddd1 >/dev/null 2>&1"));
	CHECK_EQ_INT(sh("ip route show proto 81 | grep -q '^10.98.0.1 dev wftcccccccccc1'"), 0);
	CHECK_EQ_INT(sh("ip link del wftcccccccccc1"), 0);
	sh("ip link del chx 2>/dev/null; for i in $(seq 0 199); do echo \"link del chn$i\"; done | ip -batch -");
}

static void test_macvlan(void)
{
	struct ns seg, ext, p1, p2;
	struct weft_dp_macvlan m = {.ifname = "net1", .master = "up0", .mode = "bridge", .naddrs = 1, .nroutes = 1};
	struct weft_dp_result r1, r2;
	char *err = NULL, *s;

	CHECK_EQ_INT(ns_new(&seg), 0);
	CHECK_EQ_INT(ns_new(&ext), 0);
	CHECK_EQ_INT(ns_new(&p1), 0);
	CHECK_EQ_INT(ns_new(&p2), 0);
	/* The segment: a bridge; the node's uplink up0 and the external
	 * host's e0 are veths into it (created from here, both ends placed
	 * in their namespaces). */
	CHECK_EQ_INT(sh("ip link add up0 type veth peer name n1 netns %d && ip link set up0 up", (int)seg.pid), 0);
	CHECK_EQ_INT(sh("ip link add e0 netns %d type veth peer name n2 netns %d", (int)ext.pid, (int)seg.pid), 0);
	CHECK_EQ_INT(sh("nsenter --net=%s sh -c 'ip link add br0 type bridge && ip link set br0 up && "
			"ip link set n1 master br0 up && ip link set n2 master br0 up'",
			seg.path),
		     0);
	CHECK_EQ_INT(sh("nsenter --net=%s sh -c 'ip addr add 192.168.91.254/24 dev e0 && ip link set e0 up && "
			"ip addr add 10.200.0.1/32 dev lo && ip link set lo up'",
			ext.path),
		     0);

	/* p1 has a main interface with the default route (as the main CNI
	 * plugin leaves it before Multus adds net1). */
	CHECK_EQ_INT(sh("nsenter --net=%s sh -c 'ip link add eth0 type veth peer name eth0p && ip link set eth0 up && "
			"ip addr add 10.65.0.9/32 dev eth0 && ip route add 169.254.1.1 dev eth0 && "
			"ip route add default via 169.254.1.1 dev eth0'",
			p1.path),
		     0);
	m.netns_path = p1.path;
	m.addrs[0] = cidr("192.168.91.10/24");
	m.gateway = ip("192.168.91.254");
	m.routes[0].dst = cidr("10.201.0.0/16");
	m.mtu = 1400;
	CHECK_EQ_INT(weft_dp_macvlan_add(&m, &r1, &err), 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	CHECK(r1.pod_ifindex > 0);
	/* p2 asks for its default route through the macvlan. */
	m.netns_path = p2.path;
	m.addrs[0] = cidr("192.168.91.11/24");
	m.routes[1].dst = cidr("0.0.0.0/0");
	m.nroutes = 2;
	CHECK_EQ_INT(weft_dp_macvlan_add(&m, &r2, &err), 0);
	m.nroutes = 1;
	CHECK(memcmp(r1.pod_mac, r2.pod_mac, 6) != 0);

	s = out("nsenter --net=%s ip -d link show net1", p1.path);
	CHECK_HAS(s, "macvlan mode bridge");
	CHECK_HAS(s, "mtu 1400");
	free(s);
	/* The gateway alone takes no default route from the main interface. */
	s = out("nsenter --net=%s ip route", p1.path);
	CHECK_HAS(s, "default via 169.254.1.1 dev eth0");
	CHECK(!strstr(s, "default via 192.168.91.254"));
	CHECK_HAS(s, "10.201.0.0/16 via 192.168.91.254 dev net1");
	CHECK_HAS(s, "192.168.91.0/24 dev net1");
	free(s);
	s = out("nsenter --net=%s ip route", p2.path);
	CHECK_HAS(s, "default via 192.168.91.254 dev net1");
	free(s);
	CHECK(fails("ip link show net1 >/dev/null 2>&1")); /* never in the node */

	CHECK_EQ_INT(sh("nsenter --net=%s ping -q -c 2 -i 0.2 -W 2 192.168.91.11 >/dev/null", p1.path), 0);
	CHECK_EQ_INT(sh("nsenter --net=%s ping -q -c 2 -i 0.2 -W 2 192.168.91.254 >/dev/null", p1.path), 0);
	CHECK_EQ_INT(sh("nsenter --net=%s ping -q -c 2 -i 0.2 -W 2 192.168.91.10 >/dev/null", ext.path), 0);
	/* Through the gateway (the external host's loopback address). */
	CHECK_EQ_INT(sh("nsenter --net=%s ping -q -c 1 -W 2 10.200.0.1 >/dev/null", p2.path), 0);
	CHECK(tcp_works(&p1, &p2, "192.168.91.11", 5557));

	m.netns_path = p1.path;
	m.addrs[0] = cidr("192.168.91.10/24");
	CHECK_EQ_INT(weft_dp_macvlan_check(&m, &err), 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	/* Adding the same name again is refused and changes nothing. */
	CHECK_EQ_INT(weft_dp_macvlan_add(&m, NULL, &err), -EEXIST);
	free(err);
	err = NULL;
	CHECK_EQ_INT(weft_dp_macvlan_check(&m, &err), 0);
	CHECK_EQ_INT(sh("nsenter --net=%s ip route del 10.201.0.0/16", p1.path), 0);
	CHECK_EQ_INT(weft_dp_macvlan_check(&m, &err), -ENOENT);
	free(err);
	err = NULL;

	CHECK_EQ_INT(weft_dp_macvlan_del(p1.path, "net1", &err), 0);
	CHECK_EQ_INT(weft_dp_macvlan_del(p1.path, "net1", &err), 0);
	CHECK(fails("nsenter --net=%s ip link show net1 >/dev/null 2>&1", p1.path));
	CHECK_EQ_INT(weft_dp_macvlan_check(&m, &err), -ENOENT);
	free(err);
	err = NULL;
	CHECK_EQ_INT(weft_dp_macvlan_del("/nonexistent/netns", "net1", &err), 0);
	CHECK_EQ_INT(weft_dp_macvlan_del(NULL, "net1", &err), 0);
	ns_free(&p2); /* pod gone: DEL still succeeds */
	CHECK_EQ_INT(weft_dp_macvlan_del(m.netns_path, "net1", &err), 0);

	/* Failures: a missing master, an unknown mode, a taken name. */
	m.master = "nosuch0";
	CHECK_EQ_INT(weft_dp_macvlan_add(&m, NULL, &err), -ENODEV);
	CHECK(err && strstr(err, "master nosuch0"));
	free(err);
	err = NULL;
	m.master = "up0";
	m.mode = "fancy";
	CHECK_EQ_INT(weft_dp_macvlan_add(&m, NULL, &err), -EINVAL);
	free(err);
	err = NULL;
	m.mode = "private";
	CHECK_EQ_INT(sh("nsenter --net=%s ip link add net1 type veth peer name net1p", p1.path), 0);
	CHECK_EQ_INT(weft_dp_macvlan_add(&m, NULL, &err), -EEXIST);
	CHECK(err && strstr(err, "create macvlan"));
	free(err);
	err = NULL;
	/* The veth that was there is not the macvlan's to delete. */
	CHECK_EQ_INT(weft_dp_macvlan_del(p1.path, "net1", &err), 0);
	CHECK_EQ_INT(sh("nsenter --net=%s ip link show net1 >/dev/null 2>&1", p1.path), 0);

	CHECK_EQ_INT(sh("ip link del up0"), 0);
	ns_free(&p1);
	ns_free(&ext);
	ns_free(&seg);
	free(err);
}

static void test_failure_paths(void)
{
	struct ns pod;
	struct weft_dp_routed ep;
	char host[IFNAMSIZ], ifb[IFNAMSIZ];
	char *err = NULL;
	int before = count_owned();

	CHECK_EQ_INT(ns_new(&pod), 0);
	/* The interface name is taken in the pod. */
	CHECK_EQ_INT(sh("nsenter --net=%s ip link add eth0 type veth peer name eth0p", pod.path), 0);
	ep = routed(&pod, "ctr-f", "10.65.0.20");
	CHECK_EQ_INT(weft_dp_routed_add(&ep, NULL, &err), -EEXIST);
	CHECK(err && strstr(err, "create veth"));
	fprintf(stderr, "  (expected) %s\n", err ? err : "");
	free(err);
	err = NULL;
	CHECK_EQ_INT(count_owned(), before);

	/* A bad netns path. */
	ep.netns_path = "/nonexistent/netns/x";
	CHECK_EQ_INT(weft_dp_routed_add(&ep, NULL, &err), -ENOENT);
	CHECK(err && strstr(err, "open netns /nonexistent/netns/x"));
	free(err);
	err = NULL;
	CHECK_EQ_INT(count_owned(), before);

	/* Failure half-way (after the veth, routes and sysctls): the ifb
	 * name is taken by something that is not an ifb. Everything this
	 * call made is removed. */
	ep = routed(&pod, "ctr-g", "10.65.0.21");
	ep.ifname = "eth1";
	ep.bw.egress_rate = 1000000;
	weft_dp_host_ifname("ctr-g", "eth1", host);
	dp_ifb_name(host, ifb);
	CHECK_EQ_INT(sh("ip link add %s type veth peer name blockp0", ifb), 0);
	before = count_owned();
	CHECK_EQ_INT(weft_dp_routed_add(&ep, NULL, &err), -EEXIST);
	CHECK(err && strstr(err, "create ifb"));
	fprintf(stderr, "  (expected) %s\n", err ? err : "");
	free(err);
	err = NULL;
	CHECK_EQ_INT(count_owned(), before);
	CHECK(fails("ip link show %s >/dev/null 2>&1", host));
	CHECK(fails("nsenter --net=%s ip link show eth1 >/dev/null 2>&1", pod.path));
	CHECK_EQ_INT(sh("ip link del %s", ifb), 0);

	/* Bad arguments. */
	ep.ifname = "this-name-is-too-long";
	CHECK_EQ_INT(weft_dp_routed_add(&ep, NULL, &err), -EINVAL);
	free(err);
	err = NULL;
	ns_free(&pod);
}

static const struct test_case cases[] = {
	TEST(test_host_ifname), TEST(test_routed),  TEST(test_routed_dualstack), TEST(test_bandwidth), TEST(test_sweep), TEST(test_sweep_churn),
	TEST(test_macvlan),     TEST(test_failure_paths), TEST(test_bandwidth_iperf),
};

int main(void)
{
	struct ns_guard guard;
	int rc;

	rc = ns_isolate(&guard, &node_fd);
	if (rc)
		return rc;
	sh("ip link set lo up && ip addr add 10.64.0.1/32 dev lo");
	CHECK_EQ_INT(ns_new(&pod_a), 0);
	CHECK_EQ_INT(ns_new(&pod_b), 0);

	rc = test_run(cases, ARRAY_SIZE(cases));

	ns_free(&pod_a);
	ns_free(&pod_b);
	/* The root namespace is what it was. */
	if (ns_restore_check(&guard))
		rc = 1;
	return rc;
}
