/* fuzz-record.c - libFuzzer target for the embedded store's record decoder.
 *
 * Any bytes: decoding must not crash or read outside the input (the input
 * is copied into a buffer of exactly its size, so ASan catches over-reads),
 * and whatever decodes must encode back to exactly the bytes it came from.
 * Each input is decoded twice: as given (mostly stopped by the checksum),
 * and with the checksum fixed up, so that the fuzzer reaches the entry
 * decoding behind it. */
#include "store/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_one(const uint8_t *buf, size_t size)
{
	struct weft_record rec = {0};
	const char *why = NULL;
	size_t len = 0, peek_len = 0;
	int r;

	r = weft_record_peek(buf, size, &peek_len, &why);
	if (r < 0 && !why)
		abort();
	why = NULL;
	r = weft_record_decode(buf, size, &rec, &len, &why);
	if (r < 0 && !why)
		abort();
	if (r != 1)
		return;
	if (len > size || len != peek_len || weft_record_size(&rec) != len)
		abort();
	struct weft_buf b = {0};
	if (weft_record_encode(&rec, &b) != 0 || b.len != len || memcmp(b.data, buf, len) != 0)
		abort();
	weft_buf_free(&b);
	weft_record_clear(&rec);
	/* A strict prefix is incomplete, never an error: that is how a reader
	 * tells a write in progress from damage. */
	struct weft_record r2;
	size_t l2;
	if (weft_record_decode(buf, len - 1, &r2, &l2, NULL) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = wmalloc(size ? size : 1);

	if (size)
		memcpy(copy, data, size);
	check_one(copy, size);
	if (size >= WEFT_RECORD_HEADER_SIZE) {
		size_t l = (size_t)copy[4] | (size_t)copy[5] << 8 | (size_t)copy[6] << 16 | (size_t)copy[7] << 24;
		if (l >= WEFT_RECORD_HEADER_SIZE && l <= size) {
			uint32_t crc = weft_crc32c(weft_crc32c(0, copy, 8), copy + 12, l - 12);
			for (int i = 0; i < 4; i++)
				copy[8 + i] = (uint8_t)(crc >> (8 * i));
			check_one(copy, size);
		}
	}
	free(copy);
	return 0;
}
