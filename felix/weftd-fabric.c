/* weftd-fabric.c - the node's routes and encapsulation: a kernel blackhole
 * route per IPAM block affine to this node, the VXLAN device and its
 * per-peer entries for VXLAN pools (the peers' blocks, and a /32 for each
 * address a peer borrowed from a block that is not its own), and the
 * natOutgoing nftables table.
 *
 * Like the BGP half (weftd-bgp.c), one watch on /weft/v1/ arms a deferred
 * "sync" source for every relevant change (nodes, pools, IPAM blocks and
 * affinities), so a burst of events costs one sync; a timer runs the same
 * sync every WEFTD_FABRIC_RESYNC_MS (WEFT_FABRIC_RESYNC_MS in the
 * environment overrides it, for tests). Every sync is a full one: it reads
 * the store, computes the desired kernel state and compares it with the
 * kernel, so a resync repairs whatever a lost event, a failed call or an
 * operator's hand changed.
 *
 * Changes and drift are told apart by remembering what the previous sync
 * programmed: a difference between the kernel and the new desired state
 * that the store explains (a block became affine, a pool changed) is a
 * change; one where the desired state is what was programmed before is
 * drift, logged at info and counted in weft_drift_repairs_total{kind}.
 * The first sync after start has nothing to compare with: it only adds
 * and removes what differs, so routes that are right stay untouched (a
 * restart of weftd does not flap them).
 *
 * Design choices (docs/dataplane.md, "weftd's fabric"):
 *  - blackholes are proto WEFT_DP_RTPROTO, type blackhole, metric 0, main
 *    table; they are added with NLM_F_EXCL, never replacing a route of
 *    another protocol; the start-up sweep (dp-sweep.c) leaves blackholes
 *    alone already;
 *  - each node takes a tunnel address from a VXLAN pool (IPAM handle
 *    vxlan-tunnel-addr-<node>, Node spec.ipv4VXLANTunnelAddr, as Calico)
 *    and puts it on weft.vxlan, so that what the host itself sends to a
 *    remote pod leaves with a pool address, which the receiver's reverse
 *    path check (rp_filter) finds behind its own weft.vxlan; the next hop
 *    of a VXLAN route is the peer's tunnel address (onlink, with a
 *    permanent neighbour entry), or its underlay address while it has
 *    none (a pool full, an older weftd);
 *  - VXLAN routes carry metric 0, BIRD installs its routes with metric 32:
 *    for a block that both cover, the kernel uses the VXLAN route and the
 *    BGP route stays as a standby.
 */
#include "bgpconf/bgpconf.h"
#include "felix/dataplane.h"
#include "felix/metrics.h"
#include "felix/weftd.h"
#include "ipam/ipam.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/netlink.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <libmnl/libmnl.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <time.h>

#define WEFTD_FABRIC_RESYNC_MS (120 * 1000)
#define FABRIC_RETRY_NS (1000000000LL)

enum vxlan_mode { VXLAN_NEVER, VXLAN_ALWAYS, VXLAN_CROSS_SUBNET };

struct fpool {
	struct weft_cidr cidr;
	bool nat, disabled;
	enum vxlan_mode vxlan;
};

struct fnode {
	const char *name; /* owned by the snapshot */
	struct weft_cidr addr;
	struct weft_ip tunnel; /* spec.ipv4VXLANTunnelAddr; family 0: none */
};

/* What the kernel should hold, computed from one snapshot. */
struct desired {
	struct weft_cidr *blackholes;
	size_t nblackholes;
	struct weft_cidr *nat, *all; /* natOutgoing pools, every pool */
	size_t nnat, nall;
	bool vxlan; /* some pool needs the device */
	struct weft_cidr *vxpools; /* the IPv4 pools with vxlanMode Always or CrossSubnet */
	bool *vxpool_off;          /* ... and whether each is disabled */
	size_t nvxpools;
	struct weft_ip node_tunnel; /* this node's spec.ipv4VXLANTunnelAddr (family 0: none) */
	struct weft_ip tunnel;      /* the address to put on weft.vxlan (tunnel_sync) */
	struct weft_dp_vxlan_peer *peers;
	size_t npeers;
	struct weft_cidr *peer_blocks; /* the peers' blocks point into it */
	size_t nroutes;                /* VXLAN routes: the blocks of all peers */
	char *peers_text;              /* canonical text of device + peers */
	char *nat_text;                /* canonical text of the NAT input */
};

struct weftd_fabric {
	struct weftd *d;
	struct weft_loop *loop;
	struct weftd_watch *watch;
	struct weft_ipam *ipam; /* reads the blocks' allocations */
	struct weft_source *sync_src, *resync_timer, *retry_timer;
	int64_t resync_ns;
	int64_t retry_ns; /* the next retry's delay: doubles while syncs fail */
	/* What the last sync programmed (valid once synced). */
	bool synced;
	struct weft_cidr *prev_bh;
	size_t nprev_bh;
	char *prev_peers; /* NULL: no device wanted */
	char *prev_nat;   /* NULL: NAT not programmed yet */
	char *nat_fp;     /* the kernel's NAT table right after we set it */
	char *no_tunnel;  /* why this node has no tunnel address, as last logged */
};

/* --- helpers ------------------------------------------------------------------ */

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

static bool bool_field(const cJSON *obj, const char *key)
{
	bool v = false;

	if (!obj || weft_json_get_bool(obj, key, &v) < 0)
		return false;
	return v;
}

static int cidr_cmp(const void *a, const void *b)
{
	const struct weft_cidr *x = a, *y = b;
	int c = weft_ip_cmp(&x->ip, &y->ip);

	if (c)
		return c;
	return (x->prefixlen > y->prefixlen) - (x->prefixlen < y->prefixlen);
}

static bool cidr_eq(const struct weft_cidr *a, const struct weft_cidr *b)
{
	return a->prefixlen == b->prefixlen && weft_ip_eq(&a->ip, &b->ip);
}

static bool cidr_in(const struct weft_cidr *c, const struct weft_cidr *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_eq(c, &v[i]))
			return true;
	return false;
}

static void cidr_push(struct weft_cidr **v, size_t *n, const struct weft_cidr *c)
{
	*v = wrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = *c;
}

static bool block_in_pool(const struct weft_cidr *block, const struct fpool *p)
{
	return block->ip.family == p->cidr.ip.family && block->prefixlen >= p->cidr.prefixlen &&
	       weft_cidr_contains(&p->cidr, &block->ip);
}

/* Does traffic to a block (or an address of it) go through VXLAN towards a
 * peer, off_subnet telling whether the peer's underlay is in another
 * subnet? */
static bool via_vxlan(const struct weft_cidr *block, const struct fpool *pools, size_t npools, bool off_subnet)
{
	for (size_t i = 0; i < npools; i++)
		if (block_in_pool(block, &pools[i]) &&
		    (pools[i].vxlan == VXLAN_ALWAYS || (pools[i].vxlan == VXLAN_CROSS_SUBNET && off_subnet)))
			return true;
	return false;
}

static void desired_clear(struct desired *w)
{
	free(w->blackholes);
	free(w->nat);
	free(w->all);
	free(w->vxpools);
	free(w->vxpool_off);
	free(w->peers);
	free(w->peer_blocks);
	free(w->peers_text);
	free(w->nat_text);
	*w = (struct desired){0};
}

/* The interface holding the underlay address: the VXLAN device's parent
 * (its MTU sets the device's). "" when none does or the interfaces cannot
 * be read (then the device keeps the parent it has). */
static void underlay_ifname(const struct weft_ip *addr, char out[IFNAMSIZ])
{
	struct ifaddrs *ifa = NULL;

	out[0] = 0;
	if (getifaddrs(&ifa) < 0) {
		log_debug("fabric: getifaddrs: %s", strerror(errno));
		return;
	}
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == addr->v4.s_addr) {
			weft_strlcpy(out, i->ifa_name, IFNAMSIZ);
			break;
		}
	freeifaddrs(ifa);
}

/* --- the desired state ----------------------------------------------------------- */

/* Is ip inside one of w's VXLAN pools? */
static bool in_vxpool(const struct desired *w, const struct weft_ip *ip)
{
	for (size_t i = 0; i < w->nvxpools; i++)
		if (ip->family == w->vxpools[i].ip.family && weft_cidr_contains(&w->vxpools[i], ip))
			return true;
	return false;
}

/* spec.ipv4VXLANTunnelAddr of a Node (family 0: none or not an address). */
static struct weft_ip node_tunnel(const cJSON *spec)
{
	const char *a = str_field(spec, "ipv4VXLANTunnelAddr");
	struct weft_ip ip = {0};

	if (!a || weft_ip_parse(a, &ip) < 0 || ip.family != AF_INET)
		return (struct weft_ip){0};
	return ip;
}

static int peer_cmp(const void *a, const void *b)
{
	const struct weft_dp_vxlan_peer *x = a, *y = b;

	return weft_ip_cmp(&x->underlay, &y->underlay);
}

/* The block of s holding ip, or NULL. */
static const struct weft_bgp_block *block_of(const struct weft_bgp_snapshot *s, const struct weft_ip *ip)
{
	for (size_t b = 0; b < s->nblocks; b++)
		if (s->blocks[b].cidr.ip.family == ip->family && weft_cidr_contains(&s->blocks[b].cidr, ip))
			return &s->blocks[b];
	return NULL;
}

static void desired_build(struct weftd_fabric *f, const struct weft_bgp_snapshot *s,
			  const struct weft_ipam_allocation *allocs, size_t nallocs, struct desired *w)
{
	const struct weftd *d = f->d;
	_cleanup_free_ struct fpool *pools = NULL;
	_cleanup_free_ struct fnode *nodes = NULL;
	_cleanup_free_ size_t *first = NULL;
	size_t npools = 0, nnodes = 0;
	struct weft_cidr subnet = d->underlay;
	struct weft_buf t = {0};
	char cs[WEFT_CIDR_STRLEN], is[WEFT_IP_STRLEN];
	bool any_vxlan = false;

	weft_cidr_mask(&subnet);
	pools = wcalloc(s->nres + 1, sizeof(*pools));
	nodes = wcalloc(s->nres + 1, sizeof(*nodes));
	for (size_t i = 0; i < s->nres; i++) {
		const struct weft_resource *r = &s->res[i];
		const cJSON *spec = spec_of(r);

		if (r->kind == WEFT_KIND_IPPOOL) {
			const char *c = str_field(spec, "cidr"), *mode = str_field(spec, "vxlanMode");
			struct fpool p = {.nat = bool_field(spec, "natOutgoing"), .disabled = bool_field(spec, "disabled")};

			if (!c || weft_cidr_parse(c, true, &p.cidr) < 0)
				continue;
			if (mode && streq(mode, "Always"))
				p.vxlan = VXLAN_ALWAYS;
			else if (mode && streq(mode, "CrossSubnet"))
				p.vxlan = VXLAN_CROSS_SUBNET;
			/* VXLAN is IPv4 only (device and routes). */
			if (p.cidr.ip.family != AF_INET)
				p.vxlan = VXLAN_NEVER;
			any_vxlan |= p.vxlan != VXLAN_NEVER;
			if (p.vxlan != VXLAN_NEVER) {
				w->vxpool_off = wrealloc(w->vxpool_off, (w->nvxpools + 1) * sizeof(*w->vxpool_off));
				w->vxpool_off[w->nvxpools] = p.disabled;
				cidr_push(&w->vxpools, &w->nvxpools, &p.cidr);
			}
			pools[npools++] = p;
		} else if (r->kind == WEFT_KIND_NODE && streq(r->name, d->node)) {
			w->node_tunnel = node_tunnel(spec);
		} else if (r->kind == WEFT_KIND_NODE) {
			const char *a = str_field(cJSON_GetObjectItemCaseSensitive(spec, "bgp"), "ipv4Address");
			struct fnode n = {.name = r->name, .tunnel = node_tunnel(spec)};

			/* The address keeps its host bits (bgpconf reads it the
			 * same way); a bare address is a /32. */
			if (!a || (weft_cidr_parse(a, false, &n.addr) < 0 && weft_cidr_parse_host(a, &n.addr) < 0) ||
			    n.addr.ip.family != AF_INET || weft_ip_eq(&n.addr.ip, &d->underlay.ip))
				continue;
			nodes[nnodes++] = n;
		}
	}

	/* Blackholes: every block affine to this node. */
	for (size_t i = 0; i < s->nblocks; i++)
		if (s->blocks[i].affinity && streq(s->blocks[i].affinity, d->node) &&
		    !cidr_in(&s->blocks[i].cidr, w->blackholes, w->nblackholes))
			cidr_push(&w->blackholes, &w->nblackholes, &s->blocks[i].cidr);
	if (w->nblackholes)
		qsort(w->blackholes, w->nblackholes, sizeof(*w->blackholes), cidr_cmp);

	/* NAT: the natOutgoing pools, towards everything outside all pools.
	 * Disabled pools count too: their addresses are still in use. */
	for (size_t i = 0; i < npools; i++) {
		if (pools[i].cidr.ip.family != AF_INET)
			continue;
		cidr_push(&w->all, &w->nall, &pools[i].cidr);
		if (pools[i].nat)
			cidr_push(&w->nat, &w->nnat, &pools[i].cidr);
	}
	if (w->nnat)
		qsort(w->nat, w->nnat, sizeof(*w->nat), cidr_cmp);
	if (w->nall)
		qsort(w->all, w->nall, sizeof(*w->all), cidr_cmp);
	weft_buf_printf(&t, "nat");
	for (size_t i = 0; i < w->nnat; i++)
		weft_buf_printf(&t, " %s", weft_cidr_str(&w->nat[i], cs, sizeof(cs)));
	weft_buf_printf(&t, " all");
	for (size_t i = 0; w->nnat && i < w->nall; i++)
		weft_buf_printf(&t, " %s", weft_cidr_str(&w->all[i], cs, sizeof(cs)));
	w->nat_text = weft_buf_steal(&t);

	/* VXLAN: a peer per other node; its blocks in the VXLAN pools that
	 * encapsulate towards it (Always; CrossSubnet when it is outside
	 * this node's underlay subnet). */
	w->vxlan = any_vxlan && d->underlay.ip.family == AF_INET;
	if (!w->vxlan)
		return;
	w->peers = wcalloc(nnodes + 1, sizeof(*w->peers));
	first = wcalloc(nnodes + 1, sizeof(*first));
	for (size_t k = 0; k < nnodes; k++) {
		const struct fnode *n = &nodes[k];
		bool off_subnet = !weft_cidr_contains(&subnet, &n->addr.ip);
		bool wanted = false;
		struct weft_dp_vxlan_peer *p = &w->peers[w->npeers];

		for (size_t i = 0; i < npools && !wanted; i++)
			wanted = pools[i].vxlan == VXLAN_ALWAYS || (pools[i].vxlan == VXLAN_CROSS_SUBNET && off_subnet);
		/* Two Nodes claiming one address: the first (by store order)
		 * keeps it; set_peers would refuse the pair. */
		for (size_t j = 0; j < w->npeers && wanted; j++)
			wanted = !weft_ip_eq(&w->peers[j].underlay, &n->addr.ip);
		if (!wanted)
			continue;
		p->underlay = n->addr.ip;
		/* Its tunnel address when it has a usable one: inside a VXLAN
		 * pool and no other peer's (set_peers refuses duplicates: one
		 * bad Node must not take VXLAN down for all). Else its underlay
		 * address, as before it had one. */
		p->tunnel = n->addr.ip;
		if (n->tunnel.family && in_vxpool(w, &n->tunnel)) {
			bool dup = false;

			for (size_t j = 0; j < w->npeers && !dup; j++)
				dup = weft_ip_eq(&w->peers[j].tunnel, &n->tunnel) || weft_ip_eq(&w->peers[j].underlay, &n->tunnel);
			for (size_t j = 0; j < nnodes && !dup; j++)
				dup = weft_ip_eq(&nodes[j].addr.ip, &n->tunnel);
			dup = dup || weft_ip_eq(&w->node_tunnel, &n->tunnel);
			if (!dup)
				p->tunnel = n->tunnel;
		}
		weft_dp_vxlan_mac(n->name, p->mac);
		first[w->npeers] = w->nroutes;
		for (size_t b = 0; b < s->nblocks; b++) {
			const struct weft_bgp_block *blk = &s->blocks[b];

			if (!blk->affinity || !streq(blk->affinity, n->name) || blk->cidr.ip.family != AF_INET)
				continue;
			if (via_vxlan(&blk->cidr, pools, npools, off_subnet))
				cidr_push(&w->peer_blocks, &w->nroutes, &blk->cidr);
		}
		/* Addresses it borrowed from another node's block (or from a
		 * block affine to nobody): a /32 each, more specific than the
		 * block's route or, on the block's owner, its blackhole. Not
		 * the weft-ipam plugin's addresses: another main plugin's
		 * interface holds them, which weft does not route (BGP sends
		 * no /32 for them either). */
		for (size_t a = 0; a < nallocs; a++) {
			const struct weft_ipam_allocation *al = &allocs[a];
			const struct weft_bgp_block *blk;

			if (al->attrs.plugin || !al->holder || !startswith(al->holder, WEFT_IPAM_BLOCKS_PREFIX) || !al->attrs.node ||
			    !streq(al->attrs.node, n->name) || al->ip.family != AF_INET ||
			    !(blk = block_of(s, &al->ip)) || (blk->affinity && streq(blk->affinity, n->name)))
				continue;
			if (via_vxlan(&blk->cidr, pools, npools, off_subnet))
				cidr_push(&w->peer_blocks, &w->nroutes,
					  &(struct weft_cidr){.ip = al->ip, .prefixlen = 32});
		}
		p->nblocks = w->nroutes - first[w->npeers];
		w->npeers++;
	}
	/* The blocks array is complete: point the peers into it, then sort
	 * (each peer's blocks too) so the text below is canonical. */
	for (size_t k = 0; k < w->npeers; k++) {
		struct weft_cidr *mine = w->peer_blocks ? w->peer_blocks + first[k] : NULL;

		if (w->peers[k].nblocks)
			qsort(mine, w->peers[k].nblocks, sizeof(*mine), cidr_cmp);
		w->peers[k].blocks = w->peers[k].nblocks ? mine : NULL;
	}
	if (w->npeers)
		qsort(w->peers, w->npeers, sizeof(*w->peers), peer_cmp);
	weft_buf_printf(&t, "dev %s", weft_ip_str(&d->underlay.ip, is, sizeof(is)));
	for (size_t k = 0; k < w->npeers; k++) {
		const struct weft_dp_vxlan_peer *p = &w->peers[k];

		weft_buf_printf(&t, "; %s %02x%02x%02x%02x%02x%02x", weft_ip_str(&p->underlay, is, sizeof(is)), p->mac[0],
				p->mac[1], p->mac[2], p->mac[3], p->mac[4], p->mac[5]);
		weft_buf_printf(&t, " via %s", weft_ip_str(&p->tunnel, is, sizeof(is)));
		for (size_t b = 0; b < p->nblocks; b++)
			weft_buf_printf(&t, " %s", weft_cidr_str(&p->blocks[b], cs, sizeof(cs)));
	}
	w->peers_text = weft_buf_steal(&t);
}

/* --- the node's tunnel address ------------------------------------------------------- */

static void tunnel_edit(cJSON *spec, void *data)
{
	const struct weft_ip *ip = data;
	char is[WEFT_IP_STRLEN];

	cJSON_DeleteItemFromObjectCaseSensitive(spec, "ipv4VXLANTunnelAddr");
	if (ip->family)
		cJSON_AddStringToObject(spec, "ipv4VXLANTunnelAddr", weft_ip_str(ip, is, sizeof(is)));
}

/* This node's VXLAN tunnel address, as Calico's: while a VXLAN pool is
 * there (w->vxlan), one address from the enabled VXLAN pools whose
 * nodeSelector selects the node, under the IPAM handle
 * vxlan-tunnel-addr-<node>, published as the Node's ipv4VXLANTunnelAddr
 * and put on weft.vxlan (w->tunnel); without one, the address is released
 * and the field removed. An address the handle holds is kept while it is
 * inside a VXLAN pool (disabled or not: it is in use), so a restart or a
 * Node written without the field gets the same one back. allocs: every
 * allocation, read with the snapshot. Returns 0 or a negative errno (the
 * node goes on without a tunnel address: peers route to its underlay
 * address as before). */
static int tunnel_sync(struct weftd_fabric *f, struct desired *w, const struct weft_ipam_allocation *allocs,
		       size_t nallocs)
{
	const struct weftd *d = f->d;
	_cleanup_free_ char *handle = wasprintf("%s%s", WEFT_IPAM_VXLAN_TUNNEL_HANDLE_PREFIX, d->node);
	_cleanup_free_ const char **pools = NULL;
	_cleanup_free_ char (*names)[WEFT_CIDR_STRLEN] = NULL;
	struct weft_ip keep = {0};
	char is[WEFT_IP_STRLEN];
	size_t npools = 0;
	int r = 0, failed = 0;

	w->tunnel = (struct weft_ip){0};
	if (strlen(handle) > WEFT_IPAM_NAME_MAX) {
		/* A node name of over 235 characters: no handle for it. */
		if (w->vxlan)
			log_warn("fabric: the node name is too long for the IPAM handle of a VXLAN tunnel address; "
				 "peers reach this node's underlay address instead");
		return 0;
	}
	/* What the handle holds: the first address in a VXLAN pool is kept,
	 * the rest (an address left outside the pools, a second one) goes. */
	for (size_t i = 0; i < nallocs; i++) {
		const struct weft_ipam_allocation *a = &allocs[i];

		if (!a->handle || !streq(a->handle, handle))
			continue;
		if (w->vxlan && !keep.family && a->ip.family == AF_INET && in_vxpool(w, &a->ip)) {
			keep = a->ip;
			continue;
		}
		r = weft_ipam_release_ip(f->ipam, &a->ip);
		if (r < 0) {
			log_warn_errno(r, "fabric: releasing the tunnel address %s: %s", weft_ip_str(&a->ip, is, sizeof(is)),
				       weft_ipam_errmsg(f->ipam));
			failed = failed ? failed : r;
		} else if (r > 0) {
			log_info("fabric: VXLAN tunnel address %s released%s", weft_ip_str(&a->ip, is, sizeof(is)),
				 w->vxlan ? " (outside the VXLAN pools)" : " (no pool uses VXLAN)");
		}
	}
	if (w->vxlan && !keep.family) {
		/* The enabled VXLAN pools, by CIDR. */
		names = wcalloc(w->nvxpools + 1, sizeof(*names));
		pools = wcalloc(w->nvxpools + 1, sizeof(*pools));
		for (size_t i = 0; i < w->nvxpools; i++)
			if (!w->vxpool_off[i])
				pools[npools++] = weft_cidr_str(&w->vxpools[i], names[i], sizeof(names[i]));
		if (npools) {
			struct weft_ipam_request rq = {
				.handle = handle,
				.node = d->node,
				.family = AF_INET,
				.count = 1,
				.pools = pools,
				.npools = npools,
				.by_selector = true,
				.attrs = {.node = (char *)d->node},
			};

			r = weft_ipam_auto_assign(f->ipam, &rq, &keep);
			if (r == -ENOENT) {
				/* No VXLAN pool selects this node (or one went
				 * meanwhile): no tunnel address, and no failure. */
				if (!f->no_tunnel || !streq(f->no_tunnel, weft_ipam_errmsg(f->ipam)))
					log_info("fabric: no VXLAN tunnel address: %s; peers reach this node's "
						 "underlay address instead",
						 weft_ipam_errmsg(f->ipam));
				free(f->no_tunnel);
				f->no_tunnel = wstrdup(weft_ipam_errmsg(f->ipam));
				keep = (struct weft_ip){0};
			} else if (r < 0) {
				log_warn_errno(r, "fabric: no VXLAN tunnel address: %s; peers reach this node's underlay "
						  "address instead",
					       weft_ipam_errmsg(f->ipam));
				keep = (struct weft_ip){0};
				failed = failed ? failed : r;
			} else {
				free(f->no_tunnel);
				f->no_tunnel = NULL;
				log_info("fabric: VXLAN tunnel address %s allocated", weft_ip_str(&keep, is, sizeof(is)));
			}
		}
	}
	if (!weft_ip_eq(&keep, &w->node_tunnel)) {
		r = weftd_node_edit(f->d, false, tunnel_edit, &keep);
		if (r < 0)
			failed = failed ? failed : r;
		else if (r > 0)
			log_info("fabric: Node %s: ipv4VXLANTunnelAddr %s", d->node,
				 keep.family ? weft_ip_str(&keep, is, sizeof(is)) : "removed");
	}
	w->tunnel = keep;
	if (w->peers_text && keep.family) {
		char *t = wasprintf("%s tunnel %s", w->peers_text, weft_ip_str(&keep, is, sizeof(is)));

		free(w->peers_text);
		w->peers_text = t;
	}
	return failed;
}

/* --- blackholes -------------------------------------------------------------------- */

struct route_vec {
	struct weft_route *v;
	size_t n;
};

static int route_vec_cb(const struct weft_route *rt, void *data)
{
	struct route_vec *rv = data;

	if (rt->protocol != WEFT_DP_RTPROTO || rt->type != RTN_BLACKHOLE ||
	    (rt->table && rt->table != RT_TABLE_MAIN))
		return 0;
	rv->v = wrealloc(rv->v, (rv->n + 1) * sizeof(*rv->v));
	rv->v[rv->n++] = *rt;
	return 0;
}

/* Bring the proto-WEFT_DP_RTPROTO blackholes in line with w. A blackhole
 * the kernel refuses to add or delete is logged and the others are done
 * all the same. Returns the number of drift repairs, or a negative errno
 * (the first failure's, after all the others were tried). */
static int sync_blackholes(struct weftd_fabric *f, const struct desired *w)
{
	_cleanup_nl_ struct weft_nl *nl = NULL;
	struct route_vec have = {0};
	char cs[WEFT_CIDR_STRLEN];
	int drift = 0, failed = 0, r;

	r = weft_nl_open(NETLINK_ROUTE, 0, &nl);
	if (r < 0)
		return r;
	/* A dump that raced with a change is taken again (as dp_route_list). */
	for (int i = 0; i < 5; i++) {
		free(have.v);
		have = (struct route_vec){0};
		r = weft_nl_route_dump(nl, AF_UNSPEC, WEFT_DP_RTPROTO, route_vec_cb, &have);
		if (r != -EAGAIN && r != -EINTR)
			break;
	}
	if (r < 0) {
		log_warn_errno(r, "fabric: listing the blackholes: %m");
		goto out;
	}
	for (size_t k = 0; k < have.n; k++) {
		const struct weft_route *rt = &have.v[k];
		bool was = cidr_in(&rt->dst, f->prev_bh, f->nprev_bh);

		if (cidr_in(&rt->dst, w->blackholes, w->nblackholes))
			continue;
		r = weft_nl_route_del(nl, rt);
		if (r < 0 && r != -ESRCH) {
			log_warn_errno(r, "fabric: deleting blackhole %s: %m", weft_cidr_str(&rt->dst, cs, sizeof(cs)));
			failed = failed ? failed : r;
			continue;
		}
		if (f->synced && !was) {
			drift++;
			log_info("fabric: drift: stray blackhole %s (proto %d) removed", weft_cidr_str(&rt->dst, cs, sizeof(cs)),
				 WEFT_DP_RTPROTO);
		} else {
			log_info("fabric: blackhole %s removed (the block is no longer affine to this node)",
				 weft_cidr_str(&rt->dst, cs, sizeof(cs)));
		}
	}
	for (size_t i = 0; i < w->nblackholes; i++) {
		bool present = false, was = cidr_in(&w->blackholes[i], f->prev_bh, f->nprev_bh);
		struct weft_route rt = {
			.dst = w->blackholes[i],
			.protocol = WEFT_DP_RTPROTO,
			.type = RTN_BLACKHOLE,
		};

		for (size_t k = 0; k < have.n && !present; k++)
			present = cidr_eq(&have.v[k].dst, &rt.dst);
		if (present)
			continue;
		/* EXCL: a route of another protocol with the same key is not
		 * ours to replace. */
		r = weft_nl_route_add(nl, &rt);
		if (r == -EEXIST) {
			log_warn("fabric: blackhole %s: another route with the same prefix and metric is in the way; "
				 "left alone",
				 weft_cidr_str(&rt.dst, cs, sizeof(cs)));
			continue;
		}
		if (r < 0) {
			log_warn_errno(r, "fabric: adding blackhole %s: %m", weft_cidr_str(&rt.dst, cs, sizeof(cs)));
			failed = failed ? failed : r;
			continue;
		}
		if (f->synced && was) {
			drift++;
			log_info("fabric: drift: blackhole %s was missing: restored", weft_cidr_str(&rt.dst, cs, sizeof(cs)));
		} else {
			log_info("fabric: blackhole %s added (block affine to this node)",
				 weft_cidr_str(&rt.dst, cs, sizeof(cs)));
		}
	}
	r = failed ? failed : drift;
out:
	free(have.v);
	return r;
}

/* --- VXLAN ------------------------------------------------------------------------------ */

/* Returns the number of drift repairs, or a negative errno. */
static int sync_vxlan(struct weftd_fabric *f, const struct desired *w)
{
	_cleanup_free_ char *err = NULL;
	char parent[IFNAMSIZ];
	bool recreated = false;
	int drift = 0, r;

	if (!w->vxlan) {
		r = weft_dp_vxlan_remove();
		if (r < 0)
			return log_warn_errno(r, "fabric: removing %s: %m", WEFT_DP_VXLAN_IFNAME);
		if (r > 0) {
			if (f->synced && !f->prev_peers) {
				drift++;
				log_info("fabric: drift: stray %s removed (no pool uses VXLAN)", WEFT_DP_VXLAN_IFNAME);
			} else {
				log_info("fabric: %s removed (no pool uses VXLAN)", WEFT_DP_VXLAN_IFNAME);
			}
		}
		return drift;
	}
	underlay_ifname(&f->d->underlay.ip, parent);
	struct weft_dp_vxlan_dev dev = {
		.node_name = f->d->node,
		.local = f->d->underlay.ip,
		.parent = parent[0] ? parent : NULL,
		/* Nothing found, perhaps for a moment: no reason to recreate
		 * the device without a parent. */
		.keep_parent = !parent[0],
		.tunnel_addr = w->tunnel,
	};
	r = weft_dp_vxlan_ensure(&dev, &err);
	if (r < 0)
		return log_warn_errno(r, "fabric: %s", err ? err : "VXLAN device");
	if (r == 1) {
		if (f->synced && f->prev_peers) {
			drift++;
			recreated = true;
			log_info("fabric: drift: %s was missing or changed: recreated", WEFT_DP_VXLAN_IFNAME);
		} else {
			char is[WEFT_IP_STRLEN];

			log_info("fabric: %s created (local %s%s%s)", WEFT_DP_VXLAN_IFNAME,
				 weft_ip_str(&f->d->underlay.ip, is, sizeof(is)), parent[0] ? ", parent " : "", parent);
		}
	}
	free(err);
	err = NULL;
	r = weft_dp_vxlan_set_peers(w->peers, w->npeers, &err);
	if (r < 0)
		return log_warn_errno(r, "fabric: VXLAN peers: %s", err ? err : "failed");
	if (r > 0) {
		/* A device recreated by the repair above gets all its entries
		 * back: that is one repair, counted already. */
		if (recreated) {
			log_info("fabric: %d VXLAN FDB/neighbour/route entr%s restored on the recreated %s", r,
				 r == 1 ? "y" : "ies", WEFT_DP_VXLAN_IFNAME);
		} else if (f->synced && f->prev_peers && streq(f->prev_peers, w->peers_text)) {
			drift += r;
			log_info("fabric: drift: %d VXLAN FDB/neighbour/route entr%s repaired on %s", r, r == 1 ? "y" : "ies",
				 WEFT_DP_VXLAN_IFNAME);
		} else {
			log_info("fabric: VXLAN: %zu peer(s), %zu route(s); %d kernel change(s)", w->npeers, w->nroutes, r);
		}
	}
	return drift;
}

/* --- NAT ---------------------------------------------------------------------------------- */

struct fp_ctx {
	struct weft_buf *b;
};

static int fp_rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct fp_ctx *c = data;
	struct nftnl_rule *r = nftnl_rule_alloc();
	char buf[4096];

	if (!r)
		abort();
	if (nftnl_rule_nlmsg_parse(nlh, r) == 0) {
		/* Without the handle: a table set again with the same
		 * content reads the same. */
		nftnl_rule_unset(r, NFTNL_RULE_HANDLE);
		nftnl_rule_unset(r, NFTNL_RULE_POSITION);
		nftnl_rule_snprintf(buf, sizeof(buf), r, NFTNL_OUTPUT_DEFAULT, 0);
		weft_buf_printf(c->b, "rule %s\n", buf);
	}
	nftnl_rule_free(r);
	return MNL_CB_OK;
}

static int fp_elem_cb(struct nftnl_set_elem *e, void *data)
{
	struct fp_ctx *c = data;
	uint32_t len = 0, flags = 0;
	const uint8_t *key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);

	if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS))
		flags = nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS);
	weft_buf_printf(c->b, " ");
	for (uint32_t i = 0; key && i < len; i++)
		weft_buf_printf(c->b, "%02x", key[i]);
	weft_buf_printf(c->b, "/%x", flags);
	return 0;
}

static int fp_set_cb(const struct nlmsghdr *nlh, void *data)
{
	struct fp_ctx *c = data;
	struct nftnl_set *s = nftnl_set_alloc();

	if (!s)
		abort();
	if (nftnl_set_elems_nlmsg_parse(nlh, s) == 0)
		(void)nftnl_set_elem_foreach(s, fp_elem_cb, c);
	nftnl_set_free(s);
	return MNL_CB_OK;
}

/* One nfnetlink dump request, its replies through cb. Returns 0, -ENOENT
 * (no such table or set) or a negative errno. */
static int nft_dump(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t portid = mnl_socket_get_portid(nl), seq = nlh->nlmsg_seq;
	ssize_t n;
	int r;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	while ((n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
		if (r == MNL_CB_STOP)
			return 0;
		if (r < 0)
			return -errno;
	}
	return n < 0 ? -errno : 0;
}

/* A text that changes whenever the content of weft's NAT table does: its
 * rule(s) without handles and the elements of its two sets; "absent"
 * without the table. malloc'ed in *out. Returns 0 or a negative errno. */
static int nat_fingerprint(char **out)
{
	static const char *const sets[] = {"pools", "allpools"};
	struct mnl_socket *nl = weft_nl_netfilter_open();
	uint64_t buf[MNL_SOCKET_BUFFER_SIZE / 8];
	struct weft_buf b = {0};
	struct fp_ctx c = {.b = &b};
	uint32_t seq = (uint32_t)time(NULL);
	struct nlmsghdr *nlh;
	int r;

	if (!nl)
		return -errno;
	struct nftnl_rule *rule = nftnl_rule_alloc();
	if (!rule)
		abort();
	nftnl_rule_set_str(rule, NFTNL_RULE_TABLE, WEFT_DP_NAT_TABLE);
	nlh = nftnl_nlmsg_build_hdr((char *)buf, NFT_MSG_GETRULE, NFPROTO_IPV4, NLM_F_DUMP, ++seq);
	nftnl_rule_nlmsg_build_payload(nlh, rule);
	nftnl_rule_free(rule);
	r = nft_dump(nl, nlh, fp_rule_cb, &c);
	if (r == -ENOENT) {
		weft_buf_free(&b);
		*out = wstrdup("absent");
		r = 0;
		goto out;
	}
	if (r < 0)
		goto out;
	for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
		struct nftnl_set *s = nftnl_set_alloc();

		if (!s)
			abort();
		nftnl_set_set_str(s, NFTNL_SET_TABLE, WEFT_DP_NAT_TABLE);
		nftnl_set_set_str(s, NFTNL_SET_NAME, sets[i]);
		nlh = nftnl_nlmsg_build_hdr((char *)buf, NFT_MSG_GETSETELEM, NFPROTO_IPV4, NLM_F_DUMP, ++seq);
		nftnl_set_elems_nlmsg_build_payload(nlh, s);
		nftnl_set_free(s);
		weft_buf_printf(&b, "set %s:", sets[i]);
		r = nft_dump(nl, nlh, fp_set_cb, &c);
		if (r == -ENOENT)
			weft_buf_printf(&b, " (none)");
		else if (r < 0)
			goto out;
		weft_buf_printf(&b, "\n");
	}
	*out = weft_buf_steal(&b);
	r = 0;
out:
	weft_buf_free(&b);
	mnl_socket_close(nl);
	return r;
}

/* Returns the number of drift repairs, or a negative errno. */
static int sync_nat(struct weftd_fabric *f, const struct desired *w)
{
	_cleanup_free_ char *fp = NULL, *err = NULL;
	bool changed = !f->prev_nat || !streq(f->prev_nat, w->nat_text);
	int r;

	r = nat_fingerprint(&fp);
	if (r < 0)
		log_debug("fabric: reading the NAT table: %s", strerror(-r));
	/* Unchanged input and a table we cannot read (or could not read
	 * after setting it): nothing to compare, so nothing is repaired. */
	if (!changed && (!fp || !f->nat_fp || streq(fp, f->nat_fp)))
		return 0;
	r = weft_dp_nat_set(w->nat, w->nnat, w->all, w->nall, &err);
	if (r < 0)
		return log_warn_errno(r, "fabric: NAT table: %s", err ? err : "failed");
	free(f->nat_fp);
	f->nat_fp = NULL;
	(void)nat_fingerprint(&f->nat_fp);
	if (!changed) {
		log_info("fabric: drift: NAT table %s differed from what weftd set: replaced", WEFT_DP_NAT_TABLE);
		free(f->prev_nat);
		f->prev_nat = wstrdup(w->nat_text);
		return 1;
	}
	if (w->nnat || f->prev_nat)
		log_info("fabric: NAT table %s: %s (%zu natOutgoing pool(s))", WEFT_DP_NAT_TABLE,
			 w->nnat ? "set" : "removed", w->nnat);
	free(f->prev_nat);
	f->prev_nat = wstrdup(w->nat_text);
	return 0;
}

/* --- the sync ------------------------------------------------------------------------------ */

/* A sync failed: try again after 1 s, doubling up to the resync interval
 * while it goes on failing (a failure that lasts, such as a route the
 * kernel refuses, does not cost a full sync every second). */
/* A sync failed: counted, and tried again after a backoff. */
static void retry_later(struct weftd_fabric *f)
{
	weftd_metric_add(f->d->metrics, "weft_fabric_sync_failures_total", NULL, 1);
	(void)weft_source_timer_set(f->retry_timer, weft_now_ns() + f->retry_ns, 0);
	f->retry_ns = f->retry_ns * 2 > f->resync_ns ? f->resync_ns : f->retry_ns * 2;
}

static void fabric_metrics_declare(struct weftd_metrics *m)
{
	weftd_metric_declare(m, "weft_drift_repairs_total", "counter",
			     "Kernel state found differing from what weftd had programmed, and repaired, by kind "
			     "(blackhole, vxlan, nat).");
	weftd_metric_declare(m, "weft_routes_programmed", "gauge",
			     "Routes weftd's fabric keeps in the kernel, by kind: blackhole (one per affine block), "
			     "vxlan (remote blocks via weft.vxlan).");
	weftd_metric_declare(m, "weft_fabric_sync_failures_total", "counter",
			     "Syncs of the node's routes, VXLAN and NAT that failed (each is tried again after a "
			     "backoff; the log says why).");
	weftd_metric_declare(m, "weft_resync_duration_seconds", "gauge",
			     "How long the last full sync of the node's routes, VXLAN and NAT took.");
	weftd_metric_declare(m, "weft_last_resync_timestamp_seconds", "gauge",
			     "When the last full sync of the node's routes, VXLAN and NAT finished (Unix time).");
	weftd_metric_declare(m, "weft_store_events_total", "counter",
			     "Store watch events that concerned a subsystem of weftd.");
	/* Every sample exists from the start: a scrape sees zeros, not gaps. */
	weftd_metric_add(m, "weft_drift_repairs_total", "kind=\"blackhole\"", 0);
	weftd_metric_add(m, "weft_drift_repairs_total", "kind=\"vxlan\"", 0);
	weftd_metric_add(m, "weft_drift_repairs_total", "kind=\"nat\"", 0);
	weftd_metric_set(m, "weft_routes_programmed", "kind=\"blackhole\"", 0);
	weftd_metric_set(m, "weft_routes_programmed", "kind=\"vxlan\"", 0);
	weftd_metric_add(m, "weft_store_events_total", "subsystem=\"fabric\"", 0);
	weftd_metric_add(m, "weft_fabric_sync_failures_total", NULL, 0);
}

static int fabric_sync(struct weftd_fabric *f)
{
	struct weftd_metrics *m = f->d->metrics;
	struct weft_bgp_snapshot snap = {0};
	struct weft_ipam_allocation *allocs = NULL;
	size_t nallocs = 0;
	struct desired w = {0};
	_cleanup_free_ char *err = NULL;
	int64_t start = weft_now_ns();
	struct timespec ts;
	bool failed = false;
	int r;

	r = weft_bgp_snapshot_load(f->d->store, &snap, &err);
	if (r < 0) {
		log_warn_errno(r, "fabric: reading the store: %s", err ? err : strerror(-r));
		retry_later(f);
		return r;
	}
	/* The allocations for the borrowed addresses (a second read: what
	 * changed in between is the next sync's). */
	r = weft_ipam_list_allocations(f->ipam, &allocs, &nallocs);
	if (r < 0) {
		log_warn_errno(r, "fabric: reading the IPAM allocations: %s", weft_ipam_errmsg(f->ipam));
		weft_bgp_snapshot_clear(&snap);
		retry_later(f);
		return r;
	}
	desired_build(f, &snap, allocs, nallocs, &w);
	if (tunnel_sync(f, &w, allocs, nallocs) < 0)
		failed = true;
	weft_ipam_allocations_free(allocs, nallocs);

	/* VXLAN first: a block that moved here may still have its VXLAN
	 * route, which would keep the blackhole (NLM_F_EXCL) out; one that
	 * moved away has its blackhole replaced by the VXLAN route (both are
	 * ours), so neither direction leaves the block without a route. */
	r = sync_vxlan(f, &w);
	if (r < 0)
		failed = true;
	else
		weftd_metric_add(m, "weft_drift_repairs_total", "kind=\"vxlan\"", r);
	r = sync_blackholes(f, &w);
	if (r < 0)
		failed = true;
	else
		weftd_metric_add(m, "weft_drift_repairs_total", "kind=\"blackhole\"", r);
	r = sync_nat(f, &w);
	if (r < 0)
		failed = true;
	else
		weftd_metric_add(m, "weft_drift_repairs_total", "kind=\"nat\"", r);

	weftd_metric_set(m, "weft_routes_programmed", "kind=\"blackhole\"", (double)w.nblackholes);
	weftd_metric_set(m, "weft_routes_programmed", "kind=\"vxlan\"", w.vxlan ? (double)w.nroutes : 0);
	weftd_metric_set(m, "weft_resync_duration_seconds", NULL, (double)(weft_now_ns() - start) / 1e9);
	clock_gettime(CLOCK_REALTIME, &ts);
	weftd_metric_set(m, "weft_last_resync_timestamp_seconds", NULL, (double)ts.tv_sec + ts.tv_nsec / 1e9);

	/* Remember what this sync asked for: the next one tells drift from
	 * change by it. After a failure the kernel may lag behind; the retry
	 * repairs it and counts it as drift, which it then is not quite, but
	 * the log says why the first attempt failed. */
	free(f->prev_bh);
	f->prev_bh = w.nblackholes ? wmemdup(w.blackholes, w.nblackholes * sizeof(*w.blackholes)) : NULL;
	f->nprev_bh = w.nblackholes;
	free(f->prev_peers);
	f->prev_peers = w.vxlan ? TAKE_PTR(w.peers_text) : NULL;
	f->synced = true;
	desired_clear(&w);
	weft_bgp_snapshot_clear(&snap);
	if (failed) {
		retry_later(f);
		return -EAGAIN;
	}
	f->retry_ns = FABRIC_RETRY_NS;
	return 0;
}

static int on_sync(struct weft_source *s, void *userdata)
{
	(void)s;
	(void)fabric_sync(userdata);
	return 0;
}

static int on_timer_sync(struct weft_source *s, int64_t now_ns, void *userdata)
{
	struct weftd_fabric *f = userdata;

	(void)s;
	(void)now_ns;
	return weft_source_defer_arm(f->sync_src);
}

static bool relevant_key(const char *key)
{
	static const char *const prefixes[] = {
		"/weft/v1/nodes/",
		"/weft/v1/ippools/",
		WEFT_IPAM_BLOCKS_PREFIX,
		WEFT_IPAM_AFFINITIES_PREFIX,
	};

	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (startswith(key, prefixes[i]))
			return true;
	return false;
}

static void on_watch_event(const struct weft_event *ev, void *userdata)
{
	struct weftd_fabric *f = userdata;

	if (relevant_key(ev->kv.key)) {
		weftd_metric_add(f->d->metrics, "weft_store_events_total", "subsystem=\"fabric\"", 1);
		/* A block's allocations are the fabric's business only when
		 * they borrow (VXLAN routes them one by one). */
		if (weftd_watch_block_event(f->watch, ev))
			(void)weft_source_defer_arm(f->sync_src);
	}
}

/* A new watch after a dead one: a full sync for what happened in between. */
static void on_watch_reset(void *userdata)
{
	struct weftd_fabric *f = userdata;

	(void)weft_source_defer_arm(f->sync_src);
}

static int on_retry(struct weft_source *s, int64_t now_ns, void *userdata)
{
	struct weftd_fabric *f = userdata;

	(void)s;
	(void)now_ns;
	return weft_source_defer_arm(f->sync_src);
}

int weftd_fabric_start(struct weftd *d, struct weft_loop *loop, struct weftd_fabric **out)
{
	struct weftd_fabric *f = wmalloc(sizeof(*f));
	const char *env = getenv("WEFT_FABRIC_RESYNC_MS");
	int64_t ms = WEFTD_FABRIC_RESYNC_MS;
	int r;

	memset(f, 0, sizeof(*f));
	f->d = d;
	f->loop = loop;
	if (env && weft_parse_int64(env, 10, 24LL * 3600 * 1000, &ms) < 0) {
		log_warn("fabric: WEFT_FABRIC_RESYNC_MS=\"%s\" is not 10..86400000: using %d", env,
			 WEFTD_FABRIC_RESYNC_MS);
		ms = WEFTD_FABRIC_RESYNC_MS;
	}
	f->resync_ns = ms * 1000000;
	f->retry_ns = FABRIC_RETRY_NS;
	fabric_metrics_declare(d->metrics);
	r = weft_ipam_new(d->store, &f->ipam);
	if (r < 0)
		goto fail;

	if ((r = weft_loop_add_defer(loop, on_sync, f, &f->sync_src)) < 0 ||
	    (r = weft_loop_add_timer(loop, f->resync_ns, f->resync_ns, on_timer_sync, f, &f->resync_timer)) < 0 ||
	    (r = weft_loop_add_timer(loop, FABRIC_RETRY_NS, 0, on_retry, f, &f->retry_timer)) < 0)
		goto fail;
	(void)weft_source_timer_stop(f->retry_timer);
	weft_source_set_description(f->sync_src, "fabric sync");
	weft_source_set_description(f->resync_timer, "fabric resync");
	/* The watch first, then the first sync: no change between the two is
	 * lost. */
	r = weftd_watch_open(d, loop, "fabric", on_watch_event, on_watch_reset, f, &f->watch);
	if (r < 0)
		goto fail;
	log_info("fabric: node %s: blackholes, VXLAN and NAT from the store; full resync every %lld ms", d->node,
		 (long long)ms);
	/* The first sync now: the node's routes are in place before weftd
	 * reports itself ready. */
	(void)fabric_sync(f);
	*out = f;
	return 0;
fail:
	weftd_fabric_stop(f);
	return r;
}

void weftd_fabric_stop(struct weftd_fabric *f)
{
	if (!f)
		return;
	weft_source_free(f->retry_timer);
	weft_source_free(f->resync_timer);
	weftd_watch_close(f->watch);
	weft_source_free(f->sync_src);
	weft_ipam_free(f->ipam);
	free(f->prev_bh);
	free(f->prev_peers);
	free(f->prev_nat);
	free(f->nat_fp);
	free(f->no_tunnel);
	free(f);
}
