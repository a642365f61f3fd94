/* test-store-contract.c - the datastore contract, for any backend.
 *
 *   test-store-contract URL        (or WEFT_TEST_STORE=URL test-store-contract)
 *
 * Every key lives under a prefix of its own (WEFT_TEST_PREFIX, else
 * "/weft-test/contract-PID-TIME/"), so the store need not be empty, and the
 * keys are deleted at the end. What it does assume: nobody else writes to
 * the store while it runs (the revision checks expect exactly +1 per write).
 * Only behaviour promised by store.h is checked; file-only behaviour is in
 * test-store-file.c.
 */
#include "lib/test.h"
#include "store/store.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

static const char *g_url;
static char g_prefix[256];
static struct weft_store *g_store;

/* K("name"): the test key prefix + name, in one of a few rotating buffers. */
static const char *K(const char *name)
{
	static char ring[16][2048];
	static unsigned next;
	char *b = ring[next++ % ARRAY_SIZE(ring)];
	snprintf(b, sizeof(ring[0]), "%s%s", g_prefix, name);
	return b;
}

static int64_t put_s(const char *key, const char *value)
{
	int64_t rev = -1;
	int r = weft_store_put(g_store, key, value, strlen(value), &rev);
	if (r < 0)
		fprintf(stderr, "put %s: %s (%s)\n", key, strerror(-r), weft_store_errmsg(g_store));
	CHECK_EQ_INT(r, 0);
	return rev;
}

static int64_t del_s(const char *key)
{
	int64_t rev = -1;
	int r = weft_store_delete(g_store, key, 0, &rev);
	CHECK_EQ_INT(r, 0);
	return rev;
}

static int64_t cur_rev(void)
{
	int64_t rev = -1;
	CHECK_EQ_INT(weft_store_revision(g_store, &rev), 0);
	return rev;
}

/* Wait up to 3 s for the next event and check it. */
static void expect_event(struct weft_watch *w, enum weft_event_type type, const char *key, int64_t rev,
			 const char *value)
{
	struct weft_event ev = {0};
	int r = weft_watch_wait(w, &ev, 3000);

	CHECK_EQ_INT(r, 1);
	if (r != 1) {
		fprintf(stderr, "  expected event %s rev %lld\n", key, (long long)rev);
		return;
	}
	CHECK_EQ_INT(ev.type, type);
	CHECK_STREQ(ev.kv.key, key);
	CHECK_EQ_INT(ev.kv.mod_rev, rev);
	if (value) {
		CHECK_EQ_INT(ev.kv.value_len, strlen(value));
		CHECK_STREQ(ev.kv.value, value);
	}
	weft_event_clear(&ev);
}

static void expect_no_event(struct weft_watch *w, int ms)
{
	struct weft_event ev = {0};
	int r = weft_watch_wait(w, &ev, ms);
	CHECK_EQ_INT(r, 0);
	if (r == 1)
		fprintf(stderr, "  unexpected event %s rev %lld\n", ev.kv.key, (long long)ev.kv.mod_rev);
	weft_event_clear(&ev);
}

static void test_get_put(void)
{
	struct weft_kv kv = {0};
	int64_t r0, r1, r2;

	CHECK_EQ_INT(weft_store_get(g_store, K("gp/absent"), &kv), -ENOENT);
	CHECK(kv.key == NULL && kv.value == NULL); /* untouched on failure */
	r0 = cur_rev();
	r1 = put_s(K("gp/a"), "1");
	CHECK_EQ_INT(r1, r0 + 1);
	CHECK_EQ_INT(weft_store_get(g_store, K("gp/a"), &kv), 0);
	CHECK_STREQ(kv.key, K("gp/a"));
	CHECK_STREQ(kv.value, "1");
	CHECK_EQ_INT(kv.value_len, 1);
	CHECK_EQ_INT(kv.create_rev, r1);
	CHECK_EQ_INT(kv.mod_rev, r1);
	CHECK_EQ_INT(kv.version, 1);
	weft_kv_clear(&kv);

	r2 = put_s(K("gp/a"), "22");
	CHECK_EQ_INT(r2, r1 + 1);
	CHECK_EQ_INT(weft_store_get(g_store, K("gp/a"), &kv), 0);
	CHECK_STREQ(kv.value, "22");
	CHECK_EQ_INT(kv.create_rev, r1);
	CHECK_EQ_INT(kv.mod_rev, r2);
	CHECK_EQ_INT(kv.version, 2);
	weft_kv_clear(&kv);
	CHECK_EQ_INT(cur_rev(), r2);
	CHECK_EQ_INT(weft_store_put(g_store, K("gp/b"), "x", 1, NULL), 0);
	CHECK_EQ_INT(cur_rev(), r2 + 1);
	CHECK_STREQ(weft_store_backend(g_store), strncmp(g_url, "file:", 5) == 0 ? "file" : "etcd");
}

static void test_revision_monotonic(void)
{
	int64_t prev = cur_rev(), rev = -7;

	for (int i = 0; i < 10; i++) {
		int64_t r = put_s(K("mono/k"), i % 2 ? "odd" : "even");
		CHECK_EQ_INT(r, prev + 1);
		prev = r;
	}
	CHECK_EQ_INT(cur_rev(), prev);
	/* Failed writes do not move the revision, nor touch *rev. */
	CHECK_EQ_INT(weft_store_cas(g_store, K("mono/k"), "x", 1, prev - 1, &rev), -ECANCELED);
	CHECK_EQ_INT(weft_store_create(g_store, K("mono/k"), "x", 1, &rev), -EEXIST);
	CHECK_EQ_INT(rev, -7);
	CHECK_EQ_INT(cur_rev(), prev);
}

static void test_list(void)
{
	/* Inserted out of order; byte order is what a list returns. */
	static const char *const keys[] = {"l/b", "l/\xc3\xa9", "l/a/x", "l/ab", "l/Z", "l/a", "l/a-", "lx"};
	static const char *const all[] = {"l/Z", "l/a", "l/a-", "l/a/x", "l/ab", "l/b", "l/\xc3\xa9"};
	static const char *const under_a[] = {"l/a", "l/a-", "l/a/x", "l/ab"};
	struct weft_kv_list l = {0};
	int64_t last = 0;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		char v[64];
		snprintf(v, sizeof(v), "v-%s", keys[i]);
		last = put_s(K(keys[i]), v);
	}
	CHECK(weft_store_list(g_store, K("l/"), &l) >= 0);
	CHECK_EQ_INT(l.n, ARRAY_SIZE(all));
	CHECK(l.rev >= last);
	for (size_t i = 0; i < l.n && i < ARRAY_SIZE(all); i++) {
		char v[64];
		snprintf(v, sizeof(v), "v-%s", all[i]);
		CHECK_STREQ(l.items[i].key, K(all[i]));
		CHECK_STREQ(l.items[i].value, v);
		CHECK(l.items[i].mod_rev > 0 && l.items[i].mod_rev <= last);
		CHECK_EQ_INT(l.items[i].version, 1);
	}
	weft_kv_list_clear(&l);

	CHECK(weft_store_list(g_store, K("l/a"), &l) >= 0);
	CHECK_EQ_INT(l.n, ARRAY_SIZE(under_a));
	for (size_t i = 0; i < l.n && i < ARRAY_SIZE(under_a); i++)
		CHECK_STREQ(l.items[i].key, K(under_a[i]));
	weft_kv_list_clear(&l);

	CHECK(weft_store_list(g_store, K("l/a/"), &l) >= 0);
	CHECK_EQ_INT(l.n, 1);
	if (l.n == 1)
		CHECK_STREQ(l.items[0].key, K("l/a/x"));
	weft_kv_list_clear(&l);

	CHECK(weft_store_list(g_store, K("l/nothing/"), &l) >= 0);
	CHECK_EQ_INT(l.n, 0);
	CHECK(l.rev >= last);
	weft_kv_list_clear(&l);

	/* The whole test prefix: sorted, everything there. */
	CHECK(weft_store_list(g_store, g_prefix, &l) >= 0);
	CHECK(l.n >= ARRAY_SIZE(keys));
	for (size_t i = 1; i < l.n; i++)
		CHECK(strcmp(l.items[i - 1].key, l.items[i].key) < 0);
	weft_kv_list_clear(&l);
}

static void test_create(void)
{
	struct weft_kv kv = {0};
	int64_t rev = -1, rev2 = -7;

	CHECK_EQ_INT(weft_store_create(g_store, K("cr/k"), "v1", 2, &rev), 0);
	CHECK(rev > 0);
	CHECK_EQ_INT(weft_store_create(g_store, K("cr/k"), "v2", 2, &rev2), -EEXIST);
	CHECK(weft_store_errmsg(g_store)[0] != 0);
	CHECK_EQ_INT(rev2, -7);
	CHECK_EQ_INT(weft_store_get(g_store, K("cr/k"), &kv), 0);
	CHECK_STREQ(kv.value, "v1");
	CHECK_EQ_INT(kv.create_rev, rev);
	weft_kv_clear(&kv);
	/* After a delete the key can be created again, with a new create_rev. */
	del_s(K("cr/k"));
	CHECK_EQ_INT(weft_store_create(g_store, K("cr/k"), "v3", 2, &rev2), 0);
	CHECK_EQ_INT(weft_store_get(g_store, K("cr/k"), &kv), 0);
	CHECK_EQ_INT(kv.create_rev, rev2);
	CHECK_EQ_INT(kv.version, 1);
	weft_kv_clear(&kv);
}

static void test_cas(void)
{
	struct weft_kv kv = {0};
	int64_t c1 = -1, c2 = -1, rev = -7, before;

	CHECK_EQ_INT(weft_store_cas(g_store, K("cas/k"), "x", 1, 0, &c1), 0); /* 0 = must be absent */
	CHECK_EQ_INT(weft_store_cas(g_store, K("cas/k"), "x", 1, 0, &rev), -ECANCELED);
	CHECK_EQ_INT(weft_store_cas(g_store, K("cas/k"), "y", 1, c1, &c2), 0);
	CHECK_EQ_INT(c2, c1 + 1);
	before = cur_rev();
	CHECK_EQ_INT(weft_store_cas(g_store, K("cas/k"), "z", 1, c1, &rev), -ECANCELED);
	CHECK_EQ_INT(weft_store_cas(g_store, K("cas/absent"), "z", 1, c1, &rev), -ECANCELED);
	CHECK_EQ_INT(rev, -7);
	CHECK_EQ_INT(cur_rev(), before);
	CHECK_EQ_INT(weft_store_get(g_store, K("cas/k"), &kv), 0);
	CHECK_STREQ(kv.value, "y");
	CHECK_EQ_INT(kv.mod_rev, c2);
	CHECK_EQ_INT(kv.version, 2);
	weft_kv_clear(&kv);
	CHECK_EQ_INT(weft_store_get(g_store, K("cas/absent"), &kv), -ENOENT);
}

static void test_delete(void)
{
	struct weft_kv kv = {0};
	int64_t m, rev = -7, d;

	put_s(K("del/k"), "v");
	d = del_s(K("del/k"));
	CHECK_EQ_INT(d, cur_rev());
	CHECK_EQ_INT(weft_store_get(g_store, K("del/k"), &kv), -ENOENT);
	CHECK_EQ_INT(weft_store_delete(g_store, K("del/k"), 0, &rev), -ENOENT);
	CHECK_EQ_INT(rev, -7);

	m = put_s(K("del/k"), "v");
	CHECK_EQ_INT(weft_store_delete(g_store, K("del/k"), m - 1, &rev), -ECANCELED);
	CHECK_EQ_INT(weft_store_get(g_store, K("del/k"), &kv), 0);
	weft_kv_clear(&kv);
	CHECK_EQ_INT(weft_store_delete(g_store, K("del/k"), m, &rev), 0);
	CHECK_EQ_INT(rev, m + 1);
	CHECK_EQ_INT(weft_store_get(g_store, K("del/k"), &kv), -ENOENT);
	CHECK_EQ_INT(weft_store_delete(g_store, K("del/absent"), 5, NULL), -ECANCELED);
}

static void test_txn(void)
{
	struct weft_kv kv = {0};
	int64_t ra, rb, R = -1, rev = -7;

	ra = put_s(K("t/a"), "A");
	rb = put_s(K("t/b"), "B");
	{
		struct weft_txn_cmp cmps[] = {{K("t/a"), ra}, {K("t/b"), rb}, {K("t/new"), 0}};
		struct weft_txn_op ops[] = {
			{WEFT_OP_PUT, K("t/a"), "A2", 2},
			{WEFT_OP_PUT, K("t/new"), "N", 1},
			{WEFT_OP_DELETE, K("t/b"), NULL, 0},
		};
		CHECK_EQ_INT(weft_store_txn(g_store, cmps, 3, ops, 3, &R), 0);
	}
	CHECK_EQ_INT(R, rb + 1); /* one revision for the whole txn */
	CHECK_EQ_INT(cur_rev(), R);
	CHECK_EQ_INT(weft_store_get(g_store, K("t/a"), &kv), 0);
	CHECK_STREQ(kv.value, "A2");
	CHECK_EQ_INT(kv.mod_rev, R);
	CHECK_EQ_INT(kv.create_rev, ra);
	CHECK_EQ_INT(kv.version, 2);
	weft_kv_clear(&kv);
	CHECK_EQ_INT(weft_store_get(g_store, K("t/new"), &kv), 0);
	CHECK_EQ_INT(kv.mod_rev, R);
	CHECK_EQ_INT(kv.create_rev, R);
	CHECK_EQ_INT(kv.version, 1);
	weft_kv_clear(&kv);
	CHECK_EQ_INT(weft_store_get(g_store, K("t/b"), &kv), -ENOENT);

	/* One compare fails: nothing at all is written. */
	{
		struct weft_txn_cmp cmps[] = {{K("t/a"), R}, {K("t/new"), R + 100}};
		struct weft_txn_op ops[] = {
			{WEFT_OP_PUT, K("t/a"), "bad", 3},
			{WEFT_OP_DELETE, K("t/new"), NULL, 0},
			{WEFT_OP_PUT, K("t/other"), "bad", 3},
		};
		CHECK_EQ_INT(weft_store_txn(g_store, cmps, 2, ops, 3, &rev), -ECANCELED);
		CHECK_EQ_INT(rev, -7);
	}
	CHECK_EQ_INT(cur_rev(), R);
	CHECK_EQ_INT(weft_store_get(g_store, K("t/a"), &kv), 0);
	CHECK_STREQ(kv.value, "A2");
	weft_kv_clear(&kv);
	CHECK_EQ_INT(weft_store_get(g_store, K("t/new"), &kv), 0);
	weft_kv_clear(&kv);
	CHECK_EQ_INT(weft_store_get(g_store, K("t/other"), &kv), -ENOENT);

	/* A compare on an absent key that wants it present fails too. */
	{
		struct weft_txn_cmp cmp = {K("t/absent"), R};
		struct weft_txn_op op = {WEFT_OP_PUT, K("t/other"), "bad", 3};
		CHECK_EQ_INT(weft_store_txn(g_store, &cmp, 1, &op, 1, NULL), -ECANCELED);
	}
	/* Deleting an absent key inside a txn is a no-op; the rest applies. */
	{
		struct weft_txn_op ops[] = {
			{WEFT_OP_DELETE, K("t/absent"), NULL, 0},
			{WEFT_OP_PUT, K("t/c"), "C", 1},
		};
		CHECK_EQ_INT(weft_store_txn(g_store, NULL, 0, ops, 2, &rev), 0);
		CHECK_EQ_INT(rev, R + 1);
		CHECK_EQ_INT(weft_store_get(g_store, K("t/c"), &kv), 0);
		CHECK_EQ_INT(kv.mod_rev, R + 1);
		weft_kv_clear(&kv);
	}
	/* Compares that hold and nothing to change: success. */
	{
		struct weft_txn_cmp cmp = {K("t/c"), R + 1};
		struct weft_txn_op op = {WEFT_OP_DELETE, K("t/absent"), NULL, 0};
		CHECK_EQ_INT(weft_store_txn(g_store, &cmp, 1, &op, 1, NULL), 0);
		CHECK_EQ_INT(weft_store_txn(g_store, &cmp, 1, NULL, 0, NULL), 0);
	}
	/* Two ops on one key are refused. */
	{
		struct weft_txn_op ops[] = {
			{WEFT_OP_PUT, K("t/c"), "1", 1},
			{WEFT_OP_DELETE, K("t/c"), NULL, 0},
		};
		CHECK_EQ_INT(weft_store_txn(g_store, NULL, 0, ops, 2, NULL), -EINVAL);
	}
}

static void test_watch_from_now(void)
{
	struct weft_watch *w = NULL;
	struct weft_event ev[2] = {{0}};
	int64_t r1, r2, r3, r4 = -1;

	CHECK_EQ_INT(weft_store_watch(g_store, K("w/"), 0, &w), 0);
	if (!w)
		return;
	r1 = put_s(K("w/a"), "1");
	put_s(K("wx/outside"), "no"); /* shares the string prefix "w" but not "w/" */
	r2 = put_s(K("w/b"), "2");
	r3 = del_s(K("w/a"));
	{
		struct weft_txn_op ops[] = {{WEFT_OP_PUT, K("w/c"), "c", 1}, {WEFT_OP_PUT, K("w/d"), "d", 1}};
		CHECK_EQ_INT(weft_store_txn(g_store, NULL, 0, ops, 2, &r4), 0);
	}
	expect_event(w, WEFT_EV_PUT, K("w/a"), r1, "1");
	expect_event(w, WEFT_EV_PUT, K("w/b"), r2, "2");
	expect_event(w, WEFT_EV_DELETE, K("w/a"), r3, "");
	/* The two events of the txn, both at r4 (their order is not promised). */
	for (int i = 0; i < 2; i++) {
		CHECK_EQ_INT(weft_watch_wait(w, &ev[i], 3000), 1);
		CHECK_EQ_INT(ev[i].kv.mod_rev, r4);
		CHECK_EQ_INT(ev[i].type, WEFT_EV_PUT);
		CHECK_EQ_INT(ev[i].kv.create_rev, r4);
		CHECK_EQ_INT(ev[i].kv.version, 1);
	}
	if (ev[0].kv.key && ev[1].kv.key) {
		bool cd = streq(ev[0].kv.key, K("w/c")) && streq(ev[1].kv.key, K("w/d"));
		bool dc = streq(ev[0].kv.key, K("w/d")) && streq(ev[1].kv.key, K("w/c"));
		CHECK(cd || dc);
	}
	weft_event_clear(&ev[0]);
	weft_event_clear(&ev[1]);
	expect_no_event(w, 200);

	/* A put after an idle period still arrives, with its revisions. */
	r1 = put_s(K("w/b"), "22");
	{
		struct weft_event e = {0};
		CHECK_EQ_INT(weft_watch_wait(w, &e, 3000), 1);
		CHECK_STREQ(e.kv.key, K("w/b"));
		CHECK_EQ_INT(e.kv.mod_rev, r1);
		CHECK_EQ_INT(e.kv.create_rev, r2);
		CHECK_EQ_INT(e.kv.version, 2);
		weft_event_clear(&e);
	}
	weft_watch_free(w);
}

static void test_watch_from_old_rev(void)
{
	struct weft_watch *w = NULL;
	int64_t h1, h2, h3, h4, h5;

	h1 = put_s(K("h/a"), "1");
	h2 = put_s(K("h/b"), "2");
	h3 = del_s(K("h/a"));
	h4 = put_s(K("h/a"), "3");

	CHECK_EQ_INT(weft_store_watch(g_store, K("h/"), h2, &w), 0);
	if (w) {
		expect_event(w, WEFT_EV_PUT, K("h/b"), h2, "2");
		expect_event(w, WEFT_EV_DELETE, K("h/a"), h3, "");
		expect_event(w, WEFT_EV_PUT, K("h/a"), h4, "3");
		h5 = put_s(K("h/b"), "5");
		expect_event(w, WEFT_EV_PUT, K("h/b"), h5, "5");
		expect_no_event(w, 100);
		weft_watch_free(w);
	}

	/* A narrower prefix from further back. */
	w = NULL;
	CHECK_EQ_INT(weft_store_watch(g_store, K("h/a"), h1, &w), 0);
	if (w) {
		expect_event(w, WEFT_EV_PUT, K("h/a"), h1, "1");
		expect_event(w, WEFT_EV_DELETE, K("h/a"), h3, "");
		expect_event(w, WEFT_EV_PUT, K("h/a"), h4, "3");
		expect_no_event(w, 100);
		weft_watch_free(w);
	}
}

/* The event-loop protocol: poll the fd, then next() until 0. A watch from
 * an old revision must make its fd readable without any new write. */
static void test_watch_fd_protocol(void)
{
	struct weft_watch *w = NULL;
	int64_t f1, f2;
	int got = 0, r;

	f1 = put_s(K("fd/a"), "1");
	f2 = put_s(K("fd/b"), "2");
	CHECK_EQ_INT(weft_store_watch(g_store, K("fd/"), f1, &w), 0);
	if (!w)
		return;
	for (int64_t deadline = weft_now_ms() + 3000; got < 2 && weft_now_ms() < deadline;) {
		struct pollfd p = {.fd = weft_watch_fd(w), .events = POLLIN};
		CHECK(p.fd >= 0);
		r = poll(&p, 1, 3000);
		CHECK(r >= 0);
		if (r <= 0)
			break;
		for (;;) {
			struct weft_event ev = {0};
			r = weft_watch_next(w, &ev);
			CHECK(r >= 0);
			if (r <= 0)
				break;
			CHECK_EQ_INT(ev.kv.mod_rev, got == 0 ? f1 : f2);
			weft_event_clear(&ev);
			got++;
		}
	}
	CHECK_EQ_INT(got, 2);
	/* Drained: right after next() returned 0 the fd must not be readable
	 * (else an event loop spins). A backend may still wake up now and then
	 * (a poll timer), so only "readable every single time" fails. */
	int still_readable = 0;
	for (int i = 0; i < 5; i++) {
		struct weft_event ev = {0};
		struct pollfd p = {.fd = weft_watch_fd(w), .events = POLLIN};
		CHECK_EQ_INT(weft_watch_next(w, &ev), 0);
		if (poll(&p, 1, 0) > 0)
			still_readable++;
		usleep(1000);
	}
	CHECK(still_readable < 5);
	weft_watch_free(w);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* A write by another process reaches our watch within 100 ms. */
static void test_watch_other_process(void)
{
	enum { ROUNDS = 20 };
	struct weft_watch *w = NULL;
	int go[2], back[2];
	int64_t lat_ack[ROUNDS], lat_call[ROUNDS];
	pid_t pid;
	int n = 0, status = 0;

	CHECK_EQ_INT(weft_store_watch(g_store, K("xp/"), 0, &w), 0);
	if (!w || pipe2(go, O_CLOEXEC) < 0 || pipe2(back, O_CLOEXEC) < 0)
		return;
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* A fresh process (exec, so that no state of a backend that uses
		 * threads is inherited) with its own handle: go on stdin, replies
		 * on stdout. */
		if (dup2(go[0], 0) < 0 || dup2(back[1], 1) < 0)
			_exit(2);
		execl("/proc/self/exe", "test-store-contract", "--writer", g_url, K("xp/k"), (char *)NULL);
		_exit(2);
	}
	close(go[0]);
	close(back[1]);
	for (int i = 0; i < ROUNDS; i++) {
		struct weft_event ev = {0};
		int64_t msg[3], t;
		if (write(go[1], "g", 1) != 1)
			break;
		int r = weft_watch_wait(w, &ev, 3000);
		t = weft_now_ns();
		CHECK_EQ_INT(r, 1);
		if (read(back[0], msg, sizeof(msg)) != sizeof(msg)) {
			CHECK(!"child reply");
			weft_event_clear(&ev);
			break;
		}
		if (r == 1) {
			CHECK_EQ_INT(ev.kv.mod_rev, msg[2]);
			lat_ack[n] = t > msg[1] ? t - msg[1] : 0;
			lat_call[n] = t - msg[0];
			n++;
		}
		weft_event_clear(&ev);
		usleep((useconds_t)(rand() % 20000));
	}
	close(go[1]);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(back[0]);
	weft_watch_free(w);
	if (n) {
		qsort(lat_ack, (size_t)n, sizeof(int64_t), cmp_i64);
		qsort(lat_call, (size_t)n, sizeof(int64_t), cmp_i64);
		fprintf(stderr,
			"  cross-process watch latency over %d writes: after the writer's ack median %.3f ms max "
			"%.3f ms; from the start of the put median %.3f ms max %.3f ms\n",
			n, lat_ack[n / 2] / 1e6, lat_ack[n - 1] / 1e6, lat_call[n / 2] / 1e6, lat_call[n - 1] / 1e6);
		CHECK(lat_ack[n - 1] < 100 * 1000000LL);
	}
}

static void test_binary_values(void)
{
	static const char bin[] = {0, 'a', 0, (char)0xff, 1};
	struct weft_kv kv = {0};
	struct weft_kv_list l = {0};
	struct weft_watch *w = NULL;
	struct weft_event ev = {0};
	int64_t rev = -1, rev0 = cur_rev();

	CHECK_EQ_INT(weft_store_put(g_store, K("bin/k"), bin, sizeof(bin), &rev), 0);
	CHECK_EQ_INT(weft_store_get(g_store, K("bin/k"), &kv), 0);
	CHECK_EQ_INT(kv.value_len, sizeof(bin));
	CHECK(kv.value && memcmp(kv.value, bin, sizeof(bin)) == 0 && kv.value[sizeof(bin)] == 0);
	weft_kv_clear(&kv);
	CHECK(weft_store_list(g_store, K("bin/"), &l) >= 0);
	CHECK_EQ_INT(l.n, 1);
	if (l.n == 1)
		CHECK(l.items[0].value_len == sizeof(bin) && memcmp(l.items[0].value, bin, sizeof(bin)) == 0);
	weft_kv_list_clear(&l);

	/* An empty value is a value: present, length 0, NUL-terminated. */
	CHECK_EQ_INT(weft_store_put(g_store, K("bin/empty"), "", 0, NULL), 0);
	CHECK_EQ_INT(weft_store_get(g_store, K("bin/empty"), &kv), 0);
	CHECK_EQ_INT(kv.value_len, 0);
	CHECK(kv.value && kv.value[0] == 0);
	weft_kv_clear(&kv);

	CHECK_EQ_INT(weft_store_watch(g_store, K("bin/k"), rev0 + 1, &w), 0);
	if (w) {
		CHECK_EQ_INT(weft_watch_wait(w, &ev, 3000), 1);
		CHECK(ev.kv.value_len == sizeof(bin) && memcmp(ev.kv.value, bin, sizeof(bin)) == 0);
		weft_event_clear(&ev);
		weft_watch_free(w);
	}
}

static void test_large_value(void)
{
	const size_t n = 100 * 1024;
	_cleanup_free_ char *big = wmalloc(n);
	struct weft_kv kv = {0};
	struct weft_watch *w = NULL;
	struct weft_event ev = {0};
	int64_t rev = -1;

	for (size_t i = 0; i < n; i++)
		big[i] = (char)(i * 7 % 251); /* has NULs */
	CHECK_EQ_INT(weft_store_put(g_store, K("big/k"), big, n, &rev), 0);
	CHECK_EQ_INT(weft_store_get(g_store, K("big/k"), &kv), 0);
	CHECK_EQ_INT(kv.value_len, n);
	CHECK(kv.value && memcmp(kv.value, big, n) == 0);
	weft_kv_clear(&kv);
	CHECK_EQ_INT(weft_store_watch(g_store, K("big/"), rev, &w), 0);
	if (w) {
		CHECK_EQ_INT(weft_watch_wait(w, &ev, 3000), 1);
		CHECK(ev.kv.value_len == n && memcmp(ev.kv.value, big, n) == 0);
		weft_event_clear(&ev);
		weft_watch_free(w);
	}
	del_s(K("big/k"));
}

static void test_keys(void)
{
	static const char *const odd[] = {
		"k/with space", "k/\xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "de", "k/a:b=c?d&e#f%g+h", "k/../x",
		"k/\"quoted\"", "k/back\\slash", "k/trailing/",
	};
	char key[1100];
	struct weft_kv kv = {0};
	size_t plen = strlen(g_prefix);

	CHECK_EQ_INT(weft_store_put(g_store, "", "x", 1, NULL), -EINVAL);
	CHECK_EQ_INT(weft_store_get(g_store, "", &kv), -EINVAL);
	CHECK_EQ_INT(weft_store_put(g_store, NULL, "x", 1, NULL), -EINVAL);

	/* The longest key is accepted, one more byte is not. */
	CHECK(plen < 1000);
	memset(key, 'x', sizeof(key));
	memcpy(key, g_prefix, plen);
	key[1024] = 0;
	CHECK_EQ_INT(weft_store_put(g_store, key, "max", 3, NULL), 0);
	CHECK_EQ_INT(weft_store_get(g_store, key, &kv), 0);
	CHECK_STREQ(kv.value, "max");
	weft_kv_clear(&kv);
	key[1024] = 'x';
	key[1025] = 0;
	CHECK_EQ_INT(weft_store_put(g_store, key, "x", 1, NULL), -EINVAL);

	for (size_t i = 0; i < ARRAY_SIZE(odd); i++) {
		put_s(K(odd[i]), odd[i]);
		CHECK_EQ_INT(weft_store_get(g_store, K(odd[i]), &kv), 0);
		CHECK_STREQ(kv.key, K(odd[i]));
		CHECK_STREQ(kv.value, odd[i]);
		weft_kv_clear(&kv);
	}
	/* A key is not found by a prefix of it. */
	CHECK_EQ_INT(weft_store_get(g_store, K("k/with"), &kv), -ENOENT);
	CHECK_EQ_INT(weft_store_get(g_store, K("k/trailing"), &kv), -ENOENT);

	/* Values over the limit are refused before reaching the backend. */
	{
		_cleanup_free_ char *huge = wcalloc(1, 1024 * 1024 + 1);
		CHECK_EQ_INT(weft_store_put(g_store, K("k/huge"), huge, 1024 * 1024 + 1, NULL), -EFBIG);
	}
}

/* Two handles on one store see each other's writes at once. */
static void test_two_handles(void)
{
	struct weft_store *s2 = NULL;
	struct weft_kv kv = {0};
	char *err = NULL;
	int64_t rev = -1, rev2 = -1;

	CHECK_EQ_INT(weft_store_open(g_url, &s2, &err), 0);
	if (!s2) {
		fprintf(stderr, "open: %s\n", err);
		free(err);
		return;
	}
	rev = put_s(K("two/k"), "from 1");
	CHECK_EQ_INT(weft_store_get(s2, K("two/k"), &kv), 0);
	CHECK_STREQ(kv.value, "from 1");
	CHECK_EQ_INT(kv.mod_rev, rev);
	weft_kv_clear(&kv);
	CHECK_EQ_INT(weft_store_cas(s2, K("two/k"), "from 2", 6, rev, &rev2), 0);
	CHECK_EQ_INT(weft_store_get(g_store, K("two/k"), &kv), 0);
	CHECK_STREQ(kv.value, "from 2");
	weft_kv_clear(&kv);
	CHECK_EQ_INT(weft_store_cas(g_store, K("two/k"), "stale", 5, rev, NULL), -ECANCELED);
	CHECK_EQ_INT(weft_store_revision(s2, &rev), 0);
	CHECK_EQ_INT(rev, rev2);
	weft_store_close(s2);
}

/* Leave nothing behind (and check list + delete on many keys). */
static void test_cleanup(void)
{
	struct weft_kv_list l = {0};

	CHECK(weft_store_list(g_store, g_prefix, &l) >= 0);
	for (size_t i = 0; i < l.n; i++)
		CHECK_EQ_INT(weft_store_delete(g_store, l.items[i].key, l.items[i].mod_rev, NULL), 0);
	weft_kv_list_clear(&l);
	CHECK(weft_store_list(g_store, g_prefix, &l) >= 0);
	CHECK_EQ_INT(l.n, 0);
	weft_kv_list_clear(&l);
}

/* The other process of test_watch_other_process: for each byte on stdin,
 * put KEY and write {start ns, acknowledged ns, revision} to stdout. */
static int writer_main(const char *url, const char *key)
{
	struct weft_store *s = NULL;
	char *err = NULL;

	if (weft_store_open(url, &s, &err) < 0) {
		fprintf(stderr, "writer: open %s: %s\n", url, err);
		return 2;
	}
	for (int i = 0;; i++) {
		char c, v[32];
		int64_t msg[3];
		if (read(0, &c, 1) != 1)
			break;
		snprintf(v, sizeof(v), "%d", i);
		msg[0] = weft_now_ns();
		if (weft_store_put(s, key, v, strlen(v), &msg[2]) < 0) {
			fprintf(stderr, "writer: put: %s\n", weft_store_errmsg(s));
			return 3;
		}
		msg[1] = weft_now_ns();
		if (write(1, msg, sizeof(msg)) != sizeof(msg))
			return 4;
	}
	weft_store_close(s);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct test_case cases[] = {
		TEST(test_get_put),
		TEST(test_revision_monotonic),
		TEST(test_list),
		TEST(test_create),
		TEST(test_cas),
		TEST(test_delete),
		TEST(test_txn),
		TEST(test_watch_from_now),
		TEST(test_watch_from_old_rev),
		TEST(test_watch_fd_protocol),
		TEST(test_watch_other_process),
		TEST(test_binary_values),
		TEST(test_large_value),
		TEST(test_keys),
		TEST(test_two_handles),
		TEST(test_cleanup),
	};
	const char *prefix = getenv("WEFT_TEST_PREFIX");
	char *err = NULL;
	int r;

	if (argc == 4 && streq(argv[1], "--writer"))
		return writer_main(argv[2], argv[3]);
	g_url = argc > 1 ? argv[1] : getenv("WEFT_TEST_STORE");
	if (!g_url) {
		fprintf(stderr, "usage: %s URL   (or WEFT_TEST_STORE=URL)\n", argv[0]);
		return 2;
	}
	if (prefix)
		snprintf(g_prefix, sizeof(g_prefix), "%s", prefix);
	else
		snprintf(g_prefix, sizeof(g_prefix), "/weft-test/contract-%d-%lld/", (int)getpid(),
			 (long long)weft_now_ns());
	srand((unsigned)getpid());
	signal(SIGPIPE, SIG_IGN);
	r = weft_store_open(g_url, &g_store, &err);
	if (r < 0) {
		fprintf(stderr, "open %s: %s\n", g_url, err ? err : strerror(-r));
		free(err);
		printf("0 passed, 1 failed\n");
		return 1;
	}
	fprintf(stderr, "store %s, keys under %s\n", g_url, g_prefix);
	r = test_run(cases, ARRAY_SIZE(cases));
	weft_store_close(g_store);
	return r;
}
