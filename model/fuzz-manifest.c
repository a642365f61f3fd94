/* fuzz-manifest.c - libFuzzer target for the manifest reader.
 *
 * Any input: weft_manifest_parse() must not crash or leak. On success every
 * resource must survive encode -> decode and YAML emit -> parse unchanged
 * (the canonical form is a fixed point), or the target aborts.
 */
#include "model/resource.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const struct weft_resource *r)
{
	char *json = weft_resource_encode(r, false), *yaml = weft_yaml_emit(r->doc), *err = NULL;
	struct weft_resource back = {0}, *rs = NULL;
	size_t n = 0;

	if (weft_resource_decode(json, strlen(json), &back, &err) < 0 || !cJSON_Compare(back.doc, r->doc, true) ||
	    back.kind != r->kind || !streq(back.name, r->name)) {
		fprintf(stderr, "JSON round trip failed: %s\n%s\n", err ? err : "(different)", json);
		abort();
	}
	if (weft_manifest_parse(yaml, strlen(yaml), &rs, &n, &err) < 0 || n != 1 || !cJSON_Compare(rs[0].doc, r->doc, true)) {
		fprintf(stderr, "YAML round trip failed: %s\n%s\n", err ? err : "(different)", yaml);
		abort();
	}
	weft_resources_free(rs, n);
	weft_resource_clear(&back);
	free(json);
	free(yaml);
	free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct weft_resource *rs = NULL;
	size_t n = 0;
	char *err = NULL;

	if (weft_manifest_parse((const char *)data, size, &rs, &n, &err) < 0) {
		if (!err || strchr(err, '\n')) {
			fprintf(stderr, "error message missing or not one line: %s\n", err ? err : "(null)");
			abort();
		}
		free(err);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		check_round_trip(&rs[i]);
	weft_resources_free(rs, n);
	return 0;
}
