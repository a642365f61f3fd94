/* record.h - the on-disk record format of the embedded store (file:DIR).
 *
 * The log DIR/store.log is a sequence of records. The first is a SNAPSHOT
 * (the live keys as of revision S, S = 0 for a new store); every later one
 * is a TXN (the effects of one transaction, at revision S+1, S+2, ...).
 *
 * Every record, all integers little-endian:
 *
 *   off  size
 *     0     4  magic "WFR1"
 *     4     4  total length of the record in bytes, header included
 *     8     4  CRC32C of bytes [0, 8) followed by bytes [12, total length)
 *    12     1  type: 1 = SNAPSHOT, 2 = TXN
 *    13     1  flags: SNAPSHOT: bit 0 = a store id follows the header (the
 *              other bits zero); TXN: zero
 *    14     2  zero
 *    16     8  revision (SNAPSHOT: S; TXN: the transaction's revision)
 *    24     4  number of entries
 *    28     4  zero
 *    32    16  the store id, if flag bit 0 is set (a SNAPSHOT only)
 *    32/48     the entries, each:
 *     +0    1  op: 1 = PUT, 2 = DELETE (a SNAPSHOT holds PUTs only)
 *     +1    3  zero
 *     +4    4  key length (1..WEFT_STORE_KEY_MAX, the key has no NUL byte)
 *     +8    4  value length (0..WEFT_STORE_VALUE_MAX, 0 for DELETE)
 *    +12    4  zero
 *    +16    8  create revision (DELETE: 0)
 *    +24    8  mod revision (TXN: equals the record's revision)
 *    +32    8  version (DELETE: 0)
 *    +40       key bytes, then value bytes
 *
 * The encoding is canonical: every byte is either covered by a field that
 * the decoder checks or must be zero, so encode(decode(x)) == x. This is
 * what the fuzz target (store/fuzz-record.c) checks.
 *
 * Every function here is pure: no I/O, no global state.
 */
#ifndef WEFT_STORE_RECORD_H
#define WEFT_STORE_RECORD_H

#include "lib/util.h"

#define WEFT_RECORD_MAGIC 0x31524657u /* "WFR1" read as little-endian */
#define WEFT_RECORD_HEADER_SIZE 32
#define WEFT_RECORD_ENTRY_SIZE 40
/* The store id: random bytes chosen when a store is created and copied
 * into the snapshot of every compaction, so that a reader can tell a
 * compacted log from a different store put in its place. Logs written
 * before store ids have none (has_id false). */
#define WEFT_RECORD_ID_SIZE 16
#define WEFT_RECORD_FLAG_ID 0x01
/* The largest record accepted: a snapshot of every live key must fit. */
#define WEFT_RECORD_MAX ((size_t)1 << 30)

enum weft_record_type { WEFT_REC_SNAPSHOT = 1, WEFT_REC_TXN = 2 };
enum weft_record_op { WEFT_REC_PUT = 1, WEFT_REC_DELETE = 2 };

/* One entry. key and value point into the decoded buffer (not copied, not
 * NUL-terminated) or, for encoding, into the caller's memory. */
struct weft_record_entry {
	uint8_t op;
	const char *key;
	size_t key_len;
	const void *value;
	size_t value_len;
	int64_t create_rev;
	int64_t mod_rev;
	int64_t version;
};

struct weft_record {
	uint8_t type;
	int64_t rev;
	bool has_id; /* SNAPSHOT only: id holds the store id */
	uint8_t id[WEFT_RECORD_ID_SIZE];
	size_t n;
	struct weft_record_entry *entries; /* decode: malloc'ed, free with weft_record_clear() */
};

void weft_record_clear(struct weft_record *rec);

/* CRC32C (Castagnoli) of buf, continuing from crc (0 to start). */
uint32_t weft_crc32c(uint32_t crc, const void *buf, size_t len);
/* The same with the byte table alone (weft_crc32c uses SSE4.2 when the CPU
 * has it). */
uint32_t weft_crc32c_portable(uint32_t crc, const void *buf, size_t len);

/* Look at the start of a record: with at least WEFT_RECORD_HEADER_SIZE
 * bytes, check the magic and the length field. Returns 1 and sets *len to
 * the record's total length, 0 if fewer than a header's bytes were given,
 * or -EBADMSG (with *why set to a static description if why is not NULL). */
int weft_record_peek(const void *buf, size_t avail, size_t *len, const char **why);

/* Decode the record at the start of buf (avail bytes). Returns 1 with *rec
 * filled and *len the bytes it took, 0 if the record is not complete
 * within avail bytes (a torn or in-progress write), or -EBADMSG (*why
 * says why). Never reads outside [buf, buf + avail). The entries point
 * into buf. */
int weft_record_decode(const void *buf, size_t avail, struct weft_record *rec, size_t *len,
		       const char **why);

/* The size weft_record_encode() will produce for rec, or 0 if rec is too
 * large or invalid (a key or value out of range, a store id in a TXN). */
size_t weft_record_size(const struct weft_record *rec);

/* Append the encoding of rec to out. Returns 0, or -EINVAL if an entry is
 * invalid (see the format above), or -EFBIG if the record would exceed
 * WEFT_RECORD_MAX; out is unchanged on failure. */
int weft_record_encode(const struct weft_record *rec, struct weft_buf *out);

#endif
