/* test-acl-compile.c - weft_acl_compile(): sets, chains, endpoints. */
#include "acl/acl.h"
#include "acl/test-acl-util.h"
#include "lib/test.h"
#include "model/selector.h"

#include <sys/socket.h>

/* The classic Calico example: WEB lets in its own tag and tcp 80, 443; DB
 * takes tcp 5432 from WEB only. Two nodes. */
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
	"metadata: {name: web-1, labels: {role: web}}\n"
	"spec: {node: node-1, hostIfname: wft0001, ipNetworks: [10.65.0.1/32], mac: 'ee:ee:ee:ee:ee:01', profiles: [WEB]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: web-2, labels: {role: web}}\n"
	"spec: {node: node-2, hostIfname: wft0002, ipNetworks: [10.65.1.2/32, 'fd00::2/128'], profiles: [WEB]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: db-1, labels: {role: db}}\n"
	"spec: {node: node-1, hostIfname: wft0003, ipNetworks: [10.65.0.3/32], profiles: [DB]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: other-1}\n"
	"spec: {node: node-1, hostIfname: wft0004, ipNetworks: [10.65.0.4/32]}\n";

static struct weft_resource *parse(const char *yaml, size_t *n)
{
	struct weft_resource *rs = NULL;
	char *err = NULL;
	int r = weft_manifest_parse(yaml, strlen(yaml), &rs, n, &err);

	if (r < 0)
		fprintf(stderr, "manifest: %s\n", err);
	CHECK_EQ_INT(r, 0);
	free(err);
	return rs;
}

static struct weft_acl_program *compile_res(const struct weft_resource *rs, size_t n, const char *node)
{
	struct weft_acl_options opt = {.node = node};
	struct weft_acl_program *p = NULL;
	char *err = NULL;
	int r = weft_acl_compile(rs, n, &opt, &p, &err);

	if (r < 0)
		fprintf(stderr, "compile: %s\n", err);
	CHECK_EQ_INT(r, 0);
	free(err);
	return p;
}

static char *hashed(const char *prefix, const char *text)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const char *s = text; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return wasprintf("%s-%012llx", prefix, (unsigned long long)(h & 0xffffffffffffULL));
}

static char *ports_str(const struct weft_acl_portrange *v, size_t n)
{
	struct weft_buf b = {0};

	for (size_t i = 0; i < n; i++) {
		if (v[i].lo == v[i].hi)
			weft_buf_printf(&b, "%s%u", i ? "," : "", v[i].lo);
		else
			weft_buf_printf(&b, "%s%u:%u", i ? "," : "", v[i].lo, v[i].hi);
	}
	return weft_buf_steal(&b);
}

/* A full text dump of a program: equal programs dump equal. */
static char *dump(const struct weft_acl_program *p)
{
	struct weft_buf b = {0};

	for (size_t i = 0; i < p->n_sets; i++) {
		char *e = cidrs_str(p->sets[i].elems, p->sets[i].n_elems);
		weft_buf_printf(&b, "set %s %s %d [%s]\n", p->sets[i].name, p->sets[i].origin, p->sets[i].family, e);
		free(e);
	}
	for (size_t i = 0; i < p->n_chains; i++) {
		const struct weft_acl_chain *c = &p->chains[i];
		weft_buf_printf(&b, "chain %s %s %d %d\n", c->name, c->origin, c->kind, c->ingress);
		for (size_t j = 0; j < c->n_rules; j++) {
			const struct weft_acl_rule *r = &c->rules[j];
			char *sp = ports_str(r->sports, r->n_sports), *nsp = ports_str(r->not_sports, r->n_not_sports);
			char *dp = ports_str(r->dports, r->n_dports), *ndp = ports_str(r->not_dports, r->n_not_dports);
			weft_buf_printf(&b, "  %s f%d p%d np%d icmp %d/%d not %d/%d sp[%s] nsp[%s] dp[%s] ndp[%s] '%s' '%s'",
					weft_acl_action_str(r->action), r->family, r->proto, r->not_proto, r->icmp_type,
					r->icmp_code, r->not_icmp_type, r->not_icmp_code, sp, nsp, dp, ndp, r->origin,
					r->log_prefix ? r->log_prefix : "");
			for (size_t k = 0; k < r->n_addrs; k++)
				weft_buf_printf(&b, " %s%s%s", r->addrs[k].src ? "src" : "dst", r->addrs[k].negate ? "!" : "",
						r->addrs[k].set);
			weft_buf_printf(&b, "\n");
			free(sp);
			free(nsp);
			free(dp);
			free(ndp);
		}
	}
	for (size_t i = 0; i < p->n_endpoints; i++) {
		const struct weft_acl_endpoint *e = &p->endpoints[i];
		char *a = cidrs_str(e->addrs, e->n_addrs);
		weft_buf_printf(&b, "ep %s %s [%s] mac %d %02x\n  in:", e->ifname, e->name, a, e->has_mac, e->mac[5]);
		free(a);
		for (size_t j = 0; j < e->n_in_policies; j++)
			weft_buf_printf(&b, " %s", e->in_policies[j]);
		weft_buf_printf(&b, " |");
		for (size_t j = 0; j < e->n_in_profiles; j++)
			weft_buf_printf(&b, " %s", e->in_profiles[j]);
		weft_buf_printf(&b, "\n  out:");
		for (size_t j = 0; j < e->n_out_policies; j++)
			weft_buf_printf(&b, " %s", e->out_policies[j]);
		weft_buf_printf(&b, " |");
		for (size_t j = 0; j < e->n_out_profiles; j++)
			weft_buf_printf(&b, " %s", e->out_profiles[j]);
		weft_buf_printf(&b, "\n");
	}
	for (size_t i = 0; i < p->n_failsafe; i++)
		weft_buf_printf(&b, "failsafe %u/%u\n", p->failsafe[i].proto, p->failsafe[i].port);
	return weft_buf_steal(&b);
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

/* What every program must satisfy: names, sorting, references, sets. */
static void check_invariants(const struct weft_acl_program *p)
{
	for (size_t i = 0; i < p->n_sets; i++) {
		const struct weft_acl_set *s = &p->sets[i];
		CHECK(valid_name(s->name));
		CHECK(i == 0 || strcmp(p->sets[i - 1].name, s->name) < 0);
		for (size_t j = 0; j < s->n_elems; j++) {
			CHECK(s->elems[j].ip.family == s->family);
			if (j)
				CHECK(weft_ip_cmp(&s->elems[j - 1].ip, &s->elems[j].ip) < 0 &&
				      !weft_cidr_overlaps(&s->elems[j - 1], &s->elems[j]));
		}
	}
	for (size_t i = 0; i < p->n_chains; i++) {
		const struct weft_acl_chain *c = &p->chains[i];
		CHECK(valid_name(c->name));
		CHECK(i == 0 || strcmp(p->chains[i - 1].name, c->name) < 0);
		for (size_t j = 0; j < c->n_rules; j++) {
			const struct weft_acl_rule *r = &c->rules[j];
			for (size_t k = 0; k < r->n_addrs; k++) {
				const struct weft_acl_set *s = weft_acl_program_set(p, r->addrs[k].set);
				CHECK(s != NULL);
				CHECK(!s || s->family == r->family);
			}
			CHECK(!r->log_prefix || strlen(r->log_prefix) <= WEFT_ACL_LOG_PREFIX_MAX);
			CHECK((r->action == WEFT_ACL_LOG) == (r->log_prefix != NULL));
		}
	}
	for (size_t i = 0; i < p->n_endpoints; i++) {
		const struct weft_acl_endpoint *e = &p->endpoints[i];
		CHECK(i == 0 || strcmp(p->endpoints[i - 1].ifname, e->ifname) < 0);
		for (size_t j = 0; j < e->n_in_policies; j++)
			CHECK(weft_acl_program_chain(p, e->in_policies[j]) != NULL);
		for (size_t j = 0; j < e->n_in_profiles; j++)
			CHECK(weft_acl_program_chain(p, e->in_profiles[j]) != NULL);
		for (size_t j = 0; j < e->n_out_policies; j++)
			CHECK(weft_acl_program_chain(p, e->out_policies[j]) != NULL);
		for (size_t j = 0; j < e->n_out_profiles; j++)
			CHECK(weft_acl_program_chain(p, e->out_profiles[j]) != NULL);
	}
}

static void test_classic(void)
{
	struct weft_acl_program *p = compile_yaml(classic, "node-1");
	_cleanup_free_ char *wpi_web = hashed("wpi", "WEB"), *wpo_web = hashed("wpo", "WEB");
	_cleanup_free_ char *wpi_db = hashed("wpi", "DB"), *wt4 = hashed("wt4", "tag WEB"), *wt6 = hashed("wt6", "tag WEB");
	const struct weft_acl_chain *c;
	const struct weft_acl_set *s;
	const struct weft_acl_endpoint *e;

	if (!p)
		return;
	check_invariants(p);
	CHECK_EQ_INT(p->n_endpoints, 3);
	CHECK_STREQ(p->endpoints[0].ifname, "wft0001");
	CHECK_STREQ(p->endpoints[1].ifname, "wft0003");
	CHECK_STREQ(p->endpoints[2].ifname, "wft0004");
	e = weft_acl_program_endpoint(p, "wft0001");
	CHECK(e && e->has_mac && e->mac[0] == 0xee && e->mac[5] == 0x01);
	CHECK(e && e->n_addrs == 1 && e->addrs[0].prefixlen == 32);
	CHECK(e && e->n_in_policies == 0 && e->n_in_profiles == 1 && streq(e->in_profiles[0], wpi_web));
	CHECK(e && e->n_out_profiles == 1 && streq(e->out_profiles[0], wpo_web));
	e = weft_acl_program_endpoint(p, "wft0004");
	CHECK(e && e->n_in_profiles == 0 && e->n_out_profiles == 0 && !e->has_mac);

	CHECK_EQ_INT(p->n_chains, 4); /* WEB and DB, in and out */
	c = weft_acl_program_chain(p, wpi_web);
	CHECK(c != NULL);
	if (c) {
		CHECK_STREQ(c->origin, "profile WEB inbound");
		CHECK(c->kind == WEFT_ACL_CHAIN_PROFILE && c->ingress);
		/* Rule 1 (tag) split per family, rule 2 (no address) for both. */
		CHECK_EQ_INT(c->n_rules, 3);
		if (c->n_rules == 3) {
			CHECK_EQ_INT(c->rules[0].family, AF_INET);
			CHECK_EQ_INT(c->rules[1].family, AF_INET6);
			CHECK_STREQ(c->rules[0].origin, "profile WEB inbound rule 1");
			CHECK_STREQ(c->rules[1].origin, "profile WEB inbound rule 1");
			CHECK(c->rules[0].n_addrs == 1 && c->rules[0].addrs[0].src && !c->rules[0].addrs[0].negate);
			CHECK_STREQ(c->rules[0].addrs[0].set, wt4);
			CHECK_STREQ(c->rules[1].addrs[0].set, wt6);
			CHECK_EQ_INT(c->rules[2].family, 0);
			CHECK_EQ_INT(c->rules[2].proto, 6);
			CHECK_EQ_INT(c->rules[2].not_proto, -1);
			CHECK_EQ_INT(c->rules[2].icmp_type, -1);
			CHECK(c->rules[2].n_dports == 2 && c->rules[2].dports[0].lo == 80 && c->rules[2].dports[1].hi == 443);
			CHECK_STREQ(c->rules[2].origin, "profile WEB inbound rule 2");
			CHECK(c->rules[2].log_prefix == NULL);
		}
	}
	c = weft_acl_program_chain(p, wpi_db);
	CHECK(c && c->n_rules == 2 && c->rules[0].proto == 6 && c->rules[0].n_dports == 1 &&
	      c->rules[0].dports[0].lo == 5432);
	/* Sets: only the WEB tag is referenced; members cluster-wide. */
	CHECK_EQ_INT(p->n_sets, 2);
	s = weft_acl_program_set(p, wt4);
	CHECK(s && s->family == AF_INET && streq(s->origin, "tag WEB"));
	if (s) {
		_cleanup_free_ char *m = cidrs_str(s->elems, s->n_elems);
		CHECK_STREQ(m, "10.65.0.1/32,10.65.1.2/32");
	}
	s = weft_acl_program_set(p, wt6);
	if (s) {
		_cleanup_free_ char *m = cidrs_str(s->elems, s->n_elems);
		CHECK_STREQ(m, "fd00::2/128");
	}
	CHECK_EQ_INT(p->n_failsafe, 9);
	weft_acl_program_free(p);

	/* node-2 has only web-2: the DB chains are left out. */
	p = compile_yaml(classic, "node-2");
	if (p) {
		check_invariants(p);
		CHECK_EQ_INT(p->n_endpoints, 1);
		CHECK_EQ_INT(p->n_chains, 2);
		CHECK(weft_acl_program_chain(p, wpi_db) == NULL);
		CHECK_EQ_INT(p->n_sets, 2);
	}
	weft_acl_program_free(p);

	/* A node without endpoints: an empty program. */
	p = compile_yaml(classic, "node-9");
	CHECK(p && p->n_endpoints == 0 && p->n_chains == 0 && p->n_sets == 0);
	weft_acl_program_free(p);

	/* node NULL (trace): every endpoint. */
	p = compile_yaml(classic, NULL);
	CHECK(p && p->n_endpoints == 4 && p->n_chains == 4);
	weft_acl_program_free(p);
}

static const char fields_yaml[] =
	"kind: Policy\n"
	"metadata: {name: all-fields}\n"
	"spec:\n"
	"  order: 1\n"
	"  types: [Ingress, Egress]\n"
	"  ingress:\n"
	"  - action: deny\n"
	"    protocol: tcp\n"
	"    source: {ports: ['1000:2000', 1500, 22, 23, '2001:2002'], notPorts: [1999]}\n"
	"    destination: {ports: [80, '8000:8080', 443, 81, '8081:8090'], notPorts: [8005]}\n"
	"  - action: allow\n"
	"    protocol: icmp\n"
	"    icmp: {type: 8, code: 0}\n"
	"  - action: allow\n"
	"    protocol: icmpv6\n"
	"    notICMP: {type: 128}\n"
	"  - action: log\n"
	"    notProtocol: udp\n"
	"    ipVersion: 6\n"
	"  - action: pass\n"
	"    source: {notTag: WEB, notSelector: \"role == 'db'\"}\n"
	"    destination: {nets: [10.0.0.0/8, 10.1.0.0/16, 10.0.0.1, 192.168.0.0/24, 'fd00::/8'], notNets: [10.9.0.0/16]}\n"
	"  - action: allow\n"
	"    source: {nets: [10.0.0.0/8]}\n"
	"  - action: allow\n"
	"    source: {notNets: [10.0.0.0/8], selector: 'has(role)'}\n"
	"  egress:\n"
	"  - action: log\n"
	"    protocol: 132\n"
	"    destination: {ports: [9]}\n"
	"---\n"
	"kind: Policy\n"
	"metadata: {name: a-policy-with-a-rather-long-name-for-logging}\n"
	"spec:\n"
	"  egress:\n"
	"  - action: log\n"
	"  - action: allow\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: web-1, labels: {role: web}}\n"
	"spec: {node: node-1, hostIfname: wft0001, ipNetworks: [10.65.0.1/32, '10.65.0.1/24'], profiles: [WEB]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: db-1, labels: {role: db}}\n"
	"spec: {node: node-2, hostIfname: wft0002, ipNetworks: [10.65.0.2/32, 'fd00::5/128']}\n";

static void test_fields(void)
{
	struct weft_acl_program *p = compile_yaml(fields_yaml, "node-1");
	_cleanup_free_ char *wgi = hashed("wgi", "all-fields"), *wge = hashed("wge", "all-fields");
	_cleanup_free_ char *wge_long = hashed("wge", "a-policy-with-a-rather-long-name-for-logging");
	const struct weft_acl_chain *c;
	const struct weft_acl_endpoint *e;

	if (!p)
		return;
	check_invariants(p);
	e = weft_acl_program_endpoint(p, "wft0001");
	/* The two policies in order, each in the directions of its types (the
	 * long one's types default to Ingress and Egress). */
	CHECK(e && e->n_in_policies == 2 && streq(e->in_policies[0], wgi));
	CHECK(e && e->n_out_policies == 2 && streq(e->out_policies[0], wge) && streq(e->out_policies[1], wge_long));
	/* A missing profile gives no chain. */
	CHECK(e && e->n_in_profiles == 0);
	/* Addresses are host addresses, deduplicated. */
	CHECK(e && e->n_addrs == 1);

	c = weft_acl_program_chain(p, wgi);
	CHECK(c != NULL);
	if (!c) {
		weft_acl_program_free(p);
		return;
	}
	CHECK_STREQ(c->origin, "policy all-fields ingress");
	/* rule 1: one rule (no addresses), ports sorted and merged */
	{
		const struct weft_acl_rule *r = &c->rules[0];
		_cleanup_free_ char *sp = ports_str(r->sports, r->n_sports), *dp = ports_str(r->dports, r->n_dports);
		_cleanup_free_ char *nsp = ports_str(r->not_sports, r->n_not_sports);
		_cleanup_free_ char *ndp = ports_str(r->not_dports, r->n_not_dports);
		CHECK(r->action == WEFT_ACL_DENY && r->family == 0 && r->proto == 6);
		CHECK_STREQ(sp, "22:23,1000:2002");
		CHECK_STREQ(nsp, "1999");
		CHECK_STREQ(dp, "80:81,443,8000:8090");
		CHECK_STREQ(ndp, "8005");
		CHECK_STREQ(r->origin, "policy all-fields ingress rule 1");
	}
	/* rule 2: icmp is IPv4 only */
	CHECK(c->rules[1].family == AF_INET && c->rules[1].proto == 1 && c->rules[1].icmp_type == 8 &&
	      c->rules[1].icmp_code == 0 && c->rules[1].not_icmp_type == -1);
	/* rule 3: icmpv6 IPv6 only, notICMP without code */
	CHECK(c->rules[2].family == AF_INET6 && c->rules[2].proto == 58 && c->rules[2].icmp_type == -1 &&
	      c->rules[2].not_icmp_type == 128 && c->rules[2].not_icmp_code == -1);
	/* rule 4: log, notProtocol, ipVersion 6 */
	CHECK(c->rules[3].action == WEFT_ACL_LOG && c->rules[3].family == AF_INET6 && c->rules[3].proto == -1 &&
	      c->rules[3].not_proto == 17);
	CHECK_STREQ(c->rules[3].log_prefix, "weft G all-fields i4 ");
	/* rule 5: pass with negations, split per family; nets normalized */
	{
		const struct weft_acl_rule *r4 = &c->rules[4], *r6 = &c->rules[5];
		const struct weft_acl_set *s;
		CHECK(r4->action == WEFT_ACL_PASS && r4->family == AF_INET && r4->n_addrs == 4);
		CHECK(r6->action == WEFT_ACL_PASS && r6->family == AF_INET6 && r6->n_addrs == 3);
		CHECK(r4->addrs[0].src && r4->addrs[0].negate && startswith(r4->addrs[0].set, "wt4-"));
		CHECK(r4->addrs[1].src && r4->addrs[1].negate && startswith(r4->addrs[1].set, "ws4-"));
		CHECK(!r4->addrs[2].src && !r4->addrs[2].negate && startswith(r4->addrs[2].set, "wn4-"));
		CHECK(!r4->addrs[3].src && r4->addrs[3].negate && startswith(r4->addrs[3].set, "wn4-"));
		s = weft_acl_program_set(p, r4->addrs[2].set);
		CHECK(s && streq(s->origin, "nets 10.0.0.0/8,192.168.0.0/24") && s->n_elems == 2);
		s = weft_acl_program_set(p, r6->addrs[2].set);
		CHECK(s && streq(s->origin, "nets fd00::/8") && s->n_elems == 1);
		/* notNets without IPv6 addresses: no condition for IPv6 */
		CHECK(!r6->addrs[2].negate);
		s = weft_acl_program_set(p, r4->addrs[1].set);
		CHECK(s && streq(s->origin, "selector role == 'db'"));
		if (s) {
			_cleanup_free_ char *m = cidrs_str(s->elems, s->n_elems);
			CHECK_STREQ(m, "10.65.0.2/32");
		}
		s = weft_acl_program_set(p, r6->addrs[1].set);
		if (s) {
			_cleanup_free_ char *m = cidrs_str(s->elems, s->n_elems);
			CHECK_STREQ(m, "fd00::5/128");
		}
		/* The tag nobody carries: an empty set. */
		s = weft_acl_program_set(p, r4->addrs[0].set);
		CHECK(s && s->n_elems == 0 && streq(s->origin, "tag WEB"));
	}
	/* rule 6: IPv4 nets only: no IPv6 rule at all */
	CHECK(c->rules[6].family == AF_INET && streq(c->rules[6].origin, "policy all-fields ingress rule 6"));
	/* rule 7: notNets v4 + selector: both families, v6 without notNets */
	CHECK(c->rules[7].family == AF_INET && c->rules[7].n_addrs == 2);
	CHECK(c->rules[8].family == AF_INET6 && c->rules[8].n_addrs == 1 &&
	      startswith(c->rules[8].addrs[0].set, "ws6-"));
	CHECK_EQ_INT(c->n_rules, 9);

	c = weft_acl_program_chain(p, wge);
	CHECK(c && c->n_rules == 1 && c->rules[0].proto == 132 && c->rules[0].n_dports == 1);
	CHECK(c && c->rules[0].log_prefix && streq(c->rules[0].log_prefix, "weft G all-fields e1 "));
	c = weft_acl_program_chain(p, wge_long);
	CHECK(c && c->n_rules == 2 && c->rules[0].log_prefix);
	if (c && c->rules[0].log_prefix) {
		CHECK(strlen(c->rules[0].log_prefix) <= WEFT_ACL_LOG_PREFIX_MAX);
		CHECK(startswith(c->rules[0].log_prefix, "weft G a-policy-with"));
		CHECK(strstr(c->rules[0].log_prefix, "~ e1 ") != NULL);
	}
	weft_acl_program_free(p);
}

static const char order_yaml[] =
	"kind: Policy\n"
	"metadata: {name: p10}\n"
	"spec: {order: 10, selector: \"role == 'web'\", ingress: [{action: allow}]}\n"
	"---\n"
	"kind: Policy\n"
	"metadata: {name: p5b}\n"
	"spec: {order: 5, ingress: [{action: allow}]}\n"
	"---\n"
	"kind: Policy\n"
	"metadata: {name: p5a}\n"
	"spec: {order: 5, ingress: [{action: allow}]}\n"
	"---\n"
	"kind: Policy\n"
	"metadata: {name: none-b}\n"
	"spec: {ingress: [{action: allow}]}\n"
	"---\n"
	"kind: Policy\n"
	"metadata: {name: none-a}\n"
	"spec: {selector: 'has(role)', ingress: [{action: allow}]}\n"
	"---\n"
	"kind: Policy\n"
	"metadata: {name: p1-db}\n"
	"spec: {order: 1, selector: \"role == 'db'\", ingress: [{action: allow}]}\n"
	"---\n"
	"kind: Policy\n"
	"metadata: {name: p2-egress}\n"
	"spec: {order: 2.5, types: [Egress]}\n"
	"---\n"
	"kind: Profile\n"
	"metadata: {name: app}\n"
	"spec: {labelsToApply: {role: web, tier: fe}}\n"
	"---\n"
	"kind: Profile\n"
	"metadata: {name: other}\n"
	"spec: {labelsToApply: {tier: be}}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: a}\n"
	"spec: {node: n1, hostIfname: wfta, ipNetworks: [10.0.0.1/32], profiles: [NOPE, app, other]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: b, labels: {role: db}}\n"
	"spec: {node: n1, hostIfname: wftb, ipNetworks: [10.0.0.2/32], profiles: [app]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: c}\n"
	"spec: {node: n1, hostIfname: wftc, ipNetworks: [10.0.0.3/32]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: mv, annotations: {weft.io/mode: macvlan}}\n"
	"spec: {node: n1, hostIfname: wftm, ipNetworks: [10.0.0.4/32]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: noif}\n"
	"spec: {node: n1, ipNetworks: [10.0.0.5/32]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: dup1}\n"
	"spec: {node: n1, hostIfname: wftd, ipNetworks: [10.0.0.6/32]}\n"
	"---\n"
	"kind: Endpoint\n"
	"metadata: {name: dup2}\n"
	"spec: {node: n1, hostIfname: wftd, ipNetworks: [10.0.0.7/32]}\n";

static void check_policies(const struct weft_acl_program *p, const char *ifname, const char *want_in, const char *want_out)
{
	const struct weft_acl_endpoint *e = weft_acl_program_endpoint(p, ifname);
	struct weft_buf in = {0}, out = {0};

	CHECK(e != NULL);
	if (!e)
		return;
	for (size_t i = 0; i < e->n_in_policies; i++) {
		const struct weft_acl_chain *c = weft_acl_program_chain(p, e->in_policies[i]);
		weft_buf_printf(&in, "%s%s", i ? " " : "", c ? c->origin + strlen("policy ") : "?");
	}
	for (size_t i = 0; i < e->n_out_policies; i++) {
		const struct weft_acl_chain *c = weft_acl_program_chain(p, e->out_policies[i]);
		weft_buf_printf(&out, "%s%s", i ? " " : "", c ? c->origin + strlen("policy ") : "?");
	}
	CHECK_STREQ(in.data ? in.data : "", want_in);
	CHECK_STREQ(out.data ? out.data : "", want_out);
	weft_buf_free(&in);
	weft_buf_free(&out);
}

static void test_order_and_labels(void)
{
	struct weft_acl_program *p = compile_yaml(order_yaml, "n1");
	_cleanup_free_ char *app_in = hashed("wpi", "app"), *other_in = hashed("wpi", "other");
	const struct weft_acl_endpoint *e;

	if (!p)
		return;
	check_invariants(p);
	/* Not the macvlan one, not the one without interface, neither of the
	 * two claiming wftd. */
	CHECK_EQ_INT(p->n_endpoints, 3);
	CHECK(weft_acl_program_endpoint(p, "wftm") == NULL);
	CHECK(weft_acl_program_endpoint(p, "wftd") == NULL);
	/* a: role=web from profile app: p5a p5b p10 none-a none-b */
	check_policies(p, "wfta", "p5a ingress p5b ingress p10 ingress none-a ingress none-b ingress",
		       "p2-egress egress");
	/* b: its own role=db wins over app's role=web */
	check_policies(p, "wftb", "p1-db ingress p5a ingress p5b ingress none-a ingress none-b ingress",
		       "p2-egress egress");
	/* c: no labels */
	check_policies(p, "wftc", "p5a ingress p5b ingress none-b ingress", "p2-egress egress");
	e = weft_acl_program_endpoint(p, "wfta");
	/* Profiles in the endpoint's order, the missing one skipped. */
	CHECK(e && e->n_in_profiles == 2 && streq(e->in_profiles[0], app_in) && streq(e->in_profiles[1], other_in));
	/* The Egress-only policy has an empty egress chain (it still ends the
	 * policies with a deny). */
	{
		_cleanup_free_ char *n = hashed("wge", "p2-egress");
		const struct weft_acl_chain *c = weft_acl_program_chain(p, n);
		CHECK(c && c->n_rules == 0 && !c->ingress && c->kind == WEFT_ACL_CHAIN_POLICY);
	}
	weft_acl_program_free(p);
}

/* Shuffle resources; compile must not care. */
static void test_determinism(void)
{
	const char *texts[] = {classic, fields_yaml, order_yaml};

	for (size_t t = 0; t < ARRAY_SIZE(texts); t++) {
		size_t n = 0;
		struct weft_resource *rs = parse(texts[t], &n);
		struct weft_acl_program *p;
		char *first = NULL;
		unsigned seed = 12345;

		if (!rs)
			continue;
		for (int round = 0; round < 6; round++) {
			if (round == 1) {
				for (size_t i = 0; i < n / 2; i++) {
					struct weft_resource x = rs[i];
					rs[i] = rs[n - 1 - i];
					rs[n - 1 - i] = x;
				}
			} else if (round > 1) {
				for (size_t i = n; i > 1; i--) {
					size_t j;
					struct weft_resource x;
					seed = seed * 1103515245 + 12345;
					j = (seed >> 8) % i;
					x = rs[i - 1];
					rs[i - 1] = rs[j];
					rs[j] = x;
				}
			}
			p = compile_res(rs, n, t == 2 ? "n1" : "node-1");
			if (p) {
				char *d = dump(p);
				if (!first)
					first = d;
				else {
					CHECK_STREQ(d, first);
					free(d);
				}
			}
			weft_acl_program_free(p);
		}
		free(first);
		weft_resources_free(rs, n);
	}
}

static int compile_bad(const char *yaml, char **err)
{
	size_t n = 0;
	struct weft_resource *rs = parse(yaml, &n);
	struct weft_acl_program *p = NULL;
	int r;

	*err = NULL;
	if (!rs)
		return 0;
	/* Break the stored data behind the validator's back. */
	for (size_t i = 0; i < n; i++) {
		cJSON *spec = cJSON_GetObjectItemCaseSensitive(rs[i].doc, "spec");
		cJSON *x = cJSON_GetObjectItemCaseSensitive(spec, "selector");
		cJSON *in = cJSON_GetObjectItemCaseSensitive(spec, "inboundRules");
		if (x)
			cJSON_SetValuestring(x, "role = 'db'");
		if (in) {
			cJSON *src = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(in, 1), "source");
			if (src)
				cJSON_ReplaceItemInObjectCaseSensitive(src, "selector", cJSON_CreateString("has("));
		}
	}
	r = weft_acl_compile(rs, n, NULL, &p, err);
	CHECK(p == NULL);
	weft_resources_free(rs, n);
	return r;
}

static void test_bad_data(void)
{
	char *err = NULL;
	int r;

	r = compile_bad("kind: Policy\nmetadata: {name: p}\nspec: {selector: \"role == 'db'\"}\n", &err);
	CHECK_EQ_INT(r, -EINVAL);
	CHECK(err && strstr(err, "Policy p: spec.selector: ") && strstr(err, "role = 'db'"));
	if (err)
		fprintf(stderr, "  (%s)\n", err);
	free(err);

	r = compile_bad("kind: Profile\nmetadata: {name: WEB}\nspec:\n  inboundRules:\n  - action: allow\n"
			"  - action: allow\n    source: {selector: 'has(x)'}\n",
			&err);
	CHECK_EQ_INT(r, -EINVAL);
	CHECK(err && strstr(err, "Profile WEB: spec.inboundRules[1].source.selector: "));
	if (err)
		fprintf(stderr, "  (%s)\n", err);
	free(err);

	/* pass in a profile; an unknown field; a bad port; built by hand */
	{
		const char *docs[] = {
			"{\"kind\":\"Profile\",\"metadata\":{\"name\":\"X\"},\"spec\":{\"inboundRules\":[{\"action\":\"pass\"}]}}",
			"{\"kind\":\"Profile\",\"metadata\":{\"name\":\"X\"},\"spec\":{\"outboundRules\":[{\"action\":\"allow\",\"colour\":1}]}}",
			"{\"kind\":\"Policy\",\"metadata\":{\"name\":\"x\"},\"spec\":{\"ingress\":[{\"action\":\"allow\",\"protocol\":\"tcp\",\"destination\":{\"ports\":[\"9:1\"]}}]}}",
			"{\"kind\":\"Endpoint\",\"metadata\":{\"name\":\"e\"},\"spec\":{\"node\":\"n\",\"ipNetworks\":[\"nope\"]}}",
			"{\"kind\":\"Policy\",\"metadata\":{\"name\":\"x\"},\"spec\":{\"doNotTrack\":true}}",
		};
		const char *want[] = {
			"Profile X: spec.inboundRules[0].action: ",
			"Profile X: spec.outboundRules[0].colour: unknown field",
			"Policy x: spec.ingress[0].destination.ports[0]: ",
			"Endpoint e: spec.ipNetworks[0]: ",
			"Policy x: spec.doNotTrack: unknown field",
		};
		const enum weft_kind kinds[] = {WEFT_KIND_PROFILE, WEFT_KIND_PROFILE, WEFT_KIND_POLICY, WEFT_KIND_ENDPOINT,
						WEFT_KIND_POLICY};
		for (size_t i = 0; i < ARRAY_SIZE(docs); i++) {
			struct weft_resource res = {.kind = kinds[i], .name = NULL, .doc = cJSON_Parse(docs[i])};
			struct weft_acl_program *p = NULL;
			r = weft_acl_compile(&res, 1, NULL, &p, &err);
			CHECK_EQ_INT(r, -EINVAL);
			CHECK(err && startswith(err, want[i]));
			if (err && !startswith(err, want[i]))
				fprintf(stderr, "  got: %s\n", err);
			free(err);
			err = NULL;
			cJSON_Delete(res.doc);
		}
	}

	/* Two resources with one name: refused whatever the order. */
	{
		size_t n = 0;
		struct weft_resource *rs = parse(classic, &n), two[2];
		struct weft_acl_program *p = NULL;
		if (rs) {
			two[0] = rs[0];
			two[1] = rs[0];
			r = weft_acl_compile(two, 2, NULL, &p, &err);
			CHECK_EQ_INT(r, -EINVAL);
			CHECK(err && strstr(err, "Profile WEB"));
			free(err);
		}
		weft_resources_free(rs, n);
	}
}

static void test_options(void)
{
	const struct weft_acl_failsafe fs[] = {{IPPROTO_UDP, 53}, {IPPROTO_TCP, 22}, {IPPROTO_UDP, 53}};
	struct weft_acl_options opt = {.node = "node-1", .failsafe = fs, .n_failsafe = ARRAY_SIZE(fs)};
	struct weft_acl_program *p = NULL;
	size_t n = 0;
	struct weft_resource *rs = parse(classic, &n);

	if (!rs)
		return;
	CHECK_EQ_INT(weft_acl_compile(rs, n, &opt, &p, NULL), 0);
	CHECK(p && p->n_failsafe == 2 && p->failsafe[0].proto == IPPROTO_TCP && p->failsafe[1].port == 53);
	weft_acl_program_free(p);
	/* Other kinds are ignored. */
	{
		struct weft_resource *rs2 = NULL;
		size_t n2 = 0;
		const char *pool = "kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/16}\n";
		CHECK_EQ_INT(weft_manifest_parse(pool, strlen(pool), &rs2, &n2, NULL), 0);
		p = NULL;
		CHECK_EQ_INT(weft_acl_compile(rs2, n2, NULL, &p, NULL), 0);
		CHECK(p && p->n_endpoints == 0 && p->n_sets == 0);
		weft_acl_program_free(p);
		weft_resources_free(rs2, n2);
	}
	weft_resources_free(rs, n);
}

/* sets_only: the sets of a full compile, by origin, rebuilt from the
 * Profiles and Endpoints alone (no rule read, Policies ignored): the same
 * names and members for tag and selector sets, no nets set, no chain, no
 * endpoint entry. */
static void test_sets_only(void)
{
	static const char extra[] =
		"---\n"
		"kind: Policy\n"
		"metadata: {name: from-db}\n"
		"spec: {selector: \"role == 'web'\", ingress: [{action: allow, source: {selector: \"tier == 'be'\"}}, "
		"{action: deny, source: {nets: [192.168.0.0/16]}}]}\n"
		"---\n"
		"kind: Profile\n"
		"metadata: {name: BE}\n"
		"spec: {labelsToApply: {tier: be}}\n"
		"---\n"
		"kind: Endpoint\n"
		"metadata: {name: be-2}\n"
		"spec: {node: node-2, ipNetworks: [10.65.1.9/32, 'fd00::9/128'], profiles: [BE, WEB]}\n";
	_cleanup_free_ char *yaml = wasprintf("%s%s", classic, extra);
	size_t n = 0, k = 0;
	struct weft_resource *rs = parse(yaml, &n);
	struct weft_acl_program *full, *so = NULL;
	struct weft_acl_options opt = {.node = "node-1", .sets_only = true};
	size_t nsel = 0, ntag = 0;

	if (!rs)
		return;
	full = compile_res(rs, n, "node-1");
	opt.only_sets = full->sets;
	opt.n_only_sets = full->n_sets;
	/* The Policies left out: sets_only reads none. */
	struct weft_resource *in = wcalloc(n + 1, sizeof(*in));
	for (size_t i = 0; i < n; i++)
		if (rs[i].kind != WEFT_KIND_POLICY)
			in[k++] = rs[i];
	CHECK_EQ_INT(weft_acl_compile(in, k, &opt, &so, NULL), 0);
	if (!so)
		goto out;
	CHECK_EQ_INT(so->n_chains, 0);
	CHECK_EQ_INT(so->n_endpoints, 0);
	for (size_t i = 0; i < full->n_sets; i++) {
		const struct weft_acl_set *f = &full->sets[i];
		const struct weft_acl_set *o = weft_acl_program_set(so, f->name);
		bool nets = startswith(f->origin, "nets ");

		ntag += startswith(f->origin, "tag ");
		nsel += startswith(f->origin, "selector ");
		if (nets) {
			CHECK(o == NULL);
			continue;
		}
		CHECK(o != NULL);
		if (!o)
			continue;
		CHECK_STREQ(o->origin, f->origin);
		CHECK_EQ_INT(o->family, f->family);
		CHECK_EQ_INT(o->n_elems, f->n_elems);
		for (size_t e = 0; e < f->n_elems && e < o->n_elems; e++)
			CHECK(weft_cidr_covers(&o->elems[e], &f->elems[e]) && weft_cidr_covers(&f->elems[e], &o->elems[e]));
	}
	/* The example has both kinds, and members in both families. */
	CHECK(ntag >= 2);
	CHECK(nsel >= 1);
	CHECK_EQ_INT(so->n_sets, full->n_sets - (full->n_sets - ntag - nsel));
out:
	free(in);
	weft_acl_program_free(so);
	weft_acl_program_free(full);
	weft_resources_free(rs, n);
}

/* Scale: 100,000 endpoints (1,000 on this node), 10 profiles of 1,000 rules
 * each, every profile carrying the tag ALL (100,000 members). Built as
 * cJSON directly: the manifest reader is not what is measured. */
static void test_scale(void)
{
	const size_t n_eps = 100000, n_local = 1000, n_prof = 10, n_rules = 1000;
	size_t n = n_eps + n_prof, k = 0;
	struct weft_resource *rs = wcalloc(n, sizeof(*rs));
	struct weft_acl_options opt = {.node = "local"};
	struct weft_acl_program *p = NULL;
	char *err = NULL;
	int64_t t0, t1;
	int r;

	for (size_t i = 0; i < n_prof; i++) {
		cJSON *doc = cJSON_CreateObject(), *md, *spec, *tags, *in, *out;
		char name[32];

		snprintf(name, sizeof(name), "P%zu", i);
		cJSON_AddStringToObject(doc, "kind", "Profile");
		md = cJSON_AddObjectToObject(doc, "metadata");
		cJSON_AddStringToObject(md, "name", name);
		spec = cJSON_AddObjectToObject(doc, "spec");
		tags = cJSON_AddArrayToObject(spec, "tags");
		cJSON_AddItemToArray(tags, cJSON_CreateString(name));
		cJSON_AddItemToArray(tags, cJSON_CreateString("ALL"));
		in = cJSON_AddArrayToObject(spec, "inboundRules");
		for (size_t j = 0; j < n_rules; j++) {
			cJSON *rule = cJSON_CreateObject(), *src, *dst, *ports;
			char tag[32];

			cJSON_AddStringToObject(rule, "action", j % 7 == 0 ? "deny" : "allow");
			cJSON_AddStringToObject(rule, "protocol", "tcp");
			src = cJSON_AddObjectToObject(rule, "source");
			snprintf(tag, sizeof(tag), "P%zu", (i + j) % n_prof);
			cJSON_AddStringToObject(src, "tag", j % 2 ? tag : "ALL");
			dst = cJSON_AddObjectToObject(rule, "destination");
			ports = cJSON_AddArrayToObject(dst, "ports");
			cJSON_AddItemToArray(ports, cJSON_CreateNumber((double)(1000 + j)));
			cJSON_AddItemToArray(in, rule);
		}
		out = cJSON_AddArrayToObject(spec, "outboundRules");
		cJSON_AddItemToArray(out, cJSON_Parse("{\"action\":\"allow\"}"));
		rs[k].kind = WEFT_KIND_PROFILE;
		rs[k].name = wstrdup(name);
		rs[k].doc = doc;
		k++;
	}
	for (size_t i = 0; i < n_eps; i++) {
		cJSON *doc = cJSON_CreateObject(), *md, *spec, *nets, *profs, *labels;
		char name[32], ifname[16], ip[32];

		snprintf(name, sizeof(name), "ep%zu", i);
		snprintf(ifname, sizeof(ifname), "wft%07zu", i);
		snprintf(ip, sizeof(ip), "10.%zu.%zu.%zu/32", i >> 16, (i >> 8) & 255, i & 255);
		cJSON_AddStringToObject(doc, "kind", "Endpoint");
		md = cJSON_AddObjectToObject(doc, "metadata");
		cJSON_AddStringToObject(md, "name", name);
		labels = cJSON_AddObjectToObject(md, "labels");
		cJSON_AddStringToObject(labels, "app", i % 3 ? "web" : "db");
		spec = cJSON_AddObjectToObject(doc, "spec");
		cJSON_AddStringToObject(spec, "node", i < n_local ? "local" : "remote");
		cJSON_AddStringToObject(spec, "hostIfname", ifname);
		nets = cJSON_AddArrayToObject(spec, "ipNetworks");
		cJSON_AddItemToArray(nets, cJSON_CreateString(ip));
		profs = cJSON_AddArrayToObject(spec, "profiles");
		for (size_t j = 0; j < 3; j++) {
			char pn[32];
			snprintf(pn, sizeof(pn), "P%zu", (i + j) % n_prof);
			cJSON_AddItemToArray(profs, cJSON_CreateString(pn));
		}
		rs[k].kind = WEFT_KIND_ENDPOINT;
		rs[k].name = wstrdup(name);
		rs[k].doc = doc;
		k++;
	}
	t0 = weft_now_ns();
	r = weft_acl_compile(rs, n, &opt, &p, &err);
	t1 = weft_now_ns();
	CHECK_EQ_INT(r, 0);
	if (r < 0)
		fprintf(stderr, "%s\n", err);
	if (p) {
		size_t members = 0;
		for (size_t i = 0; i < p->n_sets; i++)
			members += p->sets[i].n_elems;
		fprintf(stderr, "  scale: %zu resources, %zu rules -> %zu endpoints, %zu chains, %zu sets, %zu members in %.3f s\n",
			n, n_prof * n_rules, p->n_endpoints, p->n_chains, p->n_sets, members, (double)(t1 - t0) / 1e9);
		CHECK_EQ_INT(p->n_endpoints, n_local);
		CHECK_EQ_INT(p->n_chains, 2 * n_prof);
		{
			_cleanup_free_ char *all4 = hashed("wt4", "tag ALL");
			const struct weft_acl_set *s = weft_acl_program_set(p, all4);
			CHECK(s && s->n_elems == n_eps);
		}
		check_invariants(p);
	}
	/* The same with node NULL: every endpoint gets an entry. */
	opt.node = NULL;
	weft_acl_program_free(p);
	p = NULL;
	t0 = weft_now_ns();
	r = weft_acl_compile(rs, n, &opt, &p, &err);
	t1 = weft_now_ns();
	CHECK_EQ_INT(r, 0);
	if (p)
		fprintf(stderr, "  scale (all nodes): %zu endpoints in %.3f s\n", p->n_endpoints, (double)(t1 - t0) / 1e9);
	weft_acl_program_free(p);
	weft_resources_free(rs, n);
}

/* The compiler narrows selector matching with a label index built from the
 * canonical text; it must agree with matching every endpoint. */
static void test_selector_index(void)
{
	static const char *const sels[] = {
		"app == 'a'",
		"app == 'a' && tier == 'fe'",
		"tier == 'fe' && app == 'a'",
		"app == 'a' || tier == 'be'",
		"(app == 'a' || app == 'b') && tier == 'fe'",
		"!(app == 'a') && has(tier)",
		"app != 'a'",
		"note == 'x && y'",
		"note == \"it's\"",
		"app in {'a', 'b'} && note == 'a || b'",
		"has(app) && app == 'b'",
		"note == 'x && y' && app == 'c'",
		"app == 'zz'",
		"tier == 'be' || app == 'c' && note == 'x && y'",
		"all()",
	};
	static const char *const labels[][3][2] = {
		{{"app", "a"}, {"tier", "fe"}, {NULL, NULL}},
		{{"app", "a"}, {"tier", "be"}, {NULL, NULL}},
		{{"app", "b"}, {"tier", "fe"}, {"note", "a || b"}},
		{{"app", "c"}, {"note", "x && y"}, {NULL, NULL}},
		{{"note", "it's"}, {NULL, NULL}, {NULL, NULL}},
		{{NULL, NULL}, {NULL, NULL}, {NULL, NULL}},
		{{"app", "b"}, {"tier", "fe"}, {NULL, NULL}},
	};
	const size_t n_sel = ARRAY_SIZE(sels), n_ep = ARRAY_SIZE(labels);
	struct weft_resource *rs = wcalloc(n_sel + 1 + n_ep, sizeof(*rs));
	struct weft_acl_program *p;
	size_t k = 0;

	/* One policy per selector (policy selector), and one policy whose
	 * rules use them all (rule selectors). */
	for (size_t i = 0; i <= n_sel; i++) {
		cJSON *doc = cJSON_CreateObject(), *md, *spec, *in;
		char name[32];

		snprintf(name, sizeof(name), "p%02zu", i);
		cJSON_AddStringToObject(doc, "kind", "Policy");
		md = cJSON_AddObjectToObject(doc, "metadata");
		cJSON_AddStringToObject(md, "name", name);
		spec = cJSON_AddObjectToObject(doc, "spec");
		cJSON_AddNumberToObject(spec, "order", (double)i);
		cJSON_AddStringToObject(spec, "selector", i < n_sel ? sels[i] : "all()");
		in = cJSON_AddArrayToObject(spec, "ingress");
		for (size_t j = 0; i == n_sel && j < n_sel; j++) {
			cJSON *rule = cJSON_CreateObject();
			cJSON_AddStringToObject(rule, "action", "allow");
			cJSON_AddStringToObject(cJSON_AddObjectToObject(rule, "source"), "selector", sels[j]);
			cJSON_AddItemToArray(in, rule);
		}
		rs[k].kind = WEFT_KIND_POLICY;
		rs[k].name = wstrdup(name);
		rs[k++].doc = doc;
	}
	for (size_t i = 0; i < n_ep; i++) {
		cJSON *doc = cJSON_CreateObject(), *md, *spec, *lb;
		char name[32], ip[32];

		snprintf(name, sizeof(name), "e%zu", i);
		snprintf(ip, sizeof(ip), "10.0.0.%zu/32", i + 1);
		cJSON_AddStringToObject(doc, "kind", "Endpoint");
		md = cJSON_AddObjectToObject(doc, "metadata");
		cJSON_AddStringToObject(md, "name", name);
		lb = cJSON_AddObjectToObject(md, "labels");
		for (size_t j = 0; j < 3 && labels[i][j][0]; j++)
			cJSON_AddStringToObject(lb, labels[i][j][0], labels[i][j][1]);
		spec = cJSON_AddObjectToObject(doc, "spec");
		cJSON_AddStringToObject(spec, "node", "n");
		snprintf(name, sizeof(name), "wft%zu", i);
		cJSON_AddStringToObject(spec, "hostIfname", name);
		cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "ipNetworks"), cJSON_CreateString(ip));
		rs[k].kind = WEFT_KIND_ENDPOINT;
		rs[k].name = wstrdup(name);
		rs[k++].doc = doc;
	}
	p = compile_res(rs, k, NULL);
	for (size_t i = 0; p && i < n_sel; i++) {
		struct weft_selector *sel = NULL;
		_cleanup_free_ char *canon = NULL, *origin = NULL, *setname = NULL, *chain = NULL;
		const struct weft_acl_set *set;
		struct weft_buf want = {0};

		CHECK_EQ_INT(weft_selector_parse(sels[i], &sel, NULL), 0);
		canon = weft_selector_str(sel);
		origin = wasprintf("selector %s", canon);
		setname = hashed("ws4", origin);
		snprintf(origin, strlen(origin) + 1, "p%02zu", i);
		chain = hashed("wgi", origin);
		for (size_t e = 0; e < n_ep; e++) {
			struct weft_label l[3];
			struct weft_labels ls = {l, 0};
			const struct weft_acl_endpoint *ep;
			char ifname[16];
			bool has_policy = false;

			for (size_t j = 0; j < 3 && labels[e][j][0]; j++)
				l[ls.n++] = (struct weft_label){labels[e][j][0], labels[e][j][1]};
			weft_selector_labels_sort(l, ls.n);
			if (weft_selector_match(sel, &ls))
				weft_buf_printf(&want, "%s10.0.0.%zu/32", want.len ? "," : "", e + 1);
			snprintf(ifname, sizeof(ifname), "wft%zu", e);
			ep = weft_acl_program_endpoint(p, ifname);
			for (size_t j = 0; ep && j < ep->n_in_policies; j++)
				has_policy = has_policy || streq(ep->in_policies[j], chain);
			if (has_policy != weft_selector_match(sel, &ls)) {
				test_failures++;
				fprintf(stderr, "  policy selector %s on %s: %d\n", sels[i], ifname, has_policy);
			}
		}
		set = weft_acl_program_set(p, setname);
		CHECK(set != NULL);
		if (set) {
			_cleanup_free_ char *got = cidrs_str(set->elems, set->n_elems);
			if (!streq(got, want.data ? want.data : "")) {
				test_failures++;
				fprintf(stderr, "  selector %s: got [%s], want [%s]\n", sels[i], got, want.data ? want.data : "");
			}
		}
		weft_buf_free(&want);
		weft_selector_free(sel);
	}
	weft_acl_program_free(p);
	weft_resources_free(rs, k);
}

TEST_MAIN(TEST(test_classic), TEST(test_fields), TEST(test_order_and_labels), TEST(test_determinism),
	  TEST(test_bad_data), TEST(test_options),
	  TEST(test_sets_only), TEST(test_selector_index), TEST(test_scale))
