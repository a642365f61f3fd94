/* ipt.c - the ipset + iptables ACL backend (weft_acl_ipt_open).
 *
 * Memberships live in kernel ipsets (hash:net, one per program set, named
 * "weft-<set>"), programmed through libipset, and so do the ports of runs
 * of rules (bitmap:port, "weft-p.<hash>"); rules live in chains of the
 * filter table whose names all begin with "weft", programmed by feeding
 * `iptables-restore --noflush` (and ip6tables-restore) one input per apply.
 *
 * The backend renders a whole program into the text of every chain (one
 * text per family) and keeps what it last programmed. An apply diffs the
 * rendering against that: set elements are added and deleted in place,
 * and only chains whose text changed are re-declared (which flushes them)
 * and refilled, in one restore transaction per family. The first apply
 * (and the one after a failure) diffs against what `iptables-save` shows
 * and replaces every existing weft set through a temporary set and an
 * ipset swap, so packets never see a half-filled set.
 *
 * Order and failure: sets first (new sets and new members before any rule
 * can name them), then the iptables transaction, then the ip6tables one,
 * then sets nothing references any more are destroyed. ipsets and the two
 * restore transactions are separate kernel operations, so "atomic" means
 * here: each step is atomic, and when a later step fails the earlier ones
 * are undone (the other family's chains restored from the previous state,
 * members re-added or removed, swapped sets swapped back, new sets
 * destroyed) and the next apply is a full one.
 *
 * Chains (per family, the same layout in iptables and ip6tables):
 *   weft-forward   hooked from FORWARD: packets from or to a weft
 *                  interface go to weft-fwd-wl, others return.
 *   weft-fwd-wl    conntrack established/related accept, invalid drop,
 *                  then the source endpoint's egress (weft-from-wl), the
 *                  destination endpoint's ingress (weft-to-wl), accept.
 *   weft-input     hooked from INPUT: from a weft interface to
 *                  weft-wl-host: ICMPv6 ND accept, conntrack, egress, then
 *                  accept only with the Policy mark or to a failsafe port.
 *   weft-output    hooked from OUTPUT: host -> workload accepted.
 *   weft-from-wl   dispatch: one "-i IF -g weft-fw-IF" per endpoint, then
 *                  DROP (a weft interface without an endpoint fails closed).
 *   weft-to-wl     the same with "-o IF -g weft-tw-IF".
 *   weft-fw-IF     endpoint egress: anti-spoofing (MAC, own addresses),
 *                  then policies and profiles (below); weft-tw-IF ingress.
 *   weft-c-NAME    one per program chain; one of more than 128 rules
 *                  jumps to pieces weft-k.HASH of about 32 rules. A run
 *                  of rules alike but for their destination ports and
 *                  actions is one rule per action, its ports in an ipset
 *                  bitmap:port weft-p.HASH (struct runs).
 *   weft-allow-pol, weft-allow-prof, weft-pass: set the mark bits of a
 *                  Policy allow (ALLOW|POLICY), a profile allow (ALLOW),
 *                  a pass (PASS); a deciding program rule goes there with
 *                  -g, so the end of that chain returns to the endpoint
 *                  chain: one kernel rule per program rule.
 * An endpoint direction clears the WEFT_ACL_MARK_* bits, jumps to each
 * policy chain in order (unless PASS is set), returns as soon as ALLOW is
 * set, drops when policies applied and none passed, then does the same
 * with the profile chains and drops at the end. deny is a DROP in place,
 * log a LOG in place. Inbound is weft-fwd-wl's last decision, so an
 * inbound allow is an ACCEPT in place (and weft-tw-IF checks no ALLOW).
 */
#include "acl/acl-backend.h"
#include "lib/log.h"

#include <ctype.h>
#include <inttypes.h>
#include <libipset/data.h>
#include <libipset/session.h>
#include <libipset/types.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

#define IPT_CHAIN_MAX 28 /* iptables: 29 bytes with the NUL */
#define IPT_SET_MAX 31   /* ipset: IPSET_MAXNAMELEN - 1 */
#define IPT_MULTIPORT_MAX 15
#define IPT_SET_TYPE "hash:net"

/* ---- small helpers ---- */

static uint64_t fnv1a(const char *s)
{
	return weft_fnv1a(s, strlen(s), WEFT_FNV_INIT);
}

/* FNV-style, a word at a time (rule hashes of a 10,000-rule chain are
 * taken on every update of it), the high bits folded down each step. */
static uint64_t hmix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t w;

	for (; n >= 8; b += 8, n -= 8) {
		memcpy(&w, b, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 32;
	}
	for (; n > 0; b++, n--)
		h = (h ^ *b) * 0x100000001b3ull;
	return h;
}

static uint64_t hstr(uint64_t h, const char *s)
{
	return hmix(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

static uint64_t hint(uint64_t h, long long v)
{
	return hmix(h, &v, sizeof(v));
}

/* prefix + name when it fits in max characters; otherwise prefix, the
 * start of name, '.' and a hash of the whole name. Program names never
 * contain '.', so a shortened name cannot collide with a plain one. */
static char *kname(const char *prefix, const char *name, size_t max)
{
	size_t pl = strlen(prefix), keep;
	uint64_t h;

	if (pl + strlen(name) <= max)
		return wasprintf("%s%s", prefix, name);
	h = fnv1a(name);
	keep = max - pl - 9;
	return wasprintf("%s%.*s.%08x", prefix, (int)keep, name, (unsigned)(h ^ (h >> 32)));
}

/* The temporary set a full replace of set `name` fills before the swap. */
static char *tmp_set_name(const char *name)
{
	return wasprintf("weft-tmp.%016llx", (unsigned long long)fnv1a(name));
}

static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return false;
	return true;
}

static bool ifname_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 15 || *s == '-')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

/* Keep the first error message: msg goes to *errmsg unless errmsg is
 * NULL or already holds one. */
static void seterr(char **errmsg, char *msg)
{
	if (errmsg && !*errmsg)
		*errmsg = msg;
	else
		free(msg);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int cidr_cmp(const void *a, const void *b)
{
	const struct weft_cidr *x = a, *y = b;
	int c = weft_ip_cmp(&x->ip, &y->ip);

	if (c)
		return c;
	return x->prefixlen < y->prefixlen ? -1 : x->prefixlen > y->prefixlen;
}

/* ---- what is (or is to be) in the kernel ---- */

/* CH_PROGRAM: the (first) kernel chain of a program chain; CH_CHUNK: a
 * further piece of a long one (see "Long program chains" below). */
enum { CH_OTHER, CH_PROGRAM, CH_CHUNK, CH_ENDPOINT };

struct ipt_chain {
	char *name;   /* kernel chain name */
	char *text;   /* its rules as "-A name ...\n" lines; "" when empty */
	int kind;      /* CH_*, for stats */
	char *ifname;  /* CH_ENDPOINT */
	uint64_t hash; /* CH_PROGRAM, CH_CHUNK: of what the text was rendered from */
	/* CH_PROGRAM chains of a rendered program (for updates): */
	char *prog;    /* the program's chain name */
	enum weft_acl_chain_kind pkind;
	bool ingress;
	char **chunks; /* the kernel names of its further pieces, in order */
	size_t n_chunks;
};

struct ipt_table {
	struct ipt_chain *chains; /* sorted by name */
	size_t n, cap;
	char **hooks; /* rules outside weft chains jumping in: "-A FORWARD -j weft-forward" */
	size_t n_hooks;
};

struct ipt_set {
	char *name; /* kernel set name */
	int family;
	uint32_t maxelem;
	bool unknown; /* found in the kernel: content unknown, replace it */
	struct weft_cidr *elems; /* sorted by cidr_cmp */
	size_t n;
	/* Sets of a rendered program (for updates): */
	char *prog;    /* the program's set name */
	bool prefixes; /* holds an element that is not a host address */
	/* A run's port set (bitmap:port, family 0; struct runs): */
	bool ports;
	struct weft_acl_portrange *pr; /* sorted, disjoint, merged */
	size_t npr;
	char *chain; /* the kernel name of its program chain */
};

struct ipt_state {
	struct ipt_set *sets; /* sorted by name */
	size_t n_sets;
	struct ipt_table tab[2]; /* [0] iptables, [1] ip6tables */
};

static void table_clear(struct ipt_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->chains[i].name);
		free(t->chains[i].text);
		free(t->chains[i].ifname);
		free(t->chains[i].prog);
		strv_free(t->chains[i].chunks, t->chains[i].n_chunks);
	}
	free(t->chains);
	strv_free(t->hooks, t->n_hooks);
	memset(t, 0, sizeof(*t));
}

static void state_clear(struct ipt_state *st)
{
	for (size_t i = 0; i < st->n_sets; i++) {
		free(st->sets[i].name);
		free(st->sets[i].elems);
		free(st->sets[i].prog);
		free(st->sets[i].pr);
		free(st->sets[i].chain);
	}
	free(st->sets);
	st->sets = NULL;
	st->n_sets = 0;
	table_clear(&st->tab[0]);
	table_clear(&st->tab[1]);
}

static struct ipt_chain *table_add(struct ipt_table *t, char *name, char *text, int kind, const char *ifname)
{
	struct ipt_chain *c;

	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->chains = wrealloc(t->chains, t->cap * sizeof(*t->chains));
	}
	c = &t->chains[t->n++];
	c->name = name;
	c->text = text;
	c->kind = kind;
	c->ifname = ifname ? wstrdup(ifname) : NULL;
	c->hash = 0;
	c->prog = NULL;
	c->pkind = WEFT_ACL_CHAIN_PROFILE;
	c->ingress = false;
	c->chunks = NULL;
	c->n_chunks = 0;
	return c;
}

static int chain_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ipt_chain *)a)->name, ((const struct ipt_chain *)b)->name);
}

static int set_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ipt_set *)a)->name, ((const struct ipt_set *)b)->name);
}

static const struct ipt_chain *table_find(const struct ipt_table *t, const char *name)
{
	struct ipt_chain key = {.name = (char *)name};

	return t->n ? bsearch(&key, t->chains, t->n, sizeof(key), chain_cmp) : NULL;
}

static const struct ipt_set *state_set(const struct ipt_state *st, const char *name)
{
	struct ipt_set key = {.name = (char *)name};

	return st->n_sets ? bsearch(&key, st->sets, st->n_sets, sizeof(key), set_cmp) : NULL;
}

/* ---- rendering a program ---- */

/* A run's rule's port set (struct runs). */
struct pset_ref {
	char *name;                    /* kernel set name; NULL: not a run's rule */
	struct weft_acl_portrange *pr; /* its ports: sorted, disjoint, merged */
	size_t npr;
};

struct name_map {
	const char *prog; /* program name */
	char *kern;       /* kernel name */
	int family;       /* sets */
};

static int map_cmp(const void *a, const void *b)
{
	return strcmp(((const struct name_map *)a)->prog, ((const struct name_map *)b)->prog);
}

static const struct name_map *map_find(const struct name_map *m, size_t n, const char *prog)
{
	struct name_map key = {.prog = prog};

	return n ? bsearch(&key, m, n, sizeof(key), map_cmp) : NULL;
}

struct render {
	const struct weft_acl_program *p;
	struct name_map *sets, *chains;
	size_t n_sets, n_chains;
	char **errmsg;
	const struct pset_ref *ps; /* of the chain being rendered (struct runs), or NULL */
};

static const char *proto_name(int proto, char *buf, size_t size)
{
	switch (proto) {
	case IPPROTO_ICMP:
		return "icmp";
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMPV6:
		return "ipv6-icmp";
	case IPPROTO_SCTP:
		return "sctp";
	case IPPROTO_UDPLITE:
		return "udplite";
	case IPPROTO_DCCP:
		return "dccp";
	}
	snprintf(buf, size, "%d", proto);
	return buf;
}

static bool proto_has_ports(int proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP || proto == IPPROTO_UDPLITE ||
	       proto == IPPROTO_DCCP;
}

/* Port ranges as multiport lists of at most 15 slots (a range takes 2). */
static size_t port_chunks(const struct weft_acl_portrange *r, size_t n, char ***out)
{
	char **v = NULL;
	size_t nv = 0, slots = 0;
	struct weft_buf cur = {0};

	for (size_t i = 0; i < n; i++) {
		size_t need = r[i].lo == r[i].hi ? 1 : 2;

		if (cur.len && slots + need > IPT_MULTIPORT_MAX) {
			v = wrealloc(v, (nv + 1) * sizeof(*v));
			v[nv++] = weft_buf_steal(&cur);
			slots = 0;
		}
		if (r[i].lo == r[i].hi)
			weft_buf_printf(&cur, "%s%u", cur.len ? "," : "", r[i].lo);
		else
			weft_buf_printf(&cur, "%s%u:%u", cur.len ? "," : "", r[i].lo, r[i].hi);
		slots += need;
	}
	if (cur.len) {
		v = wrealloc(v, (nv + 1) * sizeof(*v));
		v[nv++] = weft_buf_steal(&cur);
	}
	weft_buf_free(&cur);
	*out = v;
	return nv;
}

/* The port conditions of one direction (dir "sport" or "dport"): pos, a
 * chunk that must match (or NULL), and neg[], chunks that must not. One
 * port or range goes through the tcp or udp match, named once per rule
 * (*loaded) where iptables-save names the implicit one. */
static void port_opt(struct weft_buf *b, int proto, const char *pos, char **neg, size_t n_neg, const char *dir,
		     bool *loaded, bool force_mp)
{
	bool native = !force_mp && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) && (pos ? 1 : 0) + n_neg == 1 &&
		      !strchr(pos ? pos : neg[0], ',');

	if (native && !*loaded) {
		weft_buf_printf(b, " -m %s", proto == IPPROTO_TCP ? "tcp" : "udp");
		*loaded = true;
	}
	if (native && pos)
		weft_buf_printf(b, " --%s %s", dir, pos);
	else if (native)
		weft_buf_printf(b, " ! --%s %s", dir, neg[0]);
	else {
		if (pos)
			weft_buf_printf(b, " -m multiport --%ss %s", dir, pos);
		for (size_t k = 0; k < n_neg; k++)
			weft_buf_printf(b, " -m multiport ! --%ss %s", dir, neg[k]);
	}
}

static void icmp_match(struct weft_buf *m, int fam, bool negate, int type, int code)
{
	/* The kernel's icmp match takes type 255 for "any type": the type
	 * (and code) bytes are compared instead (u32, as iptables-save
	 * prints it: at the offset the IPv4 header length gives). */
	if (fam == AF_INET && type == 255) {
		if (code >= 0)
			weft_buf_printf(m, " -m u32 %s--u32 \"0x0>>0x16&0x3c@0x0>>0x10=0x%x\"", negate ? "! " : "",
					0xff00u | (unsigned)code);
		else
			weft_buf_printf(m, " -m u32 %s--u32 \"0x0>>0x16&0x3c@0x0>>0x18=0xff\"", negate ? "! " : "");
		return;
	}
	if (fam == AF_INET)
		weft_buf_printf(m, " -m icmp %s--icmp-type %d", negate ? "! " : "", type);
	else
		weft_buf_printf(m, " -m icmp6 %s--icmpv6-type %d", negate ? "! " : "", type);
	if (code >= 0)
		weft_buf_printf(m, "/%d", code);
}

/* A log prefix inside double quotes in restore input: no quote, backslash
 * or control characters, at most WEFT_ACL_LOG_PREFIX_MAX characters. */
static void log_target(struct weft_buf *b, const char *prefix)
{
	size_t n = 0;

	if (!prefix || !*prefix) {
		weft_buf_printf(b, " -j LOG");
		return;
	}
	weft_buf_printf(b, " -j LOG --log-prefix \"");
	for (const char *s = prefix; *s && n < WEFT_ACL_LOG_PREFIX_MAX; s++, n++) {
		char c = *s;

		if (c == '"' || c == '\\' || c == '\'' || (unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
			c = '_';
		weft_buf_append(b, &c, 1);
	}
	weft_buf_printf(b, "\"");
}

struct port_list {
	const struct weft_acl_portrange *r;
	size_t n;
};

/* Do ranges r[n] cover every port? */
static bool ports_all(const struct weft_acl_portrange *r, size_t n)
{
	_cleanup_free_ struct weft_acl_portrange *m = n ? wcalloc(n, sizeof(*m)) : NULL;

	return n && weft_acl_ports_merge(r, n, m) == 1 && m[0].lo == 0 && m[0].hi == 65535;
}

static bool ranges_ok(const struct weft_acl_portrange *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].lo > r[i].hi)
			return false;
	return true;
}

/* Render rule ri of program chain c into chain `ch` for family fam. */
static int render_rule(struct render *R, struct weft_buf *b, const char *ch, const struct weft_acl_chain *c, size_t ri,
		       int fam)
{
	const struct weft_acl_rule *r = &c->rules[ri];
	const char *pset = R->ps ? R->ps[ri].name : NULL; /* a run's rule: its ports in a port set */
	bool icmp = r->icmp_type >= 0 || r->not_icmp_type >= 0;
	int icmp_proto = fam == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	bool has_ports = r->n_sports || r->n_not_sports || r->n_dports || r->n_not_dports || pset;
	char *match = NULL, *setmatch = NULL;
	char **sp = NULL, **dp = NULL, **nsp = NULL, **ndp = NULL;
	size_t nsp_n = 0, ndp_n = 0, sp_n, dp_n;
	struct weft_buf m = {0};
	char pb[16];
	int proto = r->proto, not_proto = r->not_proto;
	struct weft_acl_portrange lo_cut[2];
	struct port_list pl[4] = {{r->sports, r->n_sports},
				  {r->not_sports, r->n_not_sports},
				  {r->dports, r->n_dports},
				  {r->not_dports, r->n_not_dports}};
	bool mp_sport, never;

	if (r->family && r->family != fam)
		return 0;
	if (icmp && proto < 0)
		proto = icmp_proto;
	/* ICMP exists in one family only: a family-less icmp rule is the v4
	 * one, a family-less ICMPv6 rule the v6 one. */
	if (!r->family && ((proto == IPPROTO_ICMP && fam == AF_INET6) || (proto == IPPROTO_ICMPV6 && fam == AF_INET)))
		return 0;
	if (icmp && proto != icmp_proto)
		return 0; /* an ICMP type of the other family never matches */
	if (r->action == WEFT_ACL_PASS && c->kind != WEFT_ACL_CHAIN_POLICY) {
		*R->errmsg = wasprintf("%s: pass is for policy chains only", r->origin ? r->origin : c->name);
		return -EINVAL;
	}
	if (!ranges_ok(r->sports, r->n_sports) || !ranges_ok(r->not_sports, r->n_not_sports) ||
	    !ranges_ok(r->dports, r->n_dports) || !ranges_ok(r->not_dports, r->n_not_dports)) {
		*R->errmsg = wasprintf("%s: a port range whose first port is above its last", r->origin ? r->origin : c->name);
		return -EINVAL;
	}
	if (has_ports && !proto_has_ports(proto)) {
		*R->errmsg = wasprintf("%s: port conditions need tcp, udp, sctp, udplite or dccp", r->origin ? r->origin : c->name);
		return -EINVAL;
	}
	/* Checked as the nft backend checks a rule; from here on, what a
	 * rule that never matches in this family (never) needs no more. */
	never = proto == 0 && fam == AF_INET6; /* see below */
	/* A protocol and another one not: the first says it all (iptables
	 * takes one -p); the same one both ways never matches. */
	if (proto >= 0 && not_proto >= 0) {
		never |= proto == not_proto;
		not_proto = -1;
	}
	/* Port lists as iptables takes them alike in both flavours: every
	 * port is no condition (iptables-nft drops it: negated, the rule would
	 * match everything, so it is left out, as it never matches); a port
	 * list of one range from 0 not to match is the range above it. */
	for (int d = 0; d < 4; d += 2) {
		never |= ports_all(pl[d + 1].r, pl[d + 1].n);
		if (ports_all(pl[d].r, pl[d].n))
			pl[d].n = 0;
		if (!pl[d].n && pl[d + 1].n == 1 && pl[d + 1].r[0].lo == 0) {
			lo_cut[d / 2] = (struct weft_acl_portrange){(uint16_t)(pl[d + 1].r[0].hi + 1), 65535};
			pl[d] = (struct port_list){&lo_cut[d / 2], 1};
			pl[d + 1].n = 0;
		}
	}
	for (size_t i = 0; i < r->n_addrs; i++) {
		const struct name_map *s = map_find(R->sets, R->n_sets, r->addrs[i].set);

		if (!s) {
			weft_buf_free(&m);
			*R->errmsg = wasprintf("%s: set %s is not in the program", r->origin ? r->origin : c->name,
					       r->addrs[i].set);
			return -EINVAL;
		}
		if (s->family != fam) {
			weft_buf_free(&m);
			return 0; /* the rule is the other family's */
		}
		weft_buf_printf(&m, " -m set %s--match-set %s %s", r->addrs[i].negate ? "! " : "", s->kern,
				r->addrs[i].src ? "src" : "dst");
	}
	if (never) {
		weft_buf_free(&m);
		return 0;
	}
	/* The set lookups go last: iptables evaluates matches in order, so a
	 * first packet that fails the cheap protocol, ICMP or port test never
	 * pays for a hash lookup (over a 10,000-rule chain that is the
	 * difference between ~150 and several thousand new connections/s). */
	setmatch = weft_buf_steal(&m);

	/* Protocol 0 is "every protocol" to iptables (-p 0 matches all, ! -p 0
	 * is refused): the IPv4 header's protocol byte is compared instead
	 * (u32, as iptables-save prints it). An IPv6 packet's transport
	 * protocol is never 0 (hop-by-hop options are an extension header):
	 * such a rule never matches there (left out above), its negation
	 * always. */
	if (proto > 0)
		weft_buf_printf(&m, " -p %s", proto_name(proto, pb, sizeof(pb)));
	else if (proto == 0)
		weft_buf_printf(&m, " -m u32 --u32 \"0x6&0xff=0x0\"");
	if (not_proto > 0)
		weft_buf_printf(&m, " ! -p %s", proto_name(not_proto, pb, sizeof(pb)));
	else if (not_proto == 0 && fam == AF_INET)
		weft_buf_printf(&m, " -m u32 ! --u32 \"0x6&0xff=0x0\"");
	if (r->icmp_type >= 0)
		icmp_match(&m, fam, false, r->icmp_type, r->icmp_code);
	if (r->not_icmp_type >= 0)
		icmp_match(&m, fam, true, r->not_icmp_type, r->not_icmp_code);
	/* Negated port lists: each chunk must not match (AND of NOTs). */
	nsp_n = port_chunks(pl[1].r, pl[1].n, &nsp);
	ndp_n = port_chunks(pl[3].r, pl[3].n, &ndp);
	match = weft_buf_steal(&m);

	/* Positive port lists: a chunk must match (OR): one rule per chunk
	 * combination. */
	sp_n = port_chunks(pl[0].r, pl[0].n, &sp);
	dp_n = port_chunks(pl[2].r, pl[2].n, &dp);
	/* iptables-nft (1.8.9) compares "! --sport A ! --dport B" (single
	 * ports, not 0) as one 4-byte "not equal", true when either differs:
	 * the source port goes through multiport. */
	mp_sport = !sp_n && !dp_n && pl[1].n == 1 && pl[3].n == 1 && pl[1].r[0].lo == pl[1].r[0].hi &&
		   pl[1].r[0].lo && pl[3].r[0].lo == pl[3].r[0].hi && pl[3].r[0].lo;
	for (size_t i = 0; i < (sp_n ? sp_n : 1); i++) {
		for (size_t j = 0; j < (dp_n ? dp_n : 1); j++) {
			weft_buf_printf(b, "-A %s%s", ch, match);
			/* One port or range per direction goes through the tcp/udp
			 * match (--dport), which iptables-nft turns into a native
			 * payload compare; multiport stays an xtables match there,
			 * several times slower per rule. */
			bool loaded = false;

			port_opt(b, proto, sp_n ? sp[i] : NULL, nsp, nsp_n, "sport", &loaded, mp_sport);
			port_opt(b, proto, dp_n ? dp[j] : NULL, ndp, ndp_n, "dport", &loaded, false);
			if (pset) /* a bitmap: cheaper than the address sets */
				weft_buf_printf(b, " -m set --match-set %s dst", pset);
			weft_buf_printf(b, "%s", setmatch);
			switch (r->action) {
			case WEFT_ACL_ALLOW:
				/* Inbound is weft-fwd-wl's last decision, which then
				 * accepts: accept right away. */
				if (c->ingress)
					weft_buf_printf(b, " -j ACCEPT\n");
				else
					weft_buf_printf(b, " -g %s\n",
							c->kind == WEFT_ACL_CHAIN_POLICY ? "weft-allow-pol" : "weft-allow-prof");
				break;
			case WEFT_ACL_PASS:
				weft_buf_printf(b, " -g weft-pass\n");
				break;
			case WEFT_ACL_DENY:
				weft_buf_printf(b, " -j DROP\n");
				break;
			case WEFT_ACL_LOG:
				log_target(b, r->log_prefix);
				weft_buf_printf(b, "\n");
				break;
			}
		}
	}
	free(match);
	free(setmatch);
	strv_free(sp, sp_n);
	strv_free(dp, dp_n);
	strv_free(nsp, nsp_n);
	strv_free(ndp, ndp_n);
	return 0;
}

/* One endpoint direction (egress = from the endpoint). */
static void render_dir(struct render *R, struct weft_buf *b, const char *ch, const struct weft_acl_endpoint *e, bool egress,
		       int fam)
{
	char *const *pols = egress ? e->out_policies : e->in_policies;
	char *const *profs = egress ? e->out_profiles : e->in_profiles;
	size_t npol = egress ? e->n_out_policies : e->n_in_policies;
	size_t nprof = egress ? e->n_out_profiles : e->n_in_profiles;
	size_t applied = 0;

	if (egress) {
		if (e->has_mac)
			weft_buf_printf(b, "-A %s -m mac ! --mac-source %02x:%02x:%02x:%02x:%02x:%02x -j DROP\n", ch,
					e->mac[0], e->mac[1], e->mac[2], e->mac[3], e->mac[4], e->mac[5]);
		/* Source address check: ALLOW is borrowed as "source is ours". */
		weft_buf_printf(b, "-A %s -j MARK --set-xmark 0x0/0x%x\n", ch, WEFT_ACL_MARK_MASK);
		for (size_t i = 0; i < e->n_addrs; i++) {
			char ab[WEFT_IP_STRLEN];

			if (e->addrs[i].ip.family != fam)
				continue;
			weft_buf_printf(b, "-A %s -s %s/%u -j MARK --set-xmark 0x%x/0x%x\n", ch,
					weft_ip_str(&e->addrs[i].ip, ab, sizeof(ab)), weft_ip_bits(&e->addrs[i].ip),
					WEFT_ACL_MARK_ALLOW, WEFT_ACL_MARK_ALLOW);
		}
		weft_buf_printf(b, "-A %s -m mark --mark 0x0/0x%x -j DROP\n", ch, WEFT_ACL_MARK_ALLOW);
	}
	weft_buf_printf(b, "-A %s -j MARK --set-xmark 0x0/0x%x\n", ch, WEFT_ACL_MARK_MASK);
	for (size_t i = 0; i < npol; i++) {
		const struct name_map *c = map_find(R->chains, R->n_chains, pols[i]);

		if (!c)
			continue;
		if (applied++)
			weft_buf_printf(b, "-A %s -m mark --mark 0x0/0x%x -j %s\n", ch, WEFT_ACL_MARK_PASS, c->kern);
		else
			weft_buf_printf(b, "-A %s -j %s\n", ch, c->kern);
		if (egress) /* an inbound allow accepts */
			weft_buf_printf(b, "-A %s -m mark --mark 0x%x/0x%x -j RETURN\n", ch, WEFT_ACL_MARK_ALLOW,
					WEFT_ACL_MARK_ALLOW);
	}
	if (applied)
		weft_buf_printf(b, "-A %s -m mark --mark 0x0/0x%x -j DROP\n", ch, WEFT_ACL_MARK_PASS);
	for (size_t i = 0; i < nprof; i++) {
		const struct name_map *c = map_find(R->chains, R->n_chains, profs[i]);

		if (!c)
			continue;
		weft_buf_printf(b, "-A %s -j %s\n", ch, c->kern);
		if (egress)
			weft_buf_printf(b, "-A %s -m mark --mark 0x%x/0x%x -j RETURN\n", ch, WEFT_ACL_MARK_ALLOW,
					WEFT_ACL_MARK_ALLOW);
	}
	weft_buf_printf(b, "-A %s -j DROP\n", ch);
}

static void render_failsafe(struct weft_buf *b, const struct weft_acl_program *p, int proto)
{
	struct weft_acl_portrange *r = wcalloc(p->n_failsafe + 1, sizeof(*r));
	size_t n = 0, nc;
	char **chunks;

	for (size_t i = 0; i < p->n_failsafe; i++)
		if (p->failsafe[i].proto == proto) {
			r[n].lo = r[n].hi = p->failsafe[i].port;
			n++;
		}
	nc = port_chunks(r, n, &chunks);
	for (size_t i = 0; i < nc; i++)
		weft_buf_printf(b, "-A weft-wl-host -p %s -m multiport --dports %s -j ACCEPT\n",
				proto == IPPROTO_TCP ? "tcp" : "udp", chunks[i]);
	strv_free(chunks, nc);
	free(r);
}

static const char *const our_hooks[] = {
	"-A FORWARD -j weft-forward",
	"-A INPUT -j weft-input",
	"-A OUTPUT -j weft-output",
};

static void render_base(struct render *R, struct ipt_table *t, int fam, char **ep_in, char **ep_out)
{
	const struct weft_acl_program *p = R->p;
	struct weft_buf b = {0};

	weft_buf_printf(&b, "-A weft-forward -i %s+ -g weft-fwd-wl\n", WEFT_ACL_IFPREFIX);
	weft_buf_printf(&b, "-A weft-forward -o %s+ -g weft-fwd-wl\n", WEFT_ACL_IFPREFIX);
	table_add(t, wstrdup("weft-forward"), weft_buf_steal(&b), CH_OTHER, NULL);

	weft_buf_printf(&b, "-A weft-fwd-wl -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
	weft_buf_printf(&b, "-A weft-fwd-wl -m conntrack --ctstate INVALID -j DROP\n");
	weft_buf_printf(&b, "-A weft-fwd-wl -i %s+ -j weft-from-wl\n", WEFT_ACL_IFPREFIX);
	weft_buf_printf(&b, "-A weft-fwd-wl -o %s+ -j weft-to-wl\n", WEFT_ACL_IFPREFIX);
	weft_buf_printf(&b, "-A weft-fwd-wl -j ACCEPT\n");
	table_add(t, wstrdup("weft-fwd-wl"), weft_buf_steal(&b), CH_OTHER, NULL);

	weft_buf_printf(&b, "-A weft-input -i %s+ -g weft-wl-host\n", WEFT_ACL_IFPREFIX);
	table_add(t, wstrdup("weft-input"), weft_buf_steal(&b), CH_OTHER, NULL);

	/* As Calico's felix: MLD (multicast listener query, report and done:
	 * 130-132), router solicitation (133), neighbour solicitation and
	 * advertisement (135, 136); not a router advertisement (134): a pod is
	 * no router of the node's. */
	if (fam == AF_INET6)
		for (int type = 130; type <= 136; type++)
			if (type != 134)
				weft_buf_printf(&b, "-A weft-wl-host -p ipv6-icmp -m icmp6 --icmpv6-type %d -j ACCEPT\n",
						type);
	weft_buf_printf(&b, "-A weft-wl-host -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
	weft_buf_printf(&b, "-A weft-wl-host -m conntrack --ctstate INVALID -j DROP\n");
	weft_buf_printf(&b, "-A weft-wl-host -j weft-from-wl\n");
	weft_buf_printf(&b, "-A weft-wl-host -m mark --mark 0x%x/0x%x -j ACCEPT\n", WEFT_ACL_MARK_POLICY,
			WEFT_ACL_MARK_POLICY);
	render_failsafe(&b, p, IPPROTO_TCP);
	render_failsafe(&b, p, IPPROTO_UDP);
	weft_buf_printf(&b, "-A weft-wl-host -j DROP\n");
	table_add(t, wstrdup("weft-wl-host"), weft_buf_steal(&b), CH_OTHER, NULL);

	/* Verdicts of program chains: a rule that decides goes (-g) to one of
	 * these; the end of the chain returns to the endpoint chain that
	 * jumped to the program chain, which reads the mark. One kernel rule
	 * per program rule. */
	weft_buf_printf(&b, "-A weft-allow-pol -j MARK --set-xmark 0x%x/0x%x\n", WEFT_ACL_MARK_ALLOW | WEFT_ACL_MARK_POLICY,
			WEFT_ACL_MARK_ALLOW | WEFT_ACL_MARK_POLICY);
	table_add(t, wstrdup("weft-allow-pol"), weft_buf_steal(&b), CH_OTHER, NULL);
	weft_buf_printf(&b, "-A weft-allow-prof -j MARK --set-xmark 0x%x/0x%x\n", WEFT_ACL_MARK_ALLOW, WEFT_ACL_MARK_ALLOW);
	table_add(t, wstrdup("weft-allow-prof"), weft_buf_steal(&b), CH_OTHER, NULL);
	weft_buf_printf(&b, "-A weft-pass -j MARK --set-xmark 0x%x/0x%x\n", WEFT_ACL_MARK_PASS, WEFT_ACL_MARK_PASS);
	table_add(t, wstrdup("weft-pass"), weft_buf_steal(&b), CH_OTHER, NULL);

	weft_buf_printf(&b, "-A weft-output -o %s+ -j ACCEPT\n", WEFT_ACL_IFPREFIX);
	table_add(t, wstrdup("weft-output"), weft_buf_steal(&b), CH_OTHER, NULL);

	for (size_t i = 0; i < p->n_endpoints; i++)
		weft_buf_printf(&b, "-A weft-from-wl -i %s -g %s\n", p->endpoints[i].ifname, ep_out[i]);
	weft_buf_printf(&b, "-A weft-from-wl -j DROP\n");
	table_add(t, wstrdup("weft-from-wl"), weft_buf_steal(&b), CH_OTHER, NULL);

	for (size_t i = 0; i < p->n_endpoints; i++)
		weft_buf_printf(&b, "-A weft-to-wl -o %s -g %s\n", p->endpoints[i].ifname, ep_in[i]);
	weft_buf_printf(&b, "-A weft-to-wl -j DROP\n");
	table_add(t, wstrdup("weft-to-wl"), weft_buf_steal(&b), CH_OTHER, NULL);

	t->hooks = wcalloc(ARRAY_SIZE(our_hooks), sizeof(char *));
	for (size_t i = 0; i < ARRAY_SIZE(our_hooks); i++)
		t->hooks[i] = wstrdup(our_hooks[i]);
	t->n_hooks = ARRAY_SIZE(our_hooks);
}

/* A hash of everything rule r's text is rendered from (with the
 * families of the sets it names; not its origin, which only names it in
 * errors and changes when rules before it come or go). */
static uint64_t rule_hash(struct render *R, const struct weft_acl_rule *r)
{
	int v[] = {r->action, r->family, r->proto, r->not_proto, r->icmp_type, r->icmp_code, r->not_icmp_type,
		   r->not_icmp_code};
	uint64_t h = hmix(0xcbf29ce484222325ull, v, sizeof(v));

	h = hint(h, (long long)r->n_addrs);
	for (size_t j = 0; j < r->n_addrs; j++) {
		const struct name_map *s = map_find(R->sets, R->n_sets, r->addrs[j].set);

		h = hint(h, r->addrs[j].src * 2 + r->addrs[j].negate);
		h = hstr(h, r->addrs[j].set);
		h = hint(h, s ? s->family : -1);
	}
	h = hint(h, (long long)r->n_sports);
	h = hmix(h, r->sports, r->n_sports * sizeof(*r->sports));
	h = hint(h, (long long)r->n_not_sports);
	h = hmix(h, r->not_sports, r->n_not_sports * sizeof(*r->not_sports));
	h = hint(h, (long long)r->n_dports);
	h = hmix(h, r->dports, r->n_dports * sizeof(*r->dports));
	h = hint(h, (long long)r->n_not_dports);
	h = hmix(h, r->not_dports, r->n_not_dports * sizeof(*r->not_dports));
	return hstr(h, r->action == WEFT_ACL_LOG ? r->log_prefix : NULL);
}

/* A program chain with its runs (weft_acl_run_end(..., true): consecutive
 * rules equal but for their destination ports and actions) as one rule
 * per action, which looks its ports up in an ipset of its own (a port
 * set: bitmap:port, "weft-p.<hash>") holding the ports that action
 * decides (weft_acl_run_ports(): the first rule with a port decides it;
 * the actions' sets are disjoint, so the order of their rules does not
 * matter). A rule that joins or leaves a run, or a port changed in it,
 * is then `ipset add`/`del` and no iptables rule changes: iptables-nft
 * takes 2-3 ms to insert a rule and 10-20 ms to replace or delete one,
 * and every rule added makes the kernel validate the table; an ipset
 * element takes microseconds. A port set is named after its program
 * chain, its action and what ended its run (weft_acl_run_id(): never the
 * run's own rules before the last), so the name, and with it the rule's
 * text, stays when rules join or leave the run. Everything after this
 * works on these rules: shallow copies of c's (c must outlive them), a
 * run's rules without destination ports and ps[i] naming the port set. */
struct runs {
	struct weft_acl_chain c;
	struct pset_ref *ps; /* per rule */
};

/* Room for `more` rules after the m->c.n_rules there are. */
static struct weft_acl_rule *runs_room(struct runs *m, size_t *cap, size_t more)
{
	if (m->c.n_rules + more > *cap) {
		size_t want = 2 * *cap > m->c.n_rules + more ? 2 * *cap : m->c.n_rules + more;

		m->c.rules = wrealloc(m->c.rules, want * sizeof(*m->c.rules));
		m->ps = wrealloc(m->ps, want * sizeof(*m->ps));
		memset(m->ps + *cap, 0, (want - *cap) * sizeof(*m->ps));
		*cap = want;
	}
	return &m->c.rules[m->c.n_rules];
}

#define IPT_PSET_PREFIX "weft-p."

/* May the run rules[i..j) of c be rules with port sets? bitmap:port
 * finds a port in TCP and UDP packets only (ip_set_get_ip_port()): runs of
 * other protocols stay as their rules are. A pass outside a policy chain
 * is refused by render_rule() for the rule that has it: such a run too. */
static bool run_psets_ok(const struct weft_acl_chain *c, size_t i, size_t j)
{
	if (c->rules[i].proto != IPPROTO_TCP && c->rules[i].proto != IPPROTO_UDP)
		return false;
	for (size_t k = i; k < j; k++)
		if (c->rules[k].action == WEFT_ACL_PASS && c->kind != WEFT_ACL_CHAIN_POLICY)
			return false;
	return true;
}

/* The port set names a chain has taken: an open-addressing hash set (a
 * chain of short runs has thousands). */
struct taken {
	uint64_t *h;
	bool *on;
	size_t mask;
};

/* Take h, or, when a run ended alike (duplicate rules) took it before,
 * the next of its successors that is free: told apart by order. */
static uint64_t take_name(struct taken *t, uint64_t h)
{
	for (;;) {
		size_t i = (size_t)(h ^ (h >> 29)) & t->mask;

		while (t->on[i] && t->h[i] != h)
			i = (i + 1) & t->mask;
		if (!t->on[i]) {
			t->on[i] = true;
			t->h[i] = h;
			return h;
		}
		h = weft_fnv1a("+", 1, h);
	}
}

/* kern: the program chain's kernel name (port set names are made from
 * it). */
static void runs_make(struct runs *m, const struct weft_acl_chain *c, const char *kern)
{
	size_t cap = c->n_rules + 1, slots = 16;
	uint64_t seed = weft_fnv1a(kern, strlen(kern), WEFT_FNV_INIT);
	_cleanup_free_ uint64_t *th = NULL;
	_cleanup_free_ bool *ton = NULL;
	struct taken taken;

	while (slots < 2 * cap) /* at most one name per rule: half full at most */
		slots *= 2;
	th = wcalloc(slots, sizeof(*th));
	ton = wcalloc(slots, sizeof(*ton));
	taken = (struct taken){.h = th, .on = ton, .mask = slots - 1};

	m->c = *c;
	m->c.rules = wcalloc(cap, sizeof(*m->c.rules));
	m->c.n_rules = 0;
	m->ps = wcalloc(cap, sizeof(*m->ps));
	for (size_t i = 0; i < c->n_rules;) {
		size_t j = weft_acl_run_end(c->rules, c->n_rules, i, WEFT_ACL_RUN_MAX, true);
		struct weft_acl_portrange *pr[WEFT_ACL_RUN_ACTIONS];
		size_t npr[WEFT_ACL_RUN_ACTIONS];
		uint64_t id;

		if (j == i + 1 || !run_psets_ok(c, i, j)) {
			memcpy(runs_room(m, &cap, j - i), &c->rules[i], (j - i) * sizeof(*c->rules));
			m->c.n_rules += j - i;
			i = j;
			continue;
		}
		weft_acl_run_ports(c->rules, i, j, pr, npr);
		id = weft_acl_run_id(c->rules, c->n_rules, i, j, WEFT_ACL_RUN_MAX);
		for (int a = 0; a < WEFT_ACL_RUN_ACTIONS; a++) {
			struct weft_acl_rule *r;
			uint32_t a32 = (uint32_t)a;
			uint64_t h;

			if (!npr[a]) {
				free(pr[a]);
				continue;
			}
			h = weft_fnv1a(&id, sizeof(id), seed);
			h = take_name(&taken, weft_fnv1a(&a32, sizeof(a32), h));
			r = runs_room(m, &cap, 1);
			*r = c->rules[i];
			r->action = (enum weft_acl_action)a;
			r->dports = NULL;
			r->n_dports = 0;
			m->ps[m->c.n_rules] = (struct pset_ref){.name = wasprintf(IPT_PSET_PREFIX "%016llx", (unsigned long long)h),
								.pr = wrealloc(pr[a], npr[a] * sizeof(*pr[a])),
								.npr = npr[a]};
			m->c.n_rules++;
		}
		i = j;
	}
}

static void runs_free(struct runs *m)
{
	for (size_t i = 0; i < m->c.n_rules; i++) {
		free(m->ps[i].name);
		free(m->ps[i].pr);
	}
	free(m->c.rules);
	free(m->ps);
	memset(m, 0, sizeof(*m));
}

/* The rules' hashes; a run's rule stands for its port set by name (not
 * its ports: those change in the set, not in the rule's text). */
static uint64_t *rule_hashes(struct render *R, const struct runs *m)
{
	const struct weft_acl_chain *c = &m->c;
	uint64_t *v = wcalloc(c->n_rules + 1, sizeof(*v));

	for (size_t i = 0; i < c->n_rules; i++) {
		v[i] = rule_hash(R, &c->rules[i]);
		if (m->ps[i].name)
			v[i] = hstr(v[i], m->ps[i].name);
	}
	return v;
}

/* A hash of everything the rules of a program chain (or of a piece of
 * one) are rendered from: its shape (kind and direction: shape()) and its
 * rules' hashes, so an unchanged chain of a large program reuses its
 * previous text instead of being rendered. Never 0. */
static uint64_t chain_hash(int shape, const uint64_t *rh, size_t n)
{
	uint64_t h = hint(0xcbf29ce484222325ull, shape);

	h = hint(h, (long long)n);
	return hmix(h, rh, n * sizeof(*rh)) | 1;
}

/* Long program chains. iptables-nft reads the whole chain to insert,
 * replace or delete one of its rules by position (80 ms in a chain of
 * 10,000, 4 ms in one of 32), so a program chain of more than
 * IPT_PIECE_MAX rules is cut into pieces of 32 rules on average and
 * IPT_PIECE_MAX at most, each its own kernel chain, and the program chain
 * jumps to its pieces in order (more than IPT_PIECE_MAX pieces are cut
 * into groups the same way, and so on: a tree, since gotos from piece to
 * piece would soon exceed the kernel's jump depth of 16). After each jump
 * one rule returns as soon as a piece decided (ALLOW set; for a policy
 * ALLOW or PASS): a deciding rule in a piece goes (-g) to weft-allow-prof
 * & co., whose end returns to the chain that jumped to the piece, which
 * returns in turn. So the pieces decide exactly as one chain would; a new
 * connection pays two rules more per piece walked (6 %).
 *
 * Where a piece ends depends on the rules alone (before a rule whose
 * mixed hash has its top IPT_PIECE_BITS bits zero, once the piece has
 * IPT_PIECE_MIN rules, or after IPT_PIECE_MAX rules), and a piece is named
 * after where it begins (its first rule and the one before): a rule
 * added, changed or removed changes its piece (rarely the one above it),
 * not the others, and an apply and an update of the same program cut it
 * alike. */
#define IPT_PIECE_BITS 5 /* 32 entries on average */
#define IPT_PIECE_MIN 8  /* no cut where a rule's hash says so before this */
#define IPT_PIECE_MAX 128

struct piece {
	char *name;
	uint64_t hash;     /* of what its text is rendered from */
	size_t from, to;   /* a piece of rules: rules [from, to) */
	size_t *kids, n_kids; /* a group: the pieces it jumps to (indexes) */
};

struct layout {
	struct piece *k; /* [0] the program chain itself */
	size_t n;
};

static void layout_free(struct layout *L)
{
	for (size_t i = 0; i < L->n; i++) {
		free(L->k[i].name);
		free(L->k[i].kids);
	}
	free(L->k);
	memset(L, 0, sizeof(*L));
}

/* Cut keys[n] into runs; returns their count, starts in *starts. */
static size_t cut(const uint64_t *keys, size_t n, int level, size_t *starts)
{
	size_t m = 0;

	for (int natural = 1; natural >= 0; natural--) {
		m = 0;
		starts[m++] = 0;
		for (size_t j = 1; j < n; j++) {
			/* The low bits of an FNV hash are its weakest: mix first. */
			uint64_t x = (keys[j] + (uint64_t)level * 0x9e3779b97f4a7c15ull) ^ (keys[j] >> 29);

			x *= 0xbf58476d1ce4e5b9ull;
			if ((natural && x >> (64 - IPT_PIECE_BITS) == 0 && j - starts[m - 1] >= IPT_PIECE_MIN) ||
			    j - starts[m - 1] >= IPT_PIECE_MAX)
				starts[m++] = j;
		}
		/* (Cannot happen with IPT_PIECE_MIN > 2; kept as the guard that
		 * each level shrinks.) */
		if (m <= n / 2 + 1)
			break;
	}
	return m;
}

static int occ_cmp(const void *a, const void *b, void *keys)
{
	const uint64_t *k = keys;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	if (k[x] != k[y])
		return k[x] < k[y] ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* dup[i] = how many of keys[0..i) equal keys[i]. */
static void occurrences(const uint64_t *keys, size_t m, size_t *dup)
{
	size_t *ix = wcalloc(m + 1, sizeof(*ix));

	for (size_t i = 0; i < m; i++)
		ix[i] = i;
	qsort_r(ix, m, sizeof(*ix), occ_cmp, (void *)keys);
	for (size_t i = 0; i < m; i++)
		dup[ix[i]] = i && keys[ix[i - 1]] == keys[ix[i]] ? dup[ix[i - 1]] + 1 : 0;
	free(ix);
}

/* Pieces of one level, entry i covering keys [starts[i], starts[i + 1]),
 * each named after where it begins: its first entry and the one before
 * (so a rule repeated all over a chain does not give many pieces one
 * key), the level, and the count of earlier pieces of the level with the
 * same key. Returns the index of the first in L; the pieces' keys go to
 * pk[] (the entries of the level above). */
static size_t layout_level(struct layout *L, const char *prog, int level, const uint64_t *keys, const size_t *starts,
			   size_t m, uint64_t *pk)
{
	size_t first = L->n, *dup = wcalloc(m + 1, sizeof(*dup));

	for (size_t i = 0; i < m; i++)
		pk[i] = hint(starts[i] ? keys[starts[i] - 1] : 0, (long long)keys[starts[i]]);
	occurrences(pk, m, dup);
	L->k = wrealloc(L->k, (L->n + m) * sizeof(*L->k));
	for (size_t i = 0; i < m; i++) {
		uint64_t h = hint(hint(hint(fnv1a(prog), level), (long long)pk[i]), (long long)dup[i]);
		struct piece *k = &L->k[L->n++];

		memset(k, 0, sizeof(*k));
		k->name = wasprintf("weft-k.%016llx", (unsigned long long)h);
	}
	free(dup);
	return first;
}

/* A group's text hash: its kind and the names it jumps to. */
static uint64_t group_hash(const struct layout *L, const struct piece *g, int shape)
{
	uint64_t h = hint(0x84222325cbf29ce4ull, shape);

	for (size_t i = 0; i < g->n_kids; i++)
		h = hstr(h, L->k[g->kids[i]].name);
	return h | 1;
}

/* What a program chain's text depends on besides its rules. */
static int shape(const struct weft_acl_chain *c)
{
	return (int)c->kind * 2 + c->ingress;
}

/* Cut program chain c (kernel name head, rule hashes rh[]). */
static void layout_make(struct layout *L, const char *head, const struct weft_acl_chain *c, const uint64_t *rh)
{
	const char *prog = c->name;
	int kind = shape(c);
	size_t n = c->n_rules;
	size_t *starts = wcalloc(n + 1, sizeof(*starts)), *nodes, nn, m, first;
	uint64_t *keys;
	int level = 0;

	L->k = wcalloc(1, sizeof(*L->k));
	L->n = 1; /* [0]: the program chain, filled in last */
	if (n <= IPT_PIECE_MAX) {
		L->k[0] = (struct piece){.name = wstrdup(head), .from = 0, .to = n,
					 .hash = chain_hash(kind, rh, n)};
		free(starts);
		return;
	}
	m = cut(rh, n, level, starts);
	nodes = wcalloc(m + 1, sizeof(*nodes));
	keys = wcalloc(m + 1, sizeof(*keys));
	first = layout_level(L, prog, level, rh, starts, m, keys);
	for (size_t i = 0; i < m; i++) {
		struct piece *k = &L->k[first + i];

		k->from = starts[i];
		k->to = i + 1 < m ? starts[i + 1] : n;
		k->hash = chain_hash(kind, rh + k->from, k->to - k->from);
		nodes[i] = first + i;
	}
	nn = m;
	while (nn > IPT_PIECE_MAX) {
		uint64_t *upkeys = wcalloc(nn + 1, sizeof(*upkeys));
		size_t *up;

		level++;
		m = cut(keys, nn, level, starts);
		up = wcalloc(m + 1, sizeof(*up));
		first = layout_level(L, prog, level, keys, starts, m, upkeys);
		for (size_t i = 0; i < m; i++) {
			struct piece *g = &L->k[first + i];
			size_t to = i + 1 < m ? starts[i + 1] : nn;

			g->n_kids = to - starts[i];
			g->kids = wmemdup(nodes + starts[i], g->n_kids * sizeof(*nodes));
			g->hash = group_hash(L, g, kind);
			up[i] = first + i;
		}
		free(nodes);
		free(keys);
		nodes = up;
		keys = upkeys;
		nn = m;
	}
	L->k[0] = (struct piece){.name = wstrdup(head), .kids = wmemdup(nodes, nn * sizeof(*nodes)), .n_kids = nn};
	L->k[0].hash = group_hash(L, &L->k[0], kind);
	free(nodes);
	free(keys);
	free(starts);
}

/* Render piece k of program chain c (cut by L) into b for family fam: its
 * rules, or its jumps to the pieces below, each followed by the return
 * once one decided. */
static int render_piece(struct render *R, struct weft_buf *b, const struct weft_acl_chain *c, const struct layout *L,
			size_t k, int fam)
{
	const struct piece *pc = &L->k[k];

	weft_buf_append(b, "", 0);
	for (size_t j = pc->from; j < pc->to; j++) {
		int r = render_rule(R, b, pc->name, c, j, fam);

		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < pc->n_kids; i++) {
		weft_buf_printf(b, "-A %s -j %s\n", pc->name, L->k[pc->kids[i]].name);
		if (c->ingress && c->kind != WEFT_ACL_CHAIN_POLICY)
			continue; /* an inbound profile allow accepts; nothing else returns decided */
		if (c->kind == WEFT_ACL_CHAIN_POLICY)
			weft_buf_printf(b, "-A %s -m mark ! --mark 0x0/0x%x -j RETURN\n", pc->name,
					WEFT_ACL_MARK_ALLOW | WEFT_ACL_MARK_PASS);
		else
			weft_buf_printf(b, "-A %s -m mark --mark 0x%x/0x%x -j RETURN\n", pc->name, WEFT_ACL_MARK_ALLOW,
					WEFT_ACL_MARK_ALLOW);
	}
	return 0;
}

/* Render program p into *st (old: what was programmed before, for
 * reusing unchanged chain texts; may be NULL). Returns 0 or -EINVAL with
 * *errmsg. */
static int render_program(const struct weft_acl_program *p, const struct ipt_state *old, struct ipt_state *st,
			  char **errmsg)
{
	struct render R = {.p = p, .errmsg = errmsg};
	char **ep_in = NULL, **ep_out = NULL;
	struct layout *lay = wcalloc(p->n_chains + 1, sizeof(*lay));
	struct runs *runs = wcalloc(p->n_chains + 1, sizeof(*runs));
	int r = 0;

	/* Names first: everything the kernel sees is checked here. */
	R.sets = wcalloc(p->n_sets + 1, sizeof(*R.sets));
	for (size_t i = 0; i < p->n_sets; i++) {
		const struct weft_acl_set *s = &p->sets[i];

		if (!name_ok(s->name, WEFT_ACL_NAME_MAX) || (s->family != AF_INET && s->family != AF_INET6)) {
			*errmsg = wasprintf("set \"%s\": bad name or family", s->name);
			r = -EINVAL;
			goto out;
		}
		R.sets[R.n_sets++] = (struct name_map){.prog = s->name, .kern = kname("weft-", s->name, IPT_SET_MAX),
						       .family = s->family};
	}
	qsort(R.sets, R.n_sets, sizeof(*R.sets), map_cmp);
	R.chains = wcalloc(p->n_chains + 1, sizeof(*R.chains));
	for (size_t i = 0; i < p->n_chains; i++) {
		if (!name_ok(p->chains[i].name, WEFT_ACL_NAME_MAX)) {
			*errmsg = wasprintf("chain \"%s\": bad name", p->chains[i].name);
			r = -EINVAL;
			goto out;
		}
		R.chains[R.n_chains++] =
			(struct name_map){.prog = p->chains[i].name, .kern = kname("weft-c-", p->chains[i].name, IPT_CHAIN_MAX)};
	}
	qsort(R.chains, R.n_chains, sizeof(*R.chains), map_cmp);
	for (size_t i = 1; i < R.n_sets; i++)
		if (streq(R.sets[i - 1].prog, R.sets[i].prog)) {
			*errmsg = wasprintf("set \"%s\" twice in the program", R.sets[i].prog);
			r = -EINVAL;
			goto out;
		}
	for (size_t i = 1; i < R.n_chains; i++)
		if (streq(R.chains[i - 1].prog, R.chains[i].prog)) {
			*errmsg = wasprintf("chain \"%s\" twice in the program", R.chains[i].prog);
			r = -EINVAL;
			goto out;
		}
	ep_in = wcalloc(p->n_endpoints + 1, sizeof(char *));
	ep_out = wcalloc(p->n_endpoints + 1, sizeof(char *));
	for (size_t i = 0; i < p->n_endpoints; i++) {
		if (!ifname_ok(p->endpoints[i].ifname)) {
			*errmsg = wasprintf("endpoint %s: bad interface name \"%s\"", p->endpoints[i].name,
					    p->endpoints[i].ifname);
			r = -EINVAL;
			goto out;
		}
		ep_in[i] = kname("weft-tw-", p->endpoints[i].ifname, IPT_CHAIN_MAX);
		ep_out[i] = kname("weft-fw-", p->endpoints[i].ifname, IPT_CHAIN_MAX);
		for (size_t j = 0; j < i; j++)
			if (streq(p->endpoints[j].ifname, p->endpoints[i].ifname)) {
				*errmsg = wasprintf("interface %s: two endpoints", p->endpoints[i].ifname);
				r = -EINVAL;
				goto out;
			}
	}

	/* Sets: elements sorted; /0 (which hash:net cannot hold) as two /1. */
	st->sets = wcalloc(p->n_sets + 1, sizeof(*st->sets));
	for (size_t i = 0; i < p->n_sets; i++) {
		const struct weft_acl_set *s = &p->sets[i];
		struct ipt_set *k = &st->sets[st->n_sets++];

		bool sorted = true, dups = false;

		k->name = wstrdup(map_find(R.sets, R.n_sets, s->name)->kern);
		k->prog = wstrdup(s->name);
		k->family = s->family;
		k->elems = wcalloc(s->n_elems + 2, sizeof(*k->elems));
		/* Normalised copies (zeroed unused bytes, so sets compare with
		 * memcmp); programs come sorted, so sorting is rarely needed. */
		for (size_t j = 0; j < s->n_elems; j++) {
			const struct weft_cidr *in = &s->elems[j];
			struct weft_cidr c = {.ip.family = s->family, .prefixlen = in->prefixlen};

			if (in->ip.family != s->family || in->prefixlen > weft_ip_bits(&in->ip)) {
				*errmsg = wasprintf("set %s: element of the wrong family or prefix", s->name);
				r = -EINVAL;
				goto out;
			}
			memcpy(c.ip.bytes, in->ip.bytes, s->family == AF_INET ? 4 : 16);
			if (c.prefixlen != weft_ip_bits(&c.ip)) {
				weft_cidr_mask(&c);
				k->prefixes = true;
			}
			if (c.prefixlen == 0) {
				/* hash:net cannot hold /0: two /1 instead. */
				c.prefixlen = 1;
				k->elems[k->n++] = c;
				c.ip.bytes[0] = 0x80;
			}
			if (k->n) {
				int cmp = cidr_cmp(&k->elems[k->n - 1], &c);

				sorted = sorted && cmp <= 0;
				dups = dups || cmp == 0;
			}
			k->elems[k->n++] = c;
		}
		if (!sorted)
			qsort(k->elems, k->n, sizeof(*k->elems), cidr_cmp);
		/* Drop exact duplicates (hash:net would refuse them). */
		if (k->n && (!sorted || dups)) {
			size_t w = 1;

			for (size_t j = 1; j < k->n; j++)
				if (cidr_cmp(&k->elems[j], &k->elems[w - 1]) != 0)
					k->elems[w++] = k->elems[j];
			k->n = w;
		}
	}
	qsort(st->sets, st->n_sets, sizeof(*st->sets), set_cmp);

	for (int fi = 0; fi < 2; fi++) {
		int fam = fi ? AF_INET6 : AF_INET;
		struct ipt_table *t = &st->tab[fi];

		for (size_t i = 0; i < p->n_chains; i++) {
			const struct weft_acl_chain *c = &runs[i].c;
			struct layout *L = &lay[i];
			struct ipt_chain *head;

			if (!L->n) {
				_cleanup_free_ uint64_t *rh = NULL;
				const char *kern = map_find(R.chains, R.n_chains, p->chains[i].name)->kern;

				runs_make(&runs[i], &p->chains[i], kern);
				rh = rule_hashes(&R, &runs[i]);
				layout_make(L, kern, c, rh);
			}
			R.ps = runs[i].ps;
			for (size_t k = 0; k < L->n; k++) {
				int kind = k ? CH_CHUNK : CH_PROGRAM;
				const struct ipt_chain *prev = old ? table_find(&old->tab[fi], L->k[k].name) : NULL;
				struct weft_buf b = {0};
				struct ipt_chain *nc;

				if (prev && prev->kind == kind && prev->hash == L->k[k].hash) {
					nc = table_add(t, wstrdup(L->k[k].name), wstrdup(prev->text), kind, NULL);
				} else {
					r = render_piece(&R, &b, c, L, k, fam);
					if (r < 0) {
						weft_buf_free(&b);
						goto out;
					}
					nc = table_add(t, wstrdup(L->k[k].name), weft_buf_steal(&b), kind, NULL);
				}
				nc->hash = L->k[k].hash;
			}
			head = &t->chains[t->n - L->n];
			head->prog = wstrdup(c->name);
			head->pkind = c->kind;
			head->ingress = c->ingress;
			head->n_chunks = L->n - 1;
			head->chunks = wcalloc(L->n, sizeof(char *));
			for (size_t k = 1; k < L->n; k++)
				head->chunks[k - 1] = wstrdup(L->k[k].name);
		}
		R.ps = NULL;
		for (size_t i = 0; i < p->n_endpoints; i++) {
			const struct weft_acl_endpoint *e = &p->endpoints[i];
			struct weft_buf b = {0};

			render_dir(&R, &b, ep_out[i], e, true, fam);
			table_add(t, wstrdup(ep_out[i]), weft_buf_steal(&b), CH_ENDPOINT, e->ifname);
			render_dir(&R, &b, ep_in[i], e, false, fam);
			table_add(t, wstrdup(ep_in[i]), weft_buf_steal(&b), CH_ENDPOINT, e->ifname);
		}
		render_base(&R, t, fam, ep_in, ep_out);
		qsort(t->chains, t->n, sizeof(*t->chains), chain_cmp);
	}
	/* The runs' port sets. */
	{
		size_t more = 0;

		for (size_t i = 0; i < p->n_chains; i++)
			for (size_t k = 0; k < runs[i].c.n_rules; k++)
				more += runs[i].ps[k].name != NULL;
		st->sets = wrealloc(st->sets, (st->n_sets + more + 1) * sizeof(*st->sets));
		for (size_t i = 0; i < p->n_chains; i++)
			for (size_t k = 0; k < runs[i].c.n_rules; k++) {
				const struct pset_ref *ps = &runs[i].ps[k];

				if (ps->name)
					st->sets[st->n_sets++] = (struct ipt_set){
						.name = wstrdup(ps->name),
						.ports = true,
						.pr = wmemdup(ps->pr, ps->npr * sizeof(*ps->pr)),
						.npr = ps->npr,
						.chain = wstrdup(map_find(R.chains, R.n_chains, runs[i].c.name)->kern)};
			}
		qsort(st->sets, st->n_sets, sizeof(*st->sets), set_cmp);
		for (size_t i = 1; i < st->n_sets; i++)
			if (streq(st->sets[i - 1].name, st->sets[i].name)) { /* a 64-bit hash collided */
				*errmsg = wasprintf("port set %s twice (chains %s, %s)", st->sets[i].name,
						    st->sets[i - 1].chain ? st->sets[i - 1].chain : "-",
						    st->sets[i].chain ? st->sets[i].chain : "-");
				r = -EINVAL;
				goto out;
			}
	}
out:
	for (size_t i = 0; i < R.n_sets; i++)
		free(R.sets[i].kern);
	for (size_t i = 0; i < R.n_chains; i++)
		free(R.chains[i].kern);
	free(R.sets);
	free(R.chains);
	strv_free(ep_in, ep_in ? p->n_endpoints : 0);
	strv_free(ep_out, ep_out ? p->n_endpoints : 0);
	for (size_t i = 0; i < p->n_chains; i++) {
		layout_free(&lay[i]);
		if (runs[i].ps)
			runs_free(&runs[i]);
	}
	free(lay);
	free(runs);
	if (r < 0)
		state_clear(st);
	return r;
}

/* ---- running iptables-restore / -save ---- */

static int memfd_with(const char *name, const char *data, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t w = write(fd, data, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			w = -errno;
			close(fd);
			return (int)w;
		}
		data += w;
		len -= (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static char *memfd_read(int fd)
{
	struct weft_buf b = {0};
	char chunk[8192];
	ssize_t n;

	weft_buf_append(&b, "", 0);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return weft_buf_steal(&b);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		weft_buf_append(&b, chunk, (size_t)n);
	}
	return weft_buf_steal(&b);
}

/* Run argv[0] with input on stdin; *out and *err get stdout and stderr.
 * Returns the exit status (0 = success, > 0 = failed) or a negative errno
 * when it could not run. */
static int run(char *const argv[], const char *input, size_t len, char **out, char **err)
{
	_cleanup_close_ int in = -1, o = -1, e = -1;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int r, st;

	in = memfd_with("weft-ipt-in", input ? input : "", len);
	if (in < 0)
		return in;
	o = memfd_create("weft-ipt-out", MFD_CLOEXEC);
	e = memfd_create("weft-ipt-err", MFD_CLOEXEC);
	if (o < 0 || e < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in, 0);
	posix_spawn_file_actions_adddup2(&fa, o, 1);
	posix_spawn_file_actions_adddup2(&fa, e, 2);
	r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		return -r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (out)
		*out = memfd_read(o);
	if (err)
		*err = memfd_read(e);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The restore tool's complaint as one line, with the input line it names. */
static char *restore_error(const char *tool, int status, const char *err, const char *input)
{
	struct weft_buf b = {0};
	const char *s = err, *at;
	long lineno = 0;

	weft_buf_printf(&b, "%s failed (%d):", tool, status);
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);

		if (n && !startswith(s, "Try `") && !startswith(s, "# Warning"))
			weft_buf_printf(&b, " %.*s", (int)n, s);
		s += n + (nl ? 1 : 0);
	}
	at = strstr(err, "line: ");
	if (at)
		lineno = strtol(at + 6, NULL, 10);
	if (lineno > 0) {
		const char *l = input;

		for (long i = 1; i < lineno && l; i++) {
			l = strchr(l, '\n');
			if (l)
				l++;
		}
		if (l && *l)
			weft_buf_printf(&b, " [%.*s]", (int)(strchrnul(l, '\n') - l), l);
	}
	return weft_buf_steal(&b);
}

/* ---- the backend ---- */

struct ipt_backend {
	struct weft_acl_backend base;
	char *restore[2], *save[2]; /* tool paths per family */
	bool have_state;            /* st is what the kernel holds */
	struct ipt_state st;
	/* For the drift check: do the tools write nftables (iptables-nft:
	 * -1 not known yet, 0 legacy, 1 nf_tables), and the nftables ruleset
	 * generation the last good check saw (gen_ok: no restore since). */
	int nft_tools;
	uint32_t gen;
	bool gen_ok;
	/* Rule texts are compared (weft writes them as iptables-save prints
	 * them), but for chains whose text differed again right after the
	 * reload a difference caused (these tools print one of their rules
	 * otherwise): text_off, "<family>:<chain>", at most TEXT_OFF_MAX
	 * (then no text is compared). text_diff: the chain whose text
	 * differed at the last check. */
	char **text_off;
	size_t n_text_off;
	char *text_diff;
};

#define TEXT_OFF_MAX 64

static int restore(struct ipt_backend *ib, int fi, const char *input, char **errmsg)
{
	char *argv[] = {ib->restore[fi], (char *)"--noflush", (char *)"-w", (char *)"10", NULL};
	_cleanup_free_ char *err = NULL;
	int r;

	log_debug("acl ipt: %s input:\n%s", ib->restore[fi], input);
	ib->gen_ok = false;
	r = run(argv, input, strlen(input), NULL, &err);
	if (r < 0) {
		seterr(errmsg, wasprintf("cannot run %s: %s", ib->restore[fi], strerror(-r)));
		return r;
	}
	if (r > 0) {
		seterr(errmsg, restore_error(ib->restore[fi], r, err, input));
		return -EIO;
	}
	return 0;
}

/* Parse `iptables-save -t filter`: weft chains and the hook rules that
 * jump to them from other chains. */
static void parse_save(const char *text, struct ipt_table *t)
{
	struct weft_buf *texts = NULL;
	const char *s = text;
	size_t last = 0;

	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		_cleanup_free_ char *line = wstrndup(s, n);

		s += n + (nl ? 1 : 0);
		if (line[0] == ':' && startswith(line + 1, "weft")) {
			line[1 + strcspn(line + 1, " ")] = 0;
			table_add(t, wstrdup(line + 1), NULL, CH_OTHER, NULL);
			texts = wrealloc(texts, t->n * sizeof(*texts));
			memset(&texts[t->n - 1], 0, sizeof(*texts));
		} else if (startswith(line, "-A ")) {
			const char *ch = line + 3;
			size_t cl = strcspn(ch, " ");

			if (startswith(ch, "weft")) {
				/* A chain's rules come one after another: try the
				 * last one's chain first. */
				for (size_t k = 0; k < t->n; k++) {
					size_t i = k == 0 ? last : k - 1 < last ? k - 1 : k;

					if (i >= t->n)
						continue;
					if (strlen(t->chains[i].name) == cl && strncmp(t->chains[i].name, ch, cl) == 0) {
						weft_buf_printf(&texts[i], "%s\n", line);
						last = i;
						break;
					}
				}
			} else if (strstr(line, " -j weft") || strstr(line, " -g weft")) {
				t->hooks = wrealloc(t->hooks, (t->n_hooks + 1) * sizeof(char *));
				t->hooks[t->n_hooks++] = wstrdup(line);
			}
		}
	}
	for (size_t i = 0; i < t->n; i++) {
		weft_buf_append(&texts[i], "", 0);
		t->chains[i].text = weft_buf_steal(&texts[i]);
	}
	free(texts);
	if (t->n)
		qsort(t->chains, t->n, sizeof(*t->chains), chain_cmp);
}

static int save(struct ipt_backend *ib, int fi, struct ipt_table *t, char **errmsg)
{
	char *argv[] = {ib->save[fi], (char *)"-t", (char *)"filter", NULL};
	_cleanup_free_ char *out = NULL, *err = NULL;
	int r;

	r = run(argv, NULL, 0, &out, &err);
	if (r < 0) {
		seterr(errmsg, wasprintf("cannot run %s: %s", ib->save[fi], strerror(-r)));
		return r;
	}
	if (r > 0) {
		seterr(errmsg, restore_error(ib->save[fi], r, err, ""));
		return -EIO;
	}
	parse_save(out, t);
	return 0;
}

/* Restore input that turns table `from` into `to`: only chains whose text
 * differs are declared (which creates or flushes them) and refilled;
 * chains only in `from` are flushed and deleted; hook rules are deleted
 * and inserted (at the top) as they differ. NULL when nothing differs. */
static char *table_diff(const struct ipt_table *from, const struct ipt_table *to)
{
	struct weft_buf decl = {0}, rules = {0}, dels = {0}, hdel = {0}, hadd = {0}, all = {0};
	bool *used = wcalloc(to->n_hooks + 1, sizeof(bool));
	size_t i = 0, j = 0;

	while (i < from->n || j < to->n) {
		int c = i == from->n ? 1 : j == to->n ? -1 : strcmp(from->chains[i].name, to->chains[j].name);

		if (c < 0) {
			weft_buf_printf(&decl, ":%s - [0:0]\n", from->chains[i].name);
			weft_buf_printf(&dels, "-X %s\n", from->chains[i].name);
			i++;
		} else if (c > 0 || !streq(from->chains[i].text, to->chains[j].text)) {
			weft_buf_printf(&decl, ":%s - [0:0]\n", to->chains[j].name);
			weft_buf_printf(&rules, "%s", to->chains[j].text);
			if (c == 0)
				i++;
			j++;
		} else {
			i++;
			j++;
		}
	}
	for (i = 0; i < from->n_hooks; i++) {
		bool keep = false;

		for (j = 0; j < to->n_hooks && !keep; j++)
			if (!used[j] && streq(from->hooks[i], to->hooks[j]))
				keep = used[j] = true;
		if (!keep)
			weft_buf_printf(&hdel, "-D%s\n", from->hooks[i] + 2);
	}
	for (size_t k = to->n_hooks; k-- > 0;) {
		const char *h = to->hooks[k] + 3;
		size_t cl = strcspn(h, " ");

		if (!used[k])
			weft_buf_printf(&hadd, "-I %.*s 1%s\n", (int)cl, h, h + cl);
	}
	free(used);
	if (decl.len || hdel.len || hadd.len) {
		weft_buf_printf(&all, "*filter\n%s%s%s%s%sCOMMIT\n", decl.data ? decl.data : "", hdel.data ? hdel.data : "",
				rules.data ? rules.data : "", dels.data ? dels.data : "", hadd.data ? hadd.data : "");
	}
	weft_buf_free(&decl);
	weft_buf_free(&rules);
	weft_buf_free(&dels);
	weft_buf_free(&hdel);
	weft_buf_free(&hadd);
	return all.len ? weft_buf_steal(&all) : NULL;
}

/* ---- ipsets through libipset ---- */

struct ips {
	struct ipset_session *s;
	const struct ipset_type *type[2];
	const struct ipset_type *ptype; /* bitmap:port */
	uint32_t lineno;
	struct weft_buf out; /* list output */
};

static int ips_outfn(struct ipset_session *session, void *p, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int ips_outfn(struct ipset_session *session, void *p, const char *fmt, ...)
{
	struct ips *c = p;
	_cleanup_free_ char *s = NULL;
	va_list ap;

	(void)session;
	va_start(ap, fmt);
	s = wvasprintf(fmt, ap);
	va_end(ap);
	weft_buf_append(&c->out, s, strlen(s));
	return 0;
}

static int ips_open(struct ips *c, char **errmsg)
{
	memset(c, 0, sizeof(*c));
	c->s = ipset_session_init(ips_outfn, c);
	if (!c->s) {
		seterr(errmsg, wstrdup("cannot initialise an ipset session"));
		return -ENOMEM;
	}
	return 0;
}

static void ips_close(struct ips *c)
{
	if (c->s)
		ipset_session_fini(c->s);
	c->s = NULL;
	weft_buf_free(&c->out);
}

/* The session's report as an error message; resets it. */
static int ips_fail(struct ips *c, const char *what, const char *set, char **errmsg)
{
	const char *m = ipset_session_report_msg(c->s);
	_cleanup_free_ char *msg = wstrdup(m && *m ? m : "failed");
	size_t n = strlen(msg);

	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = 0;
	for (char *s = msg; *s; s++)
		if (*s == '\n')
			*s = ' ';
	seterr(errmsg, wasprintf("ipset %s %s: %s", what, set, msg));
	log_debug("acl ipt: ipset %s %s: %s", what, set, msg);
	ipset_session_report_reset(c->s);
	ipset_data_reset(ipset_session_data(c->s));
	return -EIO;
}

static void ips_exist(struct ips *c, bool on)
{
	if (on)
		ipset_envopt_set(c->s, IPSET_ENV_EXIST);
	else
		ipset_envopt_unset(c->s, IPSET_ENV_EXIST);
}

/* The userspace type of hash:net for a family (checked with the kernel
 * once): element commands need it and must not ask the kernel per set. */
static const struct ipset_type *ips_type_of(struct ips *c, const char *typename, uint8_t family,
					    const struct ipset_type **slot, char **errmsg)
{
	if (*slot)
		return *slot;
	ipset_data_reset(ipset_session_data(c->s));
	ipset_session_data_set(c->s, IPSET_OPT_TYPENAME, typename);
	ipset_session_data_set(c->s, IPSET_OPT_FAMILY, &family);
	*slot = ipset_type_get(c->s, IPSET_CMD_CREATE);
	if (!*slot)
		ips_fail(c, "type", typename, errmsg);
	ipset_data_reset(ipset_session_data(c->s));
	return *slot;
}

static const struct ipset_type *ips_type(struct ips *c, int family, char **errmsg)
{
	return ips_type_of(c, IPT_SET_TYPE, (uint8_t)family, &c->type[family == AF_INET6], errmsg);
}

/* The fields every create sets. */
/* Create set name of type t with two more options (e.g. maxelem and
 * hashsize, or the port range). */
static int ips_create_set(struct ips *c, const char *name, const char *typename, uint8_t family,
			  const struct ipset_type *t, enum ipset_opt o1, const void *v1, enum ipset_opt o2,
			  const void *v2, char **errmsg)
{
	ips_exist(c, false);
	ipset_session_data_set(c->s, IPSET_SETNAME, name);
	ipset_session_data_set(c->s, IPSET_OPT_TYPENAME, typename);
	ipset_session_data_set(c->s, IPSET_OPT_FAMILY, &family);
	ipset_session_data_set(c->s, IPSET_OPT_TYPE, t);
	ipset_session_data_set(c->s, o1, v1);
	ipset_session_data_set(c->s, o2, v2);
	if (ipset_cmd(c->s, IPSET_CMD_CREATE, 0) < 0)
		return ips_fail(c, "create", name, errmsg);
	return 0;
}

/* One element added to or deleted from set name (batched: sent by
 * ips_elems_commit()), given by two options (address and prefix length,
 * or the first and last port). */
static int ips_elem(struct ips *c, enum ipset_cmd cmd, const char *name, const struct ipset_type *t, uint8_t family,
		    enum ipset_opt o1, const void *v1, enum ipset_opt o2, const void *v2, char **errmsg)
{
	ipset_session_data_set(c->s, IPSET_SETNAME, name);
	ipset_session_data_set(c->s, IPSET_OPT_TYPE, t);
	ipset_session_data_set(c->s, IPSET_OPT_FAMILY, &family);
	ipset_session_data_set(c->s, o1, v1);
	ipset_session_data_set(c->s, o2, v2);
	if (ipset_cmd(c->s, cmd, ++c->lineno) < 0)
		return ips_fail(c, cmd == IPSET_CMD_ADD ? "add" : "del", name, errmsg);
	return 0;
}

static int ips_elems_commit(struct ips *c, enum ipset_cmd cmd, const char *name, char **errmsg)
{
	if (ipset_commit(c->s) < 0)
		return ips_fail(c, cmd == IPSET_CMD_ADD ? "add" : "del", name, errmsg);
	return 0;
}

static uint32_t pow2_at_least(uint64_t n)
{
	uint32_t v = 1;

	while (v < n && v < (1u << 30))
		v <<= 1;
	return v;
}

static uint32_t set_maxelem(size_t n)
{
	return pow2_at_least(n * 2 > (1u << 20) ? n * 2 : (1u << 20));
}

static int ips_create(struct ips *c, const char *name, int family, uint32_t maxelem, size_t n, char **errmsg)
{
	const struct ipset_type *t = ips_type(c, family, errmsg);
	uint8_t f = (uint8_t)family;
	uint32_t hashsize = pow2_at_least(n / 2 > 1024 ? n / 2 : 1024);

	if (!t)
		return -EIO;
	return ips_create_set(c, name, IPT_SET_TYPE, f, t, IPSET_OPT_MAXELEM, &maxelem, IPSET_OPT_HASHSIZE, &hashsize,
			      errmsg);
}

/* Destroy a set; a set just unreferenced by iptables-nft may stay busy
 * until the kernel has released the rules: retry for a while. */
static int ips_destroy(struct ips *c, const char *name, char **errmsg)
{
	for (int attempt = 0;; attempt++) {
		ipset_session_data_set(c->s, IPSET_SETNAME, name);
		if (ipset_cmd(c->s, IPSET_CMD_DESTROY, 0) >= 0)
			return 0;
		if (attempt >= 60 || !strstr(ipset_session_report_msg(c->s), "in use"))
			return ips_fail(c, "destroy", name, errmsg);
		ipset_session_report_reset(c->s);
		ipset_data_reset(ipset_session_data(c->s));
		nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
	}
}

static int ips_swap(struct ips *c, const char *a, const char *b, char **errmsg)
{
	ipset_session_data_set(c->s, IPSET_SETNAME, a);
	ipset_session_data_set(c->s, IPSET_OPT_SETNAME2, b);
	if (ipset_cmd(c->s, IPSET_CMD_SWAP, 0) < 0)
		return ips_fail(c, "swap", a, errmsg);
	return 0;
}

/* Add or delete elements, batched many to a netlink message. */
static int ips_elems(struct ips *c, enum ipset_cmd cmd, const char *name, int family, const struct weft_cidr *e, size_t n,
		     char **errmsg)
{
	const struct ipset_type *t = ips_type(c, family, errmsg);
	uint8_t f = (uint8_t)family;

	if (!t)
		return -EIO;
	for (size_t i = 0; i < n; i++) {
		uint8_t cidr = (uint8_t)e[i].prefixlen;
		int r = ips_elem(c, cmd, name, t, f, IPSET_OPT_IP, e[i].ip.bytes, IPSET_OPT_CIDR, &cidr, errmsg);

		if (r < 0)
			return r;
	}
	return ips_elems_commit(c, cmd, name, errmsg);
}

/* Port sets: bitmap:port over every port (8 KiB each), no family (one
 * set serves iptables and ip6tables). */
#define IPT_PSET_TYPE "bitmap:port"

static const struct ipset_type *ips_ptype(struct ips *c, char **errmsg)
{
	return ips_type_of(c, IPT_PSET_TYPE, NFPROTO_UNSPEC, &c->ptype, errmsg);
}

static int ips_create_ports(struct ips *c, const char *name, char **errmsg)
{
	const struct ipset_type *t = ips_ptype(c, errmsg);
	uint16_t from = 0, to = 65535;

	if (!t)
		return -EIO;
	return ips_create_set(c, name, IPT_PSET_TYPE, NFPROTO_UNSPEC, t, IPSET_OPT_PORT_FROM, &from, IPSET_OPT_PORT_TO,
			      &to, errmsg);
}

/* Add or delete port ranges. */
static int ips_ports(struct ips *c, enum ipset_cmd cmd, const char *name, const struct weft_acl_portrange *pr, size_t n,
		     char **errmsg)
{
	const struct ipset_type *t = ips_ptype(c, errmsg);
	uint8_t f = NFPROTO_UNSPEC;

	if (!t)
		return -EIO;
	for (size_t i = 0; i < n; i++) {
		uint16_t lo = pr[i].lo, hi = pr[i].hi;
		int r = ips_elem(c, cmd, name, t, f, IPSET_OPT_PORT, &lo, IPSET_OPT_PORT_TO, &hi, errmsg);

		if (r < 0)
			return r;
	}
	return ips_elems_commit(c, cmd, name, errmsg);
}

/* The ports of a not in b (both sorted, disjoint), as ranges. */
static size_t ports_minus(const struct weft_acl_portrange *a, size_t na, const struct weft_acl_portrange *b, size_t nb,
			  struct weft_acl_portrange **out)
{
	struct weft_acl_portrange *v = wcalloc(na + nb + 1, sizeof(*v));
	size_t n = 0, j = 0;

	for (size_t i = 0; i < na; i++) {
		uint32_t lo = a[i].lo, hi = a[i].hi;

		while (j < nb && b[j].hi < lo)
			j++;
		for (size_t k = j; k < nb && b[k].lo <= hi && lo <= hi; k++) {
			if (b[k].lo > lo)
				v[n++] = (struct weft_acl_portrange){(uint16_t)lo, (uint16_t)(b[k].lo - 1)};
			lo = (uint32_t)b[k].hi + 1;
		}
		if (lo <= hi)
			v[n++] = (struct weft_acl_portrange){(uint16_t)lo, (uint16_t)hi};
	}
	*out = v;
	return n;
}

/* Names of the sets in the kernel that begin with "weft". */
static int ips_list_weft(struct ips *c, char ***names, size_t *n, char **errmsg)
{
	char **v = NULL;
	size_t nv = 0;
	const char *s;

	weft_buf_free(&c->out);
	weft_buf_append(&c->out, "", 0);
	ipset_envopt_set(c->s, IPSET_ENV_LIST_SETNAME);
	if (ipset_cmd(c->s, IPSET_CMD_LIST, 0) < 0) {
		ipset_envopt_unset(c->s, IPSET_ENV_LIST_SETNAME);
		return ips_fail(c, "list", "", errmsg);
	}
	ipset_envopt_unset(c->s, IPSET_ENV_LIST_SETNAME);
	for (s = c->out.data; *s;) {
		size_t l = strcspn(s, "\n");

		if (l > 4 && strncmp(s, "weft", 4) == 0) {
			v = wrealloc(v, (nv + 1) * sizeof(*v));
			v[nv++] = wstrndup(s, l);
		}
		s += l + (s[l] ? 1 : 0);
	}
	*names = v;
	*n = nv;
	return 0;
}

/* ---- apply ---- */

/* What an apply did to sets, undone in reverse order on failure. */
enum { J_NOTHING, J_CREATED, J_SWAPPED, J_ADDED, J_DELETED };
struct journal {
	int op;
	const char *set; /* kernel name (the new state's) */
	char *tmp;       /* J_SWAPPED: holds the old content */
	int family;
	struct weft_cidr *elems; /* J_ADDED / J_DELETED */
	size_t n;
	struct weft_acl_portrange *pr; /* J_ADDED / J_DELETED of a port set (elems NULL) */
	size_t npr;
};

static void journal_undo(struct ips *c, struct journal *j, size_t n)
{
	char *ignored = NULL;

	ips_exist(c, true);
	for (size_t i = n; i-- > 0;) {
		switch (j[i].op) {
		case J_NOTHING:
			break;
		case J_CREATED:
			ips_destroy(c, j[i].set, &ignored);
			break;
		case J_SWAPPED:
			ips_swap(c, j[i].tmp, j[i].set, &ignored);
			ips_destroy(c, j[i].tmp, &ignored);
			break;
		case J_ADDED:
			if (j[i].pr)
				ips_ports(c, IPSET_CMD_DEL, j[i].set, j[i].pr, j[i].npr, &ignored);
			else
				ips_elems(c, IPSET_CMD_DEL, j[i].set, j[i].family, j[i].elems, j[i].n, &ignored);
			break;
		case J_DELETED:
			if (j[i].pr)
				ips_ports(c, IPSET_CMD_ADD, j[i].set, j[i].pr, j[i].npr, &ignored);
			else
				ips_elems(c, IPSET_CMD_ADD, j[i].set, j[i].family, j[i].elems, j[i].n, &ignored);
			break;
		}
		free(ignored);
		ignored = NULL;
	}
}

static void journal_free(struct journal *j, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(j[i].tmp);
		free(j[i].elems);
		free(j[i].pr);
	}
	free(j);
}

/* Elements of a not in b (both sorted). */
static size_t cidr_minus(const struct weft_cidr *a, size_t na, const struct weft_cidr *b, size_t nb, struct weft_cidr **out)
{
	struct weft_cidr *v = wcalloc(na + 1, sizeof(*v));
	size_t i = 0, j = 0, n = 0;

	while (i < na) {
		int c = j == nb ? -1 : cidr_cmp(&a[i], &b[j]);

		if (c < 0)
			v[n++] = a[i++];
		else if (c > 0)
			j++;
		else
			i++, j++;
	}
	*out = v;
	return n;
}

/* Port set s, given what the kernel has (old, or NULL); at most two
 * journal entries at j[*n]. Ports go before others come (no port that
 * stays is ever missing). As with nft, stats count a port set's element
 * changes, not the port sets themselves or a new one's elements (sets_*
 * and elems_* of new sets are the program's sets). */
static int apply_pset(struct ips *c, const struct ipt_set *old, const struct ipt_set *s, struct journal *j, size_t *n,
		      struct weft_acl_stats *stats, char **errmsg)
{
	struct weft_acl_portrange *add, *del;
	size_t nadd, ndel;
	int r = 0;

	if (!old) {
		r = ips_create_ports(c, s->name, errmsg);
		if (r < 0)
			return r;
		j[(*n)++] = (struct journal){.op = J_CREATED, .set = s->name};
		return ips_ports(c, IPSET_CMD_ADD, s->name, s->pr, s->npr, errmsg);
	}
	if (old->unknown || !old->ports) { /* found in the kernel: fill a fresh one, swap it in */
		char *tmp = tmp_set_name(s->name);

		j[(*n)++] = (struct journal){.op = J_CREATED, .set = tmp, .tmp = tmp};
		r = ips_create_ports(c, tmp, errmsg);
		if (r < 0) {
			j[*n - 1].op = J_NOTHING;
			return r;
		}
		r = ips_ports(c, IPSET_CMD_ADD, tmp, s->pr, s->npr, errmsg);
		if (r == 0)
			r = ips_swap(c, tmp, s->name, errmsg);
		if (r == 0) {
			j[*n - 1].op = J_SWAPPED;
			j[*n - 1].set = s->name;
		}
		return r;
	}
	if (weft_acl_ports_eq(old->pr, old->npr, s->pr, s->npr))
		return 0;
	ndel = ports_minus(old->pr, old->npr, s->pr, s->npr, &del);
	nadd = ports_minus(s->pr, s->npr, old->pr, old->npr, &add);
	if (ndel) {
		j[(*n)++] = (struct journal){.op = J_DELETED, .set = s->name, .pr = del, .npr = ndel};
		r = ips_ports(c, IPSET_CMD_DEL, s->name, del, ndel, errmsg);
	} else {
		free(del);
	}
	if (r == 0 && nadd) {
		j[(*n)++] = (struct journal){.op = J_ADDED, .set = s->name, .pr = add, .npr = nadd};
		r = ips_ports(c, IPSET_CMD_ADD, s->name, add, nadd, errmsg);
	} else {
		free(add);
	}
	stats->elems_added += nadd;
	stats->elems_removed += ndel;
	return r;
}

/* Program the sets of `to`, given what `from` holds. */
static int apply_sets(struct ips *c, const struct ipt_state *from, struct ipt_state *to, struct journal **jp, size_t *nj,
		      struct weft_acl_stats *stats, char **errmsg)
{
	struct journal *j = wcalloc(2 * to->n_sets + 1, sizeof(*j));
	size_t n = 0;
	int r = 0;

	for (size_t i = 0; i < to->n_sets && r == 0; i++) {
		struct ipt_set *s = &to->sets[i];
		const struct ipt_set *old = state_set(from, s->name);

		if (s->ports) {
			r = apply_pset(c, old, s, j, &n, stats, errmsg);
			continue;
		}
		if (!old) {
			s->maxelem = set_maxelem(s->n);
			r = ips_create(c, s->name, s->family, s->maxelem, s->n, errmsg);
			if (r < 0)
				break;
			j[n++] = (struct journal){.op = J_CREATED, .set = s->name};
			ips_exist(c, false);
			r = ips_elems(c, IPSET_CMD_ADD, s->name, s->family, s->elems, s->n, errmsg);
			stats->sets_created++;
			stats->elems_added += s->n;
		} else if (old->unknown || old->family != s->family || s->n > old->maxelem) {
			/* Fill a fresh set, then swap it in: one atomic step.
			 * The journal entry owns the temporary name. */
			char *tmp = tmp_set_name(s->name);

			s->maxelem = set_maxelem(s->n);
			j[n++] = (struct journal){.op = J_CREATED, .set = tmp, .tmp = tmp};
			r = ips_create(c, tmp, s->family, s->maxelem, s->n, errmsg);
			if (r < 0) {
				j[n - 1].op = J_NOTHING;
				break;
			}
			ips_exist(c, false);
			r = ips_elems(c, IPSET_CMD_ADD, tmp, s->family, s->elems, s->n, errmsg);
			if (r == 0)
				r = ips_swap(c, tmp, s->name, errmsg);
			if (r < 0)
				break;
			j[n - 1].op = J_SWAPPED;
			j[n - 1].set = s->name;
			stats->elems_added += s->n;
			if (!old->unknown)
				stats->elems_removed += old->n;
		} else if (old->n == s->n && memcmp(old->elems, s->elems, s->n * sizeof(*s->elems)) == 0) {
			s->maxelem = old->maxelem; /* unchanged: the common case */
		} else {
			struct weft_cidr *add, *del;
			size_t nadd = cidr_minus(s->elems, s->n, old->elems, old->n, &add);
			size_t ndel = cidr_minus(old->elems, old->n, s->elems, s->n, &del);

			s->maxelem = old->maxelem;
			ips_exist(c, false);
			if (ndel) {
				r = ips_elems(c, IPSET_CMD_DEL, s->name, s->family, del, ndel, errmsg);
				j[n++] = (struct journal){.op = J_DELETED, .set = s->name, .family = s->family, .elems = del, .n = ndel};
			} else
				free(del);
			if (r == 0 && nadd) {
				r = ips_elems(c, IPSET_CMD_ADD, s->name, s->family, add, nadd, errmsg);
				j[n++] = (struct journal){.op = J_ADDED, .set = s->name, .family = s->family, .elems = add, .n = nadd};
			} else
				free(add);
			stats->elems_added += nadd;
			stats->elems_removed += ndel;
		}
	}
	*jp = j;
	*nj = n;
	return r;
}

/* Whether kernel chain `name` differs between from and to (either family). */
static bool chain_differs(const struct ipt_state *from, const struct ipt_state *to, const char *name)
{
	for (int fi = 0; fi < 2; fi++) {
		const struct ipt_chain *o = table_find(&from->tab[fi], name), *n = table_find(&to->tab[fi], name);

		if (!o || !n || !streq(o->text, n->text))
			return true;
	}
	return false;
}

static void count_chains(const struct ipt_state *from, const struct ipt_state *to, struct weft_acl_stats *stats)
{
	/* Program chains by name (replaced when it or one of its pieces
	 * changed); endpoints by interface (either direction or family
	 * changed = replaced). Both families hold the same names. */
	for (size_t k = 0; k < to->tab[0].n; k++) {
		const struct ipt_chain *c = &to->tab[0].chains[k];
		const struct ipt_chain *o = table_find(&from->tab[0], c->name);
		bool changed;

		if (c->kind != CH_PROGRAM)
			continue;
		if (!o && !table_find(&from->tab[1], c->name)) {
			stats->chains_created++;
			continue;
		}
		/* (The chain's own text names its pieces.) */
		changed = chain_differs(from, to, c->name);
		for (size_t q = 0; q < c->n_chunks && !changed; q++)
			changed = chain_differs(from, to, c->chunks[q]);
		stats->chains_replaced += changed;
	}
	for (size_t k = 0; k < from->tab[0].n; k++) {
		const struct ipt_chain *c = &from->tab[0].chains[k];

		if (startswith(c->name, "weft-c-") && !table_find(&to->tab[0], c->name))
			stats->chains_deleted++;
	}
	/* Endpoints: weft-fw-IF stands for the endpoint; it is replaced when
	 * either direction changed in either family. */
	for (size_t k = 0; k < to->tab[0].n; k++) {
		const struct ipt_chain *c = &to->tab[0].chains[k];
		_cleanup_free_ char *tw = NULL;
		bool changed = false;

		if (c->kind != CH_ENDPOINT || !startswith(c->name, "weft-fw-"))
			continue;
		if (!table_find(&from->tab[0], c->name)) {
			stats->endpoints_added++;
			continue;
		}
		tw = wasprintf("weft-tw-%s", c->name + strlen("weft-fw-"));
		for (int fi = 0; fi < 2 && !changed; fi++)
			for (int d = 0; d < 2 && !changed; d++) {
				const char *name = d ? tw : c->name;
				const struct ipt_chain *o = table_find(&from->tab[fi], name);
				const struct ipt_chain *nw = table_find(&to->tab[fi], name);

				changed = !o || !nw || !streq(o->text, nw->text);
			}
		if (changed)
			stats->endpoints_replaced++;
	}
	for (size_t k = 0; k < from->tab[0].n; k++) {
		const struct ipt_chain *c = &from->tab[0].chains[k];

		if (startswith(c->name, "weft-fw-") && !table_find(&to->tab[0], c->name))
			stats->endpoints_removed++;
	}
}

/* What weft has in the kernel now, for a first apply: chains and hooks
 * from iptables-save, sets by name only (content unknown). */
static int discover(struct ipt_backend *ib, struct ips *c, struct ipt_state *from, char **errmsg)
{
	char **names = NULL;
	size_t n = 0;
	int r;

	for (int fi = 0; fi < 2; fi++) {
		r = save(ib, fi, &from->tab[fi], errmsg);
		if (r < 0)
			return r;
	}
	r = ips_list_weft(c, &names, &n, errmsg);
	if (r < 0)
		return r;
	from->sets = wcalloc(n + 1, sizeof(*from->sets));
	for (size_t i = 0; i < n; i++) {
		/* Temporary sets of an interrupted apply go right away: no
		 * rule can reference them. */
		if (startswith(names[i], "weft-tmp.")) {
			ips_destroy(c, names[i], NULL);
			continue;
		}
		from->sets[from->n_sets++] = (struct ipt_set){.name = wstrdup(names[i]), .unknown = true};
	}
	strv_free(names, n);
	qsort(from->sets, from->n_sets, sizeof(*from->sets), set_cmp);
	return 0;
}

static int ipt_apply(struct weft_acl_backend *b, const struct weft_acl_program *p, struct weft_acl_stats *stats,
		     char **errmsg)
{
	struct ipt_backend *ib = (struct ipt_backend *)b;
	struct ipt_state to = {0}, found = {0};
	const struct ipt_state *from = &found;
	struct journal *j = NULL;
	size_t nj = 0;
	char *err = NULL;
	char *text[2] = {NULL, NULL};
	bool done[2] = {false, false};
	struct ips c;
	int64_t t0;
	int r;

	r = render_program(p, ib->have_state ? &ib->st : NULL, &to, &err);
	if (r < 0)
		goto out;
	r = ips_open(&c, &err);
	if (r < 0)
		goto out;
	t0 = weft_now_ns();
	if (!ib->have_state) {
		stats->full = true;
		r = discover(ib, &c, &found, &err);
		if (r < 0)
			goto out_ips;
		from = &found;
	} else
		from = &ib->st;

	/* 1. Sets: new ones and new members first, so rules never name a set
	 *    that does not exist yet. */
	r = apply_sets(&c, from, &to, &j, &nj, stats, &err);
	if (r < 0)
		goto undo;

	/* 2. Rules: one restore transaction per family. */
	for (int fi = 0; fi < 2; fi++) {
		text[fi] = table_diff(&from->tab[fi], &to.tab[fi]);
		if (!text[fi])
			continue;
		r = restore(ib, fi, text[fi], &err);
		if (r < 0)
			goto undo;
		done[fi] = true;
	}
	count_chains(from, &to, stats);

	/* 3. Sets nothing references any more, and the swapped-out copies. A
	 *    set that cannot go stays in the state with its content unknown
	 *    (as an update keeps a port set): the next apply tries again, or
	 *    replaces it should a program want that name back. */
	{
		_cleanup_free_ bool *kept = wcalloc(from->n_sets + 1, sizeof(*kept));
		size_t n_kept = 0;

		for (size_t i = 0; i < from->n_sets; i++) {
			const char *name = from->sets[i].name;
			char *why = NULL;

			if (state_set(&to, name))
				continue;
			if (ips_destroy(&c, name, &why) == 0) {
				if (!startswith(name, IPT_PSET_PREFIX))
					stats->sets_deleted++;
				continue;
			}
			log_warn("acl ipt: set %s stays: %s", name, why ? why : "?");
			free(why);
			kept[i] = true;
			n_kept++;
		}
		if (n_kept) {
			to.sets = wrealloc(to.sets, (to.n_sets + n_kept + 1) * sizeof(*to.sets));
			for (size_t i = 0; i < from->n_sets; i++) {
				const struct ipt_set *f = &from->sets[i];

				if (!kept[i])
					continue;
				/* A port set keeps what it holds and its chain, so
				 * that the chain's next update can change or destroy
				 * it; a tag set no program names is just a name. */
				to.sets[to.n_sets++] = (struct ipt_set){
					.name = wstrdup(f->name),
					.unknown = f->unknown || !f->ports,
					.ports = f->ports,
					.pr = f->ports ? wmemdup(f->pr, f->npr * sizeof(*f->pr)) : NULL,
					.npr = f->ports ? f->npr : 0,
					.chain = f->chain ? wstrdup(f->chain) : NULL,
				};
			}
			qsort(to.sets, to.n_sets, sizeof(*to.sets), set_cmp);
		}
	}
	for (size_t i = 0; i < nj; i++)
		if (j[i].op == J_SWAPPED)
			ips_destroy(&c, j[i].tmp, NULL);
	stats->apply_ns = weft_now_ns() - t0;
	state_clear(&ib->st);
	ib->st = to;
	memset(&to, 0, sizeof(to));
	ib->have_state = true;
	r = 0;
	goto out_ips;

undo:
	/* Put back what this apply changed: the family already restored, then
	 * the sets. The next apply starts over with a full replace. */
	for (int fi = 0; fi < 2; fi++) {
		if (done[fi]) {
			_cleanup_free_ char *back = table_diff(&to.tab[fi], &from->tab[fi]);
			char *ignored = NULL;

			if (back && restore(ib, fi, back, &ignored) < 0)
				log_debug("acl ipt: rollback failed: %s", ignored);
			free(ignored);
		}
	}
	journal_undo(&c, j, nj);
	ib->have_state = false;
	state_clear(&ib->st);
out_ips:
	ips_close(&c);
out:
	journal_free(j, nj);
	free(text[0]);
	free(text[1]);
	state_clear(&to);
	state_clear(&found);
	if (r < 0) {
		/* Whatever failed, the next apply starts over with a full replace. */
		ib->have_state = false;
		state_clear(&ib->st);
		log_debug("acl ipt: apply failed: %s", err ? err : "");
		if (errmsg)
			*errmsg = err;
		else
			free(err);
		return r;
	}
	free(err);
	return 0;
}

/* ---- update (weft_acl_update) ---- */

/* An update works from the state of the last apply alone: the program's
 * names come from the state (struct ipt_set.prog, struct ipt_chain.prog),
 * member changes go to the kernel sets one element each, and only the
 * pieces of the program chains the change touches are rendered. A kernel
 * chain whose text changes is edited in place where the old and new rule
 * lines differ (the equal start and end are kept): "-R chain N" for a
 * line replaced, "-D chain N" for one gone, "-I chain N" (or "-A" at the
 * end) for one added; so one rule added to a program chain of 10,000 is
 * one kernel rule added to a piece of at most IPT_PIECE_MAX. */

struct line {
	const char *s; /* "-A chain ..." without the newline */
	size_t n;
};

static size_t split_lines(const char *text, struct line **out)
{
	struct line *v = NULL;
	size_t n = 0, cap = 0;

	for (const char *s = text ? text : ""; *s;) {
		const char *nl = strchrnul(s, '\n');

		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			v = wrealloc(v, cap * sizeof(*v));
		}
		v[n++] = (struct line){s, (size_t)(nl - s)};
		s = *nl ? nl + 1 : nl;
	}
	*out = v;
	return n;
}

static bool line_eq(const struct line *a, const struct line *b)
{
	return a->n == b->n && memcmp(a->s, b->s, a->n) == 0;
}

/* Restore input of one family, in three parts: chain declarations
 * (create or flush), rule commands, chain deletions. */
struct edit {
	struct weft_buf decl, ops, dels;
};

static void edit_free(struct edit *E)
{
	weft_buf_free(&E->decl);
	weft_buf_free(&E->ops);
	weft_buf_free(&E->dels);
}

/* The input (NULL when nothing changes); resets E. */
static char *edit_text(struct edit *E)
{
	struct weft_buf all = {0};

	if (E->decl.len || E->ops.len || E->dels.len)
		weft_buf_printf(&all, "*filter\n%s%s%sCOMMIT\n", E->decl.len ? E->decl.data : "",
				E->ops.len ? E->ops.data : "", E->dels.len ? E->dels.data : "");
	edit_free(E);
	return all.len ? weft_buf_steal(&all) : NULL;
}

/* Commands that turn chain `name` from text `from` (NULL: no such chain)
 * into text `to` (NULL: delete the chain). Rule lines are "-A name ...".
 * *added and *deleted count kernel rules. Returns whether the chain
 * changes. */
static bool chain_edit(struct edit *E, const char *name, const char *from, const char *to, size_t *added,
		       size_t *deleted)
{
	_cleanup_free_ struct line *o = NULL, *n = NULL;
	size_t no, nn, pre = 0, suf = 0, d, a, skip = 3 + strlen(name);

	if (from && to && streq(from, to))
		return false;
	no = split_lines(from, &o);
	nn = split_lines(to, &n);
	if (!to) {
		/* Declaring flushes it; deleted after the rules that jump to it. */
		weft_buf_printf(&E->decl, ":%s - [0:0]\n", name);
		weft_buf_printf(&E->dels, "-X %s\n", name);
		*deleted += no;
		return true;
	}
	while (pre < no && pre < nn && line_eq(&o[pre], &n[pre]))
		pre++;
	while (suf < no - pre && suf < nn - pre && line_eq(&o[no - 1 - suf], &n[nn - 1 - suf]))
		suf++;
	d = no - pre - suf;
	a = nn - pre - suf;
	for (size_t k = pre; k < nn - suf; k++)
		if (n[k].n <= skip || strncmp(n[k].s, "-A ", 3) || strncmp(n[k].s + 3, name, skip - 3) ||
		    n[k].s[skip] != ' ')
			from = NULL; /* not a line of ours: re-declare the chain */
	if (!from || (d > a ? d : a) > nn + 1) {
		/* New, or mostly gone: (re)declare it and fill it. */
		weft_buf_printf(&E->decl, ":%s - [0:0]\n", name);
		if (to[0])
			weft_buf_printf(&E->ops, "%s", to);
		*added += nn;
		*deleted += no;
		return true;
	}
	for (size_t k = 0; k < d && k < a; k++) {
		const struct line *l = &n[pre + k];

		weft_buf_printf(&E->ops, "-R %s %zu%.*s\n", name, pre + k + 1, (int)(l->n - skip), l->s + skip);
	}
	for (size_t k = a; k < d; k++)
		weft_buf_printf(&E->ops, "-D %s %zu\n", name, pre + a + 1);
	for (size_t k = d; k < a; k++) {
		const struct line *l = &n[pre + k];

		if (suf == 0)
			weft_buf_printf(&E->ops, "%.*s\n", (int)l->n, l->s);
		else
			weft_buf_printf(&E->ops, "-I %s %zu%.*s\n", name, pre + k + 1, (int)(l->n - skip), l->s + skip);
	}
	*added += a;
	*deleted += d;
	return true;
}

/* The interface a dispatch line names ("-A weft-from-wl -i IF -g ..."),
 * or NULL (the final DROP). */
static char *dispatch_ifname(const struct line *l, const char *flag)
{
	_cleanup_free_ char *line = wstrndup(l->s, l->n), *pat = wasprintf(" %s ", flag);
	const char *at = strstr(line, pat);

	if (!at)
		return NULL;
	at += strlen(pat);
	return wstrndup(at, strcspn(at, " "));
}

static int strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Dispatch chain `name` (render_base(): "-A name FLAG IF -g PREFIX-IF"
 * per endpoint in interface order, then DROP) with the entries of the
 * interfaces gone[] taken out and those of added[] (sorted) put in at
 * their place. */
static char *dispatch_text(const char *from, const char *name, const char *flag, const char *prefix,
			   char *const *gone, size_t n_gone, char *const *added, size_t n_added)
{
	_cleanup_free_ struct line *v = NULL;
	struct weft_buf b = {0};
	size_t n = split_lines(from, &v), ai = 0;

	weft_buf_append(&b, "", 0);
	for (size_t i = 0; i <= n; i++) {
		_cleanup_free_ char *ifn = i < n ? dispatch_ifname(&v[i], flag) : NULL;
		bool drop = false;

		/* New entries go before the first greater one (or the DROP). */
		while (ai < n_added && (!ifn || strcmp(added[ai], ifn) < 0)) {
			_cleanup_free_ char *ch = kname(prefix, added[ai], IPT_CHAIN_MAX);

			weft_buf_printf(&b, "-A %s %s %s -g %s\n", name, flag, added[ai], ch);
			ai++;
		}
		if (i == n)
			break;
		for (size_t k = 0; ifn && k < n_gone && !drop; k++)
			drop = streq(ifn, gone[k]);
		if (!drop)
			weft_buf_printf(&b, "%.*s\n", (int)v[i].n, v[i].s);
	}
	return weft_buf_steal(&b);
}

/* Insert chain c (taken over) into t at its sorted place. */
static void table_insert(struct ipt_table *t, const struct ipt_chain *c)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(t->chains[mid].name, c->name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->chains = wrealloc(t->chains, t->cap * sizeof(*t->chains));
	}
	memmove(&t->chains[lo + 1], &t->chains[lo], (t->n - lo) * sizeof(*t->chains));
	t->chains[lo] = *c;
	t->n++;
}

static void table_erase(struct ipt_table *t, const char *name)
{
	const struct ipt_chain *c = table_find(t, name);
	size_t i;

	if (!c)
		return;
	i = (size_t)(c - t->chains);
	free(t->chains[i].name);
	free(t->chains[i].text);
	free(t->chains[i].ifname);
	free(t->chains[i].prog);
	strv_free(t->chains[i].chunks, t->chains[i].n_chunks);
	memmove(&t->chains[i], &t->chains[i + 1], (t->n - i - 1) * sizeof(*t->chains));
	t->n--;
}

/* One set's member change, checked and cut down to what changes. */
struct upd_set {
	size_t si; /* index in the state's sets */
	struct weft_cidr *add, *del; /* normalised, sorted, real changes */
	size_t n_add, n_del;
};

/* One chain the update changes (the same in both families). */
struct upd_chain {
	char *name;                       /* kernel name */
	int kind;                         /* CH_PROGRAM, CH_ENDPOINT, CH_OTHER (dispatch) */
	const char *ifname;               /* CH_ENDPOINT: the change's */
	uint64_t hash;                    /* CH_PROGRAM, CH_CHUNK: chain_hash() */
	char **chunks;                    /* CH_PROGRAM: the new further pieces */
	size_t n_chunks;
	const char *from[2];              /* the state's text; NULL: a new chain */
	char *to[2];                      /* the new text; NULL: the chain goes */
	bool changed;
};

/* A port set the update creates, changes or destroys (struct runs). */
enum { UP_CREATE, UP_CHANGE, UP_DESTROY };

struct upd_pset {
	char *name, *chain; /* kernel names */
	int op;
	struct weft_acl_portrange *pr, *add, *del; /* the new ports; UP_CHANGE: what comes and goes */
	size_t npr, nadd, ndel;
	bool stays; /* UP_DESTROY that failed */
};

struct upd {
	struct render R; /* names from the state; kern points into it */
	struct upd_set *sets;
	size_t n_sets;
	struct upd_pset *psets;
	size_t n_psets, cap_psets;
	struct upd_chain *chains;
	size_t n_chains, cap_chains;
	char **added;   /* interfaces of new endpoints (the change's strings), sorted */
	size_t n_added;
	char **gone;    /* interfaces of removed endpoints */
	size_t n_gone;
	bool unsupported;
};

static void upd_free(struct upd *u)
{
	free(u->R.sets);
	free(u->R.chains);
	for (size_t i = 0; i < u->n_sets; i++) {
		free(u->sets[i].add);
		free(u->sets[i].del);
	}
	free(u->sets);
	for (size_t i = 0; i < u->n_psets; i++) {
		free(u->psets[i].name);
		free(u->psets[i].chain);
		free(u->psets[i].pr);
		free(u->psets[i].add);
		free(u->psets[i].del);
	}
	free(u->psets);
	for (size_t i = 0; i < u->n_chains; i++) {
		free(u->chains[i].name);
		free(u->chains[i].to[0]);
		free(u->chains[i].to[1]);
		strv_free(u->chains[i].chunks, u->chains[i].n_chunks);
	}
	free(u->chains);
	free(u->added);
	free(u->gone);
}

static struct upd_chain *upd_chain_new(struct upd *u, char *name, int kind)
{
	struct upd_chain *c;

	if (u->n_chains == u->cap_chains) {
		u->cap_chains = u->cap_chains ? 2 * u->cap_chains : 8;
		u->chains = wrealloc(u->chains, u->cap_chains * sizeof(*u->chains));
	}
	c = &u->chains[u->n_chains++];
	memset(c, 0, sizeof(*c));
	c->name = name;
	c->kind = kind;
	return c;
}

static const struct upd_chain *upd_find(const struct upd *u, const char *name)
{
	for (size_t i = 0; i < u->n_chains; i++)
		if (streq(u->chains[i].name, name))
			return &u->chains[i];
	return NULL;
}

/* The render maps of the state's program: set and chain names. */
static void upd_maps(const struct ipt_state *st, struct render *R)
{
	const struct ipt_table *t = &st->tab[0];

	R->sets = wcalloc(st->n_sets + 1, sizeof(*R->sets));
	for (size_t i = 0; i < st->n_sets; i++)
		if (st->sets[i].prog)
			R->sets[R->n_sets++] = (struct name_map){.prog = st->sets[i].prog, .kern = st->sets[i].name,
								 .family = st->sets[i].family};
	qsort(R->sets, R->n_sets, sizeof(*R->sets), map_cmp);
	R->chains = wcalloc(t->n + 1, sizeof(*R->chains));
	for (size_t i = 0; i < t->n; i++)
		if (t->chains[i].kind == CH_PROGRAM && t->chains[i].prog)
			R->chains[R->n_chains++] = (struct name_map){.prog = t->chains[i].prog, .kern = t->chains[i].name};
	qsort(R->chains, R->n_chains, sizeof(*R->chains), map_cmp);
}

static const char *cidr_or_index(const struct weft_cidr *c, size_t k, char *buf, size_t size)
{
	if (c->ip.family == AF_INET || c->ip.family == AF_INET6)
		return weft_cidr_str(c, buf, size);
	snprintf(buf, size, "#%zu (no family)", k + 1);
	return buf;
}

static bool cidr_in(const struct weft_cidr *v, size_t n, const struct weft_cidr *c)
{
	return n && bsearch(c, v, n, sizeof(*c), cidr_cmp) != NULL;
}

static int upd_set_prepare(struct upd *u, const struct ipt_state *st, const struct weft_acl_set_change *sc,
			   struct upd_set *us, char **err)
{
	const struct name_map *m = sc->set ? map_find(u->R.sets, u->R.n_sets, sc->set) : NULL;
	const struct ipt_set *s = m ? state_set(st, m->kern) : NULL;
	const struct weft_cidr *lists[2] = {sc->add, sc->del};
	size_t lens[2] = {sc->n_add, sc->n_del};
	struct weft_cidr *v[2] = {NULL, NULL};
	size_t nv[2];
	char a[WEFT_CIDR_STRLEN];

	if (!s) {
		*err = wasprintf("set change: no set %s in the program", sc->set ? sc->set : "(null)");
		return -EINVAL;
	}
	us->si = (size_t)(s - st->sets);
	for (int l = 0; l < 2; l++) {
		v[l] = wcalloc(lens[l] + 1, sizeof(*v[l]));
		nv[l] = 0;
		for (size_t k = 0; k < lens[l]; k++) {
			const struct weft_cidr *in = &lists[l][k];
			struct weft_cidr c = {.ip.family = s->family, .prefixlen = in->prefixlen};

			if (in->ip.family != s->family) {
				*err = wasprintf("set %s: %s member %s is not an %s address", sc->set, l ? "removed" : "added",
						 cidr_or_index(in, k, a, sizeof(a)), s->family == AF_INET ? "IPv4" : "IPv6");
				goto bad;
			}
			if (in->prefixlen > weft_ip_bits(&in->ip)) {
				*err = wasprintf("set %s: %s member %s has a bad prefix length", sc->set,
						 l ? "removed" : "added", cidr_or_index(in, k, a, sizeof(a)));
				goto bad;
			}
			if (in->prefixlen != weft_ip_bits(&in->ip)) {
				/* A prefix: an interval set's business (apply). */
				u->unsupported = true;
				continue;
			}
			memcpy(c.ip.bytes, in->ip.bytes, s->family == AF_INET ? 4 : 16);
			v[l][nv[l]++] = c;
		}
		qsort(v[l], nv[l], sizeof(*v[l]), cidr_cmp);
	}
	if (s->prefixes)
		u->unsupported = true;
	/* Deduplicated, and cut down to what changes. */
	us->add = v[0];
	us->del = v[1];
	for (size_t k = 0; k < nv[0]; k++) {
		if (cidr_in(v[1], nv[1], &v[0][k])) {
			*err = wasprintf("set %s: member %s both added and removed", sc->set,
					 weft_cidr_str(&v[0][k], a, sizeof(a)));
			return -EINVAL;
		}
		if ((us->n_add == 0 || cidr_cmp(&us->add[us->n_add - 1], &v[0][k]) != 0) &&
		    !cidr_in(s->elems, s->n, &v[0][k]))
			us->add[us->n_add++] = v[0][k];
	}
	for (size_t k = 0; k < nv[1]; k++)
		if ((us->n_del == 0 || cidr_cmp(&us->del[us->n_del - 1], &v[1][k]) != 0) &&
		    cidr_in(s->elems, s->n, &v[1][k]))
			us->del[us->n_del++] = v[1][k];
	/* Past the set's capacity: a bigger set comes with an apply. */
	if (s->n + us->n_add - us->n_del > s->maxelem)
		u->unsupported = true;
	return 0;
bad:
	free(v[0]);
	free(v[1]);
	return -EINVAL;
}

static struct upd_pset *upd_pset_new(struct upd *u, const char *name, const char *chain, int op)
{
	struct upd_pset *ps;

	if (u->n_psets == u->cap_psets) {
		u->cap_psets = u->cap_psets ? 2 * u->cap_psets : 8;
		u->psets = wrealloc(u->psets, u->cap_psets * sizeof(*u->psets));
	}
	ps = &u->psets[u->n_psets++];
	memset(ps, 0, sizeof(*ps));
	ps->name = wstrdup(name);
	ps->chain = wstrdup(chain);
	ps->op = op;
	return ps;
}

static int strp_cmp(const void *a, const void *b);

/* The port sets of program chain kern's new runs against the state's:
 * new ones created, changed ones changed, those it no longer has
 * destroyed. */
static int upd_psets_prepare(struct upd *u, const struct ipt_state *st, const struct runs *m, const char *kern,
			     char **err)
{
	_cleanup_free_ const char **names = wcalloc(m->c.n_rules + 1, sizeof(*names));
	size_t n = 0;

	for (size_t k = 0; k < m->c.n_rules; k++) {
		const struct pset_ref *ps = &m->ps[k];
		const struct ipt_set *old;
		struct upd_pset *up;

		if (!ps->name)
			continue;
		names[n++] = ps->name;
		old = state_set(st, ps->name);
		if (old && (!old->ports || !old->chain || !streq(old->chain, kern))) {
			*err = wasprintf("chain %s: port set %s is another's (apply the program instead)", kern, ps->name);
			return -EINVAL;
		}
		if (old && weft_acl_ports_eq(old->pr, old->npr, ps->pr, ps->npr))
			continue;
		up = upd_pset_new(u, ps->name, kern, old ? UP_CHANGE : UP_CREATE);
		up->pr = wmemdup(ps->pr, ps->npr * sizeof(*ps->pr));
		up->npr = ps->npr;
		if (old) {
			up->ndel = ports_minus(old->pr, old->npr, ps->pr, ps->npr, &up->del);
			up->nadd = ports_minus(ps->pr, ps->npr, old->pr, old->npr, &up->add);
		}
	}
	qsort(names, n, sizeof(*names), strp_cmp);
	for (size_t i = 0; i < st->n_sets; i++) {
		const struct ipt_set *s = &st->sets[i];

		if (s->ports && s->chain && streq(s->chain, kern) && !bsearch(&s->name, names, n, sizeof(*names), strp_cmp))
			upd_pset_new(u, s->name, kern, UP_DESTROY);
	}
	return 0;
}

/* The state after the update's port set changes. */
static void upd_commit_psets(const struct upd *u, struct ipt_state *st, struct weft_acl_stats *stats)
{
	_cleanup_free_ bool *gone = NULL;
	size_t w, n0 = st->n_sets;

	if (!u->n_psets)
		return;
	gone = wcalloc(n0 + 1, sizeof(*gone));
	for (size_t i = 0; i < u->n_psets; i++) { /* lookups first: the array changes below */
		const struct upd_pset *up = &u->psets[i];
		struct ipt_set *s = up->op == UP_CREATE ? NULL : (struct ipt_set *)state_set(st, up->name);

		if (!s)
			continue;
		if (up->op == UP_CHANGE) {
			free(s->pr);
			s->pr = wmemdup(up->pr, up->npr * sizeof(*up->pr));
			s->npr = up->npr;
			stats->elems_added += up->nadd;
			stats->elems_removed += up->ndel;
		} else if (!up->stays) {
			gone[s - st->sets] = true;
		}
	}
	w = 0;
	for (size_t i = 0; i < n0; i++) {
		if (gone[i]) {
			free(st->sets[i].name);
			free(st->sets[i].pr);
			free(st->sets[i].chain);
			continue;
		}
		st->sets[w++] = st->sets[i];
	}
	st->n_sets = w;
	st->sets = wrealloc(st->sets, (st->n_sets + u->n_psets + 1) * sizeof(*st->sets));
	for (size_t i = 0; i < u->n_psets; i++) {
		const struct upd_pset *up = &u->psets[i];

		if (up->op != UP_CREATE)
			continue;
		st->sets[st->n_sets++] = (struct ipt_set){.name = wstrdup(up->name),
							  .ports = true,
							  .pr = wmemdup(up->pr, up->npr * sizeof(*up->pr)),
							  .npr = up->npr,
							  .chain = wstrdup(up->chain)};
	}
	qsort(st->sets, st->n_sets, sizeof(*st->sets), set_cmp);
}

/* A program chain's new rules, cut into pieces as an apply would: the
 * pieces whose hash is unchanged stay as they are, the others are
 * rendered (a piece holds at most IPT_PIECE_MAX rules), and pieces the
 * new layout lacks go. The program chain's own entry comes first, its
 * pieces right after it. */
static int upd_chain_prepare(struct upd *u, const struct ipt_state *st, const struct weft_acl_chain *pc, char **err)
{
	const struct weft_acl_chain *c = pc;
	const struct name_map *m = c->name ? map_find(u->R.chains, u->R.n_chains, c->name) : NULL;
	const struct ipt_chain *old = m ? table_find(&st->tab[0], m->kern) : NULL;
	_cleanup_free_ uint64_t *rh = NULL;
	_cleanup_free_ char **names = NULL;
	struct layout L = {0};
	struct runs runs = {0};
	int r = 0;

	if (!old) {
		*err = wasprintf("chain change: no chain %s in the program", c->name ? c->name : "(null)");
		return -EINVAL;
	}
	if (upd_find(u, m->kern)) {
		*err = wasprintf("chain %s changed twice", c->name);
		return -EINVAL;
	}
	if (old->pkind != c->kind || old->ingress != c->ingress) {
		*err = wasprintf("chain %s: kind or direction changed (apply the program instead)", c->name);
		return -EINVAL;
	}
	runs_make(&runs, pc, m->kern);
	c = &runs.c;
	r = upd_psets_prepare(u, st, &runs, m->kern, err);
	if (r < 0) {
		runs_free(&runs);
		return r;
	}
	rh = rule_hashes(&u->R, &runs);
	layout_make(&L, m->kern, c, rh);
	u->R.ps = runs.ps;
	for (size_t k = 0; k < L.n && r == 0; k++) {
		int kind = k ? CH_CHUNK : CH_PROGRAM;
		const struct ipt_chain *o0 = table_find(&st->tab[0], L.k[k].name);
		struct upd_chain *uc;

		if (k && o0 && o0->kind == kind && o0->hash == L.k[k].hash)
			continue; /* an unchanged piece */
		uc = upd_chain_new(u, wstrdup(L.k[k].name), kind);
		uc->hash = L.k[k].hash;
		if (!k) {
			uc->n_chunks = L.n - 1;
			uc->chunks = wcalloc(L.n, sizeof(char *));
			for (size_t q = 1; q < L.n; q++)
				uc->chunks[q - 1] = wstrdup(L.k[q].name);
		}
		for (int fi = 0; fi < 2 && r == 0; fi++) {
			const struct ipt_chain *o = table_find(&st->tab[fi], L.k[k].name);
			struct weft_buf b = {0};

			uc->from[fi] = o ? o->text : NULL;
			if (o && o->kind == kind && o->hash == L.k[k].hash) {
				uc->to[fi] = wstrdup(o->text);
				continue;
			}
			r = render_piece(&u->R, &b, c, &L, k, fi ? AF_INET6 : AF_INET);
			uc->to[fi] = weft_buf_steal(&b);
		}
	}
	/* Pieces of the old layout the new one lacks. */
	names = wcalloc(L.n, sizeof(*names));
	for (size_t k = 1; k < L.n; k++)
		names[k - 1] = L.k[k].name;
	qsort(names, L.n - 1, sizeof(*names), strp_cmp);
	for (size_t q = 0; q < old->n_chunks && r == 0; q++) {
		if (!bsearch(&old->chunks[q], names, L.n - 1, sizeof(*names), strp_cmp)) {
			struct upd_chain *uc = upd_chain_new(u, wstrdup(old->chunks[q]), CH_CHUNK);

			for (int fi = 0; fi < 2; fi++) {
				const struct ipt_chain *o = table_find(&st->tab[fi], old->chunks[q]);

				uc->from[fi] = o ? o->text : NULL;
			}
		}
	}
	u->R.ps = NULL;
	layout_free(&L);
	runs_free(&runs);
	return r;
}

static int check_refs(const struct upd *u, const struct weft_acl_endpoint *e, char *const *v, size_t n,
		      const char *field, char **err)
{
	for (size_t i = 0; i < n; i++)
		if (!v[i] || !map_find(u->R.chains, u->R.n_chains, v[i])) {
			*err = wasprintf("endpoint %s on %s: %s names chain %s, which the program lacks",
					 e->name ? e->name : "?", e->ifname, field, v[i] ? v[i] : "(null)");
			return -EINVAL;
		}
	return 0;
}

static int upd_ep_prepare(struct upd *u, const struct ipt_state *st, const struct weft_acl_endpoint *e,
			  const struct weft_acl_change *c, char **err)
{
	_cleanup_free_ char *fw = NULL, *tw = NULL;
	const struct ipt_chain *old;
	int r;

	if (!e->ifname || !ifname_ok(e->ifname)) {
		*err = wasprintf("endpoint %s: bad interface name \"%s\"", e->name ? e->name : "?",
				 e->ifname ? e->ifname : "(null)");
		return -EINVAL;
	}
	for (size_t k = 0; k < e->n_addrs; k++)
		if (e->addrs[k].ip.family != AF_INET && e->addrs[k].ip.family != AF_INET6) {
			*err = wasprintf("endpoint %s on %s: address %zu has no family", e->name ? e->name : "?",
					 e->ifname, k + 1);
			return -EINVAL;
		}
	if ((r = check_refs(u, e, e->in_policies, e->n_in_policies, "in_policies", err)) < 0 ||
	    (r = check_refs(u, e, e->in_profiles, e->n_in_profiles, "in_profiles", err)) < 0 ||
	    (r = check_refs(u, e, e->out_policies, e->n_out_policies, "out_policies", err)) < 0 ||
	    (r = check_refs(u, e, e->out_profiles, e->n_out_profiles, "out_profiles", err)) < 0)
		return r;
	for (size_t k = 0; k < c->n_endpoints_removed; k++)
		if (c->endpoints_removed[k] && streq(c->endpoints_removed[k], e->ifname)) {
			*err = wasprintf("endpoint on %s both changed and removed", e->ifname);
			return -EINVAL;
		}
	fw = kname("weft-fw-", e->ifname, IPT_CHAIN_MAX);
	tw = kname("weft-tw-", e->ifname, IPT_CHAIN_MAX);
	if (upd_find(u, fw)) {
		*err = wasprintf("endpoint on %s changed twice", e->ifname);
		return -EINVAL;
	}
	old = table_find(&st->tab[0], fw);
	if (old && old->kind != CH_ENDPOINT) {
		*err = wasprintf("endpoint on %s: chain %s is not an endpoint's", e->ifname, fw);
		return -EINVAL;
	}
	if (!old) {
		u->added = wrealloc(u->added, (u->n_added + 1) * sizeof(*u->added));
		u->added[u->n_added++] = e->ifname;
	}
	for (int d = 0; d < 2; d++) {
		struct upd_chain *uc = upd_chain_new(u, wstrdup(d ? tw : fw), CH_ENDPOINT);

		uc->ifname = e->ifname;
		for (int fi = 0; fi < 2; fi++) {
			const struct ipt_chain *o = table_find(&st->tab[fi], uc->name);
			struct weft_buf b = {0};

			uc->from[fi] = o ? o->text : NULL;
			weft_buf_append(&b, "", 0);
			render_dir(&u->R, &b, uc->name, e, d == 0, fi ? AF_INET6 : AF_INET);
			uc->to[fi] = weft_buf_steal(&b);
		}
	}
	return 0;
}

static int upd_gone_prepare(struct upd *u, const struct ipt_state *st, const char *ifname, char **err)
{
	_cleanup_free_ char *fw = NULL, *tw = NULL;
	const struct ipt_chain *old;

	if (!ifname || !ifname_ok(ifname)) {
		*err = wasprintf("endpoint removal: bad interface name \"%s\"", ifname ? ifname : "(null)");
		return -EINVAL;
	}
	fw = kname("weft-fw-", ifname, IPT_CHAIN_MAX);
	tw = kname("weft-tw-", ifname, IPT_CHAIN_MAX);
	old = table_find(&st->tab[0], fw);
	if (!old || old->kind != CH_ENDPOINT) {
		*err = wasprintf("endpoint removal: no endpoint on %s", ifname);
		return -EINVAL;
	}
	if (upd_find(u, fw)) {
		*err = wasprintf("endpoint on %s removed twice", ifname);
		return -EINVAL;
	}
	u->gone = wrealloc(u->gone, (u->n_gone + 1) * sizeof(*u->gone));
	u->gone[u->n_gone++] = (char *)ifname;
	for (int d = 0; d < 2; d++) {
		struct upd_chain *uc = upd_chain_new(u, wstrdup(d ? tw : fw), CH_ENDPOINT);

		uc->ifname = ifname;
		for (int fi = 0; fi < 2; fi++) {
			const struct ipt_chain *o = table_find(&st->tab[fi], uc->name);

			uc->from[fi] = o ? o->text : NULL;
		}
	}
	return 0;
}

/* Check the whole change against the state and render what it changes.
 * Nothing changes but u (the caller frees it). */
static int upd_prepare(struct upd *u, const struct ipt_state *st, const struct weft_acl_change *c, char **err)
{
	int r;

	upd_maps(st, &u->R);
	u->R.errmsg = err;
	u->sets = wcalloc(c->n_sets + 1, sizeof(*u->sets));
	for (size_t i = 0; i < c->n_sets; i++) {
		r = upd_set_prepare(u, st, &c->sets[i], &u->sets[u->n_sets], err);
		u->n_sets++; /* (it may own arrays even on failure) */
		if (r < 0)
			return r;
		for (size_t k = 0; k + 1 < u->n_sets; k++)
			if (u->sets[k].si == u->sets[u->n_sets - 1].si) {
				*err = wasprintf("set %s changed twice", c->sets[i].set);
				return -EINVAL;
			}
	}
	for (size_t i = 0; i < c->n_chains; i++)
		if ((r = upd_chain_prepare(u, st, &c->chains[i], err)) < 0)
			return r;
	for (size_t i = 0; i < c->n_endpoints; i++)
		if ((r = upd_ep_prepare(u, st, &c->endpoints[i], c, err)) < 0)
			return r;
	for (size_t i = 0; i < c->n_endpoints_removed; i++)
		if ((r = upd_gone_prepare(u, st, c->endpoints_removed[i], err)) < 0)
			return r;
	if (u->unsupported) {
		*err = wstrdup("the change holds prefixes or outgrows a set: apply the program instead");
		return -EOPNOTSUPP;
	}
	/* Endpoints come or go: the dispatch chains change. */
	if (u->n_added || u->n_gone) {
		static const char *const disp[2][3] = {{"weft-from-wl", "-i", "weft-fw-"}, {"weft-to-wl", "-o", "weft-tw-"}};

		if (u->n_added)
			qsort(u->added, u->n_added, sizeof(*u->added), strp_cmp);
		for (int d = 0; d < 2; d++) {
			struct upd_chain *uc = upd_chain_new(u, wstrdup(disp[d][0]), CH_OTHER);

			for (int fi = 0; fi < 2; fi++) {
				const struct ipt_chain *o = table_find(&st->tab[fi], uc->name);

				uc->from[fi] = o ? o->text : NULL;
				uc->to[fi] = dispatch_text(uc->from[fi], disp[d][0], disp[d][1], disp[d][2], u->gone,
							   u->n_gone, u->added, u->n_added);
			}
		}
	}
	return 0;
}

/* Restore input for family fi: forward (the update) or back (undo). */
static char *upd_input(struct upd *u, int fi, bool back, struct weft_acl_stats *stats)
{
	struct edit E = {0};

	for (size_t i = 0; i < u->n_chains; i++) {
		struct upd_chain *uc = &u->chains[i];
		size_t added = 0, deleted = 0;
		bool ch = back ? chain_edit(&E, uc->name, uc->to[fi], uc->from[fi], &added, &deleted)
			       : chain_edit(&E, uc->name, uc->from[fi], uc->to[fi], &added, &deleted);

		if (!back && ch) {
			uc->changed = true;
			if ((uc->kind == CH_PROGRAM || uc->kind == CH_CHUNK) && stats) {
				stats->rules_added += added;
				stats->rules_deleted += deleted;
			}
		}
	}
	return edit_text(&E);
}

/* Members of s with add[] merged in and del[] taken out (both sorted;
 * add disjoint from s, del within it). */
static void set_merge(struct ipt_set *s, const struct weft_cidr *add, size_t na, const struct weft_cidr *del, size_t nd)
{
	struct weft_cidr *v;
	size_t i = 0, j = 0, k = 0, n = 0;

	if (!na && !nd)
		return;
	if (na + nd <= 16) {
		/* A few: in place (a memmove each, no copy of the set). */
		for (k = 0; k < nd; k++) {
			struct weft_cidr *at = bsearch(&del[k], s->elems, s->n, sizeof(*s->elems), cidr_cmp);

			if (!at)
				continue;
			memmove(at, at + 1, (size_t)(s->elems + s->n - at - 1) * sizeof(*at));
			s->n--;
		}
		s->elems = wrealloc(s->elems, (s->n + na + 1) * sizeof(*s->elems));
		for (j = 0; j < na; j++) {
			size_t lo = 0, hi = s->n;

			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;

				if (cidr_cmp(&s->elems[mid], &add[j]) < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			memmove(&s->elems[lo + 1], &s->elems[lo], (s->n - lo) * sizeof(*s->elems));
			s->elems[lo] = add[j];
			s->n++;
		}
		return;
	}
	v = wcalloc(s->n + na + 1, sizeof(*v));
	while (i < s->n || j < na) {
		if (i < s->n && k < nd && cidr_cmp(&s->elems[i], &del[k]) == 0) {
			i++, k++;
			continue;
		}
		if (j == na || (i < s->n && cidr_cmp(&s->elems[i], &add[j]) < 0))
			v[n++] = s->elems[i++];
		else
			v[n++] = add[j++];
	}
	free(s->elems);
	s->elems = v;
	s->n = n;
}

/* The kernel has the update: the state takes it over. */
static void upd_commit(struct upd *u, struct ipt_state *st, struct weft_acl_stats *stats)
{
	for (size_t i = 0; i < u->n_sets; i++) {
		struct upd_set *us = &u->sets[i];

		set_merge(&st->sets[us->si], us->add, us->n_add, us->del, us->n_del);
		stats->elems_added += us->n_add;
		stats->elems_removed += us->n_del;
	}
	for (size_t i = 0; i < u->n_chains; i++) {
		struct upd_chain *uc = &u->chains[i];

		if (uc->kind == CH_PROGRAM) {
			/* Replaced when it or one of its pieces (right after it) changed. */
			bool changed = uc->changed;

			for (size_t k = i + 1; k < u->n_chains && u->chains[k].kind == CH_CHUNK; k++)
				changed = changed || u->chains[k].changed;
			stats->chains_replaced += changed;
		}
		if (uc->kind == CH_ENDPOINT && startswith(uc->name, "weft-fw-")) {
			const struct upd_chain *tw = uc + 1; /* added right after it */

			if (!uc->to[0])
				stats->endpoints_removed++;
			else if (!uc->from[0])
				stats->endpoints_added++;
			else if (uc->changed || tw->changed)
				stats->endpoints_replaced++;
		}
		for (int fi = 0; fi < 2; fi++) {
			struct ipt_table *t = &st->tab[fi];
			struct ipt_chain *o = (struct ipt_chain *)table_find(t, uc->name);

			if (!uc->to[fi]) {
				table_erase(t, uc->name);
			} else if (o) {
				free(o->text);
				o->text = uc->to[fi];
				o->hash = uc->hash;
				if (uc->kind == CH_PROGRAM) {
					strv_free(o->chunks, o->n_chunks);
					o->n_chunks = uc->n_chunks;
					o->chunks = wcalloc(uc->n_chunks + 1, sizeof(char *));
					for (size_t k = 0; k < uc->n_chunks; k++)
						o->chunks[k] = wstrdup(uc->chunks[k]);
				}
			} else {
				struct ipt_chain nc = {.name = wstrdup(uc->name), .text = uc->to[fi], .kind = uc->kind,
						       .ifname = uc->ifname ? wstrdup(uc->ifname) : NULL, .hash = uc->hash};

				table_insert(t, &nc);
			}
			uc->to[fi] = NULL;
		}
	}
}

static int ipt_update(struct weft_acl_backend *b, const struct weft_acl_change *c, struct weft_acl_stats *stats,
		      char **errmsg)
{
	struct ipt_backend *ib = (struct ipt_backend *)b;
	struct upd u = {0};
	struct journal *j = NULL;
	size_t nj = 0;
	char *err = NULL, *text[2] = {NULL, NULL};
	bool done[2] = {false, false}, ipc_open = false;
	struct ips ipc;
	int64_t t0;
	int r;

	if (!ib->have_state) {
		if (errmsg)
			*errmsg = wstrdup("no program applied (or the last apply failed): apply the program");
		return -EOPNOTSUPP;
	}
	r = upd_prepare(&u, &ib->st, c, &err);
	if (r < 0)
		goto out;
	for (int fi = 0; fi < 2; fi++)
		text[fi] = upd_input(&u, fi, false, stats);

	t0 = weft_now_ns();
	/* 1. Members: removals, then additions (the apply's order). */
	j = wcalloc(2 * (u.n_sets + u.n_psets) + 1, sizeof(*j));
	for (size_t i = 0; i < u.n_sets && r == 0; i++) {
		const struct upd_set *us = &u.sets[i];
		const struct ipt_set *s = &ib->st.sets[us->si];

		if (!us->n_add && !us->n_del)
			continue;
		if (!ipc_open) {
			r = ips_open(&ipc, &err);
			if (r < 0)
				goto fail;
			ipc_open = true;
			ips_exist(&ipc, false);
		}
		if (us->n_del) {
			j[nj++] = (struct journal){.op = J_DELETED, .set = s->name, .family = s->family,
						   .elems = wmemdup(us->del, us->n_del * sizeof(*us->del)), .n = us->n_del};
			r = ips_elems(&ipc, IPSET_CMD_DEL, s->name, s->family, us->del, us->n_del, &err);
		}
		if (r == 0 && us->n_add) {
			j[nj++] = (struct journal){.op = J_ADDED, .set = s->name, .family = s->family,
						   .elems = wmemdup(us->add, us->n_add * sizeof(*us->add)), .n = us->n_add};
			r = ips_elems(&ipc, IPSET_CMD_ADD, s->name, s->family, us->add, us->n_add, &err);
		}
	}
	if (r < 0)
		goto fail;
	/* Port sets of runs: new ones filled and changed ones changed
	 * before the rules name them (ports go before others come). */
	for (size_t i = 0; i < u.n_psets && r == 0; i++) {
		const struct upd_pset *up = &u.psets[i];

		if (up->op == UP_DESTROY)
			continue;
		if (!ipc_open) {
			r = ips_open(&ipc, &err);
			if (r < 0)
				goto fail;
			ipc_open = true;
			ips_exist(&ipc, false);
		}
		if (up->op == UP_CREATE) {
			r = ips_create_ports(&ipc, up->name, &err);
			if (r < 0)
				break;
			j[nj++] = (struct journal){.op = J_CREATED, .set = up->name};
			r = ips_ports(&ipc, IPSET_CMD_ADD, up->name, up->pr, up->npr, &err);
			continue;
		}
		if (up->ndel) {
			j[nj++] = (struct journal){.op = J_DELETED, .set = up->name,
						   .pr = wmemdup(up->del, up->ndel * sizeof(*up->del)), .npr = up->ndel};
			r = ips_ports(&ipc, IPSET_CMD_DEL, up->name, up->del, up->ndel, &err);
		}
		if (r == 0 && up->nadd) {
			j[nj++] = (struct journal){.op = J_ADDED, .set = up->name,
						   .pr = wmemdup(up->add, up->nadd * sizeof(*up->add)), .npr = up->nadd};
			r = ips_ports(&ipc, IPSET_CMD_ADD, up->name, up->add, up->nadd, &err);
		}
	}
	if (r < 0)
		goto fail;

	/* 2. Rules: one restore transaction per family. */
	for (int fi = 0; fi < 2; fi++) {
		if (!text[fi])
			continue;
		r = restore(ib, fi, text[fi], &err);
		if (r < 0)
			goto fail;
		done[fi] = true;
	}
	/* 3. Port sets no rule names any more. One that cannot go stays in
	 * the state (the next update of its chain or apply tries again). */
	for (size_t i = 0; i < u.n_psets; i++) {
		char *ignored = NULL;

		if (u.psets[i].op != UP_DESTROY)
			continue;
		if (!ipc_open && ips_open(&ipc, NULL) == 0)
			ipc_open = true;
		if (!ipc_open || ips_destroy(&ipc, u.psets[i].name, &ignored) < 0) {
			log_warn("acl ipt: port set %s stays: %s", u.psets[i].name, ignored ? ignored : "?");
			u.psets[i].stays = true;
		}
		free(ignored);
	}
	stats->apply_ns = weft_now_ns() - t0;
	upd_commit(&u, &ib->st, stats);
	upd_commit_psets(&u, &ib->st, stats);
	r = 0;
	goto out;

fail:
	/* Put back what this update changed; the next apply is a full one. */
	for (int fi = 0; fi < 2; fi++) {
		if (done[fi]) {
			_cleanup_free_ char *back = upd_input(&u, fi, true, NULL);
			char *ignored = NULL;

			if (back && restore(ib, fi, back, &ignored) < 0)
				log_debug("acl ipt: update rollback failed: %s", ignored);
			free(ignored);
		}
	}
	if (nj) {
		if (!ipc_open && ips_open(&ipc, NULL) == 0)
			ipc_open = true;
		if (ipc_open)
			journal_undo(&ipc, j, nj);
	}
	ib->have_state = false;
	state_clear(&ib->st);
out:
	if (ipc_open)
		ips_close(&ipc);
	journal_free(j, nj);
	free(text[0]);
	free(text[1]);
	upd_free(&u);
	if (r < 0) {
		log_debug("acl ipt: update failed: %s", err ? err : "");
		if (errmsg)
			*errmsg = err;
		else
			free(err);
		return r;
	}
	free(err);
	return 0;
}

static int ipt_remove(struct weft_acl_backend *b, char **errmsg)
{
	struct ipt_backend *ib = (struct ipt_backend *)b;
	struct ipt_table empty = {0};
	char *err = NULL;
	char **names = NULL;
	size_t n = 0;
	struct ips c;
	int r = 0, q;

	ib->have_state = false;
	state_clear(&ib->st);
	for (int fi = 0; fi < 2; fi++) {
		struct ipt_table t = {0};
		_cleanup_free_ char *text = NULL;

		q = save(ib, fi, &t, err ? NULL : &err);
		if (q == 0) {
			text = table_diff(&t, &empty);
			if (text)
				q = restore(ib, fi, text, err ? NULL : &err);
		}
		table_clear(&t);
		if (q < 0 && r == 0)
			r = q;
	}
	q = ips_open(&c, err ? NULL : &err);
	if (q == 0) {
		q = ips_list_weft(&c, &names, &n, err ? NULL : &err);
		for (size_t i = 0; q == 0 && i < n; i++)
			q = ips_destroy(&c, names[i], err ? NULL : &err);
		strv_free(names, n);
		ips_close(&c);
	}
	if (q < 0 && r == 0)
		r = q;
	if (r < 0 && errmsg)
		*errmsg = err;
	else
		free(err);
	return r;
}

static void ipt_free(struct weft_acl_backend *b)
{
	struct ipt_backend *ib = (struct ipt_backend *)b;

	state_clear(&ib->st);
	for (int fi = 0; fi < 2; fi++) {
		free(ib->restore[fi]);
		free(ib->save[fi]);
	}
	strv_free(ib->text_off, ib->n_text_off);
	free(ib->text_diff);
	free(ib);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; (s = strchr(s, '\n')); s++)
		n++;
	return n;
}

/* A rule line with each protocol (-p X, ! -p X) as its number: weft
 * writes the numbers of protocols other than the common ones, and
 * iptables-save names them from its own table or /etc/protocols, or not,
 * depending on the version and the system. */
static void norm_proto(const char *l, size_t n, struct weft_buf *out)
{
	static const struct {
		const char *name;
		int num;
	} names[] = {{"icmp", 1},     {"tcp", 6},   {"udp", 17},       {"dccp", 33},    {"esp", 50},
		     {"ah", 51},      {"ipv6-icmp", 58}, {"icmpv6", 58}, {"sctp", 132},   {"mh", 135},
		     {"ipv6-mh", 135}, {"mobility-header", 135}, {"udplite", 136}};
	size_t i = 0;

	out->len = 0;
	while (i < n) {
		if (i + 4 <= n && memcmp(l + i, " -p ", 4) == 0) {
			size_t s = i + 4, e = s;
			char name[64];
			int num = -1;

			while (e < n && l[e] != ' ')
				e++;
			if (e - s < sizeof(name) && strspn(l + s, "0123456789") < e - s) {
				memcpy(name, l + s, e - s);
				name[e - s] = 0;
				for (size_t k = 0; k < ARRAY_SIZE(names) && num < 0; k++)
					if (streq(names[k].name, name))
						num = names[k].num;
				if (num < 0) {
					struct protoent pe, *res = NULL;
					char tmp[1024];

					if (getprotobyname_r(name, &pe, tmp, sizeof(tmp), &res) == 0 && res)
						num = res->p_proto;
				}
			}
			if (num >= 0) {
				weft_buf_printf(out, " -p %d", num);
				i = e;
				continue;
			}
		}
		weft_buf_append(out, l + i, 1);
		i++;
	}
	weft_buf_append(out, "", 0);
}

/* Two rule lines alike (as norm_proto() has them)? */
static bool save_line_eq(const char *a, size_t la, const char *b, size_t lb)
{
	struct weft_buf x = {0}, y = {0};
	bool eq;

	if (la == lb && memcmp(a, b, la) == 0)
		return true;
	norm_proto(a, la, &x);
	norm_proto(b, lb, &y);
	eq = x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
	weft_buf_free(&x);
	weft_buf_free(&y);
	return eq;
}

/* What names a chain's text in text_off: family, name, a hash of the
 * text weft wrote (a chain written otherwise is compared again). */
static char *text_key(int fi, const struct ipt_chain *k)
{
	return wasprintf("%c:%s:%016" PRIx64, '4' + 2 * fi, k->name,
			 weft_fnv1a(k->text, strlen(k->text), 0xcbf29ce484222325ULL));
}

/* Is chain k's text compare (family fi) turned off? */
static bool text_off(const struct ipt_backend *ib, int fi, const struct ipt_chain *k)
{
	_cleanup_free_ char *key = NULL;

	if (ib->n_text_off >= TEXT_OFF_MAX)
		return true;
	if (!ib->n_text_off)
		return false;
	key = text_key(fi, k);
	for (size_t i = 0; i < ib->n_text_off; i++)
		if (streq(ib->text_off[i], key))
			return true;
	return false;
}

/* Turn the text compare of the chain key names off, keeping only the
 * entries that still name a chain of ours as weft writes it now. */
static void text_off_add(struct ipt_backend *ib, char *key)
{
	size_t m = 0;

	for (size_t i = 0; i < ib->n_text_off; i++) {
		const char *e = ib->text_off[i];
		_cleanup_free_ char *name = wstrndup(e + 2, strlen(e + 2) - 17);
		const struct ipt_chain *k = table_find(&ib->st.tab[e[0] == '6'], name);
		_cleanup_free_ char *now = k ? text_key(e[0] == '6', k) : NULL;

		if (now && streq(now, e))
			ib->text_off[m++] = ib->text_off[i];
		else
			free(ib->text_off[i]);
	}
	ib->n_text_off = m;
	ib->text_off = wrealloc(ib->text_off, (m + 1) * sizeof(char *));
	ib->text_off[ib->n_text_off++] = key;
	if (ib->n_text_off == TEXT_OFF_MAX)
		log_warn("acl ipt: %d chains' rules print otherwise than weft writes them: no rule text is compared "
			 "from now on",
			 TEXT_OFF_MAX);
}

/* Has every chain of ours (family fi) in t the rules we left in it? 0
 * yes; 1 a chain is missing or has another number of rules; 2 a rule's
 * text differs from what we wrote (weft writes rules as iptables-save
 * prints them; chains with text_off() not compared), *diff its chain. */
static int chains_as_left(const struct ipt_backend *ib, int fi, const struct ipt_table *t,
			  const struct ipt_chain **diff)
{
	const struct ipt_table *ours = &ib->st.tab[fi];
	const char *tool = ib->save[fi];
	int r = 0;

	for (size_t i = 0; i < ours->n; i++) {
		const struct ipt_chain *k = table_find(t, ours->chains[i].name);
		size_t want = count_lines(ours->chains[i].text);

		if (!k || count_lines(k->text) != want) {
			log_info("acl ipt: %s: chain %s has %zu rules, weft left %zu", tool, ours->chains[i].name,
				 k ? count_lines(k->text) : 0, want);
			return 1;
		}
		if (r == 0 && !streq(k->text, ours->chains[i].text) && !text_off(ib, fi, &ours->chains[i])) {
			const char *a = ours->chains[i].text, *b = k->text;
			size_t la, lb;

			for (; *a && *b; a += la + (a[la] ? 1 : 0), b += lb + (b[lb] ? 1 : 0)) {
				la = strcspn(a, "\n");
				lb = strcspn(b, "\n");
				if (!save_line_eq(a, la, b, lb)) {
					log_info("acl ipt: %s: chain %s: a rule is \"%.*s\", weft left \"%.*s\"", tool,
						 ours->chains[i].name, (int)(lb < 300 ? lb : 300), b,
						 (int)(la < 300 ? la : 300), a);
					r = 2;
					*diff = &ours->chains[i];
					break;
				}
			}
		}
	}
	return r;
}

/* The members of our ipsets, as a count and the sum and xor of a mix of
 * each (a member added, deleted or swapped for another changes them). */
struct mcensus {
	uint64_t n, sum, x;
};

static void mcensus_fold(struct mcensus *c, uint64_t m)
{
	m = (m ^ (m >> 30)) * 0xbf58476d1ce4e5b9ULL;
	m = (m ^ (m >> 27)) * 0x94d049bb133111ebULL;
	m ^= m >> 31;
	c->n++;
	c->sum += m;
	c->x ^= m;
}

static uint64_t member_mix(const struct weft_cidr *e)
{
	uint8_t v[18] = {(uint8_t)e->ip.family, (uint8_t)e->prefixlen};

	memcpy(v + 2, e->ip.bytes, e->ip.family == AF_INET ? 4 : 16);
	return weft_fnv1a(v, e->ip.family == AF_INET ? 6 : 18, 0xcbf29ce484222325ULL);
}

static uint64_t port_mix(unsigned port)
{
	return weft_fnv1a(&port, sizeof(port), 0x84222325cbf29ce4ULL);
}

/* What set s should hold: its members (a port set's ranges port by
 * port, as the kernel's bitmap lists them). */
static void set_census_want(const struct ipt_set *s, struct mcensus *c)
{
	*c = (struct mcensus){0};
	if (s->ports) {
		for (size_t i = 0; i < s->npr; i++)
			for (unsigned p = s->pr[i].lo; p <= s->pr[i].hi; p++)
				mcensus_fold(c, port_mix(p));
		return;
	}
	for (size_t i = 0; i < s->n; i++)
		mcensus_fold(c, member_mix(&s->elems[i]));
}

/* What set s holds: `ipset save` output of it ("add NAME MEMBER"
 * lines). A member with options (nomatch, a timeout...) or one that does
 * not parse is never one of ours: it counts as a member of its own. */
static void set_census_got(const struct ipt_set *s, const char *out, struct mcensus *c)
{
	*c = (struct mcensus){0};
	for (const char *l = out; *l;) {
		size_t len = strcspn(l, "\n");
		char line[128], *f[4], *save = NULL;
		int nf = 0;

		if (len > 4 && len < sizeof(line) && strncmp(l, "add ", 4) == 0) {
			memcpy(line, l, len);
			line[len] = 0;
			for (char *t = strtok_r(line, " ", &save); t && nf < 4; t = strtok_r(NULL, " ", &save))
				f[nf++] = t;
			if (nf != 3) {
				mcensus_fold(c, 1);
			} else if (s->ports) {
				char *end;
				unsigned long p = strtoul(f[2], &end, 10);

				mcensus_fold(c, *end || p > 65535 ? 1 : port_mix((unsigned)p));
			} else {
				struct weft_cidr e;

				mcensus_fold(c, weft_cidr_parse_host(f[2], &e) < 0 ? 1 : member_mix(&e));
			}
		} else if (len > 4 && strncmp(l, "add ", 4) == 0) {
			mcensus_fold(c, 1);
		}
		l += len + (l[len] ? 1 : 0);
	}
}

/* Have our ipsets the members we left in them? 0, 1 when one differs or
 * is gone, or a negative errno. ipsets have no generation: every check
 * lists them all. Sets found in the kernel whose content weft does not
 * know (it replaces them at the next apply) are not compared. */
static int sets_as_left(const struct ipt_state *st)
{
	struct ips c;
	int r = 0;

	if (ips_open(&c, NULL) < 0)
		return -ENOMEM;
	ipset_session_output(c.s, IPSET_LIST_SAVE);
	for (size_t i = 0; i < st->n_sets && r <= 0; i++) {
		const struct ipt_set *s = &st->sets[i];
		struct mcensus want, got;

		if (s->unknown)
			continue;
		set_census_want(s, &want);
		weft_buf_free(&c.out);
		weft_buf_append(&c.out, "", 0);
		ipset_session_data_set(c.s, IPSET_SETNAME, s->name);
		if (ipset_cmd(c.s, IPSET_CMD_LIST, 0) < 0) {
			const char *m = ipset_session_report_msg(c.s);

			if (m && strstr(m, "does not exist")) {
				log_info("acl ipt: ipset %s is gone", s->name);
				r = 1;
			} else {
				_cleanup_free_ char *err = NULL;
				int e = ips_fail(&c, "list", s->name, &err);

				log_warn("acl ipt: drift check: %s", err);
				if (r == 0)
					r = e; /* the first error, once the other sets are checked */
			}
			continue;
		}
		set_census_got(s, c.out.data, &got);
		if (got.n != want.n || got.sum != want.sum || got.x != want.x) {
			log_info("acl ipt: ipset %s has other members than weft left there (%" PRIu64 ", %" PRIu64
				 " left)",
				 s->name, got.n, want.n);
			r = 1;
		}
	}
	ips_close(&c);
	return r;
}

/* Are our hooks and chains still in the kernel as we left them? Both
 * families' filter tables must jump from FORWARD, INPUT and OUTPUT to
 * weft's chains (someone running `iptables -F` or a firewall reload
 * removes them), and each chain of ours must be there with as many
 * rules as we left in it (a rule added or deleted by hand). When not,
 * the next apply reloads everything; so does a rule whose text differs
 * from what we wrote (replaced in place: weft writes rules as
 * iptables-save prints them; a chain whose text differs again right
 * after the reload it caused has its text compare turned off) or an
 * ipset of ours with other members than we left (sets_as_left()). */
static int ipt_check(struct weft_acl_backend *b)
{
	struct ipt_backend *ib = (struct ipt_backend *)b;
	uint32_t gen = 0;
	bool have_gen = false;
	int r, set_err;
	_cleanup_free_ char *prev = NULL;

	if (!ib->have_state)
		return 0;
	/* The chain whose text differed at the last check, if that check
	 * found nothing else (any other reload in between clears it). */
	prev = ib->text_diff;
	ib->text_diff = NULL;
	/* iptables-nft: nothing committed by anyone since the last good
	 * check (our restores included) means nothing to compare. Legacy
	 * iptables has no such generation. */
	if (ib->nft_tools < 0) {
		ib->nft_tools = 1; /* both families' tools must say nf_tables */
		for (int fi = 0; fi < 2; fi++) {
			char *argv[] = {ib->save[fi], (char *)"--version", NULL};
			_cleanup_free_ char *out = NULL, *err = NULL;

			if (run(argv, NULL, 0, &out, &err) != 0 || !out || !strstr(out, "nf_tables"))
				ib->nft_tools = 0;
		}
	}
	/* ipsets first: they have no generation to skip them by. A set
	 * that cannot be listed does not keep the rules from being checked:
	 * its error is returned when nothing else is found. */
	set_err = sets_as_left(&ib->st);
	if (set_err > 0) {
		ib->have_state = false;
		state_clear(&ib->st);
		return -ENOENT;
	}
	if (ib->nft_tools == 1) {
		have_gen = weft_acl_nft_gen(&gen) == 0;
		if (have_gen && ib->gen_ok && gen == ib->gen)
			return set_err;
	}
	for (int fi = 0; fi < 2; fi++) {
		char *argv[] = {ib->save[fi], (char *)"-t", (char *)"filter", NULL};
		_cleanup_free_ char *out = NULL, *err = NULL;

		r = run(argv, NULL, 0, &out, &err);
		if (r != 0)
			return r < 0 ? r : -EIO;
		for (size_t i = 0; i < ARRAY_SIZE(our_hooks); i++) {
			const char *h = our_hooks[i], *at = out;
			size_t n = strlen(h);
			bool found = false;

			while (!found && (at = strstr(at, h))) {
				found = (at == out || at[-1] == '\n') && (at[n] == '\n' || at[n] == 0);
				at += n;
			}
			if (!found) {
				log_info("acl ipt: %s: \"%s\" is gone", ib->save[fi], h);
				ib->have_state = false;
				state_clear(&ib->st);
				return -ENOENT;
			}
		}
		{
			struct ipt_table t = {0};
			const struct ipt_chain *diff = NULL;
			_cleanup_free_ char *key = NULL;
			int d;

			parse_save(out, &t);
			for (;;) {
				d = chains_as_left(ib, fi, &t, &diff);
				if (d != 2)
					break;
				free(key);
				key = text_key(fi, diff);
				if (!prev || !streq(prev, key))
					break;
				/* The same chain as weft writes it right after the
				 * reload its text caused: these tools print one of its
				 * rules otherwise than weft writes it. The chains after
				 * it are compared now. */
				log_warn("acl ipt: %s prints a rule of chain %s differently from how weft writes it, even "
					 "right after a reload: comparing its rule count only from now on (while weft "
					 "writes it so)",
					 ib->save[fi], diff->name);
				text_off_add(ib, key);
				key = NULL;
				free(prev);
				prev = NULL;
			}
			table_clear(&t);
			if (d) {
				free(ib->text_diff);
				ib->text_diff = key;
				key = NULL;
				ib->have_state = false;
				state_clear(&ib->st);
				return -ENOENT;
			}
		}
	}
	ib->gen = gen;
	ib->gen_ok = have_gen;
	free(ib->text_diff);
	ib->text_diff = NULL;
	return set_err;
}

static const struct weft_acl_backend_ops ipt_ops = {
	.name = "ipt",
	.apply = ipt_apply,
	.update = ipt_update,
	.remove = ipt_remove,
	.check = ipt_check,
	.free = ipt_free,
};

/* An executable: name with a '/' as is, else searched in PATH and the
 * sbin directories (a daemon's PATH may lack them). NULL if none. */
static char *find_tool(const char *name)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *dirs = wasprintf("%s:/usr/local/sbin:/usr/sbin:/sbin", path ? path : "");
	char *save_ptr = NULL;

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? wstrdup(name) : NULL;
	for (char *d = strtok_r(dirs, ":", &save_ptr); d; d = strtok_r(NULL, ":", &save_ptr)) {
		char *f = wasprintf("%s/%s", d, name);

		if (access(f, X_OK) == 0)
			return f;
		free(f);
	}
	return NULL;
}

int weft_acl_ipt_open(const char *iptables, struct weft_acl_backend **out, char **errmsg)
{
	struct ipt_backend *ib;
	const char *base, *v4 = iptables ? iptables : "iptables";
	_cleanup_free_ char *v6 = NULL;

	base = strrchr(v4, '/');
	base = base ? base + 1 : v4;
	if (!startswith(base, "iptables")) {
		if (errmsg)
			*errmsg = wasprintf("\"%s\" is not an iptables binary name (iptables, iptables-nft, "
					    "iptables-legacy or a path to one)", v4);
		return -EINVAL;
	}
	/* ip6tables: the same name with "iptables" in the base name changed. */
	v6 = wasprintf("%.*sip6%s", (int)(base - v4), v4, base + 2);
	ib = wcalloc(1, sizeof(*ib));
	ib->base.ops = &ipt_ops;
	ib->nft_tools = -1;
	for (int fi = 0; fi < 2; fi++) {
		const char *tool = fi ? v6 : v4;
		_cleanup_free_ char *rn = wasprintf("%s-restore", tool), *sn = wasprintf("%s-save", tool);

		ib->restore[fi] = find_tool(rn);
		ib->save[fi] = find_tool(sn);
		if (!ib->restore[fi] || !ib->save[fi]) {
			if (errmsg)
				*errmsg = wasprintf("%s not found (install the iptables package)",
						    !ib->restore[fi] ? rn : sn);
			ipt_free(&ib->base);
			return -ENOENT;
		}
	}
	ipset_load_types();
	*out = &ib->base;
	return 0;
}
