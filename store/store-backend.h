/* store-backend.h - the vtable behind store.h. A backend implements get,
 * list, revision, txn, watch and check; store.c builds put/create/cas/delete
 * on txn and does the argument checking common to all backends. */
#ifndef WEFT_STORE_BACKEND_H
#define WEFT_STORE_BACKEND_H

#include "store/store.h"

struct weft_store_ops {
	const char *name;
	/* spec is the URL without "scheme:" ("DIR" or "//HOST:PORT..."). */
	int (*open)(const char *scheme, const char *spec, struct weft_store **out, char **errmsg);
	void (*close)(struct weft_store *s);
	int (*get)(struct weft_store *s, const char *key, struct weft_kv *out);
	int (*list)(struct weft_store *s, const char *prefix, struct weft_kv_list *out);
	int (*revision)(struct weft_store *s, int64_t *rev);
	int (*txn)(struct weft_store *s, const struct weft_txn_cmp *cmps, size_t ncmps,
		   const struct weft_txn_op *ops, size_t nops, int64_t *rev);
	int (*watch)(struct weft_store *s, const char *prefix, int64_t from_rev, struct weft_watch **out);
	int (*check)(struct weft_store *s);
	/* Optional (NULL: nothing to do): see weft_store_reopen(). */
	int (*reopen)(struct weft_store *s);
};

/* Every backend's handle starts with this. */
struct weft_store {
	const struct weft_store_ops *ops;
	char errmsg[512];
	bool outcome_unknown; /* see weft_store_outcome_unknown() */
	bool replaced;        /* see weft_store_replaced(); the backend sets it */
};

struct weft_watch_ops {
	int (*fd)(struct weft_watch *w);
	int (*next)(struct weft_watch *w, struct weft_event *ev);
	void (*free)(struct weft_watch *w);
};

/* Every backend's watch starts with this. */
struct weft_watch {
	const struct weft_watch_ops *ops;
};

/* Record an error description on the handle and return r (negative errno). */
int weft_store_fail(struct weft_store *s, int r, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* The same for a write that may have been applied: appends "(the write may
 * or may not have been applied)" and sets outcome_unknown. */
int weft_store_fail_unknown(struct weft_store *s, int r, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Maximum key length accepted by every backend. */
#define WEFT_STORE_KEY_MAX 1024
/* Maximum value size accepted by every backend. */
#define WEFT_STORE_VALUE_MAX (1024 * 1024)

extern const struct weft_store_ops weft_store_file_ops;
extern const struct weft_store_ops weft_store_etcd_ops;

#endif
