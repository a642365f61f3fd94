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

TEST_MAIN(TEST(test_parse), TEST(test_getters), TEST(test_print), TEST(test_hooks))
