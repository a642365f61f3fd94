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

void weft_json_error_clear(struct weft_json_error *err)
{
	if (!err)
		return;
	free(err->msg);
	err->msg = NULL;
}

/* The first NUL character of a JSON string (a value or an object key) in
 * text, which must be valid JSON: a \u0000 escape or a raw NUL byte.
 * Returns the NUL's offset in text (of the escape's backslash) and sets
 * *index to the string's number in document order (0 = the first string,
 * keys counted), or returns -1 when there is none. */
static ssize_t find_nul(const char *text, size_t len, size_t *index)
{
	size_t n = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		if (!in_string) {
			in_string = text[i] == '"';
			continue;
		}
		if (text[i] == '"') {
			in_string = false;
			n++;
		} else if (text[i] == 0) {
			*index = n;
			return (ssize_t)i;
		} else if (text[i] == '\\' && i + 1 < len) {
			/* Every escape is skipped whole: the "u0000" of "\\u0000"
			 * follows an escaped backslash and is plain text. */
			if (text[i + 1] == 'u' && i + 6 <= len && memcmp(text + i + 2, "0000", 4) == 0) {
				*index = n;
				return (ssize_t)i;
			}
			i++;
		}
	}
	return -1;
}

/* Append to path the place of string number index (counted as find_nul()
 * counts: keys and string values, in document order) in v; *seen counts
 * the strings passed so far. Returns true when found, with *is_key telling
 * a key (the path is then its object's) from a value; else false with the
 * path unchanged. */
static bool string_path(struct weft_buf *path, const cJSON *v, size_t index, size_t *seen, bool *is_key)
{
	const cJSON *c;
	size_t i = 0;

	if (cJSON_IsString(v)) {
		*is_key = false;
		return (*seen)++ == index;
	}
	if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
		return false;
	cJSON_ArrayForEach(c, v) {
		size_t old;
		if (cJSON_IsObject(v)) {
			if ((*seen)++ == index) {
				*is_key = true;
				return true;
			}
			old = weft_json_path_key(path, c->string);
		} else {
			old = weft_json_path_index(path, i++);
		}
		if (string_path(path, c, index, seen, is_key))
			return true;
		path->len = old;
		path->data[old] = 0;
	}
	return false;
}

/* Fill err for a fault at offset pos of text; msg is taken over. */
static int fail(struct weft_json_error *err, enum weft_json_fault fault, const char *text, size_t pos, char *msg)
{
	size_t line = 1, col = 1;

	if (!err) {
		free(msg);
		return -EINVAL;
	}
	for (size_t i = 0; i < pos; i++) {
		if (text[i] == '\n')
			line++, col = 1;
		else
			col++;
	}
	*err = (struct weft_json_error){.fault = fault, .offset = pos, .line = line, .column = col, .msg = msg};
	return -EINVAL;
}

int weft_json_parse_err(const char *text, size_t len, cJSON **out, struct weft_json_error *err)
{
	const char *end = NULL;
	size_t index = 0, seen = 0, pos;
	struct weft_buf path = {0};
	bool is_key = false;
	ssize_t nul;
	cJSON *j;

	if (!text)
		return fail(err, WEFT_JSON_SYNTAX, "", 0, wstrdup("invalid JSON"));
	j = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!j) {
		pos = end && end >= text && (size_t)(end - text) <= len ? (size_t)(end - text) : 0;
		return fail(err, WEFT_JSON_SYNTAX, text, pos, wstrdup("invalid JSON"));
	}
	/* Only white space may follow the value; a NUL byte is no end. */
	pos = end && end >= text && (size_t)(end - text) <= len ? (size_t)(end - text) : len;
	while (pos < len && text[pos] && strchr(" \t\r\n", text[pos]))
		pos++;
	if (pos < len) {
		cJSON_Delete(j);
		return fail(err, WEFT_JSON_TRAILING, text, pos, wstrdup("unexpected text after the JSON value"));
	}
	nul = find_nul(text, len, &index);
	if (nul >= 0) {
		weft_buf_append(&path, "", 0);
		string_path(&path, j, index, &seen, &is_key);
		cJSON_Delete(j);
		fail(err, WEFT_JSON_NUL, text, (size_t)nul,
		     wasprintf("%s%sNUL characters (\\u0000) are not supported%s", path.data, path.len ? ": " : "",
			       is_key ? " in field names" : ""));
		weft_buf_free(&path);
		return -EINVAL;
	}
	*out = j;
	return 0;
}

int weft_json_parse(const char *text, size_t len, cJSON **out)
{
	return weft_json_parse_err(text, len, out, NULL);
}

static bool plain_key(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
		    *s != '_' && *s != '-')
			return false;
	return true;
}

size_t weft_json_path_key(struct weft_buf *path, const char *key)
{
	size_t old = path->len;

	/* Called for every value a schema walk visits (the path is kept for
	 * an error that may never come), so the common case appends in place
	 * without formatting or allocating. */
	if (plain_key(key)) {
		if (old)
			weft_buf_append(path, ".", 1);
		weft_buf_append(path, key, strlen(key));
	} else {
		_cleanup_free_ char *q = weft_json_quote(key, 64);
		weft_buf_printf(path, "[%s]", q);
	}
	return old;
}

size_t weft_json_path_index(struct weft_buf *path, size_t i)
{
	size_t old = path->len;
	char d[24], *p = d + sizeof(d);

	*--p = ']';
	do
		*--p = (char)('0' + i % 10);
	while (i /= 10);
	*--p = '[';
	weft_buf_append(path, p, (size_t)(d + sizeof(d) - p));
	return old;
}

char *weft_json_quote(const char *s, size_t max)
{
	size_t l = strlen(s);
	_cleanup_free_ char *cut = NULL;
	cJSON *tmp;
	char *q;

	if (l > max) {
		/* Do not cut a UTF-8 sequence in half. */
		while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
			max--;
		cut = wasprintf("%.*s...", (int)max, s);
		s = cut;
	}
	tmp = cJSON_CreateString(s);
	q = tmp ? cJSON_PrintUnformatted(tmp) : NULL;
	cJSON_Delete(tmp);
	if (!q)
		return wstrdup("\"?\"");
	return q;
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
