/* acl-bench.c - ACL programming cost, for bench/run-acl-bench.
 *
 *   acl-bench --backend nft|ipt --rules N --members M [--chains C] [--apart|--unlike] [--endpoints K]
 *             [--server IF,ADDR,MAC] [--client IF,ADDR,MAC] [--hold] [--remove]
 *
 * Runs in the network namespace it is started in (the script starts it
 * with ip netns exec; never the root namespace). Builds a program by hand
 * (the shape the compiler gives, so the backend alone is measured):
 *
 *   - set "wt4-members": M host addresses (100.64.0.0/10 upwards) plus the
 *     client's address: the tag every client carries;
 *   - C profile chains with N rules in all, rule i "allow tcp to port
 *     20000+i from tag members" (never the benchmark's traffic, so a first
 *     packet walks them all), the last chain ending "allow from tag
 *     members"; with --apart every second rule denies instead (allow
 *     and deny alternate: nft still merges them, one kernel rule per
 *     action and run; ipt does not); with --unlike every second rule
 *     denies and has an always-true source port range (1-65535), so that
 *     no two neighbours are alike but for their ports and actions:
 *     nothing merges, each rule is a kernel rule of its own;
 *   - the server endpoint's inbound profiles are those C chains; both
 *     endpoints' outbound profile allows all; --endpoints K adds K
 *     endpoints (no interfaces behind them) with the server's profiles,
 *     as the other pods of a node that share them;
 *
 * Then it times: the full load from scratch, adding one member, adding one
 * rule to one chain (the last), and, as the peer for "cost grows with the
 * change", the same two updates on a program with 10 rules and 10 members.
 * One line per figure: "name value_ms". --hold leaves the full program
 * loaded (for throughput runs) and skips the updates; --remove removes
 * what the backend owns and exits.
 */
#include "acl/acl.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <time.h>

struct ep_arg {
	char ifname[32];
	struct weft_cidr addr;
	uint8_t mac[6];
	bool set;
};

static int parse_ep(const char *s, struct ep_arg *e)
{
	char a[64];
	unsigned m[6];

	if (sscanf(s, "%31[^,],%63[^,],%x:%x:%x:%x:%x:%x", e->ifname, a, &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) !=
	    8)
		return -EINVAL;
	if (weft_cidr_parse_host(a, &e->addr) < 0)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		e->mac[i] = (uint8_t)m[i];
	e->set = true;
	return 0;
}

static char **strv1(const char *s)
{
	char **v = wmalloc(sizeof(char *));
	v[0] = wstrdup(s);
	return v;
}

static void add_member(struct weft_acl_set *s, const struct weft_cidr *c)
{
	s->elems = wrealloc(s->elems, (s->n_elems + 1) * sizeof(*s->elems));
	s->elems[s->n_elems++] = *c;
}

static int cidr_cmp(const void *a, const void *b)
{
	return weft_ip_cmp(&((const struct weft_cidr *)a)->ip, &((const struct weft_cidr *)b)->ip);
}

static int ep_cmp(const void *a, const void *b)
{
	return strcmp(((const struct weft_acl_endpoint *)a)->ifname, ((const struct weft_acl_endpoint *)b)->ifname);
}

static bool apart;  /* --apart */
static size_t more_eps; /* --endpoints K: K more endpoints with the server's profiles */
static bool unlike; /* --unlike */

static void rule_tag_port(struct weft_acl_rule *r, int port, const char *origin, bool deny)
{
	memset(r, 0, sizeof(*r));
	r->action = deny ? WEFT_ACL_DENY : WEFT_ACL_ALLOW;
	r->family = AF_INET;
	r->proto = port >= 0 ? IPPROTO_TCP : -1;
	r->not_proto = r->icmp_type = r->icmp_code = r->not_icmp_type = r->not_icmp_code = -1;
	r->addrs = wcalloc(1, sizeof(*r->addrs));
	r->addrs[0] = (struct weft_acl_addr_match){.src = true, .set = wstrdup("wt4-members")};
	r->n_addrs = 1;
	if (port >= 0) {
		r->dports = wmalloc(sizeof(*r->dports));
		r->dports[0] = (struct weft_acl_portrange){(uint16_t)port, (uint16_t)port};
		r->n_dports = 1;
	}
	if (deny && unlike) { /* a source port range that is always true */
		r->sports = wmalloc(sizeof(*r->sports));
		r->sports[0] = (struct weft_acl_portrange){1, 65535};
		r->n_sports = 1;
	}
	r->origin = wstrdup(origin);
}

static void endpoint(struct weft_acl_endpoint *e, const struct ep_arg *a, const char *name)
{
	memset(e, 0, sizeof(*e));
	e->name = wstrdup(name);
	e->ifname = wstrdup(a->ifname);
	e->addrs = wmalloc(sizeof(*e->addrs));
	e->addrs[0] = a->addr;
	e->n_addrs = 1;
	memcpy(e->mac, a->mac, 6);
	e->has_mac = true;
	e->out_profiles = strv1("wpo-allowall");
	e->n_out_profiles = 1;
}

/* The benchmark program: nrules rules over nchains chains, nmembers
 * members (+ the client), extra_rule adds one rule to the last chain,
 * extra_member one member. */
static struct weft_acl_program *build(size_t nrules, size_t nchains, size_t nmembers, bool extra_rule,
				      bool extra_member, const struct ep_arg *server, const struct ep_arg *client)
{
	struct weft_acl_program *p = wcalloc(1, sizeof(*p));
	struct weft_acl_set *s;
	size_t per = (nrules + nchains - 1) / nchains, done = 0;
	uint32_t base = ntohl(inet_addr("100.64.0.0"));

	p->sets = wcalloc(1, sizeof(*p->sets));
	p->n_sets = 1;
	s = &p->sets[0];
	s->name = wstrdup("wt4-members");
	s->origin = wstrdup("tag members");
	s->family = AF_INET;
	for (size_t i = 0; i < nmembers + (extra_member ? 1 : 0); i++) {
		struct weft_cidr c = {.ip.family = AF_INET, .prefixlen = 32};
		c.ip.v4.s_addr = htonl(base + (uint32_t)i);
		add_member(s, &c);
	}
	if (client->set)
		add_member(s, &client->addr);
	qsort(s->elems, s->n_elems, sizeof(*s->elems), cidr_cmp);

	/* nchains profile chains + the allow-all outbound chain. */
	p->chains = wcalloc(nchains + 1, sizeof(*p->chains));
	for (size_t c = 0; c < nchains; c++) {
		struct weft_acl_chain *ch = &p->chains[c];
		size_t n = per;
		bool last = c == nchains - 1;

		if (done + n > nrules)
			n = nrules - done;
		ch->name = wasprintf("wpi-%012zx", c);
		ch->origin = wasprintf("profile P%zu inbound", c);
		ch->kind = WEFT_ACL_CHAIN_PROFILE;
		ch->ingress = true;
		ch->rules = wcalloc(n + 2, sizeof(*ch->rules));
		for (size_t i = 0; i < n; i++) {
			char o[64];
			snprintf(o, sizeof(o), "profile P%zu inbound rule %zu", c, i + 1);
			rule_tag_port(&ch->rules[ch->n_rules++], 20000 + (int)(done + i) % 40000, o,
				      apart && (done + i) % 2 == 1);
		}
		if (last && extra_rule)
			rule_tag_port(&ch->rules[ch->n_rules++], 19990, "profile extra rule", false);
		if (last)
			rule_tag_port(&ch->rules[ch->n_rules++], -1, "profile last: allow from tag members", false);
		done += n;
	}
	p->chains[nchains].name = wstrdup("wpo-allowall");
	p->chains[nchains].origin = wstrdup("profile allowall outbound");
	p->chains[nchains].kind = WEFT_ACL_CHAIN_PROFILE;
	p->chains[nchains].rules = wcalloc(1, sizeof(struct weft_acl_rule));
	p->chains[nchains].rules[0] = (struct weft_acl_rule){.action = WEFT_ACL_ALLOW,
							     .proto = -1,
							     .not_proto = -1,
							     .icmp_type = -1,
							     .icmp_code = -1,
							     .not_icmp_type = -1,
							     .not_icmp_code = -1,
							     .origin = wstrdup("profile allowall outbound rule 1")};
	p->chains[nchains].n_rules = 1;
	p->n_chains = nchains + 1;

	p->endpoints = wcalloc(2 + more_eps, sizeof(*p->endpoints));
	for (size_t k = 0; k < more_eps; k++) {
		struct weft_acl_endpoint *e = &p->endpoints[p->n_endpoints++];
		struct ep_arg a = {.set = true, .addr = {.ip.family = AF_INET, .prefixlen = 32},
				   .mac = {0x02, 0xee, 0, 0, (uint8_t)(k >> 8), (uint8_t)k}};
		char name[32];

		snprintf(a.ifname, sizeof(a.ifname), "%sx%05zu", WEFT_ACL_IFPREFIX, k);
		a.addr.ip.v4.s_addr = htonl(ntohl(inet_addr("10.250.0.0")) + (uint32_t)k);
		snprintf(name, sizeof(name), "more-%zu", k);
		endpoint(e, &a, name);
		e->in_profiles = wcalloc(nchains, sizeof(char *));
		for (size_t c = 0; c < nchains; c++)
			e->in_profiles[c] = wstrdup(p->chains[c].name);
		e->n_in_profiles = nchains;
	}
	if (client->set)
		endpoint(&p->endpoints[p->n_endpoints++], client, "client");
	if (server->set) {
		struct weft_acl_endpoint *e = &p->endpoints[p->n_endpoints++];

		endpoint(e, server, "server");
		e->in_profiles = wcalloc(nchains, sizeof(char *));
		for (size_t c = 0; c < nchains; c++)
			e->in_profiles[c] = wstrdup(p->chains[c].name);
		e->n_in_profiles = nchains;
	}
	qsort(p->endpoints, p->n_endpoints, sizeof(*p->endpoints), ep_cmp);
	return p;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int apply(struct weft_acl_backend *b, struct weft_acl_program *p, const char *what, double *ms)
{
	_cleanup_free_ char *err = NULL;
	struct weft_acl_stats st;
	double t0 = now_ms();
	int r = weft_acl_apply(b, p, &st, &err);

	*ms = now_ms() - t0;
	if (r < 0)
		fprintf(stderr, "acl-bench: %s: %s\n", what, err ? err : strerror(-r));
	return r;
}

static int update(struct weft_acl_backend *b, const struct weft_acl_change *c, const char *what, double *ms)
{
	_cleanup_free_ char *err = NULL;
	struct weft_acl_stats st;
	double t0 = now_ms();
	int r = weft_acl_update(b, c, &st, &err);

	*ms = now_ms() - t0;
	if (r < 0)
		fprintf(stderr, "acl-bench: %s: %s\n", what, err ? err : strerror(-r));
	return r;
}

#define UPD_ROUNDS 201

/* Before the timed updates: the applies and the check before them leave
 * the kernel freeing what they replaced (100,000 set elements) in a
 * worker after an RCU grace period; updates timed during that measure it
 * too. weftd's updates follow events, not a full load within
 * milliseconds. WEFT_ACL_BENCH_SETTLE_US overrides the pause (0.3 s). */
static void settle(void)
{
	const char *e = getenv("WEFT_ACL_BENCH_SETTLE_US");
	long us = e ? atol(e) : 300000;
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};

	if (us > 0)
		nanosleep(&ts, NULL);
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), dbl_cmp);
	return v[n / 2];
}

/* One round of the two updates on a program of the given size: the full
 * load, then adding one member and one rule, each first as an apply of the
 * whole changed program (what weftd does for a policy change), then again
 * from the full load as a change (weft_acl_update(): what weftd does for
 * an endpoint event). */
struct times {
	double full, member, rule, member_upd, rule_upd, check, check_idle;
};

static int updates(struct weft_acl_backend *b, size_t nrules, size_t nchains, size_t nmembers,
		   const struct ep_arg *sv, const struct ep_arg *cl, struct times *t)
{
	struct weft_acl_program *p0 = build(nrules, nchains, nmembers, false, false, sv, cl);
	struct weft_acl_program *p1 = build(nrules, nchains, nmembers, false, true, sv, cl);
	struct weft_acl_program *p2 = build(nrules, nchains, nmembers, true, true, sv, cl);
	uint32_t base = ntohl(inet_addr("100.64.0.0"));
	struct weft_cidr extra = {.ip.family = AF_INET, .prefixlen = 32};
	struct weft_acl_set_change sc = {.set = "wt4-members", .add = &extra, .n_add = 1};
	struct weft_acl_change cm = {.sets = &sc, .n_sets = 1};
	/* The chain that got the extra rule: the last profile chain. */
	struct weft_acl_change cr = {.chains = &p2->chains[p2->n_chains - 2], .n_chains = 1};
	_cleanup_free_ char *err = NULL;
	double ms;
	int r;

	struct weft_acl_set_change sc_back = {.set = "wt4-members", .del = &extra, .n_del = 1};
	struct weft_acl_change cm_back = {.sets = &sc_back, .n_sets = 1};
	struct weft_acl_change cr_back = {.chains = &p0->chains[p0->n_chains - 2], .n_chains = 1};
	double um[UPD_ROUNDS], ur[UPD_ROUNDS], ck[5];

	extra.ip.v4.s_addr = htonl(base + (uint32_t)nmembers);
	(void)weft_acl_remove(b, &err);
	if ((r = apply(b, p0, "full load", &t->full)) < 0 || (r = apply(b, p1, "add one member", &t->member)) < 0 ||
	    (r = apply(b, p2, "add one rule", &t->rule)) < 0 || (r = apply(b, p0, "back to the start", &ms)) < 0)
		goto out;
	/* The drift check weftd makes every minute, right after a change
	 * (nft: the table's rules dumped and compared; ipt: both families'
	 * iptables-save), then with nothing changed since (nft: the
	 * ruleset's generation is the one the last check saw). */
	for (size_t i = 0; i < ARRAY_SIZE(ck); i++) {
		double t0 = now_ms();

		if ((r = weft_acl_check(b)) < 0) {
			fprintf(stderr, "acl-bench: check: %s\n", strerror(-r));
			goto out;
		}
		ck[i] = now_ms() - t0;
	}
	t->check = ck[0];
	t->check_idle = median(ck + 1, ARRAY_SIZE(ck) - 1);
	/* Updates take microseconds: the median of UPD_ROUNDS, each undone
	 * (untimed) before the next. Members first, then rules: the kernel
	 * frees what a commit replaced after the commit returns (RCU, a
	 * worker), so a member change right behind a rule change in a
	 * 10,000-rule chain would time part of that rule change too. */
	settle();
	for (int i = 0; i < UPD_ROUNDS; i++)
		if ((r = update(b, &cm, "add one member (update)", &um[i])) < 0 ||
		    (r = update(b, &cm_back, "remove it again (update)", &ms)) < 0)
			goto out;
	settle();
	for (int i = 0; i < UPD_ROUNDS; i++)
		if ((r = update(b, &cr, "add one rule (update)", &ur[i])) < 0 ||
		    (r = update(b, &cr_back, "remove it again (update)", &ms)) < 0)
			goto out;
	t->member_upd = median(um, UPD_ROUNDS);
	t->rule_upd = median(ur, UPD_ROUNDS);
out:
	weft_acl_program_free(p0);
	weft_acl_program_free(p1);
	weft_acl_program_free(p2);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"backend", required_argument, NULL, 'b'}, {"rules", required_argument, NULL, 'r'},
		{"members", required_argument, NULL, 'm'}, {"chains", required_argument, NULL, 'c'},
		{"server", required_argument, NULL, 's'},  {"client", required_argument, NULL, 'C'},
		{"hold", no_argument, NULL, 'H'},          {"remove", no_argument, NULL, 'R'},
		{"repeat", required_argument, NULL, 'n'},  {"apart", no_argument, NULL, 'A'},
		{"unlike", no_argument, NULL, 'U'},        {"endpoints", required_argument, NULL, 'E'},
		{0},
	};
	const char *backend = "nft";
	int64_t rules = 10000, members = 100000, chains = 1, repeat = 3;
	struct ep_arg server = {0}, client = {0};
	bool hold = false, remove_only = false;
	struct weft_acl_backend *b = NULL;
	_cleanup_free_ char *err = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			backend = optarg;
			break;
		case 'r':
			if (weft_parse_int64(optarg, 1, 1000000, &rules) < 0)
				goto usage;
			break;
		case 'm':
			if (weft_parse_int64(optarg, 0, 4000000, &members) < 0)
				goto usage;
			break;
		case 'c':
			if (weft_parse_int64(optarg, 1, 100000, &chains) < 0)
				goto usage;
			break;
		case 'n':
			if (weft_parse_int64(optarg, 1, 100, &repeat) < 0)
				goto usage;
			break;
		case 's':
			if (parse_ep(optarg, &server) < 0)
				goto usage;
			break;
		case 'C':
			if (parse_ep(optarg, &client) < 0)
				goto usage;
			break;
		case 'H':
			hold = true;
			break;
		case 'A':
			apart = true;
			break;
		case 'U':
			apart = unlike = true;
			break;
		case 'E': {
			int64_t k;

			if (weft_parse_int64(optarg, 0, 60000, &k) < 0)
				goto usage;
			more_eps = (size_t)k;
			break;
		}
		case 'R':
			remove_only = true;
			break;
		default:
			goto usage;
		}
	}
	if (chains > rules)
		chains = rules;
	r = streq(backend, "ipt") ? weft_acl_ipt_open(NULL, &b, &err) : weft_acl_nft_open(&b, &err);
	if (r < 0) {
		fprintf(stderr, "acl-bench: backend %s: %s\n", backend, err ? err : strerror(-r));
		return 1;
	}
	if (remove_only) {
		r = weft_acl_remove(b, &err);
		weft_acl_backend_free(b);
		return r < 0 ? 1 : 0;
	}
	if (hold) {
		struct weft_acl_program *p = build((size_t)rules, (size_t)chains, (size_t)members, false, false, &server,
						   &client);
		double ms;

		(void)weft_acl_remove(b, NULL);
		r = apply(b, p, "full load", &ms);
		if (r == 0)
			printf("full_load_ms %.2f\n", ms);
		weft_acl_program_free(p);
		weft_acl_backend_free(b);
		return r < 0 ? 1 : 0;
	}
	for (int64_t i = 0; i < repeat; i++) {
		struct times big, small;

		if (updates(b, (size_t)rules, (size_t)chains, (size_t)members, &server, &client, &big) < 0 ||
		    updates(b, 10, 1, 10, &server, &client, &small) < 0) {
			weft_acl_backend_free(b);
			return 1;
		}
		printf("full_load_ms %.3f\nadd_member_ms %.3f\nadd_rule_ms %.3f\n", big.full, big.member, big.rule);
		printf("upd_member_ms %.3f\nupd_rule_ms %.3f\ncheck_ms %.3f\ncheck_idle_ms %.3f\n", big.member_upd, big.rule_upd,
		       big.check, big.check_idle);
		printf("small_full_load_ms %.3f\nsmall_add_member_ms %.3f\nsmall_add_rule_ms %.3f\n", small.full,
		       small.member, small.rule);
		printf("small_upd_member_ms %.3f\nsmall_upd_rule_ms %.3f\n", small.member_upd, small.rule_upd);
		fflush(stdout);
	}
	(void)weft_acl_remove(b, NULL);
	weft_acl_backend_free(b);
	return 0;
usage:
	fputs("usage: acl-bench --backend nft|ipt --rules N --members M [--chains C] [--apart|--unlike] [--endpoints K]\n"
	      "                 [--repeat K]\n"
	      "                 [--server IF,ADDR,MAC] [--client IF,ADDR,MAC] [--hold] [--remove]\n",
	      stderr);
	return 2;
}
