/* test-birdc.c - BIRD's control socket client against a scripted fake
 * BIRD (a child process on a unix socket): the reply parser (fed whole
 * and byte by byte), `configure` replies, `show protocols` parsing, and
 * failures (no greeting, BIRD gone mid-reply, silence, a peer that
 * trickles or never ends its reply, a listener that never accepts). The
 * real BIRD is exercised by tests/bgp.sh. */
#include "bgpconf/bgpconf.h"

#include "lib/test.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

static const char show_protocols[] =
	"2002-Name       Proto      Table      State  Since         Info\n"
	"1002-weft_device Device     ---        up     2024-05-01 12:00:00  \n"
	" weft_kernel Kernel     master4    up     2024-05-01 12:00:00  \n"
	" weft_blocks Static     master4    up     2024-05-01 12:00:01  \n"
	" Mesh_198_18_0_12 BGP        ---        up     2024-05-01 12:00:05  Established   \n"
	" Mesh_198_18_0_13 BGP        ---        start  12:00:06.123  Active        Socket: Connection refused\n"
	"0000 \n";

/* Parse a whole reply, and the same bytes fed one at a time. */
static void test_feed(void)
{
	struct weft_birdc_reply a = {0}, b = {0};
	size_t used = 0, len = strlen(show_protocols), have = 0;
	int r;

	CHECK_EQ_INT(weft_birdc_feed(&a, show_protocols, len, &used), 1);
	CHECK_EQ_INT(used, len);
	CHECK_EQ_INT(a.n, 7);
	CHECK_EQ_INT(a.code, 0);
	CHECK_EQ_INT(a.lines[0].code, 2002);
	CHECK_EQ_INT(a.lines[2].code, 1002); /* a continuation keeps its code */
	CHECK_STREQ(a.lines[2].text, "weft_kernel Kernel     master4    up     2024-05-01 12:00:00  ");

	/* Byte by byte: the parser only takes complete lines. */
	char buf[1024];
	for (size_t i = 0; i < len; i++) {
		buf[have++] = show_protocols[i];
		r = weft_birdc_feed(&b, buf, have, &used);
		CHECK(r >= 0);
		memmove(buf, buf + used, have - used);
		have -= used;
		if (r == 1) {
			CHECK_EQ_INT(i, len - 1);
			break;
		}
	}
	CHECK_EQ_INT(b.n, a.n);

	struct weft_bird_proto *p = NULL;
	size_t n = 0;
	CHECK_EQ_INT(weft_birdc_parse_protocols(&a, &p, &n), 5);
	if (n == 5) {
		CHECK_STREQ(p[0].name, "weft_device");
		CHECK_STREQ(p[0].table, "---");
		CHECK_STREQ(p[0].info, "");
		CHECK_STREQ(p[3].name, "Mesh_198_18_0_12");
		CHECK_STREQ(p[3].proto, "BGP");
		CHECK_STREQ(p[3].state, "up");
		CHECK_STREQ(p[3].since, "2024-05-01 12:00:05");
		CHECK_STREQ(p[3].info, "Established");
		CHECK_STREQ(p[4].since, "12:00:06.123");
		CHECK_STREQ(p[4].info, "Active        Socket: Connection refused");
	}
	weft_bird_protos_free(p, n);
	weft_birdc_reply_clear(&a);
	weft_birdc_reply_clear(&b);

	/* Bytes after the last line stay unconsumed; '+' lines are skipped;
	 * "0000" alone ends a reply. */
	static const char two[] = "+0016 Access restricted\n0003 Reconfigured\n0001 next\n";
	CHECK_EQ_INT(weft_birdc_feed(&a, two, strlen(two), &used), 1);
	CHECK_EQ_INT(used, strlen(two) - strlen("0001 next\n"));
	CHECK_EQ_INT(a.n, 1);
	CHECK_EQ_INT(a.code, 3);
	weft_birdc_reply_clear(&a);
	CHECK_EQ_INT(weft_birdc_feed(&a, "0000\n", 5, &used), 1);
	CHECK_EQ_INT(a.code, 0);
	weft_birdc_reply_clear(&a);
	/* Garbage, and a continuation with nothing to continue. */
	CHECK_EQ_INT(weft_birdc_feed(&a, "hello\n", 6, &used), -EBADMSG);
	weft_birdc_reply_clear(&a);
	CHECK_EQ_INT(weft_birdc_feed(&a, " x\n", 3, &used), -EBADMSG);
	weft_birdc_reply_clear(&a);
	CHECK_EQ_INT(weft_birdc_feed(&a, "12a4 x\n", 7, &used), -EBADMSG);
	weft_birdc_reply_clear(&a);
	/* An incomplete line waits for more. */
	CHECK_EQ_INT(weft_birdc_feed(&a, "0003 Reconf", 11, &used), 0);
	CHECK_EQ_INT(used, 0);
	weft_birdc_reply_clear(&a);
	/* An error reply is not a protocol table. */
	a.code = 9001;
	CHECK_EQ_INT(weft_birdc_parse_protocols(&a, &p, &n), -EIO);
}

/* A line longer than 64 KiB is refused however the reply was cut into
 * reads: it used to be refused only while it had not ended (its first 64
 * KiB and one byte in one read, its newline in the next), and taken when
 * it arrived whole. */
static void test_feed_long_line(void)
{
	const size_t max = 64 * 1024;
	struct weft_birdc_reply a = {0};
	struct weft_buf b = {0};
	size_t used = 0;

	weft_buf_append(&b, "1002-", 5);
	while (b.len < max)
		weft_buf_append(&b, "x", 1);
	weft_buf_append(&b, "\n0000 \n", 7);
	/* 64 KiB with the code: accepted, at once. */
	CHECK_EQ_INT(weft_birdc_feed(&a, b.data, b.len, &used), 1);
	CHECK_EQ_INT(used, b.len);
	weft_birdc_reply_clear(&a);
	/* One byte more: refused at once, */
	b.len = 0;
	weft_buf_append(&b, "1002-", 5);
	while (b.len < max + 2)
		weft_buf_append(&b, "x", 1);
	weft_buf_append(&b, "\n0000 \n", 7);
	CHECK_EQ_INT(weft_birdc_feed(&a, b.data, b.len, &used), -EBADMSG);
	weft_birdc_reply_clear(&a);
	/* and in two reads (the first ends before the newline). */
	CHECK_EQ_INT(weft_birdc_feed(&a, b.data, max + 2, &used), -EBADMSG);
	weft_birdc_reply_clear(&a);
	weft_buf_free(&b);
}

/* --- a fake BIRD ------------------------------------------------------------------ */

static char g_sock[108];

/* Serve one connection: send greeting, then for each command line read,
 * send the next scripted reply. A NULL reply closes the connection. */
/* A unix stream socket listening at g_sock with a backlog of 1. */
static int listen_sock(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);

	unlink(g_sock);
	weft_strlcpy(sa.sun_path, g_sock, sizeof(sa.sun_path));
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0)
		abort();
	return ls;
}

/* Listen on g_sock and fork: the parent gets the child's pid; the child
 * gets 0, with *fd the connection it accepted (it exits if none). */
static pid_t fork_listener(int *fd)
{
	int ls = listen_sock();
	pid_t pid = fork();

	if (pid < 0)
		abort();
	if (pid > 0) {
		close(ls);
		return pid;
	}
	*fd = accept(ls, NULL, NULL);
	if (*fd < 0)
		_exit(1);
	return 0;
}

static pid_t fake_bird(const char *greeting, const char *const *replies, size_t n)
{
	int fd = -1;
	pid_t pid = fork_listener(&fd);

	if (pid > 0)
		return pid;
	if (greeting && write(fd, greeting, strlen(greeting)) < 0)
		_exit(1);
	for (size_t i = 0; i < n; i++) {
		char c;
		/* Wait for a whole command line. */
		do {
			if (read(fd, &c, 1) != 1)
				_exit(0);
		} while (c != '\n');
		if (!replies[i])
			_exit(0);
		if (write(fd, replies[i], strlen(replies[i])) < 0)
			_exit(1);
	}
	/* Keep the connection open until the client goes away. */
	char c;
	while (read(fd, &c, 1) == 1)
		;
	_exit(0);
}

/* A BIRD that answers slowly or without end, on one connection: its
 * greeting (greet_ms between bytes, 0 = at once), then after the first
 * command line reply over and over, every_ms between bytes (0 = as fast
 * as the socket takes them), for at most for_ms or max_bytes. Then it
 * stays silent until the client goes. */
static pid_t fake_slow_bird(const char *greeting, int greet_ms, const char *reply, int every_ms, int for_ms,
			    size_t max_bytes)
{
	int fd = -1;
	pid_t pid = fork_listener(&fd);

	if (pid > 0)
		return pid;
	int64_t end;
	size_t sent = 0, len = strlen(reply);
	char c;

	if (!len)
		max_bytes = 0;
	for (const char *g = greeting; *g; g++) {
		if (write(fd, g, greet_ms ? 1 : strlen(g)) < 0)
			_exit(1);
		if (!greet_ms)
			break;
		usleep(greet_ms * 1000);
	}
	do {
		if (read(fd, &c, 1) != 1)
			_exit(0);
	} while (c != '\n');
	end = weft_now_ms() + for_ms;
	while (weft_now_ms() < end && sent < max_bytes) {
		if (every_ms) {
			if (write(fd, reply + sent % len, 1) != 1)
				_exit(0);
			sent++;
			usleep(every_ms * 1000);
		} else {
			if (write(fd, reply, len) != (ssize_t)len)
				_exit(0); /* the client went away */
			sent += len;
		}
	}
	while (read(fd, &c, 1) == 1)
		;
	_exit(0);
}

static void reap(pid_t pid)
{
	int st;
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
}

static void test_conversation(void)
{
	static const char *const replies[] = {
		"0002-Reading configuration from /run/bird.conf\n0003 Reconfigured\n",
		"0002-Reading configuration from /run/bird.conf\n0004 Reconfiguration in progress\n",
		"0002-Reading configuration from /run/bird.conf\n8002 /run/bird.conf:3:1 syntax error\n",
		"0006 Reconfiguration ignored, shutting down\n",
		show_protocols,
		"9001 Parse error\n",
	};
	struct weft_birdc *c = NULL;
	char *err = NULL;
	pid_t pid = fake_bird("0001 BIRD 2.0.12 ready.\n", replies, ARRAY_SIZE(replies));

	CHECK_EQ_INT(weft_birdc_connect(g_sock, 2000, &c), 0);
	if (!c) {
		reap(pid);
		return;
	}
	CHECK_EQ_INT(weft_birdc_configure(c, NULL, &err), 0);
	CHECK_EQ_INT(weft_birdc_configure(c, "/run/bird.conf", &err), 0);
	CHECK_EQ_INT(weft_birdc_configure(c, NULL, &err), -EINVAL);
	CHECK_STREQ(err, "Reading configuration from /run/bird.conf; /run/bird.conf:3:1 syntax error");
	free(err), err = NULL;
	CHECK_EQ_INT(weft_birdc_configure(c, NULL, &err), -ESHUTDOWN);
	free(err), err = NULL;
	CHECK_EQ_INT(weft_birdc_configure(c, "bad\"name", &err), -EINVAL);

	struct weft_bird_proto *p = NULL;
	size_t n = 0;
	CHECK_EQ_INT(weft_birdc_show_protocols(c, &p, &n), 5);
	weft_bird_protos_free(p, n);
	CHECK_EQ_INT(weft_birdc_show_protocols(c, &p, &n), -EIO);
	weft_birdc_close(c);
	reap(pid);
}

static void test_errors(void)
{
	struct weft_birdc *c = NULL;
	struct weft_birdc_reply rep = {0};
	pid_t pid;

	/* Nobody there. */
	unlink(g_sock);
	CHECK_EQ_INT(weft_birdc_connect(g_sock, 500, &c), -ENOENT);
	/* Not BIRD. */
	pid = fake_bird("220 smtp.example ESMTP\n", NULL, 0);
	CHECK_EQ_INT(weft_birdc_connect(g_sock, 500, &c), -EBADMSG);
	CHECK(c == NULL);
	reap(pid);
	/* Silent: no greeting. */
	pid = fake_bird(NULL, NULL, 0);
	CHECK_EQ_INT(weft_birdc_connect(g_sock, 300, &c), -ETIMEDOUT);
	reap(pid);
	/* Gone mid-reply. */
	static const char *const half[] = {"0002-Reading configuration\n", NULL};
	pid = fake_bird("0001 BIRD 2.0.12 ready.\n", half, 2);
	CHECK_EQ_INT(weft_birdc_connect(g_sock, 300, &c), 0);
	if (c) {
		CHECK_EQ_INT(weft_birdc_cmd(c, "configure", &rep), -ETIMEDOUT);
		weft_birdc_close(c);
	}
	reap(pid);
	static const char *const gone[] = {NULL};
	pid = fake_bird("0001 BIRD 2.0.12 ready.\n", gone, 1);
	c = NULL;
	CHECK_EQ_INT(weft_birdc_connect(g_sock, 2000, &c), 0);
	if (c) {
		CHECK_EQ_INT(weft_birdc_cmd(c, "show protocols", &rep), -EIO);
		CHECK_EQ_INT(weft_birdc_cmd(c, "two\nlines", &rep), -EINVAL);
		weft_birdc_close(c);
	}
	reap(pid);
	unlink(g_sock);
}

/* weft_birdc_cmd(), and how long it took in *took (ms). */
static int timed_cmd(struct weft_birdc *c, const char *cmd, struct weft_birdc_reply *rep, int64_t *took)
{
	int64_t t0 = weft_now_ms();
	int r = weft_birdc_cmd(c, cmd, rep);

	*took = weft_now_ms() - t0;
	return r;
}

/* The timeout is a deadline for the whole exchange, not for each read: a
 * peer that sends a byte every 100 ms (more often than the 400 ms timeout)
 * used to keep the caller, weftd's one loop, for as long as it went on. */
static void test_trickle(void)
{
	struct weft_birdc *c = NULL;
	struct weft_birdc_reply rep = {0};
	int64_t t0, took;
	pid_t pid;
	int r;

	/* The greeting, a byte at a time: connect gives up. */
	pid = fake_slow_bird("0001 BIRD 2.0.12 ready.\n", 100, "", 0, 0, 0);
	t0 = weft_now_ms();
	r = weft_birdc_connect(g_sock, 400, &c);
	took = weft_now_ms() - t0;
	CHECK_EQ_INT(r, -ETIMEDOUT);
	CHECK(c == NULL);
	weft_birdc_close(c);
	if (took > 1000)
		fprintf(stderr, "connect took %lld ms with a 400 ms timeout\n", (long long)took);
	CHECK(took < 1000);
	reap(pid);

	/* A reply that trickles for 3 s: the command gives up after 400 ms. */
	pid = fake_slow_bird("0001 BIRD 2.0.12 ready.\n", 0, "0002-Reading configuration\n", 100, 3000, SIZE_MAX);
	c = NULL;
	CHECK_EQ_INT(weft_birdc_connect(g_sock, 400, &c), 0);
	if (c) {
		r = timed_cmd(c, "configure", &rep, &took);
		CHECK_EQ_INT(r, -ETIMEDOUT);
		if (took > 1000)
			fprintf(stderr, "the command took %lld ms with a 400 ms timeout\n", (long long)took);
		CHECK(took < 1000);
		CHECK_EQ_INT(rep.n, 0); /* untouched on failure */
		weft_birdc_close(c);
	}
	reap(pid);
	unlink(g_sock);
}

/* A peer that answers without end, fast: the client stops reading at
 * 16 MiB (-EMSGSIZE), well before its timeout. It used to keep every line
 * (up to 100,000 of up to 64 KiB each, and the bytes read twice over)
 * until the peer stopped. The fake stops at 64 MiB, so that a client
 * without the bound ends too (with -ETIMEDOUT). */
static void test_endless_reply(void)
{
	struct weft_birdc *c = NULL;
	struct weft_birdc_reply rep = {0};
	struct weft_buf line = {0};
	int64_t took;
	pid_t pid;
	int r;

	weft_buf_append(&line, "1002-", 5);
	while (line.len < 60000)
		weft_buf_append(&line, "protocol ", 9);
	weft_buf_append(&line, "\n", 1);
	pid = fake_slow_bird("0001 BIRD 2.0.12 ready.\n", 0, line.data, 0, 20000, 64 * 1024 * 1024);
	CHECK_EQ_INT(weft_birdc_connect(g_sock, 5000, &c), 0);
	if (c) {
		r = timed_cmd(c, "show protocols", &rep, &took);
		CHECK_EQ_INT(r, -EMSGSIZE);
		CHECK(took < 5000);
		CHECK_EQ_INT(rep.n, 0);
		weft_birdc_close(c);
	}
	reap(pid);
	weft_buf_free(&line);
	unlink(g_sock);
}

/* A BIRD that is alive but never accepts (stopped with SIGSTOP, or busy):
 * once its listen backlog is full, a blocking connect() would wait for
 * good. Each connect must give up with -ETIMEDOUT within its timeout. Run
 * in a child under alarm(), so that a hang fails the test instead of
 * hanging it. */
static void test_backlog_full(void)
{
	int ls = listen_sock(), st = 0;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		int bad = 0;

		alarm(10);
		/* The first connects fill the backlog (Linux queues backlog + 1
		 * and then answers EAGAIN); each waits for a greeting that never
		 * comes. The later ones find the backlog full. */
		for (int i = 0; i < 5; i++) {
			struct weft_birdc *c = NULL;
			int64_t t0 = weft_now_ms();
			int r = weft_birdc_connect(g_sock, 200, &c);
			int64_t took = weft_now_ms() - t0;

			if (r != -ETIMEDOUT || c || took > 1500) {
				fprintf(stderr, "connect %d: %d (%s) after %lld ms\n", i, r, strerror(-r), (long long)took);
				bad = 1;
			}
		}
		_exit(bad);
	}
	waitpid(pid, &st, 0);
	if (WIFSIGNALED(st))
		fprintf(stderr, "the connecting child died of signal %d (SIGALRM: a connect hung)\n", WTERMSIG(st));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(ls);
	unlink(g_sock);
}

int main(void)
{
	static const struct test_case cases[] = {TEST(test_feed), TEST(test_feed_long_line),
						 TEST(test_conversation), TEST(test_errors),
						 TEST(test_trickle), TEST(test_endless_reply),
						 TEST(test_backlog_full)};

	snprintf(g_sock, sizeof(g_sock), "/tmp/weft-test-birdc.%ld.sock", (long)getpid());
	signal(SIGPIPE, SIG_IGN);
	return test_run(cases, ARRAY_SIZE(cases));
}
