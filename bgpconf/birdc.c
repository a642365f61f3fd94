/* birdc.c - a client of BIRD's control socket.
 *
 * The protocol (BIRD's doc/reply_codes): the client sends one command per
 * line; BIRD answers with lines that start with a four-digit code and a
 * separator: '-' when more lines follow, ' ' on the last line of the
 * reply. A line that starts with a space continues the previous code (the
 * rows of a table). 0xxx is success, 1xxx a table row, 2xxx a table
 * heading, 8xxx a run-time error, 9xxx a parse error; '+' lines are
 * spontaneous messages and are skipped. On connect BIRD greets with
 * "0001 BIRD <version> ready.".
 */
#include "bgpconf/bgpconf.h"

#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

/* No reply line of interest is anywhere near this long; a peer sending
 * a longer one is not BIRD. */
#define BIRDC_LINE_MAX (64 * 1024)
/* Nor does a reply we ask for hold this many lines, */
#define BIRDC_LINES_MAX 100000
/* or this many bytes: `show protocols` is about 100 bytes a protocol. The
 * bound keeps a peer that answers without end from growing our memory
 * without end (the deadline alone would not: a fast one sends gigabytes
 * within it). */
#define BIRDC_REPLY_MAX (16 * 1024 * 1024)

struct weft_birdc {
	int fd;
	int timeout_ms;     /* for each exchange: connect + greeting, each command */
	struct weft_buf in; /* bytes read and not parsed yet: at most a partial
			     * line, and what followed a complete reply */
};

void weft_birdc_reply_clear(struct weft_birdc_reply *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->lines[i].text);
	free(r->lines);
	*r = (struct weft_birdc_reply){0};
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int weft_birdc_feed(struct weft_birdc_reply *reply, const char *data, size_t len, size_t *consumed)
{
	size_t pos = 0;

	while (pos < len) {
		const char *line = data + pos, *nl = memchr(line, '\n', len - pos);
		size_t n;
		int code;
		bool last = false;

		if (!nl) {
			if (len - pos > BIRDC_LINE_MAX)
				return -EBADMSG;
			break;
		}
		n = (size_t)(nl - line);
		/* However it was cut into reads: the check above only sees a
		 * line that has not ended yet. */
		if (n > BIRDC_LINE_MAX)
			return -EBADMSG;
		pos += n + 1;
		if (n && line[n - 1] == '\r')
			n--;
		if (n >= 5 && is_digit(line[0]) && is_digit(line[1]) && is_digit(line[2]) && is_digit(line[3]) &&
		    (line[4] == '-' || line[4] == ' ')) {
			code = (line[0] - '0') * 1000 + (line[1] - '0') * 100 + (line[2] - '0') * 10 + (line[3] - '0');
			last = line[4] == ' ';
			line += 5, n -= 5;
		} else if (n == 4 && is_digit(line[0]) && is_digit(line[1]) && is_digit(line[2]) && is_digit(line[3])) {
			/* "0000" alone: a last line with no text. */
			code = (line[0] - '0') * 1000 + (line[1] - '0') * 100 + (line[2] - '0') * 10 + (line[3] - '0');
			last = true;
			line += 4, n = 0;
		} else if (n >= 1 && line[0] == ' ') {
			if (!reply->n)
				return -EBADMSG;
			code = reply->lines[reply->n - 1].code;
			line += 1, n -= 1;
		} else if (n >= 1 && line[0] == '+') {
			continue; /* a spontaneous message, not part of the reply */
		} else {
			return -EBADMSG;
		}
		if (reply->n >= BIRDC_LINES_MAX)
			return -EBADMSG;
		reply->lines = wrealloc(reply->lines, (reply->n + 1) * sizeof(*reply->lines));
		reply->lines[reply->n++] = (struct weft_birdc_line){.code = code, .text = wstrndup(line, n)};
		reply->code = code;
		if (last) {
			*consumed = pos;
			return 1;
		}
	}
	*consumed = pos;
	return 0;
}

/* Wait for fd to be ready for events until deadline_ms (weft_now_ms()
 * clock). Returns 0, -ETIMEDOUT once the deadline has passed (even when fd
 * is ready: a peer that keeps the socket readable must not extend it), or
 * a negative errno from poll(). */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
	struct pollfd p = {.fd = fd, .events = events};

	for (;;) {
		int64_t left = deadline_ms - weft_now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		/* A timeout or EINTR: the top of the loop decides. */
	}
}

/* Read one complete reply into *reply by deadline_ms. At most
 * BIRDC_REPLY_MAX bytes are read for it (-EMSGSIZE beyond). */
static int read_reply(struct weft_birdc *c, struct weft_birdc_reply *reply, int64_t deadline_ms)
{
	size_t got = 0;

	for (;;) {
		size_t used = 0, room = BIRDC_REPLY_MAX - got;
		char chunk[4096];
		ssize_t n;
		int r = weft_birdc_feed(reply, c->in.data ? c->in.data : "", c->in.len, &used);

		if (r < 0)
			return r;
		/* Keep only the bytes not parsed yet. */
		if (used) {
			memmove(c->in.data, c->in.data + used, c->in.len - used);
			c->in.len -= used;
			c->in.data[c->in.len] = 0;
		}
		if (r == 1)
			return 0;
		if (!room)
			return -EMSGSIZE;
		r = wait_fd(c->fd, POLLIN, deadline_ms);
		if (r < 0)
			return r;
		n = read(c->fd, chunk, room < sizeof(chunk) ? room : sizeof(chunk));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue; /* the socket is non-blocking */
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* BIRD went away mid-reply */
		got += (size_t)n;
		weft_buf_append(&c->in, chunk, (size_t)n);
	}
}

/* Connect the non-blocking fd to sa by deadline_ms. A blocking connect
 * to a unix stream socket whose listen backlog is full waits until the
 * listener accepts: a BIRD that is alive but stopped (SIGSTOP) or busy would
 * freeze the caller's loop for good. Non-blocking, Linux answers EAGAIN
 * while the backlog is full (retried every 20 ms until the deadline), and
 * may answer EINPROGRESS (wait for POLLOUT, then read SO_ERROR). */
static int connect_unix(int fd, const struct sockaddr_un *sa, int64_t deadline_ms)
{
	for (;;) {
		int64_t left = deadline_ms - weft_now_ms();
		int r, e = 0;
		socklen_t elen = sizeof(e);

		if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS) {
			r = wait_fd(fd, POLLOUT, deadline_ms);
			if (r < 0)
				return r;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
				return -errno;
			return e ? -e : 0;
		}
		if (errno != EAGAIN)
			return -errno;
		/* The backlog is full: no event says when it drains. */
		if (left <= 0)
			return -ETIMEDOUT;
		poll(NULL, 0, left < 20 ? (int)left : 20);
	}
}

int weft_birdc_connect(const char *path, int timeout_ms, struct weft_birdc **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct weft_birdc_reply greet = {0};
	struct weft_birdc *c;
	int64_t deadline;
	int fd, r;

	if (!path || !out)
		return -EINVAL;
	if (weft_strlcpy(sa.sun_path, path, sizeof(sa.sun_path)) < 0)
		return -ENAMETOOLONG;
	if (timeout_ms <= 0)
		timeout_ms = 5000;
	deadline = weft_now_ms() + timeout_ms;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = connect_unix(fd, &sa, deadline);
	if (r < 0) {
		close(fd);
		return r;
	}
	c = wcalloc(1, sizeof(*c));
	c->fd = fd;
	c->timeout_ms = timeout_ms;
	r = read_reply(c, &greet, deadline);
	if (r == 0 && greet.code != 1)
		r = -EBADMSG;
	weft_birdc_reply_clear(&greet);
	if (r < 0) {
		weft_birdc_close(c);
		return r;
	}
	*out = c;
	return 0;
}

void weft_birdc_close(struct weft_birdc *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	weft_buf_free(&c->in);
	free(c);
}

int weft_birdc_cmd(struct weft_birdc *c, const char *cmd, struct weft_birdc_reply *reply)
{
	_cleanup_free_ char *line = NULL;
	struct weft_birdc_reply rep = {0};
	size_t len, off = 0;
	int64_t deadline;
	int r;

	if (!c || !cmd || !reply || strchr(cmd, '\n'))
		return -EINVAL;
	deadline = weft_now_ms() + c->timeout_ms;
	line = wasprintf("%s\n", cmd);
	len = strlen(line);
	while (off < len) {
		ssize_t w;

		r = wait_fd(c->fd, POLLOUT, deadline);
		if (r < 0)
			return r;
		w = send(c->fd, line + off, len - off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno == EPIPE ? -EIO : -errno;
		}
		off += (size_t)w;
	}
	r = read_reply(c, &rep, deadline);
	if (r < 0) {
		weft_birdc_reply_clear(&rep);
		return r;
	}
	*reply = rep;
	return 0;
}

/* The reply's text, lines joined with "; " (for error messages). */
static char *reply_text(const struct weft_birdc_reply *r)
{
	struct weft_buf b = {0};

	for (size_t i = 0; i < r->n; i++) {
		if (!*r->lines[i].text)
			continue;
		weft_buf_printf(&b, "%s%s", b.len ? "; " : "", r->lines[i].text);
	}
	return weft_buf_steal(&b);
}

int weft_birdc_configure(struct weft_birdc *c, const char *file, char **err)
{
	struct weft_birdc_reply rep = {0};
	_cleanup_free_ char *cmd = NULL;
	int r;

	if (file && (strchr(file, '"') || strchr(file, '\n')))
		return -EINVAL;
	cmd = file ? wasprintf("configure \"%s\"", file) : wstrdup("configure");
	r = weft_birdc_cmd(c, cmd, &rep);
	if (r < 0)
		return r;
	switch (rep.code) {
	case 3:  /* Reconfigured */
	case 4:  /* Reconfiguration in progress */
	case 5:  /* Reconfiguration already in progress, queueing */
	case 17: /* ... removing queued config (and taking this one) */
	case 18: /* Reconfiguration confirmed */
		r = 0;
		break;
	case 6: /* Reconfiguration ignored, shutting down */
		r = -ESHUTDOWN;
		break;
	case 8002: /* Configuration file error */
		r = -EINVAL;
		break;
	default:
		r = -EIO;
		break;
	}
	if (r < 0 && err)
		*err = reply_text(&rep);
	weft_birdc_reply_clear(&rep);
	return r;
}

void weft_bird_protos_free(struct weft_bird_proto *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		free(p[i].name);
		free(p[i].proto);
		free(p[i].table);
		free(p[i].state);
		free(p[i].since);
		free(p[i].info);
	}
	free(p);
}

/* The next whitespace-separated token of *s, malloc'ed (NULL at the end). */
static char *token(const char **s)
{
	const char *p = *s + strspn(*s, " \t");
	size_t n = strcspn(p, " \t");

	if (!n)
		return NULL;
	*s = p + n;
	return wstrndup(p, n);
}

static bool looks_like_time(const char *s)
{
	/* "12:34:56" or "12:34:56.789": the second half of "iso long". */
	return is_digit(s[0]) && is_digit(s[1]) && s[2] == ':';
}

int weft_birdc_parse_protocols(const struct weft_birdc_reply *reply, struct weft_bird_proto **out, size_t *n)
{
	struct weft_bird_proto *v = NULL;
	size_t k = 0;

	if (reply->code >= 8000)
		return -EIO;
	for (size_t i = 0; i < reply->n; i++) {
		const char *s = reply->lines[i].text;
		struct weft_bird_proto p = {0};

		/* 1002: a row of the protocol table (2002 is its heading). */
		if (reply->lines[i].code != 1002)
			continue;
		p.name = token(&s);
		p.proto = token(&s);
		p.table = token(&s);
		p.state = token(&s);
		p.since = token(&s);
		if (!p.name || !p.proto || !p.table || !p.state || !p.since) {
			free(p.name), free(p.proto), free(p.table), free(p.state), free(p.since);
			weft_bird_protos_free(v, k);
			return -EBADMSG;
		}
		/* The since column is one token or two (date and time). */
		const char *save = s;
		char *t2 = token(&s);
		if (t2 && looks_like_time(t2)) {
			char *j = wasprintf("%s %s", p.since, t2);
			free(p.since);
			p.since = j;
		} else {
			s = save;
		}
		free(t2);
		s += strspn(s, " \t");
		size_t len = strlen(s);
		while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		p.info = wstrndup(s, len);
		v = wrealloc(v, (k + 1) * sizeof(*v));
		v[k++] = p;
	}
	*out = v;
	*n = k;
	return (int)k;
}

int weft_birdc_show_protocols(struct weft_birdc *c, struct weft_bird_proto **out, size_t *n)
{
	struct weft_birdc_reply rep = {0};
	int r = weft_birdc_cmd(c, "show protocols", &rep);

	if (r < 0)
		return r;
	r = weft_birdc_parse_protocols(&rep, out, n);
	weft_birdc_reply_clear(&rep);
	return r;
}
