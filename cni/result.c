/* result.c - CNI results: build, write per cniVersion, parse and validate
 * (prevResult); conventions in cni.h. */
#include "cni/cni-internal.h"

struct weft_cni_result *weft_cni_result_new(enum weft_cni_version v)
{
	struct weft_cni_result *r = wcalloc(1, sizeof(*r));

	r->version = v ? v : WEFT_CNI_VERSION_LATEST;
	return r;
}

void weft_cni_result_free(struct weft_cni_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_interfaces; i++) {
		struct weft_cni_interface *f = &r->interfaces[i];
		free(f->name);
		free(f->mac);
		free(f->sandbox);
		free(f->socket_path);
		free(f->pci_id);
	}
	free(r->interfaces);
	free(r->ips);
	free(r->routes);
	weft_cni_dns_clear(&r->dns);
	free(r);
}

int weft_cni_result_add_interface(struct weft_cni_result *r, const char *name, const char *mac, const char *sandbox)
{
	struct weft_cni_interface *f;

	r->interfaces = wrealloc(r->interfaces, (r->n_interfaces + 1) * sizeof(*r->interfaces));
	f = &r->interfaces[r->n_interfaces];
	*f = (struct weft_cni_interface){
		.name = wstrdup(name ? name : ""),
		.mac = mac && *mac ? wstrdup(mac) : NULL,
		.sandbox = sandbox && *sandbox ? wstrdup(sandbox) : NULL,
	};
	return (int)r->n_interfaces++;
}

int weft_cni_result_add_ip(struct weft_cni_result *r, const struct weft_cidr *addr, const struct weft_ip *gw, int iface)
{
	struct weft_cni_ipconfig *ip;

	if (iface < -1 || (iface >= 0 && (size_t)iface >= r->n_interfaces))
		return -EINVAL;
	if (gw && gw->family != addr->ip.family)
		return -EINVAL;
	r->ips = wrealloc(r->ips, (r->n_ips + 1) * sizeof(*r->ips));
	ip = &r->ips[r->n_ips];
	*ip = (struct weft_cni_ipconfig){.address = *addr, .interface = iface};
	if (gw) {
		ip->has_gateway = true;
		ip->gateway = *gw;
	}
	return (int)r->n_ips++;
}

int weft_cni_result_add_route(struct weft_cni_result *r, const struct weft_cni_route *route)
{
	if (route->has_gw && route->gw.family != route->dst.ip.family)
		return -EINVAL;
	r->routes = wrealloc(r->routes, (r->n_routes + 1) * sizeof(*r->routes));
	r->routes[r->n_routes] = *route;
	return (int)r->n_routes++;
}

/* ---------------------------------------------------------------------- */
/* Writing */

static void add_strv(cJSON *o, const char *key, const struct weft_cni_strv *s)
{
	cJSON *a;

	if (!s->n)
		return;
	a = cJSON_AddArrayToObject(o, key);
	for (size_t i = 0; i < s->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(s->v[i]));
}

static cJSON *dns_json(const struct weft_cni_dns *d)
{
	cJSON *o = cJSON_CreateObject();

	add_strv(o, "nameservers", &d->nameservers);
	if (d->domain)
		cJSON_AddStringToObject(o, "domain", d->domain);
	add_strv(o, "search", &d->search);
	add_strv(o, "options", &d->options);
	return o;
}

char *weft_cni_result_json(const struct weft_cni_result *r, enum weft_cni_version v)
{
	char buf[WEFT_CIDR_STRLEN];
	cJSON *o, *a;
	char *s;

	if (!v)
		v = r->version;
	if (v < WEFT_CNI_V0_3_0 || v > WEFT_CNI_VERSION_LATEST)
		return NULL;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "cniVersion", weft_cni_version_str(v));
	if (r->n_interfaces) {
		a = cJSON_AddArrayToObject(o, "interfaces");
		for (size_t i = 0; i < r->n_interfaces; i++) {
			const struct weft_cni_interface *f = &r->interfaces[i];
			cJSON *x = cJSON_CreateObject();

			cJSON_AddStringToObject(x, "name", f->name);
			if (f->mac)
				cJSON_AddStringToObject(x, "mac", f->mac);
			if (v >= WEFT_CNI_V1_1_0 && f->mtu)
				cJSON_AddNumberToObject(x, "mtu", f->mtu);
			if (f->sandbox)
				cJSON_AddStringToObject(x, "sandbox", f->sandbox);
			if (v >= WEFT_CNI_V1_1_0 && f->socket_path)
				cJSON_AddStringToObject(x, "socketPath", f->socket_path);
			if (v >= WEFT_CNI_V1_1_0 && f->pci_id)
				cJSON_AddStringToObject(x, "pciID", f->pci_id);
			cJSON_AddItemToArray(a, x);
		}
	}
	if (r->n_ips) {
		a = cJSON_AddArrayToObject(o, "ips");
		for (size_t i = 0; i < r->n_ips; i++) {
			const struct weft_cni_ipconfig *ip = &r->ips[i];
			cJSON *x = cJSON_CreateObject();

			/* 0.3.x and 0.4.0 tag every address with its family. */
			if (v < WEFT_CNI_V1_0_0)
				cJSON_AddStringToObject(x, "version", ip->address.ip.family == AF_INET6 ? "6" : "4");
			cJSON_AddStringToObject(x, "address", weft_cidr_str(&ip->address, buf, sizeof(buf)));
			if (ip->has_gateway)
				cJSON_AddStringToObject(x, "gateway", weft_ip_str(&ip->gateway, buf, sizeof(buf)));
			if (ip->interface >= 0)
				cJSON_AddNumberToObject(x, "interface", ip->interface);
			cJSON_AddItemToArray(a, x);
		}
	}
	if (r->n_routes) {
		a = cJSON_AddArrayToObject(o, "routes");
		for (size_t i = 0; i < r->n_routes; i++) {
			const struct weft_cni_route *rt = &r->routes[i];
			cJSON *x = cJSON_CreateObject();

			cJSON_AddStringToObject(x, "dst", weft_cidr_str(&rt->dst, buf, sizeof(buf)));
			if (rt->has_gw)
				cJSON_AddStringToObject(x, "gw", weft_ip_str(&rt->gw, buf, sizeof(buf)));
			if (v >= WEFT_CNI_V1_1_0) {
				if (rt->mtu >= 0)
					cJSON_AddNumberToObject(x, "mtu", rt->mtu);
				if (rt->advmss >= 0)
					cJSON_AddNumberToObject(x, "advmss", rt->advmss);
				if (rt->priority >= 0)
					cJSON_AddNumberToObject(x, "priority", rt->priority);
				if (rt->table >= 0)
					cJSON_AddNumberToObject(x, "table", rt->table);
				if (rt->scope >= 0)
					cJSON_AddNumberToObject(x, "scope", rt->scope);
			}
			cJSON_AddItemToArray(a, x);
		}
	}
	cJSON_AddItemToObject(o, "dns", dns_json(&r->dns));
	s = weft_json_print(o);
	cJSON_Delete(o);
	return s;
}

/* ---------------------------------------------------------------------- */
/* Parsing */

static int opt_string(const cJSON *obj, const char *key, const char *path, char **out, struct weft_cni_error *err)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, key);
	_cleanup_free_ char *p = NULL;
	const char *s;

	if (!c || cJSON_IsNull(c))
		return 0;
	p = wasprintf("%s.%s", path, key);
	if (weft_cni_want_string(c, p, &s, err) < 0)
		return -EINVAL;
	*out = *s ? wstrdup(s) : NULL;
	return 0;
}

static int parse_interface(const cJSON *c, const char *path, struct weft_cni_result *r, struct weft_cni_error *err)
{
	struct weft_cni_interface *f;
	const cJSON *m;

	if (!cJSON_IsObject(c)) {
		_cleanup_free_ char *s = weft_cni_value_str(c);
		return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, path, "expected an object, got %s %s",
				     weft_cni_type_name(c), s);
	}
	r->interfaces = wrealloc(r->interfaces, (r->n_interfaces + 1) * sizeof(*r->interfaces));
	f = &r->interfaces[r->n_interfaces++];
	*f = (struct weft_cni_interface){0};
	if (opt_string(c, "name", path, &f->name, err) < 0 || opt_string(c, "mac", path, &f->mac, err) < 0 ||
	    opt_string(c, "sandbox", path, &f->sandbox, err) < 0 ||
	    opt_string(c, "socketPath", path, &f->socket_path, err) < 0 ||
	    opt_string(c, "pciID", path, &f->pci_id, err) < 0)
		return -EINVAL;
	if (!f->name) {
		_cleanup_free_ char *p = wasprintf("%s.name", path);
		return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, p, "is required");
	}
	m = cJSON_GetObjectItemCaseSensitive(c, "mtu");
	if (m && !cJSON_IsNull(m)) {
		_cleanup_free_ char *p = wasprintf("%s.mtu", path);
		int64_t v;
		if (weft_cni_want_int(m, p, 0, 65535, &v, err) < 0)
			return -EINVAL;
		f->mtu = (unsigned)v;
	}
	return 0;
}

static int parse_ip(const cJSON *c, const char *path, enum weft_cni_version v, struct weft_cni_result *r,
		    struct weft_cni_error *err)
{
	struct weft_cni_ipconfig ip = {.interface = -1};
	const cJSON *x;
	_cleanup_free_ char *pa = wasprintf("%s.address", path), *pg = wasprintf("%s.gateway", path),
			    *pi = wasprintf("%s.interface", path), *pv = wasprintf("%s.version", path);

	if (!cJSON_IsObject(c)) {
		_cleanup_free_ char *s = weft_cni_value_str(c);
		return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, path, "expected an object, got %s %s",
				     weft_cni_type_name(c), s);
	}
	x = cJSON_GetObjectItemCaseSensitive(c, "address");
	if (!x)
		return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, pa, "is required");
	if (weft_cni_want_cidr(x, pa, true, &ip.address, err) < 0)
		return -EINVAL;
	x = cJSON_GetObjectItemCaseSensitive(c, "gateway");
	if (x && !cJSON_IsNull(x) && !(cJSON_IsString(x) && !x->valuestring[0])) {
		if (weft_cni_want_ip(x, pg, &ip.gateway, err) < 0)
			return -EINVAL;
		if (ip.gateway.family != ip.address.ip.family)
			return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, pg,
					     "\"%s\" is not of the address's family", x->valuestring);
		ip.has_gateway = true;
	}
	x = cJSON_GetObjectItemCaseSensitive(c, "interface");
	if (x && !cJSON_IsNull(x)) {
		int64_t i;
		if (weft_cni_want_int(x, pi, 0, INT32_MAX, &i, err) < 0)
			return -EINVAL;
		if ((size_t)i >= r->n_interfaces)
			return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, pi,
					     "%lld is not the index of an interface (there are %zu)", (long long)i,
					     r->n_interfaces);
		ip.interface = (int)i;
	}
	x = cJSON_GetObjectItemCaseSensitive(c, "version");
	if (v < WEFT_CNI_V1_0_0 && x && !cJSON_IsNull(x)) {
		const char *s;
		const char *want = ip.address.ip.family == AF_INET6 ? "6" : "4";
		if (weft_cni_want_string(x, pv, &s, err) < 0)
			return -EINVAL;
		if (!streq(s, "4") && !streq(s, "6"))
			return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, pv, "\"%.16s\" is not \"4\" or \"6\"", s);
		if (!streq(s, want))
			return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, pv,
					     "\"%s\" does not match the address (IPv%s)", s, want);
	}
	r->ips = wrealloc(r->ips, (r->n_ips + 1) * sizeof(*r->ips));
	r->ips[r->n_ips++] = ip;
	return 0;
}

int weft_cni_result_from_json(const cJSON *obj, const char *path, enum weft_cni_version v,
			      struct weft_cni_result **out, struct weft_cni_error *err)
{
	_cleanup_cni_result_ struct weft_cni_result *r = weft_cni_result_new(v);
	const cJSON *c, *x;
	size_t i;

	if (!cJSON_IsObject(obj)) {
		_cleanup_free_ char *s = weft_cni_value_str(obj);
		return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, path, "expected an object, got %s %s",
				     weft_cni_type_name(obj), s);
	}
	/* A result's own cniVersion, when present, must be one we read. */
	x = cJSON_GetObjectItemCaseSensitive(obj, "cniVersion");
	if (x && !cJSON_IsNull(x)) {
		_cleanup_free_ char *p = wasprintf("%s.cniVersion", path);
		enum weft_cni_version rv;
		const char *s;
		int k;

		if (weft_cni_want_string(x, p, &s, err) < 0)
			return -EINVAL;
		k = weft_cni_version_parse(s, &rv);
		if (k == -ENOTSUP)
			return weft_cni_fail(err, WEFT_CNI_ERR_INCOMPATIBLE_VERSION, p, "\"%.16s\" is not supported", s);
		if (k < 0)
			return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, p, "\"%.16s\" is not a version", s);
	}
	/* Interfaces first: IP entries refer to them by index. */
	x = cJSON_GetObjectItemCaseSensitive(obj, "interfaces");
	if (x && !cJSON_IsNull(x)) {
		_cleanup_free_ char *p = wasprintf("%s.interfaces", path);
		if (!cJSON_IsArray(x))
			return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, p, "expected a list, got %s",
					     weft_cni_type_name(x));
		i = 0;
		cJSON_ArrayForEach(c, x) {
			_cleanup_free_ char *pe = wasprintf("%s[%zu]", p, i++);
			if (parse_interface(c, pe, r, err) < 0)
				return -EINVAL;
		}
	}
	/* 0.3.0 wrote "ip" where 0.3.1 fixed it to "ips"; read either. */
	x = cJSON_GetObjectItemCaseSensitive(obj, "ips");
	if (!x && v == WEFT_CNI_V0_3_0)
		x = cJSON_GetObjectItemCaseSensitive(obj, "ip");
	if (x && !cJSON_IsNull(x)) {
		_cleanup_free_ char *p = wasprintf("%s.%s", path, x->string);
		if (!cJSON_IsArray(x))
			return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, p, "expected a list, got %s",
					     weft_cni_type_name(x));
		i = 0;
		cJSON_ArrayForEach(c, x) {
			_cleanup_free_ char *pe = wasprintf("%s[%zu]", p, i++);
			if (parse_ip(c, pe, v, r, err) < 0)
				return -EINVAL;
		}
	}
	x = cJSON_GetObjectItemCaseSensitive(obj, "routes");
	if (x && !cJSON_IsNull(x)) {
		_cleanup_free_ char *p = wasprintf("%s.routes", path);
		if (!cJSON_IsArray(x))
			return weft_cni_fail(err, WEFT_CNI_ERR_INVALID_CONFIG, p, "expected a list, got %s",
					     weft_cni_type_name(x));
		i = 0;
		cJSON_ArrayForEach(c, x) {
			_cleanup_free_ char *pe = wasprintf("%s[%zu]", p, i++);
			struct weft_cni_route rt;
			if (weft_cni_want_route(c, pe, true, &rt, err) < 0)
				return -EINVAL;
			weft_cni_result_add_route(r, &rt);
		}
	}
	x = cJSON_GetObjectItemCaseSensitive(obj, "dns");
	if (x && !cJSON_IsNull(x)) {
		_cleanup_free_ char *p = wasprintf("%s.dns", path);
		if (weft_cni_want_dns(x, p, &r->dns, err) < 0)
			return -EINVAL;
	}
	*out = TAKE_PTR(r);
	return 0;
}

int weft_cni_result_parse(const char *text, size_t len, enum weft_cni_version v, struct weft_cni_result **out,
			  struct weft_cni_error *err)
{
	_cleanup_json_ cJSON *j = NULL;

	if (weft_cni_json_parse(text, len, "the result", &j, err) < 0)
		return -EINVAL;
	return weft_cni_result_from_json(j, "result", v, out, err);
}
