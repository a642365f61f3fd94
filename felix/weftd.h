/* weftd.h - the pieces of weftd (internal to felix/).
 *
 *   api.c             the local API server: a unix stream socket driven by
 *                     the loop, one JSON request per connection (api.h).
 *   weftd-cni.c       the CNI commands the plugins forward (ADD, DEL,
 *                     CHECK, GC, STATUS) for `weft` and `weft-ipam`.
 *   weftd-endpoint.c  Endpoint records: names, building, reading.
 *   weftd-reconcile.c start-up reconciliation of store and kernel.
 *   weftd.c           main: flags, store, loop, signals.
 *
 * Return convention as everywhere: 0 or a negative errno.
 */
#ifndef WEFT_WEFTD_H
#define WEFT_WEFTD_H

#include "ipam/ipam.h"
#include "lib/util.h"
#include "store/store.h"

#include <cjson/cJSON.h>

/* Annotations weftd writes on every Endpoint it creates. */
#define WEFTD_ANN_CNI_NETWORK "weft.io/cni-network" /* the CNI config's name */
#define WEFTD_ANN_NETNS "weft.io/netns"             /* CNI_NETNS at ADD */
#define WEFTD_ANN_MODE "weft.io/mode"               /* routed | macvlan */
#define WEFTD_LABEL_NAMESPACE "weft.io/namespace"
#define WEFTD_LABEL_POD "weft.io/pod"

struct weftd {
	const char *node;
	const char *store_url;
	const char *run_dir;
	struct weft_store *store;
	struct weft_ipam *ipam;
};

/* One CNI request as it arrived on the API socket. */
struct weftd_cni_request {
	const char *command; /* "ADD", ... */
	const char *plugin;  /* "weft" or "weft-ipam" */
	char **envp;         /* NULL-terminated "NAME=value" */
	const char *config;  /* raw stdin text */
	size_t config_len;
};

/* Serve one CNI request. Always fills *output (malloc'ed: the exact text
 * the plugin prints, possibly "") and returns the plugin's exit code
 * (0 or 1). */
int weftd_cni_handle(struct weftd *d, const struct weftd_cni_request *req, char **output);

/* Endpoint records. */

/* The deterministic Endpoint name for (node, container id, ifname):
 * "<node>.<containerid>.<ifname>", or, when that exceeds the 253
 * characters a name may have, "<node>.<16 hex of a hash>.<ifname>"
 * (shortened further if the node name is very long). malloc'ed. */
char *weftd_endpoint_name(const char *node, const char *container_id, const char *ifname);
/* The store key of that Endpoint. malloc'ed. */
char *weftd_endpoint_key(const char *node, const char *container_id, const char *ifname);

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

/* Start-up reconciliation (weftd-reconcile.c): Endpoints of this node whose
 * kernel objects are gone are released and deleted, weft-owned kernel
 * objects without an Endpoint are swept. Logs what it reclaims. Returns 0
 * or a negative errno (the daemon goes on either way). */
int weftd_reconcile(struct weftd *d);

/* Release the IPAM handle of an attachment, delete its kernel objects and
 * its Endpoint record (all idempotent). Used by DEL, GC and
 * reconciliation. netns may be NULL. *errmsg gets a malloc'ed message on
 * failure. */
int weftd_teardown(struct weftd *d, const char *container_id, const char *ifname, const char *netns,
		   const struct weftd_endpoint *ep, bool macvlan, char **errmsg);

#endif
