/* test-status-http.c - weftd's /healthz and /metrics server (the HTTP half
 * of felix/weftd-status.c) against clients that misbehave: a NUL byte, a
 * request line without a target, a head too large, pipelined requests, a
 * request without its line end, a client that sends nothing, a slowloris
 * that sends a byte every 400 ms. Each gets its answer (400, 413, 408) or
 * is closed, within the connection's 5 s deadline, while other clients
 * are answered at once: nothing blocks the loop.
 *
 * weftd_status_start() runs on a loop of the test's own, over a file:
 * store in a temporary directory, without BGP, listening on 127.0.0.1 on
 * a port the kernel picks; the clients are plain sockets the test drives
 * between loop iterations. */
#include "felix/metrics.h"
#include "felix/weftd.h"
#include "lib/loop.h"
#include "lib/test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

static struct weft_loop *g_loop;
static uint16_t g_port;

/* Run the loop for ms. */
static void pump(int ms)
{
	int64_t end = weft_now_ms() + ms;

	while (weft_now_ms() < end)
		(void)weft_loop_run_once(g_loop, 5);
}

/* The port of the one listening TCP socket of this process: the server's. */
static uint16_t find_port(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	uint16_t port = 0;

	while (dir && (e = readdir(dir))) {
		int fd = atoi(e->d_name), on = 0;
		struct sockaddr_in sa;
		socklen_t len = sizeof(on), slen = sizeof(sa);

		if (e->d_name[0] == '.' || fd == dirfd(dir))
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on &&
		    getsockname(fd, (struct sockaddr *)&sa, &slen) == 0 && sa.sin_family == AF_INET)
			port = ntohs(sa.sin_port);
	}
	if (dir)
		closedir(dir);
	return port;
}

struct client {
	int fd;
	struct weft_buf got;
	bool eof;
	int64_t eof_ms; /* when the server closed, since the connect */
	int64_t t0;
};

static void client_open(struct client *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(g_port)};

	*c = (struct client){.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), .t0 = weft_now_ms()};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
}

static void client_send(struct client *c, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EAGAIN) {
			pump(5);
			continue;
		}
		if (w < 0)
			return; /* the server closed: what it answered tells */
		p += w, n -= (size_t)w;
	}
}

/* Take what the server sent so far. */
static void client_poll(struct client *c)
{
	char buf[4096];

	while (!c->eof) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			c->eof = true;
			c->eof_ms = weft_now_ms() - c->t0;
			return;
		}
		weft_buf_append(&c->got, buf, (size_t)n);
	}
}

/* Pump the loop until the server closed c, at most ms. */
static void client_wait(struct client *c, int ms)
{
	int64_t end = weft_now_ms() + ms;

	for (client_poll(c); !c->eof && weft_now_ms() < end; client_poll(c))
		pump(5);
}

static void client_close(struct client *c)
{
	close(c->fd);
	weft_buf_free(&c->got);
}

/* The answer's status code (0: none). */
static int status_of(const struct client *c)
{
	int code = 0;

	if (c->got.len && sscanf(c->got.data, "HTTP/1.1 %d ", &code) != 1)
		code = 0;
	return code;
}

/* One request sent at once: its status code, the server having closed
 * within ms. */
static int ask(const char *req, size_t len, int ms)
{
	struct client c;
	int code;

	client_open(&c);
	client_send(&c, req, len);
	client_wait(&c, ms);
	code = c.eof ? status_of(&c) : -1;
	if (code <= 0)
		fprintf(stderr, "no answer to \"%.40s\" within %d ms (eof %d, %zu bytes)\n", req, ms, c.eof,
			c.got.len);
	client_close(&c);
	return code;
}

#define ASK(s) ask(s, sizeof(s) - 1, 1000)

static void test_requests(void)
{
	struct weft_buf big = {0};
	struct client c;

	CHECK_EQ_INT(ASK("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
	CHECK_EQ_INT(ASK("GET /nope HTTP/1.1\r\n\r\n"), 404);
	CHECK_EQ_INT(ASK("DELETE /metrics HTTP/1.1\r\n\r\n"), 405);
	CHECK_EQ_INT(ASK("GET HTTP/1.1\r\n\r\n"), 400);
	CHECK_EQ_INT(ASK("GET /metrics HTTP/2.0\r\n\r\n"), 400);
	/* A NUL byte: 400 at once, not after the timeout (the old parser
	 * looked for the end of the head with strstr(), which stopped at the
	 * NUL: the client waited 5 s and was closed without an answer). */
	CHECK_EQ_INT(ask("GET /metrics HTTP/1.1\r\nHost: a\0b", 32, 1000), 400);
	CHECK_EQ_INT(ask("GET /metrics HTTP/1.1\r\nHost: a\0b\r\n\r\n", 36, 1000), 400);
	/* A bare CR "ending" the head used to be taken for its end. */
	CHECK_EQ_INT(ASK("GET /metrics HTTP/1.1\r\n\rX: y\r\n\r\n"), 400);
	/* Too large. */
	weft_buf_printf(&big, "GET /metrics HTTP/1.1\r\nX-Big: ");
	while (big.len < 20000)
		weft_buf_append(&big, "a", 1);
	weft_buf_append(&big, "\r\n\r\n", 4);
	CHECK_EQ_INT(ask(big.data, big.len, 2000), 413);
	weft_buf_free(&big);
	/* Half a request, then the client's end: 400. */
	client_open(&c);
	client_send(&c, "GET /metrics HTTP/1.1", 21);
	shutdown(c.fd, SHUT_WR);
	client_wait(&c, 1000);
	CHECK(c.eof);
	CHECK_EQ_INT(status_of(&c), 400);
	client_close(&c);
	/* Pipelined: the first is answered, then the connection closes. */
	client_open(&c);
	static const char two[] = "GET /metrics HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n";
	client_send(&c, two, sizeof(two) - 1);
	client_wait(&c, 1000);
	CHECK(c.eof);
	CHECK_EQ_INT(status_of(&c), 200);
	CHECK(c.got.data && !strstr(c.got.data + 1, "HTTP/1.1 404"));
	client_close(&c);
}

/* Slow clients: each is dealt with by its deadline (5 s after its
 * connect), and others are answered meanwhile. */
static void test_slow_clients(void)
{
	static const char slow[] = "GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	struct client loris, nocrlf, silent;
	size_t sent = 0;
	int64_t next = 0, t0 = weft_now_ms();
	int answered = 0;

	client_open(&loris);
	client_open(&nocrlf);
	client_open(&silent);
	client_send(&nocrlf, "GET /metrics HTTP/1.1", 21);
	while (weft_now_ms() - t0 < 7000 && !(loris.eof && nocrlf.eof && silent.eof)) {
		/* A byte every 400 ms, never the end of the head. */
		if (!loris.eof && weft_now_ms() >= next && sent < sizeof(slow) - 1) {
			client_send(&loris, slow + sent++, 1);
			next = weft_now_ms() + 400;
		}
		/* Meanwhile, others are answered at once. */
		if (weft_now_ms() - t0 < 4000) {
			int64_t t = weft_now_ms();

			if (ASK("GET /metrics HTTP/1.1\r\n\r\n") == 200 && weft_now_ms() - t < 500)
				answered++;
		}
		pump(20);
		client_poll(&loris);
		client_poll(&nocrlf);
		client_poll(&silent);
	}
	CHECK(answered >= 5);
	/* The slowloris and the request without its line end: 408 at the
	 * deadline (they used to be closed without an answer). */
	CHECK(loris.eof && nocrlf.eof && silent.eof);
	CHECK_EQ_INT(status_of(&loris), 408);
	CHECK_EQ_INT(status_of(&nocrlf), 408);
	CHECK(loris.eof_ms >= 4500 && loris.eof_ms < 6500);
	CHECK(nocrlf.eof_ms >= 4500 && nocrlf.eof_ms < 6500);
	/* A client that sent nothing is closed without a word. */
	CHECK_EQ_INT(silent.got.len, 0);
	CHECK(silent.eof_ms >= 4500 && silent.eof_ms < 6500);
	fprintf(stderr, "slowloris closed after %lld ms (%zu bytes sent), no line end after %lld ms, silent after %lld ms; %d answers meanwhile\n",
		(long long)loris.eof_ms, sent, (long long)nocrlf.eof_ms, (long long)silent.eof_ms, answered);
	client_close(&loris);
	client_close(&nocrlf);
	client_close(&silent);
}

int main(void)
{
	static const struct test_case cases[] = {TEST(test_requests), TEST(test_slow_clients)};
	char dir[] = "/tmp/weft-test-status-http.XXXXXX";
	struct weftd d = {.node = "node-1"};
	struct weftd_status *s = NULL;
	_cleanup_free_ char *url = NULL, *err = NULL;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		abort();
	url = wasprintf("file:%s", dir);
	d.store_url = url;
	d.metrics = weftd_metrics_new();
	if (weft_store_open(url, &d.store, &err) < 0 || weft_loop_new(&g_loop) < 0 ||
	    weftd_status_start(&d, g_loop, "127.0.0.1:0", &s) < 0) {
		fprintf(stderr, "setup failed: %s\n", err ? err : "");
		return 1;
	}
	g_port = find_port();
	if (!g_port) {
		fprintf(stderr, "the server does not listen\n");
		return 1;
	}
	rc = test_run(cases, ARRAY_SIZE(cases));
	weftd_status_stop(s);
	weft_loop_free(g_loop);
	weft_store_close(d.store);
	weftd_metrics_free(d.metrics);
	{
		_cleanup_free_ char *cmd = wasprintf("rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return rc;
}
