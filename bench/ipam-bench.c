/* ipam-bench.c - IPAM allocation and release rate with parallel clients,
 * through weft_ipam exactly as the CNI path uses it, for one store URL.
 *
 *   ipam-bench [-c CLIENTS] [-n PER_CLIENT] [-k NODES] [-b BLOCKSIZE] URL
 *
 * Writes the IPPool "bench" (10.96.0.0/16, blockSize BLOCKSIZE, default 26)
 * into an otherwise empty store, then forks CLIENTS processes (default 8),
 * each with its own store connection and IPAM context. Client c plays node
 * "node<c mod NODES>" (default NODES = CLIENTS: every client its own node,
 * as 8 nodes starting pods at once; NODES = 1 makes all clients contend
 * for the same blocks). Every client allocates PER_CLIENT addresses (default
 * 250), one handle each, like CNI ADDs; all start together and the rate is
 * the total over the wall time from the start to the last client's end.
 * Then every address is checked distinct, and all are released by handle
 * in the same way (the DEL rate).
 *
 * Output (times in microseconds, rates per second):
 *   alloc TOTAL SECONDS RATE p50 p99
 *   release TOTAL SECONDS RATE p50 p99
 * Exit 0, or 1 after a message.
 *
 * The clients are forked before this process opens a store connection
 * (the pool is written by a child too), so that no thread of the etcd
 * backend exists at fork time.
 */
#include "ipam/ipam.h"
#include "lib/json.h"
#include "model/resource.h"

#include <getopt.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

struct shared {
	int64_t start_ns;  /* set by the parent when it releases the clients */
	int64_t end_ns[64];
	struct weft_ip ips[];
};

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int cmp_ip(const void *a, const void *b)
{
	return weft_ip_cmp(a, b);
}

static _Noreturn void die(const char *what, struct weft_ipam *m, int r)
{
	fprintf(stderr, "ipam-bench: %s: %s\n", what, m && *weft_ipam_errmsg(m) ? weft_ipam_errmsg(m) : strerror(-r));
	_exit(1);
}

static void open_all(const char *url, struct weft_store **s, struct weft_ipam **m)
{
	_cleanup_free_ char *err = NULL;
	int r = weft_store_open(url, s, &err);
	if (r < 0) {
		fprintf(stderr, "ipam-bench: open %s: %s\n", url, err ? err : strerror(-r));
		_exit(1);
	}
	r = weft_ipam_new(*s, m);
	if (r < 0)
		die("ipam", NULL, r);
}

static void write_pool(const char *url, int blocksize)
{
	struct weft_store *s = NULL;
	struct weft_ipam *m = NULL;
	struct weft_resource *rs = NULL;
	struct weft_kv_list l = {0};
	size_t n = 0;
	_cleanup_free_ char *err = NULL;
	_cleanup_free_ char *manifest = wasprintf(
		"{\"kind\": \"IPPool\", \"metadata\": {\"name\": \"bench\"},"
		" \"spec\": {\"cidr\": \"10.96.0.0/16\", \"blockSize\": %d}}", blocksize);
	int r;

	open_all(url, &s, &m);
	r = weft_store_list(s, WEFT_IPAM_PREFIX, &l);
	if (r < 0 || l.n > 0) {
		fprintf(stderr, "ipam-bench: %s must hold no IPAM records\n", url);
		_exit(1);
	}
	weft_kv_list_clear(&l);
	r = weft_manifest_parse(manifest, strlen(manifest), &rs, &n, &err);
	if (r < 0) {
		fprintf(stderr, "ipam-bench: pool: %s\n", err ? err : strerror(-r));
		_exit(1);
	}
	_cleanup_free_ char *key = weft_resource_key(&rs[0]), *val = weft_resource_encode(&rs[0], false);
	r = weft_store_put(s, key, val, strlen(val), NULL);
	if (r < 0) {
		fprintf(stderr, "ipam-bench: put %s: %s\n", key, weft_store_errmsg(s));
		_exit(1);
	}
	weft_resources_free(rs, n);
	weft_ipam_free(m);
	weft_store_close(s);
}

static char *handle_of(int client, long i)
{
	return wasprintf("bench%d-%ld:eth0", client, i);
}

/* One client: wait for the start signal, then run its operations, each
 * timed into lat[]. */
static void client(const char *url, int c, int nodes, long per, bool release, int go_fd, struct shared *sh,
		   int64_t *lat)
{
	struct weft_store *s = NULL;
	struct weft_ipam *m = NULL;
	char node[32], cid[64], go;
	int r;

	open_all(url, &s, &m);
	snprintf(node, sizeof(node), "node%d", c % nodes);
	/* Wait until every client is connected and the parent says go. */
	if (read(go_fd, &go, 1) < 0)
		_exit(1);
	for (long i = 0; i < per; i++) {
		_cleanup_free_ char *h = handle_of(c, i);
		int64_t t0 = weft_now_ns();
		if (!release) {
			snprintf(cid, sizeof(cid), "bench%d-%ld", c, i);
			struct weft_ipam_request req = {
				.handle = h, .node = node,
				.attrs = {.node = node, .container_id = cid, .ifname = "eth0",
					  .namespace = "bench", .pod = cid},
			};
			r = weft_ipam_auto_assign(m, &req, &sh->ips[(size_t)c * (size_t)per + (size_t)i]);
			if (r < 0)
				die("auto_assign", m, r);
		} else {
			r = weft_ipam_release_handle(m, h);
			if (r != 1)
				die("release_handle", m, r < 0 ? r : -ENOENT);
		}
		lat[i] = weft_now_ns() - t0;
	}
	sh->end_ns[c] = weft_now_ns();
	weft_ipam_free(m);
	weft_store_close(s);
	_exit(0);
}

static int run_phase(const char *name, const char *url, int clients, int nodes, long per, bool release,
		     struct shared *sh, int64_t *lat)
{
	int go[2];
	pid_t pids[64];
	int failed = 0;

	if (pipe(go) < 0) {
		perror("pipe");
		return 1;
	}
	for (int c = 0; c < clients; c++) {
		pids[c] = fork();
		if (pids[c] < 0) {
			perror("fork");
			return 1;
		}
		if (pids[c] == 0) {
			close(go[1]);
			client(url, c, nodes, per, release, go[0], sh, lat + (size_t)c * (size_t)per);
		}
	}
	close(go[0]);
	/* Give the clients a moment to connect; they then block on the pipe,
	 * and closing it releases them all at once. */
	usleep(300 * 1000);
	sh->start_ns = weft_now_ns();
	close(go[1]);
	for (int c = 0; c < clients; c++) {
		int st;
		while (waitpid(pids[c], &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	}
	if (failed) {
		fprintf(stderr, "ipam-bench: %s: %d client(s) failed\n", name, failed);
		return 1;
	}
	int64_t end = 0;
	for (int c = 0; c < clients; c++)
		if (sh->end_ns[c] > end)
			end = sh->end_ns[c];
	size_t total = (size_t)clients * (size_t)per;
	double secs = (double)(end - sh->start_ns) / 1e9;
	qsort(lat, total, sizeof(*lat), cmp_i64);
	size_t p50 = (total * 50 + 99) / 100, p99 = (total * 99 + 99) / 100;
	printf("%s %zu %.3f %.1f %.1f %.1f\n", name, total, secs, (double)total / secs, lat[p50 - 1] / 1e3,
	       lat[p99 - 1] / 1e3);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	int64_t clients = 8, nodes = 0, per = 250, blocksize = 26;
	int opt;

	weft_json_init();
	while ((opt = getopt(argc, argv, "c:n:k:b:h")) != -1) {
		switch (opt) {
		case 'c':
			if (weft_parse_int64(optarg, 1, 64, &clients) < 0)
				goto usage;
			break;
		case 'n':
			if (weft_parse_int64(optarg, 1, 100000, &per) < 0)
				goto usage;
			break;
		case 'k':
			if (weft_parse_int64(optarg, 1, 64, &nodes) < 0)
				goto usage;
			break;
		case 'b':
			if (weft_parse_int64(optarg, 20, 32, &blocksize) < 0)
				goto usage;
			break;
		default:
			goto usage;
		}
	}
	if (optind + 1 != argc)
		goto usage;
	if (!nodes)
		nodes = clients;
	if (clients * per > 60000) {
		fprintf(stderr, "ipam-bench: CLIENTS x PER_CLIENT must fit the /16 pool (at most 60000)\n");
		return 2;
	}
	const char *url = argv[optind];
	size_t total = (size_t)(clients * per);

	signal(SIGPIPE, SIG_IGN);
	struct shared *sh = mmap(NULL, sizeof(*sh) + total * sizeof(struct weft_ip), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int64_t *lat = mmap(NULL, total * sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || lat == MAP_FAILED) {
		perror("mmap");
		return 1;
	}

	pid_t pid = fork();
	if (pid == 0) {
		write_pool(url, (int)blocksize);
		_exit(0);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 1;

	if (run_phase("alloc", url, (int)clients, (int)nodes, per, false, sh, lat))
		return 1;
	/* No address may have been handed out twice. */
	struct weft_ip *sorted = wmemdup(sh->ips, total * sizeof(*sorted));
	qsort(sorted, total, sizeof(*sorted), cmp_ip);
	for (size_t i = 1; i < total; i++)
		if (weft_ip_eq(&sorted[i - 1], &sorted[i])) {
			char ips[WEFT_IP_STRLEN];
			fprintf(stderr, "ipam-bench: %s handed out twice\n", weft_ip_str(&sorted[i], ips, sizeof(ips)));
			return 1;
		}
	free(sorted);
	if (run_phase("release", url, (int)clients, (int)nodes, per, true, sh, lat))
		return 1;
	return 0;
usage:
	fprintf(stderr, "usage: ipam-bench [-c CLIENTS] [-n PER_CLIENT] [-k NODES] [-b BLOCKSIZE] URL\n");
	return 2;
}
