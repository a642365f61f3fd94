/* test-ipam-records.c - the IPAM record codecs: round trips, keys, and
 * every kind of corrupt record rejected with a message naming the key and
 * the field. No store needed. */
#include "ipam/ipam-records.h"
#include "lib/json.h"
#include "lib/test.h"

#define BKEY "/weft/v1/ipam/blocks/10.65.0.64-26"

static void expect_bad_block(const char *json, const char *want)
{
	struct ipam_rec r = {.n = 77};
	char *err = NULL;

	CHECK_EQ_INT(ipam_rec_decode(IPAM_REC_BLOCK, BKEY, json, strlen(json), &r, &err), -EBADMSG);
	CHECK_EQ_INT(r.n, 77);
	CHECK(err && strstr(err, want) != NULL);
	if (err && !strstr(err, want))
		fprintf(stderr, "  got: %s\n  want: %s\n", err, want);
	free(err);
}

static void test_block_roundtrip(void)
{
	struct ipam_rec r = {.type = IPAM_REC_BLOCK}, d = {0};
	struct weft_ipam_attrs at = {.namespace = "ns", .pod = "p", .node = "n1", .container_id = "c", .ifname = "eth0",
				     .plugin = "weft-ipam"};
	struct weft_ip a, b;
	char *err = NULL;

	CHECK_EQ_INT(weft_cidr_parse("10.65.0.64/26", true, &r.cidr), 0);
	r.affinity = wstrdup("n1");
	CHECK_EQ_INT(weft_ip_parse("10.65.0.70", &a), 0);
	CHECK_EQ_INT(weft_ip_parse("10.65.0.65", &b), 0);
	CHECK_EQ_INT(ipam_rec_add(&r, &a, "c:eth0", &at), 0);
	CHECK_EQ_INT(ipam_rec_add(&r, &b, "d:eth0", NULL), 0);
	CHECK_EQ_INT(ipam_rec_add(&r, &b, "d:eth0", NULL), -EEXIST);
	_cleanup_free_ char *json = ipam_rec_encode(&r);
	CHECK_STREQ(json, "{\"cidr\":\"10.65.0.64/26\",\"affinity\":\"n1\",\"allocations\":["
			  "{\"ip\":\"10.65.0.65\",\"handle\":\"d:eth0\"},"
			  "{\"ip\":\"10.65.0.70\",\"handle\":\"c:eth0\",\"attrs\":{\"namespace\":\"ns\",\"pod\":\"p\","
			  "\"node\":\"n1\",\"containerId\":\"c\",\"ifname\":\"eth0\",\"plugin\":\"weft-ipam\"}}]}");
	CHECK_EQ_INT(ipam_rec_decode(IPAM_REC_BLOCK, BKEY, json, strlen(json), &d, &err), 0);
	CHECK_EQ_INT(d.n, 2);
	CHECK_STREQ(d.affinity, "n1");
	if (d.n == 2) {
		CHECK_STREQ(d.allocs[1].attrs.container_id, "c");
		CHECK_STREQ(d.allocs[1].attrs.plugin, "weft-ipam");
		CHECK(d.allocs[0].attrs.pod == NULL);
	}
	CHECK_EQ_INT(ipam_rec_find(&d, &a), 1);
	ipam_rec_remove_at(&d, 0);
	CHECK_EQ_INT(ipam_rec_find(&d, &a), 0);
	ipam_rec_clear(&d);
	ipam_rec_clear(&r);
	free(err);
}

static void test_block_corrupt(void)
{
	expect_bad_block("", BKEY ": not valid JSON");
	expect_bad_block("[1]", BKEY ": not a JSON object");
	expect_bad_block("{}", BKEY ": cidr: missing");
	expect_bad_block("{\"cidr\":5}", "cidr: not a string");
	expect_bad_block("{\"cidr\":\"10.65.0.65/26\"}", "cidr: \"10.65.0.65/26\" is not a CIDR");
	expect_bad_block("{\"cidr\":\"10.65.0.0/26\"}", "cidr: does not match the key");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"affinity\":3}", "affinity: not a string or null");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"affinity\":\"a/b\"}", "affinity: not a valid node name");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"allocations\":{}}", "allocations: not an array");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"allocations\":[1]}", "allocations[0]: not an object");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"allocations\":[{\"handle\":\"h\"}]}", "allocations[0].ip: missing");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"allocations\":[{\"ip\":\"x\",\"handle\":\"h\"}]}",
			 "allocations[0].ip: \"x\" is not an address");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"allocations\":[{\"ip\":\"10.65.0.1\",\"handle\":\"h\"}]}",
			 "allocations[0].ip: \"10.65.0.1\" is outside 10.65.0.64/26");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"allocations\":[{\"ip\":\"10.65.0.66\",\"handle\":\"h\"},"
			 "{\"ip\":\"10.65.0.66\",\"handle\":\"h\"}]}",
			 "allocations[1].ip: \"10.65.0.66\" is not in increasing order");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"allocations\":[{\"ip\":\"10.65.0.66\"}]}",
			 "allocations[0].handle: missing");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"allocations\":[{\"ip\":\"10.65.0.66\",\"handle\":\"\"}]}",
			 "allocations[0].handle: not a valid handle");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"allocations\":[{\"ip\":\"10.65.0.66\",\"handle\":\"h\",\"attrs\":[]}]}",
			 "allocations[0].attrs: not an object");
	expect_bad_block("{\"cidr\":\"10.65.0.64/26\",\"allocations\":[{\"ip\":\"10.65.0.66\",\"handle\":\"h\",\"attrs\":{\"pod\":1}}]}",
			 "allocations[0].attrs.pod: not a string");

	/* A block bigger than 4096 addresses is not one of ours. */
	struct ipam_rec r = {0};
	char *err = NULL;
	const char *big = "{\"cidr\":\"10.0.0.0/16\"}";
	CHECK_EQ_INT(ipam_rec_decode(IPAM_REC_BLOCK, NULL, big, strlen(big), &r, &err), -EBADMSG);
	CHECK(err && strstr(err, "larger than 4096"));
	free(err);
}

static void test_range_and_handle(void)
{
	const char *rkey = "/weft/v1/ipam/ranges/net1/192.168.1.0-24";
	const char *rj = "{\"network\":\"net1\",\"cidr\":\"192.168.1.0/24\",\"allocations\":[{\"ip\":\"192.168.1.5\",\"handle\":\"h:net1\"}]}";
	const char *hkey = "/weft/v1/ipam/handles/h:net1";
	struct ipam_rec r = {0};
	struct ipam_handle_rec h = {0};
	char *err = NULL;

	CHECK_EQ_INT(ipam_rec_decode(IPAM_REC_RANGE, rkey, rj, strlen(rj), &r, &err), 0);
	CHECK_STREQ(r.network, "net1");
	_cleanup_free_ char *again = ipam_rec_encode(&r);
	CHECK_STREQ(again, rj);
	ipam_rec_clear(&r);
	CHECK_EQ_INT(ipam_rec_decode(IPAM_REC_RANGE, "/weft/v1/ipam/ranges/other/192.168.1.0-24", rj, strlen(rj), &r, &err),
		     -EBADMSG);
	CHECK(err && strstr(err, "does not match the key"));
	free(err);
	err = NULL;

	struct weft_ip ip;
	CHECK_EQ_INT(weft_ip_parse("192.168.1.5", &ip), 0);
	h.handle = wstrdup("h:net1");
	ipam_handle_add(&h, &ip, rkey);
	_cleanup_free_ char *hj = ipam_handle_encode(&h);
	CHECK_STREQ(hj, "{\"handle\":\"h:net1\",\"allocations\":[{\"ip\":\"192.168.1.5\",\"key\":"
			"\"/weft/v1/ipam/ranges/net1/192.168.1.0-24\"}]}");
	ipam_handle_rec_clear(&h);
	CHECK_EQ_INT(ipam_handle_decode(hkey, hj, strlen(hj), &h, &err), 0);
	CHECK_EQ_INT(h.n, 1);
	CHECK(ipam_handle_remove(&h, &ip, rkey));
	CHECK(!ipam_handle_remove(&h, &ip, rkey));
	ipam_handle_rec_clear(&h);

	static const char *const bad[][2] = {
		{"{\"allocations\":[]}", "handle: missing"},
		{"{\"handle\":\"other\"}", "does not match the key"},
		{"{\"handle\":\"h:net1\",\"allocations\":[{\"ip\":\"1.2.3.4\",\"key\":\"/etc/passwd\"}]}",
		 "allocations[0].key: not a block or range key"},
		{"{\"handle\":\"h:net1\",\"allocations\":[{\"ip\":\"1.2.3.4\",\"key\":\"/weft/v1/ipam/blocks/x\"},"
		 "{\"ip\":\"1.2.3.4\",\"key\":\"/weft/v1/ipam/blocks/x\"}]}",
		 "allocations[1].ip: \"1.2.3.4\" listed twice"},
		{"{\"handle\":\"h:net1\",\"allocations\":[{\"ip\":\"1.2.3\",\"key\":\"/weft/v1/ipam/blocks/x\"}]}",
		 "allocations[0].ip: \"1.2.3\" is not an address"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err = NULL;
		CHECK_EQ_INT(ipam_handle_decode(hkey, bad[i][0], strlen(bad[i][0]), &h, &err), -EBADMSG);
		CHECK(err && strstr(err, bad[i][1]) && startswith(err, hkey));
		free(err);
	}

	char *node = NULL;
	struct weft_cidr c;
	const char *aj = "{\"node\":\"n1\",\"cidr\":\"10.65.0.64/26\"}";
	CHECK_EQ_INT(ipam_affinity_decode("/weft/v1/ipam/affinities/n1/10.65.0.64-26", aj, strlen(aj), &node, &c, NULL), 0);
	CHECK_STREQ(node, "n1");
	free(node);
	err = NULL;
	CHECK_EQ_INT(ipam_affinity_decode("/weft/v1/ipam/affinities/n2/10.65.0.64-26", aj, strlen(aj), &node, &c, &err),
		     -EBADMSG);
	free(err);
}

static void test_keys_and_offsets(void)
{
	struct weft_cidr c;
	struct weft_ip a, b;
	uint64_t off = 0;

	CHECK_EQ_INT(weft_cidr_parse("fd00::40/122", true, &c), 0);
	_cleanup_free_ char *k = ipam_block_key(&c);
	CHECK_STREQ(k, "/weft/v1/ipam/blocks/fd00::40-122");
	CHECK_EQ_INT(ipam_cidr_size(&c), 64);
	CHECK_EQ_INT(weft_cidr_parse("fd00::/8", true, &c), 0);
	CHECK(ipam_cidr_size(&c) == UINT64_MAX);
	CHECK_EQ_INT(weft_ip_parse("10.0.0.1", &a), 0);
	CHECK_EQ_INT(weft_ip_parse("10.0.1.0", &b), 0);
	CHECK_EQ_INT(ipam_ip_offset(&a, &b, &off), 0);
	CHECK_EQ_INT(off, 255);
	CHECK_EQ_INT(ipam_ip_offset(&b, &a, &off), -ERANGE);
	CHECK(ipam_name_ok("node-1.example"));
	CHECK(!ipam_name_ok("a b"));
	CHECK(!ipam_name_ok(".."));
	CHECK(!ipam_name_ok(""));
}

TEST_MAIN(TEST(test_block_roundtrip), TEST(test_block_corrupt), TEST(test_range_and_handle), TEST(test_keys_and_offsets))
