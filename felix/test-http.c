/* test-http.c - weftd's HTTP request parser (felix/http.c): good requests,
 * incomplete ones, bad ones refused as soon as the bytes show it, heads
 * too large, and what follows a complete head (a pipelined request). */
#include "felix/http.h"

#include "lib/test.h"

#define MAX 8192

static int parse(const char *s, struct weftd_http_request *r)
{
	return weftd_http_parse_request(s, strlen(s), MAX, r);
}

static bool span_eq(const char *p, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(p, s, n) == 0;
}

static void test_good(void)
{
	struct weftd_http_request r = {0};
	static const char get[] = "GET /metrics?name=weft_up HTTP/1.1\r\nHost: 127.0.0.1:9099\r\n"
				  "User-Agent: Prometheus/2.45\r\nAccept: text/plain;q=0.9, */*\r\n\r\n";

	CHECK_EQ_INT(parse(get, &r), 1);
	CHECK(weftd_http_method_is(&r, "GET"));
	CHECK(span_eq(r.target, r.target_len, "/metrics?name=weft_up"));
	CHECK(weftd_http_path_is(&r, "/metrics"));
	CHECK(!weftd_http_path_is(&r, "/metric"));
	CHECK_EQ_INT(r.minor, 1);
	CHECK_EQ_INT(r.head_len, strlen(get));

	/* HTTP/1.0 without headers; bare LF line ends; an empty line before
	 * the request line; empty header values, obs-text, tabs; another
	 * method (answered 405 by the caller). */
	CHECK_EQ_INT(parse("GET /healthz HTTP/1.0\r\n\r\n", &r), 1);
	CHECK_EQ_INT(r.minor, 0);
	CHECK(weftd_http_path_is(&r, "/healthz"));
	CHECK_EQ_INT(parse("GET /healthz HTTP/1.1\nHost: x\n\n", &r), 1);
	CHECK_EQ_INT(r.head_len, strlen("GET /healthz HTTP/1.1\nHost: x\n\n"));
	CHECK_EQ_INT(parse("\r\nGET / HTTP/1.1\r\n\r\n", &r), 1);
	CHECK(weftd_http_path_is(&r, "/"));
	CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nX-Empty:\r\nX-Odd: \xc3\xa9t\xc3\xa9\t \r\n\r\n", &r), 1);
	CHECK_EQ_INT(parse("POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r), 1);
	CHECK(weftd_http_method_is(&r, "POST"));
	CHECK(!weftd_http_method_is(&r, "GET"));
}

/* Valid so far: wait for more. *req stays untouched. */
static void test_incomplete(void)
{
	static const char *const cases[] = {
		"",
		"G",
		"GET",
		"GET ",
		"GET /heal",
		"GET /healthz ",
		"GET /healthz HTTP/1.",
		"GET /healthz HTTP/1.1",  /* no line end yet (a missing CRLF) */
		"GET /healthz HTTP/1.1\r",
		"GET /healthz HTTP/1.1\r\n",
		"GET /healthz HTTP/1.1\r\nHo",
		"GET /healthz HTTP/1.1\r\nHost: x",
		"GET /healthz HTTP/1.1\r\nHost: x\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r",
		"\r\n",
	};
	struct weftd_http_request r = {.head_len = 4242};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int rc = parse(cases[i], &r);

		if (rc != 0)
			fprintf(stderr, "case %zu \"%s\": %d\n", i, cases[i], rc);
		CHECK_EQ_INT(rc, 0);
	}
	CHECK_EQ_INT(r.head_len, 4242);
}

static void test_bad(void)
{
	static const char *const cases[] = {
		"NONSENSE\r\n\r\n",
		"GET\r\n\r\n",                          /* no target */
		"GET HTTP/1.1\r\n\r\n",                 /* no target: the version taken for one */
		"GET /healthz\r\n\r\n",                 /* no version (HTTP/0.9) */
		"GET  /healthz HTTP/1.1\r\n\r\n",       /* two spaces */
		"GET /healthz  HTTP/1.1\r\n\r\n",
		"GET /healthz HTTP/1.1 \r\n\r\n",
		" GET /healthz HTTP/1.1\r\n\r\n",
		"GET\t/healthz HTTP/1.1\r\n\r\n",
		"GET /health\tz HTTP/1.1\r\n\r\n",
		"GET /healthz HTTP/2.0\r\n\r\n",
		"GET /healthz HTTP/1.2\r\n\r\n",
		"GET /healthz http/1.1\r\n\r\n",
		"GET /healthz HTTP/1.10\r\n\r\n",
		"GET * HTTP/1.1\r\n\r\n",
		"GET http://x/healthz HTTP/1.1\r\n\r\n", /* absolute form: not served */
		"GET /h\xc3\xa9 HTTP/1.1\r\n\r\n",      /* a non-ASCII target */
		"GET /healthz HTTP/1.1\rHost: x\r\n\r\n", /* a CR alone */
		"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", /* no colon */
		"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", /* a space before the colon */
		"GET /healthz HTTP/1.1\r\n: x\r\n\r\n",  /* no name */
		"GET /healthz HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nA: b\x01\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nA: b\x7f\r\n\r\n",
		"GET /healthz HTTP/1.1\r\n\rA: b\r\n\r\n", /* used to end the headers */
	};
	struct weftd_http_request r = {.head_len = 4242};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int rc = parse(cases[i], &r);

		if (rc != -EBADMSG)
			fprintf(stderr, "case %zu \"%s\": %d\n", i, cases[i], rc);
		CHECK_EQ_INT(rc, -EBADMSG);
	}
	CHECK_EQ_INT(r.head_len, 4242);
}

/* Refused as soon as the bytes show it, before the head ends: a NUL (it
 * used to be seen only once the head was complete, and one before the
 * end kept the end from being seen: the client waited for its timeout),
 * a request line without a target or version, a bad header name. */
static void test_bad_early(void)
{
	static const struct {
		const char *s;
		size_t len;
	} cases[] = {
		{"GET /healthz HTTP/1.1\r\nHost: a\0", 31},
		{"GET /he\0", 8},
		{"\0", 1},
		{"GET\r\n", 5},
		{"GET /healthz\r\n", 14},
		{"GET /healthz HTTP/2", 19},
		{"GET /healthz HTTP/1.1\r\nHost x\r\n", 31},
		{"GET /healthz HTTP/1.1\r\n Host", 28},
		{"GET /healthz HTTP/1.1\r\nHost: \x1b", 30},
	};
	struct weftd_http_request r;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int rc = weftd_http_parse_request(cases[i].s, cases[i].len, MAX, &r);

		if (rc != -EBADMSG)
			fprintf(stderr, "case %zu: %d\n", i, rc);
		CHECK_EQ_INT(rc, -EBADMSG);
	}
}

static void test_size(void)
{
	struct weftd_http_request r;
	struct weft_buf b = {0};

	/* A head that does not end within max bytes. */
	weft_buf_printf(&b, "GET /healthz HTTP/1.1\r\nX-Big: ");
	while (b.len < MAX - 1)
		weft_buf_append(&b, "a", 1);
	CHECK_EQ_INT(weftd_http_parse_request(b.data, b.len, MAX, &r), 0);
	weft_buf_append(&b, "a", 1);
	CHECK_EQ_INT(weftd_http_parse_request(b.data, b.len, MAX, &r), -EMSGSIZE);
	/* Its end beyond max bytes does not count. */
	weft_buf_append(&b, "\r\n\r\n", 4);
	CHECK_EQ_INT(weftd_http_parse_request(b.data, b.len, MAX, &r), -EMSGSIZE);
	/* A bad byte within max bytes is -EBADMSG, whatever the size. */
	b.data[100] = 0;
	CHECK_EQ_INT(weftd_http_parse_request(b.data, b.len, MAX, &r), -EBADMSG);
	/* A head that ends exactly at max bytes, and more after it. */
	b.len = 0;
	weft_buf_printf(&b, "GET /healthz HTTP/1.1\r\nX-Big: ");
	while (b.len < MAX - 4)
		weft_buf_append(&b, "a", 1);
	weft_buf_append(&b, "\r\n\r\nGET /x HTTP/1.1\r\n\r\n", 23);
	CHECK_EQ_INT(weftd_http_parse_request(b.data, b.len, MAX, &r), 1);
	CHECK_EQ_INT(r.head_len, MAX);
	/* Empty lines without end before the request line. */
	b.len = 0;
	while (b.len < MAX)
		weft_buf_append(&b, "\r\n", 2);
	CHECK_EQ_INT(weftd_http_parse_request(b.data, b.len, MAX, &r), -EMSGSIZE);
	weft_buf_free(&b);
}

/* Pipelined requests: the first head is parsed, the rest left alone (even
 * when it is garbage). */
static void test_pipelined(void)
{
	static const char two[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n";
	static const char junk[] = "GET /healthz HTTP/1.1\r\n\r\n\0\x01garbage";
	struct weftd_http_request r;

	CHECK_EQ_INT(parse(two, &r), 1);
	CHECK(weftd_http_path_is(&r, "/healthz"));
	CHECK_EQ_INT(r.head_len, strlen("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
	CHECK_EQ_INT(weftd_http_parse_request(junk, sizeof(junk) - 1, MAX, &r), 1);
	CHECK_EQ_INT(r.head_len, strlen("GET /healthz HTTP/1.1\r\n\r\n"));
}

/* Fed a byte at a time, a good request is 0 until its last byte and then
 * 1: never refused or complete early. */
static void test_bytewise(void)
{
	static const char get[] = "\r\nGET /metrics HTTP/1.1\r\nHost: [::1]:9099\nAccept: */*\r\n\r\n";
	struct weftd_http_request r;

	for (size_t i = 0; i < sizeof(get) - 1; i++)
		CHECK_EQ_INT(weftd_http_parse_request(get, i, MAX, &r), 0);
	CHECK_EQ_INT(weftd_http_parse_request(get, sizeof(get) - 1, MAX, &r), 1);
}

TEST_MAIN(TEST(test_good), TEST(test_incomplete), TEST(test_bad), TEST(test_bad_early), TEST(test_size),
	  TEST(test_pipelined), TEST(test_bytewise))
