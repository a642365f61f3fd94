#include "lib/util.h"

#include <time.h>

static void oom(size_t n)
{
	fprintf(stderr, "weft: out of memory allocating %zu bytes\n", n);
	abort();
}

void *wmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *wcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *wrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *wstrdup(const char *s)
{
	return wmemdup(s, strlen(s) + 1);
}

char *wstrndup(const char *s, size_t n)
{
	size_t l = strnlen(s, n);
	char *p = wmalloc(l + 1);
	memcpy(p, s, l);
	p[l] = 0;
	return p;
}

void *wmemdup(const void *p, size_t n)
{
	void *q = wmalloc(n);
	if (n)
		memcpy(q, p, n);
	return q;
}

char *wvasprintf(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		oom(strlen(fmt));
	return s;
}

char *wasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = wvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

int weft_strlcpy(char *dst, const char *src, size_t size)
{
	size_t l = strlen(src);
	if (size == 0)
		return -ENAMETOOLONG;
	if (l >= size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = 0;
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, l + 1);
	return 0;
}

int weft_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end || end == s)
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

uint64_t weft_fnv1a(const void *p, size_t n, uint64_t h)
{
	const uint8_t *c = p;

	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

int64_t weft_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Room for n more bytes and a NUL after the text. */
static void buf_reserve(struct weft_buf *b, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = wrealloc(b->data, cap);
		b->cap = cap;
	}
}

void weft_buf_append(struct weft_buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
}

void weft_buf_printf(struct weft_buf *b, const char *fmt, ...)
{
	/* Formats in place: into the room the buffer has, and once more
	 * after growing it when that was too little. */
	for (int pass = 0; pass < 2; pass++) {
		size_t room = b->cap > b->len ? b->cap - b->len : 0;
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			oom(strlen(fmt)); /* as wvasprintf() does */
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		buf_reserve(b, (size_t)n);
	}
	abort(); /* the second pass had the room vsnprintf() asked for */
}

void weft_buf_free(struct weft_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *weft_buf_steal(struct weft_buf *b)
{
	if (!b->data)
		weft_buf_append(b, "", 0);
	char *d = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}
