/* env.c - the CNI_* environment and CNI_ARGS; conventions in cni.h. */
#include "cni/cni-internal.h"

#include <strings.h>

static const char *const command_names[] = {
	[WEFT_CNI_CMD_ADD] = "ADD", [WEFT_CNI_CMD_DEL] = "DEL", [WEFT_CNI_CMD_CHECK] = "CHECK",
	[WEFT_CNI_CMD_VERSION] = "VERSION", [WEFT_CNI_CMD_GC] = "GC", [WEFT_CNI_CMD_STATUS] = "STATUS",
};

const char *weft_cni_command_str(enum weft_cni_command c)
{
	if ((size_t)c == 0 || (size_t)c >= ARRAY_SIZE(command_names))
		return "?";
	return command_names[c];
}

/* The value of NAME in envp, or NULL. The last occurrence wins, as with
 * getenv() on an environment built by appending. */
static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	const char *v = NULL;

	for (size_t i = 0; envp && envp[i]; i++)
		if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
			v = envp[i] + n + 1;
	return v;
}

static char *dup_nonempty(const char *s)
{
	return s && *s ? wstrdup(s) : NULL;
}

void weft_cni_env_clear(struct weft_cni_env *env)
{
	if (!env)
		return;
	free(env->container_id);
	free(env->netns);
	free(env->ifname);
	free(env->args);
	free(env->path);
	free(env->k8s_pod_namespace);
	free(env->k8s_pod_name);
	free(env->k8s_pod_infra_container_id);
	free(env->k8s_pod_uid);
	*env = (struct weft_cni_env){0};
}

/* Truthy values as the reference library's UnmarshallableBool reads them. */
static int parse_bool(const char *s, bool *out)
{
	if (strcasecmp(s, "1") == 0 || strcasecmp(s, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcasecmp(s, "0") == 0 || strcasecmp(s, "false") == 0) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

enum arg_key {
	ARG_NAMESPACE,
	ARG_POD_NAME,
	ARG_INFRA_ID,
	ARG_POD_UID,
	ARG_IP,
	ARG_MAC,
	ARG_INGRESS,
	ARG_EGRESS,
	ARG_IGNORE_UNKNOWN,
	ARG_COUNT,
};

static const char *const arg_names[ARG_COUNT] = {
	[ARG_NAMESPACE] = "K8S_POD_NAMESPACE",
	[ARG_POD_NAME] = "K8S_POD_NAME",
	[ARG_INFRA_ID] = "K8S_POD_INFRA_CONTAINER_ID",
	[ARG_POD_UID] = "K8S_POD_UID",
	[ARG_IP] = "IP",
	[ARG_MAC] = "MAC",
	[ARG_INGRESS] = "INGRESS_BANDWIDTH",
	[ARG_EGRESS] = "EGRESS_BANDWIDTH",
	[ARG_IGNORE_UNKNOWN] = "IgnoreUnknown",
};

static int args_fail(struct weft_cni_error *err, const char *fmt, ...) PRINTF_LIKE(2, 3);
static int args_fail(struct weft_cni_error *err, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = wvasprintf(fmt, ap);
	va_end(ap);
	return weft_cni_error_set(err, WEFT_CNI_ERR_INVALID_ENV, NULL, "CNI_ARGS: %s", msg);
}

static int parse_ips(const char *v, struct weft_cni_env *e, struct weft_cni_error *err)
{
	_cleanup_free_ char *copy = wstrdup(v);
	char *save = NULL;

	e->n_ips = 0;
	/* "IP=10.0.0.5" or, as host-local takes it, "IP=10.0.0.5,fd00::5". */
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct weft_cidr c;

		/* Prefixes are allowed and ignored: the pool decides. */
		if (weft_cidr_parse_host(tok, &c) < 0)
			return args_fail(err, "IP=%s: \"%s\" is not an IP address", v, tok);
		if (e->n_ips == WEFT_CNI_MAX_ARG_IPS)
			return args_fail(err, "IP=%s: more than %d addresses", v, WEFT_CNI_MAX_ARG_IPS);
		for (size_t i = 0; i < e->n_ips; i++)
			if (weft_ip_eq(&e->ips[i], &c.ip))
				return args_fail(err, "IP=%s: %s is listed twice", v, tok);
		e->ips[e->n_ips++] = c.ip;
	}
	return 0;
}

static int parse_bw(const char *key, const char *v, uint64_t *out, struct weft_cni_error *err)
{
	uint64_t bw;
	int r = weft_cni_parse_bandwidth(v, &bw);

	if (r == -EINVAL)
		return args_fail(err, "%s=%s: not a bandwidth (use bit/s with an optional k, M, G, T suffix, e.g. 10M)",
				 key, v);
	if (r < 0 || bw > WEFT_CNI_BANDWIDTH_MAX)
		return args_fail(err, "%s=%s: more than 1P bit/s", key, v);
	if (bw < WEFT_CNI_BANDWIDTH_MIN)
		return args_fail(err, "%s=%s: less than 1k bit/s", key, v);
	*out = bw;
	return 0;
}

int weft_cni_args_parse(const char *args, struct weft_cni_env *env, struct weft_cni_error *err)
{
	_cleanup_free_ char *copy = NULL;
	const char *val[ARG_COUNT] = {0};
	struct weft_cni_env e = {0};
	const char *unknown = NULL;
	char *save = NULL;

	if (!args || !*args)
		goto done;
	copy = wstrdup(args);
	for (char *pair = strtok_r(copy, ";", &save); pair; pair = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(pair, '=');
		size_t k;

		/* Empty pairs ("A=1;;B=2", a trailing ';') carry nothing. */
		if (!*pair)
			continue;
		if (!eq || eq == pair)
			return args_fail(err, "\"%s\" is not KEY=VALUE", pair);
		*eq = 0;
		if (strchr(eq + 1, '='))
			return args_fail(err, "\"%s=%s\" is not KEY=VALUE (a second '=')", pair, eq + 1);
		for (k = 0; k < ARG_COUNT; k++)
			if (streq(pair, arg_names[k]))
				break;
		if (k == ARG_COUNT) {
			if (!unknown)
				unknown = pair;
			continue;
		}
		/* A key given twice with the same value is harmless (several
		 * layers append to CNI_ARGS); two different values are
		 * ambiguous and refused rather than guessed. */
		if (val[k] && !streq(val[k], eq + 1))
			return args_fail(err, "%s is given twice with different values (\"%s\" and \"%s\")", pair,
					 val[k], eq + 1);
		val[k] = eq + 1;
	}

	if (val[ARG_IGNORE_UNKNOWN] && parse_bool(val[ARG_IGNORE_UNKNOWN], &e.ignore_unknown) < 0)
		return args_fail(err, "IgnoreUnknown=%s: expected 1, 0, true or false", val[ARG_IGNORE_UNKNOWN]);
	if (unknown && !e.ignore_unknown)
		return args_fail(err, "unknown key \"%s\" (set IgnoreUnknown=1 to ignore unknown keys)", unknown);
	if (val[ARG_IP] && *val[ARG_IP] && parse_ips(val[ARG_IP], &e, err) < 0)
		return -EINVAL;
	if (val[ARG_MAC] && *val[ARG_MAC]) {
		if (weft_cni_parse_mac(val[ARG_MAC], e.mac) < 0)
			return args_fail(err, "MAC=%s: not a MAC address (aa:bb:cc:dd:ee:ff)", val[ARG_MAC]);
		e.has_mac = true;
	}
	if (val[ARG_INGRESS] && *val[ARG_INGRESS] &&
	    parse_bw(arg_names[ARG_INGRESS], val[ARG_INGRESS], &e.ingress_bandwidth, err) < 0)
		return -EINVAL;
	if (val[ARG_EGRESS] && *val[ARG_EGRESS] &&
	    parse_bw(arg_names[ARG_EGRESS], val[ARG_EGRESS], &e.egress_bandwidth, err) < 0)
		return -EINVAL;

done:
	free(env->k8s_pod_namespace);
	free(env->k8s_pod_name);
	free(env->k8s_pod_infra_container_id);
	free(env->k8s_pod_uid);
	env->k8s_pod_namespace = dup_nonempty(val[ARG_NAMESPACE]);
	env->k8s_pod_name = dup_nonempty(val[ARG_POD_NAME]);
	env->k8s_pod_infra_container_id = dup_nonempty(val[ARG_INFRA_ID]);
	env->k8s_pod_uid = dup_nonempty(val[ARG_POD_UID]);
	memcpy(env->ips, e.ips, sizeof(e.ips));
	env->n_ips = e.n_ips;
	env->has_mac = e.has_mac;
	memcpy(env->mac, e.mac, sizeof(e.mac));
	env->ingress_bandwidth = e.ingress_bandwidth;
	env->egress_bandwidth = e.egress_bandwidth;
	env->ignore_unknown = e.ignore_unknown;
	return 0;
}

int weft_cni_env_parse(char *const *envp, struct weft_cni_env *out, struct weft_cni_error *err)
{
	struct weft_cni_env e = {0};
	const char *cmd = env_get(envp, "CNI_COMMAND"), *why = NULL;
	bool need_id, need_netns, need_ifname;
	size_t c;

	if (!cmd || !*cmd)
		return weft_cni_error_set(err, WEFT_CNI_ERR_INVALID_ENV, NULL,
					  "CNI_COMMAND is not set (ADD, DEL, CHECK, VERSION, GC or STATUS)");
	for (c = 1; c < ARRAY_SIZE(command_names); c++)
		if (streq(cmd, command_names[c]))
			break;
	if (c == ARRAY_SIZE(command_names))
		return weft_cni_error_set(err, WEFT_CNI_ERR_INVALID_ENV, NULL,
					  "CNI_COMMAND: \"%.32s\" is not ADD, DEL, CHECK, VERSION, GC or STATUS", cmd);
	e.command = (enum weft_cni_command)c;

	need_id = need_ifname = e.command == WEFT_CNI_CMD_ADD || e.command == WEFT_CNI_CMD_CHECK ||
				e.command == WEFT_CNI_CMD_DEL;
	need_netns = e.command == WEFT_CNI_CMD_ADD || e.command == WEFT_CNI_CMD_CHECK;

	e.container_id = dup_nonempty(env_get(envp, "CNI_CONTAINERID"));
	e.netns = dup_nonempty(env_get(envp, "CNI_NETNS"));
	e.ifname = dup_nonempty(env_get(envp, "CNI_IFNAME"));
	e.args = dup_nonempty(env_get(envp, "CNI_ARGS"));
	e.path = dup_nonempty(env_get(envp, "CNI_PATH"));

	if (need_id && !e.container_id) {
		weft_cni_error_set(err, WEFT_CNI_ERR_INVALID_ENV, NULL, "CNI_CONTAINERID is not set (required for %s)", cmd);
		goto fail;
	}
	if (e.container_id && weft_cni_check_container_id(e.container_id, &why) < 0) {
		weft_cni_error_set(err, WEFT_CNI_ERR_INVALID_ENV, e.container_id, "CNI_CONTAINERID: \"%.64s\" %s",
				   e.container_id, why);
		goto fail;
	}
	if (need_netns && !e.netns) {
		weft_cni_error_set(err, WEFT_CNI_ERR_INVALID_ENV, NULL, "CNI_NETNS is not set (required for %s)", cmd);
		goto fail;
	}
	if (need_ifname && !e.ifname) {
		weft_cni_error_set(err, WEFT_CNI_ERR_INVALID_ENV, NULL, "CNI_IFNAME is not set (required for %s)", cmd);
		goto fail;
	}
	if (e.ifname && weft_cni_check_ifname(e.ifname, &why) < 0) {
		weft_cni_error_set(err, WEFT_CNI_ERR_INVALID_ENV, NULL, "CNI_IFNAME: \"%.64s\" %s", e.ifname, why);
		goto fail;
	}
	if (weft_cni_args_parse(e.args, &e, err) < 0)
		goto fail;
	*out = e;
	return 0;
fail:
	weft_cni_env_clear(&e);
	return -EINVAL;
}

int weft_cni_command_check_version(enum weft_cni_command c, enum weft_cni_version v, struct weft_cni_error *err)
{
	enum weft_cni_version min = WEFT_CNI_V0_3_0;

	if (c == WEFT_CNI_CMD_CHECK)
		min = WEFT_CNI_V0_4_0;
	else if (c == WEFT_CNI_CMD_GC || c == WEFT_CNI_CMD_STATUS)
		min = WEFT_CNI_V1_1_0;
	if (v >= min)
		return 0;
	weft_cni_error_set(err, WEFT_CNI_ERR_INCOMPATIBLE_VERSION, NULL, "cniVersion %s does not allow %s (needs %s or later)",
			   weft_cni_version_str(v), weft_cni_command_str(c), weft_cni_version_str(min));
	return -ENOTSUP;
}

#define READ_MAX (1u << 20)

int weft_cni_read_all(int fd, char **out, size_t *len, struct weft_cni_error *err)
{
	struct weft_buf b = {0};
	char chunk[8192];

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			weft_buf_free(&b);
			weft_cni_error_set(err, WEFT_CNI_ERR_IO, NULL, "reading the network configuration: %s", strerror(e));
			return -e;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > READ_MAX) {
			weft_buf_free(&b);
			weft_cni_error_set(err, WEFT_CNI_ERR_IO, NULL, "the network configuration is larger than %u bytes",
					   READ_MAX);
			return -EFBIG;
		}
		weft_buf_append(&b, chunk, (size_t)n);
	}
	*len = b.len;
	*out = weft_buf_steal(&b);
	return 0;
}
