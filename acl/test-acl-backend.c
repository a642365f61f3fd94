/* test-acl-backend.c - an ACL backend against a real kernel, with real
 * traffic, only ever inside private namespaces.
 *
 * Usage: test-acl-backend nft|ipt. The same suite runs against both
 * backends; only the inspection of what is in the kernel (log rule
 * present, nothing left after remove) differs.
 *
 * main() records the root namespace (links, routes, nftables ruleset),
 * moves the process into a fresh network namespace (the "node") and
 * creates pod namespaces held by forked children. Pods are real routed
 * endpoints made by the dataplane library (weft_dp_routed_add): veth
 * wft..., /32 and /128 addresses in the pod, default routes via
 * 169.254.1.1 / the host's link-local address. Programs are built by hand
 * with the small builders below (the compiler is tested on its own), so
 * each test states exactly the rules it checks. Traffic: TCP and UDP
 * sockets created inside the namespaces (setns, socket, setns back), and
 * ping through nsenter. Each test applies its own program over the
 * previous test's, so the backend's incremental path is exercised all
 * along; test_incremental checks its statistics.
 */
#include "acl/acl.h"
#include "felix/dataplane.h"
#include "felix/test-ns.h"
#include "lib/test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/icmp6.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>

static const char *backend_name;
static struct weft_acl_backend *B;
static int node_fd = -1;

struct pod {
	struct ns ns;
	const char *id, *v4, *v6;
	char host_if[IFNAMSIZ];
	uint8_t mac[6];
};

static struct pod pod_a = {.id = "acl-a", .v4 = "10.65.0.1", .v6 = "fd00:65::1"};
static struct pod pod_b = {.id = "acl-b", .v4 = "10.65.0.2", .v6 = "fd00:65::2"};
static struct pod pod_c = {.id = "acl-c", .v4 = "10.65.0.3", .v6 = "fd00:65::3"};
static struct pod pod_d = {.id = "acl-d", .v4 = "10.65.0.4", .v6 = "fd00:65::4"}; /* never in a program at first */

#define NODE_V4 "10.64.0.1"
#define NODE_V6 "fd00:64::1"

/* ------------------------------------------------------------------ */
/* Program builders                                                    */
/* ------------------------------------------------------------------ */

static int cidr_qcmp(const void *a, const void *b)
{
	const struct weft_cidr *x = a, *y = b;
	int c = weft_ip_cmp(&x->ip, &y->ip);

	return c ? c : (int)x->prefixlen - (int)y->prefixlen;
}

static struct weft_acl_program *prog_new(void)
{
	struct weft_acl_program *p = wcalloc(1, sizeof(*p));
	static const struct weft_acl_failsafe fs[] = {{IPPROTO_TCP, 22}, {IPPROTO_UDP, 68}, {IPPROTO_TCP, 179}};

	p->failsafe = wmemdup(fs, sizeof(fs));
	p->n_failsafe = ARRAY_SIZE(fs);
	return p;
}

static struct weft_acl_set *find_set(struct weft_acl_program *p, const char *name)
{
	for (size_t i = 0; i < p->n_sets; i++)
		if (streq(p->sets[i].name, name))
			return &p->sets[i];
	return NULL;
}

static struct weft_acl_chain *find_chain(struct weft_acl_program *p, const char *name)
{
	for (size_t i = 0; i < p->n_chains; i++)
		if (streq(p->chains[i].name, name))
			return &p->chains[i];
	fprintf(stderr, "test bug: no chain %s\n", name);
	abort();
}

static void set_add(struct weft_acl_set *s, const char *elem)
{
	struct weft_cidr c;

	if (weft_cidr_parse_host(elem, &c) < 0) {
		fprintf(stderr, "test bug: bad address %s\n", elem);
		abort();
	}
	s->elems = wrealloc(s->elems, (s->n_elems + 1) * sizeof(*s->elems));
	s->elems[s->n_elems++] = c;
	qsort(s->elems, s->n_elems, sizeof(*s->elems), cidr_qcmp);
}

static void set_del(struct weft_acl_set *s, const char *elem)
{
	struct weft_cidr c;

	weft_cidr_parse_host(elem, &c);
	for (size_t i = 0; i < s->n_elems; i++) {
		if (cidr_qcmp(&s->elems[i], &c) == 0) {
			memmove(&s->elems[i], &s->elems[i + 1], (s->n_elems - i - 1) * sizeof(c));
			s->n_elems--;
			return;
		}
	}
}

/* A set with the comma-separated members in csv (may be ""). */
static struct weft_acl_set *add_set(struct weft_acl_program *p, const char *name, int family, const char *csv)
{
	_cleanup_free_ char *copy = wstrdup(csv);
	struct weft_acl_set *s;
	char *save = NULL;

	p->sets = wrealloc(p->sets, (p->n_sets + 1) * sizeof(*p->sets));
	s = &p->sets[p->n_sets++];
	memset(s, 0, sizeof(*s));
	s->name = wstrdup(name);
	s->origin = wasprintf("test set %s", name);
	s->family = family;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		set_add(s, t);
	return s;
}

static void add_chain(struct weft_acl_program *p, const char *name, enum weft_acl_chain_kind kind, bool ingress)
{
	struct weft_acl_chain *c;

	p->chains = wrealloc(p->chains, (p->n_chains + 1) * sizeof(*p->chains));
	c = &p->chains[p->n_chains++];
	memset(c, 0, sizeof(*c));
	c->name = wstrdup(name);
	c->origin = wasprintf("%s %s %s", kind == WEFT_ACL_CHAIN_POLICY ? "policy" : "profile", name,
			      ingress ? "ingress" : "egress");
	c->kind = kind;
	c->ingress = ingress;
}

/* A rule appended to chain; the pointer is valid until the next rule is
 * added to the same chain. */
static struct weft_acl_rule *add_rule(struct weft_acl_program *p, const char *chain, enum weft_acl_action a)
{
	struct weft_acl_chain *c = find_chain(p, chain);
	struct weft_acl_rule *r;

	c->rules = wrealloc(c->rules, (c->n_rules + 1) * sizeof(*c->rules));
	r = &c->rules[c->n_rules++];
	memset(r, 0, sizeof(*r));
	r->action = a;
	r->proto = r->not_proto = -1;
	r->icmp_type = r->icmp_code = r->not_icmp_type = r->not_icmp_code = -1;
	r->origin = wasprintf("%s rule %zu", c->origin, c->n_rules);
	if (a == WEFT_ACL_LOG)
		r->log_prefix = wasprintf("weft %s ", chain);
	return r;
}

static void rule_addr(struct weft_acl_program *p, struct weft_acl_rule *r, bool src, bool negate, const char *set)
{
	struct weft_acl_set *s = find_set(p, set);

	if (!s)
		abort();
	r->addrs = wrealloc(r->addrs, (r->n_addrs + 1) * sizeof(*r->addrs));
	r->addrs[r->n_addrs++] = (struct weft_acl_addr_match){.src = src, .negate = negate, .set = wstrdup(set)};
	r->family = s->family;
}

/* "80,443,8000-8080" */
static void ports(struct weft_acl_portrange **v, size_t *n, const char *spec)
{
	_cleanup_free_ char *copy = wstrdup(spec);
	char *save = NULL;

	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned lo, hi;

		if (sscanf(t, "%u-%u", &lo, &hi) != 2)
			hi = lo = (unsigned)atoi(t);
		*v = wrealloc(*v, (*n + 1) * sizeof(**v));
		(*v)[(*n)++] = (struct weft_acl_portrange){(uint16_t)lo, (uint16_t)hi};
	}
}

static void strv_csv(char ***v, size_t *n, const char *csv)
{
	_cleanup_free_ char *copy = wstrdup(csv);
	char *save = NULL;

	for (size_t i = 0; i < *n; i++)
		free((*v)[i]);
	free(*v);
	*v = NULL;
	*n = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		*v = wrealloc(*v, (*n + 1) * sizeof(**v));
		(*v)[(*n)++] = wstrdup(t);
	}
}

static struct weft_acl_endpoint *find_ep(struct weft_acl_program *p, struct pod *pod)
{
	for (size_t i = 0; i < p->n_endpoints; i++)
		if (streq(p->endpoints[i].ifname, pod->host_if))
			return &p->endpoints[i];
	return NULL;
}

/* The endpoint of pod with its chains: comma-separated chain names for
 * ingress policies, ingress profiles, egress policies, egress profiles. */
static void add_ep(struct weft_acl_program *p, struct pod *pod, const char *in_pol, const char *in_prof,
		   const char *out_pol, const char *out_prof)
{
	struct weft_acl_endpoint *e = find_ep(p, pod);

	if (!e) {
		p->endpoints = wrealloc(p->endpoints, (p->n_endpoints + 1) * sizeof(*p->endpoints));
		e = &p->endpoints[p->n_endpoints++];
		memset(e, 0, sizeof(*e));
		e->name = wstrdup(pod->id);
		e->ifname = wstrdup(pod->host_if);
		e->addrs = wcalloc(2, sizeof(*e->addrs));
		weft_cidr_parse_host(pod->v4, &e->addrs[0]);
		weft_cidr_parse_host(pod->v6, &e->addrs[1]);
		e->n_addrs = 2;
		memcpy(e->mac, pod->mac, 6);
		e->has_mac = true;
	}
	strv_csv(&e->in_policies, &e->n_in_policies, in_pol);
	strv_csv(&e->in_profiles, &e->n_in_profiles, in_prof);
	strv_csv(&e->out_policies, &e->n_out_policies, out_pol);
	strv_csv(&e->out_profiles, &e->n_out_profiles, out_prof);
}

static void del_ep(struct weft_acl_program *p, struct pod *pod)
{
	struct weft_acl_endpoint *e = find_ep(p, pod);
	struct weft_acl_program *one = wcalloc(1, sizeof(*one));
	size_t i = (size_t)(e - p->endpoints);

	/* The program destructor frees an endpoint's parts: give it a
	 * program holding just this one. */
	one->endpoints = wmemdup(e, sizeof(*e));
	one->n_endpoints = 1;
	weft_acl_program_free(one);
	memmove(&p->endpoints[i], &p->endpoints[i + 1], (p->n_endpoints - i - 1) * sizeof(*e));
	p->n_endpoints--;
}

/* "allow everything" profile chains, wpi-all / wpo-all. */
static void add_allow_all(struct weft_acl_program *p)
{
	add_chain(p, "wpi-all", WEFT_ACL_CHAIN_PROFILE, true);
	add_rule(p, "wpi-all", WEFT_ACL_ALLOW);
	add_chain(p, "wpo-all", WEFT_ACL_CHAIN_PROFILE, false);
	add_rule(p, "wpo-all", WEFT_ACL_ALLOW);
}

static int set_name_qcmp(const void *a, const void *b)
{
	return strcmp(((const struct weft_acl_set *)a)->name, ((const struct weft_acl_set *)b)->name);
}

static int chain_name_qcmp(const void *a, const void *b)
{
	return strcmp(((const struct weft_acl_chain *)a)->name, ((const struct weft_acl_chain *)b)->name);
}

static int ep_name_qcmp(const void *a, const void *b)
{
	return strcmp(((const struct weft_acl_endpoint *)a)->ifname, ((const struct weft_acl_endpoint *)b)->ifname);
}

/* Apply p (sorted first, as the contract wants programs). */
/* After every apply and update the tests make, weft_acl_check() finds no
 * drift: nft's census of the table's rules (kept from the kernel's echoes
 * of its batches) matches a dump of the table; ipt's chains have the
 * rules it left in them. */
static void census_ok(const char *what, int r)
{
	if (r < 0)
		return;
	r = weft_acl_check(B);
	if (r != 0)
		fprintf(stderr, "  %s: weft_acl_check() after it: %s\n", what, strerror(-r));
	CHECK_EQ_INT(r, 0);
}

static int apply(struct weft_acl_program *p, struct weft_acl_stats *st)
{
	struct weft_acl_stats local;
	char *err = NULL;
	int r;

	if (p->n_sets)
		qsort(p->sets, p->n_sets, sizeof(*p->sets), set_name_qcmp);
	if (p->n_chains)
		qsort(p->chains, p->n_chains, sizeof(*p->chains), chain_name_qcmp);
	if (p->n_endpoints)
		qsort(p->endpoints, p->n_endpoints, sizeof(*p->endpoints), ep_name_qcmp);
	r = weft_acl_apply(B, p, st ? st : &local, &err);
	if (r < 0)
		fprintf(stderr, "  apply: %s (%d)\n", err ? err : "?", r);
	free(err);
	census_ok("apply", r);
	return r;
}

static void stats_print(const char *what, const struct weft_acl_stats *st)
{
	fprintf(stderr,
		"  %s: full=%d sets +%zu -%zu elems +%zu -%zu chains +%zu ~%zu -%zu rules +%zu -%zu "
		"endpoints +%zu ~%zu -%zu, %.3f ms\n",
		what, st->full, st->sets_created, st->sets_deleted, st->elems_added, st->elems_removed,
		st->chains_created, st->chains_replaced, st->chains_deleted, st->rules_added, st->rules_deleted,
		st->endpoints_added, st->endpoints_replaced, st->endpoints_removed, st->apply_ns / 1e6);
}

/* ------------------------------------------------------------------ */
/* Traffic                                                             */
/* ------------------------------------------------------------------ */

#define WAIT_MS 600 /* a dropped packet shows as no answer within this */

static int sock_in(int nsfd, int family, int type)
{
	int s;

	if (setns(nsfd, CLONE_NEWNET) < 0)
		abort();
	s = socket(family, type | SOCK_CLOEXEC, 0);
	if (setns(node_fd, CLONE_NEWNET) < 0)
		abort();
	return s;
}

static socklen_t sockaddr_of(const char *addr, int port, struct sockaddr_storage *ss)
{
	struct weft_ip a = ip(addr);

	memset(ss, 0, sizeof(*ss));
	if (a.family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		s4->sin_addr = a.v4;
		return sizeof(*s4);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
	s6->sin6_addr = a.v6;
	return sizeof(*s6);
}

static bool wait_fd(int fd, short ev)
{
	struct pollfd p = {.fd = fd, .events = ev};

	return poll(&p, 1, WAIT_MS) == 1 && (p.revents & ev);
}

/* A TCP connection from namespace src_ns (bound to src when given) to
 * dst:port, where a listener in dst_ns waits. */
static bool tcp_from(int src_ns, const char *src, int dst_ns, const char *dst, int port)
{
	return ns_tcp(node_fd, src_ns, src, dst_ns, dst, port, WAIT_MS);
}

static bool tcp(struct pod *from, struct pod *to, bool v6, int port)
{
	return tcp_from(from->ns.fd, NULL, to->ns.fd, v6 ? to->v6 : to->v4, port);
}

static bool tcp_host(struct pod *from, bool v6, int port)
{
	return tcp_from(from->ns.fd, NULL, node_fd, v6 ? NODE_V6 : NODE_V4, port);
}

/* An ICMPv6 message of that type from pod from to the node (NODE_V6):
 * does a raw socket of the node get it, i.e. did the node's input path
 * accept it? (Raw sockets see a message before the kernel's own handler,
 * which may throw this made-up one away.) */
static bool icmp6_host(struct pod *from, uint8_t type)
{
	struct sockaddr_storage sa;
	socklen_t len = sockaddr_of(NODE_V6, 0, &sa);
	struct weft_ip src = ip(from->v6);
	uint8_t msg[24] = {type, 0}, buf[256];
	struct icmp6_filter f;
	bool got = false;
	int rx, tx;

	for (size_t i = 8; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(0xa0 + i + type);
	rx = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6); /* the node's */
	if (setns(from->ns.fd, CLONE_NEWNET) < 0)
		abort();
	tx = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
	if (setns(node_fd, CLONE_NEWNET) < 0)
		abort();
	ICMP6_FILTER_SETBLOCKALL(&f);
	ICMP6_FILTER_SETPASS(type, &f);
	if (rx < 0 || tx < 0 || setsockopt(rx, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f)) < 0 ||
	    sendto(tx, msg, sizeof(msg), 0, (struct sockaddr *)&sa, len) != (ssize_t)sizeof(msg))
		goto out;
	while (!got && wait_fd(rx, POLLIN)) {
		struct sockaddr_in6 peer;
		socklen_t plen = sizeof(peer);
		ssize_t n = recvfrom(rx, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&peer, &plen);

		got = n == (ssize_t)sizeof(msg) && memcmp(&peer.sin6_addr, &src.v6, 16) == 0 && buf[0] == type &&
		      memcmp(buf + 8, msg + 8, sizeof(msg) - 8) == 0;
	}
out:
	if (rx >= 0)
		close(rx);
	if (tx >= 0)
		close(tx);
	return got;
}

static bool udp(struct pod *from, struct pod *to, bool v6, int port)
{
	struct sockaddr_storage sa;
	const char *dst = v6 ? to->v6 : to->v4;
	socklen_t len = sockaddr_of(dst, port, &sa);
	int srv = sock_in(to->ns.fd, sa.ss_family, SOCK_DGRAM), cli = sock_in(from->ns.fd, sa.ss_family, SOCK_DGRAM);
	char buf[8];
	bool ok = false;

	if (srv >= 0 && cli >= 0 && bind(srv, (struct sockaddr *)&sa, len) == 0 &&
	    sendto(cli, "hi", 2, 0, (struct sockaddr *)&sa, len) == 2 && wait_fd(srv, POLLIN))
		ok = recv(srv, buf, sizeof(buf), MSG_DONTWAIT) == 2;
	if (srv >= 0)
		close(srv);
	if (cli >= 0)
		close(cli);
	return ok;
}

/* ping from a pod (or the node when from is NULL), from address src if
 * given. */
static bool ping_src(struct pod *from, const char *src, const char *dst)
{
	return !fails("%s%s ping -c1 -W1 -q %s%s %s >/dev/null 2>&1", from ? "nsenter --net=" : "",
		      from ? from->ns.path : "", src ? "-I " : "", src ? src : "", dst);
}

static bool ping(struct pod *from, struct pod *to, bool v6)
{
	return ping_src(from, NULL, v6 ? to->v6 : to->v4);
}

/* CHECK with the traffic described on failure. */
#define EXPECT(want, got, ...)                                                                 \
	do {                                                                                   \
		bool _g = (got);                                                               \
		CHECK(_g == (want));                                                           \
		if (_g != (want)) {                                                            \
			fprintf(stderr, "  expected %s: ", (want) ? "allowed" : "dropped");   \
			fprintf(stderr, __VA_ARGS__);                                          \
			fprintf(stderr, "\n");                                                 \
		}                                                                              \
	} while (0)

/* ------------------------------------------------------------------ */
/* Kernel inspection (the only backend-specific part)                  */
/* ------------------------------------------------------------------ */

static char *dump_kernel(void)
{
	if (streq(backend_name, "nft"))
		return out("nft list ruleset 2>&1");
	return out("iptables-save 2>&1; ip6tables-save 2>&1; ipset list 2>&1");
}

/* How many things named weft... the backend left in the kernel. */
static int leftovers(void)
{
	_cleanup_free_ char *n = NULL;

	if (streq(backend_name, "nft"))
		n = out("nft list tables 2>/dev/null | grep -c ' weft$'");
	else
		n = out("{ iptables-save; ip6tables-save; ipset list -n; } 2>/dev/null | grep -ci weft");
	return atoi(n);
}

/* nft: the port sets of merged runs (weft-p.N) the table has. */
static int psets(void)
{
	_cleanup_free_ char *n = out("nft list table inet weft 2>/dev/null | grep -c 'set weft-p\\.'");

	return atoi(n);
}

/* nft: port sets not used by exactly one rule (leaked, or shared). */
static int psets_astray(void)
{
	_cleanup_free_ char *n =
		out("nft list ruleset 2>/dev/null | grep -o 'weft-p\\.[0-9a-f]*' | sort | uniq -c | awk '$1 != 2' | wc -l");

	return atoi(n);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

/* The classic Calico example: WEB accepts from WEB and on 80/443, DB on
 * 5432 from WEB only. */
static struct weft_acl_program *classic(void)
{
	struct weft_acl_program *p = prog_new();
	struct weft_acl_rule *r;

	add_set(p, "wt4-web", AF_INET, "10.65.0.1,10.65.0.2");
	add_set(p, "wt6-web", AF_INET6, "fd00:65::1,fd00:65::2");
	add_chain(p, "wpi-web", WEFT_ACL_CHAIN_PROFILE, true);
	rule_addr(p, add_rule(p, "wpi-web", WEFT_ACL_ALLOW), true, false, "wt4-web");
	rule_addr(p, add_rule(p, "wpi-web", WEFT_ACL_ALLOW), true, false, "wt6-web");
	r = add_rule(p, "wpi-web", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "80,443");
	add_chain(p, "wpo-web", WEFT_ACL_CHAIN_PROFILE, false);
	add_rule(p, "wpo-web", WEFT_ACL_ALLOW);
	add_chain(p, "wpi-db", WEFT_ACL_CHAIN_PROFILE, true);
	r = add_rule(p, "wpi-db", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "5432");
	rule_addr(p, r, true, false, "wt4-web");
	r = add_rule(p, "wpi-db", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "5432");
	rule_addr(p, r, true, false, "wt6-web");
	add_chain(p, "wpo-db", WEFT_ACL_CHAIN_PROFILE, false);
	add_rule(p, "wpo-db", WEFT_ACL_ALLOW);
	add_ep(p, &pod_a, "", "wpi-web", "", "wpo-web");
	add_ep(p, &pod_b, "", "wpi-web", "", "wpo-web");
	add_ep(p, &pod_c, "", "wpi-db", "", "wpo-db");
	return p;
}

static void test_classic(void)
{
	struct weft_acl_program *p = classic();
	struct weft_acl_stats st;

	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("first apply", &st);
	CHECK(st.full);
	CHECK_EQ_INT(st.endpoints_added, 3);
	EXPECT(true, tcp(&pod_a, &pod_b, false, 22), "A->B tcp 22 (tag WEB)");
	EXPECT(true, ping(&pod_b, &pod_a, false), "B->A ping (tag WEB)");
	EXPECT(true, ping(&pod_a, &pod_b, true), "A->B ping6 (tag WEB v6)");
	EXPECT(true, tcp(&pod_c, &pod_b, false, 80), "C->B tcp 80");
	EXPECT(true, tcp(&pod_c, &pod_b, true, 443), "C->B tcp6 443");
	EXPECT(false, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (C not WEB)");
	EXPECT(false, ping(&pod_c, &pod_b, false), "C->B ping");
	EXPECT(true, tcp(&pod_a, &pod_c, false, 5432), "A->C tcp 5432 (WEB to DB)");
	EXPECT(true, tcp(&pod_b, &pod_c, true, 5432), "B->C tcp6 5432 (WEB to DB)");
	EXPECT(false, tcp(&pod_a, &pod_c, false, 5433), "A->C tcp 5433");
	EXPECT(false, tcp(&pod_c, &pod_a, false, 5432), "C->A tcp 5432 (A is WEB: 80/443 only)");
	weft_acl_program_free(p);
}

/* A and B with ingress profile chain `in` (rules to be added) and an
 * egress profile that allows everything. */
static struct weft_acl_program *ingress_prog(const char *in)
{
	struct weft_acl_program *p = prog_new();

	add_chain(p, in, WEFT_ACL_CHAIN_PROFILE, true);
	add_chain(p, "wpo-all", WEFT_ACL_CHAIN_PROFILE, false);
	add_rule(p, "wpo-all", WEFT_ACL_ALLOW);
	add_ep(p, &pod_a, "", in, "", "wpo-all");
	add_ep(p, &pod_b, "", in, "", "wpo-all");
	return p;
}

/* Protocol 0 is a protocol number like any other (no transport protocol
 * of real traffic), not "every protocol", which is what -p 0 means to
 * iptables: allowing it lets nothing through, denying everything else
 * denies everything, allowing everything else lets everything through. */
static void test_proto_zero(void)
{
	for (int k = 0; k < 3; k++) {
		struct weft_acl_program *p = ingress_prog("wpi-z");
		struct weft_acl_rule *r;

		if (k == 0) {
			add_rule(p, "wpi-z", WEFT_ACL_ALLOW)->proto = 0;
		} else if (k == 1) {
			add_rule(p, "wpi-z", WEFT_ACL_DENY)->not_proto = 0;
			add_rule(p, "wpi-z", WEFT_ACL_ALLOW);
		} else {
			r = add_rule(p, "wpi-z", WEFT_ACL_ALLOW);
			r->not_proto = 0;
		}
		CHECK_EQ_INT(apply(p, NULL), 0);
		EXPECT(k == 2, tcp(&pod_a, &pod_b, false, 22), k == 0   ? "A->B tcp 22, allow protocol 0 only"
							     : k == 1 ? "A->B tcp 22, deny all but protocol 0"
								      : "A->B tcp 22, allow all but protocol 0");
		EXPECT(k == 2, ping(&pod_a, &pod_b, false), "A->B ping");
		EXPECT(k == 2, tcp(&pod_a, &pod_b, true, 22), "A->B tcp6 22");
		EXPECT(k == 2, ping(&pod_a, &pod_b, true), "A->B ping6");
		weft_acl_program_free(p);
	}
}

/* Port and protocol forms iptables takes otherwise than they read: both
 * ports negated (iptables-nft 1.8.9 compared them as one), every port
 * (negated: never matches), a negated range from 0, ICMP type 255 (the
 * kernel's icmp match reads it as any type), a protocol and another one
 * not. The same on both backends. */
static void test_port_edges(void)
{
	for (int k = 0; k < 10; k++) {
		struct weft_acl_program *p = ingress_prog("wpi-e");
		struct weft_acl_rule *r = add_rule(p, "wpi-e", k == 0 ? WEFT_ACL_DENY : WEFT_ACL_ALLOW);

		r->proto = k == 4 || k == 7 || k == 8 ? IPPROTO_ICMP : k == 9 ? IPPROTO_ICMPV6 : IPPROTO_TCP;
		switch (k) {
		case 0:
			ports(&r->not_sports, &r->n_not_sports, "1000");
			ports(&r->not_dports, &r->n_not_dports, "22");
			add_rule(p, "wpi-e", WEFT_ACL_ALLOW);
			break;
		case 1:
			ports(&r->not_dports, &r->n_not_dports, "0-65535");
			break;
		case 2:
			ports(&r->not_dports, &r->n_not_dports, "0-1023");
			break;
		case 3:
			ports(&r->dports, &r->n_dports, "0-65535");
			break;
		case 4:
		case 9:
			r->icmp_type = 255;
			break;
		case 5:
			r->not_proto = IPPROTO_UDP;
			break;
		case 6:
			r->not_proto = IPPROTO_TCP;
			break;
		case 7:
			r->icmp_type = 255;
			r->icmp_code = 0;
			break;
		default:
			r->not_icmp_type = 255;
			break;
		}
		CHECK_EQ_INT(apply(p, NULL), 0);
		switch (k) {
		case 0:
			EXPECT(true, tcp(&pod_a, &pod_b, false, 22), "A->B tcp 22: deny not sport 1000 and not dport 22");
			EXPECT(false, tcp(&pod_a, &pod_b, false, 23), "A->B tcp 23: deny not sport 1000 and not dport 22");
			break;
		case 1:
			EXPECT(false, tcp(&pod_a, &pod_b, false, 22), "A->B tcp 22: allow not ports 0:65535");
			break;
		case 2:
			EXPECT(false, tcp(&pod_a, &pod_b, false, 22), "A->B tcp 22: allow not ports 0:1023");
			EXPECT(true, tcp(&pod_a, &pod_b, false, 5001), "A->B tcp 5001: allow not ports 0:1023");
			break;
		case 3:
			EXPECT(true, tcp(&pod_a, &pod_b, false, 22), "A->B tcp 22: allow ports 0:65535");
			break;
		case 4:
			EXPECT(false, ping(&pod_a, &pod_b, false), "A->B ping: allow icmp type 255");
			break;
		case 5:
			EXPECT(true, tcp(&pod_a, &pod_b, false, 22), "A->B tcp 22: allow tcp, not udp");
			break;
		case 6:
			EXPECT(false, tcp(&pod_a, &pod_b, false, 22), "A->B tcp 22: allow tcp, not tcp");
			break;
		case 7:
			EXPECT(false, ping(&pod_a, &pod_b, false), "A->B ping: allow icmp type 255 code 0");
			break;
		case 8:
			EXPECT(true, ping(&pod_a, &pod_b, false), "A->B ping: allow icmp, not type 255");
			break;
		default:
			EXPECT(false, ping(&pod_a, &pod_b, true), "A->B ping6: allow icmpv6 type 255");
			break;
		}
		weft_acl_program_free(p);
	}
}

/* Deny before allow, port lists and ranges, UDP, ICMP types and codes,
 * negations, log. Everything on B's ingress; A and C send. */
static void test_matches(void)
{
	struct weft_acl_program *p = prog_new();
	struct weft_acl_rule *r;
	_cleanup_free_ char *dump = NULL;

	add_allow_all(p);
	add_set(p, "wt4-c", AF_INET, "10.65.0.3");
	add_set(p, "wt6-c", AF_INET6, "fd00:65::3");
	add_chain(p, "wpi-t", WEFT_ACL_CHAIN_PROFILE, true);
	r = add_rule(p, "wpi-t", WEFT_ACL_LOG);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "8080");
	free(r->log_prefix);
	r->log_prefix = wstrdup("weft-test-log ");
	r = add_rule(p, "wpi-t", WEFT_ACL_DENY);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "8080");
	r = add_rule(p, "wpi-t", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "80,8000-8090,8085-8100");
	r = add_rule(p, "wpi-t", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_UDP;
	ports(&r->dports, &r->n_dports, "5353");
	r = add_rule(p, "wpi-t", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_ICMP;
	r->icmp_type = 8;
	r->icmp_code = 0;
	r = add_rule(p, "wpi-t", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "9000-9001");
	rule_addr(p, r, true, true, "wt4-c"); /* not from C */
	r = add_rule(p, "wpi-t", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_TCP;
	r->family = AF_INET;
	ports(&r->not_dports, &r->n_not_dports, "1-9999,20000-20010");
	r = add_rule(p, "wpi-t", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_ICMPV6;
	r->not_icmp_type = 128; /* anything but echo request */
	r = add_rule(p, "wpi-t", WEFT_ACL_ALLOW);
	r->not_proto = IPPROTO_ICMPV6; /* from C's IPv6 address: anything but ICMPv6 */
	rule_addr(p, r, true, false, "wt6-c");
	add_ep(p, &pod_a, "", "wpi-all", "", "wpo-all");
	add_ep(p, &pod_b, "", "wpi-t", "", "wpo-all");
	add_ep(p, &pod_c, "", "wpi-all", "", "wpo-all");
	CHECK_EQ_INT(apply(p, NULL), 0);

	EXPECT(false, tcp(&pod_a, &pod_b, false, 8080), "A->B tcp 8080 (deny before allow)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 80), "A->B tcp 80 (list)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 8001), "A->B tcp 8001 (range)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 8100), "A->B tcp 8100 (overlapping range)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 81), "A->B tcp 81");
	EXPECT(true, udp(&pod_a, &pod_b, false, 5353), "A->B udp 5353");
	EXPECT(false, udp(&pod_a, &pod_b, false, 5354), "A->B udp 5354");
	EXPECT(true, ping(&pod_a, &pod_b, false), "A->B ping (icmp type 8 code 0)");
	EXPECT(false, ping(&pod_a, &pod_b, true), "A->B ping6 (not type 128)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 9001), "A->B tcp 9001 (not from C)");
	EXPECT(false, tcp(&pod_c, &pod_b, false, 9001), "C->B tcp 9001 (from C)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 10001), "A->B tcp 10001 (not in 1-9999)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 20005), "A->B tcp 20005 (in the negated list)");
	EXPECT(false, tcp(&pod_a, &pod_b, true, 10001), "A->B tcp6 10001 (rule is IPv4)");
	EXPECT(true, udp(&pod_c, &pod_b, true, 7777), "C->B udp6 7777 (not icmpv6, from C)");
	EXPECT(false, udp(&pod_a, &pod_b, true, 7777), "A->B udp6 7777 (not from C)");
	EXPECT(false, ping(&pod_c, &pod_b, true), "C->B ping6 (icmpv6 excluded, type 128 excluded)");
	dump = dump_kernel();
	CHECK_HAS(dump, "weft-test-log ");

	/* ICMP type and code: echo request with code 1 does not match. */
	r = &find_chain(p, "wpi-t")->rules[4];
	r->icmp_code = 1;
	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(false, ping(&pod_a, &pod_b, false), "A->B ping (rule wants code 1)");
	r = &find_chain(p, "wpi-t")->rules[4];
	r->icmp_code = -1;
	r->icmp_type = 0; /* echo reply only */
	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(false, ping(&pod_a, &pod_b, false), "A->B ping (rule wants type 0)");
	weft_acl_program_free(p);
}

/* Policy order, pass, end-of-policies deny, policies before profiles. */
static void test_policies(void)
{
	struct weft_acl_program *p = prog_new();
	struct weft_acl_rule *r;

	add_allow_all(p);
#define TCP_RULE(chain, act, port)                                  \
	do {                                                        \
		r = add_rule(p, chain, act);                        \
		r->proto = IPPROTO_TCP;                             \
		ports(&r->dports, &r->n_dports, port);              \
	} while (0)
	add_chain(p, "wgi-p1", WEFT_ACL_CHAIN_POLICY, true);
	add_rule(p, "wgi-p1", WEFT_ACL_LOG);
	TCP_RULE("wgi-p1", WEFT_ACL_DENY, "7001");
	TCP_RULE("wgi-p1", WEFT_ACL_PASS, "7002,7007");
	TCP_RULE("wgi-p1", WEFT_ACL_ALLOW, "7003");
	add_chain(p, "wgi-p2", WEFT_ACL_CHAIN_POLICY, true);
	TCP_RULE("wgi-p2", WEFT_ACL_ALLOW, "7004,7007");
	TCP_RULE("wgi-p2", WEFT_ACL_DENY, "7002,7003");
	add_chain(p, "wpi-b", WEFT_ACL_CHAIN_PROFILE, true);
	TCP_RULE("wpi-b", WEFT_ACL_ALLOW, "7002,7005");
	add_ep(p, &pod_a, "", "wpi-all", "", "wpo-all");
	add_ep(p, &pod_b, "wgi-p1,wgi-p2", "wpi-b", "", "wpo-all");
	CHECK_EQ_INT(apply(p, NULL), 0);

	EXPECT(false, tcp(&pod_a, &pod_b, false, 7001), "7001: policy 1 denies");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7002), "7002: policy 1 passes (policy 2 skipped), profile allows");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7007), "7007: passed to the profile, which does not allow");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7003), "7003: policy 1 allows before policy 2 denies");
	EXPECT(true, tcp(&pod_a, &pod_b, true, 7004), "7004: policy 2 allows");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7005), "7005: end of policies deny (profile not reached)");
	EXPECT(false, ping(&pod_a, &pod_b, false), "ping: no policy decides");

	/* Order reversed: policy 2 now denies 7003 first. */
	add_ep(p, &pod_b, "wgi-p2,wgi-p1", "wpi-b", "", "wpo-all");
	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7003), "7003: policy 2 first denies");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7007), "7007: policy 2 first allows");

	/* No policy: the profile decides alone. */
	add_ep(p, &pod_b, "", "wpi-b", "", "wpo-all");
	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7005), "7005: profile allows");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7001), "7001: profile does not allow");
#undef TCP_RULE
	weft_acl_program_free(p);
}

/* Pods on the same node: the sender's egress and the receiver's ingress
 * must both allow. */
static void test_both_ways(void)
{
	struct weft_acl_program *p = prog_new();
	struct weft_acl_rule *r;

	add_allow_all(p);
	add_chain(p, "wpo-a", WEFT_ACL_CHAIN_PROFILE, false);
	r = add_rule(p, "wpo-a", WEFT_ACL_DENY);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "7100");
	add_rule(p, "wpo-a", WEFT_ACL_ALLOW);
	add_chain(p, "wpi-b", WEFT_ACL_CHAIN_PROFILE, true);
	r = add_rule(p, "wpi-b", WEFT_ACL_DENY);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "7101");
	add_rule(p, "wpi-b", WEFT_ACL_ALLOW);
	add_ep(p, &pod_a, "", "wpi-all", "", "wpo-a");
	add_ep(p, &pod_b, "", "wpi-b", "", "wpo-all");
	add_ep(p, &pod_c, "", "wpi-all", "", "wpo-all");
	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7100), "A->B 7100: A's egress denies");
	EXPECT(true, tcp(&pod_c, &pod_b, false, 7100), "C->B 7100");
	EXPECT(false, tcp(&pod_c, &pod_b, false, 7101), "C->B 7101: B's ingress denies");
	EXPECT(true, tcp(&pod_c, &pod_a, false, 7101), "C->A 7101");
	EXPECT(false, tcp(&pod_a, &pod_c, true, 7100), "A->C tcp6 7100: A's egress denies");
	weft_acl_program_free(p);
}

/* A weft interface without an endpoint entry gets nothing through, in
 * either direction; the host may still reach it. Then it is added and
 * removed incrementally. */
static void test_fail_closed(void)
{
	struct weft_acl_program *p = prog_new();
	struct weft_acl_stats st;

	add_allow_all(p);
	add_ep(p, &pod_a, "", "wpi-all", "", "wpo-all");
	add_ep(p, &pod_b, "", "wpi-all", "", "wpo-all");
	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(true, ping(&pod_a, &pod_b, false), "A->B ping");
	EXPECT(false, ping(&pod_a, &pod_d, false), "A->D ping (D has no endpoint entry)");
	EXPECT(false, ping(&pod_d, &pod_a, false), "D->A ping");
	EXPECT(false, tcp(&pod_d, &pod_b, true, 80), "D->B tcp6 80");
	EXPECT(false, tcp_host(&pod_d, false, 22), "D->host tcp 22");
	EXPECT(true, ping_src(NULL, NULL, pod_d.v4), "host->D ping (host to workload)");

	add_ep(p, &pod_d, "", "wpi-all", "", "wpo-all");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("endpoint added", &st);
	CHECK_EQ_INT(st.endpoints_added, 1);
	CHECK_EQ_INT(st.chains_replaced + st.chains_created + st.elems_added, 0);
	CHECK(!st.full);
	EXPECT(true, ping(&pod_a, &pod_d, false), "A->D ping (D programmed)");
	EXPECT(true, ping(&pod_d, &pod_a, true), "D->A ping6");

	del_ep(p, &pod_d);
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("endpoint removed", &st);
	CHECK_EQ_INT(st.endpoints_removed, 1);
	CHECK_EQ_INT(st.endpoints_added, 0);
	EXPECT(false, ping(&pod_a, &pod_d, false), "A->D ping (D removed again)");
	weft_acl_program_free(p);
}

/* A pod sends only from its own addresses and MAC. */
static void test_antispoof(void)
{
	struct weft_acl_program *p = prog_new();

	add_allow_all(p);
	add_ep(p, &pod_a, "", "wpi-all", "", "wpo-all");
	add_ep(p, &pod_b, "", "wpi-all", "", "wpo-all");
	CHECK_EQ_INT(apply(p, NULL), 0);
	CHECK_EQ_INT(sh("nsenter --net=%s ip addr add 10.65.0.99/32 dev eth0 && "
			"nsenter --net=%s ip addr add fd00:65::99/128 dev eth0 nodad",
			pod_a.ns.path, pod_a.ns.path),
		     0);
	EXPECT(true, ping_src(&pod_a, pod_a.v4, pod_b.v4), "A->B ping from A's address");
	EXPECT(false, ping_src(&pod_a, "10.65.0.99", pod_b.v4), "A->B ping from 10.65.0.99 (spoofed)");
	EXPECT(false, ping_src(&pod_a, "fd00:65::99", pod_b.v6), "A->B ping6 from fd00:65::99 (spoofed)");
	EXPECT(false, tcp_from(pod_a.ns.fd, "10.65.0.99", pod_b.ns.fd, pod_b.v4, 80), "A->B tcp from 10.65.0.99");
	EXPECT(false, tcp_from(pod_a.ns.fd, "10.65.0.99", node_fd, NODE_V4, 22), "A->host tcp 22 from 10.65.0.99");
	sh("nsenter --net=%s ip addr del 10.65.0.99/32 dev eth0; nsenter --net=%s ip addr del fd00:65::99/128 dev eth0",
	   pod_a.ns.path, pod_a.ns.path);

	CHECK_EQ_INT(sh("nsenter --net=%s ip link set eth0 address 02:00:00:00:00:99", pod_a.ns.path), 0);
	EXPECT(false, ping(&pod_a, &pod_b, false), "A->B ping from another MAC");
	EXPECT(false, ping(&pod_a, &pod_b, true), "A->B ping6 from another MAC");
	CHECK_EQ_INT(sh("nsenter --net=%s ip link set eth0 address %02x:%02x:%02x:%02x:%02x:%02x", pod_a.ns.path,
			pod_a.mac[0], pod_a.mac[1], pod_a.mac[2], pod_a.mac[3], pod_a.mac[4], pod_a.mac[5]),
		     0);
	/* A MAC change flushes the pod's neighbours, the permanent gateway
	 * entries too; and the node may have learnt the other MAC for A's
	 * addresses (its probes were answered from it). Set both right. */
	CHECK_EQ_INT(sh("nsenter --net=%s ip neigh replace " WEFT_DP_GATEWAY " dev eth0 lladdr " WEFT_DP_HOST_MAC
			" nud permanent && nsenter --net=%s ip neigh replace fe80::ecee:eeff:feee:eeee dev eth0 "
			"lladdr " WEFT_DP_HOST_MAC " nud permanent",
			pod_a.ns.path, pod_a.ns.path),
		     0);
	sh("ip neigh flush dev %s", pod_a.host_if);
	EXPECT(true, ping(&pod_a, &pod_b, false), "A->B ping with A's MAC again");

	weft_acl_program_free(p);
}

/* Workload -> host: failsafe ports and what a policy allows; a profile's
 * allow-all does not open the host. Host -> workload: accepted. */
static void test_host(void)
{
	struct weft_acl_program *p = prog_new();
	struct weft_acl_rule *r;

	add_allow_all(p);
	add_chain(p, "wpi-none", WEFT_ACL_CHAIN_PROFILE, true);
	add_ep(p, &pod_a, "", "wpi-none", "", "wpo-all");
	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(true, tcp_host(&pod_a, false, 22), "A->host tcp 22 (failsafe)");
	EXPECT(true, tcp_host(&pod_a, true, 22), "A->host tcp6 22 (failsafe)");
	EXPECT(false, tcp_host(&pod_a, false, 8080), "A->host tcp 8080 (profile allow-all does not open the host)");
	EXPECT(true, tcp_from(node_fd, NULL, pod_a.ns.fd, pod_a.v4, 8080), "host->A tcp 8080 (A's ingress allows nothing)");
	EXPECT(true, ping_src(NULL, NULL, pod_a.v6), "host->A ping6");
	/* ICMPv6 the node accepts from a pod before anything else, as
	 * Calico's felix: MLD (multicast listener query, report, done),
	 * router solicitation, neighbour solicitation and advertisement; a
	 * router advertisement goes through the host protection (dropped
	 * here), and so do MLDv2 reports (143), which Calico does not
	 * accept either. */
	EXPECT(true, icmp6_host(&pod_a, MLD_LISTENER_QUERY), "A->host ICMPv6 multicast listener query (130)");
	EXPECT(true, icmp6_host(&pod_a, MLD_LISTENER_REPORT), "A->host ICMPv6 multicast listener report (131)");
	EXPECT(true, icmp6_host(&pod_a, MLD_LISTENER_REDUCTION), "A->host ICMPv6 multicast listener done (132)");
	EXPECT(true, icmp6_host(&pod_a, ND_ROUTER_SOLICIT), "A->host ICMPv6 router solicitation (133)");
	EXPECT(true, icmp6_host(&pod_a, ND_NEIGHBOR_SOLICIT), "A->host ICMPv6 neighbour solicitation (135)");
	EXPECT(true, icmp6_host(&pod_a, ND_NEIGHBOR_ADVERT), "A->host ICMPv6 neighbour advertisement (136)");
	EXPECT(false, icmp6_host(&pod_a, ND_ROUTER_ADVERT), "A->host ICMPv6 router advertisement (134)");
	EXPECT(false, icmp6_host(&pod_a, 129), "A->host ICMPv6 echo reply (129, below the MLD range)");
	EXPECT(false, icmp6_host(&pod_a, 137), "A->host ICMPv6 redirect (137, above the ND range)");
	EXPECT(false, icmp6_host(&pod_a, 143), "A->host ICMPv6 MLDv2 report (143, not in Calico's list)");
	EXPECT(false, icmp6_host(&pod_a, ICMP6_ECHO_REQUEST), "A->host ICMPv6 echo request (128, not a failsafe)");

	/* A policy opens tcp 8080 to the host. */
	add_chain(p, "wge-host", WEFT_ACL_CHAIN_POLICY, false);
	r = add_rule(p, "wge-host", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "8080");
	add_ep(p, &pod_a, "", "wpi-none", "wge-host", "wpo-all");
	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(true, tcp_host(&pod_a, false, 8080), "A->host tcp 8080 (policy allows)");
	EXPECT(false, tcp_host(&pod_a, false, 8081), "A->host tcp 8081");

	/* Failsafe ports are the program's: tcp 2222 added (with no policy
	 * on A's egress, whose end-of-policies deny would drop it first). */
	add_ep(p, &pod_a, "", "wpi-none", "", "wpo-all");
	p->failsafe = wrealloc(p->failsafe, (p->n_failsafe + 1) * sizeof(*p->failsafe));
	p->failsafe[p->n_failsafe++] = (struct weft_acl_failsafe){IPPROTO_TCP, 2222};
	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(true, tcp_host(&pod_a, false, 2222), "A->host tcp 2222 (failsafe added)");
	weft_acl_program_free(p);
}

/* A membership change touches set elements only; a rule change one chain. */
static void test_incremental(void)
{
	struct weft_acl_program *p = classic();
	struct weft_acl_stats st;
	struct weft_acl_rule *r;

	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(false, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (C not WEB)");

	set_add(find_set(p, "wt4-web"), pod_c.v4);
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("member added", &st);
	CHECK(!st.full);
	CHECK_EQ_INT(st.elems_added, 1);
	CHECK_EQ_INT(st.elems_removed, 0);
	CHECK_EQ_INT(st.sets_created + st.sets_deleted, 0);
	CHECK_EQ_INT(st.chains_created + st.chains_replaced + st.chains_deleted, 0);
	CHECK_EQ_INT(st.endpoints_added + st.endpoints_removed + st.endpoints_replaced, 0);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (C now WEB)");

	set_del(find_set(p, "wt4-web"), pod_c.v4);
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("member removed", &st);
	CHECK_EQ_INT(st.elems_added, 0);
	CHECK_EQ_INT(st.elems_removed, 1);
	CHECK_EQ_INT(st.chains_created + st.chains_replaced + st.chains_deleted, 0);
	EXPECT(false, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (C removed from WEB)");

	/* Members replaced by a covering prefix (the set changes kind, from
	 * addresses to prefixes: the backend may replace it whole), then a
	 * member of the prefix set comes and goes. */
	set_del(find_set(p, "wt4-web"), "10.65.0.1");
	set_del(find_set(p, "wt4-web"), "10.65.0.2");
	set_add(find_set(p, "wt4-web"), "10.65.0.0/30");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("members replaced by a prefix", &st);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (C in 10.65.0.0/30)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 22), "A->B tcp 22 (A in 10.65.0.0/30)");
	set_add(find_set(p, "wt4-web"), "10.66.0.0/16");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("prefix added", &st);
	CHECK_EQ_INT(st.elems_added, 1);
	CHECK_EQ_INT(st.elems_removed + st.chains_replaced, 0);
	set_del(find_set(p, "wt4-web"), "10.65.0.0/30");
	set_add(find_set(p, "wt4-web"), "10.65.0.0/31"); /* A but not C */
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("prefix replaced", &st);
	CHECK_EQ_INT(st.elems_added, 1);
	CHECK_EQ_INT(st.elems_removed, 1);
	CHECK(!st.full);
	EXPECT(false, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (C not in 10.65.0.0/31)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 22), "A->B tcp 22 (A in 10.65.0.0/31)");
	set_del(find_set(p, "wt4-web"), "10.65.0.0/31");
	set_del(find_set(p, "wt4-web"), "10.66.0.0/16");
	set_add(find_set(p, "wt4-web"), pod_a.v4);
	set_add(find_set(p, "wt4-web"), pod_b.v4);
	CHECK_EQ_INT(apply(p, NULL), 0);

	/* A rule added to one chain. */
	r = add_rule(p, "wpi-web", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "7200");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("rule added", &st);
	CHECK_EQ_INT(st.chains_replaced, 1);
	CHECK_EQ_INT(st.chains_created + st.chains_deleted, 0);
	CHECK_EQ_INT(st.elems_added + st.elems_removed, 0);
	CHECK_EQ_INT(st.endpoints_added + st.endpoints_removed + st.endpoints_replaced, 0);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 7200), "C->B tcp 7200 (rule added)");

	/* Nothing changed: nothing done. */
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.elems_added + st.elems_removed + st.chains_replaced + st.chains_created + st.sets_created +
			     st.endpoints_replaced,
		     0);
	CHECK(!st.full);

	/* An endpoint's chain list changes: that endpoint is replaced. */
	add_ep(p, &pod_c, "", "wpi-web", "", "wpo-db");
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.endpoints_replaced, 1);
	CHECK_EQ_INT(st.chains_replaced, 0);
	EXPECT(true, tcp(&pod_a, &pod_c, false, 22), "A->C tcp 22 (C now uses WEB inbound)");

	/* A set and a chain that go away. */
	add_ep(p, &pod_c, "", "wpi-db", "", "wpo-db");
	CHECK_EQ_INT(apply(p, NULL), 0);
	add_set(p, "wt4-tmp", AF_INET, "10.65.0.1");
	add_chain(p, "wpi-tmp", WEFT_ACL_CHAIN_PROFILE, true);
	rule_addr(p, add_rule(p, "wpi-tmp", WEFT_ACL_ALLOW), true, false, "wt4-tmp");
	add_ep(p, &pod_c, "", "wpi-db,wpi-tmp", "", "wpo-db");
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.sets_created, 1);
	CHECK_EQ_INT(st.chains_created, 1);
	EXPECT(true, tcp(&pod_a, &pod_c, false, 22), "A->C tcp 22 (tmp profile)");
	weft_acl_program_free(p);
	p = classic();
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.sets_deleted, 1);
	CHECK_EQ_INT(st.chains_deleted, 1);
	EXPECT(false, tcp(&pod_a, &pod_c, false, 22), "A->C tcp 22 (tmp profile gone)");
	weft_acl_program_free(p);
}

/* Rule-level helpers: move the last rule of chain to position pos,
 * delete the rule at pos, renumber the origins as the compiler does. */
static void move_last_to(struct weft_acl_program *p, const char *chain, size_t pos)
{
	struct weft_acl_chain *c = find_chain(p, chain);
	struct weft_acl_rule r = c->rules[c->n_rules - 1];

	memmove(&c->rules[pos + 1], &c->rules[pos], (c->n_rules - 1 - pos) * sizeof(r));
	c->rules[pos] = r;
}

static void del_rule(struct weft_acl_program *p, const char *chain, size_t pos)
{
	struct weft_acl_chain *c = find_chain(p, chain);
	struct weft_acl_rule *r = &c->rules[pos];

	for (size_t i = 0; i < r->n_addrs; i++)
		free(r->addrs[i].set);
	free(r->addrs);
	free(r->sports);
	free(r->not_sports);
	free(r->dports);
	free(r->not_dports);
	free(r->origin);
	free(r->log_prefix);
	memmove(r, r + 1, (c->n_rules - pos - 1) * sizeof(*r));
	c->n_rules--;
}

static void renumber(struct weft_acl_program *p, const char *chain)
{
	struct weft_acl_chain *c = find_chain(p, chain);

	for (size_t i = 0; i < c->n_rules; i++) {
		free(c->rules[i].origin);
		c->rules[i].origin = wasprintf("%s rule %zu", c->origin, i + 1);
	}
}

static struct weft_acl_rule *port_rule(struct weft_acl_program *p, const char *chain, enum weft_acl_action a,
				       int proto, const char *spec)
{
	struct weft_acl_rule *r = add_rule(p, chain, a);

	r->proto = proto;
	ports(&r->dports, &r->n_dports, spec);
	return r;
}

/* r unlike its neighbours (a source port range that is always true): it
 * shares no kernel rule with them. */
static struct weft_acl_rule *unlike(struct weft_acl_rule *r)
{
	ports(&r->sports, &r->n_sports, "1-65535");
	return r;
}

/* The rule-level diff: a rule inserted, deleted, changed or moved changes
 * that rule in the kernel only (nft: rules_added/rules_deleted), other
 * rules keep their place, and traffic follows. Neighbouring rules differ
 * in more than their ports and actions (tcp/udp, unlike()), so that none
 * are merged, except in the last parts, which check merged runs (of one
 * action, then of mixed actions). */
static void test_rule_diff(void)
{
	struct weft_acl_program *p = prog_new();
	struct weft_acl_stats st;
	bool nft = streq(backend_name, "nft");

	add_allow_all(p);
	add_chain(p, "wpi-d", WEFT_ACL_CHAIN_PROFILE, true);
	port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_TCP, "7301");
	port_rule(p, "wpi-d", WEFT_ACL_ALLOW, IPPROTO_UDP, "7302");
	port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_TCP, "7303");
	port_rule(p, "wpi-d", WEFT_ACL_ALLOW, IPPROTO_UDP, "7304");
	unlike(port_rule(p, "wpi-d", WEFT_ACL_ALLOW, IPPROTO_TCP, "7301-7310"));
	add_ep(p, &pod_a, "", "wpi-all", "", "wpo-all");
	add_ep(p, &pod_b, "", "wpi-d", "", "wpo-all");
	add_ep(p, &pod_c, "", "wpi-all", "", "wpo-all");
	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7301), "A->B tcp 7301 (rule 1 denies)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7305), "A->B tcp 7305 (rule 5 allows)");
	EXPECT(true, udp(&pod_a, &pod_b, false, 7302), "A->B udp 7302 (rule 2 allows)");

	/* Insert in the middle (the compiler renumbers the origins of the
	 * rules after it): deny udp 7304 before the allow of udp 7304. */
	unlike(port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_UDP, "7304"));
	move_last_to(p, "wpi-d", 3);
	renumber(p, "wpi-d");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("rule inserted in the middle", &st);
	CHECK(!st.full);
	CHECK_EQ_INT(st.chains_replaced, 1);
	CHECK_EQ_INT(st.chains_created + st.chains_deleted + st.endpoints_replaced, 0);
	if (nft) {
		CHECK_EQ_INT(st.rules_added, 1);
		CHECK_EQ_INT(st.rules_deleted, 0);
	}
	EXPECT(false, udp(&pod_a, &pod_b, false, 7304), "A->B udp 7304 (inserted rule denies)");
	EXPECT(true, udp(&pod_a, &pod_b, true, 7302), "A->B udp6 7302 (rule 2 allows)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7303), "A->B tcp 7303 (rule 3 denies)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7306), "A->B tcp 7306 (old rule 5, now 6)");

	/* Delete in the middle: that rule again. */
	del_rule(p, "wpi-d", 3);
	renumber(p, "wpi-d");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("rule deleted in the middle", &st);
	CHECK_EQ_INT(st.chains_replaced, 1);
	if (nft) {
		CHECK_EQ_INT(st.rules_added, 0);
		CHECK_EQ_INT(st.rules_deleted, 1);
	}
	EXPECT(true, udp(&pod_a, &pod_b, false, 7304), "A->B udp 7304 (its deny deleted)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7301), "A->B tcp 7301 (still denied)");

	/* Change one: deny tcp 7303 becomes deny tcp 7307. */
	find_chain(p, "wpi-d")->rules[2].dports[0] = (struct weft_acl_portrange){7307, 7307};
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("rule changed", &st);
	CHECK_EQ_INT(st.chains_replaced, 1);
	if (nft) {
		CHECK_EQ_INT(st.rules_added, 1);
		CHECK_EQ_INT(st.rules_deleted, 1);
	}
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7303), "A->B tcp 7303 (deny changed away)");
	EXPECT(false, tcp(&pod_a, &pod_b, true, 7307), "A->B tcp6 7307 (deny changed to it)");

	/* Reorder: the allow of 7301-7310 first, before every deny. */
	move_last_to(p, "wpi-d", 0);
	renumber(p, "wpi-d");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("rule moved to the front", &st);
	CHECK_EQ_INT(st.chains_replaced, 1);
	if (nft) {
		CHECK_EQ_INT(st.rules_added, 1);
		CHECK_EQ_INT(st.rules_deleted, 1);
	}
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7301), "A->B tcp 7301 (allow now first)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7307), "A->B tcp 7307 (allow now first)");
	EXPECT(true, udp(&pod_a, &pod_b, false, 7304), "A->B udp 7304");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7311), "A->B tcp 7311 (nothing allows)");

	/* Nothing changed: nothing done. */
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.chains_replaced + st.rules_added + st.rules_deleted, 0);

	/* A run of rules alike but for their ports (nft merges them into
	 * one kernel rule): a rule inserted into it, one deleted from it.
	 * The allow after it is unlike() them: not part of the run. */
	weft_acl_program_free(p);
	p = prog_new();
	add_allow_all(p);
	add_chain(p, "wpi-d", WEFT_ACL_CHAIN_PROFILE, true);
	port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_TCP, "7320");
	port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_TCP, "7321,7329");
	port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_TCP, "7322");
	unlike(port_rule(p, "wpi-d", WEFT_ACL_ALLOW, IPPROTO_TCP, "7320-7330"));
	add_ep(p, &pod_a, "", "wpi-all", "", "wpo-all");
	add_ep(p, &pod_b, "", "wpi-d", "", "wpo-all");
	add_ep(p, &pod_c, "", "wpi-all", "", "wpo-all");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("merged run", &st);
	if (nft)
		CHECK(psets() >= 1);
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7321), "A->B tcp 7321 (denied in the run)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7329), "A->B tcp 7329 (denied in the run)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7323), "A->B tcp 7323");
	port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_TCP, "7323");
	move_last_to(p, "wpi-d", 1);
	renumber(p, "wpi-d");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("rule inserted into the run", &st);
	if (nft) {
		/* The run keeps its kernel rule: in its port set the range
		 * 7320-7322 becomes 7320-7323. */
		CHECK_EQ_INT(st.chains_replaced, 0);
		CHECK_EQ_INT(st.rules_added + st.rules_deleted, 0);
		CHECK_EQ_INT(st.elems_added, 1);
		CHECK_EQ_INT(st.elems_removed, 1);
	} else {
		/* The same in its ipset (bitmap:port): port 7323 added. */
		CHECK_EQ_INT(st.chains_replaced, 0);
		CHECK_EQ_INT(st.elems_added, 1);
		CHECK_EQ_INT(st.elems_removed, 0);
	}
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7323), "A->B tcp 7323 (inserted into the run)");
	EXPECT(false, tcp(&pod_a, &pod_b, true, 7322), "A->B tcp6 7322 (still denied)");
	if (nft)
		CHECK_EQ_INT(psets_astray(), 0);
	del_rule(p, "wpi-d", 2); /* deny 7321,7329 */
	renumber(p, "wpi-d");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("rule deleted from the run", &st);
	if (nft) {
		CHECK_EQ_INT(st.rules_added + st.rules_deleted, 0);
		/* 7320-7323 and 7329 go, 7320 and 7322-7323 come. */
		CHECK_EQ_INT(st.elems_removed, 2);
		CHECK_EQ_INT(st.elems_added, 2);
		CHECK_EQ_INT(psets_astray(), 0);
	}
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7329), "A->B tcp 7329 (its deny deleted)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7321), "A->B tcp 7321 (its deny deleted)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7320), "A->B tcp 7320 (still denied)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7325), "A->B tcp 7325 (allowed)");
	/* The run shrinks to one rule (ports inline again), then the chain
	 * goes: no port set stays behind. */
	del_rule(p, "wpi-d", 1);
	del_rule(p, "wpi-d", 1);
	renumber(p, "wpi-d");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("run down to one rule", &st);
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7322), "A->B tcp 7322 (its deny deleted)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7320), "A->B tcp 7320 (still denied)");
	if (nft)
		CHECK_EQ_INT(psets(), 0);
	port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_TCP, "7321");
	port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_TCP, "7324");
	move_last_to(p, "wpi-d", 0);
	move_last_to(p, "wpi-d", 0);
	renumber(p, "wpi-d");
	CHECK_EQ_INT(apply(p, &st), 0);
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7324), "A->B tcp 7324 (a run again)");
	if (nft)
		CHECK(psets() >= 1 && psets_astray() == 0);
	weft_acl_program_free(p);
	p = prog_new();
	add_allow_all(p);
	add_ep(p, &pod_a, "", "wpi-all", "", "wpo-all");
	add_ep(p, &pod_b, "", "wpi-all", "", "wpo-all");
	add_ep(p, &pod_c, "", "wpi-all", "", "wpo-all");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("chain with a run deleted", &st);
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7324), "A->B tcp 7324 (its chain deleted)");
	if (nft)
		CHECK_EQ_INT(psets(), 0);

	/* A mixed run: rules alike but for their ports and actions (nft:
	 * one kernel rule per action, each looking up the ports its action
	 * decides, the first rule with a port deciding it). Rules join and
	 * leave it, shadowed ports come to light: set elements only. */
	weft_acl_program_free(p);
	p = prog_new();
	add_allow_all(p);
	add_chain(p, "wpi-d", WEFT_ACL_CHAIN_PROFILE, true);
	port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_TCP, "7340");
	port_rule(p, "wpi-d", WEFT_ACL_ALLOW, IPPROTO_TCP, "7341");
	port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_TCP, "7342-7345");
	port_rule(p, "wpi-d", WEFT_ACL_ALLOW, IPPROTO_TCP, "7340-7350");
	add_ep(p, &pod_a, "", "wpi-all", "", "wpo-all");
	add_ep(p, &pod_b, "", "wpi-d", "", "wpo-all");
	add_ep(p, &pod_c, "", "wpi-all", "", "wpo-all");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("mixed run", &st);
	if (nft) {
		CHECK_EQ_INT(st.rules_added, 2); /* allow 7341,7346-7350; deny 7340,7342-7345 */
		CHECK_EQ_INT(psets(), 2);
	}
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7340), "A->B tcp 7340 (denied before the allow)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7341), "A->B tcp 7341 (allowed)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7343), "A->B tcp 7343 (denied before the allow)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7346), "A->B tcp 7346 (allowed by the last rule)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7351), "A->B tcp 7351 (no rule)");
	port_rule(p, "wpi-d", WEFT_ACL_DENY, IPPROTO_TCP, "7346");
	move_last_to(p, "wpi-d", 1);
	renumber(p, "wpi-d");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("deny joins the mixed run", &st);
	if (nft) {
		CHECK_EQ_INT(st.rules_added + st.rules_deleted, 0);
		CHECK(st.elems_added > 0);
		CHECK_EQ_INT(psets_astray(), 0);
	}
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7346), "A->B tcp 7346 (denied now)");
	EXPECT(true, tcp(&pod_a, &pod_b, true, 7347), "A->B tcp6 7347 (still allowed)");
	port_rule(p, "wpi-d", WEFT_ACL_ALLOW, IPPROTO_TCP, "7343");
	move_last_to(p, "wpi-d", 0);
	renumber(p, "wpi-d");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("allow first in the mixed run", &st);
	if (nft)
		CHECK_EQ_INT(st.rules_added + st.rules_deleted, 0);
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7343), "A->B tcp 7343 (allowed first now)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7342), "A->B tcp 7342 (still denied)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7344), "A->B tcp 7344 (still denied)");
	del_rule(p, "wpi-d", 1); /* deny 7340 */
	renumber(p, "wpi-d");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("deny leaves the mixed run", &st);
	if (nft) {
		CHECK_EQ_INT(st.rules_added + st.rules_deleted, 0);
		CHECK_EQ_INT(psets_astray(), 0);
	}
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7340), "A->B tcp 7340 (its deny deleted)");
	EXPECT(false, tcp(&pod_a, &pod_b, true, 7345), "A->B tcp6 7345 (still denied)");
	/* Every rule but the last goes (the denies among them) and an allow
	 * comes: the run is of one action, its deny kernel rule goes, the
	 * allow one stays. */
	while (find_chain(p, "wpi-d")->n_rules > 1)
		del_rule(p, "wpi-d", 0);
	port_rule(p, "wpi-d", WEFT_ACL_ALLOW, IPPROTO_TCP, "7360");
	renumber(p, "wpi-d");
	CHECK_EQ_INT(apply(p, &st), 0);
	stats_print("mixed run down to one action", &st);
	if (nft) {
		CHECK_EQ_INT(st.rules_added, 0);
		CHECK_EQ_INT(st.rules_deleted, 1);
		CHECK_EQ_INT(psets(), 1);
		CHECK_EQ_INT(psets_astray(), 0);
	}
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7342), "A->B tcp 7342 (its deny deleted)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7360), "A->B tcp 7360 (allowed)");
	weft_acl_program_free(p);
}

/* A program the kernel cannot take leaves the kernel as it was, and the
 * next apply is a full one. */
/* weft_acl_update(): one change at a time through the update call, the
 * same change made to p by hand; traffic follows, and an apply of p
 * afterwards finds nothing to do (the backend's view is p). Bad changes
 * change nothing. */
static int update(const struct weft_acl_change *c, struct weft_acl_stats *st)
{
	struct weft_acl_stats local;
	char *err = NULL;
	int r = weft_acl_update(B, c, st ? st : &local, &err);

	if (r < 0)
		fprintf(stderr, "  update: %s (%d)\n", err ? err : "?", r);
	free(err);
	census_ok("update", r);
	return r;
}

/* Apply p and expect no change at all: the update left the backend where
 * an apply of p would have. */
static void expect_in_sync(struct weft_acl_program *p, const char *what)
{
	struct weft_acl_stats st;

	CHECK_EQ_INT(apply(p, &st), 0);
	if (st.full || st.elems_added || st.elems_removed || st.sets_created || st.sets_deleted || st.chains_created ||
	    st.chains_replaced || st.chains_deleted || st.endpoints_added || st.endpoints_removed ||
	    st.endpoints_replaced) {
		stats_print(what, &st);
		CHECK(!"an apply after the update changed something");
	}
}

static void test_update(void)
{
	bool nft = streq(backend_name, "nft");
	struct weft_acl_program *p = classic();
	struct weft_acl_backend *fresh = NULL;
	struct weft_acl_stats st;
	struct weft_cidr c_v4, c_v6, pfx, *many;
	struct weft_acl_set_change sc = {.set = "wt4-web"};
	struct weft_acl_change ch = {.sets = &sc, .n_sets = 1};
	char *gone[1];
	char *err = NULL;

	weft_cidr_parse_host(pod_c.v4, &c_v4);
	weft_cidr_parse_host(pod_c.v6, &c_v6);

	/* Nothing applied yet: not possible as a change. */
	CHECK_EQ_INT(streq(backend_name, "nft") ? weft_acl_nft_open(&fresh, NULL) : weft_acl_ipt_open(NULL, &fresh, NULL),
		     0);
	CHECK_EQ_INT(weft_acl_update(fresh, &ch, NULL, NULL), -EOPNOTSUPP);
	weft_acl_backend_free(fresh);

	CHECK_EQ_INT(apply(p, NULL), 0);
	EXPECT(false, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (C not WEB)");

	/* A member added, twice (the second time: no change). */
	sc.add = &c_v4;
	sc.n_add = 1;
	CHECK_EQ_INT(update(&ch, &st), 0);
	stats_print("update: member added", &st);
	CHECK_EQ_INT(st.elems_added, 1);
	CHECK(!st.full);
	CHECK_EQ_INT(st.chains_replaced + st.endpoints_added + st.endpoints_replaced, 0);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (C added to WEB by an update)");
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.elems_added, 0);
	set_add(find_set(p, "wt4-web"), pod_c.v4);
	expect_in_sync(p, "after member added");

	/* ... and removed. */
	sc.add = NULL;
	sc.n_add = 0;
	sc.del = &c_v4;
	sc.n_del = 1;
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.elems_removed, 1);
	EXPECT(false, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (C removed from WEB by an update)");
	set_del(find_set(p, "wt4-web"), pod_c.v4);
	expect_in_sync(p, "after member removed");

	/* In and out again between two applies: the backend's pending
	 * changes empty out (and must not leak when merged). */
	sc.del = NULL;
	sc.n_del = 0;
	sc.add = &c_v4;
	sc.n_add = 1;
	CHECK_EQ_INT(update(&ch, &st), 0);
	sc.add = NULL;
	sc.n_add = 0;
	sc.del = &c_v4;
	sc.n_del = 1;
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.elems_removed, 1);
	expect_in_sync(p, "after a member came and went");

	/* Many members come and go (past the backend's pending-change
	 * bound), then an apply that differs in one member only. */
	many = wcalloc(3000, sizeof(*many));
	for (int i = 0; i < 3000; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.99.%d.%d", i / 250, i % 250 + 1);
		weft_cidr_parse_host(a, &many[i]);
	}
	sc.del = NULL;
	sc.n_del = 0;
	sc.add = many;
	sc.n_add = 3000;
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.elems_added, 3000);
	sc.add = NULL;
	sc.n_add = 0;
	sc.del = many + 1000;
	sc.n_del = 2000;
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.elems_removed, 2000);
	for (int i = 0; i < 1000; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.99.%d.%d", i / 250, i % 250 + 1);
		set_add(find_set(p, "wt4-web"), a);
	}
	expect_in_sync(p, "after 3000 members added and 2000 removed");
	set_add(find_set(p, "wt4-web"), pod_c.v4);
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK_EQ_INT(st.elems_added, 1);
	CHECK_EQ_INT(st.elems_removed, 0);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (C added by an apply after updates)");
	set_del(find_set(p, "wt4-web"), pod_c.v4);
	CHECK_EQ_INT(apply(p, NULL), 0);
	free(many);

	/* A rule added to one chain. */
	port_rule(p, "wpi-web", WEFT_ACL_ALLOW, IPPROTO_TCP, "7300");
	ch = (struct weft_acl_change){.chains = find_chain(p, "wpi-web"), .n_chains = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	stats_print("update: rule added", &st);
	CHECK_EQ_INT(st.chains_replaced, 1);
	CHECK_EQ_INT(st.elems_added + st.elems_removed + st.endpoints_added + st.endpoints_replaced, 0);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 7300), "C->B tcp 7300 (rule added by an update)");
	expect_in_sync(p, "after rule added");

	/* Rules alike but for their ports: nft runs them as one kernel rule
	 * with its ports in a set, so a rule joining or leaving the run is a
	 * set element, no kernel rule. */
	port_rule(p, "wpi-web", WEFT_ACL_ALLOW, IPPROTO_TCP, "7302");
	CHECK_EQ_INT(update(&ch, &st), 0);
	stats_print("update: rule added next to one alike", &st);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 7302), "C->B tcp 7302 (rule added by an update)");
	expect_in_sync(p, "after a second rule alike added");
	port_rule(p, "wpi-web", WEFT_ACL_ALLOW, IPPROTO_TCP, "7304-7305");
	CHECK_EQ_INT(update(&ch, &st), 0);
	stats_print("update: rule joins a run", &st);
	if (nft) {
		CHECK_EQ_INT(st.rules_added + st.rules_deleted + st.chains_replaced, 0);
		CHECK_EQ_INT(st.elems_added, 1);
		CHECK_EQ_INT(psets_astray(), 0);
	}
	EXPECT(true, tcp(&pod_c, &pod_b, false, 7305), "C->B tcp 7305 (rule joined the run)");
	EXPECT(false, tcp(&pod_c, &pod_b, false, 7303), "C->B tcp 7303 (between the run's ports)");
	expect_in_sync(p, "after a rule joined a run");
	del_rule(p, "wpi-web", find_chain(p, "wpi-web")->n_rules - 2); /* 7302 */
	renumber(p, "wpi-web");
	CHECK_EQ_INT(update(&ch, &st), 0);
	stats_print("update: rule leaves a run", &st);
	if (nft) {
		CHECK_EQ_INT(st.rules_added + st.rules_deleted + st.chains_replaced, 0);
		CHECK_EQ_INT(st.elems_removed, 1);
		CHECK_EQ_INT(psets_astray(), 0);
	}
	EXPECT(false, tcp(&pod_c, &pod_b, false, 7302), "C->B tcp 7302 (its rule left the run)");
	EXPECT(true, tcp(&pod_c, &pod_b, false, 7300), "C->B tcp 7300 (still in the run)");
	expect_in_sync(p, "after a rule left a run");
	/* Ports up to 65535 (an interval without an end element). */
	port_rule(p, "wpi-web", WEFT_ACL_ALLOW, IPPROTO_TCP, "65530-65535");
	CHECK_EQ_INT(update(&ch, &st), 0);
	if (nft)
		CHECK_EQ_INT(st.elems_added, 1); /* it joins the run */
	EXPECT(true, tcp(&pod_c, &pod_b, false, 65535), "C->B tcp 65535 (joined the run)");
	expect_in_sync(p, "after ports up to 65535 joined a run");
	del_rule(p, "wpi-web", find_chain(p, "wpi-web")->n_rules - 1);
	renumber(p, "wpi-web");
	CHECK_EQ_INT(update(&ch, &st), 0);
	stats_print("update: ports up to 65535 leave a run", &st);
	if (nft) {
		CHECK_EQ_INT(st.elems_removed, 1);
		CHECK_EQ_INT(psets_astray(), 0);
	}
	EXPECT(false, tcp(&pod_c, &pod_b, false, 65535), "C->B tcp 65535 (left the run)");
	EXPECT(true, tcp(&pod_c, &pod_b, false, 7305), "C->B tcp 7305 (still in the run)");
	expect_in_sync(p, "after ports up to 65535 left a run");

	/* An endpoint comes (D had none: fail closed), changes, goes. */
	EXPECT(false, tcp(&pod_a, &pod_d, false, 5432), "A->D tcp 5432 (D has no endpoint)");
	add_ep(p, &pod_d, "", "wpi-db", "", "wpo-db");
	ch = (struct weft_acl_change){.endpoints = find_ep(p, &pod_d), .n_endpoints = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.endpoints_added, 1);
	EXPECT(true, tcp(&pod_a, &pod_d, false, 5432), "A->D tcp 5432 (D's endpoint added by an update)");
	EXPECT(false, tcp(&pod_a, &pod_d, false, 80), "A->D tcp 80 (D is DB)");
	expect_in_sync(p, "after endpoint added");
	add_ep(p, &pod_d, "", "wpi-web", "", "wpo-web");
	ch = (struct weft_acl_change){.endpoints = find_ep(p, &pod_d), .n_endpoints = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.endpoints_replaced, 1);
	EXPECT(true, tcp(&pod_c, &pod_d, false, 80), "C->D tcp 80 (D now WEB)");
	expect_in_sync(p, "after endpoint replaced");
	gone[0] = pod_d.host_if;
	ch = (struct weft_acl_change){.endpoints_removed = gone, .n_endpoints_removed = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	CHECK_EQ_INT(st.endpoints_removed, 1);
	EXPECT(false, tcp(&pod_c, &pod_d, false, 80), "C->D tcp 80 (D's endpoint removed: fail closed)");
	del_ep(p, &pod_d);
	expect_in_sync(p, "after endpoint removed");

	/* Bad changes: refused with the name, nothing changed. */
	sc = (struct weft_acl_set_change){.set = "wt4-nope", .add = &c_v4, .n_add = 1};
	ch = (struct weft_acl_change){.sets = &sc, .n_sets = 1};
	CHECK_EQ_INT(weft_acl_update(B, &ch, NULL, &err), -EINVAL);
	CHECK(err && strstr(err, "wt4-nope"));
	free(err);
	err = NULL;
	sc = (struct weft_acl_set_change){.set = "wt4-web", .add = &c_v6, .n_add = 1};
	CHECK_EQ_INT(weft_acl_update(B, &ch, NULL, NULL), -EINVAL);
	weft_cidr_parse("10.65.0.0/30", true, &pfx);
	sc = (struct weft_acl_set_change){.set = "wt4-web", .add = &pfx, .n_add = 1};
	CHECK_EQ_INT(weft_acl_update(B, &ch, NULL, NULL), -EOPNOTSUPP);
	/* A good set change with a bad endpoint: neither. */
	sc = (struct weft_acl_set_change){.set = "wt4-web", .add = &c_v4, .n_add = 1};
	add_ep(p, &pod_d, "", "wpi-nope", "", "wpo-db");
	ch = (struct weft_acl_change){.sets = &sc, .n_sets = 1, .endpoints = find_ep(p, &pod_d), .n_endpoints = 1};
	CHECK_EQ_INT(weft_acl_update(B, &ch, NULL, &err), -EINVAL);
	CHECK(err && strstr(err, "wpi-nope"));
	free(err);
	err = NULL;
	del_ep(p, &pod_d);
	gone[0] = (char *)"wftnope";
	ch = (struct weft_acl_change){.endpoints_removed = gone, .n_endpoints_removed = 1};
	CHECK_EQ_INT(weft_acl_update(B, &ch, NULL, NULL), -EINVAL);
	EXPECT(false, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (the refused changes changed nothing)");
	expect_in_sync(p, "after refused changes");

	/* All kinds in one change. */
	sc = (struct weft_acl_set_change){.set = "wt4-web", .add = &c_v4, .n_add = 1};
	set_add(find_set(p, "wt4-web"), pod_c.v4);
	port_rule(p, "wpi-db", WEFT_ACL_ALLOW, IPPROTO_TCP, "7301");
	add_ep(p, &pod_d, "", "wpi-db", "", "wpo-db");
	ch = (struct weft_acl_change){.sets = &sc,
				      .n_sets = 1,
				      .chains = find_chain(p, "wpi-db"),
				      .n_chains = 1,
				      .endpoints = find_ep(p, &pod_d),
				      .n_endpoints = 1};
	CHECK_EQ_INT(update(&ch, &st), 0);
	stats_print("update: member, rule, endpoint", &st);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (C in WEB)");
	EXPECT(true, tcp(&pod_b, &pod_d, false, 7301), "B->D tcp 7301 (rule and endpoint in one update)");
	expect_in_sync(p, "after a change of every kind");
	weft_acl_program_free(p);
}

/* A mixed run in an egress policy chain (allow and pass: mark + return,
 * deny: drop), changed through weft_acl_update(): an action new to the
 * run is one kernel rule more, a rule joining the run set elements, the
 * last rule of an action gone its kernel rule gone; traffic follows and
 * an apply afterwards finds nothing to do. */
static void test_mixed_egress(void)
{
	bool nft = streq(backend_name, "nft");
	struct weft_acl_program *p = prog_new();
	struct weft_acl_change ch;
	struct weft_acl_stats st;

	add_allow_all(p);
	add_chain(p, "wge-m", WEFT_ACL_CHAIN_POLICY, false);
	port_rule(p, "wge-m", WEFT_ACL_DENY, IPPROTO_TCP, "7380");
	port_rule(p, "wge-m", WEFT_ACL_ALLOW, IPPROTO_TCP, "7380-7384");
	add_chain(p, "wpo-m", WEFT_ACL_CHAIN_PROFILE, false);
	port_rule(p, "wpo-m", WEFT_ACL_ALLOW, IPPROTO_TCP, "7385");
	add_ep(p, &pod_a, "", "wpi-all", "wge-m", "wpo-m");
	add_ep(p, &pod_b, "", "wpi-all", "", "wpo-all");
	add_ep(p, &pod_c, "", "wpi-all", "", "wpo-all");
	CHECK_EQ_INT(apply(p, &st), 0);
	if (nft)
		CHECK_EQ_INT(psets(), 2); /* deny 7380; allow 7381-7384 */
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7380), "A->B tcp 7380 (egress deny before the allow)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7382), "A->B tcp 7382 (egress policy allows)");
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7385), "A->B tcp 7385 (end of policies: the profile not reached)");

	ch = (struct weft_acl_change){.chains = find_chain(p, "wge-m"), .n_chains = 1};
	port_rule(p, "wge-m", WEFT_ACL_PASS, IPPROTO_TCP, "7385");
	move_last_to(p, "wge-m", 0);
	renumber(p, "wge-m");
	CHECK_EQ_INT(update(&ch, &st), 0);
	stats_print("update: pass joins a mixed egress run", &st);
	if (nft) {
		CHECK_EQ_INT(st.rules_added, 1); /* a kernel rule for pass, with a port set */
		CHECK_EQ_INT(st.rules_deleted, 0);
		CHECK_EQ_INT(psets(), 3);
		CHECK_EQ_INT(psets_astray(), 0);
	}
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7385), "A->B tcp 7385 (passed to the profile, which allows)");
	EXPECT(false, tcp(&pod_a, &pod_b, true, 7380), "A->B tcp6 7380 (still denied)");
	expect_in_sync(p, "after pass joined a mixed run");

	port_rule(p, "wge-m", WEFT_ACL_PASS, IPPROTO_TCP, "7381");
	move_last_to(p, "wge-m", 0);
	renumber(p, "wge-m");
	CHECK_EQ_INT(update(&ch, &st), 0);
	stats_print("update: a second pass joins", &st);
	if (nft)
		CHECK_EQ_INT(st.rules_added + st.rules_deleted, 0);
	EXPECT(false, tcp(&pod_a, &pod_b, false, 7381), "A->B tcp 7381 (passed to the profile, which does not allow)");
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7383), "A->B tcp 7383 (still allowed)");
	expect_in_sync(p, "after a second pass joined");

	del_rule(p, "wge-m", 2); /* deny 7380 */
	renumber(p, "wge-m");
	CHECK_EQ_INT(update(&ch, &st), 0);
	stats_print("update: the deny leaves", &st);
	if (nft) {
		CHECK_EQ_INT(st.rules_added, 0);
		CHECK_EQ_INT(st.rules_deleted, 1);
		CHECK_EQ_INT(psets(), 2);
		CHECK_EQ_INT(psets_astray(), 0);
	}
	EXPECT(true, tcp(&pod_a, &pod_b, false, 7380), "A->B tcp 7380 (its deny gone: allowed)");
	expect_in_sync(p, "after the deny left");
	weft_acl_program_free(p);
}

static void test_failure(void)
{
	struct weft_acl_program *p = classic();
	struct weft_acl_stats st;
	struct weft_acl_rule *r;
	char *err = NULL;

	CHECK_EQ_INT(apply(p, NULL), 0);
	r = add_rule(p, "wpi-web", WEFT_ACL_ALLOW);
	r->family = AF_INET;
	r->addrs = wcalloc(1, sizeof(*r->addrs));
	r->addrs[0].set = wstrdup("wt4-missing");
	r->addrs[0].src = true;
	r->n_addrs = 1;
	CHECK(weft_acl_apply(B, p, &st, &err) < 0);
	CHECK(err != NULL);
	fprintf(stderr, "  (expected) %s\n", err ? err : "");
	free(err);
	err = NULL;
	EXPECT(true, tcp(&pod_a, &pod_b, false, 22), "A->B tcp 22 (old program still there)");
	EXPECT(false, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (old program still there)");
	weft_acl_program_free(p);
	/* A port range upside down, between rules alike but for their ports
	 * (which both backends run as one kernel rule): refused, named. */
	p = classic();
	port_rule(p, "wpi-web", WEFT_ACL_ALLOW, IPPROTO_TCP, "7401");
	port_rule(p, "wpi-web", WEFT_ACL_ALLOW, IPPROTO_TCP, "7410-7402");
	port_rule(p, "wpi-web", WEFT_ACL_ALLOW, IPPROTO_TCP, "7403");
	CHECK(weft_acl_apply(B, p, &st, &err) < 0);
	CHECK(err && strstr(err, "rule") && strstr(err, "port"));
	fprintf(stderr, "  (expected) %s\n", err ? err : "");
	free(err);
	err = NULL;
	EXPECT(false, tcp(&pod_c, &pod_b, false, 7401), "C->B tcp 7401 (the bad program not applied)");
	weft_acl_program_free(p);
	p = classic();
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(st.full);
	weft_acl_program_free(p);
}

/* Drift: the ruleset deleted behind the backend's back. nft notices it
 * (weft_acl_check) and reloads everything on the next apply; a backend
 * without a check answers 0. */
static void test_drift(void)
{
	struct weft_acl_program *p = classic();
	struct weft_acl_stats st;

	CHECK_EQ_INT(apply(p, NULL), 0);
	CHECK_EQ_INT(weft_acl_check(B), 0);
	/* nft: the table gone; ipt: a firewall reload that drops the hook
	 * into weft's chains. */
	if (streq(backend_name, "nft"))
		CHECK(sh("nft delete table inet weft") == 0);
	else
		CHECK(sh("iptables -D FORWARD -j weft-forward") == 0);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 with weft's table or hook gone (no filtering)");
	CHECK_EQ_INT(weft_acl_check(B), -ENOENT);
	CHECK_EQ_INT(apply(p, &st), 0);
	CHECK(st.full);
	EXPECT(false, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 denied again after the reload");
	CHECK_EQ_INT(weft_acl_check(B), 0);

	/* Rules changed inside weft's ruleset by hand: one added that lets
	 * everything through, one deleted, and (nft) one replaced. Each is
	 * found and undone by the reload (nft: one transaction, the table is
	 * never missing; ipt: found by the chains' rule counts). */
	{
		static const char *const ipt_edits[] = {
			"iptables -I weft-forward -j ACCEPT",
			"iptables -D weft-forward 1",
			"iptables -R weft-forward 1 -j ACCEPT",
		};
		static const char *const nft_edits[] = {
			"nft insert rule inet weft forward accept",
			"nft delete rule inet weft forward handle $(nft -a list chain inet weft forward | "
			"grep -m1 'ct state invalid' | sed 's/.*# handle //')",
			"nft replace rule inet weft forward handle $(nft -a list chain inet weft forward | "
			"grep -m1 'ct state invalid' | sed 's/.*# handle //') ct state invalid accept",
		};
		bool nft = streq(backend_name, "nft");
		const char *const *edits = nft ? nft_edits : ipt_edits;
		size_t n = nft ? ARRAY_SIZE(nft_edits) : ARRAY_SIZE(ipt_edits);

		for (size_t i = 0; i < n; i++) {
			CHECK(sh("%s", edits[i]) == 0);
			if (i == 0 || (!nft && i == 2))
				EXPECT(true, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 through a rule added by hand");
			CHECK_EQ_INT(weft_acl_check(B), -ENOENT);
			CHECK_EQ_INT(apply(p, &st), 0);
			CHECK(st.full);
			EXPECT(false, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 denied again after the reload");
			if (nft)
				CHECK(!fails("nft list chain inet weft forward | grep -q 'ct state invalid drop'"));
		}
	}
	if (streq(backend_name, "nft")) {
		/* Two rules by hand, one in a chain weft then deletes: its
		 * deletion comes back among weft's own (a rule weft never
		 * counted, gone now); the other one is still found. */
		{
			struct weft_acl_program *q = classic();
			char *err = NULL;

			add_chain(q, "wpi-extra", WEFT_ACL_CHAIN_PROFILE, true);
			add_rule(q, "wpi-extra", WEFT_ACL_DENY);
			CHECK_EQ_INT(apply(q, &st), 0);
			CHECK(sh("nft add rule inet weft wpi-extra accept && nft add rule inet weft output accept") == 0);
			CHECK_EQ_INT(weft_acl_apply(B, p, &st, &err), 0); /* wpi-extra goes, with both its rules */
			free(err);
			CHECK(!st.full);
			CHECK(fails("nft list chain inet weft wpi-extra"));
			CHECK_EQ_INT(weft_acl_check(B), -ENOENT);
			CHECK_EQ_INT(apply(p, &st), 0);
			CHECK(st.full);
			CHECK(fails("nft list chain inet weft output | grep -q '^[[:space:]]*accept$'"));
			weft_acl_program_free(q);
		}
		/* A tag's member deleted by hand (B no longer WEB: denied),
		 * one added (C made WEB: allowed): both found. */
		{
			static const char *const set_edits[] = {
				"nft delete element inet weft wt4-web { 10.65.0.2 }",
				"nft add element inet weft wt4-web { 10.65.0.3 }",
			};

			for (size_t i = 0; i < ARRAY_SIZE(set_edits); i++) {
				CHECK(sh("%s", set_edits[i]) == 0);
				CHECK_EQ_INT(weft_acl_check(B), -ENOENT);
				CHECK_EQ_INT(apply(p, &st), 0);
				CHECK(st.full);
				CHECK(fails("nft list set inet weft wt4-web | grep -q 10.65.0.3"));
				CHECK(!fails("nft list set inet weft wt4-web | grep -q 10.65.0.2"));
			}
		}
		/* Every other set and map of weft's: a prefix set's interval
		 * added, a port added to a merged run's port set and to the
		 * failsafe ports, an endpoint's dispatch entry deleted and one
		 * pointed at another endpoint's chain. Each is found, and the
		 * reload puts back what weft had. */
		{
			struct weft_acl_program *q = classic();
			struct weft_acl_rule *r;
			char cmd[512];

			add_set(q, "wt4-net", AF_INET, "10.99.0.0/16");
			r = add_rule(q, "wpi-db", WEFT_ACL_ALLOW);
			r->proto = IPPROTO_TCP;
			ports(&r->dports, &r->n_dports, "6000");
			rule_addr(q, r, true, false, "wt4-net");
			for (int k = 0; k < 3; k++) { /* alike but for their ports: one kernel rule, a port set */
				r = add_rule(q, "wpi-db", WEFT_ACL_ALLOW);
				r->proto = IPPROTO_UDP;
				ports(&r->dports, &r->n_dports, k == 0 ? "7000" : k == 1 ? "7002" : "7004-7005");
			}
			CHECK_EQ_INT(apply(q, &st), 0);
			CHECK(!fails("nft list table inet weft | grep -q 'weft-p\\.'"));
			for (int k = 0; k < 6; k++) {
				switch (k) {
				case 0:
					snprintf(cmd, sizeof(cmd), "nft add element inet weft wt4-net { 10.98.0.0/16 }");
					break;
				case 1:
					snprintf(cmd, sizeof(cmd),
						 "nft add element inet weft $(for s in $(nft list table inet weft | "
						 "grep -o 'weft-p\\.[0-9a-f]*' | sort -u); do nft list set inet weft $s | "
						 "grep -q 7000 && echo $s; done | head -1) { 7001 }");
					break;
				case 2:
					snprintf(cmd, sizeof(cmd), "nft add element inet weft failsafe-tcp { 8022 }");
					break;
				case 3:
					snprintf(cmd, sizeof(cmd), "nft delete element inet weft failsafe-udp { 68 }");
					break;
				case 4:
					snprintf(cmd, sizeof(cmd), "nft delete element inet weft from-endpoint-map { \"%s\" }",
						 pod_a.host_if);
					break;
				default:
					snprintf(cmd, sizeof(cmd),
						 "nft 'delete element inet weft to-endpoint-map { \"%s\" }; "
						 "add element inet weft to-endpoint-map { \"%s\" : jump to-%s }'",
						 pod_c.host_if, pod_c.host_if, pod_b.host_if);
					break;
				}
				CHECK(sh("%s", cmd) == 0);
				CHECK_EQ_INT(weft_acl_check(B), -ENOENT);
				CHECK_EQ_INT(apply(q, &st), 0);
				CHECK(st.full);
			}
			CHECK(fails("nft list set inet weft wt4-net | grep -q 10.98.0.0"));
			CHECK(fails("nft list ruleset | grep -q 8022"));
			CHECK(!fails("nft list set inet weft failsafe-udp | grep -q 68"));
			CHECK(fails("nft list table inet weft | grep -q 7001"));
			CHECK(!fails("nft list map inet weft from-endpoint-map | grep -q '\"%s\" : jump from-%s'", pod_a.host_if,
				     pod_a.host_if));
			CHECK(!fails("nft list map inet weft to-endpoint-map | grep -q '\"%s\" : jump to-%s'", pod_c.host_if,
				     pod_c.host_if));
			EXPECT(false, tcp(&pod_a, &pod_c, false, 5433), "A->C tcp 5433 after the reloads");
			EXPECT(true, tcp(&pod_a, &pod_c, false, 5432), "A->C tcp 5432 after the reloads");
			CHECK_EQ_INT(weft_acl_check(B), 0);
			CHECK_EQ_INT(apply(p, &st), 0);
			weft_acl_program_free(q);
		}
		/* Another table's rules are not ours to watch. */
		sh("nft add table inet weft-test-other && nft add chain inet weft-test-other c && "
		   "nft add rule inet weft-test-other c accept");
		CHECK_EQ_INT(weft_acl_check(B), 0);
		sh("nft delete table inet weft-test-other");
	} else {
		/* ipsets changed by hand: the tag's (found by a member it
		 * holds) gets a member, loses one, gets a nomatch entry; a
		 * merged run's port set (bitmap:port) gets a port. Each is
		 * found, and the reload puts back what weft had. */
		struct weft_acl_program *q = classic();
		struct weft_acl_rule *r;
		static const char *const tag = "$(for s in $(ipset list -n | grep ^weft); do ipset test $s 10.65.0.2 "
					       ">/dev/null 2>&1 && echo $s; done | head -1)";
		static const char *const pset = "$(for s in $(ipset list -n | grep ^weft); do ipset list -t $s | "
						"grep -q bitmap:port && echo $s; done | head -1)";

		for (int k = 0; k < 3; k++) {
			r = add_rule(q, "wpi-db", WEFT_ACL_ALLOW);
			r->proto = IPPROTO_UDP;
			ports(&r->dports, &r->n_dports, k == 0 ? "7000" : k == 1 ? "7002" : "7004-7005");
		}
		CHECK_EQ_INT(apply(q, &st), 0);
		for (int k = 0; k < 4; k++) {
			switch (k) {
			case 0:
				CHECK(sh("ipset add %s 10.65.0.3", tag) == 0);
				break;
			case 1:
				CHECK(sh("ipset del %s 10.65.0.2", tag) == 0);
				break;
			case 2:
				CHECK(sh("ipset add %s 10.65.0.0/24 nomatch", tag) == 0);
				break;
			default:
				CHECK(sh("ipset add %s 7001", pset) == 0);
				break;
			}
			if (k == 1)
				EXPECT(false, tcp(&pod_b, &pod_a, false, 22), "B->A tcp 22 with B taken out of WEB by hand");
			CHECK_EQ_INT(weft_acl_check(B), -ENOENT);
			CHECK_EQ_INT(apply(q, &st), 0);
			CHECK(st.full);
		}
		EXPECT(true, tcp(&pod_b, &pod_a, false, 22), "B->A tcp 22 after the reloads");
		EXPECT(false, tcp(&pod_c, &pod_a, false, 22), "C->A tcp 22 after the reloads");
		CHECK(fails("ipset list %s | grep -q 7001", pset));
		CHECK(fails("ipset list %s | grep -q nomatch", tag));
		CHECK_EQ_INT(weft_acl_check(B), 0);
		CHECK_EQ_INT(apply(p, &st), 0);
		weft_acl_program_free(q);

		/* A chain whose text differs again at the first check after
		 * the reload its text caused (as when these tools print one of
		 * its rules otherwise than weft writes it: no reload every
		 * minute) has its text compare turned off, its rule count
		 * still compared; other chains' texts still are. */
		{
			char *err = NULL;

			CHECK(sh("iptables -R weft-forward 1 -j ACCEPT") == 0);
			CHECK_EQ_INT(weft_acl_check(B), -ENOENT);
			CHECK_EQ_INT(weft_acl_apply(B, p, &st, &err), 0);
			CHECK(st.full);
			CHECK(sh("iptables -R weft-forward 1 -j ACCEPT") == 0);
			CHECK_EQ_INT(weft_acl_check(B), 0);
			CHECK(sh("iptables -I weft-forward -j ACCEPT") == 0);
			CHECK_EQ_INT(weft_acl_check(B), -ENOENT);
			CHECK_EQ_INT(apply(p, &st), 0);
			CHECK(sh("iptables -R weft-fwd-wl 1 -j ACCEPT") == 0);
			CHECK_EQ_INT(weft_acl_check(B), -ENOENT);
			CHECK_EQ_INT(apply(p, &st), 0);
			CHECK(st.full);
			CHECK(fails("iptables -S weft-forward | grep -qx -- '-A weft-forward -j ACCEPT'"));
			EXPECT(false, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 denied after the reloads");
			free(err);
		}
	}
	weft_acl_program_free(p);
}

/* 100,000 set members and 10,000 rules: the full load, one member more,
 * one rule more. Durations are printed, not asserted. */
static void test_scale(void)
{
	struct weft_acl_program *p = prog_new();
	struct weft_acl_backend *fresh = NULL;
	struct weft_acl_stats st;
	struct weft_acl_set *big;
	struct weft_acl_rule *r;
	char *err = NULL;
	int64_t t0;
	char name[32];

	add_allow_all(p);
	big = add_set(p, "wt4-big", AF_INET, "");
	big->elems = wcalloc(100000, sizeof(*big->elems));
	/* 10.128.0.0 upwards, consecutive /32s (adjacent intervals), with
	 * pod A's address in the middle of them. */
	for (uint32_t i = 0; i < 99999; i++) {
		struct weft_cidr *c = &big->elems[big->n_elems++];

		c->ip.family = AF_INET;
		c->ip.v4.s_addr = htonl(0x0a800000u + i);
		c->prefixlen = 32;
	}
	set_add(big, pod_a.v4);
	add_set(p, "wt6-big", AF_INET6, "fd00:65::1,fd00:66::/64");
	for (int k = 0; k < 10; k++) {
		snprintf(name, sizeof(name), "wpi-big%d", k);
		add_chain(p, name, WEFT_ACL_CHAIN_PROFILE, true);
		for (int i = 0; i < 1000; i++) {
			r = add_rule(p, name, WEFT_ACL_ALLOW);
			r->proto = IPPROTO_TCP;
			ports(&r->dports, &r->n_dports, "1");
			r->dports[0].lo = r->dports[0].hi = (uint16_t)(20000 + k * 1000 + i);
			rule_addr(p, r, true, false, i % 2 ? "wt6-big" : "wt4-big");
		}
	}
	add_ep(p, &pod_a, "", "wpi-all", "", "wpo-all");
	add_ep(p, &pod_b, "",
	       "wpi-big0,wpi-big1,wpi-big2,wpi-big3,wpi-big4,wpi-big5,wpi-big6,wpi-big7,wpi-big8,wpi-big9", "",
	       "wpo-all");
	add_ep(p, &pod_c, "", "wpi-all", "", "wpo-all");

	/* A new handle: its first apply replaces everything. */
	if (streq(backend_name, "nft"))
		CHECK_EQ_INT(weft_acl_nft_open(&fresh, &err), 0);
#ifdef WEFT_ACL_HAVE_IPT
	else
		CHECK_EQ_INT(weft_acl_ipt_open(NULL, &fresh, &err), 0);
#endif
	if (!fresh) {
		fprintf(stderr, "  open: %s\n", err ? err : "?");
		free(err);
		weft_acl_program_free(p);
		return;
	}
	weft_acl_backend_free(B);
	B = fresh;
	t0 = weft_now_ns();
	CHECK_EQ_INT(apply(p, &st), 0);
	fprintf(stderr, "  full load, 100,000 members + 10,000 rules: %.1f ms (kernel batch %.1f ms)\n",
		(weft_now_ns() - t0) / 1e6, st.apply_ns / 1e6);
	stats_print("full load", &st);
	CHECK(st.full);
	EXPECT(true, tcp(&pod_a, &pod_b, false, 20004), "A->B tcp 20004 (A among 100,000 members)");
	EXPECT(true, tcp(&pod_a, &pod_b, true, 29001), "A->B tcp6 29001 (v6 rule)");
	EXPECT(false, tcp(&pod_c, &pod_b, false, 20004), "C->B tcp 20004 (C not a member)");

	set_add(find_set(p, "wt4-big"), pod_c.v4); /* add_set and apply() moved the sets */
	t0 = weft_now_ns();
	CHECK_EQ_INT(apply(p, &st), 0);
	fprintf(stderr, "  add one member to 100,000: %.2f ms (kernel batch %.2f ms)\n", (weft_now_ns() - t0) / 1e6,
		st.apply_ns / 1e6);
	CHECK_EQ_INT(st.elems_added, 1);
	CHECK_EQ_INT(st.chains_replaced, 0);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 20004), "C->B tcp 20004 (C a member now)");

	r = add_rule(p, "wpi-big9", WEFT_ACL_ALLOW);
	r->proto = IPPROTO_TCP;
	ports(&r->dports, &r->n_dports, "31000");
	t0 = weft_now_ns();
	CHECK_EQ_INT(apply(p, &st), 0);
	fprintf(stderr, "  add one rule to a chain of 1,000 (10,000 present): %.2f ms (kernel batch %.2f ms)\n",
		(weft_now_ns() - t0) / 1e6, st.apply_ns / 1e6);
	CHECK_EQ_INT(st.chains_replaced, 1);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 31000), "C->B tcp 31000 (rule added)");
	weft_acl_program_free(p);
}

/* remove takes everything away (and traffic is then unfiltered). */
static void test_remove(void)
{
	char *err = NULL;

	CHECK(leftovers() > 0);
	CHECK_EQ_INT(weft_acl_remove(B, &err), 0);
	free(err);
	CHECK_EQ_INT(leftovers(), 0);
	EXPECT(true, tcp(&pod_c, &pod_b, false, 22), "C->B tcp 22 (no ACLs any more)");
	/* Idempotent. */
	CHECK_EQ_INT(weft_acl_remove(B, NULL), 0);
	CHECK_EQ_INT(leftovers(), 0);
}

static const struct test_case cases[] = {
	TEST(test_classic),	TEST(test_matches),	TEST(test_proto_zero),	TEST(test_port_edges),	TEST(test_policies), TEST(test_mixed_egress), TEST(test_both_ways),
	TEST(test_fail_closed), TEST(test_antispoof),	TEST(test_host),     TEST(test_incremental),
	TEST(test_rule_diff),	TEST(test_update),	TEST(test_failure),	TEST(test_drift),	TEST(test_scale),	TEST(test_remove),
};

static int pod_up(struct pod *pod)
{
	struct weft_dp_routed ep = {.container_id = pod->id, .ifname = "eth0", .naddrs = 2};
	struct weft_dp_result res;
	char *err = NULL;
	int r;

	r = ns_new(&pod->ns);
	if (r < 0)
		return r;
	ep.netns_path = pod->ns.path;
	ep.addrs[0] = ip(pod->v4);
	ep.addrs[1] = ip(pod->v6);
	r = weft_dp_routed_add(&ep, &res, &err);
	if (r < 0) {
		fprintf(stderr, "pod %s: %s\n", pod->id, err ? err : "?");
		free(err);
		return r;
	}
	weft_strlcpy(pod->host_if, res.host_ifname, sizeof(pod->host_if));
	memcpy(pod->mac, res.pod_mac, 6);
	sh("nsenter --net=%s ip link set lo up", pod->ns.path);
	return 0;
}

int main(int argc, char **argv)
{
	struct ns_guard guard;
	char *err = NULL;
	int rc;

	if (argc != 2 || (!streq(argv[1], "nft") && !streq(argv[1], "ipt"))) {
		fprintf(stderr, "usage: %s nft|ipt\n", argv[0]);
		return 2;
	}
	backend_name = argv[1];
#ifndef WEFT_ACL_HAVE_IPT
	if (streq(backend_name, "ipt")) {
		printf("skipped: built without the ipt backend\n");
		return 77;
	}
#endif
	rc = ns_isolate(&guard, &node_fd);
	if (rc)
		return rc;
	if (streq(backend_name, "nft") ? fails("nft list ruleset >/dev/null 2>&1")
				       : fails("iptables-save >/dev/null 2>&1 && ipset list -n >/dev/null 2>&1")) {
		printf("skipped: %s tools do not work here\n", backend_name);
		ns_restore_check(&guard);
		return 77;
	}
	sh("ip link set lo up && ip addr add " NODE_V4 "/32 dev lo && ip addr add " NODE_V6 "/128 dev lo");
	if (weft_dp_node_prepare(true, &err) < 0 || pod_up(&pod_a) < 0 || pod_up(&pod_b) < 0 || pod_up(&pod_c) < 0 ||
	    pod_up(&pod_d) < 0) {
		fprintf(stderr, "set-up failed: %s\n", err ? err : "");
		free(err);
		return 1;
	}
	if (streq(backend_name, "nft"))
		rc = weft_acl_nft_open(&B, &err);
#ifdef WEFT_ACL_HAVE_IPT
	else
		rc = weft_acl_ipt_open(NULL, &B, &err);
#endif
	if (rc < 0) {
		fprintf(stderr, "open backend %s: %s\n", backend_name, err ? err : "?");
		free(err);
		return 1;
	}
	CHECK_STREQ(weft_acl_backend_name(B), backend_name);
	/* IPv6 works once the host veths' link-local addresses are past
	 * DAD (the node needs one to resolve pod addresses): wait for it. */
	for (int i = 0; i < 50 && !(ping(&pod_a, &pod_b, true) && ping(&pod_c, &pod_a, true)); i++)
		usleep(100 * 1000);

	rc = test_run(cases, ARRAY_SIZE(cases));

	weft_acl_backend_free(B);
	ns_free(&pod_a.ns);
	ns_free(&pod_b.ns);
	ns_free(&pod_c.ns);
	ns_free(&pod_d.ns);
	/* The root namespace is what it was (links, routes, nftables). */
	if (ns_restore_check(&guard))
		rc = 1;
	return rc;
}
