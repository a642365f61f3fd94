/* common.c - weftctl's store resolution, config file and shared helpers. */
#include "ctl/ctl.h"

#include <getopt.h>
#include <sys/stat.h>

bool ctl_retry_again(struct ctl_retry *rt)
{
	static uint64_t x;
	int64_t now = weft_now_ms();
	unsigned base_us;

	if (!rt->deadline_ms)
		rt->deadline_ms = now + CTL_RETRY_MS;
	if (now >= rt->deadline_ms)
		return false;
	if (!x)
		x = ((uint64_t)getpid() << 32) ^ (uint64_t)weft_now_ns() ^ 0x9e3779b97f4a7c15ULL;
	x ^= x << 13; /* xorshift64: spreads racing processes apart */
	x ^= x >> 7;
	x ^= x << 17;
	base_us = rt->attempt < 7 ? 1000u << rt->attempt : 100000u;
	rt->attempt++;
	usleep(base_us / 2 + (useconds_t)(x % (base_us / 2 + 1)));
	return true;
}

int ctl_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = wvasprintf(fmt, ap);
	va_end(ap);
	fprintf(stderr, "weftctl: %s\n", msg);
	free(msg);
	return 1;
}

int ctl_write_failed(struct ctl *ctl, int r, const char *nothing)
{
	const char *why = *weft_store_errmsg(ctl->store) ? weft_store_errmsg(ctl->store) : strerror(-r);

	/* The store's description then ends with "(the write may or may not
	 * have been applied)". */
	if (weft_store_outcome_unknown(ctl->store))
		return ctl_fail("store write failed: %s; check with weftctl get", why);
	return ctl_fail("store write failed, nothing %s: %s", nothing, why);
}

int ctl_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = wvasprintf(fmt, ap);
	va_end(ap);
	fprintf(stderr, "weftctl: %s: %s (see weftctl %s --help)\n", cmd, msg, cmd);
	free(msg);
	return 2;
}

int ctl_read_file(const char *path, char **out, size_t *len)
{
	struct weft_buf b = {0};
	char chunk[65536];
	FILE *f = streq(path, "-") ? stdin : fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		weft_buf_append(&b, chunk, n);
		if (b.len > 64 * 1024 * 1024) {
			weft_buf_free(&b);
			if (f != stdin)
				fclose(f);
			return -EFBIG;
		}
	}
	/* fread() leaves errno set on a read error (EISDIR for a directory). */
	int err = ferror(f) ? (errno > 0 ? -errno : -EIO) : 0;
	if (f != stdin)
		fclose(f);
	if (err < 0) {
		weft_buf_free(&b);
		return err;
	}
	*len = b.len;
	*out = weft_buf_steal(&b);
	return 0;
}

/* The config file is YAML: a mapping with the key "store" (a store URL).
 * Other keys are rejected so that typos are noticed. Returns 0 with *url
 * set (malloc'ed, NULL when the file has no store key), or 1 after an
 * error message. A missing default config file is not an error. */
static int read_config(const char *path, bool explicit, char **url)
{
	_cleanup_free_ char *text = NULL, *err = NULL;
	size_t len;
	cJSON *doc = NULL, *item;
	int r;

	r = ctl_read_file(path, &text, &len);
	if (r == -ENOENT && !explicit) {
		*url = NULL;
		return 0;
	}
	if (r < 0)
		return ctl_fail("config %s: %s", path, strerror(-r));
	r = weft_yaml_load(text, len, &doc, &err);
	if (r < 0)
		return ctl_fail("config %s: %s", path, err ? err : strerror(-r));
	if (!doc || cJSON_IsNull(doc)) {
		cJSON_Delete(doc);
		*url = NULL;
		return 0;
	}
	if (!cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		return ctl_fail("config %s: expected a mapping with the key \"store\"", path);
	}
	*url = NULL;
	cJSON_ArrayForEach(item, doc) {
		if (!streq(item->string, "store")) {
			r = ctl_fail("config %s: %s: unknown field", path, item->string);
			cJSON_Delete(doc);
			free(*url);
			*url = NULL;
			return r;
		}
		if (!cJSON_IsString(item) || !*item->valuestring) {
			cJSON_Delete(doc);
			free(*url);
			*url = NULL;
			return ctl_fail("config %s: store: expected a store URL string", path);
		}
		free(*url);
		*url = wstrdup(item->valuestring);
	}
	cJSON_Delete(doc);
	return 0;
}

int ctl_open_store(struct ctl *ctl)
{
	_cleanup_free_ char *from_config = NULL, *errmsg = NULL, *def = NULL;
	const char *url = ctl->store_url;
	int r;

	/* An empty $WEFT_STORE counts as unset; an empty --store is an error
	 * (from weft_store_open()), never a silent fall back to the default. */
	if (!url) {
		url = getenv("WEFT_STORE");
		if (url && !*url)
			url = NULL;
	}
	if (!url) {
		const char *path = ctl->config_path;
		bool explicit = path != NULL;
		if (!path)
			path = getenv("WEFT_CONFIG");
		if (path && *path)
			explicit = true;
		else
			path = WEFT_DEFAULT_CONFIG;
		if (read_config(path, explicit, &from_config))
			return 1;
		url = from_config;
	}
	if (!url)
		url = def = wstrdup("file:" WEFT_DEFAULT_STORE_DIR);
	r = weft_store_open(url, &ctl->store, &errmsg);
	if (r < 0)
		return ctl_fail("cannot open store %s: %s", url, errmsg ? errmsg : strerror(-r));
	return 0;
}

void ctl_close_store(struct ctl *ctl)
{
	weft_store_close(ctl->store);
	ctl->store = NULL;
}

static const char *const store_usage =
	"Usage: weftctl store check\n"
	"\n"
	"Check the datastore's integrity: for the embedded store, every record of\n"
	"the log decodes and its checksum holds; for etcd, the cluster answers.\n"
	"Then every weft resource in the store is decoded and validated.\n";

int ctl_cmd_store(struct ctl *ctl, int argc, char **argv)
{
	int64_t rev = 0;
	size_t nres = 0;
	int r, bad = 0;

	if (argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
		fputs(store_usage, stdout);
		return 0;
	}
	if (argc != 2 || !streq(argv[1], "check"))
		return fprintf(stderr, "weftctl: store: expected \"check\" (see weftctl store --help)\n"), 2;
	if (ctl_open_store(ctl))
		return 1;
	r = weft_store_check(ctl->store);
	if (r < 0) {
		int ret = ctl_fail("store check failed: %s", *weft_store_errmsg(ctl->store) ?
				   weft_store_errmsg(ctl->store) : strerror(-r));
		ctl_close_store(ctl);
		return ret;
	}
	/* Resources only: other modules keep their own records under /weft/v1/
	 * (IPAM blocks, affinities, handles), which are not resources. */
	for (int k = 0; k < WEFT_KIND_COUNT; k++) {
		struct weft_kv_list kl = {0};
		r = weft_store_list(ctl->store, weft_kind_prefix((enum weft_kind)k), &kl);
		if (r < 0) {
			int ret = ctl_fail("store list failed: %s", weft_store_errmsg(ctl->store));
			ctl_close_store(ctl);
			return ret;
		}
		for (size_t i = 0; i < kl.n; i++) {
			struct weft_resource res = {0};
			_cleanup_free_ char *err = NULL;
			nres++;
			if (weft_resource_decode(kl.items[i].value, kl.items[i].value_len, &res, &err) < 0) {
				ctl_fail("%s: %s", kl.items[i].key, err ? err : "undecodable");
				bad++;
				continue;
			}
			_cleanup_free_ char *key = weft_resource_key(&res);
			if (!streq(key, kl.items[i].key)) {
				ctl_fail("%s: holds %s %s, whose key is %s", kl.items[i].key,
					 weft_kind_info(res.kind)->name, res.name, key);
				bad++;
			}
			weft_resource_clear(&res);
		}
		if (kl.rev > rev)
			rev = kl.rev;
		weft_kv_list_clear(&kl);
	}
	printf("store %s: ok, revision %lld, %zu resources%s\n", weft_store_backend(ctl->store),
	       (long long)rev, nres, bad ? ", some invalid" : "");
	ctl_close_store(ctl);
	return bad ? 1 : 0;
}
