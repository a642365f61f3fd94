/* fuzz-birdc.c - libFuzzer target for the BIRD control-socket reply parser
 * (birdc.c): weft_birdc_feed(), the reply framing ("NNNN-" more lines
 * follow, "NNNN " the last line, " " a continuation, "+" a spontaneous
 * message), and weft_birdc_parse_protocols(), the `show protocols` table.
 *
 * Input: byte 0 chooses how the rest is cut into reads (its top two bits
 * the mode: single bytes, up to 16, up to 512 or up to 4096 bytes per read;
 * the low six bits seed the sizes), the rest is what BIRD sends: a stream
 * of replies, read the way the client reads them (bytes appended to a
 * buffer, complete lines fed, the unconsumed rest kept for the next read,
 * the next reply parsed from what follows a complete one).
 *
 * The stream is parsed twice: at once and in those reads. Both must give
 * the same replies, lines and outcome (the framing must resume across
 * reads at any byte), or the target aborts. Every complete reply also goes
 * through weft_birdc_parse_protocols(), whose rows are checked for shape.
 */
#include "bgpconf/bgpconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                     \
	do {                                          \
		fprintf(stderr, "fuzz-birdc: " __VA_ARGS__); \
		fputc('\n', stderr);                  \
		abort();                              \
	} while (0)

/* What one parse of the stream saw. */
struct outcome {
	uint64_t digest;  /* of every reply's lines, in order */
	size_t replies;   /* complete replies */
	int last;         /* the last feed's result: 1, 0 or -EBADMSG */
};

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The rows of a complete reply must look like rows. */
static void check_protocols(const struct weft_birdc_reply *rep)
{
	struct weft_bird_proto *p = (struct weft_bird_proto *)1;
	size_t n = 12345, rows = 0;
	int r = weft_birdc_parse_protocols(rep, &p, &n);

	for (size_t i = 0; i < rep->n; i++)
		rows += rep->lines[i].code == 1002;
	if (rep->code >= 8000) {
		if (r != -EIO || p != (struct weft_bird_proto *)1 || n != 12345)
			FAIL("an error reply (%d) parsed as a table: %d", rep->code, r);
		return;
	}
	if (r == -EBADMSG) {
		if (p != (struct weft_bird_proto *)1 || n != 12345)
			FAIL("outputs changed on failure");
		return;
	}
	if (r < 0 || (size_t)r != n || n != rows)
		FAIL("parse_protocols: %d, n %zu, %zu rows", r, n, rows);
	for (size_t i = 0; i < n; i++) {
		const char *f[] = {p[i].name, p[i].proto, p[i].table, p[i].state};

		for (size_t j = 0; j < ARRAY_SIZE(f); j++)
			if (!f[j] || !f[j][0] || strpbrk(f[j], " \t"))
				FAIL("row %zu: column %zu is not one word", i, j);
		if (!p[i].since || !p[i].since[0] || !p[i].info)
			FAIL("row %zu: no since or info", i);
		size_t l = strlen(p[i].info);
		if (l && (blank(p[i].info[0]) || blank(p[i].info[l - 1])))
			FAIL("row %zu: info not trimmed: \"%s\"", i, p[i].info);
	}
	weft_bird_protos_free(p, n);
}

/* The sizes of the reads: all at once (mode < 0), or as byte 0 says. */
struct reads {
	int mode;
	uint32_t x;
};

static size_t next_read(struct reads *rd, size_t left)
{
	static const size_t max[] = {1, 16, 512, 4096};
	size_t n;

	if (rd->mode < 0)
		return left;
	rd->x ^= rd->x << 13, rd->x ^= rd->x >> 17, rd->x ^= rd->x << 5;
	n = 1 + rd->x % max[rd->mode];
	return n < left ? n : left;
}

static struct outcome parse_stream(const char *data, size_t size, struct reads rd)
{
	struct outcome o = {.digest = WEFT_FNV_INIT};
	struct weft_birdc_reply rep = {0};
	struct weft_buf in = {0};
	size_t off = 0, pos = 0;
	int r = 0;

	while (pos < size || (r == 1 && off < in.len)) {
		size_t used = (size_t)-1, n;

		if (r != 1) {
			/* One read: append it. */
			n = next_read(&rd, size - pos);
			weft_buf_append(&in, data + pos, n);
			pos += n;
		}
		r = weft_birdc_feed(&rep, in.data + off, in.len - off, &used);
		if (r < 0) {
			if (r != -EBADMSG)
				FAIL("feed: unexpected %d", r);
			break;
		}
		if (used > in.len - off)
			FAIL("consumed %zu of %zu bytes", used, in.len - off);
		/* Only whole lines are consumed; what is left when more is
		 * needed holds no complete line. */
		if (used && in.data[off + used - 1] != '\n')
			FAIL("consumed part of a line");
		if (r == 1 && !used)
			FAIL("a complete reply out of no bytes");
		off += used;
		if (r == 0 && memchr(in.data + off, '\n', in.len - off))
			FAIL("a complete line left unconsumed");
		for (size_t i = 0; i < rep.n; i++)
			if (!rep.lines[i].text || strchr(rep.lines[i].text, '\n') || rep.lines[i].code < 0 ||
			    rep.lines[i].code > 9999)
				FAIL("line %zu malformed", i);
		if (rep.n && rep.code != rep.lines[rep.n - 1].code)
			FAIL("reply code %d is not its last line's %d", rep.code, rep.lines[rep.n - 1].code);
		if (r == 1) {
			if (!rep.n)
				FAIL("a complete reply without lines");
			check_protocols(&rep);
			o.digest = weft_fnv1a(&rep.n, sizeof(rep.n), o.digest);
			for (size_t i = 0; i < rep.n; i++) {
				o.digest = weft_fnv1a(&rep.lines[i].code, sizeof(int), o.digest);
				o.digest = weft_fnv1a(rep.lines[i].text, strlen(rep.lines[i].text) + 1, o.digest);
			}
			o.replies++;
			weft_birdc_reply_clear(&rep);
		}
		/* Keep the buffer to the unconsumed bytes, as the client does. */
		if (off) {
			memmove(in.data, in.data + off, in.len - off);
			in.len -= off;
			in.data[in.len] = 0;
			off = 0;
		}
	}
	/* The lines of an incomplete or refused reply count too. */
	for (size_t i = 0; i < rep.n; i++) {
		o.digest = weft_fnv1a(&rep.lines[i].code, sizeof(int), o.digest);
		o.digest = weft_fnv1a(rep.lines[i].text, strlen(rep.lines[i].text) + 1, o.digest);
	}
	o.last = r;
	weft_birdc_reply_clear(&rep);
	weft_buf_free(&in);
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole, reads;

	if (!size)
		return 0;
	whole = parse_stream((const char *)data + 1, size - 1, (struct reads){.mode = -1});
	reads = parse_stream((const char *)data + 1, size - 1,
			     (struct reads){.mode = data[0] >> 6, .x = 0x9e3779b9u ^ (data[0] & 0x3f)});
	if (whole.digest != reads.digest || whole.replies != reads.replies || whole.last != reads.last)
		FAIL("at once: %zu replies, last %d; in reads (byte 0 = 0x%02x): %zu replies, last %d, %s lines",
		     whole.replies, whole.last, data[0], reads.replies, reads.last,
		     whole.digest == reads.digest ? "same" : "different");
	return 0;
}
