/* http.c - the request parser of weftd's HTTP server (see http.h).
 *
 * The parser keeps no state between calls: the caller hands it every byte
 * received so far (at most a few KiB) and it reads them from the start. It
 * checks the bytes of a line before the line ends, so that a request that
 * can never be served (a NUL, a control character, a bad request line) is
 * refused when it arrives rather than after the client's timeout.
 */
#include "felix/http.h"

/* RFC 9110 5.6.2: tchar. */
static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_vchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e;
}

/* A field value's characters: visible, SP, HTAB, obs-text. */
static bool is_field_char(unsigned char c)
{
	return c == ' ' || c == '\t' || is_vchar(c) || c >= 0x80;
}

/* The request line's first n bytes (no CR LF), all of it when complete.
 * Returns 0 when it is (or may still become) a request line we serve,
 * filling r's request-line fields when complete, else -EBADMSG. */
static int request_line(const char *s, size_t n, bool complete, struct weftd_http_request *r)
{
	static const char version[] = "HTTP/1.";
	size_t m, t, i, v, vl;

	for (m = 0; m < n && is_tchar((unsigned char)s[m]); m++)
		;
	if (m == n)
		return complete ? -EBADMSG : 0; /* a method and nothing else */
	if (!m || s[m] != ' ')
		return -EBADMSG;
	t = m + 1;
	for (i = t; i < n && is_vchar((unsigned char)s[i]); i++)
		;
	if (i > t && s[t] != '/')
		return -EBADMSG; /* not origin form ("*", "http://...", or no target at all) */
	if (i == n)
		return complete ? -EBADMSG : 0; /* no version */
	if (i == t || s[i] != ' ')
		return -EBADMSG; /* an empty target, or a control character in it */
	v = i + 1;
	vl = n - v;
	if (vl > sizeof(version) || memcmp(s + v, version, vl < sizeof(version) - 1 ? vl : sizeof(version) - 1))
		return -EBADMSG;
	if (vl == sizeof(version) && s[n - 1] != '0' && s[n - 1] != '1')
		return -EBADMSG;
	if (!complete)
		return 0;
	if (vl != sizeof(version))
		return -EBADMSG;
	r->method = s;
	r->method_len = m;
	r->target = s + t;
	r->target_len = i - t;
	for (r->path_len = 0; r->path_len < r->target_len && r->target[r->path_len] != '?'; r->path_len++)
		;
	r->minor = s[n - 1] - '0';
	return 0;
}

/* A header line's first n bytes (no CR LF), all of it when complete. */
static int header_line(const char *s, size_t n, bool complete)
{
	size_t k;

	for (k = 0; k < n && is_tchar((unsigned char)s[k]); k++)
		;
	if (k == n)
		return complete ? -EBADMSG : 0; /* no colon */
	/* An empty name, a space before the colon (RFC 9112 5.1: refuse), a
	 * folded line (it starts with a space or tab). */
	if (!k || s[k] != ':')
		return -EBADMSG;
	for (k++; k < n; k++)
		if (!is_field_char((unsigned char)s[k]))
			return -EBADMSG;
	return 0;
}

int weftd_http_parse_request(const char *data, size_t len, size_t max, struct weftd_http_request *req)
{
	struct weftd_http_request r = {0};
	size_t n = len < max ? len : max, i = 0;
	bool have_request_line = false;

	while (i < n) {
		const char *s = data + i, *nl = memchr(s, '\n', n - i), *cr;
		size_t l = nl ? (size_t)(nl - s) : n - i, content = l;
		bool complete = nl != NULL;
		int rc;

		/* A CR only ends a line: right before its LF, or as the last
		 * byte so far (its LF has not arrived). */
		cr = memchr(s, '\r', l);
		if (cr) {
			if (cr != s + l - 1)
				return -EBADMSG;
			content--;
		}
		if (!content) {
			if (!complete)
				break;
			if (have_request_line) {
				r.head_len = i + l + 1;
				*req = r;
				return 1;
			}
			/* An empty line before the request line (RFC 9112 2.2). */
			i += l + 1;
			continue;
		}
		rc = have_request_line ? header_line(s, content, complete) : request_line(s, content, complete, &r);
		if (rc < 0)
			return rc;
		if (!complete)
			break;
		have_request_line = true;
		i += l + 1;
	}
	return len >= max ? -EMSGSIZE : 0;
}

static bool span_is(const char *p, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(p, s, n) == 0;
}

bool weftd_http_method_is(const struct weftd_http_request *req, const char *s)
{
	return span_is(req->method, req->method_len, s);
}

bool weftd_http_path_is(const struct weftd_http_request *req, const char *s)
{
	return span_is(req->target, req->path_len, s);
}
