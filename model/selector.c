/* selector.c - Calico-compatible label selectors (see selector.h).
 *
 * A hand-written recursive-descent parser reads the text straight into an
 * AST; there is no separate token list because which words are keywords
 * depends on where the parser is (a label may be called "in" or "has").
 * The AST is normalised while it is built (&& and || chains flattened,
 * double negation dropped, sets sorted and deduplicated) so that structural
 * equality, the canonical text and parse(str(s)) agree.
 */
#include "model/selector.h"

#include "lib/util.h"

enum sel_op {
	SEL_ALL,
	SEL_HAS,
	SEL_EQ,
	SEL_NE,
	SEL_IN,
	SEL_NOT_IN,
	SEL_CONTAINS,
	SEL_STARTS,
	SEL_ENDS,
	SEL_NOT,
	SEL_AND,
	SEL_OR,
};

struct sel_node {
	enum sel_op op;
	char *key;		/* every leaf but all() */
	char **values;		/* ==, != and the string tests: one; in, not in: the sorted set */
	size_t n_values;
	struct sel_node **kids;	/* !: one; &&, ||: two or more */
	size_t n_kids;
};

struct weft_selector {
	struct sel_node *root;
	char **keys;		/* sorted, unique */
	size_t n_keys;
	char *text;		/* the canonical text */
};

struct parser {
	const char *text;
	size_t len, pos;
	int depth;
	char *err;		/* "at N: ...", the first error only */
	char **keys;
	size_t n_keys;
};

#define EXPECT_OPERAND "expected a label key, all(), has(key), ! or ("
#define EXPECT_OPERATOR "expected ==, !=, in, not in, contains, starts with or ends with"

static void node_free(struct sel_node *n)
{
	if (!n)
		return;
	free(n->key);
	for (size_t i = 0; i < n->n_values; i++)
		free(n->values[i]);
	free(n->values);
	for (size_t i = 0; i < n->n_kids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n);
}

static struct sel_node *node_new(enum sel_op op)
{
	struct sel_node *n = wcalloc(1, sizeof(*n));

	n->op = op;
	return n;
}

/* Record an error at byte offset at (reported 1-based); returns NULL so
 * callers can "return fail(...)". Only the first error is kept: it is the
 * one nearest to the cause. */
static struct sel_node *fail(struct parser *p, size_t at, const char *msg)
{
	if (!p->err)
		p->err = wasprintf("at %zu: %s", at + 1, msg);
	return NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
	       c == '/' || c == '-';
}

static void skip_space(struct parser *p)
{
	while (p->pos < p->len && is_space(p->text[p->pos]))
		p->pos++;
}

static char peek(const struct parser *p)
{
	return p->pos < p->len ? p->text[p->pos] : '\0';
}

/* Length of the run of label key characters at p->pos. */
static size_t word_len(const struct parser *p)
{
	size_t n = 0;

	while (p->pos + n < p->len && is_key_char(p->text[p->pos + n]))
		n++;
	return n;
}

/* Is the word at p->pos exactly w? If so, step over it. */
static bool take_word(struct parser *p, const char *w)
{
	size_t n = word_len(p);

	if (n != strlen(w) || memcmp(p->text + p->pos, w, n) != 0)
		return false;
	p->pos += n;
	return true;
}

static bool take(struct parser *p, const char *s)
{
	size_t n = strlen(s);

	if (p->len - p->pos < n || memcmp(p->text + p->pos, s, n) != 0)
		return false;
	p->pos += n;
	return true;
}

/* Remember a key for weft_selector_keys(). */
static void push_key(struct parser *p, const char *key, size_t n)
{
	p->keys = wrealloc(p->keys, (p->n_keys + 1) * sizeof(*p->keys));
	p->keys[p->n_keys++] = wstrndup(key, n);
}

/* A label key at p->pos (after white space), or NULL with the error set. */
static char *parse_key(struct parser *p)
{
	size_t n;

	skip_space(p);
	n = word_len(p);
	if (n == 0) {
		fail(p, p->pos, "expected a label key");
		return NULL;
	}
	p->pos += n;
	push_key(p, p->text + p->pos - n, n);
	return wstrndup(p->text + p->pos - n, n);
}

/* A quoted string at p->pos (after white space), or NULL with the error set.
 * There are no escapes: a string simply cannot contain its own quote. */
static char *parse_string(struct parser *p, const char *expected)
{
	size_t start, i;
	char q;

	skip_space(p);
	q = peek(p);
	if (q != '\'' && q != '"') {
		fail(p, p->pos, expected);
		return NULL;
	}
	start = p->pos;
	for (i = start + 1; i < p->len && p->text[i] != q; i++) {
		unsigned char c = (unsigned char)p->text[i];
		if (c < 0x20 || c == 0x7f) {
			fail(p, i, "control character in quoted string");
			return NULL;
		}
	}
	if (i >= p->len) {
		fail(p, start, "unterminated quoted string");
		return NULL;
	}
	p->pos = i + 1;
	return wstrndup(p->text + start + 1, i - start - 1);
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort v and drop duplicates (freeing them); returns the new count. */
static size_t sort_unique(char **v, size_t n)
{
	size_t out = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_strp);
	for (size_t i = 1; i < n; i++) {
		if (streq(v[i], v[out]))
			free(v[i]);
		else
			v[++out] = v[i];
	}
	return out + 1;
}

/* "{" [ string { "," string } [ "," ] ] "}" into n->values. */
static bool parse_set(struct parser *p, struct sel_node *n)
{
	skip_space(p);
	if (peek(p) != '{')
		return fail(p, p->pos, "expected {"), false;
	p->pos++;
	for (;;) {
		char *v;

		skip_space(p);
		if (peek(p) == '}')
			break;
		v = parse_string(p, "expected a quoted string or }");
		if (!v)
			return false;
		n->values = wrealloc(n->values, (n->n_values + 1) * sizeof(*n->values));
		n->values[n->n_values++] = v;
		skip_space(p);
		if (peek(p) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p) != '}')
			return fail(p, p->pos, "expected , or }"), false;
	}
	p->pos++;
	n->n_values = sort_unique(n->values, n->n_values);
	return true;
}

/* What follows "key": an operator and its operand. */
static struct sel_node *parse_comparison(struct parser *p, char *key)
{
	struct sel_node *n = NULL;
	enum sel_op op;
	size_t at;

	if (!key)
		return NULL;
	skip_space(p);
	at = p->pos;
	if (take(p, "=="))
		op = SEL_EQ;
	else if (take(p, "!="))
		op = SEL_NE;
	else if (take_word(p, "in"))
		op = SEL_IN;
	else if (take_word(p, "contains"))
		op = SEL_CONTAINS;
	else if (take_word(p, "not")) {
		op = SEL_NOT_IN;
		skip_space(p);
		if (!take_word(p, "in"))
			goto expected_with;
	} else if (take_word(p, "starts") || take_word(p, "ends")) {
		op = p->text[at] == 's' ? SEL_STARTS : SEL_ENDS;
		skip_space(p);
		if (!take_word(p, "with"))
			goto expected_with;
	} else {
		free(key);
		return fail(p, at, EXPECT_OPERATOR);
	}

	n = node_new(op);
	n->key = key;
	if (op == SEL_IN || op == SEL_NOT_IN) {
		if (!parse_set(p, n))
			goto fail;
	} else {
		char *v = parse_string(p, "expected a quoted string");
		if (!v)
			goto fail;
		n->values = wmalloc(sizeof(*n->values));
		n->values[0] = v;
		n->n_values = 1;
	}
	return n;

expected_with:
	free(key);
	return fail(p, p->pos, op == SEL_NOT_IN ? "expected in after not" :
			       op == SEL_STARTS ? "expected with after starts" : "expected with after ends");
fail:
	node_free(n);
	return NULL;
}

static struct sel_node *parse_or(struct parser *p);
static char *print_canonical(const struct sel_node *n);

/* The word at p->pos (of length n) followed by "(": a function call? */
static bool is_call(const struct parser *p, size_t n)
{
	size_t i = p->pos + n;

	while (i < p->len && is_space(p->text[i]))
		i++;
	return i < p->len && p->text[i] == '(';
}

static struct sel_node *parse_primary(struct parser *p)
{
	size_t start, n;

	skip_space(p);
	start = p->pos;
	if (peek(p) == '(') {
		struct sel_node *e;

		if (++p->depth > WEFT_SELECTOR_MAX_DEPTH)
			return fail(p, start, "nested deeper than 64 levels");
		p->pos++;
		e = parse_or(p);
		if (!e)
			return NULL;
		skip_space(p);
		if (peek(p) != ')') {
			node_free(e);
			return fail(p, p->pos, "expected &&, || or )");
		}
		p->pos++;
		p->depth--;
		return e;
	}
	n = word_len(p);
	if (n == 0)
		return fail(p, start, EXPECT_OPERAND);
	if (is_call(p, n)) {
		if (take_word(p, "all")) {
			skip_space(p);
			p->pos++; /* the '(' seen by is_call() */
			skip_space(p);
			if (peek(p) != ')')
				return fail(p, p->pos, "expected )");
			p->pos++;
			return node_new(SEL_ALL);
		}
		if (take_word(p, "has")) {
			struct sel_node *h;
			char *key;

			skip_space(p);
			p->pos++;
			key = parse_key(p);
			if (!key)
				return NULL;
			skip_space(p);
			if (peek(p) != ')') {
				free(key);
				return fail(p, p->pos, "expected )");
			}
			p->pos++;
			h = node_new(SEL_HAS);
			h->key = key;
			return h;
		}
		if (take_word(p, "global"))
			return fail(p, start, "global() is not supported: weft has no namespaces");
		/* Any other word before "(" is a key without an operator. */
	}
	return parse_comparison(p, parse_key(p));
}

/* { "!" } primary; an even number of negations cancels out. */
static struct sel_node *parse_unary(struct parser *p)
{
	struct sel_node *e, *n;
	bool negate = false;

	for (;;) {
		skip_space(p);
		if (peek(p) != '!')
			break;
		p->pos++;
		negate = !negate;
	}
	e = parse_primary(p);
	if (!e || !negate)
		return e;
	if (e->op == SEL_NOT) {
		/* !(!x) is x. */
		n = e->kids[0];
		e->n_kids = 0;
		node_free(e);
		return n;
	}
	n = node_new(SEL_NOT);
	n->kids = wmalloc(sizeof(*n->kids));
	n->kids[0] = e;
	n->n_kids = 1;
	return n;
}

/* Append e to the chain n of operator op, splicing in e's operands when e
 * is itself such a chain (from parentheses), so chains stay flat. */
static void chain_add(struct sel_node *n, struct sel_node *e)
{
	size_t add = e->op == n->op ? e->n_kids : 1;

	n->kids = wrealloc(n->kids, (n->n_kids + add) * sizeof(*n->kids));
	if (e->op == n->op) {
		memcpy(n->kids + n->n_kids, e->kids, e->n_kids * sizeof(*e->kids));
		n->n_kids += e->n_kids;
		e->n_kids = 0;
		node_free(e);
	} else {
		n->kids[n->n_kids++] = e;
	}
}

/* operand { sep operand }, as one chain node of op when there are two or more. */
static struct sel_node *parse_chain(struct parser *p, const char *sep, enum sel_op op,
				    struct sel_node *(*operand)(struct parser *))
{
	struct sel_node *first = operand(p), *n = NULL;

	if (!first)
		return NULL;
	for (;;) {
		struct sel_node *e;

		skip_space(p);
		if (!take(p, sep))
			break;
		if (!n) {
			n = node_new(op);
			chain_add(n, first);
		}
		e = operand(p);
		if (!e) {
			node_free(n);
			return NULL;
		}
		chain_add(n, e);
	}
	return n ? n : first;
}

static struct sel_node *parse_and(struct parser *p)
{
	return parse_chain(p, "&&", SEL_AND, parse_unary);
}

static struct sel_node *parse_or(struct parser *p)
{
	return parse_chain(p, "||", SEL_OR, parse_and);
}

/* Parse text; on failure return NULL with *bare set to "at N: ..." (or the
 * length complaint). The caller adds context. */
static struct weft_selector *parse_text(const char *text, char **bare)
{
	struct parser p = {.text = text ? text : ""};
	struct weft_selector *s;
	struct sel_node *root;

	p.len = strlen(p.text);
	if (p.len > WEFT_SELECTOR_MAX) {
		*bare = wstrdup("longer than 4096 bytes");
		return NULL;
	}
	/* Control characters other than white space are never valid; catching
	 * them first gives one clear message wherever they are. */
	for (size_t i = 0; i < p.len; i++) {
		unsigned char c = (unsigned char)p.text[i];
		if ((c < 0x20 && !is_space((char)c)) || c == 0x7f) {
			fail(&p, i, "control character");
			*bare = p.err;
			return NULL;
		}
	}

	skip_space(&p);
	if (p.pos == p.len) {
		root = node_new(SEL_ALL);
	} else {
		root = parse_or(&p);
		skip_space(&p);
		if (root && p.pos < p.len) {
			node_free(root);
			root = fail(&p, p.pos, peek(&p) == ')' ? "unmatched )" : "expected &&, || or end of selector");
		}
	}
	if (!root) {
		for (size_t i = 0; i < p.n_keys; i++)
			free(p.keys[i]);
		free(p.keys);
		*bare = p.err;
		return NULL;
	}
	s = wcalloc(1, sizeof(*s));
	s->root = root;
	s->keys = p.keys;
	s->n_keys = sort_unique(p.keys, p.n_keys);
	s->text = print_canonical(root);
	/* The canonical text adds spaces and parentheses, so it can be longer
	 * than the input; holding it to the same limit keeps str() parseable. */
	if (strlen(s->text) > WEFT_SELECTOR_MAX) {
		weft_selector_free(s);
		*bare = wstrdup("longer than 4096 bytes in canonical form");
		return NULL;
	}
	return s;
}

/* Append text to b for an error message: one line, control bytes escaped. */
static void quote_for_message(struct weft_buf *b, const char *text)
{
	size_t len = strlen(text), shown = len > 64 ? 64 : len;

	weft_buf_append(b, "\"", 1);
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\n')
			weft_buf_append(b, "\\n", 2);
		else if (c == '\t')
			weft_buf_append(b, "\\t", 2);
		else if (c < 0x20 || c == 0x7f)
			weft_buf_printf(b, "\\x%02x", c);
		else
			weft_buf_append(b, text + i, 1);
	}
	if (shown < len)
		weft_buf_append(b, "...", 3);
	weft_buf_append(b, "\"", 1);
}

int weft_selector_parse(const char *text, struct weft_selector **out, char **err)
{
	char *bare = NULL;
	struct weft_selector *s = parse_text(text, &bare);

	if (!s) {
		if (err) {
			struct weft_buf b = {0};

			weft_buf_append(&b, "selector ", 9);
			quote_for_message(&b, text ? text : "");
			weft_buf_printf(&b, ": %s", bare);
			*err = weft_buf_steal(&b);
		}
		free(bare);
		return -EINVAL;
	}
	*out = s;
	return 0;
}

void weft_selector_free(struct weft_selector *s)
{
	if (!s)
		return;
	node_free(s->root);
	free(s->text);
	for (size_t i = 0; i < s->n_keys; i++)
		free(s->keys[i]);
	free(s->keys);
	free(s);
}

static int validate_fail(char **err, const char *why)
{
	if (err)
		*err = wstrdup(why);
	return -EINVAL;
}

int weft_selector_validate(const char *s, char **err)
{
	struct weft_selector *sel;
	const char *p;
	char quote = 0, *bare = NULL;
	long depth = 0;
	bool blank = true;

	/* A quick pass first, for the common mistakes, with the plain messages
	 * manifests have always given (they need no position to be clear). */
	if (!s)
		return validate_fail(err, "is not a valid selector: it is empty");
	if (strlen(s) > WEFT_SELECTOR_MAX)
		return validate_fail(err, "is not a valid selector: longer than 4096 characters");
	for (p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c < 0x20 && (quote || !is_space((char)c))) || c == 0x7f)
			return validate_fail(err, "contains a control character");
		if (!is_space((char)c))
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
			return validate_fail(err, "is not a valid selector: unbalanced parentheses");
	}
	/* The parser reads "" as all(), like Calico; a manifest must say so. */
	if (blank)
		return validate_fail(err, "is not a valid selector: it is empty");
	if (quote)
		return validate_fail(err, "is not a valid selector: unterminated quoted string");
	if (depth)
		return validate_fail(err, "is not a valid selector: unbalanced parentheses");

	sel = parse_text(s, &bare);
	if (!sel) {
		if (err)
			*err = wasprintf("is not a valid selector: %s", bare);
		free(bare);
		return -EINVAL;
	}
	weft_selector_free(sel);
	return 0;
}

static const char *label_get(const struct weft_labels *labels, const char *key)
{
	size_t lo = 0, hi = labels ? labels->n : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, labels->v[mid].key);

		if (c == 0)
			return labels->v[mid].value ? labels->v[mid].value : "";
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static bool in_set(const struct sel_node *n, const char *v)
{
	return n->n_values && bsearch(&v, n->values, n->n_values, sizeof(*n->values), cmp_strp) != NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

static bool node_match(const struct sel_node *n, const struct weft_labels *labels)
{
	const char *v = n->key ? label_get(labels, n->key) : NULL;

	switch (n->op) {
	case SEL_ALL:
		return true;
	case SEL_HAS:
		return v != NULL;
	case SEL_EQ:
		return v && streq(v, n->values[0]);
	case SEL_NE:
		return !v || !streq(v, n->values[0]);
	case SEL_IN:
		return v && in_set(n, v);
	case SEL_NOT_IN:
		return !v || !in_set(n, v);
	case SEL_CONTAINS:
		return v && strstr(v, n->values[0]) != NULL;
	case SEL_STARTS:
		return v && startswith(v, n->values[0]);
	case SEL_ENDS:
		return v && ends_with(v, n->values[0]);
	case SEL_NOT:
		return !node_match(n->kids[0], labels);
	case SEL_AND:
		for (size_t i = 0; i < n->n_kids; i++)
			if (!node_match(n->kids[i], labels))
				return false;
		return true;
	case SEL_OR:
		for (size_t i = 0; i < n->n_kids; i++)
			if (node_match(n->kids[i], labels))
				return true;
		return false;
	}
	return false;
}

bool weft_selector_match(const struct weft_selector *s, const struct weft_labels *labels)
{
	return node_match(s->root, labels);
}

static void print_string(struct weft_buf *b, const char *v)
{
	char q = strchr(v, '\'') ? '"' : '\'';

	weft_buf_printf(b, "%c%s%c", q, v, q);
}

static void print_node(struct weft_buf *b, const struct sel_node *n);

static void print_operand(struct weft_buf *b, const struct sel_node *n, bool parens)
{
	if (parens)
		weft_buf_append(b, "(", 1);
	print_node(b, n);
	if (parens)
		weft_buf_append(b, ")", 1);
}

static void print_node(struct weft_buf *b, const struct sel_node *n)
{
	static const char *const ops[] = {
		[SEL_EQ] = " == ", [SEL_NE] = " != ", [SEL_IN] = " in ", [SEL_NOT_IN] = " not in ",
		[SEL_CONTAINS] = " contains ", [SEL_STARTS] = " starts with ", [SEL_ENDS] = " ends with ",
	};

	switch (n->op) {
	case SEL_ALL:
		weft_buf_printf(b, "all()");
		break;
	case SEL_HAS:
		weft_buf_printf(b, "has(%s)", n->key);
		break;
	case SEL_EQ:
	case SEL_NE:
	case SEL_CONTAINS:
	case SEL_STARTS:
	case SEL_ENDS:
		weft_buf_printf(b, "%s%s", n->key, ops[n->op]);
		print_string(b, n->values[0]);
		break;
	case SEL_IN:
	case SEL_NOT_IN:
		weft_buf_printf(b, "%s%s{", n->key, ops[n->op]);
		for (size_t i = 0; i < n->n_values; i++) {
			if (i)
				weft_buf_append(b, ", ", 2);
			print_string(b, n->values[i]);
		}
		weft_buf_append(b, "}", 1);
		break;
	case SEL_NOT:
		/* "!k == 'v'" would parse the same, but reads as if ! bound to k. */
		weft_buf_append(b, "!", 1);
		print_operand(b, n->kids[0], n->kids[0]->op != SEL_HAS && n->kids[0]->op != SEL_ALL);
		break;
	case SEL_AND:
	case SEL_OR:
		for (size_t i = 0; i < n->n_kids; i++) {
			const struct sel_node *k = n->kids[i];

			if (i)
				weft_buf_append(b, n->op == SEL_AND ? " && " : " || ", 4);
			print_operand(b, k, k->op == SEL_OR || k->op == n->op);
		}
		break;
	}
}

static char *print_canonical(const struct sel_node *n)
{
	struct weft_buf b = {0};

	print_node(&b, n);
	return weft_buf_steal(&b);
}

char *weft_selector_str(const struct weft_selector *s)
{
	return wstrdup(s->text);
}

static bool node_equal(const struct sel_node *a, const struct sel_node *b)
{
	if (a->op != b->op || a->n_values != b->n_values || a->n_kids != b->n_kids)
		return false;
	if ((a->key || b->key) && (!a->key || !b->key || !streq(a->key, b->key)))
		return false;
	for (size_t i = 0; i < a->n_values; i++)
		if (!streq(a->values[i], b->values[i]))
			return false;
	for (size_t i = 0; i < a->n_kids; i++)
		if (!node_equal(a->kids[i], b->kids[i]))
			return false;
	return true;
}

bool weft_selector_equal(const struct weft_selector *a, const struct weft_selector *b)
{
	return node_equal(a->root, b->root);
}

size_t weft_selector_keys(const struct weft_selector *s, const char *const **keys)
{
	*keys = (const char *const *)s->keys;
	return s->n_keys;
}

static bool always(const struct sel_node *n, bool value);

/* Does n evaluate to value whatever the labels? Conservative. */
static bool always(const struct sel_node *n, bool value)
{
	switch (n->op) {
	case SEL_ALL:
		return value;
	case SEL_IN:
		return !value && n->n_values == 0;
	case SEL_NOT_IN:
		return value && n->n_values == 0;
	case SEL_NOT:
		return always(n->kids[0], !value);
	case SEL_AND:
	case SEL_OR:
		/* A && chain is always true when every operand is, always false
		 * when any is; || the other way round. */
		if ((n->op == SEL_AND) == value) {
			for (size_t i = 0; i < n->n_kids; i++)
				if (!always(n->kids[i], value))
					return false;
			return true;
		}
		for (size_t i = 0; i < n->n_kids; i++)
			if (always(n->kids[i], value))
				return true;
		return false;
	default:
		return false;
	}
}

bool weft_selector_is_all(const struct weft_selector *s)
{
	return always(s->root, true);
}

static int cmp_label(const void *a, const void *b)
{
	return strcmp(((const struct weft_label *)a)->key, ((const struct weft_label *)b)->key);
}

void weft_selector_labels_sort(struct weft_label *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_label);
}
