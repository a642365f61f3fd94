/* store-etcd.c - the etcd v3 backend, through etcd's JSON gateway (the /v3/
 * HTTP paths of etcd 3.4+) with libcurl.
 *
 * Requests: every operation is one POST with a JSON body. get and list are
 * /v3/kv/range, every write is a /v3/kv/txn (store.c builds put, create,
 * cas and delete on txn), the revision is the header of a one-key range,
 * check is /v3/maintenance/status. The protocol details (bodies, decoding,
 * base64) are in etcd-proto.c; this file does the transport.
 *
 * Endpoints and failover: the handle remembers the endpoint that last
 * answered (shared with its watches) and starts there. A connection
 * failure moves on to the next endpoint. A read is retried on the next
 * endpoint after any transport failure or a 5xx answer; a write only when
 * the request was certainly not sent (connect or TLS handshake failure):
 * replaying a txn whose answer was lost could apply it twice, or make a
 * successful compare-and-swap look like a failed one, or when etcd says it
 * refused the write before proposing it (write_refused()). Such a write,
 * and one that etcd answers with another 5xx, fails with
 * weft_store_outcome_unknown() set: it may have been applied. Every operation
 * shares one deadline of timeout_ms across all its attempts, split evenly
 * between the endpoints left so that a hung first endpoint still leaves
 * time for the next one.
 *
 * A handle is not thread-safe (one curl handle, reused for keep-alive);
 * its watches run in their own threads and share only immutable
 * configuration and the atomic "endpoint that works" index.
 */
#include "store/etcd-proto.h"
#include "store/store-backend.h"
#include "lib/log.h"

#include <curl/curl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

/* Configuration shared by a handle and its watches (refcounted, immutable
 * except for the preferred endpoint). */
struct etcd_shared {
	atomic_int refs;
	atomic_size_t preferred;
	struct weft_etcd_conf conf;
	char **base_urls; /* "http://HOST:PORT" per endpoint */
	struct curl_slist *headers;
};

struct etcd_store {
	struct weft_store base;
	struct etcd_shared *sh;
	CURL *curl;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
	/* curl_global_init is not thread-safe: run it once, before any watch
	 * thread exists. It is never undone (the process may hold other
	 * handles), which is what libcurl recommends for libraries. */
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void shared_unref(struct etcd_shared *sh)
{
	if (!sh || atomic_fetch_sub(&sh->refs, 1) != 1)
		return;
	for (size_t i = 0; i < sh->conf.n_endpoints; i++)
		free(sh->base_urls[i]);
	free(sh->base_urls);
	curl_slist_free_all(sh->headers);
	weft_etcd_conf_clear(&sh->conf);
	free(sh);
}

static struct etcd_shared *shared_ref(struct etcd_shared *sh)
{
	atomic_fetch_add(&sh->refs, 1);
	return sh;
}

/* Options common to every request and the watch streams. */
static void curl_setup(CURL *c, const struct etcd_shared *sh)
{
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
	/* A datastore client must not go through an http_proxy from the
	 * environment, least of all for loopback endpoints. */
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, sh->headers);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 5L);
	if (sh->conf.tls) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
		if (sh->conf.ca)
			curl_easy_setopt(c, CURLOPT_CAINFO, sh->conf.ca);
		if (sh->conf.cert) {
			curl_easy_setopt(c, CURLOPT_SSLCERT, sh->conf.cert);
			curl_easy_setopt(c, CURLOPT_SSLKEY, sh->conf.key);
		}
	}
}

/* A short description of a failed transfer: the system's word for a
 * failed connect ("Connection refused"), else curl's message. */
static const char *curl_reason(CURL *c, CURLcode cc, const char *errbuf)
{
	long os = 0;

	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os);
	if (cc == CURLE_COULDNT_CONNECT && os > 0)
		return strerror((int)os);
	return errbuf[0] ? errbuf : curl_easy_strerror(cc);
}

/* Map a failed transfer to a negative errno. */
static int curl_errno(CURL *c, CURLcode cc)
{
	long os = 0;

	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os);
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		return os == EHOSTUNREACH || os == ENETUNREACH ? -EHOSTUNREACH
		       : os == ETIMEDOUT			? -ETIMEDOUT
							: -ECONNREFUSED;
	case CURLE_WRITE_ERROR:
		return -EBADMSG; /* the response exceeded WEFT_ETCD_RESPONSE_MAX */
	default:
		/* TLS failures, resets, garbage: the OS errno is often stale
		 * here, and curl's message (in errmsg) says more. */
		return -EIO;
	}
}

static size_t collect_cb(char *p, size_t size, size_t n, void *userdata)
{
	struct weft_buf *b = userdata;

	if (b->len + n > WEFT_ETCD_RESPONSE_MAX)
		return 0;
	weft_buf_append(b, p, n);
	return n;
}

/* Append "; HOST:PORT: what" to the list of failed attempts. */
static void note_failure(struct weft_buf *errs, const char *endpoint, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void note_failure(struct weft_buf *errs, const char *endpoint, const char *fmt, ...)
{
	va_list ap;
	char what[CURL_ERROR_SIZE + 64];

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	weft_buf_printf(errs, "%s%s: %s", errs->len ? "; " : "", endpoint, what);
}

/* POST body to path and return the 200 answer's body in *resp. idempotent
 * says whether the request may be replayed on another endpoint after it
 * may have been sent. Returns 0, or a negative errno with the handle's
 * errmsg set (an etcd error answer is mapped by its gRPC code). */

/* A 5xx etcd answers a write with that says the write was refused before
 * it was proposed to raft, so certainly not applied: the member has no
 * leader ("etcdserver: no leader"; raft itself drops a proposal made
 * without a leader: "raft proposal dropped"). Such a write may go to the
 * next endpoint. Any other 5xx ("request timed out", "leader changed") may
 * still commit. ("too many requests" is a 429: a plain failure anyway.) */
static bool write_refused(const char *msg)
{
	static const char *const refused[] = {"etcdserver: no leader", "raft proposal dropped"};

	for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
		if (streq(msg, refused[i]))
			return true;
	return false;
}
static int etcd_call(struct etcd_store *s, const char *path, const char *body, bool idempotent, struct weft_buf *resp)
{
	struct etcd_shared *sh = s->sh;
	size_t n = sh->conf.n_endpoints, start = atomic_load(&sh->preferred) % n;
	int64_t deadline = weft_now_ms() + sh->conf.timeout_ms;
	struct weft_buf errs = {0};
	int r = -ETIMEDOUT;
	bool timed_out = false, answered = false;

	for (size_t i = 0; i < n; i++) {
		size_t idx = (start + i) % n;
		const char *ep = sh->conf.endpoints[idx];
		int64_t left = deadline - weft_now_ms();
		char errbuf[CURL_ERROR_SIZE] = "";
		struct weft_buf out = {0};
		long sent = 0; /* CURLINFO_REQUEST_SIZE takes a long, not a curl_off_t. */
		long status = 0;

		if (left <= 0) {
			note_failure(&errs, ep, "not tried, time limit of %d ms used up", sh->conf.timeout_ms);
			r = -ETIMEDOUT;
			timed_out = true;
			break;
		}
		int64_t share = i + 1 < n ? left / (int64_t)(n - i) : left;
		if (share < 1)
			share = 1;
		_cleanup_free_ char *url = wasprintf("%s%s", sh->base_urls[idx], path);
		curl_setup(s->curl, sh);
		curl_easy_setopt(s->curl, CURLOPT_URL, url);
		curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, collect_cb);
		curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &out);
		curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)share);
		/* A write that was sent cannot be replayed, so it may use all the
		 * time left; a read keeps some for the other endpoints. */
		curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, (long)(idempotent ? share : left));

		CURLcode cc = curl_easy_perform(s->curl);
		curl_easy_getinfo(s->curl, CURLINFO_REQUEST_SIZE, &sent);
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, NULL);
		if (cc != CURLE_OK) {
			weft_buf_free(&out);
			r = curl_errno(s->curl, cc);
			if (r == -ETIMEDOUT)
				timed_out = true;
			note_failure(&errs, ep, "%s", curl_reason(s->curl, cc, errbuf));
			if (r == -EBADMSG && idempotent) {
				weft_store_fail(&s->base, r, "etcd %s: response larger than %zu bytes", ep,
						WEFT_ETCD_RESPONSE_MAX);
				goto out;
			}
			if (r == -EBADMSG) {
				/* An answer came: the write ran, its outcome unread. */
				weft_store_fail_unknown(&s->base, r, "etcd %s: response larger than %zu bytes", ep,
							WEFT_ETCD_RESPONSE_MAX);
				goto out;
			}
			if (sent > 0 && !idempotent) {
				/* The outcome is unknown: do not replay. */
				weft_store_fail_unknown(&s->base, r, "etcd %s: %s", ep, curl_reason(s->curl, cc, errbuf));
				atomic_store(&sh->preferred, (idx + 1) % n);
				goto out;
			}
			continue;
		}
		if (status == 200) {
			atomic_store(&sh->preferred, idx);
			weft_buf_free(resp);
			if (!out.data)
				weft_buf_append(&out, "", 0);
			*resp = out;
			r = 0;
			goto out;
		}
		char msg[256];
		r = weft_etcd_parse_error(out.data, out.len, msg, sizeof(msg));
		if (r == -EBADMSG) {
			r = -EIO;
			snprintf(msg, sizeof(msg), "HTTP status %ld", status);
		}
		weft_buf_free(&out);
		if (status >= 500 && (idempotent || write_refused(msg))) {
			/* e.g. 503 "etcdserver: no leader": another member may answer. */
			note_failure(&errs, ep, "%s", msg);
			answered = true;
			continue;
		}
		if (status >= 500) {
			/* A write etcd gave up on: "request timed out" and "leader
			 * changed" may still commit the proposal. */
			weft_store_fail_unknown(&s->base, r, "etcd %s: %s", ep, msg);
			goto out;
		}
		weft_store_fail(&s->base, r, "etcd %s: %s", ep, msg);
		goto out;
	}
	if (timed_out)
		r = -ETIMEDOUT;
	weft_store_fail(&s->base, r, "%s (timeout_ms=%d): %s",
			answered ? "no etcd endpoint could serve the request" : "etcd unreachable", sh->conf.timeout_ms,
			errs.data ? errs.data : "");
out:
	weft_buf_free(&errs);
	return r;
}

static struct etcd_store *to_etcd(struct weft_store *s)
{
	return (struct etcd_store *)s;
}

/* A 200 answer that does not decode. */
static int bad_answer(struct etcd_store *s, const char *what)
{
	return weft_store_fail(&s->base, -EBADMSG, "etcd: malformed %s response", what);
}

/* POST a range request and decode its answer into *l. */
static int etcd_range(struct etcd_store *s, const char *body, struct weft_kv_list *l)
{
	struct weft_buf resp = {0};
	int r;

	r = etcd_call(s, "/v3/kv/range", body, true, &resp);
	if (r < 0)
		return r;
	r = weft_etcd_parse_range(resp.data, resp.len, s->sh->conf.prefix, l);
	weft_buf_free(&resp);
	return r < 0 ? bad_answer(s, "range") : 0;
}

static int etcd_get(struct weft_store *base, const char *key, struct weft_kv *out)
{
	struct etcd_store *s = to_etcd(base);
	_cleanup_free_ char *body = weft_etcd_req_range_key(s->sh->conf.prefix, key);
	struct weft_kv_list l = {0};
	int r;

	r = etcd_range(s, body, &l);
	if (r < 0)
		return r;
	if (l.n == 0) {
		weft_kv_list_clear(&l);
		return weft_store_fail(base, -ENOENT, "key %s not found", key);
	}
	if (l.n > 1 || !streq(l.items[0].key, key)) {
		weft_kv_list_clear(&l);
		return bad_answer(s, "range");
	}
	*out = l.items[0];
	free(l.items);
	return 0;
}

static int etcd_list(struct weft_store *base, const char *prefix, struct weft_kv_list *out)
{
	struct etcd_store *s = to_etcd(base);
	_cleanup_free_ char *body = weft_etcd_req_range_prefix(s->sh->conf.prefix, prefix, false);
	struct weft_kv_list l = {0};
	int r;

	r = etcd_range(s, body, &l);
	if (r < 0)
		return r;
	for (size_t i = 0; i < l.n; i++)
		if (!startswith(l.items[i].key, prefix)) {
			weft_kv_list_clear(&l);
			return bad_answer(s, "range");
		}
	*out = l;
	return 0;
}

static int etcd_revision(struct weft_store *base, int64_t *rev)
{
	struct etcd_store *s = to_etcd(base);
	/* A range on one key (the prefix itself) is the cheapest request that
	 * carries the store revision in its header. */
	_cleanup_free_ char *body = weft_etcd_req_range_key(s->sh->conf.prefix, "");
	struct weft_buf resp = {0};
	int r;

	r = etcd_call(s, "/v3/kv/range", body, true, &resp);
	if (r < 0)
		return r;
	r = weft_etcd_parse_header_rev(resp.data, resp.len, rev);
	weft_buf_free(&resp);
	return r < 0 ? bad_answer(s, "range") : 0;
}

static int etcd_txn(struct weft_store *base, const struct weft_txn_cmp *cmps, size_t ncmps,
		    const struct weft_txn_op *ops, size_t nops, int64_t *rev)
{
	struct etcd_store *s = to_etcd(base);
	_cleanup_free_ char *body = weft_etcd_req_txn(s->sh->conf.prefix, cmps, ncmps, ops, nops);
	struct weft_buf resp = {0};
	bool succeeded;
	int64_t v;
	int r;

	r = etcd_call(s, "/v3/kv/txn", body, false, &resp);
	if (r < 0)
		return r;
	r = weft_etcd_parse_txn(resp.data, resp.len, &succeeded, &v);
	weft_buf_free(&resp);
	if (r < 0) /* etcd answered 200: the txn ran, with an outcome we cannot read */
		return weft_store_fail_unknown(base, -EBADMSG, "etcd: malformed txn response");
	if (!succeeded)
		return weft_store_fail(base, -ECANCELED, "compare failed%s%s", ncmps == 1 ? " on key " : "",
				       ncmps == 1 ? cmps[0].key : "");
	if (rev)
		*rev = v;
	return 0;
}

static int etcd_check(struct weft_store *base)
{
	struct etcd_store *s = to_etcd(base);
	struct weft_buf resp = {0};
	char version[64] = "";
	uint64_t leader;
	int64_t rev;
	int r;

	r = etcd_call(s, "/v3/maintenance/status", "{}", true, &resp);
	if (r < 0)
		return r;
	r = weft_etcd_parse_status(resp.data, resp.len, &rev, &leader, version, sizeof(version));
	weft_buf_free(&resp);
	if (r < 0)
		return bad_answer(s, "status");
	if (leader == 0)
		return weft_store_fail(base, -EIO, "etcd %s: the cluster has no leader",
				       s->sh->conf.endpoints[atomic_load(&s->sh->preferred) % s->sh->conf.n_endpoints]);
	log_debug("etcd %s answers at revision %lld", version, (long long)rev);
	return 0;
}

static void etcd_close(struct weft_store *base)
{
	struct etcd_store *s = to_etcd(base);

	if (s->curl)
		curl_easy_cleanup(s->curl);
	shared_unref(s->sh);
	free(s);
}

static int etcd_open(const char *scheme, const char *spec, struct weft_store **out, char **errmsg)
{
	struct weft_etcd_conf conf;
	int r;

	r = weft_etcd_conf_parse(scheme, spec, &conf, errmsg);
	if (r < 0)
		return r;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_result != CURLE_OK) {
		weft_etcd_conf_clear(&conf);
		if (errmsg)
			*errmsg = wasprintf("libcurl initialization failed: %s", curl_easy_strerror(curl_init_result));
		return -EIO;
	}

	struct etcd_shared *sh = wcalloc(1, sizeof(*sh));
	atomic_init(&sh->refs, 1);
	atomic_init(&sh->preferred, 0);
	sh->conf = conf;
	sh->base_urls = wcalloc(conf.n_endpoints, sizeof(char *));
	for (size_t i = 0; i < conf.n_endpoints; i++)
		sh->base_urls[i] = wasprintf("%s://%s", conf.tls ? "https" : "http", conf.endpoints[i]);
	/* "Expect:" off: curl would otherwise wait for a 100-continue before
	 * sending large bodies, a pointless round trip (or a 1 s stall). */
	sh->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (sh->headers)
		sh->headers = curl_slist_append(sh->headers, "Expect:");
	struct etcd_store *s = wcalloc(1, sizeof(*s));
	s->base.ops = &weft_store_etcd_ops;
	s->sh = sh;
	s->curl = curl_easy_init();
	if (!s->curl || !sh->headers) {
		etcd_close(&s->base);
		if (errmsg)
			*errmsg = wstrdup("libcurl: cannot create a handle");
		return -ENOMEM;
	}
	/* The handle does not contact etcd here: a daemon may start before
	 * its datastore, and every operation reports unreachability itself. */
	*out = &s->base;
	return 0;
}

/* ---- watch ----
 *
 * Design: one thread per watch runs the blocking HTTP stream (curl's easy
 * interface) and pushes decoded events into a mutex-protected queue; an
 * eventfd signals the queue to the caller's event loop, and next() pops
 * from the queue without ever blocking. Driving curl's multi interface
 * from next() instead would have to expose all of curl's sockets and its
 * timers through the one fd store.h promises (an epoll fd plus a timerfd
 * kept in sync with curl's callbacks), and reconnection with backoff would
 * have to be a state machine advanced only when the caller happens to
 * call next(). A thread keeps the reconnect logic a plain loop and the
 * caller's side a queue; its cost (one thread per watch) is small because
 * weft processes hold a handful of watches.
 *
 * No event is lost across reconnects: the thread tracks the revision after
 * the last event it queued and opens the next stream from there, on the
 * next endpoint, with a growing backoff. If no stream could be opened for
 * 6 x timeout_ms the watch dies with -ETIMEDOUT (or the last connection
 * error); a compacted start revision kills it with -ESTALE.
 */

#define WATCH_MAX_SOCKETS 4

struct etcd_watch {
	struct weft_watch base;
	struct etcd_shared *sh;
	char *key_prefix;
	int efd;
	pthread_t thread;

	pthread_mutex_t lock; /* protects everything below up to the thread-only part */
	pthread_cond_t cond;
	bool stop;
	curl_socket_t socks[WATCH_MAX_SOCKETS]; /* the stream's sockets, to shut them down on free */
	struct weft_event *q;
	size_t q_head, q_len, q_cap;
	int err; /* terminal error, returned once the queue is drained */
	bool ready;      /* the first stream's watch was created */
	char errmsg[400]; /* why the thread ended, or its last failure */

	/* Used by the thread only. */
	CURL *curl;
	int64_t next_rev;
	struct weft_buf line; /* the stream's bytes after the last complete message */
	size_t scanned;       /* line's first bytes known to hold no newline */
	bool created;   /* the current stream's watch was created */
	int stream_err; /* set by the write callback to end the stream */
	bool terminal;  /* stream_err kills the watch (vs. reconnect) */
	char reason[300];
};

static void wake(struct etcd_watch *w)
{
	uint64_t one = 1;
	/* Nonblocking; EAGAIN only if the counter is about to overflow, and
	 * then the fd is readable anyway. */
	if (write(w->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("etcd watch: eventfd write: %m");
}

static void queue_push(struct etcd_watch *w, struct weft_event *ev)
{
	pthread_mutex_lock(&w->lock);
	if (w->q_head + w->q_len == w->q_cap) {
		if (w->q_head > 0) {
			memmove(w->q, w->q + w->q_head, w->q_len * sizeof(*w->q));
			w->q_head = 0;
		}
		if (w->q_len == w->q_cap) {
			w->q_cap = w->q_cap ? w->q_cap * 2 : 16;
			w->q = wrealloc(w->q, w->q_cap * sizeof(*w->q));
		}
	}
	w->q[w->q_head + w->q_len++] = *ev;
	memset(ev, 0, sizeof(*ev));
	wake(w);
	pthread_mutex_unlock(&w->lock);
}

static void watch_die(struct etcd_watch *w, int err, const char *reason)
{
	log_debug("etcd watch on \"%s\" ends: %s", w->key_prefix, reason);
	pthread_mutex_lock(&w->lock);
	if (!w->err) {
		w->err = err;
		snprintf(w->errmsg, sizeof(w->errmsg), "%s", reason);
	}
	wake(w);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Handle one message of the stream. Returns 0 to go on, or sets
 * stream_err (and terminal) and returns -1 to end the stream. */
static int watch_message(struct etcd_watch *w, const char *line, size_t len)
{
	struct weft_etcd_watch_msg m = {0};

	if (len == 0)
		return 0;
	if (weft_etcd_parse_watch(line, len, w->sh->conf.prefix, &m) < 0) {
		w->stream_err = -EBADMSG;
		w->terminal = true;
		snprintf(w->reason, sizeof(w->reason), "malformed watch message");
		return -1;
	}
	if (m.stream_error) {
		w->stream_err = m.error_errno;
		snprintf(w->reason, sizeof(w->reason), "stream error: %s", m.reason);
		weft_etcd_watch_msg_clear(&m);
		return -1;
	}
	if (m.canceled) {
		w->terminal = true;
		if (m.compact_rev > 0) {
			w->stream_err = -ESTALE;
			snprintf(w->reason, sizeof(w->reason),
				 "revision %lld was compacted (history starts at %lld)", (long long)w->next_rev,
				 (long long)m.compact_rev);
		} else {
			w->stream_err = -EIO;
			snprintf(w->reason, sizeof(w->reason), "canceled by etcd: %s", m.reason[0] ? m.reason : "no reason");
		}
		weft_etcd_watch_msg_clear(&m);
		return -1;
	}
	if (m.created) {
		w->created = true;
		pthread_mutex_lock(&w->lock);
		w->ready = true;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
	} else if (m.n_raw_events == 0 && m.header_rev > 0 && m.header_rev >= w->next_rev) {
		/* A progress notification: every event up to header_rev has been
		 * sent, so a reconnect may start after it. This keeps an idle
		 * watch from falling behind a compaction. A batch whose events
		 * were all skipped (the prefix key) is not one: the header of a
		 * catch-up batch can be ahead of the events sent so far. */
		w->next_rev = m.header_rev + 1;
	}
	for (size_t i = 0; i < m.n_events; i++) {
		/* A replay of what was already delivered cannot happen with
		 * start_revision, but costs nothing to filter out. */
		if (m.events[i].kv.mod_rev < w->next_rev)
			continue;
		int64_t rev = m.events[i].kv.mod_rev;
		queue_push(w, &m.events[i]);
		/* Every event of one revision (one txn) arrives in the same
		 * message: etcd batches whole revisions. */
		if (i + 1 == m.n_events || m.events[i + 1].kv.mod_rev != rev)
			w->next_rev = rev + 1;
	}
	weft_etcd_watch_msg_clear(&m);
	return 0;
}

/* Past this, the line buffer is given back after a message: a catch-up
 * batch can be hundreds of megabytes and should not stay allocated for the
 * life of the watch. */
#define WATCH_LINE_KEEP (1024 * 1024)

static size_t watch_write_cb(char *p, size_t size, size_t n, void *userdata)
{
	struct etcd_watch *w = userdata;
	size_t start = 0;
	char *nl;

	long status = 0;

	weft_buf_append(&w->line, p, n);
	/* A non-200 answer is one JSON error body, decoded after the transfer. */
	curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		if (w->line.len > 65536)
			return 0;
		return n;
	}
	/* Search only the bytes not searched before: a message of megabytes
	 * arrives in thousands of chunks, and rescanning it from its start
	 * for each one took quadratic time (minutes for a catch-up batch). */
	while ((nl = memchr(w->line.data + w->scanned, '\n', w->line.len - w->scanned))) {
		size_t i = (size_t)(nl - w->line.data);
		if (watch_message(w, w->line.data + start, i - start) < 0)
			return 0;
		start = i + 1;
		w->scanned = start;
	}
	w->scanned = w->line.len;
	if (start) {
		bool big = w->line.cap > WATCH_LINE_KEEP;
		w->line.len -= start;
		w->scanned -= start;
		if (big && w->line.len < WATCH_LINE_KEEP / 2) {
			struct weft_buf rest = {0};
			weft_buf_append(&rest, w->line.data + start, w->line.len);
			weft_buf_free(&w->line);
			w->line = rest;
		} else {
			memmove(w->line.data, w->line.data + start, w->line.len + 1);
		}
	}
	if (w->line.len > WEFT_ETCD_RESPONSE_MAX) {
		w->stream_err = -EBADMSG;
		w->terminal = true;
		snprintf(w->reason, sizeof(w->reason), "watch message larger than %zu bytes", WEFT_ETCD_RESPONSE_MAX);
		return 0;
	}
	return n;
}

static curl_socket_t watch_open_socket(void *userdata, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct etcd_watch *w = userdata;
	curl_socket_t fd = CURL_SOCKET_BAD;

	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < WATCH_MAX_SOCKETS && !w->stop; i++) {
		if (w->socks[i] != CURL_SOCKET_BAD)
			continue;
		fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
		w->socks[i] = fd < 0 ? CURL_SOCKET_BAD : fd;
		break;
	}
	pthread_mutex_unlock(&w->lock);
	return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static int watch_close_socket(void *userdata, curl_socket_t fd)
{
	struct etcd_watch *w = userdata;

	/* Closed under the lock so that free() never shuts down a reused fd. */
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < WATCH_MAX_SOCKETS; i++)
		if (w->socks[i] == fd)
			w->socks[i] = CURL_SOCKET_BAD;
	close(fd);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

static int watch_progress_cb(void *userdata, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct etcd_watch *w = userdata;
	pthread_mutex_lock(&w->lock);
	bool stop = w->stop;
	pthread_mutex_unlock(&w->lock);
	return stop ? 1 : 0;
}

/* Sleep ms unless free() asks the thread to stop. Returns true to stop. */
static bool watch_sleep(struct etcd_watch *w, int64_t ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->lock);
	while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &ts) == 0)
		;
	stop = w->stop;
	pthread_mutex_unlock(&w->lock);
	return stop;
}

static void *watch_thread(void *arg)
{
	struct etcd_watch *w = arg;
	struct etcd_shared *sh = w->sh;
	size_t n = sh->conf.n_endpoints, idx = atomic_load(&sh->preferred) % n;
	int64_t healthy_at = weft_now_ms(), window = 6 * (int64_t)sh->conf.timeout_ms;
	int failures = 0, last_err = -ETIMEDOUT;
	char last_reason[CURL_ERROR_SIZE + 64] = "";
	CURL *c = curl_easy_init();

	if (!c) {
		watch_die(w, -ENOMEM, "libcurl: cannot create a handle");
		return NULL;
	}
	w->curl = c;
	for (;;) {
		char errbuf[CURL_ERROR_SIZE] = "";
		long status = 0;
		_cleanup_free_ char *body = weft_etcd_req_watch(sh->conf.prefix, w->key_prefix, w->next_rev);
		_cleanup_free_ char *url = wasprintf("%s/v3/watch", sh->base_urls[idx]);

		w->line.len = 0;
		w->scanned = 0;
		w->created = false;
		w->stream_err = 0;
		w->terminal = false;
		w->reason[0] = 0;
		curl_setup(c, sh);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_write_cb);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)sh->conf.timeout_ms);
		curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, watch_open_socket);
		curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, w);
		curl_easy_setopt(c, CURLOPT_CLOSESOCKETFUNCTION, watch_close_socket);
		curl_easy_setopt(c, CURLOPT_CLOSESOCKETDATA, w);
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, watch_progress_cb);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
		/* Every stream gets a fresh connection: a kept-alive one could be
		 * to a member that just went away. */
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);

		CURLcode cc = curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);

		pthread_mutex_lock(&w->lock);
		bool stop = w->stop;
		pthread_mutex_unlock(&w->lock);
		if (stop)
			break;
		if (w->stream_err && w->terminal) {
			watch_die(w, w->stream_err, w->reason);
			break;
		}
		if (status != 200 && status != 0 && !w->stream_err) {
			char msg[256];
			int r = weft_etcd_parse_error(w->line.data, w->line.len, msg, sizeof(msg));
			if (r == -EBADMSG)
				snprintf(msg, sizeof(msg), "HTTP status %ld", status);
			if (status < 500) {
				/* The request itself is refused (bad range, permission,
				 * compacted): retrying cannot help. */
				_cleanup_free_ char *why = wasprintf("%s: %s", sh->conf.endpoints[idx], msg);
				watch_die(w, r == -EBADMSG ? -EIO : r, why);
				break;
			}
			last_err = -EIO;
			snprintf(last_reason, sizeof(last_reason), "%s: %s", sh->conf.endpoints[idx], msg);
		} else if (w->stream_err) {
			last_err = w->stream_err;
			snprintf(last_reason, sizeof(last_reason), "%s: %s", sh->conf.endpoints[idx], w->reason);
		} else {
			last_err = cc == CURLE_OK ? -ECONNRESET : curl_errno(c, cc);
			snprintf(last_reason, sizeof(last_reason), "%s: %s", sh->conf.endpoints[idx],
				 cc == CURLE_OK ? "stream closed" : curl_reason(c, cc, errbuf));
		}
		if (w->created) {
			/* The stream worked until now: start a new round. */
			atomic_store(&sh->preferred, idx);
			healthy_at = weft_now_ms();
			failures = 0;
		}
		log_debug("etcd watch on \"%s\": %s; reconnecting from revision %lld", w->key_prefix, last_reason,
			  (long long)w->next_rev);
		pthread_mutex_lock(&w->lock);
		snprintf(w->errmsg, sizeof(w->errmsg), "%s", last_reason);
		pthread_mutex_unlock(&w->lock);
		if (weft_now_ms() - healthy_at > window) {
			_cleanup_free_ char *why = wasprintf("no endpoint for %lld ms, last: %s", (long long)window,
							     last_reason);
			watch_die(w, last_err == -ECONNRESET ? -ETIMEDOUT : last_err, why);
			break;
		}
		/* Try the next endpoint; back off 50 ms, doubling to 2 s, so that a
		 * cluster that is restarting is not hammered. */
		idx = (idx + 1) % n;
		int64_t delay = 50LL << (failures < 6 ? failures : 6);
		failures++;
		if (watch_sleep(w, delay > 2000 ? 2000 : delay))
			break;
	}
	curl_easy_cleanup(c);
	return NULL;
}

static struct etcd_watch *to_watch(struct weft_watch *w)
{
	return (struct etcd_watch *)w;
}

static int watch_fd(struct weft_watch *base)
{
	return to_watch(base)->efd;
}

static int watch_next(struct weft_watch *base, struct weft_event *ev)
{
	struct etcd_watch *w = to_watch(base);
	uint64_t cnt;
	int r = 0;

	pthread_mutex_lock(&w->lock);
	if (w->q_len > 0) {
		*ev = w->q[w->q_head++];
		if (--w->q_len == 0)
			w->q_head = 0;
		r = 1;
	} else {
		/* Drained under the lock: a producer pushes and writes the fd
		 * under the same lock, so no wake-up is lost. */
		if (read(w->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
			log_debug("etcd watch: eventfd read: %m");
		r = w->err;
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

static void watch_free(struct weft_watch *base)
{
	struct etcd_watch *w = to_watch(base);

	pthread_mutex_lock(&w->lock);
	w->stop = true;
	/* Wake the thread out of its blocking stream read at once. */
	for (int i = 0; i < WATCH_MAX_SOCKETS; i++)
		if (w->socks[i] != CURL_SOCKET_BAD)
			shutdown(w->socks[i], SHUT_RDWR);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);

	for (size_t i = 0; i < w->q_len; i++)
		weft_event_clear(&w->q[w->q_head + i]);
	free(w->q);
	weft_buf_free(&w->line);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	close(w->efd);
	free(w->key_prefix);
	shared_unref(w->sh);
	free(w);
}

static const struct weft_watch_ops etcd_watch_ops = {
	.fd = watch_fd,
	.next = watch_next,
	.free = watch_free,
};

static int etcd_watch(struct weft_store *base, const char *prefix, int64_t from_rev, struct weft_watch **out)
{
	struct etcd_store *s = to_etcd(base);
	pthread_condattr_t ca;
	int64_t cur;
	int r;

	/* Read the current revision first: it defines "changes after the
	 * call" for from_rev == 0, and an unreachable cluster fails here,
	 * clearly, instead of in the thread. */
	r = etcd_revision(base, &cur);
	if (r < 0)
		return r;
	if (from_rev > 0 && from_rev <= cur) {
		/* Ask for the history at from_rev now, so that a compacted start
		 * fails the call itself rather than the first next(). */
		_cleanup_free_ char *key = wasprintf("%s%s", s->sh->conf.prefix, prefix);
		_cleanup_free_ char *enc = weft_etcd_b64_encode(key[0] ? key : "", key[0] ? strlen(key) : 1);
		_cleanup_free_ char *body = wasprintf("{\"key\":\"%s\",\"revision\":\"%lld\",\"count_only\":true}", enc,
						      (long long)from_rev);
		struct weft_buf resp = {0};
		r = etcd_call(s, "/v3/kv/range", body, true, &resp);
		weft_buf_free(&resp);
		if (r == -ESTALE)
			return weft_store_fail(base, r, "watch from revision %lld: history compacted", (long long)from_rev);
		if (r < 0)
			return r;
	}

	struct etcd_watch *w = wcalloc(1, sizeof(*w));
	w->base.ops = &etcd_watch_ops;
	w->key_prefix = wstrdup(prefix);
	w->next_rev = from_rev > 0 ? from_rev : cur + 1;
	for (int i = 0; i < WATCH_MAX_SOCKETS; i++)
		w->socks[i] = CURL_SOCKET_BAD;
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0) {
		r = -errno;
		free(w->key_prefix);
		free(w);
		return weft_store_fail(base, r, "eventfd: %s", strerror(-r));
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	w->sh = shared_ref(s->sh);
	r = pthread_create(&w->thread, NULL, watch_thread, w);
	if (r != 0) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
		close(w->efd);
		shared_unref(w->sh);
		free(w->key_prefix);
		free(w);
		return weft_store_fail(base, -r, "cannot start the watch thread: %s", strerror(r));
	}

	/* Wait until etcd confirms the watch: events are not lost without
	 * this (the stream starts at next_rev), but delivery would be late by
	 * a connection set-up (a TLS handshake) and a failure would only
	 * show in next(). */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += s->sh->conf.timeout_ms / 1000;
	ts.tv_nsec += (long)(s->sh->conf.timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->lock);
	while (!w->ready && !w->err && pthread_cond_timedwait(&w->cond, &w->lock, &ts) == 0)
		;
	r = w->ready ? 0 : w->err ? w->err : -ETIMEDOUT;
	if (r < 0)
		weft_store_fail(base, r, "etcd watch on \"%s\": %s", prefix,
				w->errmsg[0] ? w->errmsg : "no answer within timeout_ms");
	pthread_mutex_unlock(&w->lock);
	if (r < 0) {
		watch_free(&w->base);
		return r;
	}
	*out = &w->base;
	return 0;
}

const struct weft_store_ops weft_store_etcd_ops = {
	.name = "etcd",
	.open = etcd_open,
	.close = etcd_close,
	.get = etcd_get,
	.list = etcd_list,
	.revision = etcd_revision,
	.txn = etcd_txn,
	.watch = etcd_watch,
	.check = etcd_check,
};
