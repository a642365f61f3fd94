/* weftd-status.c - health, status and metrics: the node's status in its
 * Node resource, and a small HTTP server for /healthz and /metrics.
 *
 * Checks. Every interval (10 s, WEFT_STATUS_INTERVAL_MS) a full check
 * reads the Node (which also proves the store answers), counts the node's
 * endpoints and asks BIRD for its protocols; a probe every
 * min(interval, 2 s) asks only BIRD, and BIRD starting or dying (a hook in
 * weftd-bgp.c) probes at once. Each check builds the status object and
 * writes it only when it differs from what this weftd last wrote or the
 * store holds (lastSync aside), or when lastSync is due for a refresh
 * (every 30 intervals): a quiet node costs one read per interval and no
 * writes. The write is a compare-and-swap on the whole Node that keeps
 * spec.bgp, labels and anything else, re-read on a conflict.
 *
 * HTTP. One request per connection, read until the end of the headers
 * (at most HTTP_MAX_REQUEST bytes, within HTTP_TIMEOUT_MS of the accept:
 * a deadline for the connection, however slowly the client sends) and
 * parsed by felix/http.c, answered with Connection: close: 400 as soon as
 * the bytes cannot be a request (a NUL, a request line without a target,
 * ...), 413 when the head does not fit, 408 when the deadline passes with
 * part of a request (a client that sent nothing is just closed). A second,
 * pipelined request is not answered: the client sees the close. After the
 * answer the write side is shut down and what the client still sends is
 * read and dropped for a moment (a "lingering close"): closing a socket
 * with unread data makes the kernel send a reset, which can destroy the
 * answer before the client reads it. Everything runs on the loop; nothing
 * blocks but the store and BIRD queries of the checks (bounded by their
 * own timeouts).
 */
#include "bgpconf/bgpconf.h"
#include "felix/http.h"
#include "felix/metrics.h"
#include "felix/weftd.h"
#include "lib/json.h"
#include "lib/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#ifndef WEFT_VERSION
#define WEFT_VERSION "0.1.0"
#endif

#define STATUS_INTERVAL_MS 10000
#define STATUS_PROBE_MAX_MS 2000
#define STATUS_REFRESH_INTERVALS 30
#define STATUS_SOON_MS 300
#define STATUS_BIRDC_TIMEOUT_MS 500
#define STATUS_CAS_ATTEMPTS 5

#define HTTP_MAX_REQUEST 8192
#define HTTP_MAX_CONNECTIONS 64
#define HTTP_TIMEOUT_MS 5000
#define HTTP_LINGER_MS 1000
#define HTTP_LINGER_BYTES (1024 * 1024)

struct http_conn {
	struct weftd_status *s;
	struct http_conn *prev, *next;
	int fd;
	struct weft_source *io, *timer;
	char in[HTTP_MAX_REQUEST];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	size_t drained;
	enum { CONN_READ, CONN_WRITE, CONN_LINGER } phase;
};

struct weftd_status {
	struct weftd *d;
	struct weft_loop *loop;
	int64_t interval_ns;
	char *key; /* the Node's store key */

	/* HTTP */
	int listen_fd;
	struct weft_source *listen_src;
	struct http_conn *conns;
	unsigned nconns;

	/* checks */
	struct weft_source *check_timer, *probe_timer, *soon_timer;
	int64_t last_check_ns;    /* the last check of any kind */
	int64_t store_ok_ns;      /* the store last answered (0: never) */
	char store_err[256];      /* why it did not, last time */
	bool bird_ctl_ok;         /* BIRD answered the last probe ... */
	pid_t bird_pid;           /* ... and this was its pid */
	cJSON *bgp;               /* the last BGP summary (status.bgp) or NULL */
	bool healthy;
	char reason[512];
	bool have_verdict;        /* healthy/reason were logged once */
	char *written;            /* the status last written/confirmed, no lastSync */
	int64_t last_write_ns;    /* 0: not written by this weftd yet */
	bool no_node_logged;
};

/* --- the health verdict ------------------------------------------------------ */

static const char *bird_state_name(struct weftd_status *s, const struct weftd_bird_state *st)
{
	if (!s->d->bgp)
		return "disabled";
	if (!st->running)
		return "down";
	return s->bird_ctl_ok && s->bird_pid == st->pid ? "running" : "starting";
}

/* Healthy: the checks run (the loop is alive: this code runs on it, and
 * its timers fire), the store answered within the last two intervals (one
 * slow check is not an alarm), and with BGP, BIRD follows the store (its
 * config could be made from the store, BIRD accepted and took it), runs
 * and answers its control socket. Otherwise false with a one-line reason,
 * the same words while the cause lasts. */
static bool evaluate(struct weftd_status *s, int64_t now, char *reason, size_t size)
{
	struct weftd_bird_state st = {0};

	reason[0] = 0;
	if (s->last_check_ns && now - s->last_check_ns > 3 * s->interval_ns) {
		snprintf(reason, size, "status checks have not run for more than %lld ms",
			 (long long)(3 * s->interval_ns / 1000000));
		return false;
	}
	if (!s->store_ok_ns) {
		snprintf(reason, size, "the store has not answered yet%s%s", s->store_err[0] ? ": " : "",
			 s->store_err);
		return false;
	}
	if (now - s->store_ok_ns > 2 * s->interval_ns) {
		/* The same words every time while it lasts: the reason is part
		 * of the status, and a changing one would be rewritten. */
		snprintf(reason, size, "the store did not answer within %lld ms%s%s",
			 (long long)(2 * s->interval_ns / 1000000), s->store_err[0] ? ": " : "", s->store_err);
		return false;
	}
	if (s->d->bgp) {
		(void)weftd_bgp_bird_state(s->d->bgp, 0, &st);
		/* BIRD down with a config to restart on: that first (it is
		 * restarted within seconds, the config problem stays). */
		if (st.config_error[0] && (st.running || !st.have_config)) {
			snprintf(reason, size, "%s; %s", st.config_error,
				 st.have_config ? "BIRD keeps its previous config" : "BIRD is not started: it has no config yet");
			return false;
		}
		if (!st.running) {
			snprintf(reason, size, "BIRD is not running%s",
				 st.restart_pending  ? " (a restart is scheduled)"
				 : !st.have_config   ? " (no config yet: see the log)"
						     : "");
			return false;
		}
		if (!s->bird_ctl_ok || s->bird_pid != st.pid) {
			snprintf(reason, size, "BIRD (pid %d) does not answer on its control socket yet", (int)st.pid);
			return false;
		}
	}
	return true;
}

/* Re-evaluate and log a change of verdict. */
static void update_verdict(struct weftd_status *s)
{
	char reason[sizeof(s->reason)];
	bool ok = evaluate(s, weft_now_ns(), reason, sizeof(reason));

	if (!s->have_verdict || ok != s->healthy || !streq(reason, s->reason)) {
		if (ok)
			log_info("health: %s", s->have_verdict ? "healthy again" : "healthy");
		else
			log_warn("health: unhealthy: %s", reason);
	}
	s->have_verdict = true;
	s->healthy = ok;
	weft_strlcpy(s->reason, reason, sizeof(s->reason));
	weftd_metric_set(s->d->metrics, "weft_healthy", NULL, ok ? 1 : 0);
}

/* --- what BIRD says ------------------------------------------------------------ */

/* BIRD's "2026-11-26 14:04:44" (iso long, local time: BIRD runs beside
 * us) as RFC 3339 UTC; anything else is kept as BIRD printed it. */
static cJSON *since_value(const char *since)
{
	struct tm tm = {0};
	const char *end;
	char buf[32];
	time_t t;

	if (!since || !since[0])
		return NULL;
	end = strptime(since, "%Y-%m-%d %H:%M:%S", &tm);
	if (end && (*end == 0 || *end == '.')) {
		tm.tm_isdst = -1;
		t = mktime(&tm);
		if (t != (time_t)-1 && gmtime_r(&t, &tm) && strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
			return cJSON_CreateString(buf);
	}
	for (const char *p = since; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return NULL;
	return cJSON_CreateString(since);
}

/* A session's state in one word: BIRD's BGP state from the info column
 * ("Established", "Active", "Connect", ...), else the protocol state. */
static void peer_state(const struct weft_bird_proto *p, char *buf, size_t size)
{
	const char *src = p->info && (p->info[0] >= 'A' && p->info[0] <= 'Z') ? p->info : p->state;
	size_t k = 0;

	for (; src && *src && k + 1 < size && k < 63; src++) {
		char c = *src;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_'))
			break;
		buf[k++] = c;
	}
	buf[k] = 0;
	if (!k)
		weft_strlcpy(buf, "unknown", size);
}

/* Ask BIRD (with BGP) and remember what it says: the BGP summary, the
 * metrics of BIRD and its peers. */
static void probe_bird(struct weftd_status *s)
{
	struct weftd_metrics *m = s->d->metrics;
	struct weftd_bird_state st = {0};
	cJSON *bgp, *peers;
	size_t established = 0, total = 0;
	struct {
		char state[64];
		unsigned n;
	} counts[16];
	size_t ncounts = 0;

	if (!s->d->bgp)
		return;
	(void)weftd_bgp_bird_state(s->d->bgp, STATUS_BIRDC_TIMEOUT_MS, &st);
	s->bird_ctl_ok = st.ctl_ok;
	s->bird_pid = st.pid;
	weftd_metric_set(m, "weft_bird_up", NULL, st.running && st.ctl_ok ? 1 : 0);
	weftd_metric_set(m, "weft_bird_restarts_total", NULL, st.restarts);

	cJSON_Delete(s->bgp);
	s->bgp = NULL;
	if (!st.ctl_ok) {
		/* Nothing known about the sessions: keep the families, drop the
		 * samples (a scrape must not show stale peers as up). */
		weftd_metric_reset(m, "weft_bgp_peers");
		weftd_metric_set(m, "weft_bgp_peers", "state=\"Established\"", 0);
		weftd_bird_state_clear(&st);
		return;
	}
	weft_strlcpy(counts[ncounts].state, "Established", sizeof(counts[0].state));
	counts[ncounts++].n = 0;
	bgp = cJSON_CreateObject();
	peers = cJSON_CreateArray();
	for (size_t i = 0; i < st.nprotos; i++) {
		const struct weft_bird_proto *p = &st.protos[i];
		enum weft_bgp_peer_type type;
		struct weft_ip ip;
		char abuf[WEFT_IP_STRLEN], state[64];
		cJSON *peer, *since;
		size_t j;

		if (!p->proto || !streq(p->proto, "BGP") || weft_bgp_proto_parse(p->name, &type, &ip) < 0)
			continue;
		peer_state(p, state, sizeof(state));
		total++;
		if (streq(state, "Established"))
			established++;
		for (j = 0; j < ncounts && !streq(counts[j].state, state); j++)
			;
		if (j == ncounts && ncounts < ARRAY_SIZE(counts)) {
			weft_strlcpy(counts[ncounts].state, state, sizeof(counts[0].state));
			counts[ncounts++].n = 0;
		}
		if (j < ncounts)
			counts[j].n++;
		peer = cJSON_CreateObject();
		cJSON_AddStringToObject(peer, "address", weft_ip_str(&ip, abuf, sizeof(abuf)));
		cJSON_AddStringToObject(peer, "type", weft_bgp_peer_type_name(type));
		cJSON_AddStringToObject(peer, "state", state);
		since = since_value(p->since);
		if (since)
			cJSON_AddItemToObject(peer, "since", since);
		cJSON_AddItemToArray(peers, peer);
	}
	cJSON_AddNumberToObject(bgp, "established", (double)established);
	cJSON_AddNumberToObject(bgp, "total", (double)total);
	cJSON_AddItemToObject(bgp, "peers", peers);
	s->bgp = bgp;
	weftd_metric_reset(m, "weft_bgp_peers");
	for (size_t j = 0; j < ncounts; j++) {
		_cleanup_free_ char *label = wasprintf("state=\"%s\"", counts[j].state);
		weftd_metric_set(m, "weft_bgp_peers", label, counts[j].n);
	}
	weftd_bird_state_clear(&st);
}

/* --- the store ------------------------------------------------------------------ */

static void store_op(struct weftd_status *s)
{
	weftd_metric_add(s->d->metrics, "weft_store_events_total", "subsystem=\"status\"", 1);
}

static void store_failed(struct weftd_status *s, int r, const char *what)
{
	const char *msg = weft_store_errmsg(s->d->store);

	if (!s->store_err[0])
		log_warn_errno(r, "status: %s: %s", what, msg && msg[0] ? msg : strerror(-r));
	snprintf(s->store_err, sizeof(s->store_err), "%s", msg && msg[0] ? msg : strerror(-r));
}

static void store_answered(struct weftd_status *s)
{
	if (s->store_err[0])
		log_info("status: the store answers again");
	s->store_err[0] = 0;
	s->store_ok_ns = weft_now_ns();
}

/* This node's endpoints: their keys start with "<node>." (the name may be
 * a hash form, see weftd_endpoint_name()), and spec.node says whose they
 * are (node names may contain dots). */
static void count_endpoints(struct weftd_status *s)
{
	_cleanup_free_ char *prefix = wasprintf("%s%s.", weft_kind_prefix(WEFT_KIND_ENDPOINT), s->d->node);
	struct weft_kv_list l = {0};
	size_t n = 0;
	int r;

	store_op(s);
	r = weft_store_list(s->d->store, prefix, &l);
	if (r < 0) {
		store_failed(s, r, "listing the endpoints");
		return;
	}
	store_answered(s);
	for (size_t i = 0; i < l.n; i++) {
		_cleanup_json_ cJSON *doc = NULL;
		const cJSON *spec;
		const char *node;

		if (weft_json_parse(l.items[i].value, l.items[i].value_len, &doc) < 0)
			continue;
		spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
		node = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(spec, "node"));
		if (node && streq(node, s->d->node))
			n++;
	}
	weft_kv_list_clear(&l);
	weftd_metric_set(s->d->metrics, "weft_endpoints", NULL, (double)n);
}

/* The status object as it stands, without lastSync. */
static cJSON *build_status(struct weftd_status *s)
{
	struct weftd_bird_state st = {0};
	cJSON *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "healthy", s->healthy);
	if (!s->healthy && s->reason[0])
		cJSON_AddStringToObject(o, "reason", s->reason);
	if (s->d->bgp)
		(void)weftd_bgp_bird_state(s->d->bgp, 0, &st);
	cJSON_AddStringToObject(o, "birdState", bird_state_name(s, &st));
	if (s->bgp)
		cJSON_AddItemToObject(o, "bgp", cJSON_Duplicate(s->bgp, true));
	cJSON_AddStringToObject(o, "version", WEFT_VERSION);
	return o;
}

static void rfc3339_now(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Write status (no lastSync in it) into the Node unless the store holds it
 * already and lastSync is fresh. A missing Node is left alone: weftd
 * registers it (weftd_bgp_register_node), an operator deletes it. Returns
 * whether it wrote. */
static bool write_status(struct weftd_status *s, const cJSON *status)
{
	struct weft_store *store = s->d->store;
	_cleanup_free_ char *want = weft_json_print(status);
	int64_t now = weft_now_ns();
	bool refresh = !s->last_write_ns || now - s->last_write_ns >= STATUS_REFRESH_INTERVALS * s->interval_ns;

	for (int attempt = 0; attempt < STATUS_CAS_ATTEMPTS; attempt++) {
		struct weft_kv kv = {0};
		int64_t expect;
		_cleanup_json_ cJSON *doc = NULL, *old = NULL;
		struct weft_resource res = {0};
		_cleanup_free_ char *err = NULL, *text = NULL;
		cJSON *spec, *st;
		char ts[40];
		int r;

		store_op(s);
		r = weft_store_get(store, s->key, &kv);
		if (r == -ENOENT) {
			store_answered(s);
			if (!s->no_node_logged)
				log_info("status: no Node resource %s: status not written", s->d->node);
			s->no_node_logged = true;
			free(s->written);
			s->written = NULL;
			return false;
		}
		if (r < 0) {
			store_failed(s, r, "reading the Node");
			return false;
		}
		store_answered(s);
		s->no_node_logged = false;
		expect = kv.mod_rev;
		r = weft_json_parse(kv.value, kv.value_len, &doc);
		weft_kv_clear(&kv);
		if (r < 0 || !cJSON_IsObject(doc)) {
			log_warn("status: the stored Node %s is not JSON: status not written", s->d->node);
			return false;
		}
		spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
		if (!cJSON_IsObject(spec)) {
			cJSON_DeleteItemFromObjectCaseSensitive(doc, "spec");
			spec = cJSON_AddObjectToObject(doc, "spec");
		}
		/* Equal but for lastSync, and lastSync fresh: nothing to do. */
		old = cJSON_DetachItemFromObjectCaseSensitive(spec, "status");
		if (old && !refresh) {
			cJSON *ls = cJSON_DetachItemFromObjectCaseSensitive(old, "lastSync");
			bool same = ls && cJSON_Compare(old, status, true);

			cJSON_Delete(ls);
			if (same) {
				free(s->written);
				s->written = TAKE_PTR(want);
				return false;
			}
		}
		st = cJSON_Duplicate(status, true);
		rfc3339_now(ts, sizeof(ts));
		/* lastSync after bgp, before version: the schema's order. */
		cJSON_AddStringToObject(st, "lastSync", ts);
		cJSON_AddItemToObject(spec, "status", st);
		r = weft_resource_from_json(doc, s->d->node, &res, &err);
		if (r < 0) {
			log_warn("status: the Node %s does not validate with the status: %s", s->d->node,
				 err ? err : "invalid");
			return false;
		}
		text = weft_resource_encode(&res, false);
		weft_resource_clear(&res);
		store_op(s);
		r = weft_store_cas(store, s->key, text, strlen(text), expect, NULL);
		if (r == -ECANCELED)
			continue;
		if (r < 0) {
			store_failed(s, r, "writing the Node's status");
			return false;
		}
		store_answered(s);
		s->last_write_ns = now;
		free(s->written);
		s->written = TAKE_PTR(want);
		{
			struct timespec wall;
			clock_gettime(CLOCK_REALTIME, &wall);
			weftd_metric_set(s->d->metrics, "weft_last_status_write_timestamp_seconds", NULL,
					 (double)wall.tv_sec);
		}
		log_debug("status: wrote the status of %s (%s)", s->d->node, s->healthy ? "healthy" : s->reason);
		return true;
	}
	log_warn("status: the Node %s kept changing under us; trying again next time", s->d->node);
	return false;
}

/* One check. full: the store is read (and the endpoints counted) even
 * when the status did not change. */
static void check(struct weftd_status *s, bool full)
{
	_cleanup_json_ cJSON *status = NULL;
	_cleanup_free_ char *text = NULL;
	struct weftd_bird_state st = {0};

	s->last_check_ns = weft_now_ns();
	/* Until the store has answered once, every check asks it before the
	 * verdict, so the first status written is not "the store has not
	 * answered yet". */
	if (!s->store_ok_ns)
		full = true;
	probe_bird(s);
	if (full)
		count_endpoints(s);
	update_verdict(s);
	status = build_status(s);
	text = weft_json_print(status);
	if (full || !s->written || !streq(text, s->written))
		(void)write_status(s, status);
	/* A BIRD that is starting is asked again soon rather than at the
	 * next probe: its sessions come up within a second or two. */
	if (s->d->bgp && weftd_bgp_bird_state(s->d->bgp, 0, &st) == 0 && st.running && !s->bird_ctl_ok)
		(void)weft_source_timer_set(s->soon_timer, weft_now_ns() + (int64_t)STATUS_SOON_MS * 1000000, 0);
}

static int on_check_timer(struct weft_source *src, int64_t now_ns, void *userdata)
{
	check(userdata, true);
	return 0;
}

static int on_probe_timer(struct weft_source *src, int64_t now_ns, void *userdata)
{
	check(userdata, false);
	return 0;
}

/* BIRD started or died: check at once, but from a timer of our own rather
 * than inside weftd-bgp.c's callback. */
static void on_bird_state(void *userdata)
{
	struct weftd_status *s = userdata;

	(void)weft_source_timer_set(s->soon_timer, weft_now_ns(), 0);
}

/* --- HTTP ------------------------------------------------------------------------- */

static void conn_free(struct http_conn *c)
{
	struct weftd_status *s = c->s;

	weft_source_free(c->io);
	weft_source_free(c->timer);
	if (c->fd >= 0)
		close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	free(c->out);
	free(c);
}

static void conn_answer(struct http_conn *c, int code, const char *extra_headers, const char *content_type,
			const char *body);

/* The connection's deadline passed. A client that sent part of a request
 * is told so (408, with a moment to take the answer); one that sent
 * nothing, or does not take its answer, is closed. */
static int conn_timeout(struct weft_source *src, int64_t now_ns, void *userdata)
{
	struct http_conn *c = userdata;

	if (c->phase == CONN_READ && c->in_len &&
	    weft_source_timer_set(c->timer, weft_now_ns() + (int64_t)HTTP_LINGER_MS * 1000000, 0) == 0) {
		log_debug("http: client on fd %d sent no complete request within %d ms", c->fd, HTTP_TIMEOUT_MS);
		conn_answer(c, 408, NULL, "text/plain; charset=utf-8", "request timeout\n");
		return 0;
	}
	if (c->phase != CONN_LINGER)
		log_debug("http: client on fd %d timed out", c->fd);
	conn_free(c);
	return 0;
}

/* The answer is out: stop writing, drop what the client still sends for a
 * moment, then close. */
static void conn_linger(struct http_conn *c)
{
	if (shutdown(c->fd, SHUT_WR) < 0 || weft_source_io_set_events(c->io, EPOLLIN) < 0 ||
	    weft_source_timer_set(c->timer, weft_now_ns() + (int64_t)HTTP_LINGER_MS * 1000000, 0) < 0) {
		conn_free(c);
		return;
	}
	c->phase = CONN_LINGER;
}

/* Send what we can; the connection may be freed. */
static void conn_flush(struct http_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (weft_source_io_set_events(c->io, EPOLLOUT) < 0)
					conn_free(c);
				return;
			}
			log_debug("http: send: %m");
			conn_free(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	conn_linger(c);
}

static void conn_answer(struct http_conn *c, int code, const char *extra_headers, const char *content_type,
			const char *body)
{
	const char *text = code == 200   ? "OK"
			   : code == 400 ? "Bad Request"
			   : code == 404 ? "Not Found"
			   : code == 405 ? "Method Not Allowed"
			   : code == 408 ? "Request Timeout"
			   : code == 413 ? "Content Too Large"
			   : code == 503 ? "Service Unavailable"
					 : "Error";
	struct weft_buf b = {0};
	size_t len = strlen(body);

	weft_buf_printf(&b,
			"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
			"%sConnection: close\r\n\r\n",
			code, text, content_type, len, extra_headers ? extra_headers : "");
	weft_buf_append(&b, body, len);
	c->out_len = b.len;
	c->out = weft_buf_steal(&b);
	c->out_off = 0;
	c->phase = CONN_WRITE;
	conn_flush(c);
}

/* Answer a complete request. */
static void conn_serve(struct http_conn *c, const struct weftd_http_request *req)
{
	struct weftd_status *s = c->s;
	static const char *const plain = "text/plain; charset=utf-8";

	if (!weftd_http_method_is(req, "GET")) {
		conn_answer(c, 405, "Allow: GET\r\n", plain, "only GET is served here\n");
		return;
	}
	if (weftd_http_path_is(req, "/healthz")) {
		char reason[sizeof(s->reason)], *body;

		/* Live, not the last check's verdict: a dead BIRD shows at once. */
		if (evaluate(s, weft_now_ns(), reason, sizeof(reason))) {
			conn_answer(c, 200, NULL, plain, "ok\n");
		} else {
			body = wasprintf("unhealthy: %s\n", reason);
			conn_answer(c, 503, NULL, plain, body);
			free(body);
		}
		return;
	}
	if (weftd_http_path_is(req, "/metrics")) {
		_cleanup_free_ char *text = weftd_metrics_render(s->d->metrics);

		conn_answer(c, 200, NULL, "text/plain; version=0.0.4; charset=utf-8", text);
		return;
	}
	conn_answer(c, 404, NULL, plain, "not found: try /healthz or /metrics\n");
}

static int conn_io(struct weft_source *src, int fd, uint32_t revents, void *userdata)
{
	struct http_conn *c = userdata;
	struct weftd_http_request req;
	char sink[4096];

	if (c->phase == CONN_WRITE) {
		conn_flush(c);
		return 0;
	}
	for (;;) {
		ssize_t n;

		if (c->phase == CONN_LINGER) {
			n = recv(fd, sink, sizeof(sink), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				return 0;
			if (n > 0 && (c->drained += (size_t)n) <= HTTP_LINGER_BYTES)
				continue;
			/* EOF, an error, or more than a client sends by mistake. */
			conn_free(c);
			return 0;
		}
		n = recv(fd, c->in + c->in_len, HTTP_MAX_REQUEST - c->in_len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			conn_free(c);
			return 0;
		}
		if (n == 0) {
			/* The client gave up (or sent half a request). */
			if (c->in_len)
				conn_answer(c, 400, NULL, "text/plain; charset=utf-8", "bad request\n");
			else
				conn_free(c);
			return 0;
		}
		c->in_len += (size_t)n;
		switch (weftd_http_parse_request(c->in, c->in_len, HTTP_MAX_REQUEST, &req)) {
		case 1:
			conn_serve(c, &req);
			return 0;
		case 0:
			continue; /* the parser says when the buffer is full */
		case -EMSGSIZE:
			log_debug("http: request larger than %d bytes", HTTP_MAX_REQUEST);
			conn_answer(c, 413, NULL, "text/plain; charset=utf-8", "request too large\n");
			return 0;
		default:
			log_debug("http: a bad request on fd %d", c->fd);
			conn_answer(c, 400, NULL, "text/plain; charset=utf-8", "bad request\n");
			return 0;
		}
	}
}

/* Room for a new connection when every slot is taken: the oldest
 * connection that is not being answered (lingering after its answer, or
 * still sending its request) goes. Clients that connect and say nothing
 * would otherwise keep a probe like kubelet's out of /healthz for as long
 * as they re-connect. Connections are kept newest first. */
static bool conn_evict(struct weftd_status *s)
{
	struct http_conn *victim = NULL;

	for (struct http_conn *c = s->conns; c; c = c->next)
		if (c->phase == CONN_LINGER)
			victim = c;
	if (!victim)
		for (struct http_conn *c = s->conns; c; c = c->next)
			if (c->phase == CONN_READ)
				victim = c;
	if (!victim)
		return false;
	log_debug("http: %u connections open; closing the oldest idle one (fd %d)", s->nconns, victim->fd);
	conn_free(victim);
	return true;
}

static int http_accept(struct weft_source *src, int fd, uint32_t revents, void *userdata)
{
	struct weftd_status *s = userdata;

	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct http_conn *c;
		int r;

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_warn_errno(-errno, "http: accept: %m");
			return 0;
		}
		if (s->nconns >= HTTP_MAX_CONNECTIONS && !conn_evict(s)) {
			log_debug("http: %u connections open, all answering; refusing a new one", s->nconns);
			close(cfd);
			continue;
		}
		c = wcalloc(1, sizeof(*c));
		c->s = s;
		c->fd = cfd;
		c->phase = CONN_READ;
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->nconns++;
		r = weft_loop_add_io(s->loop, cfd, EPOLLIN, conn_io, c, &c->io);
		if (r >= 0)
			r = weft_loop_add_timer(s->loop, (int64_t)HTTP_TIMEOUT_MS * 1000000, 0, conn_timeout, c,
						&c->timer);
		if (r < 0) {
			log_warn_errno(r, "http: cannot watch a new connection: %m");
			conn_free(c);
		}
	}
}

/* "A.B.C.D:PORT" or "[IPv6]:PORT". Returns 0 or -EINVAL. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len)
{
	_cleanup_free_ char *host = NULL;
	const char *colon = strrchr(listen, ':');
	int64_t port;

	if (!colon || weft_parse_int64(colon + 1, 0, 65535, &port) < 0)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (listen[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		if (colon < listen + 2 || colon[-1] != ']')
			return -EINVAL;
		host = wstrndup(listen + 1, (size_t)(colon - listen - 2));
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		host = wstrndup(listen, (size_t)(colon - listen));
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*len = sizeof(*a);
	}
	return 0;
}

/* Open the listener; a failure is logged and leaves HTTP off. */
static void http_listen(struct weftd_status *s, const char *where)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	_cleanup_close_ int fd = -1;
	int one = 1, r;
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (parse_listen(where, &ss, &len) < 0) {
		log_warn("http: \"%s\" is not ADDR:PORT or [ADDR]:PORT; serving no /healthz and /metrics", where);
		return;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
		log_warn_errno(-errno, "http: cannot listen on %s: %m; serving no /healthz and /metrics", where);
		return;
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
	}
	r = weft_loop_add_io(s->loop, fd, EPOLLIN, http_accept, s, &s->listen_src);
	if (r < 0) {
		log_warn_errno(r, "http: watching %s: %m; serving no /healthz and /metrics", where);
		return;
	}
	weft_source_set_description(s->listen_src, "http listen");
	s->listen_fd = TAKE_FD(fd);
	log_info("http: serving /healthz and /metrics on %s%s%s:%u", ss.ss_family == AF_INET6 ? "[" : "", host,
		 ss.ss_family == AF_INET6 ? "]" : "", port);
}

/* --- start, stop ------------------------------------------------------------------- */

static void declare_metrics(struct weftd_metrics *m, bool bgp)
{
	weftd_metric_declare(m, "weft_up", "gauge", "1 while weftd runs.");
	weftd_metric_declare(m, "weft_healthy", "gauge", "1 when /healthz answers 200 (as of the last check).");
	weftd_metric_declare(m, "weft_endpoints", "gauge", "Endpoints of this node in the store.");
	weftd_metric_declare(m, "weft_store_events_total", "counter", "Store operations and events, by subsystem.");
	weftd_metric_declare(m, "weft_last_status_write_timestamp_seconds", "gauge",
			     "Unix time of the last write of the node's status to the store.");
	weftd_metric_set(m, "weft_up", NULL, 1);
	weftd_metric_set(m, "weft_healthy", NULL, 0);
	weftd_metric_set(m, "weft_endpoints", NULL, 0);
	weftd_metric_add(m, "weft_store_events_total", "subsystem=\"status\"", 0);
	weftd_metric_set(m, "weft_last_status_write_timestamp_seconds", NULL, 0);
	if (!bgp)
		return;
	weftd_metric_declare(m, "weft_bird_up", "gauge", "1 when BIRD runs and answers its control socket.");
	weftd_metric_declare(m, "weft_bird_restarts_total", "counter", "BIRD restarts after it died.");
	weftd_metric_declare(m, "weft_bgp_peers", "gauge", "BGP sessions by state, from BIRD.");
	weftd_metric_set(m, "weft_bird_up", NULL, 0);
	weftd_metric_set(m, "weft_bird_restarts_total", NULL, 0);
	weftd_metric_set(m, "weft_bgp_peers", "state=\"Established\"", 0);
}

int weftd_status_start(struct weftd *d, struct weft_loop *loop, const char *listen, struct weftd_status **out)
{
	struct weftd_status *s = wcalloc(1, sizeof(*s));
	const char *env = getenv("WEFT_STATUS_INTERVAL_MS");
	int64_t interval_ms = STATUS_INTERVAL_MS, probe_ms;
	int r;

	if (env && weft_parse_int64(env, 100, 3600 * 1000, &interval_ms) < 0) {
		log_warn("status: WEFT_STATUS_INTERVAL_MS=\"%s\" is not 100..3600000; using %d", env,
			 STATUS_INTERVAL_MS);
		interval_ms = STATUS_INTERVAL_MS;
	}
	probe_ms = interval_ms < STATUS_PROBE_MAX_MS ? interval_ms : STATUS_PROBE_MAX_MS;
	s->d = d;
	s->loop = loop;
	s->listen_fd = -1;
	s->interval_ns = interval_ms * 1000000;
	s->key = wasprintf("%s%s", weft_kind_prefix(WEFT_KIND_NODE), d->node);
	s->last_check_ns = weft_now_ns();
	declare_metrics(d->metrics, d->bgp != NULL);

	/* The first check runs soon after start rather than now: BIRD was
	 * started a moment ago and does not answer yet. */
	if ((r = weft_loop_add_timer(loop, s->interval_ns, s->interval_ns, on_check_timer, s, &s->check_timer)) < 0 ||
	    (r = weft_loop_add_timer(loop, (int64_t)STATUS_SOON_MS * 1000000, 0, on_probe_timer, s,
				     &s->soon_timer)) < 0)
		goto fail;
	weft_source_set_description(s->check_timer, "status check");
	weft_source_set_description(s->soon_timer, "status soon");
	if (d->bgp) {
		r = weft_loop_add_timer(loop, probe_ms * 1000000, probe_ms * 1000000, on_probe_timer, s,
					&s->probe_timer);
		if (r < 0)
			goto fail;
		weft_source_set_description(s->probe_timer, "status probe");
		weftd_bgp_set_state_fn(d->bgp, on_bird_state, s);
	}
	if (listen)
		http_listen(s, listen);
	log_info("status: checks every %lld ms", (long long)interval_ms);
	*out = s;
	return 0;
fail:
	weftd_status_stop(s);
	return r;
}

void weftd_status_stopping(struct weftd_status *s)
{
	_cleanup_json_ cJSON *status = NULL;

	if (!s || !s->store_ok_ns)
		return;
	s->healthy = false;
	weft_strlcpy(s->reason, WEFT_NODE_REASON_STOPPED, sizeof(s->reason));
	weftd_metric_set(s->d->metrics, "weft_healthy", NULL, 0);
	status = build_status(s);
	if (write_status(s, status))
		log_info("status: Node %s marked \"" WEFT_NODE_REASON_STOPPED "\"", s->d->node);
}

void weftd_status_stop(struct weftd_status *s)
{
	if (!s)
		return;
	weftd_bgp_set_state_fn(s->d->bgp, NULL, NULL);
	while (s->conns)
		conn_free(s->conns);
	weft_source_free(s->listen_src);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	weft_source_free(s->check_timer);
	weft_source_free(s->probe_timer);
	weft_source_free(s->soon_timer);
	cJSON_Delete(s->bgp);
	free(s->written);
	free(s->key);
	free(s);
}
