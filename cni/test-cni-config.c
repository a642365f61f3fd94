/* test-cni-config.c - every config key: good values read back, and every
 * error with its exact code and message. */
#include "cni/cni.h"
#include "lib/test.h"

#include <fcntl.h>

static struct weft_cni_config *parse(const char *text, unsigned flags, struct weft_cni_error *err)
{
	struct weft_cni_config *c = NULL;

	if (weft_cni_config_parse(text, strlen(text), flags, &c, err) < 0)
		return NULL;
	return c;
}

static char *ip_s(const struct weft_ip *ip)
{
	static char buf[4][WEFT_IP_STRLEN];
	static int n;
	return (char *)weft_ip_str(ip, buf[n++ % 4], WEFT_IP_STRLEN);
}

static char *cidr_s(const struct weft_cidr *c)
{
	static char buf[4][WEFT_CIDR_STRLEN];
	static int n;
	return (char *)weft_cidr_str(c, buf[n++ % 4], WEFT_CIDR_STRLEN);
}

/* Wrap extra top-level keys into a routed 1.0.0 config. */
#define R(extra) "{\"cniVersion\":\"1.0.0\",\"name\":\"net1\",\"type\":\"weft\"" extra "}"
/* A macvlan config with a range; extra goes into ipam. */
#define M(top, ipam)                                                                                   \
	"{\"cniVersion\":\"1.1.0\",\"name\":\"lan\",\"type\":\"weft\",\"mode\":\"macvlan\",\"master\":\"eth1\"" top \
	",\"ipam\":{\"type\":\"weft-ipam\"" ipam "}}"

static void test_routed_defaults(void)
{
	struct weft_cni_error err = {0};
	struct weft_cni_config *c = parse(R(""), 0, &err);

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_EQ_INT(c->version, WEFT_CNI_V1_0_0);
	CHECK_STREQ(c->name, "net1");
	CHECK_STREQ(c->type, "weft");
	CHECK_STREQ(c->weftd_socket, "/run/weft/weftd.sock");
	CHECK_EQ_INT(c->mode, WEFT_CNI_MODE_ROUTED);
	CHECK_EQ_INT(c->mtu, 0);
	CHECK(!c->ipam.present);
	CHECK_EQ_INT(c->ipam.mode, WEFT_CNI_IPAM_POOL);
	CHECK(c->ipam.assign_ipv4);
	CHECK(c->prev_result == NULL);
	CHECK(!c->disable_check && !c->disable_gc && !c->ip_masq);
	weft_cni_config_free(c);
	weft_cni_config_free(NULL);
}

static void test_routed_full(void)
{
	static const char text[] =
		"{\"cniVersion\":\"1.1.0\",\"name\":\"k8s-pod-network\",\"type\":\"weft\","
		"\"weftd_socket\":\"/var/run/weft/d.sock\",\"mode\":\"routed\",\"mtu\":1440,"
		"\"profiles\":[\"WEB\",\"k8s_ns.default\"],\"ingress_bandwidth\":\"10M\",\"egress_bandwidth\":1000000,"
		"\"labels\":{\"app\":\"web\",\"example.com/tier\":\"front-end\",\"empty\":\"\"},"
		"\"disableCheck\":true,\"disableGC\":false,\"ipMasq\":true,"
		"\"capabilities\":{\"ips\":true,\"bandwidth\":true,\"portMappings\":false},"
		"\"dns\":{\"nameservers\":[\"10.96.0.10\"],\"domain\":\"cluster.local\",\"search\":[\"svc.cluster.local\"],"
		"\"options\":[\"ndots:5\"]},"
		"\"ipam\":{\"type\":\"weft-ipam\",\"ipv4_pools\":[\"default-pool\",\"10.65.0.0/16\"],\"assign_ipv4\":\"true\","
		"\"routes\":[{\"dst\":\"0.0.0.0/0\"},{\"dst\":\"10.0.0.5/8\",\"gw\":\"10.0.0.1\"}]},"
		"\"runtimeConfig\":{\"ips\":[\"10.65.1.7/32\",\"10.65.1.8\"],\"mac\":\"0a:58:0a:41:01:07\","
		"\"bandwidth\":{\"ingressRate\":2000000,\"ingressBurst\":400000,\"egressRate\":3000000},"
		"\"portMappings\":[{\"hostPort\":8080,\"containerPort\":80,\"protocol\":\"TCP\"},"
		"{\"hostPort\":53,\"containerPort\":53,\"protocol\":\"udp\",\"hostIP\":\"192.0.2.1\"}],"
		"\"aliases\":[\"x\"],\"io.kubernetes.cri.pod-annotations\":{\"a\":\"b\"}},"
		"\"args\":{\"cni\":{\"ips\":[\"10.65.2.2\"],\"labels\":[{\"key\":\"a\",\"value\":\"b\"}]},\"other\":1},"
		"\"cni.dev/valid-attachments\":[{\"containerID\":\"c1\",\"ifname\":\"eth0\"}],"
		"\"cni.dev/attachments\":[{\"containerID\":\"c1\",\"ifname\":\"eth0\"}],"
		"\"cni.dev/future-key\":42}";
	struct weft_cni_error err = {0};
	struct weft_cni_config *c = parse(text, 0, &err);
	struct weft_cni_bandwidth bw;
	struct weft_cni_env env = {0};
	struct weft_cidr *ips = NULL;

	if (!c)
		fprintf(stderr, "full: %s\n", err.msg);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_EQ_INT(c->version, WEFT_CNI_V1_1_0);
	CHECK_STREQ(c->weftd_socket, "/var/run/weft/d.sock");
	CHECK_EQ_INT(c->mtu, 1440);
	CHECK_EQ_INT(c->profiles.n, 2);
	CHECK_STREQ(c->profiles.v[1], "k8s_ns.default");
	CHECK(c->ingress_bandwidth == 10000000 && c->egress_bandwidth == 1000000);
	CHECK_EQ_INT(c->n_labels, 3);
	CHECK_STREQ(c->labels[1].key, "example.com/tier");
	CHECK_STREQ(c->labels[1].value, "front-end");
	CHECK(c->disable_check && !c->disable_gc && c->ip_masq);
	CHECK_EQ_INT(c->dns.nameservers.n, 1);
	CHECK_STREQ(c->dns.domain, "cluster.local");
	CHECK_STREQ(c->dns.options.v[0], "ndots:5");
	CHECK(c->ipam.present);
	CHECK_STREQ(c->ipam.type, "weft-ipam");
	CHECK_EQ_INT(c->ipam.mode, WEFT_CNI_IPAM_POOL);
	CHECK_EQ_INT(c->ipam.ipv4_pools.n, 2);
	CHECK_STREQ(c->ipam.ipv4_pools.v[1], "10.65.0.0/16");
	CHECK_EQ_INT(c->ipam.n_routes, 2);
	CHECK(!c->ipam.routes[0].has_gw);
	CHECK_STREQ(cidr_s(&c->ipam.routes[1].dst), "10.0.0.0/8"); /* host bits dropped */
	CHECK_STREQ(ip_s(&c->ipam.routes[1].gw), "10.0.0.1");
	CHECK_EQ_INT(c->n_rt_ips, 2);
	CHECK_STREQ(cidr_s(&c->rt_ips[1]), "10.65.1.8/32");
	CHECK(c->rt_has_mac && c->rt_mac[5] == 0x07);
	CHECK(c->rt_has_bandwidth && c->rt_bandwidth.ingress_burst == 400000);
	CHECK_EQ_INT(c->n_rt_port_mappings, 2);
	CHECK_STREQ(c->rt_port_mappings[0].protocol, "tcp");
	CHECK(c->rt_port_mappings[1].has_host_ip && c->rt_port_mappings[1].host_port == 53);
	CHECK_EQ_INT(c->n_arg_ips, 1);
	CHECK(c->has_valid_attachments && c->n_valid_attachments == 1);
	CHECK_STREQ(c->valid_attachments[0].container_id, "c1");

	/* runtimeConfig wins over CNI_ARGS, which wins over the config. */
	env.ingress_bandwidth = 5000;
	env.egress_bandwidth = 7000;
	weft_cni_effective_bandwidth(c, &env, &bw);
	CHECK(bw.ingress_rate == 2000000 && bw.ingress_burst == 400000);
	CHECK(bw.egress_rate == 3000000 && bw.egress_burst == 0);
	c->rt_has_bandwidth = false;
	weft_cni_effective_bandwidth(c, &env, &bw);
	CHECK(bw.ingress_rate == 5000 && bw.egress_rate == 7000);
	weft_cni_effective_bandwidth(c, NULL, &bw);
	CHECK(bw.ingress_rate == 10000000 && bw.egress_rate == 1000000);

	/* Static IP sources: runtimeConfig, then args, then CNI_ARGS. */
	CHECK_EQ_INT(weft_cni_requested_ips(c, &env, &ips), 2);
	free(ips);
	c->n_rt_ips = 0;
	CHECK_EQ_INT(weft_cni_requested_ips(c, &env, &ips), 1);
	CHECK_STREQ(cidr_s(&ips[0]), "10.65.2.2/32");
	free(ips);
	c->n_arg_ips = 0;
	CHECK_EQ_INT(weft_cni_requested_ips(c, NULL, &ips), 0);
	CHECK(ips == NULL);
	weft_ip_parse("10.65.3.3", &env.ips[0]);
	env.n_ips = 1;
	CHECK_EQ_INT(weft_cni_requested_ips(c, &env, &ips), 1);
	CHECK_STREQ(cidr_s(&ips[0]), "10.65.3.3/32");
	free(ips);
	weft_cni_config_free(c);
}

/* GC: libcni writes a nil list of valid attachments (none left) as null. */
static void test_gc_null_attachments(void)
{
	struct weft_cni_error err = {0};
	struct weft_cni_config *c = parse(R(",\"cni.dev/valid-attachments\":null"), 0, &err);

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK(c->has_valid_attachments);
	CHECK_EQ_INT(c->n_valid_attachments, 0);
	weft_cni_config_free(c);
}

static void test_macvlan_range(void)
{
	struct weft_cni_error err = {0};
	struct weft_cni_config *c;

	c = parse(M(",\"macvlan_mode\":\"vepa\",\"mtu\":9000",
		    ",\"range\":\"192.168.91.100-192.168.91.110/24\",\"exclude\":[\"192.168.91.104\",\"192.168.91.108/31\"],"
		    "\"gateway\":\"192.168.91.1\",\"routes\":[{\"dst\":\"10.10.0.0/16\",\"gw\":\"192.168.91.1\"}]"),
		  0, &err);
	if (!c)
		fprintf(stderr, "macvlan: %s\n", err.msg);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_EQ_INT(c->mode, WEFT_CNI_MODE_MACVLAN);
	CHECK_STREQ(c->master, "eth1");
	CHECK_EQ_INT(c->macvlan_mode, WEFT_CNI_MACVLAN_VEPA);
	CHECK_STREQ(weft_cni_macvlan_mode_str(c->macvlan_mode), "vepa");
	CHECK_EQ_INT(c->mtu, 9000);
	CHECK_EQ_INT(c->ipam.mode, WEFT_CNI_IPAM_RANGE);
	CHECK_STREQ(cidr_s(&c->ipam.subnet), "192.168.91.0/24");
	CHECK_STREQ(ip_s(&c->ipam.first), "192.168.91.100");
	CHECK_STREQ(ip_s(&c->ipam.last), "192.168.91.110");
	CHECK_STREQ(c->ipam.range_text, "192.168.91.100-192.168.91.110/24");
	CHECK_EQ_INT(c->ipam.n_exclude, 2);
	CHECK_STREQ(cidr_s(&c->ipam.exclude[0]), "192.168.91.104/32");
	CHECK_STREQ(cidr_s(&c->ipam.exclude[1]), "192.168.91.108/31");
	CHECK(c->ipam.has_gateway);
	CHECK_STREQ(ip_s(&c->ipam.gateway), "192.168.91.1");
	CHECK_EQ_INT(c->ipam.n_routes, 1);
	weft_cni_config_free(c);

	/* CIDR form: network and broadcast left out; host bits ignored. */
	c = parse(M("", ",\"range\":\"10.5.0.77/24\""), 0, &err);
	CHECK(c != NULL);
	if (c) {
		CHECK_EQ_INT(c->macvlan_mode, WEFT_CNI_MACVLAN_BRIDGE);
		CHECK_STREQ(c->ipam.range_text, "10.5.0.1-10.5.0.254/24");
		weft_cni_config_free(c);
	}
	/* range_start / range_end. */
	c = parse(M("", ",\"range\":\"10.5.0.0/24\",\"range_start\":\"10.5.0.10\",\"range_end\":\"10.5.0.20\""), 0, &err);
	CHECK(c != NULL);
	if (c) {
		CHECK_STREQ(c->ipam.range_text, "10.5.0.10-10.5.0.20/24");
		weft_cni_config_free(c);
	}
	c = parse(M("", ",\"range\":\"10.5.0.0/24\",\"range_end\":\"10.5.0.20\""), 0, &err);
	CHECK(c != NULL);
	if (c) {
		CHECK_STREQ(c->ipam.range_text, "10.5.0.1-10.5.0.20/24");
		weft_cni_config_free(c);
	}
	/* /31 and /32 keep every address; one address ranges are fine. */
	c = parse(M("", ",\"range\":\"10.5.0.0/31\""), 0, &err);
	CHECK(c != NULL);
	if (c) {
		CHECK_STREQ(c->ipam.range_text, "10.5.0.0-10.5.0.1/31");
		weft_cni_config_free(c);
	}
	c = parse(M("", ",\"range\":\"10.5.0.9-10.5.0.9/24\""), 0, &err);
	CHECK(c != NULL);
	weft_cni_config_free(c);
	/* IPv6: the subnet-router anycast address is left out, the last is not. */
	c = parse(M("", ",\"range\":\"fd00:1::/120\""), 0, &err);
	CHECK(c != NULL);
	if (c) {
		CHECK_STREQ(c->ipam.range_text, "fd00:1::1-fd00:1::ff/120");
		weft_cni_config_free(c);
	}
	/* Static addresses. */
	c = parse(M(",\"macvlan_mode\":\"passthru\"", ",\"addresses\":[{\"address\":\"192.168.1.5/24\",\"gateway\":\"192.168.1.1\"},"
		    "{\"address\":\"fd00::5/64\"}]"),
		  0, &err);
	CHECK(c != NULL);
	if (c) {
		CHECK_EQ_INT(c->ipam.mode, WEFT_CNI_IPAM_STATIC);
		CHECK_EQ_INT(c->ipam.n_addresses, 2);
		CHECK_STREQ(cidr_s(&c->ipam.addresses[0].address), "192.168.1.5/24");
		CHECK(c->ipam.addresses[0].has_gateway && !c->ipam.addresses[1].has_gateway);
		weft_cni_config_free(c);
	}
	weft_cni_error_clear(&err);
}

static void test_versions(void)
{
	static const struct {
		const char *text;
		enum weft_cni_version v;
	} cases[] = {
		{"{\"cniVersion\":\"0.3.0\",\"name\":\"n\",\"type\":\"weft\"}", WEFT_CNI_V0_3_0},
		{"{\"cniVersion\":\"0.3.1\",\"name\":\"n\",\"type\":\"weft\"}", WEFT_CNI_V0_3_1},
		{"{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"type\":\"weft\"}", WEFT_CNI_V0_4_0},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"weft\"}", WEFT_CNI_V1_0_0},
		{"{\"cniVersion\":\"1.1.0\",\"name\":\"n\",\"type\":\"weft\"}", WEFT_CNI_V1_1_0},
		/* cniVersions alone: the highest weft supports. */
		{"{\"cniVersions\":[\"0.4.0\",\"1.0.0\",\"9.0.0\"],\"name\":\"n\",\"type\":\"weft\"}", WEFT_CNI_V1_0_0},
		/* Both: cniVersion is the runtime's choice. */
		{"{\"cniVersion\":\"1.0.0\",\"cniVersions\":[\"1.0.0\",\"1.1.0\"],\"name\":\"n\",\"type\":\"weft\"}",
		 WEFT_CNI_V1_0_0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct weft_cni_error err = {0};
		struct weft_cni_config *c = parse(cases[i].text, 0, &err);
		CHECK(c != NULL);
		if (c)
			CHECK_EQ_INT(c->version, cases[i].v);
		weft_cni_config_free(c);
		weft_cni_error_clear(&err);
	}
}

static void test_multus_delegate(void)
{
	/* What Multus hands a delegate: the NetworkAttachmentDefinition's
	 * spec.config, plus the runtimeConfig and args it builds from the
	 * pod's network-selection annotation and a device id. */
	static const char text[] =
		"{\"cniVersion\":\"0.3.1\",\"name\":\"macvlan-conf\",\"type\":\"weft\",\"mode\":\"macvlan\","
		"\"master\":\"eth1\",\"ipam\":{\"type\":\"weft-ipam\",\"range\":\"192.168.91.0/24\"},"
		"\"deviceID\":\"0000:03:00.1\","
		"\"runtimeConfig\":{\"ips\":[\"192.168.91.50/24\"],\"mac\":\"c2:b0:57:49:47:f1\","
		"\"infinibandGUID\":\"\",\"deviceID\":\"0000:03:00.1\",\"CNIDeviceInfoFile\":\"/var/run/k8s.cni.cncf.io/x\"},"
		"\"args\":{\"cni\":{\"ips\":[\"192.168.91.50/24\"],\"mac\":\"c2:b0:57:49:47:f1\"}}}";
	struct weft_cni_error err = {0};
	struct weft_cni_config *c = parse(text, 0, &err);

	if (!c)
		fprintf(stderr, "multus: %s\n", err.msg);
	CHECK(c != NULL);
	if (c) {
		CHECK_EQ_INT(c->n_rt_ips, 1);
		CHECK_STREQ(cidr_s(&c->rt_ips[0]), "192.168.91.50/24");
		weft_cni_config_free(c);
	}
}

static void test_ipam_only(void)
{
	/* weft-ipam under the reference macvlan plugin: the top level is
	 * that plugin's ("mode" is its macvlan mode), only ipam is ours. */
	static const char text[] =
		"{\"cniVersion\":\"1.0.0\",\"name\":\"mv\",\"type\":\"macvlan\",\"master\":\"eth0\",\"mode\":\"bridge\","
		"\"linkInContainer\":false,\"ipam\":{\"type\":\"weft-ipam\",\"range\":\"10.9.0.0/24\"}}";
	struct weft_cni_error err = {0};
	struct weft_cni_config *c = parse(text, WEFT_CNI_PARSE_IPAM_ONLY, &err);

	CHECK(c != NULL);
	if (c) {
		CHECK_STREQ(c->type, "macvlan");
		CHECK(c->master == NULL);
		CHECK_EQ_INT(c->ipam.mode, WEFT_CNI_IPAM_RANGE);
		weft_cni_config_free(c);
	}
	/* The same config is not a weft config. */
	CHECK(parse(text, 0, &err) == NULL);
	CHECK_EQ_INT(err.code, 2);
	CHECK_STREQ(err.msg, "linkInContainer: unsupported field");
	/* ipam is required; its content is checked as strictly. */
	CHECK(parse("{\"cniVersion\":\"1.0.0\",\"name\":\"mv\",\"type\":\"x\",\"foo\":1}", WEFT_CNI_PARSE_IPAM_ONLY, &err) ==
	      NULL);
	CHECK_STREQ(err.msg, "ipam: is required");
	CHECK(parse("{\"cniVersion\":\"1.0.0\",\"name\":\"mv\",\"type\":\"x\",\"ipam\":{\"type\":\"weft-ipam\",\"x\":1}}",
		    WEFT_CNI_PARSE_IPAM_ONLY, &err) == NULL);
	CHECK_EQ_INT(err.code, 2);
	/* Another plugin's key given twice is tolerated, ours is not, also
	 * behind such a tolerated one (the fuzzer's leak: the second
	 * runtimeConfig was parsed over the first). */
	CHECK(parse("{\"cniVersion\":\"1.0.0\",\"name\":\"mv\",\"type\":\"x\",\"foo\":1,\"foo\":2,"
		    "\"runtimeConfig\":{\"ips\":[\"10.9.0.5/24\"]},\"runtimeConfig\":{\"ips\":[\"10.9.0.6/24\"]},"
		    "\"ipam\":{\"type\":\"weft-ipam\",\"range\":\"10.9.0.0/24\"}}",
		    WEFT_CNI_PARSE_IPAM_ONLY, &err) == NULL);
	CHECK_EQ_INT(err.code, 7);
	CHECK_STREQ(err.msg, "runtimeConfig: given twice");
	/* Pool mode is allowed here: the caller decides what it means. */
	c = parse("{\"cniVersion\":\"1.0.0\",\"name\":\"mv\",\"type\":\"ptp\",\"ipam\":{\"type\":\"weft\"}}",
		  WEFT_CNI_PARSE_IPAM_ONLY, &err);
	CHECK(c != NULL);
	weft_cni_config_free(c);
	weft_cni_error_clear(&err);
}

static void test_prev_result(void)
{
	static const char text[] =
		"{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"type\":\"weft\",\"prevResult\":{\"cniVersion\":\"0.4.0\","
		"\"interfaces\":[{\"name\":\"weft1a2b3c\",\"mac\":\"ee:ee:ee:ee:ee:ee\"},{\"name\":\"eth0\","
		"\"sandbox\":\"/var/run/netns/p\"}],\"ips\":[{\"version\":\"4\",\"address\":\"10.65.0.7/32\","
		"\"gateway\":\"169.254.1.1\",\"interface\":1}],\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"169.254.1.1\"}],"
		"\"dns\":{}}}";
	struct weft_cni_error err = {0};
	struct weft_cni_config *c = parse(text, 0, &err);

	CHECK(c != NULL && c->prev_result != NULL);
	if (c && c->prev_result) {
		CHECK_EQ_INT(c->prev_result->n_interfaces, 2);
		CHECK_STREQ(c->prev_result->interfaces[1].sandbox, "/var/run/netns/p");
		CHECK_EQ_INT(c->prev_result->n_ips, 1);
		CHECK_EQ_INT(c->prev_result->ips[0].interface, 1);
		CHECK_STREQ(ip_s(&c->prev_result->ips[0].gateway), "169.254.1.1");
		CHECK_EQ_INT(c->prev_result->n_routes, 1);
	}
	weft_cni_config_free(c);
}

struct bad {
	const char *text;
	int code;
	const char *msg;
};

static const struct bad bads[] = {
	/* Decoding. */
	{"", 6, "the network configuration is empty"},
	{"  \n", 6, "the network configuration is empty"},
	{"{\"cniVersion\":\"1.0.0\",\n \"name\": }", 6,
	 "the network configuration is not valid JSON: error at line 2, column 10 (byte 32)"},
	{"{} x", 6, "the network configuration is not valid JSON: error at line 1, column 4 (byte 3)"},
	{"[1]", 6, "the network configuration is a list, not a JSON object"},
	/* A NUL in a string or a key: cJSON would keep "net1" of "net1\u0000
	 * evil" and the config would pass for another one. */
	{"{\"cniVersion\":\"1.0.0\",\"name\":\"net1\\u0000 evil\",\"type\":\"weft\"}", 6,
	 "the network configuration at line 1, column 35 (byte 34): name: NUL characters (\\u0000) are not supported"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"ipv4_pools\":[\"pool1\\u0000x\"]}"), 6,
	 "the network configuration at line 1, column 98 (byte 97): ipam.ipv4_pools[0]: NUL characters (\\u0000) are "
	 "not supported"},
	{R(",\n\"mtu\\u0000\":1400"), 6,
	 "the network configuration at line 2, column 5 (byte 55): NUL characters (\\u0000) are not supported in field "
	 "names"},
	/* Versions. */
	{"{\"name\":\"n\",\"type\":\"weft\"}", 1, "cniVersion is missing (which means 0.1.0, not supported)"},
	{"{\"cniVersion\":\"0.2.0\",\"name\":\"n\",\"type\":\"weft\"}", 1, "cniVersion \"0.2.0\" is not supported"},
	{"{\"cniVersion\":\"2.0.0\",\"name\":\"n\",\"type\":\"weft\"}", 1, "cniVersion \"2.0.0\" is not supported"},
	{"{\"cniVersion\":\"1.0\",\"name\":\"n\",\"type\":\"weft\"}", 1, "cniVersion \"1.0\" is not supported"},
	{"{\"cniVersion\":\"latest\",\"name\":\"n\",\"type\":\"weft\"}", 7, "cniVersion: \"latest\" is not a version"},
	{"{\"cniVersion\":1,\"name\":\"n\",\"type\":\"weft\"}", 7, "cniVersion: expected a string, got a number 1"},
	{"{\"cniVersions\":[\"0.1.0\",\"0.2.0\"],\"name\":\"n\",\"type\":\"weft\"}", 1,
	 "cniVersions lists no version weft supports"},
	{"{\"cniVersions\":\"1.0.0\",\"name\":\"n\",\"type\":\"weft\"}", 7,
	 "cniVersions: expected a list, got a string \"1.0.0\""},
	/* Unknown keys. */
	{R(",\"bridge\":\"br0\""), 2, "bridge: unsupported field"},
	{R(",\"plugins\":[]"), 2, "plugins: unsupported field"},
	{R(",\"Mode\":\"routed\""), 2, "Mode: unsupported field"},
	{R(",\"mtu\":1500,\"mtu\":1400"), 7, "mtu: given twice"},
	/* name and type. */
	{"{\"cniVersion\":\"1.0.0\",\"type\":\"weft\"}", 7, "name: is required"},
	{"{\"cniVersion\":\"1.0.0\",\"name\":\"\",\"type\":\"weft\"}", 7, "name: is empty"},
	{"{\"cniVersion\":\"1.0.0\",\"name\":\"my net\",\"type\":\"weft\"}", 7,
	 "name: \"my net\" may contain only letters, digits, '_', '.' and '-'"},
	{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\"}", 7, "type: is required"},
	{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":[]}", 7, "type: expected a string, got a list []"},
	/* Standard keys' types. */
	{R(",\"disableCheck\":\"yes\""), 7, "disableCheck: expected true or false, got a string \"yes\""},
	{R(",\"disableGC\":1"), 7, "disableGC: expected true or false, got a number 1"},
	{R(",\"ipMasq\":null"), 7, "ipMasq: expected true or false, got null null"},
	{R(",\"capabilities\":{\"ips\":\"true\"}"), 7, "capabilities.ips: expected true or false, got a string \"true\""},
	{R(",\"capabilities\":[]"), 7, "capabilities: expected an object, got a list []"},
	{R(",\"dns\":{\"nameservers\":[\"dns.example\"]}"), 7, "dns.nameservers: \"dns.example\" is not an IP address"},
	{R(",\"dns\":{\"search\":\"a\"}"), 7, "dns.search: expected a list of strings, got a string \"a\""},
	{R(",\"dns\":{\"domain\":5}"), 7, "dns.domain: expected a string, got a number 5"},
	{R(",\"args\":[]"), 7, "args: expected an object, got a list []"},
	{R(",\"args\":{\"cni\":{\"ips\":[\"10.0.0.300\"]}}"), 7,
	 "args.cni.ips[0]: \"10.0.0.300\" is not an IP address or CIDR"},
	{R(",\"cni.dev/valid-attachments\":[{\"containerID\":\"a\"}]"), 7,
	 "cni.dev/valid-attachments[0].ifname: expected a string, got null null"},
	{R(",\"cni.dev/valid-attachments\":{}"), 7, "cni.dev/valid-attachments: expected a list, got an object {}"},
	/* runtimeConfig. */
	{R(",\"runtimeConfig\":{\"ips\":\"10.0.0.1\"}"), 7,
	 "runtimeConfig.ips: expected a list, got a string \"10.0.0.1\""},
	{R(",\"runtimeConfig\":{\"ips\":[\"10.0.0.1/33\"]}"), 7,
	 "runtimeConfig.ips[0]: \"10.0.0.1/33\" is not an IP address or CIDR"},
	{R(",\"runtimeConfig\":{\"ips\":[\"10.0.0.1\",\"10.0.0.1/24\"]}"), 7,
	 "runtimeConfig.ips[1]: \"10.0.0.1/24\" is listed twice"},
	{R(",\"runtimeConfig\":{\"mac\":\"zz:00:00:00:00:00\"}"), 7,
	 "runtimeConfig.mac: \"zz:00:00:00:00:00\" is not a MAC address"},
	{R(",\"runtimeConfig\":{\"bandwidth\":{\"ingressRate\":-1}}"), 7,
	 "runtimeConfig.bandwidth.ingressRate: -1 is out of range (0..1000000000000000)"},
	{R(",\"runtimeConfig\":{\"bandwidth\":{\"ingressRate\":4}}"), 7,
	 "runtimeConfig.bandwidth.ingressRate: 4 bit/s is below the smallest rate, 1000 bit/s (kubelet's too)"},
	{R(",\"runtimeConfig\":{\"bandwidth\":{\"egressRate\":999}}"), 7,
	 "runtimeConfig.bandwidth.egressRate: 999 bit/s is below the smallest rate, 1000 bit/s (kubelet's too)"},
	{R(",\"runtimeConfig\":{\"bandwidth\":{\"ingressRate\":\"10M\"}}"), 7,
	 "runtimeConfig.bandwidth.ingressRate: expected an integer, got a string \"10M\""},
	{R(",\"runtimeConfig\":{\"bandwidth\":{\"egressBurst\":1000}}"), 7,
	 "runtimeConfig.bandwidth.egressBurst: is set but egressRate is not"},
	{R(",\"runtimeConfig\":{\"bandwidth\":{\"ingressRate\":1000,\"ingressBurst\":40000000000}}"), 7,
	 "runtimeConfig.bandwidth.ingressBurst: 40000000000 is out of range (0..17179869176)"},
	{R(",\"runtimeConfig\":{\"bandwidth\":{\"egressRate\":1000,\"egressBurst\":17179869184}}"), 7,
	 "runtimeConfig.bandwidth.egressBurst: 17179869184 is out of range (0..17179869176)"},
	{R(",\"runtimeConfig\":{\"portMappings\":[{\"hostPort\":80}]}"), 7,
	 "runtimeConfig.portMappings[0].containerPort: is required"},
	{R(",\"runtimeConfig\":{\"portMappings\":[{\"hostPort\":0,\"containerPort\":80}]}"), 7,
	 "runtimeConfig.portMappings[0].hostPort: 0 is out of range (1..65535)"},
	{R(",\"runtimeConfig\":{\"portMappings\":[{\"hostPort\":80,\"containerPort\":80,\"protocol\":\"icmp\"}]}"), 7,
	 "runtimeConfig.portMappings[0].protocol: \"icmp\" is not tcp, udp or sctp"},
	/* prevResult. */
	{R(",\"prevResult\":[]"), 7, "prevResult: expected an object, got a list []"},
	{R(",\"prevResult\":{\"ips\":[{\"address\":\"10.0.0.1\"}]}"), 7, "prevResult.ips[0].address: \"10.0.0.1\" is not a CIDR"},
	{R(",\"prevResult\":{\"ips\":[{\"address\":\"10.0.0.1/32\",\"interface\":0}]}"), 7,
	 "prevResult.ips[0].interface: 0 is not the index of an interface (there are 0)"},
	{R(",\"prevResult\":{\"interfaces\":[{\"mac\":\"x\"}]}"), 7, "prevResult.interfaces[0].name: is required"},
	{R(",\"prevResult\":{\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"fe80::1\"}]}"), 7,
	 "prevResult.routes[0].gw: \"fe80::1\" is not of the same address family as dst"},
	{"{\"cniVersion\":\"0.3.1\",\"name\":\"n\",\"type\":\"weft\",\"prevResult\":{\"ips\":[{\"version\":\"6\","
	 "\"address\":\"10.0.0.1/32\"}]}}",
	 7, "prevResult.ips[0].version: \"6\" does not match the address (IPv4)"},
	{R(",\"prevResult\":{\"cniVersion\":\"0.2.0\"}"), 1, "prevResult.cniVersion: \"0.2.0\" is not supported"},
	/* weft's keys. */
	{R(",\"weftd_socket\":\"run/weftd.sock\""), 7, "weftd_socket: \"run/weftd.sock\" is not an absolute path"},
	{R(",\"weftd_socket\":\"/run/weft/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	   "aaaaaaaaaaaaaaaaaaaaaaaaa.sock\""),
	 7, "weftd_socket: is longer than a unix socket path may be (107 bytes)"},
	{R(",\"mode\":\"bridge\""), 7, "mode: \"bridge\" is not routed or macvlan"},
	{R(",\"mode\":1"), 7, "mode: expected a string, got a number 1"},
	{R(",\"mtu\":67"), 7, "mtu: 67 is out of range (68..65535)"},
	{R(",\"mtu\":65536"), 7, "mtu: 65536 is out of range (68..65535)"},
	{R(",\"mtu\":\"1500\""), 7, "mtu: expected an integer, got a string \"1500\""},
	{R(",\"mtu\":1500.5"), 7, "mtu: expected an integer, got a number 1500.5"},
	{R(",\"profiles\":\"WEB\""), 7, "profiles: expected a list of strings, got a string \"WEB\""},
	{R(",\"profiles\":[\"WEB\",1]"), 7, "profiles[1]: expected a string, got a number 1"},
	{R(",\"profiles\":[\"a b\"]"), 7, "profiles[0]: \"a b\" is not a profile name (letters, digits, '.', '_', '-')"},
	{R(",\"profiles\":[\"WEB\",\"WEB\"]"), 7, "profiles[1]: \"WEB\" is listed twice"},
	{R(",\"master\":\"eth1\""), 7, "master: is only used in macvlan mode"},
	{R(",\"macvlan_mode\":\"bridge\""), 7, "macvlan_mode: is only used in macvlan mode"},
	{R(",\"ingress_bandwidth\":\"10 M\""), 7,
	 "ingress_bandwidth: \"10 M\" is not a bandwidth (bit/s, optionally with k, M, G, T, P, Ki, Mi, Gi ..., e.g. \"10M\")"},
	{R(",\"ingress_bandwidth\":\"100\""), 7, "ingress_bandwidth: \"100\" is less than 1k bit/s"},
	{R(",\"egress_bandwidth\":\"2P\""), 7, "egress_bandwidth: \"2P\" is more than 1P bit/s"},
	{R(",\"egress_bandwidth\":true"), 7, "egress_bandwidth: expected a bandwidth such as \"10M\", got a boolean true"},
	{R(",\"egress_bandwidth\":-5"), 7, "egress_bandwidth: -5 is not a whole, positive number of bit/s"},
	{R(",\"labels\":[]"), 7, "labels: expected an object, got a list []"},
	{R(",\"labels\":{\"a\":1}"), 7, "labels.a: expected a string, got a number 1"},
	{R(",\"labels\":{\"-a\":\"x\"}"), 7, "labels: \"-a\" is not a label key"},
	{R(",\"labels\":{\"a\":\"x y\"}"), 7,
	 "labels.a: \"x y\" is not a label value (at most 63 letters, digits, '-', '_', '.')"},
	/* macvlan mode. */
	{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"weft\",\"mode\":\"macvlan\",\"ipam\":{\"type\":\"weft-ipam\","
	 "\"range\":\"10.0.0.0/24\"}}",
	 7, "master: is required in macvlan mode (the host interface to attach to)"},
	{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"weft\",\"mode\":\"macvlan\",\"master\":\"eth1\"}", 7,
	 "ipam: is required in macvlan mode (a range or static addresses)"},
	{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"weft\",\"mode\":\"macvlan\",\"master\":\"eth1\","
	 "\"ipam\":{\"type\":\"weft-ipam\"}}",
	 7, "ipam: macvlan mode needs a range or static addresses; pool IPAM hands out routed addresses"},
	{M(",\"master\":\"eth1\"", ",\"range\":\"10.0.0.0/24\""), 7, "master: given twice"},
	{M(",\"macvlan_mode\":\"trunk\"", ",\"range\":\"10.0.0.0/24\""), 7,
	 "macvlan_mode: \"trunk\" is not bridge, vepa, private or passthru"},
	{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"weft\",\"mode\":\"macvlan\",\"master\":\"eth1/2\"}", 7,
	 "master: \"eth1/2\" may not contain '/', ':', white space or control characters"},
	{M(",\"ingress_bandwidth\":\"10M\"", ",\"range\":\"10.0.0.0/24\""), 7,
	 "ingress_bandwidth: is only supported in routed mode"},
	/* ipam: common. */
	{R(",\"ipam\":\"weft-ipam\""), 7, "ipam: expected an object, got a string \"weft-ipam\""},
	{R(",\"ipam\":{}"), 7, "ipam.type: is required (\"weft-ipam\")"},
	{R(",\"ipam\":{\"type\":\"host-local\"}"), 7, "ipam.type: \"host-local\" is not weft's IPAM (use \"weft-ipam\")"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"subnet\":\"10.0.0.0/24\"}"), 2,
	 "ipam.subnet: unsupported field (did you mean \"range\"?)"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"rangeStart\":\"10.0.0.5\"}"), 2,
	 "ipam.rangeStart: unsupported field (did you mean \"range_start\"?)"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"kubernetes\":{}}"), 2, "ipam.kubernetes: unsupported field"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"ipv4_pools\":[\"p\"],\"range\":\"10.0.0.0/24\"}"), 7,
	 "ipam: pool keys (ipv4_pools, assign_ipv4) and range keys (range, range_start, range_end, exclude, gateway) "
	 "cannot be combined"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"range\":\"10.0.0.0/24\",\"addresses\":[]}"), 7,
	 "ipam: range keys (range, range_start, range_end, exclude, gateway) and static addresses cannot be combined"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"routes\":{}}"), 7, "ipam.routes: expected a list, got an object {}"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"routes\":[{\"gw\":\"10.0.0.1\"}]}"), 7, "ipam.routes[0].dst: is required"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"routes\":[{\"dst\":\"default\"}]}"), 7,
	 "ipam.routes[0].dst: \"default\" is not a CIDR"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"x\"}]}"), 7,
	 "ipam.routes[0].gw: \"x\" is not an IP address"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"routes\":[{\"dst\":\"0.0.0.0/0\",\"metric\":5}]}"), 2,
	 "ipam.routes[0].metric: unsupported field"},
	/* ipam: pools. */
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"ipv4_pools\":\"p\"}"), 7,
	 "ipam.ipv4_pools: expected a list of strings, got a string \"p\""},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"ipv4_pools\":[\"10.0.0.0/33\"]}"), 7,
	 "ipam.ipv4_pools[0]: \"10.0.0.0/33\" is not an IPv4 CIDR"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"ipv4_pools\":[\"fd00::/64\"]}"), 7,
	 "ipam.ipv4_pools[0]: \"fd00::/64\" is not an IPv4 CIDR"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"ipv4_pools\":[\"my pool\"]}"), 7,
	 "ipam.ipv4_pools[0]: \"my pool\" is not a pool name or an IPv4 CIDR"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"ipv4_pools\":[\"a\",\"a\"]}"), 7, "ipam.ipv4_pools[1]: \"a\" is listed twice"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"assign_ipv4\":false}"), 7,
	 "ipam.assign_ipv4: false leaves nothing to assign (weft assigns IPv4 only)"},
	{R(",\"ipam\":{\"type\":\"weft-ipam\",\"assign_ipv4\":\"yes\"}"), 7,
	 "ipam.assign_ipv4: expected true or false, got a string \"yes\""},
	/* ipam: range. */
	{M("", ",\"range\":\"10.0.0.0/33\""), 7, "ipam.range: \"10.0.0.0/33\" is not a CIDR or first-last/prefix range"},
	{M("", ",\"range\":\"10.0.0.0\""), 7, "ipam.range: \"10.0.0.0\" is not a CIDR or first-last/prefix range"},
	{M("", ",\"range\":\"10.0.0.5-10.0.0.9\""), 7,
	 "ipam.range: \"10.0.0.5-10.0.0.9\" is not a CIDR or first-last/prefix range"},
	{M("", ",\"range\":\"10.0.0.5-x/24\""), 7, "ipam.range: \"10.0.0.5-x/24\" is not a CIDR or first-last/prefix range"},
	{M("", ",\"range\":24"), 7, "ipam.range: expected a string, got a number 24"},
	{M("", ",\"range\":\"10.0.0.5-10.0.1.9/24\""), 7, "ipam.range: the last address 10.0.1.9 is outside 10.0.0.0/24"},
	{M("", ",\"range\":\"10.0.0.9-10.0.0.5/24\""), 7, "ipam.range: the first address 10.0.0.9 is after the last 10.0.0.5"},
	{M("", ",\"range\":\"10.0.0.0-10.0.0.5/24\""), 7,
	 "ipam.range: the first address 10.0.0.0 is the network address of 10.0.0.0/24"},
	{M("", ",\"range\":\"10.0.0.200-10.0.0.255/24\""), 7,
	 "ipam.range: the last address 10.0.0.255 is the broadcast address of 10.0.0.0/24"},
	{M("", ",\"range\":\"10.0.0.5-10.0.0.9/24\",\"range_start\":\"10.0.0.6\""), 7,
	 "ipam.range_start: cannot be combined with a first-last ipam.range"},
	{M("", ",\"range_start\":\"10.0.0.6\""), 7, "ipam.range_start: needs ipam.range"},
	{M("", ",\"exclude\":[\"10.0.0.6\"]"), 7, "ipam.exclude: needs ipam.range"},
	{M("", ",\"range\":\"10.0.0.0/24\",\"range_start\":\"10.0.1.6\""), 7,
	 "ipam.range_start: 10.0.1.6 is outside the range's subnet 10.0.0.0/24"},
	{M("", ",\"range\":\"10.0.0.0/24\",\"range_start\":\"10.0.0.0\""), 7,
	 "ipam.range_start: 10.0.0.0 is the network address of 10.0.0.0/24"},
	{M("", ",\"range\":\"10.0.0.0/24\",\"range_end\":\"10.0.0.255\""), 7,
	 "ipam.range_end: 10.0.0.255 is the broadcast address of 10.0.0.0/24"},
	{M("", ",\"range\":\"10.0.0.0/24\",\"range_start\":\"10.0.0.50\",\"range_end\":\"10.0.0.10\""), 7,
	 "ipam.range_start: 10.0.0.50 is after 10.0.0.10"},
	{M("", ",\"range\":\"10.0.0.0/24\",\"range_start\":\"fd00::1\""), 7,
	 "ipam.range_start: fd00::1 is outside the range's subnet 10.0.0.0/24"},
	{M("", ",\"range\":\"10.0.0.0/24\",\"range_end\":\"10.0.0\""), 7, "ipam.range_end: \"10.0.0\" is not an IP address"},
	{M("", ",\"range\":\"10.0.0.0/24\",\"gateway\":\"10.0.1.1\""), 7,
	 "ipam.gateway: 10.0.1.1 is outside the range's subnet 10.0.0.0/24"},
	{M("", ",\"range\":\"10.0.0.0/24\",\"gateway\":\"10.0.0.255\""), 7,
	 "ipam.gateway: 10.0.0.255 is the broadcast address of 10.0.0.0/24"},
	{M("", ",\"range\":\"10.0.0.0/24\",\"exclude\":\"10.0.0.5\""), 7,
	 "ipam.exclude: expected a list, got a string \"10.0.0.5\""},
	{M("", ",\"range\":\"10.0.0.0/24\",\"exclude\":[\"10.0.0.5\",\"10.0.1.0/28\"]"), 7,
	 "ipam.exclude[1]: 10.0.1.0/28 is not inside the range's subnet 10.0.0.0/24"},
	{M("", ",\"range\":\"10.0.0.0/24\",\"exclude\":[\"10.0.0.0/23\"]"), 7,
	 "ipam.exclude[0]: 10.0.0.0/23 is not inside the range's subnet 10.0.0.0/24"},
	{M("", ",\"range\":\"10.0.0.0/24\",\"exclude\":[\"bogus\"]"), 7,
	 "ipam.exclude[0]: \"bogus\" is not an IP address or CIDR"},
	/* ipam: static. */
	{M("", ",\"addresses\":[]"), 7, "ipam.addresses: is empty"},
	{M("", ",\"addresses\":[{\"gateway\":\"10.0.0.1\"}]"), 7, "ipam.addresses[0].address: is required"},
	{M("", ",\"addresses\":[{\"address\":\"10.0.0.5\"}]"), 7, "ipam.addresses[0].address: \"10.0.0.5\" is not a CIDR"},
	{M("", ",\"addresses\":[{\"address\":\"10.0.0.5/24\",\"gateway\":\"fd00::1\"}]"), 7,
	 "ipam.addresses[0].gateway: \"fd00::1\" is not of the address's family"},
	{M("", ",\"addresses\":[{\"address\":\"10.0.0.5/24\",\"dns\":1}]"), 2, "ipam.addresses[0].dns: unsupported field"},
	{M("", ",\"addresses\":[{\"address\":\"10.0.0.5/24\"},{\"address\":\"10.0.0.5/16\"}]"), 7,
	 "ipam.addresses[1].address: \"10.0.0.5/16\" is listed twice"},
};

static void test_bad_configs(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(bads); i++) {
		struct weft_cni_error err = {0};
		struct weft_cni_config *c = NULL;
		int r = weft_cni_config_parse(bads[i].text, strlen(bads[i].text), 0, &c, &err);

		if (r == 0 || err.code != bads[i].code || !err.msg || !streq(err.msg, bads[i].msg))
			fprintf(stderr, "bad case %zu: %s\n  got r=%d code=%d msg=%s\n", i, bads[i].text, r, err.code,
				err.msg ? err.msg : "(null)");
		CHECK(r < 0);
		CHECK(c == NULL);
		CHECK_EQ_INT(err.code, bads[i].code);
		CHECK_STREQ(err.msg, bads[i].msg);
		CHECK(!strchr(err.msg ? err.msg : "", '\n'));
		CHECK_EQ_INT(r, bads[i].code == 1 ? -ENOTSUP : bads[i].code == 6 ? -EBADMSG : -EINVAL);
		weft_cni_config_free(c);
		weft_cni_error_clear(&err);
	}
}

static void test_error_version(void)
{
	/* An error after cniVersion was read is written in that version. */
	struct weft_cni_error err = {0};
	_cleanup_free_ char *j = NULL;

	CHECK(parse("{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"type\":\"weft\",\"mtu\":1}", 0, &err) == NULL);
	CHECK_EQ_INT(err.version, WEFT_CNI_V0_4_0);
	j = weft_cni_error_json(&err, 0);
	CHECK_STREQ(j, "{\"cniVersion\":\"0.4.0\",\"code\":7,\"msg\":\"mtu: 1 is out of range (68..65535)\"}");
	weft_cni_error_clear(&err);
	free(j);
	CHECK(parse("{\"cniVersion\":\"0.2.0\",\"name\":\"n\",\"type\":\"weft\"}", 0, &err) == NULL);
	j = weft_cni_error_json(&err, 0);
	CHECK_STREQ(j, "{\"cniVersion\":\"1.1.0\",\"code\":1,\"msg\":\"cniVersion \\\"0.2.0\\\" is not supported\","
		       "\"details\":\"weft supports cniVersion 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0\"}");
	weft_cni_error_clear(&err);
}

/* Every seed of the fuzz corpus is a real-looking config: the good ones
 * parse, bad-* ones fail. */
static void test_corpus(void)
{
	static const char *const files[] = {"routed.json", "macvlan-range.json", "macvlan-start-end.json",
					    "multus-delegate.json", "v031-routed.json", "prevresult-check.json",
					    "prevresult-11.json", "gc.json", "ipam-only.json", "bad-range.json",
					    "bad-json.json", "bad-nul.json"};

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *path = wasprintf("%s/%s", WEFT_CNI_CORPUS, files[i]);
		_cleanup_free_ char *buf = NULL;
		struct weft_cni_error err = {0};
		struct weft_cni_config *c = NULL;
		unsigned flags = startswith(files[i], "ipam-only") ? WEFT_CNI_PARSE_IPAM_ONLY : 0;
		size_t len = 0;
		int fd = open(path, O_RDONLY);
		int r;

		CHECK(fd >= 0);
		if (fd < 0)
			continue;
		CHECK_EQ_INT(weft_cni_read_all(fd, &buf, &len, &err), 0);
		close(fd);
		r = weft_cni_config_parse(buf, len, flags, &c, &err);
		if ((r == 0) != !startswith(files[i], "bad-"))
			fprintf(stderr, "%s: r=%d %s\n", files[i], r, err.msg ? err.msg : "");
		CHECK((r == 0) == !startswith(files[i], "bad-"));
		weft_cni_config_free(c);
		weft_cni_error_clear(&err);
	}
}

TEST_MAIN(TEST(test_corpus), TEST(test_routed_defaults), TEST(test_routed_full), TEST(test_gc_null_attachments), TEST(test_macvlan_range), TEST(test_versions),
	  TEST(test_multus_delegate), TEST(test_ipam_only), TEST(test_prev_result), TEST(test_bad_configs),
	  TEST(test_error_version))
