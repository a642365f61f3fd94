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
 * finishes: every Node named is checked first (it exists, its weftd is not
 * running), and only then does anything go. Each Endpoint goes first and
 * its address right after it (the address leaves every set before IPAM may
 * hand it out again), then the BGPPeers, then the addresses IPAM holds for
 * the node by other records, then its blocks; the Node record itself goes
 * last, in the caller's transaction, compared at the revision the check
 * read (a weftd that started again meanwhile keeps its Node), so that as
 * long as it exists `weftctl delete node NAME` can be run again. The keys
 * deleted are reported, so that a manifest naming the Node's own Endpoint
 * does not delete it twice. Each record is deleted with a compare on
 * the revision it was read at: one that changes meanwhile stops the
 * command, with nothing more deleted.
 *
 * The node's weftd must be stopped first (it would re-register the Node
 * and its Endpoints are its pods). A Node whose weftd reported status in
 * the last NODE_LIVE_SECS seconds, or at a time that does not parse, is
 * refused unless forced, but for one whose weftd said on its way out that
 * it stopped.
 */
#include "ctl/ctl.h"
#include "ipam/ipam.h"
#include "lib/json.h"

#include <time.h>

/* lastSync is refreshed every 300 s (felix/weftd-status.c); twice that,
 * and some clock skew. */
#define NODE_LIVE_SECS 660

static bool two_digits(const char *s, int *v)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return false;
	*v = (s[0] - '0') * 10 + (s[1] - '0');
	return true;
}

/* An RFC 3339 timestamp ("2026-11-26T14:04:44Z", fractions of a second
 * and offsets like "+02:00" too: what the model accepts) as seconds since
 * the epoch. Returns false when it does not parse. */
static bool rfc3339_time(const char *s, long long *out)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	int oh, om;
	long long off = 0;

	if (!p)
		p = strptime(s, "%Y-%m-%dt%H:%M:%S", &tm);
	if (!p)
		return false;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	}
	if ((*p == 'Z' || *p == 'z') && !p[1]) {
		off = 0;
	} else if ((*p == '+' || *p == '-') && two_digits(p + 1, &oh) && p[3] == ':' && two_digits(p + 4, &om) &&
		   !p[6]) {
		off = (oh * 3600LL + om * 60LL) * (*p == '+' ? 1 : -1);
	} else {
		return false;
	}
	*out = (long long)timegm(&tm) - off;
	return true;
}

/* Whether the Node's weftd may still run: it reported status
 * (spec.status.lastSync) in the last NODE_LIVE_SECS seconds, from the
 * future (another clock), or at a time that does not parse; *age gets how
 * long ago (-1: unknown). A Node without status is not live, nor one
 * whose weftd said on its way out that it stopped. */
static bool status_recent(const cJSON *doc, long long *age)
{
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
	cJSON *st = spec ? cJSON_GetObjectItemCaseSensitive(spec, "status") : NULL;
	const char *ls, *reason;
	long long t;

	*age = -1;
	if (!st || weft_json_get_string(st, "lastSync", &ls) < 0)
		return false;
	/* Stopped cleanly: it said so on the way out. */
	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(st, "healthy")) &&
	    weft_json_get_string(st, "reason", &reason) == 0 && streq(reason, WEFT_NODE_REASON_STOPPED))
		return false;
	if (!rfc3339_time(ls, &t))
		return true;
	*age = (long long)time(NULL) - t;
	return *age < NODE_LIVE_SECS;
}

/* A string member of spec, or NULL. */
static const char *spec_str(const cJSON *doc, const char *key)
{
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
	const char *s;

	return spec && weft_json_get_string(spec, key, &s) == 0 ? s : NULL;
}

static bool strv_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (streq(v[i], s))
			return true;
	return false;
}

int ctl_node_delete_check(struct ctl *ctl, const char *node, bool force, int64_t *node_rev)
{
	_cleanup_free_ char *key = wasprintf("%s%s", weft_kind_prefix(WEFT_KIND_NODE), node);
	struct weft_resource res = {0};
	struct weft_kv kv = {0};
	long long age;
	int r;

	r = weft_store_get(ctl->store, key, &kv);
	if (r == -ENOENT)
		return ctl_fail("%s: Node %s not found; nothing deleted", node, node);
	if (r < 0)
		return ctl_fail("read %s: %s", key, weft_store_errmsg(ctl->store));
	*node_rev = kv.mod_rev;
	r = weft_resource_decode(kv.value, kv.value_len, &res, NULL);
	weft_kv_clear(&kv);
	if (r == 0 && !force && status_recent(res.doc, &age)) {
		weft_resource_clear(&res);
		if (age < 0)
			return ctl_fail("%s: the node's status.lastSync does not parse, so its weftd may still be "
					"running: stop it first, or give --force; nothing deleted",
					node);
		return ctl_fail("%s: the node's weftd reported status %lld s ago and may still be running: stop it "
				"first (it would register the Node again, and its Endpoints are its pods), or give "
				"--force; nothing deleted",
				node, age);
	}
	weft_resource_clear(&res);
	return 0;
}

struct cascade {
	struct ctl *ctl;
	const char *node;
	struct weft_ipam *m;
	char **handles; /* released already */
	size_t nh;
	char ***deleted; /* the keys deleted (the caller's) */
	size_t *ndeleted;
	int neps, npeers, naddrs;
};

/* Release one IPAM handle (once). Returns 0, or -1 after a message. */
static int release(struct cascade *c, const char *handle, bool endpoint_gone)
{
	int r;

	if (strv_has(c->handles, c->nh, handle))
		return 0;
	r = weft_ipam_release_handle(c->m, handle);
	if (r < 0) {
		if (endpoint_gone)
			ctl_fail("delete node %s: release handle %s: %s; its Endpoint is deleted already, so release "
				 "it with weftctl ipam release --handle %s; the Node is kept: then run the command again",
				 c->node, handle, weft_ipam_errmsg(c->m), handle);
		else
			ctl_fail("delete node %s: release handle %s: %s; the Node is kept: run the command again",
				 c->node, handle, weft_ipam_errmsg(c->m));
		return -1;
	}
	c->naddrs += r;
	c->handles = wrealloc(c->handles, (c->nh + 1) * sizeof(*c->handles));
	c->handles[c->nh++] = wstrdup(handle);
	return 0;
}

/* Delete the records of kind whose spec.node is the node, each compared at
 * the revision listed, and release each deleted Endpoint's IPAM handle
 * right after it. Returns the number deleted, or -1 after a message. */
static int delete_owned(struct cascade *c, enum weft_kind kind)
{
	struct weft_kv_list l = {0};
	int n = 0, r;

	r = weft_store_list(c->ctl->store, weft_kind_prefix(kind), &l);
	if (r < 0) {
		ctl_fail("delete node %s: list %s: %s; the Node is kept", c->node, weft_kind_prefix(kind),
			 weft_store_errmsg(c->ctl->store));
		return -1;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct weft_resource res = {0};
		_cleanup_free_ char *handle = NULL;
		const char *owner, *cid, *ifname;

		if (weft_resource_decode(l.items[i].value, l.items[i].value_len, &res, NULL) < 0)
			continue; /* undecodable: weftctl store check reports it; whose it is cannot be told */
		owner = spec_str(res.doc, "node");
		if (!owner || !streq(owner, c->node)) {
			weft_resource_clear(&res);
			continue;
		}
		cid = spec_str(res.doc, "containerID");
		ifname = spec_str(res.doc, "ifname");
		if (kind == WEFT_KIND_ENDPOINT && cid && ifname)
			(void)weft_ipam_handle_id(cid, ifname, &handle);
		r = weft_store_delete(c->ctl->store, l.items[i].key, l.items[i].mod_rev, NULL);
		if (r < 0 && r != -ENOENT) {
			if (r == -ECANCELED)
				ctl_fail("delete node %s: %s %s changed meanwhile; the Node is kept, run the command again",
					 c->node, weft_kind_info(kind)->name, res.name);
			else
				ctl_write_failed(c->ctl, r, "more deleted; the Node is kept");
			weft_resource_clear(&res);
			weft_kv_list_clear(&l);
			return -1;
		}
		if (r == 0) {
			n++;
			*c->deleted = wrealloc(*c->deleted, (*c->ndeleted + 1) * sizeof(**c->deleted));
			(*c->deleted)[(*c->ndeleted)++] = wstrdup(l.items[i].key);
		}
		/* The Endpoint is gone: its address may go. */
		if (handle && release(c, handle, true) < 0) {
			weft_resource_clear(&res);
			weft_kv_list_clear(&l);
			return -1;
		}
		weft_resource_clear(&res);
	}
	weft_kv_list_clear(&l);
	return n;
}

int ctl_node_delete_cascade(struct ctl *ctl, const char *node, char ***deleted, size_t *ndeleted, char **summary)
{
	_cleanup_free_ char *tunnel = wasprintf("%s%s", WEFT_IPAM_VXLAN_TUNNEL_HANDLE_PREFIX, node);
	struct cascade c = {.ctl = ctl, .node = node, .deleted = deleted, .ndeleted = ndeleted};
	struct weft_ipam_allocation *as = NULL;
	size_t na = 0;
	int nblocks, r, ret = 1;

	r = weft_ipam_new(ctl->store, &c.m);
	if (r < 0) {
		ctl_fail("delete node %s: ipam: %s; the Node is kept", node, strerror(-r));
		goto out;
	}
	c.neps = delete_owned(&c, WEFT_KIND_ENDPOINT);
	if (c.neps < 0)
		goto out;
	c.npeers = delete_owned(&c, WEFT_KIND_BGPPEER);
	if (c.npeers < 0)
		goto out;
	/* What IPAM holds for the node by other records: allocations that
	 * record it, and its VXLAN tunnel address (no handle for a node name
	 * too long for one: weftd allocates none then). */
	r = weft_ipam_list_allocations(c.m, &as, &na);
	if (r < 0) {
		ctl_fail("delete node %s: ipam: %s; the Node is kept, run the command again", node,
			 weft_ipam_errmsg(c.m));
		goto out;
	}
	for (size_t i = 0; i < na; i++)
		if (as[i].handle && as[i].attrs.node && streq(as[i].attrs.node, node) && release(&c, as[i].handle, false) < 0)
			goto out;
	if (strlen(tunnel) <= WEFT_IPAM_NAME_MAX && release(&c, tunnel, false) < 0)
		goto out;
	nblocks = weft_ipam_release_node_blocks(c.m, node);
	if (nblocks < 0) {
		ctl_fail("delete node %s: blocks: %s; the Node is kept, run the command again", node,
			 weft_ipam_errmsg(c.m));
		goto out;
	}
	*summary = wasprintf("%d Endpoint%s, %d BGPPeer%s, %d address%s, %d block%s", c.neps, c.neps == 1 ? "" : "s",
			     c.npeers, c.npeers == 1 ? "" : "s", c.naddrs, c.naddrs == 1 ? "" : "es", nblocks,
			     nblocks == 1 ? "" : "s");
	ret = 0;
out:
	weft_ipam_allocations_free(as, na);
	weft_ipam_free(c.m);
	for (size_t i = 0; i < c.nh; i++)
		free(c.handles[i]);
	free(c.handles);
	return ret;
}
