/* http.h - the request parser of weftd's small HTTP server (/healthz and
 * /metrics, felix/weftd-status.c): the bytes a client sent in, a verdict
 * and the request line out. Pure (no I/O, no allocation), so that it can
 * be unit-tested and fuzzed apart from the connection handling.
 *
 * What it accepts (RFC 9112, strictly, as a server that answers one GET
 * and closes can afford): empty lines before the request line are skipped;
 * the request line is method SP target SP version, the method a token, the
 * target in origin form ("/..." of visible ASCII), the version HTTP/1.0 or
 * HTTP/1.1; each header line is name ":" value, the name a token (no space
 * before the colon, no line folding), the value of visible characters,
 * spaces, tabs and bytes >= 0x80. Lines end with CR LF or a lone LF; a CR
 * anywhere else, a NUL or another control character is refused. A body or
 * a second (pipelined) request after the head is left to the caller.
 */
#ifndef WEFT_HTTP_H
#define WEFT_HTTP_H

#include "lib/util.h"

/* A request's head. The strings point into the caller's bytes and are not
 * NUL-terminated. */
struct weftd_http_request {
	const char *method;
	size_t method_len;
	const char *target; /* starts with '/' */
	size_t target_len;
	size_t path_len;    /* the target up to its '?' (or all of it) */
	int minor;          /* HTTP/1.<minor>: 0 or 1 */
	size_t head_len;    /* bytes up to and including the empty line */
};

/* Parse the request head at the start of data[0..len), which must lie
 * within its first max bytes. Returns
 *   1          a complete head: *req is filled (bytes after head_len are
 *              not looked at);
 *   0          no complete head yet, but what is there may still become one
 *              (fewer than max bytes);
 *   -EBADMSG   what is there cannot become a request served here (400);
 *              said as early as the bytes show it, e.g. at a NUL byte,
 *              not only once the head is complete;
 *   -EMSGSIZE  max bytes or more without a complete head (413).
 * *req is untouched unless 1. */
int weftd_http_parse_request(const char *data, size_t len, size_t max, struct weftd_http_request *req);

/* Whether the request's method / path (the target without its query) is
 * exactly s. */
bool weftd_http_method_is(const struct weftd_http_request *req, const char *s);
bool weftd_http_path_is(const struct weftd_http_request *req, const char *s);

#endif
