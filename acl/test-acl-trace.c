/* test-acl-trace.c - weft_acl_trace() over compiled programs: the
 * semantics of acl.h, one case at a time. */
#include "acl/acl.h"
#include "acl/test-acl-util.h"
#include "lib/test.h"

struct pk {
	const char *src_if, *src, *dst_if, *dst;
	int proto, dport;
	int icmp_type, icmp_code;
	bool to_host, from_host;
};

/* Trace and check the verdict; the reason of the deciding step (ingress
 * if it was evaluated and egress allowed, else egress) must contain want. */
static void expect(const struct weft_acl_program *p, struct pk k, bool allowed, const char *want)
{
	struct weft_acl_packet pkt = {
		.src_ifname = k.src_if,
		.dst_ifname = k.dst_if,
		.proto = k.proto,
		.sport = k.proto == 6 || k.proto == 17 ? 40000 : -1,
		.dport = k.proto == 6 || k.proto == 17 ? k.dport : -1,
		.icmp_type = k.proto == 1 || k.proto == 58 ? k.icmp_type : -1,
		.icmp_code = k.proto == 1 || k.proto == 58 ? k.icmp_code : -1,
		.to_host = k.to_host,
		.from_host = k.from_host,
	};
	struct weft_acl_verdict v;
	const struct weft_acl_step *st;
	int r;

	CHECK_EQ_INT(weft_ip_parse(k.src, &pkt.src), 0);
	CHECK_EQ_INT(weft_ip_parse(k.dst, &pkt.dst), 0);
	r = weft_acl_trace(p, &pkt, &v);
	CHECK(r == 0 || r == -EINVAL);
	st = v.egress.evaluated && !v.egress.allowed ? &v.egress : v.ingress.evaluated ? &v.ingress : &v.egress;
	if (v.allowed != allowed || !st->reason || !strstr(st->reason, want)) {
		test_failures++;
		fprintf(stderr, "  %s:%s -> %s:%s proto %d/%d: got %s (egress: %s; ingress: %s), want %s with \"%s\"\n",
			k.src_if ? k.src_if : "-", k.src, k.dst_if ? k.dst_if : "-", k.dst, k.proto, k.dport,
			v.allowed ? "allowed" : "denied", v.egress.reason ? v.egress.reason : "(none)",
			v.ingress.reason ? v.ingress.reason : "(none)", allowed ? "allowed" : "denied", want);
	}
	test_checks++;
	weft_acl_verdict_clear(&v);
}

#define TCP(sif, s, dif, d, port) ((struct pk){sif, s, dif, d, 6, port, -1, -1, false, false})

static const char classic[] =
	"kind: Profile\n"
	"metadata: {name: WEB}\n"
	"spec:\n"
	"  inboundRules:\n"
	"  - action: allow\n"
	"    source: {tag: WEB}\n"
	"  - action: allow\n"
	"    protocol: tcp\n"
	"    destination: {ports: [80, 443]}\n"
	"---\n"
	"kind: Profile\n"
	"metadata: {name: DB}\n"
	"spec:\n"
	"  inboundRules:\n"
	"  - action: allow\n"
	"    protocol: tcp\n"
	"    source: {tag: WEB}\n"
	"    destination: {ports: [5432]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: web-1}\n"
	"spec: {node: node-1, hostIfname: wft0001, ipNetworks: [10.65.0.1/32], profiles: [WEB]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: web-2}\n"
	"spec: {node: node-2, hostIfname: wft0002, ipNetworks: [10.65.1.2/32], profiles: [WEB]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: db-1}\n"
	"spec: {node: node-1, hostIfname: wft0003, ipNetworks: [10.65.0.3/32], profiles: [DB]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: other-1}\n"
	"spec: {node: node-1, hostIfname: wft0004, ipNetworks: [10.65.0.4/32], profiles: [NOPE]}\n";

static void test_classic(void)
{
	struct weft_acl_program *p = compile_yaml(classic, "node-1");

	if (!p)
		return;
	/* WEB -> DB 5432: WEB's outbound allows, DB's inbound rule 1 allows. */
	expect(p, TCP("wft0001", "10.65.0.1", "wft0003", "10.65.0.3", 5432), true, "profile DB inbound rule 1 (allow)");
	/* The remote WEB pod too (source not local: only DB's ingress). */
	expect(p, TCP(NULL, "10.65.1.2", "wft0003", "10.65.0.3", 5432), true, "profile DB inbound rule 1 (allow)");
	/* WEB -> DB on another port, other -> DB: no rule matched. */
	expect(p, TCP("wft0001", "10.65.0.1", "wft0003", "10.65.0.3", 22), false,
	       "profile DB inbound: no rule matched (default deny)");
	expect(p, TCP(NULL, "10.65.1.2", "wft0003", "10.65.0.3", 5433), false, "default deny");
	/* other-1's only profile is missing: its egress fails closed. */
	expect(p, TCP("wft0004", "10.65.0.4", "wft0003", "10.65.0.3", 5432), false,
	       "no policy or profile applies (default deny)");
	/* Anyone -> WEB 80 and 443; WEB -> WEB anything. */
	expect(p, TCP(NULL, "192.0.2.1", "wft0001", "10.65.0.1", 80), true, "profile WEB inbound rule 2 (allow)");
	expect(p, TCP(NULL, "192.0.2.1", "wft0001", "10.65.0.1", 443), true, "profile WEB inbound rule 2 (allow)");
	expect(p, TCP(NULL, "192.0.2.1", "wft0001", "10.65.0.1", 22), false, "profile WEB inbound: no rule matched");
	expect(p, TCP(NULL, "10.65.1.2", "wft0001", "10.65.0.1", 22), true, "profile WEB inbound rule 1 (allow)");
	expect(p, ((struct pk){NULL, "10.65.1.2", "wft0001", "10.65.0.1", 17, 53, -1, -1, false, false}), true,
	       "profile WEB inbound rule 1 (allow)");
	/* Leaving the cluster: only the egress. */
	expect(p, TCP("wft0001", "10.65.0.1", NULL, "192.0.2.1", 80), true, "profile WEB outbound rule 1 (allow)");
	/* Anti-spoofing. */
	expect(p, TCP("wft0001", "10.65.0.99", "wft0003", "10.65.0.3", 5432), false,
	       "source address 10.65.0.99 is not the endpoint's (anti-spoofing)");
	/* An interface the program does not know: fail closed, -EINVAL. */
	{
		struct weft_acl_packet pkt = {.src_ifname = "wft9999", .dst_ifname = "wft0003", .proto = 6, .sport = 1,
					      .dport = 5432, .icmp_type = -1, .icmp_code = -1};
		struct weft_acl_verdict v;
		weft_ip_parse("10.65.0.9", &pkt.src);
		weft_ip_parse("10.65.0.3", &pkt.dst);
		CHECK_EQ_INT(weft_acl_trace(p, &pkt, &v), -EINVAL);
		CHECK(!v.allowed && v.egress.evaluated && !v.egress.allowed);
		CHECK(v.egress.reason && strstr(v.egress.reason, "wft9999 has no endpoint"));
		weft_acl_verdict_clear(&v);
	}
	/* The egress step names the endpoint. */
	{
		struct weft_acl_packet pkt = {.src_ifname = "wft0001", .dst_ifname = "wft0003", .proto = 6, .sport = 1,
					      .dport = 5432, .icmp_type = -1, .icmp_code = -1};
		struct weft_acl_verdict v;
		weft_ip_parse("10.65.0.1", &pkt.src);
		weft_ip_parse("10.65.0.3", &pkt.dst);
		CHECK_EQ_INT(weft_acl_trace(p, &pkt, &v), 0);
		CHECK(v.allowed && v.egress.evaluated && v.ingress.evaluated);
		CHECK_STREQ(v.egress.endpoint, "web-1");
		CHECK_STREQ(v.ingress.endpoint, "db-1");
		weft_acl_verdict_clear(&v);
	}
	weft_acl_program_free(p);
}

static const char rules_yaml[] =
	"kind: Profile\n"
	"metadata: {name: R}\n"
	"spec:\n"
	"  inboundRules:\n"
	"  - action: deny\n"                             /* 1 */
	"    protocol: tcp\n"
	"    destination: {ports: [22]}\n"
	"  - action: log\n"                              /* 2 */
	"    protocol: udp\n"
	"  - action: allow\n"                            /* 3 */
	"    protocol: tcp\n"
	"    destination: {ports: [22, '8000:8080'], notPorts: [8005]}\n"
	"  - action: allow\n"                            /* 4 */
	"    protocol: icmp\n"
	"    icmp: {type: 8, code: 0}\n"
	"  - action: allow\n"                            /* 5 */
	"    protocol: icmp\n"
	"    notICMP: {type: 3}\n"
	"    source: {nets: [192.0.2.0/24]}\n"
	"  - action: allow\n"                            /* 6 */
	"    protocol: udp\n"
	"    source: {notTag: R, notNets: [198.51.100.0/24]}\n"
	"    destination: {ports: [53]}\n"
	"  - action: allow\n"                            /* 7 */
	"    notProtocol: tcp\n"
	"    source: {selector: \"role == 'friend'\"}\n"
	"  - action: deny\n"                             /* 8 */
	"    protocol: tcp\n"
	"  - action: allow\n"                            /* 9: after the deny: never */
	"    protocol: tcp\n"
	"    destination: {ports: [9000]}\n"
	"  outboundRules:\n"
	"  - action: allow\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: r1}\n"
	"spec: {node: n1, hostIfname: wftr1, ipNetworks: [10.0.0.1/32, 'fd00::1/128'], profiles: [R]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: r2}\n"
	"spec: {node: n2, hostIfname: wftr2, ipNetworks: [10.0.1.2/32], profiles: [R]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: friend, labels: {role: friend}}\n"
	"spec: {node: n2, hostIfname: wftf, ipNetworks: [10.0.1.3/32]}\n";

static void test_rules(void)
{
	struct weft_acl_program *p = compile_yaml(rules_yaml, "n1");
	const char *R = "wftr1", *me = "10.0.0.1";

	if (!p)
		return;
	/* Deny before allow: 22 is denied by rule 1 although rule 3 allows it. */
	expect(p, TCP(NULL, "192.0.2.1", R, me, 22), false, "profile R inbound rule 1 (deny)");
	/* Port ranges and notPorts. */
	expect(p, TCP(NULL, "192.0.2.1", R, me, 8000), true, "profile R inbound rule 3 (allow)");
	expect(p, TCP(NULL, "192.0.2.1", R, me, 8080), true, "profile R inbound rule 3 (allow)");
	expect(p, TCP(NULL, "192.0.2.1", R, me, 8005), false, "profile R inbound rule 8 (deny)");
	expect(p, TCP(NULL, "192.0.2.1", R, me, 8081), false, "profile R inbound rule 8 (deny)");
	expect(p, TCP(NULL, "192.0.2.1", R, me, 9000), false, "profile R inbound rule 8 (deny)");
	/* ICMP type and code. */
	expect(p, ((struct pk){NULL, "203.0.113.1", R, me, 1, -1, 8, 0, false, false}), true, "rule 4 (allow)");
	expect(p, ((struct pk){NULL, "203.0.113.1", R, me, 1, -1, 8, 1, false, false}), false, "no rule matched");
	/* notICMP with nets: type 0 from 192.0.2/24 yes, type 3 no. */
	expect(p, ((struct pk){NULL, "192.0.2.7", R, me, 1, -1, 0, 0, false, false}), true, "rule 5 (allow)");
	expect(p, ((struct pk){NULL, "192.0.2.7", R, me, 1, -1, 3, 1, false, false}), false, "no rule matched");
	/* notTag and notNets; log goes on and is reported. */
	expect(p, ((struct pk){NULL, "203.0.113.1", R, me, 17, 53, -1, -1, false, false}), true,
	       "profile R inbound rule 6 (allow); logged by profile R inbound rule 2");
	expect(p, ((struct pk){NULL, "198.51.100.1", R, me, 17, 53, -1, -1, false, false}), false, "logged by");
	expect(p, ((struct pk){NULL, "10.0.1.2", R, me, 17, 53, -1, -1, false, false}), false, "no rule matched");
	/* Selector in a rule, with notProtocol. */
	expect(p, ((struct pk){NULL, "10.0.1.3", R, me, 17, 5000, -1, -1, false, false}), true, "rule 7 (allow)");
	expect(p, TCP(NULL, "10.0.1.3", R, me, 5000), false, "rule 8 (deny)");
	/* IPv6 to the same endpoint: the nets rule does not apply. */
	expect(p, ((struct pk){NULL, "2001:db8::1", R, "fd00::1", 58, -1, 128, 0, false, false}), false,
	       "no rule matched");
	expect(p, TCP(NULL, "2001:db8::1", R, "fd00::1", 8000), true, "rule 3 (allow)");
	weft_acl_program_free(p);
}

static const char policy_yaml[] =
	"kind: Policy\n"
	"metadata: {name: deny-ssh}\n"
	"spec:\n"
	"  order: 1\n"
	"  selector: \"role == 'db'\"\n"
	"  ingress:\n"
	"  - action: deny\n"
	"    protocol: tcp\n"
	"    destination: {ports: [22]}\n"
	"  - action: pass\n"
	"    protocol: tcp\n"
	"    destination: {ports: [8080]}\n"
	"---\n"
	"kind: Policy\n"
	"metadata: {name: allow-web}\n"
	"spec:\n"
	"  order: 2\n"
	"  selector: \"role == 'db'\"\n"
	"  ingress:\n"
	"  - action: allow\n"
	"    protocol: tcp\n"
	"    source: {selector: \"role == 'frontend'\"}\n"
	"  - action: allow\n"
	"    protocol: tcp\n"
	"    destination: {ports: [22, 80]}\n"
	"---\n"
	"kind: Policy\n"
	"metadata: {name: egress-host}\n"
	"spec:\n"
	"  order: 3\n"
	"  selector: \"role == 'db'\"\n"
	"  types: [Egress]\n"
	"  egress:\n"
	"  - action: allow\n"
	"    protocol: tcp\n"
	"    destination: {ports: [80]}\n"
	"  - action: pass\n"
	"---\n"
	"kind: Profile\n"
	"metadata: {name: open}\n"
	"spec:\n"
	"  inboundRules: [{action: allow, protocol: tcp, destination: {ports: [8080, 9090]}}]\n"
	"  outboundRules: [{action: allow}]\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: db, labels: {role: db}}\n"
	"spec: {node: n1, hostIfname: wftdb, ipNetworks: [10.0.0.1/32, 'fd00::1/128'], profiles: [open]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: fe, labels: {role: frontend}}\n"
	"spec: {node: n1, hostIfname: wftfe, ipNetworks: [10.0.0.2/32], profiles: [open]}\n";

static void test_policies(void)
{
	struct weft_acl_program *p = compile_yaml(policy_yaml, "n1");

	if (!p)
		return;
	/* Policy order: deny-ssh (1) before allow-web (2). */
	expect(p, TCP(NULL, "10.0.0.2", "wftdb", "10.0.0.1", 22), false, "policy deny-ssh ingress rule 1 (deny)");
	expect(p, TCP("wftfe", "10.0.0.2", "wftdb", "10.0.0.1", 5000), true, "policy allow-web ingress rule 1 (allow)");
	expect(p, TCP(NULL, "192.0.2.1", "wftdb", "10.0.0.1", 80), true, "policy allow-web ingress rule 2 (allow)");
	/* End of policies: the profile would allow 9090, the policies did not. */
	expect(p, TCP(NULL, "192.0.2.1", "wftdb", "10.0.0.1", 9090), false,
	       "policy deny-ssh ingress, policy allow-web ingress: no rule matched (end-of-policies default deny)");
	/* Pass hands over to the profiles. */
	expect(p, TCP(NULL, "192.0.2.1", "wftdb", "10.0.0.1", 8080), true,
	       "profile open inbound rule 1 (allow), after policy deny-ssh ingress rule 2 (pass)");
	/* No policy for fe: its profile decides. */
	expect(p, TCP(NULL, "192.0.2.1", "wftfe", "10.0.0.2", 9090), true, "profile open inbound rule 1 (allow)");
	expect(p, TCP(NULL, "192.0.2.1", "wftfe", "10.0.0.2", 80), false, "profile open inbound: no rule matched");

	/* Workload -> host: egress must allow, and a failsafe port or a
	 * policy allow opens the host. fe has only its profile. */
	expect(p, ((struct pk){"wftfe", "10.0.0.2", NULL, "10.0.0.254", 6, 22, -1, -1, true, false}), true,
	       "tcp port 22 to the host is a failsafe port");
	expect(p, ((struct pk){"wftfe", "10.0.0.2", NULL, "10.0.0.254", 17, 68, -1, -1, true, false}), true,
	       "failsafe");
	expect(p, ((struct pk){"wftfe", "10.0.0.2", NULL, "10.0.0.254", 6, 80, -1, -1, true, false}), false,
	       "profile open outbound rule 1 (allow), but workload to host needs a policy allow or a failsafe port (tcp port 80 is not one)");
	expect(p, ((struct pk){"wftfe", "10.0.0.2", NULL, "10.0.0.254", 1, -1, 8, 0, true, false}), false,
	       "needs a policy allow or a failsafe port");
	/* db: a Policy allows tcp 80 out, so it may reach the host on 80; its
	 * pass then profile allow does not open other ports. */
	expect(p, ((struct pk){"wftdb", "10.0.0.1", NULL, "10.0.0.254", 6, 80, -1, -1, true, false}), true,
	       "policy egress-host egress rule 1 (allow); a policy allow opens the host");
	expect(p, ((struct pk){"wftdb", "10.0.0.1", NULL, "10.0.0.254", 6, 81, -1, -1, true, false}), false,
	       "after policy egress-host egress rule 2 (pass), but workload to host");
	expect(p, ((struct pk){"wftdb", "10.0.0.1", NULL, "10.0.0.254", 6, 2379, -1, -1, true, false}), true,
	       "failsafe");
	/* ICMPv6 MLD (multicast listener query, report, done), router
	 * solicitation, neighbour solicitation and advertisement to the
	 * host: always, even from a link-local address (MLD to its group
	 * address); a router advertisement, a redirect or an echo request
	 * is checked like anything else (here: not the endpoint's address),
	 * as the backends do. */
	expect(p, ((struct pk){"wftdb", "fe80::1", NULL, "ff02::1", 58, -1, 130, 0, true, false}), true,
	       "ICMPv6 multicast listener query (130) to the host (always accepted)");
	expect(p, ((struct pk){"wftdb", "fe80::1", NULL, "ff02::16", 58, -1, 131, 0, true, false}), true,
	       "ICMPv6 multicast listener report (131) to the host (always accepted)");
	expect(p, ((struct pk){"wftdb", "fe80::1", NULL, "ff02::2", 58, -1, 132, 0, true, false}), true,
	       "ICMPv6 multicast listener done (132) to the host (always accepted)");
	expect(p, ((struct pk){"wftdb", "fe80::1", NULL, "fe80::2", 58, -1, 133, 0, true, false}), true,
	       "ICMPv6 router solicitation (133) to the host (always accepted)");
	expect(p, ((struct pk){"wftdb", "fe80::1", NULL, "fe80::2", 58, -1, 135, 0, true, false}), true,
	       "ICMPv6 neighbour solicitation (135) to the host (always accepted)");
	expect(p, ((struct pk){"wftdb", "fe80::1", NULL, "fe80::2", 58, -1, 136, 0, true, false}), true,
	       "ICMPv6 neighbour advertisement (136) to the host (always accepted)");
	expect(p, ((struct pk){"wftdb", "fe80::1", NULL, "fe80::2", 58, -1, 134, 0, true, false}), false,
	       "anti-spoofing");
	expect(p, ((struct pk){"wftdb", "fe80::1", NULL, "fe80::2", 58, -1, 137, 0, true, false}), false,
	       "anti-spoofing");
	expect(p, ((struct pk){"wftdb", "fe80::1", NULL, "fe80::2", 58, -1, 129, 0, true, false}), false,
	       "anti-spoofing");
	/* Only to the host: MLD between pods goes through policy. */
	expect(p, ((struct pk){"wftdb", "fe80::1", "wftfe", "fe80::2", 58, -1, 131, 0, false, false}), false,
	       "anti-spoofing");
	/* A spoofed source to the host on a failsafe port is still dropped. */
	expect(p, ((struct pk){"wftdb", "10.0.0.9", NULL, "10.0.0.254", 6, 22, -1, -1, true, false}), false,
	       "anti-spoofing");
	/* Host -> workload: accepted whatever the policies say. */
	expect(p, ((struct pk){NULL, "10.0.0.254", "wftdb", "10.0.0.1", 6, 9090, -1, -1, false, true}), true,
	       "traffic from the node to its pods is accepted");
	weft_acl_program_free(p);
}

/* A program built by hand (as the backends' tests do): trace copes with
 * a chain the program lacks by failing closed. */
static void test_hand_built(void)
{
	struct weft_acl_program *p = wcalloc(1, sizeof(*p));
	struct weft_acl_endpoint *e;

	p->endpoints = wcalloc(1, sizeof(*p->endpoints));
	p->n_endpoints = 1;
	e = &p->endpoints[0];
	e->name = wstrdup("e");
	e->ifname = wstrdup("wfte");
	e->addrs = wcalloc(1, sizeof(*e->addrs));
	weft_cidr_parse("10.0.0.1/32", true, &e->addrs[0]);
	e->n_addrs = 1;
	e->in_profiles = wcalloc(1, sizeof(char *));
	e->in_profiles[0] = wstrdup("wpi-missing");
	e->n_in_profiles = 1;
	expect(p, TCP(NULL, "192.0.2.1", "wfte", "10.0.0.1", 80), false, "chain wpi-missing is not in the program");
	weft_acl_program_free(p);
}

TEST_MAIN(TEST(test_classic), TEST(test_rules), TEST(test_policies), TEST(test_hand_built))
