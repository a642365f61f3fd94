/* fuzz-ipam-records.c - the IPAM record decoders on arbitrary bytes. The
 * first byte picks the decoder (block, range, handle, affinity); the rest
 * is the record. A record that decodes must survive an encode/decode
 * round trip unchanged. */
#include "ipam/ipam-records.h"
#include "lib/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	char *err = NULL;

	if (!init) {
		weft_json_init();
		init = true;
	}
	if (size < 1)
		return 0;
	const char *json = (const char *)data + 1;
	size_t len = size - 1;

	switch (data[0] % 4) {
	case 0:
	case 1: {
		enum ipam_rec_type t = data[0] % 4 == 0 ? IPAM_REC_BLOCK : IPAM_REC_RANGE;
		struct ipam_rec r = {0}, r2 = {0};
		if (ipam_rec_decode(t, NULL, json, len, &r, &err) == 0) {
			char *enc = ipam_rec_encode(&r);
			_cleanup_free_ char *key = t == IPAM_REC_BLOCK ? ipam_block_key(&r.cidr)
								     : ipam_range_key(r.network, &r.cidr);
			if (ipam_rec_decode(t, key, enc, strlen(enc), &r2, NULL) != 0 || r2.n != r.n)
				abort();
			char *enc2 = ipam_rec_encode(&r2);
			if (strcmp(enc, enc2) != 0)
				abort();
			free(enc);
			free(enc2);
		}
		ipam_rec_clear(&r);
		ipam_rec_clear(&r2);
		break;
	}
	case 2: {
		struct ipam_handle_rec h = {0}, h2 = {0};
		if (ipam_handle_decode(NULL, json, len, &h, &err) == 0) {
			char *enc = ipam_handle_encode(&h);
			_cleanup_free_ char *key = ipam_handle_key(h.handle);
			if (ipam_handle_decode(key, enc, strlen(enc), &h2, NULL) != 0 || h2.n != h.n)
				abort();
			free(enc);
		}
		ipam_handle_rec_clear(&h);
		ipam_handle_rec_clear(&h2);
		break;
	}
	default: {
		char *node = NULL;
		struct weft_cidr c;
		if (ipam_affinity_decode(NULL, json, len, &node, &c, &err) == 0)
			free(node);
		break;
	}
	}
	free(err);
	return 0;
}
