/* weftd-watch.c - one store watch on /weft/v1/ for a half of weftd (BGP,
 * fabric, ACLs), driven by the loop, that survives a dead watch.
 *
 * Each half wants the same thing: every event in order while the watch
 * lives, and when it dies (-ESTALE after a compaction, a lost etcd
 * stream), a new watch and a full resync so that whatever happened in
 * between is seen. The helper re-opens the watch at once, or every second
 * until it can, and calls on_reset after each successful re-open. */
#include "felix/weftd.h"
#include "ipam/ipam.h"
#include "lib/json.h"
#include "lib/log.h"

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
	/* weftd_watch_block_moved(): each IPAM block's affinity as last
	 * seen, sorted by key ("" = affine to nobody). */
	struct block_seen *blocks;
	size_t n_blocks;
};

struct block_seen {
	char *key, *affinity;
};

static int on_io(struct weft_source *s, int fd, uint32_t revents, void *userdata);

static void blocks_clear(struct weftd_watch *w)
{
	for (size_t i = 0; i < w->n_blocks; i++) {
		free(w->blocks[i].key);
		free(w->blocks[i].affinity);
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

static int open_watch(struct weftd_watch *w)
{
	_cleanup_free_ char *desc = NULL;
	int r = weft_store_watch(w->d->store, "/weft/v1/", 0, &w->watch);

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

/* The affinity an IPAM block record names ("" for none), or NULL when the
 * value cannot be read (then every event counts). */
static char *block_affinity(const struct weft_event *ev)
{
	cJSON *doc = cJSON_ParseWithLength(ev->kv.value, ev->kv.value_len);
	const cJSON *aff = cJSON_GetObjectItemCaseSensitive(doc, "affinity");
	char *r = NULL;

	if (cJSON_IsObject(doc))
		r = wstrdup(cJSON_IsString(aff) && aff->valuestring ? aff->valuestring : "");
	cJSON_Delete(doc);
	return r;
}

bool weftd_watch_block_moved(struct weftd_watch *w, const struct weft_event *ev)
{
	size_t lo = 0, hi = w->n_blocks;
	char *aff;
	int c = 1;

	if (!startswith(ev->kv.key, WEFT_IPAM_BLOCKS_PREFIX))
		return true;
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
	if (ev->type != WEFT_EV_PUT || !(aff = block_affinity(ev))) {
		/* Gone (or unreadable): it counts, and is forgotten. */
		if (c == 0) {
			free(w->blocks[lo].key);
			free(w->blocks[lo].affinity);
			memmove(&w->blocks[lo], &w->blocks[lo + 1], (w->n_blocks - lo - 1) * sizeof(*w->blocks));
			w->n_blocks--;
		}
		return true;
	}
	if (c == 0) {
		bool moved = !streq(w->blocks[lo].affinity, aff);

		free(w->blocks[lo].affinity);
		w->blocks[lo].affinity = aff;
		return moved;
	}
	w->blocks = wrealloc(w->blocks, (w->n_blocks + 1) * sizeof(*w->blocks));
	memmove(&w->blocks[lo + 1], &w->blocks[lo], (w->n_blocks - lo) * sizeof(*w->blocks));
	w->blocks[lo] = (struct block_seen){wstrdup(ev->kv.key), aff};
	w->n_blocks++;
	return true;
}
