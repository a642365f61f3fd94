/* weftd.h - the pieces of weftd (internal to felix/).
 *
 *   api.c             the local API server: a unix stream socket driven by
 *                     the loop, one JSON request per connection (api.h).
 *   weftd-cni.c       the CNI commands the plugins forward (ADD, DEL,
 *                     CHECK, GC, STATUS) for `weft` and `weft-ipam`.
 *   weftd-endpoint.c  Endpoint records: names, building, reading.
 *   weftd-reconcile.c start-up reconciliation of store and kernel.
 *   weftd-teardown.c  the worker thread that deletes the devices of
 *                     DELeted routed endpoints off the request path.
 *   weftd-bgp.c       the BGP agent: underlay address, Node resource,
 *                     BIRD as a supervised child, store watch -> render
 *                     -> install -> configure.
 *   weftd-fabric.c    the node's routes and encapsulation: a blackhole
 *                     route per affine block, VXLAN device and per-peer
 *                     entries for VXLAN pools, the natOutgoing table;
 *                     periodic resync with drift repair counted.
 *   weftd-status.c    health and status: the Node's status in the store,
 *                     a local HTTP endpoint with /healthz and /metrics.
 *   weftd-acl.c       ACLs: store watch -> acl/ compile -> backend apply;
 *                     CNI ADD waits for its endpoint to be programmed.
 *   weftd-watch.c     the store watch each half keeps, re-opened when it
 *                     dies (then the half resyncs).
 *   metrics.c         the counters and gauges /metrics shows (metrics.h).
 *   weftd.c           main: flags, store, loop, signals.
 *
 * Return convention as everywhere: 0 or a negative errno.
 */
#ifndef WEFT_WEFTD_H
#define WEFT_WEFTD_H

#include "ipam/ipam.h"
#include "lib/loop.h"
#include "lib/util.h"
#include "store/store.h"

#include <cjson/cJSON.h>

/* Annotations weftd writes on every Endpoint it creates. */
#define WEFTD_ANN_CNI_NETWORK "weft.io/cni-network" /* the CNI config's name */
#define WEFTD_ANN_NETNS "weft.io/netns"             /* CNI_NETNS at ADD */
#define WEFTD_ANN_MODE "weft.io/mode"               /* routed | macvlan */
#define WEFTD_LABEL_NAMESPACE "weft.io/namespace"
#define WEFTD_LABEL_POD "weft.io/pod"

struct weftd_td;
struct weftd_api;
struct weftd_bgp;
struct weftd_fabric;
struct weftd_status;
struct weftd_acl;
struct weftd_metrics;

struct weftd {
	const char *node;
	const char *store_url;
	const char *run_dir;
	struct weft_store *store;
	struct weft_ipam *ipam;
	struct weftd_td *td; /* NULL: DEL tears down synchronously */
	struct weftd_api *api;
	struct weftd_metrics *metrics; /* never NULL once main set up */
	struct weftd_bgp *bgp;         /* NULL with --no-bgp */
	struct weftd_fabric *fabric;
	struct weftd_acl *acl;         /* NULL: ACLs off (--acl none) */
	/* The node's underlay address (--ip or detected); have_underlay false
	 * with --no-bgp and no --ip. */
	struct weft_cidr underlay;
	bool have_underlay;
	/* weftd registered its Node at start-up (not --no-bgp) with these;
	 * a store found replaced under weftd gets it again on reopening. */
	bool node_registered;
	int64_t reg_as_number;
	const char *reg_rr_cluster_id;
};

/* One CNI request as it arrived on the API socket. */
struct weftd_cni_request {
	const char *command; /* "ADD", ... */
	const char *plugin;  /* "weft" or "weft-ipam" */
	char **envp;         /* NULL-terminated "NAME=value" */
	const char *config;  /* raw stdin text */
	size_t config_len;
	/* The request may be put off (WEFTD_CNI_DEFER) while a queued
	 * teardown of the same devices is pending; false once the bound
	 * (WEFTD_TD_WAIT_MS) is over, and then it fails with code 11. */
	bool may_defer;
};

#define WEFTD_CNI_DEFER 2

/* Serve one CNI request. Normally fills *output (malloc'ed: the exact text
 * the plugin prints, possibly "") and returns the plugin's exit code
 * (0 or 1). With req->may_defer it may instead return WEFTD_CNI_DEFER and
 * leave *output NULL: an ADD or CHECK that must wait for a queued
 * teardown; the caller serves it again once one finished (nothing was
 * changed yet). */
int weftd_cni_handle(struct weftd *d, const struct weftd_cni_request *req, char **output);

/* --- asynchronous teardown (weftd-teardown.c) --- */

#define WEFTD_TD_MAX_QUEUE 4096  /* beyond it, DEL tears down synchronously */
#define WEFTD_TD_WAIT_MS 5000     /* how long an ADD/CHECK waits for one */
#define WEFTD_TD_STOP_MS 10000    /* how long exit waits for the queue */

/* Called on the loop after finished teardowns were collected. */
typedef void (*weftd_td_done_fn)(void *userdata);

/* Start the worker thread and watch its completion eventfd on loop.
 * Returns 0 or a negative errno. */
int weftd_td_start(struct weft_loop *loop, weftd_td_done_fn on_done, void *userdata, struct weftd_td **out);
/* Queue the deletion of the host veth (and ifb) of (container_id,
 * ifname); netns is the pod namespace path if known (a later ADD into the
 * same namespace with the same ifname waits). Returns 0, or -EAGAIN when
 * the queue is full or td is NULL (tear down synchronously then). */
int weftd_td_queue_routed(struct weftd_td *td, const char *container_id, const char *ifname, const char *netns);
/* Is a teardown outstanding that touches host_ifname, or ifname in the
 * namespace netns (either may be NULL)? Returns the queued host ifname
 * (owned by td, valid until the loop runs again) or NULL. A match the
 * worker has not started yet is taken before the jobs nobody waits for. */
const char *weftd_td_busy(struct weftd_td *td, const char *host_ifname, const char *netns, const char *ifname);
/* The number of outstanding teardowns. */
size_t weftd_td_pending(const struct weftd_td *td);
/* Let the worker finish the queue (at most timeout_ms), join it and free
 * td. Returns 0, or -ETIMEDOUT (td is then left to the exiting process).
 * Accepts NULL. */
int weftd_td_stop(struct weftd_td *td, int timeout_ms);

/* Endpoint records. */

/* The deterministic Endpoint name for (node, container id, ifname):
 * "<node>.<containerid>.<ifname>", or, when that exceeds the 253
 * characters a name may have or the id or ifname holds a dot,
 * "<node>.<16 hex of a hash>.<ifname>" (shortened further if the node
 * name is very long). malloc'ed. */
char *weftd_endpoint_name(const char *node, const char *container_id, const char *ifname);
/* The store key of that Endpoint. malloc'ed. */
char *weftd_endpoint_key(const char *node, const char *container_id, const char *ifname);
/* The key a weft before 2026-11-27 used for an attachment whose container
 * id or interface name holds a dot (node.cid.ifname), or NULL when it is
 * the key above: DEL, CHECK and ADD look there when the key above holds
 * nothing, and take the record only if it names the same attachment. */
char *weftd_endpoint_legacy_key(const char *node, const char *container_id, const char *ifname);

/* A decoded Endpoint of interest to weftd. Strings owned. */
struct weftd_endpoint {
	char *key;
	int64_t mod_rev;
	char *name, *node, *container_id, *ifname, *host_ifname, *mac, *network, *netns, *mode;
	char **ip_networks;
	size_t n_ip_networks;
};
void weftd_endpoint_clear(struct weftd_endpoint *e);
void weftd_endpoints_free(struct weftd_endpoint *e, size_t n);

/* Read one Endpoint by key: 0, -ENOENT, -EBADMSG (undecodable; the caller
 * may still delete the key) or a store error. */
int weftd_endpoint_get(struct weftd *d, const char *key, struct weftd_endpoint *out);
/* Every Endpoint of this node (undecodable records are skipped with a
 * warning). Returns the count, *out an array. */
int weftd_endpoint_list_node(struct weftd *d, struct weftd_endpoint **out, size_t *n);

/* Reconciliation (weftd-reconcile.c): Endpoints of this node whose
 * kernel objects are gone are released and deleted, weft-owned kernel
 * objects without an Endpoint are swept. Logs what it reclaims. Returns 0
 * or a negative errno (the daemon goes on either way).
 * sweep: also remove weft-owned kernel objects no Endpoint claims (at
 * start-up only); the periodic run (every WEFTD_RECONCILE_MS,
 * WEFT_RECONCILE_MS in the environment) reclaims gone endpoints alone. */
int weftd_reconcile(struct weftd *d, bool sweep);
#define WEFTD_RECONCILE_MS 60000

/* Release the IPAM handle of an attachment, delete its kernel objects and
 * its Endpoint record (all idempotent). Used by DEL, GC and
 * reconciliation. netns may be NULL. *errmsg gets a malloc'ed message on
 * failure. */
int weftd_teardown(struct weftd *d, const char *container_id, const char *ifname, const char *netns,
		   const struct weftd_endpoint *ep, bool macvlan, char **errmsg);

/* --- BGP (weftd-bgp.c) --- */

/* Auto-detect the node's underlay address: the first global IPv4 address on
 * the interface of the default route, else on the first interface that is
 * up and not a loopback. *why gets a malloc'ed sentence saying which rule
 * chose it. Returns 0 or -ENOENT (nothing suitable). */
int weftd_bgp_detect_address(struct weft_cidr *out, char **why);
/* Detect it by a method as Calico's IP_AUTODETECTION_METHOD: "first-found"
 * (or NULL: the rule above), "interface=GLOB" (the first global IPv4
 * address on an interface whose name matches the shell pattern, e.g.
 * eth*), "cidr=A.B.C.D/N" (the first address inside that prefix).
 * Returns 0, -ENOENT (nothing matches) or -EINVAL (unknown method). */
int weftd_bgp_detect_address_by(const char *method, struct weft_cidr *out, char **why);

/* Switch on IPv4 forwarding (net.ipv4.conf.IF.forwarding) on the interface
 * that holds addr, the node's underlay address: packets other nodes route
 * to this node's pods come in there. Logs a change. Returns 0, -ENOENT
 * when no interface has addr, or a negative errno. */
int weftd_bgp_underlay_forwarding(const struct weft_cidr *addr);

/* Create or update this node's Node resource: spec.bgp.ipv4Address = addr,
 * spec.bgp.asNumber = as_number when > 0, spec.bgp.routeReflectorClusterID
 * = rr_cluster_id unless NULL ("" removes it: no longer a reflector);
 * labels and everything else are kept. Written with a compare-and-swap (re-read on a conflict); no write
 * when nothing changes. Logs what it did. Returns 0 or a negative errno. */
int weftd_bgp_register_node(struct weftd *d, const struct weft_cidr *addr, int64_t as_number,
			    const char *rr_cluster_id);

/* Read-modify-write of this node's Node resource: edit() changes its spec
 * (an object; a Node missing from the store starts as an empty one when
 * create is set, else nothing is written). The result is validated and
 * written with a compare-and-swap, read again on a conflict; an unchanged
 * Node is not written. Returns 0 (unchanged or, without create, missing),
 * 1 (updated), 2 (created) or a negative errno (logged). */
typedef void (*weftd_node_edit_fn)(cJSON *spec, void *data);
int weftd_node_edit(struct weftd *d, bool create, weftd_node_edit_fn edit, void *data);

/* Start the BGP agent on loop: watch the store, render and install
 * RUN_DIR/bird.conf, start BIRD (bird: binary path or name, NULL =
 * "bird" from PATH) as a supervised child and keep its config current.
 * The first config is written before BIRD starts. Returns 0 or a negative
 * errno (the store watch could not be set up). */
int weftd_bgp_start(struct weftd *d, struct weft_loop *loop, const char *bird, struct weftd_bgp **out);
/* Stop BIRD (SIGTERM, SIGKILL after 3 s) and free everything. Accepts
 * NULL. Must be called before the loop is freed. */
void weftd_bgp_stop(struct weftd_bgp *b);

/* BIRD's state for the status reports (weftd-status.c). */
struct weft_bird_proto;
struct weftd_bird_state {
	bool running;         /* a BIRD child is alive */
	pid_t pid;            /* its pid, 0 when not running */
	unsigned restarts;    /* BIRDs started again after one died */
	bool restart_pending; /* BIRD is down and a restart is scheduled */
	bool have_config;     /* a config was installed (else BIRD waits) */
	bool ctl_ok;          /* the control socket answered `show protocols` */
	struct weft_bird_proto *protos; /* its rows (bgpconf.h) when ctl_ok */
	size_t nprotos;
	/* Why BIRD does not follow the store, one line of printable ASCII
	 * naming the stage and the message ("BGP config refused by BIRD:
	 * bird.conf.new:42:1 syntax error, ..."), the same words while the
	 * problem lasts; "" when the last sync succeeded. BIRD keeps the last
	 * config it took meanwhile (fail static). */
	char config_error[400];
};

/* Fill *out with BIRD's state; with timeout_ms > 0 and BIRD running, also
 * ask its control socket for `show protocols` (blocking the loop at most
 * about 2 * timeout_ms). Free with weftd_bird_state_clear(). Returns 0, or
 * -EINVAL when b is NULL (no BGP agent). A control socket that does not
 * answer is not an error: ctl_ok stays false. */
int weftd_bgp_bird_state(struct weftd_bgp *b, int timeout_ms, struct weftd_bird_state *out);
void weftd_bird_state_clear(struct weftd_bird_state *s);

/* Call fn(userdata) on the loop whenever BIRD has been started or has
 * exited, or config_error changed (fn NULL: nobody). One listener; b NULL
 * is ignored. */
typedef void (*weftd_bgp_state_fn)(void *userdata);
void weftd_bgp_set_state_fn(struct weftd_bgp *b, weftd_bgp_state_fn fn, void *userdata);

/* --- the store watch each half keeps (weftd-watch.c) --- */

struct weftd_watch;
/* One event; the callee must not keep or clear it. */
typedef void (*weftd_watch_event_fn)(const struct weft_event *ev, void *userdata);
/* The watch died and a new one is open: events in between may be lost,
 * so the half resyncs everything from the store. */
typedef void (*weftd_watch_reset_fn)(void *userdata);

/* Watch /weft/v1/ from now on, on loop; what names the half in logs
 * ("bgp", "fabric", "acl"). A dead watch is re-opened at once or every
 * second until it can be, then on_reset is called. Returns 0 or a
 * negative errno (the first watch could not be opened). */
int weftd_watch_open(struct weftd *d, struct weft_loop *loop, const char *what, weftd_watch_event_fn on_event,
		     weftd_watch_reset_fn on_reset, void *userdata, struct weftd_watch **out);
void weftd_watch_close(struct weftd_watch *w); /* NULL ok */
/* When the store handle found a different store in its place
 * (weft_store_replaced(): the embedded store's DIR reset under weftd),
 * reopen it: every half's watch dies on its own (-ESTALE) and the half
 * resyncs everything from the new store, as after a compaction. What
 * weftd writes only at start-up (its Node) is not written again.
 * Called before every (re)open of a watch and around the periodic
 * reconciliation. Returns 0 if nothing was replaced, 1 if reopened, or a
 * negative errno (logged; the handle stays replaced and the next call
 * tries again). */
int weftd_store_reopen_if_replaced(struct weftd *d);
/* Deliver the events already pending now, without waiting for the loop
 * (e.g. before a decision that should see the latest store). NULL ok. */
void weftd_watch_poll(struct weftd_watch *w);
/* For the halves that care about IPAM blocks only as routes (BGP, fabric):
 * what an event changed, against what this watch saw last for the block.
 * WEFTD_BLOCK_MOVED: anything but a block record written with the same
 * affinity (another key, a new or deleted block, a changed affinity, a
 * value that cannot be read, the first event for a block after a
 * (re)opened watch); an address allocated or released (every ADD and DEL
 * writes its block) is not. WEFTD_BLOCK_BORROWS: the addresses held by
 * nodes other than the block's affinity changed (also for another key, a
 * deleted or unreadable block, and a new block that has some). 0: neither.
 * A Node record counts as both when anything but its spec.status changed
 * (weftd rewrites the status as BGP sessions come and go, and every node
 * sees those writes: in a mesh of N nodes, a reboot would otherwise make
 * N reloads of N nodes' routing input); any other key counts as both. */
#define WEFTD_BLOCK_MOVED 1u
#define WEFTD_BLOCK_BORROWS 2u
unsigned weftd_watch_block_event(struct weftd_watch *w, const struct weft_event *ev);

/* --- routes, VXLAN, NAT (weftd-fabric.c) --- */

/* Start reconciling this node's blackhole routes (one per affine block,
 * proto WEFT_DP_RTPROTO), VXLAN device/peers for VXLAN pools (Always, or
 * CrossSubnet towards nodes outside the underlay subnet) and the NAT table
 * for natOutgoing pools, from a store watch; full resync at start and
 * every few minutes; drift repairs logged and counted in d->metrics.
 * Returns 0 or a negative errno. */
int weftd_fabric_start(struct weftd *d, struct weft_loop *loop, struct weftd_fabric **out);
/* Stop watching; kernel state stays (a restart must not flap). NULL ok. */
void weftd_fabric_stop(struct weftd_fabric *f);

/* --- health, status, metrics (weftd-status.c) --- */

/* Serve GET /healthz and GET /metrics over HTTP on listen ("ADDR:PORT";
 * a bind failure is logged and status goes on without HTTP) and write the
 * node's status to the store periodically. Returns 0 or a negative errno. */
int weftd_status_start(struct weftd *d, struct weft_loop *loop, const char *listen, struct weftd_status **out);
/* On a clean exit, before the stop: the Node's status says healthy false,
 * reason WEFT_NODE_REASON_STOPPED (one write, if the store ever answered). */
void weftd_status_stopping(struct weftd_status *s); /* NULL ok */
void weftd_status_stop(struct weftd_status *s); /* NULL ok */

/* --- ACLs (weftd-acl.c) --- */

/* backend: "nft" or "ipt". Returns 0 or a negative errno. */
int weftd_acl_start(struct weftd *d, struct weft_loop *loop, const char *backend, struct weftd_acl **out);
void weftd_acl_stop(struct weftd_acl *a); /* NULL ok */
/* A CNI ADD wrote the Endpoint record (key, value, at mod_rev): take it
 * into the ACL copy and program it now, before the plugin is answered.
 * host_ifname: the routed endpoint's host interface, which the compiled
 * program must then contain (NULL for attachments ACLs do not police).
 * Returns 0 (also with a NULL a: ACLs off) or a negative errno with
 * *errmsg malloc'ed. */
int weftd_acl_endpoint_ready(struct weftd_acl *a, const char *key, const char *value, size_t len, int64_t mod_rev,
			     const char *host_ifname, char **errmsg);
/* Create Profile name with the Calico v1 defaults (tag = name, inbound
 * allow from that tag, outbound allow) unless it exists: the default
 * profile of a CNI network that names no profiles. Returns 0 or a
 * negative errno (logged). */
int weftd_default_profile(struct weftd *d, const char *name);

#endif
