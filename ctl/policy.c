/* policy.c - weftctl policy trace: what the ACLs do to one packet.
 *
 * Loads every Profile, Policy and Endpoint from the store, compiles them
 * for all nodes at once (weft_acl_compile with node NULL: every routed
 * endpoint gets its chains) and evaluates one packet with
 * weft_acl_trace(), the same semantics the kernel backends implement.
 */
#include "ctl/ctl.h"

#include "acl/acl.h"
#include "acl/rule-text.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static const char *const policy_usage =
	"Usage: weftctl policy trace [--sport N] SRC DST [PROTO[/PORT]]\n"
	"\n"
	"Evaluate one packet against the profiles and policies in the store, as\n"
	"every node would, and print the decision and the policy or profile rule\n"
	"that makes it, for the source endpoint's egress and the destination\n"
	"endpoint's ingress (both must allow).\n"
	"\n"
	"SRC, DST   an endpoint name, an endpoint's address, or any other address\n"
	"           (outside the cluster: no egress/ingress check on that side);\n"
	"           host:ADDR is a node itself (a pod reaching its node: the\n"
	"           failsafe ports and Policy allows apply; the node reaching\n"
	"           its pods is always allowed)\n"
	"PROTO/PORT tcp/5432, udp/53, sctp/N, udplite/N: protocol and destination\n"
	"           port; icmp, icmp/TYPE, icmp/TYPE/CODE (icmpv6 likewise; icmp\n"
	"           between IPv6 addresses means icmpv6); a protocol alone or a\n"
	"           number (47). Default: tcp with no port.\n"
	"--sport N  the source port (tcp, udp, sctp, udplite). Default: 32768,\n"
	"           an ephemeral port, as a client's connection has (Linux\n"
	"           picks them from 32768-60999); rules with source ports are\n"
	"           evaluated against it, and the output names it.\n"
	"\n"
	"Exit codes: 0 allowed, 3 denied, 1 failed (store, unknown endpoint),\n"
	"2 usage error.\n";

#define EXIT_DENIED 3
/* The source port of a traced packet unless --sport says otherwise: the
 * first of Linux's ephemeral ports (net.ipv4.ip_local_port_range), so
 * that a rule "from ports 1024:65535" matches a client's connection as
 * it does in the kernel. */
#define TRACE_SPORT_DEFAULT 32768


/* --- the packet ----------------------------------------------------- */

struct proto_spec {
	int proto;        /* 6, 17, ...; 1 for "icmp" (58 between IPv6 addresses) */
	bool icmp_any;    /* "icmp": the family decides between 1 and 58 */
	int port;         /* -1 = none */
	bool ports;       /* a protocol with ports (tcp, udp, sctp, udplite) */
	int type, code;   /* -1 = none */
	const char *name; /* for the summary line */
};

static int parse_num(const char *s, int max, int *out)
{
	int64_t v;

	if (!*s || strspn(s, "0123456789") != strlen(s) || weft_parse_int64(s, 0, max, &v) < 0)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int parse_proto(const char *arg, struct proto_spec *ps)
{
	static const struct {
		const char *name;
		int number;
		bool ports;
	} protos[] = {
		{"tcp", IPPROTO_TCP, true}, {"udp", IPPROTO_UDP, true}, {"sctp", 132, true},
		{"udplite", 136, true}, {"icmp", 1, false}, {"icmpv6", 58, false},
	};
	_cleanup_free_ char *s = wstrdup(arg);
	char *rest = strchr(s, '/');
	int n;

	*ps = (struct proto_spec){.proto = -1, .port = -1, .type = -1, .code = -1};
	if (rest)
		*rest++ = 0;
	for (size_t i = 0; i < ARRAY_SIZE(protos); i++) {
		if (strcasecmp(s, protos[i].name) != 0)
			continue;
		ps->proto = protos[i].number;
		ps->name = protos[i].name;
		ps->icmp_any = protos[i].number == 1;
		ps->ports = protos[i].ports;
		if (!rest)
			return 0;
		if (protos[i].ports)
			return parse_num(rest, 65535, &ps->port) < 0 ? ctl_usage("policy", "\"%s\": bad port", arg) : 0;
		char *code = strchr(rest, '/');
		if (code)
			*code++ = 0;
		if (parse_num(rest, 255, &ps->type) < 0 || (code && parse_num(code, 255, &ps->code) < 0))
			return ctl_usage("policy", "\"%s\": expected %s/TYPE[/CODE] with numbers 0..255", arg, protos[i].name);
		return 0;
	}
	if (!rest && parse_num(s, 255, &n) == 0) {
		ps->proto = n;
		ps->name = NULL;
		ps->ports = n == IPPROTO_TCP || n == IPPROTO_UDP || n == 132 || n == 136;
		return 0;
	}
	return ctl_usage("policy", "\"%s\": expected tcp/PORT, udp/PORT, icmp[/TYPE[/CODE]] or a protocol number", arg);
}

/* --- the resources ---------------------------------------------------- */

struct inputs {
	struct weft_resource *res;
	size_t n;
};

static void inputs_free(struct inputs *in)
{
	weft_resources_free(in->res, in->n);
}

static int load_inputs(struct ctl *ctl, struct inputs *in)
{
	static const enum weft_kind kinds[] = {WEFT_KIND_PROFILE, WEFT_KIND_POLICY, WEFT_KIND_ENDPOINT};

	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		struct weft_kv_list kl = {0};
		if (weft_store_list(ctl->store, weft_kind_prefix(kinds[k]), &kl) < 0)
			return ctl_fail("store list failed: %s", weft_store_errmsg(ctl->store));
		in->res = wrealloc(in->res, (in->n + kl.n) * sizeof(*in->res));
		for (size_t i = 0; i < kl.n; i++) {
			_cleanup_free_ char *err = NULL;
			struct weft_resource r = {0};
			/* A record the agent cannot decode is one it ignores too:
			 * say so and go on. */
			if (weft_resource_decode(kl.items[i].value, kl.items[i].value_len, &r, &err) < 0) {
				fprintf(stderr, "weftctl: warning: %s: %s (ignored)\n", kl.items[i].key,
					err ? err : "undecodable");
				continue;
			}
			in->res[in->n++] = r;
		}
		weft_kv_list_clear(&kl);
	}
	return 0;
}

/* --- the ends of the packet ---------------------------------------------- */

struct end {
	const char *arg;
	const struct weft_resource *ep;       /* the Endpoint resource, if any */
	const struct weft_acl_endpoint *pe;   /* its entry in the program: its ACLs apply */
	struct weft_ip addrs[16];             /* candidate addresses */
	size_t n_addrs;
	bool host;                            /* host:ADDR, the node itself */
};

static const struct weft_acl_endpoint *program_endpoint(const struct weft_acl_program *p, const char *name)
{
	for (size_t i = 0; i < p->n_endpoints; i++)
		if (streq(p->endpoints[i].name, name))
			return &p->endpoints[i];
	return NULL;
}

static void add_addr(struct end *e, const struct weft_ip *ip)
{
	for (size_t i = 0; i < e->n_addrs; i++)
		if (weft_ip_eq(&e->addrs[i], ip))
			return;
	if (e->n_addrs < ARRAY_SIZE(e->addrs))
		e->addrs[e->n_addrs++] = *ip;
}

/* The Endpoint resource's addresses (ipNetworks hold host bits). */
static void endpoint_addrs(const struct weft_resource *ep, struct end *e)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(ep->doc, "spec"), *it;

	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(spec, "ipNetworks")) {
		struct weft_cidr c;
		if (cJSON_IsString(it) && weft_cidr_parse_host(it->valuestring, &c) == 0)
			add_addr(e, &c.ip);
	}
}

static bool endpoint_has(const struct weft_resource *ep, const struct weft_ip *ip)
{
	struct end tmp = {0};

	endpoint_addrs(ep, &tmp);
	for (size_t i = 0; i < tmp.n_addrs; i++)
		if (weft_ip_eq(&tmp.addrs[i], ip))
			return true;
	return false;
}

/* Resolve SRC or DST: an endpoint name, an endpoint's address or an
 * outside address. Returns 0 or 1 after an error message. */
static int resolve(const struct inputs *in, const struct weft_acl_program *p, const char *arg, struct end *e)
{
	struct weft_ip ip;

	e->arg = arg;
	if (startswith(arg, "host:")) {
		if (weft_ip_parse(arg + 5, &ip) < 0)
			return ctl_fail("\"%s\": expected host:ADDR with the node address", arg);
		add_addr(e, &ip);
		e->host = true;
		return 0;
	}
	for (size_t i = 0; i < in->n; i++) {
		if (in->res[i].kind == WEFT_KIND_ENDPOINT && streq(in->res[i].name, arg)) {
			e->ep = &in->res[i];
			endpoint_addrs(e->ep, e);
			e->pe = program_endpoint(p, arg);
			if (!e->n_addrs)
				return ctl_fail("endpoint %s has no addresses", arg);
			return 0;
		}
	}
	if (weft_ip_parse(arg, &ip) < 0)
		return ctl_fail("\"%s\" is neither an endpoint name nor an address", arg);
	add_addr(e, &ip);
	for (size_t i = 0; i < in->n; i++) {
		if (in->res[i].kind == WEFT_KIND_ENDPOINT && endpoint_has(&in->res[i], &ip)) {
			e->ep = &in->res[i];
			e->pe = program_endpoint(p, in->res[i].name);
			if (e->pe)
				break;
		}
	}
	return 0;
}

/* The first address of e of family af, or NULL. */
static const struct weft_ip *addr_of(const struct end *e, int af)
{
	for (size_t i = 0; i < e->n_addrs; i++)
		if (e->addrs[i].family == af)
			return &e->addrs[i];
	return NULL;
}

/* --- output ----------------------------------------------------------- */

/* A reason like "profile WEB inbound rule 2 (allow)" or "policy p egress
 * rule 1 (deny)": the rule it names, in the classic syntax, or NULL. */
static char *reason_rule(const struct inputs *in, const char *reason)
{
	char kind[16], name[254], dir[16];
	const char *field = NULL;
	enum weft_kind k;
	int idx;

	if (sscanf(reason, "%15s %253s %15s rule %d", kind, name, dir, &idx) != 4 || idx < 1)
		return NULL;
	if (streq(kind, "profile")) {
		k = WEFT_KIND_PROFILE;
		field = streq(dir, "inbound") ? "inboundRules" : streq(dir, "outbound") ? "outboundRules" : NULL;
	} else if (streq(kind, "policy")) {
		k = WEFT_KIND_POLICY;
		field = streq(dir, "ingress") ? "ingress" : streq(dir, "egress") ? "egress" : NULL;
	} else {
		return NULL;
	}
	if (!field)
		return NULL;
	for (size_t i = 0; i < in->n; i++) {
		if (in->res[i].kind != k || !streq(in->res[i].name, name))
			continue;
		const cJSON *l = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(in->res[i].doc, "spec"),
								  field);
		const cJSON *rule = cJSON_GetArrayItem(l, idx - 1);
		char *s = NULL;
		if (rule && weft_rule_text_format(rule, &s) == 0)
			return s;
		return NULL;
	}
	return NULL;
}

static void print_step(const struct inputs *in, const char *dir, const struct weft_acl_step *s, const struct end *e)
{
	if (!s->evaluated) {
		if (e->host)
			printf("  %-7s %s: the node itself (no ACL of its own)\n", dir, e->arg);
		else if (e->ep)
			printf("  %-7s %s: not checked (endpoint %s has no ACLs: not a routed endpoint with a host "
			       "interface)\n", dir, e->arg, e->ep->name);
		else
			printf("  %-7s %s: not checked (not an endpoint)\n", dir, e->arg);
		return;
	}
	printf("  %-7s %s: %s by %s\n", dir, s->endpoint ? s->endpoint : e->arg, s->allowed ? "allowed" : "denied",
	       s->reason ? s->reason : "(no reason given)");
	_cleanup_free_ char *rule = s->reason ? reason_rule(in, s->reason) : NULL;
	if (rule)
		printf("          rule: %s\n", rule);
}

/* sport: the packet's source port (-1: the default) for a protocol with
 * ports. */
static int trace(struct ctl *ctl, const char *src_arg, const char *dst_arg, const struct proto_spec *ps, int sport)
{
	struct inputs in = {0};
	struct weft_acl_program *prog = NULL;
	struct weft_acl_options opt = {.node = NULL};
	struct weft_acl_verdict v = {0};
	struct weft_acl_packet pkt;
	struct end src = {0}, dst = {0};
	const struct weft_ip *sa = NULL, *da = NULL;
	_cleanup_free_ char *err = NULL;
	char sbuf[WEFT_IP_STRLEN], dbuf[WEFT_IP_STRLEN];
	int ret = 1, r;

	if (ctl_open_store(ctl))
		return 1;
	r = load_inputs(ctl, &in);
	ctl_close_store(ctl);
	if (r)
		goto out;
	r = weft_acl_compile(in.res, in.n, &opt, &prog, &err);
	if (r < 0) {
		ctl_fail("cannot compile the ACLs in the store: %s", err ? err : strerror(-r));
		goto out;
	}
	if (resolve(&in, prog, src_arg, &src) || resolve(&in, prog, dst_arg, &dst))
		goto out;
	/* One family both ends have, IPv4 first. */
	for (int i = 0; i < 2 && !sa; i++) {
		int af = i == 0 ? AF_INET : AF_INET6;
		if (addr_of(&src, af) && addr_of(&dst, af)) {
			sa = addr_of(&src, af);
			da = addr_of(&dst, af);
		}
	}
	if (!sa) {
		ctl_fail("%s and %s have no address family in common", src_arg, dst_arg);
		goto out;
	}
	pkt = (struct weft_acl_packet){
		.src_ifname = src.pe ? src.pe->ifname : NULL,
		.dst_ifname = dst.pe ? dst.pe->ifname : NULL,
		.src = *sa,
		.dst = *da,
		.proto = ps->proto,
		.sport = !ps->ports ? -1 : sport >= 0 ? sport : TRACE_SPORT_DEFAULT,
		.dport = ps->port,
		.icmp_type = ps->type,
		.icmp_code = ps->code,
		.to_host = dst.host,
		.from_host = src.host,
	};
	if (ps->icmp_any && sa->family == AF_INET6)
		pkt.proto = 58;
	if ((pkt.proto == 1 && sa->family == AF_INET6) || (pkt.proto == 58 && sa->family == AF_INET)) {
		ctl_fail("%s does not go with IPv%d addresses", pkt.proto == 1 ? "icmp" : "icmpv6",
			 sa->family == AF_INET ? 4 : 6);
		goto out;
	}
	r = weft_acl_trace(prog, &pkt, &v);
	if (r < 0 && r != -EINVAL) {
		ctl_fail("trace failed: %s", strerror(-r));
		goto out;
	}

	weft_ip_str(sa, sbuf, sizeof(sbuf));
	weft_ip_str(da, dbuf, sizeof(dbuf));
	printf("%s ", v.allowed ? "ALLOW" : "DENY");
	if (ps->name && (pkt.proto == 1 || pkt.proto == 58))
		printf("%s", pkt.proto == 1 ? "icmp" : "icmpv6");
	else if (ps->name)
		printf("%s", ps->name);
	else
		printf("protocol %d", pkt.proto);
	printf(" %s -> %s", sbuf, dbuf);
	if (ps->port >= 0)
		printf(" port %d", ps->port);
	if (ps->type >= 0)
		printf(" type %d", ps->type);
	if (ps->code >= 0)
		printf(" code %d", ps->code);
	printf("\n");
	if (pkt.sport >= 0)
		printf("  source port %d%s\n", pkt.sport,
		       sport >= 0 ? " (--sport)" : " (the default: an ephemeral port; --sport N for another)");
	print_step(&in, "egress", &v.egress, &src);
	print_step(&in, "ingress", &v.ingress, &dst);
	ret = v.allowed ? 0 : EXIT_DENIED;
out:
	weft_acl_verdict_clear(&v);
	weft_acl_program_free(prog);
	inputs_free(&in);
	return ret;
}

int ctl_cmd_policy(struct ctl *ctl, int argc, char **argv)
{
	struct proto_spec ps;
	const char *pos[3] = {NULL};
	size_t n_pos = 0;
	int sport = -1;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
			fputs(policy_usage, stdout);
			return 0;
		}
	}
	if (argc < 2 || !streq(argv[1], "trace"))
		return ctl_usage("policy", "expected trace");
	for (int i = 2; i < argc; i++) {
		const char *v = NULL;

		if (streq(argv[i], "--sport")) {
			if (++i == argc)
				return ctl_usage("policy", "--sport: expected a port");
			v = argv[i];
		} else if (startswith(argv[i], "--sport=")) {
			v = argv[i] + strlen("--sport=");
		} else if (n_pos < ARRAY_SIZE(pos)) {
			pos[n_pos++] = argv[i];
			continue;
		} else {
			return ctl_usage("policy", "trace: expected [--sport N] SRC DST [PROTO[/PORT]]");
		}
		if (parse_num(v, 65535, &sport) < 0 || sport == 0)
			return ctl_usage("policy", "--sport: \"%s\" is not a port 1..65535", v);
	}
	if (n_pos < 2)
		return ctl_usage("policy", "trace: expected [--sport N] SRC DST [PROTO[/PORT]]");
	if (parse_proto(n_pos == 3 ? pos[2] : "tcp", &ps))
		return 2;
	if (sport >= 0 && !ps.ports)
		return ctl_usage("policy", "--sport: %s has no ports (tcp, udp, sctp or udplite do)",
				 n_pos == 3 ? pos[2] : "tcp");
	return trace(ctl, pos[0], pos[1], &ps, sport);
}
