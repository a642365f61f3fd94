/* weftd-teardown.c - the kernel half of DEL, off the request path.
 *
 * Deleting a veth costs the kernel 15-25 ms (unregister_netdevice waits
 * for an RCU grace period while holding rtnl), several times what the rest
 * of a CNI DEL costs. DEL therefore releases the attachment's durable
 * state (IPAM handle, Endpoint record), queues the host veth (and its ifb)
 * for deletion and answers; one worker thread deletes queued devices.
 * docs/weftd.md ("Asynchronous teardown") gives the reasoning; in short:
 *
 *  - The worker deletes by device name only (the host veth, then its ifb),
 *    never a route by destination: the released address may already be
 *    routed to a new pod's veth, and that route (installed with replace)
 *    is not the old device's, so it survives the old device's deletion.
 *  - An ADD or CHECK whose host ifname, or whose pod netns + ifname,
 *    matches a queued teardown waits for it (weftd_td_busy()), so the
 *    worker never removes a device that a later ADD created. The jobs
 *    ADDs wait for are taken first.
 *  - Sharing: the worker touches nothing of the loop's but `shared` below
 *    (mutex-protected) and the eventfd it writes after each finished job.
 *    A job is owned by the loop until it is put on `todo`, by the worker
 *    from when it takes it off `todo` until it puts it on `done`, and by
 *    the loop again once taken off `done`. The loop's own list of
 *    outstanding jobs (`pending`, keyed copies) is never seen by the
 *    worker.
 *  - The worker uses no store, no IPAM, no loop: only netlink sockets of
 *    its own (weft_dp_routed_del opens one per job in the node namespace,
 *    the worker's namespace, which it never changes) and the logger.
 *
 * Return convention: 0 or a negative errno.
 */
#include "felix/dataplane.h"
#include "felix/weftd.h"
#include "lib/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>

struct td_job {
	struct td_job *next; /* on todo or done: under shared.lock */
	uint64_t id;
	char *container_id, *ifname;
	char host_ifname[IFNAMSIZ];
	int result;     /* set by the worker */
	char *errmsg;   /* set by the worker */
	int64_t queued_ns;
	bool urgent; /* under shared.lock: an ADD waits for it */
};

/* The loop's view of an outstanding job: a copy of its keys. */
struct td_pending {
	struct td_pending *next;
	uint64_t id;
	char host_ifname[IFNAMSIZ];
	char *ifname;
	char *netns;            /* path as given at DEL, may be NULL */
	dev_t ns_dev;           /* identity of that netns at DEL (0: unknown) */
	ino_t ns_ino;
};

struct weftd_td {
	struct weft_loop *loop;
	struct weft_source *efd_src;
	int efd;
	pthread_t thread;
	bool started;
	uint64_t next_id;
	struct td_pending *pending; /* loop only */
	size_t npending;            /* loop only */
	weftd_td_done_fn on_done;
	void *userdata;
	int delay_ms; /* WEFT_TEARDOWN_DELAY_MS, for tests: a slow kernel */

	struct {
		pthread_mutex_t lock;
		pthread_cond_t wake;     /* todo got a job, or stop */
		pthread_cond_t finished; /* the worker has exited */
		struct td_job *todo_head, **todo_tail;
		struct td_job *done_head, **done_tail;
		size_t nurgent; /* jobs on todo marked urgent */
		bool stop;     /* finish todo, then exit */
		bool exited;
	} shared;
};

static void job_free(struct td_job *j)
{
	if (!j)
		return;
	free(j->container_id);
	free(j->ifname);
	free(j->errmsg);
	free(j);
}

static void pending_free(struct td_pending *p)
{
	free(p->ifname);
	free(p->netns);
	free(p);
}

/* Take the next job off todo (under the lock): the first urgent one if
 * any, else the oldest. */
static struct td_job *take(struct weftd_td *td)
{
	struct td_job **jp = &td->shared.todo_head, *j;

	if (td->shared.nurgent)
		while ((*jp)->next && !(*jp)->urgent)
			jp = &(*jp)->next;
	j = *jp;
	*jp = j->next;
	if (!j->next)
		td->shared.todo_tail = jp;
	if (j->urgent)
		td->shared.nurgent--;
	j->next = NULL;
	return j;
}

static void *worker(void *arg)
{
	struct weftd_td *td = arg;

	pthread_mutex_lock(&td->shared.lock);
	for (;;) {
		struct td_job *j;
		uint64_t one = 1;

		while (!td->shared.todo_head && !td->shared.stop)
			pthread_cond_wait(&td->shared.wake, &td->shared.lock);
		if (!td->shared.todo_head)
			break; /* stop, and nothing left to do */
		j = take(td);
		pthread_mutex_unlock(&td->shared.lock);
		if (td->delay_ms > 0)
			nanosleep(&(struct timespec){.tv_sec = td->delay_ms / 1000,
						     .tv_nsec = (long)(td->delay_ms % 1000) * 1000000},
				  NULL);

		/* Slow part, without the lock: the loop can queue meanwhile.
		 * Already gone (ENODEV: the runtime deleted the pod netns and
		 * the pair with it) counts as success in weft_dp_routed_del. */
		j->result = weft_dp_routed_del(j->container_id, j->ifname, &j->errmsg);

		pthread_mutex_lock(&td->shared.lock);
		*td->shared.done_tail = j;
		td->shared.done_tail = &j->next;
		/* An eventfd write only fails when the counter would overflow,
		 * which the loop's reads prevent. */
		if (write(td->efd, &one, sizeof(one)) < 0)
			log_debug("teardown: eventfd write: %m");
	}
	td->shared.exited = true;
	pthread_cond_broadcast(&td->shared.finished);
	pthread_mutex_unlock(&td->shared.lock);
	return NULL;
}

/* Take the finished jobs: forget their pending entries, log failures. */
static size_t collect(struct weftd_td *td)
{
	struct td_job *list;
	size_t n = 0;

	pthread_mutex_lock(&td->shared.lock);
	list = td->shared.done_head;
	td->shared.done_head = NULL;
	td->shared.done_tail = &td->shared.done_head;
	pthread_mutex_unlock(&td->shared.lock);

	while (list) {
		struct td_job *j = list;
		list = j->next;
		for (struct td_pending **pp = &td->pending; *pp; pp = &(*pp)->next)
			if ((*pp)->id == j->id) {
				struct td_pending *p = *pp;
				*pp = p->next;
				pending_free(p);
				td->npending--;
				break;
			}
		if (j->result < 0)
			/* The record is gone already, so start-up
			 * reconciliation's sweep (or GC) reclaims the device. */
			log_warn("teardown of %s (%s:%s) failed: %s", j->host_ifname, j->container_id, j->ifname,
				 j->errmsg ? j->errmsg : strerror(-j->result));
		else
			log_debug("teardown of %s done after %" PRId64 " ms", j->host_ifname,
				  (weft_now_ns() - j->queued_ns) / 1000000);
		job_free(j);
		n++;
	}
	return n;
}

static int on_efd(struct weft_source *s, int fd, uint32_t revents, void *userdata)
{
	struct weftd_td *td = userdata;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return log_warn_errno(-errno, "teardown: eventfd read: %m");
	if (collect(td) > 0 && td->on_done)
		td->on_done(td->userdata);
	return 0;
}

int weftd_td_start(struct weft_loop *loop, weftd_td_done_fn on_done, void *userdata, struct weftd_td **out)
{
	struct weftd_td *td = wcalloc(1, sizeof(*td));
	sigset_t all, old;
	int r;

	const char *delay = getenv("WEFT_TEARDOWN_DELAY_MS");
	int64_t ms;

	td->loop = loop;
	td->on_done = on_done;
	td->userdata = userdata;
	td->next_id = 1;
	/* Tests make teardowns slow to have some queued at exit or at a
	 * crash (a real teardown is a few ms). */
	if (delay && weft_parse_int64(delay, 0, 1000, &ms) == 0)
		td->delay_ms = (int)ms;
	td->shared.todo_tail = &td->shared.todo_head;
	td->shared.done_tail = &td->shared.done_head;
	pthread_mutex_init(&td->shared.lock, NULL);
	pthread_cond_init(&td->shared.wake, NULL);
	pthread_cond_init(&td->shared.finished, NULL);
	td->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (td->efd < 0) {
		r = -errno;
		goto fail;
	}
	r = weft_loop_add_io(loop, td->efd, EPOLLIN, on_efd, td, &td->efd_src);
	if (r < 0)
		goto fail;
	weft_source_set_description(td->efd_src, "teardown completions");
	/* The worker must never take a signal: the loop receives them through
	 * its signalfd, and a thread with SIGTERM unblocked would get the
	 * default action (death) instead. The new thread inherits this mask. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&td->thread, NULL, worker, td);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto fail;
	td->started = true;
	*out = td;
	return 0;
fail:
	weft_source_free(td->efd_src);
	if (td->efd >= 0)
		close(td->efd);
	pthread_mutex_destroy(&td->shared.lock);
	pthread_cond_destroy(&td->shared.wake);
	pthread_cond_destroy(&td->shared.finished);
	free(td);
	return r;
}

static bool ns_identity(const char *path, dev_t *dev, ino_t *ino)
{
	struct stat st;

	if (!path || !*path || stat(path, &st) < 0)
		return false;
	*dev = st.st_dev;
	*ino = st.st_ino;
	return true;
}

int weftd_td_queue_routed(struct weftd_td *td, const char *container_id, const char *ifname, const char *netns)
{
	struct td_job *j;
	struct td_pending *p;

	if (!td || td->npending >= WEFTD_TD_MAX_QUEUE)
		return -EAGAIN;
	j = wcalloc(1, sizeof(*j));
	p = wcalloc(1, sizeof(*p));
	j->id = p->id = td->next_id++;
	j->container_id = wstrdup(container_id);
	j->ifname = wstrdup(ifname);
	j->queued_ns = weft_now_ns();
	weft_dp_host_ifname(container_id, ifname, j->host_ifname);
	memcpy(p->host_ifname, j->host_ifname, IFNAMSIZ);
	p->ifname = wstrdup(ifname);
	p->netns = netns && *netns ? wstrdup(netns) : NULL;
	(void)ns_identity(netns, &p->ns_dev, &p->ns_ino);
	p->next = td->pending;
	td->pending = p;
	td->npending++;

	pthread_mutex_lock(&td->shared.lock);
	*td->shared.todo_tail = j;
	td->shared.todo_tail = &j->next;
	pthread_cond_signal(&td->shared.wake);
	pthread_mutex_unlock(&td->shared.lock);
	return 0;
}

/* Mark job id urgent, if the worker has not taken it yet: an ADD waits
 * for it, while the jobs ahead of it (a burst of DELs) have no one
 * waiting. The worker takes urgent jobs first, in queue order, so waiting
 * ADDs are served first come, first served (moving the job to the head
 * instead would let every newly arriving ADD overtake the ones already
 * waiting). */
static void expedite(struct weftd_td *td, uint64_t id)
{
	pthread_mutex_lock(&td->shared.lock);
	for (struct td_job *j = td->shared.todo_head; j; j = j->next)
		if (j->id == id) {
			if (!j->urgent) {
				j->urgent = true;
				td->shared.nurgent++;
			}
			break;
		}
	pthread_mutex_unlock(&td->shared.lock);
}

const char *weftd_td_busy(struct weftd_td *td, const char *host_ifname, const char *netns, const char *ifname)
{
	dev_t dev = 0;
	ino_t ino = 0;
	bool have_id;

	if (!td || !td->pending)
		return NULL;
	have_id = ns_identity(netns, &dev, &ino);
	for (struct td_pending *p = td->pending; p; p = p->next) {
		if (host_ifname && streq(p->host_ifname, host_ifname)) {
			expedite(td, p->id);
			return p->host_ifname;
		}
		if (!ifname || !streq(p->ifname, ifname))
			continue;
		/* The same pod namespace: by path, or by identity (another
		 * path to the same namespace, e.g. /proc/PID/ns/net). */
		if ((netns && p->netns && streq(netns, p->netns)) ||
		    (have_id && p->ns_ino && p->ns_dev == dev && p->ns_ino == ino)) {
			expedite(td, p->id);
			return p->host_ifname;
		}
	}
	return NULL;
}

size_t weftd_td_pending(const struct weftd_td *td)
{
	return td ? td->npending : 0;
}

int weftd_td_stop(struct weftd_td *td, int timeout_ms)
{
	struct timespec deadline;
	size_t left;
	bool exited;
	int r = 0;

	if (!td)
		return 0;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	if (td->npending)
		log_info("finishing %zu queued teardown(s) before exiting", td->npending);
	pthread_mutex_lock(&td->shared.lock);
	td->shared.stop = true;
	pthread_cond_signal(&td->shared.wake);
	while (!td->shared.exited && r == 0)
		r = -pthread_cond_timedwait(&td->shared.finished, &td->shared.lock, &deadline);
	exited = td->shared.exited;
	pthread_mutex_unlock(&td->shared.lock);
	if (!exited) {
		/* The kernel is stuck on a device (a leaked reference keeps
		 * unregister_netdevice waiting). Leave the thread to die with
		 * the process; the records are gone, so the next start-up's
		 * sweep deletes whatever is left. Nothing is freed: the worker
		 * may still use it. */
		log_warn("%zu teardown(s) not finished after %d ms; the next start-up sweep removes what is left",
			 td->npending, timeout_ms);
		weft_source_free(td->efd_src);
		td->efd_src = NULL;
		return -ETIMEDOUT;
	}
	pthread_join(td->thread, NULL);
	left = td->npending;
	(void)collect(td);
	if (left)
		log_info("%zu queued teardown(s) finished", left);
	/* Nothing can be on todo: the worker drains it before exiting. */
	weft_source_free(td->efd_src);
	close(td->efd);
	while (td->pending) {
		struct td_pending *p = td->pending;
		td->pending = p->next;
		pending_free(p);
	}
	pthread_mutex_destroy(&td->shared.lock);
	pthread_cond_destroy(&td->shared.wake);
	pthread_cond_destroy(&td->shared.finished);
	free(td);
	return 0;
}
