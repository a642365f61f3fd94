/* test-ipam.c - pool/block and range IPAM against a fresh file: store in a
 * temporary directory, including 8 forked processes allocating at once.
 * Exits 77 (skipped) while the file backend answers -ENOSYS. */
#include "ipam/ipam-records.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/test.h"
#include "model/resource.h"
#include "model/test-store-util.h"

#include <fcntl.h>
#include <sys/wait.h>

static char g_dir[256];
static char g_url[300];
static struct weft_store *g_s;
static struct weft_ipam *g_m;

/* Linked with --wrap=weft_store_txn: txn_hook, when set, runs once right
 * before IPAM's next transaction, as a concurrent writer (another weftd
 * or plugin) would land between IPAM's read and its compare. The hook's
 * own writes go through the real call. */
int __real_weft_store_txn(struct weft_store *s, const struct weft_txn_cmp *cmps, size_t ncmps,
			  const struct weft_txn_op *ops, size_t nops, int64_t *rev);
int __wrap_weft_store_txn(struct weft_store *s, const struct weft_txn_cmp *cmps, size_t ncmps,
			  const struct weft_txn_op *ops, size_t nops, int64_t *rev);
static void (*txn_hook)(void);

int __wrap_weft_store_txn(struct weft_store *s, const struct weft_txn_cmp *cmps, size_t ncmps,
			  const struct weft_txn_op *ops, size_t nops, int64_t *rev)
{
	void (*hook)(void) = txn_hook;

	txn_hook = NULL;
	if (hook)
		hook();
	return __real_weft_store_txn(s, cmps, ncmps, ops, nops, rev);
}

static void skip_if_enosys(int r)
{
	if (r == -ENOSYS) {
		printf("skipped: the file store backend is not available yet\n");
		exit(77);
	}
}

/* weft_ipam_check()'s return, its problems printed and freed; *naming
 * (when given) gets how many of them contain needle. */
static int check_problems(const char *needle, size_t *naming)
{
	char **probs = NULL;
	size_t n = 0;
	int r = weft_ipam_check(g_m, &probs, &n);

	if (naming)
		*naming = 0;
	for (size_t i = 0; i < n; i++) {
		fprintf(stderr, "problem: %s\n", probs[i]);
		if (needle && naming && strstr(probs[i], needle))
			(*naming)++;
		free(probs[i]);
	}
	free(probs);
	return r;
}

static void setup(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/weft-test-ipam-XXXXXX");
	skip_if_enosys(test_store_open_tmp(g_dir, g_url, sizeof(g_url), &g_s));
	skip_if_enosys(weft_store_put(g_s, "/weft-test/probe", "x", 1, NULL));
	CHECK_EQ_INT(weft_ipam_new(g_s, &g_m), 0);
}

static void teardown(void)
{
	weft_ipam_free(g_m);
	weft_store_close(g_s);
	g_m = NULL;
	g_s = NULL;
	test_store_remove_tmp(g_dir);
}

static void put_manifest(const char *what, const char *text)
{
	test_put_manifest(g_s, what, text);
}

/* A Node resource with optional labels ("k: v" YAML flow text). */
static void add_node(const char *name, const char *labels)
{
	_cleanup_free_ char *text = wasprintf("kind: Node\nmetadata: {name: %s%s%s%s}\nspec: {}\n", name,
					      labels ? ", labels: {" : "", labels ? labels : "", labels ? "}" : "");
	put_manifest(name, text);
}

/* An IPPool. */
static void add_pool(const char *name, const char *cidr, int bs, bool disabled, const char *selector)
{
	_cleanup_free_ char *text = wasprintf(
		"{\"kind\":\"IPPool\",\"metadata\":{\"name\":\"%s\"},\"spec\":{\"cidr\":\"%s\",\"blockSize\":%d,"
		"\"disabled\":%s,\"nodeSelector\":\"%s\"}}",
		name, cidr, bs, disabled ? "true" : "false", selector ? selector : "all()");
	put_manifest(name, text);
}

static const char *ipstr(const struct weft_ip *ip)
{
	static char ring[8][WEFT_IP_STRLEN];
	static unsigned k;
	return weft_ip_str(ip, ring[k++ % 8], WEFT_IP_STRLEN);
}

static struct weft_ip IP(const char *s)
{
	struct weft_ip ip = {0};
	CHECK_EQ_INT(weft_ip_parse(s, &ip), 0);
	return ip;
}

static bool key_exists(const char *key)
{
	struct weft_kv kv = {0};
	int r = weft_store_get(g_s, key, &kv);
	weft_kv_clear(&kv);
	return r == 0;
}

/* Allocate one address for (handle, node) and return it as text ("" on
 * failure, the error in *rp). */
static const char *alloc1(const char *handle, const char *node, int *rp)
{
	static char buf[WEFT_IP_STRLEN];
	struct weft_ipam_request req = {.handle = handle, .node = node, .attrs = {.node = (char *)node}};
	struct weft_ip ip;
	int r = weft_ipam_auto_assign(g_m, &req, &ip);

	if (rp)
		*rp = r;
	if (r < 0) {
		if (!rp)
			fprintf(stderr, "alloc %s on %s: %s (%s)\n", handle, node, strerror(-r), weft_ipam_errmsg(g_m));
		return "";
	}
	return weft_ip_str(&ip, buf, sizeof(buf));
}

static void test_claim_allocate(void)
{
	char h[64];

	setup();
	add_pool("p1", "10.65.0.0/24", 28, false, NULL);
	CHECK_STREQ(alloc1("a:eth0", "n1", NULL), "10.65.0.0");
	CHECK(key_exists("/weft/v1/ipam/blocks/10.65.0.0-28"));
	CHECK(key_exists("/weft/v1/ipam/affinities/n1/10.65.0.0-28"));
	CHECK(key_exists("/weft/v1/ipam/handles/a:eth0"));
	/* Another node claims the next block. */
	CHECK_STREQ(alloc1("b:eth0", "n2", NULL), "10.65.0.16");
	/* n1 fills its own block before claiming another. */
	for (int i = 1; i < 16; i++) {
		char want[32];
		snprintf(h, sizeof(h), "a%d:eth0", i);
		snprintf(want, sizeof(want), "10.65.0.%d", i);
		CHECK_STREQ(alloc1(h, "n1", NULL), want);
	}
	CHECK_STREQ(alloc1("z:eth0", "n1", NULL), "10.65.0.32");
	CHECK(key_exists("/weft/v1/ipam/affinities/n1/10.65.0.32-28"));

	/* Who holds an address. */
	struct weft_ipam_allocation a = {0};
	struct weft_ip ip = IP("10.65.0.16");
	CHECK_EQ_INT(weft_ipam_lookup_ip(g_m, &ip, &a), 0);
	CHECK_STREQ(a.handle, "b:eth0");
	CHECK_STREQ(a.attrs.node, "n2");
	CHECK_STREQ(a.holder, "/weft/v1/ipam/blocks/10.65.0.16-28");
	weft_ipam_allocation_clear(&a);
	ip = IP("10.65.0.99");
	CHECK_EQ_INT(weft_ipam_lookup_ip(g_m, &ip, &a), -ENOENT);

	/* Several addresses at once. */
	struct weft_ipam_request req = {.handle = "multi:eth0", .node = "n2", .count = 3};
	struct weft_ip got[3];
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, got), 3);
	CHECK_STREQ(ipstr(&got[0]), "10.65.0.17");
	CHECK_STREQ(ipstr(&got[2]), "10.65.0.19");
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "multi:eth0"), 3);

	CHECK_EQ_INT(check_problems(NULL, NULL), 0);
	teardown();
}

static void test_borrow_exhaust(void)
{
	char h[64];
	int r;

	setup();
	add_pool("p1", "10.66.0.0/26", 28, false, NULL);
	CHECK_STREQ(alloc1("n1-0:eth0", "n1", NULL), "10.66.0.0");
	CHECK_STREQ(alloc1("n2-0:eth0", "n2", NULL), "10.66.0.16");
	CHECK_STREQ(alloc1("n3-0:eth0", "n3", NULL), "10.66.0.32");
	CHECK_STREQ(alloc1("n4-0:eth0", "n4", NULL), "10.66.0.48");
	for (int i = 1; i < 16; i++) {
		snprintf(h, sizeof(h), "n1-%d:eth0", i);
		alloc1(h, "n1", NULL);
	}
	/* n1's block is full and no block is left: borrow, lowest first. */
	CHECK_STREQ(alloc1("borrow:eth0", "n1", NULL), "10.66.0.17");
	struct weft_kv_list l = {0};
	CHECK_EQ_INT(weft_store_list(g_s, "/weft/v1/ipam/affinities/n1/", &l), 0);
	CHECK_EQ_INT(l.n, 1);
	weft_kv_list_clear(&l);
	/* Fill the rest: 64 - 16 (n1) - 3 (n2..n4) - 1 (borrowed) = 44. */
	for (int i = 0; i < 44; i++) {
		snprintf(h, sizeof(h), "fill-%d:eth0", i);
		CHECK(*alloc1(h, i % 2 ? "n5" : "n2", NULL));
	}
	CHECK_STREQ(alloc1("last:eth0", "n6", &r), "");
	CHECK_EQ_INT(r, -ENOSPC);
	CHECK(strstr(weft_ipam_errmsg(g_m), "p1") != NULL);

	struct weft_ipam_usage *u = NULL;
	size_t n = 0;
	CHECK_EQ_INT(weft_ipam_usage(g_m, &u, &n), 5);
	if (n == 5) {
		CHECK_EQ_INT(u[0].kind, WEFT_IPAM_USAGE_POOL);
		CHECK_EQ_INT(u[0].total, 64);
		CHECK_EQ_INT(u[0].used, 64);
		CHECK_EQ_INT(u[1].kind, WEFT_IPAM_USAGE_BLOCK);
		CHECK_STREQ(u[1].affinity, "n1");
		CHECK_EQ_INT(u[1].used, 16);
	}
	weft_ipam_usage_free(u, n);
	/* Free one: the next allocation gets exactly it. */
	struct weft_ip ip = IP("10.66.0.40");
	CHECK_EQ_INT(weft_ipam_release_ip(g_m, &ip), 1);
	CHECK_EQ_INT(weft_ipam_release_ip(g_m, &ip), 0);
	CHECK_STREQ(alloc1("again:eth0", "n1", NULL), "10.66.0.40");
	teardown();
}

static void test_handle_release(void)
{
	struct weft_ipam_request req = {.handle = "c1:eth0", .node = "n1", .count = 2,
					.attrs = {.namespace = "ns", .pod = "pod1", .container_id = "c1", .ifname = "eth0"}};
	struct weft_ip got[2];
	struct weft_ipam_allocation a = {0};

	setup();
	add_pool("p1", "10.67.0.0/24", 26, false, NULL);
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, got), 2);
	CHECK_EQ_INT(weft_ipam_lookup_ip(g_m, &got[1], &a), 0);
	CHECK_STREQ(a.attrs.pod, "pod1");
	CHECK_STREQ(a.attrs.namespace, "ns");
	CHECK_STREQ(a.attrs.ifname, "eth0");
	weft_ipam_allocation_clear(&a);
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "c1:eth0"), 2);
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "c1:eth0"), 0);
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "never-seen:eth0"), 0);
	CHECK(!key_exists("/weft/v1/ipam/handles/c1:eth0"));
	CHECK_EQ_INT(weft_ipam_lookup_ip(g_m, &got[0], &a), -ENOENT);
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "bad/handle"), -EINVAL);

	char *hid = NULL;
	CHECK_EQ_INT(weft_ipam_handle_id("abc123", "eth0", &hid), 0);
	CHECK_STREQ(hid, "abc123:eth0");
	free(hid);
	hid = NULL;
	CHECK_EQ_INT(weft_ipam_handle_id("abc:1", "eth0", &hid), -EINVAL);
	CHECK_EQ_INT(weft_ipam_handle_id("abc", "eth:0", &hid), -EINVAL);
	CHECK_EQ_INT(weft_ipam_handle_id("abc", "", &hid), -EINVAL);
	CHECK(hid == NULL);
	teardown();
}

static void test_static_ip(void)
{
	struct weft_ip ip = IP("10.68.0.200");
	struct weft_ipam_attrs at = {.pod = "static"};

	setup();
	add_pool("p1", "10.68.0.0/24", 28, false, NULL);
	add_pool("off", "10.69.0.0/24", 28, true, NULL);
	CHECK_EQ_INT(weft_ipam_assign_ip(g_m, "s1:eth0", &ip, "n1", &at), 0);
	CHECK(key_exists("/weft/v1/ipam/blocks/10.68.0.192-28"));
	CHECK(key_exists("/weft/v1/ipam/affinities/n1/10.68.0.192-28"));
	/* Again by the same handle: fine; by another: in use. */
	CHECK_EQ_INT(weft_ipam_assign_ip(g_m, "s1:eth0", &ip, "n1", &at), 0);
	CHECK_EQ_INT(weft_ipam_assign_ip(g_m, "s2:eth0", &ip, "n2", NULL), -EEXIST);
	CHECK(strstr(weft_ipam_errmsg(g_m), "s1:eth0") != NULL);
	/* The node's next automatic address comes from that block, lowest first. */
	CHECK_STREQ(alloc1("auto:eth0", "n1", NULL), "10.68.0.192");
	CHECK_STREQ(alloc1("auto2:eth0", "n1", NULL), "10.68.0.193");
	/* Outside every enabled pool. */
	ip = IP("10.69.0.5");
	CHECK_EQ_INT(weft_ipam_assign_ip(g_m, "s3:eth0", &ip, "n1", NULL), -EINVAL);
	ip = IP("192.0.2.1");
	CHECK_EQ_INT(weft_ipam_assign_ip(g_m, "s3:eth0", &ip, "n1", NULL), -EINVAL);
	/* Claimed for nobody. */
	ip = IP("10.68.0.50");
	CHECK_EQ_INT(weft_ipam_assign_ip(g_m, "s4:eth0", &ip, NULL, NULL), 0);
	struct ipam_rec b = {0};
	struct weft_kv kv = {0};
	CHECK_EQ_INT(weft_store_get(g_s, "/weft/v1/ipam/blocks/10.68.0.48-28", &kv), 0);
	CHECK_EQ_INT(ipam_rec_decode(IPAM_REC_BLOCK, kv.key, kv.value, kv.value_len, &b, NULL), 0);
	CHECK(b.affinity == NULL);
	CHECK_EQ_INT(b.n, 1);
	ipam_rec_clear(&b);
	weft_kv_clear(&kv);
	/* An auto allocation of another node does not land in a block claimed
	 * for a static address while free blocks remain. */
	CHECK_STREQ(alloc1("n2:eth0", "n2", NULL), "10.68.0.0");
	/* Release it and the empty unaffine block goes with release_empty_blocks(NULL). */
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "s4:eth0"), 1);
	CHECK_EQ_INT(weft_ipam_release_empty_blocks(g_m, NULL), 1);
	CHECK(!key_exists("/weft/v1/ipam/blocks/10.68.0.48-28"));
	teardown();
}

static void test_release_empty_blocks(void)
{
	setup();
	add_pool("p1", "10.70.0.0/24", 28, false, NULL);
	CHECK_STREQ(alloc1("a:eth0", "n1", NULL), "10.70.0.0");
	CHECK_STREQ(alloc1("b:eth0", "n2", NULL), "10.70.0.16");
	CHECK_EQ_INT(weft_ipam_release_empty_blocks(g_m, "n1"), 0); /* not empty */
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "a:eth0"), 1);
	/* An empty block is kept until released explicitly. */
	CHECK(key_exists("/weft/v1/ipam/blocks/10.70.0.0-28"));
	CHECK_EQ_INT(weft_ipam_release_empty_blocks(g_m, "n1"), 1);
	CHECK(!key_exists("/weft/v1/ipam/blocks/10.70.0.0-28"));
	CHECK(!key_exists("/weft/v1/ipam/affinities/n1/10.70.0.0-28"));
	CHECK(key_exists("/weft/v1/ipam/blocks/10.70.0.16-28"));
	CHECK_EQ_INT(weft_ipam_release_empty_blocks(g_m, "n1"), 0);
	/* The freed block is claimable again, by anyone. */
	CHECK_STREQ(alloc1("c:eth0", "n3", NULL), "10.70.0.0");
	/* A stale affinity (left by hand) does not make its block unclaimable,
	 * and release_empty_blocks() drops it. */
	static const char stale[] = "{\"node\":\"n9\",\"cidr\":\"10.70.0.32/28\"}";
	CHECK_EQ_INT(weft_store_put(g_s, "/weft/v1/ipam/affinities/n9/10.70.0.32-28", stale, strlen(stale), NULL), 0);
	CHECK_STREQ(alloc1("d:eth0", "n4", NULL), "10.70.0.32");
	CHECK_EQ_INT(weft_ipam_release_empty_blocks(g_m, "n9"), 0);
	CHECK(!key_exists("/weft/v1/ipam/affinities/n9/10.70.0.32-28"));
	CHECK(key_exists("/weft/v1/ipam/affinities/n4/10.70.0.32-28"));
	teardown();
}

/* A node leaving: its empty blocks go, a block other nodes borrowed from
 * stays affine to nobody, until it is empty. */
static void test_release_node_blocks(void)
{
	setup();
	add_pool("p1", "10.71.0.0/26", 28, false, NULL);
	CHECK_STREQ(alloc1("a:eth0", "n1", NULL), "10.71.0.0");
	CHECK_STREQ(alloc1("b:eth0", "n2", NULL), "10.71.0.16");
	CHECK_STREQ(alloc1("c:eth0", "n3", NULL), "10.71.0.32");
	CHECK_STREQ(alloc1("d:eth0", "n4", NULL), "10.71.0.48");
	/* n2 fills its block, then borrows from n1's (no block left). */
	for (int i = 1; i < 16; i++) {
		char h[32];
		snprintf(h, sizeof(h), "b%d:eth0", i);
		CHECK(*alloc1(h, "n2", NULL));
	}
	CHECK_STREQ(alloc1("borrow:eth0", "n2", NULL), "10.71.0.1");
	/* n3's block empties. */
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "c:eth0"), 1);
	CHECK_EQ_INT(weft_ipam_release_node_blocks(g_m, NULL), -EINVAL);

	/* n1 leaves: its own address first, then its block, which n2's
	 * borrowed address keeps, affine to nobody. */
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "a:eth0"), 1);
	CHECK_EQ_INT(weft_ipam_release_node_blocks(g_m, "n1"), 1);
	CHECK(!key_exists("/weft/v1/ipam/affinities/n1/10.71.0.0-28"));
	CHECK(key_exists("/weft/v1/ipam/blocks/10.71.0.0-28"));
	struct weft_ipam_usage *u = NULL;
	size_t n = 0;
	CHECK_EQ_INT(weft_ipam_usage(g_m, &u, &n), 5);
	if (n == 5) {
		CHECK_STREQ(u[1].name, "/weft/v1/ipam/blocks/10.71.0.0-28");
		CHECK(u[1].affinity == NULL);
		CHECK_EQ_INT(u[1].used, 1);
	}
	weft_ipam_usage_free(u, n);
	CHECK_EQ_INT(check_problems(NULL, NULL), 0);
	struct weft_ipam_allocation a = {0};
	struct weft_ip ip = IP("10.71.0.1");
	CHECK_EQ_INT(weft_ipam_lookup_ip(g_m, &ip, &a), 0);
	CHECK_STREQ(a.handle, "borrow:eth0");
	weft_ipam_allocation_clear(&a);

	/* n3 leaves: its empty block is released; nothing of it is left. */
	CHECK_EQ_INT(weft_ipam_release_node_blocks(g_m, "n3"), 1);
	CHECK(!key_exists("/weft/v1/ipam/blocks/10.71.0.32-28"));
	CHECK(!key_exists("/weft/v1/ipam/affinities/n3/10.71.0.32-28"));
	CHECK_EQ_INT(weft_ipam_release_node_blocks(g_m, "n3"), 0);
	/* The freed block is claimable again; the orphan goes once empty. */
	CHECK_STREQ(alloc1("e:eth0", "n5", NULL), "10.71.0.32");
	CHECK(key_exists("/weft/v1/ipam/affinities/n5/10.71.0.32-28"));
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "borrow:eth0"), 1);
	CHECK_EQ_INT(weft_ipam_release_empty_blocks(g_m, NULL), 1);
	CHECK(!key_exists("/weft/v1/ipam/blocks/10.71.0.0-28"));
	CHECK_EQ_INT(check_problems(NULL, NULL), 0);
	teardown();
}

/* A node's empty block gains an address between release_node_blocks'
 * read and its transaction (its weftd still running, or a plugin's ADD
 * in flight): the compare fails, nothing is released, the block keeps
 * its affinity and the address, and the caller hears "try again". */
static void take_n1_address(void)
{
	struct weft_ipam *m2 = NULL;
	struct weft_ipam_request req = {.handle = "late:eth0", .node = "n1", .attrs = {.node = (char *)"n1"}};
	struct weft_ip ip;

	CHECK_EQ_INT(weft_ipam_new(g_s, &m2), 0);
	CHECK_EQ_INT(weft_ipam_auto_assign(m2, &req, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "10.72.0.0");
	weft_ipam_free(m2);
}

static void test_release_node_blocks_race(void)
{
	setup();
	add_pool("p1", "10.72.0.0/26", 28, false, NULL);
	CHECK_STREQ(alloc1("a:eth0", "n1", NULL), "10.72.0.0");
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "a:eth0"), 1);
	/* Empty now, and affine to n1. */
	txn_hook = take_n1_address;
	CHECK_EQ_INT(weft_ipam_release_node_blocks(g_m, "n1"), -EAGAIN);
	CHECK(txn_hook == NULL); /* it ran */
	CHECK(strstr(weft_ipam_errmsg(g_m), "10.72.0.0-28 changed meanwhile: try again") != NULL);
	CHECK(key_exists("/weft/v1/ipam/affinities/n1/10.72.0.0-28"));
	CHECK(key_exists("/weft/v1/ipam/blocks/10.72.0.0-28"));
	struct weft_ipam_allocation a = {0};
	struct weft_ip ip = IP("10.72.0.0");
	CHECK_EQ_INT(weft_ipam_lookup_ip(g_m, &ip, &a), 0);
	CHECK_STREQ(a.handle, "late:eth0");
	weft_ipam_allocation_clear(&a);
	CHECK_EQ_INT(check_problems(NULL, NULL), 0);
	/* Run again once the address is gone: released. */
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "late:eth0"), 1);
	CHECK_EQ_INT(weft_ipam_release_node_blocks(g_m, "n1"), 1);
	CHECK(!key_exists("/weft/v1/ipam/blocks/10.72.0.0-28"));
	CHECK(!key_exists("/weft/v1/ipam/affinities/n1/10.72.0.0-28"));
	teardown();
}

static void test_pool_choice(void)
{
	struct weft_ip ip;
	const char *by_name[] = {"second"};
	const char *by_cidr[] = {"10.72.0.0/24"};
	const char *unknown[] = {"nope"};
	const char *off[] = {"off"};
	struct weft_ipam_request req = {.handle = "h:eth0", .node = "n1"};

	setup();
	/* No pool at all. */
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), -ENOENT);
	add_pool("first", "10.71.0.0/24", 26, false, NULL);
	add_pool("second", "10.72.0.0/24", 26, false, NULL);
	add_pool("off", "10.73.0.0/24", 26, true, NULL);
	add_pool("v6", "fd00:65::/64", 122, false, NULL);
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "10.71.0.0");
	req.pools = by_name;
	req.npools = 1;
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "10.72.0.0");
	req.pools = by_cidr;
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "10.72.0.1");
	req.pools = unknown;
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), -ENOENT);
	CHECK(strstr(weft_ipam_errmsg(g_m), "nope") != NULL);
	req.pools = off;
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), -ENOENT);
	/* IPv6 uses the same code. */
	req.pools = NULL;
	req.npools = 0;
	req.family = AF_INET6;
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "fd00:65::");
	CHECK(key_exists("/weft/v1/ipam/blocks/fd00:65::-122"));
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "h:eth0"), 4);
	teardown();

	/* nodeSelector is evaluated against the Node resource's labels. */
	setup();
	add_pool("sel", "10.74.0.0/24", 26, false, "role == 'edge'");
	add_pool("rest", "10.76.0.0/24", 26, false, "!has(role)");
	add_node("n1", "role: edge");
	add_node("n2", NULL);
	req = (struct weft_ipam_request){.handle = "h:eth0", .node = "n1"};
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "10.74.0.0");
	req = (struct weft_ipam_request){.handle = "h2:eth0", .node = "n2"};
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "10.76.0.0");
	/* A node without a Node record has no labels: !has(role) still matches. */
	req = (struct weft_ipam_request){.handle = "h3:eth0", .node = "n3"};
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "10.76.0.64");
	/* Named pools are used whatever their selector says. */
	const char *sel[] = {"sel"};
	req = (struct weft_ipam_request){.handle = "h4:eth0", .node = "n2", .pools = sel, .npools = 1};
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), 1);
	/* ... unless by_selector: then only those that select the node. */
	const char *both[] = {"sel", "rest"};
	req = (struct weft_ipam_request){.handle = "h5:eth0", .node = "n2", .pools = both, .npools = 2,
					 .by_selector = true};
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "10.76.0.1");
	req = (struct weft_ipam_request){.handle = "h6:eth0", .node = "n2", .pools = sel, .npools = 1,
					 .by_selector = true};
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), -ENOENT);
	CHECK(strstr(weft_ipam_errmsg(g_m), "pool sel's nodeSelector") != NULL);
	teardown();

	/* No pool selects the node: a clear error. */
	setup();
	add_pool("sel", "10.74.0.0/24", 26, false, "role == 'edge'");
	req = (struct weft_ipam_request){.handle = "h:eth0", .node = "n1"};
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), -ENOENT);
	CHECK(strstr(weft_ipam_errmsg(g_m), "nodeSelector") != NULL);
	teardown();
}

static void test_corrupt_records(void)
{
	static const char bad[] = "{\"cidr\":\"10.75.0.0/28\",\"affinity\":\"n1\",\"allocations\":[{\"ip\":\"10.99.0.1\",\"handle\":\"x\"}]}";
	struct weft_ipam_usage *u = NULL;
	size_t n = 0;
	char **probs = NULL;

	setup();
	add_pool("p1", "10.75.0.0/24", 28, false, NULL);
	static const char aff[] = "{\"node\":\"n1\",\"cidr\":\"10.75.0.0/28\"}";
	CHECK_EQ_INT(weft_store_put(g_s, "/weft/v1/ipam/blocks/10.75.0.0-28", bad, strlen(bad), NULL), 0);
	CHECK_EQ_INT(weft_store_put(g_s, "/weft/v1/ipam/affinities/n1/10.75.0.0-28", aff, strlen(aff), NULL), 0);
	/* One corrupt block stops neither allocation (n1's own block is
	 * skipped, and no block is claimed over it), nor the queries. */
	CHECK_STREQ(alloc1("n2:eth0", "n2", NULL), "10.75.0.16");
	CHECK_STREQ(alloc1("n1:eth0", "n1", NULL), "10.75.0.32");
	CHECK_EQ_INT(weft_ipam_usage(g_m, &u, &n), 3); /* the pool and the two good blocks */
	weft_ipam_usage_free(u, n);
	struct weft_ipam_allocation *all = NULL;
	CHECK_EQ_INT(weft_ipam_list_allocations(g_m, &all, &n), 2);
	weft_ipam_allocations_free(all, n);
	int r = weft_ipam_check(g_m, &probs, &n);
	CHECK_EQ_INT(r, 1);
	CHECK(n == 1 && strstr(probs[0], "corrupt record: /weft/v1/ipam/blocks/10.75.0.0-28: allocations[0].ip") != NULL);
	for (size_t i = 0; i < n; i++)
		free(probs[i]);
	free(probs);
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "n1:eth0"), 1);
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "n2:eth0"), 1);
	/* The corrupt block is neither released as empty nor overwritten. */
	CHECK_EQ_INT(weft_ipam_release_empty_blocks(g_m, NULL), 2);
	CHECK(key_exists("/weft/v1/ipam/blocks/10.75.0.0-28"));
	CHECK_EQ_INT(weft_store_delete(g_s, "/weft/v1/ipam/affinities/n1/10.75.0.0-28", 0, NULL), 0);
	/* A handle record pointing to nothing is reported too. */
	static const char h[] = "{\"handle\":\"lost:eth0\",\"allocations\":[{\"ip\":\"10.75.0.33\",\"key\":\"/weft/v1/ipam/blocks/10.75.0.32-28\"}]}";
	CHECK_EQ_INT(weft_store_put(g_s, "/weft/v1/ipam/handles/lost:eth0", h, strlen(h), NULL), 0);
	CHECK_EQ_INT(weft_store_delete(g_s, "/weft/v1/ipam/blocks/10.75.0.0-28", 0, NULL), 0);
	CHECK_EQ_INT(check_problems("lost:eth0", &n), 1);
	CHECK_EQ_INT(n, 1);
	/* Releasing it cleans the dangling handle. */
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "lost:eth0"), 0);
	CHECK(!key_exists("/weft/v1/ipam/handles/lost:eth0"));
	teardown();
}

/* A failed commit (a block record past its size cap: -ENOSPC) must not
 * leave the address in the handle record that a later commit of the same
 * attempt writes: that record listed the never-allocated address, twice
 * when the same block was tried again when borrowing, and then did not
 * decode ("listed twice"), so the handle could never be released. */
static void test_record_cap_handle(void)
{
	char l[WEFT_IPAM_NAME_MAX + 1];
	struct weft_ipam_attrs big;
	struct ipam_rec b = {.type = IPAM_REC_BLOCK, .affinity = "n1"};
	struct weft_ipam_request req = {.handle = "big:eth0", .node = "n1"};
	struct weft_ip ip, cand;
	size_t n = 0;

	setup();
	memset(l, 'x', WEFT_IPAM_NAME_MAX);
	l[WEFT_IPAM_NAME_MAX] = 0;
	big = (struct weft_ipam_attrs){.namespace = l, .pod = l, .node = l, .container_id = l, .ifname = l};
	/* Two /22 blocks: n1's, filled past the cap with long attributes, and n2's. */
	add_pool("p1", "10.77.0.0/21", 22, false, NULL);
	CHECK_STREQ(alloc1("n2:eth0", "n2", NULL), "10.77.0.0");
	CHECK_EQ_INT(weft_cidr_parse("10.77.4.0/22", false, &b.cidr), 0);
	cand = b.cidr.ip;
	for (int i = 0; i < 640; i++) {
		CHECK_EQ_INT(ipam_rec_add(&b, &cand, "fill", &big), 0);
		CHECK_EQ_INT(weft_ip_add(&cand, 1, &cand), 0);
	}
	b.affinity = NULL; /* a string literal: not for ipam_rec_clear() */
	{
		_cleanup_free_ char *v = ipam_rec_encode(&(struct ipam_rec){.type = IPAM_REC_BLOCK, .cidr = b.cidr,
									   .affinity = "n1", .allocs = b.allocs,
									   .n = b.n});
		_cleanup_free_ char *a = ipam_affinity_encode("n1", &b.cidr);
		CHECK(strlen(v) > 768 * 1024);
		CHECK_EQ_INT(weft_store_put(g_s, "/weft/v1/ipam/blocks/10.77.4.0-22", v, strlen(v), NULL), 0);
		CHECK_EQ_INT(weft_store_put(g_s, "/weft/v1/ipam/affinities/n1/10.77.4.0-22", a, strlen(a), NULL), 0);
	}
	ipam_rec_clear(&b);
	/* n1's own block fails (-ENOSPC: too big), no block is left to claim,
	 * borrowing tries n1's block again, then n2's. */
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "10.77.0.1");
	CHECK(check_problems("big:eth0", &n) >= 0);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "big:eth0"), 1);
	CHECK(!key_exists("/weft/v1/ipam/handles/big:eth0"));
	teardown();
}

/* Overlapping blocks are found whatever lies between them in start order:
 * 10.78.0.0/24 and 10.78.0.64/26 with 10.78.0.0/28 in between. */
static void test_check_overlap(void)
{
	static const char *const cidrs[] = {"10.78.0.0/24", "10.78.0.0/28", "10.78.0.64/26"};
	char **probs = NULL;
	size_t n = 0;
	int found = 0;

	setup();
	for (size_t i = 0; i < ARRAY_SIZE(cidrs); i++) {
		struct ipam_rec b = {.type = IPAM_REC_BLOCK};
		CHECK_EQ_INT(weft_cidr_parse(cidrs[i], false, &b.cidr), 0);
		_cleanup_free_ char *key = ipam_block_key(&b.cidr), *v = ipam_rec_encode(&b);
		CHECK_EQ_INT(weft_store_put(g_s, key, v, strlen(v), NULL), 0);
	}
	CHECK_EQ_INT(weft_ipam_check(g_m, &probs, &n), 2);
	for (size_t i = 0; i < n; i++) {
		found += streq(probs[i], "blocks 10.78.0.0/24 and 10.78.0.0/28 overlap");
		found += streq(probs[i], "blocks 10.78.0.0/24 and 10.78.0.64/26 overlap");
		free(probs[i]);
	}
	free(probs);
	CHECK_EQ_INT(found, 2);
	teardown();
}

/* Overlapping pools (of different blockSizes here): no block is claimed
 * from either, on any node, and the error names both pools; a pool that
 * overlaps nothing is still used. */
static void test_overlapping_pools(void)
{
	struct weft_ip ip = IP("10.79.0.5");
	struct weft_kv_list l = {0};
	int r;

	setup();
	add_pool("a", "10.79.0.0/16", 26, false, NULL);
	add_pool("b", "10.79.0.0/24", 28, false, NULL);
	CHECK_STREQ(alloc1("x:eth0", "n1", &r), "");
	CHECK_EQ_INT(r, -ENOSPC);
	CHECK(strstr(weft_ipam_errmsg(g_m), "pool a's spec.cidr overlaps pool b's") != NULL);
	CHECK_STREQ(alloc1("y:eth0", "n2", &r), "");
	CHECK_EQ_INT(r, -ENOSPC);
	CHECK_EQ_INT(weft_ipam_assign_ip(g_m, "s:eth0", &ip, "n1", NULL), -EINVAL);
	CHECK(strstr(weft_ipam_errmsg(g_m), "overlaps pool b's") != NULL);
	CHECK_EQ_INT(weft_store_list(g_s, WEFT_IPAM_PREFIX, &l), 0);
	CHECK_EQ_INT(l.n, 0);
	weft_kv_list_clear(&l);
	add_pool("c", "10.80.0.0/24", 28, false, NULL);
	CHECK_STREQ(alloc1("z:eth0", "n1", NULL), "10.80.0.0");
	/* With b gone, a is used again. */
	CHECK_EQ_INT(weft_store_delete(g_s, "/weft/v1/ippools/b", 0, NULL), 0);
	const char *only_a[] = {"a"};
	struct weft_ipam_request req = {.handle = "x:eth0", .node = "n1", .pools = only_a, .npools = 1};
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "10.79.0.0");
	/* A disabled pool gets no claims: overlapping it stops nothing. */
	add_pool("d", "10.79.0.0/20", 28, true, NULL);
	struct weft_ipam_request req2 = {.handle = "w:eth0", .node = "n2", .pools = only_a, .npools = 1};
	CHECK_EQ_INT(weft_ipam_auto_assign(g_m, &req2, &ip), 1);
	CHECK_STREQ(ipstr(&ip), "10.79.0.64"); /* a block of its own, not one borrowed from n1's */
	teardown();
}

/* --- ranges --------------------------------------------------------------- */

static const char *ralloc(const struct weft_ipam_range *r, const char *handle, int *rp)
{
	static char buf[WEFT_IP_STRLEN];
	struct weft_ip ip;
	int rv = weft_ipam_range_assign(g_m, r, handle, NULL, &ip);

	if (rp)
		*rp = rv;
	if (rv < 0) {
		if (!rp)
			fprintf(stderr, "range alloc %s: %s (%s)\n", handle, strerror(-rv), weft_ipam_errmsg(g_m));
		return "";
	}
	return weft_ip_str(&ip, buf, sizeof(buf));
}

static void test_range(void)
{
	struct weft_ipam_range r = {.network = "macnet"};
	struct weft_cidr ex[2];
	int rv;

	setup();
	CHECK_EQ_INT(weft_ipam_range_parse("192.168.91.100-192.168.91.110/24", &r), 0);
	CHECK_EQ_INT(weft_cidr_parse_host("192.168.91.102", &ex[0]), 0);
	CHECK_EQ_INT(weft_cidr_parse("192.168.91.104/31", false, &ex[1]), 0);
	r.exclude = ex;
	r.nexclude = 2;
	r.gateway = IP("192.168.91.101");
	CHECK_STREQ(ralloc(&r, "a:net1", NULL), "192.168.91.100");
	CHECK_STREQ(ralloc(&r, "b:net1", NULL), "192.168.91.103"); /* 101 gateway, 102 excluded */
	CHECK_STREQ(ralloc(&r, "c:net1", NULL), "192.168.91.106"); /* 104-105 excluded */
	/* A repeated ADD gets the same address. */
	CHECK_STREQ(ralloc(&r, "b:net1", NULL), "192.168.91.103");
	CHECK(key_exists("/weft/v1/ipam/ranges/macnet/192.168.91.0-24"));
	/* Release, then the lowest free address is reused. */
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "b:net1"), 1);
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "b:net1"), 0);
	CHECK_STREQ(ralloc(&r, "d:net1", NULL), "192.168.91.103");
	CHECK_STREQ(ralloc(&r, "e:net1", NULL), "192.168.91.107");
	CHECK_STREQ(ralloc(&r, "f:net1", NULL), "192.168.91.108");
	CHECK_STREQ(ralloc(&r, "g:net1", NULL), "192.168.91.109");
	CHECK_STREQ(ralloc(&r, "h:net1", NULL), "192.168.91.110");
	CHECK_STREQ(ralloc(&r, "i:net1", &rv), "");
	CHECK_EQ_INT(rv, -ENOSPC);
	CHECK(strstr(weft_ipam_errmsg(g_m), "is full") != NULL);

	struct weft_ipam_allocation a = {0};
	struct weft_ip ip = IP("192.168.91.107");
	CHECK_EQ_INT(weft_ipam_lookup_ip(g_m, &ip, &a), 0);
	CHECK_STREQ(a.handle, "e:net1");
	CHECK_STREQ(a.holder, "/weft/v1/ipam/ranges/macnet/192.168.91.0-24");
	weft_ipam_allocation_clear(&a);
	CHECK_EQ_INT(weft_ipam_release_ip(g_m, &ip), 1);
	CHECK_STREQ(ralloc(&r, "j:net1", NULL), "192.168.91.107");

	/* Never the network or broadcast address: a /30 has two. */
	struct weft_ipam_range small = {.network = "tiny"};
	CHECK_EQ_INT(weft_ipam_range_parse("10.9.9.0/30", &small), 0);
	CHECK_STREQ(ralloc(&small, "t1:net1", NULL), "10.9.9.1");
	CHECK_STREQ(ralloc(&small, "t2:net1", NULL), "10.9.9.2");
	CHECK_STREQ(ralloc(&small, "t3:net1", &rv), "");
	CHECK_EQ_INT(rv, -ENOSPC);
	/* Even when start/end include them. */
	struct weft_ipam_range wide = {.network = "wide"};
	CHECK_EQ_INT(weft_ipam_range_parse("10.9.8.0-10.9.8.3/30", &wide), 0);
	CHECK_STREQ(ralloc(&wide, "w1:net1", NULL), "10.9.8.1");

	/* Bad ranges. */
	struct weft_ipam_range bad = {.network = "bad"};
	CHECK_EQ_INT(weft_ipam_range_parse("10.0.0.5-10.0.1.5/24", &bad), -EINVAL);
	CHECK_EQ_INT(weft_ipam_range_parse("10.0.0.9-10.0.0.5/24", &bad), -EINVAL);
	CHECK_EQ_INT(weft_ipam_range_parse("banana", &bad), -EINVAL);
	CHECK_EQ_INT(weft_ipam_range_parse("10.0.0.0/24", &bad), 0);
	bad.start = IP("10.0.1.1");
	CHECK_EQ_INT(weft_ipam_range_assign(g_m, &bad, "x:net1", NULL, &ip), -EINVAL);
	CHECK(strstr(weft_ipam_errmsg(g_m), "range_start") != NULL);
	bad.start = (struct weft_ip){0};
	bad.network = "a/b";
	CHECK_EQ_INT(weft_ipam_range_assign(g_m, &bad, "x:net1", NULL, &ip), -EINVAL);

	/* Usage lists the ranges. */
	struct weft_ipam_usage *u = NULL;
	size_t n = 0;
	CHECK_EQ_INT(weft_ipam_usage(g_m, &u, &n), 3);
	if (n == 3) {
		CHECK_EQ_INT(u[0].kind, WEFT_IPAM_USAGE_RANGE);
		CHECK_STREQ(u[0].affinity, "macnet");
		CHECK_EQ_INT(u[0].used, 7);
	}
	weft_ipam_usage_free(u, n);
	teardown();
}

/* A network whose range config changes (a /24 grown to a /23, or cut to
 * a /25) gets a record per subnet; the addresses of the network's other
 * records whose subnets overlap are in use too. Another network's are not. */
static void test_range_resized(void)
{
	struct weft_ipam_range r24 = {.network = "grow"}, r23 = {.network = "grow"}, r25 = {.network = "grow"};
	struct weft_ipam_range other = {.network = "other"};

	setup();
	CHECK_EQ_INT(weft_ipam_range_parse("192.168.92.0/24", &r24), 0);
	CHECK_EQ_INT(weft_ipam_range_parse("192.168.92.0/23", &r23), 0);
	CHECK_EQ_INT(weft_ipam_range_parse("192.168.92.0/25", &r25), 0);
	CHECK_EQ_INT(weft_ipam_range_parse("192.168.92.0/24", &other), 0);
	CHECK_STREQ(ralloc(&r24, "a:net1", NULL), "192.168.92.1");
	CHECK_STREQ(ralloc(&r24, "b:net1", NULL), "192.168.92.2");
	{
		/* The /23 record's creation rewrites the /24 one, so that an
		 * allocation in the /24 that read before the /23 existed
		 * (comparing the /24 alone) conflicts instead of handing out
		 * the address again. */
		struct weft_kv kv = {0};
		int64_t before;
		CHECK_EQ_INT(weft_store_get(g_s, "/weft/v1/ipam/ranges/grow/192.168.92.0-24", &kv), 0);
		before = kv.mod_rev;
		weft_kv_clear(&kv);
		CHECK_STREQ(ralloc(&r23, "c:net1", NULL), "192.168.92.3");
		CHECK_EQ_INT(weft_store_get(g_s, "/weft/v1/ipam/ranges/grow/192.168.92.0-24", &kv), 0);
		CHECK(kv.mod_rev > before);
		weft_kv_clear(&kv);
	}
	CHECK_STREQ(ralloc(&r25, "d:net1", NULL), "192.168.92.4");
	CHECK_STREQ(ralloc(&r24, "e:net1", NULL), "192.168.92.5");
	CHECK(key_exists("/weft/v1/ipam/ranges/grow/192.168.92.0-23"));
	CHECK(key_exists("/weft/v1/ipam/ranges/grow/192.168.92.0-25"));
	CHECK_STREQ(ralloc(&other, "f:net1", NULL), "192.168.92.1");
	CHECK_EQ_INT(weft_ipam_release_handle(g_m, "a:net1"), 1);
	CHECK_STREQ(ralloc(&r23, "g:net1", NULL), "192.168.92.1");
	CHECK_EQ_INT(check_problems(NULL, NULL), 0);
	teardown();
}

/* --- concurrency ----------------------------------------------------------------- */

#define NPROC 8
#define PER_PROC 25

/* Child: its own store handle and IPAM context, PER_PROC allocations,
 * each address written to fd as "ip handle\n". */
static void child_pool(int idx, int fd)
{
	struct weft_store *s = NULL;
	struct weft_ipam *m = NULL;
	char node[16];
	int rc = 0;

	if (weft_store_open(g_url, &s, NULL) < 0 || weft_ipam_new(s, &m) < 0)
		_exit(2);
	snprintf(node, sizeof(node), "node%d", idx % 4);
	for (int i = 0; i < PER_PROC; i++) {
		char handle[64], line[128], ips[WEFT_IP_STRLEN];
		struct weft_ipam_request req = {.handle = handle, .node = node, .attrs = {.node = node}};
		struct weft_ip ip;
		int r;

		snprintf(handle, sizeof(handle), "p%d-%d:eth0", idx, i);
		r = weft_ipam_auto_assign(m, &req, &ip);
		if (r != 1) {
			fprintf(stderr, "child %d: %s: %s\n", idx, strerror(-r), weft_ipam_errmsg(m));
			rc = 3;
			break;
		}
		int len = snprintf(line, sizeof(line), "%s %s\n", weft_ip_str(&ip, ips, sizeof(ips)), handle);
		if (write(fd, line, (size_t)len) != len)
			rc = 4;
	}
	weft_ipam_free(m);
	weft_store_close(s);
	_exit(rc);
}

static void child_range(int idx, int fd)
{
	struct weft_store *s = NULL;
	struct weft_ipam *m = NULL;
	struct weft_ipam_range r = {.network = "par"};
	int rc = 0;

	if (weft_store_open(g_url, &s, NULL) < 0 || weft_ipam_new(s, &m) < 0 ||
	    weft_ipam_range_parse("172.30.0.0/24", &r) < 0)
		_exit(2);
	for (int i = 0; i < PER_PROC; i++) {
		char handle[64], line[128], ips[WEFT_IP_STRLEN];
		struct weft_ip ip;
		int rv;

		snprintf(handle, sizeof(handle), "r%d-%d:net1", idx, i);
		rv = weft_ipam_range_assign(m, &r, handle, NULL, &ip);
		if (rv < 0) {
			fprintf(stderr, "child %d: %s: %s\n", idx, strerror(-rv), weft_ipam_errmsg(m));
			rc = 3;
			break;
		}
		int len = snprintf(line, sizeof(line), "%s %s\n", weft_ip_str(&ip, ips, sizeof(ips)), handle);
		if (write(fd, line, (size_t)len) != len)
			rc = 4;
	}
	weft_ipam_free(m);
	weft_store_close(s);
	_exit(rc);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Fork NPROC children running fn, collect their "ip handle" lines, and
 * check: NPROC*PER_PROC distinct addresses, each held by its handle. */
static void run_parallel(void (*fn)(int, int))
{
	char path[320];
	pid_t pids[NPROC];
	int fd;

	snprintf(path, sizeof(path), "%s/out", g_dir);
	fd = open(path, O_CREAT | O_WRONLY | O_APPEND | O_TRUNC, 0600);
	CHECK(fd >= 0);
	fflush(NULL);
	for (int i = 0; i < NPROC; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			fn(i, fd);
		CHECK(pids[i] > 0);
	}
	close(fd);
	for (int i = 0; i < NPROC; i++) {
		int st = 0;
		CHECK_EQ_INT(waitpid(pids[i], &st, 0), pids[i]);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}

	FILE *f = fopen(path, "r");
	char *ips[NPROC * PER_PROC], line[128];
	size_t n = 0;
	CHECK(f != NULL);
	while (f && n < ARRAY_SIZE(ips) && fgets(line, sizeof(line), f)) {
		char ipbuf[64], handle[64];
		struct weft_ipam_allocation a = {0};
		struct weft_ip ip;
		if (sscanf(line, "%63s %63s", ipbuf, handle) != 2)
			continue;
		ips[n++] = wstrdup(ipbuf);
		CHECK_EQ_INT(weft_ip_parse(ipbuf, &ip), 0);
		CHECK_EQ_INT(weft_ipam_lookup_ip(g_m, &ip, &a), 0);
		CHECK_STREQ(a.handle, handle);
		weft_ipam_allocation_clear(&a);
		/* Every handle is recorded. */
		_cleanup_free_ char *hk = wasprintf("/weft/v1/ipam/handles/%s", handle);
		CHECK(key_exists(hk));
	}
	if (f)
		fclose(f);
	CHECK_EQ_INT(n, NPROC * PER_PROC);
	qsort(ips, n, sizeof(*ips), cmp_str);
	for (size_t i = 1; i < n; i++)
		if (streq(ips[i - 1], ips[i])) {
			fprintf(stderr, "duplicate address %s\n", ips[i]);
			CHECK(false);
		}
	for (size_t i = 0; i < n; i++)
		free(ips[i]);

	struct weft_ipam_allocation *all = NULL;
	size_t na = 0;
	CHECK_EQ_INT(weft_ipam_list_allocations(g_m, &all, &na), NPROC * PER_PROC);
	weft_ipam_allocations_free(all, na);
	CHECK_EQ_INT(check_problems(NULL, NULL), 0);
}

static void release_all_and_check_empty(char prefix, const char *ifname)
{
	for (int i = 0; i < NPROC; i++)
		for (int j = 0; j < PER_PROC; j++) {
			char handle[64];
			snprintf(handle, sizeof(handle), "%c%d-%d:%s", prefix, i, j, ifname);
			CHECK_EQ_INT(weft_ipam_release_handle(g_m, handle), 1);
		}
	struct weft_ipam_usage *u = NULL;
	size_t n = 0;
	CHECK(weft_ipam_usage(g_m, &u, &n) > 0);
	for (size_t i = 0; i < n; i++)
		CHECK_EQ_INT(u[i].used, 0);
	weft_ipam_usage_free(u, n);
	struct weft_kv_list l = {0};
	CHECK_EQ_INT(weft_store_list(g_s, WEFT_IPAM_HANDLES_PREFIX, &l), 0);
	CHECK_EQ_INT(l.n, 0);
	weft_kv_list_clear(&l);
}

static void test_parallel_pool(void)
{
	setup();
	add_pool("p1", "10.80.0.0/24", 28, false, NULL);
	run_parallel(child_pool);
	release_all_and_check_empty('p', "eth0");
	/* With every block empty, releasing them all leaves no IPAM record. */
	CHECK(weft_ipam_release_empty_blocks(g_m, NULL) >= 13);
	struct weft_kv_list l = {0};
	CHECK_EQ_INT(weft_store_list(g_s, WEFT_IPAM_PREFIX, &l), 0);
	CHECK_EQ_INT(l.n, 0);
	weft_kv_list_clear(&l);
	teardown();
}

static void test_parallel_range(void)
{
	setup();
	run_parallel(child_range);
	release_all_and_check_empty('r', "net1");
	teardown();
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_claim_allocate), TEST(test_borrow_exhaust), TEST(test_handle_release),
		TEST(test_static_ip),      TEST(test_release_empty_blocks), TEST(test_release_node_blocks),
		TEST(test_release_node_blocks_race),
		TEST(test_pool_choice),
		TEST(test_corrupt_records), TEST(test_record_cap_handle), TEST(test_check_overlap), TEST(test_overlapping_pools), TEST(test_range), TEST(test_range_resized),          TEST(test_parallel_pool),
		TEST(test_parallel_range),
	};

	weft_json_init();
	weft_log_init("test-ipam", WEFT_LOG_INFO);
	return test_run(cases, ARRAY_SIZE(cases));
}
