/* util.h - small helpers shared by every weft module.
 *
 * Conventions for the whole code base (see docs/architecture.md):
 *  - Functions return int: 0 (or a positive count) on success, a negative
 *    errno on failure. Output parameters come last and are untouched on
 *    failure.
 *  - Out of memory is not recoverable in weft: the w* allocators below abort
 *    the process with a message. A daemon that cannot allocate a few bytes
 *    cannot keep its promises either, and a restart resyncs from the store.
 *  - Ownership is explicit with __attribute__((cleanup)) helpers and
 *    TAKE_PTR(); every destructor accepts NULL.
 */
#ifndef WEFT_UTIL_H
#define WEFT_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED __attribute__((unused))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* TAKE_PTR(p): return p and set it to NULL, so a cleanup handler won't free it. */
#define TAKE_PTR(p) ({ typeof(p) _tp = (p); (p) = NULL; _tp; })
#define TAKE_FD(fd) ({ int _tf = (fd); (fd) = -1; _tf; })

static inline void weft_freep(void *p) { free(*(void **)p); }
static inline void weft_closep(int *fd) { if (*fd >= 0) { int e = errno; close(*fd); errno = e; } }
static inline void weft_fclosep(FILE **f) { if (*f) fclose(*f); }
#define _cleanup_free_ __attribute__((cleanup(weft_freep)))
#define _cleanup_close_ __attribute__((cleanup(weft_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(weft_fclosep)))

/* Allocation that never returns NULL: abort on out-of-memory. */
void *wmalloc(size_t n);
void *wcalloc(size_t n, size_t size);
void *wrealloc(void *p, size_t n);
char *wstrdup(const char *s);
char *wstrndup(const char *s, size_t n);
void *wmemdup(const void *p, size_t n);
/* wasprintf: like asprintf but returns the string (never NULL). */
char *wasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);
char *wvasprintf(const char *fmt, va_list ap) PRINTF_LIKE(1, 0);

static inline bool streq(const char *a, const char *b) { return strcmp(a, b) == 0; }
static inline bool startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Bounded copy that always NUL-terminates. Returns -ENAMETOOLONG (and copies
 * a truncated string) when src does not fit. */
int weft_strlcpy(char *dst, const char *src, size_t size);

/* Parse a decimal integer in [min, max]; the whole string must be the number.
 * Returns 0, -EINVAL (not a number) or -ERANGE. */
int weft_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Monotonic clock in nanoseconds / milliseconds. */
int64_t weft_now_ns(void);

/* FNV-1a over n bytes at p, on from h (WEFT_FNV_INIT to start). */
#define WEFT_FNV_INIT 0xcbf29ce484222325ULL
uint64_t weft_fnv1a(const void *p, size_t n, uint64_t h);
static inline int64_t weft_now_ms(void) { return weft_now_ns() / 1000000; }

/* A growable byte buffer. Always NUL-terminated (data[len] == 0). */
struct weft_buf {
	char *data;
	size_t len, cap;
};
void weft_buf_append(struct weft_buf *b, const void *p, size_t n);
void weft_buf_printf(struct weft_buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
void weft_buf_free(struct weft_buf *b);
/* Hand the data over to the caller (never NULL) and reset the buffer. */
char *weft_buf_steal(struct weft_buf *b);

#endif
