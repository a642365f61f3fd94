/* test-node-delete-race.c - `weftctl delete node` against a writer that
 * lands between its steps, in a fresh file: store.
 *
 * Linked with --wrap=weft_store_txn: a hook runs right before the next
 * transaction of weftctl's own code (write.c, node-delete.c) or of IPAM
 * (the store's put/delete helpers call the real one from inside the
 * store library and are not seen), as another weftd or plugin writing at
 * that moment would land. The hook's own writes go through the real call.
 */
#include "ctl/ctl.h"
#include "ipam/ipam.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/test.h"
#include "model/resource.h"
#include "model/test-store-util.h"

#include <getopt.h>
#include <time.h>

int __real_weft_store_txn(struct weft_store *s, const struct weft_txn_cmp *cmps, size_t ncmps,
			  const struct weft_txn_op *ops, size_t nops, int64_t *rev);
int __wrap_weft_store_txn(struct weft_store *s, const struct weft_txn_cmp *cmps, size_t ncmps,
			  const struct weft_txn_op *ops, size_t nops, int64_t *rev);

static char g_dir[256];
static char g_url[300];
static struct weft_store *g_s; /* the test's own handle: the other writer */

/* The hook runs before the first transaction that deletes hook_key. */
static const char *hook_key;
static void (*hook_fn)(void);
static int hook_runs;

int __wrap_weft_store_txn(struct weft_store *s, const struct weft_txn_cmp *cmps, size_t ncmps,
			  const struct weft_txn_op *ops, size_t nops, int64_t *rev)
{
	for (size_t i = 0; hook_key && i < nops; i++)
		if (ops[i].type == WEFT_OP_DELETE && streq(ops[i].key, hook_key)) {
			void (*fn)(void) = hook_fn;

			hook_key = NULL;
			hook_runs++;
			fn();
			break;
		}
	return __real_weft_store_txn(s, cmps, ncmps, ops, nops, rev);
}

static void setup(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/weft-test-nodedel-XXXXXX");
	CHECK_EQ_INT(test_store_open_tmp(g_dir, g_url, sizeof(g_url), &g_s), 0);
	hook_key = NULL;
	hook_runs = 0;
}

static void teardown(void)
{
	weft_store_close(g_s);
	g_s = NULL;
	test_store_remove_tmp(g_dir);
}

static void put_manifest(const char *text)
{
	test_put_manifest(g_s, "manifest", text);
}

static bool key_exists(const char *key)
{
	struct weft_kv kv = {0};
	int r = weft_store_get(g_s, key, &kv);

	weft_kv_clear(&kv);
	return r == 0;
}

/* `weftctl delete node NAME [--force]` on the test's store; stderr goes
 * to the test's output. Returns the exit code. */
static int delete_node(const char *name, bool force)
{
	char *argv[] = {(char *)"delete", (char *)"node", (char *)name, (char *)"--force", NULL};
	struct ctl ctl = {.store_url = g_url};

	optind = 0;
	return ctl_cmd_delete(&ctl, force ? 4 : 3, argv);
}

/* A node whose weftd stopped cleanly (no --force needed), with a pod's
 * Endpoint and its address in the node's block. */
static void add_node_with_pod(void)
{
	struct weft_ipam *m = NULL;
	struct weft_ip ip;
	struct weft_ipam_request req = {.handle = "c1:eth0", .node = "n1", .attrs = {.node = (char *)"n1"}};

	put_manifest("kind: Node\nmetadata: {name: n1}\nspec: {bgp: {ipv4Address: 198.18.0.11/24}, status: {healthy: "
		     "false, reason: \"" WEFT_NODE_REASON_STOPPED "\", lastSync: \"2026-01-01T00:00:00Z\"}}\n");
	put_manifest("kind: IPPool\nmetadata: {name: p1}\nspec: {cidr: 10.73.0.0/26, blockSize: 28}\n");
	CHECK_EQ_INT(weft_ipam_new(g_s, &m), 0);
	CHECK_EQ_INT(weft_ipam_auto_assign(m, &req, &ip), 1);
	weft_ipam_free(m);
	put_manifest("kind: Endpoint\nmetadata: {name: n1-c1-eth0}\nspec: {node: n1, containerID: c1, ifname: eth0, "
		     "ipNetworks: [10.73.0.0/32]}\n");
}

/* Node n1's weftd starts again and writes its status: a new revision. */
static void weftd_writes_status(void)
{
	char now[32];
	time_t t = time(NULL);
	struct tm tm;

	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	_cleanup_free_ char *text = wasprintf("kind: Node\nmetadata: {name: n1}\nspec: {bgp: {ipv4Address: "
					      "198.18.0.11/24}, status: {healthy: true, lastSync: \"%s\"}}\n",
					      now);
	put_manifest(text);
}

/* The Node changes after the check read its revision: while its
 * belongings go (hook_at: the IPAM release of its pod's address), or
 * right before the final transaction (hook_at: the Node's key). The Node
 * is kept (its belongings are gone already, which the message says), and
 * its weftd, healthy now, keeps it from a second run without --force. */
static void node_changed_meanwhile(const char *hook_at)
{
	setup();
	add_node_with_pod();
	hook_key = hook_at;
	hook_fn = weftd_writes_status;
	CHECK_EQ_INT(delete_node("n1", false), 1);
	CHECK_EQ_INT(hook_runs, 1);
	CHECK(key_exists("/weft/v1/nodes/n1"));
	CHECK(!key_exists("/weft/v1/endpoints/n1-c1-eth0"));
	CHECK(!key_exists("/weft/v1/ipam/handles/c1:eth0"));
	CHECK_EQ_INT(delete_node("n1", false), 1);
	CHECK(key_exists("/weft/v1/nodes/n1"));
	CHECK_EQ_INT(delete_node("n1", true), 0);
	CHECK(!key_exists("/weft/v1/nodes/n1"));
	CHECK(!key_exists("/weft/v1/ipam/blocks/10.73.0.0-28"));
	teardown();
}

static void test_node_changed_during_cascade(void)
{
	node_changed_meanwhile("/weft/v1/ipam/handles/c1:eth0");
}

static void test_node_changed_before_delete(void)
{
	node_changed_meanwhile("/weft/v1/nodes/n1");
}

/* The node's block gains an address after its Endpoints' addresses are
 * released and before the block goes (a plugin's ADD in flight on a node
 * whose weftd runs on, given --force): nothing more is deleted, the Node
 * is kept, and the block keeps the new address and its affinity. */
static void add_late_address(void)
{
	struct weft_ipam *m = NULL;
	struct weft_ip ip;
	struct weft_ipam_request req = {.handle = "late:eth0", .node = "n1", .attrs = {.node = (char *)"n1"}};

	CHECK_EQ_INT(weft_ipam_new(g_s, &m), 0);
	CHECK_EQ_INT(weft_ipam_auto_assign(m, &req, &ip), 1);
	weft_ipam_free(m);
}

static void test_block_filled_meanwhile(void)
{
	setup();
	add_node_with_pod();
	hook_key = "/weft/v1/ipam/affinities/n1/10.73.0.0-28";
	hook_fn = add_late_address;
	CHECK_EQ_INT(delete_node("n1", false), 1);
	CHECK_EQ_INT(hook_runs, 1);
	CHECK(key_exists("/weft/v1/nodes/n1"));
	CHECK(key_exists("/weft/v1/ipam/blocks/10.73.0.0-28"));
	CHECK(key_exists("/weft/v1/ipam/affinities/n1/10.73.0.0-28"));
	CHECK(key_exists("/weft/v1/ipam/handles/late:eth0"));
	/* Run again: the late address records the node, so it goes too,
	 * then the empty block, then the Node. */
	CHECK_EQ_INT(delete_node("n1", false), 0);
	CHECK(!key_exists("/weft/v1/nodes/n1"));
	CHECK(!key_exists("/weft/v1/ipam/handles/late:eth0"));
	CHECK(!key_exists("/weft/v1/ipam/affinities/n1/10.73.0.0-28"));
	CHECK(!key_exists("/weft/v1/ipam/blocks/10.73.0.0-28"));
	teardown();
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_node_changed_during_cascade),
		TEST(test_node_changed_before_delete),
		TEST(test_block_filled_meanwhile),
	};

	weft_json_init();
	weft_log_init("test-node-delete-race", WEFT_LOG_INFO);
	return test_run(cases, ARRAY_SIZE(cases));
}
