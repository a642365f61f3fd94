/* test-bgpconf.c - the BIRD config renderer: golden outputs for each
 * topology, properties checked on the text, determinism, errors, protocol
 * names, install (atomic write + bird -p), and loading a snapshot from a
 * file: store. Every config rendered here is checked with `bird -p`.
 * WEFT_UPDATE_GOLDEN=1 rewrites the golden files. Exits 77 when bird is
 * not installed. */
#include "bgpconf/bgpconf.h"

#include "ipam/ipam.h"
#include "lib/json.h"
#include "lib/test.h"

#include <arpa/inet.h>
#include <sys/stat.h>

static char g_dir[] = "/tmp/weft-test-bgpconf.XXXXXX";

/* --- helpers ----------------------------------------------------------------- */

static void snap_from(struct weft_bgp_snapshot *s, const char *yaml)
{
	_cleanup_free_ char *err = NULL;
	int r = weft_manifest_parse(yaml, strlen(yaml), &s->res, &s->nres, &err);

	if (r < 0) {
		fprintf(stderr, "manifest: %s\n", err ? err : strerror(-r));
		abort();
	}
}

static void block(struct weft_bgp_snapshot *s, const char *cidr, const char *node)
{
	struct weft_cidr c;

	if (weft_cidr_parse(cidr, true, &c) < 0)
		abort();
	weft_bgp_snapshot_add_block(s, &c, node);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	struct weft_buf b = {0};
	char chunk[4096];
	size_t n;

	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		weft_buf_append(&b, chunk, n);
	fclose(f);
	return weft_buf_steal(&b);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Check text with bird -p. */
static void check_bird(const char *name, const char *text)
{
	_cleanup_free_ char *path = wasprintf("%s/%s.conf", g_dir, name), *err = NULL;
	int r;

	CHECK_EQ_INT(weft_bgpconf_write_atomic(path, text, strlen(text)), 0);
	r = weft_bgpconf_check(NULL, path, &err);
	if (r < 0)
		fprintf(stderr, "bird -p %s: %s\n", name, err ? err : strerror(-r));
	CHECK_EQ_INT(r, 0);
}

/* Compare text with golden/<name>.conf (or rewrite it), and bird -p it. */
static void golden(const char *name, const char *text)
{
	_cleanup_free_ char *path = wasprintf("%s/%s.conf", WEFT_BGP_GOLDEN_DIR, name);
	_cleanup_free_ char *want = NULL;
	const char *upd = getenv("WEFT_UPDATE_GOLDEN");

	check_bird(name, text);
	if (upd && *upd && !streq(upd, "0")) {
		CHECK_EQ_INT(weft_bgpconf_write_atomic(path, text, strlen(text)), 0);
		return;
	}
	want = slurp(path);
	CHECK(want != NULL);
	if (want && !streq(want, text)) {
		_cleanup_free_ char *got = wasprintf("/tmp/weft-golden-%s.conf", name);
		weft_bgpconf_write_atomic(got, text, strlen(text));
		fprintf(stderr, "%s differs from the golden file: diff -u %s %s\n", name, path, got);
		CHECK(false);
	}
}

static char *render_ok(const struct weft_bgp_snapshot *s, const char *node)
{
	_cleanup_free_ char *err = NULL;
	char *out = NULL;
	int r = weft_bgpconf_render(s, node, &out, &err);

	if (r < 0)
		fprintf(stderr, "render %s: %s\n", node, err ? err : strerror(-r));
	CHECK_EQ_INT(r, 0);
	return out ? out : wstrdup("");
}

/* --- topologies -------------------------------------------------------------------- */

static const char mesh3[] = "kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/16}\n"
			    "---\nkind: Node\nmetadata: {name: node-1}\nspec: {bgp: {ipv4Address: 198.18.0.11/24}}\n"
			    "---\nkind: Node\nmetadata: {name: node-2}\nspec: {bgp: {ipv4Address: 198.18.0.12/24}}\n"
			    "---\nkind: Node\nmetadata: {name: node-3}\nspec: {bgp: {ipv4Address: 198.18.0.13/24}}\n";

static void add_mesh_blocks(struct weft_bgp_snapshot *s)
{
	block(s, "10.65.0.128/26", "node-2");
	block(s, "10.65.0.0/26", "node-1");
	block(s, "10.65.0.64/26", "node-2");
	block(s, "10.65.1.0/26", "node-3");
	block(s, "10.65.2.0/26", NULL);
}

static void test_mesh(void)
{
	struct weft_bgp_snapshot s = {0};

	snap_from(&s, mesh3);
	add_mesh_blocks(&s);
	_cleanup_free_ char *n1 = render_ok(&s, "node-1"), *n2 = render_ok(&s, "node-2"), *n3 = render_ok(&s, "node-3");
	golden("mesh-node-2", n2);
	check_bird("mesh-node-1", n1);
	check_bird("mesh-node-3", n3);

	CHECK(strstr(n2, "router id 198.18.0.12;\n") != NULL);
	CHECK(strstr(n2, "local 198.18.0.12 as 64512;") != NULL);
	CHECK(strstr(n2, "protocol bgp Mesh_198_18_0_11 from weft_peer") != NULL);
	CHECK(strstr(n2, "protocol bgp Mesh_198_18_0_13 from weft_peer") != NULL);
	CHECK_EQ_INT(count(n2, "protocol bgp "), 2);
	/* Lower address passive: node-1 waits for both, node-3 for none. */
	CHECK_EQ_INT(count(n1, "passive on;"), 2);
	CHECK_EQ_INT(count(n2, "passive on;"), 1);
	CHECK_EQ_INT(count(n3, "passive on;"), 0);
	/* Exactly one side of each pair is passive. */
	CHECK_EQ_INT(count(n1, "passive on;") + count(n2, "passive on;") + count(n3, "passive on;"), 3);
	/* Blocks: only the node's own, sorted. */
	CHECK(strstr(n2, "\troute 10.65.0.64/26 blackhole;\n\troute 10.65.0.128/26 blackhole;\n}") != NULL);
	CHECK_EQ_INT(count(n2, "blackhole;"), 2);
	CHECK_EQ_INT(count(n1, "blackhole;"), 1);
	CHECK(strstr(n1, "10.65.0.64/26") == NULL);
	CHECK(strstr(n2, "10.65.2.0/26") == NULL);
	CHECK(strstr(n2, "interface -\"wft*\"") != NULL);
	weft_bgp_snapshot_clear(&s);
}

static void test_mesh_disabled(void)
{
	struct weft_bgp_snapshot s = {0};
	_cleanup_free_ char *yaml = wasprintf("%s---\nkind: BGPConfig\nmetadata: {name: default}\n"
					      "spec: {nodeToNodeMeshEnabled: false, logSeverityScreen: Warning}\n", mesh3);

	snap_from(&s, yaml);
	add_mesh_blocks(&s);
	_cleanup_free_ char *n2 = render_ok(&s, "node-2");
	golden("mesh-disabled-node-2", n2);
	CHECK_EQ_INT(count(n2, "protocol bgp "), 0);
	CHECK(strstr(n2, "# No BGP sessions.") != NULL);
	CHECK(strstr(n2, "log stderr { warning,") != NULL);
	/* The blocks are still there (an external peer could be added). */
	CHECK_EQ_INT(count(n2, "blackhole;"), 2);
	weft_bgp_snapshot_clear(&s);
}

static const char rr4[] =
	"kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/16}\n"
	"---\nkind: BGPConfig\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n"
	"---\nkind: Node\nmetadata: {name: rr}\nspec: {bgp: {ipv4Address: 198.18.0.10/24, routeReflectorClusterID: 224.0.0.1}}\n"
	"---\nkind: Node\nmetadata: {name: c1}\nspec: {bgp: {ipv4Address: 198.18.0.21/24}}\n"
	"---\nkind: Node\nmetadata: {name: c2}\nspec: {bgp: {ipv4Address: 198.18.0.22/24}}\n"
	"---\nkind: Node\nmetadata: {name: c3}\nspec: {bgp: {ipv4Address: 198.18.0.23/24}}\n";

static void test_route_reflector(void)
{
	struct weft_bgp_snapshot s = {0};

	snap_from(&s, rr4);
	block(&s, "10.65.0.0/26", "c1");
	block(&s, "10.65.0.64/26", "c2");
	_cleanup_free_ char *rr = render_ok(&s, "rr"), *c1 = render_ok(&s, "c1"), *c3 = render_ok(&s, "c3");
	golden("rr-reflector", rr);
	golden("rr-client", c1);
	check_bird("rr-client-3", c3);

	/* The reflector: an rr client session per client, nothing else. */
	CHECK_EQ_INT(count(rr, "protocol bgp "), 3);
	CHECK_EQ_INT(count(rr, "protocol bgp Client_"), 3);
	CHECK_EQ_INT(count(rr, "\trr client;\n\trr cluster id 224.0.0.1;\n"), 3);
	CHECK_EQ_INT(count(rr, "export filter weft_export_reflect;"), 3);
	/* The reflector has the lower address: it waits for its clients. */
	CHECK_EQ_INT(count(rr, "passive on;"), 3);
	/* A client: only the reflector, actively. */
	CHECK_EQ_INT(count(c1, "protocol bgp "), 1);
	CHECK(strstr(c1, "protocol bgp Reflector_198_18_0_10 from weft_peer") != NULL);
	CHECK(strstr(c1, "rr client") == NULL);
	CHECK(strstr(c1, "passive on") == NULL);
	CHECK(strstr(c1, "bgp Mesh_") == NULL && strstr(c1, "bgp Client_") == NULL);
	CHECK_EQ_INT(count(c3, "protocol bgp "), 1);

	/* A second reflector: plain iBGP between the two, and a client peers
	 * with both. */
	struct weft_bgp_snapshot s2 = {0};
	_cleanup_free_ char *yaml = wasprintf("%s---\nkind: Node\nmetadata: {name: rr2}\nspec: {bgp: {ipv4Address: "
					      "198.18.0.9/24, routeReflectorClusterID: 224.0.0.1}}\n", rr4);
	snap_from(&s2, yaml);
	_cleanup_free_ char *rr_b = render_ok(&s2, "rr"), *c1_b = render_ok(&s2, "c1");
	check_bird("rr2-reflector", rr_b);
	check_bird("rr2-client", c1_b);
	CHECK(strstr(rr_b, "protocol bgp Reflector_198_18_0_9 from weft_peer {\n\tneighbor 198.18.0.9 as 64512;\n"
			   "\tipv4 {\n\t\texport filter weft_export_reflect;") != NULL);
	CHECK_EQ_INT(count(rr_b, "rr client;"), 3);
	CHECK_EQ_INT(count(c1_b, "protocol bgp Reflector_"), 2);
	weft_bgp_snapshot_clear(&s);
	weft_bgp_snapshot_clear(&s2);
}

/* The text of BIRD block `head` ("filter weft_export_reflect"): from head to
 * the first line that is "}". Malloc'ed; "" when head is not there. */
static char *block_text(const char *conf, const char *head)
{
	const char *p = strstr(conf, head), *e;

	if (!p)
		return wstrdup("");
	e = strstr(p, "\n}\n");
	return e ? wstrndup(p, (size_t)(e - p) + 3) : wstrdup(p);
}

/* A reflector with an external peer of its own: what it learns from that
 * peer goes into its kernel but is not reflected to its clients
 * (docs/bgp.md: routes from external peers are not passed on). */
static void test_reflect_external(void)
{
	struct weft_bgp_snapshot s = {0};
	_cleanup_free_ char *yaml = wasprintf("%s---\nkind: BGPPeer\nmetadata: {name: rr-tor}\n"
					      "spec: {node: rr, peerIP: 198.18.0.1, asNumber: 65001}\n", rr4);

	snap_from(&s, yaml);
	block(&s, "10.65.0.0/26", "c1");
	_cleanup_free_ char *rr = render_ok(&s, "rr");
	_cleanup_free_ char *f = block_text(rr, "filter weft_export_reflect\n"), *fn = block_text(rr, "function weft_from_node()\n");
	check_bird("reflect-external", rr);
	CHECK(strstr(rr, "protocol bgp Node_198_18_0_1 from weft_peer") != NULL);
	CHECK_EQ_INT(count(rr, "export filter weft_export_reflect;"), 3);
	/* Every BGP route it reflects must come from a weft node's session. */
	CHECK_EQ_INT(count(f, "source = RTS_BGP"), 1);
	CHECK(strstr(f, "\tif source = RTS_BGP && weft_from_node() && weft_in_pools() then accept;\n") != NULL);
	CHECK(strstr(fn, "return proto ~ \"Client_*\" || proto ~ \"Reflector_*\";") != NULL);
	CHECK(strstr(fn, "Node_") == NULL && strstr(fn, "Global_") == NULL);
	weft_bgp_snapshot_clear(&s);
}

/* Addresses IPAM borrowed from another node's block: this node exports the
 * /32 of each of its workloads that lies in a pool but in none of its own
 * blocks (learned by weft_kernel from weftd's endpoint route, protocol 81
 * on a wft* interface), to mesh peers, external peers and, from a
 * reflector, to clients; a peer's /32 inside one of our blocks goes into
 * the kernel (it beats our blackhole), never over our own endpoints. */
static void test_borrowed(void)
{
	struct weft_bgp_snapshot s = {0}, r = {0};
	_cleanup_free_ char *yaml = wasprintf("%s---\nkind: BGPPeer\nmetadata: {name: tor}\n"
					      "spec: {peerIP: 198.18.0.1, asNumber: 65001}\n", mesh3);

	snap_from(&s, yaml);
	add_mesh_blocks(&s);
	_cleanup_free_ char *n2 = render_ok(&s, "node-2");
	_cleanup_free_ char *fb = block_text(n2, "function weft_borrowed()\n"), *fo = block_text(n2, "function weft_in_own_blocks()\n");
	_cleanup_free_ char *fe = block_text(n2, "filter weft_export\n"), *fi = block_text(n2, "filter weft_kernel_import\n");
	_cleanup_free_ char *fk = block_text(n2, "filter weft_kernel_export\n");
	check_bird("borrowed-node-2", n2);
	CHECK(strstr(fo, "return net ~ [ 10.65.0.64/26+, 10.65.0.128/26+ ];") != NULL);
	CHECK(strstr(fb, "\tif proto != \"weft_kernel\" then return false;\n") != NULL);
	CHECK(strstr(fb, "krt_source != 81 || net.len != 32 || !(ifname ~ \"wft*\")") != NULL);
	CHECK(strstr(fb, "\treturn weft_in_pools() && !weft_in_own_blocks();\n") != NULL);
	/* weft_export is every session's (the template's): mesh and external. */
	CHECK(strstr(fe, "\tif weft_borrowed() then accept;\n") != NULL);
	CHECK(strstr(n2, "\t\timport filter weft_import;\n\t\texport filter weft_export;\n") != NULL);
	CHECK(strstr(n2, "protocol bgp Global_198_18_0_1 ") != NULL);
	/* The kernel: our endpoints' /32s win over any BGP route for them;
	 * a BGP /32 inside our block is not our block: it goes in. */
	CHECK(strstr(n2, "\t\timport filter weft_kernel_import;\n\t\texport filter weft_kernel_export;\n") != NULL);
	CHECK(strstr(fi, "\tif krt_source = 81 && net.len = 32 && ifname ~ \"wft*\" then preference = 200;\n") != NULL);
	CHECK(strstr(fk, "\tif source = RTS_BGP && !weft_own_block() then accept;\n") != NULL);
	CHECK(strstr(n2, "\tlearn;\n") != NULL);

	/* A reflector exports its own borrowed /32s and reflects others'. */
	snap_from(&r, rr4);
	block(&r, "10.65.0.0/26", "c1");
	_cleanup_free_ char *rr = render_ok(&r, "rr");
	_cleanup_free_ char *fr = block_text(rr, "filter weft_export_reflect\n"), *fro = block_text(rr, "function weft_in_own_blocks()\n");
	check_bird("borrowed-rr", rr);
	CHECK(strstr(fr, "\tif weft_borrowed() then accept;\n") != NULL);
	CHECK(strstr(fro, "\treturn false;\n") != NULL); /* no blocks of its own */
	weft_bgp_snapshot_clear(&s);
	weft_bgp_snapshot_clear(&r);
}

static const char peers[] =
	"kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/16}\n"
	"---\nkind: IPPool\nmetadata: {name: pool2}\nspec: {cidr: 10.66.0.0/16}\n"
	"---\nkind: IPPool\nmetadata: {name: pool6}\nspec: {cidr: 'fd00:65::/48'}\n"
	"---\nkind: Node\nmetadata: {name: node-1}\nspec: {bgp: {ipv4Address: 198.18.0.11/24}}\n"
	"---\nkind: Node\nmetadata: {name: node-2}\nspec: {bgp: {ipv4Address: 198.18.0.12/24}}\n"
	"---\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 198.18.0.1, asNumber: 65001}\n"
	"---\nkind: BGPPeer\nmetadata: {name: tor-all}\nspec: {peerIP: 198.18.0.3, asNumber: 65003, nodeSelector: all()}\n"
	"---\nkind: BGPPeer\nmetadata: {name: n1-rtr}\n"
	"spec: {node: node-1, peerIP: 198.19.5.1, asNumber: 65002, password: 's3cret pw'}\n"
	"---\nkind: BGPPeer\nmetadata: {name: n2-rtr}\nspec: {node: node-2, peerIP: 198.18.0.2, asNumber: 65002}\n"
	"---\nkind: BGPPeer\nmetadata: {name: rack1}\nspec: {peerIP: 198.18.0.4, asNumber: 65004, nodeSelector: \"rack == 'r1'\"}\n"
	"---\nkind: BGPPeer\nmetadata: {name: ibgp-rr}\nspec: {peerIP: 198.18.0.5, asNumber: 64512}\n"
	"---\nkind: BGPPeer\nmetadata: {name: self}\nspec: {peerIP: 198.18.0.11, asNumber: 65009}\n"
	"---\nkind: BGPPeer\nmetadata: {name: v6}\nspec: {peerIP: 'fd00::1', asNumber: 65010}\n";

static void test_peers(void)
{
	struct weft_bgp_snapshot s = {0};

	snap_from(&s, peers);
	block(&s, "10.65.0.0/26", "node-1");
	block(&s, "10.66.0.0/26", "node-1");
	block(&s, "fd00:65::/122", "node-1");
	_cleanup_free_ char *n1 = render_ok(&s, "node-1"), *n2 = render_ok(&s, "node-2");
	golden("peers-node-1", n1);
	check_bird("peers-node-2", n2);

	CHECK(strstr(n1, "protocol bgp Global_198_18_0_1 from weft_peer {\n\tneighbor 198.18.0.1 as 65001;\n") != NULL);
	CHECK(strstr(n1, "protocol bgp Global_198_18_0_3 ") != NULL); /* nodeSelector all() is global */
	CHECK(strstr(n1, "protocol bgp Node_198_19_5_1 from weft_peer {\n\tneighbor 198.19.5.1 as 65002;\n"
			 "\tmultihop; # not on this node's subnet\n\tpassword \"s3cret pw\";\n") != NULL);
	CHECK(strstr(n1, "Node_198_18_0_2") == NULL);  /* node-2's peer */
	CHECK(strstr(n2, "Node_198_18_0_2") != NULL);
	CHECK(strstr(n2, "Node_198_19_5_1") == NULL);
	CHECK(strstr(n1, "198_18_0_4") == NULL);      /* selector not supported: skipped, noted */
	CHECK(strstr(n1, "# note: BGPPeer rack1 skipped: nodeSelector") != NULL);
	CHECK(strstr(n1, "# note: BGPPeer self skipped: 198.18.0.11 is this node's own address") != NULL);
	CHECK(strstr(n1, "# note: BGPPeer v6 skipped: IPv6 peer fd00::1") != NULL);
	CHECK(strstr(n1, "Global_198_18_0_5") != NULL); /* an iBGP external peer */
	CHECK_EQ_INT(count(n1, "import filter weft_import_external;"), 4);
	CHECK(strstr(n1, "return net ~ [ 10.65.0.0/16+, 10.66.0.0/16+ ];") != NULL);
	CHECK(strstr(n1, "return net ~ [ 10.65.0.0/26, 10.66.0.0/26 ];") != NULL);
	CHECK(strstr(n1, "fd00:65::/122") != NULL && strstr(n1, "route fd00") == NULL); /* noted only */
	weft_bgp_snapshot_clear(&s);
}

static void test_as_override(void)
{
	struct weft_bgp_snapshot s = {0};
	static const char y[] =
		"kind: BGPConfig\nmetadata: {name: default}\nspec: {asNumber: 65000, listenPort: 1179}\n"
		"---\nkind: BGPConfig\nmetadata: {name: aaa-other}\nspec: {asNumber: 65999}\n"
		"---\nkind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/16}\n"
		"---\nkind: Node\nmetadata: {name: node-1}\nspec: {bgp: {ipv4Address: 198.18.0.11/24, asNumber: 4200000001}}\n"
		"---\nkind: Node\nmetadata: {name: node-2}\nspec: {bgp: {ipv4Address: 198.18.0.12/24}}\n"
		"---\nkind: Node\nmetadata: {name: node-3}\nspec: {bgp: {ipv4Address: 198.18.1.13/24}}\n"
		"---\nkind: Node\nmetadata: {name: no-bgp}\nspec: {}\n";

	snap_from(&s, y);
	_cleanup_free_ char *n1 = render_ok(&s, "node-1"), *n2 = render_ok(&s, "node-2");
	golden("as-override-node-1", n1);
	check_bird("as-override-node-2", n2);
	CHECK(strstr(n1, "\tlocal 198.18.0.11 port 1179 as 4200000001;\n") != NULL);
	CHECK(strstr(n1, "\tneighbor 198.18.0.12 port 1179 as 65000;\n") != NULL);
	CHECK(strstr(n1, "\tneighbor 198.18.1.13 port 1179 as 65000;\n") != NULL);
	CHECK(strstr(n1, "# note: Node no-bgp skipped: no spec.bgp.ipv4Address.") != NULL);
	/* node-3 is on another subnet: an eBGP session needs multihop. */
	CHECK(strstr(n1, "Mesh_198_18_1_13 from weft_peer {\n\tneighbor 198.18.1.13 port 1179 as 65000;\n"
			 "\tpassive on; # the peer has the higher address: it connects\n\tmultihop;") != NULL);
	/* node-2's view: the cluster AS (default BGPConfig wins), node-1 in its own AS. */
	CHECK(strstr(n2, "\tlocal 198.18.0.12 port 1179 as 65000;\n") != NULL);
	CHECK(strstr(n2, "\tneighbor 198.18.0.11 port 1179 as 4200000001;\n") != NULL);
	weft_bgp_snapshot_clear(&s);
}

/* --- determinism and errors ------------------------------------------------------------ */

static void test_deterministic(void)
{
	struct weft_bgp_snapshot a = {0}, b = {0};
	_cleanup_free_ char *all = wasprintf("%s---\n%s", peers, rr4 + strlen("kind: IPPool\nmetadata: {name: pool1}\n"
									       "spec: {cidr: 10.65.0.0/16}\n---\n"));

	snap_from(&a, all);
	snap_from(&b, all);
	block(&a, "10.65.0.0/26", "node-1");
	block(&a, "10.65.3.0/26", "node-1");
	block(&a, "10.65.1.0/26", "node-1");
	/* b: the same content in reverse order. */
	for (size_t i = 0; i < b.nres / 2; i++) {
		struct weft_resource t = b.res[i];
		b.res[i] = b.res[b.nres - 1 - i];
		b.res[b.nres - 1 - i] = t;
	}
	block(&b, "10.65.1.0/26", "node-1");
	block(&b, "10.65.3.0/26", "node-1");
	block(&b, "10.65.0.0/26", "node-1");
	for (int i = 0; i < 2; i++) {
		const char *node = i ? "rr" : "node-1";
		_cleanup_free_ char *x = render_ok(&a, node), *y = render_ok(&a, node), *z = render_ok(&b, node);
		CHECK_STREQ(x, y);
		CHECK_STREQ(x, z);
		if (!i)
			check_bird("deterministic", x);
	}
	weft_bgp_snapshot_clear(&a);
	weft_bgp_snapshot_clear(&b);
}

static void test_errors(void)
{
	struct weft_bgp_snapshot s = {0};
	char *out = NULL, *err = NULL;

	snap_from(&s, "kind: Node\nmetadata: {name: a}\nspec: {}\n---\nkind: Node\nmetadata: {name: b}\n"
		      "spec: {bgp: {ipv6Address: 'fd00::1/64'}}\n");
	CHECK_EQ_INT(weft_bgpconf_render(&s, "zzz", &out, &err), -ENOENT);
	CHECK(out == NULL);
	CHECK_STREQ(err, "node zzz: no Node resource");
	free(err), err = NULL;
	CHECK_EQ_INT(weft_bgpconf_render(&s, "a", &out, &err), -EINVAL);
	CHECK(err && strstr(err, "no spec.bgp.ipv4Address"));
	free(err), err = NULL;
	CHECK_EQ_INT(weft_bgpconf_render(&s, "b", &out, NULL), -EINVAL);
	CHECK(out == NULL);
	weft_bgp_snapshot_clear(&s);
}

static void test_proto_names(void)
{
	char buf[32];
	struct weft_ip ip, got;
	enum weft_bgp_peer_type t;

	weft_ip_parse("198.18.0.12", &ip);
	for (int k = WEFT_BGP_PEER_MESH; k <= WEFT_BGP_PEER_NODE; k++) {
		weft_bgp_proto_name((enum weft_bgp_peer_type)k, &ip, buf, sizeof(buf));
		CHECK_EQ_INT(weft_bgp_proto_parse(buf, &t, &got), 0);
		CHECK_EQ_INT(t, k);
		CHECK(weft_ip_eq(&got, &ip));
	}
	CHECK_STREQ(weft_bgp_proto_name(WEFT_BGP_PEER_MESH, &ip, buf, sizeof(buf)), "Mesh_198_18_0_12");
	CHECK_EQ_INT(weft_bgp_proto_parse("Global_0_0_0_0", &t, &got), 0);
	CHECK_EQ_INT(t, WEFT_BGP_PEER_GLOBAL);
	CHECK_STREQ(weft_bgp_peer_type_name(WEFT_BGP_PEER_CLIENT), "client");
	CHECK_STREQ(weft_bgp_peer_type_name((enum weft_bgp_peer_type)99), "?");
	static const char *const bad[] = {"weft_kernel", "weft_blocks", "Mesh", "Mesh_", "Mesh_1_2_3", "Mesh_1_2_3_4_5",
					  "Mesh_256_1_1_1", "Mesh_01_2_3_4", "Mesh_1_2_3_4x", "mesh_1_2_3_4",
					  "Peer_1_2_3_4", "Mesh_1__2_3", "Mesh_1234_1_1_1", "", "Mesh_-1_2_3_4"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		t = 0;
		CHECK_EQ_INT(weft_bgp_proto_parse(bad[i], &t, &got), -EINVAL);
		CHECK_EQ_INT(t, 0);
	}
}

/* --- install ---------------------------------------------------------------------------- */

static void test_install(void)
{
	struct weft_bgp_snapshot s = {0};
	_cleanup_free_ char *path = wasprintf("%s/run/bird.conf", g_dir), *runs = wasprintf("%s/run", g_dir);
	_cleanup_free_ char *t1 = NULL, *t2 = NULL, *cur = NULL, *newp = NULL;
	char *err = NULL;

	mkdir(runs, 0755);
	snap_from(&s, mesh3);
	t1 = render_ok(&s, "node-1");
	block(&s, "10.65.9.0/26", "node-1");
	t2 = render_ok(&s, "node-1");
	CHECK(!streq(t1, t2));

	CHECK_EQ_INT(weft_bgpconf_install(path, t1, NULL, &err), 1);
	CHECK_EQ_INT(weft_bgpconf_install(path, t1, NULL, &err), 0); /* unchanged: nothing to do */
	CHECK_EQ_INT(weft_bgpconf_install(path, t2, NULL, &err), 1);
	cur = slurp(path);
	CHECK_STREQ(cur, t2);
	newp = wasprintf("%s.new", path);
	CHECK(access(newp, F_OK) < 0);

	/* BIRD refuses this one: path keeps the last good config, and the
	 * error is BIRD's, on one line, naming the line. */
	CHECK_EQ_INT(weft_bgpconf_install(path, "router id 1.2.3.4;\nprotocol nonsense {}\n", NULL, &err), -EINVAL);
	CHECK(err && strstr(err, "bird.conf.new:2:") && !strchr(err, '\n'));
	if (err)
		fprintf(stderr, "(expected) %s\n", err);
	free(err), err = NULL;
	free(cur);
	cur = slurp(path);
	CHECK_STREQ(cur, t2);
	CHECK(access(newp, F_OK) < 0);

	/* The config holds BGP passwords: its owner alone reads it, also
	 * when it replaces a file an older version left readable. */
	struct stat st;
	CHECK_EQ_INT(stat(path, &st), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0600);
	CHECK_EQ_INT(chmod(path, 0644), 0);
	CHECK_EQ_INT(weft_bgpconf_install(path, t1, NULL, &err), 1);
	CHECK_EQ_INT(stat(path, &st), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0600);

	/* A bird -p that hangs is killed: -ETIMEDOUT, path untouched. */
	_cleanup_free_ char *hang = wasprintf("%s/hang-bird", g_dir);
	FILE *hf = fopen(hang, "w");
	CHECK(hf != NULL);
	if (hf) {
		fputs("#!/bin/sh\nexec sleep 30\n", hf);
		fclose(hf);
	}
	CHECK_EQ_INT(chmod(hang, 0755), 0);
	setenv("WEFT_BGPCONF_CHECK_TIMEOUT_MS", "300", 1);
	int64_t t0 = weft_now_ms();
	CHECK_EQ_INT(weft_bgpconf_install(path, t2, hang, &err), -ETIMEDOUT);
	CHECK(weft_now_ms() - t0 < 5000);
	CHECK(err && strstr(err, "did not finish"));
	free(err), err = NULL;
	unsetenv("WEFT_BGPCONF_CHECK_TIMEOUT_MS");
	free(cur);
	cur = slurp(path);
	CHECK_STREQ(cur, t1);
	CHECK(access(newp, F_OK) < 0);

	/* A missing bird binary is -ENOENT. */
	CHECK_EQ_INT(weft_bgpconf_check("/nonexistent/bird", path, &err), -ENOENT);
	CHECK(err != NULL);
	free(err), err = NULL;
	/* An unwritable place. */
	CHECK(weft_bgpconf_install("/nonexistent-dir/bird.conf", t1, NULL, &err) < 0);
	free(err);
	weft_bgp_snapshot_clear(&s);
}

/* --- loading from a store ------------------------------------------------------------------- */

static void test_load(void)
{
	_cleanup_free_ char *url = wasprintf("file:%s/store", g_dir), *err = NULL;
	struct weft_store *st = NULL;
	struct weft_ipam *m = NULL;
	struct weft_resource *rs = NULL;
	struct weft_bgp_snapshot s = {0};
	size_t n = 0;
	struct weft_ip ip;
	int r;

	r = weft_store_open(url, &st, &err);
	CHECK_EQ_INT(r, 0);
	if (r < 0)
		return;
	CHECK_EQ_INT(weft_manifest_parse(mesh3, strlen(mesh3), &rs, &n, &err), 0);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *key = weft_resource_key(&rs[i]), *val = weft_resource_encode(&rs[i], false);
		CHECK_EQ_INT(weft_store_put(st, key, val, strlen(val), NULL), 0);
	}
	weft_resources_free(rs, n);
	CHECK_EQ_INT(weft_ipam_new(st, &m), 0);
	struct weft_ipam_request req = {.handle = "c1:eth0", .node = "node-2", .count = 1};
	CHECK_EQ_INT(weft_ipam_auto_assign(m, &req, &ip), 1);

	CHECK_EQ_INT(weft_bgp_snapshot_load(st, &s, &err), 0);
	CHECK_EQ_INT(s.nres, 4);
	CHECK_EQ_INT(s.nblocks, 1);
	if (s.nblocks == 1) {
		CHECK_STREQ(s.blocks[0].affinity, "node-2");
		CHECK(weft_cidr_contains(&s.blocks[0].cidr, &ip));
	}
	_cleanup_free_ char *n2 = render_ok(&s, "node-2");
	CHECK(strstr(n2, "\troute 10.65.0.0/26 blackhole;\n") != NULL);
	weft_bgp_snapshot_clear(&s);

	/* A Node whose status has a field this version does not know (a newer
	 * weftd's report, in a rolling upgrade) is read without its status. */
	static const char newer[] = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"node-9\"},\"spec\":{\"bgp\":"
				    "{\"ipv4Address\":\"198.18.0.19/24\"},\"status\":{\"healthy\":true,\"futureField\":1}}}";
	CHECK_EQ_INT(weft_store_put(st, "/weft/v1/nodes/node-9", newer, strlen(newer), NULL), 0);
	CHECK_EQ_INT(weft_bgp_snapshot_load(st, &s, &err), 0);
	CHECK_EQ_INT(s.nres, 5);
	_cleanup_free_ char *n1 = render_ok(&s, "node-1");
	CHECK(strstr(n1, "198.18.0.19") != NULL);
	weft_bgp_snapshot_clear(&s);
	/* Bad beyond its status, it still fails. */
	static const char bad_spec[] = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"node-9\"},\"spec\":{\"bgpp\":{},"
				       "\"status\":{\"healthy\":true}}}";
	CHECK_EQ_INT(weft_store_put(st, "/weft/v1/nodes/node-9", bad_spec, strlen(bad_spec), NULL), 0);
	CHECK_EQ_INT(weft_bgp_snapshot_load(st, &s, &err), -EBADMSG);
	free(err), err = NULL;
	CHECK_EQ_INT(weft_store_delete(st, "/weft/v1/nodes/node-9", 0, NULL), 0);

	/* BGPPeers this version refuses (an older weftctl stored them, or
	 * another writer did: unicast checks since 2026-11-28), or cannot
	 * read at all, are left out one by one: the other peers and the
	 * node's own sessions are configured as before. */
	static const char old_peer[] = "{\"kind\":\"BGPPeer\",\"metadata\":{\"name\":\"mcast\"},\"spec\":"
				       "{\"peerIP\":\"224.0.0.1\",\"asNumber\":65001}}";
	static const char ll_peer[] = "{\"kind\":\"BGPPeer\",\"metadata\":{\"name\":\"ll\"},\"spec\":"
				      "{\"peerIP\":\"fe80::1\",\"asNumber\":65001}}";
	static const char good_peer[] = "{\"kind\":\"BGPPeer\",\"metadata\":{\"name\":\"tor\"},\"spec\":"
					"{\"peerIP\":\"198.18.0.1\",\"asNumber\":65001}}";
	CHECK_EQ_INT(weft_store_put(st, "/weft/v1/bgppeers/mcast", old_peer, strlen(old_peer), NULL), 0);
	CHECK_EQ_INT(weft_store_put(st, "/weft/v1/bgppeers/ll", ll_peer, strlen(ll_peer), NULL), 0);
	CHECK_EQ_INT(weft_store_put(st, "/weft/v1/bgppeers/junk", "{", 1, NULL), 0);
	CHECK_EQ_INT(weft_store_put(st, "/weft/v1/bgppeers/tor", good_peer, strlen(good_peer), NULL), 0);
	CHECK_EQ_INT(weft_bgp_snapshot_load(st, &s, &err), 0);
	CHECK_EQ_INT(s.nres, 5); /* 3 nodes, the pool, tor */
	{
		_cleanup_free_ char *c = render_ok(&s, "node-1");
		check_bird("load-peers-left-out", c);
		CHECK(strstr(c, "protocol bgp Global_198_18_0_1 from weft_peer {\n\tneighbor 198.18.0.1 as 65001;\n") != NULL);
		CHECK(strstr(c, "224.0.0.1") == NULL && strstr(c, "fe80") == NULL);
		CHECK_EQ_INT(count(c, "protocol bgp Mesh_"), 2);
	}
	weft_bgp_snapshot_clear(&s);
	for (const char *const *k = (const char *const[]){"/weft/v1/bgppeers/mcast", "/weft/v1/bgppeers/ll",
							   "/weft/v1/bgppeers/junk", "/weft/v1/bgppeers/tor", NULL};
	     *k; k++)
		CHECK_EQ_INT(weft_store_delete(st, *k, 0, NULL), 0);

	/* A Node whose cluster id is 0.0.0.0 (refused since, stored before)
	 * is read with its router id as the cluster id, which is what BIRD
	 * did with 0: it stays a reflector, and nobody's BGP stops. */
	static const char rr0[] = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"rr9\"},\"spec\":{\"bgp\":"
				  "{\"ipv4Address\":\"198.18.0.19/24\",\"routeReflectorClusterID\":\"0.0.0.0\"},"
				  "\"status\":{\"healthy\":true}}}";
	static const char nomesh[] = "{\"kind\":\"BGPConfig\",\"metadata\":{\"name\":\"default\"},\"spec\":"
				     "{\"nodeToNodeMeshEnabled\":false}}";
	CHECK_EQ_INT(weft_store_put(st, "/weft/v1/nodes/rr9", rr0, strlen(rr0), NULL), 0);
	CHECK_EQ_INT(weft_store_put(st, "/weft/v1/bgpconfigs/default", nomesh, strlen(nomesh), NULL), 0);
	CHECK_EQ_INT(weft_bgp_snapshot_load(st, &s, &err), 0);
	CHECK_EQ_INT(s.nres, 6);
	for (size_t i = 0; i < s.nres; i++)
		if (streq(s.res[i].name, "rr9")) {
			const cJSON *bgp = cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(s.res[i].doc, "spec"), "bgp");
			CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(bgp, "routeReflectorClusterID")),
				    "198.18.0.19");
		}
	{
		_cleanup_free_ char *rr = render_ok(&s, "rr9"), *c1 = render_ok(&s, "node-1");
		check_bird("load-rr-cluster-0", rr);
		CHECK_EQ_INT(count(rr, "\trr client;\n\trr cluster id 198.18.0.19;\n"), 3);
		CHECK(strstr(c1, "protocol bgp Reflector_198_18_0_19 from weft_peer") != NULL);
	}
	weft_bgp_snapshot_clear(&s);
	/* Without an address it cannot run BGP anyway: the id is left out. */
	static const char rr0_noaddr[] = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"rr9\"},\"spec\":{\"bgp\":"
					 "{\"routeReflectorClusterID\":\"0.0.0.0\"}}}";
	CHECK_EQ_INT(weft_store_put(st, "/weft/v1/nodes/rr9", rr0_noaddr, strlen(rr0_noaddr), NULL), 0);
	CHECK_EQ_INT(weft_bgp_snapshot_load(st, &s, &err), 0);
	CHECK_EQ_INT(s.nres, 6);
	{
		_cleanup_free_ char *c1 = render_ok(&s, "node-1");
		CHECK(strstr(c1, "198.18.0.19") == NULL && strstr(c1, "protocol bgp ") == NULL);
	}
	weft_bgp_snapshot_clear(&s);
	CHECK_EQ_INT(weft_store_delete(st, "/weft/v1/nodes/rr9", 0, NULL), 0);
	CHECK_EQ_INT(weft_store_delete(st, "/weft/v1/bgpconfigs/default", 0, NULL), 0);
	/* Anything else wrong with a Node still stops the load (fail static:
	 * leaving a node out would withdraw its routes everywhere). */
	static const char rr0_bad[] = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"rr9\"},\"spec\":{\"bgp\":"
				      "{\"routeReflectorClusterID\":\"0.0.0.0\",\"asNumber\":0}}}";
	CHECK_EQ_INT(weft_store_put(st, "/weft/v1/nodes/rr9", rr0_bad, strlen(rr0_bad), NULL), 0);
	CHECK_EQ_INT(weft_bgp_snapshot_load(st, &s, &err), -EBADMSG);
	CHECK(err && strstr(err, "/weft/v1/nodes/rr9: rr9: spec.bgp.asNumber: 0 is out of range"));
	free(err), err = NULL;
	CHECK_EQ_INT(weft_store_delete(st, "/weft/v1/nodes/rr9", 0, NULL), 0);

	/* A corrupt record is -EBADMSG naming its key. */
	CHECK_EQ_INT(weft_store_put(st, "/weft/v1/nodes/bad", "{", 1, NULL), 0);
	CHECK_EQ_INT(weft_bgp_snapshot_load(st, &s, &err), -EBADMSG);
	CHECK(err && strstr(err, "/weft/v1/nodes/bad"));
	weft_ipam_free(m);
	weft_store_close(st);
}

static void cleanup(void)
{
	_cleanup_free_ char *cmd = wasprintf("rm -rf '%s'", g_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", g_dir);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_mesh),	 TEST(test_mesh_disabled), TEST(test_route_reflector), TEST(test_reflect_external), TEST(test_borrowed), TEST(test_peers),
		TEST(test_as_override), TEST(test_deterministic), TEST(test_errors),	      TEST(test_proto_names),
		TEST(test_install),	 TEST(test_load),
	};
	_cleanup_free_ char *probe = NULL, *err = NULL;
	int r;

	weft_json_init();
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	atexit(cleanup);
	probe = wasprintf("%s/probe.conf", g_dir);
	weft_bgpconf_write_atomic(probe, "router id 1.2.3.4;\n", 19);
	r = weft_bgpconf_check(NULL, probe, &err);
	if (r == -ENOENT) {
		printf("skipped: bird is not installed (%s)\n", err ? err : "");
		return 77;
	}
	return test_run(cases, ARRAY_SIZE(cases));
}
