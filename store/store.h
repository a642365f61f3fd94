/* store.h - weft's datastore: one API, two backends.
 *
 *   file:DIR                      the embedded store (default): a crash-safe
 *                                 append-only log in DIR, shared by every
 *                                 process on the machine, no server.
 *   etcd://HOST:PORT[,HOST:PORT...][?opts]   etcd v3 through its JSON gateway.
 *   etcds://...                   the same over TLS.
 *     opts: prefix=/weft  ca=FILE  cert=FILE  key=FILE  timeout_ms=N
 *
 * The model is etcd's: a flat, ordered key space of byte-string values; a
 * store-wide revision counter that every successful write increments by one;
 * per key a create revision, a modification revision and a version. Keys are
 * printable strings (no NUL); values are arbitrary bytes (kept NUL-terminated
 * in memory for convenience).
 *
 * Return convention, for every function here: 0 (or a count where said) on
 * success, a negative errno on failure, output parameters untouched on
 * failure. The errors callers test for:
 *   -ENOENT       key not found (get, delete)
 *   -EEXIST       create on a key that exists
 *   -ECANCELED    a compare of a txn/cas/conditional delete did not hold
 *   -ESTALE       watch from a revision that was compacted away; a watch
 *                 whose history was compacted; every operation of a handle
 *                 whose store was replaced (weft_store_replaced())
 *   -EINVAL       bad URL, bad key, bad argument
 *   -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH, -EIO   backend unreachable/failed
 *   -EBADMSG      the backend returned or holds something undecodable
 * After a failure weft_store_errmsg() holds a one-line human description,
 * and after a failed write weft_store_outcome_unknown() tells whether
 * nothing was written or the write may have been applied.
 */
#ifndef WEFT_STORE_H
#define WEFT_STORE_H

#include "lib/util.h"

struct weft_store;
struct weft_watch;

struct weft_kv {
	char *key;
	char *value; /* value_len bytes + a NUL not counted in value_len */
	size_t value_len;
	int64_t create_rev;
	int64_t mod_rev;
	int64_t version; /* number of puts since creation, 1 after create */
};

struct weft_kv_list {
	struct weft_kv *items; /* sorted by key */
	size_t n;
	int64_t rev; /* the store revision the list was read at */
};

void weft_kv_clear(struct weft_kv *kv);
void weft_kv_list_clear(struct weft_kv_list *l);

/* Open a store by URL (see above). Returns 0 or a negative errno; on error
 * *errmsg (if errmsg is not NULL) gets a malloc'ed one-line description. */
int weft_store_open(const char *url, struct weft_store **out, char **errmsg);
void weft_store_close(struct weft_store *s);
/* The last error's description for this handle ("" if none). */
const char *weft_store_errmsg(const struct weft_store *s);
/* After a failed write (txn, put, create, cas, delete): true when the
 * write reached the backend and its outcome is unknown, so that it may
 * have been applied (or may still be): etcd's answer was lost or timed out
 * after the request was sent, etcd answered a 5xx ("request timed out",
 * "leader changed") or a 200 that does not decode, or the file backend
 * appended its record but fdatasync() failed. The error description then
 * ends with "(the write may or may not have been applied)"; re-read to
 * learn the outcome. false after any other failure (nothing was written)
 * and after a success; every operation resets it. The errno is the
 * failure's own (-ETIMEDOUT, -EIO, -EBADMSG...), as for certain failures. */
bool weft_store_outcome_unknown(const struct weft_store *s);
/* true once the handle found a different store where its own was: the
 * file backend, when DIR/store.log was removed and created again or DIR
 * wiped and made again (another store id, or fewer revisions than the
 * handle has seen; a compaction is neither). Then every operation fails
 * with -ESTALE ("the store at DIR was replaced (...): reopen it"), every
 * watch of the handle ends with -ESTALE, and the handle stays so until
 * weft_store_reopen(). Never true for etcd. */
bool weft_store_replaced(const struct weft_store *s);
/* Forget the store the handle had and open the one at its URL now, as
 * weft_store_open() would (file: creating DIR and an empty store if there
 * is none); what the caller knew (revisions, mod_revs, values) is of the
 * old store and must be read again. The handle's watches stay dead: free
 * them and watch again. Returns 0 (also when there is nothing to do, e.g.
 * etcd) or a negative errno, after which the handle stays replaced. */
int weft_store_reopen(struct weft_store *s);
/* "file" or "etcd". */
const char *weft_store_backend(const struct weft_store *s);

/* Read one key. -ENOENT if absent. */
int weft_store_get(struct weft_store *s, const char *key, struct weft_kv *out);
/* Read every key that starts with prefix ("" = everything), sorted. */
int weft_store_list(struct weft_store *s, const char *prefix, struct weft_kv_list *out);
/* The current store revision. */
int weft_store_revision(struct weft_store *s, int64_t *rev);

/* Unconditional write. *rev (optional) gets the revision of the write. */
int weft_store_put(struct weft_store *s, const char *key, const void *value, size_t len, int64_t *rev);
/* Write only if the key is absent: -EEXIST otherwise. */
int weft_store_create(struct weft_store *s, const char *key, const void *value, size_t len, int64_t *rev);
/* Compare-and-swap: write only if the key's mod_rev equals expect_mod_rev
 * (0 = the key must be absent). -ECANCELED otherwise. */
int weft_store_cas(struct weft_store *s, const char *key, const void *value, size_t len,
		   int64_t expect_mod_rev, int64_t *rev);
/* Delete. expect_mod_rev 0 = unconditional (-ENOENT if absent); otherwise
 * -ECANCELED unless the key exists with that mod_rev. */
int weft_store_delete(struct weft_store *s, const char *key, int64_t expect_mod_rev, int64_t *rev);

/* A transaction: if every compare holds, apply every op atomically at one
 * new revision (all events of a txn carry that revision); else -ECANCELED
 * and nothing is written. */
struct weft_txn_cmp {
	const char *key;
	int64_t mod_rev; /* the key's mod_rev must equal this; 0 = must be absent */
};
enum weft_op_type { WEFT_OP_PUT = 1, WEFT_OP_DELETE = 2 };
struct weft_txn_op {
	enum weft_op_type type;
	const char *key;
	const void *value; /* PUT only */
	size_t value_len;
};
/* A DELETE of an absent key is a no-op inside a txn. A txn whose compares
 * hold but that changes nothing still succeeds. At most one op per key. */
int weft_store_txn(struct weft_store *s, const struct weft_txn_cmp *cmps, size_t ncmps,
		   const struct weft_txn_op *ops, size_t nops, int64_t *rev);

/* Watching: every change to a key under prefix, in revision order, none
 * lost. from_rev > 0 delivers every event with revision >= from_rev
 * (-ESTALE if that history was compacted); from_rev == 0 delivers only
 * changes after the call. The watch works with an event loop: wait until
 * weft_watch_fd() is readable, then call weft_watch_next() until it
 * returns 0. The fd may also wake up with nothing to deliver. */
enum weft_event_type { WEFT_EV_PUT = 1, WEFT_EV_DELETE = 2 };
struct weft_event {
	enum weft_event_type type;
	struct weft_kv kv; /* DELETE: kv.mod_rev is the deletion's revision, value "" */
};
void weft_event_clear(struct weft_event *ev);

int weft_store_watch(struct weft_store *s, const char *prefix, int64_t from_rev, struct weft_watch **out);
int weft_watch_fd(struct weft_watch *w);
/* 1 and *ev filled (caller clears it), 0 when nothing is pending now, or a
 * negative errno (the watch is then dead: -ESTALE, -EIO, -ECONNRESET...). */
int weft_watch_next(struct weft_watch *w, struct weft_event *ev);
/* Like weft_watch_next() but waits up to timeout_ms (-1 forever) for an
 * event. Returns 1, 0 on timeout, or a negative errno. */
int weft_watch_wait(struct weft_watch *w, struct weft_event *ev, int timeout_ms);
void weft_watch_free(struct weft_watch *w);

/* Check a store's integrity (file backend: every record of the log decodes
 * and its checksum holds, revisions increase; etcd: the cluster answers).
 * Returns 0 or a negative errno with the description in errmsg. */
int weft_store_check(struct weft_store *s);

#endif
