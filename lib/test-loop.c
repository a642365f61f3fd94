/* test-loop.c - unit tests for the event loop. */
#include "lib/loop.h"
#include "lib/test.h"

#include <sys/wait.h>

#define MS 1000000LL

/* ---- io ---- */

struct io_ctx {
	int reads, writes;
	char last;
};

static int on_read(struct weft_source *s, int fd, uint32_t revents, void *userdata)
{
	struct io_ctx *c = userdata;
	char ch;

	if ((revents & EPOLLIN) && read(fd, &ch, 1) == 1) {
		c->reads++;
		c->last = ch;
	}
	return 0;
}

static int on_write(struct weft_source *s, int fd, uint32_t revents, void *userdata)
{
	struct io_ctx *c = userdata;

	if (revents & EPOLLOUT) {
		c->writes++;
		/* Writable once is enough: stop asking. */
		weft_source_io_set_events(s, 0);
	}
	return 0;
}

static void test_io_pipe(void)
{
	_cleanup_loop_ struct weft_loop *loop = NULL;
	struct weft_source *rs = NULL, *ws = NULL;
	struct io_ctx c = {0};
	int p[2];

	CHECK_EQ_INT(weft_loop_new(&loop), 0);
	CHECK_EQ_INT(pipe(p), 0);
	CHECK_EQ_INT(weft_loop_add_io(loop, p[0], EPOLLIN, on_read, &c, &rs), 0);
	/* The same fd twice in one loop is refused by epoll. */
	CHECK_EQ_INT(weft_loop_add_io(loop, p[0], EPOLLIN, on_read, &c, NULL), -EEXIST);
	CHECK_EQ_INT(weft_loop_run_once(loop, 0), 0);
	CHECK_EQ_INT(write(p[1], "x", 1), 1);
	CHECK_EQ_INT(weft_loop_run_once(loop, 1000), 1);
	CHECK_EQ_INT(c.reads, 1);
	CHECK_EQ_INT(c.last, 'x');

	CHECK_EQ_INT(weft_loop_add_io(loop, p[1], EPOLLOUT, on_write, &c, &ws), 0);
	CHECK_EQ_INT(weft_loop_run_once(loop, 1000), 1);
	CHECK_EQ_INT(c.writes, 1);
	CHECK_EQ_INT(weft_loop_run_once(loop, 0), 0);
	CHECK_EQ_INT(c.writes, 1);

	weft_source_free(rs);
	CHECK_EQ_INT(write(p[1], "y", 1), 1);
	CHECK_EQ_INT(weft_loop_run_once(loop, 0), 0);
	CHECK_EQ_INT(c.reads, 1);
	weft_source_free(ws);
	close(p[0]);
	close(p[1]);
}

/* ---- timers ---- */

struct timer_ctx {
	int order[8];
	int n;
	int ticks;
	int64_t first_tick, last_tick;
};

static int on_timer_record(struct weft_source *s, int64_t now, void *userdata)
{
	/* Returns what it was given: lets a test make a callback fail. */
	return (int)(intptr_t)userdata;
}

static struct timer_ctx *tctx;

static int on_timer_id(struct weft_source *s, int64_t now, void *userdata)
{
	intptr_t id = (intptr_t)userdata;

	if (tctx->n < 8)
		tctx->order[tctx->n++] = (int)id;
	if (id == 3)
		weft_loop_exit(weft_source_loop(s), 42);
	return 0;
}

static void test_timer_order(void)
{
	_cleanup_loop_ struct weft_loop *loop = NULL;
	struct timer_ctx c = {0};
	int64_t t0 = weft_now_ns();

	tctx = &c;
	CHECK_EQ_INT(weft_loop_new(&loop), 0);
	/* Floating one-shot timers: the loop frees them after they fire. */
	CHECK_EQ_INT(weft_loop_add_timer(loop, 30 * MS, 0, on_timer_id, (void *)3, NULL), 0);
	CHECK_EQ_INT(weft_loop_add_timer(loop, 10 * MS, 0, on_timer_id, (void *)1, NULL), 0);
	CHECK_EQ_INT(weft_loop_add_timer_at(loop, t0 + 20 * MS, 0, on_timer_id, (void *)2, NULL), 0);
	/* Already expired: fires in the first iteration. */
	CHECK_EQ_INT(weft_loop_add_timer_at(loop, t0 - 5 * MS, 0, on_timer_id, (void *)0, NULL), 0);
	CHECK_EQ_INT(weft_loop_add_timer(loop, -1, 0, on_timer_id, NULL, NULL), -EINVAL);
	CHECK_EQ_INT(weft_loop_run(loop), 42);
	CHECK_EQ_INT(c.n, 4);
	CHECK_EQ_INT(c.order[0], 0);
	CHECK_EQ_INT(c.order[1], 1);
	CHECK_EQ_INT(c.order[2], 2);
	CHECK_EQ_INT(c.order[3], 3);
	CHECK(weft_now_ns() - t0 >= 30 * MS);
	CHECK(weft_loop_now(loop) >= t0 + 30 * MS);
}

static int on_periodic(struct weft_source *s, int64_t now, void *userdata)
{
	struct timer_ctx *c = userdata;

	if (c->ticks++ == 0)
		c->first_tick = now;
	c->last_tick = now;
	if (c->ticks == 4)
		weft_loop_exit(weft_source_loop(s), 0);
	return 0;
}

static void test_timer_periodic(void)
{
	_cleanup_loop_ struct weft_loop *loop = NULL;
	struct weft_source *t = NULL, *stopped = NULL;
	struct timer_ctx c = {0};
	int64_t t0 = weft_now_ns();

	CHECK_EQ_INT(weft_loop_new(&loop), 0);
	CHECK_EQ_INT(weft_loop_add_timer(loop, 5 * MS, 5 * MS, on_periodic, &c, &t), 0);
	/* A stopped timer never fires; a failing callback is only logged. */
	CHECK_EQ_INT(weft_loop_add_timer(loop, 1 * MS, 0, on_timer_record, (void *)-EIO, &stopped), 0);
	CHECK_EQ_INT(weft_source_timer_stop(stopped), 0);
	CHECK_EQ_INT(weft_loop_run(loop), 0);
	CHECK_EQ_INT(c.ticks, 4);
	/* The fourth tick is due four periods after the start, however late
	 * the first one woke up (on a loaded machine, by more than a
	 * millisecond: the gap between the first and the fourth tick then
	 * shrinks below three periods). */
	CHECK(c.last_tick - t0 >= 20 * MS);
	CHECK(c.last_tick > c.first_tick);
	/* Re-arm as a one-shot and run again. */
	CHECK_EQ_INT(weft_source_timer_set(t, weft_now_ns() + 2 * MS, 0), 0);
	while (c.ticks < 5)
		CHECK(weft_loop_run_once(loop, 1000) >= 0);
	CHECK_EQ_INT(c.ticks, 5);
	CHECK_EQ_INT(weft_loop_run_once(loop, 20), 0);
	CHECK_EQ_INT(c.ticks, 5);
	/* A failing callback. */
	CHECK_EQ_INT(weft_source_timer_set(stopped, 0, 0), 0);
	CHECK_EQ_INT(weft_loop_run_once(loop, 1000), 1);
	weft_source_free(t);
	weft_source_free(stopped);
}

/* ---- deferred ---- */

struct defer_ctx {
	struct weft_source *reconcile;
	int reconciles;
	int events;
	int self_rearms;
};

static int on_reconcile(struct weft_source *s, void *userdata)
{
	struct defer_ctx *c = userdata;

	c->reconciles++;
	return 0;
}

static int on_event_timer(struct weft_source *s, int64_t now, void *userdata)
{
	struct defer_ctx *c = userdata;

	c->events++;
	weft_source_defer_arm(c->reconcile);
	return 0;
}

static int on_rearm_self(struct weft_source *s, void *userdata)
{
	struct defer_ctx *c = userdata;

	if (++c->self_rearms < 3)
		weft_source_defer_arm(s);
	return 0;
}

static void test_defer(void)
{
	_cleanup_loop_ struct weft_loop *loop = NULL;
	struct defer_ctx c = {0};
	struct weft_source *self = NULL;
	int64_t now = weft_now_ns();

	CHECK_EQ_INT(weft_loop_new(&loop), 0);
	CHECK_EQ_INT(weft_loop_add_defer(loop, on_reconcile, &c, &c.reconcile), 0);
	CHECK_EQ_INT(weft_loop_run_once(loop, -1), 1);
	CHECK_EQ_INT(c.reconciles, 1);
	CHECK_EQ_INT(weft_loop_run_once(loop, 0), 0);
	CHECK_EQ_INT(c.reconciles, 1);

	/* Three events in one iteration arm reconcile three times: it runs once. */
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(weft_loop_add_timer_at(loop, now, 0, on_event_timer, &c, NULL), 0);
	CHECK_EQ_INT(weft_loop_run_once(loop, 1000), 1);
	CHECK_EQ_INT(c.events, 3);
	CHECK_EQ_INT(c.reconciles, 2);

	/* A source re-arming itself runs once per iteration, not in a loop. */
	CHECK_EQ_INT(weft_loop_add_defer(loop, on_rearm_self, &c, &self), 0);
	CHECK_EQ_INT(weft_loop_run_once(loop, 0), 1);
	CHECK_EQ_INT(c.self_rearms, 1);
	CHECK_EQ_INT(weft_loop_run_once(loop, 0), 1);
	CHECK_EQ_INT(c.self_rearms, 2);
	CHECK_EQ_INT(weft_loop_run_once(loop, 0), 1);
	CHECK_EQ_INT(c.self_rearms, 3);
	CHECK_EQ_INT(weft_loop_run_once(loop, 0), 0);

	/* Freed while armed: never runs. */
	CHECK_EQ_INT(weft_source_defer_arm(c.reconcile), 0);
	weft_source_free(c.reconcile);
	CHECK_EQ_INT(weft_loop_run_once(loop, 0), 0);
	CHECK_EQ_INT(c.reconciles, 2);
	weft_source_free(self);
	/* Floating: freed by the loop after it ran (LeakSanitizer checks). */
	CHECK_EQ_INT(weft_loop_add_defer(loop, on_reconcile, &c, NULL), 0);
	CHECK_EQ_INT(weft_loop_run_once(loop, 0), 1);
	CHECK_EQ_INT(c.reconciles, 3);
}

/* ---- signals ---- */

struct sig_ctx {
	int usr1, hup;
};

static int on_signal(struct weft_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct sig_ctx *c = userdata;

	if (si->ssi_signo == SIGUSR1)
		c->usr1++;
	else if (si->ssi_signo == SIGHUP)
		c->hup++;
	return 0;
}

static void test_signal(void)
{
	_cleanup_loop_ struct weft_loop *loop = NULL;
	struct weft_source *u = NULL, *h = NULL;
	struct sig_ctx c = {0};

	CHECK_EQ_INT(weft_loop_new(&loop), 0);
	CHECK_EQ_INT(weft_loop_add_signal(loop, SIGUSR1, on_signal, &c, &u), 0);
	CHECK_EQ_INT(weft_loop_add_signal(loop, SIGHUP, on_signal, &c, &h), 0);
	CHECK_EQ_INT(weft_loop_add_signal(loop, SIGHUP, on_signal, &c, NULL), -EBUSY);
	CHECK_EQ_INT(weft_loop_add_signal(loop, SIGKILL, on_signal, &c, NULL), -EINVAL);
	CHECK_EQ_INT(raise(SIGUSR1), 0);
	CHECK_EQ_INT(raise(SIGHUP), 0);
	for (int i = 0; i < 10 && (c.usr1 < 1 || c.hup < 1); i++)
		CHECK(weft_loop_run_once(loop, 1000) >= 0);
	CHECK_EQ_INT(c.usr1, 1);
	CHECK_EQ_INT(c.hup, 1);
	weft_source_free(u);
	weft_source_free(h);
	/* Still blocked after the source is gone: no default action. */
	CHECK_EQ_INT(raise(SIGHUP), 0);
	{
		sigset_t pending;
		int sig = 0;
		sigemptyset(&pending);
		sigaddset(&pending, SIGHUP);
		CHECK_EQ_INT(sigwait(&pending, &sig), 0);
		CHECK_EQ_INT(sig, SIGHUP);
	}
}

/* ---- children ---- */

struct child_ctx {
	int calls;
	int code, status;
	pid_t pid;
};

static int on_child(struct weft_source *s, const siginfo_t *si, void *userdata)
{
	struct child_ctx *c = userdata;

	c->calls++;
	c->code = si->si_code;
	c->status = si->si_status;
	c->pid = si->si_pid;
	return 0;
}

static void run_children(const char *mode)
{
	_cleanup_loop_ struct weft_loop *loop = NULL;
	struct child_ctx a = {0}, b = {0};
	struct weft_source *sb = NULL;
	int failures = test_failures;
	pid_t pa, pb;

	CHECK_EQ_INT(weft_loop_new(&loop), 0);
	pa = fork();
	if (pa == 0)
		_exit(7);
	pb = fork();
	if (pb == 0) {
		pause();
		_exit(0);
	}
	CHECK(pa > 0 && pb > 0);
	CHECK_EQ_INT(weft_loop_add_child(loop, pa, on_child, &a, NULL), 0);
	CHECK_EQ_INT(weft_loop_add_child(loop, pb, on_child, &b, &sb), 0);
	CHECK_EQ_INT(kill(pb, SIGKILL), 0);
	for (int i = 0; i < 50 && (a.calls < 1 || b.calls < 1); i++)
		CHECK(weft_loop_run_once(loop, 200) >= 0);
	CHECK_EQ_INT(a.calls, 1);
	CHECK_EQ_INT(a.code, CLD_EXITED);
	CHECK_EQ_INT(a.status, 7);
	CHECK_EQ_INT(a.pid, pa);
	CHECK_EQ_INT(b.calls, 1);
	CHECK_EQ_INT(b.code, CLD_KILLED);
	CHECK_EQ_INT(b.status, SIGKILL);
	/* Both reaped by the loop. */
	CHECK_EQ_INT(waitpid(-1, NULL, WNOHANG), -1);
	CHECK_EQ_INT(errno, ECHILD);
	weft_source_free(sb);
	if (test_failures != failures)
		fprintf(stderr, "(child mode %s)\n", mode);
}

static void test_child_pidfd(void)
{
	run_children("pidfd");
}

static void test_child_sigchld_fallback(void)
{
	setenv("WEFT_LOOP_NO_PIDFD", "1", 1);
	run_children("sigchld");
	unsetenv("WEFT_LOOP_NO_PIDFD");
}

/* ---- removal from callbacks ---- */

struct rm_ctx {
	struct weft_source *a, *b, *t, *d1, *d2;
	int a_calls, b_calls, t_calls, d1_calls, d2_calls;
};

static int on_rm_io(struct weft_source *s, int fd, uint32_t revents, void *userdata)
{
	struct rm_ctx *c = userdata;

	/* Whichever runs first frees both itself and the other one. */
	if (s == c->a)
		c->a_calls++;
	else
		c->b_calls++;
	weft_source_free(c->a);
	weft_source_free(c->b);
	c->a = c->b = NULL;
	return 0;
}

static int on_rm_timer(struct weft_source *s, int64_t now, void *userdata)
{
	struct rm_ctx *c = userdata;

	c->t_calls++;
	weft_source_free(s); /* a periodic timer freeing itself */
	c->t = NULL;
	return 0;
}

static int on_rm_d1(struct weft_source *s, void *userdata)
{
	struct rm_ctx *c = userdata;

	c->d1_calls++;
	weft_source_free(c->d2); /* armed in the same phase: must not run */
	c->d2 = NULL;
	weft_source_free(s);
	c->d1 = NULL;
	return 0;
}

static int on_rm_d2(struct weft_source *s, void *userdata)
{
	struct rm_ctx *c = userdata;

	c->d2_calls++;
	return 0;
}

static void test_remove_in_callback(void)
{
	_cleanup_loop_ struct weft_loop *loop = NULL;
	struct rm_ctx c = {0};
	int p1[2], p2[2];

	CHECK_EQ_INT(weft_loop_new(&loop), 0);
	CHECK_EQ_INT(pipe(p1), 0);
	CHECK_EQ_INT(pipe(p2), 0);
	CHECK_EQ_INT(weft_loop_add_io(loop, p1[0], EPOLLIN, on_rm_io, &c, &c.a), 0);
	CHECK_EQ_INT(weft_loop_add_io(loop, p2[0], EPOLLIN, on_rm_io, &c, &c.b), 0);
	CHECK_EQ_INT(weft_loop_add_timer(loop, 0, 1 * MS, on_rm_timer, &c, &c.t), 0);
	CHECK_EQ_INT(weft_loop_add_defer(loop, on_rm_d1, &c, &c.d1), 0);
	CHECK_EQ_INT(weft_loop_add_defer(loop, on_rm_d2, &c, &c.d2), 0);
	/* Both pipes readable in the same epoll_wait. */
	CHECK_EQ_INT(write(p1[1], "a", 1), 1);
	CHECK_EQ_INT(write(p2[1], "b", 1), 1);
	CHECK_EQ_INT(weft_loop_run_once(loop, 1000), 1);
	CHECK_EQ_INT(c.a_calls + c.b_calls, 1);
	CHECK_EQ_INT(c.t_calls, 1);
	CHECK_EQ_INT(c.d1_calls, 1);
	CHECK_EQ_INT(c.d2_calls, 0);
	CHECK_EQ_INT(weft_loop_run_once(loop, 20), 0);
	CHECK_EQ_INT(c.t_calls, 1);
	for (int i = 0; i < 2; i++) {
		close(p1[i]);
		close(p2[i]);
	}
}

/* ---- exit ---- */

static int on_exit_defer(struct weft_source *s, void *userdata)
{
	weft_loop_exit(weft_source_loop(s), (int)(intptr_t)userdata);
	return 0;
}

static int on_never(struct weft_source *s, void *userdata)
{
	int *calls = userdata;
	(*calls)++;
	return 0;
}

static void test_exit_code(void)
{
	_cleanup_loop_ struct weft_loop *loop = NULL;
	int never = 0;

	CHECK_EQ_INT(weft_loop_new(&loop), 0);
	CHECK_EQ_INT(weft_loop_add_defer(loop, on_exit_defer, (void *)5, NULL), 0);
	/* Armed after the exit in the same phase: no callback after exit runs. */
	CHECK_EQ_INT(weft_loop_add_defer(loop, on_never, &never, NULL), 0);
	CHECK_EQ_INT(weft_loop_run(loop), 5);
	CHECK_EQ_INT(never, 0);
	/* Exit before run: run returns at once, the pending defer still waits.
	 * Then a second run picks the leftover defer up. */
	weft_loop_exit(loop, 9);
	CHECK_EQ_INT(weft_loop_run(loop), 9);
	CHECK_EQ_INT(never, 0);
	CHECK_EQ_INT(weft_loop_add_defer(loop, on_exit_defer, (void *)0, NULL), 0);
	CHECK_EQ_INT(weft_loop_run(loop), 0);
	CHECK_EQ_INT(never, 1);
	/* Freeing the loop frees a live non-floating source too. */
	struct weft_source *left = NULL;
	CHECK_EQ_INT(weft_loop_add_timer(loop, 1000 * MS, 0, on_timer_record, NULL, &left), 0);
}

TEST_MAIN(TEST(test_io_pipe), TEST(test_timer_order), TEST(test_timer_periodic), TEST(test_defer),
	  TEST(test_signal), TEST(test_child_pidfd), TEST(test_child_sigchld_fallback),
	  TEST(test_remove_in_callback), TEST(test_exit_code))
