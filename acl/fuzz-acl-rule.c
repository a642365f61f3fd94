/* fuzz-acl-rule.c - libFuzzer target for the classic rule syntax.
 *
 * The input is a list of words separated by newlines (argv as a shell
 * would hand it over; NUL bytes end a word too). Each is parsed as a
 * profile rule and as a policy rule: a failure must come with a one-line
 * message; a success must format (as words and as a line), and both must
 * parse back to an equal rule (parse(format(r)) == r).
 */
#include "acl/rule-text.h"

#include "lib/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "%s\n", what);
		abort();
	}
}

static void one(char *const *words, size_t n, unsigned flags)
{
	cJSON *rule = NULL, *again = NULL, *again2 = NULL;
	char *err = NULL, **fw = NULL, *line = NULL;
	size_t fn = 0;

	if (weft_rule_text_parse(words, n, flags, &rule, &err) < 0) {
		check(err && *err && !strchr(err, '\n'), "error without a one-line message");
		free(err);
		return;
	}
	check(err == NULL, "error message on success");
	check(weft_rule_text_words(rule, &fw, &fn) == 0, "a parsed rule does not format");
	if (weft_rule_text_parse(fw, fn, flags, &again, &err) < 0) {
		fprintf(stderr, "reparse of formatted words failed: %s\n", err);
		abort();
	}
	check(cJSON_Compare(rule, again, true), "parse(format(r)) != r (words)");
	check(weft_rule_text_format(rule, &line) == 0, "a parsed rule does not format as a line");
	check(!strchr(line, '\n'), "formatted line has a newline");
	if (weft_rule_text_parse_line(line, flags, &again2, &err) < 0) {
		fprintf(stderr, "reparse of \"%s\" failed: %s\n", line, err);
		abort();
	}
	check(cJSON_Compare(rule, again2, true), "parse(format(r)) != r (line)");
	weft_rule_text_words_free(fw, fn);
	free(line);
	cJSON_Delete(rule);
	cJSON_Delete(again);
	cJSON_Delete(again2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char **words = NULL;
	size_t n = 0, start = 0;

	weft_json_init();
	if (size > 4096)
		return 0;
	for (size_t i = 0; i <= size; i++) {
		if (i == size || data[i] == '\n' || data[i] == 0) {
			if (i == size && start == size && n > 0)
				break;
			words = wrealloc(words, (n + 1) * sizeof(*words));
			words[n++] = wstrndup((const char *)data + start, i - start);
			start = i + 1;
		}
	}
	one(words, n, 0);
	one(words, n, WEFT_RULE_TEXT_POLICY);
	weft_rule_text_words_free(words, n);
	return 0;
}
