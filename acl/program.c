/* program.c - freeing, copying and looking up parts of a compiled ACL
 * program; the change between two programs and a change applied to one. */
#include "acl/acl.h"

#include <stddef.h>

const char *weft_acl_action_str(enum weft_acl_action a)
{
	switch (a) {
	case WEFT_ACL_ALLOW:
		return "allow";
	case WEFT_ACL_DENY:
		return "deny";
	case WEFT_ACL_LOG:
		return "log";
	case WEFT_ACL_PASS:
		return "pass";
	}
	return "?";
}

void weft_acl_rule_clear(struct weft_acl_rule *r)
{
	for (size_t i = 0; i < r->n_addrs; i++)
		free(r->addrs[i].set);
	free(r->addrs);
	free(r->sports);
	free(r->not_sports);
	free(r->dports);
	free(r->not_dports);
	free(r->origin);
	free(r->log_prefix);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void weft_acl_endpoint_clear(struct weft_acl_endpoint *e)
{
	free(e->name);
	free(e->ifname);
	free(e->addrs);
	strv_free(e->in_policies, e->n_in_policies);
	strv_free(e->in_profiles, e->n_in_profiles);
	strv_free(e->out_policies, e->n_out_policies);
	strv_free(e->out_profiles, e->n_out_profiles);
	memset(e, 0, sizeof(*e));
}

void weft_acl_program_free(struct weft_acl_program *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_sets; i++) {
		free(p->sets[i].name);
		free(p->sets[i].origin);
		free(p->sets[i].elems);
	}
	free(p->sets);
	for (size_t i = 0; i < p->n_chains; i++) {
		struct weft_acl_chain *c = &p->chains[i];

		for (size_t j = 0; j < c->n_rules; j++)
			weft_acl_rule_clear(&c->rules[j]);
		free(c->rules);
		free(c->name);
		free(c->origin);
	}
	free(p->chains);
	for (size_t i = 0; i < p->n_endpoints; i++)
		weft_acl_endpoint_clear(&p->endpoints[i]);
	free(p->endpoints);
	free(p->failsafe);
	free(p);
}

/* The arrays are sorted by name, but programs built by hand in tests may
 * not be: a linear scan costs little at lookup rates (trace, diff set-up). */
const struct weft_acl_set *weft_acl_program_set(const struct weft_acl_program *p, const char *name)
{
	for (size_t i = 0; i < p->n_sets; i++)
		if (strcmp(p->sets[i].name, name) == 0)
			return &p->sets[i];
	return NULL;
}

const struct weft_acl_chain *weft_acl_program_chain(const struct weft_acl_program *p, const char *name)
{
	for (size_t i = 0; i < p->n_chains; i++)
		if (strcmp(p->chains[i].name, name) == 0)
			return &p->chains[i];
	return NULL;
}

const struct weft_acl_endpoint *weft_acl_program_endpoint(const struct weft_acl_program *p, const char *ifname)
{
	for (size_t i = 0; i < p->n_endpoints; i++)
		if (strcmp(p->endpoints[i].ifname, ifname) == 0)
			return &p->endpoints[i];
	return NULL;
}

/* --- the change between two programs (weft_acl_program_change) ------------- */

static int addr_cmp(const void *pa, const void *pb)
{
	const struct weft_cidr *a = pa, *b = pb;

	return weft_ip_cmp(&a->ip, &b->ip); /* by family first */
}

static int str_ptr_cmp(const void *pa, const void *pb)
{
	return strcmp(*(char *const *)pa, *(char *const *)pb);
}

/* Where host address x stands in set s (elements sorted by address then
 * prefix length, disjoint): 1 an element, 0 absent, -1 inside the prefix
 * element *cover. Elements are disjoint, so only the last one starting at
 * or before x can hold it. */
static int set_find(const struct weft_acl_set *s, const struct weft_cidr *x, const struct weft_cidr **cover)
{
	size_t lo = 0, hi = s->n_elems;
	const struct weft_cidr *e;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (weft_ip_cmp(&s->elems[mid].ip, &x->ip) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return 0;
	e = &s->elems[lo - 1];
	if (e->prefixlen == x->prefixlen && weft_ip_eq(&e->ip, &x->ip))
		return 1;
	if (e->prefixlen < x->prefixlen && weft_cidr_contains(e, &x->ip)) {
		*cover = e;
		return -1;
	}
	return 0;
}

static bool strv_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

bool weft_acl_endpoint_eq(const struct weft_acl_endpoint *a, const struct weft_acl_endpoint *b)
{
	if (strcmp(a->name, b->name) != 0 || strcmp(a->ifname, b->ifname) != 0 || a->n_addrs != b->n_addrs ||
	    a->has_mac != b->has_mac || (a->has_mac && memcmp(a->mac, b->mac, sizeof(a->mac)) != 0))
		return false;
	for (size_t i = 0; i < a->n_addrs; i++)
		if (a->addrs[i].prefixlen != b->addrs[i].prefixlen || !weft_ip_eq(&a->addrs[i].ip, &b->addrs[i].ip))
			return false;
	return strv_eq(a->in_policies, a->n_in_policies, b->in_policies, b->n_in_policies) &&
	       strv_eq(a->in_profiles, a->n_in_profiles, b->in_profiles, b->n_in_profiles) &&
	       strv_eq(a->out_policies, a->n_out_policies, b->out_policies, b->n_out_policies) &&
	       strv_eq(a->out_profiles, a->n_out_profiles, b->out_profiles, b->n_out_profiles);
}

static bool endpoints_sorted(const struct weft_acl_program *p)
{
	for (size_t i = 1; i < p->n_endpoints; i++)
		if (strcmp(p->endpoints[i - 1].ifname, p->endpoints[i].ifname) >= 0)
			return false;
	return true;
}

/* The index of the endpoint on ifname, or where it would go (sorted). */
static size_t ep_pos(const struct weft_acl_program *p, const char *ifname, bool *found)
{
	size_t lo = 0, hi = p->n_endpoints;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(p->endpoints[mid].ifname, ifname);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

/* The endpoint on ifname: a binary search when the array is sorted (as
 * compiled), a scan otherwise. */
static const struct weft_acl_endpoint *endpoint_find(const struct weft_acl_program *p, bool sorted, const char *ifname)
{
	bool found;
	size_t at;

	if (!sorted)
		return weft_acl_program_endpoint(p, ifname);
	at = ep_pos(p, ifname, &found);
	return found ? &p->endpoints[at] : NULL;
}

/* Same sets (name, family), chains (name, kind, direction) and failsafe
 * ports, position by position: both programs come sorted from the same
 * compiler, so anything else is a difference the change cannot carry. */
static bool same_shape(const struct weft_acl_program *o, const struct weft_acl_program *n)
{
	if (o->n_sets != n->n_sets || o->n_chains != n->n_chains || o->n_failsafe != n->n_failsafe)
		return false;
	for (size_t i = 0; i < o->n_sets; i++)
		if (o->sets[i].family != n->sets[i].family || strcmp(o->sets[i].name, n->sets[i].name) != 0)
			return false;
	for (size_t i = 0; i < o->n_chains; i++)
		if (o->chains[i].kind != n->chains[i].kind || o->chains[i].ingress != n->chains[i].ingress ||
		    strcmp(o->chains[i].name, n->chains[i].name) != 0)
			return false;
	for (size_t i = 0; i < o->n_failsafe; i++)
		if (o->failsafe[i].proto != n->failsafe[i].proto || o->failsafe[i].port != n->failsafe[i].port)
			return false;
	return true;
}

int weft_acl_program_change(const struct weft_acl_program *o, const struct weft_acl_program *n,
			    const struct weft_cidr *addrs, size_t n_addrs, char *const *ifnames, size_t n_ifnames,
			    struct weft_acl_change *out)
{
	struct weft_acl_change c = {0};
	struct weft_acl_set_change *sets;
	struct weft_acl_endpoint *eps;
	char **removed;
	struct weft_cidr *v = NULL, *add = NULL, *del = NULL;
	char **names = NULL;
	size_t k = 0, n_add, n_del;
	bool o_sorted, n_sorted;
	int r = 0;

	if (!o || !n || !out || (n_addrs && !addrs) || (n_ifnames && !ifnames))
		return -EINVAL;
	if (!same_shape(o, n))
		return -EAGAIN;

	/* The addresses, sorted by family then address, deduplicated. */
	v = wcalloc(n_addrs + 1, sizeof(*v));
	for (size_t i = 0; i < n_addrs; i++) {
		if ((addrs[i].ip.family != AF_INET && addrs[i].ip.family != AF_INET6) ||
		    addrs[i].prefixlen != weft_ip_bits(&addrs[i].ip)) {
			r = -EINVAL;
			goto out;
		}
		v[i] = addrs[i];
	}
	qsort(v, n_addrs, sizeof(*v), addr_cmp);
	for (size_t i = 0; i < n_addrs; i++)
		if (!k || addr_cmp(&v[k - 1], &v[i]) != 0)
			v[k++] = v[i];

	/* Membership, set by set. c owns what it points to from here. */
	sets = wcalloc(n->n_sets + 1, sizeof(*sets));
	c.sets = sets;
	add = wcalloc(k + 1, sizeof(*add));
	del = wcalloc(k + 1, sizeof(*del));
	for (size_t s = 0; s < n->n_sets; s++) {
		const struct weft_acl_set *os = &o->sets[s], *ns = &n->sets[s];

		n_add = n_del = 0;
		for (size_t i = 0; i < k; i++) {
			const struct weft_cidr *oc = NULL, *nc = NULL;
			int in_o, in_n;

			if (v[i].ip.family != ns->family)
				continue;
			in_o = set_find(os, &v[i], &oc);
			in_n = set_find(ns, &v[i], &nc);
			if (in_o < 0 || in_n < 0) {
				/* Inside a prefix element: only a prefix both
				 * programs hold alike leaves nothing to do
				 * (a nets set); anything else is not a change
				 * of host members. */
				if (in_o < 0 && in_n < 0 && oc->prefixlen == nc->prefixlen && weft_ip_eq(&oc->ip, &nc->ip))
					continue;
				r = -EAGAIN;
				goto out;
			}
			if (in_n && !in_o)
				add[n_add++] = v[i];
			else if (in_o && !in_n)
				del[n_del++] = v[i];
		}
		if (!n_add && !n_del)
			continue;
		sets[c.n_sets++] = (struct weft_acl_set_change){
			.set = ns->name,
			.add = n_add ? wmemdup(add, n_add * sizeof(*add)) : NULL,
			.del = n_del ? wmemdup(del, n_del * sizeof(*del)) : NULL,
			.n_add = n_add,
			.n_del = n_del,
		};
	}

	/* Endpoint entries, interface by interface. */
	names = wcalloc(n_ifnames + 1, sizeof(*names));
	for (size_t i = 0; i < n_ifnames; i++) {
		if (!ifnames[i]) {
			r = -EINVAL;
			goto out;
		}
		names[i] = ifnames[i];
	}
	qsort(names, n_ifnames, sizeof(*names), str_ptr_cmp);
	o_sorted = endpoints_sorted(o);
	n_sorted = endpoints_sorted(n);
	eps = wcalloc(n_ifnames + 1, sizeof(*eps));
	c.endpoints = eps;
	removed = wcalloc(n_ifnames + 1, sizeof(*removed));
	c.endpoints_removed = removed;
	for (size_t i = 0; i < n_ifnames; i++) {
		const struct weft_acl_endpoint *oe, *ne;

		if (i && strcmp(names[i - 1], names[i]) == 0)
			continue;
		oe = endpoint_find(o, o_sorted, names[i]);
		ne = endpoint_find(n, n_sorted, names[i]);
		if (ne && (!oe || !weft_acl_endpoint_eq(oe, ne)))
			eps[c.n_endpoints++] = *ne; /* shallow: points into n */
		else if (oe && !ne)
			removed[c.n_endpoints_removed++] = oe->ifname;
	}
	*out = c;
	c = (struct weft_acl_change){0};
out:
	weft_acl_change_clear(&c);
	free(names);
	free(add);
	free(del);
	free(v);
	return r;
}

void weft_acl_change_clear(struct weft_acl_change *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_sets; i++) {
		free((void *)c->sets[i].add);
		free((void *)c->sets[i].del);
	}
	free((void *)c->sets);
	free((void *)c->endpoints);
	free((void *)c->endpoints_removed);
	memset(c, 0, sizeof(*c));
}

/* --- a change applied to a program (weft_acl_program_patch) ---------------- */

static char **strv_copy(char *const *v, size_t n)
{
	char **d = wcalloc(n + 1, sizeof(*d));

	for (size_t i = 0; i < n; i++)
		d[i] = wstrdup(v[i]);
	return d;
}

/* d may be s (a copy in place). */
void weft_acl_endpoint_copy(struct weft_acl_endpoint *d, const struct weft_acl_endpoint *s)
{
	struct weft_acl_endpoint t = *s;

	t.name = s->name ? wstrdup(s->name) : NULL;
	t.ifname = wstrdup(s->ifname);
	t.addrs = s->n_addrs ? wmemdup(s->addrs, s->n_addrs * sizeof(*s->addrs)) : NULL;
	t.in_policies = strv_copy(s->in_policies, s->n_in_policies);
	t.in_profiles = strv_copy(s->in_profiles, s->n_in_profiles);
	t.out_policies = strv_copy(s->out_policies, s->n_out_policies);
	t.out_profiles = strv_copy(s->out_profiles, s->n_out_profiles);
	*d = t;
}

static void *mem_copy(const void *p, size_t n, size_t size)
{
	return n ? wmemdup(p, n * size) : NULL;
}

void weft_acl_rule_copy(struct weft_acl_rule *d, const struct weft_acl_rule *s)
{
	struct weft_acl_rule t = *s;

	t.addrs = mem_copy(s->addrs, s->n_addrs, sizeof(*s->addrs));
	for (size_t i = 0; i < s->n_addrs; i++)
		t.addrs[i].set = wstrdup(s->addrs[i].set);
	t.sports = mem_copy(s->sports, s->n_sports, sizeof(*s->sports));
	t.not_sports = mem_copy(s->not_sports, s->n_not_sports, sizeof(*s->not_sports));
	t.dports = mem_copy(s->dports, s->n_dports, sizeof(*s->dports));
	t.not_dports = mem_copy(s->not_dports, s->n_not_dports, sizeof(*s->not_dports));
	t.origin = s->origin ? wstrdup(s->origin) : NULL;
	t.log_prefix = s->log_prefix ? wstrdup(s->log_prefix) : NULL;
	*d = t;
}

bool weft_acl_ports_eq(const struct weft_acl_portrange *a, size_t na, const struct weft_acl_portrange *b, size_t nb)
{
	return na == nb && (!na || memcmp(a, b, na * sizeof(*a)) == 0);
}

static bool str0_same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static int port_lo_cmp(const void *a, const void *b)
{
	const struct weft_acl_portrange *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

size_t weft_acl_ports_merge(const struct weft_acl_portrange *in, size_t n, struct weft_acl_portrange *out)
{
	size_t m = 0;

	if (!n)
		return 0;
	memmove(out, in, n * sizeof(*in));
	qsort(out, n, sizeof(*out), port_lo_cmp);
	for (size_t i = 0; i < n; i++) {
		if (m && (uint32_t)out[i].lo <= (uint32_t)out[m - 1].hi + 1) {
			if (out[i].hi > out[m - 1].hi)
				out[m - 1].hi = out[i].hi;
		} else {
			out[m++] = out[i];
		}
	}
	return m;
}

/* A rule that may share a kernel rule with its neighbours: not a log rule
 * (each logs with its own prefix) nor one with an action unknown, with destination ports, all of them
 * well-formed (a bad one is refused by itself, named). */
static bool mergeable(const struct weft_acl_rule *r)
{
	if (r->action == WEFT_ACL_LOG || (unsigned)r->action > WEFT_ACL_PASS || r->n_dports == 0)
		return false;
	for (size_t i = 0; i < r->n_dports; i++)
		if (r->dports[i].lo > r->dports[i].hi)
			return false;
	return true;
}

/* a and b are equal but for their destination ports (and origin; with
 * any_action, and their actions). Then, for consecutive rules of one
 * chain, a packet matches one of them iff it matches the shared
 * conditions and its port is in the union of their ports; the first that
 * matches is the first with the packet's port. Of equal actions it does
 * the same whichever it is (allow, deny and pass act alike whatever the
 * rule): one kernel rule with the union is equivalent. Of mixed actions,
 * one kernel rule per action with the ports that action decides
 * (weft_acl_run_ports(): disjoint, so their order does not matter). */
static bool rule_shape_eq(const struct weft_acl_rule *a, const struct weft_acl_rule *b, bool any_action)
{
	if ((!any_action && a->action != b->action) || a->family != b->family || a->proto != b->proto ||
	    a->not_proto != b->not_proto ||
	    a->icmp_type != b->icmp_type || a->icmp_code != b->icmp_code || a->not_icmp_type != b->not_icmp_type ||
	    a->not_icmp_code != b->not_icmp_code || a->n_addrs != b->n_addrs ||
	    !weft_acl_ports_eq(a->sports, a->n_sports, b->sports, b->n_sports) ||
	    !weft_acl_ports_eq(a->not_sports, a->n_not_sports, b->not_sports, b->n_not_sports) ||
	    !weft_acl_ports_eq(a->not_dports, a->n_not_dports, b->not_dports, b->n_not_dports) ||
	    !str0_same(a->log_prefix, b->log_prefix))
		return false;
	for (size_t i = 0; i < a->n_addrs; i++)
		if (a->addrs[i].src != b->addrs[i].src || a->addrs[i].negate != b->addrs[i].negate ||
		    !str0_same(a->addrs[i].set, b->addrs[i].set))
			return false;
	return true;
}

bool weft_acl_rule_eq_but_origin(const struct weft_acl_rule *a, const struct weft_acl_rule *b)
{
	return rule_shape_eq(a, b, false) && weft_acl_ports_eq(a->dports, a->n_dports, b->dports, b->n_dports);
}

/* Does a run end after r? Decided by r's ports alone (chunking by
 * content), so that a rule inserted into or removed from a long run
 * changes the run around it only, not every later one. */
static bool run_ends(const struct weft_acl_rule *r)
{
	uint64_t h = weft_fnv1a(r->dports, r->n_dports * sizeof(*r->dports), WEFT_FNV_INIT);

	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 29;
	return (h & (WEFT_ACL_RUN_AVG - 1)) == 0;
}

size_t weft_acl_run_end(const struct weft_acl_rule *rules, size_t n, size_t i, size_t max, bool mixed)
{
	size_t j = i + 1;

	if (mergeable(&rules[i]) && !run_ends(&rules[i])) {
		while (j < n && j - i < max && mergeable(&rules[j]) && rule_shape_eq(&rules[i], &rules[j], mixed)) {
			j++;
			if (run_ends(&rules[j - 1]))
				break;
		}
	}
	return j;
}

static uint64_t hash_ranges(uint64_t h, const struct weft_acl_portrange *r, size_t n)
{
	uint64_t m = n;

	h = weft_fnv1a(&m, sizeof(m), h);
	return weft_fnv1a(r, n * sizeof(*r), h);
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	return s ? weft_fnv1a(s, strlen(s) + 1, h) : h ^ 1; /* NULL: unlike any string */
}

/* Everything weft_acl_rule_eq_but_origin() compares, hashed; with shape,
 * all but the destination ports and the action (what rule_shape_eq()
 * with any_action compares). */
static uint64_t rule_content_hash(const struct weft_acl_rule *r, bool shape)
{
	int32_t v[] = {shape ? -1 : (int32_t)r->action,
		       r->family,
		       r->proto,
		       r->not_proto,
		       r->icmp_type,
		       r->icmp_code,
		       r->not_icmp_type,
		       r->not_icmp_code,
		       (int32_t)r->n_addrs};
	uint64_t h = weft_fnv1a(v, sizeof(v), WEFT_FNV_INIT);

	for (size_t i = 0; i < r->n_addrs; i++) {
		uint8_t f = (uint8_t)(r->addrs[i].src | r->addrs[i].negate << 1);

		h = weft_fnv1a(&f, 1, h);
		h = hash_str(h, r->addrs[i].set);
	}
	h = hash_ranges(h, r->sports, r->n_sports);
	h = hash_ranges(h, r->not_sports, r->n_not_sports);
	if (!shape)
		h = hash_ranges(h, r->dports, r->n_dports);
	h = hash_ranges(h, r->not_dports, r->n_not_dports);
	return hash_str(h, r->log_prefix);
}

uint64_t weft_acl_run_id(const struct weft_acl_rule *rules, size_t n, size_t i, size_t j, size_t max)
{
	const struct weft_acl_rule *last = &rules[j - 1];
	uint64_t h = rule_content_hash(&rules[i], true); /* what its rules share */

	if (run_ends(last)) /* cut after its last rule: by that rule's ports */
		return hash_ranges(h ^ 1, last->dports, last->n_dports);
	if (j - i >= max) /* cut by length */
		return hash_ranges(h ^ 2, last->dports, last->n_dports);
	if (j < n) /* ended by a rule unlike it: by that rule */
		return weft_fnv1a(&(uint64_t){rule_content_hash(&rules[j], false)}, sizeof(uint64_t), h ^ 3);
	return h ^ 4; /* the end of the chain */
}

/* Do the sorted, disjoint lists a and b share a port? */
static bool ports_meet(const struct weft_acl_portrange *a, size_t na, const struct weft_acl_portrange *b, size_t nb)
{
	for (size_t i = 0, j = 0; i < na && j < nb;) {
		if (a[i].hi < b[j].lo)
			i++;
		else if (b[j].hi < a[i].lo)
			j++;
		else
			return true;
	}
	return false;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Where x is in the sorted, distinct v[0..n) (it is there). */
static size_t u32_find(const uint32_t *v, size_t n, uint32_t x)
{
	size_t lo = 0, hi = n;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid] <= x)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* The first segment from m on not painted yet (path halving). */
static size_t seg_next(size_t *next, size_t m)
{
	while (next[m] != m) {
		next[m] = next[next[m]];
		m = next[m];
	}
	return m;
}

static bool run_action_ok(const struct weft_acl_rule *r)
{
	return (unsigned)r->action < WEFT_ACL_RUN_ACTIONS && r->action != WEFT_ACL_LOG;
}

void weft_acl_run_ports(const struct weft_acl_rule *rules, size_t i, size_t j,
			struct weft_acl_portrange *out[WEFT_ACL_RUN_ACTIONS], size_t n[WEFT_ACL_RUN_ACTIONS])
{
	_cleanup_free_ uint32_t *pt = NULL;
	_cleanup_free_ size_t *next = NULL;
	_cleanup_free_ signed char *paint = NULL;
	size_t total = 0, np = 0;
	bool meet = false;

	for (size_t k = i; k < j; k++)
		total += rules[k].n_dports;
	for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++) {
		size_t m = 0;

		out[a] = wcalloc(total + 1, sizeof(*out[a]));
		for (size_t k = i; k < j; k++)
			if ((int)rules[k].action == a && a != WEFT_ACL_LOG) {
				memcpy(out[a] + m, rules[k].dports, rules[k].n_dports * sizeof(*out[a]));
				m += rules[k].n_dports;
			}
		n[a] = weft_acl_ports_merge(out[a], m, out[a]);
	}
	for (int a = 0; a < WEFT_ACL_RUN_ACTIONS && !meet; a++)
		for (int b = a + 1; b < WEFT_ACL_RUN_ACTIONS && !meet; b++)
			meet = ports_meet(out[a], n[a], out[b], n[b]);
	if (!meet)
		return;
	/* Rules of different actions share ports: each port goes to the
	 * first rule that has it (first match). The ranges' bounds cut the
	 * ports into segments; the rules paint them in rule order, each
	 * segment once (next[] skips painted ones), so this costs
	 * O(total log total) however the ranges overlap. */
	pt = wcalloc(2 * total + 1, sizeof(*pt));
	for (size_t k = i; k < j; k++)
		for (size_t d = 0; d < rules[k].n_dports; d++) {
			pt[np++] = rules[k].dports[d].lo;
			pt[np++] = (uint32_t)rules[k].dports[d].hi + 1;
		}
	qsort(pt, np, sizeof(*pt), u32_cmp);
	{
		size_t w = 0;

		for (size_t x = 0; x < np; x++)
			if (!w || pt[w - 1] != pt[x])
				pt[w++] = pt[x];
		np = w;
	}
	/* Segment m is [pt[m], pt[m + 1]); np - 1 segments, np - 1 the end. */
	next = wcalloc(np, sizeof(*next));
	paint = wcalloc(np, sizeof(*paint));
	for (size_t m = 0; m < np; m++) {
		next[m] = m;
		paint[m] = -1;
	}
	for (size_t k = i; k < j; k++) {
		if (!run_action_ok(&rules[k]))
			continue;
		for (size_t d = 0; d < rules[k].n_dports; d++) {
			size_t s = u32_find(pt, np, rules[k].dports[d].lo);
			size_t e = u32_find(pt, np, (uint32_t)rules[k].dports[d].hi + 1);

			for (size_t m = seg_next(next, s); m < e; m = seg_next(next, m)) {
				paint[m] = (signed char)rules[k].action;
				next[m] = m + 1;
			}
		}
	}
	for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++) { /* at most one range per segment */
		out[a] = wrealloc(out[a], np * sizeof(*out[a]));
		n[a] = 0;
	}
	for (size_t m = 0; m + 1 < np; m++) {
		int a = paint[m];
		struct weft_acl_portrange *o;

		if (a < 0)
			continue;
		o = out[a];
		if (n[a] && (uint32_t)o[n[a] - 1].hi + 1 == pt[m])
			o[n[a] - 1].hi = (uint16_t)(pt[m + 1] - 1);
		else
			o[n[a]++] = (struct weft_acl_portrange){(uint16_t)pt[m], (uint16_t)(pt[m + 1] - 1)};
	}
}

bool weft_acl_rule_eq(const struct weft_acl_rule *a, const struct weft_acl_rule *b)
{
	return str0_same(a->origin, b->origin) && weft_acl_rule_eq_but_origin(a, b);
}

/* bsearch() by name over sets or chains, sorted by name (both begin with
 * their char *name). */
_Static_assert(offsetof(struct weft_acl_set, name) == 0, "a set begins with its name");
_Static_assert(offsetof(struct weft_acl_chain, name) == 0, "a chain begins with its name");

static int name_key_cmp(const void *key, const void *elem)
{
	return strcmp((const char *)key, *(char *const *)elem);
}

static struct weft_acl_chain *chain_by_name(struct weft_acl_program *p, const char *name)
{
	return p->n_chains ? bsearch(name, p->chains, p->n_chains, sizeof(*p->chains), name_key_cmp) : NULL;
}

static struct weft_acl_set *set_by_name(struct weft_acl_program *p, const char *name)
{
	return p->n_sets ? bsearch(name, p->sets, p->n_sets, sizeof(*p->sets), name_key_cmp) : NULL;
}

/* Where host address x is or would go among s's elements. */
static size_t elem_pos(const struct weft_acl_set *s, const struct weft_cidr *x, bool *found)
{
	size_t lo = 0, hi = s->n_elems;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = weft_ip_cmp(&s->elems[mid].ip, &x->ip);

		if (c == 0)
			c = (int)s->elems[mid].prefixlen - (int)x->prefixlen;
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

int weft_acl_program_patch(struct weft_acl_program *p, const struct weft_acl_change *c)
{
	if (!endpoints_sorted(p))
		return -EOPNOTSUPP;
	for (size_t i = 0; i < p->n_sets; i++)
		if (i && strcmp(p->sets[i - 1].name, p->sets[i].name) >= 0)
			return -EOPNOTSUPP;
	for (size_t i = 0; i < p->n_chains; i++)
		if (i && strcmp(p->chains[i - 1].name, p->chains[i].name) >= 0)
			return -EOPNOTSUPP;
	for (size_t i = 0; i < c->n_chains; i++) {
		const struct weft_acl_chain *o = c->chains[i].name ? chain_by_name(p, c->chains[i].name) : NULL;

		if (!o || o->kind != c->chains[i].kind || o->ingress != c->chains[i].ingress)
			return -EINVAL;
	}
	/* Every name first: nothing changes unless all are there. */
	for (size_t i = 0; i < c->n_sets; i++)
		if (!c->sets[i].set || !set_by_name(p, c->sets[i].set))
			return -EINVAL;
	for (size_t i = 0; i < c->n_endpoints_removed; i++) {
		bool found;

		if (!c->endpoints_removed[i])
			return -EINVAL;
		(void)ep_pos(p, c->endpoints_removed[i], &found);
		if (!found)
			return -EINVAL;
	}
	for (size_t i = 0; i < c->n_sets; i++) {
		const struct weft_acl_set_change *sc = &c->sets[i];
		struct weft_acl_set *s = set_by_name(p, sc->set);

		for (size_t k = 0; k < sc->n_del; k++) {
			bool found;
			size_t at = elem_pos(s, &sc->del[k], &found);

			if (!found)
				continue;
			memmove(&s->elems[at], &s->elems[at + 1], (s->n_elems - at - 1) * sizeof(*s->elems));
			s->n_elems--;
		}
		for (size_t k = 0; k < sc->n_add; k++) {
			bool found;
			size_t at = elem_pos(s, &sc->add[k], &found);

			if (found)
				continue;
			s->elems = wrealloc(s->elems, (s->n_elems + 1) * sizeof(*s->elems));
			memmove(&s->elems[at + 1], &s->elems[at], (s->n_elems - at) * sizeof(*s->elems));
			s->elems[at] = sc->add[k];
			s->n_elems++;
		}
	}
	for (size_t i = 0; i < c->n_chains; i++) {
		const struct weft_acl_chain *src = &c->chains[i];
		struct weft_acl_chain *d = chain_by_name(p, src->name);
		struct weft_acl_rule *rules = src->n_rules ? wcalloc(src->n_rules, sizeof(*rules)) : NULL;

		for (size_t k = 0; k < src->n_rules; k++)
			weft_acl_rule_copy(&rules[k], &src->rules[k]);
		for (size_t k = 0; k < d->n_rules; k++)
			weft_acl_rule_clear(&d->rules[k]);
		free(d->rules);
		d->rules = rules;
		d->n_rules = src->n_rules;
	}
	for (size_t i = 0; i < c->n_endpoints_removed; i++) {
		bool found;
		size_t at = ep_pos(p, c->endpoints_removed[i], &found);

		weft_acl_endpoint_clear(&p->endpoints[at]);
		memmove(&p->endpoints[at], &p->endpoints[at + 1], (p->n_endpoints - at - 1) * sizeof(*p->endpoints));
		p->n_endpoints--;
	}
	for (size_t i = 0; i < c->n_endpoints; i++) {
		struct weft_acl_endpoint t;
		bool found;
		size_t at;

		weft_acl_endpoint_copy(&t, &c->endpoints[i]);
		at = ep_pos(p, t.ifname, &found);
		if (found) {
			weft_acl_endpoint_clear(&p->endpoints[at]);
		} else {
			p->endpoints = wrealloc(p->endpoints, (p->n_endpoints + 1) * sizeof(*p->endpoints));
			memmove(&p->endpoints[at + 1], &p->endpoints[at],
				(p->n_endpoints - at) * sizeof(*p->endpoints));
			p->n_endpoints++;
		}
		p->endpoints[at] = t;
	}
	return 0;
}
