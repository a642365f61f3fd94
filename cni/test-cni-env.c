/* test-cni-env.c - CNI_* variables per command, CNI_ARGS edge cases,
 * interface and container id rules, the bandwidth notation. */
#include "cni/cni.h"
#include "lib/test.h"

#define MAXV 12

struct env_case {
	const char *vars[MAXV]; /* NULL-terminated */
	int code;               /* 0: success */
	const char *msg;        /* expected message (exact) when code != 0 */
};

#define ADD_OK "CNI_COMMAND=ADD", "CNI_CONTAINERID=abc123", "CNI_NETNS=/var/run/netns/x", "CNI_IFNAME=eth0"

static const struct env_case env_cases[] = {
	{{ADD_OK, NULL}, 0, NULL},
	{{ADD_OK, "CNI_PATH=/opt/cni/bin", "CNI_ARGS=K8S_POD_NAME=p", NULL}, 0, NULL},
	{{"CNI_COMMAND=VERSION", NULL}, 0, NULL},
	{{"CNI_COMMAND=GC", NULL}, 0, NULL},
	{{"CNI_COMMAND=STATUS", "CNI_PATH=/opt/cni/bin", NULL}, 0, NULL},
	/* DEL tolerates an empty or missing CNI_NETNS. */
	{{"CNI_COMMAND=DEL", "CNI_CONTAINERID=abc", "CNI_IFNAME=eth0", "CNI_NETNS=", NULL}, 0, NULL},
	{{"CNI_COMMAND=DEL", "CNI_CONTAINERID=abc", "CNI_IFNAME=eth0", NULL}, 0, NULL},
	{{NULL}, 4, "CNI_COMMAND is not set (ADD, DEL, CHECK, VERSION, GC or STATUS)"},
	{{"CNI_COMMAND=", NULL}, 4, "CNI_COMMAND is not set (ADD, DEL, CHECK, VERSION, GC or STATUS)"},
	{{"CNI_COMMAND=add", NULL}, 4, "CNI_COMMAND: \"add\" is not ADD, DEL, CHECK, VERSION, GC or STATUS"},
	{{"CNI_COMMAND=GET", NULL}, 4, "CNI_COMMAND: \"GET\" is not ADD, DEL, CHECK, VERSION, GC or STATUS"},
	{{"CNI_COMMAND=ADD", "CNI_NETNS=/n", "CNI_IFNAME=eth0", NULL}, 4, "CNI_CONTAINERID is not set (required for ADD)"},
	{{"CNI_COMMAND=ADD", "CNI_CONTAINERID=a", "CNI_IFNAME=eth0", NULL}, 4, "CNI_NETNS is not set (required for ADD)"},
	{{"CNI_COMMAND=CHECK", "CNI_CONTAINERID=a", "CNI_IFNAME=eth0", "CNI_NETNS=", NULL}, 4,
	 "CNI_NETNS is not set (required for CHECK)"},
	{{"CNI_COMMAND=ADD", "CNI_CONTAINERID=a", "CNI_NETNS=/n", NULL}, 4, "CNI_IFNAME is not set (required for ADD)"},
	{{"CNI_COMMAND=DEL", "CNI_CONTAINERID=a", NULL}, 4, "CNI_IFNAME is not set (required for DEL)"},
	{{"CNI_COMMAND=DEL", "CNI_IFNAME=eth0", NULL}, 4, "CNI_CONTAINERID is not set (required for DEL)"},
	{{"CNI_COMMAND=ADD", "CNI_CONTAINERID=-abc", "CNI_NETNS=/n", "CNI_IFNAME=eth0", NULL}, 4,
	 "CNI_CONTAINERID: \"-abc\" must start with a letter or a digit"},
	{{"CNI_COMMAND=ADD", "CNI_CONTAINERID=a/b", "CNI_NETNS=/n", "CNI_IFNAME=eth0", NULL}, 4,
	 "CNI_CONTAINERID: \"a/b\" may contain only letters, digits, '_', '.' and '-'"},
	{{"CNI_COMMAND=ADD", "CNI_CONTAINERID=a", "CNI_NETNS=/n", "CNI_IFNAME=eth0123456789abc", NULL}, 4,
	 "CNI_IFNAME: \"eth0123456789abc\" is too long (more than 15 characters)"},
	{{"CNI_COMMAND=ADD", "CNI_CONTAINERID=a", "CNI_NETNS=/n", "CNI_IFNAME=..", NULL}, 4,
	 "CNI_IFNAME: \"..\" may not be \".\" or \"..\""},
	{{"CNI_COMMAND=ADD", "CNI_CONTAINERID=a", "CNI_NETNS=/n", "CNI_IFNAME=et h0", NULL}, 4,
	 "CNI_IFNAME: \"et h0\" may not contain '/', ':', white space or control characters"},
	{{"CNI_COMMAND=ADD", "CNI_CONTAINERID=a", "CNI_NETNS=/n", "CNI_IFNAME=a/b", NULL}, 4,
	 "CNI_IFNAME: \"a/b\" may not contain '/', ':', white space or control characters"},
	{{ADD_OK, "CNI_ARGS=FOO=bar", NULL}, 4, "CNI_ARGS: unknown key \"FOO\" (set IgnoreUnknown=1 to ignore unknown keys)"},
};

static void test_env_table(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(env_cases); i++) {
		const struct env_case *c = &env_cases[i];
		struct weft_cni_env env = {0};
		struct weft_cni_error err = {0};
		int r = weft_cni_env_parse((char *const *)c->vars, &env, &err);

		if (c->code == 0) {
			if (r != 0)
				fprintf(stderr, "case %zu: %s\n", i, err.msg);
			CHECK_EQ_INT(r, 0);
		} else {
			CHECK(r < 0);
			CHECK_EQ_INT(err.code, c->code);
			CHECK_STREQ(err.msg, c->msg);
			CHECK(env.command == 0 && env.container_id == NULL);
		}
		weft_cni_env_clear(&env);
		weft_cni_error_clear(&err);
	}
}

static void test_env_values(void)
{
	char *vars[] = {"CNI_COMMAND=ADD", "CNI_CONTAINERID=c0ffee_1.x-2", "CNI_NETNS=/proc/1/ns/net",
			"CNI_IFNAME=net1", "CNI_PATH=/opt/cni/bin:/usr/lib/cni",
			"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
			"K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=1234",
			"CNI_IFNAME=eth0", /* the last one wins, like getenv() on an appended environment */
			NULL};
	struct weft_cni_env env = {0};
	struct weft_cni_error err = {0};

	CHECK_EQ_INT(weft_cni_env_parse(vars, &env, &err), 0);
	CHECK_EQ_INT(env.command, WEFT_CNI_CMD_ADD);
	CHECK_STREQ(env.container_id, "c0ffee_1.x-2");
	CHECK_STREQ(env.netns, "/proc/1/ns/net");
	CHECK_STREQ(env.ifname, "eth0");
	CHECK_STREQ(env.path, "/opt/cni/bin:/usr/lib/cni");
	CHECK_STREQ(env.k8s_pod_namespace, "default");
	CHECK_STREQ(env.k8s_pod_name, "web-0");
	CHECK_STREQ(env.k8s_pod_infra_container_id, "c0ffee");
	CHECK_STREQ(env.k8s_pod_uid, "1234");
	CHECK(env.ignore_unknown);
	CHECK_STREQ(weft_cni_command_str(env.command), "ADD");
	weft_cni_env_clear(&env);
	weft_cni_env_clear(&env); /* idempotent */
}

struct args_case {
	const char *args;
	int ok;
	const char *msg; /* when !ok */
};

static const struct args_case args_cases[] = {
	{"", 1, NULL},
	{";", 1, NULL},
	{"K8S_POD_NAME=a;;K8S_POD_NAMESPACE=b;", 1, NULL},
	{"K8S_POD_NAME=", 1, NULL},
	{"IP=", 1, NULL},
	{"K8S_POD_NAME=a;K8S_POD_NAME=a", 1, NULL},
	{"FOO=1;IgnoreUnknown=true", 1, NULL}, /* IgnoreUnknown may come last */
	{"IgnoreUnknown=TRUE;BAR=", 1, NULL},
	{"IP=10.1.2.3", 1, NULL},
	{"IP=10.1.2.3,fd00::3", 1, NULL},
	{"IP=10.1.2.3/24", 1, NULL},
	{"MAC=0A:58:0a:01:02:03", 1, NULL},
	{"INGRESS_BANDWIDTH=10M;EGRESS_BANDWIDTH=1Gi", 1, NULL},
	{"K8S_POD_NAME=a;K8S_POD_NAME=b", 0,
	 "CNI_ARGS: K8S_POD_NAME is given twice with different values (\"a\" and \"b\")"},
	{"K8S_POD_NAME", 0, "CNI_ARGS: \"K8S_POD_NAME\" is not KEY=VALUE"},
	{"=x", 0, "CNI_ARGS: \"=x\" is not KEY=VALUE"},
	{"A=b=c", 0, "CNI_ARGS: \"A=b=c\" is not KEY=VALUE (a second '=')"},
	{"FOO=1", 0, "CNI_ARGS: unknown key \"FOO\" (set IgnoreUnknown=1 to ignore unknown keys)"},
	{"FOO=1;IgnoreUnknown=0", 0, "CNI_ARGS: unknown key \"FOO\" (set IgnoreUnknown=1 to ignore unknown keys)"},
	{"IgnoreUnknown=yes", 0, "CNI_ARGS: IgnoreUnknown=yes: expected 1, 0, true or false"},
	{"ignoreunknown=1", 0, "CNI_ARGS: unknown key \"ignoreunknown\" (set IgnoreUnknown=1 to ignore unknown keys)"},
	{"IP=10.1.2", 0, "CNI_ARGS: IP=10.1.2: \"10.1.2\" is not an IP address"},
	{"IP=10.1.2.3,10.1.2.3", 0, "CNI_ARGS: IP=10.1.2.3,10.1.2.3: 10.1.2.3 is listed twice"},
	{"IP=1.0.0.1,1.0.0.2,1.0.0.3,1.0.0.4,1.0.0.5,1.0.0.6,1.0.0.7,1.0.0.8,1.0.0.9", 0,
	 "CNI_ARGS: IP=1.0.0.1,1.0.0.2,1.0.0.3,1.0.0.4,1.0.0.5,1.0.0.6,1.0.0.7,1.0.0.8,1.0.0.9: more than 8 addresses"},
	{"MAC=0a:58:0a:01:02", 0, "CNI_ARGS: MAC=0a:58:0a:01:02: not a MAC address (aa:bb:cc:dd:ee:ff)"},
	{"INGRESS_BANDWIDTH=fast", 0,
	 "CNI_ARGS: INGRESS_BANDWIDTH=fast: not a bandwidth (use bit/s with an optional k, M, G, T suffix, e.g. 10M)"},
	{"EGRESS_BANDWIDTH=10", 0, "CNI_ARGS: EGRESS_BANDWIDTH=10: less than 1k bit/s"},
	{"EGRESS_BANDWIDTH=2P", 0, "CNI_ARGS: EGRESS_BANDWIDTH=2P: more than 1P bit/s"},
};

static void test_args_table(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(args_cases); i++) {
		const struct args_case *c = &args_cases[i];
		struct weft_cni_env env = {0};
		struct weft_cni_error err = {0};
		int r = weft_cni_args_parse(c->args, &env, &err);

		if (c->ok) {
			if (r != 0)
				fprintf(stderr, "args case %zu (%s): %s\n", i, c->args, err.msg);
			CHECK_EQ_INT(r, 0);
		} else {
			if (r == 0)
				fprintf(stderr, "args case %zu (%s) unexpectedly passed\n", i, c->args);
			CHECK(r < 0);
			CHECK_EQ_INT(err.code, 4);
			CHECK_STREQ(err.msg, c->msg);
		}
		weft_cni_env_clear(&env);
		weft_cni_error_clear(&err);
	}
}

static void test_args_values(void)
{
	struct weft_cni_env env = {0};
	struct weft_cni_error err = {0};
	char buf[WEFT_IP_STRLEN];

	CHECK_EQ_INT(weft_cni_args_parse("IP=10.1.2.3,fd00::3;MAC=0A:58:0a:01:02:FF;K8S_POD_NAME=;"
					 "INGRESS_BANDWIDTH=10M;EGRESS_BANDWIDTH=1.5k",
					 &env, &err),
		     0);
	CHECK_EQ_INT(env.n_ips, 2);
	CHECK_STREQ(weft_ip_str(&env.ips[0], buf, sizeof(buf)), "10.1.2.3");
	CHECK_STREQ(weft_ip_str(&env.ips[1], buf, sizeof(buf)), "fd00::3");
	CHECK(env.has_mac && env.mac[0] == 0x0a && env.mac[5] == 0xff);
	CHECK(env.k8s_pod_name == NULL); /* empty means unset */
	CHECK_EQ_INT(env.ingress_bandwidth, 10000000);
	CHECK_EQ_INT(env.egress_bandwidth, 1500);
	CHECK(!env.ignore_unknown);
	weft_cni_env_clear(&env);

	/* A failure leaves env untouched. */
	env.k8s_pod_name = wstrdup("keep");
	CHECK(weft_cni_args_parse("K8S_POD_NAME=x;BAD", &env, &err) < 0);
	CHECK_STREQ(env.k8s_pod_name, "keep");
	weft_cni_env_clear(&env);
	weft_cni_error_clear(&err);
}

struct bw_case {
	const char *s;
	int r;
	uint64_t v;
};

static const struct bw_case bw_cases[] = {
	{"10M", 0, 10000000ULL},
	{"1G", 0, 1000000000ULL},
	{"500k", 0, 500000ULL},
	{"1Gi", 0, 1073741824ULL},
	{"1Ki", 0, 1024ULL},
	{"100Mi", 0, 104857600ULL},
	{"2T", 0, 2000000000000ULL},
	{"1P", 0, 1000000000000000ULL},
	{"1E", 0, 1000000000000000000ULL},
	{"1Ei", 0, 1152921504606846976ULL},
	{"1000", 0, 1000ULL},
	{"1.5M", 0, 1500000ULL},
	{"0.5k", 0, 500ULL},
	{"1.0001k", 0, 1001ULL}, /* 1000.1 rounds up */
	{"1e6", 0, 1000000ULL},
	{"1E3", 0, 1000ULL},
	{"2.5e3", 0, 2500ULL},
	{"1e-3", 0, 1ULL},
	{"0", 0, 0ULL},
	{"007k", 0, 7000ULL},
	{"", -EINVAL, 0},
	{"M", -EINVAL, 0},
	{"10m", -EINVAL, 0}, /* milli-bits make no sense */
	{"10K", -EINVAL, 0}, /* Kubernetes spells kilo "k" */
	{"10MB", -EINVAL, 0},
	{"-10M", -EINVAL, 0},
	{"+10M", -EINVAL, 0},
	{" 10M", -EINVAL, 0},
	{"10M ", -EINVAL, 0},
	{"1.", -EINVAL, 0},
	{".5", 0, 1ULL}, /* as Kubernetes reads it */
	{"1..5", -EINVAL, 0},
	{"1e", -EINVAL, 0},
	{"1e+", -EINVAL, 0},
	{"1e", -EINVAL, 0},
	{"1eM", -EINVAL, 0},
	{"1e19", -ERANGE, 0},
	{"100E", -ERANGE, 0},
	{"20Ei", -ERANGE, 0},
	{"18446744073709551615", 0, 18446744073709551615ULL},
	{"18446744073709551616", -ERANGE, 0},
	{"99999999999999999999999", -ERANGE, 0},
};

static void test_bandwidth(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(bw_cases); i++) {
		uint64_t v = 12345;
		int r = weft_cni_parse_bandwidth(bw_cases[i].s, &v);

		if (r != bw_cases[i].r || (r == 0 && v != bw_cases[i].v))
			fprintf(stderr, "bandwidth \"%s\": r=%d v=%llu\n", bw_cases[i].s, r, (unsigned long long)v);
		CHECK_EQ_INT(r, bw_cases[i].r);
		if (r == 0)
			CHECK(v == bw_cases[i].v);
		else
			CHECK(v == 12345);
	}
}

static void test_names(void)
{
	const char *why = NULL;

	CHECK_EQ_INT(weft_cni_check_ifname("eth0", &why), 0);
	CHECK_EQ_INT(weft_cni_check_ifname("123456789012345", &why), 0);
	CHECK_EQ_INT(weft_cni_check_ifname("1234567890123456", &why), -EINVAL);
	CHECK_EQ_INT(weft_cni_check_ifname("", &why), -EINVAL);
	CHECK_STREQ(why, "is empty");
	CHECK_EQ_INT(weft_cni_check_ifname(".", &why), -EINVAL);
	CHECK_EQ_INT(weft_cni_check_ifname("a:b", &why), -EINVAL);
	CHECK_EQ_INT(weft_cni_check_ifname("a\tb", &why), -EINVAL);
	CHECK_EQ_INT(weft_cni_check_container_id("0abc", &why), 0);
	CHECK_EQ_INT(weft_cni_check_container_id("_abc", &why), -EINVAL);
	CHECK_EQ_INT(weft_cni_check_container_id("ab c", &why), -EINVAL);
	CHECK_EQ_INT(weft_cni_check_container_id("", &why), -EINVAL);
}

static void test_command_versions(void)
{
	struct weft_cni_error err = {0};

	CHECK_EQ_INT(weft_cni_command_check_version(WEFT_CNI_CMD_ADD, WEFT_CNI_V0_3_0, &err), 0);
	CHECK_EQ_INT(weft_cni_command_check_version(WEFT_CNI_CMD_CHECK, WEFT_CNI_V0_4_0, &err), 0);
	CHECK_EQ_INT(weft_cni_command_check_version(WEFT_CNI_CMD_CHECK, WEFT_CNI_V0_3_1, &err), -ENOTSUP);
	CHECK_EQ_INT(err.code, 1);
	CHECK_STREQ(err.msg, "cniVersion 0.3.1 does not allow CHECK (needs 0.4.0 or later)");
	CHECK_EQ_INT(weft_cni_command_check_version(WEFT_CNI_CMD_GC, WEFT_CNI_V1_0_0, &err), -ENOTSUP);
	CHECK_STREQ(err.msg, "cniVersion 1.0.0 does not allow GC (needs 1.1.0 or later)");
	CHECK_EQ_INT(weft_cni_command_check_version(WEFT_CNI_CMD_STATUS, WEFT_CNI_V1_1_0, &err), 0);
	weft_cni_error_clear(&err);
}

static void test_read_all(void)
{
	struct weft_cni_error err = {0};
	int p[2];
	char *buf = NULL;
	size_t len = 0;

	CHECK_EQ_INT(pipe(p), 0);
	CHECK_EQ_INT(write(p[1], "{\"a\":1}", 7), 7);
	close(p[1]);
	CHECK_EQ_INT(weft_cni_read_all(p[0], &buf, &len, &err), 0);
	CHECK_EQ_INT(len, 7);
	CHECK_STREQ(buf, "{\"a\":1}");
	close(p[0]);
	free(buf);
	CHECK(weft_cni_read_all(-1, &buf, &len, &err) < 0);
	CHECK_EQ_INT(err.code, 5);
	weft_cni_error_clear(&err);
}

TEST_MAIN(TEST(test_env_table), TEST(test_env_values), TEST(test_args_table), TEST(test_args_values),
	  TEST(test_bandwidth), TEST(test_names), TEST(test_command_versions), TEST(test_read_all))
