/* curl-lazy.c - libcurl, loaded the first time an etcd store is opened.
 *
 * libcurl brings some thirty shared libraries with it (TLS, Kerberos,
 * LDAP, SSH, HTTP/2, ...): mapping and relocating them is most of a
 * weftctl command's run time (about 13 of 17 ms here), and every weftctl
 * and weftd on the embedded store paid it for nothing. So weft_store does
 * not link libcurl: it defines the few libcurl functions store-etcd.c
 * calls, and they forward to libcurl, which the first curl_global_init()
 * (store-etcd.c's, once, before any handle) loads with dlopen(). The API
 * and the library are libcurl's; only the time of loading moves.
 *
 * curl_easy_setopt() and curl_easy_getinfo() are variadic: the argument's
 * type follows from the option's number, as libcurl's own headers define
 * it (CURLOPTTYPE_*, CURLINFO_TYPEMASK), and is passed on as that type.
 */
#define CURL_DISABLE_TYPECHECK 1 /* these are the functions, not the macros */
#include <curl/curl.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>

#define WEFT_LIBCURL "libcurl.so.4"

static struct {
	void *handle;
	char error[256];
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} L;

/* Load libcurl and every function; false (L.error says why) otherwise.
 * Called from curl_global_init() only, which store-etcd.c runs once
 * (pthread_once) before any other call. */
static int load(void)
{
	void *h;

	if (L.handle)
		return 1;
	h = dlopen(WEFT_LIBCURL, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(L.error, sizeof(L.error), "cannot load %s (the etcd client library): %s", WEFT_LIBCURL,
			 dlerror());
		return 0;
	}
#define SYM(field, name)                                                                                 \
	do {                                                                                             \
		*(void **)&L.field = dlsym(h, name);                                                     \
		if (!L.field) {                                                                          \
			snprintf(L.error, sizeof(L.error), "%s has no %s: %s", WEFT_LIBCURL, name, dlerror()); \
			dlclose(h);                                                                      \
			return 0;                                                                        \
		}                                                                                        \
	} while (0)
	SYM(global_init, "curl_global_init");
	SYM(easy_init, "curl_easy_init");
	SYM(easy_setopt, "curl_easy_setopt");
	SYM(easy_perform, "curl_easy_perform");
	SYM(easy_cleanup, "curl_easy_cleanup");
	SYM(easy_reset, "curl_easy_reset");
	SYM(easy_getinfo, "curl_easy_getinfo");
	SYM(easy_strerror, "curl_easy_strerror");
	SYM(slist_append, "curl_slist_append");
	SYM(slist_free_all, "curl_slist_free_all");
#undef SYM
	L.handle = h;
	return 1;
}

CURLcode curl_global_init(long flags)
{
	if (!load())
		return CURLE_FAILED_INIT;
	return L.global_init(flags);
}

/* Without libcurl loaded: the reason it is not. */
const char *curl_easy_strerror(CURLcode code)
{
	if (!L.handle)
		return L.error[0] ? L.error : "libcurl is not loaded";
	return L.easy_strerror(code);
}

CURL *curl_easy_init(void)
{
	return L.handle ? L.easy_init() : NULL;
}

CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
	va_list ap;
	CURLcode r;

	if (!L.handle)
		return CURLE_FAILED_INIT;
	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		r = L.easy_setopt(c, opt, va_arg(ap, long));
	else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
		r = L.easy_setopt(c, opt, va_arg(ap, void *));
	else if (opt < CURLOPTTYPE_OFF_T)
		r = L.easy_setopt(c, opt, va_arg(ap, void (*)(void)));
	else if (opt < CURLOPTTYPE_BLOB)
		r = L.easy_setopt(c, opt, va_arg(ap, curl_off_t));
	else
		r = L.easy_setopt(c, opt, va_arg(ap, void *));
	va_end(ap);
	return r;
}

CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
	va_list ap;
	CURLcode r;

	if (!L.handle)
		return CURLE_FAILED_INIT;
	va_start(ap, info);
	r = L.easy_getinfo(c, info, va_arg(ap, void *)); /* every kind is a pointer to the result */
	va_end(ap);
	return r;
}

CURLcode curl_easy_perform(CURL *c)
{
	return L.handle ? L.easy_perform(c) : CURLE_FAILED_INIT;
}

void curl_easy_cleanup(CURL *c)
{
	if (L.handle)
		L.easy_cleanup(c);
}

void curl_easy_reset(CURL *c)
{
	if (L.handle)
		L.easy_reset(c);
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *s)
{
	return L.handle ? L.slist_append(list, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *list)
{
	if (L.handle)
		L.slist_free_all(list);
}
