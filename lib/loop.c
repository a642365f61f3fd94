/* loop.c - the epoll event loop; see loop.h for the model.
 *
 * Memory safety when sources go away inside callbacks: while an iteration
 * dispatches, weft_source_free() detaches the source from the kernel and
 * from the loop's lists right away but only marks it dead and parks it on a
 * garbage list; the memory is released when the iteration ends. Every
 * dispatch phase skips dead sources, so a pointer still held by the current
 * epoll event array or by a snapshot of expired timers stays valid.
 */
#include "lib/loop.h"
#include "lib/log.h"

#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>

enum source_type {
	SOURCE_IO,
	SOURCE_TIMER,
	SOURCE_SIGNAL,
	SOURCE_CHILD,
	SOURCE_DEFER,
	/* The loop's own timerfd and signalfd, never handed out. */
	SOURCE_TIMERFD,
	SOURCE_SIGNALFD,
};

#define HEAP_NONE SIZE_MAX

struct weft_source {
	struct weft_loop *loop;
	enum source_type type;
	bool floating;
	bool dead;
	char *desc;
	void *userdata;
	/* All live sources of the loop (doubly linked), or the garbage list
	 * (through next) once dead. */
	struct weft_source *prev, *next;
	union {
		struct {
			int fd;
			uint32_t events;
			weft_io_fn cb;
		} io;
		struct {
			int64_t when, period;
			size_t idx;   /* position in the heap, HEAP_NONE if stopped */
			bool firing;  /* collected as expired in this iteration */
			weft_timer_fn cb;
		} timer;
		struct {
			int sig;
			weft_signal_fn cb;
		} signal;
		struct {
			pid_t pid;
			int pidfd; /* -1 in SIGCHLD fallback mode or once exited */
			bool exited;
			weft_child_fn cb;
		} child;
		struct {
			bool armed;
			weft_defer_fn cb;
		} defer;
	};
};

struct weft_loop {
	int epfd;
	int timerfd;
	int sigfd;
	struct weft_source timerfd_src, sigfd_src;
	sigset_t sigmask;
	struct weft_source *signals[_NSIG];

	struct weft_source *sources; /* every live source */
	struct weft_source *garbage; /* dead, freed at the end of the iteration */

	struct weft_source **heap;
	size_t heap_len, heap_cap;
	int64_t timerfd_armed; /* absolute expiry the timerfd is set to, 0 = off */

	struct weft_source **defers; /* armed deferred sources, in arming order */
	size_t defers_len, defers_cap;

	bool no_pidfd;    /* SIGCHLD fallback for child sources */
	bool child_check; /* sweep fallback children in the next iteration */
	unsigned nchildren_fallback;

	bool dispatching;
	bool exiting;
	int exit_code;
	int64_t now;
};

/* ---- generic source bookkeeping ---- */

static const char *source_desc(struct weft_source *s, char *buf, size_t size)
{
	static const char *names[] = {"io", "timer", "signal", "child", "defer", "timerfd", "signalfd"};

	if (s->desc)
		return s->desc;
	switch (s->type) {
	case SOURCE_IO:
		snprintf(buf, size, "io fd %d", s->io.fd);
		break;
	case SOURCE_SIGNAL:
		snprintf(buf, size, "signal %d", s->signal.sig);
		break;
	case SOURCE_CHILD:
		snprintf(buf, size, "child %d", (int)s->child.pid);
		break;
	default:
		snprintf(buf, size, "%s", names[s->type]);
	}
	return buf;
}

/* Log a failed callback at debug level; the policy is documented in loop.h. */
static void callback_result(struct weft_source *s, int r)
{
	char buf[64];

	if (r < 0 && weft_log_enabled(WEFT_LOG_DEBUG))
		weft_log(WEFT_LOG_DEBUG, r, "loop: %s callback failed: %m", source_desc(s, buf, sizeof(buf)));
}

static struct weft_source *source_new(struct weft_loop *loop, enum source_type type, void *userdata, bool floating)
{
	struct weft_source *s = wcalloc(1, sizeof(*s));

	s->loop = loop;
	s->type = type;
	s->userdata = userdata;
	s->floating = floating;
	s->next = loop->sources;
	if (loop->sources)
		loop->sources->prev = s;
	loop->sources = s;
	return s;
}

static void source_unlink(struct weft_source *s)
{
	struct weft_loop *loop = s->loop;

	if (s->prev)
		s->prev->next = s->next;
	else
		loop->sources = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

static void source_release(struct weft_source *s)
{
	free(s->desc);
	free(s);
}

/* ---- timer heap ---- */

static bool heap_less(struct weft_source *a, struct weft_source *b)
{
	return a->timer.when < b->timer.when;
}

static void heap_set(struct weft_loop *loop, size_t i, struct weft_source *s)
{
	loop->heap[i] = s;
	s->timer.idx = i;
}

static void heap_up(struct weft_loop *loop, size_t i)
{
	struct weft_source *s = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!heap_less(s, loop->heap[parent]))
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, s);
}

static void heap_down(struct weft_loop *loop, size_t i)
{
	struct weft_source *s = loop->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = l;
		if (l >= loop->heap_len)
			break;
		if (r < loop->heap_len && heap_less(loop->heap[r], loop->heap[l]))
			min = r;
		if (!heap_less(loop->heap[min], s))
			break;
		heap_set(loop, i, loop->heap[min]);
		i = min;
	}
	heap_set(loop, i, s);
}

static void heap_insert(struct weft_loop *loop, struct weft_source *s)
{
	if (loop->heap_len == loop->heap_cap) {
		loop->heap_cap = loop->heap_cap ? 2 * loop->heap_cap : 16;
		loop->heap = wrealloc(loop->heap, loop->heap_cap * sizeof(*loop->heap));
	}
	heap_set(loop, loop->heap_len++, s);
	heap_up(loop, s->timer.idx);
}

static void heap_remove(struct weft_loop *loop, struct weft_source *s)
{
	size_t i = s->timer.idx;

	if (i == HEAP_NONE)
		return;
	s->timer.idx = HEAP_NONE;
	loop->heap_len--;
	if (i == loop->heap_len)
		return;
	heap_set(loop, i, loop->heap[loop->heap_len]);
	heap_up(loop, i);
	heap_down(loop, loop->heap[i]->timer.idx);
}

/* Point the timerfd at the earliest timer, or disarm it. */
static int timerfd_update(struct weft_loop *loop)
{
	int64_t when = loop->heap_len ? loop->heap[0]->timer.when : 0;
	struct itimerspec its = {0};

	if (when == loop->timerfd_armed)
		return 0;
	if (when > 0) {
		its.it_value.tv_sec = when / 1000000000;
		its.it_value.tv_nsec = when % 1000000000;
	} else if (loop->heap_len) {
		/* An expiry at or before the clock's epoch: fire at once. */
		its.it_value.tv_nsec = 1;
		when = 1;
	}
	if (timerfd_settime(loop->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	loop->timerfd_armed = when;
	return 0;
}

/* ---- loop ---- */

int weft_loop_new(struct weft_loop **out)
{
	struct weft_loop *loop = wcalloc(1, sizeof(*loop));
	struct epoll_event ev = {.events = EPOLLIN};
	const char *env = getenv("WEFT_LOOP_NO_PIDFD");
	int r;

	loop->sigfd = -1;
	loop->timerfd = -1;
	sigemptyset(&loop->sigmask);
	loop->timerfd_src.type = SOURCE_TIMERFD;
	loop->timerfd_src.loop = loop;
	loop->sigfd_src.type = SOURCE_SIGNALFD;
	loop->sigfd_src.loop = loop;
	/* A debugging knob (and the way the tests reach it) to exercise the
	 * SIGCHLD fallback on kernels that do have pidfds. */
	loop->no_pidfd = env && streq(env, "1");

	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		goto fail;
	loop->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (loop->timerfd < 0)
		goto fail;
	ev.data.ptr = &loop->timerfd_src;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->timerfd, &ev) < 0)
		goto fail;
	loop->now = weft_now_ns();
	*out = loop;
	return 0;
fail:
	r = -errno;
	weft_loop_free(loop);
	return r;
}

void weft_loop_free(struct weft_loop *loop)
{
	if (!loop)
		return;
	while (loop->sources)
		weft_source_free(loop->sources);
	while (loop->garbage) {
		struct weft_source *s = loop->garbage;
		loop->garbage = s->next;
		source_release(s);
	}
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	if (loop->timerfd >= 0)
		close(loop->timerfd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop->heap);
	free(loop->defers);
	free(loop);
}

void weft_loop_exit(struct weft_loop *loop, int code)
{
	loop->exiting = true;
	loop->exit_code = code;
}

int64_t weft_loop_now(struct weft_loop *loop)
{
	return loop->now;
}

struct weft_loop *weft_source_loop(struct weft_source *s)
{
	return s->loop;
}

void *weft_source_userdata(struct weft_source *s)
{
	return s->userdata;
}

void weft_source_set_description(struct weft_source *s, const char *desc)
{
	free(s->desc);
	s->desc = desc ? wstrdup(desc) : NULL;
}

/* ---- io ---- */

int weft_loop_add_io(struct weft_loop *loop, int fd, uint32_t events, weft_io_fn cb, void *userdata,
		     struct weft_source **out)
{
	struct epoll_event ev = {.events = events};
	struct weft_source *s;

	if (fd < 0 || !cb)
		return -EINVAL;
	s = source_new(loop, SOURCE_IO, userdata, !out);
	s->io.fd = fd;
	s->io.events = events;
	s->io.cb = cb;
	ev.data.ptr = s;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		source_unlink(s);
		source_release(s);
		return r;
	}
	if (out)
		*out = s;
	return 0;
}

int weft_source_io_set_events(struct weft_source *s, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = s};

	if (!s || s->type != SOURCE_IO || s->dead)
		return -EINVAL;
	if (epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->io.fd, &ev) < 0)
		return -errno;
	s->io.events = events;
	return 0;
}

/* ---- timers ---- */

int weft_loop_add_timer_at(struct weft_loop *loop, int64_t when_ns, int64_t period_ns, weft_timer_fn cb,
			   void *userdata, struct weft_source **out)
{
	struct weft_source *s;

	if (period_ns < 0 || !cb)
		return -EINVAL;
	s = source_new(loop, SOURCE_TIMER, userdata, !out);
	s->timer.cb = cb;
	s->timer.idx = HEAP_NONE;
	weft_source_timer_set(s, when_ns, period_ns);
	if (out)
		*out = s;
	return 0;
}

int weft_loop_add_timer(struct weft_loop *loop, int64_t delay_ns, int64_t period_ns, weft_timer_fn cb,
			void *userdata, struct weft_source **out)
{
	if (delay_ns < 0)
		return -EINVAL;
	return weft_loop_add_timer_at(loop, weft_now_ns() + delay_ns, period_ns, cb, userdata, out);
}

int weft_source_timer_set(struct weft_source *s, int64_t when_ns, int64_t period_ns)
{
	if (!s || s->type != SOURCE_TIMER || s->dead || period_ns < 0)
		return -EINVAL;
	heap_remove(s->loop, s);
	s->timer.when = when_ns;
	s->timer.period = period_ns;
	s->timer.firing = false;
	heap_insert(s->loop, s);
	/* Outside dispatch nobody else re-arms the timerfd before epoll_wait. */
	if (!s->loop->dispatching)
		timerfd_update(s->loop);
	return 0;
}

int weft_source_timer_stop(struct weft_source *s)
{
	if (!s || s->type != SOURCE_TIMER || s->dead)
		return -EINVAL;
	heap_remove(s->loop, s);
	s->timer.firing = false;
	if (!s->loop->dispatching)
		timerfd_update(s->loop);
	return 0;
}

/* ---- signals ---- */

static int sigfd_update(struct weft_loop *loop)
{
	int fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (loop->sigfd < 0) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &loop->sigfd_src};
		if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			int r = -errno;
			close(fd);
			return r;
		}
		loop->sigfd = fd;
	}
	return 0;
}

/* Add sig to the signalfd mask and block it for the process. */
static int signal_watch(struct weft_loop *loop, int sig)
{
	sigset_t one;
	int r;

	sigemptyset(&one);
	sigaddset(&one, sig);
	if (sigprocmask(SIG_BLOCK, &one, NULL) < 0)
		return -errno;
	sigaddset(&loop->sigmask, sig);
	r = sigfd_update(loop);
	if (r < 0)
		sigdelset(&loop->sigmask, sig);
	return r;
}

static void signal_unwatch(struct weft_loop *loop, int sig)
{
	/* The fallback child reaper keeps SIGCHLD on the signalfd. */
	if (sig == SIGCHLD && loop->nchildren_fallback > 0)
		return;
	sigdelset(&loop->sigmask, sig);
	if (loop->sigfd >= 0)
		sigfd_update(loop);
}

int weft_loop_add_signal(struct weft_loop *loop, int sig, weft_signal_fn cb, void *userdata,
			 struct weft_source **out)
{
	struct weft_source *s;
	int r;

	if (sig <= 0 || sig >= _NSIG || sig == SIGKILL || sig == SIGSTOP || !cb)
		return -EINVAL;
	if (loop->signals[sig])
		return -EBUSY;
	r = signal_watch(loop, sig);
	if (r < 0)
		return r;
	s = source_new(loop, SOURCE_SIGNAL, userdata, !out);
	s->signal.sig = sig;
	s->signal.cb = cb;
	loop->signals[sig] = s;
	if (out)
		*out = s;
	return 0;
}

/* ---- children ---- */

int weft_loop_add_child(struct weft_loop *loop, pid_t pid, weft_child_fn cb, void *userdata,
			struct weft_source **out)
{
	struct weft_source *s;
	int pidfd = -1;

	if (pid <= 0 || !cb)
		return -EINVAL;
	if (!loop->no_pidfd) {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0 && errno != ENOSYS)
			return -errno;
		if (pidfd < 0)
			loop->no_pidfd = true;
	}
	if (pidfd >= 0) {
		struct epoll_event ev = {.events = EPOLLIN};
		int r;

		s = source_new(loop, SOURCE_CHILD, userdata, !out);
		ev.data.ptr = s;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
			r = -errno;
			close(pidfd);
			source_unlink(s);
			source_release(s);
			return r;
		}
	} else {
		int r;

		if (kill(pid, 0) < 0 && errno == ESRCH)
			return -ESRCH;
		if (loop->nchildren_fallback == 0 && !sigismember(&loop->sigmask, SIGCHLD)) {
			r = signal_watch(loop, SIGCHLD);
			if (r < 0)
				return r;
		}
		loop->nchildren_fallback++;
		s = source_new(loop, SOURCE_CHILD, userdata, !out);
		/* The child may have exited before SIGCHLD was blocked. */
		loop->child_check = true;
	}
	s->child.pid = pid;
	s->child.pidfd = pidfd;
	s->child.cb = cb;
	if (out)
		*out = s;
	return 0;
}

static void child_detach(struct weft_source *s)
{
	struct weft_loop *loop = s->loop;

	if (s->child.pidfd >= 0) {
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, s->child.pidfd, NULL);
		close(s->child.pidfd);
		s->child.pidfd = -1;
	} else if (!s->child.exited) {
		if (--loop->nchildren_fallback == 0 && !loop->signals[SIGCHLD])
			signal_unwatch(loop, SIGCHLD);
	}
}

/* Run the callback of an exited child, then free it if floating. */
static void child_dispatch(struct weft_source *s, const siginfo_t *si)
{
	child_detach(s);
	s->child.exited = true;
	callback_result(s, s->child.cb(s, si, s->userdata));
	if (s->floating && !s->dead)
		weft_source_free(s);
}

static int child_pidfd_event(struct weft_source *s)
{
	siginfo_t si = {0};

	if (waitid(P_PIDFD, s->child.pidfd, &si, WEXITED | WNOHANG) < 0)
		return -errno;
	if (si.si_pid == 0)
		return 0; /* not exited after all */
	child_dispatch(s, &si);
	return 1;
}

/* Fallback mode: poll every child source with waitid(WNOHANG). */
static int child_sweep(struct weft_loop *loop)
{
	struct weft_source **list = NULL;
	size_t n = 0, cap = 0;
	int dispatched = 0;

	loop->child_check = false;
	for (struct weft_source *s = loop->sources; s; s = s->next) {
		if (s->type != SOURCE_CHILD || s->child.exited || s->child.pidfd >= 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			list = wrealloc(list, cap * sizeof(*list));
		}
		list[n++] = s;
	}
	for (size_t i = 0; i < n && !loop->exiting; i++) {
		siginfo_t si = {0};
		if (list[i]->dead)
			continue;
		if (waitid(P_PID, list[i]->child.pid, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
			continue;
		child_dispatch(list[i], &si);
		dispatched = 1;
	}
	free(list);
	return dispatched;
}

/* ---- deferred ---- */

int weft_loop_add_defer(struct weft_loop *loop, weft_defer_fn cb, void *userdata, struct weft_source **out)
{
	struct weft_source *s;

	if (!cb)
		return -EINVAL;
	s = source_new(loop, SOURCE_DEFER, userdata, !out);
	s->defer.cb = cb;
	weft_source_defer_arm(s);
	if (out)
		*out = s;
	return 0;
}

int weft_source_defer_arm(struct weft_source *s)
{
	struct weft_loop *loop;

	if (!s || s->type != SOURCE_DEFER || s->dead)
		return -EINVAL;
	if (s->defer.armed)
		return 0;
	loop = s->loop;
	if (loop->defers_len == loop->defers_cap) {
		loop->defers_cap = loop->defers_cap ? 2 * loop->defers_cap : 16;
		loop->defers = wrealloc(loop->defers, loop->defers_cap * sizeof(*loop->defers));
	}
	loop->defers[loop->defers_len++] = s;
	s->defer.armed = true;
	return 0;
}

static void defer_unarm(struct weft_source *s)
{
	struct weft_loop *loop = s->loop;

	if (!s->defer.armed)
		return;
	s->defer.armed = false;
	for (size_t i = 0; i < loop->defers_len; i++) {
		if (loop->defers[i] == s) {
			memmove(&loop->defers[i], &loop->defers[i + 1],
				(loop->defers_len - i - 1) * sizeof(*loop->defers));
			loop->defers_len--;
			return;
		}
	}
}

/* ---- freeing ---- */

void weft_source_free(struct weft_source *s)
{
	struct weft_loop *loop;

	if (!s || s->dead)
		return;
	loop = s->loop;
	switch (s->type) {
	case SOURCE_IO:
		/* The fd may be closed already, in which case epoll forgot it. */
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, s->io.fd, NULL);
		break;
	case SOURCE_TIMER:
		heap_remove(loop, s);
		break;
	case SOURCE_SIGNAL:
		loop->signals[s->signal.sig] = NULL;
		signal_unwatch(loop, s->signal.sig);
		break;
	case SOURCE_CHILD:
		child_detach(s);
		break;
	case SOURCE_DEFER:
		defer_unarm(s);
		break;
	default:
		break;
	}
	source_unlink(s);
	s->dead = true;
	if (loop->dispatching) {
		s->next = loop->garbage;
		loop->garbage = s;
	} else {
		source_release(s);
	}
}

/* ---- dispatch ---- */

static int dispatch_signals(struct weft_loop *loop)
{
	struct signalfd_siginfo si;
	int dispatched = 0;

	while (!loop->exiting) {
		ssize_t n = read(loop->sigfd, &si, sizeof(si));
		struct weft_source *s;

		if (n != (ssize_t)sizeof(si))
			break;
		if (si.ssi_signo == SIGCHLD && loop->nchildren_fallback > 0)
			loop->child_check = true;
		if (si.ssi_signo >= _NSIG)
			continue;
		s = loop->signals[si.ssi_signo];
		if (!s)
			continue;
		callback_result(s, s->signal.cb(s, &si, s->userdata));
		dispatched = 1;
	}
	return dispatched;
}

static int dispatch_timers(struct weft_loop *loop)
{
	struct weft_source **due = NULL;
	size_t n = 0, cap = 0;
	uint64_t ticks;

	/* Only clears readiness; the heap is the truth. */
	while (read(loop->timerfd, &ticks, sizeof(ticks)) > 0)
		;
	loop->timerfd_armed = -1;

	/* Collect first, so that a timer re-armed for "now" by its callback
	 * runs in the next iteration instead of looping here forever. */
	while (loop->heap_len && loop->heap[0]->timer.when <= loop->now) {
		struct weft_source *s = loop->heap[0];
		heap_remove(loop, s);
		s->timer.firing = true;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			due = wrealloc(due, cap * sizeof(*due));
		}
		due[n++] = s;
	}
	for (size_t i = 0; i < n && !loop->exiting; i++) {
		struct weft_source *s = due[i];
		int64_t when;

		/* Freed, stopped or re-set by an earlier callback. */
		if (s->dead || !s->timer.firing)
			continue;
		s->timer.firing = false;
		when = s->timer.when;
		if (s->timer.period > 0) {
			/* Keep the phase; skip the ticks we missed. */
			int64_t missed = (loop->now - when) / s->timer.period;
			s->timer.when = when + (missed + 1) * s->timer.period;
			heap_insert(loop, s);
		}
		callback_result(s, s->timer.cb(s, loop->now, s->userdata));
		if (s->floating && !s->dead && s->timer.idx == HEAP_NONE)
			weft_source_free(s);
	}
	/* Timers left behind by an exit stay armed for a later run. */
	for (size_t i = 0; i < n; i++) {
		if (!due[i]->dead && due[i]->timer.firing) {
			due[i]->timer.firing = false;
			heap_insert(loop, due[i]);
		}
	}
	free(due);
	return n > 0;
}

static int dispatch_defers(struct weft_loop *loop)
{
	struct weft_source **list = loop->defers;
	size_t n = loop->defers_len;

	if (n == 0)
		return 0;
	/* Snapshot: sources armed from here on run in the next iteration. */
	loop->defers = NULL;
	loop->defers_len = loop->defers_cap = 0;
	for (size_t i = 0; i < n; i++) {
		struct weft_source *s = list[i];

		if (s->dead)
			continue;
		if (loop->exiting) {
			/* Keep it armed for a later run. */
			s->defer.armed = false;
			weft_source_defer_arm(s);
			continue;
		}
		s->defer.armed = false;
		callback_result(s, s->defer.cb(s, s->userdata));
		if (s->floating && !s->dead && !s->defer.armed)
			weft_source_free(s);
	}
	free(list);
	return 1;
}

int weft_loop_run_once(struct weft_loop *loop, int timeout_ms)
{
	struct epoll_event events[64];
	bool timers_due = false;
	int n, r, dispatched = 0;

	if (loop->defers_len > 0 || loop->child_check)
		timeout_ms = 0;
	r = timerfd_update(loop);
	if (r < 0)
		return r;
	n = epoll_wait(loop->epfd, events, (int)ARRAY_SIZE(events), timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;

	loop->now = weft_now_ns();
	loop->dispatching = true;
	for (int i = 0; i < n && !loop->exiting; i++) {
		struct weft_source *s = events[i].data.ptr;

		if (s->dead)
			continue;
		switch (s->type) {
		case SOURCE_IO:
			callback_result(s, s->io.cb(s, s->io.fd, events[i].events, s->userdata));
			dispatched = 1;
			break;
		case SOURCE_CHILD:
			if (!s->child.exited && s->child.pidfd >= 0 && child_pidfd_event(s) > 0)
				dispatched = 1;
			break;
		case SOURCE_SIGNALFD:
			if (dispatch_signals(loop))
				dispatched = 1;
			break;
		case SOURCE_TIMERFD:
			timers_due = true;
			break;
		default:
			break;
		}
	}
	if (!loop->exiting && loop->child_check && child_sweep(loop))
		dispatched = 1;
	if (!loop->exiting && (timers_due || (loop->heap_len && loop->heap[0]->timer.when <= loop->now)))
		if (dispatch_timers(loop))
			dispatched = 1;
	if (!loop->exiting && dispatch_defers(loop))
		dispatched = 1;
	loop->dispatching = false;

	while (loop->garbage) {
		struct weft_source *s = loop->garbage;
		loop->garbage = s->next;
		source_release(s);
	}
	return dispatched;
}

int weft_loop_run(struct weft_loop *loop)
{
	while (!loop->exiting) {
		int r = weft_loop_run_once(loop, -1);
		if (r < 0)
			return r;
	}
	/* Allow the loop to be run again. */
	loop->exiting = false;
	return loop->exit_code;
}
