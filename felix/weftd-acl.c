/* weftd-acl.c - ACLs (stub: being written). */
#include "felix/weftd.h"

int weftd_acl_start(struct weftd *d, struct weft_loop *loop, const char *backend, struct weftd_acl **out)
{
	(void)d;
	(void)loop;
	(void)backend;
	*out = NULL;
	return 0;
}

void weftd_acl_stop(struct weftd_acl *a)
{
	(void)a;
}
