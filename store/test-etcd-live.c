/* test-etcd-live.c - checks of the etcd backend against a real etcd, driven
 * by the integration scripts tests/etcd-*.sh (which start etcd).
 *
 *   test-etcd-live URL basic              the whole API, watch included
 *   test-etcd-live URL isolation URL2     URL and URL2 (other prefixes) do not see each other
 *   test-etcd-live URL unreachable MAX_MS every operation fails within MAX_MS, clearly
 *   test-etcd-live URL stale REV          a watch from compacted REV reports -ESTALE
 *   test-etcd-live URL put KEY VALUE      one write (prints the revision)
 *   test-etcd-live URL get KEY            prints the value
 *   test-etcd-live URL watch PREFIX N MS  prints "ready", then N events; fails if they
 *                                         do not arrive within MS or out of order
 *   test-etcd-live URL catchup N KIB MS   writes N values of KIB KiB, then a watch from
 *                                         before the first one must deliver all N
 *                                         (one catch-up message of N x KIB x 4/3) within MS
 * Exit status 0 when every check passed.
 */
#include "store/store-backend.h" /* WEFT_STORE_KEY_MAX */
#include "lib/test.h"

#include <poll.h>

static struct weft_store *open_store(const char *url)
{
	struct weft_store *s = NULL;
	_cleanup_free_ char *err = NULL;
	int r = weft_store_open(url, &s, &err);
	if (r < 0) {
		fprintf(stderr, "open %s: %s\n", url, err);
		exit(2);
	}
	return s;
}

#define CHECK_OK(s, expr)                                                                      \
	do {                                                                                   \
		int _r = (expr);                                                               \
		if (_r < 0)                                                                    \
			fprintf(stderr, "%s: %s (%s)\n", #expr, strerror(-_r), weft_store_errmsg(s)); \
		CHECK_EQ_INT(_r, 0);                                                           \
	} while (0)

static int wait_event(struct weft_watch *w, struct weft_event *ev, int ms)
{
	return weft_watch_wait(w, ev, ms);
}

static int run_basic(const char *url)
{
	struct weft_store *s = open_store(url);
	struct weft_kv kv = {0};
	struct weft_kv_list l = {0};
	struct weft_watch *w = NULL, *w2 = NULL;
	struct weft_event ev = {0};
	int64_t r0, r1, r2, r3, rev;

	CHECK_STREQ(weft_store_backend(s), "etcd");
	CHECK_OK(s, weft_store_check(s));
	CHECK_OK(s, weft_store_revision(s, &r0));
	CHECK(r0 > 0);
	CHECK_OK(s, weft_store_watch(s, "/t/", 0, &w));

	CHECK_EQ_INT(weft_store_get(s, "/t/a", &kv), -ENOENT);
	CHECK(strstr(weft_store_errmsg(s), "/t/a") != NULL);
	CHECK_OK(s, weft_store_put(s, "/t/a", "one", 3, &r1));
	CHECK_EQ_INT(r1, r0 + 1);
	CHECK_OK(s, weft_store_get(s, "/t/a", &kv));
	CHECK_STREQ(kv.value, "one");
	CHECK_EQ_INT(kv.value_len, 3);
	CHECK_EQ_INT(kv.create_rev, r1);
	CHECK_EQ_INT(kv.mod_rev, r1);
	CHECK_EQ_INT(kv.version, 1);
	weft_kv_clear(&kv);

	/* Binary values with NULs survive the base64 round trip. */
	static const char bin[] = {0, 1, 2, (char)0xff, 0, 'x'};
	CHECK_OK(s, weft_store_put(s, "/t/bin", bin, sizeof(bin), NULL));
	CHECK_OK(s, weft_store_get(s, "/t/bin", &kv));
	CHECK_EQ_INT(kv.value_len, sizeof(bin));
	CHECK(memcmp(kv.value, bin, sizeof(bin)) == 0);
	weft_kv_clear(&kv);

	CHECK_EQ_INT(weft_store_create(s, "/t/a", "x", 1, NULL), -EEXIST);
	CHECK_OK(s, weft_store_create(s, "/t/b", "two", 3, &r2));
	CHECK_EQ_INT(weft_store_cas(s, "/t/a", "bad", 3, r1 + 100, NULL), -ECANCELED);
	CHECK_EQ_INT(weft_store_cas(s, "/t/a", "bad", 3, 0, NULL), -ECANCELED);
	CHECK_OK(s, weft_store_cas(s, "/t/a", "uno", 3, r1, &r3));
	CHECK_EQ_INT(r3, r2 + 1);
	CHECK_OK(s, weft_store_get(s, "/t/a", &kv));
	CHECK_EQ_INT(kv.version, 2);
	CHECK_EQ_INT(kv.create_rev, r1);
	CHECK_EQ_INT(kv.mod_rev, r3);
	weft_kv_clear(&kv);

	CHECK_OK(s, weft_store_list(s, "/t/", &l));
	CHECK_EQ_INT(l.n, 3);
	if (l.n == 3) {
		CHECK_STREQ(l.items[0].key, "/t/a");
		CHECK_STREQ(l.items[1].key, "/t/b");
		CHECK_STREQ(l.items[2].key, "/t/bin");
	}
	CHECK_EQ_INT(l.rev, r3);
	weft_kv_list_clear(&l);
	CHECK_OK(s, weft_store_list(s, "/t/b", &l));
	CHECK_EQ_INT(l.n, 2);
	weft_kv_list_clear(&l);
	CHECK_OK(s, weft_store_list(s, "/nothing/", &l));
	CHECK_EQ_INT(l.n, 0);
	weft_kv_list_clear(&l);

	/* A txn: both ops at one revision; a failing compare writes nothing. */
	struct weft_txn_cmp cmps[] = {{"/t/a", r3}, {"/t/c", 0}};
	struct weft_txn_op ops[] = {{WEFT_OP_PUT, "/t/c", "three", 5}, {WEFT_OP_DELETE, "/t/b", NULL, 0},
				    {WEFT_OP_DELETE, "/t/absent", NULL, 0}};
	CHECK_EQ_INT(weft_store_txn(s, cmps, 1, ops, 0, NULL), 0);
	struct weft_txn_cmp badcmp[] = {{"/t/a", r3}, {"/t/b", 0}};
	CHECK_EQ_INT(weft_store_txn(s, badcmp, 2, ops, 3, NULL), -ECANCELED);
	CHECK_OK(s, weft_store_txn(s, cmps, 2, ops, 3, &rev));
	CHECK_EQ_INT(rev, r3 + 1);
	CHECK_EQ_INT(weft_store_get(s, "/t/b", &kv), -ENOENT);

	CHECK_EQ_INT(weft_store_delete(s, "/t/nope", 0, NULL), -ENOENT);
	CHECK_EQ_INT(weft_store_delete(s, "/t/a", 1, NULL), -ECANCELED);
	CHECK_OK(s, weft_store_delete(s, "/t/a", r3, NULL));
	CHECK_OK(s, weft_store_delete(s, "/t/bin", 0, &rev));
	CHECK_EQ_INT(rev, r3 + 3);

	/* The watch saw everything, in order. */
	struct {
		enum weft_event_type type;
		const char *key;
		int64_t rev;
	} want[] = {
		{WEFT_EV_PUT, "/t/a", r1},	  {WEFT_EV_PUT, "/t/bin", r1 + 1}, {WEFT_EV_PUT, "/t/b", r2},
		{WEFT_EV_PUT, "/t/a", r3},	  {WEFT_EV_PUT, "/t/c", r3 + 1},   {WEFT_EV_DELETE, "/t/b", r3 + 1},
		{WEFT_EV_DELETE, "/t/a", r3 + 2}, {WEFT_EV_DELETE, "/t/bin", r3 + 3},
	};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		int r = wait_event(w, &ev, 3000);
		CHECK_EQ_INT(r, 1);
		if (r != 1)
			break;
		CHECK_EQ_INT(ev.type, want[i].type);
		CHECK_STREQ(ev.kv.key, want[i].key);
		CHECK_EQ_INT(ev.kv.mod_rev, want[i].rev);
		if (ev.type == WEFT_EV_DELETE)
			CHECK_EQ_INT(ev.kv.value_len, 0);
		if (i == 3) {
			CHECK_STREQ(ev.kv.value, "uno");
			CHECK_EQ_INT(ev.kv.version, 2);
		}
		weft_event_clear(&ev);
	}
	/* Nothing more, and next() does not block. */
	int64_t t0 = weft_now_ms();
	CHECK_EQ_INT(weft_watch_next(w, &ev), 0);
	CHECK(weft_now_ms() - t0 < 100);
	/* next() drained the fd it exposes. */
	struct pollfd p = {.fd = weft_watch_fd(w), .events = POLLIN};
	CHECK_EQ_INT(poll(&p, 1, 200), 0);

	/* A watch from a past revision replays history. */
	CHECK_OK(s, weft_store_watch(s, "/t/b", r2, &w2));
	CHECK_EQ_INT(wait_event(w2, &ev, 3000), 1);
	CHECK_STREQ(ev.kv.key, "/t/b");
	CHECK_EQ_INT(ev.kv.mod_rev, r2);
	weft_event_clear(&ev);
	CHECK_EQ_INT(wait_event(w2, &ev, 3000), 1);
	CHECK_STREQ(ev.kv.key, "/t/b");
	CHECK_EQ_INT(ev.type, WEFT_EV_DELETE);
	CHECK_EQ_INT(ev.kv.mod_rev, r3 + 1);
	weft_event_clear(&ev);
	weft_watch_free(w2);
	weft_watch_free(w);

	/* Keys too long are refused before any request. */
	char longkey[WEFT_STORE_KEY_MAX + 2];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = 0;
	CHECK_EQ_INT(weft_store_put(s, longkey, "", 0, NULL), -EINVAL);
	/* A large value (512 KiB) goes through. */
	size_t big = 512 * 1024;
	_cleanup_free_ char *bigv = wmalloc(big);
	for (size_t i = 0; i < big; i++)
		bigv[i] = (char)(i * 7);
	CHECK_OK(s, weft_store_put(s, "/t/big", bigv, big, NULL));
	CHECK_OK(s, weft_store_get(s, "/t/big", &kv));
	CHECK_EQ_INT(kv.value_len, big);
	CHECK(kv.value_len == big && memcmp(kv.value, bigv, big) == 0);
	weft_kv_clear(&kv);
	CHECK_OK(s, weft_store_delete(s, "/t/big", 0, NULL));
	CHECK_OK(s, weft_store_delete(s, "/t/c", 0, NULL));

	weft_store_close(s);
	printf("basic: %d checks, %d failed\n", test_checks, test_failures);
	return test_failures ? 1 : 0;
}

static int run_isolation(const char *url, const char *url2)
{
	struct weft_store *a = open_store(url), *b = open_store(url2);
	struct weft_kv_list l = {0};
	struct weft_kv kv = {0};
	struct weft_watch *wa = NULL;
	struct weft_event ev = {0};

	CHECK_OK(a, weft_store_watch(a, "", 0, &wa));
	CHECK_OK(a, weft_store_put(a, "/k", "a", 1, NULL));
	CHECK_OK(b, weft_store_put(b, "/k", "b", 1, NULL));
	CHECK_OK(b, weft_store_put(b, "/only-b", "b", 1, NULL));
	CHECK_OK(a, weft_store_get(a, "/k", &kv));
	CHECK_STREQ(kv.value, "a");
	weft_kv_clear(&kv);
	CHECK_OK(b, weft_store_get(b, "/k", &kv));
	CHECK_STREQ(kv.value, "b");
	weft_kv_clear(&kv);
	CHECK_EQ_INT(weft_store_get(a, "/only-b", &kv), -ENOENT);
	CHECK_OK(a, weft_store_list(a, "", &l));
	CHECK_EQ_INT(l.n, 1);
	if (l.n == 1)
		CHECK_STREQ(l.items[0].key, "/k");
	weft_kv_list_clear(&l);
	CHECK_OK(b, weft_store_list(b, "", &l));
	CHECK_EQ_INT(l.n, 2);
	weft_kv_list_clear(&l);
	/* a's watch sees only a's write, with the key as a knows it. */
	CHECK_EQ_INT(wait_event(wa, &ev, 3000), 1);
	CHECK_STREQ(ev.kv.key, "/k");
	CHECK_STREQ(ev.kv.value, "a");
	weft_event_clear(&ev);
	CHECK_EQ_INT(wait_event(wa, &ev, 500), 0);
	weft_watch_free(wa);
	CHECK_OK(a, weft_store_delete(a, "/k", 0, NULL));
	CHECK_OK(b, weft_store_get(b, "/k", &kv));
	weft_kv_clear(&kv);
	weft_store_close(a);
	weft_store_close(b);
	printf("isolation: %d checks, %d failed\n", test_checks, test_failures);
	return test_failures ? 1 : 0;
}

static void expect_unreachable(struct weft_store *s, const char *what, int r, int64_t t0, int64_t max_ms)
{
	int64_t took = weft_now_ms() - t0;
	printf("%s: %d (%s) after %lld ms: %s\n", what, r, strerror(-r), (long long)took, weft_store_errmsg(s));
	CHECK(r == -ETIMEDOUT || r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -EIO);
	CHECK(took <= max_ms);
	CHECK(strstr(weft_store_errmsg(s), "127.0.0.1:") != NULL);
}

static int run_unreachable(const char *url, int64_t max_ms)
{
	struct weft_store *s = open_store(url);
	struct weft_kv kv = {0};
	struct weft_kv_list l = {0};
	struct weft_watch *w = NULL;
	int64_t rev, t0;

	t0 = weft_now_ms();
	expect_unreachable(s, "get", weft_store_get(s, "/k", &kv), t0, max_ms);
	t0 = weft_now_ms();
	expect_unreachable(s, "list", weft_store_list(s, "/", &l), t0, max_ms);
	t0 = weft_now_ms();
	expect_unreachable(s, "put", weft_store_put(s, "/k", "v", 1, &rev), t0, max_ms);
	t0 = weft_now_ms();
	expect_unreachable(s, "cas", weft_store_cas(s, "/k", "v", 1, 5, &rev), t0, max_ms);
	t0 = weft_now_ms();
	expect_unreachable(s, "revision", weft_store_revision(s, &rev), t0, max_ms);
	t0 = weft_now_ms();
	expect_unreachable(s, "check", weft_store_check(s), t0, max_ms);
	t0 = weft_now_ms();
	expect_unreachable(s, "watch", weft_store_watch(s, "/", 0, &w), t0, max_ms);
	weft_store_close(s);
	printf("unreachable: %d checks, %d failed\n", test_checks, test_failures);
	return test_failures ? 1 : 0;
}

static int run_stale(const char *url, int64_t rev)
{
	struct weft_store *s = open_store(url);
	struct weft_watch *w = NULL;
	struct weft_event ev = {0};
	int r = weft_store_watch(s, "/", rev, &w);

	if (r == 0) {
		r = wait_event(w, &ev, 3000);
		weft_watch_free(w);
	}
	printf("watch from %lld: %d (%s) %s\n", (long long)rev, r, strerror(-r), weft_store_errmsg(s));
	CHECK_EQ_INT(r, -ESTALE);
	weft_store_close(s);
	return test_failures ? 1 : 0;
}

static int run_watch(const char *url, const char *prefix, int n, int ms)
{
	struct weft_store *s = open_store(url);
	struct weft_watch *w = NULL;
	struct weft_event ev = {0};
	int64_t deadline, last = 0;
	int got = 0;

	CHECK_OK(s, weft_store_watch(s, prefix, 0, &w));
	if (!w)
		return 1;
	printf("ready\n");
	fflush(stdout);
	deadline = weft_now_ms() + ms;
	while (got < n) {
		int64_t left = deadline - weft_now_ms();
		int r = left > 0 ? wait_event(w, &ev, (int)left) : 0;
		if (r <= 0) {
			fprintf(stderr, "watch: %s after %d events\n", r == 0 ? "timeout" : strerror(-r), got);
			break;
		}
		printf("%s %s %s %lld\n", ev.type == WEFT_EV_PUT ? "PUT" : "DELETE", ev.kv.key, ev.kv.value,
		       (long long)ev.kv.mod_rev);
		fflush(stdout);
		CHECK(ev.kv.mod_rev > last);
		last = ev.kv.mod_rev;
		weft_event_clear(&ev);
		got++;
	}
	CHECK_EQ_INT(got, n);
	weft_watch_free(w);
	weft_store_close(s);
	return test_failures ? 1 : 0;
}

/* A watch that starts in the past gets its history as one JSON line per
 * batch of up to 1000 revisions, megabytes long when the values are large.
 * The line must be assembled in time linear in its size, whatever the size
 * of the chunks curl hands over. */
static int run_catchup(const char *url, int n, size_t kib, int ms)
{
	struct weft_store *s = open_store(url);
	struct weft_watch *w = NULL;
	struct weft_event ev = {0};
	size_t len = kib * 1024;
	_cleanup_free_ char *v = wmalloc(len);
	int64_t first = 0, rev, t0, took;
	int got = 0;

	for (int i = 0; i < n; i++) {
		char key[64];
		/* Not compressible and different per value, like real data. */
		for (size_t j = 0; j < len; j++)
			v[j] = (char)('a' + (j * 7 + (size_t)i * 13 + j / 251) % 26);
		snprintf(key, sizeof(key), "/catchup/%03d", i);
		CHECK_OK(s, weft_store_put(s, key, v, len, &rev));
		if (i == 0)
			first = rev;
	}
	t0 = weft_now_ms();
	CHECK_OK(s, weft_store_watch(s, "/catchup/", first, &w));
	while (w && got < n) {
		int64_t left = t0 + ms - weft_now_ms();
		int r = left > 0 ? wait_event(w, &ev, (int)left) : 0;
		if (r <= 0) {
			fprintf(stderr, "catchup: %s after %d events\n", r == 0 ? "timeout" : strerror(-r), got);
			break;
		}
		CHECK_EQ_INT(ev.kv.mod_rev, first + got);
		CHECK_EQ_INT(ev.kv.value_len, len);
		weft_event_clear(&ev);
		got++;
	}
	took = weft_now_ms() - t0;
	printf("catchup: %d of %d events of %zu KiB in %lld ms (limit %d)\n", got, n, kib, (long long)took, ms);
	CHECK_EQ_INT(got, n);
	weft_watch_free(w);
	weft_store_close(s);
	return test_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct weft_store *s;
	int64_t v, rev, ms;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: %s URL basic|isolation URL2|unreachable MS|stale REV|put K V|get K|watch P N MS|catchup N KIB MS\n",
			argv[0]);
		return 2;
	}
	const char *url = argv[1], *mode = argv[2];
	if (streq(mode, "basic"))
		return run_basic(url);
	if (streq(mode, "isolation") && argc == 4)
		return run_isolation(url, argv[3]);
	if (streq(mode, "unreachable") && argc == 4 && weft_parse_int64(argv[3], 1, INT32_MAX, &v) == 0)
		return run_unreachable(url, v);
	if (streq(mode, "stale") && argc == 4 && weft_parse_int64(argv[3], 1, INT64_MAX, &v) == 0)
		return run_stale(url, v);
	if (streq(mode, "watch") && argc == 6 && weft_parse_int64(argv[4], 1, INT32_MAX, &v) == 0 &&
	    weft_parse_int64(argv[5], 1, INT32_MAX, &rev) == 0)
		return run_watch(url, argv[3], (int)v, (int)rev);
	if (streq(mode, "catchup") && argc == 6 && weft_parse_int64(argv[3], 1, 1000, &v) == 0 &&
	    weft_parse_int64(argv[4], 1, 1024, &rev) == 0 && weft_parse_int64(argv[5], 1, INT32_MAX, &ms) == 0)
		return run_catchup(url, (int)v, (size_t)rev, (int)ms);
	if (streq(mode, "put") && argc == 5) {
		s = open_store(url);
		r = weft_store_put(s, argv[3], argv[4], strlen(argv[4]), &rev);
		if (r < 0)
			fprintf(stderr, "put: %s\n", weft_store_errmsg(s));
		else
			printf("%lld\n", (long long)rev);
		weft_store_close(s);
		return r < 0;
	}
	if (streq(mode, "get") && argc == 4) {
		struct weft_kv kv = {0};
		s = open_store(url);
		r = weft_store_get(s, argv[3], &kv);
		if (r < 0)
			fprintf(stderr, "get: %s\n", weft_store_errmsg(s));
		else
			printf("%s\n", kv.value);
		weft_kv_clear(&kv);
		weft_store_close(s);
		return r < 0;
	}
	fprintf(stderr, "bad arguments\n");
	return 2;
}
