/* get.c - weftctl get: resources as a table, JSON or YAML. */
#include "ctl/ctl.h"
#include "ipam/ipam.h"

#include <getopt.h>
#include <math.h>

static const char *const get_usage =
	"Usage: weftctl get KIND [NAME...] [-o table|json|yaml]\n"
	"\n"
	"Show resources of one kind: all of them, or the named ones.\n"
	"JSON and YAML output can be fed back to weftctl apply.\n"
	"\n"
	"Options:\n"
	"  -o, --output FORMAT   table (default), json or yaml\n"
	"  -h, --help            this help\n";

struct column {
	const char *header;
	/* A dotted path into the canonical document, or "@name": a cell
	 * computed from more than the document (node_cell()). */
	const char *path;
};

/* What the node columns need besides the Node: the affine blocks from the
 * IPAM records and the default AS. */
struct node_extra {
	struct weft_ipam_usage *usage;
	size_t nusage;
	int64_t default_as;
};

#define NODE_BLOCKS_SHOWN 4

/* The table columns per kind; NAME always comes first. */
static const struct column *columns_for(enum weft_kind kind)
{
	static const struct column pool[] = {{"CIDR", "spec.cidr"}, {"BLOCKSIZE", "spec.blockSize"},
					     {"NAT", "spec.natOutgoing"}, {"VXLAN", "spec.vxlanMode"},
					     {"DISABLED", "spec.disabled"}, {0}};
	static const struct column profile[] = {{"TAGS", "spec.tags"}, {"INBOUND", "spec.inboundRules"},
						{"OUTBOUND", "spec.outboundRules"}, {0}};
	static const struct column policy[] = {{"ORDER", "spec.order"}, {"SELECTOR", "spec.selector"},
					       {"INGRESS", "spec.ingress"}, {"EGRESS", "spec.egress"}, {0}};
	static const struct column node[] = {{"ADDRESS", "spec.bgp.ipv4Address"},
					     {"AS", "@as"},
					     {"BLOCKS", "@blocks"},
					     {"HEALTHY", "@healthy"},
					     {"BGP", "@bgp"},
					     {"RRCLUSTER", "spec.bgp.routeReflectorClusterID"},
					     {0}};
	static const struct column peer[] = {{"PEERIP", "spec.peerIP"}, {"ASN", "spec.asNumber"},
					     {"NODE", "spec.node"}, {0}};
	static const struct column bgpconfig[] = {{"ASN", "spec.asNumber"}, {"MESH", "spec.nodeToNodeMeshEnabled"},
						  {0}};
	static const struct column tenant[] = {{"NETNAME", "spec.netName"}, {"NETID", "spec.netID"},
					       {"ACTION", "spec.action"}, {0}};
	static const struct column network[] = {{"TYPE", "spec.type"}, {"MASTER", "spec.master"},
						{"MODE", "spec.mode"}, {"RANGE", "spec.ipam.range"}, {0}};
	static const struct column endpoint[] = {{"NODE", "spec.node"}, {"IFNAME", "spec.hostIfname"},
						 {"IPS", "spec.ipNetworks"}, {"PROFILES", "spec.profiles"}, {0}};
	static const struct column none[] = {{0}};

	switch (kind) {
	case WEFT_KIND_IPPOOL: return pool;
	case WEFT_KIND_PROFILE: return profile;
	case WEFT_KIND_POLICY: return policy;
	case WEFT_KIND_NODE: return node;
	case WEFT_KIND_BGPPEER: return peer;
	case WEFT_KIND_BGPCONFIG: return bgpconfig;
	case WEFT_KIND_TENANT: return tenant;
	case WEFT_KIND_NETWORK: return network;
	case WEFT_KIND_ENDPOINT: return endpoint;
	default: return none;
	}
}

static const cJSON *lookup_path(const cJSON *doc, const char *path)
{
	char buf[128];
	char *save = NULL;

	weft_strlcpy(buf, path, sizeof(buf));
	for (char *tok = strtok_r(buf, ".", &save); tok && doc; tok = strtok_r(NULL, ".", &save))
		doc = cJSON_GetObjectItemCaseSensitive(doc, tok);
	return doc;
}

static void format_scalar(struct weft_buf *b, const cJSON *v)
{
	if (cJSON_IsString(v))
		weft_buf_printf(b, "%s", v->valuestring);
	else if (cJSON_IsBool(v))
		weft_buf_printf(b, "%s", cJSON_IsTrue(v) ? "true" : "false");
	else if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		char s[32];
		/* Integers as integers. Others, and integers beyond long long
		 * (a Policy's order may be 1e300, and converting that is
		 * undefined), with 15 significant digits, or 17 when 15 do not
		 * read back as the same number (as -o yaml prints them). */
		if (fabs(d) < 9.2e18 && d == floor(d)) {
			weft_buf_printf(b, "%lld", (long long)d);
		} else {
			snprintf(s, sizeof(s), "%.15g", d);
			if (strtod(s, NULL) != d)
				snprintf(s, sizeof(s), "%.17g", d);
			weft_buf_printf(b, "%s", s);
		}
	}
}

/* A cell: scalars as themselves, lists of scalars comma-joined, lists of
 * objects (rules) as a count, maps as k=v pairs. */
static char *format_cell(const cJSON *v)
{
	struct weft_buf b = {0};
	const cJSON *it;
	bool first = true;

	if (!v || cJSON_IsNull(v)) {
		weft_buf_append(&b, "", 0);
	} else if (cJSON_IsArray(v)) {
		int n = cJSON_GetArraySize(v);
		if (n > 0 && (cJSON_IsObject(v->child) || cJSON_IsArray(v->child)))
			weft_buf_printf(&b, "%d rule%s", n, n == 1 ? "" : "s");
		else
			cJSON_ArrayForEach(it, v) {
				if (!first)
					weft_buf_append(&b, ",", 1);
				format_scalar(&b, it);
				first = false;
			}
	} else if (cJSON_IsObject(v)) {
		cJSON_ArrayForEach(it, v) {
			if (!first)
				weft_buf_append(&b, ",", 1);
			weft_buf_printf(&b, "%s=", it->string);
			format_scalar(&b, it);
			first = false;
		}
	} else {
		format_scalar(&b, v);
	}
	if (b.len == 0)
		weft_buf_append(&b, "", 0);
	return weft_buf_steal(&b);
}

/* A node's computed cell: the AS (the BGPConfig's in parentheses when
 * the node has none of its own), its affine blocks (the first few and a
 * count), its health and "E/T established" from spec.status. */
static char *node_cell(const char *what, const struct weft_resource *r, const struct node_extra *x)
{
	const cJSON *st = lookup_path(r->doc, "spec.status"), *v;
	struct weft_buf b = {0};

	if (streq(what, "@as")) {
		v = lookup_path(r->doc, "spec.bgp.asNumber");
		if (cJSON_IsNumber(v))
			weft_buf_printf(&b, "%lld", (long long)v->valuedouble);
		else
			weft_buf_printf(&b, "(%lld)", (long long)x->default_as);
	} else if (streq(what, "@blocks")) {
		size_t shown = 0, more = 0;

		for (size_t i = 0; i < x->nusage; i++) {
			char cbuf[WEFT_CIDR_STRLEN];

			if (x->usage[i].kind != WEFT_IPAM_USAGE_BLOCK || !x->usage[i].affinity ||
			    !streq(x->usage[i].affinity, r->name))
				continue;
			if (shown == NODE_BLOCKS_SHOWN) {
				more++;
				continue;
			}
			weft_buf_printf(&b, "%s%s", shown ? "," : "", weft_cidr_str(&x->usage[i].cidr, cbuf, sizeof(cbuf)));
			shown++;
		}
		if (more)
			weft_buf_printf(&b, ",+%zu more", more);
	} else if (streq(what, "@healthy")) {
		v = cJSON_GetObjectItemCaseSensitive(st, "healthy");
		if (cJSON_IsBool(v))
			weft_buf_printf(&b, "%s", cJSON_IsTrue(v) ? "true" : "false");
	} else if (streq(what, "@bgp")) {
		const cJSON *bgp = cJSON_GetObjectItemCaseSensitive(st, "bgp");
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(bgp, "established");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(bgp, "total");
		const char *bird = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "birdState"));

		if (cJSON_IsNumber(e) && cJSON_IsNumber(t))
			weft_buf_printf(&b, "%lld/%lld established", (long long)e->valuedouble, (long long)t->valuedouble);
		else if (bird && !streq(bird, "disabled"))
			weft_buf_printf(&b, "BIRD %s", bird);
	}
	if (b.len == 0)
		weft_buf_append(&b, "", 0);
	return weft_buf_steal(&b);
}

static void print_table(enum weft_kind kind, struct weft_resource *rs, size_t n, const struct node_extra *x)
{
	const struct column *cols = columns_for(kind);
	size_t ncols = 1;
	while (cols[ncols - 1].header)
		ncols++;
	char ***cells = wcalloc(n + 1, sizeof(*cells));
	size_t *width = wcalloc(ncols, sizeof(*width));

	for (size_t row = 0; row <= n; row++) {
		cells[row] = wcalloc(ncols, sizeof(char *));
		for (size_t c = 0; c < ncols; c++) {
			if (row == 0)
				cells[row][c] = wstrdup(c == 0 ? "NAME" : cols[c - 1].header);
			else if (c == 0)
				cells[row][c] = wstrdup(rs[row - 1].name);
			else if (cols[c - 1].path[0] == '@')
				cells[row][c] = node_cell(cols[c - 1].path, &rs[row - 1], x);
			else
				cells[row][c] = format_cell(lookup_path(rs[row - 1].doc, cols[c - 1].path));
			size_t l = strlen(cells[row][c]);
			if (l > width[c])
				width[c] = l;
		}
	}
	for (size_t row = 0; row <= n; row++) {
		struct weft_buf line = {0};
		for (size_t c = 0; c < ncols; c++) {
			if (c + 1 < ncols)
				weft_buf_printf(&line, "%-*s   ", (int)width[c], cells[row][c]);
			else
				weft_buf_printf(&line, "%s", cells[row][c]);
			free(cells[row][c]);
		}
		while (line.len > 0 && line.data[line.len - 1] == ' ')
			line.data[--line.len] = 0;
		printf("%s\n", line.data);
		weft_buf_free(&line);
		free(cells[row]);
	}
	free(cells);
	free(width);
}

static void print_docs(struct weft_resource *rs, size_t n, bool single, bool yaml)
{
	cJSON *out;

	if (single) {
		out = cJSON_Duplicate(rs[0].doc, true);
	} else {
		out = cJSON_CreateObject();
		cJSON *items = cJSON_CreateArray();
		if (!out || !items)
			abort();
		cJSON_AddStringToObject(out, "kind", "List");
		cJSON_AddItemToObject(out, "items", items);
		for (size_t i = 0; i < n; i++)
			cJSON_AddItemToArray(items, cJSON_Duplicate(rs[i].doc, true));
	}
	if (!out)
		abort();
	char *text = yaml ? weft_yaml_emit(out) : cJSON_Print(out);
	if (!text)
		abort();
	fputs(text, stdout);
	if (!yaml || (text[0] && text[strlen(text) - 1] != '\n'))
		putchar('\n');
	free(text);
	cJSON_Delete(out);
}

/* The blocks and the default AS for the node table. Failures only leave
 * those cells empty (with a warning): the nodes themselves were read. */
static void node_extra_load(struct ctl *ctl, struct node_extra *x)
{
	struct weft_ipam *m = NULL;
	struct weft_kv kv = {0};
	int r;

	r = weft_store_get(ctl->store, "/weft/v1/bgpconfigs/default", &kv);
	if (r == 0) {
		struct weft_resource res = {0};
		const cJSON *as;

		if (weft_resource_decode(kv.value, kv.value_len, &res, NULL) == 0) {
			as = lookup_path(res.doc, "spec.asNumber");
			if (cJSON_IsNumber(as))
				x->default_as = (int64_t)as->valuedouble;
			weft_resource_clear(&res);
		}
		weft_kv_clear(&kv);
	}
	r = weft_ipam_new(ctl->store, &m);
	if (r == 0)
		r = weft_ipam_usage(m, &x->usage, &x->nusage);
	if (r < 0)
		fprintf(stderr, "weftctl: get nodes: reading the IPAM blocks: %s\n", strerror(-r));
	weft_ipam_free(m);
}

int ctl_cmd_get(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *format = "table";
	struct node_extra extra = {.default_as = 64512};
	struct weft_resource *rs = NULL;
	size_t n = 0;
	enum weft_kind kind;
	int c, ret = 0;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			format = optarg;
			break;
		case 'h':
			fputs(get_usage, stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (!streq(format, "table") && !streq(format, "json") && !streq(format, "yaml"))
		return fprintf(stderr, "weftctl: get: -o: \"%s\" is not one of table, json, yaml\n", format), 2;
	if (optind >= argc)
		return fprintf(stderr, "weftctl: get: expected KIND (see weftctl get --help)\n"), 2;
	if (weft_kind_lookup(argv[optind], &kind) < 0)
		return ctl_fail("get: unknown kind \"%s\"", argv[optind]);
	int nnames = argc - optind - 1;
	char **names = argv + optind + 1;

	if (ctl_open_store(ctl))
		return 1;

	if (nnames > 0) {
		rs = wcalloc((size_t)nnames, sizeof(*rs));
		for (int i = 0; i < nnames; i++) {
			struct weft_resource probe = {.kind = kind, .name = names[i]};
			_cleanup_free_ char *key = weft_resource_key(&probe), *err = NULL;
			struct weft_kv kv = {0};
			int r = weft_store_get(ctl->store, key, &kv);
			if (r == -ENOENT) {
				ret = ctl_fail("%s %s not found", weft_kind_info(kind)->name, names[i]);
				continue;
			}
			if (r < 0) {
				ret = ctl_fail("read %s: %s", key, weft_store_errmsg(ctl->store));
				continue;
			}
			if (weft_resource_decode(kv.value, kv.value_len, &rs[n], &err) < 0)
				ret = ctl_fail("%s: stored value is invalid: %s", key, err ? err : "undecodable");
			else
				n++;
			weft_kv_clear(&kv);
		}
	} else {
		struct weft_kv_list l = {0};
		int r = weft_store_list(ctl->store, weft_kind_prefix(kind), &l);
		if (r < 0) {
			ret = ctl_fail("list %s: %s", weft_kind_prefix(kind), weft_store_errmsg(ctl->store));
			ctl_close_store(ctl);
			return ret;
		}
		rs = wcalloc(l.n ? l.n : 1, sizeof(*rs));
		for (size_t i = 0; i < l.n; i++) {
			_cleanup_free_ char *err = NULL;
			if (weft_resource_decode(l.items[i].value, l.items[i].value_len, &rs[n], &err) < 0)
				ret = ctl_fail("%s: stored value is invalid: %s", l.items[i].key,
					       err ? err : "undecodable");
			else
				n++;
		}
		weft_kv_list_clear(&l);
	}
	if (kind == WEFT_KIND_NODE && streq(format, "table"))
		node_extra_load(ctl, &extra);
	ctl_close_store(ctl);

	if (streq(format, "table"))
		print_table(kind, rs, n, &extra);
	else if (n > 0 || nnames == 0)
		print_docs(rs, n, nnames == 1 && n == 1, streq(format, "yaml"));
	weft_resources_free(rs, n);
	weft_ipam_usage_free(extra.usage, extra.nusage);
	return ret;
}
