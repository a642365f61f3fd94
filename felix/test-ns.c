/* test-ns.c - see test-ns.h. */
#include "felix/test-ns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/* A namespace held by a child process. */
int ns_new(struct ns *ns)
{
	int p[2];
	char c;
	pid_t pid;

	if (pipe(p) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[0]);
		if (unshare(CLONE_NEWNET) < 0)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1) {
		close(p[0]);
		return -EIO;
	}
	close(p[0]);
	ns->pid = pid;
	snprintf(ns->path, sizeof(ns->path), "/proc/%d/ns/net", (int)pid);
	ns->fd = open(ns->path, O_RDONLY | O_CLOEXEC);
	return ns->fd < 0 ? -errno : 0;
}

void ns_free(struct ns *ns)
{
	if (ns->pid <= 0)
		return;
	close(ns->fd);
	kill(ns->pid, SIGKILL);
	waitpid(ns->pid, NULL, 0);
	ns->pid = 0;
}

/* Run a shell command (in the node namespace); returns its exit status. */
int sh(const char *fmt, ...) PRINTF_LIKE(1, 2);
int sh(const char *fmt, ...)
{
	_cleanup_free_ char *cmd = NULL;
	va_list ap;
	int st;

	va_start(ap, fmt);
	cmd = wvasprintf(fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st != 0)
		fprintf(stderr, "  [%s] -> %d\n", cmd, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Does a command fail? Silent: used for "is it gone" checks. */
bool fails(const char *fmt, ...) PRINTF_LIKE(1, 2);
bool fails(const char *fmt, ...)
{
	_cleanup_free_ char *cmd = NULL;
	va_list ap;

	va_start(ap, fmt);
	cmd = wvasprintf(fmt, ap);
	va_end(ap);
	return system(cmd) != 0;
}

/* Output of a command (malloc'ed, never NULL). */
char *out(const char *fmt, ...)
{
	_cleanup_free_ char *cmd = NULL;
	struct weft_buf b = {0};
	char chunk[1024];
	size_t n;
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	cmd = wvasprintf(fmt, ap);
	va_end(ap);
	weft_buf_append(&b, "", 0);
	f = popen(cmd, "r");
	if (!f)
		return weft_buf_steal(&b);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		weft_buf_append(&b, chunk, n);
	pclose(f);
	return weft_buf_steal(&b);
}

struct weft_ip ip(const char *s)
{
	struct weft_ip a = {0};
	weft_ip_parse(s, &a);
	return a;
}

struct weft_cidr cidr(const char *s)
{
	struct weft_cidr c = {0};
	weft_cidr_parse(s, false, &c);
	return c;
}

static const char ns_snapshot_cmd[] =
	"ip -o link show | cut -d: -f2 | sort; ip route show table all; nft list ruleset";

int ns_isolate(struct ns_guard *g, int *home_fd)
{
	if (geteuid() != 0) {
		printf("skipped: needs root\n");
		return 77;
	}
	g->snapshot = out("%s", ns_snapshot_cmd);
	g->root_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (g->root_fd < 0 || unshare(CLONE_NEWNET) < 0) {
		printf("skipped: cannot unshare a network namespace: %s\n", strerror(errno));
		return 77;
	}
	*home_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	return 0;
}

int ns_restore_check(struct ns_guard *g)
{
	_cleanup_free_ char *now = NULL;
	int rc = 0;

	if (setns(g->root_fd, CLONE_NEWNET) < 0)
		abort();
	now = out("%s", ns_snapshot_cmd);
	if (!streq(g->snapshot, now)) {
		fprintf(stderr, "root namespace changed!\nbefore:\n%s\nafter:\n%s\n", g->snapshot, now);
		rc = 1;
	}
	free(g->snapshot);
	g->snapshot = NULL;
	close(g->root_fd);
	return rc;
}

static int sock_in(int home_fd, int nsfd, int family, int type)
{
	int s;

	if (setns(nsfd, CLONE_NEWNET) < 0)
		return -1;
	s = socket(family, type | SOCK_CLOEXEC, 0);
	if (setns(home_fd, CLONE_NEWNET) < 0)
		abort();
	return s;
}

static socklen_t sockaddr_of(const struct weft_ip *a, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		s4->sin_addr = a->v4;
		return sizeof(*s4);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
	s6->sin6_addr = a->v6;
	return sizeof(*s6);
}

static bool wait_fd(int fd, short ev, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = ev};

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & ev);
}

bool ns_tcp(int home_fd, int src_ns, const char *src, int dst_ns, const char *dst, int port, int timeout_ms)
{
	struct sockaddr_storage sa, la;
	struct weft_ip dip = ip(dst), sip;
	socklen_t len = sockaddr_of(&dip, port, &sa), el = sizeof(int);
	int one = 1, err = 0, conn = -1;
	int srv = sock_in(home_fd, dst_ns, dip.family, SOCK_STREAM);
	int cli = sock_in(home_fd, src_ns, dip.family, SOCK_STREAM | SOCK_NONBLOCK);
	char buf[8] = {0};
	bool ok = false;

	if (srv < 0 || cli < 0)
		goto out;
	setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(srv, (struct sockaddr *)&sa, len) < 0 || listen(srv, 4) < 0) {
		fprintf(stderr, "  listen on %s:%d: %s\n", dst, port, strerror(errno));
		goto out;
	}
	if (src) {
		sip = ip(src);
		if (bind(cli, (struct sockaddr *)&la, sockaddr_of(&sip, 0, &la)) < 0) {
			fprintf(stderr, "  bind %s: %s\n", src, strerror(errno));
			goto out;
		}
	}
	if (connect(cli, (struct sockaddr *)&sa, len) < 0 && errno != EINPROGRESS)
		goto out;
	if (!wait_fd(cli, POLLOUT, timeout_ms) || getsockopt(cli, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err)
		goto out;
	if (!wait_fd(srv, POLLIN, timeout_ms))
		goto out;
	conn = accept(srv, NULL, NULL);
	if (conn < 0 || write(cli, "hello", 5) != 5 || !wait_fd(conn, POLLIN, timeout_ms))
		goto out;
	ok = read(conn, buf, 5) == 5 && memcmp(buf, "hello", 5) == 0;
out:
	if (conn >= 0)
		close(conn);
	if (srv >= 0)
		close(srv);
	if (cli >= 0)
		close(cli);
	return ok;
}

