/* plugin-common.c - the shared main of the weft and weft-ipam plugins; see
 * plugin.h. */
#include "cni/cni.h"
#include "cni/plugin.h"
#include "felix/dataplane.h"
#include "lib/json.h"
#include "lib/log.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

extern char **environ;

static int print_error(struct weft_cni_error *e, enum weft_cni_version v)
{
	_cleanup_free_ char *s = weft_cni_error_json(e, v);

	fputs(s, stdout);
	fputc('\n', stdout);
	return 1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Send the request and read the whole answer. Returns 0 and the answer,
 * -ECONNREFUSED/-ENOENT/... when weftd is unreachable, -ETIMEDOUT, or
 * -EPIPE when the connection closed without an answer. */
static int transact(const char *path, const char *req, char **answer, size_t *alen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = WEFT_PLUGIN_TIMEOUT_S};
	_cleanup_close_ int fd = -1;
	struct weft_buf b = {0};
	char buf[65536];
	int r;

	if (weft_strlcpy(sa.sun_path, path, sizeof(sa.sun_path)) < 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	r = write_all(fd, req, strlen(req));
	if (r < 0)
		return r == -EAGAIN ? -ETIMEDOUT : r;
	if (shutdown(fd, SHUT_WR) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = errno == EAGAIN ? -ETIMEDOUT : -errno;
			weft_buf_free(&b);
			return r;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > WEFT_PLUGIN_MAX_ANSWER) {
			weft_buf_free(&b);
			return -EMSGSIZE;
		}
		weft_buf_append(&b, buf, (size_t)n);
	}
	if (b.len == 0) {
		weft_buf_free(&b);
		return -EPIPE;
	}
	*alen = b.len;
	*answer = weft_buf_steal(&b);
	return 0;
}

static char *build_request(const char *command, enum weft_plugin_kind kind, const char *config)
{
	_cleanup_json_ cJSON *req = cJSON_CreateObject();
	cJSON *env;

	cJSON_AddStringToObject(req, "command", command);
	cJSON_AddStringToObject(req, "plugin", kind == WEFT_PLUGIN_IPAM ? "weft-ipam" : "weft");
	env = cJSON_AddObjectToObject(req, "env");
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!startswith(*e, "CNI_") || !eq)
			continue;
		_cleanup_free_ char *name = wstrndup(*e, (size_t)(eq - *e));
		if (!cJSON_GetObjectItemCaseSensitive(env, name))
			cJSON_AddStringToObject(env, name, eq + 1);
	}
	cJSON_AddStringToObject(req, "config", config);
	return weft_json_print(req);
}

/* DEL without weftd: remove what the kernel holds, by computed names. */
static int local_del(enum weft_plugin_kind kind, const struct weft_cni_config *cfg, const struct weft_cni_env *env,
		     const char *why)
{
	_cleanup_free_ char *err = NULL;
	int r = 0;

	if (kind == WEFT_PLUGIN_MAIN) {
		if (cfg->mode == WEFT_CNI_MODE_MACVLAN)
			r = env->netns ? weft_dp_macvlan_del(env->netns, env->ifname, &err) : 0;
		else
			r = weft_dp_routed_del(env->container_id, env->ifname, &err);
	}
	if (r < 0)
		fprintf(stderr, "weft: DEL %s:%s: weftd unreachable (%s) and local cleanup failed: %s\n",
			env->container_id, env->ifname, why, err ? err : strerror(-r));
	else
		fprintf(stderr,
			"weft: DEL %s:%s: weftd unreachable (%s); kernel objects removed locally, addresses are "
			"reclaimed when weftd is back\n",
			env->container_id, env->ifname, why);
	/* DEL succeeds regardless: the runtime must be able to remove the
	 * container, and everything left over is reclaimed later. */
	return 0;
}

/* weft-ipam runs under other main plugins, whose config's top level is
 * theirs: the parser does not interpret weft's keys there. A peek at a
 * top-level "weftd_socket" (an absolute path that fits a socket address)
 * still lets a config point weft-ipam at a non-default weftd. */
static char *ipam_socket(const char *text, size_t len)
{
	_cleanup_json_ cJSON *doc = NULL;
	const char *s;

	if (weft_json_parse(text, len, &doc) == 0 && weft_json_get_string(doc, "weftd_socket", &s) == 0 && s[0] == '/' &&
	    strlen(s) < sizeof(((struct sockaddr_un *)0)->sun_path))
		return wstrdup(s);
	return wstrdup(WEFT_CNI_DEFAULT_SOCKET);
}

int weft_plugin_main(enum weft_plugin_kind kind)
{
	const char *prog = kind == WEFT_PLUGIN_IPAM ? "weft-ipam" : "weft";
	const char *command = getenv("CNI_COMMAND");
	struct weft_cni_error err = {0};
	struct weft_cni_env env = {0};
	_cleanup_cni_config_ struct weft_cni_config *cfg = NULL;
	_cleanup_free_ char *text = NULL, *req = NULL, *answer = NULL, *socket_path = NULL;
	_cleanup_json_ cJSON *ans = NULL;
	const char *output;
	int64_t code;
	size_t len = 0, alen = 0;
	int r, rc;

	weft_log_init(prog, WEFT_LOG_ERROR);
	weft_json_init();
	if (command && streq(command, "VERSION")) {
		_cleanup_free_ char *v = weft_cni_version_json();
		puts(v);
		return 0;
	}
	/* Everything is checked here first: cheap, and a proper CNI error
	 * even when weftd is down. weftd checks it again. */
	r = weft_cni_env_parse(environ, &env, &err);
	if (r < 0) {
		rc = print_error(&err, 0);
		goto out;
	}
	r = weft_cni_read_all(STDIN_FILENO, &text, &len, &err);
	if (r >= 0)
		r = weft_cni_config_parse(text, len, kind == WEFT_PLUGIN_IPAM ? WEFT_CNI_PARSE_IPAM_ONLY : 0, &cfg, &err);
	if (r >= 0)
		r = weft_cni_command_check_version(env.command, cfg->version, &err);
	if (r < 0) {
		rc = print_error(&err, cfg ? cfg->version : 0);
		goto out;
	}

	if (kind == WEFT_PLUGIN_IPAM)
		socket_path = ipam_socket(text, len);
	else
		socket_path = wstrdup(cfg->weftd_socket);
	req = build_request(weft_cni_command_str(env.command), kind, text);
	r = transact(socket_path, req, &answer, &alen);
	if (r >= 0) {
		if (weft_json_parse(answer, alen, &ans) < 0 || weft_json_get_string(ans, "output", &output) < 0 ||
		    weft_json_get_int64(ans, "exit", &code) < 0 || code < 0 || code > 255)
			r = -EBADMSG;
	}
	if (r < 0) {
		char why[256];

		if (r == -EBADMSG)
			snprintf(why, sizeof(why), "weftd at %s answered nonsense", socket_path);
		else if (r == -EPIPE)
			snprintf(why, sizeof(why), "weftd at %s closed the connection without an answer (busy?)",
				 socket_path);
		else
			snprintf(why, sizeof(why), "weftd is not reachable at %s: %s", socket_path, strerror(-r));
		switch (env.command) {
		case WEFT_CNI_CMD_DEL:
			rc = local_del(kind, cfg, &env, why);
			goto out;
		case WEFT_CNI_CMD_STATUS:
			(void)weft_cni_error_set(&err, WEFT_CNI_ERR_NOT_AVAILABLE, NULL, "%s", why);
			break;
		default:
			if (r == -EBADMSG)
				(void)weft_cni_error_set(&err, WEFT_CNI_ERR_INTERNAL, NULL, "%s", why);
			else
				(void)weft_cni_error_set(&err, WEFT_CNI_ERR_TRY_AGAIN_LATER, NULL,
							 "%s; try again later", why);
		}
		rc = print_error(&err, cfg->version);
		goto out;
	}
	fputs(output, stdout);
	rc = (int)code;
out:
	fflush(stdout);
	weft_cni_error_clear(&err);
	weft_cni_env_clear(&env);
	return rc;
}
