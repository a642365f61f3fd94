/* store-file.c - the embedded datastore backend, file:DIR[?opts].
 *
 * No server: every process that opens DIR works on the same files.
 *
 *   DIR/store.log    the log: one SNAPSHOT record (the live keys at
 *                    revision S; S = 0 and no keys for a new store) followed
 *                    by one TXN record per successful write, at revisions
 *                    S+1, S+2, ... (format in record.h; every record has a
 *                    length and a CRC32C).
 *   DIR/store.lock   flock()ed exclusively by a writer for the whole of
 *                    read-compare-append-fdatasync, shared by readers only
 *                    to confirm suspected damage and by check.
 *   DIR/store.log.new  a compaction in progress (leftovers are harmless).
 *
 * Writes: lock, catch up with the log (a torn tail seen under the lock
 * belongs to a dead writer and is cut off), evaluate the compares against
 * the in-memory index, append one record with one pwrite(), fdatasync(),
 * unlock, and only then report success. So an acknowledged write is in
 * the page cache (survives kill -9) and on disk (survives power loss).
 *
 * Reads: each handle keeps an index (hash table: key -> value, create_rev,
 * mod_rev, version) built from the log, and before every get/list/revision
 * reads the complete records appended since its last look, without any
 * lock: a record being written appears as an incomplete prefix, which a
 * reader does not consume. Bytes at the end that do not form a valid record
 * are a "tail" (in progress or torn) unless a valid record with a higher
 * revision follows them, which makes them damage in the middle of the log
 * (-EBADMSG; a lock-free reader re-checks under a shared lock first, so a
 * race with a writer truncating a dead tail cannot be mistaken for damage).
 * Deviation from the suggested design: the snapshot is ONE record rather
 * than a header plus entries, so a log always starts with a record that
 * says its own revision and cannot be torn (it is written to store.log.new,
 * fsynced and renamed), and "damage at offset 0" needs no special cases.
 *
 * Compaction: after a write, if the log is larger than compact_bytes and
 * more than twice the size of a snapshot of the live keys, the writer
 * (still under the lock) writes store.log.new = a snapshot at revision S +
 * the records after S copied verbatim, fsyncs it, renames it over
 * store.log and fsyncs DIR. S keeps at most keep_revs revisions and at most
 * compact_bytes/4 bytes of history, which guarantees that at least
 * compact_bytes/4 bytes are appended between two compactions. Other handles
 * stat() the log path when they catch up and reload when the inode changed.
 *
 * Store id: a new store's snapshot carries 16 random bytes, which every
 * compaction copies (a log from before store ids has none and keeps
 * none). A new inode whose snapshot has another id, or whose log ends
 * before the last revision the handle saw, is not a compaction but
 * another store put in DIR (store.log removed and made again, DIR wiped):
 * the handle then fails every operation with -ESTALE ("the store at DIR
 * was replaced ...: reopen it") until weft_store_reopen(), and its watches
 * end with -ESTALE, instead of replaying the other store as a
 * continuation of its own (revisions going back, events skipped, writes
 * compared against unrelated mod_revs).
 *
 * Watches: a watch has its own descriptor on the log and a read cursor.
 * weft_watch_fd() is an epoll fd over an inotify instance on DIR
 * (IN_MODIFY for appends, IN_MOVED_TO for the rename of a compaction) and a
 * timerfd that fires once at creation (so that an event loop asks for the
 * history a watch from an old revision owes). inotify does not lose events
 * of local writers (a queue overflow is itself an event, and any wakeup
 * re-reads the log), so no periodic timer is needed for the 100 ms promise;
 * only when inotify cannot be set up (fs.inotify.max_user_instances
 * exhausted, a filesystem without it) the timerfd fires every 50 ms.
 * weft_watch_next() drains both fds before it reads the log. After a
 * compaction a watch first drains its old descriptor (that file is frozen:
 * writers check the inode under the lock) and then continues in the new
 * file, so a watch that keeps up never loses events; one that needs a
 * revision <= the new snapshot's gets -ESTALE, and so does one that finds
 * another store in the new file (store id, or the revision it had reached
 * missing). When the log disappears from its path or DIR is removed or
 * moved, inotify on DIR may say nothing about what is made there next, so
 * the watch polls from then on.
 *
 * URL options (file:DIR?name=value&...): compact_bytes=N (default 4 MiB,
 * 0 = never compact), keep_revs=N (default 10000), poll_ms=N (use a timer
 * of N ms instead of inotify for watches; for tests and odd filesystems).
 *
 * Handles and watches are not thread-safe and must not be used across
 * fork(); a watch must be freed before its store handle is closed.
 */
#include "store/store-backend.h"
#include "store/record.h"
#include "lib/util.h"
#include "lib/log.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

#define DEFAULT_COMPACT_BYTES (4 << 20)
#define DEFAULT_KEEP_REVS 10000
#define FALLBACK_POLL_MS 50
#define READ_CHUNK (256 << 10)

/* ---------------------------------------------------------------------
 * The in-memory index: key -> entry, a chained hash table, plus a sorted
 * array of the entries built lazily for list.
 */

struct entry {
	struct entry *next;
	uint64_t hash;
	char *key;
	size_t key_len;
	char *value; /* value_len bytes + NUL */
	size_t value_len;
	int64_t create_rev, mod_rev, version;
};

struct kv_index {
	struct entry **buckets;
	size_t nbuckets, n;
	struct entry **sorted;
	size_t nsorted;
	bool sorted_valid;
	uint64_t live_bytes; /* what a snapshot of the live keys takes on disk */
};

static uint64_t hash_key(const char *key, size_t len)
{
	return weft_fnv1a(key, len, WEFT_FNV_INIT);
}

static struct entry *idx_find(const struct kv_index *idx, const char *key, size_t len)
{
	uint64_t h;

	if (!idx->nbuckets)
		return NULL;
	h = hash_key(key, len);
	for (struct entry *e = idx->buckets[h & (idx->nbuckets - 1)]; e; e = e->next)
		if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)
			return e;
	return NULL;
}

static uint64_t entry_disk_size(size_t key_len, size_t value_len)
{
	return WEFT_RECORD_ENTRY_SIZE + key_len + value_len;
}

static void idx_grow(struct kv_index *idx)
{
	size_t nb = idx->nbuckets ? idx->nbuckets * 2 : 64;
	struct entry **b = wcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < idx->nbuckets; i++) {
		struct entry *e = idx->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(idx->buckets);
	idx->buckets = b;
	idx->nbuckets = nb;
}

static void idx_set(struct kv_index *idx, const struct weft_record_entry *re, int64_t mod_rev)
{
	struct entry *e = idx_find(idx, re->key, re->key_len);

	if (!e) {
		if (idx->n + 1 > idx->nbuckets)
			idx_grow(idx);
		e = wcalloc(1, sizeof(*e));
		e->hash = hash_key(re->key, re->key_len);
		e->key = wstrndup(re->key, re->key_len);
		e->key_len = re->key_len;
		e->next = idx->buckets[e->hash & (idx->nbuckets - 1)];
		idx->buckets[e->hash & (idx->nbuckets - 1)] = e;
		idx->n++;
		idx->sorted_valid = false;
		idx->live_bytes += entry_disk_size(e->key_len, 0);
	} else {
		idx->live_bytes -= e->value_len;
		free(e->value);
	}
	e->value = wmalloc(re->value_len + 1);
	if (re->value_len)
		memcpy(e->value, re->value, re->value_len);
	e->value[re->value_len] = 0;
	e->value_len = re->value_len;
	idx->live_bytes += re->value_len;
	e->create_rev = re->create_rev;
	e->mod_rev = mod_rev;
	e->version = re->version;
}

static void idx_remove(struct kv_index *idx, const char *key, size_t len)
{
	uint64_t h = hash_key(key, len);

	for (struct entry **pp = &idx->buckets[h & (idx->nbuckets - 1)]; *pp; pp = &(*pp)->next) {
		struct entry *e = *pp;
		if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) {
			*pp = e->next;
			idx->live_bytes -= entry_disk_size(e->key_len, e->value_len);
			idx->n--;
			idx->sorted_valid = false;
			free(e->key);
			free(e->value);
			free(e);
			return;
		}
	}
}

static void idx_clear(struct kv_index *idx)
{
	for (size_t i = 0; i < idx->nbuckets; i++) {
		struct entry *e = idx->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e->key);
			free(e->value);
			free(e);
		}
	}
	free(idx->buckets);
	free(idx->sorted);
	memset(idx, 0, sizeof(*idx));
}

static int cmp_entry_ptr(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
	return strcmp(x->key, y->key);
}

/* The entries sorted by key (keys hold no NUL, so strcmp is byte order). */
static struct entry **idx_sorted(struct kv_index *idx)
{
	if (!idx->sorted_valid) {
		size_t k = 0;
		idx->sorted = wrealloc(idx->sorted, (idx->n ? idx->n : 1) * sizeof(*idx->sorted));
		for (size_t i = 0; i < idx->nbuckets; i++)
			for (struct entry *e = idx->buckets[i]; e; e = e->next)
				idx->sorted[k++] = e;
		qsort(idx->sorted, k, sizeof(*idx->sorted), cmp_entry_ptr);
		idx->nsorted = k;
		idx->sorted_valid = true;
	}
	return idx->sorted;
}

static int cmp_rec_entry(const void *a, const void *b)
{
	const struct weft_record_entry *x = *(const struct weft_record_entry *const *)a;
	const struct weft_record_entry *y = *(const struct weft_record_entry *const *)b;
	int c = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);
	return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static bool has_duplicate_keys(const struct weft_record *rec)
{
	const struct weft_record_entry **v;
	bool dup = false;

	if (rec->n < 2)
		return false;
	v = wmalloc(rec->n * sizeof(*v));
	for (size_t i = 0; i < rec->n; i++)
		v[i] = &rec->entries[i];
	qsort(v, rec->n, sizeof(*v), cmp_rec_entry);
	for (size_t i = 1; i < rec->n && !dup; i++)
		dup = cmp_rec_entry(&v[i - 1], &v[i]) == 0;
	free(v);
	return dup;
}

/* Apply a decoded record to idx after checking that it continues the
 * history idx holds (create revisions and versions as a writer must have
 * computed them). A SNAPSHOT replaces the whole index. Returns 0, or
 * -EBADMSG with *why set and idx unchanged. */
static int idx_apply(struct kv_index *idx, const struct weft_record *rec, const char **why)
{
	if (has_duplicate_keys(rec)) {
		*why = "two entries for one key";
		return -EBADMSG;
	}
	if (rec->type == WEFT_REC_SNAPSHOT) {
		idx_clear(idx);
		for (size_t i = 0; i < rec->n; i++)
			idx_set(idx, &rec->entries[i], rec->entries[i].mod_rev);
		return 0;
	}
	for (size_t i = 0; i < rec->n; i++) {
		const struct weft_record_entry *re = &rec->entries[i];
		const struct entry *e = idx_find(idx, re->key, re->key_len);
		if (re->op == WEFT_REC_DELETE) {
			if (!e) {
				*why = "delete of an absent key";
				return -EBADMSG;
			}
		} else if (e ? re->create_rev != e->create_rev || re->version != e->version + 1
			     : re->create_rev != rec->rev || re->version != 1) {
			*why = "create revision or version does not continue the key's history";
			return -EBADMSG;
		}
	}
	for (size_t i = 0; i < rec->n; i++) {
		const struct weft_record_entry *re = &rec->entries[i];
		if (re->op == WEFT_REC_DELETE)
			idx_remove(idx, re->key, re->key_len);
		else
			idx_set(idx, re, rec->rev);
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * Reading the log: a descriptor, a cursor and a read buffer.
 */

struct log_file {
	int fd;
	dev_t dev;
	ino_t ino;
	uint64_t off;       /* end of the last record consumed */
	uint64_t first_txn; /* offset just after the snapshot record */
	int64_t snap_rev;   /* -1 until the snapshot record was read */
	int64_t head;       /* revision of the last record consumed */
	bool has_id;        /* the snapshot's store id, once it was read */
	uint8_t id[WEFT_RECORD_ID_SIZE];
	uint8_t *buf;
	size_t cap, buf_len;
	uint64_t buf_off;
};

static void lf_init(struct log_file *lf, int fd)
{
	struct stat st = {0};

	memset(lf, 0, sizeof(*lf));
	lf->fd = fd;
	if (fd >= 0 && fstat(fd, &st) == 0) {
		lf->dev = st.st_dev;
		lf->ino = st.st_ino;
	}
	lf->snap_rev = -1;
	lf->head = -1;
}

static void lf_close(struct log_file *lf)
{
	if (lf->fd >= 0)
		close(lf->fd);
	free(lf->buf);
	lf_init(lf, -1);
}

static void lf_invalidate(struct log_file *lf)
{
	lf->buf_len = 0;
	if (lf->cap > 4 * READ_CHUNK) {
		free(lf->buf);
		lf->buf = NULL;
		lf->cap = 0;
	}
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
	size_t n = 0;

	while (n < len) {
		ssize_t k = pread(fd, (uint8_t *)buf + n, len - n, (off_t)(off + n));
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	*got = n;
	return 0;
}

/* Make the bytes [off, off + need) available. Returns 1 with *p and *avail
 * (avail >= need), 0 if the file ends first (*p and *avail say what there is),
 * or a negative errno. */
static int lf_fill(struct log_file *lf, uint64_t off, size_t need, const uint8_t **p, size_t *avail)
{
	size_t want = need > READ_CHUNK ? need : READ_CHUNK, got;
	int r;

	if (lf->buf_len && off >= lf->buf_off && off - lf->buf_off + need <= lf->buf_len) {
		*p = lf->buf + (off - lf->buf_off);
		*avail = lf->buf_len - (off - lf->buf_off);
		return 1;
	}
	if (lf->cap < want) {
		free(lf->buf);
		lf->buf = wmalloc(want);
		lf->cap = want;
	}
	lf->buf_len = 0;
	if ((r = pread_full(lf->fd, lf->buf, want, off, &got)) < 0)
		return r;
	lf->buf_off = off;
	lf->buf_len = got;
	*p = lf->buf;
	*avail = got;
	return got >= need;
}

/* Decode the record at lf->off (without consuming it). Returns 1 with *rec
 * and *len, 0 if nothing complete is there (*avail says how many bytes
 * are), -EBADMSG (*why) or another negative errno. */
static int lf_read(struct log_file *lf, struct weft_record *rec, size_t *len, size_t *avail,
		   const char **why)
{
	const uint8_t *p;
	size_t l, l2;
	int r;

	*avail = 0;
	r = lf_fill(lf, lf->off, WEFT_RECORD_HEADER_SIZE, &p, avail);
	if (r <= 0)
		return r;
	r = weft_record_peek(p, *avail, &l, why);
	if (r < 0)
		return r;
	/* The header may have come from the read buffer, the record from a
	 * fresh read: if the header was a torn tail's that a writer has since
	 * cut and overwritten, l is stale. So go by the header there now
	 * (reading more if it is longer), and decode what is there. */
	if ((r = lf_fill(lf, lf->off, l, &p, avail)) < 0)
		return r;
	if (weft_record_peek(p, *avail, &l2, NULL) == 1 && l2 > l && (r = lf_fill(lf, lf->off, l2, &p, avail)) < 0)
		return r;
	return weft_record_decode(p, *avail, rec, len, why);
}

/* The bytes at lf->off are not a complete valid record. Decide whether they
 * are a tail (a write in progress, or torn by a dead writer): nothing valid
 * follows. Returns 0 for a tail, -EBADMSG (*why) for damage in the middle,
 * or another negative errno. */
static int lf_classify(struct log_file *lf, const char **why)
{
	_cleanup_free_ uint8_t *rest = NULL;
	struct stat st;
	size_t n;
	int r;

	if (lf->off == 0) {
		/* A log is created complete by rename: its snapshot cannot be torn. */
		if (!*why)
			*why = "the snapshot record is incomplete";
		return -EBADMSG;
	}
	if (fstat(lf->fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size <= lf->off + 1)
		return 0;
	n = (size_t)((uint64_t)st.st_size - lf->off - 1);
	rest = wmalloc(n);
	if ((r = pread_full(lf->fd, rest, n, lf->off + 1, &n)) < 0)
		return r;
	for (size_t i = 0; i + WEFT_RECORD_HEADER_SIZE <= n; i++) {
		struct weft_record rec;
		size_t l;
		if (rest[i] != (WEFT_RECORD_MAGIC & 0xff) || memcmp(rest + i, "WFR1", 4) != 0)
			continue;
		if (weft_record_decode(rest + i, n - i, &rec, &l, NULL) == 1) {
			bool later = rec.type == WEFT_REC_TXN && rec.rev > lf->head;
			weft_record_clear(&rec);
			if (later) {
				if (!*why)
					*why = "a record runs past the end of the log, yet valid records follow";
				return -EBADMSG;
			}
		}
	}
	return 0;
}

/* Read and apply every complete record after lf->off. Returns 0 when the
 * rest is a tail (or nothing), -EBADMSG with *why and lf->off at the
 * damaged record, or another negative errno. */
static int lf_apply_new(struct log_file *lf, struct kv_index *idx, const char **why)
{
	for (;;) {
		struct weft_record rec = {0};
		size_t len, avail;
		int r;

		*why = NULL;
		r = lf_read(lf, &rec, &len, &avail, why);
		if (r == 1) {
			if (lf->off == 0 ? rec.type != WEFT_REC_SNAPSHOT : rec.type != WEFT_REC_TXN)
				*why = lf->off == 0 ? "the log does not start with a snapshot"
						    : "a snapshot after the start of the log";
			else if (lf->off && rec.rev != lf->head + 1)
				*why = "revision out of sequence";
			if (*why || idx_apply(idx, &rec, why) < 0) {
				weft_record_clear(&rec);
				lf_invalidate(lf);
				return -EBADMSG;
			}
			if (rec.type == WEFT_REC_SNAPSHOT) {
				lf->snap_rev = rec.rev;
				lf->first_txn = len;
				lf->has_id = rec.has_id;
				memcpy(lf->id, rec.id, sizeof(lf->id));
			}
			lf->head = rec.rev;
			lf->off += len;
			weft_record_clear(&rec);
			continue;
		}
		lf_invalidate(lf);
		if (r < 0 && r != -EBADMSG)
			return r;
		if (r == 0 && avail == 0 && lf->off > 0)
			return 0; /* clean end of the log */
		return lf_classify(lf, why);
	}
}

/* ---------------------------------------------------------------------
 * The store handle.
 */

struct file_store {
	struct weft_store base;
	char *dir, *log_path, *lock_path, *new_path;
	int lock_fd, dir_fd;
	bool writable;
	struct log_file log;
	struct kv_index idx;
	struct weft_buf wbuf;
	int64_t compact_bytes, keep_revs, poll_ms;
	/* The store this handle opened: its id (has_id false for a log from
	 * before store ids), known once the first catch-up read it. */
	bool ident_known, has_id;
	uint8_t id[WEFT_RECORD_ID_SIZE];
	/* Once a different store was found in DIR: why, for every later
	 * operation (-ESTALE) until weft_store_reopen(). */
	char *replaced;
};

static struct file_store *FS(struct weft_store *s)
{
	return (struct file_store *)s;
}

static int lock_fd(int fd, int how)
{
	while (flock(fd, how) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* The lock is the inode DIR/store.lock names. Someone may remove the
 * file while processes run (taking it for a stale lock): a process that
 * opens the store then creates a new one, and two writers holding locks
 * on two inodes would append at the same offset. So after taking the
 * lock, check that the path still names the inode locked; if not, open
 * what it names now (creating it, as the open does) and lock that. The
 * same for the shared lock (a reader confirming damage, check): it must
 * exclude the writers of today's lock file. Returns 0 or a negative errno
 * with *what set to the failing step (NULL: the file keeps being
 * replaced); the handle's errmsg is untouched (a watch takes the shared
 * lock too). */
static int lock_path_locked(struct file_store *s, int how, const char **what)
{
	for (int tries = 0;; tries++) {
		struct stat held, named;
		int r = lock_fd(s->lock_fd, how), fd;

		*what = "flock";
		if (r < 0)
			return r;
		*what = "fstat";
		if (fstat(s->lock_fd, &held) < 0)
			return -errno;
		if (stat(s->lock_path, &named) == 0 && named.st_dev == held.st_dev && named.st_ino == held.st_ino)
			return 0;
		lock_fd(s->lock_fd, LOCK_UN);
		*what = NULL;
		if (tries == 10)
			return -EAGAIN;
		fd = s->writable ? open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)
				 : open(s->lock_path, O_RDONLY | O_CLOEXEC);
		*what = "open (it was removed)";
		if (fd < 0)
			return -errno;
		log_warn("store: %s was removed or replaced while the store was open: locking the new one (do not "
			 "remove it while weft runs)",
			 s->lock_path);
		close(s->lock_fd);
		s->lock_fd = fd;
	}
}

static int fs_lock(struct file_store *s, int how)
{
	const char *what;
	int r = lock_path_locked(s, how, &what);

	if (r < 0 && !what)
		return weft_store_fail(&s->base, r, "%s keeps being replaced", s->lock_path);
	if (r < 0)
		return weft_store_fail(&s->base, r, "%s %s: %s", what, s->lock_path, strerror(-r));
	return 0;
}

static void fs_unlock(struct file_store *s)
{
	lock_fd(s->lock_fd, LOCK_UN);
}

static int fs_open_log(struct file_store *s, struct log_file *lf)
{
	int fd = open(s->log_path, (s->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	lf_init(lf, fd);
	return 0;
}

static bool same_id(bool has_a, const uint8_t *a, bool has_b, const uint8_t *b)
{
	return has_a == has_b && (!has_a || memcmp(a, b, WEFT_RECORD_ID_SIZE) == 0);
}

/* Another store is in DIR now (store.log removed and created again, DIR
 * wiped): from now on every operation fails, with this reason. Returns
 * -ESTALE. */
static int fs_replaced(struct file_store *s, const char *why)
{
	free(s->replaced);
	s->replaced = wasprintf("the store at %s was replaced (%s): reopen it", s->dir, why);
	s->base.replaced = true;
	log_debug("%s", s->replaced);
	return weft_store_fail(&s->base, -ESTALE, "%s", s->replaced);
}

/* Is the log file lf (not read yet) the store this handle opened? A
 * compaction writes a new file with the same store id and at least every
 * revision we have seen; anything else is another store. Only the
 * snapshot is read here (the id); the revisions are checked once the file
 * is read (fs_catch_up). Returns 0, -ESTALE (replaced), or 0 when the
 * snapshot cannot be read (reading the file reports that). */
static int fs_check_ident(struct file_store *s, struct log_file *lf)
{
	struct weft_record rec = {0};
	size_t len, avail;
	const char *why = NULL;
	bool same;

	if (!s->ident_known || lf_read(lf, &rec, &len, &avail, &why) != 1)
		return 0;
	same = rec.type != WEFT_REC_SNAPSHOT || same_id(rec.has_id, rec.id, s->has_id, s->id);
	weft_record_clear(&rec);
	return same ? 0 : fs_replaced(s, "a different store id");
}

/* Bring the index up to date with the log. lock is the flock mode the
 * caller holds (0, LOCK_SH, LOCK_EX); under LOCK_EX a torn tail is cut.
 * A log that is not the store this handle opened (another store id, or
 * fewer revisions than we have seen) makes this and every later call fail
 * with -ESTALE (fs_replaced()). */
static int fs_catch_up(struct file_store *s, int lock)
{
	const char *why = NULL;
	int64_t seen = -1;
	struct stat st;
	int r;

	if (s->replaced)
		return weft_store_fail(&s->base, -ESTALE, "%s", s->replaced);
	if (stat(s->log_path, &st) < 0)
		return weft_store_fail(&s->base, -EIO, "%s: %s", s->log_path, strerror(errno));
	if (st.st_ino != s->log.ino || st.st_dev != s->log.dev) {
		/* Compacted by another handle: start over with the new file,
		 * if it is the same store. */
		struct log_file nlf;
		if ((r = fs_open_log(s, &nlf)) < 0)
			return weft_store_fail(&s->base, r, "open %s: %s", s->log_path, strerror(-r));
		if ((r = fs_check_ident(s, &nlf)) < 0) {
			lf_close(&nlf);
			return r;
		}
		seen = s->log.head;
		lf_close(&s->log);
		s->log = nlf;
	}
	r = lf_apply_new(&s->log, &s->idx, &why);
	if (r == -EBADMSG && lock == 0) {
		/* Confirm with no writer active: see the top comment. */
		if ((r = fs_lock(s, LOCK_SH)) < 0)
			return r;
		r = lf_apply_new(&s->log, &s->idx, &why);
		fs_unlock(s);
	}
	if (r == -EBADMSG)
		return weft_store_fail(&s->base, r, "%s: damaged record at offset %llu: %s", s->log_path,
				       (unsigned long long)s->log.off, why ? why : "undecodable");
	if (r < 0)
		return weft_store_fail(&s->base, r, "read %s: %s", s->log_path, strerror(-r));
	if (s->ident_known && s->log.head < seen) {
		/* A log from before store ids, or a copy: a compaction keeps
		 * every revision up to the last one written. */
		char why_rev[96];
		snprintf(why_rev, sizeof(why_rev), "its revision went back from %lld to %lld", (long long)seen,
			 (long long)s->log.head);
		return fs_replaced(s, why_rev);
	}
	if (lock == LOCK_EX) {
		if (fstat(s->log.fd, &st) < 0)
			return weft_store_fail(&s->base, -errno, "fstat %s: %m", s->log_path);
		if ((uint64_t)st.st_size > s->log.off) {
			log_debug("%s: cutting a torn tail of %llu bytes at offset %llu", s->log_path,
				  (unsigned long long)((uint64_t)st.st_size - s->log.off),
				  (unsigned long long)s->log.off);
			if (ftruncate(s->log.fd, (off_t)s->log.off) < 0)
				return weft_store_fail(&s->base, -errno, "truncate %s: %m", s->log_path);
		}
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t n = 0;

	while (n < len) {
		ssize_t k = pwrite(fd, (const uint8_t *)buf + n, len - n, (off_t)(off + n));
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		n += (size_t)k;
	}
	return 0;
}

/* Write store.log.new = the snapshot record in snap + (if src >= 0) the
 * bytes [from, to) of src, make it durable and rename it over store.log.
 * The caller holds LOCK_EX. Returns 0 or a negative errno. */
static int fs_replace_log(struct file_store *s, const struct weft_buf *snap, int src, uint64_t from,
			  uint64_t to)
{
	_cleanup_close_ int fd = -1;
	uint8_t *chunk = NULL;
	uint64_t out;
	int r;

	fd = open(s->new_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if ((r = write_full(fd, snap->data, snap->len, 0)) < 0)
		goto fail;
	out = snap->len;
	if (src >= 0 && to > from) {
		chunk = wmalloc(READ_CHUNK);
		while (from < to) {
			size_t want = to - from > READ_CHUNK ? READ_CHUNK : (size_t)(to - from), got;
			if ((r = pread_full(src, chunk, want, from, &got)) < 0)
				goto fail;
			if (got != want) {
				r = -EIO;
				goto fail;
			}
			if ((r = write_full(fd, chunk, got, out)) < 0)
				goto fail;
			from += got;
			out += got;
		}
	}
	if (fsync(fd) < 0 || rename(s->new_path, s->log_path) < 0) {
		r = -errno;
		goto fail;
	}
	free(chunk);
	/* The rename is durable once the directory is. */
	if (fsync(s->dir_fd) < 0)
		return -errno;
	return 0;
fail:
	free(chunk);
	unlink(s->new_path);
	return r;
}

static int cmp_entry_key(const void *a, const void *b)
{
	return strcmp(((const struct weft_record_entry *)a)->key, ((const struct weft_record_entry *)b)->key);
}

/* Encode a snapshot of idx at revision rev into out, with the store id of
 * the log lf (none if it has none: a log from before store ids stays
 * readable by the weft that wrote it). */
static int encode_snapshot(struct kv_index *idx, int64_t rev, const struct log_file *lf, struct weft_buf *out)
{
	struct weft_record rec = {.type = WEFT_REC_SNAPSHOT, .rev = rev, .n = idx->n, .has_id = lf->has_id};
	struct entry **v = idx_sorted(idx);
	int r;

	memcpy(rec.id, lf->id, sizeof(rec.id));
	rec.entries = wcalloc(idx->n ? idx->n : 1, sizeof(*rec.entries));
	for (size_t i = 0; i < idx->n; i++)
		rec.entries[i] = (struct weft_record_entry){
			.op = WEFT_REC_PUT,
			.key = v[i]->key,
			.key_len = v[i]->key_len,
			.value = v[i]->value,
			.value_len = v[i]->value_len,
			.create_rev = v[i]->create_rev,
			.mod_rev = v[i]->mod_rev,
			.version = v[i]->version,
		};
	qsort(rec.entries, rec.n, sizeof(*rec.entries), cmp_entry_key);
	r = weft_record_encode(&rec, out);
	free(rec.entries);
	return r;
}

/* Compact the log if it is worth it. The caller holds LOCK_EX and is caught
 * up. Failures only cost disk space, so they are logged, not returned. */
static void fs_maybe_compact(struct file_store *s)
{
	struct log_file rd;
	struct kv_index tmp = {0};
	struct weft_buf snap = {0};
	uint64_t *offs = NULL, size = s->log.off, budget = (uint64_t)s->compact_bytes / 4;
	int64_t head = s->log.head, base = s->log.snap_rev, nrec = head - base, keep_from;
	const char *why = NULL;
	int r = 0;

	if (s->compact_bytes <= 0 || size <= (uint64_t)s->compact_bytes || size <= 2 * s->idx.live_bytes ||
	    nrec <= 0)
		return;

	/* Pass 1: the offset of every TXN record, from the headers only. */
	offs = wmalloc((size_t)(nrec + 1) * sizeof(*offs));
	lf_init(&rd, -1);
	rd.fd = s->log.fd;
	rd.off = s->log.first_txn;
	for (int64_t i = 0; i < nrec; i++) {
		const uint8_t *p;
		size_t avail, len;
		if (lf_fill(&rd, rd.off, WEFT_RECORD_HEADER_SIZE, &p, &avail) != 1 ||
		    weft_record_peek(p, avail, &len, NULL) != 1) {
			r = -EIO;
			goto out;
		}
		offs[i] = rd.off;
		rd.off += len;
	}
	offs[nrec] = size;

	/* Keep at most keep_revs revisions and budget bytes of history: the
	 * records from index keep_from on are copied. */
	keep_from = nrec - s->keep_revs;
	if (keep_from < 1)
		keep_from = 1; /* always fold at least one revision */
	while (keep_from < nrec && size - offs[keep_from] > budget)
		keep_from++;

	/* Pass 2: the state at revision base + keep_from. */
	rd.off = 0;
	rd.buf_len = 0;
	for (int64_t i = -1; i < keep_from; i++) {
		struct weft_record rec;
		size_t len, avail;
		if (lf_read(&rd, &rec, &len, &avail, &why) != 1) {
			r = -EIO;
			goto out;
		}
		r = idx_apply(&tmp, &rec, &why);
		weft_record_clear(&rec);
		if (r < 0)
			goto out;
		rd.off += len;
	}
	if ((r = encode_snapshot(&tmp, base + keep_from, &s->log, &snap)) < 0)
		goto out;
	r = fs_replace_log(s, &snap, s->log.fd, offs[keep_from], size);
	if (r == 0)
		log_debug("%s: compacted %llu bytes to %llu, history from revision %lld", s->log_path,
			  (unsigned long long)size,
			  (unsigned long long)(snap.len + size - offs[keep_from]),
			  (long long)(base + keep_from + 1));
out:
	if (r < 0)
		log_debug("%s: compaction failed: %s", s->log_path, strerror(-r));
	free(rd.buf);
	free(offs);
	idx_clear(&tmp);
	weft_buf_free(&snap);
}

static int file_txn(struct weft_store *base, const struct weft_txn_cmp *cmps, size_t ncmps,
		    const struct weft_txn_op *ops, size_t nops, int64_t *rev)
{
	struct file_store *s = FS(base);
	struct weft_record rec = {.type = WEFT_REC_TXN};
	struct weft_record dec = {0};
	const char *why = NULL;
	size_t len;
	int r;

	if (s->replaced)
		return weft_store_fail(base, -ESTALE, "%s", s->replaced);
	if (!s->writable)
		return weft_store_fail(base, -EACCES, "%s: opened read-only", s->log_path);
	if ((r = fs_lock(s, LOCK_EX)) < 0)
		return r;
	if ((r = fs_catch_up(s, LOCK_EX)) < 0)
		goto out;

	for (size_t i = 0; i < ncmps; i++) {
		const struct entry *e = idx_find(&s->idx, cmps[i].key, strlen(cmps[i].key));
		if ((e ? e->mod_rev : 0) != cmps[i].mod_rev) {
			r = weft_store_fail(base, -ECANCELED, "compare failed: %s has mod_rev %lld, expected %lld",
					    cmps[i].key, (long long)(e ? e->mod_rev : 0),
					    (long long)cmps[i].mod_rev);
			goto out;
		}
	}

	rec.rev = s->log.head + 1;
	rec.entries = wcalloc(nops ? nops : 1, sizeof(*rec.entries));
	for (size_t i = 0; i < nops; i++) {
		size_t kl = strlen(ops[i].key);
		const struct entry *e = idx_find(&s->idx, ops[i].key, kl);
		struct weft_record_entry *re = &rec.entries[rec.n];

		if (ops[i].type == WEFT_OP_DELETE && !e)
			continue; /* a no-op inside a txn */
		re->key = ops[i].key;
		re->key_len = kl;
		re->mod_rev = rec.rev;
		if (ops[i].type == WEFT_OP_DELETE) {
			re->op = WEFT_REC_DELETE;
		} else {
			re->op = WEFT_REC_PUT;
			re->value = ops[i].value ? ops[i].value : "";
			re->value_len = ops[i].value ? ops[i].value_len : 0;
			re->create_rev = e ? e->create_rev : rec.rev;
			re->version = e ? e->version + 1 : 1;
		}
		rec.n++;
	}
	if (rec.n == 0) {
		/* Nothing changes: no new revision (as etcd). */
		if (rev)
			*rev = s->log.head;
		r = 0;
		goto out;
	}

	s->wbuf.len = 0;
	if ((r = weft_record_encode(&rec, &s->wbuf)) < 0) {
		r = weft_store_fail(base, r, "transaction too large for one record");
		goto out;
	}
	if ((r = write_full(s->log.fd, s->wbuf.data, s->wbuf.len, s->log.off)) < 0) {
		/* Nothing acknowledged: take the partial record back. */
		if (ftruncate(s->log.fd, (off_t)s->log.off) < 0)
			log_debug("%s: truncate after failed write: %m", s->log_path);
		r = weft_store_fail(base, r, "write %s: %s", s->log_path, strerror(-r));
		goto out;
	}
	if (fdatasync(s->log.fd) < 0) {
		/* The record is complete and may already be seen by others, so it
		 * stays; the caller must treat the outcome as unknown. */
		r = weft_store_fail_unknown(base, -EIO, "fdatasync %s: %s", s->log_path, strerror(errno));
		goto out;
	}
	/* Apply what we wrote, through the same checks a reader does. */
	if (weft_record_decode(s->wbuf.data, s->wbuf.len, &dec, &len, &why) != 1 ||
	    idx_apply(&s->idx, &dec, &why) < 0) {
		/* It is in the log all the same. */
		r = weft_store_fail_unknown(base, -EIO, "%s: own record does not apply: %s", s->log_path, why);
		goto out;
	}
	s->log.off += len;
	s->log.head = rec.rev;
	if (rev)
		*rev = rec.rev;
	r = 0;
	fs_maybe_compact(s);
out:
	weft_record_clear(&dec);
	free(rec.entries);
	if (s->wbuf.cap > 4 * READ_CHUNK)
		weft_buf_free(&s->wbuf);
	fs_unlock(s);
	return r;
}

static void kv_from_entry(struct weft_kv *kv, const struct entry *e)
{
	kv->key = wmemdup(e->key, e->key_len + 1);
	kv->value = wmemdup(e->value, e->value_len + 1);
	kv->value_len = e->value_len;
	kv->create_rev = e->create_rev;
	kv->mod_rev = e->mod_rev;
	kv->version = e->version;
}

static int file_get(struct weft_store *base, const char *key, struct weft_kv *out)
{
	struct file_store *s = FS(base);
	const struct entry *e;
	int r;

	if ((r = fs_catch_up(s, 0)) < 0)
		return r;
	if (!(e = idx_find(&s->idx, key, strlen(key))))
		return weft_store_fail(base, -ENOENT, "key %s not found", key);
	kv_from_entry(out, e);
	return 0;
}

static int file_list(struct weft_store *base, const char *prefix, struct weft_kv_list *out)
{
	struct file_store *s = FS(base);
	struct entry **v;
	size_t lo, hi, plen = strlen(prefix), n = 0;
	struct weft_kv *items;
	int r;

	if ((r = fs_catch_up(s, 0)) < 0)
		return r;
	v = idx_sorted(&s->idx);
	/* The first key >= prefix, then every key that starts with it. */
	lo = 0;
	hi = s->idx.nsorted;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(v[mid]->key, prefix) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (hi = lo; hi < s->idx.nsorted && strncmp(v[hi]->key, prefix, plen) == 0; hi++)
		n++;
	items = wcalloc(n ? n : 1, sizeof(*items));
	for (size_t i = 0; i < n; i++)
		kv_from_entry(&items[i], v[lo + i]);
	out->items = items;
	out->n = n;
	out->rev = s->log.head;
	return 0;
}

static int file_revision(struct weft_store *base, int64_t *rev)
{
	struct file_store *s = FS(base);
	int r = fs_catch_up(s, 0);
	if (r < 0)
		return r;
	*rev = s->log.head;
	return 0;
}

static int file_check(struct weft_store *base)
{
	struct file_store *s = FS(base);
	struct log_file lf;
	struct kv_index idx = {0};
	const char *why = NULL;
	int r;

	if (s->replaced)
		return weft_store_fail(base, -ESTALE, "%s", s->replaced);
	if ((r = fs_lock(s, LOCK_SH)) < 0)
		return r;
	if ((r = fs_open_log(s, &lf)) < 0) {
		fs_unlock(s);
		return weft_store_fail(base, r, "open %s: %s", s->log_path, strerror(-r));
	}
	r = lf_apply_new(&lf, &idx, &why);
	if (r == -EBADMSG)
		r = weft_store_fail(base, r, "%s: damaged record at offset %llu: %s", s->log_path,
				    (unsigned long long)lf.off, why ? why : "undecodable");
	else if (r < 0)
		r = weft_store_fail(base, r, "read %s: %s", s->log_path, strerror(-r));
	lf_close(&lf);
	idx_clear(&idx);
	fs_unlock(s);
	return r;
}

/* ---------------------------------------------------------------------
 * Watches.
 */

struct file_watch {
	struct weft_watch base;
	struct file_store *s; /* for the paths and the lock only */
	char *prefix;
	size_t prefix_len;
	struct log_file log;
	int64_t next_rev; /* deliver events with revision >= next_rev */
	/* The store watched (its id, as the handle had it), and after moving
	 * to a new file (a compaction's) the revision the old one ended at:
	 * a compacted log holds it, another store's may not. -1 otherwise. */
	bool has_id;
	uint8_t id[WEFT_RECORD_ID_SIZE];
	int64_t must_reach;
	int epoll_fd;     /* what weft_watch_fd() returns: the two below */
	int inotify_fd;   /* -1 when polling */
	int timer_fd;     /* polling, or a one-shot "look now" at creation */
	struct weft_event *pending;
	size_t npending, ipending;
	int dead; /* sticky error */
};

static struct file_watch *FW(struct weft_watch *w)
{
	return (struct file_watch *)w;
}

/* The log is gone from its path, or DIR itself was removed or moved away
 * (a store wiped and made again): inotify on the directory we watch may
 * tell nothing about the one at DIR's path from now on (and the removal
 * of a directory someone still has open is reported only once it is
 * closed), so poll from now on, as without inotify. */
static void watch_poll_instead(struct file_watch *w)
{
	struct itimerspec its = {
		.it_value = {0, 1},
		.it_interval = {FALLBACK_POLL_MS / 1000, (long)(FALLBACK_POLL_MS % 1000) * 1000000},
	};

	if (w->inotify_fd < 0)
		return;
	log_debug("watch on %s: the log or its directory was removed or moved; polling every %d ms",
		  w->s->log_path, FALLBACK_POLL_MS);
	(void)epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, w->inotify_fd, NULL);
	close(w->inotify_fd);
	w->inotify_fd = -1;
	(void)timerfd_settime(w->timer_fd, 0, &its, NULL);
}

static void drain_fds(struct file_watch *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool dir_gone = false;
	uint64_t ticks;

	while (w->inotify_fd >= 0) {
		ssize_t n = read(w->inotify_fd, buf, sizeof(buf));
		if (n <= 0 && !(n < 0 && errno == EINTR))
			break;
		for (ssize_t i = 0; i + (ssize_t)sizeof(struct inotify_event) <= n;) {
			const struct inotify_event *e = (const struct inotify_event *)(buf + i);
			dir_gone |= (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) != 0;
			i += (ssize_t)(sizeof(*e) + e->len);
		}
	}
	if (dir_gone)
		watch_poll_instead(w);
	while (read(w->timer_fd, &ticks, sizeof(ticks)) < 0 && errno == EINTR)
		;
}

static void watch_queue(struct file_watch *w, const struct weft_record *rec)
{
	for (size_t i = 0; i < w->npending; i++)
		weft_event_clear(&w->pending[i]);
	w->npending = w->ipending = 0;
	w->pending = wrealloc(w->pending, (rec->n ? rec->n : 1) * sizeof(*w->pending));
	for (size_t i = 0; i < rec->n; i++) {
		const struct weft_record_entry *e = &rec->entries[i];
		struct weft_event *ev;
		if (e->key_len < w->prefix_len || memcmp(e->key, w->prefix, w->prefix_len) != 0)
			continue;
		ev = &w->pending[w->npending++];
		memset(ev, 0, sizeof(*ev));
		ev->type = e->op == WEFT_REC_PUT ? WEFT_EV_PUT : WEFT_EV_DELETE;
		ev->kv.key = wstrndup(e->key, e->key_len);
		ev->kv.value = wmalloc(e->value_len + 1);
		if (e->value_len)
			memcpy(ev->kv.value, e->value, e->value_len);
		ev->kv.value[e->value_len] = 0;
		ev->kv.value_len = e->value_len;
		ev->kv.create_rev = e->create_rev;
		ev->kv.mod_rev = e->mod_rev;
		ev->kv.version = e->version;
	}
}

static int watch_die(struct file_watch *w, int r, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int watch_die(struct file_watch *w, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = wvasprintf(fmt, ap);
	va_end(ap);
	log_debug("watch on %s: %s", w->s->log_path, msg);
	free(msg);
	w->dead = r;
	return r;
}

/* Nothing more is complete in the file now. A file that replaced the one
 * we read to its end at revision must_reach holds that revision if a
 * compaction wrote it. Returns -EAGAIN, or -ESTALE (the watch dies). */
static int watch_at_end(struct file_watch *w)
{
	if (w->must_reach > w->log.head)
		return watch_die(w, -ESTALE, "the store at %s was replaced (its revision went back from %lld to %lld)",
				 w->s->dir, (long long)w->must_reach, (long long)w->log.head);
	w->must_reach = -1;
	return -EAGAIN;
}

/* Read the records after w->log.off, queueing the events of the first one
 * that has any. Returns 1 if events were queued, -EAGAIN if nothing more
 * is complete now, or a negative errno that kills the watch (-ESTALE when
 * a new file's snapshot covers revisions we still owe, -EBADMSG, -EIO). */
static int watch_read(struct file_watch *w, bool locked)
{
	for (;;) {
		struct weft_record rec = {0};
		const char *why = NULL;
		size_t len, avail;
		int r = lf_read(&w->log, &rec, &len, &avail, &why);

		if (r == 1) {
			bool bad = w->log.off == 0 ? rec.type != WEFT_REC_SNAPSHOT
						   : rec.type != WEFT_REC_TXN || rec.rev != w->log.head + 1;
			if (bad) {
				weft_record_clear(&rec);
				return watch_die(w, -EBADMSG, "record out of sequence at offset %llu",
						 (unsigned long long)w->log.off);
			}
			if (rec.type == WEFT_REC_SNAPSHOT) {
				w->log.snap_rev = rec.rev;
				w->log.first_txn = len;
				if (!same_id(rec.has_id, rec.id, w->has_id, w->id)) {
					weft_record_clear(&rec);
					return watch_die(w, -ESTALE, "the store at %s was replaced (a different store id)",
							 w->s->dir);
				}
				if (w->next_rev <= rec.rev) {
					weft_record_clear(&rec);
					return watch_die(w, -ESTALE, "revision %lld was compacted",
							 (long long)w->next_rev);
				}
			} else if (rec.rev >= w->next_rev) {
				watch_queue(w, &rec);
				w->next_rev = rec.rev + 1;
			}
			w->log.head = rec.rev;
			w->log.off += len;
			weft_record_clear(&rec);
			if (w->ipending < w->npending)
				return 1;
			continue;
		}
		lf_invalidate(&w->log);
		if (r < 0 && r != -EBADMSG)
			return watch_die(w, -EIO, "read: %s", strerror(-r));
		if (r == 0 && avail == 0)
			return watch_at_end(w);
		r = lf_classify(&w->log, &why);
		if (r == -EBADMSG && !locked) {
			/* Look again with no writer active (see the top comment). */
			const char *what;
			if (lock_path_locked(w->s, LOCK_SH, &what) == 0) {
				r = watch_read(w, true);
				lock_fd(w->s->lock_fd, LOCK_UN);
				return r;
			}
		}
		if (r == -EBADMSG)
			return watch_die(w, r, "damaged record at offset %llu: %s", (unsigned long long)w->log.off,
					 why ? why : "undecodable");
		if (r < 0)
			return watch_die(w, -EIO, "read: %s", strerror(-r));
		return watch_at_end(w);
	}
}

static int file_watch_next(struct weft_watch *base, struct weft_event *ev)
{
	struct file_watch *w = FW(base);
	bool drained_old = false;
	struct stat st;
	int64_t seen;
	int r, fd;

	if (w->dead)
		return w->dead;
	if (w->ipending == w->npending) {
		w->ipending = w->npending = 0;
		/* Drain before reading, so that a write after the read wakes us. */
		drain_fds(w);
		for (;;) {
			r = watch_read(w, false);
			if (r == 1)
				break;
			if (r != -EAGAIN)
				return r;
			/* At the end of our file: is it still the log? */
			if (stat(w->s->log_path, &st) < 0) {
				watch_poll_instead(w);
				return 0;
			}
			if (st.st_ino == w->log.ino && st.st_dev == w->log.dev)
				return 0;
			if (!drained_old) {
				/* Replaced. Writers check the inode under the lock, so the
				 * old file is frozen now: read it to its end first. */
				drained_old = true;
				continue;
			}
			if ((fd = open(w->s->log_path, O_RDONLY | O_CLOEXEC)) < 0)
				return 0;
			seen = w->log.head;
			lf_close(&w->log);
			lf_init(&w->log, fd);
			w->must_reach = seen;
			drained_old = false;
		}
	}
	*ev = w->pending[w->ipending];
	memset(&w->pending[w->ipending], 0, sizeof(w->pending[w->ipending]));
	w->ipending++;
	return 1;
}

static int file_watch_fd(struct weft_watch *base)
{
	return FW(base)->epoll_fd;
}

static void file_watch_free(struct weft_watch *base)
{
	struct file_watch *w = FW(base);

	for (size_t i = w->ipending; i < w->npending; i++)
		weft_event_clear(&w->pending[i]);
	free(w->pending);
	lf_close(&w->log);
	if (w->epoll_fd >= 0)
		close(w->epoll_fd);
	if (w->inotify_fd >= 0)
		close(w->inotify_fd);
	if (w->timer_fd >= 0)
		close(w->timer_fd);
	free(w->prefix);
	free(w);
}

static const struct weft_watch_ops file_watch_ops = {
	.fd = file_watch_fd,
	.next = file_watch_next,
	.free = file_watch_free,
};

/* Set up the fds: inotify on DIR (unless polling is asked for or inotify is
 * unavailable), a timerfd that fires once right away (so an event loop asks
 * for the history a watch from an old revision has to deliver) and then
 * every poll interval if polling, and an epoll fd over both. */
static int watch_setup_fds(struct file_watch *w, struct file_store *s)
{
	int ms = s->poll_ms > 0 ? (int)s->poll_ms : FALLBACK_POLL_MS;
	struct itimerspec its = {.it_value = {0, 1}};
	struct epoll_event ev = {.events = EPOLLIN};

	if (s->poll_ms <= 0) {
		w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (w->inotify_fd >= 0 &&
		    inotify_add_watch(w->inotify_fd, s->dir,
				      IN_MODIFY | IN_MOVED_TO | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
			close(w->inotify_fd);
			w->inotify_fd = -1;
		}
		if (w->inotify_fd < 0)
			log_debug("inotify on %s: %m; polling every %d ms", s->dir, ms);
	}
	if (w->inotify_fd < 0)
		its.it_interval = (struct timespec){ms / 1000, (long)(ms % 1000) * 1000000};
	w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->timer_fd < 0 || timerfd_settime(w->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epoll_fd < 0 || epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->timer_fd, &ev) < 0)
		return -errno;
	if (w->inotify_fd >= 0 && epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->inotify_fd, &ev) < 0)
		return -errno;
	return 0;
}

static int file_watch(struct weft_store *base, const char *prefix, int64_t from_rev, struct weft_watch **out)
{
	struct file_store *s = FS(base);
	struct file_watch *w;
	int r, fd;

	w = wcalloc(1, sizeof(*w));
	w->base.ops = &file_watch_ops;
	w->s = s;
	w->prefix = wstrdup(prefix);
	w->prefix_len = strlen(prefix);
	w->epoll_fd = w->inotify_fd = w->timer_fd = -1;
	lf_init(&w->log, -1);
	/* Notification first, position second: a write in between is then
	 * both after the position and notified. */
	if ((r = watch_setup_fds(w, s)) < 0) {
		file_watch_free(&w->base);
		return weft_store_fail(base, r, "watch: %s", strerror(-r));
	}
	if ((r = fs_catch_up(s, 0)) < 0) {
		file_watch_free(&w->base);
		return r;
	}
	if (from_rev > 0 && from_rev <= s->log.snap_rev) {
		file_watch_free(&w->base);
		return weft_store_fail(base, -ESTALE, "watch from revision %lld: compacted (history starts at %lld)",
				       (long long)from_rev, (long long)(s->log.snap_rev + 1));
	}
	if ((fd = fcntl(s->log.fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		r = -errno;
		file_watch_free(&w->base);
		return weft_store_fail(base, r, "dup: %s", strerror(-r));
	}
	lf_init(&w->log, fd);
	w->log.snap_rev = s->log.snap_rev;
	w->log.first_txn = s->log.first_txn;
	w->log.has_id = s->log.has_id;
	memcpy(w->log.id, s->log.id, sizeof(w->log.id));
	w->has_id = s->has_id;
	memcpy(w->id, s->id, sizeof(w->id));
	w->must_reach = -1;
	if (from_rev == 0) {
		w->log.off = s->log.off;
		w->log.head = s->log.head;
		w->next_rev = s->log.head + 1;
	} else {
		w->log.off = s->log.first_txn;
		w->log.head = s->log.snap_rev;
		w->next_rev = from_rev;
	}
	*out = &w->base;
	return 0;
}

/* ---------------------------------------------------------------------
 * Opening and closing.
 */

/* Let go of the store's files and the index (close, and reopen). */
static void fs_detach(struct file_store *s)
{
	lf_close(&s->log);
	idx_clear(&s->idx);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	s->lock_fd = s->dir_fd = -1;
}

static void file_close(struct weft_store *base)
{
	struct file_store *s = FS(base);

	fs_detach(s);
	weft_buf_free(&s->wbuf);
	free(s->dir);
	free(s->log_path);
	free(s->lock_path);
	free(s->new_path);
	free(s->replaced);
	free(s);
}

/* mkdir -p with mode 0700 for what it creates. */
static int mkdir_p(const char *dir)
{
	_cleanup_free_ char *p = wstrdup(dir);

	for (char *c = p + 1; *c; c++) {
		if (*c != '/')
			continue;
		*c = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		*c = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int parse_options(struct file_store *s, char *opts)
{
	char *save = NULL;

	for (char *kv = strtok_r(opts, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		int64_t *dst;
		if (!eq)
			return weft_store_fail(&s->base, -EINVAL, "store option \"%s\": expected name=value", kv);
		*eq = 0;
		if (streq(kv, "compact_bytes"))
			dst = &s->compact_bytes;
		else if (streq(kv, "keep_revs"))
			dst = &s->keep_revs;
		else if (streq(kv, "poll_ms"))
			dst = &s->poll_ms;
		else
			return weft_store_fail(&s->base, -EINVAL,
					       "unknown store option \"%s\" (compact_bytes, keep_revs, poll_ms)", kv);
		if (weft_parse_int64(eq + 1, 0, INT32_MAX * (int64_t)1024, dst) < 0)
			return weft_store_fail(&s->base, -EINVAL, "store option %s: bad value \"%s\"", kv, eq + 1);
	}
	if (s->poll_ms > 60000)
		return weft_store_fail(&s->base, -EINVAL, "store option poll_ms: at most 60000");
	return 0;
}

/* A new store id: random bytes (getrandom() without waiting for the pool
 * at early boot, then /dev/urandom, then the clock and the pid: the id
 * only has to differ from the store it replaces). */
static void random_id(uint8_t *id)
{
	size_t n = 0;
	int fd;

	while (n < WEFT_RECORD_ID_SIZE) {
		ssize_t k = getrandom(id + n, WEFT_RECORD_ID_SIZE - n, GRND_NONBLOCK);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	if (n < WEFT_RECORD_ID_SIZE && (fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) >= 0) {
		while (n < WEFT_RECORD_ID_SIZE) {
			ssize_t k = read(fd, id + n, WEFT_RECORD_ID_SIZE - n);
			if (k <= 0)
				break;
			n += (size_t)k;
		}
		close(fd);
	}
	if (n < WEFT_RECORD_ID_SIZE) {
		uint64_t a = weft_fnv1a(&(int64_t){weft_now_ns()}, 8, WEFT_FNV_INIT);
		uint64_t b = weft_fnv1a(&(pid_t){getpid()}, sizeof(pid_t), a);
		memcpy(id, &a, 8);
		memcpy(id + 8, &b, 8);
	}
}

/* Create store.log with an empty snapshot and a new store id, unless
 * someone else did. */
static int fs_create_log(struct file_store *s)
{
	struct weft_record rec = {.type = WEFT_REC_SNAPSHOT, .rev = 0, .has_id = true};
	struct weft_buf b = {0};
	int r;

	if ((r = fs_lock(s, LOCK_EX)) < 0)
		return r;
	if (access(s->log_path, F_OK) == 0) {
		fs_unlock(s);
		return 0;
	}
	random_id(rec.id);
	weft_record_encode(&rec, &b);
	r = fs_replace_log(s, &b, -1, 0, 0);
	weft_buf_free(&b);
	fs_unlock(s);
	if (r < 0)
		return weft_store_fail(&s->base, r, "create %s: %s", s->log_path, strerror(-r));
	return 0;
}

/* Open what the paths name: DIR, the lock file, the log (creating an
 * empty store if there is none), read it and take its store id as the
 * handle's. Returns 0 or a negative errno (errmsg set). */
static int fs_attach(struct file_store *s)
{
	int r;

	s->dir_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd < 0)
		return weft_store_fail(&s->base, -errno, "open %s: %m", s->dir);
	s->lock_fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0 && errno == EACCES) {
		s->writable = false;
		s->lock_fd = open(s->lock_path, O_RDONLY | O_CLOEXEC);
	}
	if (s->lock_fd < 0)
		return weft_store_fail(&s->base, -errno, "open %s: %m", s->lock_path);
	r = fs_open_log(s, &s->log);
	if (r == -EACCES && s->writable) {
		s->writable = false;
		r = fs_open_log(s, &s->log);
	}
	if (r == -ENOENT) {
		if ((r = fs_create_log(s)) < 0)
			return r;
		r = fs_open_log(s, &s->log);
	}
	if (r < 0)
		return weft_store_fail(&s->base, r, "open %s: %s", s->log_path, strerror(-r));
	if ((r = fs_catch_up(s, 0)) < 0)
		return r;
	s->has_id = s->log.has_id;
	memcpy(s->id, s->log.id, sizeof(s->id));
	s->ident_known = true;
	return 0;
}

static int file_open(const char *scheme, const char *spec, struct weft_store **out, char **errmsg)
{
	struct file_store *s = wcalloc(1, sizeof(*s));
	_cleanup_free_ char *copy = wstrdup(spec);
	char *q = strchr(copy, '?');
	struct stat st;
	int r;

	s->base.ops = &weft_store_file_ops;
	s->lock_fd = s->dir_fd = -1;
	lf_init(&s->log, -1);
	s->compact_bytes = DEFAULT_COMPACT_BYTES;
	s->keep_revs = DEFAULT_KEEP_REVS;
	s->writable = true;
	if (q)
		*q++ = 0;
	if (!*copy) {
		r = weft_store_fail(&s->base, -EINVAL, "store URL file:%s: no directory", spec);
		goto fail;
	}
	if (q && (r = parse_options(s, q)) < 0)
		goto fail;
	if ((r = mkdir_p(copy)) < 0) {
		r = weft_store_fail(&s->base, r, "create directory %s: %s", copy, strerror(-r));
		goto fail;
	}
	if (stat(copy, &st) < 0 || !S_ISDIR(st.st_mode)) {
		r = weft_store_fail(&s->base, -ENOTDIR, "%s is not a directory", copy);
		goto fail;
	}
	/* Absolute paths: a daemon may chdir() after opening its store. */
	s->dir = realpath(copy, NULL);
	if (!s->dir) {
		r = weft_store_fail(&s->base, -errno, "%s: %m", copy);
		goto fail;
	}
	s->log_path = wasprintf("%s/store.log", s->dir);
	s->lock_path = wasprintf("%s/store.lock", s->dir);
	s->new_path = wasprintf("%s/store.log.new", s->dir);
	if ((r = fs_attach(s)) < 0)
		goto fail;
	*out = &s->base;
	return 0;
fail:
	if (errmsg)
		*errmsg = wstrdup(s->base.errmsg);
	file_close(&s->base);
	return r;
}

/* After fs_replaced(): let go of the old store and open the one in DIR
 * now (creating DIR and an empty store if there is none, as an open
 * does). The handle's watches stay dead. On failure the handle stays
 * replaced, with this failure as the reason. */
static int file_reopen(struct weft_store *base)
{
	struct file_store *s = FS(base);
	int r;

	fs_detach(s);
	s->writable = true;
	s->ident_known = false;
	free(s->replaced);
	s->replaced = NULL;
	s->base.replaced = false;
	if ((r = mkdir_p(s->dir)) < 0)
		r = weft_store_fail(base, r, "create directory %s: %s", s->dir, strerror(-r));
	else
		r = fs_attach(s);
	if (r < 0) {
		s->replaced = wasprintf("the store at %s was replaced and could not be opened again: %s", s->dir,
					base->errmsg);
		s->base.replaced = true;
		lf_close(&s->log);
		idx_clear(&s->idx);
		return weft_store_fail(base, r, "%s", s->replaced);
	}
	return 0;
}

const struct weft_store_ops weft_store_file_ops = {
	.name = "file",
	.open = file_open,
	.close = file_close,
	.get = file_get,
	.list = file_list,
	.revision = file_revision,
	.txn = file_txn,
	.watch = file_watch,
	.check = file_check,
	.reopen = file_reopen,
};
