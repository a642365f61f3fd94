/* test-manifest.c - manifests as files: YAML streams, JSON forms, the
 * all-or-nothing rule, and the YAML reader and emitter themselves. */
#include "lib/test.h"
#include "model/resource.h"
#include "model/selector.h"
#include "model/yaml.h"

static int parse(const char *text, struct weft_resource **rs, size_t *n, char **err)
{
	return weft_manifest_parse(text, strlen(text), rs, n, err);
}

/* The manifest must be rejected with exactly want, and nothing returned. */
static void check_rejected(const char *text, const char *want)
{
	struct weft_resource *rs = (void *)1;
	size_t n = 99;
	char *err = NULL;

	CHECK_EQ_INT(parse(text, &rs, &n, &err), -EINVAL);
	CHECK(rs == (void *)1 && n == 99);
	CHECK_STREQ(err, want);
	free(err);
}

static void test_multi_document(void)
{
	static const char text[] = "# pools\n"
				   "kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/16}\n"
				   "---\n"
				   "---\n# an empty document is skipped\n"
				   "kind: Profile\nmetadata:\n  name: WEB\n"
				   "...\n"
				   "---\n"
				   "kind: IPPool\nmetadata: {name: pool2}\nspec: {cidr: 10.66.0.0/16}\n";
	struct weft_resource *rs = NULL;
	size_t n = 0;
	char *err = NULL;

	CHECK_EQ_INT(parse(text, &rs, &n, &err), 0);
	CHECK_EQ_INT(n, 3);
	if (n == 3) {
		CHECK_EQ_INT(rs[0].kind, WEFT_KIND_IPPOOL);
		CHECK_STREQ(rs[0].name, "pool1");
		CHECK_EQ_INT(rs[1].kind, WEFT_KIND_PROFILE);
		CHECK_STREQ(rs[2].name, "pool2");
	}
	weft_resources_free(rs, n);
	free(err);
}

static void test_json_forms(void)
{
	static const char *const texts[] = {
		"[{\"kind\":\"IPPool\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"cidr\":\"10.1.0.0/16\"}},"
		" {\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}]",
		"{\"kind\":\"List\",\"apiVersion\":\"weft/v1\",\"items\":[{\"kind\":\"IPPool\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"cidr\":\"10.1.0.0/16\"}},"
		" {\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}]}",
		"kind: List\nitems:\n- kind: IPPool\n  metadata: {name: a}\n  spec: {cidr: 10.1.0.0/16}\n- kind: Node\n  metadata: {name: n1}\n",
		"apiVersion: weft/v1\nkind: List\nmetadata: {resourceVersion: \"\"}\nitems:\n- kind: IPPool\n  metadata: {name: a}\n"
		"  spec: {cidr: 10.1.0.0/16}\n- kind: Node\n  metadata: {name: n1}\n",
		"{\"kind\":\"List\",\"apiVersion\":null,\"metadata\":null,\"items\":[{\"kind\":\"IPPool\",\"metadata\":{\"name\":\"a\"},"
		"\"spec\":{\"cidr\":\"10.1.0.0/16\"}},{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}]}",
		"- kind: IPPool\n  metadata: {name: a}\n  spec: {cidr: 10.1.0.0/16}\n- {kind: Node, metadata: {name: n1}}\n",
		/* YAML flow style starts like JSON. */
		"{kind: IPPool, metadata: {name: a}, spec: {cidr: 10.1.0.0/16}}\n---\n{kind: Node, metadata: {name: n1}}\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		struct weft_resource *rs = NULL;
		size_t n = 0;
		char *err = NULL;

		CHECK_EQ_INT(parse(texts[i], &rs, &n, &err), 0);
		if (err)
			fprintf(stderr, "text %zu: %s\n", i, err);
		CHECK_EQ_INT(n, 2);
		if (n == 2) {
			CHECK_STREQ(rs[0].name, "a");
			CHECK_EQ_INT(rs[1].kind, WEFT_KIND_NODE);
		}
		weft_resources_free(rs, n);
		free(err);
	}

	struct weft_resource *rs = NULL;
	size_t n = 0;
	CHECK_EQ_INT(parse("  {\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}\n", &rs, &n, NULL), 0);
	CHECK_EQ_INT(n, 1);
	weft_resources_free(rs, n);
}

/* The bad manifests of the Foundation issue: each names the field, and no
 * resource comes back even when other documents were good. */
static void test_issue_bad_manifests(void)
{
	check_rejected("kind: IPPool\nmetadata: {name: pool1\nspec: {cidr: 10.65.0.0/16}\n",
		       "line 3:5: did not find expected ',' or '}' (while parsing a flow mapping at line 2:11)");
	check_rejected("kind: IPPool\nmetadata:\n  name: pool1\n spec: x\n",
		       "line 4:2: did not find expected key (while parsing a block mapping at line 1:1)");
	check_rejected("kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/16}\n---\nkind: IPool\nmetadata: {name: p2}\n",
		       "p2: kind: unknown kind \"IPool\"");
	check_rejected("kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/16, colour: blue}\n",
		       "pool1: spec.colour: unknown field");
	check_rejected("kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/33}\n",
		       "pool1: spec.cidr: \"10.65.0.0/33\" is not a CIDR");
	check_rejected("kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/16, blockSize: 33}\n",
		       "pool1: spec.blockSize: 33 is out of range 20..32");
	check_rejected("kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/16}\n---\n"
		       "kind: Node\nmetadata: {name: pool1}\n---\n"
		       "kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.66.0.0/16}\n",
		       "pool1: metadata.name: duplicate IPPool \"pool1\" (documents 1 and 3)");
	/* The label is the document number when there is no usable name. */
	check_rejected("kind: Node\nmetadata: {name: n1}\n---\nkind: Node\nmetadata: {}\n", "document 2: metadata.name: is required");
	check_rejected("[{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}, 5]", "document 2: expected an object (a resource), got 5");
}

static void test_empty_and_syntax(void)
{
	check_rejected("", "no resources");
	check_rejected("  \n# only a comment\n", "no resources");
	check_rejected("---\n---\n", "no resources");
	check_rejected("[]", "no resources");
	check_rejected("{\"kind\": \"Node\",\n \"metadata\": {\"name\": \"n1\"}\n", "line 2:28: invalid JSON");
	check_rejected("{\"kind\": \"Node\", \"metadata\": {\"name\": \"n1\"}} x", "line 1:46: unexpected text after the JSON value");
	check_rejected("{\"kind\":\"Node\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}", "n1: kind: duplicate field");
	check_rejected("{\"kind\":\"IPPool\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"cidr\":\"10.0.0.0/8\",\"cidr\":\"10.0.0.0/8\"}}",
		       "p: spec.cidr: duplicate field");
	check_rejected("kind: Node\nmetadata: {name: n1}\nkind: Node\n", "line 3:1: duplicate key \"kind\"");
	check_rejected("kind: Node\nmetadata: &m {name: n1}\n---\nkind: Node\nmetadata: *m\n", "line 5:11: aliases (*m) are not supported");
	check_rejected("kind: Node\nmetadata: {name: n1}\n? [a]\n: b\n", "line 3:3: mapping keys must be scalars");
	check_rejected("kind: Node\nmetadata: {name: !!int n1}\n", "line 2:18: \"n1\" does not match its tag \"tag:yaml.org,2002:int\"");
	check_rejected("kind: Node\nmetadata: {name: !custom n1}\n", "line 2:18: unsupported tag \"!custom\"");
	check_rejected("kind: IPPool\nmetadata: {name: p}\nspec: {blockSize: .inf}\n", "line 3:19: \".inf\": infinite and NaN numbers are not supported");
	check_rejected("kind: List\nitems: 5\n", "document 1: items: a List needs a list of items");
	check_rejected("kind: List\nitems: []\nextra: 1\n", "document 1: extra: unknown field in a List");
	check_rejected("kind: List\nitems: [{kind: List, items: []}]\n", "document 1: kind: a List is only allowed as the whole manifest");
	/* A List's apiVersion is checked as a resource's, its metadata must
	 * be an object (its content is not stored, so not checked). */
	check_rejected("{\"kind\":\"List\",\"apiVersion\":\"v999\",\"items\":[{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}]}",
		       "document 1: apiVersion: \"v999\" is not supported (use weft/v1 or leave it out)");
	check_rejected("apiVersion: projectcalico.org/v3\nkind: List\nitems: []\n",
		       "document 1: apiVersion: \"projectcalico.org/v3\" is not supported (use weft/v1 or leave it out)");
	check_rejected("{\"kind\":\"List\",\"apiVersion\":1,\"items\":[]}",
		       "document 1: apiVersion: 1 is not supported (use weft/v1 or leave it out)");
	check_rejected("{\"kind\":\"List\",\"metadata\":42,\"items\":[{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}]}",
		       "document 1: metadata: expected an object, got 42");
	check_rejected("kind: List\nmetadata: [a]\nitems: []\n", "document 1: metadata: expected an object, got a list");
	check_rejected("{\"kind\":\"List\",\"items\":[],\"items\":[{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}]}",
		       "document 1: items: duplicate field");

	/* Anchors without aliases are harmless and accepted. */
	struct weft_resource *rs = NULL;
	size_t n = 0;
	CHECK_EQ_INT(parse("kind: Node\nmetadata: &m {name: n1}\n", &rs, &n, NULL), 0);
	weft_resources_free(rs, n);

	/* Deep nesting is refused before it costs anything. */
	struct weft_buf b = {0};
	for (int i = 0; i < 100; i++)
		weft_buf_printf(&b, "- ");
	weft_buf_printf(&b, "x\n");
	char *err = NULL;
	CHECK_EQ_INT(weft_manifest_parse(b.data, b.len, &rs, &n, &err), -EINVAL);
	CHECK_STREQ(err, "line 1:129: nesting deeper than 64 levels");
	free(err);
	weft_buf_free(&b);
}

/* YAML 1.2 core schema resolution of plain scalars. */
static void test_yaml_scalars(void)
{
	static const char text[] = "a: 12\nb: -0x1A\nc: 0x1A\nd: 0o17\ne: 1.5e3\nf: true\ng: False\nh: ~\ni:\nj: yes\n"
				   "k: \"12\"\nl: '~'\nm: 8000:8080\nn: !!str 7\no: 012\np: .5\nq: 1_000\nr: [1, \"1\"]\n";
	static const char want[] = "{\"a\":12,\"b\":\"-0x1A\",\"c\":26,\"d\":15,\"e\":1500,\"f\":true,\"g\":false,\"h\":null,\"i\":null,"
				   "\"j\":\"yes\",\"k\":\"12\",\"l\":\"~\",\"m\":\"8000:8080\",\"n\":\"7\",\"o\":12,\"p\":0.5,\"q\":\"1_000\",\"r\":[1,\"1\"]}";
	cJSON *docs = NULL;
	char *err = NULL;

	CHECK_EQ_INT(weft_yaml_parse(text, strlen(text), &docs, &err), 0);
	CHECK_EQ_INT(cJSON_GetArraySize(docs), 1);
	char *s = cJSON_PrintUnformatted(cJSON_GetArrayItem(docs, 0));
	CHECK_STREQ(s, want);
	free(s);

	/* Emitting quotes whatever would read back as something else. */
	char *y = weft_yaml_emit(cJSON_GetArrayItem(docs, 0));
	cJSON *back = NULL;
	CHECK_EQ_INT(weft_yaml_parse(y, strlen(y), &back, &err), 0);
	CHECK(back && cJSON_Compare(cJSON_GetArrayItem(back, 0), cJSON_GetArrayItem(docs, 0), true));
	CHECK(strstr(y, "k: \"12\"\n") != NULL);
	CHECK(strstr(y, "j: \"yes\"\n") != NULL);
	CHECK(strstr(y, "m: \"8000:8080\"\n") != NULL);
	CHECK(strstr(y, "h: null\n") != NULL);
	free(y);
	cJSON_Delete(back);
	cJSON_Delete(docs);
	free(err);

	/* Awkward strings survive the emitter and the reader. */
	static const char *const odd[] = {"", "true", "null", "~", "1e3", "0x10", "- a", "a: b", "#c", " lead", "trail ",
					  "multi\nline", "tab\there", "quote\"s", "'single'", "ünïcödé", "[x]", "{y}", "*z", "&a",
					  "!t", "%p", "@q", "`r", ".inf", "-.5", "+1", "0o7", "on", "No"};
	cJSON *obj = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(obj, "list");
	for (size_t i = 0; i < ARRAY_SIZE(odd); i++) {
		cJSON_AddItemToArray(list, cJSON_CreateString(odd[i]));
		cJSON_AddStringToObject(obj, odd[i], odd[i]);
	}
	cJSON_AddItemToObject(obj, "empty", cJSON_CreateObject());
	cJSON_AddItemToObject(obj, "none", cJSON_CreateArray());
	cJSON_AddNumberToObject(obj, "big", 4294967295.0);
	cJSON_AddNumberToObject(obj, "frac", 0.1);
	cJSON_AddNumberToObject(obj, "neg", -3);
	y = weft_yaml_emit(obj);
	CHECK_EQ_INT(weft_yaml_parse(y, strlen(y), &back, &err), 0);
	CHECK(back && cJSON_Compare(cJSON_GetArrayItem(back, 0), obj, true));
	if (!back || !cJSON_Compare(cJSON_GetArrayItem(back, 0), obj, true))
		fprintf(stderr, "emitted:\n%s\nerr: %s\n", y, err);
	free(y);
	cJSON_Delete(back);
	cJSON_Delete(obj);
}

static void test_yaml_load(void)
{
	cJSON *doc = (void *)1;
	char *err = NULL;

	CHECK_EQ_INT(weft_yaml_load("", 0, &doc, &err), 0);
	CHECK(doc == NULL);
	CHECK_EQ_INT(weft_yaml_load("store: file:/var/lib/weft\n", 26, &doc, &err), 0);
	CHECK(cJSON_IsObject(doc));
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "store")), "file:/var/lib/weft");
	cJSON_Delete(doc);
	CHECK_EQ_INT(weft_yaml_load("a: 1\n---\nb: 2\n", 14, &doc, &err), -EINVAL);
	CHECK_STREQ(err, "expected one YAML document, found 2");
	free(err);
	err = NULL;
	CHECK_EQ_INT(weft_yaml_load("a: [1\n", 6, &doc, &err), -EINVAL);
	CHECK(err && startswith(err, "line 2:1: "));
	free(err);
}

static void test_emit_documents(void)
{
	static const char text[] = "kind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.1.0.0/16}\n---\nkind: Node\nmetadata: {name: n1}\n";
	struct weft_resource *rs = NULL, *rs2 = NULL;
	size_t n = 0, n2 = 0;
	cJSON *arr = cJSON_CreateArray();

	CHECK_EQ_INT(parse(text, &rs, &n, NULL), 0);
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, cJSON_Duplicate(rs[i].doc, true));
	char *y = weft_yaml_emit_documents(arr);
	CHECK(startswith(y, "---\nkind: IPPool\n"));
	CHECK_EQ_INT(parse(y, &rs2, &n2, NULL), 0);
	CHECK_EQ_INT(n2, 2);
	for (size_t i = 0; i < n && i < n2; i++)
		CHECK(cJSON_Compare(rs[i].doc, rs2[i].doc, true));
	free(y);
	cJSON_Delete(arr);
	weft_resources_free(rs, n);
	weft_resources_free(rs2, n2);
}

static void test_kinds(void)
{
	static const struct {
		const char *s;
		enum weft_kind k;
	} names[] = {
		{"IPPool", WEFT_KIND_IPPOOL}, {"ippools", WEFT_KIND_IPPOOL}, {"POOL", WEFT_KIND_IPPOOL}, {"ippool", WEFT_KIND_IPPOOL},
		{"profile", WEFT_KIND_PROFILE}, {"Profiles", WEFT_KIND_PROFILE}, {"policy", WEFT_KIND_POLICY},
		{"policies", WEFT_KIND_POLICY}, {"node", WEFT_KIND_NODE}, {"NODES", WEFT_KIND_NODE},
		{"bgppeer", WEFT_KIND_BGPPEER}, {"peers", WEFT_KIND_BGPPEER}, {"peer", WEFT_KIND_BGPPEER},
		{"BGPConfig", WEFT_KIND_BGPCONFIG}, {"bgpconfigs", WEFT_KIND_BGPCONFIG}, {"tenant", WEFT_KIND_TENANT},
		{"tenants", WEFT_KIND_TENANT}, {"network", WEFT_KIND_NETWORK}, {"nets", WEFT_KIND_NETWORK},
		{"net", WEFT_KIND_NETWORK}, {"endpoint", WEFT_KIND_ENDPOINT}, {"ep", WEFT_KIND_ENDPOINT}, {"EPS", WEFT_KIND_ENDPOINT},
	};
	enum weft_kind k = WEFT_KIND_COUNT;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		CHECK_EQ_INT(weft_kind_lookup(names[i].s, &k), 0);
		CHECK_EQ_INT(k, names[i].k);
	}
	k = WEFT_KIND_COUNT;
	CHECK_EQ_INT(weft_kind_lookup("pools2", &k), -ENOENT);
	CHECK_EQ_INT(weft_kind_lookup("", &k), -ENOENT);
	CHECK_EQ_INT(k, WEFT_KIND_COUNT);
	CHECK_STREQ(weft_kind_prefix(WEFT_KIND_POLICY), "/weft/v1/policies/");
	CHECK_STREQ(weft_kind_prefix(WEFT_KIND_BGPCONFIG), "/weft/v1/bgpconfigs/");
	CHECK_STREQ(weft_kind_info(WEFT_KIND_BGPPEER)->name, "BGPPeer");
	CHECK_STREQ(weft_kind_info(WEFT_KIND_ENDPOINT)->plural, "endpoints");
	for (int i = 0; i < WEFT_KIND_COUNT; i++) {
		const struct weft_kind_info *info = weft_kind_info(i);
		char prefix[64];
		CHECK_EQ_INT(info->kind, i);
		snprintf(prefix, sizeof(prefix), "/weft/v1/%s/", info->plural);
		CHECK_STREQ(weft_kind_prefix(i), prefix);
	}
	CHECK(weft_kind_info(WEFT_KIND_COUNT) == NULL);
}

static void test_decode(void)
{
	struct weft_resource r = {0};
	char *err = NULL;
	const char *ok = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"},\"spec\":{}}";

	CHECK_EQ_INT(weft_resource_decode(ok, strlen(ok), &r, &err), 0);
	CHECK_STREQ(r.name, "n1");
	weft_resource_clear(&r);
	weft_resource_clear(&r); /* idempotent */

	CHECK_EQ_INT(weft_resource_decode("{\"kind\":", 8, &r, &err), -EINVAL);
	CHECK_STREQ(err, "line 1:8: invalid JSON");
	CHECK(r.doc == NULL);
	free(err);
	err = NULL;
	/* Only len bytes count. */
	CHECK_EQ_INT(weft_resource_decode(ok, 10, &r, &err), -EINVAL);
	free(err);
	err = NULL;
	const char *bad = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"},\"spec\":{\"bgp\":{\"asNumber\":0}}}";
	CHECK_EQ_INT(weft_resource_decode(bad, strlen(bad), &r, &err), -EINVAL);
	CHECK_STREQ(err, "n1: spec.bgp.asNumber: 0 is out of range 1..4294967295");
	free(err);

	/* from_json labels nameless documents as told. */
	cJSON *doc = cJSON_Parse("{\"kind\":\"Node\"}");
	err = NULL;
	CHECK_EQ_INT(weft_resource_from_json(doc, "document 7", &r, &err), -EINVAL);
	CHECK_STREQ(err, "document 7: metadata: is required");
	free(err);
	cJSON_Delete(doc);
}

/* cJSON decodes \u0000 and keeps the string cut at it: a selector
 * "role == 'db'\u0000 && env == 'prod'" would select every role == 'db'.
 * A NUL anywhere in a string or a key is refused, as the YAML reader
 * refuses it, naming the position and the field. */
static void test_json_nul(void)
{
	static const char policy[] = "{\"kind\":\"Policy\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"order\":1,"
				     "\"selector\":\"role == 'db'\\u0000 && env == 'prod'\"}}";
	struct weft_resource r = {0};
	char *err = NULL;

	check_rejected(policy, "line 1:84: spec.selector: NUL characters (\\u0000) are not supported");
	CHECK_EQ_INT(weft_resource_decode(policy, strlen(policy), &r, &err), -EINVAL);
	CHECK_STREQ(err, "line 1:84: spec.selector: NUL characters (\\u0000) are not supported");
	CHECK(r.doc == NULL);
	free(err);
	err = NULL;

	check_rejected("{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\\u0000evil\"}}",
		       "line 1:38: metadata.name: NUL characters (\\u0000) are not supported");
	check_rejected("[{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}},\n"
		       " {\"kind\":\"Profile\",\"metadata\":{\"name\":\"p\",\"labels\":{\"a\\u0000b\":\"x\"}}}]",
		       "line 2:55: [1].metadata.labels: NUL characters (\\u0000) are not supported in field names");
	check_rejected("{\"kind\":\"List\",\"items\":[{\"kind\":\"Node\\u0000\",\"metadata\":{\"name\":\"n1\"}}]}",
		       "line 1:38: items[0].kind: NUL characters (\\u0000) are not supported");
	/* A raw NUL byte inside a string is the same. */
	static const char raw[] = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n\0x\"}}";
	struct weft_resource *rs = (void *)1;
	size_t n = 99;
	CHECK_EQ_INT(weft_manifest_parse(raw, sizeof(raw) - 1, &rs, &n, &err), -EINVAL);
	CHECK_STREQ(err, "line 1:37: metadata.name: NUL characters (\\u0000) are not supported");
	CHECK(rs == (void *)1 && n == 99);
	free(err);
	err = NULL;

	/* Escaped backslashes before a "u0000" are not an escape of NUL. */
	static const char ok[] = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\",\"annotations\":{\"a\":\"x\\\\u0000\"}}}";
	CHECK_EQ_INT(weft_resource_decode(ok, strlen(ok), &r, &err), 0);
	const cJSON *md = cJSON_GetObjectItem(r.doc, "metadata");
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(md, "annotations"), "a")), "x\\u0000");
	weft_resource_clear(&r);
	free(err);
	/* The YAML reader already refused NUL; it still does. */
	check_rejected("kind: Node\nmetadata: {name: \"n1\\0\"}\n", "line 2:18: NUL characters are not supported");
}

static void test_selector(void)
{
	static const char *const good[] = {"all()", "role == 'web'", "has(app) && (env in {'a', 'b'})", "a == \")\""};
	static const char *const bad[] = {"", "   ", "(", ")(", "a == 'x", "a == \"x", "tab\x01"};
	char *err = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		CHECK_EQ_INT(weft_selector_validate(good[i], NULL), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK_EQ_INT(weft_selector_validate(bad[i], &err), -EINVAL);
		CHECK(err != NULL);
		free(err);
		err = NULL;
	}
}

TEST_MAIN(TEST(test_multi_document), TEST(test_json_forms), TEST(test_issue_bad_manifests), TEST(test_empty_and_syntax),
	  TEST(test_yaml_scalars), TEST(test_yaml_load), TEST(test_emit_documents), TEST(test_kinds), TEST(test_decode), TEST(test_json_nul),
	  TEST(test_selector))
