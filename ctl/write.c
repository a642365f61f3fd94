/* write.c - weftctl apply, create, replace and delete.
 *
 * Every command validates the whole manifest first and then writes it in
 * ONE store transaction: one bad document, nothing written; a document
 * that cannot be created (exists) or replaced/deleted (missing) fails the
 * whole transaction, and the error names the first such document.
 */
#include "ctl/ctl.h"
#include "lib/ipaddr.h"
#include "lib/json.h"

#include <getopt.h>

static const char *const write_usage =
	"FILE holds one or more YAML documents (separated by ---) or JSON (an\n"
	"object, an array, or a List). \"-\" reads standard input. Every document is\n"
	"validated before anything is written, and all are written in one\n"
	"transaction: either every resource is written or none is.\n"
	"\n"
	"Options:\n"
	"  -f, --filename FILE   the manifest (required)\n"
	"  -h, --help            this help\n";

static const char *const delete_usage =
	"Usage: weftctl delete [--force] -f FILE|-\n"
	"       weftctl delete [--force] KIND NAME...\n"
	"\n"
	"Delete resources, all or none: if any of them does not exist, nothing is\n"
	"deleted.\n"
	"\n"
	"A Node goes with what belongs to it, as in Calico: its Endpoints, the\n"
	"BGPPeers whose spec.node names it, every address IPAM holds for it (its\n"
	"pods' and its VXLAN tunnel address) and its blocks (a block that still\n"
	"holds addresses other nodes borrowed stays, affine to nobody). Stop the\n"
	"node's weftd first: a Node whose weftd reported status in the last 11\n"
	"minutes is refused unless --force, but for one whose weftd said on its\n"
	"way out that it stopped. If the command fails part-way, the Node is kept\n"
	"and running it again finishes the job.\n"
	"\n"
	"Options:\n"
	"  -f, --filename FILE   delete the resources named in a manifest\n"
	"      --force           delete a Node even if its weftd seems to run\n"
	"  -h, --help            this help\n";

enum write_mode { MODE_APPLY, MODE_CREATE, MODE_REPLACE, MODE_DELETE };

static const char *res_label(const struct weft_resource *r)
{
	return weft_kind_info(r->kind)->name;
}

/* The spec.cidr of an IPPool document, or false. */
static bool pool_cidr_of(const cJSON *doc, struct weft_cidr *c)
{
	const char *s;

	return weft_json_get_string(cJSON_GetObjectItemCaseSensitive(doc, "spec"), "cidr", &s) == 0 &&
	       weft_cidr_parse(s, true, c) == 0;
}

/* IPPools must not overlap (as in Calico): IPAM claims no block from
 * overlapping pools, since blocks of different sizes could overlap. Each
 * IPPool of the manifest is checked against the others of the manifest
 * and against the stored pools it does not replace. This is the only
 * check across records: two writers at once could still each add one of
 * two overlapping pools; IPAM then claims no block from either, and its
 * error names both. Returns 0, or 1 after a message. */
static int check_pool_overlaps(struct ctl *ctl, const struct weft_resource *rs, size_t n)
{
	struct weft_kv_list l = {0};
	bool listed = false;
	int r, ret = 0;

	for (size_t i = 0; i < n; i++) {
		struct weft_cidr a, b;
		char as[WEFT_CIDR_STRLEN], bs[WEFT_CIDR_STRLEN];

		if (rs[i].kind != WEFT_KIND_IPPOOL || !pool_cidr_of(rs[i].doc, &a))
			continue;
		for (size_t j = 0; j < n; j++)
			if (j != i && rs[j].kind == WEFT_KIND_IPPOOL && pool_cidr_of(rs[j].doc, &b) &&
			    weft_cidr_overlaps(&a, &b)) {
				weft_kv_list_clear(&l);
				return ctl_fail("%s: spec.cidr: %s overlaps IPPool %s (%s) of the manifest; nothing written",
						rs[i].name, weft_cidr_str(&a, as, sizeof(as)), rs[j].name,
						weft_cidr_str(&b, bs, sizeof(bs)));
			}
		if (!listed) {
			r = weft_store_list(ctl->store, weft_kind_prefix(WEFT_KIND_IPPOOL), &l);
			if (r < 0)
				return ctl_fail("list %s: %s", weft_kind_prefix(WEFT_KIND_IPPOOL),
						weft_store_errmsg(ctl->store));
			listed = true;
		}
		for (size_t k = 0; k < l.n && !ret; k++) {
			struct weft_resource cur = {0};
			bool replaced = false;

			if (weft_resource_decode(l.items[k].value, l.items[k].value_len, &cur, NULL) < 0)
				continue; /* weftctl store check reports it */
			for (size_t j = 0; j < n && !replaced; j++)
				replaced = rs[j].kind == WEFT_KIND_IPPOOL && streq(rs[j].name, cur.name);
			if (!replaced && pool_cidr_of(cur.doc, &b) && weft_cidr_overlaps(&a, &b))
				ret = ctl_fail("%s: spec.cidr: %s overlaps IPPool %s (%s); nothing written", rs[i].name,
					       weft_cidr_str(&a, as, sizeof(as)), cur.name,
					       weft_cidr_str(&b, bs, sizeof(bs)));
			weft_resource_clear(&cur);
		}
		if (ret)
			break;
	}
	weft_kv_list_clear(&l);
	return ret;
}

/* Write (or delete) the resources in one transaction. For create the
 * compare is "absent"; for replace and delete it is "present with the
 * mod_rev just read"; apply has no compare. A compare that fails because
 * of a concurrent writer is retried (ctl_retry_again(): for up to 5 s);
 * one that fails because a resource exists (create) or is missing
 * (replace, delete) is reported. */
static int write_resources(struct ctl *ctl, enum write_mode mode, struct weft_resource *rs, size_t n, bool force)
{
	struct weft_txn_cmp *cmps = wcalloc(n, sizeof(*cmps));
	struct weft_txn_op *ops = wcalloc(n, sizeof(*ops));
	char **keys = wcalloc(n, sizeof(*keys));
	char **values = wcalloc(n, sizeof(*values));
	char **cascaded = wcalloc(n, sizeof(*cascaded));
	int64_t *node_rev = wcalloc(n, sizeof(*node_rev)); /* a Node's, as its check read it */
	bool *done = wcalloc(n, sizeof(*done));            /* deleted with a Node already */
	char **gone = NULL;                                /* the keys the Nodes' cascades deleted */
	size_t ngone = 0;
	const char *nothing = mode == MODE_DELETE ? "deleted" : "written";
	size_t ncmps = 0;
	int64_t rev = 0;
	int ret = 1, r = 0;

	for (size_t i = 0; i < n; i++) {
		keys[i] = weft_resource_key(&rs[i]);
		if (mode != MODE_DELETE)
			values[i] = weft_resource_encode(&rs[i], false);
	}
	if (mode != MODE_DELETE && check_pool_overlaps(ctl, rs, n))
		goto out;
	if (mode == MODE_DELETE) {
		/* Every resource must exist before a Node's belongings go. */
		for (size_t i = 0; i < n; i++) {
			struct weft_kv kv = {0};
			r = weft_store_get(ctl->store, keys[i], &kv);
			weft_kv_clear(&kv);
			if (r == -ENOENT) {
				ret = ctl_fail("%s: %s %s not found; nothing deleted", rs[i].name, res_label(&rs[i]),
					       rs[i].name);
				goto out;
			}
			if (r < 0) {
				ret = ctl_fail("read %s: %s", keys[i], weft_store_errmsg(ctl->store));
				goto out;
			}
		}
		/* Every Node is checked before any loses what belongs to it. */
		for (size_t i = 0; i < n; i++)
			if (rs[i].kind == WEFT_KIND_NODE && ctl_node_delete_check(ctl, rs[i].name, force, &node_rev[i]))
				goto out;
		for (size_t i = 0; i < n; i++) {
			if (rs[i].kind != WEFT_KIND_NODE)
				continue;
			if (ctl_node_delete_cascade(ctl, rs[i].name, &gone, &ngone, &cascaded[i])) {
				if (!streq(nothing, "deleted"))
					fputs("weftctl: (the Nodes before it lost their Endpoints, BGPPeers and addresses "
					      "already, and are kept)\n", stderr);
				goto out;
			}
			nothing = "more deleted (what belongs to the Nodes is deleted already; the Nodes are kept: "
				  "run the command again)";
		}
		/* The manifest's own Endpoints and BGPPeers of those Nodes went
		 * with them. */
		for (size_t i = 0; i < n; i++)
			for (size_t k = 0; k < ngone && !done[i]; k++)
				done[i] = streq(keys[i], gone[k]);
	}

	for (struct ctl_retry rt = {0};;) {
		size_t nops = 0;
		ncmps = 0;
		for (size_t i = 0; i < n; i++) {
			if (done[i])
				continue;
			struct weft_txn_op *op = &ops[nops++];
			op->key = keys[i];
			if (mode == MODE_DELETE) {
				op->type = WEFT_OP_DELETE;
			} else {
				op->type = WEFT_OP_PUT;
				op->value = values[i];
				op->value_len = strlen(values[i]);
			}
			if (mode == MODE_APPLY)
				continue;
			if (node_rev[i]) {
				/* A Node whose belongings went: only as its check read it. */
				cmps[ncmps++] = (struct weft_txn_cmp){keys[i], node_rev[i]};
				continue;
			}
			struct weft_kv kv = {0};
			r = weft_store_get(ctl->store, keys[i], &kv);
			if (r == -ENOENT) {
				if (mode != MODE_CREATE) {
					ret = ctl_fail("%s: %s %s not found; nothing %s", rs[i].name, res_label(&rs[i]),
						       rs[i].name, nothing);
					goto out;
				}
				cmps[ncmps++] = (struct weft_txn_cmp){keys[i], 0};
			} else if (r < 0) {
				ret = ctl_fail("read %s: %s", keys[i], weft_store_errmsg(ctl->store));
				goto out;
			} else {
				int64_t mod = kv.mod_rev;
				weft_kv_clear(&kv);
				if (mode == MODE_CREATE) {
					ret = ctl_fail("%s: %s %s already exists; nothing written", rs[i].name,
						       res_label(&rs[i]), rs[i].name);
					goto out;
				}
				cmps[ncmps++] = (struct weft_txn_cmp){keys[i], mod};
			}
		}
		r = weft_store_txn(ctl->store, cmps, ncmps, ops, nops, &rev);
		if (r != -ECANCELED)
			break;
		for (size_t i = 0; i < n; i++) {
			struct weft_kv kv = {0};
			if (!node_rev[i] || weft_store_get(ctl->store, keys[i], &kv) < 0)
				continue;
			int64_t mod = kv.mod_rev;
			weft_kv_clear(&kv);
			if (mod != node_rev[i]) {
				ret = ctl_fail("%s: Node %s changed while what belongs to it was deleted (did its weftd "
					       "start again?); nothing %s: check it, then run the command again",
					       rs[i].name, rs[i].name, nothing);
				goto out;
			}
		}
		if (!ctl_retry_again(&rt))
			break;
	}
	if (r == -ECANCELED) {
		ret = ctl_fail("resources kept changing under us; nothing %s, try again", nothing);
		goto out;
	}
	if (r < 0) {
		ret = ctl_write_failed(ctl, r, nothing);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		static const char *verbs[] = {"applied", "created", "replaced", "deleted"};
		printf("%s %s %s", verbs[mode], res_label(&rs[i]), rs[i].name);
		if (cascaded[i])
			printf(" and its %s", cascaded[i]);
		putchar('\n');
	}
	ret = 0;
out:
	for (size_t i = 0; i < n; i++) {
		free(keys[i]);
		free(values[i]);
		free(cascaded[i]);
	}
	free(keys);
	free(values);
	free(cascaded);
	free(node_rev);
	free(done);
	for (size_t k = 0; k < ngone; k++)
		free(gone[k]);
	free(gone);
	free(cmps);
	free(ops);
	return ret;
}

static int load_manifest(const char *file, struct weft_resource **rs, size_t *n)
{
	_cleanup_free_ char *text = NULL, *err = NULL;
	size_t len;
	int r;

	r = ctl_read_file(file, &text, &len);
	if (r < 0)
		return ctl_fail("%s: %s", streq(file, "-") ? "standard input" : file, strerror(-r));
	r = weft_manifest_parse(text, len, rs, n, &err);
	if (r < 0)
		return ctl_fail("%s; nothing written", err ? err : strerror(-r));
	return 0;
}

/* force: NULL where --force is no option. */
static int parse_file_opt(int argc, char **argv, const char *usage, const char *cmd, const char *what,
			  const char **file, bool *help, bool *force)
{
	enum { OPT_FORCE = 256 };
	static const struct option opts[] = {
		{"filename", required_argument, NULL, 'f'},
		{"force", no_argument, NULL, OPT_FORCE},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;

	*help = false;
	*file = NULL;
	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			*file = optarg;
			break;
		case OPT_FORCE:
			if (!force)
				return fprintf(stderr, "weftctl: %s: unknown option --force\n", cmd), 2;
			*force = true;
			break;
		case 'h':
			if (*what)
				printf("Usage: weftctl %s -f FILE|-\n\n%s\n", cmd, what);
			fputs(usage, stdout);
			*help = true;
			return 0;
		default:
			return 2;
		}
	}
	return 0;
}

int ctl_cmd_write(struct ctl *ctl, const char *cmd, int argc, char **argv)
{
	struct weft_resource *rs = NULL;
	const char *file, *what;
	enum write_mode mode;
	size_t n = 0;
	bool help;
	int r;

	if (streq(cmd, "apply")) {
		mode = MODE_APPLY;
		what = "Create the resources of a manifest, or replace them if they exist.";
	} else if (streq(cmd, "create")) {
		mode = MODE_CREATE;
		what = "Create the resources of a manifest; fails (writing nothing) if any exists.";
	} else {
		mode = MODE_REPLACE;
		what = "Replace the resources of a manifest; fails (writing nothing) if any is missing.";
	}
	r = parse_file_opt(argc, argv, write_usage, cmd, what, &file, &help, NULL);
	if (r || help)
		return r;
	if (!file)
		return fprintf(stderr, "weftctl: %s: -f FILE is required (see weftctl %s --help)\n", cmd, cmd), 2;
	if (optind < argc)
		return fprintf(stderr, "weftctl: %s: unexpected argument \"%s\"\n", cmd, argv[optind]), 2;
	if (load_manifest(file, &rs, &n))
		return 1;
	if (ctl_open_store(ctl)) {
		weft_resources_free(rs, n);
		return 1;
	}
	r = write_resources(ctl, mode, rs, n, false);
	weft_resources_free(rs, n);
	ctl_close_store(ctl);
	return r;
}

int ctl_cmd_delete(struct ctl *ctl, int argc, char **argv)
{
	struct weft_resource *rs = NULL;
	const char *file;
	size_t n = 0;
	bool help, force = false;
	int r;

	r = parse_file_opt(argc, argv, delete_usage, "delete", "", &file, &help, &force);
	if (r || help)
		return r;
	if (file) {
		if (optind < argc)
			return fprintf(stderr, "weftctl: delete: give -f FILE or KIND NAME..., not both\n"), 2;
		if (load_manifest(file, &rs, &n))
			return 1;
	} else {
		enum weft_kind kind;
		if (argc - optind < 2)
			return fprintf(stderr, "weftctl: delete: expected -f FILE or KIND NAME... "
					       "(see weftctl delete --help)\n"), 2;
		if (weft_kind_lookup(argv[optind], &kind) < 0)
			return ctl_fail("delete: unknown kind \"%s\"", argv[optind]);
		n = (size_t)(argc - optind - 1);
		rs = wcalloc(n, sizeof(*rs));
		for (size_t i = 0; i < n; i++) {
			rs[i].kind = kind;
			rs[i].name = wstrdup(argv[optind + 1 + i]);
			for (size_t j = 0; j < i; j++)
				if (streq(rs[i].name, rs[j].name)) {
					weft_resources_free(rs, i + 1);
					return ctl_fail("delete: %s given twice", argv[optind + 1 + i]);
				}
			if (!*rs[i].name || strchr(rs[i].name, '/')) {
				weft_resources_free(rs, i + 1);
				return ctl_fail("delete: \"%s\" is not a resource name", argv[optind + 1 + i]);
			}
		}
	}
	if (ctl_open_store(ctl)) {
		weft_resources_free(rs, n);
		return 1;
	}
	r = write_resources(ctl, MODE_DELETE, rs, n, force);
	weft_resources_free(rs, n);
	ctl_close_store(ctl);
	return r;
}
