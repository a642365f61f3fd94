/* store.c - URL dispatch and the operations common to every backend. */
#include "store/store-backend.h"

#include <poll.h>

void weft_kv_clear(struct weft_kv *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

void weft_kv_list_clear(struct weft_kv_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		weft_kv_clear(&l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

void weft_event_clear(struct weft_event *ev)
{
	if (!ev)
		return;
	weft_kv_clear(&ev->kv);
	ev->type = 0;
}

int weft_store_fail(struct weft_store *s, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
	va_end(ap);
	return r;
}

int weft_store_fail_unknown(struct weft_store *s, int r, const char *fmt, ...)
{
	static const char tail[] = " (the write may or may not have been applied)";
	size_t room = sizeof(s->errmsg) - (sizeof(tail) - 1);
	va_list ap;

	/* The tail is kept whole even when the description is cut. */
	va_start(ap, fmt);
	vsnprintf(s->errmsg, room, fmt, ap);
	va_end(ap);
	memcpy(s->errmsg + strlen(s->errmsg), tail, sizeof(tail));
	s->outcome_unknown = true;
	return r;
}

/* Every operation starts with no error. */
static void reset_error(struct weft_store *s)
{
	s->errmsg[0] = 0;
	s->outcome_unknown = false;
}

int weft_store_open(const char *url, struct weft_store **out, char **errmsg)
{
	static const struct {
		const char *scheme;
		const struct weft_store_ops *ops;
	} schemes[] = {
		{"file", &weft_store_file_ops},
		{"etcd", &weft_store_etcd_ops},
		{"etcds", &weft_store_etcd_ops},
	};
	const char *colon;

	if (errmsg)
		*errmsg = NULL;
	if (!url || !(colon = strchr(url, ':'))) {
		if (errmsg)
			*errmsg = wasprintf("store URL \"%s\": expected file:DIR or etcd://HOST:PORT", url ? url : "");
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
		size_t l = strlen(schemes[i].scheme);
		if ((size_t)(colon - url) == l && strncmp(url, schemes[i].scheme, l) == 0)
			return schemes[i].ops->open(schemes[i].scheme, colon + 1, out, errmsg);
	}
	if (errmsg)
		*errmsg = wasprintf("store URL \"%s\": unknown scheme (expected file:, etcd:// or etcds://)", url);
	return -EINVAL;
}

void weft_store_close(struct weft_store *s)
{
	if (s)
		s->ops->close(s);
}

const char *weft_store_errmsg(const struct weft_store *s)
{
	return s->errmsg;
}

bool weft_store_outcome_unknown(const struct weft_store *s)
{
	return s->outcome_unknown;
}

bool weft_store_replaced(const struct weft_store *s)
{
	return s->replaced;
}

int weft_store_reopen(struct weft_store *s)
{
	reset_error(s);
	return s->ops->reopen ? s->ops->reopen(s) : 0;
}

const char *weft_store_backend(const struct weft_store *s)
{
	return s->ops->name;
}

static int check_key(struct weft_store *s, const char *key)
{
	if (!key || !*key)
		return weft_store_fail(s, -EINVAL, "empty key");
	if (strlen(key) > WEFT_STORE_KEY_MAX)
		return weft_store_fail(s, -EINVAL, "key longer than %d bytes", WEFT_STORE_KEY_MAX);
	return 0;
}

int weft_store_get(struct weft_store *s, const char *key, struct weft_kv *out)
{
	int r;

	reset_error(s);
	if ((r = check_key(s, key)) < 0)
		return r;
	return s->ops->get(s, key, out);
}

int weft_store_list(struct weft_store *s, const char *prefix, struct weft_kv_list *out)
{
	if (!prefix)
		prefix = "";
	reset_error(s);
	return s->ops->list(s, prefix, out);
}

int weft_store_revision(struct weft_store *s, int64_t *rev)
{
	reset_error(s);
	return s->ops->revision(s, rev);
}

int weft_store_txn(struct weft_store *s, const struct weft_txn_cmp *cmps, size_t ncmps,
		   const struct weft_txn_op *ops, size_t nops, int64_t *rev)
{
	int r;

	reset_error(s);
	for (size_t i = 0; i < ncmps; i++) {
		if ((r = check_key(s, cmps[i].key)) < 0)
			return r;
		if (cmps[i].mod_rev < 0)
			return weft_store_fail(s, -EINVAL, "negative compare revision");
	}
	for (size_t i = 0; i < nops; i++) {
		if ((r = check_key(s, ops[i].key)) < 0)
			return r;
		if (ops[i].type != WEFT_OP_PUT && ops[i].type != WEFT_OP_DELETE)
			return weft_store_fail(s, -EINVAL, "bad op type %d", ops[i].type);
		if (ops[i].type == WEFT_OP_PUT && ops[i].value_len > WEFT_STORE_VALUE_MAX)
			return weft_store_fail(s, -EFBIG, "value of %s larger than %d bytes", ops[i].key,
					       WEFT_STORE_VALUE_MAX);
		for (size_t j = 0; j < i; j++)
			if (streq(ops[i].key, ops[j].key))
				return weft_store_fail(s, -EINVAL, "two ops on key %s in one txn", ops[i].key);
	}
	return s->ops->txn(s, cmps, ncmps, ops, nops, rev);
}

int weft_store_put(struct weft_store *s, const char *key, const void *value, size_t len, int64_t *rev)
{
	struct weft_txn_op op = {WEFT_OP_PUT, key, value, len};
	return weft_store_txn(s, NULL, 0, &op, 1, rev);
}

int weft_store_create(struct weft_store *s, const char *key, const void *value, size_t len, int64_t *rev)
{
	int r = weft_store_cas(s, key, value, len, 0, rev);
	if (r == -ECANCELED)
		return weft_store_fail(s, -EEXIST, "key %s exists", key);
	return r;
}

int weft_store_cas(struct weft_store *s, const char *key, const void *value, size_t len,
		   int64_t expect_mod_rev, int64_t *rev)
{
	struct weft_txn_cmp cmp = {key, expect_mod_rev};
	struct weft_txn_op op = {WEFT_OP_PUT, key, value, len};
	return weft_store_txn(s, &cmp, 1, &op, 1, rev);
}

int weft_store_delete(struct weft_store *s, const char *key, int64_t expect_mod_rev, int64_t *rev)
{
	struct weft_txn_op op = {WEFT_OP_DELETE, key, NULL, 0};
	struct weft_kv kv = {0};
	int r;

	if (expect_mod_rev > 0) {
		struct weft_txn_cmp cmp = {key, expect_mod_rev};
		return weft_store_txn(s, &cmp, 1, &op, 1, rev);
	}
	/* Unconditional: -ENOENT if absent. Read the mod_rev and delete with a
	 * compare so that "absent" is decided atomically with the delete. */
	for (;;) {
		r = weft_store_get(s, key, &kv);
		if (r < 0)
			return r == -ENOENT ? weft_store_fail(s, r, "key %s not found", key) : r;
		struct weft_txn_cmp cmp = {key, kv.mod_rev};
		weft_kv_clear(&kv);
		r = weft_store_txn(s, &cmp, 1, &op, 1, rev);
		if (r != -ECANCELED)
			return r;
	}
}

int weft_store_watch(struct weft_store *s, const char *prefix, int64_t from_rev, struct weft_watch **out)
{
	reset_error(s);
	if (from_rev < 0)
		return weft_store_fail(s, -EINVAL, "negative watch revision");
	return s->ops->watch(s, prefix ? prefix : "", from_rev, out);
}

int weft_watch_fd(struct weft_watch *w)
{
	return w->ops->fd(w);
}

int weft_watch_next(struct weft_watch *w, struct weft_event *ev)
{
	return w->ops->next(w, ev);
}

int weft_watch_wait(struct weft_watch *w, struct weft_event *ev, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : weft_now_ms() + timeout_ms;

	for (;;) {
		int r = weft_watch_next(w, ev);
		if (r != 0)
			return r;
		int left = -1;
		if (deadline >= 0) {
			int64_t now = weft_now_ms();
			if (now >= deadline)
				return 0;
			left = (int)(deadline - now);
		}
		struct pollfd p = {.fd = weft_watch_fd(w), .events = POLLIN};
		if (poll(&p, 1, left) < 0 && errno != EINTR)
			return -errno;
	}
}

void weft_watch_free(struct weft_watch *w)
{
	if (w)
		w->ops->free(w);
}

int weft_store_check(struct weft_store *s)
{
	reset_error(s);
	return s->ops->check(s);
}
