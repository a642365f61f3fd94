/* loop.h - the single-threaded epoll event loop every weft daemon runs.
 *
 * In the style of sd-event and the OVS poll loop: one loop per process,
 * one thread, callbacks that never block. A loop dispatches five kinds of
 * sources:
 *
 *  - io:     a file descriptor and an EPOLLIN/EPOLLOUT mask.
 *  - timer:  an expiry on the CLOCK_MONOTONIC clock of weft_now_ns(),
 *            relative or absolute, one-shot or periodic. All timers live in
 *            one min-heap; a single timerfd (absolute, nanosecond precision)
 *            is armed to the earliest expiry, so the epoll timeout is only
 *            ever 0 or infinite.
 *  - signal: a signal number delivered through one signalfd. Adding a
 *            signal source blocks that signal for the process (the loop is
 *            meant for single-threaded daemons); freeing the source leaves
 *            it blocked, so a pending SIGTERM never takes its default action
 *            behind the daemon's back.
 *  - child:  the exit of a child process, through a pidfd (pidfd_open).
 *            On kernels without pidfds the loop falls back to SIGCHLD on
 *            the signalfd and waitid(P_PID, WNOHANG). The child is reaped by
 *            the loop; the callback gets the waitid() siginfo.
 *  - defer:  "run once at the next iteration". Arming an already armed
 *            deferred source does nothing, which makes it the tool for
 *            coalescing: every event that invalidates the desired state arms
 *            the same "reconcile" source, and reconcile runs once, after all
 *            events of the iteration.
 *
 * One iteration dispatches, in this order: io and child sources (in the
 * order epoll reports them), signals, expired timers (earliest first), then
 * the deferred sources that were armed when the phase began. A deferred
 * source armed during that phase runs in the next iteration.
 *
 * Callbacks return int. A negative return is logged at debug level (with
 * the source's description) and otherwise ignored: the callback is the one
 * that knows the context, so it logs at the right level itself and decides
 * whether to call weft_loop_exit(). The loop never disables a source on
 * its own.
 *
 * Ownership: weft_loop_add_*() hand the new source to the caller through
 * `out`, and the caller frees it with weft_source_free(). With out == NULL
 * the source is "floating": the loop owns it, frees a floating one-shot
 * timer, child or deferred source after its callback ran, and frees every
 * other floating source in weft_loop_free(). weft_source_free() is safe to
 * call from any callback, including the source's own; the memory is then
 * released at the end of the iteration. weft_loop_free() frees every
 * source still attached, so handles must not be used after it.
 *
 * Out of memory aborts (wmalloc); functions return 0 or a negative errno,
 * with outputs untouched on failure.
 */
#ifndef WEFT_LOOP_H
#define WEFT_LOOP_H

#include "lib/util.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/types.h>

struct weft_loop;
struct weft_source;

typedef int (*weft_io_fn)(struct weft_source *s, int fd, uint32_t revents, void *userdata);
/* now_ns is the loop's clock for this iteration (weft_loop_now()). */
typedef int (*weft_timer_fn)(struct weft_source *s, int64_t now_ns, void *userdata);
typedef int (*weft_signal_fn)(struct weft_source *s, const struct signalfd_siginfo *si, void *userdata);
/* si->si_code is CLD_EXITED (si_status = exit code), CLD_KILLED or CLD_DUMPED
 * (si_status = signal). The child is reaped already. */
typedef int (*weft_child_fn)(struct weft_source *s, const siginfo_t *si, void *userdata);
typedef int (*weft_defer_fn)(struct weft_source *s, void *userdata);

/* Create a loop. Returns 0 or a negative errno (epoll/timerfd creation). */
int weft_loop_new(struct weft_loop **out);
/* Free the loop and every source still attached to it. Accepts NULL.
 * Must not be called from a callback. */
void weft_loop_free(struct weft_loop *loop);
static inline void weft_loop_freep(struct weft_loop **l) { weft_loop_free(*l); }
#define _cleanup_loop_ __attribute__((cleanup(weft_loop_freep)))

/* Run iterations until weft_loop_exit(). Returns the exit code given to
 * weft_loop_exit(), or a negative errno if epoll_wait() fails. */
int weft_loop_run(struct weft_loop *loop);
/* Run one iteration, waiting at most timeout_ms (-1: forever) for an event.
 * Returns 1 if something was dispatched, 0 on timeout, a negative errno on
 * failure. Meant for tests and for code that embeds the loop. */
int weft_loop_run_once(struct weft_loop *loop, int timeout_ms);
/* Ask weft_loop_run() to return code. The current callback finishes, no
 * further callback of the iteration runs. */
void weft_loop_exit(struct weft_loop *loop, int code);
/* The monotonic time (weft_now_ns() clock) cached at the start of the
 * current iteration: cheap, and the same for every callback in it. */
int64_t weft_loop_now(struct weft_loop *loop);

/* Watch fd for events (EPOLLIN, EPOLLOUT, ...). The loop never closes fd.
 * Returns 0 or a negative errno from epoll_ctl (e.g. -EPERM for a regular
 * file, -EEXIST if fd is already watched by this loop). */
int weft_loop_add_io(struct weft_loop *loop, int fd, uint32_t events, weft_io_fn cb, void *userdata,
		     struct weft_source **out);
/* Change the event mask of an io source. Returns 0, -EINVAL (not an io
 * source) or a negative errno from epoll_ctl. */
int weft_source_io_set_events(struct weft_source *s, uint32_t events);

/* A timer firing delay_ns from now, then every period_ns (0: once).
 * Returns 0 or -EINVAL (negative delay or period). */
int weft_loop_add_timer(struct weft_loop *loop, int64_t delay_ns, int64_t period_ns, weft_timer_fn cb,
			void *userdata, struct weft_source **out);
/* The same with an absolute expiry on the weft_now_ns() clock. */
int weft_loop_add_timer_at(struct weft_loop *loop, int64_t when_ns, int64_t period_ns, weft_timer_fn cb,
			   void *userdata, struct weft_source **out);
/* Re-arm a timer for when_ns (absolute) with period_ns (0: once); works on
 * an expired one-shot timer too. Returns 0 or -EINVAL. */
int weft_source_timer_set(struct weft_source *s, int64_t when_ns, int64_t period_ns);
/* Stop a timer without freeing it. Returns 0 or -EINVAL. */
int weft_source_timer_stop(struct weft_source *s);

/* Dispatch signal sig (SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1 ...) to cb.
 * Blocks sig for the process. Returns 0, -EINVAL (bad or unblockable
 * signal), -EBUSY (sig already has a source in this loop) or a negative
 * errno from signalfd. */
int weft_loop_add_signal(struct weft_loop *loop, int sig, weft_signal_fn cb, void *userdata,
			 struct weft_source **out);

/* Call cb once when child pid exits, and reap it. pid must be a child of
 * this process that nobody else waits for. Returns 0, -EINVAL, -ESRCH (no
 * such process) or a negative errno. */
int weft_loop_add_child(struct weft_loop *loop, pid_t pid, weft_child_fn cb, void *userdata,
			struct weft_source **out);

/* A deferred source, armed: cb runs once in the next iteration. */
int weft_loop_add_defer(struct weft_loop *loop, weft_defer_fn cb, void *userdata, struct weft_source **out);
/* Arm a deferred source again (nothing happens if it is armed already).
 * Returns 0 or -EINVAL (not a deferred source). */
int weft_source_defer_arm(struct weft_source *s);

/* Detach and free a source. Safe inside any callback, its own included.
 * Accepts NULL. */
void weft_source_free(struct weft_source *s);
static inline void weft_source_freep(struct weft_source **s) { weft_source_free(*s); }
#define _cleanup_source_ __attribute__((cleanup(weft_source_freep)))

/* A short text naming the source in debug logs (copied). */
void weft_source_set_description(struct weft_source *s, const char *desc);
struct weft_loop *weft_source_loop(struct weft_source *s);
void *weft_source_userdata(struct weft_source *s);

#endif
