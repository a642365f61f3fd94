/* api.c - weftd's local API server; see api.h for the protocol.
 *
 * A connection goes through two phases on the loop: READ (EPOLLIN until
 * EOF, the request bounded by WEFTD_API_MAX_REQUEST) and WRITE (EPOLLOUT
 * until the whole answer is out). One timer per connection enforces the
 * deadline of both. The handler is called between the two, synchronously.
 * A request the handler puts off is PARKED in between: no events watched
 * (but hang-ups), a park timer, and the handler is called again on
 * weftd_api_resume() or when the timer fires (then it must answer).
 */
#include "felix/api.h"
#include "lib/log.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

struct api_conn {
	struct weftd_api *api;
	struct api_conn *prev, *next;
	int fd;
	struct weft_source *io, *timer;
	struct weft_buf in;
	char *out;
	size_t out_len, out_off;
	bool writing;
	bool parked;
	struct weft_source *park_timer;
};

struct weftd_api {
	struct weft_loop *loop;
	char *path;
	int fd;
	struct weft_source *listen_src;
	weftd_api_fn fn;
	void *userdata;
	struct api_conn *conns;
	unsigned nconns;
};

static void conn_free(struct api_conn *c)
{
	struct weftd_api *api = c->api;

	weft_source_free(c->io);
	weft_source_free(c->timer);
	weft_source_free(c->park_timer);
	if (c->fd >= 0)
		close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		api->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	api->nconns--;
	weft_buf_free(&c->in);
	free(c->out);
	free(c);
}

static int conn_timeout(struct weft_source *s, int64_t now_ns, void *userdata)
{
	struct api_conn *c = userdata;

	log_warn("api: client on fd %d timed out while %s; closing", c->fd, c->writing ? "reading the answer" : "sending");
	conn_free(c);
	return 0;
}

/* Write what we can; 1 when done, 0 when the socket is full, <0 on error. */
static int conn_flush(struct api_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		c->out_off += (size_t)n;
	}
	return 1;
}

static int conn_park_timeout(struct weft_source *s, int64_t now_ns, void *userdata);

/* Run the handler on the complete request and start writing the answer,
 * or park the connection. The connection may be freed on return. */
static void conn_serve(struct api_conn *c, bool may_defer)
{
	int r;

	c->out = c->api->fn(c->in.data ? c->in.data : "", c->in.len, may_defer, c->api->userdata);
	if (!c->out && may_defer) {
		if (!c->parked) {
			/* EPOLLIN would fire forever at EOF; hang-ups are
			 * reported regardless of the mask. */
			r = weft_source_io_set_events(c->io, 0);
			if (r >= 0)
				r = weft_loop_add_timer(c->api->loop, (int64_t)WEFTD_API_PARK_MS * 1000000, 0,
							conn_park_timeout, c, &c->park_timer);
			if (r < 0) {
				log_warn_errno(r, "api: cannot park a request: %m");
				conn_free(c);
				return;
			}
			c->parked = true;
		}
		return;
	}
	if (!c->out)
		c->out = wstrdup("{}");
	c->parked = false;
	weft_source_free(c->park_timer);
	c->park_timer = NULL;
	c->out_len = strlen(c->out);
	c->writing = true;
	weft_buf_free(&c->in);
	r = conn_flush(c);
	if (r < 0) {
		log_debug("api: send: %s", strerror(-r));
		conn_free(c);
	} else if (r == 1) {
		conn_free(c);
	} else {
		r = weft_source_io_set_events(c->io, EPOLLOUT);
		if (r < 0)
			conn_free(c);
	}
}

static int conn_park_timeout(struct weft_source *s, int64_t now_ns, void *userdata)
{
	struct api_conn *c = userdata;

	conn_serve(c, false);
	return 0;
}

static int conn_io(struct weft_source *s, int fd, uint32_t revents, void *userdata)
{
	struct api_conn *c = userdata;
	int r;

	if (c->parked) {
		/* Only a hang-up gets here: the client gave up waiting. */
		log_debug("api: client of a parked request hung up");
		conn_free(c);
		return 0;
	}
	if (!c->writing) {
		char buf[65536];

		for (;;) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN)
					return 0;
				r = -errno;
				log_debug("api: recv: %s", strerror(-r));
				conn_free(c);
				return 0;
			}
			if (n == 0)
				break;
			if (c->in.len + (size_t)n > WEFTD_API_MAX_REQUEST) {
				log_warn("api: request larger than %u bytes; closing", WEFTD_API_MAX_REQUEST);
				conn_free(c);
				return 0;
			}
			weft_buf_append(&c->in, buf, (size_t)n);
		}
		/* EOF: the request is complete. */
		conn_serve(c, true);
		return 0;
	}
	r = conn_flush(c);
	if (r < 0) {
		log_debug("api: send: %s", strerror(-r));
		conn_free(c);
	} else if (r == 1) {
		conn_free(c);
	}
	return 0;
}

void weftd_api_resume(struct weftd_api *api)
{
	struct api_conn *c, *next;

	if (!api)
		return;
	/* Oldest first would be fairer, but requests parked here wait for
	 * different teardowns; each one is served as soon as its own is
	 * done. conn_serve() frees only its own connection. */
	for (c = api->conns; c; c = next) {
		next = c->next;
		if (c->parked)
			conn_serve(c, true);
	}
}

static int api_accept(struct weft_source *s, int fd, uint32_t revents, void *userdata)
{
	struct weftd_api *api = userdata;

	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct api_conn *c;
		int r;

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_warn_errno(-errno, "api: accept: %m");
			return 0;
		}
		if (api->nconns >= WEFTD_API_MAX_CONNECTIONS) {
			log_warn("api: %u connections open; refusing a new one", api->nconns);
			close(cfd);
			continue;
		}
		c = wcalloc(1, sizeof(*c));
		c->api = api;
		c->fd = cfd;
		c->next = api->conns;
		if (api->conns)
			api->conns->prev = c;
		api->conns = c;
		api->nconns++;
		r = weft_loop_add_io(api->loop, cfd, EPOLLIN, conn_io, c, &c->io);
		if (r >= 0)
			r = weft_loop_add_timer(api->loop, (int64_t)WEFTD_API_TIMEOUT_MS * 1000000, 0, conn_timeout, c,
						&c->timer);
		if (r < 0) {
			log_warn_errno(r, "api: cannot watch a new connection: %m");
			conn_free(c);
		}
	}
}

int weftd_api_listen(struct weft_loop *loop, const char *path, weftd_api_fn fn, void *userdata,
		     struct weftd_api **out, char **errmsg)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	struct weftd_api *api;
	mode_t old_mask;
	int r;

	if (weft_strlcpy(sa.sun_path, path, sizeof(sa.sun_path)) < 0) {
		*errmsg = wasprintf("socket path %s is too long (at most %zu bytes)", path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	/* Is a live weftd already there? Then refuse rather than steal its
	 * socket; a stale socket (connection refused) is removed. connect()
	 * is refused by a file of any kind: only a socket is weft's to
	 * remove. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		*errmsg = wasprintf("%s: another weftd is listening there", path);
		return -EADDRINUSE;
	}
	if (errno == ECONNREFUSED) {
		struct stat st;

		if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
			*errmsg = wasprintf("%s exists and is not a socket: not removed", path);
			return -EEXIST;
		}
		(void)unlink(path);
	}
	close(TAKE_FD(fd));

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* The umask makes the socket 0600 from the start, so there is no
	 * window in which others could connect. */
	old_mask = umask(0077);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	r = r < 0 ? -errno : 0;
	umask(old_mask);
	if (r < 0) {
		*errmsg = wasprintf("bind %s: %s", path, strerror(-r));
		return r;
	}
	if (chmod(path, 0600) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		*errmsg = wasprintf("listen on %s: %s", path, strerror(-r));
		(void)unlink(path);
		return r;
	}
	api = wcalloc(1, sizeof(*api));
	api->loop = loop;
	api->path = wstrdup(path);
	api->fn = fn;
	api->userdata = userdata;
	api->fd = TAKE_FD(fd);
	r = weft_loop_add_io(loop, api->fd, EPOLLIN, api_accept, api, &api->listen_src);
	if (r < 0) {
		*errmsg = wasprintf("watch %s: %s", path, strerror(-r));
		weftd_api_free(api);
		return r;
	}
	weft_source_set_description(api->listen_src, "api listen");
	*out = api;
	return 0;
}

void weftd_api_free(struct weftd_api *api)
{
	if (!api)
		return;
	while (api->conns)
		conn_free(api->conns);
	weft_source_free(api->listen_src);
	if (api->fd >= 0) {
		close(api->fd);
		(void)unlink(api->path);
	}
	free(api->path);
	free(api);
}
