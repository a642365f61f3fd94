/* render.c - the BIRD 2 config of one node, from a snapshot of the store.
 *
 * The renderer first reduces the resources to a small plan (this node, the
 * sessions it should have, its blocks, the pools) and then prints the plan.
 * Every list in the plan is sorted by a key taken from the data itself, so
 * the text depends only on the snapshot's content: weftd compares the text
 * with what BIRD already runs and skips `configure` when it is unchanged.
 * docs/bgp.md describes the output.
 */
#include "bgpconf/bgpconf.h"

#include "felix/dataplane.h"
#include "ipam/ipam.h"
#include "lib/json.h"
#include "lib/log.h"

#include <arpa/inet.h>

/* The fixed names of the non-BGP protocols, and what the filters call
 * them. */
#define PROTO_BLOCKS "weft_blocks"
#define PROTO_KERNEL "weft_kernel"

/* The preference of this node's endpoint /32s learned from the kernel:
 * above BGP's (100), so that a peer's route for the same address never
 * wins, below direct routes' (240). */
#define WEFT_BGP_ENDPOINT_PREF 200

/* How long a BIRD recovering from a crash (-R) waits for its peers before it
 * synchronises the kernel table anyway. */
#define WEFT_BGP_GR_WAIT_S 20

struct bnode {
	const char *name;
	struct weft_cidr addr; /* the node's IPv4 address and its subnet */
	bool has_v4;
	int64_t as; /* 0: the BGPConfig's */
	bool rr;
	struct weft_ip cluster_id;
};

struct session {
	enum weft_bgp_peer_type type;
	struct weft_ip ip;
	int64_t as;
	int port; /* 0: BIRD's default (179) */
	bool passive;
	bool rr_client;
	bool multihop;
	const char *password;
	char *what; /* a comment: which resource asked for the session */
};

struct plan {
	const struct bnode *self;
	int64_t as;         /* this node's AS */
	int64_t cluster_as; /* the BGPConfig's: nodes without their own AS */
	int listen_port;
	bool mesh;
	const char *log_severity;
	struct weft_cidr *pools;
	size_t npools;
	struct weft_cidr *blocks;
	size_t nblocks;
	struct session *sessions;
	size_t nsessions;
	char **notes; /* "# ..." lines: what was skipped and why */
	size_t nnotes;
};

static void plan_clear(struct plan *p)
{
	free(p->pools);
	free(p->blocks);
	for (size_t i = 0; i < p->nsessions; i++)
		free(p->sessions[i].what);
	free(p->sessions);
	for (size_t i = 0; i < p->nnotes; i++)
		free(p->notes[i]);
	free(p->notes);
}

static void PRINTF_LIKE(2, 3) plan_note(struct plan *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	p->notes = wrealloc(p->notes, (p->nnotes + 1) * sizeof(*p->notes));
	p->notes[p->nnotes++] = wvasprintf(fmt, ap);
	va_end(ap);
}

static const cJSON *spec_of(const struct weft_resource *r)
{
	return cJSON_GetObjectItemCaseSensitive(r->doc, "spec");
}

static const char *str_field(const cJSON *obj, const char *key)
{
	const char *s = NULL;

	if (!obj || weft_json_get_string(obj, key, &s) < 0)
		return NULL;
	return s;
}

static int64_t int_field(const cJSON *obj, const char *key, int64_t dflt)
{
	int64_t v;

	if (!obj || weft_json_get_int64(obj, key, &v) < 0)
		return dflt;
	return v;
}

static bool bool_field(const cJSON *obj, const char *key, bool dflt)
{
	bool v;

	if (!obj || weft_json_get_bool(obj, key, &v) < 0)
		return dflt;
	return v;
}

static void node_from(const struct weft_resource *r, struct bnode *n)
{
	const cJSON *bgp = cJSON_GetObjectItemCaseSensitive(spec_of(r), "bgp");
	const char *s;

	*n = (struct bnode){.name = r->name};
	if (!cJSON_IsObject(bgp))
		return;
	s = str_field(bgp, "ipv4Address");
	/* The address keeps its host bits: it is the node's address and, by
	 * its prefix length, its subnet. A bare address is a /32. */
	if (s && (weft_cidr_parse(s, false, &n->addr) == 0 || weft_cidr_parse_host(s, &n->addr) == 0) &&
	    n->addr.ip.family == AF_INET)
		n->has_v4 = true;
	n->as = int_field(bgp, "asNumber", 0);
	s = str_field(bgp, "routeReflectorClusterID");
	if (s && weft_ip_parse(s, &n->cluster_id) == 0 && n->cluster_id.family == AF_INET)
		n->rr = true;
}

static int cidr_cmp(const void *a, const void *b)
{
	const struct weft_cidr *x = a, *y = b;
	int c = weft_ip_cmp(&x->ip, &y->ip);

	if (c)
		return c;
	return (x->prefixlen > y->prefixlen) - (x->prefixlen < y->prefixlen);
}

static int session_cmp(const void *a, const void *b)
{
	const struct session *x = a, *y = b;
	int c = weft_ip_cmp(&x->ip, &y->ip);

	if (c)
		return c;
	return ((int)x->type > (int)y->type) - ((int)x->type < (int)y->type);
}

static int res_cmp(const void *a, const void *b)
{
	const struct weft_resource *const *x = a, *const *y = b;

	if ((*x)->kind != (*y)->kind)
		return (*x)->kind < (*y)->kind ? -1 : 1;
	return strcmp((*x)->name, (*y)->name);
}

/* Is the peer on the node's own subnet? Then BGP can use the direct
 * (one-hop) mode; otherwise eBGP needs `multihop` (iBGP is multihop in
 * BIRD by default, saying it does no harm). */
static bool on_subnet(const struct bnode *self, const struct weft_ip *ip)
{
	struct weft_cidr net = self->addr;

	weft_cidr_mask(&net);
	return weft_cidr_contains(&net, ip);
}

static bool password_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p == '"' || *p == '\\' || *p < 0x20 || *p == 0x7f)
			return false;
	return *s != 0;
}

/* Add a session unless one with the same peer address exists (the first
 * asker wins: nodes, then per-node peers, then global peers). */
static void add_session(struct plan *p, struct session *s)
{
	char ips[WEFT_IP_STRLEN];

	for (size_t i = 0; i < p->nsessions; i++)
		if (weft_ip_eq(&p->sessions[i].ip, &s->ip)) {
			plan_note(p, "%s skipped: %s already has a session (%s)", s->what,
				  weft_ip_str(&s->ip, ips, sizeof(ips)), p->sessions[i].what);
			free(s->what);
			return;
		}
	if (weft_ip_eq(&s->ip, &p->self->addr.ip)) {
		plan_note(p, "%s skipped: %s is this node's own address", s->what,
			  weft_ip_str(&s->ip, ips, sizeof(ips)));
		free(s->what);
		return;
	}
	p->sessions = wrealloc(p->sessions, (p->nsessions + 1) * sizeof(*p->sessions));
	p->sessions[p->nsessions++] = *s;
}

static void plan_node_sessions(struct plan *p, const struct bnode *nodes, size_t nn)
{
	const struct bnode *self = p->self;

	for (size_t i = 0; i < nn; i++) {
		const struct bnode *o = &nodes[i];
		enum weft_bgp_peer_type t;

		if (o == self)
			continue;
		if (!o->has_v4) {
			plan_note(p, "Node %s skipped: no spec.bgp.ipv4Address", o->name);
			continue;
		}
		if (p->mesh)
			t = WEFT_BGP_PEER_MESH;
		else if (o->rr)
			t = WEFT_BGP_PEER_REFLECTOR; /* client to reflector, or reflector to reflector */
		else if (self->rr)
			t = WEFT_BGP_PEER_CLIENT;
		else
			continue; /* two clients: no session, the reflectors carry the routes */
		struct session s = {
			.type = t,
			.ip = o->addr.ip,
			.as = o->as ? o->as : p->cluster_as,
			.port = p->listen_port == 179 ? 0 : p->listen_port,
			/* Only one side of each pair connects: the node with the
			 * lower address waits, the higher one connects. Both
			 * trying at once would collide and cost a round of
			 * connection-collision resolution on every start. */
			.passive = weft_ip_cmp(&self->addr.ip, &o->addr.ip) < 0,
			.multihop = !on_subnet(self, &o->addr.ip),
			.what = wasprintf("Node %s", o->name),
		};
		if (t == WEFT_BGP_PEER_CLIENT) {
			if (s.as == p->as)
				s.rr_client = true;
			else
				plan_note(p, "Node %s is in AS %lld, this reflector in AS %lld: a plain eBGP session, "
					  "not a route reflector client", o->name, (long long)s.as, (long long)p->as);
		}
		add_session(p, &s);
	}
}

/* Per-node peers first (they win over a global peer with the same
 * address), each group in name order. */
static void plan_peer_sessions(struct plan *p, const struct weft_resource **rs, size_t nrs, bool per_node)
{
	char ips[WEFT_IP_STRLEN];

	for (size_t i = 0; i < nrs; i++) {
		const struct weft_resource *r = rs[i];
		const cJSON *spec = spec_of(r);
		const char *node = str_field(spec, "node"), *sel = str_field(spec, "nodeSelector");
		const char *ipstr = str_field(spec, "peerIP"), *pw = str_field(spec, "password");
		bool global = !node && (!sel || streq(sel, "all()"));
		struct weft_ip ip;

		if (r->kind != WEFT_KIND_BGPPEER)
			continue;
		if (per_node ? !(node && streq(node, p->self->name)) : !global) {
			if (!per_node && !node && !global)
				plan_note(p, "BGPPeer %s skipped: nodeSelector \"%s\" is not supported yet (only all())",
					  r->name, sel);
			continue;
		}
		if (!ipstr || weft_ip_parse(ipstr, &ip) < 0) {
			plan_note(p, "BGPPeer %s skipped: no usable spec.peerIP", r->name);
			continue;
		}
		if (ip.family != AF_INET) {
			plan_note(p, "BGPPeer %s skipped: IPv6 peer %s (IPv6 is not rendered yet)", r->name,
				  weft_ip_str(&ip, ips, sizeof(ips)));
			continue;
		}
		if (pw && !password_ok(pw)) {
			plan_note(p, "BGPPeer %s skipped: the password holds a character BIRD cannot take", r->name);
			continue;
		}
		struct session s = {
			.type = per_node ? WEFT_BGP_PEER_NODE : WEFT_BGP_PEER_GLOBAL,
			.ip = ip,
			.as = int_field(spec, "asNumber", p->as),
			.multihop = !on_subnet(p->self, &ip),
			.password = pw,
			.what = wasprintf("BGPPeer %s", r->name),
		};
		add_session(p, &s);
	}
}

static int plan_build(const struct weft_bgp_snapshot *snap, const char *node, struct plan *p, struct bnode **nodes_out,
		      char **err)
{
	_cleanup_free_ const struct weft_resource **rs = NULL;
	struct bnode *nodes = NULL;
	const struct weft_resource *cfg = NULL;
	size_t nrs = 0, nn = 0;

	/* Sort the resources by kind and name: the order of the snapshot must
	 * not show in the output. */
	rs = wcalloc(snap->nres + 1, sizeof(*rs));
	for (size_t i = 0; i < snap->nres; i++)
		rs[nrs++] = &snap->res[i];
	qsort(rs, nrs, sizeof(*rs), res_cmp);

	nodes = wcalloc(nrs + 1, sizeof(*nodes));
	for (size_t i = 0; i < nrs; i++) {
		const struct weft_resource *r = rs[i];

		if (r->kind == WEFT_KIND_NODE) {
			node_from(r, &nodes[nn]);
			if (streq(r->name, node))
				p->self = &nodes[nn];
			nn++;
		} else if (r->kind == WEFT_KIND_BGPCONFIG) {
			/* One BGPConfig is expected, by convention "default";
			 * with several, "default" wins, else the first by name. */
			if (!cfg || streq(r->name, "default"))
				if (!cfg || !streq(cfg->name, "default"))
					cfg = r;
		} else if (r->kind == WEFT_KIND_IPPOOL) {
			struct weft_cidr c;
			const char *s = str_field(spec_of(r), "cidr");

			if (!s || weft_cidr_parse(s, true, &c) < 0)
				continue;
			if (c.ip.family != AF_INET) {
				plan_note(p, "IPPool %s skipped: IPv6 (not rendered yet)", r->name);
				continue;
			}
			p->pools = wrealloc(p->pools, (p->npools + 1) * sizeof(*p->pools));
			p->pools[p->npools++] = c;
		}
	}
	*nodes_out = nodes;
	if (!p->self) {
		if (err)
			*err = wasprintf("node %s: no Node resource", node);
		return -ENOENT;
	}
	if (!p->self->has_v4) {
		if (err)
			*err = wasprintf("node %s: no spec.bgp.ipv4Address: it cannot run BGP", node);
		return -EINVAL;
	}

	const cJSON *cspec = cfg ? spec_of(cfg) : NULL;
	p->mesh = bool_field(cspec, "nodeToNodeMeshEnabled", true);
	p->cluster_as = int_field(cspec, "asNumber", WEFT_BGP_DEFAULT_AS);
	p->as = p->cluster_as;
	p->listen_port = (int)int_field(cspec, "listenPort", 179);
	p->log_severity = str_field(cspec, "logSeverityScreen");
	if (!p->log_severity)
		p->log_severity = "Info";
	/* The node's own AS overrides the cluster's. */
	if (p->self->as)
		p->as = p->self->as;

	if (p->npools)
		qsort(p->pools, p->npools, sizeof(*p->pools), cidr_cmp);
	for (size_t i = 0; i < snap->nblocks; i++) {
		const struct weft_bgp_block *b = &snap->blocks[i];

		if (!b->affinity || !streq(b->affinity, node))
			continue;
		if (b->cidr.ip.family != AF_INET) {
			char cs[WEFT_CIDR_STRLEN];
			plan_note(p, "block %s skipped: IPv6 (not rendered yet)",
				  weft_cidr_str(&b->cidr, cs, sizeof(cs)));
			continue;
		}
		p->blocks = wrealloc(p->blocks, (p->nblocks + 1) * sizeof(*p->blocks));
		p->blocks[p->nblocks++] = b->cidr;
	}
	if (p->nblocks)
		qsort(p->blocks, p->nblocks, sizeof(*p->blocks), cidr_cmp);

	plan_node_sessions(p, nodes, nn);
	plan_peer_sessions(p, rs, nrs, true);
	plan_peer_sessions(p, rs, nrs, false);
	if (p->nsessions)
		qsort(p->sessions, p->nsessions, sizeof(*p->sessions), session_cmp);
	return 0;
}

/* --- printing -------------------------------------------------------------- */

static const char *log_classes(const char *severity)
{
	if (streq(severity, "Debug"))
		return "all";
	if (streq(severity, "Warning"))
		return "{ warning, error, auth, fatal, bug }";
	if (streq(severity, "Error"))
		return "{ error, fatal, bug }";
	return "{ info, remote, warning, error, auth, fatal, bug }";
}

/* A function testing `net` against a prefix list, or returning false when
 * the list is empty (BIRD has no empty prefix-set literal). plus: match
 * the prefixes and everything inside them. */
static void print_prefix_fn(struct weft_buf *b, const char *name, const struct weft_cidr *c, size_t n, bool plus)
{
	char cs[WEFT_CIDR_STRLEN];

	weft_buf_printf(b, "function %s()\n{\n", name);
	if (!n) {
		weft_buf_printf(b, "\treturn false;\n}\n\n");
		return;
	}
	weft_buf_printf(b, "\treturn net ~ [");
	for (size_t i = 0; i < n; i++)
		weft_buf_printf(b, "%s %s%s", i ? "," : "", weft_cidr_str(&c[i], cs, sizeof(cs)), plus ? "+" : "");
	weft_buf_printf(b, " ];\n}\n\n");
}

static void print_session(struct weft_buf *b, const struct plan *p, const struct session *s)
{
	char name[32], ips[WEFT_IP_STRLEN];

	weft_buf_printf(b, "# %s (%s).\n", s->what, weft_bgp_peer_type_name(s->type));
	weft_buf_printf(b, "protocol bgp %s from weft_peer {\n",
			weft_bgp_proto_name(s->type, &s->ip, name, sizeof(name)));
	weft_buf_printf(b, "\tneighbor %s", weft_ip_str(&s->ip, ips, sizeof(ips)));
	if (s->port)
		weft_buf_printf(b, " port %d", s->port);
	weft_buf_printf(b, " as %lld;\n", (long long)s->as);
	if (s->passive)
		weft_buf_printf(b, "\tpassive on; # the peer has the higher address: it connects\n");
	if (s->multihop)
		weft_buf_printf(b, "\tmultihop; # not on this node's subnet\n");
	if (s->rr_client) {
		weft_buf_printf(b, "\trr client;\n");
		weft_buf_printf(b, "\trr cluster id %s;\n", weft_ip_str(&p->self->cluster_id, ips, sizeof(ips)));
	}
	if (s->password)
		weft_buf_printf(b, "\tpassword \"%s\";\n", s->password);
	switch (s->type) {
	case WEFT_BGP_PEER_GLOBAL:
	case WEFT_BGP_PEER_NODE:
		weft_buf_printf(b, "\tipv4 {\n\t\timport filter weft_import_external;\n\t};\n");
		break;
	case WEFT_BGP_PEER_CLIENT:
	case WEFT_BGP_PEER_REFLECTOR:
		if (p->self->rr && !p->mesh)
			weft_buf_printf(b, "\tipv4 {\n\t\texport filter weft_export_reflect;\n\t};\n");
		break;
	case WEFT_BGP_PEER_MESH:
		break;
	}
	weft_buf_printf(b, "}\n\n");
}

static void print_plan(struct weft_buf *b, const struct plan *p)
{
	char ips[WEFT_IP_STRLEN], cs[WEFT_CIDR_STRLEN];
	const struct bnode *self = p->self;

	weft_buf_printf(b, "# BIRD 2 config of node %s, rendered by weft from the datastore.\n", self->name);
	weft_buf_printf(b, "# Do not edit: weftd rewrites it. docs/bgp.md explains every part.\n\n");
	weft_buf_printf(b, "router id %s;\n", weft_ip_str(&self->addr.ip, ips, sizeof(ips)));
	weft_buf_printf(b, "log stderr %s;\n", log_classes(p->log_severity));
	if (streq(p->log_severity, "Debug"))
		weft_buf_printf(b, "debug protocols { states, events };\n");
	/* weftctl node status parses `show protocols`: one fixed time format. */
	weft_buf_printf(b, "timeformat protocol iso long;\n");
	/* After a crash weftd starts BIRD with -R: the kernel channel takes no
	 * update until every BGP session is back with its End-of-RIB, and a
	 * peer that is down for good never sends one. BIRD's default bound
	 * is 240 s; live peers are back within seconds (tests/bgp-gr-wait.sh). */
	weft_buf_printf(b, "# Graceful restart recovery (-R) waits at most this long for peers that\n"
			   "# stay down before the kernel table is synchronised again.\n"
			   "graceful restart wait %d;\n\n",
			WEFT_BGP_GR_WAIT_S);
	for (size_t i = 0; i < p->nnotes; i++)
		weft_buf_printf(b, "# note: %s.\n", p->notes[i]);
	if (p->nnotes)
		weft_buf_printf(b, "\n");

	weft_buf_printf(b, "# The IP pools (IPv4): only routes inside them travel between nodes.\n");
	print_prefix_fn(b, "weft_in_pools", p->pools, p->npools, true);
	weft_buf_printf(b, "# This node's affine blocks.\n");
	print_prefix_fn(b, "weft_own_block", p->blocks, p->nblocks, false);
	weft_buf_printf(b, "# Inside one of this node's affine blocks.\n");
	print_prefix_fn(b, "weft_in_own_blocks", p->blocks, p->nblocks, true);

	/* IPAM borrows an address from another node's block when no block is
	 * left to claim: the block's owner announces the block (and
	 * blackholes it), so the address needs its own /32 from the node
	 * that has the workload, as Calico does. weft_kernel learns weftd's
	 * endpoint routes (protocol WEFT_DP_RTPROTO, a /32 on the host-side
	 * veth). */
	weft_buf_printf(b, "# A workload of this node with an address borrowed from another node's block:\n"
			   "# the /32 weftd routes to its interface (protocol %d), learned from the kernel.\n"
			   "function weft_borrowed()\n{\n"
			   "\tif proto != \"" PROTO_KERNEL "\" then return false;\n"
			   "\tif krt_source != %d || net.len != 32 || !(ifname ~ \"" WEFT_DP_IFPREFIX "*\") then return false;\n"
			   "\treturn weft_in_pools() && !weft_in_own_blocks();\n}\n\n",
			WEFT_DP_RTPROTO, WEFT_DP_RTPROTO);
	weft_buf_printf(b, "# Routes that came from another weft node (not from an external peer).\n"
			   "function weft_from_node()\n{\n"
			   "\treturn proto ~ \"Client_*\" || proto ~ \"Reflector_*\";\n}\n\n");

	weft_buf_printf(b, "# From the kernel: everything (learn), this node's endpoint /32s preferred over\n"
			   "# any BGP route for the same address, so that none is installed over them.\n"
			   "filter weft_kernel_import\n{\n"
			   "\tif krt_source = %d && net.len = 32 && ifname ~ \"" WEFT_DP_IFPREFIX "*\" then preference = %d;\n"
			   "\taccept;\n}\n\n",
			WEFT_DP_RTPROTO, WEFT_BGP_ENDPOINT_PREF);
	weft_buf_printf(b, "# To the kernel: routes learned over BGP, never one of our own blocks\n"
			   "# (their blackholes stay in BIRD; weftd programs its own). A peer's /32 inside\n"
			   "# one of our blocks (an address it borrowed) goes in: it beats our blackhole.\n"
			   "filter weft_kernel_export\n{\n"
			   "\tif source = RTS_BGP && !weft_own_block() then accept;\n\treject;\n}\n\n");
	weft_buf_printf(b, "# To peers: this node's blocks inside the pools, and the /32s of its workloads\n"
			   "# with borrowed addresses.\n"
			   "filter weft_export\n{\n"
			   "\tif proto = \"" PROTO_BLOCKS "\" && weft_in_pools() then accept;\n"
			   "\tif weft_borrowed() then accept;\n\treject;\n}\n\n");
	weft_buf_printf(b, "# From a route reflector to its clients and fellow reflectors: its own blocks\n"
			   "# and borrowed /32s, and the pool routes it reflects: those of other nodes only,\n"
			   "# never an external peer's.\n"
			   "filter weft_export_reflect\n{\n"
			   "\tif proto = \"" PROTO_BLOCKS "\" && weft_in_pools() then accept;\n"
			   "\tif weft_borrowed() then accept;\n"
			   "\tif source = RTS_BGP && weft_from_node() && weft_in_pools() then accept;\n\treject;\n}\n\n");
	weft_buf_printf(b, "# From other nodes: pool routes, never our own blocks back.\n"
			   "filter weft_import\n{\n"
			   "\tif weft_in_pools() && !weft_own_block() then accept;\n\treject;\n}\n\n");
	weft_buf_printf(b, "# From external peers: what they send, except our own blocks.\n"
			   "filter weft_import_external\n{\n"
			   "\tif weft_own_block() then reject;\n\taccept;\n}\n\n");

	weft_buf_printf(b, "protocol device weft_device\n{\n\tscan time 10;\n}\n\n");
	weft_buf_printf(b, "# Connected routes (the underlay subnet resolves BGP next hops), not the\n"
			   "# workloads' host-side interfaces.\n"
			   "protocol direct weft_direct\n{\n\tipv4;\n\tinterface -\"wft*\", -\"wfb*\", \"*\";\n}\n\n");
	weft_buf_printf(b, "protocol kernel " PROTO_KERNEL "\n{\n"
			   "\tipv4 {\n\t\timport filter weft_kernel_import;\n\t\texport filter weft_kernel_export;\n\t};\n"
			   "\tlearn;\n\tpersist;\n\tscan time 2;\n\tgraceful restart;\n\tmerge paths on;\n}\n\n");
	weft_buf_printf(b, "# One blackhole per affine block: the aggregate this node announces.\n");
	weft_buf_printf(b, "protocol static " PROTO_BLOCKS "\n{\n\tipv4;\n");
	for (size_t i = 0; i < p->nblocks; i++)
		weft_buf_printf(b, "\troute %s blackhole;\n", weft_cidr_str(&p->blocks[i], cs, sizeof(cs)));
	weft_buf_printf(b, "}\n\n");

	weft_buf_printf(b, "template bgp weft_peer\n{\n");
	weft_buf_printf(b, "\tlocal %s", weft_ip_str(&self->addr.ip, ips, sizeof(ips)));
	if (p->listen_port != 179)
		weft_buf_printf(b, " port %d", p->listen_port);
	weft_buf_printf(b, " as %lld;\n", (long long)p->as);
	weft_buf_printf(b, "\tgraceful restart on;\n\tconnect delay time 2;\n\tconnect retry time 5;\n"
			   "\terror wait time 5, 30;\n"
			   "\tipv4 {\n\t\timport filter weft_import;\n\t\texport filter weft_export;\n\t};\n}\n\n");

	if (!p->nsessions)
		weft_buf_printf(b, "# No BGP sessions.\n");
	for (size_t i = 0; i < p->nsessions; i++)
		print_session(b, p, &p->sessions[i]);
}

int weft_bgpconf_render(const struct weft_bgp_snapshot *s, const char *node, char **out, char **err)
{
	struct plan p = {0};
	struct bnode *nodes = NULL;
	struct weft_buf b = {0};
	int r;

	if (!s || !node || !out)
		return -EINVAL;
	r = plan_build(s, node, &p, &nodes, err);
	if (r == 0) {
		print_plan(&b, &p);
		*out = weft_buf_steal(&b);
	}
	plan_clear(&p);
	free(nodes);
	return r;
}

/* --- snapshots --------------------------------------------------------------- */

void weft_bgp_snapshot_clear(struct weft_bgp_snapshot *s)
{
	if (!s)
		return;
	weft_resources_free(s->res, s->nres);
	for (size_t i = 0; i < s->nblocks; i++)
		free(s->blocks[i].affinity);
	free(s->blocks);
	*s = (struct weft_bgp_snapshot){0};
}

void weft_bgp_snapshot_add_block(struct weft_bgp_snapshot *s, const struct weft_cidr *cidr, const char *affinity)
{
	s->blocks = wrealloc(s->blocks, (s->nblocks + 1) * sizeof(*s->blocks));
	s->blocks[s->nblocks++] = (struct weft_bgp_block){.cidr = *cidr, .affinity = affinity ? wstrdup(affinity) : NULL};
}

/* What a load left out or read leniently: one message per record, each
 * logged (warning) when the load before did not have it. weftd loads a
 * snapshot on every change and every minute, in two halves (BGP and
 * fabric), so a record that stays bad is named once, not at every load;
 * it is named again after it was mended and broken again. Process-wide,
 * for the one thread that loads snapshots (weftd's loop, a CLI). */
static uint64_t *g_left_out_prev;
static size_t g_left_out_nprev;

struct left_out {
	char **msgs;
	uint64_t *hashes;
	size_t n;
};

static void PRINTF_LIKE(2, 3) left_out_add(struct left_out *lo, const char *fmt, ...)
{
	va_list ap;
	char *m;

	va_start(ap, fmt);
	m = wvasprintf(fmt, ap);
	va_end(ap);
	/* Keys come from the store as they are: one printable line. */
	for (char *c = m; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	lo->msgs = wrealloc(lo->msgs, (lo->n + 1) * sizeof(*lo->msgs));
	lo->hashes = wrealloc(lo->hashes, (lo->n + 1) * sizeof(*lo->hashes));
	lo->hashes[lo->n] = weft_fnv1a(m, strlen(m), WEFT_FNV_INIT);
	lo->msgs[lo->n++] = m;
}

/* log: the load succeeded; log what is new and remember this set. */
static void left_out_done(struct left_out *lo, bool log)
{
	if (log) {
		for (size_t i = 0; i < lo->n; i++) {
			size_t j = 0;

			while (j < g_left_out_nprev && g_left_out_prev[j] != lo->hashes[i])
				j++;
			if (j == g_left_out_nprev)
				log_warn("bgp: %s", lo->msgs[i]);
		}
		free(g_left_out_prev);
		g_left_out_prev = TAKE_PTR(lo->hashes);
		g_left_out_nprev = lo->n;
	}
	for (size_t i = 0; i < lo->n; i++)
		free(lo->msgs[i]);
	free(lo->msgs);
	free(lo->hashes);
	*lo = (struct left_out){0};
}

/* A Node record that does not decode as a whole, read leniently:
 *  - without its spec.status: the status is weftd's report, which BGP does
 *    not read, and a newer weftd may report a field this one does not
 *    know (a rolling upgrade must not freeze every older node's BGP
 *    config);
 *  - with a spec.bgp.routeReflectorClusterID of 0.0.0.0 (refused since
 *    2026-11-28, but an older weftctl or another writer may have stored
 *    it) read as the node's router id, which is what BIRD did with 0: the
 *    node stays the reflector it was, and every node's BGP goes on
 *    instead of stopping at this record. Noted in lo.
 * Returns 0 or a negative errno (then the record is bad beyond these). */
static int node_lenient(const struct weft_kv *kv, struct weft_resource *out, struct left_out *lo)
{
	_cleanup_json_ cJSON *doc = NULL;
	_cleanup_free_ char *note = NULL;
	cJSON *spec, *bgp, *cid;
	struct weft_ip ip;
	bool changed = false;

	if (weft_json_parse(kv->value, kv->value_len, &doc) < 0 || !cJSON_IsObject(doc))
		return -EBADMSG;
	spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
	if (!cJSON_IsObject(spec))
		return -EBADMSG;
	if (cJSON_GetObjectItemCaseSensitive(spec, "status")) {
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "status");
		changed = true;
	}
	bgp = cJSON_GetObjectItemCaseSensitive(spec, "bgp");
	cid = cJSON_IsObject(bgp) ? cJSON_GetObjectItemCaseSensitive(bgp, "routeReflectorClusterID") : NULL;
	if (cJSON_IsString(cid) && weft_ip_parse(cid->valuestring, &ip) == 0 && ip.family == AF_INET &&
	    ip.v4.s_addr == 0) {
		const char *a = str_field(bgp, "ipv4Address");
		struct weft_cidr c;
		char ips[WEFT_IP_STRLEN];

		if (a && weft_cidr_parse(a, false, &c) == 0 && c.ip.family == AF_INET) {
			weft_ip_str(&c.ip, ips, sizeof(ips));
			cJSON_ReplaceItemInObjectCaseSensitive(bgp, "routeReflectorClusterID", cJSON_CreateString(ips));
			note = wasprintf("%s: spec.bgp.routeReflectorClusterID 0.0.0.0 is not a cluster id: read as %s, "
					 "the node's router id, as BIRD did with 0 (set a cluster id with weftctl)",
					 kv->key, ips);
		} else {
			cJSON_DeleteItemFromObjectCaseSensitive(bgp, "routeReflectorClusterID");
			note = wasprintf("%s: spec.bgp.routeReflectorClusterID 0.0.0.0 is not a cluster id: left out "
					 "(the node has no spec.bgp.ipv4Address either)",
					 kv->key);
		}
		changed = true;
	}
	if (!changed || weft_resource_from_json(doc, kv->key, out, NULL) < 0)
		return -EBADMSG;
	if (note)
		left_out_add(lo, "%s", note);
	return 0;
}

/* As bgpconf.h says, but for two kinds of records read leniently, each
 * named in a warning (left_out_done()): a BGPPeer that does not decode is
 * left out (one peer is one session; the rest is configured as before),
 * and a Node goes through node_lenient(). Any other record that does not
 * decode still fails the load (-EBADMSG naming its key): the caller keeps
 * what it has (fail static) rather than withdraw a node or a pool. */
int weft_bgp_snapshot_load(struct weft_store *store, struct weft_bgp_snapshot *out, char **err)
{
	static const enum weft_kind kinds[] = {WEFT_KIND_NODE, WEFT_KIND_BGPPEER, WEFT_KIND_BGPCONFIG, WEFT_KIND_IPPOOL};
	struct weft_bgp_snapshot s = {0};
	struct weft_ipam *m = NULL;
	struct weft_ipam_usage *u = NULL;
	struct left_out lo = {0};
	size_t nu = 0;
	int r;

	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		struct weft_kv_list l = {0};

		r = weft_store_list(store, weft_kind_prefix(kinds[k]), &l);
		if (r < 0) {
			if (err)
				*err = wasprintf("list %s: %s", weft_kind_prefix(kinds[k]), weft_store_errmsg(store));
			goto fail;
		}
		s.res = wrealloc(s.res, (s.nres + l.n + 1) * sizeof(*s.res));
		for (size_t i = 0; i < l.n; i++) {
			_cleanup_free_ char *e = NULL;

			r = weft_resource_decode(l.items[i].value, l.items[i].value_len, &s.res[s.nres], &e);
			if (r < 0 && kinds[k] == WEFT_KIND_NODE && node_lenient(&l.items[i], &s.res[s.nres], &lo) == 0)
				r = 0;
			if (r < 0 && kinds[k] == WEFT_KIND_BGPPEER) {
				/* One peer is one session: a record this version
				 * cannot read (a peerIP refused since, a field of a
				 * newer version, a hostile writer) costs that
				 * session, not the node's whole BGP config. */
				left_out_add(&lo, "BGPPeer record %s left out (no session for it; the other peers are not "
					     "affected): %s",
					     l.items[i].key, e ? e : strerror(-r));
				continue;
			}
			if (r < 0) {
				if (err)
					*err = wasprintf("%s: %s", l.items[i].key, e ? e : strerror(-r));
				weft_kv_list_clear(&l);
				r = -EBADMSG;
				goto fail;
			}
			s.nres++;
		}
		weft_kv_list_clear(&l);
	}

	r = weft_ipam_new(store, &m);
	if (r < 0)
		goto fail;
	r = weft_ipam_usage(m, &u, &nu);
	if (r < 0) {
		if (err)
			*err = wasprintf("ipam blocks: %s", weft_ipam_errmsg(m));
		goto fail;
	}
	for (size_t i = 0; i < nu; i++)
		if (u[i].kind == WEFT_IPAM_USAGE_BLOCK)
			weft_bgp_snapshot_add_block(&s, &u[i].cidr, u[i].affinity);
	weft_ipam_usage_free(u, nu);
	weft_ipam_free(m);
	left_out_done(&lo, true);
	*out = s;
	return 0;
fail:
	left_out_done(&lo, false);
	weft_ipam_free(m);
	weft_bgp_snapshot_clear(&s);
	return r;
}

/* --- protocol names ---------------------------------------------------------------- */

static const char *const type_prefix[] = {
	[WEFT_BGP_PEER_MESH] = "Mesh",	   [WEFT_BGP_PEER_REFLECTOR] = "Reflector", [WEFT_BGP_PEER_CLIENT] = "Client",
	[WEFT_BGP_PEER_GLOBAL] = "Global", [WEFT_BGP_PEER_NODE] = "Node",
};
static const char *const type_name[] = {
	[WEFT_BGP_PEER_MESH] = "mesh",	   [WEFT_BGP_PEER_REFLECTOR] = "reflector", [WEFT_BGP_PEER_CLIENT] = "client",
	[WEFT_BGP_PEER_GLOBAL] = "global", [WEFT_BGP_PEER_NODE] = "node",
};

const char *weft_bgp_peer_type_name(enum weft_bgp_peer_type t)
{
	if ((size_t)t < ARRAY_SIZE(type_name) && type_name[t])
		return type_name[t];
	return "?";
}

const char *weft_bgp_proto_name(enum weft_bgp_peer_type t, const struct weft_ip *peer, char *buf, size_t size)
{
	const uint8_t *a = peer->bytes;
	const char *pfx = (size_t)t < ARRAY_SIZE(type_prefix) && type_prefix[t] ? type_prefix[t] : "Peer";

	/* Dots are not allowed in BIRD identifiers: A.B.C.D becomes A_B_C_D. */
	snprintf(buf, size, "%s_%u_%u_%u_%u", pfx, a[0], a[1], a[2], a[3]);
	return buf;
}

int weft_bgp_proto_parse(const char *name, enum weft_bgp_peer_type *type, struct weft_ip *peer)
{
	const char *us = name ? strchr(name, '_') : NULL;
	unsigned oct[4];
	struct weft_ip ip = {.family = AF_INET};
	size_t t;
	int pos = 0;

	if (!us)
		return -EINVAL;
	for (t = 1; t < ARRAY_SIZE(type_prefix); t++)
		if (strlen(type_prefix[t]) == (size_t)(us - name) && strncmp(name, type_prefix[t], us - name) == 0)
			break;
	if (t == ARRAY_SIZE(type_prefix))
		return -EINVAL;
	/* Exactly four decimal octets, no leading zeros or signs. */
	const char *s = us + 1;
	for (int i = 0; i < 4; i++) {
		if (i && *s++ != '_')
			return -EINVAL;
		if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
			return -EINVAL;
		oct[i] = 0;
		for (pos = 0; *s >= '0' && *s <= '9' && pos < 4; s++, pos++)
			oct[i] = oct[i] * 10 + (unsigned)(*s - '0');
		if (pos > 3 || oct[i] > 255)
			return -EINVAL;
		ip.bytes[i] = (uint8_t)oct[i];
	}
	if (*s)
		return -EINVAL;
	*type = (enum weft_bgp_peer_type)t;
	*peer = ip;
	return 0;
}
