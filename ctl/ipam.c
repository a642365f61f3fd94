/* ipam.c - weftctl ipam: show utilisation and holders, find leaked
 * allocations, release addresses. Everything goes through ipam/ipam.h;
 * the only records read directly are the Endpoint resources (to tell live
 * allocations from leaked ones) and a handle record's create revision (to
 * tell a re-made allocation from the one seen before). */
#include "ctl/ctl.h"
#include "ipam/ipam.h"
#include "lib/json.h"

#include <getopt.h>
#include <time.h>

static const char *const ipam_usage =
	"Usage: weftctl ipam show [--ip ADDR] [-o table|json]\n"
	"       weftctl ipam check [--grace SECONDS]\n"
	"       weftctl ipam release --ip ADDR | --handle HANDLE | --empty-blocks [--node NODE]\n"
	"\n"
	"Inspect and repair weft's IP address management records.\n"
	"\n"
	"  show      utilisation per pool, block and range; with --ip, who holds\n"
	"            the address\n"
	"  check     allocations whose Endpoint is gone (leaks) and inconsistent\n"
	"            IPAM records; exit 1 when it finds any\n"
	"  release   free one address, or every address of a handle\n"
	"\n"
	"weftctl ipam COMMAND --help shows a command's options.\n";

static const char *const show_usage =
	"Usage: weftctl ipam show [--ip ADDR] [-o table|json]\n"
	"\n"
	"Without --ip: every IP pool (cidr, addresses in total, used and free,\n"
	"blocks claimed), every block (cidr, the node it is affine to, used/total)\n"
	"and every range (network, subnet, used/total).\n"
	"With --ip: who holds the address (handle, node, namespace/pod, container,\n"
	"interface, the record holding it), or \"not allocated\" (exit 0 as well).\n"
	"\n"
	"Options:\n"
	"      --ip ADDR         look one address up\n"
	"  -o, --output FORMAT   table (default) or json\n"
	"  -h, --help            this help\n";

static const char *const check_usage =
	"Usage: weftctl ipam check [--grace SECONDS]\n"
	"\n"
	"Find leaked addresses: allocations for which no Endpoint record with the\n"
	"allocation's container id and interface name lists the address, and IPAM\n"
	"records that disagree with each other. Each finding is one line on\n"
	"standard output; the exit code is 1 when there is any, 0 when clean.\n"
	"\n"
	"An allocation whose CNI ADD is still running has no Endpoint yet. The\n"
	"IPAM records carry no timestamp, so the age of an allocation is not\n"
	"known: instead, allocations without an Endpoint are watched for up to\n"
	"--grace seconds. Those that gain their Endpoint or are released meanwhile\n"
	"are reported as \"pending\" (an ADD or DEL in flight), the others as\n"
	"leaked. A clean store answers at once.\n"
	"\n"
	"Allocations whose handle does not name a CNI attachment\n"
	"(\"CONTAINERID:IFNAME\") and that record no container id are not judged;\n"
	"they are listed as \"unchecked\".\n"
	"\n"
	"A node's VXLAN tunnel address (handle vxlan-tunnel-addr-NODE) is live\n"
	"while the Node exists (its weftd keeps or releases it), leaked after.\n"
	"\n"
	"Allocations of the weft-ipam plugin (used with another main plugin, such\n"
	"as bridge) have no Endpoint record: they are listed as \"ipam-only\", not\n"
	"counted as leaks; CNI GC of their network releases the stale ones.\n"
	"\n"
	"Options:\n"
	"      --grace SECONDS   how long to watch candidates (default 60, 0 = not\n"
	"                        at all: every allocation without an Endpoint now\n"
	"                        is reported as leaked)\n"
	"  -h, --help            this help\n";

static const char *const release_usage =
	"Usage: weftctl ipam release --ip ADDR | --handle HANDLE | --empty-blocks [--node NODE]\n"
	"\n"
	"Release one address (whoever holds it) or every address of a handle\n"
	"(\"CONTAINERID:IFNAME\" for a CNI attachment) and print what was\n"
	"released. Releasing what is not allocated is not an error.\n"
	"--empty-blocks releases the blocks that hold no address (of NODE, else\n"
	"of every node) with their affinities: the nodes' BGP speakers withdraw\n"
	"them. A block that gains an address meanwhile is kept.\n"
	"\n"
	"Options:\n"
	"      --ip ADDR         the address to release\n"
	"      --handle HANDLE   the handle whose addresses to release\n"
	"      --empty-blocks    release empty blocks\n"
	"      --node NODE       with --empty-blocks: only this node's\n"
	"  -h, --help            this help\n";

enum { OPT_IP = 0x100, OPT_HANDLE, OPT_GRACE, OPT_EMPTY, OPT_NODE };

static int sub_usage_error(const char *cmd, const char *msg)
{
	fprintf(stderr, "weftctl: ipam %s: %s (see weftctl ipam %s --help)\n", cmd, msg, cmd);
	return 2;
}

/* Open the store and an IPAM context. Returns 0, or 1 after a message. */
static int open_ipam(struct ctl *ctl, struct weft_ipam **m)
{
	int r;

	if (ctl_open_store(ctl))
		return 1;
	r = weft_ipam_new(ctl->store, m);
	if (r < 0) {
		ctl_close_store(ctl);
		return ctl_fail("ipam: %s", strerror(-r));
	}
	return 0;
}

static void close_ipam(struct ctl *ctl, struct weft_ipam *m)
{
	weft_ipam_free(m);
	ctl_close_store(ctl);
}

static const char *ipam_err(struct weft_ipam *m, int r)
{
	const char *msg = weft_ipam_errmsg(m);
	return msg && *msg ? msg : strerror(-r);
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

static void json_add_str(cJSON *o, const char *key, const char *val)
{
	if (val)
		cJSON_AddStringToObject(o, key, val);
	else
		cJSON_AddNullToObject(o, key);
}

static void print_json(cJSON *doc)
{
	char *text = cJSON_Print(doc);
	if (!text)
		abort();
	printf("%s\n", text);
	free(text);
}

/* A table: rows of cells, the first row the header; columns padded to the
 * widest cell, trailing blanks dropped (like weftctl get). */
struct table {
	char ***rows;
	size_t nrows, ncols;
};

static void table_row(struct table *t, ...) __attribute__((sentinel));
static void table_row(struct table *t, ...)
{
	va_list ap;
	char **row = wcalloc(t->ncols, sizeof(*row));

	va_start(ap, t);
	for (size_t c = 0; c < t->ncols; c++) {
		const char *s = va_arg(ap, const char *);
		row[c] = wstrdup(s ? s : "");
	}
	va_end(ap);
	t->rows = wrealloc(t->rows, (t->nrows + 1) * sizeof(*t->rows));
	t->rows[t->nrows++] = row;
}

static void table_print(struct table *t)
{
	size_t *width = wcalloc(t->ncols, sizeof(*width));

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++)
			if (strlen(t->rows[r][c]) > width[c])
				width[c] = strlen(t->rows[r][c]);
	for (size_t r = 0; r < t->nrows; r++) {
		struct weft_buf line = {0};
		for (size_t c = 0; c < t->ncols; c++) {
			if (c + 1 < t->ncols)
				weft_buf_printf(&line, "%-*s   ", (int)width[c], t->rows[r][c]);
			else
				weft_buf_printf(&line, "%s", t->rows[r][c]);
			free(t->rows[r][c]);
		}
		while (line.len > 0 && line.data[line.len - 1] == ' ')
			line.data[--line.len] = 0;
		printf("%s\n", line.data);
		weft_buf_free(&line);
		free(t->rows[r]);
	}
	free(t->rows);
	free(width);
	t->rows = NULL;
	t->nrows = 0;
}

/* --- show ------------------------------------------------------------------ */

static int show_ip(struct weft_ipam *m, const char *addr, const struct weft_ip *ip, bool json)
{
	struct weft_ipam_allocation a = {0};
	char ips[WEFT_IP_STRLEN];
	int r;

	weft_ip_str(ip, ips, sizeof(ips));
	r = weft_ipam_lookup_ip(m, ip, &a);
	if (r == -ENOENT) {
		if (json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "ip", ips);
			cJSON_AddBoolToObject(o, "allocated", false);
			print_json(o);
			cJSON_Delete(o);
		} else {
			printf("%s: not allocated\n", ips);
		}
		return 0;
	}
	if (r < 0)
		return ctl_fail("ipam show: look up %s: %s", addr, ipam_err(m, r));
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "ip", ips);
		cJSON_AddBoolToObject(o, "allocated", true);
		json_add_str(o, "handle", a.handle);
		json_add_str(o, "node", a.attrs.node);
		json_add_str(o, "namespace", a.attrs.namespace);
		json_add_str(o, "pod", a.attrs.pod);
		json_add_str(o, "containerID", a.attrs.container_id);
		json_add_str(o, "ifname", a.attrs.ifname);
		json_add_str(o, "record", a.holder);
		print_json(o);
		cJSON_Delete(o);
	} else {
		_cleanup_free_ char *pod = NULL;
		if (a.attrs.namespace || a.attrs.pod)
			pod = wasprintf("%s/%s", or_dash(a.attrs.namespace), or_dash(a.attrs.pod));
		printf("ip:         %s\n", ips);
		printf("handle:     %s\n", or_dash(a.handle));
		printf("node:       %s\n", or_dash(a.attrs.node));
		printf("pod:        %s\n", or_dash(pod));
		printf("container:  %s\n", or_dash(a.attrs.container_id));
		printf("ifname:     %s\n", or_dash(a.attrs.ifname));
		printf("record:     %s\n", or_dash(a.holder));
	}
	weft_ipam_allocation_clear(&a);
	return 0;
}

static char *u64_str(uint64_t v)
{
	return wasprintf("%llu", (unsigned long long)v);
}

static int show_usage_tables(struct weft_ipam *m, bool json)
{
	struct weft_ipam_usage *u = NULL;
	size_t n = 0;
	int r;

	r = weft_ipam_usage(m, &u, &n);
	if (r < 0)
		return ctl_fail("ipam show: %s", ipam_err(m, r));

	cJSON *doc = json ? cJSON_CreateObject() : NULL;
	cJSON *jpools = NULL, *jblocks = NULL, *jranges = NULL;
	struct table pools = {.ncols = 7}, blocks = {.ncols = 4}, ranges = {.ncols = 4};
	char cs[WEFT_CIDR_STRLEN];

	if (json) {
		jpools = cJSON_AddArrayToObject(doc, "pools");
		jblocks = cJSON_AddArrayToObject(doc, "blocks");
		jranges = cJSON_AddArrayToObject(doc, "ranges");
	}
	table_row(&pools, "POOL", "CIDR", "TOTAL", "USED", "FREE", "BLOCKS", "DISABLED", NULL);
	table_row(&blocks, "BLOCK", "AFFINITY", "USED/TOTAL", "POOL", NULL);
	table_row(&ranges, "NETWORK", "SUBNET", "USED/TOTAL", "RECORD", NULL);
	for (size_t i = 0; i < n; i++) {
		weft_cidr_str(&u[i].cidr, cs, sizeof(cs));
		if (u[i].kind == WEFT_IPAM_USAGE_POOL) {
			unsigned nblocks = 0;
			for (size_t j = 0; j < n; j++)
				if (u[j].kind == WEFT_IPAM_USAGE_BLOCK && weft_cidr_covers(&u[i].cidr, &u[j].cidr))
					nblocks++;
			uint64_t avail = u[i].total - (u[i].used < u[i].total ? u[i].used : u[i].total);
			if (json) {
				cJSON *o = cJSON_CreateObject();
				cJSON_AddStringToObject(o, "name", u[i].name);
				cJSON_AddStringToObject(o, "cidr", cs);
				cJSON_AddNumberToObject(o, "total", (double)u[i].total);
				cJSON_AddNumberToObject(o, "used", (double)u[i].used);
				cJSON_AddNumberToObject(o, "free", (double)avail);
				cJSON_AddNumberToObject(o, "blocks", nblocks);
				cJSON_AddBoolToObject(o, "disabled", u[i].disabled);
				cJSON_AddItemToArray(jpools, o);
			} else {
				_cleanup_free_ char *t = u64_str(u[i].total), *us = u64_str(u[i].used),
						    *f = u64_str(avail), *b = wasprintf("%u", nblocks);
				table_row(&pools, u[i].name, cs, t, us, f, b, u[i].disabled ? "true" : "false", NULL);
			}
		} else {
			/* The pool a block lies in (none when its pool was deleted). */
			const char *pool = NULL;
			if (u[i].kind == WEFT_IPAM_USAGE_BLOCK)
				for (size_t j = 0; j < n && !pool; j++)
					if (u[j].kind == WEFT_IPAM_USAGE_POOL && weft_cidr_covers(&u[j].cidr, &u[i].cidr))
						pool = u[j].name;
			if (json) {
				cJSON *o = cJSON_CreateObject();
				if (u[i].kind == WEFT_IPAM_USAGE_BLOCK) {
					cJSON_AddStringToObject(o, "cidr", cs);
					json_add_str(o, "affinity", u[i].affinity);
					json_add_str(o, "pool", pool);
				} else {
					json_add_str(o, "network", u[i].affinity);
					cJSON_AddStringToObject(o, "subnet", cs);
				}
				cJSON_AddNumberToObject(o, "used", (double)u[i].used);
				cJSON_AddNumberToObject(o, "total", (double)u[i].total);
				cJSON_AddStringToObject(o, "record", u[i].name);
				cJSON_AddItemToArray(u[i].kind == WEFT_IPAM_USAGE_BLOCK ? jblocks : jranges, o);
			} else {
				_cleanup_free_ char *ut = wasprintf("%llu/%llu", (unsigned long long)u[i].used,
								    (unsigned long long)u[i].total);
				if (u[i].kind == WEFT_IPAM_USAGE_BLOCK)
					table_row(&blocks, cs, or_dash(u[i].affinity), ut, or_dash(pool), NULL);
				else
					table_row(&ranges, or_dash(u[i].affinity), cs, ut, u[i].name, NULL);
			}
		}
	}
	if (json) {
		print_json(doc);
		cJSON_Delete(doc);
	} else {
		bool any_blocks = blocks.nrows > 1, any_ranges = ranges.nrows > 1;
		if (pools.nrows == 1)
			printf("no IP pools\n");
		else
			table_print(&pools);
		if (any_blocks) {
			printf("\n");
			table_print(&blocks);
		}
		if (any_ranges) {
			printf("\n");
			table_print(&ranges);
		}
	}
	/* Tables not printed still own their rows. */
	struct table *all[] = {&pools, &blocks, &ranges};
	for (size_t t = 0; t < ARRAY_SIZE(all); t++) {
		for (size_t r2 = 0; r2 < all[t]->nrows; r2++) {
			for (size_t c = 0; c < all[t]->ncols; c++)
				free(all[t]->rows[r2][c]);
			free(all[t]->rows[r2]);
		}
		free(all[t]->rows);
	}
	weft_ipam_usage_free(u, n);
	return 0;
}

static int cmd_show(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{"ip", required_argument, NULL, OPT_IP},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *format = "table", *addr = NULL;
	struct weft_ipam *m = NULL;
	struct weft_ip ip;
	int c, ret;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_IP:
			addr = optarg;
			break;
		case 'o':
			format = optarg;
			break;
		case 'h':
			fputs(show_usage, stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (!streq(format, "table") && !streq(format, "json"))
		return sub_usage_error("show", "-o: expected table or json");
	if (optind < argc)
		return sub_usage_error("show", "unexpected argument");
	if (addr && weft_ip_parse(addr, &ip) < 0)
		return sub_usage_error("show", "--ip: not an IP address");
	if (open_ipam(ctl, &m))
		return 1;
	if (addr)
		ret = show_ip(m, addr, &ip, streq(format, "json"));
	else
		ret = show_usage_tables(m, streq(format, "json"));
	close_ipam(ctl, m);
	return ret;
}

/* --- check ----------------------------------------------------------------- */

/* What an Endpoint record says about its attachment. */
struct ep {
	char *name;
	char *container_id;
	char *ifname;
	struct weft_ip *ips;
	size_t nips;
};

static void eps_free(struct ep *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++) {
		free(e[i].name);
		free(e[i].container_id);
		free(e[i].ifname);
		free(e[i].ips);
	}
	free(e);
}

static int ep_cmp(const void *a, const void *b)
{
	const struct ep *x = a, *y = b;
	int c = strcmp(x->container_id, y->container_id);
	return c ? c : strcmp(x->ifname, y->ifname);
}

/* Read every Endpoint that names a container and an interface, sorted by
 * (container id, ifname). Endpoints without them (host endpoints, say)
 * cannot own a CNI allocation and are skipped. Returns 0 or 1 after a
 * message. A stored Endpoint that does not decode is an error: judging
 * allocations without it could call a live one leaked. */
static int load_endpoints(struct ctl *ctl, struct ep **out, size_t *n)
{
	struct weft_kv_list l = {0};
	struct ep *e;
	size_t k = 0;
	int r;

	r = weft_store_list(ctl->store, weft_kind_prefix(WEFT_KIND_ENDPOINT), &l);
	if (r < 0)
		return ctl_fail("ipam check: list %s: %s", weft_kind_prefix(WEFT_KIND_ENDPOINT),
				weft_store_errmsg(ctl->store));
	e = wcalloc(l.n + 1, sizeof(*e));
	for (size_t i = 0; i < l.n; i++) {
		struct weft_resource res = {0};
		_cleanup_free_ char *err = NULL;
		const char *cid = NULL, *ifn = NULL;
		cJSON *spec = NULL, *nets = NULL, *it;

		if (weft_resource_decode(l.items[i].value, l.items[i].value_len, &res, &err) < 0) {
			r = ctl_fail("ipam check: %s: stored value is invalid: %s", l.items[i].key,
				     err ? err : "undecodable");
			weft_kv_list_clear(&l);
			eps_free(e, k);
			return r;
		}
		if (weft_json_get_object(res.doc, "spec", &spec) < 0 ||
		    weft_json_get_string(spec, "containerID", &cid) < 0 ||
		    weft_json_get_string(spec, "ifname", &ifn) < 0) {
			weft_resource_clear(&res);
			continue;
		}
		e[k].name = wstrdup(res.name);
		e[k].container_id = wstrdup(cid);
		e[k].ifname = wstrdup(ifn);
		if (weft_json_get_array(spec, "ipNetworks", &nets) == 0) {
			e[k].ips = wcalloc((size_t)cJSON_GetArraySize(nets) + 1, sizeof(*e[k].ips));
			cJSON_ArrayForEach(it, nets) {
				struct weft_cidr cidr;
				if (cJSON_IsString(it) && weft_cidr_parse_host(it->valuestring, &cidr) == 0)
					e[k].ips[e[k].nips++] = cidr.ip;
			}
		}
		k++;
		weft_resource_clear(&res);
	}
	weft_kv_list_clear(&l);
	qsort(e, k, sizeof(*e), ep_cmp);
	*out = e;
	*n = k;
	return 0;
}

/* The CNI attachment an allocation belongs to: the recorded container id
 * and ifname, else the two halves of a "CONTAINERID:IFNAME" handle.
 * Returns false when neither says. */
static bool alloc_owner(const struct weft_ipam_allocation *a, char **cid, char **ifname)
{
	if (a->attrs.container_id && a->attrs.ifname) {
		*cid = wstrdup(a->attrs.container_id);
		*ifname = wstrdup(a->attrs.ifname);
		return true;
	}
	const char *colon = a->handle ? strchr(a->handle, ':') : NULL;
	if (!colon || colon == a->handle || !colon[1] || strchr(colon + 1, ':'))
		return false;
	*cid = wstrndup(a->handle, (size_t)(colon - a->handle));
	*ifname = wstrdup(colon + 1);
	return true;
}

enum verdict { V_LIVE, V_ORPHAN, V_UNCHECKED, V_IPAM_ONLY, V_TUNNEL };

/* Judge one allocation against the endpoints; *why gets the reason for an
 * orphan (malloc'ed). */
static enum verdict judge(const struct weft_ipam_allocation *a, const struct ep *eps, size_t neps, char **why)
{
	_cleanup_free_ char *cid = NULL, *ifname = NULL;

	if (a->handle && startswith(a->handle, WEFT_IPAM_VXLAN_TUNNEL_HANDLE_PREFIX))
		return V_TUNNEL;
	if (!alloc_owner(a, &cid, &ifname))
		return V_UNCHECKED;
	struct ep key = {.container_id = cid, .ifname = ifname};
	const struct ep *e = bsearch(&key, eps, neps, sizeof(*eps), ep_cmp);
	/* weft-ipam writes no Endpoint (another plugin owns the interface):
	 * nothing here can tell a live one from a leak. */
	if (!e && a->attrs.plugin && streq(a->attrs.plugin, "weft-ipam"))
		return V_IPAM_ONLY;
	if (!e) {
		*why = wasprintf("no Endpoint for container %s, interface %s", cid, ifname);
		return V_ORPHAN;
	}
	for (size_t i = 0; i < e->nips; i++)
		if (weft_ip_eq(&e->ips[i], &a->ip))
			return V_LIVE;
	*why = wasprintf("Endpoint %s (container %s, interface %s) does not list the address", e->name, cid,
			 ifname);
	return V_ORPHAN;
}

/* A candidate leak: an allocation without its Endpoint, identified by
 * address, handle and the create revision of the handle record (a handle
 * released and allocated again in between is a new allocation). */
struct cand {
	struct weft_ipam_allocation a;
	int64_t handle_rev; /* 0 when the handle record could not be read */
	char *why;
	bool resolved;      /* released or got its Endpoint during the grace */
	const char *how;
};

static int64_t handle_create_rev(struct ctl *ctl, const char *handle)
{
	struct weft_kv kv = {0};
	int64_t rev = 0;

	if (!handle)
		return 0;
	_cleanup_free_ char *key = wasprintf("%s%s", WEFT_IPAM_HANDLES_PREFIX, handle);
	if (weft_store_get(ctl->store, key, &kv) == 0) {
		rev = kv.create_rev;
		weft_kv_clear(&kv);
	}
	return rev;
}

/* Re-read allocations and endpoints and mark the candidates that are no
 * longer leaks. Returns 0 or 1 after a message. */
static int recheck(struct ctl *ctl, struct weft_ipam *m, struct cand *cs, size_t nc)
{
	struct weft_ipam_allocation *as = NULL;
	struct ep *eps = NULL;
	size_t na = 0, neps = 0;
	int r;

	r = weft_ipam_list_allocations(m, &as, &na);
	if (r < 0)
		return ctl_fail("ipam check: %s", ipam_err(m, r));
	if (load_endpoints(ctl, &eps, &neps)) {
		weft_ipam_allocations_free(as, na);
		return 1;
	}
	for (size_t i = 0; i < nc; i++) {
		if (cs[i].resolved)
			continue;
		const struct weft_ipam_allocation *now = NULL;
		for (size_t j = 0; j < na && !now; j++)
			if (weft_ip_eq(&as[j].ip, &cs[i].a.ip) && as[j].handle && cs[i].a.handle &&
			    streq(as[j].handle, cs[i].a.handle))
				now = &as[j];
		if (!now || handle_create_rev(ctl, now->handle) != cs[i].handle_rev) {
			cs[i].resolved = true;
			cs[i].how = "released during the grace period";
			continue;
		}
		_cleanup_free_ char *why = NULL;
		if (judge(now, eps, neps, &why) == V_LIVE) {
			cs[i].resolved = true;
			cs[i].how = "gained its Endpoint during the grace period";
		}
	}
	weft_ipam_allocations_free(as, na);
	eps_free(eps, neps);
	return 0;
}

/* 1 when the Node exists, 0 when not, -1 after a message. */
static int node_exists(struct ctl *ctl, const char *node)
{
	_cleanup_free_ char *key = wasprintf("%s%s", weft_kind_prefix(WEFT_KIND_NODE), node);
	struct weft_kv kv = {0};
	int r = weft_store_get(ctl->store, key, &kv);

	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		ctl_fail("ipam check: read %s: %s", key, weft_store_errmsg(ctl->store));
		return -1;
	}
	weft_kv_clear(&kv);
	return 1;
}

static void print_alloc_line(const char *tag, const struct weft_ipam_allocation *a, const char *why)
{
	char ips[WEFT_IP_STRLEN];
	printf("%-12s %s handle %s node %s: %s\n", tag, weft_ip_str(&a->ip, ips, sizeof(ips)), or_dash(a->handle),
	       or_dash(a->attrs.node), why);
}

static int cmd_check(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{"grace", required_argument, NULL, OPT_GRACE},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct weft_ipam *m = NULL;
	struct weft_ipam_allocation *as = NULL;
	struct ep *eps = NULL;
	struct cand *cs = NULL;
	char **problems = NULL;
	size_t na = 0, neps = 0, nc = 0, nproblems = 0, live = 0, unchecked = 0, ipam_only = 0;
	int64_t grace = 60;
	int c, r, ret = 1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_GRACE:
			if (weft_parse_int64(optarg, 0, 86400, &grace) < 0)
				return sub_usage_error("check", "--grace: expected seconds, 0..86400");
			break;
		case 'h':
			fputs(check_usage, stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (optind < argc)
		return sub_usage_error("check", "unexpected argument");
	if (open_ipam(ctl, &m))
		return 1;

	/* Allocations first, then endpoints: an ADD allocates before it writes
	 * its Endpoint, so an Endpoint written between the two reads is seen. */
	r = weft_ipam_list_allocations(m, &as, &na);
	if (r < 0) {
		ctl_fail("ipam check: %s", ipam_err(m, r));
		goto out;
	}
	if (load_endpoints(ctl, &eps, &neps))
		goto out;
	cs = wcalloc(na + 1, sizeof(*cs));
	for (size_t i = 0; i < na; i++) {
		char *why = NULL;
		switch (judge(&as[i], eps, neps, &why)) {
		case V_LIVE:
			live++;
			break;
		case V_UNCHECKED:
			unchecked++;
			print_alloc_line("unchecked", &as[i], "the handle names no CNI attachment");
			break;
		case V_IPAM_ONLY:
			ipam_only++;
			print_alloc_line("ipam-only", &as[i],
					 "weft-ipam allocation, no Endpoint record to check; CNI GC of its network decides");
			break;
		case V_TUNNEL:
			/* Its node's weftd keeps it while the Node exists. */
			r = node_exists(ctl, as[i].handle + strlen(WEFT_IPAM_VXLAN_TUNNEL_HANDLE_PREFIX));
			if (r < 0)
				goto out;
			if (r) {
				live++;
				break;
			}
			why = wasprintf("VXLAN tunnel address of node %s, which has no Node resource",
					as[i].handle + strlen(WEFT_IPAM_VXLAN_TUNNEL_HANDLE_PREFIX));
			/* fall through */
		case V_ORPHAN:
			cs[nc].a = as[i];
			memset(&as[i], 0, sizeof(as[i]));
			cs[nc].why = why;
			cs[nc].handle_rev = handle_create_rev(ctl, cs[nc].a.handle);
			nc++;
			break;
		}
	}
	r = weft_ipam_check(m, &problems, &nproblems);
	if (r < 0) {
		ctl_fail("ipam check: %s", ipam_err(m, r));
		goto out;
	}

	/* The records carry no timestamp: watch the candidates instead of
	 * judging them by age. */
	size_t open = nc;
	if (nc > 0 && grace > 0) {
		printf("# %zu allocation%s without an Endpoint: watching for up to %lld s in case an ADD or DEL "
		       "is in flight (IPAM records carry no timestamp)\n",
		       nc, nc == 1 ? "" : "s", (long long)grace);
		fflush(stdout);
		int64_t deadline = weft_now_ms() + grace * 1000;
		while (open > 0 && weft_now_ms() < deadline) {
			int64_t left = deadline - weft_now_ms();
			struct timespec ts = {.tv_sec = 0, .tv_nsec = 500 * 1000000L};
			if (left < 500)
				ts.tv_nsec = (left > 0 ? left : 0) * 1000000L;
			nanosleep(&ts, NULL);
			if (recheck(ctl, m, cs, nc))
				goto out;
			open = 0;
			for (size_t i = 0; i < nc; i++)
				open += !cs[i].resolved;
		}
	}
	for (size_t i = 0; i < nc; i++)
		print_alloc_line(cs[i].resolved ? "pending" : "leaked", &cs[i].a,
				 cs[i].resolved ? cs[i].how : cs[i].why);
	for (size_t i = 0; i < nproblems; i++)
		printf("%-12s %s\n", "inconsistent", problems[i]);
	printf("%zu allocation%s: %zu live, %zu pending, %zu leaked, %zu unchecked, %zu ipam-only; %zu inconsistent "
	       "record%s\n",
	       na, na == 1 ? "" : "s", live, nc - open, open, unchecked, ipam_only, nproblems,
	       nproblems == 1 ? "" : "s");
	if (open > 0 || nproblems > 0)
		ctl_fail("ipam check: %zu leaked allocation%s, %zu inconsistent record%s", open,
			 open == 1 ? "" : "s", nproblems, nproblems == 1 ? "" : "s");
	else
		ret = 0;
out:
	for (size_t i = 0; cs && i < nc; i++) {
		weft_ipam_allocation_clear(&cs[i].a);
		free(cs[i].why);
	}
	free(cs);
	for (size_t i = 0; i < nproblems; i++)
		free(problems[i]);
	free(problems);
	weft_ipam_allocations_free(as, na);
	eps_free(eps, neps);
	close_ipam(ctl, m);
	return ret;
}

/* --- release --------------------------------------------------------------- */

static int cmd_release(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{"ip", required_argument, NULL, OPT_IP},
		{"handle", required_argument, NULL, OPT_HANDLE},
		{"empty-blocks", no_argument, NULL, OPT_EMPTY},
		{"node", required_argument, NULL, OPT_NODE},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *addr = NULL, *handle = NULL, *node = NULL;
	bool empty = false;
	struct weft_ipam *m = NULL;
	struct weft_ip ip;
	char ips[WEFT_IP_STRLEN];
	int c, r, ret = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_IP:
			addr = optarg;
			break;
		case OPT_HANDLE:
			handle = optarg;
			break;
		case OPT_EMPTY:
			empty = true;
			break;
		case OPT_NODE:
			node = optarg;
			break;
		case 'h':
			fputs(release_usage, stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (optind < argc)
		return sub_usage_error("release", "unexpected argument");
	if (node && !empty)
		return sub_usage_error("release", "--node goes with --empty-blocks");
	if ((addr != NULL) + (handle != NULL) + empty != 1)
		return sub_usage_error("release", "expected exactly one of --ip, --handle and --empty-blocks");
	if (empty) {
		if (open_ipam(ctl, &m))
			return 1;
		r = weft_ipam_release_empty_blocks(m, node);
		if (r < 0)
			ret = ctl_fail("ipam release: empty blocks: %s", ipam_err(m, r));
		else
			printf("released %d empty block%s%s%s\n", r, r == 1 ? "" : "s", node ? " of node " : "",
			       node ? node : "");
		close_ipam(ctl, m);
		return ret;
	}
	if (addr && weft_ip_parse(addr, &ip) < 0)
		return sub_usage_error("release", "--ip: not an IP address");
	if (handle && !*handle)
		return sub_usage_error("release", "--handle: empty");
	if (open_ipam(ctl, &m))
		return 1;

	if (addr) {
		struct weft_ipam_allocation a = {0};
		weft_ip_str(&ip, ips, sizeof(ips));
		/* Look the holder up first only to say what was released. */
		r = weft_ipam_lookup_ip(m, &ip, &a);
		if (r < 0 && r != -ENOENT) {
			ret = ctl_fail("ipam release: look up %s: %s", ips, ipam_err(m, r));
			goto out;
		}
		r = weft_ipam_release_ip(m, &ip);
		if (r < 0)
			ret = ctl_fail("ipam release: %s: %s", ips, ipam_err(m, r));
		else if (r == 0)
			printf("%s: not allocated, nothing released\n", ips);
		else
			printf("released %s (handle %s, node %s)\n", ips, or_dash(a.handle), or_dash(a.attrs.node));
		weft_ipam_allocation_clear(&a);
	} else {
		struct weft_ipam_allocation *as = NULL;
		size_t na = 0;
		struct weft_buf list = {0};

		r = weft_ipam_list_allocations(m, &as, &na);
		if (r < 0) {
			ret = ctl_fail("ipam release: %s", ipam_err(m, r));
			goto out;
		}
		for (size_t i = 0; i < na; i++)
			if (as[i].handle && streq(as[i].handle, handle))
				weft_buf_printf(&list, "%s%s", list.len ? ", " : "",
						weft_ip_str(&as[i].ip, ips, sizeof(ips)));
		weft_ipam_allocations_free(as, na);
		r = weft_ipam_release_handle(m, handle);
		if (r < 0)
			ret = ctl_fail("ipam release: handle %s: %s", handle, ipam_err(m, r));
		else if (r == 0)
			printf("handle %s holds no address, nothing released\n", handle);
		else
			printf("released %d address%s of handle %s%s%s\n", r, r == 1 ? "" : "es", handle,
			       list.len ? ": " : "", list.len ? list.data : "");
		weft_buf_free(&list);
	}
out:
	close_ipam(ctl, m);
	return ret;
}

int ctl_cmd_ipam(struct ctl *ctl, int argc, char **argv)
{
	if (argc < 2)
		return fprintf(stderr, "weftctl: ipam: expected show, check or release (see weftctl ipam --help)\n"),
		       2;
	if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
		fputs(ipam_usage, stdout);
		return 0;
	}
	/* The sub-command's own options start after its name. */
	optind = 0;
	if (streq(argv[1], "show"))
		return cmd_show(ctl, argc - 1, argv + 1);
	if (streq(argv[1], "check"))
		return cmd_check(ctl, argc - 1, argv + 1);
	if (streq(argv[1], "release"))
		return cmd_release(ctl, argc - 1, argv + 1);
	return fprintf(stderr, "weftctl: ipam: unknown command \"%s\" (see weftctl ipam --help)\n", argv[1]), 2;
}
