/* test-json.c - unit tests for the cJSON helpers. */
#include "lib/json.h"
#include "lib/test.h"

static const char doc[] = "{\"s\": \"text\", \"t\": true, \"f\": false, \"n\": null,"
			  " \"i\": 42, \"neg\": -7, \"frac\": 1.5, \"big\": 9007199254740992,"
			  " \"huge\": 1e300, \"toobig\": 9007199254740994, \"exp\": 1e3,"
			  " \"o\": {\"k\": 1}, \"a\": [1, 2, 3], \"Case\": 1}";

static void test_parse(void)
{
	_cleanup_json_ cJSON *j = NULL;
	cJSON *untouched = (cJSON *)1;

	CHECK_EQ_INT(weft_json_parse(doc, strlen(doc), &j), 0);
	CHECK(cJSON_IsObject(j));
	CHECK_EQ_INT(weft_json_parse("{\"a\":", 5, &untouched), -EINVAL);
	CHECK_EQ_INT(weft_json_parse("{} x", 4, &untouched), -EINVAL);
	CHECK_EQ_INT(weft_json_parse("", 0, &untouched), -EINVAL);
	CHECK(untouched == (cJSON *)1);
	/* Not NUL-terminated: only len bytes are read. */
	{
		_cleanup_json_ cJSON *k = NULL;
		CHECK_EQ_INT(weft_json_parse("[1]garbage", 3, &k), 0);
		CHECK(cJSON_IsArray(k));
	}
	{
		_cleanup_json_ cJSON *k = NULL;
		CHECK_EQ_INT(weft_json_parse(" 7 \n", 4, &k), 0);
		CHECK(cJSON_IsNumber(k));
	}
}

/* refused(TEXT, LEN, FAULT, OFFSET, LINE, COLUMN, MSG): weft_json_parse()
 * and weft_json_parse_err() refuse TEXT, leave the output alone and say
 * MSG at that place. */
static void refused(const char *text, size_t len, enum weft_json_fault fault, size_t offset, size_t line,
		    size_t column, const char *msg)
{
	cJSON *untouched = (cJSON *)1;
	struct weft_json_error e = {0};

	CHECK_EQ_INT(weft_json_parse(text, len, &untouched), -EINVAL);
	CHECK_EQ_INT(weft_json_parse_err(text, len, &untouched, &e), -EINVAL);
	CHECK(untouched == (cJSON *)1);
	CHECK_EQ_INT(e.fault, fault);
	CHECK_EQ_INT(e.offset, offset);
	CHECK_EQ_INT(e.line, line);
	CHECK_EQ_INT(e.column, column);
	CHECK_STREQ(e.msg, msg);
	weft_json_error_clear(&e);
	CHECK(e.msg == NULL);
}

static void test_parse_errors(void)
{
	refused("{\"a\":", 5, WEFT_JSON_SYNTAX, 4, 1, 5, "invalid JSON");
	refused("{\n \"a\" 1}", 9, WEFT_JSON_SYNTAX, 7, 2, 6, "invalid JSON");
	refused("", 0, WEFT_JSON_SYNTAX, 0, 1, 1, "invalid JSON");
	refused(NULL, 0, WEFT_JSON_SYNTAX, 0, 1, 1, "invalid JSON");
	refused("{} x", 4, WEFT_JSON_TRAILING, 3, 1, 4, "unexpected text after the JSON value");
	/* A NUL byte does not end the text: len does. */
	refused("{}\0", 3, WEFT_JSON_TRAILING, 2, 1, 3, "unexpected text after the JSON value");
	weft_json_error_clear(NULL);
}

/* cJSON decodes \u0000 (and takes a raw NUL byte) and keeps the string cut
 * at it: "role == 'db'\u0000 && env == 'prod'" would read as "role ==
 * 'db'". Refused wherever the string is, naming its place. */
static void test_parse_nul(void)
{
	static const char raw[] = "[\"a\", \"b\0c\"]";
	static const char sel[] = "{\"selector\":\"role == 'db'\\u0000 && env == 'prod'\"}";

	refused(sel, strlen(sel), WEFT_JSON_NUL, 25, 1, 26, "selector: NUL characters (\\u0000) are not supported");
	refused("\"\\u0000\"", 8, WEFT_JSON_NUL, 1, 1, 2, "NUL characters (\\u0000) are not supported");
	refused(raw, sizeof(raw) - 1, WEFT_JSON_NUL, 8, 1, 9, "[1]: NUL characters (\\u0000) are not supported");
	refused("{\"o\": {\"k\": 1,\n \"k\\u0000\": 2}}", 30, WEFT_JSON_NUL, 18, 2, 4,
		"o: NUL characters (\\u0000) are not supported in field names");
	refused("{\"a\": [{\"b\": \"ok\"}, {\"c d\": \"x\\u00001\"}]}", 41, WEFT_JSON_NUL, 30, 1, 31,
		"a[1][\"c d\"]: NUL characters (\\u0000) are not supported");

	/* Not a NUL: an escaped backslash before "u0000", other escapes and
	 * other control characters. */
	static const char ok[] = "{\"a\": \"x\\\\u0000\", \"b\": \"\\u0001\\u0100\\n\", \"c\\\\u0000\": 1}";
	_cleanup_json_ cJSON *j = NULL;
	const char *s = NULL;

	CHECK_EQ_INT(weft_json_parse(ok, strlen(ok), &j), 0);
	CHECK_EQ_INT(weft_json_get_string(j, "a", &s), 0);
	CHECK_STREQ(s, "x\\u0000");
	CHECK_EQ_INT(weft_json_get_string(j, "b", &s), 0);
	CHECK_STREQ(s, "\x01\xc4\x80\n");
	CHECK(cJSON_GetObjectItemCaseSensitive(j, "c\\u0000") != NULL);
}

static void test_path(void)
{
	struct weft_buf p = {0};
	_cleanup_free_ char *q = NULL, *cut = NULL;

	CHECK_EQ_INT(weft_json_path_key(&p, "spec"), 0);
	CHECK_EQ_INT(weft_json_path_key(&p, "inboundRules"), 4);
	CHECK_EQ_INT(weft_json_path_index(&p, 1), 17);
	weft_json_path_key(&p, "_a-1");
	weft_json_path_key(&p, "cni.dev/x");
	weft_json_path_key(&p, "1a");
	CHECK_STREQ(p.data, "spec.inboundRules[1]._a-1[\"cni.dev/x\"][\"1a\"]");
	weft_buf_free(&p);
	weft_json_path_index(&p, 0);
	weft_json_path_key(&p, "kind");
	CHECK_STREQ(p.data, "[0].kind");
	weft_json_path_index(&p, 10);
	weft_json_path_index(&p, SIZE_MAX);
	CHECK_STREQ(p.data, "[0].kind[10][18446744073709551615]");
	weft_buf_free(&p);

	/* weft_buf_printf() formats in place: into the room left, across a
	 * growth, and text far longer than the buffer. */
	weft_buf_printf(&p, "%s", "");
	CHECK_STREQ(p.data, "");
	for (int i = 0; i < 200; i++)
		weft_buf_printf(&p, "%d,", i % 10);
	CHECK_EQ_INT(p.len, 400);
	CHECK_EQ_INT(memcmp(p.data, "0,1,2,3,4,5,6,7,8,9,0,1", 23), 0);
	CHECK_STREQ(p.data + 396, "8,9,");
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	weft_buf_printf(&p, "<%s>", big);
	CHECK_EQ_INT(p.len, 400 + 5001);
	CHECK_EQ_INT(strlen(p.data), p.len);
	CHECK_STREQ(p.data + p.len - 2, "x>");
	weft_buf_free(&p);

	q = weft_json_quote("a\"b\n", 64);
	CHECK_STREQ(q, "\"a\\\"b\\n\"");
	/* Cut, but not inside the two bytes of "é". */
	cut = weft_json_quote("abc\xc3\xa9z", 4);
	CHECK_STREQ(cut, "\"abc...\"");
}

static void test_getters(void)
{
	_cleanup_json_ cJSON *j = NULL;
	const char *s = "unchanged";
	bool b = false;
	int64_t i = -1;
	cJSON *o = NULL, *a = NULL;

	CHECK_EQ_INT(weft_json_parse(doc, strlen(doc), &j), 0);

	CHECK_EQ_INT(weft_json_get_string(j, "s", &s), 0);
	CHECK_STREQ(s, "text");
	s = "unchanged";
	CHECK_EQ_INT(weft_json_get_string(j, "missing", &s), -ENOENT);
	CHECK_EQ_INT(weft_json_get_string(j, "i", &s), -EINVAL);
	CHECK_EQ_INT(weft_json_get_string(j, "n", &s), -EINVAL);
	CHECK_STREQ(s, "unchanged");
	/* Keys are case-sensitive. */
	CHECK_EQ_INT(weft_json_get_int64(j, "case", &i), -ENOENT);

	CHECK_EQ_INT(weft_json_get_bool(j, "t", &b), 0);
	CHECK(b);
	CHECK_EQ_INT(weft_json_get_bool(j, "f", &b), 0);
	CHECK(!b);
	CHECK_EQ_INT(weft_json_get_bool(j, "s", &b), -EINVAL);
	CHECK_EQ_INT(weft_json_get_bool(j, "nope", &b), -ENOENT);

	CHECK_EQ_INT(weft_json_get_int64(j, "i", &i), 0);
	CHECK_EQ_INT(i, 42);
	CHECK_EQ_INT(weft_json_get_int64(j, "neg", &i), 0);
	CHECK_EQ_INT(i, -7);
	CHECK_EQ_INT(weft_json_get_int64(j, "exp", &i), 0);
	CHECK_EQ_INT(i, 1000);
	CHECK_EQ_INT(weft_json_get_int64(j, "big", &i), 0);
	CHECK_EQ_INT(i, 9007199254740992LL);
	i = 5;
	CHECK_EQ_INT(weft_json_get_int64(j, "frac", &i), -EINVAL);
	CHECK_EQ_INT(weft_json_get_int64(j, "huge", &i), -ERANGE);
	CHECK_EQ_INT(weft_json_get_int64(j, "toobig", &i), -ERANGE);
	CHECK_EQ_INT(weft_json_get_int64(j, "s", &i), -EINVAL);
	CHECK_EQ_INT(weft_json_get_int64(j, "t", &i), -EINVAL);
	CHECK_EQ_INT(weft_json_get_int64(j, "x", &i), -ENOENT);
	CHECK_EQ_INT(i, 5);

	CHECK_EQ_INT(weft_json_get_object(j, "o", &o), 0);
	CHECK_EQ_INT(weft_json_get_int64(o, "k", &i), 0);
	CHECK_EQ_INT(i, 1);
	CHECK_EQ_INT(weft_json_get_object(j, "a", &o), -EINVAL);
	CHECK_EQ_INT(weft_json_get_object(j, "zz", &o), -ENOENT);

	CHECK_EQ_INT(weft_json_get_array(j, "a", &a), 0);
	CHECK_EQ_INT(cJSON_GetArraySize(a), 3);
	CHECK_EQ_INT(weft_json_int64(cJSON_GetArrayItem(a, 2), &i), 0);
	CHECK_EQ_INT(i, 3);
	CHECK_EQ_INT(weft_json_get_array(j, "o", &a), -EINVAL);
	CHECK_EQ_INT(weft_json_get_array(j, "zz", &a), -ENOENT);

	/* Looking a key up in something that is not an object. */
	CHECK_EQ_INT(weft_json_get_int64(a, "k", &i), -EINVAL);
	CHECK_EQ_INT(weft_json_get_string(NULL, "k", &s), -EINVAL);
}

static void test_print(void)
{
	_cleanup_json_ cJSON *j = cJSON_CreateObject();
	_cleanup_free_ char *s = NULL;
	_cleanup_free_ char *n = NULL;

	cJSON_AddStringToObject(j, "name", "pool1");
	cJSON_AddNumberToObject(j, "size", 26);
	cJSON_AddItemToObject(j, "tags", cJSON_CreateArray());
	s = weft_json_print(j);
	CHECK_STREQ(s, "{\"name\":\"pool1\",\"size\":26,\"tags\":[]}");
	n = weft_json_print(NULL);
	CHECK_STREQ(n, "null");
}

static void test_hooks(void)
{
	/* After init, allocations go through wmalloc; objects made before are
	 * still freed correctly. */
	cJSON *before = cJSON_CreateString("x");
	_cleanup_free_ char *s = NULL;

	weft_json_init();
	weft_json_init();
	_cleanup_json_ cJSON *after = cJSON_CreateArray();
	cJSON_AddItemToArray(after, before);
	s = weft_json_print(after);
	CHECK_STREQ(s, "[\"x\"]");
}

TEST_MAIN(TEST(test_parse), TEST(test_parse_errors), TEST(test_parse_nul), TEST(test_path), TEST(test_getters),
	  TEST(test_print), TEST(test_hooks))
