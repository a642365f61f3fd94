/* install.c - write a BIRD config atomically and have BIRD check it.
 *
 * The config BIRD runs must never be half-written (a crash mid-write would
 * leave BIRD unable to start after a reboot) and never one BIRD refuses (a
 * later `configure`, or a BIRD restart, would fail). So a new config goes
 * to "<path>.new", is checked with `bird -p -c`, and only then renamed
 * over the live one.
 */
#include "bgpconf/bgpconf.h"
#include "lib/log.h"

#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	_cleanup_free_ char *copy = wstrdup(path);
	_cleanup_close_ int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Write text to tmp (created fresh, fsync'ed), readable by its owner
 * alone: a BIRD config holds the BGP peers' TCP-MD5 passwords. */
static int write_file(const char *tmp, const char *text, size_t len)
{
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int r;

	if (fd < 0)
		return -errno;
	/* A file left by an older version keeps its mode through O_TRUNC. */
	if (fchmod(fd, 0600) < 0) {
		r = -errno;
		unlink(tmp);
		return r;
	}
	r = write_all(fd, text, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

static int rename_into_place(const char *tmp, const char *path)
{
	int r;

	if (rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
		return r;
	}
	/* The rename is durable only once the directory is on disk. When
	 * that fails the new file is in place all the same (what a reader
	 * sees now): the caller must go on as replaced. */
	r = fsync_dir_of(path);
	if (r < 0)
		log_warn_errno(r, "bgpconf: %s replaced, but syncing its directory failed: %m", path);
	return 0;
}

int weft_bgpconf_write_atomic(const char *path, const char *text, size_t len)
{
	_cleanup_free_ char *tmp = NULL;
	int r;

	if (!path || !text)
		return -EINVAL;
	tmp = wasprintf("%s.tmp.%ld", path, (long)getpid());
	r = write_file(tmp, text, len);
	if (r < 0)
		return r;
	return rename_into_place(tmp, path);
}

#define BGPCONF_CHECK_TIMEOUT_MS 10000

/* Read what fd yields until EOF, at most max bytes kept, for at most
 * timeout_ms (< 0: no limit): NULL when the time ran out first. */
static char *read_all_within(int fd, size_t max, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : weft_now_ms() + timeout_ms;
	struct weft_buf b = {0};
	char chunk[1024];

	for (;;) {
		int64_t left = deadline - weft_now_ms();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (left <= 0 || (n = poll(&p, 1, timeout_ms < 0 ? -1 : (int)left)) == 0) {
			weft_buf_free(&b);
			return NULL;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		if (b.len < max)
			weft_buf_append(&b, chunk, (size_t)n < max - b.len ? (size_t)n : max - b.len);
	}
	return weft_buf_steal(&b);
}

/* BIRD's complaint, made one line: "bird: " dropped, lines joined. */
static char *one_line(const char *s)
{
	struct weft_buf b = {0};

	while (*s) {
		size_t n = strcspn(s, "\n");
		const char *line = s;

		if (startswith(line, "bird: "))
			line += 6, n -= 6;
		while (n && (line[n - 1] == ' ' || line[n - 1] == '\r'))
			n--;
		if (n) {
			if (b.len)
				weft_buf_append(&b, "; ", 2);
			weft_buf_append(&b, line, n);
		}
		s = line + n;
		s += strspn(s, " \r\n");
	}
	return weft_buf_steal(&b);
}

int weft_bgpconf_check(const char *bird, const char *path, char **err)
{
	posix_spawn_file_actions_t fa;
	int pfd[2], status, r;
	pid_t pid;
	char *argv[] = {(char *)(bird ? bird : "bird"), (char *)"-p", (char *)"-c", (char *)path, NULL};
	_cleanup_free_ char *out = NULL;

	if (!path)
		return -EINVAL;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDERR_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r != 0) {
		close(pfd[0]);
		if (err)
			*err = wasprintf("cannot run %s: %s", argv[0], strerror(r));
		return r == ENOENT || r == EACCES ? -ENOENT : -r;
	}
	/* bird -p parses a file: it takes milliseconds. One that hangs must
	 * not hold weftd's loop (and its CNI requests) for good. */
	const char *tv = getenv("WEFT_BGPCONF_CHECK_TIMEOUT_MS"); /* for tests */
	int timeout_ms = tv && atoi(tv) > 0 ? atoi(tv) : BGPCONF_CHECK_TIMEOUT_MS;
	out = read_all_within(pfd[0], 4096, timeout_ms);
	close(pfd[0]);
	if (!out) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (err)
			*err = wasprintf("%s -p did not finish within %d ms (killed)", argv[0], timeout_ms);
		return -ETIMEDOUT;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		/* posix_spawnp may report a failed exec this way. */
		if (err)
			*err = wasprintf("cannot run %s", argv[0]);
		return -ENOENT;
	}
	if (err) {
		_cleanup_free_ char *msg = one_line(out);
		*err = *msg ? wstrdup(msg) : wasprintf("%s -p failed (status %d)", argv[0], status);
	}
	return -EINVAL;
}

/* Does path hold exactly text? */
static bool same_content(const char *path, const char *text, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *cur = NULL;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || (size_t)st.st_size != len)
		return false;
	cur = read_all_within(fd, len + 1, -1);
	return strlen(cur) == len && memcmp(cur, text, len) == 0;
}

int weft_bgpconf_install(const char *path, const char *text, const char *bird, char **err)
{
	_cleanup_free_ char *tmp = NULL;
	size_t len;
	int r;

	if (!path || !text)
		return -EINVAL;
	len = strlen(text);
	if (same_content(path, text, len))
		return 0;
	tmp = wasprintf("%s.new", path);
	r = write_file(tmp, text, len);
	if (r < 0) {
		if (err)
			*err = wasprintf("write %s: %s", tmp, strerror(-r));
		return r;
	}
	r = weft_bgpconf_check(bird, tmp, err);
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	r = rename_into_place(tmp, path);
	if (r < 0) {
		if (err)
			*err = wasprintf("rename %s: %s", tmp, strerror(-r));
		return r;
	}
	return 1;
}
