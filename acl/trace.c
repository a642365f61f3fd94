/* trace.c - evaluate a packet against a compiled program, as the backends
 * would (conntrack aside), and say which rule decided (weftctl policy
 * trace). The semantics are those of the comment at the top of acl.h. */
#include "acl/acl.h"

#include <sys/socket.h>

void weft_acl_verdict_clear(struct weft_acl_verdict *v)
{
	if (!v)
		return;
	free(v->egress.endpoint);
	free(v->egress.reason);
	free(v->ingress.endpoint);
	free(v->ingress.reason);
	memset(v, 0, sizeof(*v));
}

/* Sets are sorted and disjoint, but a program built by hand need not be,
 * and trace is rare: a linear scan is simplest and always right. */
static bool set_has(const struct weft_acl_set *s, const struct weft_ip *ip)
{
	if (!s || s->family != ip->family)
		return false;
	for (size_t i = 0; i < s->n_elems; i++)
		if (weft_cidr_contains(&s->elems[i], ip))
			return true;
	return false;
}

static bool port_in(const struct weft_acl_portrange *v, size_t n, int port)
{
	if (port < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (port >= v[i].lo && port <= v[i].hi)
			return true;
	return false;
}

/* Packet fields not given (-1) match no specific value: a rule that needs
 * a port or an icmp type does not match, its negation does. */
static bool rule_matches(const struct weft_acl_program *p, const struct weft_acl_rule *r,
			 const struct weft_acl_packet *pkt)
{
	if (r->family && r->family != pkt->src.family)
		return false;
	if (r->proto >= 0 && pkt->proto != r->proto)
		return false;
	if (r->not_proto >= 0 && pkt->proto == r->not_proto)
		return false;
	if (r->icmp_type >= 0 && pkt->icmp_type != r->icmp_type)
		return false;
	if (r->icmp_type >= 0 && r->icmp_code >= 0 && pkt->icmp_code != r->icmp_code)
		return false;
	if (r->not_icmp_type >= 0 && pkt->icmp_type == r->not_icmp_type &&
	    (r->not_icmp_code < 0 || pkt->icmp_code == r->not_icmp_code))
		return false;
	for (size_t i = 0; i < r->n_addrs; i++) {
		const struct weft_acl_addr_match *a = &r->addrs[i];
		bool in = set_has(weft_acl_program_set(p, a->set), a->src ? &pkt->src : &pkt->dst);
		if (in == a->negate)
			return false;
	}
	if (r->n_sports && !port_in(r->sports, r->n_sports, pkt->sport))
		return false;
	if (r->n_not_sports && port_in(r->not_sports, r->n_not_sports, pkt->sport))
		return false;
	if (r->n_dports && !port_in(r->dports, r->n_dports, pkt->dport))
		return false;
	if (r->n_not_dports && port_in(r->not_dports, r->n_not_dports, pkt->dport))
		return false;
	return true;
}

enum outcome { GO_ON, ALLOWED, DENIED, PASSED };

/* Run one chain: the first allow, deny or pass decides; log rules are
 * noted and evaluation goes on. A chain the program lacks fails closed. */
static enum outcome run_chain(const struct weft_acl_program *p, const char *name, const struct weft_acl_packet *pkt,
			      struct weft_buf *logs, char **why)
{
	const struct weft_acl_chain *ch = weft_acl_program_chain(p, name);

	if (!ch) {
		*why = wasprintf("chain %s is not in the program (fail closed)", name);
		return DENIED;
	}
	for (size_t i = 0; i < ch->n_rules; i++) {
		const struct weft_acl_rule *r = &ch->rules[i];

		if (!rule_matches(p, r, pkt))
			continue;
		switch (r->action) {
		case WEFT_ACL_LOG:
			weft_buf_printf(logs, "%s%s", logs->len ? ", " : "", r->origin);
			continue;
		case WEFT_ACL_PASS:
			/* The model refuses pass in profiles; should one get
			 * here anyway, it hands over like in a policy. */
			*why = wasprintf("%s (pass)", r->origin);
			return PASSED;
		case WEFT_ACL_ALLOW:
			*why = wasprintf("%s (allow)", r->origin);
			return ALLOWED;
		case WEFT_ACL_DENY:
			*why = wasprintf("%s (deny)", r->origin);
			return DENIED;
		}
	}
	return GO_ON;
}

static void join_origins(struct weft_buf *b, const struct weft_acl_program *p, char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct weft_acl_chain *ch = weft_acl_program_chain(p, names[i]);
		weft_buf_printf(b, "%s%s", i ? ", " : "", ch ? ch->origin : names[i]);
	}
}

/* One direction of endpoint e. *by_policy tells whether a Policy rule gave
 * the allow (what opens the host). */
static bool eval_direction(const struct weft_acl_program *p, const struct weft_acl_endpoint *e, bool ingress,
			   const struct weft_acl_packet *pkt, bool *by_policy, char **reason)
{
	char *const *pol = ingress ? e->in_policies : e->out_policies;
	char *const *prof = ingress ? e->in_profiles : e->out_profiles;
	size_t n_pol = ingress ? e->n_in_policies : e->n_out_policies;
	size_t n_prof = ingress ? e->n_in_profiles : e->n_out_profiles;
	struct weft_buf logs = {0}, msg = {0};
	_cleanup_free_ char *passed = NULL;
	char *why = NULL;
	enum outcome o = GO_ON;
	bool allowed = false;

	*by_policy = false;
	for (size_t i = 0; i < n_pol && o == GO_ON; i++)
		o = run_chain(p, pol[i], pkt, &logs, &why);
	if (o == ALLOWED || o == DENIED) {
		allowed = o == ALLOWED;
		*by_policy = allowed;
		weft_buf_printf(&msg, "%s", why);
		goto done;
	}
	if (o == PASSED)
		passed = TAKE_PTR(why);
	else if (n_pol) {
		join_origins(&msg, p, pol, n_pol);
		weft_buf_printf(&msg, ": no rule matched (end-of-policies default deny)");
		goto done;
	}
	o = GO_ON;
	for (size_t i = 0; i < n_prof && (o == GO_ON || o == PASSED); i++) {
		free(why);
		why = NULL;
		o = run_chain(p, prof[i], pkt, &logs, &why);
	}
	if (o == ALLOWED || o == DENIED) {
		allowed = o == ALLOWED;
		weft_buf_printf(&msg, "%s", why);
	} else if (n_prof) {
		join_origins(&msg, p, prof, n_prof);
		weft_buf_printf(&msg, ": no rule matched (default deny)");
	} else {
		weft_buf_printf(&msg, "no %s applies (default deny)", passed ? "profile" : "policy or profile");
	}
	if (passed)
		weft_buf_printf(&msg, ", after %s", passed);
done:
	if (logs.len)
		weft_buf_printf(&msg, "; logged by %s", logs.data);
	free(why);
	weft_buf_free(&logs);
	*reason = weft_buf_steal(&msg);
	return allowed;
}

static bool own_address(const struct weft_acl_endpoint *e, const struct weft_ip *ip)
{
	for (size_t i = 0; i < e->n_addrs; i++)
		if (weft_cidr_contains(&e->addrs[i], ip))
			return true;
	return false;
}

static bool failsafe_port(const struct weft_acl_program *p, const struct weft_acl_packet *pkt)
{
	for (size_t i = 0; i < p->n_failsafe; i++)
		if (pkt->proto == p->failsafe[i].proto && pkt->dport == p->failsafe[i].port)
			return true;
	return false;
}

static const char *proto_name(int proto, char *buf, size_t size)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	default:
		snprintf(buf, size, "protocol %d", proto);
		return buf;
	}
}

/* The ICMPv6 a pod may always send its node, as the backends accept it
 * before anything else (Calico's felix's list): its name, or NULL for any
 * other type. Not a router advertisement (134): a pod is no router of the
 * node's. */
static const char *host_icmp6_name(int type)
{
	switch (type) {
	case 130:
		return "multicast listener query";
	case 131:
		return "multicast listener report";
	case 132:
		return "multicast listener done";
	case 133:
		return "router solicitation";
	case 135:
		return "neighbour solicitation";
	case 136:
		return "neighbour advertisement";
	default:
		return NULL;
	}
}

/* Egress of the source endpoint: anti-spoofing by source address (the MAC
 * is not part of a traced packet), then its policies and profiles; for
 * packets to the host, the host protection on top. */
static void trace_egress(const struct weft_acl_program *p, const struct weft_acl_endpoint *e,
			 const struct weft_acl_packet *pkt, struct weft_acl_step *st)
{
	char ipbuf[WEFT_IP_STRLEN], pbuf[32];
	bool by_policy;
	char *why;

	st->evaluated = true;
	st->endpoint = wstrdup(e->name);
	if (pkt->to_host && pkt->proto == IPPROTO_ICMPV6 && host_icmp6_name(pkt->icmp_type)) {
		st->allowed = true;
		st->reason = wasprintf("ICMPv6 %s (%d) to the host (always accepted)", host_icmp6_name(pkt->icmp_type),
				       pkt->icmp_type);
		return;
	}
	if (!own_address(e, &pkt->src)) {
		st->reason = wasprintf("source address %s is not the endpoint's (anti-spoofing)",
				       weft_ip_str(&pkt->src, ipbuf, sizeof(ipbuf)));
		return;
	}
	st->allowed = eval_direction(p, e, false, pkt, &by_policy, &why);
	if (!pkt->to_host || !st->allowed) {
		st->reason = why;
		return;
	}
	if (failsafe_port(p, pkt)) {
		st->reason = wasprintf("%s; %s port %d to the host is a failsafe port", why,
				       proto_name(pkt->proto, pbuf, sizeof(pbuf)), pkt->dport);
	} else if (by_policy) {
		st->reason = wasprintf("%s; a policy allow opens the host", why);
	} else {
		st->allowed = false;
		if (pkt->proto == IPPROTO_TCP || pkt->proto == IPPROTO_UDP)
			st->reason = wasprintf("%s, but workload to host needs a policy allow or a failsafe port (%s port %d is not one)",
					       why, proto_name(pkt->proto, pbuf, sizeof(pbuf)), pkt->dport);
		else
			st->reason = wasprintf("%s, but workload to host needs a policy allow or a failsafe port", why);
	}
	free(why);
}

static void unknown_interface(struct weft_acl_step *st, const char *ifname)
{
	st->evaluated = true;
	st->allowed = false;
	st->reason = wasprintf("interface %s has no endpoint in the program (fail closed)", ifname);
}

int weft_acl_trace(const struct weft_acl_program *p, const struct weft_acl_packet *pkt, struct weft_acl_verdict *v)
{
	const struct weft_acl_endpoint *src = NULL, *dst = NULL;
	bool unknown = false;

	memset(v, 0, sizeof(*v));
	if (pkt->src_ifname) {
		src = weft_acl_program_endpoint(p, pkt->src_ifname);
		if (!src) {
			unknown_interface(&v->egress, pkt->src_ifname);
			unknown = true;
		}
	}
	if (pkt->dst_ifname && !pkt->to_host) {
		dst = weft_acl_program_endpoint(p, pkt->dst_ifname);
		if (!dst) {
			unknown_interface(&v->ingress, pkt->dst_ifname);
			unknown = true;
		}
	}

	if (src)
		trace_egress(p, src, pkt, &v->egress);
	else if (!v->egress.evaluated)
		v->egress.reason = wstrdup(pkt->from_host ? "from the host" : "the source is not a local endpoint");

	if (dst) {
		v->ingress.evaluated = true;
		v->ingress.endpoint = wstrdup(dst->name);
		if (pkt->from_host) {
			/* Host -> local workload (output path) is accepted, as
			 * in Calico. */
			v->ingress.allowed = true;
			v->ingress.reason = wstrdup("the host-to-workload rule (traffic from the node to its pods is accepted)");
		} else {
			bool by_policy;
			v->ingress.allowed = eval_direction(p, dst, true, pkt, &by_policy, &v->ingress.reason);
		}
	} else if (!v->ingress.evaluated) {
		v->ingress.reason = wstrdup(pkt->to_host ? "to the host" : "the destination is not a local endpoint");
	}

	v->allowed = (!v->egress.evaluated || v->egress.allowed) && (!v->ingress.evaluated || v->ingress.allowed);
	return unknown ? -EINVAL : 0;
}
