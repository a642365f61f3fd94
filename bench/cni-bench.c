/* cni-bench.c - CNI ADD and DEL latency of one plugin, measured the way a
 * runtime calls it: one process per call, the network configuration on
 * stdin, the result read from stdout.
 *
 *   cni-bench -n N [-w WARMUP] -p PLUGIN -c CONFFILE -N NETNS_FMT
 *             [-P CNI_PATH] [-i IFNAME] [-x ID_PREFIX]
 *
 * Run it inside the node namespace. For pod i (0..N-1) the container id
 * is ID_PREFIX<i> and the namespace path is NETNS_FMT with %d replaced by
 * i. It first runs WARMUP ADD/DEL pairs on pod 0 (not counted), then ADD
 * for every pod, then DEL for every pod, in order. Each DEL gets the
 * pod's ADD result as prevResult, as libcni does.
 *
 * Each call is timed from just before posix_spawn() to just after
 * waitpid(), so process creation and exec are included; that cost is the
 * same for every plugin measured this way. Output (microseconds):
 *   add N p50 p99 mean
 *   del N p50 p99 mean
 *   adddel N p50 p99 mean      (per pod: its ADD plus its DEL)
 * Exit 0, or 1 with the failing call's output on stderr.
 */
#include "lib/json.h"
#include "lib/util.h"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

struct opts {
	const char *plugin, *conf_path, *netns_fmt, *cni_path, *ifname, *id_prefix;
};

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void report(const char *op, const int64_t *in, size_t n)
{
	int64_t *ns = wmemdup(in, n * sizeof(*ns));
	double sum = 0;

	qsort(ns, n, sizeof(*ns), cmp_i64);
	for (size_t i = 0; i < n; i++)
		sum += (double)ns[i];
	/* Nearest-rank percentiles, as store-bench. */
	size_t p50 = (n * 50 + 99) / 100, p99 = (n * 99 + 99) / 100;
	printf("%s %zu %.1f %.1f %.1f\n", op, n, ns[p50 ? p50 - 1 : 0] / 1e3, ns[p99 ? p99 - 1 : 0] / 1e3,
	       sum / (double)n / 1e3);
	fflush(stdout);
	free(ns);
}

/* Run the plugin once. stdin gets conf; *out gets its stdout (malloc'ed).
 * Returns the elapsed nanoseconds, or -1 after a message on stderr. */
static int64_t call(const struct opts *o, const char *cmd, int pod, const char *conf, char **out)
{
	char env_cmd[64], env_id[300], env_ns[512], env_if[64], env_path[1024];
	char *envp[] = {env_cmd, env_id, env_ns, env_if, env_path, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	char *argv[] = {(char *)o->plugin, NULL};
	int in[2], outp[2], errp[2];
	posix_spawn_file_actions_t fa;
	struct weft_buf ob = {0}, eb = {0};
	pid_t pid;
	int status, r;

	snprintf(env_cmd, sizeof(env_cmd), "CNI_COMMAND=%s", cmd);
	snprintf(env_id, sizeof(env_id), "CNI_CONTAINERID=%s%d", o->id_prefix, pod);
	snprintf(env_ns, sizeof(env_ns), "CNI_NETNS=");
	/* The format is the user's own command-line argument. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(env_ns + strlen(env_ns), sizeof(env_ns) - strlen(env_ns), o->netns_fmt, pod);
#pragma GCC diagnostic pop
	snprintf(env_if, sizeof(env_if), "CNI_IFNAME=%s", o->ifname);
	snprintf(env_path, sizeof(env_path), "CNI_PATH=%s", o->cni_path);

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		perror("cni-bench: pipe");
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);

	int64_t t0 = weft_now_ns();
	r = posix_spawn(&pid, o->plugin, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(outp[1]);
	close(errp[1]);
	if (r != 0) {
		fprintf(stderr, "cni-bench: spawn %s: %s\n", o->plugin, strerror(r));
		close(in[1]);
		close(outp[0]);
		close(errp[0]);
		return -1;
	}
	/* The configuration is far below the pipe's capacity: write it whole,
	 * then read both outputs until the plugin closes them. */
	size_t len = strlen(conf), off = 0;
	while (off < len) {
		ssize_t w = write(in[1], conf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break; /* the plugin exited without reading: its status says why */
		off += (size_t)w;
	}
	close(in[1]);
	struct pollfd pf[2] = {{.fd = outp[0], .events = POLLIN}, {.fd = errp[0], .events = POLLIN}};
	int open_fds = 2;
	while (open_fds > 0) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int k = 0; k < 2; k++) {
			if (pf[k].fd < 0 || !(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[4096];
			ssize_t n = read(pf[k].fd, buf, sizeof(buf));
			if (n > 0) {
				weft_buf_append(k ? &eb : &ob, buf, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(pf[k].fd);
				pf[k].fd = -1;
				open_fds--;
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	int64_t dt = weft_now_ns() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "cni-bench: %s %s pod %d failed (status %d): %s%s\n", o->plugin, cmd, pod,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1, ob.len ? ob.data : "", eb.len ? eb.data : "");
		weft_buf_free(&ob);
		weft_buf_free(&eb);
		return -1;
	}
	weft_buf_free(&eb);
	if (ob.len == 0)
		weft_buf_append(&ob, "", 0);
	*out = weft_buf_steal(&ob);
	return dt;
}

/* The DEL configuration: the network configuration plus prevResult. */
static char *del_conf(const cJSON *conf, const char *add_result)
{
	cJSON *c = cJSON_Duplicate(conf, true), *prev = NULL;

	if (!c)
		abort();
	if (add_result && *add_result && weft_json_parse(add_result, strlen(add_result), &prev) == 0)
		cJSON_AddItemToObject(c, "prevResult", prev);
	char *s = weft_json_print(c);
	cJSON_Delete(c);
	return s;
}

int main(int argc, char **argv)
{
	struct opts o = {.cni_path = "/usr/lib/cni", .ifname = "eth0", .id_prefix = "cnibench"};
	int64_t n = 200, warmup = 5;
	int c;

	weft_json_init();
	while ((c = getopt(argc, argv, "n:w:p:c:N:P:i:x:h")) != -1) {
		switch (c) {
		case 'n':
			if (weft_parse_int64(optarg, 1, 100000, &n) < 0)
				n = 0;
			break;
		case 'w':
			if (weft_parse_int64(optarg, 0, 1000, &warmup) < 0)
				warmup = -1;
			break;
		case 'p': o.plugin = optarg; break;
		case 'c': o.conf_path = optarg; break;
		case 'N': o.netns_fmt = optarg; break;
		case 'P': o.cni_path = optarg; break;
		case 'i': o.ifname = optarg; break;
		case 'x': o.id_prefix = optarg; break;
		default:
			fprintf(stderr, "usage: cni-bench -n N [-w WARMUP] -p PLUGIN -c CONF -N NETNS_FMT "
					"[-P CNI_PATH] [-i IFNAME] [-x ID_PREFIX]\n");
			return 2;
		}
	}
	if (n < 1 || n > 100000 || warmup < 0 || !o.plugin || !o.conf_path || !o.netns_fmt ||
	    !strstr(o.netns_fmt, "%d")) {
		fprintf(stderr, "cni-bench: need -n 1..100000, -p, -c and -N with %%d\n");
		return 2;
	}

	_cleanup_free_ char *text = NULL;
	struct weft_buf tb = {0};
	FILE *f = fopen(o.conf_path, "re");
	if (!f) {
		fprintf(stderr, "cni-bench: %s: %s\n", o.conf_path, strerror(errno));
		return 1;
	}
	char buf[4096];
	size_t got;
	while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
		weft_buf_append(&tb, buf, got);
	fclose(f);
	text = weft_buf_steal(&tb);
	cJSON *conf = NULL;
	if (weft_json_parse(text, strlen(text), &conf) < 0) {
		fprintf(stderr, "cni-bench: %s: not JSON\n", o.conf_path);
		return 1;
	}

	int64_t *add = wcalloc((size_t)n, sizeof(*add)), *del = wcalloc((size_t)n, sizeof(*del));
	int64_t *sum = wcalloc((size_t)n, sizeof(*sum));
	char **results = wcalloc((size_t)n, sizeof(*results));
	int ret = 1;

	for (int64_t i = 0; i < warmup; i++) {
		char *res = NULL, *dres = NULL;
		if (call(&o, "ADD", 0, text, &res) < 0)
			goto out;
		_cleanup_free_ char *dc = del_conf(conf, res);
		free(res);
		if (call(&o, "DEL", 0, dc, &dres) < 0)
			goto out;
		free(dres);
	}
	for (int64_t i = 0; i < n; i++) {
		add[i] = call(&o, "ADD", (int)i, text, &results[i]);
		if (add[i] < 0)
			goto out;
	}
	for (int64_t i = 0; i < n; i++) {
		char *dres = NULL;
		_cleanup_free_ char *dc = del_conf(conf, results[i]);
		del[i] = call(&o, "DEL", (int)i, dc, &dres);
		free(dres);
		if (del[i] < 0)
			goto out;
		sum[i] = add[i] + del[i];
	}
	report("add", add, (size_t)n);
	report("del", del, (size_t)n);
	report("adddel", sum, (size_t)n);
	ret = 0;
out:
	for (int64_t i = 0; i < n; i++)
		free(results[i]);
	free(results);
	free(add);
	free(del);
	free(sum);
	cJSON_Delete(conf);
	return ret;
}
