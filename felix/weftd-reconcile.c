/* weftd-reconcile.c - reconciliation of the store with the kernel.
 *
 * While weftd was down (or up but not answering: a full API socket, a
 * timeout), the plugins may have torn attachments down on their own (DEL
 * does best-effort local cleanup then), and a crash may have left kernel
 * objects without records. At start-up, before serving requests, both
 * steps run; every WEFTD_RECONCILE_MS after it step 1 alone (a veth
 * without a record may be an ADD's in progress only at start-up, when
 * nothing is in progress; the periodic run leaves devices alone):
 *
 *  1. every Endpoint of this node whose kernel side is gone (routed: the
 *     host veth, -ENODEV; macvlan: the pod's network namespace, ENOENT)
 *     has its addresses released and its record deleted; a look-up that
 *     fails otherwise keeps the Endpoint (logged);
 *  2. every weft-owned host veth, ifb and route in the node namespace that
 *     no remaining Endpoint claims is swept (weft_dp_sweep()).
 *
 * Addresses held by handles with no Endpoint at all are left alone here:
 * weft-ipam users (other main plugins) have no Endpoint, so only CNI GC,
 * which knows the runtime's valid attachments, may release those.
 */
#include "felix/dataplane.h"
#include "felix/weftd.h"
#include "lib/log.h"
#include "lib/netlink.h"

#include <linux/netlink.h>
#include <sys/stat.h>

int weftd_reconcile(struct weftd *d, bool sweep)
{
	struct weftd_endpoint *eps = NULL;
	const char **keep = NULL;
	struct weft_nl *nl = NULL;
	_cleanup_free_ char *swerr = NULL;
	size_t n = 0, nkeep = 0, reclaimed = 0;
	int r;

	r = weftd_endpoint_list_node(d, &eps, &n);
	if (r < 0)
		return log_error_errno(r, "reconcile: cannot list endpoints: %s", weft_store_errmsg(d->store));
	r = weft_nl_open(NETLINK_ROUTE, 0, &nl);
	if (r < 0) {
		weftd_endpoints_free(eps, n);
		return log_error_errno(r, "reconcile: netlink: %m");
	}
	keep = wcalloc(n + 1, sizeof(*keep));
	for (size_t i = 0; i < n; i++) {
		struct weftd_endpoint *e = &eps[i];
		bool macvlan = e->mode && streq(e->mode, "macvlan");
		bool gone;
		int idx;

		if (!e->container_id || !e->ifname)
			continue;
		if (macvlan) {
			struct stat st;
			gone = e->netns && stat(e->netns, &st) < 0 && errno == ENOENT;
		} else if (!e->host_ifname) {
			gone = true;
		} else {
			/* Only "no such device" means gone: any other error
			 * (-ENOBUFS, -ENOMEM, ...) says nothing about the veth,
			 * and releasing a live pod's addresses is worse than
			 * keeping a dead one's until the next start or CNI GC. */
			int q = weft_nl_link_index(nl, e->host_ifname, &idx);

			gone = q == -ENODEV;
			if (q < 0 && !gone)
				log_warn_errno(q, "reconcile: endpoint %s: looking up its host veth %s: %m; kept", e->name,
					       e->host_ifname);
		}
		if (!gone) {
			if (e->host_ifname)
				keep[nkeep++] = e->host_ifname;
			continue;
		}
		_cleanup_free_ char *msg = NULL;
		r = weftd_teardown(d, e->container_id, e->ifname, NULL, e, macvlan, &msg);
		if (r < 0) {
			log_warn("reconcile: endpoint %s: %s", e->name, msg);
			if (e->host_ifname)
				keep[nkeep++] = e->host_ifname;
			continue;
		}
		log_info("reconcile: endpoint %s (%s:%s, %s) is gone from the kernel: addresses released, record "
			 "deleted",
			 e->name, e->container_id, e->ifname, e->n_ip_networks ? e->ip_networks[0] : "no address");
		reclaimed++;
	}
	weft_nl_close(nl);
	if (sweep) {
		r = weft_dp_sweep(keep, nkeep, &swerr);
		if (r < 0)
			log_warn("reconcile: sweep: %s", swerr ? swerr : strerror(-r));
		else if (r > 0)
			log_info("reconcile: swept %d weft-owned kernel object(s) without an endpoint", r);
	}
	if (sweep || reclaimed)
		log_info("reconcile: %zu endpoint(s) of node %s kept, %zu reclaimed", nkeep, d->node, reclaimed);
	free(keep);
	weftd_endpoints_free(eps, n);
	return 0;
}
