/* acl.h - weft's ACL engine (issue 5).
 *
 * Profiles (Calico v1: tags + ordered inbound/outbound rules) and Policies
 * (order + endpoint selector + ingress/egress rules) from the store are
 * compiled, for one node, into a backend-neutral *program*:
 *
 *   sets       named address sets: one per (tag, family), per (selector,
 *              family) and per (nets list, family) a rule references.
 *              Members are the endpoints' addresses cluster-wide, so a
 *              rule costs one set lookup whatever the member count.
 *   chains     one per profile direction and per policy direction: the
 *              rules in order, each an action and its matches.
 *   endpoints  the node's routed endpoints: host interface, own addresses
 *              and MAC (anti-spoofing), the policy chains that apply in
 *              each direction in order, then the profile chains in order.
 *
 * A backend (acl/nft.c: nftables through libnftnl; acl/ipt.c: kernel
 * ipsets through libipset + iptables-restore) programs a program into the
 * kernel and, on the next apply, changes only what differs: set elements
 * for membership changes, one chain for a rule change, a dispatch entry
 * for an endpoint coming or going. Every apply is atomic.
 *
 * Semantics both backends implement (and weft_acl_trace() evaluates):
 *
 *   Forward path (routed pod -> anything, anything -> routed pod, incl.
 *   pod -> pod on the same node): conntrack established/related accepted,
 *   invalid dropped. A packet from a weft interface (WEFT_ACL_IFPREFIX*)
 *   is checked against the source endpoint's EGRESS, then a packet to a
 *   weft interface against the destination endpoint's INGRESS; both must
 *   allow. A weft interface with no endpoint in the program: dropped
 *   (fail closed).
 *
 *   Direction evaluation for endpoint E (ingress = packets to E, egress =
 *   packets from E; egress first drops packets whose source address is not
 *   one of E's addresses or whose source MAC is not E's MAC):
 *     1. Each policy chain in order: its rules in order; the first rule
 *        whose matches hold decides: allow -> allowed (stop), deny ->
 *        dropped (stop), pass -> go to step 3, log -> log and go on.
 *        No rule matched: next policy.
 *     2. At least one policy applied and none decided: dropped (Calico's
 *        end-of-tier default deny). No policy applied: step 3.
 *     3. Each profile chain in order, first allow/deny decides (log logs
 *        and goes on; pass in a profile is rejected by the model).
 *     4. Nothing decided: dropped.
 *
 *   Workload -> host (input path from a weft interface): ICMPv6 MLD
 *   (multicast listener query, report and done: types 130-132), router
 *   solicitation, neighbour solicitation and neighbour advertisement
 *   (133, 135, 136) accepted, as in Calico (not router advertisements,
 *   134: a pod is not the node's router); otherwise E's egress must allow (as
 *   above) AND either the packet goes to a failsafe port (tcp/udp, see
 *   weft_acl_options) or the allow came from a Policy rule (a profile's
 *   blanket "outbound allow" does not open the host; Calico's
 *   DefaultEndpointToHostAction=Drop plus failsafe ports). Host -> local
 *   workload (output path) is accepted, as in Calico.
 *
 *   Macvlan attachments do not cross the host's IP stack: ACLs apply to
 *   routed endpoints only.
 *
 * Names in a program are what the kernel sees, so they are short and safe
 * for both backends: [A-Za-z0-9_-], at most WEFT_ACL_NAME_MAX characters
 * (iptables chain names allow 28, ipset names 31).
 *
 * Return convention: 0 (or a count) or a negative errno; *errmsg, where
 * given, gets a malloc'ed one-line message on failure. Outputs are written
 * only on success. Out of memory aborts (lib/util.h).
 */
#ifndef WEFT_ACL_H
#define WEFT_ACL_H

#include "lib/ipaddr.h"
#include "lib/util.h"
#include "model/resource.h"

#include <stdint.h>

#define WEFT_ACL_IFPREFIX "wft"  /* = WEFT_DP_IFPREFIX */
#define WEFT_ACL_NAME_MAX 28
#define WEFT_ACL_LOG_PREFIX_MAX 28 /* iptables --log-prefix takes 29 with the NUL */

/* Packet mark bits the backends may use between an endpoint chain and the
 * base chains (Calico uses the upper 16 bits of the mark too). */
#define WEFT_ACL_MARK_ALLOW 0x00010000u  /* this direction allowed */
#define WEFT_ACL_MARK_PASS 0x00020000u   /* a policy said pass: go to profiles */
#define WEFT_ACL_MARK_POLICY 0x00040000u /* the allow came from a Policy */
#define WEFT_ACL_MARK_MASK 0x00070000u

enum weft_acl_action {
	WEFT_ACL_ALLOW,
	WEFT_ACL_DENY,
	WEFT_ACL_LOG,
	WEFT_ACL_PASS,
};
const char *weft_acl_action_str(enum weft_acl_action a); /* "allow", ... */

/* A set of addresses of one family: host addresses (/32, /128) and
 * prefixes, sorted by weft_ip_cmp then prefix length, deduplicated, and
 * with no element covered by another (so backends can load them into an
 * interval set as they are). */
struct weft_acl_set {
	char *name;   /* e.g. "wt4-1a2b3c4d5e6f" (tag), "ws4-..." (selector), "wn4-..." (nets) */
	char *origin; /* for humans and trace: "tag WEB", "selector role == 'db'", "nets 10.0.0.0/8,..." */
	int family;   /* AF_INET or AF_INET6 */
	struct weft_cidr *elems;
	size_t n_elems;
};

struct weft_acl_portrange {
	uint16_t lo, hi; /* lo <= hi */
};

/* One address condition: the packet's source (or destination) address is
 * (or, negated, is not) in the named set. */
struct weft_acl_addr_match {
	bool src;
	bool negate;
	char *set; /* a set of the program, of the rule's family */
};

/* One compiled rule. All present matches must hold. A model rule that
 * references addresses without an ipVersion compiles to two rules, one per
 * family, next to each other; a rule with no address match has family 0
 * (both). */
struct weft_acl_rule {
	enum weft_acl_action action;
	int family;       /* 0 = both, AF_INET, AF_INET6 */
	int proto;        /* -1 = any, else 0..255 (icmp is 1, icmpv6 58) */
	int not_proto;    /* -1 = none */
	int icmp_type, icmp_code;         /* -1 = absent (code needs type) */
	int not_icmp_type, not_icmp_code; /* -1 = absent */
	struct weft_acl_addr_match *addrs;
	size_t n_addrs;
	/* Port conditions (proto is then tcp, udp, sctp or udplite): the port
	 * is in one of the ranges; for not_* in none of them. n = 0: absent. */
	struct weft_acl_portrange *sports, *not_sports, *dports, *not_dports;
	size_t n_sports, n_not_sports, n_dports, n_not_dports;
	char *origin;     /* "profile WEB inbound rule 2", "policy allow-web egress rule 1" (1-based) */
	char *log_prefix; /* for log: "weft WEB i2 " style, <= WEFT_ACL_LOG_PREFIX_MAX; NULL otherwise */
};

enum weft_acl_chain_kind {
	WEFT_ACL_CHAIN_PROFILE,
	WEFT_ACL_CHAIN_POLICY,
};

struct weft_acl_chain {
	char *name;   /* "wpi-<hash>"/"wpo-<hash>" profile in/out, "wgi-"/"wge-" policy ingress/egress */
	char *origin; /* "profile WEB inbound", "policy allow-web ingress" */
	enum weft_acl_chain_kind kind;
	bool ingress; /* inbound/ingress (to the endpoint) or outbound/egress */
	struct weft_acl_rule *rules;
	size_t n_rules;
};

/* One routed endpoint on this node. */
struct weft_acl_endpoint {
	char *name;    /* the Endpoint resource's name */
	char *ifname;  /* host-side interface, WEFT_ACL_IFPREFIX... */
	struct weft_cidr *addrs; /* the endpoint's addresses as /32 or /128 */
	size_t n_addrs;
	uint8_t mac[6];
	bool has_mac;
	/* Chain names (of this program) in evaluation order. */
	char **in_policies, **in_profiles, **out_policies, **out_profiles;
	size_t n_in_policies, n_in_profiles, n_out_policies, n_out_profiles;
};

struct weft_acl_failsafe {
	uint8_t proto; /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port;
};

/* A compiled program. Arrays sorted by name (endpoints by ifname). */
struct weft_acl_program {
	struct weft_acl_set *sets;
	size_t n_sets;
	struct weft_acl_chain *chains;
	size_t n_chains;
	struct weft_acl_endpoint *endpoints;
	size_t n_endpoints;
	struct weft_acl_failsafe *failsafe;
	size_t n_failsafe;
};

void weft_acl_program_free(struct weft_acl_program *p); /* accepts NULL */
void weft_acl_rule_clear(struct weft_acl_rule *r);         /* frees what r holds */
void weft_acl_endpoint_clear(struct weft_acl_endpoint *e); /* frees what e holds, zeroes it */
const struct weft_acl_set *weft_acl_program_set(const struct weft_acl_program *p, const char *name);
const struct weft_acl_chain *weft_acl_program_chain(const struct weft_acl_program *p, const char *name);
const struct weft_acl_endpoint *weft_acl_program_endpoint(const struct weft_acl_program *p, const char *ifname);

struct weft_acl_options {
	/* The node whose endpoints get endpoint entries; NULL = every
	 * endpoint in the input (weftctl policy trace). */
	const char *node;
	/* Workload -> host ports; NULL = Calico's defaults (tcp 22, udp 68,
	 * tcp 179, 2379, 2380, 5473, 6443, 6666, 6667). */
	const struct weft_acl_failsafe *failsafe;
	size_t n_failsafe;
	/* Every profile and policy chain and every set they reference, used
	 * by a local endpoint or not (the program then has more than the
	 * node needs; an incremental compile of a few endpoints uses it to
	 * see which sets their addresses belong to). */
	bool all_chains;
	/* Compile no rules: no policies, no chains, no endpoint entries,
	 * and of the sets only only_sets (found by origin, "tag T" or
	 * "selector S", and family; other origins are left out), with their
	 * members. For an incremental compile of endpoints of other nodes,
	 * which change set members only: the sets come from the last program
	 * instead of from reading every rule, which grows with the rules,
	 * not the change. */
	bool sets_only;
	const struct weft_acl_set *only_sets;
	size_t n_only_sets;
};

/* Compile the program for opt->node from decoded resources (any order;
 * kinds other than Profile, Policy and Endpoint are ignored). Endpoints
 * of every node contribute set members; only routed endpoints (annotation
 * weft.io/mode absent or "routed") with a host interface get endpoint
 * entries. An endpoint's labels are its metadata.labels plus the
 * labelsToApply of its profiles (its own labels win). A profile an
 * endpoint names that does not exist contributes no chain (the endpoint
 * then fails closed unless another profile or a policy allows). A tag or
 * selector no endpoint matches gives an empty set. Returns 0, or -EINVAL
 * with *errmsg when a stored resource cannot be compiled (e.g. an
 * unparsable selector: the store is outside input). */
int weft_acl_compile(const struct weft_resource *res, size_t n, const struct weft_acl_options *opt,
		     struct weft_acl_program **out, char **errmsg);

/* --- trace (weftctl policy trace) --- */

/* A packet to evaluate. src_ifname/dst_ifname name endpoints of the
 * program (NULL: not a local endpoint, e.g. outside the cluster or the
 * host); proto 1/6/17/58...; port the destination port (tcp/udp) or, for
 * icmp, type and code. */
struct weft_acl_packet {
	const char *src_ifname, *dst_ifname;
	struct weft_ip src, dst;
	int proto;
	int sport, dport;          /* -1 = not given */
	int icmp_type, icmp_code;  /* -1 = not given */
	bool to_host;              /* the destination is the host itself (input path) */
	bool from_host;            /* the source is the host itself (output path: accepted) */
};

/* What decided one direction. */
struct weft_acl_step {
	bool evaluated;      /* false: the direction does not apply (no endpoint) */
	bool allowed;
	char *endpoint;      /* endpoint name */
	char *reason;        /* "policy allow-web ingress rule 1 (allow)", "profile WEB inbound: no rule matched (default deny)", "source address 10.0.0.9 is not the endpoint's (anti-spoofing)" */
};

struct weft_acl_verdict {
	bool allowed;
	struct weft_acl_step egress, ingress; /* egress of the source endpoint, ingress of the destination */
};
void weft_acl_verdict_clear(struct weft_acl_verdict *v);

/* Evaluate pkt against program p as the backends would (conntrack
 * aside). Returns 0, or -EINVAL for a packet that names an interface the
 * program does not know (it would be dropped as fail-closed: *v says so
 * too). */
int weft_acl_trace(const struct weft_acl_program *p, const struct weft_acl_packet *pkt, struct weft_acl_verdict *v);

/* --- backends --- */

struct weft_acl_stats {
	size_t sets_created, sets_deleted, elems_added, elems_removed;
	size_t chains_created, chains_replaced, chains_deleted;
	size_t endpoints_added, endpoints_removed, endpoints_replaced;
	bool full;           /* the whole ruleset was (re)loaded */
	int64_t apply_ns;    /* wall time of the kernel batch */
	/* Kernel rules of program chains added and deleted (nft: a run of
	 * rules merged into one kernel rule counts once; a flushed chain
	 * counts all its rules). Backends that replace whole chains leave
	 * them 0. */
	size_t rules_added, rules_deleted;
};

struct weft_acl_backend;

/* nftables: table `inet weft` (WEFT_ACL_NFT_TABLE), base chains on the
 * forward, input and output hooks at filter priority, named sets per
 * program set (interval sets), verdict maps keyed by interface name for
 * endpoint dispatch, one chain per program chain and per endpoint
 * direction. All through libnftnl + libmnl, one batch per apply. */
#define WEFT_ACL_NFT_TABLE "weft"
int weft_acl_nft_open(struct weft_acl_backend **out, char **errmsg);

/* ipset + iptables: kernel ipsets (hash:net) through libipset, chains in
 * the filter table through `iptables-restore --noflush` (and
 * ip6tables-restore), jumped to from FORWARD/INPUT/OUTPUT by one rule
 * each. iptables: binary name or path, NULL = "iptables" ("ip6tables"
 * derived from it). All chains and sets begin with "weft". */
int weft_acl_ipt_open(const char *iptables, struct weft_acl_backend **out, char **errmsg);

/* Program p. The first apply of a backend replaces whatever weft had
 * programmed before (a previous weftd's table) in one atomic step; later
 * applies change only what differs from the previous apply. On failure
 * nothing of this apply is left in the kernel and the next apply starts
 * with a full replace. stats may be NULL. */
int weft_acl_apply(struct weft_acl_backend *b, const struct weft_acl_program *p, struct weft_acl_stats *stats,
		   char **errmsg);

/* A change to the program of the last apply (or update), for when the
 * caller knows what changed: the backend then does work in proportion to
 * the change alone (the full apply above compares the whole program).
 * Applied in this order, as one atomic kernel batch:
 *
 *   sets          members added to and removed from sets of the program:
 *                 host addresses (/32, /128) of the set's family. Adding a
 *                 member that is there, or removing one that is not, is
 *                 no change. A set holding prefixes (an interval set)
 *                 cannot be changed this way.
 *   chains        chains of the program whose rules are replaced (same
 *                 name, kind and direction): the kernel changes where the
 *                 rules differ, as an apply would.
 *   endpoints     endpoint entries added, or replaced (same ifname).
 *   endpoints_removed  ifnames of endpoint entries removed.
 *
 * Returns 0 when the kernel now holds what an apply of the changed
 * program would have programmed (the backend's view of the program is
 * changed accordingly, so the next apply or update diffs against it).
 * -EOPNOTSUPP: this change cannot be made as a change (no program applied
 * yet or the last apply failed, a backend without updates, a prefix
 * member, an interval set): nothing done, apply the whole program
 * instead. -EINVAL (with *errmsg naming the set, chain or endpoint and the
 * field): a name the program does not have, a bad member or rule, an
 * endpoint naming chains the program lacks: nothing done, the backend's
 * view unchanged. Any other failure: nothing of this batch is in the
 * kernel and the next apply is a full replace. stats may be NULL. */
struct weft_acl_set_change {
	const char *set;
	const struct weft_cidr *add, *del;
	size_t n_add, n_del;
};

struct weft_acl_change {
	const struct weft_acl_set_change *sets;
	size_t n_sets;
	const struct weft_acl_chain *chains;
	size_t n_chains;
	const struct weft_acl_endpoint *endpoints;
	size_t n_endpoints;
	char *const *endpoints_removed;
	size_t n_endpoints_removed;
};

int weft_acl_update(struct weft_acl_backend *b, const struct weft_acl_change *c, struct weft_acl_stats *stats,
		    char **errmsg);

/* The change that turns program o into program n, for programs the caller
 * knows to differ at most in (1) whether the host addresses addrs are
 * members of sets and (2) the endpoint entries on interfaces ifnames (an
 * endpoint event: its old and new addresses, its interface). Costs
 * O((sets + chains) + (addrs + ifnames) * log) and compares nothing else,
 * trusting the caller for the rest; checks that both programs have the
 * same sets and chains by name (else -EAGAIN: apply n whole). *out
 * points into o and n (valid while both are) and into arrays freed with
 * weft_acl_change_clear(). */
int weft_acl_program_change(const struct weft_acl_program *o, const struct weft_acl_program *n,
			    const struct weft_cidr *addrs, size_t n_addrs, char *const *ifnames, size_t n_ifnames,
			    struct weft_acl_change *out);
void weft_acl_change_clear(struct weft_acl_change *c);

/* Make program p (sorted, as compiled) what it is after change c, as a
 * backend's weft_acl_update() does to its kernel: members added and
 * removed (host addresses; adding a present one or removing an absent one
 * is no change), chains' rules replaced, endpoint entries added, replaced
 * or removed (all copied). Returns 0; -EINVAL, p unchanged, when c names a
 * set, chain (of that kind and direction) or removed endpoint p lacks;
 * -EOPNOTSUPP, p unchanged, for an unsorted p. c must not point into p. */
int weft_acl_program_patch(struct weft_acl_program *p, const struct weft_acl_change *c);

/* A deep copy of rule s into d (d may be s); equal in every field,
 * origin included. */
void weft_acl_rule_copy(struct weft_acl_rule *d, const struct weft_acl_rule *s);
bool weft_acl_rule_eq(const struct weft_acl_rule *a, const struct weft_acl_rule *b);
/* The same in every field but the origin (a backend compares origins its
 * own way). */
bool weft_acl_rule_eq_but_origin(const struct weft_acl_rule *a, const struct weft_acl_rule *b);

/* The same port ranges in the same order? */
bool weft_acl_ports_eq(const struct weft_acl_portrange *a, size_t na, const struct weft_acl_portrange *b, size_t nb);

/* Port ranges sorted, overlapping and adjacent ones joined, into out
 * (room for n; may be in). Returns how many. */
size_t weft_acl_ports_merge(const struct weft_acl_portrange *in, size_t n, struct weft_acl_portrange *out);

/* Runs: consecutive rules of a chain equal but for their destination
 * ports (not log rules), which one kernel rule with the union of their
 * ports does alike; with mixed, equal but for their destination ports and
 * their actions (allow, deny, pass), which one kernel rule per action
 * does alike, each with the ports that action decides (see
 * weft_acl_run_ports()). Returns the index after the run that starts at
 * rule i (i + 1: a rule alone), at most max rules long. A run also ends
 * after a rule whose ports hash to 0 modulo WEFT_ACL_RUN_AVG, so that
 * where runs end depends on the rules alone: a rule inserted into a long
 * run changes that run, not every later one. Long runs, because each
 * nft run is a named set per action and the kernel finds a set by name
 * with a walk of the table's sets (an element change costs more the more
 * sets there are); the userspace work of a change in a run grows with the
 * run. */
#define WEFT_ACL_RUN_AVG 256
#define WEFT_ACL_RUN_MAX 1024
size_t weft_acl_run_end(const struct weft_acl_rule *rules, size_t n, size_t i, size_t max, bool mixed);

/* What identifies the run rules[i..j) (from weft_acl_run_end() with that
 * max) among its chain's runs by content, not position: what its rules
 * share (all but ports and action) and what ended it (its last rule's
 * ports when the run is cut after it by their hash or by max, the rule
 * after it when that one is unlike it, the end of the chain), never the
 * ports or actions of its rules before the last. A rule added to, changed
 * in or removed from a run (but for the rule that ends it) leaves it the
 * same, and so does a rule added or removed elsewhere (unless it moves a
 * cut by max, rare: runs average WEFT_ACL_RUN_AVG). Equal for distinct
 * runs of a chain only when they share their conditions and what ended
 * them is equal (duplicate rules): callers tell those apart by order. */
uint64_t weft_acl_run_id(const struct weft_acl_rule *rules, size_t n, size_t i, size_t j, size_t max);

/* The ports each action decides in the mixed run rules[i..j) (as
 * weft_acl_run_end() gives it): a port is the first rule's of the run
 * that has it (first match; the rules are alike but for ports and
 * action). out[a] (malloc'ed, sorted, adjacent ranges joined, disjoint
 * from every other action's) with n[a] ranges, for each action a (the log
 * action's always empty; log rules and unknown actions are left out).
 * O(ports log ports), however the ranges overlap. */
#define WEFT_ACL_RUN_ACTIONS (WEFT_ACL_PASS + 1)
void weft_acl_run_ports(const struct weft_acl_rule *rules, size_t i, size_t j,
			struct weft_acl_portrange *out[WEFT_ACL_RUN_ACTIONS], size_t n[WEFT_ACL_RUN_ACTIONS]);

/* Are the two entries the same in every field? */
bool weft_acl_endpoint_eq(const struct weft_acl_endpoint *a, const struct weft_acl_endpoint *b);

/* A deep copy of s into d (d may be s). */
void weft_acl_endpoint_copy(struct weft_acl_endpoint *d, const struct weft_acl_endpoint *s);

/* Remove everything the backend owns from the kernel (also what an earlier
 * process left). Returns 0 or a negative errno. */
int weft_acl_remove(struct weft_acl_backend *b, char **errmsg);

/* Is what the last apply and updates programmed still in the kernel as
 * they left it (nft: the table's rules, sets and maps; ipt: the hooks,
 * each chain's rules, the ipsets' members; docs/acl.md "Drift"; backends
 * without a check answer 0)? Returns 0, -ENOENT when it is gone or was
 * changed by someone else (the next apply then reloads everything), or a
 * negative errno. */
int weft_acl_check(struct weft_acl_backend *b);

/* Free the handle; the kernel keeps the ruleset. Accepts NULL. */
void weft_acl_backend_free(struct weft_acl_backend *b);

const char *weft_acl_backend_name(const struct weft_acl_backend *b); /* "nft" or "ipt" */

#endif
