/* test-ns.c - see test-ns.h. */
#include "felix/test-ns.h"

#include <fcntl.h>
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
