/* test-store-file.c - behaviour only the embedded backend (file:DIR) has:
 * the record codec, torn tails, damage in the middle of the log,
 * compaction under live watchers, reopening, the polling fallback. */
#include "lib/test.h"
#include "store/record.h"
#include "store/store.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char g_tmp[] = "/tmp/weft-test-store-file-XXXXXX";

static char *dir_for(const char *name)
{
	return wasprintf("%s/%s", g_tmp, name);
}

static struct weft_store *open_ok(const char *url)
{
	struct weft_store *s = NULL;
	char *err = NULL;
	int r = weft_store_open(url, &s, &err);
	if (r < 0)
		fprintf(stderr, "open %s: %s\n", url, err);
	CHECK_EQ_INT(r, 0);
	free(err);
	return s;
}

static int64_t put(struct weft_store *s, const char *key, const char *value)
{
	int64_t rev = -1;
	int r = weft_store_put(s, key, value, strlen(value), &rev);
	if (r < 0)
		fprintf(stderr, "put %s: %s\n", key, weft_store_errmsg(s));
	CHECK_EQ_INT(r, 0);
	return rev;
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static char *read_all(const char *path, size_t *len)
{
	struct weft_buf b = {0};
	char chunk[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	CHECK(fd >= 0);
	while (fd >= 0 && (n = read(fd, chunk, sizeof(chunk))) > 0)
		weft_buf_append(&b, chunk, (size_t)n);
	if (fd >= 0)
		close(fd);
	*len = b.len;
	return weft_buf_steal(&b);
}

static void write_all(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

static void expect_value(struct weft_store *s, const char *key, const char *value)
{
	struct weft_kv kv = {0};
	int r = weft_store_get(s, key, &kv);
	if (!value) {
		CHECK_EQ_INT(r, -ENOENT);
		return;
	}
	CHECK_EQ_INT(r, 0);
	if (r == 0)
		CHECK_STREQ(kv.value, value);
	weft_kv_clear(&kv);
}

static int64_t revision(struct weft_store *s)
{
	int64_t rev = -1;
	CHECK_EQ_INT(weft_store_revision(s, &rev), 0);
	return rev;
}

/* Set the CRC field of the record at p (len bytes) to match its bytes. */
static void fix_crc(char *p, size_t len)
{
	uint32_t crc = weft_crc32c(weft_crc32c(0, p, 8), p + 12, len - 12);

	for (int i = 0; i < 4; i++)
		p[8 + i] = (char)(crc >> (8 * i));
}

static void test_record_codec(void)
{
	struct weft_record_entry e[] = {
		{WEFT_REC_PUT, "a/b", 3, "v\0x", 3, 2, 7, 3},
		{WEFT_REC_DELETE, "gone", 4, NULL, 0, 0, 7, 0},
		{WEFT_REC_PUT, "empty", 5, "", 0, 7, 7, 1},
	};
	struct weft_record rec = {.type = WEFT_REC_TXN, .rev = 7, .n = 3, .entries = e}, d = {0};
	struct weft_buf b = {0}, b2 = {0};
	const char *why = NULL;
	size_t len = 0;

	CHECK_EQ_INT(weft_record_encode(&rec, &b), 0);
	CHECK_EQ_INT(b.len, weft_record_size(&rec));
	CHECK_EQ_INT(b.len, 32 + 3 * 40 + 3 + 3 + 4 + 5);
	CHECK_EQ_INT(weft_record_decode(b.data, b.len, &d, &len, &why), 1);
	CHECK_EQ_INT(len, b.len);
	CHECK_EQ_INT(d.n, 3);
	CHECK_EQ_INT(d.rev, 7);
	if (d.n == 3) {
		CHECK(d.entries[0].value_len == 3 && memcmp(d.entries[0].value, "v\0x", 3) == 0);
		CHECK_EQ_INT(d.entries[0].create_rev, 2);
		CHECK_EQ_INT(d.entries[0].version, 3);
		CHECK_EQ_INT(d.entries[1].op, WEFT_REC_DELETE);
	}
	CHECK_EQ_INT(weft_record_encode(&d, &b2), 0);
	CHECK(b2.len == b.len && memcmp(b.data, b2.data, b.len) == 0);
	weft_record_clear(&d);

	/* Every prefix is "incomplete", with trailing bytes it still decodes. */
	for (size_t i = 0; i < b.len; i++)
		CHECK_EQ_INT(weft_record_decode(b.data, i, &d, &len, NULL), 0);
	weft_buf_append(&b, "junk", 4);
	CHECK_EQ_INT(weft_record_decode(b.data, b.len, &d, &len, NULL), 1);
	CHECK_EQ_INT(len, b.len - 4);
	weft_record_clear(&d);

	/* Any flipped bit is caught. */
	for (size_t i = 0; i < len; i++) {
		b.data[i] ^= 0x10;
		CHECK(weft_record_decode(b.data, b.len, &d, &len, &why) != 1);
		b.data[i] ^= 0x10;
	}

	/* The encoder refuses what the decoder would. */
	{
		struct weft_record_entry bad = {WEFT_REC_PUT, "k", 1, "v", 1, 0, 7, 1};
		struct weft_record r2 = {.type = WEFT_REC_TXN, .rev = 7, .n = 1, .entries = &bad};
		CHECK_EQ_INT(weft_record_encode(&r2, &b2), -EINVAL); /* create_rev 0 */
		bad.create_rev = 1;
		bad.mod_rev = 6;
		CHECK_EQ_INT(weft_record_encode(&r2, &b2), -EINVAL); /* mod_rev != rev */
		bad.mod_rev = 7;
		bad.key = "k\0";
		bad.key_len = 2;
		CHECK_EQ_INT(weft_record_encode(&r2, &b2), -EINVAL); /* NUL in key */
		r2.type = 9;
		CHECK_EQ_INT(weft_record_encode(&r2, &b2), -EINVAL);
	}
	/* A snapshot with a store id: flag bit 0 of byte 13, the 16 bytes of
	 * the id after the header, then the entries. */
	{
		struct weft_record_entry se = {WEFT_REC_PUT, "k", 1, "v", 1, 3, 5, 2};
		struct weft_record snap = {.type = WEFT_REC_SNAPSHOT, .rev = 9, .n = 1, .entries = &se, .has_id = true};
		struct weft_buf sb = {0}, sb2 = {0};

		memcpy(snap.id, "0123456789abcdef", 16);
		CHECK_EQ_INT(weft_record_encode(&snap, &sb), 0);
		CHECK_EQ_INT(sb.len, 32 + 16 + 40 + 2);
		CHECK_EQ_INT(weft_record_size(&snap), sb.len);
		CHECK_EQ_INT(sb.data[13], 1);
		CHECK(memcmp(sb.data + 32, "0123456789abcdef", 16) == 0);
		CHECK_EQ_INT(weft_record_decode(sb.data, sb.len, &d, &len, &why), 1);
		CHECK(d.has_id && memcmp(d.id, "0123456789abcdef", 16) == 0);
		CHECK_EQ_INT(d.n, 1);
		if (d.n == 1)
			CHECK(d.entries[0].key_len == 1 && d.entries[0].key[0] == 'k' && d.entries[0].version == 2);
		CHECK_EQ_INT(weft_record_encode(&d, &sb2), 0);
		CHECK(sb2.len == sb.len && memcmp(sb.data, sb2.data, sb.len) == 0);
		weft_record_clear(&d);
		for (size_t i = 0; i < sb.len; i++)
			CHECK_EQ_INT(weft_record_decode(sb.data, i, &d, &len, NULL), 0);
		/* Other flag bits, and an id in a TXN, are refused both ways. */
		sb.data[13] = 3;
		fix_crc(sb.data, sb.len);
		why = NULL;
		CHECK_EQ_INT(weft_record_decode(sb.data, sb.len, &d, &len, &why), -EBADMSG);
		CHECK(why && strstr(why, "reserved"));
		sb.data[13] = 1;
		sb.data[12] = WEFT_REC_TXN;
		fix_crc(sb.data, sb.len);
		why = NULL;
		CHECK_EQ_INT(weft_record_decode(sb.data, sb.len, &d, &len, &why), -EBADMSG);
		CHECK(why && strstr(why, "store id"));
		snap.type = WEFT_REC_TXN;
		se.mod_rev = 9;
		CHECK_EQ_INT(weft_record_encode(&snap, &sb2), -EINVAL);
		CHECK_EQ_INT(weft_record_size(&snap), 0);
		/* The id cut short by the record's length. */
		snap.type = WEFT_REC_SNAPSHOT;
		snap.n = 0;
		sb.len = 0;
		CHECK_EQ_INT(weft_record_encode(&snap, &sb), 0);
		CHECK_EQ_INT(sb.len, 48);
		sb.data[4] = 40;
		fix_crc(sb.data, 40);
		why = NULL;
		CHECK_EQ_INT(weft_record_decode(sb.data, 40, &d, &len, &why), -EBADMSG);
		CHECK(why && strstr(why, "store id"));
		/* Without an id, as before store ids. */
		snap.has_id = false;
		sb.len = 0;
		CHECK_EQ_INT(weft_record_encode(&snap, &sb), 0);
		CHECK_EQ_INT(sb.len, 32);
		CHECK_EQ_INT(sb.data[13], 0);
		CHECK_EQ_INT(weft_record_decode(sb.data, sb.len, &d, &len, &why), 1);
		CHECK(!d.has_id);
		weft_record_clear(&d);
		weft_buf_free(&sb);
		weft_buf_free(&sb2);
	}
	/* The CRC32C check value, and the CPU's instruction (when it has
	 * SSE4.2) against the table: every length 0..64 at every offset 0..7,
	 * continued from earlier values, and a long buffer in pieces. */
	CHECK_EQ_INT(weft_crc32c(0, "123456789", 9), 0xe3069283);
	CHECK_EQ_INT(weft_crc32c_portable(0, "123456789", 9), 0xe3069283);
	{
		static uint8_t data[4096 + 8];
		uint32_t x = 12345, a = 0, c = 0;
		int bad = 0;

		for (size_t i = 0; i < sizeof(data); i++)
			data[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
		for (size_t off = 0; off < 8; off++)
			for (size_t n = 0; n <= 64; n++) {
				a = weft_crc32c(a, data + off, n);
				c = weft_crc32c_portable(c, data + off, n);
				bad += a != c;
			}
		CHECK_EQ_INT(bad, 0);
		a = c = 0;
		for (size_t off = 0; off < 4096; off += 1000) {
			a = weft_crc32c(a, data + off + 3, off + 1000 > 4096 ? 4096 - off : 1000);
			c = weft_crc32c_portable(c, data + off + 3, off + 1000 > 4096 ? 4096 - off : 1000);
		}
		CHECK_EQ_INT(a, c);
		CHECK_EQ_INT(weft_crc32c(0, data, 4096), weft_crc32c_portable(0, data, 4096));
	}
	weft_buf_free(&b);
	weft_buf_free(&b2);
}

/* Cut the log anywhere inside its last record: the store opens, shows the
 * state before that record, and the next write cuts the torn bytes. */
static void test_torn_tail(void)
{
	_cleanup_free_ char *dir = dir_for("torn"), *url = wasprintf("file:%s", dir);
	_cleanup_free_ char *log = wasprintf("%s/store.log", dir);
	_cleanup_free_ char *full = NULL;
	struct weft_store *s = open_ok(url);
	size_t full_len;
	off_t before;
	int64_t prev_rev;

	if (!s)
		return;
	put(s, "/a", "1");
	put(s, "/b", "2");
	prev_rev = put(s, "/c", "3");
	before = file_size(log);
	put(s, "/a", "new value of a");
	weft_store_close(s);
	full = read_all(log, &full_len);
	CHECK(before > 0 && (size_t)before < full_len);

	for (size_t cut = (size_t)before + 1; cut < full_len; cut++) {
		write_all(log, full, cut);
		s = open_ok(url);
		if (!s)
			continue;
		expect_value(s, "/a", "1");
		CHECK_EQ_INT(revision(s), prev_rev);
		CHECK_EQ_INT(weft_store_check(s), 0);
		/* A write under the lock removes the tail, then appends. */
		CHECK_EQ_INT(put(s, "/d", "4"), prev_rev + 1);
		CHECK_EQ_INT(weft_store_check(s), 0);
		weft_store_close(s);
		s = open_ok(url);
		if (s) {
			expect_value(s, "/a", "1");
			expect_value(s, "/d", "4");
			CHECK_EQ_INT(revision(s), prev_rev + 1);
			weft_store_close(s);
		}
	}

	/* Garbage after the last record (what a power loss can leave): zeros,
	 * random bytes, and bytes that start like a record. */
	for (int kind = 0; kind < 3; kind++) {
		struct weft_buf b = {0};
		weft_buf_append(&b, full, full_len);
		for (int i = 0; i < 200; i++) {
			char c = kind == 0 ? 0 : (char)(rand() & 0xff);
			weft_buf_append(&b, &c, 1);
		}
		if (kind == 2)
			memcpy(b.data + full_len, "WFR1\x40\x00\x00\x00", 8);
		write_all(log, b.data, b.len);
		weft_buf_free(&b);
		s = open_ok(url);
		if (!s)
			continue;
		expect_value(s, "/a", "new value of a");
		CHECK_EQ_INT(weft_store_check(s), 0);
		CHECK_EQ_INT(put(s, "/e", "5"), prev_rev + 2);
		weft_store_close(s);
		s = open_ok(url);
		if (s) {
			expect_value(s, "/e", "5");
			CHECK_EQ_INT(weft_store_check(s), 0);
			weft_store_close(s);
		}
	}
}

/* A watcher reading while a dead writer's torn tail is replaced. */
static void test_watch_across_torn_tail(void)
{
	_cleanup_free_ char *dir = dir_for("watchtorn"), *url = wasprintf("file:%s", dir);
	_cleanup_free_ char *log = wasprintf("%s/store.log", dir);
	struct weft_store *s = open_ok(url);
	struct weft_watch *w = NULL;
	struct weft_event ev = {0};
	int64_t r1, r2;
	int fd;

	if (!s)
		return;
	CHECK_EQ_INT(weft_store_watch(s, "", 0, &w), 0);
	r1 = put(s, "/x", "1");
	CHECK_EQ_INT(weft_watch_wait(w, &ev, 1000), 1);
	CHECK_EQ_INT(ev.kv.mod_rev, r1);
	weft_event_clear(&ev);
	/* A dead writer's half record. */
	fd = open(log, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	CHECK(write(fd, "WFR1\x90\x00\x00\x00garbage", 15) == 15);
	close(fd);
	CHECK_EQ_INT(weft_watch_wait(w, &ev, 100), 0);
	r2 = put(s, "/y", "2");
	CHECK_EQ_INT(r2, r1 + 1);
	CHECK_EQ_INT(weft_watch_wait(w, &ev, 1000), 1);
	CHECK_STREQ(ev.kv.key, "/y");
	CHECK_EQ_INT(ev.kv.mod_rev, r2);
	weft_event_clear(&ev);
	weft_watch_free(w);
	weft_store_close(s);
}

static void test_damaged_middle(void)
{
	_cleanup_free_ char *dir = dir_for("damage"), *url = wasprintf("file:%s", dir);
	_cleanup_free_ char *log = wasprintf("%s/store.log", dir);
	_cleanup_free_ char *full = NULL;
	struct weft_store *s = open_ok(url), *s2 = NULL, *early = NULL;
	off_t offs[6];
	size_t full_len;
	char *err = NULL, want[64];

	if (!s)
		return;
	early = open_ok(url); /* caught up to revision 0 only */
	for (int i = 0; i < 6; i++) {
		offs[i] = file_size(log);
		put(s, "/k", i % 2 ? "odd" : "even");
	}
	full = read_all(log, &full_len);

	/* A flipped byte in the value of record 2 (of 6). */
	full[offs[2] + 75] ^= 1;
	write_all(log, full, full_len);
	CHECK_EQ_INT(weft_store_open(url, &s2, &err), -EBADMSG);
	snprintf(want, sizeof(want), "offset %lld", (long long)offs[2]);
	CHECK(err && strstr(err, want) && strstr(err, "checksum"));
	fprintf(stderr, "  damaged: %s\n", err);
	free(err);
	CHECK_EQ_INT(weft_store_check(s), -EBADMSG);
	CHECK(strstr(weft_store_errmsg(s), want) != NULL);
	/* A writer that has not read past the damage refuses to write and
	 * leaves the file alone (no "torn tail" cut of valid records). */
	CHECK_EQ_INT(weft_store_put(early, "/z", "z", 1, NULL), -EBADMSG);
	CHECK_EQ_INT(file_size(log), (off_t)full_len);
	full[offs[2] + 75] ^= 1;

	/* A length field made huge: still damage, not a tail. */
	full[offs[3] + 6] = 0x30;
	write_all(log, full, full_len);
	err = NULL;
	CHECK_EQ_INT(weft_store_open(url, &s2, &err), -EBADMSG);
	snprintf(want, sizeof(want), "offset %lld", (long long)offs[3]);
	CHECK(err && strstr(err, want));
	free(err);
	CHECK_EQ_INT(weft_store_put(early, "/z", "z", 1, NULL), -EBADMSG);
	CHECK_EQ_INT(file_size(log), (off_t)full_len);
	full[offs[3] + 6] = 0;

	/* Bad magic in the middle. */
	full[offs[1]] = 'X';
	write_all(log, full, full_len);
	err = NULL;
	CHECK_EQ_INT(weft_store_open(url, &s2, &err), -EBADMSG);
	free(err);
	full[offs[1]] = 'W';

	/* The snapshot record damaged, or the log empty. */
	full[20] ^= 1;
	write_all(log, full, full_len);
	err = NULL;
	CHECK_EQ_INT(weft_store_open(url, &s2, &err), -EBADMSG);
	CHECK(err && strstr(err, "offset 0"));
	free(err);
	full[20] ^= 1;
	write_all(log, full, 0);
	err = NULL;
	CHECK_EQ_INT(weft_store_open(url, &s2, &err), -EBADMSG);
	free(err);

	/* Repaired: all is well again. */
	write_all(log, full, full_len);
	CHECK_EQ_INT(weft_store_check(s), 0);
	s2 = open_ok(url);
	if (s2) {
		expect_value(s2, "/k", "odd");
		CHECK_EQ_INT(revision(s2), 6);
		weft_store_close(s2);
	}
	weft_store_close(early);
	weft_store_close(s);
}

/* Drain a watch: append every event's revision to revs. Returns the
 * watch's final status (0 or a negative errno). */
static int drain(struct weft_watch *w, int64_t *revs, size_t *n, size_t max)
{
	for (;;) {
		struct weft_event ev = {0};
		int r = weft_watch_next(w, &ev);
		if (r <= 0)
			return r;
		if (*n < max)
			revs[(*n)++] = ev.kv.mod_rev;
		weft_event_clear(&ev);
	}
}

static void test_compaction(void)
{
	enum { N = 600, KEYS = 10 };
	_cleanup_free_ char *dir = dir_for("compact");
	_cleanup_free_ char *url = wasprintf("file:%s?compact_bytes=16384&keep_revs=10", dir);
	_cleanup_free_ char *log = wasprintf("%s/store.log", dir);
	struct weft_store *s = open_ok(url), *s2 = open_ok(url);
	struct weft_watch *live = NULL, *lagging = NULL, *w = NULL;
	static int64_t live_revs[N + 10], lag_revs[N + 10];
	size_t nlive = 0, nlag = 0;
	char model[KEYS][128] = {{0}};
	struct stat st0, st1;
	int64_t head = 0;
	int r, lag_status;

	if (!s || !s2)
		return;
	CHECK_EQ_INT(weft_store_watch(s, "/c/", 0, &live), 0);
	CHECK_EQ_INT(weft_store_watch(s2, "/c/", 1, &lagging), 0);
	CHECK_EQ_INT(stat(log, &st0), 0);
	for (int i = 0; i < N; i++) {
		char key[32], value[128];
		int k = rand() % KEYS;
		struct weft_store *h = i % 3 ? s : s2; /* both handles write */
		snprintf(key, sizeof(key), "/c/%d", k);
		if (i % 7 == 6 && model[k][0]) {
			CHECK_EQ_INT(weft_store_delete(h, key, 0, &head), 0);
			model[k][0] = 0;
		} else {
			snprintf(value, sizeof(value), "value %d of key %d, padded to be a bit longer: %0*d", i, k,
				 40 + rand() % 40, i);
			CHECK_EQ_INT(weft_store_put(h, key, value, strlen(value), &head), 0);
			snprintf(model[k], sizeof(model[k]), "%s", value);
		}
		CHECK_EQ_INT(head, i + 1);
		if (i % 5 == 0)
			CHECK_EQ_INT(drain(live, live_revs, &nlive, N + 10), 0);
	}
	CHECK_EQ_INT(drain(live, live_revs, &nlive, N + 10), 0);
	CHECK_EQ_INT(stat(log, &st1), 0);
	CHECK(st0.st_ino != st1.st_ino); /* it was compacted */
	CHECK(st1.st_size < 16384 + 4096);
	fprintf(stderr, "  after %d writes the log is %lld bytes\n", N, (long long)st1.st_size);

	/* The live watch saw every revision, in order. */
	CHECK_EQ_INT(nlive, N);
	for (size_t i = 0; i < nlive; i++)
		CHECK_EQ_INT(live_revs[i], (int64_t)i + 1);
	/* The lagging one delivers what its first file held, without gaps,
	 * then reports the compaction. */
	lag_status = drain(lagging, lag_revs, &nlag, N + 10);
	CHECK_EQ_INT(lag_status, -ESTALE);
	CHECK(nlag > 0 && nlag < N);
	for (size_t i = 0; i < nlag; i++)
		CHECK_EQ_INT(lag_revs[i], (int64_t)i + 1);
	CHECK_EQ_INT(weft_watch_next(lagging, &(struct weft_event){0}), -ESTALE); /* sticky */
	weft_watch_free(lagging);

	/* Both handles read the compacted log right. */
	for (int k = 0; k < KEYS; k++) {
		char key[32];
		snprintf(key, sizeof(key), "/c/%d", k);
		expect_value(s, key, model[k][0] ? model[k] : NULL);
		expect_value(s2, key, model[k][0] ? model[k] : NULL);
	}
	CHECK_EQ_INT(revision(s2), N);

	/* Watches from revisions: compacted ones are refused, recent ones work. */
	CHECK_EQ_INT(weft_store_watch(s, "/c/", 1, &w), -ESTALE);
	CHECK(strstr(weft_store_errmsg(s), "compacted") != NULL);
	w = NULL;
	CHECK_EQ_INT(weft_store_watch(s, "/c/", N - 9, &w), 0);
	weft_watch_free(w);
	weft_watch_free(live);
	CHECK_EQ_INT(weft_store_check(s), 0);
	weft_store_close(s);
	weft_store_close(s2);

	/* Reopen after compaction. */
	s = open_ok(url);
	if (!s)
		return;
	CHECK_EQ_INT(revision(s), N);
	CHECK_EQ_INT(weft_store_check(s), 0);
	for (int k = 0; k < KEYS; k++) {
		char key[32];
		snprintf(key, sizeof(key), "/c/%d", k);
		expect_value(s, key, model[k][0] ? model[k] : NULL);
	}
	w = NULL;
	CHECK_EQ_INT(weft_store_watch(s, "/c/", N - 9, &w), 0);
	if (w) {
		nlag = 0;
		r = drain(w, lag_revs, &nlag, N + 10);
		CHECK_EQ_INT(r, 0);
		CHECK_EQ_INT(nlag, 10);
		for (size_t i = 0; i < nlag; i++)
			CHECK_EQ_INT(lag_revs[i], N - 9 + (int64_t)i);
		weft_watch_free(w);
	}
	CHECK_EQ_INT(put(s, "/c/after", "x"), N + 1);
	weft_store_close(s);
}

/* compact_bytes=0 turns compaction off. */
static void test_no_compaction(void)
{
	_cleanup_free_ char *dir = dir_for("nocompact");
	_cleanup_free_ char *url = wasprintf("file:%s?compact_bytes=0", dir);
	struct weft_store *s = open_ok(url);
	struct weft_watch *w = NULL;

	if (!s)
		return;
	for (int i = 0; i < 300; i++)
		put(s, "/k", "a value that is long enough to make the log grow past the threshold quickly");
	CHECK_EQ_INT(weft_store_watch(s, "", 1, &w), 0);
	weft_watch_free(w);
	weft_store_close(s);
}

/* The timer fallback, with a write from another process. */
static void test_poll_fallback(void)
{
	_cleanup_free_ char *dir = dir_for("poll"), *url = wasprintf("file:%s?poll_ms=20", dir);
	struct weft_store *s = open_ok(url);
	struct weft_watch *w = NULL;
	struct weft_event ev = {0};
	int64_t t0;
	pid_t pid;
	int status = 0;

	if (!s)
		return;
	CHECK_EQ_INT(weft_store_watch(s, "/p/", 0, &w), 0);
	if (!w)
		return;
	pid = fork();
	if (pid == 0) {
		struct weft_store *c = NULL;
		if (weft_store_open(url, &c, NULL) < 0 || weft_store_put(c, "/p/k", "v", 1, NULL) < 0)
			_exit(1);
		_exit(0);
	}
	t0 = weft_now_ms();
	CHECK_EQ_INT(weft_watch_wait(w, &ev, 2000), 1);
	CHECK(weft_now_ms() - t0 < 1000);
	CHECK_STREQ(ev.kv.key, "/p/k");
	weft_event_clear(&ev);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	weft_watch_free(w);
	weft_store_close(s);
}

/* Two processes doing compare-and-swap increments of one key, each a
 * handle opened before they start; n each. Returns the acknowledged
 * count of both (through pipes). */
static int cas_increments(struct weft_store *x, int n)
{
	int acked = 0;

	for (int i = 0; i < n; i++) {
		struct weft_kv kv = {0};
		int64_t mod = 0;
		long v = 0;
		char b[32];
		int r = weft_store_get(x, "/c", &kv);

		if (r == 0) {
			v = atol(kv.value);
			mod = kv.mod_rev;
			weft_kv_clear(&kv);
		} else if (r != -ENOENT) {
			return -1;
		}
		snprintf(b, sizeof(b), "%ld", v + 1);
		r = weft_store_cas(x, "/c", b, strlen(b), mod, NULL);
		if (r == 0)
			acked++;
		else if (r != -ECANCELED)
			return -1;
	}
	return acked;
}

/* DIR/store.lock removed while a process has the store open (taken for a
 * stale lock): the next process creates a new one. Writers must still
 * exclude each other: every acknowledged increment is in the count. */
static void test_lock_file_removed(void)
{
	_cleanup_free_ char *d = dir_for("lockrm"), *url = wasprintf("file:%s", d),
			   *lk = wasprintf("%s/store.lock", d);
	struct weft_store *s = open_ok(url), *a = NULL, *b = NULL;
	int res[2][2], go[2], acked = 0, status;
	pid_t pid[2];

	if (!s)
		return;
	CHECK_EQ_INT(pipe(go), 0);
	CHECK_EQ_INT(weft_store_open(url, &a, NULL), 0);
	CHECK_EQ_INT(unlink(lk), 0);
	CHECK_EQ_INT(weft_store_open(url, &b, NULL), 0);
	for (int k = 0; k < 2; k++) {
		CHECK_EQ_INT(pipe(res[k]), 0);
		pid[k] = fork();
		if (pid[k] == 0) {
			char c;
			int n;

			if (read(go[0], &c, 1) != 1)
				_exit(1);
			n = cas_increments(k ? b : a, 1000);
			_exit(write(res[k][1], &n, sizeof(n)) == sizeof(n) ? 0 : 1);
		}
	}
	CHECK_EQ_INT(write(go[1], "xx", 2), 2);
	for (int k = 0; k < 2; k++) {
		int n = -1;

		CHECK_EQ_INT(read(res[k][0], &n, sizeof(n)), (int)sizeof(n));
		CHECK(n > 0);
		acked += n;
		waitpid(pid[k], &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		close(res[k][0]);
		close(res[k][1]);
	}
	close(go[0]);
	close(go[1]);
	weft_store_close(a);
	weft_store_close(b);
	weft_store_close(s);
	s = open_ok(url);
	if (s) {
		struct weft_kv kv = {0};

		CHECK_EQ_INT(weft_store_get(s, "/c", &kv), 0);
		CHECK_EQ_INT(atoi(kv.value ? kv.value : "0"), acked);
		CHECK_EQ_INT((int)kv.version, acked);
		weft_kv_clear(&kv);
		weft_store_close(s);
	}
}

/* The first size bytes of DIR/store.log into h: how many were read, or -1. */
static ssize_t log_head(const char *dir, uint8_t *h, size_t size)
{
	_cleanup_free_ char *log = wasprintf("%s/store.log", dir);
	int fd = open(log, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, h, size) : -1;

	if (fd >= 0)
		close(fd);
	return n;
}

/* The store id in the header of DIR/store.log: 1 and *id, 0 for a log
 * without one, -1 if it cannot be read. */
static int log_id(const char *dir, uint8_t *id)
{
	uint8_t h[48];
	ssize_t n = log_head(dir, h, sizeof(h));

	if (n < 32)
		return -1;
	if (!(h[13] & 1))
		return 0;
	if (n < 48)
		return -1;
	memcpy(id, h + 32, 16);
	return 1;
}

/* The revision of the snapshot that starts DIR/store.log (> 0 once
 * compacted), or -1. */
static int64_t log_snap_rev(const char *dir)
{
	uint8_t h[32];
	int64_t rev = 0;

	if (log_head(dir, h, sizeof(h)) < 32)
		return -1;
	for (int i = 7; i >= 0; i--)
		rev = rev << 8 | h[16 + i];
	return rev;
}

/* Put DIR/store.log in place as a weft from before store ids made it: a
 * snapshot at revision 0 without an id, renamed into place. */
static void write_old_log(const char *dir)
{
	struct weft_record rec = {.type = WEFT_REC_SNAPSHOT, .rev = 0};
	struct weft_buf b = {0};
	_cleanup_free_ char *tmp = wasprintf("%s/old.tmp", dir), *log = wasprintf("%s/store.log", dir);

	(void)mkdir(dir, 0700);
	CHECK_EQ_INT(weft_record_encode(&rec, &b), 0);
	write_all(tmp, b.data, b.len);
	CHECK_EQ_INT(rename(tmp, log), 0);
	weft_buf_free(&b);
}

static void puts_n(struct weft_store *s, const char *key, int n)
{
	for (int i = 0; i < n; i++)
		put(s, key, "v");
}

/* A handle a (with a watch w on "/x/") whose store was replaced: the watch
 * ends with -ESTALE, and every operation fails with a message that says
 * so and why, and writes nothing (the new store, b, stays at its
 * revision). */
static void expect_replaced(struct weft_store *a, struct weft_watch *w, struct weft_store *b, const char *why)
{
	struct weft_event ev = {0};
	struct weft_kv kv = {0};
	struct weft_kv_list l = {0};
	struct weft_watch *w2 = NULL;
	int64_t rev = -1, brev = revision(b);
	struct pollfd p = {.fd = weft_watch_fd(w), .events = POLLIN};
	const char *msg;

	/* As an event loop sees it: the fd wakes up, next() says why. */
	CHECK_EQ_INT(poll(&p, 1, 3000), 1);
	CHECK_EQ_INT(weft_watch_next(w, &ev), -ESTALE);
	weft_event_clear(&ev);
	CHECK_EQ_INT(weft_watch_next(w, &ev), -ESTALE); /* sticky */
	CHECK_EQ_INT(weft_store_revision(a, &rev), -ESTALE);
	CHECK_EQ_INT(rev, -1);
	CHECK(weft_store_replaced(a));
	msg = weft_store_errmsg(a);
	fprintf(stderr, "  %s\n", msg);
	CHECK(strstr(msg, "was replaced") && strstr(msg, why) && strstr(msg, "reopen it"));
	CHECK_EQ_INT(weft_store_get(a, "/x/k", &kv), -ESTALE);
	CHECK_EQ_INT(weft_store_list(a, "/x/", &l), -ESTALE);
	CHECK_EQ_INT(weft_store_put(a, "/x/stale", "v", 1, NULL), -ESTALE);
	CHECK_EQ_INT(weft_store_check(a), -ESTALE);
	CHECK_EQ_INT(weft_store_watch(a, "/x/", 0, &w2), -ESTALE);
	CHECK(weft_store_replaced(a));
	CHECK_EQ_INT(revision(b), brev);
	expect_value(b, "/x/stale", NULL);
}

/* After weft_store_reopen(), a works on the new store b: same revision,
 * a write through it seen by b, a new watch sees b's writes. */
static void expect_reopened(struct weft_store *a, struct weft_store *b)
{
	struct weft_watch *w = NULL;
	struct weft_event ev = {0};
	int64_t rev;

	CHECK_EQ_INT(weft_store_reopen(a), 0);
	CHECK(!weft_store_replaced(a));
	CHECK_EQ_INT(revision(a), revision(b));
	rev = put(a, "/x/after", "a");
	expect_value(b, "/x/after", "a");
	CHECK_EQ_INT(weft_store_watch(a, "/x/", 0, &w), 0);
	if (!w)
		return;
	CHECK_EQ_INT(put(b, "/x/from-b", "b"), rev + 1);
	CHECK_EQ_INT(weft_watch_wait(w, &ev, 2000), 1);
	CHECK_STREQ(ev.kv.key ? ev.kv.key : "", "/x/from-b");
	weft_event_clear(&ev);
	weft_watch_free(w);
}

/* The store under a live handle and watch is replaced by another one: its
 * files removed and a new store made there (fewer revisions than the old
 * one, or more), or DIR removed and made again. The handle must not take
 * the new store for a compaction of its own (its revision would go back,
 * its watch skip events and its writes land in another store). */
static void test_store_replaced(void)
{
	static const char *const how[] = {"files", "files-ahead", "dir"};

	for (size_t k = 0; k < ARRAY_SIZE(how); k++) {
		_cleanup_free_ char *d = dir_for(how[k]), *url = wasprintf("file:%s", d),
				   *log = wasprintf("%s/store.log", d), *lk = wasprintf("%s/store.lock", d),
				   *rm = wasprintf("rm -rf '%s'", d);
		struct weft_store *a = open_ok(url), *b = NULL;
		struct weft_watch *w = NULL;
		struct weft_event ev = {0};
		uint8_t id1[16], id2[16];

		fprintf(stderr, "  %s\n", how[k]);
		if (!a)
			return;
		CHECK_EQ_INT(log_id(d, id1), 1);
		puts_n(a, "/x/k", 5);
		CHECK_EQ_INT(weft_store_watch(a, "/x/", 0, &w), 0);
		CHECK_EQ_INT(put(a, "/x/k", "seen"), 6);
		CHECK_EQ_INT(weft_watch_wait(w, &ev, 2000), 1);
		weft_event_clear(&ev);

		if (streq(how[k], "dir")) {
			CHECK_EQ_INT(system(rm), 0);
		} else {
			CHECK_EQ_INT(unlink(log), 0);
			CHECK_EQ_INT(unlink(lk), 0);
		}
		/* The watch wakes up (DIR's removal) with no store there yet. */
		CHECK_EQ_INT(weft_watch_wait(w, &ev, 200), 0);
		b = open_ok(url);
		if (!b)
			return;
		CHECK_EQ_INT(log_id(d, id2), 1);
		CHECK(memcmp(id1, id2, 16) != 0);
		puts_n(b, "/x/new", streq(how[k], "files-ahead") ? 9 : 3);
		expect_replaced(a, w, b, "a different store id");
		weft_watch_free(w);
		expect_reopened(a, b);
		weft_store_close(b);
		weft_store_close(a);
	}
}

/* Compaction keeps the store id, and neither the handle that compacted
 * nor another one nor a live watch takes the new log for another store. */
static void test_compaction_keeps_id(void)
{
	_cleanup_free_ char *d = dir_for("keepid"), *url = wasprintf("file:%s?compact_bytes=4096&keep_revs=5", d);
	struct weft_store *a = open_ok(url), *b = open_ok(url);
	struct weft_watch *w = NULL;
	uint8_t id1[16], id2[16];
	int64_t revs[400];
	size_t n = 0;

	if (!a || !b)
		return;
	CHECK_EQ_INT(log_id(d, id1), 1);
	CHECK_EQ_INT(weft_store_watch(b, "/x/", 0, &w), 0);
	for (int i = 0; i < 300; i++) {
		put(i % 2 ? a : b, "/x/k", "a value long enough that a few hundred of them make several compactions");
		CHECK_EQ_INT(drain(w, revs, &n, ARRAY_SIZE(revs)), 0); /* keeps up: loses nothing */
	}
	CHECK(log_snap_rev(d) > 250); /* compacted, more than once */
	CHECK_EQ_INT(log_id(d, id2), 1);
	CHECK(memcmp(id1, id2, 16) == 0);
	CHECK_EQ_INT(drain(w, revs, &n, ARRAY_SIZE(revs)), 0);
	CHECK_EQ_INT(n, 300);
	CHECK_EQ_INT(revision(a), 300);
	CHECK_EQ_INT(revision(b), 300);
	CHECK(!weft_store_replaced(a) && !weft_store_replaced(b));
	weft_watch_free(w);
	weft_store_close(a);
	weft_store_close(b);
}

/* A log from before store ids (a snapshot without one) opens and works,
 * stays without an id through compaction (so the weft that wrote it can
 * still read it), and a store put in its place is still found: another
 * log without an id by its revision going back, a new store by its id. */
static void test_log_without_id(void)
{
	_cleanup_free_ char *d = dir_for("oldlog"), *url = wasprintf("file:%s?compact_bytes=4096&keep_revs=5", d),
			   *log = wasprintf("%s/store.log", d);
	struct weft_store *a = NULL, *b = NULL;
	struct weft_watch *w = NULL;
	uint8_t id[16];

	write_old_log(d);
	a = open_ok(url);
	if (!a)
		return;
	for (int i = 0; i < 200; i++)
		put(a, "/x/k", "a value long enough that a few hundred of them make several compactions");
	CHECK(log_snap_rev(d) > 150); /* compacted, more than once */
	CHECK_EQ_INT(log_id(d, id), 0);
	CHECK_EQ_INT(weft_store_check(a), 0);
	CHECK_EQ_INT(weft_store_watch(a, "/x/", 0, &w), 0);

	/* Another old log put in its place, behind this one. */
	write_old_log(d);
	b = open_ok(url);
	if (!b)
		return;
	puts_n(b, "/x/new", 2);
	expect_replaced(a, w, b, "its revision went back from 200 to 2");
	weft_watch_free(w);
	expect_reopened(a, b);
	weft_store_close(b);

	/* A new store (with an id) in place of an old one, ahead of it. */
	CHECK_EQ_INT(weft_store_watch(a, "/x/", 0, &w), 0);
	CHECK_EQ_INT(unlink(log), 0);
	b = open_ok(url);
	if (!b)
		return;
	CHECK_EQ_INT(log_id(d, id), 1);
	puts_n(b, "/x/new", 10);
	expect_replaced(a, w, b, "a different store id");
	weft_watch_free(w);
	weft_store_close(b);
	weft_store_close(a);
}

/* The test is linked with -Wl,--wrap=fdatasync: this fails the next
 * fdatasync() calls as the disk would (EIO) while fail_fdatasync > 0. */
static int fail_fdatasync;
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
int __wrap_fdatasync(int fd)
{
	if (fail_fdatasync > 0) {
		fail_fdatasync--;
		errno = EIO;
		return -1;
	}
	return __real_fdatasync(fd);
}

/* A record appended but not synced may be read by anyone: the write's
 * outcome is unknown, and the store says so. A failure before anything
 * was appended is not unknown. */
static void test_outcome_unknown(void)
{
	_cleanup_free_ char *d = dir_for("unknown"), *url = wasprintf("file:%s", d);
	struct weft_store *s = open_ok(url), *other = open_ok(url);
	struct weft_kv kv = {0};
	int64_t rev = put(s, "/k", "one");

	CHECK(!weft_store_outcome_unknown(s));
	fail_fdatasync = 1;
	CHECK_EQ_INT(weft_store_put(s, "/k", "two", 3, NULL), -EIO);
	CHECK(weft_store_outcome_unknown(s));
	CHECK(strstr(weft_store_errmsg(s), "fdatasync") != NULL);
	CHECK(strstr(weft_store_errmsg(s), "may or may not have been applied") != NULL);
	/* Here it was applied: another handle reads it. */
	CHECK_EQ_INT(weft_store_get(other, "/k", &kv), 0);
	CHECK_STREQ(kv.value, "two");
	weft_kv_clear(&kv);

	/* The next operation starts clean; a failed compare is certain. */
	CHECK_EQ_INT(weft_store_cas(s, "/k", "three", 5, rev, NULL), -ECANCELED);
	CHECK(!weft_store_outcome_unknown(s));
	fail_fdatasync = 1;
	CHECK_EQ_INT(weft_store_delete(s, "/k", 0, NULL), -EIO);
	CHECK(weft_store_outcome_unknown(s));
	CHECK_EQ_INT(weft_store_get(s, "/k", &kv), -ENOENT);
	CHECK(!weft_store_outcome_unknown(s));
	put(s, "/k", "four");
	CHECK(!weft_store_outcome_unknown(s));
	CHECK_EQ_INT(fail_fdatasync, 0);
	weft_store_close(other);
	weft_store_close(s);
}

static void test_open(void)
{
	_cleanup_free_ char *dir = dir_for("deep/er/store"), *url = wasprintf("file:%s", dir);
	struct weft_store *s = open_ok(url), *s2 = NULL;
	struct stat st;
	char *err = NULL;

	CHECK_EQ_INT(stat(dir, &st), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0700);
	CHECK_STREQ(weft_store_backend(s), "file");
	CHECK_EQ_INT(revision(s), 0);
	CHECK_EQ_INT(weft_store_check(s), 0);
	weft_store_close(s);

	CHECK_EQ_INT(weft_store_open("file:", &s2, &err), -EINVAL);
	free(err);
	err = NULL;
	CHECK_EQ_INT(weft_store_open("file:/tmp/x?bogus=1", &s2, &err), -EINVAL);
	CHECK(err && strstr(err, "bogus"));
	free(err);
	err = NULL;
	CHECK_EQ_INT(weft_store_open("file:/tmp/x?compact_bytes=lots", &s2, &err), -EINVAL);
	free(err);
	err = NULL;
	CHECK_EQ_INT(weft_store_open("file:/dev/null", &s2, &err), -ENOTDIR);
	free(err);
	CHECK(s2 == NULL);
}

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", g_tmp);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_record_codec),
		TEST(test_open),
		TEST(test_lock_file_removed),
		TEST(test_store_replaced),
		TEST(test_compaction_keeps_id),
		TEST(test_log_without_id),
		TEST(test_torn_tail),
		TEST(test_watch_across_torn_tail),
		TEST(test_damaged_middle),
		TEST(test_compaction),
		TEST(test_no_compaction),
		TEST(test_poll_fallback),
		TEST(test_outcome_unknown),
	};
	int r;

	if (!mkdtemp(g_tmp)) {
		perror("mkdtemp");
		return 1;
	}
	srand((unsigned)getpid());
	r = test_run(cases, ARRAY_SIZE(cases));
	cleanup();
	return r;
}
