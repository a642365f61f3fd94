/* api.h - weftd's local API server: a unix stream socket on the loop.
 *
 * Protocol (docs/weftd.md): one request per connection. The client writes
 * one JSON object and shuts its write side down (EOF ends the request);
 * the server answers with one JSON object and closes. Everything is
 * non-blocking and driven by the loop, so a slow or stuck client never
 * holds the daemon: every connection has a deadline (reading and writing
 * together), requests are bounded in size, and the number of open
 * connections is bounded too (above it new ones are closed at once, which
 * the plugins report as "try again later").
 *
 * The handler runs inside the loop callback, one request at a time: the
 * daemon's state changes are therefore serialised without locks. A
 * request that must wait for something (weftd: an ADD for devices whose
 * teardown is queued) is parked rather than blocking the loop, so no other
 * request waits with it.
 *
 * Return convention: 0 or a negative errno.
 */
#ifndef WEFT_API_H
#define WEFT_API_H

#include "lib/loop.h"

#define WEFTD_API_MAX_REQUEST (2u << 20)  /* bytes: a 1 MiB config, escaped, and the env */
#define WEFTD_API_TIMEOUT_MS 10000        /* per connection, request and answer */
#define WEFTD_API_MAX_CONNECTIONS 128

struct weftd_api;

/* Handle one complete request (text of len bytes, NUL-terminated, not
 * parsed yet) and return the answer text, malloc'ed. When may_defer is
 * true the handler may return NULL instead: the request is parked (no
 * state changed) and handed to the handler again, with the same text, on
 * every weftd_api_resume() and, with may_defer false, once it has been
 * parked WEFTD_API_PARK_MS; with may_defer false it must answer. */
typedef char *(*weftd_api_fn)(const char *text, size_t len, bool may_defer, void *userdata);

#define WEFTD_API_PARK_MS 5000 /* below WEFTD_API_TIMEOUT_MS: the answer still fits */

/* Listen on path: refuses (-EADDRINUSE) when something answers there
 * already, removes a stale socket file otherwise, creates the socket with
 * mode 0600. Returns 0 or a negative errno with *errmsg set (malloc'ed). */
int weftd_api_listen(struct weft_loop *loop, const char *path, weftd_api_fn fn, void *userdata,
		     struct weftd_api **out, char **errmsg);
/* Hand every parked request to the handler again (on the loop). Accepts
 * NULL. */
void weftd_api_resume(struct weftd_api *api);
/* Close every connection, the listening socket, and remove the socket
 * file. Accepts NULL. */
void weftd_api_free(struct weftd_api *api);

#endif
