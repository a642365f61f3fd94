/* rule-text.c - the classic calicoctl (v1) rule syntax <-> rule JSON.
 *
 * The parser only knows the syntax: it turns words into a rule object with
 * the values as written (ports and nets as strings, numbers as numbers) and
 * remembers which word gave which field. The model then validates the rule
 * inside a throw-away Profile (or Policy) document, so every limit and
 * every message about a value is the model's own; a model error is mapped
 * back to the word that gave the field it names.
 */
#include "acl/rule-text.h"

#include "model/resource.h"

#include <ctype.h>
#include <limits.h>
#include <strings.h>

/* Where a field of the rule came from: its path inside the rule object
 * ("destination.ports") and the 0-based word. */
struct mark {
	char path[32];
	size_t word;
};

struct parser {
	char *const *w;
	size_t n, i;
	cJSON *rule;
	struct mark marks[32];
	size_t n_marks;
	char *err;
};

/* A word for a message: JSON-style quoted, control bytes escaped, cut
 * after about 40 bytes so a message stays one short line. */
static char *quote_word(const char *s)
{
	struct weft_buf b = {0};
	size_t i;

	weft_buf_append(&b, "\"", 1);
	for (i = 0; s[i] && i < 40; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			weft_buf_printf(&b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			weft_buf_printf(&b, "\\x%02x", c);
		else
			weft_buf_append(&b, &s[i], 1);
	}
	if (s[i])
		weft_buf_append(&b, "...", 3);
	weft_buf_append(&b, "\"", 1);
	return weft_buf_steal(&b);
}

/* Record the first error, about word i (0-based), and return -EINVAL. */
static int PRINTF_LIKE(3, 4) fail_at(struct parser *p, size_t i, const char *fmt, ...)
{
	va_list ap;

	if (p->err)
		return -EINVAL;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = wvasprintf(fmt, ap);
	va_end(ap);
	_cleanup_free_ char *q = quote_word(p->w[i]);
	p->err = wasprintf("word %zu %s: %s", i + 1, q, msg);
	return -EINVAL;
}

static void mark(struct parser *p, const char *path, size_t word)
{
	if (p->n_marks < ARRAY_SIZE(p->marks)) {
		weft_strlcpy(p->marks[p->n_marks].path, path, sizeof(p->marks[0].path));
		p->marks[p->n_marks].word = word;
		p->n_marks++;
	}
}

static bool is_kw(const char *w, const char *kw)
{
	return strcasecmp(w, kw) == 0;
}

/* Look at the word at p->i as a possibly negated keyword: "not X", "! X"
 * or "!X". *kw is the keyword part, *used the words it takes. Returns
 * false at the end of the words. */
static bool peek(const struct parser *p, bool *neg, const char **kw, size_t *used)
{
	const char *w;

	if (p->i >= p->n)
		return false;
	w = p->w[p->i];
	if ((is_kw(w, "not") || streq(w, "!")) && p->i + 1 < p->n) {
		*neg = true;
		*kw = p->w[p->i + 1];
		*used = 2;
	} else if (w[0] == '!' && w[1]) {
		*neg = true;
		*kw = w + 1;
		*used = 1;
	} else {
		*neg = false;
		*kw = w;
		*used = 1;
	}
	return true;
}

/* --- protocols ---------------------------------------------------------- */

static const char *const proto_names[] = {"tcp", "udp", "icmp", "icmpv6", "sctp", "udplite", NULL};

/* Other names people use, given to the model as their numbers (the model
 * knows the six above by name). */
static const struct {
	const char *name;
	int number;
} proto_numbers[] = {
	{"igmp", 2}, {"ipip", 4}, {"gre", 47}, {"esp", 50}, {"ah", 51}, {"ospf", 89}, {"pim", 103}, {"vrrp", 112},
};

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* A protocol word as its JSON value, or NULL when w is not one. */
static cJSON *proto_value(const char *w)
{
	int64_t v = 0;

	for (size_t i = 0; proto_names[i]; i++)
		if (is_kw(w, proto_names[i]))
			return cJSON_CreateString(proto_names[i]);
	for (size_t i = 0; i < ARRAY_SIZE(proto_numbers); i++)
		if (is_kw(w, proto_numbers[i].name))
			return cJSON_CreateNumber(proto_numbers[i].number);
	if (all_digits(w)) {
		/* Out of range numbers go to the model, which says why. */
		if (weft_parse_int64(w, 0, INT_MAX, &v) < 0)
			v = INT_MAX;
		return cJSON_CreateNumber((double)v);
	}
	return NULL;
}

/* --- values ------------------------------------------------------------- */

/* The value word after keyword word p->i - 1, or an error naming the
 * keyword. */
static int take_value(struct parser *p, const char *what, const char **out)
{
	if (p->i >= p->n)
		return fail_at(p, p->i - 1, "missing value (%s)", what);
	*out = p->w[p->i++];
	return 0;
}

/* A comma-separated list as a JSON list of strings (the model reads "80"
 * and "8000:8080" as ports, "10.0.0.1" as a /32). */
static int comma_list(struct parser *p, size_t word, const char *s, const char *what, cJSON **out)
{
	cJSON *l = cJSON_CreateArray();

	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		if (len == 0) {
			cJSON_Delete(l);
			return fail_at(p, word, "empty %s in the list", what);
		}
		_cleanup_free_ char *item = wstrndup(s, len);
		cJSON_AddItemToArray(l, cJSON_CreateString(item));
		if (!comma)
			break;
		s = comma + 1;
	}
	*out = l;
	return 0;
}

static int icmp_number(struct parser *p, const char *what, cJSON *obj, const char *key, const char *path)
{
	const char *v = NULL;
	int64_t n;

	if (take_value(p, what, &v) < 0)
		return -EINVAL;
	if (!all_digits(v))
		return fail_at(p, p->i - 1, "%s is not a number", what);
	if (weft_parse_int64(v, 0, INT_MAX, &n) < 0)
		n = INT_MAX; /* the model reports the range */
	cJSON_AddNumberToObject(obj, key, (double)n);
	mark(p, path, p->i - 1);
	return 0;
}

/* [not] type N [code N] at p->i (the "type" word; used words before it
 * for "not"). */
static int parse_icmp(struct parser *p, bool neg, size_t used)
{
	const char *key = neg ? "notICMP" : "icmp";
	char path[32];
	cJSON *o;

	if (cJSON_GetObjectItemCaseSensitive(p->rule, key))
		return fail_at(p, p->i + used - 1, "%s given twice", neg ? "not type" : "type");
	mark(p, key, p->i + used - 1);
	p->i += used;
	o = cJSON_AddObjectToObject(p->rule, key);
	snprintf(path, sizeof(path), "%s.type", key);
	if (icmp_number(p, "an ICMP type 0..255", o, "type", path) < 0)
		return -EINVAL;
	if (p->i < p->n && is_kw(p->w[p->i], "code")) {
		p->i++;
		snprintf(path, sizeof(path), "%s.code", key);
		if (icmp_number(p, "an ICMP code 0..255", o, "code", path) < 0)
			return -EINVAL;
	}
	return 0;
}

/* --- entities ----------------------------------------------------------- */

enum entity_field { E_PORTS, E_TAG, E_NETS, E_SELECTOR, E_COUNT };

static const struct {
	const char *kw;       /* as formatted */
	const char *key, *not_key;
	const char *what;     /* for "missing value (...)" */
} entity_fields[E_COUNT] = {
	[E_PORTS] = {"ports", "ports", "notPorts", "a port list like 80,443,8000:8080"},
	[E_TAG] = {"tag", "tag", "notTag", "a tag"},
	[E_NETS] = {"cidr", "nets", "notNets", "an address or CIDR, or a list of them"},
	[E_SELECTOR] = {"selector", "selector", "notSelector", "a label selector, quoted"},
};

/* An address-looking word: what a bare CIDR after from/to must be. */
static bool looks_like_net(const char *w)
{
	return (isxdigit((unsigned char)w[0]) || w[0] == ':') && (strchr(w, '.') || strchr(w, ':'));
}

static int entity_kw(const char *kw)
{
	if (is_kw(kw, "ports") || is_kw(kw, "port"))
		return E_PORTS;
	if (is_kw(kw, "tag"))
		return E_TAG;
	if (is_kw(kw, "cidr") || is_kw(kw, "net") || is_kw(kw, "nets"))
		return E_NETS;
	if (is_kw(kw, "selector"))
		return E_SELECTOR;
	return -1;
}

static int entity_expected(struct parser *p, const cJSON *e, bool from_done, bool to_done, size_t at)
{
	struct weft_buf b = {0};
	const char *parts[E_COUNT + 4];
	size_t n = 0;

	for (int f = 0; f < E_COUNT; f++)
		if (!e || !cJSON_GetObjectItemCaseSensitive(e, entity_fields[f].key))
			parts[n++] = entity_fields[f].kw;
	parts[n++] = "not";
	if (!from_done)
		parts[n++] = "from";
	if (!to_done)
		parts[n++] = "to";
	parts[n++] = "end of rule";
	for (size_t i = 0; i < n; i++)
		weft_buf_printf(&b, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", parts[i]);
	_cleanup_free_ char *list = weft_buf_steal(&b);
	return fail_at(p, at, "expected %s", list);
}

/* The words after "from" or "to" (p->i is past it) up to the other one
 * or the end. */
static int parse_entity(struct parser *p, const char *side, bool *from_done, bool *to_done)
{
	cJSON *e = cJSON_CreateObject();
	bool neg;
	const char *kw;
	size_t used;

	/* Seen before its words: "to tag A to tag B" is an error, not two
	 * destinations. */
	if (streq(side, "source"))
		*from_done = true;
	else
		*to_done = true;
	while (peek(p, &neg, &kw, &used)) {
		size_t kw_word = p->i + used - 1;
		int f = entity_kw(kw);
		bool bare = false;
		char path[48];
		const char *key;

		if (!neg && ((is_kw(kw, "from") && !*from_done) || (is_kw(kw, "to") && !*to_done)))
			break;
		if (f < 0 && looks_like_net(kw)) {
			f = E_NETS;
			bare = true;
		}
		if (f < 0) {
			/* "not" followed by something else: name that word. */
			int r = entity_expected(p, e, *from_done, *to_done, kw_word);
			cJSON_Delete(e);
			return r;
		}
		key = neg ? entity_fields[f].not_key : entity_fields[f].key;
		if (cJSON_GetObjectItemCaseSensitive(e, key)) {
			cJSON_Delete(e);
			return fail_at(p, kw_word, "%s%s given twice after %s", neg ? "not " : "",
				       entity_fields[f].kw, streq(side, "source") ? "from" : "to");
		}
		if (bare) {
			/* The word itself is the value ("from 10.0.0.0/8"). */
			p->i += used - 1;
		} else {
			p->i += used;
			if (p->i >= p->n) {
				cJSON_Delete(e);
				return fail_at(p, kw_word, "missing value (%s)", entity_fields[f].what);
			}
		}
		/* p->i is at the value word now; a bare "!10.0.0.0/8" is its
		 * own value without the "!". */
		size_t vw = p->i++;
		const char *val = bare ? kw : p->w[vw];
		snprintf(path, sizeof(path), "%s.%s", side, key);
		mark(p, path, vw);
		if (f == E_PORTS || f == E_NETS) {
			cJSON *l = NULL;
			if (comma_list(p, vw, val, f == E_PORTS ? "port" : "address", &l) < 0) {
				cJSON_Delete(e);
				return -EINVAL;
			}
			cJSON_AddItemToObject(e, key, l);
		} else {
			cJSON_AddStringToObject(e, key, val);
		}
	}
	/* An empty "from" or "to" is no condition at all. */
	if (e->child)
		cJSON_AddItemToObject(p->rule, side, e);
	else
		cJSON_Delete(e);
	return 0;
}

/* --- the rule ------------------------------------------------------------ */

static int head_expected(struct parser *p, size_t at)
{
	struct weft_buf b = {0};
	const char *parts[8];
	size_t n = 0;
	bool icmp = cJSON_GetObjectItemCaseSensitive(p->rule, "icmp") != NULL;

	if (!cJSON_GetObjectItemCaseSensitive(p->rule, "ipVersion"))
		parts[n++] = "ipv4, ipv6";
	if (!cJSON_GetObjectItemCaseSensitive(p->rule, "protocol"))
		parts[n++] = "a protocol";
	if (!icmp)
		parts[n++] = "type";
	parts[n++] = "not";
	parts[n++] = "from";
	parts[n++] = "to";
	parts[n++] = "end of rule";
	for (size_t i = 0; i < n; i++)
		weft_buf_printf(&b, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", parts[i]);
	_cleanup_free_ char *list = weft_buf_steal(&b);
	return fail_at(p, at, "expected %s", list);
}

static int parse_words(struct parser *p)
{
	static const char *const actions[] = {"allow", "deny", "log", "pass", NULL};
	bool from_done = false, to_done = false, neg;
	const char *kw;
	size_t used;

	for (size_t i = 0; actions[i]; i++)
		if (is_kw(p->w[0], actions[i]))
			cJSON_AddStringToObject(p->rule, "action", actions[i]);
	if (!cJSON_GetObjectItemCaseSensitive(p->rule, "action"))
		return fail_at(p, 0, "expected allow, deny, log or pass");
	mark(p, "action", 0);
	p->i = 1;

	/* The head: ip version, protocols and ICMP matches, any order. */
	while (peek(p, &neg, &kw, &used)) {
		size_t kw_word = p->i + used - 1;
		cJSON *v;

		if (!neg && (is_kw(kw, "from") || is_kw(kw, "to")))
			break;
		if (!neg && (is_kw(kw, "ipv4") || is_kw(kw, "ipv6"))) {
			if (cJSON_GetObjectItemCaseSensitive(p->rule, "ipVersion"))
				return fail_at(p, kw_word, "the IP version is given twice");
			cJSON_AddNumberToObject(p->rule, "ipVersion", is_kw(kw, "ipv4") ? 4 : 6);
			mark(p, "ipVersion", kw_word);
			p->i += used;
			continue;
		}
		if (is_kw(kw, "type")) {
			if (parse_icmp(p, neg, used) < 0)
				return -EINVAL;
			continue;
		}
		v = proto_value(kw);
		if (v) {
			const char *key = neg ? "notProtocol" : "protocol";
			if (cJSON_GetObjectItemCaseSensitive(p->rule, key)) {
				cJSON_Delete(v);
				return fail_at(p, kw_word, "%s given twice", neg ? "not protocol" : "the protocol");
			}
			cJSON_AddItemToObject(p->rule, key, v);
			mark(p, key, kw_word);
			p->i += used;
			continue;
		}
		return head_expected(p, kw_word);
	}

	/* from/to, either order, each once. */
	while (p->i < p->n) {
		const char *w = p->w[p->i];
		bool from = is_kw(w, "from");

		/* The head stops only at from or to, and an entity only at
		 * the one not seen yet, so anything else here is a bug. */
		if ((!from && !is_kw(w, "to")) || (from && from_done) || (!from && to_done))
			return head_expected(p, p->i);
		mark(p, from ? "source" : "destination", p->i);
		p->i++;
		if (parse_entity(p, from ? "source" : "destination", &from_done, &to_done) < 0)
			return -EINVAL;
	}
	return 0;
}

/* Map a model error back to a word. msg is "<label>: <path>: <problem>"
 * where the path starts with prefix (the rule's place in the throw-away
 * document). */
static void model_error(struct parser *p, const char *msg, const char *prefix)
{
	const char *rest = strstr(msg, prefix), *colon;
	size_t best = SIZE_MAX, best_len = 0, path_len;

	if (!rest) {
		p->err = wasprintf("%s", msg);
		return;
	}
	rest += strlen(prefix);
	if (*rest == '.')
		rest++;
	colon = strstr(rest, ": ");
	if (rest[0] == ':' && rest[1] == ' ') {
		/* An error about the whole rule. */
		p->err = wstrdup(rest + 2);
		return;
	}
	path_len = colon ? (size_t)(colon - rest) : strlen(rest);
	for (size_t i = 0; i < p->n_marks; i++) {
		size_t l = strlen(p->marks[i].path);
		if (l <= path_len && l > best_len && strncmp(rest, p->marks[i].path, l) == 0 &&
		    (l == path_len || rest[l] == '.' || rest[l] == '[')) {
			best = p->marks[i].word;
			best_len = l;
		}
	}
	if (best == SIZE_MAX)
		p->err = wstrdup(rest);
	else
		fail_at(p, best, "%s", rest);
}

/* Validate the raw rule with the model, inside a throw-away document, and
 * take the canonical rule out of it. */
static int validate(struct parser *p, unsigned flags, cJSON **out)
{
	bool policy = flags & WEFT_RULE_TEXT_POLICY;
	const char *list = policy ? "ingress" : "inboundRules";
	cJSON *doc = cJSON_CreateObject(), *spec, *l;
	struct weft_resource res = {0};
	_cleanup_free_ char *err = NULL, *prefix = NULL;
	int r;

	cJSON_AddStringToObject(doc, "kind", policy ? "Policy" : "Profile");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(doc, "metadata"), "name", "rule");
	spec = cJSON_AddObjectToObject(doc, "spec");
	if (!policy) {
		cJSON_AddArrayToObject(spec, "tags");
		cJSON_AddArrayToObject(spec, "outboundRules");
	}
	l = cJSON_AddArrayToObject(spec, list);
	cJSON_AddItemToArray(l, cJSON_Duplicate(p->rule, true));
	r = weft_resource_from_json(doc, "rule", &res, &err);
	cJSON_Delete(doc);
	if (r < 0) {
		prefix = wasprintf("spec.%s[0]", list);
		model_error(p, err ? err : "invalid rule", prefix);
		return r;
	}
	l = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(res.doc, "spec"), list);
	*out = cJSON_Duplicate(cJSON_GetArrayItem(l, 0), true);
	weft_resource_clear(&res);
	return *out ? 0 : -EINVAL;
}

int weft_rule_text_parse(char *const *words, size_t n, unsigned flags, cJSON **out, char **errmsg)
{
	struct parser p = {.w = words, .n = n};
	cJSON *rule = NULL;
	int r;

	if (n == 0) {
		if (errmsg)
			*errmsg = wstrdup("empty rule: expected allow, deny, log or pass");
		return -EINVAL;
	}
	p.rule = cJSON_CreateObject();
	r = parse_words(&p);
	if (r == 0)
		r = validate(&p, flags, &rule);
	cJSON_Delete(p.rule);
	if (r < 0) {
		if (errmsg)
			*errmsg = p.err ? TAKE_PTR(p.err) : wstrdup("invalid rule");
		free(p.err);
		return -EINVAL;
	}
	free(p.err);
	*out = rule;
	return 0;
}

int weft_rule_text_parse_line(const char *line, unsigned flags, cJSON **out, char **errmsg)
{
	char **words = NULL;
	size_t n = 0;
	int r;

	r = weft_rule_text_split(line, &words, &n, errmsg);
	if (r < 0)
		return r;
	r = weft_rule_text_parse(words, n, flags, out, errmsg);
	weft_rule_text_words_free(words, n);
	return r;
}

/* --- formatting ---------------------------------------------------------- */

struct words {
	char **v;
	size_t n, cap;
};

static void add(struct words *w, char *s)
{
	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 16;
		w->v = wrealloc(w->v, w->cap * sizeof(*w->v));
	}
	w->v[w->n++] = s;
}

static int number_word(const cJSON *v, char **out)
{
	if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long long)v->valuedouble)
		return -EINVAL;
	*out = wasprintf("%lld", (long long)v->valuedouble);
	return 0;
}

static int proto_word(const cJSON *v, char **out)
{
	if (cJSON_IsString(v) && *v->valuestring) {
		*out = wstrdup(v->valuestring);
		return 0;
	}
	return number_word(v, out);
}

static int icmp_words(struct words *w, const cJSON *o, bool neg)
{
	const cJSON *c;
	char *s;

	cJSON_ArrayForEach(c, o)
		if (!streq(c->string, "type") && !streq(c->string, "code"))
			return -EINVAL;
	if (neg)
		add(w, wstrdup("not"));
	add(w, wstrdup("type"));
	if (number_word(cJSON_GetObjectItemCaseSensitive(o, "type"), &s) < 0)
		return -EINVAL;
	add(w, s);
	c = cJSON_GetObjectItemCaseSensitive(o, "code");
	if (c) {
		add(w, wstrdup("code"));
		if (number_word(c, &s) < 0)
			return -EINVAL;
		add(w, s);
	}
	return 0;
}

/* A list of ports (numbers or "lo:hi") or nets, comma-joined; NULL for an
 * empty list (no condition). */
static int list_word(const cJSON *l, char **out)
{
	struct weft_buf b = {0};
	const cJSON *c;

	if (!cJSON_IsArray(l))
		return -EINVAL;
	cJSON_ArrayForEach(c, l) {
		if (b.len)
			weft_buf_append(&b, ",", 1);
		if (cJSON_IsString(c) && *c->valuestring && !strchr(c->valuestring, ','))
			weft_buf_printf(&b, "%s", c->valuestring);
		else if (cJSON_IsNumber(c) && c->valuedouble == (double)(long long)c->valuedouble)
			weft_buf_printf(&b, "%lld", (long long)c->valuedouble);
		else {
			weft_buf_free(&b);
			return -EINVAL;
		}
	}
	*out = b.len ? weft_buf_steal(&b) : NULL;
	weft_buf_free(&b);
	return 0;
}

static int entity_words(struct words *w, const cJSON *e, const char *kw)
{
	size_t start = w->n;
	const cJSON *c;

	if (!cJSON_IsObject(e))
		return -EINVAL;
	cJSON_ArrayForEach(c, e) {
		bool known = false;
		for (int f = 0; f < E_COUNT; f++)
			known |= streq(c->string, entity_fields[f].key) || streq(c->string, entity_fields[f].not_key);
		if (!known)
			return -EINVAL;
	}
	add(w, wstrdup(kw));
	for (int f = 0; f < E_COUNT; f++) {
		for (int neg = 0; neg < 2; neg++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, neg ? entity_fields[f].not_key :
									     entity_fields[f].key);
			char *s = NULL;

			if (!v)
				continue;
			if (f == E_PORTS || f == E_NETS) {
				if (list_word(v, &s) < 0)
					return -EINVAL;
				if (!s)
					continue;
			} else {
				if (!cJSON_IsString(v))
					return -EINVAL;
				s = wstrdup(v->valuestring);
			}
			if (neg)
				add(w, wstrdup("not"));
			add(w, wstrdup(entity_fields[f].kw));
			add(w, s);
		}
	}
	if (w->n == start + 1) {
		/* Nothing in it: no condition, so no "from"/"to" either. */
		free(w->v[--w->n]);
	}
	return 0;
}

static int rule_words(struct words *w, const cJSON *rule)
{
	static const char *const known[] = {"action", "protocol", "notProtocol", "ipVersion", "icmp",
					    "notICMP", "source", "destination", NULL};
	const cJSON *c, *v;
	char *s;

	if (!cJSON_IsObject(rule))
		return -EINVAL;
	cJSON_ArrayForEach(c, rule) {
		bool ok = false;
		for (size_t i = 0; known[i]; i++)
			ok |= streq(c->string, known[i]);
		if (!ok)
			return -EINVAL;
	}
	v = cJSON_GetObjectItemCaseSensitive(rule, "action");
	if (!cJSON_IsString(v) || !*v->valuestring)
		return -EINVAL;
	add(w, wstrdup(v->valuestring));
	v = cJSON_GetObjectItemCaseSensitive(rule, "ipVersion");
	if (v) {
		if (!cJSON_IsNumber(v) || (v->valuedouble != 4 && v->valuedouble != 6))
			return -EINVAL;
		add(w, wstrdup(v->valuedouble == 4 ? "ipv4" : "ipv6"));
	}
	v = cJSON_GetObjectItemCaseSensitive(rule, "protocol");
	if (v) {
		if (proto_word(v, &s) < 0)
			return -EINVAL;
		add(w, s);
	}
	v = cJSON_GetObjectItemCaseSensitive(rule, "notProtocol");
	if (v) {
		if (proto_word(v, &s) < 0)
			return -EINVAL;
		add(w, wstrdup("not"));
		add(w, s);
	}
	v = cJSON_GetObjectItemCaseSensitive(rule, "icmp");
	if (v && icmp_words(w, v, false) < 0)
		return -EINVAL;
	v = cJSON_GetObjectItemCaseSensitive(rule, "notICMP");
	if (v && icmp_words(w, v, true) < 0)
		return -EINVAL;
	v = cJSON_GetObjectItemCaseSensitive(rule, "source");
	if (v && entity_words(w, v, "from") < 0)
		return -EINVAL;
	v = cJSON_GetObjectItemCaseSensitive(rule, "destination");
	if (v && entity_words(w, v, "to") < 0)
		return -EINVAL;
	return 0;
}

int weft_rule_text_words(const cJSON *rule, char ***words, size_t *n)
{
	struct words w = {0};

	if (rule_words(&w, rule) < 0) {
		weft_rule_text_words_free(w.v, w.n);
		return -EINVAL;
	}
	*words = w.v;
	*n = w.n;
	return 0;
}

static bool plain_char(char c)
{
	return isalnum((unsigned char)c) || strchr(",.:/_-+=@%", c);
}

static void append_quoted(struct weft_buf *b, const char *s)
{
	bool plain = *s != 0;

	for (const char *c = s; *c; c++)
		plain &= plain_char(*c);
	if (plain) {
		weft_buf_printf(b, "%s", s);
	} else if (!strchr(s, '\'')) {
		weft_buf_printf(b, "'%s'", s);
	} else {
		weft_buf_append(b, "\"", 1);
		for (const char *c = s; *c; c++) {
			if (strchr("\"\\$`", *c))
				weft_buf_append(b, "\\", 1);
			weft_buf_append(b, c, 1);
		}
		weft_buf_append(b, "\"", 1);
	}
}

int weft_rule_text_format(const cJSON *rule, char **out)
{
	struct weft_buf b = {0};
	char **words;
	size_t n;

	if (weft_rule_text_words(rule, &words, &n) < 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (i)
			weft_buf_append(&b, " ", 1);
		append_quoted(&b, words[i]);
	}
	weft_rule_text_words_free(words, n);
	*out = weft_buf_steal(&b);
	return 0;
}

/* --- splitting ------------------------------------------------------------ */

int weft_rule_text_split(const char *line, char ***words, size_t *n, char **errmsg)
{
	struct words w = {0};
	const char *s = line;

	for (;;) {
		struct weft_buf b = {0};
		bool word = false;

		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
			s++;
		if (!*s)
			break;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
			word = true;
			if (*s == '\'') {
				const char *end = strchr(s + 1, '\'');
				if (!end)
					goto unterminated;
				weft_buf_append(&b, s + 1, (size_t)(end - s - 1));
				s = end + 1;
			} else if (*s == '"') {
				s++;
				while (*s && *s != '"') {
					if (*s == '\\' && s[1])
						s++;
					weft_buf_append(&b, s, 1);
					s++;
				}
				if (*s != '"')
					goto unterminated;
				s++;
			} else {
				if (*s == '\\' && s[1])
					s++;
				weft_buf_append(&b, s, 1);
				s++;
			}
		}
		if (word)
			add(&w, b.data ? weft_buf_steal(&b) : wstrdup(""));
		continue;
	unterminated:
		weft_buf_free(&b);
		weft_rule_text_words_free(w.v, w.n);
		if (errmsg)
			*errmsg = wstrdup("unterminated quote");
		return -EINVAL;
	}
	*words = w.v;
	*n = w.n;
	return 0;
}

void weft_rule_text_words_free(char **words, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(words[i]);
	free(words);
}
