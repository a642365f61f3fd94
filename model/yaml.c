/* yaml.c - libyaml parser events to cJSON, and cJSON to YAML (see yaml.h). */
#include "model/yaml.h"

#include "model/resource.h"
#include "model/schema.h"

#include <math.h>
#include <yaml.h>

/* --- scalar resolution (YAML 1.2 core schema) ------------------------- */

enum scalar_kind { SC_STRING, SC_NULL, SC_TRUE, SC_FALSE, SC_NUMBER, SC_NONFINITE };

static bool all_in(const char *s, const char *set)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr(set, *s))
			return false;
	return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_float(const char *s)
{
	bool digits = false;

	if (*s == '-' || *s == '+')
		s++;
	if (*s == '.') {
		s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
		digits = true;
	} else {
		while (*s >= '0' && *s <= '9')
			s++, digits = true;
		if (!digits)
			return false;
		if (*s == '.') {
			s++;
			while (*s >= '0' && *s <= '9')
				s++;
		}
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == 0;
}

static double radix_value(const char *s, int base)
{
	double v = 0;
	for (; *s; s++) {
		int d = *s >= 'a' ? *s - 'a' + 10 : *s >= 'A' ? *s - 'A' + 10 : *s - '0';
		v = v * base + d;
	}
	return v;
}

static enum scalar_kind resolve(const char *s, double *num)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	static const char *const trues[] = {"true", "True", "TRUE"};
	static const char *const falses[] = {"false", "False", "FALSE"};
	static const char *const nonfinite[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
						"-.Inf", "-.INF", ".nan", ".NaN", ".NAN"};

	for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
		if (streq(s, nulls[i]))
			return SC_NULL;
	for (size_t i = 0; i < ARRAY_SIZE(trues); i++)
		if (streq(s, trues[i]))
			return SC_TRUE;
	for (size_t i = 0; i < ARRAY_SIZE(falses); i++)
		if (streq(s, falses[i]))
			return SC_FALSE;
	for (size_t i = 0; i < ARRAY_SIZE(nonfinite); i++)
		if (streq(s, nonfinite[i]))
			return SC_NONFINITE;
	if (startswith(s, "0o") && all_in(s + 2, "01234567")) {
		*num = radix_value(s + 2, 8);
		return isfinite(*num) ? SC_NUMBER : SC_NONFINITE;
	}
	if (startswith(s, "0x") && all_in(s + 2, "0123456789abcdefABCDEF")) {
		*num = radix_value(s + 2, 16);
		return isfinite(*num) ? SC_NUMBER : SC_NONFINITE;
	}
	if (is_float(s)) {
		*num = strtod(s, NULL);
		return isfinite(*num) ? SC_NUMBER : SC_NONFINITE;
	}
	return SC_STRING;
}

/* --- parsing ------------------------------------------------------------ */

struct frame {
	cJSON *node;
	char *key; /* a mapping's pending key, or NULL */
	yaml_mark_t key_mark;
};

struct yparse {
	yaml_parser_t parser;
	cJSON *docs;
	cJSON *root;
	struct frame stack[WEFT_YAML_MAX_DEPTH];
	size_t depth;
	char *err;
};

static int yfail(struct yparse *p, yaml_mark_t m, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int yfail(struct yparse *p, yaml_mark_t m, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = wvasprintf(fmt, ap);
	va_end(ap);
	if (!p->err)
		p->err = wasprintf("line %zu:%zu: %s", m.line + 1, m.column + 1, msg);
	return -EINVAL;
}

static int parser_error(struct yparse *p)
{
	const yaml_parser_t *y = &p->parser;
	const char *problem = y->problem ? y->problem : "invalid YAML";

	if (y->error == YAML_MEMORY_ERROR) {
		fprintf(stderr, "weft: out of memory parsing YAML\n");
		abort();
	}
	if (y->context)
		return yfail(p, y->problem_mark, "%s (%s at line %zu:%zu)", problem, y->context,
			     y->context_mark.line + 1, y->context_mark.column + 1);
	return yfail(p, y->problem_mark, "%s", problem);
}

/* A tag for a message: libyaml decodes %-escapes, so it may hold anything. */
static int tag_fail(struct yparse *p, yaml_mark_t m, const yaml_char_t *tag, const char *what)
{
	_cleanup_free_ char *q = weft_json_quote((const char *)tag, 64);
	return yfail(p, m, "%s%s", what, q);
}

static bool tag_is(const yaml_char_t *tag, const char *what)
{
	return tag && streq((const char *)tag, what);
}

/* Attach v where the parser is: the document root, a list, or a mapping
 * under its pending key. Takes v. */
static int attach(struct yparse *p, cJSON *v, yaml_mark_t m)
{
	struct frame *f;

	if (p->depth == 0) {
		if (p->root) {
			cJSON_Delete(v);
			return yfail(p, m, "more than one node in a document");
		}
		p->root = v;
		return 0;
	}
	f = &p->stack[p->depth - 1];
	if (cJSON_IsArray(f->node)) {
		cJSON_AddItemToArray(f->node, v);
		return 0;
	}
	if (!f->key) {
		cJSON_Delete(v);
		return yfail(p, m, "mapping keys must be scalars");
	}
	cJSON_AddItemToObject(f->node, f->key, v);
	free(f->key);
	f->key = NULL;
	return 0;
}

static int on_scalar(struct yparse *p, const yaml_event_t *e)
{
	const char *s = (const char *)e->data.scalar.value;
	size_t len = e->data.scalar.length;
	const yaml_char_t *tag = e->data.scalar.tag;
	struct frame *f = p->depth ? &p->stack[p->depth - 1] : NULL;
	bool plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	enum scalar_kind k = SC_STRING;
	double num = 0;
	cJSON *v;

	if (strlen(s) != len)
		return yfail(p, e->start_mark, "NUL characters are not supported");
	if (tag && !tag_is(tag, "!") && !tag_is(tag, YAML_STR_TAG) && !tag_is(tag, YAML_NULL_TAG) &&
	    !tag_is(tag, YAML_BOOL_TAG) && !tag_is(tag, YAML_INT_TAG) && !tag_is(tag, YAML_FLOAT_TAG))
		return tag_fail(p, e->start_mark, tag, "unsupported tag ");

	/* A key of a mapping: kept as text whatever it looks like. */
	if (f && cJSON_IsObject(f->node) && !f->key) {
		const cJSON *c;
		cJSON_ArrayForEach(c, f->node)
			if (streq(c->string, s)) {
				_cleanup_free_ char *q = weft_json_quote(s, 64);
				return yfail(p, e->start_mark, "duplicate key %s", q);
			}
		f->key = wstrdup(s);
		f->key_mark = e->start_mark;
		return 0;
	}

	if ((plain && !tag) || (tag && !tag_is(tag, "!") && !tag_is(tag, YAML_STR_TAG)))
		k = resolve(s, &num);
	if (tag && (tag_is(tag, YAML_NULL_TAG) || tag_is(tag, YAML_BOOL_TAG) || tag_is(tag, YAML_INT_TAG) ||
		    tag_is(tag, YAML_FLOAT_TAG))) {
		bool ok = (tag_is(tag, YAML_NULL_TAG) && k == SC_NULL) ||
			  (tag_is(tag, YAML_BOOL_TAG) && (k == SC_TRUE || k == SC_FALSE)) ||
			  ((tag_is(tag, YAML_INT_TAG) || tag_is(tag, YAML_FLOAT_TAG)) && k == SC_NUMBER);
		if (!ok) {
			_cleanup_free_ char *q = weft_json_quote(s, 64), *t = weft_json_quote((const char *)tag, 64);
			return yfail(p, e->start_mark, "%s does not match its tag %s", q, t);
		}
	}
	switch (k) {
	case SC_NULL:
		v = cJSON_CreateNull();
		break;
	case SC_TRUE:
		v = cJSON_CreateTrue();
		break;
	case SC_FALSE:
		v = cJSON_CreateFalse();
		break;
	case SC_NUMBER:
		v = cJSON_CreateNumber(num);
		break;
	case SC_NONFINITE: {
		_cleanup_free_ char *q = weft_json_quote(s, 64);
		return yfail(p, e->start_mark, "%s: infinite and NaN numbers are not supported", q);
	}
	default:
		v = cJSON_CreateString(s);
		break;
	}
	return attach(p, v, e->start_mark);
}

static int on_start(struct yparse *p, const yaml_event_t *e, bool map)
{
	const yaml_char_t *tag = map ? e->data.mapping_start.tag : e->data.sequence_start.tag;
	struct frame *f = p->depth ? &p->stack[p->depth - 1] : NULL;
	cJSON *v;

	if (tag && !tag_is(tag, map ? YAML_MAP_TAG : YAML_SEQ_TAG) && !tag_is(tag, "!"))
		return tag_fail(p, e->start_mark, tag, "unsupported tag ");
	if (f && cJSON_IsObject(f->node) && !f->key)
		return yfail(p, e->start_mark, "mapping keys must be scalars");
	if (p->depth == WEFT_YAML_MAX_DEPTH)
		return yfail(p, e->start_mark, "nesting deeper than %d levels", WEFT_YAML_MAX_DEPTH);
	v = map ? cJSON_CreateObject() : cJSON_CreateArray();
	if (attach(p, v, e->start_mark) < 0)
		return -EINVAL;
	p->stack[p->depth++] = (struct frame){.node = v};
	return 0;
}

static int on_event(struct yparse *p, const yaml_event_t *e)
{
	switch (e->type) {
	case YAML_DOCUMENT_START_EVENT:
		p->root = NULL;
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		cJSON_AddItemToArray(p->docs, p->root ? p->root : cJSON_CreateNull());
		p->root = NULL;
		return 0;
	case YAML_ALIAS_EVENT:
		return yfail(p, e->start_mark, "aliases (*%s) are not supported", (const char *)e->data.alias.anchor);
	case YAML_SCALAR_EVENT:
		return on_scalar(p, e);
	case YAML_SEQUENCE_START_EVENT:
		return on_start(p, e, false);
	case YAML_MAPPING_START_EVENT:
		return on_start(p, e, true);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (p->depth == 0)
			return yfail(p, e->start_mark, "unbalanced end of collection");
		p->depth--;
		free(p->stack[p->depth].key);
		p->stack[p->depth].key = NULL;
		return 0;
	default:
		return 0;
	}
}

int weft_yaml_parse(const char *text, size_t len, cJSON **out, char **err)
{
	struct yparse p = {0};
	yaml_event_t e;
	bool done = false;
	int r = 0;

	if (!yaml_parser_initialize(&p.parser)) {
		fprintf(stderr, "weft: out of memory initialising the YAML parser\n");
		abort();
	}
	yaml_parser_set_input_string(&p.parser, (const unsigned char *)text, len);
	p.docs = cJSON_CreateArray();
	while (!done && r == 0) {
		if (!yaml_parser_parse(&p.parser, &e)) {
			r = parser_error(&p);
			break;
		}
		r = on_event(&p, &e);
		done = e.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&e);
	}
	yaml_parser_delete(&p.parser);
	for (size_t i = 0; i < p.depth; i++)
		free(p.stack[i].key);
	if (r < 0) {
		/* The root of an unfinished document is not in docs yet. */
		cJSON_Delete(p.root);
		cJSON_Delete(p.docs);
		if (err)
			*err = TAKE_PTR(p.err);
		free(p.err);
		return -EINVAL;
	}
	*out = p.docs;
	return 0;
}

int weft_yaml_load(const char *text, size_t len, cJSON **doc, char **err)
{
	cJSON *docs = NULL;
	int n;

	if (weft_yaml_parse(text ? text : "", text ? len : 0, &docs, err) < 0)
		return -EINVAL;
	n = cJSON_GetArraySize(docs);
	if (n > 1) {
		cJSON_Delete(docs);
		if (err)
			*err = wasprintf("expected one YAML document, found %d", n);
		return -EINVAL;
	}
	*doc = n == 1 ? cJSON_DetachItemFromArray(docs, 0) : NULL;
	cJSON_Delete(docs);
	return 0;
}

/* --- emitting -------------------------------------------------------- */

static int emit_write(void *data, unsigned char *buf, size_t size)
{
	weft_buf_append(data, buf, size);
	return 1;
}

/* Strings that YAML 1.1 readers (PyYAML, older Go YAML, kubectl) would
 * take for booleans or sexagesimal numbers are quoted too, so that what
 * weft prints means the same to every tool. */
static bool yaml11_special(const char *s)
{
	static const char *const words[] = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
					    "on", "On", "ON", "off", "Off", "OFF"};
	bool digit = false, sep = false;

	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (streq(s, words[i]))
			return true;
	for (const char *p = s; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digit = true;
		else if (*p == ':' || *p == '_')
			sep = true;
		else if (!strchr(".+-", *p))
			return false;
	}
	return digit && sep;
}

static bool emit_scalar(yaml_emitter_t *em, const char *s, bool force_plain)
{
	yaml_event_t e;
	double num;
	/* A string that would read back as something else must be quoted. */
	yaml_scalar_style_t style = force_plain || (resolve(s, &num) == SC_STRING && !yaml11_special(s))
					    ? YAML_ANY_SCALAR_STYLE
					    : YAML_DOUBLE_QUOTED_SCALAR_STYLE;

	if (force_plain)
		style = YAML_PLAIN_SCALAR_STYLE;
	return yaml_scalar_event_initialize(&e, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1, style) &&
	       yaml_emitter_emit(em, &e);
}

static bool emit_value(yaml_emitter_t *em, const cJSON *v, int depth)
{
	yaml_event_t e;
	const cJSON *c;
	char num[64];

	if (depth > 1000)
		return false;
	if (cJSON_IsObject(v)) {
		yaml_mapping_style_t st = v->child ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE;
		if (!yaml_mapping_start_event_initialize(&e, NULL, NULL, 1, st) || !yaml_emitter_emit(em, &e))
			return false;
		cJSON_ArrayForEach(c, v)
			if (!emit_scalar(em, c->string ? c->string : "", false) || !emit_value(em, c, depth + 1))
				return false;
		return yaml_mapping_end_event_initialize(&e) && yaml_emitter_emit(em, &e);
	}
	if (cJSON_IsArray(v)) {
		yaml_sequence_style_t st = v->child ? YAML_BLOCK_SEQUENCE_STYLE : YAML_FLOW_SEQUENCE_STYLE;
		if (!yaml_sequence_start_event_initialize(&e, NULL, NULL, 1, st) || !yaml_emitter_emit(em, &e))
			return false;
		cJSON_ArrayForEach(c, v)
			if (!emit_value(em, c, depth + 1))
				return false;
		return yaml_sequence_end_event_initialize(&e) && yaml_emitter_emit(em, &e);
	}
	if (cJSON_IsString(v))
		return emit_scalar(em, v->valuestring, false);
	if (cJSON_IsNumber(v)) {
		if (!isfinite(v->valuedouble))
			return emit_scalar(em, "null", true);
		weft_number_str(v->valuedouble, num, sizeof(num));
		return emit_scalar(em, num, true);
	}
	if (cJSON_IsBool(v))
		return emit_scalar(em, cJSON_IsTrue(v) ? "true" : "false", true);
	return emit_scalar(em, "null", true);
}

static char *emit(const cJSON *v, bool stream)
{
	struct weft_buf b = {0};
	yaml_emitter_t em;
	yaml_event_t e;
	const cJSON *c;
	bool ok;

	if (!yaml_emitter_initialize(&em)) {
		fprintf(stderr, "weft: out of memory initialising the YAML emitter\n");
		abort();
	}
	yaml_emitter_set_output(&em, emit_write, &b);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	yaml_emitter_set_indent(&em, 2);
	ok = yaml_stream_start_event_initialize(&e, YAML_UTF8_ENCODING) && yaml_emitter_emit(&em, &e);
	if (stream) {
		cJSON_ArrayForEach(c, v) {
			ok = ok && yaml_document_start_event_initialize(&e, NULL, NULL, NULL, 0) && yaml_emitter_emit(&em, &e);
			ok = ok && emit_value(&em, c, 0);
			ok = ok && yaml_document_end_event_initialize(&e, 1) && yaml_emitter_emit(&em, &e);
		}
	} else {
		ok = ok && yaml_document_start_event_initialize(&e, NULL, NULL, NULL, 1) && yaml_emitter_emit(&em, &e);
		ok = ok && emit_value(&em, v, 0);
		ok = ok && yaml_document_end_event_initialize(&e, 1) && yaml_emitter_emit(&em, &e);
	}
	ok = ok && yaml_stream_end_event_initialize(&e) && yaml_emitter_emit(&em, &e);
	ok = ok && yaml_emitter_flush(&em);
	yaml_emitter_delete(&em);
	if (!ok) {
		/* Only invalid UTF-8 in a string gets here; validated resources
		 * never hold any. Say so rather than emit half a document. */
		weft_buf_free(&b);
		return wstrdup("# weft: this value cannot be rendered as YAML (invalid UTF-8)\n");
	}
	return weft_buf_steal(&b);
}

char *weft_yaml_emit(const cJSON *v)
{
	return emit(v, false);
}

char *weft_yaml_emit_documents(const cJSON *array)
{
	return emit(array, true);
}
