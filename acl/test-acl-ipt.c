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
#include "lib/log.h"
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
	if (r == 0) /* every chain of ours has the rules the apply left in it */
		CHECK_EQ_INT(weft_acl_check(be), 0);
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

/* ---- updates (weft_acl_update) ---- */

/* The kernel's weft rules (without counters) and the members of the weft
 * sets (sorted), to compare an update with an apply. */
static char *kernel_state(void)
{
	return out("{ %s-save -t filter; ip6tables%s-save -t filter; } 2>/dev/null | grep -v '^#' | "
		   "sed 's/\\[[0-9]*:[0-9]*\\]//'; for s in $(ipset list -n | grep '^weft' | sort); do "
		   "echo \"set $s\"; ipset list $s | sed '1,/^Members:/d' | sort; done",
		   variant, variant + strlen("iptables"));
}

static int update(const struct weft_acl_change *c, struct weft_acl_stats *st)
{
	struct weft_acl_stats local;
	char *err = NULL;
	int64_t t = weft_now_ns();
	int r = weft_acl_update(be, c, st ? st : &local, &err);

	if (r < 0)
		fprintf(stderr, "  update: %d %s\n", r, err ? err : "");
	else if (getenv("WEFT_TEST_VERBOSE"))
		fprintf(stderr, "  update: %.2f ms\n", (weft_now_ns() - t) / 1e6);
	free(err);
	if (r == 0) /* every chain of ours has the rules the update left in it */
		CHECK_EQ_INT(weft_acl_check(be), 0);
	return r;
}

/* A change refused with `code` and a message holding `want`, the kernel
 * untouched. */
static void expect_refused(const struct weft_acl_change *c, int code, const char *want)
{
	_cleanup_free_ char *before = kernel_state(), *after = NULL;
	char *err = NULL;

	CHECK_EQ_INT(weft_acl_update(be, c, NULL, &err), code);
	if (want) {
		CHECK(err && strstr(err, want));
		if (!err || !strstr(err, want))
			fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err ? err : "(none)", want);
	}
	free(err);
	after = kernel_state();
	CHECK_STREQ(before, after);
}

static int ep_cmp(const void *a, const void *b)
{
	return strcmp(((const struct weft_acl_endpoint *)a)->ifname, ((const struct weft_acl_endpoint *)b)->ifname);
}

static struct weft_acl_endpoint *find_ep(struct weft_acl_program *p, const char *ifname)
{
	for (size_t i = 0; i < p->n_endpoints; i++)
		if (streq(p->endpoints[i].ifname, ifname))
			return &p->endpoints[i];
	return NULL;
}

/* The update left the kernel as an apply of p would have: an apply of p
 * finds nothing to change, and p applied from nothing programs exactly
 * what the updates did. */
static void expect_as_applied(struct weft_acl_program *p, const char *what)
{
	_cleanup_free_ char *updated = kernel_state(), *applied = NULL;
	struct weft_acl_stats st;
	char *err = NULL;

	CHECK_EQ_INT(apply(p, &st), 0);
	if (st.full || st.elems_added || st.elems_removed || st.sets_created || st.sets_deleted || st.chains_created ||
	    st.chains_replaced || st.chains_deleted || st.endpoints_added || st.endpoints_removed ||
	    st.endpoints_replaced) {
		fprintf(stderr, "  %s: the apply after the update changed something\n", what);
		CHECK(!"apply after update in sync");
	}
	CHECK_EQ_INT(weft_acl_remove(be, &err), 0);
	free(err);
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(st.full);
	applied = kernel_state();
	CHECK_STREQ(updated, applied);
	if (!streq(updated, applied))
		fprintf(stderr, "  %s: update and apply differ\n", what);
}

static void test_update(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_backend *fresh = NULL;
	struct weft_acl_set *s6 = add_set(p, "web6", AF_INET6);
	struct weft_acl_stats st;
	struct weft_acl_rule *r;
	struct weft_acl_chain *in;
	struct weft_cidr b4, a4, x6, pfx, many[50];
	struct weft_acl_set_change sc = {.set = "web4"};
	struct weft_acl_change ch = {.sets = &sc, .n_sets = 1};
	struct weft_acl_endpoint *e;
	char *gone[1];
	_cleanup_free_ char *s = NULL, *before = NULL;

	weft_cidr_parse_host("10.65.0.2", &b4);
	weft_cidr_parse_host("10.65.0.1", &a4);
	weft_cidr_parse_host("fd00::9", &x6);
	set_add(s6, "fd00::1");
	in = find_chain(p, "wpi-web");
	r = add_rule(in, WEFT_ACL_ALLOW, IPPROTO_TCP);
	rule_dport(r, 6600, 6600);
	rule_addr(r, "web6", true, false, AF_INET6);

	/* Nothing applied yet: not possible as a change, nothing touched. */
	CHECK_EQ_INT(weft_acl_ipt_open(variant, &fresh, NULL), 0);
	before = kernel_state();
	CHECK_EQ_INT(weft_acl_update(fresh, &ch, NULL, NULL), -EOPNOTSUPP);
	weft_acl_backend_free(fresh);
	s = kernel_state();
	CHECK_STREQ(before, s);
	free(s);
	s = NULL;

	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(!tcp(&pod_b, &pod_a, "10.65.0.1", 80));
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 9100));

	/* A member and a rule at the end of a chain, in one change; then the
	 * same again (no change). */
	sc.add = &b4;
	sc.n_add = 1;
	r = add_rule(in, WEFT_ACL_ALLOW, IPPROTO_TCP);
	rule_dport(r, 9100, 9100);
	ch.chains = in;
	ch.n_chains = 1;
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.elems_added, 1);
	CHECK_EQ_INT(st.elems_removed, 0);
	CHECK_EQ_INT(st.chains_replaced, 1);
	CHECK_EQ_INT(st.rules_added, 2); /* iptables and ip6tables */
	CHECK_EQ_INT(st.rules_deleted, 0);
	CHECK_EQ_INT(st.endpoints_added + st.endpoints_replaced + st.endpoints_removed, 0);
	CHECK(!st.full);
	CHECK(tcp(&pod_b, &pod_a, "10.65.0.1", 80));
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 9100));
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.elems_added + st.chains_replaced + st.rules_added + st.rules_deleted, 0);
	set_add(find_set(p, "web4"), "10.65.0.2");
	in = find_chain(p, "wpi-web");
	expect_as_applied(p, "member and rule added");

	/* A rule in the middle changed, one inserted before it, and a member
	 * removed (A: its tcp 80 to B goes). */
	sc = (struct weft_acl_set_change){.set = "web4", .del = &a4, .n_del = 1};
	in->rules[1].action = WEFT_ACL_DENY; /* icmp allow -> deny */
	r = add_rule(in, WEFT_ACL_ALLOW, IPPROTO_UDP);
	{
		struct weft_acl_rule nr = in->rules[in->n_rules - 1];

		memmove(&in->rules[2], &in->rules[1], (in->n_rules - 2) * sizeof(*in->rules));
		in->rules[1] = nr;
	}
	ch = (struct weft_acl_change){.sets = &sc, .n_sets = 1, .chains = in, .n_chains = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.elems_removed, 1);
	CHECK_EQ_INT(st.chains_replaced, 1);
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 80));
	CHECK(!ping(&pod_a, "10.65.0.2"));
	s = save_all();
	CHECK_HAS(s, "-A weft-c-wpi-web -p icmp -j DROP");
	free(s);
	s = NULL;
	find_set(p, "web4")->n_elems = 1;
	find_set(p, "web4")->elems[0] = b4;
	expect_as_applied(p, "rules changed in the middle, member removed");

	/* Rules deleted from the start and the middle; many members at once. */
	for (int i = 0; i < 50; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.99.0.%d", i + 1);
		weft_cidr_parse_host(a, &many[i]);
	}
	sc = (struct weft_acl_set_change){.set = "web4", .add = many, .n_add = 50};
	weft_acl_rule_clear(&in->rules[0]);
	weft_acl_rule_clear(&in->rules[2]);
	memmove(&in->rules[2], &in->rules[3], (in->n_rules - 3) * sizeof(*in->rules));
	memmove(&in->rules[0], &in->rules[1], (in->n_rules - 2) * sizeof(*in->rules));
	in->n_rules -= 2;
	ch = (struct weft_acl_change){.sets = &sc, .n_sets = 1, .chains = in, .n_chains = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.elems_added, 50);
	CHECK_EQ_INT(st.chains_replaced, 1);
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 80)); /* the port 80 rule is gone */
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 9100));
	for (int i = 0; i < 50; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.99.0.%d", i + 1);
		set_add(find_set(p, "web4"), a);
	}
	expect_as_applied(p, "rules deleted, 50 members added");

	/* An endpoint comes (C), is replaced, goes. */
	CHECK(!tcp(&pod_c, &pod_a, "10.65.0.1", 9100));
	e = add_ep(p, "c", &rcc, "10.65.0.3");
	strv_push(&e->in_profiles, &e->n_in_profiles, "wpi-web");
	strv_push(&e->out_profiles, &e->n_out_profiles, "wpo-web");
	qsort(p->endpoints, p->n_endpoints, sizeof(*p->endpoints), ep_cmp);
	e = find_ep(p, rcc.host_ifname);
	ch = (struct weft_acl_change){.endpoints = e, .n_endpoints = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.endpoints_added, 1);
	CHECK_EQ_INT(st.endpoints_replaced + st.endpoints_removed + st.chains_replaced, 0);
	CHECK(tcp(&pod_c, &pod_a, "10.65.0.1", 9100));
	CHECK(tcp(&pod_a, &pod_c, "10.65.0.3", 9100));
	expect_as_applied(p, "endpoint added");
	e = find_ep(p, rcc.host_ifname);
	strv_free_test(e->in_profiles, e->n_in_profiles);
	e->in_profiles = NULL;
	e->n_in_profiles = 0; /* C's ingress: nothing allowed */
	ch = (struct weft_acl_change){.endpoints = e, .n_endpoints = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.endpoints_replaced, 1);
	CHECK_EQ_INT(st.endpoints_added + st.endpoints_removed, 0);
	CHECK(!tcp(&pod_a, &pod_c, "10.65.0.3", 9100));
	CHECK(tcp(&pod_c, &pod_a, "10.65.0.1", 9100));
	expect_as_applied(p, "endpoint replaced");
	gone[0] = rcc.host_ifname;
	ch = (struct weft_acl_change){.endpoints_removed = gone, .n_endpoints_removed = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.endpoints_removed, 1);
	CHECK(!tcp(&pod_c, &pod_a, "10.65.0.1", 9100));
	weft_acl_endpoint_clear(e);
	memmove(e, e + 1, (size_t)(p->endpoints + p->n_endpoints - e - 1) * sizeof(*e));
	p->n_endpoints--;
	s = save_all();
	{
		_cleanup_free_ char *fw = wasprintf("weft-fw-%s", rcc.host_ifname);

		CHECK_HASNT(s, fw);
	}
	free(s);
	s = NULL;
	expect_as_applied(p, "endpoint removed");

	/* Refused: nothing changes, kernel or state. */
	sc = (struct weft_acl_set_change){.set = "nope4", .add = &a4, .n_add = 1};
	ch = (struct weft_acl_change){.sets = &sc, .n_sets = 1};
	expect_refused(&ch, -EINVAL, "nope4");
	sc = (struct weft_acl_set_change){.set = "web4", .add = &x6, .n_add = 1};
	expect_refused(&ch, -EINVAL, "fd00::9");
	sc = (struct weft_acl_set_change){.set = "web4", .add = &a4, .n_add = 1, .del = &a4, .n_del = 1};
	expect_refused(&ch, -EINVAL, "both added and removed");
	weft_cidr_parse("10.66.0.0/24", true, &pfx);
	sc = (struct weft_acl_set_change){.set = "web4", .add = &pfx, .n_add = 1};
	expect_refused(&ch, -EOPNOTSUPP, NULL);
	{
		/* A good member with a bad chain: neither. */
		struct weft_acl_chain bad = *find_chain(p, "wpi-web");

		sc = (struct weft_acl_set_change){.set = "web4", .add = &a4, .n_add = 1};
		bad.name = (char *)"wpi-nope";
		ch = (struct weft_acl_change){.sets = &sc, .n_sets = 1, .chains = &bad, .n_chains = 1};
		expect_refused(&ch, -EINVAL, "wpi-nope");
		bad.name = (char *)"wpi-web";
		bad.kind = WEFT_ACL_CHAIN_POLICY;
		expect_refused(&ch, -EINVAL, "wpi-web");
	}
	{
		/* A rule naming a set the program lacks. */
		struct weft_acl_chain *c = find_chain(p, "wpo-web");

		r = add_rule(c, WEFT_ACL_ALLOW, IPPROTO_TCP);
		rule_addr(r, "nope4", false, false, AF_INET);
		ch = (struct weft_acl_change){.chains = c, .n_chains = 1};
		expect_refused(&ch, -EINVAL, "nope4");
		c->n_rules--;
		weft_acl_rule_clear(&c->rules[c->n_rules]);
	}
	{
		/* An endpoint naming a chain the program lacks. */
		struct weft_acl_endpoint be2 = p->endpoints[0];
		char *names[] = {(char *)"wpi-web", (char *)"wpi-gone"};

		be2.in_profiles = names;
		be2.n_in_profiles = 2;
		ch = (struct weft_acl_change){.endpoints = &be2, .n_endpoints = 1};
		expect_refused(&ch, -EINVAL, "wpi-gone");
	}
	gone[0] = (char *)"wftnope";
	ch = (struct weft_acl_change){.endpoints_removed = gone, .n_endpoints_removed = 1};
	expect_refused(&ch, -EINVAL, "wftnope");
	expect_as_applied(p, "after refused changes");

	/* The kernel refuses the rules: the member added before is taken out
	 * again, and the next apply is a full one. */
	before = (free(before), kernel_state());
	sc = (struct weft_acl_set_change){.set = "web4", .add = &a4, .n_add = 1};
	r = add_rule(find_chain(p, "wpo-web"), WEFT_ACL_ALLOW, IPPROTO_ICMP);
	r->icmp_type = 300;
	ch = (struct weft_acl_change){.sets = &sc, .n_sets = 1, .chains = find_chain(p, "wpo-web"), .n_chains = 1};
	{
		char *err = NULL;

		CHECK(weft_acl_update(be, &ch, &st, &err) < 0);
		CHECK(err && strstr(err, "restore"));
		if (err)
			fprintf(stderr, "  (expected) %s\n", err);
		free(err);
	}
	s = kernel_state();
	CHECK_STREQ(before, s);
	free(s);
	s = NULL;
	CHECK_EQ_INT(weft_acl_update(be, &ch, NULL, NULL), -EOPNOTSUPP); /* no state now */
	r->icmp_type = -1;
	find_chain(p, "wpo-web")->n_rules--;
	weft_acl_rule_clear(&find_chain(p, "wpo-web")->rules[find_chain(p, "wpo-web")->n_rules]);
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(st.full);
	weft_acl_program_free(p);
}

/* Kernel chains named like a piece of a long program chain (iptables
 * only), and the most rules any of them holds. */
static int pieces(int *most)
{
	_cleanup_free_ char *s = out("%s-save -t filter 2>/dev/null | grep -v '^#'", variant);
	int n = 0;

	*most = 0;
	for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char name[64];
		int rules = 0;

		if (sscanf(l, ":%63s", name) != 1 || !startswith(name, "weft-k."))
			continue;
		n++;
		{
			_cleanup_free_ char *pat = wasprintf("\n-A %s ", name);

			rules = count_substr(s, pat);
		}
		if (rules > *most)
			*most = rules;
	}
	return n;
}

/* Lines of a that b lacks: the distinct chains they name are added to
 * names[] (up to max). */
static void lines_missing(const char *a, const char *b, char names[][64], int *n, int max)
{
	_cleanup_free_ char *bb = wasprintf("\n%s\n", b);

	for (const char *l = a; l && *l;) {
		const char *nl = strchrnul(l, '\n');
		_cleanup_free_ char *pat = wasprintf("\n%.*s\n", (int)(nl - l), l);
		char name[64];

		if (!strstr(bb, pat) && (sscanf(l, "-A %63s", name) == 1 || sscanf(l, ":%63s", name) == 1)) {
			int k = 0;

			while (k < *n && strcmp(names[k], name))
				k++;
			if (k == *n && *n < max)
				snprintf(names[(*n)++], 64, "%s", name);
		}
		l = *nl ? nl + 1 : nl;
	}
}

/* How many kernel chains differ between two save_all() outputs. */
static int chains_changed(const char *before, const char *after)
{
	char names[32][64];
	int n = 0;

	lines_missing(before, after, names, &n, 32);
	lines_missing(after, before, names, &n, 32);
	return n;
}

static struct weft_acl_rule *insert_rule(struct weft_acl_chain *c, size_t at, enum weft_acl_action a, uint16_t port)
{
	struct weft_acl_rule *r = add_rule(c, a, IPPROTO_TCP), nr;

	rule_dport(r, port, port);
	if (a == WEFT_ACL_ALLOW)
		rule_addr(r, "web4", true, false, AF_INET);
	nr = *r;
	memmove(&c->rules[at + 1], &c->rules[at], (c->n_rules - 1 - at) * sizeof(*c->rules));
	c->rules[at] = nr;
	return &c->rules[at];
}

static void del_rule(struct weft_acl_chain *c, size_t at)
{
	weft_acl_rule_clear(&c->rules[at]);
	memmove(&c->rules[at], &c->rules[at + 1], (c->n_rules - at - 1) * sizeof(*c->rules));
	c->n_rules--;
}

/* Port sets of runs in the kernel. */
static int psets(void)
{
	_cleanup_free_ char *s = out("ipset list -n | grep -c '^weft-p\\.'");

	return atoi(s);
}

/* Any source port (1-65535: every TCP packet has one): a condition that
 * changes no decision but makes r unlike its neighbours, so that it is not
 * merged into a run with them (see test_runs()). */
static void unlike(struct weft_acl_rule *r)
{
	r->sports = wmalloc(sizeof(*r->sports));
	r->sports[0] = (struct weft_acl_portrange){1, 65535};
	r->n_sports = 1;
}

/* A program chain of more than 128 rules lives in pieces of at most 128
 * that its chain jumps to: first match still wins across pieces (an allow in
 * an early piece is not undone by a later deny, a deny is not undone by a
 * later allow), the end of the last piece falls through to the next
 * profile, and an update edits the piece it touches. */
static void test_pieces(void)
{
	/* The rules below alternate between two shapes (unlike()): each is
	 * a kernel rule of its own, as rules with other tags or actions
	 * would be. */
	struct weft_acl_program *p = base_program();
	struct weft_acl_chain *c;
	struct weft_acl_endpoint *eb = find_ep(p, rb.host_ifname);
	struct weft_acl_change ch;
	struct weft_acl_stats st;
	int n, most;

	add_chain(p, "wpi-long", WEFT_ACL_CHAIN_PROFILE);
	c = find_chain(p, "wpi-long");
	c->ingress = true;
	for (int i = 0; i < 296; i++) {
		struct weft_acl_rule *r = add_rule(c, WEFT_ACL_ALLOW, IPPROTO_TCP);

		rule_dport(r, (uint16_t)(21000 + i), (uint16_t)(21000 + i));
		rule_addr(r, "web4", true, false, AF_INET);
		if (i % 2)
			unlike(r);
	}
	insert_rule(c, 5, WEFT_ACL_ALLOW, 7100);   /* allowed early ... */
	insert_rule(c, c->n_rules, WEFT_ACL_DENY, 7100); /* ... denied late: allowed */
	insert_rule(c, 150, WEFT_ACL_DENY, 7101);  /* denied in the middle ... */
	insert_rule(c, c->n_rules, WEFT_ACL_ALLOW, 7101); /* ... allowed late: denied */
	/* wpi-long first, then wpi-web (80, 8000-8080). */
	free(eb->in_profiles[0]);
	eb->in_profiles[0] = wstrdup("wpi-long");
	strv_push(&eb->in_profiles, &eb->n_in_profiles, "wpi-web");
	CHECK_EQ_INT(apply(p, &st), 0);
	n = pieces(&most);
	printf("  [%s] a 300-rule chain: %d further pieces, the largest %d rules\n", variant, n, most);
	CHECK(n >= 2);
	CHECK(most <= 128);
	/* A weftd restarting finds the pieces in the kernel and keeps them. */
	{
		struct weft_acl_backend *b2 = NULL;
		_cleanup_free_ char *before = kernel_state(), *after = NULL;
		char *err = NULL;

		CHECK_EQ_INT(weft_acl_ipt_open(variant, &b2, &err), 0);
		CHECK_EQ_INT(weft_acl_apply(b2, p, &st, &err), 0);
		free(err);
		CHECK(st.full);
		CHECK_EQ_INT(st.chains_created + st.chains_deleted, 0);
		after = kernel_state();
		CHECK_STREQ(before, after);
		weft_acl_backend_free(b2);
	}
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 7100));
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 7101));
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 21000));
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 21295));         /* the last piece */
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 21296));        /* no rule */
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 8001));          /* the next profile */

	/* Rules inserted in the middle and at the end: each edits its piece,
	 * or, when it begins a new piece, splits it (the rules after it move
	 * to the new piece, which the chain above now jumps to as well). */
	for (int i = 0; i < 3; i++) {
		_cleanup_free_ char *before = save_all(), *after = NULL;
		int changed;

		insert_rule(c, i == 2 ? c->n_rules : 100 + 50 * (size_t)i, WEFT_ACL_ALLOW, (uint16_t)(7102 + i));
		ch = (struct weft_acl_change){.chains = c, .n_chains = 1};
		CHECK_EQ_INT(update(&ch, &st), 0);
		after = save_all();
		changed = chains_changed(before, after);
		printf("  [%s] one rule inserted: %zu kernel rules added, %zu deleted, %d chains changed\n", variant,
		       st.rules_added, st.rules_deleted, changed);
		CHECK_EQ_INT(st.chains_replaced, 1);
		CHECK(st.rules_added >= 1 && st.rules_added <= 128 + 1 + 4);
		CHECK(st.rules_deleted <= 128);
		CHECK(changed >= 1 && changed <= 3);
		CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 7102 + i));
	}
	expect_as_applied(p, "rules inserted into pieces");

	/* Cut back to 40 rules: one chain again, the pieces go. */
	for (size_t i = 40; i < c->n_rules; i++)
		weft_acl_rule_clear(&c->rules[i]);
	c->n_rules = 40;
	ch = (struct weft_acl_change){.chains = c, .n_chains = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(pieces(&most), 0);
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 7100));
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 21295));
	expect_as_applied(p, "pieces dropped");

	/* A policy in pieces: a pass early on skips the policy's later deny
	 * and goes on to the profiles; a deny in the middle is final; an
	 * allow late opens the host. */
	{
		struct weft_acl_chain *pol;
		struct weft_acl_endpoint *ea;
		struct weft_acl_rule *r;

		add_chain(p, "wge-long", WEFT_ACL_CHAIN_POLICY);
		pol = find_chain(p, "wge-long");
		for (int i = 0; i < 300; i++) {
			r = add_rule(pol, WEFT_ACL_DENY, IPPROTO_TCP);
			rule_dport(r, (uint16_t)(23000 + i), (uint16_t)(23000 + i));
			if (i % 2)
				unlike(r);
		}
		pol->rules[10].action = WEFT_ACL_PASS;    /* 23010: pass ... */
		pol->rules[10].dports[0] = (struct weft_acl_portrange){80, 80};
		pol->rules[290].dports[0] = (struct weft_acl_portrange){80, 80}; /* ... not this deny */
		pol->rules[150].dports[0] = (struct weft_acl_portrange){8001, 8001}; /* denied before ... */
		pol->rules[295].action = WEFT_ACL_PASS;   /* ... this pass */
		pol->rules[295].dports[0] = (struct weft_acl_portrange){8001, 8001};
		pol->rules[299].action = WEFT_ACL_ALLOW;  /* allowed, to the host too */
		pol->rules[299].dports[0] = (struct weft_acl_portrange){2223, 2223};
		ea = find_ep(p, ra.host_ifname);
		strv_push(&ea->out_policies, &ea->n_out_policies, "wge-long");
		CHECK_EQ_INT(apply(p, &st), 0);
		CHECK(pieces(&most) >= 2);
		CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 80));     /* pass, then wpi-web allows */
		CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 8001));  /* denied in the middle */
		CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 23000)); /* denied at the start */
		CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 8002));  /* policy applied, none decided */
		CHECK(tcp(&pod_a, &node, "10.64.0.1", 2223));    /* a policy allow opens the host */
	}
	weft_acl_program_free(p);
}

/* Runs of rules alike but for their destination ports (and actions) are
 * one iptables rule per action with their ports in a port set (ipset
 * bitmap:port): 200 rules for consecutive ports are a few kernel rules
 * and no pieces, first match still decides between a run and the rules
 * around it, and a rule joining a run is a port added to its set, no
 * kernel rule. */
static void test_runs(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_endpoint *eb = find_ep(p, rb.host_ifname);
	struct weft_acl_chain *c;
	struct weft_acl_change ch;
	struct weft_acl_stats st;
	_cleanup_free_ char *s = NULL;
	int most, lines;

	add_chain(p, "wpi-run", WEFT_ACL_CHAIN_PROFILE);
	c = find_chain(p, "wpi-run");
	c->ingress = true;
	insert_rule(c, 0, WEFT_ACL_DENY, 22100); /* denied before the run allows it ... */
	for (int i = 0; i < 200; i++) {
		struct weft_acl_rule *r = add_rule(c, WEFT_ACL_ALLOW, IPPROTO_TCP);

		rule_dport(r, (uint16_t)(22000 + i), (uint16_t)(22000 + i));
		rule_addr(r, "web4", true, false, AF_INET);
	}
	insert_rule(c, c->n_rules, WEFT_ACL_DENY, 22150); /* ... allowed by the run first */
	free(eb->in_profiles[0]);
	eb->in_profiles[0] = wstrdup("wpi-run");
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(pieces(&most), 0);
	s = out("%s-save -t filter 2>/dev/null", variant);
	lines = count_substr(s, "-A weft-c-wpi-run ");
	printf("  [%s] 202 rules, 200 of them alike for consecutive ports: %d kernel rules\n", variant, lines);
	CHECK(lines >= 3 && lines <= 12);
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22000));
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22199));
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22150));  /* the run allows before the deny */
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 22100)); /* the deny before the run */
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 22300)); /* no rule */
	insert_rule(c, 120, WEFT_ACL_ALLOW, 22300);
	ch = (struct weft_acl_change){.chains = c, .n_chains = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	printf("  [%s] a rule joins a run: %zu kernel rules added, %zu deleted, %zu set elements added\n", variant,
	       st.rules_added, st.rules_deleted, st.elems_added);
	CHECK_EQ_INT(st.rules_added, 0);
	CHECK_EQ_INT(st.rules_deleted, 0);
	CHECK_EQ_INT(st.elems_added, 1);
	CHECK_EQ_INT(st.chains_replaced, 0);
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22300));
	expect_as_applied(p, "a rule joined a run");

	/* A run of rules with several ports each, a run whose ports are
	 * scattered, a deny between them. */
	{
		struct weft_acl_rule *r;
		uint16_t scattered[] = {22501, 22503, 22505, 22507};

		for (int i = 0; i < 3; i++) {
			r = insert_rule(c, 0, WEFT_ACL_ALLOW, (uint16_t)(22400 + 20 * i));
			r->dports = wrealloc(r->dports, 2 * sizeof(*r->dports));
			r->dports[1] = (struct weft_acl_portrange){(uint16_t)(22410 + 20 * i), (uint16_t)(22410 + 20 * i)};
			r->n_dports = 2;
		}
		for (size_t i = 0; i < 4; i++) {
			r = insert_rule(c, 3 + i, WEFT_ACL_ALLOW, scattered[i]);
			(void)r;
		}
		insert_rule(c, 7, WEFT_ACL_DENY, 22402); /* a deny between runs */
	}
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22410));
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22440));
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22507));
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 22502)); /* between the scattered ports */
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 22100)); /* the deny before the first run */
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22150));
	expect_as_applied(p, "runs of rules with several ports");
	CHECK(psets() >= 3);

	/* bitmap:port finds ports in TCP and UDP only: a run of SCTP rules
	 * stays as its rules are. */
	{
		int ps0 = psets();
		_cleanup_free_ char *txt = NULL;

		for (int i = 0; i < 2; i++) {
			struct weft_acl_rule *r = insert_rule(c, 0, WEFT_ACL_ALLOW, (uint16_t)(22701 + i));

			r->proto = IPPROTO_SCTP;
		}
		CHECK_EQ_INT(apply(p, &st), 0);
		CHECK_EQ_INT(psets(), ps0);
		txt = out("%s-save -t filter 2>/dev/null", variant);
		CHECK_HAS(txt, "--dports 22701"); /* multiport: the sctp match has no ranges here */
		CHECK_HAS(txt, "--dports 22702");
		expect_as_applied(p, "a run of SCTP rules");
	}

	/* Two runs alike, each ended by the same rule: two port sets (told
	 * apart by order), each deciding for its own ports. */
	{
		int ps0 = psets();
		uint16_t ports[] = {22801, 22802, 0, 22803, 22804, 0};

		for (int i = 0; i < 6; i++) {
			struct weft_acl_rule *r =
				insert_rule(c, (size_t)i, ports[i] ? WEFT_ACL_ALLOW : WEFT_ACL_DENY, ports[i] ? ports[i] : 9);

			if (!ports[i])
				r->proto = IPPROTO_UDP;
		}
		CHECK_EQ_INT(apply(p, &st), 0);
		CHECK_EQ_INT(psets(), ps0 + 2);
		CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22801));
		CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22804));
		expect_as_applied(p, "two runs ended alike");
	}

	/* Rules leave the runs through updates until none is left: their
	 * port sets go with them. */
	while (c->n_rules > 1) {
		del_rule(c, 0);
		ch = (struct weft_acl_change){.chains = c, .n_chains = 1};
		CHECK_EQ_INT(update(&ch, &st), 0);
	}
	CHECK_EQ_INT(psets(), 0);
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 22150)); /* the last rule, deny 22150, alone */
	expect_as_applied(p, "runs emptied by updates");
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

	/* A run's port set made for a rule the restore refuses, through an
	 * apply and through an update: it goes again, the rules stay as
	 * they were. */
	for (int upd = 0; upd < 2; upd++) {
		struct weft_acl_chain *c = find_chain(p, "wpi-web");
		int ps0 = psets();
		struct weft_acl_change ch = {.chains = c, .n_chains = 1};

		free(before);
		before = save_all();
		insert_rule(c, 0, WEFT_ACL_ALLOW, 22601);
		insert_rule(c, 1, WEFT_ACL_ALLOW, 22602); /* a run of two: a port set */
		if (!upd) { /* (it is one: applied alone, it adds a port set) */
			CHECK_EQ_INT(apply(p, &st), 0);
			CHECK(psets() > ps0);
			CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22601));
			weft_acl_program_free(p);
			p = base_program();
			CHECK_EQ_INT(apply(p, &st), 0);
			CHECK_EQ_INT(psets(), ps0);
			c = find_chain(p, "wpi-web");
			ch.chains = c;
			insert_rule(c, 0, WEFT_ACL_ALLOW, 22601);
			insert_rule(c, 1, WEFT_ACL_ALLOW, 22602);
		}
		r = add_rule(c, WEFT_ACL_ALLOW, IPPROTO_ICMP);
		r->icmp_type = 300;
		err = NULL;
		CHECK((upd ? weft_acl_update(be, &ch, &st, &err) : weft_acl_apply(be, p, &st, &err)) < 0);
		CHECK(err && strstr(err, "restore"));
		free(err);
		free(after);
		after = save_all();
		CHECK_STREQ(before, after);
		CHECK_EQ_INT(psets(), ps0);
		CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 22601));
		weft_acl_program_free(p);
		p = base_program();
		CHECK_EQ_INT(apply(p, &st), 0);
		CHECK(st.full);
	}
	weft_acl_program_free(p);
}

/* A set the kernel will not destroy (a rule outside weft still names it)
 * stays in the backend's state after an apply: the apply succeeds, and a
 * later apply destroys it once it can (before, the backend forgot it and
 * it stayed in the kernel for good); a program that wants it back gets it
 * with the right ports. */
static void test_set_stays(void)
{
	struct weft_acl_program *p = base_program();
	struct weft_acl_chain *c = find_chain(p, "wpi-web");
	struct weft_acl_stats st;
	_cleanup_free_ char *before = NULL, *after = NULL, *name = NULL, *sets = NULL;
	int ps0;

	CHECK_EQ_INT(apply(p, &st), 0);
	ps0 = psets();
	before = out("ipset list -n | grep '^weft-p\\.' | sort");
	insert_rule(c, 0, WEFT_ACL_ALLOW, 22701);
	insert_rule(c, 1, WEFT_ACL_ALLOW, 22702); /* a run of two: a port set */
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(psets(), ps0 + 1);
	after = out("ipset list -n | grep '^weft-p\\.' | sort");
	for (const char *l = after; *l && !name; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0)) {
		_cleanup_free_ char *line = wstrndup(l, strcspn(l, "\n"));
		_cleanup_free_ char *nl = wasprintf("%s\n", line);

		if (*line && !strstr(before, nl))
			name = wstrdup(line);
	}
	CHECK(name && startswith(name, "weft-p."));
	if (!name) {
		weft_acl_program_free(p);
		return;
	}
	sh("%s -A INPUT -m set --match-set %s dst -p tcp -j ACCEPT", variant, name); /* not weft's */

	/* The run goes: its set is in use, so it stays; the apply works. */
	weft_acl_program_free(p);
	p = base_program();
	CHECK_EQ_INT(apply(p, &st), 0);
	sets = out("ipset list -n");
	CHECK_HAS(sets, name);
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 22701));

	/* Wanted again while it stays: the apply fills it as the run says. */
	c = find_chain(p, "wpi-web");
	insert_rule(c, 0, WEFT_ACL_ALLOW, 22701);
	insert_rule(c, 1, WEFT_ACL_ALLOW, 22703);
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(tcp(&pod_a, &pod_b, "10.65.0.2", 22703));
	CHECK(!tcp(&pod_a, &pod_b, "10.65.0.2", 22702));

	/* Gone again, then the foreign rule goes: the next apply destroys it. */
	weft_acl_program_free(p);
	p = base_program();
	CHECK_EQ_INT(apply(p, &st), 0);
	sh("%s -D INPUT -m set --match-set %s dst -p tcp -j ACCEPT", variant, name);
	weft_acl_program_free(p);
	p = base_program();
	set_add(find_set(p, "web4"), "10.1.2.4"); /* some change, so that the apply has work */
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(psets(), ps0);
	free(sets);
	sets = out("ipset list -n");
	CHECK_HASNT(sets, name);
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

	/* The same through weft_acl_update(). */
	{
		struct weft_acl_chain *bc = find_chain(p, "wpi-big");
		struct weft_acl_set *bs = find_set(p, "big4");
		struct weft_cidr m = cidr("10.130.0.2/32");
		struct weft_acl_set_change sc = {.set = "big4", .add = &m, .n_add = 1};
		struct weft_acl_change ch = {.sets = &sc, .n_sets = 1};
		struct weft_acl_rule *r, nr;

		t = weft_now_ns();
		CHECK_EQ_INT(update(&ch, &st), 0);
		printf("  [%s] update: add 1 member to 100001: %.2f ms (kernel %.2f ms)\n", variant,
		       (weft_now_ns() - t) / 1e6, st.apply_ns / 1e6);
		CHECK_EQ_INT(st.elems_added, 1);
		bs->elems = wrealloc(bs->elems, (bs->n_elems + 1) * sizeof(*bs->elems));
		bs->elems[bs->n_elems++] = m;

		r = add_rule(bc, WEFT_ACL_ALLOW, IPPROTO_TCP);
		rule_dport(r, 30000, 30000);
		rule_addr(r, "big4", true, false, AF_INET);
		ch = (struct weft_acl_change){.chains = bc, .n_chains = 1};
		t = weft_now_ns();
		CHECK_EQ_INT(update(&ch, &st), 0);
		printf("  [%s] update: add 1 rule at the end of the 10000-rule chain: %.2f ms (kernel %.2f ms)\n",
		       variant, (weft_now_ns() - t) / 1e6, st.apply_ns / 1e6);
		CHECK_EQ_INT(st.chains_replaced, 1);
		/* The rule; when it begins a new piece, also the jump to it and
		 * the return after it (or a piece's worth moved). */
		CHECK(st.rules_added >= 1 && st.rules_added <= 128 + 3);
		CHECK(st.rules_deleted <= 128);

		/* ... and one in the middle. */
		r = add_rule(bc, WEFT_ACL_ALLOW, IPPROTO_TCP);
		rule_dport(r, 30001, 30001);
		rule_addr(r, "big4", true, false, AF_INET);
		nr = *r;
		memmove(&bc->rules[5001], &bc->rules[5000], (bc->n_rules - 5001) * sizeof(*bc->rules));
		bc->rules[5000] = nr;
		t = weft_now_ns();
		CHECK_EQ_INT(update(&ch, &st), 0);
		printf("  [%s] update: insert 1 rule in the middle of the 10000-rule chain: %.2f ms (kernel %.2f ms)\n",
		       variant, (weft_now_ns() - t) / 1e6, st.apply_ns / 1e6);
		/* It joins the run of rules alike around it: a port more in
		 * that run's port set, no rule. */
		CHECK_EQ_INT(st.rules_added + st.rules_deleted, 0);
		CHECK_EQ_INT(st.elems_added, 1);

		/* For comparison: the one-liner, into the chain (which now
		 * holds the jumps to its pieces). */
		t = weft_now_ns();
		sh("%s -w -I weft-c-wpi-big 2 -p udp --dport 1 -j DROP", variant);
		printf("  [%s] (%s -I of one rule into that chain: %.2f ms)\n", variant, variant,
		       (weft_now_ns() - t) / 1e6);
		sh("%s -w -D weft-c-wpi-big -p udp --dport 1 -j DROP", variant);

		/* The backend is where an apply of p would put it. */
		t = weft_now_ns();
		CHECK_EQ_INT(apply(p, &st), 0);
		printf("  [%s] apply after the updates: %.2f ms (kernel %.2f ms)\n", variant, (weft_now_ns() - t) / 1e6,
		       st.apply_ns / 1e6);
		CHECK(!st.full);
		CHECK_EQ_INT(st.elems_added + st.elems_removed + st.chains_replaced + st.endpoints_replaced, 0);
	}

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
	TEST(test_update),
	TEST(test_pieces),
	TEST(test_runs),
	TEST(test_failure_rolls_back),
	TEST(test_set_stays),
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
	weft_log_init("test-acl-ipt", WEFT_LOG_INFO); /* WEFT_LOG=debug: the restore inputs */
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
