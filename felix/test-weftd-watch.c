/* test-weftd-watch.c - the store watch each half of weftd keeps
 * (weftd-watch.c), on a loop of its own over a file: store: when the
 * store is replaced under it (store.log removed and a new store made in
 * DIR), the shared handle is reopened and the half resyncs from the new
 * store, instead of retrying a watch on a handle that refuses every
 * operation. No privileges, no namespaces. */
#include "felix/weftd.h"
#include "lib/json.h"
#include "lib/loop.h"
#include "lib/test.h"

#include <sys/stat.h>

static char g_dir[] = "/tmp/weft-test-weftd-watch-XXXXXX";

struct half {
	struct weftd *d;
	int events, resets;
	char last_key[128];
	char relisted[256]; /* the keys the last resync read, joined by ' ' */
};

static void on_event(const struct weft_event *ev, void *userdata)
{
	struct half *h = userdata;

	h->events++;
	snprintf(h->last_key, sizeof(h->last_key), "%s", ev->kv.key);
}

/* What a half does after a dead watch: read everything again. */
static void on_reset(void *userdata)
{
	struct half *h = userdata;
	struct weft_kv_list l = {0};

	h->resets++;
	h->relisted[0] = 0;
	if (weft_store_list(h->d->store, "/weft/v1/", &l) < 0) {
		snprintf(h->relisted, sizeof(h->relisted), "list failed: %s", weft_store_errmsg(h->d->store));
		return;
	}
	for (size_t i = 0; i < l.n; i++) {
		size_t n = strlen(h->relisted);
		snprintf(h->relisted + n, sizeof(h->relisted) - n, "%s%s", n ? " " : "", l.items[i].key);
	}
	weft_kv_list_clear(&l);
}

/* Run the loop until cond holds or timeout_ms passes. */
#define RUN_UNTIL(loop, cond, timeout_ms)                                                                   \
	do {                                                                                                \
		int64_t until_ = weft_now_ms() + (timeout_ms);                                               \
		while (!(cond) && weft_now_ms() < until_)                                                    \
			(void)weft_loop_run_once((loop), 50);                                                \
	} while (0)

static void put(struct weft_store *s, const char *key)
{
	int r = weft_store_put(s, key, "v", 1, NULL);
	if (r < 0)
		fprintf(stderr, "put %s: %s\n", key, weft_store_errmsg(s));
	CHECK_EQ_INT(r, 0);
}

static void test_store_replaced(void)
{
	_cleanup_free_ char *url = wasprintf("file:%s/store", g_dir), *log = wasprintf("%s/store/store.log", g_dir);
	struct weftd d = {.node = "node-1", .store_url = url};
	struct half h = {.d = &d};
	struct weft_loop *loop = NULL;
	struct weftd_watch *w = NULL, *w2 = NULL;
	struct half h2 = {.d = &d};
	struct weft_store *other = NULL;
	int64_t rev = -1;

	CHECK_EQ_INT(weft_store_open(url, &d.store, NULL), 0);
	CHECK_EQ_INT(weft_loop_new(&loop), 0);
	if (!d.store || !loop)
		return;
	/* Two halves, as weftd has (BGP, fabric, ACLs), one handle. */
	CHECK_EQ_INT(weftd_watch_open(&d, loop, "test", on_event, on_reset, &h, &w), 0);
	CHECK_EQ_INT(weftd_watch_open(&d, loop, "test2", on_event, on_reset, &h2, &w2), 0);
	CHECK_EQ_INT(weft_store_open(url, &other, NULL), 0);
	if (!w || !w2 || !other)
		return;
	for (int i = 0; i < 5; i++)
		put(other, "/weft/v1/old");
	RUN_UNTIL(loop, h.events == 5 && h2.events == 5, 3000);
	CHECK_EQ_INT(h.events, 5);
	CHECK_EQ_INT(h.resets, 0);

	/* The store is reset: a new one is made in DIR, with fewer revisions. */
	CHECK_EQ_INT(unlink(log), 0);
	weft_store_close(other);
	other = NULL;
	CHECK_EQ_INT(weft_store_open(url, &other, NULL), 0);
	if (!other)
		return;
	put(other, "/weft/v1/new");

	/* Both halves resync from the new store, once each. */
	RUN_UNTIL(loop, h.resets && h2.resets, 5000);
	CHECK_EQ_INT(h.resets, 1);
	CHECK_EQ_INT(h2.resets, 1);
	CHECK_STREQ(h.relisted, "/weft/v1/new");
	CHECK_STREQ(h2.relisted, "/weft/v1/new");
	CHECK(!weft_store_replaced(d.store));
	CHECK_EQ_INT(weft_store_revision(d.store, &rev), 0);
	CHECK_EQ_INT(rev, 1);
	CHECK_EQ_INT(h.events, 5); /* nothing of the new store as events of the old */

	/* And then they follow the new store. */
	put(other, "/weft/v1/later");
	RUN_UNTIL(loop, h.events == 6 && h2.events == 6, 3000);
	CHECK_EQ_INT(h.events, 6);
	CHECK_STREQ(h.last_key, "/weft/v1/later");
	CHECK_EQ_INT(h2.events, 6);
	/* Writes through weftd's handle land in the new store. */
	put(d.store, "/weft/v1/from-weftd");
	{
		struct weft_kv kv = {0};
		CHECK_EQ_INT(weft_store_get(other, "/weft/v1/from-weftd", &kv), 0);
		weft_kv_clear(&kv);
	}
	CHECK_EQ_INT(h.resets, 1);

	weftd_watch_close(w);
	weftd_watch_close(w2);
	weft_store_close(other);
	weft_loop_free(loop);
	weft_store_close(d.store);
}

/* Without any watch (a weftd with --no-bgp --acl none), the helper the
 * reconcile timer calls reopens a replaced handle. */
static void test_reopen_if_replaced(void)
{
	_cleanup_free_ char *url = wasprintf("file:%s/store2", g_dir), *log = wasprintf("%s/store2/store.log", g_dir);
	struct weftd d = {.node = "node-1", .store_url = url};
	struct weft_store *other = NULL;
	int64_t rev = -1;

	CHECK_EQ_INT(weft_store_open(url, &d.store, NULL), 0);
	if (!d.store)
		return;
	put(d.store, "/weft/v1/a");
	put(d.store, "/weft/v1/b");
	CHECK_EQ_INT(weftd_store_reopen_if_replaced(&d), 0);
	CHECK_EQ_INT(unlink(log), 0);
	CHECK_EQ_INT(weft_store_open(url, &other, NULL), 0);
	CHECK_EQ_INT(weft_store_revision(d.store, &rev), -ESTALE);
	CHECK(weft_store_replaced(d.store));
	CHECK_EQ_INT(weftd_store_reopen_if_replaced(&d), 1);
	CHECK_EQ_INT(weft_store_revision(d.store, &rev), 0);
	CHECK_EQ_INT(rev, 0);
	CHECK_EQ_INT(weftd_store_reopen_if_replaced(&d), 0);
	weft_store_close(other);
	weft_store_close(d.store);
}

/* A weftd that registered its Node at start-up registers it in the new
 * store too: with its address, AS number and cluster id, and nothing
 * else of it is touched. One without (--no-bgp) writes no Node. */
static void test_reopen_registers_node(void)
{
	_cleanup_free_ char *url = wasprintf("file:%s/store3", g_dir), *log = wasprintf("%s/store3/store.log", g_dir);
	struct weftd d = {.node = "node-1", .store_url = url};
	struct weft_store *other = NULL;
	struct weft_kv kv = {0};
	int64_t rev = -1;

	CHECK_EQ_INT(weft_store_open(url, &d.store, NULL), 0);
	if (!d.store)
		return;
	CHECK_EQ_INT(weft_cidr_parse("198.18.0.11/24", false, &d.underlay), 0);
	d.have_underlay = true;

	/* --no-bgp: nothing registered, nothing written on a reopen. */
	put(d.store, "/weft/v1/a");
	CHECK_EQ_INT(unlink(log), 0);
	CHECK_EQ_INT(weft_store_open(url, &other, NULL), 0);
	CHECK_EQ_INT(weft_store_revision(d.store, &rev), -ESTALE); /* what finds it replaced */
	CHECK_EQ_INT(weftd_store_reopen_if_replaced(&d), 1);
	CHECK_EQ_INT(weft_store_get(d.store, "/weft/v1/nodes/node-1", &kv), -ENOENT);
	weft_store_close(other);
	other = NULL;

	d.node_registered = true;
	d.reg_as_number = 64600;
	d.reg_rr_cluster_id = "10.0.0.1";
	CHECK_EQ_INT(weftd_bgp_register_node(&d, &d.underlay, d.reg_as_number, d.reg_rr_cluster_id), 0);
	CHECK_EQ_INT(weft_store_get(d.store, "/weft/v1/nodes/node-1", &kv), 0);
	weft_kv_clear(&kv);
	CHECK_EQ_INT(unlink(log), 0);
	CHECK_EQ_INT(weft_store_open(url, &other, NULL), 0);
	/* The new store has the Node already, as an operator applied it:
	 * its labels stay. */
	{
		static const char node[] = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"node-1\",\"labels\":{\"rack\":\"r1\"}},\"spec\":{}}";
		int64_t r2 = 0;
		CHECK_EQ_INT(weft_store_put(other, "/weft/v1/nodes/node-1", node, sizeof(node) - 1, &r2), 0);
	}
	CHECK_EQ_INT(weft_store_revision(d.store, &rev), -ESTALE);
	CHECK_EQ_INT(weftd_store_reopen_if_replaced(&d), 1);
	/* Written through the reopened handle, seen by another. */
	CHECK_EQ_INT(weft_store_get(other, "/weft/v1/nodes/node-1", &kv), 0);
	if (kv.value) {
		_cleanup_json_ cJSON *doc = NULL;
		CHECK_EQ_INT(weft_json_parse(kv.value, kv.value_len, &doc), 0);
		const cJSON *spec = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "spec"), "bgp");
		const cJSON *labels = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "metadata"), "labels");
		const cJSON *rack = cJSON_GetObjectItemCaseSensitive(labels, "rack");
		const cJSON *ip = cJSON_GetObjectItemCaseSensitive(spec, "ipv4Address");
		const cJSON *as = cJSON_GetObjectItemCaseSensitive(spec, "asNumber");
		const cJSON *rr = cJSON_GetObjectItemCaseSensitive(spec, "routeReflectorClusterID");
		CHECK(cJSON_IsString(ip) && streq(ip->valuestring, "198.18.0.11/24"));
		CHECK(cJSON_IsNumber(as) && as->valuedouble == 64600);
		CHECK(cJSON_IsString(rr) && streq(rr->valuestring, "10.0.0.1"));
		CHECK(cJSON_IsString(rack) && streq(rack->valuestring, "r1"));
	}
	weft_kv_clear(&kv);
	weft_store_close(other);
	weft_store_close(d.store);
}

int main(void)
{
	static const struct test_case cases[] = {TEST(test_store_replaced), TEST(test_reopen_if_replaced),
						   TEST(test_reopen_registers_node)};
	int rc;

	if (!mkdtemp(g_dir))
		abort();
	rc = test_run(cases, ARRAY_SIZE(cases));
	{
		_cleanup_free_ char *cmd = wasprintf("rm -rf '%s'", g_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", g_dir);
	}
	return rc;
}
