/* node-delete.c - what deleting a Node takes with it.
 *
 * As in Calico, removing a Node removes what belongs to it: its Endpoints,
 * the BGPPeers that name it (spec.node), every address IPAM holds for it
 * (its pods', by the attachments of its Endpoints and by the node the
 * allocation records, and its VXLAN tunnel address) and its blocks (empty
 * ones are released; one that still holds addresses other nodes borrowed
 * stays, affine to nobody). Without this a decommissioned node's blocks
 * stay claimed for ever, and its Endpoints keep their addresses in the
 * other nodes' tag and selector sets, so a pod that later gets one of
 * those addresses would inherit the dead pod's memberships.
 *
 * Order, so that a failure part-way leaves something a second run
 * finishes: the Endpoints go first (their addresses leave every set before
 * IPAM may hand them out again), then the BGPPeers, then IPAM; the Node
 * record itself goes last, in the caller's transaction, so that as long as
 * it exists `weftctl delete node NAME` can be run again. Each record is
 * deleted with a compare on the revision it was read at: one that changes
 * meanwhile stops the command, with nothing more deleted.
 *
 * The node's weftd must be stopped first (it would re-register the Node
 * and its Endpoints are its pods). A Node whose weftd reported status in
 * the last NODE_LIVE_SECS seconds is refused unless forced, but for one
 * whose weftd said on its way out that it stopped.
 */
#include "ctl/ctl.h"
#include "ipam/ipam.h"
#include "lib/json.h"

#include <time.h>

/* lastSync is refreshed every 300 s (felix/weftd-status.c); twice that,
 * and some clock skew. */
#define NODE_LIVE_SECS 660

/* Whether the Node's weftd reported status (spec.status.lastSync) in the
 * last NODE_LIVE_SECS seconds, or from the future (another clock); *age
 * gets how long ago. A Node without status, or with a time that does not
 * parse, is not live. */
static bool status_recent(const cJSON *doc, long long *age)
{
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
	cJSON *st = spec ? cJSON_GetObjectItemCaseSensitive(spec, "status") : NULL;
	const char *ls, *reason;
	struct tm tm = {0};
	char *end;

	if (!st || weft_json_get_string(st, "lastSync", &ls) < 0)
		return false;
	/* Stopped cleanly: it said so on the way out. */
	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(st, "healthy")) &&
	    weft_json_get_string(st, "reason", &reason) == 0 && streq(reason, WEFT_NODE_REASON_STOPPED))
		return false;
	end = strptime(ls, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return false;
	*age = (long long)time(NULL) - (long long)timegm(&tm);
	return *age < NODE_LIVE_SECS;
}

/* A string member of spec, or NULL. */
static const char *spec_str(const cJSON *doc, const char *key)
{
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
	const char *s;

	return spec && weft_json_get_string(spec, key, &s) == 0 ? s : NULL;
}

static void strv_add(char ***v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (streq((*v)[i], s))
			return;
	*v = wrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = wstrdup(s);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Delete the records of kind whose spec.node is node, each compared at
 * the revision listed; the IPAM handles of deleted Endpoints are added to
 * *handles. Returns the number deleted, or -1 after a message. */
static int delete_owned(struct ctl *ctl, enum weft_kind kind, const char *node, char ***handles, size_t *nh)
{
	struct weft_kv_list l = {0};
	int n = 0, r;

	r = weft_store_list(ctl->store, weft_kind_prefix(kind), &l);
	if (r < 0) {
		ctl_fail("delete node %s: list %s: %s; the Node is kept", node, weft_kind_prefix(kind),
			 weft_store_errmsg(ctl->store));
		return -1;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct weft_resource res = {0};
		_cleanup_free_ char *err = NULL, *handle = NULL;
		const char *owner, *cid, *ifname;

		if (weft_resource_decode(l.items[i].value, l.items[i].value_len, &res, &err) < 0) {
			/* weftctl store check reports it; whose it is cannot be told. */
			free(err);
			err = NULL;
			continue;
		}
		owner = spec_str(res.doc, "node");
		if (!owner || !streq(owner, node)) {
			weft_resource_clear(&res);
			continue;
		}
		cid = spec_str(res.doc, "containerID");
		ifname = spec_str(res.doc, "ifname");
		if (kind == WEFT_KIND_ENDPOINT && cid && ifname && weft_ipam_handle_id(cid, ifname, &handle) == 0)
			strv_add(handles, nh, handle);
		r = weft_store_delete(ctl->store, l.items[i].key, l.items[i].mod_rev, NULL);
		if (r < 0 && r != -ENOENT) {
			if (r == -ECANCELED)
				ctl_fail("delete node %s: %s %s changed meanwhile; the Node is kept, run the command again",
					 node, weft_kind_info(kind)->name, res.name);
			else
				ctl_write_failed(ctl, r, "more deleted; the Node is kept");
			weft_resource_clear(&res);
			weft_kv_list_clear(&l);
			return -1;
		}
		weft_resource_clear(&res);
		if (r == 0)
			n++;
	}
	weft_kv_list_clear(&l);
	return n;
}

int ctl_node_delete_cascade(struct ctl *ctl, const char *node, bool force, char **summary)
{
	_cleanup_free_ char *key = wasprintf("%s%s", weft_kind_prefix(WEFT_KIND_NODE), node);
	_cleanup_free_ char *tunnel = wasprintf("%s%s", WEFT_IPAM_VXLAN_TUNNEL_HANDLE_PREFIX, node);
	struct weft_ipam_allocation *as = NULL;
	struct weft_ipam *m = NULL;
	struct weft_resource res = {0};
	struct weft_kv kv = {0};
	char **handles = NULL;
	size_t nh = 0, na = 0;
	int neps, npeers, naddrs = 0, nblocks, r, ret = 1;

	r = weft_store_get(ctl->store, key, &kv);
	if (r == -ENOENT)
		return ctl_fail("%s: Node %s not found; nothing deleted", node, node);
	if (r < 0)
		return ctl_fail("read %s: %s", key, weft_store_errmsg(ctl->store));
	r = weft_resource_decode(kv.value, kv.value_len, &res, NULL);
	weft_kv_clear(&kv);
	long long age = 0;
	if (r == 0 && !force && status_recent(res.doc, &age)) {
		weft_resource_clear(&res);
		return ctl_fail("%s: the node's weftd reported status %lld s ago and may still be running: stop it "
				"first (it would register the Node again, and its Endpoints are its pods), or give "
				"--force; nothing deleted",
				node, age < 0 ? 0 : age);
	}
	weft_resource_clear(&res);

	neps = delete_owned(ctl, WEFT_KIND_ENDPOINT, node, &handles, &nh);
	if (neps < 0)
		goto out;
	npeers = delete_owned(ctl, WEFT_KIND_BGPPEER, node, NULL, NULL);
	if (npeers < 0)
		goto out;

	r = weft_ipam_new(ctl->store, &m);
	if (r < 0) {
		ctl_fail("delete node %s: ipam: %s; the Node is kept", node, strerror(-r));
		goto out;
	}
	r = weft_ipam_list_allocations(m, &as, &na);
	if (r < 0) {
		ctl_fail("delete node %s: ipam: %s; the Node is kept", node, weft_ipam_errmsg(m));
		goto out;
	}
	for (size_t i = 0; i < na; i++)
		if (as[i].handle && as[i].attrs.node && streq(as[i].attrs.node, node))
			strv_add(&handles, &nh, as[i].handle);
	strv_add(&handles, &nh, tunnel);
	for (size_t i = 0; i < nh; i++) {
		r = weft_ipam_release_handle(m, handles[i]);
		if (r < 0) {
			ctl_fail("delete node %s: release %s: %s; the Node is kept, run the command again", node,
				 handles[i], weft_ipam_errmsg(m));
			goto out;
		}
		naddrs += r;
	}
	nblocks = weft_ipam_release_node_blocks(m, node);
	if (nblocks < 0) {
		ctl_fail("delete node %s: blocks: %s; the Node is kept, run the command again", node,
			 weft_ipam_errmsg(m));
		goto out;
	}
	*summary = wasprintf("%d Endpoint%s, %d BGPPeer%s, %d address%s, %d block%s", neps, neps == 1 ? "" : "s",
			     npeers, npeers == 1 ? "" : "s", naddrs, naddrs == 1 ? "" : "es", nblocks,
			     nblocks == 1 ? "" : "s");
	ret = 0;
out:
	weft_ipam_allocations_free(as, na);
	weft_ipam_free(m);
	strv_free(handles, nh);
	return ret;
}
