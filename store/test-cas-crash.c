/* test-cas-crash.c - concurrent compare-and-swap on the embedded store,
 * with writers killed by SIGKILL.
 *
 * Each round: 4 worker processes increment one counter key with CAS until
 * it reaches 1000; a worker reports every increment it saw acknowledged
 * (an 8-byte write to a pipe, atomic, after weft_store_cas() returned 0).
 *   round "kill-once": one worker is killed -9 midway.
 *   round "kill-20":   20 processes are killed -9: every other time a
 *                      random worker at a random moment (and replaced), in
 *                      between a fifth process that writes one 2 MiB
 *                      transaction, killed when the parent sees the log grow
 *                      in the middle of its record, so that real torn writes
 *                      happen (compaction runs too, with 2 MiB live).
 * Then: no value was acknowledged twice; every acknowledged value is <= the
 * final counter; the final counter is 1000 and equals the counter key's
 * version (one put per increment: nothing lost, nothing invented); at most one
 * increment per killed worker went unacknowledged; the store reopens and
 * weft_store_check() passes. And a watch on the counter, kept by the parent
 * from revision 1, saw exactly 1, 2, ... 1000 in order.
 *
 *   test-cas-crash [DIR]    (default: a fresh directory under /tmp)
 */
#include "lib/test.h"
#include "store/store.h"
#include "lib/log.h"
#include "store/record.h"

#include <signal.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define WORKERS 4
#define TARGET 1000
#define BIG_OPS 4
#define BIG_LEN (512 * 1024)

static char g_dir[256];
static int g_report[2];

static int64_t counter(struct weft_store *s);
static void pump(void);

/* Shared with the workers (MAP_SHARED): they pace themselves while the
 * parent is still killing, so that all the kills land before the end. */
static volatile int *g_pace;

static void worker(const char *url, int id)
{
	struct weft_store *s = NULL;
	char *err = NULL;

	/* WEFT_LOG=debug shows the store's torn-tail repairs and compactions. */
	weft_log_init("cas-worker", WEFT_LOG_INFO);
	if (weft_store_open(url, &s, &err) < 0) {
		fprintf(stderr, "worker %d: open: %s\n", id, err);
		_exit(2);
	}
	for (;;) {
		struct weft_kv kv = {0};
		int64_t value = 0, mod = 0, next;
		char buf[32];
		int r = weft_store_get(s, "/counter", &kv);

		if (r == 0) {
			if (weft_parse_int64(kv.value, 0, INT64_MAX, &value) < 0) {
				fprintf(stderr, "worker %d: bad counter \"%s\"\n", id, kv.value);
				_exit(3);
			}
			mod = kv.mod_rev;
			weft_kv_clear(&kv);
		} else if (r != -ENOENT) {
			fprintf(stderr, "worker %d: get: %s\n", id, weft_store_errmsg(s));
			_exit(3);
		}
		if (value >= TARGET)
			break;
		if (*g_pace && value >= TARGET - 100) {
			/* Wait for the parent's last kills. */
			usleep(1000);
			continue;
		}
		next = value + 1;
		snprintf(buf, sizeof(buf), "%lld", (long long)next);
		r = weft_store_cas(s, "/counter", buf, strlen(buf), mod, NULL);
		if (r == -ECANCELED)
			continue;
		if (r < 0) {
			fprintf(stderr, "worker %d: cas: %s\n", id, weft_store_errmsg(s));
			_exit(3);
		}
		/* Acknowledged: report it. */
		if (write(g_report[1], &next, sizeof(next)) != sizeof(next))
			_exit(4);
		if (*g_pace)
			usleep((useconds_t)(rand() % 8000));
	}
	weft_store_close(s);
	_exit(0);
}

/* One unconditional 2 MiB transaction (the parent tries to kill it during
 * the write). */
static void big_writer(const char *url, int id)
{
	struct weft_store *s = NULL;
	struct weft_txn_op ops[BIG_OPS];
	char keys[BIG_OPS][32];
	char *value = wmalloc(BIG_LEN);

	weft_log_init("big-writer", WEFT_LOG_INFO);
	if (weft_store_open(url, &s, NULL) < 0)
		_exit(2);
	memset(value, 'a' + id % 26, BIG_LEN);
	for (int i = 0; i < BIG_OPS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "/big/%d", i);
		ops[i] = (struct weft_txn_op){WEFT_OP_PUT, keys[i], value, BIG_LEN};
	}
	if (weft_store_txn(s, NULL, 0, ops, BIG_OPS, NULL) < 0) {
		fprintf(stderr, "big writer: %s\n", weft_store_errmsg(s));
		_exit(3);
	}
	weft_store_close(s);
	free(value);
	_exit(0);
}

static pid_t spawn(const char *url, int id, bool big)
{
	pid_t pid = fork();
	if (pid == 0) {
		close(g_report[0]);
		srand((unsigned)getpid());
		if (big)
			big_writer(url, id);
		worker(url, id);
	}
	return pid;
}

/* Wait (at most 1 s) until the log grows by more than one big value but
 * less than a big record: the big writer pid is writing it. Returns 1 when
 * seen, 0 on timeout, -1 if pid exited first (reaped: *status). */
static int wait_mid_big_write(const char *log, pid_t pid, int *status)
{
	struct stat st;
	off_t base = stat(log, &st) == 0 ? st.st_size : 0;
	ino_t ino = st.st_ino;

	for (int64_t end = weft_now_ms() + 1000; weft_now_ms() < end;) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return -1;
		if (stat(log, &st) < 0)
			continue;
		if (st.st_ino != ino) {
			ino = st.st_ino;
			base = st.st_size;
			continue;
		}
		if (st.st_size > base + BIG_LEN && st.st_size < base + (off_t)BIG_OPS * BIG_LEN)
			return 1;
		if (st.st_size >= base + (off_t)BIG_OPS * BIG_LEN)
			base = st.st_size;
	}
	return 0;
}

/* Does the log end in a torn record? (Walks the record headers.) */
static bool log_has_torn_tail(const char *log)
{
	int fd = open(log, O_RDONLY);
	struct stat st;
	uint64_t off = 0;
	bool torn = false;

	if (fd < 0 || fstat(fd, &st) < 0)
		goto out;
	while (off < (uint64_t)st.st_size) {
		uint8_t hdr[WEFT_RECORD_HEADER_SIZE];
		size_t len;
		if (pread(fd, hdr, sizeof(hdr), (off_t)off) != (ssize_t)sizeof(hdr) ||
		    weft_record_peek(hdr, sizeof(hdr), &len, NULL) != 1 || off + len > (uint64_t)st.st_size) {
			torn = true;
			break;
		}
		off += len;
	}
out:
	if (fd >= 0)
		close(fd);
	return torn;
}

static int64_t counter(struct weft_store *s)
{
	struct weft_kv kv = {0};
	int64_t v = 0;

	if (weft_store_get(s, "/counter", &kv) == 0) {
		weft_parse_int64(kv.value, 0, INT64_MAX, &v);
		weft_kv_clear(&kv);
	}
	return v;
}

/* The parent watches the counter all along: it must see 1, 2, ... 1000,
 * each once, in order, across torn tails and compactions. */
static struct weft_watch *g_watch;
static int64_t g_seen, g_seen_rev;
static int g_watch_err, g_watch_order;

static void pump(void)
{
	struct weft_event ev = {0};
	int r;

	while (g_watch && (r = weft_watch_next(g_watch, &ev)) != 0) {
		if (r < 0) {
			g_watch_err = r;
			fprintf(stderr, "  watch: %s\n", strerror(-r));
			weft_watch_free(g_watch);
			g_watch = NULL;
			return;
		}
		int64_t v = -1;
		weft_parse_int64(ev.kv.value, 0, INT64_MAX, &v);
		if (ev.type != WEFT_EV_PUT || v != g_seen + 1 || ev.kv.mod_rev <= g_seen_rev)
			g_watch_order++;
		g_seen = v;
		g_seen_rev = ev.kv.mod_rev;
		weft_event_clear(&ev);
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* One round in DIR/name. kills: how many processes to kill (1 = one
 * worker, once, midway; more = the kill-20 schedule with the big writer). */
static void round_run(const char *name, int kills)
{
	_cleanup_free_ char *url = wasprintf("file:%s/%s", g_dir, name);
	_cleanup_free_ char *log = wasprintf("%s/%s/store.log", g_dir, name);
	struct weft_store *s = NULL;
	struct weft_kv kv = {0};
	pid_t pids[WORKERS], big = -1;
	int64_t *acked = NULL, final, t0 = weft_now_ms();
	size_t nacked = 0, cap = 0;
	int killed = 0, torn = 0, failed = 0, status, next_id = WORKERS;
	char *err = NULL;

	CHECK_EQ_INT(pipe(g_report), 0);
	CHECK_EQ_INT(weft_store_open(url, &s, &err), 0);
	if (!s) {
		fprintf(stderr, "open %s: %s\n", url, err);
		free(err);
		return;
	}
	g_seen = g_seen_rev = 0;
	g_watch_err = g_watch_order = 0;
	CHECK_EQ_INT(weft_store_watch(s, "/counter", 1, &g_watch), 0);
	*g_pace = kills > 1;
	for (int i = 0; i < WORKERS; i++)
		pids[i] = spawn(url, i, false);

	if (kills == 1) {
		int64_t at = 200 + rand() % 600;
		while (counter(s) < at) {
			pump();
			usleep(1000);
		}
		kill(pids[0], SIGKILL);
		waitpid(pids[0], &status, 0);
		pids[0] = -1;
		killed++;
	} else {
		for (int k = 0, attempts = 0; k < kills && attempts < 5 * kills && counter(s) < TARGET;
		     attempts++) {
			pid_t *victim;
			/* At most one big write (so one compaction) between two
			 * pumps: a watch that lags across two compactions may
			 * rightly get -ESTALE. */
			pump();
			if (k % 2) {
				/* A big writer, killed while its record is being written. */
				big = spawn(url, next_id++, true);
				victim = &big;
				if (wait_mid_big_write(log, big, &status) >= 0) {
					kill(big, SIGKILL);
					waitpid(big, &status, 0);
				}
			} else {
				victim = &pids[rand() % WORKERS];
				for (int64_t end = weft_now_ms() + 1 + rand() % 15; weft_now_ms() < end;) {
					pump();
					usleep(500);
				}
				kill(*victim, SIGKILL);
				waitpid(*victim, &status, 0);
			}
			if (!WIFSIGNALED(status)) {
				/* It had finished already. */
				if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
					failed++;
				*victim = victim == &big ? -1 : spawn(url, next_id++, false);
				continue;
			}
			killed++;
			k++;
			torn += log_has_torn_tail(log);
			*victim = victim == &big ? -1 : spawn(url, next_id++, false);
		}
		*g_pace = 0;
	}
	for (int i = 0; i <= WORKERS; i++) {
		pid_t pid = i < WORKERS ? pids[i] : big, got;
		if (pid < 0)
			continue;
		while ((got = waitpid(pid, &status, WNOHANG)) == 0) {
			pump();
			usleep(1000);
		}
		if (got == pid && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
			failed++;
	}
	pump();
	CHECK_EQ_INT(failed, 0);
	close(g_report[1]);
	for (;;) {
		int64_t v;
		ssize_t n = read(g_report[0], &v, sizeof(v));
		if (n != sizeof(v))
			break;
		if (nacked == cap) {
			cap = cap ? cap * 2 : 1024;
			acked = wrealloc(acked, cap * sizeof(*acked));
		}
		acked[nacked++] = v;
	}
	close(g_report[0]);

	final = counter(s);
	CHECK_EQ_INT(final, TARGET);
	/* One put per increment: the key's version counts them. */
	CHECK_EQ_INT(weft_store_get(s, "/counter", &kv), 0);
	CHECK_EQ_INT(kv.version, final);
	weft_kv_clear(&kv);
	qsort(acked, nacked, sizeof(*acked), cmp_i64);
	for (size_t i = 0; i < nacked; i++) {
		CHECK(acked[i] >= 1 && acked[i] <= final);
		if (i)
			CHECK(acked[i] != acked[i - 1]); /* acknowledged twice */
	}
	CHECK((int64_t)nacked <= final);
	CHECK(final - (int64_t)nacked <= killed); /* unacknowledged: only the killed */
	/* The watch saw every increment once, in order. */
	CHECK_EQ_INT(g_watch_err, 0);
	CHECK_EQ_INT(g_watch_order, 0);
	CHECK_EQ_INT(g_seen, final);
	weft_watch_free(g_watch);
	g_watch = NULL;
	weft_store_close(s);

	/* Opens clean, checks clean. */
	s = NULL;
	err = NULL;
	CHECK_EQ_INT(weft_store_open(url, &s, &err), 0);
	if (s) {
		CHECK_EQ_INT(weft_store_check(s), 0);
		CHECK_EQ_INT(counter(s), TARGET);
		weft_store_close(s);
	} else {
		fprintf(stderr, "reopen: %s\n", err);
		free(err);
	}
	fprintf(stderr,
		"  %s: %d CAS workers, %d processes killed (%d left a torn record), %zu increments "
		"acknowledged of %lld, %.2f s\n",
		name, WORKERS, killed, torn, nacked, (long long)final, (weft_now_ms() - t0) / 1000.0);
	free(acked);
}

static void test_kill_once(void)
{
	round_run("kill-once", 1);
}

static void test_kill_20(void)
{
	round_run("kill-20", 20);
}

int main(int argc, char **argv)
{
	static const struct test_case cases[] = {
		TEST(test_kill_once),
		TEST(test_kill_20),
	};
	bool own = argc < 2;
	int r;

	if (own) {
		snprintf(g_dir, sizeof(g_dir), "/tmp/weft-test-cas-crash-XXXXXX");
		if (!mkdtemp(g_dir)) {
			perror("mkdtemp");
			return 1;
		}
	} else {
		snprintf(g_dir, sizeof(g_dir), "%s", argv[1]);
	}
	srand((unsigned)getpid());
	signal(SIGPIPE, SIG_IGN);
	g_pace = mmap(NULL, sizeof(*g_pace), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g_pace == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	r = test_run(cases, ARRAY_SIZE(cases));
	if (own) {
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", g_dir);
	}
	return r;
}
