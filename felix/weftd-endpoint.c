/* weftd-endpoint.c - the Endpoint records weftd writes: names and reading. */
#include "felix/weftd.h"
#include "lib/util.h"
#include "lib/json.h"
#include "lib/log.h"
#include "model/resource.h"

#include <net/if.h>

#define ENDPOINT_NAME_MAX 253

static uint64_t fnv1a64(const char *a, const char *b)
{
	uint64_t h = weft_fnv1a(a, strlen(a), WEFT_FNV_INIT);

	h = weft_fnv1a(":", 1, h);
	return weft_fnv1a(b, strlen(b), h);
}

char *weftd_endpoint_name(const char *node, const char *container_id, const char *ifname)
{
	char *name = wasprintf("%s.%s.%s", node, container_id, ifname);
	uint64_t h;
	size_t room;

	/* Dots join the parts, and container ids and interface names may
	 * hold dots too: (a.b, c) and (a, b.c) would share a name (and one
	 * ADD would replace the other's record). Such pairs get the hashed
	 * form, as overlong ones do. */
	if (strlen(name) <= ENDPOINT_NAME_MAX && !strchr(container_id, '.') && !strchr(ifname, '.'))
		return name;
	free(name);
	/* Container ids may be long; a hash keeps the name unique and within
	 * bounds. Node names are at most 253 too, so cut the node part if the
	 * whole would still be too long (the record holds the full node). */
	h = fnv1a64(container_id, ifname);
	room = ENDPOINT_NAME_MAX - 16 - 2 - strlen(ifname);
	return wasprintf("%.*s.%016llx.%s", (int)room, node, (unsigned long long)h, ifname);
}

char *weftd_endpoint_legacy_key(const char *node, const char *container_id, const char *ifname)
{
	_cleanup_free_ char *name = NULL;

	if (!strchr(container_id, '.') && !strchr(ifname, '.'))
		return NULL;
	name = wasprintf("%s.%s.%s", node, container_id, ifname);
	if (strlen(name) > ENDPOINT_NAME_MAX)
		return NULL;
	return wasprintf("%s%s", weft_kind_prefix(WEFT_KIND_ENDPOINT), name);
}

char *weftd_endpoint_key(const char *node, const char *container_id, const char *ifname)
{
	_cleanup_free_ char *name = weftd_endpoint_name(node, container_id, ifname);

	return wasprintf("%s%s", weft_kind_prefix(WEFT_KIND_ENDPOINT), name);
}

void weftd_endpoint_clear(struct weftd_endpoint *e)
{
	if (!e)
		return;
	free(e->key);
	free(e->name);
	free(e->node);
	free(e->container_id);
	free(e->ifname);
	free(e->host_ifname);
	free(e->mac);
	free(e->network);
	free(e->netns);
	free(e->mode);
	for (size_t i = 0; i < e->n_ip_networks; i++)
		free(e->ip_networks[i]);
	free(e->ip_networks);
	memset(e, 0, sizeof(*e));
}

void weftd_endpoints_free(struct weftd_endpoint *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		weftd_endpoint_clear(&e[i]);
	free(e);
}

static char *dup_str(const cJSON *obj, const char *key)
{
	const char *s;

	return obj && weft_json_get_string(obj, key, &s) == 0 ? wstrdup(s) : NULL;
}

static int endpoint_decode(const struct weft_kv *kv, struct weftd_endpoint *out)
{
	struct weft_resource res = {0};
	_cleanup_free_ char *err = NULL;
	struct weftd_endpoint e = {0};
	cJSON *meta = NULL, *spec = NULL, *ann = NULL, *ips = NULL, *it;
	int r;

	r = weft_resource_decode(kv->value, kv->value_len, &res, &err);
	if (r < 0) {
		log_warn("endpoint %s: undecodable: %s", kv->key, err ? err : strerror(-r));
		return -EBADMSG;
	}
	if (res.kind != WEFT_KIND_ENDPOINT) {
		weft_resource_clear(&res);
		return -EBADMSG;
	}
	(void)weft_json_get_object(res.doc, "metadata", &meta);
	(void)weft_json_get_object(res.doc, "spec", &spec);
	if (meta)
		(void)weft_json_get_object(meta, "annotations", &ann);
	e.key = wstrdup(kv->key);
	e.mod_rev = kv->mod_rev;
	e.name = wstrdup(res.name);
	e.node = dup_str(spec, "node");
	e.container_id = dup_str(spec, "containerID");
	e.ifname = dup_str(spec, "ifname");
	e.host_ifname = dup_str(spec, "hostIfname");
	e.mac = dup_str(spec, "mac");
	e.network = dup_str(ann, WEFTD_ANN_CNI_NETWORK);
	e.netns = dup_str(ann, WEFTD_ANN_NETNS);
	e.mode = dup_str(ann, WEFTD_ANN_MODE);
	if (spec && weft_json_get_array(spec, "ipNetworks", &ips) == 0) {
		e.ip_networks = wcalloc((size_t)cJSON_GetArraySize(ips) + 1, sizeof(char *));
		cJSON_ArrayForEach(it, ips)
			if (cJSON_IsString(it))
				e.ip_networks[e.n_ip_networks++] = wstrdup(it->valuestring);
	}
	weft_resource_clear(&res);
	if (!e.node) {
		weftd_endpoint_clear(&e);
		return -EBADMSG;
	}
	*out = e;
	return 0;
}

int weftd_endpoint_get(struct weftd *d, const char *key, struct weftd_endpoint *out)
{
	struct weft_kv kv = {0};
	int r;

	r = weft_store_get(d->store, key, &kv);
	if (r < 0)
		return r;
	r = endpoint_decode(&kv, out);
	weft_kv_clear(&kv);
	return r;
}

int weftd_endpoint_list_node(struct weftd *d, struct weftd_endpoint **out, size_t *n)
{
	struct weft_kv_list l = {0};
	struct weftd_endpoint *v;
	size_t k = 0;
	int r;

	/* Names start with the node and a dot unless the node part had to be
	 * cut (names over 253 characters): list this node's records alone,
	 * not the cluster's, when it cannot have been. */
	if (strlen(d->node) + 1 + 16 + 1 + IFNAMSIZ <= ENDPOINT_NAME_MAX) {
		_cleanup_free_ char *prefix = wasprintf("%s%s.", weft_kind_prefix(WEFT_KIND_ENDPOINT), d->node);
		r = weft_store_list(d->store, prefix, &l);
	} else
		r = weft_store_list(d->store, weft_kind_prefix(WEFT_KIND_ENDPOINT), &l);
	if (r < 0)
		return r;
	v = wcalloc(l.n + 1, sizeof(*v));
	for (size_t i = 0; i < l.n; i++) {
		if (endpoint_decode(&l.items[i], &v[k]) < 0)
			continue;
		if (!streq(v[k].node, d->node)) {
			weftd_endpoint_clear(&v[k]);
			continue;
		}
		k++;
	}
	weft_kv_list_clear(&l);
	*out = v;
	*n = k;
	return (int)k;
}
