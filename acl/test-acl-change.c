/* test-acl-change.c - weft_acl_program_change(): the change between two
 * programs that differ in set membership of some host addresses and in
 * some endpoint entries. The change, applied to the old program, must give
 * the new one (checked against compiled programs, by hand and at random). */
#include "acl/acl.h"
#include "acl/test-acl-util.h"
#include "lib/test.h"

#include <sys/socket.h>

static struct weft_cidr host(const char *s)
{
	struct weft_cidr c = {0};

	if (weft_cidr_parse(s, false, &c) < 0)
		CHECK(weft_cidr_parse_host(s, &c) == 0);
	return c;
}

static void dump_strv(struct weft_buf *b, char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		weft_buf_printf(b, " %s", v[i]);
}

static void dump_endpoint(struct weft_buf *b, const struct weft_acl_endpoint *e)
{
	char *a = cidrs_str(e->addrs, e->n_addrs);

	weft_buf_printf(b, "ep %s %s [%s] mac %d %02x:%02x\n  in:", e->ifname, e->name, a, e->has_mac,
			e->has_mac ? e->mac[4] : 0, e->has_mac ? e->mac[5] : 0);
	free(a);
	dump_strv(b, e->in_policies, e->n_in_policies);
	weft_buf_printf(b, " |");
	dump_strv(b, e->in_profiles, e->n_in_profiles);
	weft_buf_printf(b, "\n  out:");
	dump_strv(b, e->out_policies, e->n_out_policies);
	weft_buf_printf(b, " |");
	dump_strv(b, e->out_profiles, e->n_out_profiles);
	weft_buf_printf(b, "\n");
}

static int ep_ptr_cmp(const void *pa, const void *pb)
{
	const struct weft_acl_endpoint *const *a = pa, *const *b = pb;

	return strcmp((*a)->ifname, (*b)->ifname);
}

/* Sets (with members) and endpoint entries: what a change can change. */
static char *dump(const struct weft_acl_program *p)
{
	struct weft_buf b = {0};
	const struct weft_acl_endpoint **eps;

	for (size_t i = 0; i < p->n_sets; i++) {
		char *e = cidrs_str(p->sets[i].elems, p->sets[i].n_elems);
		weft_buf_printf(&b, "set %s [%s]\n", p->sets[i].name, e);
		free(e);
	}
	eps = wcalloc(p->n_endpoints + 1, sizeof(*eps));
	for (size_t i = 0; i < p->n_endpoints; i++)
		eps[i] = &p->endpoints[i];
	qsort(eps, p->n_endpoints, sizeof(*eps), ep_ptr_cmp); /* by hand: maybe unsorted */
	for (size_t i = 0; i < p->n_endpoints; i++)
		dump_endpoint(&b, eps[i]);
	free(eps);
	return weft_buf_steal(&b);
}

static int cidr_cmp(const void *pa, const void *pb)
{
	const struct weft_cidr *a = pa, *b = pb;
	int r = weft_ip_cmp(&a->ip, &b->ip);

	return r ? r : (a->prefixlen < b->prefixlen ? -1 : a->prefixlen > b->prefixlen);
}

static ssize_t cidr_index(const struct weft_cidr *v, size_t n, const struct weft_cidr *x)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_cmp(&v[i], x) == 0)
			return (ssize_t)i;
	return -1;
}

/* dump() of o with change c applied, as a backend would apply it. Checks
 * the change's own rules on the way: every set and endpoint it names
 * exists, adds are absent and dels present in o, each ifname once. */
static char *dump_applied(const struct weft_acl_program *o, const struct weft_acl_change *c)
{
	struct weft_buf b = {0};
	const struct weft_acl_endpoint **eps;
	size_t n_eps = 0;

	for (size_t i = 0; i < c->n_sets; i++) {
		CHECK(weft_acl_program_set(o, c->sets[i].set) != NULL);
		CHECK(c->sets[i].n_add + c->sets[i].n_del > 0);
	}
	for (size_t i = 0; i < o->n_sets; i++) {
		const struct weft_acl_set *s = &o->sets[i];
		struct weft_cidr *v = wcalloc(s->n_elems + 64, sizeof(*v));
		size_t n = s->n_elems, cap = s->n_elems + 64;
		char *e;

		memcpy(v, s->elems, n * sizeof(*v));
		for (size_t j = 0; j < c->n_sets; j++) {
			const struct weft_acl_set_change *sc = &c->sets[j];

			if (!streq(sc->set, s->name))
				continue;
			for (size_t k = 0; k < sc->n_del; k++) {
				ssize_t at = cidr_index(v, n, &sc->del[k]);

				CHECK(sc->del[k].ip.family == s->family);
				CHECK(sc->del[k].prefixlen == weft_ip_bits(&sc->del[k].ip));
				CHECK(at >= 0);
				if (at >= 0)
					v[at] = v[--n];
			}
			for (size_t k = 0; k < sc->n_add; k++) {
				CHECK(sc->add[k].ip.family == s->family);
				CHECK(sc->add[k].prefixlen == weft_ip_bits(&sc->add[k].ip));
				CHECK(cidr_index(v, n, &sc->add[k]) < 0);
				if (n == cap)
					v = wrealloc(v, (cap *= 2) * sizeof(*v));
				v[n++] = sc->add[k];
			}
		}
		qsort(v, n, sizeof(*v), cidr_cmp);
		e = cidrs_str(v, n);
		weft_buf_printf(&b, "set %s [%s]\n", s->name, e);
		free(e);
		free(v);
	}
	eps = wcalloc(o->n_endpoints + c->n_endpoints + 1, sizeof(*eps));
	for (size_t i = 0; i < o->n_endpoints; i++) {
		bool drop = false;

		for (size_t j = 0; j < c->n_endpoints_removed; j++)
			drop = drop || streq(c->endpoints_removed[j], o->endpoints[i].ifname);
		for (size_t j = 0; j < c->n_endpoints; j++)
			drop = drop || streq(c->endpoints[j].ifname, o->endpoints[i].ifname);
		if (!drop)
			eps[n_eps++] = &o->endpoints[i];
	}
	for (size_t j = 0; j < c->n_endpoints_removed; j++) {
		CHECK(weft_acl_program_endpoint(o, c->endpoints_removed[j]) != NULL);
		for (size_t k = 0; k < c->n_endpoints; k++)
			CHECK(!streq(c->endpoints[k].ifname, c->endpoints_removed[j]));
		for (size_t k = 0; k < j; k++)
			CHECK(!streq(c->endpoints_removed[k], c->endpoints_removed[j]));
	}
	for (size_t j = 0; j < c->n_endpoints; j++) {
		for (size_t k = 0; k < j; k++)
			CHECK(!streq(c->endpoints[k].ifname, c->endpoints[j].ifname));
		eps[n_eps++] = &c->endpoints[j];
	}
	qsort(eps, n_eps, sizeof(*eps), ep_ptr_cmp);
	for (size_t i = 0; i < n_eps; i++)
		dump_endpoint(&b, eps[i]);
	free(eps);
	return weft_buf_steal(&b);
}

static size_t n_changed(const struct weft_acl_change *c)
{
	size_t n = c->n_chains + c->n_endpoints + c->n_endpoints_removed;

	for (size_t i = 0; i < c->n_sets; i++)
		n += c->sets[i].n_add + c->sets[i].n_del;
	return n;
}

/* Compute the change o -> n for addrs (comma separated) and ifnames, check
 * that it turns o into n; returns what weft_acl_program_change returned
 * and, through *changes, how many adds, dels and entries it has. */
static int check_change(const struct weft_acl_program *o, const struct weft_acl_program *n, const char *addrs,
			const char *ifnames, size_t *changes)
{
	struct weft_cidr av[32];
	char *iv[32], *tmp, *save = NULL, *tok;
	size_t na = 0, ni = 0;
	struct weft_acl_change c;
	int r;

	memset(&c, 0xa5, sizeof(c));
	tmp = wstrdup(addrs);
	for (tok = strtok_r(tmp, ",", &save); tok && na < ARRAY_SIZE(av); tok = strtok_r(NULL, ",", &save))
		av[na++] = host(tok);
	free(tmp);
	tmp = wstrdup(ifnames);
	save = NULL;
	for (tok = strtok_r(tmp, ",", &save); tok && ni < ARRAY_SIZE(iv); tok = strtok_r(NULL, ",", &save))
		iv[ni++] = tok;
	r = weft_acl_program_change(o, n, av, na, iv, ni, &c);
	if (r == 0) {
		char *want = dump(n), *got = dump_applied(o, &c);

		CHECK_STREQ(got, want);
		CHECK_EQ_INT(c.n_chains, 0);
		if (changes)
			*changes = n_changed(&c);
		free(want);
		free(got);
		weft_acl_change_clear(&c);
		CHECK(c.sets == NULL && c.n_sets == 0 && c.endpoints == NULL && c.endpoints_removed == NULL);
	} else {
		/* Outputs only on success. */
		CHECK_EQ_INT(c.n_sets, (size_t)0xa5a5a5a5a5a5a5a5ULL);
	}
	free(tmp);
	return r;
}

/* --- compiled programs ---------------------------------------------------- */

#define PROFILES                                                                                             \
	"kind: Profile\n"                                                                                    \
	"metadata: {name: WEB}\n"                                                                            \
	"spec:\n"                                                                                            \
	"  inboundRules:\n"                                                                                  \
	"  - {action: allow, source: {tag: WEB}}\n"                                                          \
	"  - {action: allow, protocol: tcp, destination: {ports: [80, 443]}}\n"                              \
	"---\n"                                                                                              \
	"kind: Profile\n"                                                                                    \
	"metadata: {name: DB}\n"                                                                             \
	"spec:\n"                                                                                            \
	"  inboundRules:\n"                                                                                  \
	"  - {action: allow, protocol: tcp, source: {tag: WEB}, destination: {ports: [5432]}}\n"             \
	"  - {action: allow, source: {nets: [10.65.0.0/16]}, destination: {ports: [9]}, protocol: udp}\n"    \
	"---\n"                                                                                              \
	"kind: Policy\n"                                                                                     \
	"metadata: {name: db-guard}\n"                                                                       \
	"spec:\n"                                                                                            \
	"  order: 10\n"                                                                                      \
	"  selector: role == 'db'\n"                                                                         \
	"  ingress:\n"                                                                                       \
	"  - {action: deny, source: {selector: zone == 'dmz'}}\n"                                            \
	"  - {action: pass}\n"

#define EP(name, labels, node, ifn, nets, mac, profs)                                                       \
	"---\nkind: Endpoint\nmetadata: {name: " name ", labels: {" labels "}}\nspec: {node: " node             \
	", hostIfname: " ifn ", ipNetworks: [" nets "]" mac ", profiles: [" profs "]}\n"

#define BASE                                                                                                 \
	PROFILES EP("web-1", "role: web", "node-1", "wft0001", "10.65.0.1/32", ", mac: 'ee:ee:ee:ee:ee:01'", "WEB") \
	EP("web-2", "role: web, zone: dmz", "node-2", "wft0002", "10.65.1.2/32, 'fd00::2/128'", "", "WEB")         \
	EP("db-1", "role: db", "node-1", "wft0003", "10.65.0.3/32", "", "DB")

static void test_compiled(void)
{
	struct weft_acl_program *o = compile_yaml(BASE, "node-1"), *n;
	size_t k = 99;

	if (!o)
		return;

	/* Nothing changed: an empty change. */
	CHECK_EQ_INT(check_change(o, o, "10.65.0.1,10.65.1.2,fd00::2", "wft0001,wft0002", &k), 0);
	CHECK_EQ_INT(k, 0);

	/* A WEB pod comes on node-2: its addresses join the WEB sets. */
	n = compile_yaml(BASE EP("web-3", "role: web", "node-2", "wft0009", "10.65.1.9/32, 'fd00::9/128'", "", "WEB"),
			 "node-1");
	CHECK_EQ_INT(check_change(o, n, "10.65.1.9,fd00::9", "wft0009", &k), 0);
	CHECK_EQ_INT(k, 2);
	/* ... and goes: the reverse change. */
	CHECK_EQ_INT(check_change(n, o, "10.65.1.9,fd00::9", "wft0009", &k), 0);
	CHECK_EQ_INT(k, 2);
	/* Duplicates in the input are one change. */
	CHECK_EQ_INT(check_change(o, n, "fd00::9,10.65.1.9,10.65.1.9,fd00::9", "wft0009,wft0009", &k), 0);
	CHECK_EQ_INT(k, 2);
	weft_acl_program_free(n);

	/* A zone change of a remote pod: the dmz selector set changes. */
	n = compile_yaml(PROFILES EP("web-1", "role: web", "node-1", "wft0001", "10.65.0.1/32", ", mac: 'ee:ee:ee:ee:ee:01'", "WEB")
				 EP("web-2", "role: web", "node-2", "wft0002", "10.65.1.2/32, 'fd00::2/128'", "", "WEB")
					 EP("db-1", "role: db", "node-1", "wft0003", "10.65.0.3/32", "", "DB"),
			 "node-1");
	CHECK_EQ_INT(check_change(o, n, "10.65.1.2,fd00::2", "wft0002", &k), 0);
	CHECK(k >= 1);
	weft_acl_program_free(n);

	/* A WEB pod comes on node-1: an endpoint entry and a member. */
	n = compile_yaml(BASE EP("web-4", "role: web", "node-1", "wft0004", "10.65.0.4/32", ", mac: 'ee:ee:ee:ee:ee:04'", "WEB"),
			 "node-1");
	CHECK_EQ_INT(check_change(o, n, "10.65.0.4", "wft0004", &k), 0);
	CHECK_EQ_INT(k, 2);
	CHECK_EQ_INT(check_change(n, o, "10.65.0.4", "wft0004", &k), 0);
	CHECK_EQ_INT(k, 2);
	weft_acl_program_free(n);

	/* web-1 moves to another address and MAC: a replaced entry, a member
	 * out and one in. */
	n = compile_yaml(PROFILES EP("web-1", "role: web", "node-1", "wft0001", "10.65.0.11/32", ", mac: 'ee:ee:ee:ee:ee:11'", "WEB")
				 EP("web-2", "role: web, zone: dmz", "node-2", "wft0002", "10.65.1.2/32, 'fd00::2/128'", "", "WEB")
					 EP("db-1", "role: db", "node-1", "wft0003", "10.65.0.3/32", "", "DB"),
			 "node-1");
	CHECK_EQ_INT(check_change(o, n, "10.65.0.1,10.65.0.11", "wft0001", &k), 0);
	CHECK_EQ_INT(k, 3);
	weft_acl_program_free(n);

	/* db-1 on another interface: one entry removed, one added. */
	n = compile_yaml(PROFILES EP("web-1", "role: web", "node-1", "wft0001", "10.65.0.1/32", ", mac: 'ee:ee:ee:ee:ee:01'", "WEB")
				 EP("web-2", "role: web, zone: dmz", "node-2", "wft0002", "10.65.1.2/32, 'fd00::2/128'", "", "WEB")
					 EP("db-1", "role: db", "node-1", "wft0013", "10.65.0.3/32", "", "DB"),
			 "node-1");
	CHECK_EQ_INT(check_change(o, n, "10.65.0.3", "wft0003,wft0013", &k), 0);
	CHECK_EQ_INT(k, 2);
	weft_acl_program_free(n);

	/* The only DB endpoint goes: its chains and sets go too: -EAGAIN. */
	n = compile_yaml(PROFILES EP("web-1", "role: web", "node-1", "wft0001", "10.65.0.1/32", ", mac: 'ee:ee:ee:ee:ee:01'", "WEB")
				 EP("web-2", "role: web, zone: dmz", "node-2", "wft0002", "10.65.1.2/32, 'fd00::2/128'", "", "WEB"),
			 "node-1");
	CHECK_EQ_INT(check_change(o, n, "10.65.0.3", "wft0003", NULL), -EAGAIN);
	CHECK_EQ_INT(check_change(n, o, "10.65.0.3", "wft0003", NULL), -EAGAIN);
	weft_acl_program_free(n);

	/* Not host addresses: -EINVAL. */
	{
		struct weft_cidr net = host("10.65.0.0/24");
		struct weft_acl_change c = {0};

		CHECK_EQ_INT(weft_acl_program_change(o, o, &net, 1, NULL, 0, &c), -EINVAL);
		CHECK_EQ_INT(weft_acl_program_change(o, o, NULL, 1, NULL, 0, &c), -EINVAL);
		weft_acl_change_clear(&c);
		weft_acl_change_clear(NULL);
	}
	weft_acl_program_free(o);
}

/* weft_acl_program_patch(): the change applied to (a second compile of)
 * the old program gives the new one; bad changes leave it alone. */
static void patch_case(const char *old_yaml, const char *new_yaml, const char *addrs, const char *ifnames)
{
	struct weft_acl_program *o = compile_yaml(old_yaml, "node-1"), *o2 = compile_yaml(old_yaml, "node-1");
	struct weft_acl_program *n = compile_yaml(new_yaml, "node-1");
	struct weft_cidr av[8];
	char *iv[8], *tmp, *tok, *save = NULL;
	size_t na = 0, ni = 0;
	struct weft_acl_change c = {0};

	if (!o || !o2 || !n)
		goto out;
	tmp = wstrdup(addrs);
	for (tok = strtok_r(tmp, ",", &save); tok && na < ARRAY_SIZE(av); tok = strtok_r(NULL, ",", &save))
		av[na++] = host(tok);
	free(tmp);
	tmp = wstrdup(ifnames);
	save = NULL;
	for (tok = strtok_r(tmp, ",", &save); tok && ni < ARRAY_SIZE(iv); tok = strtok_r(NULL, ",", &save))
		iv[ni++] = tok;
	CHECK_EQ_INT(weft_acl_program_change(o, n, av, na, iv, ni, &c), 0);
	CHECK_EQ_INT(weft_acl_program_patch(o2, &c), 0);
	{
		char *want = dump(n), *got = dump(o2);

		CHECK_STREQ(got, want);
		free(want);
		free(got);
	}
	/* Patching again changes nothing (adds of members present, removals
	 * of members absent), but endpoint removals name what is gone. */
	if (c.n_endpoints_removed == 0) {
		char *want = dump(n), *got;

		CHECK_EQ_INT(weft_acl_program_patch(o2, &c), 0);
		got = dump(o2);
		CHECK_STREQ(got, want);
		free(want);
		free(got);
	}
	free(tmp);
	weft_acl_change_clear(&c);
out:
	weft_acl_program_free(o);
	weft_acl_program_free(o2);
	weft_acl_program_free(n);
}

static void test_patch(void)
{
	struct weft_acl_program *o = compile_yaml(BASE, "node-1");
	struct weft_acl_set_change sc = {.set = "wt4-nope"};
	struct weft_acl_change c = {.sets = &sc, .n_sets = 1};
	char *gone[] = {(char *)"wftnope"};
	char *before, *after;

	/* A WEB pod comes on node-2, and goes. */
	patch_case(BASE, BASE EP("web-3", "role: web", "node-2", "wft0009", "10.65.1.9/32, 'fd00::9/128'", "", "WEB"),
		   "10.65.1.9,fd00::9", "wft0009");
	patch_case(BASE EP("web-3", "role: web", "node-2", "wft0009", "10.65.1.9/32, 'fd00::9/128'", "", "WEB"), BASE,
		   "10.65.1.9,fd00::9", "wft0009");
	/* A WEB pod comes on node-1 (an entry and a member), and goes. */
	patch_case(BASE, BASE EP("web-4", "role: web", "node-1", "wft0004", "10.65.0.4/32", ", mac: 'ee:ee:ee:ee:ee:04'", "WEB"),
		   "10.65.0.4", "wft0004");
	patch_case(BASE EP("web-4", "role: web", "node-1", "wft0004", "10.65.0.4/32", ", mac: 'ee:ee:ee:ee:ee:04'", "WEB"), BASE,
		   "10.65.0.4", "wft0004");
	/* web-1 moves to another address and MAC: a replaced entry. */
	patch_case(BASE,
		   PROFILES EP("web-1", "role: web", "node-1", "wft0001", "10.65.0.11/32", ", mac: 'ee:ee:ee:ee:ee:11'", "WEB")
			   EP("web-2", "role: web, zone: dmz", "node-2", "wft0002", "10.65.1.2/32, 'fd00::2/128'", "", "WEB")
				   EP("db-1", "role: db", "node-1", "wft0003", "10.65.0.3/32", "", "DB"),
		   "10.65.0.1,10.65.0.11", "wft0001");

	/* Bad changes: p unchanged. */
	if (!o)
		return;
	before = dump(o);
	CHECK_EQ_INT(weft_acl_program_patch(o, &c), -EINVAL);
	c = (struct weft_acl_change){.endpoints_removed = gone, .n_endpoints_removed = 1};
	CHECK_EQ_INT(weft_acl_program_patch(o, &c), -EINVAL);
	{
		struct weft_acl_chain nope = {.name = (char *)"wpi-nope", .kind = WEFT_ACL_CHAIN_PROFILE, .ingress = true};

		c = (struct weft_acl_change){.chains = &nope, .n_chains = 1};
		CHECK_EQ_INT(weft_acl_program_patch(o, &c), -EINVAL);
	}
	after = dump(o);
	CHECK_STREQ(after, before);
	free(before);
	free(after);
	weft_acl_program_free(o);
}

/* A chain's rules replaced: the patched program has the new compile's
 * rules, the other chains untouched. */
static void test_patch_chain(void)
{
	static const char rule[] = "  - {action: allow, protocol: tcp, destination: {ports: [80, 443]}}\n";
	struct weft_buf y = {0};
	const char *at = strstr(BASE, rule);
	struct weft_acl_program *o, *n;
	const struct weft_acl_chain *nc = NULL;
	struct weft_acl_change c = {0};

	CHECK(at != NULL);
	if (!at)
		return;
	weft_buf_append(&y, BASE, (size_t)(at - BASE) + strlen(rule));
	weft_buf_printf(&y, "  - {action: deny, protocol: udp, destination: {ports: [53]}}\n%s", at + strlen(rule));
	o = compile_yaml(BASE, "node-1");
	n = compile_yaml(y.data, "node-1");
	for (size_t i = 0; n && i < n->n_chains; i++)
		if (n->chains[i].origin && streq(n->chains[i].origin, "profile WEB inbound"))
			nc = &n->chains[i];
	CHECK(nc != NULL);
	if (o && nc) {
		const struct weft_acl_chain *oc = weft_acl_program_chain(o, nc->name);
		size_t before = oc ? oc->n_rules : 0;

		CHECK(oc && before + 1 == nc->n_rules);
		c.chains = nc;
		c.n_chains = 1;
		CHECK_EQ_INT(weft_acl_program_patch(o, &c), 0);
		CHECK_EQ_INT(o->n_chains, n->n_chains);
		for (size_t i = 0; i < n->n_chains && i < o->n_chains; i++) {
			CHECK_STREQ(o->chains[i].name, n->chains[i].name);
			CHECK_EQ_INT(o->chains[i].n_rules, n->chains[i].n_rules);
			for (size_t k = 0; k < n->chains[i].n_rules && k < o->chains[i].n_rules; k++)
				CHECK(weft_acl_rule_eq(&o->chains[i].rules[k], &n->chains[i].rules[k]));
		}
		oc = weft_acl_program_chain(o, nc->name);
		CHECK(oc && oc->n_rules == nc->n_rules);
	}
	weft_buf_free(&y);
	weft_acl_program_free(o);
	weft_acl_program_free(n);
}

/* --- programs by hand: prefixes, shape checks, unsorted endpoints ------------ */

static struct weft_acl_program *hand(const char *set_name, const char *elems, const char *chain, const char *eps)
{
	struct weft_acl_program *p = wcalloc(1, sizeof(*p));
	char *tmp, *save = NULL, *tok;

	p->sets = wcalloc(2, sizeof(*p->sets));
	p->sets[0].name = wstrdup(set_name);
	p->sets[0].origin = wstrdup("test");
	p->sets[0].family = AF_INET;
	p->sets[0].elems = wcalloc(16, sizeof(struct weft_cidr));
	tmp = wstrdup(elems);
	for (tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		p->sets[0].elems[p->sets[0].n_elems++] = host(tok);
	free(tmp);
	p->n_sets = 1;
	p->chains = wcalloc(1, sizeof(*p->chains));
	p->chains[0].name = wstrdup(chain);
	p->chains[0].origin = wstrdup("test");
	p->n_chains = 1;
	p->endpoints = wcalloc(8, sizeof(*p->endpoints));
	tmp = wstrdup(eps);
	save = NULL;
	for (tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct weft_acl_endpoint *e = &p->endpoints[p->n_endpoints++];
		char *eq = strchr(tok, '=');

		*eq = 0;
		e->ifname = wstrdup(tok);
		e->name = wstrdup(eq + 1);
		e->in_profiles = wcalloc(2, sizeof(char *));
		e->in_profiles[0] = wstrdup(chain);
		e->n_in_profiles = 1;
	}
	free(tmp);
	return p;
}

static void test_by_hand(void)
{
	struct weft_acl_program *o, *n;
	size_t k = 99;

	/* A prefix both hold alike: nothing to do for that set. */
	o = hand("s", "10.0.0.0/8,192.168.0.1/32", "c", "wft1=a");
	n = hand("s", "10.0.0.0/8,192.168.0.1/32", "c", "wft1=a");
	CHECK_EQ_INT(check_change(o, n, "10.1.2.3,192.168.0.9", "", &k), 0);
	CHECK_EQ_INT(k, 0);
	weft_acl_program_free(n);
	/* A prefix in one program only: not a change of host members. */
	n = hand("s", "10.1.2.3/32,192.168.0.1/32", "c", "wft1=a");
	CHECK_EQ_INT(check_change(o, n, "10.1.2.3", "", NULL), -EAGAIN);
	CHECK_EQ_INT(check_change(n, o, "10.1.2.3", "", NULL), -EAGAIN);
	weft_acl_program_free(n);
	n = hand("s", "10.0.0.0/16,192.168.0.1/32", "c", "wft1=a");
	CHECK_EQ_INT(check_change(o, n, "10.0.2.3", "", NULL), -EAGAIN);
	/* ... but for one outside both prefixes there is nothing to do (the
	 * prefixes differ, which the caller promised they do not). */
	{
		struct weft_cidr x[] = {host("192.168.0.1"), host("11.0.0.1")};
		struct weft_acl_change c = {0};

		CHECK_EQ_INT(weft_acl_program_change(o, n, x, ARRAY_SIZE(x), NULL, 0, &c), 0);
		CHECK_EQ_INT(n_changed(&c), 0);
		weft_acl_change_clear(&c);
	}
	weft_acl_program_free(n);
	/* Host members around a prefix. */
	n = hand("s", "10.0.0.0/8,192.168.0.1/32,192.168.0.2/32", "c", "wft1=a");
	CHECK_EQ_INT(check_change(o, n, "192.168.0.2,9.255.255.255,11.0.0.0", "", &k), 0);
	CHECK_EQ_INT(k, 1);
	CHECK_EQ_INT(check_change(n, o, "192.168.0.2", "", &k), 0);
	CHECK_EQ_INT(k, 1);
	weft_acl_program_free(n);
	/* Another family's address does not touch an IPv4 set. */
	n = hand("s", "10.0.0.0/8,192.168.0.1/32", "c", "wft1=a");
	CHECK_EQ_INT(check_change(o, n, "fd00::1", "", &k), 0);
	CHECK_EQ_INT(k, 0);
	weft_acl_program_free(n);

	/* Other set or chain names: -EAGAIN. */
	n = hand("t", "10.0.0.0/8,192.168.0.1/32", "c", "wft1=a");
	CHECK_EQ_INT(check_change(o, n, "192.168.0.1", "", NULL), -EAGAIN);
	weft_acl_program_free(n);
	n = hand("s", "10.0.0.0/8,192.168.0.1/32", "d", "wft1=a");
	CHECK_EQ_INT(check_change(o, n, "", "", NULL), -EAGAIN);
	weft_acl_program_free(n);
	n = hand("s", "10.0.0.0/8,192.168.0.1/32", "c", "wft1=a");
	n->chains[0].ingress = true;
	CHECK_EQ_INT(check_change(o, n, "", "", NULL), -EAGAIN);
	weft_acl_program_free(n);
	weft_acl_program_free(o);

	/* Endpoints, unsorted (by hand): found all the same. */
	o = hand("s", "", "c", "wft9=z,wft1=a,wft5=e");
	n = hand("s", "", "c", "wft5=e2,wft7=g,wft9=z");
	CHECK_EQ_INT(check_change(o, n, "", "wft1,wft5,wft7,wft9,wft3", &k), 0);
	CHECK_EQ_INT(k, 3); /* wft1 removed, wft5 replaced, wft7 added */
	{
		struct weft_acl_change c = {0};
		char *names[] = {"wft1", "wft5", "wft7", "wft9", "wft3"};

		CHECK_EQ_INT(weft_acl_program_change(o, n, NULL, 0, names, ARRAY_SIZE(names), &c), 0);
		CHECK_EQ_INT(c.n_endpoints, 2);
		CHECK_EQ_INT(c.n_endpoints_removed, 1);
		CHECK(c.n_endpoints_removed == 1 && streq(c.endpoints_removed[0], "wft1"));
		CHECK(c.n_endpoints == 2 && streq(c.endpoints[0].ifname, "wft5") && streq(c.endpoints[0].name, "e2"));
		CHECK(c.n_endpoints == 2 && streq(c.endpoints[1].ifname, "wft7"));
		weft_acl_change_clear(&c);
	}
	weft_acl_program_free(n);
	/* Each field of an entry counts. */
	n = hand("s", "", "c", "wft9=z,wft1=a,wft5=e");
	n->endpoints[1].has_mac = true;
	CHECK_EQ_INT(check_change(o, n, "", "wft1", &k), 0);
	CHECK_EQ_INT(k, 1);
	n->endpoints[1].has_mac = false;
	n->endpoints[1].addrs = wcalloc(1, sizeof(struct weft_cidr));
	n->endpoints[1].addrs[0] = host("10.0.0.1");
	n->endpoints[1].n_addrs = 1;
	CHECK_EQ_INT(check_change(o, n, "", "wft1", &k), 0);
	CHECK_EQ_INT(k, 1);
	n->endpoints[1].n_addrs = 0;
	n->endpoints[1].out_policies = wcalloc(2, sizeof(char *));
	n->endpoints[1].out_policies[0] = wstrdup("c");
	n->endpoints[1].n_out_policies = 1;
	CHECK_EQ_INT(check_change(o, n, "", "wft1", &k), 0);
	CHECK_EQ_INT(k, 1);
	weft_acl_program_free(n);
	weft_acl_program_free(o);
}

/* --- at random ---------------------------------------------------------------- */

struct rep {
	bool live;
	int node;   /* 1 or 2 */
	int ifn;    /* wft%04d */
	int a4, a6; /* 10.65.<node>.<a4>; fd00::<a6> or 0 */
	int role, zone, mac, profs;
};

static unsigned rnd(unsigned *seed, unsigned n)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 8) % n;
}

static void rep_yaml(struct weft_buf *b, const struct rep *e, size_t i)
{
	static const char *const roles[] = {"web", "db", "x"};
	static const char *const profs[] = {"", "WEB", "DB", "WEB, DB"};

	weft_buf_printf(b, "---\nkind: Endpoint\nmetadata: {name: ep-%zu, labels: {role: %s%s}}\n", i, roles[e->role],
			e->zone ? ", zone: dmz" : "");
	weft_buf_printf(b, "spec: {node: node-%d, hostIfname: wft%04d, ipNetworks: [10.65.%d.%d/32", e->node, e->ifn,
			e->node, e->a4);
	if (e->a6)
		weft_buf_printf(b, ", 'fd00::%x/128'", e->a6);
	weft_buf_printf(b, "]");
	if (e->mac)
		weft_buf_printf(b, ", mac: 'ee:ee:ee:ee:ee:%02x'", e->mac);
	weft_buf_printf(b, ", profiles: [%s]}\n", profs[e->profs]);
}

static struct weft_acl_program *rep_compile(const struct rep *v, size_t n)
{
	struct weft_buf b = {0};
	struct weft_acl_program *p;
	char *text;

	weft_buf_printf(&b, "%s", PROFILES);
	for (size_t i = 0; i < n; i++)
		if (v[i].live)
			rep_yaml(&b, &v[i], i);
	text = weft_buf_steal(&b);
	p = compile_yaml(text, "node-1");
	free(text);
	return p;
}

static void rep_addrs(struct weft_buf *b, const struct rep *e)
{
	if (!e->live)
		return;
	weft_buf_printf(b, "10.65.%d.%d,", e->node, e->a4);
	if (e->a6)
		weft_buf_printf(b, "fd00::%x,", e->a6);
}

static bool same_names(const struct weft_acl_program *o, const struct weft_acl_program *n)
{
	if (o->n_sets != n->n_sets || o->n_chains != n->n_chains)
		return false;
	for (size_t i = 0; i < o->n_sets; i++)
		if (!streq(o->sets[i].name, n->sets[i].name))
			return false;
	for (size_t i = 0; i < o->n_chains; i++)
		if (!streq(o->chains[i].name, n->chains[i].name))
			return false;
	return true;
}

static void test_random(void)
{
	struct rep v[24] = {{0}};
	unsigned seed = 4242;
	struct weft_acl_program *o;
	size_t ok = 0, again = 0;

	for (size_t i = 0; i < 16; i++)
		v[i] = (struct rep){true, 1 + (int)rnd(&seed, 2), (int)i + 1, (int)i + 1, rnd(&seed, 2) ? (int)i + 1 : 0,
				    (int)rnd(&seed, 3), (int)rnd(&seed, 2), (int)rnd(&seed, 3), (int)rnd(&seed, 4)};
	o = rep_compile(v, ARRAY_SIZE(v));
	for (int round = 0; o && round < 300; round++) {
		size_t i = rnd(&seed, ARRAY_SIZE(v));
		struct rep old = v[i];
		struct weft_buf ab = {0}, ib = {0};
		struct weft_acl_program *n;
		char *addrs, *ifs;
		size_t k;
		int r;

		switch (rnd(&seed, 6)) {
		case 0: /* comes or goes */
			v[i].live = !v[i].live;
			if (v[i].live && !v[i].ifn)
				v[i] = (struct rep){true, 1 + (int)rnd(&seed, 2), 100 + (int)i, 100 + (int)i, 0, 0, 0, 0, 1};
			break;
		case 1:
			v[i].role = (int)rnd(&seed, 3);
			v[i].zone = (int)rnd(&seed, 2);
			break;
		case 2:
			v[i].profs = (int)rnd(&seed, 4);
			break;
		case 3: /* another address */
			v[i].a4 = 150 + (int)rnd(&seed, 100);
			v[i].a6 = rnd(&seed, 2) ? 0x100 + (int)rnd(&seed, 100) : 0;
			break;
		case 4:
			v[i].node = 3 - v[i].node;
			break;
		default:
			v[i].mac = (int)rnd(&seed, 3);
			v[i].ifn = 200 + (int)rnd(&seed, 4); /* may clash: no entry then */
			break;
		}
		rep_addrs(&ab, &old);
		rep_addrs(&ab, &v[i]);
		weft_buf_printf(&ib, "wft%04d,wft%04d", old.ifn, v[i].ifn);
		addrs = weft_buf_steal(&ab);
		ifs = weft_buf_steal(&ib);
		n = rep_compile(v, ARRAY_SIZE(v));
		if (!n) {
			free(addrs);
			free(ifs);
			break;
		}
		/* A clashing interface changes another endpoint's entry too:
		 * name every interface in play then. */
		if (v[i].ifn >= 200) {
			char *all = wasprintf("%s,wft0200,wft0201,wft0202,wft0203", ifs);
			free(ifs);
			ifs = all;
		}
		r = check_change(o, n, addrs, ifs, &k);
		if (r == 0)
			ok++;
		else if (r == -EAGAIN) {
			again++;
			CHECK(!same_names(o, n));
		} else {
			CHECK_EQ_INT(r, 0);
		}
		free(addrs);
		free(ifs);
		weft_acl_program_free(o);
		o = n;
	}
	weft_acl_program_free(o);
	fprintf(stderr, "random: %zu changes, %zu -EAGAIN\n", ok, again);
	CHECK(ok > 150);
}

/* Mixed runs (weft_acl_run_end(..., true), weft_acl_run_ports()): at
 * random, rules alike but for their ports (lists and ranges, overlapping)
 * and actions; every port near them must go to the action of the first
 * rule of its run that has it (or to none), the lists sorted, disjoint,
 * adjacent ranges joined; runs stop at a rule unlike the others and at a
 * log rule. */
static void test_run_ports(void)
{
	static const enum weft_acl_action acts[] = {WEFT_ACL_ALLOW, WEFT_ACL_DENY, WEFT_ACL_PASS};
	unsigned seed = 77;
	size_t runs = 0, resolved = 0;

	for (int round = 0; round < 400; round++) {
		struct weft_acl_rule rules[40] = {{0}};
		struct weft_acl_portrange pr[40][4];
		size_t n = 2 + rnd(&seed, 39), base = round % 5 == 0 ? 0 : rnd(&seed, 2) ? 65400 : 1000;

		for (size_t i = 0; i < n; i++) {
			struct weft_acl_rule *r = &rules[i];

			r->action = acts[rnd(&seed, round % 3 + 1)];
			r->proto = rnd(&seed, 25) ? 6 : 17; /* now and then unlike the rest */
			r->not_proto = r->icmp_type = r->icmp_code = r->not_icmp_type = r->not_icmp_code = -1;
			r->dports = pr[i];
			r->n_dports = 1 + rnd(&seed, 4);
			for (size_t d = 0; d < r->n_dports; d++) {
				uint32_t lo = (uint32_t)base + rnd(&seed, 120), hi = lo + (rnd(&seed, 3) ? 0 : rnd(&seed, 20));

				pr[i][d] = (struct weft_acl_portrange){(uint16_t)lo, (uint16_t)(hi > 65535 ? 65535 : hi)};
			}
			if (!rnd(&seed, 30))
				r->action = WEFT_ACL_LOG;
		}
		for (size_t i = 0; i < n;) {
			size_t j = weft_acl_run_end(rules, n, i, WEFT_ACL_RUN_MAX, true);
			struct weft_acl_portrange *out[WEFT_ACL_RUN_ACTIONS];
			size_t no[WEFT_ACL_RUN_ACTIONS];

			size_t j1 = weft_acl_run_end(rules, n, i, WEFT_ACL_RUN_MAX, false);

			CHECK(j > i && j <= n);
			for (size_t k = i + 1; k < j; k++) /* alike but for ports and action */
				CHECK(rules[k].proto == rules[i].proto && rules[k].action != WEFT_ACL_LOG);
			/* Not mixed: it stops where the action changes, else
			 * where the mixed run does. */
			CHECK(j1 > i && j1 <= j);
			for (size_t k = i + 1; k < j1; k++)
				CHECK(rules[k].action == rules[i].action);
			if (j1 < j)
				CHECK(rules[j1].action != rules[i].action);
			if (j == i + 1) {
				i = j;
				continue;
			}
			runs++;
			weft_acl_run_ports(rules, i, j, out, no);
			CHECK_EQ_INT(no[WEFT_ACL_LOG], 0);
			for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++)
				for (size_t x = 0; x < no[a]; x++) {
					CHECK(out[a][x].lo <= out[a][x].hi);
					if (x)
						CHECK((uint32_t)out[a][x - 1].hi + 1 < out[a][x].lo);
				}
			for (uint32_t port = (uint32_t)base; port < base + 140 && port <= 65535; port++) {
				int want = -1, got = -1;

				for (size_t k = i; k < j && want < 0; k++)
					for (size_t d = 0; d < rules[k].n_dports; d++)
						if (port >= rules[k].dports[d].lo && port <= rules[k].dports[d].hi) {
							want = (int)rules[k].action;
							break;
						}
				for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++)
					for (size_t x = 0; x < no[a]; x++)
						if (port >= out[a][x].lo && port <= out[a][x].hi) {
							CHECK(got < 0); /* one action per port */
							got = a;
						}
				if (want != got)
					fprintf(stderr, "round %d run %zu..%zu port %u: want %d, got %d\n", round, i, j, port,
						want, got);
				CHECK_EQ_INT(got, want);
				if (want >= 0 && want != (int)rules[i].action)
					resolved++;
			}
			for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++)
				free(out[a]);
			i = j;
		}
	}
	fprintf(stderr, "run ports: %zu runs, %zu ports decided by a later action\n", runs, resolved);
	CHECK(runs > 400 && resolved > 1000);

	/* A long run of many overlapping ranges (the resolution costs
	 * O(n log n): this must be quick), checked port by port. */
	{
		size_t n = 1000, per = 15;
		struct weft_acl_rule *rules = wcalloc(n, sizeof(*rules));
		struct weft_acl_portrange *pr = wcalloc(n * per, sizeof(*pr));
		struct weft_acl_portrange *out[WEFT_ACL_RUN_ACTIONS];
		size_t no[WEFT_ACL_RUN_ACTIONS];
		int *want = wcalloc(65536, sizeof(*want));

		for (size_t i = 0; i < 65536; i++)
			want[i] = -1;
		for (size_t i = 0; i < n; i++) {
			rules[i].action = acts[rnd(&seed, 3)];
			rules[i].proto = 6;
			rules[i].not_proto = rules[i].icmp_type = rules[i].icmp_code = -1;
			rules[i].not_icmp_type = rules[i].not_icmp_code = -1;
			rules[i].dports = pr + i * per;
			rules[i].n_dports = per;
			for (size_t d = 0; d < per; d++) {
				uint32_t lo = rnd(&seed, 65536), hi = lo + rnd(&seed, 40);

				if (hi > 65535)
					hi = 65535;
				pr[i * per + d] = (struct weft_acl_portrange){(uint16_t)lo, (uint16_t)hi};
				for (uint32_t x = lo; x <= hi; x++)
					if (want[x] < 0)
						want[x] = (int)rules[i].action;
			}
		}
		weft_acl_run_ports(rules, 0, n, out, no);
		for (uint32_t port = 0; port < 65536; port++) {
			int got = -1;

			for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++) {
				size_t lo = 0, hi = no[a]; /* sorted: binary search */

				while (lo < hi) {
					size_t mid = (lo + hi) / 2;

					if (out[a][mid].hi < port)
						lo = mid + 1;
					else
						hi = mid;
				}
				if (lo < no[a] && out[a][lo].lo <= port) {
					CHECK(got < 0);
					got = a;
				}
			}
			if (got != want[port]) {
				CHECK_EQ_INT(got, want[port]);
				break;
			}
		}
		for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++)
			free(out[a]);
		free(want);
		free(pr);
		free(rules);
	}
}

/* The runs of rules[0..n) and their ids, as a string. */
static char *run_ids(const struct weft_acl_rule *rules, size_t n, size_t *nruns)
{
	struct weft_buf b = {0};

	*nruns = 0;
	weft_buf_append(&b, "", 0);
	for (size_t i = 0; i < n;) {
		size_t j = weft_acl_run_end(rules, n, i, WEFT_ACL_RUN_MAX, true);

		if (j > i + 1) {
			weft_buf_printf(&b, "%016llx ", (unsigned long long)weft_acl_run_id(rules, n, i, j, WEFT_ACL_RUN_MAX));
			(*nruns)++;
		}
		i = j;
	}
	return weft_buf_steal(&b);
}

/* weft_acl_run_id(): a rule joining a run (not at a cut) or leaving it
 * changes no run's id; a change of what a run's rules share changes it. */
static void test_run_id(void)
{
	struct weft_acl_rule rules[2001];
	struct weft_acl_portrange pr[2001];
	struct weft_acl_addr_match am[2] = {{.src = true, .set = (char *)"wt4-a"}, {.src = true, .set = (char *)"wt4-b"}};
	size_t n = 2000, runs0, runs1, moved = 0;
	char *before, *after;

	for (size_t i = 0; i < n + 1; i++) {
		rules[i] = (struct weft_acl_rule){.action = i % 3 ? WEFT_ACL_ALLOW : WEFT_ACL_DENY,
						  .proto = 6,
						  .not_proto = -1,
						  .icmp_type = -1,
						  .icmp_code = -1,
						  .not_icmp_type = -1,
						  .not_icmp_code = -1,
						  .addrs = &am[0],
						  .n_addrs = 1};
		pr[i] = (struct weft_acl_portrange){(uint16_t)(20000 + i), (uint16_t)(20000 + i)};
		rules[i].dports = &pr[i];
		rules[i].n_dports = 1;
	}
	before = run_ids(rules, n, &runs0);
	CHECK(runs0 >= 3);
	/* Insert a rule (port 30000 + k) at places until it lands inside runs. */
	for (size_t at = 7; at < n; at += 97) {
		struct weft_acl_rule ins = rules[at];
		struct weft_acl_portrange ip = {(uint16_t)(30000 + at), (uint16_t)(30000 + at)};

		ins.dports = &ip;
		memmove(&rules[at + 1], &rules[at], (n - at) * sizeof(*rules));
		rules[at] = ins;
		after = run_ids(rules, n + 1, &runs1);
		if (runs1 == runs0) { /* not a cut: every id as it was */
			CHECK_STREQ(after, before);
			moved++;
		}
		free(after);
		memmove(&rules[at], &rules[at + 1], (n - at) * sizeof(*rules));
	}
	CHECK(moved >= 10);
	/* The rules' shared conditions change: every run's id does. */
	for (size_t i = 0; i < n; i++)
		rules[i].addrs = &am[1];
	after = run_ids(rules, n, &runs1);
	CHECK_EQ_INT(runs1, runs0);
	for (char *a = before, *b = after; *a && *b; a += 17, b += 17)
		CHECK(strncmp(a, b, 16) != 0);
	free(after);
	free(before);
}

TEST_MAIN(TEST(test_compiled), TEST(test_patch), TEST(test_patch_chain), TEST(test_by_hand), TEST(test_random),
	  TEST(test_run_ports), TEST(test_run_id))
