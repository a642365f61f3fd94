/* store-bench.c - datastore latency: put, get, compare-and-swap and watch
 * delivery (a write in this process -> the event in a watcher in another
 * process), p50/p99/mean over N operations, for one store URL.
 *
 *   store-bench [-n N] [-s VALUE_BYTES] URL
 *
 * Output, one line per operation (times in microseconds):
 *   op N p50 p99 mean
 * Exit status 0 on success; the first failure ends the run with a message.
 *
 * The watcher is forked before this process opens its store, so that no
 * thread (the etcd backend's watch threads, curl's resolver) exists at
 * fork time. The writer stamps each value with CLOCK_MONOTONIC, which is
 * one clock for every process of the machine; the watcher answers with the
 * delivery time, and the writer waits for that answer before the next
 * write, so that one measurement never queues behind another.
 */
#include "store/store.h"

#include <getopt.h>
#include <signal.h>
#include <sys/wait.h>

#define BENCH_PREFIX "/weft-bench/"

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void report(const char *op, int64_t *ns, size_t n)
{
	double sum = 0;

	qsort(ns, n, sizeof(*ns), cmp_i64);
	for (size_t i = 0; i < n; i++)
		sum += (double)ns[i];
	/* Nearest-rank percentiles. */
	size_t p50 = (n * 50 + 99) / 100, p99 = (n * 99 + 99) / 100;
	printf("%s %zu %.1f %.1f %.1f\n", op, n, ns[p50 ? p50 - 1 : 0] / 1e3, ns[p99 ? p99 - 1 : 0] / 1e3,
	       sum / (double)n / 1e3);
	fflush(stdout);
}

static int die(struct weft_store *s, const char *what, int r)
{
	fprintf(stderr, "store-bench: %s: %s (%s)\n", what, strerror(-r), s ? weft_store_errmsg(s) : "");
	exit(1);
}

static struct weft_store *open_or_die(const char *url)
{
	struct weft_store *s = NULL;
	char *err = NULL;
	int r = weft_store_open(url, &s, &err);
	if (r < 0) {
		fprintf(stderr, "store-bench: open %s: %s\n", url, err ? err : strerror(-r));
		exit(1);
	}
	return s;
}

static bool read_full(int fd, void *p, size_t n)
{
	return read(fd, p, n) == (ssize_t)n;
}

/* The watcher process: watch BENCH_PREFIX "w/", write "ready", then for
 * every event the delivery time minus the stamp in the value. */
static void watcher(const char *url, int out_fd)
{
	struct weft_store *s = open_or_die(url);
	struct weft_watch *w = NULL;
	struct weft_event ev = {0};
	int64_t ready = 0;
	int r;

	if ((r = weft_store_watch(s, BENCH_PREFIX "w/", 0, &w)) < 0)
		die(s, "watch", r);
	if (write(out_fd, &ready, sizeof(ready)) != sizeof(ready))
		_exit(1);
	for (;;) {
		r = weft_watch_wait(w, &ev, -1);
		if (r < 0)
			die(s, "watch", r);
		if (r == 0)
			continue;
		int64_t now = weft_now_ns(), stamp = 0;
		if (ev.type == WEFT_EV_PUT && weft_parse_int64(ev.kv.value, 0, INT64_MAX, &stamp) == 0) {
			int64_t lat = now - stamp;
			if (write(out_fd, &lat, sizeof(lat)) != sizeof(lat))
				break; /* the writer is done */
		}
		weft_event_clear(&ev);
	}
	weft_watch_free(w);
	weft_store_close(s);
	_exit(0);
}

int main(int argc, char **argv)
{
	size_t n = 1000, vsize = 100;
	int64_t v, rev = 0;
	int opt, r, pfd[2];

	while ((opt = getopt(argc, argv, "n:s:h")) != -1) {
		switch (opt) {
		case 'n':
			if (weft_parse_int64(optarg, 1, 10000000, &v) < 0)
				goto usage;
			n = (size_t)v;
			break;
		case 's':
			if (weft_parse_int64(optarg, 1, 65536, &v) < 0)
				goto usage;
			vsize = (size_t)v;
			break;
		default:
			goto usage;
		}
	}
	if (optind + 1 != argc)
		goto usage;
	const char *url = argv[optind];

	signal(SIGPIPE, SIG_IGN);
	if (pipe(pfd) < 0) {
		perror("pipe");
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		close(pfd[0]);
		watcher(url, pfd[1]);
	}
	close(pfd[1]);

	struct weft_store *s = open_or_die(url);
	int64_t *ns = wcalloc(n, sizeof(int64_t));
	char *value = wmalloc(vsize + 1);
	char key[64];
	memset(value, 'v', vsize);
	value[vsize] = 0;

	/* put: 100 keys in turn, so that the store holds more than one. */
	for (size_t i = 0; i < n + n / 10; i++) {
		snprintf(key, sizeof(key), BENCH_PREFIX "p/%03zu", i % 100);
		int64_t t = weft_now_ns();
		if ((r = weft_store_put(s, key, value, vsize, &rev)) < 0)
			die(s, "put", r);
		/* The first tenth warms up connections and caches. */
		if (i >= n / 10)
			ns[i - n / 10] = weft_now_ns() - t;
	}
	report("put", ns, n);

	for (size_t i = 0; i < n + n / 10; i++) {
		struct weft_kv kv = {0};
		snprintf(key, sizeof(key), BENCH_PREFIX "p/%03zu", i % 100);
		int64_t t = weft_now_ns();
		if ((r = weft_store_get(s, key, &kv)) < 0)
			die(s, "get", r);
		if (i >= n / 10)
			ns[i - n / 10] = weft_now_ns() - t;
		weft_kv_clear(&kv);
	}
	report("get", ns, n);

	/* cas: one key, each swap expecting the revision of the previous one. */
	if ((r = weft_store_put(s, BENCH_PREFIX "c", value, vsize, &rev)) < 0)
		die(s, "put", r);
	for (size_t i = 0; i < n + n / 10; i++) {
		int64_t t = weft_now_ns();
		if ((r = weft_store_cas(s, BENCH_PREFIX "c", value, vsize, rev, &rev)) < 0)
			die(s, "cas", r);
		if (i >= n / 10)
			ns[i - n / 10] = weft_now_ns() - t;
	}
	report("cas", ns, n);

	/* watch: write -> event in the other process. */
	int64_t ready;
	if (!read_full(pfd[0], &ready, sizeof(ready))) {
		fprintf(stderr, "store-bench: the watcher did not start\n");
		return 1;
	}
	for (size_t i = 0; i < n + n / 10; i++) {
		char stamp[32];
		int64_t lat;
		snprintf(stamp, sizeof(stamp), "%lld", (long long)weft_now_ns());
		if ((r = weft_store_put(s, BENCH_PREFIX "w/k", stamp, strlen(stamp), NULL)) < 0)
			die(s, "put", r);
		if (!read_full(pfd[0], &lat, sizeof(lat))) {
			fprintf(stderr, "store-bench: the watcher died\n");
			return 1;
		}
		if (i >= n / 10)
			ns[i - n / 10] = lat;
	}
	report("watch", ns, n);

	close(pfd[0]);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	/* Leave the store as it was found. */
	struct weft_kv_list l = {0};
	if (weft_store_list(s, BENCH_PREFIX, &l) == 0)
		for (size_t i = 0; i < l.n; i++)
			weft_store_delete(s, l.items[i].key, 0, NULL);
	weft_kv_list_clear(&l);
	weft_store_close(s);
	free(ns);
	free(value);
	return 0;
usage:
	fprintf(stderr, "usage: store-bench [-n N] [-s VALUE_BYTES] URL\n");
	return 2;
}
