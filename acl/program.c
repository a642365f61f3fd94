/* program.c - freeing and looking up parts of a compiled ACL program. */
#include "acl/acl.h"

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

static void rule_clear(struct weft_acl_rule *r)
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
			rule_clear(&c->rules[j]);
		free(c->rules);
		free(c->name);
		free(c->origin);
	}
	free(p->chains);
	for (size_t i = 0; i < p->n_endpoints; i++) {
		struct weft_acl_endpoint *e = &p->endpoints[i];

		free(e->name);
		free(e->ifname);
		free(e->addrs);
		strv_free(e->in_policies, e->n_in_policies);
		strv_free(e->in_profiles, e->n_in_profiles);
		strv_free(e->out_policies, e->n_out_policies);
		strv_free(e->out_profiles, e->n_out_profiles);
	}
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
