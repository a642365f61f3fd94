/* etcd-proto.h - the etcd v3 JSON gateway protocol, for store-etcd.c.
 *
 * Everything here is pure (no I/O, no global state) so that the unit tests
 * and the fuzz target can call it: URL parsing, base64, request bodies and
 * the decoding of every response the gateway sends. Responses are outside
 * input: every decoder validates every field it uses and returns -EBADMSG
 * on anything malformed, never crashes and never leaks.
 *
 * The gateway speaks protobuf's JSON mapping: bytes are base64, int64 are
 * decimal strings, and fields with their default value (0, false, "", an
 * empty list, enum value 0) are left out, so a missing field means 0.
 *
 * Internal to store/: the names carry the weft_etcd_ prefix but are not
 * part of store.h. Return convention as in store.h: 0 (or a count) or a
 * negative errno, outputs untouched on failure.
 */
#ifndef WEFT_ETCD_PROTO_H
#define WEFT_ETCD_PROTO_H

#include "store/store.h"

/* Default per-operation time limit. */
#define WEFT_ETCD_TIMEOUT_MS_DEFAULT 5000
/* Largest response body accepted from the gateway. */
#define WEFT_ETCD_RESPONSE_MAX ((size_t)512 * 1024 * 1024)

/* A parsed store URL. */
struct weft_etcd_conf {
	bool tls;           /* etcds:// */
	char **endpoints;   /* "HOST:PORT" as given (IPv6 in brackets) */
	size_t n_endpoints; /* >= 1 */
	char *prefix;       /* prepended to every key, "" if none */
	char *ca, *cert, *key; /* NULL if not given */
	int timeout_ms;
};

/* Parse "//HOST:PORT[,HOST:PORT...][?opts]" for scheme "etcd" or "etcds".
 * Returns 0 or -EINVAL with a malloc'ed description in *errmsg (if not
 * NULL). */
int weft_etcd_conf_parse(const char *scheme, const char *spec, struct weft_etcd_conf *out, char **errmsg);
void weft_etcd_conf_clear(struct weft_etcd_conf *c);

/* Standard base64 with padding. Encoding never fails (returns a malloc'ed
 * string). Decoding is strict (length a multiple of 4, padding only at the
 * end, no whitespace): returns 0 and a malloc'ed buffer with a NUL after
 * *outlen bytes, or -EBADMSG. */
char *weft_etcd_b64_encode(const void *p, size_t n);
int weft_etcd_b64_decode(const char *s, size_t len, char **out, size_t *outlen);

/* The etcd range_end that selects every key starting with p[0..n): p with
 * trailing 0xff bytes dropped and the last byte incremented, or "\0" (every
 * key from p to the end) when p is empty or all 0xff. Returns a malloc'ed
 * buffer and its length in *outlen. */
char *weft_etcd_prefix_end(const char *p, size_t n, size_t *outlen);

/* Request bodies (malloc'ed JSON text). Keys are given without the store
 * prefix; the functions prepend it. */
char *weft_etcd_req_range_key(const char *prefix, const char *key);
char *weft_etcd_req_range_prefix(const char *prefix, const char *key_prefix, bool count_only);
char *weft_etcd_req_txn(const char *prefix, const struct weft_txn_cmp *cmps, size_t ncmps,
			const struct weft_txn_op *ops, size_t nops);
char *weft_etcd_req_watch(const char *prefix, const char *key_prefix, int64_t start_rev);

/* Decoders. strip is the store prefix: every key in a response must start
 * with it (else -EBADMSG) and is returned without it; a key equal to the
 * prefix itself is not a weft key and is skipped. */

/* A /v3/kv/range response: the kvs sorted by key, out->rev the header
 * revision. */
int weft_etcd_parse_range(const char *body, size_t len, const char *strip, struct weft_kv_list *out);
/* A /v3/kv/range response with count_only: the header revision. */
int weft_etcd_parse_header_rev(const char *body, size_t len, int64_t *rev);
/* A /v3/kv/txn response: whether the compares held and the header
 * revision (the revision of the write when it succeeded and wrote). */
int weft_etcd_parse_txn(const char *body, size_t len, bool *succeeded, int64_t *rev);
/* A /v3/maintenance/status response. version gets the server version. */
int weft_etcd_parse_status(const char *body, size_t len, int64_t *rev, uint64_t *leader, char *version,
			   size_t version_size);
/* An error body {"error":..., "code":N, "message":...} (HTTP status not
 * 200): returns the negative errno for the gRPC code and the message in
 * msg, or -EBADMSG (msg untouched) if the body is not an error. */
int weft_etcd_parse_error(const char *body, size_t len, char *msg, size_t msg_size);
/* The negative errno for a gRPC status code. */
int weft_etcd_grpc_errno(int64_t code);

/* One newline-delimited message of a /v3/watch stream. */
struct weft_etcd_watch_msg {
	int64_t header_rev;
	bool created;
	bool canceled;
	int64_t compact_rev;  /* > 0: canceled because history was compacted */
	char reason[256];     /* cancel reason or stream error message */
	bool stream_error;    /* {"error": {...}}: the gateway's stream failed */
	int error_errno;      /* with stream_error: the gRPC code's errno */
	struct weft_event *events;
	size_t n_events;
	/* Events in the message, including those not returned (the prefix key
	 * itself): 0 means a progress notification, not an emptied batch. */
	size_t n_raw_events;
};
int weft_etcd_parse_watch(const char *line, size_t len, const char *strip, struct weft_etcd_watch_msg *out);
void weft_etcd_watch_msg_clear(struct weft_etcd_watch_msg *m);

#endif
