/* nft.c - the nftables backend: table `inet weft` through libnftnl + libmnl.
 *
 * Layout (all in the one table weft owns):
 *
 *   chain forward { type filter hook forward priority 0; policy accept;
 *     ct state established,related accept
 *     ct state invalid drop
 *     meta mark set mark & ~MASK
 *     iifname vmap @from-endpoint-map      jump from-<if> (egress)
 *     iifname "wft*" mark & ALLOW == 0 drop   (no entry: fail closed)
 *     meta mark set mark & ~MASK
 *     oifname vmap @to-endpoint-map        jump to-<if> (ingress)
 *     oifname "wft*" mark & ALLOW == 0 drop
 *   }
 *   chain input { ... ct rules; ICMPv6 RS/RA/NS/NA from wft* accept;
 *     iifname vmap @from-endpoint-map; no allow: drop;
 *     tcp dport @failsafe-tcp accept; udp dport @failsafe-udp accept;
 *     mark & POLICY accept; iifname "wft*" drop }
 *   chain output { oifname "wft*" accept }
 *
 *   set <program set>   { type ipv4_addr|ipv6_addr; } when it holds host
 *                       addresses only (tags, selectors): a hash set, where
 *                       a member change costs the same at any size;
 *                       { ...; flags interval } when it holds a prefix.
 *   set weft-p.<n>      { type inet_service; flags interval; } the ports
 *                       one action decides in a merged run of rules
 *                       (below).
 *   chain <program chain>  the rules: allow = mark |= ALLOW (| POLICY in a
 *                          policy chain) + return, in an ingress chain
 *                          accept; pass = mark |= PASS + return; deny =
 *                          drop; log = log, go on.
 *   chain from-<if>     clear the bits; anti-spoofing (MAC, addresses);
 *                       per policy: jump it (skipped once PASS is set),
 *                       ALLOW set: return; policies but no PASS: drop;
 *                       per profile: jump it, ALLOW set: return; drop.
 *   chain to-<if>       the same without anti-spoofing and without the
 *                       ALLOW checks (an ingress allow accepts).
 *
 * A jumped chain's accept ends the base chain's evaluation too, so egress
 * (from-<if>) says "allowed" with WEFT_ACL_MARK_ALLOW and `return`: the
 * destination's ingress comes after it in the forward chain, and the
 * input chain reads the POLICY bit. Ingress is the forward chain's last
 * decision, so an ingress allow accepts right away (one rule less per
 * profile walked, and one expression less per allow rule for the kernel
 * to validate on each commit). Endpoint chains drop everything they do
 * not allow. The base chains check the ALLOW bit after the egress
 * dispatch, and drop after the ingress dispatch, so that a weft interface
 * without a map entry (whose packets jump nowhere) is dropped.
 *
 * Every apply is one nfnetlink batch, i.e. one nf_tables transaction: the
 * kernel commits all of it or nothing. The first apply (and any apply
 * after a failure) adds, deletes and recreates the table, like
 * `nft -f` scripts that reload a table. Later applies diff the program
 * against the state of the last one: set elements for membership changes,
 * rules for a changed chain, chains and map elements for an endpoint
 * coming or going.
 *
 * Program chains change rule by rule. Each chain is kept as its list of
 * kernel rules, each with a key (the bytes of what it does) and the
 * handle the kernel gave it: rules are added with NLM_F_ECHO and the
 * kernel's echo carries the handle. A changed chain's old and new lists
 * are matched (common start and end, then Myers' diff of the middle,
 * bounded by DIFF_MAX_D edits); old rules not kept are deleted by handle,
 * new ones inserted before the next kept rule (NFTA_RULE_POSITION without
 * NLM_F_APPEND) or appended. A rule whose echo was lost leaves its chain
 * without known handles: it is flushed and refilled on its next change.
 * Kernel comments carry a rule's origin without its position, so that a
 * rule inserted before others does not change them.
 *
 * Per-apply work follows the change too: sets and chains equal to the
 * last apply's (a memcmp of the elements, a compare of the rules) are
 * taken over, not copied, validated or diffed again; of a changed set or
 * chain only the part between the common start and end is.
 *
 * Packet cost: a kernel rule tests header fields first (family, protocol,
 * ports, ICMP type), set lookups last, so that a packet for another port
 * leaves a rule after a compare. Consecutive rules equal but for their
 * destination ports and their actions (not log rules) become one kernel
 * rule per action with the ports that action decides (the first rule
 * with a port decides it; the actions' ports are disjoint, so the order
 * of those kernel rules does not matter: see weft_acl_run_end() and
 * weft_acl_run_ports()); runs are cut where a rule's port hash says so
 * (about every WEFT_ACL_RUN_AVG rules, at most MERGE_MAX), so that a
 * change in a long run touches one run of a few hundred rules. A run's
 * kernel rule looks its ports up in a named interval set of its own
 * (weft-p.<n>, see krule_pset()), which is not part of its key: a rule
 * joining or leaving a run, or a port changed in it, is a change of set
 * elements, and the kernel rules stay (unless it brings an action new to
 * the run, or takes the last port of one). That matters beyond the bytes
 * sent: every commit that adds a rule makes the kernel validate every
 * rule the base chains reach (below), set elements do not.
 *
 * The batch is sent with one sendmsg(): the kernel processes it inside
 * that call, so its answers are queued on the socket when sendmsg
 * returns. Only errors and echoes are answered, plus an ACK for the last
 * message that tells us the kernel got to the end. Big batches (100,000
 * set elements are a few MB) need a socket send buffer as big as the batch
 * (SO_SNDBUFFORCE, as nft does), many echoes a big receive buffer; each
 * element message holds at most NFT_ELEMS_PER_MSG elements to stay below
 * the 64 KiB attribute limit. Every new set carries an NFTA_SET_ID
 * (current kernels refuse a new map without one).
 *
 * Drift (nft_check()): every rule weft adds or deletes is echoed by the
 * kernel, and a census of the table's rules (struct census) follows the
 * echoes; a check compares it, and every named set's and map's elements
 * (sets_wanted()), with a dump, unless the ruleset's generation shows no
 * commit since the last good check. A difference makes the next apply a
 * full one.
 *
 * Costs measured on the lab kernel (6.18), 100,000 members and 10,000
 * rules (bench/run-acl-bench, docs/benchmarks.md): a full load ~0.15 s;
 * one member added ~0.01 ms; one rule added to a run ~0.02-0.04 ms (set
 * elements; allow and deny rules alternating alike); a rule that is a
 * kernel rule of its own ~1 ms: adding a rule
 * with a verdict makes the kernel validate every chain reachable from the
 * base chains at commit (nft_table_validate), in proportion to the
 * ruleset, and rebuild the chain's rule blob, in proportion to the
 * chain.
 */
#include "acl/acl-backend.h"
#include "lib/log.h"
#include "lib/netlink.h"

#include <arpa/inet.h>
#include <endian.h>
#include <inttypes.h>
#include <limits.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/socket.h>
#include <time.h>

#define T_NAME WEFT_ACL_NFT_TABLE
#define MAP_FROM "from-endpoint-map"
#define MAP_TO "to-endpoint-map"
#define SET_FS_TCP "failsafe-tcp"
#define SET_FS_UDP "failsafe-udp"
#define EP_FROM "from-" /* + ifname: an endpoint's egress chain */
#define EP_TO "to-"     /* + ifname: its ingress chain */

/* nft's datatype numbers (src/datatype.h), so `nft list` names the types. */
#define DT_IPADDR 7
#define DT_IP6ADDR 8
#define DT_INET_SERVICE 13
#define DT_IFNAME 41

#define NFT_ELEMS_PER_MSG 512  /* interval elements (start + end) per message: < 64 KiB */
#define NFT_MSG_ROOM (96 * 1024) /* reserved per message while building */
#define NFT_COMMENT_MAX 128

/* One kernel rule of a program chain: the program rule first (count 1),
 * or, of a merged run of rules [first, first + count), the one for one
 * action (a run has one per action that decides a port, consecutive, all
 * with the same first and count: see krule_at()). A merged run's kernel
 * rule looks its destination ports up in a named set of its own ("port
 * set", see krule_pset()): its key leaves the ports out, so that a run
 * whose ports change keeps its kernel rules and the change is set
 * elements. */
struct krule {
	size_t first, count;
	enum weft_acl_action action; /* what it does (of a mixed run: one of its rules' actions) */
	uint64_t hash;
	char *key; /* what the kernel rule does, as bytes: equal keys, equal rules */
	size_t keylen;
	uint64_t handle; /* the kernel's handle, 0 = not known (yet) */
	uint64_t pset;   /* its port set's number while the kernel has it, else 0 */
	struct weft_acl_portrange *pr; /* of a merged run: the ports its action decides, merged ranges (owned) */
	size_t npr;
};

/* The kernel rules of one program chain, in order. */
struct kchain {
	struct krule *r;
	size_t n;
	bool handles_ok; /* every handle is known: rule-level updates possible */
	bool refill;     /* this apply flushed the chain: every rule is added anew */
};

/* What the kernel has: a canonical copy (sorted, masked) of the program,
 * and per chain (same index) its kernel rules with their handles, per set
 * (same index) whether it is an interval set. */
struct state {
	struct weft_acl_program *prog;
	struct kchain *kc;
	bool *iv;
	struct ovl *ov; /* per set (same index), or NULL: members changed by updates, see struct ovl */
};

/* Member changes of a state set that updates made and that are not yet
 * merged into its sorted elements (a merge costs the set's size; these
 * cost the change's). Both sorted; add is disjoint from the elements, del
 * a subset of them. Merged when they grow past OVL_MAX and before every
 * apply (which compares whole sets anyway). */
struct ovl {
	struct weft_cidr *add, *del;
	size_t n_add, n_del;
};

#define OVL_MAX 1024

#define NFT_RBUF_SIZE (256 * 1024)

/* Every rule of our table, as a fingerprint: how many, and the sum and
 * xor of a mix of each one's chain, handle and expressions (as the kernel
 * reports them). A rule added, deleted or replaced by anyone changes it.
 * Ours are counted from the kernel's echoes of our own batches (NEWRULE;
 * DELRULE for rules we delete, flush or delete with their chain, which
 * may come without expressions: the mix of each live rule is kept by
 * handle, struct cen_ent), nft_check() compares it with a dump. */
struct census {
	uint64_t n, sum, x;
};

/* A rule of the table by handle (unique in the table, given out in
 * increasing order), with its mix; mix 0: deleted. Sorted by handle. */
struct cen_ent {
	uint64_t handle, mix;
};

struct nft_backend {
	struct weft_acl_backend base;
	struct mnl_socket *nl;
	/* NULL: the next apply replaces the whole table. */
	struct state *last;
	struct census cen;
	bool cen_ok;     /* cen counts every rule of the table (no echo lost since the last full load) */
	bool cen_reload; /* the census cannot be trusted and the table may hold others' changes: reload */
	struct cen_ent *ce;
	size_t n_ce, cap_ce, n_dead;
	/* The ruleset generation (of the whole namespace: every commit by
	 * anyone bumps it) that the last good check saw; none of our batches
	 * since when gen_ok. */
	uint32_t gen;
	bool gen_ok;
	uint32_t seq;
	uint64_t pset_seq; /* the last port set number given out */
	char *rbuf; /* NFT_RBUF_SIZE, for the kernel's answers */
};

static int fail(char **errmsg, int r, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int fail(char **errmsg, int r, const char *fmt, ...)
{
	va_list ap;

	if (errmsg && !*errmsg) {
		va_start(ap, fmt);
		*errmsg = wvasprintf(fmt, ap);
		va_end(ap);
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* Canonical program copies                                            */
/* ------------------------------------------------------------------ */

static int cidr_cmp(const struct weft_cidr *x, const struct weft_cidr *y)
{
	int c = weft_ip_cmp(&x->ip, &y->ip);

	if (c)
		return c;
	return x->prefixlen < y->prefixlen ? -1 : x->prefixlen > y->prefixlen;
}

static int cidr_qcmp(const void *a, const void *b)
{
	return cidr_cmp(a, b);
}

static void *arr_dup(const void *p, size_t n, size_t size)
{
	return n ? wmemdup(p, n * size) : NULL;
}

static char *str_dup0(const char *s)
{
	return s ? wstrdup(s) : NULL;
}

/* The length of a rule's origin without its position: "profile WEB
 * inbound rule 3" -> "profile WEB inbound". */
static size_t origin_len(const char *o)
{
	size_t n = strlen(o), i = n;

	while (i > 0 && o[i - 1] >= '0' && o[i - 1] <= '9')
		i--;
	if (i < n && i >= 6 && memcmp(o + i - 6, " rule ", 6) == 0)
		return i - 6;
	return n;
}

/* Origins equal but for the position: a rule inserted before others
 * renumbers them without changing what they do. */
static bool origin_eq(const char *a, const char *b)
{
	size_t na, nb;

	if (!a || !b)
		return a == b;
	if (streq(a, b))
		return true;
	na = origin_len(a);
	nb = origin_len(b);
	return na == nb && memcmp(a, b, na) == 0;
}

static int set_qcmp(const void *a, const void *b)
{
	return strcmp(((const struct weft_acl_set *)a)->name, ((const struct weft_acl_set *)b)->name);
}

static int chain_qcmp(const void *a, const void *b)
{
	return strcmp(((const struct weft_acl_chain *)a)->name, ((const struct weft_acl_chain *)b)->name);
}

static int ep_qcmp(const void *a, const void *b)
{
	return strcmp(((const struct weft_acl_endpoint *)a)->ifname, ((const struct weft_acl_endpoint *)b)->ifname);
}

static int fs_qcmp(const void *a, const void *b)
{
	const struct weft_acl_failsafe *x = a, *y = b;

	if (x->proto != y->proto)
		return x->proto < y->proto ? -1 : 1;
	return x->port < y->port ? -1 : x->port > y->port;
}

static void sort_if_needed(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	for (size_t i = 1; i < n; i++) {
		if (cmp((char *)base + (i - 1) * size, (char *)base + i * size) > 0) {
			qsort(base, n, size, cmp);
			return;
		}
	}
}

static void kchain_clear(struct kchain *k)
{
	for (size_t i = 0; i < k->n; i++) {
		free(k->r[i].key);
		free(k->r[i].pr);
	}
	free(k->r);
	memset(k, 0, sizeof(*k));
}

static void state_free(struct state *s)
{
	if (!s)
		return;
	if (s->prog)
		for (size_t i = 0; i < s->prog->n_chains; i++)
			kchain_clear(&s->kc[i]);
	free(s->kc);
	free(s->iv);
	if (s->ov)
		for (size_t i = 0; i < s->prog->n_sets; i++) {
			free(s->ov[i].add);
			free(s->ov[i].del);
		}
	free(s->ov);
	weft_acl_program_free(s->prog);
	free(s);
}

/* How a new program relates to the last one, by the new program's set
 * and chain indexes. "same" parts were taken over from the last program
 * (not copied, not validated again, not diffed). */
struct set_reuse {
	bool same;       /* elements equal to the last program's */
	bool checked;    /* elements known to be canonical and valid */
	size_t pre, suf; /* elements equal to the last program's at the start and end */
};

struct chain_reuse {
	bool same;       /* rules equal to the last program's: taken over with their kernel rules */
	bool had;        /* the last program has the chain (index oi) */
	bool old;        /* ... of the same kind: its kernel rules are updated */
	size_t oi;
	size_t pre, suf; /* rules equal at the start and end (taken over) */
	/* The kernel rules that differ, old [olo, ohi) and new [nlo, nhi)
	 * (the others were taken over with their handles). */
	size_t olo, ohi, nlo, nhi;
};

struct reuse {
	struct set_reuse *set;
	struct chain_reuse *chain;
	bool sets_reshaped; /* a set came, went or changed family: check every rule's references */
};

static void reuse_free(struct reuse *ru)
{
	free(ru->set);
	free(ru->chain);
}

static const struct weft_acl_set *canon_set(const struct weft_acl_program *p, const char *name);
static const struct weft_acl_chain *canon_chain(const struct weft_acl_program *p, const char *name);
static bool rule_eq(const struct weft_acl_rule *a, const struct weft_acl_rule *b);
static void equal_ends(const struct weft_acl_rule *nw, size_t n, const struct weft_acl_rule *old, size_t m,
		       struct chain_reuse *cr);
static bool hosts_only(const struct weft_acl_set *s);

static bool is_host(const struct weft_cidr *c)
{
	return c->prefixlen == weft_ip_bits(&c->ip);
}

/* How many elements a and b have in common at their start (byte-wise: a
 * struct weft_cidr has no padding). */
static size_t elems_prefix(const struct weft_cidr *a, const struct weft_cidr *b, size_t n)
{
	const size_t step = 256;
	size_t i = 0;

	while (i + step <= n && memcmp(a + i, b + i, step * sizeof(*a)) == 0)
		i += step;
	while (i < n && memcmp(a + i, b + i, sizeof(*a)) == 0)
		i++;
	return i;
}

/* ... and at their end (a has na elements, b nb; at most n). */
static size_t elems_suffix(const struct weft_cidr *a, size_t na, const struct weft_cidr *b, size_t nb, size_t n)
{
	const size_t step = 256;
	size_t i = 0;

	while (i + step <= n && memcmp(a + na - i - step, b + nb - i - step, step * sizeof(*a)) == 0)
		i += step;
	while (i < n && memcmp(a + na - i - 1, b + nb - i - 1, sizeof(*a)) == 0)
		i++;
	return i;
}

/* Are the caller's elements src[lo, hi) canonical and valid for a set of
 * family fam, and in order with their neighbours src[lo - 1] and src[hi]
 * (of n)? Canonical: masked, each starting after the previous one's last
 * address (sorted, no duplicates, no overlaps). */
static bool elems_ok(const struct weft_cidr *src, size_t n, size_t lo, size_t hi, int fam)
{
	struct weft_ip last;

	for (size_t k = lo ? lo - 1 : 0; k < hi + 1 && k < n; k++) {
		struct weft_cidr c = src[k];

		if (c.ip.family != fam || c.prefixlen > weft_ip_bits(&c.ip))
			return false;
		weft_cidr_mask(&c);
		if (memcmp(&c, &src[k], sizeof(c)) != 0)
			return false;
		if (k >= lo && k > 0 && weft_ip_cmp(&c.ip, &last) <= 0)
			return false;
		weft_cidr_last(&c, &last);
	}
	return true;
}

/* The canonical elements of set d (which points at the caller's), taken
 * over from or patched from the last program's set o (may be NULL). */
static void set_canon(struct weft_acl_set *d, struct weft_acl_set *o, bool o_iv, bool *iv, struct set_reuse *sr)
{
	const struct weft_cidr *src = d->elems;
	size_t n = d->n_elems, m = 0;

	if (o && o->family == d->family) {
		size_t lim = n < o->n_elems ? n : o->n_elems;
		size_t pre = elems_prefix(src, o->elems, lim);
		size_t suf = elems_suffix(src, n, o->elems, o->n_elems, lim - pre);

		if (pre == n && n == o->n_elems) {
			/* Equal (the common case by far): taken over. */
			d->elems = TAKE_PTR(o->elems);
			o->n_elems = 0;
			*iv = o_iv;
			sr->same = sr->checked = true;
			return;
		}
		if (elems_ok(src, n, pre, n - suf, d->family)) {
			/* Only the middle differs, and it is canonical: the
			 * kind follows from the middles alone unless a prefix
			 * left. */
			bool left = false;

			*iv = o_iv;
			for (size_t k = pre; k < n - suf; k++)
				if (!is_host(&src[k]))
					*iv = true;
			for (size_t k = pre; k < o->n_elems - suf && o_iv; k++)
				if (!is_host(&o->elems[k]))
					left = true;
			d->elems = arr_dup(src, n, sizeof(*src));
			if (left)
				*iv = !hosts_only(d);
			sr->checked = true;
			sr->pre = pre;
			sr->suf = suf;
			return;
		}
	}
	d->elems = arr_dup(src, n, sizeof(*src));
	for (size_t k = 0; k < d->n_elems; k++)
		weft_cidr_mask(&d->elems[k]);
	sort_if_needed(d->elems, d->n_elems, sizeof(*d->elems), cidr_qcmp);
	for (size_t k = 0; k < d->n_elems; k++)
		if (m == 0 || cidr_cmp(&d->elems[m - 1], &d->elems[k]) != 0)
			d->elems[m++] = d->elems[k];
	d->n_elems = m;
	*iv = !hosts_only(d);
}

/* Canonical state for program p: every array sorted by name, set
 * elements masked, sorted and deduplicated, failsafe entries sorted and
 * deduplicated (sorted arrays make the diff a merge walk and lookups a
 * binary search). What equals the last state old (may be NULL) is taken
 * over from it instead of being copied: whole sets and chains, and the
 * unchanged start and end of changed ones, so that an apply costs in
 * proportion to what changed, not to the size of the program (a compare
 * of what the caller gives aside). Kernel rules of changed chains are
 * computed after validation (chain_krules_update()). */
static struct state *state_canon(const struct weft_acl_program *p, struct state *old, struct reuse *ru)
{
	struct weft_acl_program *op = old ? old->prog : NULL;
	struct state *ns = wcalloc(1, sizeof(*ns));
	struct weft_acl_program *c = ns->prog = wcalloc(1, sizeof(*c));

	memset(ru, 0, sizeof(*ru));
	/* Shallow copies first: after the sort, each entry still points at
	 * the caller's data, which is then copied or replaced by the old
	 * state's. */
	c->n_sets = p->n_sets;
	c->sets = arr_dup(p->sets, p->n_sets, sizeof(*p->sets));
	sort_if_needed(c->sets, c->n_sets, sizeof(*c->sets), set_qcmp);
	ns->iv = wcalloc(c->n_sets + 1, sizeof(*ns->iv));
	ru->set = wcalloc(c->n_sets + 1, sizeof(*ru->set));
	ru->sets_reshaped = !op || op->n_sets != c->n_sets;
	for (size_t i = 0; i < c->n_sets; i++) {
		struct weft_acl_set *d = &c->sets[i];
		struct weft_acl_set *o = op ? (struct weft_acl_set *)canon_set(op, d->name) : NULL;

		d->name = wstrdup(d->name);
		d->origin = str_dup0(d->origin);
		if (!o || o->family != d->family)
			ru->sets_reshaped = true;
		set_canon(d, o, o ? old->iv[o - op->sets] : false, &ns->iv[i], &ru->set[i]);
	}

	c->n_chains = p->n_chains;
	c->chains = arr_dup(p->chains, p->n_chains, sizeof(*p->chains));
	sort_if_needed(c->chains, c->n_chains, sizeof(*c->chains), chain_qcmp);
	ns->kc = wcalloc(c->n_chains + 1, sizeof(*ns->kc));
	ru->chain = wcalloc(c->n_chains + 1, sizeof(*ru->chain));
	for (size_t i = 0; i < c->n_chains; i++) {
		struct weft_acl_chain *d = &c->chains[i];
		struct weft_acl_chain *o = op ? (struct weft_acl_chain *)canon_chain(op, d->name) : NULL;
		struct chain_reuse *cr = &ru->chain[i];
		const struct weft_acl_rule *src = d->rules;
		size_t n = d->n_rules, m = o ? o->n_rules : 0;

		d->name = wstrdup(d->name);
		d->origin = str_dup0(d->origin);
		d->rules = NULL;
		cr->had = o != NULL;
		cr->oi = o ? (size_t)(o - op->chains) : 0;
		if (o && o->kind == d->kind) {
			cr->old = true;
			equal_ends(src, n, o->rules, m, cr);
			if (cr->pre == n && n == m) {
				/* Equal (origins may differ in the position
				 * only: stored origins are only ever compared
				 * without it). */
				d->rules = TAKE_PTR(o->rules);
				o->n_rules = 0;
				cr->same = true;
				ns->kc[i] = old->kc[cr->oi];
				memset(&old->kc[cr->oi], 0, sizeof(struct kchain));
				continue;
			}
		}
		/* The equal rules at the start and end are taken over. */
		d->rules = n ? wcalloc(n, sizeof(*d->rules)) : NULL;
		if (cr->pre + cr->suf) {
			memcpy(d->rules, o->rules, cr->pre * sizeof(*d->rules));
			memset(o->rules, 0, cr->pre * sizeof(*d->rules));
			memcpy(d->rules + n - cr->suf, o->rules + m - cr->suf, cr->suf * sizeof(*d->rules));
			memset(o->rules + m - cr->suf, 0, cr->suf * sizeof(*d->rules));
		}
		for (size_t k = cr->pre; k < n - cr->suf; k++)
			weft_acl_rule_copy(&d->rules[k], &src[k]);
	}

	c->n_endpoints = p->n_endpoints;
	c->endpoints = arr_dup(p->endpoints, p->n_endpoints, sizeof(*p->endpoints));
	sort_if_needed(c->endpoints, c->n_endpoints, sizeof(*c->endpoints), ep_qcmp);
	for (size_t i = 0; i < c->n_endpoints; i++)
		weft_acl_endpoint_copy(&c->endpoints[i], &c->endpoints[i]);

	c->failsafe = arr_dup(p->failsafe, p->n_failsafe, sizeof(*p->failsafe));
	c->n_failsafe = p->n_failsafe;
	sort_if_needed(c->failsafe, c->n_failsafe, sizeof(*c->failsafe), fs_qcmp);
	if (c->n_failsafe) {
		size_t m = 1;

		for (size_t k = 1; k < c->n_failsafe; k++)
			if (fs_qcmp(&c->failsafe[m - 1], &c->failsafe[k]) != 0)
				c->failsafe[m++] = c->failsafe[k];
		c->n_failsafe = m;
	}
	return ns;
}

/* Binary search in a canonical program. */
static const struct weft_acl_set *canon_set(const struct weft_acl_program *p, const char *name)
{
	struct weft_acl_set key = {.name = (char *)name};

	return p->n_sets ? bsearch(&key, p->sets, p->n_sets, sizeof(key), set_qcmp) : NULL;
}

static const struct weft_acl_chain *canon_chain(const struct weft_acl_program *p, const char *name)
{
	struct weft_acl_chain key = {.name = (char *)name};

	return p->n_chains ? bsearch(&key, p->chains, p->n_chains, sizeof(key), chain_qcmp) : NULL;
}

/* ------------------------------------------------------------------ */
/* Validation: refuse what the kernel would refuse, with a better text  */
/* ------------------------------------------------------------------ */

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > WEFT_ACL_NAME_MAX)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      *c == '_'))
			return false;
	/* The backend's own objects. */
	return !startswith(s, EP_FROM) && !startswith(s, EP_TO) && !startswith(s, "failsafe-") &&
	       !streq(s, "forward") && !streq(s, "input") && !streq(s, "output");
}

static bool ifname_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= IFNAMSIZ)
		return false;
	for (const char *c = s; *c; c++)
		if (*c <= ' ' || *c == '/' || *c == '"' || *c == '\\' || *c >= 0x7f)
			return false;
	return true;
}

static bool ports_ok(const struct weft_acl_portrange *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].lo > r[i].hi)
			return false;
	return true;
}

static bool is_port_proto(int proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP || proto == IPPROTO_UDPLITE;
}

static int check_rule(const struct weft_acl_program *p, const struct weft_acl_chain *c, size_t idx,
		      const struct weft_acl_rule *r, char **errmsg)
{
	int fam = r->family;

#define RFAIL(fmt, ...) fail(errmsg, -EINVAL, "chain %s rule %zu: " fmt, c->name, idx + 1, ##__VA_ARGS__)
	if ((unsigned)r->action > WEFT_ACL_PASS)
		return RFAIL("bad action %d", (int)r->action);
	if (fam != 0 && fam != AF_INET && fam != AF_INET6)
		return RFAIL("bad family %d", fam);
	if (r->proto < -1 || r->proto > 255 || r->not_proto < -1 || r->not_proto > 255)
		return RFAIL("bad protocol");
	for (size_t i = 0; i < r->n_addrs; i++) {
		const struct weft_acl_set *s = r->addrs[i].set ? canon_set(p, r->addrs[i].set) : NULL;

		if (!s)
			return RFAIL("unknown set %s", r->addrs[i].set ? r->addrs[i].set : "(null)");
		if (fam && s->family != fam)
			return RFAIL("set %s is not of the rule's family", s->name);
		fam = s->family;
	}
	if ((r->n_sports || r->n_not_sports || r->n_dports || r->n_not_dports) && !is_port_proto(r->proto))
		return RFAIL("ports need protocol tcp, udp, sctp or udplite");
	if (!ports_ok(r->sports, r->n_sports) || !ports_ok(r->not_sports, r->n_not_sports) ||
	    !ports_ok(r->dports, r->n_dports) || !ports_ok(r->not_dports, r->n_not_dports))
		return RFAIL("port range with lo > hi");
	if ((r->icmp_type >= 0 || r->not_icmp_type >= 0) && r->proto != IPPROTO_ICMP && r->proto != IPPROTO_ICMPV6)
		return RFAIL("icmp type needs protocol icmp or icmpv6");
	if (r->icmp_type > 255 || r->icmp_code > 255 || r->not_icmp_type > 255 || r->not_icmp_code > 255 ||
	    (r->icmp_code >= 0 && r->icmp_type < 0) || (r->not_icmp_code >= 0 && r->not_icmp_type < 0))
		return RFAIL("bad icmp type/code");
	if (r->action == WEFT_ACL_LOG && r->log_prefix && strlen(r->log_prefix) > WEFT_ACL_LOG_PREFIX_MAX)
		return RFAIL("log prefix longer than %d", WEFT_ACL_LOG_PREFIX_MAX);
#undef RFAIL
	return 0;
}

static int check_refs(const struct weft_acl_program *p, const struct weft_acl_endpoint *e, char *const *v, size_t n,
		      char **errmsg)
{
	for (size_t i = 0; i < n; i++)
		if (!v[i] || !canon_chain(p, v[i]))
			return fail(errmsg, -EINVAL, "endpoint %s (%s): unknown chain %s", e->name ? e->name : "?",
				    e->ifname, v[i] ? v[i] : "(null)");
	return 0;
}

/* Sets and chains taken over from the last state (ru) were checked
 * then; their rules' references are checked again only when the sets
 * changed shape. */
static int validate(const struct weft_acl_program *p, const struct reuse *ru, char **errmsg)
{
	size_t lo, hi;
	int r;

	for (size_t i = 0; i < p->n_sets; i++) {
		const struct weft_acl_set *s = &p->sets[i];
		struct weft_ip last = {0};

		if (!name_ok(s->name))
			return fail(errmsg, -EINVAL, "bad set name \"%s\"", s->name ? s->name : "");
		if (i && streq(p->sets[i - 1].name, s->name))
			return fail(errmsg, -EINVAL, "set %s defined twice", s->name);
		if (s->family != AF_INET && s->family != AF_INET6)
			return fail(errmsg, -EINVAL, "set %s: bad family %d", s->name, s->family);
		for (size_t k = 0; k < s->n_elems && !ru->set[i].checked; k++) {
			const struct weft_cidr *c = &s->elems[k];
			char a[WEFT_CIDR_STRLEN];

			if (c->ip.family != s->family || c->prefixlen > weft_ip_bits(&c->ip))
				return fail(errmsg, -EINVAL, "set %s: element %zu is not a valid %s prefix", s->name,
					    k, s->family == AF_INET ? "IPv4" : "IPv6");
			/* Sorted by start: an overlap shows as a start at or
			 * below the previous element's last address. */
			if (k && weft_ip_cmp(&c->ip, &last) <= 0)
				return fail(errmsg, -EINVAL, "set %s: element %s overlaps another", s->name,
					    weft_cidr_str(c, a, sizeof(a)));
			weft_cidr_last(c, &last);
		}
	}
	for (size_t i = 0; i < p->n_chains; i++) {
		const struct weft_acl_chain *c = &p->chains[i];

		if (!name_ok(c->name))
			return fail(errmsg, -EINVAL, "bad chain name \"%s\"", c->name ? c->name : "");
		if (i && streq(p->chains[i - 1].name, c->name))
			return fail(errmsg, -EINVAL, "chain %s defined twice", c->name);
		if (canon_set(p, c->name))
			return fail(errmsg, -EINVAL, "chain %s has the name of a set", c->name);
		/* Rules taken over were checked against sets of the same
		 * names and families. */
		lo = 0;
		hi = c->n_rules;
		if (!ru->sets_reshaped && ru->chain[i].same) {
			lo = hi;
		} else if (!ru->sets_reshaped && ru->chain[i].old) {
			lo = ru->chain[i].pre;
			hi = c->n_rules - ru->chain[i].suf;
		}
		for (size_t k = lo; k < hi; k++)
			if ((r = check_rule(p, c, k, &c->rules[k], errmsg)) < 0)
				return r;
	}
	for (size_t i = 0; i < p->n_endpoints; i++) {
		const struct weft_acl_endpoint *e = &p->endpoints[i];

		if (!ifname_ok(e->ifname))
			return fail(errmsg, -EINVAL, "endpoint %s: bad interface name", e->name ? e->name : "?");
		if (i && streq(p->endpoints[i - 1].ifname, e->ifname))
			return fail(errmsg, -EINVAL, "interface %s has two endpoints", e->ifname);
		for (size_t k = 0; k < e->n_addrs; k++)
			if (e->addrs[k].ip.family != AF_INET && e->addrs[k].ip.family != AF_INET6)
				return fail(errmsg, -EINVAL, "endpoint %s: address %zu has no family", e->ifname, k);
		if ((r = check_refs(p, e, e->in_policies, e->n_in_policies, errmsg)) < 0 ||
		    (r = check_refs(p, e, e->in_profiles, e->n_in_profiles, errmsg)) < 0 ||
		    (r = check_refs(p, e, e->out_policies, e->n_out_policies, errmsg)) < 0 ||
		    (r = check_refs(p, e, e->out_profiles, e->n_out_profiles, errmsg)) < 0)
			return r;
	}
	for (size_t i = 0; i < p->n_failsafe; i++)
		if (p->failsafe[i].proto != IPPROTO_TCP && p->failsafe[i].proto != IPPROTO_UDP)
			return fail(errmsg, -EINVAL, "failsafe entry %zu: protocol %u is not tcp or udp", i,
				    p->failsafe[i].proto);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The batch                                                            */
/* ------------------------------------------------------------------ */

struct msg_info {
	uint16_t type;
	char what[40];   /* the object's name, for error messages */
	struct krule *kr; /* a rule added with NLM_F_ECHO: gets the handle the kernel echoes */
};

struct batch {
	char *buf;
	size_t len, cap;
	uint32_t seq0, seq;
	struct msg_info *info; /* by seq - seq0 */
	size_t n_info, cap_info;
	uint32_t last_seq; /* the message carrying NLM_F_ACK */
	uint32_t set_id;   /* for anonymous sets */
	uint64_t *pset_seq; /* the backend's port set numbers */
	size_t n_echo;     /* echoes to expect, about (rules added or deleted) */
	bool fresh;        /* replaces the table: the census starts from zero */
	bool cen_reset;    /* ... and has been reset by the first echo */
	struct weft_acl_stats *st;
};

static void batch_init(struct batch *b, uint32_t seq, struct weft_acl_stats *st)
{
	memset(b, 0, sizeof(*b));
	b->seq0 = b->seq = seq;
	b->set_id = 1;
	b->st = st;
}

static void batch_free(struct batch *b)
{
	free(b->buf);
	free(b->info);
}

static void *batch_room(struct batch *b)
{
	if (b->cap - b->len < NFT_MSG_ROOM) {
		size_t cap = b->cap ? b->cap * 2 : 256 * 1024;

		while (cap - b->len < NFT_MSG_ROOM)
			cap *= 2;
		b->buf = wrealloc(b->buf, cap);
		/* Zeroed so that unused padding bytes are deterministic. */
		memset(b->buf + b->cap, 0, cap - b->cap);
		b->cap = cap;
	}
	return b->buf + b->len;
}

static void batch_note(struct batch *b, uint16_t type, const char *what)
{
	if (b->n_info == b->cap_info) {
		b->cap_info = b->cap_info ? b->cap_info * 2 : 256;
		b->info = wrealloc(b->info, b->cap_info * sizeof(*b->info));
	}
	b->info[b->n_info].type = type;
	weft_strlcpy(b->info[b->n_info].what, what ? what : "", sizeof(b->info[b->n_info].what));
	b->info[b->n_info].kr = NULL;
	b->n_info++;
}

static struct nlmsghdr *msg_start(struct batch *b, uint16_t type, uint16_t flags, const char *what)
{
	void *p = batch_room(b);

	batch_note(b, type, what);
	return nftnl_nlmsg_build_hdr(p, type, NFPROTO_INET, flags, b->seq++);
}

static void msg_end(struct batch *b, struct nlmsghdr *nlh)
{
	/* Messages are bounded by construction (elements per message, rule
	 * size); going past the room would have overwritten memory. */
	if (nlh->nlmsg_len > NFT_MSG_ROOM)
		abort();
	b->len += NLMSG_ALIGN(nlh->nlmsg_len);
}

/* Objects messages only, between the begin and end markers. */
static size_t batch_objects(const struct batch *b)
{
	return b->n_info;
}

static void put_table(struct batch *b, uint16_t type, uint16_t flags)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!t)
		abort();
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, T_NAME);
	nlh = msg_start(b, type, flags, "table " T_NAME);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	msg_end(b, nlh);
}

/* hook < 0: a regular chain. */
static void put_chain(struct batch *b, uint16_t type, const char *name, int hook)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;

	if (!c)
		abort();
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, T_NAME);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	if (hook >= 0 && type == NFT_MSG_NEWCHAIN) {
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, 0);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	/* A chain deleted goes with its rules: their DELRULE echoes keep
	 * the census. */
	nlh = msg_start(b, type, type == NFT_MSG_NEWCHAIN ? NLM_F_CREATE | NLM_F_EXCL : NLM_F_ECHO, name);
	if (type == NFT_MSG_DELCHAIN)
		b->n_echo += 32;
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	msg_end(b, nlh);
}

/* Delete every rule of a chain (nft flush chain). */
static void put_flush(struct batch *b, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *nlh;

	if (!r)
		abort();
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, T_NAME);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nlh = msg_start(b, NFT_MSG_DELRULE, NLM_F_ECHO, chain);
	b->n_echo += 32;
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	msg_end(b, nlh);
}

/* Delete one rule by its handle. */
static void put_delrule(struct batch *b, const char *chain, uint64_t handle)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *nlh;

	if (!r)
		abort();
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, T_NAME);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u64(r, NFTNL_RULE_HANDLE, handle);
	nlh = msg_start(b, NFT_MSG_DELRULE, NLM_F_ECHO, chain);
	b->n_echo++;
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	msg_end(b, nlh);
}

struct set_spec {
	const char *name;
	uint32_t id;      /* 0: none */
	uint32_t flags;   /* NFT_SET_* */
	uint32_t key_type, key_len;
	bool vmap;
};

static struct nftnl_set *set_obj(const struct set_spec *sp)
{
	struct nftnl_set *s = nftnl_set_alloc();

	if (!s)
		abort();
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, T_NAME);
	nftnl_set_set_str(s, NFTNL_SET_NAME, sp->name);
	if (sp->id)
		nftnl_set_set_u32(s, NFTNL_SET_ID, sp->id);
	return s;
}

static void put_set(struct batch *b, uint16_t type, const struct set_spec *sp)
{
	struct nftnl_set *s = set_obj(sp);
	struct nlmsghdr *nlh;

	if (type == NFT_MSG_NEWSET) {
		if (!sp->id)
			nftnl_set_set_u32(s, NFTNL_SET_ID, b->set_id++);
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, sp->flags | (sp->vmap ? NFT_SET_MAP : 0));
		nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, sp->key_type);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, sp->key_len);
		if (sp->vmap) {
			nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
			nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, 0);
		}
		if (sp->key_type == DT_IFNAME) {
			/* Interface names are host-order strings: tell nft,
			 * or `nft list` shows the keys byte-swapped. */
			struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(64);

			if (!u)
				abort();
			nftnl_udata_put_u32(u, NFTNL_UDATA_SET_KEYBYTEORDER, 1 /* nft's BYTEORDER_HOST_ENDIAN */);
			nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(u), nftnl_udata_buf_len(u));
			nftnl_udata_buf_free(u);
		}
	}
	nlh = msg_start(b, type, type == NFT_MSG_NEWSET ? NLM_F_CREATE | NLM_F_EXCL : 0, sp->name);
	nftnl_set_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	msg_end(b, nlh);
}

/* Set elements, collected into messages of at most NFT_ELEMS_PER_MSG;
 * with cen, only counted into that census (what a set should hold, for
 * the drift check: the same code says what is sent and what is there). */
struct elems {
	struct batch *b;
	const struct set_spec *sp;
	uint16_t type; /* NEWSETELEM or DELSETELEM */
	struct nftnl_set *cur;
	size_t n;
	struct census *cen;
};

static void census_fold(struct census *c, uint64_t mix, bool add);
static uint64_t elem_mix(const void *key, size_t len, bool end, const char *jump);

static void elems_flush(struct elems *e)
{
	struct nlmsghdr *nlh;

	if (!e->cur)
		return;
	nlh = msg_start(e->b, e->type, e->type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE | NLM_F_EXCL : 0, e->sp->name);
	nftnl_set_elems_nlmsg_build_payload(nlh, e->cur);
	msg_end(e->b, nlh);
	nftnl_set_free(e->cur);
	e->cur = NULL;
	e->n = 0;
}

static void elems_add(struct elems *e, const void *key, size_t len, bool end, const char *jump)
{
	struct nftnl_set_elem *el;

	if (e->cen) {
		census_fold(e->cen, elem_mix(key, len, end, jump), true);
		return;
	}
	el = nftnl_set_elem_alloc();
	if (!el)
		abort();
	if (!e->cur)
		e->cur = set_obj(e->sp);
	nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, key, (uint32_t)len);
	if (end)
		nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
	if (jump) {
		nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, NFT_JUMP);
		nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_CHAIN, jump);
	}
	nftnl_set_elem_add(e->cur, el);
	if (++e->n >= NFT_ELEMS_PER_MSG)
		elems_flush(e);
}

/* One prefix as set elements: in a hash set, the address. In an interval
 * set, its first address, and the address
 * after its last one flagged as the interval's end (none when the prefix
 * reaches the top of the address space: the end is then implicit). */
static void elems_cidr(struct elems *e, const struct weft_cidr *c)
{
	size_t len = c->ip.family == AF_INET ? 4 : 16;
	struct weft_ip last;
	uint8_t end[16];
	int i;

	elems_add(e, c->ip.bytes, len, false, NULL);
	if (!(e->sp->flags & NFT_SET_INTERVAL))
		return;
	weft_cidr_last(c, &last);
	memcpy(end, last.bytes, len);
	for (i = (int)len - 1; i >= 0; i--)
		if (++end[i] != 0)
			break;
	if (i >= 0)
		elems_add(e, end, len, true, NULL);
}

static void ifname_key(const char *ifname, char key[IFNAMSIZ])
{
	memset(key, 0, IFNAMSIZ);
	weft_strlcpy(key, ifname, IFNAMSIZ);
}

/* ------------------------------------------------------------------ */
/* Rules                                                               */
/* ------------------------------------------------------------------ */

static struct nftnl_expr *expr(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (!e)
		abort();
	nftnl_rule_add_expr(r, e);
	return e;
}

static void e_meta(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = expr(r, "meta");

	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
}

static void e_cmp(struct nftnl_rule *r, uint32_t op, const void *data, size_t len)
{
	struct nftnl_expr *e = expr(r, "cmp");

	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, (uint32_t)len);
}

static void e_range(struct nftnl_rule *r, uint32_t op, const void *from, const void *to, size_t len)
{
	struct nftnl_expr *e = expr(r, "range");

	nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_RANGE_FROM_DATA, from, (uint32_t)len);
	nftnl_expr_set(e, NFTNL_EXPR_RANGE_TO_DATA, to, (uint32_t)len);
}

static void e_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len)
{
	struct nftnl_expr *e = expr(r, "payload");

	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
}

/* reg1 = (reg1 & mask) ^ xor, 4 bytes. */
static void e_bitwise(struct nftnl_rule *r, uint32_t mask, uint32_t xor)
{
	struct nftnl_expr *e = expr(r, "bitwise");

	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &xor, sizeof(xor));
}

static void e_lookup(struct nftnl_rule *r, const char *set, uint32_t id, bool invert, bool vmap)
{
	struct nftnl_expr *e = expr(r, "lookup");

	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	if (id)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, id);
	if (vmap)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
	if (invert)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
}

static void e_verdict(struct nftnl_rule *r, int verdict, const char *chain)
{
	struct nftnl_expr *e = expr(r, "immediate");

	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	if (chain)
		nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
}

static void m_u8(struct nftnl_rule *r, uint32_t key, uint32_t op, uint8_t v)
{
	e_meta(r, key);
	e_cmp(r, op, &v, 1);
}

static void m_nfproto(struct nftnl_rule *r, int family)
{
	m_u8(r, NFT_META_NFPROTO, NFT_CMP_EQ, family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6);
}

/* iifname/oifname "wft*". */
static void m_weft_if(struct nftnl_rule *r, bool in)
{
	e_meta(r, in ? NFT_META_IIFNAME : NFT_META_OIFNAME);
	e_cmp(r, NFT_CMP_EQ, WEFT_ACL_IFPREFIX, strlen(WEFT_ACL_IFPREFIX));
}

/* meta mark & bits ==/!= 0 */
static void m_mark(struct nftnl_rule *r, uint32_t bits, bool set)
{
	uint32_t zero = 0;

	e_meta(r, NFT_META_MARK);
	e_bitwise(r, bits, 0);
	e_cmp(r, set ? NFT_CMP_NEQ : NFT_CMP_EQ, &zero, sizeof(zero));
}

/* meta mark set (mark & ~clear) | set */
static void s_mark(struct nftnl_rule *r, uint32_t clear, uint32_t set)
{
	struct nftnl_expr *e;

	e_meta(r, NFT_META_MARK);
	e_bitwise(r, ~(clear | set), set);
	e = expr(r, "meta");
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_MARK);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
}

static void m_ct_state(struct nftnl_rule *r, uint32_t bits)
{
	struct nftnl_expr *e = expr(r, "ct");
	uint32_t zero = 0;

	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	e_bitwise(r, bits, 0);
	e_cmp(r, NFT_CMP_NEQ, &zero, sizeof(zero));
}

static void rule_comment(struct nftnl_rule *r, const char *text)
{
	struct nftnl_udata_buf *u;
	char c[NFT_COMMENT_MAX];

	if (!text || !*text)
		return;
	u = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
	if (!u)
		abort();
	weft_strlcpy(c, text, sizeof(c));
	nftnl_udata_put_strz(u, NFTNL_UDATA_RULE_COMMENT, c);
	nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u), nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
}

static struct nftnl_rule *rule_new(const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();

	if (!r)
		abort();
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, T_NAME);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	return r;
}

static void put_rule(struct batch *b, struct nftnl_rule *r, const char *what)
{
	struct nlmsghdr *nlh = msg_start(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ECHO, what);

	b->n_echo++;
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	msg_end(b, nlh);
}

static void put_port_elems(struct batch *b, const struct set_spec *sp, const struct weft_acl_portrange *rg, size_t m,
			   uint16_t type);

/* A port condition at transport offset off: one port or range compared in
 * place, several through an anonymous interval set (created in the batch
 * before the rule, freed by the kernel with the rule). */

static void m_ports(struct batch *b, struct nftnl_rule *r, uint32_t off, const struct weft_acl_portrange *in,
		    size_t n, bool negate)
{
	_cleanup_free_ struct weft_acl_portrange *rg = wcalloc(n, sizeof(*rg));
	size_t m = weft_acl_ports_merge(in, n, rg);

	e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, off, 2);
	if (m == 1) {
		uint16_t lo = htons(rg[0].lo), hi = htons(rg[0].hi);

		if (lo == hi)
			e_cmp(r, negate ? NFT_CMP_NEQ : NFT_CMP_EQ, &lo, 2);
		else
			e_range(r, negate ? NFT_RANGE_NEQ : NFT_RANGE_EQ, &lo, &hi, 2);
	} else {
		struct set_spec sp = {
			.name = "__set%d",
			.id = b->set_id++,
			.flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_INTERVAL,
			.key_type = DT_INET_SERVICE,
			.key_len = 2,
		};

		put_set(b, NFT_MSG_NEWSET, &sp);
		put_port_elems(b, &sp, rg, m, NFT_MSG_NEWSETELEM);
		e_lookup(r, sp.name, sp.id, negate, false);
	}
}

/* ------------------------------------------------------------------ */
/* Kernel rules of program chains                                      */
/* ------------------------------------------------------------------ */

/* Runs of rules that differ only in their destination ports and actions
 * become one kernel rule per action with the ports it decides (see
 * krule_at() and weft_acl_run_end()), of MERGE_MAX rules at most. */
#ifndef NFT_MERGE_MAX /* -DNFT_MERGE_MAX=1 turns merging off (for measurements) */
#define NFT_MERGE_MAX WEFT_ACL_RUN_MAX
#endif
#define MERGE_MAX NFT_MERGE_MAX

/* The rule's family: its own, or that of its sets (validated). */
static int rule_family(const struct weft_acl_program *p, const struct weft_acl_rule *ru)
{
	int fam = ru->family;

	for (size_t i = 0; i < ru->n_addrs && !fam; i++)
		fam = canon_set(p, ru->addrs[i].set)->family;
	return fam;
}

/* The destination ports of kr: the union of its rules' (malloc'ed). */
static size_t krule_dports(const struct weft_acl_chain *c, const struct krule *kr, struct weft_acl_portrange **out)
{
	struct weft_acl_portrange *all;
	size_t n = 0;

	for (size_t i = kr->first; i < kr->first + kr->count; i++)
		n += c->rules[i].n_dports;
	all = wcalloc(n + 1, sizeof(*all));
	n = 0;
	for (size_t i = kr->first; i < kr->first + kr->count; i++) {
		if (c->rules[i].n_dports)
			memcpy(all + n, c->rules[i].dports, c->rules[i].n_dports * sizeof(*all));
		n += c->rules[i].n_dports;
	}
	*out = all;
	return n;
}

/* Does kr look its destination ports up in a port set of its own? A
 * merged run does (count > 1: its rules are mergeable, so have ports):
 * a rule added to or removed from the run, or a port changed, is then an
 * element change of that set, not a new kernel rule. A kernel rule added
 * makes the kernel validate every chain the base chains reach; set
 * elements do not. Single rules keep their ports inline (a compare is
 * cheaper than a lookup, and a set per rule would be as many kernel
 * objects as rules). */
static bool krule_pset(const struct krule *kr)
{
	return kr->count > 1;
}

static void pset_name(uint64_t n, char buf[32])
{
	snprintf(buf, 32, "weft-p.%" PRIx64, n);
}

static struct set_spec pset_spec(const char *name, uint32_t id)
{
	return (struct set_spec){
		.name = name, .id = id, .flags = NFT_SET_INTERVAL, .key_type = DT_INET_SERVICE, .key_len = 2};
}

/* Port ranges (merged, sorted) as interval set elements. */
static void port_elems(struct elems *e, const struct weft_acl_portrange *rg, size_t m)
{
	for (size_t i = 0; i < m; i++) {
		uint16_t lo = htons(rg[i].lo), end = htons((uint16_t)(rg[i].hi + 1));

		elems_add(e, &lo, 2, false, NULL);
		if (rg[i].hi != 0xffff)
			elems_add(e, &end, 2, true, NULL);
	}
	elems_flush(e);
}

static void put_port_elems(struct batch *b, const struct set_spec *sp, const struct weft_acl_portrange *rg, size_t m,
			   uint16_t type)
{
	struct elems e = {.b = b, .sp = sp, .type = type};

	port_elems(&e, rg, m);
}

/* New kernel rule z takes over old kernel rule o (equal keys): its
 * handle and port set, whose elements change to z's ports. */
static void krule_take(struct batch *b, const struct krule *o, struct krule *z)
{
	_cleanup_free_ struct weft_acl_portrange *del = NULL, *add = NULL;
	size_t nd = 0, na = 0, i = 0, j = 0;
	char name[32];
	struct set_spec sp;

	z->handle = o->handle;
	z->pset = o->pset;
	if (!z->pset || weft_acl_ports_eq(o->pr, o->npr, z->pr, z->npr))
		return;
	/* Both sorted and disjoint: ranges in one and not the other. */
	del = wcalloc(o->npr + 1, sizeof(*del));
	add = wcalloc(z->npr + 1, sizeof(*add));
	while (i < o->npr || j < z->npr) {
		int d = i == o->npr ? 1 : j == z->npr ? -1 : (o->pr[i].lo > z->pr[j].lo) - (o->pr[i].lo < z->pr[j].lo);

		if (d < 0) {
			del[nd++] = o->pr[i++];
		} else if (d > 0) {
			add[na++] = z->pr[j++];
		} else {
			if (o->pr[i].hi != z->pr[j].hi) {
				del[nd++] = o->pr[i];
				add[na++] = z->pr[j];
			}
			i++, j++;
		}
	}
	pset_name(z->pset, name);
	sp = pset_spec(name, 0);
	put_port_elems(b, &sp, del, nd, NFT_MSG_DELSETELEM);
	put_port_elems(b, &sp, add, na, NFT_MSG_NEWSETELEM);
	b->st->elems_removed += nd;
	b->st->elems_added += na;
}

/* The port set of kr goes (after the rule using it). */
static void put_pset_del(struct batch *b, struct krule *kr)
{
	char name[32];
	struct set_spec sp;

	if (!kr->pset)
		return;
	pset_name(kr->pset, name);
	sp = pset_spec(name, 0);
	put_set(b, NFT_MSG_DELSET, &sp);
	kr->pset = 0;
}

/* The kernel comment: the origin without its position (" rule N"), so
 * that it stays true when rules before it come or go and such a rule
 * need not be replaced. */
static void krule_comment(const struct weft_acl_chain *c, const struct krule *kr, char *buf, size_t size)
{
	const char *o = c->rules[kr->first].origin ? c->rules[kr->first].origin : "";
	size_t n = origin_len(o);

	if (kr->count > 1)
		snprintf(buf, size, "%.*s (merged run)", (int)n, o);
	else
		snprintf(buf, size, "%.*s", (int)n, o);
}


static void key_ranges(struct weft_buf *k, const struct weft_acl_portrange *in, size_t n)
{
	_cleanup_free_ struct weft_acl_portrange *rg = wcalloc(n + 1, sizeof(*rg));
	uint32_t m = n ? (uint32_t)weft_acl_ports_merge(in, n, rg) : 0;

	weft_buf_append(k, &m, sizeof(m));
	weft_buf_append(k, rg, m * sizeof(*rg));
}

/* Everything the kernel rule for kr is made of, as bytes. */
static void krule_key(struct weft_buf *k, const struct weft_acl_program *p, const struct weft_acl_chain *c,
		      const struct krule *kr)
{
	const struct weft_acl_rule *ru = &c->rules[kr->first];
	int32_t v[] = {rule_family(p, ru),	  (int32_t)c->kind,   (int32_t)kr->action,	ru->proto,
		       ru->not_proto,		  ru->icmp_type,      ru->icmp_code,		ru->not_icmp_type,
		       ru->not_icmp_code,	  (int32_t)ru->n_addrs, (int32_t)c->ingress};
	_cleanup_free_ struct weft_acl_portrange *dp = NULL;
	size_t ndp = krule_pset(kr) ? 0 : krule_dports(c, kr, &dp);
	char comment[NFT_COMMENT_MAX];

	weft_buf_append(k, v, sizeof(v));
	for (size_t i = 0; i < ru->n_addrs; i++) {
		uint8_t f = (uint8_t)(ru->addrs[i].src | ru->addrs[i].negate << 1);

		weft_buf_append(k, &f, 1);
		weft_buf_append(k, ru->addrs[i].set, strlen(ru->addrs[i].set) + 1);
	}
	key_ranges(k, ru->sports, ru->n_sports);
	key_ranges(k, ru->not_sports, ru->n_not_sports);
	key_ranges(k, ru->not_dports, ru->n_not_dports);
	if (krule_pset(kr)) {
		uint32_t m = UINT32_MAX; /* "ports in a port set": never a count */

		weft_buf_append(k, &m, sizeof(m));
	} else {
		key_ranges(k, dp, ndp);
	}
	if (kr->action == WEFT_ACL_LOG) {
		const char *lp = ru->log_prefix ? ru->log_prefix : "weft ";

		weft_buf_append(k, lp, strlen(lp) + 1);
	}
	krule_comment(c, kr, comment, sizeof(comment));
	weft_buf_append(k, comment, strlen(comment) + 1);
}

/* The next free entry of nk (capacity *cap, grown as needed). */
static struct krule *krule_push(struct kchain *nk, size_t *cap)
{
	if (nk->n == *cap) {
		*cap *= 2;
		nk->r = wrealloc(nk->r, *cap * sizeof(*nk->r));
	}
	return &nk->r[nk->n++];
}

static void krule_finish(const struct weft_acl_program *p, const struct weft_acl_chain *c, struct krule *kr,
			 struct weft_buf *k)
{
	k->len = 0;
	krule_key(k, p, c, kr);
	kr->key = wmemdup(k->data, k->len);
	kr->keylen = k->len;
	kr->hash = weft_fnv1a(k->data, k->len, WEFT_FNV_INIT);
}

/* The kernel rules of the run starting at rule i of chain c (validated),
 * appended to nk (capacity *cap): one for a rule alone; for a merged run
 * one per action that decides a port of it (allow, deny, pass, in this
 * order), each with those ports. Returns the index of the rule after the
 * run. k is scratch space. */
static size_t krule_at(const struct weft_acl_program *p, const struct weft_acl_chain *c, size_t i, struct kchain *nk,
		       size_t *cap, struct weft_buf *k)
{
	size_t j = weft_acl_run_end(c->rules, c->n_rules, i, MERGE_MAX, true);
	struct weft_acl_portrange *pr[WEFT_ACL_RUN_ACTIONS];
	size_t npr[WEFT_ACL_RUN_ACTIONS];
	struct krule *kr;

	if (j == i + 1) {
		kr = krule_push(nk, cap);
		memset(kr, 0, sizeof(*kr));
		kr->first = i;
		kr->count = 1;
		kr->action = c->rules[i].action;
		krule_finish(p, c, kr, k);
		return j;
	}
	weft_acl_run_ports(c->rules, i, j, pr, npr);
	for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++) {
		if (!npr[a]) {
			free(pr[a]);
			continue;
		}
		kr = krule_push(nk, cap);
		memset(kr, 0, sizeof(*kr));
		kr->first = i;
		kr->count = j - i;
		kr->action = (enum weft_acl_action)a;
		kr->pr = wrealloc(pr[a], npr[a] * sizeof(*pr[a])); /* kept as long as the state */
		kr->npr = npr[a];
		krule_finish(p, c, kr, k);
	}
	return j;
}

/* The kernel rules of chain c (validated), handles unknown. */
static void chain_krules(const struct weft_acl_program *p, const struct weft_acl_chain *c, struct kchain *kc)
{
	struct weft_buf k = {0};
	size_t cap = c->n_rules + 1;

	kchain_clear(kc);
	kc->r = wcalloc(cap, sizeof(*kc->r));
	for (size_t i = 0; i < c->n_rules;)
		i = krule_at(p, c, i, kc, &cap, &k);
	weft_buf_free(&k);
}

/* The kernel rules of changed chain c, from those of its last version
 * ok (n_old rules; cr: which rules are equal at the start and end).
 * Kernel rules wholly in the equal start (and the rule after them too,
 * which decided where they end) are taken over with their handles; the
 * rest is computed until, in the equal end, a kernel rule starts where an
 * old one did: from there on everything is as before (runs are cut by
 * their rules alone) and taken over. cr gets the ranges that differ. */
static void chain_krules_update(const struct weft_acl_program *p, const struct weft_acl_chain *c, struct kchain *nk,
				struct kchain *ok, size_t n_old, struct chain_reuse *cr)
{
	size_t n = c->n_rules, a = 0, oj;
	/* Usually enough: the old kernel rules and one per rule that differs
	 * (a run of merged rules rebuilt may take more: grown then). */
	size_t cap = ok->n + (n - cr->pre - cr->suf) + 8;
	struct weft_buf k = {0};

	kchain_clear(nk);
	nk->r = wmalloc(cap * sizeof(*nk->r));
	while (a < ok->n && ok->r[a].first + ok->r[a].count < cr->pre) {
		nk->r[a] = ok->r[a];
		ok->r[a].key = NULL;
		ok->r[a].pr = NULL;
		ok->r[a].pset = 0;
		a++;
	}
	nk->n = a;
	cr->olo = cr->nlo = oj = a;
	for (size_t i = a ? nk->r[a - 1].first + nk->r[a - 1].count : 0; i < n;) {
		if (i >= n - cr->suf) {
			size_t t = i + n_old - n; /* the same rule in the old chain */

			while (oj < ok->n && ok->r[oj].first < t)
				oj++;
			if (oj < ok->n && ok->r[oj].first == t) {
				cr->ohi = oj;
				cr->nhi = nk->n;
				for (; oj < ok->n; oj++) {
					struct krule *d = krule_push(nk, &cap);

					*d = ok->r[oj];
					d->first = ok->r[oj].first + n - n_old;
					ok->r[oj].key = NULL;
					ok->r[oj].pr = NULL;
					ok->r[oj].pset = 0;
				}
				weft_buf_free(&k);
				return;
			}
		}
		i = krule_at(p, c, i, nk, &cap, &k);
	}
	cr->ohi = ok->n;
	cr->nhi = nk->n;
	weft_buf_free(&k);
}

static bool krule_eq(const struct krule *a, const struct krule *b)
{
	return a->hash == b->hash && a->keylen == b->keylen && memcmp(a->key, b->key, a->keylen) == 0;
}

/* Kernel rule kr of chain c, added with NLM_F_ECHO (the answer carries
 * its handle): before the rule with handle `before`, or at the end of the
 * chain when that is 0. */
static void put_krule(struct batch *b, const struct weft_acl_program *p, const struct weft_acl_chain *c,
		      struct krule *kr, uint64_t before)
{
	const struct weft_acl_rule *ru = &c->rules[kr->first];
	struct nftnl_rule *r = rule_new(c->name);
	_cleanup_free_ struct weft_acl_portrange *dp = NULL;
	size_t ndp = krule_pset(kr) ? 0 : krule_dports(c, kr, &dp);
	int fam = rule_family(p, ru);
	char comment[NFT_COMMENT_MAX];
	struct nlmsghdr *nlh;

	/* Cheapest first: comparisons of header fields, then set lookups.
	 * Most rules are for other ports or protocols than a given packet:
	 * it leaves them after a compare, never paying for a lookup. */
	if (fam)
		m_nfproto(r, fam);
	if (ru->proto >= 0)
		m_u8(r, NFT_META_L4PROTO, NFT_CMP_EQ, (uint8_t)ru->proto);
	if (ru->not_proto >= 0)
		m_u8(r, NFT_META_L4PROTO, NFT_CMP_NEQ, (uint8_t)ru->not_proto);
	if (krule_pset(kr)) {
		char name[32];
		struct set_spec sp;

		kr->pset = ++*b->pset_seq;
		pset_name(kr->pset, name);
		sp = pset_spec(name, b->set_id++);
		put_set(b, NFT_MSG_NEWSET, &sp);
		put_port_elems(b, &sp, kr->pr, kr->npr, NFT_MSG_NEWSETELEM);
		e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
		e_lookup(r, name, sp.id, false, false);
	} else if (ndp) {
		m_ports(b, r, 2, dp, ndp, false);
	}
	if (ru->n_not_dports)
		m_ports(b, r, 2, ru->not_dports, ru->n_not_dports, true);
	if (ru->n_sports)
		m_ports(b, r, 0, ru->sports, ru->n_sports, false);
	if (ru->n_not_sports)
		m_ports(b, r, 0, ru->not_sports, ru->n_not_sports, true);
	/* Type (and code, the next byte) of the ICMP header compared as one. */
	if (ru->icmp_type >= 0) {
		uint8_t tc[2] = {(uint8_t)ru->icmp_type, (uint8_t)(ru->icmp_code >= 0 ? ru->icmp_code : 0)};

		e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, ru->icmp_code >= 0 ? 2 : 1);
		e_cmp(r, NFT_CMP_EQ, tc, ru->icmp_code >= 0 ? 2 : 1);
	}
	if (ru->not_icmp_type >= 0) {
		uint8_t tc[2] = {(uint8_t)ru->not_icmp_type, (uint8_t)(ru->not_icmp_code >= 0 ? ru->not_icmp_code : 0)};

		e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, ru->not_icmp_code >= 0 ? 2 : 1);
		e_cmp(r, NFT_CMP_NEQ, tc, ru->not_icmp_code >= 0 ? 2 : 1);
	}
	for (size_t i = 0; i < ru->n_addrs; i++) {
		const struct weft_acl_addr_match *a = &ru->addrs[i];

		if (fam == AF_INET)
			e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, a->src ? 12 : 16, 4);
		else
			e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, a->src ? 8 : 24, 16);
		e_lookup(r, a->set, 0, a->negate, false);
	}
	switch (kr->action) {
	case WEFT_ACL_ALLOW:
		if (c->ingress) {
			e_verdict(r, NF_ACCEPT, NULL);
			break;
		}
		s_mark(r, 0,
		       WEFT_ACL_MARK_ALLOW | (c->kind == WEFT_ACL_CHAIN_POLICY ? WEFT_ACL_MARK_POLICY : 0));
		e_verdict(r, NFT_RETURN, NULL);
		break;
	case WEFT_ACL_PASS:
		s_mark(r, 0, WEFT_ACL_MARK_PASS);
		e_verdict(r, NFT_RETURN, NULL);
		break;
	case WEFT_ACL_DENY:
		e_verdict(r, NF_DROP, NULL);
		break;
	case WEFT_ACL_LOG: {
		struct nftnl_expr *e = expr(r, "log");

		nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, ru->log_prefix ? ru->log_prefix : "weft ");
		break;
	}
	}
	krule_comment(c, kr, comment, sizeof(comment));
	rule_comment(r, comment);
	if (before)
		nftnl_rule_set_u64(r, NFTNL_RULE_POSITION, before);
	nlh = msg_start(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_ECHO | (before ? 0 : NLM_F_APPEND), c->name);
	b->info[b->n_info - 1].kr = kr;
	b->n_echo++;
	kr->handle = 0;
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	msg_end(b, nlh);
}

/* Every kernel rule of a new (or flushed) chain, in order. */
static void put_kchain_all(struct batch *b, const struct weft_acl_program *p, const struct weft_acl_chain *c,
			   struct kchain *kc)
{
	for (size_t i = 0; i < kc->n; i++)
		put_krule(b, p, c, &kc->r[i], 0);
	b->st->rules_added += kc->n;
}

/* Bound on the edit distance the diff looks for: beyond it, the changed
 * middle of a chain is replaced whole (as many edits cost about that
 * anyway). */
#define DIFF_MAX_D 300

/* Myers' O((n + m) D) diff of the old kernel rules o[0..n) and the new
 * z[0..m): match[y] is 1 + the old rule new rule y is matched with (kept
 * in the kernel), or 0. Returns false, matching nothing, when more than
 * DIFF_MAX_D edits would be needed. */
static bool krules_diff(const struct krule *o, size_t n, const struct krule *z, size_t m, size_t *match)
{
	long max = (long)(n + m < DIFF_MAX_D ? n + m : DIFF_MAX_D);
	long off = max + 1, w = 2 * max + 3, found = -1, x, y;
	long *v = wcalloc((size_t)w, sizeof(*v));
	long *trace = NULL;

	for (long d = 0; d <= max && found < 0; d++) {
		for (long k = -d; k <= d; k += 2) {
			if (k == -d || (k != d && v[off + k - 1] < v[off + k + 1]))
				x = v[off + k + 1];
			else
				x = v[off + k - 1] + 1;
			y = x - k;
			while (x < (long)n && y < (long)m && krule_eq(&o[x], &z[y]))
				x++, y++;
			v[off + k] = x;
			if (x >= (long)n && y >= (long)m) {
				found = d;
				break;
			}
		}
		if (found < 0) {
			trace = wrealloc(trace, (size_t)((d + 1) * w) * sizeof(*trace));
			memcpy(trace + d * w, v, (size_t)w * sizeof(*v));
		}
	}
	free(v);
	if (found < 0) {
		free(trace);
		return false;
	}
	x = (long)n;
	y = (long)m;
	for (long d = found; d > 0; d--) {
		const long *pv = trace + (d - 1) * w;
		long k = x - y;
		long pk = (k == -d || (k != d && pv[off + k - 1] < pv[off + k + 1])) ? k + 1 : k - 1;
		long px = pv[off + pk], py = px - pk;

		while (x > px && y > py) {
			x--, y--;
			match[y] = (size_t)x + 1;
		}
		x = px;
		y = py;
	}
	while (x > 0 && y > 0) {
		x--, y--;
		match[y] = (size_t)x + 1;
	}
	free(trace);
	return true;
}

/* A changed program chain, first half (before sets change): match the
 * new kernel rules that differ with the old ones that do (common start and
 * end, then a diff of the middle), delete the old ones not kept (and
 * their port sets); kept ones pass their handles and port sets on (a
 * changed run: its set's elements change). Without known handles: flush
 * the chain (and drop every port set it had). Returns whether the chain's
 * rules change in the kernel at all. */
static bool put_kchain_deletes(struct batch *b, const struct weft_acl_chain *c, struct kchain *ok,
			       struct kchain *nk, const struct chain_reuse *cr)
{
	size_t olo = cr->olo, ohi = cr->ohi, nlo = cr->nlo, nhi = cr->nhi, changes = 0;
	size_t *match;
	bool *keep;

	if (!ok->handles_ok) {
		put_flush(b, c->name);
		b->n_echo += ok->n;
		b->st->rules_deleted += ok->n;
		/* Old rules not taken over, and those that were: every
		 * rule is added anew, with a new port set. */
		for (size_t i = 0; i < ok->n; i++)
			put_pset_del(b, &ok->r[i]);
		for (size_t i = 0; i < nk->n; i++) {
			put_pset_del(b, &nk->r[i]);
			nk->r[i].handle = 0;
		}
		nk->refill = true;
		return true;
	}
	while (olo < ohi && nlo < nhi && krule_eq(&ok->r[olo], &nk->r[nlo]))
		krule_take(b, &ok->r[olo++], &nk->r[nlo++]);
	while (olo < ohi && nlo < nhi && krule_eq(&ok->r[ohi - 1], &nk->r[nhi - 1]))
		krule_take(b, &ok->r[--ohi], &nk->r[--nhi]);
	keep = wcalloc(ohi - olo + 1, sizeof(*keep));
	match = wcalloc(nhi - nlo + 1, sizeof(*match));
	krules_diff(ok->r + olo, ohi - olo, nk->r + nlo, nhi - nlo, match);
	for (size_t y = 0; y < nhi - nlo; y++) {
		if (match[y]) {
			krule_take(b, &ok->r[olo + match[y] - 1], &nk->r[nlo + y]);
			keep[match[y] - 1] = true;
		}
	}
	for (size_t x = 0; x < ohi - olo; x++) {
		if (!keep[x]) {
			put_delrule(b, c->name, ok->r[olo + x].handle);
			put_pset_del(b, &ok->r[olo + x]);
			b->st->rules_deleted++;
			changes++;
		}
	}
	free(match);
	free(keep);
	for (size_t y = nlo; y < nhi; y++)
		if (!nk->r[y].handle)
			changes++;
	return changes > 0;
}

/* Second half (after sets change): the new kernel rules, each before the
 * next kept one (so consecutive new ones end up in order), or appended. */
static void put_kchain_inserts(struct batch *b, const struct weft_acl_program *p, const struct weft_acl_chain *c,
			       struct kchain *nk, const struct chain_reuse *cr)
{
	size_t lo = nk->refill ? 0 : cr->nlo, hi = nk->refill ? nk->n : cr->nhi;
	uint64_t *before = wcalloc(hi - lo + 1, sizeof(*before));
	uint64_t next = hi < nk->n ? nk->r[hi].handle : 0;

	for (size_t i = hi; i-- > lo;) {
		if (nk->r[i].handle)
			next = nk->r[i].handle;
		else
			before[i - lo] = next;
	}
	for (size_t i = lo; i < hi; i++) {
		if (!nk->r[i].handle) {
			put_krule(b, p, c, &nk->r[i], before[i - lo]);
			b->st->rules_added++;
		}
	}
	nk->refill = false;
	free(before);
}

static void ep_chain_name(char *buf, size_t size, const char *prefix, const char *ifname)
{
	snprintf(buf, size, "%s%s", prefix, ifname);
}

/* An endpoint direction's chain body: see the file comment. */
static void put_ep_rules(struct batch *b, const struct weft_acl_endpoint *e, bool ingress, const char *chain)
{
	char *const *pol = ingress ? e->in_policies : e->out_policies;
	char *const *prof = ingress ? e->in_profiles : e->out_profiles;
	size_t npol = ingress ? e->n_in_policies : e->n_out_policies;
	size_t nprof = ingress ? e->n_in_profiles : e->n_out_profiles;
	struct nftnl_rule *r;

	r = rule_new(chain);
	s_mark(r, WEFT_ACL_MARK_MASK, 0);
	put_rule(b, r, chain);
	if (!ingress) {
		if (e->has_mac) {
			uint16_t ether = ARPHRD_ETHER;

			r = rule_new(chain);
			e_meta(r, NFT_META_IIFTYPE);
			e_cmp(r, NFT_CMP_EQ, &ether, sizeof(ether));
			e_payload(r, NFT_PAYLOAD_LL_HEADER, 6, 6);
			e_cmp(r, NFT_CMP_NEQ, e->mac, 6);
			e_verdict(r, NF_DROP, NULL);
			rule_comment(r, "anti-spoofing: source MAC");
			put_rule(b, r, chain);
		}
		for (int fam = AF_INET; fam; fam = fam == AF_INET ? AF_INET6 : 0) {
			r = rule_new(chain);
			m_nfproto(r, fam);
			e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, fam == AF_INET ? 12 : 8, fam == AF_INET ? 4 : 16);
			/* saddr != a1 && saddr != a2 ...: not one of ours. */
			for (size_t i = 0; i < e->n_addrs; i++)
				if (e->addrs[i].ip.family == fam)
					e_cmp(r, NFT_CMP_NEQ, e->addrs[i].ip.bytes, fam == AF_INET ? 4 : 16);
			e_verdict(r, NF_DROP, NULL);
			rule_comment(r, "anti-spoofing: source address");
			put_rule(b, r, chain);
		}
	}
	for (size_t i = 0; i < npol; i++) {
		r = rule_new(chain);
		/* After a pass, the remaining policies are skipped. */
		if (i)
			m_mark(r, WEFT_ACL_MARK_PASS, false);
		e_verdict(r, NFT_JUMP, pol[i]);
		put_rule(b, r, chain);
		if (ingress)
			continue; /* an ingress allow accepts */
		r = rule_new(chain);
		m_mark(r, WEFT_ACL_MARK_ALLOW, true);
		e_verdict(r, NFT_RETURN, NULL);
		put_rule(b, r, chain);
	}
	if (npol) {
		r = rule_new(chain);
		m_mark(r, WEFT_ACL_MARK_PASS, false);
		e_verdict(r, NF_DROP, NULL);
		rule_comment(r, "end of policies: default deny");
		put_rule(b, r, chain);
	}
	for (size_t i = 0; i < nprof; i++) {
		r = rule_new(chain);
		e_verdict(r, NFT_JUMP, prof[i]);
		put_rule(b, r, chain);
		if (ingress)
			continue;
		r = rule_new(chain);
		m_mark(r, WEFT_ACL_MARK_ALLOW, true);
		e_verdict(r, NFT_RETURN, NULL);
		put_rule(b, r, chain);
	}
	r = rule_new(chain);
	e_verdict(r, NF_DROP, NULL);
	rule_comment(r, "no rule allowed: default deny");
	put_rule(b, r, chain);
}

static const struct set_spec spec_from = {.name = MAP_FROM, .key_type = DT_IFNAME, .key_len = IFNAMSIZ, .vmap = true};
static const struct set_spec spec_to = {.name = MAP_TO, .key_type = DT_IFNAME, .key_len = IFNAMSIZ, .vmap = true};
static const struct set_spec spec_fs_tcp = {.name = SET_FS_TCP, .key_type = DT_INET_SERVICE, .key_len = 2};
static const struct set_spec spec_fs_udp = {.name = SET_FS_UDP, .key_type = DT_INET_SERVICE, .key_len = 2};

/* The map entries of one endpoint (add or delete). */
/* Endpoint e's entries in the dispatch maps (with their jumps, or
 * without: the keys alone, to delete them). */
static void ep_map_elems(struct elems *ef, struct elems *et, const struct weft_acl_endpoint *e, bool jumps)
{
	char key[IFNAMSIZ], from[32], to[32];

	ifname_key(e->ifname, key);
	ep_chain_name(from, sizeof(from), EP_FROM, e->ifname);
	ep_chain_name(to, sizeof(to), EP_TO, e->ifname);
	elems_add(ef, key, IFNAMSIZ, false, jumps ? from : NULL);
	elems_flush(ef);
	elems_add(et, key, IFNAMSIZ, false, jumps ? to : NULL);
	elems_flush(et);
}

static void put_ep_map(struct batch *b, const struct weft_acl_endpoint *e, uint16_t type)
{
	struct elems ef = {.b = b, .sp = &spec_from, .type = type};
	struct elems et = {.b = b, .sp = &spec_to, .type = type};

	ep_map_elems(&ef, &et, e, type == NFT_MSG_NEWSETELEM);
}

static void put_ep_new(struct batch *b, const struct weft_acl_endpoint *e, bool ingress, bool create)
{
	char name[32];

	ep_chain_name(name, sizeof(name), ingress ? EP_TO : EP_FROM, e->ifname);
	if (create)
		put_chain(b, NFT_MSG_NEWCHAIN, name, -1);
	put_ep_rules(b, e, ingress, name);
}

static void failsafe_elems(struct elems *et, struct elems *eu, const struct weft_acl_failsafe *fs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint16_t port = htons(fs[i].port);

		elems_add(fs[i].proto == IPPROTO_TCP ? et : eu, &port, 2, false, NULL);
	}
	elems_flush(et);
	elems_flush(eu);
}

static void put_failsafe(struct batch *b, const struct weft_acl_failsafe *fs, size_t n, uint16_t type)
{
	struct elems et = {.b = b, .sp = &spec_fs_tcp, .type = type};
	struct elems eu = {.b = b, .sp = &spec_fs_udp, .type = type};

	failsafe_elems(&et, &eu, fs, n);
}

static void put_base(struct batch *b)
{
	static const struct {
		const char *name;
		int hook;
	} hooks[] = {{"forward", NF_INET_FORWARD}, {"input", NF_INET_LOCAL_IN}, {"output", NF_INET_LOCAL_OUT}};
	struct nftnl_rule *r;
	uint8_t proto;

	for (size_t i = 0; i < ARRAY_SIZE(hooks); i++)
		put_chain(b, NFT_MSG_NEWCHAIN, hooks[i].name, hooks[i].hook);
	put_set(b, NFT_MSG_NEWSET, &spec_from);
	put_set(b, NFT_MSG_NEWSET, &spec_to);
	put_set(b, NFT_MSG_NEWSET, &spec_fs_tcp);
	put_set(b, NFT_MSG_NEWSET, &spec_fs_udp);

	/* forward */
	r = rule_new("forward");
	m_ct_state(r, NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED));
	e_verdict(r, NF_ACCEPT, NULL);
	put_rule(b, r, "forward");
	r = rule_new("forward");
	m_ct_state(r, NF_CT_STATE_INVALID_BIT);
	e_verdict(r, NF_DROP, NULL);
	put_rule(b, r, "forward");
	for (int in = 1; in >= 0; in--) {
		r = rule_new("forward");
		s_mark(r, WEFT_ACL_MARK_MASK, 0);
		put_rule(b, r, "forward");
		r = rule_new("forward");
		e_meta(r, in ? NFT_META_IIFNAME : NFT_META_OIFNAME);
		e_lookup(r, in ? MAP_FROM : MAP_TO, 0, false, true);
		put_rule(b, r, "forward");
		r = rule_new("forward");
		m_weft_if(r, in);
		m_mark(r, WEFT_ACL_MARK_ALLOW, false);
		e_verdict(r, NF_DROP, NULL);
		rule_comment(r, in ? "from a weft interface: not allowed or no endpoint"
				   : "to a weft interface: not allowed or no endpoint");
		put_rule(b, r, "forward");
	}

	/* input */
	r = rule_new("input");
	m_ct_state(r, NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED));
	e_verdict(r, NF_ACCEPT, NULL);
	put_rule(b, r, "input");
	/* What a pod needs of its node, as Calico's felix accepts it: MLD
	 * (multicast listener query, report and done: 130-132), router
	 * solicitation (133), neighbour solicitation and advertisement (135,
	 * 136). Not a router advertisement (134): a pod is no router of the
	 * node's. */
	for (int i = 0; i < 2; i++) {
		uint8_t lo = i ? 135 : 130, hi = i ? 136 : 133;

		r = rule_new("input");
		m_weft_if(r, true);
		m_nfproto(r, AF_INET6);
		m_u8(r, NFT_META_L4PROTO, NFT_CMP_EQ, IPPROTO_ICMPV6);
		e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
		e_range(r, NFT_RANGE_EQ, &lo, &hi, 1);
		e_verdict(r, NF_ACCEPT, NULL);
		put_rule(b, r, "input");
	}
	r = rule_new("input");
	m_ct_state(r, NF_CT_STATE_INVALID_BIT);
	e_verdict(r, NF_DROP, NULL);
	put_rule(b, r, "input");
	r = rule_new("input");
	s_mark(r, WEFT_ACL_MARK_MASK, 0);
	put_rule(b, r, "input");
	r = rule_new("input");
	e_meta(r, NFT_META_IIFNAME);
	e_lookup(r, MAP_FROM, 0, false, true);
	put_rule(b, r, "input");
	r = rule_new("input");
	m_weft_if(r, true);
	m_mark(r, WEFT_ACL_MARK_ALLOW, false);
	e_verdict(r, NF_DROP, NULL);
	rule_comment(r, "from a weft interface: not allowed or no endpoint");
	put_rule(b, r, "input");
	for (int i = 0; i < 2; i++) {
		proto = i ? IPPROTO_UDP : IPPROTO_TCP;
		r = rule_new("input");
		m_u8(r, NFT_META_L4PROTO, NFT_CMP_EQ, proto);
		e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
		e_lookup(r, i ? SET_FS_UDP : SET_FS_TCP, 0, false, false);
		e_verdict(r, NF_ACCEPT, NULL);
		rule_comment(r, "failsafe ports");
		put_rule(b, r, "input");
	}
	r = rule_new("input");
	m_mark(r, WEFT_ACL_MARK_POLICY, true);
	e_verdict(r, NF_ACCEPT, NULL);
	rule_comment(r, "allowed to the host by a policy");
	put_rule(b, r, "input");
	r = rule_new("input");
	m_weft_if(r, true);
	e_verdict(r, NF_DROP, NULL);
	rule_comment(r, "workload to host: not a failsafe port");
	put_rule(b, r, "input");

	/* output */
	r = rule_new("output");
	m_weft_if(r, false);
	e_verdict(r, NF_ACCEPT, NULL);
	rule_comment(r, "host to workload");
	put_rule(b, r, "output");
}

/* Does the set hold host addresses only (/32, /128)? Tag and selector
 * sets do (endpoint addresses). They become hash sets, where adding or
 * removing a member costs the same whatever the set's size; an interval
 * set (rbtree) costs the kernel time proportional to its size on every
 * change (about 15 ms per commit at 100,000 elements). Sets holding a
 * prefix are interval sets. A set whose kind would change is recreated
 * by a full replace (it is bound to rules). */
static bool hosts_only(const struct weft_acl_set *s)
{
	for (size_t i = 0; i < s->n_elems; i++)
		if (s->elems[i].prefixlen != weft_ip_bits(&s->elems[i].ip))
			return false;
	return true;
}

static struct set_spec prog_set_spec(const struct weft_acl_set *s, bool interval)
{
	struct set_spec sp = {
		.name = s->name,
		.flags = interval ? NFT_SET_INTERVAL : 0,
		.key_type = s->family == AF_INET ? DT_IPADDR : DT_IP6ADDR,
		.key_len = s->family == AF_INET ? 4 : 16,
	};

	return sp;
}

static void put_prog_set_new(struct batch *b, const struct weft_acl_set *s, bool interval)
{
	struct set_spec sp = prog_set_spec(s, interval);
	struct elems e = {.b = b, .sp = &sp, .type = NFT_MSG_NEWSETELEM};

	put_set(b, NFT_MSG_NEWSET, &sp);
	for (size_t i = 0; i < s->n_elems; i++)
		elems_cidr(&e, &s->elems[i]);
	elems_flush(&e);
	b->st->sets_created++;
	b->st->elems_added += s->n_elems;
}

/* What a batch is built from: the state the kernel has (o, NULL for a
 * full replace), the one it is to have (n), and what n took over from o. */
struct upd;

struct apply_ctx {
	struct state *o, *n;
	const struct reuse *ru;
	struct upd *u; /* an update (build_update()) */
};

/* The whole table: add (so the delete cannot fail), delete, define. */
static bool build_full(struct batch *b, struct apply_ctx *ctx)
{
	struct weft_acl_program *p = ctx->n->prog;

	b->fresh = true;
	put_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	put_table(b, NFT_MSG_DELTABLE, 0);
	put_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL);
	put_base(b);
	put_failsafe(b, p->failsafe, p->n_failsafe, NFT_MSG_NEWSETELEM);
	for (size_t i = 0; i < p->n_sets; i++)
		put_prog_set_new(b, &p->sets[i], ctx->n->iv[i]);
	for (size_t i = 0; i < p->n_chains; i++)
		put_chain(b, NFT_MSG_NEWCHAIN, p->chains[i].name, -1);
	/* Every chain's kernel rules anew: those taken over may have been
	 * computed with sets of another family. */
	for (size_t i = 0; i < p->n_chains; i++) {
		chain_krules(p, &p->chains[i], &ctx->n->kc[i]);
		put_kchain_all(b, p, &p->chains[i], &ctx->n->kc[i]);
	}
	b->st->chains_created = p->n_chains;
	for (size_t i = 0; i < p->n_endpoints; i++) {
		put_ep_new(b, &p->endpoints[i], false, true);
		put_ep_new(b, &p->endpoints[i], true, true);
		put_ep_map(b, &p->endpoints[i], NFT_MSG_NEWSETELEM);
	}
	b->st->endpoints_added = p->n_endpoints;
	b->st->full = true;
	return true;
}

/* ------------------------------------------------------------------ */
/* Diffs                                                               */
/* ------------------------------------------------------------------ */

static bool rule_eq(const struct weft_acl_rule *a, const struct weft_acl_rule *b)
{
	return origin_eq(a->origin, b->origin) && weft_acl_rule_eq_but_origin(a, b);
}

/* The equal start (cr->pre) and end (cr->suf, not overlapping it) of a
 * chain's new rules nw[n] and its old ones old[m]. */
static void equal_ends(const struct weft_acl_rule *nw, size_t n, const struct weft_acl_rule *old, size_t m,
		       struct chain_reuse *cr)
{
	size_t lim = n < m ? n : m;

	while (cr->pre < lim && rule_eq(&nw[cr->pre], &old[cr->pre]))
		cr->pre++;
	while (cr->suf < lim - cr->pre && rule_eq(&nw[n - 1 - cr->suf], &old[m - 1 - cr->suf]))
		cr->suf++;
}

static bool strv_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!streq(a[i], b[i]))
			return false;
	return true;
}

static bool ep_out_eq(const struct weft_acl_endpoint *a, const struct weft_acl_endpoint *b)
{
	if (a->has_mac != b->has_mac || (a->has_mac && memcmp(a->mac, b->mac, 6) != 0) || a->n_addrs != b->n_addrs)
		return false;
	for (size_t i = 0; i < a->n_addrs; i++)
		if (cidr_cmp(&a->addrs[i], &b->addrs[i]) != 0)
			return false;
	return strv_eq(a->out_policies, a->n_out_policies, b->out_policies, b->n_out_policies) &&
	       strv_eq(a->out_profiles, a->n_out_profiles, b->out_profiles, b->n_out_profiles);
}

static bool ep_in_eq(const struct weft_acl_endpoint *a, const struct weft_acl_endpoint *b)
{
	return strv_eq(a->in_policies, a->n_in_policies, b->in_policies, b->n_in_policies) &&
	       strv_eq(a->in_profiles, a->n_in_profiles, b->in_profiles, b->n_in_profiles);
}

/* Merge walk over two name-sorted arrays: calls f(old or NULL, new or NULL). */
#define MERGE(o, no, n, nn, key, ...)                                                                      \
	do {                                                                                               \
		size_t _i = 0, _j = 0;                                                                     \
		while (_i < (no) || _j < (nn)) {                                                           \
			int _c = _i == (no) ? 1 : _j == (nn) ? -1 : strcmp((o)[_i].key, (n)[_j].key);      \
			__typeof__(&(o)[0]) a = _c <= 0 ? &(o)[_i] : NULL;                                 \
			__typeof__(&(n)[0]) z = _c >= 0 ? &(n)[_j] : NULL;                                 \
			if (_c <= 0)                                                                       \
				_i++;                                                                      \
			if (_c >= 0)                                                                       \
				_j++;                                                                      \
			__VA_ARGS__;                                                                       \
		}                                                                                          \
	} while (0)

/* Element changes of a set present before and after. Deletes go first so
 * that a prefix replacing an overlapping one does not clash. */
static void put_set_diff(struct batch *b, const struct weft_acl_set *o, const struct weft_acl_set *n, bool interval,
			 const struct set_reuse *sr)
{
	struct set_spec sp = prog_set_spec(n, interval);
	struct elems del = {.b = b, .sp = &sp, .type = NFT_MSG_DELSETELEM};
	struct elems add = {.b = b, .sp = &sp, .type = NFT_MSG_NEWSETELEM};
	/* Only the middles differ (see set_canon()). */
	size_t oe = o->n_elems - sr->suf, ne = n->n_elems - sr->suf, i = sr->pre, j = sr->pre;

	while (i < oe || j < ne) {
		int c = i == oe ? 1 : j == ne ? -1 : cidr_cmp(&o->elems[i], &n->elems[j]);

		if (c < 0) {
			elems_cidr(&del, &o->elems[i++]);
			b->st->elems_removed++;
		} else if (c > 0) {
			j++;
		} else {
			i++;
			j++;
		}
	}
	elems_flush(&del);
	i = j = sr->pre;
	while (i < oe || j < ne) {
		int c = i == oe ? 1 : j == ne ? -1 : cidr_cmp(&o->elems[i], &n->elems[j]);

		if (c > 0) {
			elems_cidr(&add, &n->elems[j++]);
			b->st->elems_added++;
		} else if (c < 0) {
			i++;
		} else {
			i++;
			j++;
		}
	}
	elems_flush(&add);
}

static void put_failsafe_diff(struct batch *b, const struct weft_acl_program *o, const struct weft_acl_program *n)
{
	struct weft_acl_failsafe *del = wcalloc(o->n_failsafe + 1, sizeof(*del));
	struct weft_acl_failsafe *add = wcalloc(n->n_failsafe + 1, sizeof(*add));
	size_t nd = 0, na = 0, i = 0, j = 0;

	while (i < o->n_failsafe || j < n->n_failsafe) {
		int c = i == o->n_failsafe ? 1 : j == n->n_failsafe ? -1 : fs_qcmp(&o->failsafe[i], &n->failsafe[j]);

		if (c < 0)
			del[nd++] = o->failsafe[i++];
		else if (c > 0)
			add[na++] = n->failsafe[j++];
		else
			i++, j++;
	}
	put_failsafe(b, del, nd, NFT_MSG_DELSETELEM);
	put_failsafe(b, add, na, NFT_MSG_NEWSETELEM);
	free(del);
	free(add);
}

/* Returns false when the change cannot be made incrementally (a set
 * changed family or kind): the caller then builds a full replace. */
static bool build_diff(struct batch *b, struct apply_ctx *ctx)
{
	const struct weft_acl_program *o = ctx->o->prog, *n = ctx->n->prog;
	const struct reuse *ru = ctx->ru;
	struct weft_acl_stats *st = b->st;
	char name[32];

	for (size_t i = 0; i < n->n_sets; i++) {
		const struct weft_acl_set *a = ru->set[i].same ? NULL : canon_set(o, n->sets[i].name);

		if (a && (a->family != n->sets[i].family || ctx->o->iv[a - o->sets] != ctx->n->iv[i]))
			return false;
	}

	/* 1. Endpoints going away: map entries, then their chains (which
	 * drops their jumps into program chains); changed directions are
	 * flushed. */
	MERGE(o->endpoints, o->n_endpoints, n->endpoints, n->n_endpoints, ifname, {
		if (a && !z) {
			put_ep_map(b, a, NFT_MSG_DELSETELEM);
			ep_chain_name(name, sizeof(name), EP_FROM, a->ifname);
			put_chain(b, NFT_MSG_DELCHAIN, name, -1);
			ep_chain_name(name, sizeof(name), EP_TO, a->ifname);
			put_chain(b, NFT_MSG_DELCHAIN, name, -1);
			st->endpoints_removed++;
		} else if (a && z) {
			bool out = ep_out_eq(a, z);
			bool in = ep_in_eq(a, z);

			if (!out) {
				ep_chain_name(name, sizeof(name), EP_FROM, a->ifname);
				put_flush(b, name);
			}
			if (!in) {
				ep_chain_name(name, sizeof(name), EP_TO, a->ifname);
				put_flush(b, name);
			}
			if (!out || !in)
				st->endpoints_replaced++;
		}
	});
	/* 2. Program chains going away; the rules changed chains no longer
	 * have (before the sets they use may go). */
	MERGE(o->chains, o->n_chains, n->chains, n->n_chains, name, {
		if (a && !z) {
			struct kchain *k = &ctx->o->kc[a - o->chains];

			put_chain(b, NFT_MSG_DELCHAIN, a->name, -1);
			b->n_echo += k->n;
			for (size_t j = 0; j < k->n; j++)
				put_pset_del(b, &k->r[j]);
			st->chains_deleted++;
		} else if (a && z && !ru->chain[z - n->chains].same) {
			if (put_kchain_deletes(b, z, &ctx->o->kc[a - o->chains], &ctx->n->kc[z - n->chains],
					       &ru->chain[z - n->chains]))
				st->chains_replaced++;
		}
	});
	/* 3. Sets: deleted (nothing refers to them any more), changed,
	 * created. */
	MERGE(o->sets, o->n_sets, n->sets, n->n_sets, name, {
		if (a && !z) {
			struct set_spec sp = {.name = a->name};

			put_set(b, NFT_MSG_DELSET, &sp);
			st->sets_deleted++;
		} else if (a && z) {
			if (!ru->set[z - n->sets].same)
				put_set_diff(b, a, z, ctx->n->iv[z - n->sets], &ru->set[z - n->sets]);
		} else {
			put_prog_set_new(b, z, ctx->n->iv[z - n->sets]);
		}
	});
	put_failsafe_diff(b, o, n);
	/* 4. Program chains created, then the rules of new and changed
	 * ones. */
	MERGE(o->chains, o->n_chains, n->chains, n->n_chains, name, {
		if (!a)
			put_chain(b, NFT_MSG_NEWCHAIN, z->name, -1);
	});
	MERGE(o->chains, o->n_chains, n->chains, n->n_chains, name, {
		if (!a) {
			put_kchain_all(b, n, z, &ctx->n->kc[z - n->chains]);
			st->chains_created++;
		} else if (z && !ru->chain[z - n->chains].same) {
			put_kchain_inserts(b, n, z, &ctx->n->kc[z - n->chains], &ru->chain[z - n->chains]);
		}
	});
	/* 5. Endpoints: new chains and map entries, refilled directions. */
	MERGE(o->endpoints, o->n_endpoints, n->endpoints, n->n_endpoints, ifname, {
		if (!a) {
			put_ep_new(b, z, false, true);
			put_ep_new(b, z, true, true);
			put_ep_map(b, z, NFT_MSG_NEWSETELEM);
			st->endpoints_added++;
		} else if (z) {
			if (!ep_out_eq(a, z))
				put_ep_new(b, z, false, false);
			if (!ep_in_eq(a, z))
				put_ep_new(b, z, true, false);
		}
	});
	return true;
}

/* ------------------------------------------------------------------ */
/* Talking to the kernel                                               */
/* ------------------------------------------------------------------ */

static const char *msg_kind(uint16_t type)
{
	switch (type) {
	case NFT_MSG_NEWTABLE:
		return "add table";
	case NFT_MSG_DELTABLE:
		return "delete table";
	case NFT_MSG_NEWCHAIN:
		return "add chain";
	case NFT_MSG_DELCHAIN:
		return "delete chain";
	case NFT_MSG_NEWRULE:
		return "add rule to chain";
	case NFT_MSG_DELRULE:
		return "delete rules of chain";
	case NFT_MSG_NEWSET:
		return "add set";
	case NFT_MSG_DELSET:
		return "delete set";
	case NFT_MSG_NEWSETELEM:
		return "add elements to";
	case NFT_MSG_DELSETELEM:
		return "delete elements from";
	}
	return "message";
}

static struct mnl_socket *nft_socket(void)
{
	struct mnl_socket *nl = weft_nl_netfilter_open();
	int rcv = 1 << 20;

	if (!nl)
		return NULL;
	/* Best effort: room for many errors and echoes. */
	if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
		setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	return nl;
}

/* What identifies a rule in the kernel's answers: its table, chain and
 * handle. */
struct rule_id {
	const char *table, *chain;
	uint64_t handle;
	const struct nlattr *exprs; /* NULL in a DELRULE echo of a newer kernel */
};

static int rule_attr_cb(const struct nlattr *attr, void *data)
{
	struct rule_id *id = data;

	switch (mnl_attr_get_type(attr)) {
	case NFTA_RULE_HANDLE:
		if (mnl_attr_validate(attr, MNL_TYPE_U64) == 0)
			id->handle = be64toh(mnl_attr_get_u64(attr));
		break;
	case NFTA_RULE_TABLE:
		if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
			id->table = mnl_attr_get_str(attr);
		break;
	case NFTA_RULE_CHAIN:
		if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
			id->chain = mnl_attr_get_str(attr);
		break;
	case NFTA_RULE_EXPRESSIONS:
		id->exprs = attr;
		break;
	}
	return MNL_CB_OK;
}

static bool rule_id_parse(const struct nlmsghdr *nlh, struct rule_id *id)
{
	*id = (struct rule_id){0};
	return mnl_attr_parse(nlh, sizeof(struct nfgenmsg), rule_attr_cb, id) >= 0 && id->table && id->chain &&
	       id->handle && streq(id->table, T_NAME);
}

/* A rule's mix: never 0. */
static uint64_t rule_mix(const struct rule_id *id)
{
	uint64_t m = weft_fnv1a(id->chain, strlen(id->chain), 0xcbf29ce484222325ULL);

	if (id->exprs)
		m = weft_fnv1a(mnl_attr_get_payload(id->exprs), mnl_attr_get_payload_len(id->exprs), m);
	m ^= id->handle * 0x9e3779b97f4a7c15ULL;
	/* splitmix64's finalizer: every input bit in every bit */
	m = (m ^ (m >> 30)) * 0xbf58476d1ce4e5b9ULL;
	m = (m ^ (m >> 27)) * 0x94d049bb133111ebULL;
	m ^= m >> 31;
	return m ? m : 1;
}

static void census_fold(struct census *c, uint64_t mix, bool add)
{
	if (add) {
		c->n++;
		c->sum += mix;
	} else {
		c->n--;
		c->sum -= mix;
	}
	c->x ^= mix;
}

static void census_reset(struct nft_backend *nb)
{
	nb->cen = (struct census){0};
	nb->n_ce = nb->n_dead = 0;
	nb->cen_ok = true;
	nb->cen_reload = false;
}

static struct cen_ent *census_find(struct nft_backend *nb, uint64_t handle, size_t *pos)
{
	size_t lo = 0, hi = nb->n_ce;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (nb->ce[mid].handle == handle) {
			*pos = mid;
			return &nb->ce[mid];
		}
		if (nb->ce[mid].handle < handle)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return NULL;
}

/* A rule the kernel echoed as added by our batch. */
static void census_add(struct nft_backend *nb, const struct rule_id *id)
{
	uint64_t mix = rule_mix(id);
	size_t pos = nb->n_ce;
	struct cen_ent *e;

	if (nb->n_ce && nb->ce[nb->n_ce - 1].handle >= id->handle) { /* not in handle order (never seen) */
		e = census_find(nb, id->handle, &pos);
		if (e) {
			/* A handle given out twice: someone made the table
			 * anew (its handles start again at 1). */
			nb->cen_reload = true;
			return;
		}
	}
	if (nb->n_ce == nb->cap_ce) {
		nb->cap_ce = nb->cap_ce ? nb->cap_ce * 2 : 1024;
		nb->ce = wrealloc(nb->ce, nb->cap_ce * sizeof(*nb->ce));
	}
	memmove(&nb->ce[pos + 1], &nb->ce[pos], (nb->n_ce - pos) * sizeof(*nb->ce));
	nb->ce[pos] = (struct cen_ent){id->handle, mix};
	nb->n_ce++;
	census_fold(&nb->cen, mix, true);
}

/* A rule the kernel echoed as deleted by our batch. */
static void census_del(struct nft_backend *nb, const struct rule_id *id)
{
	size_t pos, w = 0;
	struct cen_ent *e = census_find(nb, id->handle, &pos);

	/* A rule we never counted (someone else's, in a chain we flushed or
	 * deleted): gone now, and the census still counts exactly ours. */
	if (!e || !e->mix)
		return;
	census_fold(&nb->cen, e->mix, false);
	e->mix = 0;
	if (++nb->n_dead <= nb->n_ce / 2 + 64)
		return;
	for (size_t i = 0; i < nb->n_ce; i++)
		if (nb->ce[i].mix)
			nb->ce[w++] = nb->ce[i];
	nb->n_ce = w;
	nb->n_dead = 0;
}

static bool census_eq(const struct census *a, const struct census *b)
{
	return a->n == b->n && a->sum == b->sum && a->x == b->x;
}

/* A buffer size option at least want bytes (best effort). */
static void sockbuf_at_least(int fd, int opt, int force_opt, size_t want)
{
	int cur = 0, w = want > INT_MAX / 2 ? INT_MAX / 2 : (int)want;
	socklen_t sl = sizeof(cur);

	if (getsockopt(fd, SOL_SOCKET, opt, &cur, &sl) == 0 && cur >= w)
		return;
	if (setsockopt(fd, SOL_SOCKET, force_opt, &w, sizeof(w)) < 0)
		setsockopt(fd, SOL_SOCKET, opt, &w, sizeof(w));
}

/* Read away whatever an earlier exchange left on the socket (an answer
 * not read after an error, or the socket's overrun error itself). */
static void drain(int fd, char *rbuf)
{
	for (;;) {
		ssize_t n = recv(fd, rbuf, NFT_RBUF_SIZE, MSG_DONTWAIT);

		if (n > 0 || (n < 0 && (errno == ENOBUFS || errno == EINTR)))
			continue;
		return;
	}
}

/* Frame the batch, send it in one sendmsg and read the answers, which the
 * kernel queued before sendmsg returned: errors, the echoes of rules
 * added with NLM_F_ECHO (their handles go to the batch's krules) and the
 * ACK of the last message. Returns 0 or the first error. */
static int batch_talk(struct nft_backend *nb, struct batch *b, char **errmsg, bool *lost)
{
	int fd = mnl_socket_get_fd(nb->nl);
	uint32_t portid = mnl_socket_get_portid(nb->nl);
	char *rbuf = nb->rbuf;
	struct nlmsghdr *end, *last = NULL;
	size_t off;
	int first = 0;
	bool done = false, overrun = false;
	ssize_t sent;

	/* The batch starts with the begin marker (see run()); the last
	 * object message asks for an ACK, and the end marker follows. */
	for (off = NLMSG_ALIGN(((struct nlmsghdr *)b->buf)->nlmsg_len); off < b->len;) {
		last = (struct nlmsghdr *)(b->buf + off);
		off += NLMSG_ALIGN(last->nlmsg_len);
	}
	if (!last)
		return 0;
	last->nlmsg_flags |= NLM_F_ACK;
	b->last_seq = last->nlmsg_seq;
	end = nftnl_batch_end(batch_room(b), b->seq++);
	b->len += NLMSG_ALIGN(end->nlmsg_len);

	sockbuf_at_least(fd, SO_SNDBUF, SO_SNDBUFFORCE, b->len + 4096);
	/* Echoed rules are queued all at once: room for them (the kernel
	 * packs several per message; this is generous), or they and the ACK
	 * would be dropped. */
	if (b->n_echo)
		sockbuf_at_least(fd, SO_RCVBUF, SO_RCVBUFFORCE, (1u << 20) + b->n_echo * 2048);
	/* Anything left over from an earlier exchange is stale. */
	drain(fd, rbuf);
	sent = send(fd, b->buf, b->len, 0);
	if (sent < 0)
		return fail(errmsg, -errno, "nftables table %s: send batch of %zu bytes: %s", T_NAME, b->len,
			    strerror(errno));
	for (;;) {
		ssize_t len = recv(fd, rbuf, NFT_RBUF_SIZE, done || overrun ? MSG_DONTWAIT : 0);
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)rbuf;
		int n = (int)len;

		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				/* Answers were dropped: every one is queued
				 * already, so read what is left without
				 * waiting. */
				overrun = *lost = true;
				continue;
			}
			if (done && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (first)
				break;
			return fail(errmsg, errno == EAGAIN ? -ENOBUFS : -errno,
				    "nftables table %s: read answers: %s", T_NAME,
				    errno == EAGAIN ? "answers lost (receive buffer overrun)" : strerror(errno));
		}
		for (; mnl_nlmsg_ok(nlh, n); nlh = mnl_nlmsg_next(nlh, &n)) {
			const struct nlmsgerr *e;
			uint32_t i = nlh->nlmsg_seq - b->seq0;

			/* Only answers to this batch's messages. */
			if (nlh->nlmsg_pid != portid || i >= b->seq - b->seq0)
				continue;
			if (nlh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE)) {
				struct rule_id id;

				if (!rule_id_parse(nlh, &id))
					continue;
				if (b->fresh && !b->cen_reset) {
					census_reset(nb);
					b->cen_reset = true;
				}
				census_add(nb, &id);
				if (i >= 1 && i - 1 < b->n_info && b->info[i - 1].kr)
					b->info[i - 1].kr->handle = id.handle;
				continue;
			}
			if (nlh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELRULE)) {
				struct rule_id id;

				if (rule_id_parse(nlh, &id))
					census_del(nb, &id);
				continue;
			}
			if (nlh->nlmsg_type != NLMSG_ERROR || mnl_nlmsg_get_payload_len(nlh) < sizeof(*e))
				continue;
			e = mnl_nlmsg_get_payload(nlh);
			if (nlh->nlmsg_seq == b->last_seq)
				done = true;
			if (!e->error)
				continue;
			/* An error ends the exchange as well: the kernel
			 * answered every message before sendmsg returned. */
			done = true;
			if (first)
				continue;
			first = e->error;
			if (errmsg && !*errmsg) {
				const char *ext = weft_nl_ext_ack(nlh);
				const char *what = i >= 1 && i - 1 < b->n_info ? b->info[i - 1].what : NULL;
				const char *kind = i >= 1 && i - 1 < b->n_info ? msg_kind(b->info[i - 1].type) : "commit";

				*errmsg = wasprintf("nftables table %s: %s%s%s: %s%s%s%s", T_NAME, kind, what ? " " : "",
						    what ? what : "", strerror(-first), *ext ? " (" : "", ext,
						    *ext ? ")" : "");
			}
		}
	}
	return first;
}

/* Run a batch built by fill(ctx); returns 0 or a negative errno. *built
 * is false when fill() could not build it (nothing sent). */
static int run(struct nft_backend *nb, struct weft_acl_stats *st, char **errmsg,
	       bool (*fill)(struct batch *, struct apply_ctx *), struct apply_ctx *ctx, bool *built)
{
	struct batch b;
	struct nlmsghdr *begin;
	bool lost = false;
	int64_t t0;
	int r;

	batch_init(&b, nb->seq, st);
	b.pset_seq = &nb->pset_seq;
	begin = nftnl_batch_begin(batch_room(&b), b.seq++);
	b.len += NLMSG_ALIGN(begin->nlmsg_len);
	if (!fill(&b, ctx)) {
		*built = false;
		batch_free(&b);
		return 0;
	}
	*built = true;
	if (batch_objects(&b) == 0) {
		batch_free(&b);
		return 0;
	}
	t0 = weft_now_ns();
	nb->gen_ok = false;
	r = batch_talk(nb, &b, errmsg, &lost);
	st->apply_ns = weft_now_ns() - t0;
	nb->seq = b.seq;
	/* The census followed the echoes (the kernel echoes only what it
	 * committed: a failed batch changed nothing); a new table without
	 * rules echoed nothing; lost answers leave it unknown. */
	if (r == 0 && b.fresh && !b.cen_reset)
		census_reset(nb);
	/* Lost echoes: after a full load, what the kernel has is ours (the
	 * next check takes it as the reference); after a change, it may
	 * hold others' changes too, so the next check reloads. */
	if (lost) {
		nb->cen_ok = false;
		if (!b.fresh)
			nb->cen_reload = true;
	}
	log_debug("nftables table %s: batch of %zu messages, %zu bytes: %s", T_NAME, b.n_info, b.len,
		  r ? strerror(-r) : "ok");
	batch_free(&b);
	return r;
}

static bool fill_remove(struct batch *b, struct apply_ctx *ctx)
{
	(void)ctx;
	b->fresh = true;
	put_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	put_table(b, NFT_MSG_DELTABLE, 0);
	return true;
}

/* ------------------------------------------------------------------ */
/* The operations                                                      */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Updates: a change the caller describes (weft_acl_update())          */
/* ------------------------------------------------------------------ */

/* Binary search for c in the sorted v[0..n): found or not, *pos is where
 * it is or would go. */
static bool cidr_find(const struct weft_cidr *v, size_t n, const struct weft_cidr *c, size_t *pos)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = cidr_cmp(&v[mid], c);

		if (r == 0) {
			*pos = mid;
			return true;
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return false;
}

static void cidr_insert(struct weft_cidr **v, size_t *n, size_t pos, const struct weft_cidr *c)
{
	*v = wrealloc(*v, (*n + 1) * sizeof(**v));
	memmove(*v + pos + 1, *v + pos, (*n - pos) * sizeof(**v));
	(*v)[pos] = *c;
	(*n)++;
}

static void cidr_erase(struct weft_cidr *v, size_t *n, size_t pos)
{
	memmove(v + pos, v + pos + 1, (*n - pos - 1) * sizeof(*v));
	(*n)--;
}

/* Is c a member of state set i? */
static bool state_has(const struct state *st, size_t i, const struct weft_cidr *c)
{
	const struct weft_acl_set *s = &st->prog->sets[i];
	const struct ovl *ov = st->ov ? &st->ov[i] : NULL;
	size_t pos;

	if (ov && cidr_find(ov->add, ov->n_add, c, &pos))
		return true;
	if (ov && cidr_find(ov->del, ov->n_del, c, &pos))
		return false;
	return cidr_find(s->elems, s->n_elems, c, &pos);
}

/* Merge set i's pending member changes into its elements. */
static void set_fold(struct state *st, size_t i)
{
	struct weft_acl_set *s = &st->prog->sets[i];
	struct ovl *ov = &st->ov[i];
	size_t a = 0, j = 0, k = 0, m = 0;
	struct weft_cidr *v;

	if (!ov->n_add && !ov->n_del) {
		/* Emptied by changes that undid each other. */
		free(ov->add);
		free(ov->del);
		memset(ov, 0, sizeof(*ov));
		return;
	}
	v = wcalloc(s->n_elems + ov->n_add + 1, sizeof(*v));
	while (a < s->n_elems || j < ov->n_add) {
		if (a < s->n_elems && k < ov->n_del && cidr_cmp(&s->elems[a], &ov->del[k]) == 0) {
			a++, k++;
			continue;
		}
		if (j == ov->n_add || (a < s->n_elems && cidr_cmp(&s->elems[a], &ov->add[j]) < 0))
			v[m++] = s->elems[a++];
		else
			v[m++] = ov->add[j++];
	}
	free(s->elems);
	s->elems = v;
	s->n_elems = m;
	free(ov->add);
	free(ov->del);
	memset(ov, 0, sizeof(*ov));
}

static void state_fold(struct state *st)
{
	if (!st || !st->ov)
		return;
	for (size_t i = 0; i < st->prog->n_sets; i++)
		set_fold(st, i);
	free(st->ov);
	st->ov = NULL;
}

/* Record a member added to (or removed from) state set i. */
static void state_member(struct state *st, size_t i, const struct weft_cidr *c, bool add)
{
	struct ovl *ov;
	size_t pos;

	if (!st->ov)
		st->ov = wcalloc(st->prog->n_sets + 1, sizeof(*st->ov));
	ov = &st->ov[i];
	if (add) {
		if (cidr_find(ov->del, ov->n_del, c, &pos))
			cidr_erase(ov->del, &ov->n_del, pos);
		else if (!cidr_find(ov->add, ov->n_add, c, &pos))
			cidr_insert(&ov->add, &ov->n_add, pos, c);
	} else {
		if (cidr_find(ov->add, ov->n_add, c, &pos))
			cidr_erase(ov->add, &ov->n_add, pos);
		else if (!cidr_find(ov->del, ov->n_del, c, &pos))
			cidr_insert(&ov->del, &ov->n_del, pos, c);
	}
	if (ov->n_add + ov->n_del > OVL_MAX)
		set_fold(st, i);
}

/* An update, checked and ready: what the kernel gets and the state then
 * takes over. */
struct upd_set {
	size_t si; /* index in the state's program */
	struct weft_cidr *add, *del; /* real changes, sorted */
	size_t n_add, n_del;
};

struct upd_chain {
	size_t ci;
	const struct weft_acl_chain *src; /* the caller's */
	struct weft_acl_chain c; /* the new version: name and origin the state's, rules owned */
	struct kchain nk;
	struct chain_reuse cr;
};

struct upd_ep {
	struct weft_acl_endpoint e; /* owned copy */
	const struct weft_acl_endpoint *old; /* the state's, or NULL: a new one */
};

struct upd {
	struct state *st;
	struct upd_set *sets;
	size_t n_sets;
	struct upd_chain *chains;
	size_t n_chains;
	struct upd_ep *eps;
	size_t n_eps;
	const struct weft_acl_endpoint **gone;
	size_t n_gone;
};

static void upd_free(struct upd *u)
{
	for (size_t i = 0; i < u->n_sets; i++) {
		free(u->sets[i].add);
		free(u->sets[i].del);
	}
	free(u->sets);
	for (size_t i = 0; i < u->n_chains; i++) {
		for (size_t k = 0; k < u->chains[i].c.n_rules; k++)
			weft_acl_rule_clear(&u->chains[i].c.rules[k]);
		free(u->chains[i].c.rules);
		kchain_clear(&u->chains[i].nk);
	}
	free(u->chains);
	for (size_t i = 0; i < u->n_eps; i++)
		weft_acl_endpoint_clear(&u->eps[i].e);
	free(u->eps);
	free(u->gone);
}

static const struct weft_acl_endpoint *canon_ep(const struct weft_acl_program *p, const char *ifname)
{
	struct weft_acl_endpoint key = {.ifname = (char *)ifname};

	return p->n_endpoints ? bsearch(&key, p->endpoints, p->n_endpoints, sizeof(key), ep_qcmp) : NULL;
}

/* The members of one set change: checked, sorted, deduplicated, and cut
 * down to what changes. */
static int upd_set_prepare(struct upd *u, const struct weft_acl_set_change *sc, struct upd_set *us, char **errmsg)
{
	const struct weft_acl_program *p = u->st->prog;
	const struct weft_acl_set *s = sc->set ? canon_set(p, sc->set) : NULL;
	const struct weft_cidr *lists[2] = {sc->add, sc->del};
	size_t lens[2] = {sc->n_add, sc->n_del};
	char a[WEFT_CIDR_STRLEN];

	if (!s)
		return fail(errmsg, -EINVAL, "set change: unknown set %s", sc->set ? sc->set : "(null)");
	us->si = (size_t)(s - p->sets);
	for (int l = 0; l < 2; l++) {
		for (size_t k = 0; k < lens[l]; k++) {
			const struct weft_cidr *c = &lists[l][k];

			if (c->ip.family != s->family)
				return fail(errmsg, -EINVAL, "set %s: %s member %zu is not an %s address", s->name,
					    l ? "removed" : "added", k, s->family == AF_INET ? "IPv4" : "IPv6");
			if (!is_host(c))
				return fail(errmsg, -EOPNOTSUPP, "set %s: member %s is a prefix", s->name,
					    weft_cidr_str(c, a, sizeof(a)));
		}
	}
	if (u->st->iv[us->si])
		return fail(errmsg, -EOPNOTSUPP, "set %s holds prefixes", s->name);
	us->add = arr_dup(sc->add, sc->n_add, sizeof(*sc->add));
	us->del = arr_dup(sc->del, sc->n_del, sizeof(*sc->del));
	sort_if_needed(us->add, sc->n_add, sizeof(*us->add), cidr_qcmp);
	sort_if_needed(us->del, sc->n_del, sizeof(*us->del), cidr_qcmp);
	for (size_t k = 0, j = 0; k < sc->n_add; k++) {
		size_t pos;

		if (cidr_find(us->del, sc->n_del, &us->add[k], &pos))
			return fail(errmsg, -EINVAL, "set %s: member %s both added and removed", s->name,
				    weft_cidr_str(&us->add[k], a, sizeof(a)));
		if ((j == 0 || cidr_cmp(&us->add[j - 1], &us->add[k]) != 0) && !state_has(u->st, us->si, &us->add[k]))
			us->add[j++] = us->add[k];
		us->n_add = j;
	}
	for (size_t k = 0, j = 0; k < sc->n_del; k++) {
		if ((j == 0 || cidr_cmp(&us->del[j - 1], &us->del[k]) != 0) && state_has(u->st, us->si, &us->del[k]))
			us->del[j++] = us->del[k];
		us->n_del = j;
	}
	return 0;
}

/* A chain's new rules: checked where they differ from the state's (the
 * rules equal at the start and end are compared, never copied). */
static int upd_chain_prepare(struct upd *u, const struct weft_acl_chain *src, struct upd_chain *uc, char **errmsg)
{
	const struct weft_acl_program *p = u->st->prog;
	const struct weft_acl_chain *o = src->name ? canon_chain(p, src->name) : NULL;
	struct chain_reuse *cr = &uc->cr;
	size_t n = src->n_rules, m;
	int r;

	if (!o)
		return fail(errmsg, -EINVAL, "chain change: unknown chain %s", src->name ? src->name : "(null)");
	if (o->kind != src->kind || o->ingress != src->ingress)
		return fail(errmsg, -EINVAL, "chain %s: kind or direction changed (apply the program instead)",
			    o->name);
	uc->ci = (size_t)(o - p->chains);
	uc->src = src;
	m = o->n_rules;
	cr->had = cr->old = true;
	cr->oi = uc->ci;
	equal_ends(src->rules, n, o->rules, m, cr);
	for (size_t k = cr->pre; k < n - cr->suf; k++)
		if ((r = check_rule(p, o, k, &src->rules[k], errmsg)) < 0)
			return r;
	return 0;
}

/* Checked: the chain's new rules and kernel rules (the unchanged ones
 * taken over from the state's). The state's rule array is edited in
 * place (the rules that differ freed, the equal end moved, the new ones
 * copied in) and taken over, so a rule added to a chain of 10,000 costs
 * no pass over the 10,000; from here on the state's chain is empty. */
static void upd_chain_build(struct upd *u, struct upd_chain *uc)
{
	struct weft_acl_chain *o = &u->st->prog->chains[uc->ci];
	const struct weft_acl_chain *src = uc->src;
	struct chain_reuse *cr = &uc->cr;
	size_t n = src->n_rules, m = o->n_rules;
	struct weft_acl_rule *v = o->rules;

	for (size_t k = cr->pre; k < m - cr->suf; k++)
		weft_acl_rule_clear(&v[k]);
	if (n > m)
		v = wrealloc(v, n * sizeof(*v));
	if (n != m)
		memmove(v + n - cr->suf, v + m - cr->suf, cr->suf * sizeof(*v));
	for (size_t k = cr->pre; k < n - cr->suf; k++)
		weft_acl_rule_copy(&v[k], &src->rules[k]);
	if (n == 0) {
		free(v);
		v = NULL;
	}
	uc->c = *o;
	uc->c.rules = v;
	uc->c.n_rules = n;
	o->rules = NULL;
	o->n_rules = 0;
	chain_krules_update(u->st->prog, &uc->c, &uc->nk, &u->st->kc[uc->ci], m, cr);
}

static int upd_ep_prepare(struct upd *u, const struct weft_acl_endpoint *e, struct upd_ep *ue, char **errmsg)
{
	const struct weft_acl_program *p = u->st->prog;
	int r;

	if (!ifname_ok(e->ifname))
		return fail(errmsg, -EINVAL, "endpoint %s: bad interface name", e->name ? e->name : "?");
	for (size_t k = 0; k < e->n_addrs; k++)
		if (e->addrs[k].ip.family != AF_INET && e->addrs[k].ip.family != AF_INET6)
			return fail(errmsg, -EINVAL, "endpoint %s: address %zu has no family", e->ifname, k);
	if ((r = check_refs(p, e, e->in_policies, e->n_in_policies, errmsg)) < 0 ||
	    (r = check_refs(p, e, e->in_profiles, e->n_in_profiles, errmsg)) < 0 ||
	    (r = check_refs(p, e, e->out_policies, e->n_out_policies, errmsg)) < 0 ||
	    (r = check_refs(p, e, e->out_profiles, e->n_out_profiles, errmsg)) < 0)
		return r;
	weft_acl_endpoint_copy(&ue->e, e);
	ue->old = canon_ep(p, e->ifname);
	return 0;
}

static bool strv_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] && streq(v[i], s))
			return true;
	return false;
}

/* Check the whole change against the state (nothing changes on failure
 * but u, which the caller frees). */
static int upd_prepare(struct upd *u, const struct weft_acl_change *c, char **errmsg)
{
	int r;

	u->sets = wcalloc(c->n_sets + 1, sizeof(*u->sets));
	for (size_t i = 0; i < c->n_sets; i++, u->n_sets++) {
		if ((r = upd_set_prepare(u, &c->sets[i], &u->sets[i], errmsg)) < 0)
			return r;
		for (size_t k = 0; k < i; k++)
			if (u->sets[k].si == u->sets[i].si)
				return fail(errmsg, -EINVAL, "set %s changed twice", c->sets[i].set);
	}
	u->chains = wcalloc(c->n_chains + 1, sizeof(*u->chains));
	for (size_t i = 0; i < c->n_chains; i++, u->n_chains++) {
		if ((r = upd_chain_prepare(u, &c->chains[i], &u->chains[i], errmsg)) < 0)
			return r;
		for (size_t k = 0; k < i; k++)
			if (u->chains[k].ci == u->chains[i].ci)
				return fail(errmsg, -EINVAL, "chain %s changed twice", c->chains[i].name);
	}
	u->eps = wcalloc(c->n_endpoints + 1, sizeof(*u->eps));
	for (size_t i = 0; i < c->n_endpoints; i++, u->n_eps++) {
		if ((r = upd_ep_prepare(u, &c->endpoints[i], &u->eps[i], errmsg)) < 0)
			return r;
		for (size_t k = 0; k < i; k++)
			if (streq(u->eps[k].e.ifname, u->eps[i].e.ifname))
				return fail(errmsg, -EINVAL, "endpoint on %s changed twice", u->eps[i].e.ifname);
		if (strv_has(c->endpoints_removed, c->n_endpoints_removed, u->eps[i].e.ifname))
			return fail(errmsg, -EINVAL, "endpoint on %s both changed and removed", u->eps[i].e.ifname);
	}
	u->gone = wcalloc(c->n_endpoints_removed + 1, sizeof(*u->gone));
	for (size_t i = 0; i < c->n_endpoints_removed; i++) {
		const char *ifn = c->endpoints_removed[i];
		const struct weft_acl_endpoint *e = ifn ? canon_ep(u->st->prog, ifn) : NULL;

		if (!e)
			return fail(errmsg, -EINVAL, "endpoint removal: no endpoint on %s", ifn ? ifn : "(null)");
		for (size_t k = 0; k < u->n_gone; k++)
			if (u->gone[k] == e)
				return fail(errmsg, -EINVAL, "endpoint on %s removed twice", ifn);
		u->gone[u->n_gone++] = e;
	}
	/* Checked: now the kernel rules of the changed chains (this takes
	 * the unchanged ones over from the state's, which is why it waits
	 * until nothing can fail). */
	for (size_t i = 0; i < u->n_chains; i++)
		upd_chain_build(u, &u->chains[i]);
	return 0;
}

/* The batch for an update, in the order build_diff() uses. */
static bool build_update(struct batch *b, struct apply_ctx *ctx)
{
	struct upd *u = ctx->u;
	const struct weft_acl_program *p = u->st->prog;
	struct weft_acl_stats *st = b->st;
	char name[32];

	for (size_t i = 0; i < u->n_gone; i++) {
		put_ep_map(b, u->gone[i], NFT_MSG_DELSETELEM);
		ep_chain_name(name, sizeof(name), EP_FROM, u->gone[i]->ifname);
		put_chain(b, NFT_MSG_DELCHAIN, name, -1);
		ep_chain_name(name, sizeof(name), EP_TO, u->gone[i]->ifname);
		put_chain(b, NFT_MSG_DELCHAIN, name, -1);
		st->endpoints_removed++;
	}
	for (size_t i = 0; i < u->n_eps; i++) {
		const struct upd_ep *ue = &u->eps[i];

		if (!ue->old)
			continue;
		if (!ep_out_eq(ue->old, &ue->e)) {
			ep_chain_name(name, sizeof(name), EP_FROM, ue->e.ifname);
			put_flush(b, name);
		}
		if (!ep_in_eq(ue->old, &ue->e)) {
			ep_chain_name(name, sizeof(name), EP_TO, ue->e.ifname);
			put_flush(b, name);
		}
	}
	for (size_t i = 0; i < u->n_chains; i++) {
		struct upd_chain *uc = &u->chains[i];

		if (put_kchain_deletes(b, &uc->c, &u->st->kc[uc->ci], &uc->nk, &uc->cr))
			st->chains_replaced++;
	}
	for (size_t i = 0; i < u->n_sets; i++) {
		const struct upd_set *us = &u->sets[i];
		struct set_spec sp = prog_set_spec(&p->sets[us->si], false);
		struct elems del = {.b = b, .sp = &sp, .type = NFT_MSG_DELSETELEM};
		struct elems add = {.b = b, .sp = &sp, .type = NFT_MSG_NEWSETELEM};

		for (size_t k = 0; k < us->n_del; k++)
			elems_cidr(&del, &us->del[k]);
		elems_flush(&del);
		for (size_t k = 0; k < us->n_add; k++)
			elems_cidr(&add, &us->add[k]);
		elems_flush(&add);
		st->elems_removed += us->n_del;
		st->elems_added += us->n_add;
	}
	for (size_t i = 0; i < u->n_chains; i++)
		put_kchain_inserts(b, p, &u->chains[i].c, &u->chains[i].nk, &u->chains[i].cr);
	for (size_t i = 0; i < u->n_eps; i++) {
		const struct upd_ep *ue = &u->eps[i];

		if (!ue->old) {
			put_ep_new(b, &ue->e, false, true);
			put_ep_new(b, &ue->e, true, true);
			put_ep_map(b, &ue->e, NFT_MSG_NEWSETELEM);
			st->endpoints_added++;
			continue;
		}
		if (!ep_out_eq(ue->old, &ue->e))
			put_ep_new(b, &ue->e, false, false);
		if (!ep_in_eq(ue->old, &ue->e))
			put_ep_new(b, &ue->e, true, false);
		if (!ep_out_eq(ue->old, &ue->e) || !ep_in_eq(ue->old, &ue->e))
			st->endpoints_replaced++;
	}
	return true;
}

/* The kernel has the update: the state takes it over. */
static void upd_commit(struct upd *u)
{
	struct state *st = u->st;
	struct weft_acl_program *p = st->prog;

	for (size_t i = 0; i < u->n_sets; i++) {
		for (size_t k = 0; k < u->sets[i].n_del; k++)
			state_member(st, u->sets[i].si, &u->sets[i].del[k], false);
		for (size_t k = 0; k < u->sets[i].n_add; k++)
			state_member(st, u->sets[i].si, &u->sets[i].add[k], true);
	}
	for (size_t i = 0; i < u->n_chains; i++) {
		struct upd_chain *uc = &u->chains[i];
		struct weft_acl_chain *c = &p->chains[uc->ci];
		struct kchain *k = &st->kc[uc->ci];

		for (size_t j = 0; j < c->n_rules; j++)
			weft_acl_rule_clear(&c->rules[j]);
		free(c->rules);
		c->rules = TAKE_PTR(uc->c.rules);
		c->n_rules = uc->c.n_rules;
		uc->c.n_rules = 0;
		kchain_clear(k);
		*k = uc->nk;
		memset(&uc->nk, 0, sizeof(uc->nk));
		k->handles_ok = true;
		for (size_t j = 0; j < k->n && k->handles_ok; j++)
			k->handles_ok = k->r[j].handle != 0;
	}
	/* Endpoints: by name, since the array moves under the changes. */
	for (size_t i = 0; i < u->n_gone; i++) {
		const struct weft_acl_endpoint *e = canon_ep(p, u->gone[i]->ifname);
		size_t at = (size_t)(e - p->endpoints);

		weft_acl_endpoint_clear(&p->endpoints[at]);
		memmove(&p->endpoints[at], &p->endpoints[at + 1], (p->n_endpoints - at - 1) * sizeof(*p->endpoints));
		p->n_endpoints--;
	}
	for (size_t i = 0; i < u->n_eps; i++) {
		struct weft_acl_endpoint *e = (struct weft_acl_endpoint *)canon_ep(p, u->eps[i].e.ifname);
		size_t at = 0;

		if (e) {
			weft_acl_endpoint_clear(e);
			*e = u->eps[i].e;
		} else {
			while (at < p->n_endpoints && strcmp(p->endpoints[at].ifname, u->eps[i].e.ifname) < 0)
				at++;
			p->endpoints = wrealloc(p->endpoints, (p->n_endpoints + 1) * sizeof(*p->endpoints));
			memmove(&p->endpoints[at + 1], &p->endpoints[at], (p->n_endpoints - at) * sizeof(*p->endpoints));
			p->endpoints[at] = u->eps[i].e;
			p->n_endpoints++;
		}
		memset(&u->eps[i].e, 0, sizeof(u->eps[i].e));
	}
}

static int nft_update(struct weft_acl_backend *base, const struct weft_acl_change *c, struct weft_acl_stats *st,
		      char **errmsg)
{
	struct nft_backend *nb = (struct nft_backend *)base;
	struct upd u = {.st = nb->last};
	struct apply_ctx ctx = {.u = &u};
	bool built = false;
	int r;

	if (!nb->last)
		return fail(errmsg, -EOPNOTSUPP, "no program applied yet");
	r = upd_prepare(&u, c, errmsg);
	if (r < 0) {
		upd_free(&u);
		return r;
	}
	r = run(nb, st, errmsg, build_update, &ctx, &built);
	if (r < 0) {
		/* Nothing of this batch is in the kernel, but the state gave
		 * kernel rules away to it: replace it all next time. */
		state_free(nb->last);
		nb->last = NULL;
	} else {
		upd_commit(&u);
	}
	upd_free(&u);
	return r;
}

static int nft_apply(struct weft_acl_backend *base, const struct weft_acl_program *p, struct weft_acl_stats *st,
		     char **errmsg)
{
	struct nft_backend *nb = (struct nft_backend *)base;
	struct apply_ctx ctx;
	struct state *ns;
	struct reuse ru;
	bool built = false;
	int r = 0;

	if (!p)
		return fail(errmsg, -EINVAL, "no program");
	/* Updates' member changes merged: an apply compares whole sets. */
	state_fold(nb->last);
	/* Takes unchanged parts over from nb->last: from here on, nb->last
	 * serves this apply's diff only. */
	ns = state_canon(p, nb->last, &ru);
	r = validate(ns->prog, &ru, errmsg);
	if (r < 0) {
		/* As the contract has it: after any failure, a full replace. */
		state_free(nb->last);
		nb->last = NULL;
		state_free(ns);
		reuse_free(&ru);
		return r;
	}
	for (size_t i = 0; i < ns->prog->n_chains; i++) {
		struct chain_reuse *cr = &ru.chain[i];
		const struct weft_acl_chain *c = &ns->prog->chains[i];

		if (cr->same)
			continue;
		if (cr->old) {
			chain_krules_update(ns->prog, c, &ns->kc[i], &nb->last->kc[cr->oi],
					    nb->last->prog->chains[cr->oi].n_rules, cr);
			continue;
		}
		chain_krules(ns->prog, c, &ns->kc[i]);
		cr->olo = cr->nlo = 0;
		cr->ohi = cr->had ? nb->last->kc[cr->oi].n : 0;
		cr->nhi = ns->kc[i].n;
	}
	ctx = (struct apply_ctx){.o = nb->last, .n = ns, .ru = &ru};
	if (nb->last) {
		r = run(nb, st, errmsg, build_diff, &ctx, &built);
		if (r == 0 && !built)
			memset(st, 0, sizeof(*st));
	}
	if (!built && r == 0) {
		ctx.o = NULL;
		r = run(nb, st, errmsg, build_full, &ctx, &built);
	}
	state_free(nb->last);
	nb->last = NULL;
	reuse_free(&ru);
	if (r < 0) {
		/* Nothing of this batch is in the kernel; what is there may
		 * not be what we think either: replace it all next time. */
		state_free(ns);
		return r;
	}
	/* A rule whose echo got lost has no handle: its chain is flushed and
	 * refilled when it changes next. */
	for (size_t i = 0; i < ns->prog->n_chains; i++) {
		struct kchain *k = &ns->kc[i];

		k->handles_ok = true;
		for (size_t j = 0; j < k->n && k->handles_ok; j++)
			k->handles_ok = k->r[j].handle != 0;
	}
	nb->last = ns;
	return 0;
}

static int nft_remove(struct weft_acl_backend *base, char **errmsg)
{
	struct nft_backend *nb = (struct nft_backend *)base;
	struct weft_acl_stats st = {0};
	bool built;

	state_free(nb->last);
	nb->last = NULL;
	return run(nb, &st, errmsg, fill_remove, NULL, &built);
}

static void nft_free(struct weft_acl_backend *base)
{
	struct nft_backend *nb = (struct nft_backend *)base;

	state_free(nb->last);
	if (nb->nl)
		mnl_socket_close(nb->nl);
	free(nb->ce);
	free(nb->rbuf);
	free(nb);
}

/* The census of the table's rules as the kernel has them: a dump of the
 * table's rules (chain and handle of each). -EAGAIN when the ruleset
 * changed during the dump (the kernel marks it NLM_F_DUMP_INTR). */
static int cen_ent_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct cen_ent *)a)->handle, y = ((const struct cen_ent *)b)->handle;

	return x < y ? -1 : x > y;
}

struct gen_answer {
	uint32_t gen;
	bool found;
};

static int gen_cb(const struct nlmsghdr *nlh, void *data)
{
	struct gen_answer *g = data;
	struct nlattr *a;

	if (nlh->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN))
		return MNL_CB_OK;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
		if (mnl_attr_get_type(a) == NFTA_GEN_ID && mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
			g->gen = ntohl(mnl_attr_get_u32(a));
			g->found = true;
		}
	return MNL_CB_OK;
}

/* Send one request (seq = nlh's) and read its answers until cb's
 * MNL_CB_STOP, an ACK or an error, skipping anything else on the socket
 * (answers to earlier requests). */
static int ask(struct nft_backend *nb, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	uint32_t seq = nlh->nlmsg_seq, portid = mnl_socket_get_portid(nb->nl);
	int fd = mnl_socket_get_fd(nb->nl);

	drain(fd, nb->rbuf);
	if (mnl_socket_sendto(nb->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t len = recv(fd, nb->rbuf, NFT_RBUF_SIZE, 0);
		const struct nlmsghdr *m = (const struct nlmsghdr *)nb->rbuf;
		int n = (int)len;

		if (len < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (; mnl_nlmsg_ok(m, n); m = mnl_nlmsg_next(m, &n)) {
			if (m->nlmsg_seq != seq || m->nlmsg_pid != portid)
				continue;
			if (m->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);

				if (mnl_nlmsg_get_payload_len(m) < sizeof(*e))
					return -EIO;
				return e->error; /* 0: the ACK */
			}
			if (m->nlmsg_type == NLMSG_DONE) /* carries the dump's error, if any */
				return mnl_nlmsg_get_payload_len(m) >= sizeof(int) ? *(int *)mnl_nlmsg_get_payload(m) : 0;
			if (cb && cb(m, data) == MNL_CB_STOP)
				return 0;
		}
	}
}

int weft_acl_nft_gen(uint32_t *gen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl = weft_nl_netfilter_open();
	struct nlmsghdr *nlh;
	struct gen_answer g = {0};
	uint32_t seq = (uint32_t)time(NULL);
	int r;

	if (!nl)
		return -errno;
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, seq);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		goto out;
	}
	do {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));

		if (n < 0) {
			r = errno == EINTR ? 1 : -errno;
			continue;
		}
		r = mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(nl), gen_cb, &g);
		if (r < 0)
			r = -errno;
	} while (r > 0);
	if (r == 0 && !g.found)
		r = -EIO;
	if (r == 0)
		*gen = g.gen;
out:
	mnl_socket_close(nl);
	return r;
}

struct dump_ctx {
	struct census c;
	struct cen_ent **ents; /* or NULL */
	size_t *n_ents, cap;
	bool intr;
};

static int dump_rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *d = data;
	struct rule_id id;
	uint64_t mix;

	if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
		d->intr = true;
	if (nlh->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE) || !rule_id_parse(nlh, &id))
		return MNL_CB_OK;
	mix = rule_mix(&id);
	census_fold(&d->c, mix, true);
	if (d->ents) {
		if (*d->n_ents == d->cap) {
			d->cap = d->cap ? d->cap * 2 : 1024;
			*d->ents = wrealloc(*d->ents, d->cap * sizeof(**d->ents));
		}
		(*d->ents)[(*d->n_ents)++] = (struct cen_ent){id.handle, mix};
	}
	return MNL_CB_OK;
}

/* The census of the table's rules as the kernel has them: a dump of the
 * table's rules (chain, handle and expressions of each); with ents, also
 * each rule's handle and mix (sorted by handle). A dump the ruleset
 * changed under (the kernel marks it NLM_F_DUMP_INTR) is taken again, up
 * to 3 times; then -EAGAIN. */
static int dump_census(struct nft_backend *nb, struct census *c, struct cen_ent **ents, size_t *n_ents)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		char buf[MNL_SOCKET_BUFFER_SIZE];
		struct nftnl_rule *r = nftnl_rule_alloc();
		struct dump_ctx d = {.ents = ents, .n_ents = n_ents};
		struct nlmsghdr *nlh;
		int err;

		if (!r)
			abort();
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, nb->seq++);
		nftnl_rule_set_str(r, NFTNL_RULE_TABLE, T_NAME);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		nftnl_rule_free(r);
		if (ents) {
			free(*ents);
			*ents = NULL;
			*n_ents = 0;
		}
		err = ask(nb, nlh, dump_rule_cb, &d);
		if (err < 0)
			return err;
		if (d.intr)
			continue;
		if (ents && *n_ents)
			qsort(*ents, *n_ents, sizeof(**ents), cen_ent_cmp);
		*c = d.c;
		return 0;
	}
	return -EAGAIN;
}

/* A set element's mix (never 0): its key's bytes, whether it ends an
 * interval, and its verdict (of a map: code, and chain for a jump). */
static uint64_t elem_mix_v(const void *key, size_t len, bool end, bool has_v, int32_t code, const char *chain)
{
	uint64_t m = weft_fnv1a(key, len, 0xcbf29ce484222325ULL);

	if (end)
		m = weft_fnv1a("end", 3, m);
	if (has_v) {
		m = weft_fnv1a(&code, sizeof(code), m);
		if (chain)
			m = weft_fnv1a(chain, strlen(chain) + 1, m);
	}
	m = (m ^ (m >> 30)) * 0xbf58476d1ce4e5b9ULL;
	m = (m ^ (m >> 27)) * 0x94d049bb133111ebULL;
	m ^= m >> 31;
	return m ? m : 1;
}

static uint64_t elem_mix(const void *key, size_t len, bool end, const char *jump)
{
	return elem_mix_v(key, len, end, jump != NULL, NFT_JUMP, jump);
}

/* What a set of ours should hold, as a census of its elements. */
struct set_want {
	char name[64];
	struct census c;
};

static struct set_want *want_push(struct set_want **v, size_t *n, const char *name)
{
	struct set_want *w;

	*v = wrealloc(*v, (*n + 1) * sizeof(**v));
	w = &(*v)[(*n)++];
	weft_strlcpy(w->name, name, sizeof(w->name));
	w->c = (struct census){0};
	return w;
}

/* Every named set and map of the table as the state has them, through
 * the same element code the batches use: the program's sets (their
 * elements, less the pending removals, plus the pending additions:
 * struct ovl), the merged runs' port sets, the failsafe port sets and
 * the endpoint dispatch maps (key and jump). */
static struct set_want *sets_wanted(const struct state *st, size_t *n)
{
	const struct weft_acl_program *p = st->prog;
	struct set_want *v = NULL, *wt, *wu;
	char name[32];

	*n = 0;
	for (size_t i = 0; i < p->n_sets; i++) {
		const struct weft_acl_set *s = &p->sets[i];
		const struct ovl *ov = st->ov ? &st->ov[i] : NULL;
		struct set_spec sp = prog_set_spec(s, st->iv[i]);
		struct census gone = {0};
		struct elems e = {.sp = &sp}, d = {.sp = &sp, .cen = &gone};

		wt = want_push(&v, n, s->name);
		e.cen = &wt->c;
		for (size_t k = 0; k < s->n_elems; k++)
			elems_cidr(&e, &s->elems[k]);
		for (size_t k = 0; ov && k < ov->n_add; k++)
			elems_cidr(&e, &ov->add[k]);
		for (size_t k = 0; ov && k < ov->n_del; k++)
			elems_cidr(&d, &ov->del[k]);
		wt->c.n -= gone.n;
		wt->c.sum -= gone.sum;
		wt->c.x ^= gone.x;
	}
	for (size_t i = 0; i < p->n_chains; i++)
		for (size_t k = 0; k < st->kc[i].n; k++) {
			const struct krule *kr = &st->kc[i].r[k];
			struct set_spec sp;
			struct elems e = {.sp = &sp};

			if (!kr->pset)
				continue;
			pset_name(kr->pset, name);
			sp = pset_spec(name, 0);
			e.cen = &want_push(&v, n, name)->c;
			port_elems(&e, kr->pr, kr->npr);
		}
	want_push(&v, n, SET_FS_TCP);
	wu = want_push(&v, n, SET_FS_UDP);
	wt = wu - 1; /* (pushing moves the array) */
	failsafe_elems(&(struct elems){.sp = &spec_fs_tcp, .cen = &wt->c}, &(struct elems){.sp = &spec_fs_udp, .cen = &wu->c},
		       p->failsafe, p->n_failsafe);
	want_push(&v, n, MAP_FROM);
	wu = want_push(&v, n, MAP_TO);
	wt = wu - 1;
	for (size_t i = 0; i < p->n_endpoints; i++)
		ep_map_elems(&(struct elems){.sp = &spec_from, .cen = &wt->c},
			     &(struct elems){.sp = &spec_to, .cen = &wu->c}, &p->endpoints[i], true);
	return v;
}

struct elem_dump {
	struct census c;
	bool intr;
};

/* The verdict of an element's NFTA_SET_ELEM_DATA, if it holds one. */
static bool elem_verdict(const struct nlattr *data, int32_t *code, const char **chain)
{
	const struct nlattr *a, *v;

	mnl_attr_for_each_nested(a, data) {
		if (mnl_attr_get_type(a) != NFTA_DATA_VERDICT)
			continue;
		*code = 0;
		*chain = NULL;
		mnl_attr_for_each_nested(v, a) {
			if (mnl_attr_get_type(v) == NFTA_VERDICT_CODE && mnl_attr_get_payload_len(v) >= 4)
				*code = (int32_t)ntohl(mnl_attr_get_u32(v));
			else if (mnl_attr_get_type(v) == NFTA_VERDICT_CHAIN &&
				 mnl_attr_validate(v, MNL_TYPE_NUL_STRING) == 0)
				*chain = mnl_attr_get_str(v);
		}
		return true;
	}
	return false;
}

/* One NFTA_LIST_ELEM of a GETSETELEM answer: its key's bytes, whether it
 * ends an interval, its verdict. */
static void elem_fold(const struct nlattr *el, struct elem_dump *d)
{
	const struct nlattr *a, *v, *key = NULL;
	const char *chain = NULL;
	bool end = false, has_v = false, other = false;
	int32_t code = 0;

	mnl_attr_for_each_nested(a, el) {
		switch (mnl_attr_get_type(a)) {
		case NFTA_SET_ELEM_KEY:
			mnl_attr_for_each_nested(v, a)
				if (mnl_attr_get_type(v) == NFTA_DATA_VALUE)
					key = v;
			break;
		case NFTA_SET_ELEM_FLAGS:
			if (mnl_attr_get_payload_len(a) >= 4)
				end = ntohl(mnl_attr_get_u32(a)) & NFT_SET_ELEM_INTERVAL_END;
			break;
		case NFTA_SET_ELEM_DATA:
			has_v = elem_verdict(a, &code, &chain);
			other |= !has_v; /* data but no verdict: never ours */
			break;
		case NFTA_SET_ELEM_KEY_END: /* an interval in one element: never ours */
			other = true;
			break;
		default:
			break;
		}
	}
	/* An element without a key (a catch-all, matching anything) or with
	 * what ours never have is never one of ours: it must still count. */
	if (!key || other)
		census_fold(&d->c, 1, true);
	else
		census_fold(&d->c,
			    elem_mix_v(mnl_attr_get_payload(key), mnl_attr_get_payload_len(key), end, has_v, code, chain),
			    true);
}

static int dump_elem_cb(const struct nlmsghdr *nlh, void *data)
{
	struct elem_dump *d = data;
	const struct nlattr *a, *el;

	if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
		d->intr = true;
	if (nlh->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM))
		return MNL_CB_OK;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(el, a)
			elem_fold(el, d);
	}
	return MNL_CB_OK;
}

/* The census of a set's elements as the kernel has them (a dump of the
 * set; taken again, up to 3 times, when the ruleset changed under it). */
static int dump_set_census(struct nft_backend *nb, const char *set, struct census *c)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		char buf[MNL_SOCKET_BUFFER_SIZE];
		struct nftnl_set *ks = nftnl_set_alloc();
		struct elem_dump d = {0};
		struct nlmsghdr *nlh;
		int err;

		if (!ks)
			abort();
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP, nb->seq++);
		nftnl_set_set_str(ks, NFTNL_SET_TABLE, T_NAME);
		nftnl_set_set_str(ks, NFTNL_SET_NAME, set);
		nftnl_set_elems_nlmsg_build_payload(nlh, ks);
		nftnl_set_free(ks);
		err = ask(nb, nlh, dump_elem_cb, &d);
		if (err < 0)
			return err;
		if (d.intr)
			continue;
		*c = d.c;
		return 0;
	}
	return -EAGAIN;
}

/* Have our sets and maps the elements we left in them (sets_wanted())?
 * 0, 1 when one differs, or a negative errno. */
static int sets_differ(struct nft_backend *nb)
{
	size_t n = 0;
	_cleanup_free_ struct set_want *want = sets_wanted(nb->last, &n);

	for (size_t i = 0; i < n; i++) {
		struct census got;
		int r;

		/* A hash set's dump walks its hash table, which the kernel may
		 * be resizing after many members came or went: the walk can
		 * then see a member twice and miss another. A difference
		 * counts only when it stays over a few dumps. */
		for (int attempt = 0; attempt < 4; attempt++) {
			if (attempt)
				nanosleep(&(struct timespec){.tv_nsec = 25 * 1000 * 1000}, NULL);
			r = dump_set_census(nb, want[i].name, &got);
			if (r < 0)
				return r;
			if (census_eq(&got, &want[i].c))
				break;
			log_debug("nftables table %s: set %s: dump %d differs (%" PRIu64 " elements, %" PRIu64 " left)",
				  T_NAME, want[i].name, attempt + 1, got.n, want[i].c.n);
		}
		if (!census_eq(&got, &want[i].c)) {
			log_info("nftables table %s: set %s has other elements than weft left there (%" PRIu64
				 ", %" PRIu64 " left)",
				 T_NAME, want[i].name, got.n, want[i].c.n);
			return 1;
		}
	}
	return 0;
}

/* Is what we programmed still in the kernel? The table must be there,
 * its rules those our batches left (their census, against a dump) and
 * its sets and maps the elements we left: someone running `nft flush
 * ruleset`, deleting the table, adding, deleting, replacing or flushing
 * rules in it, or adding or deleting an element of a set or map of ours
 * makes the next apply a full one (one transaction: the table is replaced, never
 * missing). Returns 0, -ENOENT (then the next apply is a full one) or
 * another negative errno (nothing known). */
static int nft_check(struct weft_acl_backend *base)
{
	struct nft_backend *nb = (struct nft_backend *)base;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nftnl_table *t;
	struct nlmsghdr *nlh;
	struct cen_ent *ents = NULL;
	size_t n_ents = 0;
	struct census c;
	uint32_t gen = 0;
	bool have_gen;
	int r;

	/* Nothing committed by anyone since the last good check (ours
	 * included): nothing to compare. */
	have_gen = weft_acl_nft_gen(&gen) == 0;
	if (have_gen && nb->last && nb->gen_ok && gen == nb->gen)
		return 0;
	t = nftnl_table_alloc();
	if (!t)
		abort();
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, nb->seq++);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, T_NAME);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	r = ask(nb, nlh, NULL, NULL);
	if (r == -ENOENT)
		goto gone;
	if (r < 0 || !nb->last)
		return r;
	if (nb->cen_reload) {
		log_info("nftables table %s: its rules are not known for sure (answers to a change were lost, or "
			 "the table was made anew)",
			 T_NAME);
		goto gone;
	}
	/* Our own echoes were lost during a full load: what is there now is
	 * the reference from here on. */
	r = dump_census(nb, &c, nb->cen_ok ? NULL : &ents, &n_ents);
	if (r < 0) {
		free(ents);
		return r == -EAGAIN ? 0 : r; /* changing all the time: the next check sees it */
	}
	if (!nb->cen_ok) {
		log_debug("nftables table %s: rule census taken from the kernel (%" PRIu64 " rules)", T_NAME, c.n);
		free(nb->ce);
		nb->ce = ents;
		nb->n_ce = nb->cap_ce = n_ents;
		nb->n_dead = 0;
		nb->cen = c;
		nb->cen_ok = true;
	} else if (!census_eq(&c, &nb->cen)) {
		log_info("nftables table %s: its rules differ from what weft left there (%" PRIu64 " rules, %" PRIu64
			 " left)",
			 T_NAME, c.n, nb->cen.n);
		goto gone;
	}
	r = sets_differ(nb);
	if (r > 0 || r == -ENOENT) /* a set of ours gone counts as drift too */
		goto gone;
	if (r < 0)
		return r == -EAGAIN ? 0 : r;
	nb->gen = gen;
	nb->gen_ok = have_gen;
	return 0;

gone:
	state_free(nb->last);
	nb->last = NULL;
	nb->gen_ok = false;
	return -ENOENT;
}

static const struct weft_acl_backend_ops nft_ops = {
	.name = "nft",
	.apply = nft_apply,
	.update = nft_update,
	.remove = nft_remove,
	.check = nft_check,
	.free = nft_free,
};

int weft_acl_nft_open(struct weft_acl_backend **out, char **errmsg)
{
	struct nft_backend *nb;
	struct mnl_socket *nl = nft_socket();

	if (!nl)
		return fail(errmsg, -errno, "nftables: open netfilter netlink socket: %s", strerror(errno));
	nb = wcalloc(1, sizeof(*nb));
	nb->base.ops = &nft_ops;
	nb->nl = nl;
	nb->rbuf = wmalloc(NFT_RBUF_SIZE);
	nb->seq = (uint32_t)weft_now_ms() & 0x3fffffff;
	*out = &nb->base;
	return 0;
}
