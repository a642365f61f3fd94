/* test-acl-ipt.c - the ipset + iptables ACL backend against a real kernel,
 * only ever inside private network namespaces.
 *
 * main() records the root namespace (links, routes, nftables through
 * ns_isolate; legacy iptables tables and ipsets here), then moves itself
 * into a fresh "node" namespace. Pods are namespaces held by children,
 * wired with the dataplane library's routed endpoints (veths, /32 routes,
 * the 169.254.1.1 gateway) as weftd would. Programs are built by hand (the
 * compiler is tested on its own) and checked with real TCP and ICMP
 * traffic. argv[1] picks the iptables variant (default "iptables").
 * Without the privilege to unshare, the test prints "skipped", exits 77.
 */
#include "acl/acl.h"
#include "felix/dataplane.h"
#include "felix/test-ns.h"
#include "lib/test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>

static const char *variant = "iptables";
static int node_fd = -1;
static struct ns node, pod_a, pod_b, pod_c;
static struct weft_dp_result ra, rb, rcc;
static int next_port = 7000;

/* ---- traffic ---- */

/* A TCP connection from namespace a (source address src, or the default)
 * to addr:port served in namespace b, with a message across. */
static bool tcp_ok(struct ns *a, struct ns *b, const char *src, const char *addr, int port)
{
	return ns_tcp(node_fd, a->fd, src, b->fd, addr, port, 1000);
}

static bool tcp(struct ns *a, struct ns *b, const char *addr, int port)
{
	return tcp_ok(a, b, NULL, addr, port);
}

static bool ping(struct ns *a, const char *addr)
{
	return !fails("nsenter --net=%s ping -q -c 1 -W 1 %s >/dev/null 2>&1", a->path, addr);
}

/* ---- building programs by hand ---- */

static struct weft_acl_program *prog_new(void)
{
	struct weft_acl_program *p = wcalloc(1, sizeof(*p));

	p->failsafe = wcalloc(1, sizeof(*p->failsafe));
	p->failsafe[0] = (struct weft_acl_failsafe){.proto = IPPROTO_TCP, .port = 22};
	p->n_failsafe = 1;
	return p;
}

static struct weft_acl_set *add_set(struct weft_acl_program *p, const char *name, int family)
{
	struct weft_acl_set *s;

	p->sets = wrealloc(p->sets, (p->n_sets + 1) * sizeof(*p->sets));
	s = &p->sets[p->n_sets++];
	memset(s, 0, sizeof(*s));
	s->name = wstrdup(name);
	s->origin = wasprintf("test %s", name);
	s->family = family;
	return s;
}

static void set_add(struct weft_acl_set *s, const char *c)
{
	s->elems = wrealloc(s->elems, (s->n_elems + 1) * sizeof(*s->elems));
	CHECK_EQ_INT(weft_cidr_parse_host(c, &s->elems[s->n_elems]), 0);
	s->n_elems++;
}

static struct weft_acl_set *find_set(struct weft_acl_program *p, const char *name)
{
	return (struct weft_acl_set *)weft_acl_program_set(p, name);
}

static struct weft_acl_chain *add_chain(struct weft_acl_program *p, const char *name, enum weft_acl_chain_kind kind)
{
	struct weft_acl_chain *c;

	p->chains = wrealloc(p->chains, (p->n_chains + 1) * sizeof(*p->chains));
	c = &p->chains[p->n_chains++];
	memset(c, 0, sizeof(*c));
	c->name = wstrdup(name);
	c->origin = wasprintf("test chain %s", name);
	c->kind = kind;
	return c;
}

static struct weft_acl_chain *find_chain(struct weft_acl_program *p, const char *name)
{
	return (struct weft_acl_chain *)weft_acl_program_chain(p, name);
}

static struct weft_acl_rule *add_rule(struct weft_acl_chain *c, enum weft_acl_action a, int proto)
{
	struct weft_acl_rule *r;

	c->rules = wrealloc(c->rules, (c->n_rules + 1) * sizeof(*c->rules));
	r = &c->rules[c->n_rules++];
	memset(r, 0, sizeof(*r));
	r->action = a;
	r->proto = proto;
	r->not_proto = -1;
	r->icmp_type = r->icmp_code = r->not_icmp_type = r->not_icmp_code = -1;
	r->origin = wasprintf("%s rule %zu", c->name, c->n_rules);
	return r;
}

static void rule_dport(struct weft_acl_rule *r, uint16_t lo, uint16_t hi)
{
	r->dports = wrealloc(r->dports, (r->n_dports + 1) * sizeof(*r->dports));
	r->dports[r->n_dports++] = (struct weft_acl_portrange){lo, hi};
}

static void rule_addr(struct weft_acl_rule *r, const char *set, bool src, bool negate, int family)
{
	r->addrs = wrealloc(r->addrs, (r->n_addrs + 1) * sizeof(*r->addrs));
	r->addrs[r->n_addrs++] = (struct weft_acl_addr_match){.src = src, .negate = negate, .set = wstrdup(set)};
	r->family = family;
}

static void strv_free_test(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void strv_push(char ***v, size_t *n, const char *s)
{
	*v = wrealloc(*v, (*n + 1) * sizeof(char *));
	(*v)[(*n)++] = wstrdup(s);
}

static struct weft_acl_endpoint *add_ep(struct weft_acl_program *p, const char *name, const struct weft_dp_result *res,
					 const char *addr)
{
	struct weft_acl_endpoint *e;

	p->endpoints = wrealloc(p->endpoints, (p->n_endpoints + 1) * sizeof(*p->endpoints));
	e = &p->endpoints[p->n_endpoints++];
	memset(e, 0, sizeof(*e));
	e->name = wstrdup(name);
	e->ifname = wstrdup(res->host_ifname);
	e->addrs = wcalloc(1, sizeof(*e->addrs));
	weft_cidr_parse_host(addr, &e->addrs[0]);
	e->n_addrs = 1;
	memcpy(e->mac, res->pod_mac, 6);
	e->has_mac = true;
	return e;
}

/* The base program: pods A (10.65.0.1) and B (10.65.0.2), both with
 * profile "web": inbound allow tcp 80 from set web4 (A only), inbound
 * allow icmp; outbound allow everything. */
static struct weft_acl_program *base_program(void)
{
	struct weft_acl_program *p = prog_new();
	struct weft_acl_set *s = add_set(p, "web4", AF_INET);
	struct weft_acl_chain *in, *outc;
	struct weft_acl_rule *r;
	struct weft_acl_endpoint *e;

	/* (Adding moves the arrays: look chains up once all are added.) */
	add_chain(p, "wpi-web", WEFT_ACL_CHAIN_PROFILE);
	add_chain(p, "wpo-web", WEFT_ACL_CHAIN_PROFILE);
	in = find_chain(p, "wpi-web");
	outc = find_chain(p, "wpo-web");
	set_add(s, "10.65.0.1");
	in->ingress = true;
	r = add_rule(in, WEFT_ACL_ALLOW, IPPROTO_TCP);
	rule_dport(r, 80, 80);
	rule_dport(r, 8000, 8080);
	rule_addr(r, "web4", true, false, AF_INET);
	add_rule(in, WEFT_ACL_ALLOW, IPPROTO_ICMP);
	add_rule(outc, WEFT_ACL_ALLOW, -1);
	e = add_ep(p, "a", &ra, "10.65.0.1");
	strv_push(&e->in_profiles, &e->n_in_profiles, "wpi-web");
	strv_push(&e->out_profiles, &e->n_out_profiles, "wpo-web");
	e = add_ep(p, "b", &rb, "10.65.0.2");
	strv_push(&e->in_profiles, &e->n_in_profiles, "wpi-web");
	strv_push(&e->out_profiles, &e->n_out_profiles, "wpo-web");
	return p;
}

static struct weft_acl_backend *be;

static int apply(struct weft_acl_program *p, struct weft_acl_stats *st)
{
	char *err = NULL;
	int r = weft_acl_apply(be, p, st, &err);

	if (r < 0)
		fprintf(stderr, "  apply: %d %s\n", r, err ? err : "");
	free(err);
	return r;
}

static int count_substr(const char *s, const char *sub)
{
	int n = 0;

	for (s = strstr(s, sub); s; s = strstr(s + 1, sub))
		n++;
	return n;
}

static char *save_all(void)
{
	return out("%s-save -t filter 2>/dev/null | grep -v '^#'; ip6tables%s-save -t filter 2>/dev/null | grep -v '^#'",
		   variant, variant + strlen("iptables"));
}

static int count_weft(void)
{
	_cleanup_free_ char *s = out("{ %s-save; ip6tables%s-save; } 2>/dev/null | grep -c weft; ipset list -n | grep -c '^weft'",
				     variant, variant + strlen("iptables"));
	int a = 0, b = 0;

	sscanf(s, "%d %d", &a, &b);
	return a + b;
}

/* ---- tests ---- */

static void test_open(void)
{
	struct weft_acl_backend *x = NULL;
	char *err = NULL;

	CHECK_EQ_INT(weft_acl_ipt_open("nonesuch", &x, &err), -EINVAL);
	CHECK(err != NULL);
	free(err);
	err = NULL;
	CHECK_EQ_INT(weft_acl_ipt_open("/nonexistent/iptables", &x, &err), -ENOENT);
	CHECK(err && strstr(err, "iptables-restore"));
	free(err);
	err = NULL;
	CHECK_EQ_INT(weft_acl_ipt_open(variant, &be, &err), 0);
	CHECK_STREQ(weft_acl_backend_name(be), "ipt");
	free(err);
}

static void test_no_endpoint_yet(void)
{
	/* Before any apply: no filtering at all (weft not installed). */
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", next_port++));
	CHECK_EQ_INT(count_weft(), 0);
}

static void test_profiles(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_stats st;
	_cleanup_free_ char *s = NULL;

	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(st.full);
	CHECK_EQ_INT(st.sets_created, 1);
	CHECK_EQ_INT(st.elems_added, 1);
	CHECK_EQ_INT(st.chains_created, 2);
	CHECK_EQ_INT(st.endpoints_added, 2);
	s = save_all();
	CHECK_HAS(s, "-A FORWARD -j weft-forward");
	CHECK_HAS(s, "-A INPUT -j weft-input");
	CHECK_HAS(s, "-A OUTPUT -j weft-output");
	CHECK_HAS(s, "--match-set weft-web4 src");
	CHECK_HAS(s, "-m multiport --dports 80,8000:8080");

	/* A is in web4: A -> B tcp 80 and 8000-8080 allowed, 81 not. */
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 80));
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 8080));
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 81));
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 8081));
	/* B is not: B -> A tcp 80 dropped; icmp allowed both ways. */
	CHECK(!tcp(&pod_b, &pod_a, "10.65.0.1", 80));
	CHECK(ping(&pod_a, "10.65.0.2"));
	CHECK(ping(&pod_b, "10.65.0.1"));
	weft_acl_program_free(p);
}

static void test_membership_incremental(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_stats st;
	_cleanup_free_ char *before = save_all(), *after = NULL;

	set_add(find_set(p, "web4"), "10.65.0.2");
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(!st.full);
	CHECK_EQ_INT(st.elems_added, 1);
	CHECK_EQ_INT(st.elems_removed, 0);
	CHECK_EQ_INT(st.sets_created + st.sets_deleted, 0);
	CHECK_EQ_INT(st.chains_created + st.chains_replaced + st.chains_deleted, 0);
	CHECK_EQ_INT(st.endpoints_added + st.endpoints_removed + st.endpoints_replaced, 0);
	after = save_all();
	CHECK_STREQ(before, after); /* no rule touched */
	CHECK(tcp(&pod_b, &pod_a, "10.65.0.1", 80));

	/* Same program again: nothing at all. */
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.elems_added + st.elems_removed + st.chains_replaced, 0);
	weft_acl_program_free(p);

	/* And back: one element removed. */
	p = base_program();
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.elems_removed, 1);
	CHECK_EQ_INT(st.elems_added, 0);
	CHECK(!tcp(&pod_b, &pod_a, "10.65.0.1", 80));
	weft_acl_program_free(p);
}

static void test_rule_change(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_stats st;
	struct weft_acl_rule *r;

	/* Deny before allow: tcp 8001 denied, the rest of 8000-8080 allowed. */
	r = add_rule(find_chain(p, "wpi-web"), WEFT_ACL_ALLOW, IPPROTO_TCP);
	rule_dport(r, 9000, 9000);
	{
		struct weft_acl_chain *c = find_chain(p, "wpi-web");
		struct weft_acl_rule deny = c->rules[c->n_rules - 1];

		memmove(&c->rules[1], &c->rules[0], (c->n_rules - 1) * sizeof(*c->rules));
		c->rules[0] = deny;
		c->rules[0].action = WEFT_ACL_DENY;
		c->rules[0].dports[0] = (struct weft_acl_portrange){8001, 8001};
	}
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.chains_replaced, 1);
	CHECK_EQ_INT(st.chains_created + st.chains_deleted, 0);
	CHECK_EQ_INT(st.elems_added + st.elems_removed, 0);
	CHECK_EQ_INT(st.endpoints_replaced, 0);
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 8001));
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 8002));
	weft_acl_program_free(p);
}

static void test_policies(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_chain *pol, *pass;
	struct weft_acl_stats st;
	struct weft_acl_rule *r;

	add_chain(p, "wgi-pol", WEFT_ACL_CHAIN_POLICY);
	add_chain(p, "wgi-pass", WEFT_ACL_CHAIN_POLICY);
	pol = find_chain(p, "wgi-pol");
	pass = find_chain(p, "wgi-pass");
	/* B ingress: policy pol allows tcp 5000, passes tcp 80 to the
	 * profiles, denies 5001; policy pass (second) passes everything.
	 * Order matters: pol first. */
	pol->ingress = pass->ingress = true;
	r = add_rule(pol, WEFT_ACL_ALLOW, IPPROTO_TCP);
	rule_dport(r, 5000, 5000);
	r = add_rule(pol, WEFT_ACL_LOG, IPPROTO_TCP);
	r->log_prefix = wstrdup("weft pol i2 ");
	r = add_rule(pol, WEFT_ACL_DENY, IPPROTO_TCP);
	rule_dport(r, 5001, 5001);
	r = add_rule(pol, WEFT_ACL_PASS, IPPROTO_TCP);
	rule_dport(r, 80, 80);
	strv_push(&p->endpoints[1].in_policies, &p->endpoints[1].n_in_policies, "wgi-pol");
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.chains_created, 2); /* wgi-pass is not used yet but exists */
	CHECK_EQ_INT(st.endpoints_replaced, 1);
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 5000));  /* policy allow */
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 5001)); /* policy deny */
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 80));    /* pass -> profile allows */
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 8000)); /* policy applied, none decided: drop */
	CHECK(!ping(&pod_a, "10.65.0.2"));              /* the same for icmp */

	/* A second policy that passes everything: the profile decides. */
	add_rule(pass, WEFT_ACL_PASS, -1);
	strv_push(&p->endpoints[1].in_policies, &p->endpoints[1].n_in_policies, "wgi-pass");
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.chains_replaced, 1);
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 8000));
	CHECK(ping(&pod_a, "10.65.0.2"));
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 5001)); /* pol still denies first */
	weft_acl_program_free(p);
}

static void test_fail_closed(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_dp_routed c = {.netns_path = pod_c.path, .container_id = "ctr-c", .ifname = "eth0", .naddrs = 1};
	struct weft_acl_stats st;
	struct weft_acl_endpoint *e;
	char *err = NULL;

	/* C comes up with no endpoint in the program: dropped both ways. */
	c.addrs[0] = ip("10.65.0.3");
	CHECK_EQ_INT(weft_dp_routed_add(&c, &rcc, &err), 0);
	free(err);
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(!ping(&pod_c, "10.65.0.1"));
	CHECK(!tcp(&pod_a, &pod_c, "10.65.0.3", 80));
	CHECK(!tcp(&pod_c, &node, "10.64.0.1", 22)); /* not even the failsafe ports */

	/* Programmed: allowed like the others. */
	e = add_ep(p, "c", &rcc, "10.65.0.3");
	strv_push(&e->in_profiles, &e->n_in_profiles, "wpi-web");
	strv_push(&e->out_profiles, &e->n_out_profiles, "wpo-web");
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.endpoints_added, 1);
	CHECK_EQ_INT(st.chains_created + st.chains_replaced, 0);
	CHECK(ping(&pod_c, "10.65.0.1"));
	CHECK(tcp(&pod_a, &pod_c, "10.65.0.3", 80));
	weft_acl_program_free(p);

	/* Gone from the program: dropped again. */
	p = base_program();
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.endpoints_removed, 1);
	CHECK(!ping(&pod_c, "10.65.0.1"));
	weft_acl_program_free(p);
}

static void test_anti_spoof(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_stats st;
	_cleanup_free_ char *mac = NULL;

	/* A gets a second address the node routes back to it: without the
	 * check a connection from it would work. */
	sh("nsenter --net=%s ip addr add 10.65.0.9/32 dev eth0", pod_a.path);
	sh("ip route add 10.65.0.9 dev %s", ra.host_ifname);
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(tcp_ok(&pod_a, &pod_b, "10.65.0.1", "10.65.0.2", 80));
	CHECK(!tcp_ok(&pod_a, &pod_b, "10.65.0.9", "10.65.0.2", 80));
	CHECK(!tcp_ok(&pod_a, &node, "10.65.0.9", "10.64.0.1", 22));
	sh("ip route del 10.65.0.9 dev %s", ra.host_ifname);
	sh("nsenter --net=%s ip addr del 10.65.0.9/32 dev eth0", pod_a.path);

	/* A foreign source MAC is dropped too. */
	mac = wasprintf("%02x:%02x:%02x:%02x:%02x:%02x", ra.pod_mac[0], ra.pod_mac[1], ra.pod_mac[2], ra.pod_mac[3],
			ra.pod_mac[4], ra.pod_mac[5]);
	CHECK(ping(&pod_a, "10.65.0.2"));
	sh("nsenter --net=%s ip link set eth0 address 02:00:00:00:00:99", pod_a.path);
	CHECK(!ping(&pod_a, "10.65.0.2"));
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 80));
	sh("nsenter --net=%s ip link set eth0 address %s", pod_a.path, mac);
	/* (A new MAC flushed the pod's permanent gateway entry.) */
	sh("nsenter --net=%s ip neigh replace 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent", pod_a.path);
	sh("ip neigh flush dev %s", ra.host_ifname);
	CHECK(ping(&pod_a, "10.65.0.2"));
	weft_acl_program_free(p);
}

static void test_host_protection(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_chain *pol;
	struct weft_acl_stats st;
	struct weft_acl_rule *r;

	/* Workload -> host: failsafe tcp 22 open, others closed although
	 * the profile allows all outbound; host -> workload open. */
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(tcp(&pod_a, &node, "10.64.0.1", 22));
	CHECK(!tcp(&pod_a, &node, "10.64.0.1", 2222));
	CHECK(tcp(&node, &pod_a, "10.65.0.1", 2223));
	CHECK(tcp(&node, &pod_b, "10.65.0.2", 2224)); /* even to ports the profile denies */

	/* A Policy allow opens the host. */
	pol = add_chain(p, "wge-host", WEFT_ACL_CHAIN_POLICY);
	r = add_rule(pol, WEFT_ACL_ALLOW, IPPROTO_TCP);
	rule_dport(r, 2222, 2222);
	add_rule(pol, WEFT_ACL_PASS, -1);
	strv_push(&p->endpoints[0].out_policies, &p->endpoints[0].n_out_policies, "wge-host");
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(tcp(&pod_a, &node, "10.64.0.1", 2222));
	CHECK(!tcp(&pod_a, &node, "10.64.0.1", 2225)); /* passed to the profile: not enough for the host */
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 80));   /* pod -> pod unchanged */
	CHECK(!tcp(&pod_b, &node, "10.64.0.1", 2222)); /* B has no such policy */

	/* Failsafe ports are the program's: tcp 2222 added, the policy gone. */
	strv_free_test(p->endpoints[0].out_policies, p->endpoints[0].n_out_policies);
	p->endpoints[0].out_policies = NULL;
	p->endpoints[0].n_out_policies = 0;
	p->failsafe = wrealloc(p->failsafe, (p->n_failsafe + 1) * sizeof(*p->failsafe));
	p->failsafe[p->n_failsafe++] = (struct weft_acl_failsafe){IPPROTO_TCP, 2222};
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(tcp(&pod_a, &node, "10.64.0.1", 2222));
	CHECK(tcp(&pod_b, &node, "10.64.0.1", 2222));
	CHECK(!tcp(&pod_a, &node, "10.64.0.1", 2225));
	if (getenv("DEBUGX"))
		sh("%s-save -c | grep -v '^#'", variant);
	weft_acl_program_free(p);
}

static void test_failure_rolls_back(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_stats st;
	struct weft_acl_rule *r;
	_cleanup_free_ char *before = NULL, *after = NULL, *sets = NULL;
	char *err = NULL;

	CHECK_EQ_INT(apply(p, &st), 0);
	before = save_all();
	/* A new set and an ICMP type iptables refuses: the set is created,
	 * then the restore fails; nothing of it may stay. */
	set_add(add_set(p, "newset", AF_INET), "10.1.2.3");
	set_add(find_set(p, "web4"), "10.65.0.2");
	r = add_rule(find_chain(p, "wpi-web"), WEFT_ACL_ALLOW, IPPROTO_ICMP);
	r->icmp_type = 300;
	rule_addr(r, "newset", true, false, AF_INET);
	CHECK(weft_acl_apply(be, p, &st, &err) < 0);
	CHECK(err && strstr(err, "restore"));
	if (err)
		fprintf(stderr, "  (expected) %s\n", err);
	free(err);
	after = save_all();
	CHECK_STREQ(before, after);
	sets = out("ipset list -n");
	CHECK_HASNT(sets, "weft-newset");
	CHECK(!tcp(&pod_b, &pod_a, "10.65.0.1", 80)); /* B's membership undone */
	weft_acl_program_free(p);

	/* The next apply is a full one and works. */
	p = base_program();
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(st.full);
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 80));
	weft_acl_program_free(p);
}

static void test_takeover(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_backend *b2 = NULL;
	struct weft_acl_stats st;
	_cleanup_free_ char *s = NULL, *sets = NULL;
	char *err = NULL;

	/* An earlier weftd left a set and a chain the new program lacks. */
	add_set(p, "stale4", AF_INET);
	add_chain(p, "wpi-stale", WEFT_ACL_CHAIN_PROFILE);
	CHECK_EQ_INT(apply(p, &st), 0);
	weft_acl_program_free(p);

	CHECK_EQ_INT(weft_acl_ipt_open(variant, &b2, &err), 0);
	p = base_program();
	set_add(find_set(p, "web4"), "10.65.0.2");
	CHECK_EQ_INT(weft_acl_apply(b2, p, &st, &err), 0);
	CHECK(st.full);
	CHECK_EQ_INT(st.sets_deleted, 1);
	CHECK_EQ_INT(st.chains_deleted, 1);
	s = save_all();
	CHECK_HASNT(s, "stale");
	/* Exactly one hook each, still first. */
	CHECK_HAS(s, "-A FORWARD -j weft-forward\n");
	CHECK_EQ_INT(count_substr(s, "-j weft-forward"), 2); /* iptables and ip6tables */
	sets = out("ipset list -n");
	CHECK_HASNT(sets, "stale");
	CHECK_HASNT(sets, "tmp");
	CHECK(tcp(&pod_b, &pod_a, "10.65.0.1", 80)); /* the swapped-in set holds B */
	weft_acl_backend_free(b2);
	weft_acl_program_free(p);
	/* be's idea of the kernel is stale now: a remove resets it. */
}

static void test_scale(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_set *big = add_set(p, "big4", AF_INET);
	struct weft_acl_chain *c = add_chain(p, "wpi-big", WEFT_ACL_CHAIN_PROFILE);
	struct weft_acl_stats st;
	char *err = NULL;
	int64_t t;

	big->elems = wcalloc(100000, sizeof(*big->elems));
	for (uint32_t i = 0; i < 100000; i++) {
		struct weft_cidr *e = &big->elems[i];

		e->ip.family = AF_INET;
		e->ip.v4.s_addr = htonl(0x0a800000u + i); /* 10.128.0.0 + i */
		e->prefixlen = 32;
	}
	big->n_elems = 100000;
	c->ingress = true;
	for (int i = 0; i < 10000; i++) {
		struct weft_acl_rule *r = add_rule(c, WEFT_ACL_ALLOW, IPPROTO_TCP);

		rule_dport(r, (uint16_t)(10000 + i), (uint16_t)(10000 + i));
		rule_addr(r, "big4", true, false, AF_INET);
	}
	strv_push(&p->endpoints[1].in_profiles, &p->endpoints[1].n_in_profiles, "wpi-big");
	/* Start from nothing so the load is complete. */
	CHECK_EQ_INT(weft_acl_remove(be, &err), 0);
	t = weft_now_ns();
	CHECK_EQ_INT(apply(p, &st), 0);
	printf("  [%s] load 100000 members + 10000 rules: %.1f ms (kernel %.1f ms)\n", variant,
	       (weft_now_ns() - t) / 1e6, st.apply_ns / 1e6);
	CHECK_EQ_INT(st.elems_added, 100001);

	/* One member more. */
	big->elems = wrealloc(big->elems, 100001 * sizeof(*big->elems));
	big->elems[100000] = cidr("10.130.0.1/32");
	big->n_elems++;
	t = weft_now_ns();
	CHECK_EQ_INT(apply(p, &st), 0);
	printf("  [%s] add 1 member to 100000: %.2f ms (kernel %.2f ms)\n", variant, (weft_now_ns() - t) / 1e6,
	       st.apply_ns / 1e6);
	CHECK_EQ_INT(st.elems_added, 1);
	CHECK_EQ_INT(st.chains_replaced, 0);
	t = weft_now_ns();
	CHECK_EQ_INT(apply(p, &st), 0);
	printf("  [%s] the same program again: %.2f ms (kernel %.2f ms)\n", variant, (weft_now_ns() - t) / 1e6,
	       st.apply_ns / 1e6);

	/* One rule more in another chain, with 10000 present. */
	add_rule(find_chain(p, "wpo-web"), WEFT_ACL_LOG, IPPROTO_UDP);
	t = weft_now_ns();
	CHECK_EQ_INT(apply(p, &st), 0);
	printf("  [%s] add 1 rule (10000 present elsewhere): %.2f ms (kernel %.2f ms)\n", variant,
	       (weft_now_ns() - t) / 1e6, st.apply_ns / 1e6);
	CHECK_EQ_INT(st.chains_replaced, 1);

	/* One rule more in the 10000-rule chain. */
	add_rule(find_chain(p, "wpi-big"), WEFT_ACL_LOG, IPPROTO_UDP);
	t = weft_now_ns();
	CHECK_EQ_INT(apply(p, &st), 0);
	printf("  [%s] add 1 rule to the 10000-rule chain: %.2f ms (kernel %.2f ms)\n", variant,
	       (weft_now_ns() - t) / 1e6, st.apply_ns / 1e6);
	CHECK_EQ_INT(st.chains_replaced, 1);

	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 80));
	weft_acl_program_free(p);
}

static void test_remove(void)
{
	char *err = NULL;

	CHECK_EQ_INT(weft_acl_remove(be, &err), 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	free(err);
	CHECK_EQ_INT(count_weft(), 0);
	/* Traffic flows unfiltered again: C has no endpoint and works. */
	CHECK(ping(&pod_c, "10.65.0.1"));
	err = NULL;
	CHECK_EQ_INT(weft_acl_remove(be, &err), 0); /* twice is fine */
	free(err);
	weft_acl_backend_free(be);
	be = NULL;
}

static const struct test_case cases[] = {
	TEST(test_open),
	TEST(test_no_endpoint_yet),
	TEST(test_profiles),
	TEST(test_membership_incremental),
	TEST(test_rule_change),
	TEST(test_policies),
	TEST(test_fail_closed),
	TEST(test_anti_spoof),
	TEST(test_host_protection),
	TEST(test_failure_rolls_back),
	TEST(test_takeover),
	TEST(test_scale),
	TEST(test_remove),
};

/* Legacy iptables tables and ipsets of the root namespace (read only),
 * without packet counters. */
static const char root_cmd[] =
	"if [ -s /proc/net/ip_tables_names ]; then iptables-legacy-save; fi 2>/dev/null | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//';"
	"if [ -s /proc/net/ip6_tables_names ]; then ip6tables-legacy-save; fi 2>/dev/null | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//';"
	"ipset list -n 2>/dev/null";

int main(int argc, char **argv)
{
	struct ns_guard guard;
	struct weft_dp_routed a = {.container_id = "ctr-a", .ifname = "eth0", .naddrs = 1};
	struct weft_dp_routed b = {.container_id = "ctr-b", .ifname = "eth0", .naddrs = 1};
	_cleanup_free_ char *root_before = NULL, *root_after = NULL;
	char *err = NULL;
	int rc;

	if (argc > 1)
		variant = argv[1];
	if (geteuid() == 0)
		root_before = out("%s", root_cmd);
	rc = ns_isolate(&guard, &node_fd);
	if (rc)
		return rc;
	node.fd = node_fd;
	snprintf(node.path, sizeof(node.path), "/proc/%d/ns/net", (int)getpid());
	sh("ip link set lo up && ip addr add 10.64.0.1/32 dev lo");
	CHECK_EQ_INT(ns_new(&pod_a), 0);
	CHECK_EQ_INT(ns_new(&pod_b), 0);
	CHECK_EQ_INT(ns_new(&pod_c), 0);
	a.netns_path = pod_a.path;
	b.netns_path = pod_b.path;
	a.addrs[0] = ip("10.65.0.1");
	b.addrs[0] = ip("10.65.0.2");
	CHECK_EQ_INT(weft_dp_routed_add(&a, &ra, &err), 0);
	CHECK_EQ_INT(weft_dp_routed_add(&b, &rb, &err), 0);
	if (err)
		fprintf(stderr, "%s\n", err);
	free(err);

	/* Fresh veths take a moment to pass traffic. */
	for (int i = 0; i < 30 && !(ping(&pod_a, "10.65.0.2") && ping(&pod_b, "10.65.0.1")); i++)
		usleep(100 * 1000);

	rc = test_run(cases, ARRAY_SIZE(cases));
	if (be) {
		weft_acl_remove(be, NULL);
		weft_acl_backend_free(be);
	}

	ns_free(&pod_a);
	ns_free(&pod_b);
	ns_free(&pod_c);
	if (ns_restore_check(&guard))
		rc = 1;
	root_after = out("%s", root_cmd);
	if (!streq(root_before, root_after)) {
		fprintf(stderr, "root iptables/ipsets changed!\nbefore:\n%s\nafter:\n%s\n", root_before, root_after);
		rc = 1;
	}
	return rc;
}
