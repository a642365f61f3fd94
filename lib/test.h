/* test.h - a minimal unit-test harness: CHECK() records a failure and goes
 * on; TEST_MAIN runs the listed functions and prints "N passed, N failed". */
#ifndef WEFT_TEST_H
#define WEFT_TEST_H

#include "lib/util.h"

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                                 \
	do {                                                                        \
		test_checks++;                                                      \
		if (!(cond)) {                                                      \
			test_failures++;                                            \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                   \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                          \
	do {                                                                        \
		long long _a = (long long)(a), _b = (long long)(b);                \
		test_checks++;                                                      \
		if (_a != _b) {                                                     \
			test_failures++;                                            \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
				__FILE__, __LINE__, #a, #b, _a, _b);                \
		}                                                                   \
	} while (0)

#define CHECK_STREQ(a, b)                                                           \
	do {                                                                        \
		const char *_a = (a), *_b = (b);                                    \
		test_checks++;                                                      \
		if (!_a || !_b || strcmp(_a, _b) != 0) {                            \
			test_failures++;                                            \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", \
				__FILE__, __LINE__, #a, #b, _a ? _a : "(null)", _b ? _b : "(null)"); \
		}                                                                   \
	} while (0)

typedef void (*test_fn)(void);
struct test_case {
	const char *name;
	test_fn fn;
};
#define TEST(fn) {#fn, fn}

static inline int test_run(const struct test_case *cases, size_t n)
{
	int passed = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		int before = test_failures;
		cases[i].fn();
		if (test_failures == before) {
			passed++;
			fprintf(stderr, "ok   %s\n", cases[i].name);
		} else {
			failed++;
			fprintf(stderr, "FAIL %s\n", cases[i].name);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#define TEST_MAIN(...)                                                              \
	int main(void)                                                              \
	{                                                                           \
		static const struct test_case cases[] = {__VA_ARGS__};             \
		return test_run(cases, ARRAY_SIZE(cases));                          \
	}

#endif
