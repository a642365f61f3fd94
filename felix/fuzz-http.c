/* fuzz-http.c - libFuzzer target for weftd's HTTP request parser
 * (felix/http.c), the way weftd's connections call it: with every byte
 * received so far, after each read.
 *
 * Input: byte 0 chooses the reads (its top two bits: single bytes, up to
 * 16, up to 512 or up to 8192 bytes each; the low six bits seed the sizes)
 * and, by its bit 5, a small limit (64 bytes) instead of weftd's 8192; the
 * rest is what the client sends.
 *
 * Checked, or the target aborts: the verdicts over growing prefixes agree
 * with the verdict on all of it (0 until it is known; a refusal, a
 * complete head or "too large" never changes once given; a complete head
 * is the same head whatever follows it); a complete head lies within the
 * limit, ends with LF, and its method, target and path are in range and of
 * the allowed characters; parsing exactly the head again gives the same.
 */
#include "felix/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                            \
	do {                                                 \
		fprintf(stderr, "fuzz-http: " __VA_ARGS__);  \
		fputc('\n', stderr);                         \
		abort();                                     \
	} while (0)

static void check_head(const char *d, size_t len, size_t max, const struct weftd_http_request *r)
{
	if (!r->head_len || r->head_len > len || r->head_len > max || d[r->head_len - 1] != '\n')
		FAIL("head_len %zu of %zu bytes (max %zu)", r->head_len, len, max);
	if (r->method < d || !r->method_len || r->method + r->method_len > d + r->head_len)
		FAIL("method out of range");
	if (r->target < r->method + r->method_len || !r->target_len || r->target + r->target_len > d + r->head_len ||
	    r->target[0] != '/')
		FAIL("target out of range");
	if (r->path_len > r->target_len || (r->path_len < r->target_len && r->target[r->path_len] != '?') ||
	    memchr(r->target, '?', r->path_len))
		FAIL("path_len %zu of target %zu", r->path_len, r->target_len);
	if (r->minor != 0 && r->minor != 1)
		FAIL("minor %d", r->minor);
	for (size_t i = 0; i < r->method_len; i++)
		if (r->method[i] <= ' ' || r->method[i] >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", r->method[i]))
			FAIL("method byte 0x%02x", (unsigned char)r->method[i]);
	for (size_t i = 0; i < r->target_len; i++)
		if (r->target[i] <= ' ' || r->target[i] >= 0x7f)
			FAIL("target byte 0x%02x", (unsigned char)r->target[i]);
	/* No NUL and no lone CR anywhere in the head. */
	for (size_t i = 0; i < r->head_len; i++)
		if (!d[i] || (d[i] == '\r' && d[i + 1] != '\n'))
			FAIL("byte %zu of the head is 0x%02x", i, (unsigned char)d[i]);
}

static bool same_head(const struct weftd_http_request *a, const struct weftd_http_request *b)
{
	return a->method == b->method && a->method_len == b->method_len && a->target == b->target &&
	       a->target_len == b->target_len && a->path_len == b->path_len && a->minor == b->minor &&
	       a->head_len == b->head_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t read_max[] = {1, 16, 512, 8192};
	struct weftd_http_request all = {0}, r, again;
	const char *d = (const char *)data + 1;
	size_t len, max, got = 0;
	uint32_t x;
	int want, rc, prev = 0;

	if (!size)
		return 0;
	len = size - 1;
	max = data[0] & 0x20 ? 64 : 8192;
	x = 0x9e3779b9u ^ (data[0] & 0x1f);
	want = weftd_http_parse_request(d, len, max, &all);
	if (want != 1 && want != 0 && want != -EBADMSG && want != -EMSGSIZE)
		FAIL("unexpected %d", want);
	if (want == -EMSGSIZE && len < max)
		FAIL("too large at %zu bytes of %zu", len, max);
	if (want == 1) {
		check_head(d, len, max, &all);
		if (weftd_http_parse_request(d, all.head_len, max, &again) != 1 || !same_head(&again, &all))
			FAIL("the head alone parses differently");
	}
	/* The reads: the verdict after each must be on the way to want. */
	while (got < len) {
		size_t n;

		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		n = 1 + x % read_max[data[0] >> 6];
		got += n < len - got ? n : len - got;
		memset(&r, 0xa5, sizeof(r));
		rc = weftd_http_parse_request(d, got, max, &r);
		if (prev != 0 && rc != prev)
			FAIL("verdict %d after %d at %zu bytes", rc, prev, got);
		if (rc != 0 && rc != want)
			FAIL("verdict %d at %zu bytes, %d at all %zu", rc, got, want, len);
		if (rc == 1 && !same_head(&r, &all))
			FAIL("a different head at %zu bytes", got);
		prev = rc;
	}
	return 0;
}
