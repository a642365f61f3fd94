/* fuzz-selector.c - libFuzzer target for the selector parser.
 *
 * Any input (as a C string, cut at the first NUL): weft_selector_parse()
 * must not crash or leak; a failure must come with a one-line message. On
 * success the canonical text must parse back to an equal selector and print
 * the same again (a fixed point), match() must agree between the original
 * and the reparsed selector on a few fixed label sets, is_all() must imply a
 * match everywhere, and every key must be one weft_selector_keys() lists.
 */
#include "model/selector.h"

#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct weft_label set1[] = {{"app", "web"}, {"env", "prod"}, {"k", "v"}};
static const struct weft_label set2[] = {{"", ""}, {"a", ""}, {"a.b/c", "it's"}, {"in", "\"q\""}};
static const struct weft_label set3[] = {{"has", "all"}, {"not", "in"}, {"role", "db"}, {"x", "xx"}};

static const struct weft_labels label_sets[] = {
	{NULL, 0},
	{set1, ARRAY_SIZE(set1)},
	{set2, ARRAY_SIZE(set2)},
	{set3, ARRAY_SIZE(set3)},
};

static void check(bool ok, const char *what, const char *text)
{
	if (!ok) {
		fprintf(stderr, "%s: %s\n", what, text);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = wstrndup((const char *)data, size), *err = NULL, *canon, *again;
	struct weft_selector *s = NULL, *back = NULL;
	const char *const *keys;
	size_t n_keys;

	if (weft_selector_parse(text, &s, &err) < 0) {
		check(err && !strchr(err, '\n'), "error message missing or not one line", err ? err : "(null)");
		free(err);
		err = NULL;
		/* validate() must reject what parse() rejects. */
		check(weft_selector_validate(text, &err) < 0 && err && !strchr(err, '\n'), "validate accepted", text);
		free(err);
		free(text);
		return 0;
	}
	canon = weft_selector_str(s);
	if (weft_selector_parse(canon, &back, &err) < 0) {
		fprintf(stderr, "canonical text does not parse: %s\n", err);
		check(false, "input", text);
	}
	check(weft_selector_equal(s, back), "round trip changed the selector", canon);
	again = weft_selector_str(back);
	check(streq(again, canon), "canonical text is not a fixed point", canon);

	for (size_t i = 0; i < ARRAY_SIZE(label_sets); i++) {
		bool m = weft_selector_match(s, &label_sets[i]);
		check(m == weft_selector_match(back, &label_sets[i]), "reparsed selector matches differently", canon);
		check(m || !weft_selector_is_all(s), "is_all() but no match", canon);
	}
	n_keys = weft_selector_keys(s, &keys);
	for (size_t i = 1; i < n_keys; i++)
		check(strcmp(keys[i - 1], keys[i]) < 0, "keys not sorted and unique", canon);

	free(again);
	free(canon);
	weft_selector_free(back);
	weft_selector_free(s);
	free(text);
	return 0;
}
