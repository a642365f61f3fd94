/* json.c - helpers over cJSON; conventions in json.h. */
#include "lib/json.h"

#include <math.h>

static void json_oom(void)
{
	fprintf(stderr, "weft: out of memory in cJSON\n");
	abort();
}

void weft_json_init(void)
{
	/* cJSON copies the hooks; free() stays compatible with objects that
	 * were allocated by plain malloc before this call. */
	cJSON_Hooks hooks = {.malloc_fn = wmalloc, .free_fn = free};
	cJSON_InitHooks(&hooks);
}

int weft_json_parse(const char *text, size_t len, cJSON **out)
{
	const char *end = NULL;
	cJSON *j;

	if (!text)
		return -EINVAL;
	j = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!j)
		return -EINVAL;
	/* Only white space may follow the value. */
	while (end && (size_t)(end - text) < len && strchr(" \t\r\n", *end) && *end)
		end++;
	if (end && (size_t)(end - text) < len && *end) {
		cJSON_Delete(j);
		return -EINVAL;
	}
	*out = j;
	return 0;
}

static int lookup(const cJSON *obj, const char *key, cJSON **out)
{
	cJSON *item;

	if (!cJSON_IsObject(obj) || !key)
		return -EINVAL;
	item = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!item)
		return -ENOENT;
	*out = item;
	return 0;
}

int weft_json_get_string(const cJSON *obj, const char *key, const char **out)
{
	cJSON *item;
	int r = lookup(obj, key, &item);

	if (r < 0)
		return r;
	if (!cJSON_IsString(item) || !item->valuestring)
		return -EINVAL;
	*out = item->valuestring;
	return 0;
}

int weft_json_get_bool(const cJSON *obj, const char *key, bool *out)
{
	cJSON *item;
	int r = lookup(obj, key, &item);

	if (r < 0)
		return r;
	if (!cJSON_IsBool(item))
		return -EINVAL;
	*out = cJSON_IsTrue(item);
	return 0;
}

/* 2^53: above it not every integer has a double. */
#define JSON_INT_MAX 9007199254740992.0

int weft_json_int64(const cJSON *item, int64_t *out)
{
	double v;

	if (!cJSON_IsNumber(item))
		return -EINVAL;
	v = item->valuedouble;
	if (!isfinite(v))
		return -EINVAL;
	/* Every double this large is integral already. */
	if (v > JSON_INT_MAX || v < -JSON_INT_MAX)
		return -ERANGE;
	if ((double)(int64_t)v != v)
		return -EINVAL;
	*out = (int64_t)v;
	return 0;
}

int weft_json_get_int64(const cJSON *obj, const char *key, int64_t *out)
{
	cJSON *item;
	int r = lookup(obj, key, &item);

	if (r < 0)
		return r;
	return weft_json_int64(item, out);
}

int weft_json_get_object(const cJSON *obj, const char *key, cJSON **out)
{
	cJSON *item;
	int r = lookup(obj, key, &item);

	if (r < 0)
		return r;
	if (!cJSON_IsObject(item))
		return -EINVAL;
	*out = item;
	return 0;
}

int weft_json_get_array(const cJSON *obj, const char *key, cJSON **out)
{
	cJSON *item;
	int r = lookup(obj, key, &item);

	if (r < 0)
		return r;
	if (!cJSON_IsArray(item))
		return -EINVAL;
	*out = item;
	return 0;
}

char *weft_json_print(const cJSON *item)
{
	char *s = cJSON_PrintUnformatted(item);

	/* cJSON returns NULL for a NULL item or on allocation failure. */
	if (!s) {
		if (!item)
			return wstrdup("null");
		json_oom();
	}
	return s;
}

void weft_json_freep(cJSON **p)
{
	if (*p)
		cJSON_Delete(*p);
}
