/* fuzz-cni-config.c - libFuzzer target for the CNI network configuration
 * parser (weft's and weft-ipam's views of it).
 *
 * Any input: no crash, no leak. A failure must carry a CNI error code and
 * a one-line message. A success must satisfy the config's invariants, and
 * a prevResult must survive write -> parse -> write unchanged.
 */
#include "cni/cni.h"
#include "lib/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz-cni-config: %s: %s\n", what, detail ? detail : "");
	abort();
}

static void check_config(const struct weft_cni_config *c)
{
	const struct weft_cni_ipam *ipam = &c->ipam;

	if (!c->name || !c->type || !c->weftd_socket || !c->version)
		die("config", "missing name, type, socket or version");
	if (c->mtu && (c->mtu < 68 || c->mtu > 65535))
		die("config", "mtu out of range");
	if (ipam->mode == WEFT_CNI_IPAM_RANGE) {
		if (!weft_cidr_contains(&ipam->subnet, &ipam->first) || !weft_cidr_contains(&ipam->subnet, &ipam->last) ||
		    weft_ip_cmp(&ipam->first, &ipam->last) > 0 || !ipam->range_text)
			die("range", ipam->range_text);
		for (size_t i = 0; i < ipam->n_exclude; i++)
			if (!weft_cidr_covers(&ipam->subnet, &ipam->exclude[i]))
				die("exclude", ipam->range_text);
	}
	if (c->prev_result) {
		char *a = weft_cni_result_json(c->prev_result, c->version), *b = NULL;
		struct weft_cni_result *back = NULL;
		struct weft_cni_error err = {0};

		if (!a)
			die("prevResult", "cannot be written");
		if (weft_cni_result_parse(a, strlen(a), c->version, &back, &err) < 0)
			die("prevResult does not parse back", err.msg);
		b = weft_cni_result_json(back, c->version);
		if (!b || !streq(a, b))
			die("prevResult round trip", a);
		free(a);
		free(b);
		weft_cni_result_free(back);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned flags[] = {0, WEFT_CNI_PARSE_IPAM_ONLY};
	static bool init;

	if (!init) {
		weft_json_init();
		init = true;
	}
	for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
		struct weft_cni_config *c = NULL;
		struct weft_cni_error err = {0};
		int r = weft_cni_config_parse((const char *)data, size, flags[i], &c, &err);

		if (r < 0) {
			if (c || !err.code || !err.msg || strchr(err.msg, '\n'))
				die("error without code or message", err.msg);
			free(weft_cni_error_json(&err, 0));
		} else {
			check_config(c);
		}
		weft_cni_config_free(c);
		weft_cni_error_clear(&err);
	}
	/* The same bytes as a CNI_ARGS string and as a bandwidth. */
	if (size < 4096) {
		char *s = wstrndup((const char *)data, size);
		struct weft_cni_env env = {0};
		struct weft_cni_error err = {0};
		uint64_t bw;

		weft_cni_args_parse(s, &env, &err);
		weft_cni_parse_bandwidth(s, &bw);
		weft_cni_env_clear(&env);
		weft_cni_error_clear(&err);
		free(s);
	}
	return 0;
}
