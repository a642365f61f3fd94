/* test-selector.c - the selector language: accepted forms and their
 * canonical text, rejected forms with the exact message, evaluation truth
 * tables, precedence, keys, is_all and the schema-facing validate(). */
#include "lib/test.h"
#include "model/selector.h"

/* Parse text, which must succeed; NULL (and a failed check) otherwise. */
static struct weft_selector *parse_ok(const char *text)
{
	struct weft_selector *s = NULL;
	char *err = NULL;

	if (weft_selector_parse(text, &s, &err) < 0) {
		fprintf(stderr, "unexpected error: %s\n", err);
		CHECK(!"parse failed");
		free(err);
		return NULL;
	}
	return s;
}

/* str(s) parses back to an equal selector and prints the same again. */
static void check_round_trip(const struct weft_selector *s)
{
	char *text = weft_selector_str(s), *again;
	struct weft_selector *back = parse_ok(text);

	if (!back) {
		free(text);
		return;
	}
	CHECK(weft_selector_equal(s, back));
	again = weft_selector_str(back);
	CHECK_STREQ(again, text);
	free(again);
	free(text);
	weft_selector_free(back);
}

static void test_parse_ok(void)
{
	static const struct {
		const char *in, *canonical;
	} cases[] = {
		{"all()", "all()"},
		{"", "all()"},
		{" \t\r\n", "all()"},
		{" all ( ) ", "all()"},
		{"has(a)", "has(a)"},
		{"has( app.kubernetes.io/name )", "has(app.kubernetes.io/name)"},
		{"!has(a)", "!has(a)"},
		{"role=='db'", "role == 'db'"},
		{"role == \"db\"", "role == 'db'"},
		{"a == \"it's\"", "a == \"it's\""},
		{"a == '\"q\"'", "a == '\"q\"'"},
		{"a != ''", "a != ''"},
		{"a == 'caf\xc3\xa9'", "a == 'caf\xc3\xa9'"},
		{"calico/k8s_ns == 'x-1.y'", "calico/k8s_ns == 'x-1.y'"},
		{"k in {'b','a','b'}", "k in {'a', 'b'}"},
		{"k in {}", "k in {}"},
		{"k not in {}", "k not in {}"},
		{"k  not\tin {'x',}", "k not in {'x'}"},
		{"k in{\"it's\", 'b'}", "k in {'b', \"it's\"}"},
		{"k contains 's'", "k contains 's'"},
		{"k starts  with 's'", "k starts with 's'"},
		{"k ends with \"s\"", "k ends with 's'"},
		{"!!has(a)", "has(a)"},
		{"!(!has(a))", "has(a)"},
		{"!!!has(a)", "!has(a)"},
		{"! ! all()", "all()"},
		{"!all()", "!all()"},
		{"!a == 'b'", "!(a == 'b')"},
		{"!(a in {'x'})", "!(a in {'x'})"},
		{"a == 'x' && b == 'y' || c == 'z'", "a == 'x' && b == 'y' || c == 'z'"},
		{"(a == 'x' && b == 'y') || c == 'z'", "a == 'x' && b == 'y' || c == 'z'"},
		{"a == 'x' && (b == 'y' || c == 'z')", "a == 'x' && (b == 'y' || c == 'z')"},
		{"(a == 'x' && b == 'y') && c == 'z'", "a == 'x' && b == 'y' && c == 'z'"},
		{"has(a) || (has(b) || has(c))", "has(a) || has(b) || has(c)"},
		{"((has(a)))", "has(a)"},
		{"!(has(a) && has(b))", "!(has(a) && has(b))"},
		{"!(has(a) || has(b)) && has(c)", "!(has(a) || has(b)) && has(c)"},
		{"has(a)||has(b)&&has(c)", "has(a) || has(b) && has(c)"},
		{"has(a)\n&&\r\n\tb == 'c'", "has(a) && b == 'c'"},
		/* Keywords are keys where a key is expected. */
		{"in == 'x'", "in == 'x'"},
		{"has == 'x'", "has == 'x'"},
		{"all in {'a'}", "all in {'a'}"},
		{"not not in {'n'}", "not not in {'n'}"},
		{"starts starts with 'x'", "starts starts with 'x'"},
		{"global != 'x'", "global != 'x'"},
		{"has(has)", "has(has)"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct weft_selector *s = parse_ok(cases[i].in);
		char *text;

		if (!s) {
			fprintf(stderr, "  case %zu: %s\n", i, cases[i].in);
			continue;
		}
		text = weft_selector_str(s);
		CHECK_STREQ(text, cases[i].canonical);
		free(text);
		check_round_trip(s);
		weft_selector_free(s);
	}
	/* NULL reads as "". */
	struct weft_selector *s = parse_ok(NULL);
	CHECK(s && weft_selector_is_all(s));
	weft_selector_free(s);
}

static void test_parse_errors(void)
{
	static const struct {
		const char *in, *err;
	} cases[] = {
		{"role = 'db'", "selector \"role = 'db'\": at 6: expected ==, !=, in, not in, contains, starts with or ends with"},
		{"role", "selector \"role\": at 5: expected ==, !=, in, not in, contains, starts with or ends with"},
		{"role ==", "selector \"role ==\": at 8: expected a quoted string"},
		{"role == db", "selector \"role == db\": at 9: expected a quoted string"},
		{"role == 'db", "selector \"role == 'db\": at 9: unterminated quoted string"},
		{"role == \"db'", "selector \"role == \"db'\": at 9: unterminated quoted string"},
		{"(", "selector \"(\": at 2: expected a label key, all(), has(key), ! or ("},
		{")", "selector \")\": at 1: expected a label key, all(), has(key), ! or ("},
		{"'a' == 'b'", "selector \"'a' == 'b'\": at 1: expected a label key, all(), has(key), ! or ("},
		{"!", "selector \"!\": at 2: expected a label key, all(), has(key), ! or ("},
		{"has(a) &&", "selector \"has(a) &&\": at 10: expected a label key, all(), has(key), ! or ("},
		{"has(a) )", "selector \"has(a) )\": at 8: unmatched )"},
		{"(has(a)", "selector \"(has(a)\": at 8: expected &&, || or )"},
		{"(has(a) has(b))", "selector \"(has(a) has(b))\": at 9: expected &&, || or )"},
		{"has(a) has(b)", "selector \"has(a) has(b)\": at 8: expected &&, || or end of selector"},
		{"has(a) & has(b)", "selector \"has(a) & has(b)\": at 8: expected &&, || or end of selector"},
		{"has(a) | has(b)", "selector \"has(a) | has(b)\": at 8: expected &&, || or end of selector"},
		{"k == 'a' == 'b'", "selector \"k == 'a' == 'b'\": at 10: expected &&, || or end of selector"},
		{"has()", "selector \"has()\": at 5: expected a label key"},
		{"has('a')", "selector \"has('a')\": at 5: expected a label key"},
		{"has(a", "selector \"has(a\": at 6: expected )"},
		{"has(a b)", "selector \"has(a b)\": at 7: expected )"},
		{"all(x)", "selector \"all(x)\": at 5: expected )"},
		{"global()", "selector \"global()\": at 1: global() is not supported: weft has no namespaces"},
		{"foo(x)", "selector \"foo(x)\": at 4: expected ==, !=, in, not in, contains, starts with or ends with"},
		{"k in 'a'", "selector \"k in 'a'\": at 6: expected {"},
		{"k in {'a' 'b'}", "selector \"k in {'a' 'b'}\": at 11: expected , or }"},
		{"k in {a}", "selector \"k in {a}\": at 7: expected a quoted string or }"},
		{"k in {'a'", "selector \"k in {'a'\": at 10: expected , or }"},
		{"k in {,}", "selector \"k in {,}\": at 7: expected a quoted string or }"},
		{"k not 'a'", "selector \"k not 'a'\": at 7: expected in after not"},
		{"k notin {'a'}", "selector \"k notin {'a'}\": at 3: expected ==, !=, in, not in, contains, starts with or ends with"},
		{"k starts 'a'", "selector \"k starts 'a'\": at 10: expected with after starts"},
		{"k ends 'a'", "selector \"k ends 'a'\": at 8: expected with after ends"},
		{"k startswith 'a'", "selector \"k startswith 'a'\": at 3: expected ==, !=, in, not in, contains, starts with or ends with"},
		{"k contains", "selector \"k contains\": at 11: expected a quoted string"},
		{"a == 'x\ty'", "selector \"a == 'x\\ty'\": at 8: control character in quoted string"},
		{"a == 'x\ny'", "selector \"a == 'x\\ny'\": at 8: control character in quoted string"},
		{"a == 'x'\x01", "selector \"a == 'x'\\x01\": at 9: control character"},
		{"a == 'x\x7f'", "selector \"a == 'x\\x7f'\": at 8: control character"},
		{"a =! 'x'", "selector \"a =! 'x'\": at 3: expected ==, !=, in, not in, contains, starts with or ends with"},
		{"a == 'x' &&& has(b)", "selector \"a == 'x' &&& has(b)\": at 12: expected a label key, all(), has(key), ! or ("},
	};
	char *err = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct weft_selector *s = (struct weft_selector *)&err; /* must stay untouched */

		CHECK_EQ_INT(weft_selector_parse(cases[i].in, &s, &err), -EINVAL);
		CHECK(s == (struct weft_selector *)&err);
		CHECK_STREQ(err, cases[i].err);
		free(err);
		err = NULL;
		/* err may be NULL. */
		CHECK_EQ_INT(weft_selector_parse(cases[i].in, &s, NULL), -EINVAL);
	}
}

/* Nesting and length are bounded with an error, not a deep recursion. */
static void test_limits(void)
{
	struct weft_buf b = {0};
	struct weft_selector *s = NULL;
	char *err = NULL;

	for (int i = 0; i < WEFT_SELECTOR_MAX_DEPTH; i++)
		weft_buf_append(&b, "(", 1);
	weft_buf_append(&b, "has(a)", 6);
	for (int i = 0; i < WEFT_SELECTOR_MAX_DEPTH; i++)
		weft_buf_append(&b, ")", 1);
	s = parse_ok(b.data);
	weft_selector_free(s);
	weft_buf_free(&b);

	for (int i = 0; i <= WEFT_SELECTOR_MAX_DEPTH; i++)
		weft_buf_append(&b, "(!", 2);
	CHECK_EQ_INT(weft_selector_parse(b.data, &s, &err), -EINVAL);
	CHECK(err && strstr(err, "\": at 129: nested deeper than 64 levels"));
	free(err);
	err = NULL;
	weft_buf_free(&b);

	/* Negations do not nest: thousands are fine. */
	for (int i = 0; i < 4001; i++)
		weft_buf_append(&b, "!", 1);
	weft_buf_append(&b, "has(a)", 6);
	s = parse_ok(b.data);
	if (s) {
		char *text = weft_selector_str(s);
		CHECK_STREQ(text, "!has(a)");
		free(text);
	}
	weft_selector_free(s);
	weft_buf_free(&b);

	/* Long && chains are flat, not deep. */
	weft_buf_append(&b, "has(a)", 6);
	while (b.len + 10 <= WEFT_SELECTOR_MAX)
		weft_buf_append(&b, " && has(b)", 10);
	s = parse_ok(b.data);
	if (s)
		check_round_trip(s);
	weft_selector_free(s);
	weft_buf_free(&b);

	/* Within the limit as written, beyond it once spaced out. */
	weft_buf_append(&b, "has(a)", 6);
	while (b.len + 8 <= WEFT_SELECTOR_MAX)
		weft_buf_append(&b, "&&!a==''", 8);
	CHECK_EQ_INT(weft_selector_parse(b.data, &s, &err), -EINVAL);
	CHECK(err && strstr(err, "...\": longer than 4096 bytes in canonical form"));
	free(err);
	err = NULL;
	weft_buf_free(&b);

	for (int i = 0; i <= WEFT_SELECTOR_MAX; i++)
		weft_buf_append(&b, "a", 1);
	CHECK_EQ_INT(weft_selector_parse(b.data, &s, &err), -EINVAL);
	CHECK_STREQ(err, "selector \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": longer than 4096 bytes");
	free(err);
	weft_buf_free(&b);
}

#define LABELS(...)                                                                  \
	(&(struct weft_labels){(const struct weft_label[]){__VA_ARGS__},              \
			       sizeof((const struct weft_label[]){__VA_ARGS__}) / sizeof(struct weft_label)})

static void test_match(void)
{
	/* Sorted by key, as match() requires. */
	const struct weft_labels *web = LABELS({"app", "web"}, {"env", "prod"}, {"tier", "front-end"});
	const struct weft_labels *db = LABELS({"app", "db"}, {"empty", ""});
	const struct weft_labels none = {NULL, 0};
	static const struct {
		const char *sel;
		bool web, db, none;
	} cases[] = {
		{"all()", 1, 1, 1},
		{"has(app)", 1, 1, 0},
		{"!has(env)", 0, 1, 1},
		{"has(empty)", 0, 1, 0},
		{"empty == ''", 0, 1, 0},
		{"empty != ''", 1, 0, 1},
		{"app == 'web'", 1, 0, 0},
		{"app == 'we'", 0, 0, 0},
		{"app != 'web'", 0, 1, 1},
		{"env in {'prod', 'dev'}", 1, 0, 0},
		{"env in {}", 0, 0, 0},
		{"env not in {'prod'}", 0, 1, 1},
		{"app not in {'db', 'web'}", 0, 0, 1},
		{"app contains 'e'", 1, 0, 0},
		{"app contains ''", 1, 1, 0},
		{"tier contains 't-e'", 1, 0, 0},
		{"app starts with 'w'", 1, 0, 0},
		{"app starts with 'web!'", 0, 0, 0},
		{"app starts with 'd'", 0, 1, 0},
		{"app ends with 'b'", 1, 1, 0},
		{"app ends with 'xweb'", 0, 0, 0},
		{"tier ends with '-end'", 1, 0, 0},
		{"!(app ends with 'b')", 0, 0, 1},
		{"has(app) && app != 'db'", 1, 0, 0},
		/* && binds tighter than ||. */
		{"has(app) || has(env) && app == 'db'", 1, 1, 0},
		{"(has(app) || has(env)) && app == 'db'", 0, 1, 0},
		/* ! binds tighter than &&. */
		{"!has(env) && has(app)", 0, 1, 0},
		{"!(has(env) && has(app))", 0, 1, 1},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct weft_selector *s = parse_ok(cases[i].sel);

		if (!s)
			continue;
		if (weft_selector_match(s, web) != cases[i].web || weft_selector_match(s, db) != cases[i].db ||
		    weft_selector_match(s, &none) != cases[i].none || weft_selector_match(s, NULL) != cases[i].none) {
			fprintf(stderr, "  wrong match for %s\n", cases[i].sel);
			CHECK(!"match");
		}
		weft_selector_free(s);
	}
}

/* Every combination of three labels present or absent against the same
 * expression evaluated by C, whose precedence is the same (! > && > ||). */
static void test_truth_tables(void)
{
	static const char *const sels[] = {
		"has(a) || has(b) && has(c)",
		"!has(a) && has(b) || has(c)",
		"!(has(a) || has(b)) && !has(c)",
		"has(a) && !has(b) || !has(c) && has(a)",
		"(has(a) || has(b)) && (has(b) || has(c))",
		"!(has(a) && (has(b) || !has(c)))",
		"a == 'x' || b != 'x' && c in {'x'}",
	};

	for (size_t i = 0; i < ARRAY_SIZE(sels); i++) {
		struct weft_selector *s = parse_ok(sels[i]);

		if (!s)
			continue;
		for (int bits = 0; bits < 8; bits++) {
			struct weft_label v[3];
			struct weft_labels l = {v, 0};
			bool a = bits & 1, b = bits & 2, c = bits & 4, want;

			if (a)
				v[l.n++] = (struct weft_label){"a", "x"};
			if (b)
				v[l.n++] = (struct weft_label){"b", "x"};
			if (c)
				v[l.n++] = (struct weft_label){"c", "x"};
			switch (i) {
			case 0: want = a || (b && c); break;
			case 1: want = (!a && b) || c; break;
			case 2: want = !(a || b) && !c; break;
			case 3: want = (a && !b) || (!c && a); break;
			case 4: want = (a || b) && (b || c); break;
			case 5: want = !(a && (b || !c)); break;
			default: want = a || (!b && c); break;
			}
			if (weft_selector_match(s, &l) != want) {
				fprintf(stderr, "  %s with a=%d b=%d c=%d: want %d\n", sels[i], a, b, c, want);
				CHECK(!"truth table");
			}
		}
		check_round_trip(s);
		weft_selector_free(s);
	}
}

static void test_keys_and_all(void)
{
	struct weft_selector *s = parse_ok("z == 'x' && (has(b) || c in {'1'}) && !has(z) || a.b/c starts with 'q'");
	const char *const *keys = NULL;

	if (s) {
		CHECK_EQ_INT(weft_selector_keys(s, &keys), 4);
		CHECK_STREQ(keys[0], "a.b/c");
		CHECK_STREQ(keys[1], "b");
		CHECK_STREQ(keys[2], "c");
		CHECK_STREQ(keys[3], "z");
		CHECK(!weft_selector_is_all(s));
	}
	weft_selector_free(s);
	s = parse_ok("all()");
	if (s)
		CHECK_EQ_INT(weft_selector_keys(s, &keys), 0);
	weft_selector_free(s);

	static const struct {
		const char *sel;
		bool all;
	} cases[] = {
		{"all()", true},
		{"", true},
		{"all() || has(a)", true},
		{"has(a) || (all() && !(k in {}))", true},
		{"k not in {}", true},
		{"!(k in {})", true},
		{"!(!all())", true},
		{"has(a) && all()", false},
		{"!all()", false},
		{"has(a) || !has(a)", false},
		{"k in {}", false},
		{"k != 'x'", false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		s = parse_ok(cases[i].sel);
		if (s && weft_selector_is_all(s) != cases[i].all) {
			fprintf(stderr, "  is_all(%s) != %d\n", cases[i].sel, cases[i].all);
			CHECK(!"is_all");
		}
		weft_selector_free(s);
	}
}

static void test_equal(void)
{
	static const char *const same[][2] = {
		{"k in {'a', 'b'}", "k in {\"b\",'a','a'}"},
		{"has(a) && has(b) && has(c)", "(has(a) && has(b)) && has(c)"},
		{"!!has(a)", "has(a)"},
		{"", "all()"},
	};
	static const char *const differ[][2] = {
		{"has(a) && has(b)", "has(b) && has(a)"},
		{"k in {'a'}", "k not in {'a'}"},
		{"k == 'a'", "k != 'a'"},
		{"k == 'a'", "j == 'a'"},
		{"k == 'a'", "k == 'b'"},
		{"has(a) && has(b)", "has(a) || has(b)"},
		{"has(a) && has(b)", "has(a) && has(b) && has(c)"},
		{"k starts with 'a'", "k ends with 'a'"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(same) + ARRAY_SIZE(differ); i++) {
		bool want = i < ARRAY_SIZE(same);
		const char *const *pair = want ? same[i] : differ[i - ARRAY_SIZE(same)];
		struct weft_selector *a = parse_ok(pair[0]), *b = parse_ok(pair[1]);

		if (a && b && weft_selector_equal(a, b) != want) {
			fprintf(stderr, "  equal(%s, %s) != %d\n", pair[0], pair[1], want);
			CHECK(!"equal");
		}
		weft_selector_free(a);
		weft_selector_free(b);
	}
}

static void test_labels_sort(void)
{
	struct weft_label v[] = {{"zone", "a"}, {"app", "web"}, {"m/x", "1"}, {"env", "prod"}};
	struct weft_labels l = {v, ARRAY_SIZE(v)};
	struct weft_selector *s = parse_ok("app == 'web' && zone == 'a' && has(env) && m/x in {'1'}");

	weft_selector_labels_sort(v, ARRAY_SIZE(v));
	CHECK_STREQ(v[0].key, "app");
	CHECK_STREQ(v[3].key, "zone");
	if (s)
		CHECK(weft_selector_match(s, &l));
	weft_selector_free(s);
}

/* The schema-facing check: the old messages for the common mistakes, the
 * parser's positional ones for the rest, and "" rejected. */
static void test_validate(void)
{
	static const struct {
		const char *in, *err;
	} cases[] = {
		{"all()", NULL},
		{"\thas(a) &&\n b == 'c'\n", NULL},
		{"", "is not a valid selector: it is empty"},
		{" \n ", "is not a valid selector: it is empty"},
		{NULL, "is not a valid selector: it is empty"},
		{"(a", "is not a valid selector: unbalanced parentheses"},
		{")(", "is not a valid selector: unbalanced parentheses"},
		{"a == 'x", "is not a valid selector: unterminated quoted string"},
		{"a == 'x\ty'", "contains a control character"},
		{"tab\x01", "contains a control character"},
		{"role = 'db'", "is not a valid selector: at 6: expected ==, !=, in, not in, contains, starts with or ends with"},
		{"a == ')'", NULL},
		{"a == ')' && (b", "is not a valid selector: unbalanced parentheses"},
		{"global()", "is not a valid selector: at 1: global() is not supported: weft has no namespaces"},
	};
	char *err = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = weft_selector_validate(cases[i].in, &err);

		if (!cases[i].err) {
			CHECK_EQ_INT(r, 0);
			CHECK(err == NULL);
			continue;
		}
		CHECK_EQ_INT(r, -EINVAL);
		CHECK_STREQ(err, cases[i].err);
		free(err);
		err = NULL;
		CHECK_EQ_INT(weft_selector_validate(cases[i].in, NULL), -EINVAL);
	}
}

TEST_MAIN(TEST(test_parse_ok), TEST(test_parse_errors), TEST(test_limits), TEST(test_match), TEST(test_truth_tables),
	  TEST(test_keys_and_all), TEST(test_equal), TEST(test_labels_sort), TEST(test_validate))
