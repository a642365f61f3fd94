/* test-cni-result.c - the result's shape in every cniVersion, parsing a
 * result back (prevResult), error objects and the VERSION answer. */
#include "cni/cni.h"
#include "lib/test.h"

/* The routed endpoint's result: host veth, pod interface, a /32 with the
 * link-local gateway, a default route. */
static struct weft_cni_result *routed_result(enum weft_cni_version v)
{
	struct weft_cni_result *r = weft_cni_result_new(v);
	struct weft_cni_route rt = WEFT_CNI_ROUTE_INIT;
	struct weft_cidr a;
	struct weft_ip gw;
	int pod;

	weft_cni_result_add_interface(r, "weft4f2a91c07d3", "ee:ee:ee:ee:ee:ee", NULL);
	pod = weft_cni_result_add_interface(r, "eth0", "0a:58:0a:41:00:07", "/var/run/netns/cni-1");
	weft_cidr_parse("10.65.0.7/32", false, &a);
	weft_ip_parse("169.254.1.1", &gw);
	CHECK_EQ_INT(weft_cni_result_add_ip(r, &a, &gw, pod), 0);
	weft_cidr_parse("0.0.0.0/0", true, &rt.dst);
	rt.has_gw = true;
	rt.gw = gw;
	CHECK_EQ_INT(weft_cni_result_add_route(r, &rt), 0);
	return r;
}

#define IFACES                                                                                                \
	"\"interfaces\":[{\"name\":\"weft4f2a91c07d3\",\"mac\":\"ee:ee:ee:ee:ee:ee\"},{\"name\":\"eth0\","     \
	"\"mac\":\"0a:58:0a:41:00:07\",\"sandbox\":\"/var/run/netns/cni-1\"}]"

static void test_shapes(void)
{
	static const struct {
		enum weft_cni_version v;
		const char *json;
	} cases[] = {
		{WEFT_CNI_V1_1_0,
		 "{\"cniVersion\":\"1.1.0\"," IFACES ",\"ips\":[{\"address\":\"10.65.0.7/32\",\"gateway\":\"169.254.1.1\","
		 "\"interface\":1}],\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"169.254.1.1\"}],\"dns\":{}}"},
		{WEFT_CNI_V1_0_0,
		 "{\"cniVersion\":\"1.0.0\"," IFACES ",\"ips\":[{\"address\":\"10.65.0.7/32\",\"gateway\":\"169.254.1.1\","
		 "\"interface\":1}],\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"169.254.1.1\"}],\"dns\":{}}"},
		{WEFT_CNI_V0_4_0,
		 "{\"cniVersion\":\"0.4.0\"," IFACES ",\"ips\":[{\"version\":\"4\",\"address\":\"10.65.0.7/32\","
		 "\"gateway\":\"169.254.1.1\",\"interface\":1}],\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"169.254.1.1\"}],"
		 "\"dns\":{}}"},
		{WEFT_CNI_V0_3_1,
		 "{\"cniVersion\":\"0.3.1\"," IFACES ",\"ips\":[{\"version\":\"4\",\"address\":\"10.65.0.7/32\","
		 "\"gateway\":\"169.254.1.1\",\"interface\":1}],\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"169.254.1.1\"}],"
		 "\"dns\":{}}"},
		{WEFT_CNI_V0_3_0,
		 "{\"cniVersion\":\"0.3.0\"," IFACES ",\"ips\":[{\"version\":\"4\",\"address\":\"10.65.0.7/32\","
		 "\"gateway\":\"169.254.1.1\",\"interface\":1}],\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"169.254.1.1\"}],"
		 "\"dns\":{}}"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct weft_cni_result *r = routed_result(cases[i].v);
		_cleanup_free_ char *j = weft_cni_result_json(r, 0);
		_cleanup_free_ char *again = NULL;
		struct weft_cni_result *back = NULL;
		struct weft_cni_error err = {0};

		CHECK_STREQ(j, cases[i].json);
		/* Parse it back as a prevResult would be, and write it again. */
		CHECK_EQ_INT(weft_cni_result_parse(j, strlen(j), cases[i].v, &back, &err), 0);
		if (back) {
			again = weft_cni_result_json(back, cases[i].v);
			CHECK_STREQ(again, cases[i].json);
		}
		weft_cni_result_free(back);
		weft_cni_result_free(r);
	}
}

static void test_version_conversion_and_extras(void)
{
	struct weft_cni_result *r = weft_cni_result_new(WEFT_CNI_V1_1_0);
	struct weft_cni_route rt = WEFT_CNI_ROUTE_INIT;
	struct weft_cidr a6, a4;
	struct weft_ip gw6;
	char *j;

	/* An IPAM-style result: no interfaces, no interface index. */
	weft_cidr_parse("fd00:65::7/128", false, &a6);
	weft_cidr_parse("192.168.91.100/24", false, &a4);
	weft_ip_parse("fd00:65::1", &gw6);
	CHECK_EQ_INT(weft_cni_result_add_ip(r, &a6, &gw6, -1), 0);
	CHECK_EQ_INT(weft_cni_result_add_ip(r, &a4, NULL, -1), 1);
	CHECK_EQ_INT(weft_cni_result_add_ip(r, &a4, &gw6, -1), -EINVAL); /* family mismatch */
	CHECK_EQ_INT(weft_cni_result_add_ip(r, &a4, NULL, 0), -EINVAL);  /* no interface 0 */
	weft_cidr_parse("10.10.0.0/16", true, &rt.dst);
	rt.mtu = 1400;
	rt.table = 100;
	rt.scope = 253;
	CHECK_EQ_INT(weft_cni_result_add_route(r, &rt), 0);
	rt.has_gw = true;
	rt.gw = gw6;
	CHECK_EQ_INT(weft_cni_result_add_route(r, &rt), -EINVAL);
	r->dns.domain = wstrdup("example.org");

	j = weft_cni_result_json(r, 0);
	CHECK_STREQ(j, "{\"cniVersion\":\"1.1.0\",\"ips\":[{\"address\":\"fd00:65::7/128\",\"gateway\":\"fd00:65::1\"},"
		       "{\"address\":\"192.168.91.100/24\"}],\"routes\":[{\"dst\":\"10.10.0.0/16\",\"mtu\":1400,"
		       "\"table\":100,\"scope\":253}],\"dns\":{\"domain\":\"example.org\"}}");
	free(j);
	/* 1.1.0's route extras are not written for older versions; 0.x gets
	 * "version" per address. */
	j = weft_cni_result_json(r, WEFT_CNI_V0_4_0);
	CHECK_STREQ(j, "{\"cniVersion\":\"0.4.0\",\"ips\":[{\"version\":\"6\",\"address\":\"fd00:65::7/128\","
		       "\"gateway\":\"fd00:65::1\"},{\"version\":\"4\",\"address\":\"192.168.91.100/24\"}],"
		       "\"routes\":[{\"dst\":\"10.10.0.0/16\"}],\"dns\":{\"domain\":\"example.org\"}}");
	free(j);
	j = weft_cni_result_json(r, WEFT_CNI_V1_0_0);
	CHECK_STREQ(j, "{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"fd00:65::7/128\",\"gateway\":\"fd00:65::1\"},"
		       "{\"address\":\"192.168.91.100/24\"}],\"routes\":[{\"dst\":\"10.10.0.0/16\"}],"
		       "\"dns\":{\"domain\":\"example.org\"}}");
	free(j);
	CHECK(weft_cni_result_json(r, (enum weft_cni_version)99) == NULL);
	weft_cni_result_free(r);

	/* An empty result still has dns. */
	r = weft_cni_result_new(0);
	j = weft_cni_result_json(r, 0);
	CHECK_STREQ(j, "{\"cniVersion\":\"1.1.0\",\"dns\":{}}");
	free(j);
	weft_cni_result_free(r);
	weft_cni_result_free(NULL);
}

static void test_parse_1_1(void)
{
	static const char text[] =
		"{\"cniVersion\":\"1.1.0\",\"interfaces\":[{\"name\":\"net1\",\"mac\":\"aa:bb:cc:dd:ee:ff\",\"mtu\":9000,"
		"\"sandbox\":\"/proc/1/ns/net\",\"socketPath\":\"/run/vhost.sock\",\"pciID\":\"0000:03:00.1\"}],"
		"\"ips\":[{\"address\":\"192.168.91.100/24\",\"gateway\":\"192.168.91.1\",\"interface\":0}],"
		"\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"192.168.91.1\",\"priority\":10,\"advmss\":1400}],"
		"\"dns\":{\"nameservers\":[\"192.168.91.1\"],\"search\":[\"lan\"],\"futureKey\":1},\"futureTop\":[1]}";
	struct weft_cni_result *r = NULL;
	struct weft_cni_error err = {0};
	char *j;

	CHECK_EQ_INT(weft_cni_result_parse(text, strlen(text), WEFT_CNI_V1_1_0, &r, &err), 0);
	if (!r)
		return;
	CHECK_EQ_INT(r->interfaces[0].mtu, 9000);
	CHECK_STREQ(r->interfaces[0].pci_id, "0000:03:00.1");
	CHECK_EQ_INT(r->routes[0].priority, 10);
	CHECK_EQ_INT(r->routes[0].advmss, 1400);
	CHECK_EQ_INT(r->routes[0].mtu, -1);
	j = weft_cni_result_json(r, 0);
	CHECK_STREQ(j, "{\"cniVersion\":\"1.1.0\",\"interfaces\":[{\"name\":\"net1\",\"mac\":\"aa:bb:cc:dd:ee:ff\","
		       "\"mtu\":9000,\"sandbox\":\"/proc/1/ns/net\",\"socketPath\":\"/run/vhost.sock\",\"pciID\":\"0000:03:00.1\"}],"
		       "\"ips\":[{\"address\":\"192.168.91.100/24\",\"gateway\":\"192.168.91.1\",\"interface\":0}],"
		       "\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"192.168.91.1\",\"advmss\":1400,\"priority\":10}],"
		       "\"dns\":{\"nameservers\":[\"192.168.91.1\"],\"search\":[\"lan\"]}}");
	free(j);
	weft_cni_result_free(r);

	/* 0.3.0's "ip" spelling. */
	r = NULL;
	{
		static const char t[] = "{\"ip\":[{\"version\":\"4\",\"address\":\"10.0.0.2/24\"}]}";
		CHECK_EQ_INT(weft_cni_result_parse(t, strlen(t), WEFT_CNI_V0_3_0, &r, &err), 0);
	}
	CHECK(r && r->n_ips == 1);
	weft_cni_result_free(r);
}

static void test_parse_errors(void)
{
	static const struct {
		const char *text;
		int code;
		const char *msg;
	} cases[] = {
		/* cJSON points at the last byte when the input ends early. */
		{"{", 6, "the result is not valid JSON: error at line 1, column 1 (byte 0)"},
		{"{\"a\" 1}", 6, "the result is not valid JSON: error at line 1, column 6 (byte 5)"},
		{"{\"interfaces\":[{\"name\":\"eth0\\u0000\"}]}", 6,
		 "the result at line 1, column 29 (byte 28): interfaces[0].name: NUL characters (\\u0000) are not supported"},
		{"3", 7, "result: expected an object, got a number 3"},
		{"{\"interfaces\":{}}", 7, "result.interfaces: expected a list, got an object"},
		{"{\"interfaces\":[1]}", 7, "result.interfaces[0]: expected an object, got a number 1"},
		{"{\"interfaces\":[{\"name\":\"a\",\"mtu\":-1}]}", 7,
		 "result.interfaces[0].mtu: -1 is out of range (0..65535)"},
		{"{\"ips\":[{\"address\":\"10.0.0.2/24\",\"interface\":-1}]}", 7,
		 "result.ips[0].interface: -1 is out of range (0..2147483647)"},
		{"{\"ips\":[{\"address\":\"10.0.0.2/24\",\"gateway\":\"fd00::1\"}]}", 7,
		 "result.ips[0].gateway: \"fd00::1\" is not of the address's family"},
		{"{\"ips\":[{\"version\":\"5\",\"address\":\"10.0.0.2/24\"}]}", 7, "result.ips[0].version: \"5\" is not \"4\" or \"6\""},
		{"{\"ips\":[{}]}", 7, "result.ips[0].address: is required"},
		{"{\"routes\":[{\"dst\":\"10.0.0.0/8\",\"table\":\"main\"}]}", 7,
		 "result.routes[0].table: expected an integer, got a string \"main\""},
		{"{\"dns\":[]}", 7, "result.dns: expected an object, got a list []"},
		{"{\"cniVersion\":\"one\"}", 7, "result.cniVersion: \"one\" is not a version"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct weft_cni_result *r = NULL;
		struct weft_cni_error err = {0};

		CHECK(weft_cni_result_parse(cases[i].text, strlen(cases[i].text), WEFT_CNI_V0_4_0, &r, &err) < 0);
		CHECK(r == NULL);
		CHECK_EQ_INT(err.code, cases[i].code);
		CHECK_STREQ(err.msg, cases[i].msg);
		weft_cni_error_clear(&err);
	}
}

static void test_error_json(void)
{
	struct weft_cni_error err = {0};
	char *j;

	weft_cni_error_set(&err, WEFT_CNI_ERR_TRY_AGAIN_LATER, NULL, "weftd is busy (%d requests queued)", 17);
	j = weft_cni_error_json(&err, WEFT_CNI_V1_0_0);
	CHECK_STREQ(j, "{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"weftd is busy (17 requests queued)\"}");
	free(j);
	weft_cni_error_set(&err, WEFT_CNI_ERR_EXHAUSTED, "range 192.168.91.100-192.168.91.110/24 has 11 of 11 in use",
			   "ipam: no free address in range\n(lan)");
	j = weft_cni_error_json(&err, WEFT_CNI_V0_3_1);
	CHECK_STREQ(j, "{\"cniVersion\":\"0.3.1\",\"code\":101,\"msg\":\"ipam: no free address in range (lan)\","
		       "\"details\":\"range 192.168.91.100-192.168.91.110/24 has 11 of 11 in use\"}");
	free(j);
	weft_cni_error_clear(&err);
	/* No error recorded: still a valid error object. */
	j = weft_cni_error_json(&err, 0);
	CHECK_STREQ(j, "{\"cniVersion\":\"1.1.0\",\"code\":100,\"msg\":\"unknown error\"}");
	free(j);
	j = weft_cni_error_json(NULL, 0);
	CHECK(j != NULL);
	free(j);
}

static void test_version_json(void)
{
	_cleanup_free_ char *j = weft_cni_version_json();
	enum weft_cni_version v = 0;

	CHECK_STREQ(j, "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}");
	CHECK_EQ_INT(weft_cni_version_parse("0.4.0", &v), 0);
	CHECK_EQ_INT(v, WEFT_CNI_V0_4_0);
	CHECK_EQ_INT(weft_cni_version_parse("0.2.0", &v), -ENOTSUP);
	CHECK_EQ_INT(weft_cni_version_parse("10", &v), -ENOTSUP);
	CHECK_EQ_INT(weft_cni_version_parse("1.0.0.0", &v), -EINVAL);
	CHECK_EQ_INT(weft_cni_version_parse("1..0", &v), -EINVAL);
	CHECK_EQ_INT(weft_cni_version_parse("v1.0.0", &v), -EINVAL);
	CHECK_EQ_INT(weft_cni_version_parse("", &v), -EINVAL);
	CHECK_EQ_INT(v, WEFT_CNI_V0_4_0);
	CHECK_STREQ(weft_cni_version_str(0), "1.1.0");
}

TEST_MAIN(TEST(test_shapes), TEST(test_version_conversion_and_extras), TEST(test_parse_1_1), TEST(test_parse_errors),
	  TEST(test_error_json), TEST(test_version_json))
