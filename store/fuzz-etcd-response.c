/* fuzz-etcd-response.c - libFuzzer target for the decoding of etcd JSON
 * gateway responses (etcd-proto.c): range, txn, status, error bodies and
 * watch stream messages, with and without a key prefix to strip. */
#include "store/etcd-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	const char *strips[] = {"", "/p"};
	struct weft_kv_list l;
	struct weft_etcd_watch_msg m;
	bool ok;
	int64_t rev;
	uint64_t leader;
	char buf[64];
	char *out;
	size_t n;

	for (size_t i = 0; i < ARRAY_SIZE(strips); i++) {
		if (weft_etcd_parse_range(body, size, strips[i], &l) == 0) {
			for (size_t j = 0; j < l.n; j++)
				if (!l.items[j].key || !l.items[j].value || l.items[j].value[l.items[j].value_len] != 0)
					__builtin_trap();
			weft_kv_list_clear(&l);
		}
		if (weft_etcd_parse_watch(body, size, strips[i], &m) == 0)
			weft_etcd_watch_msg_clear(&m);
	}
	weft_etcd_parse_header_rev(body, size, &rev);
	weft_etcd_parse_txn(body, size, &ok, &rev);
	weft_etcd_parse_status(body, size, &rev, &leader, buf, sizeof(buf));
	weft_etcd_parse_error(body, size, buf, sizeof(buf));
	/* The base64 decoder must round-trip whatever it accepts. */
	if (weft_etcd_b64_decode(body, size, &out, &n) == 0) {
		char *e = weft_etcd_b64_encode(out, n);
		if (strlen(e) != size || memcmp(e, body, size) != 0)
			__builtin_trap();
		free(e);
		free(out);
	}
	return 0;
}
