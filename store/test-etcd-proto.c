/* test-etcd-proto.c - unit tests of the etcd backend's protocol layer: URL
 * parsing, base64, range ends, request bodies and response decoding. */
#include "store/etcd-proto.h"
#include "lib/test.h"

static int parse(const char *url, struct weft_etcd_conf *c)
{
	_cleanup_free_ char *err = NULL;
	const char *colon = strchr(url, ':');
	_cleanup_free_ char *scheme = wstrndup(url, (size_t)(colon - url));
	int r = weft_etcd_conf_parse(scheme, colon + 1, c, &err);
	CHECK((r < 0) == (err != NULL));
	return r;
}

static void test_url(void)
{
	struct weft_etcd_conf c;

	CHECK_EQ_INT(parse("etcd://127.0.0.1:2379", &c), 0);
	CHECK(!c.tls);
	CHECK_EQ_INT(c.n_endpoints, 1);
	CHECK_STREQ(c.endpoints[0], "127.0.0.1:2379");
	CHECK_STREQ(c.prefix, "");
	CHECK_EQ_INT(c.timeout_ms, WEFT_ETCD_TIMEOUT_MS_DEFAULT);
	weft_etcd_conf_clear(&c);

	CHECK_EQ_INT(parse("etcds://a.example:1,[::1]:2,b/?prefix=/weft%2Fx&ca=/c.pem&cert=/d&key=/e&timeout_ms=300",
			   &c), 0);
	CHECK(c.tls);
	CHECK_EQ_INT(c.n_endpoints, 3);
	CHECK_STREQ(c.endpoints[0], "a.example:1");
	CHECK_STREQ(c.endpoints[1], "[::1]:2");
	CHECK_STREQ(c.endpoints[2], "b:2379");
	CHECK_STREQ(c.prefix, "/weft/x");
	CHECK_STREQ(c.ca, "/c.pem");
	CHECK_STREQ(c.cert, "/d");
	CHECK_STREQ(c.key, "/e");
	CHECK_EQ_INT(c.timeout_ms, 300);
	weft_etcd_conf_clear(&c);

	static const char *const bad[] = {
		"etcd:127.0.0.1:2379",	       "etcd://",
		"etcd://h:0",		       "etcd://h:65536",
		"etcd://h:x",		       "etcd://h:1,",
		"etcd://,h:1",		       "etcd://h h:1",
		"etcd://[::1:1",	       "etcd://h:1/path",
		"etcd://h:1?nope=1",	       "etcd://h:1?prefix",
		"etcd://h:1?timeout_ms=0",     "etcd://h:1?timeout_ms=-5",
		"etcd://h:1?timeout_ms=1e3",   "etcd://h:1?ca=/x",
		"etcds://h:1?cert=/x",	       "etcds://h:1?prefix=%zz",
		"etcds://h:1?prefix=%0a",      "etcds://h:1?ca=",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = parse(bad[i], &c);
		if (r != -EINVAL)
			fprintf(stderr, "accepted bad URL %s\n", bad[i]);
		CHECK_EQ_INT(r, -EINVAL);
	}
}

static void test_base64(void)
{
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	char *out;
	size_t n;

	for (size_t i = 0; i < ARRAY_SIZE(plain); i++) {
		_cleanup_free_ char *e = weft_etcd_b64_encode(plain[i], strlen(plain[i]));
		CHECK_STREQ(e, enc[i]);
		CHECK_EQ_INT(weft_etcd_b64_decode(enc[i], strlen(enc[i]), &out, &n), 0);
		CHECK_EQ_INT(n, strlen(plain[i]));
		CHECK_STREQ(out, plain[i]);
		free(out);
	}
	unsigned char bin[256];
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)(255 - i);
	_cleanup_free_ char *e = weft_etcd_b64_encode(bin, sizeof(bin));
	CHECK_EQ_INT(weft_etcd_b64_decode(e, strlen(e), &out, &n), 0);
	CHECK_EQ_INT(n, sizeof(bin));
	CHECK(memcmp(out, bin, n) == 0);
	free(out);

	static const char *const bad[] = {"Z", "Zg=", "Zg=a", "Z===", "=Zg=", "Zh==", "Zm9=", "Zm 9", "Zm9v\n", "Zg==Zg=="};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK_EQ_INT(weft_etcd_b64_decode(bad[i], strlen(bad[i]), &out, &n), -EBADMSG);
}

static void test_prefix_end(void)
{
	size_t n;
	char *e;

	e = weft_etcd_prefix_end("/a", 2, &n);
	CHECK_EQ_INT(n, 2);
	CHECK(memcmp(e, "/b", 2) == 0);
	free(e);
	e = weft_etcd_prefix_end("a\xff\xff", 3, &n);
	CHECK_EQ_INT(n, 1);
	CHECK(e[0] == 'b');
	free(e);
	e = weft_etcd_prefix_end("", 0, &n);
	CHECK_EQ_INT(n, 1);
	CHECK(e[0] == 0);
	free(e);
}

static void test_requests(void)
{
	_cleanup_free_ char *r1 = weft_etcd_req_range_key("/p", "/k");
	CHECK_STREQ(r1, "{\"key\":\"L3Avaw==\"}"); /* "/p/k" */
	_cleanup_free_ char *r2 = weft_etcd_req_range_prefix("", "", false);
	CHECK_STREQ(r2, "{\"key\":\"AA==\",\"range_end\":\"AA==\"}");
	_cleanup_free_ char *r3 = weft_etcd_req_range_prefix("/p", "", true);
	CHECK_STREQ(r3, "{\"key\":\"L3A=\",\"range_end\":\"L3E=\",\"count_only\":true}");
	struct weft_txn_cmp cmp = {"a", 0};
	struct weft_txn_op ops[] = {{WEFT_OP_PUT, "a", "x", 1}, {WEFT_OP_DELETE, "b", NULL, 0}};
	_cleanup_free_ char *t = weft_etcd_req_txn("", &cmp, 1, ops, 2);
	CHECK_STREQ(t, "{\"compare\":[{\"key\":\"YQ==\",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"0\"}],"
		       "\"success\":[{\"request_put\":{\"key\":\"YQ==\",\"value\":\"eA==\"}},"
		       "{\"request_delete_range\":{\"key\":\"Yg==\"}}]}");
	_cleanup_free_ char *w = weft_etcd_req_watch("/p", "/k", 7);
	CHECK_STREQ(w, "{\"create_request\":{\"key\":\"L3Avaw==\",\"range_end\":\"L3AvbA==\",\"start_revision\":\"7\","
		       "\"progress_notify\":true}}");
}

#define S(x) x, strlen(x)

static void test_range(void)
{
	struct weft_kv_list l = {0};
	const char *ok = "{\"header\":{\"cluster_id\":\"1\",\"revision\":\"9\"},\"kvs\":["
			 "{\"key\":\"L3AvYg==\",\"create_revision\":\"3\",\"mod_revision\":\"4\",\"version\":\"2\",\"value\":\"eA==\"},"
			 "{\"key\":\"L3AvYQ==\",\"mod_revision\":\"5\"},"
			 "{\"key\":\"L3A=\",\"mod_revision\":\"2\"}],\"count\":\"3\"}";

	CHECK_EQ_INT(weft_etcd_parse_range(S(ok), "/p", &l), 0);
	CHECK_EQ_INT(l.rev, 9);
	CHECK_EQ_INT(l.n, 2); /* the prefix key itself is skipped */
	CHECK_STREQ(l.items[0].key, "/a");
	CHECK_EQ_INT(l.items[0].value_len, 0);
	CHECK_STREQ(l.items[0].value, "");
	CHECK_STREQ(l.items[1].key, "/b");
	CHECK_STREQ(l.items[1].value, "x");
	CHECK_EQ_INT(l.items[1].create_rev, 3);
	CHECK_EQ_INT(l.items[1].mod_rev, 4);
	CHECK_EQ_INT(l.items[1].version, 2);
	weft_kv_list_clear(&l);

	CHECK_EQ_INT(weft_etcd_parse_range(S("{\"header\":{\"revision\":\"1\"}}"), "", &l), 0);
	CHECK_EQ_INT(l.n, 0);
	CHECK_EQ_INT(l.rev, 1);
	weft_kv_list_clear(&l);

	static const char *const bad[] = {
		"",
		"[]",
		"{",
		"{}",
		"{\"header\":{\"revision\":\"x\"}}",
		"{\"header\":{\"revision\":\"-1\"}}",
		"{\"header\":{\"revision\":\"99999999999999999999\"}}",
		"{\"header\":{\"revision\":1.5}}",
		"{\"header\":{\"revision\":\" 1\"}}",
		"{\"header\":[],\"kvs\":[]}",
		"{\"header\":{\"revision\":\"9\"},\"kvs\":{}}",
		"{\"header\":{\"revision\":\"9\"},\"kvs\":[1]}",
		"{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"!!!!\",\"mod_revision\":\"1\"}]}",
		"{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"YQ==\"}]}",
		"{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"\",\"mod_revision\":\"1\"}]}",
		"{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"YQBi\",\"mod_revision\":\"1\"}]}",
		"{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"10\"}]}",
		"{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"1\",\"value\":5}]}",
		"{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"1\"},{\"key\":\"YQ==\",\"mod_revision\":\"1\"}]}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = weft_etcd_parse_range(S(bad[i]), "", &l);
		if (r != -EBADMSG)
			fprintf(stderr, "accepted bad range response %s\n", bad[i]);
		CHECK_EQ_INT(r, -EBADMSG);
	}
	/* A key outside the prefix. */
	CHECK_EQ_INT(weft_etcd_parse_range(S("{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"1\"}]}"),
					   "/p", &l),
		     -EBADMSG);
}

static void test_txn_status_error(void)
{
	bool ok = true;
	int64_t rev = 0;
	uint64_t leader = 0;
	char ver[16], msg[64];

	CHECK_EQ_INT(weft_etcd_parse_txn(S("{\"header\":{\"revision\":\"4\"}}"), &ok, &rev), 0);
	CHECK(!ok);
	CHECK_EQ_INT(rev, 4);
	CHECK_EQ_INT(weft_etcd_parse_txn(S("{\"header\":{\"revision\":\"5\"},\"succeeded\":true,\"responses\":[]}"), &ok, &rev), 0);
	CHECK(ok);
	CHECK_EQ_INT(rev, 5);
	CHECK_EQ_INT(weft_etcd_parse_txn(S("{\"header\":{\"revision\":\"5\"},\"succeeded\":\"yes\"}"), &ok, &rev), -EBADMSG);

	CHECK_EQ_INT(weft_etcd_parse_status(S("{\"header\":{\"revision\":\"4\"},\"version\":\"3.4.23\",\"leader\":\"13458989633860879742\"}"),
					    &rev, &leader, ver, sizeof(ver)),
		     0);
	CHECK_STREQ(ver, "3.4.23");
	CHECK(leader == 13458989633860879742ULL);
	CHECK_EQ_INT(weft_etcd_parse_status(S("{\"header\":{\"revision\":\"4\"},\"leader\":\"123456789012345678901\"}"), &rev,
					    &leader, ver, sizeof(ver)),
		     -EBADMSG);

	CHECK_EQ_INT(weft_etcd_parse_error(S("{\"error\":\"etcdserver: mvcc: required revision has been compacted\","
					     "\"message\":\"etcdserver: mvcc: required revision has been compacted\",\"code\":11}"),
					   msg, sizeof(msg)),
		     -ESTALE);
	CHECK(startswith(msg, "etcdserver: mvcc"));
	CHECK_EQ_INT(weft_etcd_parse_error(S("{\"error\":\"x\",\"code\":3}"), msg, sizeof(msg)), -EINVAL);
	CHECK_STREQ(msg, "x");
	CHECK_EQ_INT(weft_etcd_parse_error(S("404 page not found"), msg, sizeof(msg)), -EBADMSG);
	CHECK_EQ_INT(weft_etcd_parse_error(S("{}"), msg, sizeof(msg)), -EBADMSG);
}

static void test_watch(void)
{
	struct weft_etcd_watch_msg m;

	CHECK_EQ_INT(weft_etcd_parse_watch(S("{\"result\":{\"header\":{\"revision\":\"4\"},\"created\":true}}"), "", &m), 0);
	CHECK(m.created);
	CHECK_EQ_INT(m.header_rev, 4);
	CHECK_EQ_INT(m.n_events, 0);
	weft_etcd_watch_msg_clear(&m);

	CHECK_EQ_INT(weft_etcd_parse_watch(S("{\"result\":{\"header\":{\"revision\":\"6\"},\"events\":["
					     "{\"kv\":{\"key\":\"L3AvYTI=\",\"create_revision\":\"6\",\"mod_revision\":\"6\",\"version\":\"1\"}},"
					     "{\"type\":\"DELETE\",\"kv\":{\"key\":\"L3AvYTE=\",\"mod_revision\":\"6\"}}]}}"),
					   "/p", &m),
		     0);
	CHECK_EQ_INT(m.n_events, 2);
	CHECK_EQ_INT(m.events[0].type, WEFT_EV_PUT);
	CHECK_STREQ(m.events[0].kv.key, "/a2");
	CHECK_STREQ(m.events[0].kv.value, "");
	CHECK_EQ_INT(m.events[1].type, WEFT_EV_DELETE);
	CHECK_STREQ(m.events[1].kv.key, "/a1");
	CHECK_EQ_INT(m.events[1].kv.mod_rev, 6);
	weft_etcd_watch_msg_clear(&m);

	CHECK_EQ_INT(weft_etcd_parse_watch(S("{\"result\":{\"header\":{},\"canceled\":true,\"compact_revision\":\"3\"}}"), "", &m),
		     0);
	CHECK(m.canceled);
	CHECK_EQ_INT(m.compact_rev, 3);
	weft_etcd_watch_msg_clear(&m);

	CHECK_EQ_INT(weft_etcd_parse_watch(S("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"transport closing\"}}"),
					   "", &m),
		     0);
	CHECK(m.stream_error);
	CHECK_EQ_INT(m.error_errno, -EIO);
	CHECK_STREQ(m.reason, "transport closing");
	weft_etcd_watch_msg_clear(&m);

	static const char *const bad[] = {
		"{}",
		"{\"result\":{},\"error\":{}}",
		"{\"result\":5}",
		"{\"result\":{\"events\":[{\"type\":\"BOOM\",\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"1\"}}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"2\"}},{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"1\"}}]}}",
		"{\"result\":{\"events\":[{}]}}",
		"{\"result\":{\"created\":1}}",
		"{\"result\":{\"cancel_reason\":[]}}",
		"{\"error\":{\"grpc_code\":\"x\"}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = weft_etcd_parse_watch(S(bad[i]), "", &m);
		if (r != -EBADMSG)
			fprintf(stderr, "accepted bad watch message %s\n", bad[i]);
		CHECK_EQ_INT(r, -EBADMSG);
	}
}

TEST_MAIN(TEST(test_url), TEST(test_base64), TEST(test_prefix_end), TEST(test_requests), TEST(test_range),
	  TEST(test_txn_status_error), TEST(test_watch))
