/* selector.c - basic selector sanity checks (see selector.h). */
#include "model/selector.h"

#include "lib/util.h"

static int fail(char **err, const char *why)
{
	if (err)
		*err = wstrdup(why);
	return -EINVAL;
}

int weft_selector_validate(const char *s, char **err)
{
	const char *p;
	char quote = 0;
	long depth = 0;
	bool blank = true;

	if (!s)
		return fail(err, "is not a valid selector: it is empty");
	if (strlen(s) > WEFT_SELECTOR_MAX)
		return fail(err, "is not a valid selector: longer than 4096 characters");
	for (p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f)
			return fail(err, "contains a control character");
		if (c != ' ' && c != '\t')
			blank = false;
		if (quote) {
			if (c == (unsigned char)quote)
				quote = 0;
			continue;
		}
		if (c == '"' || c == '\'')
			quote = (char)c;
		else if (c == '(')
			depth++;
		else if (c == ')' && --depth < 0)
			return fail(err, "is not a valid selector: unbalanced parentheses");
	}
	if (blank)
		return fail(err, "is not a valid selector: it is empty");
	if (quote)
		return fail(err, "is not a valid selector: unterminated quoted string");
	if (depth)
		return fail(err, "is not a valid selector: unbalanced parentheses");
	return 0;
}
