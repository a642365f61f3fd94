/* weftd-watch.c - one store watch on /weft/v1/ for a half of weftd (BGP,
 * fabric, ACLs), driven by the loop, that survives a dead watch.
 *
 * Each half wants the same thing: every event in order while the watch
 * lives, and when it dies (-ESTALE after a compaction, a lost etcd
 * stream), a new watch and a full resync so that whatever happened in
 * between is seen. The helper re-opens the watch at once, or every second
 * until it can, and calls on_reset after each successful re-open. When
 * the store itself was replaced (the embedded store's DIR reset: the
 * watch ends with -ESTALE and the handle refuses every operation), the
 * handle is reopened first (weftd_store_reopen_if_replaced()), so the
 * resync reads the new store instead of failing every second. */
#include "felix/weftd.h"
#include "ipam/ipam.h"
#include "lib/json.h"
#include "lib/log.h"
#include "model/resource.h"

#include <sys/epoll.h>

#define WATCH_RETRY_NS (1000000000LL)

struct weftd_watch {
	struct weftd *d;
	struct weft_loop *loop;
	char *what;
	weftd_watch_event_fn on_event;
	weftd_watch_reset_fn on_reset;
	void *userdata;
	struct weft_watch *watch;
	struct weft_source *io, *retry;
	/* weftd_watch_block_event(): each IPAM block's affinity and borrowed
	 * addresses as last seen, sorted by key ("" = affine to nobody); each
	 * Node record but its status, in the affinity slot. */
	struct block_seen *blocks;
	size_t n_blocks;
};

struct block_seen {
	char *key, *affinity, *borrowed;
};

static int on_io(struct weft_source *s, int fd, uint32_t revents, void *userdata);

static void blocks_clear(struct weftd_watch *w)
{
	for (size_t i = 0; i < w->n_blocks; i++) {
		free(w->blocks[i].key);
		free(w->blocks[i].affinity);
		free(w->blocks[i].borrowed);
	}
	free(w->blocks);
	w->blocks = NULL;
	w->n_blocks = 0;
}

static void close_watch(struct weftd_watch *w)
{
	/* Events may be lost until the next watch: forget what was seen. */
	blocks_clear(w);
	weft_source_free(w->io);
	w->io = NULL;
	weft_watch_free(w->watch);
	w->watch = NULL;
}

int weftd_store_reopen_if_replaced(struct weftd *d)
{
	int r;

	if (!weft_store_replaced(d->store))
		return 0;
	log_warn("store %s: a different store is there now (the one weftd had was removed or wiped): opening "
		 "it; every half resyncs from it%s",
		 d->store_url, d->node_registered ? ", and the node's Node is registered in it again" : "");
	r = weft_store_reopen(d->store);
	if (r < 0)
		return log_warn_errno(r, "store %s: %s (trying again later)", d->store_url, weft_store_errmsg(d->store));
	/* As at start-up: the new store may not know this node at all, and
	 * then no peer would mesh with it and its blocks would not be
	 * exported. The Node is created, or its address, AS and cluster id
	 * are set again; nothing else of it changes. A failure is logged
	 * and not retried (restart weftd), the halves resync regardless. */
	if (d->node_registered) {
		int q = weftd_bgp_register_node(d, &d->underlay, d->reg_as_number, d->reg_rr_cluster_id);
		if (q < 0)
			log_warn_errno(q, "node %s: registering the Node in the new store failed; restart weftd to "
					  "register it", d->node);
	}
	return 1;
}

static int open_watch(struct weftd_watch *w)
{
	_cleanup_free_ char *desc = NULL;
	int r;

	(void)weftd_store_reopen_if_replaced(w->d);
	r = weft_store_watch(w->d->store, "/weft/v1/", 0, &w->watch);
	/* The watch's catch-up may be what finds the store replaced. */
	if (r < 0 && weftd_store_reopen_if_replaced(w->d) > 0)
		r = weft_store_watch(w->d->store, "/weft/v1/", 0, &w->watch);
	if (r < 0)
		return log_warn_errno(r, "%s: watching the store: %s", w->what, weft_store_errmsg(w->d->store));
	r = weft_loop_add_io(w->loop, weft_watch_fd(w->watch), EPOLLIN, on_io, w, &w->io);
	if (r < 0) {
		weft_watch_free(w->watch);
		w->watch = NULL;
		return log_warn_errno(r, "%s: watching the store: %m", w->what);
	}
	desc = wasprintf("%s store watch", w->what);
	weft_source_set_description(w->io, desc);
	return 0;
}

static int on_io(struct weft_source *s, int fd, uint32_t revents, void *userdata)
{
	struct weftd_watch *w = userdata;
	struct weft_event ev;
	int r;

	(void)s;
	(void)fd;
	(void)revents;
	for (;;) {
		memset(&ev, 0, sizeof(ev));
		r = weft_watch_next(w->watch, &ev);
		if (r <= 0)
			break;
		w->on_event(&ev, w->userdata);
		weft_event_clear(&ev);
	}
	if (r < 0) {
		log_warn_errno(r, "%s: store watch failed: %m; watching again", w->what);
		close_watch(w);
		if (open_watch(w) < 0)
			(void)weft_source_timer_set(w->retry, weft_now_ns() + WATCH_RETRY_NS, 0);
		else
			w->on_reset(w->userdata);
	}
	return 0;
}

static int on_retry(struct weft_source *s, int64_t now_ns, void *userdata)
{
	struct weftd_watch *w = userdata;

	(void)s;
	(void)now_ns;
	if (w->watch)
		return 0;
	if (open_watch(w) < 0)
		(void)weft_source_timer_set(w->retry, weft_now_ns() + WATCH_RETRY_NS, 0);
	else
		w->on_reset(w->userdata);
	return 0;
}

void weftd_watch_poll(struct weftd_watch *w)
{
	if (w && w->watch)
		(void)on_io(w->io, weft_watch_fd(w->watch), EPOLLIN, w);
}

int weftd_watch_open(struct weftd *d, struct weft_loop *loop, const char *what, weftd_watch_event_fn on_event,
		     weftd_watch_reset_fn on_reset, void *userdata, struct weftd_watch **out)
{
	struct weftd_watch *w = wcalloc(1, sizeof(*w));
	int r;

	*w = (struct weftd_watch){d, loop, wstrdup(what), on_event, on_reset, userdata, NULL, NULL, NULL, NULL, 0};
	r = weft_loop_add_timer(loop, WATCH_RETRY_NS, 0, on_retry, w, &w->retry);
	if (r < 0)
		goto fail;
	(void)weft_source_timer_stop(w->retry);
	r = open_watch(w);
	if (r < 0)
		goto fail;
	*out = w;
	return 0;
fail:
	weftd_watch_close(w);
	return r;
}

void weftd_watch_close(struct weftd_watch *w)
{
	if (!w)
		return;
	close_watch(w);
	weft_source_free(w->retry);
	free(w->what);
	free(w);
}

static const char *str_member(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* What matters of an IPAM block record to the halves that route blocks:
 * its affinity ("" for none) and its borrowed addresses as a canonical
 * text, "ip node;" for every allocation whose node is not the affinity
 * (the allocations are sorted by address). false when the value cannot be
 * read (then every event counts). */
static bool block_summary(const struct weft_event *ev, char **affinity, char **borrowed)
{
	_cleanup_json_ cJSON *doc = NULL;
	const cJSON *a;
	const char *aff;
	struct weft_buf t = {0};

	if (weft_json_parse(ev->kv.value, ev->kv.value_len, &doc) < 0 || !cJSON_IsObject(doc))
		return false;
	aff = str_member(doc, "affinity");
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(doc, "allocations")) {
		const char *ip = str_member(a, "ip");
		const char *node = str_member(cJSON_GetObjectItemCaseSensitive(a, "attrs"), "node");

		if (ip && node && (!aff || !streq(aff, node)))
			weft_buf_printf(&t, "%s %s;", ip, node);
	}
	*affinity = wstrdup(aff ? aff : "");
	*borrowed = t.len ? weft_buf_steal(&t) : wstrdup("");
	return true;
}

/* What matters of a Node record to the halves that route: all of it but
 * spec.status (weftd's report, rewritten as BGP sessions come and go), as
 * compact JSON in *affinity (*borrowed ""). false when the value cannot be
 * read (then every event counts). */
static bool node_summary(const struct weft_event *ev, char **affinity, char **borrowed)
{
	_cleanup_json_ cJSON *doc = NULL;
	cJSON *spec;

	if (weft_json_parse(ev->kv.value, ev->kv.value_len, &doc) < 0 || !cJSON_IsObject(doc))
		return false;
	spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
	if (cJSON_IsObject(spec))
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "status");
	*affinity = weft_json_print(doc);
	*borrowed = wstrdup("");
	return true;
}

unsigned weftd_watch_block_event(struct weftd_watch *w, const struct weft_event *ev)
{
	size_t lo = 0, hi = w->n_blocks;
	char *aff, *borrowed;
	unsigned what;
	int c = 1;
	bool node = startswith(ev->kv.key, weft_kind_prefix(WEFT_KIND_NODE));

	if (!startswith(ev->kv.key, WEFT_IPAM_BLOCKS_PREFIX) && !node)
		return WEFTD_BLOCK_MOVED | WEFTD_BLOCK_BORROWS;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		c = strcmp(w->blocks[mid].key, ev->kv.key);
		if (c == 0) {
			lo = mid;
			break;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (ev->type != WEFT_EV_PUT || !(node ? node_summary(ev, &aff, &borrowed) : block_summary(ev, &aff, &borrowed))) {
		/* Gone (or unreadable): it counts, and is forgotten. */
		if (c == 0) {
			free(w->blocks[lo].key);
			free(w->blocks[lo].affinity);
			free(w->blocks[lo].borrowed);
			memmove(&w->blocks[lo], &w->blocks[lo + 1], (w->n_blocks - lo - 1) * sizeof(*w->blocks));
			w->n_blocks--;
		}
		return WEFTD_BLOCK_MOVED | WEFTD_BLOCK_BORROWS;
	}
	if (c == 0) {
		what = (streq(w->blocks[lo].affinity, aff) ? 0 : WEFTD_BLOCK_MOVED) |
		       (streq(w->blocks[lo].borrowed, borrowed) ? 0 : WEFTD_BLOCK_BORROWS);
		free(w->blocks[lo].affinity);
		free(w->blocks[lo].borrowed);
		w->blocks[lo].affinity = aff;
		w->blocks[lo].borrowed = borrowed;
		return what;
	}
	what = WEFTD_BLOCK_MOVED | (*borrowed ? WEFTD_BLOCK_BORROWS : 0);
	w->blocks = wrealloc(w->blocks, (w->n_blocks + 1) * sizeof(*w->blocks));
	memmove(&w->blocks[lo + 1], &w->blocks[lo], (w->n_blocks - lo) * sizeof(*w->blocks));
	w->blocks[lo] = (struct block_seen){wstrdup(ev->kv.key), aff, borrowed};
	w->n_blocks++;
	return what;
}
