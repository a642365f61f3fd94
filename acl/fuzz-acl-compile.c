/* fuzz-acl-compile.c - libFuzzer target for the ACL compiler and trace.
 *
 * The input is split into documents at "\n---\n" (at most 16); each is
 * decoded as a stored resource (weft_resource_decode: what weftd does with
 * store values), and those that decode are compiled for every node and for
 * node-1, and in reverse order. Nothing may crash or leak; the program must
 * hold the header's invariants (names, sorting, references, normalized
 * sets) and the reversed input must give the same program, or the target
 * aborts. A few packets between the program's endpoints are traced.
 */
#include "acl/acl.h"

#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DOCS 16

static void die(const char *what)
{
	fprintf(stderr, "fuzz-acl-compile: %s\n", what);
	abort();
}

static bool valid_name(const char *s)
{
	size_t l = strlen(s);

	if (l == 0 || l > WEFT_ACL_NAME_MAX)
		return false;
	for (size_t i = 0; i < l; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

/* The action of the first rule of rules[i..j) with port x, or -1. */
static int first_match(const struct weft_acl_rule *rules, size_t i, size_t j, uint32_t x)
{
	for (size_t k = i; k < j; k++)
		for (size_t d = 0; d < rules[k].n_dports; d++)
			if (x >= rules[k].dports[d].lo && x <= rules[k].dports[d].hi)
				return (int)rules[k].action;
	return -1;
}

/* The chain's runs as the backends cut them (weft_acl_run_end, mixed):
 * each action's ports sorted, merged and disjoint from the others', and
 * at every range bound of the run's rules (and next to it) the action
 * that the first rule with that port has. */
static void check_runs(const struct weft_acl_chain *c)
{
	for (size_t i = 0; i < c->n_rules;) {
		size_t j = weft_acl_run_end(c->rules, c->n_rules, i, WEFT_ACL_RUN_MAX, true);
		struct weft_acl_portrange *out[WEFT_ACL_RUN_ACTIONS];
		size_t n[WEFT_ACL_RUN_ACTIONS];

		if (j <= i || j > c->n_rules)
			die("run bounds");
		if (j == i + 1) {
			i = j;
			continue;
		}
		(void)weft_acl_run_id(c->rules, c->n_rules, i, j, WEFT_ACL_RUN_MAX);
		weft_acl_run_ports(c->rules, i, j, out, n);
		for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++)
			for (size_t x = 0; x < n[a]; x++)
				if (out[a][x].lo > out[a][x].hi || (x && (uint32_t)out[a][x - 1].hi + 1 >= out[a][x].lo))
					die("run ports not sorted and merged");
		for (size_t k = i; k < j; k++)
			for (size_t d = 0; d < c->rules[k].n_dports; d++) {
				uint32_t pts[] = {c->rules[k].dports[d].lo, c->rules[k].dports[d].hi,
						  (uint32_t)c->rules[k].dports[d].lo - 1, (uint32_t)c->rules[k].dports[d].hi + 1};

				for (size_t q = 0; q < 4; q++) {
					int got = -1;

					if (pts[q] > 65535)
						continue;
					for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++)
						for (size_t x = 0; x < n[a]; x++)
							if (pts[q] >= out[a][x].lo && pts[q] <= out[a][x].hi) {
								if (got >= 0)
									die("a port in two actions' sets");
								got = a;
							}
					if (got != first_match(c->rules, i, j, pts[q]))
						die("a run's port decided by the wrong action");
				}
			}
		for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++)
			free(out[a]);
		i = j;
	}
}

static void check_program(const struct weft_acl_program *p)
{
	for (size_t i = 0; i < p->n_sets; i++) {
		const struct weft_acl_set *s = &p->sets[i];
		if (!valid_name(s->name) || (i && strcmp(p->sets[i - 1].name, s->name) >= 0))
			die("set names");
		for (size_t j = 0; j < s->n_elems; j++) {
			if (s->elems[j].ip.family != s->family)
				die("set element of the wrong family");
			if (j && (weft_ip_cmp(&s->elems[j - 1].ip, &s->elems[j].ip) >= 0 ||
				  weft_cidr_overlaps(&s->elems[j - 1], &s->elems[j])))
				die("set elements not normalized");
		}
	}
	for (size_t i = 0; i < p->n_chains; i++) {
		const struct weft_acl_chain *c = &p->chains[i];
		if (!valid_name(c->name) || (i && strcmp(p->chains[i - 1].name, c->name) >= 0))
			die("chain names");
		for (size_t j = 0; j < c->n_rules; j++) {
			const struct weft_acl_rule *r = &c->rules[j];
			for (size_t k = 0; k < r->n_addrs; k++) {
				const struct weft_acl_set *s = weft_acl_program_set(p, r->addrs[k].set);
				if (!s || s->family != r->family)
					die("rule references a missing set or one of another family");
			}
			if ((r->action == WEFT_ACL_LOG) != (r->log_prefix != NULL) ||
			    (r->log_prefix && strlen(r->log_prefix) > WEFT_ACL_LOG_PREFIX_MAX))
				die("log prefix");
			if (r->action == WEFT_ACL_PASS && c->kind == WEFT_ACL_CHAIN_PROFILE)
				die("pass in a profile");
		}
		check_runs(c);
	}
	for (size_t i = 0; i < p->n_endpoints; i++) {
		const struct weft_acl_endpoint *e = &p->endpoints[i];
		char **lists[] = {e->in_policies, e->in_profiles, e->out_policies, e->out_profiles};
		size_t ns[] = {e->n_in_policies, e->n_in_profiles, e->n_out_policies, e->n_out_profiles};

		if (i && strcmp(p->endpoints[i - 1].ifname, e->ifname) >= 0)
			die("endpoints not sorted by ifname");
		for (size_t l = 0; l < 4; l++)
			for (size_t j = 0; j < ns[l]; j++)
				if (!weft_acl_program_chain(p, lists[l][j]))
					die("endpoint references a missing chain");
	}
}

/* A compact text of the whole program, to compare two compiles. */
static char *dump(const struct weft_acl_program *p)
{
	struct weft_buf b = {0};
	char buf[WEFT_CIDR_STRLEN];

	for (size_t i = 0; i < p->n_sets; i++) {
		weft_buf_printf(&b, "S %s %s %d", p->sets[i].name, p->sets[i].origin, p->sets[i].family);
		for (size_t j = 0; j < p->sets[i].n_elems; j++)
			weft_buf_printf(&b, " %s", weft_cidr_str(&p->sets[i].elems[j], buf, sizeof(buf)));
		weft_buf_printf(&b, "\n");
	}
	for (size_t i = 0; i < p->n_chains; i++) {
		const struct weft_acl_chain *c = &p->chains[i];
		weft_buf_printf(&b, "C %s %s\n", c->name, c->origin);
		for (size_t j = 0; j < c->n_rules; j++) {
			const struct weft_acl_rule *r = &c->rules[j];
			weft_buf_printf(&b, " %d %d %d %d %d %d %d %d %s %s", r->action, r->family, r->proto, r->not_proto,
					r->icmp_type, r->icmp_code, r->not_icmp_type, r->not_icmp_code, r->origin,
					r->log_prefix ? r->log_prefix : "-");
			for (size_t k = 0; k < r->n_addrs; k++)
				weft_buf_printf(&b, " %d%d%s", r->addrs[k].src, r->addrs[k].negate, r->addrs[k].set);
			for (size_t k = 0; k < r->n_dports; k++)
				weft_buf_printf(&b, " d%u-%u", r->dports[k].lo, r->dports[k].hi);
			for (size_t k = 0; k < r->n_not_dports; k++)
				weft_buf_printf(&b, " D%u-%u", r->not_dports[k].lo, r->not_dports[k].hi);
			for (size_t k = 0; k < r->n_sports; k++)
				weft_buf_printf(&b, " s%u-%u", r->sports[k].lo, r->sports[k].hi);
			for (size_t k = 0; k < r->n_not_sports; k++)
				weft_buf_printf(&b, " S%u-%u", r->not_sports[k].lo, r->not_sports[k].hi);
			weft_buf_printf(&b, "\n");
		}
	}
	for (size_t i = 0; i < p->n_endpoints; i++) {
		const struct weft_acl_endpoint *e = &p->endpoints[i];
		weft_buf_printf(&b, "E %s %s %d", e->ifname, e->name, e->has_mac);
		for (size_t j = 0; j < e->n_addrs; j++)
			weft_buf_printf(&b, " %s", weft_cidr_str(&e->addrs[j], buf, sizeof(buf)));
		for (size_t j = 0; j < e->n_in_policies; j++)
			weft_buf_printf(&b, " ip:%s", e->in_policies[j]);
		for (size_t j = 0; j < e->n_in_profiles; j++)
			weft_buf_printf(&b, " ir:%s", e->in_profiles[j]);
		for (size_t j = 0; j < e->n_out_policies; j++)
			weft_buf_printf(&b, " op:%s", e->out_policies[j]);
		for (size_t j = 0; j < e->n_out_profiles; j++)
			weft_buf_printf(&b, " or:%s", e->out_profiles[j]);
		weft_buf_printf(&b, "\n");
	}
	return weft_buf_steal(&b);
}

static void trace_one(const struct weft_acl_program *p, const struct weft_acl_packet *pkt)
{
	struct weft_acl_verdict v;
	int r = weft_acl_trace(p, pkt, &v);

	if (r != 0 && r != -EINVAL)
		die("trace returned an unexpected error");
	if (r == -EINVAL && v.allowed)
		die("an unknown interface was allowed");
	if ((v.egress.evaluated && !v.egress.reason) || (v.ingress.evaluated && !v.ingress.reason))
		die("an evaluated step without a reason");
	weft_acl_verdict_clear(&v);
}

static void trace_some(const struct weft_acl_program *p, uint8_t seed)
{
	struct weft_acl_packet pkt = {.proto = 6, .sport = 40000, .dport = 80, .icmp_type = -1, .icmp_code = -1};
	static const int protos[] = {6, 17, 1, 58, 132};
	const struct weft_acl_endpoint *a, *b;

	if (p->n_endpoints == 0) {
		pkt.src_ifname = "wft-none";
		weft_ip_parse("10.0.0.1", &pkt.src);
		weft_ip_parse("10.0.0.2", &pkt.dst);
		trace_one(p, &pkt);
		return;
	}
	a = &p->endpoints[seed % p->n_endpoints];
	b = &p->endpoints[(seed / 7) % p->n_endpoints];
	pkt.proto = protos[seed % ARRAY_SIZE(protos)];
	if (pkt.proto == 1 || pkt.proto == 58) {
		pkt.sport = pkt.dport = -1;
		pkt.icmp_type = seed & 1 ? 8 : 135;
		pkt.icmp_code = 0;
	} else {
		pkt.dport = seed & 1 ? 22 : 80;
	}
	pkt.src_ifname = a->ifname;
	pkt.dst_ifname = b->ifname;
	if (a->n_addrs)
		pkt.src = a->addrs[0].ip;
	else
		weft_ip_parse("10.0.0.1", &pkt.src);
	if (b->n_addrs)
		pkt.dst = b->addrs[0].ip;
	else
		weft_ip_parse("10.0.0.2", &pkt.dst);
	trace_one(p, &pkt);
	/* From outside, to the host, from the host. */
	pkt.src_ifname = NULL;
	trace_one(p, &pkt);
	pkt.src_ifname = a->ifname;
	pkt.dst_ifname = NULL;
	pkt.to_host = true;
	trace_one(p, &pkt);
	pkt.to_host = false;
	pkt.src_ifname = NULL;
	pkt.dst_ifname = b->ifname;
	pkt.from_host = true;
	trace_one(p, &pkt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct weft_resource rs[MAX_DOCS], rev[MAX_DOCS];
	const char *text = (const char *)data, *end = text + size;
	size_t n = 0;

	while (text <= end && n < MAX_DOCS) {
		const char *sep = memmem(text, (size_t)(end - text), "\n---\n", 5);
		size_t len = sep ? (size_t)(sep - text) : (size_t)(end - text);
		char *err = NULL;

		memset(&rs[n], 0, sizeof(rs[n]));
		if (weft_resource_decode(text, len, &rs[n], &err) == 0)
			n++;
		free(err);
		if (!sep)
			break;
		text = sep + 5;
	}

	for (int round = 0; round < 2; round++) {
		struct weft_acl_options opt = {.node = round ? "node-1" : NULL};
		struct weft_acl_program *p = NULL, *q = NULL;
		char *err = NULL;
		int r = weft_acl_compile(rs, n, &opt, &p, &err);

		if (r < 0) {
			if (r != -EINVAL || !err || strchr(err, '\n'))
				die("a failed compile must give -EINVAL and a one-line message");
			free(err);
			continue;
		}
		if (!p)
			die("no program");
		check_program(p);
		trace_some(p, size ? data[0] : 0);

		/* Reverse the input: the same program. */
		for (size_t i = 0; i < n; i++)
			rev[i] = rs[n - 1 - i];
		if (weft_acl_compile(rev, n, &opt, &q, NULL) < 0)
			die("the reversed input does not compile");
		{
			char *a = dump(p), *b = dump(q);
			if (!streq(a, b)) {
				fprintf(stderr, "%s\n----\n%s\n", a, b);
				die("the reversed input gives another program");
			}
			free(a);
			free(b);
		}
		weft_acl_program_free(q);
		weft_acl_program_free(p);
	}
	for (size_t i = 0; i < n; i++)
		weft_resource_clear(&rs[i]);
	return 0;
}
